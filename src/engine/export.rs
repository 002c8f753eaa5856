//! Search results → files: copies of the images, ranked by file name, plus a CSV and a
//! JSON manifest (rank, distance, source path, class).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::index::SearchHit;
use super::{EngineError, Result};

/// Name of the JSON manifest; a Likeness manifest marks a folder as an earlier export.
pub const MANIFEST_JSON: &str = "results.json";
pub const MANIFEST_CSV: &str = "results.csv";
/// What a manifest says wrote it.
pub const GENERATOR: &str = "Likeness";
/// The longest file name most file systems take, in bytes.
const MAX_NAME_BYTES: usize = 255;

/// The JSON manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportManifest {
    /// "Likeness" (absent in manifests of earlier versions).
    #[serde(default)]
    pub generator: String,
    /// The index the results came from.
    #[serde(default)]
    pub index: Option<PathBuf>,
    pub query: PathBuf,
    pub results: Vec<ExportedResult>,
}

/// One exported image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedResult {
    pub rank: usize,
    pub distance: f32,
    pub source: PathBuf,
    pub class: Option<String>,
    /// File name inside the export folder.
    pub file: String,
}

/// The file name an exported hit gets: its rank, zero-padded so names sort by rank, then
/// the photo's name, shortened (keeping its extension) when the prefix would make it
/// longer than a file name may be.
pub fn exported_file_name(hit: &SearchHit, total: usize) -> String {
    let width = total.max(1).to_string().len().max(2);
    let prefix = format!("{:0width$}_", hit.rank);
    let name = hit
        .path
        .file_name()
        .map_or_else(|| "image".to_string(), |n| n.to_string_lossy().into_owned());
    let room = MAX_NAME_BYTES - prefix.len();
    if name.len() <= room {
        return format!("{prefix}{name}");
    }
    let extension = Path::new(&name)
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .filter(|e| e.len() < 16)
        .unwrap_or_default();
    let mut stem_room = room - extension.len();
    while !name.is_char_boundary(stem_room) {
        stem_room -= 1;
    }
    format!("{prefix}{}{extension}", &name[..stem_room])
}

/// Where exported photos may come from, and which index named them.
#[derive(Debug, Clone)]
pub struct ExportSource<'a> {
    /// Only regular files inside this folder are copied (an index names its photos; a
    /// damaged or hostile one must not make export read `/dev/zero` or files elsewhere).
    pub folder: &'a Path,
    pub index: Option<&'a Path>,
}

/// Copies `hits` into `folder` with a CSV and a JSON manifest.
///
/// Nothing is overwritten that Likeness did not write: the files listed by an earlier
/// Likeness export in that folder are replaced (and those the new export does not have
/// are removed), and any other file that would be overwritten makes the export stop
/// before it writes anything. The copies are made in a temporary folder first and moved
/// into place only when all of them succeeded, so a failure (a full disk, a photo that
/// vanished) leaves the folder as it was. Copies keep their source's permissions.
pub fn export_results(
    query: &Path,
    hits: &[SearchHit],
    folder: &Path,
    source: &ExportSource<'_>,
) -> Result<ExportManifest> {
    std::fs::create_dir_all(folder).map_err(|e| EngineError::io(folder, e))?;
    let earlier = earlier_export(folder)?;
    let results: Vec<ExportedResult> = hits
        .iter()
        .map(|hit| ExportedResult {
            rank: hit.rank,
            distance: hit.distance,
            source: hit.path.clone(),
            class: hit.class.clone(),
            file: exported_file_name(hit, hits.len()),
        })
        .collect();
    let ours: HashSet<&str> = earlier
        .iter()
        .flat_map(|m| m.results.iter().map(|r| r.file.as_str()))
        .chain(
            [MANIFEST_CSV, MANIFEST_JSON]
                .into_iter()
                .filter(|_| earlier.is_some()),
        )
        .collect();
    if let Some(clash) = results
        .iter()
        .map(|r| r.file.as_str())
        .chain([MANIFEST_CSV, MANIFEST_JSON])
        .find(|name| !ours.contains(name) && folder.join(name).symlink_metadata().is_ok())
    {
        return Err(EngineError::bad_file(
            folder.join(clash),
            "already exists and was not written by a Likeness export; choose another folder \
             (nothing was exported)",
        ));
    }
    let allowed =
        std::fs::canonicalize(source.folder).map_err(|e| EngineError::io(source.folder, e))?;
    for result in &results {
        check_source(&result.source, &allowed)?;
    }

    let staging = folder.join(super::atomic::temporary_name());
    super::atomic::remove_stale_temporaries(folder);
    std::fs::create_dir(&staging).map_err(|e| EngineError::io(&staging, e))?;
    let manifest = ExportManifest {
        generator: GENERATOR.into(),
        index: source.index.map(Path::to_path_buf),
        query: query.to_path_buf(),
        results,
    };
    let staged = stage(&manifest, &staging);
    let committed = staged.and_then(|()| commit(&manifest, earlier.as_ref(), &staging, folder));
    std::fs::remove_dir_all(&staging).ok();
    committed.map(|()| manifest)
}

/// The manifest of an earlier Likeness export in `folder`, if there is one. A
/// `results.json` that is not one (the user's own file) is not taken for one.
fn earlier_export(folder: &Path) -> Result<Option<ExportManifest>> {
    let path = folder.join(MANIFEST_JSON);
    let Ok(bytes) = std::fs::read(&path) else {
        return Ok(None);
    };
    Ok(serde_json::from_slice::<ExportManifest>(&bytes)
        .ok()
        .filter(|m| m.generator == GENERATOR || m.generator.is_empty() && !m.results.is_empty()))
}

/// Errors unless `source` is a regular file inside `allowed` (canonical paths).
fn check_source(source: &Path, allowed: &Path) -> Result<()> {
    let refuse = |why: &str| {
        EngineError::bad_file(
            source,
            format!("{why}; the index may be damaged (nothing was exported)"),
        )
    };
    let canonical = std::fs::canonicalize(source).map_err(|e| EngineError::io(source, e))?;
    if !canonical.starts_with(allowed) {
        return Err(refuse(&format!(
            "is outside the indexed folder {}",
            allowed.display()
        )));
    }
    let metadata = std::fs::metadata(&canonical).map_err(|e| EngineError::io(source, e))?;
    if !metadata.is_file() {
        return Err(refuse("is not a regular file"));
    }
    Ok(())
}

/// Copies every photo and writes both manifests into `staging`.
fn stage(manifest: &ExportManifest, staging: &Path) -> Result<()> {
    for result in &manifest.results {
        let destination = staging.join(&result.file);
        // `copy` keeps the source's permission bits (a private photo stays private).
        std::fs::copy(&result.source, &destination)
            .map_err(|e| EngineError::io(&result.source, e))?;
    }
    let mut csv = String::from("rank,distance,source,class,file\n");
    for result in &manifest.results {
        csv.push_str(&format!(
            "{},{},{},{},{}\n",
            result.rank,
            result.distance,
            csv_field(&result.source.to_string_lossy()),
            csv_field(result.class.as_deref().unwrap_or("")),
            csv_field(&result.file)
        ));
    }
    let csv_path = staging.join(MANIFEST_CSV);
    std::fs::write(&csv_path, csv).map_err(|e| EngineError::io(&csv_path, e))?;
    let json =
        serde_json::to_vec_pretty(manifest).map_err(|e| EngineError::Config(e.to_string()))?;
    let json_path = staging.join(MANIFEST_JSON);
    std::fs::write(&json_path, json).map_err(|e| EngineError::io(&json_path, e))?;
    Ok(())
}

/// Moves the staged export into `folder`: first removes the earlier export's photos
/// that this one does not have, then moves the photos, then the manifests (so a folder
/// with a manifest always holds what it lists).
fn commit(
    manifest: &ExportManifest,
    earlier: Option<&ExportManifest>,
    staging: &Path,
    folder: &Path,
) -> Result<()> {
    let new: HashSet<&str> = manifest.results.iter().map(|r| r.file.as_str()).collect();
    if let Some(earlier) = earlier {
        for result in &earlier.results {
            if !new.contains(result.file.as_str()) {
                std::fs::remove_file(folder.join(&result.file)).ok();
            }
        }
    }
    let names = manifest
        .results
        .iter()
        .map(|r| r.file.as_str())
        .chain([MANIFEST_CSV, MANIFEST_JSON]);
    for name in names {
        let destination = folder.join(name);
        std::fs::rename(staging.join(name), &destination)
            .map_err(|e| EngineError::io(&destination, e))?;
    }
    Ok(())
}

/// Quotes a CSV field when it holds a comma, quote or line break (RFC 4180).
fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_ranked_copies_and_manifests_without_clobbering() {
        let dir = tempfile::tempdir().expect("temp dir");
        let source = dir.path().join("src, with comma.png");
        std::fs::write(&source, b"png bytes").expect("write");
        let hits = vec![SearchHit {
            rank: 1,
            distance: 0.5,
            path: source.clone(),
            class: Some("rose".into()),
        }];
        let out = dir.path().join("out");
        let source = ExportSource {
            folder: dir.path(),
            index: None,
        };
        let manifest = export_results(Path::new("q.jpg"), &hits, &out, &source).expect("export");
        assert_eq!(manifest.results[0].file, "01_src, with comma.png");
        assert_eq!(
            std::fs::read(out.join("01_src, with comma.png")).expect("copy"),
            b"png bytes"
        );
        let csv = std::fs::read_to_string(out.join(MANIFEST_CSV)).expect("csv");
        assert!(csv.contains("\"01_src, with comma.png\""), "{csv}");
        let json: ExportManifest =
            serde_json::from_slice(&std::fs::read(out.join(MANIFEST_JSON)).expect("json"))
                .expect("parse");
        assert_eq!(json, manifest);
        // A second export into the same folder replaces the earlier one.
        export_results(Path::new("q.jpg"), &hits, &out, &source).expect("re-export");

        // A folder with the user's own file of that name is refused.
        let theirs = dir.path().join("theirs");
        std::fs::create_dir(&theirs).expect("mkdir");
        std::fs::write(theirs.join("01_src, with comma.png"), b"precious").expect("write");
        assert!(export_results(Path::new("q.jpg"), &hits, &theirs, &source).is_err());
        assert_eq!(
            std::fs::read(theirs.join("01_src, with comma.png")).expect("read"),
            b"precious"
        );
    }
}
