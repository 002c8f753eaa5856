//! Which class folder a photo belongs to, from what training learned.
//!
//! The default preset trains one proxy vector per class folder (normalised softmax): a
//! photo's cosine to each proxy, divided by a temperature, is a logit. The proxies are
//! kept in the model file with the class names, and the temperature is fitted again on
//! the photos the run held out (the training temperature makes over-confident
//! probabilities: the network was pushed to make the training photos' logits large).
//! So is one bias per class (the bias half of Guo et al.'s vector scaling): a fine-tuned
//! network gives some classes' proxies larger cosines than others, and a temperature
//! alone then makes the photos it guesses as those classes the most confident ones while
//! they are the least often right (docs/quality.md: at a confidence of 0.9, 0.76 right
//! with the temperature alone, 0.92 with the biases).
//!
//! A photo of a subject no folder holds still gets probabilities that sum to one over the
//! folders there are. So a photo is also "unsure" when its best cosine is below what the
//! held-out photos of the folders had ([`Classifier::fits_below`]): it fits no folder.

use serde::{Deserialize, Serialize};

use super::second_opinion::{SecondOpinion, SecondOpinionInfo};

/// What the model file's description says about its classifier (the proxies themselves
/// are the tensor [`PROXIES_TENSOR`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierInfo {
    /// The class folders, in the proxies' row order.
    pub classes: Vec<String>,
    /// Logits are cosines divided by this.
    pub temperature: f64,
    /// Held-out photos the temperature and `fits_below` were fitted on (0: not fitted,
    /// the training temperature is used and no photo is judged to fit no folder).
    pub calibrated_on: usize,
    /// A photo whose best cosine to a class proxy is below this fits no folder. The 2nd
    /// percentile of the held-out photos' cosines to their own class.
    pub fits_below: Option<f64>,
    /// Added to each class's logit (same order as `classes`; empty: none, as in models
    /// calibrated before biases were fitted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub class_bias: Vec<f64>,
    /// The second opinion from ImageNet features, when the run fitted one (its weights
    /// are the tensors named in [`super::second_opinion`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_opinion: Option<SecondOpinionInfo>,
}

/// Name of the class proxies in a model file.
pub const PROXIES_TENSOR: &str = "classifier.proxies";

/// Class proxies with their calibration.
#[derive(Debug, Clone, PartialEq)]
pub struct Classifier {
    pub info: ClassifierInfo,
    /// One unit-length row per class, `dimension` values each.
    pub proxies: Vec<f32>,
    pub dimension: usize,
    /// Described in `info.second_opinion` too ([`Classifier::set_second_opinion`]).
    pub second_opinion: Option<SecondOpinion>,
}

/// What the classifier says about one photo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassGuess {
    /// The most likely class (index into the classes).
    pub class: usize,
    /// Its calibrated probability, 0..=1.
    pub probability: f64,
    /// The photo's cosine to that class's proxy.
    pub cosine: f64,
    /// Its cosine is below what photos of the folders have: it fits no folder.
    pub fits_none: bool,
}

/// Share of held-out photos whose own-class cosine may fall below `fits_below`.
const FITS_PERCENTILE: f64 = 0.02;
/// Weight of the penalty on the squared class biases: with few held-out photos per class
/// the biases stay near zero instead of following those few (chosen on one seed's
/// held-out photos among 0, 0.01, 0.05 and 0.2: 0.2 undid most of the gain).
const BIAS_PENALTY: f64 = 0.01;
/// Rounds of fitting the biases at a fixed temperature, then the temperature at those
/// biases, and the gradient steps each round gives the biases (the negative
/// log-likelihood is convex in them; a step of 1 is safe, as its curvature is at most 1).
const CALIBRATION_ROUNDS: usize = 3;
const BIAS_STEPS: usize = 500;

impl Classifier {
    /// Proxies (`classes` rows of `dimension` values, any length: they are normalised
    /// here) at the training temperature, not yet calibrated.
    pub fn new(classes: Vec<String>, proxies: &[f32], dimension: usize, temperature: f64) -> Self {
        let mut proxies = proxies.to_vec();
        for row in proxies.chunks_mut(dimension.max(1)) {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            row.iter_mut().for_each(|v| *v /= norm);
        }
        Self {
            info: ClassifierInfo {
                classes,
                temperature,
                calibrated_on: 0,
                fits_below: None,
                class_bias: Vec::new(),
                second_opinion: None,
            },
            proxies,
            dimension,
            second_opinion: None,
        }
    }

    /// The cosine of `embedding` to every class proxy.
    pub fn cosines(&self, embedding: &[f32]) -> Vec<f64> {
        let norm = embedding
            .iter()
            .map(|v| f64::from(*v) * f64::from(*v))
            .sum::<f64>()
            .sqrt()
            .max(1e-12);
        self.proxies
            .chunks(self.dimension.max(1))
            .map(|proxy| {
                proxy
                    .iter()
                    .zip(embedding)
                    .map(|(p, e)| f64::from(*p) * f64::from(*e))
                    .sum::<f64>()
                    / norm
            })
            .collect()
    }

    /// The most likely class of a photo from its embedding.
    pub fn guess(&self, embedding: &[f32]) -> Option<ClassGuess> {
        let cosines = self.cosines(embedding);
        let probabilities = biased_softmax(&cosines, self.info.temperature, &self.info.class_bias);
        let (class, &probability) = probabilities
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))?;
        let cosine = cosines[class];
        Some(ClassGuess {
            class,
            probability,
            cosine,
            fits_none: self.info.fits_below.is_some_and(|floor| cosine < floor),
        })
    }

    /// The calibrated log-probability of each class from the proxies, given the photo's
    /// `cosines` to them.
    fn log_probabilities(&self, cosines: &[f64]) -> Vec<f64> {
        biased_log_softmax(cosines, self.info.temperature, &self.info.class_bias)
    }

    /// The calibrated log-probability of each class from the proxies alone.
    pub fn proxy_log_probabilities(&self, embedding: &[f32]) -> Vec<f64> {
        self.log_probabilities(&self.cosines(embedding))
    }

    /// The most likely class of a photo from its embedding and its ImageNet `features`,
    /// the proxies joined with the second opinion; `None` without a second opinion, or
    /// features of another length than it was fitted on.
    pub fn guess_with_second_opinion(
        &self,
        embedding: &[f32],
        features: &[f32],
    ) -> Option<ClassGuess> {
        let opinion = self
            .second_opinion
            .as_ref()
            .filter(|o| o.info.features == features.len())?;
        let cosines = self.cosines(embedding);
        let probabilities = opinion.join(&self.log_probabilities(&cosines), features);
        let (class, &probability) = probabilities
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))?;
        // Whether a photo fits no folder stays the proxies' judgement, by its nearest proxy:
        // the second opinion may choose a folder whose proxy is not the nearest.
        let best_cosine = cosines.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let cosine = cosines[class];
        Some(ClassGuess {
            class,
            probability,
            cosine,
            fits_none: self
                .info
                .fits_below
                .is_some_and(|floor| best_cosine < floor),
        })
    }

    /// Keeps `opinion` with its description.
    pub fn set_second_opinion(&mut self, opinion: SecondOpinion) {
        self.info.second_opinion = Some(opinion.info.clone());
        self.second_opinion = Some(opinion);
    }

    /// Fits the temperature and the class biases (those that give the held-out photos'
    /// true classes the highest likelihood, the biases gently held to zero) and the
    /// fits-no-folder floor on held-out photos: `embeddings` (rows of `dimension`) and
    /// their true `classes`. Fewer than 10 photos leave it as it is.
    pub fn calibrate(&mut self, embeddings: &[f32], classes: &[usize]) {
        let rows: Vec<Vec<f64>> = embeddings
            .chunks(self.dimension.max(1))
            .map(|e| self.cosines(e))
            .collect();
        let labelled: Vec<(&Vec<f64>, usize)> = rows
            .iter()
            .zip(classes)
            .filter(|(row, class)| **class < row.len())
            .map(|(row, &class)| (row, class))
            .collect();
        if labelled.len() < 10 {
            return;
        }
        let (temperature, bias) =
            fit_temperature_and_biases(&labelled, TEMPERATURE_RANGE, self.info.temperature);
        self.info.temperature = temperature;
        self.info.class_bias = bias;
        let mut own: Vec<f64> = labelled.iter().map(|(row, class)| row[*class]).collect();
        own.sort_by(f64::total_cmp);
        let at = ((own.len() as f64 * FITS_PERCENTILE).floor() as usize).min(own.len() - 1);
        self.info.fits_below = Some(own[at]);
        self.info.calibrated_on = labelled.len();
    }
}

/// Temperatures the proxies' calibration searches, log-spaced: cosines are at most 1, so
/// logits of a few tens need temperatures of a few hundredths.
const TEMPERATURE_RANGE: (f64, f64) = (0.005, 2.0);

/// The negative log-likelihood of `labelled` rows' true classes under
/// `softmax(row / temperature + bias)`.
fn negative_log_likelihood(labelled: &[(&Vec<f64>, usize)], temperature: f64, bias: &[f64]) -> f64 {
    labelled
        .iter()
        .map(|(row, class)| {
            -biased_softmax(row, temperature, bias)[*class]
                .max(1e-12)
                .ln()
        })
        .sum::<f64>()
}

/// `steps + 1` values log-spaced from `low` to `high`.
fn log_grid(low: f64, high: f64, steps: usize) -> Vec<f64> {
    (0..=steps)
        .map(|i| (low.ln() + (high.ln() - low.ln()) * i as f64 / steps as f64).exp())
        .collect()
}

/// Of `candidates`, the temperature that gives `labelled` the highest likelihood.
fn best_temperature(
    labelled: &[(&Vec<f64>, usize)],
    candidates: Vec<f64>,
    bias: &[f64],
    fallback: f64,
) -> f64 {
    candidates
        .into_iter()
        .min_by(|a, b| {
            negative_log_likelihood(labelled, *a, bias)
                .total_cmp(&negative_log_likelihood(labelled, *b, bias))
        })
        .unwrap_or(fallback)
}

/// The temperature alone that gives the held-out rows' true classes the highest likelihood:
/// a coarse log-spaced grid over `range`, then a fine one around its best.
pub(crate) fn fit_temperature(
    labelled: &[(&Vec<f64>, usize)],
    range: (f64, f64),
    fallback: f64,
) -> f64 {
    let coarse = best_temperature(labelled, log_grid(range.0, range.1, 40), &[], fallback);
    best_temperature(
        labelled,
        log_grid(coarse / 1.2, coarse * 1.2, 20),
        &[],
        coarse,
    )
}

/// The temperature (searched over `range`) and class biases that give the held-out rows'
/// true classes the highest likelihood, the biases gently held to zero: the temperature
/// alone, then the biases and the temperature by turns.
pub(crate) fn fit_temperature_and_biases(
    labelled: &[(&Vec<f64>, usize)],
    range: (f64, f64),
    fallback: f64,
) -> (f64, Vec<f64>) {
    let classes = labelled.first().map_or(0, |(row, _)| row.len());
    let mut bias = vec![0.0; classes];
    let mut temperature = fit_temperature(labelled, range, fallback);
    for _ in 0..CALIBRATION_ROUNDS {
        fit_biases(labelled, temperature, &mut bias);
        temperature = best_temperature(
            labelled,
            log_grid(temperature / 1.5, temperature * 1.5, 30),
            &bias,
            temperature,
        );
    }
    (temperature, bias)
}

/// Gradient steps on the class biases at a fixed temperature, minimising the held-out
/// photos' mean negative log-likelihood plus [`BIAS_PENALTY`] × half the squared biases.
/// Only differences between biases matter, so they are kept centred on zero.
fn fit_biases(labelled: &[(&Vec<f64>, usize)], temperature: f64, bias: &mut [f64]) {
    let n = labelled.len().max(1) as f64;
    for _ in 0..BIAS_STEPS {
        let mut gradient: Vec<f64> = bias.iter().map(|b| BIAS_PENALTY * b).collect();
        for (row, class) in labelled {
            let probabilities = biased_softmax(row, temperature, bias);
            for (c, p) in probabilities.iter().enumerate() {
                let target = if c == *class { 1.0 } else { 0.0 };
                if let Some(g) = gradient.get_mut(c) {
                    *g += (p - target) / n;
                }
            }
        }
        for (b, g) in bias.iter_mut().zip(&gradient) {
            *b -= g;
        }
        let mean = bias.iter().sum::<f64>() / bias.len().max(1) as f64;
        bias.iter_mut().for_each(|b| *b -= mean);
    }
}

/// Softmax of `values / temperature + bias` (a missing bias is 0).
pub fn biased_softmax(values: &[f64], temperature: f64, bias: &[f64]) -> Vec<f64> {
    let temperature = temperature.max(1e-6);
    let logits: Vec<f64> = values
        .iter()
        .enumerate()
        .map(|(c, v)| v / temperature + bias.get(c).copied().unwrap_or(0.0))
        .collect();
    let top = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = logits.iter().map(|l| (l - top).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}

/// The logarithm of [`biased_softmax`].
pub fn biased_log_softmax(values: &[f64], temperature: f64, bias: &[f64]) -> Vec<f64> {
    biased_softmax(values, temperature, bias)
        .into_iter()
        .map(|p| p.max(1e-300).ln())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_classes() -> Classifier {
        Classifier::new(
            vec!["rose".into(), "tulip".into()],
            &[2.0, 0.0, 0.0, 0.0, 3.0, 0.0],
            3,
            0.05,
        )
    }

    #[test]
    fn the_guess_is_the_nearest_proxy_with_its_probability() {
        let classifier = two_classes();
        let guess = classifier.guess(&[0.9, 0.1, 0.0]).expect("guess");
        assert_eq!(guess.class, 0);
        assert!(guess.probability > 0.99, "{guess:?}");
        assert!(!guess.fits_none, "not calibrated: nothing is ruled out");
        let halfway = classifier.guess(&[1.0, 1.0, 0.0]).expect("guess");
        assert!((halfway.probability - 0.5).abs() < 1e-9);
    }

    /// Held-out photos where the nearest proxy is right 80 % of the time: a calibrated
    /// temperature makes the probabilities say about that, where the training
    /// temperature (0.05) says nearly 1.
    #[test]
    fn calibration_fits_the_temperature_to_how_often_the_nearest_proxy_is_right() {
        let mut classifier = two_classes();
        // Four in five lean to their own proxy, one in five to the other.
        let (embeddings, classes) = leaning_photos(4, 500, [0.8, 0.8], 0.6..0.9);
        let before = mean_top_probability(&classifier, &embeddings);
        assert!(before > 0.97, "over-confident before: {before}");
        classifier.calibrate(&embeddings, &classes);
        let after = mean_top_probability(&classifier, &embeddings);
        assert!((after - 0.8).abs() < 0.05, "calibrated: {after}");
        assert_eq!(classifier.info.calibrated_on, 500);
        // A photo far from both proxies fits no folder.
        let elsewhere = classifier.guess(&[0.05, 0.05, 1.0]).expect("guess");
        assert!(elsewhere.fits_none, "{elsewhere:?}");
        let rose = classifier.guess(&[0.9, 0.1, 0.2]).expect("guess");
        assert!(!rose.fits_none, "{rose:?}");
    }

    /// Held-out photos of two classes where the network's guess of "tulip" is nearly always
    /// right and its guess of "rose" often wrong (two in five tulips lean to the rose
    /// proxy): a temperature alone gives both guesses the same confidence; the class
    /// biases make each guess's mean probability say how often that guess is right.
    #[test]
    fn calibration_makes_each_guessed_class_as_sure_as_it_is_right() {
        let mut classifier = two_classes();
        let (embeddings, classes) = leaning_photos(7, 1200, [0.95, 0.6], 0.55..0.9);
        classifier.calibrate(&embeddings, &classes);
        let bias = &classifier.info.class_bias;
        assert_eq!(bias.len(), 2);
        assert!(bias[1] > bias[0], "tulip is guessed too rarely: {bias:?}");
        for guessed in 0..2 {
            let (mut probability, mut right, mut count) = (0.0, 0usize, 0usize);
            for (embedding, &class) in embeddings.chunks(3).zip(&classes) {
                let guess = classifier.guess(embedding).expect("guess");
                if guess.class == guessed {
                    probability += guess.probability;
                    right += usize::from(class == guessed);
                    count += 1;
                }
            }
            let (probability, accuracy) = (probability / count as f64, right as f64 / count as f64);
            assert!(
                (probability - accuracy).abs() < 0.05,
                "guesses of class {guessed}: mean probability {probability:.3}, right {accuracy:.3}"
            );
        }
    }

    /// `count` held-out photos of the two classes of [`two_classes`], alternating: a photo
    /// of class `c` leans to its own proxy with probability `right_share[c]`, otherwise to
    /// the other, by a lean drawn from `lean`. Embeddings (3 values each) and classes.
    fn leaning_photos(
        seed: u64,
        count: usize,
        right_share: [f64; 2],
        lean: std::ops::Range<f32>,
    ) -> (Vec<f32>, Vec<usize>) {
        let mut rng = fastrand::Rng::with_seed(seed);
        let (mut embeddings, mut classes) = (Vec::new(), Vec::new());
        for i in 0..count {
            let class = i % 2;
            let toward = if rng.f64() < right_share[class] {
                class
            } else {
                1 - class
            };
            let amount = lean.start + rng.f32() * (lean.end - lean.start);
            let (x, y) = if toward == 0 {
                (amount, 1.0 - amount)
            } else {
                (1.0 - amount, amount)
            };
            embeddings.extend([x, y, 0.2]);
            classes.push(class);
        }
        (embeddings, classes)
    }

    fn mean_top_probability(classifier: &Classifier, embeddings: &[f32]) -> f64 {
        let rows: Vec<f64> = embeddings
            .chunks(3)
            .filter_map(|e| classifier.guess(e).map(|g| g.probability))
            .collect();
        rows.iter().sum::<f64>() / rows.len() as f64
    }

    #[test]
    fn too_few_held_out_photos_leave_the_classifier_as_it_was() {
        let mut classifier = two_classes();
        let before = classifier.clone();
        classifier.calibrate(&[1.0, 0.0, 0.0], &[0]);
        assert_eq!(classifier, before);
    }
}
