//! `cargo bench --bench refine`: do marks improve the results on screen at once?
//!
//! `../shared/data/flowers5-train` (or `LIKENESS_DATA`) is split per class in file-name
//! order, as `scripts/quality.sh` does: the first 300 photos of each class are the library
//! (1500), the rest are the queries (1034). A default-preset model trained on the library
//! (`LIKENESS_REFINE_MODELS`, a `:`-separated list of model files, one per seed; or else
//! trained here for `LIKENESS_BENCH_BASE_SECS`, default 600 s, seeds 0, 1, 2) indexes the
//! library. For every query a simulated person marks its top 10: photos of its class
//! Alike, the others Not alike. The precision of the 10 results after the marked ones is
//! scored before (ranks 11-20 of the plain search) and after refining the query with
//! those marks (the refined ranking with the 10 marked photos left out), for the default
//! and other Rocchio weights (query expansion and the marks' vote follow each). Printed per
//! model and as mean ± spread over the models.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;

use likeness::engine::data::{DEFAULT_MAX_PIXELS, scan_folder};
use likeness::engine::feedback::refine::{Rocchio, refined_search};
use likeness::engine::index::{Gallery, IndexOptions, embed_files};
use likeness::engine::model::LoadedModel;

const LIBRARY_PER_CLASS: usize = 300;
const MARKED: usize = 10;
const SCORED: usize = 10;

fn split(source: &Path, library: &Path, queries: &Path) -> std::io::Result<()> {
    let mut classes: Vec<PathBuf> = std::fs::read_dir(source)?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.is_dir())
        .collect();
    classes.sort();
    for class in classes {
        let name = class.file_name().unwrap_or_default().to_owned();
        let mut photos: Vec<PathBuf> = std::fs::read_dir(&class)?
            .filter_map(|e| Some(e.ok()?.path()))
            .filter(|p| p.is_file())
            .collect();
        photos.sort();
        for (i, photo) in photos.iter().enumerate() {
            let side = if i < LIBRARY_PER_CLASS {
                library
            } else {
                queries
            };
            let folder = side.join(&name);
            std::fs::create_dir_all(&folder)?;
            std::fs::copy(photo, folder.join(photo.file_name().unwrap_or_default()))?;
        }
    }
    Ok(())
}

fn variants() -> Vec<(&'static str, Rocchio)> {
    let rocchio = |query, alike, not_alike| Rocchio {
        query,
        alike,
        not_alike,
    };
    vec![
        ("default (1, 1, 1)", Rocchio::DEFAULT),
        ("1, 1, 0.25", rocchio(1.0, 1.0, 0.25)),
        ("1, 2, 1", rocchio(1.0, 2.0, 1.0)),
    ]
}

/// Precision of the next results before and after refining, per variant, for one model.
fn score_model(
    model_path: &Path,
    library: &Path,
    queries: &Path,
) -> Result<(f64, Vec<f64>, usize), Box<dyn std::error::Error>> {
    let loaded = LoadedModel::load(model_path, tch::Device::Cpu)?;
    let no_cancel = AtomicBool::new(false);
    let folder = scan_folder(library, DEFAULT_MAX_PIXELS)?;
    let mut gallery = Gallery::build(
        &loaded,
        &folder,
        &IndexOptions::new(DEFAULT_MAX_PIXELS),
        &|_| {},
        &no_cancel,
    )?;
    let query_folder = scan_folder(queries, DEFAULT_MAX_PIXELS)?;
    let paths: Vec<PathBuf> = query_folder.images.iter().map(|i| i.path.clone()).collect();
    let embedded = embed_files(
        &loaded.model,
        &paths,
        DEFAULT_MAX_PIXELS,
        &|_| {},
        &no_cancel,
    )?;
    let dimension = loaded.model.config.embedding_dim;
    let variants = variants();
    let (mut before_sum, mut after_sums) = (0.0, vec![0.0; variants.len()]);
    let mut scored = 0;
    for (row, &input) in embedded.embedded.iter().enumerate() {
        let class = &query_folder.images[input].class;
        let vector = &embedded.vectors[row * dimension..(row + 1) * dimension];
        let hits = gallery.search(vector, MARKED + SCORED)?;
        if hits.len() < MARKED + SCORED {
            continue;
        }
        let precision = |hits: &[likeness::engine::index::SearchHit]| {
            hits.iter().filter(|h| h.class == *class).count() as f64 / hits.len().max(1) as f64
        };
        before_sum += precision(&hits[MARKED..]);
        let marks: Vec<(PathBuf, bool)> = hits[..MARKED]
            .iter()
            .map(|h| (h.path.clone(), h.class == *class))
            .collect();
        for (sum, (_, weights)) in after_sums.iter_mut().zip(&variants) {
            let refined = refined_search(
                &mut gallery,
                &loaded.model,
                vector,
                &marks,
                MARKED + SCORED,
                weights,
                DEFAULT_MAX_PIXELS,
            )?;
            let next: Vec<_> = refined
                .hits
                .into_iter()
                .filter(|h| !marks.iter().any(|(p, _)| *p == h.path))
                .take(SCORED)
                .collect();
            *sum += precision(&next);
        }
        scored += 1;
    }
    let n = scored.max(1) as f64;
    Ok((
        before_sum / n,
        after_sums.iter().map(|s| s / n).collect(),
        scored,
    ))
}

fn mean_spread(values: &[f64]) -> String {
    let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
    let max = values.iter().copied().fold(f64::MIN, f64::max);
    let min = values.iter().copied().fold(f64::MAX, f64::min);
    format!("{mean:.3} ± {:.3}", (max - min) / 2.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // As the binary does (src/main.rs): freed memory is kept for reuse.
    likeness::engine::device::openmp_threads_spin_briefly();
    likeness::engine::device::keep_freed_memory();
    likeness::engine::device::blas_on_calling_thread();
    let source = std::env::var_os("LIKENESS_DATA").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/flowers5-train"),
        PathBuf::from,
    );
    if !source.is_dir() {
        println!(
            "refine bench skipped: {} not found (set LIKENESS_DATA)",
            source.display()
        );
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let (library, queries) = (dir.path().join("library"), dir.path().join("queries"));
    split(&source, &library, &queries)?;
    let models: Vec<PathBuf> = match std::env::var("LIKENESS_REFINE_MODELS") {
        Ok(list) => list.split(':').map(PathBuf::from).collect(),
        Err(_) => {
            let secs = std::env::var("LIKENESS_BENCH_BASE_SECS").unwrap_or("600".into());
            let binary = PathBuf::from(env!("CARGO_BIN_EXE_likeness"));
            let mut trained = Vec::new();
            for seed in 0..3 {
                let out = dir.path().join(format!("base-{seed}.safetensors"));
                let status = Command::new(&binary)
                    .args(["train", "--data"])
                    .arg(&library)
                    .arg("--out")
                    .arg(&out)
                    .args(["--max-seconds", &secs, "--seed", &seed.to_string()])
                    .status()?;
                if !status.success() {
                    return Err(format!("training seed {seed} failed").into());
                }
                trained.push(out);
            }
            trained
        }
    };
    let names: Vec<&str> = variants().iter().map(|(name, _)| *name).collect();
    println!(
        "Marks that act at once: {} split {LIBRARY_PER_CLASS} per class into library / queries; \
         the top {MARKED} of each query marked by class; precision of the next {SCORED}",
        source.display()
    );
    println!("| model | queries | before | {} |", names.join(" | "));
    println!("|---|---:|---:|{}", "---:|".repeat(names.len()));
    let (mut before, mut after) = (Vec::new(), vec![Vec::new(); names.len()]);
    for model in &models {
        let (b, a, n) = score_model(model, &library, &queries)?;
        let cells: Vec<String> = a.iter().map(|v| format!("{v:.3}")).collect();
        println!(
            "| {} | {n} | {b:.3} | {} |",
            model.file_name().unwrap_or_default().to_string_lossy(),
            cells.join(" | ")
        );
        before.push(b);
        for (column, value) in after.iter_mut().zip(a) {
            column.push(value);
        }
    }
    let cells: Vec<String> = after.iter().map(|c| mean_spread(c)).collect();
    println!(
        "| mean ± spread ({} models) | | {} | {} |",
        models.len(),
        mean_spread(&before),
        cells.join(" | ")
    );
    Ok(())
}
