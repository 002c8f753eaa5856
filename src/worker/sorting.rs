//! The worker's Sort jobs: suggest folders for an inbox, file it, and undo a sort.

use super::*;

impl Worker {
    /// The folder each inbox photo would go to in the current index's library (with the
    /// model's second opinion when `second_opinion`, a new kind looked for when
    /// `new_kinds`).
    #[allow(clippy::too_many_arguments)] // the request's fields, each used here
    pub(super) fn plan_sort(
        &mut self,
        job: JobId,
        inbox: &Path,
        min_confidence: f64,
        second_opinion: bool,
        new_kinds: bool,
        cancel: &AtomicBool,
    ) -> Result<Outcome, EngineError> {
        let Some(open) = self.index.as_mut() else {
            return Err(EngineError::Config(
                "sorting needs the library's index: index the library first".into(),
            ));
        };
        let (inbox, library) = sort::check_folders(inbox, &open.gallery.header.folder)?;
        let folder = scan_folder(&inbox, DEFAULT_MAX_PIXELS)?;
        if folder.images.is_empty() {
            return Err(EngineError::Dataset(format!(
                "{} holds no photos to sort",
                inbox.display()
            )));
        }
        let model = Rc::clone(&open.model);
        let network = match second_opinion || new_kinds {
            true => Some(crate::engine::model::pretrained::lite0_feature_network(
                model.model.device(),
            )?),
            false => None,
        };
        let progress = progress_reporter(&self.events, &*self.wake, job);
        let plan = sort::plan(
            &model.model,
            &folder,
            &library,
            Some(&mut open.gallery),
            min_confidence,
            network.as_ref().map(|network| sort::ImageNetAsks {
                network,
                second_opinion,
                new_kinds,
            }),
            &|p| progress(p.into()),
            cancel,
        )?;
        Ok(Outcome::SortPlanned(Arc::new(plan)))
    }

    /// Files the chosen photos into the current index's library, then updates the index.
    pub(super) fn file_sort(
        &mut self,
        job: JobId,
        inbox: &Path,
        choices: &[(PathBuf, String)],
        mode: sort::FileMode,
        journals: &Path,
        cancel: &AtomicBool,
    ) -> Result<Outcome, EngineError> {
        let Some(open) = self.index.as_ref() else {
            return Err(EngineError::Config(
                "sorting needs the library's index: index the library first".into(),
            ));
        };
        let library = open.gallery.header.folder.clone();
        let journal = sort::new_journal_path(journals)?;
        let report = sort::file_photos(choices, inbox, &library, mode, &journal, cancel)?;
        let (index, _) = self.refresh_index(job, &AtomicBool::new(false))?;
        Ok(Outcome::SortFiled { report, index })
    }

    /// Reverses a sort, then updates the index.
    pub(super) fn undo_sort(&mut self, job: JobId, journal: &Path) -> Result<Outcome, EngineError> {
        let report = sort::undo(journal)?;
        let (index, _) = self.refresh_index(job, &AtomicBool::new(false))?;
        Ok(Outcome::SortUndone { report, index })
    }
}
