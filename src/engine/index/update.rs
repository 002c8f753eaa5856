//! A folder against its earlier index: the one [`FolderDiff`], and building or updating
//! a gallery so that only new and changed photos are embedded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use super::ann::{ApproximateIndex, MethodChoice, SearchMethod};
use super::embed::{ProgressFn, embed_for_update, nothing_readable, pending};
use super::format::{EXACT_FORMAT_VERSION, INDEX_FORMAT_VERSION};
use super::{Gallery, GalleryHeader, IndexChanges, IndexOptions, Store};
use crate::engine::data::{ImageFile, ImageFolder, SkippedFile};
use crate::engine::model::{LoadedModel, ModelInfo};
use crate::engine::{EngineError, Result};

/// How a scanned folder differs from the photos an index holds: the one comparison that
/// index updates (exact and approximate) and the window's "out of date" count share. A
/// photo is unchanged when its path, size and modification time are the same.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FolderDiff {
    /// For each scanned photo (by position), the earlier record it is unchanged from.
    pub unchanged_from: Vec<Option<usize>>,
    /// For each earlier record (by position), whether a scanned photo is unchanged from it.
    pub kept: Vec<bool>,
    /// Scanned photos with no earlier record at their path.
    pub added: usize,
    /// Scanned photos whose earlier record is out of date (the file changed).
    pub changed: usize,
    /// Earlier records whose path is no longer in the folder.
    pub removed: usize,
}

impl FolderDiff {
    pub fn between(scanned: &[ImageFile], earlier: &[ImageFile]) -> Self {
        let at: HashMap<&Path, usize> = earlier
            .iter()
            .enumerate()
            .map(|(i, image)| (image.path.as_path(), i))
            .collect();
        let mut diff = Self {
            unchanged_from: Vec::with_capacity(scanned.len()),
            kept: vec![false; earlier.len()],
            ..Self::default()
        };
        let mut present = vec![false; earlier.len()];
        for image in scanned {
            let found = at.get(image.path.as_path()).copied();
            if let Some(j) = found {
                present[j] = true;
            }
            match found {
                Some(j) if earlier[j].unchanged(image) => {
                    diff.kept[j] = true;
                    diff.unchanged_from.push(Some(j));
                }
                Some(_) => {
                    diff.changed += 1;
                    diff.unchanged_from.push(None);
                }
                None => {
                    diff.added += 1;
                    diff.unchanged_from.push(None);
                }
            }
        }
        diff.removed = present.iter().filter(|p| !**p).count();
        diff
    }

    /// Photos added, changed or removed.
    pub fn count(&self) -> usize {
        self.added + self.changed + self.removed
    }
}

impl Gallery {
    /// Embeds the images of a scanned `folder` with `loaded` (a model and its file)
    /// and indexes them.
    pub fn build(
        loaded: &LoadedModel,
        folder: &ImageFolder,
        options: &IndexOptions,
        on_progress: ProgressFn<'_>,
        cancel: &AtomicBool,
    ) -> Result<Self> {
        Self::update(loaded, folder, None, options, on_progress, cancel).map(|(gallery, _)| gallery)
    }

    /// Indexes a scanned `folder`, taking the vectors of photos that are unchanged since
    /// `previous` (same path, size and modification time, same model) and embedding only
    /// new and changed ones; photos no longer in the folder drop out. Returns the index
    /// and what changed. An approximate `previous` stays approximate: its new photos are
    /// added to it and its removed ones taken out, without training it again.
    pub fn update(
        loaded: &LoadedModel,
        folder: &ImageFolder,
        previous: Option<&Gallery>,
        options: &IndexOptions,
        on_progress: ProgressFn<'_>,
        cancel: &AtomicBool,
    ) -> Result<(Self, IndexChanges)> {
        let dimension = loaded.model.config.embedding_dim;
        let previous = previous.filter(|p| {
            p.header.model_id == loaded.info.model_id && p.header.dimension == dimension
        });
        // Photos of folders the scan could not read are kept, not taken for deleted.
        let with_unreadable;
        let folder = match previous {
            Some(p) if !folder.unreadable.is_empty() => {
                with_unreadable = folder.keeping_unreadable(&p.header.images);
                &with_unreadable
            }
            _ => folder,
        };
        if let Some(previous) = previous
            && let Store::Approximate(earlier_index) = &previous.store
            && options.method != MethodChoice::Exact
        {
            return Self::update_approximate(
                loaded,
                folder,
                previous,
                earlier_index,
                options,
                on_progress,
                cancel,
            );
        }
        // Exact vectors of unchanged photos can only come from an exact index.
        let previous = previous.filter(|p| matches!(p.store, Store::Exact { .. }));
        let earlier: HashMap<&Path, usize> = previous
            .map(|p| {
                p.header
                    .images
                    .iter()
                    .enumerate()
                    .map(|(i, image)| (image.path.as_path(), i))
                    .collect()
            })
            .unwrap_or_default();
        // For each scanned photo: the earlier vector to keep, or a place in the queue.
        let kept_from = previous.map_or_else(
            || vec![None; folder.images.len()],
            |p| FolderDiff::between(&folder.images, &p.header.images).unchanged_from,
        );
        let to_embed: Vec<usize> = (0..folder.images.len())
            .filter(|&i| kept_from[i].is_none())
            .collect();
        let mut changes = IndexChanges::default();
        let paths: Vec<PathBuf> = to_embed
            .iter()
            .map(|&i| folder.images[i].path.clone())
            .collect();
        let embedded = embed_for_update(&loaded.model, &paths, options, on_progress, cancel)?;
        let mut fresh: HashMap<usize, usize> = HashMap::new();
        for (slot, &queued) in embedded.embedded.iter().enumerate() {
            fresh.insert(to_embed[queued], slot);
        }
        let mut images = Vec::with_capacity(folder.images.len());
        let mut vectors = Vec::with_capacity(folder.images.len() * dimension);
        for (i, image) in folder.images.iter().enumerate() {
            let mut image = image.clone();
            if let Some(earlier) = kept_from[i].and_then(|j| previous?.vector(j)) {
                vectors.extend_from_slice(earlier);
                image.fingerprint =
                    kept_from[i].and_then(|j| previous?.header.images[j].fingerprint.clone());
                changes.kept += 1;
            } else if let Some(&slot) = fresh.get(&i) {
                image.fingerprint = embedded
                    .fingerprints
                    .get(embedded.embedded[slot])
                    .cloned()
                    .flatten();
                vectors
                    .extend_from_slice(&embedded.vectors[slot * dimension..(slot + 1) * dimension]);
                if earlier.contains_key(image.path.as_path()) {
                    changes.updated += 1;
                } else {
                    changes.added += 1;
                }
            } else {
                // It failed to decode (listed in `skipped`), or was not reached before an
                // interruption (counted in `pending`, embedded by the next update).
                continue;
            }
            images.push(image);
        }
        if let Some(p) = previous {
            let now: std::collections::HashSet<&Path> =
                images.iter().map(|image| image.path.as_path()).collect();
            changes.removed = p
                .header
                .images
                .iter()
                .filter(|image| !now.contains(image.path.as_path()))
                .count();
        }
        if images.is_empty() && embedded.interrupted {
            return Err(EngineError::Cancelled);
        }
        if images.is_empty() {
            return Err(nothing_readable(folder, &embedded.failed));
        }
        changes.pending = pending(&embedded, paths.len());
        let mut all_skipped = folder.skipped.clone();
        all_skipped.extend(embedded.failed);
        let header = new_header(
            &loaded.info,
            &loaded.path,
            folder,
            dimension,
            images,
            all_skipped,
        );
        let gallery = if options.method.approximate_for(header.images.len()) {
            Self::approximate_from_vectors(header, &vectors)?
        } else {
            Self::from_parts(header, vectors)?
        };
        Ok((gallery, changes))
    }

    /// [`Gallery::update`] for an approximate `previous`: unchanged photos keep their
    /// place in its index, changed and removed ones are taken out by id, and new and
    /// changed ones are embedded and added under new ids.
    fn update_approximate(
        loaded: &LoadedModel,
        folder: &ImageFolder,
        previous: &Gallery,
        earlier_index: &ApproximateIndex,
        options: &IndexOptions,
        on_progress: ProgressFn<'_>,
        cancel: &AtomicBool,
    ) -> Result<(Self, IndexChanges)> {
        let dimension = loaded.model.config.embedding_dim;
        let diff = FolderDiff::between(&folder.images, &previous.header.images);
        let earlier: HashMap<&Path, usize> = previous
            .header
            .images
            .iter()
            .enumerate()
            .map(|(i, image)| (image.path.as_path(), i))
            .collect();
        let mut changes = IndexChanges::default();
        let mut images = Vec::with_capacity(folder.images.len());
        let mut ids = Vec::with_capacity(folder.images.len());
        let mut gone = Vec::new();
        for (j, image) in previous.header.images.iter().enumerate() {
            if diff.kept[j] {
                // The same file (path, size, time): its record, fingerprint included.
                images.push(image.clone());
                ids.push(previous.header.ids[j]);
                changes.kept += 1;
            } else {
                gone.push(previous.header.ids[j]);
            }
        }
        let to_embed: Vec<&ImageFile> = folder
            .images
            .iter()
            .zip(&diff.unchanged_from)
            .filter(|(_, kept)| kept.is_none())
            .map(|(image, _)| image)
            .collect();
        let paths: Vec<PathBuf> = to_embed.iter().map(|image| image.path.clone()).collect();
        let embedded = embed_for_update(&loaded.model, &paths, options, on_progress, cancel)?;
        let first_new_id = previous.header.ids.last().map_or(0, |&id| id + 1);
        let mut fresh_ids = Vec::with_capacity(embedded.embedded.len());
        for (next_id, &queued) in (first_new_id..).zip(&embedded.embedded) {
            let image = to_embed[queued];
            if earlier.contains_key(image.path.as_path()) {
                changes.updated += 1;
            } else {
                changes.added += 1;
            }
            let mut fresh = image.clone();
            fresh.fingerprint = embedded.fingerprints.get(queued).cloned().flatten();
            images.push(fresh);
            ids.push(next_id);
            fresh_ids.push(next_id);
        }
        changes.removed = diff.removed;
        if images.is_empty() && embedded.interrupted {
            return Err(EngineError::Cancelled);
        }
        if images.is_empty() {
            return Err(nothing_readable(folder, &embedded.failed));
        }
        let mut index = earlier_index.try_clone()?;
        index.remove(&gone)?;
        index.add(&embedded.vectors, &fresh_ids)?;
        changes.pending = pending(&embedded, paths.len());
        let mut all_skipped = folder.skipped.clone();
        all_skipped.extend(embedded.failed);
        let mut header = new_header(
            &loaded.info,
            &loaded.path,
            folder,
            dimension,
            images,
            all_skipped,
        );
        header.format_version = INDEX_FORMAT_VERSION;
        header.search = SearchMethod::Approximate(index.params.clone());
        header.ids = ids;
        Ok((
            Self {
                header,
                store: Store::Approximate(index),
            },
            changes,
        ))
    }
}

/// The header of a new index of `folder`'s `images`.
fn new_header(
    model_info: &ModelInfo,
    model_path: &Path,
    folder: &ImageFolder,
    dimension: usize,
    images: Vec<ImageFile>,
    skipped: Vec<SkippedFile>,
) -> GalleryHeader {
    GalleryHeader {
        format_version: EXACT_FORMAT_VERSION,
        model_id: model_info.model_id.clone(),
        model_path: std::path::absolute(model_path).unwrap_or_else(|_| model_path.to_path_buf()),
        folder: std::fs::canonicalize(&folder.root)
            .or_else(|_| std::path::absolute(&folder.root))
            .unwrap_or_else(|_| folder.root.clone()),
        dimension,
        images,
        skipped,
        vectors_checksum: None,
        exclude: folder.exclude.clone(),
        search: SearchMethod::Exact,
        ids: Vec::new(),
    }
}
