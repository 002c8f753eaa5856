//! The engine: everything Likeness computes, with no GUI code.
//!
//! Data flow: folder → [`data::scan_labeled`] → samples → [`data::PreparedImages`] →
//! batches → [`model::EmbeddingModel`] → embeddings → [`index::Gallery`] → search →
//! [`export`].

pub mod atomic;
pub mod bench;
pub mod collection;
pub mod csv;
pub mod data;
pub mod device;
pub mod error;
pub mod eval;
pub mod export;
pub mod feedback;
pub mod files;
pub mod index;
pub mod metrics;
pub mod model;
pub mod output;
pub mod progress;
pub mod projection;
pub mod run;
pub mod signature;
pub mod sort;
pub mod synthetic;
pub mod train;

pub use error::{EngineError, Result};
