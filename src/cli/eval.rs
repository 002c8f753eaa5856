//! `likeness eval`.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::Context;

use super::choices::DeviceArg;
use super::{OutputArgs, print_json, progress, warn_skipped};
use crate::engine::data::DEFAULT_MAX_PIXELS;
use crate::engine::eval::evaluate_model;
use crate::engine::model::load_model;

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// The model to judge, or `imagenet`: the features of the shipped ImageNet
    /// EfficientNet-Lite0, with no training.
    #[arg(long)]
    pub model: PathBuf,
    /// Class-folder set to search among (usually the training folder).
    #[arg(long)]
    pub gallery: PathBuf,
    /// Class-folder set of held-out query photos of the same classes.
    #[arg(long)]
    pub queries: PathBuf,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// Embed at this many pixels instead of the model's own size (measures the size an
    /// index would use; the model file is not changed).
    #[arg(long, value_name = "PX", value_parser = clap::value_parser!(u32).range(16..=1024))]
    pub image_size: Option<u32>,
    /// Embed each photo as the mean with its mirror image (true), or not (false), instead
    /// of what the model says.
    #[arg(long, value_name = "BOOL")]
    pub mirror_average: Option<bool>,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let same_folder = matches!(
        (std::fs::canonicalize(&args.gallery), std::fs::canonicalize(&args.queries)),
        (Ok(g), Ok(q)) if g == q
    );
    if same_folder {
        eprintln!(
            "warning: the queries are the gallery: every photo finds itself first, so \
             recall@1 says nothing about unseen photos; give held-out photos as --queries"
        );
    }
    let gallery_classes = class_folders(&args.gallery);
    let missing: Vec<String> = class_folders(&args.queries)
        .difference(&gallery_classes)
        .cloned()
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "warning: the gallery has no class folder for {} of the query classes ({}): \
             their queries cannot find a photo of their class and count as misses",
            missing.len(),
            super::shown(missing.join(", "))
        );
    }
    let (mut model, mut info) = load_model(
        &super::weights::resolve_model_argument(&args.model)?,
        args.device.resolve()?,
    )
    .context("could not open the model")?;
    if let Some(size) = args.image_size {
        anyhow::ensure!(
            model.config.architecture != crate::engine::model::efficientnet::ARCHITECTURE
                || size >= crate::engine::run::LITE0_MIN_IMAGE_PX,
            "EfficientNet-Lite0 needs images of at least 32 pixels (--image-size {size})"
        );
        model.config.preprocess.image_size_px = size;
    }
    if let Some(mirror) = args.mirror_average {
        model.config.mirror_average = mirror;
    }
    info.config = model.config.clone();
    let bar = progress::bar(0, "embedding");
    let report = evaluate_model(
        &model,
        &info.model_id,
        &args.gallery,
        &args.queries,
        DEFAULT_MAX_PIXELS,
        &|p| {
            bar.set_length(p.total as u64);
            bar.set_position(p.done as u64);
        },
        &AtomicBool::new(false),
    )
    .context("evaluation failed")?;
    bar.finish_and_clear();
    warn_skipped(&report.skipped);
    println!(
        "recall@1 {:.4}  recall@5 {:.4}  recall@10 {:.4}  mAP@R {:.4}  ({} queries, {} gallery images)",
        report.recall_at_1,
        report.recall_at_5,
        report.recall_at_10,
        report.map_at_r,
        report.queries,
        report.gallery
    );
    if !args.output.json {
        for (class, recall) in &report.per_class_recall_at_1 {
            println!("  {class:<20} recall@1 {recall:.3}");
        }
        for pair in report.confused_pairs.iter().take(5) {
            println!(
                "  confused: {} → {} ({}×)",
                pair.query_class, pair.retrieved_class, pair.count
            );
        }
        for suspect in report.suspects.iter().take(10) {
            println!(
                "  check label: {} is '{}' but {:.0}% of its neighbours are '{}' (confidence {:.2})",
                super::shown(suspect.path.display()),
                super::shown(&suspect.class),
                suspect.share * 100.0,
                suspect.neighbours_class,
                suspect.confidence
            );
        }
    } else {
        print_json(&report)?;
    }
    Ok(())
}

/// The names of the sub-folders (classes) of a class-folder set.
fn class_folders(folder: &std::path::Path) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(folder)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|name| !name.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}
