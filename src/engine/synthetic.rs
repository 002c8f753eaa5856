//! Generated class-folder data sets: visually distinct classes of small images, for
//! tests, benchmarks and quality checks that must not depend on anyone's photos.

use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};

use super::{EngineError, Result};

/// One generated image of class `class` (of `classes`): a class colour and pattern
/// (stripes, checks, a disc), with random phase, scale, tint and noise per image.
pub fn class_image(
    class: usize,
    classes: usize,
    size_px: u32,
    rng: &mut fastrand::Rng,
) -> RgbImage {
    let hue = (class as f32 / classes.max(1) as f32) * 360.0 + rng.f32() * 20.0 - 10.0;
    let foreground = hsv_to_rgb(hue, 0.8, 0.9);
    let background = hsv_to_rgb(hue + 180.0, 0.3, 0.3 + rng.f32() * 0.2);
    let pattern = class % 4;
    let period = 4.0 + (class / 4) as f32 * 3.0 + rng.f32() * 2.0;
    let phase = rng.f32() * period;
    let (cx, cy) = (
        size_px as f32 * (0.3 + 0.4 * rng.f32()),
        size_px as f32 * (0.3 + 0.4 * rng.f32()),
    );
    let radius = size_px as f32 * (0.2 + 0.15 * rng.f32());
    let mut image = RgbImage::new(size_px, size_px);
    for (x, y, pixel) in image.enumerate_pixels_mut() {
        let (fx, fy) = (x as f32 + phase, y as f32 + phase);
        let on = match pattern {
            0 => (fy / period) as i32 % 2 == 0,
            1 => (fx / period) as i32 % 2 == 0,
            2 => ((fx / period) as i32 + (fy / period) as i32) % 2 == 0,
            _ => (x as f32 - cx).hypot(y as f32 - cy) < radius,
        };
        let base = if on { foreground } else { background };
        *pixel =
            Rgb(base.map(|v| (f32::from(v) + rng.f32() * 40.0 - 20.0).clamp(0.0, 255.0) as u8));
    }
    image
}

fn hsv_to_rgb(hue: f32, saturation: f32, value: f32) -> [u8; 3] {
    let h = hue.rem_euclid(360.0) / 60.0;
    let c = value * saturation;
    let x = c * (1.0 - (h % 2.0 - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = value - c;
    [r, g, b].map(|v| ((v + m) * 255.0).round() as u8)
}

/// Writes `per_class` PNG images for each of `classes` classes under `root/class_NN/`.
/// Returns the paths written.
pub fn write_dataset(
    root: &Path,
    classes: usize,
    per_class: usize,
    size_px: u32,
    seed: u64,
) -> Result<Vec<PathBuf>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut written = Vec::with_capacity(classes * per_class);
    for class in 0..classes {
        let folder = root.join(format!("class_{class:02}"));
        std::fs::create_dir_all(&folder).map_err(|e| EngineError::io(&folder, e))?;
        for i in 0..per_class {
            let path = folder.join(format!("img_{i:03}.png"));
            class_image(class, classes, size_px, &mut rng)
                .save(&path)
                .map_err(|e| EngineError::bad_file(&path, e.to_string()))?;
            written.push(path);
        }
    }
    Ok(written)
}

/// Writes a torchvision-named ResNet18 weights file (random values, ImageNet's 1000-way
/// `fc`, BatchNorm counters included, as `torchvision` saves them), for tests of the
/// weights import and download without network.
pub fn write_resnet18_weights(path: &Path) -> Result<()> {
    use super::model::{EmbeddingModel, ModelConfig};
    let model = EmbeddingModel::new(ModelConfig::torchvision_resnet18(), tch::Device::Cpu)?;
    let mut named = model.contiguous_tensors();
    let counters: Vec<String> = named
        .iter()
        .filter_map(|(name, _)| name.strip_suffix(".running_mean"))
        .map(|layer| format!("{layer}.num_batches_tracked"))
        .collect();
    for counter in counters {
        named.push((counter, tch::Tensor::from_slice(&[0i64])));
    }
    tch::Tensor::write_safetensors(&named, path)?;
    Ok(())
}

/// Writes a tiny untrained model file (ResNet18, 32-px inputs, 8-d embeddings): enough to
/// index and search in tests, in a fraction of a second. Each call initialises new weights,
/// so two calls give two different models.
pub fn write_tiny_model(path: &Path) -> Result<crate::engine::model::ModelInfo> {
    use crate::engine::data::Preprocess;
    use crate::engine::model::{EmbeddingModel, ModelConfig, save_model};
    use crate::engine::run::TrainingSummary;
    let config = ModelConfig {
        architecture: "resnet18".into(),
        embedding_dim: 8,
        l2_normalize: false,
        mirror_average: false,
        preprocess: Preprocess {
            image_size_px: 32,
            mean: Preprocess::SEED_MEAN,
            std: Preprocess::SEED_STD,
        },
    };
    let model = EmbeddingModel::new(config, tch::Device::Cpu)?;
    save_model(path, &model, &TrainingSummary::default())
}

/// A copy of `jpeg` carrying `preview` (a small JPEG) in an EXIF block the way cameras
/// write it (big-endian TIFF: IFD0 with the orientation, IFD1 naming the preview), right
/// after the start-of-image marker. `None` when the preview does not fit in one EXIF
/// segment (64 KB) or `jpeg` is not a JPEG.
pub fn jpeg_with_exif_preview(jpeg: &[u8], preview: &[u8], orientation: u16) -> Option<Vec<u8>> {
    if jpeg.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    // IFD0 at 8 (one entry, 18 bytes), IFD1 at 26 (three entries, 42 bytes), preview at 68.
    const IFD1: u32 = 26;
    const PREVIEW: u32 = 68;
    let entry = |tag: u16, kind: u16, value: u32| {
        let mut bytes = Vec::with_capacity(12);
        bytes.extend_from_slice(&tag.to_be_bytes());
        bytes.extend_from_slice(&kind.to_be_bytes());
        bytes.extend_from_slice(&1u32.to_be_bytes());
        if kind == 3 {
            // A SHORT sits in the first two bytes of the value field.
            bytes.extend_from_slice(&(value as u16).to_be_bytes());
            bytes.extend_from_slice(&[0, 0]);
        } else {
            bytes.extend_from_slice(&value.to_be_bytes());
        }
        bytes
    };
    let mut tiff = b"MM\0\x2a".to_vec();
    tiff.extend_from_slice(&8u32.to_be_bytes());
    tiff.extend_from_slice(&1u16.to_be_bytes());
    tiff.extend(entry(0x0112, 3, u32::from(orientation)));
    tiff.extend_from_slice(&IFD1.to_be_bytes());
    tiff.extend_from_slice(&3u16.to_be_bytes());
    tiff.extend(entry(0x0103, 3, 6)); // Compression: JPEG
    tiff.extend(entry(0x0201, 4, PREVIEW));
    tiff.extend(entry(0x0202, 4, u32::try_from(preview.len()).ok()?));
    tiff.extend_from_slice(&0u32.to_be_bytes());
    debug_assert_eq!(tiff.len(), PREVIEW as usize);
    tiff.extend_from_slice(preview);
    let length = u16::try_from(2 + 6 + tiff.len()).ok()?;
    let mut out = Vec::with_capacity(jpeg.len() + usize::from(length) + 2);
    out.extend_from_slice(&jpeg[..2]);
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(b"Exif\0\0");
    out.extend(tiff);
    out.extend_from_slice(&jpeg[2..]);
    Some(out)
}
