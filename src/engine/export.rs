//! Search results → files: copies of the images, ranked by file name, plus a CSV and a
//! JSON manifest (rank, distance, source path, class).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::index::SearchHit;
use super::{EngineError, Result};

/// Name of the JSON manifest; its presence marks a folder as an earlier export.
pub const MANIFEST_JSON: &str = "results.json";
pub const MANIFEST_CSV: &str = "results.csv";

/// The JSON manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportManifest {
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

/// The file name an exported hit gets: its rank, zero-padded so names sort by rank.
pub fn exported_file_name(hit: &SearchHit, total: usize) -> String {
    let width = total.max(1).to_string().len().max(2);
    let name = hit
        .path
        .file_name()
        .map_or_else(|| "image".to_string(), |n| n.to_string_lossy().into_owned());
    format!("{:0width$}_{name}", hit.rank)
}

/// Copies `hits` into `folder` with a manifest. Refuses to overwrite files in a folder
/// that is not an earlier export, so no one's files are lost.
pub fn export_results(query: &Path, hits: &[SearchHit], folder: &Path) -> Result<ExportManifest> {
    std::fs::create_dir_all(folder).map_err(|e| EngineError::io(folder, e))?;
    let earlier_export = folder.join(MANIFEST_JSON).exists();
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
    if !earlier_export
        && let Some(clash) = results
            .iter()
            .map(|r| folder.join(&r.file))
            .chain([folder.join(MANIFEST_CSV)])
            .find(|path| path.exists())
    {
        return Err(EngineError::bad_file(
            clash,
            "already exists and is not from an earlier Likeness export; choose an empty folder",
        ));
    }
    for result in &results {
        let destination = folder.join(&result.file);
        let bytes =
            std::fs::read(&result.source).map_err(|e| EngineError::io(&result.source, e))?;
        super::atomic::write_atomic(&destination, &bytes)?;
    }
    let manifest = ExportManifest {
        query: query.to_path_buf(),
        results,
    };
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
    super::atomic::write_atomic(&folder.join(MANIFEST_CSV), csv.as_bytes())?;
    let json =
        serde_json::to_vec_pretty(&manifest).map_err(|e| EngineError::Config(e.to_string()))?;
    super::atomic::write_atomic(&folder.join(MANIFEST_JSON), &json)?;
    Ok(manifest)
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
        let manifest = export_results(Path::new("q.jpg"), &hits, &out).expect("export");
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
        export_results(Path::new("q.jpg"), &hits, &out).expect("re-export");

        // A folder with the user's own file of that name is refused.
        let theirs = dir.path().join("theirs");
        std::fs::create_dir(&theirs).expect("mkdir");
        std::fs::write(theirs.join("01_src, with comma.png"), b"precious").expect("write");
        assert!(export_results(Path::new("q.jpg"), &hits, &theirs).is_err());
        assert_eq!(
            std::fs::read(theirs.join("01_src, with comma.png")).expect("read"),
            b"precious"
        );
    }
}
