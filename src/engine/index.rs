//! The gallery: a folder's images embedded by one model, searchable with faiss.
//!
//! An index file holds a magic tag, a JSON header (format version, the model id and
//! path, the folder, the images and their classes) and the raw vectors. The faiss
//! `IndexFlatL2` is rebuilt from the vectors on load: for a flat index the vectors are
//! the index, so this is exact and keeps the file format ours.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use faiss::Index;
use faiss::index::flat::FlatIndex;
use serde::{Deserialize, Serialize};

use super::data::{
    BatchStream, ImageFile, ImageFolder, SkippedFile, TargetSize, decode_rgb_sized,
    default_loader_threads,
};
use super::files::{FileKind, Fnv1a, sniff};
use super::model::{EmbeddingModel, ModelInfo};
use super::{EngineError, Result};

pub use super::files::INDEX_MAGIC;
/// Newest index format this build reads and the one it writes.
pub const INDEX_FORMAT_VERSION: u32 = 1;

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
}

/// Largest embedding an index may hold.
const MAX_DIMENSION: usize = 65_536;

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
    vectors: Vec<f32>,
    index: FlatIndex,
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
    pub failed: Vec<SkippedFile>,
}

/// Embeds image files in batches, decoding on worker threads ahead of the network.
pub fn embed_files(
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
    let load = Arc::new(
        move |item: usize, _rng: &mut fastrand::Rng, out: &mut [f32]| {
            let image = decode_rgb_sized(
                &load_paths[item],
                max_pixels,
                TargetSize::ShortSide(preprocess.image_size_px),
            )?;
            preprocess.write_plain(&image, out);
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
        failed: Vec::new(),
    };
    let mut done = 0;
    for batch in stream {
        if cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(EngineError::Cancelled);
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
    Ok(result)
}

impl Gallery {
    /// Embeds the images of a scanned `folder` with `model` (read from `model_path`)
    /// and indexes them.
    pub fn build(
        model: &EmbeddingModel,
        model_info: &ModelInfo,
        model_path: &Path,
        folder: &ImageFolder,
        max_pixels: u64,
        on_progress: ProgressFn<'_>,
        cancel: &AtomicBool,
    ) -> Result<Self> {
        Self::update(
            model,
            model_info,
            model_path,
            folder,
            None,
            max_pixels,
            on_progress,
            cancel,
        )
        .map(|(gallery, _)| gallery)
    }

    /// Indexes a scanned `folder`, taking the vectors of photos that are unchanged since
    /// `previous` (same path, size and modification time, same model) and embedding only
    /// new and changed ones; photos no longer in the folder drop out. Returns the index
    /// and what changed.
    #[allow(clippy::too_many_arguments)]
    pub fn update(
        model: &EmbeddingModel,
        model_info: &ModelInfo,
        model_path: &Path,
        folder: &ImageFolder,
        previous: Option<&Gallery>,
        max_pixels: u64,
        on_progress: ProgressFn<'_>,
        cancel: &AtomicBool,
    ) -> Result<(Self, IndexChanges)> {
        let dimension = model.config.embedding_dim;
        let previous = previous.filter(|p| {
            p.header.model_id == model_info.model_id && p.header.dimension == dimension
        });
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
        let mut kept_from = vec![None; folder.images.len()];
        let mut to_embed = Vec::new();
        let mut changes = IndexChanges::default();
        for (i, image) in folder.images.iter().enumerate() {
            match (previous, earlier.get(image.path.as_path())) {
                (Some(p), Some(&j)) if p.header.images[j].unchanged(image) => {
                    kept_from[i] = Some(j);
                }
                _ => to_embed.push(i),
            }
        }
        let paths: Vec<PathBuf> = to_embed
            .iter()
            .map(|&i| folder.images[i].path.clone())
            .collect();
        let embedded = embed_files(model, &paths, max_pixels, on_progress, cancel)?;
        let mut fresh: HashMap<usize, usize> = HashMap::new();
        for (slot, &queued) in embedded.embedded.iter().enumerate() {
            fresh.insert(to_embed[queued], slot);
        }
        let mut images = Vec::with_capacity(folder.images.len());
        let mut vectors = Vec::with_capacity(folder.images.len() * dimension);
        for (i, image) in folder.images.iter().enumerate() {
            if let (Some(j), Some(p)) = (kept_from[i], previous) {
                vectors.extend_from_slice(&p.vectors[j * dimension..(j + 1) * dimension]);
                changes.kept += 1;
            } else if let Some(&slot) = fresh.get(&i) {
                vectors
                    .extend_from_slice(&embedded.vectors[slot * dimension..(slot + 1) * dimension]);
                if earlier.contains_key(image.path.as_path()) {
                    changes.updated += 1;
                } else {
                    changes.added += 1;
                }
            } else {
                continue; // it failed to decode: listed in `skipped`
            }
            images.push(image.clone());
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
        if images.is_empty() {
            // An index of nothing would only make every search come back empty.
            let examples: Vec<String> = embedded
                .failed
                .iter()
                .chain(&folder.skipped)
                .take(3)
                .map(ToString::to_string)
                .collect();
            return Err(EngineError::Dataset(format!(
                "{}: none of its files could be read as images, so no index was written \
                 ({} files skipped, e.g. {})",
                folder.root.display(),
                embedded.failed.len() + folder.skipped.len(),
                examples.join("; ")
            )));
        }
        let mut all_skipped = folder.skipped.clone();
        all_skipped.extend(embedded.failed);
        let header = GalleryHeader {
            format_version: INDEX_FORMAT_VERSION,
            model_id: model_info.model_id.clone(),
            model_path: std::path::absolute(model_path)
                .unwrap_or_else(|_| model_path.to_path_buf()),
            folder: std::fs::canonicalize(&folder.root)
                .or_else(|_| std::path::absolute(&folder.root))
                .unwrap_or_else(|_| folder.root.clone()),
            dimension,
            images,
            skipped: all_skipped,
            vectors_checksum: None,
            exclude: folder.exclude.clone(),
        };
        Ok((Self::from_parts(header, vectors)?, changes))
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
        Ok(Self {
            header,
            vectors,
            index,
        })
    }

    pub fn len(&self) -> usize {
        self.header.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.header.images.is_empty()
    }

    /// The stored vector of image `i`.
    pub fn vector(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.header.dimension..(i + 1) * self.header.dimension]
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
        let result = self.index.search(queries, k)?;
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
        let vector_bytes: Vec<u8> = self.vectors.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut header = self.header.clone();
        header.vectors_checksum = Some(checksum(&vector_bytes));
        let header = serde_json::to_vec(&header).map_err(|e| EngineError::Config(e.to_string()))?;
        let mut bytes =
            Vec::with_capacity(INDEX_MAGIC.len() + 12 + header.len() + vector_bytes.len());
        bytes.extend_from_slice(INDEX_MAGIC);
        bytes.extend_from_slice(&INDEX_FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&(header.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(&vector_bytes);
        Ok(bytes)
    }

    /// Writes the index file atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        super::atomic::write_atomic(path, &self.to_bytes()?)
    }

    /// Reads an index file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| EngineError::io(path, e))?;
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

/// An index opened together with the model that built it, ready to search.
pub struct SearchSession {
    pub gallery: Gallery,
    pub model: EmbeddingModel,
    pub model_info: ModelInfo,
    pub model_path: PathBuf,
    pub max_pixels: u64,
}

impl std::fmt::Debug for SearchSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchSession")
            .field("gallery", &self.gallery)
            .field("model_path", &self.model_path)
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
        let (model, model_info) = super::model::load_model(&model_path, device)?;
        gallery.check_model(index_path, &model_path, &model_info)?;
        Ok(Self {
            gallery,
            model,
            model_info,
            model_path,
            max_pixels: super::data::DEFAULT_MAX_PIXELS,
        })
    }

    /// The nearest `k` gallery images to the image file at `query`.
    pub fn search_file(&mut self, query: &Path, k: usize) -> Result<Vec<SearchHit>> {
        let size = TargetSize::ShortSide(self.model.config.preprocess.image_size_px);
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
        search_image(&self.model, &mut self.gallery, image, k)
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
    let preprocess = &model.config.preprocess;
    let mut pixels = vec![0.0f32; preprocess.floats_per_image()];
    preprocess.write_plain(image, &mut pixels);
    let vector = model.embed_pixels(&pixels, 1)?;
    gallery.search(&vector, k)
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
        };
        Gallery::from_parts(header, vectors.iter().flatten().copied().collect()).expect("gallery")
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
