//! The library's photos decoded once, kept between training runs: each photo as the square
//! RGB image training decodes it to, in the user cache folder, so the next run over the
//! same library reads 62 kB per photo instead of decoding a JPEG of megapixels (on a busy
//! machine the loading phase was most of a short budget, issue #41).
//!
//! A photo's entry is named by a hash of its path, size, modification time and the side it
//! was decoded to: a photo that changes gets a new entry, and a stale one is never read.
//! Entries are written atomically and checked for their length when read (a damaged one is
//! decoded again and replaced). The folder is kept under [`MAX_CACHE_BYTES`], the entries
//! least recently written removed first.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::RgbImage;

use crate::engine::atomic::write_atomic;
use crate::engine::files::{read_regular, stamp_hash};

/// The cache folder is kept under this many bytes (about 16 000 photos at 144 px).
pub const MAX_CACHE_BYTES: u64 = 1 << 30;
/// Changes when the decoding itself changes (an entry of an older decoder is not read).
const FORMAT: &str = "likeness-decoded-1";

/// Where decoded photos are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedCache {
    folder: PathBuf,
}

impl DecodedCache {
    /// The cache in `folder` (made when the first entry is written).
    pub fn new(folder: PathBuf) -> Self {
        Self { folder }
    }

    /// The user's cache (`~/.cache/likeness/decoded`), when there is a home to find it in.
    pub fn in_user_cache() -> Option<Self> {
        directories::ProjectDirs::from("", "", "Likeness")
            .map(|dirs| Self::new(dirs.cache_dir().join("decoded")))
    }

    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// The entry for `path` decoded to `side_px`, named by what the photo is now; `None`
    /// when the photo cannot be looked at (it is then decoded, and fails there if it must).
    fn entry(&self, path: &Path, side_px: u32, max_pixels: u64) -> Option<PathBuf> {
        let hash = stamp_hash(
            path,
            &[
                FORMAT.as_bytes(),
                &side_px.to_le_bytes(),
                &max_pixels.to_le_bytes(),
            ],
        )?;
        Some(self.folder.join(format!("{}.rgb", hash.hex())))
    }

    /// The photo as it was decoded before (to `side_px` under a limit of `max_pixels`), if
    /// its entry is there and whole.
    pub fn get(&self, path: &Path, side_px: u32, max_pixels: u64) -> Option<Arc<RgbImage>> {
        let entry = self.entry(path, side_px, max_pixels)?;
        let expected = (side_px as usize).pow(2) * 3;
        // A regular file of at most the image's size: a pipe or a huge file put in its
        // place is not read.
        let bytes = read_regular(&entry, expected as u64, "a decoded photo").ok()?;
        if bytes.len() != expected {
            return None;
        }
        RgbImage::from_raw(side_px, side_px, bytes).map(Arc::new)
    }

    /// Keeps a decoded photo for the next run. A failure only costs that run's decoding.
    pub fn put(&self, path: &Path, max_pixels: u64, image: &RgbImage) {
        let side_px = image.width();
        if image.height() != side_px {
            return;
        }
        let Some(entry) = self.entry(path, side_px, max_pixels) else {
            return;
        };
        if std::fs::create_dir_all(&self.folder).is_ok() {
            write_atomic(&entry, image.as_raw()).ok();
        }
    }

    /// Removes the entries written longest ago until the folder holds at most
    /// `max_bytes`; returns how many were removed. Only regular files named as entries
    /// are (16 hexadecimal digits and `.rgb`): nothing a person put there.
    pub fn trim(&self, max_bytes: u64) -> usize {
        let Ok(listing) = std::fs::read_dir(&self.folder) else {
            return 0;
        };
        let mut entries: Vec<(std::time::SystemTime, u64, PathBuf)> = listing
            .filter_map(|e| {
                let entry = e.ok()?;
                let path = entry.path();
                let metadata = entry.metadata().ok()?;
                (metadata.is_file() && is_entry_name(&path))
                    .then(|| Some((metadata.modified().ok()?, metadata.len(), path)))
                    .flatten()
            })
            .collect();
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        entries.sort_by_key(|e| e.0);
        let mut removed = 0;
        for (_, bytes, path) in entries {
            if total <= max_bytes {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                total = total.saturating_sub(bytes);
                removed += 1;
            }
        }
        removed
    }
}

/// Whether `path` is named as this cache names its entries.
fn is_entry_name(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".rgb"))
        .is_some_and(|stem| stem.len() == 16 && stem.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: u64 = 1 << 20;

    #[test]
    fn a_photo_is_read_back_until_it_changes_and_a_damaged_entry_is_not_read() {
        let dir = tempfile::tempdir().expect("dir");
        let cache = DecodedCache::new(dir.path().join("decoded"));
        let photo = dir.path().join("rose.jpg");
        std::fs::write(&photo, b"the photo's bytes").expect("photo");
        let image = RgbImage::from_fn(4, 4, |x, y| image::Rgb([x as u8, y as u8, 7]));
        assert!(cache.get(&photo, 4, LIMIT).is_none(), "nothing kept yet");
        cache.put(&photo, LIMIT, &image);
        assert_eq!(*cache.get(&photo, 4, LIMIT).expect("kept"), image);
        assert!(
            cache.get(&photo, 8, LIMIT).is_none(),
            "another size is another entry"
        );
        assert!(
            cache.get(&photo, 4, 16).is_none(),
            "another pixel limit too"
        );

        // The photo changes (size and time): its old entry is not read.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&photo, b"other bytes, and more of them").expect("photo");
        assert!(cache.get(&photo, 4, LIMIT).is_none());
        cache.put(&photo, LIMIT, &image);
        // A damaged entry (cut short) is not read.
        let entry = cache.entry(&photo, 4, LIMIT).expect("entry");
        std::fs::write(&entry, b"short").expect("damage");
        assert!(cache.get(&photo, 4, LIMIT).is_none());

        // Trimming removes the oldest entries first, and nothing but entries.
        std::fs::write(cache.folder().join("notes.txt"), b"mine").expect("other file");
        std::fs::write(cache.folder().join("holiday.rgb"), b"mine too").expect("other file");
        cache.put(&photo, LIMIT, &image);
        assert_eq!(cache.trim(0), 2);
        assert!(cache.folder().join("notes.txt").is_file());
        assert!(cache.folder().join("holiday.rgb").is_file());
    }

    #[test]
    fn a_second_decoding_of_a_library_reads_every_photo_from_the_cache_alike() {
        use crate::engine::data::dataset::PreparedImages;
        let dir = tempfile::tempdir().expect("dir");
        let photos = dir.path().join("photos");
        crate::engine::synthetic::write_dataset(&photos, 2, 4, 48, 3).expect("photos");
        let paths = crate::engine::data::scan_folder(&photos, LIMIT)
            .expect("scan")
            .images
            .into_iter()
            .map(|i| i.path)
            .collect::<Vec<_>>();
        let cache = DecodedCache::new(dir.path().join("decoded"));
        let cancel = std::sync::atomic::AtomicBool::new(false);
        let decode =
            || PreparedImages::decode_all(&paths, 32, LIMIT, 2, Some(&cache), &|_| {}, &cancel);
        let (first, failed) = decode();
        assert!(failed.is_empty());
        let kept = std::fs::read_dir(cache.folder()).expect("cache").count();
        assert_eq!(kept, paths.len(), "every photo kept");
        let (second, _) = decode();
        assert_eq!(first, second, "read back alike");
        assert!(paths.iter().all(|p| cache.get(p, 32, LIMIT).is_some()));
    }
}
