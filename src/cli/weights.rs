//! `likeness weights`: the ImageNet-pretrained ResNet18 weights training can start from.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use serde_json::json;

use super::{OutputArgs, absolute, print_json, progress};
use crate::engine::files::user_data_dir;
use crate::engine::model::pretrained::{
    IMAGENET_RESNET18_APPROX_MB, WeightsSource, check_resnet18_weights, download_weights,
};

#[derive(Debug, clap::Args)]
pub struct WeightsArgs {
    #[command(subcommand)]
    pub action: WeightsAction,
}

#[derive(Debug, clap::Subcommand)]
pub enum WeightsAction {
    /// Download the standard ResNet18 ImageNet weights (about 47 MB) into the user data
    /// folder, check their names and shapes, and print where they are. `likeness train
    /// --weights imagenet` then starts from them.
    Download {
        /// Download from here instead (default: Hugging Face, timm/resnet18.tv_in1k; the
        /// LIKENESS_WEIGHTS_URL environment variable does the same).
        #[arg(long)]
        url: Option<String>,
        /// Download again even when the file is already there.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Check that a .safetensors file holds torchvision ResNet18 weights.
    Check {
        file: PathBuf,
        #[command(flatten)]
        output: OutputArgs,
    },
}

/// The standard source, with `url` in place of the default when given.
fn source(url: Option<String>) -> WeightsSource {
    let mut source = WeightsSource::imagenet_resnet18(&user_data_dir());
    if let Some(url) = url {
        source.url = url;
    }
    source
}

pub fn run(args: WeightsArgs) -> anyhow::Result<()> {
    match args.action {
        WeightsAction::Download { url, force, output } => {
            let source = source(url);
            let downloaded = force || source.cached().is_none();
            let report = if downloaded {
                fetch(&source)?
            } else {
                check_resnet18_weights(&source.cache_path).with_context(|| {
                    format!(
                        "the cached weights are damaged; run `likeness weights download --force` \
                         (file: {})",
                        source.cache_path.display()
                    )
                })?
            };
            eprintln!(
                "{} ResNet18 ImageNet weights ({} tensors): {}",
                if downloaded {
                    "downloaded"
                } else {
                    "already have the"
                },
                report.loaded,
                source.cache_path.display()
            );
            if output.json {
                print_json(&json!({
                    "path": absolute(&source.cache_path),
                    "downloaded": downloaded,
                    "tensors": report.loaded,
                    "url": source.url,
                }))?;
            }
        }
        WeightsAction::Check { file, output } => {
            let report = check_resnet18_weights(&file)
                .with_context(|| format!("{} cannot be used as --weights", file.display()))?;
            eprintln!(
                "{}: torchvision ResNet18 weights, {} tensors",
                file.display(),
                report.loaded
            );
            if output.json {
                print_json(&json!({ "path": absolute(&file), "tensors": report.loaded }))?;
            }
        }
    }
    Ok(())
}

/// Downloads the standard weights with a progress bar on stderr.
fn fetch(source: &WeightsSource) -> anyhow::Result<crate::engine::model::ImportReport> {
    eprintln!(
        "downloading ResNet18 ImageNet weights (about {IMAGENET_RESNET18_APPROX_MB} MB) from {}",
        source.url
    );
    let bar = progress::bar(0, "download");
    let report = download_weights(source, &AtomicBool::new(false), &|p| {
        if let Some(total) = p.total_bytes {
            bar.set_length(total);
        }
        bar.set_position(p.bytes);
    });
    bar.finish_and_clear();
    Ok(report?)
}

/// What `--weights` names: a file, or `imagenet` for the standard weights (downloaded into
/// the user data folder the first time).
pub fn resolve_weights_argument(argument: &std::path::Path) -> anyhow::Result<PathBuf> {
    if argument.exists() || argument.as_os_str() != "imagenet" {
        return Ok(argument.to_path_buf());
    }
    let source = source(None);
    if source.cached().is_none() {
        fetch(&source)?;
    }
    Ok(source.cache_path)
}

/// What `--model` names: a model file, or `imagenet` for ImageNet features with no
/// training: the shipped EfficientNet-Lite0's, made once into the user's models folder.
/// When those weights are missing it says so and uses the ResNet18 features (their weights
/// downloaded the first time).
pub fn resolve_model_argument(argument: &std::path::Path) -> anyhow::Result<PathBuf> {
    use crate::engine::model::pretrained::{
        IMAGENET_FEATURES_MODEL, LITE0_FEATURES_MODEL, imagenet_feature_model, lite0_feature_model,
        shipped_lite0_weights,
    };
    if argument.as_os_str() != "imagenet" || argument.exists() {
        return Ok(argument.to_path_buf());
    }
    let models = user_data_dir().join("models");
    match shipped_lite0_weights() {
        Ok(_) => {
            let path = models.join(LITE0_FEATURES_MODEL);
            lite0_feature_model(&path).context("could not make the ImageNet feature model")?;
            Ok(path)
        }
        Err(error) => {
            eprintln!(
                "note: {error}; searching with the ImageNet ResNet18 features instead \
                 (downloaded the first time)"
            );
            let weights = resolve_weights_argument(argument)?;
            let path = models.join(IMAGENET_FEATURES_MODEL);
            imagenet_feature_model(&weights, &path)
                .context("could not make the ImageNet feature model")?;
            Ok(path)
        }
    }
}

/// [`resolve_model_argument`] for an optional `--model` (search and export take the
/// index's own model when none is given).
pub fn resolve_optional_model(
    argument: Option<&std::path::Path>,
) -> anyhow::Result<Option<PathBuf>> {
    argument.map(resolve_model_argument).transpose()
}
