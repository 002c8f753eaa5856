//! Phase 2 of training: the network, its loss and optimiser, one step and one epoch.
//!
//! The loop reads like the tch examples: an epoch asks the sampler for batches, a loader
//! thread pool augments them ahead of the network, and each step is forward, loss,
//! backward, optimiser step.

mod saved;

pub use saved::Checkpoint;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tch::nn;
use tch::{Kind, Tensor};

use super::average::WeightAverage;
use super::blend::{Blend, cutmix_box, sample_beta};
pub use super::embed::{embed_prepared, embed_prepared_until};
use super::optimizer::AdamW;
use super::prepare::{LabeledImages, PreparedData};
use super::resume::{SavedTrainState, SchedulePosition, TrainState, TrainStateInfo};
use super::schedule::{learning_rate, progress};
use super::step::descend;
use super::{Loss, Mining, PROGRESSIVE_FULL_SIZE_AT, TrainEvent, TrainSettings};
use crate::engine::data::{
    BatchStream, PreparedImages, Preprocess, pk_epoch, seed_triplet_epoch, shuffled_epoch,
};
use crate::engine::device::guard_libtorch;
use crate::engine::model::EmbeddingModel;
use crate::engine::train::loss::{
    batch_hard_loss, normalized_softmax_from_cosines, normalized_softmax_loss, proxy_cosines,
    triplet_loss,
};
use crate::engine::train::margins::{MarginEvidence, MarginLedger};
use crate::engine::{EngineError, Result};

/// Why an epoch ended before its last batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Cancelled,
    TimeBudget,
}

/// What one epoch did.
pub struct EpochEnd {
    pub mean_loss: f64,
    /// Set when training must not go on (cancelled, out of time).
    pub stop: Option<Stop>,
    pub steps: usize,
}

/// One learned vector per class for normalised softmax. Not part of the model file:
/// retrieval needs only the embedding network.
struct ClassProxies {
    // Held so the variables live as long as the optimiser that updates them.
    _var_store: nn::VarStore,
    weights: Tensor,
    optimizer: AdamW,
}

/// The network with everything that trains it.
pub struct Trainer {
    model: EmbeddingModel,
    optimizer: AdamW,
    proxies: Option<ClassProxies>,
    settings: TrainSettings,
    images: Arc<PreparedImages>,
    labels: Vec<i64>,
    by_class: Vec<Vec<usize>>,
    preprocess: Preprocess,
    rng: fastrand::Rng,
    loader_threads: usize,
    steps_per_epoch: usize,
    global_step: usize,
    /// Multiplies the scheduled learning rate; lowered when a collapse is undone.
    lr_scale: f64,
    /// Seconds the run needs after its last step (final validation, the before/after
    /// picture, the final evaluation): training stops this much before the budget so
    /// that the whole run, not only the steps, fits in it.
    finish_reserve_secs: f64,
    /// The whole run's time budget, as the settings gave it (the steps' own budget,
    /// `settings.max_seconds`, is this less the reserve).
    budget_secs: Option<f64>,
    /// Whether the machine slowed down since the reserve was priced: the reserve grows
    /// with it ([`Self::steps_budget_secs`]).
    pace: super::pace::Pace,
    average: Option<WeightAverage>,
    /// The side of the images the current epoch trains on (progressive resizing).
    epoch_size_px: u32,
    /// What the runs this one resumes trained (zero for a new run).
    resumed: SchedulePosition,
    /// Seconds into this run when its last step ended.
    last_step_secs: f64,
    /// Each photo's margins so far (normalised softmax only): the label check's evidence.
    margins: Option<MarginLedger>,
    /// The last step's cosines to the class proxies, batch × classes, for `margins`.
    last_cosines: Option<Vec<f32>>,
}

impl Trainer {
    pub fn new(
        model: EmbeddingModel,
        settings: &TrainSettings,
        data: &PreparedData,
        loader_threads: usize,
    ) -> Result<Self> {
        let training: &LabeledImages = &data.training;
        Self::with_images(
            model,
            settings,
            training.dataset.classes.len(),
            Arc::clone(&training.images),
            training.labels(),
            training.dataset.indices_by_class(),
            loader_threads,
        )
    }

    /// A trainer with no photos, for steps on tensors made elsewhere ([`Self::step_on`]):
    /// the benchmark's pure-step ceiling runs the same step as training.
    pub fn for_tensors(
        model: EmbeddingModel,
        settings: &TrainSettings,
        classes: usize,
    ) -> Result<Self> {
        Self::with_images(
            model,
            settings,
            classes,
            Arc::new(PreparedImages::default()),
            Vec::new(),
            vec![Vec::new(); classes],
            0,
        )
    }

    fn with_images(
        model: EmbeddingModel,
        settings: &TrainSettings,
        classes: usize,
        images: Arc<PreparedImages>,
        labels: Vec<i64>,
        by_class: Vec<Vec<usize>>,
        loader_threads: usize,
    ) -> Result<Self> {
        // In name order, so that saved optimiser state lines up with the same variables.
        let (names, trainable): (Vec<String>, Vec<Tensor>) = model
            .named_tensors()
            .into_iter()
            .filter(|(_, tensor)| tensor.requires_grad())
            .unzip();
        // The backbone at its share of the rate, the embedding layer (`fc`) at the full one.
        let lr_factors = names
            .iter()
            .map(|name| {
                if name.starts_with("fc.") {
                    1.0
                } else {
                    settings.backbone_lr_factor
                }
            })
            .collect();
        let optimizer =
            AdamW::new(trainable, settings.lr, settings.weight_decay).with_lr_factors(lr_factors);
        let proxies = match settings.loss {
            Loss::Triplet => None,
            Loss::NormalizedSoftmax => {
                let var_store = nn::VarStore::new(model.device());
                let weights = var_store.root().var(
                    "proxies",
                    &[classes as i64, settings.embedding_dim as i64],
                    nn::Init::Randn {
                        mean: 0.0,
                        stdev: 1.0,
                    },
                );
                let optimizer = AdamW::new(vec![weights.shallow_clone()], settings.lr, 0.0);
                Some(ClassProxies {
                    _var_store: var_store,
                    weights,
                    optimizer,
                })
            }
        };
        let margins = proxies
            .as_ref()
            .map(|_| MarginLedger::new(labels.len(), classes));
        let mut trainer = Self {
            preprocess: model.config.preprocess.clone(),
            model,
            optimizer,
            proxies,
            settings: settings.clone(),
            images,
            labels,
            by_class,
            rng: fastrand::Rng::with_seed(settings.seed),
            loader_threads,
            steps_per_epoch: 0,
            global_step: 0,
            lr_scale: 1.0,
            finish_reserve_secs: 0.0,
            budget_secs: settings.max_seconds,
            pace: super::pace::Pace::default(),
            average: None,
            epoch_size_px: settings.image_size_px,
            resumed: SchedulePosition::default(),
            last_step_secs: 0.0,
            margins,
            last_cosines: None,
        };
        if settings.ema_decay > 0.0 {
            trainer.average = Some(WeightAverage::new(&trainer.model, settings.ema_decay));
        }
        let mut probe_rng = trainer.rng.fork();
        trainer.steps_per_epoch = trainer.epoch_batches(&mut probe_rng).len();
        Ok(trainer)
    }

    pub fn model(&self) -> &EmbeddingModel {
        &self.model
    }

    /// The class proxies (classes × embedding dimension, row-major), when the loss has
    /// them.
    pub fn class_proxies(&self) -> Result<Option<Vec<f32>>> {
        self.proxies
            .as_ref()
            .map(|p| crate::engine::model::tensor_to_f32(&p.weights))
            .transpose()
    }

    /// The trained model: the weight average when the run keeps one.
    pub fn into_model(mut self) -> EmbeddingModel {
        self.show_average(true);
        self.model
    }

    /// With a weight average, puts it into the model (`true`) so that validation and the
    /// best-epoch choice judge it, or the live weights back (`false`) to go on training.
    /// Without one, nothing changes.
    pub fn show_average(&mut self, average: bool) {
        if let Some(weights) = &mut self.average {
            weights.show(average);
        }
    }

    /// The side of the images this epoch trains on.
    pub fn epoch_size_px(&self) -> u32 {
        self.epoch_size_px
    }

    pub fn steps_per_epoch(&self) -> usize {
        self.steps_per_epoch
    }

    pub fn global_step(&self) -> usize {
        self.global_step
    }

    /// Keeps `secs` of the time budget for the work after the last step: the steps (and
    /// the learning-rate schedule) end that much earlier, and the countdown still counts
    /// to the end of the whole run. Called again as the estimate is measured again (a
    /// machine that got busier makes that work slower): the latest reserve replaces the
    /// earlier one, out of the whole budget.
    pub fn reserve_for_finish(&mut self, secs: f64) {
        if let Some(budget) = self.budget_secs {
            // At least a tenth of the budget stays for training, however slow the rest.
            let reserve = secs.clamp(0.0, budget * 0.9);
            self.settings.max_seconds = Some(budget - reserve);
            self.finish_reserve_secs = reserve;
            self.pace.reset();
        }
    }

    /// Seconds kept for the work after the last step: the priced reserve
    /// ([`Self::reserve_for_finish`]) times how much slower the steps have become since
    /// (at most 0.9 of the budget).
    pub fn finish_reserve_secs(&self) -> f64 {
        let grown = self.finish_reserve_secs * self.pace.slowdown();
        self.budget_secs
            .map_or(grown, |budget| grown.min(budget * 0.9))
    }

    /// How many times slower the steps run than just after the reserve was priced.
    pub fn slowdown(&self) -> f64 {
        self.pace.slowdown()
    }

    /// Seconds from the run's start by which the last step must have ended (`None`
    /// without a time budget).
    fn steps_budget_secs(&self) -> Option<f64> {
        self.budget_secs
            .map(|budget| budget - self.finish_reserve_secs())
    }

    /// Lowers every later learning rate by `factor` (after a collapse was undone).
    pub fn scale_learning_rate(&mut self, factor: f64) {
        self.lr_scale *= factor;
    }

    /// The batches of one epoch, as image indices, from the sampler the loss needs.
    pub fn epoch_batches(&self, rng: &mut fastrand::Rng) -> Vec<Vec<usize>> {
        batches_for(&self.settings, &self.by_class, self.labels.len(), rng)
    }

    /// Trains one epoch; stops early on cancel or when the time budget is spent.
    pub fn run_epoch(
        &mut self,
        epoch: usize,
        clock: &Instant,
        cancel: &AtomicBool,
        on_event: &(dyn Fn(TrainEvent) + Sync),
    ) -> Result<EpochEnd> {
        let mut rng = self.rng.fork();
        let batches = self.epoch_batches(&mut rng);
        let total_steps = self
            .settings
            .epoch_limit()
            .map(|epochs| epochs * self.steps_per_epoch);
        let at_start = progress(
            &self.settings,
            self.global_step,
            total_steps,
            clock.elapsed().as_secs_f64(),
            self.resumed,
        );
        self.epoch_size_px = epoch_image_size(&self.settings, at_start);
        let stream = self.spawn_loader(batches, epoch);
        let (mut loss_sum, mut steps, mut stop) = (0.0, 0usize, None);
        for (step_index, batch) in stream.enumerate() {
            let elapsed_secs = clock.elapsed().as_secs_f64();
            let at = progress(
                &self.settings,
                self.global_step,
                total_steps,
                elapsed_secs,
                self.resumed,
            );
            let lr = learning_rate(&self.settings, at) * self.lr_scale;
            let labels: Vec<i64> = batch.loaded.iter().map(|&i| self.labels[i]).collect();
            let step_started = std::time::Instant::now();
            let loss = self.step(&batch.pixels, &labels, lr)?;
            let side = f64::from(self.epoch_size_px);
            self.pace.record(
                step_started.elapsed().as_secs_f64(),
                labels.len() as f64 * side * side,
            );
            if let (Some(ledger), Some(cosines)) = (&mut self.margins, self.last_cosines.take()) {
                ledger.record(&batch.loaded, &labels, &cosines, at);
            }
            if !loss.is_finite() {
                return Err(EngineError::Training(format!(
                    "training diverged at step {} (the loss became {loss}); nothing was written. \
                     Lower the learning rate (--lr) and train again",
                    self.global_step + 1
                )));
            }
            self.global_step += 1;
            steps += 1;
            loss_sum += loss;
            let elapsed_secs = clock.elapsed().as_secs_f64();
            self.last_step_secs = elapsed_secs;
            on_event(TrainEvent::Step {
                epoch,
                step: step_index + 1,
                steps_per_epoch: self.steps_per_epoch,
                global_step: self.global_step,
                anchors: match (self.settings.loss, self.settings.mining) {
                    (Loss::Triplet, Mining::RandomTriplets) => labels.len() / 3,
                    _ => labels.len(),
                },
                loss,
                lr,
                elapsed_secs,
                remaining_secs: self.remaining_secs(total_steps, elapsed_secs),
            });
            if cancel.load(Ordering::Relaxed) {
                stop = Some(Stop::Cancelled);
            } else if self
                .steps_budget_secs()
                .is_some_and(|budget| elapsed_secs >= budget)
            {
                stop = Some(Stop::TimeBudget);
            }
            if stop.is_some() {
                break;
            }
        }
        Ok(EpochEnd {
            mean_loss: loss_sum / steps.max(1) as f64,
            stop,
            steps,
        })
    }

    fn remaining_secs(&self, total_steps: Option<usize>, elapsed_secs: f64) -> f64 {
        // This run's own steps (a resumed run's count starts where the last one ended).
        let done = self.global_step.saturating_sub(self.resumed.steps);
        let by_steps = total_steps.map(|total| {
            elapsed_secs / done.max(1) as f64 * total.saturating_sub(done) as f64
                + self.finish_reserve_secs
        });
        let by_time = self
            .settings
            .max_seconds
            .map(|budget| (budget - elapsed_secs).max(0.0) + self.finish_reserve_secs);
        match (by_steps, by_time) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => 0.0,
        }
    }

    fn spawn_loader(&self, batches: Vec<Vec<usize>>, epoch: usize) -> BatchStream {
        let images = Arc::clone(&self.images);
        let preprocess = Preprocess {
            image_size_px: self.epoch_size_px,
            ..self.preprocess.clone()
        };
        let augment = self.settings.augment;
        BatchStream::spawn(
            batches,
            preprocess.floats_per_image(),
            self.settings.seed.wrapping_add(epoch as u64 * 7919),
            self.loader_threads,
            4,
            Arc::new(move |item, rng: &mut fastrand::Rng, out: &mut [f32]| {
                preprocess.write_augmented(images.get(item), augment, rng, out);
                Ok(())
            }),
        )
    }

    /// One optimisation step on a batch of preprocessed images. Returns its loss.
    pub fn step(&mut self, pixels: &[f32], labels: &[i64], lr: f64) -> Result<f64> {
        let images =
            guard_libtorch(|| self.images_tensor(pixels, labels.len(), self.epoch_size_px))?;
        self.step_on(&images, labels, lr)
    }

    /// One step on images already on the device (`step` makes them from pixels; the
    /// benchmark's pure-step ceiling hands it random ones).
    pub fn step_on(&mut self, images: &Tensor, labels: &[i64], lr: f64) -> Result<f64> {
        self.optimizer.set_lr(lr);
        if let Some(proxies) = &mut self.proxies {
            proxies.optimizer.set_lr(lr);
        }
        let batch_norm_learns = !self.settings.freeze_batch_norm;
        let blend = if self.proxies.is_none() {
            None
        } else if self.settings.mixup_alpha > 0.0 {
            Some(Blend::Mixup {
                weight: sample_beta(&mut self.rng, self.settings.mixup_alpha),
            })
        } else if self.settings.cutmix_alpha > 0.0 {
            Some(Blend::Cutmix(cutmix_box(
                &mut self.rng,
                self.settings.cutmix_alpha,
                i64::from(self.epoch_size_px),
            )))
        } else {
            None
        };
        let partners = blend.as_ref().map(|_| {
            let mut order: Vec<i64> = (0..labels.len() as i64).collect();
            self.rng.shuffle(&mut order);
            order
        });
        let (loss, cosines) = guard_libtorch(|| {
            let (loss, cosines) = match (&blend, &partners) {
                // A blended image has no one label to measure a margin against.
                (Some(blend), Some(order)) => {
                    (self.blended_loss(images, labels, blend, order), None)
                }
                _ => self.loss_and_cosines(images, labels, batch_norm_learns),
            };
            let loss = match &mut self.proxies {
                Some(proxies) => descend(&mut [&mut self.optimizer, &mut proxies.optimizer], &loss),
                None => descend(&mut [&mut self.optimizer], &loss),
            };
            let cosines = cosines.and_then(|c| {
                Vec::<f32>::try_from(
                    c.to_kind(Kind::Float)
                        .to_device(tch::Device::Cpu)
                        .flatten(0, -1),
                )
                .ok()
            });
            (loss, cosines)
        })?;
        self.last_cosines = cosines;
        if let Some(average) = &mut self.average {
            average.update(self.global_step + 1);
        }
        Ok(loss)
    }

    /// Mixup (Zhang et al. 2018) or CutMix (Yun et al. 2019) for normalised softmax: each
    /// image is blended with its partner in the shuffled `order` (mixup: the whole images
    /// by a weight; CutMix: a box of the partner pasted in), and the loss is blended by the
    /// share of each image that is left, between its own class and its partner's.
    fn blended_loss(
        &self,
        images: &Tensor,
        labels: &[i64],
        blend: &Blend,
        order: &[i64],
    ) -> Tensor {
        let device = images.device();
        let order_tensor = Tensor::from_slice(order).to_device(device);
        let partners = images.index_select(0, &order_tensor);
        let (mixed, weight) = match blend {
            Blend::Mixup { weight } => (images * *weight + partners * (1.0 - *weight), *weight),
            Blend::Cutmix(cut) => (cut.paste(images, &partners), cut.kept_share()),
        };
        let partner_labels: Vec<i64> = order.iter().map(|&i| labels[i as usize]).collect();
        let embeddings = self
            .model
            .forward_t(&mixed, !self.settings.freeze_batch_norm);
        let Some(proxies) = &self.proxies else {
            return self.loss(images, labels, true);
        };
        let loss_for = |classes: &[i64]| {
            normalized_softmax_loss(
                &embeddings,
                &proxies.weights,
                &Tensor::from_slice(classes).to_device(device),
                self.settings.temperature,
                self.settings.label_smoothing,
            )
        };
        loss_for(labels) * weight + loss_for(&partner_labels) * (1.0 - weight)
    }

    /// The loss of a batch without training on it (inference mode).
    pub fn evaluate_loss(&self, pixels: &[f32], labels: &[i64]) -> Result<f64> {
        guard_libtorch(|| {
            tch::no_grad(|| {
                let images =
                    self.images_tensor(pixels, labels.len(), self.preprocess.image_size_px);
                self.loss(&images, labels, false).double_value(&[])
            })
        })
    }

    fn images_tensor(&self, pixels: &[f32], count: usize, size_px: u32) -> Tensor {
        let size = i64::from(size_px);
        let images = Tensor::from_slice(pixels)
            .view([count as i64, 3, size, size])
            .to_device(self.model.device());
        if self.settings.channels_last {
            crate::engine::model::channels_last(images)
        } else {
            images
        }
    }

    /// Random triplets are three separate forward passes, as in the seed (so BatchNorm
    /// sees anchors, positives and negatives as separate batches).
    fn loss(&self, images: &Tensor, labels: &[i64], train: bool) -> Tensor {
        self.loss_and_cosines(images, labels, train).0
    }

    /// The loss, and for normalised softmax the cosines to the class proxies it was
    /// computed from (detached: they only feed the margins).
    fn loss_and_cosines(
        &self,
        images: &Tensor,
        labels: &[i64],
        train: bool,
    ) -> (Tensor, Option<Tensor>) {
        let model = &self.model;
        let labels_tensor = || Tensor::from_slice(labels).to_device(images.device());
        match (self.settings.loss, &self.proxies) {
            (Loss::NormalizedSoftmax, Some(proxies)) => {
                let cosines = proxy_cosines(&model.forward_t(images, train), &proxies.weights);
                let loss = normalized_softmax_from_cosines(
                    &cosines,
                    &labels_tensor(),
                    self.settings.temperature,
                    self.settings.label_smoothing,
                );
                (loss, Some(cosines.detach()))
            }
            _ => (self.metric_loss(images, labels, train), None),
        }
    }

    fn metric_loss(&self, images: &Tensor, labels: &[i64], train: bool) -> Tensor {
        let model = &self.model;
        let labels_tensor = || Tensor::from_slice(labels).to_device(images.device());
        {
            match self.settings.mining {
                Mining::RandomTriplets => {
                    let n = images.size()[0] / 3;
                    let anchor = model.forward_t(&images.narrow(0, 0, n), train);
                    let positive = model.forward_t(&images.narrow(0, n, n), train);
                    let negative = model.forward_t(&images.narrow(0, 2 * n, n), train);
                    triplet_loss(&anchor, &positive, &negative, self.settings.margin)
                }
                Mining::BatchHard => batch_hard_loss(
                    &model.forward_t(images, train),
                    &labels_tensor(),
                    self.settings.margin,
                ),
            }
        }
    }

    /// Each training photo's margin evidence so far (by its index in the training set);
    /// empty for losses without class proxies.
    pub fn margin_evidence(&self) -> Vec<Option<MarginEvidence>> {
        self.margins
            .as_ref()
            .map_or_else(Vec::new, |ledger| ledger.evidence(&self.labels))
    }

    /// Each training photo's progress-weighted mean cosine to every class proxy (by its
    /// index in the training set); empty for losses without class proxies.
    pub fn margin_cosines(&self) -> Vec<Option<Vec<f64>>> {
        self.margins
            .as_ref()
            .map_or_else(Vec::new, MarginLedger::late_cosines)
    }
}

/// The side of the images at `progress` (0..=1) of the run: with progressive resizing,
/// growing linearly from the first size to the full one, which is reached at
/// [`PROGRESSIVE_FULL_SIZE_AT`]; sizes are multiples of 8 (ResNet's strides stay whole).
pub fn epoch_image_size(settings: &TrainSettings, progress: f64) -> u32 {
    let full = settings.image_size_px;
    let Some(from) = settings.progressive_from_px else {
        return full;
    };
    let ramp = (progress / PROGRESSIVE_FULL_SIZE_AT).clamp(0.0, 1.0);
    let size = f64::from(from) + (f64::from(full) - f64::from(from)) * ramp;
    ((size as u32) / 8 * 8).clamp(from.min(full), full)
}

/// The sampler each loss needs: the seed's random triplets, P × K batches for batch-hard
/// mining, every image once in random order for normalised softmax.
pub(super) fn batches_for(
    settings: &TrainSettings,
    by_class: &[Vec<usize>],
    image_count: usize,
    rng: &mut fastrand::Rng,
) -> Vec<Vec<usize>> {
    match (settings.loss, settings.mining) {
        (Loss::NormalizedSoftmax, _) => shuffled_epoch(image_count, settings.batch_size, rng),
        (Loss::Triplet, Mining::RandomTriplets) => {
            seed_triplet_epoch(by_class, settings.batch_size, rng)
        }
        (Loss::Triplet, Mining::BatchHard) => pk_epoch(
            by_class,
            (settings.batch_size / settings.images_per_class).max(2),
            settings.images_per_class,
            rng,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::train::Preset;

    #[test]
    fn progressive_resizing_grows_to_full_size_by_seventy_percent_of_the_run() {
        let mut settings = Preset::Scratch.settings();
        settings.progressive_from_px = None;
        assert_eq!(
            epoch_image_size(&settings, 0.0),
            112,
            "off: always full size"
        );
        settings.progressive_from_px = Some(200);
        assert_eq!(
            epoch_image_size(&settings, 0.0),
            112,
            "a start above it: full size"
        );
        settings.progressive_from_px = Some(64);
        assert_eq!(epoch_image_size(&settings, 0.0), 64);
        assert_eq!(epoch_image_size(&settings, 0.35), 88);
        assert_eq!(epoch_image_size(&settings, PROGRESSIVE_FULL_SIZE_AT), 112);
        assert_eq!(epoch_image_size(&settings, 1.0), 112);
        let sizes: Vec<u32> = (0..=20)
            .map(|i| epoch_image_size(&settings, f64::from(i) / 20.0))
            .collect();
        assert!(sizes.windows(2).all(|w| w[0] <= w[1]), "{sizes:?}");
        assert!(sizes.iter().all(|s| s % 8 == 0), "{sizes:?}");
    }

    #[test]
    fn the_weight_average_trades_places_with_the_live_weights_and_back() {
        let mut settings = Preset::Scratch.settings();
        settings.embedding_dim = 4;
        settings.image_size_px = 16;
        let model = EmbeddingModel::new(settings.model_config(), tch::Device::Cpu).expect("model");
        let first = |m: &EmbeddingModel| m.named_tensors()[0].1.double_value(&[0]);
        let start = first(&model);
        let mut average = WeightAverage::new(&model, 0.5);
        // The live weights move; the average follows half-way (the early-step decay is
        // min(0.5, 2/11)).
        tch::no_grad(|| {
            let _ = model.named_tensors()[0]
                .1
                .shallow_clone()
                .g_add_scalar_(1.0);
        });
        average.update(1);
        let live = first(&model);
        assert!((live - (start + 1.0)).abs() < 1e-6);
        average.show(true);
        let shown = first(&model);
        let expected = start + (1.0 - 2.0 / 11.0);
        assert!((shown - expected).abs() < 1e-5, "{shown} vs {expected}");
        average.show(true);
        assert!(
            (first(&model) - shown).abs() < 1e-9,
            "showing twice changes nothing"
        );
        average.show(false);
        assert!(
            (first(&model) - live).abs() < 1e-9,
            "the live weights come back"
        );
    }
}
