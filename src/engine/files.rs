//! Likeness' own file kinds: every format constant, and the one sniffer that tells them
//! apart, so that the model and index loaders can say "this is an index, not a model"
//! without knowing each other, and an output recognises its own earlier files
//! ([`OutputKind`]). Below every other room: it knows no model, index or training.

use std::io::Read;
use std::path::{Path, PathBuf};

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
            human_bytes(limit)
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
/// Newest index format this build reads: 1 holds raw vectors (exact search), 2 an
/// approximate faiss index. Exact indexes are still written as format 1 so that earlier
/// builds keep reading them.
pub const INDEX_FORMAT_VERSION: u32 = 2;
/// The format exact indexes are written in.
pub const EXACT_INDEX_FORMAT_VERSION: u32 = 1;
/// Newest model format this build reads and the one it writes.
pub const MODEL_FORMAT_VERSION: u32 = 1;
/// Newest training-state format this build reads and the one it writes.
pub const TRAIN_STATE_FORMAT_VERSION: u32 = 2;
/// What a marks file says it is.
pub const MARKS_FORMAT: &str = "likeness-marks";
/// What the first line of every sort journal says it is, and its newest format.
pub const JOURNAL_KIND: &str = "sort-journal";
pub const JOURNAL_VERSION: u32 = 2;

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

/// The `likeness.format` metadata value of model files.
pub const MODEL_FORMAT: &str = "likeness-model";
/// The `likeness.format` metadata value of training-state files.
pub const TRAIN_STATE_FORMAT: &str = "likeness-train-state";

/// A hash of what the file at `path` is now: its path, size and modification time, then
/// `extra`; a changed file hashes differently (the names of cache entries). `None` when
/// its metadata cannot be read.
pub fn stamp_hash(path: &Path, extra: &[&[u8]]) -> Option<Fnv1a> {
    let metadata = std::fs::metadata(path).ok()?;
    let modified = metadata
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    let mut hash = Fnv1a::default();
    hash.write(path.as_os_str().as_encoded_bytes());
    hash.write(&metadata.len().to_le_bytes());
    hash.write(&modified.as_nanos().to_le_bytes());
    for part in extra {
        hash.write(part);
    }
    Some(hash)
}

/// Likeness's folder in the user's data directory (e.g. `~/.local/share/likeness`): the
/// shipped weights, models, sort journals, rescued saves.
pub fn user_data_dir() -> PathBuf {
    directories::ProjectDirs::from("", "", "Likeness").map_or_else(
        || PathBuf::from(".likeness"),
        |dirs| dirs.data_dir().to_path_buf(),
    )
}

/// What an output file is for. Each kind recognises only its own earlier files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// A Likeness index (`likeness index --index`).
    Index,
    /// A Likeness model (`likeness train --out`).
    Model,
    /// A map picture (`likeness map --out x.png`), marked as Likeness' in a PNG text chunk.
    MapPng,
    /// A map table (`likeness map --out x.csv`), known by its header line.
    MapCsv,
    /// The duplicates list (`likeness duplicates --others-csv`), known by its header line.
    DuplicatesCsv,
    /// The state a training run leaves beside its model, for `likeness train --resume`.
    TrainState,
}

/// Header line of `likeness map --out x.csv`.
pub const MAP_CSV_HEADER: &str = "path,class,x,y,likely_mislabelled";
/// Header line of `likeness duplicates --others-csv`.
pub const DUPLICATES_CSV_HEADER: &str = "group,path,bytes,kept,distance_to_kept,identical_to_kept";
/// The PNG text chunk (keyword `Software`) that marks a picture Likeness drew.
pub const PNG_SOFTWARE: &str = "Likeness";

impl OutputKind {
    /// What the kind is called in messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Index => "an index",
            Self::Model => "a model",
            Self::MapPng => "a map picture",
            Self::MapCsv => "a map table",
            Self::DuplicatesCsv => "a duplicates list",
            Self::TrainState => "a training state",
        }
    }

    /// Whether the file's first bytes show it is this kind's own earlier output.
    pub(crate) fn recognises(self, head: &[u8]) -> bool {
        match self {
            Self::Index => head.starts_with(INDEX_MAGIC),
            Self::Model => likeness_format(head).as_deref() == Some(MODEL_FORMAT),
            Self::TrainState => likeness_format(head).as_deref() == Some(TRAIN_STATE_FORMAT),
            Self::MapPng => png_software(head).is_some_and(|s| s.starts_with(PNG_SOFTWARE)),
            Self::MapCsv => first_line(head) == Some(MAP_CSV_HEADER),
            Self::DuplicatesCsv => first_line(head) == Some(DUPLICATES_CSV_HEADER),
        }
    }
}

/// Whether the regular file at `path` is `kind`'s own output (a file Likeness wrote of
/// that kind): what may be removed or replaced as such.
pub fn is_own(path: &Path, kind: OutputKind) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file())
        && read_head(path, SNIFF_BYTES).is_ok_and(|head| kind.recognises(&head))
}

/// How much of an existing file is read to tell what it is: a model's JSON header can be
/// large (one entry per tensor), everything else is told by its first bytes.
pub(crate) const SNIFF_BYTES: u64 = 4 << 20;

/// Reads at most `limit` bytes of a regular file, checked on the opened handle. A
/// `.safetensors` file (a model, a training state) says in its first 8 bytes how long its
/// JSON header is: only that much is read, not megabytes of weights.
pub(crate) fn read_head(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let (file, _) = open_regular(path).map_err(|e| match e {
        OpenError::Io(e) => e,
        not_regular => std::io::Error::other(not_regular.to_string()),
    })?;
    let mut file = file.take(limit);
    let mut head = Vec::new();
    (&mut file).take(8).read_to_end(&mut head)?;
    let header_end = <[u8; 8]>::try_from(head.as_slice()).map_or(limit, |length| {
        8u64.saturating_add(u64::from_le_bytes(length))
    });
    file.take(header_end.min(limit).saturating_sub(8))
        .read_to_end(&mut head)?;
    Ok(head)
}

/// What a file is, in words, from its first bytes.
pub(crate) fn describe(head: &[u8]) -> String {
    if head.starts_with(INDEX_MAGIC) {
        return "a Likeness index".into();
    }
    match likeness_format(head).as_deref() {
        Some(TRAIN_STATE_FORMAT) => {
            return "a Likeness training state".into();
        }
        Some(_) => return "a Likeness model".into(),
        None => {}
    }
    if safetensors_header(head).is_some() {
        return "a weights file (.safetensors) Likeness did not write".into();
    }
    if png_software(head).is_some_and(|s| s.starts_with(PNG_SOFTWARE)) {
        return "a map picture Likeness drew".into();
    }
    match first_line(head) {
        Some(MAP_CSV_HEADER) => return "a map table Likeness wrote".into(),
        Some(DUPLICATES_CSV_HEADER) => return "a duplicates list Likeness wrote".into(),
        _ => {}
    }
    if let Ok(format) = image::guess_format(head) {
        return format!("a photo ({format:?})");
    }
    if head.is_empty() {
        return "an empty file Likeness did not write".into();
    }
    "a file Likeness did not write".into()
}

/// The JSON header of a `.safetensors` file, if `head` starts one.
fn safetensors_header(head: &[u8]) -> Option<serde_json::Value> {
    let length = u64::from_le_bytes(head.get(..8)?.try_into().ok()?);
    let end = 8usize.checked_add(usize::try_from(length).ok()?)?;
    serde_json::from_slice(head.get(8..end)?).ok()
}

/// The `likeness.format` of a safetensors file Likeness wrote (a model, a training state).
fn likeness_format(head: &[u8]) -> Option<String> {
    safetensors_header(head).and_then(|header| {
        header
            .get("__metadata__")
            .and_then(|m| m.get("likeness.format"))
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
    })
}

/// The text of a PNG's `Software` text chunk, looked for before the image data.
fn png_software(head: &[u8]) -> Option<String> {
    let mut rest = head.strip_prefix(b"\x89PNG\r\n\x1a\n")?;
    while rest.len() >= 8 {
        let length = u32::from_be_bytes(rest[..4].try_into().ok()?) as usize;
        let kind = &rest[4..8];
        let data = rest.get(8..8 + length)?;
        if kind == b"tEXt"
            && let Some(text) = data.strip_prefix(b"Software\0")
        {
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        if kind == b"IDAT" {
            return None;
        }
        rest = rest.get(8 + length + 4..)?;
    }
    None
}

fn first_line(head: &[u8]) -> Option<&str> {
    let end = head.iter().position(|&b| b == b'\n')?;
    std::str::from_utf8(&head[..end])
        .ok()
        .map(|line| line.trim_end_matches('\r'))
}

/// A byte count for people: "3.2 GB", "512 kB".
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
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
