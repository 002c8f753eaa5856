//! End-to-end: the `likeness` binary on generated class folders, as a script would use it.

use std::path::Path;
use std::process::{Command, Output};

use likeness::engine::synthetic::{write_dataset, write_resnet18_weights, write_tiny_model};

#[path = "common/binary.rs"]
#[allow(dead_code)] // each test crate uses its own subset
mod binary;
mod common;
use binary::{assert_ok, last_json, likeness, s};

#[test]
fn train_index_search_eval_export_end_to_end() {
    let dir = tempfile::tempdir().expect("temp dir");
    let train = dir.path().join("train");
    let val = dir.path().join("val");
    write_dataset(&train, 3, 6, 40, 1).expect("train set");
    write_dataset(&val, 3, 3, 40, 2).expect("val set");
    // A broken file in the training data is skipped and counted, not fatal.
    std::fs::write(
        train.join("class_00/broken.jpg"),
        b"\xff\xd8\xff\xe0 truncated",
    )
    .expect("write");
    let model = dir.path().join("model.safetensors");
    let index = dir.path().join("gallery.likeness-index");

    let output = likeness(&[
        "train",
        "--data",
        s(&train),
        "--val",
        s(&val),
        "--out",
        s(&model),
        "--image-size",
        "32",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "--json",
    ]);
    assert_ok(&output);
    let trained = last_json(&output);
    assert_eq!(trained["epochs"], 2);
    assert_eq!(trained["images"], 18);
    assert_eq!(trained["skipped"], 1);
    assert!(trained["validation"]["recall@1"].is_number());
    assert!(String::from_utf8_lossy(&output.stderr).contains("broken.jpg"));
    assert!(model.exists());

    let output = likeness(&[
        "index",
        "--model",
        s(&model),
        "--folder",
        s(&train),
        "--index",
        s(&index),
        "--json",
    ]);
    assert_ok(&output);
    assert_eq!(last_json(&output)["images"], 18);

    let query = train.join("class_01/img_002.png");
    let output = likeness(&[
        "search",
        "--index",
        s(&index),
        s(&query),
        "-k",
        "4",
        "--json",
    ]);
    assert_ok(&output);
    let results = &last_json(&output)["queries"][0]["results"];
    assert_eq!(results.as_array().expect("array").len(), 4);
    assert_eq!(results[0]["path"], s(&query));
    // The query is re-embedded through the same pipeline: zero up to float rounding.
    assert!(results[0]["distance"].as_f64().expect("distance") < 1e-5);
    assert_eq!(results[0]["class"], "class_01");

    let output = likeness(&[
        "eval",
        "--model",
        s(&model),
        "--gallery",
        s(&train),
        "--queries",
        s(&val),
        "--json",
    ]);
    assert_ok(&output);
    let report = last_json(&output);
    for key in ["recall@1", "recall@5", "recall@10", "map@r"] {
        let value = report[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing"));
        assert!((0.0..=1.0).contains(&value), "{key} = {value}");
    }
    assert_eq!(report["queries"], 9);
    assert_eq!(report["gallery"], 18);
    assert_eq!(
        report["per_class_recall_at_1"]
            .as_object()
            .expect("object")
            .len(),
        3
    );

    let out = dir.path().join("export");
    let output = likeness(&[
        "export",
        "--index",
        s(&index),
        s(&query),
        "-k",
        "3",
        "--to",
        s(&out),
    ]);
    assert_ok(&output);
    assert!(out.join("01_img_002.png").exists());
    assert!(out.join("results.csv").exists());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).expect("manifest"))
            .expect("json");
    assert_eq!(manifest["results"].as_array().expect("array").len(), 3);
}

#[test]
fn bad_input_gives_clear_messages_and_failure_codes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = dir.path().join("m.safetensors");

    let output = likeness(&["train", "--data", "/no/such/folder", "--out", s(&model)]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no such folder"));

    let one_class = dir.path().join("one");
    write_dataset(&one_class, 1, 3, 16, 0).expect("data");
    let output = likeness(&["train", "--data", s(&one_class), "--out", s(&model)]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("at least two"));
    assert!(
        !model.exists(),
        "no model is written when training cannot start"
    );

    let not_an_index = dir.path().join("notes.txt");
    std::fs::write(&not_an_index, "hello").expect("write");
    let output = likeness(&["search", "--index", s(&not_an_index), s(&not_an_index)]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a Likeness index"));

    // Cross-fitting scores the mislabel finder: without planted mistakes it is refused,
    // and so is a single part (nothing would be held out).
    let output = likeness(&["bench", "--data", s(&one_class), "--cross-fit", "2"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--plant-mislabels"));
    let output = likeness(&[
        "bench",
        "--data",
        s(&one_class),
        "--plant-mislabels",
        "0.02",
        "--cross-fit",
        "1",
    ]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--cross-fit"));
}

#[test]
fn time_budget_stops_training_and_still_writes_the_model() {
    let dir = tempfile::tempdir().expect("temp dir");
    let train = dir.path().join("train");
    write_dataset(&train, 2, 4, 32, 5).expect("data");
    let model = dir.path().join("budget.safetensors");
    let output = likeness(&[
        "train",
        "--data",
        s(&train),
        "--out",
        s(&model),
        "--preset",
        "seed",
        "--image-size",
        "32",
        "--epochs",
        "100000",
        "--max-seconds",
        "0.5",
        "--device",
        "cpu",
        "--json",
    ]);
    assert_ok(&output);
    let summary = last_json(&output);
    assert_eq!(summary["stopped_by_time_budget"], true);
    assert!(summary["steps"].as_u64().expect("steps") >= 1);
    assert!(model.exists());
}

#[test]
fn window_without_display_points_to_the_command_line() {
    let output = likeness(&[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("likeness --help"), "{stderr}");
}

#[test]
fn an_index_refuses_a_different_model() {
    let dir = tempfile::tempdir().expect("temp dir");
    let train = dir.path().join("train");
    write_dataset(&train, 2, 3, 32, 8).expect("data");
    let first = dir.path().join("first.safetensors");
    let second = dir.path().join("second.safetensors");
    let index = dir.path().join("first.likeness-index");
    for (model, seed) in [(&first, "1"), (&second, "2")] {
        assert_ok(&likeness(&[
            "train",
            "--data",
            s(&train),
            "--out",
            s(model),
            "--image-size",
            "32",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--device",
            "cpu",
            "--seed",
            seed,
        ]));
    }
    assert_ok(&likeness(&[
        "index",
        "--model",
        s(&first),
        "--folder",
        s(&train),
        "--index",
        s(&index),
    ]));
    let query = train.join("class_00/img_000.png");
    let output = likeness(&[
        "search",
        "--index",
        s(&index),
        "--model",
        s(&second),
        s(&query),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("was built with model"), "{stderr}");
    // Opening a model where an index belongs is a clear error too.
    let output = likeness(&["search", "--index", s(&first), s(&query)]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("model file, not an index"));
}

/// `likeness` with its user data folder (where downloaded weights go) under `data_home`.
fn likeness_with_data_home(data_home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_likeness"))
        .args(args)
        .env("XDG_DATA_HOME", data_home)
        .env_remove("LIKENESS_WEIGHTS_URL")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .expect("run likeness")
}

#[test]
fn imagenet_weights_download_is_checked_cached_and_used_by_train() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_home = dir.path().join("data-home");
    let weights = dir.path().join("served.safetensors");
    write_resnet18_weights(&weights).expect("weights");
    let weight_bytes = std::fs::read(&weights).expect("read");
    // Connection 1: the weights; 2: garbage; 3: a transfer cut short.
    let mut truncated = common::http_ok(&weight_bytes);
    truncated.truncate(truncated.len() / 2);
    let url = common::serve(vec![
        common::http_ok(&weight_bytes),
        common::http_ok(b"<html>sign in to download</html>"),
        truncated,
    ]);

    let output = likeness_with_data_home(
        &data_home,
        &["weights", "download", "--url", &url, "--json"],
    );
    assert_ok(&output);
    let report = last_json(&output);
    let cached = data_home.join("likeness/weights/resnet18-imagenet.safetensors");
    assert_eq!(report["path"].as_str(), Some(s(&cached)));
    assert_eq!(report["downloaded"], true);
    assert_eq!(report["tensors"], 102);
    assert_eq!(std::fs::read(&cached).expect("cached"), weight_bytes);

    // Already there: no second download (the server would answer with garbage now).
    let again = likeness_with_data_home(&data_home, &["weights", "download", "--json"]);
    assert_ok(&again);
    assert_eq!(last_json(&again)["downloaded"], false);

    // A forced download of something that is not weights is refused and keeps the file.
    for what in ["not ResNet18 weights", "the transfer"] {
        let refused = likeness_with_data_home(
            &data_home,
            &["weights", "download", "--force", "--url", &url],
        );
        assert!(!refused.status.success());
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(what), "{stderr}");
        assert_eq!(std::fs::read(&cached).expect("cached"), weight_bytes);
    }
    let leftovers: Vec<_> = std::fs::read_dir(cached.parent().expect("folder"))
        .expect("list")
        .collect();
    assert_eq!(leftovers.len(), 1, "temporary files left behind");

    // `--weights imagenet` trains from the cached file.
    let data = dir.path().join("train");
    write_dataset(&data, 3, 4, 32, 5).expect("dataset");
    let model = dir.path().join("model.safetensors");
    let output = likeness_with_data_home(
        &data_home,
        &[
            "train",
            "--data",
            s(&data),
            "--out",
            s(&model),
            "--backbone",
            "resnet18",
            "--weights",
            "imagenet",
            "--epochs",
            "1",
            "--image-size",
            "32",
            "--batch-size",
            "4",
            "--device",
            "cpu",
            "--json",
        ],
    );
    assert_ok(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("pretrained weights"), "{stderr}");
    // The model remembers that it expects ImageNet-normalised pixels.
    let info = likeness::engine::model::read_model_info(&model).expect("model info");
    assert_eq!(
        info.config.preprocess.mean,
        likeness::engine::data::Preprocess::IMAGENET_MEAN
    );
    assert_eq!(info.summary.pretrained_weights.as_deref(), Some(s(&cached)));

    // `weights check` accepts the cached file and names what is wrong with another.
    assert_ok(&likeness_with_data_home(
        &data_home,
        &["weights", "check", s(&cached)],
    ));
    let pickle = dir.path().join("resnet18.pth");
    std::fs::write(&pickle, b"PK\x03\x04 a zip of pickles").expect("write");
    let check = likeness_with_data_home(&data_home, &["weights", "check", s(&pickle)]);
    assert!(!check.status.success());
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(stderr.contains("cannot be used as --weights"), "{stderr}");
    assert!(stderr.contains("pickle files"), "{stderr}");
}

#[test]
fn indexing_again_embeds_only_new_and_changed_photos() {
    incremental_indexing(None);
}

#[test]
fn an_approximate_index_takes_new_and_changed_photos_without_a_rebuild() {
    incremental_indexing(Some("--approximate"));
}

/// Indexes a folder, changes it and indexes it again, checking the counts; with
/// `--approximate` also that the index stays approximate and finds the new photo.
fn incremental_indexing(method: Option<&str>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let photos = dir.path().join("photos");
    write_dataset(&photos, 2, 3, 32, 81).expect("photos");
    let model = dir.path().join("model.safetensors");
    assert_ok(&likeness(&[
        "train",
        "--data",
        s(&photos),
        "--out",
        s(&model),
        "--epochs",
        "1",
        "--image-size",
        "32",
        "--batch-size",
        "4",
        "--device",
        "cpu",
    ]));
    let index = dir.path().join("photos.likeness-index");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "index",
            "--model",
            s(&model),
            "--folder",
            s(&photos),
            "--index",
            s(&index),
            "--device",
            "cpu",
            "--json",
        ];
        args.extend(method);
        args.extend_from_slice(extra);
        let output = likeness(&args);
        assert_ok(&output);
        let json = last_json(&output);
        let expected_kind = if method.is_some() {
            "approximate"
        } else {
            "exact"
        };
        assert_eq!(json["search"]["kind"], expected_kind, "{json}");
        ["added", "updated", "removed", "kept"].map(|key| json[key].as_u64().unwrap_or(99))
    };
    assert_eq!(run(&[]), [6, 0, 0, 0]);
    assert_eq!(run(&[]), [0, 0, 0, 6], "an unchanged folder embeds nothing");
    // One added, one changed (new content and size), one deleted.
    std::fs::copy(
        photos.join("class_00/img_000.png"),
        photos.join("class_00/copy.png"),
    )
    .expect("add");
    image::RgbImage::from_pixel(40, 40, image::Rgb([9, 9, 9]))
        .save(photos.join("class_01/img_001.png"))
        .expect("change");
    std::fs::remove_file(photos.join("class_01/img_002.png")).expect("delete");
    assert_eq!(run(&[]), [1, 1, 1, 4]);
    // The added photo is found (an approximate index took it without being trained again).
    let output = likeness(&[
        "search",
        "--index",
        s(&index),
        s(&photos.join("class_00/copy.png")),
        "-k",
        "2",
        "--device",
        "cpu",
        "--json",
    ]);
    assert_ok(&output);
    let hits = last_json(&output);
    let found: Vec<String> = hits["queries"][0]["results"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|hit| Some(hit["path"].as_str()?.to_string()))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        found.iter().any(|path| path.ends_with("class_00/copy.png")),
        "{hits}"
    );
    assert_eq!(
        run(&["--rebuild"]),
        [6, 0, 0, 0],
        "--rebuild embeds everything"
    );
}

#[test]
fn a_flat_folder_is_searchable_with_imagenet_features_without_training() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_home = dir.path().join("data-home");
    let weights = dir.path().join("served.safetensors");
    write_resnet18_weights(&weights).expect("weights");
    let url = common::serve(vec![common::http_ok(
        &std::fs::read(&weights).expect("read"),
    )]);
    // A flat folder: no class folders at all.
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(&photos).expect("mkdir");
    let mut rng = fastrand::Rng::with_seed(5);
    for i in 0..4 {
        likeness::engine::synthetic::class_image(i % 2, 2, 48, &mut rng)
            .save(photos.join(format!("p{i}.png")))
            .expect("save");
    }
    let index = dir.path().join("flat.likeness-index");
    let output = Command::new(env!("CARGO_BIN_EXE_likeness"))
        .args([
            "index",
            "--model",
            "imagenet",
            "--folder",
            s(&photos),
            "--index",
            s(&index),
            "--device",
            "cpu",
            "--json",
        ])
        .env("XDG_DATA_HOME", &data_home)
        .env("LIKENESS_WEIGHTS_URL", &url)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .expect("run likeness");
    assert_ok(&output);
    assert_eq!(last_json(&output)["images"], 4);
    // The shipped EfficientNet-Lite0's features: nothing is downloaded.
    let model = data_home.join("likeness/models/imagenet-efficientnet-lite0-features.safetensors");
    assert!(model.is_file(), "the feature model is kept for the index");
    // Search works from the index alone (it names its model), nearest first.
    let output = likeness(&[
        "search",
        "--index",
        s(&index),
        s(&photos.join("p2.png")),
        "-k",
        "2",
        "--json",
    ]);
    assert_ok(&output);
    let json = last_json(&output);
    assert_eq!(
        json["queries"][0]["results"][0]["path"].as_str(),
        Some(s(&photos.join("p2.png")))
    );
}

#[test]
fn exclude_leaves_matching_files_and_folders_out_of_an_index() {
    let dir = tempfile::tempdir().expect("temp dir");
    let photos = dir.path().join("photos");
    write_dataset(&photos, 3, 2, 32, 83).expect("photos");
    let model = dir.path().join("model.safetensors");
    assert_ok(&likeness(&[
        "train",
        "--data",
        s(&photos),
        "--out",
        s(&model),
        "--epochs",
        "1",
        "--image-size",
        "32",
        "--batch-size",
        "4",
        "--device",
        "cpu",
    ]));
    let index = dir.path().join("photos.likeness-index");
    let output = likeness(&[
        "index",
        "--model",
        s(&model),
        "--folder",
        s(&photos),
        "--index",
        s(&index),
        "--exclude",
        "class_02",
        "--exclude",
        "class_00/img_001*",
        "--json",
    ]);
    assert_ok(&output);
    assert_eq!(last_json(&output)["images"], 3);
}

#[test]
fn search_can_keep_only_results_closer_than_a_distance() {
    let dir = tempfile::tempdir().expect("temp dir");
    let photos = dir.path().join("photos");
    write_dataset(&photos, 2, 3, 32, 85).expect("photos");
    let model = dir.path().join("model.safetensors");
    assert_ok(&likeness(&[
        "train",
        "--data",
        s(&photos),
        "--out",
        s(&model),
        "--epochs",
        "1",
        "--image-size",
        "32",
        "--batch-size",
        "4",
        "--device",
        "cpu",
    ]));
    let index = dir.path().join("photos.likeness-index");
    assert_ok(&likeness(&[
        "index",
        "--model",
        s(&model),
        "--folder",
        s(&photos),
        "--index",
        s(&index),
    ]));
    let query = photos.join("class_00/img_000.png");
    let all = last_json(&likeness(&[
        "search",
        "--index",
        s(&index),
        s(&query),
        "-k",
        "6",
        "--json",
    ]));
    let distances: Vec<f64> = all["queries"][0]["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["distance"].as_f64().unwrap_or(f64::NAN))
        .collect();
    assert_eq!(distances.len(), 6);
    let limit = (distances[2] + distances[3]) / 2.0;
    let near = last_json(&likeness(&[
        "search",
        "--index",
        s(&index),
        s(&query),
        "-k",
        "6",
        "--max-distance",
        &limit.to_string(),
        "--json",
    ]));
    let kept = near["queries"][0]["results"].as_array().expect("results");
    assert!(
        kept.iter()
            .all(|r| r["distance"].as_f64().unwrap_or(f64::NAN) < limit)
    );
    assert_eq!(kept.len(), distances.iter().filter(|&&d| d < limit).count());
}

#[test]
fn duplicates_and_map_report_on_an_index_without_the_window() {
    let dir = tempfile::tempdir().expect("temp dir");
    let photos = dir.path().join("photos");
    write_dataset(&photos, 2, 5, 32, 91).expect("photos");
    std::fs::copy(
        photos.join("class_00/img_001.png"),
        photos.join("class_01/copy of img_001.png"),
    )
    .expect("copy");
    let model = dir.path().join("tiny.safetensors");
    write_tiny_model(&model).expect("model");
    let index = dir.path().join("photos.likeness-index");
    assert_ok(&likeness(&[
        "index",
        "--model",
        s(&model),
        "--folder",
        s(&photos),
        "--index",
        s(&index),
        "--device",
        "cpu",
    ]));

    let others = dir.path().join("others.csv");
    let output = likeness(&[
        "duplicates",
        "--index",
        s(&index),
        "--others-csv",
        s(&others),
        "--json",
    ]);
    assert_ok(&output);
    let json = last_json(&output);
    assert!(
        json["threshold"].as_f64().is_some_and(|t| t > 0.0),
        "{json}"
    );
    assert_eq!(json["threshold"], json["default_threshold"]);
    let groups = json["groups"].as_array().expect("groups");
    let copies = groups
        .iter()
        .find(|g| g["identical"] == true)
        .expect("the copied photo's group");
    let files: Vec<&str> = copies["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|f| f["path"].as_str())
        .collect();
    assert_eq!(files.len(), 2, "{copies}");
    assert!(files.iter().any(|f| f.ends_with("copy of img_001.png")));
    assert!(String::from_utf8_lossy(&output.stderr).contains("threshold"));
    let csv = std::fs::read_to_string(&others).expect("others.csv");
    assert!(csv.starts_with("group,path,bytes,kept,"));

    let png = dir.path().join("map.png");
    let output = likeness(&["map", "--index", s(&index), "--out", s(&png), "--json"]);
    assert_ok(&output);
    assert_eq!(last_json(&output)["photos"], 11);
    let picture = image::open(&png).expect("a PNG").to_rgb8();
    assert_eq!(picture.dimensions(), (1200, 900));
    let csv_path = dir.path().join("map.csv");
    assert_ok(&likeness(&[
        "map",
        "--index",
        s(&index),
        "--out",
        s(&csv_path),
    ]));
    let csv = std::fs::read_to_string(&csv_path).expect("map.csv");
    assert_eq!(csv.lines().count(), 12);
    assert!(csv.lines().nth(1).is_some_and(|l| l.contains(",class_0")));

    let output = likeness(&["map", "--index", s(&index), "--out", "map.txt"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains(".png or .csv"));
}

#[test]
fn train_feedback_fine_tunes_a_model_from_marks_into_a_new_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let photos = dir.path().join("photos");
    write_dataset(&photos, 2, 4, 32, 93).expect("photos");
    let model = dir.path().join("tiny.safetensors");
    write_tiny_model(&model).expect("model");
    let before = std::fs::read(&model).expect("model bytes");
    let photo = |class: usize, i: usize| photos.join(format!("class_{class:02}/img_{i:03}.png"));
    let mut marks = likeness::engine::feedback::Marks::default();
    marks.set(&photo(0, 0), &photo(0, 1), Some(true));
    marks.set(&photo(0, 0), &photo(1, 1), Some(false));
    marks.set(&photo(1, 2), &photo(0, 3), Some(false));
    marks.set(&photo(1, 2), &photo(1, 3), Some(true));
    let marks_file = dir.path().join("marks.json");
    marks.save(&marks_file).expect("marks");
    let tuned = dir.path().join("tuned.safetensors");
    let output = likeness(&[
        "train",
        "--feedback",
        s(&marks_file),
        "--model",
        s(&model),
        "--data",
        s(&photos),
        "--out",
        s(&tuned),
        "--max-seconds",
        "3",
        "--device",
        "cpu",
        "--json",
    ]);
    // Issue #26 item 2: the model is written only when no marked pair moved against its
    // mark; otherwise nothing is written and the pair that did is named.
    let message = String::from_utf8_lossy(&output.stderr).into_owned();
    if output.status.success() {
        let json = last_json(&output);
        assert!(
            json["fine_tune"]["steps"].as_u64().is_some_and(|n| n > 0),
            "{json}"
        );
        assert_eq!(json["fine_tune"]["pairs"], 4);
        for change in json["fine_tune"]["pair_changes"]
            .as_array()
            .expect("changes")
        {
            let (before, after) = (
                change["before"].as_f64().unwrap_or(f64::NAN),
                change["after"].as_f64().unwrap_or(f64::NAN),
            );
            let wrong = if change["alike"] == true {
                after > before + 0.01
            } else {
                after < before - 0.01
            };
            assert!(
                !wrong,
                "written although a pair moved against its mark: {change}"
            );
        }
    } else {
        assert!(
            message.contains("the retrained model was not written"),
            "{message}"
        );
        assert!(
            (message.contains("marked alike") && message.contains(": farther"))
                || (message.contains("marked not alike") && message.contains(": closer")),
            "refused without a pair that moved against its mark: {message}"
        );
        assert!(!tuned.exists(), "a refused model is not written");
    }
    assert_eq!(
        std::fs::read(&model).expect("model bytes"),
        before,
        "the old model is kept"
    );
    // A mark no training can break: a photo alike to a byte-for-byte copy of itself stays at
    // distance 0, so the check passes and the model is written.
    let copy = photos.join("class_00/img_000_copy.png");
    std::fs::copy(photo(0, 0), &copy).expect("copy");
    let mut kept_marks = likeness::engine::feedback::Marks::default();
    kept_marks.set(&photo(0, 0), &copy, Some(true));
    kept_marks.save(&marks_file).expect("marks");
    let output = likeness(&[
        "train",
        "--feedback",
        s(&marks_file),
        "--model",
        s(&model),
        "--data",
        s(&photos),
        "--out",
        s(&tuned),
        "--max-seconds",
        "3",
        "--device",
        "cpu",
        "--json",
    ]);
    assert_ok(&output);
    let json = last_json(&output);
    assert!(
        json["fine_tune"]["steps"].as_u64().is_some_and(|n| n > 0),
        "{json}"
    );
    assert!(tuned.exists());
    // The new model indexes like any other.
    assert_ok(&likeness(&[
        "index",
        "--model",
        s(&tuned),
        "--folder",
        s(&photos),
        "--index",
        s(&dir.path().join("i.likeness-index")),
        "--device",
        "cpu",
    ]));
    let output = likeness(&[
        "train",
        "--feedback",
        s(&marks_file),
        "--model",
        s(&model),
        "--data",
        s(&photos),
        "--out",
        s(&model),
    ]);
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("this command's --model") && message.contains("nothing was done"),
        "{message}"
    );
    // --with-classes needs the class proxies a default-preset training keeps; the tiny
    // model has none, and nothing is written.
    let classes_out = dir.path().join("with-classes.safetensors");
    let output = likeness(&[
        "train",
        "--feedback",
        s(&marks_file),
        "--model",
        s(&model),
        "--data",
        s(&photos),
        "--out",
        s(&classes_out),
        "--with-classes",
        "--device",
        "cpu",
    ]);
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("has no class proxies"), "{message}");
    assert!(!classes_out.exists());
}

#[test]
fn train_resume_goes_on_in_place_and_a_killed_resume_leaves_the_model_intact() {
    use likeness::engine::train::resume::state_path;
    let dir = tempfile::tempdir().expect("temp dir");
    let train = dir.path().join("train");
    write_dataset(&train, 2, 8, 24, 31).expect("train set");
    let model = dir.path().join("model.safetensors");
    // Every photo trained on: no held-out score, so each resumed run replaces the model
    // in place (with scores, only a better one would; `save_run`'s test covers that).
    let output = likeness(&[
        "train",
        "--data",
        s(&train),
        "--holdout",
        "0",
        "--out",
        s(&model),
        "--preset",
        "scratch",
        "--image-size",
        "16",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--ema",
        "0.9",
        "--device",
        "cpu",
        "--json",
    ]);
    assert_ok(&output);
    let first = last_json(&output);
    assert!(
        state_path(&model).exists(),
        "the state is written beside the model"
    );

    // Settings that shape training belong to the run being resumed.
    let output = likeness(&[
        "train",
        "--data",
        s(&train),
        "--resume",
        s(&model),
        "--lr",
        "0.1",
    ]);
    assert!(!output.status.success());
    assert!(
        binary::stderr(&output).contains("--lr"),
        "{}",
        binary::stderr(&output)
    );

    // Killed while it trains: the model and its state are what they were.
    let model_before = std::fs::read(&model).expect("model");
    let state_before = std::fs::read(state_path(&model)).expect("state");
    let mut child = Command::new(env!("CARGO_BIN_EXE_likeness"))
        .args([
            "train",
            "--data",
            s(&train),
            "--resume",
            s(&model),
            "--epochs",
            "100000",
            "--device",
            "cpu",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    child.kill().ok(); // SIGKILL
    child.wait().ok();
    assert!(
        std::fs::read(&model).expect("model") == model_before,
        "model changed"
    );
    assert!(
        std::fs::read(state_path(&model)).expect("state") == state_before,
        "state changed"
    );

    // Resumed in place: the same file, two more epochs, the step count going on.
    let output = likeness(&[
        "train",
        "--data",
        s(&train),
        "--resume",
        s(&model),
        "--epochs",
        "2",
        "--device",
        "cpu",
        "--json",
    ]);
    assert_ok(&output);
    let resumed = last_json(&output);
    assert_eq!(resumed["resumed_from"]["steps"], first["steps"]);
    assert_eq!(resumed["resumed_from"]["model_id"], first["model_id"]);
    assert_ne!(resumed["model_id"], first["model_id"]);
    assert!(binary::stderr(&output).contains("going on from model"));
    // And again from the new one: its state was replaced with it.
    let output = likeness(&[
        "train",
        "--data",
        s(&train),
        "--resume",
        s(&model),
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--json",
    ]);
    assert_ok(&output);
    assert_eq!(
        last_json(&output)["resumed_from"]["model_id"],
        resumed["model_id"]
    );
}

/// Issue #26 item 1: `likeness search --marks FILE` refines each query's results by the
/// marks made on them, whatever spelling of the query's path the marks used.
#[test]
fn search_with_marks_leaves_out_not_alike_photos_and_says_it_refined() {
    let dir = tempfile::tempdir().expect("temp dir");
    let photos = dir.path().join("photos");
    write_dataset(&photos, 2, 5, 32, 93).expect("photos");
    let model = dir.path().join("tiny.safetensors");
    write_tiny_model(&model).expect("model");
    let index = dir.path().join("photos.likeness-index");
    assert_ok(&likeness(&[
        "index",
        "--model",
        s(&model),
        "--folder",
        s(&photos),
        "--index",
        s(&index),
    ]));
    let query = photos.join("class_00/img_001.png");
    let search = |extra: &[&str]| {
        let mut args = vec!["search", "--index", s(&index), "-k", "6", "--json"];
        args.extend_from_slice(extra);
        args.push(s(&query));
        let output = likeness(&args);
        assert_ok(&output);
        last_json(&output)["queries"][0].clone()
    };
    let plain = search(&[]);
    assert!(plain.get("refined_by").is_none(), "{plain}");
    let paths = |result: &serde_json::Value| -> Vec<String> {
        result["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|hit| hit["path"].as_str().expect("path").to_string())
            .collect()
    };
    let plain_paths = paths(&plain);
    // Marked through a relative-looking spelling of the query: `photos/../photos/…`.
    let spelled = photos.join("../photos/class_00/img_001.png");
    let mut marks = likeness::engine::feedback::Marks::default();
    marks.set(&spelled, Path::new(&plain_paths[1]), Some(false));
    marks.set(&spelled, Path::new(&plain_paths[2]), Some(true));
    let marks_file = dir.path().join("marks.json");
    marks.save(&marks_file).expect("marks");
    let refined = search(&["--marks", s(&marks_file)]);
    assert_eq!(refined["refined_by"], 2, "{refined}");
    let refined_paths = paths(&refined);
    assert!(
        !refined_paths.contains(&plain_paths[1]),
        "{refined_paths:?}"
    );
    assert_eq!(refined_paths.len(), 6);

    let missing = dir.path().join("no-such-marks.json");
    let output = likeness(&[
        "search",
        "--index",
        s(&index),
        "--marks",
        s(&missing),
        s(&query),
    ]);
    assert!(!output.status.success());
    assert!(
        binary::stderr(&output).contains("no such marks file"),
        "{}",
        binary::stderr(&output)
    );
}

/// Every file under `folder` with its bytes, for "nothing changed" checks.
fn tree(folder: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).expect("list").flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.insert(path.clone(), std::fs::read(&path).expect("read"));
            }
        }
    }
    files
}

/// Issue #27: `likeness sort` plans without touching anything on a dry run, copies (the
/// default) and moves the sure photos into the library's folders, updates the index,
/// and undoes either exactly.
#[test]
fn sort_files_an_inbox_by_copy_or_move_and_undoes_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let library = dir.path().join("library");
    write_dataset(&library, 3, 14, 40, 5).expect("library");
    let generated = dir.path().join("generated");
    write_dataset(&generated, 3, 3, 40, 6).expect("inbox photos");
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).expect("inbox");
    for (path, bytes) in tree(&generated) {
        let class = path.parent().and_then(|p| p.file_name()).expect("class");
        let name = format!(
            "new-{}-{}",
            class.to_string_lossy(),
            path.file_name().expect("name").to_string_lossy()
        );
        std::fs::write(inbox.join(name), bytes).expect("write");
    }
    let model = dir.path().join("model.safetensors");
    let output = likeness(&[
        "train",
        "--data",
        s(&library),
        "--holdout",
        "0.3",
        "--out",
        s(&model),
        "--image-size",
        "32",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--device",
        "cpu",
    ]);
    assert_ok(&output);
    let index = dir.path().join("library.likeness-index");
    assert_ok(&likeness(&[
        "index",
        "--model",
        s(&model),
        "--folder",
        s(&library),
        "--index",
        s(&index),
        "--device",
        "cpu",
    ]));
    let (library_before, inbox_before) = (tree(&library), tree(&inbox));
    let sort = |extra: &[&str]| {
        let mut args = vec![
            "sort",
            "--model",
            s(&model),
            "--inbox",
            s(&inbox),
            "--library",
            s(&library),
            "--min-confidence",
            "0",
            "--device",
            "cpu",
            "--json",
        ];
        args.extend_from_slice(extra);
        likeness(&args)
    };

    let output = sort(&["--dry-run"]);
    assert_ok(&output);
    let plan = last_json(&output);
    let suggestions = plan["plan"]["suggestions"]
        .as_array()
        .expect("suggestions")
        .clone();
    assert_eq!(suggestions.len(), 9);
    assert_eq!(
        plan["plan"]["method"], "class_proxies",
        "calibrated on the held-out photos"
    );
    let sure = suggestions.iter().filter(|s| s["unsure"].is_null()).count();
    assert!(sure > 0, "{plan}");
    assert_eq!(tree(&library), library_before, "a dry run changes nothing");
    assert_eq!(tree(&inbox), inbox_before);

    let journal = dir.path().join("copies.jsonl");
    let output = sort(&["--index", s(&index), "--journal", s(&journal)]);
    assert_ok(&output);
    let copied = last_json(&output);
    let filed = copied["filed"].as_array().expect("filed").clone();
    assert_eq!(filed.len(), sure);
    assert_eq!(
        copied["index_added"], sure,
        "the index took the filed photos"
    );
    for entry in &filed {
        let (from, to) = (
            entry["from"].as_str().expect("from"),
            entry["to"].as_str().expect("to"),
        );
        assert_eq!(
            std::fs::read(from).expect("inbox"),
            std::fs::read(to).expect("library")
        );
        assert!(Path::new(to).starts_with(&library));
    }
    assert_eq!(
        tree(&inbox),
        inbox_before,
        "a copy leaves the inbox as it was"
    );
    let gallery = likeness::engine::index::Gallery::load(&index).expect("index");
    assert_eq!(
        gallery.len(),
        42 + sure,
        "3 classes of 14, and the filed photos"
    );
    assert_ok(&likeness(&["sort", "--undo", s(&journal)]));
    assert_eq!(tree(&library), library_before, "undo removed the copies");

    let journal = dir.path().join("moves.jsonl");
    let output = sort(&["--move", "--journal", s(&journal)]);
    assert_ok(&output);
    assert_eq!(
        tree(&inbox).len(),
        9 - sure,
        "the sure photos left the inbox"
    );
    assert_ok(&likeness(&["sort", "--undo", s(&journal)]));
    assert_eq!(
        tree(&inbox),
        inbox_before,
        "undo put every moved photo back"
    );
    assert_eq!(tree(&library), library_before);
}

/// Issue #39: the default preset starts from the ImageNet EfficientNet-Lite0 weights that
/// ship with Likeness, and the model file records the backbone and the weights; without
/// them (here: a cache folder that does not hold them) training says why and trains from
/// scratch with the ResNet18 recipe instead.
#[test]
fn the_default_starts_from_the_shipped_imagenet_weights_or_says_why_not() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    write_dataset(&data, 2, 6, 32, 1).expect("photos");
    let train = |out: &Path, cache: Option<&Path>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_likeness"));
        command
            .args(["train", "--data", s(&data), "--out", s(out)])
            .args(["--epochs", "1", "--image-size", "32", "--device", "cpu"])
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY");
        if let Some(cache) = cache {
            command.env("LIKENESS_CACHE", cache);
        }
        command.output().expect("run likeness")
    };
    let pretrained = dir.path().join("pretrained.safetensors");
    let output = train(&pretrained, None);
    assert_ok(&output);
    let info = likeness::engine::model::read_model_info(&pretrained).expect("model");
    assert_eq!(info.config.architecture, "efficientnet-lite0");
    // Trained at 32 px, it embeds photos at 1.125 times that.
    assert_eq!(info.config.preprocess.image_size_px, 36);
    let weights = info
        .summary
        .pretrained_weights
        .expect("the weights it started from");
    assert!(
        weights.ends_with(likeness::engine::model::pretrained::LITE0_WEIGHTS_FILE),
        "{weights}"
    );

    let scratch = dir.path().join("scratch.safetensors");
    let output = train(&scratch, Some(&dir.path().join("empty-cache")));
    assert_ok(&output);
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("weights that ship with Likeness are missing"),
        "{message}"
    );
    assert!(message.contains("make setup"), "{message}");
    assert!(message.contains("from scratch instead"), "{message}");
    let info = likeness::engine::model::read_model_info(&scratch).expect("model");
    assert_eq!(info.config.architecture, "resnet18");
    assert!(info.summary.pretrained_weights.is_none());
}

/// `bench --pytorch PYTHON` runs the built-in PyTorch script with that interpreter and
/// reports Likeness' rates over the ones it prints; an interpreter that cannot run it is
/// named with its reason. (Here a stand-in interpreter prints fixed rates: the real
/// comparison needs PyTorch's network packages, which tests do not install.)
#[cfg(unix)]
#[test]
fn bench_compares_with_the_rates_pytorch_prints() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    write_dataset(&data, 2, 4, 40, 3).expect("data");
    let interpreter = |name: &str, body: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    };
    // The stand-in checks it was handed the script and the settings of this very run.
    let pytorch = interpreter(
        "fake-python",
        r#"[ "$1" = "-c" ] || exit 3
case "$2" in *"def main"*) ;; *) exit 4;; esac
case "$3" in *'"backbone":"efficientnet-lite0"'*'"image_size":32'*) ;; *) echo "$3" >&2; exit 5;; esac
echo '{"torch": "2.13.0+fake", "threads": 2, "step_anchors_per_s": 0.5, "forward_images_per_s": 0.25}'"#,
    );
    let bench = |python: &Path| {
        likeness(&[
            "bench",
            "--data",
            s(&data),
            "--image-size",
            "32",
            "--steps",
            "1",
            "--device",
            "cpu",
            "--pytorch",
            s(python),
            "--json",
        ])
    };
    let output = bench(&pytorch);
    assert_ok(&output);
    let report = last_json(&output);
    let rates = &report["pytorch"];
    assert_eq!(rates["torch"], "2.13.0+fake");
    let ours = report["step_triplets_per_s"].as_f64().expect("step rate");
    let ratio = rates["step_vs_pytorch"].as_f64().expect("ratio");
    assert!(
        (ratio - ours / 0.5).abs() < 1e-9 * ratio,
        "{ratio} vs {ours}"
    );
    let ours = report["forward_images_per_s"]
        .as_f64()
        .expect("forward rate");
    let ratio = rates["forward_vs_pytorch"].as_f64().expect("ratio");
    assert!(
        (ratio - ours / 0.25).abs() < 1e-9 * ratio,
        "{ratio} vs {ours}"
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("Likeness/PyTorch"));

    let broken = interpreter(
        "no-torch-python",
        "echo 'this Python has no torch (No module named torch)' >&2; exit 1",
    );
    let output = bench(&broken);
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("no-torch-python could not run the PyTorch benchmark"),
        "{message}"
    );
    assert!(message.contains("has no torch"), "{message}");
}

/// Issue #41 item 1: libtorch's OpenMP threads stop spinning soon while they wait for
/// each other (spinning, they took the busy cores' time from the thread they waited for).
/// The binary starts itself again with libgomp's spin count set, keeping its arguments,
/// unless a person chose a wait setting of their own.
#[cfg(target_os = "linux")]
#[test]
fn the_binary_runs_with_openmp_threads_that_spin_briefly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let train = dir.path().join("train");
    write_dataset(&train, 2, 6, 32, 71).expect("photos");
    let model = dir.path().join("model.safetensors");
    let environ_of = |setting: Option<(&str, &str)>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_likeness"));
        command
            .args(["train", "--data", s(&train), "--out", s(&model)])
            .args(["--epochs", "100000", "--device", "cpu"])
            .env_remove("OMP_WAIT_POLICY")
            .env_remove("GOMP_SPINCOUNT")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some((name, value)) = setting {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("spawn");
        let proc_dir = std::path::PathBuf::from(format!("/proc/{}", child.id()));
        // The new process image replaces the first within milliseconds; its arguments stay.
        let mut seen = (String::new(), String::new());
        for _ in 0..200 {
            let read = |name: &str| {
                std::fs::read(proc_dir.join(name))
                    .map(|bytes| String::from_utf8_lossy(&bytes).replace('\0', " "))
                    .unwrap_or_default()
            };
            seen = (read("environ"), read("cmdline"));
            if seen.0.contains("GOMP_SPINCOUNT=") || setting.is_some() && !seen.1.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        child.kill().ok();
        child.wait().ok();
        seen
    };
    let (environ, cmdline) = environ_of(None);
    assert!(
        environ.contains("GOMP_SPINCOUNT=10000"),
        "the setting is missing: {environ}"
    );
    assert!(
        cmdline.contains("train --data") && cmdline.contains("--epochs 100000"),
        "the arguments changed: {cmdline}"
    );
    for own in [("OMP_WAIT_POLICY", "ACTIVE"), ("GOMP_SPINCOUNT", "5")] {
        let (environ, _) = environ_of(Some(own));
        assert!(
            environ.contains(&format!("{}={}", own.0, own.1))
                && !environ.contains("GOMP_SPINCOUNT=10000"),
            "a person's own setting stands: {environ}"
        );
    }
}

/// Issue #40: a model trained by `likeness train` with no hold-out or validation flag sorts
/// with calibrated confidences (a tenth held out, as the window does); `--holdout 0` trains
/// on every photo and sorts with the training temperature alone, and says so. The default
/// run also fits the second opinion, which `--second-opinion` joins; a model without one
/// refuses it.
#[test]
fn a_model_trained_with_default_flags_sorts_with_calibrated_confidences() {
    let dir = tempfile::tempdir().expect("temp dir");
    let library = dir.path().join("library");
    // 40 photos a class: a tenth held out is 12 photos, enough to calibrate on (10).
    write_dataset(&library, 3, 40, 40, 15).expect("library");
    let inbox = dir.path().join("inbox");
    write_dataset(&inbox, 3, 2, 40, 16).expect("inbox");
    let sort_dry_run = |model: &Path, more: &[&str]| {
        let mut args = vec![
            "sort",
            "--model",
            s(model),
            "--inbox",
            s(&inbox),
            "--library",
            s(&library),
            "--device",
            "cpu",
            "--dry-run",
            "--json",
        ];
        args.extend_from_slice(more);
        likeness(&args)
    };
    let method_after = |holdout: Option<&str>, name: &str| {
        let model = dir.path().join(name);
        let mut args = vec!["train", "--data", s(&library), "--out", s(&model)];
        if let Some(share) = holdout {
            args.extend_from_slice(&["--holdout", share]);
        }
        args.extend_from_slice(&[
            "--image-size",
            "32",
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--device",
            "cpu",
            "--json",
        ]);
        let trained = likeness(&args);
        assert_ok(&trained);
        let images = last_json(&trained)["images"].as_u64().expect("images");
        let output = sort_dry_run(&model, &[]);
        assert_ok(&output);
        let method = last_json(&output)["plan"]["method"]
            .as_str()
            .expect("method")
            .to_string();
        (images, method, model)
    };
    let (held_out_images, held_out, default_model) = method_after(None, "default.safetensors");
    assert_eq!(
        held_out, "class_proxies",
        "calibrated on the held-out tenth"
    );
    // The run fitted the second opinion on the same held-out photos: asked for, it joins.
    let joined = sort_dry_run(&default_model, &["--second-opinion"]);
    assert_ok(&joined);
    let plan = &last_json(&joined)["plan"];
    assert_eq!(plan["method"], "class_proxies_with_second_opinion");
    assert_eq!(plan["suggestions"].as_array().expect("photos").len(), 6);
    let (all_images, every_photo, every_photo_model) =
        method_after(Some("0"), "every-photo.safetensors");
    assert_eq!(every_photo, "uncalibrated_proxies");
    // Nothing held out: no second opinion to ask, and the sort says so and does nothing.
    let refused = sort_dry_run(&every_photo_model, &["--second-opinion"]);
    assert!(!refused.status.success());
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(error.contains("no second opinion"), "{error}");
    assert_eq!(all_images, 120, "--holdout 0 trains on every photo");
    assert!(
        held_out_images < all_images,
        "{held_out_images} of {all_images}"
    );
}

/// Issue #40 item 2: `sort --new-kinds` looks in the inbox for a kind of photo none of the
/// folders holds. Here the inbox holds a fourth kind of the synthetic photos beside the
/// library's three: most of it is found and waits, with why; most of the known photos
/// are not in the group. Without the flag nothing is looked for.
#[test]
fn sort_looks_for_a_new_kind_in_the_inbox_when_asked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let library = dir.path().join("library");
    // 100 photos a folder: a tenth of them are held out to say how novel an unseen photo
    // of a folder looks.
    write_dataset(&library, 4, 100, 40, 21).expect("library");
    std::fs::remove_dir_all(library.join("class_03")).expect("a kind the library lacks");
    let inbox = dir.path().join("inbox");
    write_dataset(&inbox, 4, 20, 40, 22).expect("inbox");
    let model = dir.path().join("model.safetensors");
    let trained = likeness(&[
        "train",
        "--data",
        s(&library),
        "--out",
        s(&model),
        "--image-size",
        "32",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--device",
        "cpu",
    ]);
    assert_ok(&trained);
    let sort = |more: &[&str]| {
        let mut args = vec![
            "sort",
            "--model",
            s(&model),
            "--inbox",
            s(&inbox),
            "--library",
            s(&library),
            "--device",
            "cpu",
            "--dry-run",
            "--json",
        ];
        args.extend_from_slice(more);
        let output = likeness(&args);
        assert_ok(&output);
        (
            last_json(&output)["plan"].clone(),
            String::from_utf8_lossy(&output.stderr).to_string(),
        )
    };
    let (plain, _) = sort(&[]);
    assert_eq!(plain["new_kinds"]["looked"], "no");
    assert_eq!(plain["min_confidence"], 0.9);
    let (plan, said) = sort(&["--new-kinds"]);
    assert_eq!(plan["new_kinds"]["looked"], "done", "{}", plan["new_kinds"]);
    assert_eq!(plan["new_kinds"]["library_photos"], 300);
    let suggestions = plan["suggestions"].as_array().expect("photos");
    let in_group = |new: bool| {
        suggestions
            .iter()
            .filter(|s| s["photo"].as_str().is_some_and(|p| p.contains("class_03")) == new)
            .filter(|s| s["new_kind"] == true)
            .count()
    };
    assert!(
        in_group(true) >= 16,
        "{} of the 20 new photos found",
        in_group(true)
    );
    assert!(
        in_group(false) <= 6,
        "{} of the 60 known photos in the group",
        in_group(false)
    );
    for suggestion in suggestions.iter().filter(|s| s["new_kind"] == true) {
        let why = suggestion["unsure"].as_str().expect("waits");
        assert!(why.contains("looks like a new kind"), "{why}");
    }
    assert!(said.contains("look like a new kind"), "{said}");
    // Each confidence is for a photo of a known kind: the new photos' fall, and the
    // default level is a step lower.
    assert_eq!(plan["min_confidence"], 0.85);
    let mean_confidence = |plan: &serde_json::Value| {
        let new: Vec<f64> = plan["suggestions"]
            .as_array()
            .expect("photos")
            .iter()
            .filter(|s| s["photo"].as_str().is_some_and(|p| p.contains("class_03")))
            .filter_map(|s| s["confidence"].as_f64())
            .collect();
        new.iter().sum::<f64>() / new.len() as f64
    };
    assert!(
        mean_confidence(&plan) < 0.5 * mean_confidence(&plain),
        "{} against {}",
        mean_confidence(&plan),
        mean_confidence(&plain)
    );
}
