//! The Duplicates view: near-duplicate groups of the current index as rows of thumbnails,
//! regrouped live by a threshold slider. Per group a person picks the photo to keep, opens
//! photos or shows them in their folder, and exports the list of the others (or copies
//! them to a folder). Likeness never deletes or moves a photo.

use super::Intent;
use crate::app::state::{AppState, DuplicatesView};
use crate::app::thumbnails::ThumbnailCache;
use crate::app::widgets::{file_name, format_distance, thumbnail};
use crate::worker::JobKind;

const THUMBNAIL: f32 = 110.0;
const CARD_WIDTH: f32 = 150.0;
/// Height of one group's row: heading, thumbnails, and four lines under them.
const GROUP_HEIGHT: f32 = THUMBNAIL + 112.0;

/// Where the list of photos not kept goes (chosen in a dialog).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportKind {
    Csv,
    Json,
    CopyToFolder,
}

pub fn duplicates_ui(
    ui: &mut egui::Ui,
    state: &mut AppState,
    thumbnails: &mut ThumbnailCache,
    intents: &mut Vec<Intent>,
) {
    let has_index = state.current.index.is_some();
    let finding = state.running(JobKind::FindDuplicates).is_some();
    ui.horizontal(|ui| {
        ui.heading("Near-duplicates");
        let label = if state.duplicates.is_some() {
            "Find again"
        } else {
            "Find duplicates"
        };
        if ui
            .add_enabled(has_index && !finding, egui::Button::new(label))
            .on_hover_text("Compare every photo of the current index with its nearest ones")
            .on_disabled_hover_text("Index a folder first")
            .clicked()
        {
            intents.push(Intent::FindDuplicates);
        }
    });
    let Some(view) = &mut state.duplicates else {
        ui.add_space(40.0);
        ui.vertical_centered(|ui| {
            let hint = if has_index {
                "Find duplicates lists groups of near-identical photos in the index: the same \
                 shot resized, recompressed, slightly cropped or re-exposed, burst shots, and \
                 exact copies. Nothing is ever deleted or moved."
            } else {
                "Index a folder first; then Find duplicates lists its near-identical photos."
            };
            ui.label(egui::RichText::new(hint).size(16.0));
        });
        return;
    };
    controls_ui(ui, view, intents);
    ui.separator();
    if view.groups.is_empty() {
        ui.label("No near-duplicates at this threshold.");
        return;
    }
    let DuplicatesView {
        candidates,
        groups,
        keep,
        scroll_to_top,
        ..
    } = view;
    let mut list = egui::ScrollArea::vertical().auto_shrink([false, false]);
    if std::mem::take(scroll_to_top) {
        list = list.vertical_scroll_offset(0.0);
    }
    list.show_rows(ui, GROUP_HEIGHT, groups.len(), |ui, visible| {
        for g in visible {
            let group = &groups[g];
            let kind = if group.all_identical() {
                "identical files"
            } else {
                "near-duplicates"
            };
            ui.label(
                egui::RichText::new(format!(
                    "Group {} · {} photos · {kind}",
                    g + 1,
                    group.members.len()
                ))
                .strong(),
            );
            egui::ScrollArea::horizontal()
                .id_salt(("duplicate_group", g))
                .show(ui, |ui| {
                    ui.horizontal(|ui| {
                        let kept = group.members[keep[g].min(group.members.len() - 1)];
                        for (position, &member) in group.members.iter().enumerate() {
                            let path = &candidates.paths[member];
                            ui.vertical(|ui| {
                                ui.set_width(CARD_WIDTH);
                                let image = thumbnail(
                                    ui,
                                    thumbnails,
                                    path,
                                    egui::vec2(THUMBNAIL, THUMBNAIL),
                                    egui::Sense::click(),
                                )
                                .on_hover_text(path.display().to_string());
                                if image.double_clicked() {
                                    intents.push(Intent::Open(path.clone()));
                                }
                                ui.radio_value(&mut keep[g], position, "Keep");
                                // The folder too: copies often differ only in where they are.
                                let folder = path.parent().map(file_name).unwrap_or_default();
                                ui.label(format!("{folder}/{}", file_name(path)))
                                    .on_hover_text(path.display().to_string());
                                let detail = if member == kept {
                                    format!(
                                        "{} · {}",
                                        size(candidates.sizes[member]),
                                        candidates.why_kept(group, member)
                                    )
                                } else {
                                    let pair = group.pairs.iter().find(|p| {
                                        (p.a, p.b) == (member.min(kept), member.max(kept))
                                    });
                                    match pair {
                                        Some(p) if p.identical => format!(
                                            "{} · same bytes",
                                            size(candidates.sizes[member])
                                        ),
                                        Some(p) => format!(
                                            "{} · {}",
                                            size(candidates.sizes[member]),
                                            format_distance(p.distance)
                                        ),
                                        None => size(candidates.sizes[member]),
                                    }
                                };
                                ui.small(detail);
                                ui.horizontal(|ui| {
                                    if ui.small_button("Open").clicked() {
                                        intents.push(Intent::Open(path.clone()));
                                    }
                                    if ui.small_button("Show in folder").clicked() {
                                        intents.push(Intent::ShowInFolder(path.clone()));
                                    }
                                });
                            });
                        }
                    });
                });
            ui.separator();
        }
    });
}

/// The threshold slider, the counts and the export buttons.
fn controls_ui(ui: &mut egui::Ui, view: &mut DuplicatesView, intents: &mut Vec<Intent>) {
    let ceiling = view.candidates.ceiling.max(f32::MIN_POSITIVE);
    // From a tenth of the default up: below that nothing but exact copies groups. With a
    // wide slider that is about a tenth of a decade per 16 px (it was half a decade).
    let smallest = (f64::from(view.candidates.default_threshold) / 10.0)
        .clamp(f64::from(ceiling) / 1000.0, f64::from(ceiling));
    ui.horizontal(|ui| {
        let label = ui.label("Threshold:");
        ui.spacing_mut().slider_width = (ui.available_width() - 260.0).clamp(160.0, 480.0);
        let slider = ui
            .add(
                egui::Slider::new(&mut view.threshold, 0.0..=ceiling)
                    .logarithmic(true)
                    .smallest_positive(smallest)
                    .custom_formatter(|v, _| format_distance(v as f32)),
            )
            .labelled_by(label.id)
            .on_hover_text(
                "Photos closer than this (and laid out alike) are grouped; move it to regroup",
            );
        if slider.changed() {
            view.regroup();
        }
        if ui
            .add_enabled(
                view.threshold != view.candidates.default_threshold,
                egui::Button::new("Default"),
            )
            .on_hover_text(format!(
                "{} (10 × the median distance from a photo to its nearest other photo)",
                format_distance(view.candidates.default_threshold)
            ))
            .clicked()
        {
            view.threshold = view.candidates.default_threshold;
            view.regroup();
        }
    });
    let photos: usize = view.groups.iter().map(|g| g.members.len()).sum();
    let others = photos - view.groups.len();
    ui.label(format!(
        "{} groups, {photos} photos in them; {others} would go if one per group is kept. \
         Nothing is deleted or moved.",
        view.groups.len()
    ));
    ui.horizontal(|ui| {
        ui.add_enabled_ui(others > 0, |ui| {
            if ui.button("Export list (CSV)…").clicked() {
                intents.push(Intent::PickDuplicatesExport(ExportKind::Csv));
            }
            if ui.button("Export list (JSON)…").clicked() {
                intents.push(Intent::PickDuplicatesExport(ExportKind::Json));
            }
            if ui
                .button("Copy the others to a folder…")
                .on_hover_text("Copies (never moves) every photo not kept into a folder")
                .clicked()
            {
                intents.push(Intent::PickDuplicatesExport(ExportKind::CopyToFolder));
            }
        });
    });
}

/// A file size for people.
fn size(bytes: u64) -> String {
    match bytes {
        0 => "size unknown".to_string(),
        b if b >= 1 << 20 => format!("{:.1} MB", b as f64 / (1 << 20) as f64),
        b => format!("{:.0} KB", (b as f64 / 1024.0).max(1.0)),
    }
}
