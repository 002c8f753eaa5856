//! The worker's index jobs: build, update and open an index, and index with ImageNet
//! features.

use super::*;

impl Worker {
    /// Embeds `folder` with the current model; the new index becomes current only once
    /// it is written.
    pub(super) fn build_index(
        &mut self,
        job: JobId,
        folder: &Path,
        index_path: &Path,
        exclude: &[String],
        cancel: &AtomicBool,
    ) -> Result<Outcome, EngineError> {
        let Some(model) = self.model.clone() else {
            return Err(EngineError::Config(
                "there is no model yet: train one or open a model file".into(),
            ));
        };
        let scanned = scan_folder_excluding(folder, DEFAULT_MAX_PIXELS, exclude)?;
        check_output(
            index_path,
            OutputKind::Index,
            &[],
            index_bytes_estimate(scanned.images.len(), model.model.config.embedding_dim),
        )?;
        if scanned.images.is_empty() {
            return Err(EngineError::Dataset(format!(
                "{}: no images found to index",
                folder.display()
            )));
        }
        let progress = progress_reporter(&self.events, &*self.wake, job);
        let gallery = Gallery::build(
            &model,
            &scanned,
            &IndexOptions::new(DEFAULT_MAX_PIXELS),
            &|p| progress(p.into()),
            cancel,
        )?;
        drop(progress);
        let summary = self.save_and_make_current(index_path.to_path_buf(), gallery, model)?;
        Ok(Outcome::IndexReady(summary))
    }

    /// Brings the current index up to date with its folder and writes it in place; the
    /// updated index becomes current only once it is written.
    pub(super) fn update_index(
        &mut self,
        job: JobId,
        cancel: &AtomicBool,
    ) -> Result<Outcome, EngineError> {
        let (summary, changes) = self.refresh_index(job, cancel)?;
        Ok(Outcome::IndexUpdated { summary, changes })
    }

    /// Brings the current index up to date with its folder (only new and changed photos
    /// are embedded) and saves it.
    pub(super) fn refresh_index(
        &mut self,
        job: JobId,
        cancel: &AtomicBool,
    ) -> Result<(IndexSummary, crate::engine::index::IndexChanges), EngineError> {
        let Some(open) = self.index.as_ref() else {
            return Err(EngineError::Config("there is no index to update".into()));
        };
        let header = &open.gallery.header;
        let scanned = scan_folder_excluding(&header.folder, DEFAULT_MAX_PIXELS, &header.exclude)?;
        let progress = progress_reporter(&self.events, &*self.wake, job);
        let model = Rc::clone(&open.model);
        let (gallery, changes) = Gallery::update(
            &model,
            &scanned,
            Some(&open.gallery),
            &IndexOptions::new(DEFAULT_MAX_PIXELS),
            &|p| progress(p.into()),
            cancel,
        )?;
        let path = open.path.clone();
        drop(progress);
        let summary = self.save_and_make_current(path, gallery, model)?;
        Ok((summary, changes))
    }

    /// Opens an index file with the model that built it; both become current.
    pub(super) fn open_index(&mut self, path: PathBuf) -> Result<Outcome, EngineError> {
        let session = SearchSession::open(&path, None, self.device)?;
        let model = Rc::new(session.model);
        let mut open = OpenIndex::new(path, session.gallery, Rc::clone(&model));
        open.out_of_date = out_of_date(&open.gallery);
        let summary = index_summary(&open);
        self.model = Some(model);
        self.index = Some(open);
        Ok(Outcome::IndexReady(summary))
    }

    /// Makes the ImageNet feature model current, downloading its weights the first time.
    pub(super) fn use_imagenet_features(
        &mut self,
        job: JobId,
        source: &crate::engine::model::pretrained::WeightsSource,
        model_path: PathBuf,
        cancel: &AtomicBool,
    ) -> Result<Outcome, EngineError> {
        // The EfficientNet-Lite0 weights ship with Likeness: no download. Only when they
        // are missing does it fall back to the ResNet18 weights, downloaded once.
        if find_lite0_weights().is_some() {
            lite0_feature_model(&model_path)?;
        } else {
            if source.cached().is_none() {
                let progress = progress_reporter(&self.events, &*self.wake, job);
                download_weights(source, cancel, &|p| progress(p.into()))?;
            }
            imagenet_feature_model(&source.cache_path, &model_path)?;
        }
        let (model, info) = load_model(&model_path, self.device)?;
        self.model = Some(Rc::new(LoadedModel {
            path: model_path.clone(),
            model,
            info,
        }));
        Ok(Outcome::ModelOpened(model_path))
    }
}

pub(super) fn index_summary(open: &OpenIndex) -> IndexSummary {
    IndexSummary {
        typical_distance: open.typical_distance,
        path: open.path.clone(),
        folder: open.gallery.header.folder.clone(),
        images: open.gallery.len(),
        skipped: open.gallery.header.skipped.clone(),
        model_path: open.model.path.clone(),
        modified: modified(&open.path),
        out_of_date: open.out_of_date,
        search: open.gallery.search_method().clone(),
    }
}

/// How many photos of the index's folder were added, changed or removed since the index
/// was written (0 when the folder cannot be scanned: there is nothing to offer then).
pub(super) fn out_of_date(gallery: &Gallery) -> usize {
    let header = &gallery.header;
    let Ok(folder) = scan_folder_excluding(&header.folder, DEFAULT_MAX_PIXELS, &header.exclude)
    else {
        return 0;
    };
    FolderDiff::between(&folder.images, &header.images).count()
}

/// When a file was last written, if the file system says.
pub(super) fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}
