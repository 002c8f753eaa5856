//! The Likeness window (eframe/egui): a thin shell over the worker.
//!
//! Each frame: drain the worker's events into the [`AppState`] reducer, draw the panels
//! (a toolbar on top, the library / training / index column on the left, the query and
//! its neighbours in the centre, a status bar at the bottom), then carry out the intents
//! the panels returned: dialogs and jobs start here, never in drawing code.

mod frame_stats;
mod intents;
pub mod panels;
mod reducer;
mod settings;
mod state;
mod thumbnails;
mod widgets;
mod window;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use frame_stats::FrameStats;
pub use panels::Intent;
pub use reducer::Effect;
pub use settings::{AppSettings, DataDirs, STORAGE_KEY, TrainForm};
pub use state::{Activity, AppState, LibraryView, Notice, SearchView, TrainingView};
pub use thumbnails::ThumbnailCache;
pub use window::run_window;

use crate::engine::data::is_image_extension;
use crate::engine::index::SearchHit;
use crate::engine::train::TrainJob;
use crate::worker::{Query, Request, WorkerHandle};
use thumbnails::{DEFAULT_BUDGET_BYTES, color_image};

/// Events handled per frame at most, so a burst never makes a frame long.
const EVENTS_PER_FRAME: usize = 512;

/// The Likeness app: its state (reachable as `app.field` through `Deref`), the worker and
/// the thumbnail cache.
pub struct LikenessApp {
    worker: WorkerHandle,
    pub state: AppState,
    pub thumbnails: ThumbnailCache,
    pub frame_stats: FrameStats,
    /// When this frame's `logic` began: frame times cover `logic` and `ui` together.
    frame_started: Option<Instant>,
}

impl std::ops::Deref for LikenessApp {
    type Target = AppState;
    fn deref(&self) -> &AppState {
        &self.state
    }
}

impl std::ops::DerefMut for LikenessApp {
    fn deref_mut(&mut self) -> &mut AppState {
        &mut self.state
    }
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
        let worker =
            WorkerHandle::spawn(move || repaint.request_repaint_after(Duration::from_millis(30)));
        let thumbnail_repaint = ctx.clone();
        let thumbnails = ThumbnailCache::new(DEFAULT_BUDGET_BYTES, move || {
            thumbnail_repaint.request_repaint_after(Duration::from_millis(15));
        });
        let mut app = Self {
            worker,
            state: AppState::new(settings, dirs),
            thumbnails,
            frame_stats: FrameStats::default(),
            frame_started: None,
        };
        if let Some(library) = app.settings.library.clone() {
            app.send(Request::ScanLibrary(library));
        }
        match (app.settings.index.clone(), app.settings.model.clone()) {
            (Some(index), _) if index.exists() => {
                app.send(Request::OpenIndex(index));
            }
            (_, Some(model)) if model.exists() => {
                app.send(Request::OpenModel(model));
            }
            _ => {}
        }
        app
    }

    /// Sends a request; the job waits in `queued` until the worker starts it.
    fn send(&mut self, request: Request) -> Option<crate::worker::JobId> {
        let kind = request.kind();
        match self.worker.send(request) {
            Ok(job) => {
                self.state.queued.push((job, kind));
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
                        if let Some(search) = &mut self.state.search {
                            search.preview = Some(texture);
                        }
                    }
                    Effect::StartIndexing(folder) => self.start_indexing(folder),
                }
            }
        }
        if !self.worker.is_alive() && !self.state.is_idle() {
            self.state.activity = None;
            self.state.queued.clear();
            self.state
                .error("The background worker stopped unexpectedly; restart Likeness.");
        }
    }

    /// Makes `folder` the library and scans it.
    pub fn choose_library(&mut self, folder: PathBuf) {
        self.settings.remember_folder(folder.clone());
        self.settings.library = Some(folder.clone());
        self.index_folder = folder.display().to_string();
        self.library = None;
        self.send(Request::ScanLibrary(folder));
    }

    /// Starts training on the library with the form's settings; the library is indexed
    /// with the new model when it succeeds.
    pub fn start_training(&mut self) {
        let Some(library) = self.settings.library.clone() else {
            self.state.error("Choose a library folder first.");
            return;
        };
        let mut job = TrainJob::new(library.clone(), self.settings.train.settings());
        job.validation = self.settings.validation.clone();
        job.weights = self.settings.train.weights.clone();
        let name = library.file_name().map_or_else(
            || "library".to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let model_path = self
            .dirs
            .models
            .join(format!("{name}-{}.safetensors", timestamp()));
        if let Some(id) = self.send(Request::Train { job, model_path }) {
            self.state.training = TrainingView {
                job: Some(id),
                ..Default::default()
            };
            self.state.index_after = Some(id);
        }
    }

    /// Embeds `folder` with the current model into a new index.
    pub fn start_indexing(&mut self, folder: PathBuf) {
        let name = folder.file_name().map_or_else(
            || "folder".to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let index_path = self
            .dirs
            .indexes
            .join(format!("{name}-{}.likeness-index", timestamp()));
        self.send(Request::BuildIndex { folder, index_path });
    }

    /// Searches with a query (a file or a pasted image).
    pub fn search_with(&mut self, query: Query) {
        if self.current.index.is_none() {
            self.state.error(
                "There is no index to search yet: train a model (or open one), then index a folder.",
            );
            return;
        }
        if let Query::File(path) = &query
            && !is_image_extension(path)
        {
            self.state.error(format!(
                "{} is not an image Likeness can read (JPEG, PNG, WebP, BMP, GIF or TIFF).",
                path.display()
            ));
            return;
        }
        let k = self.settings.k;
        self.send(Request::Search { query, k });
    }

    /// Starts from the ImageNet weights: the cached file, or a download of it.
    pub fn use_imagenet_weights(&mut self) {
        if let Some(path) = self.imagenet_weights.clone().filter(|p| p.is_file()) {
            self.settings.train.weights = Some(path);
            return;
        }
        self.imagenet_weights = None;
        let source = self.dirs.weights.clone();
        self.send(Request::DownloadWeights(source));
    }

    /// Exports the selected results to `folder`.
    pub fn export_selected(&mut self, folder: PathBuf) {
        let Some(search) = &self.search else { return };
        let hits: Vec<SearchHit> = search
            .hits
            .iter()
            .zip(&search.selected)
            .filter(|(_, selected)| **selected)
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

/// Opens a file or folder with the desktop's default application.
pub(crate) fn open_in_system(ctx: &egui::Context, path: &Path) {
    ctx.open_url(egui::OpenUrl::new_tab(format!("file://{}", path.display())));
}

impl eframe::App for LikenessApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.frame_started = Some(Instant::now());
        self.drain_events(ctx);
        self.handle_drops(ctx);
        self.handle_paste(ctx);
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
                });
            });
        egui::CentralPanel::default().show(ui, |ui| {
            panels::status::notices_ui(ui, state);
            panels::results::results_ui(ui, state, thumbnails, &mut intents);
        });
        if ui.ctx().input(|i| !i.raw.hovered_files.is_empty()) {
            window::drop_hint(ui.ctx());
        }
        let ctx = ui.ctx().clone();
        for intent in intents {
            self.carry_out(&ctx, intent);
        }
        self.frame_stats.record(started.elapsed());
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, STORAGE_KEY, &self.settings);
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
