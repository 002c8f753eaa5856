//! `likeness export`.

use std::path::PathBuf;

use anyhow::Context;

use super::search::IndexArgs;
use super::{OutputArgs, absolute, print_json};
use crate::engine::export::{ExportSource, export_results};

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub session: IndexArgs,
    /// The query image.
    pub image: PathBuf,
    /// Number of nearest images to export.
    #[arg(short, default_value_t = 5, value_parser = super::choices::result_count)]
    pub k: usize,
    /// Folder to copy the images and manifests into (created if needed).
    #[arg(long)]
    pub to: PathBuf,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    let mut session = args.session.open()?;
    let hits = session.search_file(&args.image, args.k)?;
    let index = absolute(&args.session.index);
    if crate::engine::export::inside_library(&args.to, &session.gallery.header.folder) {
        eprintln!(
            "warning: {} is inside the indexed folder {}; the copies are left out of its \
             index (an export folder is never scanned), but they do take space there",
            super::shown(absolute(&args.to).display()),
            super::shown(session.gallery.header.folder.display())
        );
    }
    let source = ExportSource {
        folder: &session.gallery.header.folder,
        index: Some(&index),
    };
    let report = export_results(&absolute(&args.image), &hits, &args.to, &source)
        .context("export failed")?;
    let manifest = &report.manifest;
    eprintln!(
        "exported {} images to {} (with {}results.json)",
        manifest.results.len(),
        absolute(&args.to).display(),
        if manifest.csv_content.is_some() {
            "results.csv and "
        } else {
            ""
        }
    );
    for kept in &report.kept {
        eprintln!("kept: {}", super::shown(kept));
    }
    if args.output.json {
        print_json(&report)?;
    }
    Ok(())
}
