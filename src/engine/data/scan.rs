//! Finding images: one folder walker for every use (classes from the first sub-folder,
//! symlink-safe, bounded depth), checking each file's header and saying why a file is
//! skipped.

use std::collections::HashSet;
use std::io::Seek;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::{EngineError, Result};

/// File extensions Likeness reads (lower case).
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"];

/// Images above this many pixels are refused (decompression bombs).
pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;

/// Folders deeper than this below the root are not walked.
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
    /// The file's size and modification time when it was scanned: an index update
    /// re-embeds a photo only when these changed (0 when unknown).
    #[serde(default)]
    pub bytes: u64,
    #[serde(default)]
    pub modified_ns: u64,
    /// A tiny picture of the photo's layout (see [`super::fingerprint`]), taken when it
    /// was embedded; absent in indexes written before it was added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<super::fingerprint::Fingerprint>,
}

impl ImageFile {
    /// A file with no size or time recorded (it counts as changed on every update).
    pub fn new(path: PathBuf, class: Option<String>) -> Self {
        Self {
            path,
            class,
            bytes: 0,
            modified_ns: 0,
            fingerprint: None,
        }
    }

    /// Whether `other` is this file unchanged (same path, size and modification time).
    pub fn unchanged(&self, other: &ImageFile) -> bool {
        self.path == other.path
            && self.bytes != 0
            && self.bytes == other.bytes
            && self.modified_ns == other.modified_ns
    }
}

/// The images of a folder, recursively, plus what was skipped.
#[derive(Debug, Clone, Default)]
pub struct ImageFolder {
    pub root: PathBuf,
    pub images: Vec<ImageFile>,
    pub skipped: Vec<SkippedFile>,
    /// The patterns the person excluded (see [`scan_folder_excluding`]).
    pub exclude: Vec<String>,
    /// Folders below the root that exist but could not be listed (no permission, an I/O
    /// error): their photos are unknown, not deleted, so an index update keeps the ones
    /// it had (see [`ImageFolder::keeping_unreadable`]).
    pub unreadable: Vec<PathBuf>,
}

impl ImageFolder {
    /// This scan plus the photos of `earlier` (an index's list) that lie in a folder this
    /// scan could not read: a folder that cannot be read is not a folder whose photos
    /// were deleted. Their records are kept as they were, so the update keeps their
    /// vectors.
    pub fn keeping_unreadable(&self, earlier: &[ImageFile]) -> ImageFolder {
        let mut folder = self.clone();
        if self.unreadable.is_empty() {
            return folder;
        }
        let scanned: HashSet<&Path> = self.images.iter().map(|i| i.path.as_path()).collect();
        folder.images.extend(
            earlier
                .iter()
                .filter(|image| !scanned.contains(image.path.as_path()))
                .filter(|image| {
                    self.unreadable
                        .iter()
                        .any(|dir| image.path.starts_with(dir))
                })
                .cloned(),
        );
        folder.images.sort_by(|a, b| a.path.cmp(&b.path));
        folder
    }

    /// How many photos of `earlier` [`ImageFolder::keeping_unreadable`] would keep.
    pub fn kept_from_unreadable(&self, earlier: &[ImageFile]) -> usize {
        self.keeping_unreadable(earlier).images.len() - self.images.len()
    }

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

/// Folders skipped by name wherever they are: version control, package managers, and the
/// thumbnail and metadata folders that NAS boxes, cameras and desktops put next to photos.
pub const SYSTEM_FOLDERS: &[&str] = &[
    ".git",
    "@eaDir",
    ".thumbnails",
    "node_modules",
    "System Volume Information",
    "$RECYCLE.BIN",
    "lost+found",
    "__MACOSX",
];

/// Lists the images under `root`, recursively, checking each file's header (format,
/// size, pixel limit) without decoding the pixels. Files are sorted by path, and every
/// path is absolute and canonical (under the canonical root), so an index works from any
/// working directory.
///
/// The walk is safe on real trees: each folder is entered once (tracked by device and
/// inode, so two links to `.` cannot make it branch), links that lead out of the root are
/// not followed, hidden and system folders are skipped, and a name that is not valid
/// UTF-8 is skipped with the reason instead of failing the whole job later.
pub fn scan_folder(root: &Path, max_pixels: u64) -> Result<ImageFolder> {
    scan_folder_excluding(root, max_pixels, &[])
}

/// As [`scan_folder`], leaving out files and folders that match any of `exclude`: glob
/// patterns ([`ExcludePatterns`]) where `*` and `?` stay within one name and `**` crosses
/// folders. A pattern without `/` is matched against each name (`*.png`, `Screenshots`),
/// one with `/` against the path below the root (`2019/**`, `*/drafts`).
pub fn scan_folder_excluding(
    root: &Path,
    max_pixels: u64,
    exclude: &[String],
) -> Result<ImageFolder> {
    let metadata = std::fs::metadata(root).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => EngineError::MissingFolder(root.to_path_buf()),
        _ => EngineError::io(root, e),
    })?;
    if !metadata.is_dir() {
        return Err(EngineError::MissingFolder(root.to_path_buf()));
    }
    let patterns = ExcludePatterns::new(exclude)?;
    // The root itself must be listable: that is the one error we cannot skip past.
    std::fs::read_dir(root).map_err(|e| EngineError::io(root, e))?;
    let canonical_root = std::fs::canonicalize(root).map_err(|e| EngineError::io(root, e))?;

    let mut folder = ImageFolder {
        root: root.to_path_buf(),
        exclude: exclude.to_vec(),
        ..Default::default()
    };
    let mut walk = Walk {
        root: &canonical_root,
        exclude: &patterns,
        visited_folders: HashSet::new(),
        visited_files: HashSet::new(),
        found: Vec::new(),
        skipped: &mut folder.skipped,
        unreadable: Vec::new(),
    };
    walk.enter(&canonical_root, 0);
    folder.unreadable = walk.unreadable;
    let mut candidates = walk.found;
    candidates.sort();
    for (path, class, bytes, modified_ns) in candidates {
        match check_header(&path, max_pixels) {
            Ok(()) => folder.images.push(ImageFile {
                path,
                class,
                bytes,
                modified_ns,
                fingerprint: None,
            }),
            Err(reason) => folder.skipped.push(SkippedFile { path, reason }),
        }
    }
    folder.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(folder)
}

/// Exclude patterns compiled once for a scan: those without `/` match a file or folder's
/// name, those with `/` its path below the root. `*` and `?` stay within one name, `**`
/// crosses folders, `[..]` and `{..}` are character classes and alternatives (globset's
/// syntax, which matched 100k paths 37× faster than Likeness' earlier matcher:
/// docs/benchmarks.md, "Crates against our own code").
#[derive(Debug, Clone)]
pub struct ExcludePatterns {
    by_name: globset::GlobSet,
    by_path: globset::GlobSet,
    any: bool,
}

impl ExcludePatterns {
    /// Compiles `exclude`; an empty or malformed pattern is refused with the reason.
    pub fn new(exclude: &[String]) -> Result<Self> {
        let mut by_name = globset::GlobSetBuilder::new();
        let mut by_path = globset::GlobSetBuilder::new();
        for pattern in exclude {
            if pattern.is_empty() {
                return Err(EngineError::Config("an exclude pattern is empty".into()));
            }
            let (set, text) = if pattern.contains('/') {
                (&mut by_path, pattern.trim_matches('/'))
            } else {
                (&mut by_name, pattern.as_str())
            };
            let glob = globset::GlobBuilder::new(text)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| {
                    EngineError::Config(format!("exclude pattern '{pattern}': {}", e.kind()))
                })?;
            set.add(glob);
        }
        let built = |set: globset::GlobSetBuilder| {
            set.build()
                .map_err(|e| EngineError::Config(format!("exclude patterns: {e}")))
        };
        Ok(Self {
            by_name: built(by_name)?,
            by_path: built(by_path)?,
            any: !exclude.is_empty(),
        })
    }

    /// Whether a file or folder named `name`, at `relative` below the root (with `/`
    /// between names), is excluded.
    pub fn excludes(&self, relative: &str, name: &str) -> bool {
        self.any && (self.by_name.is_match(name) || self.by_path.is_match(relative))
    }
}

/// Refuses exclude patterns that are empty or malformed (before any work).
pub fn check_exclude_patterns(exclude: &[String]) -> Result<()> {
    ExcludePatterns::new(exclude).map(|_| ())
}

/// Whether `text` matches the glob `pattern` (the syntax of [`ExcludePatterns`]); a
/// malformed pattern matches nothing.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .is_ok_and(|glob| glob.compile_matcher().is_match(text))
}

/// A file or folder's identity on disk: the same folder reached through two links is one.
#[cfg(unix)]
fn identity(metadata: &std::fs::Metadata, _path: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (metadata.dev(), metadata.ino())
}

#[cfg(not(unix))]
fn identity(_metadata: &std::fs::Metadata, path: &Path) -> (u64, u64) {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .hash(&mut hasher);
    (0, hasher.finish())
}

/// One walk of a tree; see [`scan_folder`].
struct Walk<'a> {
    root: &'a Path,
    exclude: &'a ExcludePatterns,
    visited_folders: HashSet<(u64, u64)>,
    visited_files: HashSet<(u64, u64)>,
    /// Path, class, size and modification time (ns since the epoch) of each photo.
    found: Vec<(PathBuf, Option<String>, u64, u64)>,
    skipped: &'a mut Vec<SkippedFile>,
    unreadable: Vec<PathBuf>,
}

impl Walk<'_> {
    /// A folder that exists but cannot be listed: skipped, and remembered so an index
    /// update keeps the photos it had from it.
    fn unreadable_folder(&mut self, dir: &Path, error: &std::io::Error) {
        self.unreadable.push(dir.to_path_buf());
        self.skip(
            dir.to_path_buf(),
            format!(
                "folder cannot be read ({}); photos indexed from it before are kept as they were",
                crate::engine::error::io_reason(error)
            ),
        );
    }

    fn skip(&mut self, path: PathBuf, reason: impl Into<String>) {
        self.skipped.push(SkippedFile {
            path,
            reason: reason.into(),
        });
    }

    /// Whether the person excluded this path (by its name or its path below the root).
    fn excluded(&self, path: &Path, name: &str) -> bool {
        if !self.exclude.any {
            return false;
        }
        let relative = path
            .strip_prefix(self.root)
            .map(|r| r.to_string_lossy().replace('\\', "/"))
            .unwrap_or_default();
        self.exclude.excludes(&relative, name)
    }

    fn enter(&mut self, dir: &Path, depth: usize) {
        if depth > MAX_FOLDER_DEPTH {
            self.skip(
                dir.to_path_buf(),
                format!("folder nested more than {MAX_FOLDER_DEPTH} levels deep"),
            );
            return;
        }
        match std::fs::metadata(dir) {
            Ok(metadata) => {
                if !self.visited_folders.insert(identity(&metadata, dir)) {
                    // A second way into a folder already walked (a link to `.` or a
                    // parent): its photos are listed once, under their first path.
                    return;
                }
            }
            Err(e) => {
                self.unreadable_folder(dir, &e);
                return;
            }
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                self.unreadable_folder(dir, &e);
                return;
            }
        };
        if depth > 0 && crate::engine::files::is_export_folder(dir) {
            // Copies of search results, not more photos of the library.
            return;
        }
        let mut entries: Vec<_> = entries.flatten().collect();
        // Sorted, so which of two paths to one folder counts as "first" is stable.
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for entry in entries {
            self.visit(&entry, depth);
        }
    }

    fn visit(&mut self, entry: &std::fs::DirEntry, depth: usize) {
        let path = entry.path();
        let name = entry.file_name();
        // Hidden files and folders (.DS_Store, .git, editor swap files) are not photos.
        if name.as_encoded_bytes().starts_with(b".") {
            return;
        }
        let Some(name) = name.to_str() else {
            // Recorded under a readable version of its name: the index file (JSON) can
            // only hold text.
            self.skip(
                PathBuf::from(path.to_string_lossy().into_owned()),
                "the name is not valid UTF-8 text; rename the file or folder to include it",
            );
            return;
        };
        if self.excluded(&path, name) {
            return;
        }
        let metadata = match std::fs::metadata(&path) {
            Ok(metadata) => metadata,
            Err(e) => {
                let reason = match e.kind() {
                    std::io::ErrorKind::NotFound => "a broken link".to_string(),
                    _ => format!("cannot be read ({})", crate::engine::error::io_reason(&e)),
                };
                self.skip(path, reason);
                return;
            }
        };
        let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
        if is_link {
            match std::fs::canonicalize(&path) {
                Ok(target) if target.starts_with(self.root) => {}
                Ok(target) => {
                    self.skip(
                        path,
                        format!(
                            "a link to {}, outside the folder; not followed",
                            target.display()
                        ),
                    );
                    return;
                }
                Err(e) => {
                    self.skip(path, format!("a link that cannot be resolved ({e})"));
                    return;
                }
            }
        }
        if metadata.is_dir() {
            if SYSTEM_FOLDERS.contains(&name) {
                return;
            }
            self.enter(&path, depth + 1);
        } else if is_image_extension(&path) {
            if !self.visited_files.insert(identity(&metadata, &path)) {
                return; // the same photo through a link: listed once
            }
            let class = path
                .strip_prefix(self.root)
                .ok()
                .filter(|relative| relative.components().count() > 1)
                .and_then(|relative| relative.components().next())
                .map(|first| first.as_os_str().to_string_lossy().into_owned());
            let modified_ns = metadata
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
            self.found.push((path, class, metadata.len(), modified_ns));
        } else if let Some(reason) = unsupported_reason(&path) {
            self.skip(path, reason);
        } else {
            self.skip(
                path,
                format!(
                    "not an image file (Likeness reads {})",
                    IMAGE_EXTENSIONS.join(", ")
                ),
            );
        }
    }
}

/// Why a photo format Likeness cannot decode is skipped (HEIC, camera RAW).
fn unsupported_reason(path: &Path) -> Option<String> {
    let extension = path.extension()?.to_str()?.to_ascii_lowercase();
    match extension.as_str() {
        "heic" | "heif" | "avif" => Some(format!(
            "{} photo: Likeness cannot decode this format yet; export it as JPEG to include it",
            extension.to_ascii_uppercase()
        )),
        "cr2" | "cr3" | "nef" | "arw" | "dng" | "orf" | "rw2" | "raf" | "srw" | "pef" => {
            Some(format!(
                "camera RAW file (.{extension}): Likeness reads developed photos (JPEG, PNG, …)"
            ))
        }
        _ => None,
    }
}

/// Reads only the header: catches empty, non-image and oversized files cheaply.
fn check_header(path: &Path, max_pixels: u64) -> Result<(), String> {
    let (file, metadata) =
        crate::engine::files::open_regular(path).map_err(|e| format!("cannot be read ({e})"))?;
    if metadata.len() == 0 {
        return Err("empty file (0 bytes)".into());
    }
    let mut file = std::io::BufReader::new(file);
    // The `image` crate reads a whole JPEG to learn its size: 3–5 MB per phone photo, every
    // photo at every scan (an index update too). Its frame header is a few KB in.
    if let Some((width, height)) = jpeg_dimensions(&mut file) {
        return check_pixel_limit(width, height, max_pixels);
    }
    file.rewind().map_err(|e| format!("cannot be read ({e})"))?;
    let mut reader = image::ImageReader::new(file);
    // As `ImageReader::open` does: the extension names the format the contents do not.
    if let Ok(format) = image::ImageFormat::from_path(path) {
        reader.set_format(format);
    }
    let reader = reader
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

/// A JPEG's width and height from its frame header, reading marker segments one by one and
/// skipping over their contents (EXIF, ICC profiles) without reading them; `None` when the
/// stream is not a JPEG or ends or reaches its image data before a frame header (the
/// caller then asks the `image` crate, which says what is wrong).
fn jpeg_dimensions(mut reader: impl std::io::Read + std::io::Seek) -> Option<(u32, u32)> {
    fn bytes<const N: usize>(reader: &mut impl std::io::Read) -> Option<[u8; N]> {
        let mut buffer = [0u8; N];
        reader.read_exact(&mut buffer).ok()?;
        Some(buffer)
    }
    if bytes::<2>(&mut reader)? != [0xFF, 0xD8] {
        return None;
    }
    // At most this many segments before the frame header (a real file has a handful).
    for _ in 0..1024 {
        let [mut prefix, mut code] = bytes::<2>(&mut reader)?;
        // Fill bytes: any number of 0xFF before the marker code.
        while prefix == 0xFF && code == 0xFF {
            (prefix, code) = (code, bytes::<1>(&mut reader)?[0]);
        }
        if prefix != 0xFF {
            return None;
        }
        match code {
            // Markers without a length.
            0x01 | 0xD0..=0xD7 => continue,
            // Start of scan or end of image before any frame header.
            0xDA | 0xD9 => return None,
            _ => {}
        }
        let length = u16::from_be_bytes(bytes::<2>(&mut reader)?);
        if length < 2 {
            return None;
        }
        // Start of frame (SOF0–SOF15 but DHT, JPG and DAC): precision, height, width.
        if (0xC0..=0xCF).contains(&code) && ![0xC4, 0xC8, 0xCC].contains(&code) {
            let [_, height_high, height_low, width_high, width_low] = bytes::<5>(&mut reader)?;
            let height = u32::from(u16::from_be_bytes([height_high, height_low]));
            let width = u32::from(u16::from_be_bytes([width_high, width_low]));
            return (width > 0 && height > 0).then_some((width, height));
        }
        reader
            .seek(std::io::SeekFrom::Current(i64::from(length) - 2))
            .ok()?;
    }
    None
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Read, Seek, SeekFrom};

    /// A reader that counts the bytes it hands out.
    struct Counting<R> {
        inner: R,
        read: usize,
    }
    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
            let count = self.inner.read(buffer)?;
            self.read += count;
            Ok(count)
        }
    }
    impl<R: Seek> Seek for Counting<R> {
        fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
            self.inner.seek(to)
        }
    }

    fn jpeg(width: u32, height: u32, progressive: bool) -> Vec<u8> {
        let mut rng = fastrand::Rng::with_seed(5);
        let image = image::RgbImage::from_fn(width, height, |_, _| {
            image::Rgb([rng.u8(..), rng.u8(..), rng.u8(..)])
        });
        let mut compressor = turbojpeg::Compressor::new().expect("compressor");
        compressor
            .set_progressive(progressive)
            .expect("progressive");
        let pixels = turbojpeg::Image {
            pixels: image.as_raw().as_slice(),
            width: width as usize,
            pitch: 3 * width as usize,
            height: height as usize,
            format: turbojpeg::PixelFormat::RGB,
        };
        compressor.compress_to_vec(pixels).expect("compress")
    }

    #[test]
    fn a_jpegs_size_is_read_from_its_header_without_reading_the_image_data() {
        let main = jpeg(1200, 900, false);
        let preview = jpeg(160, 120, false);
        let photo =
            crate::engine::synthetic::jpeg_with_exif_preview(&main, &preview, 1).expect("fits");
        let mut reader = Counting {
            inner: Cursor::new(&photo),
            read: 0,
        };
        // The frame header of the photo, not of the preview inside its EXIF block.
        assert_eq!(jpeg_dimensions(&mut reader), Some((1200, 900)));
        assert!(
            reader.read < 1024,
            "{} of {} bytes read",
            reader.read,
            photo.len()
        );
        // Progressive (SOF2) too, and fill bytes before a marker.
        assert_eq!(
            jpeg_dimensions(Cursor::new(jpeg(640, 480, true))),
            Some((640, 480))
        );
        let mut filled = main.clone();
        filled.splice(2..2, [0xFF, 0xFF, 0xFF]);
        assert_eq!(jpeg_dimensions(Cursor::new(&filled)), Some((1200, 900)));
        // Cut inside the headers, not a JPEG, a segment length under 2: no answer (the
        // scan then asks the image crate, which gives the reason).
        assert_eq!(jpeg_dimensions(Cursor::new(&photo[..40])), None);
        assert_eq!(jpeg_dimensions(Cursor::new(b"GIF89a....")), None);
        assert_eq!(
            jpeg_dimensions(Cursor::new([0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x01])),
            None
        );
    }

    #[test]
    fn the_scan_still_refuses_an_oversized_jpeg_from_its_header() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut bytes = jpeg(64, 48, false);
        // Claim 20000×20000 pixels (400 MP) in the frame header.
        let sof = bytes
            .windows(2)
            .position(|pair| pair == [0xFF, 0xC0])
            .expect("baseline frame header");
        bytes[sof + 5..sof + 9].copy_from_slice(&[0x4E, 0x20, 0x4E, 0x20]);
        let path = dir.path().join("bomb.jpg");
        std::fs::write(&path, &bytes).expect("write");
        let reason = check_header(&path, DEFAULT_MAX_PIXELS).expect_err("refused");
        assert!(reason.contains("20000×20000"), "{reason}");
        let fine = dir.path().join("fine.jpg");
        std::fs::write(&fine, jpeg(64, 48, false)).expect("write");
        assert_eq!(check_header(&fine, DEFAULT_MAX_PIXELS), Ok(()));
    }
}
