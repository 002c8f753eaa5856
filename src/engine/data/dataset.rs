//! A labelled class-folder data set, its images decoded into memory, and the samplers
//! that choose which images form a batch.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use image::RgbImage;

use super::decode::{TargetSize, decode_rgb_sized};
use super::preprocess::resize;
use super::scan::{ImageFolder, SkippedFile, scan_folder};
use crate::engine::{EngineError, Result};

/// Why training leaves out a photo directly in the data folder.
pub const NOT_IN_A_CLASS: &str =
    "not inside a class folder (training needs one sub-folder per class)";

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
                    reason: NOT_IN_A_CLASS.into(),
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
#[derive(Default)]
pub struct PreparedImages {
    images: Vec<Arc<RgbImage>>,
}

impl PreparedImages {
    /// Decodes every image of `paths` on `workers` threads (reading it from `cache` when
    /// an earlier run decoded it, and keeping it there otherwise). Returns the prepared
    /// images in order of the paths that succeeded, and the files that failed.
    pub fn decode_all(
        paths: &[PathBuf],
        side_px: u32,
        max_pixels: u64,
        workers: usize,
        cache: Option<&super::decoded_cache::DecodedCache>,
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
                        let kept = cache.and_then(|c| c.get(path, side_px, max_pixels));
                        let decoded = match kept {
                            Some(image) => Ok(image),
                            None => {
                                decode_rgb_sized(path, max_pixels, TargetSize::ShortSide(side_px))
                                    .map(|image| {
                                        let square = resize(&image, side_px, side_px);
                                        if let Some(cache) = cache {
                                            cache.put(path, max_pixels, &square);
                                        }
                                        Arc::new(square)
                                    })
                            }
                        };
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
