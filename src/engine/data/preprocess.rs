//! Pixels for the network: resize, normalise, and the training augmentations.

use image::RgbImage;
use serde::{Deserialize, Serialize};

/// Random augmentation applied to training images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Augment {
    /// None (indexing and queries).
    None,
    /// Random horizontal flip (the seed recipe).
    Flip,
    /// Random resized crop (scale 0.5–1) and flip, as torchvision's classification recipes.
    CropFlip,
    /// Random resized crop (scale 0.5–1), flip, and mild brightness/contrast/saturation jitter.
    CropFlipColor,
}

impl Augment {
    /// The side of the square images kept in memory for this augmentation: crops need a
    /// little more than the network's input so that a crop is not always an upscale.
    pub fn cache_side_px(self, image_size_px: u32) -> u32 {
        match self {
            Self::CropFlip | Self::CropFlipColor => {
                (f64::from(image_size_px) * 1.15).round() as u32
            }
            Self::Flip | Self::None => image_size_px,
        }
    }
}

/// Resize and normalisation shared by training, indexing and queries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    pub image_size_px: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Preprocess {
    /// The seed's normalisation constants (CIFAR-10 statistics, as in the tutorial).
    pub const SEED_MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
    pub const SEED_STD: [f32; 3] = [0.2023, 0.1994, 0.2010];
    /// ImageNet's statistics, which ImageNet-pretrained weights expect.
    pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
    pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
    /// TensorFlow Lite's (x − 127.5) / 127.5, which the EfficientNet-Lite weights expect.
    pub const TFLITE_MEAN: [f32; 3] = [0.5, 0.5, 0.5];
    pub const TFLITE_STD: [f32; 3] = [0.5, 0.5, 0.5];

    /// Floats in one preprocessed image (3 × size × size).
    pub fn floats_per_image(&self) -> usize {
        3 * self.image_size_px as usize * self.image_size_px as usize
    }

    /// Resizes to size × size (ignoring aspect ratio, as torchvision's `Resize((s, s))`)
    /// and writes normalised CHW floats into `out`.
    pub fn write_plain(&self, image: &RgbImage, out: &mut [f32]) {
        let size = self.image_size_px;
        if image.width() == size && image.height() == size {
            self.write_normalized(image, false, [1.0, 1.0, 1.0], out);
        } else {
            let resized = resize(image, size, size);
            self.write_normalized(&resized, false, [1.0, 1.0, 1.0], out);
        }
    }

    /// Applies `augment` to a (cached, square) image and writes normalised CHW floats.
    pub fn write_augmented(
        &self,
        image: &RgbImage,
        augment: Augment,
        rng: &mut fastrand::Rng,
        out: &mut [f32],
    ) {
        let size = self.image_size_px;
        match augment {
            Augment::None => self.write_plain(image, out),
            Augment::Flip => {
                let flip = rng.bool();
                if image.width() == size && image.height() == size {
                    self.write_normalized(image, flip, [1.0, 1.0, 1.0], out);
                } else {
                    let resized = resize(image, size, size);
                    self.write_normalized(&resized, flip, [1.0, 1.0, 1.0], out);
                }
            }
            Augment::CropFlip => {
                let (x, y, w, h) = random_resized_crop(image.width(), image.height(), rng);
                let crop = image::imageops::crop_imm(image, x, y, w, h).to_image();
                let resized = resize(&crop, size, size);
                self.write_normalized(&resized, rng.bool(), [1.0, 1.0, 1.0], out);
            }
            Augment::CropFlipColor => {
                let (x, y, w, h) = random_resized_crop(image.width(), image.height(), rng);
                let crop = image::imageops::crop_imm(image, x, y, w, h).to_image();
                let resized = resize(&crop, size, size);
                let jitter = |rng: &mut fastrand::Rng| 0.8 + 0.4 * rng.f32();
                let (brightness, contrast, saturation) = (jitter(rng), jitter(rng), jitter(rng));
                let jittered = color_jitter(&resized, brightness, contrast, saturation);
                self.write_normalized(&jittered, rng.bool(), [1.0, 1.0, 1.0], out);
            }
        }
    }

    fn write_normalized(&self, image: &RgbImage, flip: bool, gain: [f32; 3], out: &mut [f32]) {
        let size = self.image_size_px as usize;
        debug_assert_eq!(out.len(), 3 * size * size);
        let raw = image.as_raw();
        for channel in 0..3 {
            let scale = gain[channel] / (255.0 * self.std[channel]);
            let offset = self.mean[channel] / self.std[channel];
            let plane = &mut out[channel * size * size..(channel + 1) * size * size];
            for y in 0..size {
                let row = &raw[y * size * 3..(y + 1) * size * 3];
                let out_row = &mut plane[y * size..(y + 1) * size];
                for (x, value) in out_row.iter_mut().enumerate() {
                    let source_x = if flip { size - 1 - x } else { x };
                    *value = f32::from(row[source_x * 3 + channel]) * scale - offset;
                }
            }
        }
    }
}

/// Bilinear resize with antialiasing, like PIL's default for `Resize`.
pub fn resize(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    image::imageops::resize(image, width, height, image::imageops::FilterType::Triangle)
}

/// Shrinks to fit within `side_px` × `side_px`, keeping the aspect ratio (for display).
pub fn shrink_to_fit(image: &RgbImage, side_px: u32) -> RgbImage {
    let (width, height) = image.dimensions();
    let scale = (side_px as f32 / width.max(height) as f32).min(1.0);
    let w = ((width as f32 * scale).round() as u32).max(1);
    let h = ((height as f32 * scale).round() as u32).max(1);
    if (w, h) == (width, height) {
        image.clone()
    } else {
        image::imageops::thumbnail(image, w, h)
    }
}

/// torchvision's RandomResizedCrop parameters: area scale 0.5–1, aspect 3/4–4/3.
fn random_resized_crop(width: u32, height: u32, rng: &mut fastrand::Rng) -> (u32, u32, u32, u32) {
    let area = f64::from(width) * f64::from(height);
    for _ in 0..10 {
        let target_area = area * (0.5 + 0.5 * rng.f64());
        let log_ratio = (0.75f64).ln() + rng.f64() * ((4.0f64 / 3.0).ln() - (0.75f64).ln());
        let aspect = log_ratio.exp();
        let w = (target_area * aspect).sqrt().round() as u32;
        let h = (target_area / aspect).sqrt().round() as u32;
        if w > 0 && h > 0 && w <= width && h <= height {
            let x = rng.u32(0..=width - w);
            let y = rng.u32(0..=height - h);
            return (x, y, w, h);
        }
    }
    (0, 0, width, height)
}

fn color_jitter(image: &RgbImage, brightness: f32, contrast: f32, saturation: f32) -> RgbImage {
    let mut out = image.clone();
    let pixel_count = (image.width() * image.height()).max(1) as f32;
    let mean_gray: f32 = image
        .pixels()
        .map(|p| 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]))
        .sum::<f32>()
        / pixel_count;
    for pixel in out.pixels_mut() {
        let [r, g, b] = pixel.0.map(|v| f32::from(v) * brightness);
        let gray = 0.299 * r + 0.587 * g + 0.114 * b;
        for (channel, value) in [r, g, b].into_iter().enumerate() {
            let saturated = gray + (value - gray) * saturation;
            let contrasted =
                mean_gray * brightness + (saturated - mean_gray * brightness) * contrast;
            pixel.0[channel] = contrasted.clamp(0.0, 255.0) as u8;
        }
    }
    out
}
