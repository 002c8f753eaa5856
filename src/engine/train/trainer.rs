//! Phase 2 of training: the network, its loss and optimiser, one step and one epoch.
//!
//! The loop reads like the tch examples: an epoch asks the sampler for batches, a loader
//! thread pool augments them ahead of the network, and each step is forward, loss,
//! backward, optimiser step.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tch::nn::{self, OptimizerConfig};
use tch::{Kind, Tensor};

use super::prepare::{LabeledImages, PreparedData};
use super::schedule::{learning_rate, progress};
use super::{Loss, Mining, TrainEvent, TrainSettings};
use crate::engine::data::{
    BatchStream, PreparedImages, Preprocess, pk_epoch, seed_triplet_epoch, shuffled_epoch,
};
use crate::engine::device::guard_libtorch;
use crate::engine::loss::{batch_hard_loss, normalized_softmax_loss, triplet_loss};
use crate::engine::model::EmbeddingModel;
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
    optimizer: nn::Optimizer,
}

/// A copy of every trained tensor, to go back to (best epoch, before a collapse).
pub struct Checkpoint {
    tensors: Vec<(String, Tensor)>,
    proxies: Option<Tensor>,
}

/// The network with everything that trains it.
pub struct Trainer {
    model: EmbeddingModel,
    optimizer: nn::Optimizer,
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
}

impl Trainer {
    pub fn new(
        model: EmbeddingModel,
        settings: &TrainSettings,
        data: &PreparedData,
        loader_threads: usize,
    ) -> Result<Self> {
        let optimizer = nn::AdamW {
            wd: settings.weight_decay,
            ..Default::default()
        }
        .build(&model.var_store, settings.lr)?;
        let proxies = match settings.loss {
            Loss::Triplet => None,
            Loss::NormalizedSoftmax => {
                let var_store = nn::VarStore::new(model.device());
                let classes = data.training.dataset.classes.len() as i64;
                let weights = var_store.root().var(
                    "proxies",
                    &[classes, settings.embedding_dim as i64],
                    nn::Init::Randn {
                        mean: 0.0,
                        stdev: 1.0,
                    },
                );
                let optimizer = nn::Adam::default().build(&var_store, settings.lr)?;
                Some(ClassProxies {
                    _var_store: var_store,
                    weights,
                    optimizer,
                })
            }
        };
        let training: &LabeledImages = &data.training;
        let mut trainer = Self {
            preprocess: model.config.preprocess.clone(),
            model,
            optimizer,
            proxies,
            settings: settings.clone(),
            images: Arc::clone(&training.images),
            labels: training.labels(),
            by_class: training.dataset.indices_by_class(),
            rng: fastrand::Rng::with_seed(settings.seed),
            loader_threads,
            steps_per_epoch: 0,
            global_step: 0,
            lr_scale: 1.0,
            finish_reserve_secs: 0.0,
        };
        let mut probe_rng = trainer.rng.fork();
        trainer.steps_per_epoch = trainer.epoch_batches(&mut probe_rng).len();
        Ok(trainer)
    }

    pub fn model(&self) -> &EmbeddingModel {
        &self.model
    }

    pub fn into_model(self) -> EmbeddingModel {
        self.model
    }

    pub fn steps_per_epoch(&self) -> usize {
        self.steps_per_epoch
    }

    pub fn global_step(&self) -> usize {
        self.global_step
    }

    /// Keeps `secs` of the time budget for the work after the last step: the steps (and
    /// the learning-rate schedule) end that much earlier, and the countdown still counts
    /// to the end of the whole run.
    pub fn reserve_for_finish(&mut self, secs: f64) {
        if let Some(budget) = self.settings.max_seconds {
            // At least a tenth of the budget stays for training, however slow the rest.
            let reserve = secs.clamp(0.0, budget * 0.9);
            self.settings.max_seconds = Some(budget - reserve);
            self.finish_reserve_secs = reserve;
        }
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
        let stream = self.spawn_loader(batches, epoch);
        let total_steps = self
            .settings
            .epoch_limit()
            .map(|epochs| epochs * self.steps_per_epoch);
        let (mut loss_sum, mut steps, mut stop) = (0.0, 0usize, None);
        for (step_index, batch) in stream.enumerate() {
            let elapsed_secs = clock.elapsed().as_secs_f64();
            let at = progress(&self.settings, self.global_step, total_steps, elapsed_secs);
            let lr = learning_rate(&self.settings, at) * self.lr_scale;
            let labels: Vec<i64> = batch.loaded.iter().map(|&i| self.labels[i]).collect();
            let loss = self.step(&batch.pixels, &labels, lr)?;
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
                .settings
                .max_seconds
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
        let by_steps = total_steps.map(|total| {
            elapsed_secs / self.global_step.max(1) as f64
                * total.saturating_sub(self.global_step) as f64
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
        let preprocess = self.preprocess.clone();
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
        self.optimizer.set_lr(lr);
        if let Some(proxies) = &mut self.proxies {
            proxies.optimizer.set_lr(lr);
        }
        let batch_norm_learns = !self.settings.freeze_batch_norm;
        guard_libtorch(|| {
            let images = self.images_tensor(pixels, labels.len());
            let loss = self.loss(&images, labels, batch_norm_learns);
            self.optimizer.zero_grad();
            if let Some(proxies) = &mut self.proxies {
                proxies.optimizer.zero_grad();
            }
            loss.backward();
            self.optimizer.step();
            if let Some(proxies) = &mut self.proxies {
                proxies.optimizer.step();
            }
            loss.double_value(&[])
        })
    }

    /// The loss of a batch without training on it (inference mode).
    pub fn evaluate_loss(&self, pixels: &[f32], labels: &[i64]) -> Result<f64> {
        guard_libtorch(|| {
            tch::no_grad(|| {
                let images = self.images_tensor(pixels, labels.len());
                self.loss(&images, labels, false).double_value(&[])
            })
        })
    }

    fn images_tensor(&self, pixels: &[f32], count: usize) -> Tensor {
        let size = i64::from(self.preprocess.image_size_px);
        Tensor::from_slice(pixels)
            .view([count as i64, 3, size, size])
            .to_device(self.model.device())
    }

    /// Random triplets are three separate forward passes, as in the seed (so BatchNorm
    /// sees anchors, positives and negatives as separate batches).
    fn loss(&self, images: &Tensor, labels: &[i64], train: bool) -> Tensor {
        let model = &self.model;
        let labels_tensor = || Tensor::from_slice(labels).to_device(images.device());
        match (self.settings.loss, &self.proxies) {
            (Loss::NormalizedSoftmax, Some(proxies)) => normalized_softmax_loss(
                &model.forward_t(images, train),
                &proxies.weights,
                &labels_tensor(),
                self.settings.temperature,
                self.settings.label_smoothing,
            ),
            _ => match self.settings.mining {
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
            },
        }
    }

    /// Copies every trained tensor.
    pub fn checkpoint(&self) -> Checkpoint {
        tch::no_grad(|| Checkpoint {
            tensors: self
                .model
                .named_tensors()
                .into_iter()
                .map(|(name, tensor)| (name, tensor.copy()))
                .collect(),
            proxies: self.proxies.as_ref().map(|p| p.weights.copy()),
        })
    }

    /// Puts the tensors of `checkpoint` back.
    pub fn restore(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        let variables = self.model.var_store.variables();
        tch::no_grad(|| -> Result<()> {
            for (name, saved) in &checkpoint.tensors {
                if let Some(variable) = variables.get(name) {
                    variable.shallow_clone().f_copy_(saved)?;
                }
            }
            if let (Some(proxies), Some(saved)) = (&self.proxies, &checkpoint.proxies) {
                proxies.weights.shallow_clone().f_copy_(saved)?;
            }
            Ok(())
        })
    }
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

/// Embeds `indices` of `images` (cached squares) without augmentation, in inference mode.
pub fn embed_prepared(
    model: &EmbeddingModel,
    images: &PreparedImages,
    indices: &[usize],
) -> Result<Tensor> {
    embed_prepared_until(model, images, indices, &AtomicBool::new(false))
}

/// [`embed_prepared`], stopping with [`EngineError::Cancelled`] at the next batch of 64
/// once `cancel` is set (validation must not hold up a cancel for tens of seconds).
pub fn embed_prepared_until(
    model: &EmbeddingModel,
    images: &PreparedImages,
    indices: &[usize],
    cancel: &AtomicBool,
) -> Result<Tensor> {
    let preprocess = &model.config.preprocess;
    let floats = preprocess.floats_per_image();
    let size = i64::from(preprocess.image_size_px);
    let mut parts = Vec::new();
    for chunk in indices.chunks(64) {
        if cancel.load(Ordering::Relaxed) {
            return Err(EngineError::Cancelled);
        }
        let mut pixels = vec![0.0f32; chunk.len() * floats];
        for (slot, &item) in chunk.iter().enumerate() {
            preprocess.write_plain(
                images.get(item),
                &mut pixels[slot * floats..(slot + 1) * floats],
            );
        }
        parts.push(guard_libtorch(|| {
            tch::no_grad(|| {
                let batch = Tensor::from_slice(&pixels)
                    .view([chunk.len() as i64, 3, size, size])
                    .to_device(model.device());
                model.forward_t(&batch, false).to_kind(Kind::Float)
            })
        })?);
    }
    if parts.is_empty() {
        return Ok(Tensor::zeros(
            [0, model.config.embedding_dim as i64],
            (Kind::Float, model.device()),
        ));
    }
    Ok(Tensor::cat(&parts, 0))
}
