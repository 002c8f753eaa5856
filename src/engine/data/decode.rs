//! Decoding one image file (or bytes) into 8-bit RGB, EXIF orientation applied.

use std::path::Path;

use image::{ImageDecoder, RgbImage};

use super::scan::check_pixel_limit;

/// Decodes one image file into 8-bit RGB: EXIF orientation applied; grayscale, alpha and
/// 16-bit converted; GIFs give their first frame. The error is a reason to show the user.
pub fn decode_rgb(path: &Path, max_pixels: u64) -> Result<RgbImage, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot be read ({e})"))?;
    decode_rgb_bytes(&bytes, max_pixels)
}

/// As [`decode_rgb`], from bytes in memory (a pasted or dropped image).
pub fn decode_rgb_bytes(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, String> {
    if bytes.is_empty() {
        return Err("empty file (0 bytes)".into());
    }
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot be read ({e})"))?;
    if reader.format().is_none() {
        return Err("not a recognised image (unknown file contents)".into());
    }
    if reader.format() == Some(image::ImageFormat::Jpeg) && !jpeg_is_complete(bytes) {
        // The JPEG decoder would fill the missing part with grey and say nothing; a damaged
        // file is reported the way a truncated PNG or WebP is.
        return Err("damaged JPEG: the file ends before the image data does (truncated)".into());
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
    let mut image = image::DynamicImage::from_decoder(decoder)
        .map_err(|e| format!("not a readable image ({e})"))?;
    if let Some(orientation) = orientation {
        image.apply_orientation(orientation);
    }
    Ok(image.into_rgb8())
}

/// Whether a JPEG's marker structure runs to its end-of-image marker: segments are
/// walked by their lengths (so an EXIF thumbnail's own markers are skipped), and the
/// entropy-coded data after each start-of-scan is searched for the next marker (0xFF
/// followed by anything but 0x00 or a restart marker). A file cut short ends before EOI.
pub fn jpeg_is_complete(bytes: &[u8]) -> bool {
    const SOI: u8 = 0xD8;
    const EOI: u8 = 0xD9;
    const SOS: u8 = 0xDA;
    if bytes.get(..2) != Some(&[0xFF, SOI]) {
        return false;
    }
    let mut at = 2;
    loop {
        // Skip fill bytes before a marker.
        while bytes.get(at) == Some(&0xFF) && bytes.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        let (Some(&0xFF), Some(&marker)) = (bytes.get(at), bytes.get(at + 1)) else {
            return false;
        };
        at += 2;
        match marker {
            EOI => return true,
            // Markers without a length.
            0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let Some(length) = bytes
            .get(at..at + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        else {
            return false;
        };
        if length < 2 {
            return false;
        }
        at += length;
        if at > bytes.len() {
            return false;
        }
        if marker == SOS {
            // Entropy-coded data runs to the next real marker.
            loop {
                match (bytes.get(at), bytes.get(at + 1)) {
                    (Some(&0xFF), Some(&next))
                        if next != 0x00 && !(0xD0..=0xD7).contains(&next) =>
                    {
                        break;
                    }
                    (Some(_), Some(_)) => at += 1,
                    _ => return false,
                }
            }
        }
    }
}
