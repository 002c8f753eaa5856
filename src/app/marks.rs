//! The person's marks, in one place: which results they marked alike or not alike to
//! their queries (kept per library, see [`library_marks_path`]), the changes they can
//! undo, and every operation on them (set, undo, remove, import, export, open the
//! library's file, ask for a retrain).
//!
//! The reducer never reads or writes a marks file: when the current index changes it
//! asks for [`super::reducer::Effect::OpenMarks`], and the app carries that out here.
//! Nor does this view: it keeps the marks in memory, so a mark acts at once, and queues
//! the file work ([`MarksJob`]) for the window's disk thread ([`super::disk`]);
//! [`MarksView::apply`] takes in what the disk thread found. Each operation returns what
//! to tell the person, so the notices stay with the state.

use std::path::{Path, PathBuf};

use super::marks_file::{MarksDone, MarksJob};
use crate::engine::feedback::{DEFAULT_SECONDS, Mark, Marks, library_marks_path};

/// One mark change, for undo: the mark the pair had before it.
#[derive(Debug, Clone, PartialEq)]
struct MarkChange {
    query: PathBuf,
    photo: PathBuf,
    before: Option<bool>,
}

/// What an operation on the marks wants the person told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarksNotice {
    Info(String),
    Error(String),
}

/// The marks of the current index's library, their file and the undo history.
#[derive(Debug)]
pub struct MarksView {
    marks: Marks,
    /// The library's marks file; `None` without an index, while it is being read, or when
    /// it could not be read and is still there (it is never written over).
    file: Option<PathBuf>,
    /// The library's marks file while the disk thread reads it.
    opening: Option<PathBuf>,
    /// Mark changes, newest last.
    history: Vec<MarkChange>,
    /// File work not handed to the disk thread yet, oldest first.
    outbox: Vec<MarksJob>,
    /// Jobs handed over and not answered yet.
    in_flight: usize,
    /// Budget of Retrain with my marks, in seconds.
    pub fine_tune_seconds: f64,
}

impl Default for MarksView {
    fn default() -> Self {
        Self {
            marks: Marks::default(),
            file: None,
            opening: None,
            history: Vec::new(),
            outbox: Vec::new(),
            in_flight: 0,
            fine_tune_seconds: DEFAULT_SECONDS,
        }
    }
}

impl MarksView {
    /// Whether marks can be set: they are kept with an index's library.
    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// The library's marks file, when marks can be set.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The marks, oldest first.
    pub fn list(&self) -> &[Mark] {
        &self.marks.marks
    }

    pub fn all(&self) -> &Marks {
        &self.marks
    }

    pub fn is_empty(&self) -> bool {
        self.marks.marks.is_empty()
    }

    /// The mark of `photo` for `query`, if any.
    pub fn get(&self, query: &Path, photo: &Path) -> Option<bool> {
        self.marks.get(query, photo)
    }

    pub fn can_undo(&self) -> bool {
        !self.history.is_empty()
    }

    /// Whether every file job has been carried out (the marks on disk are the marks on
    /// screen).
    pub fn is_settled(&self) -> bool {
        self.outbox.is_empty() && self.in_flight == 0
    }

    /// Opens the marks of the library indexed as `index_folder` (the index file at
    /// `index_path`), kept in `marks_dir`; without an index there are none. The file is
    /// read on the disk thread (marks that earlier versions kept beside the index file
    /// move to the library's file first); until then marks cannot be set.
    pub fn open(&mut self, marks_dir: &Path, index: Option<(&Path, &Path)>) {
        let file = index.map(|(folder, _)| library_marks_path(marks_dir, folder));
        if file.is_some() && (file == self.file || file == self.opening) {
            // Another index of the same library: the marks on screen are its marks.
            return;
        }
        self.history.clear();
        self.marks = Marks::default();
        self.file = None;
        self.opening = None;
        if let (Some(file), Some((_, index_path))) = (file, index) {
            self.opening = Some(file.clone());
            self.outbox.push(MarksJob::Open {
                file,
                index_path: index_path.to_path_buf(),
            });
        }
    }

    /// Sets one mark (`None` removes it), remembers it for undo and saves the marks.
    pub fn set(
        &mut self,
        query: PathBuf,
        photo: PathBuf,
        alike: Option<bool>,
    ) -> Option<MarksNotice> {
        if self.file.is_none() {
            return Some(MarksNotice::Error(if self.opening.is_some() {
                "Your marks are still being read; mark again in a moment.".into()
            } else {
                "Open or build an index first: marks are kept with it.".into()
            }));
        }
        let before = self.marks.set(&query, &photo, alike);
        if before != alike {
            self.history.push(MarkChange {
                query,
                photo,
                before,
            });
        }
        self.save();
        None
    }

    /// Removes the mark at `position` of [`MarksView::list`].
    pub fn remove(&mut self, position: usize) -> Option<MarksNotice> {
        let mark = self.marks.marks.get(position).cloned()?;
        self.set(mark.query, mark.photo, None)
    }

    /// Takes back the last mark change.
    pub fn undo(&mut self) {
        if let Some(change) = self.history.pop() {
            self.marks.set(&change.query, &change.photo, change.before);
            self.save();
        }
    }

    /// Writes the marks to `path` as JSON (the same format they are kept in); the notice
    /// comes with the answer.
    pub fn export(&mut self, path: &Path) {
        self.outbox.push(MarksJob::Export {
            path: path.to_path_buf(),
            marks: self.marks.clone(),
        });
    }

    /// Adds the marks of the marks file at `path` (its judgement wins where both marked
    /// a pair) once the disk thread has read it.
    pub fn import(&mut self, path: &Path) {
        self.outbox.push(MarksJob::Import {
            path: path.to_path_buf(),
        });
    }

    /// Hands the queued file work over, oldest first, through `send`; a job it gives back
    /// (the queue is full) waits with the rest for the next frame.
    pub fn hand_over(&mut self, mut send: impl FnMut(MarksJob) -> Result<(), MarksJob>) {
        let mut waiting = std::mem::take(&mut self.outbox).into_iter();
        while let Some(job) = waiting.next() {
            match send(job) {
                Ok(()) => self.in_flight += 1,
                Err(job) => {
                    self.outbox.push(job);
                    self.outbox.extend(waiting);
                    break;
                }
            }
        }
    }

    /// Takes in what the disk thread found; returns what to tell the person.
    pub fn apply(&mut self, done: MarksDone) -> Option<MarksNotice> {
        self.in_flight = self.in_flight.saturating_sub(1);
        match done {
            MarksDone::Opened {
                file,
                marks,
                problem,
                unreadable_kept,
            } => {
                if self.opening.as_ref() != Some(&file) {
                    // Another library was opened since.
                    return None;
                }
                self.opening = None;
                self.marks = marks;
                // Still there (not moved aside): never write over it.
                self.file = (!unreadable_kept).then_some(file);
                problem.map(MarksNotice::Error)
            }
            MarksDone::Saved { problem, .. } => problem.map(|problem| {
                MarksNotice::Error(format!("Your marks could not be saved: {problem}"))
            }),
            MarksDone::Exported {
                path,
                count,
                problem: None,
            } => Some(MarksNotice::Info(format!(
                "Exported {} to {}.",
                super::reducer::plural(count, "mark", "marks"),
                path.display()
            ))),
            MarksDone::Exported {
                problem: Some(problem),
                ..
            } => Some(MarksNotice::Error(format!(
                "The marks were not exported: {problem}"
            ))),
            MarksDone::Imported {
                path,
                marks: Ok(other),
            } => {
                let changed = self.marks.import(&other);
                // Undo starts afresh: the history no longer describes the marks.
                self.history.clear();
                self.save();
                Some(MarksNotice::Info(format!(
                    "Imported {} from {} ({} new or changed).",
                    super::reducer::plural(other.marks.len(), "mark", "marks"),
                    path.display(),
                    changed
                )))
            }
            MarksDone::Imported {
                marks: Err(problem),
                ..
            } => Some(MarksNotice::Error(format!(
                "The marks were not imported: {problem}"
            ))),
        }
    }

    /// Queues a save of the marks as the library's file; an earlier save of the same
    /// file still waiting is dropped (this one holds its marks too).
    fn save(&mut self) {
        let Some(file) = self.file.clone() else {
            return;
        };
        self.outbox
            .retain(|job| !matches!(job, MarksJob::Save { file: f, .. } if *f == file));
        self.outbox.push(MarksJob::Save {
            file,
            marks: self.marks.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::marks_file::carry_out;

    /// Carries out the queued file work as the disk thread would; returns the notices.
    fn settle(view: &mut MarksView) -> Vec<MarksNotice> {
        let mut notices = Vec::new();
        while !view.is_settled() {
            let mut jobs = Vec::new();
            view.hand_over(|job| {
                jobs.push(job);
                Ok(())
            });
            for job in jobs {
                notices.extend(view.apply(carry_out(job)));
            }
        }
        notices
    }

    fn opened(dir: &Path) -> MarksView {
        let library = dir.join("library");
        std::fs::create_dir_all(&library).expect("library");
        let mut view = MarksView::default();
        view.open(
            &dir.join("marks"),
            Some((&library, &dir.join("i.likeness"))),
        );
        assert_eq!(settle(&mut view), Vec::new());
        view
    }

    #[test]
    fn marks_need_an_index_and_are_saved_as_they_change() {
        let dir = tempfile::tempdir().expect("dir");
        let mut closed = MarksView::default();
        assert!(matches!(
            closed.set("q".into(), "p".into(), Some(true)),
            Some(MarksNotice::Error(_))
        ));
        assert!(closed.is_empty());

        std::fs::create_dir_all(dir.path().join("marks")).expect("marks dir");
        let mut view = opened(dir.path());
        assert_eq!(view.set("q".into(), "p".into(), Some(true)), None);
        assert_eq!(view.get(Path::new("q"), Path::new("p")), Some(true));
        assert!(!view.is_settled(), "the save waits for the disk thread");
        assert_eq!(settle(&mut view), Vec::new());
        // A second view of the same library reads what the first saved.
        let again = opened(dir.path());
        assert_eq!(again.list().len(), 1);
    }

    #[test]
    fn marks_cannot_be_set_while_the_file_is_read_and_a_stale_answer_is_ignored() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir_all(dir.path().join("marks")).expect("marks dir");
        let first = opened(dir.path());
        drop(first);
        let mut view = MarksView::default();
        let (one, two) = (dir.path().join("one"), dir.path().join("two"));
        let marks_dir = dir.path().join("marks");
        view.open(&marks_dir, Some((&one, &dir.path().join("1.likeness"))));
        assert!(matches!(
            view.set("q".into(), "p".into(), Some(true)),
            Some(MarksNotice::Error(text)) if text.contains("still being read")
        ));
        let mut jobs = Vec::new();
        view.hand_over(|job| {
            jobs.push(job);
            Ok(())
        });
        // Library two is opened before library one's file comes back.
        view.open(&marks_dir, Some((&two, &dir.path().join("2.likeness"))));
        for job in jobs {
            assert_eq!(view.apply(carry_out(job)), None);
        }
        assert!(
            !view.is_open(),
            "library one's answer does not open library two"
        );
        settle(&mut view);
        assert_eq!(
            view.file(),
            Some(library_marks_path(&marks_dir, &two).as_path())
        );
    }

    #[test]
    fn undo_takes_back_each_change_in_turn_and_remove_is_undoable() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir_all(dir.path().join("marks")).expect("marks dir");
        let mut view = opened(dir.path());
        view.set("q".into(), "p".into(), Some(true));
        view.set("q".into(), "p".into(), Some(false));
        // Setting the same mark again is no change, so nothing to undo for it.
        view.set("q".into(), "p".into(), Some(false));
        assert_eq!(view.get(Path::new("q"), Path::new("p")), Some(false));
        view.undo();
        assert_eq!(view.get(Path::new("q"), Path::new("p")), Some(true));
        view.remove(0);
        assert!(view.is_empty());
        view.undo();
        assert_eq!(view.get(Path::new("q"), Path::new("p")), Some(true));
        view.undo();
        assert!(view.is_empty());
        assert!(!view.can_undo());
        // Five changes, one save waiting: the last one, with no marks.
        assert_eq!(view.outbox.len(), 1);
        settle(&mut view);
        assert!(opened(dir.path()).is_empty());
    }

    #[test]
    fn a_damaged_marks_file_is_kept_aside_and_never_written_over() {
        let dir = tempfile::tempdir().expect("dir");
        let marks_dir = dir.path().join("marks");
        std::fs::create_dir_all(&marks_dir).expect("marks dir");
        let library = dir.path().join("library");
        std::fs::create_dir_all(&library).expect("library");
        let file = library_marks_path(&marks_dir, &library);
        std::fs::write(&file, b"{ half a marks fi").expect("damaged");
        let mut view = MarksView::default();
        view.open(&marks_dir, Some((&library, &dir.path().join("i.likeness"))));
        let notices = settle(&mut view);
        assert!(
            matches!(notices.as_slice(), [MarksNotice::Error(text)] if text.contains("damaged")),
            "{notices:?}"
        );
        let mut aside = file.as_os_str().to_os_string();
        aside.push(".damaged");
        assert_eq!(
            std::fs::read(PathBuf::from(&aside)).expect("kept"),
            b"{ half a marks fi"
        );
        // New marks start afresh in the library's file; the damaged copy stays as it was.
        assert_eq!(view.set("q".into(), "p".into(), Some(true)), None);
        assert_eq!(settle(&mut view), Vec::new());
        assert_eq!(
            std::fs::read(PathBuf::from(&aside)).expect("kept"),
            b"{ half a marks fi"
        );
    }

    #[test]
    fn import_adds_marks_and_export_writes_them_back() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir_all(dir.path().join("marks")).expect("marks dir");
        let mut view = opened(dir.path());
        view.set("q".into(), "a".into(), Some(true));
        let exported = dir.path().join("shared.json");
        view.export(&exported);
        assert!(matches!(
            settle(&mut view).as_slice(),
            [MarksNotice::Info(_)]
        ));
        let other_dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir_all(other_dir.path().join("marks")).expect("marks dir");
        let mut other = opened(other_dir.path());
        other.import(&exported);
        assert!(matches!(
            settle(&mut other).as_slice(),
            [MarksNotice::Info(_)]
        ));
        assert_eq!(other.get(Path::new("q"), Path::new("a")), Some(true));
        assert!(!other.can_undo());
        let broken = dir.path().join("broken.json");
        std::fs::write(&broken, b"{ not json").expect("write");
        other.import(&broken);
        assert!(matches!(
            settle(&mut other).as_slice(),
            [MarksNotice::Error(_)]
        ));
    }
}
