//! The toolbar: the library folder (dialog, recent libraries, models and indexes),
//! opening a model or an index.

use std::collections::HashMap;
use std::path::PathBuf;

use super::Intent;
use crate::app::recent::{RecentFile, file_name_of};
use crate::app::state::AppState;

pub fn toolbar_ui(ui: &mut egui::Ui, state: &AppState, intents: &mut Vec<Intent>) {
    ui.horizontal(|ui| {
        ui.heading("Likeness");
        ui.separator();
        if ui
            .button("Choose library…")
            .on_hover_text("A folder of photos; one sub-folder per class to train")
            .clicked()
        {
            intents.push(Intent::PickLibrary);
        }
        let settings = &state.settings;
        let anything_recent = !(settings.recent_folders.is_empty()
            && settings.recent_models.is_empty()
            && settings.recent_indexes.is_empty());
        ui.add_enabled_ui(anything_recent, |ui| {
            let menu = ui.menu_button("Recent", |ui| {
                let recent = &state.recent_files;
                let sections = [
                    (
                        "Libraries",
                        &settings.recent_folders,
                        Intent::ChooseLibrary as fn(_) -> _,
                    ),
                    ("Models", &settings.recent_models, Intent::OpenModel),
                    ("Indexes", &settings.recent_indexes, Intent::OpenIndex),
                ];
                for (heading, paths, intent) in sections {
                    recent_section(ui, heading, paths, recent, intent, intents);
                }
            });
            if menu.inner.is_some() {
                intents.push(Intent::LookAtRecentFiles);
            }
        });
        if ui
            .button("Open model…")
            .on_hover_text(format!(
                "Models you trained are in {}",
                state.dirs.models.display()
            ))
            .clicked()
        {
            intents.push(Intent::PickModelFile);
        }
        if ui
            .button("Open index…")
            .on_hover_text(format!(
                "Indexes you built are in {}",
                state.dirs.indexes.display()
            ))
            .clicked()
        {
            intents.push(Intent::PickIndexFile);
        }
    });
}

/// One list of the Recent menu: a heading and an entry per path (missing files greyed),
/// named the way a person recognises it (the full path on hover). Names and presence are
/// worked out on the window's disk thread ([`crate::app::recent`]) when the menu opens; a
/// path not described yet shows its file name.
fn recent_section(
    ui: &mut egui::Ui,
    heading: &str,
    paths: &[PathBuf],
    recent: &HashMap<PathBuf, RecentFile>,
    intent: impl Fn(PathBuf) -> Intent,
    intents: &mut Vec<Intent>,
) {
    if paths.is_empty() {
        return;
    }
    ui.label(egui::RichText::new(heading).strong());
    for path in paths {
        let (name, exists) = recent.get(path).map_or_else(
            || (file_name_of(path), true),
            |file| (file.name.clone(), file.exists),
        );
        let button = ui
            .add_enabled(exists, egui::Button::new(name))
            .on_hover_text(path.display().to_string())
            .on_disabled_hover_text(format!("{} no longer exists", path.display()));
        if button.clicked() {
            intents.push(intent(path.clone()));
            ui.close();
        }
    }
    ui.separator();
}
