//! The index file: a magic tag, a JSON header (format version, the model id and path,
//! the folder, the images and their classes) and the vectors. Format 1 holds the raw
//! vectors (exact search: the faiss `IndexFlatL2` is rebuilt from them on load, so the
//! file format stays ours); format 2 holds faiss' serialisation of an approximate index
//! in their place, and each image carries an id (`GalleryHeader::ids`, ascending) by
//! which photos are added to and removed from that index without training it again.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ann::{ApproximateIndex, SearchMethod};
use super::{Gallery, Store};
use crate::engine::data::{ImageFile, SkippedFile};
use crate::engine::files::{FileKind, Fnv1a, sniff};
use crate::engine::model::ModelInfo;
use crate::engine::{EngineError, Result};

pub use crate::engine::files::INDEX_MAGIC;
pub use crate::engine::files::{
    EXACT_INDEX_FORMAT_VERSION as EXACT_FORMAT_VERSION, INDEX_FORMAT_VERSION,
};

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
    /// A checksum of the vector bytes as written, so damage is caught on load: "xxh3:"
    /// and 16 hex digits, or (indexes written before 2026-11-30) FNV-1a as 16 hex digits;
    /// absent in indexes written before checksums were added.
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

/// The checksum new index files record: XXH3 (64-bit). FNV-1a, which earlier files
/// record, goes a byte at a time: checking a 2 GiB index (a million 512-d photos) took
/// 2.6 s against 0.08 s for XXH3 (docs/benchmarks.md, "Checksums").
fn checksum(bytes: &[u8]) -> String {
    format!("{XXH3_PREFIX}{:016x}", xxhash_rust::xxh3::xxh3_64(bytes))
}

const XXH3_PREFIX: &str = "xxh3:";

/// Whether `bytes` match the checksum an index file recorded, in whichever algorithm it
/// was written with.
fn checksum_matches(recorded: &str, bytes: &[u8]) -> bool {
    if recorded.starts_with(XXH3_PREFIX) {
        recorded == checksum(bytes)
    } else {
        let mut hash = Fnv1a::default();
        hash.write(bytes);
        recorded == hash.hex()
    }
}

/// About how many bytes an index of `images` photos of `dimension`-d vectors takes (the
/// vectors as f32, plus each photo's path, class and fingerprint in the header), for
/// checking the disk has room before the work.
pub fn index_bytes_estimate(images: usize, dimension: usize) -> u64 {
    // A photo's header entry is its path, class and fingerprint: about 200 bytes on a
    // real library; 320 leaves room for long paths without asking 100 times too much.
    const HEADER_BYTES_PER_PHOTO: u64 = 320;
    const FILE_HEADER_BYTES: u64 = 1024;
    FILE_HEADER_BYTES + images as u64 * (dimension as u64 * 4 + HEADER_BYTES_PER_PHOTO)
}

impl Gallery {
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
        crate::engine::output::write_or_rescue(path, &self.to_bytes()?)
    }

    /// Reads an index file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = crate::engine::files::read_regular(path, MAX_INDEX_FILE_BYTES, "an index")?;
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
            && !checksum_matches(recorded, vector_bytes)
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
        if !header
            .vectors_checksum
            .as_deref()
            .is_some_and(|recorded| checksum_matches(recorded, index_bytes))
        {
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
