//! `cargo bench --bench frames`: how long the window's frames take (our per-frame code,
//! layout and tessellation; no GPU) while training, indexing and loading 50 thumbnails of
//! multi-megapixel photos run in the background. Prints mean, worst and frames over 50 ms.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use likeness::app::{AppSettings, DataDirs, FrameStats, LikenessApp};
use likeness::engine::device::DeviceChoice;
use likeness::engine::synthetic::class_image;

#[derive(Debug)]
struct DroppedPath(PathBuf);

impl egui::DroppedFile for DroppedPath {
    fn path(&self) -> &Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

/// Steps at about 60 frames a second until `done`, timing each frame.
fn frames_until(
    harness: &mut Harness<'_, LikenessApp>,
    done: impl Fn(&LikenessApp) -> bool,
) -> FrameStats {
    let mut stats = FrameStats::default();
    let deadline = Instant::now() + Duration::from_secs(900);
    while !done(harness.state()) && Instant::now() < deadline {
        let started = Instant::now();
        harness.step();
        stats.record(started.elapsed());
        std::thread::sleep(Duration::from_millis(16));
    }
    stats
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let library = dir.path().join("photos");
    let mut rng = fastrand::Rng::with_seed(1);
    for class in 0..5 {
        let folder = library.join(format!("class_{class}"));
        std::fs::create_dir_all(&folder)?;
        for i in 0..12 {
            // 2400×1800 (4.3 megapixels), like a phone photo.
            let tile = class_image(class, 5, 300, &mut rng);
            let photo =
                image::imageops::resize(&tile, 2400, 1800, image::imageops::FilterType::Nearest);
            photo.save(folder.join(format!("photo_{i:02}.jpg")))?;
        }
    }
    let mut settings = AppSettings::default();
    settings.train.image_size_px = 64;
    settings.train.epochs = 4;
    settings.train.limit_epochs = true;
    settings.train.use_time_budget = false;
    settings.train.device = DeviceChoice::Cpu;
    settings.k = 50;
    let dirs = DataDirs::under(dir.path().join("data"));
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1280.0, 820.0))
        .build_eframe(move |cc| LikenessApp::with_settings(&cc.egui_ctx, settings, dirs));
    harness
        .input_mut()
        .dropped_files
        .push(Arc::new(DroppedPath(library.clone())));
    frames_until(&mut harness, |app| app.library.is_some());

    harness.state_mut().start_training();
    let training = frames_until(&mut harness, |app| app.training.outcome.is_some());
    let indexing = frames_until(&mut harness, |app| {
        app.current.index.is_some() && app.is_idle()
    });
    let query = library.join("class_3/photo_05.jpg");
    harness
        .input_mut()
        .dropped_files
        .push(Arc::new(DroppedPath(query)));
    frames_until(&mut harness, |app| app.search.is_some());
    // Only visible rows are drawn, so only their thumbnails are asked for.
    let thumbnails = frames_until(&mut harness, |app| {
        app.search.as_ref().is_some_and(|s| s.hits.len() == 50)
            && !app.thumbnails.is_empty()
            && app.thumbnails.pending() == 0
    });
    println!(
        "frame times while training (60 photos of 4.3 MP, 64 px): {}",
        training.summary()
    );
    println!(
        "frame times while indexing (60 photos of 4.3 MP):          {}",
        indexing.summary()
    );
    println!(
        "frame times while loading the visible thumbnails of 50 results ({} decoded): {}",
        harness.state().thumbnails.len(),
        thumbnails.summary()
    );
    Ok(())
}
