//! The work on marks files, carried out on the window's disk thread ([`super::disk`]):
//! [`MarksView`](super::marks::MarksView) keeps the marks in memory and queues these
//! jobs; the app hands them over each frame and applies what comes back.

use std::path::{Path, PathBuf};

use crate::engine::feedback::{Marks, marks_path};

/// Work on a marks file.
#[derive(Debug, Clone, PartialEq)]
pub enum MarksJob {
    /// Reads a library's marks file (`file`); marks that earlier versions kept beside
    /// the index file (`index_path`) move to it first when it has none yet.
    Open { file: PathBuf, index_path: PathBuf },
    /// Writes the marks as the library's marks file.
    Save { file: PathBuf, marks: Marks },
    /// Writes the marks where the person asked (the same format).
    Export { path: PathBuf, marks: Marks },
    /// Reads a marks file the person chose, to add its marks.
    Import { path: PathBuf },
}

/// What a job found.
#[derive(Debug, Clone, PartialEq)]
pub enum MarksDone {
    Opened {
        file: PathBuf,
        marks: Marks,
        /// Why the file could not be read, or the marks beside the index taken over.
        problem: Option<String>,
        /// Whether an unreadable file is still there (it is never written over then).
        unreadable_kept: bool,
    },
    Saved {
        file: PathBuf,
        problem: Option<String>,
    },
    Exported {
        path: PathBuf,
        count: usize,
        problem: Option<String>,
    },
    Imported {
        path: PathBuf,
        marks: Result<Marks, String>,
    },
}

/// Carries out one job (on the disk thread; tests call it directly).
pub fn carry_out(job: MarksJob) -> MarksDone {
    match job {
        MarksJob::Open { file, index_path } => {
            let taken_over = take_over_from_beside(&index_path, &file);
            let (marks, problem) = Marks::load_or_set_aside(&file);
            let unreadable_kept = problem.is_some() && file.exists();
            let problem = problem
                .map(|problem| format!("Your marks could not be read: {problem}"))
                .or(taken_over);
            MarksDone::Opened {
                file,
                marks,
                problem,
                unreadable_kept,
            }
        }
        MarksJob::Save { file, marks } => MarksDone::Saved {
            problem: marks.save(&file).err().map(|error| error.to_string()),
            file,
        },
        MarksJob::Export { path, marks } => MarksDone::Exported {
            count: marks.marks.len(),
            problem: export(&marks, &path),
            path,
        },
        MarksJob::Import { path } => MarksDone::Imported {
            marks: Marks::load(&path).map_err(|error| error.to_string()),
            path,
        },
    }
}

/// Writes `marks` to `path`, which must be new or an earlier marks file (an export never
/// replaces a photo or any other file picked by mistake). Returns what went wrong.
fn export(marks: &Marks, path: &Path) -> Option<String> {
    if std::fs::symlink_metadata(path).is_ok() && Marks::load(path).is_err() {
        return Some(format!(
            "{} is not a marks file, and it was left as it is; choose a new name",
            path.display()
        ));
    }
    marks.save(path).err().map(|error| error.to_string())
}

/// Marks that earlier versions kept next to the index file move to the library's marks
/// file (when it has none yet); the old file is left where it was. Returns what went
/// wrong, for the person.
fn take_over_from_beside(index: &Path, library_marks: &Path) -> Option<String> {
    let beside = marks_path(index);
    if library_marks.exists() || !beside.is_file() {
        return None;
    }
    Marks::load(&beside)
        .and_then(|marks| marks.save(library_marks))
        .err()
        .map(|error| format!("Your marks next to the index could not be taken over: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_export_replaces_only_an_earlier_marks_file() {
        let dir = tempfile::tempdir().expect("dir");
        let mut marks = Marks::default();
        marks.set(Path::new("q"), Path::new("p"), Some(true));
        let photo = dir.path().join("rose.jpg");
        std::fs::write(&photo, b"a photo's bytes").expect("photo");
        let done = carry_out(MarksJob::Export {
            path: photo.clone(),
            marks: marks.clone(),
        });
        assert!(
            matches!(&done, MarksDone::Exported { problem: Some(p), .. } if p.contains("not a marks file")),
            "{done:?}"
        );
        assert_eq!(std::fs::read(&photo).expect("photo"), b"a photo's bytes");
        let file = dir.path().join("marks.json");
        for _ in 0..2 {
            let done = carry_out(MarksJob::Export {
                path: file.clone(),
                marks: marks.clone(),
            });
            assert!(
                matches!(done, MarksDone::Exported { problem: None, .. }),
                "{done:?}"
            );
        }
        assert_eq!(Marks::load(&file).expect("marks").marks.len(), 1);
    }
}
