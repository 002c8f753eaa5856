//! What the window holds: [`AppState`], the settings that are saved plus what the worker
//! reported (its snapshot of the current model and index, the running job as one
//! [`Activity`], the views of the last scan, training run and search).

use std::path::PathBuf;

use egui_plot::PlotPoint;

use super::settings::{AppSettings, DataDirs};
use crate::engine::data::ImageFolder;
use crate::engine::eval::RetrievalReport;
use crate::engine::index::SearchHit;
use crate::worker::{JobId, JobKind, Query, Snapshot};

/// A message for the person at the screen.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub text: String,
    pub is_error: bool,
}

/// What the library scan found.
#[derive(Debug, Clone)]
pub struct LibraryView {
    pub folder: ImageFolder,
    pub classes: usize,
}

/// The job the worker is running, from its Started event to its end.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    pub job: JobId,
    pub kind: JobKind,
    /// Items (images, bytes) done and the total when known; training keeps its own view.
    pub done: u64,
    pub total: Option<u64>,
}

/// Training progress and curves of the last training job.
#[derive(Debug, Default)]
pub struct TrainingView {
    /// The training job these figures belong to.
    pub job: Option<JobId>,
    pub preparing: Option<(usize, usize)>,
    pub evaluating: Option<(usize, usize)>,
    pub device: String,
    pub epoch: usize,
    /// The most epochs the run may take; `None`: until the time budget is spent.
    pub epochs: Option<usize>,
    pub step: usize,
    pub steps_per_epoch: usize,
    pub global_step: usize,
    pub elapsed_secs: f64,
    pub remaining_secs: f64,
    /// The time budget the run announced, when it has one.
    pub time_budget_secs: Option<f64>,
    /// Loss of every step, x = global step.
    pub step_losses: Vec<PlotPoint>,
    /// Mean loss of every epoch, x = global step at its end.
    pub epoch_losses: Vec<PlotPoint>,
    pub validation_losses: Vec<PlotPoint>,
    /// Validation mAP@R after observed epochs, x = global step at its end.
    pub validation_map: Vec<PlotPoint>,
    pub notes: Vec<String>,
    pub outcome: Option<String>,
    pub validation: Option<RetrievalReport>,
}

/// The query on screen and its results.
pub struct SearchView {
    pub query: Query,
    pub preview: Option<egui::TextureHandle>,
    pub hits: Vec<SearchHit>,
    pub selected: Vec<bool>,
}

/// Everything the window shows; changed only by the reducer (worker events) and by the
/// panels' edits of the settings form.
pub struct AppState {
    pub settings: AppSettings,
    pub dirs: DataDirs,
    pub device: String,
    pub notices: Vec<Notice>,
    pub library: Option<LibraryView>,
    pub training: TrainingView,
    /// The worker's current model and index, as its last snapshot said.
    pub current: Snapshot,
    /// The running job.
    pub activity: Option<Activity>,
    /// Jobs sent and not yet started, oldest first.
    pub queued: Vec<(JobId, JobKind)>,
    pub search: Option<SearchView>,
    /// The downloaded ImageNet weights, once they are in the cache.
    pub imagenet_weights: Option<PathBuf>,
    /// A folder typed into the index field (defaults to the library).
    pub index_folder: String,
    /// When this training job finishes with a model, index the library with it.
    pub index_after: Option<JobId>,
}

impl AppState {
    pub fn new(settings: AppSettings, dirs: DataDirs) -> Self {
        let imagenet_weights = dirs.weights.cached().map(std::path::Path::to_path_buf);
        Self {
            index_folder: settings
                .library
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            settings,
            dirs,
            device: "detecting…".into(),
            notices: Vec::new(),
            library: None,
            training: TrainingView::default(),
            current: Snapshot::default(),
            activity: None,
            queued: Vec::new(),
            search: None,
            imagenet_weights,
            index_after: None,
        }
    }

    /// No job running or waiting.
    pub fn is_idle(&self) -> bool {
        self.activity.is_none() && self.queued.is_empty()
    }

    /// The running job, if it is of `kind`.
    pub fn running(&self, kind: JobKind) -> Option<&Activity> {
        self.activity.as_ref().filter(|a| a.kind == kind)
    }

    /// Whether the training shown is still running.
    pub fn training_running(&self) -> bool {
        let Some(training) = self.training.job else {
            return false;
        };
        self.activity.as_ref().is_some_and(|a| a.job == training)
            || self.queued.iter().any(|(job, _)| *job == training)
    }

    pub fn error(&mut self, text: impl Into<String>) {
        self.notices.push(Notice {
            text: text.into(),
            is_error: true,
        });
    }

    pub fn info(&mut self, text: impl Into<String>) {
        self.notices.push(Notice {
            text: text.into(),
            is_error: false,
        });
    }
}
