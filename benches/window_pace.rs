//! `cargo bench --bench window_pace`: does the window slow down the job it shows?
//!
//! The same indexing job and the same training job run twice, side by side on this
//! machine: once from the command line (`likeness index` / `likeness train`, the release
//! binary) and once from the window. The window runs as eframe runs it: a frame whenever
//! egui asks for one, at the time it asks, and every frame is rendered by a CPU
//! rasteriser (tests/common/software_renderer.rs) standing in for software OpenGL under
//! Xvfb or a remote desktop. Prints seconds, frames drawn and the ratio CLI time / window
//! time (1.0: the window costs the job nothing; the target is at least 0.9).
//!
//! Options (environment): `PACE_PHOTOS` (default 600), `PACE_EPOCHS` (default 2);
//! `PACE_CAUSES=1` prints why each window frame was drawn (egui's repaint causes).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use likeness::app::{AppSettings, DataDirs, LikenessApp};
use likeness::engine::device::DeviceChoice;
use likeness::engine::model::{EmbeddingModel, save_model};
use likeness::engine::run::TrainingSummary;
use likeness::engine::synthetic::class_image;
use likeness::engine::train::Preset;

#[path = "../tests/common/software_renderer.rs"]
mod software_renderer;
use software_renderer::SoftwareRenderer;

const CLASSES: usize = 5;
const IMAGE_SIZE_PX: u32 = 64;
const BATCH_SIZE: usize = 32;

/// What one window run cost.
struct WindowRun {
    secs: f64,
    frames: usize,
    render_secs: f64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // As the binary does (src/main.rs): freed memory is kept for reuse.
    likeness::engine::device::openmp_threads_spin_briefly();
    likeness::engine::device::keep_freed_memory();
    likeness::engine::device::blas_on_calling_thread();
    let photos: usize = env_or("PACE_PHOTOS", 600);
    let epochs: usize = env_or("PACE_EPOCHS", 2);
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_likeness"));
    let dir = tempfile::tempdir()?;
    let library = dir.path().join("photos");
    let validation = dir.path().join("validation");
    write_photos(&library, photos / CLASSES, 1)?;
    write_photos(&validation, 4, 2)?;
    let model = dir.path().join("untrained.safetensors");
    let embedding =
        EmbeddingModel::new(Preset::Default.settings().model_config(), tch::Device::Cpu)?;
    save_model(&model, &embedding, &TrainingSummary::default())?;
    drop(embedding);
    println!(
        "{photos} photos of 320×240 in {CLASSES} classes; device CPU; window frames rendered \
         by a CPU rasteriser (1280×820)"
    );

    // Indexing: CLI, then window, then CLI again (the machine is shared and noisy: the
    // CLI figure is the mean of the runs around the window's).
    let index_cli = || -> Result<f64, Box<dyn std::error::Error>> {
        let started = Instant::now();
        run(Command::new(&binary).args([
            "index".as_ref(),
            "--model".as_ref(),
            model.as_os_str(),
            "--folder".as_ref(),
            library.as_os_str(),
            "--index".as_ref(),
            dir.path().join("cli.likeness-index").as_os_str(),
            "--device".as_ref(),
            "cpu".as_ref(),
        ]))?;
        Ok(started.elapsed().as_secs_f64())
    };
    let cli_before = index_cli()?;
    let window = index_in_window(&library, &model, &dir.path().join("window-data"))?;
    let cli_after = index_cli()?;
    report("indexing", (cli_before + cli_after) / 2.0, &window);

    // Training: the same settings in both, with a validation folder (so neither holds
    // photos out of the library).
    let train_cli = || -> Result<f64, Box<dyn std::error::Error>> {
        let started = Instant::now();
        let epochs = epochs.to_string();
        let image_size = IMAGE_SIZE_PX.to_string();
        let batch = BATCH_SIZE.to_string();
        run_printing_last_line(Command::new(&binary).args([
            "train".as_ref(),
            "--data".as_ref(),
            library.as_os_str(),
            "--val".as_ref(),
            validation.as_os_str(),
            "--out".as_ref(),
            dir.path().join("cli.safetensors").as_os_str(),
            "--preset".as_ref(),
            "default".as_ref(),
            "--epochs".as_ref(),
            epochs.as_ref(),
            "--image-size".as_ref(),
            image_size.as_ref(),
            "--batch-size".as_ref(),
            batch.as_ref(),
            "--device".as_ref(),
            "cpu".as_ref(),
        ]))?;
        Ok(started.elapsed().as_secs_f64())
    };
    let cli_before = train_cli()?;
    let window = train_in_window(
        &library,
        &validation,
        epochs,
        &dir.path().join("window-train-data"),
    )?;
    let cli_after = train_cli()?;
    report("training", (cli_before + cli_after) / 2.0, &window);
    Ok(())
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn write_photos(root: &Path, per_class: usize, seed: u64) -> std::io::Result<()> {
    let mut rng = fastrand::Rng::with_seed(seed);
    for class in 0..CLASSES {
        let folder = root.join(format!("class_{class}"));
        std::fs::create_dir_all(&folder)?;
        for i in 0..per_class {
            let square = class_image(class, CLASSES, 240, &mut rng);
            let photo =
                image::imageops::resize(&square, 320, 240, image::imageops::FilterType::Triangle);
            photo
                .save(folder.join(format!("photo_{i:04}.jpg")))
                .map_err(std::io::Error::other)?;
        }
    }
    Ok(())
}

/// Runs the CLI; fails with its stderr when it fails.
fn run(command: &mut Command) -> Result<std::process::Output, Box<dyn std::error::Error>> {
    let output = command.output()?;
    if !output.status.success() {
        return Err(format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(output)
}

/// Runs the CLI and prints its summary line ("trained …").
fn run_printing_last_line(command: &mut Command) -> Result<(), Box<dyn std::error::Error>> {
    let output = run(command)?;
    let text = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if let Some(line) = text
        .lines()
        .chain(stderr.lines())
        .find(|l| l.starts_with("trained "))
    {
        println!("      CLI: {line}");
    }
    Ok(())
}

fn report(job: &str, cli_secs: f64, window: &WindowRun) {
    println!(
        "{job:>9}: CLI {cli_secs:6.1} s · window {:6.1} s ({} frames, {:.1} s drawing them) · \
         ratio CLI/window {:.2}",
        window.secs,
        window.frames,
        window.render_secs,
        cli_secs / window.secs
    );
}

/// A window on `settings`, with frames scheduled the way eframe schedules them.
struct PacedWindow {
    harness: Harness<'static, LikenessApp>,
    /// When the next frame is due (as egui asked), and a signal when that changes: the
    /// loop sleeps until then, as eframe's event loop does, instead of polling.
    next_frame: Arc<(Mutex<Option<Instant>>, Condvar)>,
    frames: usize,
    render_secs: f64,
}

impl PacedWindow {
    fn new(settings: AppSettings, data: &Path) -> Self {
        let dirs = DataDirs::under(data.to_path_buf());
        let harness = Harness::builder()
            .with_size(egui::vec2(1280.0, 820.0))
            .renderer(SoftwareRenderer::default())
            .build_eframe(move |cc| LikenessApp::with_settings(&cc.egui_ctx, settings, dirs));
        let next_frame = Arc::new((Mutex::new(Some(Instant::now())), Condvar::new()));
        let requests = Arc::clone(&next_frame);
        harness.ctx.set_request_repaint_callback(move |info| {
            let at = Instant::now() + info.delay;
            let (lock, changed) = &*requests;
            let mut next = lock.lock().unwrap_or_else(|e| e.into_inner());
            *next = Some(next.map_or(at, |current| current.min(at)));
            changed.notify_one();
        });
        Self {
            harness,
            next_frame,
            frames: 0,
            render_secs: 0.0,
        }
    }

    /// Runs frames as they fall due until `done` holds.
    fn run_until(&mut self, what: &str, done: impl Fn(&LikenessApp) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(3600);
        while !done(self.harness.state()) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            let due = {
                let (lock, changed) = &*self.next_frame;
                let mut next = lock.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                match *next {
                    Some(at) if at <= now => {
                        *next = None;
                        true
                    }
                    // Sleep until the frame is due, a sooner one is asked for, or (to
                    // check `done`) a second has passed.
                    Some(at) => {
                        drop(changed.wait_timeout(next, at - now));
                        false
                    }
                    None => {
                        drop(changed.wait_timeout(next, Duration::from_secs(1)));
                        false
                    }
                }
            };
            if due {
                // Both count: egui's layout and tessellation, then the rasteriser.
                let started = Instant::now();
                self.harness.step();
                if std::env::var_os("PACE_CAUSES").is_some() {
                    eprintln!("{:?}", self.harness.ctx.repaint_causes());
                }
                self.harness.render().ok();
                self.render_secs += started.elapsed().as_secs_f64();
                self.frames += 1;
            }
        }
        if let Some(notice) = self
            .harness
            .state()
            .state
            .notices
            .iter()
            .find(|n| n.is_error)
        {
            panic!("{what}: {}", notice.text);
        }
    }
}

fn index_in_window(
    library: &Path,
    model: &Path,
    data: &Path,
) -> Result<WindowRun, Box<dyn std::error::Error>> {
    let settings = AppSettings {
        model: Some(model.to_path_buf()),
        ..Default::default()
    };
    let mut window = PacedWindow::new(settings, data);
    window.run_until("the model", |app| {
        app.state.current.model.is_some() && app.state.is_idle()
    });
    let (frames, render_secs) = (window.frames, window.render_secs);
    let started = Instant::now();
    window
        .harness
        .state_mut()
        .start_indexing(library.to_path_buf());
    window.run_until("the index", |app| {
        app.state.current.index.is_some() && app.state.is_idle()
    });
    Ok(WindowRun {
        secs: started.elapsed().as_secs_f64(),
        frames: window.frames - frames,
        render_secs: window.render_secs - render_secs,
    })
}

fn train_in_window(
    library: &Path,
    validation: &Path,
    epochs: usize,
    data: &Path,
) -> Result<WindowRun, Box<dyn std::error::Error>> {
    let mut settings = AppSettings {
        library: Some(library.to_path_buf()),
        validation: Some(validation.to_path_buf()),
        ..Default::default()
    };
    let form = &mut settings.train;
    form.epochs = epochs;
    form.limit_epochs = true;
    form.use_time_budget = false;
    form.image_size_px = IMAGE_SIZE_PX;
    form.batch_size = BATCH_SIZE;
    form.device = DeviceChoice::Cpu;
    let mut window = PacedWindow::new(settings, data);
    window.run_until("the library scan", |app| {
        app.state.settings.library.is_some() && app.state.is_idle()
    });
    let (frames, render_secs) = (window.frames, window.render_secs);
    let started = Instant::now();
    window.harness.state_mut().start_training();
    window.run_until("the trained model", |app| {
        app.state.training.outcome.is_some()
    });
    if let Some(end) = &window.harness.state().state.training.outcome {
        println!("   window: {}", end.lines[0]);
    }
    Ok(WindowRun {
        secs: started.elapsed().as_secs_f64(),
        frames: window.frames - frames,
        render_secs: window.render_secs - render_secs,
    })
}
