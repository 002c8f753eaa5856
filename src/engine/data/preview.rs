//! The small preview a camera stores inside a JPEG's EXIF block (IFD1: usually 160×120,
//! some phones 320×240 or 512×384). When the network needs only 112 px, decoding that
//! preview instead of the 12-megapixel photo skips nearly all the entropy decoding, which
//! is what bounds a scaled decode (docs/benchmarks.md).
//!
//! A preview can be stale: some tools edit a photo and copy its EXIF block, old preview
//! included. So a preview is used only when it is trusted: it has the photo's shape
//! (within 2 %), and the top sixteenth of the photo, decoded on its own, looks like the
//! top sixteenth of the preview. That catches crops, rotations, letterboxed previews and colour
//! or brightness edits; what it cannot see is a retouch confined to the rest of the photo,
//! which hardly moves an embedding.

use image::RgbImage;
use image::imageops::{FilterType, resize};
use turbojpeg::ScalingFactor;

use super::turbo;

/// Largest mean difference, in 8-bit levels, between the coarse cells of the photo's top
/// band and the preview's for the preview to be trusted. Measured on 60 flowers5-dev photos
/// enlarged to 2000×1500 with 160×120 previews: at most 1.4 (JPEG loss, resampling); the
/// same photos made about 12 levels brighter than their previews: above 6 for 59 of 60 (the
/// other's top was sky already at white, which brightening cannot change).
const BAND_TOLERANCE: f64 = 6.0;

/// Largest preview decoded (1920×1080): bounds what a crafted EXIF block can allocate.
const MAX_PREVIEW_PIXELS: u64 = 1920 * 1080;

/// The photo's shape and the preview's may differ by this share (rounding to whole pixels).
const SHAPE_TOLERANCE: f64 = 0.02;

/// The embedded EXIF preview of a JPEG, decoded, when it is at least `needed` (width,
/// height) and trusted as described in the module documentation; `None` otherwise.
pub(super) fn trusted_preview(
    jpeg: &[u8],
    (width, height): (u32, u32),
    (needed_width, needed_height): (u32, u32),
) -> Option<RgbImage> {
    // A preview is a few hundred pixels a side; a header claiming more is not one.
    let preview = turbo::decode(exif_preview(jpeg)?, ScalingFactor::ONE, MAX_PREVIEW_PIXELS)?;
    let (preview_width, preview_height) = preview.dimensions();
    if preview_width < needed_width || preview_height < needed_height {
        return None;
    }
    let photo_shape = f64::from(width) / f64::from(height.max(1));
    let preview_shape = f64::from(preview_width) / f64::from(preview_height.max(1));
    if (photo_shape / preview_shape - 1.0).abs() > SHAPE_TOLERANCE {
        return None;
    }
    // The top sixteenth of the preview (at least 8 rows), and the same share of the photo
    // at 1/8 scale: 3 ms of a 5-MB photo's 47 ms whole scaled decode.
    let band_rows = (preview_height / 16).max(8).min(preview_height);
    let factor = ScalingFactor::ONE_EIGHTH;
    let scaled_height = factor.scale(height as usize);
    let photo_rows = (band_rows as usize * scaled_height).div_ceil(preview_height as usize);
    let photo_band = turbo::decode_top_rows(jpeg, factor, photo_rows)?;
    let preview_band =
        image::imageops::crop_imm(&preview, 0, 0, preview_width, band_rows).to_image();
    let difference = band_difference(&photo_band, &preview_band);
    (difference <= BAND_TOLERANCE).then_some(preview)
}

/// Mean absolute difference per channel, in 8-bit levels, between two pictures of the same
/// scene compared on a coarse grid (cells of about 4×4 preview pixels), so JPEG noise and
/// resampling average out while a change of colour or content does not.
fn band_difference(photo_band: &RgbImage, preview_band: &RgbImage) -> f64 {
    let columns = (preview_band.width() / 4).max(1);
    let rows = (preview_band.height() / 4).max(1);
    let photo = resize(photo_band, columns, rows, FilterType::Triangle);
    let preview = resize(preview_band, columns, rows, FilterType::Triangle);
    let total: u64 = photo
        .as_raw()
        .iter()
        .zip(preview.as_raw())
        .map(|(a, b)| u64::from(a.abs_diff(*b)))
        .sum();
    total as f64 / photo.as_raw().len().max(1) as f64
}

/// The bytes of the preview JPEG in a JPEG's EXIF block (the first APP1 segment that starts
/// with "Exif"), found by walking the marker segments before the image data and IFD0's
/// link to IFD1. Every offset is bounds-checked: a damaged EXIF block gives `None`.
pub fn exif_preview(jpeg: &[u8]) -> Option<&[u8]> {
    const APP1: u8 = 0xE1;
    const SOS: u8 = 0xDA;
    const EOI: u8 = 0xD9;
    if jpeg.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut at = 2;
    loop {
        while jpeg.get(at) == Some(&0xFF) && jpeg.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        if *jpeg.get(at)? != 0xFF {
            return None;
        }
        let marker = *jpeg.get(at + 1)?;
        if marker == SOS || marker == EOI {
            return None;
        }
        let length = usize::from(u16::from_be_bytes([*jpeg.get(at + 2)?, *jpeg.get(at + 3)?]));
        let segment = jpeg.get(at + 4..(at + 2).checked_add(length)?)?;
        if marker == APP1
            && let Some(tiff) = segment.strip_prefix(b"Exif\0\0")
        {
            return preview_in_tiff(tiff);
        }
        at += 2 + length;
    }
}

/// The preview JPEG named by IFD1's JPEGInterchangeFormat (0x0201) and its length (0x0202).
fn preview_in_tiff(tiff: &[u8]) -> Option<&[u8]> {
    let big_endian = match tiff.get(..4)? {
        [b'M', b'M', 0, 42] => true,
        [b'I', b'I', 42, 0] => false,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u16> {
        let bytes = [*tiff.get(at)?, *tiff.get(at + 1)?];
        Some(if big_endian {
            u16::from_be_bytes(bytes)
        } else {
            u16::from_le_bytes(bytes)
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let bytes = [
            *tiff.get(at)?,
            *tiff.get(at + 1)?,
            *tiff.get(at + 2)?,
            *tiff.get(at + 3)?,
        ];
        Some(if big_endian {
            u32::from_be_bytes(bytes)
        } else {
            u32::from_le_bytes(bytes)
        })
    };
    let ifd0 = u32_at(4)? as usize;
    let ifd0_entries = usize::from(u16_at(ifd0)?);
    let ifd1 = u32_at(ifd0 + 2 + 12 * ifd0_entries)? as usize;
    if ifd1 == 0 {
        return None;
    }
    let (mut offset, mut length) = (None, None);
    for entry in 0..usize::from(u16_at(ifd1)?) {
        let at = ifd1 + 2 + 12 * entry;
        // The value is a LONG (type 4) as the standard says, or a SHORT (type 3).
        let value = match u16_at(at + 2)? {
            3 => u32::from(u16_at(at + 8)?),
            4 => u32_at(at + 8)?,
            _ => continue,
        } as usize;
        match u16_at(at)? {
            0x0201 => offset = Some(value),
            0x0202 => length = Some(value),
            _ => {}
        }
    }
    let (offset, length) = (offset?, length?);
    let preview = tiff.get(offset..offset.checked_add(length)?)?;
    preview.starts_with(&[0xFF, 0xD8]).then_some(preview)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::data::decode::decode_rgb_bytes_sized;
    use crate::engine::data::{DEFAULT_MAX_PIXELS, TargetSize};
    use crate::engine::synthetic::{class_image, jpeg_with_exif_preview};

    fn encode(image: &RgbImage, quality: u8) -> Vec<u8> {
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality)
            .encode_image(image)
            .expect("encode");
        bytes
    }

    /// A photo of `width`×`height` and its JPEG, with the class pattern enlarged.
    fn photo(width: u32, height: u32) -> (RgbImage, Vec<u8>) {
        let mut rng = fastrand::Rng::with_seed(11);
        let pattern = class_image(2, 5, 96, &mut rng);
        let photo = resize(&pattern, width, height, FilterType::Triangle);
        let jpeg = encode(&photo, 90);
        (photo, jpeg)
    }

    fn input(jpeg: &[u8]) -> RgbImage {
        decode_rgb_bytes_sized(jpeg, DEFAULT_MAX_PIXELS, TargetSize::ShortSide(112))
            .expect("decodes")
    }

    /// Issue #39 item 5: the default model's 144-px input takes a phone's 160×120 preview
    /// (5/6 of the 192×144 it needs; enlarged by the input's resize), as retrieval from
    /// such previews measured as good as from the photos; a smaller one is refused, and a
    /// thumbnail box, which a person looks at, is never filled from a smaller preview.
    #[test]
    fn a_preview_a_little_smaller_than_a_network_input_serves_it_but_not_a_thumbnail() {
        let (picture, jpeg) = photo(2400, 1800);
        let with_preview = |width: u32, height: u32| {
            let preview = encode(&resize(&picture, width, height, FilterType::Triangle), 75);
            jpeg_with_exif_preview(&jpeg, &preview, 1).expect("fits")
        };
        let decoded = |jpeg: &[u8], target: TargetSize| {
            decode_rgb_bytes_sized(jpeg, DEFAULT_MAX_PIXELS, target)
                .expect("decodes")
                .dimensions()
        };
        let phone = with_preview(160, 120);
        assert_eq!(decoded(&phone, TargetSize::ShortSide(144)), (160, 120));
        assert_eq!(
            decoded(&phone, TargetSize::ShortSide(160)),
            (300, 225),
            "120 rows are under 5/6 of 160: the photo at 1/8"
        );
        assert_eq!(
            decoded(&phone, TargetSize::LongSide(176)),
            (300, 225),
            "a thumbnail of 176 px is not made from a 160-px preview"
        );
        assert_eq!(decoded(&phone, TargetSize::LongSide(160)), (160, 120));
        let smaller = with_preview(128, 96);
        assert_eq!(
            decoded(&smaller, TargetSize::ShortSide(144)),
            (300, 225),
            "96 rows are too few for a 144-px input"
        );
    }

    #[test]
    fn a_matching_preview_is_used_and_a_stale_or_misshapen_one_is_not() {
        let (picture, jpeg) = photo(2400, 1800);
        // Without a preview: 1/8 in the DCT.
        assert_eq!(input(&jpeg).dimensions(), (300, 225));

        let preview = encode(&resize(&picture, 160, 120, FilterType::Triangle), 75);
        let with_preview = jpeg_with_exif_preview(&jpeg, &preview, 1).expect("fits");
        assert_eq!(exif_preview(&with_preview), Some(preview.as_slice()));
        assert_eq!(
            input(&with_preview).dimensions(),
            (160, 120),
            "the preview is used"
        );

        // Edited after the preview was written: 15 % brighter.
        let mut brighter = picture.clone();
        for pixel in brighter.pixels_mut() {
            for channel in &mut pixel.0 {
                *channel = (f32::from(*channel) * 1.15).min(255.0) as u8;
            }
        }
        let stale = jpeg_with_exif_preview(&encode(&brighter, 90), &preview, 1).expect("fits");
        assert_eq!(
            input(&stale).dimensions(),
            (300, 225),
            "a stale preview is ignored"
        );

        // Cropped to another 4:3 view after the preview was written.
        let cropped = resize(
            &image::imageops::crop_imm(&picture, 600, 450, 1200, 900).to_image(),
            2400,
            1800,
            FilterType::Triangle,
        );
        let stale = jpeg_with_exif_preview(&encode(&cropped, 90), &preview, 1).expect("fits");
        assert_eq!(
            input(&stale).dimensions(),
            (300, 225),
            "a cropped photo's preview"
        );

        // A 16:9 photo with a letterboxed 4:3 preview.
        let (wide, wide_jpeg) = photo(3200, 1800);
        let mut letterboxed = RgbImage::new(160, 120);
        image::imageops::replace(
            &mut letterboxed,
            &resize(&wide, 160, 90, FilterType::Triangle),
            0,
            15,
        );
        let boxed = jpeg_with_exif_preview(&wide_jpeg, &encode(&letterboxed, 75), 1).expect("fits");
        assert_eq!(
            input(&boxed).dimensions(),
            (400, 225),
            "a letterboxed preview"
        );

        // Too small for the input: a 96×72 preview.
        let tiny = encode(&resize(&picture, 96, 72, FilterType::Triangle), 75);
        let small = jpeg_with_exif_preview(&jpeg, &tiny, 1).expect("fits");
        assert_eq!(
            input(&small).dimensions(),
            (300, 225),
            "a preview too small"
        );
    }

    #[test]
    fn a_preview_is_turned_upright_like_its_photo() {
        let (picture, jpeg) = photo(2400, 1800);
        let preview = encode(&resize(&picture, 160, 120, FilterType::Triangle), 75);
        // Orientation 6: turn 90° clockwise to view.
        let turned = jpeg_with_exif_preview(&jpeg, &preview, 6).expect("fits");
        assert_eq!(input(&turned).dimensions(), (120, 160));
    }

    #[test]
    fn a_damaged_exif_block_gives_no_preview_and_never_panics() {
        let (picture, jpeg) = photo(800, 600);
        let preview = encode(&resize(&picture, 160, 120, FilterType::Triangle), 75);
        let with_preview = jpeg_with_exif_preview(&jpeg, &preview, 1).expect("fits");
        // Every prefix of the file, and every single-byte change in the EXIF header.
        for end in 0..200 {
            let _ = exif_preview(&with_preview[..end]);
        }
        for at in 4..90 {
            let mut damaged = with_preview.clone();
            damaged[at] ^= 0xA5;
            if let Some(found) = exif_preview(&damaged) {
                assert!(found.starts_with(&[0xFF, 0xD8]));
            }
        }
        // The preview's length pointing past the segment's end.
        let mut past_end = with_preview.clone();
        let length_at = 2 + 2 + 2 + 6 + 26 + 2 + 2 * 12 + 8;
        past_end[length_at..length_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(exif_preview(&past_end), None);
        // A preview whose header claims 60000×45000 pixels (a decompression bomb) is not
        // decoded: the photo is, scaled.
        let mut bomb = preview.clone();
        let sof = bomb
            .windows(2)
            .position(|pair| pair == [0xFF, 0xC0])
            .expect("baseline frame header");
        bomb[sof + 5..sof + 9].copy_from_slice(&[0xAF, 0xC8, 0xEA, 0x60]);
        let (_, big_jpeg) = photo(2400, 1800);
        let with_bomb = jpeg_with_exif_preview(&big_jpeg, &bomb, 1).expect("fits");
        assert_eq!(input(&with_bomb).dimensions(), (300, 225));
        // No EXIF at all, or not a JPEG.
        assert_eq!(exif_preview(&jpeg), None);
        assert_eq!(exif_preview(b"not a jpeg"), None);
    }

    #[test]
    fn a_little_endian_exif_block_is_read_too() {
        let preview: &[u8] = &[0xFF, 0xD8, 0xFF, 0xD9];
        let mut tiff = b"II\x2a\0".to_vec();
        tiff.extend_from_slice(&8u32.to_le_bytes());
        tiff.extend_from_slice(&0u16.to_le_bytes()); // IFD0: no entries
        tiff.extend_from_slice(&14u32.to_le_bytes()); // IFD1 at 14
        tiff.extend_from_slice(&2u16.to_le_bytes());
        for (tag, value) in [(0x0201u16, 44u32), (0x0202, preview.len() as u32)] {
            tiff.extend_from_slice(&tag.to_le_bytes());
            tiff.extend_from_slice(&4u16.to_le_bytes());
            tiff.extend_from_slice(&1u32.to_le_bytes());
            tiff.extend_from_slice(&value.to_le_bytes());
        }
        tiff.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(tiff.len(), 44);
        tiff.extend_from_slice(preview);
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE1];
        jpeg.extend_from_slice(&((2 + 6 + tiff.len()) as u16).to_be_bytes());
        jpeg.extend_from_slice(b"Exif\0\0");
        jpeg.extend(tiff);
        jpeg.extend_from_slice(&[0xFF, 0xD9]);
        assert_eq!(exif_preview(&jpeg), Some(preview));
    }
}
