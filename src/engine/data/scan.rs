//! Finding images: one folder walker for every use (classes from the first sub-folder,
//! symlink-safe, bounded depth), checking each file's header and saying why a file is
//! skipped.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::{EngineError, Result};

/// File extensions Likeness reads (lower case).
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"];

/// Images above this many pixels are refused (decompression bombs).
pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;

/// Folders deeper than this below the root are not walked (and symlink loops end here).
const MAX_FOLDER_DEPTH: usize = 32;

/// A file that was left out, and why, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedFile {
    pub path: PathBuf,
    pub reason: String,
}

impl std::fmt::Display for SkippedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}; skipped", self.path.display(), self.reason)
    }
}

/// One image found by a scan, with its class: the first folder below the scanned root,
/// or `None` for an image directly in the root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageFile {
    pub path: PathBuf,
    pub class: Option<String>,
}

/// The images of a folder, recursively, plus what was skipped.
#[derive(Debug, Clone, Default)]
pub struct ImageFolder {
    pub root: PathBuf,
    pub images: Vec<ImageFile>,
    pub skipped: Vec<SkippedFile>,
}

impl ImageFolder {
    /// Number of distinct classes among the images.
    pub fn class_count(&self) -> usize {
        let mut classes: Vec<&str> = self
            .images
            .iter()
            .filter_map(|image| image.class.as_deref())
            .collect();
        classes.sort_unstable();
        classes.dedup();
        classes.len()
    }
}

/// Whether the file name has an extension Likeness reads.
pub fn is_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|ext| ext.to_str())
        .is_some_and(|ext| IMAGE_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()))
}

/// Lists the images under `root`, recursively, checking each file's header (format,
/// size, pixel limit) without decoding the pixels. Files are sorted by path.
pub fn scan_folder(root: &Path, max_pixels: u64) -> Result<ImageFolder> {
    let metadata = std::fs::metadata(root).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => EngineError::MissingFolder(root.to_path_buf()),
        _ => EngineError::io(root, e),
    })?;
    if !metadata.is_dir() {
        return Err(EngineError::MissingFolder(root.to_path_buf()));
    }
    // The root itself must be listable: that is the one error we cannot skip past.
    std::fs::read_dir(root).map_err(|e| EngineError::io(root, e))?;

    let mut folder = ImageFolder {
        root: root.to_path_buf(),
        ..Default::default()
    };
    let mut candidates = Vec::new();
    walk(root, root, 0, &mut candidates, &mut folder.skipped);
    candidates.sort();
    for (path, class) in candidates {
        match check_header(&path, max_pixels) {
            Ok(()) => folder.images.push(ImageFile { path, class }),
            Err(reason) => folder.skipped.push(SkippedFile { path, reason }),
        }
    }
    folder.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(folder)
}

fn walk(
    root: &Path,
    dir: &Path,
    depth: usize,
    out: &mut Vec<(PathBuf, Option<String>)>,
    skipped: &mut Vec<SkippedFile>,
) {
    if depth > MAX_FOLDER_DEPTH {
        skipped.push(SkippedFile {
            path: dir.to_path_buf(),
            reason: format!("folder nested more than {MAX_FOLDER_DEPTH} levels deep"),
        });
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            skipped.push(SkippedFile {
                path: dir.to_path_buf(),
                reason: format!("folder cannot be read ({e})"),
            });
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        // Hidden files (.DS_Store, editor swap files) are not the user's photos.
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let Ok(metadata) = std::fs::metadata(&path) else {
            skipped.push(SkippedFile {
                path,
                reason: "cannot be read (broken link or no permission)".into(),
            });
            continue;
        };
        if metadata.is_dir() {
            walk(root, &path, depth + 1, out, skipped);
        } else if is_image_extension(&path) {
            let class = path
                .strip_prefix(root)
                .ok()
                .filter(|relative| relative.components().count() > 1)
                .and_then(|relative| relative.components().next())
                .map(|first| first.as_os_str().to_string_lossy().into_owned());
            out.push((path, class));
        } else {
            skipped.push(SkippedFile {
                path,
                reason: format!(
                    "not an image file (Likeness reads {})",
                    IMAGE_EXTENSIONS.join(", ")
                ),
            });
        }
    }
}

/// Reads only the header: catches empty, non-image and oversized files cheaply.
fn check_header(path: &Path, max_pixels: u64) -> Result<(), String> {
    let size = std::fs::metadata(path)
        .map_err(|e| format!("cannot be read ({e})"))?
        .len();
    if size == 0 {
        return Err("empty file (0 bytes)".into());
    }
    let reader = image::ImageReader::open(path)
        .map_err(|e| format!("cannot be opened ({e})"))?
        .with_guessed_format()
        .map_err(|e| format!("cannot be read ({e})"))?;
    if reader.format().is_none() {
        return Err("not a recognised image (unknown file contents)".into());
    }
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| format!("not a readable image ({e})"))?;
    check_pixel_limit(width, height, max_pixels)
}

pub(super) fn check_pixel_limit(width: u32, height: u32, max_pixels: u64) -> Result<(), String> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        return Err(format!(
            "image is {width}×{height} ({:.0} megapixels), above the limit of {:.0} megapixels",
            pixels as f64 / 1e6,
            max_pixels as f64 / 1e6
        ));
    }
    if pixels == 0 {
        return Err("image has no pixels".into());
    }
    Ok(())
}
