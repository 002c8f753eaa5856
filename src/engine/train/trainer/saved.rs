//! What a trainer keeps to come back to: the state a later run goes on from (saved beside
//! the model), and the checkpoint an epoch goes back to (the best epoch, before a
//! collapse).

use super::*;

/// A copy of every trained tensor, to go back to (best epoch, before a collapse).
pub struct Checkpoint {
    tensors: Vec<(String, Tensor)>,
    proxies: Option<Tensor>,
    average: Option<Vec<Tensor>>,
}

impl Trainer {
    /// Everything a later run needs to go on from here (copies): the live weights, the
    /// weight average, the proxies, the optimisers' moments and the schedule's position.
    pub fn state(&self, epochs: usize, classes: &[String]) -> TrainState {
        let names: Vec<String> = self
            .model
            .named_tensors()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        let (live, average): (Vec<Tensor>, Option<Vec<Tensor>>) = tch::no_grad(|| {
            let model: Vec<Tensor> = self
                .model
                .named_tensors()
                .into_iter()
                .map(|(_, t)| t.copy())
                .collect();
            match &self.average {
                None => (model, None),
                Some(a) => {
                    let stored: Vec<Tensor> = a.averages.iter().map(Tensor::copy).collect();
                    // While the average is shown the live weights wait in its place.
                    if a.shown {
                        (stored, Some(model))
                    } else {
                        (model, Some(stored))
                    }
                }
            }
        });
        let mut tensors: Vec<(String, Tensor)> = names
            .iter()
            .zip(live)
            .map(|(name, t)| (format!("live.{name}"), t))
            .collect();
        if let Some(average) = average {
            tensors.extend(
                names
                    .iter()
                    .zip(average)
                    .map(|(name, t)| (format!("average.{name}"), t)),
            );
        }
        tensors.extend(self.optimizer.state_tensors("optimizer"));
        if let Some(proxies) = &self.proxies {
            tensors.push(("proxies".into(), proxies.weights.copy()));
            tensors.extend(proxies.optimizer.state_tensors("proxy_optimizer"));
        }
        TrainState {
            info: TrainStateInfo {
                format_version: crate::engine::train::resume::TRAIN_STATE_FORMAT_VERSION,
                model_id: String::new(),
                settings: self.settings.clone(),
                classes: classes.to_vec(),
                position: SchedulePosition {
                    secs: self.resumed.secs + self.last_step_secs,
                    steps: self.global_step,
                },
                epochs,
                optimizer_steps: self.optimizer.steps(),
                proxy_optimizer_steps: self.proxies.as_ref().map_or(0, |p| p.optimizer.steps()),
                lr_scale: self.lr_scale,
                holdout_share: None,
            },
            tensors,
        }
    }

    /// Puts a saved state back: the run goes on where that one stopped. Errors (naming
    /// what does not fit) when the state is not this network's.
    pub fn resume(&mut self, saved: &SavedTrainState) -> Result<()> {
        let damaged = |what: String| {
            EngineError::Config(format!(
                "the training state does not fit this model ({what}); start a new run with --init-model instead"
            ))
        };
        tch::no_grad(|| -> Result<()> {
            for (name, variable) in self.model.named_tensors() {
                let saved_live = saved
                    .tensor(&format!("live.{name}"))
                    .ok_or_else(|| damaged(format!("'{name}' is missing")))?;
                if saved_live.size() != variable.size() {
                    return Err(damaged(format!("'{name}' has another shape")));
                }
                variable
                    .shallow_clone()
                    .f_copy_(&saved_live.to_device(variable.device()))?;
            }
            if let Some(average) = &mut self.average {
                for ((name, _), stored) in
                    self.model.named_tensors().iter().zip(&mut average.averages)
                {
                    let saved_average = saved
                        .tensor(&format!("average.{name}"))
                        .ok_or_else(|| damaged(format!("the average of '{name}' is missing")))?;
                    stored.f_copy_(&saved_average.to_device(stored.device()))?;
                }
                average.shown = false;
            }
            if let Some(proxies) = &self.proxies {
                let saved_proxies = saved
                    .tensor("proxies")
                    .filter(|t| t.size() == proxies.weights.size())
                    .ok_or_else(|| {
                        damaged("the class proxies are missing or of another size".into())
                    })?;
                proxies
                    .weights
                    .shallow_clone()
                    .f_copy_(&saved_proxies.to_device(proxies.weights.device()))?;
            }
            Ok(())
        })?;
        let info = &saved.info;
        self.optimizer
            .load_state("optimizer", info.optimizer_steps, &|n| saved.tensor(n))
            .map_err(damaged)?;
        if let Some(proxies) = &mut self.proxies {
            proxies
                .optimizer
                .load_state("proxy_optimizer", info.proxy_optimizer_steps, &|n| {
                    saved.tensor(n)
                })
                .map_err(damaged)?;
        }
        self.global_step = info.position.steps;
        self.resumed = info.position;
        self.lr_scale = info.lr_scale;
        // New shuffles, not a replay of the first run's.
        self.rng = fastrand::Rng::with_seed(self.settings.seed ^ (info.position.steps as u64));
        Ok(())
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
            average: self
                .average
                .as_ref()
                .map(|a| a.averages.iter().map(Tensor::copy).collect()),
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
            if let (Some(average), Some(saved)) = (&mut self.average, &checkpoint.average) {
                for (stored, saved) in average.averages.iter_mut().zip(saved) {
                    stored.f_copy_(saved)?;
                }
            }
            Ok(())
        })
    }
}
