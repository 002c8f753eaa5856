//! Images on disk → pixels ready for the network.
//!
//! Scanning finds images (and says which files it skipped and why), decoding turns one
//! file into 8-bit RGB with EXIF orientation applied, [`Preprocess`] resizes and
//! normalises, samplers choose which images form a batch, and [`BatchStream`] loads
//! batches on worker threads while the network computes (prefetching).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use image::{ImageDecoder, RgbImage};
use serde::{Deserialize, Serialize};

use super::{EngineError, Result};

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

fn check_pixel_limit(width: u32, height: u32, max_pixels: u64) -> Result<(), String> {
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

/// Random augmentation applied to training images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Augment {
    /// None (indexing and queries).
    None,
    /// Random horizontal flip (the seed recipe).
    Flip,
    /// Random resized crop (scale 0.5–1) and flip, as torchvision's classification recipes.
    CropFlip,
    /// Random resized crop (scale 0.5–1), flip, and mild brightness/contrast/saturation jitter.
    CropFlipColor,
}

impl Augment {
    /// The side of the square images kept in memory for this augmentation: crops need a
    /// little more than the network's input so that a crop is not always an upscale.
    pub fn cache_side_px(self, image_size_px: u32) -> u32 {
        match self {
            Self::CropFlip | Self::CropFlipColor => {
                (f64::from(image_size_px) * 1.15).round() as u32
            }
            Self::Flip | Self::None => image_size_px,
        }
    }
}

/// Resize and normalisation shared by training, indexing and queries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    pub image_size_px: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Preprocess {
    /// The seed's normalisation constants (CIFAR-10 statistics, as in the tutorial).
    pub const SEED_MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
    pub const SEED_STD: [f32; 3] = [0.2023, 0.1994, 0.2010];
    /// ImageNet's statistics, which ImageNet-pretrained weights expect.
    pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
    pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

    /// Floats in one preprocessed image (3 × size × size).
    pub fn floats_per_image(&self) -> usize {
        3 * self.image_size_px as usize * self.image_size_px as usize
    }

    /// Resizes to size × size (ignoring aspect ratio, as torchvision's `Resize((s, s))`)
    /// and writes normalised CHW floats into `out`.
    pub fn write_plain(&self, image: &RgbImage, out: &mut [f32]) {
        let size = self.image_size_px;
        if image.width() == size && image.height() == size {
            self.write_normalized(image, false, [1.0, 1.0, 1.0], out);
        } else {
            let resized = resize(image, size, size);
            self.write_normalized(&resized, false, [1.0, 1.0, 1.0], out);
        }
    }

    /// Applies `augment` to a (cached, square) image and writes normalised CHW floats.
    pub fn write_augmented(
        &self,
        image: &RgbImage,
        augment: Augment,
        rng: &mut fastrand::Rng,
        out: &mut [f32],
    ) {
        let size = self.image_size_px;
        match augment {
            Augment::None => self.write_plain(image, out),
            Augment::Flip => {
                let flip = rng.bool();
                if image.width() == size && image.height() == size {
                    self.write_normalized(image, flip, [1.0, 1.0, 1.0], out);
                } else {
                    let resized = resize(image, size, size);
                    self.write_normalized(&resized, flip, [1.0, 1.0, 1.0], out);
                }
            }
            Augment::CropFlip => {
                let (x, y, w, h) = random_resized_crop(image.width(), image.height(), rng);
                let crop = image::imageops::crop_imm(image, x, y, w, h).to_image();
                let resized = resize(&crop, size, size);
                self.write_normalized(&resized, rng.bool(), [1.0, 1.0, 1.0], out);
            }
            Augment::CropFlipColor => {
                let (x, y, w, h) = random_resized_crop(image.width(), image.height(), rng);
                let crop = image::imageops::crop_imm(image, x, y, w, h).to_image();
                let resized = resize(&crop, size, size);
                let jitter = |rng: &mut fastrand::Rng| 0.8 + 0.4 * rng.f32();
                let (brightness, contrast, saturation) = (jitter(rng), jitter(rng), jitter(rng));
                let jittered = color_jitter(&resized, brightness, contrast, saturation);
                self.write_normalized(&jittered, rng.bool(), [1.0, 1.0, 1.0], out);
            }
        }
    }

    fn write_normalized(&self, image: &RgbImage, flip: bool, gain: [f32; 3], out: &mut [f32]) {
        let size = self.image_size_px as usize;
        debug_assert_eq!(out.len(), 3 * size * size);
        let raw = image.as_raw();
        for channel in 0..3 {
            let scale = gain[channel] / (255.0 * self.std[channel]);
            let offset = self.mean[channel] / self.std[channel];
            let plane = &mut out[channel * size * size..(channel + 1) * size * size];
            for y in 0..size {
                let row = &raw[y * size * 3..(y + 1) * size * 3];
                let out_row = &mut plane[y * size..(y + 1) * size];
                for (x, value) in out_row.iter_mut().enumerate() {
                    let source_x = if flip { size - 1 - x } else { x };
                    *value = f32::from(row[source_x * 3 + channel]) * scale - offset;
                }
            }
        }
    }
}

/// Bilinear resize with antialiasing, like PIL's default for `Resize`.
pub fn resize(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    image::imageops::resize(image, width, height, image::imageops::FilterType::Triangle)
}

/// Shrinks to fit within `side_px` × `side_px`, keeping the aspect ratio (for display).
pub fn shrink_to_fit(image: &RgbImage, side_px: u32) -> RgbImage {
    let (width, height) = image.dimensions();
    let scale = (side_px as f32 / width.max(height) as f32).min(1.0);
    let w = ((width as f32 * scale).round() as u32).max(1);
    let h = ((height as f32 * scale).round() as u32).max(1);
    if (w, h) == (width, height) {
        image.clone()
    } else {
        image::imageops::thumbnail(image, w, h)
    }
}

/// torchvision's RandomResizedCrop parameters: area scale 0.5–1, aspect 3/4–4/3.
fn random_resized_crop(width: u32, height: u32, rng: &mut fastrand::Rng) -> (u32, u32, u32, u32) {
    let area = f64::from(width) * f64::from(height);
    for _ in 0..10 {
        let target_area = area * (0.5 + 0.5 * rng.f64());
        let log_ratio = (0.75f64).ln() + rng.f64() * ((4.0f64 / 3.0).ln() - (0.75f64).ln());
        let aspect = log_ratio.exp();
        let w = (target_area * aspect).sqrt().round() as u32;
        let h = (target_area / aspect).sqrt().round() as u32;
        if w > 0 && h > 0 && w <= width && h <= height {
            let x = rng.u32(0..=width - w);
            let y = rng.u32(0..=height - h);
            return (x, y, w, h);
        }
    }
    (0, 0, width, height)
}

fn color_jitter(image: &RgbImage, brightness: f32, contrast: f32, saturation: f32) -> RgbImage {
    let mut out = image.clone();
    let pixel_count = (image.width() * image.height()).max(1) as f32;
    let mean_gray: f32 = image
        .pixels()
        .map(|p| 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]))
        .sum::<f32>()
        / pixel_count;
    for pixel in out.pixels_mut() {
        let [r, g, b] = pixel.0.map(|v| f32::from(v) * brightness);
        let gray = 0.299 * r + 0.587 * g + 0.114 * b;
        for (channel, value) in [r, g, b].into_iter().enumerate() {
            let saturated = gray + (value - gray) * saturation;
            let contrasted =
                mean_gray * brightness + (saturated - mean_gray * brightness) * contrast;
            pixel.0[channel] = contrasted.clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// A class-folder data set ready for training: each class's images by index into `images`.
#[derive(Debug, Clone)]
pub struct LabeledDataset {
    pub root: PathBuf,
    /// Class names, sorted.
    pub classes: Vec<String>,
    /// Every usable image with its class index.
    pub images: Vec<(PathBuf, usize)>,
    /// Files left out, and why.
    pub skipped: Vec<SkippedFile>,
    /// Things the user should know about the data (one-image classes, empty classes).
    pub notes: Vec<String>,
}

impl LabeledDataset {
    /// Scans a folder with one sub-folder per class.
    pub fn scan(root: &Path, max_pixels: u64) -> Result<Self> {
        let folder = scan_folder(root, max_pixels)?;
        Ok(Self::from_folder(folder))
    }

    /// Groups a scanned folder by class. Images directly in the root have no class and are
    /// skipped; so are classes left without images.
    pub fn from_folder(folder: ImageFolder) -> Self {
        let mut by_class: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
        let mut skipped = folder.skipped;
        for image in folder.images {
            match image.class {
                Some(class) => by_class.entry(class).or_default().push(image.path),
                None => skipped.push(SkippedFile {
                    path: image.path,
                    reason: "not inside a class folder (training needs one sub-folder per class)"
                        .into(),
                }),
            }
        }
        let mut dataset = Self {
            root: folder.root,
            classes: Vec::new(),
            images: Vec::new(),
            skipped,
            notes: Vec::new(),
        };
        for (class, paths) in by_class {
            let class_index = dataset.classes.len();
            dataset.classes.push(class);
            dataset
                .images
                .extend(paths.into_iter().map(|path| (path, class_index)));
        }
        dataset.refresh_notes();
        dataset
    }

    /// Drops images that failed to decode (found while preparing), keeping class indices.
    pub fn remove_images(&mut self, failed: &[SkippedFile]) {
        if failed.is_empty() {
            return;
        }
        let failed_paths: std::collections::HashSet<&Path> =
            failed.iter().map(|f| f.path.as_path()).collect();
        self.images
            .retain(|(path, _)| !failed_paths.contains(path.as_path()));
        self.skipped.extend(failed.iter().cloned());
        self.refresh_notes();
    }

    fn refresh_notes(&mut self) {
        self.notes.clear();
        let counts = self.images_per_class();
        for (class, count) in self.classes.iter().zip(&counts) {
            match count {
                0 => self
                    .notes
                    .push(format!("class '{class}' has no usable images; ignored")),
                1 => self.notes.push(format!(
                    "class '{class}' has only one image; it is used only for negatives"
                )),
                _ => {}
            }
        }
    }

    /// Number of usable images in each class.
    pub fn images_per_class(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for (_, class) in &self.images {
            counts[*class] += 1;
        }
        counts
    }

    /// Image indices grouped by class.
    pub fn indices_by_class(&self) -> Vec<Vec<usize>> {
        let mut groups = vec![Vec::new(); self.classes.len()];
        for (index, (_, class)) in self.images.iter().enumerate() {
            groups[*class].push(index);
        }
        groups
    }

    /// Errors unless triplets can be formed: two classes with images, one with two.
    pub fn check_trainable(&self) -> Result<()> {
        let counts = self.images_per_class();
        let usable = counts.iter().filter(|&&n| n >= 1).count();
        let anchors = counts.iter().filter(|&&n| n >= 2).count();
        if usable < 2 {
            return Err(EngineError::Dataset(format!(
                "{}: found {usable} class folder(s) with usable images; training needs at least two \
                 (one sub-folder per class, e.g. {}/daisy/*.jpg and {}/rose/*.jpg)",
                self.root.display(),
                self.root.display(),
                self.root.display()
            )));
        }
        if anchors < 1 {
            return Err(EngineError::Dataset(format!(
                "{}: every class has a single image; triplets need at least one class with two or more",
                self.root.display()
            )));
        }
        Ok(())
    }
}

/// One image's decode result, filled in by whichever thread decoded it.
type DecodeSlot = std::sync::Mutex<Option<Result<Arc<RgbImage>, String>>>;

/// Training images decoded once and kept in memory, resized to a square `side_px`.
pub struct PreparedImages {
    images: Vec<Arc<RgbImage>>,
}

impl PreparedImages {
    /// Decodes every image of `paths` on `workers` threads. Returns the prepared images in
    /// order of the paths that succeeded, and the files that failed.
    pub fn decode_all(
        paths: &[PathBuf],
        side_px: u32,
        max_pixels: u64,
        workers: usize,
        on_progress: &(dyn Fn(usize) + Sync),
        cancel: &AtomicBool,
    ) -> (Vec<Option<Arc<RgbImage>>>, Vec<SkippedFile>) {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let done = std::sync::atomic::AtomicUsize::new(0);
        let results: Vec<DecodeSlot> = paths.iter().map(|_| std::sync::Mutex::new(None)).collect();
        std::thread::scope(|scope| {
            for _ in 0..workers.max(1) {
                scope.spawn(|| {
                    loop {
                        if cancel.load(Ordering::Relaxed) {
                            break;
                        }
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(path) = paths.get(index) else { break };
                        let decoded = decode_rgb(path, max_pixels)
                            .map(|image| Arc::new(resize(&image, side_px, side_px)));
                        if let Ok(mut slot) = results[index].lock() {
                            *slot = Some(decoded);
                        }
                        on_progress(done.fetch_add(1, Ordering::Relaxed) + 1);
                    }
                });
            }
        });
        let mut prepared = Vec::with_capacity(paths.len());
        let mut failed = Vec::new();
        for (path, slot) in paths.iter().zip(results) {
            match slot.into_inner().ok().flatten() {
                Some(Ok(image)) => prepared.push(Some(image)),
                Some(Err(reason)) => {
                    failed.push(SkippedFile {
                        path: path.clone(),
                        reason,
                    });
                    prepared.push(None);
                }
                None => prepared.push(None), // cancelled before this one
            }
        }
        (prepared, failed)
    }

    /// Wraps images already decoded, in data-set order.
    pub fn new(images: Vec<Arc<RgbImage>>) -> Self {
        Self { images }
    }

    pub fn get(&self, index: usize) -> &RgbImage {
        &self.images[index]
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }
}

/// One epoch of the seed's TripletData with a shuffled DataLoader: every anchor class
/// appears 8 times per epoch in random order; anchor and positive are two different images
/// of that class, the negative a random image of a random other class. Each batch lists
/// its anchors, then its positives, then its negatives.
pub fn seed_triplet_epoch(
    by_class: &[Vec<usize>],
    batch_triplets: usize,
    rng: &mut fastrand::Rng,
) -> Vec<Vec<usize>> {
    // Classes with one image cannot give an anchor and a different positive: they only
    // serve as negatives. Classes with no images serve as nothing.
    let anchor_classes: Vec<usize> = (0..by_class.len())
        .filter(|&c| by_class[c].len() >= 2)
        .collect();
    let negative_classes: Vec<usize> = (0..by_class.len())
        .filter(|&c| !by_class[c].is_empty())
        .collect();
    let mut order: Vec<usize> = (0..anchor_classes.len() * 8)
        .map(|i| anchor_classes[i % anchor_classes.len()])
        .collect();
    rng.shuffle(&mut order);
    order
        .chunks(batch_triplets.max(1))
        .map(|classes| {
            let mut anchors = Vec::with_capacity(classes.len());
            let mut positives = Vec::with_capacity(classes.len());
            let mut negatives = Vec::with_capacity(classes.len());
            for &class in classes {
                let images = &by_class[class];
                let first = rng.usize(0..images.len());
                let mut second = rng.usize(0..images.len() - 1);
                if second >= first {
                    second += 1;
                }
                let others: Vec<usize> = negative_classes
                    .iter()
                    .copied()
                    .filter(|&c| c != class)
                    .collect();
                let negative_class = others[rng.usize(0..others.len())];
                let negative_images = &by_class[negative_class];
                anchors.push(images[first]);
                positives.push(images[second]);
                negatives.push(negative_images[rng.usize(0..negative_images.len())]);
            }
            anchors.extend(positives);
            anchors.extend(negatives);
            anchors
        })
        .collect()
}

/// One epoch of every image once, in random order, in batches of `batch_size` (for losses
/// that need no pairs, such as normalised softmax). A last batch of a single image joins
/// the one before it, since BatchNorm cannot train on one image.
pub fn shuffled_epoch(count: usize, batch_size: usize, rng: &mut fastrand::Rng) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..count).collect();
    rng.shuffle(&mut order);
    let mut batches: Vec<Vec<usize>> = order
        .chunks(batch_size.max(2))
        .map(<[usize]>::to_vec)
        .collect();
    if batches.len() >= 2 && batches.last().is_some_and(|b| b.len() < 2) {
        let tail = batches.pop().unwrap_or_default();
        if let Some(previous) = batches.last_mut() {
            previous.extend(tail);
        }
    }
    batches
}

/// One epoch of P classes × K images batches for in-batch mining. Classes with a single
/// image join batches as extra negatives. The epoch has about as many images as the data.
pub fn pk_epoch(
    by_class: &[Vec<usize>],
    classes_per_batch: usize,
    images_per_class: usize,
    rng: &mut fastrand::Rng,
) -> Vec<Vec<usize>> {
    let anchor_classes: Vec<usize> = (0..by_class.len())
        .filter(|&c| by_class[c].len() >= 2)
        .collect();
    let singletons: Vec<usize> = by_class
        .iter()
        .filter(|images| images.len() == 1)
        .map(|images| images[0])
        .collect();
    let p = classes_per_batch.clamp(1, anchor_classes.len().max(1));
    let k = images_per_class.max(2);
    let total_images: usize = by_class.iter().map(Vec::len).sum();
    let batches = total_images.div_ceil(p * k).max(1);
    let mut class_order = Vec::new();
    (0..batches)
        .map(|_| {
            let mut batch = Vec::with_capacity(p * k + k);
            for _ in 0..p {
                if class_order.is_empty() {
                    class_order = anchor_classes.clone();
                    rng.shuffle(&mut class_order);
                }
                let Some(class) = class_order.pop() else {
                    break;
                };
                let mut images = by_class[class].clone();
                rng.shuffle(&mut images);
                // Without replacement where the class is big enough, cycling otherwise.
                batch.extend((0..k).map(|i| images[i % images.len()]));
            }
            if !singletons.is_empty() {
                batch.extend(
                    (0..k.min(singletons.len()))
                        .map(|_| singletons[rng.usize(0..singletons.len())]),
                );
            }
            batch
        })
        .collect()
}

/// A batch of preprocessed images, in the order requested, with those that failed.
#[derive(Debug)]
pub struct LoadedBatch {
    /// Position of this batch in the job list.
    pub batch_index: usize,
    /// CHW floats of the images that loaded, one after another.
    pub pixels: Vec<f32>,
    /// Item indices (as given in the job) of the images in `pixels`.
    pub loaded: Vec<usize>,
    /// Items that failed, with the reason.
    pub failed: Vec<(usize, String)>,
}

/// Loads one item (an image index) into `out`, or says why it cannot.
pub type LoadFn = dyn Fn(usize, &mut fastrand::Rng, &mut [f32]) -> Result<(), String> + Send + Sync;

/// Batches loaded by worker threads ahead of the consumer, yielded in job order.
/// Dropping the stream stops the workers.
pub struct BatchStream {
    results: Option<crossbeam_channel::Receiver<LoadedBatch>>,
    pending: HashMap<usize, LoadedBatch>,
    next_index: usize,
    total: usize,
    stop: Arc<AtomicBool>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl BatchStream {
    /// Starts `workers` threads loading `jobs` (lists of item indices) through `load`,
    /// keeping at most `prefetch` finished batches waiting. Each batch's random numbers
    /// come from `seed` and its index, so the content does not depend on thread timing.
    pub fn spawn(
        jobs: Vec<Vec<usize>>,
        floats_per_item: usize,
        seed: u64,
        workers: usize,
        prefetch: usize,
        load: Arc<LoadFn>,
    ) -> Self {
        let total = jobs.len();
        let (job_sender, job_receiver) = crossbeam_channel::unbounded();
        for job in jobs.into_iter().enumerate() {
            job_sender.send(job).ok();
        }
        drop(job_sender);
        let (result_sender, result_receiver) = crossbeam_channel::bounded(prefetch.max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..workers.max(1))
            .map(|_| {
                let job_receiver = job_receiver.clone();
                let result_sender = result_sender.clone();
                let stop = Arc::clone(&stop);
                let load = Arc::clone(&load);
                std::thread::spawn(move || {
                    for (batch_index, items) in job_receiver.iter() {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let mut rng = fastrand::Rng::with_seed(
                            seed ^ (batch_index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                        );
                        let mut pixels = vec![0.0f32; items.len() * floats_per_item];
                        let mut loaded = Vec::with_capacity(items.len());
                        let mut failed = Vec::new();
                        for &item in &items {
                            let slot = loaded.len();
                            let out =
                                &mut pixels[slot * floats_per_item..(slot + 1) * floats_per_item];
                            match load(item, &mut rng, out) {
                                Ok(()) => loaded.push(item),
                                Err(reason) => failed.push((item, reason)),
                            }
                        }
                        pixels.truncate(loaded.len() * floats_per_item);
                        let batch = LoadedBatch {
                            batch_index,
                            pixels,
                            loaded,
                            failed,
                        };
                        if result_sender.send(batch).is_err() {
                            break;
                        }
                    }
                })
            })
            .collect();
        Self {
            results: Some(result_receiver),
            pending: HashMap::new(),
            next_index: 0,
            total,
            stop,
            workers,
        }
    }

    /// Number of batches this stream yields in all.
    pub fn len(&self) -> usize {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

impl Iterator for BatchStream {
    type Item = LoadedBatch;

    fn next(&mut self) -> Option<LoadedBatch> {
        if self.next_index >= self.total {
            return None;
        }
        loop {
            if let Some(batch) = self.pending.remove(&self.next_index) {
                self.next_index += 1;
                return Some(batch);
            }
            let batch = self.results.as_ref()?.recv().ok()?;
            self.pending.insert(batch.batch_index, batch);
        }
    }
}

impl Drop for BatchStream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Dropping the receiver unblocks workers waiting to send.
        self.results = None;
        for worker in self.workers.drain(..) {
            worker.join().ok();
        }
    }
}

/// Worker threads for decoding: leave a core for libtorch when there are few.
pub fn default_loader_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    if cores <= 2 { 2 } else { (cores - 1).min(8) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_png(path: &Path, width: u32, height: u32) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        RgbImage::from_pixel(width, height, image::Rgb([200, 100, 50]))
            .save(path)
            .expect("save png");
    }

    #[test]
    fn shuffled_epoch_uses_every_image_once_and_never_a_batch_of_one() {
        let mut rng = fastrand::Rng::with_seed(4);
        let batches = shuffled_epoch(65, 32, &mut rng);
        assert_eq!(batches.len(), 2, "the lone 65th image joins the last batch");
        let mut all: Vec<usize> = batches.concat();
        all.sort_unstable();
        assert_eq!(all, (0..65).collect::<Vec<_>>());
        assert!(batches.iter().all(|b| b.len() >= 2));
    }

    #[test]
    fn scan_lists_images_by_class_and_explains_every_skip() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        write_png(&root.join("daisy/a.png"), 8, 8);
        write_png(&root.join("daisy/nested/b.png"), 8, 8);
        write_png(&root.join("rose/c.png"), 8, 8);
        std::fs::write(root.join("rose/empty.jpg"), b"").expect("write");
        std::fs::write(root.join("rose/notes.txt"), b"hello").expect("write");
        std::fs::write(root.join("rose/fake.png"), b"this is not a png").expect("write");
        std::fs::write(root.join("rose/.DS_Store"), b"junk").expect("write");
        write_png(&root.join("loose.png"), 8, 8);

        let folder = scan_folder(root, DEFAULT_MAX_PIXELS).expect("scan");
        let classes: Vec<_> = folder.images.iter().map(|i| i.class.clone()).collect();
        assert_eq!(
            classes,
            vec![
                Some("daisy".into()),
                Some("daisy".into()),
                None,
                Some("rose".into())
            ]
        );
        let reasons: Vec<(String, String)> = folder
            .skipped
            .iter()
            .map(|s| {
                (
                    s.path
                        .file_name()
                        .expect("name")
                        .to_string_lossy()
                        .into_owned(),
                    s.reason.clone(),
                )
            })
            .collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(
            reasons
                .iter()
                .any(|(n, r)| n == "empty.jpg" && r.contains("empty file"))
        );
        assert!(
            reasons
                .iter()
                .any(|(n, r)| n == "notes.txt" && r.contains("not an image file"))
        );
        assert!(
            reasons
                .iter()
                .any(|(n, r)| n == "fake.png" && r.contains("not a readable image")),
            "{reasons:?}"
        );

        let dataset = LabeledDataset::from_folder(folder);
        assert_eq!(
            dataset.classes,
            vec!["daisy".to_string(), "rose".to_string()]
        );
        assert!(
            dataset
                .skipped
                .iter()
                .any(|s| s.reason.contains("not inside a class folder"))
        );
        assert_eq!(
            dataset.notes,
            vec!["class 'rose' has only one image; it is used only for negatives".to_string()]
        );
        dataset
            .check_trainable()
            .expect("two classes, one with two images");
    }

    #[test]
    fn oversized_and_truncated_images_are_refused_with_reasons() {
        let dir = tempfile::tempdir().expect("temp dir");
        let big = dir.path().join("c/big.png");
        write_png(&big, 40, 30);
        let folder = scan_folder(dir.path(), 1000).expect("scan");
        assert!(folder.images.is_empty());
        assert!(
            folder.skipped[0].reason.contains("40×30"),
            "{}",
            folder.skipped[0].reason
        );
        assert!(
            decode_rgb(&big, 1000)
                .expect_err("bomb")
                .contains("above the limit")
        );

        let truncated = dir.path().join("c/truncated.png");
        let noisy = RgbImage::from_fn(64, 64, |x, y| {
            image::Rgb([(x * 7 + y * 3) as u8, (x * y) as u8, (x ^ y) as u8])
        });
        noisy.save(&truncated).expect("save");
        let bytes = std::fs::read(&truncated).expect("read");
        std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("truncate");
        let reason = decode_rgb(&truncated, DEFAULT_MAX_PIXELS).expect_err("truncated");
        assert!(reason.contains("not a readable image"), "{reason}");
    }

    #[test]
    fn missing_folder_and_single_class_are_clear_errors() {
        let error =
            scan_folder(Path::new("/no/such/folder"), DEFAULT_MAX_PIXELS).expect_err("missing");
        assert!(error.to_string().contains("no such folder"));
        let dir = tempfile::tempdir().expect("temp dir");
        write_png(&dir.path().join("only/a.png"), 8, 8);
        write_png(&dir.path().join("only/b.png"), 8, 8);
        let dataset = LabeledDataset::scan(dir.path(), DEFAULT_MAX_PIXELS).expect("scan");
        let error = dataset
            .check_trainable()
            .expect_err("one class")
            .to_string();
        assert!(error.contains("at least two"), "{error}");
    }

    #[test]
    fn grayscale_16_bit_alpha_and_gif_decode_to_rgb8() {
        let dir = tempfile::tempdir().expect("temp dir");
        let gray16 = dir.path().join("g16.png");
        image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_pixel(4, 3, image::Luma([65535]))
            .save(&gray16)
            .expect("save");
        let rgb = decode_rgb(&gray16, DEFAULT_MAX_PIXELS).expect("decode");
        assert_eq!((rgb.width(), rgb.height()), (4, 3));
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);

        let rgba = dir.path().join("a.png");
        image::RgbaImage::from_pixel(2, 2, image::Rgba([10, 20, 30, 0]))
            .save(&rgba)
            .expect("save");
        assert_eq!(
            decode_rgb(&rgba, DEFAULT_MAX_PIXELS)
                .expect("decode")
                .get_pixel(1, 1)
                .0,
            [10, 20, 30]
        );

        let gif = dir.path().join("anim.gif");
        image::RgbImage::from_pixel(5, 5, image::Rgb([255, 0, 0]))
            .save(&gif)
            .expect("save");
        assert_eq!(
            decode_rgb(&gif, DEFAULT_MAX_PIXELS)
                .expect("decode")
                .dimensions(),
            (5, 5)
        );
    }

    #[test]
    fn preprocessing_normalises_with_the_seed_constants() {
        let preprocess = Preprocess {
            image_size_px: 2,
            mean: Preprocess::SEED_MEAN,
            std: Preprocess::SEED_STD,
        };
        let white = RgbImage::from_pixel(4, 4, image::Rgb([255, 255, 255]));
        let mut out = vec![0.0; preprocess.floats_per_image()];
        preprocess.write_plain(&white, &mut out);
        for channel in 0..3 {
            let expected = (1.0 - Preprocess::SEED_MEAN[channel]) / Preprocess::SEED_STD[channel];
            assert!(
                out[channel * 4..channel * 4 + 4]
                    .iter()
                    .all(|v| (v - expected).abs() < 1e-5)
            );
        }
    }

    #[test]
    fn seed_triplets_follow_the_tutorial_semantics() {
        // Class 1 has one image: never an anchor, still a negative.
        let by_class = vec![vec![0, 1, 2], vec![3], vec![4, 5, 6, 7]];
        let class_of = |i: usize| by_class.iter().position(|c| c.contains(&i)).expect("class");
        let mut rng = fastrand::Rng::with_seed(3);
        let mut negatives_from_singleton = 0;
        for _ in 0..20 {
            let batches = seed_triplet_epoch(&by_class, 5, &mut rng);
            assert_eq!(
                batches.iter().map(|b| b.len() / 3).collect::<Vec<_>>(),
                vec![5, 5, 5, 1]
            );
            let mut anchor_classes = vec![0; 3];
            for batch in &batches {
                let n = batch.len() / 3;
                for t in 0..n {
                    let (a, p, neg) = (batch[t], batch[n + t], batch[2 * n + t]);
                    assert_ne!(a, p, "anchor and positive are two different images");
                    assert_eq!(class_of(a), class_of(p));
                    assert_ne!(class_of(a), class_of(neg));
                    anchor_classes[class_of(a)] += 1;
                    negatives_from_singleton += usize::from(class_of(neg) == 1);
                }
            }
            assert_eq!(
                anchor_classes,
                vec![8, 0, 8],
                "each anchor class 8 times per epoch"
            );
        }
        assert!(negatives_from_singleton > 0);
    }

    #[test]
    fn pk_batches_hold_k_images_of_p_classes() {
        let by_class: Vec<Vec<usize>> = (0..6).map(|c| (c * 10..c * 10 + 5).collect()).collect();
        let mut rng = fastrand::Rng::with_seed(1);
        let batches = pk_epoch(&by_class, 3, 4, &mut rng);
        assert_eq!(batches.len(), 3); // 30 images / 12 per batch, rounded up
        for batch in &batches {
            assert_eq!(batch.len(), 12);
            let mut classes: Vec<usize> = batch.iter().map(|i| i / 10).collect();
            classes.dedup();
            assert_eq!(classes.len(), 3);
        }
    }

    #[test]
    fn batch_stream_yields_in_order_and_reports_failures() {
        let load: Arc<LoadFn> = Arc::new(|item, _rng, out: &mut [f32]| {
            if item == 3 {
                return Err("broken".into());
            }
            out.fill(item as f32);
            Ok(())
        });
        let jobs = vec![vec![0, 1], vec![2, 3], vec![4, 5], vec![6]];
        let batches: Vec<LoadedBatch> = BatchStream::spawn(jobs, 2, 0, 3, 1, load).collect();
        assert_eq!(
            batches.iter().map(|b| b.batch_index).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
        assert_eq!(batches[1].loaded, vec![2]);
        assert_eq!(batches[1].pixels, vec![2.0, 2.0]);
        assert_eq!(batches[1].failed, vec![(3, "broken".to_string())]);
    }
}
