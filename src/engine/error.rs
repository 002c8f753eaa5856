//! The engine's error type: every message names the file or folder involved and says
//! what a user can do about it.

use std::path::PathBuf;

/// Result with [`EngineError`].
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Everything the engine can fail with.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A file or folder could not be read or written. The OS reason is part of the
    /// message and not a separate `source`, so a chain printed with `{:#}` says it once.
    #[error("{}: {}", path.display(), io_reason(error))]
    Io {
        path: PathBuf,
        error: std::io::Error,
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
    /// A result could not be saved where asked, and was kept elsewhere instead.
    #[error(
        "{}: could not be saved ({reason}); the result was kept at {} — move it where you want it",
        path.display(), kept_at.display()
    )]
    Rescued {
        path: PathBuf,
        reason: String,
        kept_at: PathBuf,
    },
    /// The job was cancelled before it produced anything usable.
    #[error("cancelled before anything usable was produced")]
    Cancelled,
}

impl EngineError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            error,
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

/// An I/O error in words a person can act on: the OS text once, and for the errors people
/// meet most a plain sentence first ("no such file", "permission denied").
pub fn io_reason(error: &std::io::Error) -> String {
    use std::io::ErrorKind;
    let plain = match error.kind() {
        ErrorKind::NotFound => "no such file or folder",
        ErrorKind::PermissionDenied => "permission denied",
        ErrorKind::StorageFull => "the disk is full",
        ErrorKind::ReadOnlyFilesystem => "the disk is read-only",
        ErrorKind::InvalidFilename => "the path is too long or not a valid name",
        _ => return error.to_string(),
    };
    match error.raw_os_error() {
        Some(code) => format!("{plain} (os error {code})"),
        None => plain.to_string(),
    }
}
