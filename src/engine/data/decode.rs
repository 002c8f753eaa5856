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
