//! The library: the folder, what its scan found, and the validation folder.

use super::Intent;
use crate::app::reducer::plural;
use crate::app::state::{AppState, LibraryView};
use crate::app::widgets::{busy_label, file_name, skipped_list};

pub fn library_ui(ui: &mut egui::Ui, state: &mut AppState, intents: &mut Vec<Intent>) {
    ui.heading("Library");
    match (&state.settings.library, &state.library.scanned) {
        (None, _) => {
            ui.label("Choose a folder of photos (or drop one here). To train, give it one sub-folder per class, e.g. flowers/daisy, flowers/rose.");
        }
        (Some(folder), None) => {
            ui.label(folder.display().to_string());
            match &state.library.error {
                Some(error) => {
                    ui.colored_label(
                        ui.visuals().error_fg_color,
                        format!("This folder cannot be used: {error}"),
                    );
                }
                None => {
                    ui.horizontal(|ui| busy_label(ui, "Scanning…"));
                }
            }
        }
        (Some(folder), Some(view)) => {
            ui.label(folder.display().to_string());
            library_summary_ui(ui, view);
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
                         every epoch (the best epoch is kept) and recall after training. \
                         Without one, a tenth of each class is held out instead.",
                    )
                    .clicked()
                {
                    intents.push(Intent::PickValidationFolder);
                }
            }
        }
    });
}

/// What the scan found, counted as training counts it: photos per class folder, photos
/// directly in the folder (no class: indexed, not trained on), files skipped and why.
fn library_summary_ui(ui: &mut egui::Ui, view: &LibraryView) {
    let photos = view.folder.images.len();
    let skipped = view.folder.skipped.len();
    if photos == 0 {
        ui.colored_label(
            ui.visuals().warn_fg_color,
            if skipped == 0 {
                "No photos found in this folder.".to_string()
            } else {
                format!(
                    "No usable photos in this folder: {} (see below).",
                    plural(skipped, "file was skipped", "files were skipped")
                )
            },
        );
    } else {
        let in_classes = photos - view.unclassified.len();
        ui.label(format!(
            "{} in {}",
            plural(in_classes, "photo", "photos"),
            plural(view.class_count(), "class", "classes")
        ));
    }
    if !view.classes.is_empty() {
        egui::CollapsingHeader::new("Classes")
            .id_salt("library_classes")
            .default_open(view.classes.len() <= 12)
            .show(ui, |ui| {
                egui::ScrollArea::vertical()
                    .max_height(180.0)
                    .id_salt("library_classes_list")
                    .show(ui, |ui| {
                        egui::Grid::new("library_class_counts")
                            .num_columns(2)
                            .striped(true)
                            .show(ui, |ui| {
                                for (class, count) in &view.classes {
                                    ui.label(class);
                                    ui.label(plural(*count, "photo", "photos"));
                                    ui.end_row();
                                }
                            });
                    });
            });
    }
    if !view.unclassified.is_empty() {
        egui::CollapsingHeader::new(format!(
            "{} in no class folder",
            plural(view.unclassified.len(), "photo", "photos")
        ))
        .id_salt("library_unclassified")
        .show(ui, |ui| {
            ui.small("Directly in the library folder: indexed and searchable, but training leaves them out.");
            egui::ScrollArea::vertical()
                .max_height(120.0)
                .id_salt("library_unclassified_list")
                .show(ui, |ui| {
                    for path in &view.unclassified {
                        ui.small(file_name(path))
                            .on_hover_text(path.display().to_string());
                    }
                });
        });
    }
    if photos > 0 && view.class_count() < 2 {
        ui.colored_label(
            ui.visuals().warn_fg_color,
            "Training needs at least two class sub-folders; these photos can still be searched: \
             Use ImageNet features (Index section) or open a model.",
        );
    }
    if skipped > 0 {
        egui::CollapsingHeader::new(plural(skipped, "file skipped", "files skipped"))
            .id_salt("library_skipped")
            .show(ui, |ui| skipped_list(ui, &view.folder.skipped));
    }
}
