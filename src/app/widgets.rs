//! Small widgets the panels share: file names, progress bars, thumbnails, skipped lists.

use std::path::Path;

use super::thumbnails::{Thumbnail, ThumbnailCache};
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

/// A photo's thumbnail at `size` (loading placeholder, or "unreadable" with the reason),
/// with a larger preview on hover.
pub fn thumbnail(
    ui: &mut egui::Ui,
    thumbnails: &mut ThumbnailCache,
    path: &Path,
    size: egui::Vec2,
    sense: egui::Sense,
) -> egui::Response {
    match thumbnails.get(path) {
        Thumbnail::Ready(texture) => {
            let texture = texture.clone();
            ui.add(
                egui::Image::new(&texture)
                    .fit_to_exact_size(size)
                    .maintain_aspect_ratio(true)
                    .sense(sense),
            )
            .on_hover_ui(|ui| {
                ui.add(egui::Image::new(&texture).max_size(egui::vec2(320.0, 320.0)));
            })
        }
        Thumbnail::Loading => {
            let (rect, response) = ui.allocate_exact_size(size, sense);
            ui.painter()
                .rect_filled(rect, 4.0, ui.visuals().faint_bg_color);
            egui::Spinner::new().paint_at(
                ui,
                egui::Rect::from_center_size(rect.center(), egui::vec2(20.0, 20.0)),
            );
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
