//! A photo's fingerprint: its layout as an 8×8 grey picture, normalised for brightness and
//! contrast, and a perceptual hash of its luminance, kept per photo in the index.
//!
//! It tells near-duplicates apart from different photos that a model puts close together.
//! A model trained to tell classes apart brings all photos of one class near each other,
//! so embedding distance alone groups a rose with every other rose; the layout of the
//! same shot survives resizing, recompression, a slight crop and a change of exposure,
//! and the layouts of two different shots rarely agree. It is taken from the image that
//! was decoded for embedding anyway, so it costs nothing extra to read.
//!
//! The layout alone does not survive the commonest edits: brightening until highlights
//! clip, a crop of a few percent, a small rotation. The perceptual hash does: the signs of
//! the lowest frequencies of the photo's luminance (a 2-D cosine transform of a 32×32
//! reduction), each against their median, are unchanged by any brightness or contrast
//! change that keeps the order of grey levels and move little under small crops and
//! rotations. Two shots of one scene differ in many of them.
//!
//! A crop of 10 % changes the scale of everything in the frame, which moves about a
//! third of those bits. So each photo also keeps the hashes of its own middle 95 % and
//! 90 %: a copy cropped by that much around its middle has the hash of the original's
//! middle, and [`Fingerprint::hash_distance`] compares each photo whole with the other's
//! middles as well as whole with whole.

use image::RgbImage;
use serde::{Deserialize, Serialize};

/// Side of the grey picture.
pub const SIDE: usize = 8;
const CELLS: usize = SIDE * SIDE;

/// Side of the grey picture the perceptual hash transforms.
const HASH_SIDE: usize = 32;
/// Frequencies kept per direction: the hash has `HASH_FREQUENCIES²` bits.
const HASH_FREQUENCIES: usize = 8;

/// Share of each side left out of the middles whose hashes are kept as well: 2.5 % and
/// 5 % (the middle 95 % and 90 % of the photo).
pub const MIDDLE_INSETS: [f64; 2] = [0.025, 0.05];

/// The layout of a photo (64 zero-mean, unit-norm values stored as signed bytes) and its
/// perceptual hashes (absent in indexes written before they existed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub cells: [i8; CELLS],
    /// The whole photo's hash.
    pub hash: Option<PerceptualHash>,
    /// The hashes of its middles ([`MIDDLE_INSETS`]).
    pub middles: Option<[PerceptualHash; 2]>,
}

/// 64 bits: whether each of the 8×8 lowest frequencies of the photo's luminance is above
/// their median (the constant term is always 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerceptualHash(pub u64);

impl PerceptualHash {
    /// The hash of a decoded photo (any size).
    pub fn of(image: &RgbImage) -> Self {
        Self::of_middle(image, 0.0)
    }

    /// The hash of the middle of a photo: `inset` of each side's length left out at both
    /// ends.
    pub fn of_middle(image: &RgbImage, inset: f64) -> Self {
        let grey = luminance_grid(image, HASH_SIDE, inset);
        // The separable DCT-II, only the lowest frequencies: rows first, then columns.
        let basis: Vec<[f64; HASH_SIDE]> = (0..HASH_FREQUENCIES)
            .map(|u| {
                let mut row = [0f64; HASH_SIDE];
                for (x, value) in row.iter_mut().enumerate() {
                    *value = (std::f64::consts::PI * (2 * x + 1) as f64 * u as f64
                        / (2 * HASH_SIDE) as f64)
                        .cos();
                }
                row
            })
            .collect();
        let mut rows = [[0f64; HASH_FREQUENCIES]; HASH_SIDE];
        for (y, row) in rows.iter_mut().enumerate() {
            for (u, coefficient) in row.iter_mut().enumerate() {
                *coefficient = (0..HASH_SIDE)
                    .map(|x| grey[y * HASH_SIDE + x] * basis[u][x])
                    .sum();
            }
        }
        let mut frequencies = [0f64; HASH_FREQUENCIES * HASH_FREQUENCIES];
        for v in 0..HASH_FREQUENCIES {
            for u in 0..HASH_FREQUENCIES {
                frequencies[v * HASH_FREQUENCIES + u] =
                    (0..HASH_SIDE).map(|y| rows[y][u] * basis[v][y]).sum();
            }
        }
        // The constant term says only how bright the photo is: left out.
        let mut others: Vec<f64> = frequencies[1..].to_vec();
        others.sort_by(f64::total_cmp);
        let median = (others[others.len() / 2 - 1] + others[others.len() / 2]) / 2.0;
        let bits = frequencies
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(_, f)| **f > median)
            .fold(0u64, |bits, (i, _)| bits | (1 << i));
        Self(bits)
    }

    /// How many of the bits differ (0 to 63).
    pub fn distance(&self, other: &PerceptualHash) -> u32 {
        (self.0 ^ other.0).count_ones()
    }
}

/// The luminance of the photo's middle (`inset` of each side left out at both ends)
/// averaged over a `side`×`side` grid of areas.
fn luminance_grid(image: &RgbImage, side: usize, inset: f64) -> Vec<f64> {
    let (full_width, full_height) = image.dimensions();
    let (dx, dy) = (
        (full_width as f64 * inset).round() as u32,
        (full_height as f64 * inset).round() as u32,
    );
    // A photo too small to leave anything out is taken whole.
    let (dx, dy) = if 2 * dx < full_width && 2 * dy < full_height {
        (dx, dy)
    } else {
        (0, 0)
    };
    let (width, height) = (full_width - 2 * dx, full_height - 2 * dy);
    let middle = image::imageops::crop_imm(image, dx, dy, width, height);
    let mut sums = vec![0f64; side * side];
    let mut counts = vec![0u32; side * side];
    for (x, y, pixel) in image::GenericImageView::pixels(&*middle) {
        let cx = (x as usize * side / width.max(1) as usize).min(side - 1);
        let cy = (y as usize * side / height.max(1) as usize).min(side - 1);
        let [r, g, b] = pixel.0;
        sums[cy * side + cx] += 0.299 * r as f64 + 0.587 * g as f64 + 0.114 * b as f64;
        counts[cy * side + cx] += 1;
    }
    sums.iter()
        .zip(counts)
        .map(|(sum, n)| sum / n.max(1) as f64)
        .collect()
}

impl Fingerprint {
    /// The fingerprint of a decoded photo (any size).
    pub fn of(image: &RgbImage) -> Self {
        let grey = luminance_grid(image, SIDE, 0.0);
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
        Self {
            cells,
            hash: Some(PerceptualHash::of(image)),
            middles: Some(MIDDLE_INSETS.map(|inset| PerceptualHash::of_middle(image, inset))),
        }
    }

    /// How many bits of the two photos' perceptual hashes differ, the fewest of: whole
    /// against whole, and each whole against the other's middles (one may be a crop of
    /// the other). `None` when one has no hash.
    pub fn hash_distance(&self, other: &Fingerprint) -> Option<u32> {
        let (mine, theirs) = (self.hash?, other.hash?);
        let mut fewest = mine.distance(&theirs);
        for middle in other.middles.iter().flatten() {
            fewest = fewest.min(mine.distance(middle));
        }
        for middle in self.middles.iter().flatten() {
            fewest = fewest.min(theirs.distance(middle));
        }
        Some(fewest)
    }

    /// Cosine similarity of two layouts: 1 for the same, about 0 for unrelated ones; a
    /// flat (single-colour) photo is 0 to everything.
    pub fn similarity(&self, other: &Fingerprint) -> f32 {
        let (mut dot, mut a2, mut b2) = (0i64, 0i64, 0i64);
        for (&a, &b) in self.cells.iter().zip(&other.cells) {
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
        for (o, &c) in out.iter_mut().zip(&self.cells) {
            *o = c as f32 / 127.0;
        }
        out
    }
}

// Stored in the index header as 128 hex digits, then ":" and the hash's 16, then ":" and
// 16 for each middle (compact and readable in the JSON). Indexes written before the
// middles have the first two parts, and those written before the hash the 128 digits.
impl Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut hex: String = self
            .cells
            .iter()
            .map(|&c| format!("{:02x}", c as u8))
            .collect();
        if let Some(hash) = self.hash {
            hex.push_str(&format!(":{:016x}", hash.0));
            for middle in self.middles.iter().flatten() {
                hex.push_str(&format!(":{:016x}", middle.0));
            }
        }
        serializer.serialize_str(&hex)
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let bad = || {
            serde::de::Error::custom(
                "a fingerprint is 128 hex digits (then : and 16, up to 3 times)",
            )
        };
        let mut parts = text.split(':');
        let hex = parts.next().unwrap_or_default();
        let hashes: Vec<PerceptualHash> = parts
            .map(|part| {
                (part.len() == 16)
                    .then(|| u64::from_str_radix(part, 16).ok())
                    .flatten()
                    .map(PerceptualHash)
                    .ok_or_else(bad)
            })
            .collect::<Result<_, _>>()?;
        let (hash, middles) = match hashes.as_slice() {
            [] => (None, None),
            [whole] => (Some(*whole), None),
            [whole, a, b] => (Some(*whole), Some([*a, *b])),
            _ => return Err(bad()),
        };
        if hex.len() != CELLS * 2 || !hex.is_ascii() {
            return Err(bad());
        }
        let mut cells = [0i8; CELLS];
        for (i, cell) in cells.iter_mut().enumerate() {
            *cell = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())? as i8;
        }
        Ok(Self {
            cells,
            hash,
            middles,
        })
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
        assert_eq!(json.len(), 2 + 128 + 3 * (1 + 16));
        assert_eq!(
            serde_json::from_str::<Fingerprint>(&json).expect("back"),
            print
        );
        // An index written before the hash: the layout alone.
        let older = format!("\"{}\"", &json[1..129]);
        let read = serde_json::from_str::<Fingerprint>(&older).expect("older");
        assert_eq!((read.cells, read.hash), (print.cells, None));
        // One written before the middles: the layout and the whole photo's hash.
        let before_middles = format!("\"{}\"", &json[1..129 + 17]);
        let read = serde_json::from_str::<Fingerprint>(&before_middles).expect("no middles");
        assert_eq!((read.hash, read.middles), (print.hash, None));
        let two_hashes = format!("\"{}\"", &json[1..129 + 34]);
        assert!(serde_json::from_str::<Fingerprint>(&two_hashes).is_err());
        assert!(serde_json::from_str::<Fingerprint>("\"zz\"").is_err());
        let short_hash = format!("\"{}:12\"", &json[1..129]);
        assert!(serde_json::from_str::<Fingerprint>(&short_hash).is_err());
    }

    /// `image` turned by `degrees` about its centre (nearest pixel; corners take the
    /// nearest edge pixel, as a slight straightening crop would).
    fn rotated(image: &RgbImage, degrees: f32) -> RgbImage {
        let (w, h) = image.dimensions();
        let (sin, cos) = degrees.to_radians().sin_cos();
        let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
        RgbImage::from_fn(w, h, |x, y| {
            let (dx, dy) = (x as f32 - cx, y as f32 - cy);
            let sx = (cos * dx + sin * dy + cx)
                .round()
                .clamp(0.0, w as f32 - 1.0);
            let sy = (-sin * dx + cos * dy + cy)
                .round()
                .clamp(0.0, h as f32 - 1.0);
            *image.get_pixel(sx as u32, sy as u32)
        })
    }

    fn mapped(image: &RgbImage, f: impl Fn(f32) -> f32) -> RgbImage {
        let mut out = image.clone();
        for pixel in out.pixels_mut() {
            for c in &mut pixel.0 {
                *c = f(*c as f32).round().clamp(0.0, 255.0) as u8;
            }
        }
        out
    }

    /// Issue #28: the edits people make before a copy lands next to its original keep the
    /// perceptual hash close (within the duplicate finder's bound); another shot does not.
    #[test]
    fn everyday_edits_keep_the_perceptual_hash_and_another_shot_does_not() {
        let photo = scene(5, 480);
        let (w, h) = photo.dimensions();
        let hash = |image: &RgbImage| Fingerprint::of(image).hash.expect("hash");
        let original = hash(&photo);
        let crop = |share: f32| {
            let (dx, dy) = ((w as f32 * share) as u32, (h as f32 * share) as u32);
            image::imageops::crop_imm(&photo, dx, dy, w - 2 * dx, h - 2 * dy).to_image()
        };
        let edits: Vec<(&str, RgbImage)> = vec![
            (
                "brighter by 20 %, highlights clipped",
                mapped(&photo, |v| v * 1.2 + 20.0),
            ),
            ("darker by 20 %", mapped(&photo, |v| v * 0.8)),
            (
                "more contrast, clipped",
                mapped(&photo, |v| (v - 128.0) * 1.4 + 128.0),
            ),
            (
                "less contrast",
                mapped(&photo, |v| (v - 128.0) * 0.7 + 128.0),
            ),
            ("5 % cropped from each side", crop(0.05)),
            ("turned 3 degrees", rotated(&photo, 3.0)),
            ("turned -3 degrees", rotated(&photo, -3.0)),
            (
                "half size",
                image::imageops::resize(
                    &photo,
                    w / 2,
                    h / 2,
                    image::imageops::FilterType::Triangle,
                ),
            ),
        ];
        let bound = crate::engine::collection::duplicates::HASH_MATCH;
        for (edit, image) in &edits {
            let distance = original.distance(&hash(image));
            assert!(
                distance <= bound,
                "{edit}: {distance} bits apart (bound {bound})"
            );
        }
        for other in 6..16 {
            let distance = original.distance(&hash(&scene(other, 480)));
            assert!(
                distance > bound + 4,
                "scene {other}: only {distance} bits apart"
            );
        }
    }

    /// A crop of 10 % (5 % off each side) moves the whole photo's hash by a third of its
    /// bits; compared with the original's middle 90 %, it is the same shot. Comparing the
    /// middles does not bring other shots within the bound.
    #[test]
    fn a_ten_percent_crop_matches_the_originals_middle_and_other_shots_still_do_not() {
        let bound = crate::engine::collection::duplicates::HASH_MATCH;
        let mut whole_only_misses = 0;
        for seed in [5, 21, 40] {
            let photo = scene(seed, 480);
            let (w, h) = photo.dimensions();
            let original = Fingerprint::of(&photo);
            for share in [0.025f32, 0.05] {
                let (dx, dy) = ((w as f32 * share) as u32, (h as f32 * share) as u32);
                let cropped = Fingerprint::of(
                    &image::imageops::crop_imm(&photo, dx, dy, w - 2 * dx, h - 2 * dy).to_image(),
                );
                let distance = original.hash_distance(&cropped).expect("hashes");
                assert!(
                    distance <= bound,
                    "scene {seed}, crop {share}: {distance} bits"
                );
                assert_eq!(
                    cropped.hash_distance(&original),
                    Some(distance),
                    "symmetric"
                );
                let whole = original
                    .hash
                    .expect("hash")
                    .distance(&cropped.hash.expect("hash"));
                whole_only_misses += usize::from(whole > bound);
            }
            for other in 50..60 {
                let distance = original
                    .hash_distance(&Fingerprint::of(&scene(other, 480)))
                    .expect("hashes");
                assert!(
                    distance > bound,
                    "scenes {seed} and {other}: {distance} bits"
                );
            }
        }
        assert!(
            whole_only_misses > 0,
            "the whole photos' hashes alone would match too"
        );
    }
}
