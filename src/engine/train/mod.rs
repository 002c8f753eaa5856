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

mod average;
mod blend;
pub mod embed;
pub mod finish;
pub mod kept;
pub mod loss;
pub mod margins;
pub mod monitor;
mod opinion;
pub mod optimizer;
pub mod pace;
pub mod prepare;
pub mod resume;
pub mod save;
pub mod schedule;
pub mod step;
pub mod trainer;

use std::path::{Path, PathBuf};

use crate::engine::model::classifier::Classifier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::data::decoded_cache::DecodedCache;
use super::data::{DEFAULT_MAX_PIXELS, Preprocess, SkippedFile, default_loader_threads};
use super::device::describe;
use super::eval::{RetrievalReport, evaluate_model};
use super::model::pretrained::LITE0_INPUT_PX;
use super::model::{EmbeddingModel, ImportReport, ModelConfig};
use super::run::TrainingSummary;
use super::{EngineError, Result};
pub use crate::engine::run::settings::{
    Backbone, DEFAULT_EPOCHS, Loss, Mining, PROGRESSIVE_FULL_SIZE_AT, Preset, Schedule,
    TrainSettings,
};
use finish::{FinishPlan, LastStep, calibration_images};
pub use finish::{FinishWork, TrainPhase};
pub use monitor::{BeforeAfter, TrainingPicture};
use monitor::{EpochVerdict, Monitor};
pub use save::{HeldOutScore, KeptTraining, SavedRun, save_run};
use trainer::{EpochEnd, Trainer};

impl TrainSettings {
    /// The size photos are embedded at: the training size times `embed_scale`.
    pub fn embed_size_px(&self) -> u32 {
        (f64::from(self.image_size_px) * self.embed_scale).round() as u32
    }

    /// The model these settings train.
    pub fn model_config(&self) -> ModelConfig {
        // EfficientNet-Lite's weights were trained on TensorFlow Lite's normalisation; a
        // ResNet18 from scratch keeps the seed's, and ImageNet ResNet18 weights change it to
        // ImageNet's when they are imported ([`build_model`]).
        let (mean, std) = match self.backbone {
            Backbone::EfficientnetLite0 => (Preprocess::TFLITE_MEAN, Preprocess::TFLITE_STD),
            Backbone::Resnet18 => (Preprocess::SEED_MEAN, Preprocess::SEED_STD),
        };
        ModelConfig {
            architecture: self.backbone.architecture().into(),
            embedding_dim: self.embedding_dim,
            l2_normalize: self.l2_normalize,
            mirror_average: self.mirror_average,
            preprocess: Preprocess {
                image_size_px: self.embed_size_px(),
                mean,
                std,
            },
        }
    }
}

/// Share of each class's photos the window and `likeness train` hold out of training when
/// no validation folder is chosen: they measure the run, and they calibrate the
/// confidences sorting gives, so a model sorts the same however it was trained. It is not
/// free: on the split of flowers5-train a tenth held out cost the pretrained default 0.027
/// recall@1 at 600 s (docs/quality.md); `likeness train --holdout 0` trains on every photo.
pub const DEFAULT_HOLDOUT_SHARE: f64 = 0.1;

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
    /// Where the photos decoded for training are kept between runs (the window and
    /// `likeness train` use the user cache; `None` decodes every photo every run).
    pub decoded_cache: Option<DecodedCache>,
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
            decoded_cache: None,
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
    /// A stretch of work between the steps that has no count of its own to show: the
    /// progress the person sees names it instead of standing still.
    Phase(TrainPhase),
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
    /// Every training photo (path, class index) with what training said about its label
    /// (`None` when the loss has no class proxies, or the photo was never trained on).
    pub label_evidence: Vec<((PathBuf, usize), Option<margins::MarginEvidence>)>,
    /// In the same order, each photo's progress-weighted mean cosine to every class
    /// proxy while it trained (empty when the loss has no class proxies).
    pub label_cosines: Vec<Option<Vec<f64>>>,
    /// The work after the last step, planned and done.
    pub finish_work: FinishWork,
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

    /// The job `this_run` becomes when it goes on from this run: the earlier settings
    /// with this run's budget, epochs and device, and the earlier run's photos held out.
    fn job(&self, this_run: &TrainJob) -> TrainJob {
        TrainJob {
            settings: self.settings(&this_run.settings),
            // The photos the earlier run held out stay held out (the split is fixed by the
            // library): trained on now, they would no longer calibrate.
            holdout_share: this_run.holdout_share.or(match this_run.validation {
                None => self.saved.info.holdout_share,
                Some(_) => None,
            }),
            ..this_run.clone()
        }
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
    let (started_job, start_note) = resolve_start(job);
    let job = &started_job;
    let mut resumption = match &job.resume {
        Some(path) => Some(Resumption::open(path, device)?),
        None => None,
    };
    let resumed_job = resumption.as_ref().map(|r| r.job(job));
    let job = resumed_job.as_ref().unwrap_or(job);
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
    notes.extend(start_note);
    notes.extend(pretrained_note(import.as_ref(), job));
    let mut trainer = Trainer::new(model, settings, &data, job.loader_threads)?;
    if let Some(resumption) = &resumption {
        notes.push(go_on_from(&mut trainer, resumption, job, &data)?);
    }
    on_event(TrainEvent::Phase(TrainPhase::MeasuringStart));
    let mut monitor = Monitor::new(settings, &data, &trainer, cancel)?;
    // With held-out photos to calibrate the class proxies on, the run ends by fitting a
    // second opinion on the folders from the shipped ImageNet network.
    let opinion_photos =
        opinion::OpinionPhotos::of(&data).filter(|_| calibration_images(&data, settings) > 0);
    let opinion_images = opinion_photos
        .as_ref()
        .map_or(0, opinion::OpinionPhotos::len);
    let prepared_images = data.training.len() + data.validation.as_ref().map_or(0, |v| v.len());
    // The budget covers the whole run: the steps end early enough for what follows them,
    // priced image by image at the rate the last measuring pass ran at.
    let plan = FinishPlan {
        calibration_images: calibration_images(&data, settings),
        second_opinion_images: opinion_images,
        // The ImageNet network's inputs are larger than the run's: an image costs what one
        // of the run's costs, scaled by the pixels.
        second_opinion_cost: (f64::from(LITE0_INPUT_PX) / f64::from(settings.embed_size_px()))
            .powi(2),
        // It reads its photos from disk again, as preparing did (a decoded-photo cache that
        // served preparing makes this an underestimate).
        second_opinion_read_secs: prepare_secs * opinion_images as f64
            / prepared_images.max(1) as f64,
        // The final evaluation reads both folders from disk again (as long as preparing
        // did) and embeds them.
        evaluation_images: job.validation.as_ref().map_or(0, |_| {
            data.training.len() + data.validation.as_ref().map_or(0, |v| v.len())
        }),
        evaluation_read_secs: job.validation.as_ref().map_or(0.0, |_| prepare_secs),
        priced_secs_per_image: std::cell::Cell::new(0.0),
        priced_images: std::cell::Cell::new(0),
    };
    plan.reserve(&mut trainer, &monitor);
    let device_label = describe(device);
    let first_step_at_secs = clock.elapsed().as_secs_f64();
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

    let mut summary = starting_summary(job, &data, &trainer, device_label, resumption.as_ref());
    let last_step = run_epochs(
        &mut trainer,
        &mut monitor,
        settings,
        &plan,
        &clock,
        cancel,
        on_event,
        &mut summary,
    )?;
    let mut finish_work = FinishWork {
        planned_images: plan.images(&monitor),
        priced_images: plan.priced_images.get(),
        reserve_secs: trainer.finish_reserve_secs(),
        slowdown: trainer.slowdown(),
        secs_per_image: plan.priced_secs_per_image.get(),
        read_secs: plan.evaluation_read_secs,
        second_opinion_secs: plan.second_opinion_secs(plan.priced_secs_per_image.get()),
        loaded_at_secs: prepare_secs,
        first_step_at_secs,
        last_step_at_secs: last_step.map_or(clock.elapsed().as_secs_f64(), |l| l.at_secs),
        ..FinishWork::default()
    };
    let steps_before = summary.resumed_from.as_ref().map_or(0, |e| e.steps);
    if trainer.global_step() == steps_before && cancel.load(Ordering::Relaxed) {
        // Nothing was trained: there is no model worth keeping.
        return Err(EngineError::Cancelled);
    }
    let earlier = summary.resumed_from.as_ref();
    summary.steps = trainer.global_step() - earlier.map_or(0, |e| e.steps);
    summary.train_secs = clock.elapsed().as_secs_f64();
    let mut state = trainer.state(
        summary.epochs + earlier.map_or(0, |e| e.epochs),
        &data.training.dataset.classes,
    );
    state.info.holdout_share = job.holdout_share;
    let label_evidence = check_labels(&trainer, &data, &mut summary);
    let label_cosines = trainer.margin_cosines();
    trainer.show_average(true);
    monitor.finish(&mut trainer, &mut summary)?;
    let before_after = if summary.cancelled || cancel.load(Ordering::Relaxed) {
        None
    } else {
        // A cancel now keeps the trained model, without its picture.
        match monitor.before_after(trainer.model(), cancel) {
            Err(EngineError::Cancelled) => None,
            picture => picture?,
        }
    };
    let proxies = trainer.class_proxies()?;
    let mut model = trainer.into_model();
    let mut calibration_embedded = 0;
    if let Some(proxies) = proxies {
        let (mut classifier, embedded, held_embeddings) = calibrated_classifier(
            &model,
            &proxies,
            &data,
            settings,
            monitor.final_validation_embeddings(),
        )?;
        calibration_embedded = embedded;
        if let Some(photos) = opinion_photos
            .as_ref()
            .filter(|_| classifier.info.calibrated_on > 0 && !cancel.load(Ordering::Relaxed))
        {
            on_event(TrainEvent::Phase(TrainPhase::SecondOpinion {
                photos: photos.len(),
            }));
            // A cancel now keeps the trained model, with the proxies alone.
            match opinion::fit_second_opinion(
                &mut classifier,
                photos,
                &held_embeddings,
                device,
                job.max_pixels,
                cancel,
            ) {
                Ok((embedded, warning)) => {
                    finish_work.second_opinion_images = embedded;
                    summary.warnings.extend(warning);
                }
                Err(EngineError::Cancelled) => {}
                Err(error) => return Err(error),
            }
        }
        model.classifier = Some(classifier);
    }
    finish_work.embedded_images = monitor.embedded_images
        - last_step.map_or(monitor.embedded_images, |l| l.embedded_images)
        + calibration_embedded;

    let validation = match (&job.validation, summary.cancelled) {
        (Some(folder), false) => final_evaluation(job, folder, &model, cancel, on_event)?,
        _ => None,
    };
    finish_work.ended_at_secs = clock.elapsed().as_secs_f64();
    Ok(TrainOutcome {
        model,
        summary,
        validation,
        import,
        before_after,
        state,
        label_evidence,
        label_cosines,
        finish_work,
    })
}

/// The summary a run starts with: what it trains on, how, and what it went on from.
fn starting_summary(
    job: &TrainJob,
    data: &prepare::PreparedData,
    trainer: &Trainer,
    device_label: String,
    resumption: Option<&Resumption>,
) -> TrainingSummary {
    let settings = &job.settings;
    TrainingSummary {
        data_folder: job.data.display().to_string(),
        classes: data.training.dataset.classes.clone(),
        images: data.training.dataset.images.len(),
        skipped_files: data.skipped.len(),
        preset: settings.preset.label().into(),
        settings: Some(settings.clone()),
        device: device_label,
        pretrained_weights: job.weights.as_ref().map(|p| p.display().to_string()),
        steps_per_epoch: trainer.steps_per_epoch(),
        validation_source: data.validation_source.clone(),
        resumed_from: resumption.map(|r| super::run::ResumedFrom {
            model_id: r.model_id.clone(),
            steps: r.saved.info.position.steps,
            secs: r.saved.info.position.secs,
            epochs: r.saved.info.epochs,
        }),
        ..Default::default()
    }
}

/// Trains epoch after epoch until the epochs, the time budget or a cancel end the run,
/// observing each epoch (validation, collapse) and recording it in `summary`.
/// Re-prices the work after the last step after every observation (`plan`). Returns when
/// the final observation began (`None` when the run ended without one).
#[allow(clippy::too_many_arguments)] // the run's parts, each used here
fn run_epochs(
    trainer: &mut Trainer,
    monitor: &mut Monitor,
    settings: &TrainSettings,
    plan: &FinishPlan,
    clock: &Instant,
    cancel: &AtomicBool,
    on_event: &(dyn Fn(TrainEvent) + Sync),
    summary: &mut TrainingSummary,
) -> Result<Option<LastStep>> {
    let mut last_step = None;
    let mut epoch = 0;
    while !cancel.load(Ordering::Relaxed) && settings.epoch_limit().is_none_or(|n| epoch < n) {
        epoch += 1;
        let EpochEnd {
            mean_loss,
            stop,
            steps,
        } = trainer.run_epoch(epoch, clock, cancel, on_event)?;
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
        on_event(TrainEvent::Phase(if final_epoch {
            last_step = Some(LastStep {
                at_secs: clock.elapsed().as_secs_f64(),
                embedded_images: monitor.embedded_images,
            });
            TrainPhase::Finishing
        } else {
            TrainPhase::Validating { epoch }
        }));
        let observed = monitor.observe(epoch, mean_loss, final_epoch, trainer, cancel);
        if !final_epoch {
            trainer.show_average(false);
            plan.reserve(trainer, monitor);
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
    // A cancel that lands between two epochs ends the loop at its condition: it is still
    // a cancelled run (its model is not made current), however far it got.
    if cancel.load(Ordering::Relaxed) {
        summary.cancelled = true;
    }
    Ok(last_step)
}

/// The job a run really starts: a `pretrained` run without a weights file of its own
/// starts from the backbone's ImageNet weights (shipped with Likeness for
/// EfficientNet-Lite0, downloaded on request for ResNet18). When they are missing or
/// damaged it trains from scratch with the [`Preset::Scratch`] recipe instead (same
/// budget, seed and device), and the note says why and how to get the weights back.
fn resolve_start(job: &TrainJob) -> (TrainJob, Option<String>) {
    let settings = &job.settings;
    if !settings.pretrained
        || job.weights.is_some()
        || job.init_model.is_some()
        || job.resume.is_some()
    {
        return (job.clone(), None);
    }
    let found = match settings.backbone {
        Backbone::EfficientnetLite0 => super::model::pretrained::shipped_lite0_weights(),
        Backbone::Resnet18 => {
            let source = super::model::pretrained::WeightsSource::imagenet_resnet18(
                &super::files::user_data_dir(),
            );
            source.cached().map(Path::to_path_buf).ok_or_else(|| {
                EngineError::Config(
                    "the ImageNet ResNet18 weights are not downloaded (`likeness weights \
                     download` fetches them)"
                        .into(),
                )
            })
        }
    };
    match found {
        Ok(path) => (
            TrainJob {
                weights: Some(path),
                ..job.clone()
            },
            None,
        ),
        Err(error) => {
            let scratch = TrainSettings {
                epochs: settings.epochs,
                max_seconds: settings.max_seconds,
                device: settings.device,
                seed: settings.seed,
                ..Preset::Scratch.settings()
            };
            (
                TrainJob {
                    settings: scratch,
                    ..job.clone()
                },
                Some(format!(
                    "{error}. Training from scratch instead (ResNet18, the `--preset scratch` \
                     recipe)"
                )),
            )
        }
    }
}

/// What the run says about the pretrained weights it started from.
fn pretrained_note(import: Option<&ImportReport>, job: &TrainJob) -> Option<String> {
    let (report, path) = (import?, job.weights.as_ref()?);
    let fc = if report.reinitialised.is_empty() {
        String::new()
    } else {
        format!(
            "; the ImageNet classifier (fc) does not fit a {}-d embedding and starts fresh",
            job.settings.embedding_dim
        )
    };
    Some(format!(
        "pretrained weights from {}: {} tensors loaded{fc}",
        path.display(),
        report.loaded
    ))
}

/// Puts the saved state of the run being resumed into `trainer`, after checking it
/// trained on the same classes; returns the note that says so.
fn go_on_from(
    trainer: &mut Trainer,
    resumption: &Resumption,
    job: &TrainJob,
    data: &prepare::PreparedData,
) -> Result<String> {
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
    Ok(format!(
        "going on from model {}: {} steps, {} epochs and {:.0} s trained before; the learning rate continues its schedule",
        resumption.model_id, earlier.position.steps, earlier.epochs, earlier.position.secs
    ))
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
    if job.weights.is_some() && job.settings.backbone == Backbone::Resnet18 {
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

/// Every training photo with what training said about its label; the doubtful ones go in
/// `summary`.
fn check_labels(
    trainer: &Trainer,
    data: &prepare::PreparedData,
    summary: &mut TrainingSummary,
) -> Vec<((PathBuf, usize), Option<margins::MarginEvidence>)> {
    let label_evidence: Vec<_> = data
        .training
        .dataset
        .images
        .iter()
        .cloned()
        .zip(
            trainer
                .margin_evidence()
                .into_iter()
                .chain(std::iter::repeat(None)),
        )
        .collect();
    let (photos, evidence): (Vec<_>, Vec<_>) = label_evidence.iter().cloned().unzip();
    summary.label_passes = evidence.iter().flatten().map(|e| e.seen).max().unwrap_or(0);
    let evidence = margins::judgeable(&evidence);
    summary.labels_checked = evidence.iter().filter(|e| e.is_some()).count();
    summary.label_suspects = margins::suspect_threshold(&evidence, margins::SUSPECT_SPREADS_BELOW)
        .map_or_else(Vec::new, |below| {
            margins::label_suspects(&photos, &evidence, &data.training.dataset.classes, below)
        });
    label_evidence
}

/// The run's class proxies as a classifier, calibrated on the photos it held out when it
/// has them (and they are of the same classes), with the number of photos it embedded
/// (none when `embedded` already holds every held-out photo's embedding under `model`)
/// and the held-out photos' embeddings (empty without them).
fn calibrated_classifier(
    model: &EmbeddingModel,
    proxies: &[f32],
    data: &prepare::PreparedData,
    settings: &TrainSettings,
    embedded: Option<&tch::Tensor>,
) -> Result<(Classifier, usize, Vec<f32>)> {
    let classes = data.training.dataset.classes.clone();
    let mut classifier = Classifier::new(
        classes.clone(),
        proxies,
        model.config.embedding_dim,
        settings.temperature,
    );
    if let Some(validation) = data
        .validation
        .as_ref()
        .filter(|v| v.dataset.classes == classes && !v.is_empty())
    {
        let (embeddings, embedded_now) = match embedded {
            Some(all) => (crate::engine::model::tensor_to_f32(all)?, 0),
            None => {
                let indices: Vec<usize> = (0..validation.len()).collect();
                let all = trainer::embed_prepared(model, &validation.images, &indices)?;
                (crate::engine::model::tensor_to_f32(&all)?, indices.len())
            }
        };
        let labels: Vec<usize> = validation.dataset.images.iter().map(|(_, c)| *c).collect();
        classifier.calibrate(&embeddings, &labels);
        return Ok((classifier, embedded_now, embeddings));
    }
    Ok((classifier, 0, Vec::new()))
}

/// What the in-memory gallery of the final evaluation says made it: the model is saved,
/// and gets its id, only after the run.
const UNSAVED_MODEL_ID: &str = "the model being trained (not saved yet)";

/// Full retrieval metrics on the validation folder (gallery: the whole training folder).
/// Cancelling here keeps the model and skips the metrics.
fn final_evaluation(
    job: &TrainJob,
    folder: &std::path::Path,
    model: &EmbeddingModel,
    cancel: &AtomicBool,
    on_event: &(dyn Fn(TrainEvent) + Sync),
) -> Result<Option<RetrievalReport>> {
    // The model is saved (and so gets its id) after this; the id only names the
    // gallery that lives in memory for the evaluation.
    match evaluate_model(
        model,
        UNSAVED_MODEL_ID,
        &job.data,
        folder,
        job.max_pixels,
        &|p| {
            on_event(TrainEvent::Evaluating {
                done: p.done,
                total: p.total,
            })
        },
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
        let mut settings = Preset::Scratch.settings();
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
