//! Search results → files: copies of the images, ranked by file name, plus a CSV and a
//! JSON manifest (rank, distance, source path, class).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::index::SearchHit;
use super::{EngineError, Result};

/// Name of the JSON manifest; a Likeness manifest marks a folder as an earlier export.
pub const MANIFEST_JSON: &str = super::files::EXPORT_MANIFEST_JSON;
pub const MANIFEST_CSV: &str = "results.csv";
/// The journal of an export being moved into place: the new manifest, written before the
/// first photo is moved and removed after the last manifest is, so that an export killed
/// half-way is finished off by the next one instead of blocking the folder. Hidden, so a
/// scan of the folder never takes it for a photo.
pub const JOURNAL_JSON: &str = ".likeness-export-in-progress.json";
use super::files::MAX_MANIFEST_BYTES;
/// What a manifest says wrote it.
pub const GENERATOR: &str = super::files::EXPORT_GENERATOR;
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
    // An export killed while moving its photos in: its files are ours to replace.
    let interrupted = interrupted_export(folder);
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
        .chain(&interrupted)
        .flat_map(|m| m.results.iter().map(|r| r.file.as_str()))
        .chain(
            [MANIFEST_CSV, MANIFEST_JSON]
                .into_iter()
                .filter(|_| earlier.is_some() || interrupted.is_some()),
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
    let replaced: Vec<&ExportManifest> = earlier.iter().chain(&interrupted).collect();
    let committed =
        staged.and_then(|()| commit(&manifest, &replaced, &staging, folder, &mut |_| Ok(())));
    std::fs::remove_dir_all(&staging).ok();
    committed.map(|()| manifest)
}

/// The manifest of an export that was killed while moving its photos in, if its journal
/// is in `folder`. A journal that cannot be read is left alone (and so protects nothing).
fn interrupted_export(folder: &Path) -> Option<ExportManifest> {
    let bytes =
        super::files::read_regular(&folder.join(JOURNAL_JSON), MAX_MANIFEST_BYTES, "a journal")
            .ok()?;
    serde_json::from_slice::<ExportManifest>(&bytes)
        .ok()
        .filter(|m| m.generator == GENERATOR)
}

/// Whether an export into `to` would land inside the indexed `library` folder (its
/// copies are then left out of the library's scans, as every export folder is).
pub fn inside_library(to: &Path, library: &Path) -> bool {
    let to = std::path::absolute(to).unwrap_or_else(|_| to.to_path_buf());
    let to = std::fs::canonicalize(&to).unwrap_or(to);
    let library = std::fs::canonicalize(library).unwrap_or_else(|_| library.to_path_buf());
    to.starts_with(library)
}

/// The manifest of an earlier Likeness export in `folder`, if there is one. A
/// `results.json` that is not one (the user's own file) is not taken for one.
fn earlier_export(folder: &Path) -> Result<Option<ExportManifest>> {
    let path = folder.join(MANIFEST_JSON);
    // Bounded, and only a regular file: a pipe or a link to /dev/zero named results.json
    // must not hang the export or fill memory; such a file is simply not a manifest.
    let Ok(bytes) = super::files::read_regular(&path, MAX_MANIFEST_BYTES, "a manifest") else {
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
    let canonical = std::fs::canonicalize(source).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            EngineError::bad_file(
                source,
                "no longer exists (deleted or moved since the folder was indexed); update \
                 the index (`likeness index`, or Update in the window) and export again \
                 (nothing was exported)",
            )
        } else {
            EngineError::io(source, e)
        }
    })?;
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
            super::csv::field(&result.source.to_string_lossy()),
            super::csv::field(result.class.as_deref().unwrap_or("")),
            super::csv::field(&result.file)
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

/// Moves the staged export into `folder`. The journal (the new manifest) is written
/// first, so that a kill at any later point leaves a folder the next export recognises
/// as its own; then the files of `replaced` exports that this one does not have are
/// removed, the photos moved in, then the manifests (so a folder with a manifest always
/// holds what it lists), and the journal removed last. `after_move` is called after each
/// move (tests stop the commit there, as a kill would).
fn commit(
    manifest: &ExportManifest,
    replaced: &[&ExportManifest],
    staging: &Path,
    folder: &Path,
    after_move: &mut dyn FnMut(usize) -> Result<()>,
) -> Result<()> {
    let journal = folder.join(JOURNAL_JSON);
    let json = serde_json::to_vec(manifest).map_err(|e| EngineError::Config(e.to_string()))?;
    super::atomic::write_atomic(&journal, &json)?;
    let new: HashSet<&str> = manifest.results.iter().map(|r| r.file.as_str()).collect();
    for result in replaced.iter().flat_map(|m| &m.results) {
        if !new.contains(result.file.as_str()) {
            std::fs::remove_file(folder.join(&result.file)).ok();
        }
    }
    let names = manifest
        .results
        .iter()
        .map(|r| r.file.as_str())
        .chain([MANIFEST_CSV, MANIFEST_JSON]);
    for (moved, name) in names.enumerate() {
        let destination = folder.join(name);
        std::fs::rename(staging.join(name), &destination)
            .map_err(|e| EngineError::io(&destination, e))?;
        after_move(moved + 1)?;
    }
    std::fs::remove_file(&journal).map_err(|e| EngineError::io(&journal, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A photo per hit in `dir/library`, and the hits.
    fn library_hits(dir: &Path, count: usize) -> Vec<SearchHit> {
        let library = dir.join("library");
        std::fs::create_dir_all(&library).expect("mkdir");
        (1..=count)
            .map(|rank| {
                let path = library.join(format!("photo_{rank:03}.jpg"));
                std::fs::write(&path, format!("photo {rank}")).expect("write");
                SearchHit {
                    rank,
                    distance: rank as f32,
                    path,
                    class: None,
                }
            })
            .collect()
    }

    /// Issue #22 item 2: a kill during the move phase left 53 of 99 photos, no manifest
    /// and a staging folder, and every later export into the folder was refused.
    #[test]
    fn an_export_killed_while_moving_in_is_finished_by_the_next_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let hits = library_hits(dir.path(), 99);
        let library = dir.path().join("library");
        let source = ExportSource {
            folder: &library,
            index: None,
        };
        let out = dir.path().join("out");
        std::fs::create_dir(&out).expect("mkdir");
        // The killed export, up to its 53rd move: what export_results does, with the
        // commit stopped there and nothing cleaned up after it (a kill runs no cleanup).
        let manifest = ExportManifest {
            generator: GENERATOR.into(),
            index: None,
            query: "q.jpg".into(),
            results: hits
                .iter()
                .map(|hit| ExportedResult {
                    rank: hit.rank,
                    distance: hit.distance,
                    source: hit.path.clone(),
                    class: None,
                    file: exported_file_name(hit, hits.len()),
                })
                .collect(),
        };
        let staging = out.join(super::super::atomic::temporary_name());
        std::fs::create_dir(&staging).expect("mkdir");
        stage(&manifest, &staging).expect("stage");
        let killed = commit(&manifest, &[], &staging, &out, &mut |moved| {
            if moved == 53 {
                Err(EngineError::Cancelled)
            } else {
                Ok(())
            }
        });
        assert!(matches!(killed, Err(EngineError::Cancelled)), "{killed:?}");
        // Its process is gone: its staging folder now bears a dead process's id (one
        // above the kernel's pid_max).
        std::fs::rename(
            &staging,
            out.join(format!(
                "{}4194399-0badf00d",
                super::super::atomic::TEMPORARY_PREFIX
            )),
        )
        .expect("rename");
        assert!(out.join("53_photo_053.jpg").exists() && !out.join(MANIFEST_JSON).exists());

        // The next export (of fewer results) finishes: no refusal, the folder holds
        // exactly the new export, and neither the journal nor the staging folder is left.
        let again = export_results(Path::new("q.jpg"), &hits[..10], &out, &source)
            .expect("the next export recovers the folder");
        assert_eq!(again.results.len(), 10);
        let mut left: Vec<String> = std::fs::read_dir(&out)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut expected: Vec<String> = again.results.iter().map(|r| r.file.clone()).collect();
        expected.extend([MANIFEST_CSV.to_string(), MANIFEST_JSON.to_string()]);
        expected.sort();
        assert_eq!(left, expected);
    }

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
