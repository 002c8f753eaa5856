//! What follows a training run, for the window and the command line alike: the model and
//! its training state written as one step, and a run that went on from an earlier model
//! judged against it. The new model replaces the earlier one only when it retrieves the
//! held-out photos (the same ones: the split is fixed by the library) better.

use std::path::{Path, PathBuf};

use super::TrainOutcome;
use super::resume::save_model_and_state;
use crate::engine::Result;
use crate::engine::model::{ModelInfo, read_model_description};
use crate::engine::run::TrainingSummary;

/// How well a model retrieves the photos held out of its training (or the validation
/// folder): mAP@R decides, recall@1 is what a person reads first.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeldOutScore {
    pub map_at_r: f64,
    pub recall_at_1: f64,
}

impl HeldOutScore {
    /// The score a training summary records for the model it describes.
    pub fn of(summary: &TrainingSummary) -> Option<Self> {
        let map_at_r = summary
            .best_validation_map_at_r
            .or_else(|| summary.validation_map_at_r.last().copied())?;
        Some(Self {
            map_at_r,
            recall_at_1: summary.validation_recall_at_1?,
        })
    }

    /// Better than `before` on the held-out photos: a higher mAP@R by more than the last
    /// bits a figure can lose on its way through a model file's JSON. An equal score (the
    /// held-out mAP@R is a ratio of small counts, so ties happen) is no improvement.
    pub fn improves_on(&self, before: &Self) -> bool {
        self.map_at_r > before.map_at_r + 1e-9
    }
}

/// A run that went on from an earlier model: that model, and the held-out scores before
/// and after.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptTraining {
    pub from: PathBuf,
    pub before: Option<HeldOutScore>,
    pub after: Option<HeldOutScore>,
}

impl KeptTraining {
    /// Better on the held-out photos than the model it went on from. Without both
    /// scores nothing says it is, so it is not.
    pub fn improved(&self) -> bool {
        matches!((self.before, self.after), (Some(b), Some(a)) if a.improves_on(&b))
    }

    /// Measured no better: both scores are there and the new one does not improve.
    pub fn measured_no_better(&self) -> bool {
        self.before.is_some() && self.after.is_some() && !self.improved()
    }
}

/// A run saved (or, going on in place and measured no better, not).
#[derive(Debug, Clone)]
pub struct SavedRun {
    /// The written model's description; `None` when the run went on from the model at
    /// its own path and was measured no better: that model and its state are unchanged.
    pub info: Option<ModelInfo>,
    /// The run's summary, with a warning when its training state could not be written.
    pub summary: TrainingSummary,
    /// The judgement of a run that went on from an earlier model.
    pub kept_training: Option<KeptTraining>,
}

impl SavedRun {
    /// Whether the new model should take the place of the one in use: a finished run,
    /// and, when it went on from an earlier model, measured better than it.
    pub fn is_an_improvement(&self) -> bool {
        !self.summary.cancelled
            && self.info.is_some()
            && self
                .kept_training
                .as_ref()
                .is_none_or(KeptTraining::improved)
    }
}

/// Writes a finished run's model and training state to `model_path` (the state beside
/// it, so a later run can go on from this one; without it the model still works and the
/// summary says why it cannot be resumed). A run that went on from `resumed_from` is
/// judged against it; when that is the same file and the run was measured no better,
/// nothing is written and the earlier model stays.
pub fn save_run(
    outcome: &TrainOutcome,
    model_path: &Path,
    resumed_from: Option<&Path>,
) -> Result<SavedRun> {
    // Read before anything is written: the earlier model may be the file replaced.
    let kept_training = resumed_from.map(|from| KeptTraining {
        from: from.to_path_buf(),
        before: read_model_description(from)
            .ok()
            .and_then(|info| HeldOutScore::of(&info.summary)),
        after: HeldOutScore::of(&outcome.summary),
    });
    let in_place =
        resumed_from.is_some_and(|from| crate::engine::output::same_file(from, model_path));
    let mut summary = outcome.summary.clone();
    if in_place
        && kept_training
            .as_ref()
            .is_some_and(KeptTraining::measured_no_better)
    {
        return Ok(SavedRun {
            info: None,
            summary,
            kept_training,
        });
    }
    let (info, state_warning) =
        save_model_and_state(model_path, &outcome.model, &outcome.summary, &outcome.state)?;
    summary.warnings.extend(state_warning);
    Ok(SavedRun {
        info: Some(info),
        summary,
        kept_training,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::train::{Preset, TrainJob, train};

    fn tiny_run(folder: &Path) -> TrainOutcome {
        let mut settings = Preset::Scratch.settings();
        settings.image_size_px = 32;
        settings.embedding_dim = 8;
        settings.epochs = Some(1);
        settings.batch_size = 4;
        settings.device = crate::engine::device::DeviceChoice::Cpu;
        let photos = folder.join("photos");
        crate::engine::synthetic::write_dataset(&photos, 2, 6, 32, 5).expect("photos");
        let job = TrainJob::new(photos, settings);
        train(&job, &std::sync::atomic::AtomicBool::new(false), &|_| {}).expect("train")
    }

    fn scored(outcome: &mut TrainOutcome, map_at_r: f64) {
        outcome.summary.best_validation_map_at_r = Some(map_at_r);
        outcome.summary.validation_recall_at_1 = Some(map_at_r);
    }

    #[test]
    fn a_run_replaces_the_model_it_went_on_from_only_when_it_is_better() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut outcome = tiny_run(dir.path());
        let model = dir.path().join("model.safetensors");
        scored(&mut outcome, 0.5);
        let first = save_run(&outcome, &model, None).expect("save");
        assert!(first.is_an_improvement() && first.kept_training.is_none());
        let written = std::fs::read(&model).expect("model");

        // Going on in place, measured worse: nothing is written.
        scored(&mut outcome, 0.4);
        let worse = save_run(&outcome, &model, Some(&model)).expect("judged");
        assert!(worse.info.is_none() && !worse.is_an_improvement());
        assert_eq!(std::fs::read(&model).expect("model"), written);

        // Into another file it is written, and still not an improvement.
        let other = dir.path().join("other.safetensors");
        let beside = save_run(&outcome, &other, Some(&model)).expect("save");
        assert!(beside.info.is_some() && other.is_file());
        assert!(!beside.is_an_improvement());

        // Better: it replaces the model.
        scored(&mut outcome, 0.6);
        let better = save_run(&outcome, &model, Some(&model)).expect("save");
        assert!(better.is_an_improvement());
        assert_ne!(std::fs::read(&model).expect("model"), written);

        // Without a score to compare, a run in place is written (nothing says it is
        // worse), and is not called an improvement.
        outcome.summary.best_validation_map_at_r = None;
        outcome.summary.validation_map_at_r.clear();
        let unmeasured = save_run(&outcome, &model, Some(&model)).expect("save");
        assert!(unmeasured.info.is_some() && !unmeasured.is_an_improvement());
    }
}
