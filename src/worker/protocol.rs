//! What the window and the worker say to each other.
//!
//! The window sends a [`Request`]; the worker gives it a [`JobId`] and reports every step
//! of that job as an [`Event`] naming it: started, progress, finished, failed or
//! cancelled. After every job it sends a [`Snapshot`] of what is current (model, index),
//! which is the only copy the window shows.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::engine::collection::duplicates::{Candidates, OtherCopy};
use crate::engine::data::{ImageFolder, SkippedFile};
use crate::engine::eval::RetrievalReport;
use crate::engine::export::ExportReport;
use crate::engine::feedback::Marks;
use crate::engine::index::{IndexChanges, SearchHit};
use crate::engine::model::ModelInfo;
use crate::engine::model::pretrained::WeightsSource;
use crate::engine::progress;
use crate::engine::projection::{EmbeddingMap, MapMethod};
use crate::engine::run::FineTuneSummary;
use crate::engine::run::TrainingSummary;
use crate::engine::sort::{FileMode, FilingReport, SortPlan, UndoReport};
use crate::engine::train::{BeforeAfter, TrainEvent, TrainJob};
pub use crate::engine::train::{HeldOutScore, KeptTraining};

/// Names one job from the request that started it to its last event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub u64);

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "job {}", self.0)
    }
}

/// What kind of work a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    ScanLibrary,
    Train,
    OpenModel,
    BuildIndex,
    OpenIndex,
    UpdateIndex,
    Search,
    Export,
    DownloadWeights,
    PrepareImagenet,
    FindDuplicates,
    ExportDuplicates,
    DrawMap,
    CopyPhotos,
    FineTune,
    PlanSort,
    FileSort,
    UndoSort,
    ModelsFolder,
}

impl JobKind {
    /// How the window names the job ("training", "indexing", …).
    pub fn label(self) -> &'static str {
        match self {
            Self::ScanLibrary => "scanning the library",
            Self::Train => "training",
            Self::OpenModel => "opening the model",
            Self::BuildIndex => "indexing",
            Self::OpenIndex => "opening the index",
            Self::UpdateIndex => "updating the index",
            Self::Search => "searching",
            Self::Export => "exporting",
            Self::DownloadWeights => "downloading the weights",
            Self::PrepareImagenet => "preparing the ImageNet model",
            Self::FindDuplicates => "finding near-duplicates",
            Self::ExportDuplicates => "exporting the duplicate list",
            Self::DrawMap => "drawing the map",
            Self::CopyPhotos => "copying photos",
            Self::FineTune => "retraining with your marks",
            Self::PlanSort => "looking at the inbox",
            Self::FileSort => "filing photos",
            Self::UndoSort => "undoing the last sort",
            Self::ModelsFolder => "looking at the models folder",
        }
    }
}

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

/// The same query: the same file, or the very same pasted pixels (compared by identity,
/// not pixel by pixel).
impl PartialEq for Query {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::File(a), Self::File(b)) => a == b,
            (
                Self::Rgb { name, image },
                Self::Rgb {
                    name: other_name,
                    image: other_image,
                },
            ) => name == other_name && Arc::ptr_eq(image, other_image),
            _ => false,
        }
    }
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

/// What the window asks the worker to do.
#[derive(Debug, Clone)]
pub enum Request {
    /// Scan a library folder: count images and classes, list skipped files.
    ScanLibrary(PathBuf),
    /// Train a model and write it to `model_path`; on success it becomes the current model.
    Train {
        job: Box<TrainJob>,
        model_path: PathBuf,
    },
    /// Make the model file at this path the current model.
    OpenModel(PathBuf),
    /// Embed every image under `folder` with the current model and write `index_path`;
    /// on success it becomes the current index.
    BuildIndex {
        folder: PathBuf,
        index_path: PathBuf,
        /// Glob patterns left out of the folder (see `scan_folder_excluding`).
        exclude: Vec<String>,
    },
    /// Open an index file and the model that built it; on success both become current.
    OpenIndex(PathBuf),
    /// Bring the current index up to date with its folder: embed new and changed photos,
    /// drop deleted ones, and write it back in place (atomically).
    UpdateIndex,
    /// Find the `k` nearest images of the current index.
    Search { query: Query, k: usize },
    /// Search again for `query`, whose embedding is `vector`, refined by the person's
    /// marks on its results (each marked photo, and whether it is alike); no marks give
    /// the plain results. No retraining: it takes a search's time.
    Refine {
        query: Query,
        vector: Arc<Vec<f32>>,
        marks: Vec<(PathBuf, bool)>,
        k: usize,
    },
    /// Copy `hits` and a manifest into `folder`.
    Export {
        query: String,
        hits: Vec<SearchHit>,
        folder: PathBuf,
    },
    /// Download pretrained weights into their cache file (checked before they are kept).
    DownloadWeights(WeightsSource),
    /// Make the ImageNet feature model (downloading its weights first if needed) and make
    /// it the current model: search without training.
    UseImagenetFeatures {
        source: WeightsSource,
        model_path: PathBuf,
    },
    /// Find the near-duplicate pairs of the current index (groups are made from them in
    /// the window, at whatever threshold the person picks).
    FindDuplicates,
    /// Write the list of photos not kept (CSV or JSON) or copy them to a folder. Nothing
    /// is deleted or moved.
    ExportDuplicates {
        others: Vec<OtherCopy>,
        to: DuplicateExport,
    },
    /// Place the current index's photos on a plane by `method`, with likely-mislabelled
    /// marks; a UMAP map is reported as it forms.
    DrawMap { method: MapMethod },
    /// Copy photos (a selection on the map) into `folder`, with a `photos.csv` list.
    CopyPhotos {
        paths: Vec<PathBuf>,
        folder: PathBuf,
    },
    /// Fine-tune the current model from `marks` for `seconds`, write it to `model_path`
    /// (the current model file is kept), make it current, and embed the current index's
    /// folder with it again (the index is rewritten in place, so its marks stay with it).
    FineTune {
        marks: Marks,
        seconds: f64,
        model_path: PathBuf,
    },
    /// Suggest a folder of the current index's library for every photo of `inbox`, with
    /// the model's second opinion from the shipped ImageNet network when
    /// `second_opinion`, and a new kind looked for in the inbox when `new_kinds`.
    PlanSort {
        inbox: PathBuf,
        min_confidence: f64,
        second_opinion: bool,
        new_kinds: bool,
    },
    /// File each photo into its folder of the current index's library, then bring the
    /// index up to date.
    FileSort {
        /// The inbox the photos are filed from (the plan's).
        inbox: PathBuf,
        choices: Vec<(PathBuf, String)>,
        mode: FileMode,
        /// The folder of sort journals: the worker makes it if needed and writes a new
        /// journal in it (Undo reverses it).
        journals: PathBuf,
    },
    /// Reverse the sort `journal` records, then bring the index up to date.
    UndoSort { journal: PathBuf },
    /// Say what the models folder keeps (models and training states, with their sizes).
    DiskUse { folder: PathBuf },
    /// Remove the training states of the folder's models other than `keep` (the models
    /// that can still go on training), then say what the folder keeps.
    RemoveOldStates { folder: PathBuf, keep: Vec<PathBuf> },
}

/// Where the list of duplicates not kept goes.
#[derive(Debug, Clone, PartialEq)]
pub enum DuplicateExport {
    Csv(PathBuf),
    Json(PathBuf),
    /// Copies of the photos, into this folder.
    CopyTo(PathBuf),
}

impl DuplicateExport {
    pub fn path(&self) -> &std::path::Path {
        match self {
            Self::Csv(path) | Self::Json(path) | Self::CopyTo(path) => path,
        }
    }
}

impl Request {
    pub fn kind(&self) -> JobKind {
        match self {
            Self::ScanLibrary(_) => JobKind::ScanLibrary,
            Self::Train { .. } => JobKind::Train,
            Self::OpenModel(_) => JobKind::OpenModel,
            Self::BuildIndex { .. } => JobKind::BuildIndex,
            Self::OpenIndex(_) => JobKind::OpenIndex,
            Self::UpdateIndex => JobKind::UpdateIndex,
            Self::Search { .. } | Self::Refine { .. } => JobKind::Search,
            Self::Export { .. } => JobKind::Export,
            Self::DownloadWeights(_) => JobKind::DownloadWeights,
            Self::UseImagenetFeatures { .. } => JobKind::PrepareImagenet,
            Self::FindDuplicates => JobKind::FindDuplicates,
            Self::ExportDuplicates { .. } => JobKind::ExportDuplicates,
            Self::DrawMap { .. } => JobKind::DrawMap,
            Self::CopyPhotos { .. } => JobKind::CopyPhotos,
            Self::FineTune { .. } => JobKind::FineTune,
            Self::PlanSort { .. } => JobKind::PlanSort,
            Self::FileSort { .. } => JobKind::FileSort,
            Self::UndoSort { .. } => JobKind::UndoSort,
            Self::DiskUse { .. } | Self::RemoveOldStates { .. } => JobKind::ModelsFolder,
        }
    }
}

/// A request with the id the worker reports it under.
#[derive(Debug, Clone)]
pub struct Command {
    pub job: JobId,
    pub request: Request,
}

/// How far a long job has come.
#[derive(Debug, Clone)]
pub enum Progress {
    Training(TrainEvent),
    /// Images embedded of total.
    Indexing {
        done: usize,
        total: usize,
    },
    /// Bytes downloaded (`total` when the server says).
    Downloading {
        done: u64,
        total: Option<u64>,
    },
    /// Seconds of a fine-tuning budget spent.
    FineTuning {
        done_secs: u64,
        total_secs: u64,
    },
    /// Photos compared with their nearest ones, of total (finding duplicates).
    Comparing {
        done: usize,
        total: usize,
    },
    /// The map as it forms: after `epoch` of `epochs`, every photo's place so far.
    MapForming {
        epoch: usize,
        epochs: usize,
        map: Arc<EmbeddingMap>,
    },
}

impl From<progress::Embedding> for Progress {
    fn from(p: progress::Embedding) -> Self {
        Self::Indexing {
            done: p.done,
            total: p.total,
        }
    }
}

impl From<progress::Comparing> for Progress {
    fn from(p: progress::Comparing) -> Self {
        Self::Comparing {
            done: p.done,
            total: p.total,
        }
    }
}

impl From<progress::Downloading> for Progress {
    fn from(p: progress::Downloading) -> Self {
        Self::Downloading {
            done: p.bytes,
            total: p.total_bytes,
        }
    }
}

impl From<progress::FineTuning> for Progress {
    fn from(p: progress::FineTuning) -> Self {
        // Whole seconds: the bar moves once a second, not on every step.
        Self::FineTuning {
            done_secs: p.secs as u64,
            total_secs: p.budget_secs as u64,
        }
    }
}

/// What a finished job produced.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A library folder was scanned.
    LibraryScanned(ImageFolder),
    /// Training finished (completed, cancelled or stopped by its time budget) and the
    /// model was written. It is the current model unless the run was cancelled: then the
    /// current model and index stay as they were until the person opens this one.
    Trained {
        model_path: PathBuf,
        became_current: bool,
        summary: Box<TrainingSummary>,
        validation: Option<Box<RetrievalReport>>,
        /// The validation photos' maps and retrieval before and after training.
        before_after: Option<Arc<BeforeAfter>>,
        /// When the run went on from the current model (Keep training): the held-out
        /// scores before and after, which decided whether the new model became current.
        kept_training: Option<KeptTraining>,
    },
    /// A model file is now the current model.
    ModelOpened(PathBuf),
    /// An index was built or opened and is now current.
    IndexReady(IndexSummary),
    /// The current index was brought up to date with its folder.
    IndexUpdated {
        summary: IndexSummary,
        changes: IndexChanges,
    },
    /// Results for a query, with the query shrunk for display (decoded on the worker,
    /// not on the UI thread).
    Results {
        query: Query,
        preview: Arc<image::RgbImage>,
        hits: Vec<SearchHit>,
        /// The query's embedding (to place it on the map).
        vector: Arc<Vec<f32>>,
    },
    /// Results of `query` searched again with its marks (see [`Request::Refine`]).
    Refined {
        query: Query,
        hits: Vec<SearchHit>,
        /// Marks that refined it (0: the plain results).
        refined_by: usize,
        /// Marked photos that could be found neither in the index nor on disk.
        missing: usize,
    },
    /// Results were exported into `folder`.
    Exported {
        folder: PathBuf,
        report: ExportReport,
    },
    /// What the models folder keeps; `removed`: the old training states just removed
    /// (how many, and their bytes).
    ModelsFolder {
        kept: crate::engine::train::kept::KeptFiles,
        removed: Option<(usize, u64)>,
    },
    /// Pretrained weights are downloaded, checked, and ready at `path`.
    WeightsReady { path: PathBuf, tensors: usize },
    /// The near-duplicate pairs of the index at `index`.
    Duplicates {
        index: PathBuf,
        candidates: Arc<Candidates>,
    },
    /// The list of duplicates not kept was written (or the photos copied).
    DuplicatesExported { count: usize, to: DuplicateExport },
    /// The map of the index at `index`.
    Map {
        index: PathBuf,
        map: Arc<EmbeddingMap>,
    },
    /// Photos were copied into `folder`.
    PhotosCopied { count: usize, folder: PathBuf },
    /// The model was fine-tuned from marks. When the check passed
    /// ([`FineTuneSummary::refusal`] is `None`), it was written to `model_path` and made
    /// current, and the index was embedded again with it (`index`); when it failed,
    /// nothing was written and `index` is `None`.
    FineTuned {
        model_path: PathBuf,
        summary: FineTuneSummary,
        index: Option<IndexSummary>,
    },
    /// Where each inbox photo would go.
    SortPlanned(Arc<SortPlan>),
    /// Photos were filed (and the index updated with them: `index`).
    SortFiled {
        report: FilingReport,
        index: IndexSummary,
    },
    /// A sort was undone (and the index updated).
    SortUndone {
        report: UndoReport,
        index: IndexSummary,
    },
}

/// What the worker reports.
#[derive(Debug, Clone)]
pub enum Event {
    /// The device jobs run on ("CPU (2 threads)" or the CUDA GPU's name).
    Device(String),
    /// A job began.
    Started { job: JobId, kind: JobKind },
    /// A long job made progress.
    Progress { job: JobId, progress: Progress },
    /// A job finished with this outcome.
    Finished { job: JobId, outcome: Box<Outcome> },
    /// A job failed; `message` says what to do. Nothing that was current changed.
    Failed {
        job: JobId,
        kind: JobKind,
        message: String,
    },
    /// A job was cancelled before it produced anything; nothing current changed.
    Cancelled { job: JobId, kind: JobKind },
    /// What is current after a job (sent after every job, whatever its end).
    Current(Snapshot),
}

/// The current model, as the window shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct CurrentModel {
    pub path: PathBuf,
    pub info: Box<ModelInfo>,
    /// When the file was written.
    pub modified: Option<std::time::SystemTime>,
    /// Its training state is beside it, so it can go on training (looked at by the
    /// worker when it sends the snapshot, not by the window on every frame).
    pub resumable: bool,
}

/// What is current in the worker: the window's only copy of it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub model: Option<CurrentModel>,
    pub index: Option<IndexSummary>,
}

/// What the window shows about the current index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexSummary {
    pub path: PathBuf,
    pub folder: PathBuf,
    pub images: usize,
    pub skipped: Vec<SkippedFile>,
    pub model_path: PathBuf,
    /// When the index file was written.
    #[serde(default)]
    pub modified: Option<std::time::SystemTime>,
    /// Photos added, changed or removed in the folder since the index was written, as
    /// found when it was opened (0 when up to date or not checked).
    #[serde(default)]
    pub out_of_date: usize,
    /// Exact search, or the approximate index's parameters and measured recall.
    #[serde(default)]
    pub search: crate::engine::index::ann::SearchMethod,
    /// The index's own distance scale (median distance from a photo to its nearest
    /// other photo), for distance controls; `None` for approximate indexes.
    #[serde(default)]
    pub typical_distance: Option<f32>,
}
