//! Which photo of a near-duplicate group to keep: the one a person would keep.
//!
//! The largest file used to win, and a trial kept a copy rotated by 2° (white corners,
//! re-encoded larger) over its original (issue #41). A person keeps the photo with no
//! border an edit added, then the one with the most pixels (the others are crops or
//! shrunk), then the one that still carries the camera's EXIF (editors and messengers
//! drop it), then the earliest file, then the largest. Each keeper says why it won.

use std::cmp::Ordering;
use std::io::Read;
use std::path::Path;

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::engine::data::{DEFAULT_MAX_PIXELS, TargetSize, decode_rgb_sized};
use crate::engine::files::open_regular;

/// What decides which copy to keep, read from the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeeperFacts {
    pub width: u32,
    pub height: u32,
    /// Its corners are filled with flat white or black: a border an edit added (a
    /// rotation's corners, a frame).
    pub added_border: bool,
    /// It carries an EXIF block (as a camera writes it).
    pub exif: bool,
    /// Modification time, nanoseconds since the epoch (0 when unknown).
    pub modified_ns: u64,
    pub bytes: u64,
}

/// Side of the small picture the corners are judged on: a 2° turn of a photo fills
/// triangles of about 3.5 % of its side at the corners, 9 pixels here.
const BORDER_PICTURE_SIDE: u32 = 256;
/// Each corner's triangle judged (the pixels with x + y below this, counted from the
/// corner): inside what a turn of 1.5° or more fills.
const CORNER: u32 = 5;
/// A channel within this of 0 or 255 counts as flat black or white.
const FLAT: u8 = 12;
/// Corners (of 4) that must be flat, of one colour, for a border.
const FLAT_CORNERS: usize = 3;
/// Bytes at the start of a file searched for the EXIF block (JPEG's APP1 comes first).
const EXIF_SEARCH_BYTES: u64 = 64 * 1024;

impl KeeperFacts {
    /// Reads the facts of `path` (its size and time as the index recorded them). `None`
    /// when it cannot be read as a photo. Only a regular file is opened (a photo swapped
    /// for a pipe since it was indexed must not hang the search for copies).
    pub fn read(path: &Path, bytes: u64, modified_ns: u64) -> Option<Self> {
        let (file, _) = open_regular(path).ok()?;
        let (width, height) = image::ImageReader::new(std::io::BufReader::new(file))
            .with_guessed_format()
            .ok()?
            .into_dimensions()
            .ok()?;
        let small = decode_rgb_sized(
            path,
            DEFAULT_MAX_PIXELS,
            TargetSize::LongSide(BORDER_PICTURE_SIDE),
        )
        .ok()?;
        Some(Self {
            width,
            height,
            added_border: has_added_border(&small),
            exif: has_exif(path),
            modified_ns,
            bytes,
        })
    }

    fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }

    /// `Less` when `self` is the better one to keep.
    pub fn compare(&self, other: &Self) -> Ordering {
        self.added_border
            .cmp(&other.added_border)
            .then(other.pixels().cmp(&self.pixels()))
            .then(other.exif.cmp(&self.exif))
            .then(match (self.modified_ns, other.modified_ns) {
                (0, _) | (_, 0) => Ordering::Equal,
                (a, b) => a.cmp(&b),
            })
            .then(other.bytes.cmp(&self.bytes))
    }
}

/// Whether at least [`FLAT_CORNERS`] corners of `picture` are flat white, or flat black.
fn has_added_border(picture: &RgbImage) -> bool {
    let (width, height) = picture.dimensions();
    if width < 2 * CORNER || height < 2 * CORNER {
        return false;
    }
    // Each corner as (x, y) of the corner pixel and the directions inward.
    let corners = [
        (0, 0, 1i64, 1i64),
        (width - 1, 0, -1, 1),
        (0, height - 1, 1, -1),
        (width - 1, height - 1, -1, -1),
    ];
    let corner_is = |(x0, y0, dx, dy): (u32, u32, i64, i64), level: u8| {
        (0..CORNER).all(|a| {
            (0..CORNER - a).all(|b| {
                let x = (i64::from(x0) + dx * i64::from(a)) as u32;
                let y = (i64::from(y0) + dy * i64::from(b)) as u32;
                picture
                    .get_pixel(x, y)
                    .0
                    .iter()
                    .all(|&c| c.abs_diff(level) <= FLAT)
            })
        })
    };
    [255u8, 0].into_iter().any(|level| {
        corners
            .iter()
            .filter(|&&corner| corner_is(corner, level))
            .count()
            >= FLAT_CORNERS
    })
}

/// Whether the file's first bytes hold an EXIF block ("Exif\0\0", JPEG's APP1, or a TIFF
/// or HEIF/PNG eXIf chunk's marker).
fn has_exif(path: &Path) -> bool {
    let Ok((file, _)) = open_regular(path) else {
        return false;
    };
    let mut head = Vec::new();
    if file.take(EXIF_SEARCH_BYTES).read_to_end(&mut head).is_err() {
        return false;
    }
    head.windows(6).any(|w| w == b"Exif\0\0") || head.windows(4).any(|w| w == b"eXIf")
}

/// Why `kept` is the one kept over `others`, in words: the criteria on which it beats
/// every other member, in the order they decide.
pub fn why_kept(kept: &KeeperFacts, others: &[KeeperFacts]) -> String {
    let mut reasons = Vec::new();
    if others.is_empty() {
        return "kept".into();
    }
    if !kept.added_border && others.iter().any(|o| o.added_border) {
        reasons.push(if others.iter().all(|o| o.added_border) {
            "the only one without an added border".to_string()
        } else {
            "no added border".to_string()
        });
    }
    if others.iter().all(|o| kept.pixels() > o.pixels()) {
        reasons.push(format!(
            "the most pixels ({} × {})",
            kept.width, kept.height
        ));
    }
    if kept.exif && others.iter().all(|o| !o.exif) {
        reasons.push("the only one with the camera's EXIF".into());
    }
    if kept.modified_ns != 0
        && others.iter().any(|o| o.modified_ns != 0)
        && others
            .iter()
            .all(|o| o.modified_ns == 0 || kept.modified_ns < o.modified_ns)
    {
        reasons.push("the earliest file".into());
    }
    if reasons.is_empty() {
        reasons.push(if others.iter().all(|o| kept.bytes > o.bytes) {
            "the largest file".into()
        } else {
            "first by name (the copies are alike in every way checked)".into()
        });
    }
    format!("kept: {}", reasons.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(width: u32, border: bool, exif: bool, modified_ns: u64, bytes: u64) -> KeeperFacts {
        KeeperFacts {
            width,
            height: width * 3 / 4,
            added_border: border,
            exif,
            modified_ns,
            bytes,
        }
    }

    /// Issue #41: a 2°-rotated copy with white corners, re-encoded larger, was kept over
    /// its original.
    #[test]
    fn the_original_beats_a_larger_rotated_copy_a_crop_and_a_stripped_copy() {
        let original = facts(4000, false, true, 100, 3_000_000);
        let rotated = facts(4000, true, false, 300, 4_500_000);
        let cropped = facts(3600, false, false, 200, 3_500_000);
        let stripped = facts(4000, false, false, 50, 2_900_000);
        let mut copies = [rotated, cropped, stripped, original];
        copies.sort_by(KeeperFacts::compare);
        assert_eq!(copies[0], original);
        assert_eq!(copies[3], rotated, "the bordered copy is last");
        assert_eq!(
            why_kept(&original, &[rotated, cropped, stripped]),
            "kept: no added border, the only one with the camera's EXIF"
        );
        assert_eq!(
            why_kept(&original, &[rotated]),
            "kept: the only one without an added border, the only one with the camera's EXIF, \
             the earliest file"
        );
        assert_eq!(
            why_kept(&original, &[cropped]),
            "kept: the most pixels (4000 × 3000), the only one with the camera's EXIF, the \
             earliest file"
        );
        let twin = facts(4000, false, true, 0, 3_000_000);
        assert_eq!(
            why_kept(&original, &[twin]),
            "kept: first by name (the copies are alike in every way checked)"
        );
    }

    #[test]
    fn white_or_black_corners_are_an_added_border_and_a_photo_is_not() {
        let mut rng = fastrand::Rng::with_seed(3);
        let photo = crate::engine::synthetic::class_image(1, 3, 96, &mut rng);
        assert!(!has_added_border(&photo));
        // A rotation's corners: triangles of white.
        let mut rotated = photo.clone();
        for y in 0..96u32 {
            for x in 0..96u32 {
                let from_corner = |a: u32, b: u32| a + b < 12;
                if from_corner(x, y)
                    || from_corner(95 - x, y)
                    || from_corner(x, 95 - y)
                    || from_corner(95 - x, 95 - y)
                {
                    rotated.put_pixel(x, y, image::Rgb([255, 255, 255]));
                }
            }
        }
        assert!(has_added_border(&rotated));
        // A 2° turn of a 4000-px photo, seen at 256 px: triangles 9 pixels on a side.
        let mut rng = fastrand::Rng::with_seed(4);
        let mut turned = crate::engine::synthetic::class_image(2, 3, 256, &mut rng);
        for y in 0..256u32 {
            for x in 0..256u32 {
                let near = |a: u32, b: u32| a + b < 9;
                if near(x, y) || near(255 - x, y) || near(x, 255 - y) || near(255 - x, 255 - y) {
                    turned.put_pixel(x, y, image::Rgb([250, 250, 250]));
                }
            }
        }
        assert!(has_added_border(&turned));
        // A black frame.
        let mut framed = photo.clone();
        for y in 0..96u32 {
            for x in 0..96u32 {
                if x < 6 || y < 6 || x >= 90 || y >= 90 {
                    framed.put_pixel(x, y, image::Rgb([0, 0, 0]));
                }
            }
        }
        assert!(has_added_border(&framed));
        // One white corner (sky) is not a border.
        let mut sky = photo;
        for y in 0..10u32 {
            for x in 0..10u32 {
                sky.put_pixel(x, y, image::Rgb([255, 255, 255]));
            }
        }
        assert!(!has_added_border(&sky));
    }

    #[test]
    fn exif_is_found_in_a_jpeg_and_not_in_a_plain_png() {
        let dir = tempfile::tempdir().expect("temp dir");
        let jpeg = dir.path().join("camera.jpg");
        // SOI, then an APP1 segment as cameras write it.
        let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x10];
        bytes.extend_from_slice(b"Exif\0\0");
        bytes.extend_from_slice(&[0u8; 8]);
        std::fs::write(&jpeg, &bytes).expect("write");
        assert!(has_exif(&jpeg));
        let png = dir.path().join("plain.png");
        let mut rng = fastrand::Rng::with_seed(1);
        crate::engine::synthetic::class_image(0, 2, 32, &mut rng)
            .save(&png)
            .expect("save");
        assert!(!has_exif(&png));
        assert!(!has_exif(&dir.path().join("missing.jpg")));
    }
}
