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

/// The Sort tab with an inbox's photos grouped by the folder suggested for each (the
/// README's picture of it).
#[test]
fn sort_tab_snapshot() {
    use likeness::engine::sort::{NewKindSearch, SortMethod, SortPlan, Suggestion};
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rng = fastrand::Rng::with_seed(9);
    let classes = ["daisy", "rose", "tulip"];
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).expect("inbox");
    let confidences = [0.99, 0.97, 0.95, 0.93, 0.91, 0.72, 0.55, 0.96, 0.94];
    // The last two are of a kind none of the folders holds (a fourth synthetic kind),
    // found when the person asked to look for new kinds (issue #40).
    let new_kind = |i: usize| i >= 7;
    let suggestions: Vec<Suggestion> = confidences
        .iter()
        .enumerate()
        .map(|(i, &confidence)| {
            let class = i % 3;
            let photo = inbox.join(format!("IMG_{:04}.png", 2301 + i));
            let (kind, kinds) = if new_kind(i) { (3, 4) } else { (class, 3) };
            class_image(kind, kinds, 120, &mut rng)
                .save(&photo)
                .expect("save");
            Suggestion {
                photo,
                best_folder: classes[class].to_string(),
                confidence,
                unsure: if new_kind(i) {
                    Some(format!(
                        "it looks like a new kind: one of 2 inbox photos alike each other and \
                         unlike every folder (the nearest is '{}')",
                        classes[class]
                    ))
                } else {
                    (confidence < 0.9).then(|| {
                        format!(
                            "'{}' at {:.0}% is below the 90% asked for",
                            classes[class],
                            confidence * 100.0
                        )
                    })
                },
                fits_none: false,
                new_kind: new_kind(i),
            }
        })
        .collect();
    let dirs = DataDirs::under(dir.path().join("data"));
    let mut harness = window_with_default_settings(dirs);
    let state = &mut harness.state_mut().state;
    state.current.index = Some(likeness::worker::IndexSummary {
        path: "library.likeness-index".into(),
        folder: "/photos/flowers".into(),
        images: 2534,
        skipped: Vec::new(),
        model_path: "flowers.safetensors".into(),
        modified: None,
        out_of_date: 0,
        search: Default::default(),
        typical_distance: None,
    });
    state.sort.inbox = Some("/photos/phone import".into());
    state.sort.chosen = suggestions
        .iter()
        .map(|s| s.folder().map(String::from))
        .collect();
    state.sort.plan = Some(std::sync::Arc::new(SortPlan {
        inbox: inbox.clone(),
        library: "/photos/flowers".into(),
        method: SortMethod::ClassProxies,
        min_confidence: 0.9,
        folders: classes.iter().map(|c| c.to_string()).collect(),
        suggestions,
        skipped: Vec::new(),
        new_kinds: NewKindSearch::Done {
            photos: 2,
            library_photos: 900,
        },
    }));
    state.sort.new_kinds = true;
    state.view = likeness::app::CentralView::Sort;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        harness.step();
        let app = harness.state();
        if (app.thumbnails.len() == 9 && app.thumbnails.pending() == 0) || Instant::now() > deadline
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    harness.state_mut().state.device = "CPU".into();
    harness.run_steps(3);
    harness.snapshot("sort_tab");

    // Issue #41 item 2: the level lowered to 50 %: the cards follow at once, and the tab
    // says what filing there is expected to give.
    harness.state_mut().state.sort.set_min_confidence(0.5);
    harness.run_steps(3);
    harness.snapshot("sort_tab_low_level");
}

/// Issue #41 item 1: between steps the training panel names the phase that runs (here
/// the measuring after an epoch), with the run's charts so far.
#[test]
fn training_phase_snapshot() {
    use likeness::engine::train::{TrainEvent, TrainPhase};
    use likeness::worker::protocol::{Event, JobId, JobKind, Progress};
    let dir = tempfile::tempdir().expect("temp dir");
    let dirs = DataDirs::under(dir.path().join("data"));
    let mut harness = window_with_default_settings(dirs);
    let job = JobId(7);
    let state = &mut harness.state_mut().state;
    state.device = "CPU".into();
    state.training.job = Some(job);
    state.apply(Event::Started {
        job,
        kind: JobKind::Train,
    });
    let mut events = vec![TrainEvent::Started {
        device: "CPU (2 threads)".into(),
        classes: 5,
        images: 2280,
        steps_per_epoch: 72,
        epochs: None,
        budget_secs: Some(120.0),
        skipped: Vec::new(),
        notes: Vec::new(),
    }];
    for step in 1..=72 {
        events.push(TrainEvent::Step {
            epoch: 1,
            step,
            steps_per_epoch: 72,
            global_step: step,
            anchors: 32,
            loss: 3.0 - 1.6 * (step as f64 / 72.0).sqrt(),
            lr: 1e-3,
            elapsed_secs: 4.0 + step as f64 * 0.6,
            remaining_secs: 116.0 - step as f64 * 0.6,
        });
    }
    events.push(TrainEvent::Phase(TrainPhase::Validating { epoch: 1 }));
    for event in events {
        state.apply(Event::Progress {
            job,
            progress: Progress::Training(event),
        });
    }
    harness.run_steps(3);
    harness.snapshot("training_phase");
}

/// Issue #43: the Map tab with a UMAP map of five clusters (the neighbourhoods apart).
#[test]
fn map_tab_umap_snapshot() {
    use likeness::app::CentralView;
    use likeness::engine::projection::{EmbeddingMap, MapInput, MapMethod};
    use likeness::worker::protocol::{Event, JobId, JobKind, Outcome};
    let dir = tempfile::tempdir().expect("temp dir");
    let dirs = DataDirs::under(dir.path().join("data"));
    let mut harness = window_with_default_settings(dirs);
    let (count, dimension) = (400, 32);
    let mut rng = fastrand::Rng::with_seed(5);
    let centres: Vec<Vec<f32>> = (0..5)
        .map(|_| (0..dimension).map(|_| rng.f32() * 4.0 - 2.0).collect())
        .collect();
    let classes: Vec<Option<usize>> = (0..count).map(|i| Some(i % 5)).collect();
    let vectors: Vec<f32> = classes
        .iter()
        .flat_map(|c| {
            let centre = &centres[c.unwrap_or(0)];
            centre
                .iter()
                .map(|v| v + rng.f32() - 0.5)
                .collect::<Vec<_>>()
        })
        .collect();
    let names = ["daisy", "dandelion", "roses", "sunflowers", "tulips"];
    let input = MapInput {
        paths: (0..count)
            .map(|i| PathBuf::from(format!("/photos/{}/{i}.jpg", names[i % 5])))
            .collect(),
        classes,
        class_names: names.iter().map(|n| n.to_string()).collect(),
        vectors: &vectors,
        dimension,
    };
    let map = EmbeddingMap::of_vectors_with(
        input,
        MapMethod::Umap,
        &std::sync::atomic::AtomicBool::new(false),
        &mut |_| {},
    )
    .expect("map");
    let state = &mut harness.state_mut().state;
    let job = JobId(9);
    state.apply(Event::Started {
        job,
        kind: JobKind::DrawMap,
    });
    state.apply(Event::Finished {
        job,
        outcome: Box::new(Outcome::Map {
            index: "/photos.likeness-index".into(),
            map: std::sync::Arc::new(map),
        }),
    });
    state.view = CentralView::Map;
    harness.run_steps(3);
    harness.snapshot("map_tab_umap");
}

/// The window with default settings, software-rendered, once it has found its device.
fn window_with_default_settings(dirs: DataDirs) -> Harness<'static, LikenessApp> {
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1280.0, 820.0))
        .renderer(SoftwareRenderer::default())
        .with_options(SnapshotOptions::new().threshold(2.0).max_failed_pixels(300))
        .build_eframe(move |cc| {
            LikenessApp::with_settings(&cc.egui_ctx, AppSettings::default(), dirs)
        });
    let deadline = Instant::now() + Duration::from_secs(60);
    while harness.state().state.device == "detecting…" && Instant::now() < deadline {
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    harness
}
