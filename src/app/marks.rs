//! The person's marks, in one place: which results they marked alike or not alike to
//! their queries (kept per library, see [`library_marks_path`]), the changes they can
//! undo, and every operation on them (set, undo, remove, import, export, open the
//! library's file, ask for a retrain).
//!
//! The reducer never reads or writes a marks file: when the current index changes it
//! asks for [`super::reducer::Effect::OpenMarks`], and the app carries that out here.
//! Each operation returns what to tell the person, so the notices stay with the state.

use std::path::{Path, PathBuf};

use crate::engine::feedback::{DEFAULT_SECONDS, Mark, Marks, library_marks_path, marks_path};

/// One mark change, for undo: the mark the pair had before it.
#[derive(Debug, Clone, PartialEq)]
struct MarkChange {
    query: PathBuf,
    photo: PathBuf,
    before: Option<bool>,
}

/// What an operation on the marks wants the person told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarksNotice {
    Info(String),
    Error(String),
}

/// The marks of the current index's library, their file and the undo history.
#[derive(Debug)]
pub struct MarksView {
    marks: Marks,
    /// The library's marks file; `None` without an index, or when the file could not be
    /// read and is still there (it is never written over).
    file: Option<PathBuf>,
    /// Mark changes, newest last.
    history: Vec<MarkChange>,
    /// Budget of Retrain with my marks, in seconds.
    pub fine_tune_seconds: f64,
}

impl Default for MarksView {
    fn default() -> Self {
        Self {
            marks: Marks::default(),
            file: None,
            history: Vec::new(),
            fine_tune_seconds: DEFAULT_SECONDS,
        }
    }
}

impl MarksView {
    /// Whether marks can be set: they are kept with an index's library.
    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// The library's marks file, when marks can be set.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The marks, oldest first.
    pub fn list(&self) -> &[Mark] {
        &self.marks.marks
    }

    pub fn all(&self) -> &Marks {
        &self.marks
    }

    pub fn is_empty(&self) -> bool {
        self.marks.marks.is_empty()
    }

    /// The mark of `photo` for `query`, if any.
    pub fn get(&self, query: &Path, photo: &Path) -> Option<bool> {
        self.marks.get(query, photo)
    }

    pub fn can_undo(&self) -> bool {
        !self.history.is_empty()
    }

    /// Opens the marks of the library indexed as `index_folder` (the index file at
    /// `index_path`), kept in `marks_dir`; without an index there are none. Marks that
    /// earlier versions kept beside the index file move to the library's file first.
    pub fn open(&mut self, marks_dir: &Path, index: Option<(&Path, &Path)>) -> Option<MarksNotice> {
        let file = index.map(|(folder, _)| library_marks_path(marks_dir, folder));
        if file.is_some() && file == self.file {
            // Another index of the same library: the marks on screen are its marks.
            return None;
        }
        self.history.clear();
        let mut notice = None;
        if let (Some(file), Some((_, index_path))) = (&file, index) {
            notice = take_over_from_beside(index_path, file);
        }
        self.file = file;
        self.marks = match self.file.clone() {
            Some(path) => {
                let (marks, problem) = Marks::load_or_set_aside(&path);
                if let Some(problem) = problem {
                    notice = Some(MarksNotice::Error(format!(
                        "Your marks could not be read: {problem}"
                    )));
                    // Still there (not moved aside): never write over it.
                    if path.exists() {
                        self.file = None;
                    }
                }
                marks
            }
            None => Marks::default(),
        };
        notice
    }

    /// Sets one mark (`None` removes it), remembers it for undo and saves the marks.
    pub fn set(
        &mut self,
        query: PathBuf,
        photo: PathBuf,
        alike: Option<bool>,
    ) -> Option<MarksNotice> {
        if self.file.is_none() {
            return Some(MarksNotice::Error(
                "Open or build an index first: marks are kept with it.".into(),
            ));
        }
        let before = self.marks.set(&query, &photo, alike);
        if before != alike {
            self.history.push(MarkChange {
                query,
                photo,
                before,
            });
        }
        self.save()
    }

    /// Removes the mark at `position` of [`MarksView::list`].
    pub fn remove(&mut self, position: usize) -> Option<MarksNotice> {
        let mark = self.marks.marks.get(position).cloned()?;
        self.set(mark.query, mark.photo, None)
    }

    /// Takes back the last mark change.
    pub fn undo(&mut self) -> Option<MarksNotice> {
        let change = self.history.pop()?;
        self.marks.set(&change.query, &change.photo, change.before);
        self.save()
    }

    /// Writes the marks to `path` as JSON (the same format they are kept in).
    pub fn export(&self, path: &Path) -> MarksNotice {
        match self.marks.save(path) {
            Ok(()) => MarksNotice::Info(format!(
                "Exported {} to {}.",
                super::reducer::plural(self.marks.marks.len(), "mark", "marks"),
                path.display()
            )),
            Err(error) => MarksNotice::Error(format!("The marks were not exported: {error}")),
        }
    }

    /// Adds the marks of the marks file at `path` (its judgement wins where both marked
    /// a pair). Undo starts afresh: the history no longer describes the marks.
    pub fn import(&mut self, path: &Path) -> MarksNotice {
        match Marks::load(path) {
            Ok(other) => {
                let changed = self.marks.import(&other);
                self.history.clear();
                if let Some(problem) = self.save() {
                    return problem;
                }
                MarksNotice::Info(format!(
                    "Imported {} from {} ({} new or changed).",
                    super::reducer::plural(other.marks.len(), "mark", "marks"),
                    path.display(),
                    changed
                ))
            }
            Err(error) => MarksNotice::Error(format!("The marks were not imported: {error}")),
        }
    }

    fn save(&self) -> Option<MarksNotice> {
        let path = self.file.as_ref()?;
        self.marks
            .save(path)
            .err()
            .map(|error| MarksNotice::Error(format!("Your marks could not be saved: {error}")))
    }
}

/// Marks that earlier versions kept next to the index file move to the library's marks
/// file (when it has none yet); the old file is left where it was.
fn take_over_from_beside(index: &Path, library_marks: &Path) -> Option<MarksNotice> {
    let beside = marks_path(index);
    if library_marks.exists() || !beside.is_file() {
        return None;
    }
    Marks::load(&beside)
        .and_then(|marks| marks.save(library_marks))
        .err()
        .map(|error| {
            MarksNotice::Error(format!(
                "Your marks next to the index could not be taken over: {error}"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opened(dir: &Path) -> MarksView {
        let library = dir.join("library");
        std::fs::create_dir_all(&library).expect("library");
        let mut view = MarksView::default();
        let notice = view.open(
            &dir.join("marks"),
            Some((&library, &dir.join("i.likeness"))),
        );
        assert_eq!(notice, None);
        view
    }

    #[test]
    fn marks_need_an_index_and_are_saved_as_they_change() {
        let dir = tempfile::tempdir().expect("dir");
        let mut closed = MarksView::default();
        assert!(matches!(
            closed.set("q".into(), "p".into(), Some(true)),
            Some(MarksNotice::Error(_))
        ));
        assert!(closed.is_empty());

        std::fs::create_dir_all(dir.path().join("marks")).expect("marks dir");
        let mut view = opened(dir.path());
        assert_eq!(view.set("q".into(), "p".into(), Some(true)), None);
        assert_eq!(view.get(Path::new("q"), Path::new("p")), Some(true));
        // A second view of the same library reads what the first saved.
        let again = opened(dir.path());
        assert_eq!(again.list().len(), 1);
    }

    #[test]
    fn undo_takes_back_each_change_in_turn_and_remove_is_undoable() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir_all(dir.path().join("marks")).expect("marks dir");
        let mut view = opened(dir.path());
        view.set("q".into(), "p".into(), Some(true));
        view.set("q".into(), "p".into(), Some(false));
        // Setting the same mark again is no change, so nothing to undo for it.
        view.set("q".into(), "p".into(), Some(false));
        assert_eq!(view.get(Path::new("q"), Path::new("p")), Some(false));
        view.undo();
        assert_eq!(view.get(Path::new("q"), Path::new("p")), Some(true));
        view.remove(0);
        assert!(view.is_empty());
        view.undo();
        assert_eq!(view.get(Path::new("q"), Path::new("p")), Some(true));
        view.undo();
        assert!(view.is_empty());
        assert!(!view.can_undo());
    }

    #[test]
    fn a_damaged_marks_file_is_kept_aside_and_never_written_over() {
        let dir = tempfile::tempdir().expect("dir");
        let marks_dir = dir.path().join("marks");
        std::fs::create_dir_all(&marks_dir).expect("marks dir");
        let library = dir.path().join("library");
        std::fs::create_dir_all(&library).expect("library");
        let file = library_marks_path(&marks_dir, &library);
        std::fs::write(&file, b"{ half a marks fi").expect("damaged");
        let mut view = MarksView::default();
        let notice = view.open(&marks_dir, Some((&library, &dir.path().join("i.likeness"))));
        assert!(
            matches!(&notice, Some(MarksNotice::Error(text)) if text.contains("damaged")),
            "{notice:?}"
        );
        let mut aside = file.as_os_str().to_os_string();
        aside.push(".damaged");
        assert_eq!(
            std::fs::read(PathBuf::from(&aside)).expect("kept"),
            b"{ half a marks fi"
        );
        // New marks start afresh in the library's file; the damaged copy stays as it was.
        assert_eq!(view.set("q".into(), "p".into(), Some(true)), None);
        assert_eq!(
            std::fs::read(PathBuf::from(&aside)).expect("kept"),
            b"{ half a marks fi"
        );
    }

    #[test]
    fn import_adds_marks_and_export_writes_them_back() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir_all(dir.path().join("marks")).expect("marks dir");
        let mut view = opened(dir.path());
        view.set("q".into(), "a".into(), Some(true));
        let exported = dir.path().join("shared.json");
        assert!(matches!(view.export(&exported), MarksNotice::Info(_)));
        let other_dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir_all(other_dir.path().join("marks")).expect("marks dir");
        let mut other = opened(other_dir.path());
        assert!(matches!(other.import(&exported), MarksNotice::Info(_)));
        assert_eq!(other.get(Path::new("q"), Path::new("a")), Some(true));
        assert!(!other.can_undo());
        let broken = dir.path().join("broken.json");
        std::fs::write(&broken, b"{ not json").expect("write");
        assert!(matches!(other.import(&broken), MarksNotice::Error(_)));
    }
}
