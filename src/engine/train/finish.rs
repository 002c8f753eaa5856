//! The work around a run's steps: the phases it names while no step runs, and the time
//! kept for the work after the last step, counted image by image.
//!
//! A time budget covers the whole run. The steps stop early by what follows them (the
//! final observation, calibration, the final evaluation), priced at the rate of the last
//! measuring pass and grown when the steps slow down after it
//! ([`super::pace`]): on a machine that got busy, a reserve measured once before the
//! first step ran the end over the budget (issue #41).

use serde::{Deserialize, Serialize};

use super::monitor::Monitor;
use super::prepare::PreparedData;
use super::trainer::Trainer;
use super::{Loss, TrainSettings};

/// The work a run does around its steps, each shown as its own phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrainPhase {
    /// The photos are decoded; the starting model is measured before the first step
    /// (the spread probe, the validation photos' picture).
    MeasuringStart,
    /// An epoch ended: the model is measured on the validation photos.
    Validating { epoch: usize },
    /// The last step ran: the final measures, the before/after picture, calibration.
    Finishing,
    /// The second opinion on the folders is fitted: `photos` through the ImageNet network.
    SecondOpinion { photos: usize },
}

impl TrainPhase {
    /// What the progress line says while it runs.
    pub fn describe(self) -> String {
        match self {
            Self::MeasuringStart => "Measuring the starting model before the first step".into(),
            Self::Validating { epoch } => format!("Measuring the model after epoch {epoch}"),
            Self::Finishing => {
                "Last step done: measuring the trained model and calibrating it".into()
            }
            Self::SecondOpinion { photos } => format!(
                "Fitting a second opinion on the folders: {photos} photos through the \
                 ImageNet network"
            ),
        }
    }
}

/// The work after the last step: what the reserve planned for it, and what was done.
/// Images are counted, not timed, so a test can check that every phase is planned for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct FinishWork {
    /// Images the work after the last step runs through the network, as the run ended (the
    /// final observation, the before/after picture and calibration again when an earlier
    /// epoch's weights came back, the final evaluation).
    pub planned_images: usize,
    /// Images the last reserve priced (before the final observation, which may change
    /// whether an earlier epoch comes back).
    pub priced_images: usize,
    /// Images run through the network after the last step.
    pub embedded_images: usize,
    /// The seconds kept for it at the end: (`priced_images` × `secs_per_image` +
    /// `read_secs`) × `slowdown`, at most 0.9 of the budget.
    pub reserve_secs: f64,
    /// How many times slower the last steps ran than those just after the pricing (1 or
    /// more): the machine got busier, and the work after the steps will take longer.
    pub slowdown: f64,
    /// The seconds per image that priced it: the rate of the last measuring pass before
    /// the last step (the starting model's, or the last observation's).
    pub secs_per_image: f64,
    /// Seconds for reading the folders again (the final evaluation of a validation
    /// folder: as long as preparing took).
    pub read_secs: f64,
    /// Seconds the reserve kept for fitting the second opinion (its photos through the
    /// ImageNet network, priced at `secs_per_image` scaled by its larger input, and read
    /// from disk again), before `slowdown`.
    pub second_opinion_secs: f64,
    /// Photos the second opinion ran through the ImageNet network (0: none was fitted).
    pub second_opinion_images: usize,
    /// Where the run's time went, in seconds from its start: the photos were loaded, the
    /// starting model measured (the first step began), the last step ended, and the run
    /// ended (with its final evaluation).
    pub loaded_at_secs: f64,
    pub first_step_at_secs: f64,
    pub last_step_at_secs: f64,
    pub ended_at_secs: f64,
}

/// What the work after the last step will run through the network, besides the
/// monitor's own passes.
pub(super) struct FinishPlan {
    /// Held-out photos the classifier is calibrated on.
    pub(super) calibration_images: usize,
    /// Photos the final evaluation embeds (both folders, with a validation folder).
    pub(super) evaluation_images: usize,
    /// Seconds the final evaluation spends reading the folders from disk again.
    pub(super) evaluation_read_secs: f64,
    /// Photos the second opinion runs through the ImageNet network (0: none is fitted),
    /// what one costs against one of the run's own images, and the seconds reading them
    /// from disk again takes.
    pub(super) second_opinion_images: usize,
    pub(super) second_opinion_cost: f64,
    pub(super) second_opinion_read_secs: f64,
    /// The rate and the images the last reserve was priced at.
    pub(super) priced_secs_per_image: std::cell::Cell<f64>,
    pub(super) priced_images: std::cell::Cell<usize>,
}

impl FinishPlan {
    /// Every image the work after the last step runs through the network.
    pub(super) fn images(&self, monitor: &Monitor) -> usize {
        // Calibration reuses the final observation's embeddings when it has every held-out
        // photo and its weights are the ones kept.
        let calibration = if monitor.looks_at_every_validation_photo() && !monitor.will_restore() {
            0
        } else {
            self.calibration_images
        };
        monitor.images_after_steps() + calibration + self.evaluation_images
    }

    /// Keeps the seconds it needs at the monitor's last measured rate (replacing the
    /// last reserve): a machine that got busier since the last pass makes it grow.
    pub(super) fn reserve(&self, trainer: &mut Trainer, monitor: &Monitor) {
        let images = self.images(monitor);
        self.priced_secs_per_image.set(monitor.embed_secs_per_image);
        self.priced_images.set(images);
        trainer.reserve_for_finish(
            images as f64 * monitor.embed_secs_per_image
                + self.evaluation_read_secs
                + self.second_opinion_secs(monitor.embed_secs_per_image),
        );
    }

    /// Seconds fitting the second opinion takes when the run's network embeds an image in
    /// `secs_per_image`.
    pub(super) fn second_opinion_secs(&self, secs_per_image: f64) -> f64 {
        if self.second_opinion_images == 0 {
            return 0.0;
        }
        self.second_opinion_images as f64 * secs_per_image * self.second_opinion_cost
            + self.second_opinion_read_secs
    }
}

/// Held-out photos calibration is fitted on: those of a validation set of the training
/// classes, when the loss trains class proxies (`calibrated_classifier`).
pub(super) fn calibration_images(data: &PreparedData, settings: &TrainSettings) -> usize {
    match &data.validation {
        Some(validation)
            if settings.loss == Loss::NormalizedSoftmax
                && validation.dataset.classes == data.training.dataset.classes =>
        {
            validation.len()
        }
        _ => 0,
    }
}

/// When the final observation began (after the last step).
#[derive(Debug, Clone, Copy)]
pub(super) struct LastStep {
    /// Seconds from the start of the run.
    pub(super) at_secs: f64,
    /// Images the monitor had embedded by then.
    pub(super) embedded_images: usize,
}
