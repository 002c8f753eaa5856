//! Small widgets the panels share: file names, progress bars, thumbnails, skipped lists.

use std::path::Path;

use super::thumbnails::{Thumbnail, ThumbnailCache, side_for};
use crate::engine::data::SkippedFile;

/// The last part of a path, for labels (the whole path goes in the hover text).
pub fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// A progress bar for `done` of `total` (a spinner-like empty bar while the total is
/// unknown).
pub fn progress_bar(ui: &mut egui::Ui, done: u64, total: Option<u64>, text: String) {
    let fraction = total.map_or(0.0, |total| done as f32 / total.max(1) as f32);
    ui.add(egui::ProgressBar::new(fraction.min(1.0)).text(text));
}

/// Points the hover preview of a thumbnail may take.
const HOVER_PREVIEW_POINTS: f32 = 480.0;

/// A photo's thumbnail at `size` (decoded at that size in physical pixels; a loading
/// placeholder, or "unreadable" with the reason), with a larger preview on hover.
pub fn thumbnail(
    ui: &mut egui::Ui,
    thumbnails: &mut ThumbnailCache,
    path: &Path,
    size: egui::Vec2,
    sense: egui::Sense,
) -> egui::Response {
    let pixels_per_point = ui.ctx().pixels_per_point();
    let side = side_for(size.x.max(size.y), pixels_per_point);
    match thumbnails.get(path, side) {
        Thumbnail::Ready(texture) => {
            let texture = texture.clone();
            let response = ui.add(
                egui::Image::new(&texture)
                    .fit_to_exact_size(size)
                    .maintain_aspect_ratio(true)
                    .sense(sense),
            );
            if response.hovered() {
                let hover_side = side_for(HOVER_PREVIEW_POINTS, pixels_per_point);
                let large = match thumbnails.get(path, hover_side) {
                    Thumbnail::Ready(large) => large.clone(),
                    _ => texture,
                };
                response.on_hover_ui(|ui| {
                    ui.add(
                        egui::Image::new(&large)
                            .max_size(egui::vec2(HOVER_PREVIEW_POINTS, HOVER_PREVIEW_POINTS)),
                    );
                })
            } else {
                response
            }
        }
        Thumbnail::Loading => {
            let (rect, response) = ui.allocate_exact_size(size, sense);
            ui.painter()
                .rect_filled(rect, 4.0, ui.visuals().faint_bg_color);
            paced_spinner(ui, rect.center());
            response
        }
        Thumbnail::Failed(reason) => {
            let reason = reason.to_string();
            let (rect, response) = ui.allocate_exact_size(size, sense);
            ui.painter()
                .rect_filled(rect, 4.0, ui.visuals().faint_bg_color);
            ui.painter().text(
                rect.center(),
                egui::Align2::CENTER_CENTER,
                "unreadable",
                egui::FontId::proportional(12.0),
                ui.visuals().warn_fg_color,
            );
            response.on_hover_text(reason)
        }
    }
}

/// How often busy indicators change: often enough to look alive, rarely enough that a
/// window under software rendering leaves the CPU to the job it is showing.
pub const BUSY_REPAINT: std::time::Duration = std::time::Duration::from_millis(1000);

/// A busy indicator that changes twice a second (egui's spinner repaints every
/// frame, which under software rendering costs the running job a whole core).
pub fn paced_spinner(ui: &egui::Ui, center: egui::Pos2) {
    // Eight dots on a circle; the bright one moves a step per repaint.
    const DOTS: usize = 8;
    let phase = (ui.input(|i| i.time) / BUSY_REPAINT.as_secs_f64()) as usize % DOTS;
    let visuals = ui.visuals();
    for dot in 0..DOTS {
        let angle = dot as f32 / DOTS as f32 * std::f32::consts::TAU;
        let position = center + 6.0 * egui::vec2(angle.cos(), angle.sin());
        let color = if dot == phase {
            visuals.strong_text_color()
        } else {
            visuals.weak_text_color().gamma_multiply(0.5)
        };
        ui.painter().circle_filled(position, 1.8, color);
    }
    ui.ctx().request_repaint_after(BUSY_REPAINT);
}

/// [`paced_spinner`] in the layout, followed by a label.
pub fn busy_label(ui: &mut egui::Ui, text: impl Into<egui::WidgetText>) {
    let (rect, _) = ui.allocate_exact_size(egui::vec2(18.0, 18.0), egui::Sense::hover());
    paced_spinner(ui, rect.center());
    ui.label(text);
}

/// The files a scan or an index left out, with why.
pub fn skipped_list(ui: &mut egui::Ui, skipped: &[SkippedFile]) {
    egui::ScrollArea::vertical()
        .max_height(160.0)
        .id_salt(ui.next_auto_id())
        .show(ui, |ui| {
            for file in skipped {
                ui.small(format!("{}: {}", file_name(&file.path), file.reason))
                    .on_hover_text(file.path.display().to_string());
            }
        });
}

/// "1h 02m", "3m 05s", "42s".
pub fn format_secs(secs: f64) -> String {
    let secs = secs.max(0.0).round() as u64;
    if secs >= 3600 {
        format!("{}h {:02}m", secs / 3600, (secs % 3600) / 60)
    } else if secs >= 60 {
        format!("{}m {:02}s", secs / 60, secs % 60)
    } else {
        format!("{secs}s")
    }
}

/// A distance with enough digits to tell close neighbours apart (unit-length embeddings
/// put near-duplicates a few thousandths apart).
pub fn format_distance(distance: f32) -> String {
    if distance >= 1.0 {
        format!("{distance:.2}")
    } else if distance >= 0.1 {
        format!("{distance:.3}")
    } else {
        format!("{distance:.4}")
    }
}

/// A Cancel button that acknowledges the click at once: once `cancelling`, it reads
/// "Cancelling…" and is disabled until the job ends. Returns whether it was clicked.
pub fn cancel_button(ui: &mut egui::Ui, cancelling: bool, label: &str, hover: &str) -> bool {
    if cancelling {
        ui.add_enabled(false, egui::Button::new("Cancelling…"))
            .on_disabled_hover_text("Stopping at the next step or batch");
        false
    } else {
        ui.button(label).on_hover_text(hover).clicked()
    }
}
