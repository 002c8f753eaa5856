//! Search results → files: copies of the images, ranked by file name, plus a CSV and a
//! JSON manifest (rank, distance, source path, class).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::data::SkippedFile;
use super::index::SearchHit;
use super::signature::RecordKey;
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
    /// The export folder it was written into (canonical): a manifest copied into another
    /// folder proves nothing there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<PathBuf>,
    /// XXH3 of the `results.csv` written beside it (`None`: none was written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv_content: Option<u64>,
    /// The keyed MAC of everything above ([`super::signature`]): the proof that Likeness
    /// wrote this manifest, and so that the files it lists are Likeness' to replace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
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
    /// XXH3 of the bytes written: a later export replaces the file only while its bytes
    /// are still these (a person's edit is theirs to keep).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<u64>,
}

/// What an export did: its manifest, and the files of an earlier export it kept because
/// they changed since (with why, and where the new copy went instead).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportReport {
    pub manifest: ExportManifest,
    pub kept: Vec<super::data::SkippedFile>,
}

/// The MAC purpose of export manifests.
const MANIFEST_PURPOSE: &str = "likeness export manifest";

impl ExportManifest {
    /// Signs the manifest with the user's record key.
    fn sign(&mut self, key: &RecordKey) -> Result<()> {
        self.mac = None;
        let bytes = serde_json::to_vec(self).map_err(|e| EngineError::Config(e.to_string()))?;
        self.mac = Some(key.sign(MANIFEST_PURPOSE, &bytes));
        Ok(())
    }

    /// Whether Likeness wrote this manifest for `folder` (canonical): its MAC holds under
    /// the user's key, it names this folder, and every file it lists is a plain name in it.
    fn is_own(&self, key: &RecordKey, folder: &Path) -> bool {
        let Some(mac) = &self.mac else {
            return false;
        };
        let mut unsigned = self.clone();
        unsigned.mac = None;
        let Ok(bytes) = serde_json::to_vec(&unsigned) else {
            return false;
        };
        self.generator == GENERATOR
            && self.folder.as_deref() == Some(folder)
            && key.verify(MANIFEST_PURPOSE, &bytes, mac)
            && self.results.iter().all(|r| plain_name(&r.file))
    }
}

/// A single plain file name: no folder, no `..`, not absolute, not hidden.
fn plain_name(name: &str) -> bool {
    let mut parts = Path::new(name).components();
    matches!(
        (parts.next(), parts.next()),
        (Some(std::path::Component::Normal(_)), None)
    ) && !name.starts_with('.')
        && !name.contains('/')
        && !name.contains('\\')
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
/// Nothing is replaced or removed that Likeness cannot prove it wrote (house style 21):
/// a file is replaced only when an earlier export's manifest (or the journal of one
/// killed half-way), signed with the user's record key for this very folder, lists it
/// under a plain name and its bytes are still those written. A listed file that changed
/// since is kept, and the new copy takes a free name beside it (the report says so); any
/// other file in the way makes the export stop before it writes anything. Inside the
/// indexed folder an export goes only into a new, empty or earlier export folder: scans
/// leave export folders out, so an export into a class folder would hide its photos.
///
/// The copies are made in a temporary folder first and moved into place only when all
/// of them succeeded, so a failure (a full disk, a photo that vanished) leaves the folder
/// as it was. Copies keep their source's permissions.
pub fn export_results(
    query: &Path,
    hits: &[SearchHit],
    folder: &Path,
    source: &ExportSource<'_>,
) -> Result<ExportReport> {
    check_not_a_library_folder(folder, source.folder)?;
    let key = RecordKey::load_or_create()?;
    std::fs::create_dir_all(folder).map_err(|e| EngineError::io(folder, e))?;
    let canonical_folder = std::fs::canonicalize(folder).map_err(|e| EngineError::io(folder, e))?;
    let earlier = earlier_export(folder).filter(|m| m.is_own(&key, &canonical_folder));
    // An export killed while moving its photos in: its files are ours to replace too.
    let interrupted = interrupted_export(folder).filter(|m| m.is_own(&key, &canonical_folder));
    let replaced: Vec<&ExportManifest> = earlier.iter().chain(&interrupted).collect();
    let own = OwnFiles::new(folder, &replaced);
    let foreign = |name: &str| {
        EngineError::bad_file(
            folder.join(name),
            "already exists and was not written by a Likeness export (or by an earlier \
             version, which did not sign its exports); choose another folder (nothing was \
             exported)",
        )
    };
    let mut kept = Vec::new();
    let mut taken: HashSet<String> = HashSet::new();
    let mut results = Vec::with_capacity(hits.len());
    for hit in hits {
        let mut file = exported_file_name(hit, hits.len());
        if folder.join(&file).symlink_metadata().is_ok() && !own.replaceable(&file) {
            // In a folder of Likeness' own exports, a file in the way (edited since, or
            // put there) is kept and the new copy takes a free name; in any other folder
            // the export stops before it writes anything.
            if replaced.is_empty() {
                return Err(foreign(&file));
            }
            let free = free_export_name(folder, &file, &taken, &own);
            let why = if own.listed(&file) {
                "changed since Likeness exported it, so it is yours now"
            } else {
                "not written by a Likeness export"
            };
            kept.push(SkippedFile {
                path: folder.join(&file),
                reason: format!("{why}: kept, and this export's copy is {free}"),
            });
            file = free;
        }
        taken.insert(file.clone());
        results.push(ExportedResult {
            rank: hit.rank,
            distance: hit.distance,
            source: hit.path.clone(),
            class: hit.class.clone(),
            file,
            content: None,
        });
    }
    if folder.join(MANIFEST_JSON).symlink_metadata().is_ok() && earlier.is_none() {
        return Err(foreign(MANIFEST_JSON));
    }
    let write_csv =
        if folder.join(MANIFEST_CSV).symlink_metadata().is_err() || own.csv_replaceable() {
            true
        } else if earlier.is_some() || interrupted.is_some() {
            kept.push(SkippedFile {
                path: folder.join(MANIFEST_CSV),
                reason: format!(
                    "changed since Likeness exported it, so it is yours now: kept, and no new \
                 CSV was written ({MANIFEST_JSON} lists this export)"
                ),
            });
            false
        } else {
            return Err(foreign(MANIFEST_CSV));
        };
    let allowed =
        std::fs::canonicalize(source.folder).map_err(|e| EngineError::io(source.folder, e))?;
    for result in &results {
        check_source(&result.source, &allowed)?;
    }

    let staging = folder.join(super::atomic::temporary_name());
    super::atomic::remove_stale_temporaries(folder);
    std::fs::create_dir(&staging).map_err(|e| EngineError::io(&staging, e))?;
    let mut manifest = ExportManifest {
        generator: GENERATOR.into(),
        index: source.index.map(Path::to_path_buf),
        query: query.to_path_buf(),
        results,
        folder: Some(canonical_folder),
        csv_content: None,
        mac: None,
    };
    let staged = stage(&mut manifest, &staging, write_csv)
        .and_then(|()| seal(&mut manifest, &key, &staging));
    let committed = staged.and_then(|()| {
        commit(
            &manifest,
            &own,
            &staging,
            folder,
            &mut kept,
            &mut |_| Ok(()),
        )
    });
    std::fs::remove_dir_all(&staging).ok();
    committed.map(|()| ExportReport { manifest, kept })
}

/// The files earlier Likeness exports (proven by their signed manifests) wrote into a
/// folder, with the bytes each had.
struct OwnFiles<'a> {
    folder: &'a Path,
    /// File name → XXH3 written (`None` in a manifest that did not record it).
    written: std::collections::HashMap<&'a str, Option<u64>>,
    csv_written: Vec<u64>,
}

impl<'a> OwnFiles<'a> {
    fn new(folder: &'a Path, manifests: &[&'a ExportManifest]) -> Self {
        let mut written = std::collections::HashMap::new();
        for result in manifests.iter().flat_map(|m| &m.results) {
            written.insert(result.file.as_str(), result.content);
        }
        Self {
            folder,
            written,
            csv_written: manifests.iter().filter_map(|m| m.csv_content).collect(),
        }
    }

    /// Whether a signed manifest lists `name`.
    fn listed(&self, name: &str) -> bool {
        self.written.contains_key(name)
    }

    /// Whether `name` is listed and its bytes are still those Likeness wrote.
    fn replaceable(&self, name: &str) -> bool {
        matches!(self.written.get(name), Some(Some(content)) if file_content(&self.folder.join(name)) == Some(*content))
    }

    fn csv_replaceable(&self) -> bool {
        file_content(&self.folder.join(MANIFEST_CSV)).is_some_and(|c| self.csv_written.contains(&c))
    }
}

/// The XXH3 of a regular file's bytes (`None`: not a regular file, or unreadable).
fn file_content(path: &Path) -> Option<u64> {
    if !std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file()) {
        return None;
    }
    super::files::read_regular(path, 1 << 30, "an exported file")
        .ok()
        .map(|bytes| xxhash_rust::xxh3::xxh3_64(&bytes))
}

/// `NAME (2).EXT`, `NAME (3).EXT`… the first name not `taken` that is free in `folder` or
/// holds an earlier export's file still as it was written.
fn free_export_name(
    folder: &Path,
    name: &str,
    taken: &HashSet<String>,
    own: &OwnFiles<'_>,
) -> String {
    let path = Path::new(name);
    let stem = path
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let extension = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    (2..)
        .map(|n| format!("{stem} ({n}){extension}"))
        .find(|candidate| {
            !taken.contains(candidate)
                && (folder.join(candidate).symlink_metadata().is_err()
                    || own.replaceable(candidate))
        })
        .unwrap_or_else(|| name.to_string())
}

/// Refuses an export into a folder of the indexed library that holds files of its own:
/// scans leave export folders out, so the library's photos there would drop out of the
/// index and of training. A new folder, an empty one or an earlier export may be used.
fn check_not_a_library_folder(folder: &Path, library: &Path) -> Result<()> {
    if std::fs::symlink_metadata(folder).is_err()
        || !super::files::folder_within(folder, library)
        || super::files::is_export_folder(folder)
    {
        return Ok(());
    }
    let empty = std::fs::read_dir(folder)
        .map(|mut entries| entries.next().is_none())
        .unwrap_or(false);
    if empty {
        return Ok(());
    }
    Err(EngineError::bad_file(
        folder,
        format!(
            "is a folder of the indexed library {} and holds its files: an export folder is \
             left out of the library's index and training, so those photos would drop out. \
             Export into a new folder (nothing was exported)",
            library.display()
        ),
    ))
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
fn earlier_export(folder: &Path) -> Option<ExportManifest> {
    let path = folder.join(MANIFEST_JSON);
    // Bounded, and only a regular file: a pipe or a link to /dev/zero named results.json
    // must not hang the export or fill memory; such a file is simply not a manifest.
    let bytes = super::files::read_regular(&path, MAX_MANIFEST_BYTES, "a manifest").ok()?;
    serde_json::from_slice::<ExportManifest>(&bytes).ok()
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

/// Copies every photo into `staging`, recording the bytes of each, and the CSV when
/// `write_csv`.
fn stage(manifest: &mut ExportManifest, staging: &Path, write_csv: bool) -> Result<()> {
    for result in &mut manifest.results {
        let destination = staging.join(&result.file);
        // `copy` keeps the source's permission bits (a private photo stays private).
        std::fs::copy(&result.source, &destination)
            .map_err(|e| EngineError::io(&result.source, e))?;
        result.content = Some(
            file_content(&destination)
                .ok_or_else(|| EngineError::bad_file(&destination, "could not be read back"))?,
        );
    }
    if !write_csv {
        return Ok(());
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
    std::fs::write(&csv_path, &csv).map_err(|e| EngineError::io(&csv_path, e))?;
    manifest.csv_content = Some(xxhash_rust::xxh3::xxh3_64(csv.as_bytes()));
    Ok(())
}

/// Signs the manifest and writes it into `staging`.
fn seal(manifest: &mut ExportManifest, key: &RecordKey, staging: &Path) -> Result<()> {
    manifest.sign(key)?;
    let json =
        serde_json::to_vec_pretty(manifest).map_err(|e| EngineError::Config(e.to_string()))?;
    let json_path = staging.join(MANIFEST_JSON);
    std::fs::write(&json_path, json).map_err(|e| EngineError::io(&json_path, e))
}

/// Moves the staged export into `folder`. The journal (the new, signed manifest) is
/// written first, so that a kill at any later point leaves a folder the next export
/// recognises as its own; then the files of earlier exports that this one does not have
/// are removed (only those still as Likeness wrote them; changed ones are kept and added
/// to `kept`), the photos moved in, then the manifests (so a folder with a manifest always
/// holds what it lists), and the journal removed last. `after_move` is called after each
/// move (tests stop the commit there, as a kill would).
fn commit(
    manifest: &ExportManifest,
    own: &OwnFiles<'_>,
    staging: &Path,
    folder: &Path,
    kept: &mut Vec<SkippedFile>,
    after_move: &mut dyn FnMut(usize) -> Result<()>,
) -> Result<()> {
    let journal = folder.join(JOURNAL_JSON);
    let json = serde_json::to_vec(manifest).map_err(|e| EngineError::Config(e.to_string()))?;
    super::atomic::write_atomic(&journal, &json)?;
    let new: HashSet<&str> = manifest.results.iter().map(|r| r.file.as_str()).collect();
    let mut earlier: Vec<&str> = own.written.keys().copied().collect();
    earlier.sort_unstable();
    for name in earlier {
        let path = folder.join(name);
        if new.contains(name) || path.symlink_metadata().is_err() {
            continue;
        }
        if own.replaceable(name) {
            std::fs::remove_file(&path).ok();
        } else {
            kept.push(SkippedFile {
                path,
                reason: "from an earlier export, but changed since, so it is yours now: kept"
                    .into(),
            });
        }
    }
    let csv = manifest.csv_content.map(|_| MANIFEST_CSV);
    let names = manifest
        .results
        .iter()
        .map(|r| r.file.as_str())
        .chain(csv)
        .chain([MANIFEST_JSON]);
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
        let mut manifest = ExportManifest {
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
                    content: None,
                })
                .collect(),
            folder: Some(std::fs::canonicalize(&out).expect("canonical")),
            csv_content: None,
            mac: None,
        };
        let staging = out.join(super::super::atomic::temporary_name());
        std::fs::create_dir(&staging).expect("mkdir");
        let key = RecordKey::load_or_create().expect("key");
        stage(&mut manifest, &staging, true).expect("stage");
        seal(&mut manifest, &key, &staging).expect("seal");
        let own = OwnFiles::new(&out, &[]);
        let killed = commit(
            &manifest,
            &own,
            &staging,
            &out,
            &mut Vec::new(),
            &mut |moved| {
                if moved == 53 {
                    Err(EngineError::Cancelled)
                } else {
                    Ok(())
                }
            },
        );
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
            .expect("the next export recovers the folder")
            .manifest;
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
        let manifest = export_results(Path::new("q.jpg"), &hits, &out, &source)
            .expect("export")
            .manifest;
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
