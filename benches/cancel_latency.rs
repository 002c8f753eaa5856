//! `cargo bench --bench cancel_latency`: how long after Cancel each kind of job ends, in
//! each phase the window can cancel (issue #23 item 2: "take effect within one training
//! step or one batch of evaluation/embedding, wherever the run is").
//!
//! Data: the class folders in `LIKENESS_BENCH_DATA` (e.g. `../shared/data/flowers5-train`)
//! with `LIKENESS_BENCH_QUERIES` as the validation folder for the final evaluation;
//! without them, generated photos (5 classes × 200, 128 px). The default preset on the
//! CPU, as the window trains. Prints, per phase, the seconds from the cancel to the job's
//! return, and the time one step (or batch) of that phase takes for comparison.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use likeness::engine::data::{DEFAULT_MAX_PIXELS, scan_folder};
use likeness::engine::device::DeviceChoice;
use likeness::engine::feedback::{FineTune, Mark, Marks, fine_tune};
use likeness::engine::index::{Gallery, IndexOptions};
use likeness::engine::model::{LoadedModel, load_model, save_model};
use likeness::engine::run::TrainingSummary;
use likeness::engine::synthetic::write_dataset;
use likeness::engine::train::{Preset, TrainEvent, TrainJob, TrainPhase, train};

/// When, in a training run, the cancel is sent.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// While the photos are being decoded.
    Loading,
    /// While the starting model is measured, before the first step.
    MeasuringStart,
    /// During the third training step.
    Step,
    /// A moment after the last step of the first epoch, while it is being validated.
    Validation,
    /// While the validation folder is evaluated at the end.
    FinalEvaluation,
}

fn job(data: &Path, queries: Option<&Path>, phase: Phase) -> TrainJob {
    let mut settings = Preset::Default.settings();
    settings.device = DeviceChoice::Cpu;
    settings.max_seconds = Some(3600.0);
    if phase == Phase::FinalEvaluation {
        // One short epoch, so the run reaches its final evaluation soon.
        settings.epochs = Some(1);
        settings.max_seconds = None;
    }
    let mut job = TrainJob::new(data.to_path_buf(), settings);
    // As the window does: a share held out to validate every epoch.
    job.holdout_share = Some(0.1);
    if phase == Phase::FinalEvaluation {
        job.validation = queries.map(Path::to_path_buf);
    }
    job
}

/// A job's cancel flag and when it was first set.
#[derive(Default)]
struct Canceller {
    flag: AtomicBool,
    at: Mutex<Option<Instant>>,
}

impl Canceller {
    /// Cancels the job, once: the first call's time is the one measured from.
    fn fire(&self) {
        if let Ok(mut at) = self.at.lock()
            && at.is_none()
        {
            *at = Some(Instant::now());
            self.flag.store(true, Ordering::SeqCst);
        }
    }

    /// Seconds from the cancel to now, when there was one.
    fn latency(&self) -> Option<f64> {
        let at = self.at.lock().ok().and_then(|at| *at)?;
        Some(at.elapsed().as_secs_f64())
    }

    /// Prints the latency of a job, saying whether it ended cancelled or finished.
    fn report(&self, what: &str, cancelled: bool) {
        if let Some(secs) = self.latency() {
            let how = if cancelled { "cancelled" } else { "finished" };
            println!("{what:<28} {secs:>10.2}   ({how})");
        }
    }
}

/// Seconds from the cancel to `train` returning, cancelling in `phase`.
fn cancel_training(data: &Path, queries: Option<&Path>, phase: Phase) -> Option<f64> {
    let job = job(data, queries, phase);
    let canceller = Arc::new(Canceller::default());
    let fire = {
        let canceller = Arc::clone(&canceller);
        move || canceller.fire()
    };
    let on_event = |event: TrainEvent| match (phase, event) {
        (Phase::Loading, TrainEvent::Preparing { done, total }) if done > total / 4 => fire(),
        (Phase::MeasuringStart, TrainEvent::Phase(TrainPhase::MeasuringStart)) => {
            // Inside the measuring, not before it starts.
            let fire = fire.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                fire();
            });
        }
        (Phase::Step, TrainEvent::Step { global_step: 3, .. }) => fire(),
        (
            Phase::Validation,
            TrainEvent::Step {
                step,
                steps_per_epoch,
                ..
            },
        ) if step == steps_per_epoch => {
            // After the trainer's own check: the cancel lands inside validation.
            let fire = fire.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                fire();
            });
        }
        (Phase::FinalEvaluation, TrainEvent::Evaluating { done, .. }) if done > 0 => fire(),
        _ => {}
    };
    let result = train(&job, &canceller.flag, &on_event);
    let latency = canceller.latency()?;
    if let Err(error) = &result
        && !matches!(error, likeness::engine::EngineError::Cancelled)
    {
        eprintln!("{phase:?}: {error}");
    }
    Some(latency)
}

fn main() {
    // As the binary does (src/main.rs): OpenMP threads spin only briefly, and freed
    // memory is kept for reuse.
    likeness::engine::device::openmp_threads_spin_briefly();
    likeness::engine::device::keep_freed_memory();
    likeness::engine::device::blas_on_calling_thread();
    let scratch = tempfile::tempdir().expect("temp dir");
    let (data, queries) = match std::env::var_os("LIKENESS_BENCH_DATA") {
        Some(data) => (
            PathBuf::from(data),
            std::env::var_os("LIKENESS_BENCH_QUERIES").map(PathBuf::from),
        ),
        None => {
            let data = scratch.path().join("train");
            write_dataset(&data, 5, 200, 128, 1).expect("photos");
            let queries = scratch.path().join("queries");
            write_dataset(&queries, 5, 20, 128, 2).expect("photos");
            (data, Some(queries))
        }
    };
    println!("cancel latency on {} (default preset, CPU)", data.display());
    println!("{:<28} {:>10}", "phase", "seconds");
    for phase in [
        Phase::Loading,
        Phase::MeasuringStart,
        Phase::Step,
        Phase::Validation,
        Phase::FinalEvaluation,
    ] {
        match cancel_training(&data, queries.as_deref(), phase) {
            Some(secs) => println!("{:<28} {secs:>10.2}", format!("training: {phase:?}")),
            None => println!(
                "{:<28} {:>10}",
                format!("training: {phase:?}"),
                "not reached"
            ),
        }
    }

    // Indexing and retraining from marks, with an untrained model of the default preset.
    let settings = Preset::Default.settings();
    let model_path = scratch.path().join("model.safetensors");
    let model =
        likeness::engine::model::EmbeddingModel::new(settings.model_config(), tch::Device::Cpu)
            .expect("model");
    save_model(&model_path, &model, &TrainingSummary::default()).expect("save");
    let loaded = LoadedModel::load(&model_path, tch::Device::Cpu).expect("load");
    let folder = scan_folder(&data, DEFAULT_MAX_PIXELS).expect("scan");
    let canceller = Canceller::default();
    let built = Gallery::build(
        &loaded,
        &folder,
        &IndexOptions::new(DEFAULT_MAX_PIXELS),
        &|p| {
            if p.done >= 256 {
                canceller.fire();
            }
        },
        &canceller.flag,
    );
    canceller.report("indexing", built.is_err());

    let photos: Vec<PathBuf> = folder.images.iter().map(|i| i.path.clone()).collect();
    let marks = Marks {
        marks: photos
            .windows(2)
            .step_by(50)
            .take(20)
            .map(|pair| Mark {
                query: pair[0].clone(),
                photo: pair[1].clone(),
                alike: true,
            })
            .collect(),
        ..Marks::default()
    };
    let (mut model, _) = load_model(&model_path, tch::Device::Cpu).expect("load");
    let canceller = Canceller::default();
    let options = FineTune {
        seconds: 600.0,
        ..FineTune::default()
    };
    let tuned = fine_tune(
        &mut model,
        &marks,
        &photos,
        &options,
        &canceller.flag,
        &|p| {
            if p.secs > 1.0 {
                canceller.fire();
            }
        },
    );
    canceller.report("retraining from marks", tuned.is_err());
}
