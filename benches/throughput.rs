//! `cargo bench`: indexing and training throughput next to the pure-tch ceiling, for the
//! seed and default presets, on a generated data set (or `LIKENESS_BENCH_DATA=DIR`).
//! Prints figures and ratios measured side by side in one run; with
//! `LIKENESS_BENCH_PYTORCH=PYTHON`, PyTorch's rates for the same network and shapes too.

use likeness::engine::bench;
use likeness::engine::synthetic::write_dataset;
use likeness::engine::train::{Preset, TrainSettings};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // As the binary does (src/main.rs): freed memory is kept for reuse.
    likeness::engine::device::openmp_threads_spin_briefly();
    likeness::engine::device::keep_freed_memory();
    likeness::engine::device::blas_on_calling_thread();
    let generated = tempfile::tempdir()?;
    let data = match std::env::var_os("LIKENESS_BENCH_DATA") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => {
            write_dataset(generated.path(), 8, 16, 160, 42)?;
            generated.path().to_path_buf()
        }
    };
    let steps: usize = std::env::var("LIKENESS_BENCH_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    // LIKENESS_BENCH_PYTORCH=PYTHON: PyTorch's rates for the same shapes, in the same run.
    let pytorch = std::env::var_os("LIKENESS_BENCH_PYTORCH").map(std::path::PathBuf::from);
    // The presets, and the default with each throughput lever switched the other way:
    // channels-last batches (training) and the mirrored embedding (indexing).
    let default = Preset::Default.settings();
    let variants = [
        ("seed", Preset::Seed.settings()),
        ("default", default.clone()),
        (
            "default, channels-last switched",
            TrainSettings {
                channels_last: !default.channels_last,
                ..default.clone()
            },
        ),
        (
            "default, mirrored embedding switched",
            TrainSettings {
                mirror_average: !default.mirror_average,
                ..default.clone()
            },
        ),
    ];
    for (name, settings) in variants {
        let report = bench::run(&data, &settings, steps, pytorch.as_deref())?;
        println!(
            "{:<28} {:>4} px on {}: indexing {:>8.1} img/s vs forward {:>8.1} img/s (ratio {:.2}); \
             training {:>7.1} anchors/s vs pure step {:>7.1} (ratio {:.2})",
            format!(
                "{name} (channels-last {}, mirror {})",
                settings.channels_last, settings.mirror_average
            ),
            report.image_size_px,
            report.device,
            report.index_images_per_s,
            report.forward_images_per_s,
            report.index_vs_forward,
            report.train_triplets_per_s,
            report.step_triplets_per_s,
            report.train_vs_step
        );
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(())
}
