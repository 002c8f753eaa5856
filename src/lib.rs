//! Likeness: a desktop photo-similarity browser.
//!
//! The [`engine`] (data, model, training, index, evaluation, export) knows nothing of the
//! GUI; the [`cli`] and the [`app`] are two thin shells over it. The app talks to the
//! engine only through the [`worker`] thread's `Command`/`Event` channels.

pub mod app;
pub mod cli;
pub mod engine;
pub mod worker;
