//! The worker's events applied to [`AppState`]: a pure function of the state and one
//! event, unit-tested without a window or a worker. Work that needs the app (uploading a
//! texture, sending a follow-up job) comes back as [`Effect`]s.

use std::sync::Arc;

use egui_plot::PlotPoint;

use std::path::Path;

mod training;

use super::state::{
    Activity, AppState, CentralView, DuplicatesView, LabelCheck, LibraryView, MapView, SearchView,
    TrainingEnd, TrainingView,
};
use crate::engine::data::NOT_IN_A_CLASS;
use crate::engine::index::SearchHit;
use crate::engine::run::TrainingSummary;
use crate::engine::train::TrainEvent;
use crate::worker::{
    DuplicateExport, Event, JobId, JobKind, KeptTraining, Outcome, Progress, Query,
};
pub use training::*;

/// A finished training run, as [`Outcome::Trained`] brings it.
struct TrainedRun {
    model_path: std::path::PathBuf,
    became_current: bool,
    summary: Box<TrainingSummary>,
    validation: Option<Box<crate::engine::eval::RetrievalReport>>,
    before_after: Option<Arc<crate::engine::train::BeforeAfter>>,
    kept_training: Option<KeptTraining>,
}

/// What the app must do after an event.
#[derive(Debug)]
pub enum Effect {
    /// Upload the query preview as a texture for the results on screen.
    UploadPreview(Arc<image::RgbImage>),
    /// Index this folder with the model that was just trained.
    StartIndexing(std::path::PathBuf),
    /// Search again: the current index changed under the results on screen.
    Search(Query),
    /// Refine the results on screen by their query's marks.
    Refine,
    /// Open the marks of the current index's library (the index changed).
    OpenMarks,
    /// Look at what the models folder keeps again (a run wrote a model and its state).
    LookAtModelsFolder,
}

impl AppState {
    /// Applies one worker event.
    pub fn apply(&mut self, event: Event) -> Vec<Effect> {
        let mut effects = Vec::new();
        match event {
            Event::Device(device) => self.device = device,
            Event::Started { job, kind } => {
                self.jobs.queued.retain(|(queued, _)| *queued != job);
                self.jobs.activity = Some(Activity {
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
                if kind == JobKind::DrawMap {
                    self.map.stop_forming();
                }
                if kind == JobKind::ScanLibrary && self.library.scanned.is_none() {
                    self.library.error = Some(message.clone());
                }
                if self.jobs.index_after == Some(job) {
                    self.jobs.index_after = None;
                }
                if self.training.job == Some(job) {
                    self.training.preparing = None;
                    self.training.evaluating = None;
                    self.training.phase = None;
                }
                let unsearched = self.unsearched_query_note();
                self.error(format!(
                    "{} failed: {message}{unsearched}",
                    capitalise(kind.label())
                ));
            }
            Event::Cancelled { job, kind } => {
                self.end(job);
                if kind == JobKind::DrawMap {
                    self.map.stop_forming();
                }
                let unsearched = self.unsearched_query_note();
                if !unsearched.is_empty() {
                    self.info(unsearched.trim_start().to_string());
                }
                if self.jobs.index_after == Some(job) {
                    self.jobs.index_after = None;
                }
                self.info(match kind {
                    JobKind::DownloadWeights => "Download cancelled; nothing was kept.",
                    JobKind::BuildIndex => "Indexing cancelled; the index you had is still open.",
                    JobKind::UpdateIndex => "Index update cancelled; the index is as it was.",
                    JobKind::DrawMap => "Map cancelled; the map you had is shown again.",
                    JobKind::Train => {
                        "Training cancelled before its first step; the current model and \
                         index are unchanged."
                    }
                    _ => "Cancelled.",
                });
            }
            Event::Current(snapshot) => {
                // What is saved follows what is current, so a restart reopens it.
                if let Some(model) = &snapshot.model
                    && self.settings.model.as_ref() != Some(&model.path)
                {
                    self.settings.model = Some(model.path.clone());
                    self.settings.remember_model(model.path.clone());
                }
                let index_changed = self.current.index.as_ref().map(|i| &i.path)
                    != snapshot.index.as_ref().map(|i| &i.path);
                if let Some(index) = &snapshot.index
                    && index_changed
                {
                    self.settings.index = Some(index.path.clone());
                    self.settings.remember_index(index.path.clone());
                    self.library.index_folder = index.folder.display().to_string();
                }
                self.current = snapshot;
                // Distances of another model mean nothing here: the distance limit
                // starts from this index's own scale.
                if index_changed
                    && let Some(typical) =
                        self.current.index.as_ref().and_then(|i| i.typical_distance)
                    && typical > 0.0
                {
                    self.settings.max_distance = default_distance_limit(typical);
                }
                if index_changed {
                    self.note_index_of_another_folder();
                }
                // Groups found in another index would list the wrong photos.
                if index_changed {
                    self.duplicates = None;
                    self.map.shown = None;
                    effects.push(Effect::OpenMarks);
                }
                // A query that waited for the index (`likeness PHOTO` at start-up).
                if self.current.index.is_some()
                    && let Some(query) = self.search.pending_query.take()
                {
                    effects.push(Effect::Search(query));
                } else if index_changed && let Some(search) = &self.search.shown {
                    // Results of another index are stale: ask the new one the same question.
                    if self.current.index.is_some() {
                        effects.push(Effect::Search(search.query.clone()));
                    } else {
                        self.search.shown = None;
                        self.search.preview = None;
                    }
                }
            }
        }
        effects
    }

    /// When a query waits for an index and no job will bring one any more: forgets it and
    /// returns a sentence saying it was not searched (empty otherwise).
    fn unsearched_query_note(&mut self) -> String {
        if self.current.index.is_some() || self.index_on_the_way() {
            return String::new();
        }
        match self.search.pending_query.take() {
            Some(query) => format!(" {} was not searched.", query.label()),
            None => String::new(),
        }
    }

    /// A job ended: it is neither running nor waiting any more.
    fn end(&mut self, job: JobId) {
        self.jobs.queued.retain(|(queued, _)| *queued != job);
        self.jobs.cancelling.retain(|cancelled| *cancelled != job);
        if self.jobs.activity.as_ref().is_some_and(|a| a.job == job) {
            self.jobs.activity = None;
        }
        if self.training.job == Some(job) {
            self.training.preparing = None;
            self.training.evaluating = None;
            self.training.phase = None;
        }
    }

    fn apply_progress(&mut self, job: JobId, progress: Progress) {
        match progress {
            Progress::Training(event) if self.training.job == Some(job) => {
                apply_training(&mut self.training, event);
            }
            Progress::Training(_) => {}
            Progress::Indexing { done, total } | Progress::Comparing { done, total } => {
                self.set_activity_progress(job, done as u64, Some(total as u64))
            }
            Progress::Downloading { done, total } => self.set_activity_progress(job, done, total),
            Progress::FineTuning {
                done_secs,
                total_secs,
            } => self.set_activity_progress(job, done_secs, Some(total_secs)),
            Progress::MapForming { epoch, epochs, map } => {
                self.set_activity_progress(job, epoch as u64, Some(epochs as u64));
                // Drawn as it forms; the index is the current one (the map's job needs it).
                if let Some(index) = self.current.index.as_ref().map(|i| i.path.clone()) {
                    if self.map.forming.is_none() {
                        self.map.replaced = self.map.shown.take();
                    }
                    self.map.shown = Some(MapView::new(index, map));
                    self.map.forming = Some((epoch, epochs));
                    self.view = CentralView::Map;
                }
            }
        }
    }

    fn set_activity_progress(&mut self, job: JobId, done: u64, total: Option<u64>) {
        if let Some(activity) = self.jobs.activity.as_mut().filter(|a| a.job == job) {
            activity.done = done;
            activity.total = total;
        }
    }

    /// A retrain from marks ended: what it did to each marked pair, in words. When the
    /// worker refused the new model (a pair moved against its mark, or the held-out marks
    /// say it does not carry over), an error that says why and that nothing changed.
    fn retrained(
        &mut self,
        model_path: &std::path::Path,
        summary: &crate::engine::run::FineTuneSummary,
        index: Option<&crate::worker::IndexSummary>,
        effects: &mut Vec<Effect>,
    ) {
        let mut pairs: Vec<String> = summary
            .pair_changes
            .iter()
            .map(|change| format!("- {}", change.describe()))
            .collect();
        if !summary.held_out_changes.is_empty() {
            pairs.push(format!(
                "Kept out of training to check it ({}):",
                plural(summary.held_out_changes.len(), "mark", "marks")
            ));
            pairs.extend(
                summary
                    .held_out_changes
                    .iter()
                    .map(|change| format!("- {}", change.describe())),
            );
        }
        let trained = format!(
            "Retrained with {} for {:.0} s ({} steps)",
            plural(summary.pairs, "mark", "marks"),
            summary.seconds,
            summary.steps,
        );
        match (summary.refusal(), index) {
            (None, Some(index)) => self.info(format!(
                "{trained} into {}; the {} photos were embedded again.\n{}",
                model_path.display(),
                index.images,
                pairs.join("\n")
            )),
            (refusal, _) => {
                // Not a success: say so plainly, first.
                let why = refusal.unwrap_or_else(|| "it could not be checked".into());
                self.error(format!(
                    "The retrained model was not kept: {why}. Your model and index are as \
                     they were. Marks still refine results at once.\n{trained}.\n{}",
                    pairs.join("\n")
                ));
                return;
            }
        }
        self.map.shown = None;
        self.duplicates = None;
        // Show the change: ask the new model the question on screen.
        if let Some(search) = &self.search.shown {
            effects.push(Effect::Search(search.query.clone()));
        }
    }

    /// Suggestions for an inbox: each photo starts in the folder suggested when sure.
    fn sort_planned(&mut self, plan: Arc<crate::engine::sort::SortPlan>) {
        self.sort.chosen = plan
            .suggestions
            .iter()
            .map(|s| s.folder().map(String::from))
            .collect();
        self.sort.plan = Some(plan);
        self.view = CentralView::Sort;
    }

    /// A sort was undone: say what came back and what was left, and why.
    fn sort_undone(
        &mut self,
        report: &crate::engine::sort::UndoReport,
        index: &crate::worker::IndexSummary,
    ) {
        self.duplicates = None;
        self.map.shown = None;
        self.sort.last_journal = None;
        let mut text = format!(
            "Undid the last sort: {} removed, {} moved back to the inbox; the index has {} now.",
            plural(report.removed.len(), "copy", "copies"),
            plural(report.restored.len(), "photo", "photos"),
            plural(index.images, "photo", "photos")
        );
        for left in &report.left {
            text.push_str(&format!("\nLeft as it is: {left}"));
        }
        self.info(text);
    }

    /// Photos were filed: say what happened to each kind, and offer Undo.
    fn sorted(
        &mut self,
        report: &crate::engine::sort::FilingReport,
        index: &crate::worker::IndexSummary,
    ) {
        use crate::engine::sort::FileMode;
        self.duplicates = None;
        self.map.shown = None;
        self.sort.plan = None;
        self.sort.chosen.clear();
        self.sort.last_journal = (!report.filed.is_empty()).then(|| report.journal.clone());
        let verb = match report.filed.first().map(|f| f.mode) {
            Some(FileMode::Move) => "Moved",
            _ => "Copied",
        };
        let mut text = format!(
            "{verb} {} into the library; the index has {} now. Undo last sort puts them back.",
            plural(report.filed.len(), "photo", "photos"),
            plural(index.images, "photo", "photos")
        );
        if report.cancelled {
            text.push_str("\nStopped when you cancelled: the other photos are still in the inbox.");
        }
        for (photo, existing) in &report.already_there {
            text.push_str(&format!(
                "\n{} is already in the library as {}: not filed again.",
                file_name_of(photo),
                existing.display()
            ));
        }
        for (wanted, given) in &report.renamed {
            text.push_str(&format!(
                "\n{} was taken: filed as {}.",
                file_name_of(wanted),
                file_name_of(given)
            ));
        }
        for folder in &report.created_folders {
            text.push_str(&format!(
                "\nThe library had no folder {}: it was made.",
                file_name_of(folder)
            ));
        }
        if report.failed.is_empty() {
            self.info(text);
        } else {
            for failed in &report.failed {
                text.push_str(&format!("\nNot filed: {failed}"));
            }
            self.error(text);
        }
    }

    /// Refined (or original) results of the query on screen replace its results.
    fn refined(&mut self, query: Query, hits: Vec<SearchHit>, refined_by: usize, missing: usize) {
        let Some(search) = self.search.shown.as_mut().filter(|s| s.query == query) else {
            // Another query is on screen now: these results are old news.
            return;
        };
        if self.search.preview.is_some_and(|i| i >= hits.len()) {
            self.search.preview = None;
        }
        search.selected = vec![true; hits.len()];
        search.hits = hits;
        search.refined_by = refined_by;
        if missing > 0 {
            self.info(format!(
                "{} could not be read, so {} not refine the results.",
                plural(missing, "marked photo", "marked photos"),
                if missing == 1 { "it does" } else { "they do" }
            ));
        }
    }

    fn apply_outcome(&mut self, job: JobId, outcome: Outcome, effects: &mut Vec<Effect>) {
        match outcome {
            Outcome::LibraryScanned(folder) => {
                // A scan of a library chosen before the current one is old news.
                if self.settings.library.as_ref() != Some(&folder.root) {
                    return;
                }
                if self.library.index_folder.is_empty() {
                    self.library.index_folder = folder.root.display().to_string();
                }
                self.library.scanned = Some(LibraryView::new(folder));
            }
            Outcome::Trained {
                model_path,
                became_current,
                summary,
                validation,
                before_after,
                kept_training,
            } => self.trained(
                job,
                TrainedRun {
                    model_path,
                    became_current,
                    summary,
                    validation,
                    before_after,
                    kept_training,
                },
                effects,
            ),
            Outcome::ModelOpened(path) => self.model_opened(job, path, effects),
            Outcome::IndexReady(summary) => {
                if !summary.skipped.is_empty() {
                    self.info(format!(
                        "Indexed {} images; {} files were skipped (see the Index section).",
                        summary.images,
                        summary.skipped.len()
                    ));
                }
            }
            Outcome::Duplicates { index, candidates } => {
                // The view says how many groups there are, live as it regroups: a notice
                // with the count would go stale at the first move of the slider.
                self.duplicates = Some(DuplicatesView::new(index, candidates));
                self.view = CentralView::Duplicates;
            }
            Outcome::DuplicatesExported { count, to } => self.info(match to {
                DuplicateExport::CopyTo(folder) => format!(
                    "Copied {} not kept to {} (the originals are untouched).",
                    plural(count, "photo", "photos"),
                    folder.display()
                ),
                DuplicateExport::Csv(path) | DuplicateExport::Json(path) => format!(
                    "Wrote the list of {} not kept to {}.",
                    plural(count, "photo", "photos"),
                    path.display()
                ),
            }),
            Outcome::Map { index, map } => {
                self.map.shown = Some(MapView::new(index, map));
                self.map.forming = None;
                self.map.replaced = None;
                self.view = CentralView::Map;
            }
            Outcome::FineTuned {
                model_path,
                summary,
                index,
            } => self.retrained(&model_path, &summary, index.as_ref(), effects),
            Outcome::SortPlanned(plan) => self.sort_planned(plan),
            Outcome::SortFiled { report, index } => self.sorted(&report, &index),
            Outcome::SortUndone { report, index } => self.sort_undone(&report, &index),
            Outcome::PhotosCopied { count, folder } => self.info(format!(
                "Copied {} to {} (with photos.csv saying where each came from).",
                plural(count, "photo", "photos"),
                folder.display()
            )),
            Outcome::IndexUpdated { summary, changes } => {
                self.index_updated(&summary, &changes, effects);
            }
            Outcome::Results {
                query,
                preview,
                hits,
                vector,
            } => self.results_arrived(query, preview, hits, vector, effects),
            Outcome::Refined {
                query,
                hits,
                refined_by,
                missing,
            } => self.refined(query, hits, refined_by, missing),
            Outcome::Exported { folder, report } => self.exported(&folder, &report),
            Outcome::ModelsFolder { kept, removed } => {
                if let Some((count, bytes)) = removed {
                    self.info(format!(
                        "Removed {} ({}); every model stays.",
                        plural(count, "old training state", "old training states"),
                        megabytes(bytes)
                    ));
                }
                self.training.models_folder = Some(kept);
            }
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

    /// A training run ended with a model: its summary in words, its charts, its label
    /// check, and indexing when it became current.
    fn trained(&mut self, job: JobId, run: TrainedRun, effects: &mut Vec<Effect>) {
        let TrainedRun {
            model_path,
            became_current,
            summary,
            validation,
            before_after,
            kept_training,
        } = run;
        if self.training.job == Some(job) {
            let mut end = describe_training(&summary, &model_path, became_current);
            if let Some(kept) = &kept_training {
                describe_kept_training(&mut end, kept, became_current);
            }
            self.training.outcome = Some(end);
            self.training.validation = validation.map(|report| *report);
            self.training.before_after = before_after;
            self.training.label_check = (summary.labels_checked > 0 || summary.label_passes > 0)
                .then(|| LabelCheck {
                    suspects: summary.label_suspects.clone(),
                    checked: summary.labels_checked,
                    passes: summary.label_passes,
                });
        }
        if self.jobs.index_after == Some(job) {
            self.jobs.index_after = None;
            if became_current && let Some(library) = self.settings.library.clone() {
                effects.push(Effect::StartIndexing(library));
            }
        }
        // A run wrote a model and its training state: say what the folder keeps now.
        effects.push(Effect::LookAtModelsFolder);
    }

    /// A model was opened (or chosen after a cancelled run): index the library with it
    /// when that was asked for.
    fn model_opened(&mut self, job: JobId, path: std::path::PathBuf, effects: &mut Vec<Effect>) {
        if let Some(end) = &mut self.training.outcome
            && end.unused_model.as_ref() == Some(&path)
        {
            end.unused_model = None;
        }
        if self.jobs.index_after == Some(job) {
            self.jobs.index_after = None;
            if let Some(library) = self.settings.library.clone() {
                effects.push(Effect::StartIndexing(library));
            }
        }
    }

    /// The index took what changed in its folder: say so, and ask the results on screen
    /// again when photos came or went.
    fn index_updated(
        &mut self,
        summary: &crate::worker::IndexSummary,
        changes: &crate::engine::index::IndexChanges,
        effects: &mut Vec<Effect>,
    ) {
        self.duplicates = None;
        self.map.shown = None;
        let changed = changes.added + changes.updated + changes.removed;
        self.info(format!(
            "Index updated: {} added, {} changed, {} removed, {} unchanged ({} in all).",
            changes.added,
            changes.updated,
            changes.removed,
            changes.kept,
            plural(summary.images, "photo", "photos")
        ));
        // The path is the same, so the snapshot will not say the index changed:
        // results that may list removed photos are asked again here.
        if changed > 0
            && let Some(search) = &self.search.shown
        {
            effects.push(Effect::Search(search.query.clone()));
        }
    }

    /// Search results: the grid, the query's preview, and the refinement by its marks.
    fn results_arrived(
        &mut self,
        query: Query,
        preview: Arc<image::RgbImage>,
        hits: Vec<SearchHit>,
        vector: Arc<Vec<f32>>,
        effects: &mut Vec<Effect>,
    ) {
        if self.search.preview.is_some_and(|i| i >= hits.len()) {
            self.search.preview = None;
        }
        let same_query = self.search.shown.as_ref().is_some_and(|s| s.query == query);
        if !same_query {
            self.search.show_original = false;
        }
        // A query the person marked results of comes back refined by its marks.
        let marked = match &query {
            Query::File(path) => !self.marks.all().for_query(path).is_empty(),
            Query::Rgb { .. } => false,
        };
        self.search.shown = Some(SearchView {
            selected: vec![true; hits.len()],
            query,
            preview: None,
            hits,
            vector,
            refined_by: 0,
        });
        effects.push(Effect::UploadPreview(preview));
        if marked && !self.search.show_original {
            effects.push(Effect::Refine);
        }
    }

    /// An export finished: where, and which files the person changed were kept.
    fn exported(&mut self, folder: &std::path::Path, report: &crate::engine::export::ExportReport) {
        let kept = if report.kept.is_empty() {
            String::new()
        } else {
            format!(
                ". Kept {} file(s) you changed since the last export: {}",
                report.kept.len(),
                report
                    .kept
                    .iter()
                    .map(|k| k
                        .path
                        .file_name()
                        .map_or_else(String::new, |n| n.to_string_lossy().into_owned()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        self.info(format!(
            "Exported {} images with their list to {}{kept}",
            report.manifest.results.len(),
            folder.display()
        ))
    }
}

/// The "only closer than" limit a new index starts with: a few times its typical
/// distance from a photo to its nearest other photo, so that it keeps the close results
/// and drops the far ones from the first click.
pub fn default_distance_limit(typical: f32) -> f32 {
    3.0 * typical
}

/// "12 MB", "1.3 GB".
pub fn megabytes(bytes: u64) -> String {
    let mb = bytes as f64 / 1e6;
    if mb >= 1000.0 {
        format!("{:.1} GB", mb / 1000.0)
    } else {
        format!("{mb:.0} MB")
    }
}

pub fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// The last part of a path, for messages.
fn file_name_of(path: &std::path::Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::settings::{AppSettings, DataDirs};
    use crate::engine::model::ModelInfo;
    use crate::engine::run::TrainingSummary;
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
                    classifier: None,
                }),
                modified: None,
                resumable: false,
            }),
            index: Some(IndexSummary {
                path: "i.likeness-index".into(),
                folder: "photos".into(),
                images: 3,
                skipped: Vec::new(),
                model_path: "m.safetensors".into(),
                modified: None,
                out_of_date: 0,
                search: Default::default(),
                typical_distance: None,
            }),
        }
    }

    #[test]
    fn one_job_ending_never_clears_another_jobs_activity() {
        let mut app = state();
        let (first, second) = (JobId(1), JobId(2));
        app.jobs.queued = vec![(first, JobKind::BuildIndex), (second, JobKind::Search)];
        app.apply(Event::Started {
            job: first,
            kind: JobKind::BuildIndex,
        });
        // A late event of another job (the search was cancelled before it began).
        app.apply(Event::Cancelled {
            job: second,
            kind: JobKind::Search,
        });
        assert_eq!(app.jobs.activity.as_ref().map(|a| a.job), Some(first));
        app.apply(Event::Progress {
            job: first,
            progress: Progress::Indexing { done: 2, total: 5 },
        });
        assert_eq!(
            app.jobs.activity.as_ref().map(|a| (a.done, a.total)),
            Some((2, Some(5)))
        );
        // Progress of a job that is not running changes nothing.
        app.apply(Event::Progress {
            job: second,
            progress: Progress::Indexing { done: 4, total: 5 },
        });
        assert_eq!(app.jobs.activity.as_ref().map(|a| a.done), Some(2));
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
        app.jobs.index_after = Some(JobId(7));
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
                became_current: true,
                summary: Box::new(TrainingSummary {
                    best_epoch: Some(4),
                    best_validation_map_at_r: Some(0.5),
                    ..Default::default()
                }),
                validation: None,
                before_after: None,
                kept_training: None,
            }),
        });
        assert!(!app.training_running());
        assert!(
            matches!(effects.as_slice(), [Effect::StartIndexing(folder), Effect::LookAtModelsFolder] if folder.as_path() == std::path::Path::new("photos"))
        );
        assert!(
            app.training
                .outcome
                .as_ref()
                .is_some_and(|o| o.lines.iter().any(|l| l.contains("Kept epoch 4")))
        );
    }

    fn summary(steps: usize, steps_per_epoch: usize) -> TrainingSummary {
        TrainingSummary {
            steps,
            steps_per_epoch,
            epochs: steps.div_ceil(steps_per_epoch.max(1)),
            epoch_losses: vec![1.23456],
            train_secs: 30.0,
            images: 1,
            classes: vec!["daisy".into()],
            ..Default::default()
        }
    }

    #[test]
    fn the_end_of_training_says_how_far_it_got_and_how_good_it_is() {
        let mut short = summary(60, 127);
        short.stopped_by_time_budget = true;
        let end = describe_training(&short, Path::new("m.safetensors"), true);
        assert_eq!(end.headline, "Training stopped at its time budget");
        assert_eq!(
            end.lines[0],
            "Trained 60 of 127 steps of epoch 1 (60 steps in 30 s on 1 photo in 1 class); \
             final loss 1.235."
        );
        assert!(
            end.lines[1].starts_with("No quality figure"),
            "{:?}",
            end.lines
        );
        // 0.5 s a step, 127 steps a pass, ten passes: 635 s, rounded up to the minute.
        assert_eq!(end.warnings.len(), 1);
        assert!(
            end.warnings[0].contains("60 of 127 steps") && end.warnings[0].contains("660 s"),
            "{:?}",
            end.warnings
        );
        assert_eq!(end.unused_model, None);

        let mut longer = summary(2 * 40 + 7, 40);
        longer.validation_recall_at_1 = Some(0.8123);
        longer.best_validation_map_at_r = Some(0.4);
        longer.validation_source = Some("12 photos held out of the library".into());
        longer.classes = vec!["a".into(), "b".into()];
        let end = describe_training(&longer, Path::new("m.safetensors"), true);
        assert!(
            end.lines[0]
                .starts_with("Trained 2 full epochs and 7 of 40 steps of epoch 3 (87 steps"),
            "{:?}",
            end.lines
        );
        assert!(end.lines[0].contains("in 2 classes"));
        assert_eq!(
            end.lines[1],
            "Quality: recall@1 0.81 on 12 photos held out of the library (the share of those \
             photos whose nearest library photo is of their class), mAP@R 0.400."
        );
        assert!(end.warnings.is_empty());
        let whole = describe_training(&summary(80, 40), Path::new("m.safetensors"), true);
        assert!(whole.lines[0].starts_with("Trained 2 full epochs of 40 steps each"));
    }

    #[test]
    fn a_cancelled_run_keeps_the_current_model_and_index_and_offers_its_model() {
        let mut app = state();
        app.settings.library = Some("photos".into());
        app.apply(Event::Current(snapshot_with_model_and_index()));
        app.training = TrainingView {
            job: Some(JobId(9)),
            ..Default::default()
        };
        app.jobs.index_after = Some(JobId(9));
        let mut cancelled = summary(5, 40);
        cancelled.cancelled = true;
        let effects = app.apply(Event::Finished {
            job: JobId(9),
            outcome: Box::new(Outcome::Trained {
                model_path: "half.safetensors".into(),
                became_current: false,
                summary: Box::new(cancelled),
                validation: None,
                before_after: None,
                kept_training: None,
            }),
        });
        assert!(
            matches!(effects.as_slice(), [Effect::LookAtModelsFolder]),
            "no indexing with an unused model (only a look at the models folder it grew)"
        );
        let end = app.training.outcome.clone().expect("outcome");
        assert_eq!(end.headline, "Training cancelled");
        assert_eq!(end.unused_model, Some("half.safetensors".into()));
        assert!(
            end.lines
                .iter()
                .any(|l| l.contains("current model and index are unchanged"))
        );
        // Choosing to use it: once it opens, the library is indexed with it.
        app.jobs.index_after = Some(JobId(10));
        let effects = app.apply(Event::Finished {
            job: JobId(10),
            outcome: Box::new(Outcome::ModelOpened("half.safetensors".into())),
        });
        assert!(matches!(effects.as_slice(), [Effect::StartIndexing(_)]));
        assert_eq!(app.training.outcome.and_then(|e| e.unused_model), None);
    }

    #[test]
    fn a_new_index_searches_again_with_the_query_on_screen() {
        let mut app = state();
        app.apply(Event::Current(snapshot_with_model_and_index()));
        app.search.shown = Some(SearchView {
            query: Query::File("/photos/rose.jpg".into()),
            preview: None,
            hits: Vec::new(),
            selected: Vec::new(),
            vector: Default::default(),
            refined_by: 0,
        });
        // The same snapshot again (after a search): nothing to redo.
        assert!(
            app.apply(Event::Current(snapshot_with_model_and_index()))
                .is_empty()
        );
        let mut other = snapshot_with_model_and_index();
        if let Some(index) = other.index.as_mut() {
            index.path = "other.likeness-index".into();
            index.folder = "/elsewhere".into();
        }
        let effects = app.apply(Event::Current(other));
        assert!(
            matches!(effects.as_slice(), [Effect::OpenMarks, Effect::Search(Query::File(p))] if p == Path::new("/photos/rose.jpg")),
            "another index opens its library's marks, then asks the query on screen again"
        );
        assert_eq!(app.library.index_folder, "/elsewhere");
        assert_eq!(
            app.settings.recent_indexes.first(),
            Some(&"other.likeness-index".into())
        );
        // No index any more: the stale results go, and so do the marks.
        let effects = app.apply(Event::Current(Snapshot::default()));
        assert!(matches!(effects.as_slice(), [Effect::OpenMarks]));
        assert!(app.search.shown.is_none());
    }

    /// Issue #23 item 5: a retrain that moved an alike photo from #2 to #10 was reported
    /// as "Alike pairs: 0.05 to 0.05", as a success.
    #[test]
    fn a_retrain_that_moves_a_pair_against_its_mark_is_refused_and_says_so() {
        use crate::engine::run::{FineTuneSummary, PairChange};
        let change = |photo: &str, alike, before, after, ranks: (usize, usize)| PairChange {
            query: "/photos/rose_1.jpg".into(),
            photo: format!("/photos/{photo}").into(),
            alike,
            before,
            after,
            rank_before: Some(ranks.0),
            rank_after: Some(ranks.1),
        };
        // What the worker decides: it keeps the model (and embeds the library again) only
        // when no pair moved against its mark.
        let finished = |pair_changes: Vec<PairChange>| {
            let kept = !pair_changes.iter().any(PairChange::moved_the_wrong_way);
            Event::Finished {
                job: JobId(9),
                outcome: Box::new(Outcome::FineTuned {
                    model_path: "m-marks.safetensors".into(),
                    summary: FineTuneSummary {
                        pairs: pair_changes.len(),
                        pair_changes,
                        ..Default::default()
                    },
                    index: kept.then(|| snapshot_with_model_and_index().index.expect("index")),
                }),
            }
        };
        let mut app = state();
        app.apply(finished(vec![
            change("rose_2.jpg", true, 0.05, 0.09, (2, 10)),
            change("tulip_4.jpg", false, 0.3, 0.6, (3, 8)),
        ]));
        let notice = app.notices.last().expect("a notice");
        assert!(notice.is_error, "reported as a success: {}", notice.text);
        assert!(
            notice.text.contains(
                "The retrained model was not kept: it moved 1 of the 2 marked pairs it trained \
                 on against its mark. Your model and index are as they were."
            ),
            "{}",
            notice.text
        );
        assert!(
            notice
                .text
                .contains("rose_2.jpg, marked alike to rose_1.jpg: farther (0.05 to 0.09 of the typical distance), #2 to #10"),
            "{}",
            notice.text
        );
        assert!(
            notice
                .text
                .contains("tulip_4.jpg, marked not alike to rose_1.jpg: farther")
        );

        let mut app = state();
        app.apply(finished(vec![change("rose_2.jpg", true, 0.4, 0.1, (6, 2))]));
        let notice = app.notices.last().expect("a notice");
        assert!(!notice.is_error, "{}", notice.text);
        assert!(
            notice
                .text
                .contains("closer (0.40 to 0.10 of the typical distance), #6 to #2")
        );
    }

    /// Issue #23: "only closer than" started at 0.500 while real distances were
    /// 0.002–0.07, so it did nothing until the person guessed.
    #[test]
    fn the_distance_limit_starts_from_the_new_indexs_own_scale() {
        let mut app = state();
        assert_eq!(app.settings.max_distance, 0.5);
        let mut snapshot = snapshot_with_model_and_index();
        if let Some(index) = &mut snapshot.index {
            index.typical_distance = Some(0.01);
        }
        app.apply(Event::Current(snapshot));
        assert!((app.settings.max_distance - 0.03).abs() < 1e-6);
    }

    #[test]
    fn keep_training_says_before_and_after_and_keeps_the_model_that_is_better() {
        use crate::worker::{HeldOutScore, KeptTraining};
        let score = |map_at_r, recall_at_1| HeldOutScore {
            map_at_r,
            recall_at_1,
        };
        let kept = |before, after| KeptTraining {
            from: "first.safetensors".into(),
            before,
            after,
        };
        assert!(kept(Some(score(0.4, 0.8)), Some(score(0.45, 0.8))).improved());
        assert!(!kept(Some(score(0.4, 0.8)), Some(score(0.4, 0.9))).improved());
        assert!(
            !kept(None, Some(score(0.5, 0.9))).improved(),
            "nothing to compare"
        );

        let mut app = state();
        app.training.job = Some(JobId(3));
        let worse = kept(Some(score(0.412, 0.8)), Some(score(0.405, 0.78)));
        app.apply(Event::Finished {
            job: JobId(3),
            outcome: Box::new(Outcome::Trained {
                model_path: "second.safetensors".into(),
                became_current: false,
                summary: Box::new(summary(5, 40)),
                validation: None,
                before_after: None,
                kept_training: Some(worse),
            }),
        });
        let end = app.training.outcome.clone().expect("outcome");
        assert_eq!(end.headline, "Kept training: no improvement");
        assert!(
            end.lines[0].contains("mAP@R 0.412 to 0.405 (-0.007), recall@1 0.80 to 0.78"),
            "{:?}",
            end.lines
        );
        assert!(
            end.lines
                .iter()
                .any(|l| l.contains("first.safetensors stays the current"))
        );
        assert_eq!(end.unused_model, Some("second.safetensors".into()));
    }
}
