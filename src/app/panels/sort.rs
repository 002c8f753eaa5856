//! The Sort tab: choose an inbox of new photos, see them grouped by the library folder
//! suggested for each (sure ones first, the unsure ones apart), change any suggestion,
//! then copy or move them into the library, and undo the last sort.

use super::Intent;
use crate::app::state::AppState;
use crate::app::thumbnails::ThumbnailCache;
use crate::app::widgets::{file_name, thumbnail};
use crate::engine::sort::FileMode;
use crate::worker::JobKind;

/// The choice that leaves a photo in the inbox.
const LEAVE: &str = "Leave in the inbox";

pub fn sort_ui(
    ui: &mut egui::Ui,
    state: &mut AppState,
    thumbnails: &mut ThumbnailCache,
    intents: &mut Vec<Intent>,
) {
    let has_index = state.current.index.is_some();
    let idle = state.is_idle();
    ui.horizontal(|ui| {
        ui.heading("Sort new photos");
        let inbox = state.sort.inbox.as_ref().map_or_else(
            || "no inbox chosen".to_string(),
            |p| p.display().to_string(),
        );
        ui.label(format!("Inbox: {inbox}"));
        if ui
            .add_enabled(idle, egui::Button::new("Choose inbox…"))
            .on_hover_text("The folder of new photos to file (outside the library)")
            .clicked()
        {
            intents.push(Intent::PickInbox);
        }
    });
    ui.horizontal(|ui| {
        let mut percent = state.sort.min_confidence * 100.0;
        ui.label("Sure from");
        if ui
            .add(egui::Slider::new(&mut percent, 0.0..=100.0).suffix(" %"))
            .on_hover_text(
                "Photos less sure than this wait as unsure until you choose a folder for \
                 them. Lower files more photos, and more of them in the wrong folder",
            )
            .changed()
        {
            state.sort.set_min_confidence(percent / 100.0);
        }
        let available = second_opinion_available(state);
        if available == Some(false) && state.sort.second_opinion {
            let before = state.sort.default_level();
            state.sort.second_opinion = false;
            state.sort.asks_switched(before);
        }
        let before = state.sort.default_level();
        let second_opinion = ui
            .add_enabled(
                available != Some(false),
                egui::Checkbox::new(&mut state.sort.second_opinion, "Second opinion"),
            )
            .on_hover_text(
                "Ask the ImageNet network that ships with Likeness too, as the model's \
                 training fitted it to: about twice the photos are sure enough to file, as \
                 often right (sure from 85 % with it files as precisely as 90 % without). \
                 The price: a photo of a kind none of your folders holds is far more often \
                 filed into the nearest folder, so leave it off when the inbox may hold new \
                 kinds of subject, or look for new kinds too. Looking at the inbox takes two \
                 to three times as long",
            )
            .on_disabled_hover_text(
                "The index's model has no second opinion: it is fitted when a model is trained \
             with photos held out (as the window trains), with the ImageNet weights that \
             ship with Likeness. Train the model again to get one",
            );
        let new_kinds = ui
            .checkbox(&mut state.sort.new_kinds, "Look for new kinds")
            .on_hover_text(
                "Look for a group of inbox photos alike each other and unlike every folder \
                 (a kind of subject none of your folders holds): they wait in the inbox, \
                 together, however sure the model is, and a photo near them is less sure \
                 (sure from 5 points lower). Made for an inbox that may hold a new kind; in \
                 one without, part of a batch shot in one place waits too. A sample of the \
                 library (up to 300 photos a folder) is looked at as well",
            );
        if second_opinion.changed() || new_kinds.changed() {
            state.sort.asks_switched(before);
        }
        let planning = state.running(JobKind::PlanSort).is_some();
        if ui
            .add_enabled(
                has_index && idle && state.sort.inbox.is_some() && !planning,
                egui::Button::new("Suggest folders"),
            )
            .on_disabled_hover_text("Index the library and choose an inbox first")
            .clicked()
        {
            intents.push(Intent::PlanSort);
        }
        if state.sort.last_journal.is_some()
            && ui
                .add_enabled(idle, egui::Button::new("Undo last sort"))
                .on_hover_text("Remove the copies, or move the photos back into the inbox")
                .clicked()
        {
            intents.push(Intent::UndoSort);
        }
    });
    if !has_index {
        ui.label(
            "Index your library first: new photos are filed into its class folders, the \
             ones the model was trained on.",
        );
        return;
    }
    if state.sort.plan.is_none() {
        ui.label(
            "Choose an inbox and Suggest folders: each new photo gets the library folder it \
             fits, with how sure; nothing moves until you say so.",
        );
        return;
    }
    plan_ui(ui, state, thumbnails, intents);
}

/// Whether the index's model has a second opinion on its folders: `None` when the window
/// does not know (the current model is not the one the index was made with; the worker
/// then says why it cannot, if it cannot).
fn second_opinion_available(state: &AppState) -> Option<bool> {
    let index = state.current.index.as_ref()?;
    let model = state
        .current
        .model
        .as_ref()
        .filter(|m| m.path == index.model_path)?;
    Some(
        model
            .info
            .classifier
            .as_ref()
            .is_some_and(|c| c.second_opinion.is_some()),
    )
}

/// The suggestions grouped by folder, each with its confidence and a way to change it,
/// then Copy or Move.
fn plan_ui(
    ui: &mut egui::Ui,
    state: &mut AppState,
    thumbnails: &mut ThumbnailCache,
    intents: &mut Vec<Intent>,
) {
    let idle = state.is_idle();
    let view = &mut state.sort;
    let Some(plan) = view.plan.clone() else {
        return;
    };
    let sure = plan
        .suggestions
        .iter()
        .filter(|s| s.unsure.is_none())
        .count();
    ui.label(format!(
        "{} photos: {sure} sure, {} unsure · suggested by {}",
        plan.suggestions.len(),
        plan.suggestions.len() - sure,
        plan.method.describe()
    ));
    ui.label(outlook_line(&plan));
    if let Some(new_kinds) = plan.new_kinds.describe() {
        ui.label(new_kinds);
    }
    let to_file = view.chosen.iter().filter(|c| c.is_some()).count();
    ui.horizontal(|ui| {
        ui.radio_value(&mut view.mode, FileMode::Copy, "Copy")
            .on_hover_text("The inbox stays as it is");
        ui.radio_value(&mut view.mode, FileMode::Move, "Move")
            .on_hover_text("The photos leave the inbox");
        let verb = if view.mode == FileMode::Move {
            "Move"
        } else {
            "Copy"
        };
        if ui
            .add_enabled(
                idle && to_file > 0,
                egui::Button::new(format!("{verb} {to_file} photos into the library")),
            )
            .clicked()
        {
            intents.push(Intent::FileSort);
        }
    });
    ui.separator();
    egui::ScrollArea::vertical()
        .auto_shrink([false, false])
        .show(ui, |ui| {
            // Each folder, then the photos left in the inbox: a new kind's together, then
            // the other unsure ones.
            let groups = plan
                .folders
                .iter()
                .map(|folder| (Some(folder), false))
                .chain([(None, true), (None, false)]);
            for (folder, new_kind) in groups {
                let members: Vec<usize> = (0..plan.suggestions.len())
                    .filter(|&i| view.chosen.get(i).and_then(Option::as_ref) == folder)
                    .filter(|&i| folder.is_some() || plan.suggestions[i].new_kind == new_kind)
                    .collect();
                if members.is_empty() {
                    continue;
                }
                let title = match (folder, new_kind) {
                    (Some(folder), _) => format!("{folder} ({})", members.len()),
                    (None, true) => format!(
                        "A new kind, alike each other and unlike every folder, left in the \
                         inbox ({})",
                        members.len()
                    ),
                    (None, false) => format!("Unsure, left in the inbox ({})", members.len()),
                };
                egui::CollapsingHeader::new(title)
                    .id_salt(("sort_group", folder, new_kind))
                    .default_open(true)
                    .show(ui, |ui| {
                        for i in members {
                            card_ui(ui, &plan, i, &mut view.chosen, thumbnails, intents);
                        }
                    });
            }
        });
}

/// What the chosen level is expected to give, and why nothing is filed when nothing is.
pub fn outlook_line(plan: &crate::engine::sort::SortPlan) -> String {
    let level = plan.min_confidence * 100.0;
    let outlook = plan.outlook(plan.min_confidence);
    let accuracy = outlook.expected_accuracy.unwrap_or(0.0) * 100.0;
    match (outlook.expected_precision, plan.calibrated()) {
        (Some(precision), true) => format!(
            "At {level:.0}%: {} filed, about {:.0}% of them into the right folder (the \
             model's calibrated confidence)",
            outlook.filed,
            precision * 100.0
        ),
        (Some(_), false) => format!(
            "At {level:.0}%: {} filed. These confidences are not calibrated, so how many \
             are right is not known",
            outlook.filed
        ),
        (None, _) if plan.suggestions.is_empty() => String::new(),
        (None, true) => format!(
            "No photo is {level:.0}% sure: the model is right about {accuracy:.0}% of this \
             inbox. Lower the level to file some, or teach it the folders better: more \
             photos in each folder, or a longer training"
        ),
        (None, false) => format!(
            "No photo is {level:.0}% sure (they average {accuracy:.0}%). Lower the level to \
             file some, or teach the model the folders better: more photos in each folder, \
             or a longer training"
        ),
    }
}

/// One photo: its thumbnail, name, what was suggested and how sure, and its folder.
fn card_ui(
    ui: &mut egui::Ui,
    plan: &crate::engine::sort::SortPlan,
    i: usize,
    chosen: &mut [Option<String>],
    thumbnails: &mut ThumbnailCache,
    intents: &mut Vec<Intent>,
) {
    let suggestion = &plan.suggestions[i];
    ui.horizontal(|ui| {
        let photo = thumbnail(
            ui,
            thumbnails,
            &suggestion.photo,
            egui::vec2(72.0, 72.0),
            egui::Sense::click(),
        );
        if photo.double_clicked() {
            intents.push(Intent::Open(suggestion.photo.clone()));
        }
        ui.vertical(|ui| {
            ui.label(egui::RichText::new(file_name(&suggestion.photo)).strong())
                .on_hover_text(suggestion.photo.display().to_string());
            match &suggestion.unsure {
                None => ui.label(format!(
                    "{} · {:.0}% sure",
                    suggestion.best_folder,
                    suggestion.confidence * 100.0
                )),
                Some(why) => ui.label(format!("Unsure: {why}")),
            };
            let Some(current) = chosen.get_mut(i) else {
                return;
            };
            let shown = current.clone().unwrap_or_else(|| LEAVE.to_string());
            egui::ComboBox::new(("sort_choice", i), "Folder")
                .selected_text(shown)
                .show_ui(ui, |ui| {
                    ui.selectable_value(current, None, LEAVE);
                    for folder in &plan.folders {
                        ui.selectable_value(current, Some(folder.clone()), folder);
                    }
                });
        });
    });
}
