//! Out-of-fold evidence about each photo's label: cross-fitting.
//!
//! The margins recorded while training ([`crate::engine::train::margins`]) come from a
//! network that is being taught each photo's folder, so a photo filed in the wrong folder
//! is slowly pulled toward the wrong class and its margin creeps up. A network that never
//! saw the photo cannot be pulled: the photos are split into `folds` parts (each class
//! split evenly), one network is trained per part on all the other parts, and each photo
//! is judged by the network that did not train on it (Northcutt et al., "Confident
//! Learning", 2021, estimate the noise from such out-of-sample predictions). Every photo
//! also keeps the margins recorded while a network trained on it, so one cross-fit gives
//! both kinds of evidence.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize};

use crate::engine::data::{DEFAULT_MAX_PIXELS, LabeledDataset};
use crate::engine::index::embed_files;
use crate::engine::model::classifier::Classifier;
use crate::engine::train::margins::MarginEvidence;
use crate::engine::train::{TrainEvent, TrainJob, TrainSettings, train};
use crate::engine::{EngineError, Result};

/// What the cross-fit said about one photo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldedPhoto {
    pub path: PathBuf,
    /// Its folder's class (index into [`CrossFit::classes`]).
    pub class: usize,
    /// The part it was held out in.
    pub fold: usize,
    /// Under the network that never saw it: its cosine to its own class proxy minus the
    /// largest cosine to another class proxy, in −2..=2 (`None` if it did not embed).
    pub held_out_margin: Option<f64>,
    /// The class that network took it for, when not its own.
    pub held_out_class: Option<usize>,
    /// The margins recorded while a network trained on it (the first part's that did).
    pub training: Option<MarginEvidence>,
    /// Its cosine to every class proxy under the network that never saw it.
    pub held_out_cosines: Option<Vec<f64>>,
    /// Its progress-weighted mean cosine to every class proxy while the first network
    /// that trained on it did so.
    pub training_cosines: Option<Vec<f64>>,
}

/// The evidence of a whole cross-fit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CrossFit {
    pub classes: Vec<String>,
    pub photos: Vec<FoldedPhoto>,
    /// Steps each part's network trained.
    pub steps: Vec<usize>,
    /// Seconds spent training, all parts together.
    pub train_secs: f64,
}

/// Which part each photo is held out in: every class's photos shuffled (by `seed`) and
/// dealt round the parts, so each part holds its share of every class.
pub fn assign_folds(classes_of_photos: &[usize], folds: usize, seed: u64) -> Vec<usize> {
    let folds = folds.max(1);
    let mut rng = fastrand::Rng::with_seed(seed);
    let class_count = classes_of_photos.iter().max().map_or(0, |c| c + 1);
    let mut assignment = vec![0; classes_of_photos.len()];
    for class in 0..class_count {
        let mut members: Vec<usize> = (0..classes_of_photos.len())
            .filter(|&i| classes_of_photos[i] == class)
            .collect();
        rng.shuffle(&mut members);
        // Each class starts dealing at a different part so small classes do not all
        // leave part 0 the biggest.
        let start = rng.usize(0..folds);
        for (k, photo) in members.into_iter().enumerate() {
            assignment[photo] = (start + k) % folds;
        }
    }
    assignment
}

/// Cosine to `own`'s proxy minus the largest cosine to another proxy, and the other
/// class that scored highest when it beat `own`. A class the network does not know
/// (`None`: its folder had no photos in the network's part) takes no part; without its
/// own class or any other, a photo has no margin.
fn margin_of(cosines: &[Option<f64>], own: usize) -> Option<(f64, Option<usize>)> {
    let own_cosine = (*cosines.get(own)?)?;
    let (best_other, best_other_cosine) = cosines
        .iter()
        .enumerate()
        .filter(|&(c, _)| c != own)
        .filter_map(|(c, cosine)| Some((c, (*cosine)?)))
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    let margin = own_cosine - best_other_cosine;
    Some((margin, (margin < 0.0).then_some(best_other)))
}

/// Links `from` to `to`, or copies it where the file system has no hard links.
fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| EngineError::io(to, e))
}

/// Fills the new, empty `part_folder` with a class folder of links for every photo not
/// dealt to `fold`. Returns where each link came from (its photo's index), since the
/// training run reports the links' paths.
fn link_part(
    dataset: &LabeledDataset,
    assignment: &[usize],
    fold: usize,
    part_folder: &Path,
) -> Result<HashMap<PathBuf, usize>> {
    for class in &dataset.classes {
        let class_folder = part_folder.join(class);
        std::fs::create_dir(&class_folder).map_err(|e| EngineError::io(&class_folder, e))?;
    }
    let mut origin = HashMap::new();
    for (i, (path, class)) in dataset.images.iter().enumerate() {
        if assignment[i] == fold {
            continue;
        }
        let name = path
            .file_name()
            .ok_or_else(|| EngineError::bad_file(path, "no file name"))?;
        // The photo's number in front keeps apart same-named photos of a class's
        // sub-folders.
        let link = part_folder
            .join(&dataset.classes[*class])
            .join(format!("{i:06}-{}", name.to_string_lossy()));
        link_or_copy(path, &link)?;
        origin.insert(link, i);
    }
    Ok(origin)
}

/// Cross-fits the class folder `folder`: one network per part, each trained with
/// `settings` (its own time budget, `settings.max_seconds`, and seed) on a new folder of
/// links to the other parts' photos under `work` (`part-0`, `part-1`, …; an existing one
/// is refused), removed when the part is done or fails.
/// `on_event` hears each part's training as (part, event).
pub fn cross_fit(
    folder: &Path,
    work: &Path,
    folds: usize,
    settings: &TrainSettings,
    cancel: &AtomicBool,
    on_event: &(dyn Fn(usize, TrainEvent) + Sync),
) -> Result<CrossFit> {
    if folds < 2 {
        return Err(EngineError::Config(
            "cross-fitting needs at least 2 parts".into(),
        ));
    }
    let dataset = LabeledDataset::scan(folder, DEFAULT_MAX_PIXELS)?;
    dataset.check_trainable()?;
    let classes_of_photos: Vec<usize> = dataset.images.iter().map(|(_, c)| *c).collect();
    let assignment = assign_folds(&classes_of_photos, folds, settings.seed);
    let paths: Vec<PathBuf> = dataset.images.iter().map(|(p, _)| p.clone()).collect();
    let mut held_out: Vec<Option<(f64, Option<usize>)>> = vec![None; paths.len()];
    let mut held_out_cosines: Vec<Option<Vec<f64>>> = vec![None; paths.len()];
    let mut training: Vec<Option<MarginEvidence>> = vec![None; paths.len()];
    let mut training_cosines: Vec<Option<Vec<f64>>> = vec![None; paths.len()];
    let mut steps = Vec::with_capacity(folds);
    let mut train_secs = 0.0;
    for fold in 0..folds {
        let part_folder = work.join(format!("part-{fold}"));
        // A new folder, never one that is there already: it is removed afterwards.
        std::fs::create_dir_all(work).map_err(|e| EngineError::io(work, e))?;
        std::fs::create_dir(&part_folder).map_err(|e| EngineError::io(&part_folder, e))?;
        let trained = link_part(&dataset, &assignment, fold, &part_folder).and_then(|origin| {
            let job = TrainJob::new(
                part_folder.clone(),
                TrainSettings {
                    seed: settings.seed.wrapping_add(fold as u64),
                    ..settings.clone()
                },
            );
            Ok((origin, train(&job, cancel, &|event| on_event(fold, event))?))
        });
        std::fs::remove_dir_all(&part_folder).ok();
        let (origin, outcome) = trained?;
        steps.push(outcome.summary.steps);
        train_secs += outcome.summary.train_secs;
        let cosines_while_training = outcome
            .label_cosines
            .iter()
            .cloned()
            .chain(std::iter::repeat(None));
        for (((path, _), evidence), cosines) in
            outcome.label_evidence.iter().zip(cosines_while_training)
        {
            if let Some(&i) = origin.get(path)
                && training[i].is_none()
            {
                training[i] = *evidence;
                training_cosines[i] = cosines;
            }
        }
        let classifier = outcome.model.classifier.as_ref().ok_or_else(|| {
            EngineError::Config("cross-fitting needs a loss with class proxies".into())
        })?;
        // The part's network names the classes of its own folder; a class with no photo
        // in its part may be missing, so map by name.
        let to_network: Vec<Option<usize>> = dataset
            .classes
            .iter()
            .map(|name| classifier.info.classes.iter().position(|c| c == name))
            .collect();
        let judged: Vec<usize> = (0..paths.len())
            .filter(|&i| assignment[i] == fold)
            .collect();
        let judged_paths: Vec<PathBuf> = judged.iter().map(|&i| paths[i].clone()).collect();
        let embedded = embed_files(
            &outcome.model,
            &judged_paths,
            DEFAULT_MAX_PIXELS,
            &|_| {},
            cancel,
        )?;
        let dimension = outcome.model.config.embedding_dim;
        for (row, &k) in embedded.embedded.iter().enumerate() {
            let i = judged[k];
            let Some(vector) = embedded.vectors.get(row * dimension..(row + 1) * dimension) else {
                continue;
            };
            let cosines = photo_cosines(classifier, vector, &to_network);
            held_out[i] = margin_of(&cosines, classes_of_photos[i]);
            if held_out[i].is_some() {
                held_out_cosines[i] = cosines.into_iter().collect();
            }
        }
    }
    let photos = paths
        .into_iter()
        .enumerate()
        .map(|(i, path)| FoldedPhoto {
            path,
            class: classes_of_photos[i],
            fold: assignment[i],
            held_out_margin: held_out[i].map(|(m, _)| m),
            held_out_class: held_out[i].and_then(|(_, c)| c),
            training: training[i],
            held_out_cosines: held_out_cosines[i].take(),
            training_cosines: training_cosines[i].take(),
        })
        .collect();
    Ok(CrossFit {
        classes: dataset.classes,
        photos,
        steps,
        train_secs,
    })
}

/// A photo's cosine to every class proxy of `classifier`, in the data set's class
/// numbering (`to_network` maps a data-set class to the network's; `None` for a class
/// the network does not know).
fn photo_cosines(
    classifier: &Classifier,
    vector: &[f32],
    to_network: &[Option<usize>],
) -> Vec<Option<f64>> {
    let network_cosines = classifier.cosines(vector);
    to_network
        .iter()
        .map(|c| c.and_then(|c| network_cosines.get(c).copied()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_is_dealt_evenly_round_the_parts() {
        // 3 classes of 7, 4 and 1 photos, interleaved.
        let classes: Vec<usize> = (0..12)
            .map(|i| match i {
                0..=6 => 0,
                7..=10 => 1,
                _ => 2,
            })
            .collect();
        let folds = assign_folds(&classes, 2, 9);
        for class in 0..2 {
            let in_part = |f| {
                (0..classes.len())
                    .filter(|&i| classes[i] == class && folds[i] == f)
                    .count()
            };
            assert!(in_part(0).abs_diff(in_part(1)) <= 1, "class {class} uneven");
        }
        assert_eq!(
            folds,
            assign_folds(&classes, 2, 9),
            "the same seed deals the same"
        );
        assert_ne!(
            folds,
            assign_folds(&classes, 2, 10),
            "another seed deals anew"
        );
    }

    #[test]
    fn a_part_folder_that_is_already_there_is_refused_and_left_as_it_was() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        crate::engine::synthetic::write_dataset(&data, 2, 4, 16, 1).expect("data");
        let work = dir.path().join("work");
        let someone_elses = work.join("part-0").join("keep.txt");
        std::fs::create_dir_all(work.join("part-0")).expect("mkdir");
        std::fs::write(&someone_elses, "mine").expect("write");
        let result = cross_fit(
            &data,
            &work,
            2,
            &crate::engine::train::Preset::Scratch.settings(),
            &AtomicBool::new(false),
            &|_, _| {},
        );
        let error = result
            .expect_err("an existing part folder is refused")
            .to_string();
        assert!(error.contains("part-0"), "{error}");
        assert_eq!(
            std::fs::read_to_string(&someone_elses).expect("kept"),
            "mine"
        );
    }

    #[test]
    fn the_margin_is_own_minus_the_best_other_and_names_the_class_that_won() {
        let (margin, beaten_by) = margin_of(&[Some(0.2), Some(0.7), Some(0.5)], 0).expect("margin");
        assert!((margin - -0.5).abs() < 1e-12);
        assert_eq!(beaten_by, Some(1));
        let (margin, beaten_by) = margin_of(&[Some(0.9), Some(0.7), Some(0.5)], 0).expect("margin");
        assert!((margin - 0.2).abs() < 1e-12);
        assert_eq!(beaten_by, None);
        // A class the network never saw takes no part; without its own class or any
        // other, a photo has no margin.
        let (margin, beaten_by) = margin_of(&[Some(0.2), None, Some(0.5)], 0).expect("margin");
        assert!((margin - -0.3).abs() < 1e-12);
        assert_eq!(beaten_by, Some(2));
        assert!(margin_of(&[None, Some(0.7)], 0).is_none());
        assert!(margin_of(&[Some(0.9), None], 0).is_none());
        assert!(margin_of(&[Some(0.9)], 3).is_none());
    }
}
