//! Likeness' own file kinds, and the one sniffer that tells them apart, so that the model
//! and index loaders can say "this is an index, not a model" without knowing each other.

use std::io::Read;
use std::path::Path;

use super::{EngineError, Result};

/// Reads a whole file that must be a regular file of at most `limit` bytes (house style
/// 18). The check is made on the opened handle, so a file swapped for a pipe or a link to
/// `/dev/zero` after a scan is caught, and the read stops at the bound instead of filling
/// memory. `kind` names what the file should be, for the message ("manifest").
pub fn read_regular(path: &Path, limit: u64, kind: &str) -> Result<Vec<u8>> {
    let (file, metadata) = open_regular(path).map_err(|e| match e {
        OpenError::Io(e) => EngineError::io(path, e),
        OpenError::NotRegular => EngineError::bad_file(
            path,
            format!("not a regular file (a pipe, device, socket or folder), so not {kind}"),
        ),
    })?;
    if metadata.len() > limit {
        return Err(too_large(path, limit, kind));
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| EngineError::io(path, e))?;
    if bytes.len() as u64 > limit {
        // It grew while being read.
        return Err(too_large(path, limit, kind));
    }
    Ok(bytes)
}

/// Why [`open_regular`] failed.
#[derive(Debug)]
pub enum OpenError {
    Io(std::io::Error),
    /// A pipe, device, socket or folder.
    NotRegular,
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(e) => f.write_str(&super::error::io_reason(e)),
            Self::NotRegular => f.write_str("not a regular file (a pipe, device or socket)"),
        }
    }
}

/// Opens `path` for reading only if it is a regular file, checked on the opened handle.
/// On Unix it is opened non-blocking, so that a named pipe (which would wait for a
/// writer forever) is opened at once and then refused.
pub fn open_regular(
    path: &Path,
) -> std::result::Result<(std::fs::File, std::fs::Metadata), OpenError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Without effect on regular files; reads of one never return EAGAIN.
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(OpenError::Io)?;
    let metadata = file.metadata().map_err(OpenError::Io)?;
    if !metadata.is_file() {
        return Err(OpenError::NotRegular);
    }
    Ok((file, metadata))
}

fn too_large(path: &Path, limit: u64, kind: &str) -> EngineError {
    EngineError::bad_file(
        path,
        format!(
            "larger than {kind} can be ({}), so not one",
            super::output::human_bytes(limit)
        ),
    )
}

/// Name of an export's JSON manifest; a folder holding a Likeness one is an export.
pub const EXPORT_MANIFEST_JSON: &str = "results.json";
/// What a manifest says wrote it.
pub const EXPORT_GENERATOR: &str = "Likeness";
/// The largest export manifest or journal read back (a million results is ~200 MB of JSON).
pub const MAX_MANIFEST_BYTES: u64 = 256 << 20;

/// Whether `folder` holds a Likeness export (its manifest names Likeness as generator).
/// Scans leave such folders out: exported copies are not more photos of the library.
pub fn is_export_folder(folder: &Path) -> bool {
    let Ok(bytes) = read_regular(
        &folder.join(EXPORT_MANIFEST_JSON),
        MAX_MANIFEST_BYTES,
        "a manifest",
    ) else {
        return false;
    };
    #[derive(serde::Deserialize)]
    struct Generator {
        #[serde(default)]
        generator: String,
    }
    serde_json::from_slice::<Generator>(&bytes).is_ok_and(|m| m.generator == EXPORT_GENERATOR)
}

/// First bytes of every index file.
pub const INDEX_MAGIC: &[u8] = b"LIKENESS-INDEX\n";

/// 64-bit FNV-1a: the stable hash behind model ids, index checksums and thumbnail cache
/// names (std's hasher may change between Rust releases, which would change them all).
#[derive(Debug, Clone, Copy)]
pub struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    pub fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub fn finish(self) -> u64 {
        self.0
    }

    /// The hash as 16 hex digits.
    pub fn hex(self) -> String {
        format!("{:016x}", self.0)
    }
}

/// What a file's first bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A Likeness index (`.likeness-index`).
    Index,
    /// A `.safetensors` file: a Likeness model, or weights from elsewhere.
    Safetensors,
    /// A PyTorch pickle (`.pt`/`.pth`), which Likeness never loads.
    Pickle,
    Unknown,
}

/// Tells the file kinds apart from their first bytes.
pub fn sniff(bytes: &[u8]) -> FileKind {
    if bytes.starts_with(INDEX_MAGIC) {
        FileKind::Index
    } else if safetensors::SafeTensors::read_metadata(bytes).is_ok() {
        FileKind::Safetensors
    } else if bytes.first() == Some(&0x80) || bytes.starts_with(b"PK\x03\x04") {
        // Pickle protocol 2+ starts with 0x80; torch.save writes a zip archive.
        FileKind::Pickle
    } else {
        FileKind::Unknown
    }
}

/// Whether the folder `inner` is `outer` or lies inside it, told by each folder's device
/// and inode rather than by its path: a bind mount, a link or a second name of the same
/// folder is caught (two paths may differ and still be one folder). A path that does not
/// exist is neither.
pub fn folder_within(inner: &Path, outer: &Path) -> bool {
    let Some(outer) = folder_identity(outer) else {
        return false;
    };
    let Ok(inner) = std::fs::canonicalize(inner) else {
        return false;
    };
    inner
        .ancestors()
        .any(|ancestor| folder_identity(ancestor) == Some(outer))
}

/// Whether two paths name the same folder (device and inode).
pub fn same_folder(a: &Path, b: &Path) -> bool {
    matches!((folder_identity(a), folder_identity(b)), (Some(a), Some(b)) if a == b)
}

/// A folder's device and inode (through links).
fn folder_identity(path: &Path) -> Option<(u64, u64)> {
    let metadata = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((metadata.dev(), metadata.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = metadata;
        std::fs::canonicalize(path).ok().map(|p| {
            (
                0,
                xxhash_rust::xxh3::xxh3_64(p.as_os_str().as_encoded_bytes()),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn pipes_devices_and_oversized_files_are_refused_without_reading_them() {
        let dir = tempfile::tempdir().expect("temp dir");
        let error = read_regular(Path::new("/dev/zero"), 1 << 20, "a manifest")
            .expect_err("a device")
            .to_string();
        assert!(error.contains("not a regular file"), "{error}");
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
        // Opened without waiting for a writer, then refused.
        let error = read_regular(&fifo, 1 << 20, "a manifest").expect_err("a pipe");
        assert!(error.to_string().contains("not a regular file"), "{error}");
        let big = dir.path().join("big.json");
        std::fs::write(&big, vec![b' '; 2000]).expect("write");
        let error = read_regular(&big, 1000, "a manifest")
            .expect_err("too large")
            .to_string();
        assert!(error.contains("larger than a manifest can be"), "{error}");
        assert_eq!(
            read_regular(&big, 2000, "a manifest").expect("fits").len(),
            2000
        );
    }

    #[test]
    fn each_kind_is_told_apart() {
        assert_eq!(sniff(b"LIKENESS-INDEX\n\x01\x00\x00\x00"), FileKind::Index);
        assert_eq!(sniff(b"\x80\x02}q\x00"), FileKind::Pickle);
        assert_eq!(sniff(b"hello"), FileKind::Unknown);
        let tensors: Vec<(&str, safetensors::tensor::TensorView<'_>)> = Vec::new();
        let bytes = safetensors::serialize(tensors, None).expect("serialise");
        assert_eq!(sniff(&bytes), FileKind::Safetensors);
    }
}
