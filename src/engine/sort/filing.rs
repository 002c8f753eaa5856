//! Filing a sort: copying or moving the photos into the library under the library's
//! lock, a journal written before each filing (signed, so only a journal Likeness wrote is
//! undone), and undo.

use super::*;

/// Copy (the default) or move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileMode {
    Copy,
    Move,
}

/// One photo filed: where it was and where it is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filed {
    pub mode: FileMode,
    pub from: PathBuf,
    pub to: PathBuf,
    /// XXH3 of its bytes: undo touches only a file that is still this photo.
    pub content: u64,
}

/// What filing did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FilingReport {
    pub filed: Vec<Filed>,
    /// Photos left in the inbox because the same bytes are already in the library (in
    /// any of its folders): (the inbox photo, the library file).
    pub already_there: Vec<(PathBuf, PathBuf)>,
    /// Photos given a new name because theirs was taken: (the taken name, the new one).
    pub renamed: Vec<(PathBuf, PathBuf)>,
    /// Class folders the library did not have, made for the photos filed into them.
    #[serde(default)]
    pub created_folders: Vec<PathBuf>,
    pub failed: Vec<SkippedFile>,
    /// The journal that [`undo`] reverses.
    pub journal: PathBuf,
    /// Stopped by a cancel before every photo was filed.
    pub cancelled: bool,
}

/// The first line of a journal: which library and inbox it files between, signed with
/// Likeness' record key ([`crate::engine::signature`]), with a nonce that every filing line's MAC
/// covers too, so that no line passes from one journal into another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct JournalHeader {
    pub(super) likeness: String,
    pub(super) version: u32,
    pub(super) library: PathBuf,
    pub(super) inbox: PathBuf,
    pub(super) nonce: String,
}

pub(super) use crate::engine::files::{JOURNAL_KIND, JOURNAL_VERSION};
/// The MAC purposes of a journal's lines.
pub(super) const HEADER_PURPOSE: &str = "likeness sort journal header";
pub(super) const FILING_PURPOSE: &str = "likeness sort journal filing";

/// A journal line: the record and its MAC.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Signed<T> {
    #[serde(flatten)]
    pub(super) record: T,
    pub(super) mac: String,
}

pub(super) fn json_line<T: Serialize>(record: &T) -> Result<String> {
    serde_json::to_string(record).map_err(|e| EngineError::Config(e.to_string()))
}

/// The MAC of a filing of the journal with `nonce`.
pub(super) fn filing_mac(key: &RecordKey, nonce: &str, filed: &Filed) -> Result<String> {
    let line = json_line(filed)?;
    Ok(key.sign(FILING_PURPOSE, format!("{nonce}\n{line}").as_bytes()))
}

/// Tries of the library's lock before a sort is refused, and the wait between them.
const LOCK_RETRIES: u32 = 10;
const LOCK_RETRY_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

/// Holds the library for one sort or undo: a second one at the same time (another
/// window, a second command) is refused instead of filing the same photos twice. The lock
/// is the operating system's lock on the library folder itself, so nothing is written into
/// the library for it and a killed sort leaves no stale lock behind.
#[derive(Debug)]
pub struct LibraryLock {
    _folder: std::fs::File,
}

impl LibraryLock {
    pub fn acquire(library: &Path) -> Result<Self> {
        // Opened as a folder only, without waiting: a pipe named as the library must not
        // hang the sort.
        let mut options = std::fs::OpenOptions::new();
        options.read(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.custom_flags(libc::O_DIRECTORY | libc::O_NONBLOCK);
        }
        let folder = options.open(library).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory => {
                EngineError::MissingFolder(library.to_path_buf())
            }
            _ => EngineError::io(library, e),
        })?;
        // A lock held for a moment only is waited out: a process started from another
        // thread holds a copy of the folder's handle (and so its lock) between its fork
        // and its exec. A sort holds it for seconds.
        for attempt in 0..=LOCK_RETRIES {
            match folder.try_lock() {
                Ok(()) => return Ok(Self { _folder: folder }),
                Err(std::fs::TryLockError::WouldBlock) if attempt < LOCK_RETRIES => {
                    std::thread::sleep(LOCK_RETRY_WAIT);
                }
                Err(std::fs::TryLockError::WouldBlock) => break,
                Err(std::fs::TryLockError::Error(e)) => return Err(EngineError::io(library, e)),
            }
        }
        Err(EngineError::Config(format!(
            "another sort (or undo) is filing into {} right now; wait until it ends and sort \
             again (nothing was done)",
            library.display()
        )))
    }
}

/// Files each `(photo, folder)` of `inbox` into `library/folder`, writing each filing to
/// `journal` (a new file) first. The library is locked for the whole sort.
pub fn file_photos(
    choices: &[(PathBuf, String)],
    inbox: &Path,
    library: &Path,
    mode: FileMode,
    journal: &Path,
    cancel: &AtomicBool,
) -> Result<FilingReport> {
    let mut report = FilingReport {
        journal: journal.to_path_buf(),
        ..Default::default()
    };
    let key = RecordKey::load_or_create()?;
    let _lock = LibraryLock::acquire(library)?;
    let header = JournalHeader {
        likeness: JOURNAL_KIND.into(),
        version: JOURNAL_VERSION,
        library: std::fs::canonicalize(library).map_err(|e| EngineError::io(library, e))?,
        inbox: std::fs::canonicalize(inbox).map_err(|e| EngineError::io(inbox, e))?,
        nonce: crate::engine::signature::random_hex(16)?,
    };
    // A new file only: a journal never writes into a file that is already there.
    let mut journal_file = std::fs::OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(journal)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => EngineError::Config(format!(
                "{} already exists: a sort journal is always a new file",
                journal.display()
            )),
            _ => EngineError::io(journal, e),
        })?;
    let header_mac = key.sign(HEADER_PURPOSE, json_line(&header)?.as_bytes());
    let header_line = json_line(&Signed {
        record: &header,
        mac: header_mac,
    })?;
    writeln!(journal_file, "{header_line}")
        .and_then(|()| journal_file.sync_data())
        .map_err(|e| EngineError::io(journal, e))?;
    let mut contents = LibraryContents::list(library);
    for (photo, folder) in choices {
        if cancel.load(Ordering::Relaxed) {
            report.cancelled = true;
            break;
        }
        let fail = |reason: String| SkippedFile {
            path: photo.clone(),
            reason,
        };
        if folder.is_empty()
            || Path::new(folder).components().count() != 1
            || folder.starts_with('.')
        {
            report.failed.push(fail(format!(
                "'{folder}' is not a folder name of the library"
            )));
            continue;
        }
        if !filed_inside(photo, &header.inbox, usize::MAX) {
            report
                .failed
                .push(fail("it is not in the inbox, so it is not filed".into()));
            continue;
        }
        if mode == FileMode::Move
            && std::fs::symlink_metadata(photo).is_ok_and(|m| m.file_type().is_symlink())
        {
            report.failed.push(fail(
                "it is a symbolic link: a move would file the link, not the photo it points \
                 to; left in the inbox (sort with --copy to file a copy of the photo)"
                    .into(),
            ));
            continue;
        }
        let destination_folder = header.library.join(folder);
        let bytes = match crate::engine::files::read_regular(photo, 1 << 30, "a photo") {
            Ok(bytes) => bytes,
            Err(error) => {
                report.failed.push(fail(error.to_string()));
                continue;
            }
        };
        let content = xxhash_rust::xxh3::xxh3_64(&bytes);
        if let Some(existing) = contents.same_bytes(bytes.len() as u64, content) {
            report.already_there.push((photo.clone(), existing.clone()));
            continue;
        }
        if std::fs::symlink_metadata(&destination_folder).is_err() {
            std::fs::create_dir_all(&destination_folder)
                .map_err(|e| EngineError::io(&destination_folder, e))?;
            report.created_folders.push(destination_folder.clone());
        }
        let name = photo
            .file_name()
            .ok_or_else(|| EngineError::bad_file(photo, "no file name"))?;
        let wanted = destination_folder.join(name);
        let to = free_name(&wanted);
        let filed = Filed {
            mode,
            from: photo.clone(),
            to: to.clone(),
            content,
        };
        // The journal line first: a sort killed after it undoes cleanly.
        let line = json_line(&Signed {
            record: &filed,
            mac: filing_mac(&key, &header.nonce, &filed)?,
        })?;
        writeln!(journal_file, "{line}")
            .and_then(|()| journal_file.sync_data())
            .map_err(|e| EngineError::io(journal, e))?;
        let result = match mode {
            FileMode::Copy => write_new(&to, &bytes),
            FileMode::Move => move_file(photo, &to, &bytes),
        };
        match result {
            Ok(()) => {
                if to != wanted {
                    report.renamed.push((wanted, to.clone()));
                }
                contents.add(bytes.len() as u64, content, to);
                report.filed.push(filed);
            }
            Err(error) => report.failed.push(fail(error.to_string())),
        }
    }
    Ok(report)
}

/// The files of a library's class folders by size, each hashed only when a photo of the
/// same size is filed: a library of thousands of photos is listed, not read. A photo
/// already in any class folder is not filed again into another.
pub(super) struct LibraryContents {
    /// Size → (file, its XXH3 once computed).
    pub(super) by_size: HashMap<u64, Vec<(PathBuf, Option<u64>)>>,
}

impl LibraryContents {
    fn list(library: &Path) -> Self {
        let mut by_size: HashMap<u64, Vec<(PathBuf, Option<u64>)>> = HashMap::new();
        let folders = std::fs::read_dir(library)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'));
        for folder in folders {
            let Ok(entries) = std::fs::read_dir(folder.path()) else {
                continue;
            };
            for entry in entries.flatten() {
                if let Ok(metadata) = entry.metadata()
                    && metadata.is_file()
                {
                    by_size
                        .entry(metadata.len())
                        .or_default()
                        .push((entry.path(), None));
                }
            }
        }
        Self { by_size }
    }

    /// A file with these bytes (this size and XXH3), if the library has one. Files that
    /// cannot be read are not the same photo as far as anyone can tell.
    fn same_bytes(&mut self, size: u64, content: u64) -> Option<PathBuf> {
        let candidates = self.by_size.get_mut(&size)?;
        for (path, hash) in candidates.iter_mut() {
            if hash.is_none() {
                *hash = crate::engine::files::read_regular(path, 1 << 30, "a photo")
                    .ok()
                    .map(|bytes| xxhash_rust::xxh3::xxh3_64(&bytes));
            }
            if *hash == Some(content) {
                return Some(path.clone());
            }
        }
        None
    }

    fn add(&mut self, size: u64, content: u64, path: PathBuf) {
        self.by_size
            .entry(size)
            .or_default()
            .push((path, Some(content)));
    }
}

/// `wanted`, or `NAME (2).EXT`, `NAME (3).EXT`… the first that does not exist.
pub(super) fn free_name(wanted: &Path) -> PathBuf {
    if std::fs::symlink_metadata(wanted).is_err() {
        return wanted.to_path_buf();
    }
    let stem = wanted
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let extension = wanted
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    (2..)
        .map(|n| wanted.with_file_name(format!("{stem} ({n}){extension}")))
        .find(|candidate| std::fs::symlink_metadata(candidate).is_err())
        .unwrap_or_else(|| wanted.to_path_buf())
}

/// Moves `from` to `to`: a hard link, or across file systems a copy written whole
/// ([`write_new`]), then the original removed. Never replaces a file at `to` (a rename
/// would, were one to appear there after the name was chosen). When the original cannot
/// be removed (a read-only inbox), the new file is removed again: the photo stays where
/// it was, once, and the error says why.
pub(super) fn move_file(from: &Path, to: &Path, bytes: &[u8]) -> Result<()> {
    match std::fs::hard_link(from, to) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(EngineError::io(to, e));
        }
        Err(_) => write_new(to, bytes)?,
    }
    std::fs::remove_file(from).map_err(|e| {
        std::fs::remove_file(to).ok();
        EngineError::bad_file(
            from,
            format!(
                "cannot be moved out of its folder ({}); it was left where it is and \
                 nothing was filed",
                crate::engine::error::io_reason(&e)
            ),
        )
    })
}

/// Writes `bytes` to `to`, which must not exist: whole into a temporary file beside it,
/// then linked into place (a link, unlike a rename, refuses a name that is taken).
pub(super) fn write_new(to: &Path, bytes: &[u8]) -> Result<()> {
    let folder = to.parent().unwrap_or(Path::new("."));
    let temporary = folder.join(crate::engine::atomic::temporary_name());
    crate::engine::atomic::write_atomic(&temporary, bytes)?;
    let placed = place_new(&temporary, to);
    // Gone already after a rename; after a link, the photo lives on under `to`.
    std::fs::remove_file(&temporary).ok();
    placed
}

/// Gives the written file `temporary` the name `to`, never replacing a file there: a hard
/// link. On a file system without hard links (FAT and exFAT, as on memory cards and many
/// USB drives) a rename, once the name is checked free; only a file appearing at that
/// name in the instant between could then be replaced.
pub(super) fn place_new(temporary: &Path, to: &Path) -> Result<()> {
    match std::fs::hard_link(temporary, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(EngineError::io(to, e)),
        Err(_) if std::fs::symlink_metadata(to).is_err() => {
            std::fs::rename(temporary, to).map_err(|e| EngineError::io(to, e))
        }
        Err(e) => Err(EngineError::io(to, e)),
    }
}

/// Where journals go in Likeness' data folder.
pub fn journals_folder() -> PathBuf {
    crate::engine::files::user_data_dir().join("sort-journals")
}

/// A new journal file in `folder` (created if needed).
pub fn new_journal_path(folder: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(folder).map_err(|e| EngineError::io(folder, e))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    Ok(folder.join(format!("sort-{stamp}-{}.jsonl", std::process::id())))
}

/// What undoing a journal did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UndoReport {
    /// Copies removed from the library.
    pub removed: Vec<PathBuf>,
    /// Moved photos put back: (where it was filed, where it is again).
    pub restored: Vec<(PathBuf, PathBuf)>,
    /// Filings left as they are, and why (the file changed since, or is gone, or its
    /// inbox original is gone so the copy is the only one).
    pub left: Vec<SkippedFile>,
    /// The journal's last line was cut off (a sort killed as it wrote it): that filing
    /// never happened, and the line was passed over.
    #[serde(default)]
    pub cut_off_last_line: bool,
}

/// A journal read back and checked: its header and filings, each with a valid MAC.
pub(super) struct CheckedJournal {
    pub(super) header: JournalHeader,
    pub(super) filings: Vec<Filed>,
    pub(super) cut_off_last_line: bool,
}

/// Reads `journal` and checks that Likeness wrote every line of it: the header's MAC and
/// each filing's (which covers the header's nonce) under the user's record key. A journal
/// with any line that fails is refused whole, touching nothing.
pub(super) fn read_journal(journal: &Path) -> Result<CheckedJournal> {
    let refuse = |why: String| {
        EngineError::bad_file(
            journal,
            format!("{why}; undo acts only on journals Likeness wrote (nothing was undone)"),
        )
    };
    let bytes = crate::engine::files::read_regular(journal, 256 << 20, "a sort journal")?;
    let text = String::from_utf8_lossy(&bytes);
    let ends_whole = text.ends_with('\n');
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .collect();
    let Some(&(_, first)) = lines.first() else {
        return Err(refuse("not a sort journal (it is empty)".into()));
    };
    let key = RecordKey::load()?.ok_or_else(|| {
        refuse(format!(
            "Likeness' record key ({}) is gone, so this journal cannot be checked",
            crate::engine::signature::key_path().display()
        ))
    })?;
    let header: Signed<JournalHeader> = serde_json::from_str(first).map_err(|_| {
        if serde_json::from_str::<Filed>(first).is_ok() {
            refuse(
                "written by an earlier version of Likeness, before journals were signed, so \
                 it cannot be told from an edited one"
                    .into(),
            )
        } else {
            refuse("not a sort journal (its first line is not a journal header)".into())
        }
    })?;
    if header.record.likeness != JOURNAL_KIND || header.record.version != JOURNAL_VERSION {
        return Err(refuse(format!(
            "not a sort journal this version reads ({} version {})",
            header.record.likeness, header.record.version
        )));
    }
    if !key.verify(
        HEADER_PURPOSE,
        json_line(&header.record)?.as_bytes(),
        &header.mac,
    ) {
        return Err(refuse(
            "its header's signature does not match: it was edited, or written by another \
             user's Likeness"
                .into(),
        ));
    }
    let nonce = &header.record.nonce;
    let mut filings = Vec::new();
    let mut cut_off_last_line = false;
    for (position, &(number, line)) in lines.iter().enumerate().skip(1) {
        let last = position + 1 == lines.len();
        let Ok(signed) = serde_json::from_str::<Signed<Filed>>(line) else {
            if last && !ends_whole {
                // Cut off by a kill as it was written: the filing it announced never began.
                cut_off_last_line = true;
                continue;
            }
            return Err(refuse(format!(
                "line {} is not a filing of a sort journal",
                number + 1
            )));
        };
        let signed_bytes = format!("{nonce}\n{}", json_line(&signed.record)?);
        if !key.verify(FILING_PURPOSE, signed_bytes.as_bytes(), &signed.mac) {
            return Err(refuse(format!(
                "line {}'s signature does not match: it was edited or added",
                number + 1
            )));
        }
        let filed = signed.record;
        // Signed, yet naming places outside the journal's own folders (only a journal
        // written by hand with the key could): refused all the same.
        if !filed_inside(&filed.to, &header.record.library, 2)
            || !filed_inside(&filed.from, &header.record.inbox, usize::MAX)
        {
            return Err(refuse(format!(
                "line {} names {} → {}, outside its library {} or inbox {}",
                number + 1,
                filed.from.display(),
                filed.to.display(),
                header.record.library.display(),
                header.record.inbox.display()
            )));
        }
        filings.push(filed);
    }
    Ok(CheckedJournal {
        header: header.record,
        filings,
        cut_off_last_line,
    })
}

/// Whether `path` lies below `folder` by plain names only (no `..`, `.` or root after
/// it), and at most `depth` names below it (a filed photo is `library/class/name`).
pub(super) fn filed_inside(path: &Path, folder: &Path, depth: usize) -> bool {
    let Ok(rest) = path.strip_prefix(folder) else {
        return false;
    };
    let parts: Vec<_> = rest.components().collect();
    !parts.is_empty()
        && parts.len() <= depth
        && (depth == usize::MAX || parts.len() == depth)
        && parts
            .iter()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// Reverses the filings of `journal`, last first, after checking that Likeness wrote it
/// ([`read_journal`]). A file is removed or moved back only when it lies inside the
/// journal's library, its bytes are still those filed, and, for a copy, its original is
/// still in the inbox with the same bytes (otherwise the copy may be the only one, and
/// stays). A photo whose inbox place is taken again stays in the library. A filing that
/// cannot be undone is listed in `left`, and undo goes on with the others.
pub fn undo(journal: &Path) -> Result<UndoReport> {
    let checked = read_journal(journal)?;
    let library = &checked.header.library;
    let _lock = LibraryLock::acquire(library)?;
    let mut report = UndoReport {
        cut_off_last_line: checked.cut_off_last_line,
        ..Default::default()
    };
    let still_ours = |path: &Path, content: u64| {
        std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
            && crate::engine::files::read_regular(path, 1 << 30, "a photo")
                .is_ok_and(|bytes| xxhash_rust::xxh3::xxh3_64(&bytes) == content)
    };
    // The class folder must still be a folder of the library, not a link to elsewhere.
    let in_library = |to: &Path| {
        to.parent()
            .is_some_and(|folder| crate::engine::files::folder_within(folder, library))
    };
    for filed in checked.filings.iter().rev() {
        let leave = |reason: String| SkippedFile {
            path: filed.to.clone(),
            reason,
        };
        let filed_exists = std::fs::symlink_metadata(&filed.to).is_ok();
        if !filed_exists {
            if filed.mode == FileMode::Move && !still_ours(&filed.from, filed.content) {
                report.left.push(leave(format!(
                    "it is no longer in the library (deleted or moved since), so {} cannot be \
                     put back",
                    filed.from.display()
                )));
            }
            // Otherwise it was never filed (the sort was stopped first): nothing to undo.
            continue;
        }
        if !in_library(&filed.to) {
            report.left.push(leave(format!(
                "its folder is no longer inside the library {}",
                library.display()
            )));
            continue;
        }
        if !still_ours(&filed.to, filed.content) {
            report
                .left
                .push(leave("it changed since it was filed".into()));
            continue;
        }
        let undone = match filed.mode {
            FileMode::Copy if still_ours(&filed.from, filed.content) => {
                std::fs::remove_file(&filed.to)
                    .map(|()| report.removed.push(filed.to.clone()))
                    .map_err(|e| crate::engine::error::io_reason(&e))
            }
            FileMode::Copy => Err(format!(
                "its original {} is gone or changed, so this copy may be the only one; kept",
                filed.from.display()
            )),
            FileMode::Move if still_ours(&filed.from, filed.content) => {
                // Killed between the copy and the removal of the original: the copy goes.
                std::fs::remove_file(&filed.to)
                    .map(|()| report.removed.push(filed.to.clone()))
                    .map_err(|e| crate::engine::error::io_reason(&e))
            }
            FileMode::Move if std::fs::symlink_metadata(&filed.from).is_ok() => {
                Err("another file now has its name in the inbox".into())
            }
            FileMode::Move => crate::engine::files::read_regular(&filed.to, 1 << 30, "a photo")
                .and_then(|bytes| move_file(&filed.to, &filed.from, &bytes))
                .map(|()| {
                    report.restored.push((filed.to.clone(), filed.from.clone()));
                })
                .map_err(|e| e.to_string()),
        };
        if let Err(reason) = undone {
            report.left.push(leave(reason));
        }
    }
    Ok(report)
}
