//! Training really learns: on generated classes, loss falls and held-out recall@1 rises
//! well above chance. Also: cancelling from another thread still gives a usable model.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use likeness::engine::data::DEFAULT_MAX_PIXELS;
use likeness::engine::device::DeviceChoice;
use likeness::engine::eval::evaluate_model;
use likeness::engine::model::model_file_bytes;
use likeness::engine::synthetic::write_dataset;
use likeness::engine::train::{Preset, TrainEvent, TrainJob, train};

#[test]
fn short_training_lowers_loss_and_lifts_recall_above_chance() {
    let dir = tempfile::tempdir().expect("temp dir");
    let train_dir = dir.path().join("train");
    let query_dir = dir.path().join("queries");
    write_dataset(&train_dir, 4, 12, 40, 10).expect("train");
    write_dataset(&query_dir, 4, 6, 40, 11).expect("queries");

    let mut settings = Preset::Default.settings();
    settings.image_size_px = 32;
    settings.epochs = 15;
    settings.batch_size = 16;
    settings.device = DeviceChoice::Cpu;
    let job = TrainJob::new(train_dir.clone(), settings);
    let steps = std::sync::Mutex::new(Vec::new());
    let outcome = train(&job, &AtomicBool::new(false), &|event| {
        if let TrainEvent::Step { loss, .. } = event {
            steps.lock().expect("lock").push(loss);
        }
    })
    .expect("train");
    let losses = &outcome.summary.epoch_losses;
    assert_eq!(losses.len(), 15);
    assert!(
        losses[7] < losses[0],
        "epoch losses did not fall: {losses:?}"
    );
    assert_eq!(steps.lock().expect("lock").len(), outcome.summary.steps);

    let (_, model_id) = model_file_bytes(&outcome.model, &outcome.summary).expect("bytes");
    let info = likeness::engine::model::ModelInfo {
        format_version: 1,
        model_id,
        config: outcome.model.config.clone(),
        summary: outcome.summary.clone(),
    };
    let report = evaluate_model(
        &outcome.model,
        &info,
        &train_dir,
        &query_dir,
        DEFAULT_MAX_PIXELS,
        &|_, _| {},
        &AtomicBool::new(false),
    )
    .expect("eval");
    assert_eq!(report.queries, 24);
    // Chance is 0.25 with four classes.
    assert!(report.recall_at_1 >= 0.6, "recall@1 {}", report.recall_at_1);
}

#[test]
fn cancelling_from_another_thread_returns_the_model_trained_so_far() {
    let dir = tempfile::tempdir().expect("temp dir");
    let train_dir = dir.path().join("train");
    write_dataset(&train_dir, 3, 5, 32, 3).expect("train");
    let mut settings = Preset::Seed.settings();
    settings.image_size_px = 32;
    settings.epochs = 1000;
    settings.batch_size = 4;
    settings.device = DeviceChoice::Cpu;
    let job = TrainJob::new(train_dir, settings);
    let cancel = Arc::new(AtomicBool::new(false));
    let canceller = Arc::clone(&cancel);
    let (step_sender, step_receiver) = crossbeam_channel::bounded::<()>(1024);
    let watcher = std::thread::spawn(move || {
        for _ in 0..3 {
            step_receiver.recv().ok();
        }
        canceller.store(true, Ordering::Relaxed);
    });
    let outcome = train(&job, &cancel, &|event| {
        if let TrainEvent::Step { .. } = event {
            step_sender.send(()).ok();
        }
    })
    .expect("train");
    watcher.join().expect("watcher");
    assert!(outcome.summary.cancelled);
    assert!(outcome.summary.steps >= 3 && outcome.summary.steps < 1000 * 6);
    let embeddings = outcome
        .model
        .embed_pixels(&vec![0.0; 3 * 32 * 32], 1)
        .expect("usable model");
    assert_eq!(embeddings.len(), 1000);
}
