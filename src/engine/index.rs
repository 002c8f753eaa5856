//! The gallery: a folder's images embedded by one model, searchable with faiss.
//!
//! An index file holds a magic tag, a JSON header (format version, the model id and
//! path, the folder, the images and their classes) and the raw vectors. The faiss
//! `IndexFlatL2` is rebuilt from the vectors on load: for a flat index the vectors are
//! the index, so this is exact and keeps the file format ours.
//!
//! Large galleries (see [`super::ann`]) are approximate instead: the file (format 2)
//! holds faiss' serialisation of the compressed index in place of the raw vectors, and
//! each image carries an id (`GalleryHeader::ids`, ascending) by which photos are added
//! to and removed from the index without training it again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use faiss::Index;
use faiss::index::flat::FlatIndex;
use serde::{Deserialize, Serialize};

use super::ann::{ApproximateIndex, MethodChoice, SearchMethod};
use super::data::fingerprint::Fingerprint;
use super::data::{
    BatchStream, ImageFile, ImageFolder, SkippedFile, TargetSize, decode_rgb_sized,
    default_loader_threads,
};
use super::files::{FileKind, Fnv1a, sniff};
use super::model::{EmbeddingModel, LoadedModel, ModelInfo};
use super::{EngineError, Result};

pub use super::files::INDEX_MAGIC;
/// Newest index format this build reads: 1 holds raw vectors (exact search), 2 an
/// approximate faiss index. Exact indexes are still written as format 1 so that earlier
/// builds keep reading them.
pub const INDEX_FORMAT_VERSION: u32 = 2;
const EXACT_FORMAT_VERSION: u32 = 1;

/// How to build an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexOptions {
    /// Largest image (in pixels) that is decoded; larger ones are skipped.
    pub max_pixels: u64,
    /// Exact or approximate search.
    pub method: MethodChoice,
    /// When the job is cancelled part-way, return an index of what was embedded so far
    /// (a valid index that the next update continues) instead of
    /// [`EngineError::Cancelled`]. The command line sets it, so Ctrl+C during an hour of
    /// indexing loses nothing; the window keeps cancel meaning "change nothing".
    pub keep_partial_on_cancel: bool,
}

impl IndexOptions {
    pub fn new(max_pixels: u64) -> Self {
        Self {
            max_pixels,
            method: MethodChoice::Auto,
            keep_partial_on_cancel: false,
        }
    }
}

/// Images per forward pass when embedding.
pub const EMBED_BATCH: usize = 32;

/// What an index covers and which model made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GalleryHeader {
    pub format_version: u32,
    pub model_id: String,
    /// Where the model file was when the index was built (used to reopen it).
    pub model_path: PathBuf,
    pub folder: PathBuf,
    pub dimension: usize,
    pub images: Vec<ImageFile>,
    /// Files of the folder that could not be embedded.
    pub skipped: Vec<SkippedFile>,
    /// FNV-1a (64-bit, hex) of the vector bytes as written, so damage is caught on load
    /// (absent in indexes written before it was added).
    #[serde(default)]
    pub vectors_checksum: Option<String>,
    /// Patterns excluded from the folder when it was indexed (an update keeps them).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Exact, or approximate with its parameters (absent in earlier indexes: exact).
    #[serde(default)]
    pub search: SearchMethod,
    /// For an approximate index: each image's id in the faiss index, ascending.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<u64>,
}

/// Largest embedding an index may hold.
const MAX_DIMENSION: usize = 65_536;
/// The largest index file read into memory: ten million photos of 512-d vectors.
const MAX_INDEX_FILE_BYTES: u64 = 32 << 30;

/// FNV-1a of `bytes`, as 16 hex digits.
fn checksum(bytes: &[u8]) -> String {
    let mut hash = Fnv1a::default();
    hash.write(bytes);
    hash.hex()
}

/// What an index update did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexChanges {
    /// Photos new to the index.
    pub added: usize,
    /// Photos whose file changed, embedded again.
    pub updated: usize,
    /// Photos no longer in the folder.
    pub removed: usize,
    /// Photos unchanged, their vectors taken from the earlier index.
    pub kept: usize,
    /// Photos left to embed when the job was interrupted (with
    /// [`IndexOptions::keep_partial_on_cancel`]); the next update embeds them.
    pub pending: usize,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    /// 1 for the nearest.
    pub rank: usize,
    /// Squared Euclidean distance (what faiss' IndexFlatL2 reports).
    pub distance: f32,
    pub path: PathBuf,
    pub class: Option<String>,
}

/// An embedded folder with its faiss index.
pub struct Gallery {
    pub header: GalleryHeader,
    store: Store,
}

/// What a gallery searches.
enum Store {
    /// The raw vectors and a flat index over them.
    Exact { vectors: Vec<f32>, index: FlatIndex },
    /// A compressed approximate index; the raw vectors are not kept.
    Approximate(ApproximateIndex),
}

impl std::fmt::Debug for Gallery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gallery")
            .field("folder", &self.header.folder)
            .field("images", &self.header.images.len())
            .finish()
    }
}

/// Progress of a long embedding job: images done of total.
pub type ProgressFn<'a> = &'a (dyn Fn(usize, usize) + Sync);

/// The vectors of images that embedded, and the files that could not be read.
pub struct Embedded {
    pub vectors: Vec<f32>,
    /// Indices (into the input) of the images in `vectors`, in order.
    pub embedded: Vec<usize>,
    /// The fingerprint of each input image that decoded (by input index).
    pub fingerprints: Vec<Option<Fingerprint>>,
    pub failed: Vec<SkippedFile>,
    /// Whether the job was cancelled before every file was embedded (only
    /// [`embed_files_until_cancelled`] returns such a partial result).
    pub interrupted: bool,
}

/// Embeds image files in batches, decoding on worker threads ahead of the network.
pub fn embed_files(
    model: &EmbeddingModel,
    paths: &[PathBuf],
    max_pixels: u64,
    on_progress: ProgressFn<'_>,
    cancel: &AtomicBool,
) -> Result<Embedded> {
    let embedded = embed_files_until_cancelled(model, paths, max_pixels, on_progress, cancel)?;
    if embedded.interrupted {
        return Err(EngineError::Cancelled);
    }
    Ok(embedded)
}

/// [`embed_files`], returning what was embedded when `cancel` is set part-way (marked
/// `interrupted`) rather than an error.
pub fn embed_files_until_cancelled(
    model: &EmbeddingModel,
    paths: &[PathBuf],
    max_pixels: u64,
    on_progress: ProgressFn<'_>,
    cancel: &AtomicBool,
) -> Result<Embedded> {
    let preprocess = model.config.preprocess.clone();
    let floats = preprocess.floats_per_image();
    let shared_paths: Arc<Vec<PathBuf>> = Arc::new(paths.to_vec());
    let load_paths = Arc::clone(&shared_paths);
    // Taken from the image decoded for the network, on the loader threads.
    let fingerprints = Arc::new(std::sync::Mutex::new(vec![None; paths.len()]));
    let loader_fingerprints = Arc::clone(&fingerprints);
    let load = Arc::new(
        move |item: usize, _rng: &mut fastrand::Rng, out: &mut [f32]| {
            let image = decode_rgb_sized(
                &load_paths[item],
                max_pixels,
                TargetSize::ShortSide(preprocess.image_size_px),
            )?;
            preprocess.write_plain(&image, out);
            let print = Fingerprint::of(&image);
            if let Ok(mut prints) = loader_fingerprints.lock() {
                prints[item] = Some(print);
            }
            Ok(())
        },
    );
    let jobs: Vec<Vec<usize>> = (0..paths.len())
        .collect::<Vec<_>>()
        .chunks(EMBED_BATCH)
        .map(<[usize]>::to_vec)
        .collect();
    let stream = BatchStream::spawn(jobs, floats, 0, default_loader_threads(), 3, load);
    let mut result = Embedded {
        vectors: Vec::with_capacity(paths.len() * model.config.embedding_dim),
        embedded: Vec::with_capacity(paths.len()),
        fingerprints: Vec::new(),
        failed: Vec::new(),
        interrupted: false,
    };
    let mut done = 0;
    for batch in stream {
        if cancel.load(std::sync::atomic::Ordering::Relaxed) {
            result.interrupted = true;
            break;
        }
        done += batch.loaded.len() + batch.failed.len();
        let vectors = model.embed_pixels(&batch.pixels, batch.loaded.len())?;
        result.vectors.extend(vectors);
        result.embedded.extend(&batch.loaded);
        result
            .failed
            .extend(batch.failed.into_iter().map(|(item, reason)| SkippedFile {
                path: shared_paths[item].clone(),
                reason,
            }));
        on_progress(done.min(paths.len()), paths.len());
    }
    result.fingerprints = fingerprints
        .lock()
        .map(|mut prints| std::mem::take(&mut *prints))
        .unwrap_or_default();
    Ok(result)
}

/// Embeds the files an update needs: a partial result on cancel only when the options ask.
fn embed_for_update(
    model: &EmbeddingModel,
    paths: &[PathBuf],
    options: &IndexOptions,
    on_progress: ProgressFn<'_>,
    cancel: &AtomicBool,
) -> Result<Embedded> {
    if options.keep_partial_on_cancel {
        embed_files_until_cancelled(model, paths, options.max_pixels, on_progress, cancel)
    } else {
        embed_files(model, paths, options.max_pixels, on_progress, cancel)
    }
}

/// How many of `queued` files an interrupted embedding did not reach.
fn pending(embedded: &Embedded, queued: usize) -> usize {
    if embedded.interrupted {
        queued.saturating_sub(embedded.embedded.len() + embedded.failed.len())
    } else {
        0
    }
}

/// How a scanned folder differs from the photos an index holds: the one comparison that
/// index updates (exact and approximate) and the window's "out of date" count share. A
/// photo is unchanged when its path, size and modification time are the same.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FolderDiff {
    /// For each scanned photo (by position), the earlier record it is unchanged from.
    pub unchanged_from: Vec<Option<usize>>,
    /// For each earlier record (by position), whether a scanned photo is unchanged from it.
    pub kept: Vec<bool>,
    /// Scanned photos with no earlier record at their path.
    pub added: usize,
    /// Scanned photos whose earlier record is out of date (the file changed).
    pub changed: usize,
    /// Earlier records whose path is no longer in the folder.
    pub removed: usize,
}

impl FolderDiff {
    pub fn between(scanned: &[ImageFile], earlier: &[ImageFile]) -> Self {
        let at: HashMap<&Path, usize> = earlier
            .iter()
            .enumerate()
            .map(|(i, image)| (image.path.as_path(), i))
            .collect();
        let mut diff = Self {
            unchanged_from: Vec::with_capacity(scanned.len()),
            kept: vec![false; earlier.len()],
            ..Self::default()
        };
        let mut present = vec![false; earlier.len()];
        for image in scanned {
            let found = at.get(image.path.as_path()).copied();
            if let Some(j) = found {
                present[j] = true;
            }
            match found {
                Some(j) if earlier[j].unchanged(image) => {
                    diff.kept[j] = true;
                    diff.unchanged_from.push(Some(j));
                }
                Some(_) => {
                    diff.changed += 1;
                    diff.unchanged_from.push(None);
                }
                None => {
                    diff.added += 1;
                    diff.unchanged_from.push(None);
                }
            }
        }
        diff.removed = present.iter().filter(|p| !**p).count();
        diff
    }

    /// Photos added, changed or removed.
    pub fn count(&self) -> usize {
        self.added + self.changed + self.removed
    }
}

/// About how many bytes an index of `images` photos of `dimension`-d vectors takes (the
/// vectors as f32, plus each photo's path, class and fingerprint in the header), for
/// checking the disk has room before the work.
pub fn index_bytes_estimate(images: usize, dimension: usize) -> u64 {
    const HEADER_BYTES_PER_PHOTO: u64 = 512;
    images as u64 * (dimension as u64 * 4 + HEADER_BYTES_PER_PHOTO)
}

impl Gallery {
    /// Embeds the images of a scanned `folder` with `loaded` (a model and its file)
    /// and indexes them.
    pub fn build(
        loaded: &LoadedModel,
        folder: &ImageFolder,
        options: &IndexOptions,
        on_progress: ProgressFn<'_>,
        cancel: &AtomicBool,
    ) -> Result<Self> {
        Self::update(loaded, folder, None, options, on_progress, cancel).map(|(gallery, _)| gallery)
    }

    /// Indexes a scanned `folder`, taking the vectors of photos that are unchanged since
    /// `previous` (same path, size and modification time, same model) and embedding only
    /// new and changed ones; photos no longer in the folder drop out. Returns the index
    /// and what changed. An approximate `previous` stays approximate: its new photos are
    /// added to it and its removed ones taken out, without training it again.
    pub fn update(
        loaded: &LoadedModel,
        folder: &ImageFolder,
        previous: Option<&Gallery>,
        options: &IndexOptions,
        on_progress: ProgressFn<'_>,
        cancel: &AtomicBool,
    ) -> Result<(Self, IndexChanges)> {
        let dimension = loaded.model.config.embedding_dim;
        let previous = previous.filter(|p| {
            p.header.model_id == loaded.info.model_id && p.header.dimension == dimension
        });
        // Photos of folders the scan could not read are kept, not taken for deleted.
        let with_unreadable;
        let folder = match previous {
            Some(p) if !folder.unreadable.is_empty() => {
                with_unreadable = folder.keeping_unreadable(&p.header.images);
                &with_unreadable
            }
            _ => folder,
        };
        if let Some(previous) = previous
            && let Store::Approximate(earlier_index) = &previous.store
            && options.method != MethodChoice::Exact
        {
            return Self::update_approximate(
                loaded,
                folder,
                previous,
                earlier_index,
                options,
                on_progress,
                cancel,
            );
        }
        // Exact vectors of unchanged photos can only come from an exact index.
        let previous = previous.filter(|p| matches!(p.store, Store::Exact { .. }));
        let earlier: HashMap<&Path, usize> = previous
            .map(|p| {
                p.header
                    .images
                    .iter()
                    .enumerate()
                    .map(|(i, image)| (image.path.as_path(), i))
                    .collect()
            })
            .unwrap_or_default();
        // For each scanned photo: the earlier vector to keep, or a place in the queue.
        let kept_from = previous.map_or_else(
            || vec![None; folder.images.len()],
            |p| FolderDiff::between(&folder.images, &p.header.images).unchanged_from,
        );
        let to_embed: Vec<usize> = (0..folder.images.len())
            .filter(|&i| kept_from[i].is_none())
            .collect();
        let mut changes = IndexChanges::default();
        let paths: Vec<PathBuf> = to_embed
            .iter()
            .map(|&i| folder.images[i].path.clone())
            .collect();
        let embedded = embed_for_update(&loaded.model, &paths, options, on_progress, cancel)?;
        let mut fresh: HashMap<usize, usize> = HashMap::new();
        for (slot, &queued) in embedded.embedded.iter().enumerate() {
            fresh.insert(to_embed[queued], slot);
        }
        let mut images = Vec::with_capacity(folder.images.len());
        let mut vectors = Vec::with_capacity(folder.images.len() * dimension);
        for (i, image) in folder.images.iter().enumerate() {
            let mut image = image.clone();
            if let Some(earlier) = kept_from[i].and_then(|j| previous?.vector(j)) {
                vectors.extend_from_slice(earlier);
                image.fingerprint =
                    kept_from[i].and_then(|j| previous?.header.images[j].fingerprint.clone());
                changes.kept += 1;
            } else if let Some(&slot) = fresh.get(&i) {
                image.fingerprint = embedded
                    .fingerprints
                    .get(embedded.embedded[slot])
                    .cloned()
                    .flatten();
                vectors
                    .extend_from_slice(&embedded.vectors[slot * dimension..(slot + 1) * dimension]);
                if earlier.contains_key(image.path.as_path()) {
                    changes.updated += 1;
                } else {
                    changes.added += 1;
                }
            } else {
                // It failed to decode (listed in `skipped`), or was not reached before an
                // interruption (counted in `pending`, embedded by the next update).
                continue;
            }
            images.push(image);
        }
        if let Some(p) = previous {
            let now: std::collections::HashSet<&Path> =
                images.iter().map(|image| image.path.as_path()).collect();
            changes.removed = p
                .header
                .images
                .iter()
                .filter(|image| !now.contains(image.path.as_path()))
                .count();
        }
        if images.is_empty() && embedded.interrupted {
            return Err(EngineError::Cancelled);
        }
        if images.is_empty() {
            return Err(nothing_readable(folder, &embedded.failed));
        }
        changes.pending = pending(&embedded, paths.len());
        let mut all_skipped = folder.skipped.clone();
        all_skipped.extend(embedded.failed);
        let header = new_header(
            &loaded.info,
            &loaded.path,
            folder,
            dimension,
            images,
            all_skipped,
        );
        let gallery = if options.method.approximate_for(header.images.len()) {
            Self::approximate_from_vectors(header, &vectors)?
        } else {
            Self::from_parts(header, vectors)?
        };
        Ok((gallery, changes))
    }

    /// [`Gallery::update`] for an approximate `previous`: unchanged photos keep their
    /// place in its index, changed and removed ones are taken out by id, and new and
    /// changed ones are embedded and added under new ids.
    fn update_approximate(
        loaded: &LoadedModel,
        folder: &ImageFolder,
        previous: &Gallery,
        earlier_index: &ApproximateIndex,
        options: &IndexOptions,
        on_progress: ProgressFn<'_>,
        cancel: &AtomicBool,
    ) -> Result<(Self, IndexChanges)> {
        let dimension = loaded.model.config.embedding_dim;
        let diff = FolderDiff::between(&folder.images, &previous.header.images);
        let earlier: HashMap<&Path, usize> = previous
            .header
            .images
            .iter()
            .enumerate()
            .map(|(i, image)| (image.path.as_path(), i))
            .collect();
        let mut changes = IndexChanges::default();
        let mut images = Vec::with_capacity(folder.images.len());
        let mut ids = Vec::with_capacity(folder.images.len());
        let mut gone = Vec::new();
        for (j, image) in previous.header.images.iter().enumerate() {
            if diff.kept[j] {
                // The same file (path, size, time): its record, fingerprint included.
                images.push(image.clone());
                ids.push(previous.header.ids[j]);
                changes.kept += 1;
            } else {
                gone.push(previous.header.ids[j]);
            }
        }
        let to_embed: Vec<&ImageFile> = folder
            .images
            .iter()
            .zip(&diff.unchanged_from)
            .filter(|(_, kept)| kept.is_none())
            .map(|(image, _)| image)
            .collect();
        let paths: Vec<PathBuf> = to_embed.iter().map(|image| image.path.clone()).collect();
        let embedded = embed_for_update(&loaded.model, &paths, options, on_progress, cancel)?;
        let first_new_id = previous.header.ids.last().map_or(0, |&id| id + 1);
        let mut fresh_ids = Vec::with_capacity(embedded.embedded.len());
        for (next_id, &queued) in (first_new_id..).zip(&embedded.embedded) {
            let image = to_embed[queued];
            if earlier.contains_key(image.path.as_path()) {
                changes.updated += 1;
            } else {
                changes.added += 1;
            }
            let mut fresh = image.clone();
            fresh.fingerprint = embedded.fingerprints.get(queued).cloned().flatten();
            images.push(fresh);
            ids.push(next_id);
            fresh_ids.push(next_id);
        }
        changes.removed = diff.removed;
        if images.is_empty() && embedded.interrupted {
            return Err(EngineError::Cancelled);
        }
        if images.is_empty() {
            return Err(nothing_readable(folder, &embedded.failed));
        }
        let mut index = earlier_index.try_clone()?;
        index.remove(&gone)?;
        index.add(&embedded.vectors, &fresh_ids)?;
        changes.pending = pending(&embedded, paths.len());
        let mut all_skipped = folder.skipped.clone();
        all_skipped.extend(embedded.failed);
        let mut header = new_header(
            &loaded.info,
            &loaded.path,
            folder,
            dimension,
            images,
            all_skipped,
        );
        header.format_version = INDEX_FORMAT_VERSION;
        header.search = SearchMethod::Approximate(index.params.clone());
        header.ids = ids;
        Ok((
            Self {
                header,
                store: Store::Approximate(index),
            },
            changes,
        ))
    }

    /// An approximate gallery of `vectors` (one row per image of `header`).
    pub fn approximate_from_vectors(mut header: GalleryHeader, vectors: &[f32]) -> Result<Self> {
        let ids: Vec<u64> = (0..header.images.len() as u64).collect();
        let index = ApproximateIndex::build(vectors, header.dimension, &ids)?;
        header.format_version = INDEX_FORMAT_VERSION;
        header.search = SearchMethod::Approximate(index.params.clone());
        header.ids = ids;
        Ok(Self {
            header,
            store: Store::Approximate(index),
        })
    }

    /// Assembles a gallery from its header and vectors (checked for consistency).
    pub fn from_parts(header: GalleryHeader, vectors: Vec<f32>) -> Result<Self> {
        if header.dimension == 0 || vectors.len() != header.images.len() * header.dimension {
            return Err(EngineError::Config(format!(
                "{} vectors of dimension {} do not match {} images",
                vectors.len() / header.dimension.max(1),
                header.dimension,
                header.images.len()
            )));
        }
        let mut index = FlatIndex::new_l2(header.dimension as u32)?;
        if !vectors.is_empty() {
            index.add(&vectors)?;
        }
        let mut header = header;
        header.format_version = EXACT_FORMAT_VERSION;
        header.search = SearchMethod::Exact;
        header.ids.clear();
        Ok(Self {
            header,
            store: Store::Exact { vectors, index },
        })
    }

    /// How this gallery is searched.
    pub fn search_method(&self) -> &SearchMethod {
        &self.header.search
    }

    pub fn len(&self) -> usize {
        self.header.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.header.images.is_empty()
    }

    /// The stored vector of image `i` (an approximate gallery keeps none).
    pub fn vector(&self, i: usize) -> Option<&[f32]> {
        match &self.store {
            Store::Exact { vectors, .. } => {
                vectors.get(i * self.header.dimension..(i + 1) * self.header.dimension)
            }
            Store::Approximate(_) => None,
        }
    }

    /// The index's own distance scale: the median distance from a photo to its nearest
    /// other photo, over up to 200 photos spread over the index. `None` for an
    /// approximate index (no raw vectors) or one of fewer than two photos.
    pub fn typical_neighbour_distance(&mut self) -> Option<f32> {
        const SAMPLE: usize = 200;
        let count = self.len();
        if count < 2 {
            return None;
        }
        let picked: Vec<usize> = (0..SAMPLE.min(count))
            .map(|i| i * count / SAMPLE.min(count))
            .collect();
        let mut queries = Vec::with_capacity(picked.len() * self.header.dimension);
        for &i in &picked {
            queries.extend_from_slice(self.vector(i)?);
        }
        let nearest = self.nearest(&queries, 2).ok()?;
        let mut distances: Vec<f32> = picked
            .iter()
            .zip(&nearest)
            .filter_map(|(&i, hits)| hits.iter().find(|(j, _)| *j != i).map(|(_, d)| *d))
            .filter(|d| d.is_finite())
            .collect();
        if distances.is_empty() {
            return None;
        }
        distances.sort_by(f32::total_cmp);
        Some(distances[distances.len() / 2])
    }

    /// Gallery positions and distances of the `k` nearest images to each query vector
    /// (rows of `queries`), nearest first.
    pub fn nearest(&mut self, queries: &[f32], k: usize) -> Result<Vec<Vec<(usize, f32)>>> {
        let dimension = self.header.dimension;
        if !queries.len().is_multiple_of(dimension) {
            return Err(EngineError::Config(format!(
                "query vectors have {} values, not a multiple of the index dimension {dimension}",
                queries.len()
            )));
        }
        let query_count = queries.len() / dimension;
        let k = k.min(self.len());
        if k == 0 || query_count == 0 {
            return Ok(vec![Vec::new(); query_count]);
        }
        match &mut self.store {
            Store::Exact { index, .. } => {
                let result = index.search(queries, k)?;
                Ok((0..query_count)
                    .map(|q| {
                        (0..k)
                            .filter_map(|j| {
                                let position = result.labels[q * k + j].get()? as usize;
                                // faiss can return tiny negative distances from rounding.
                                Some((position, result.distances[q * k + j].max(0.0)))
                            })
                            .collect()
                    })
                    .collect())
            }
            Store::Approximate(index) => {
                let ids = &self.header.ids;
                Ok(index
                    .search(queries, k)?
                    .into_iter()
                    .map(|row| {
                        row.into_iter()
                            .filter_map(|(id, distance)| {
                                Some((ids.binary_search(&id).ok()?, distance))
                            })
                            .collect()
                    })
                    .collect())
            }
        }
    }

    /// The `k` nearest images to each query vector, as search hits.
    pub fn search_many(&mut self, queries: &[f32], k: usize) -> Result<Vec<Vec<SearchHit>>> {
        let nearest = self.nearest(queries, k)?;
        Ok(nearest
            .into_iter()
            .map(|neighbours| {
                neighbours
                    .into_iter()
                    .filter_map(|(position, distance)| {
                        Some((self.header.images.get(position)?, distance))
                    })
                    .enumerate()
                    .map(|(rank, (image, distance))| SearchHit {
                        rank: rank + 1,
                        distance,
                        path: image.path.clone(),
                        class: image.class.clone(),
                    })
                    .collect()
            })
            .collect())
    }

    /// The `k` nearest images to one query vector.
    pub fn search(&mut self, query: &[f32], k: usize) -> Result<Vec<SearchHit>> {
        Ok(self
            .search_many(query, k)?
            .into_iter()
            .next()
            .unwrap_or_default())
    }

    /// Serialises to index-file bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let (version, vector_bytes): (u32, Vec<u8>) = match &self.store {
            Store::Exact { vectors, .. } => (
                EXACT_FORMAT_VERSION,
                vectors.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            Store::Approximate(index) => (INDEX_FORMAT_VERSION, index.to_bytes()?),
        };
        let mut header = self.header.clone();
        header.format_version = version;
        header.vectors_checksum = Some(checksum(&vector_bytes));
        let header = serde_json::to_vec(&header).map_err(|e| EngineError::Config(e.to_string()))?;
        let mut bytes =
            Vec::with_capacity(INDEX_MAGIC.len() + 12 + header.len() + vector_bytes.len());
        bytes.extend_from_slice(INDEX_MAGIC);
        bytes.extend_from_slice(&version.to_le_bytes());
        bytes.extend_from_slice(&(header.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(&vector_bytes);
        Ok(bytes)
    }

    /// Writes the index file atomically (or, when that fails, into the rescue folder the
    /// error names).
    pub fn save(&self, path: &Path) -> Result<()> {
        super::output::write_or_rescue(path, &self.to_bytes()?)
    }

    /// Reads an index file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = super::files::read_regular(path, MAX_INDEX_FILE_BYTES, "an index")?;
        let Some(rest) = bytes.strip_prefix(INDEX_MAGIC) else {
            let hint = match sniff(&bytes) {
                FileKind::Safetensors => {
                    "this is a model file, not an index (pass it with --model)"
                }
                _ => "not a Likeness index file",
            };
            return Err(EngineError::bad_file(path, hint));
        };
        let damaged = || {
            EngineError::bad_file(
                path,
                "the index file is truncated or damaged; rebuild it with `likeness index`",
            )
        };
        let version = u32::from_le_bytes(
            rest.get(..4)
                .ok_or_else(damaged)?
                .try_into()
                .map_err(|_| damaged())?,
        );
        if version > INDEX_FORMAT_VERSION {
            return Err(EngineError::bad_file(
                path,
                format!(
                    "written by a newer Likeness (index format {version}, this build reads up to {INDEX_FORMAT_VERSION}); update Likeness"
                ),
            ));
        }
        let header_len = u64::from_le_bytes(
            rest.get(4..12)
                .ok_or_else(damaged)?
                .try_into()
                .map_err(|_| damaged())?,
        );
        let header_end = 12usize
            .checked_add(usize::try_from(header_len).map_err(|_| damaged())?)
            .ok_or_else(damaged)?;
        let header: GalleryHeader =
            serde_json::from_slice(rest.get(12..header_end).ok_or_else(damaged)?)
                .map_err(|_| damaged())?;
        // The header is data from a file: its sizes are checked before they size anything.
        if !(1..=MAX_DIMENSION).contains(&header.dimension) {
            return Err(EngineError::bad_file(
                path,
                format!(
                    "the index describes {}-d vectors (1 to {MAX_DIMENSION} are possible); the \
                     file is damaged",
                    header.dimension
                ),
            ));
        }
        let vector_bytes = &rest[header_end..];
        if version == INDEX_FORMAT_VERSION {
            return Self::load_approximate(path, header, vector_bytes);
        }
        let expected = header
            .images
            .len()
            .checked_mul(header.dimension)
            .and_then(|n| n.checked_mul(4));
        if expected != Some(vector_bytes.len()) {
            return Err(damaged());
        }
        if let Some(recorded) = &header.vectors_checksum
            && *recorded != checksum(vector_bytes)
        {
            return Err(EngineError::bad_file(
                path,
                "its vectors do not match their checksum; the file is damaged (rebuild it with \
                 `likeness index`)",
            ));
        }
        let vectors: Vec<f32> = vector_bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if vectors.iter().any(|v| !v.is_finite()) {
            return Err(EngineError::bad_file(
                path,
                "it holds vectors that are not numbers (NaN or infinite); the file is damaged \
                 (rebuild it with `likeness index`)",
            ));
        }
        Self::from_parts(header, vectors)
    }

    /// The rest of [`Gallery::load`] for a format-2 (approximate) file.
    fn load_approximate(path: &Path, header: GalleryHeader, index_bytes: &[u8]) -> Result<Self> {
        let damaged = |what: &str| {
            EngineError::bad_file(
                path,
                format!("{what}; the file is damaged (rebuild it with `likeness index --rebuild`)"),
            )
        };
        if header.vectors_checksum.as_deref() != Some(checksum(index_bytes).as_str()) {
            return Err(damaged("its approximate index does not match its checksum"));
        }
        let SearchMethod::Approximate(params) = header.search.clone() else {
            return Err(damaged(
                "it holds an approximate index but describes exact search",
            ));
        };
        if header.ids.len() != header.images.len() || !header.ids.is_sorted_by(|a, b| a < b) {
            return Err(damaged("its image ids do not match its images"));
        }
        let index = ApproximateIndex::from_bytes(index_bytes, params)
            .map_err(|e| damaged(&e.to_string()))?;
        if index.len() != header.images.len() {
            return Err(damaged(&format!(
                "its approximate index holds {} vectors for {} images",
                index.len(),
                header.images.len()
            )));
        }
        Ok(Self {
            header,
            store: Store::Approximate(index),
        })
    }

    /// Errors unless this index was built by the model described by `info`.
    pub fn check_model(
        &self,
        index_path: &Path,
        model_path: &Path,
        info: &ModelInfo,
    ) -> Result<()> {
        if info.config.embedding_dim != self.header.dimension {
            return Err(EngineError::bad_file(
                index_path,
                format!(
                    "the index holds {}-d vectors but its model {} makes {}-d embeddings; the \
                     index is damaged (rebuild it with `likeness index`)",
                    self.header.dimension,
                    model_path.display(),
                    info.config.embedding_dim
                ),
            ));
        }
        if info.model_id != self.header.model_id {
            return Err(EngineError::ModelMismatch {
                index: index_path.to_path_buf(),
                model: model_path.to_path_buf(),
                index_model_id: self.header.model_id.clone(),
                model_id: info.model_id.clone(),
            });
        }
        Ok(())
    }
}

/// The error for a folder none of whose files could be embedded: an index of nothing
/// would only make every search come back empty.
fn nothing_readable(folder: &ImageFolder, failed: &[SkippedFile]) -> EngineError {
    let examples: Vec<String> = failed
        .iter()
        .chain(&folder.skipped)
        .take(3)
        .map(ToString::to_string)
        .collect();
    EngineError::Dataset(format!(
        "{}: none of its files could be read as images, so no index was written \
         ({} files skipped, e.g. {})",
        folder.root.display(),
        failed.len() + folder.skipped.len(),
        examples.join("; ")
    ))
}

/// The header of a new index of `folder`'s `images`.
fn new_header(
    model_info: &ModelInfo,
    model_path: &Path,
    folder: &ImageFolder,
    dimension: usize,
    images: Vec<ImageFile>,
    skipped: Vec<SkippedFile>,
) -> GalleryHeader {
    GalleryHeader {
        format_version: EXACT_FORMAT_VERSION,
        model_id: model_info.model_id.clone(),
        model_path: std::path::absolute(model_path).unwrap_or_else(|_| model_path.to_path_buf()),
        folder: std::fs::canonicalize(&folder.root)
            .or_else(|_| std::path::absolute(&folder.root))
            .unwrap_or_else(|_| folder.root.clone()),
        dimension,
        images,
        skipped,
        vectors_checksum: None,
        exclude: folder.exclude.clone(),
        search: SearchMethod::Exact,
        ids: Vec::new(),
    }
}

/// An index opened together with the model that built it, ready to search.
pub struct SearchSession {
    pub gallery: Gallery,
    /// The model that built the gallery (queries are embedded with it).
    pub model: LoadedModel,
    pub max_pixels: u64,
}

impl std::fmt::Debug for SearchSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchSession")
            .field("gallery", &self.gallery)
            .field("model_path", &self.model.path)
            .finish()
    }
}

impl SearchSession {
    /// Opens `index_path` and its model: `model_path` when given, else the model the
    /// index remembers. A model other than the one that built the index is refused.
    pub fn open(index_path: &Path, model_path: Option<&Path>, device: tch::Device) -> Result<Self> {
        let gallery = Gallery::load(index_path)?;
        let model_path =
            model_path.map_or_else(|| gallery.header.model_path.clone(), Path::to_path_buf);
        if !model_path.exists() {
            return Err(EngineError::bad_file(
                &model_path,
                format!(
                    "the model that built {} is no longer there; pass its new location with --model",
                    index_path.display()
                ),
            ));
        }
        let model = LoadedModel::load(&model_path, device)?;
        gallery.check_model(index_path, &model_path, &model.info)?;
        Ok(Self {
            gallery,
            model,
            max_pixels: super::data::DEFAULT_MAX_PIXELS,
        })
    }

    /// The nearest `k` gallery images to the image file at `query`.
    pub fn search_file(&mut self, query: &Path, k: usize) -> Result<Vec<SearchHit>> {
        let size = TargetSize::ShortSide(self.model.model.config.preprocess.image_size_px);
        let image = decode_rgb_sized(query, self.max_pixels, size).map_err(|reason| {
            EngineError::Image {
                path: query.to_path_buf(),
                reason,
            }
        })?;
        self.search_image(&image, k)
    }

    /// The nearest `k` gallery images to a decoded image.
    pub fn search_image(&mut self, image: &image::RgbImage, k: usize) -> Result<Vec<SearchHit>> {
        search_image(&self.model.model, &mut self.gallery, image, k)
    }
}

/// The nearest `k` images of `gallery` to a decoded image, embedded with `model` (the
/// model that built the gallery).
pub fn search_image(
    model: &EmbeddingModel,
    gallery: &mut Gallery,
    image: &image::RgbImage,
    k: usize,
) -> Result<Vec<SearchHit>> {
    gallery.search(&embed_image(model, image)?, k)
}

/// The embedding of one decoded image.
pub fn embed_image(model: &EmbeddingModel, image: &image::RgbImage) -> Result<Vec<f32>> {
    let preprocess = &model.config.preprocess;
    let mut pixels = vec![0.0f32; preprocess.floats_per_image()];
    preprocess.write_plain(image, &mut pixels);
    model.embed_pixels(&pixels, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gallery_of(vectors: &[[f32; 2]]) -> Gallery {
        let header = GalleryHeader {
            format_version: INDEX_FORMAT_VERSION,
            model_id: "m".into(),
            model_path: "m.safetensors".into(),
            folder: "photos".into(),
            dimension: 2,
            images: (0..vectors.len())
                .map(|i| {
                    ImageFile::new(
                        format!("photos/{}/{i}.jpg", if i % 2 == 0 { "even" } else { "odd" })
                            .into(),
                        Some(if i % 2 == 0 { "even" } else { "odd" }.into()),
                    )
                })
                .collect(),
            skipped: Vec::new(),
            vectors_checksum: None,
            exclude: Vec::new(),
            search: SearchMethod::Exact,
            ids: Vec::new(),
        };
        Gallery::from_parts(header, vectors.iter().flatten().copied().collect()).expect("gallery")
    }

    #[test]
    fn an_approximate_gallery_round_trips_through_its_file_and_finds_the_same_photos() {
        let dimension = 32;
        let count = 2000;
        let mut rng = fastrand::Rng::with_seed(3);
        let vectors: Vec<f32> = (0..count * dimension)
            .map(|i| ((i / dimension) % 10) as f32 + rng.f32() / (1 + i % dimension) as f32)
            .collect();
        let mut exact = gallery_of(&[[0.0, 0.0]]);
        exact.header.dimension = dimension;
        exact.header.images = (0..count)
            .map(|i| ImageFile::new(format!("photos/{i}.jpg").into(), None))
            .collect();
        let mut gallery =
            Gallery::approximate_from_vectors(exact.header.clone(), &vectors).expect("build");
        assert!(matches!(
            gallery.search_method(),
            SearchMethod::Approximate(_)
        ));
        assert!(gallery.vector(0).is_none(), "no raw vectors are kept");
        let query = &vectors[7 * dimension..8 * dimension];
        let hits = gallery.search(query, 5).expect("search");
        assert_eq!(hits[0].path, PathBuf::from("photos/7.jpg"));

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.likeness-index");
        gallery.save(&path).expect("save");
        let mut loaded = Gallery::load(&path).expect("load");
        assert_eq!(loaded.header.format_version, INDEX_FORMAT_VERSION);
        assert_eq!(loaded.len(), count);
        assert_eq!(loaded.search(query, 5).expect("search"), hits);

        // A flipped byte in the faiss part is caught by the checksum.
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 100;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).expect("write");
        let error = Gallery::load(&path).expect_err("damaged").to_string();
        assert!(error.contains("damaged"), "{error}");
    }

    /// Issue #22 item 3: a sub-folder that became unreadable (a permission change) lost
    /// its 21 photos from the index on the next update.
    #[test]
    fn an_unreadable_sub_folder_keeps_its_photos_on_an_update() {
        let dir = tempfile::tempdir().expect("temp dir");
        let library = dir.path().join("library");
        crate::engine::synthetic::write_dataset(&library, 2, 4, 32, 1).expect("photos");
        let model_path = dir.path().join("tiny.safetensors");
        crate::engine::synthetic::write_tiny_model(&model_path).expect("model");
        let loaded = LoadedModel::load(&model_path, tch::Device::Cpu).expect("model");
        let options = IndexOptions::new(crate::engine::data::DEFAULT_MAX_PIXELS);
        let scan = || {
            crate::engine::data::scan_folder(&library, crate::engine::data::DEFAULT_MAX_PIXELS)
                .expect("scan")
        };
        let no_cancel = AtomicBool::new(false);
        let (first, _) = Gallery::update(&loaded, &scan(), None, &options, &|_, _| {}, &no_cancel)
            .expect("index");
        assert_eq!(first.len(), 8);
        let unreadable = std::fs::canonicalize(library.join("class_01")).expect("path");
        let permissions = std::fs::metadata(&unreadable).expect("meta").permissions();
        let mut rescan = {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&unreadable, std::fs::Permissions::from_mode(0o000))
                .expect("chmod");
            let rescan = scan();
            std::fs::set_permissions(&unreadable, permissions).expect("chmod back");
            rescan
        };
        if rescan.unreadable.is_empty() {
            // Running as root, which reads any folder: the scan is made to see what it
            // sees for a folder it cannot list.
            rescan
                .images
                .retain(|image| !image.path.starts_with(&unreadable));
            rescan.unreadable.push(unreadable.clone());
        } else {
            assert_eq!(rescan.unreadable, vec![unreadable.clone()]);
            assert!(
                rescan
                    .skipped
                    .iter()
                    .any(|s| s.reason.contains("kept as they were"))
            );
        }
        let (second, changes) = Gallery::update(
            &loaded,
            &rescan,
            Some(&first),
            &options,
            &|_, _| {},
            &no_cancel,
        )
        .expect("update");
        assert_eq!(
            second.len(),
            8,
            "photos of the unreadable folder were dropped"
        );
        assert_eq!((changes.removed, changes.kept), (0, 8));
        // Once it is deleted for real, its photos go.
        std::fs::remove_dir_all(&unreadable).expect("delete");
        let (third, changes) = Gallery::update(
            &loaded,
            &scan(),
            Some(&second),
            &options,
            &|_, _| {},
            &no_cancel,
        )
        .expect("update");
        assert_eq!((third.len(), changes.removed), (4, 4));
    }

    #[test]
    fn the_folder_diff_tells_unchanged_changed_added_and_removed_photos_apart() {
        let file = |name: &str, bytes: u64| ImageFile {
            bytes,
            modified_ns: 7,
            ..ImageFile::new(format!("/photos/{name}").into(), None)
        };
        let earlier = [file("a.jpg", 10), file("b.jpg", 10), file("gone.jpg", 10)];
        let scanned = [file("a.jpg", 10), file("b.jpg", 11), file("new.jpg", 5)];
        let diff = FolderDiff::between(&scanned, &earlier);
        assert_eq!(diff.unchanged_from, vec![Some(0), None, None]);
        assert_eq!(diff.kept, vec![true, false, false]);
        assert_eq!((diff.added, diff.changed, diff.removed), (1, 1, 1));
        assert_eq!(diff.count(), 3);
    }

    #[test]
    fn search_returns_k_sorted_hits_and_finds_itself_at_zero() {
        let mut gallery = gallery_of(&[[0.0, 0.0], [1.0, 0.0], [5.0, 5.0], [0.0, 2.0]]);
        let hits = gallery.search(&[0.0, 0.0], 3).expect("search");
        assert_eq!(hits.len(), 3);
        assert_eq!(hits[0].path, PathBuf::from("photos/even/0.jpg"));
        assert_eq!(hits[0].distance, 0.0);
        assert_eq!(
            hits.iter().map(|h| h.rank).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert!(hits.windows(2).all(|w| w[0].distance <= w[1].distance));
        assert_eq!(hits[1].distance, 1.0); // squared L2
        assert_eq!(hits[2].distance, 4.0);
        // Asking for more than there is gives everything.
        assert_eq!(gallery.search(&[0.0, 0.0], 50).expect("search").len(), 4);
    }

    #[test]
    fn index_file_round_trips_and_refuses_damage() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("photos.likeness-index");
        let mut gallery = gallery_of(&[[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]]);
        gallery.save(&path).expect("save");
        let mut reloaded = Gallery::load(&path).expect("load");
        assert!(reloaded.header.vectors_checksum.is_some());
        assert_eq!(
            GalleryHeader {
                vectors_checksum: None,
                ..reloaded.header.clone()
            },
            gallery.header
        );
        // One flipped bit in a vector: caught by the checksum.
        let good = std::fs::read(&path).expect("read");
        let mut flipped = good.clone();
        let last = flipped.len() - 2;
        flipped[last] ^= 0x01;
        let damaged = dir.path().join("flipped.likeness-index");
        std::fs::write(&damaged, &flipped).expect("write");
        let error = Gallery::load(&damaged).expect_err("flipped").to_string();
        assert!(error.contains("checksum"), "{error}");
        for query in [[0.1, 0.0], [4.0, 4.0]] {
            assert_eq!(
                reloaded.search(&query, 3).expect("search"),
                gallery.search(&query, 3).expect("search")
            );
        }
        let bytes = std::fs::read(&path).expect("read");
        std::fs::write(&path, &bytes[..bytes.len() - 3]).expect("truncate");
        let error = Gallery::load(&path).expect_err("truncated").to_string();
        assert!(error.contains("truncated or damaged"), "{error}");

        let mut newer = bytes.clone();
        newer[INDEX_MAGIC.len()..INDEX_MAGIC.len() + 4].copy_from_slice(&9u32.to_le_bytes());
        std::fs::write(&path, &newer).expect("write");
        let error = Gallery::load(&path).expect_err("newer").to_string();
        assert!(error.contains("newer Likeness"), "{error}");

        std::fs::write(&path, b"hello").expect("write");
        let error = Gallery::load(&path).expect_err("foreign").to_string();
        assert!(error.contains("not a Likeness index"), "{error}");
    }
}
