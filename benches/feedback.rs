//! `cargo bench --bench feedback`: does retraining from marks help, against the honest
//! baseline of simply training the same model for as long again?
//!
//! Per seed, `../shared/data/flowers5-train` (or `LIKENESS_DATA`) is split: a fifth of
//! each class becomes held-out queries, the rest is the library. A default-preset model is
//! trained on the library for `LIKENESS_BENCH_BASE_SECS` (default 120 s) and the library
//! is indexed. A simulated user searches with 20 library photos and, among each top 10,
//! marks the photos of another class "not alike" and two of the same class "alike". Then,
//! from the same base model:
//! - marks: `likeness train --feedback` for `LIKENESS_BENCH_TUNE_SECS` (default 60 s).
//!   When it refuses its model (a marked pair moved against its mark, or the held-out
//!   marks went the wrong way), the person keeps the base model, and so does the row;
//! - marks with classes: the same, with `--with-classes` (the library held in its class
//!   folders by the training loss, the marked photos as hard examples, instead of each
//!   photo held where it was); refused the same way;
//! - baseline: `likeness train --init-model` (plain continued training on the class
//!   folders, no marks) for as long.
//!
//! Each model is measured with `likeness eval` (held-out queries against the library):
//! recall@1 and mAP@R. Printed per seed and as mean ± spread over the seeds.

use std::path::{Path, PathBuf};
use std::process::Command;

use likeness::engine::feedback::Marks;

const SEEDS: [u64; 3] = [1, 2, 3];
const QUERIES: usize = 20;

fn run(command: &mut Command) -> Result<String, Box<dyn std::error::Error>> {
    let output = command.output()?;
    if !output.status.success() {
        return Err(format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn last_json(stdout: &str) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let line = stdout.lines().last().ok_or("no output")?;
    Ok(serde_json::from_str(line)?)
}

fn env_secs(name: &str, default: u64) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// Copies `source` into `library` and `queries`, a fifth of each class (chosen by `seed`)
/// to the queries.
fn split(source: &Path, library: &Path, queries: &Path, seed: u64) -> std::io::Result<()> {
    let mut rng = fastrand::Rng::with_seed(seed);
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
        rng.shuffle(&mut photos);
        let held_out = photos.len() / 5;
        for (i, photo) in photos.iter().enumerate() {
            let folder = if i < held_out { queries } else { library }.join(&name);
            std::fs::create_dir_all(&folder)?;
            std::fs::copy(photo, folder.join(photo.file_name().unwrap_or_default()))?;
        }
    }
    Ok(())
}

/// (recall@1, mAP@R) of the held-out queries against the library.
fn evaluate(
    binary: &Path,
    model: &Path,
    library: &Path,
    queries: &Path,
) -> Result<(f64, f64), Box<dyn std::error::Error>> {
    let json = last_json(&run(Command::new(binary)
        .args(["eval", "--json", "--model"])
        .arg(model)
        .arg("--gallery")
        .arg(library)
        .arg("--queries")
        .arg(queries))?)?;
    let recall = json["recall@1"].as_f64().ok_or("no recall@1")?;
    let map = json["map@r"].as_f64().ok_or("no map@r")?;
    Ok((recall, map))
}

/// Marks a simulated user makes: for each query, another class's photos in the top 10
/// "not alike", two of its own class "alike".
fn simulate_marks(
    binary: &Path,
    index: &Path,
    library: &Path,
    seed: u64,
) -> Result<Marks, Box<dyn std::error::Error>> {
    let gallery = likeness::engine::index::Gallery::load(index)?;
    let mut rng = fastrand::Rng::with_seed(seed ^ 0xFEED);
    let mut photos: Vec<(PathBuf, Option<String>)> = gallery
        .header
        .images
        .iter()
        .map(|i| (i.path.clone(), i.class.clone()))
        .collect();
    rng.shuffle(&mut photos);
    let mut marks = Marks::default();
    for (query, class) in photos.iter().take(QUERIES) {
        let json = last_json(&run(Command::new(binary)
            .args(["search", "--json", "-k", "11", "--index"])
            .arg(index)
            .arg(query))?)?;
        let hits = json["queries"][0]["results"]
            .as_array()
            .ok_or("no results")?
            .clone();
        let mut alike = 0;
        for hit in hits.iter().take(11) {
            let path = PathBuf::from(hit["path"].as_str().unwrap_or_default());
            if path == *query {
                continue;
            }
            let same = hit["class"].as_str() == class.as_deref();
            if !same {
                marks.set(query, &path, Some(false));
            } else if alike < 2 {
                marks.set(query, &path, Some(true));
                alike += 1;
            }
        }
    }
    let _ = library;
    Ok(marks)
}

fn mean_spread(values: &[f64]) -> String {
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let spread = values
        .iter()
        .map(|v| (v - mean).abs())
        .fold(0.0f64, f64::max);
    format!("{mean:.3} ± {spread:.3}")
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
            "feedback bench skipped: {} not found (set LIKENESS_DATA)",
            source.display()
        );
        return Ok(());
    }
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_likeness"));
    let base_secs = env_secs("LIKENESS_BENCH_BASE_SECS", 120);
    let tune_secs = env_secs("LIKENESS_BENCH_TUNE_SECS", 60);
    println!(
        "Retraining from marks vs plain continued training: {} split 80/20 per seed, base \
         model {base_secs} s, then {tune_secs} s each; {QUERIES} simulated queries",
        source.display()
    );
    println!(
        "| seed | marks (not alike / alike) | base recall@1 / mAP@R | + marks {tune_secs} s | + marks with classes {tune_secs} s | + plain training {tune_secs} s |"
    );
    println!("|---|---|---|---|---|---|");
    let mut rows: Vec<[(f64, f64); 4]> = Vec::new();
    for seed in SEEDS {
        let dir = tempfile::tempdir()?;
        let library = dir.path().join("library");
        let queries = dir.path().join("queries");
        split(&source, &library, &queries, seed)?;
        let base = dir.path().join("base.safetensors");
        run(Command::new(&binary)
            .args(["train", "--data"])
            .arg(&library)
            .arg("--out")
            .arg(&base)
            .args(["--max-seconds", &base_secs, "--seed", &seed.to_string()]))?;
        let index = dir.path().join("library.likeness-index");
        run(Command::new(&binary)
            .args(["index", "--model"])
            .arg(&base)
            .arg("--folder")
            .arg(&library)
            .arg("--index")
            .arg(&index))?;
        let marks = simulate_marks(&binary, &index, &library, seed)?;
        let marks_file = dir.path().join("marks.json");
        marks.save(&marks_file)?;
        let retrain = |name: &str,
                       with_classes: bool|
         -> Result<(PathBuf, &'static str), Box<dyn std::error::Error>> {
            let tuned = dir.path().join(name);
            let mut command = Command::new(&binary);
            command
                .args(["train", "--feedback"])
                .arg(&marks_file)
                .arg("--model")
                .arg(&base)
                .arg("--data")
                .arg(&library)
                .arg("--out")
                .arg(&tuned)
                .args(["--max-seconds", &tune_secs, "--seed", &seed.to_string()]);
            if with_classes {
                command.arg("--with-classes");
            }
            let retrain = command.output()?;
            // A refused retrain writes nothing: the person keeps the base model.
            let stderr = String::from_utf8_lossy(&retrain.stderr);
            if retrain.status.success() {
                Ok((tuned, "kept"))
            } else if stderr.contains("was not written") {
                Ok((base.clone(), "refused"))
            } else {
                Err(format!("retraining failed: {stderr}").into())
            }
        };
        let (tuned, verdict) = retrain("marks.safetensors", false)?;
        let (with_classes, classes_verdict) = retrain("marks-classes.safetensors", true)?;
        let continued = dir.path().join("continued.safetensors");
        run(Command::new(&binary)
            .args(["train", "--data"])
            .arg(&library)
            .arg("--init-model")
            .arg(&base)
            .arg("--out")
            .arg(&continued)
            .args(["--max-seconds", &tune_secs, "--seed", &seed.to_string()]))?;
        let figures = [
            evaluate(&binary, &base, &library, &queries)?,
            evaluate(&binary, &tuned, &library, &queries)?,
            evaluate(&binary, &with_classes, &library, &queries)?,
            evaluate(&binary, &continued, &library, &queries)?,
        ];
        println!(
            "| {seed} | {} / {} | {:.3} / {:.3} | {:.3} / {:.3} ({verdict}) | {:.3} / {:.3} ({classes_verdict}) | {:.3} / {:.3} |",
            marks.not_alike(),
            marks.alike(),
            figures[0].0,
            figures[0].1,
            figures[1].0,
            figures[1].1,
            figures[2].0,
            figures[2].1,
            figures[3].0,
            figures[3].1
        );
        rows.push(figures);
    }
    let column = |arm: usize, metric: usize| -> Vec<f64> {
        rows.iter()
            .map(|r| if metric == 0 { r[arm].0 } else { r[arm].1 })
            .collect()
    };
    let cells: Vec<String> = (0..4)
        .map(|arm| {
            format!(
                "{} / {}",
                mean_spread(&column(arm, 0)),
                mean_spread(&column(arm, 1))
            )
        })
        .collect();
    println!("| mean ± spread | | {} |", cells.join(" | "));
    Ok(())
}
