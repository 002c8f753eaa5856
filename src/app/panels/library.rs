//! The library: the folder, what its scan found, and the validation folder.

use super::Intent;
use crate::app::state::AppState;
use crate::app::widgets::{file_name, skipped_list};

pub fn library_ui(ui: &mut egui::Ui, state: &mut AppState, intents: &mut Vec<Intent>) {
    ui.heading("Library");
    match (&state.settings.library, &state.library) {
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
                egui::CollapsingHeader::new(format!("{} files skipped", view.folder.skipped.len()))
                    .id_salt("library_skipped")
                    .show(ui, |ui| skipped_list(ui, &view.folder.skipped));
            }
        }
    }
    ui.horizontal(|ui| {
        ui.label("Validation folder:");
        match &state.settings.validation {
            Some(folder) => {
                ui.label(file_name(folder))
                    .on_hover_text(folder.display().to_string());
                if ui.small_button("Clear").clicked() {
                    state.settings.validation = None;
                }
            }
            None => {
                if ui
                    .small_button("Choose…")
                    .on_hover_text(
                        "Held-out photos with the same class folders: validation retrieval after \
                         every epoch (the best epoch is kept) and recall after training",
                    )
                    .clicked()
                {
                    intents.push(Intent::PickValidationFolder);
                }
            }
        }
    });
}
