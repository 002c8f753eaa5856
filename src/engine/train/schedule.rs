//! The learning rate at each step: constant, or a linear warm-up then cosine decay over
//! the run, where the run is measured in steps or, under a time budget, in seconds.

use super::resume::SchedulePosition;
use super::{Schedule, TrainSettings};

/// Where the run is, from 0 (start) to 1 (end): the larger of the share of steps done
/// and the share of the time budget spent.
///
/// A resumed run (`resumed`: what the runs before it trained) counts as one run of those
/// seconds and steps plus its own: its first steps continue the schedule where it was.
/// `step` counts every step, the resumed ones included; `total_steps` and the budget
/// are this run's own.
pub fn progress(
    settings: &TrainSettings,
    step: usize,
    total_steps: Option<usize>,
    elapsed_secs: f64,
    resumed: SchedulePosition,
) -> f64 {
    let by_steps = total_steps.map_or(0.0, |total| {
        step as f64 / (resumed.steps + total).max(1) as f64
    });
    let by_time = settings.max_seconds.map_or(0.0, |budget| {
        (resumed.secs + elapsed_secs) / (resumed.secs + budget)
    });
    by_steps.max(by_time).clamp(0.0, 1.0)
}

/// The learning rate at `progress` (0..=1) of the run.
pub fn learning_rate(settings: &TrainSettings, progress: f64) -> f64 {
    let warmup = settings.warmup_fraction;
    // The first steps still move a little: a zero learning rate would waste them.
    let warm = if warmup > 0.0 {
        (progress / warmup).clamp(0.02, 1.0)
    } else {
        1.0
    };
    match settings.schedule {
        Schedule::Constant => settings.lr * warm,
        Schedule::Cosine => {
            let decay_progress = ((progress - warmup) / (1.0 - warmup)).clamp(0.0, 1.0);
            // A floor of 1% keeps the last steps from being wasted entirely.
            let cosine = 0.01 + 0.99 * 0.5 * (1.0 + (std::f64::consts::PI * decay_progress).cos());
            settings.lr * warm * cosine
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::train::Preset;

    #[test]
    fn warm_up_then_cosine_decay() {
        let mut settings = Preset::Scratch.settings();
        settings.lr = 1.0;
        settings.warmup_fraction = 0.1;
        assert!(learning_rate(&settings, 0.0) < 0.05);
        assert!((learning_rate(&settings, 0.05) - 0.5).abs() < 1e-9);
        assert!((learning_rate(&settings, 0.1) - 1.0).abs() < 1e-9);
        assert!(learning_rate(&settings, 0.55) < 0.6 && learning_rate(&settings, 0.55) > 0.4);
        assert!((learning_rate(&settings, 1.0) - 0.01).abs() < 1e-9);
    }

    #[test]
    fn progress_follows_the_time_budget_when_there_is_one() {
        let mut settings = Preset::Scratch.settings();
        settings.max_seconds = Some(100.0);
        assert!(
            (progress(&settings, 10, None, 25.0, SchedulePosition::default()) - 0.25).abs() < 1e-9
        );
        assert!(
            (progress(&settings, 90, Some(100), 25.0, SchedulePosition::default()) - 0.9).abs()
                < 1e-9
        );
        settings.max_seconds = None;
        assert!(
            (progress(&settings, 50, Some(200), 1e6, SchedulePosition::default()) - 0.25).abs()
                < 1e-9
        );
    }

    #[test]
    fn a_resumed_run_continues_the_schedule_instead_of_warming_up_again() {
        let mut settings = Preset::Scratch.settings();
        settings.max_seconds = Some(600.0);
        let resumed = SchedulePosition {
            secs: 600.0,
            steps: 700,
        };
        // Its first step is half-way through a 1200-s run, not at the start of a new one.
        let at = progress(&settings, 700, None, 0.0, resumed);
        assert!((at - 0.5).abs() < 1e-9, "{at}");
        let lr = learning_rate(&settings, at);
        assert!(lr > 0.4 * settings.lr, "no new warm-up: {lr}");
        let one_run = learning_rate(&settings, 600.0 / 1200.0);
        assert!((lr - one_run).abs() < 1e-12);
        // By steps: 700 done before, 300 planned now.
        settings.max_seconds = None;
        assert!((progress(&settings, 850, Some(300), 0.0, resumed) - 0.85).abs() < 1e-9);
    }
}
