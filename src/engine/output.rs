//! Outputs that replace only their own kind (house style 17): before any work, an output
//! path must be new or hold a file Likeness wrote for the same purpose, must not be one of
//! the command's inputs, and must be writable with room to spare. A save that fails anyway
//! keeps its bytes in a rescue folder the error names, so an hour of work is not lost.

use std::path::{Path, PathBuf};

use super::files::{OutputKind, PNG_SOFTWARE, SNIFF_BYTES, describe, human_bytes, read_head};
use super::{EngineError, Result};

/// Room left on the disk beyond the output itself, so a save does not fill it to the brim:
/// an eighth of the output, and at least this much. Proportional, so a 3-kB index asks for
/// about 67 kB, not the 16 MB a fixed margin once asked (and a small disk was refused).
const MIN_SPARE_BYTES: u64 = 64 << 10;

/// The bytes an output of `bytes` needs free: itself and its margin.
pub fn bytes_needed_with_margin(bytes: u64) -> u64 {
    bytes
        .saturating_add(bytes / 8)
        .saturating_add(MIN_SPARE_BYTES)
}

/// One of a command's inputs, named for messages (`--model`, `--folder`).
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub flag: &'a str,
    pub path: &'a Path,
}

/// Checks, before any work, that `path` may receive an output of `kind` of about
/// `bytes_needed` bytes: it is new or Likeness' own earlier output of that kind, it is not
/// one of `inputs` (nor inside an input folder that is to be replaced), its folder can be
/// written, and the disk has room. The error names the path and what is there.
pub fn check_output(
    path: &Path,
    kind: OutputKind,
    inputs: &[Input<'_>],
    bytes_needed: u64,
) -> Result<()> {
    if path.as_os_str().is_empty() || path.file_name().is_none() {
        return Err(EngineError::bad_file(path, "not a file path"));
    }
    let refuse = |what: String| {
        EngineError::bad_file(
            path,
            format!(
                "{what}; Likeness writes {} only to a new file or over one it wrote itself \
                 (nothing was done; choose another path)",
                kind.describe()
            ),
        )
    };
    match std::fs::symlink_metadata(path) {
        Ok(_) => {
            for input in inputs {
                if same_file(path, input.path) {
                    return Err(EngineError::bad_file(
                        path,
                        format!(
                            "is this command's {} as well; an output never replaces an input \
                             (nothing was done; choose another path)",
                            input.flag
                        ),
                    ));
                }
            }
            let what = what_is_there(path);
            match what {
                Existing::Ours(head) if kind.recognises(&head) => {}
                Existing::Ours(head) => return Err(refuse(format!("is {}", describe(&head)))),
                Existing::Other(what) => return Err(refuse(format!("is {what}"))),
            }
        }
        // Nothing there (or a file stands where a folder of the path should be, which the
        // writability check below reports).
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) => {}
        Err(e) => return Err(EngineError::io(path, e)),
    }
    check_writable(path, bytes_needed)
}

/// What an existing path holds: a regular file's first bytes, or a description of what
/// else it is.
enum Existing {
    Ours(Vec<u8>),
    Other(String),
}

fn what_is_there(path: &Path) -> Existing {
    let Ok(metadata) = std::fs::metadata(path) else {
        return Existing::Other("a broken link or cannot be read".into());
    };
    if metadata.is_dir() {
        return Existing::Other("a folder".into());
    }
    if !metadata.is_file() {
        return Existing::Other("not a regular file (a pipe, device or socket)".into());
    }
    match read_head(path, SNIFF_BYTES) {
        Ok(head) => Existing::Ours(head),
        Err(e) => Existing::Other(format!("a file that cannot be read ({e})")),
    }
}

/// Adds a `Software: Likeness` text chunk right after a PNG's header chunk, so that a
/// later run recognises the picture as its own.
pub fn mark_png(png: &[u8]) -> Vec<u8> {
    const SIGNATURE_AND_IHDR: usize = 8 + 4 + 4 + 13 + 4;
    if png.len() < SIGNATURE_AND_IHDR || !png.starts_with(b"\x89PNG\r\n\x1a\n") {
        return png.to_vec();
    }
    let mut data = b"Software\0".to_vec();
    data.extend_from_slice(PNG_SOFTWARE.as_bytes());
    let mut chunk = Vec::with_capacity(data.len() + 12);
    chunk.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(b"tEXt");
    crc.update(&data);
    chunk.extend_from_slice(b"tEXt");
    chunk.extend_from_slice(&data);
    chunk.extend_from_slice(&crc.finalize().to_be_bytes());
    let mut marked = Vec::with_capacity(png.len() + chunk.len());
    marked.extend_from_slice(&png[..SIGNATURE_AND_IHDR]);
    marked.extend_from_slice(&chunk);
    marked.extend_from_slice(&png[SIGNATURE_AND_IHDR..]);
    marked
}

/// Whether two paths name the same file on disk (through links, `..` or hard links).
pub fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(a), Ok(b)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return a.dev() == b.dev() && a.ino() == b.ino();
        }
    }
    matches!(
        (std::fs::canonicalize(a), std::fs::canonicalize(b)),
        (Ok(a), Ok(b)) if a == b
    )
}

/// The folder an output is written into (created if missing, as the save would).
fn output_folder(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Checks that a file can be created next to `path` and that the disk has room for
/// `bytes_needed` more bytes: a temporary file is created and removed.
pub fn check_writable(path: &Path, bytes_needed: u64) -> Result<()> {
    let folder = output_folder(path);
    std::fs::create_dir_all(&folder).map_err(|e| cannot_write(path, &folder, &e))?;
    let probe = folder.join(super::atomic::temporary_name());
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe);
    match created {
        Ok(file) => {
            drop(file);
            std::fs::remove_file(&probe).ok();
        }
        Err(e) => return Err(cannot_write(path, &folder, &e)),
    }
    check_room(path, bytes_needed)
}

/// Checks that the disk holding `path`'s folder has room for `bytes_needed` more bytes
/// (once the output is known to be allowed, when its size is known only later).
pub fn check_room(path: &Path, bytes_needed: u64) -> Result<()> {
    let folder = output_folder(path);
    if let Some(free) = free_bytes(&folder) {
        let needed = bytes_needed_with_margin(bytes_needed);
        if free < needed {
            return Err(EngineError::bad_file(
                path,
                format!(
                    "the disk holding {} has {} free and the output needs about {} (nothing \
                     was done; free some space or choose another place)",
                    folder.display(),
                    human_bytes(free),
                    human_bytes(needed)
                ),
            ));
        }
    }
    Ok(())
}

fn cannot_write(path: &Path, folder: &Path, error: &std::io::Error) -> EngineError {
    EngineError::bad_file(
        path,
        format!(
            "cannot be written: the folder {} does not take new files ({}); nothing was \
             done, choose another place",
            folder.display(),
            super::error::io_reason(error)
        ),
    )
}

/// Bytes free for an unprivileged user on the disk holding `folder`.
fn free_bytes(folder: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        rustix::fs::statvfs(folder)
            .ok()
            .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
    }
    #[cfg(not(unix))]
    {
        let _ = folder;
        None
    }
}

/// Where a result whose save failed is kept: the user data folder's `rescued/`, or the
/// temporary folder when that cannot be made.
pub fn rescue_folder() -> PathBuf {
    let folder = super::files::user_data_dir().join("rescued");
    if std::fs::create_dir_all(&folder).is_ok() {
        folder
    } else {
        std::env::temp_dir()
    }
}

/// Writes `bytes` to `path` atomically; when that fails, writes them into the rescue
/// folder instead and returns an error that names both the failure and where the result
/// was kept.
pub fn write_or_rescue(path: &Path, bytes: &[u8]) -> Result<()> {
    let Err(error) = super::atomic::write_atomic(path, bytes) else {
        return Ok(());
    };
    let name = path
        .file_name()
        .map_or_else(|| "result".into(), |n| n.to_string_lossy().into_owned());
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let kept = [rescue_folder(), std::env::temp_dir()]
        .into_iter()
        .map(|folder| folder.join(format!("{stamp}-{}-{name}", std::process::id())))
        .find(|candidate| super::atomic::write_atomic(candidate, bytes).is_ok());
    Err(match kept {
        Some(kept) => EngineError::Rescued {
            path: path.to_path_buf(),
            reason: error.to_string(),
            kept_at: kept,
        },
        None => error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::files::{DUPLICATES_CSV_HEADER, INDEX_MAGIC};

    #[test]
    fn a_new_path_or_an_own_earlier_output_may_be_written_and_nothing_else() {
        let dir = tempfile::tempdir().expect("temp dir");
        let new = dir.path().join("sub/new.likeness-index");
        check_output(&new, OutputKind::Index, &[], 1000).expect("a new path");
        let index = dir.path().join("old.likeness-index");
        std::fs::write(&index, [INDEX_MAGIC, b"rest"].concat()).expect("write");
        check_output(&index, OutputKind::Index, &[], 1000).expect("an earlier index");
        let refused = check_output(&index, OutputKind::Model, &[], 1000)
            .expect_err("an index is not a model")
            .to_string();
        assert!(refused.contains("is a Likeness index"), "{refused}");

        let photo = dir.path().join("photo.png");
        image::RgbImage::new(4, 4).save(&photo).expect("save");
        let refused = check_output(&photo, OutputKind::MapPng, &[], 1000)
            .expect_err("a photo is not a map")
            .to_string();
        assert!(refused.contains("a photo (Png)"), "{refused}");

        let map = dir.path().join("map.png");
        let mut png = Vec::new();
        image::RgbImage::new(4, 4)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .expect("encode");
        let marked = mark_png(&png);
        image::load_from_memory(&marked).expect("the marked PNG still decodes");
        std::fs::write(&map, marked).expect("write");
        check_output(&map, OutputKind::MapPng, &[], 1000).expect("our own map");

        let csv = dir.path().join("dupes.csv");
        std::fs::write(&csv, format!("{DUPLICATES_CSV_HEADER}\n1,a,2,b,0,true\n")).expect("w");
        check_output(&csv, OutputKind::DuplicatesCsv, &[], 1000).expect("our own list");
        assert!(check_output(&csv, OutputKind::MapCsv, &[], 1000).is_err());

        let input = Input {
            flag: "--index",
            path: &index,
        };
        let refused = check_output(&index, OutputKind::Index, &[input], 1000)
            .expect_err("an input")
            .to_string();
        assert!(refused.contains("--index"), "{refused}");
        assert!(check_output(dir.path(), OutputKind::Index, &[], 1000).is_err());
    }

    #[test]
    fn no_room_on_the_disk_is_found_before_the_work() {
        let dir = tempfile::tempdir().expect("temp dir");
        let refused = check_output(&dir.path().join("x"), OutputKind::Index, &[], u64::MAX / 2)
            .expect_err("no disk is that large")
            .to_string();
        assert!(refused.contains("free"), "{refused}");
    }

    #[test]
    fn a_failed_save_keeps_the_bytes_where_the_error_says() {
        let dir = tempfile::tempdir().expect("temp dir");
        let blocked = dir.path().join("blocked");
        std::fs::create_dir(&blocked).expect("mkdir");
        std::fs::write(blocked.join("x"), b"x").expect("fill");
        let error = write_or_rescue(&blocked, b"an hour of work").expect_err("a folder");
        let EngineError::Rescued { kept_at, .. } = &error else {
            panic!("not rescued: {error}");
        };
        assert_eq!(std::fs::read(kept_at).expect("rescued"), b"an hour of work");
        assert!(error.to_string().contains(&kept_at.display().to_string()));
        std::fs::remove_file(kept_at).ok();
    }
}
