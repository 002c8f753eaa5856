//! Thumbnails: decoded and shrunk on background threads at the size they are shown (in
//! physical pixels, so they stay sharp on HiDPI screens), uploaded to the GPU once, kept
//! within a memory budget and evicted by last use.
//!
//! Small sizes are also kept on disk, keyed by the photo's path, size and modification
//! time, so a reopened index shows its grid at once instead of decoding every photo again.
//! The large preview is never written to disk.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crossbeam_channel::{Receiver, Sender};
use image::RgbImage;

use crate::engine::data::{DEFAULT_MAX_PIXELS, TargetSize, decode_rgb_sized};

/// Longest sides a thumbnail is made at: a request is rounded up to the next one, so a
/// photo shown at similar sizes is decoded once.
const SIZE_STEPS_PX: [u32; 5] = [128, 256, 512, 1024, 2048];
/// Largest side kept in the disk cache (bigger ones are previews, made on demand).
const DISK_CACHE_MAX_SIDE_PX: u32 = 512;
/// JPEG quality of the disk cache: indistinguishable at thumbnail size, small on disk.
const DISK_CACHE_QUALITY: u8 = 90;
/// Texture memory the cache may hold (RGBA bytes).
pub const DEFAULT_BUDGET_BYTES: usize = 256 << 20;
/// Finished thumbnails uploaded per frame, so a burst never makes one frame long.
const UPLOADS_PER_FRAME: usize = 8;
const LOADER_THREADS: usize = 2;

/// The thumbnail side (pixels) to ask for to show an image `points` wide on a screen with
/// `pixels_per_point`.
pub fn side_for(points: f32, pixels_per_point: f32) -> u32 {
    let needed = (points * pixels_per_point).ceil().max(1.0) as u32;
    SIZE_STEPS_PX
        .iter()
        .copied()
        .find(|&side| side >= needed)
        .unwrap_or(SIZE_STEPS_PX[SIZE_STEPS_PX.len() - 1])
}

/// What the cache has for a path at a size.
pub enum Thumbnail<'a> {
    Loading,
    Ready(&'a egui::TextureHandle),
    Failed(&'a str),
}

enum Entry {
    Loading,
    Ready {
        texture: egui::TextureHandle,
        bytes: usize,
        last_used: u64,
    },
    Failed(String),
}

type Key = (PathBuf, u32);
type Finished = (Key, Result<egui::ColorImage, String>);

/// The cache; call [`ThumbnailCache::poll`] once per frame.
pub struct ThumbnailCache {
    requests: Sender<Key>,
    finished: Receiver<Finished>,
    entries: HashMap<Key, Entry>,
    budget_bytes: usize,
    used_bytes: usize,
    frame: u64,
}

impl ThumbnailCache {
    /// Starts the loader threads; `disk_cache` is the folder for small thumbnails (`None`:
    /// memory only); `wake` asks for a repaint when a thumbnail is ready.
    pub fn new(
        budget_bytes: usize,
        disk_cache: Option<PathBuf>,
        wake: impl Fn() + Send + Sync + Clone + 'static,
    ) -> Self {
        let (requests, request_receiver) = crossbeam_channel::bounded::<Key>(512);
        let (finished_sender, finished) = crossbeam_channel::bounded(256);
        for _ in 0..LOADER_THREADS {
            let request_receiver = request_receiver.clone();
            let finished_sender = finished_sender.clone();
            let wake = wake.clone();
            let disk_cache = disk_cache.clone();
            std::thread::Builder::new()
                .name("likeness-thumbnails".into())
                .spawn(move || {
                    for (path, side) in request_receiver.iter() {
                        let result = load_thumbnail(&path, side, disk_cache.as_deref());
                        if finished_sender.send(((path, side), result)).is_err() {
                            break;
                        }
                        wake();
                    }
                })
                .ok();
        }
        Self {
            requests,
            finished,
            entries: HashMap::new(),
            budget_bytes,
            used_bytes: 0,
            frame: 0,
        }
    }

    /// The thumbnail of `path` with longest side `side` (see [`side_for`]), asking for it
    /// to be loaded the first time.
    pub fn get(&mut self, path: &Path, side: u32) -> Thumbnail<'_> {
        let key = (path.to_path_buf(), side);
        if !self.entries.contains_key(&key) {
            // A full queue means many requests are pending; ask again next frame.
            if self.requests.try_send(key.clone()).is_ok() {
                self.entries.insert(key, Entry::Loading);
            }
            return Thumbnail::Loading;
        }
        let frame = self.frame;
        match self.entries.get_mut(&key) {
            Some(Entry::Ready {
                texture, last_used, ..
            }) => {
                *last_used = frame;
                Thumbnail::Ready(texture)
            }
            Some(Entry::Failed(reason)) => Thumbnail::Failed(reason),
            _ => Thumbnail::Loading,
        }
    }

    /// A texture of `path` already in memory at any size, largest first: shown while the
    /// requested size loads.
    pub fn any_ready(&mut self, path: &Path) -> Option<egui::TextureHandle> {
        let frame = self.frame;
        self.entries
            .iter_mut()
            .filter(|((p, _), _)| p == path)
            .filter_map(|((_, side), entry)| match entry {
                Entry::Ready {
                    texture, last_used, ..
                } => Some((*side, texture, last_used)),
                _ => None,
            })
            .max_by_key(|(side, _, _)| *side)
            .map(|(_, texture, last_used)| {
                *last_used = frame;
                texture.clone()
            })
    }

    /// Uploads a few finished thumbnails and evicts the least recently used beyond the
    /// budget. Returns whether thumbnails are still pending.
    pub fn poll(&mut self, ctx: &egui::Context) -> bool {
        self.frame += 1;
        for (key, result) in self.finished.try_iter().take(UPLOADS_PER_FRAME) {
            let entry = match result {
                Ok(image) => {
                    let bytes = image.pixels.len() * 4;
                    let texture = ctx.load_texture(
                        format!("{}@{}", key.0.display(), key.1),
                        image,
                        egui::TextureOptions::LINEAR,
                    );
                    self.used_bytes += bytes;
                    Entry::Ready {
                        texture,
                        bytes,
                        last_used: self.frame,
                    }
                }
                Err(reason) => Entry::Failed(reason),
            };
            if let Some(Entry::Ready { bytes, .. }) = self.entries.insert(key, entry) {
                self.used_bytes -= bytes;
            }
        }
        self.evict();
        !self.finished.is_empty() || self.entries.values().any(|e| matches!(e, Entry::Loading))
    }

    fn evict(&mut self) {
        if self.used_bytes <= self.budget_bytes {
            return;
        }
        let mut ready: Vec<(u64, Key, usize)> = self
            .entries
            .iter()
            .filter_map(|(key, entry)| match entry {
                // Never evict what this frame shows.
                Entry::Ready {
                    last_used, bytes, ..
                } if *last_used < self.frame => Some((*last_used, key.clone(), *bytes)),
                _ => None,
            })
            .collect();
        ready.sort();
        for (_, key, bytes) in ready {
            if self.used_bytes <= self.budget_bytes {
                break;
            }
            self.entries.remove(&key);
            self.used_bytes -= bytes;
        }
    }

    /// Thumbnails asked for and not decoded yet.
    pub fn pending(&self) -> usize {
        self.entries
            .values()
            .filter(|e| matches!(e, Entry::Loading))
            .count()
    }

    /// Texture bytes held now.
    pub fn used_bytes(&self) -> usize {
        self.used_bytes
    }

    /// Thumbnails held (loaded, loading or failed).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The sides (pixels) held for `path`, smallest first (tests check what was asked for).
    pub fn sides_of(&self, path: &Path) -> Vec<u32> {
        let mut sides: Vec<u32> = self
            .entries
            .keys()
            .filter(|(p, _)| p == path)
            .map(|(_, side)| *side)
            .collect();
        sides.sort_unstable();
        sides
    }
}

/// A thumbnail from the disk cache when it is there and current, otherwise decoded,
/// shrunk and (for small sides) written to the disk cache.
fn load_thumbnail(
    path: &Path,
    side: u32,
    disk_cache: Option<&Path>,
) -> Result<egui::ColorImage, String> {
    let cache_file = disk_cache
        .filter(|_| side <= DISK_CACHE_MAX_SIDE_PX)
        .and_then(|folder| disk_cache_file(folder, path, side));
    if let Some(file) = &cache_file
        && let Ok(image) = image::open(file)
    {
        return Ok(color_image(&image.into_rgb8()));
    }
    let image = shrink_sharp(
        &decode_rgb_sized(path, DEFAULT_MAX_PIXELS, TargetSize::LongSide(side))?,
        side,
    );
    if let Some(file) = &cache_file {
        // A cache that cannot be written only costs speed next time.
        write_disk_cache(file, &image).ok();
    }
    Ok(color_image(&image))
}

/// The cache file of `path` at `side`: named by a hash of the path, its size and its
/// modification time, so a changed photo gets a new thumbnail. `None` when the photo's
/// metadata cannot be read.
pub fn disk_cache_file(folder: &Path, path: &Path, side: u32) -> Option<PathBuf> {
    let hash = crate::engine::files::stamp_hash(path, &[&side.to_le_bytes()])?;
    Some(folder.join(format!("{}.jpg", hash.hex())))
}

/// Writes the thumbnail through a temporary file, so a killed write never leaves a
/// truncated cache entry under the final name.
fn write_disk_cache(file: &Path, image: &RgbImage) -> std::io::Result<()> {
    let folder = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(folder)?;
    let mut temporary = tempfile_in(folder)?;
    let mut encoded = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut encoded, DISK_CACHE_QUALITY)
        .encode_image(image)
        .map_err(std::io::Error::other)?;
    temporary.1.write_all(&encoded)?;
    drop(temporary.1);
    std::fs::rename(&temporary.0, file)
}

/// A new file in `folder` with a unique name (process id and a counter).
fn tempfile_in(folder: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = folder.join(format!(".tmp-{}-{n}.jpg", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    Ok((path, file))
}

/// Shrinks to fit within `side` pixels, keeping the aspect ratio, with Lanczos3 (crisp
/// edges, no aliasing). fast_image_resize's SIMD convolution does it in one pass: 11.5×
/// faster than the image crate's box-then-Lanczos3 on a 1000×750 photo to 256 px
/// (docs/benchmarks.md, "Crates against our own code").
pub fn shrink_sharp(image: &RgbImage, side: u32) -> RgbImage {
    let (width, height) = image.dimensions();
    let scale = (side as f32 / width.max(height) as f32).min(1.0);
    if scale >= 1.0 {
        return image.clone();
    }
    let w = ((width as f32 * scale).round() as u32).max(1);
    let h = ((height as f32 * scale).round() as u32).max(1);
    if let Some(shrunk) = shrink_simd(image, w, h) {
        return shrunk;
    }
    // The image crate's filters, should fast_image_resize refuse the buffer.
    if width > w * 4 {
        let intermediate = image::imageops::thumbnail(image, w * 2, h * 2);
        image::imageops::resize(&intermediate, w, h, image::imageops::FilterType::Lanczos3)
    } else {
        image::imageops::resize(image, w, h, image::imageops::FilterType::Lanczos3)
    }
}

/// `image` resized to `w`×`h` with fast_image_resize (Lanczos3); `None` if it refuses.
fn shrink_simd(image: &RgbImage, w: u32, h: u32) -> Option<RgbImage> {
    use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer, images};
    let (width, height) = image.dimensions();
    let source = images::ImageRef::new(width, height, image.as_raw(), PixelType::U8x3).ok()?;
    let mut target = images::Image::new(w, h, PixelType::U8x3);
    Resizer::new()
        .resize(
            &source,
            &mut target,
            &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3)),
        )
        .ok()?;
    RgbImage::from_raw(w, h, target.into_vec())
}

/// An RGB image as egui pixels.
pub fn color_image(image: &RgbImage) -> egui::ColorImage {
    egui::ColorImage::from_rgb(
        [image.width() as usize, image.height() as usize],
        image.as_raw(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shrunk_thumbnail_keeps_its_shape_and_looks_like_the_photo() {
        // A smooth gradient with a hard edge: what a resize gets wrong shows at once.
        let photo = RgbImage::from_fn(1000, 750, |x, y| {
            let edge = if x > 500 { 200 } else { 30 };
            image::Rgb([(x / 4) as u8, (y / 3) as u8, edge])
        });
        let thumb = shrink_sharp(&photo, 256);
        assert_eq!(thumb.dimensions(), (256, 192));
        let reference =
            image::imageops::resize(&photo, 256, 192, image::imageops::FilterType::Lanczos3);
        let differences: Vec<u32> = thumb
            .as_raw()
            .iter()
            .zip(reference.as_raw())
            .map(|(a, b)| u32::from(a.abs_diff(*b)))
            .collect();
        let mean = differences.iter().sum::<u32>() as f64 / differences.len() as f64;
        assert!(mean < 2.0, "mean difference {mean}");
        // Already small enough: returned as it is.
        let small = RgbImage::new(100, 80);
        assert_eq!(shrink_sharp(&small, 256).dimensions(), (100, 80));
    }

    #[test]
    fn requests_round_up_to_a_size_step_in_physical_pixels() {
        assert_eq!(side_for(150.0, 1.0), 256);
        assert_eq!(side_for(150.0, 2.0), 512);
        assert_eq!(side_for(100.0, 1.0), 128);
        assert_eq!(side_for(5000.0, 1.0), 2048);
    }

    #[test]
    fn a_thumbnail_is_cached_on_disk_and_a_changed_photo_gets_a_new_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let photo = dir.path().join("photo.png");
        let cache = dir.path().join("cache");
        RgbImage::from_pixel(900, 600, image::Rgb([200, 10, 10]))
            .save(&photo)
            .expect("save");
        let first = load_thumbnail(&photo, 256, Some(&cache)).expect("thumbnail");
        assert_eq!(first.size, [256, 171]);
        let cached = disk_cache_file(&cache, &photo, 256).expect("cache name");
        assert!(cached.is_file());
        // A second load reads the cache file (the photo itself is now unreadable).
        let original = std::fs::read(&photo).expect("read");
        let modified = std::fs::metadata(&photo).and_then(|m| m.modified()).ok();
        // Same length and time as before: the cache key still matches.
        let padded: Vec<u8> = b"garbage!"
            .iter()
            .copied()
            .cycle()
            .take(original.len())
            .collect();
        std::fs::write(&photo, &padded).expect("write");
        if let Some(time) = modified {
            std::fs::File::options()
                .write(true)
                .open(&photo)
                .and_then(|f| f.set_modified(time))
                .expect("set time");
        }
        assert_eq!(disk_cache_file(&cache, &photo, 256), Some(cached.clone()));
        assert!(load_thumbnail(&photo, 256, Some(&cache)).is_ok());
        // A photo that changed (new size) is decoded again, not served stale.
        RgbImage::from_pixel(300, 300, image::Rgb([0, 0, 200]))
            .save(&photo)
            .expect("save");
        assert_ne!(disk_cache_file(&cache, &photo, 256), Some(cached));
        let fresh = load_thumbnail(&photo, 256, Some(&cache)).expect("thumbnail");
        assert_eq!(fresh.size, [256, 256]);
        // No temporary files are left behind.
        let leftovers = std::fs::read_dir(&cache)
            .expect("list")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
            .count();
        assert_eq!(leftovers, 0);
    }

    #[test]
    fn large_previews_are_not_written_to_disk() {
        let dir = tempfile::tempdir().expect("temp dir");
        let photo = dir.path().join("photo.png");
        let cache = dir.path().join("cache");
        RgbImage::from_pixel(1500, 1000, image::Rgb([1, 2, 3]))
            .save(&photo)
            .expect("save");
        let preview = load_thumbnail(&photo, 1024, Some(&cache)).expect("preview");
        assert_eq!(preview.size, [1024, 683]);
        assert!(!cache.exists());
    }
}
