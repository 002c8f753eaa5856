//! Phase 1 of training: scan the class folders and decode every image into memory once.
//!
//! A [`LabeledImages`] keeps the data set and its decoded images together, built in one
//! pass, so image `i` of one is always image `i` of the other, whichever files failed.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use image::RgbImage;

use super::{TrainEvent, TrainJob};
use crate::engine::data::{LabeledDataset, PreparedImages, SkippedFile};
use crate::engine::{EngineError, Result};

/// A class-folder data set with each usable image decoded, in the same order.
pub struct LabeledImages {
    pub dataset: LabeledDataset,
    pub images: Arc<PreparedImages>,
}

impl LabeledImages {
    /// Pairs a data set with its decode results (`decoded[i]` for `dataset.images[i]`):
    /// images that failed (or were never decoded) leave the data set with their reasons.
    fn pair(
        mut dataset: LabeledDataset,
        decoded: &[Option<Arc<RgbImage>>],
        failed: &[SkippedFile],
    ) -> Self {
        let own_failures: Vec<SkippedFile> = failed
            .iter()
            .filter(|f| dataset.images.iter().any(|(path, _)| *path == f.path))
            .cloned()
            .collect();
        let mut kept = Vec::with_capacity(dataset.images.len());
        let mut images = Vec::with_capacity(dataset.images.len());
        for (item, image) in dataset.images.drain(..).zip(decoded) {
            if let Some(image) = image {
                kept.push(item);
                images.push(Arc::clone(image));
            }
        }
        dataset.images = kept;
        // Records the failures as skipped files and refreshes the per-class notes.
        dataset.remove_images(&own_failures);
        Self {
            dataset,
            images: Arc::new(PreparedImages::new(images)),
        }
    }

    pub fn len(&self) -> usize {
        self.dataset.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dataset.images.is_empty()
    }

    /// The class index of every image, as libtorch labels.
    pub fn labels(&self) -> Vec<i64> {
        self.dataset.images.iter().map(|(_, c)| *c as i64).collect()
    }
}

/// Classes with fewer photos than this keep them all for training when photos are held
/// out for validation.
const HOLDOUT_MIN_CLASS_IMAGES: usize = 8;

/// The training set, the optional validation set, and what the person should know.
pub struct PreparedData {
    pub training: LabeledImages,
    pub validation: Option<LabeledImages>,
    /// What validates the run, in words ("the validation folder", "N photos held out of
    /// the library"); `None` without validation.
    pub validation_source: Option<String>,
    /// Files left out of either set, and why.
    pub skipped: Vec<SkippedFile>,
    pub notes: Vec<String>,
}

/// Moves `share` of the photos of every class with at least [`HOLDOUT_MIN_CLASS_IMAGES`]
/// out of `training` (evenly spread over the class, so the same photos every run) and
/// returns them as a validation set; `None` when no class has enough photos.
fn hold_out(training: &mut LabeledDataset, share: f64) -> Option<LabeledDataset> {
    let share = share.clamp(0.0, 0.5);
    let mut held = Vec::new();
    let mut kept = Vec::with_capacity(training.images.len());
    for class in 0..training.classes.len() {
        let members: Vec<&(PathBuf, usize)> = training
            .images
            .iter()
            .filter(|(_, c)| *c == class)
            .collect();
        let count = members.len();
        let take = if count >= HOLDOUT_MIN_CLASS_IMAGES {
            ((count as f64 * share).round() as usize).max(1)
        } else {
            0
        };
        let picked: std::collections::HashSet<usize> = (0..take)
            .map(|i| i * count / take.max(1) + count / (2 * take.max(1)))
            .collect();
        for (i, item) in members.into_iter().enumerate() {
            if picked.contains(&i) {
                held.push(item.clone());
            } else {
                kept.push(item.clone());
            }
        }
    }
    if held.is_empty() {
        return None;
    }
    training.images = kept;
    Some(LabeledDataset {
        root: training.root.clone(),
        classes: training.classes.clone(),
        images: held,
        skipped: Vec::new(),
        notes: Vec::new(),
    })
}

/// Scans and decodes the job's folders. Fails when the training set cannot train.
pub fn prepare(
    job: &TrainJob,
    cancel: &AtomicBool,
    on_event: &(dyn Fn(TrainEvent) + Sync),
) -> Result<PreparedData> {
    let mut training_set = LabeledDataset::scan(&job.data, job.max_pixels)?;
    training_set.check_trainable()?;
    let validation_set = match (&job.validation, job.holdout_share) {
        (Some(folder), _) => Some(LabeledDataset::scan(folder, job.max_pixels)?),
        (None, Some(share)) => hold_out(&mut training_set, share),
        (None, None) => None,
    };
    let validation_source = match (&job.validation, &validation_set) {
        (Some(_), Some(set)) => Some(format!(
            "the validation folder ({} photos)",
            set.images.len()
        )),
        (None, Some(set)) => Some(format!(
            "{} photos held out of the library",
            set.images.len()
        )),
        _ => None,
    };

    // Decode everything once; augmentation then works on the cached square images, and
    // validation embeds them at the model's (possibly larger) embedding size.
    let cache_side = job
        .settings
        .augment
        .cache_side_px(job.settings.image_size_px)
        .max(job.settings.embed_size_px());
    let mut all_paths: Vec<PathBuf> = training_set.images.iter().map(|(p, _)| p.clone()).collect();
    let training_count = all_paths.len();
    if let Some(set) = &validation_set {
        all_paths.extend(set.images.iter().map(|(p, _)| p.clone()));
    }
    let total = all_paths.len();
    let (decoded, failed) = PreparedImages::decode_all(
        &all_paths,
        cache_side,
        job.max_pixels,
        job.loader_threads,
        job.decoded_cache.as_ref(),
        &|done| {
            if done % 16 == 0 || done == total {
                on_event(TrainEvent::Preparing { done, total });
            }
        },
        cancel,
    );
    if cancel.load(std::sync::atomic::Ordering::Relaxed) && decoded.iter().any(Option::is_none) {
        return Err(EngineError::Cancelled);
    }
    if let Some(cache) = &job.decoded_cache {
        cache.trim(crate::engine::data::decoded_cache::MAX_CACHE_BYTES);
    }
    let (training_decoded, validation_decoded) = decoded.split_at(training_count);
    let training = LabeledImages::pair(training_set, training_decoded, &failed);
    training.dataset.check_trainable()?;
    let validation =
        validation_set.map(|set| LabeledImages::pair(set, validation_decoded, &failed));

    let mut skipped = training.dataset.skipped.clone();
    let mut notes = training.dataset.notes.clone();
    if let Some(set) = &validation {
        skipped.extend(set.dataset.skipped.iter().cloned());
        notes.extend(set.dataset.notes.iter().map(|n| format!("validation: {n}")));
    }
    Ok(PreparedData {
        training,
        validation,
        validation_source,
        skipped,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(counts: &[usize]) -> LabeledDataset {
        let classes: Vec<String> = (0..counts.len()).map(|c| format!("c{c}")).collect();
        let images = counts
            .iter()
            .enumerate()
            .flat_map(|(class, &n)| {
                (0..n).map(move |i| (PathBuf::from(format!("c{class}/{i}.png")), class))
            })
            .collect();
        LabeledDataset {
            root: PathBuf::from("lib"),
            classes,
            images,
            skipped: Vec::new(),
            notes: Vec::new(),
        }
    }

    #[test]
    fn holding_out_takes_a_share_of_each_large_enough_class_and_nothing_else() {
        let mut training = dataset(&[20, 3, 10]);
        let held = hold_out(&mut training, 0.1).expect("held out");
        assert_eq!(held.images_per_class(), vec![2, 0, 1]);
        assert_eq!(training.images_per_class(), vec![18, 3, 9]);
        // No photo is in both sets, and the same photos are picked every time.
        assert!(held.images.iter().all(|h| !training.images.contains(h)));
        let mut again = dataset(&[20, 3, 10]);
        assert_eq!(
            hold_out(&mut again, 0.1).map(|h| h.images),
            Some(held.images)
        );
        // Classes too small to spare a photo: nothing is held out.
        let mut small = dataset(&[5, 7]);
        assert!(hold_out(&mut small, 0.1).is_none());
        assert_eq!(small.images.len(), 12);
    }
}
