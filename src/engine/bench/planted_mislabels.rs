//! Calibrating the "check this label" finder on mistakes we plant ourselves.
//!
//! A copy of a class folder gets a share of its photos moved into wrong class folders;
//! a model is trained on the copy as a person would train on their folder, and the finder
//! ([`super::mislabels::find_mislabels`]) is scored on how many of its flags are planted
//! mistakes (precision) and how many planted mistakes it flags (recall).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize};

use crate::engine::collection::mislabels::{
    MISLABEL_CONFIDENCE, MISLABEL_NEIGHBOURS, gallery_neighbours, mislabel_evidence,
};
use crate::engine::data::{DEFAULT_MAX_PIXELS, LabeledDataset};
use crate::engine::index::embed_files;
use crate::engine::index::labelled_gallery;
use crate::engine::model::EmbeddingModel;
use crate::engine::train::margins::{
    MarginEvidence, SUSPECT_SPREADS_BELOW, mean_and_spread, suspect_threshold,
};
use crate::engine::train::{TrainEvent, TrainJob, TrainSettings, train};
use crate::engine::{EngineError, Result};

/// A photo moved into a wrong class folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlantedMistake {
    /// Where it is now (inside the wrong class folder).
    pub path: PathBuf,
    pub true_class: String,
    pub planted_class: String,
}

/// Copies the class folder `source` to `target` and moves `fraction` of its photos
/// (at least one) into a random other class folder each.
pub fn plant_mislabels(
    source: &Path,
    target: &Path,
    fraction: f64,
    seed: u64,
) -> Result<Vec<PlantedMistake>> {
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(EngineError::Config(
            "the share of photos to mislabel must be between 0 and 1".into(),
        ));
    }
    let dataset = LabeledDataset::scan(source, DEFAULT_MAX_PIXELS)?;
    dataset.check_trainable()?;
    for class in &dataset.classes {
        let folder = target.join(class);
        std::fs::create_dir_all(&folder).map_err(|e| EngineError::io(&folder, e))?;
    }
    let mut rng = fastrand::Rng::with_seed(seed);
    let count = ((dataset.images.len() as f64 * fraction).round() as usize).max(1);
    let mut order: Vec<usize> = (0..dataset.images.len()).collect();
    rng.shuffle(&mut order);
    let planted: std::collections::HashSet<usize> = order.into_iter().take(count).collect();
    let mut mistakes = Vec::with_capacity(count);
    for (i, (path, class)) in dataset.images.iter().enumerate() {
        let file_name = path
            .file_name()
            .ok_or_else(|| EngineError::bad_file(path, "no file name"))?;
        let destination_class = if planted.contains(&i) {
            let mut other = rng.usize(0..dataset.classes.len() - 1);
            if other >= *class {
                other += 1;
            }
            other
        } else {
            *class
        };
        // The class name in front keeps two classes' same-named files apart.
        let destination = target
            .join(&dataset.classes[destination_class])
            .join(format!(
                "{}-{}",
                dataset.classes[*class],
                file_name.to_string_lossy()
            ));
        std::fs::copy(path, &destination).map_err(|e| EngineError::io(&destination, e))?;
        if destination_class != *class {
            mistakes.push(PlantedMistake {
                path: destination,
                true_class: dataset.classes[*class].clone(),
                planted_class: dataset.classes[destination_class].clone(),
            });
        }
    }
    Ok(mistakes)
}

/// Precision and recall of the finder at one confidence threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinderScore {
    pub min_confidence: f64,
    pub flagged: usize,
    pub correct: usize,
    pub precision: f64,
    pub recall: f64,
}

/// What the planted-mistake benchmark found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MislabelBenchmark {
    pub classes: Vec<String>,
    pub images: usize,
    pub planted: usize,
    pub train_secs: f64,
    pub steps: usize,
    /// The training-margin finder (what the training summary lists) at its threshold,
    /// [`SUSPECT_SPREADS_BELOW`] standard deviations below the mean margin.
    /// `min_confidence` is minus the margin threshold.
    pub margin_chosen: FinderScore,
    /// The training-margin finder at other thresholds.
    pub margin_curve: Vec<FinderScore>,
    /// The same with the progress-weighted margin ([`MarginEvidence::late_margin`]).
    pub late_margin_curve: Vec<FinderScore>,
    /// The finder at thresholds of this many standard deviations below the mean margin.
    pub spreads_curve: Vec<(f64, FinderScore)>,
    /// The neighbour vote (evaluation and map) at its threshold ([`MISLABEL_CONFIDENCE`]).
    pub chosen: FinderScore,
    /// The neighbour vote at other thresholds.
    pub curve: Vec<FinderScore>,
    /// Every photo's evidence, for drawing other curves.
    pub photos: Vec<BenchPhoto>,
}

/// One photo of the planted copy, with both finders' evidence.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchPhoto {
    pub path: PathBuf,
    /// Its folder's class (index into [`MislabelBenchmark::classes`]).
    pub class: usize,
    pub planted: bool,
    pub area_under_margin: Option<f64>,
    pub late_margin: Option<f64>,
    #[serde(default)]
    pub early_margin: Option<f64>,
    pub beaten_share: Option<f64>,
    pub vote_confidence: Option<f64>,
    /// Its progress-weighted mean cosine to every class proxy while it trained.
    pub late_cosines: Option<Vec<f64>>,
}

/// Areas under the margin the benchmark scores the margin finder at.
const MARGIN_THRESHOLDS: [f64; 10] = [0.1, 0.05, 0.0, -0.05, -0.1, -0.15, -0.2, -0.25, -0.3, -0.4];
/// Standard deviations below the mean margin the benchmark scores the finder at.
const SPREADS: [f64; 7] = [1.5, 2.0, 2.25, 2.4, 2.5, 2.75, 3.0];

/// Scores the finder at `min_confidence`, given each image's evidence.
pub fn score_finder(
    evidence: &[(PathBuf, Option<f64>)],
    planted: &[PlantedMistake],
    min_confidence: f64,
) -> FinderScore {
    let planted_paths: std::collections::HashSet<&Path> =
        planted.iter().map(|m| m.path.as_path()).collect();
    let flagged: Vec<&PathBuf> = evidence
        .iter()
        .filter(|(_, confidence)| confidence.is_some_and(|c| c >= min_confidence))
        .map(|(path, _)| path)
        .collect();
    let correct = flagged
        .iter()
        .filter(|path| planted_paths.contains(path.as_path()))
        .count();
    FinderScore {
        min_confidence,
        flagged: flagged.len(),
        correct,
        precision: if flagged.is_empty() {
            0.0
        } else {
            correct as f64 / flagged.len() as f64
        },
        recall: correct as f64 / planted.len().max(1) as f64,
    }
}

/// The finder's evidence for every image of a labelled folder under `model`.
pub fn mislabel_evidence_for_folder(
    model: &EmbeddingModel,
    folder: &Path,
) -> Result<Vec<(PathBuf, Option<f64>)>> {
    let dataset = LabeledDataset::scan(folder, DEFAULT_MAX_PIXELS)?;
    let paths: Vec<PathBuf> = dataset.images.iter().map(|(p, _)| p.clone()).collect();
    let embedded = embed_files(
        model,
        &paths,
        DEFAULT_MAX_PIXELS,
        &|_| {},
        &AtomicBool::new(false),
    )?;
    let classes: Vec<usize> = embedded
        .embedded
        .iter()
        .map(|&i| dataset.images[i].1)
        .collect();
    let mut gallery = labelled_gallery(
        folder,
        "",
        &dataset,
        &embedded.embedded,
        embedded.vectors,
        model.config.embedding_dim,
    )?;
    let neighbours = gallery_neighbours(&mut gallery, MISLABEL_NEIGHBOURS)?;
    Ok(neighbours
        .iter()
        .enumerate()
        .map(|(i, near)| {
            let near_classes: Vec<usize> = near.iter().map(|&g| classes[g]).collect();
            let confidence =
                mislabel_evidence(classes[i], &near_classes).map(|(_, _, confidence)| confidence);
            (paths[embedded.embedded[i]].clone(), confidence)
        })
        .collect())
}

/// Plants mistakes in a copy of `data` (under `work`), trains on it with `settings`, and
/// scores the finder.
pub fn run_benchmark(
    data: &Path,
    work: &Path,
    fraction: f64,
    settings: &TrainSettings,
    on_event: &(dyn Fn(TrainEvent) + Sync),
) -> Result<MislabelBenchmark> {
    let planted_folder = work.join("planted");
    let planted = plant_mislabels(data, &planted_folder, fraction, settings.seed)?;
    let job = TrainJob::new(planted_folder.clone(), settings.clone());
    let outcome = train(&job, &AtomicBool::new(false), on_event)?;
    let evidence = mislabel_evidence_for_folder(&outcome.model, &planted_folder)?;
    let curve = [0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
        .iter()
        .map(|&t| score_finder(&evidence, &planted, t))
        .collect();
    // The margin finder flags an area below the threshold: as a confidence, minus the area.
    let by = |pick: fn(&MarginEvidence) -> f64| -> Vec<(PathBuf, Option<f64>)> {
        outcome
            .label_evidence
            .iter()
            .map(|((path, _), e)| (path.clone(), e.as_ref().map(|e| -pick(e))))
            .collect()
    };
    let uniform = by(|e| e.area_under_margin);
    let late = by(|e| e.late_margin);
    let judged = by(MarginEvidence::judged);
    let margin_evidence: Vec<Option<MarginEvidence>> =
        outcome.label_evidence.iter().map(|(_, e)| *e).collect();
    let spreads_below =
        |k: f64| suspect_threshold(&margin_evidence, k).unwrap_or(f64::NEG_INFINITY);
    let margin_score = |margins: &[(PathBuf, Option<f64>)], below: f64| {
        // Strictly below the threshold, as the training summary lists them.
        let flagged: Vec<(PathBuf, Option<f64>)> = margins
            .iter()
            .map(|(path, c)| (path.clone(), c.filter(|&c| c > -below)))
            .collect();
        FinderScore {
            min_confidence: -below,
            ..score_finder(&flagged, &planted, f64::NEG_INFINITY)
        }
    };
    let planted_paths: std::collections::HashSet<&Path> =
        planted.iter().map(|m| m.path.as_path()).collect();
    let votes: std::collections::HashMap<&Path, Option<f64>> =
        evidence.iter().map(|(p, c)| (p.as_path(), *c)).collect();
    let photos = outcome
        .label_evidence
        .iter()
        .zip(
            outcome
                .label_cosines
                .iter()
                .cloned()
                .chain(std::iter::repeat(None)),
        )
        .map(|(((path, class), e), late_cosines)| BenchPhoto {
            path: path.clone(),
            class: *class,
            late_cosines,
            planted: planted_paths.contains(path.as_path()),
            area_under_margin: e.map(|e| e.area_under_margin),
            late_margin: e.map(|e| e.late_margin),
            early_margin: e.map(|e| e.early_margin),
            beaten_share: e.map(|e| f64::from(e.beaten) / f64::from(e.seen.max(1))),
            vote_confidence: votes.get(path.as_path()).copied().flatten(),
        })
        .collect();
    Ok(MislabelBenchmark {
        classes: outcome.summary.classes.clone(),
        images: evidence.len(),
        planted: planted.len(),
        train_secs: outcome.summary.train_secs,
        steps: outcome.summary.steps,
        margin_chosen: margin_score(&judged, spreads_below(SUSPECT_SPREADS_BELOW)),
        spreads_curve: SPREADS
            .iter()
            .map(|&k| (k, margin_score(&judged, spreads_below(k))))
            .collect(),
        margin_curve: MARGIN_THRESHOLDS
            .iter()
            .map(|&t| margin_score(&uniform, t))
            .collect(),
        late_margin_curve: MARGIN_THRESHOLDS
            .iter()
            .map(|&t| margin_score(&late, t))
            .collect(),
        chosen: score_finder(&evidence, &planted, MISLABEL_CONFIDENCE),
        curve,
        photos,
    })
}

/// One photo of the planted copy, with the cross-fit's evidence.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CrossFitBenchPhoto {
    pub planted: bool,
    #[serde(flatten)]
    pub photo: super::cross_fit::FoldedPhoto,
}

/// What the planted-mistake benchmark found with cross-fitting.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CrossFitBenchmark {
    pub classes: Vec<String>,
    pub images: usize,
    pub planted: usize,
    pub folds: usize,
    /// Steps of each part's network.
    pub steps: Vec<usize>,
    pub train_secs: f64,
    /// The held-out margin, flagged this many standard deviations below its mean.
    pub held_out_curve: Vec<(f64, FinderScore)>,
    /// The held-out margin plus the progress-weighted training margin, each in standard
    /// deviations from its mean, flagged this many standard deviations below.
    pub combined_curve: Vec<(f64, FinderScore)>,
    pub photos: Vec<CrossFitBenchPhoto>,
}

/// Each value in standard deviations from the mean of them all (`None` stays `None`;
/// all `None` with fewer than 2 values).
pub fn standardised(values: &[Option<f64>]) -> Vec<Option<f64>> {
    let present: Vec<f64> = values.iter().flatten().copied().collect();
    let Some((mean, spread)) = mean_and_spread(&present) else {
        return vec![None; values.len()];
    };
    values
        .iter()
        .map(|v| v.map(|v| (v - mean) / spread.max(1e-12)))
        .collect()
}

/// Plants mistakes in a copy of `data` (under `work`), cross-fits it in `folds` parts
/// (each trained for `settings.max_seconds`), and scores the out-of-fold finder.
pub fn run_cross_fit_benchmark(
    data: &Path,
    work: &Path,
    fraction: f64,
    folds: usize,
    settings: &TrainSettings,
    on_event: &(dyn Fn(usize, TrainEvent) + Sync),
) -> Result<CrossFitBenchmark> {
    let planted_folder = work.join("planted");
    let planted = plant_mislabels(data, &planted_folder, fraction, settings.seed)?;
    let fit = super::cross_fit::cross_fit(
        &planted_folder,
        &work.join("parts"),
        folds,
        settings,
        &AtomicBool::new(false),
        on_event,
    )?;
    let planted_paths: std::collections::HashSet<&Path> =
        planted.iter().map(|m| m.path.as_path()).collect();
    let held_out: Vec<Option<f64>> = fit.photos.iter().map(|p| p.held_out_margin).collect();
    let late: Vec<Option<f64>> = fit
        .photos
        .iter()
        .map(|p| p.training.map(|e| e.late_margin))
        .collect();
    let combined: Vec<Option<f64>> = standardised(&held_out)
        .into_iter()
        .zip(standardised(&late))
        .map(|(a, b)| Some(a? + b?))
        .collect();
    // Flagged strictly below `k` standard deviations under the mean, as a confidence.
    let curve = |values: &[Option<f64>]| -> Vec<(f64, FinderScore)> {
        let z = standardised(values);
        SPREADS
            .iter()
            .map(|&k| {
                let evidence: Vec<(PathBuf, Option<f64>)> = fit
                    .photos
                    .iter()
                    .zip(&z)
                    .map(|(p, z)| (p.path.clone(), z.map(|z| -z).filter(|&c| c > k)))
                    .collect();
                let score = score_finder(&evidence, &planted, f64::NEG_INFINITY);
                (
                    k,
                    FinderScore {
                        min_confidence: k,
                        ..score
                    },
                )
            })
            .collect()
    };
    Ok(CrossFitBenchmark {
        classes: fit.classes.clone(),
        images: fit.photos.len(),
        planted: planted.len(),
        folds,
        steps: fit.steps.clone(),
        train_secs: fit.train_secs,
        held_out_curve: curve(&held_out),
        combined_curve: curve(&combined),
        photos: fit
            .photos
            .iter()
            .map(|p| CrossFitBenchPhoto {
                planted: planted_paths.contains(p.path.as_path()),
                photo: p.clone(),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planting_moves_the_asked_share_into_other_classes_and_keeps_every_photo() {
        let dir = tempfile::tempdir().expect("temp dir");
        let source = dir.path().join("source");
        crate::engine::synthetic::write_dataset(&source, 3, 10, 16, 1).expect("data");
        let target = dir.path().join("planted");
        let planted = plant_mislabels(&source, &target, 0.1, 7).expect("plant");
        assert_eq!(planted.len(), 3);
        let copied = LabeledDataset::scan(&target, DEFAULT_MAX_PIXELS).expect("scan");
        assert_eq!(copied.images.len(), 30, "every photo is still there");
        for mistake in &planted {
            assert_ne!(mistake.true_class, mistake.planted_class);
            assert!(
                mistake
                    .path
                    .starts_with(target.join(&mistake.planted_class))
            );
        }
    }

    #[test]
    fn finder_scores_count_planted_flags() {
        let planted = vec![PlantedMistake {
            path: "a.jpg".into(),
            true_class: "x".into(),
            planted_class: "y".into(),
        }];
        let evidence = vec![
            (PathBuf::from("a.jpg"), Some(0.9)),
            (PathBuf::from("b.jpg"), Some(0.5)),
            (PathBuf::from("c.jpg"), None),
        ];
        let strict = score_finder(&evidence, &planted, 0.8);
        assert_eq!((strict.flagged, strict.correct), (1, 1));
        assert_eq!((strict.precision, strict.recall), (1.0, 1.0));
        let loose = score_finder(&evidence, &planted, 0.4);
        assert_eq!((loose.flagged, loose.precision), (2, 0.5));
    }
}
