//! What the window remembers between runs (eframe storage) and where it keeps files.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::engine::device::DeviceChoice;
use crate::engine::files::user_data_dir;
use crate::engine::model::pretrained::WeightsSource;
use crate::engine::train::{DEFAULT_EPOCHS, Preset, TrainSettings};

/// Key of the settings in eframe's storage.
pub const STORAGE_KEY: &str = "likeness-settings";
/// Entries kept in each list of the Recent menu.
const RECENT_ENTRIES: usize = 8;

/// Folders where the window writes the models and indexes it makes, and where it keeps
/// downloaded weights.
#[derive(Debug, Clone)]
pub struct DataDirs {
    pub models: PathBuf,
    pub indexes: PathBuf,
    /// Thumbnails of photos already shown (small, rebuilt when a photo changes).
    pub thumbnails: PathBuf,
    /// The ImageNet ResNet18 weights offered as a starting point.
    pub weights: WeightsSource,
    /// Alike / not-alike marks, one file per library folder.
    pub marks: PathBuf,
    /// The journals of sorts, which Undo last sort reverses.
    pub sort_journals: PathBuf,
    /// The library's photos as training decoded them, kept between runs.
    pub decoded: PathBuf,
}

impl DataDirs {
    /// The user's data directory (e.g. ~/.local/share/likeness on Linux); thumbnails and
    /// decoded photos go in the cache directory (~/.cache/likeness/thumbnails, decoded).
    pub fn user() -> Self {
        let mut dirs = Self::under(user_data_dir());
        if let Some(project) = directories::ProjectDirs::from("", "", "Likeness") {
            dirs.thumbnails = project.cache_dir().join("thumbnails");
            dirs.decoded = project.cache_dir().join("decoded");
        }
        dirs
    }

    pub fn under(base: PathBuf) -> Self {
        Self {
            models: base.join("models"),
            indexes: base.join("indexes"),
            thumbnails: base.join("thumbnails"),
            weights: WeightsSource::imagenet_resnet18(&base),
            marks: base.join("marks"),
            sort_journals: base.join("sort-journals"),
            decoded: base.join("decoded"),
        }
    }
}

/// The training options the window offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainForm {
    pub preset: Preset,
    /// Epochs to train without a time budget; with one, an upper bound only when
    /// `limit_epochs` is on.
    pub epochs: usize,
    pub limit_epochs: bool,
    /// Stop after this many seconds when `use_time_budget` is on.
    pub use_time_budget: bool,
    pub max_seconds: f64,
    pub image_size_px: u32,
    pub batch_size: usize,
    pub lr: f64,
    pub margin: f64,
    pub device: DeviceChoice,
    /// torchvision ResNet18 weights to start from.
    pub weights: Option<PathBuf>,
    /// The person chose where training starts (scratch, ImageNet, a weights file) or
    /// turned the ImageNet offer down: the window no longer picks or offers for them.
    pub start_chosen: bool,
}

impl Default for TrainForm {
    fn default() -> Self {
        Self::from_preset(Preset::Default)
    }
}

impl TrainForm {
    pub fn from_preset(preset: Preset) -> Self {
        let settings = preset.settings();
        Self {
            preset,
            epochs: settings.epochs.unwrap_or(DEFAULT_EPOCHS),
            limit_epochs: false,
            use_time_budget: true,
            max_seconds: 600.0,
            image_size_px: settings.image_size_px,
            batch_size: settings.batch_size,
            lr: settings.lr,
            margin: settings.margin,
            device: settings.device,
            weights: None,
            start_chosen: false,
        }
    }

    /// The engine settings: the preset's, with the form's values on top.
    pub fn settings(&self) -> TrainSettings {
        let mut settings = self.preset.settings();
        // A time budget means training runs until it is spent, unless the person also
        // asked for at most so many epochs.
        settings.epochs = (!self.use_time_budget || self.limit_epochs).then_some(self.epochs);
        settings.max_seconds = self.use_time_budget.then_some(self.max_seconds);
        settings.image_size_px = self.image_size_px;
        settings.batch_size = self.batch_size;
        settings.lr = self.lr;
        settings.margin = self.margin;
        settings.device = self.device;
        settings
    }
}

/// Everything persisted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AppSettings {
    pub library: Option<PathBuf>,
    pub validation: Option<PathBuf>,
    pub model: Option<PathBuf>,
    pub index: Option<PathBuf>,
    pub recent_folders: Vec<PathBuf>,
    pub recent_models: Vec<PathBuf>,
    pub recent_indexes: Vec<PathBuf>,
    pub train: TrainForm,
    /// Results shown per query.
    pub k: usize,
    /// Glob patterns left out when indexing, separated by commas.
    pub exclude: String,
    /// Show only results closer than this distance, when on.
    pub limit_distance: bool,
    pub max_distance: f32,
    /// The photo last searched with: searched again in the reopened index at start.
    pub last_query: Option<PathBuf>,
    /// The last training run's summary, with a cancelled run's "Use this model" offer.
    pub last_run: Option<crate::app::state::TrainingEnd>,
    /// The last training run's charts and label list.
    #[serde(default)]
    pub last_run_charts: Option<crate::app::state::SavedRun>,
}

impl Default for AppSettings {
    fn default() -> Self {
        Self {
            library: None,
            validation: None,
            model: None,
            index: None,
            recent_folders: Vec::new(),
            recent_models: Vec::new(),
            recent_indexes: Vec::new(),
            train: TrainForm::default(),
            k: 12,
            exclude: String::new(),
            limit_distance: false,
            max_distance: 0.5,
            last_query: None,
            last_run: None,
            last_run_charts: None,
        }
    }
}

impl AppSettings {
    /// The exclusion patterns, one per comma-separated entry.
    pub fn exclude_patterns(&self) -> Vec<String> {
        self.exclude
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect()
    }

    /// Puts `folder` first in the recent libraries.
    pub fn remember_folder(&mut self, folder: PathBuf) {
        remember(&mut self.recent_folders, folder);
    }

    /// Puts `model` first in the recent models.
    pub fn remember_model(&mut self, model: PathBuf) {
        remember(&mut self.recent_models, model);
    }

    /// Puts `index` first in the recent indexes.
    pub fn remember_index(&mut self, index: PathBuf) {
        remember(&mut self.recent_indexes, index);
    }
}

fn remember(list: &mut Vec<PathBuf>, path: PathBuf) {
    list.retain(|p| *p != path);
    list.insert(0, path);
    list.truncate(RECENT_ENTRIES);
}
