//! Training: a Siamese ResNet18 (one network with shared weights embeds every image)
//! taught what "alike" means from a class-folder data set.
//!
//! The phases, each in its own file: [`prepare`] scans and decodes the folders into a data
//! set whose images stay paired with their labels; [`trainer::Trainer`] owns the network,
//! the loss and the optimiser and runs steps and epochs; [`monitor`] watches every epoch
//! for collapse, measures validation retrieval and keeps the best checkpoint; [`schedule`]
//! sets the learning rate. [`train`] runs them in order. Progress is reported through
//! [`TrainEvent`]s; a cancel flag (checked after every step) and a time budget stop
//! training cleanly, and the model trained so far is returned either way.

pub mod loss;
pub mod monitor;
pub mod optimizer;
pub mod prepare;
pub mod resume;
pub mod schedule;
pub mod trainer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::data::{Augment, DEFAULT_MAX_PIXELS, Preprocess, SkippedFile, default_loader_threads};
use super::device::{DeviceChoice, describe};
use super::eval::{RetrievalReport, evaluate_model};
use super::model::{
    EmbeddingModel, ImportReport, MODEL_FORMAT_VERSION, ModelConfig, ModelInfo, TrainingSummary,
    model_file_bytes,
};
use super::{EngineError, Result};
pub use monitor::{BeforeAfter, TrainingPicture};
use monitor::{EpochVerdict, Monitor};
use trainer::{EpochEnd, Trainer};

/// Epochs trained when neither an epoch count nor a time budget is given (the tutorial's).
pub const DEFAULT_EPOCHS: usize = 20;

/// A named starting point for the training settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// The tutorial recipe exactly (see `seed_reference.py`): 224 px, flip, 1000-d,
    /// random triplets, margin 1, Adam 1e-3, batch 32.
    Seed,
    /// What retrieved best at the same time budget on a real-size folder (see
    /// docs/quality.md): normalised softmax over the class folders at 112 px.
    #[default]
    Default,
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
    /// Hand libtorch the batches in channels-last (NHWC) memory order, which oneDNN's CPU
    /// convolutions run faster (docs/benchmarks.md).
    #[serde(default)]
    pub channels_last: bool,
    /// The model embeds a photo as the mean of its own and its mirror image's embedding
    /// (indexing and queries alike): twice the network work per photo.
    #[serde(default)]
    pub mirror_average: bool,
    pub device: DeviceChoice,
    pub seed: u64,
}

/// Share of a progressively resized run after which every epoch trains at full size.
pub const PROGRESSIVE_FULL_SIZE_AT: f64 = 0.7;

fn default_temperature() -> f64 {
    0.05
}

impl Preset {
    /// The settings of this preset.
    pub fn settings(self) -> TrainSettings {
        match self {
            Self::Seed => TrainSettings {
                preset: self,
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
                channels_last: false,
                mirror_average: false,
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
            Self::Default => TrainSettings {
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
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Seed => "seed",
            Self::Default => "default",
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
        } else if !(1..=crate::engine::model::MAX_EMBEDDING_DIM).contains(&self.embedding_dim) {
            // The bound every loader enforces: a model it would call damaged is never made.
            return Err(EngineError::Config(format!(
                "embedding size must be between 1 and {}",
                crate::engine::model::MAX_EMBEDDING_DIM
            )));
        } else if !(0.0..1.0).contains(&self.ema_decay) {
            Some("the weight average's decay (--ema) must be at least 0 and below 1")
        } else if self.progressive_from_px.is_some_and(|from| from < 16) {
            // (A start above the image size trains every epoch at the image size.)
            Some("progressive resizing must start at 16 pixels or more")
        } else if !(self.mixup_alpha >= 0.0 && self.mixup_alpha.is_finite()) {
            Some("mixup's alpha must be zero or a positive number")
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

    /// The model these settings train.
    pub fn model_config(&self) -> ModelConfig {
        ModelConfig {
            architecture: "resnet18".into(),
            embedding_dim: self.embedding_dim,
            l2_normalize: self.l2_normalize,
            mirror_average: self.mirror_average,
            preprocess: Preprocess {
                image_size_px: self.image_size_px,
                mean: Preprocess::SEED_MEAN,
                std: Preprocess::SEED_STD,
            },
        }
    }
}

/// A training job: where the data is and how to train.
#[derive(Debug, Clone)]
pub struct TrainJob {
    pub data: PathBuf,
    /// A second class-folder set with the same classes: validation loss and retrieval
    /// (mAP@R) after every epoch, the best epoch kept, and full metrics at the end.
    pub validation: Option<PathBuf>,
    /// torchvision-named ResNet18 weights (.safetensors) to start from.
    pub weights: Option<PathBuf>,
    /// Without a validation folder: this share of each class's photos (classes with
    /// enough of them) is held out of training and validates it instead, so the run can
    /// still say how well it retrieves.
    pub holdout_share: Option<f64>,
    /// A Likeness model to continue training (its network and preprocessing replace the
    /// settings' own; the loss starts afresh).
    pub init_model: Option<PathBuf>,
    /// A Likeness model whose run goes on where it stopped, from the training state beside
    /// it ([`resume`]): its settings, optimiser and schedule carry on; the job's time
    /// budget, epochs and device are this run's.
    pub resume: Option<PathBuf>,
    pub settings: TrainSettings,
    pub max_pixels: u64,
    pub loader_threads: usize,
}

impl TrainJob {
    pub fn new(data: PathBuf, settings: TrainSettings) -> Self {
        Self {
            data,
            validation: None,
            weights: None,
            holdout_share: None,
            init_model: None,
            resume: None,
            settings,
            max_pixels: DEFAULT_MAX_PIXELS,
            loader_threads: default_loader_threads(),
        }
    }
}

/// Progress of a training run, in the order they happen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TrainEvent {
    /// Decoding the images into memory: `done` of `total`.
    Preparing { done: usize, total: usize },
    /// The data is ready and the first step is about to run.
    Started {
        device: String,
        classes: usize,
        images: usize,
        steps_per_epoch: usize,
        /// The most epochs the run may take; `None`: until the time budget runs out.
        epochs: Option<usize>,
        /// The time budget in seconds, when there is one.
        budget_secs: Option<f64>,
        skipped: Vec<SkippedFile>,
        notes: Vec<String>,
    },
    /// One optimisation step finished.
    Step {
        /// 1-based.
        epoch: usize,
        /// 1-based within the epoch.
        step: usize,
        steps_per_epoch: usize,
        global_step: usize,
        /// Anchors in this step's batch: triplets (random triplets) or images (otherwise).
        anchors: usize,
        loss: f64,
        lr: f64,
        elapsed_secs: f64,
        /// Estimated seconds until training ends (by steps or by the time budget).
        remaining_secs: f64,
    },
    /// An epoch finished.
    EpochEnd {
        epoch: usize,
        mean_loss: f64,
        validation_loss: Option<f64>,
        /// Retrieval on the validation folder after this epoch (gallery: a sample of the
        /// training images), when a validation folder was given.
        validation_map_at_r: Option<f64>,
        /// Spread of the embeddings relative to their size; near zero means collapse.
        embedding_spread: f64,
        elapsed_secs: f64,
    },
    /// Something the person should know while training runs (a collapse was caught and
    /// undone, for instance).
    Warning { message: String },
    /// Measuring retrieval on the validation folder: `done` of `total` images embedded.
    Evaluating { done: usize, total: usize },
}

/// What a training run produced.
pub struct TrainOutcome {
    pub model: EmbeddingModel,
    pub summary: TrainingSummary,
    /// Retrieval on the validation folder (gallery: the training folder).
    pub validation: Option<RetrievalReport>,
    pub import: Option<ImportReport>,
    /// The validation photos' map and retrieval before and after training (when there
    /// was a validation set).
    pub before_after: Option<BeforeAfter>,
    /// What a later run needs to go on from this one; save it beside the model with
    /// [`resume::save_train_state`].
    pub state: resume::TrainState,
}

/// A run to go on from: its model (as saved) and the state saved beside it.
struct Resumption {
    model: EmbeddingModel,
    model_id: String,
    saved: resume::SavedTrainState,
}

impl Resumption {
    fn open(path: &std::path::Path, device: tch::Device) -> Result<Self> {
        let (model, info) = super::model::load_model(path, device)?;
        let saved = resume::load_train_state(path, &info.model_id)?;
        if saved.info.settings.model_config().embedding_dim != model.config.embedding_dim {
            return Err(EngineError::Config(format!(
                "the training state beside {} describes another network; start a new run with --init-model",
                path.display()
            )));
        }
        Ok(Self {
            model,
            model_id: info.model_id,
            saved,
        })
    }

    /// The earlier run's settings with this run's budget, epochs and device.
    fn settings(&self, this_run: &TrainSettings) -> TrainSettings {
        TrainSettings {
            epochs: this_run.epochs,
            max_seconds: this_run.max_seconds,
            device: this_run.device,
            ..self.saved.info.settings.clone()
        }
    }
}

/// Runs a job. Panics inside libtorch (out of memory, device errors) become errors.
/// Progress events go to `on_event`, which may be called from loader threads.
pub fn train(
    job: &TrainJob,
    cancel: &AtomicBool,
    on_event: &(dyn Fn(TrainEvent) + Sync),
) -> Result<TrainOutcome> {
    job.settings.validate()?;
    let device = job.settings.device.resolve()?;
    let clock = Instant::now();
    let mut resumption = match &job.resume {
        Some(path) => Some(Resumption::open(path, device)?),
        None => None,
    };
    let resumed_job;
    let job = match &resumption {
        Some(resumption) => {
            resumed_job = TrainJob {
                settings: resumption.settings(&job.settings),
                ..job.clone()
            };
            &resumed_job
        }
        None => job,
    };
    let settings = &job.settings;
    tch::manual_seed(settings.seed as i64);

    let data = prepare::prepare(job, cancel, on_event)?;
    let prepare_secs = clock.elapsed().as_secs_f64();
    let (model, import) = match resumption.as_mut() {
        Some(resumption) => {
            let placeholder = EmbeddingModel::new(resumption.model.config.clone(), device)?;
            (std::mem::replace(&mut resumption.model, placeholder), None)
        }
        None => build_model(job, device)?,
    };
    let mut notes = data.notes.clone();
    if let (Some(report), Some(path)) = (&import, &job.weights) {
        let fc = if report.reinitialised.is_empty() {
            String::new()
        } else {
            format!(
                "; the ImageNet classifier (fc) does not fit a {}-d embedding and starts fresh",
                settings.embedding_dim
            )
        };
        notes.push(format!(
            "pretrained weights from {}: {} tensors loaded{fc}",
            path.display(),
            report.loaded
        ));
    }
    let mut trainer = Trainer::new(model, settings, &data, job.loader_threads)?;
    if let Some(resumption) = &resumption {
        let earlier = &resumption.saved.info;
        if earlier.classes != data.training.dataset.classes {
            return Err(EngineError::Dataset(format!(
                "{} has the classes {} but the run being resumed trained on {}; resume on the same class folders, or start a new run with --init-model",
                job.data.display(),
                data.training.dataset.classes.join(", "),
                earlier.classes.join(", ")
            )));
        }
        trainer.resume(&resumption.saved)?;
        notes.push(format!(
            "going on from model {}: {} steps, {} epochs and {:.0} s trained before; the learning rate continues its schedule",
            resumption.model_id, earlier.position.steps, earlier.epochs, earlier.position.secs
        ));
    }
    let mut monitor = Monitor::new(settings, &data, &trainer)?;
    // The budget covers the whole run: the steps end early enough for what follows them.
    let images = data.training.len() + data.validation.as_ref().map_or(0, |v| v.len());
    let final_evaluation_secs = if job.validation.is_some() {
        // It reads both folders from disk again (as long as preparing did) and embeds them.
        prepare_secs + images as f64 * monitor.embed_secs_per_image
    } else {
        0.0
    };
    // The last observation and the before/after picture redo most of what measuring the
    // starting model did (1.5× was measured on flowers5-train: docs/benchmarks.md).
    trainer.reserve_for_finish(1.5 * monitor.setup_secs + final_evaluation_secs);
    let device_label = describe(device);
    on_event(TrainEvent::Started {
        device: device_label.clone(),
        classes: data.training.dataset.classes.len(),
        images: data.training.dataset.images.len(),
        steps_per_epoch: trainer.steps_per_epoch(),
        epochs: settings.epoch_limit(),
        budget_secs: settings.max_seconds,
        skipped: data.skipped.clone(),
        notes,
    });

    let mut summary = TrainingSummary {
        data_folder: job.data.display().to_string(),
        classes: data.training.dataset.classes.clone(),
        images: data.training.dataset.images.len(),
        skipped_files: data.skipped.len(),
        preset: settings.preset.label().into(),
        settings: serde_json::to_value(settings).unwrap_or_default(),
        device: device_label,
        pretrained_weights: job.weights.as_ref().map(|p| p.display().to_string()),
        steps_per_epoch: trainer.steps_per_epoch(),
        validation_source: data.validation_source.clone(),
        resumed_from: resumption.as_ref().map(|r| super::model::ResumedFrom {
            model_id: r.model_id.clone(),
            steps: r.saved.info.position.steps,
            secs: r.saved.info.position.secs,
            epochs: r.saved.info.epochs,
        }),
        ..Default::default()
    };
    let mut epoch = 0;
    while !cancel.load(Ordering::Relaxed) && settings.epoch_limit().is_none_or(|n| epoch < n) {
        epoch += 1;
        let EpochEnd {
            mean_loss,
            stop,
            steps,
        } = trainer.run_epoch(epoch, &clock, cancel, on_event)?;
        summary.epoch_losses.push(mean_loss);
        summary.epochs = epoch;
        match stop {
            Some(trainer::Stop::Cancelled) => summary.cancelled = true,
            Some(trainer::Stop::TimeBudget) => summary.stopped_by_time_budget = true,
            None => {}
        }
        if steps == 0 {
            break;
        }
        if stop == Some(trainer::Stop::Cancelled) {
            // Cancel takes effect now: no validation pass (tens of seconds on a CPU)
            // after the person asked to stop.
            break;
        }
        let final_epoch = stop.is_some() || settings.epoch_limit() == Some(epoch);
        // The run is judged by what it would save: the weight average, when it keeps one.
        trainer.show_average(true);
        let observed = monitor.observe(epoch, mean_loss, final_epoch, &mut trainer, cancel);
        if !final_epoch {
            trainer.show_average(false);
        }
        let observed = match observed {
            // Cancelled during validation: it ends now, as after a step.
            Err(EngineError::Cancelled) => {
                summary.cancelled = true;
                break;
            }
            observed => observed?,
        };
        summary.validation_losses.extend(observed.validation_loss);
        summary
            .validation_map_at_r
            .extend(observed.validation_map_at_r);
        if observed.verdict != EpochVerdict::Skipped {
            summary.embedding_spreads.push(observed.embedding_spread);
        }
        on_event(TrainEvent::EpochEnd {
            epoch,
            mean_loss,
            validation_loss: observed.validation_loss,
            validation_map_at_r: observed.validation_map_at_r,
            embedding_spread: observed.embedding_spread,
            elapsed_secs: clock.elapsed().as_secs_f64(),
        });
        if let EpochVerdict::Recovered { message } = observed.verdict {
            summary.warnings.push(message.clone());
            on_event(TrainEvent::Warning { message });
        }
        if stop.is_some() {
            break;
        }
    }
    let steps_before = summary.resumed_from.as_ref().map_or(0, |e| e.steps);
    if trainer.global_step() == steps_before && cancel.load(Ordering::Relaxed) {
        // Nothing was trained: there is no model worth keeping.
        return Err(EngineError::Cancelled);
    }
    let earlier = summary.resumed_from.as_ref();
    summary.steps = trainer.global_step() - earlier.map_or(0, |e| e.steps);
    summary.train_secs = clock.elapsed().as_secs_f64();
    let state = trainer.state(
        summary.epochs + earlier.map_or(0, |e| e.epochs),
        &data.training.dataset.classes,
    );
    trainer.show_average(true);
    monitor.finish(&mut trainer, &mut summary)?;
    let before_after = if summary.cancelled || cancel.load(Ordering::Relaxed) {
        None
    } else {
        monitor.before_after(trainer.model())?
    };
    let model = trainer.into_model();

    let validation = match (&job.validation, summary.cancelled) {
        (Some(folder), false) => final_evaluation(job, folder, &model, &summary, cancel, on_event)?,
        _ => None,
    };
    Ok(TrainOutcome {
        model,
        summary,
        validation,
        import,
        before_after,
        state,
    })
}

/// Builds the network, from scratch or from pretrained weights.
fn build_model(
    job: &TrainJob,
    device: tch::Device,
) -> Result<(EmbeddingModel, Option<ImportReport>)> {
    if let Some(path) = &job.init_model {
        let (model, info) = super::model::load_model(path, device)?;
        if info.config.embedding_dim != job.settings.embedding_dim {
            return Err(EngineError::Config(format!(
                "{} makes {}-d embeddings but the training settings ask for {}-d; pass \
                 --embedding-dim {} to continue training it",
                path.display(),
                info.config.embedding_dim,
                job.settings.embedding_dim,
                info.config.embedding_dim
            )));
        }
        return Ok((model, None));
    }
    let mut config = job.settings.model_config();
    if job.weights.is_some() {
        // Pretrained weights learned their features on ImageNet-normalised pixels; the
        // model file records this, so indexing and search normalise the same way.
        config.preprocess.mean = Preprocess::IMAGENET_MEAN;
        config.preprocess.std = Preprocess::IMAGENET_STD;
    }
    let mut model = EmbeddingModel::new(config, device)?;
    let import = match &job.weights {
        Some(path) => Some(model.import_torchvision(path)?),
        None => None,
    };
    Ok((model, import))
}

/// Full retrieval metrics on the validation folder (gallery: the whole training folder).
/// Cancelling here keeps the model and skips the metrics.
fn final_evaluation(
    job: &TrainJob,
    folder: &std::path::Path,
    model: &EmbeddingModel,
    summary: &TrainingSummary,
    cancel: &AtomicBool,
    on_event: &(dyn Fn(TrainEvent) + Sync),
) -> Result<Option<RetrievalReport>> {
    // The model id is only known once serialised; evaluation does not need it.
    let (_, model_id) = model_file_bytes(model, summary)?;
    let info = ModelInfo {
        format_version: MODEL_FORMAT_VERSION,
        model_id,
        config: model.config.clone(),
        summary: summary.clone(),
    };
    match evaluate_model(
        model,
        &info,
        &job.data,
        folder,
        job.max_pixels,
        &|done, total| on_event(TrainEvent::Evaluating { done, total }),
        cancel,
    ) {
        Ok(report) => Ok(Some(report)),
        Err(EngineError::Cancelled) => Ok(None),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_budget_without_epochs_trains_until_the_budget() {
        let mut settings = Preset::Default.settings();
        assert_eq!(settings.epoch_limit(), Some(DEFAULT_EPOCHS));
        settings.max_seconds = Some(600.0);
        assert_eq!(settings.epoch_limit(), None, "no silent epoch cap");
        settings.epochs = Some(3);
        assert_eq!(
            settings.epoch_limit(),
            Some(3),
            "epochs the user set still bound it"
        );
    }

    #[test]
    fn settings_from_older_model_files_still_read() {
        let mut old = serde_json::to_value(Preset::Seed.settings()).expect("json");
        let object = old.as_object_mut().expect("object");
        for field in ["loss", "temperature", "label_smoothing", "warmup_fraction"] {
            object.remove(field);
        }
        object.insert("epochs".into(), serde_json::json!(20));
        let settings: TrainSettings = serde_json::from_value(old).expect("old settings read");
        assert_eq!(settings.loss, Loss::Triplet);
        assert_eq!(settings.epochs, Some(20));
    }
}
