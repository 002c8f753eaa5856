//! `likeness index`.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use serde_json::json;

use super::choices::DeviceArg;
use super::{OutputArgs, absolute, print_json, progress, warn_skipped};
use crate::engine::data::{DEFAULT_MAX_PIXELS, scan_folder};
use crate::engine::index::Gallery;
use crate::engine::model::load_model;

#[derive(Debug, clap::Args)]
pub struct IndexArgs {
    /// The model to embed with (written by `likeness train`).
    #[arg(long)]
    pub model: PathBuf,
    /// The folder to index; images anywhere below it are included.
    #[arg(long)]
    pub folder: PathBuf,
    /// Where to write the index.
    #[arg(long)]
    pub index: PathBuf,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn run(args: IndexArgs) -> anyhow::Result<()> {
    let device = args.device.resolve()?;
    let (model, info) = load_model(&args.model, device).context("could not open the model")?;
    let folder =
        scan_folder(&args.folder, DEFAULT_MAX_PIXELS).context("could not scan the folder")?;
    if folder.images.is_empty() {
        warn_skipped(&folder.skipped);
        anyhow::bail!("{}: no images found to index", args.folder.display());
    }
    let bar = progress::bar(folder.images.len() as u64, "indexing");
    let gallery = Gallery::build(
        &model,
        &info,
        &args.model,
        &folder,
        DEFAULT_MAX_PIXELS,
        &|done, _| bar.set_position(done as u64),
        &AtomicBool::new(false),
    )?;
    bar.finish_and_clear();
    warn_skipped(&gallery.header.skipped);
    gallery
        .save(&args.index)
        .with_context(|| format!("could not write the index to {}", args.index.display()))?;
    eprintln!(
        "indexed {} images of {} into {}",
        gallery.len(),
        args.folder.display(),
        absolute(&args.index).display()
    );
    if args.output.json {
        print_json(&json!({
            "index": absolute(&args.index),
            "images": gallery.len(),
            "skipped": gallery.header.skipped.len(),
            "skipped_files": gallery.header.skipped,
            "model_id": info.model_id,
        }))?;
    }
    Ok(())
}
