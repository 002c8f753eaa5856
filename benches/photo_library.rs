//! `cargo bench --bench photo_library`: indexing 12-megapixel phone-size photos against
//! the same photos at 128 px, side by side in one run, with the model the default preset
//! trains (112 px inputs, untrained weights: the speed does not depend on them). Also
//! times decoding one 12-MP JPEG whole against decoding it scaled in the DCT.
//!
//! Prints images per second for both sets and their ratio (the aim: 12 MP at ≥ 0.5× the
//! 128-px rate). Options (environment): `LIBRARY_PHOTOS` (default 48).

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use likeness::engine::data::{
    DEFAULT_MAX_PIXELS, TargetSize, decode_rgb, decode_rgb_sized, scan_folder,
};
use likeness::engine::index::{Gallery, IndexOptions};
use likeness::engine::model::{EmbeddingModel, TrainingSummary, save_model};
use likeness::engine::synthetic::class_image;
use likeness::engine::train::Preset;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let photos: usize = std::env::var("LIBRARY_PHOTOS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48);
    let dir = tempfile::tempdir()?;
    let (large, small) = (dir.path().join("12mp"), dir.path().join("128px"));
    std::fs::create_dir_all(&large)?;
    std::fs::create_dir_all(&small)?;
    let mut rng = fastrand::Rng::with_seed(7);
    println!("writing {photos} photos at 4000×3000 and at 128×96 (JPEG, quality 90)…");
    for i in 0..photos {
        // A class pattern with per-pixel noise: as much detail to decode as a real photo.
        let pattern = class_image(i % 5, 5, 160, &mut rng);
        let mut photo =
            image::imageops::resize(&pattern, 4000, 3000, image::imageops::FilterType::Triangle);
        for pixel in photo.pixels_mut() {
            for channel in &mut pixel.0 {
                *channel = channel.saturating_add(rng.u8(..24));
            }
        }
        let thumbnail =
            image::imageops::resize(&photo, 128, 96, image::imageops::FilterType::Triangle);
        save_jpeg(&photo, &large.join(format!("photo_{i:03}.jpg")))?;
        save_jpeg(&thumbnail, &small.join(format!("photo_{i:03}.jpg")))?;
    }
    let config = Preset::Default.settings().model_config();
    let model = EmbeddingModel::new(config, tch::Device::Cpu)?;
    let model_path = dir.path().join("model.safetensors");
    let info = save_model(&model_path, &model, &TrainingSummary::default())?;

    let one = large.join("photo_000.jpg");
    let started = Instant::now();
    let whole = decode_rgb(&one, DEFAULT_MAX_PIXELS)?;
    let whole_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let scaled = decode_rgb_sized(&one, DEFAULT_MAX_PIXELS, TargetSize::ShortSide(112))?;
    let scaled_secs = started.elapsed().as_secs_f64();
    println!(
        "one 12-MP JPEG: whole {}×{} in {:.0} ms · scaled {}×{} in {:.0} ms ({:.1}× faster)",
        whole.width(),
        whole.height(),
        whole_secs * 1e3,
        scaled.width(),
        scaled.height(),
        scaled_secs * 1e3,
        whole_secs / scaled_secs
    );

    let megabytes = std::fs::metadata(&one)?.len() as f64 / 1e6;
    // The whole path one photo takes to the network's input, before and after.
    let preprocess = &model.config.preprocess;
    let mut input = vec![0.0f32; preprocess.floats_per_image()];
    let started = Instant::now();
    preprocess.write_plain(&decode_rgb(&one, DEFAULT_MAX_PIXELS)?, &mut input);
    let whole_path = started.elapsed().as_secs_f64();
    let started = Instant::now();
    preprocess.write_plain(
        &decode_rgb_sized(&one, DEFAULT_MAX_PIXELS, TargetSize::ShortSide(112))?,
        &mut input,
    );
    let scaled_path = started.elapsed().as_secs_f64();
    println!(
        "one 12-MP JPEG ({megabytes:.1} MB) to a 112-px input: decoded whole and resized \
         {:.0} ms · decoded scaled {:.0} ms ({:.1}× faster)",
        whole_path * 1e3,
        scaled_path * 1e3,
        whole_path / scaled_path
    );

    let mut rates = Vec::new();
    for (name, folder) in [("128 px", &small), ("12 MP", &large)] {
        let scanned = scan_folder(folder, DEFAULT_MAX_PIXELS)?;
        let started = Instant::now();
        let gallery = Gallery::build(
            &model,
            &info,
            &model_path,
            &scanned,
            &IndexOptions::new(DEFAULT_MAX_PIXELS),
            &|_, _| {},
            &AtomicBool::new(false),
        )?;
        let secs = started.elapsed().as_secs_f64();
        let rate = gallery.len() as f64 / secs;
        println!(
            "{name:>7}: {} photos in {secs:.2} s = {rate:.1} images/s",
            gallery.len()
        );
        rates.push(rate);
    }
    println!("12 MP / 128 px indexing rate: {:.2}", rates[1] / rates[0]);

    // An update after 1% of a large folder changed, against building it again.
    let count: usize = std::env::var("LIBRARY_UPDATE_PHOTOS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let folder = dir.path().join("library");
    println!("writing {count} photos of 96×72 for the update…");
    for i in 0..count {
        let sub = folder.join(format!("{:03}", i / 500));
        if i % 500 == 0 {
            std::fs::create_dir_all(&sub)?;
        }
        let photo = class_image(i % 5, 5, 72, &mut rng);
        let photo = image::imageops::resize(&photo, 96, 72, image::imageops::FilterType::Nearest);
        save_jpeg(&photo, &sub.join(format!("p{i:05}.jpg")))?;
    }
    let scanned = scan_folder(&folder, DEFAULT_MAX_PIXELS)?;
    let started = Instant::now();
    let full = Gallery::build(
        &model,
        &info,
        &model_path,
        &scanned,
        &IndexOptions::new(DEFAULT_MAX_PIXELS),
        &|_, _| {},
        &AtomicBool::new(false),
    )?;
    let full_secs = started.elapsed().as_secs_f64();
    // 1%: half changed in place, a quarter deleted, a quarter new.
    let changed = count / 100;
    for i in 0..changed {
        let path = folder
            .join(format!("{:03}", i * 97 % count / 500))
            .join(format!("p{:05}.jpg", i * 97 % count));
        match i % 4 {
            0 | 1 => save_jpeg(&class_image((i + 1) % 5, 5, 72, &mut rng), &path)?,
            2 => std::fs::remove_file(&path)?,
            _ => save_jpeg(
                &class_image(i % 5, 5, 72, &mut rng),
                &folder.join("000").join(format!("new{i}.jpg")),
            )?,
        }
    }
    let started = Instant::now();
    let rescanned = scan_folder(&folder, DEFAULT_MAX_PIXELS)?;
    let (updated, changes) = Gallery::update(
        &model,
        &info,
        &model_path,
        &rescanned,
        Some(&full),
        &IndexOptions::new(DEFAULT_MAX_PIXELS),
        &|_, _| {},
        &AtomicBool::new(false),
    )?;
    let update_secs = started.elapsed().as_secs_f64();
    println!(
        "{count} photos: full build {full_secs:.1} s · update after 1% changed {update_secs:.1} s \
         (scan included; {} added, {} changed, {} removed, {} kept → {} photos) · {:.0}× faster",
        changes.added,
        changes.updated,
        changes.removed,
        changes.kept,
        updated.len(),
        full_secs / update_secs
    );
    Ok(())
}

fn save_jpeg(image: &image::RgbImage, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    image::codecs::jpeg::JpegEncoder::new_with_quality(file, 90).encode_image(image)?;
    Ok(())
}
