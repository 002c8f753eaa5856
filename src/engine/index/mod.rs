//! The gallery: a folder's images embedded by one model, searchable with faiss.
//!
//! - [`format`]: the index file (header, checks, bytes in and out);
//! - [`embed`]: photos to vectors, in batches decoded ahead of the network;
//! - [`update`]: a folder against its earlier index ([`FolderDiff`]), build and update;
//! - [`search`]: nearest neighbours, and [`SearchSession`] for an index and its model;
//! - [`ann`]: the approximate index that large galleries use.
//!
//! An exact gallery keeps its raw vectors and a faiss `IndexFlatL2` over them; an
//! approximate one keeps only faiss' compressed index (see [`ann`]).

pub mod ann;
pub mod embed;
pub mod format;
pub mod search;
pub mod update;

use faiss::Index;
use faiss::index::flat::FlatIndex;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::engine::data::LabeledDataset;
use crate::engine::{EngineError, Result};
use ann::{ApproximateIndex, MethodChoice, SearchMethod};

pub use embed::{Embedded, ProgressFn, embed_files, embed_files_until_cancelled, embed_image};
pub use format::{GalleryHeader, INDEX_FORMAT_VERSION, INDEX_MAGIC, index_bytes_estimate};
pub use search::{SearchSession, search_image};
pub use update::FolderDiff;

use format::EXACT_FORMAT_VERSION;

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

impl Gallery {
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

    /// The photos' paths, in index order.
    pub fn paths(&self) -> Vec<std::path::PathBuf> {
        self.header.images.iter().map(|i| i.path.clone()).collect()
    }

    /// The class folders in name order, and each photo's class (an index into them; `None`
    /// for a photo in no class folder), in index order.
    pub fn class_labels(&self) -> (Vec<String>, Vec<Option<usize>>) {
        let mut names: Vec<String> = self
            .header
            .images
            .iter()
            .filter_map(|i| i.class.clone())
            .collect();
        names.sort();
        names.dedup();
        let classes = self
            .header
            .images
            .iter()
            .map(|i| i.class.as_ref().and_then(|c| names.binary_search(c).ok()))
            .collect();
        (names, classes)
    }

    /// Every stored vector, image after image (`len() × dimension` floats), or `None` for
    /// an approximate gallery, which keeps none.
    pub fn all_vectors(&self) -> Option<&[f32]> {
        match &self.store {
            Store::Exact { vectors, .. } => Some(vectors),
            Store::Approximate(_) => None,
        }
    }
}

/// A 2-d exact gallery of `vectors` for tests: photo `i` is `photos/{even|odd}/{i}.jpg`,
/// of the class "even" or "odd".
/// An in-memory gallery (for measuring, not for saving) of the images of `set` that were
/// embedded: `embedded[j]` is the position in `set.images` of the `j`-th vector.
pub fn labelled_gallery(
    folder: &Path,
    model_id: &str,
    set: &LabeledDataset,
    embedded: &[usize],
    vectors: Vec<f32>,
    dimension: usize,
) -> Result<Gallery> {
    let header = GalleryHeader {
        format_version: INDEX_FORMAT_VERSION,
        model_id: model_id.to_string(),
        model_path: PathBuf::new(),
        folder: folder.to_path_buf(),
        dimension,
        images: embedded
            .iter()
            .map(|&i| {
                crate::engine::data::ImageFile::new(
                    set.images[i].0.clone(),
                    Some(set.classes[set.images[i].1].clone()),
                )
            })
            .collect(),
        skipped: Vec::new(),
        vectors_checksum: None,
        exclude: Vec::new(),
        search: Default::default(),
        ids: Vec::new(),
    };
    Gallery::from_parts(header, vectors)
}

#[cfg(test)]
pub(crate) fn test_gallery(vectors: &[[f32; 2]]) -> Gallery {
    let header = GalleryHeader {
        format_version: INDEX_FORMAT_VERSION,
        model_id: "m".into(),
        model_path: "m.safetensors".into(),
        folder: "photos".into(),
        dimension: 2,
        images: (0..vectors.len())
            .map(|i| {
                crate::engine::data::ImageFile::new(
                    format!("photos/{}/{i}.jpg", if i % 2 == 0 { "even" } else { "odd" }).into(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::data::ImageFile;
    use crate::engine::model::LoadedModel;
    use std::sync::atomic::AtomicBool;

    fn gallery_of(vectors: &[[f32; 2]]) -> Gallery {
        test_gallery(vectors)
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
        let (first, _) =
            Gallery::update(&loaded, &scan(), None, &options, &|_| {}, &no_cancel).expect("index");
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
            &|_| {},
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
            &|_| {},
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

    /// `bytes` of an index file with its header's checksum replaced by `checksum`.
    fn with_checksum(bytes: &[u8], checksum: &str) -> Vec<u8> {
        let at = INDEX_MAGIC.len();
        let header_len =
            u64::from_le_bytes(bytes[at + 4..at + 12].try_into().expect("len")) as usize;
        let mut header: serde_json::Value =
            serde_json::from_slice(&bytes[at + 12..at + 12 + header_len]).expect("header");
        header["vectors_checksum"] = checksum.into();
        let header = serde_json::to_vec(&header).expect("json");
        let mut out = bytes[..at + 4].to_vec();
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&bytes[at + 12 + header_len..]);
        out
    }

    #[test]
    fn an_index_checksummed_with_fnv_by_an_earlier_build_still_opens_and_damage_is_caught() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("old.likeness-index");
        let gallery = gallery_of(&[[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]]);
        let bytes = gallery.to_bytes().expect("bytes");
        let vectors: Vec<u8> = [0.0f32, 0.0, 1.0, 0.0, 5.0, 5.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert!(bytes.ends_with(&vectors));
        let mut fnv = crate::engine::files::Fnv1a::default();
        fnv.write(&vectors);
        let old = with_checksum(&bytes, &fnv.hex());
        std::fs::write(&path, &old).expect("write");
        assert_eq!(
            Gallery::load(&path).expect("an earlier index opens").len(),
            3
        );
        let mut flipped = old;
        let last = flipped.len() - 2;
        flipped[last] ^= 0x01;
        std::fs::write(&path, &flipped).expect("write");
        let error = Gallery::load(&path).expect_err("flipped").to_string();
        assert!(error.contains("checksum"), "{error}");
        // New files say which checksum they carry.
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("\"vectors_checksum\":\"xxh3:"), "{text}");
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
