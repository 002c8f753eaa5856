//! Carrying out what the person asked for: the panels' intents (dialogs, jobs, opening
//! files), dropped files and pasted images.

use std::path::PathBuf;
use std::sync::Arc;

use super::desktop::Action;
use super::{Intent, LikenessApp};
use crate::worker::{DuplicateExport, Query, Request};

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
            Intent::LookAtRecentFiles => self.look_at_recent_files(false),
            Intent::PickModelFile => self.pick_model_file(),
            Intent::PickIndexFile => self.pick_index_file(),
            Intent::OpenModel(path) => {
                self.send(Request::OpenModel(path));
            }
            Intent::OpenIndex(path) => {
                self.send(Request::OpenIndex(path));
            }
            Intent::UseModel(path) => self.use_model(path),
            Intent::RerunSearch => self.rerun_search(),
            Intent::ShowOriginal => {
                self.state.search.show_original = true;
                self.refine_on_screen();
            }
            Intent::RefineWithMarks => {
                self.state.search.show_original = false;
                self.refine_on_screen();
            }
            Intent::Mark { photo, alike } => self.mark(photo, alike),
            Intent::UndoMark => self.undo_mark(),
            Intent::RemoveMark(position) => self.remove_mark(position),
            Intent::ExportMarks => self.pick_marks_export(),
            Intent::ImportMarks => self.pick_marks_import(),
            Intent::RetrainWithMarks => self.retrain_with_marks(),
            Intent::DrawMap => {
                let method = self.state.map.method;
                self.send(Request::DrawMap { method });
            }
            Intent::SearchFile(path) => self.search_with(Query::File(path)),
            Intent::PickMapExportFolder => {
                if let Some(folder) = rfd::FileDialog::new()
                    .set_title("Copy the selected photos into a folder")
                    .pick_folder()
                {
                    self.copy_map_selection(folder);
                }
            }
            Intent::FindDuplicates => {
                self.send(Request::FindDuplicates);
            }
            Intent::RemoveOldStates => self.remove_old_states(),
            Intent::PickInbox | Intent::PlanSort | Intent::FileSort | Intent::UndoSort => {
                self.sort_intent(&intent);
            }
            Intent::PickDuplicatesExport(kind) => self.pick_duplicates_export(kind),
            Intent::Paste => {
                ctx.send_viewport_cmd(egui::ViewportCommand::RequestPaste);
                self.state.search.awaiting_paste = Some(ctx.input(|i| i.time));
            }
            Intent::PickValidationFolder => {
                if let Some(folder) = rfd::FileDialog::new().pick_folder() {
                    self.state.settings.validation = Some(folder);
                }
            }
            Intent::StartTraining => self.start_training(),
            Intent::KeepTraining => self.keep_training(),
            Intent::StartFromScratch => {
                self.state.settings.train.weights = None;
                self.state.settings.train.start_chosen = true;
            }
            Intent::Cancel(job) => {
                self.worker.cancel(job);
                if !self.state.jobs.cancelling.contains(&job) {
                    self.state.jobs.cancelling.push(job);
                }
            }
            Intent::PickWeightsFile => {
                if let Some(path) = rfd::FileDialog::new()
                    .add_filter("safetensors", &["safetensors"])
                    .pick_file()
                {
                    self.state.settings.train.weights = Some(path);
                    self.state.settings.train.start_chosen = true;
                }
            }
            Intent::UseImagenetWeights => self.use_imagenet_weights(),
            Intent::PickIndexFolder => {
                if let Some(folder) = rfd::FileDialog::new().pick_folder() {
                    self.state.library.index_folder = folder.display().to_string();
                }
            }
            Intent::StartIndexing(folder) => self.start_indexing(folder),
            Intent::UseImagenetFeatures => self.use_imagenet_features(),
            Intent::UpdateIndex => {
                self.send(Request::UpdateIndex);
            }
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
            Intent::Open(path) => self.launch(ctx, Action::Open, &path),
            Intent::ShowInFolder(path) => self.launch(ctx, Action::ShowInFolder, &path),
        }
    }

    /// Asks for a model file in a dialog (starting in the models folder) and opens it.
    fn pick_model_file(&mut self) {
        if let Some(path) = rfd::FileDialog::new()
            .set_title("Open a Likeness model")
            .set_directory(&self.state.dirs.models)
            .add_filter("Likeness model", &["safetensors"])
            .pick_file()
        {
            self.send(Request::OpenModel(path));
        }
    }

    /// Asks for an index file in a dialog (starting in the indexes folder) and opens it.
    fn pick_index_file(&mut self) {
        if let Some(path) = rfd::FileDialog::new()
            .set_title("Open a Likeness index")
            .set_directory(&self.state.dirs.indexes)
            .add_filter("Likeness index", &["likeness-index"])
            .pick_file()
        {
            self.send(Request::OpenIndex(path));
        }
    }

    /// Asks where to export the marks, then writes them.
    fn pick_marks_export(&mut self) {
        if let Some(path) = rfd::FileDialog::new()
            .set_title("Export your marks")
            .set_file_name("likeness-marks.json")
            .add_filter("JSON", &["json"])
            .save_file()
        {
            self.export_marks(&path);
        }
    }

    /// Asks for a marks file to import, then imports it.
    fn pick_marks_import(&mut self) {
        if let Some(path) = rfd::FileDialog::new()
            .set_title("Import marks")
            .add_filter("JSON", &["json"])
            .pick_file()
        {
            self.import_marks(&path);
        }
    }

    /// Removes the training states of the models other than the current one.
    fn remove_old_states(&mut self) {
        let keep: Vec<std::path::PathBuf> = self
            .state
            .current
            .model
            .iter()
            .map(|m| m.path.clone())
            .collect();
        self.send(Request::RemoveOldStates {
            folder: self.state.dirs.models.clone(),
            keep,
        });
    }

    /// Asks where the duplicates not kept go (a list or a folder), then writes them.
    fn pick_duplicates_export(&mut self, kind: super::panels::duplicates::ExportKind) {
        use super::panels::duplicates::ExportKind;
        let mut dialog = rfd::FileDialog::new();
        // Beside the library, not inside one of its class folders (where the
        // first photo happens to be): a list is not a photo of the library.
        if let Some(folder) = self
            .state
            .current
            .index
            .as_ref()
            .map(|index| index.folder.parent().unwrap_or(&index.folder))
        {
            dialog = dialog.set_directory(folder);
        }
        let to = match kind {
            ExportKind::Csv => dialog
                .set_title("Save the list of duplicates not kept")
                .set_file_name("duplicates.csv")
                .add_filter("CSV", &["csv"])
                .save_file()
                .map(DuplicateExport::Csv),
            ExportKind::Json => dialog
                .set_title("Save the list of duplicates not kept")
                .set_file_name("duplicates.json")
                .add_filter("JSON", &["json"])
                .save_file()
                .map(DuplicateExport::Json),
            ExportKind::CopyToFolder => dialog
                .set_title("Copy the duplicates not kept into a folder")
                .pick_folder()
                .map(DuplicateExport::CopyTo),
        };
        if let Some(to) = to {
            self.export_duplicates(to);
        }
    }

    /// Takes dropped files: a folder becomes the library, an index or model file is
    /// opened, and anything else is searched as a photo.
    pub fn handle_drops(&mut self, ctx: &egui::Context) {
        let dropped = ctx.input_mut(|i| std::mem::take(&mut i.raw.dropped_files));
        for file in dropped {
            let path = file.path().to_path_buf();
            let extension = path
                .extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase());
            if path.is_dir() {
                self.choose_library(path);
            } else if extension.as_deref() == Some("likeness-index") {
                self.send(Request::OpenIndex(path));
            } else if extension.as_deref() == Some("safetensors") {
                self.send(Request::OpenModel(path));
            } else {
                self.search_with(Query::File(path));
            }
        }
    }

    /// Takes what was pasted (Ctrl+V or the Paste button): an image is searched, a path
    /// to a photo is searched, and anything else gets a message saying why nothing
    /// happened.
    pub(super) fn handle_paste(&mut self, ctx: &egui::Context) {
        // A text field being edited takes its own pastes.
        if ctx.egui_wants_keyboard_input() {
            self.state.search.awaiting_paste = None;
            return;
        }
        let (pasted, shortcut, now): (Vec<egui::Event>, bool, f64) = ctx.input(|i| {
            let pasted = i
                .events
                .iter()
                .filter(|e| matches!(e, egui::Event::PasteImage(_) | egui::Event::Paste(_)))
                .cloned()
                .collect();
            let shortcut = i.events.iter().any(|e| {
                matches!(e, egui::Event::Key { key: egui::Key::V, pressed: true, modifiers, .. }
                    if modifiers.command)
            });
            (pasted, shortcut, i.time)
        });
        if !pasted.is_empty() {
            self.state.search.awaiting_paste = None;
        } else if shortcut && self.state.search.awaiting_paste.is_none() {
            // The platform sends nothing at all when the clipboard is empty.
            self.state.search.awaiting_paste = Some(now);
        }
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
                egui::Event::Paste(text) => match pasted_path(&text) {
                    Some(path) => self.search_with(Query::File(path)),
                    None => self.state.error(format!(
                        "The clipboard holds no image or image path (it holds the text \"{}\").",
                        shorten(text.trim(), 80)
                    )),
                },
                _ => {}
            }
        }
        if let Some(asked) = self.state.search.awaiting_paste {
            if now - asked > PASTE_WAIT_SECS {
                self.state.search.awaiting_paste = None;
                self.state
                    .error("The clipboard holds no image or image path.");
            } else {
                ctx.request_repaint_after(std::time::Duration::from_secs_f64(PASTE_WAIT_SECS));
            }
        }
    }

    /// The Sort tab's requests: choose an inbox, suggest folders, file, undo.
    fn sort_intent(&mut self, intent: &Intent) {
        match intent {
            Intent::PickInbox => {
                if let Some(folder) = rfd::FileDialog::new()
                    .set_title("Choose the folder of new photos to sort")
                    .pick_folder()
                {
                    self.state.sort.inbox = Some(folder);
                    self.state.sort.plan = None;
                }
            }
            Intent::PlanSort => {
                if let Some(inbox) = self.state.sort.inbox.clone() {
                    let min_confidence = self.state.sort.min_confidence;
                    self.send(Request::PlanSort {
                        inbox,
                        min_confidence,
                        second_opinion: self.state.sort.second_opinion,
                        new_kinds: self.state.sort.new_kinds,
                    });
                }
            }
            Intent::FileSort => {
                let choices = self.state.sort.choices();
                let Some(plan) = self.state.sort.plan.clone() else {
                    return;
                };
                if choices.is_empty() {
                    return;
                }
                let mode = self.state.sort.mode;
                let journals = self.state.dirs.sort_journals.clone();
                self.send(Request::FileSort {
                    inbox: plan.inbox.clone(),
                    choices,
                    mode,
                    journals,
                });
            }
            Intent::UndoSort => {
                if let Some(journal) = self.state.sort.last_journal.clone() {
                    self.send(Request::UndoSort { journal });
                }
            }
            _ => {}
        }
    }
}

/// How long after Paste the clipboard's content may take to arrive.
const PASTE_WAIT_SECS: f64 = 0.5;

/// The path in pasted text: a plain path or a `file://` URI (file managers copy files as
/// either; the first line counts when several files were copied).
pub fn pasted_path(text: &str) -> Option<PathBuf> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let path = match line.strip_prefix("file://") {
        Some(uri) => PathBuf::from(percent_decode(uri)),
        None => PathBuf::from(line),
    };
    path.is_absolute().then_some(path)
}

/// `%20` → space, and so on (file:// URIs escape what a URI cannot hold).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((high * 16 + low) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn shorten(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max_chars).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasted_paths_and_uris_are_understood_and_other_text_is_not() {
        assert_eq!(
            pasted_path("file:///photos/a%20b/rose.jpg\nfile:///photos/other.jpg"),
            Some(PathBuf::from("/photos/a b/rose.jpg"))
        );
        assert_eq!(
            pasted_path("  /photos/rose.jpg \n"),
            Some(PathBuf::from("/photos/rose.jpg"))
        );
        assert_eq!(pasted_path("hello world"), None);
        assert_eq!(pasted_path(""), None);
        assert_eq!(percent_decode("100%"), "100%");
    }
}
