//! What a run did, as the model file keeps it for people and the app: the training
//! summary (with the photos whose labels training doubts) and the fine-tuning summary with
//! each marked pair's change.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::settings::TrainSettings;

/// Reads a model file's training settings, or `None` when they are of a shape this build
/// does not know: they describe the past and must never stop a model from opening.
fn settings_if_readable<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<TrainSettings>, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).ok())
}

/// How a model was trained: written into the model file for people and the app.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    pub data_folder: String,
    pub classes: Vec<String>,
    pub images: usize,
    pub skipped_files: usize,
    pub preset: String,
    /// The settings it was trained with; `None` for weights Likeness did not train
    /// (ImageNet features), and for older files whose settings this build cannot read
    /// (the rest of the file still opens).
    #[serde(default, deserialize_with = "settings_if_readable")]
    pub settings: Option<TrainSettings>,
    pub epochs: usize,
    pub steps: usize,
    /// Mean training loss of each finished epoch.
    pub epoch_losses: Vec<f64>,
    /// Validation loss after each epoch, when a validation folder was given.
    pub validation_losses: Vec<f64>,
    pub train_secs: f64,
    pub device: String,
    /// Training stopped early because the user cancelled it.
    pub cancelled: bool,
    /// Training stopped because the time budget ran out.
    pub stopped_by_time_budget: bool,
    pub pretrained_weights: Option<String>,
    /// Validation mAP@R after each observed epoch, when a validation folder was given.
    #[serde(default)]
    pub validation_map_at_r: Vec<f64>,
    /// The earlier epoch whose weights were kept, when validated and clearly better than
    /// the last epoch (`engine::train::monitor::keeps_an_earlier_epoch`); `None`: the
    /// weights training ended with were kept.
    #[serde(default)]
    pub best_epoch: Option<usize>,
    #[serde(default)]
    pub best_validation_map_at_r: Option<f64>,
    /// Relative spread of the embeddings at each observed epoch (near 0: collapsed).
    #[serde(default)]
    pub embedding_spreads: Vec<f64>,
    /// What went wrong and was put right during training (a collapse undone).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Optimisation steps in one pass over the training images.
    #[serde(default)]
    pub steps_per_epoch: usize,
    /// Recall@1 of the kept model on the validation images (see `validation_source`).
    #[serde(default)]
    pub validation_recall_at_1: Option<f64>,
    /// What the validation figures were measured on: "the validation folder" or "N photos
    /// held out of the library".
    #[serde(default)]
    pub validation_source: Option<String>,
    /// Fine-tuning runs from alike / not-alike marks on top of the training above, oldest
    /// first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fine_tuned_from_marks: Vec<FineTuneSummary>,
    /// When this run went on from an earlier one (`--resume`, Keep training): what that
    /// one had trained. `steps`, `epochs` and `train_secs` above are this run's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<ResumedFrom>,
    /// Training photos whose labels training itself doubts (area under the margin), most
    /// doubtful first.
    #[serde(default)]
    pub label_suspects: Vec<LabelSuspect>,
    /// How many photos that check covered: the photos trained on, with a loss that has
    /// class proxies (0 otherwise; photos held out for validation are not checked).
    #[serde(default)]
    pub labels_checked: usize,
    /// The most times any photo was trained on with its margin recorded: below
    /// [`crate::engine::train::margins::MIN_PASSES_TO_JUDGE`] the run was too short to
    /// judge any label (0: no label check, or no step).
    #[serde(default)]
    pub label_passes: u32,
}

/// The run a resumed training went on from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResumedFrom {
    pub model_id: String,
    /// Steps and seconds trained before this run, by every run before it.
    pub steps: usize,
    pub secs: f64,
    pub epochs: usize,
}

/// What a fine-tuning run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FineTuneSummary {
    pub steps: usize,
    pub seconds: f64,
    /// Marks used (their photos decoded) and marks left out (a photo unreadable).
    pub pairs: usize,
    pub skipped_marks: usize,
    pub anchors: usize,
    /// Mean distance of alike / not-alike pairs over the typical distance, before and after.
    pub alike_before: f64,
    pub alike_after: f64,
    pub not_alike_before: f64,
    pub not_alike_after: f64,
    /// Each marked pair's distance (over the typical distance) before and after.
    #[serde(default)]
    pub pair_changes: Vec<PairChange>,
    /// The marked pairs kept out of training to see whether it learned something that
    /// carries over to pairs it did not see (every 5th pair, from 10 marks on).
    #[serde(default)]
    pub held_out_changes: Vec<PairChange>,
}

/// A change of a marked pair's distance smaller than this share of the typical distance
/// is noise, neither with nor against its mark.
const PAIR_NOISE: f64 = 0.01;

/// What fine-tuning did to one marked pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairChange {
    pub query: PathBuf,
    pub photo: PathBuf,
    pub alike: bool,
    /// Distance over the typical distance between photos, before and after.
    pub before: f64,
    pub after: f64,
    /// The photo's rank among its query's results (1 = first) with the model before and
    /// after, when the caller had an index to ask (the window has; `train --feedback`
    /// has not).
    #[serde(default)]
    pub rank_before: Option<usize>,
    #[serde(default)]
    pub rank_after: Option<usize>,
}

impl PairChange {
    /// Whether the pair moved against its mark: an alike pair farther apart, a not-alike
    /// pair closer (by more than 1 % of the typical distance, below which it is noise).
    pub fn moved_the_wrong_way(&self) -> bool {
        if self.alike {
            self.after > self.before + PAIR_NOISE
        } else {
            self.after < self.before - PAIR_NOISE
        }
    }

    /// Whether the pair moved as marked: an alike pair closer, a not-alike pair farther
    /// (by more than the noise).
    pub fn moved_as_marked(&self) -> bool {
        if self.alike {
            self.after < self.before - PAIR_NOISE
        } else {
            self.after > self.before + PAIR_NOISE
        }
    }
}

impl PairChange {
    /// The change in words: "rose_3.jpg, marked alike to rose_1.jpg: closer (0.40 to 0.10
    /// of the typical distance), #6 to #2".
    pub fn describe(&self) -> String {
        let name = |p: &Path| {
            p.file_name().map_or_else(
                || p.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            )
        };
        let moved = if self.after < self.before - 0.01 {
            "closer"
        } else if self.after > self.before + 0.01 {
            "farther"
        } else {
            "about as close"
        };
        let rank =
            |r: Option<usize>| r.map_or_else(|| "not found".to_string(), |r| format!("#{r}"));
        // Plain "to", not an arrow: the window's font has no arrow glyph.
        let ranks = match (self.rank_before, self.rank_after) {
            (None, None) => String::new(),
            (before, after) => format!(", {} to {}", rank(before), rank(after)),
        };
        format!(
            "{}, marked {} to {}: {moved} ({:.2} to {:.2} of the typical distance){ranks}",
            name(&self.photo),
            if self.alike { "alike" } else { "not alike" },
            name(&self.query),
            self.before,
            self.after
        )
    }
}

impl FineTuneSummary {
    /// The marked pairs that moved against their mark.
    pub fn wrong_way(&self) -> Vec<&PairChange> {
        self.pair_changes
            .iter()
            .filter(|change| change.moved_the_wrong_way())
            .collect()
    }

    /// Why the retrained model must not replace the one it started from, in words; `None`
    /// when it may. It is refused when any marked pair it trained on moved against its
    /// mark, or when more of the held-out pairs moved against their marks than with them.
    pub fn refusal(&self) -> Option<String> {
        let wrong_way = self.wrong_way().len();
        if wrong_way > 0 {
            return Some(format!(
                "it moved {wrong_way} of the {} marked {} it trained on against {} mark{}",
                self.pair_changes.len(),
                if self.pair_changes.len() == 1 {
                    "pair"
                } else {
                    "pairs"
                },
                if wrong_way == 1 { "its" } else { "their" },
                if wrong_way == 1 { "" } else { "s" },
            ));
        }
        let against = self
            .held_out_changes
            .iter()
            .filter(|c| c.moved_the_wrong_way())
            .count();
        let with = self
            .held_out_changes
            .iter()
            .filter(|c| c.moved_as_marked())
            .count();
        (self.held_out_changes.len() >= 2 && against > with).then(|| {
            format!(
                "of the {} marked pairs it did not train on, {against} moved against their \
                 marks and {with} with them: what it learned does not carry over",
                self.held_out_changes.len()
            )
        })
    }
}

/// A photo whose label training doubts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelSuspect {
    pub path: PathBuf,
    /// The class of its folder.
    pub class: String,
    /// The class it looked most like while training.
    pub likely_class: String,
    /// Its judged margin (`MarginEvidence::judged` in `train::margins`).
    pub margin: f64,
    /// Times it was trained on.
    pub seen: u32,
    /// Times `likely_class` or another scored above its own class.
    pub beaten: u32,
}

impl LabelSuspect {
    /// Why it is listed, in words a person reads: "In folder 'rose', but training took it
    /// for another class in 17 of 20 passes, most often 'tulip'".
    pub fn reason(&self) -> String {
        format!(
            "In folder '{}', but training took it for another class in {} of {} passes, \
             most like '{}'",
            self.class, self.beaten, self.seen, self.likely_class
        )
    }
}
