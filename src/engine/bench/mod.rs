//! Measurements that run the whole engine, above training and the collection tools.
//!
//! Here: throughput figures, the real pipelines (indexing, training) next to the pure tch
//! forward (and forward + backward) on random tensors of the same shape — the ceiling
//! the pipeline can reach on this machine. [`planted_mislabels`] scores the label list on
//! mistakes planted on purpose, with out-of-fold evidence from [`cross_fit`].

pub mod cross_fit;
pub mod planted_mislabels;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::data::{DEFAULT_MAX_PIXELS, scan_folder};
use super::device::guard_libtorch;
use super::index::{EMBED_BATCH, embed_files};
use super::model::EmbeddingModel;
use super::train::trainer::Trainer;
use super::train::{Loss, Mining, TrainEvent, TrainJob, TrainSettings, train};
use super::{EngineError, Result};

/// What `likeness bench` measures; rates are per second of wall-clock time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchReport {
    pub device: String,
    /// Training's image size, and the size indexing embeds at.
    pub image_size_px: u32,
    #[serde(default)]
    pub embed_size_px: u32,
    pub preset: String,
    pub images: usize,
    /// Indexing a folder: decode + preprocess (worker threads) + forward, images/s.
    pub index_images_per_s: f64,
    /// Forward passes alone on random tensors, batch of 32, images/s.
    pub forward_images_per_s: f64,
    pub index_vs_forward: f64,
    /// Training through the real loader, anchors (triplets) per second.
    pub train_triplets_per_s: f64,
    /// The same step (forward + loss + backward + Adam) on random tensors, triplets/s.
    pub step_triplets_per_s: f64,
    pub train_vs_step: f64,
    pub train_steps_timed: usize,
    /// PyTorch's rates for the same network, batch and size, timed in the same run
    /// (`likeness bench --pytorch PYTHON`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pytorch: Option<PytorchRates>,
}

/// PyTorch's pure step and pure forward on the same shapes as Likeness' (the script
/// `scripts/bench_pytorch.py`, built into the binary), and Likeness' rates over them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PytorchRates {
    /// The torch version that ran.
    pub torch: String,
    pub threads: usize,
    /// One training step (forward, loss, backward, AdamW) on random tensors, anchors/s.
    pub step_anchors_per_s: f64,
    /// Forward passes alone, batch of [`EMBED_BATCH`] at the embedding size, images/s.
    pub forward_images_per_s: f64,
    /// Likeness' pure step rate over PyTorch's (above 1: Likeness is faster).
    pub step_vs_pytorch: f64,
    /// Likeness' pure forward rate over PyTorch's.
    pub forward_vs_pytorch: f64,
    /// Likeness' real indexing (decoding included) over PyTorch's pure forward.
    pub index_vs_pytorch_forward: f64,
}

/// The PyTorch side of the comparison, run by the interpreter the person names.
const PYTORCH_SCRIPT: &str = include_str!("../../../scripts/bench_pytorch.py");

/// The class folders among `images` (at least 2, the fewest a training run has).
fn class_count(images: &[super::data::ImageFile]) -> usize {
    let classes: std::collections::BTreeSet<_> = images
        .iter()
        .filter_map(|image| image.class.as_deref())
        .collect();
    classes.len().max(2)
}

/// Forward batches timed for the pure forward rate, on both sides.
fn forward_rounds(photos: usize) -> usize {
    (photos / EMBED_BATCH).clamp(2, 20)
}

/// Images a second through the network alone, in batches of [`EMBED_BATCH`] as indexing
/// does, on random pixels (the ceiling indexing is measured against).
fn pure_forward_rate(model: &EmbeddingModel, floats: usize, photos: usize) -> Result<f64> {
    let random_batch: Vec<f32> = (0..EMBED_BATCH * floats)
        .map(|i| ((i % 251) as f32 / 125.0) - 1.0)
        .collect();
    model.embed_pixels(&random_batch, EMBED_BATCH)?; // warm-up
    let rounds = forward_rounds(photos);
    let clock = Instant::now();
    for _ in 0..rounds {
        model.embed_pixels(&random_batch, EMBED_BATCH)?;
    }
    Ok((rounds * EMBED_BATCH) as f64 / clock.elapsed().as_secs_f64())
}

/// Runs the benchmark on a class-folder `data` set with `settings`, timing `steps`
/// training steps (after one warm-up step); with `pytorch` (a Python interpreter), also
/// PyTorch's rates for the same network, batch and size.
pub fn run(
    data: &Path,
    settings: &TrainSettings,
    steps: usize,
    pytorch: Option<&Path>,
) -> Result<BenchReport> {
    let device = settings.device.resolve()?;
    // Refused before minutes of Likeness' own figures, not after them.
    if pytorch.is_some() {
        if device != tch::Device::Cpu {
            return Err(EngineError::Config(
                "--pytorch compares on the CPU only; add --device cpu".into(),
            ));
        }
        if settings.loss == Loss::Triplet && settings.mining == Mining::BatchHard {
            return Err(EngineError::Config(
                "--pytorch compares random-triplet and normalised-softmax steps, not batch-hard"
                    .into(),
            ));
        }
    }
    let folder = scan_folder(data, DEFAULT_MAX_PIXELS)?;
    if folder.images.is_empty() {
        return Err(EngineError::Dataset(format!(
            "{}: no images to benchmark with",
            data.display()
        )));
    }
    let model = EmbeddingModel::new(settings.model_config(), device)?;
    let floats = model.config.preprocess.floats_per_image();
    let no_cancel = AtomicBool::new(false);

    let forward_images_per_s = pure_forward_rate(&model, floats, folder.images.len())?;

    // Real indexing of the folder.
    let paths: Vec<_> = folder.images.iter().map(|i| i.path.clone()).collect();
    let clock = Instant::now();
    let embedded = embed_files(&model, &paths, DEFAULT_MAX_PIXELS, &|_| {}, &no_cancel)?;
    let index_images_per_s = embedded.embedded.len() as f64 / clock.elapsed().as_secs_f64();

    let step_triplets_per_s = pure_step_rate(settings, device, steps)?;
    let train_triplets_per_s = real_training_rate(data, settings, steps)?;
    // PyTorch last: the same threads, nothing of Likeness' running beside it.
    let pytorch = match pytorch {
        Some(python) => {
            let printed = pytorch_rates(
                python,
                settings,
                steps,
                class_count(&folder.images),
                forward_rounds(folder.images.len()),
            )?;
            Some(PytorchRates {
                step_vs_pytorch: step_triplets_per_s / printed.step_anchors_per_s,
                forward_vs_pytorch: forward_images_per_s / printed.forward_images_per_s,
                index_vs_pytorch_forward: index_images_per_s / printed.forward_images_per_s,
                torch: printed.torch,
                threads: printed.threads,
                step_anchors_per_s: printed.step_anchors_per_s,
                forward_images_per_s: printed.forward_images_per_s,
            })
        }
        None => None,
    };
    Ok(BenchReport {
        device: super::device::describe(device),
        image_size_px: settings.image_size_px,
        embed_size_px: settings.embed_size_px(),
        preset: settings.preset.label().into(),
        images: embedded.embedded.len(),
        index_images_per_s,
        forward_images_per_s,
        index_vs_forward: index_images_per_s / forward_images_per_s,
        train_triplets_per_s,
        step_triplets_per_s,
        train_vs_step: train_triplets_per_s / step_triplets_per_s,
        train_steps_timed: steps,
        pytorch,
    })
}

/// What [`PYTORCH_SCRIPT`] prints: PyTorch's own rates.
#[derive(Deserialize)]
struct PytorchPrinted {
    torch: String,
    threads: usize,
    step_anchors_per_s: f64,
    forward_images_per_s: f64,
}

/// Runs [`PYTORCH_SCRIPT`] with `python` on the shapes of `settings` and reads its rates.
fn pytorch_rates(
    python: &Path,
    settings: &TrainSettings,
    steps: usize,
    classes: usize,
    forward_rounds: usize,
) -> Result<PytorchPrinted> {
    let backbone = settings.backbone.architecture();
    let request = serde_json::json!({
        "backbone": backbone,
        "image_size": settings.image_size_px,
        "embed_size": settings.embed_size_px(),
        "batch": settings.batch_size,
        "embed_batch": EMBED_BATCH,
        "steps": steps,
        "forward_rounds": forward_rounds,
        "embedding_dim": settings.embedding_dim,
        "normalize": settings.l2_normalize,
        "classes": classes,
        "channels_last": settings.channels_last,
        "threads": tch::get_num_threads(),
        "lr": settings.lr,
        "weight_decay": settings.weight_decay,
        "loss": match settings.loss {
            Loss::Triplet => "triplet",
            Loss::NormalizedSoftmax => "normalized-softmax",
        },
        "margin": settings.margin,
        "temperature": settings.temperature,
        "label_smoothing": settings.label_smoothing,
    });
    let output = std::process::Command::new(python)
        .arg("-c")
        .arg(PYTORCH_SCRIPT)
        .arg(request.to_string())
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|error| EngineError::Io {
            path: python.to_path_buf(),
            error,
        })?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let last_lines: Vec<&str> = stderr.lines().rev().take(3).collect();
        let reason: Vec<&str> = last_lines.into_iter().rev().collect();
        return Err(EngineError::Config(format!(
            "{} could not run the PyTorch benchmark ({}): {}",
            python.display(),
            output.status,
            reason.join(" / ")
        )));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).map_err(|error| {
        EngineError::Config(format!(
            "{}: the PyTorch benchmark printed {last:?}, not its rates ({error})",
            python.display()
        ))
    })
}

/// Anchors (triplets) a second through one training step alone (forward, loss, backward,
/// AdamW) on random tensors of the real step's shape: the ceiling training is measured
/// against.
fn pure_step_rate(settings: &TrainSettings, device: tch::Device, steps: usize) -> Result<f64> {
    let size = i64::from(settings.image_size_px);
    let images_per_step = match (settings.loss, settings.mining) {
        (Loss::Triplet, Mining::RandomTriplets) => settings.batch_size * 3,
        _ => settings.batch_size,
    };
    // Random triplets: batch_size triplets; batch-hard: every image is an anchor.
    let anchors_per_step = settings.batch_size;
    let labels: Vec<i64> = (0..images_per_step as i64)
        .map(|i| i / settings.images_per_class.max(1) as i64)
        .collect();
    let classes = labels.last().map_or(1, |&last| last as usize + 1);
    // The step training takes, loss and optimiser included, on random images.
    let mut trainer = Trainer::for_tensors(
        EmbeddingModel::new(settings.model_config(), device)?,
        settings,
        classes,
    )?;
    let images = guard_libtorch(|| {
        let images = Tensor::randn(
            [images_per_step as i64, 3, size, size],
            (tch::Kind::Float, device),
        );
        // The same memory format the real steps hand libtorch.
        if settings.channels_last {
            crate::engine::model::channels_last(images)
        } else {
            images
        }
    })?;
    let mut one_step = || trainer.step_on(&images, &labels, settings.lr);
    one_step()?;
    let clock = Instant::now();
    for _ in 0..steps {
        one_step()?;
    }
    Ok((steps * anchors_per_step) as f64 / clock.elapsed().as_secs_f64())
}

/// Anchors a second of real training on `data` through the loader, timing steps
/// 2..=steps+1 (the first pays for warm-up).
fn real_training_rate(data: &Path, settings: &TrainSettings, steps: usize) -> Result<f64> {
    let mut train_settings = settings.clone();
    train_settings.epochs = Some(10_000);
    train_settings.max_seconds = None;
    // Every timed step at the full size, the shape of the pure step.
    train_settings.progressive_from_px = None;
    let job = TrainJob::new(data.to_path_buf(), train_settings);
    let cancel = AtomicBool::new(false);
    let seen = AtomicUsize::new(0);
    let timed_anchors = AtomicUsize::new(0);
    let first_step_at = std::sync::Mutex::new(None::<Instant>);
    let last_step_at = std::sync::Mutex::new(None::<Instant>);
    train(&job, &cancel, &|event| {
        if let TrainEvent::Step { anchors, .. } = event {
            let n = seen.fetch_add(1, Ordering::Relaxed) + 1;
            let now = Instant::now();
            if (2..=steps + 1).contains(&n) {
                timed_anchors.fetch_add(anchors, Ordering::Relaxed);
            }
            if n == 1
                && let Ok(mut first) = first_step_at.lock()
            {
                *first = Some(now);
            }
            if n == steps + 1 {
                if let Ok(mut last) = last_step_at.lock() {
                    *last = Some(now);
                }
                cancel.store(true, Ordering::Relaxed);
            }
        }
    })?;
    let timed = match (
        first_step_at.into_inner().ok().flatten(),
        last_step_at.into_inner().ok().flatten(),
    ) {
        (Some(first), Some(last)) => last.duration_since(first).as_secs_f64(),
        _ => {
            return Err(EngineError::Dataset(
                "training stopped before the timed steps ran".into(),
            ));
        }
    };
    // The last batch of an epoch can be smaller: count what the timed steps really held.
    Ok(timed_anchors.into_inner() as f64 / timed)
}
