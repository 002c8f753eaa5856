//! The Map view: the current index's photos on a plane (UMAP, drawn as it forms, or PCA
//! of their embeddings), coloured by class folder with a legend. Hovering shows a photo, clicking searches with
//! it, a box selection can be copied out, the query on screen and its results are marked,
//! and photos whose neighbours say another class are ringed.

use egui_plot::{Legend, MarkerShape, Plot, PlotPoint, PlotPoints, PlotTransform, Points, Polygon};

use super::Intent;
use crate::app::state::{AppState, MapView};
use crate::app::thumbnails::ThumbnailCache;
use crate::app::widgets::{file_name, thumbnail};
use crate::engine::projection::{EmbeddingMap, MapMethod};
use crate::engine::train::BeforeAfter;
use crate::worker::JobKind;

/// How near (in points) the pointer must be to a photo to pick it.
const PICK_RADIUS: f32 = 8.0;

pub fn map_ui(
    ui: &mut egui::Ui,
    state: &mut AppState,
    thumbnails: &mut ThumbnailCache,
    intents: &mut Vec<Intent>,
) {
    if before_after_chosen_ui(ui, state, thumbnails) {
        return;
    }
    let has_index = state.current.index.is_some();
    let drawing = state.running(JobKind::DrawMap).map(|a| a.job);
    ui.horizontal(|ui| {
        ui.heading("Embedding map");
        ui.add_enabled_ui(drawing.is_none(), |ui| {
            egui::ComboBox::from_id_salt("map_method")
                .selected_text(state.map.method.label())
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut state.map.method, MapMethod::Umap, "UMAP")
                        .on_hover_text(
                            "Each photo's nearest photos stay near it: neighbourhoods and \
                             classes show; distances between far groups mean little",
                        );
                    ui.selectable_value(&mut state.map.method, MapMethod::Pca, "PCA")
                        .on_hover_text(
                            "The two directions the embeddings vary most along: instant and \
                             linear, but neighbourhoods overlap",
                        );
                })
                .response
                .on_hover_text("How the photos are placed");
        });
        let label = if state.map.shown.is_some() {
            "Draw again"
        } else {
            "Draw map"
        };
        if ui
            .add_enabled(has_index && drawing.is_none(), egui::Button::new(label))
            .on_hover_text(format!(
                "Place every photo of the current index on a plane ({})",
                state.map.method.label()
            ))
            .on_disabled_hover_text("Index a folder first")
            .clicked()
        {
            intents.push(Intent::DrawMap);
        }
        if let Some(job) = drawing
            && crate::app::widgets::cancel_button(
                ui,
                state.is_cancelling(job),
                "Cancel",
                "Stop laying out; the map you had is shown again",
            )
        {
            intents.push(Intent::Cancel(job));
        }
        if let Some((epoch, epochs)) = state.map.forming {
            ui.label(format!("Forming… epoch {epoch} of {epochs}"));
        }
    });
    let query = state.search.shown.as_ref().map(|s| {
        (
            s.vector.clone(),
            s.hits.iter().map(|h| h.path.clone()).collect::<Vec<_>>(),
        )
    });
    let Some(view) = &mut state.map.shown else {
        empty_hint_ui(ui, has_index);
        return;
    };
    let map = view.map.clone();
    map_controls_ui(ui, view, intents);
    let mut plot = Plot::new("embedding_map")
        .legend(Legend::default().follow_insertion_order(true))
        .show_axes([false, false])
        .show_grid(false)
        .data_aspect(1.0)
        .allow_double_click_reset(true);
    if view.box_select {
        plot = plot.allow_drag(false).allow_boxed_zoom(false);
    }
    let response = plot.show(ui, |plot_ui| {
        class_points(plot_ui, &map);
        let marked = |positions: &mut dyn Iterator<Item = usize>| -> Vec<PlotPoint> {
            positions
                .map(|i| PlotPoint::new(map.points[i][0], map.points[i][1]))
                .collect()
        };
        if !map.suspects.is_empty() {
            plot_ui.points(
                Points::new(
                    "likely mislabelled",
                    PlotPoints::Owned(marked(&mut map.suspects.iter().copied())),
                )
                .shape(MarkerShape::Circle)
                .filled(false)
                .radius(5.0)
                .color(egui::Color32::from_rgb(220, 30, 30)),
            );
        }
        if !view.selected.is_empty() {
            plot_ui.points(
                Points::new(
                    "selected",
                    PlotPoints::Owned(marked(&mut view.selected.iter().copied())),
                )
                .radius(3.5)
                .color(egui::Color32::WHITE),
            );
        }
        if let Some((vector, hits)) = &query {
            let found: Vec<usize> = hits
                .iter()
                .filter_map(|p| view.position.get(p).copied())
                .collect();
            if !found.is_empty() {
                plot_ui.points(
                    Points::new("results", PlotPoints::Owned(marked(&mut found.into_iter())))
                        .shape(MarkerShape::Square)
                        .filled(false)
                        .radius(5.0)
                        .color(egui::Color32::YELLOW),
                );
            }
            if vector.len() == map.dimension() {
                let [x, y] = map.project(vector);
                plot_ui.points(
                    Points::new("query", PlotPoints::Owned(vec![PlotPoint::new(x, y)]))
                        .shape(MarkerShape::Diamond)
                        .radius(8.0)
                        .color(egui::Color32::YELLOW),
                );
            }
        }
        if view.box_select {
            let pointer = plot_ui.pointer_coordinate();
            let dragging = plot_ui.response().dragged();
            if plot_ui.response().drag_started() {
                view.box_start = pointer.map(|p| [p.x as f32, p.y as f32]);
            }
            if let (Some(start), Some(now)) = (view.box_start, pointer)
                && dragging
            {
                let (x0, y0, x1, y1) = (start[0] as f64, start[1] as f64, now.x, now.y);
                plot_ui.polygon(
                    Polygon::new(
                        "selection",
                        PlotPoints::Owned(vec![
                            PlotPoint::new(x0, y0),
                            PlotPoint::new(x1, y0),
                            PlotPoint::new(x1, y1),
                            PlotPoint::new(x0, y1),
                        ]),
                    )
                    .fill_color(egui::Color32::from_white_alpha(30)),
                );
            }
            if plot_ui.response().drag_stopped()
                && let (Some(start), Some(end)) = (view.box_start.take(), pointer)
            {
                view.selected = map.inside(start, [end.x as f32, end.y as f32]);
            }
        }
    });
    view.last_transform = Some(response.transform);
    // The photo under the pointer: its thumbnail on hover, a search on click.
    let hovered = response
        .response
        .hover_pos()
        .and_then(|pointer| nearest(&map, &response.transform, pointer));
    if let Some(i) = hovered {
        hover_ui(&response.response, &map, i, thumbnails);
        if response.response.clicked() {
            intents.push(Intent::SearchFile(map.paths[i].clone()));
        }
    }
}

/// After a run with validation photos: the choice between this index's map and the
/// validation photos before and after training; draws the latter and returns true when
/// it is chosen.
fn before_after_chosen_ui(
    ui: &mut egui::Ui,
    state: &mut AppState,
    thumbnails: &mut ThumbnailCache,
) -> bool {
    let Some(before_after) = state.training.before_after.clone() else {
        return false;
    };
    ui.horizontal(|ui| {
        ui.selectable_value(&mut state.map.before_after, false, "This index");
        ui.selectable_value(
            &mut state.map.before_after,
            true,
            "Before and after training",
        );
    });
    if state.map.before_after {
        before_after_ui(ui, &before_after, thumbnails);
    }
    state.map.before_after
}

/// What the map is, before it is drawn.
fn empty_hint_ui(ui: &mut egui::Ui, has_index: bool) {
    ui.add_space(40.0);
    ui.vertical_centered(|ui| {
        let hint = if has_index {
            "Draw map places the photos of the index on a plane: photos the model finds \
             alike land close together. Colours are class folders; ringed photos look \
             mislabelled (their neighbours say another class)."
        } else {
            "Index a folder first; then Draw map shows how the model arranges it."
        };
        ui.label(egui::RichText::new(hint).size(16.0));
    });
}

/// The map's figures, Box select, and what to do with a selection.
fn map_controls_ui(ui: &mut egui::Ui, view: &mut MapView, intents: &mut Vec<Intent>) {
    let map = &view.map;
    ui.horizontal(|ui| {
        let placed = map.describe_placement();
        ui.label(format!(
            "{} photos · {} · {placed} · {} likely mislabelled",
            map.len(),
            match map.class_names.len() {
                0 => "no class folders".to_string(),
                1 => "1 class".to_string(),
                n => format!("{n} classes"),
            },
            map.suspects.len()
        ));
    });
    ui.horizontal(|ui| {
        ui.toggle_value(&mut view.box_select, "Box select")
            .on_hover_text("Drag a box over the map to select the photos in it");
        if !view.selected.is_empty() {
            ui.label(format!("{} selected", view.selected.len()));
            if ui.button("Copy selected to a folder…").clicked() {
                intents.push(Intent::PickMapExportFolder);
            }
            if ui.small_button("Clear").clicked() {
                view.selected.clear();
            }
        }
        ui.label(if view.box_select {
            "Drag to select · click a photo to search with it"
        } else {
            "Drag to move, scroll to zoom · click a photo to search with it"
        });
    });
}

/// One point series per class (named for the legend), in the class colours.
fn class_points(plot_ui: &mut egui_plot::PlotUi<'_>, map: &EmbeddingMap) {
    let mut by_class: Vec<Vec<PlotPoint>> = vec![Vec::new(); map.class_names.len() + 1];
    for (i, &[x, y]) in map.points.iter().enumerate() {
        let slot = map.classes[i].unwrap_or(map.class_names.len());
        by_class[slot].push(PlotPoint::new(x, y));
    }
    for (slot, points) in by_class.into_iter().enumerate() {
        if points.is_empty() {
            continue;
        }
        let (name, colour) = match map.class_names.get(slot) {
            Some(name) => (name.clone(), map.colour(Some(slot))),
            None => ("no class".to_string(), map.colour(None)),
        };
        plot_ui.points(
            Points::new(name, PlotPoints::Owned(points))
                .color(egui::Color32::from_rgb(colour[0], colour[1], colour[2]))
                .radius(2.0),
        );
    }
}

/// The thumbnail, name and class of photo `i` next to the pointer.
fn hover_ui(
    response: &egui::Response,
    map: &EmbeddingMap,
    i: usize,
    thumbnails: &mut ThumbnailCache,
) {
    let path = &map.paths[i];
    let class = map.classes[i].map_or("no class", |c| map.class_names[c].as_str());
    let suspect = map.suspects.contains(&i);
    response.clone().on_hover_ui_at_pointer(|ui| {
        thumbnail(
            ui,
            thumbnails,
            path,
            egui::vec2(160.0, 160.0),
            egui::Sense::hover(),
        );
        ui.label(file_name(path));
        ui.label(if suspect {
            format!("{class} · its neighbours say another class")
        } else {
            class.to_string()
        });
    });
}

/// The validation photos under the model training started from and under the trained
/// one, side by side, each with its recall@1 and mAP@R.
fn before_after_ui(ui: &mut egui::Ui, pictures: &BeforeAfter, thumbnails: &mut ThumbnailCache) {
    ui.label(format!(
        "The {} validation photos as the model placed them before the first step and after \
         the last: photos of one class should gather, and classes part.",
        pictures.after.map.len()
    ));
    // The photo under the pointer on either side is ringed on both: where one photo went
    // is the point of the picture. (Remembered from the last frame: the second plot is
    // drawn after the first.)
    let ctx = ui.ctx().clone();
    let memory = egui::Id::unique("before_after_hovered");
    let highlighted: Option<usize> = ctx.data(|d| d.get_temp::<Option<usize>>(memory)).flatten();
    let mut hovered_now = None;
    ui.columns(2, |columns| {
        for (ui, (title, picture)) in columns.iter_mut().zip([
            ("Before training", &pictures.before),
            ("After training", &pictures.after),
        ]) {
            ui.label(egui::RichText::new(title).strong());
            ui.label(format!(
                "recall@1 {:.2} · mAP@R {:.3}",
                picture.recall_at_1, picture.map_at_r
            ));
            let response = Plot::new(("training_map", title))
                .legend(Legend::default().follow_insertion_order(true))
                .show_axes([false, false])
                .show_grid(false)
                .data_aspect(1.0)
                .show(ui, |plot_ui| {
                    class_points(plot_ui, &picture.map);
                    if let Some(&[x, y]) = highlighted.and_then(|i| picture.map.points.get(i)) {
                        // Unnamed: a ring, not a legend entry.
                        plot_ui.points(
                            Points::new("", PlotPoints::Owned(vec![PlotPoint::new(x, y)]))
                                .radius(8.0)
                                .filled(false)
                                .color(egui::Color32::WHITE),
                        );
                    }
                });
            if let Some(i) = response
                .response
                .hover_pos()
                .and_then(|pointer| nearest(&picture.map, &response.transform, pointer))
            {
                hovered_now = Some(i);
                hover_ui(&response.response, &picture.map, i, thumbnails);
            }
        }
    });
    if hovered_now != highlighted {
        ctx.data_mut(|d| d.insert_temp(memory, hovered_now));
        ctx.request_repaint();
    }
}

/// The photo nearest the pointer on screen, if it is within [`PICK_RADIUS`].
pub fn nearest_on_screen(view: &MapView, pointer: egui::Pos2) -> Option<usize> {
    nearest(&view.map, view.last_transform.as_ref()?, pointer)
}

fn nearest(map: &EmbeddingMap, transform: &PlotTransform, pointer: egui::Pos2) -> Option<usize> {
    map.points
        .iter()
        .enumerate()
        .map(|(i, &[x, y])| {
            let at = transform.position_from_point(&PlotPoint::new(x, y));
            (i, at.distance(pointer))
        })
        .filter(|&(_, d)| d <= PICK_RADIUS)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
}
