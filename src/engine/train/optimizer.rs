//! Adam with decoupled weight decay (AdamW, Loshchilov & Hutter 2019), written out so
//! that its state (the step count and both moment estimates) can be saved with a model
//! and read back: a resumed run then goes on exactly where it stopped. tch's optimisers
//! keep that state inside libtorch, out of reach.
//!
//! The update is PyTorch's single-tensor AdamW, operation for operation.

use tch::{Kind, Tensor};

/// AdamW over a fixed list of variables.
pub struct AdamW {
    variables: Vec<Tensor>,
    /// Each variable's share of the learning rate (1 unless [`Self::with_lr_factors`]).
    lr_factors: Vec<f64>,
    /// First and second moment estimates, one of each per variable.
    first_moments: Vec<Tensor>,
    second_moments: Vec<Tensor>,
    /// Steps taken (bias correction needs it).
    steps: u64,
    lr: f64,
    weight_decay: f64,
    beta1: f64,
    beta2: f64,
    epsilon: f64,
}

impl AdamW {
    /// torch's defaults (betas 0.9 and 0.999, epsilon 1e-8); `weight_decay` 0 is Adam.
    pub fn new(variables: Vec<Tensor>, lr: f64, weight_decay: f64) -> Self {
        let zeros = |v: &Tensor| v.zeros_like().set_requires_grad(false);
        Self {
            lr_factors: vec![1.0; variables.len()],
            first_moments: variables.iter().map(zeros).collect(),
            second_moments: variables.iter().map(zeros).collect(),
            variables,
            steps: 0,
            lr,
            weight_decay,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
        }
    }

    /// Gives each variable its own share of the learning rate (and of the weight decay,
    /// which AdamW scales by the learning rate): parameter groups, as PyTorch's.
    pub fn with_lr_factors(mut self, factors: Vec<f64>) -> Self {
        assert_eq!(
            factors.len(),
            self.variables.len(),
            "one factor per variable"
        );
        self.lr_factors = factors;
        self
    }

    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    pub fn steps(&self) -> u64 {
        self.steps
    }

    pub fn zero_grad(&mut self) {
        for variable in &mut self.variables {
            variable.zero_grad();
        }
    }

    /// One update from the gradients the last backward pass left.
    pub fn step(&mut self) {
        self.steps += 1;
        let step = self.steps as f64;
        let bias_correction1 = 1.0 - self.beta1.powf(step);
        let bias_correction2_sqrt = (1.0 - self.beta2.powf(step)).sqrt();
        tch::no_grad(|| {
            for (((variable, first), second), factor) in self
                .variables
                .iter_mut()
                .zip(&mut self.first_moments)
                .zip(&mut self.second_moments)
                .zip(&self.lr_factors)
            {
                let gradient = variable.grad();
                if !gradient.defined() {
                    continue;
                }
                let lr = self.lr * factor;
                let step_size = lr / bias_correction1;
                if self.weight_decay > 0.0 {
                    let _ = variable.g_mul_scalar_(1.0 - lr * self.weight_decay);
                }
                let _ = first.lerp_(&gradient, 1.0 - self.beta1);
                let _ = second.g_mul_scalar_(self.beta2);
                let _ = second.addcmul_(&(&gradient * (1.0 - self.beta2)), &gradient);
                let mut denominator = second.sqrt();
                let _ = denominator.g_div_scalar_(bias_correction2_sqrt);
                let _ = denominator.g_add_scalar_(self.epsilon);
                let _ = variable.addcdiv_(&(&*first * -step_size), &denominator);
            }
        });
    }

    /// The state to save: (name, tensor) pairs for both moments, under `prefix`.
    pub fn state_tensors(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut tensors = Vec::with_capacity(2 * self.variables.len());
        for (i, (first, second)) in self
            .first_moments
            .iter()
            .zip(&self.second_moments)
            .enumerate()
        {
            tensors.push((format!("{prefix}.m.{i}"), first.shallow_clone()));
            tensors.push((format!("{prefix}.v.{i}"), second.shallow_clone()));
        }
        tensors
    }

    /// Puts saved moments (as [`Self::state_tensors`] named them) and the step count back.
    /// Errors when a tensor is missing or has another shape: the state is not this
    /// optimiser's.
    pub fn load_state(
        &mut self,
        prefix: &str,
        steps: u64,
        get: &dyn Fn(&str) -> Option<Tensor>,
    ) -> std::result::Result<(), String> {
        let device = self.variables.first().map(Tensor::device);
        for (i, (first, second)) in self
            .first_moments
            .iter_mut()
            .zip(&mut self.second_moments)
            .enumerate()
        {
            for (kind, target) in [("m", &mut *first), ("v", &mut *second)] {
                let name = format!("{prefix}.{kind}.{i}");
                let saved = get(&name).ok_or_else(|| format!("{name} is missing"))?;
                if saved.size() != target.size() {
                    return Err(format!(
                        "{name} has shape {:?}, the network needs {:?}",
                        saved.size(),
                        target.size()
                    ));
                }
                let saved = match device {
                    Some(device) => saved.to_device(device),
                    None => saved,
                };
                tch::no_grad(|| target.copy_(&saved.to_kind(Kind::Float)));
            }
        }
        self.steps = steps;
        Ok(())
    }
}

/// Checks an [`AdamW`] step against the formula on one scalar.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_step_matches_the_adamw_formula() {
        let weight = Tensor::from_slice(&[1.0f32, -2.0]).set_requires_grad(true);
        let mut optimizer = AdamW::new(vec![weight.shallow_clone()], 0.1, 0.01);
        for _ in 0..2 {
            optimizer.zero_grad();
            (&weight * &weight).sum(Kind::Float).backward();
            optimizer.step();
        }
        // By hand, for w = 1: step 1: g = 2, w ← 1·(1 − 0.001) = 0.999, m = 0.2, v = 0.004,
        // m̂ = 2, v̂ = 4, w ← 0.999 − 0.1·2/(2 + 1e-8) = 0.899.
        // Step 2: g = 1.798, w ← 0.899·0.999 = 0.898101, m = 0.9·0.2 + 0.1·1.798 = 0.3598,
        // v = 0.999·0.004 + 0.001·1.798² = 0.007228804, m̂ = 0.3598/0.19 = 1.893684,
        // v̂ = 0.007228804/0.001999 = 3.616210, w ← 0.898101 − 0.1·1.893684/1.901634.
        let expected = 0.898101 - 0.1 * 1.893684 / 3.616210f64.sqrt();
        let got = weight.double_value(&[0]);
        assert!((got - expected).abs() < 1e-5, "{got} vs {expected}");
        assert_eq!(optimizer.steps(), 2);
    }

    /// Parameter groups: a variable at a share of the rate moves by that share of the
    /// step (Adam's first step is lr · sign of the gradient), and decays by it too.
    #[test]
    fn a_variable_learns_at_its_share_of_the_rate() {
        let head = Tensor::from_slice(&[1.0f32]).set_requires_grad(true);
        let body = Tensor::from_slice(&[1.0f32]).set_requires_grad(true);
        let mut optimizer = AdamW::new(vec![head.shallow_clone(), body.shallow_clone()], 0.1, 0.0)
            .with_lr_factors(vec![1.0, 0.3]);
        optimizer.zero_grad();
        (&head * 2.0 + &body * 2.0).sum(Kind::Float).backward();
        optimizer.step();
        assert!((head.double_value(&[0]) - 0.9).abs() < 1e-6);
        assert!((body.double_value(&[0]) - 0.97).abs() < 1e-6);
    }

    #[test]
    fn saved_moments_go_back_and_foreign_ones_are_refused() {
        let weight = Tensor::from_slice(&[1.0f32, 2.0, 3.0]).set_requires_grad(true);
        let mut optimizer = AdamW::new(vec![weight.shallow_clone()], 0.1, 0.0);
        optimizer.zero_grad();
        weight.sum(Kind::Float).backward();
        optimizer.step();
        let saved: std::collections::HashMap<String, Tensor> = optimizer
            .state_tensors("net")
            .into_iter()
            .map(|(n, t)| (n, t.copy()))
            .collect();
        let other = Tensor::from_slice(&[0.0f32, 0.0, 0.0]).set_requires_grad(true);
        let mut restored = AdamW::new(vec![other], 0.1, 0.0);
        restored
            .load_state("net", 1, &|name| saved.get(name).map(Tensor::copy))
            .expect("same shapes");
        assert_eq!(restored.steps(), 1);
        assert_eq!(
            restored.first_moments[0].double_value(&[0]),
            optimizer.first_moments[0].double_value(&[0])
        );
        let small = Tensor::from_slice(&[0.0f32]).set_requires_grad(true);
        let mut wrong = AdamW::new(vec![small], 0.1, 0.0);
        let error = wrong
            .load_state("net", 1, &|name| saved.get(name).map(Tensor::copy))
            .expect_err("other shapes");
        assert!(error.contains("shape"), "{error}");
    }
}
