//! The weights' moving average that a run judges and saves.

use tch::Tensor;

use crate::engine::model::EmbeddingModel;

/// An exponential moving average of every model tensor (weights and BatchNorm
/// statistics). The average and the live weights trade places while the run is judged
/// (validation, the best epoch, the saved model), so everything that reads the model
/// reads the average, and training goes on from the live weights.
pub(super) struct WeightAverage {
    decay: f64,
    /// The model's variables (shallow handles) and their averages, in the same order.
    variables: Vec<Tensor>,
    pub(super) averages: Vec<Tensor>,
    /// Whether the model's variables hold the averages right now.
    pub(super) shown: bool,
}

impl WeightAverage {
    pub(super) fn new(model: &EmbeddingModel, decay: f64) -> Self {
        let variables: Vec<Tensor> = model
            .named_tensors()
            .into_iter()
            .map(|(_, tensor)| tensor)
            .collect();
        let averages = tch::no_grad(|| variables.iter().map(Tensor::copy).collect());
        Self {
            decay,
            variables,
            averages,
            shown: false,
        }
    }

    /// Moves the average towards the live weights after step `step` (1-based). Early on
    /// the decay is smaller, so the average is not dominated by the random start.
    pub(super) fn update(&mut self, step: usize) {
        let decay = self.decay.min((1.0 + step as f64) / (10.0 + step as f64));
        tch::no_grad(|| {
            for (average, variable) in self.averages.iter_mut().zip(&self.variables) {
                if variable.is_floating_point() {
                    let _ = average.lerp_(variable, 1.0 - decay);
                } else {
                    average.copy_(variable);
                }
            }
        });
    }

    /// Puts the averages into the model (`true`) or the live weights back (`false`).
    pub(super) fn show(&mut self, average: bool) {
        if self.shown == average {
            return;
        }
        tch::no_grad(|| {
            for (stored, variable) in self.averages.iter_mut().zip(&self.variables) {
                let live = variable.copy();
                variable.shallow_clone().copy_(stored);
                stored.copy_(&live);
            }
        });
        self.shown = average;
    }
}
