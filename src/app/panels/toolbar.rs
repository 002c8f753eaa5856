//! The toolbar: the library folder (dialog, recent libraries, models and indexes),
//! opening a model or an index.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::Intent;
use crate::app::state::AppState;

pub fn toolbar_ui(ui: &mut egui::Ui, state: &AppState, intents: &mut Vec<Intent>) {
    ui.horizontal(|ui| {
        ui.heading("Likeness");
        ui.separator();
        if ui
            .button("Choose library…")
            .on_hover_text("A folder of photos; one sub-folder per class to train")
            .clicked()
        {
            intents.push(Intent::PickLibrary);
        }
        let settings = &state.settings;
        let anything_recent = !(settings.recent_folders.is_empty()
            && settings.recent_models.is_empty()
            && settings.recent_indexes.is_empty());
        ui.add_enabled_ui(anything_recent, |ui| {
            ui.menu_button("Recent", |ui| {
                recent_section(
                    ui,
                    "Libraries",
                    &settings.recent_folders,
                    Intent::ChooseLibrary,
                    intents,
                    describe_library,
                );
                recent_section(
                    ui,
                    "Models",
                    &settings.recent_models,
                    Intent::OpenModel,
                    intents,
                    describe_model,
                );
                recent_section(
                    ui,
                    "Indexes",
                    &settings.recent_indexes,
                    Intent::OpenIndex,
                    intents,
                    describe_index,
                );
            });
        });
        if ui
            .button("Open model…")
            .on_hover_text(format!(
                "Models you trained are in {}",
                state.dirs.models.display()
            ))
            .clicked()
        {
            intents.push(Intent::PickModelFile);
        }
        if ui
            .button("Open index…")
            .on_hover_text(format!(
                "Indexes you built are in {}",
                state.dirs.indexes.display()
            ))
            .clicked()
        {
            intents.push(Intent::PickIndexFile);
        }
    });
}

/// One list of the Recent menu: a heading and an entry per path (missing files greyed),
/// named by `describe` the way a person recognises it (the full path on hover). Names are
/// worked out once per path and kept in egui's memory: a model's is read from its file.
fn recent_section(
    ui: &mut egui::Ui,
    heading: &str,
    paths: &[PathBuf],
    intent: impl Fn(PathBuf) -> Intent,
    intents: &mut Vec<Intent>,
    describe: fn(&Path) -> String,
) {
    if paths.is_empty() {
        return;
    }
    ui.label(egui::RichText::new(heading).strong());
    let cache = egui::Id::unique("recent_names");
    for path in paths {
        let name = ui.ctx().data_mut(|data| {
            data.get_temp_mut_or_insert_with(cache, HashMap::<PathBuf, String>::new)
                .entry(path.clone())
                .or_insert_with(|| describe(path))
                .clone()
        });
        let exists = path.exists();
        let button = ui
            .add_enabled(exists, egui::Button::new(name))
            .on_hover_text(path.display().to_string())
            .on_disabled_hover_text(format!("{} no longer exists", path.display()));
        if button.clicked() {
            intents.push(intent(path.clone()));
            ui.close();
        }
    }
    ui.separator();
}

fn file_name_of(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// "flowers (in /home/ann/Pictures)": two libraries called "train" are told apart.
fn describe_library(path: &Path) -> String {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => format!("{} (in {})", file_name_of(path), parent.display()),
        None => file_name_of(path),
    }
}

/// "flowers5-train · 2026-11-30 09:41 UTC · recall@1 0.81": what it learned from, when,
/// and how well, instead of `flowers5-train-1795998419.safetensors`.
fn describe_model(path: &Path) -> String {
    let Ok(info) = crate::engine::model::read_model_description(path) else {
        return file_name_of(path);
    };
    let summary = &info.summary;
    let mut parts = Vec::new();
    let folder = Path::new(&summary.data_folder);
    if summary.data_folder.is_empty() {
        parts.push(name_without_timestamp(path));
    } else {
        parts.push(file_name_of(folder));
    }
    if !summary.fine_tuned_from_marks.is_empty() {
        parts.push("retrained with marks".into());
    }
    parts.push(super::status::when(modified(path)));
    if let Some(recall) = summary.validation_recall_at_1 {
        parts.push(format!("recall@1 {recall:.2}"));
    }
    parts.join(" · ")
}

/// "flowers5-train · 2026-11-30 09:43 UTC": the folder it indexes (its file is named after
/// it) and when it was built.
fn describe_index(path: &Path) -> String {
    format!(
        "{} · {}",
        name_without_timestamp(path),
        super::status::when(modified(path))
    )
}

/// A file name without its extension and the "-<unix seconds>" the window adds to the
/// models and indexes it makes.
fn name_without_timestamp(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match stem.rsplit_once('-') {
        Some((name, secs))
            if !name.is_empty() && !secs.is_empty() && secs.chars().all(|c| c.is_ascii_digit()) =>
        {
            name.to_string()
        }
        _ => stem,
    }
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_entries_are_named_as_a_person_recognises_them() {
        let dir = tempfile::tempdir().expect("temp dir");
        let library = dir.path().join("train");
        assert_eq!(
            describe_library(&library),
            format!("train (in {})", dir.path().display())
        );
        let model = dir.path().join("train-1795998419.safetensors");
        crate::engine::synthetic::write_tiny_model(&model).expect("model");
        let named = describe_model(&model);
        assert!(named.contains(" UTC"), "{named}");
        assert!(!named.contains("1795998419"), "{named}");
        let index = dir.path().join("flowers-1795998419.likeness-index");
        std::fs::write(&index, b"x").expect("write");
        assert!(
            describe_index(&index).starts_with("flowers · 20"),
            "{}",
            describe_index(&index)
        );
    }
}
