//! The Recent menu's files as a person recognises them: "flowers (in /home/ann/Pictures)",
//! "flowers5-train · 2026-11-30 09:41 UTC · recall@1 0.81", and whether each is still
//! there. Worked out on the window's disk thread ([`super::disk`]): a model's name is read
//! from its file.

use std::path::{Path, PathBuf};

/// What a Recent entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecentKind {
    Library,
    Model,
    Index,
}

/// A Recent entry, described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentFile {
    pub path: PathBuf,
    pub name: String,
    pub exists: bool,
}

/// Describes each file (on the disk thread).
pub fn describe_recent(files: &[(PathBuf, RecentKind)]) -> Vec<RecentFile> {
    files
        .iter()
        .map(|(path, kind)| RecentFile {
            path: path.clone(),
            name: match kind {
                RecentKind::Library => describe_library(path),
                RecentKind::Model => describe_model(path),
                RecentKind::Index => describe_index(path),
            },
            exists: path.exists(),
        })
        .collect()
}

pub fn file_name_of(path: &Path) -> String {
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
    parts.push(super::panels::status::when(modified(path)));
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
        super::panels::status::when(modified(path))
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
