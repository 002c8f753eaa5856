//! Search at scale: exact (faiss IndexFlatL2) against Likeness' approximate index at
//! 10k, 50k, 100k and 1M embeddings, side by side in one run.
//!
//! Prints, per size: build time, single-query latency p50/p99 for both, recall@10 of the
//! approximate index against exact search on queries that are not in the gallery, the
//! index's size, and at the largest size the resident memory of the loaded index.
//!
//! The vectors are synthetic, at the default model's dimension (512), in 1000 clusters
//! whose variance falls off like a real index's: on flowers5-train's trained index the
//! first 16 principal directions hold 99.4 % of the variance and the first 128 hold
//! 99.96 %; a spectrum λ_k ∝ k^-2.5 gives 99.2 % and 99.97 %.
//!
//! `cargo bench --bench index_scale` (add `-- 10000 100000` to choose the sizes).

use std::time::Instant;

use faiss::Index;
use faiss::index::flat::FlatIndex;
use likeness::engine::index::ann::{APPROXIMATE_FROM, ApproximateIndex};

const DIMENSION: usize = 512;
const CLUSTERS: usize = 1000;
const QUERIES: usize = 200;
const K: usize = 10;

/// Standard normal draws (Box–Muller).
fn normal(rng: &mut fastrand::Rng) -> f32 {
    let u = rng.f32().max(f32::MIN_POSITIVE);
    let v = rng.f32();
    (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
}

struct Clusters {
    centres: Vec<f32>,
    scale: Vec<f32>,
}

impl Clusters {
    fn new(rng: &mut fastrand::Rng) -> Self {
        let scale: Vec<f32> = (0..DIMENSION)
            .map(|k| ((k + 1) as f32).powf(-1.25))
            .collect();
        let centres = (0..CLUSTERS * DIMENSION)
            .map(|i| normal(rng) * scale[i % DIMENSION])
            .collect();
        Self { centres, scale }
    }

    /// `count` points: a random cluster's centre plus noise at half its spread.
    fn points(&self, count: usize, rng: &mut fastrand::Rng) -> Vec<f32> {
        let mut out = Vec::with_capacity(count * DIMENSION);
        for _ in 0..count {
            let c = rng.usize(..CLUSTERS);
            let centre = &self.centres[c * DIMENSION..(c + 1) * DIMENSION];
            out.extend(
                centre
                    .iter()
                    .zip(&self.scale)
                    .map(|(m, s)| m + 0.5 * s * normal(rng)),
            );
        }
        out
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Per-query latency (ms, sorted) of searching `queries` one at a time.
fn latencies(
    queries: &[f32],
    count: usize,
    mut search: impl FnMut(&[f32]) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<f64>> {
    let mut times = Vec::with_capacity(count);
    for q in 0..count {
        let started = Instant::now();
        search(&queries[q * DIMENSION..(q + 1) * DIMENSION])?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok(times)
}

fn resident_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Resident memory a fresh process gains by loading the index (measured in a child, so
/// that nothing this process freed is reused and hidden from the count).
fn resident_after_loading(
    bytes: &[u8],
    params: &likeness::engine::index::ann::ApproximateParams,
) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("index.faiss");
    std::fs::write(&file, bytes)?;
    std::fs::write(dir.path().join("params.json"), serde_json::to_vec(params)?)?;
    let output = std::process::Command::new(std::env::current_exe()?)
        .arg("--measure-resident")
        .arg(dir.path())
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).trim().parse()?)
}

/// The child's half of [`resident_after_loading`]: prints the MB loading added.
fn measure_resident(dir: &std::path::Path) -> anyhow::Result<()> {
    let params = serde_json::from_slice(&std::fs::read(dir.join("params.json"))?)?;
    let before = resident_mb();
    let bytes = std::fs::read(dir.join("index.faiss"))?;
    let loaded = ApproximateIndex::from_bytes(&bytes, params)?;
    drop(bytes);
    println!("{:.1}", resident_mb() - before);
    drop(loaded);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // As the binary does (src/main.rs): freed memory is kept for reuse.
    likeness::engine::device::openmp_threads_spin_briefly();
    likeness::engine::device::keep_freed_memory();
    likeness::engine::device::blas_on_calling_thread();
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, dir] = args.as_slice()
        && flag == "--measure-resident"
    {
        return measure_resident(std::path::Path::new(dir));
    }
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 50_000, 100_000, 1_000_000]
    } else {
        sizes
    };
    let mut rng = fastrand::Rng::with_seed(11);
    let clusters = Clusters::new(&mut rng);
    let queries = clusters.points(QUERIES, &mut rng);
    println!(
        "Search at scale: {DIMENSION}-d synthetic embeddings in {CLUSTERS} clusters, {QUERIES} \
         queries not in the gallery, k = {K}; approximate from {APPROXIMATE_FROM} photos by \
         default"
    );
    println!(
        "| photos | exact p50 / p99 | approximate p50 / p99 | recall@10 | speed-up (p50) | \
         approximate index | build | raw vectors |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for &count in &sizes {
        let vectors = clusters.points(count, &mut rng);
        let mut flat = FlatIndex::new_l2(DIMENSION as u32)?;
        flat.add(&vectors)?;
        let truth = flat.search(&queries, K)?;
        // Exact search of a million is slow one query at a time: fewer samples there.
        let exact_samples = if count >= 500_000 { 50 } else { QUERIES };
        let exact = latencies(&queries, exact_samples, |q| {
            flat.search(q, K)?;
            Ok(())
        })?;
        drop(flat);

        let ids: Vec<u64> = (0..count as u64).collect();
        let started = Instant::now();
        let mut approximate = ApproximateIndex::build(&vectors, DIMENSION, &ids)?;
        let build_secs = started.elapsed().as_secs_f64();
        let mut hits = 0;
        let found = approximate.search(&queries, K)?;
        for (q, row) in found.iter().enumerate() {
            let exact_row: Vec<u64> = truth.labels[q * K..(q + 1) * K]
                .iter()
                .filter_map(|l| l.get())
                .collect();
            hits += row.iter().filter(|(id, _)| exact_row.contains(id)).count();
        }
        let recall = hits as f64 / (QUERIES * K) as f64;
        let fast = latencies(&queries, QUERIES, |q| {
            approximate.search(q, K)?;
            Ok(())
        })?;
        let bytes = approximate.to_bytes()?;
        let params = approximate.params.clone();
        drop(approximate);
        drop(vectors);
        let index_mb = bytes.len() as f64 / 1e6;
        let resident = resident_after_loading(&bytes, &params)?;
        drop(bytes);
        println!(
            "| {count} | {:.2} / {:.2} ms | {:.2} / {:.2} ms | {recall:.3} | {:.0}× | {} \
             (nprobe {}), {index_mb:.0} MB, {resident:.0} MB resident | {build_secs:.1} s | \
             {:.0} MB |",
            percentile(&exact, 0.5),
            percentile(&exact, 0.99),
            percentile(&fast, 0.5),
            percentile(&fast, 0.99),
            percentile(&exact, 0.5) / percentile(&fast, 0.5),
            params.factory,
            params.nprobe,
            (count * DIMENSION * 4) as f64 / 1e6,
        );
    }
    Ok(())
}
