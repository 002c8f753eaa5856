//! The large preview of one result (double-click a card): the photo fitted to the
//! window at full resolution, arrow keys to move through the results, and buttons to open
//! it in the default app or show it in its folder.

use super::Intent;
use crate::app::state::AppState;
use crate::app::thumbnails::{Thumbnail, ThumbnailCache, side_for};
use crate::app::widgets::{busy_label, file_name};

/// Share of the window the preview takes.
const PREVIEW_SHARE: f32 = 0.9;

pub fn preview_ui(
    ctx: &egui::Context,
    state: &mut AppState,
    thumbnails: &mut ThumbnailCache,
    intents: &mut Vec<Intent>,
) {
    let (Some(index), Some(search)) = (state.search.preview, &state.search.shown) else {
        return;
    };
    let count = search.hits.len();
    let Some(hit) = search.hits.get(index) else {
        state.search.preview = None;
        return;
    };
    // Presses, not "pressed this frame": three quick presses that land in one slow frame
    // move three results.
    let (previous, next, close) = ctx.input(|i| {
        (
            i.num_presses(egui::Key::ArrowLeft),
            i.num_presses(egui::Key::ArrowRight),
            i.key_pressed(egui::Key::Escape),
        )
    });
    let mut go_to = None;
    let mut closed = close;
    let screen = ctx.content_rect();
    let frame_size = screen.size() * PREVIEW_SHARE;
    egui::Modal::new(egui::Id::unique("result_preview")).show(ctx, |ui| {
        ui.set_width(frame_size.x);
        ui.horizontal(|ui| {
            ui.heading(format!("#{} of {count}", hit.rank));
            ui.label(format!(
                "d = {}",
                crate::app::widgets::format_distance(hit.distance)
            ));
            if let Some(class) = &hit.class {
                ui.label(egui::RichText::new(class).strong());
            }
            ui.add(egui::Label::new(file_name(&hit.path)).truncate())
                .on_hover_text(hit.path.display().to_string());
        });
        // Room left for the photo under the title and above the buttons.
        let image_box = egui::vec2(frame_size.x, (frame_size.y - 90.0).max(100.0));
        let side = side_for(image_box.x.max(image_box.y), ctx.pixels_per_point());
        let (rect, _) = ui.allocate_exact_size(image_box, egui::Sense::hover());
        let texture = match thumbnails.get(&hit.path, side) {
            Thumbnail::Ready(texture) => Some(texture.clone()),
            Thumbnail::Failed(reason) => {
                ui.put(
                    rect,
                    egui::Label::new(format!("This photo cannot be shown: {reason}")),
                );
                None
            }
            Thumbnail::Loading => {
                // The grid's thumbnail stands in while the full-size photo loads.
                let stand_in = thumbnails.any_ready(&hit.path);
                ui.scope_builder(egui::UiBuilder::new().max_rect(rect), |ui| {
                    busy_label(ui, "Loading the full-size photo…");
                });
                stand_in
            }
        };
        if let Some(texture) = texture {
            let fitted = fit(texture.size_vec2(), rect.size());
            let image_rect = egui::Rect::from_center_size(rect.center(), fitted);
            egui::Image::new(&texture).paint_at(ui, image_rect);
        }
        // A fixed id for the buttons: the image area above adds a scope only while the
        // photo loads, which would otherwise change their ids under a click in that frame.
        ui.push_id("preview_buttons", |ui| {
            ui.horizontal(|ui| {
                if ui
                    .add_enabled(index > 0, egui::Button::new("< Previous"))
                    .on_hover_text("Left arrow")
                    .clicked()
                {
                    go_to = Some(index - 1);
                }
                if ui
                    .add_enabled(index + 1 < count, egui::Button::new("Next >"))
                    .on_hover_text("Right arrow")
                    .clicked()
                {
                    go_to = Some(index + 1);
                }
                ui.separator();
                if ui.button("Open in default app").clicked() {
                    intents.push(Intent::Open(hit.path.clone()));
                }
                if ui.button("Show in folder").clicked() {
                    intents.push(Intent::ShowInFolder(hit.path.clone()));
                }
                ui.separator();
                if ui.button("Close").on_hover_text("Esc").clicked() {
                    closed = true;
                }
            });
        });
        // A launcher failure for this photo shows here: the notices lie behind the
        // preview.
        if let Some(failure) = state
            .notices
            .last()
            .filter(|n| n.is_error && n.copy.as_deref() == Some(&*hit.path.to_string_lossy()))
        {
            ui.horizontal_wrapped(|ui| {
                ui.colored_label(
                    egui::Color32::from_rgb(230, 110, 110),
                    failure.text.lines().next().unwrap_or_default(),
                );
                if ui.small_button("Copy path").clicked() {
                    ui.ctx().copy_text(hit.path.display().to_string());
                }
            });
        }
    });
    // A click on the backdrop does not close the preview: the double-click that opened
    // it ends on the backdrop, in the same frame. Esc and Close do.
    if previous + next > 0 {
        let target = (index + next)
            .saturating_sub(previous)
            .min(count.saturating_sub(1));
        if target != index {
            go_to = Some(target);
        }
    }
    state.search.preview = if closed { None } else { go_to.or(Some(index)) };
}

/// The largest size with the image's aspect ratio that fits in `space`, never enlarging
/// past 2× (a tiny photo is not blown up to the window).
fn fit(image: egui::Vec2, space: egui::Vec2) -> egui::Vec2 {
    let scale = (space.x / image.x).min(space.y / image.y).min(2.0);
    image * scale
}
