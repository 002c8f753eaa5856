//! The Likeness window (eframe/egui): a thin shell over the worker.
//!
//! Each frame: drain the worker's events into the [`AppState`] reducer, draw the panels
//! (a toolbar on top, the library / training / index column on the left, the query and
//! its neighbours in the centre, a status bar at the bottom), then carry out the intents
//! the panels returned: dialogs and jobs start here, never in drawing code.

pub mod desktop;
mod disk;
mod frame_stats;
mod intents;
pub mod marks;
mod marks_file;
pub mod panels;
mod recent;
mod reducer;
mod settings;
mod state;
mod thumbnails;
mod widgets;
mod window;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use frame_stats::FrameStats;
pub use panels::Intent;
pub use reducer::Effect;
pub use settings::{AppSettings, DataDirs, STORAGE_KEY, TrainForm};
pub use state::{
    Activity, AppState, CentralView, Details, DuplicatesView, LabelCheck, LibraryView, MapView,
    Notice, SearchView, TrainingEnd, TrainingView,
};
pub use thumbnails::ThumbnailCache;
pub use window::run_window;

use crate::engine::data::is_image_extension;
use crate::engine::index::SearchHit;
use crate::engine::train::{DEFAULT_HOLDOUT_SHARE, Preset, TrainJob};
use crate::worker::{DuplicateExport, Query, Request, Wake, WorkerHandle};
use desktop::{Action, Desktop};
use disk::{DiskAnswer, DiskThread};
use marks::MarksNotice;
use thumbnails::{DEFAULT_BUDGET_BYTES, color_image};
use widgets::BUSY_REPAINT;

/// Events handled per frame at most, so a burst never makes a frame long.
const EVENTS_PER_FRAME: usize = 512;

/// The Likeness app: its state, the worker and the thumbnail cache.
pub struct LikenessApp {
    worker: WorkerHandle,
    pub state: AppState,
    pub thumbnails: ThumbnailCache,
    /// Opens files and folders with the desktop's applications.
    pub desktop: Desktop,
    pub frame_stats: FrameStats,
    /// Reads and writes the window's own files (marks, the Recent menu's), off the frame.
    disk: DiskThread,
    /// When the Recent menu's files were last looked at.
    recent_looked_at: Option<Instant>,
    /// When this frame's `logic` began: frame times cover `logic` and `ui` together.
    frame_started: Option<Instant>,
}

impl LikenessApp {
    /// The app as eframe creates it: settings from storage, files in the user data dir.
    pub fn new(ctx: &egui::Context, storage: Option<&dyn eframe::Storage>) -> Self {
        let settings = storage
            .and_then(|s| eframe::get_value::<AppSettings>(s, STORAGE_KEY))
            .unwrap_or_default();
        Self::with_settings(ctx, settings, DataDirs::user())
    }

    /// The app with given settings and data folders (tests use temporary ones). Reopens
    /// the remembered index (and its model), or model, and rescans the library.
    pub fn with_settings(ctx: &egui::Context, settings: AppSettings, dirs: DataDirs) -> Self {
        let repaint = ctx.clone();
        let worker = WorkerHandle::spawn(move |wake| match wake {
            Wake::Now => repaint.request_repaint(),
            // Progress shows at a few frames a second: under software rendering every
            // frame costs the job itself CPU time.
            Wake::Progress => repaint.request_repaint_after(BUSY_REPAINT),
        });
        let thumbnail_repaint = ctx.clone();
        let thumbnails = ThumbnailCache::new(
            DEFAULT_BUDGET_BYTES,
            Some(dirs.thumbnails.clone()),
            move || thumbnail_repaint.request_repaint_after(Duration::from_millis(30)),
        );
        let disk_repaint = ctx.clone();
        let disk = DiskThread::spawn(move || disk_repaint.request_repaint());
        let mut app = Self {
            worker,
            disk,
            recent_looked_at: None,
            state: AppState::new(settings, dirs),
            thumbnails,
            desktop: Desktop::default(),
            frame_stats: FrameStats::default(),
            frame_started: None,
        };
        if let Some(library) = app.state.settings.library.clone() {
            app.send(Request::ScanLibrary(library));
        }
        app.look_at_recent_files(true);
        // What the person last saw comes back: the last run's summary (and a cancelled
        // run's offer while its model file is there), and the last query's results.
        app.state.training.outcome = app
            .state
            .settings
            .last_run
            .clone()
            .filter(|end| end.unused_model.as_ref().is_none_or(|m| m.is_file()));
        if app.state.training.outcome.is_some()
            && let Some(saved) = app.state.settings.last_run_charts.clone()
        {
            app.state.training.show_saved_run(&saved);
        }
        match (
            app.state.settings.index.clone(),
            app.state.settings.model.clone(),
        ) {
            (Some(index), _) if index.exists() => {
                app.send(Request::OpenIndex(index));
                app.state.search.pending_query = app
                    .state
                    .settings
                    .last_query
                    .clone()
                    .filter(|photo| photo.is_file())
                    .map(Query::File);
            }
            (_, Some(model)) if model.exists() => {
                app.send(Request::OpenModel(model));
            }
            _ => {}
        }
        app
    }

    /// What `likeness PATH` (and the desktop's "Open with Likeness") asks for: a folder
    /// becomes the library, a photo is searched in the index reopened at start.
    pub fn open_path(&mut self, path: PathBuf) {
        let path = std::path::absolute(&path).unwrap_or(path);
        if path.is_dir() {
            self.choose_library(path);
        } else {
            self.search_with(Query::File(path));
        }
    }

    /// Puts what is on screen that a restart should bring back into the settings: the
    /// query (a photo file; a pasted image is not kept) and the last run's summary.
    pub fn remember_session(&mut self) {
        if let Some(search) = &self.state.search.shown {
            self.state.settings.last_query = match &search.query {
                Query::File(path) => Some(path.clone()),
                _ => None,
            };
        }
        self.state.settings.last_run = self.state.training.outcome.clone();
        self.state.settings.last_run_charts = self
            .state
            .training
            .outcome
            .is_some()
            .then(|| self.state.training.saved_run());
    }

    /// Asks the worker what the models folder keeps (shown under the training summary).
    pub fn look_at_models_folder(&mut self) {
        let folder = self.state.dirs.models.clone();
        self.send(Request::DiskUse { folder });
    }

    /// Sends a request; the job waits in `queued` until the worker starts it.
    fn send(&mut self, request: Request) -> Option<crate::worker::JobId> {
        let kind = request.kind();
        match self.worker.send(request) {
            Ok(job) => {
                self.state.jobs.queued.push((job, kind));
                Some(job)
            }
            Err(message) => {
                self.state.error(message);
                None
            }
        }
    }

    /// Applies the worker's events (at most [`EVENTS_PER_FRAME`] per frame).
    pub fn drain_events(&mut self, ctx: &egui::Context) {
        let events: Vec<_> = self
            .worker
            .events
            .try_iter()
            .take(EVENTS_PER_FRAME)
            .collect();
        if events.len() == EVENTS_PER_FRAME {
            ctx.request_repaint();
        }
        for event in events {
            for effect in self.state.apply(event) {
                match effect {
                    Effect::UploadPreview(image) => {
                        let texture = ctx.load_texture(
                            "query",
                            color_image(&image),
                            egui::TextureOptions::LINEAR,
                        );
                        if let Some(search) = &mut self.state.search.shown {
                            search.preview = Some(texture);
                        }
                    }
                    Effect::StartIndexing(folder) => self.start_indexing(folder),
                    Effect::Search(query) => self.search_with(query),
                    Effect::OpenMarks => self.open_marks(),
                    Effect::Refine => self.refine_on_screen(),
                    Effect::LookAtModelsFolder => self.look_at_models_folder(),
                }
            }
        }
        if !self.worker.is_alive() && !self.state.is_idle() {
            self.state.jobs.activity = None;
            self.state.jobs.queued.clear();
            self.state
                .error("The background worker stopped unexpectedly; restart Likeness.");
        }
    }

    /// Makes `folder` the library and scans it.
    pub fn choose_library(&mut self, folder: PathBuf) {
        self.state.settings.remember_folder(folder.clone());
        self.state.settings.library = Some(folder.clone());
        self.state.library.index_folder = folder.display().to_string();
        self.state.library.scanned = None;
        self.state.library.error = None;
        self.send(Request::ScanLibrary(folder));
        self.state.note_index_of_another_folder();
    }

    /// Starts training on the library with the form's settings; the library is indexed
    /// with the new model when it succeeds.
    pub fn start_training(&mut self) {
        self.send_training(None);
    }

    /// Goes on training the current model where its run stopped, for the form's time
    /// budget; the worker makes the result current only when it is better.
    pub fn keep_training(&mut self) {
        let Some(current) = self.state.current.model.as_ref().map(|m| m.path.clone()) else {
            self.state
                .error("There is no current model to keep training.");
            return;
        };
        self.send_training(Some(current));
    }

    fn send_training(&mut self, resume: Option<PathBuf>) {
        let Some(library) = self.state.settings.library.clone() else {
            self.state.error("Choose a library folder first.");
            return;
        };
        let mut job = TrainJob::new(library.clone(), self.state.settings.train.settings());
        job.resume = resume;
        job.validation = self.state.settings.validation.clone();
        job.decoded_cache = Some(crate::engine::data::decoded_cache::DecodedCache::new(
            self.state.dirs.decoded.clone(),
        ));
        // Without a validation folder, a few photos per class are held out so the run
        // can still say how well it retrieves.
        job.holdout_share = Some(DEFAULT_HOLDOUT_SHARE);
        // The default starts from the shipped EfficientNet-Lite0 weights by itself; a
        // ResNet18 weights file is where the ResNet18 presets start.
        if job.resume.is_none() && self.state.settings.train.preset != Preset::Default {
            job.weights = self.state.settings.train.weights.clone();
        }
        let name = library.file_name().map_or_else(
            || "library".to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let model_path = self
            .state
            .dirs
            .models
            .join(format!("{name}-{}.safetensors", timestamp()));
        if let Some(id) = self.send(Request::Train {
            job: Box::new(job),
            model_path,
        }) {
            self.state.training = TrainingView {
                job: Some(id),
                ..Default::default()
            };
            self.state.jobs.index_after = Some(id);
        }
    }

    /// Embeds `folder` with the current model into a new index.
    pub fn start_indexing(&mut self, folder: PathBuf) {
        let name = folder.file_name().map_or_else(
            || "folder".to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let index_path = self
            .state
            .dirs
            .indexes
            .join(format!("{name}-{}.likeness-index", timestamp()));
        let exclude = self.state.settings.exclude_patterns();
        self.send(Request::BuildIndex {
            folder,
            index_path,
            exclude,
        });
    }

    /// Opens a model file; when it opens, the library is indexed with it (the person
    /// chose to use it).
    pub fn use_model(&mut self, model: PathBuf) {
        if let Some(job) = self.send(Request::OpenModel(model)) {
            self.state.jobs.index_after = Some(job);
        }
    }

    /// Makes the ImageNet feature model current (the shipped EfficientNet-Lite0's; the
    /// ResNet18 one, downloaded the first time, only when those are missing) and indexes
    /// the library with it: search without training.
    pub fn use_imagenet_features(&mut self) {
        let name = if self.state.shipped_weights.is_some() {
            crate::engine::model::pretrained::LITE0_FEATURES_MODEL
        } else {
            crate::engine::model::pretrained::IMAGENET_FEATURES_MODEL
        };
        let request = Request::UseImagenetFeatures {
            source: self.state.dirs.weights.clone(),
            model_path: self.state.dirs.models.join(name),
        };
        if let Some(job) = self.send(request) {
            self.state.jobs.index_after = Some(job);
        }
    }

    /// Searches again with the query on screen (after k changed).
    pub fn rerun_search(&mut self) {
        if let Some(query) = self.state.search.shown.as_ref().map(|s| s.query.clone()) {
            self.search_with(query);
        }
    }

    /// Hands `path` to the desktop; a failure becomes a message.
    pub fn launch(&self, ctx: &egui::Context, action: Action, path: &Path) {
        let repaint = ctx.clone();
        self.desktop
            .launch(action, path, move || repaint.request_repaint());
    }

    /// Searches with a query (a file or a pasted image).
    pub fn search_with(&mut self, query: Query) {
        if let Query::File(path) = &query {
            if !path.is_file() {
                self.state
                    .error(format!("File not found: {}", path.display()));
                return;
            }
            if !is_image_extension(path) {
                self.state.error(format!(
                    "{} is not an image Likeness can read (JPEG, PNG, WebP, BMP, GIF or TIFF).",
                    path.display()
                ));
                return;
            }
        }
        if self.state.current.index.is_none() {
            if self.state.index_on_the_way() {
                // `likeness PHOTO` at start-up: the last index is still opening.
                self.state.info(format!(
                    "Opening the index; {} will be searched when it is open.",
                    query.label()
                ));
                self.state.search.pending_query = Some(query);
                return;
            }
            self.state.error(
                "There is no index to search yet: train a model (or open one), then index a folder.",
            );
            return;
        }
        let k = self.state.settings.k;
        self.send(Request::Search { query, k });
    }

    /// Starts from the ImageNet weights: the cached file, or a download of it.
    pub fn use_imagenet_weights(&mut self) {
        self.state.settings.train.start_chosen = true;
        if let Some(path) = self.state.imagenet_weights.clone().filter(|p| p.is_file()) {
            self.state.settings.train.weights = Some(path);
            return;
        }
        self.state.imagenet_weights = None;
        let source = self.state.dirs.weights.clone();
        self.send(Request::DownloadWeights(source));
    }

    /// Writes the list of the duplicates not kept (or copies them) as the Duplicates view
    /// stands.
    pub fn export_duplicates(&mut self, to: DuplicateExport) {
        let Some(view) = &self.state.duplicates else {
            return;
        };
        let others = view.others();
        if others.is_empty() {
            self.state.error("No group has a photo that is not kept.");
            return;
        }
        self.send(Request::ExportDuplicates { others, to });
    }

    /// Marks `photo` as alike (or not, or unmarks it) to the query on screen, and saves
    /// the marks.
    pub fn mark(&mut self, photo: PathBuf, alike: Option<bool>) {
        let Some(Query::File(query)) = self.state.search.shown.as_ref().map(|s| s.query.clone())
        else {
            self.state
                .error("Marks need a query photo on disk (a pasted image has no path).");
            return;
        };
        self.change_mark(query, photo, alike);
    }

    /// Hands the window's file work to the disk thread and takes in its answers: the
    /// marks' notices, the results on screen refined again when the library's marks (or
    /// imported ones) arrive, and the Recent menu's names.
    pub fn sync_disk(&mut self, ctx: &egui::Context) {
        let disk = &mut self.disk;
        self.state.marks.hand_over(|job| disk.try_send_marks(job));
        for answer in self.disk.answers() {
            match answer {
                DiskAnswer::Marks(done) => {
                    let marks_changed = matches!(
                        done,
                        marks_file::MarksDone::Opened { .. }
                            | marks_file::MarksDone::Imported { .. }
                    );
                    let notice = self.state.marks.apply(done);
                    self.tell(notice);
                    if marks_changed {
                        self.refine_on_screen();
                    }
                }
                DiskAnswer::Recent(files) => {
                    for file in files {
                        self.state.recent_files.insert(file.path.clone(), file);
                    }
                }
            }
        }
        if !self.state.marks.is_settled() {
            // An answer wakes the window; a full queue is tried again shortly.
            ctx.request_repaint_after(Duration::from_millis(50));
        }
    }

    /// Asks the disk thread to name the Recent menu's files and see which are still
    /// there: at start (`now`), and while the menu is open at most every two seconds.
    fn look_at_recent_files(&mut self, now: bool) {
        const AGAIN_AFTER: Duration = Duration::from_secs(2);
        if !now
            && self
                .recent_looked_at
                .is_some_and(|t| t.elapsed() < AGAIN_AFTER)
        {
            return;
        }
        let settings = &self.state.settings;
        let files: Vec<_> = [
            (&settings.recent_folders, recent::RecentKind::Library),
            (&settings.recent_models, recent::RecentKind::Model),
            (&settings.recent_indexes, recent::RecentKind::Index),
        ]
        .into_iter()
        .flat_map(|(paths, kind)| paths.iter().map(move |path| (path.clone(), kind)))
        .collect();
        if !files.is_empty() && self.disk.try_describe_recent(files) {
            self.recent_looked_at = Some(Instant::now());
        }
    }

    /// Sets one mark, remembers it for undo, and saves the marks; the results on screen
    /// follow at once.
    pub fn change_mark(&mut self, query: PathBuf, photo: PathBuf, alike: Option<bool>) {
        let notice = self.state.marks.set(query, photo, alike);
        self.tell(notice);
        self.refine_on_screen();
    }

    /// Takes back the last mark change.
    pub fn undo_mark(&mut self) {
        self.state.marks.undo();
        self.refine_on_screen();
    }

    /// Removes the mark at `position` of the marks list.
    pub fn remove_mark(&mut self, position: usize) {
        let notice = self.state.marks.remove(position);
        self.tell(notice);
        self.refine_on_screen();
    }

    /// Asks for the results on screen again, refined by their query's marks (or, after
    /// Show original, without them). A query with no marks and plain results on screen
    /// needs nothing.
    pub fn refine_on_screen(&mut self) {
        let Some(search) = &self.state.search.shown else {
            return;
        };
        let Query::File(path) = &search.query else {
            return;
        };
        if search.vector.is_empty() {
            return;
        }
        let marks = if self.state.search.show_original {
            Vec::new()
        } else {
            self.state.marks.all().for_query(path)
        };
        if marks.is_empty() && search.refined_by == 0 {
            return;
        }
        let request = Request::Refine {
            query: search.query.clone(),
            vector: Arc::clone(&search.vector),
            marks,
            k: self.state.settings.k,
        };
        self.send(request);
    }

    /// Writes the marks to `path` as JSON (the same format they are kept in), on the
    /// disk thread; the notice comes with its answer.
    pub fn export_marks(&mut self, path: &Path) {
        self.state.marks.export(path);
    }

    /// Adds the marks of a marks file (its judgement wins where both marked a pair) once
    /// the disk thread has read it.
    pub fn import_marks(&mut self, path: &Path) {
        self.state.marks.import(path);
    }

    /// Opens the marks of the current index's library (after the index changed).
    fn open_marks(&mut self) {
        let index = self
            .state
            .current
            .index
            .as_ref()
            .map(|index| (index.folder.clone(), index.path.clone()));
        self.state.marks.open(
            &self.state.dirs.marks,
            index
                .as_ref()
                .map(|(folder, path)| (folder.as_path(), path.as_path())),
        );
    }

    /// Posts what an operation on the marks has to say.
    fn tell(&mut self, notice: Option<MarksNotice>) {
        match notice {
            Some(MarksNotice::Info(text)) => self.state.info(text),
            Some(MarksNotice::Error(text)) => self.state.error(text),
            None => {}
        }
    }

    /// Fine-tunes the current model from the marks into a new model file; the index is
    /// embedded again with it and the query on screen asked again.
    pub fn retrain_with_marks(&mut self) {
        if self.state.marks.is_empty() {
            self.state
                .error("Mark some results as Alike or Not alike first.");
            return;
        }
        let name = self
            .state
            .current
            .model
            .as_ref()
            .and_then(|m| m.path.file_stem())
            .map_or_else(|| "model".to_string(), |s| s.to_string_lossy().into_owned());
        // A fine-tuned model of a fine-tuned model keeps one suffix.
        let name = name.split("-marks-").next().unwrap_or(&name).to_string();
        let model_path = self
            .state
            .dirs
            .models
            .join(format!("{name}-marks-{}.safetensors", timestamp()));
        self.send(Request::FineTune {
            marks: self.state.marks.all().clone(),
            seconds: self.state.marks.fine_tune_seconds,
            model_path,
        });
    }

    /// Copies the photos selected on the map into `folder`.
    pub fn copy_map_selection(&mut self, folder: PathBuf) {
        let Some(view) = &self.state.map.shown else {
            return;
        };
        if view.selected.is_empty() {
            self.state
                .error("Select photos on the map first (Box select, then drag).");
            return;
        }
        let paths = view
            .selected
            .iter()
            .map(|&i| view.map.paths[i].clone())
            .collect();
        self.send(Request::CopyPhotos { paths, folder });
    }

    /// Exports the selected results to `folder`.
    pub fn export_selected(&mut self, folder: PathBuf) {
        let Some(search) = &self.state.search.shown else {
            return;
        };
        // What is on screen: the selected results within the distance limit, if any.
        let limit = self
            .state
            .settings
            .limit_distance
            .then_some(self.state.settings.max_distance);
        let hits: Vec<SearchHit> = search
            .hits
            .iter()
            .zip(&search.selected)
            .filter(|(hit, selected)| **selected && limit.is_none_or(|l| hit.distance < l))
            .map(|(hit, _)| hit.clone())
            .collect();
        if hits.is_empty() {
            self.state.error("Select at least one result to export.");
            return;
        }
        let query = search.query.label();
        self.send(Request::Export {
            query,
            hits,
            folder,
        });
    }
}

/// Seconds since the epoch: unique, sortable file-name suffixes.
fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{secs}")
}

impl eframe::App for LikenessApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.frame_started = Some(Instant::now());
        self.drain_events(ctx);
        self.sync_disk(ctx);
        self.handle_drops(ctx);
        self.handle_paste(ctx);
        for failure in self.desktop.failures() {
            self.state.notices.push(Notice {
                text: failure.message,
                is_error: true,
                posted: Instant::now(),
                copy: Some(failure.path.display().to_string()),
            });
        }
        if self.thumbnails.poll(ctx) {
            ctx.request_repaint_after(Duration::from_millis(30));
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let started = self.frame_started.take().unwrap_or_else(Instant::now);
        let mut intents = Vec::new();
        let (state, thumbnails) = (&mut self.state, &mut self.thumbnails);
        egui::Panel::top("toolbar").show(ui, |ui| {
            panels::toolbar::toolbar_ui(ui, state, &mut intents)
        });
        egui::Panel::bottom("status").show(ui, |ui| panels::status::status_ui(ui, state));
        egui::Panel::left("workflow")
            .default_size(360.0)
            .size_range(300.0..=560.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| {
                    panels::library::library_ui(ui, state, &mut intents);
                    ui.separator();
                    panels::training::training_ui(ui, state, thumbnails, &mut intents);
                    ui.separator();
                    panels::index::index_ui(ui, state, &mut intents);
                    ui.separator();
                    panels::marks::marks_ui(ui, state, &mut intents);
                });
            });
        egui::CentralPanel::default().show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.selectable_value(&mut state.view, CentralView::Results, "Search");
                ui.selectable_value(&mut state.view, CentralView::Duplicates, "Duplicates");
                ui.selectable_value(&mut state.view, CentralView::Map, "Map");
                ui.selectable_value(&mut state.view, CentralView::Sort, "Sort");
            });
            ui.separator();
            match state.view {
                CentralView::Results => {
                    panels::results::results_ui(ui, state, thumbnails, &mut intents)
                }
                CentralView::Duplicates => {
                    panels::duplicates::duplicates_ui(ui, state, thumbnails, &mut intents)
                }
                CentralView::Map => panels::map::map_ui(ui, state, thumbnails, &mut intents),
                CentralView::Sort => panels::sort::sort_ui(ui, state, thumbnails, &mut intents),
            }
        });
        panels::preview::preview_ui(ui.ctx(), state, thumbnails, &mut intents);
        panels::status::details_ui(ui.ctx(), state);
        // Over everything (the preview too), in a corner: notices never push the
        // content down, and a failure is seen wherever the person is.
        panels::status::notices_overlay(ui.ctx(), state);
        if ui.ctx().input(|i| !i.raw.hovered_files.is_empty()) {
            window::drop_hint(ui.ctx());
        }
        let ctx = ui.ctx().clone();
        for intent in intents {
            self.carry_out(&ctx, intent);
        }
        self.sync_disk(&ctx);
        self.frame_stats.record(started.elapsed());
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        self.remember_session();
        eframe::set_value(storage, STORAGE_KEY, &self.state.settings);
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        if std::env::var_os("LIKENESS_FRAME_STATS").is_some() {
            eprintln!(
                "frame times (our code per frame): {}",
                self.frame_stats.summary()
            );
        }
    }
}
