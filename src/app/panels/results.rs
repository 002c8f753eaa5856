//! Search: the query, its nearest neighbours as a grid of cards (rank, distance, class,
//! file), selection and export.

use super::Intent;
use crate::app::marks::MarksView;
use crate::app::reducer::plural;
use crate::app::state::{AppState, SearchView};
use crate::app::thumbnails::ThumbnailCache;
use crate::app::widgets::{file_name, format_distance, thumbnail};
use crate::engine::index::SearchHit;
use crate::worker::Query;

const CARD_WIDTH: f32 = 168.0;
const CARD_IMAGE: f32 = 150.0;

/// Whether the results are refined by the query's marks, and the switch between the
/// refined and the original results.
fn refinement_ui(
    ui: &mut egui::Ui,
    search: &SearchView,
    marks: &MarksView,
    show_original: bool,
    intents: &mut Vec<Intent>,
) {
    let Query::File(query) = &search.query else {
        return;
    };
    let marked = marks.all().for_query(query).len();
    ui.horizontal(|ui| {
        if search.refined_by > 0 {
            ui.label(format!(
                "Refined by {} \u{b7}",
                plural(search.refined_by, "mark", "marks")
            ))
            .on_hover_text(
                "Moved toward the photos you marked Alike and away from those marked Not \
                 alike; photos marked Not alike are left out",
            );
            if ui.small_button("Show original").clicked() {
                intents.push(Intent::ShowOriginal);
            }
        } else if show_original && marked > 0 {
            ui.label("Original results \u{b7}");
            if ui
                .small_button(format!("Refine with {}", plural(marked, "mark", "marks")))
                .clicked()
            {
                intents.push(Intent::RefineWithMarks);
            }
        }
    });
}

pub fn results_ui(
    ui: &mut egui::Ui,
    state: &mut AppState,
    thumbnails: &mut ThumbnailCache,
    intents: &mut Vec<Intent>,
) {
    search_bar_ui(ui, state, intents);
    let has_index = state.current.index.is_some();
    let Some(search) = &mut state.search.shown else {
        empty_hint_ui(ui, has_index);
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
            refinement_ui(
                ui,
                search,
                &state.marks,
                state.search.show_original,
                intents,
            );
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
    let limit = state
        .settings
        .limit_distance
        .then_some(state.settings.max_distance);
    let selected = search
        .hits
        .iter()
        .zip(&search.selected)
        .filter(|(hit, selected)| **selected && limit.is_none_or(|l| hit.distance < l))
        .count();
    if ui
        .add_enabled(
            selected > 0,
            egui::Button::new(format!("Export {selected} selected…")),
        )
        .clicked()
    {
        intents.push(Intent::PickExportFolder);
    }
    ui.separator();
    let mut open_preview = None;
    // The results shown: all, or those closer than the limit (hits are nearest first).
    let shown = if state.settings.limit_distance {
        search
            .hits
            .iter()
            .take_while(|hit| hit.distance < state.settings.max_distance)
            .count()
    } else {
        search.hits.len()
    };
    if shown < search.hits.len() {
        ui.label(format!(
            "{shown} of {} results are closer than {}",
            search.hits.len(),
            format_distance(state.settings.max_distance)
        ));
    }
    let columns = ((ui.available_width() / CARD_WIDTH).floor() as usize).max(1);
    let rows = shown.div_ceil(columns);
    let row_height = CARD_IMAGE + 102.0;
    // Marks need the query as a file (a pasted image has no path to remember).
    let query_file = match &search.query {
        crate::worker::Query::File(path) => Some(path.clone()),
        crate::worker::Query::Rgb { .. } => None,
    };
    let marks = &state.marks;
    let mut hovered_card = None;
    egui::ScrollArea::vertical()
        .auto_shrink([false, false])
        .show_rows(ui, row_height, rows, |ui, visible| {
            for row in visible {
                ui.horizontal(|ui| {
                    for column in 0..columns {
                        let i = row * columns + column;
                        if i >= shown {
                            break;
                        }
                        let (Some(hit), Some(selected)) =
                            (search.hits.get(i), search.selected.get_mut(i))
                        else {
                            break;
                        };
                        let mark = query_file.as_ref().and_then(|q| marks.get(q, &hit.path));
                        let card = result_card_ui(
                            ui,
                            thumbnails,
                            hit,
                            selected,
                            (query_file.is_some(), mark),
                            intents,
                        );
                        if card.preview {
                            open_preview = Some(i);
                        }
                        if card.hovered {
                            hovered_card = Some(i);
                        }
                    }
                });
            }
        });
    let hovered = hovered_card
        .and_then(|i| search.hits.get(i))
        .map(|hit| hit.path.clone());
    mark_keys_ui(ui, &state.marks, hovered, query_file.as_deref(), intents);
    if open_preview.is_some() {
        state.search.preview = open_preview;
    }
}

/// Keys on the card under the pointer (`hovered`): A alike, N not alike, U unmark (each a
/// second time takes the mark off); Ctrl+Z undoes the last mark.
fn mark_keys_ui(
    ui: &egui::Ui,
    marks: &crate::app::marks::MarksView,
    hovered: Option<std::path::PathBuf>,
    query_file: Option<&std::path::Path>,
    intents: &mut Vec<Intent>,
) {
    if ui.ctx().egui_wants_keyboard_input() {
        return;
    }
    let (alike, not_alike, unmark, undo) = ui.input(|i| {
        (
            i.key_pressed(egui::Key::A) && i.modifiers.is_none(),
            i.key_pressed(egui::Key::N) && i.modifiers.is_none(),
            i.key_pressed(egui::Key::U) && i.modifiers.is_none(),
            i.key_pressed(egui::Key::Z) && i.modifiers.command,
        )
    });
    if let (Some(photo), Some(query)) = (hovered, query_file) {
        let now = marks.get(query, &photo);
        let wanted = if alike {
            Some((now != Some(true)).then_some(true))
        } else if not_alike {
            Some((now != Some(false)).then_some(false))
        } else if unmark {
            Some(None)
        } else {
            None
        };
        if let Some(alike) = wanted {
            intents.push(Intent::Mark { photo, alike });
        }
    }
    if undo {
        intents.push(Intent::UndoMark);
    }
}

/// What happened to a result card this frame.
struct CardResponse {
    /// Open the large preview (double-click or the context menu).
    preview: bool,
    /// The pointer is over the card (keys A, N and U mark or unmark it).
    hovered: bool,
}

/// One result: thumbnail, rank, distance, class, file and its Alike / Not alike marks
/// (`can_mark`: the query is a file; `mark`: the mark it has).
/// Open photo…, Paste, how many results, and the distance limit.
fn search_bar_ui(ui: &mut egui::Ui, state: &mut AppState, intents: &mut Vec<Intent>) {
    ui.horizontal(|ui| {
        ui.heading("Search");
        if ui.button("Open photo…").clicked() {
            intents.push(Intent::PickQueryFile);
        }
        if ui
            .button("Paste")
            .on_hover_text(
                "Search with the image, or the path of a photo, on the clipboard (Ctrl+V)",
            )
            .clicked()
        {
            intents.push(Intent::Paste);
        }
        ui.separator();
        let label = ui.label("Results:");
        let k = ui
            .add(egui::DragValue::new(&mut state.settings.k).range(1..=500))
            .labelled_by(label.id)
            .on_hover_text("How many nearest photos to show");
        // Searching again once the value settles, not on every step of a drag.
        if (k.changed() && !k.dragged()) || k.drag_stopped() {
            intents.push(Intent::RerunSearch);
        }
        // The control's steps follow the index's own distances (0.002–0.07 for a
        // trained model, far larger for ImageNet features).
        let typical = state
            .current
            .index
            .as_ref()
            .and_then(|i| i.typical_distance)
            .filter(|t| *t > 0.0);
        let settings = &mut state.settings;
        let limit = ui
            .checkbox(&mut settings.limit_distance, "only closer than")
            .on_hover_text(match typical {
                Some(typical) => format!(
                    "Hide results farther from the query than this distance (a photo's \
                     nearest other photo is typically {} away in this index)",
                    format_distance(typical)
                ),
                None => "Hide results farther from the query than this distance".into(),
            });
        let (speed, ceiling) = typical.map_or((0.005, 1000.0), |t| {
            (f64::from(t) / 20.0, f64::from(t) * 100.0)
        });
        ui.add_enabled(
            settings.limit_distance,
            egui::DragValue::new(&mut settings.max_distance)
                .range(0.0..=ceiling)
                .speed(speed)
                .max_decimals(4),
        )
        .labelled_by(limit.id);
    });
}

/// What to do when there are no results yet.
fn empty_hint_ui(ui: &mut egui::Ui, has_index: bool) {
    ui.add_space(40.0);
    ui.vertical_centered(|ui| {
        let hint = if has_index {
            "Drop a photo here (or use Open photo… / Paste) to see the most similar photos of the index."
        } else {
            "Train a model on your library (or open a model and index a folder), then drop a photo here."
        };
        ui.label(egui::RichText::new(hint).size(16.0));
    });
}

fn result_card_ui(
    ui: &mut egui::Ui,
    thumbnails: &mut ThumbnailCache,
    hit: &SearchHit,
    selected: &mut bool,
    (can_mark, mark): (bool, Option<bool>),
    intents: &mut Vec<Intent>,
) -> CardResponse {
    let mut preview = false;
    let card = ui.allocate_ui(egui::vec2(CARD_WIDTH - 8.0, CARD_IMAGE + 96.0), |ui| {
        ui.vertical(|ui| {
            ui.set_width(CARD_WIDTH - 8.0);
            let image_size = egui::vec2(CARD_IMAGE, CARD_IMAGE);
            let response = thumbnail(ui, thumbnails, &hit.path, image_size, egui::Sense::click());
            // Screen readers (and tests) name the photo by its rank and file.
            response.widget_info(|| {
                egui::WidgetInfo::labeled(
                    egui::Role::Image,
                    true,
                    format!("Photo #{}: {}", hit.rank, file_name(&hit.path)),
                )
            });
            if response.double_clicked() {
                preview = true;
            }
            response
                .on_hover_text_at_pointer("Double-click for a large preview")
                .context_menu(|ui| {
                    if ui.button("Preview").clicked() {
                        preview = true;
                        ui.close();
                    }
                    if ui.button("Open in default app").clicked() {
                        intents.push(Intent::Open(hit.path.clone()));
                        ui.close();
                    }
                    if ui.button("Show in folder").clicked() {
                        intents.push(Intent::ShowInFolder(hit.path.clone()));
                        ui.close();
                    }
                });
            ui.horizontal(|ui| {
                ui.checkbox(selected, format!("#{}", hit.rank));
                ui.label(format!("d = {}", format_distance(hit.distance)));
            });
            ui.label(egui::RichText::new(hit.class.as_deref().unwrap_or("—")).strong());
            ui.add(egui::Label::new(egui::RichText::new(file_name(&hit.path)).small()).truncate())
                .on_hover_text(hit.path.display().to_string());
            if ui.small_button("Show in folder").clicked() {
                intents.push(Intent::ShowInFolder(hit.path.clone()));
            }
            ui.add_enabled_ui(can_mark, |ui| {
                ui.horizontal(|ui| {
                    for (label, value, hint) in [
                        ("Alike", true, "Like the query (key A; again to unmark)"),
                        (
                            "Not alike",
                            false,
                            "Not like the query (key N; again to unmark)",
                        ),
                    ] {
                        let on = mark == Some(value);
                        if ui
                            .selectable_label(on, label)
                            .on_hover_text(hint)
                            .on_disabled_hover_text("Marks need a query photo on disk")
                            .clicked()
                        {
                            intents.push(Intent::Mark {
                                photo: hit.path.clone(),
                                alike: (!on).then_some(value),
                            });
                        }
                    }
                });
            });
        });
    });
    CardResponse {
        preview,
        hovered: card.response.contains_pointer(),
    }
}
