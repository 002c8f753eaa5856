//! The status bar (device, current model and index, the running job), the details of the
//! current model and index, and the notices.

use crate::app::reducer::plural;
use crate::app::state::{AppState, Details};
use crate::app::widgets::{busy_label, file_name};

pub fn status_ui(ui: &mut egui::Ui, state: &mut AppState) {
    ui.horizontal(|ui| {
        ui.label(format!("Device: {}", state.device));
        ui.separator();
        let mut toggle = None;
        match &state.current.model {
            Some(model) => {
                ui.label("Model:");
                if ui
                    .link(file_name(&model.path))
                    .on_hover_text("Show the model's details")
                    .clicked()
                {
                    toggle = Some(Details::Model);
                }
                ui.label(format!(
                    "({}-d, {} px)",
                    model.info.config.embedding_dim, model.info.config.preprocess.image_size_px
                ));
            }
            None => {
                ui.label("Model: none");
            }
        }
        ui.separator();
        match &state.current.index {
            Some(index) => {
                ui.label("Index:");
                if ui
                    .link(plural(index.images, "image", "images"))
                    .on_hover_text("Show the index's details")
                    .clicked()
                {
                    toggle = Some(Details::Index);
                }
                if let crate::engine::index::ann::SearchMethod::Approximate(params) = &index.search
                {
                    ui.label("(approximate)").on_hover_text(params.describe());
                }
            }
            None => {
                ui.label("Index: none");
            }
        }
        if let Some(which) = toggle {
            state.details = (state.details != Some(which)).then_some(which);
        }
        if let Some(activity) = &state.jobs.activity {
            ui.separator();
            let progress = match activity.total {
                Some(total)
                    if total > 0 && activity.kind != crate::worker::JobKind::DownloadWeights =>
                {
                    format!(" {}/{total}", activity.done)
                }
                _ => String::new(),
            };
            if state.is_cancelling(activity.job) {
                busy_label(ui, format!("Cancelling {}…", activity.kind.label()));
            } else {
                busy_label(ui, format!("Busy: {}{progress}", activity.kind.label()));
            }
        }
    });
}

/// A window with the current model's or index's details: file, what it was made from,
/// when it was made, and (for an index) which model made it.
pub fn details_ui(ctx: &egui::Context, state: &mut AppState) {
    let Some(which) = state.details else { return };
    let mut open = true;
    let title = match which {
        Details::Model => "Current model",
        Details::Index => "Current index",
    };
    egui::Window::new(title)
        .open(&mut open)
        .collapsible(false)
        .resizable(true)
        .default_width(460.0)
        .show(ctx, |ui| {
            egui::Grid::new("details_grid")
                .num_columns(2)
                .spacing([12.0, 4.0])
                .show(ui, |ui| match which {
                    Details::Model => match &state.current.model {
                        Some(model) => {
                            let summary = &model.info.summary;
                            let config = &model.info.config;
                            row(ui, "File", &model.path.display().to_string());
                            row(ui, "Saved", &when(model.modified));
                            row(ui, "Trained on", &summary.data_folder);
                            row(ui, "Photos", &summary.images.to_string());
                            row(
                                ui,
                                "Classes",
                                &format!(
                                    "{} ({})",
                                    summary.classes.len(),
                                    summary.classes.join(", ")
                                ),
                            );
                            row(ui, "Recipe", &summary.preset);
                            row(
                                ui,
                                "Started from",
                                &match &summary.pretrained_weights {
                                    Some(weights) => format!(
                                        "pretrained weights ({})",
                                        crate::app::widgets::file_name(std::path::Path::new(
                                            weights
                                        ))
                                    ),
                                    None => "scratch (random weights)".into(),
                                },
                            );
                            if let Some(earlier) = &summary.resumed_from {
                                row(
                                    ui,
                                    "Went on from",
                                    &format!(
                                        "model {} ({} trained before)",
                                        earlier.model_id,
                                        plural(earlier.steps, "step", "steps")
                                    ),
                                );
                            }
                            row(
                                ui,
                                "Training",
                                &format!(
                                    "{} in {:.0} s on {}",
                                    plural(summary.steps, "step", "steps"),
                                    summary.train_secs,
                                    summary.device
                                ),
                            );
                            if let Some(recall) = summary.validation_recall_at_1 {
                                row(
                                    ui,
                                    "Recall@1",
                                    &format!(
                                        "{recall:.2} on {}",
                                        summary
                                            .validation_source
                                            .as_deref()
                                            .unwrap_or("validation photos")
                                    ),
                                );
                            }
                            row(
                                ui,
                                "Embedding",
                                &format!(
                                    "{}-d from {} px photos",
                                    config.embedding_dim, config.preprocess.image_size_px
                                ),
                            );
                        }
                        None => row(ui, "Model", "none"),
                    },
                    Details::Index => match &state.current.index {
                        Some(index) => {
                            row(ui, "File", &index.path.display().to_string());
                            row(ui, "Built", &when(index.modified));
                            row(ui, "Folder", &index.folder.display().to_string());
                            row(ui, "Images", &index.images.to_string());
                            row(ui, "Search", &index.search.describe());
                            row(ui, "Skipped", &plural(index.skipped.len(), "file", "files"));
                            row(
                                ui,
                                "Built with model",
                                &index.model_path.display().to_string(),
                            );
                        }
                        None => row(ui, "Index", "none"),
                    },
                });
        });
    if !open {
        state.details = None;
    }
}

fn row(ui: &mut egui::Ui, name: &str, value: &str) {
    ui.label(egui::RichText::new(name).strong());
    ui.add(egui::Label::new(value).wrap());
    ui.end_row();
}

/// A file time as local-independent UTC ("2026-11-29 09:41 UTC"), or "unknown".
pub fn when(time: Option<std::time::SystemTime>) -> String {
    let Some(secs) = time
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
    else {
        return "unknown".into();
    };
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        (rest % 3600) / 60
    )
}

/// Days since 1970-01-01 to a (year, month, day) date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Seconds a piece of information stays on screen; errors stay until dismissed.
const INFO_SECONDS: f64 = 12.0;
/// Notices shown at once; older ones wait behind "N more".
const SHOWN_NOTICES: usize = 2;

/// The notices as an overlay in the bottom-right corner, above the preview: the newest
/// first, at most [`SHOWN_NOTICES`] (errors before information), information fading out
/// after [`INFO_SECONDS`].
pub fn notices_overlay(ctx: &egui::Context, state: &mut AppState) {
    let current: Vec<usize> = state
        .notices
        .iter()
        .enumerate()
        .filter(|(_, n)| n.is_error || n.posted.elapsed().as_secs_f64() < INFO_SECONDS)
        .map(|(i, _)| i)
        .collect();
    if current.iter().any(|&i| !state.notices[i].is_error) {
        // Wake up to let information go when its time is up.
        ctx.request_repaint_after(std::time::Duration::from_millis(500));
    }
    let width = (ctx.content_rect().width() * 0.4).clamp(320.0, 560.0);
    // Shown every frame, empty or not: a new area is laid out invisibly in its first
    // frame, and a notice must be seen in the frame it is posted.
    egui::Area::new(egui::Id::unique("notices"))
        .order(egui::Order::Tooltip)
        // Above the status bar, where results end rather than where the controls are.
        .anchor(egui::Align2::RIGHT_BOTTOM, egui::vec2(-12.0, -34.0))
        .interactable(true)
        .show(ctx, |ui| {
            ui.set_max_width(width);
            notices_ui(ui, state, &current);
        });
}

/// The notices at positions `current` of the list, newest first, each with Dismiss.
fn notices_ui(ui: &mut egui::Ui, state: &mut AppState, current: &[usize]) {
    let mut dismissed = None;
    // Errors first, then information; newest first within each.
    let mut order: Vec<usize> = current.iter().rev().copied().collect();
    order.sort_by_key(|&i| !state.notices[i].is_error);
    let hidden = order.len().saturating_sub(SHOWN_NOTICES);
    for &i in order.iter().take(SHOWN_NOTICES) {
        let notice = &state.notices[i];
        let (fill, stroke) = if notice.is_error {
            (
                egui::Color32::from_rgb(90, 30, 30),
                egui::Color32::from_rgb(220, 90, 90),
            )
        } else {
            (
                egui::Color32::from_rgb(30, 60, 90),
                egui::Color32::from_rgb(90, 150, 220),
            )
        };
        egui::Frame::new()
            .fill(fill)
            .stroke(egui::Stroke::new(1.0, stroke))
            .inner_margin(8.0)
            .corner_radius(4.0)
            .show(ui, |ui| {
                // The text wraps in the panel's width, with room kept for Dismiss: a long
                // message must never widen the panel.
                ui.horizontal_top(|ui| {
                    let text_width = (ui.available_width() - 80.0).max(100.0);
                    ui.scope(|ui| {
                        ui.set_max_width(text_width);
                        ui.add(
                            egui::Label::new(
                                egui::RichText::new(&notice.text).color(egui::Color32::WHITE),
                            )
                            .wrap(),
                        );
                    });
                    ui.vertical(|ui| {
                        if ui.small_button("Dismiss").clicked() {
                            dismissed = Some(i);
                        }
                        if let Some(copy) = &notice.copy
                            && ui.small_button("Copy path").clicked()
                        {
                            ui.ctx().copy_text(copy.clone());
                        }
                    });
                });
            });
    }
    if hidden > 0 {
        ui.small(format!(
            "{hidden} more behind these: dismiss one to see the next"
        ));
    }
    if let Some(i) = dismissed {
        state.notices.remove(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_times_read_as_utc_dates() {
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_796_000_000);
        assert_eq!(when(Some(time)), "2026-11-30 00:53 UTC");
        assert_eq!(when(None), "unknown");
    }
}
