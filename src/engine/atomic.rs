//! Atomic file writes: a process killed mid-write leaves the previous file intact.
//!
//! We write a temporary file in the destination folder (same file system, so `rename`
//! is atomic), flush it to disk, then rename it over the destination.

use std::io::Write;
use std::path::Path;

use super::{EngineError, Result};

/// Writes `bytes` to `path` atomically, creating the parent folder if needed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(
        path,
        |file| file.write_all(bytes).map_err(|e| EngineError::io(path, e)),
        |_| Ok(()),
    )
}

/// Writes `path` atomically from a stream: `write` fills the temporary file, `verify`
/// inspects it once it is complete and on disk (and returns what it learned); the file
/// replaces `path` only if both succeed. On any failure (including `write` returning [`EngineError::Cancelled`]) the
/// temporary file is removed and `path` is untouched.
pub fn write_atomic_with<T>(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> Result<()>,
    verify: impl FnOnce(&Path) -> Result<T>,
) -> Result<T> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| EngineError::io(&parent, e))?;
    let file_name = path
        .file_name()
        .ok_or_else(|| EngineError::bad_file(path, "not a file path"))?
        .to_string_lossy();
    let temp_path = parent.join(format!(
        ".{file_name}.tmp-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    let result = (|| {
        let mut file =
            std::fs::File::create(&temp_path).map_err(|e| EngineError::io(&temp_path, e))?;
        write(&mut file)?;
        file.sync_all()
            .map_err(|e| EngineError::io(&temp_path, e))?;
        drop(file);
        let verified = verify(&temp_path)?;
        std::fs::rename(&temp_path, path).map_err(|e| EngineError::io(path, e))?;
        Ok(verified)
    })();
    if result.is_err() {
        // The temporary file is ours and useless after a failure; the destination is untouched.
        std::fs::remove_file(&temp_path).ok();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_existing_file_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("model.likeness");
        write_atomic(&path, b"first").expect("first write");
        write_atomic(&path, b"second").expect("second write");
        assert_eq!(std::fs::read(&path).expect("read"), b"second");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 1, "temporaries left behind: {names:?}");
    }

    #[test]
    fn failed_write_keeps_previous_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("index.likeness");
        write_atomic(&path, b"previous").expect("write");
        // A destination that is a directory cannot be replaced by rename.
        let blocked = dir.path().join("blocked");
        std::fs::create_dir(&blocked).expect("mkdir");
        std::fs::write(blocked.join("x"), b"x").expect("fill");
        assert!(write_atomic(&blocked, b"new").is_err());
        assert_eq!(std::fs::read(&path).expect("read"), b"previous");
    }

    #[test]
    fn refused_stream_keeps_previous_file_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("weights.safetensors");
        write_atomic(&path, b"previous").expect("write");
        let refused: Result<()> = write_atomic_with(
            &path,
            |file| {
                file.write_all(b"garbage")
                    .map_err(|e| EngineError::io(&path, e))
            },
            |written| {
                assert_eq!(std::fs::read(written).expect("read temp"), b"garbage");
                Err(EngineError::bad_file(written, "not weights"))
            },
        );
        assert!(refused.is_err());
        let cancelled = write_atomic_with(&path, |_| Err(EngineError::Cancelled), |_| Ok(()));
        assert!(matches!(cancelled, Err(EngineError::Cancelled)));
        assert_eq!(std::fs::read(&path).expect("read"), b"previous");
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1);
    }
}
