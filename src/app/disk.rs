//! The window's own disk thread: the file reads and writes the window needs for itself
//! (the marks files, the names and presence of the Recent menu's files) happen here,
//! never in a frame (a slow or network disk must not freeze the window), and never behind
//! the worker (a ten-minute training must not hold back a mark).
//!
//! Jobs run one at a time in the order sent, so the last save of a library's marks is
//! the one on disk. Dropping the thread's handle lets it finish every job already handed
//! over: the last marks reach the disk when the window closes.

use std::path::PathBuf;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};

use super::marks_file::{MarksDone, MarksJob};
use super::recent::{RecentFile, RecentKind, describe_recent};

/// Jobs waiting for the disk thread, and answers waiting for a frame, at most.
const QUEUE: usize = 64;

/// Work for the disk thread.
#[derive(Debug, Clone, PartialEq)]
pub enum DiskJob {
    Marks(MarksJob),
    /// Names the Recent menu's files as a person recognises them, and says which are
    /// still there.
    DescribeRecent(Vec<(PathBuf, RecentKind)>),
}

/// What a job found.
#[derive(Debug, Clone, PartialEq)]
pub enum DiskAnswer {
    Marks(MarksDone),
    Recent(Vec<RecentFile>),
}

/// Carries out one job (on the disk thread; tests call it directly).
pub fn carry_out(job: DiskJob) -> DiskAnswer {
    match job {
        DiskJob::Marks(job) => DiskAnswer::Marks(super::marks_file::carry_out(job)),
        DiskJob::DescribeRecent(files) => DiskAnswer::Recent(describe_recent(&files)),
    }
}

/// The disk thread and its two queues.
pub struct DiskThread {
    jobs: Option<Sender<DiskJob>>,
    answers: Receiver<DiskAnswer>,
    /// Answers of jobs carried out on the caller's thread (the thread could not start).
    answered_here: Vec<DiskAnswer>,
    thread: Option<JoinHandle<()>>,
}

impl DiskThread {
    /// Starts the thread; `wake` is called after each job (to repaint the window).
    pub fn spawn(wake: impl Fn() + Send + 'static) -> Self {
        let (job_sender, jobs) = bounded::<DiskJob>(QUEUE);
        let (answer_sender, answers) = bounded::<DiskAnswer>(QUEUE);
        let thread = std::thread::Builder::new()
            .name("likeness-disk".into())
            .spawn(move || {
                for job in jobs {
                    // With the window gone the remaining jobs still run (saves); their
                    // answers have no one to read them.
                    if answer_sender.send(carry_out(job)).is_ok() {
                        wake();
                    }
                }
            })
            .ok();
        Self {
            jobs: thread.as_ref().map(|_| job_sender),
            answers,
            answered_here: Vec::new(),
            thread,
        }
    }

    /// Hands a marks job over without waiting; gives it back when the queue is full.
    pub fn try_send_marks(&mut self, job: MarksJob) -> Result<(), MarksJob> {
        if self.is_full() {
            return Err(job);
        }
        self.send(DiskJob::Marks(job));
        Ok(())
    }

    /// Asks for the Recent menu's files to be described; `false` when the queue is full.
    pub fn try_describe_recent(&mut self, files: Vec<(PathBuf, RecentKind)>) -> bool {
        if self.is_full() {
            return false;
        }
        self.send(DiskJob::DescribeRecent(files));
        true
    }

    /// Only the window sends, so a queue that is not full takes the next job.
    fn is_full(&self) -> bool {
        self.jobs.as_ref().is_some_and(Sender::is_full)
    }

    /// Hands a job over; when the thread could not start (or stopped) it is carried out
    /// here, as a last resort that still keeps the marks, and its answer comes with the
    /// next [`Self::answers`].
    fn send(&mut self, job: DiskJob) {
        let refused = match &self.jobs {
            Some(jobs) => match jobs.try_send(job) {
                Ok(()) => None,
                Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => Some(job),
            },
            None => Some(job),
        };
        if let Some(job) = refused {
            self.answered_here.push(carry_out(job));
        }
    }

    /// The answers ready now.
    pub fn answers(&mut self) -> Vec<DiskAnswer> {
        let mut ready = std::mem::take(&mut self.answered_here);
        ready.extend(self.answers.try_iter().take(QUEUE));
        ready
    }
}

impl Drop for DiskThread {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            // Answers are not read any more: empty their queue so the thread never waits.
            while !thread.is_finished() {
                while self.answers.try_recv().is_ok() {}
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::feedback::{Marks, library_marks_path};

    #[test]
    fn jobs_run_in_order_off_the_caller_and_the_last_save_is_on_disk_after_drop() {
        let dir = tempfile::tempdir().expect("dir");
        let file = library_marks_path(dir.path(), &dir.path().join("library"));
        let mut disk = DiskThread::spawn(|| {});
        for count in 1..=20 {
            let mut marks = Marks::default();
            for i in 0..count {
                marks.set(
                    std::path::Path::new("q"),
                    &PathBuf::from(format!("p{i}")),
                    Some(true),
                );
            }
            let mut job = MarksJob::Save {
                file: file.clone(),
                marks,
            };
            while let Err(back) = disk.try_send_marks(job) {
                job = back;
                std::thread::yield_now();
            }
        }
        drop(disk);
        assert_eq!(Marks::load(&file).expect("saved").marks.len(), 20);
    }
}
