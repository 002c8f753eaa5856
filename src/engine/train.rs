//! The training loop: a Siamese ResNet18 (one network embeds anchor, positive and
//! negative) trained with a triplet loss on a class-folder data set.
//!
//! Progress is reported through [`TrainEvent`]s; a cancel flag (checked after every
//! step) and a time budget stop training cleanly, and the model trained so far is
//! returned either way.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn::OptimizerConfig;

use super::data::{
    Augment, BatchStream, DEFAULT_MAX_PIXELS, LabeledDataset, PreparedImages, Preprocess,
    SkippedFile, default_loader_threads, pk_epoch, seed_triplet_epoch,
};
use super::device::{DeviceChoice, describe};
use super::eval::{RetrievalReport, evaluate_model};
use super::loss::{batch_hard_loss, triplet_loss};
use super::model::{
    EmbeddingModel, ImportReport, ModelConfig, ModelInfo, TrainingSummary, model_file_bytes,
};
use super::{EngineError, Result};

/// A named starting point for the training settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// The tutorial recipe exactly (see `seed_reference.py`): 224 px, flip, 1000-d,
    /// random triplets, margin 1, Adam 1e-3, batch 32.
    Seed,
    /// What retrieved best at the same time budget (see docs/quality.md): the seed recipe
    /// at 112 px with batch-hard mining over P classes × K images.
    #[default]
    Default,
}

/// How triplets are formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
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
    pub epochs: usize,
    /// Stop after the step that crosses this many seconds (preparation included).
    pub max_seconds: Option<f64>,
    pub image_size_px: u32,
    pub batch_size: usize,
    pub lr: f64,
    pub margin: f64,
    pub embedding_dim: usize,
    pub l2_normalize: bool,
    pub mining: Mining,
    /// K in P × K batches (batch-hard mining).
    pub images_per_class: usize,
    pub augment: Augment,
    pub weight_decay: f64,
    pub schedule: Schedule,
    /// Keep BatchNorm in inference mode (running statistics from pretrained weights) while
    /// fine-tuning; its scale and shift still learn.
    #[serde(default)]
    pub freeze_batch_norm: bool,
    pub device: DeviceChoice,
    pub seed: u64,
}

impl Preset {
    /// The settings of this preset.
    pub fn settings(self) -> TrainSettings {
        match self {
            Self::Seed => TrainSettings {
                preset: self,
                epochs: 20,
                max_seconds: None,
                image_size_px: 224,
                batch_size: 32,
                lr: 1e-3,
                margin: 1.0,
                embedding_dim: 1000,
                l2_normalize: false,
                mining: Mining::RandomTriplets,
                images_per_class: 4,
                augment: Augment::Flip,
                weight_decay: 0.0,
                schedule: Schedule::Constant,
                freeze_batch_norm: false,
                device: DeviceChoice::Auto,
                seed: 0,
            },
            // The seed recipe at 112 px with batch-hard mining (docs/quality.md): four times
            // fewer pixels buy about three and a half times as many steps in the same time on
            // a CPU, and batch-hard batches of 32 images (8 classes × 4) cost a third of the
            // seed's 32 triplets (96 images) per step while every image meets the hardest
            // positive and negative in its batch. Together they raised mAP@R by more than the
            // spread over seeds on real and generated photos.
            Self::Default => TrainSettings {
                preset: self,
                image_size_px: 112,
                mining: Mining::BatchHard,
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
        let problem = if self.epochs == 0 {
            Some("epochs must be at least 1")
        } else if !(16..=1024).contains(&self.image_size_px) {
            Some("image size must be between 16 and 1024 pixels")
        } else if self.batch_size < 2 {
            Some("batch size must be at least 2")
        } else if !(self.lr > 0.0 && self.lr.is_finite()) {
            Some("learning rate must be a positive number")
        } else if !(self.margin >= 0.0 && self.margin.is_finite()) {
            Some("margin must be zero or positive")
        } else if self.embedding_dim == 0 {
            Some("embedding size must be at least 1")
        } else if self.images_per_class < 2 {
            Some("images per class (K) must be at least 2")
        } else if self.max_seconds.is_some_and(|s| s.is_nan() || s <= 0.0) {
            Some("the time budget must be a positive number of seconds")
        } else {
            None
        };
        problem.map_or(Ok(()), |p| Err(EngineError::Config(p.into())))
    }

    /// The model these settings train.
    pub fn model_config(&self) -> ModelConfig {
        ModelConfig {
            architecture: "resnet18".into(),
            embedding_dim: self.embedding_dim,
            l2_normalize: self.l2_normalize,
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
    /// A second class-folder set with the same classes, for validation loss and metrics.
    pub validation: Option<PathBuf>,
    /// torchvision-named ResNet18 weights (.safetensors) to start from.
    pub weights: Option<PathBuf>,
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
        epochs: usize,
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
        /// Anchors in this step's batch: triplets (random triplets) or images (batch-hard).
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
        elapsed_secs: f64,
    },
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
}

/// Runs a job. Panics inside libtorch (out of memory, device errors) become errors.
/// Progress events go to `on_event`, which may be called from loader threads.
pub fn train(
    job: &TrainJob,
    cancel: &AtomicBool,
    on_event: &(dyn Fn(TrainEvent) + Sync),
) -> Result<TrainOutcome> {
    let settings = &job.settings;
    settings.validate()?;
    let device = settings.device.resolve()?;
    let started = Instant::now();
    tch::manual_seed(settings.seed as i64);
    let mut rng = fastrand::Rng::with_seed(settings.seed);

    let mut dataset = LabeledDataset::scan(&job.data, job.max_pixels)?;
    dataset.check_trainable()?;
    let mut validation_set = match &job.validation {
        Some(folder) => Some(LabeledDataset::scan(folder, job.max_pixels)?),
        None => None,
    };

    // Decode everything once; augmentation then works on the cached square images.
    let cache_side = match settings.augment {
        Augment::CropFlipColor => (f64::from(settings.image_size_px) * 1.15).round() as u32,
        Augment::Flip | Augment::None => settings.image_size_px,
    };
    let mut all_paths: Vec<PathBuf> = dataset.images.iter().map(|(p, _)| p.clone()).collect();
    let training_count = all_paths.len();
    if let Some(set) = &validation_set {
        all_paths.extend(set.images.iter().map(|(p, _)| p.clone()));
    }
    let total = all_paths.len();
    let (decoded, failed) = PreparedImages::decode_all(
        &all_paths,
        cache_side,
        job.max_pixels,
        job.loader_threads,
        &|done| {
            if done % 16 == 0 || done == total {
                on_event(TrainEvent::Preparing { done, total });
            }
        },
        cancel,
    );
    let (training_failed, validation_failed): (Vec<SkippedFile>, Vec<SkippedFile>) = failed
        .into_iter()
        .partition(|f| dataset.images.iter().any(|(p, _)| *p == f.path));
    dataset.remove_images(&training_failed);
    let (training_decoded, validation_decoded) = decoded.split_at(training_count);
    let training_images = Arc::new(PreparedImages::new(
        training_decoded.iter().flatten().cloned().collect(),
    ));
    let validation_images = validation_set.as_mut().map(|set| {
        set.remove_images(&validation_failed);
        Arc::new(PreparedImages::new(
            validation_decoded.iter().flatten().cloned().collect(),
        ))
    });
    if cancel.load(Ordering::Relaxed) && training_images.len() != dataset.images.len() {
        return Err(EngineError::Cancelled);
    }
    dataset.check_trainable()?;

    let mut config = settings.model_config();
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
    let mut optimizer = tch::nn::Adam {
        wd: settings.weight_decay,
        ..Default::default()
    }
    .build(&model.var_store, settings.lr)?;

    let by_class = dataset.indices_by_class();
    let labels: Vec<i64> = dataset.images.iter().map(|(_, c)| *c as i64).collect();
    let make_epoch = |rng: &mut fastrand::Rng, by_class: &[Vec<usize>]| match settings.mining {
        Mining::RandomTriplets => seed_triplet_epoch(by_class, settings.batch_size, rng),
        Mining::BatchHard => pk_epoch(
            by_class,
            (settings.batch_size / settings.images_per_class).max(2),
            settings.images_per_class,
            rng,
        ),
    };
    let steps_per_epoch = make_epoch(&mut rng.fork(), &by_class).len();
    let total_steps = steps_per_epoch * settings.epochs;

    let mut skipped = dataset.skipped.clone();
    let mut notes = dataset.notes.clone();
    if let Some(set) = &validation_set {
        skipped.extend(set.skipped.iter().cloned());
        notes.extend(set.notes.iter().map(|n| format!("validation: {n}")));
    }
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
    let device_label = describe(device);
    on_event(TrainEvent::Started {
        device: device_label.clone(),
        classes: dataset.classes.len(),
        images: dataset.images.len(),
        steps_per_epoch,
        epochs: settings.epochs,
        skipped: skipped.clone(),
        notes,
    });

    // Validation batches are fixed (same seed every epoch) so their losses compare.
    let validation_batches = validation_set.as_ref().and_then(|set| {
        let groups = set.indices_by_class();
        let mut validation_rng = fastrand::Rng::with_seed(settings.seed ^ 0x5EED_F5A1);
        let usable = groups.iter().filter(|g| !g.is_empty()).count() >= 2
            && groups.iter().any(|g| g.len() >= 2);
        usable.then(|| {
            let mut batches = make_epoch(&mut validation_rng, &groups);
            batches.truncate(4);
            batches
        })
    });

    let preprocess = model.config.preprocess.clone();
    let floats = preprocess.floats_per_image();
    let size = i64::from(settings.image_size_px);
    let mut summary = TrainingSummary {
        data_folder: job.data.display().to_string(),
        classes: dataset.classes.clone(),
        images: dataset.images.len(),
        skipped_files: skipped.len(),
        preset: settings.preset.label().into(),
        settings: serde_json::to_value(settings).unwrap_or_default(),
        device: device_label,
        pretrained_weights: job.weights.as_ref().map(|p| p.display().to_string()),
        ..Default::default()
    };
    let mut global_step = 0usize;
    let mut stop = cancel.load(Ordering::Relaxed);
    'epochs: for epoch in 1..=settings.epochs {
        if stop {
            break;
        }
        let batches = make_epoch(&mut rng, &by_class);
        let images_for_loader = Arc::clone(&training_images);
        let loader_preprocess = preprocess.clone();
        let augment = settings.augment;
        let stream = BatchStream::spawn(
            batches.clone(),
            floats,
            settings.seed.wrapping_add(epoch as u64 * 7919),
            job.loader_threads,
            4,
            Arc::new(move |item, rng: &mut fastrand::Rng, out: &mut [f32]| {
                loader_preprocess.write_augmented(images_for_loader.get(item), augment, rng, out);
                Ok(())
            }),
        );
        let mut epoch_loss_sum = 0.0;
        let mut epoch_steps = 0usize;
        for (step_index, batch) in stream.enumerate() {
            let lr = scheduled_lr(
                settings,
                global_step,
                total_steps,
                started.elapsed().as_secs_f64(),
            );
            optimizer.set_lr(lr);
            let batch_labels: Vec<i64> = batches[batch.batch_index]
                .iter()
                .map(|&i| labels[i])
                .collect();
            let loss = guard_libtorch(|| {
                let images = Tensor::from_slice(&batch.pixels)
                    .view([batch.loaded.len() as i64, 3, size, size])
                    .to_device(device);
                let batch_norm_learns = !settings.freeze_batch_norm;
                let loss =
                    compute_loss(&model, settings, &images, &batch_labels, batch_norm_learns);
                optimizer.backward_step(&loss);
                loss.double_value(&[])
            })?;
            global_step += 1;
            epoch_steps += 1;
            epoch_loss_sum += loss;
            let elapsed_secs = started.elapsed().as_secs_f64();
            let per_step = elapsed_secs / global_step as f64;
            let mut remaining_secs = per_step * total_steps.saturating_sub(global_step) as f64;
            if let Some(budget) = settings.max_seconds {
                remaining_secs = remaining_secs.min((budget - elapsed_secs).max(0.0));
            }
            on_event(TrainEvent::Step {
                epoch,
                step: step_index + 1,
                steps_per_epoch,
                global_step,
                anchors: match settings.mining {
                    Mining::RandomTriplets => batch.loaded.len() / 3,
                    Mining::BatchHard => batch.loaded.len(),
                },
                loss,
                lr,
                elapsed_secs,
                remaining_secs,
            });
            if cancel.load(Ordering::Relaxed) {
                summary.cancelled = true;
                stop = true;
            } else if settings
                .max_seconds
                .is_some_and(|budget| elapsed_secs >= budget)
            {
                summary.stopped_by_time_budget = true;
                stop = true;
            }
            if stop {
                // The epoch is cut short: record its partial mean so the curve ends where we did.
                summary
                    .epoch_losses
                    .push(epoch_loss_sum / epoch_steps as f64);
                summary.epochs = epoch;
                break 'epochs;
            }
        }
        let mean_loss = epoch_loss_sum / epoch_steps.max(1) as f64;
        let validation_loss = match (&validation_batches, &validation_images, &validation_set) {
            (Some(batches), Some(images), Some(set)) => Some(validation_loss(
                &model,
                settings,
                batches,
                images,
                set,
                &preprocess,
            )?),
            _ => None,
        };
        summary.epoch_losses.push(mean_loss);
        summary.validation_losses.extend(validation_loss);
        summary.epochs = epoch;
        on_event(TrainEvent::EpochEnd {
            epoch,
            mean_loss,
            validation_loss,
            elapsed_secs: started.elapsed().as_secs_f64(),
        });
    }
    summary.steps = global_step;
    summary.train_secs = started.elapsed().as_secs_f64();

    let validation = match (&job.validation, summary.cancelled) {
        (Some(folder), false) => {
            // The model id is only known once serialised; evaluation does not need it.
            let (_, model_id) = model_file_bytes(&model, &summary)?;
            let info = ModelInfo {
                format_version: super::model::MODEL_FORMAT_VERSION,
                model_id,
                config: model.config.clone(),
                summary: summary.clone(),
            };
            Some(evaluate_model(
                &model,
                &info,
                &job.data,
                folder,
                job.max_pixels,
                &|done, total| on_event(TrainEvent::Evaluating { done, total }),
                &AtomicBool::new(false),
            )?)
        }
        _ => None,
    };
    Ok(TrainOutcome {
        model,
        summary,
        validation,
        import,
    })
}

fn scheduled_lr(
    settings: &TrainSettings,
    step: usize,
    total_steps: usize,
    elapsed_secs: f64,
) -> f64 {
    match settings.schedule {
        Schedule::Constant => settings.lr,
        Schedule::Cosine => {
            let by_steps = step as f64 / total_steps.max(1) as f64;
            let by_time = settings
                .max_seconds
                .map_or(0.0, |budget| elapsed_secs / budget);
            let progress = by_steps.max(by_time).min(1.0);
            // A floor of 1% keeps the last steps from being wasted entirely.
            settings.lr * (0.01 + 0.99 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()))
        }
    }
}

/// The loss of one batch. Random triplets are three separate forward passes, as in the
/// seed (so BatchNorm sees anchors, positives and negatives as separate batches).
fn compute_loss(
    model: &EmbeddingModel,
    settings: &TrainSettings,
    images: &Tensor,
    labels: &[i64],
    train: bool,
) -> Tensor {
    match settings.mining {
        Mining::RandomTriplets => {
            let n = images.size()[0] / 3;
            let anchor = model.forward_t(&images.narrow(0, 0, n), train);
            let positive = model.forward_t(&images.narrow(0, n, n), train);
            let negative = model.forward_t(&images.narrow(0, 2 * n, n), train);
            triplet_loss(&anchor, &positive, &negative, settings.margin)
        }
        Mining::BatchHard => {
            let embeddings = model.forward_t(images, train);
            let labels = Tensor::from_slice(labels).to_device(images.device());
            batch_hard_loss(&embeddings, &labels, settings.margin)
        }
    }
}

fn validation_loss(
    model: &EmbeddingModel,
    settings: &TrainSettings,
    batches: &[Vec<usize>],
    images: &PreparedImages,
    set: &LabeledDataset,
    preprocess: &Preprocess,
) -> Result<f64> {
    let floats = preprocess.floats_per_image();
    let size = i64::from(settings.image_size_px);
    let mut sum = 0.0;
    for batch in batches {
        let mut pixels = vec![0.0f32; batch.len() * floats];
        for (slot, &item) in batch.iter().enumerate() {
            preprocess.write_plain(
                images.get(item),
                &mut pixels[slot * floats..(slot + 1) * floats],
            );
        }
        let labels: Vec<i64> = batch.iter().map(|&i| set.images[i].1 as i64).collect();
        sum += guard_libtorch(|| {
            tch::no_grad(|| {
                let images = Tensor::from_slice(&pixels)
                    .view([batch.len() as i64, 3, size, size])
                    .to_device(model.device());
                compute_loss(model, settings, &images, &labels, false).double_value(&[])
            })
        })?;
    }
    Ok(sum / batches.len().max(1) as f64)
}

/// Runs libtorch work, turning its panics (how tch reports C++ exceptions such as CUDA
/// out-of-memory) into an error the caller can show.
pub fn guard_libtorch<T>(work: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).map_err(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
            .unwrap_or_else(|| "unknown error".into());
        let first_line = message.lines().next().unwrap_or_default().to_string();
        let hint = if message.contains("out of memory") {
            " (the GPU ran out of memory: lower the batch size or the image size)"
        } else {
            ""
        };
        EngineError::Device(format!("libtorch failed: {first_line}{hint}"))
    })
}
