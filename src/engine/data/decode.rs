//! Decoding one image file (or bytes) into 8-bit RGB, EXIF orientation applied.

use std::path::Path;

use image::{ImageDecoder, RgbImage};

use super::scan::check_pixel_limit;

/// Decodes one image file into 8-bit RGB: EXIF orientation applied; grayscale, alpha and
/// 16-bit converted; GIFs give their first frame. The error is a reason to show the user.
pub fn decode_rgb(path: &Path, max_pixels: u64) -> Result<RgbImage, String> {
    decode_rgb_sized(path, max_pixels, TargetSize::Full)
}

/// How large a decoded image needs to be. A JPEG is decoded at the smallest of 1/1, 1/2,
/// 1/4 and 1/8 of its size (scaled in the DCT, which is where the time goes for a
/// 12-megapixel photo) that is still at least this large; other formats are decoded whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetSize {
    /// Every pixel.
    Full,
    /// The shorter side at least this many pixels (inputs squashed to a square).
    ShortSide(u32),
    /// The longer side at least this many pixels (thumbnails fitted in a box).
    LongSide(u32),
}

/// As [`decode_rgb`], decoding a JPEG only as large as `target` needs.
pub fn decode_rgb_sized(
    path: &Path,
    max_pixels: u64,
    target: TargetSize,
) -> Result<RgbImage, String> {
    // Checked again on the opened handle: the file may have been swapped for a pipe or a
    // link to a device since the scan.
    let bytes = read_photo(path)?;
    decode_rgb_bytes_sized(&bytes, max_pixels, target)
}

/// The largest photo file read: well above any camera's (a 100-MP 16-bit TIFF is 600 MB).
pub const MAX_PHOTO_FILE_BYTES: u64 = 1 << 30;

/// A photo's bytes: only a regular file, at most [`MAX_PHOTO_FILE_BYTES`], checked on the
/// opened handle (a swap between scan and decode is caught, a pipe does not hang).
pub fn read_photo(path: &Path) -> Result<Vec<u8>, String> {
    use crate::engine::EngineError;
    crate::engine::files::read_regular(path, MAX_PHOTO_FILE_BYTES, "a photo").map_err(|error| {
        // The path is the caller's to name: only the reason goes back.
        match error {
            EngineError::BadFile { reason, .. } => reason,
            EngineError::Io { error, .. } => {
                format!(
                    "cannot be read ({})",
                    crate::engine::error::io_reason(&error)
                )
            }
            other => other.to_string(),
        }
    })
}

/// Memory all whole-image decodes together may hold at once. One decode larger than it
/// still runs, alone.
pub const DECODE_MEMORY_BUDGET_BYTES: u64 = 2 << 30;
/// Decodes smaller than this do not wait on the budget (every phone photo decoded at
/// full size is above it; thumbnails and scaled JPEGs are below).
const UNCOUNTED_DECODE_BYTES: u64 = 16 << 20;

static DECODE_MEMORY: MemoryBudget = MemoryBudget::new(DECODE_MEMORY_BUDGET_BYTES);

/// Bytes shared by threads: a reservation waits until the bytes fit beside the others'.
pub struct MemoryBudget {
    limit: u64,
    in_use: std::sync::Mutex<u64>,
    freed: std::sync::Condvar,
}

/// Bytes held from a [`MemoryBudget`] until dropped.
pub struct Reservation<'a> {
    budget: &'a MemoryBudget,
    bytes: u64,
}

impl MemoryBudget {
    pub const fn new(limit: u64) -> Self {
        Self {
            limit,
            in_use: std::sync::Mutex::new(0),
            freed: std::sync::Condvar::new(),
        }
    }

    /// Waits until `bytes` fit in the budget beside what others hold (or nothing else is
    /// held, so one oversized decode still runs), then holds them.
    pub fn reserve(&self, bytes: u64) -> Reservation<'_> {
        if bytes < UNCOUNTED_DECODE_BYTES {
            return Reservation {
                budget: self,
                bytes: 0,
            };
        }
        let Ok(mut in_use) = self.in_use.lock() else {
            return Reservation {
                budget: self,
                bytes: 0,
            };
        };
        while *in_use > 0 && in_use.saturating_add(bytes) > self.limit {
            in_use = match self.freed.wait(in_use) {
                Ok(guard) => guard,
                Err(_) => {
                    return Reservation {
                        budget: self,
                        bytes: 0,
                    };
                }
            };
        }
        *in_use += bytes;
        Reservation {
            budget: self,
            bytes,
        }
    }

    /// Bytes held now.
    pub fn in_use(&self) -> u64 {
        self.in_use.lock().map_or(0, |n| *n)
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.bytes == 0 {
            return;
        }
        if let Ok(mut in_use) = self.budget.in_use.lock() {
            *in_use -= self.bytes;
        }
        self.budget.freed.notify_all();
    }
}

/// As [`decode_rgb`], from bytes in memory (a pasted or dropped image).
pub fn decode_rgb_bytes(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, String> {
    decode_rgb_bytes_sized(bytes, max_pixels, TargetSize::Full)
}

/// As [`decode_rgb_sized`], from bytes in memory.
pub fn decode_rgb_bytes_sized(
    bytes: &[u8],
    max_pixels: u64,
    target: TargetSize,
) -> Result<RgbImage, String> {
    if bytes.is_empty() {
        return Err("empty file (0 bytes)".into());
    }
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot be read ({e})"))?;
    if reader.format().is_none() {
        return Err("not a recognised image (unknown file contents)".into());
    }
    let is_jpeg = reader.format() == Some(image::ImageFormat::Jpeg);
    if is_jpeg && let Some(damage) = jpeg_damage(bytes) {
        // The JPEG decoder would fill the missing part with grey and say nothing; a damaged
        // file is reported the way a truncated PNG or WebP is.
        return Err(format!("damaged JPEG: {damage}"));
    }
    let mut limits = image::Limits::default();
    // Generous for real photos (a 100 MP RGBA 16-bit image is 800 MB), but bounded.
    limits.max_alloc = Some(max_pixels.saturating_mul(8).max(64 << 20));
    reader.limits(limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| format!("not a readable image ({e})"))?;
    let (width, height) = decoder.dimensions();
    check_pixel_limit(width, height, max_pixels)?;
    let orientation = decoder.orientation().ok();
    let scaled = match (is_jpeg, target) {
        (true, TargetSize::ShortSide(side)) => {
            let scale = f64::from(side) / f64::from(width.min(height).max(1));
            decode_jpeg_scaled(bytes, (width, height), scale, INPUT_PREVIEW_SHARE)
        }
        (true, TargetSize::LongSide(side)) => {
            // Thumbnails are looked at: a preview smaller than the box would show blurred.
            let scale = f64::from(side) / f64::from(width.max(height).max(1));
            decode_jpeg_scaled(bytes, (width, height), scale, 1.0)
        }
        _ => None,
    };
    let mut image = match scaled {
        Some(image) => image::DynamicImage::ImageRgb8(image),
        None => {
            // A whole decode holds the decoded pixels and their RGB copy: the loader
            // threads share one budget for that, so memory does not grow with the number
            // of threads times the largest image.
            let rgb_bytes = u64::from(width) * u64::from(height) * 3;
            let _reserved = DECODE_MEMORY.reserve(decoder.total_bytes() + rgb_bytes);
            image::DynamicImage::from_decoder(decoder)
                .map_err(|e| format!("not a readable image ({e})"))?
        }
    };
    if let Some(orientation) = orientation {
        image.apply_orientation(orientation);
    }
    Ok(image.into_rgb8())
}

/// A network input may come from an EXIF preview down to this share of the input's size
/// (a phone's 160×120 preview for a 144-px input): retrieval from such previews, enlarged
/// to the input, equals retrieval from the photos (docs/benchmarks.md, "A photo library,
/// third time": recall@1 0.720 against 0.715, mAP@R 0.707 against 0.707, three models),
/// and it spares a 12-MP photo's entropy decoding.
const INPUT_PREVIEW_SHARE: f64 = 5.0 / 6.0;

/// Decodes a JPEG scaled down in the DCT by the largest of 1/2, 1/4, 1/8 that keeps it
/// at least `scale` times its size, with libjpeg-turbo (`None` when no reduction is
/// possible or libjpeg-turbo cannot decode it, e.g. CMYK: the caller decodes whole then).
/// When even 1/8 is larger than needed, the camera's embedded preview is taken instead if
/// it is at least `preview_share` of the size needed and trusted ([`super::preview`]).
///
/// At 1/8 only each block's DC coefficient is transformed, so what is left is entropy
/// decoding, where libjpeg-turbo is about 1.4–2× faster than the pure-Rust decoders
/// (docs/benchmarks.md).
fn decode_jpeg_scaled(
    bytes: &[u8],
    (width, height): (u32, u32),
    scale: f64,
    preview_share: f64,
) -> Option<RgbImage> {
    use turbojpeg::ScalingFactor;
    if scale >= 0.5 {
        return None;
    }
    let needed = |side: u32| (f64::from(side) * scale).ceil();
    let large_enough = |factor: &ScalingFactor| {
        [width, height]
            .into_iter()
            .all(|side| factor.scale(side as usize) as f64 >= needed(side))
    };
    let factor = [
        ScalingFactor::ONE_EIGHTH,
        ScalingFactor::ONE_QUARTER,
        ScalingFactor::ONE_HALF,
    ]
    .into_iter()
    .find(large_enough)?;
    if factor == ScalingFactor::ONE_EIGHTH
        && let Some(preview) = super::preview::trusted_preview(
            bytes,
            (width, height),
            (
                (needed(width) * preview_share).floor() as u32,
                (needed(height) * preview_share).floor() as u32,
            ),
        )
    {
        return Some(preview);
    }
    // The scaled image is smaller than the photo, whose size was checked already.
    super::turbo::decode(bytes, factor, u64::from(width) * u64::from(height))
}

/// What is wrong with a JPEG's structure, if anything. The marker segments are walked by
/// their lengths (so an EXIF thumbnail's own markers are skipped) and the entropy-coded
/// data after each start-of-scan is followed to the next marker (0xFF followed by anything
/// but 0x00 or a restart marker). A file cut short ends before its end-of-image marker;
/// a header that claims far more pixels than its data can hold (every 8×8 block takes at
/// least a bit) lies about its size. Decoders fill both with grey without a word.
pub fn jpeg_damage(bytes: &[u8]) -> Option<String> {
    const SOI: u8 = 0xD8;
    const EOI: u8 = 0xD9;
    const SOS: u8 = 0xDA;
    let truncated = || Some("the file ends before the image data does (truncated)".to_string());
    if bytes.get(..2) != Some(&[0xFF, SOI]) {
        return Some("it does not start like a JPEG".into());
    }
    let mut at = 2;
    let mut frame: Option<(u32, u32)> = None;
    let mut entropy_bytes = 0usize;
    loop {
        // Skip fill bytes before a marker.
        while bytes.get(at) == Some(&0xFF) && bytes.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        let (Some(&0xFF), Some(&marker)) = (bytes.get(at), bytes.get(at + 1)) else {
            return truncated();
        };
        at += 2;
        match marker {
            EOI => break,
            // Markers without a length.
            0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let Some(length) = bytes
            .get(at..at + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        else {
            return truncated();
        };
        if length < 2 {
            return Some("a damaged marker segment".into());
        }
        // Start of frame (SOF0–SOF15 but DHT, JPG and DAC): height and width.
        if (0xC0..=0xCF).contains(&marker)
            && ![0xC4, 0xC8, 0xCC].contains(&marker)
            && let Some(b) = bytes.get(at + 3..at + 7)
        {
            let height = u32::from(u16::from_be_bytes([b[0], b[1]]));
            let width = u32::from(u16::from_be_bytes([b[2], b[3]]));
            frame = Some((width, height));
        }
        at += length;
        if at > bytes.len() {
            return truncated();
        }
        if marker == SOS {
            // Entropy-coded data runs to the next real marker.
            // (memchr finds each 0xFF with SIMD: a 5-MB photo is scanned in about 1 ms
            // instead of several, which matters once its pixels come from the EXIF preview.)
            let start = at;
            loop {
                let Some(found) = bytes.get(at..).and_then(|rest| memchr::memchr(0xFF, rest))
                else {
                    return truncated();
                };
                at += found;
                match bytes.get(at + 1) {
                    Some(&next) if next != 0x00 && !(0xD0..=0xD7).contains(&next) => break,
                    Some(_) => at += 1,
                    None => return truncated(),
                }
            }
            entropy_bytes += at - start;
        }
    }
    if let Some((width, height)) = frame {
        let blocks = u64::from(width.div_ceil(8)) * u64::from(height.div_ceil(8));
        if (entropy_bytes as u64) * 8 < blocks {
            return Some(format!(
                "its header claims {width}×{height} pixels but it holds data for far fewer"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_wait_for_memory_held_by_others_and_one_oversized_decode_still_runs() {
        let budget = MemoryBudget::new(1 << 30);
        let first = budget.reserve(800 << 20);
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let _second = budget.reserve(800 << 20);
                done.send(budget.in_use()).expect("send");
            });
            // The second 800 MB decode waits while the first holds its memory.
            assert!(
                finished
                    .recv_timeout(std::time::Duration::from_millis(200))
                    .is_err()
            );
            assert_eq!(budget.in_use(), 800 << 20);
            drop(first);
            let held = finished
                .recv()
                .expect("the second ran once the first was done");
            assert_eq!(held, 800 << 20);
        });
        assert_eq!(budget.in_use(), 0);
        // Larger than the whole budget: it runs, alone.
        let alone = budget.reserve(3 << 30);
        assert_eq!(budget.in_use(), 3 << 30);
        drop(alone);
    }
}
