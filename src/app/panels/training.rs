//! Training: the form (preset, budget, epochs, sizes, learning rate, device, starting
//! weights), Train / Cancel, and the ImageNet weights download.

use super::Intent;
use crate::app::settings::TrainForm;
use crate::app::state::AppState;
use crate::app::thumbnails::ThumbnailCache;
use crate::app::widgets::{file_name, progress_bar};
use crate::engine::device::DeviceChoice;
use crate::engine::pretrained::IMAGENET_RESNET18_APPROX_MB;
use crate::engine::train::Preset;
use crate::worker::JobKind;

pub fn training_ui(
    ui: &mut egui::Ui,
    state: &mut AppState,
    thumbnails: &mut ThumbnailCache,
    intents: &mut Vec<Intent>,
) {
    ui.heading("Training");
    let running = state.training_running();
    ui.add_enabled_ui(!running, |ui| train_form_ui(ui, state, intents));
    let can_train = state.library.as_ref().is_some_and(|l| l.class_count() >= 2) && state.is_idle();
    ui.horizontal(|ui| {
        if running {
            if let Some(job) = state.training.job
                && crate::app::widgets::cancel_button(
                    ui,
                    state.is_cancelling(job),
                    "Cancel",
                    "Stop after this step and keep the model trained so far",
                )
            {
                intents.push(Intent::Cancel(job));
            }
        } else if ui
            .add_enabled(can_train, egui::Button::new("Train"))
            .on_disabled_hover_text(
                "Needs a library with at least two class folders, and no other job running",
            )
            .clicked()
        {
            intents.push(Intent::StartTraining);
        }
    });
    super::training_report::training_report_ui(ui, state, thumbnails, intents);
}

fn train_form_ui(ui: &mut egui::Ui, state: &mut AppState, intents: &mut Vec<Intent>) {
    let imagenet_cached = state.imagenet_weights.is_some();
    let can_download = state.is_idle();
    let weights_source = &state.dirs.weights;
    let form = &mut state.settings.train;
    egui::Grid::new("train_form")
        .num_columns(2)
        .spacing([8.0, 4.0])
        .show(ui, |ui| {
            let label = ui.label("Preset");
            let before = form.preset;
            egui::ComboBox::from_id_salt("preset")
                .selected_text(preset_name(form.preset))
                .show_ui(ui, |ui| {
                    for preset in [Preset::Default, Preset::Seed] {
                        ui.selectable_value(&mut form.preset, preset, preset_name(preset));
                    }
                })
                .response
                .labelled_by(label.id);
            if form.preset != before {
                let weights = form.weights.take();
                *form = TrainForm::from_preset(form.preset);
                form.weights = weights;
            }
            ui.end_row();
            let label = ui.label("Time budget");
            ui.horizontal(|ui| {
                ui.checkbox(&mut form.use_time_budget, "")
                    .labelled_by(label.id);
                ui.add_enabled(
                    form.use_time_budget,
                    egui::DragValue::new(&mut form.max_seconds)
                        .range(5.0..=86_400.0)
                        .suffix(" s"),
                )
                .labelled_by(label.id)
                .on_hover_text(
                    "The whole run, from Train to its summary: loading the photos, the \
                     training steps and validation. Indexing the library with the new \
                     model comes after it.",
                );
            });
            ui.end_row();
            let label = ui.label("Epochs");
            if form.use_time_budget {
                // Under a time budget, epochs are only a bound the person chose.
                ui.horizontal(|ui| {
                    ui.checkbox(&mut form.limit_epochs, "at most")
                        .labelled_by(label.id)
                        .on_hover_text("Off: train until the time budget is spent");
                    ui.add_enabled(
                        form.limit_epochs,
                        egui::DragValue::new(&mut form.epochs).range(1..=10_000),
                    )
                    .labelled_by(label.id);
                });
            } else {
                ui.add(egui::DragValue::new(&mut form.epochs).range(1..=10_000))
                    .labelled_by(label.id);
            }
            ui.end_row();
            let label = ui.label("Image size");
            ui.add(
                egui::DragValue::new(&mut form.image_size_px)
                    .range(32..=512)
                    .suffix(" px"),
            )
            .labelled_by(label.id);
            ui.end_row();
            let label = ui.label("Batch size");
            ui.add(egui::DragValue::new(&mut form.batch_size).range(4..=512))
                .labelled_by(label.id)
                .on_hover_text(match form.preset {
                    Preset::Seed => "Triplets per step (three images each)",
                    Preset::Default => "Images per step",
                });
            ui.end_row();
            let label = ui.label("Learning rate");
            ui.add(
                egui::DragValue::new(&mut form.lr)
                    .range(1e-6..=1.0)
                    .speed(1e-4)
                    .max_decimals(6),
            )
            .labelled_by(label.id);
            ui.end_row();
            if form.preset == Preset::Seed {
                let label = ui.label("Margin");
                ui.add(
                    egui::DragValue::new(&mut form.margin)
                        .range(0.0..=10.0)
                        .speed(0.01),
                )
                .labelled_by(label.id);
                ui.end_row();
            }
            let label = ui.label("Device");
            egui::ComboBox::from_id_salt("device")
                .selected_text(form.device.label())
                .show_ui(ui, |ui| {
                    for device in [DeviceChoice::Auto, DeviceChoice::Cpu, DeviceChoice::Cuda] {
                        ui.selectable_value(&mut form.device, device, device.label());
                    }
                })
                .response
                .labelled_by(label.id);
            ui.end_row();
            ui.label("Start from");
            ui.horizontal(|ui| match &form.weights {
                Some(path) => {
                    ui.label(file_name(path));
                    if ui.small_button("Scratch").clicked() {
                        form.weights = None;
                    }
                }
                None => {
                    ui.label("scratch");
                    let imagenet = if imagenet_cached {
                        ui.small_button("ImageNet").on_hover_text(
                            "Start from ResNet18 ImageNet weights (downloaded before)",
                        )
                    } else {
                        ui.add_enabled(can_download, egui::Button::new("ImageNet…").small())
                            .on_hover_text(format!(
                                "Download ResNet18 ImageNet weights (about \
                                 {IMAGENET_RESNET18_APPROX_MB} MB) from {} and start from \
                                 them; they are checked, then kept in {}",
                                weights_source.url,
                                weights_source.cache_path.display()
                            ))
                    };
                    if imagenet.clicked() {
                        intents.push(Intent::UseImagenetWeights);
                    }
                    if ui
                        .small_button("Weights…")
                        .on_hover_text("torchvision ResNet18 weights (.safetensors)")
                        .clicked()
                    {
                        intents.push(Intent::PickWeightsFile);
                    }
                }
            });
            ui.end_row();
        });
    download_ui(ui, state, intents);
}

/// The ImageNet weights' download, with its progress and Cancel, while it runs.
fn download_ui(ui: &mut egui::Ui, state: &AppState, intents: &mut Vec<Intent>) {
    if let Some(download) = state.running(JobKind::DownloadWeights) {
        let job = download.job;
        ui.horizontal(|ui| {
            let megabytes = |bytes: u64| bytes as f64 / 1e6;
            let text = match download.total {
                Some(total) => format!(
                    "Downloading ImageNet weights {:.1}/{:.1} MB",
                    megabytes(download.done),
                    megabytes(total)
                ),
                None => format!(
                    "Downloading ImageNet weights {:.1} MB",
                    megabytes(download.done)
                ),
            };
            ui.scope(|ui| {
                ui.set_max_width(ui.available_width() - 70.0);
                progress_bar(ui, download.done, download.total, text);
            });
            if crate::app::widgets::cancel_button(
                ui,
                state.is_cancelling(job),
                "Cancel",
                "Stop the download",
            ) {
                intents.push(Intent::Cancel(job));
            }
        });
    }
}

fn preset_name(preset: Preset) -> &'static str {
    match preset {
        Preset::Default => "Default (best)",
        Preset::Seed => "Seed (tutorial recipe)",
    }
}
