//! Carrying out what the person asked for: the panels' intents (dialogs, jobs, opening
//! files), dropped files and pasted images.

use std::path::PathBuf;
use std::sync::Arc;

use super::{Intent, LikenessApp, open_in_system};
use crate::worker::{Query, Request};

impl LikenessApp {
    /// Carries out what the panels asked for this frame.
    pub fn carry_out(&mut self, ctx: &egui::Context, intent: Intent) {
        match intent {
            Intent::PickLibrary => {
                if let Some(folder) = rfd::FileDialog::new()
                    .set_title("Choose the library folder")
                    .pick_folder()
                {
                    self.choose_library(folder);
                }
            }
            Intent::ChooseLibrary(folder) => self.choose_library(folder),
            Intent::PickModelFile => {
                if let Some(path) = rfd::FileDialog::new()
                    .add_filter("Likeness model", &["safetensors"])
                    .pick_file()
                {
                    self.send(Request::OpenModel(path));
                }
            }
            Intent::PickIndexFile => {
                if let Some(path) = rfd::FileDialog::new()
                    .add_filter("Likeness index", &["likeness-index"])
                    .pick_file()
                {
                    self.send(Request::OpenIndex(path));
                }
            }
            Intent::PickValidationFolder => {
                if let Some(folder) = rfd::FileDialog::new().pick_folder() {
                    self.settings.validation = Some(folder);
                }
            }
            Intent::StartTraining => self.start_training(),
            Intent::Cancel(job) => self.worker.cancel(job),
            Intent::PickWeightsFile => {
                if let Some(path) = rfd::FileDialog::new()
                    .add_filter("safetensors", &["safetensors"])
                    .pick_file()
                {
                    self.settings.train.weights = Some(path);
                }
            }
            Intent::UseImagenetWeights => self.use_imagenet_weights(),
            Intent::PickIndexFolder => {
                if let Some(folder) = rfd::FileDialog::new().pick_folder() {
                    self.index_folder = folder.display().to_string();
                }
            }
            Intent::StartIndexing(folder) => self.start_indexing(folder),
            Intent::PickQueryFile => {
                if let Some(path) = rfd::FileDialog::new()
                    .add_filter("Images", crate::engine::data::IMAGE_EXTENSIONS)
                    .pick_file()
                {
                    self.search_with(Query::File(path));
                }
            }
            Intent::PickExportFolder => {
                if let Some(folder) = rfd::FileDialog::new()
                    .set_title("Export results to")
                    .pick_folder()
                {
                    self.export_selected(folder);
                }
            }
            Intent::Open(path) => open_in_system(ctx, &path),
        }
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

    pub(super) fn handle_paste(&mut self, ctx: &egui::Context) {
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
