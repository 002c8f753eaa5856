//! The status bar (device, current model and index, the running job) and the notices.

use crate::app::state::AppState;
use crate::app::widgets::file_name;

pub fn status_ui(ui: &mut egui::Ui, state: &AppState) {
    ui.horizontal(|ui| {
        ui.label(format!("Device: {}", state.device));
        ui.separator();
        match &state.current.model {
            Some(model) => ui.label(format!(
                "Model: {} ({}-d, {} px)",
                file_name(&model.path),
                model.info.config.embedding_dim,
                model.info.config.preprocess.image_size_px
            )),
            None => ui.label("Model: none"),
        };
        ui.separator();
        match &state.current.index {
            Some(index) => ui.label(format!("Index: {} images", index.images)),
            None => ui.label("Index: none"),
        };
        if let Some(activity) = &state.activity {
            ui.separator();
            ui.spinner();
            ui.label(format!("Busy: {}", activity.kind.label()));
        }
    });
}

/// The last three notices, newest first, each with Dismiss.
pub fn notices_ui(ui: &mut egui::Ui, state: &mut AppState) {
    let mut dismissed = None;
    for (i, notice) in state.notices.iter().enumerate().rev().take(3) {
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
                ui.horizontal(|ui| {
                    ui.add(
                        egui::Label::new(
                            egui::RichText::new(&notice.text).color(egui::Color32::WHITE),
                        )
                        .wrap(),
                    );
                    if ui.small_button("Dismiss").clicked() {
                        dismissed = Some(i);
                    }
                });
            });
    }
    if let Some(i) = dismissed {
        state.notices.remove(i);
    }
}
