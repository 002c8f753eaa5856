//! `likeness bench`: throughput next to the pure-tch ceiling, as ratios from one run; with
//! `--plant-mislabels`, the mislabel finder's precision and recall on planted mistakes.

use std::path::PathBuf;

use anyhow::Context;

use super::choices::DeviceArg;
use super::choices::PresetArg;
use super::{OutputArgs, print_json};
use crate::engine::bench;
use crate::engine::bench::planted_mislabels;
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
    /// With --plant-mislabels: judge each photo by a network that did not train on it,
    /// training this many networks (each on the other parts' photos) in the time given.
    #[arg(long, requires = "plant_mislabels", value_parser = clap::value_parser!(u32).range(2..=10))]
    pub cross_fit: Option<u32>,
    /// Which photos are planted, and the training seed, for --plant-mislabels.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also time PyTorch on the same network, batch and image size in this run, with this
    /// Python interpreter (it needs torch, and efficientnet-lite-pytorch or torchvision
    /// for the network), and print Likeness' rates over PyTorch's. CPU only.
    #[arg(long, value_name = "PYTHON", conflicts_with = "plant_mislabels")]
    pub pytorch: Option<PathBuf>,
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
        if let Some(folds) = args.cross_fit {
            return cross_fit_benchmark(&args, settings, fraction, folds as usize);
        }
        return mislabel_benchmark(&args, settings, fraction);
    }
    let report = bench::run(
        &args.data,
        &settings,
        args.steps.max(1),
        args.pytorch.as_deref(),
    )
    .with_context(|| format!("benchmarking on {}", args.data.display()))?;
    println!(
        "device: {}  preset: {}  training at {} px, embedding at {} px",
        report.device, report.preset, report.image_size_px, report.embed_size_px
    );
    println!(
        "indexing  {:>9.1} images/s   pure forward {:>9.1} images/s   ratio {:.2}",
        report.index_images_per_s, report.forward_images_per_s, report.index_vs_forward
    );
    println!(
        "training  {:>9.1} triplets/s pure step    {:>9.1} triplets/s ratio {:.2}",
        report.train_triplets_per_s, report.step_triplets_per_s, report.train_vs_step
    );
    if let Some(pytorch) = &report.pytorch {
        println!(
            "PyTorch {} ({} threads), same network, batch and size:",
            pytorch.torch, pytorch.threads
        );
        println!(
            "  pure step     {:>9.1} anchors/s  Likeness/PyTorch {:.2}",
            pytorch.step_anchors_per_s, pytorch.step_vs_pytorch
        );
        println!(
            "  pure forward  {:>9.1} images/s   Likeness/PyTorch {:.2}  (Likeness indexing, decoding included: {:.2})",
            pytorch.forward_images_per_s,
            pytorch.forward_vs_pytorch,
            pytorch.index_vs_pytorch_forward
        );
    }
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
    let result = planted_mislabels::run_benchmark(&args.data, &work, fraction, &settings, &|_| {});
    std::fs::remove_dir_all(&work).ok();
    let report =
        result.with_context(|| format!("mislabel benchmark on {} failed", args.data.display()))?;
    println!(
        "{} photos, {} planted mistakes, trained {:.0} s ({} steps)",
        report.images, report.planted, report.train_secs, report.steps
    );
    println!("Training margins (the training summary's \"Check these labels\"):");
    println!(
        "spreads below the mean  margin below  flagged  planted among them  precision  recall"
    );
    for (spreads, score) in &report.spreads_curve {
        let mark = if (score.min_confidence - report.margin_chosen.min_confidence).abs() < 1e-12 {
            "  <- used"
        } else {
            ""
        };
        println!(
            "{spreads:>22.2}  {:>12.3}  {:>7}  {:>18}  {:>9.2}  {:>6.2}{mark}",
            -score.min_confidence, score.flagged, score.correct, score.precision, score.recall
        );
    }
    println!("Mean margin over the run, at fixed thresholds:");
    println!("area below  flagged  planted among them  precision  recall");
    for score in &report.margin_curve {
        println!(
            "{:>10.2}  {:>7}  {:>18}  {:>9.2}  {:>6.2}",
            -score.min_confidence, score.flagged, score.correct, score.precision, score.recall
        );
    }
    println!("Neighbour vote (evaluation and map):");
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

fn cross_fit_benchmark(
    args: &BenchArgs,
    mut settings: crate::engine::train::TrainSettings,
    fraction: f64,
    folds: usize,
) -> anyhow::Result<()> {
    settings.max_seconds = Some(args.max_seconds / folds as f64);
    settings.seed = args.seed;
    let work = tempfile_dir()?;
    eprintln!(
        "planting {:.1}% mislabelled photos in a copy of {}, then training {folds} networks \
         for {:.0} s each…",
        fraction * 100.0,
        args.data.display(),
        args.max_seconds / folds as f64
    );
    let result = planted_mislabels::run_cross_fit_benchmark(
        &args.data,
        &work,
        fraction,
        folds,
        &settings,
        &|_, _| {},
    );
    std::fs::remove_dir_all(&work).ok();
    let report =
        result.with_context(|| format!("cross-fit benchmark on {} failed", args.data.display()))?;
    println!(
        "{} photos, {} planted mistakes, {} networks trained {:.0} s in all ({:?} steps)",
        report.images, report.planted, report.folds, report.train_secs, report.steps
    );
    for (title, curve) in [
        (
            "Margin under the network that did not train on the photo:",
            &report.held_out_curve,
        ),
        (
            "That margin plus the training margin (standardised):",
            &report.combined_curve,
        ),
    ] {
        println!("{title}");
        println!("spreads below the mean  flagged  planted among them  precision  recall");
        for (spreads, score) in curve {
            println!(
                "{spreads:>22.2}  {:>7}  {:>18}  {:>9.2}  {:>6.2}",
                score.flagged, score.correct, score.precision, score.recall
            );
        }
    }
    if args.output.json {
        print_json(&report)?;
    }
    Ok(())
}

/// Prefix of the planted copies under the system's temporary directory.
const SCRATCH_PREFIX: &str = "likeness-mislabels-";

/// A fresh folder under the system's temporary directory for the planted copy, removed
/// on Ctrl+C; copies left by earlier runs that were killed are removed first.
fn tempfile_dir() -> anyhow::Result<PathBuf> {
    remove_abandoned_copies(&std::env::temp_dir());
    let dir = std::env::temp_dir().join(format!(
        "{SCRATCH_PREFIX}{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("could not create {}", dir.display()))?;
    super::interrupt::remove_on_interrupt(dir.clone());
    Ok(dir)
}

/// Removes the planted copies in `temp` whose benchmark process is gone (killed, or
/// interrupted before the handler could run).
fn remove_abandoned_copies(temp: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(temp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(SCRATCH_PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id()
            && !crate::engine::atomic::process_is_running(pid)
            && entry.file_type().is_ok_and(|t| t.is_dir())
        {
            std::fs::remove_dir_all(entry.path()).ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_of_killed_benchmarks_are_removed_and_live_ones_kept() {
        let temp = tempfile::tempdir().expect("temp dir");
        let dead = temp.path().join(format!("{SCRATCH_PREFIX}4194399-123"));
        let live = temp
            .path()
            .join(format!("{SCRATCH_PREFIX}{}-456", std::process::id()));
        let other = temp.path().join("likeness-other-4194399-1");
        for folder in [&dead, &live, &other] {
            std::fs::create_dir_all(folder.join("class_00")).expect("mkdir");
        }
        remove_abandoned_copies(temp.path());
        assert!(!dead.exists(), "a killed run's copy was left");
        assert!(live.exists() && other.exists());
    }
}
