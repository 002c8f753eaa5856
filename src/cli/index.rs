//! `likeness index`.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::json;

use super::choices::DeviceArg;
use super::{OutputArgs, absolute, print_json, progress, warn_skipped};
use crate::engine::data::{DEFAULT_MAX_PIXELS, scan_folder_excluding};
use crate::engine::files::OutputKind;
use crate::engine::index::ann::MethodChoice;
use crate::engine::index::{Gallery, IndexChanges, IndexOptions, index_bytes_estimate};
use crate::engine::model::LoadedModel;
use crate::engine::output::{Input, check_output, check_room};

#[derive(Debug, clap::Args)]
pub struct IndexArgs {
    /// The model to embed with (written by `likeness train`), or `imagenet`: the features
    /// of the ImageNet-pretrained EfficientNet-Lite0 that ships with Likeness, so photos
    /// are searchable without training and without network.
    #[arg(long)]
    pub model: PathBuf,
    /// The folder to index; images anywhere below it are included.
    #[arg(long)]
    pub folder: PathBuf,
    /// Where to write the index. When it exists (same folder, same model), only new and
    /// changed photos are embedded and deleted ones dropped.
    #[arg(long)]
    pub index: PathBuf,
    /// Embed every photo again, even when the index is up to date.
    #[arg(long)]
    pub rebuild: bool,
    /// Search exhaustively however large the folder (from 50,000 photos the index is
    /// otherwise approximate: faster to search and much smaller, at recall@10 ≥ 0.95).
    #[arg(long, conflicts_with = "approximate")]
    pub exact: bool,
    /// Build an approximate index however small the folder (to save memory, or to try
    /// it): parameters are chosen from the photos and recall@10 is measured and printed.
    #[arg(long)]
    pub approximate: bool,
    /// Leave out files and folders matching this glob (repeatable): a pattern without `/`
    /// matches names (`*.png`, `Screenshots`), one with `/` paths below the folder
    /// (`2019/**`). Hidden and system folders are always left out.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn run(mut args: IndexArgs) -> anyhow::Result<()> {
    // From the start: a Ctrl+C during the scan stops the job too, rather than the process.
    let interrupted = super::interrupt::flag();
    let device = args.device.resolve()?;
    args.model = super::weights::resolve_model_argument(&args.model)?;
    let loaded = LoadedModel::load(&args.model, device).context("could not open the model")?;
    // Refused before the scan: a model, a photo or anything not an index is never replaced.
    check_output(
        &args.index,
        OutputKind::Index,
        &[Input {
            flag: "--model",
            path: &args.model,
        }],
        0,
    )?;
    let folder = scan_folder_excluding(&args.folder, DEFAULT_MAX_PIXELS, &args.exclude)
        .context("could not scan the folder")?;
    // With the photos counted, check the disk has room for their vectors too.
    check_room(
        &args.index,
        index_bytes_estimate(folder.images.len(), loaded.model.config.embedding_dim),
    )?;
    if folder.images.is_empty() {
        warn_skipped(&folder.skipped);
        anyhow::bail!("{}: no images found to index", args.folder.display());
    }
    let previous = if args.rebuild {
        None
    } else {
        earlier_index(&args, &folder.root, &loaded.info.model_id)
    };
    let bar = progress::bar(folder.images.len() as u64, "indexing");
    let result = Gallery::update(
        &loaded,
        &folder,
        previous.as_ref(),
        &IndexOptions {
            max_pixels: DEFAULT_MAX_PIXELS,
            method: match (args.exact, args.approximate) {
                (true, _) => MethodChoice::Exact,
                (_, true) => MethodChoice::Approximate,
                _ => MethodChoice::Auto,
            },
            // Ctrl+C or SIGTERM: save what was embedded; the next run continues from it.
            keep_partial_on_cancel: true,
        },
        &|p| {
            bar.set_length(p.total as u64);
            bar.set_position(p.done as u64);
        },
        interrupted,
    );
    let (gallery, changes) = match result {
        Ok(done) => done,
        Err(crate::engine::EngineError::Cancelled) => {
            eprintln!(
                "interrupted before any photo was embedded; {} was not changed",
                absolute(&args.index).display()
            );
            std::process::exit(super::interrupt::INTERRUPTED_EXIT_CODE);
        }
        Err(error) => return Err(error.into()),
    };
    bar.finish_and_clear();
    let IndexChanges {
        added,
        updated,
        removed,
        kept,
        pending,
    } = changes;
    if previous.is_some() {
        eprintln!(
            "updated the index: {added} added, {updated} changed, {removed} removed, {kept} unchanged"
        );
    }
    warn_skipped(&gallery.header.skipped);
    gallery
        .save(&args.index)
        .with_context(|| format!("could not write the index to {}", args.index.display()))?;
    if pending > 0 {
        eprintln!(
            "interrupted: saved the {} photos embedded so far to {}; run the same command \
             again to embed the {pending} left (nothing done is lost)",
            gallery.len(),
            absolute(&args.index).display()
        );
        if args.output.json {
            print_json(&json!({
                "index": absolute(&args.index),
                "images": gallery.len(),
                "interrupted": true,
                "pending": pending,
            }))?;
        }
        std::process::exit(super::interrupt::INTERRUPTED_EXIT_CODE);
    }
    eprintln!(
        "indexed {} images of {} into {} ({})",
        gallery.len(),
        args.folder.display(),
        absolute(&args.index).display(),
        gallery.search_method().describe()
    );
    if args.output.json {
        print_json(&json!({
            "index": absolute(&args.index),
            "images": gallery.len(),
            "skipped": gallery.header.skipped.len(),
            "skipped_files": gallery.header.skipped,
            "model_id": loaded.info.model_id,
            "added": added,
            "updated": updated,
            "removed": removed,
            "kept": kept,
            "search": gallery.search_method(),
        }))?;
    }
    Ok(())
}

/// The index already at `--index`, when it can be updated: it reads, and it covers the
/// same folder with the same model. Otherwise the index is built afresh (and why is said).
fn earlier_index(args: &IndexArgs, folder: &std::path::Path, model_id: &str) -> Option<Gallery> {
    if !args.index.exists() {
        return None;
    }
    let earlier = match Gallery::load(&args.index) {
        Ok(earlier) => earlier,
        Err(error) => {
            eprintln!("warning: {error}; building the index afresh");
            return None;
        }
    };
    let same_folder = std::fs::canonicalize(folder).is_ok_and(|f| f == earlier.header.folder);
    if !same_folder {
        eprintln!(
            "note: {} indexed {}; building it afresh for {}",
            args.index.display(),
            earlier.header.folder.display(),
            folder.display()
        );
        return None;
    }
    if earlier.header.model_id != model_id {
        eprintln!("note: the index was built with another model; embedding every photo again");
        return None;
    }
    Some(earlier)
}
