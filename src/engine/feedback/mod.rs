//! Feedback marks: a person says of a result "alike" or "not alike" (to its query), and
//! Likeness fine-tunes the model from those pairs.
//!
//! Marks are kept per library next to its index (`<index>.marks.json`, written
//! atomically), and can be exported and imported as the same JSON.
//!
//! Fine-tuning moves marked pairs (alike: together; not alike: apart, each by a share of
//! where it started, [`crate::engine::train::loss::marked_pairs_loss`]) while keeping a
//! sample of the library's other photos where they were (their embeddings under the
//! starting model are the targets). The second term is what lets marks work without class
//! folders and keeps a few dozen pairs from tearing up the rest of the map. Every marked
//! pair is measured before and after, against its query's median distance to that sample,
//! and a run that moved one against its mark is refused. The result is a new model; the
//! old file is never touched.

mod marks;
pub mod refine;

pub use marks::*;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::data::{
    BatchStream, DEFAULT_MAX_PIXELS, LoadFn, Preprocess, TargetSize, decode_rgb_sized,
    default_loader_threads,
};
use super::device::guard_libtorch;
use super::model::{EmbeddingModel, ModelInfo, save_model};
use super::progress::{FineTuning, OnProgress};
use super::run::{FineTuneSummary, PairChange, TrainingSummary};
use super::train::loss::{
    kept_in_place_loss, marked_pairs_loss, normalized_softmax_from_cosines, proxy_cosines,
};
use super::train::optimizer::AdamW;
use super::train::step::{descend, for_a_budget};
use super::{EngineError, Result};

/// Default fine-tuning budget.
pub const DEFAULT_SECONDS: f64 = 60.0;

/// How to fine-tune.
#[derive(Debug, Clone, PartialEq)]
pub struct FineTune {
    pub seconds: f64,
    pub learning_rate: f64,
    /// Library photos whose places are kept (at most this many, spread over the list).
    pub anchors: usize,
    pub seed: u64,
    /// With a temperature, and a model that has class proxies: the library's photos are
    /// also held in their class folders by the training loss at this temperature, the
    /// marked photos among them as hard examples. `None`: the marked pairs and the photos
    /// held in place only, which also works for models without class folders.
    pub class_temperature: Option<f64>,
}

impl Default for FineTune {
    fn default() -> Self {
        Self {
            seconds: DEFAULT_SECONDS,
            learning_rate: 1e-4,
            anchors: 512,
            seed: 1,
            class_temperature: None,
        }
    }
}

/// The temperature for [`FineTune::class_temperature`]: the one `model` was trained at,
/// when it kept class proxies (the default preset); `None` for models without them.
pub fn class_loss_temperature(model: &EmbeddingModel, summary: &TrainingSummary) -> Option<f64> {
    model.classifier.as_ref()?;
    summary
        .settings
        .as_ref()
        .map(|settings| settings.temperature)
}

/// Pairs per step, anchors per step, and marked photos per step in the class term.
const PAIRS_PER_STEP: usize = 32;
const ANCHORS_PER_STEP: usize = 16;
const HARD_PER_STEP: usize = 8;
/// Alike pairs are pulled to within this share of the typical distance.
const ALIKE_TARGET: f64 = 0.1;
/// AdamW's weight decay for fine-tuning (torch's default).
const FINE_TUNE_WEIGHT_DECAY: f64 = 0.01;

/// Fine-tunes `model` in place from `marks`, keeping the `library` photos it samples as
/// anchors where they were. Progress is `(seconds done, seconds budget)`.
pub fn fine_tune(
    model: &mut EmbeddingModel,
    marks: &Marks,
    library: &[PathBuf],
    options: &FineTune,
    cancel: &AtomicBool,
    on_progress: OnProgress<'_, FineTuning>,
) -> Result<FineTuneSummary> {
    let prepared = Preparation::new(model, marks, library, options, cancel)?;
    // The same AdamW training uses (torch's defaults, weight decay 0.01), and the same
    // step and budgeted loop ([`crate::engine::train::step`]).
    let mut optimizer = AdamW::new(
        model.var_store.trainable_variables(),
        options.learning_rate,
        FINE_TUNE_WEIGHT_DECAY,
    );
    let mut rng = fastrand::Rng::with_seed(options.seed);
    let inputs = prepared.step_inputs();
    let (steps, seconds) = for_a_budget(
        options.seconds,
        cancel,
        || fine_tune_step(model, &mut optimizer, &inputs, &mut rng),
        |secs| {
            on_progress(FineTuning {
                secs,
                budget_secs: options.seconds,
            })
        },
    )?;
    prepared.measure(model, steps, seconds)
}

/// Everything fine-tuning reads, prepared once before the first step: the decoded
/// photos, the marked pairs (those trained on, and every pair measured), the anchors held
/// in place with their places under the starting model, the class term, the typical
/// distance that scales them all, and where the pairs stood before.
struct Preparation {
    pixels: HashMap<PathBuf, Vec<f32>>,
    floats: usize,
    size: i64,
    device: tch::Device,
    pairs: Vec<Mark>,
    measured: Vec<Mark>,
    skipped_marks: usize,
    by_query: Vec<Vec<usize>>,
    anchor_paths: Vec<PathBuf>,
    anchor_targets: Option<Tensor>,
    class_term: Option<ClassTerm>,
    typical: f64,
    /// Each measured pair's squared distance before, in the typical distance (what the
    /// steps pull or push a share of) and over its query's median distance (the check).
    trained_from: Vec<f64>,
    distances_before: Vec<f64>,
}

impl Preparation {
    fn new(
        model: &EmbeddingModel,
        marks: &Marks,
        library: &[PathBuf],
        options: &FineTune,
        cancel: &AtomicBool,
    ) -> Result<Self> {
        if marks.marks.is_empty() {
            return Err(EngineError::Config(
                "there are no marks to learn from: mark results as alike or not alike first".into(),
            ));
        }
        // Memory follows the distinct pairs (and photos), never the length of the file.
        let (marks, _) = marks.deduplicated();
        let preprocess = model.config.preprocess.clone();
        // Decode every photo once, on the loader threads: the marked ones and the anchors.
        let anchor_candidates = spread(library, options.anchors);
        let mut wanted: Vec<PathBuf> = marks
            .marks
            .iter()
            .flat_map(|m| [m.query.clone(), m.photo.clone()])
            .chain(anchor_candidates.iter().cloned())
            .collect();
        wanted.sort();
        wanted.dedup();
        let pixels = decode_all(wanted, &preprocess, cancel)?;
        // Every pair is measured before and after; only `pairs` are trained on.
        let (pairs, measured, skipped_marks) = marked_pairs(&marks, &pixels)?;
        let anchor_paths: Vec<PathBuf> = anchor_candidates
            .into_iter()
            .filter(|p| pixels.contains_key(p))
            .collect();
        let device = model.device();
        let class_term = match (options.class_temperature, &model.classifier) {
            (Some(temperature), Some(classifier)) => {
                ClassTerm::new(classifier, temperature, &anchor_paths, &pairs, device)
            }
            _ => None,
        };
        let mut prepared = Self {
            pixels,
            floats: preprocess.floats_per_image(),
            size: i64::from(preprocess.image_size_px),
            device,
            by_query: rows_by_query(&pairs),
            pairs,
            measured,
            skipped_marks,
            anchor_paths,
            anchor_targets: None,
            class_term,
            typical: 1.0,
            trained_from: Vec::new(),
            distances_before: Vec::new(),
        };
        // The anchors' places under the starting model, and the typical distance.
        let photos = prepared.photos();
        let anchor_refs: Vec<&PathBuf> = prepared.anchor_paths.iter().collect();
        let anchor_targets = guard_libtorch(|| photos.embed_in_chunks(model, &anchor_refs))?;
        let (queries, marked) = prepared.measured_photos();
        // Training measures pairs in the typical distance between library photos.
        let typical = guard_libtorch(|| match &anchor_targets {
            Some(embedded) if embedded.size()[0] >= 2 => typical_distance(embedded),
            _ => typical_distance(&Tensor::cat(
                &[photos.embed(model, &queries), photos.embed(model, &marked)],
                0,
            )),
        })?;
        prepared.typical = typical;
        let (trained_from, distances_before) =
            prepared.pair_distances(model, anchor_targets.as_ref())?;
        prepared.anchor_targets = anchor_targets;
        prepared.trained_from = trained_from;
        prepared.distances_before = distances_before;
        Ok(prepared)
    }

    fn photos(&self) -> DecodedPhotos<'_> {
        DecodedPhotos {
            pixels: &self.pixels,
            floats: self.floats,
            size: self.size,
            device: self.device,
        }
    }

    /// The queries and the photos of the measured pairs, row by row.
    fn measured_photos(&self) -> (Vec<&PathBuf>, Vec<&PathBuf>) {
        self.measured.iter().map(|m| (&m.query, &m.photo)).unzip()
    }

    /// 1 for an alike pair, 0 for a not-alike one, row by row.
    fn alike(&self) -> Vec<f32> {
        self.measured
            .iter()
            .map(|m| if m.alike { 1.0 } else { 0.0 })
            .collect()
    }

    /// Each pair's squared distance under a model, in two scales. Training measures it in
    /// the typical distance between library photos. The check judges it over its query's
    /// median distance to the library sample under the same model: what decides where
    /// the photo ranks for its query, so a neighbourhood that only grew around a query
    /// (its not-alike photos pushed away) moves none of its pairs.
    fn pair_distances(
        &self,
        model: &EmbeddingModel,
        anchors: Option<&Tensor>,
    ) -> Result<(Vec<f64>, Vec<f64>)> {
        let photos = self.photos();
        let (queries, marked) = self.measured_photos();
        guard_libtorch(|| -> Result<(Vec<f64>, Vec<f64>)> {
            let (q, p) = (photos.embed(model, &queries), photos.embed(model, &marked));
            let d = squared(&q, &p);
            let scale = match anchors {
                Some(anchors) if anchors.size()[0] >= 2 => median_distances(&q, anchors),
                _ => Tensor::from(self.typical).to_device(q.device()),
            };
            let values = |t: Tensor| {
                Vec::<f64>::try_from(t.to_kind(Kind::Double).to_device(tch::Device::Cpu))
            };
            Ok((values(&d / self.typical)?, values(d / scale)?))
        })?
    }

    fn step_inputs(&self) -> StepInputs<'_> {
        StepInputs {
            photos: self.photos(),
            pairs: &self.pairs,
            by_query: &self.by_query,
            trained_from: &self.trained_from,
            anchor_paths: &self.anchor_paths,
            anchor_targets: self.anchor_targets.as_ref(),
            class_term: self.class_term.as_ref(),
            typical: self.typical,
        }
    }

    /// Where the pairs stand after `steps` steps in `seconds`: the run's summary.
    fn measure(
        &self,
        model: &EmbeddingModel,
        steps: usize,
        seconds: f64,
    ) -> Result<FineTuneSummary> {
        let alike = self.alike();
        let (alike_before, not_alike_before) = pair_means(&self.distances_before, &alike);
        let anchor_refs: Vec<&PathBuf> = self.anchor_paths.iter().collect();
        let anchors_after = guard_libtorch(|| self.photos().embed_in_chunks(model, &anchor_refs))?;
        let (_, distances_after) = self.pair_distances(model, anchors_after.as_ref())?;
        let (alike_after, not_alike_after) = pair_means(&distances_after, &alike);
        let mut changes = pair_changes(&self.measured, &self.distances_before, &distances_after);
        let held_out_changes = changes.split_off(self.pairs.len());
        Ok(FineTuneSummary {
            pair_changes: changes,
            held_out_changes,
            steps,
            seconds,
            pairs: self.pairs.len(),
            skipped_marks: self.skipped_marks,
            anchors: self.anchor_paths.len(),
            alike_before,
            alike_after,
            not_alike_before,
            not_alike_after,
        })
    }
}

/// What every fine-tuning step reads: the decoded photos, the marked pairs to train on
/// (grouped by query) with their distances before training, the anchors held in place and
/// their places, the class term, and the typical distance that scales them all.
struct StepInputs<'a> {
    photos: DecodedPhotos<'a>,
    pairs: &'a [Mark],
    by_query: &'a [Vec<usize>],
    trained_from: &'a [f64],
    anchor_paths: &'a [PathBuf],
    anchor_targets: Option<&'a Tensor>,
    class_term: Option<&'a ClassTerm>,
    typical: f64,
}

/// One step of fine-tuning: some queries' marked pairs pulled or pushed a share of where
/// they started, a sample of anchors held in place, and the class term when there is one.
fn fine_tune_step(
    model: &EmbeddingModel,
    optimizer: &mut AdamW,
    inputs: &StepInputs<'_>,
    rng: &mut fastrand::Rng,
) -> Result<()> {
    let StepInputs {
        ref photos,
        pairs,
        by_query,
        trained_from,
        anchor_paths,
        anchor_targets,
        class_term,
        typical,
    } = *inputs;
    let device = photos.device;
    let batch = |paths: &[&PathBuf]| photos.batch(paths);
    let chosen_rows = pairs_of_some_queries(by_query, PAIRS_PER_STEP, rng);
    let chosen: Vec<&Mark> = chosen_rows.iter().map(|&row| &pairs[row]).collect();
    // `measured` starts with the trained pairs, so their rows match.
    let step_before: Vec<f32> = chosen_rows
        .iter()
        .map(|&row| trained_from[row] as f32)
        .collect();
    let step_queries: Vec<&PathBuf> = chosen.iter().map(|m| &m.query).collect();
    let step_photos: Vec<&PathBuf> = chosen.iter().map(|m| &m.photo).collect();
    let step_alike: Vec<f32> = chosen
        .iter()
        .map(|m| if m.alike { 1.0 } else { 0.0 })
        .collect();
    let anchors: Vec<usize> = if anchor_paths.is_empty() {
        Vec::new()
    } else {
        (0..ANCHORS_PER_STEP)
            .map(|_| rng.usize(..anchor_paths.len()))
            .collect()
    };
    guard_libtorch(|| {
        let q = model.forward_t(&batch(&step_queries), false);
        let p = model.forward_t(&batch(&step_photos), false);
        let d = squared(&q, &p) / typical;
        let is_alike = Tensor::from_slice(&step_alike).to_device(device);
        let before = Tensor::from_slice(&step_before).to_device(device);
        let mut loss = marked_pairs_loss(&d, &before, &is_alike, ALIKE_TARGET);
        if let Some(term) = class_term {
            let (paths, labels) = term.sample(rng);
            let now = model.forward_t(&batch(&paths), false);
            loss += term.loss(&now, &labels);
        }
        if let Some(targets) = anchor_targets
            && !anchors.is_empty()
        {
            let paths: Vec<&PathBuf> = anchors.iter().map(|&i| &anchor_paths[i]).collect();
            let now = model.forward_t(&batch(&paths), false);
            let index = Tensor::from_slice(&anchors.iter().map(|&i| i as i64).collect::<Vec<_>>())
                .to_device(device);
            loss += kept_in_place_loss(&now, &targets.index_select(0, &index), typical);
        }
        descend(&mut [&mut *optimizer], &loss);
    })
}

/// The rows of `pairs`, grouped by their query (in order of first appearance).
fn rows_by_query(pairs: &[Mark]) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut group_of: HashMap<&Path, usize> = HashMap::new();
    for (row, mark) in pairs.iter().enumerate() {
        let group = *group_of.entry(&mark.query).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[group].push(row);
    }
    groups
}

/// One step's pairs: every pair of queries drawn at random until at least `wanted` pairs
/// (or all of them) are in. A query's alike and not-alike pairs move together: trained
/// apart, pushing its not-alike photos away drags its alike ones along unchecked.
fn pairs_of_some_queries(
    by_query: &[Vec<usize>],
    wanted: usize,
    rng: &mut fastrand::Rng,
) -> Vec<usize> {
    let mut order: Vec<usize> = (0..by_query.len()).collect();
    rng.shuffle(&mut order);
    let mut rows = Vec::new();
    for group in order {
        if rows.len() >= wanted {
            break;
        }
        rows.extend_from_slice(&by_query[group]);
    }
    rows
}

/// The class-folder loss that holds the library in place in
/// [`FineTune::class_temperature`]'s variant.
struct ClassTerm {
    proxies: Tensor,
    temperature: f64,
    /// Library photos in one of the classifier's folders, with the folder's row.
    photos: Vec<(PathBuf, i64)>,
    /// The marked photos (trained pairs only) in one of the folders.
    hard: Vec<(PathBuf, i64)>,
}

impl ClassTerm {
    /// `None` when no anchor sits in one of the classifier's folders.
    fn new(
        classifier: &super::model::classifier::Classifier,
        temperature: f64,
        anchors: &[PathBuf],
        pairs: &[Mark],
        device: tch::Device,
    ) -> Option<Self> {
        let class_of = |path: &Path| -> Option<i64> {
            let folder = path.parent()?.file_name()?.to_str()?;
            let row = classifier.info.classes.iter().position(|c| c == folder)?;
            Some(row as i64)
        };
        let with_class = |path: &PathBuf| Some((path.clone(), class_of(path)?));
        let photos: Vec<(PathBuf, i64)> = anchors.iter().filter_map(with_class).collect();
        let mut hard: Vec<(PathBuf, i64)> = pairs
            .iter()
            .flat_map(|m| [&m.query, &m.photo])
            .filter_map(with_class)
            .collect();
        hard.sort();
        hard.dedup();
        if photos.is_empty() {
            return None;
        }
        let rows = classifier.info.classes.len() as i64;
        let proxies = Tensor::from_slice(&classifier.proxies)
            .view([rows, classifier.dimension as i64])
            .to_device(device);
        Some(Self {
            proxies,
            temperature,
            photos,
            hard,
        })
    }

    /// One step's photos and their class rows: anchors, then marked photos.
    fn sample(&self, rng: &mut fastrand::Rng) -> (Vec<&PathBuf>, Tensor) {
        let mut chosen: Vec<&(PathBuf, i64)> = (0..ANCHORS_PER_STEP)
            .map(|_| &self.photos[rng.usize(..self.photos.len())])
            .collect();
        if !self.hard.is_empty() {
            chosen.extend(
                (0..HARD_PER_STEP.min(self.hard.len()))
                    .map(|_| &self.hard[rng.usize(..self.hard.len())]),
            );
        }
        let labels: Vec<i64> = chosen.iter().map(|(_, class)| *class).collect();
        let labels = Tensor::from_slice(&labels).to_device(self.proxies.device());
        (chosen.into_iter().map(|(path, _)| path).collect(), labels)
    }

    fn loss(&self, embeddings: &Tensor, labels: &Tensor) -> Tensor {
        normalized_softmax_from_cosines(
            &proxy_cosines(embeddings, &self.proxies),
            labels,
            self.temperature,
            0.0,
        )
    }
}

/// The marked pairs whose photos decoded: those to train on, every pair to measure (the
/// trained ones first, then those held out), and how many marks were left out.
fn marked_pairs(
    marks: &Marks,
    pixels: &HashMap<PathBuf, Vec<f32>>,
) -> Result<(Vec<Mark>, Vec<Mark>, usize)> {
    let (pairs, skipped_marks) = usable_pairs(marks, pixels);
    if pairs.is_empty() {
        return Err(EngineError::Dataset(format!(
            "none of the {} marked photos could be read",
            marks.marks.len()
        )));
    }
    let (pairs, held_out) = hold_out_marks(pairs);
    let measured: Vec<Mark> = pairs.iter().chain(&held_out).cloned().collect();
    Ok((pairs, measured, skipped_marks))
}

/// From this many usable marked pairs on, some are kept out of fine-tuning to check it.
const HOLD_OUT_FROM: usize = 10;
/// One pair in this many is held out.
const HOLD_OUT_EVERY: usize = 5;

/// Splits the marked pairs into those fine-tuning trains on and those it is checked on
/// (every [`HOLD_OUT_EVERY`]th, from [`HOLD_OUT_FROM`] pairs on; none below).
fn hold_out_marks(pairs: Vec<Mark>) -> (Vec<Mark>, Vec<Mark>) {
    if pairs.len() < HOLD_OUT_FROM {
        return (pairs, Vec::new());
    }
    let (held, trained): (Vec<_>, Vec<_>) = pairs
        .into_iter()
        .enumerate()
        .partition(|(i, _)| i % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1);
    (
        trained.into_iter().map(|(_, m)| m).collect(),
        held.into_iter().map(|(_, m)| m).collect(),
    )
}

/// The median squared distance between neighbouring rows of `embeddings` (1 with fewer
/// than two): the scale fine-tuning measures pairs in.
fn typical_distance(embeddings: &Tensor) -> f64 {
    if embeddings.size()[0] < 2 {
        return 1.0;
    }
    let shifted = embeddings.roll([1], [0]);
    squared(embeddings, &shifted)
        .median()
        .double_value(&[])
        .max(1e-6)
}

/// The mean distance of the alike pairs and of the not-alike ones (0 for none).
fn pair_means(distances: &[f64], alike: &[f32]) -> (f64, f64) {
    let mean = |want: f32| {
        let chosen: Vec<f64> = distances
            .iter()
            .zip(alike)
            .filter(|(_, a)| **a == want)
            .map(|(d, _)| *d)
            .collect();
        if chosen.is_empty() {
            0.0
        } else {
            chosen.iter().sum::<f64>() / chosen.len() as f64
        }
    };
    (mean(1.0), mean(0.0))
}

/// Each pair with its distance before and after (ranks are filled in by a caller with an
/// index to ask).
fn pair_changes(pairs: &[Mark], before: &[f64], after: &[f64]) -> Vec<PairChange> {
    pairs
        .iter()
        .zip(before.iter().zip(after))
        .map(|(mark, (&before, &after))| PairChange {
            query: mark.query.clone(),
            photo: mark.photo.clone(),
            alike: mark.alike,
            before,
            after,
            rank_before: None,
            rank_after: None,
        })
        .collect()
}

/// The marks whose two photos decoded (and differ), and how many were left out.
fn usable_pairs(marks: &Marks, pixels: &HashMap<PathBuf, Vec<f32>>) -> (Vec<Mark>, usize) {
    let (usable, skipped): (Vec<&Mark>, Vec<&Mark>) = marks.marks.iter().partition(|mark| {
        mark.query != mark.photo
            && pixels.contains_key(&mark.query)
            && pixels.contains_key(&mark.photo)
    });
    (usable.into_iter().cloned().collect(), skipped.len())
}

/// The decoded photos of a fine-tuning run, as the network's input.
struct DecodedPhotos<'a> {
    pixels: &'a HashMap<PathBuf, Vec<f32>>,
    floats: usize,
    size: i64,
    device: tch::Device,
}

impl DecodedPhotos<'_> {
    /// `paths` (all decoded) as one batch on the model's device.
    fn batch(&self, paths: &[&PathBuf]) -> Tensor {
        let mut flat = Vec::with_capacity(paths.len() * self.floats);
        for path in paths {
            flat.extend_from_slice(&self.pixels[*path]);
        }
        Tensor::from_slice(&flat)
            .view([paths.len() as i64, 3, self.size, self.size])
            .to_device(self.device)
    }

    /// The embeddings of many photos, 64 at a time (`None` for none).
    fn embed_in_chunks(&self, model: &EmbeddingModel, paths: &[&PathBuf]) -> Option<Tensor> {
        let parts: Vec<Tensor> = paths
            .chunks(64)
            .map(|chunk| self.embed(model, chunk))
            .collect();
        (!parts.is_empty()).then(|| Tensor::cat(&parts, 0))
    }

    /// Their embeddings under `model`, without gradients.
    fn embed(&self, model: &EmbeddingModel, paths: &[&PathBuf]) -> Tensor {
        tch::no_grad(|| model.forward_t(&self.batch(paths), false))
    }
}

/// For each row of `rows`, the median squared L2 distance to the rows of `others`.
fn median_distances(rows: &Tensor, others: &Tensor) -> Tensor {
    let row_norms = rows
        .pow_tensor_scalar(2)
        .sum_dim_intlist(1, true, Kind::Float);
    let other_norms = others
        .pow_tensor_scalar(2)
        .sum_dim_intlist(1, true, Kind::Float)
        .transpose(0, 1);
    let all = (row_norms + other_norms - rows.matmul(&others.transpose(0, 1)) * 2.0).clamp_min(0.0);
    all.median_dim(1, false).0.clamp_min(1e-12)
}

/// Squared L2 distance between the rows of `a` and `b`.
fn squared(a: &Tensor, b: &Tensor) -> Tensor {
    (a - b)
        .pow_tensor_scalar(2)
        .sum_dim_intlist(1, false, Kind::Float)
}

/// Each of `paths` decoded and preprocessed for the network, on the loader threads; photos
/// that cannot be read are left out (the caller counts what is missing).
fn decode_all(
    paths: Vec<PathBuf>,
    preprocess: &Preprocess,
    cancel: &AtomicBool,
) -> Result<HashMap<PathBuf, Vec<f32>>> {
    let floats = preprocess.floats_per_image();
    let paths = Arc::new(paths);
    let load_paths = Arc::clone(&paths);
    let load_preprocess = preprocess.clone();
    let load: Arc<LoadFn> = Arc::new(move |item, _rng, out| {
        let image = decode_rgb_sized(
            &load_paths[item],
            DEFAULT_MAX_PIXELS,
            TargetSize::ShortSide(load_preprocess.image_size_px),
        )?;
        load_preprocess.write_plain(&image, out);
        Ok(())
    });
    let jobs: Vec<Vec<usize>> = (0..paths.len())
        .collect::<Vec<_>>()
        .chunks(16)
        .map(<[usize]>::to_vec)
        .collect();
    let mut pixels = HashMap::with_capacity(paths.len());
    for batch in BatchStream::spawn(jobs, floats, 0, default_loader_threads(), 4, load) {
        if cancel.load(Ordering::Relaxed) {
            return Err(EngineError::Cancelled);
        }
        for (slot, &item) in batch.loaded.iter().enumerate() {
            pixels.insert(
                paths[item].clone(),
                batch.pixels[slot * floats..(slot + 1) * floats].to_vec(),
            );
        }
    }
    Ok(pixels)
}

/// At most `count` items spread evenly over the list.
fn spread(items: &[PathBuf], count: usize) -> Vec<PathBuf> {
    if items.len() <= count {
        return items.to_vec();
    }
    (0..count)
        .map(|i| items[i * items.len() / count].clone())
        .collect()
}

/// What follows fine-tuning, for the window and the command line alike. A refused run
/// ([`FineTuneSummary::refusal`]) writes nothing and gives `None`. Otherwise the base
/// model's summary gains this run, the class proxies are dropped (fine-tuning moved the
/// embeddings away from them: sorting falls back to the neighbours in the index) and the
/// model is written to `out`.
pub fn save_fine_tuned(
    model: &mut EmbeddingModel,
    base: &TrainingSummary,
    done: &FineTuneSummary,
    out: &Path,
) -> Result<Option<ModelInfo>> {
    if done.refusal().is_some() {
        return Ok(None);
    }
    let mut summary = base.clone();
    summary.fine_tuned_from_marks.push(done.clone());
    model.classifier = None;
    save_model(out, model, &summary).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue #26 item 2: a retrain is checked on every marked pair and on pairs it did
    /// not train on, and refused when either says it went the wrong way.
    #[test]
    fn a_retrain_is_refused_when_a_pair_or_the_held_out_marks_went_the_wrong_way() {
        use crate::engine::run::{FineTuneSummary, PairChange};
        let change = |alike, before, after| PairChange {
            query: "q.jpg".into(),
            photo: "p.jpg".into(),
            alike,
            before,
            after,
            rank_before: None,
            rank_after: None,
        };
        let summary = |pair_changes, held_out_changes| FineTuneSummary {
            pair_changes,
            held_out_changes,
            ..Default::default()
        };
        let good = vec![change(true, 0.5, 0.2), change(false, 0.5, 0.9)];
        assert_eq!(summary(good.clone(), Vec::new()).refusal(), None);
        // An alike pair moved farther apart: refused, whatever the rest did.
        let mut one_wrong = good.clone();
        one_wrong.push(change(true, 0.3, 0.4));
        let why = summary(one_wrong, Vec::new()).refusal().expect("refused");
        assert_eq!(
            why,
            "it moved 1 of the 3 marked pairs it trained on against its mark"
        );
        // Trained pairs fine, but held-out pairs went the other way: it does not carry over.
        let held = vec![
            change(true, 0.5, 0.7),
            change(false, 0.6, 0.3),
            change(true, 0.5, 0.4),
        ];
        let why = summary(good.clone(), held).refusal().expect("refused");
        assert!(
            why.contains("2 moved against their marks and 1 with them"),
            "{why}"
        );
        let held = vec![change(true, 0.5, 0.3), change(false, 0.6, 0.605)];
        assert_eq!(summary(good, held).refusal(), None, "noise is neither");
    }

    /// The class term of `--with-classes`: photos in the classifier's folders get their
    /// folder's row, photos elsewhere are left out, the marked photos join as hard
    /// examples, and its loss is lower when photos sit at their own proxy.
    #[test]
    fn the_class_term_labels_photos_by_their_folder_and_pulls_them_to_its_proxy() {
        use crate::engine::model::classifier::Classifier;
        let proxies = [1.0, 0.0, 0.0, 1.0];
        let classifier = Classifier::new(vec!["rose".into(), "tulip".into()], &proxies, 2, 0.05);
        let anchors: Vec<PathBuf> = ["lib/rose/a.jpg", "lib/tulip/b.jpg", "lib/other/c.jpg"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let pairs = vec![Mark {
            query: "lib/rose/a.jpg".into(),
            photo: "lib/tulip/d.jpg".into(),
            alike: false,
        }];
        let term = ClassTerm::new(&classifier, 0.1, &anchors, &pairs, tch::Device::Cpu)
            .expect("two anchors sit in the classifier's folders");
        assert_eq!(
            term.photos,
            vec![
                (PathBuf::from("lib/rose/a.jpg"), 0),
                (PathBuf::from("lib/tulip/b.jpg"), 1)
            ]
        );
        assert_eq!(
            term.hard,
            vec![
                (PathBuf::from("lib/rose/a.jpg"), 0),
                (PathBuf::from("lib/tulip/d.jpg"), 1)
            ]
        );
        let mut rng = fastrand::Rng::with_seed(3);
        let (paths, labels) = term.sample(&mut rng);
        assert_eq!(paths.len(), ANCHORS_PER_STEP + 2);
        let labels = Vec::<i64>::try_from(labels).expect("labels");
        for (path, label) in paths.iter().zip(&labels) {
            let expected = if path.starts_with("lib/rose") { 0 } else { 1 };
            assert_eq!(*label, expected, "{}", path.display());
        }
        let at_own = Tensor::from_slice(&[1.0f32, 0.1, 0.1, 1.0]).view([2, 2]);
        let swapped = Tensor::from_slice(&[0.1f32, 1.0, 1.0, 0.1]).view([2, 2]);
        let truth = Tensor::from_slice(&[0i64, 1]);
        assert!(
            term.loss(&at_own, &truth).double_value(&[])
                < term.loss(&swapped, &truth).double_value(&[])
        );
        assert!(
            ClassTerm::new(&classifier, 0.1, &anchors[2..], &[], tch::Device::Cpu).is_none(),
            "no anchor in a class folder: no class term"
        );
    }

    /// A step trains every pair of the queries it draws, so a query's alike photos move
    /// with it when its not-alike ones are pushed away.
    #[test]
    fn a_step_takes_whole_queries() {
        let mark = |query: &str, photo: &str| Mark {
            query: query.into(),
            photo: photo.into(),
            alike: false,
        };
        let pairs = vec![
            mark("q1", "a"),
            mark("q2", "b"),
            mark("q1", "c"),
            mark("q3", "d"),
            mark("q2", "e"),
        ];
        let groups = rows_by_query(&pairs);
        assert_eq!(groups, vec![vec![0, 2], vec![1, 4], vec![3]]);
        let mut rng = fastrand::Rng::with_seed(7);
        for wanted in 1..=5 {
            let rows = pairs_of_some_queries(&groups, wanted, &mut rng);
            assert!(rows.len() >= wanted.min(pairs.len()), "{rows:?}");
            for group in &groups {
                let taken = group.iter().filter(|row| rows.contains(row)).count();
                assert!(
                    taken == 0 || taken == group.len(),
                    "{rows:?} splits {group:?}"
                );
            }
        }
    }

    #[test]
    fn a_pair_is_measured_against_its_query_s_median_distance_to_the_library() {
        let rows = Tensor::from_slice(&[0.0f32, 0.0, 3.0, 0.0]).view([2, 2]);
        let others = Tensor::from_slice(&[1.0f32, 0.0, 0.0, 2.0, 0.0, -3.0]).view([3, 2]);
        // From (0, 0): 1, 4, 9, median 4. From (3, 0): 4, 13, 18, median 13.
        let medians = Vec::<f32>::try_from(median_distances(&rows, &others)).expect("medians");
        assert!(
            (medians[0] - 4.0).abs() < 1e-4 && (medians[1] - 13.0).abs() < 1e-4,
            "{medians:?}"
        );
    }

    #[test]
    fn every_fifth_pair_is_held_out_from_ten_pairs_on() {
        let marks = |n: usize| -> Vec<Mark> {
            (0..n)
                .map(|i| Mark {
                    query: format!("q{i}.jpg").into(),
                    photo: format!("p{i}.jpg").into(),
                    alike: i % 2 == 0,
                })
                .collect()
        };
        let (trained, held) = hold_out_marks(marks(9));
        assert_eq!((trained.len(), held.len()), (9, 0));
        let (trained, held) = hold_out_marks(marks(12));
        assert_eq!((trained.len(), held.len()), (10, 2));
        assert_eq!(held[0].query, PathBuf::from("q4.jpg"));
        assert_eq!(held[1].query, PathBuf::from("q9.jpg"));
    }

    #[test]
    fn repeated_and_contradictory_marks_count_once_and_the_newest_wins() {
        let mark = |q: &str, p: &str, alike| Mark {
            query: q.into(),
            photo: p.into(),
            alike,
        };
        let mut marks = Marks::default();
        for _ in 0..2000 {
            marks.marks.push(mark("a.jpg", "b.jpg", true));
        }
        marks.marks.push(mark("b.jpg", "a.jpg", false)); // the same pair, from the other side
        marks.marks.push(mark("a.jpg", "c.jpg", true));
        let (clean, cleanup) = marks.deduplicated();
        assert_eq!(
            clean.marks,
            vec![mark("b.jpg", "a.jpg", false), mark("a.jpg", "c.jpg", true)]
        );
        assert_eq!((cleanup.repeated, cleanup.contradicted), (1999, 1));
        assert!(cleanup.describe().expect("said").contains("newest"));
    }

    #[test]
    fn marks_are_set_undone_saved_and_imported() {
        let dir = tempfile::tempdir().expect("dir");
        let path = marks_path(&dir.path().join("photos.likeness-index"));
        assert!(path.ends_with("photos.likeness-index.marks.json"));
        let mut marks = Marks::load(&path).expect("no file is no marks");
        assert!(marks.marks.is_empty());
        let (q, a, b) = (
            Path::new("/q.jpg"),
            Path::new("/a.jpg"),
            Path::new("/b.jpg"),
        );
        assert_eq!(marks.set(q, a, Some(true)), None);
        assert_eq!(marks.set(q, b, Some(false)), None);
        assert_eq!(
            marks.set(q, a, Some(false)),
            Some(true),
            "changed; undo gets true"
        );
        assert_eq!(marks.get(q, a), Some(false));
        assert_eq!(marks.set(q, a, None), Some(false));
        assert_eq!(marks.get(q, a), None);
        marks.set(q, a, Some(true));
        marks.save(&path).expect("save");
        let loaded = Marks::load(&path).expect("load");
        assert_eq!(loaded, marks);
        assert_eq!((loaded.alike(), loaded.not_alike()), (1, 1));

        let mut other = Marks::default();
        other.set(q, a, Some(true));
        other.set(q, Path::new("/c.jpg"), Some(true));
        let mut merged = loaded.clone();
        assert_eq!(merged.import(&other), 1);
        assert_eq!(merged.marks.len(), 3);

        std::fs::write(
            &path,
            b"{\"format\":\"something else\",\"version\":1,\"marks\":[]}",
        )
        .expect("write");
        assert!(Marks::load(&path).is_err());
        std::fs::write(&path, b"not json").expect("write");
        let error = Marks::load(&path).expect_err("garbage").to_string();
        assert!(error.contains("not a Likeness marks file"), "{error}");

        // A damaged marks file is kept aside, not overwritten by the next mark.
        let (fresh, message) = Marks::load_or_set_aside(&path);
        assert!(fresh.marks.is_empty());
        let message = message.expect("a message");
        assert!(message.contains(".damaged"), "{message}");
        assert!(!path.exists());
        let mut aside = path.as_os_str().to_os_string();
        aside.push(".damaged");
        assert_eq!(
            std::fs::read(PathBuf::from(aside)).expect("kept"),
            b"not json"
        );
    }
}
