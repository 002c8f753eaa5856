//! The engine's error type: every message names the file or folder involved and says
//! what a user can do about it.

use std::path::PathBuf;

/// Result with [`EngineError`].
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Everything the engine can fail with.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A file or folder could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A folder that should hold images does not exist or is not a folder.
    #[error("{}: no such folder", .0.display())]
    MissingFolder(PathBuf),
    /// The data set cannot be trained on (too few classes or images).
    #[error("{0}")]
    Dataset(String),
    /// An image could not be decoded.
    #[error("{}: {reason}", path.display())]
    Image { path: PathBuf, reason: String },
    /// A model, index or weights file is not what it should be.
    #[error("{}: {reason}", path.display())]
    BadFile { path: PathBuf, reason: String },
    /// An index was made by a different model than the one given.
    #[error(
        "the index {} was built with model {index_model_id}, but the model {} is {model_id}; rebuild the index with `likeness index --model {}`",
        index.display(), model.display(), model.display()
    )]
    ModelMismatch {
        index: PathBuf,
        model: PathBuf,
        index_model_id: String,
        model_id: String,
    },
    /// A configuration value is out of range.
    #[error("invalid setting: {0}")]
    Config(String),
    /// libtorch reported an error (out of memory, device problems, ...).
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// faiss reported an error.
    #[error("faiss: {0}")]
    Faiss(#[from] faiss::error::Error),
    /// A download failed (no network, server error, broken transfer).
    #[error("{0}")]
    Network(String),
    /// The requested device is not available.
    #[error("{0}")]
    Device(String),
    /// Training went wrong in a way that would give a useless model (diverged, collapsed).
    #[error("{0}")]
    Training(String),
    /// The job was cancelled before it produced anything usable.
    #[error("cancelled before anything usable was produced")]
    Cancelled,
}

impl EngineError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// A file that is not what it should be.
    pub fn bad_file(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::BadFile {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
