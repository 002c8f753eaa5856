//! Training really learns: on generated classes, loss falls and held-out recall@1 rises
//! well above chance. Also: cancelling from another thread still gives a usable model.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use likeness::engine::data::DEFAULT_MAX_PIXELS;
use likeness::engine::device::DeviceChoice;
use likeness::engine::eval::evaluate_model;
use likeness::engine::synthetic::write_dataset;
use likeness::engine::train::{Preset, TrainEvent, TrainJob, train};

/// Four generated classes: 12 training and 6 query photos each, 40 px.
fn four_generated_classes(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let train_dir = dir.join("train");
    let query_dir = dir.join("queries");
    write_dataset(&train_dir, 4, 12, 40, 10).expect("train");
    write_dataset(&query_dir, 4, 6, 40, 11).expect("queries");
    (train_dir, query_dir)
}

/// The default preset, small enough for a test: 32 px, 15 epochs of 16 photos, on the CPU.
fn small_default_settings() -> likeness::engine::train::TrainSettings {
    let mut settings = Preset::Scratch.settings();
    settings.image_size_px = 32;
    settings.epochs = Some(15);
    settings.batch_size = 16;
    settings.device = DeviceChoice::Cpu;
    settings
}

/// Retrieval of the query photos in the training photos by `model`.
fn evaluate_on(
    model: &likeness::engine::model::EmbeddingModel,
    train_dir: &std::path::Path,
    query_dir: &std::path::Path,
) -> likeness::engine::eval::RetrievalReport {
    evaluate_model(
        model,
        "trained in this test",
        train_dir,
        query_dir,
        DEFAULT_MAX_PIXELS,
        &|_| {},
        &AtomicBool::new(false),
    )
    .expect("eval")
}

#[test]
fn short_training_lowers_loss_and_lifts_recall_above_chance() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (train_dir, query_dir) = four_generated_classes(dir.path());
    let settings = small_default_settings();
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

    let report = evaluate_on(&outcome.model, &train_dir, &query_dir);
    assert_eq!(report.queries, 24);
    // Chance is 0.25 with four classes.
    assert!(report.recall_at_1 >= 0.6, "recall@1 {}", report.recall_at_1);
}

/// CutMix pastes a box of another photo into every image, so each batch is harder to
/// fit; on generated classes it must still learn them (the loss falls, and recall@1 is
/// well above the 0.25 of chance), through the channels-last batches the default uses.
#[test]
fn training_with_cutmix_still_learns_the_classes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (train_dir, query_dir) = four_generated_classes(dir.path());
    let mut settings = small_default_settings();
    settings.cutmix_alpha = 1.0;
    assert!(settings.channels_last);
    let outcome = train(
        &TrainJob::new(train_dir.clone(), settings.clone()),
        &AtomicBool::new(false),
        &|_| {},
    )
    .expect("train");
    let losses = &outcome.summary.epoch_losses;
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(
        losses[14] < losses[0],
        "epoch losses did not fall: {losses:?}"
    );
    let report = evaluate_on(&outcome.model, &train_dir, &query_dir);
    assert!(report.recall_at_1 >= 0.5, "recall@1 {}", report.recall_at_1);

    // Mixup and CutMix both blend the batch: asking for both is refused before training.
    settings.mixup_alpha = 0.2;
    let refused = train(
        &TrainJob::new(train_dir, settings),
        &AtomicBool::new(false),
        &|_| {},
    );
    let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("choose one"), "{message}");
}

#[test]
fn cancelling_from_another_thread_returns_the_model_trained_so_far() {
    let dir = tempfile::tempdir().expect("temp dir");
    let train_dir = dir.path().join("train");
    write_dataset(&train_dir, 3, 5, 32, 3).expect("train");
    let mut settings = Preset::Seed.settings();
    settings.image_size_px = 32;
    settings.epochs = Some(1000);
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

#[test]
fn a_time_budget_trains_until_it_is_spent_not_until_an_epoch_cap() {
    let dir = tempfile::tempdir().expect("temp dir");
    let train_dir = dir.path().join("train");
    write_dataset(&train_dir, 2, 4, 16, 5).expect("train");
    let mut settings = Preset::Seed.settings();
    settings.image_size_px = 16;
    settings.batch_size = 4;
    settings.max_seconds = Some(3.0);
    settings.device = DeviceChoice::Cpu;
    let announced = std::sync::Mutex::new(None);
    let outcome = train(
        &TrainJob::new(train_dir, settings),
        &AtomicBool::new(false),
        &|event| {
            if let TrainEvent::Started {
                epochs,
                budget_secs,
                ..
            } = event
            {
                *announced.lock().expect("lock") = Some((epochs, budget_secs));
            }
        },
    )
    .expect("train");
    // No epoch cap is announced or applied: the budget alone ends the run.
    assert_eq!(*announced.lock().expect("lock"), Some((None, Some(3.0))));
    let summary = &outcome.summary;
    assert!(summary.stopped_by_time_budget, "{summary:?}");
    // The steps use the budget but for what the run needs after them (measured as it
    // starts: a fraction of a second here), so that the whole run fits in it.
    assert!(
        summary.train_secs >= 3.0 * 0.8,
        "stopped at {} s",
        summary.train_secs
    );
}

#[test]
fn a_collapsed_embedding_is_reported_and_no_model_comes_back() {
    use likeness::engine::model::{EmbeddingModel, ModelConfig};
    let dir = tempfile::tempdir().expect("temp dir");
    let train_dir = dir.path().join("train");
    write_dataset(&train_dir, 2, 4, 32, 6).expect("train");
    // Weights whose final layer ignores the image: every photo maps to the same point,
    // and a learning rate too small to move it keeps it there.
    let source =
        EmbeddingModel::new(ModelConfig::torchvision_resnet18(), tch::Device::Cpu).expect("model");
    let mut tensors = source.contiguous_tensors();
    for (name, tensor) in tensors.iter_mut() {
        if name == "fc.weight" {
            *tensor = tensor.zeros_like();
        }
    }
    let weights = dir.path().join("collapsed.safetensors");
    tch::Tensor::write_safetensors(&tensors, &weights).expect("weights");

    let mut settings = Preset::Seed.settings();
    settings.image_size_px = 32;
    settings.batch_size = 4;
    settings.epochs = Some(60);
    settings.lr = 1e-9;
    settings.device = DeviceChoice::Cpu;
    let mut job = TrainJob::new(train_dir, settings);
    job.weights = Some(weights);
    let spreads = std::sync::Mutex::new(Vec::new());
    let error = match train(&job, &AtomicBool::new(false), &|event| {
        if let TrainEvent::EpochEnd {
            embedding_spread, ..
        } = event
        {
            spreads.lock().expect("lock").push(embedding_spread);
        }
    }) {
        Ok(_) => panic!("a collapsed model came back as if trained"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("collapsed"), "{error}");
    assert!(error.contains("Nothing was written"), "{error}");
    let spreads = spreads.lock().expect("lock");
    assert!(
        spreads.iter().all(|&s| s < 0.02),
        "progress showed the spread: {spreads:?}"
    );
}

/// Four generated classes of 20 photos, 40 px, with 8 of them (10 %) moved into a wrong
/// class folder.
fn planted_generated_classes(
    dir: &std::path::Path,
) -> (
    std::path::PathBuf,
    Vec<likeness::engine::bench::planted_mislabels::PlantedMistake>,
) {
    let source = dir.join("source");
    write_dataset(&source, 4, 20, 40, 21).expect("data");
    let planted_folder = dir.join("planted");
    let planted = likeness::engine::bench::planted_mislabels::plant_mislabels(
        &source,
        &planted_folder,
        0.1,
        3,
    )
    .expect("plant");
    (planted_folder, planted)
}

#[test]
fn the_mislabel_finder_finds_planted_mistakes() {
    use likeness::engine::bench::planted_mislabels::{mislabel_evidence_for_folder, score_finder};
    use likeness::engine::collection::mislabels::MISLABEL_CONFIDENCE;
    let dir = tempfile::tempdir().expect("temp dir");
    let (planted_folder, planted) = planted_generated_classes(dir.path());
    assert_eq!(planted.len(), 8);

    let mut settings = small_default_settings();
    settings.epochs = Some(25);
    let outcome = train(
        &TrainJob::new(planted_folder.clone(), settings),
        &AtomicBool::new(false),
        &|_| {},
    )
    .expect("train");
    let evidence = mislabel_evidence_for_folder(&outcome.model, &planted_folder).expect("evidence");
    assert_eq!(evidence.len(), 80);
    let score = score_finder(&evidence, &planted, MISLABEL_CONFIDENCE);
    assert!(
        score.precision >= 0.5 && score.recall >= 0.5,
        "finder on planted mistakes: {score:?}"
    );
}

/// Cross-fitting judges each photo by a network that never trained on it: a planted
/// mistake cannot have been learnt by that network, so it takes the photo for its true
/// class and the photo's held-out margin is below zero.
#[test]
fn cross_fitting_judges_every_photo_by_a_network_that_did_not_train_on_it() {
    use likeness::engine::bench::cross_fit::cross_fit;
    let dir = tempfile::tempdir().expect("temp dir");
    let (planted_folder, planted) = planted_generated_classes(dir.path());
    let mut settings = small_default_settings();
    settings.epochs = Some(25);
    let parts_heard = std::sync::Mutex::new(std::collections::BTreeSet::new());
    let work = dir.path().join("work");
    let fit = cross_fit(
        &planted_folder,
        &work,
        2,
        &settings,
        &AtomicBool::new(false),
        &|part, _| {
            parts_heard.lock().expect("lock").insert(part);
        },
    )
    .expect("cross-fit");
    assert_eq!(fit.steps.len(), 2, "one network per part");
    assert_eq!(*parts_heard.lock().expect("lock"), [0, 1].into());
    assert_eq!(fit.photos.len(), 80);
    assert!(
        std::fs::read_dir(&work).map_or(true, |mut d| d.next().is_none()),
        "the parts' folders of links are removed"
    );
    for class in 0..fit.classes.len() {
        let in_part = |part| {
            fit.photos
                .iter()
                .filter(|p| p.class == class && p.fold == part)
                .count()
        };
        assert!(
            in_part(0).abs_diff(in_part(1)) <= 1,
            "each part holds half of every class"
        );
    }
    assert!(
        fit.photos
            .iter()
            .all(|p| p.held_out_margin.is_some() && p.training.is_some()),
        "every photo was judged held out and trained on"
    );
    let planted_paths: std::collections::HashSet<_> =
        planted.iter().map(|m| m.path.clone()).collect();
    let (mistakes, right): (Vec<_>, Vec<_>) = fit
        .photos
        .iter()
        .partition(|p| planted_paths.contains(&p.path));
    assert_eq!(mistakes.len(), planted.len());
    let taken_for_another = mistakes
        .iter()
        .filter(|p| p.held_out_margin.is_some_and(|m| m < 0.0))
        .count();
    assert!(
        taken_for_another * 4 >= mistakes.len() * 3,
        "only {taken_for_another} of {} planted mistakes were taken for another class",
        mistakes.len()
    );
    let mean = |photos: &[&likeness::engine::bench::cross_fit::FoldedPhoto]| {
        photos.iter().filter_map(|p| p.held_out_margin).sum::<f64>() / photos.len() as f64
    };
    assert!(
        mean(&mistakes) < mean(&right),
        "mistakes are not below the right labels"
    );
}

/// Trains a small default-preset run (with a weight average and mixup) for `epochs`
/// epochs and saves the model and its training state in `dir`.
fn train_and_save(
    train_dir: &std::path::Path,
    model_path: &std::path::Path,
    epochs: usize,
) -> likeness::engine::train::TrainOutcome {
    use likeness::engine::train::resume::{save_train_state, state_path};
    let mut settings = Preset::Scratch.settings();
    settings.image_size_px = 16;
    settings.batch_size = 8;
    settings.epochs = Some(epochs);
    settings.ema_decay = 0.9;
    settings.mixup_alpha = 0.2;
    settings.device = DeviceChoice::Cpu;
    let outcome = train(
        &TrainJob::new(train_dir.to_path_buf(), settings),
        &AtomicBool::new(false),
        &|_| {},
    )
    .expect("train");
    let info = likeness::engine::model::save_model(model_path, &outcome.model, &outcome.summary)
        .expect("save model");
    save_train_state(&state_path(model_path), &outcome.state, &info.model_id).expect("save state");
    outcome
}

#[test]
fn a_resumed_run_continues_the_schedule_where_it_stopped() {
    use likeness::engine::train::schedule::learning_rate;
    let dir = tempfile::tempdir().expect("temp dir");
    let train_dir = dir.path().join("train");
    write_dataset(&train_dir, 2, 8, 16, 21).expect("train");
    let model_path = dir.path().join("model.safetensors");
    let first = train_and_save(&train_dir, &model_path, 2);
    let first_steps = first.summary.steps;
    assert_eq!(first_steps, 4, "2 epochs of 16 photos in batches of 8");

    // Two more epochs: the budget of this run only; the settings are the first run's.
    let mut this_run = Preset::Seed.settings();
    this_run.epochs = Some(2);
    this_run.device = DeviceChoice::Cpu;
    let mut job = TrainJob::new(train_dir.clone(), this_run);
    job.resume = Some(model_path.clone());
    let rates = std::sync::Mutex::new(Vec::new());
    let resumed = train(&job, &AtomicBool::new(false), &|event| {
        if let TrainEvent::Step {
            lr, global_step, ..
        } = event
        {
            rates.lock().expect("lock").push((global_step, lr));
        }
    })
    .expect("resume");
    let rates = rates.into_inner().expect("lock");
    let earlier = resumed.summary.resumed_from.clone().expect("resumed");
    assert_eq!(earlier.steps, first_steps);
    assert_eq!(earlier.model_id.len(), 16);
    assert_eq!(resumed.summary.steps, 4, "this run's own steps");
    // The step count goes on, and the first learning rate is where one 8-step run would
    // be after 4 steps (half-way down the cosine), not a new warm-up's first value.
    assert_eq!(rates[0].0, first_steps + 1);
    let settings = &first.state.info.settings;
    assert_eq!(
        settings.loss,
        likeness::engine::train::Loss::NormalizedSoftmax
    );
    let expected = learning_rate(settings, first_steps as f64 / (first_steps + 4) as f64);
    assert!(
        (rates[0].1 - expected).abs() < 1e-12,
        "{} vs {expected}",
        rates[0].1
    );
    assert!(rates[0].1 > 0.4 * settings.lr, "no new warm-up: {rates:?}");
    assert_eq!(resumed.state.info.position.steps, first_steps + 4);
    assert_eq!(resumed.state.info.epochs, 4);
}

#[test]
fn resuming_refuses_a_missing_foreign_or_mismatched_state_with_a_clear_message() {
    use likeness::engine::train::resume::state_path;
    let dir = tempfile::tempdir().expect("temp dir");
    let train_dir = dir.path().join("train");
    write_dataset(&train_dir, 2, 8, 16, 22).expect("train");
    let first = dir.path().join("first.safetensors");
    let second = dir.path().join("second.safetensors");
    train_and_save(&train_dir, &first, 1);
    train_and_save(&train_dir, &second, 2);
    let resume = |model: &std::path::Path, data: &std::path::Path| {
        let mut settings = Preset::Scratch.settings();
        settings.epochs = Some(1);
        settings.device = DeviceChoice::Cpu;
        let mut job = TrainJob::new(data.to_path_buf(), settings);
        job.resume = Some(model.to_path_buf());
        train(&job, &AtomicBool::new(false), &|_| {})
            .map(|_| ())
            .expect_err("refused")
            .to_string()
    };
    // Another model's state beside this one.
    std::fs::copy(state_path(&second), state_path(&first)).expect("copy");
    let error = resume(&first, &train_dir);
    assert!(error.contains("belongs to another model"), "{error}");
    // Something else under the state's name.
    std::fs::copy(&second, state_path(&first)).expect("copy");
    let error = resume(&first, &train_dir);
    assert!(error.contains("not a Likeness training state"), "{error}");
    // No state at all.
    std::fs::remove_file(state_path(&first)).expect("remove");
    let error = resume(&first, &train_dir);
    assert!(error.contains("no training state"), "{error}");
    assert!(
        error.contains("--init-model"),
        "says what to do instead: {error}"
    );
    // Other class folders than the run trained on.
    let other_classes = dir.path().join("other");
    write_dataset(&other_classes, 3, 4, 16, 23).expect("other");
    let error = resume(&second, &other_classes);
    assert!(error.contains("same class folders"), "{error}");
}

/// Issue #41 item 1: a cancel before the first step ends the run at once, in loading and
/// in measuring the starting model alike: no more photos are decoded than the loader
/// threads had in hand, nothing is measured after it, and no step runs. Counted, not
/// timed.
#[test]
fn a_cancel_before_the_first_step_stops_loading_and_measuring_at_once() {
    use likeness::engine::train::TrainPhase;
    let dir = tempfile::tempdir().expect("temp dir");
    let train_dir = dir.path().join("train");
    write_dataset(&train_dir, 2, 60, 40, 21).expect("train");
    let mut settings = small_default_settings();
    settings.epochs = Some(2);
    let mut job = TrainJob::new(train_dir, settings);
    job.holdout_share = Some(0.2);
    job.loader_threads = 2;

    // During loading.
    let cancel = AtomicBool::new(false);
    let decoded_after_cancel = std::sync::Mutex::new(Vec::new());
    let later_events = std::sync::Mutex::new(Vec::new());
    let outcome = train(&job, &cancel, &|event| match event {
        TrainEvent::Preparing { done, .. } if !cancel.load(Ordering::Relaxed) => {
            cancel.store(true, Ordering::Relaxed);
            decoded_after_cancel.lock().expect("lock").push(done);
        }
        TrainEvent::Preparing { done, .. } => decoded_after_cancel.lock().expect("lock").push(done),
        other => later_events
            .lock()
            .expect("lock")
            .push(format!("{other:?}")),
    });
    assert!(
        matches!(outcome, Err(likeness::engine::EngineError::Cancelled)),
        "cancelled while loading: nothing to keep"
    );
    let decoded = decoded_after_cancel.lock().expect("lock").clone();
    // Progress is reported every 16 photos. Each loader thread finishes the photo in its
    // hands and takes no other, so no further report comes.
    assert_eq!(
        decoded.len(),
        1,
        "decoding went on after the cancel: {decoded:?} reported (of 120)"
    );
    assert!(
        later_events.lock().expect("lock").is_empty(),
        "nothing after loading: {:?}",
        later_events.lock().expect("lock")
    );

    // While the starting model is measured.
    let cancel = AtomicBool::new(false);
    let events = std::sync::Mutex::new(Vec::new());
    let outcome = train(&job, &cancel, &|event| {
        if event == TrainEvent::Phase(TrainPhase::MeasuringStart) {
            cancel.store(true, Ordering::Relaxed);
        }
        events.lock().expect("lock").push(event);
    });
    assert!(
        matches!(outcome, Err(likeness::engine::EngineError::Cancelled)),
        "cancelled while measuring the starting model"
    );
    let events = events.lock().expect("lock");
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, TrainEvent::Started { .. } | TrainEvent::Step { .. })),
        "no step after the cancel: {events:?}"
    );
}
