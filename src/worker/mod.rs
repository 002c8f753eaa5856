//! The worker thread: it owns the current model and index and runs one job at a time.
//!
//! The window sends [`Request`]s through [`WorkerHandle::send`], which answers with the
//! job's [`JobId`], and drains [`Event`]s naming that job (see [`protocol`]). A job
//! borrows the current model and index and replaces one only when it succeeds: a job that
//! fails, is cancelled or panics inside libtorch leaves both as they were, and after every
//! job the worker sends a [`Snapshot`] of them. Both channels are bounded.

mod indexing;
pub mod protocol;
mod searching;
mod sorting;
mod training;

use indexing::{index_summary, modified};
use searching::marked_ranks;

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

pub use protocol::{
    Command, CurrentModel, DuplicateExport, Event, HeldOutScore, IndexSummary, JobId, JobKind,
    KeptTraining, Outcome, Progress, Query, Request, Snapshot,
};

use crate::engine::EngineError;
use crate::engine::atomic::write_atomic;
use crate::engine::collection::duplicates::{Candidates, copy_others, others_csv};
use crate::engine::collection::map::copy_photos;
use crate::engine::data::decode::{decode_rgb_bytes_sized, read_photo};
use crate::engine::data::{
    DEFAULT_MAX_PIXELS, TargetSize, scan_folder, scan_folder_excluding, shrink_to_fit,
};
use crate::engine::device::{DeviceChoice, describe, guard_libtorch};
use crate::engine::export::{ExportSource, export_results};
use crate::engine::feedback::refine::{Rocchio, refined_search};
use crate::engine::feedback::{
    FineTune, Marks, class_loss_temperature, fine_tune, save_fine_tuned,
};
use crate::engine::files::OutputKind;
use crate::engine::index::{
    FolderDiff, Gallery, IndexOptions, SearchSession, embed_image, index_bytes_estimate,
};
use crate::engine::model::pretrained::{
    download_weights, find_lite0_weights, imagenet_feature_model, lite0_feature_model,
};
use crate::engine::model::{LoadedModel, load_model, model_file_bytes_estimate};
use crate::engine::output::check_output;
use crate::engine::projection::EmbeddingMap;
use crate::engine::sort;
use crate::engine::train::save_run;
use crate::engine::train::{TrainJob, train};

/// Commands can queue this deep before `send` refuses.
const COMMAND_CAPACITY: usize = 16;
/// Longest side of the query preview sent with results.
const QUERY_PREVIEW_PX: u32 = 320;
/// Events waiting for the UI; training steps block here when the UI is far behind.
const EVENT_CAPACITY: usize = 4096;
/// How often a job that answers searches meanwhile looks for them.
const ANSWER_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// How soon the window should show what the worker just sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// A job started or ended: show it now.
    Now,
    /// A job made progress: show it at the window's progress rate.
    Progress,
}

/// Which job may be cancelled, and which queued jobs were cancelled before they began.
#[derive(Default)]
struct Cancellation {
    running: Option<(JobId, Arc<AtomicBool>)>,
    before_start: HashSet<JobId>,
    shutting_down: bool,
}

/// The window's end of the worker.
pub struct WorkerHandle {
    commands: Sender<Command>,
    pub events: Receiver<Event>,
    cancellation: Arc<Mutex<Cancellation>>,
    next_job: AtomicU64,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WorkerHandle {
    /// Starts the worker. `wake` is called after events are sent, with how soon the
    /// window should look (the app requests a repaint: at once for a job's start and end,
    /// at a bounded rate for progress, so a fast job never makes the window repaint
    /// hundreds of times a second).
    pub fn spawn(wake: impl Fn(Wake) + Send + Sync + 'static) -> Self {
        Self::spawn_on(wake, None)
    }

    /// Starts the worker on a given device (`None`: the GPU when libtorch sees one).
    pub fn spawn_on(
        wake: impl Fn(Wake) + Send + Sync + 'static,
        device: Option<tch::Device>,
    ) -> Self {
        let (command_sender, command_receiver) = crossbeam_channel::bounded(COMMAND_CAPACITY);
        let (event_sender, event_receiver) = crossbeam_channel::bounded(EVENT_CAPACITY);
        let cancellation = Arc::new(Mutex::new(Cancellation::default()));
        let worker_cancellation = Arc::clone(&cancellation);
        let thread = std::thread::Builder::new()
            .name("likeness-worker".into())
            .spawn(move || {
                let mut worker = Worker {
                    commands: command_receiver,
                    deferred: VecDeque::new(),
                    events: event_sender,
                    wake: Arc::new(wake),
                    cancellation: worker_cancellation,
                    device: device.unwrap_or_else(tch::Device::cuda_if_available),
                    model: None,
                    index: None,
                };
                worker.run();
            })
            .ok();
        Self {
            commands: command_sender,
            events: event_receiver,
            cancellation,
            next_job: AtomicU64::new(1),
            thread,
        }
    }

    /// Queues a request and returns the id its events will carry. Fails when the queue
    /// is full or the worker has stopped.
    pub fn send(&self, request: Request) -> Result<JobId, String> {
        let job = JobId(self.next_job.fetch_add(1, Ordering::Relaxed));
        self.commands
            .try_send(Command { job, request })
            .map(|()| job)
            .map_err(|error| match error {
                TrySendError::Full(_) => {
                    "Likeness is still busy with earlier requests; try again in a moment".into()
                }
                TrySendError::Disconnected(_) => {
                    "the background worker stopped unexpectedly; restart Likeness".into()
                }
            })
    }

    /// Asks `job` to stop: the running one stops at its next check (training keeps its
    /// model), a queued one never starts. Other jobs are not touched.
    pub fn cancel(&self, job: JobId) {
        let mut state = self
            .cancellation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match &state.running {
            Some((running, flag)) if *running == job => flag.store(true, Ordering::Relaxed),
            _ => {
                state.before_start.insert(job);
            }
        }
    }

    /// Whether the worker thread is still alive.
    pub fn is_alive(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl Drop for WorkerHandle {
    /// Stops the running job and waits for the worker, so no libtorch work is still running
    /// while the process exits (libtorch's static destructors would race with it).
    fn drop(&mut self) {
        {
            let mut state = self
                .cancellation
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            state.shutting_down = true;
            if let Some((_, flag)) = &state.running {
                flag.store(true, Ordering::Relaxed);
            }
        }
        // Closing both channels: the worker sees the UI is gone at its next job and stops,
        // even with commands still queued.
        let (closed_sender, _) = crossbeam_channel::bounded(0);
        self.commands = closed_sender;
        let (_, closed_receiver) = crossbeam_channel::bounded(0);
        self.events = closed_receiver;
        if let Some(thread) = self.thread.take() {
            thread.join().ok();
        }
    }
}

/// An index in memory with the model that built it (search embeds with that model).
struct OpenIndex {
    path: PathBuf,
    gallery: Gallery,
    model: Rc<LoadedModel>,
    /// Photos of its folder added, changed or removed since it was written, as found
    /// when it was opened.
    out_of_date: usize,
    /// Its distance scale ([`Gallery::typical_neighbour_distance`]), found once.
    typical_distance: Option<f32>,
}

impl OpenIndex {
    fn new(path: PathBuf, mut gallery: Gallery, model: Rc<LoadedModel>) -> Self {
        Self {
            path,
            typical_distance: gallery.typical_neighbour_distance(),
            gallery,
            model,
            out_of_date: 0,
        }
    }
}

struct Worker {
    commands: Receiver<Command>,
    /// Commands taken from the queue while a job answered searches, in their order:
    /// they run next, before anything newer.
    deferred: VecDeque<Command>,
    events: Sender<Event>,
    wake: Arc<dyn Fn(Wake) + Send + Sync>,
    cancellation: Arc<Mutex<Cancellation>>,
    device: tch::Device,
    /// The current model: trained, opened, or the one of the opened index.
    model: Option<Rc<LoadedModel>>,
    /// The current index.
    index: Option<OpenIndex>,
}

impl Worker {
    fn emit(&self, event: Event) {
        // A send error means the UI is gone; the command loop then ends on its own.
        self.events.send(event).ok();
        (self.wake)(Wake::Now);
    }

    fn run(&mut self) {
        self.emit(Event::Device(describe(self.device)));
        while let Some(Command { job, request }) = self
            .deferred
            .pop_front()
            .or_else(|| self.commands.recv().ok())
        {
            let kind = request.kind();
            let Some(cancel) = self.begin(job) else {
                self.emit(Event::Cancelled { job, kind });
                self.emit(Event::Current(self.snapshot()));
                continue;
            };
            if self.events.send(Event::Started { job, kind }).is_err() {
                break; // the window is gone
            }
            (self.wake)(Wake::Now);
            let end = guard_libtorch(|| self.execute(job, request, &cancel)).and_then(|r| r);
            self.cancellation
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .running = None;
            match end {
                Ok(outcome) => self.emit(Event::Finished {
                    job,
                    outcome: Box::new(outcome),
                }),
                Err(EngineError::Cancelled) => {
                    self.emit(Event::Cancelled { job, kind });
                }
                Err(error) => self.emit(Event::Failed {
                    job,
                    kind,
                    message: error.to_string(),
                }),
            }
            self.emit(Event::Current(self.snapshot()));
            crate::engine::device::release_free_memory();
        }
    }

    /// Registers `job` as running and returns its cancel flag, or `None` when it was
    /// cancelled before it began (or the window is closing).
    fn begin(&self, job: JobId) -> Option<Arc<AtomicBool>> {
        let mut state = self
            .cancellation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if state.before_start.remove(&job) || state.shutting_down {
            return None;
        }
        let flag = Arc::new(AtomicBool::new(false));
        state.running = Some((job, Arc::clone(&flag)));
        Some(flag)
    }

    /// What is current, for the window.
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            model: self.model.as_ref().map(|loaded| CurrentModel {
                path: loaded.path.clone(),
                info: Box::new(loaded.info.clone()),
                modified: modified(&loaded.path),
                resumable: crate::engine::train::resume::state_path(&loaded.path).is_file(),
            }),
            index: self.index.as_ref().map(index_summary),
        }
    }

    /// Runs `work` on a thread of its own and, until it ends, answers the searches that
    /// arrive from the current model and index, which `work` cannot touch. Any other
    /// command, and every search after it, waits for its turn in order.
    fn answering_searches_while<T: Send>(
        &mut self,
        work: impl FnOnce() -> Result<T, EngineError> + Send,
    ) -> Result<T, EngineError> {
        std::thread::scope(|scope| {
            let handle = std::thread::Builder::new()
                .name("likeness-job".into())
                .spawn_scoped(scope, move || guard_libtorch(work).and_then(|r| r))
                .map_err(|e| EngineError::Device(format!("could not start a thread: {e}")))?;
            while !handle.is_finished() {
                match self.commands.recv_timeout(ANSWER_POLL) {
                    Ok(command) => self.answer_meanwhile(command),
                    Err(RecvTimeoutError::Timeout) => {}
                    // The window is gone; the job ends on its cancel flag.
                    Err(RecvTimeoutError::Disconnected) => std::thread::sleep(ANSWER_POLL),
                }
            }
            handle.join().unwrap_or_else(|_| {
                Err(EngineError::Device(
                    "the job's thread stopped unexpectedly".into(),
                ))
            })
        })
    }

    /// A command that arrived while a job runs: a search is answered now (without
    /// Started, so the window keeps showing the running job), anything else waits.
    fn answer_meanwhile(&mut self, command: Command) {
        let is_search = matches!(
            command.request,
            Request::Search { .. } | Request::Refine { .. }
        );
        if !is_search || !self.deferred.is_empty() {
            self.deferred.push_back(command);
            return;
        }
        let Command { job, request } = command;
        let kind = request.kind();
        let cancelled = self
            .cancellation
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .before_start
            .remove(&job);
        if cancelled {
            self.emit(Event::Cancelled { job, kind });
            return;
        }
        let answered = guard_libtorch(|| match request {
            Request::Search { query, k } => self.search(query, k),
            Request::Refine {
                query,
                vector,
                marks,
                k,
            } => self.refine(query, &vector, &marks, k),
            other => Err(EngineError::Config(format!(
                "{} cannot run beside another job",
                other.kind().label()
            ))),
        })
        .and_then(|r| r);
        self.emit(match answered {
            Ok(outcome) => Event::Finished {
                job,
                outcome: Box::new(outcome),
            },
            Err(error) => Event::Failed {
                job,
                kind,
                message: error.to_string(),
            },
        });
    }

    fn execute(
        &mut self,
        job: JobId,
        request: Request,
        cancel: &AtomicBool,
    ) -> Result<Outcome, EngineError> {
        let outcome = match request {
            Request::ScanLibrary(folder) => {
                Outcome::LibraryScanned(scan_folder(&folder, DEFAULT_MAX_PIXELS)?)
            }
            Request::Train {
                job: training,
                model_path,
            } => return self.train(job, *training, model_path, cancel),
            Request::OpenModel(path) => {
                let (model, info) = load_model(&path, self.device)?;
                self.model = Some(Rc::new(LoadedModel {
                    path: path.clone(),
                    model,
                    info,
                }));
                Outcome::ModelOpened(path)
            }
            Request::BuildIndex {
                folder,
                index_path,
                exclude,
            } => {
                return self.build_index(job, &folder, &index_path, &exclude, cancel);
            }
            Request::OpenIndex(path) => self.open_index(path)?,
            Request::UpdateIndex => return self.update_index(job, cancel),
            Request::Search { query, k } => self.search(query, k)?,
            Request::Refine {
                query,
                vector,
                marks,
                k,
            } => self.refine(query, &vector, &marks, k)?,
            Request::Export {
                query,
                hits,
                folder,
            } => {
                let Some(open) = self.index.as_ref() else {
                    return Err(EngineError::Config(
                        "there is no index to export from".into(),
                    ));
                };
                let source = ExportSource {
                    folder: &open.gallery.header.folder,
                    index: Some(&open.path),
                };
                let report = export_results(Path::new(&query), &hits, &folder, &source)?;
                Outcome::Exported { folder, report }
            }
            Request::FindDuplicates => {
                let Some(open) = self.index.as_mut() else {
                    return Err(EngineError::Config(
                        "there is no index to look for duplicates in: index a folder first".into(),
                    ));
                };
                let progress = progress_reporter(&self.events, &*self.wake, job);
                let candidates =
                    Candidates::find(&mut open.gallery, &|p| progress(p.into()), cancel)?;
                Outcome::Duplicates {
                    index: open.path.clone(),
                    candidates: Arc::new(candidates),
                }
            }
            Request::DrawMap { method } => {
                let Some(open) = self.index.as_mut() else {
                    return Err(EngineError::Config(
                        "there is no index to draw: index a folder first".into(),
                    ));
                };
                let progress = progress_reporter(&self.events, &*self.wake, job);
                let map =
                    EmbeddingMap::of_gallery(&mut open.gallery, method, cancel, &mut |forming| {
                        progress(Progress::MapForming {
                            epoch: forming.epoch,
                            epochs: forming.epochs,
                            map: Arc::new(forming.map.clone()),
                        })
                    })?;
                Outcome::Map {
                    index: open.path.clone(),
                    map: Arc::new(map),
                }
            }
            Request::FineTune {
                marks,
                seconds,
                model_path,
            } => return self.fine_tune(job, &marks, seconds, &model_path, cancel),
            Request::PlanSort {
                inbox,
                min_confidence,
                second_opinion,
                new_kinds,
            } => {
                return self.plan_sort(
                    job,
                    &inbox,
                    min_confidence,
                    second_opinion,
                    new_kinds,
                    cancel,
                );
            }
            Request::FileSort {
                inbox,
                choices,
                mode,
                journals,
            } => return self.file_sort(job, &inbox, &choices, mode, &journals, cancel),
            Request::UndoSort { journal } => return self.undo_sort(job, &journal),
            Request::DiskUse { folder } => Outcome::ModelsFolder {
                kept: crate::engine::train::kept::kept_files(&folder)?,
                removed: None,
            },
            Request::RemoveOldStates { folder, keep } => {
                let removed = crate::engine::train::kept::remove_old_states(&folder, &keep)?;
                Outcome::ModelsFolder {
                    kept: crate::engine::train::kept::kept_files(&folder)?,
                    removed: Some(removed),
                }
            }
            Request::CopyPhotos { paths, folder } => {
                let count = copy_photos(&paths, &folder)?;
                Outcome::PhotosCopied { count, folder }
            }
            Request::ExportDuplicates { others, to } => export_duplicates(others, to)?,
            Request::UseImagenetFeatures { source, model_path } => {
                self.use_imagenet_features(job, &source, model_path, cancel)?
            }
            Request::DownloadWeights(source) => {
                let progress = progress_reporter(&self.events, &*self.wake, job);
                let report = download_weights(&source, cancel, &|p| progress(p.into()))?;
                Outcome::WeightsReady {
                    path: source.cache_path,
                    tensors: report.loaded,
                }
            }
        };
        Ok(outcome)
    }
}

/// Writes the list of the duplicates not kept (CSV or JSON), or copies them to a folder.
fn export_duplicates(
    others: Vec<crate::engine::collection::duplicates::OtherCopy>,
    to: DuplicateExport,
) -> Result<Outcome, EngineError> {
    match &to {
        DuplicateExport::Csv(path) => {
            write_atomic(path, others_csv(&others).as_bytes())?;
        }
        DuplicateExport::Json(path) => {
            let json = serde_json::to_vec_pretty(&others)
                .map_err(|e| EngineError::Config(e.to_string()))?;
            write_atomic(path, &json)?;
        }
        DuplicateExport::CopyTo(folder) => {
            copy_others(&others, folder)?;
        }
    }
    Ok(Outcome::DuplicatesExported {
        count: others.len(),
        to,
    })
}

/// Sends a job's progress and wakes the window (callable from the engine's loader
/// threads). Borrows only the channel and the waker, so the job can still change the
/// worker's current model and index.
fn progress_reporter<'a>(
    events: &'a Sender<Event>,
    wake: &'a (dyn Fn(Wake) + Send + Sync),
    job: JobId,
) -> impl Fn(Progress) + Sync + 'a {
    move |progress| {
        events.send(Event::Progress { job, progress }).ok();
        wake(Wake::Progress);
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::engine::synthetic::{write_dataset, write_tiny_model};
    use crate::engine::train::{Preset, TrainEvent};

    fn tiny_model_file(path: &Path) {
        write_tiny_model(path).expect("tiny model");
    }

    /// Sends `request` and returns every event of that job, up to and including the
    /// snapshot that follows it.
    fn run_job(worker: &WorkerHandle, request: Request) -> (JobId, Vec<Event>, Snapshot) {
        let job = worker.send(request).expect("send");
        collect(worker, job)
    }

    fn collect(worker: &WorkerHandle, job: JobId) -> (JobId, Vec<Event>, Snapshot) {
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut events = Vec::new();
        let mut ended = false;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let event = worker
                .events
                .recv_timeout(remaining)
                .expect("an event in time");
            match &event {
                Event::Finished { job: j, .. }
                | Event::Failed { job: j, .. }
                | Event::Cancelled { job: j, .. }
                    if *j == job =>
                {
                    ended = true;
                }
                Event::Current(snapshot) if ended => return (job, events, snapshot.clone()),
                _ => {}
            }
            events.push(event);
        }
    }

    fn failed(events: &[Event]) -> Option<String> {
        events.iter().find_map(|e| match e {
            Event::Failed { message, .. } => Some(message.clone()),
            _ => None,
        })
    }

    #[test]
    fn a_failed_or_cancelled_job_leaves_the_current_model_and_index_in_place() {
        let dir = tempfile::tempdir().expect("temp dir");
        let photos = dir.path().join("photos");
        write_dataset(&photos, 2, 3, 32, 1).expect("photos");
        let model_path = dir.path().join("model.safetensors");
        tiny_model_file(&model_path);
        let worker = WorkerHandle::spawn_on(|_| {}, Some(tch::Device::Cpu));

        let (_, _, opened) = run_job(&worker, Request::OpenModel(model_path.clone()));
        assert_eq!(
            opened.model.as_ref().map(|m| m.path.clone()),
            Some(model_path.clone())
        );
        let index_path = dir.path().join("photos.likeness-index");
        let (_, events, current) = run_job(
            &worker,
            Request::BuildIndex {
                folder: photos.clone(),
                index_path: index_path.clone(),
                exclude: Vec::new(),
            },
        );
        assert_eq!(failed(&events), None);
        assert_eq!(current.index.as_ref().map(|i| i.images), Some(6));

        // A missing folder: the model and the index are still there afterwards.
        let (_, events, after) = run_job(
            &worker,
            Request::BuildIndex {
                folder: dir.path().join("missing"),
                index_path: dir.path().join("missing.likeness-index"),
                exclude: Vec::new(),
            },
        );
        assert!(failed(&events).is_some_and(|m| m.contains("no such folder")));
        assert_eq!(after, current);
        // …and search still answers.
        let (_, events, _) = run_job(
            &worker,
            Request::Search {
                query: Query::File(photos.join("class_00/img_000.png")),
                k: 3,
            },
        );
        assert!(
            events.iter().any(|e| matches!(e, Event::Finished { outcome, .. } if matches!(**outcome, Outcome::Results { .. }))),
            "{events:?}"
        );

        // An unreadable model file.
        let garbage = dir.path().join("garbage.safetensors");
        std::fs::write(&garbage, b"not a model").expect("write");
        let (_, events, after) = run_job(&worker, Request::OpenModel(garbage));
        assert!(failed(&events).is_some());
        assert_eq!(after, current);

        // A corrupt index file.
        let corrupt = dir.path().join("corrupt.likeness-index");
        let bytes = std::fs::read(&index_path).expect("index");
        std::fs::write(&corrupt, &bytes[..bytes.len() / 2]).expect("write");
        let (_, events, after) = run_job(&worker, Request::OpenIndex(corrupt));
        assert!(failed(&events).is_some());
        assert_eq!(after, current);

        // Training cancelled before its first step produces no model.
        let mut settings = Preset::Scratch.settings();
        settings.image_size_px = 32;
        settings.epochs = Some(50);
        let job = worker
            .send(Request::Train {
                job: Box::new(TrainJob::new(photos.clone(), settings)),
                model_path: dir.path().join("cancelled.safetensors"),
            })
            .expect("send");
        worker.cancel(job);
        let (_, events, after) = collect(&worker, job);
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::Cancelled { job: j, .. } if *j == job)),
            "{events:?}"
        );
        assert_eq!(after, current);
        assert!(!dir.path().join("cancelled.safetensors").exists());

        // Issue #22 item 4 in the window: a model that cannot be written is refused before
        // training, not after the budget (a file stands where its folder would be).
        let blocker = dir.path().join("not-a-folder");
        std::fs::write(&blocker, b"x").expect("write");
        let mut settings = Preset::Scratch.settings();
        settings.image_size_px = 32;
        settings.epochs = Some(50);
        let (_, events, after) = run_job(
            &worker,
            Request::Train {
                job: Box::new(TrainJob::new(photos.clone(), settings)),
                model_path: blocker.join("model.safetensors"),
            },
        );
        assert!(
            failed(&events).is_some_and(|m| m.contains("cannot be written")),
            "{events:?}"
        );
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, Event::Progress { progress, .. } if matches!(progress, Progress::Training(TrainEvent::Step { .. })))),
            "it trained first"
        );
        assert_eq!(after, current);
    }

    /// Issue #25 item 3: the window decoded a query at a larger size than indexing did,
    /// so a phone JPEG with an EXIF preview embedded differently as a query than in the
    /// index.
    #[test]
    fn a_library_photo_with_an_exif_preview_finds_itself_at_distance_zero() {
        use image::imageops::{FilterType, resize};
        let dir = tempfile::tempdir().expect("temp dir");
        let photos = dir.path().join("photos");
        write_dataset(&photos, 2, 2, 32, 3).expect("photos");
        let mut rng = fastrand::Rng::with_seed(11);
        let pattern = crate::engine::synthetic::class_image(1, 3, 96, &mut rng);
        let picture = resize(&pattern, 2400, 1800, FilterType::Triangle);
        let encode = |image: &image::RgbImage, quality| {
            let mut bytes = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality)
                .encode_image(image)
                .expect("encode");
            bytes
        };
        let preview = encode(&resize(&picture, 160, 120, FilterType::Triangle), 75);
        let phone =
            crate::engine::synthetic::jpeg_with_exif_preview(&encode(&picture, 90), &preview, 1)
                .expect("fits");
        let photo = photos.join("class_00/phone.jpg");
        std::fs::write(&photo, phone).expect("write");
        let model_path = dir.path().join("model.safetensors");
        tiny_model_file(&model_path);
        let worker = WorkerHandle::spawn_on(|_| {}, Some(tch::Device::Cpu));
        run_job(&worker, Request::OpenModel(model_path));
        let (_, events, _) = run_job(
            &worker,
            Request::BuildIndex {
                folder: photos.clone(),
                index_path: dir.path().join("photos.likeness-index"),
                exclude: Vec::new(),
            },
        );
        assert_eq!(failed(&events), None);
        let (_, events, _) = run_job(
            &worker,
            Request::Search {
                query: Query::File(photo.clone()),
                k: 3,
            },
        );
        let hits = events
            .iter()
            .find_map(|e| match e {
                Event::Finished { outcome, .. } => match &**outcome {
                    Outcome::Results { hits, .. } => Some(hits.clone()),
                    _ => None,
                },
                _ => None,
            })
            .expect("results");
        assert_eq!(hits[0].path, std::fs::canonicalize(&photo).expect("path"));
        // Zero but for float rounding (the index embedded it in a batch, the query alone).
        assert!(hits[0].distance < 1e-9, "{hits:?}");
    }

    /// Issue #26 item 2: while a retrain from marks fine-tunes and embeds the library
    /// again, a search is answered at once from the index that is still current, and the
    /// retrained model and index replace them only at the end.
    #[test]
    fn searches_are_answered_from_the_current_index_while_a_retrain_runs() {
        let dir = tempfile::tempdir().expect("temp dir");
        let photos = dir.path().join("photos");
        write_dataset(&photos, 2, 6, 32, 1).expect("photos");
        let model_path = dir.path().join("model.safetensors");
        tiny_model_file(&model_path);
        let worker = WorkerHandle::spawn_on(|_| {}, Some(tch::Device::Cpu));
        run_job(&worker, Request::OpenModel(model_path.clone()));
        let (_, _, before) = run_job(
            &worker,
            Request::BuildIndex {
                folder: photos.clone(),
                index_path: dir.path().join("photos.likeness-index"),
                exclude: Vec::new(),
            },
        );
        let photo =
            |class: usize, i: usize| photos.join(format!("class_{class:02}/img_{i:03}.png"));
        let mut marks = Marks::default();
        marks.set(&photo(0, 0), &photo(0, 1), Some(true));
        marks.set(&photo(0, 0), &photo(1, 0), Some(false));
        let retrained_path = dir.path().join("marked.safetensors");
        let retrain = worker
            .send(Request::FineTune {
                marks,
                seconds: 3.0,
                model_path: retrained_path.clone(),
            })
            .expect("send");
        let search = worker
            .send(Request::Search {
                query: Query::File(photo(1, 2)),
                k: 3,
            })
            .expect("send");
        let (_, events, after) = collect(&worker, retrain);
        let ended = |job: JobId| {
            events.iter().position(|e| {
                matches!(e, Event::Finished { job: j, .. } | Event::Failed { job: j, .. } if *j == job)
            })
        };
        let searched = ended(search).expect("the search was answered during the retrain");
        let retrained = ended(retrain).expect("the retrain ended");
        assert!(searched < retrained, "{events:?}");
        assert!(matches!(
            &events[searched],
            Event::Finished { outcome, .. } if matches!(**outcome, Outcome::Results { .. })
        ));
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, Event::Started { job, .. } if *job == search)),
            "the window keeps showing the retrain as the running job"
        );
        assert!(
            events[..searched]
                .iter()
                .all(|e| !matches!(e, Event::Current(_))),
            "nothing current changed before the search was answered"
        );
        assert_eq!(failed(&events), None);
        // The retrain either replaced both (kept) or neither (refused by its check).
        let model_now = after.model.as_ref().map(|m| m.path.clone());
        if model_now == Some(retrained_path) {
            assert_ne!(after.index, before.index);
        } else {
            assert_eq!(after, before);
        }
    }

    #[test]
    fn cancel_stops_only_the_job_it_names() {
        let dir = tempfile::tempdir().expect("temp dir");
        let photos = dir.path().join("photos");
        write_dataset(&photos, 2, 3, 16, 2).expect("photos");
        let worker = WorkerHandle::spawn_on(|_| {}, Some(tch::Device::Cpu));
        let mut settings = Preset::Scratch.settings();
        settings.image_size_px = 16;
        settings.epochs = Some(3);
        let training = worker
            .send(Request::Train {
                job: Box::new(TrainJob::new(photos.clone(), settings)),
                model_path: dir.path().join("model.safetensors"),
            })
            .expect("send");
        // Queued behind the training, and cancelled before it starts.
        let scan = worker.send(Request::ScanLibrary(photos)).expect("send");
        worker.cancel(scan);
        let (_, events, current) = collect(&worker, training);
        let trained = events.iter().find_map(|e| match e {
            Event::Finished { job, outcome } if *job == training => match &**outcome {
                Outcome::Trained { summary, .. } => Some(summary.clone()),
                _ => None,
            },
            _ => None,
        });
        assert!(
            trained.is_some_and(|s| !s.cancelled && s.epochs == 3),
            "{events:?}"
        );
        assert!(current.model.is_some());
        let (_, events, _) = collect(&worker, scan);
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::Cancelled { job, .. } if *job == scan))
        );
    }
}
