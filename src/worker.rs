//! The worker thread: it owns the model and the index and runs one job at a time.
//!
//! The UI sends [`Command`]s and drains [`Event`]s; both channels are bounded. Long jobs
//! can be cancelled through [`WorkerHandle::cancel`] (a shared flag, because the worker
//! is busy and not reading commands while it trains). A job that fails, even by a
//! libtorch panic, becomes [`Event::Failed`] and the worker waits for the next command.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use serde::{Deserialize, Serialize};

use crate::engine::EngineError;
use crate::engine::data::{DEFAULT_MAX_PIXELS, ImageFolder, scan_folder};
use crate::engine::device::describe;
use crate::engine::eval::RetrievalReport;
use crate::engine::export::{ExportManifest, export_results};
use crate::engine::index::{Gallery, SearchHit, SearchSession};
use crate::engine::model::{ModelInfo, TrainingSummary, load_model, save_model};
use crate::engine::pretrained::{WeightsSource, download_weights};
use crate::engine::device::guard_libtorch;
use crate::engine::train::{TrainEvent, TrainJob, train};

/// Commands can queue this deep before `send` blocks the UI.
const COMMAND_CAPACITY: usize = 16;
/// Longest side of the query preview sent with results.
const QUERY_PREVIEW_PX: u32 = 320;
/// Events waiting for the UI; training steps block here when the UI is far behind.
const EVENT_CAPACITY: usize = 4096;

/// An image to search with.
#[derive(Debug, Clone)]
pub enum Query {
    /// A file on disk (opened or dropped).
    File(PathBuf),
    /// Pixels already decoded (the clipboard).
    Rgb {
        name: String,
        image: Arc<image::RgbImage>,
    },
}

impl Query {
    /// How the query is named in the window and in exports.
    pub fn label(&self) -> String {
        match self {
            Self::File(path) => path.display().to_string(),
            Self::Rgb { name, .. } => name.clone(),
        }
    }
}

/// What the UI asks the worker to do.
#[derive(Debug, Clone)]
pub enum Command {
    /// Scan a library folder: count images and classes, list skipped files.
    ScanLibrary(PathBuf),
    /// Train a model and write it to `model_path`; it becomes the current model.
    Train { job: TrainJob, model_path: PathBuf },
    /// Make the model file at this path the current model.
    OpenModel(PathBuf),
    /// Embed every image under `folder` with the current model and write `index_path`.
    BuildIndex {
        folder: PathBuf,
        index_path: PathBuf,
    },
    /// Open an index file and the model that built it.
    OpenIndex(PathBuf),
    /// Find the `k` nearest images of the current index.
    Search { query: Query, k: usize },
    /// Copy `hits` and a manifest into `folder`.
    Export {
        query: String,
        hits: Vec<SearchHit>,
        folder: PathBuf,
    },
    /// Download pretrained weights into their cache file (checked before they are kept).
    DownloadWeights(WeightsSource),
}

/// What the worker reports back.
#[derive(Debug, Clone)]
pub enum Event {
    /// The device jobs run on ("CPU (2 threads)" or the CUDA GPU's name).
    Device(String),
    /// A job started; `what` names it for the status bar.
    Busy { what: String },
    /// A library folder was scanned.
    LibraryScanned(ImageFolder),
    /// Progress of a training run.
    Training(TrainEvent),
    /// Training finished (completed, cancelled or stopped by its time budget) and the
    /// model was written.
    Trained {
        model_path: PathBuf,
        summary: TrainingSummary,
        validation: Option<Box<RetrievalReport>>,
    },
    /// A model is now current.
    ModelOpened { path: PathBuf, info: Box<ModelInfo> },
    /// Indexing progress: images done of total.
    Indexing { done: usize, total: usize },
    /// An index is now current.
    IndexOpened(Box<IndexSummary>),
    /// Results for a query, with the query shrunk for display (decoded here, not on the UI
    /// thread).
    Results {
        query: Query,
        preview: Arc<image::RgbImage>,
        hits: Vec<SearchHit>,
    },
    /// Results were exported.
    Exported(ExportManifest),
    /// Weights download progress in bytes (`total` when the server says).
    DownloadingWeights { done: u64, total: Option<u64> },
    /// Pretrained weights are downloaded, checked, and ready at `path`.
    WeightsReady { path: PathBuf, tensors: usize },
    /// A job failed; `message` says what to do. The worker is ready for the next job.
    Failed { job: String, message: String },
    /// The worker finished its job and waits for the next.
    Idle,
}

/// What the UI shows about the current index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexSummary {
    pub path: PathBuf,
    pub folder: PathBuf,
    pub images: usize,
    pub skipped: Vec<crate::engine::data::SkippedFile>,
    pub model_path: PathBuf,
}

/// The UI's end of the worker.
pub struct WorkerHandle {
    commands: Sender<Command>,
    pub events: Receiver<Event>,
    cancel: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WorkerHandle {
    /// Starts the worker. `wake` is called after events are sent (the app passes a
    /// closure that requests a repaint, so bursts of events merge into one frame).
    pub fn spawn(wake: impl Fn() + Send + Sync + 'static) -> Self {
        let (command_sender, command_receiver) = crossbeam_channel::bounded(COMMAND_CAPACITY);
        let (event_sender, event_receiver) = crossbeam_channel::bounded(EVENT_CAPACITY);
        let cancel = Arc::new(AtomicBool::new(false));
        let worker_cancel = Arc::clone(&cancel);
        let thread = std::thread::Builder::new()
            .name("likeness-worker".into())
            .spawn(move || {
                let mut worker = Worker {
                    events: event_sender,
                    wake: Box::new(wake),
                    cancel: worker_cancel,
                    device: tch::Device::Cpu,
                    session: None,
                    model: None,
                };
                worker.run(&command_receiver);
            })
            .ok();
        Self {
            commands: command_sender,
            events: event_receiver,
            cancel,
            thread,
        }
    }

    /// Queues a command. Fails when the queue is full or the worker has stopped.
    pub fn send(&self, command: Command) -> Result<(), String> {
        self.commands
            .try_send(command)
            .map_err(|error| match error {
                TrySendError::Full(_) => {
                    "Likeness is still busy with earlier requests; try again in a moment".into()
                }
                TrySendError::Disconnected(_) => {
                    "the background worker stopped unexpectedly; restart Likeness".into()
                }
            })
    }

    /// Asks the running job (training, indexing, a download) to stop; training keeps its
    /// model.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
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
        self.cancel.store(true, Ordering::Relaxed);
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

struct Worker {
    events: Sender<Event>,
    wake: Box<dyn Fn() + Send + Sync>,
    cancel: Arc<AtomicBool>,
    device: tch::Device,
    /// The open index with its model.
    session: Option<SearchSession>,
    /// The current model when no index is open for it yet.
    model: Option<(PathBuf, crate::engine::model::EmbeddingModel, ModelInfo)>,
}

impl Worker {
    fn emit(&self, event: Event) {
        // A send error means the UI is gone; the command loop then ends on its own.
        self.events.send(event).ok();
        (self.wake)();
    }

    fn run(&mut self, commands: &Receiver<Command>) {
        self.device = tch::Device::cuda_if_available();
        self.emit(Event::Device(describe(self.device)));
        for command in commands.iter() {
            let job = job_name(&command);
            if self.events.send(Event::Busy { what: job.clone() }).is_err() {
                break; // the window is gone
            }
            (self.wake)();
            // A cancel request belonged to the job before; this one starts fresh.
            self.cancel.store(false, Ordering::Relaxed);
            let outcome = guard_libtorch(|| self.execute(command)).and_then(|r| r);
            if let Err(error) = outcome {
                self.emit(Event::Failed {
                    job,
                    message: error.to_string(),
                });
            }
            self.emit(Event::Idle);
        }
    }

    fn execute(&mut self, command: Command) -> Result<(), EngineError> {
        match command {
            Command::ScanLibrary(folder) => {
                let scanned = scan_folder(&folder, DEFAULT_MAX_PIXELS)?;
                self.emit(Event::LibraryScanned(scanned));
            }
            Command::Train {
                mut job,
                model_path,
            } => {
                if job.settings.device == crate::engine::device::DeviceChoice::Auto {
                    job.settings.device = if self.device.is_cuda() {
                        crate::engine::device::DeviceChoice::Cuda
                    } else {
                        crate::engine::device::DeviceChoice::Cpu
                    };
                }
                let events = self.events.clone();
                let wake = &self.wake;
                let outcome = train(&job, &self.cancel, &|event| {
                    events.send(Event::Training(event)).ok();
                    wake();
                })?;
                let model_id = save_model(&model_path, &outcome.model, &outcome.summary)?;
                let info = ModelInfo {
                    format_version: crate::engine::model::MODEL_FORMAT_VERSION,
                    model_id,
                    config: outcome.model.config.clone(),
                    summary: outcome.summary.clone(),
                };
                self.emit(Event::Trained {
                    model_path: model_path.clone(),
                    summary: outcome.summary,
                    validation: outcome.validation.map(Box::new),
                });
                self.emit(Event::ModelOpened {
                    path: model_path.clone(),
                    info: Box::new(info.clone()),
                });
                self.model = Some((model_path, outcome.model, info));
            }
            Command::OpenModel(path) => {
                let (model, info) = load_model(&path, self.device)?;
                self.emit(Event::ModelOpened {
                    path: path.clone(),
                    info: Box::new(info.clone()),
                });
                self.model = Some((path, model, info));
            }
            Command::BuildIndex { folder, index_path } => {
                let (model_path, model, info) = self.take_current_model()?;
                let scanned = scan_folder(&folder, DEFAULT_MAX_PIXELS)?;
                if scanned.images.is_empty() {
                    self.model = Some((model_path, model, info));
                    return Err(EngineError::Dataset(format!(
                        "{}: no images found to index",
                        folder.display()
                    )));
                }
                let events = self.events.clone();
                let wake = &self.wake;
                let built = Gallery::build(
                    &model,
                    &info,
                    &model_path,
                    &scanned,
                    DEFAULT_MAX_PIXELS,
                    &|done, total| {
                        events.send(Event::Indexing { done, total }).ok();
                        wake();
                    },
                    &self.cancel,
                )
                .and_then(|gallery| gallery.save(&index_path).map(|()| gallery));
                match built {
                    Ok(gallery) => {
                        self.emit(Event::IndexOpened(Box::new(index_summary(
                            &index_path,
                            &gallery,
                        ))));
                        self.session = Some(SearchSession {
                            gallery,
                            model,
                            model_info: info,
                            model_path,
                            max_pixels: DEFAULT_MAX_PIXELS,
                        });
                    }
                    Err(error) => {
                        self.model = Some((model_path, model, info));
                        return Err(error);
                    }
                }
            }
            Command::OpenIndex(path) => {
                let session = SearchSession::open(&path, None, self.device)?;
                self.emit(Event::ModelOpened {
                    path: session.model_path.clone(),
                    info: Box::new(session.model_info.clone()),
                });
                self.emit(Event::IndexOpened(Box::new(index_summary(
                    &path,
                    &session.gallery,
                ))));
                self.model = None;
                self.session = Some(session);
            }
            Command::Search { query, k } => {
                let Some(session) = self.session.as_mut() else {
                    return Err(EngineError::Config(
                        "there is no index yet: train or open a model, then index a folder".into(),
                    ));
                };
                let decoded;
                let image: &image::RgbImage = match &query {
                    Query::File(path) => {
                        decoded = crate::engine::data::decode_rgb(path, DEFAULT_MAX_PIXELS)
                            .map_err(|reason| EngineError::Image {
                                path: path.clone(),
                                reason,
                            })?;
                        &decoded
                    }
                    Query::Rgb { image, .. } => image,
                };
                let hits = session.search_image(image, k)?;
                let preview = Arc::new(crate::engine::data::shrink_to_fit(image, QUERY_PREVIEW_PX));
                self.emit(Event::Results {
                    query,
                    preview,
                    hits,
                });
            }
            Command::Export {
                query,
                hits,
                folder,
            } => {
                let manifest = export_results(Path::new(&query), &hits, &folder)?;
                self.emit(Event::Exported(manifest));
            }
            Command::DownloadWeights(source) => {
                let events = self.events.clone();
                let wake = &self.wake;
                let report = match download_weights(&source, &self.cancel, &|done, total| {
                    events.send(Event::DownloadingWeights { done, total }).ok();
                    wake();
                }) {
                    Ok(report) => report,
                    // The person asked for it; the UI already said so, and nothing was kept.
                    Err(EngineError::Cancelled) => return Ok(()),
                    Err(error) => return Err(error),
                };
                self.emit(Event::WeightsReady {
                    path: source.cache_path,
                    tensors: report.loaded,
                });
            }
        }
        Ok(())
    }

    /// The current model, from the open index when there is one.
    fn take_current_model(
        &mut self,
    ) -> Result<(PathBuf, crate::engine::model::EmbeddingModel, ModelInfo), EngineError> {
        if let Some(model) = self.model.take() {
            return Ok(model);
        }
        if let Some(session) = self.session.take() {
            return Ok((session.model_path, session.model, session.model_info));
        }
        Err(EngineError::Config(
            "there is no model yet: train one or open a model file".into(),
        ))
    }
}

fn index_summary(path: &Path, gallery: &Gallery) -> IndexSummary {
    IndexSummary {
        path: path.to_path_buf(),
        folder: gallery.header.folder.clone(),
        images: gallery.len(),
        skipped: gallery.header.skipped.clone(),
        model_path: gallery.header.model_path.clone(),
    }
}

fn job_name(command: &Command) -> String {
    match command {
        Command::ScanLibrary(_) => "scanning the library",
        Command::Train { .. } => "training",
        Command::OpenModel(_) => "opening the model",
        Command::BuildIndex { .. } => "indexing",
        Command::OpenIndex(_) => "opening the index",
        Command::Search { .. } => "searching",
        Command::Export { .. } => "exporting",
        Command::DownloadWeights(_) => "downloading the weights",
    }
    .to_string()
}
