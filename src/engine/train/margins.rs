//! Evidence about each photo's label, gathered while training runs.
//!
//! Area under the margin (Pleiss et al. 2020, "Identifying Mislabeled Data using the Area
//! Under the Margin Ranking"): every time a photo is trained on, its margin is the cosine
//! to its own class proxy minus the largest cosine to another class proxy. A photo filed in
//! the right folder is pulled to its proxy by the photos like it and its margin grows
//! early. A photo filed in the wrong folder is pulled the other way by every photo of its
//! true class, and its margin stays below zero until the network memorises it. Averaged
//! over the run, weighted toward its start ([`MarginEvidence::judged`]: a network that
//! starts from ImageNet memorises the odd labels within minutes), the margin ranks wrong
//! labels well below hard but right ones. The
//! normalised-softmax loss computes those cosines at every step already; recording them
//! costs one copy of a batch × classes matrix per step.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::engine::run::LabelSuspect;

/// A photo goes on the "check its label" list when its judged margin
/// ([`MarginEvidence::judged`]) is this many standard deviations below the mean of every
/// photo's: an outlier of the folder's own margins, whatever their scale (it moves with the
/// temperature and the length of the run). Chosen on planted mistakes (`likeness bench
/// --plant-mislabels 0.02`, 600 s, three seeds, docs/quality.md) as the threshold at which
/// every seed's list was at least half right and found at least half the mistakes
/// (precision 0.59, recall 0.56 on the mean; 2.5 left one seed's recall at 0.49).
pub const SUSPECT_SPREADS_BELOW: f64 = 2.4;

/// A photo's label is judged only after it was trained on this many times: one or two
/// passes of a network that is still learning say little (issue #41: after a 17-step run
/// the list held plain roses seen "in 1 of 1 passes"), and three are the fewest where
/// most of them can disagree with the folder.
pub const MIN_PASSES_TO_JUDGE: u32 = 3;

/// `evidence` with the photos trained on fewer than [`MIN_PASSES_TO_JUDGE`] times left
/// out (`None`), as the label check judges them.
pub fn judgeable(evidence: &[Option<MarginEvidence>]) -> Vec<Option<MarginEvidence>> {
    evidence
        .iter()
        .map(|e| e.filter(|e| e.seen >= MIN_PASSES_TO_JUDGE))
        .collect()
}

/// The margin below which a photo is listed: the mean of `evidence`'s judged margins
/// ([`MarginEvidence::judged`]) minus `spreads` standard deviations (`None` with fewer
/// than 2 photos).
pub fn suspect_threshold(evidence: &[Option<MarginEvidence>], spreads: f64) -> Option<f64> {
    let margins: Vec<f64> = evidence
        .iter()
        .flatten()
        .map(MarginEvidence::judged)
        .collect();
    let (mean, spread) = mean_and_spread(&margins)?;
    Some(mean - spreads * spread)
}

/// The mean of `values` and their standard deviation (`None` with fewer than 2).
pub fn mean_and_spread(values: &[f64]) -> Option<(f64, f64)> {
    if values.len() < 2 {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let spread = (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt();
    Some((mean, spread))
}

/// The photos whose progress-weighted margin is below `below` (see
/// [`suspect_threshold`]), lowest (most doubtful) first.
/// `photos[i]` is the path and class index of the photo with `evidence[i]`.
pub fn label_suspects(
    photos: &[(PathBuf, usize)],
    evidence: &[Option<MarginEvidence>],
    classes: &[String],
    below: f64,
) -> Vec<LabelSuspect> {
    let name = |c: usize| classes.get(c).cloned().unwrap_or_default();
    let mut suspects: Vec<LabelSuspect> = photos
        .iter()
        .zip(evidence)
        .filter_map(|((path, class), evidence)| {
            let evidence = evidence.as_ref()?;
            (evidence.judged() < below).then(|| LabelSuspect {
                path: path.clone(),
                class: name(*class),
                likely_class: name(evidence.likely_class),
                margin: evidence.judged(),
                seen: evidence.seen,
                beaten: evidence.beaten,
            })
        })
        .collect();
    suspects.sort_by(|a, b| a.margin.total_cmp(&b.margin));
    suspects
}

/// Running sums of each training photo's margins.
#[derive(Debug, Clone)]
pub struct MarginLedger {
    classes: usize,
    /// Times each photo was trained on (with its margin recorded).
    seen: Vec<u32>,
    margin_sum: Vec<f64>,
    /// The margins weighted by how far the run had come, and the weights' sum.
    late_margin_sum: Vec<f64>,
    late_weight: Vec<f64>,
    /// The margins weighted by how much of the run was still to come, and the weights'
    /// sum: a network that starts from ImageNet learns the easy, common patterns first and
    /// memorises the odd labels only later, so its early margins may say more.
    early_margin_sum: Vec<f64>,
    early_weight: Vec<f64>,
    /// Times another class scored above the photo's own.
    beaten: Vec<u32>,
    /// Per photo and class (row-major), the sum of its cosines to that class's proxy.
    cosine_sum: Vec<f64>,
    /// The same cosines weighted by how far the run had come (the weights' sum is
    /// `late_weight`).
    late_cosine_sum: Vec<f64>,
}

/// What training said about one photo's label.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MarginEvidence {
    /// Mean over the run of (cosine to its own class − largest cosine to another class),
    /// in −2..=2. Below zero: on average the photo looked more like another class.
    pub area_under_margin: f64,
    /// The same mean with each margin weighted by how far the run had come when it was
    /// measured (0 at the start, 1 at the end): the margins of a network that has learned
    /// something count more than those of its random start, which are near zero for
    /// every photo and only dilute the evidence.
    #[serde(default)]
    pub late_margin: f64,
    /// The same mean weighted by how much of the run was still to come (1 at the start, 0
    /// at the end): the margins before the network memorised the odd labels.
    #[serde(default)]
    pub early_margin: f64,
    /// The other class it looked most like, on average.
    pub likely_class: usize,
    /// Times it was trained on.
    pub seen: u32,
    /// Times another class scored above its own.
    pub beaten: u32,
}

impl MarginEvidence {
    /// The margin the "check these labels" list judges a photo by: the early-weighted
    /// one. Training from ImageNet learns the common look of each folder within the first
    /// epochs and memorises the odd photos after, so a wrong label shows most before that;
    /// the late-weighted margin, chosen when training started from scratch (whose first
    /// epochs say nothing), ranked the planted mistakes worse with the pretrained default
    /// (docs/quality.md).
    pub fn judged(&self) -> f64 {
        self.early_margin
    }
}

impl MarginLedger {
    pub fn new(images: usize, classes: usize) -> Self {
        Self {
            classes,
            seen: vec![0; images],
            margin_sum: vec![0.0; images],
            late_margin_sum: vec![0.0; images],
            late_weight: vec![0.0; images],
            early_margin_sum: vec![0.0; images],
            early_weight: vec![0.0; images],
            beaten: vec![0; images],
            cosine_sum: vec![0.0; images * classes],
            late_cosine_sum: vec![0.0; images * classes],
        }
    }

    /// Records one batch, measured `progress` (0..=1) into the run: `images[b]` was
    /// trained with label `labels[b]` and scored `cosines[b * classes + c]` against class
    /// `c`. Rows whose image or label is out of range are ignored (they cannot come from
    /// the trainer's own batches).
    pub fn record(&mut self, images: &[usize], labels: &[i64], cosines: &[f32], progress: f64) {
        let weight = progress.clamp(0.0, 1.0);
        for (row, (&image, &label)) in images.iter().zip(labels).enumerate() {
            let Some(scores) = cosines.get(row * self.classes..(row + 1) * self.classes) else {
                continue;
            };
            let Ok(own) = usize::try_from(label) else {
                continue;
            };
            if image >= self.seen.len() || own >= self.classes {
                continue;
            }
            let best_other = scores
                .iter()
                .enumerate()
                .filter(|&(c, _)| c != own)
                .map(|(_, &s)| f64::from(s))
                .fold(f64::NEG_INFINITY, f64::max);
            if !best_other.is_finite() {
                continue;
            }
            let margin = f64::from(scores[own]) - best_other;
            self.seen[image] += 1;
            self.margin_sum[image] += margin;
            self.late_margin_sum[image] += weight * margin;
            self.late_weight[image] += weight;
            self.early_margin_sum[image] += (1.0 - weight) * margin;
            self.early_weight[image] += 1.0 - weight;
            self.beaten[image] += u32::from(margin < 0.0);
            let sums = &mut self.cosine_sum[image * self.classes..(image + 1) * self.classes];
            for (sum, &s) in sums.iter_mut().zip(scores) {
                *sum += f64::from(s);
            }
            let late_sums =
                &mut self.late_cosine_sum[image * self.classes..(image + 1) * self.classes];
            for (sum, &s) in late_sums.iter_mut().zip(scores) {
                *sum += weight * f64::from(s);
            }
        }
    }

    /// Each photo's progress-weighted mean cosine to every class proxy (by its index in
    /// the training set, classes in order); `None` for a photo never trained on after
    /// the very start.
    pub fn late_cosines(&self) -> Vec<Option<Vec<f64>>> {
        (0..self.seen.len())
            .map(|image| {
                let weight = self.late_weight[image];
                (weight > 0.0).then(|| {
                    self.late_cosine_sum[image * self.classes..(image + 1) * self.classes]
                        .iter()
                        .map(|sum| sum / weight)
                        .collect()
                })
            })
            .collect()
    }

    /// Each photo's evidence (by its index in the training set); `None` for a photo never
    /// trained on with its margin recorded.
    pub fn evidence(&self, labels: &[i64]) -> Vec<Option<MarginEvidence>> {
        (0..self.seen.len())
            .map(|image| {
                let seen = self.seen[image];
                let own = usize::try_from(*labels.get(image)?).ok()?;
                if seen == 0 || self.classes < 2 {
                    return None;
                }
                let sums = &self.cosine_sum[image * self.classes..(image + 1) * self.classes];
                let likely_class = sums
                    .iter()
                    .enumerate()
                    .filter(|&(c, _)| c != own)
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map(|(c, _)| c)?;
                let late_margin = if self.late_weight[image] > 0.0 {
                    self.late_margin_sum[image] / self.late_weight[image]
                } else {
                    self.margin_sum[image] / f64::from(seen)
                };
                let early_margin = if self.early_weight[image] > 0.0 {
                    self.early_margin_sum[image] / self.early_weight[image]
                } else {
                    self.margin_sum[image] / f64::from(seen)
                };
                Some(MarginEvidence {
                    area_under_margin: self.margin_sum[image] / f64::from(seen),
                    late_margin,
                    early_margin,
                    likely_class,
                    seen,
                    beaten: self.beaten[image],
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_area_is_the_mean_margin_and_the_likely_class_the_best_other_on_average() {
        let mut ledger = MarginLedger::new(2, 3);
        // Photo 0, label 0: margins 0.5 − 0.25 and 0.25 − 0.75 → mean (0.25 − 0.5) / 2.
        ledger.record(&[0, 1], &[0, 2], &[0.5, 0.25, 0.0, 0.1, 0.2, 0.9], 0.25);
        ledger.record(&[0], &[0], &[0.25, 0.0, 0.75], 0.75);
        let evidence = ledger.evidence(&[0, 2]);
        let first = evidence[0].expect("seen twice");
        assert!((first.area_under_margin - (-0.125)).abs() < 1e-9);
        // Weighted by progress: (0.25 × 0.25 + 0.75 × −0.5) / (0.25 + 0.75).
        assert!((first.late_margin - (-0.3125)).abs() < 1e-9);
        // Weighted by what was left: (0.75 × 0.25 + 0.25 × −0.5) / (0.75 + 0.25).
        assert!((first.early_margin - 0.0625).abs() < 1e-9);
        assert_eq!(
            first.likely_class, 2,
            "cosine sums 0.25 (class 1) against 0.75"
        );
        assert_eq!((first.seen, first.beaten), (2, 1));
        let second = evidence[1].expect("seen once");
        assert!((second.area_under_margin - 0.7).abs() < 1e-6);
        assert_eq!((second.likely_class, second.beaten), (1, 0));
        // Photo 0's cosines weighted by progress: class 2 is (0.25 × 0 + 0.75 × 0.75) / 1.
        let cosines = ledger.late_cosines();
        let first_cosines = cosines[0].as_ref().expect("seen");
        for (cosine, expected) in first_cosines.iter().zip([0.3125, 0.0625, 0.5625]) {
            assert!((cosine - expected).abs() < 1e-9, "{first_cosines:?}");
        }
        let never_after_the_start = {
            let mut ledger = MarginLedger::new(1, 2);
            ledger.record(&[0], &[0], &[0.5, 0.1], 0.0);
            ledger.late_cosines()
        };
        assert_eq!(never_after_the_start, vec![None]);
    }

    #[test]
    fn suspects_are_the_photos_below_the_threshold_most_doubtful_first() {
        let photos: Vec<(PathBuf, usize)> = vec![
            ("a.jpg".into(), 0),
            ("b.jpg".into(), 1),
            ("c.jpg".into(), 1),
            ("d.jpg".into(), 0),
        ];
        let evidence = |area: f64, likely_class: usize| {
            Some(MarginEvidence {
                area_under_margin: area,
                late_margin: area,
                early_margin: area,
                likely_class,
                seen: 10,
                beaten: 8,
            })
        };
        let evidence = vec![evidence(-0.2, 1), evidence(0.3, 0), evidence(-0.5, 0), None];
        let classes = vec!["rose".to_string(), "tulip".to_string()];
        let suspects = label_suspects(&photos, &evidence, &classes, -0.1);
        let listed: Vec<&str> = suspects
            .iter()
            .map(|s| s.path.to_str().unwrap_or(""))
            .collect();
        assert_eq!(listed, ["c.jpg", "a.jpg"]);
        assert_eq!(suspects[0].class, "tulip");
        assert_eq!(suspects[0].likely_class, "rose");
        assert_eq!(
            suspects[1].reason(),
            "In folder 'rose', but training took it for another class in 8 of 10 passes, most like 'tulip'"
        );
    }

    /// Generated data: photos of two well-separated classes, three of them filed in the
    /// wrong folder. A network pulled towards the class proxies by the right photos keeps
    /// the wrong ones on the far side, so their margins are recorded negative, and they,
    /// and only they, are listed.
    #[test]
    fn planted_mistakes_in_generated_data_have_the_lowest_areas() {
        let mut rng = fastrand::Rng::with_seed(3);
        let (photos_per_class, classes) = (30usize, 2usize);
        let mut true_class = Vec::new();
        let mut labels = Vec::new();
        for c in 0..classes {
            for i in 0..photos_per_class {
                true_class.push(c);
                // Photos 0, 1 and 2 of class 0 are filed under class 1.
                labels.push(if c == 0 && i < 3 { 1 } else { c as i64 });
            }
        }
        let mut ledger = MarginLedger::new(labels.len(), classes);
        for epoch in 0..20u32 {
            let images: Vec<usize> = (0..labels.len()).collect();
            // Cosines as a half-trained network gives them: near its true class's proxy.
            let mut cosines = Vec::with_capacity(images.len() * classes);
            for &i in &images {
                for c in 0..classes {
                    let base = if c == true_class[i] { 0.6 } else { 0.1 };
                    cosines.push(base + rng.f32() * 0.3);
                }
            }
            ledger.record(&images, &labels, &cosines, f64::from(epoch) / 20.0);
        }
        let evidence = ledger.evidence(&labels);
        let photos: Vec<(PathBuf, usize)> = labels
            .iter()
            .enumerate()
            .map(|(i, &l)| (PathBuf::from(format!("{i}.png")), l as usize))
            .collect();
        let names = vec!["a".to_string(), "b".to_string()];
        let below = suspect_threshold(&evidence, SUSPECT_SPREADS_BELOW).expect("threshold");
        assert!(below < 0.0, "{below}");
        let suspects = label_suspects(&photos, &evidence, &names, below);
        let mut listed: Vec<String> = suspects
            .iter()
            .map(|s| s.path.display().to_string())
            .collect();
        listed.sort();
        assert_eq!(listed, ["0.png", "1.png", "2.png"]);
        assert!(suspects.iter().all(|s| s.likely_class == "a"));
    }

    #[test]
    fn photos_never_recorded_have_no_evidence_and_bad_rows_are_ignored() {
        let mut ledger = MarginLedger::new(3, 2);
        ledger.record(&[0, 7], &[1, 0], &[0.0, 1.0, 1.0, 0.0], 0.5);
        ledger.record(&[1], &[5], &[0.0, 1.0], 0.5);
        let evidence = ledger.evidence(&[1, 0, 0]);
        assert!(evidence[0].is_some());
        assert!(evidence[1].is_none(), "its label was out of range");
        assert!(evidence[2].is_none(), "never trained on");
    }
}
