//! The main window: state, the worker's events, and the panels.
//!
//! Layout: a toolbar on top, the library / training / index column on the left, the
//! query and its neighbours in the centre, a status bar at the bottom. Every long job
//! runs on the worker; the UI only sends commands and draws what the events say.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui_plot::{Legend, Line, Plot, PlotPoint, PlotPoints, Points};

use super::settings::{AppSettings, DataDirs, STORAGE_KEY, TrainForm};
use super::thumbnails::{DEFAULT_BUDGET_BYTES, Thumbnail, ThumbnailCache, color_image};
use crate::engine::data::{ImageFolder, is_image_extension};
use crate::engine::device::DeviceChoice;
use crate::engine::eval::RetrievalReport;
use crate::engine::index::SearchHit;
use crate::engine::model::ModelInfo;
use crate::engine::pretrained::IMAGENET_RESNET18_APPROX_MB;
use crate::engine::train::{Preset, TrainEvent, TrainJob};
use crate::worker::{Command, Event, IndexSummary, Query, WorkerHandle};

/// Events handled per frame at most, so a burst never makes a frame long.
const EVENTS_PER_FRAME: usize = 512;
const CARD_WIDTH: f32 = 168.0;
const CARD_IMAGE: f32 = 150.0;

/// A message for the person at the screen.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub text: String,
    pub is_error: bool,
}

/// What the library scan found.
#[derive(Debug, Clone)]
pub struct LibraryView {
    pub folder: ImageFolder,
    pub classes: usize,
}

/// Training progress and curves.
#[derive(Debug, Default)]
pub struct TrainingView {
    pub running: bool,
    pub preparing: Option<(usize, usize)>,
    pub evaluating: Option<(usize, usize)>,
    pub device: String,
    pub epoch: usize,
    /// The most epochs the run may take; `None`: until the time budget is spent.
    pub epochs: Option<usize>,
    pub step: usize,
    pub steps_per_epoch: usize,
    pub global_step: usize,
    pub elapsed_secs: f64,
    pub remaining_secs: f64,
    pub time_budget_secs: Option<f64>,
    /// Loss of every step, x = global step.
    pub step_losses: Vec<PlotPoint>,
    /// Mean loss of every epoch, x = global step at its end.
    pub epoch_losses: Vec<PlotPoint>,
    pub validation_losses: Vec<PlotPoint>,
    /// Validation mAP@R after observed epochs, x = global step at its end.
    pub validation_map: Vec<PlotPoint>,
    pub notes: Vec<String>,
    pub outcome: Option<String>,
    pub validation: Option<RetrievalReport>,
}

/// The query on screen and its results.
pub struct SearchView {
    pub query: Query,
    pub preview: Option<egui::TextureHandle>,
    pub hits: Vec<SearchHit>,
    pub selected: Vec<bool>,
}

/// Time spent in our own per-frame code (`logic` + `ui`), for the frame-time report.
#[derive(Debug, Default, Clone)]
pub struct FrameStats {
    pub frames: usize,
    pub total: Duration,
    pub worst: Duration,
    pub over_50ms: usize,
}

impl FrameStats {
    /// Adds one frame's time.
    pub fn record(&mut self, spent: Duration) {
        self.frames += 1;
        self.total += spent;
        self.worst = self.worst.max(spent);
        self.over_50ms += usize::from(spent > Duration::from_millis(50));
    }

    /// One line: frames, mean, worst, frames over 50 ms.
    pub fn summary(&self) -> String {
        let mean_ms = self.total.as_secs_f64() * 1000.0 / self.frames.max(1) as f64;
        format!(
            "{} frames, mean {mean_ms:.2} ms, worst {:.2} ms, {} over 50 ms",
            self.frames,
            self.worst.as_secs_f64() * 1000.0,
            self.over_50ms
        )
    }
}

/// The Likeness app.
pub struct LikenessApp {
    worker: WorkerHandle,
    pub settings: AppSettings,
    dirs: DataDirs,
    pub device: String,
    pub busy: Option<String>,
    pub notices: Vec<Notice>,
    pub library: Option<LibraryView>,
    pub training: TrainingView,
    pub indexing: Option<(usize, usize)>,
    /// Bytes of the ImageNet weights downloaded so far, and of how many.
    pub weights_download: Option<(u64, Option<u64>)>,
    /// The downloaded ImageNet weights, once they are in the cache.
    pub imagenet_weights: Option<PathBuf>,
    pub model: Option<(PathBuf, ModelInfo)>,
    pub index: Option<IndexSummary>,
    pub search: Option<SearchView>,
    pub thumbnails: ThumbnailCache,
    pub frame_stats: FrameStats,
    /// A folder typed into the index field (defaults to the library).
    index_folder: String,
    /// After training, index the library with the new model.
    index_after_training: bool,
    last_export_folder: Option<String>,
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
        let worker =
            WorkerHandle::spawn(move || repaint.request_repaint_after(Duration::from_millis(30)));
        let thumbnail_repaint = ctx.clone();
        let thumbnails = ThumbnailCache::new(DEFAULT_BUDGET_BYTES, move || {
            thumbnail_repaint.request_repaint_after(Duration::from_millis(15));
        });
        let imagenet_weights = dirs.weights.cached().map(Path::to_path_buf);
        let mut app = Self {
            worker,
            weights_download: None,
            imagenet_weights,
            index_folder: settings
                .library
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            settings,
            dirs,
            device: "detecting…".into(),
            busy: None,
            notices: Vec::new(),
            library: None,
            training: TrainingView::default(),
            indexing: None,
            model: None,
            index: None,
            search: None,
            thumbnails,
            frame_stats: FrameStats::default(),
            index_after_training: false,
            last_export_folder: None,
            frame_started: None,
        };
        if let Some(library) = app.settings.library.clone() {
            app.send(Command::ScanLibrary(library));
        }
        match (app.settings.index.clone(), app.settings.model.clone()) {
            (Some(index), _) if index.exists() => app.send(Command::OpenIndex(index)),
            (_, Some(model)) if model.exists() => app.send(Command::OpenModel(model)),
            _ => {}
        }
        app
    }

    fn send(&mut self, command: Command) {
        if let Err(message) = self.worker.send(command) {
            self.error(message);
        }
    }

    fn error(&mut self, text: impl Into<String>) {
        self.notices.push(Notice {
            text: text.into(),
            is_error: true,
        });
    }

    fn info(&mut self, text: impl Into<String>) {
        self.notices.push(Notice {
            text: text.into(),
            is_error: false,
        });
    }

    /// Applies the worker's events (at most [`EVENTS_PER_FRAME`] per frame).
    pub fn drain_events(&mut self, ctx: &egui::Context) {
        let events: Vec<Event> = self
            .worker
            .events
            .try_iter()
            .take(EVENTS_PER_FRAME)
            .collect();
        if events.len() == EVENTS_PER_FRAME {
            ctx.request_repaint();
        }
        for event in events {
            self.apply(ctx, event);
        }
        if !self.worker.is_alive() && self.busy.is_some() {
            self.busy = None;
            self.error("The background worker stopped unexpectedly; restart Likeness.");
        }
    }

    fn apply(&mut self, ctx: &egui::Context, event: Event) {
        match event {
            Event::Device(device) => self.device = device,
            Event::Busy { what } => self.busy = Some(what),
            Event::Idle => {
                self.busy = None;
                self.training.running = false;
                self.training.preparing = None;
                self.training.evaluating = None;
                self.indexing = None;
                self.weights_download = None;
            }
            Event::LibraryScanned(folder) => {
                let classes = folder.class_count();
                if self.index_folder.is_empty() {
                    self.index_folder = folder.root.display().to_string();
                }
                self.library = Some(LibraryView { folder, classes });
            }
            Event::Training(event) => self.apply_training(event),
            Event::Trained {
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
                self.training.outcome = Some(format!(
                    "Training {how}: {} epochs, {} steps in {:.0} s.{kept} Model: {}",
                    summary.epochs,
                    summary.steps,
                    summary.train_secs,
                    model_path.display()
                ));
                self.training.validation = validation.map(|v| *v);
                self.settings.model = Some(model_path);
                if self.index_after_training {
                    self.index_after_training = false;
                    if let Some(library) = self.settings.library.clone() {
                        self.start_indexing(library);
                    }
                }
            }
            Event::ModelOpened { path, info } => {
                self.settings.model = Some(path.clone());
                self.model = Some((path, *info));
            }
            Event::Indexing { done, total } => self.indexing = Some((done, total)),
            Event::IndexOpened(summary) => {
                self.settings.index = Some(summary.path.clone());
                if !summary.skipped.is_empty() {
                    self.info(format!(
                        "Indexed {} images; {} files were skipped (see the Index section).",
                        summary.images,
                        summary.skipped.len()
                    ));
                }
                self.index = Some(*summary);
            }
            Event::Results {
                query,
                preview,
                hits,
            } => {
                let preview = Some(ctx.load_texture(
                    "query",
                    color_image(&preview),
                    egui::TextureOptions::LINEAR,
                ));
                self.search = Some(SearchView {
                    selected: vec![true; hits.len()],
                    query,
                    preview,
                    hits,
                });
            }
            Event::Exported(manifest) => {
                let folder = self.last_export_folder.clone().unwrap_or_default();
                self.info(format!(
                    "Exported {} images with results.csv and results.json to {folder}",
                    manifest.results.len()
                ));
            }
            Event::DownloadingWeights { done, total } => {
                self.weights_download = Some((done, total));
            }
            Event::WeightsReady { path, tensors } => {
                self.info(format!(
                    "ImageNet ResNet18 weights downloaded and checked ({tensors} tensors); \
                     training starts from them. Saved in {}",
                    path.display()
                ));
                self.settings.train.weights = Some(path.clone());
                self.imagenet_weights = Some(path);
            }
            Event::Failed { job, message } => {
                self.error(format!("{} failed: {message}", capitalise(&job)))
            }
        }
    }

    fn apply_training(&mut self, event: TrainEvent) {
        let view = &mut self.training;
        match event {
            TrainEvent::Preparing { done, total } => view.preparing = Some((done, total)),
            TrainEvent::Started {
                device,
                steps_per_epoch,
                epochs,
                notes,
                skipped,
                ..
            } => {
                view.preparing = None;
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

    /// Makes `folder` the library and scans it.
    pub fn choose_library(&mut self, folder: PathBuf) {
        self.settings.remember_folder(folder.clone());
        self.settings.library = Some(folder.clone());
        self.index_folder = folder.display().to_string();
        self.library = None;
        self.send(Command::ScanLibrary(folder));
    }

    /// Starts training on the library with the form's settings.
    pub fn start_training(&mut self) {
        let Some(library) = self.settings.library.clone() else {
            self.error("Choose a library folder first.");
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
        self.training = TrainingView {
            running: true,
            time_budget_secs: job.settings.max_seconds,
            ..Default::default()
        };
        self.index_after_training = true;
        self.send(Command::Train { job, model_path });
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
        self.indexing = Some((0, 0));
        self.send(Command::BuildIndex { folder, index_path });
    }

    /// Searches with a query (a file or a pasted image).
    pub fn search_with(&mut self, query: Query) {
        if self.index.is_none() {
            self.error("There is no index to search yet: train a model (or open one), then index a folder.");
            return;
        }
        if let Query::File(path) = &query
            && !is_image_extension(path)
        {
            self.error(format!(
                "{} is not an image Likeness can read (JPEG, PNG, WebP, BMP, GIF or TIFF).",
                path.display()
            ));
            return;
        }
        let k = self.settings.k;
        self.send(Command::Search { query, k });
    }

    /// Starts from the ImageNet weights: the cached file, or a download of it.
    pub fn use_imagenet_weights(&mut self) {
        if let Some(path) = self.imagenet_weights.clone().filter(|p| p.is_file()) {
            self.settings.train.weights = Some(path);
            return;
        }
        self.imagenet_weights = None;
        self.weights_download = Some((0, None));
        self.send(Command::DownloadWeights(self.dirs.weights.clone()));
    }

    /// Stops a weights download; nothing is kept.
    pub fn cancel_weights_download(&mut self) {
        self.worker.cancel();
        self.info("Download cancelled; nothing was kept.");
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
            self.error("Select at least one result to export.");
            return;
        }
        let query = search.query.label();
        self.last_export_folder = Some(folder.display().to_string());
        self.send(Command::Export {
            query,
            hits,
            folder,
        });
    }

    /// Takes dropped files: a folder becomes the library, an image is searched.
    pub fn handle_drops(&mut self, ctx: &egui::Context) {
        let dropped = ctx.input_mut(|i| std::mem::take(&mut i.raw.dropped_files));
        for file in dropped {
            let path = file.path().to_path_buf();
            if path.is_dir() {
                self.choose_library(path);
            } else {
                self.search_with(Query::File(path));
            }
        }
    }

    fn handle_paste(&mut self, ctx: &egui::Context) {
        let pasted: Vec<egui::Event> = ctx.input(|i| {
            i.events
                .iter()
                .filter(|e| matches!(e, egui::Event::PasteImage(_) | egui::Event::Paste(_)))
                .cloned()
                .collect()
        });
        for event in pasted {
            match event {
                egui::Event::PasteImage(image) => {
                    let rgb = image::RgbImage::from_fn(
                        image.size[0] as u32,
                        image.size[1] as u32,
                        |x, y| {
                            let c = image.pixels[y as usize * image.size[0] + x as usize];
                            image::Rgb([c.r(), c.g(), c.b()])
                        },
                    );
                    self.search_with(Query::Rgb {
                        name: "pasted image".into(),
                        image: Arc::new(rgb),
                    });
                }
                egui::Event::Paste(text) => {
                    // File managers copy files as paths or file:// URIs.
                    let text = text.trim();
                    let path = PathBuf::from(text.strip_prefix("file://").unwrap_or(text));
                    if path.is_file() {
                        self.search_with(Query::File(path));
                    }
                }
                _ => {}
            }
        }
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
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
        self.handle_drops(ctx);
        self.handle_paste(ctx);
        if self.thumbnails.poll(ctx) {
            ctx.request_repaint_after(Duration::from_millis(30));
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let started = self.frame_started.take().unwrap_or_else(Instant::now);
        egui::Panel::top("toolbar").show(ui, |ui| self.toolbar_ui(ui));
        egui::Panel::bottom("status").show(ui, |ui| self.status_ui(ui));
        egui::Panel::left("workflow")
            .default_size(360.0)
            .size_range(300.0..=560.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| {
                    self.library_ui(ui);
                    ui.separator();
                    self.training_ui(ui);
                    ui.separator();
                    self.index_ui(ui);
                });
            });
        egui::CentralPanel::default().show(ui, |ui| {
            self.notices_ui(ui);
            self.search_ui(ui);
        });
        let hovering = ui.ctx().input(|i| !i.raw.hovered_files.is_empty());
        if hovering {
            drop_hint(ui.ctx());
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

fn drop_hint(ctx: &egui::Context) {
    let screen = ctx.content_rect();
    let painter = ctx.layer_painter(egui::LayerId::new(
        egui::Order::Foreground,
        egui::Id::unique("drop_hint"),
    ));
    painter.rect_filled(screen, 0.0, egui::Color32::from_black_alpha(160));
    painter.text(
        screen.center(),
        egui::Align2::CENTER_CENTER,
        "Drop a photo to find its look-alikes, or a folder to use as the library",
        egui::FontId::proportional(22.0),
        egui::Color32::WHITE,
    );
}

// The panels.
impl LikenessApp {
    fn toolbar_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.heading("Likeness");
            ui.separator();
            if ui
                .button("Choose library…")
                .on_hover_text("A folder of photos; one sub-folder per class to train")
                .clicked()
                && let Some(folder) = rfd::FileDialog::new()
                    .set_title("Choose the library folder")
                    .pick_folder()
            {
                self.choose_library(folder);
            }
            let recent = self.settings.recent_folders.clone();
            ui.add_enabled_ui(!recent.is_empty(), |ui| {
                ui.menu_button("Recent", |ui| {
                    for folder in recent {
                        if ui.button(folder.display().to_string()).clicked() {
                            self.choose_library(folder);
                            ui.close();
                        }
                    }
                });
            });
            if ui.button("Open model…").clicked()
                && let Some(path) = rfd::FileDialog::new()
                    .add_filter("Likeness model", &["safetensors"])
                    .pick_file()
            {
                self.send(Command::OpenModel(path));
            }
            if ui.button("Open index…").clicked()
                && let Some(path) = rfd::FileDialog::new()
                    .add_filter("Likeness index", &["likeness-index"])
                    .pick_file()
            {
                self.send(Command::OpenIndex(path));
            }
        });
    }

    fn status_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.label(format!("Device: {}", self.device));
            ui.separator();
            match &self.model {
                Some((path, info)) => ui.label(format!(
                    "Model: {} ({}-d, {} px)",
                    path.file_name()
                        .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                    info.config.embedding_dim,
                    info.config.preprocess.image_size_px
                )),
                None => ui.label("Model: none"),
            };
            ui.separator();
            match &self.index {
                Some(index) => ui.label(format!("Index: {} images", index.images)),
                None => ui.label("Index: none"),
            };
            if let Some(busy) = &self.busy {
                ui.separator();
                ui.spinner();
                ui.label(format!("Busy: {busy}"));
            }
        });
    }

    fn notices_ui(&mut self, ui: &mut egui::Ui) {
        let mut dismissed = None;
        for (i, notice) in self.notices.iter().enumerate().rev().take(3) {
            let (fill, stroke) = if notice.is_error {
                (
                    egui::Color32::from_rgb(90, 30, 30),
                    egui::Color32::from_rgb(220, 90, 90),
                )
            } else {
                (
                    egui::Color32::from_rgb(30, 60, 90),
                    egui::Color32::from_rgb(90, 150, 220),
                )
            };
            egui::Frame::new()
                .fill(fill)
                .stroke(egui::Stroke::new(1.0, stroke))
                .inner_margin(8.0)
                .corner_radius(4.0)
                .show(ui, |ui| {
                    ui.horizontal(|ui| {
                        ui.add(
                            egui::Label::new(
                                egui::RichText::new(&notice.text).color(egui::Color32::WHITE),
                            )
                            .wrap(),
                        );
                        if ui.small_button("Dismiss").clicked() {
                            dismissed = Some(i);
                        }
                    });
                });
        }
        if let Some(i) = dismissed {
            self.notices.remove(i);
        }
    }

    fn library_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("Library");
        match (&self.settings.library, &self.library) {
            (None, _) => {
                ui.label("Choose a folder of photos (or drop one here). To train, give it one sub-folder per class, e.g. flowers/daisy, flowers/rose.");
            }
            (Some(folder), None) => {
                ui.label(folder.display().to_string());
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Scanning…");
                });
            }
            (Some(folder), Some(view)) => {
                ui.label(folder.display().to_string());
                ui.label(format!(
                    "{} images in {} classes",
                    view.folder.images.len(),
                    view.classes
                ));
                if view.classes < 2 {
                    ui.colored_label(
                        ui.visuals().warn_fg_color,
                        "Training needs at least two class sub-folders; this folder can still be indexed with an existing model.",
                    );
                }
                if !view.folder.skipped.is_empty() {
                    egui::CollapsingHeader::new(format!(
                        "{} files skipped",
                        view.folder.skipped.len()
                    ))
                    .id_salt("library_skipped")
                    .show(ui, |ui| skipped_list_ui(ui, &view.folder.skipped));
                }
            }
        }
        ui.horizontal(|ui| {
            ui.label("Validation folder:");
            match self.settings.validation.clone() {
                Some(folder) => {
                    ui.label(folder.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()))
                        .on_hover_text(folder.display().to_string());
                    if ui.small_button("Clear").clicked() {
                        self.settings.validation = None;
                    }
                }
                None => {
                    if ui.small_button("Choose…").on_hover_text("Held-out photos with the same class folders: validation loss and recall after training").clicked()
                        && let Some(folder) = rfd::FileDialog::new().pick_folder() {
                            self.settings.validation = Some(folder);
                        }
                }
            }
        });
    }

    fn training_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("Training");
        let running = self.training.running;
        ui.add_enabled_ui(!running, |ui| self.train_form_ui(ui));
        let can_train =
            self.library.as_ref().is_some_and(|l| l.classes >= 2) && self.busy.is_none();
        ui.horizontal(|ui| {
            if running {
                if ui
                    .button("Cancel")
                    .on_hover_text("Stop after this step and keep the model trained so far")
                    .clicked()
                {
                    self.worker.cancel();
                }
            } else if ui
                .add_enabled(can_train, egui::Button::new("Train"))
                .on_disabled_hover_text(
                    "Needs a library with at least two class folders, and no other job running",
                )
                .clicked()
            {
                self.start_training();
            }
        });
        self.training_progress_ui(ui);
    }

    fn train_form_ui(&mut self, ui: &mut egui::Ui) {
        let mut imagenet_clicked = false;
        let imagenet_cached = self.imagenet_weights.is_some();
        let can_download = self.busy.is_none();
        let weights_source = &self.dirs.weights;
        let form = &mut self.settings.train;
        egui::Grid::new("train_form")
            .num_columns(2)
            .spacing([8.0, 4.0])
            .show(ui, |ui| {
                let label = ui.label("Preset");
                let before = form.preset;
                egui::ComboBox::from_id_salt("preset")
                    .selected_text(match form.preset {
                        Preset::Default => "Default (best)",
                        Preset::Seed => "Seed (tutorial recipe)",
                    })
                    .show_ui(ui, |ui| {
                        ui.selectable_value(&mut form.preset, Preset::Default, "Default (best)");
                        ui.selectable_value(
                            &mut form.preset,
                            Preset::Seed,
                            "Seed (tutorial recipe)",
                        );
                    })
                    .response
                    .labelled_by(label.id);
                if form.preset != before {
                    let weights = form.weights.take();
                    *form = TrainForm::from_preset(form.preset);
                    form.weights = weights;
                }
                ui.end_row();
                let label = ui.label("Time budget");
                ui.horizontal(|ui| {
                    ui.checkbox(&mut form.use_time_budget, "")
                        .labelled_by(label.id);
                    ui.add_enabled(
                        form.use_time_budget,
                        egui::DragValue::new(&mut form.max_seconds)
                            .range(5.0..=86_400.0)
                            .suffix(" s"),
                    )
                    .labelled_by(label.id);
                });
                ui.end_row();
                let label = ui.label("Epochs");
                if form.use_time_budget {
                    // Under a time budget, epochs are only a bound the person chose.
                    ui.horizontal(|ui| {
                        ui.checkbox(&mut form.limit_epochs, "at most")
                            .labelled_by(label.id)
                            .on_hover_text("Off: train until the time budget is spent");
                        ui.add_enabled(
                            form.limit_epochs,
                            egui::DragValue::new(&mut form.epochs).range(1..=10_000),
                        )
                        .labelled_by(label.id);
                    });
                } else {
                    ui.add(egui::DragValue::new(&mut form.epochs).range(1..=10_000))
                        .labelled_by(label.id);
                }
                ui.end_row();
                let label = ui.label("Image size");
                ui.add(
                    egui::DragValue::new(&mut form.image_size_px)
                        .range(32..=512)
                        .suffix(" px"),
                )
                .labelled_by(label.id);
                ui.end_row();
                let label = ui.label("Batch size");
                ui.add(egui::DragValue::new(&mut form.batch_size).range(4..=512))
                    .labelled_by(label.id)
                    .on_hover_text(match form.preset {
                        Preset::Seed => "Triplets per step (three images each)",
                        Preset::Default => "Images per step",
                    });
                ui.end_row();
                let label = ui.label("Learning rate");
                ui.add(
                    egui::DragValue::new(&mut form.lr)
                        .range(1e-6..=1.0)
                        .speed(1e-4)
                        .max_decimals(6),
                )
                .labelled_by(label.id);
                ui.end_row();
                let label = ui.label("Margin");
                ui.add(
                    egui::DragValue::new(&mut form.margin)
                        .range(0.0..=10.0)
                        .speed(0.01),
                )
                .labelled_by(label.id);
                ui.end_row();
                let label = ui.label("Device");
                egui::ComboBox::from_id_salt("device")
                    .selected_text(form.device.label())
                    .show_ui(ui, |ui| {
                        ui.selectable_value(&mut form.device, DeviceChoice::Auto, "auto");
                        ui.selectable_value(&mut form.device, DeviceChoice::Cpu, "cpu");
                        ui.selectable_value(&mut form.device, DeviceChoice::Cuda, "cuda");
                    })
                    .response
                    .labelled_by(label.id);
                ui.end_row();
                ui.label("Start from");
                ui.horizontal(|ui| match &form.weights {
                    Some(path) => {
                        ui.label(
                            path.file_name()
                                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                        );
                        if ui.small_button("Scratch").clicked() {
                            form.weights = None;
                        }
                    }
                    None => {
                        ui.label("scratch");
                        let imagenet = if imagenet_cached {
                            ui.small_button("ImageNet").on_hover_text(
                                "Start from ResNet18 ImageNet weights (downloaded before)",
                            )
                        } else {
                            ui.add_enabled(can_download, egui::Button::new("ImageNet…").small())
                                .on_hover_text(format!(
                                    "Download ResNet18 ImageNet weights (about \
                                     {IMAGENET_RESNET18_APPROX_MB} MB) from {} and start from \
                                     them; they are checked, then kept in {}",
                                    weights_source.url,
                                    weights_source.cache_path.display()
                                ))
                        };
                        imagenet_clicked = imagenet.clicked();
                        if ui
                            .small_button("Weights…")
                            .on_hover_text("torchvision ResNet18 weights (.safetensors)")
                            .clicked()
                        {
                            form.weights = rfd::FileDialog::new()
                                .add_filter("safetensors", &["safetensors"])
                                .pick_file();
                        }
                    }
                });
                ui.end_row();
            });
        if imagenet_clicked {
            self.use_imagenet_weights();
        }
        if let Some((done, total)) = self.weights_download {
            ui.horizontal(|ui| {
                let megabytes = |bytes: u64| bytes as f64 / 1e6;
                let (fraction, text) = match total {
                    Some(total) => (
                        done as f32 / total.max(1) as f32,
                        format!(
                            "Downloading ImageNet weights {:.1}/{:.1} MB",
                            megabytes(done),
                            megabytes(total)
                        ),
                    ),
                    None => (
                        0.0,
                        format!("Downloading ImageNet weights {:.1} MB", megabytes(done)),
                    ),
                };
                ui.add(
                    egui::ProgressBar::new(fraction)
                        .text(text)
                        .desired_width(ui.available_width() - 70.0),
                );
                if ui.button("Cancel").clicked() {
                    self.cancel_weights_download();
                }
            });
        }
    }

    fn training_progress_ui(&mut self, ui: &mut egui::Ui) {
        let view = &self.training;
        let thumbnails = &mut self.thumbnails;
        if let Some((done, total)) = view.preparing {
            ui.add(
                egui::ProgressBar::new(done as f32 / total.max(1) as f32)
                    .text(format!("Loading images {done}/{total}")),
            );
        } else if view.running && view.steps_per_epoch > 0 {
            let by_steps = view.epochs.map_or(0.0, |epochs| {
                view.global_step as f32 / (view.steps_per_epoch * epochs).max(1) as f32
            });
            let fraction = match view.time_budget_secs {
                Some(budget) => by_steps.max((view.elapsed_secs / budget) as f32),
                None => by_steps,
            };
            let epoch = match view.epochs {
                Some(epochs) => format!("Epoch {}/{epochs}", view.epoch),
                None => format!("Epoch {}", view.epoch),
            };
            ui.add(egui::ProgressBar::new(fraction.min(1.0)).text(format!(
                "{epoch} · step {}/{} · {} left",
                view.step,
                view.steps_per_epoch,
                format_secs(view.remaining_secs)
            )));
            ui.label(&view.device);
        } else if view.running {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Starting…");
            });
        }
        if let Some((done, total)) = view.evaluating {
            ui.add(
                egui::ProgressBar::new(done as f32 / total.max(1) as f32)
                    .text("Measuring recall on the validation folder"),
            );
        }
        for note in &view.notes {
            ui.small(note);
        }
        if !view.step_losses.is_empty() {
            Plot::new("loss_plot")
                .height(180.0)
                .legend(Legend::default())
                .x_axis_label("step")
                .y_axis_label("loss")
                .allow_scroll(false)
                .show(ui, |plot| {
                    plot.line(
                        Line::new("step loss", PlotPoints::Borrowed(&view.step_losses))
                            .color(egui::Color32::from_gray(150)),
                    );
                    plot.line(
                        Line::new("epoch mean", PlotPoints::Borrowed(&view.epoch_losses))
                            .width(2.0),
                    );
                    plot.points(
                        Points::new("epoch mean", PlotPoints::Borrowed(&view.epoch_losses))
                            .radius(3.0),
                    );
                    if !view.validation_losses.is_empty() {
                        plot.line(
                            Line::new("validation", PlotPoints::Borrowed(&view.validation_losses))
                                .width(2.0),
                        );
                    }
                });
        }
        if !view.validation_map.is_empty() {
            // Retrieval on the validation folder: the measure the kept epoch is chosen by.
            Plot::new("validation_map_plot")
                .height(120.0)
                .legend(Legend::default())
                .x_axis_label("step")
                .y_axis_label("mAP@R")
                .include_y(0.0)
                .include_y(1.0)
                .allow_scroll(false)
                .show(ui, |plot| {
                    plot.line(
                        Line::new("validation mAP@R", PlotPoints::Borrowed(&view.validation_map))
                            .width(2.0),
                    );
                    plot.points(
                        Points::new("validation mAP@R", PlotPoints::Borrowed(&view.validation_map))
                            .radius(3.0),
                    );
                });
        }
        if let Some(outcome) = &view.outcome {
            ui.label(outcome);
        }
        if let Some(report) = &view.validation {
            ui.label(format!(
                "Validation: recall@1 {:.3} · recall@5 {:.3} · recall@10 {:.3} · mAP@R {:.3}",
                report.recall_at_1, report.recall_at_5, report.recall_at_10, report.map_at_r
            ));
            egui::CollapsingHeader::new("Where the model is confused")
                .id_salt("confusions")
                .show(ui, |ui| {
                    for (class, recall) in &report.per_class_recall_at_1 {
                        ui.label(format!("{class}: recall@1 {recall:.2}"));
                    }
                    for pair in report.confused_pairs.iter().take(5) {
                        ui.label(format!(
                            "{} photos found {} first ({}×)",
                            pair.query_class, pair.retrieved_class, pair.count
                        ));
                    }
                });
            if !report.suspects.is_empty() {
                egui::CollapsingHeader::new(format!(
                    "Check these labels ({})",
                    report.suspects.len()
                ))
                .id_salt("suspects")
                .default_open(true)
                .show(ui, |ui| suspects_ui(ui, thumbnails, &report.suspects));
            }
        }
    }

    fn index_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("Index");
        ui.horizontal(|ui| {
            ui.label("Folder:");
            ui.add(
                egui::TextEdit::singleline(&mut self.index_folder)
                    .desired_width(180.0)
                    .hint_text("folder to index"),
            );
            if ui.small_button("…").clicked()
                && let Some(folder) = rfd::FileDialog::new().pick_folder()
            {
                self.index_folder = folder.display().to_string();
            }
        });
        let can_index =
            self.model.is_some() && self.busy.is_none() && !self.index_folder.trim().is_empty();
        ui.horizontal(|ui| {
            if ui
                .add_enabled(can_index, egui::Button::new("Build index"))
                .on_disabled_hover_text("Needs a model (train or open one) and a folder")
                .clicked()
            {
                self.start_indexing(PathBuf::from(self.index_folder.trim()));
            }
            if self.indexing.is_some() && ui.button("Cancel indexing").clicked() {
                self.worker.cancel();
            }
        });
        if let Some((done, total)) = self.indexing {
            ui.add(
                egui::ProgressBar::new(done as f32 / total.max(1) as f32)
                    .text(format!("Embedding {done}/{total}")),
            );
        }
        if let Some(index) = &self.index {
            ui.label(format!(
                "{} images from {}",
                index.images,
                index.folder.display()
            ));
            if !index.skipped.is_empty() {
                egui::CollapsingHeader::new(format!("{} files skipped", index.skipped.len()))
                    .id_salt("index_skipped")
                    .show(ui, |ui| skipped_list_ui(ui, &index.skipped));
            }
        }
    }

    fn search_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.heading("Search");
            if ui.button("Open photo…").clicked()
                && let Some(path) = rfd::FileDialog::new()
                    .add_filter("Images", crate::engine::data::IMAGE_EXTENSIONS)
                    .pick_file()
            {
                self.search_with(Query::File(path));
            }
            if ui
                .button("Paste")
                .on_hover_text("Search with an image from the clipboard (or press Ctrl+V)")
                .clicked()
            {
                ui.ctx()
                    .send_viewport_cmd(egui::ViewportCommand::RequestPaste);
            }
            ui.add(egui::Slider::new(&mut self.settings.k, 1..=100).text("results"));
            if let Some(search) = &self.search {
                let k = self.settings.k;
                if search.hits.len() != k && ui.button("Refresh").clicked() {
                    let query = search.query.clone();
                    self.send(Command::Search { query, k });
                }
            }
        });
        let Some(search) = &mut self.search else {
            ui.add_space(40.0);
            ui.vertical_centered(|ui| {
                let hint = if self.index.is_some() {
                    "Drop a photo here (or use Open photo… / Paste) to see the most similar photos of the index."
                } else {
                    "Train a model on your library (or open a model and index a folder), then drop a photo here."
                };
                ui.label(egui::RichText::new(hint).size(16.0));
            });
            return;
        };
        ui.horizontal(|ui| {
            if let Some(preview) = &search.preview {
                ui.add(egui::Image::new(preview).max_size(egui::vec2(120.0, 120.0)));
            }
            ui.vertical(|ui| {
                ui.label(egui::RichText::new("Query").strong());
                ui.label(search.query.label());
                ui.label(format!(
                    "{} nearest images, nearest first",
                    search.hits.len()
                ));
                ui.horizontal(|ui| {
                    if ui.small_button("Select all").clicked() {
                        search.selected.fill(true);
                    }
                    if ui.small_button("Select none").clicked() {
                        search.selected.fill(false);
                    }
                });
            });
        });
        let selected = search.selected.iter().filter(|s| **s).count();
        let mut export_to = None;
        if ui
            .add_enabled(
                selected > 0,
                egui::Button::new(format!("Export {selected} selected…")),
            )
            .clicked()
        {
            export_to = rfd::FileDialog::new()
                .set_title("Export results to")
                .pick_folder();
        }
        ui.separator();
        let columns = ((ui.available_width() / CARD_WIDTH).floor() as usize).max(1);
        let rows = search.hits.len().div_ceil(columns);
        let row_height = CARD_IMAGE + 78.0;
        let thumbnails = &mut self.thumbnails;
        egui::ScrollArea::vertical()
            .auto_shrink([false, false])
            .show_rows(ui, row_height, rows, |ui, visible| {
                for row in visible {
                    ui.horizontal(|ui| {
                        for column in 0..columns {
                            let i = row * columns + column;
                            let (Some(hit), Some(selected)) =
                                (search.hits.get(i), search.selected.get_mut(i))
                            else {
                                break;
                            };
                            result_card_ui(ui, thumbnails, hit, selected);
                        }
                    });
                }
            });
        if let Some(folder) = export_to {
            self.export_selected(folder);
        }
    }
}

fn result_card_ui(
    ui: &mut egui::Ui,
    thumbnails: &mut ThumbnailCache,
    hit: &SearchHit,
    selected: &mut bool,
) {
    ui.allocate_ui(egui::vec2(CARD_WIDTH - 8.0, CARD_IMAGE + 72.0), |ui| {
        ui.vertical(|ui| {
            ui.set_width(CARD_WIDTH - 8.0);
            let image_size = egui::vec2(CARD_IMAGE, CARD_IMAGE);
            let response = match thumbnails.get(&hit.path) {
                Thumbnail::Ready(texture) => {
                    let texture = texture.clone();
                    let response = ui.add(
                        egui::Image::new(&texture)
                            .fit_to_exact_size(image_size)
                            .maintain_aspect_ratio(true)
                            .sense(egui::Sense::click()),
                    );
                    response.on_hover_ui(|ui| {
                        ui.add(egui::Image::new(&texture).max_size(egui::vec2(320.0, 320.0)));
                    })
                }
                Thumbnail::Loading => {
                    let (rect, response) = ui.allocate_exact_size(image_size, egui::Sense::click());
                    ui.painter()
                        .rect_filled(rect, 4.0, ui.visuals().faint_bg_color);
                    egui::Spinner::new().paint_at(
                        ui,
                        egui::Rect::from_center_size(rect.center(), egui::vec2(20.0, 20.0)),
                    );
                    response
                }
                Thumbnail::Failed(reason) => {
                    let reason = reason.to_string();
                    let (rect, response) = ui.allocate_exact_size(image_size, egui::Sense::click());
                    ui.painter()
                        .rect_filled(rect, 4.0, ui.visuals().faint_bg_color);
                    ui.painter().text(
                        rect.center(),
                        egui::Align2::CENTER_CENTER,
                        "unreadable",
                        egui::FontId::proportional(12.0),
                        ui.visuals().warn_fg_color,
                    );
                    response.on_hover_text(reason)
                }
            };
            if response.double_clicked() {
                open_in_system(ui.ctx(), &hit.path);
            }
            response.context_menu(|ui| {
                if ui.button("Open").clicked() {
                    open_in_system(ui.ctx(), &hit.path);
                    ui.close();
                }
                if ui.button("Show in folder").clicked() {
                    if let Some(parent) = hit.path.parent() {
                        open_in_system(ui.ctx(), parent);
                    }
                    ui.close();
                }
            });
            ui.horizontal(|ui| {
                ui.checkbox(selected, format!("#{}", hit.rank));
                ui.label(format!("d = {:.3}", hit.distance));
            });
            ui.label(egui::RichText::new(hit.class.as_deref().unwrap_or("—")).strong());
            let name = hit
                .path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            ui.add(egui::Label::new(egui::RichText::new(name).small()).truncate())
                .on_hover_text(hit.path.display().to_string());
            if ui.small_button("Show in folder").clicked()
                && let Some(parent) = hit.path.parent()
            {
                open_in_system(ui.ctx(), parent);
            }
        });
    });
}

/// Photos whose neighbours say another class than their folder, most confident first:
/// the photo, both classes, and ways to open it.
fn suspects_ui(
    ui: &mut egui::Ui,
    thumbnails: &mut ThumbnailCache,
    suspects: &[crate::engine::eval::SuspectImage],
) {
    const ROW_HEIGHT: f32 = 68.0;
    egui::ScrollArea::vertical()
        .max_height(ROW_HEIGHT * 4.0)
        .id_salt("suspects_list")
        .show_rows(ui, ROW_HEIGHT, suspects.len(), |ui, rows| {
            for suspect in &suspects[rows] {
                ui.horizontal(|ui| {
                    let size = egui::vec2(64.0, 64.0);
                    match thumbnails.get(&suspect.path) {
                        Thumbnail::Ready(texture) => {
                            let texture = texture.clone();
                            ui.add(
                                egui::Image::new(&texture)
                                    .fit_to_exact_size(size)
                                    .maintain_aspect_ratio(true),
                            )
                            .on_hover_ui(|ui| {
                                ui.add(
                                    egui::Image::new(&texture).max_size(egui::vec2(320.0, 320.0)),
                                );
                            });
                        }
                        Thumbnail::Loading | Thumbnail::Failed(_) => {
                            let (rect, _) = ui.allocate_exact_size(size, egui::Sense::hover());
                            ui.painter()
                                .rect_filled(rect, 4.0, ui.visuals().faint_bg_color);
                        }
                    }
                    ui.vertical(|ui| {
                        let name = suspect.path.file_name().map_or_else(
                            || suspect.path.display().to_string(),
                            |n| n.to_string_lossy().into_owned(),
                        );
                        ui.add(egui::Label::new(egui::RichText::new(name).strong()).truncate())
                            .on_hover_text(suspect.path.display().to_string());
                        ui.label(format!(
                            "In folder '{}', its neighbours say '{}' ({:.0}% of them)",
                            suspect.class,
                            suspect.neighbours_class,
                            suspect.share * 100.0
                        ));
                        ui.horizontal(|ui| {
                            if ui.small_button("Open").clicked() {
                                open_in_system(ui.ctx(), &suspect.path);
                            }
                            if ui.small_button("Show in folder").clicked()
                                && let Some(parent) = suspect.path.parent()
                            {
                                open_in_system(ui.ctx(), parent);
                            }
                        });
                    });
                });
            }
        });
}

/// Opens a file or folder with the desktop's default application.
fn open_in_system(ctx: &egui::Context, path: &Path) {
    ctx.open_url(egui::OpenUrl::new_tab(format!("file://{}", path.display())));
}

fn skipped_list_ui(ui: &mut egui::Ui, skipped: &[crate::engine::data::SkippedFile]) {
    egui::ScrollArea::vertical()
        .max_height(160.0)
        .id_salt(ui.next_auto_id())
        .show(ui, |ui| {
            for file in skipped {
                ui.small(format!(
                    "{}: {}",
                    file.path.file_name().map_or_else(
                        || file.path.display().to_string(),
                        |n| n.to_string_lossy().into_owned()
                    ),
                    file.reason
                ))
                .on_hover_text(file.path.display().to_string());
            }
        });
}

fn format_secs(secs: f64) -> String {
    let secs = secs.max(0.0).round() as u64;
    if secs >= 3600 {
        format!("{}h {:02}m", secs / 3600, (secs % 3600) / 60)
    } else if secs >= 60 {
        format!("{}m {:02}s", secs / 60, secs % 60)
    } else {
        format!("{secs}s")
    }
}
