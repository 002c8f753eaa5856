//! A training run on paper: the settings it is asked for and the summaries it leaves.
//!
//! Every model file keeps both, so this room sits below the model and the trainer: it
//! knows the names of the networks and the data's augmentations, and no tensors.

pub mod settings;
pub mod summary;

pub use settings::{
    Backbone, DEFAULT_EPOCHS, LITE0_MIN_IMAGE_PX, Loss, MAX_EMBEDDING_DIM, Mining,
    PROGRESSIVE_FULL_SIZE_AT, Preset, Schedule, TrainSettings,
};
pub use summary::{FineTuneSummary, LabelSuspect, PairChange, ResumedFrom, TrainingSummary};
