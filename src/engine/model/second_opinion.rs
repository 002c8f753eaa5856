//! A second opinion on a photo's class folder, from the shipped ImageNet network.
//!
//! The fine-tuned network's class proxies are right about three photos in four of an
//! inbox, and no ranking of their own confidences puts most of their mistakes among the
//! least sure (docs/quality.md, item 1). The shipped ImageNet EfficientNet-Lite0, which
//! fine-tuning never changes, makes different mistakes: a linear classifier on its 224-px
//! features, fitted on the library's photos at the end of training, is right about as
//! often, but not about the same photos. Joined (the two log-probabilities added, then a
//! temperature and class biases fitted on the held-out photos, as the proxies are
//! calibrated) they file twice as many photos at the same precision.
//!
//! The price: a photo of a kind no folder holds is filed more often, as both networks
//! agree on the nearest folder and the agreement makes them surer (docs/quality.md, item
//! 2). So sorting asks it only when the person chooses to.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::classifier::{
    biased_log_softmax, biased_softmax, fit_temperature, fit_temperature_and_biases,
};

/// The linear classifier's weights in a model file: `[classes, features]`.
pub const WEIGHT_TENSOR: &str = "classifier.second_opinion.weight";
/// Its bias, `[classes]`.
pub const BIAS_TENSOR: &str = "classifier.second_opinion.bias";
/// The mean and spread each feature is standardised with, `[features]` each.
pub const MEAN_TENSOR: &str = "classifier.second_opinion.mean";
pub const SCALE_TENSOR: &str = "classifier.second_opinion.scale";

/// Training photos per class the linear classifier is fitted on at most: 1 280 features
/// and a few classes need no more (300 per class is what it was measured with), and a
/// library of tens of thousands of photos would otherwise spend minutes at the end of
/// training embedding them all again.
pub const MAX_PHOTOS_PER_CLASS: usize = 300;

/// Full-batch gradient descent on the multinomial logistic loss of the standardised
/// features: steps, step size and L2 weight, chosen offline on three kept models
/// (`scripts/sort_second_opinion.py`; 0.1 and 0.001 for the L2 weight filed fewer photos
/// at 0.9, or as many).
const PROBE_STEPS: usize = 300;
const PROBE_RATE: f64 = 0.5;
const PROBE_L2: f64 = 0.01;
/// Held-out photos needed to calibrate (as for the proxies).
const MIN_CALIBRATION_PHOTOS: usize = 10;

/// What the model file's description says about the second opinion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecondOpinionInfo {
    /// The id of the ImageNet weights whose features it reads: sorting embeds the inbox
    /// with the same network, or does not ask it.
    pub features_from: String,
    /// Features per photo.
    pub features: usize,
    /// Training photos the linear classifier was fitted on.
    pub trained_on: usize,
    /// Its logits are divided by this (fitted on the held-out photos).
    pub probe_temperature: f64,
    /// The joined log-probabilities are divided by this, and the biases added.
    pub joint_temperature: f64,
    pub joint_bias: Vec<f64>,
    /// Held-out photos both temperatures and the biases were fitted on.
    pub calibrated_on: usize,
}

/// The linear classifier over ImageNet features, with how it is joined with the proxies.
#[derive(Debug, Clone, PartialEq)]
pub struct SecondOpinion {
    pub info: SecondOpinionInfo,
    /// One row of `features` weights per class.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub mean: Vec<f32>,
    pub scale: Vec<f32>,
}

/// Photos with their features (rows of the same length) and true classes.
pub struct LabelledFeatures<'a> {
    pub features: &'a [f32],
    pub classes: &'a [usize],
}

impl SecondOpinion {
    /// The linear classifier's log-probabilities for a photo's ImageNet `features`.
    pub fn log_probabilities(&self, features: &[f32]) -> Vec<f64> {
        let logits = self.logits(features);
        biased_log_softmax(&logits, self.info.probe_temperature, &[])
    }

    fn logits(&self, features: &[f32]) -> Vec<f64> {
        standardised_logits(features, &self.weight, &self.bias, &self.mean, &self.scale)
    }

    /// The joined probabilities of each class: the proxies' calibrated log-probabilities
    /// (`proxy_log_probabilities`) and this classifier's, added and calibrated.
    pub fn join(&self, proxy_log_probabilities: &[f64], features: &[f32]) -> Vec<f64> {
        let row = add(proxy_log_probabilities, &self.log_probabilities(features));
        biased_softmax(&row, self.info.joint_temperature, &self.info.joint_bias)
    }

    /// Fits the linear classifier on `trained` (photos the network trained on), its
    /// temperature and the joint calibration on `held` (photos it held out), whose
    /// proxies' calibrated log-probabilities are `held_proxy_log_probabilities`. `None`
    /// with too few held-out photos, or features of another length than `features`.
    pub fn fit(
        trained: LabelledFeatures<'_>,
        held: LabelledFeatures<'_>,
        held_proxy_log_probabilities: &[Vec<f64>],
        classes: usize,
        features: usize,
        features_from: &str,
    ) -> Option<Self> {
        let rows = |set: &LabelledFeatures<'_>| set.features.len() / features.max(1);
        let consistent = |set: &LabelledFeatures<'_>| {
            features > 0
                && set.features.len().is_multiple_of(features)
                && rows(set) == set.classes.len()
                && set.classes.iter().all(|c| *c < classes)
        };
        if !consistent(&trained)
            || !consistent(&held)
            || rows(&trained) == 0
            || held.classes.len() < MIN_CALIBRATION_PHOTOS
            || held_proxy_log_probabilities.len() != held.classes.len()
        {
            return None;
        }
        let (mean, scale) = standardisation(trained.features, features);
        let (weight, bias) = logistic_regression(&trained, &mean, &scale, classes, None);
        let mut opinion = Self {
            info: SecondOpinionInfo {
                features_from: features_from.to_string(),
                features,
                trained_on: trained.classes.len(),
                probe_temperature: 1.0,
                joint_temperature: 1.0,
                joint_bias: vec![0.0; classes],
                calibrated_on: held.classes.len(),
            },
            weight,
            bias,
            mean,
            scale,
        };
        let held_rows: Vec<&[f32]> = held.features.chunks(features).collect();
        let logits: Vec<Vec<f64>> = held_rows.iter().map(|f| opinion.logits(f)).collect();
        let labelled: Vec<(&Vec<f64>, usize)> =
            logits.iter().zip(held.classes.iter().copied()).collect();
        opinion.info.probe_temperature = fit_temperature(&labelled, (0.05, 20.0), 1.0);
        let joined: Vec<Vec<f64>> = held_rows
            .iter()
            .zip(held_proxy_log_probabilities)
            .map(|(f, proxy)| add(proxy, &opinion.log_probabilities(f)))
            .collect();
        let labelled: Vec<(&Vec<f64>, usize)> =
            joined.iter().zip(held.classes.iter().copied()).collect();
        let (temperature, bias) = fit_temperature_and_biases(&labelled, (0.05, 20.0), 1.0);
        opinion.info.joint_temperature = temperature;
        opinion.info.joint_bias = bias;
        Some(opinion)
    }
}

/// A linear classifier's logits (one row of `weight` per class, as long as `features`) for
/// `features` standardised by `mean` and `scale`.
pub(crate) fn standardised_logits(
    features: &[f32],
    weight: &[f32],
    bias: &[f32],
    mean: &[f32],
    scale: &[f32],
) -> Vec<f64> {
    let standardised: Vec<f64> = features
        .iter()
        .zip(mean.iter().zip(scale))
        .map(|(f, (m, s))| f64::from(*f - *m) / f64::from(*s))
        .collect();
    weight
        .chunks(features.len().max(1))
        .zip(bias)
        .map(|(row, b)| {
            row.iter()
                .zip(&standardised)
                .map(|(w, x)| f64::from(*w) * x)
                .sum::<f64>()
                + f64::from(*b)
        })
        .collect()
}

fn add(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// Each feature's mean and spread over `rows` (a spread of zero becomes a small one).
pub(crate) fn standardisation(rows: &[f32], features: usize) -> (Vec<f32>, Vec<f32>) {
    let count = (rows.len() / features.max(1)).max(1) as f64;
    let mut mean = vec![0.0f64; features];
    for row in rows.chunks(features) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += f64::from(*v) / count;
        }
    }
    let mut variance = vec![0.0f64; features];
    for row in rows.chunks(features) {
        for ((s, v), m) in variance.iter_mut().zip(row).zip(&mean) {
            *s += (f64::from(*v) - m).powi(2) / count;
        }
    }
    (
        mean.iter().map(|m| *m as f32).collect(),
        variance.iter().map(|v| (v.sqrt() + 1e-6) as f32).collect(),
    )
}

/// The multinomial logistic regression on the features standardised by `mean` and
/// `scale`: weights `[classes, features]` and biases. Each photo's loss weighs the same,
/// or `row_weight` (one per photo, summing to 1) when given.
pub(crate) fn logistic_regression(
    trained: &LabelledFeatures<'_>,
    mean: &[f32],
    scale: &[f32],
    classes: usize,
    row_weight: Option<&[f32]>,
) -> (Vec<f32>, Vec<f32>) {
    let _guard = tch::no_grad_guard();
    let count = trained.classes.len() as i64;
    let dims = mean.len() as i64;
    let row_weight = match row_weight {
        Some(weights) => Tensor::from_slice(weights).view([count, 1]),
        None => Tensor::full(
            [count, 1],
            1.0 / count as f64,
            (Kind::Float, tch::Device::Cpu),
        ),
    };
    let x = (Tensor::from_slice(trained.features).view([count, dims])
        - Tensor::from_slice(mean).view([1, dims]))
        / Tensor::from_slice(scale).view([1, dims]);
    let labels: Vec<i64> = trained.classes.iter().map(|c| *c as i64).collect();
    let onehot = Tensor::from_slice(&labels)
        .one_hot(classes as i64)
        .to_kind(Kind::Float);
    let mut weight = Tensor::zeros([dims, classes as i64], (Kind::Float, tch::Device::Cpu));
    let mut bias = Tensor::zeros([classes as i64], (Kind::Float, tch::Device::Cpu));
    for _ in 0..PROBE_STEPS {
        let gradient = ((x.mm(&weight) + &bias).softmax(-1, Kind::Float) - &onehot) * &row_weight;
        weight = &weight - (x.tr().mm(&gradient) + &weight * PROBE_L2) * PROBE_RATE;
        bias = &bias - gradient.sum_dim_intlist(0, false, Kind::Float) * PROBE_RATE;
    }
    (floats(&weight.tr()), floats(&bias))
}

/// A CPU tensor's values, flattened, as `f32`.
pub(crate) fn floats(t: &Tensor) -> Vec<f32> {
    let t = t.contiguous().view([-1]).to_kind(Kind::Float);
    let mut out = vec![0.0f32; t.numel()];
    let count = out.len();
    t.copy_data(&mut out, count);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Photos of 3 classes whose 6 features say their class through a noisy pair of
    /// them; the proxies' opinion (uniform here) adds nothing.
    fn photos(seed: u64, count: usize, noise: f32) -> (Vec<f32>, Vec<usize>) {
        let mut rng = fastrand::Rng::with_seed(seed);
        let (mut features, mut classes) = (Vec::new(), Vec::new());
        for i in 0..count {
            let class = i % 3;
            for f in 0..6 {
                let signal = if f / 2 == class { 1.0 } else { 0.0 };
                features.push(signal + noise * (rng.f32() - 0.5) * 2.0 + 5.0);
            }
            classes.push(class);
        }
        (features, classes)
    }

    /// Photos whose features overlap between classes (some are ambiguous): the second
    /// opinion is right about most new ones, and as sure as it is right, as its temperature
    /// and biases were fitted on held-out photos.
    #[test]
    fn the_second_opinion_learns_the_classes_and_is_calibrated_on_held_out_photos() {
        let noise = 1.0;
        let (trained, trained_classes) = photos(1, 600, noise);
        let (held, held_classes) = photos(2, 300, noise);
        let uniform = vec![vec![(1.0f64 / 3.0).ln(); 3]; 300];
        let opinion = SecondOpinion::fit(
            LabelledFeatures {
                features: &trained,
                classes: &trained_classes,
            },
            LabelledFeatures {
                features: &held,
                classes: &held_classes,
            },
            &uniform,
            3,
            6,
            "test",
        )
        .expect("fitted");
        assert_eq!(opinion.info.trained_on, 600);
        assert_eq!(opinion.info.calibrated_on, 300);
        let (query, query_classes) = photos(3, 1200, noise);
        let (mut right, mut sureness) = (0usize, 0.0f64);
        for (row, class) in query.chunks(6).zip(&query_classes) {
            let joined = opinion.join(&uniform[0], row);
            assert!((joined.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            let best = (0..3)
                .max_by(|a, b| joined[*a].total_cmp(&joined[*b]))
                .expect("classes");
            right += usize::from(best == *class);
            sureness += joined[best];
        }
        let (accuracy, sureness) = (right as f64 / 1200.0, sureness / 1200.0);
        assert!(accuracy > 0.6, "right about {accuracy}");
        assert!(
            (sureness - accuracy).abs() < 0.05,
            "as sure as right: {sureness:.3} sure, {accuracy:.3} right"
        );
    }

    #[test]
    fn inconsistent_or_too_few_photos_fit_nothing() {
        let (trained, trained_classes) = photos(1, 30, 0.3);
        let (held, held_classes) = photos(2, 6, 0.3);
        let uniform = vec![vec![(1.0f64 / 3.0).ln(); 3]; 6];
        let set = |features, classes| LabelledFeatures { features, classes };
        assert!(
            SecondOpinion::fit(
                set(&trained, &trained_classes),
                set(&held, &held_classes),
                &uniform,
                3,
                6,
                "test"
            )
            .is_none(),
            "6 held-out photos calibrate nothing"
        );
        assert!(
            SecondOpinion::fit(
                set(&trained, &trained_classes),
                set(&trained, &trained_classes),
                &uniform,
                3,
                5,
                "test"
            )
            .is_none(),
            "features of another length"
        );
    }
}
