//! A rendered snapshot of the main screen with results (tests/snapshots/*.png).
//!
//! egui_kittest renders through wgpu by default, which needs a GPU or a Vulkan software
//! driver; this test renders with a small CPU rasteriser instead (common/software_renderer.rs),
//! so the snapshot renders on any machine.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use egui_kittest::{Harness, SnapshotOptions};
use likeness::app::{AppSettings, DataDirs, LikenessApp, SearchView};
use likeness::engine::index::SearchHit;
use likeness::engine::synthetic::class_image;
use likeness::worker::Query;

#[path = "common/software_renderer.rs"]
mod software_renderer;
use software_renderer::SoftwareRenderer;

#[test]
fn main_screen_with_results_snapshot() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rng = fastrand::Rng::with_seed(5);
    let classes = ["daisy", "rose", "tulip"];
    let mut hits = Vec::new();
    for rank in 1..=8 {
        let class = (rank - 1) % 3;
        let path: PathBuf = dir
            .path()
            .join(classes[class])
            .join(format!("photo_{rank}.png"));
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        class_image(class, 3, 120, &mut rng)
            .save(&path)
            .expect("save");
        hits.push(SearchHit {
            rank,
            distance: 0.05 * (rank - 1) as f32,
            path,
            class: Some(classes[class].to_string()),
        });
    }
    let settings = AppSettings {
        k: 8,
        ..Default::default()
    };
    let dirs = DataDirs::under(dir.path().join("data"));
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1280.0, 820.0))
        .renderer(SoftwareRenderer::default())
        .with_options(SnapshotOptions::new().threshold(2.0).max_failed_pixels(300))
        .build_eframe(move |cc| LikenessApp::with_settings(&cc.egui_ctx, settings, dirs));
    let query = hits[0].path.clone();
    let preview = harness.ctx.load_texture(
        "query",
        egui::ColorImage::from_rgb(
            [120, 120],
            image::open(&query).expect("query").to_rgb8().as_raw(),
        ),
        egui::TextureOptions::LINEAR,
    );
    // A named query, not a temporary path, so the rendered text is the same on every run.
    let query_image = std::sync::Arc::new(image::open(&query).expect("query").to_rgb8());
    harness.state_mut().state.search.shown = Some(SearchView {
        query: Query::Rgb {
            name: "pasted image".into(),
            image: query_image,
        },
        preview: Some(preview),
        selected: vec![true; hits.len()],
        hits,
        vector: Default::default(),
        refined_by: 0,
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        harness.step();
        let app = harness.state();
        if (app.thumbnails.len() == 8
            && app.thumbnails.pending() == 0
            && app.state.device != "detecting…")
            || Instant::now() > deadline
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    harness.run_steps(3);
    // The device line differs between machines; everything else is fixed.
    harness.state_mut().state.device = "CPU".into();
    harness.run_steps(2);
    harness.snapshot("main_screen_with_results");
}
