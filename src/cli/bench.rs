//! `likeness bench`: throughput next to the pure-tch ceiling, as ratios from one run; with
//! `--plant-mislabels`, the mislabel finder's precision and recall on planted mistakes.

use std::path::PathBuf;

use anyhow::Context;

use super::choices::DeviceArg;
use super::choices::PresetArg;
use super::{OutputArgs, print_json};
use crate::engine::bench;
use crate::engine::mislabels;
use crate::engine::train::Preset;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// A class-folder data set to index and train on.
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long, value_enum, default_value_t = PresetArg::Default)]
    pub preset: PresetArg,
    #[arg(long)]
    pub image_size: Option<u32>,
    /// Training steps to time (after one warm-up step).
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// Instead of throughput: move this share of the photos (e.g. 0.02) into wrong class
    /// folders of a copy, train on the copy, and report how well "check this label"
    /// finds them.
    #[arg(long)]
    pub plant_mislabels: Option<f64>,
    /// Training time for --plant-mislabels, in seconds.
    #[arg(long, default_value_t = 600.0)]
    pub max_seconds: f64,
    /// Which photos are planted, and the training seed, for --plant-mislabels.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let mut settings = Preset::from(args.preset).settings();
    settings.device = args.device.into();
    if let Some(size) = args.image_size {
        settings.image_size_px = size;
    }
    if let Some(fraction) = args.plant_mislabels {
        return mislabel_benchmark(&args, settings, fraction);
    }
    let report = bench::run(&args.data, &settings, args.steps.max(1))?;
    println!(
        "device: {}  preset: {}  image size: {} px",
        report.device, report.preset, report.image_size_px
    );
    println!(
        "indexing  {:>9.1} images/s   pure forward {:>9.1} images/s   ratio {:.2}",
        report.index_images_per_s, report.forward_images_per_s, report.index_vs_forward
    );
    println!(
        "training  {:>9.1} triplets/s pure step    {:>9.1} triplets/s ratio {:.2}",
        report.train_triplets_per_s, report.step_triplets_per_s, report.train_vs_step
    );
    if args.output.json {
        print_json(&report)?;
    }
    Ok(())
}

fn mislabel_benchmark(
    args: &BenchArgs,
    mut settings: crate::engine::train::TrainSettings,
    fraction: f64,
) -> anyhow::Result<()> {
    settings.max_seconds = Some(args.max_seconds);
    settings.seed = args.seed;
    let work = tempfile_dir()?;
    eprintln!(
        "planting {:.1}% mislabelled photos in a copy of {}, then training for {:.0} s…",
        fraction * 100.0,
        args.data.display(),
        args.max_seconds
    );
    let result = mislabels::run_benchmark(&args.data, &work, fraction, &settings, &|_| {});
    std::fs::remove_dir_all(&work).ok();
    let report =
        result.with_context(|| format!("mislabel benchmark on {} failed", args.data.display()))?;
    println!(
        "{} photos, {} planted mistakes, trained {:.0} s",
        report.images, report.planted, report.train_secs
    );
    println!("min confidence  flagged  planted among them  precision  recall");
    for score in &report.curve {
        let mark = if (score.min_confidence - report.chosen.min_confidence).abs() < 1e-9 {
            "  <- used"
        } else {
            ""
        };
        println!(
            "{:>14.1}  {:>7}  {:>18}  {:>9.2}  {:>6.2}{mark}",
            score.min_confidence, score.flagged, score.correct, score.precision, score.recall
        );
    }
    if args.output.json {
        print_json(&report)?;
    }
    Ok(())
}

/// A fresh folder under the system's temporary directory for the planted copy.
fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "likeness-mislabels-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("could not create {}", dir.display()))?;
    Ok(dir)
}
