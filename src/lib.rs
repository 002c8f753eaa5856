//! Likeness: a desktop photo-similarity browser.
//!
//! The [`engine`] (data, model, training, index, evaluation, export) knows nothing of the
//! GUI; the [`cli`] and the [`app`] are two thin shells over it. Every job of the app
//! (scanning, training, indexing, searching, exports) runs on the [`worker`] thread, asked
//! for with `Request`s and answered with `Event`s; the app itself uses the engine only for
//! its types and for small reads on the UI side (a marks file, a photo's header, a model's
//! description for a menu).

pub mod app;
pub mod cli;
pub mod engine;
pub mod worker;
