//! `likeness bench`: throughput next to the pure-tch ceiling, as ratios from one run.

use std::path::PathBuf;

use super::{OutputArgs, print_json};
use crate::engine::bench;
use crate::engine::device::DeviceChoice;
use crate::engine::train::Preset;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// A class-folder data set to index and train on.
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long, value_enum, default_value_t = Preset::Default)]
    pub preset: Preset,
    #[arg(long)]
    pub image_size: Option<u32>,
    /// Training steps to time (after one warm-up step).
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let mut settings = args.preset.settings();
    settings.device = args.device;
    if let Some(size) = args.image_size {
        settings.image_size_px = size;
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
