//! The marks file: a person's "alike" / "not alike" judgements of search results, kept
//! beside the library and written atomically.

use super::*;

pub use crate::engine::files::MARKS_FORMAT;
pub const MARKS_VERSION: u32 = 1;

/// One judgement: is `photo` like `query`?
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    pub query: PathBuf,
    pub photo: PathBuf,
    pub alike: bool,
}

/// Every mark of a library.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Marks {
    pub format: String,
    pub version: u32,
    pub marks: Vec<Mark>,
}

impl Default for Marks {
    fn default() -> Self {
        Self {
            format: MARKS_FORMAT.to_string(),
            version: MARKS_VERSION,
            marks: Vec::new(),
        }
    }
}

/// Where the marks of the library `folder` are kept: one file per library in
/// `marks_dir`, named after the folder and a hash of its canonical path. Marks are the
/// person's judgements about photos, so they belong to the library: they survive a
/// retrain, a new index of the same folder and a renamed index file.
pub fn library_marks_path(marks_dir: &Path, library: &Path) -> PathBuf {
    let canonical = std::fs::canonicalize(library).unwrap_or_else(|_| library.to_path_buf());
    let mut hash = crate::engine::files::Fnv1a::default();
    hash.write(canonical.as_os_str().as_encoded_bytes());
    let name: String = canonical
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "library".into())
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    marks_dir.join(format!("{name}-{}.marks.json", hash.hex()))
}

/// Where earlier versions kept the marks of the library indexed in `index` (next to the
/// index file); read once and moved to [`library_marks_path`].
pub fn marks_path(index: &Path) -> PathBuf {
    let mut name = index.file_name().unwrap_or_default().to_os_string();
    name.push(".marks.json");
    index.with_file_name(name)
}

/// The largest marks file read (a million marks is about 250 MB of JSON).
pub(super) const MAX_MARKS_FILE_BYTES: u64 = 256 << 20;

impl Marks {
    /// Reads a marks file; a missing file is no marks.
    pub fn load(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Ok(Self::default());
        }
        // Bounded and only a regular file: a pipe named as marks must not hang training.
        let bytes = crate::engine::files::read_regular(path, MAX_MARKS_FILE_BYTES, "a marks file")?;
        Self::from_json(path, &bytes)
    }

    /// Reads the marks kept next to an index for use and change. A file that cannot be
    /// read as marks is moved aside (`….damaged`, never overwritten later) and no marks are
    /// returned, with a message saying where it went.
    pub fn load_or_set_aside(path: &Path) -> (Self, Option<String>) {
        match Self::load(path) {
            Ok(marks) => (marks, None),
            Err(error) => {
                let mut aside = path.as_os_str().to_os_string();
                aside.push(".damaged");
                let mut aside = PathBuf::from(aside);
                let mut n = 1;
                while aside.exists() {
                    let mut numbered = path.as_os_str().to_os_string();
                    numbered.push(format!(".damaged-{n}"));
                    aside = PathBuf::from(numbered);
                    n += 1;
                }
                let message = match std::fs::rename(path, &aside) {
                    Ok(()) => format!(
                        "{error}. It was kept as {} and new marks start afresh.",
                        aside.display()
                    ),
                    Err(rename) => format!(
                        "{error}; it could not be moved aside either ({rename}), so new marks \
                         will not be saved over it."
                    ),
                };
                (Self::default(), Some(message))
            }
        }
    }

    /// Parses marks JSON (as written by [`Marks::save`] or an export).
    pub fn from_json(path: &Path, bytes: &[u8]) -> Result<Self> {
        let marks: Marks = serde_json::from_slice(bytes)
            .map_err(|e| EngineError::bad_file(path, format!("not a Likeness marks file ({e})")))?;
        if marks.format != MARKS_FORMAT {
            return Err(EngineError::bad_file(path, "not a Likeness marks file"));
        }
        if marks.version > MARKS_VERSION {
            return Err(EngineError::bad_file(
                path,
                format!(
                    "written by a newer Likeness (marks version {}); update Likeness",
                    marks.version
                ),
            ));
        }
        Ok(marks)
    }

    /// Writes the marks atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json =
            serde_json::to_vec_pretty(self).map_err(|e| EngineError::Config(e.to_string()))?;
        crate::engine::atomic::write_atomic(path, &json)
    }

    /// The marks of `query`: each marked photo and whether it is alike, oldest first.
    pub fn for_query(&self, query: &Path) -> Vec<(PathBuf, bool)> {
        self.marks
            .iter()
            .filter(|mark| mark.query == query)
            .map(|mark| (mark.photo.clone(), mark.alike))
            .collect()
    }

    /// The mark on `photo` as a result of `query`.
    pub fn get(&self, query: &Path, photo: &Path) -> Option<bool> {
        self.marks
            .iter()
            .find(|m| m.query == query && m.photo == photo)
            .map(|m| m.alike)
    }

    /// Sets (or with `None` removes) a mark; returns what it was, for undo.
    pub fn set(&mut self, query: &Path, photo: &Path, alike: Option<bool>) -> Option<bool> {
        let position = self
            .marks
            .iter()
            .position(|m| m.query == query && m.photo == photo);
        let before = position.map(|i| self.marks[i].alike);
        match (position, alike) {
            (Some(i), Some(alike)) => self.marks[i].alike = alike,
            (Some(i), None) => {
                self.marks.remove(i);
            }
            (None, Some(alike)) => self.marks.push(Mark {
                query: query.to_path_buf(),
                photo: photo.to_path_buf(),
                alike,
            }),
            (None, None) => {}
        }
        before
    }

    /// Takes every mark of `other` (its judgement wins where both marked a pair); returns
    /// how many were new or changed.
    pub fn import(&mut self, other: &Marks) -> usize {
        let mut changed = 0;
        for mark in &other.marks {
            if self.get(&mark.query, &mark.photo) != Some(mark.alike) {
                self.set(&mark.query, &mark.photo, Some(mark.alike));
                changed += 1;
            }
        }
        changed
    }

    /// One mark per pair of photos (a pair marked from either side is one pair): where a
    /// pair was marked more than once the newest mark (the last in the list) wins.
    /// Returns the marks and how many repeats and contradictions were dropped.
    pub fn deduplicated(&self) -> (Marks, MarksCleanup) {
        let mut newest: HashMap<(&Path, &Path), usize> = HashMap::new();
        let mut cleanup = MarksCleanup::default();
        for (i, mark) in self.marks.iter().enumerate() {
            let (a, b) = (mark.query.as_path(), mark.photo.as_path());
            let key = if a <= b { (a, b) } else { (b, a) };
            if let Some(earlier) = newest.insert(key, i) {
                if self.marks[earlier].alike == mark.alike {
                    cleanup.repeated += 1;
                } else {
                    cleanup.contradicted += 1;
                }
            }
        }
        let mut kept: Vec<usize> = newest.into_values().collect();
        kept.sort_unstable();
        let marks = Marks {
            format: self.format.clone(),
            version: self.version,
            marks: kept.into_iter().map(|i| self.marks[i].clone()).collect(),
        };
        (marks, cleanup)
    }

    pub fn alike(&self) -> usize {
        self.marks.iter().filter(|m| m.alike).count()
    }

    pub fn not_alike(&self) -> usize {
        self.marks.len() - self.alike()
    }
}

/// What [`Marks::deduplicated`] dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarksCleanup {
    /// Marks repeating an earlier mark of the same pair with the same judgement.
    pub repeated: usize,
    /// Earlier marks of a pair overruled by a newer, different judgement.
    pub contradicted: usize,
}

impl MarksCleanup {
    /// A sentence for the person, or `None` when nothing was dropped.
    pub fn describe(&self) -> Option<String> {
        (self.repeated + self.contradicted > 0).then(|| {
            format!(
                "{} repeated mark(s) counted once; {} pair(s) marked both alike and not alike: \
                 the newest mark of each was used",
                self.repeated, self.contradicted
            )
        })
    }
}
