//! The toolbar: the library folder (dialog, recent folders), opening a model or an index.

use super::Intent;
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
        let recent = &state.settings.recent_folders;
        ui.add_enabled_ui(!recent.is_empty(), |ui| {
            ui.menu_button("Recent", |ui| {
                for folder in recent {
                    if ui.button(folder.display().to_string()).clicked() {
                        intents.push(Intent::ChooseLibrary(folder.clone()));
                        ui.close();
                    }
                }
            });
        });
        if ui.button("Open model…").clicked() {
            intents.push(Intent::PickModelFile);
        }
        if ui.button("Open index…").clicked() {
            intents.push(Intent::PickIndexFile);
        }
    });
}
