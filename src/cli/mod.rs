//! The command line: one subcommand per step of the pipeline, each a thin shell over the
//! engine. Progress goes to stderr; with `--json` the last line of stdout is one JSON
//! object. The exit code is non-zero only on failure.

mod bench;
mod choices;
mod duplicates;
mod eval;
mod export;
mod index;
pub mod interrupt;
mod map;
mod progress;
mod search;
mod sort;
mod train;
mod weights;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Likeness: find the photos in a folder that look like this one, and teach it what
/// "alike" means for your photos.
///
/// With no command, opens the Likeness window; `likeness PHOTO` opens it searching with
/// that photo in the last index, `likeness FOLDER` with that folder as the library.
#[derive(Debug, Parser)]
#[command(name = "likeness", version, about, long_about = None)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// A photo to search with, or a folder to use as the library, in the window.
    #[arg(value_name = "PHOTO_OR_FOLDER")]
    pub open: Option<std::path::PathBuf>,
}

/// The headless commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train an embedding model on a folder with one sub-folder per class.
    Train(Box<train::TrainArgs>),
    /// Embed every image under a folder (recursively) into a searchable index.
    Index(index::IndexArgs),
    /// Find the nearest images of an index to one or more query images.
    Search(search::SearchArgs),
    /// Measure retrieval quality: recall@1/5/10 and mAP@R of queries against a gallery.
    Eval(eval::EvalArgs),
    /// Copy the nearest images to a folder, with results.csv and results.json.
    Export(export::ExportArgs),
    /// List groups of near-duplicate photos in an index (nothing is deleted or moved).
    Duplicates(duplicates::DuplicatesArgs),
    /// Draw an index's photos on a plane (UMAP: nearest photos kept near; or PCA) as a PNG or CSV.
    Map(map::MapArgs),
    /// Measure indexing and training throughput against the pure tch ceiling (and, with
    /// --pytorch, against PyTorch on the same network).
    Bench(bench::BenchArgs),
    /// Get (or check) the ImageNet-pretrained ResNet18 weights training can start from.
    Weights(weights::WeightsArgs),
    /// File new photos into the library's class folders (copy by default), or undo that.
    Sort(sort::SortArgs),
}

/// Options every command shares.
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    /// Print one JSON object as the last line of stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs a headless command.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Train(args) => train::run(*args),
        Command::Index(args) => index::run(args),
        Command::Search(args) => search::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Export(args) => export::run(args),
        Command::Duplicates(args) => duplicates::run(args),
        Command::Map(args) => map::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Weights(args) => weights::run(args),
        Command::Sort(args) => sort::run(args),
    }
}

/// Prints a value as the final JSON line.
fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

/// Text for a person's terminal: control characters (ESC, BEL, …, which a hostile file
/// name could use to rewrite the screen or the window title) are shown escaped, as
/// `\u{1b}`; line breaks and tabs stay. JSON output is not passed through this: it
/// stays exact (its encoder escapes them already).
pub fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    text.chars()
        .map(|c| {
            if unsafe_char(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// [`terminal_safe`] for anything displayable (paths, errors).
fn shown(value: impl std::fmt::Display) -> String {
    terminal_safe(&value.to_string()).into_owned()
}

/// Warns on stderr about each skipped file, then a count.
fn warn_skipped(skipped: &[crate::engine::data::SkippedFile]) {
    for file in skipped {
        eprintln!("warning: {}", shown(file));
    }
    if !skipped.is_empty() {
        eprintln!("warning: {} file(s) skipped", skipped.len());
    }
}

/// Resolves a path argument for messages and stored headers.
fn absolute(path: &std::path::Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
