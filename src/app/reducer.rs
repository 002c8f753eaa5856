//! The worker's events applied to [`AppState`]: a pure function of the state and one
//! event, unit-tested without a window or a worker. Work that needs the app (uploading a
//! texture, sending a follow-up job) comes back as [`Effect`]s.

use std::sync::Arc;

use egui_plot::PlotPoint;

use super::state::{Activity, AppState, LibraryView, SearchView, TrainingView};
use crate::engine::train::TrainEvent;
use crate::worker::{Event, JobId, JobKind, Outcome, Progress};

/// What the app must do after an event.
#[derive(Debug)]
pub enum Effect {
    /// Upload the query preview as a texture for the results on screen.
    UploadPreview(Arc<image::RgbImage>),
    /// Index this folder with the model that was just trained.
    StartIndexing(std::path::PathBuf),
}

impl AppState {
    /// Applies one worker event.
    pub fn apply(&mut self, event: Event) -> Vec<Effect> {
        let mut effects = Vec::new();
        match event {
            Event::Device(device) => self.device = device,
            Event::Started { job, kind } => {
                self.queued.retain(|(queued, _)| *queued != job);
                self.activity = Some(Activity {
                    job,
                    kind,
                    done: 0,
                    total: None,
                });
            }
            Event::Progress { job, progress } => self.apply_progress(job, progress),
            Event::Finished { job, outcome } => {
                self.end(job);
                self.apply_outcome(job, *outcome, &mut effects);
            }
            Event::Failed { job, kind, message } => {
                self.end(job);
                if self.index_after == Some(job) {
                    self.index_after = None;
                }
                if self.training.job == Some(job) {
                    self.training.preparing = None;
                    self.training.evaluating = None;
                }
                self.error(format!("{} failed: {message}", capitalise(kind.label())));
            }
            Event::Cancelled { job, kind } => {
                self.end(job);
                if self.index_after == Some(job) {
                    self.index_after = None;
                }
                self.info(match kind {
                    JobKind::DownloadWeights => "Download cancelled; nothing was kept.",
                    JobKind::BuildIndex => "Indexing cancelled; the index you had is still open.",
                    JobKind::Train => "Training cancelled before it produced a model.",
                    _ => "Cancelled.",
                });
            }
            Event::Current(snapshot) => {
                // What is saved follows what is current, so a restart reopens it.
                if let Some(model) = &snapshot.model {
                    self.settings.model = Some(model.path.clone());
                }
                if let Some(index) = &snapshot.index {
                    self.settings.index = Some(index.path.clone());
                }
                self.current = snapshot;
            }
        }
        effects
    }

    /// A job ended: it is neither running nor waiting any more.
    fn end(&mut self, job: JobId) {
        self.queued.retain(|(queued, _)| *queued != job);
        if self.activity.as_ref().is_some_and(|a| a.job == job) {
            self.activity = None;
        }
        if self.training.job == Some(job) {
            self.training.preparing = None;
            self.training.evaluating = None;
        }
    }

    fn apply_progress(&mut self, job: JobId, progress: Progress) {
        match progress {
            Progress::Training(event) if self.training.job == Some(job) => {
                apply_training(&mut self.training, event);
            }
            Progress::Training(_) => {}
            Progress::Indexing { done, total } => {
                self.set_activity_progress(job, done as u64, Some(total as u64))
            }
            Progress::Downloading { done, total } => self.set_activity_progress(job, done, total),
        }
    }

    fn set_activity_progress(&mut self, job: JobId, done: u64, total: Option<u64>) {
        if let Some(activity) = self.activity.as_mut().filter(|a| a.job == job) {
            activity.done = done;
            activity.total = total;
        }
    }

    fn apply_outcome(&mut self, job: JobId, outcome: Outcome, effects: &mut Vec<Effect>) {
        match outcome {
            Outcome::LibraryScanned(folder) => {
                // A scan of a library chosen before the current one is old news.
                if self.settings.library.as_ref() != Some(&folder.root) {
                    return;
                }
                let classes = folder.class_count();
                if self.index_folder.is_empty() {
                    self.index_folder = folder.root.display().to_string();
                }
                self.library = Some(LibraryView { folder, classes });
            }
            Outcome::Trained {
                model_path,
                summary,
                validation,
            } => {
                let how = if summary.cancelled {
                    "cancelled; the model trained so far was kept"
                } else if summary.stopped_by_time_budget {
                    "stopped at the time budget"
                } else {
                    "finished"
                };
                let kept = match (summary.best_epoch, summary.best_validation_map_at_r) {
                    (Some(epoch), Some(map)) => format!(
                        " Kept epoch {epoch}, the best on the validation folder (mAP@R {map:.3})."
                    ),
                    _ => String::new(),
                };
                if self.training.job == Some(job) {
                    self.training.outcome = Some(format!(
                        "Training {how}: {} epochs, {} steps in {:.0} s.{kept} Model: {}",
                        summary.epochs,
                        summary.steps,
                        summary.train_secs,
                        model_path.display()
                    ));
                    self.training.validation = validation.map(|report| *report);
                    self.training
                        .notes
                        .extend(summary.warnings.iter().map(|w| format!("Warning: {w}")));
                }
                if self.index_after == Some(job) {
                    self.index_after = None;
                    if let Some(library) = self.settings.library.clone() {
                        effects.push(Effect::StartIndexing(library));
                    }
                }
            }
            Outcome::ModelOpened(_) => {}
            Outcome::IndexReady(summary) => {
                if !summary.skipped.is_empty() {
                    self.info(format!(
                        "Indexed {} images; {} files were skipped (see the Index section).",
                        summary.images,
                        summary.skipped.len()
                    ));
                }
            }
            Outcome::Results {
                query,
                preview,
                hits,
            } => {
                self.search = Some(SearchView {
                    selected: vec![true; hits.len()],
                    query,
                    preview: None,
                    hits,
                });
                effects.push(Effect::UploadPreview(preview));
            }
            Outcome::Exported { folder, manifest } => self.info(format!(
                "Exported {} images with results.csv and results.json to {}",
                manifest.results.len(),
                folder.display()
            )),
            Outcome::WeightsReady { path, tensors } => {
                self.info(format!(
                    "ImageNet ResNet18 weights downloaded and checked ({tensors} tensors); \
                     training starts from them. Saved in {}",
                    path.display()
                ));
                self.settings.train.weights = Some(path.clone());
                self.imagenet_weights = Some(path);
            }
        }
    }
}

fn apply_training(view: &mut TrainingView, event: TrainEvent) {
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
            view.time_budget_secs = budget_secs;
            view.device = device;
            view.steps_per_epoch = steps_per_epoch;
            view.epochs = epochs;
            view.notes = notes;
            if !skipped.is_empty() {
                view.notes
                    .push(format!("{} files skipped (see Library)", skipped.len()));
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
        TrainEvent::Evaluating { done, total } => view.evaluating = Some((done, total)),
    }
}

pub fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::settings::{AppSettings, DataDirs};
    use crate::engine::model::{ModelInfo, TrainingSummary};
    use crate::worker::{CurrentModel, IndexSummary, Snapshot};

    fn state() -> AppState {
        AppState::new(
            AppSettings::default(),
            DataDirs::under(std::env::temp_dir().join("likeness-reducer-test")),
        )
    }

    fn snapshot_with_model_and_index() -> Snapshot {
        Snapshot {
            model: Some(CurrentModel {
                path: "m.safetensors".into(),
                info: Box::new(ModelInfo {
                    format_version: 1,
                    model_id: "id".into(),
                    config: crate::engine::train::Preset::Default
                        .settings()
                        .model_config(),
                    summary: TrainingSummary::default(),
                }),
            }),
            index: Some(IndexSummary {
                path: "i.likeness-index".into(),
                folder: "photos".into(),
                images: 3,
                skipped: Vec::new(),
                model_path: "m.safetensors".into(),
            }),
        }
    }

    #[test]
    fn one_job_ending_never_clears_another_jobs_activity() {
        let mut app = state();
        let (first, second) = (JobId(1), JobId(2));
        app.queued = vec![(first, JobKind::BuildIndex), (second, JobKind::Search)];
        app.apply(Event::Started {
            job: first,
            kind: JobKind::BuildIndex,
        });
        // A late event of another job (the search was cancelled before it began).
        app.apply(Event::Cancelled {
            job: second,
            kind: JobKind::Search,
        });
        assert_eq!(app.activity.as_ref().map(|a| a.job), Some(first));
        app.apply(Event::Progress {
            job: first,
            progress: Progress::Indexing { done: 2, total: 5 },
        });
        assert_eq!(
            app.activity.as_ref().map(|a| (a.done, a.total)),
            Some((2, Some(5)))
        );
        // Progress of a job that is not running changes nothing.
        app.apply(Event::Progress {
            job: second,
            progress: Progress::Indexing { done: 4, total: 5 },
        });
        assert_eq!(app.activity.as_ref().map(|a| a.done), Some(2));
        app.apply(Event::Failed {
            job: first,
            kind: JobKind::BuildIndex,
            message: "x: no such folder".into(),
        });
        assert!(app.is_idle());
        assert!(
            app.notices
                .iter()
                .any(|n| n.is_error && n.text.starts_with("Indexing failed"))
        );
    }

    #[test]
    fn the_window_shows_the_workers_snapshot_and_a_failure_keeps_it() {
        let mut app = state();
        app.apply(Event::Current(snapshot_with_model_and_index()));
        assert!(app.current.model.is_some() && app.current.index.is_some());
        assert_eq!(app.settings.index, Some("i.likeness-index".into()));
        app.apply(Event::Started {
            job: JobId(3),
            kind: JobKind::BuildIndex,
        });
        app.apply(Event::Failed {
            job: JobId(3),
            kind: JobKind::BuildIndex,
            message: "missing: no such folder".into(),
        });
        // The worker's snapshot after the failure says the same; nothing was dropped.
        app.apply(Event::Current(snapshot_with_model_and_index()));
        assert!(app.current.model.is_some() && app.current.index.is_some());
    }

    #[test]
    fn training_progress_belongs_to_its_job_and_indexing_follows_its_success() {
        let mut app = state();
        app.settings.library = Some("photos".into());
        app.training = TrainingView {
            job: Some(JobId(7)),
            ..Default::default()
        };
        app.index_after = Some(JobId(7));
        app.apply(Event::Started {
            job: JobId(7),
            kind: JobKind::Train,
        });
        assert!(app.training_running());
        app.apply(Event::Progress {
            job: JobId(7),
            progress: Progress::Training(TrainEvent::Warning {
                message: "collapse undone".into(),
            }),
        });
        app.apply(Event::Progress {
            job: JobId(6),
            progress: Progress::Training(TrainEvent::Warning {
                message: "an older run".into(),
            }),
        });
        assert_eq!(
            app.training.notes,
            vec!["Warning: collapse undone".to_string()]
        );
        let effects = app.apply(Event::Finished {
            job: JobId(7),
            outcome: Box::new(Outcome::Trained {
                model_path: "m.safetensors".into(),
                summary: Box::new(TrainingSummary {
                    best_epoch: Some(4),
                    best_validation_map_at_r: Some(0.5),
                    ..Default::default()
                }),
                validation: None,
            }),
        });
        assert!(!app.training_running());
        assert!(
            matches!(effects.as_slice(), [Effect::StartIndexing(folder)] if folder.as_path() == std::path::Path::new("photos"))
        );
        assert!(
            app.training
                .outcome
                .as_deref()
                .is_some_and(|o| o.contains("Kept epoch 4"))
        );
    }
}
