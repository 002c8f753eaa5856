//! What a training run says in the window: its progress events applied to the
//! training view, and its end in words (how far it got, how good its model is).

use super::*;

pub(super) fn apply_training(view: &mut TrainingView, event: TrainEvent) {
    match event {
        TrainEvent::Preparing { done, total } => view.preparing = Some((done, total)),
        TrainEvent::Started {
            device,
            steps_per_epoch,
            epochs,
            budget_secs,
            notes,
            skipped,
            ..
        } => {
            view.preparing = None;
            view.phase = None;
            view.time_budget_secs = budget_secs;
            view.device = device;
            view.steps_per_epoch = steps_per_epoch;
            view.epochs = epochs;
            view.notes = notes;
            // Counted as the library counts them: photos in no class apart from files
            // that could not be used.
            let unclassified = skipped
                .iter()
                .filter(|file| file.reason == NOT_IN_A_CLASS)
                .count();
            if unclassified > 0 {
                view.notes.push(format!(
                    "{} in no class folder left out of training (see Library)",
                    plural(unclassified, "photo", "photos")
                ));
            }
            let unusable = skipped.len() - unclassified;
            if unusable > 0 {
                view.notes.push(format!(
                    "{} (see Library)",
                    plural(unusable, "file skipped", "files skipped")
                ));
            }
        }
        TrainEvent::Step {
            epoch,
            step,
            global_step,
            loss,
            elapsed_secs,
            remaining_secs,
            ..
        } => {
            view.phase = None;
            view.epoch = epoch;
            view.step = step;
            view.global_step = global_step;
            view.elapsed_secs = elapsed_secs;
            view.remaining_secs = remaining_secs;
            view.step_losses
                .push(PlotPoint::new(global_step as f64, loss));
        }
        TrainEvent::EpochEnd {
            mean_loss,
            validation_loss,
            validation_map_at_r,
            ..
        } => {
            let x = view.global_step as f64;
            view.epoch_losses.push(PlotPoint::new(x, mean_loss));
            if let Some(v) = validation_loss {
                view.validation_losses.push(PlotPoint::new(x, v));
            }
            if let Some(map) = validation_map_at_r {
                view.validation_map.push(PlotPoint::new(x, map));
            }
        }
        TrainEvent::Warning { message } => view.notes.push(format!("Warning: {message}")),
        TrainEvent::Evaluating { done, total } => {
            view.phase = None;
            view.evaluating = Some((done, total));
        }
        TrainEvent::Phase(phase) => {
            // Loading is over once the starting model is measured.
            view.preparing = None;
            view.phase = Some(phase);
        }
    }
}

/// "1 class", "5 classes".
pub fn plural(count: usize, one: &str, many: &str) -> String {
    if count == 1 {
        format!("1 {one}")
    } else {
        format!("{count} {many}")
    }
}

/// What a finished training run did and how good its model is, in words.
pub fn describe_training(
    summary: &TrainingSummary,
    model_path: &Path,
    became_current: bool,
) -> TrainingEnd {
    let headline = if summary.cancelled {
        "Training cancelled"
    } else if summary.stopped_by_time_budget {
        "Training stopped at its time budget"
    } else {
        "Training finished"
    };
    let mut lines = Vec::new();
    let mut warnings = Vec::new();
    let per_epoch = summary.steps_per_epoch;
    let steps = summary.steps;
    let done = match steps.checked_div(per_epoch) {
        None => plural(steps, "step", "steps"),
        Some(full) => match (full, steps % per_epoch) {
            (0, rest) => format!("{rest} of {per_epoch} steps of epoch 1"),
            (full, 0) => format!(
                "{} of {} each",
                plural(full, "full epoch", "full epochs"),
                plural(per_epoch, "step", "steps")
            ),
            (full, rest) => format!(
                "{} and {rest} of {per_epoch} steps of epoch {}",
                plural(full, "full epoch", "full epochs"),
                full + 1
            ),
        },
    };
    let final_loss = summary
        .epoch_losses
        .last()
        .map(|loss| format!("; final loss {loss:.3}"))
        .unwrap_or_default();
    lines.push(format!(
        "Trained {done} ({} in {:.0} s on {} in {}){final_loss}.",
        plural(steps, "step", "steps"),
        summary.train_secs,
        plural(summary.images, "photo", "photos"),
        plural(summary.classes.len(), "class", "classes"),
    ));
    match (summary.validation_recall_at_1, &summary.validation_source) {
        (Some(recall), Some(source)) => {
            let map = summary
                .best_validation_map_at_r
                .map(|map| format!(", mAP@R {map:.3}"))
                .unwrap_or_default();
            // The explanation sits right after the figure it explains.
            lines.push(format!(
                "Quality: recall@1 {recall:.2} on {source} (the share of those photos whose \
                 nearest library photo is of their class){map}."
            ));
        }
        _ => lines.push(
            "No quality figure: choose a validation folder, or give each class at least 8 \
             photos so a few can be held out."
                .into(),
        ),
    }
    if let (Some(epoch), Some(map)) = (summary.best_epoch, summary.best_validation_map_at_r) {
        lines.push(format!(
            "Kept epoch {epoch}, the best on the validation photos (mAP@R {map:.3})."
        ));
    } else if let Some(map) = summary.validation_map_at_r.last() {
        lines.push(format!(
            "Kept the last epoch (mAP@R {map:.3} on the validation photos): no earlier one \
             was clearly better."
        ));
    }
    if per_epoch > 0 && steps < per_epoch && (summary.cancelled || summary.stopped_by_time_budget) {
        // Seconds per step so far, for about ten passes over the photos.
        let suggested = (summary.train_secs / steps.max(1) as f64 * per_epoch as f64 * 10.0 / 60.0)
            .ceil()
            .max(1.0)
            * 60.0;
        warnings.push(format!(
            "Training ended before the model saw each photo once ({steps} of {per_epoch} \
             steps of the first epoch). For about ten passes over your photos, give it a \
             time budget of at least {suggested:.0} s."
        ));
    }
    let unused_model = if became_current {
        lines.push(format!(
            "Model saved as {}; it is now the current model.",
            model_path.display()
        ));
        None
    } else {
        lines.push(format!(
            "The model trained so far is saved as {}. Your current model and index are \
             unchanged; use this model to make it current and index the library with it.",
            model_path.display()
        ));
        Some(model_path.to_path_buf())
    };
    TrainingEnd {
        headline: headline.into(),
        lines,
        warnings,
        unused_model,
    }
}

/// What Keep training bought: the held-out scores before and after, and whether the new
/// model replaced the one it went on from.
pub(super) fn describe_kept_training(
    end: &mut TrainingEnd,
    kept: &KeptTraining,
    became_current: bool,
) {
    let from = kept
        .from
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    end.headline = if became_current {
        "Kept training: the model improved".into()
    } else {
        "Kept training: no improvement".into()
    };
    let change = match (kept.before, kept.after) {
        (Some(before), Some(after)) => format!(
            "On the held-out photos: mAP@R {:.3} to {:.3} ({:+.3}), recall@1 {:.2} to {:.2}.",
            before.map_at_r,
            after.map_at_r,
            after.map_at_r - before.map_at_r,
            before.recall_at_1,
            after.recall_at_1
        ),
        _ => "No held-out score to compare (too few photos per class to hold some out), so the new model was not made current."
            .into(),
    };
    end.lines.insert(0, change);
    if became_current {
        end.lines.push(format!(
            "It replaces {from} and the library is indexed with it."
        ));
    } else if kept.before.is_some() && kept.after.is_some() {
        end.lines.push(format!(
            "{from} stays the current model and the index is unchanged."
        ));
    }
}
