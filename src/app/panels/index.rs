//! The index: which folder to embed, Build index / Cancel, progress, and what the current
//! index holds.

use std::path::PathBuf;

use super::Intent;
use crate::app::reducer::plural;
use crate::app::state::AppState;
use crate::app::widgets::{progress_bar, skipped_list};
use crate::worker::JobKind;

pub fn index_ui(ui: &mut egui::Ui, state: &mut AppState, intents: &mut Vec<Intent>) {
    ui.heading("Index");
    ui.horizontal(|ui| {
        ui.label("Folder:");
        ui.add(
            egui::TextEdit::singleline(&mut state.library.index_folder)
                .desired_width(180.0)
                .hint_text("folder to index"),
        );
        if ui.small_button("…").clicked() {
            intents.push(Intent::PickIndexFolder);
        }
    });
    ui.horizontal(|ui| {
        let label = ui.label("Exclude:");
        ui.add(
            egui::TextEdit::singleline(&mut state.settings.exclude)
                .desired_width(180.0)
                .hint_text("e.g. Screenshots, *.png, 2019/**"),
        )
        .labelled_by(label.id)
        .on_hover_text(
            "Files and folders to leave out, separated by commas: a pattern without / matches \
             names, one with / paths below the folder; * stays within a name, ** crosses \
             folders. Hidden and system folders are always left out.",
        );
    });
    let can_index = state.current.model.is_some()
        && state.is_idle()
        && !state.library.index_folder.trim().is_empty();
    let indexing = state
        .running(JobKind::BuildIndex)
        .or_else(|| state.running(JobKind::UpdateIndex));
    ui.horizontal(|ui| {
        if ui
            .add_enabled(can_index, egui::Button::new("Build index"))
            .on_disabled_hover_text(
                "Needs a model (train or open one), a folder, and no other job running",
            )
            .clicked()
        {
            intents.push(Intent::StartIndexing(PathBuf::from(
                state.library.index_folder.trim(),
            )));
        }
        if state.current.index.is_some()
            && ui
                .add_enabled(state.is_idle(), egui::Button::new("Update index"))
                .on_hover_text(
                    "Embed only the photos added or changed since the index was built, and \
                     drop deleted ones",
                )
                .clicked()
        {
            intents.push(Intent::UpdateIndex);
        }
        if let Some(activity) = indexing
            && crate::app::widgets::cancel_button(
                ui,
                state.is_cancelling(activity.job),
                "Cancel indexing",
                "Stop after the current batch; the index you had stays open",
            )
        {
            intents.push(Intent::Cancel(activity.job));
        }
    });
    if state.current.model.is_none() {
        ui.horizontal_wrapped(|ui| {
            ui.label("No model yet?");
            if ui
                .add_enabled(state.is_idle(), egui::Button::new("Use ImageNet features"))
                .on_hover_text(if state.shipped_weights.is_some() {
                    "Search without training: embed the library with the ImageNet-pretrained \
                     EfficientNet-Lite0 that ships with Likeness (no download). Training on \
                     class folders teaches Likeness your own notion of alike."
                } else {
                    "Search without training: embed the library with the ImageNet-pretrained \
                     ResNet18 (the shipped EfficientNet-Lite0 weights are missing, so its \
                     weights, about 45 MB, are downloaded and checked the first time). \
                     Training on class folders teaches Likeness your own notion of alike."
                })
                .clicked()
            {
                intents.push(Intent::UseImagenetFeatures);
            }
        });
    }
    if let Some(activity) = indexing {
        progress_bar(
            ui,
            activity.done,
            activity.total,
            format!(
                "Embedding {}/{}",
                activity.done,
                activity.total.unwrap_or_default()
            ),
        );
    }
    if let Some(index) = &state.current.index {
        ui.label(format!(
            "{} images from {}",
            index.images,
            index.folder.display()
        ));
        if index.out_of_date > 0 {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!(
                    "The folder changed since this index was built ({} added, changed or \
                     removed): Update index brings it up to date.",
                    plural(index.out_of_date, "photo", "photos")
                ),
            );
        }
        if !index.skipped.is_empty() {
            egui::CollapsingHeader::new(format!("{} files skipped", index.skipped.len()))
                .id_salt("index_skipped")
                .show(ui, |ui| skipped_list(ui, &index.skipped));
        }
    }
}
