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
    if path.file_name().is_none() {
        return Err(EngineError::bad_file(path, "not a file path"));
    }
    remove_stale_temporaries(&parent);
    // A short name of its own, not the destination's name plus a suffix: a destination
    // name of any legal length still leaves room for it.
    let temp_path = parent.join(temporary_name());
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp_path)
            .map_err(|e| EngineError::io(&temp_path, e))?;
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

/// Prefix of every temporary file and folder Likeness writes.
pub const TEMPORARY_PREFIX: &str = ".likeness-tmp-";

/// A fresh temporary name: the prefix, this process's id and a random part.
pub fn temporary_name() -> String {
    format!(
        "{TEMPORARY_PREFIX}{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    )
}

/// Temporaries older than this are stale whatever their process (ids are reused).
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Removes what killed saves left in `folder`: Likeness temporaries (and the
/// `.NAME.tmp-PID-RAND` files of earlier versions) whose process is gone. A temporary of
/// a process still running is being written and is left alone. Best effort: a folder
/// that cannot be listed is simply not cleaned.
pub fn remove_stale_temporaries(folder: &Path) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(pid) = temporary_pid(name) else {
            continue;
        };
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_AFTER);
        if pid != std::process::id() && (old || !process_is_running(pid)) {
            let path = entry.path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path).ok();
            } else {
                std::fs::remove_file(&path).ok();
            }
        }
    }
}

/// The process id in a temporary's name, if the name is one of ours.
fn temporary_pid(name: &str) -> Option<u32> {
    let rest = match name.strip_prefix(TEMPORARY_PREFIX) {
        Some(rest) => rest,
        // Earlier versions: ".{file name}.tmp-{pid}-{random}".
        None if name.starts_with('.') => &name[name.rfind(".tmp-")? + ".tmp-".len()..],
        None => return None,
    };
    let (pid, random) = rest.split_once('-')?;
    if random.is_empty() || !random.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    pid.parse().ok()
}

/// Whether the process with this id is still running (on Linux, from `/proc`).
#[cfg(target_os = "linux")]
pub fn process_is_running(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Without a cheap way to ask, a temporary counts as live until it is a day old.
#[cfg(not(target_os = "linux"))]
pub fn process_is_running(_pid: u32) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_killed_saves_temporary_is_removed_by_the_next_save_and_a_live_one_is_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        // A process id that is not running (above the kernel's pid_max default).
        let dead = dir
            .path()
            .join(format!("{TEMPORARY_PREFIX}4194399-0badf00d"));
        let legacy = dir.path().join(".model.safetensors.tmp-4194398-12345");
        let live = dir
            .path()
            .join(format!("{TEMPORARY_PREFIX}{}-00000001", std::process::id()));
        let users = dir.path().join(".my-notes.tmp-draft");
        for file in [&dead, &legacy, &live, &users] {
            std::fs::write(file, b"partial").expect("write");
        }
        write_atomic(&dir.path().join("model.safetensors"), b"model").expect("save");
        assert!(!dead.exists() && !legacy.exists(), "stale temporaries left");
        assert!(
            live.exists(),
            "a temporary of a running process was removed"
        );
        assert!(users.exists(), "a file that is not ours was removed");
    }

    #[test]
    fn a_destination_name_of_255_bytes_can_be_written() {
        let dir = tempfile::tempdir().expect("temp dir");
        let name = format!("{}.jpg", "a".repeat(251));
        write_atomic(&dir.path().join(&name), b"photo").expect("long name");
        assert_eq!(
            std::fs::read(dir.path().join(name)).expect("read"),
            b"photo"
        );
    }

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
