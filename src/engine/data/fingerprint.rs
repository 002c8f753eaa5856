//! A photo's fingerprint: its layout as an 8×8 grey picture, normalised for brightness and
//! contrast, kept per photo in the index.
//!
//! It tells near-duplicates apart from different photos that a model puts close together.
//! A model trained to tell classes apart brings all photos of one class near each other,
//! so embedding distance alone groups a rose with every other rose; the layout of the
//! same shot survives resizing, recompression, a slight crop and a change of exposure,
//! and the layouts of two different shots rarely agree. It is taken from the image that
//! was decoded for embedding anyway, so it costs nothing extra to read.

use image::RgbImage;
use serde::{Deserialize, Serialize};

/// Side of the grey picture.
pub const SIDE: usize = 8;
const CELLS: usize = SIDE * SIDE;

/// The layout of a photo: 64 zero-mean, unit-norm values stored as signed bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(pub [i8; CELLS]);

impl Fingerprint {
    /// The fingerprint of a decoded photo (any size).
    pub fn of(image: &RgbImage) -> Self {
        let (width, height) = image.dimensions();
        let mut sums = [0f64; CELLS];
        let mut counts = [0u32; CELLS];
        for (x, y, pixel) in image.enumerate_pixels() {
            let cx = (x as usize * SIDE / width.max(1) as usize).min(SIDE - 1);
            let cy = (y as usize * SIDE / height.max(1) as usize).min(SIDE - 1);
            let [r, g, b] = pixel.0;
            sums[cy * SIDE + cx] += 0.299 * r as f64 + 0.587 * g as f64 + 0.114 * b as f64;
            counts[cy * SIDE + cx] += 1;
        }
        let grey: Vec<f64> = sums
            .iter()
            .zip(counts)
            .map(|(sum, n)| sum / n.max(1) as f64)
            .collect();
        let mean = grey.iter().sum::<f64>() / CELLS as f64;
        let norm = grey
            .iter()
            .map(|v| (v - mean) * (v - mean))
            .sum::<f64>()
            .sqrt();
        let mut cells = [0i8; CELLS];
        if norm > 1e-6 {
            for (cell, value) in cells.iter_mut().zip(&grey) {
                // Unit norm over 64 cells: values rarely pass ±0.5; scale to use the byte.
                *cell = ((value - mean) / norm * 254.0).round().clamp(-127.0, 127.0) as i8;
            }
        }
        Self(cells)
    }

    /// Cosine similarity of two layouts: 1 for the same, about 0 for unrelated ones; a
    /// flat (single-colour) photo is 0 to everything.
    pub fn similarity(&self, other: &Fingerprint) -> f32 {
        let (mut dot, mut a2, mut b2) = (0i64, 0i64, 0i64);
        for (&a, &b) in self.0.iter().zip(&other.0) {
            dot += a as i64 * b as i64;
            a2 += a as i64 * a as i64;
            b2 += b as i64 * b as i64;
        }
        if a2 == 0 || b2 == 0 {
            return 0.0;
        }
        (dot as f64 / ((a2 as f64).sqrt() * (b2 as f64).sqrt())) as f32
    }

    /// The layout as floats (for a faiss index of fingerprints).
    pub fn to_floats(&self) -> [f32; CELLS] {
        let mut out = [0f32; CELLS];
        for (o, &c) in out.iter_mut().zip(&self.0) {
            *o = c as f32 / 127.0;
        }
        out
    }
}

// Stored in the index header as 128 hex digits (compact and readable in the JSON).
impl Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let hex: String = self.0.iter().map(|&c| format!("{:02x}", c as u8)).collect();
        serializer.serialize_str(&hex)
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let hex = String::deserialize(deserializer)?;
        let bad = || serde::de::Error::custom("a fingerprint is 128 hex digits");
        if hex.len() != CELLS * 2 || !hex.is_ascii() {
            return Err(bad());
        }
        let mut cells = [0i8; CELLS];
        for (i, cell) in cells.iter_mut().enumerate() {
            *cell = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())? as i8;
        }
        Ok(Self(cells))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scene(seed: u64, size: u32) -> RgbImage {
        let mut rng = fastrand::Rng::with_seed(seed);
        let blobs: Vec<(f32, f32, f32, u8)> = (0..6)
            .map(|_| (rng.f32(), rng.f32(), 0.1 + rng.f32() * 0.2, rng.u8(..)))
            .collect();
        RgbImage::from_fn(size, size * 3 / 4, |x, y| {
            let (u, v) = (x as f32 / size as f32, y as f32 / (size * 3 / 4) as f32);
            let mut level = 60.0;
            for &(cx, cy, r, value) in &blobs {
                if (u - cx).powi(2) + (v - cy).powi(2) < r * r {
                    level = value as f32;
                }
            }
            image::Rgb([level as u8, (level * 0.8) as u8, 40])
        })
    }

    #[test]
    fn the_same_shot_resized_or_darkened_matches_and_another_does_not() {
        let photo = scene(1, 400);
        let print = Fingerprint::of(&photo);
        let half = image::imageops::resize(&photo, 200, 150, image::imageops::FilterType::Triangle);
        let mut darker = photo.clone();
        for p in darker.pixels_mut() {
            for c in &mut p.0 {
                *c = (*c as f32 * 0.9) as u8;
            }
        }
        assert!(print.similarity(&Fingerprint::of(&half)) > 0.95);
        assert!(print.similarity(&Fingerprint::of(&darker)) > 0.95);
        assert!(print.similarity(&Fingerprint::of(&scene(2, 400))) < 0.8);
        // A flat photo matches nothing.
        let flat = Fingerprint::of(&RgbImage::from_pixel(50, 50, image::Rgb([9, 9, 9])));
        assert_eq!(flat.similarity(&print), 0.0);
    }

    #[test]
    fn it_round_trips_through_json_and_refuses_garbage() {
        let print = Fingerprint::of(&scene(3, 120));
        let json = serde_json::to_string(&print).expect("json");
        assert_eq!(json.len(), 130);
        assert_eq!(
            serde_json::from_str::<Fingerprint>(&json).expect("back"),
            print
        );
        assert!(serde_json::from_str::<Fingerprint>("\"zz\"").is_err());
    }
}
