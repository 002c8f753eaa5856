//! What the window holds: [`AppState`], the settings that are saved plus what the worker
//! reported (its snapshot of the current model and index, the running job as one
//! [`Activity`], the views of the last scan, training run and search).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use egui_plot::PlotPoint;

use super::marks::MarksView;
use super::recent::RecentFile;
use super::settings::{AppSettings, DataDirs};
use crate::engine::collection::duplicates::{Candidates, Group, OtherCopy, others};
use crate::engine::data::ImageFolder;
use crate::engine::eval::RetrievalReport;
use crate::engine::index::SearchHit;
use crate::engine::projection::{EmbeddingMap, MapMethod};
use crate::engine::train::BeforeAfter;
use crate::worker::{JobId, JobKind, Query, Snapshot};

/// A message for the person at the screen.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub text: String,
    pub is_error: bool,
    /// When it was posted: information dismisses itself after a while, errors stay.
    pub posted: std::time::Instant,
    /// Text a "Copy path" button puts on the clipboard (the photo a launcher could not
    /// open or show), when there is one.
    pub copy: Option<String>,
}

/// What the library scan found, counted the way training counts it.
#[derive(Debug, Clone)]
pub struct LibraryView {
    pub folder: ImageFolder,
    /// Class folders (sorted) with their photo counts.
    pub classes: Vec<(String, usize)>,
    /// Photos directly in the library folder: they belong to no class, so they can be
    /// indexed but training leaves them out.
    pub unclassified: Vec<PathBuf>,
}

impl LibraryView {
    pub fn new(folder: ImageFolder) -> Self {
        let mut classes: std::collections::BTreeMap<String, usize> = Default::default();
        let mut unclassified = Vec::new();
        for image in &folder.images {
            match &image.class {
                Some(class) => *classes.entry(class.clone()).or_default() += 1,
                None => unclassified.push(image.path.clone()),
            }
        }
        Self {
            folder,
            classes: classes.into_iter().collect(),
            unclassified,
        }
    }

    /// Class folders with at least one photo.
    pub fn class_count(&self) -> usize {
        self.classes.len()
    }
}

/// Which details window is open (from the status bar).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Details {
    Model,
    Index,
}

/// The job the worker is running, from its Started event to its end.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    pub job: JobId,
    pub kind: JobKind,
    /// Items (images, bytes) done and the total when known; training keeps its own view.
    pub done: u64,
    pub total: Option<u64>,
}

/// Training progress and curves of the last training job.
#[derive(Debug, Default)]
pub struct TrainingView {
    /// The training job these figures belong to.
    pub job: Option<JobId>,
    pub preparing: Option<(usize, usize)>,
    pub evaluating: Option<(usize, usize)>,
    /// The work between steps that is running now, if any (cleared by the next step).
    pub phase: Option<crate::engine::train::TrainPhase>,
    pub device: String,
    pub epoch: usize,
    /// The most epochs the run may take; `None`: until the time budget is spent.
    pub epochs: Option<usize>,
    pub step: usize,
    pub steps_per_epoch: usize,
    pub global_step: usize,
    pub elapsed_secs: f64,
    pub remaining_secs: f64,
    /// The time budget the run announced, when it has one.
    pub time_budget_secs: Option<f64>,
    /// Loss of every step, x = global step.
    pub step_losses: Vec<PlotPoint>,
    /// Mean loss of every epoch, x = global step at its end.
    pub epoch_losses: Vec<PlotPoint>,
    pub validation_losses: Vec<PlotPoint>,
    /// Validation mAP@R after observed epochs, x = global step at its end.
    pub validation_map: Vec<PlotPoint>,
    pub notes: Vec<String>,
    /// What the finished run amounted to, in words.
    pub outcome: Option<TrainingEnd>,
    pub validation: Option<RetrievalReport>,
    /// The validation photos' maps before and after the run.
    pub before_after: Option<Arc<BeforeAfter>>,
    /// The photos whose labels the finished run doubts, and how many it checked; `None`
    /// when its loss gives no such evidence (the seed preset).
    pub label_check: Option<LabelCheck>,
    /// Show the loss chart on a log scale.
    pub log_scale: bool,
    /// What the models folder keeps (models and training states), as last looked at.
    pub models_folder: Option<crate::engine::train::kept::KeptFiles>,
}

/// The last run's charts and label list as the settings keep them across a restart
/// (points as [x, y]).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SavedRun {
    pub step_losses: Vec<[f64; 2]>,
    pub epoch_losses: Vec<[f64; 2]>,
    pub validation_losses: Vec<[f64; 2]>,
    pub validation_map: Vec<[f64; 2]>,
    pub label_check: Option<LabelCheck>,
}

impl TrainingView {
    /// The charts and the label list, to keep across a restart.
    pub fn saved_run(&self) -> SavedRun {
        let points = |points: &[PlotPoint]| points.iter().map(|p| [p.x, p.y]).collect();
        SavedRun {
            step_losses: points(&self.step_losses),
            epoch_losses: points(&self.epoch_losses),
            validation_losses: points(&self.validation_losses),
            validation_map: points(&self.validation_map),
            label_check: self.label_check.clone(),
        }
    }

    /// Shows a run's charts and label list again (after a restart).
    pub fn show_saved_run(&mut self, saved: &SavedRun) {
        let points =
            |points: &[[f64; 2]]| points.iter().map(|&[x, y]| PlotPoint::new(x, y)).collect();
        self.step_losses = points(&saved.step_losses);
        self.epoch_losses = points(&saved.epoch_losses);
        self.validation_losses = points(&saved.validation_losses);
        self.validation_map = points(&saved.validation_map);
        self.label_check = saved.label_check.clone();
    }
}

/// What a training run said about the labels of the photos it trained on.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LabelCheck {
    /// Most doubtful first.
    pub suspects: Vec<crate::engine::run::LabelSuspect>,
    /// Photos checked: the ones trained on often enough to judge (photos held out for
    /// validation are not).
    pub checked: usize,
    /// The most times any photo was trained on: with `checked` 0, the run was too short.
    pub passes: u32,
}

/// The end of a training run in words: a headline, what it did and how good the model
/// is, what to watch out for, and the model file when it is not the current model.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct TrainingEnd {
    pub headline: String,
    pub lines: Vec<String>,
    pub warnings: Vec<String>,
    /// A model that was kept as a file but not made current (a cancelled run).
    pub unused_model: Option<PathBuf>,
}

/// The query on screen and its results.
pub struct SearchView {
    pub query: Query,
    pub preview: Option<egui::TextureHandle>,
    pub hits: Vec<SearchHit>,
    pub selected: Vec<bool>,
    /// The query's embedding (places it on the map); empty when not known.
    pub vector: Arc<Vec<f32>>,
    /// How many of the person's marks refined these results (0: the plain search).
    pub refined_by: usize,
}

/// What the central panel shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CentralView {
    /// The query and its nearest photos.
    #[default]
    Results,
    /// Near-duplicate groups of the index.
    Duplicates,
    /// The index's photos on a plane.
    Map,
    /// New photos of an inbox, grouped by the library folder suggested for each.
    Sort,
}

/// The Sort tab: an inbox, the folder suggested for each of its photos (which the person
/// may change), and the last sort, for Undo.
#[derive(Debug)]
pub struct SortView {
    pub inbox: Option<PathBuf>,
    /// Photos at least this sure go to their folder; the others wait as unsure.
    pub min_confidence: f64,
    pub mode: crate::engine::sort::FileMode,
    /// Ask the shipped ImageNet network too (the model's second opinion): more photos
    /// filed, and more photos of a kind no folder holds filed wrongly.
    pub second_opinion: bool,
    /// Look for a new kind in the inbox: its photos wait, together.
    pub new_kinds: bool,
    pub plan: Option<Arc<crate::engine::sort::SortPlan>>,
    /// The folder chosen for each suggestion of `plan` (`None`: leave it in the inbox).
    pub chosen: Vec<Option<String>>,
    /// The journal of the last sort: Undo reverses it.
    pub last_journal: Option<PathBuf>,
}

impl SortView {
    /// Moves the "sure from" level: the plan's photos become sure or unsure at once, and
    /// each photo still in the folder the old level gave it follows the new one (a folder
    /// the person chose stays chosen).
    pub fn set_min_confidence(&mut self, level: f64) {
        self.min_confidence = level;
        let Some(plan) = &self.plan else {
            return;
        };
        let moved = plan.at_level(level);
        for ((chosen, before), after) in self
            .chosen
            .iter_mut()
            .zip(&plan.suggestions)
            .zip(&moved.suggestions)
        {
            if chosen.as_deref() == before.folder() {
                *chosen = after.folder().map(String::from);
            }
        }
        self.plan = Some(Arc::new(moved));
    }
}

impl Default for SortView {
    fn default() -> Self {
        Self {
            inbox: None,
            min_confidence: crate::engine::sort::DEFAULT_MIN_CONFIDENCE,
            mode: crate::engine::sort::FileMode::Copy,
            second_opinion: false,
            new_kinds: false,
            plan: None,
            chosen: Vec::new(),
            last_journal: None,
        }
    }
}

impl SortView {
    /// The level each choice of the second opinion and the search for a new kind files at
    /// by default.
    pub fn default_level(&self) -> f64 {
        crate::engine::sort::default_min_confidence(self.second_opinion, self.new_kinds)
    }

    /// The second opinion or the search for a new kind was switched, when the default
    /// level was `before`: a level still at it moves to the default for the choices now
    /// (they file about as precisely); a level the person chose stays.
    pub fn asks_switched(&mut self, before: f64) {
        if (self.min_confidence - before).abs() < 1e-9 {
            self.set_min_confidence(self.default_level());
        }
    }

    /// The photos to file and their folders, as chosen now.
    pub fn choices(&self) -> Vec<(PathBuf, String)> {
        let Some(plan) = &self.plan else {
            return Vec::new();
        };
        plan.suggestions
            .iter()
            .zip(&self.chosen)
            .filter_map(|(s, chosen)| Some((s.photo.clone(), chosen.clone()?)))
            .collect()
    }
}

/// The embedding map of the current index, with what the person selected on it.
pub struct MapView {
    /// The index it was drawn from.
    pub index: PathBuf,
    pub map: Arc<EmbeddingMap>,
    /// Photos inside the last box (positions in the map).
    pub selected: Vec<usize>,
    /// Dragging draws a selection box instead of moving the map.
    pub box_select: bool,
    /// Where the box being dragged started (map coordinates).
    pub box_start: Option<[f32; 2]>,
    /// The plot's transform in the last frame (to find the point under the pointer).
    pub last_transform: Option<egui_plot::PlotTransform>,
    /// Each photo's position in the map, by path (results are marked every frame; a scan
    /// of every path per result would cost milliseconds at 10k photos).
    pub position: std::collections::HashMap<PathBuf, usize>,
}

impl MapView {
    pub fn new(index: PathBuf, map: Arc<EmbeddingMap>) -> Self {
        let position = map
            .paths
            .iter()
            .enumerate()
            .map(|(i, path)| (path.clone(), i))
            .collect();
        Self {
            index,
            map,
            position,
            selected: Vec::new(),
            box_select: false,
            box_start: None,
            last_transform: None,
        }
    }
}

/// Near-duplicate groups of the current index, regrouped as the threshold moves.
pub struct DuplicatesView {
    /// The index they were found in.
    pub index: PathBuf,
    pub candidates: Arc<Candidates>,
    pub threshold: f32,
    pub groups: Vec<Group>,
    /// For each group, which member (a position in its `members`) is kept.
    pub keep: Vec<usize>,
    /// The list shows its first group at the next frame (a new search or a regrouping
    /// changes every row, so an old scroll position means nothing).
    pub scroll_to_top: bool,
}

impl DuplicatesView {
    pub fn new(index: PathBuf, candidates: Arc<Candidates>) -> Self {
        let threshold = candidates.default_threshold;
        let mut view = Self {
            index,
            candidates,
            threshold,
            groups: Vec::new(),
            keep: Vec::new(),
            scroll_to_top: true,
        };
        view.regroup();
        view
    }

    /// Groups again at the current threshold; a kept photo stays kept when its group
    /// survives.
    pub fn regroup(&mut self) {
        self.scroll_to_top = true;
        let kept: std::collections::HashSet<usize> = self
            .groups
            .iter()
            .zip(&self.keep)
            .filter_map(|(group, &k)| group.members.get(k).copied())
            .collect();
        self.groups = self.candidates.groups(self.threshold);
        self.keep = self
            .groups
            .iter()
            .map(|group| {
                group
                    .members
                    .iter()
                    .position(|m| kept.contains(m))
                    .unwrap_or(0)
            })
            .collect();
    }

    /// The photos not kept, for export.
    pub fn others(&self) -> Vec<OtherCopy> {
        others(&self.candidates, &self.groups, &self.keep)
    }
}

/// The jobs the window sent the worker: the running one, the waiting ones, and what
/// follows when they end.
#[derive(Debug, Default)]
pub struct JobsView {
    /// The running job.
    pub activity: Option<Activity>,
    /// Jobs sent and not yet started, oldest first.
    pub queued: Vec<(JobId, JobKind)>,
    /// Jobs the person asked to cancel that have not ended yet: their Cancel buttons say
    /// "Cancelling…" and are disabled, at once, whatever the job is doing.
    pub cancelling: Vec<JobId>,
    /// When this training (or model-opening) job succeeds, index the library with it.
    pub index_after: Option<JobId>,
}

/// The library folder: its last scan and the folder the Index section indexes.
#[derive(Debug, Default)]
pub struct LibraryState {
    /// What the last scan found.
    pub scanned: Option<LibraryView>,
    /// Why the last library scan failed (the folder is gone or unreadable).
    pub error: Option<String>,
    /// A folder typed into the index field (defaults to the library).
    pub index_folder: String,
}

/// The query on screen, the result shown large, and queries still on their way.
#[derive(Default)]
pub struct SearchState {
    /// The query on screen and its results.
    pub shown: Option<SearchView>,
    /// The result shown in the large preview (an index into the search hits).
    pub preview: Option<usize>,
    /// When (input time) the Paste button asked for the clipboard; a message follows if
    /// nothing arrives.
    pub awaiting_paste: Option<f64>,
    /// A query asked for while an index was still being opened (`likeness PHOTO` at
    /// start-up): searched as soon as the index is open.
    pub pending_query: Option<Query>,
    /// The person chose Show original: the query on screen is not refined by its marks
    /// until they choose Refine again (or search for another photo).
    pub show_original: bool,
}

/// The Map tab.
#[derive(Default)]
pub struct MapState {
    /// The map of the current index, once drawn (while it forms, as it stands).
    pub shown: Option<MapView>,
    /// While a map forms: the epochs done of all.
    pub forming: Option<(usize, usize)>,
    /// The map shown before this one began forming: back on a cancel or a failure.
    pub replaced: Option<MapView>,
    /// How the next map is drawn.
    pub method: MapMethod,
    /// Show the validation photos before and after training instead of the index.
    pub before_after: bool,
}

impl MapState {
    /// A map that stopped forming (cancelled, failed) gives way to the one it replaced.
    pub fn stop_forming(&mut self) {
        if self.forming.take().is_some() {
            self.shown = self.replaced.take();
        }
    }
}

/// Everything the window shows, grouped by the view it belongs to; changed only by the
/// reducer (worker events), by the marks' own operations ([`MarksView`]) and by the
/// panels' edits of the settings form.
pub struct AppState {
    pub settings: AppSettings,
    pub dirs: DataDirs,
    pub device: String,
    pub notices: Vec<Notice>,
    /// The worker's current model and index, as its last snapshot said.
    pub current: Snapshot,
    pub jobs: JobsView,
    pub library: LibraryState,
    pub training: TrainingView,
    /// The downloaded ImageNet weights, once they are in the cache.
    pub imagenet_weights: Option<PathBuf>,
    /// The ImageNet EfficientNet-Lite0 weights that ship with Likeness, where they are
    /// (looked up once at start; `None`: missing, and the default trains from scratch).
    pub shipped_weights: Option<PathBuf>,
    pub search: SearchState,
    /// Alike / not-alike marks of the current index's library.
    pub marks: MarksView,
    /// What the central panel shows.
    pub view: CentralView,
    pub duplicates: Option<DuplicatesView>,
    pub map: MapState,
    pub sort: SortView,
    /// The details window open from the status bar.
    pub details: Option<Details>,
    /// The Recent menu's files, named and looked at on the disk thread.
    pub recent_files: HashMap<PathBuf, RecentFile>,
}

impl AppState {
    pub fn new(mut settings: AppSettings, dirs: DataDirs) -> Self {
        let imagenet_weights = dirs.weights.cached().map(std::path::Path::to_path_buf);
        // ImageNet weights in the cache are where training starts, until the person
        // chooses otherwise (the form says so).
        if let Some(cached) = &imagenet_weights
            && !settings.train.start_chosen
            && settings.train.weights.is_none()
        {
            settings.train.weights = Some(cached.clone());
        }
        Self {
            library: LibraryState {
                index_folder: settings
                    .library
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                ..LibraryState::default()
            },
            settings,
            dirs,
            device: "detecting…".into(),
            notices: Vec::new(),
            current: Snapshot::default(),
            jobs: JobsView::default(),
            training: TrainingView::default(),
            imagenet_weights,
            shipped_weights: crate::engine::model::pretrained::find_lite0_weights(),
            search: SearchState::default(),
            marks: MarksView::default(),
            view: CentralView::default(),
            duplicates: None,
            map: MapState::default(),
            recent_files: HashMap::new(),
            sort: SortView::default(),
            details: None,
        }
    }

    /// Whether a job that ends with an index open is running or waiting (so a query can
    /// wait for it rather than be refused).
    pub fn index_on_the_way(&self) -> bool {
        let brings_index = |kind: &JobKind| {
            matches!(
                kind,
                JobKind::OpenIndex | JobKind::BuildIndex | JobKind::UpdateIndex
            )
        };
        self.jobs
            .activity
            .as_ref()
            .is_some_and(|a| brings_index(&a.kind))
            || self.jobs.queued.iter().any(|(_, kind)| brings_index(kind))
    }

    /// Says so when the open index is of another folder than the library (`likeness
    /// FOLDER`, or choosing a library with an index open): searches use the index, and
    /// the person should know which photos they search.
    pub fn note_index_of_another_folder(&mut self) {
        let (Some(library), Some(index)) = (&self.settings.library, &self.current.index) else {
            return;
        };
        let library_canonical = std::fs::canonicalize(library).unwrap_or_else(|_| library.clone());
        if library_canonical == index.folder {
            return;
        }
        let text = format!(
            "The open index is of {}, not of the library {}: searches look among its photos. \
             Train, or Build index, to search the library.",
            index.folder.display(),
            library.display()
        );
        if self.notices.last().is_none_or(|n| n.text != text) {
            self.info(text);
        }
    }

    /// Whether the person asked `job` to stop and it has not ended yet.
    pub fn is_cancelling(&self, job: JobId) -> bool {
        self.jobs.cancelling.contains(&job)
    }

    /// No job running or waiting.
    pub fn is_idle(&self) -> bool {
        self.jobs.activity.is_none() && self.jobs.queued.is_empty()
    }

    /// The running job, if it is of `kind`.
    pub fn running(&self, kind: JobKind) -> Option<&Activity> {
        self.jobs.activity.as_ref().filter(|a| a.kind == kind)
    }

    /// Whether the training shown is still running.
    pub fn training_running(&self) -> bool {
        let Some(training) = self.training.job else {
            return false;
        };
        self.jobs
            .activity
            .as_ref()
            .is_some_and(|a| a.job == training)
            || self.jobs.queued.iter().any(|(job, _)| *job == training)
    }

    pub fn error(&mut self, text: impl Into<String>) {
        self.notices.push(Notice {
            text: text.into(),
            is_error: true,
            posted: std::time::Instant::now(),
            copy: None,
        });
    }

    pub fn info(&mut self, text: impl Into<String>) {
        self.notices.push(Notice {
            text: text.into(),
            is_error: false,
            posted: std::time::Instant::now(),
            copy: None,
        });
    }
}
