//! Everything that shapes a training run: the presets and the settings they fill, which
//! flags override. A model file keeps the settings it was trained with.

use serde::{Deserialize, Serialize};

use crate::engine::data::Augment;
use crate::engine::device::DeviceChoice;
use crate::engine::{EngineError, Result};

/// Largest embedding a model file may describe (and so the largest training may make).
pub const MAX_EMBEDDING_DIM: usize = 65_536;

/// Epochs trained when neither an epoch count nor a time budget is given (the tutorial's).
pub const DEFAULT_EPOCHS: usize = 20;

/// A named starting point for the training settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// The tutorial recipe exactly (see `seed_reference.py`): 224 px, flip, 1000-d,
    /// random triplets, margin 1, Adam 1e-3, batch 32.
    Seed,
    /// EfficientNet-Lite0 from the ImageNet weights that ship with Likeness, fine-tuned
    /// with normalised softmax over the class folders (docs/quality.md).
    #[default]
    Default,
    /// The best recipe from scratch (the default before the pretrained start): ResNet18,
    /// normalised softmax at 112 px. Training falls back to it when the shipped weights
    /// are missing.
    Scratch,
}

/// The network that is trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backbone {
    /// ResNet18 (11.2 M weights): the seed's, and the recipe from scratch.
    #[default]
    Resnet18,
    /// EfficientNet-Lite0 (3.4 M weights), whose ImageNet weights ship with Likeness.
    EfficientnetLite0,
}

impl Backbone {
    /// The name a model file records.
    pub const fn architecture(self) -> &'static str {
        match self {
            Self::Resnet18 => "resnet18",
            Self::EfficientnetLite0 => "efficientnet-lite0",
        }
    }
}

/// What the network is trained to minimise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Loss {
    /// Triplet loss with a margin on squared L2 distance; `mining` says how triplets form.
    #[default]
    Triplet,
    /// Normalised softmax (Zhai & Wu 2019): cosine similarity to one learned proxy per
    /// class, divided by a temperature, with cross-entropy. Batches are shuffled images.
    NormalizedSoftmax,
}

/// How triplets are formed (triplet loss only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mining {
    /// Independent random (anchor, positive, negative) triplets, the seed's TripletData;
    /// the batch size counts triplets.
    RandomTriplets,
    /// Batches of P classes × K images; each image is an anchor against the hardest
    /// positive and negative in the batch; the batch size counts images.
    BatchHard,
}

/// Learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    Constant,
    /// Cosine decay to zero over the run (by steps, or by time under a time budget).
    Cosine,
}

/// Everything that shapes training; presets fill it, flags override it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    pub preset: Preset,
    /// The network (files from before it was a choice trained ResNet18).
    #[serde(default)]
    pub backbone: Backbone,
    /// Start from the ImageNet weights of the backbone (shipped with Likeness for
    /// EfficientNet-Lite0; downloaded on request for ResNet18) rather than from scratch.
    #[serde(default)]
    pub pretrained: bool,
    /// The backbone learns at this share of `lr`; the embedding layer and the class
    /// proxies at `lr` itself (a pretrained backbone needs smaller steps than a new head).
    #[serde(default = "default_lr_factor")]
    pub backbone_lr_factor: f64,
    /// At most this many epochs. `None`: until the time budget runs out, or
    /// [`DEFAULT_EPOCHS`] without a budget.
    pub epochs: Option<usize>,
    /// Stop after the step that crosses this many seconds (preparation included).
    pub max_seconds: Option<f64>,
    pub image_size_px: u32,
    pub batch_size: usize,
    pub lr: f64,
    #[serde(default)]
    pub loss: Loss,
    /// Triplet loss margin.
    pub margin: f64,
    /// Normalised softmax temperature (logits are cosines divided by it).
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Normalised softmax label smoothing.
    #[serde(default)]
    pub label_smoothing: f64,
    pub embedding_dim: usize,
    pub l2_normalize: bool,
    pub mining: Mining,
    /// K in P × K batches (batch-hard mining).
    pub images_per_class: usize,
    pub augment: Augment,
    /// Decoupled weight decay (AdamW); 0 is plain Adam.
    pub weight_decay: f64,
    pub schedule: Schedule,
    /// Share of the run (steps or budget) over which the learning rate warms up linearly.
    #[serde(default)]
    pub warmup_fraction: f64,
    /// Keep BatchNorm in inference mode (running statistics from pretrained weights) while
    /// fine-tuning; its scale and shift still learn.
    #[serde(default)]
    pub freeze_batch_norm: bool,
    /// Keep an exponential moving average of the weights with this decay per step (0: no
    /// average). Validation, the best-epoch choice and the saved model use the average.
    #[serde(default)]
    pub ema_decay: f64,
    /// Progressive resizing: the first epochs train at this many pixels and the size grows
    /// to `image_size_px`, reached at [`PROGRESSIVE_FULL_SIZE_AT`] of the run (small images
    /// early buy more steps in the same time). `None`, or a start at or above the image
    /// size: every epoch at full size.
    #[serde(default)]
    pub progressive_from_px: Option<u32>,
    /// Mixup: each batch is blended with a shuffled copy of itself by a Beta(α, α) weight
    /// and the loss by the same weight. 0: off.
    #[serde(default)]
    pub mixup_alpha: f64,
    /// CutMix: a box of a shuffled partner is pasted into each image, its area drawn from
    /// Beta(α, α), and the loss is shared by area. 0: off. Not with mixup.
    #[serde(default)]
    pub cutmix_alpha: f64,
    /// Hand libtorch the batches in channels-last (NHWC) memory order, which oneDNN's CPU
    /// convolutions run faster (docs/benchmarks.md).
    #[serde(default)]
    pub channels_last: bool,
    /// The model embeds a photo as the mean of its own and its mirror image's embedding
    /// (indexing and queries alike): twice the network work per photo.
    #[serde(default)]
    pub mirror_average: bool,
    /// The model embeds photos (indexing, queries, validation) at this multiple of
    /// `image_size_px`: training's random crops show things larger than a whole photo at
    /// the same size does, and a slightly larger whole photo matches them (FixRes,
    /// Touvron et al. 2019; docs/quality.md). 1: the training size.
    #[serde(default = "default_embed_scale")]
    pub embed_scale: f64,
    pub device: DeviceChoice,
    pub seed: u64,
}

/// EfficientNet-Lite0 halves its input five times, and its last 5×5 stride-2 convolution
/// needs at least 2 pixels left: 32-px images at the least.
pub const LITE0_MIN_IMAGE_PX: u32 = 32;

/// Share of a progressively resized run after which every epoch trains at full size.
pub const PROGRESSIVE_FULL_SIZE_AT: f64 = 0.7;

fn default_temperature() -> f64 {
    0.05
}

fn default_lr_factor() -> f64 {
    1.0
}

fn default_embed_scale() -> f64 {
    1.0
}

/// The largest [`TrainSettings::embed_scale`]: past it the network sees mostly upscaling.
pub const MAX_EMBED_SCALE: f64 = 2.0;

impl Preset {
    /// The settings of this preset.
    pub fn settings(self) -> TrainSettings {
        match self {
            Self::Seed => TrainSettings {
                preset: self,
                backbone: Backbone::Resnet18,
                pretrained: false,
                backbone_lr_factor: 1.0,
                epochs: None,
                max_seconds: None,
                image_size_px: 224,
                batch_size: 32,
                lr: 1e-3,
                loss: Loss::Triplet,
                margin: 1.0,
                temperature: default_temperature(),
                label_smoothing: 0.0,
                embedding_dim: 1000,
                l2_normalize: false,
                mining: Mining::RandomTriplets,
                images_per_class: 4,
                augment: Augment::Flip,
                weight_decay: 0.0,
                schedule: Schedule::Constant,
                warmup_fraction: 0.0,
                freeze_batch_norm: false,
                ema_decay: 0.0,
                progressive_from_px: None,
                mixup_alpha: 0.0,
                cutmix_alpha: 0.0,
                channels_last: false,
                mirror_average: false,
                embed_scale: 1.0,
                device: DeviceChoice::Auto,
                seed: 0,
            },
            // Normalised softmax on 512-d unit embeddings (docs/quality.md): on 2534 real
            // photos, triplet losses from scratch either learned slowly (the seed) or
            // collapsed (batch-hard), while a classification loss over the class folders
            // learned steadily and its cosine geometry is what retrieval searches. 112 px
            // buys about four times the steps of 224 px on a CPU; random crops and flips
            // keep many epochs from memorising; AdamW with a short warm-up and cosine decay.
            // Quality II (docs/quality.md): the first epochs at 64 px growing to 112 px
            // (about 1.7 times the steps in the same time), channels-last batches (oneDNN's
            // faster convolutions), and the weights' moving average is what is saved:
            // mAP@R +0.11 at 600 s on the split. The mirrored embedding is off: it doubled
            // indexing time for no gain.
            Self::Scratch => TrainSettings {
                preset: self,
                image_size_px: 112,
                batch_size: 64,
                lr: 2e-3,
                loss: Loss::NormalizedSoftmax,
                temperature: 0.05,
                label_smoothing: 0.1,
                embedding_dim: 512,
                l2_normalize: true,
                augment: Augment::CropFlip,
                weight_decay: 0.01,
                schedule: Schedule::Cosine,
                warmup_fraction: 0.03,
                ema_decay: 0.998,
                progressive_from_px: Some(64),
                channels_last: true,
                ..Self::Seed.settings()
            },
            // Issue #39 (docs/quality.md): EfficientNet-Lite0 from its ImageNet weights, the
            // same normalised softmax on a 512-d projection of its 1280 pooled features.
            // The backbone learns at 0.3 of the head's rate (it has to adapt, not learn
            // anew: 0.1 and 0.5 both lost mAP@R in the 120-s screen), after a short warm-up
            // that lets the new head and proxies settle first; 128 px, the size the
            // reference fine-tune uses (160 px bought 38 % fewer steps and lost); no weight
            // average (0.99 lost); BatchNorm keeps learning its statistics.
            Self::Default => TrainSettings {
                preset: self,
                backbone: Backbone::EfficientnetLite0,
                pretrained: true,
                backbone_lr_factor: 0.3,
                image_size_px: 128,
                batch_size: 32,
                lr: 1e-2,
                weight_decay: 1e-4,
                warmup_fraction: 0.03,
                ema_decay: 0.0,
                progressive_from_px: None,
                embed_scale: 1.125,
                ..Self::Scratch.settings()
            },
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Seed => "seed",
            Self::Default => "default",
            Self::Scratch => "scratch",
        }
    }
}

impl TrainSettings {
    /// Errors on values that cannot train.
    pub fn validate(&self) -> Result<()> {
        let problem = if self.epochs == Some(0) {
            Some("epochs must be at least 1")
        } else if !(16..=1024).contains(&self.image_size_px) {
            Some("image size must be between 16 and 1024 pixels")
        } else if self.batch_size < 2 {
            Some("batch size must be at least 2")
        } else if self.backbone == Backbone::EfficientnetLite0
            && (self.image_size_px < LITE0_MIN_IMAGE_PX
                || self
                    .progressive_from_px
                    .is_some_and(|px| px < LITE0_MIN_IMAGE_PX))
        {
            Some("EfficientNet-Lite0 needs images of at least 32 pixels")
        } else if !(self.embed_scale >= 1.0 && self.embed_scale <= MAX_EMBED_SCALE) {
            Some("the embedding size's multiple of the training size must be from 1 to 2")
        } else if !(self.backbone_lr_factor > 0.0 && self.backbone_lr_factor <= 1.0) {
            Some("the backbone's share of the learning rate must be more than 0 and at most 1")
        } else if !(self.lr > 0.0 && self.lr.is_finite()) {
            Some("learning rate must be a positive number")
        } else if !(self.margin >= 0.0 && self.margin.is_finite()) {
            Some("margin must be zero or positive")
        } else if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            Some("temperature must be a positive number")
        } else if !(0.0..1.0).contains(&self.label_smoothing) {
            Some("label smoothing must be at least 0 and below 1")
        } else if !(0.0..1.0).contains(&self.warmup_fraction) {
            Some("warm-up must be a fraction of the run, at least 0 and below 1")
        } else if !(1..=MAX_EMBEDDING_DIM).contains(&self.embedding_dim) {
            // The bound every loader enforces: a model it would call damaged is never made.
            return Err(EngineError::Config(format!(
                "embedding size must be between 1 and {}",
                MAX_EMBEDDING_DIM
            )));
        } else if !(0.0..1.0).contains(&self.ema_decay) {
            Some("the weight average's decay (--ema) must be at least 0 and below 1")
        } else if self.progressive_from_px.is_some_and(|from| from < 16) {
            // (A start above the image size trains every epoch at the image size.)
            Some("progressive resizing must start at 16 pixels or more")
        } else if !(self.mixup_alpha >= 0.0 && self.mixup_alpha.is_finite()) {
            Some("mixup's alpha must be zero or a positive number")
        } else if !(self.cutmix_alpha >= 0.0 && self.cutmix_alpha.is_finite()) {
            Some("CutMix's alpha must be zero or a positive number")
        } else if self.mixup_alpha > 0.0 && self.cutmix_alpha > 0.0 {
            Some("mixup and CutMix blend the same batch: choose one of them")
        } else if self.images_per_class < 2 {
            Some("images per class (K) must be at least 2")
        } else if self.max_seconds.is_some_and(|s| s.is_nan() || s <= 0.0) {
            Some("the time budget must be a positive number of seconds")
        } else {
            None
        };
        problem.map_or(Ok(()), |p| Err(EngineError::Config(p.into())))
    }

    /// The most epochs this run may train: the epochs asked for; without them, until the
    /// time budget runs out, or [`DEFAULT_EPOCHS`] when there is no budget either.
    pub fn epoch_limit(&self) -> Option<usize> {
        match (self.epochs, self.max_seconds) {
            (Some(epochs), _) => Some(epochs),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_EPOCHS),
        }
    }
}
