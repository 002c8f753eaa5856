//! JPEG decoding through libjpeg-turbo (built from the `turbojpeg` crate's vendored source
//! with its SIMD code): scaled in the DCT by 1/2, 1/4 or 1/8, and — for checking an
//! embedded preview against the photo — only the top rows, which stops entropy decoding
//! there instead of running through the whole file.
//!
//! The `turbojpeg` crate wraps everything but cropped decoding; that one call sequence goes
//! through its raw bindings below, the only `unsafe` in this module.
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::ffi::c_int;

use image::RgbImage;
use turbojpeg::{ScalingFactor, raw};

/// Most progressive scans a JPEG may have: bounds the work a crafted file can ask for
/// (libjpeg-turbo's own default is no limit; cameras write at most a dozen).
const SCAN_LIMIT: c_int = 500;

/// Decodes a whole JPEG scaled by `factor` into RGB (grey JPEGs too); `None` when the
/// scaled image would have more than `max_pixels` pixels or libjpeg-turbo cannot decode it
/// (e.g. CMYK, or damage: libjpeg-turbo's warnings count as failures), so the caller can
/// fall back.
pub(super) fn decode(bytes: &[u8], factor: ScalingFactor, max_pixels: u64) -> Option<RgbImage> {
    thread_local! {
        // One decompressor per loader thread, made on first use.
        static DECOMPRESSOR: RefCell<Option<turbojpeg::Decompressor>> =
            const { RefCell::new(None) };
    }
    DECOMPRESSOR.with_borrow_mut(|slot| {
        if slot.is_none() {
            let mut decompressor = turbojpeg::Decompressor::new().ok()?;
            decompressor.set_scan_limit(SCAN_LIMIT as u32).ok()?;
            *slot = Some(decompressor);
        }
        let decompressor = slot.as_mut()?;
        decompressor.set_scaling_factor(factor).ok()?;
        let header = decompressor.read_header(bytes).ok()?.scaled(factor);
        if (header.width as u64).saturating_mul(header.height as u64) > max_pixels {
            return None;
        }
        let mut image = turbojpeg::Image {
            pixels: vec![0u8; 3 * header.width * header.height],
            width: header.width,
            pitch: 3 * header.width,
            height: header.height,
            format: turbojpeg::PixelFormat::RGB,
        };
        decompressor.decompress(bytes, image.as_deref_mut()).ok()?;
        RgbImage::from_raw(
            u32::try_from(header.width).ok()?,
            u32::try_from(header.height).ok()?,
            image.pixels,
        )
    })
}

/// Decodes only the top `rows` rows (after scaling by `factor`, at most the whole height)
/// of a JPEG, the full width. For a baseline JPEG the entropy-coded data below them is
/// never decoded, so this costs about `rows / height` of a whole scaled decode.
pub(super) fn decode_top_rows(
    bytes: &[u8],
    factor: ScalingFactor,
    rows: usize,
) -> Option<RgbImage> {
    /// Destroys the handle however the function returns.
    struct Handle(raw::tjhandle);
    impl Drop for Handle {
        fn drop(&mut self) {
            // SAFETY: the handle came from tj3Init, is not null and is destroyed once.
            unsafe { raw::tj3Destroy(self.0) }
        }
    }
    let num = c_int::try_from(factor.num()).ok()?;
    let denom = c_int::try_from(factor.denom()).ok()?;
    // SAFETY: tj3Init takes an init type and returns a new handle, or null on failure.
    let handle = unsafe { raw::tj3Init(raw::TJINIT_TJINIT_DECOMPRESS as c_int) };
    if handle.is_null() {
        return None;
    }
    let handle = Handle(handle);
    let ok = |status: c_int| (status == 0).then_some(());
    let size = bytes.len().try_into().ok()?;
    // SAFETY (each call below): the handle is valid for the whole block; `bytes` is read
    // only, for its own length; the destination buffer is allocated to exactly
    // pitch × cropped height, which is what tj3Decompress8 writes once the cropping region
    // is set (its documented contract), and lives past the call.
    unsafe {
        ok(raw::tj3Set(
            handle.0,
            raw::TJPARAM_TJPARAM_SCANLIMIT as c_int,
            SCAN_LIMIT,
        ))?;
        ok(raw::tj3DecompressHeader(handle.0, bytes.as_ptr(), size))?;
        ok(raw::tj3SetScalingFactor(
            handle.0,
            raw::tjscalingfactor { num, denom },
        ))?;
        let width = raw::tj3Get(handle.0, raw::TJPARAM_TJPARAM_JPEGWIDTH as c_int);
        let height = raw::tj3Get(handle.0, raw::TJPARAM_TJPARAM_JPEGHEIGHT as c_int);
        let (width, height) = (usize::try_from(width).ok()?, usize::try_from(height).ok()?);
        let (width, height) = (factor.scale(width), factor.scale(height));
        let rows = rows.clamp(1, height.max(1));
        ok(raw::tj3SetCroppingRegion(
            handle.0,
            raw::tjregion {
                x: 0,
                y: 0,
                w: 0,
                h: c_int::try_from(rows).ok()?,
            },
        ))?;
        let pitch = 3 * width;
        let mut pixels = vec![0u8; pitch * rows];
        ok(raw::tj3Decompress8(
            handle.0,
            bytes.as_ptr(),
            size,
            pixels.as_mut_ptr(),
            c_int::try_from(pitch).ok()?,
            raw::TJPF_TJPF_RGB,
        ))?;
        RgbImage::from_raw(
            u32::try_from(width).ok()?,
            u32::try_from(rows).ok()?,
            pixels,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let image = RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
        });
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 85)
            .encode_image(&image)
            .expect("encode");
        bytes
    }

    #[test]
    fn decoding_respects_the_pixel_limit_and_the_scale() {
        let bytes = jpeg(160, 120);
        assert!(decode(&bytes, ScalingFactor::ONE, 160 * 120 - 1).is_none());
        let whole = decode(&bytes, ScalingFactor::ONE, 160 * 120).expect("decodes");
        assert_eq!(whole.dimensions(), (160, 120));
        let quarter = decode(&bytes, ScalingFactor::ONE_QUARTER, 160 * 120).expect("decodes");
        assert_eq!(quarter.dimensions(), (40, 30));
        assert!(decode(b"not a jpeg", ScalingFactor::ONE, u64::MAX).is_none());
    }

    #[test]
    fn a_cmyk_jpeg_is_left_to_the_fallback_decoder() {
        let (width, height) = (1024usize, 768usize);
        let cmyk: Vec<u8> = (0..width * height)
            .flat_map(|i| [(i % 200) as u8, 40, 80, 10])
            .collect();
        let mut compressor = turbojpeg::Compressor::new().expect("compressor");
        let bytes = compressor
            .compress_to_vec(turbojpeg::Image {
                pixels: cmyk.as_slice(),
                width,
                pitch: 4 * width,
                height,
                format: turbojpeg::PixelFormat::CMYK,
            })
            .expect("compress");
        assert!(decode(&bytes, ScalingFactor::ONE_EIGHTH, u64::MAX).is_none());
        // The `image` crate decodes it whole instead.
        let image = super::super::decode::decode_rgb_bytes_sized(
            &bytes,
            super::super::DEFAULT_MAX_PIXELS,
            super::super::TargetSize::ShortSide(64),
        )
        .expect("decoded by the fallback");
        assert_eq!(image.dimensions(), (1024, 768));
    }

    #[test]
    fn the_top_rows_are_the_top_of_the_whole_decode() {
        let bytes = jpeg(640, 480);
        let whole = decode(&bytes, ScalingFactor::ONE_EIGHTH, u64::MAX).expect("decodes");
        let top = decode_top_rows(&bytes, ScalingFactor::ONE_EIGHTH, 10).expect("decodes");
        assert_eq!(top.dimensions(), (80, 10));
        for (x, y, pixel) in top.enumerate_pixels() {
            assert_eq!(pixel, whole.get_pixel(x, y));
        }
        // More rows than there are: the whole height.
        let all = decode_top_rows(&bytes, ScalingFactor::ONE_EIGHTH, 1000).expect("decodes");
        assert_eq!(all.dimensions(), (80, 60));
        // A file cut short inside the data is refused, not filled with grey.
        assert!(
            decode_top_rows(&bytes[..bytes.len() / 2], ScalingFactor::ONE_EIGHTH, 60).is_none()
        );
    }
}
