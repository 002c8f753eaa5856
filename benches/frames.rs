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
    // As the binary does (src/main.rs): freed memory is kept for reuse.
    likeness::engine::device::openmp_threads_spin_briefly();
    likeness::engine::device::keep_freed_memory();
    likeness::engine::device::blas_on_calling_thread();
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
    frames_until(&mut harness, |app| app.state.settings.library.is_some());

    harness.state_mut().start_training();
    let training = frames_until(&mut harness, |app| app.state.training.outcome.is_some());
    let indexing = frames_until(&mut harness, |app| {
        app.state.current.index.is_some() && app.state.is_idle()
    });
    let query = library.join("class_3/photo_05.jpg");
    harness
        .input_mut()
        .dropped_files
        .push(Arc::new(DroppedPath(query)));
    frames_until(&mut harness, |app| app.state.search.shown.is_some());
    // Only visible rows are drawn, so only their thumbnails are asked for.
    let thumbnails = frames_until(&mut harness, |app| {
        app.state
            .search
            .shown
            .as_ref()
            .is_some_and(|s| s.hits.len() == 50)
            && !app.thumbnails.is_empty()
            && app.thumbnails.pending() == 0
    });
    let loaded_thumbnails = harness.state().thumbnails.len();
    let (drop_to_grid, large_gallery) = drop_to_grid_at_scale(&mut harness, dir.path())?;
    let map_frames = map_of_the_large_gallery(&mut harness);
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
        loaded_thumbnails,
        thumbnails.summary()
    );
    println!(
        "drop → grid with a {LARGE_GALLERY}-photo index: {:.0} ms until the results and the \
         visible thumbnails are shown; frame times: {}",
        drop_to_grid.as_secs_f64() * 1000.0,
        large_gallery.summary()
    );
    println!(
        "frame times of the map of {LARGE_GALLERY} photos, the pointer sweeping across it \
         (hover, thumbnails): {}",
        map_frames.summary()
    );
    Ok(())
}

/// Draws the map of the large gallery and times frames while the pointer sweeps over it.
fn map_of_the_large_gallery(harness: &mut Harness<'_, LikenessApp>) -> FrameStats {
    use egui_kittest::kittest::Queryable;
    harness.get_by_label("Map").click();
    harness.step();
    harness.get_by_label("Draw map").click();
    frames_until(harness, |app| {
        app.state
            .map
            .shown
            .as_ref()
            .is_some_and(|m| m.map.len() == LARGE_GALLERY && m.last_transform.is_some())
            && app.state.is_idle()
    });
    let mut stats = FrameStats::default();
    for step in 0..120 {
        let t = step as f32 / 120.0;
        harness.event(egui::Event::PointerMoved(egui::pos2(
            420.0 + 800.0 * t,
            250.0 + 400.0 * (t * 7.0).sin().abs(),
        )));
        let started = Instant::now();
        harness.step();
        stats.record(started.elapsed());
        std::thread::sleep(Duration::from_millis(16));
    }
    stats
}

/// Photos in the gallery of the drop → grid measurement.
const LARGE_GALLERY: usize = 10_000;

/// Indexes a folder of [`LARGE_GALLERY`] small photos with the window's current model,
/// drops the index onto the window, then drops a query photo and times it until the
/// results and their visible thumbnails are on screen.
fn drop_to_grid_at_scale(
    harness: &mut Harness<'_, LikenessApp>,
    dir: &Path,
) -> Result<(Duration, FrameStats), Box<dyn std::error::Error>> {
    use likeness::engine::index::{Gallery, IndexOptions};
    let folder = dir.join("large");
    let mut rng = fastrand::Rng::with_seed(5);
    for i in 0..LARGE_GALLERY {
        let sub = folder.join(format!("{:02}", i / 500));
        std::fs::create_dir_all(&sub)?;
        let photo = class_image(i % 5, 5, 72, &mut rng);
        image::imageops::resize(&photo, 96, 72, image::imageops::FilterType::Nearest)
            .save(sub.join(format!("p{i:05}.jpg")))?;
    }
    let model_path = harness
        .state()
        .state
        .current
        .model
        .as_ref()
        .ok_or("the window has no model")?
        .path
        .clone();
    let loaded = likeness::engine::model::LoadedModel::load(&model_path, tch::Device::Cpu)?;
    let scanned =
        likeness::engine::data::scan_folder(&folder, likeness::engine::data::DEFAULT_MAX_PIXELS)?;
    let gallery = Gallery::build(
        &loaded,
        &scanned,
        &IndexOptions::new(likeness::engine::data::DEFAULT_MAX_PIXELS),
        &|_| {},
        &std::sync::atomic::AtomicBool::new(false),
    )?;
    let index_path = dir.join("large.likeness-index");
    gallery.save(&index_path)?;
    harness
        .input_mut()
        .dropped_files
        .push(Arc::new(DroppedPath(index_path)));
    frames_until(harness, |app| {
        app.state
            .current
            .index
            .as_ref()
            .is_some_and(|index| index.images == LARGE_GALLERY)
            && app.state.is_idle()
    });
    let query = folder.join("07").join(format!("p{:05}.jpg", 7 * 500 + 3));
    let started = Instant::now();
    harness
        .input_mut()
        .dropped_files
        .push(Arc::new(DroppedPath(query.clone())));
    let frames = frames_until(harness, |app| {
        app.state.search.shown.as_ref().is_some_and(|s| {
            s.hits.len() == 50
                && s.hits.iter().all(|hit| hit.path.starts_with(&folder))
                // The first card's thumbnail is on screen, and no other is still loading.
                && !app.thumbnails.sides_of(&s.hits[0].path).is_empty()
        }) && app.thumbnails.pending() == 0
    });
    Ok((started.elapsed(), frames))
}
