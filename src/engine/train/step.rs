//! One training step, shared by everything that trains: the Trainer's steps, fine-tuning
//! from marks, and the benchmark's pure-step ceiling. Each brings its own loss (the hook);
//! the step itself — gradients cleared, the loss carried back, every optimiser stepped —
//! and the time-budgeted loop around it are written once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tch::Tensor;

use super::optimizer::AdamW;
use crate::engine::{EngineError, Result};

/// Takes one step down `loss` with every optimiser (each over its own variables) and
/// returns the loss. Call inside [`crate::engine::device::guard_libtorch`].
pub fn descend(optimizers: &mut [&mut AdamW], loss: &Tensor) -> f64 {
    for optimizer in optimizers.iter_mut() {
        optimizer.zero_grad();
    }
    loss.backward();
    for optimizer in optimizers.iter_mut() {
        optimizer.step();
    }
    loss.double_value(&[])
}

/// Runs `step` until `budget_secs` have passed, checking `cancel` before each step and
/// reporting the seconds done (at most the budget) after each. Returns the steps taken
/// and the seconds they took.
pub fn for_a_budget(
    budget_secs: f64,
    cancel: &AtomicBool,
    mut step: impl FnMut() -> Result<()>,
    mut on_step: impl FnMut(f64),
) -> Result<(usize, f64)> {
    let started = Instant::now();
    let mut steps = 0;
    while started.elapsed().as_secs_f64() < budget_secs {
        if cancel.load(Ordering::Relaxed) {
            return Err(EngineError::Cancelled);
        }
        step()?;
        steps += 1;
        on_step(started.elapsed().as_secs_f64().min(budget_secs));
    }
    Ok((steps, started.elapsed().as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_descends_the_loss_and_the_loop_keeps_to_its_budget_and_cancel() {
        let x = Tensor::from_slice(&[3.0f32]).set_requires_grad(true);
        let mut optimizer = AdamW::new(vec![x.shallow_clone()], 0.1, 0.0);
        let cancel = AtomicBool::new(false);
        let mut losses = Vec::new();
        let mut reported = Vec::new();
        let (steps, secs) = for_a_budget(
            0.05,
            &cancel,
            || {
                losses.push(descend(
                    &mut [&mut optimizer],
                    &(&x * &x).sum(tch::Kind::Float),
                ));
                Ok(())
            },
            |secs| reported.push(secs),
        )
        .expect("steps");
        assert!(steps >= 2 && steps == losses.len() && steps == reported.len());
        assert!(losses.last() < losses.first(), "{losses:?}");
        assert!(secs >= 0.05 && reported.iter().all(|&s| s <= 0.05));
        cancel.store(true, Ordering::Relaxed);
        let cancelled = for_a_budget(10.0, &cancel, || Ok(()), |_| {});
        assert!(matches!(cancelled, Err(EngineError::Cancelled)));
    }
}
