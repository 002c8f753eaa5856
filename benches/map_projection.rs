//! `cargo bench --bench map_projection [-- INDEX]`: the map's methods side by side.
//!
//! For each source — the exact index INDEX (e.g. flowers5-train embedded with the default
//! model), and synthetic clusters of 2 534 and 10 000 photos (5 classes, 256-d) — and each
//! method — PCA, UMAP (Likeness' own, `engine::projection::layout`) and Barnes-Hut t-SNE
//! (the `bhtsne` crate, on the same 50 PCA dimensions UMAP starts from) — a child process
//! draws the map and prints: seconds in all, seconds to the first picture (PCA: the map;
//! UMAP: its PCA start; t-SNE: its first epoch), the child's peak memory, and the map's
//! trustworthiness (k = 10) and folder agreement against the embedding's.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use likeness::engine::index::Gallery;
use likeness::engine::projection::quality::map_quality;
use likeness::engine::projection::{EmbeddingMap, MapInput, MapMethod, layout};

struct Source {
    vectors: Vec<f32>,
    dimension: usize,
    classes: Vec<Option<usize>>,
}

fn synthetic(count: usize) -> Source {
    const DIMENSION: usize = 256;
    const CLASSES: usize = 5;
    let mut rng = fastrand::Rng::with_seed(7);
    let centres: Vec<Vec<f32>> = (0..CLASSES)
        .map(|_| (0..DIMENSION).map(|_| rng.f32() * 2.0 - 1.0).collect())
        .collect();
    let mut vectors = Vec::with_capacity(count * DIMENSION);
    let mut classes = Vec::with_capacity(count);
    for i in 0..count {
        let class = i % CLASSES;
        classes.push(Some(class));
        // Each class a blob with sub-clusters, as photos of one subject in a few settings.
        let sub = (i / CLASSES) % 4;
        for (d, centre) in centres[class].iter().enumerate() {
            let offset = if d % 4 == sub { 0.6 } else { 0.0 };
            vectors.push(centre + offset + (rng.f32() - 0.5) * 1.2);
        }
    }
    Source {
        vectors,
        dimension: DIMENSION,
        classes,
    }
}

fn from_index(path: &Path) -> Result<Source, Box<dyn std::error::Error>> {
    let gallery = Gallery::load(path)?;
    let vectors = gallery
        .all_vectors()
        .ok_or("the index is approximate: build it with --exact")?
        .to_vec();
    let (_, classes) = gallery.class_labels();
    Ok(Source {
        vectors,
        dimension: gallery.header.dimension,
        classes,
    })
}

/// Peak resident memory of this process, in MB (Linux).
fn peak_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn child(method: &str, source: &str) -> Result<(), Box<dyn std::error::Error>> {
    let data = match source.strip_prefix("synthetic-") {
        Some(count) => synthetic(count.parse()?),
        None => from_index(Path::new(source))?,
    };
    let count = data.classes.len();
    let before_mb = peak_mb();
    let started = Instant::now();
    let mut first: Option<f64> = None;
    let points: Vec<[f32; 2]> = match method {
        "pca" | "umap" => {
            let input = MapInput {
                paths: vec![PathBuf::new(); count],
                classes: data.classes.clone(),
                class_names: (0..5).map(|c| c.to_string()).collect(),
                vectors: &data.vectors,
                dimension: data.dimension,
            };
            let method = if method == "pca" {
                MapMethod::Pca
            } else {
                MapMethod::Umap
            };
            let map =
                EmbeddingMap::of_vectors_with(input, method, &AtomicBool::new(false), &mut |_| {
                    first.get_or_insert(started.elapsed().as_secs_f64());
                })?;
            map.points
        }
        "tsne" => {
            let reduced = layout::principal_directions(
                &data.vectors,
                data.dimension,
                layout::REDUCED_DIMENSIONS,
                true,
            )?
            .reduced;
            let rows: Vec<&[f32]> = reduced.rows.chunks(reduced.dimensions).collect();
            let mut tsne = bhtsne::tSNE::new(&rows);
            tsne.embedding_dim(2)
                .perplexity(30.0)
                .epochs(1000)
                .epoch_callback(|_, _| {
                    first.get_or_insert(started.elapsed().as_secs_f64());
                })
                .barnes_hut(0.5, |a: &&[f32], b: &&[f32]| {
                    a.iter()
                        .zip(b.iter())
                        .map(|(x, y)| (x - y) * (x - y))
                        .sum::<f32>()
                        .sqrt()
                });
            tsne.embedding().chunks(2).map(|p| [p[0], p[1]]).collect()
        }
        other => return Err(format!("no method {other}").into()),
    };
    let seconds = started.elapsed().as_secs_f64();
    let peak = peak_mb();
    let quality = map_quality(&data.vectors, data.dimension, &points, &data.classes, 10)?;
    println!(
        "{{\"seconds\": {seconds:.2}, \"first\": {:.2}, \"peak_mb\": {peak:.0}, \"data_mb\": {before_mb:.0}, \
         \"trust\": {:.3}, \"agree_map\": {:.3}, \"agree_embedding\": {:.3}}}",
        first.unwrap_or(seconds),
        quality.trustworthiness,
        quality.folder_agreement_map,
        quality.folder_agreement_embedding
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, method, source] = args.as_slice()
        && flag == "--child"
    {
        return child(method, source);
    }
    let mut sources: Vec<String> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .cloned()
        .collect();
    sources.push("synthetic-2534".into());
    sources.push("synthetic-10000".into());
    let methods =
        std::env::var("LIKENESS_BENCH_METHODS").unwrap_or_else(|_| "pca,umap,tsne".into());
    println!(
        "| source | method | seconds | first picture (s) | peak memory (MB) | trustworthiness (k=10) | folder agreement: map / embedding |"
    );
    println!("|---|---|---|---|---|---|---|");
    for source in &sources {
        for method in methods.split(',') {
            let output = Command::new(std::env::current_exe()?)
                .args(["--child", method, source])
                .output()?;
            let line = String::from_utf8_lossy(&output.stdout);
            let Ok(figures) = serde_json::from_str::<serde_json::Value>(line.trim()) else {
                println!(
                    "| {source} | {method} | failed: {} |",
                    String::from_utf8_lossy(&output.stderr).trim()
                );
                continue;
            };
            let f = |key: &str| figures[key].as_f64().unwrap_or(f64::NAN);
            println!(
                "| {source} | {method} | {:.1} | {:.2} | {:.0} (data {:.0}) | {:.3} | {:.3} / {:.3} |",
                f("seconds"),
                f("first"),
                f("peak_mb"),
                f("data_mb"),
                f("trust"),
                f("agree_map"),
                f("agree_embedding")
            );
        }
    }
    Ok(())
}
