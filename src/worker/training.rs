//! The worker's training jobs: train a model (and make it current when it is better), and
//! retrain one from the person's marks.

use super::*;

impl Worker {
    /// Trains and writes the model file. A finished run's model becomes current; a
    /// cancelled run's model is only kept as a file (the person may choose to use it).
    pub(super) fn train(
        &mut self,
        job: JobId,
        mut training: TrainJob,
        model_path: PathBuf,
        cancel: &AtomicBool,
    ) -> Result<Outcome, EngineError> {
        // Found now, not after the whole budget: a data folder that takes no new file or
        // has no room for the model.
        check_output(
            &model_path,
            OutputKind::Model,
            &[],
            model_file_bytes_estimate(&training.settings.model_config()),
        )?;
        if training.settings.device == DeviceChoice::Auto {
            training.settings.device = if self.device.is_cuda() {
                DeviceChoice::Cuda
            } else {
                DeviceChoice::Cpu
            };
        }
        let progress = progress_reporter(&self.events, &*self.wake, job);
        let outcome = train(&training, cancel, &|event| {
            progress(Progress::Training(event));
        })?;
        // Keep training: the new model replaces the current one only when it is better
        // (the window always writes a new file, so it is always written).
        let saved = save_run(&outcome, &model_path, training.resume.as_deref())?;
        let became_current = saved.is_an_improvement();
        if became_current && let Some(info) = saved.info {
            self.model = Some(Rc::new(LoadedModel {
                path: model_path.clone(),
                model: outcome.model,
                info,
            }));
        }
        Ok(Outcome::Trained {
            model_path,
            became_current,
            summary: Box::new(saved.summary),
            validation: outcome.validation.map(Box::new),
            before_after: outcome.before_after.map(Arc::new),
            kept_training: saved.kept_training,
        })
    }

    /// Fine-tunes a fresh copy of the current model from marks, writes it as a new file,
    /// and embeds the current index's folder with it into the same index file. Both
    /// become current only once both are written. Until then the current index keeps
    /// answering searches: the slow part runs on a thread of its own
    /// ([`Worker::answering_searches_while`]).
    pub(super) fn fine_tune(
        &mut self,
        job: JobId,
        marks: &Marks,
        seconds: f64,
        model_path: &Path,
        cancel: &AtomicBool,
    ) -> Result<Outcome, EngineError> {
        // Where each marked photo ranks for its query now, to say what retraining did.
        let ranks_before = match (self.model.clone(), self.index.as_mut()) {
            (Some(current), Some(open)) => marked_ranks(&current.model, &mut open.gallery, marks),
            _ => HashMap::new(),
        };
        let (Some(current), Some(open)) = (self.model.as_ref(), self.index.as_ref()) else {
            return Err(EngineError::Config(
                "retraining needs a model and an index: index a folder first".into(),
            ));
        };
        let (mut model, info) = load_model(&current.path, self.device)?;
        let library: Vec<PathBuf> = open.gallery.paths();
        let folder = open.gallery.header.folder.clone();
        let exclude = open.gallery.header.exclude.clone();
        let index_path = open.path.clone();
        let options = FineTune {
            seconds,
            // With class folders, their loss goes on alongside the marked pairs (as
            // `--with-classes`): measured, that keeps the base model's quality on queries
            // nobody marked, where the pairs alone lose a little (docs/quality.md).
            class_temperature: class_loss_temperature(&model, &info.summary),
            ..FineTune::default()
        };
        let (events, wake) = (self.events.clone(), Arc::clone(&self.wake));
        let new_model_path = model_path.to_path_buf();
        let retrained = self.answering_searches_while(move || {
            let progress = progress_reporter(&events, &*wake, job);
            let done = fine_tune(&mut model, marks, &library, &options, cancel, &|p| {
                progress(p.into())
            })?;
            let Some(saved) = save_fine_tuned(&mut model, &info.summary, &done, &new_model_path)?
            else {
                // Refused before anything is written or embedded again: the current model
                // and index stay, and the slow part (embedding the library again) is not
                // paid.
                return Ok((done, None));
            };
            let loaded = LoadedModel {
                path: new_model_path,
                model,
                info: saved,
            };
            let scanned = scan_folder_excluding(&folder, DEFAULT_MAX_PIXELS, &exclude)?;
            let gallery = Gallery::build(
                &loaded,
                &scanned,
                &IndexOptions::new(DEFAULT_MAX_PIXELS),
                &|p| progress(p.into()),
                cancel,
            )?;
            Ok((done, Some((loaded, gallery))))
        })?;
        let (mut done, kept) = retrained;
        let Some((loaded, mut gallery)) = kept else {
            return Ok(Outcome::FineTuned {
                model_path: model_path.to_path_buf(),
                summary: done,
                index: None,
            });
        };
        let ranks_after = marked_ranks(&loaded.model, &mut gallery, marks);
        for change in &mut done.pair_changes {
            let key = (change.query.clone(), change.photo.clone());
            change.rank_before = ranks_before.get(&key).copied().flatten();
            change.rank_after = ranks_after.get(&key).copied().flatten();
        }
        let loaded = Rc::new(loaded);
        let index = self.save_and_make_current(index_path, gallery, Rc::clone(&loaded))?;
        self.model = Some(loaded);
        Ok(Outcome::FineTuned {
            model_path: model_path.to_path_buf(),
            summary: done,
            index: Some(index),
        })
    }

    /// Writes `gallery` to `path` and makes it the current index, embedded with `model`:
    /// build, retrain and update all end here. When the write fails nothing current
    /// changes.
    pub(super) fn save_and_make_current(
        &mut self,
        path: PathBuf,
        gallery: Gallery,
        model: Rc<LoadedModel>,
    ) -> Result<IndexSummary, EngineError> {
        gallery.save(&path)?;
        let open = OpenIndex::new(path, gallery, model);
        let summary = index_summary(&open);
        self.index = Some(open);
        Ok(summary)
    }
}
