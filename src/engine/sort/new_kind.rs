//! Photos of a new kind in an inbox: a kind of subject none of the library's folders holds.
//!
//! No score of a single photo tells such a photo from one of a folder it resembles (a
//! tulip from a rose: docs/quality.md, item 2). An inbox, though, is read as a whole, and a
//! new kind rarely comes alone: its photos are near each other and far from the library.
//! In the shipped ImageNet network's features (which fine-tuning on the folders never
//! bent towards them):
//! 1. each inbox photo's novelty is the cosine to its 10th nearest other inbox photo minus
//!    the cosine to its 10th nearest library photo; a tenth of the library's photos, held
//!    out, get the same score against the inbox and the rest of the library, which says
//!    how novel an unseen photo of a known folder looks;
//! 2. the inbox photos more novel than 95 % of the held-out ones seed a "new kind" group;
//! 3. three times: a logistic regression learns the folders and the group (each weighing
//!    the same), and the group becomes the inbox photos it puts there that are more novel
//!    than half the held-out ones (a typical unseen photo of a folder never joins);
//! 4. every photo's confidence in its folder is multiplied by the last regression's
//!    probability that it is not of the new kind: a photo near the group is less sure.
//!
//! The price: a batch of a known folder shot in one place is alike too, and some of it
//! joins the group (docs/quality.md, item 2: in an inbox with no new kind, a sixth of the
//! photos). So sorting looks only when the person asks.

use std::path::PathBuf;

use tch::Tensor;

use crate::engine::data::LabeledDataset;
use crate::engine::model::classifier::biased_softmax;
use crate::engine::model::second_opinion::{
    LabelledFeatures, floats, logistic_regression, standardisation, standardised_logits,
};

/// Library photos per folder compared with the inbox, at most (spread over the folder by
/// name): what it was measured with, and a library of tens of thousands of photos would
/// otherwise be embedded whole at every sort.
pub const MAX_PHOTOS_PER_FOLDER: usize = 300;
/// One library photo in this many is held out to score as an unseen photo.
const HELD_OUT_EVERY: usize = 10;
/// The nearest photo whose cosine counts (the 10th: one or two look-alikes do not make a
/// kind).
const NEIGHBOUR: usize = 10;
/// Inbox photos more novel than this share of the held-out ones seed the group.
const SEED_QUANTILE: f64 = 0.95;
/// A photo no more novel than half the held-out ones (a typical unseen photo of a folder)
/// never joins the group, whatever the regression learned from the others.
const FLOOR_QUANTILE: f64 = 0.5;
/// Rounds of learning the group and taking what it learned as the group.
const ROUNDS: usize = 3;

/// The library photos an inbox is compared with, with their folders.
#[derive(Debug, Clone, PartialEq)]
pub struct LibrarySample {
    pub paths: Vec<PathBuf>,
    /// Each photo's folder (index into the library's folders).
    pub folders: Vec<usize>,
    /// Held out: scored as unseen photos, not learned from.
    pub held: Vec<bool>,
    pub folder_count: usize,
}

impl LibrarySample {
    /// Up to [`MAX_PHOTOS_PER_FOLDER`] photos of each folder, spread over it by name, one
    /// in [`HELD_OUT_EVERY`] of them held out: the same photos at every sort of an
    /// unchanged library.
    pub fn of(library: &LabeledDataset) -> Self {
        let mut sample = Self {
            paths: Vec::new(),
            folders: Vec::new(),
            held: Vec::new(),
            folder_count: library.classes.len(),
        };
        for folder in 0..library.classes.len() {
            let mut members: Vec<&PathBuf> = library
                .images
                .iter()
                .filter(|(_, c)| *c == folder)
                .map(|(path, _)| path)
                .collect();
            members.sort();
            let take = members.len().min(MAX_PHOTOS_PER_FOLDER);
            for i in 0..take {
                sample.paths.push(members[i * members.len() / take].clone());
                sample.folders.push(folder);
                sample.held.push(i % HELD_OUT_EVERY == HELD_OUT_EVERY / 2);
            }
        }
        sample
    }
}

/// Why no group could be looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TooFew {
    /// Fewer inbox photos than a kind needs to show as one.
    InboxPhotos,
    /// Fewer than two folders to learn, or too few held-out photos to say how novel an
    /// unseen photo of a folder looks.
    LibraryPhotos,
}

/// What the search found, one entry per inbox photo.
#[derive(Debug, Clone, PartialEq)]
pub struct NewKind {
    /// In the group: the last regression puts it there and it is more novel than half the
    /// held-out photos.
    pub group: Vec<bool>,
    /// How likely the last regression finds it of the new kind (0 for every photo when no
    /// group formed). Its folders' probabilities are for a photo of a known kind, so the
    /// chance that a photo belongs in a folder is theirs times one minus this.
    pub probability: Vec<f64>,
}

impl NewKind {
    fn none(photos: usize) -> Self {
        Self {
            group: vec![false; photos],
            probability: vec![0.0; photos],
        }
    }
}

/// Which inbox photos form a new kind, from the photos' ImageNet features (`width` each,
/// rows in the order of `sample` and of the inbox). `Err` when there are too few photos
/// to tell.
pub fn find(
    sample: &LibrarySample,
    sample_features: &[f32],
    inbox_features: &[f32],
    width: usize,
) -> Result<NewKind, TooFew> {
    let _guard = tch::no_grad_guard();
    let rows = |features: &[f32]| features.len() / width.max(1);
    let inbox_count = rows(inbox_features);
    if inbox_count <= NEIGHBOUR {
        return Err(TooFew::InboxPhotos);
    }
    let held_count = sample.held.iter().filter(|h| **h).count();
    let learned_count = sample.held.len() - held_count;
    if sample.folder_count < 2
        || rows(sample_features) != sample.held.len()
        || held_count < NEIGHBOUR
        || learned_count < NEIGHBOUR
    {
        return Err(TooFew::LibraryPhotos);
    }
    let unit = |features: &[f32], count: usize| {
        let t = Tensor::from_slice(features).view([count as i64, width as i64]);
        &t / t.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12)
    };
    let sample_rows = unit(sample_features, sample.held.len());
    let inbox = unit(inbox_features, inbox_count);
    let pick = |wanted: bool| {
        let rows: Vec<i64> = (0..sample.held.len() as i64)
            .filter(|r| sample.held[*r as usize] == wanted)
            .collect();
        sample_rows.index_select(0, &Tensor::from_slice(&rows))
    };
    let (held, learned) = (pick(true), pick(false));

    let mut within = inbox.mm(&inbox.tr());
    let _ = within.fill_diagonal_(f64::NEG_INFINITY, false);
    let novelty = floats(&(kth_largest(&within) - kth_largest(&inbox.mm(&learned.tr()))));
    let held_novelty =
        floats(&(kth_largest(&held.mm(&inbox.tr())) - kth_largest(&held.mm(&learned.tr()))));
    let threshold = quantile(&held_novelty, SEED_QUANTILE);
    let floor = quantile(&held_novelty, FLOOR_QUANTILE);
    let mut group: Vec<bool> = novelty.iter().map(|n| *n > threshold).collect();

    let learned_features = floats(&learned);
    let learned_folders: Vec<usize> = sample
        .folders
        .iter()
        .zip(&sample.held)
        .filter(|(_, held)| !**held)
        .map(|(f, _)| *f)
        .collect();
    let (mean, scale) = standardisation(&learned_features, width);
    // The regression learns the unit-length features, as the novelty was measured on them.
    let inbox_unit = floats(&inbox);
    let new_kind = sample.folder_count;
    let mut probability = vec![0.0; inbox_count];
    for _ in 0..ROUNDS {
        if group.iter().filter(|g| **g).count() < NEIGHBOUR {
            return Ok(NewKind::none(inbox_count));
        }
        let mut features = learned_features.clone();
        let mut labels = learned_folders.clone();
        for (row, _) in group.iter().enumerate().filter(|(_, g)| **g) {
            features.extend_from_slice(&inbox_unit[row * width..(row + 1) * width]);
            labels.push(new_kind);
        }
        let weights = balanced_weights(&labels, new_kind + 1);
        let (weight, bias) = logistic_regression(
            &LabelledFeatures {
                features: &features,
                classes: &labels,
            },
            &mean,
            &scale,
            new_kind + 1,
            Some(&weights),
        );
        let probabilities: Vec<Vec<f64>> = inbox_unit
            .chunks(width)
            .map(|row| class_probabilities(row, &weight, &bias, &mean, &scale))
            .collect();
        group = probabilities
            .iter()
            .zip(&novelty)
            .map(|(p, novelty)| *novelty > floor && best(p) == new_kind)
            .collect();
        probability = probabilities.iter().map(|p| p[new_kind]).collect();
    }
    Ok(NewKind { group, probability })
}

/// Each row's [`NEIGHBOUR`]th largest value (or its smallest, with fewer columns).
fn kth_largest(similarities: &Tensor) -> Tensor {
    let columns = similarities.size()[1];
    let k = (NEIGHBOUR as i64).min(columns);
    let (values, _) = similarities.topk(k, 1, true, true);
    values.select(1, k - 1)
}

/// The `q` quantile of `values`, linearly interpolated between the nearest two.
fn quantile(values: &[f32], q: f64) -> f32 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f32::total_cmp);
    let position = q * (sorted.len().saturating_sub(1)) as f64;
    let (low, high) = (position.floor() as usize, position.ceil() as usize);
    let fraction = (position - low as f64) as f32;
    sorted[low] + (sorted[high] - sorted[low]) * fraction
}

/// One weight per photo such that every class weighs the same in all (summing to 1).
fn balanced_weights(labels: &[usize], classes: usize) -> Vec<f32> {
    let mut counts = vec![0usize; classes];
    for label in labels {
        counts[*label] += 1;
    }
    let present = counts.iter().filter(|c| **c > 0).count().max(1);
    labels
        .iter()
        .map(|label| 1.0 / (counts[*label] * present) as f32)
        .collect()
}

/// The regression's probability of each class (the folders, then the new kind).
fn class_probabilities(
    features: &[f32],
    weight: &[f32],
    bias: &[f32],
    mean: &[f32],
    scale: &[f32],
) -> Vec<f64> {
    biased_softmax(
        &standardised_logits(features, weight, bias, mean, scale),
        1.0,
        &[],
    )
}

fn best(probabilities: &[f64]) -> usize {
    probabilities
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(class, _)| class)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WIDTH: usize = 8;

    /// A photo of kind `kind` (0..=3): its features point along the kind's own axis, with
    /// noise, and every kind shares a common direction (as flowers share "flower").
    fn photo(rng: &mut fastrand::Rng, kind: usize) -> Vec<f32> {
        (0..WIDTH)
            .map(|f| {
                let signal = if f == kind { 1.0 } else { 0.0 };
                let common = if f >= 4 { 0.6 } else { 0.0 };
                signal + common + 0.35 * (rng.f32() - 0.5) * 2.0
            })
            .collect()
    }

    /// A library of folders 0, 1 and 2, 60 photos each.
    fn library(rng: &mut fastrand::Rng) -> (LibrarySample, Vec<f32>) {
        let mut sample = LibrarySample {
            paths: Vec::new(),
            folders: Vec::new(),
            held: Vec::new(),
            folder_count: 3,
        };
        let mut features = Vec::new();
        for folder in 0..3 {
            for i in 0..60 {
                sample
                    .paths
                    .push(PathBuf::from(format!("{folder}/{i}.jpg")));
                sample.folders.push(folder);
                sample.held.push(i % HELD_OUT_EVERY == HELD_OUT_EVERY / 2);
                features.extend(photo(rng, folder));
            }
        }
        (sample, features)
    }

    #[test]
    fn an_inbox_with_a_kind_no_folder_holds_has_it_found() {
        let mut rng = fastrand::Rng::with_seed(7);
        let (sample, library_features) = library(&mut rng);
        // 90 photos of the known folders, 30 of kind 3.
        let kinds: Vec<usize> = (0..120).map(|i| if i < 90 { i % 3 } else { 3 }).collect();
        let inbox: Vec<f32> = kinds.iter().flat_map(|k| photo(&mut rng, *k)).collect();
        let found = find(&sample, &library_features, &inbox, WIDTH).expect("enough photos");
        let group = &found.group;
        let new = group[90..].iter().filter(|g| **g).count();
        let wrongly = group[..90].iter().filter(|g| **g).count();
        assert!(new >= 27, "found {new} of the 30 new photos");
        assert!(
            wrongly <= 5,
            "{wrongly} of 90 known photos put in the group"
        );
        // The regression is far surer that the new photos are of the new kind.
        let mean = |rows: &[f64]| rows.iter().sum::<f64>() / rows.len() as f64;
        let new_mean = mean(&found.probability[90..]);
        let known_mean = mean(&found.probability[..90]);
        assert!(
            new_mean > 0.8 && known_mean < 0.2,
            "{new_mean} against {known_mean}"
        );
    }

    #[test]
    fn an_inbox_of_known_folders_keeps_nearly_all_of_them_out_of_the_group() {
        let mut rng = fastrand::Rng::with_seed(8);
        let (sample, library_features) = library(&mut rng);
        let inbox: Vec<f32> = (0..120).flat_map(|i| photo(&mut rng, i % 3)).collect();
        let found = find(&sample, &library_features, &inbox, WIDTH).expect("enough photos");
        let wrongly = found.group.iter().filter(|g| **g).count();
        assert!(
            wrongly <= 12,
            "{wrongly} of 120 known photos put in the group"
        );
    }

    #[test]
    fn too_few_photos_to_tell_are_said_so() {
        let mut rng = fastrand::Rng::with_seed(9);
        let (sample, library_features) = library(&mut rng);
        let small: Vec<f32> = (0..NEIGHBOUR)
            .flat_map(|i| photo(&mut rng, i % 3))
            .collect();
        assert_eq!(
            find(&sample, &library_features, &small, WIDTH),
            Err(TooFew::InboxPhotos)
        );
        let one_folder = LibrarySample {
            folder_count: 1,
            ..sample.clone()
        };
        let inbox: Vec<f32> = (0..40).flat_map(|i| photo(&mut rng, i % 3)).collect();
        assert_eq!(
            find(&one_folder, &library_features, &inbox, WIDTH),
            Err(TooFew::LibraryPhotos)
        );
    }

    #[test]
    fn the_sample_spreads_over_each_folder_and_holds_out_one_in_ten() {
        let mut images = Vec::new();
        for (folder, count) in [(0usize, 1000usize), (1, 25)] {
            for i in 0..count {
                images.push((PathBuf::from(format!("/lib/{folder}/{i:04}.jpg")), folder));
            }
        }
        let library = LabeledDataset {
            root: PathBuf::from("/lib"),
            classes: vec!["a".into(), "b".into()],
            images,
            skipped: Vec::new(),
            notes: Vec::new(),
        };
        let sample = LibrarySample::of(&library);
        let of = |folder: usize| sample.folders.iter().filter(|f| **f == folder).count();
        assert_eq!((of(0), of(1)), (MAX_PHOTOS_PER_FOLDER, 25));
        assert_eq!(
            sample.paths.first(),
            Some(&PathBuf::from("/lib/0/0000.jpg"))
        );
        assert!(sample.paths.contains(&PathBuf::from("/lib/0/0996.jpg")));
        assert_eq!(sample.held.iter().filter(|h| **h).count(), 30 + 2);
        assert_eq!(
            sample,
            LibrarySample::of(&library),
            "the same photos every time"
        );
    }
}
