//! Likeness' own code (copied as it was before 2026-11-30) against crates: FNV-1a against
//! XXH3 for checksums, the EXIF preview walk against kamadak-exif, the thumbnail shrink
//! against fast_image_resize, the exclude matcher against globset, and walkdir's listing.

use image::RgbImage;
use std::time::Instant;
/// The bytes of the preview JPEG in a JPEG's EXIF block (the first APP1 segment that starts
/// with "Exif"), found by walking the marker segments before the image data and IFD0's
/// link to IFD1. Every offset is bounds-checked: a damaged EXIF block gives `None`.
fn exif_preview(jpeg: &[u8]) -> Option<&[u8]> {
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

fn jpeg_with_exif_preview(jpeg: &[u8], preview: &[u8], orientation: u16) -> Option<Vec<u8>> {
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
fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    // matches[i][j]: pattern[i..] matches text[j..]; filled from the ends.
    let mut matches = vec![vec![false; text.len() + 1]; pattern.len() + 1];
    matches[pattern.len()][text.len()] = true;
    for i in (0..pattern.len()).rev() {
        let double_star = pattern[i] == '*' && pattern.get(i + 1) == Some(&'*');
        for j in (0..=text.len()).rev() {
            matches[i][j] = match pattern[i] {
                '*' if double_star => {
                    // `**` (and a `/` after it, optionally) matches any run of characters.
                    let after = if pattern.get(i + 2) == Some(&'/') {
                        i + 3
                    } else {
                        i + 2
                    };
                    (j..=text.len()).any(|k| matches[after.min(pattern.len())][k])
                        || (after != i + 2 && (j..=text.len()).any(|k| matches[i + 2][k]))
                }
                '*' => matches[i + 1][j] || (j < text.len() && text[j] != '/' && matches[i][j + 1]),
                '?' => j < text.len() && text[j] != '/' && matches[i + 1][j + 1],
                c => j < text.len() && text[j] == c && matches[i + 1][j + 1],
            };
        }
    }
    matches[0][0]
}
fn shrink_sharp(image: &RgbImage, side: u32) -> RgbImage {
    let (width, height) = image.dimensions();
    let scale = (side as f32 / width.max(height) as f32).min(1.0);
    if scale >= 1.0 {
        return image.clone();
    }
    let w = ((width as f32 * scale).round() as u32).max(1);
    let h = ((height as f32 * scale).round() as u32).max(1);
    if width > w * 4 {
        let intermediate = image::imageops::thumbnail(image, w * 2, h * 2);
        image::imageops::resize(&intermediate, w, h, image::imageops::FilterType::Lanczos3)
    } else {
        image::imageops::resize(image, w, h, image::imageops::FilterType::Lanczos3)
    }
}

struct Fnv(u64);
impl Fnv { fn write(&mut self, b: &[u8]) { for &x in b { self.0 ^= x as u64; self.0 = self.0.wrapping_mul(0x100000001b3); } } }

fn time<T>(label: &str, reps: usize, mut f: impl FnMut() -> T) -> f64 {
    let _ = f();
    let t = Instant::now();
    for _ in 0..reps { std::hint::black_box(f()); }
    let per = t.elapsed().as_secs_f64() / reps as f64;
    println!("{label}: {:.3} ms", per * 1e3);
    per
}

fn main() {
    // 1. Checksums over 256 MiB (a 1M-photo index of 512-d vectors is 2 GiB: x8).
    let data: Vec<u8> = (0..256u64 << 20).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let fnv = time("fnv1a 256 MiB", 2, || { let mut h = Fnv(0xcbf29ce484222325); h.write(&data); h.0 });
    let xxh = time("xxh3 256 MiB", 5, || xxhash_rust::xxh3::xxh3_64(&data));
    println!("checksum of a 2 GiB index: fnv1a {:.2} s, xxh3 {:.3} s ({:.0}x)", fnv * 8.0, xxh * 8.0, fnv / xxh);

    // 2. EXIF preview: ours against kamadak-exif, on a photo with a 160x120 preview.
    let photo = std::fs::read(std::env::args().nth(1).expect("a jpeg")).expect("read");
    let img = image::load_from_memory(&photo).expect("decode").to_rgb8();
    let small = image::imageops::thumbnail(&img, 160, 120);
    let mut prev = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut prev, 80).encode_image(&small).expect("enc");
    let with = jpeg_with_exif_preview(&photo, &prev, 1).expect("exif");
    let ours = time("ours: find the EXIF preview", 20000, || exif_preview(&with).map(|p| p.len()));
    let kamadak = time("kamadak-exif: find the EXIF preview", 20000, || {
        let exif = exif::Reader::new().read_from_container(&mut std::io::Cursor::new(&with)).ok()?;
        let off = exif.get_field(exif::Tag::JPEGInterchangeFormat, exif::In::THUMBNAIL)?.value.get_uint(0)?;
        let len = exif.get_field(exif::Tag::JPEGInterchangeFormatLength, exif::In::THUMBNAIL)?.value.get_uint(0)?;
        Some((off + len) as usize)
    });
    println!("exif: kamadak/ours = {:.1}x; both found it: {:?} {:?}", kamadak / ours, exif_preview(&with).map(|p| p.len()), prev.len());

    // 3. Thumbnails: shrink a 500x375-ish decoded photo (after DCT scaling) to 256 px.
    let side = 256u32;
    // A photo as the thumbnailer gets it: a 12 MP JPEG decoded at 1/4 scale in the DCT.
    let img = image::imageops::resize(&img, 1000, 750, image::imageops::FilterType::Triangle);
    let ours_t = time("ours: shrink_sharp to 256", 50, || shrink_sharp(&img, side));
    let (w, h) = img.dimensions();
    let scale = side as f32 / w.max(h) as f32;
    let (tw, th) = (((w as f32 * scale).round() as u32).max(1), ((h as f32 * scale).round() as u32).max(1));
    let mut resizer = fast_image_resize::Resizer::new();
    let src = fast_image_resize::images::Image::from_vec_u8(w, h, img.as_raw().clone(), fast_image_resize::PixelType::U8x3).unwrap();
    let fir = time("fast_image_resize: Lanczos3 to 256", 50, || {
        let mut dst = fast_image_resize::images::Image::new(tw, th, fast_image_resize::PixelType::U8x3);
        resizer.resize(&src, &mut dst, &fast_image_resize::ResizeOptions::new().resize_alg(fast_image_resize::ResizeAlg::Convolution(fast_image_resize::FilterType::Lanczos3))).unwrap();
        dst.buffer().len()
    });
    let dec = time("decode the photo (image crate, full size)", 20, || image::load_from_memory(&photo).map(|i| i.width()));
    println!("thumbnail: ours {:.2} ms, fast_image_resize {:.2} ms ({:.1}x), decode {:.2} ms; input {}x{}", ours_t*1e3, fir*1e3, ours_t/fir, dec*1e3, w, h);

    // 4. Exclude patterns: ours against globset over 100k paths, 3 patterns.
    let patterns = ["**/.thumbnails/**", "*.tmp", "exports/**"];
    let paths: Vec<String> = (0..100_000).map(|i| format!("trips/2024/day_{:03}/IMG_{i:05}.jpg", i % 365)).collect();
    let ours_g = time("ours: 100k paths x 3 patterns", 3, || paths.iter().filter(|p| patterns.iter().any(|g| glob_match(g, p))).count());
    let mut b = globset::GlobSetBuilder::new();
    for p in patterns { b.add(globset::GlobBuilder::new(p).literal_separator(true).build().unwrap()); }
    let set = b.build().unwrap();
    let gs = time("globset: 100k paths x 3 patterns", 3, || paths.iter().filter(|p| set.is_match(p.as_str())).count());
    println!("globs: ours {:.1} ms, globset {:.1} ms ({:.1}x) per 100k paths", ours_g*1e3, gs*1e3, ours_g/gs);
    // Same answers on a few cases.
    for (g, t) in [("**/.thumbnails/**", "a/.thumbnails/x.jpg"), ("*.tmp", "a/b.tmp"), ("*.tmp", "b.tmp"), ("exports/**", "exports/a/b.jpg"), ("**/*.jpg", "x.jpg"), ("a/*/c", "a/b/c"), ("a/*/c", "a/b/d/c")] {
        let gb = globset::GlobBuilder::new(g).literal_separator(true).build().unwrap().compile_matcher();
        println!("  {g:>20} {t:>22}: ours {} globset {}", glob_match(g, t), gb.is_match(t));
    }
    // 5. Walking a folder tree: walkdir, for scale.
    if let Some(root) = std::env::args().nth(2) {
        let n = time("walkdir: list the tree", 5, || walkdir::WalkDir::new(&root).into_iter().filter_map(Result::ok).filter(|e| e.file_type().is_file()).count());
        println!("walkdir {:.1} ms", n*1e3);
    }
}
