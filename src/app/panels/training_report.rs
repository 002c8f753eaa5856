//! What a training run shows: progress, the loss and validation charts, the validation
//! figures, and the photos whose labels look wrong.

use egui_plot::{GridMark, Legend, Line, Plot, PlotPoint, PlotPoints, Points};

use super::Intent;
use crate::app::state::{AppState, LabelCheck};
use crate::app::thumbnails::ThumbnailCache;
use crate::app::widgets::{busy_label, file_name, format_secs, progress_bar, thumbnail};
use crate::engine::eval::{RetrievalReport, SuspectImage};
use crate::engine::train::margins::MIN_PASSES_TO_JUDGE;

pub fn training_report_ui(
    ui: &mut egui::Ui,
    state: &mut AppState,
    thumbnails: &mut ThumbnailCache,
    intents: &mut Vec<Intent>,
) {
    let view = &state.training;
    let running = state.training_running();
    if let Some((done, total)) = view.preparing {
        progress_bar(
            ui,
            done as u64,
            Some(total as u64),
            format!("Loading images {done}/{total}"),
        );
    } else if let (true, Some(phase)) = (running, view.phase) {
        // Work between the steps has no count of its own: it says what it is.
        ui.horizontal(|ui| busy_label(ui, format!("{}…", phase.describe())));
        if view.steps_per_epoch > 0 {
            ui.label(&view.device);
        }
    } else if running && view.steps_per_epoch > 0 && view.global_step == 0 {
        ui.horizontal(|ui| busy_label(ui, "Running the first step…"));
        ui.label(&view.device);
    } else if running && view.steps_per_epoch > 0 {
        let by_steps = view.epochs.map_or(0.0, |epochs| {
            view.global_step as f64 / (view.steps_per_epoch * epochs).max(1) as f64
        });
        let fraction = match view.time_budget_secs {
            Some(budget) => by_steps.max(view.elapsed_secs / budget),
            None => by_steps,
        };
        let epoch = match view.epochs {
            Some(epochs) => format!("Epoch {} of {epochs}", view.epoch),
            None => format!("Epoch {}", view.epoch),
        };
        ui.add(
            egui::ProgressBar::new(fraction.min(1.0) as f32).text(format!(
                "{epoch}: step {} of {} · {} left",
                view.step,
                view.steps_per_epoch,
                format_secs(view.remaining_secs)
            )),
        );
        ui.label(&view.device);
    } else if running {
        ui.horizontal(|ui| busy_label(ui, "Starting…"));
    }
    if let Some((done, total)) = view.evaluating {
        progress_bar(
            ui,
            done as u64,
            Some(total as u64),
            "Measuring recall on the validation folder".into(),
        );
    }
    for note in &view.notes {
        ui.small(note);
    }
    // The result of a run comes before its charts: in the narrow column it must be seen
    // without scrolling.
    outcome_ui(ui, state, intents);
    charts_ui(ui, &mut state.training);
    let view = &state.training;
    if let Some(check) = &view.label_check {
        label_check_ui(ui, check, thumbnails, intents);
    }
    if let Some(report) = &view.validation {
        // Training's own evidence, when there is some, replaces the neighbour vote: it
        // is the list worth reading (docs/quality.md, "Check these labels").
        validation_ui(ui, report, thumbnails, intents, view.label_check.is_none());
    }
}

/// The photos whose labels training doubts, with why, or that it found none.
fn label_check_ui(
    ui: &mut egui::Ui,
    check: &LabelCheck,
    thumbnails: &mut ThumbnailCache,
    intents: &mut Vec<Intent>,
) {
    if check.checked == 0 {
        ui.label(too_short_to_judge(check.passes));
        return;
    }
    if check.suspects.is_empty() {
        ui.label(format!(
            "Labels: training took none of the {} photos it trained on for another class.",
            check.checked
        ));
        return;
    }
    egui::CollapsingHeader::new(format!("Check these labels ({})", check.suspects.len()))
        .id_salt("label_check")
        .default_open(true)
        .show(ui, |ui| {
            ui.small(format!(
                "While it trained, the model kept taking these photos for another class than \
                 their folder's. Most such photos are in the wrong folder; some show both \
                 subjects. Checked the {} photos it trained on at least {MIN_PASSES_TO_JUDGE} \
                 times; each says in how many of its passes it looked like another class.",
                check.checked
            ));
            let rows: Vec<(&std::path::Path, String)> = check
                .suspects
                .iter()
                .map(|suspect| (suspect.path.as_path(), suspect.reason()))
                .collect();
            photo_rows_ui(ui, thumbnails, &rows, "label_check_list", intents);
        });
}

/// Why a run listed no labels to check: it was too short.
pub fn too_short_to_judge(passes: u32) -> String {
    format!(
        "Labels: not judged. This run trained on each photo at most {passes} {}, and a \
         label is judged after {MIN_PASSES_TO_JUDGE}: a longer run checks them.",
        if passes == 1 { "time" } else { "times" }
    )
}

/// The end-of-run summary, "Use this model" after a cancel, and the before/after figures.
fn outcome_ui(ui: &mut egui::Ui, state: &mut AppState, intents: &mut Vec<Intent>) {
    let view = &state.training;
    if let Some(end) = &view.outcome {
        ui.label(egui::RichText::new(&end.headline).strong());
        for line in &end.lines {
            ui.label(line);
        }
        for warning in &end.warnings {
            ui.colored_label(ui.visuals().warn_fg_color, format!("Warning: {warning}"));
        }
        if let Some(model) = &end.unused_model
            && ui
                .add_enabled(state.is_idle(), egui::Button::new("Use this model"))
                .on_hover_text("Make it the current model and index the library with it")
                .clicked()
        {
            intents.push(Intent::UseModel(model.clone()));
        }
    }
    if let Some(pictures) = &view.before_after {
        ui.label(format!(
            "On the validation photos: recall@1 {:.2} before training, {:.2} after; mAP@R {:.3} before, {:.3} after.",
            pictures.before.recall_at_1,
            pictures.after.recall_at_1,
            pictures.before.map_at_r,
            pictures.after.map_at_r
        ));
        if ui
            .button("See what training changed")
            .on_hover_text("The validation photos' map before and after, side by side")
            .clicked()
        {
            state.view = crate::app::state::CentralView::Map;
            state.map.before_after = true;
        }
    }
}

/// Loss shown on the log scale is clamped here (a loss of 0 has no logarithm).
const LOG_FLOOR: f64 = 1e-4;

fn charts_ui(ui: &mut egui::Ui, view: &mut crate::app::state::TrainingView) {
    if let Some(last) = view.step_losses.last() {
        ui.horizontal_wrapped(|ui| {
            ui.label(egui::RichText::new(format!("Loss now {:.4}", last.y)).strong())
                .on_hover_text(format!("at step {}", last.x));
            // Each figure moves to the next line whole rather than breaking inside.
            if let Some(epoch) = view.epoch_losses.last() {
                ui.add(egui::Label::new(format!("· last epoch mean {:.4}", epoch.y)).extend());
            }
            if let Some(validation) = view.validation_losses.last() {
                ui.add(egui::Label::new(format!("· validation {:.4}", validation.y)).extend());
            }
            ui.checkbox(&mut view.log_scale, "Log scale");
        });
        let log_scale = view.log_scale;
        let shown = |points: &[PlotPoint]| -> Vec<PlotPoint> {
            points
                .iter()
                .map(|p| {
                    let y = if log_scale {
                        p.y.max(LOG_FLOOR).log10()
                    } else {
                        p.y
                    };
                    PlotPoint::new(p.x, y)
                })
                .collect()
        };
        let (steps, epochs, validation) = (
            shown(&view.step_losses),
            shown(&view.epoch_losses),
            shown(&view.validation_losses),
        );
        // Bottom left: a falling loss leaves that corner empty, and the legend never
        // covers the newest points (on the right).
        let mut plot = Plot::new("loss_plot")
            .height(180.0)
            .legend(Legend::default().position(egui_plot::Corner::LeftBottom))
            .x_axis_label("step")
            .y_axis_label(if log_scale { "loss (log)" } else { "loss" })
            .allow_scroll(false);
        if log_scale {
            plot =
                plot.y_axis_formatter(|mark: GridMark, _range| format_loss(10f64.powf(mark.value)));
        } else {
            plot = plot.include_y(0.0);
        }
        plot.show(ui, |plot| {
            plot.line(
                Line::new("step loss", PlotPoints::Owned(steps))
                    .color(egui::Color32::from_gray(150)),
            );
            plot.line(Line::new("epoch mean", PlotPoints::Owned(epochs.clone())).width(2.0));
            plot.points(Points::new("epoch mean", PlotPoints::Owned(epochs)).radius(3.0));
            if !validation.is_empty() {
                plot.line(
                    Line::new("validation", PlotPoints::Owned(validation.clone())).width(2.0),
                );
                plot.points(Points::new("validation", PlotPoints::Owned(validation)).radius(3.5));
            }
        });
    }
    if !view.validation_map.is_empty() {
        // Retrieval on the validation folder: the measure the kept epoch is chosen by.
        Plot::new("validation_map_plot")
            .height(120.0)
            .legend(Legend::default())
            .x_axis_label("step")
            .y_axis_label("mAP@R")
            .include_y(0.0)
            .include_y(1.0)
            .allow_scroll(false)
            .show(ui, |plot| {
                plot.line(
                    Line::new(
                        "validation mAP@R",
                        PlotPoints::Borrowed(&view.validation_map),
                    )
                    .width(2.0),
                );
                plot.points(
                    Points::new(
                        "validation mAP@R",
                        PlotPoints::Borrowed(&view.validation_map),
                    )
                    .radius(3.0),
                );
            });
    }
}

/// A loss for an axis label: as few digits as it needs.
fn format_loss(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 0.01 {
        format!("{value:.2}")
    } else {
        format!("{value:.0e}")
    }
}

fn validation_ui(
    ui: &mut egui::Ui,
    report: &RetrievalReport,
    thumbnails: &mut ThumbnailCache,
    intents: &mut Vec<Intent>,
    show_neighbour_vote: bool,
) {
    ui.label(format!(
        "Validation: recall@1 {:.3} · recall@5 {:.3} · recall@10 {:.3} · mAP@R {:.3}",
        report.recall_at_1, report.recall_at_5, report.recall_at_10, report.map_at_r
    ));
    egui::CollapsingHeader::new("Where the model is confused")
        .id_salt("confusions")
        .show(ui, |ui| {
            for (class, recall) in &report.per_class_recall_at_1 {
                ui.label(format!("{class}: recall@1 {recall:.2}"));
            }
            for pair in report.confused_pairs.iter().take(5) {
                ui.label(format!(
                    "{} photos found {} first ({}×)",
                    pair.query_class, pair.retrieved_class, pair.count
                ));
            }
        });
    if show_neighbour_vote && !report.suspects.is_empty() {
        egui::CollapsingHeader::new(format!("Check these labels ({})", report.suspects.len()))
            .id_salt("suspects")
            .default_open(true)
            .show(ui, |ui| {
                suspects_ui(ui, thumbnails, &report.suspects, intents)
            });
    }
}

/// Photos whose neighbours say another class than their folder, most confident first.
fn suspects_ui(
    ui: &mut egui::Ui,
    thumbnails: &mut ThumbnailCache,
    suspects: &[SuspectImage],
    intents: &mut Vec<Intent>,
) {
    let rows: Vec<(&std::path::Path, String)> = suspects
        .iter()
        .map(|suspect| {
            (
                suspect.path.as_path(),
                format!(
                    "In folder '{}', its neighbours say '{}' ({:.0}% of them)",
                    suspect.class,
                    suspect.neighbours_class,
                    suspect.share * 100.0
                ),
            )
        })
        .collect();
    photo_rows_ui(ui, thumbnails, &rows, "suspects_list", intents);
}

/// A scrolling list of photos, each with its thumbnail, name, why it is listed, and ways
/// to open it.
fn photo_rows_ui(
    ui: &mut egui::Ui,
    thumbnails: &mut ThumbnailCache,
    rows: &[(&std::path::Path, String)],
    id: &str,
    intents: &mut Vec<Intent>,
) {
    const ROW_HEIGHT: f32 = 68.0;
    egui::ScrollArea::vertical()
        .max_height(ROW_HEIGHT * 4.0)
        // Room for a few rows even low in a full column (it was one row tall).
        .min_scrolled_height(ROW_HEIGHT * rows.len().min(3) as f32)
        .id_salt(id)
        .show_rows(ui, ROW_HEIGHT, rows.len(), |ui, range| {
            for (path, why) in &rows[range] {
                ui.horizontal(|ui| {
                    let size = egui::vec2(64.0, 64.0);
                    let photo = thumbnail(ui, thumbnails, path, size, egui::Sense::click());
                    if photo.double_clicked() {
                        intents.push(Intent::Open(path.to_path_buf()));
                    }
                    ui.vertical(|ui| {
                        ui.add(
                            egui::Label::new(egui::RichText::new(file_name(path)).strong())
                                .truncate(),
                        )
                        .on_hover_text(path.display().to_string());
                        ui.add(egui::Label::new(why).wrap());
                        ui.horizontal(|ui| {
                            if ui.small_button("Open").clicked() {
                                intents.push(Intent::Open(path.to_path_buf()));
                            }
                            if ui.small_button("Show in folder").clicked() {
                                intents.push(Intent::ShowInFolder(path.to_path_buf()));
                            }
                        });
                    });
                });
            }
        });
}
