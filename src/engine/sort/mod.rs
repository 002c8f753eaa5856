//! Filing new photos into a person's own class folders.
//!
//! Planning suggests a folder for each photo of an inbox, with a confidence, or "unsure"
//! when none fits well: from the model's calibrated class proxies when it has them
//! ([`crate::engine::model::classifier`]), otherwise from a vote of the photo's nearest
//! photos in the library's index. Filing then copies (or moves) the photos the person
//! accepts into their folders:
//! - a name that is taken gets " (2)", " (3)"… and never replaces a file;
//! - a photo whose bytes are already in its folder is reported, not filed twice;
//! - every copy is written to a temporary file and renamed into place, and every move is a
//!   rename (or such a copy, then the original removed), so a sort killed at any moment
//!   leaves each photo either filed whole or not at all;
//! - each filing is written to a journal before it happens, and [`undo`] reverses a
//!   journal exactly: copies are removed, moved photos go back where they were.
//!
//! Nothing outside the inbox and the library is touched: the inbox may not lie inside
//! the library, nor the library inside the inbox.

mod filing;
pub mod new_kind;

pub use filing::*;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use super::data::{ImageFolder, LabeledDataset, SkippedFile};
use super::index::{Gallery, ProgressFn, embed_files};
use super::model::EmbeddingModel;
use super::progress::Embedding;
use super::signature::RecordKey;
use super::{EngineError, Result};

/// How the folders were suggested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortMethod {
    /// The model's class proxies, calibrated on held-out photos.
    ClassProxies,
    /// The class proxies joined with the second opinion of the shipped ImageNet network
    /// ([`crate::engine::model::second_opinion`]), calibrated on held-out photos: files
    /// more photos at the same precision, and more photos of a kind no folder holds.
    ClassProxiesWithSecondOpinion,
    /// The class proxies at the training temperature: the run held out no photos, so
    /// the confidences are not calibrated.
    UncalibratedProxies,
    /// A vote of the photo's nearest photos in the library's index (models without
    /// class proxies: the seed preset, ImageNet features, a marks retrain).
    Neighbours,
}

impl SortMethod {
    pub fn describe(self) -> &'static str {
        match self {
            Self::ClassProxies => "the model's class folders (calibrated on held-out photos)",
            Self::ClassProxiesWithSecondOpinion => {
                "the model's class folders with a second opinion from the ImageNet network \
                 (calibrated on held-out photos; a photo of a kind no folder holds is more \
                 often filed)"
            }
            Self::UncalibratedProxies => {
                "the model's class folders (not calibrated: the run held out no photos, so \
                 confidences run high; train with --holdout 0.1 for calibrated ones)"
            }
            Self::Neighbours => "a vote of each photo's 10 nearest photos in the library's index",
        }
    }
}

/// The confidence at or above which a photo is filed by default.
pub const DEFAULT_MIN_CONFIDENCE: f64 = 0.9;
/// The same, when the second opinion is asked: the joined confidences are cautious at the
/// top (of the photos at 0.9 or more, 0.93 are right), so the level that files at a
/// precision of 0.9 is lower (docs/quality.md, item 1: at 0.85, 0.63 of the inbox at a
/// precision of 0.91, every seed at 0.90 or more).
pub const SECOND_OPINION_MIN_CONFIDENCE: f64 = 0.85;

/// The defaults when a new kind is looked for, one step (0.05) lower: every confidence is
/// then multiplied by the chance that the photo is not of the new kind, so a known photo's
/// is a little lower too (docs/quality.md, item 2: with the second opinion at 0.8, 62–65 %
/// of the known photos filed at 0.93 while 81–82 % of an unseen class waits).
pub const NEW_KINDS_MIN_CONFIDENCE: f64 = 0.85;
pub const SECOND_OPINION_NEW_KINDS_MIN_CONFIDENCE: f64 = 0.8;

/// The default level to file at, with or without the second opinion and the search for a
/// new kind.
pub fn default_min_confidence(second_opinion: bool, new_kinds: bool) -> f64 {
    match (second_opinion, new_kinds) {
        (false, false) => DEFAULT_MIN_CONFIDENCE,
        (true, false) => SECOND_OPINION_MIN_CONFIDENCE,
        (false, true) => NEW_KINDS_MIN_CONFIDENCE,
        (true, true) => SECOND_OPINION_NEW_KINDS_MIN_CONFIDENCE,
    }
}
/// Neighbours that vote when the model has no class proxies.
const VOTERS: usize = 10;

/// The suggestion for one inbox photo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suggestion {
    pub photo: PathBuf,
    /// The folder it fits best.
    pub best_folder: String,
    /// How sure, 0..=1 (calibrated probability, or the share of neighbours that agree).
    pub confidence: f64,
    /// Why it is left in the inbox rather than filed; `None` when it is sure.
    pub unsure: Option<String>,
    /// It looks like none of the folders, however sure the level asked for.
    #[serde(default)]
    pub fits_none: bool,
    /// It is one of a group of inbox photos alike each other and unlike every folder
    /// ([`new_kind`]), so it waits, however sure the level asked for.
    #[serde(default)]
    pub new_kind: bool,
}

impl Suggestion {
    /// The folder it goes to, when it is sure.
    pub fn folder(&self) -> Option<&str> {
        self.unsure.is_none().then_some(self.best_folder.as_str())
    }

    /// Why a photo guessed `folder` at `confidence` waits in the inbox at the level
    /// `min_confidence`; `None` when it is filed.
    fn unsure_reason(
        folder: &str,
        confidence: f64,
        fits_none: bool,
        new_kind: Option<usize>,
        min_confidence: f64,
    ) -> Option<String> {
        if let Some(group) = new_kind {
            Some(format!(
                "it looks like a new kind: one of {group} inbox photos alike each other and \
                 unlike every folder (the nearest is '{folder}')"
            ))
        } else if fits_none {
            Some(format!(
                "it looks like none of the folders (not even '{folder}', the nearest)"
            ))
        } else if confidence < min_confidence {
            Some(format!(
                "'{folder}' at {:.0}% is below the {:.0}% asked for",
                confidence * 100.0,
                min_confidence * 100.0
            ))
        } else {
            None
        }
    }
}

/// What filing at one confidence level would do, from the plan's confidences.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LevelOutlook {
    /// Photos filed at that level.
    pub filed: usize,
    /// Their mean confidence: with calibrated confidences, the share of them expected
    /// to land in the right folder (`None` when none is filed).
    pub expected_precision: Option<f64>,
    /// Every photo's mean confidence: with calibrated confidences, how often the model
    /// is right about this inbox (`None` for an empty plan).
    pub expected_accuracy: Option<f64>,
}

/// Where each inbox photo would go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SortPlan {
    pub inbox: PathBuf,
    pub library: PathBuf,
    pub method: SortMethod,
    pub min_confidence: f64,
    /// The folders a photo can be filed into, in name order.
    pub folders: Vec<String>,
    /// Sure ones first (most confident first), then the unsure ones.
    pub suggestions: Vec<Suggestion>,
    /// Inbox files that could not be read, and why.
    pub skipped: Vec<SkippedFile>,
    /// Whether the inbox was looked at for a new kind, and what was found.
    #[serde(default)]
    pub new_kinds: NewKindSearch,
}

/// What looking for a new kind in the inbox found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "looked")]
pub enum NewKindSearch {
    /// The person did not ask.
    #[default]
    No,
    /// The inbox photos alike each other and unlike every folder (marked `new_kind`),
    /// and the library photos they were compared with.
    Done {
        photos: usize,
        library_photos: usize,
    },
    /// Asked, but there were too few photos to tell: why.
    TooFew { why: String },
}

impl NewKindSearch {
    /// Photos in the new-kind group, when it was looked for.
    pub fn group_size(&self) -> Option<usize> {
        match self {
            Self::Done { photos, .. } => Some(*photos),
            _ => None,
        }
    }

    /// One line for the person.
    pub fn describe(&self) -> Option<String> {
        match self {
            Self::No => None,
            Self::Done {
                photos: 0,
                library_photos,
            } => Some(format!(
                "no new kind: no group of inbox photos stands apart from the folders \
                 ({library_photos} library photos compared)"
            )),
            Self::Done {
                photos: 1,
                library_photos,
            } => Some(format!(
                "1 photo looks like a new kind, unlike every folder ({library_photos} \
                 library photos compared): it waits in the inbox"
            )),
            Self::Done {
                photos,
                library_photos,
            } => Some(format!(
                "{photos} photos look like a new kind: alike each other and unlike every \
                 folder ({library_photos} library photos compared); they wait in the inbox"
            )),
            Self::TooFew { why } => Some(format!("no new kind looked for: {why}")),
        }
    }
}

impl SortPlan {
    /// The same plan at another confidence level: each photo sure or unsure again (in the
    /// same order, so choices made beside it keep their places). No photo is embedded
    /// again: the confidences do not depend on the level.
    pub fn at_level(&self, min_confidence: f64) -> SortPlan {
        let mut plan = self.clone();
        plan.min_confidence = min_confidence;
        for suggestion in &mut plan.suggestions {
            suggestion.unsure = Suggestion::unsure_reason(
                &suggestion.best_folder,
                suggestion.confidence,
                suggestion.fits_none,
                self.new_kinds.group_size().filter(|_| suggestion.new_kind),
                min_confidence,
            );
        }
        plan
    }

    /// What filing at `min_confidence` would do: how many photos, and how many of them
    /// would be right if the confidences are calibrated.
    pub fn outlook(&self, min_confidence: f64) -> LevelOutlook {
        let filed: Vec<f64> = self
            .suggestions
            .iter()
            .filter(|s| !s.fits_none && !s.new_kind && s.confidence >= min_confidence)
            .map(|s| s.confidence)
            .collect();
        let mean = |values: &[f64]| {
            (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
        };
        let all: Vec<f64> = self.suggestions.iter().map(|s| s.confidence).collect();
        LevelOutlook {
            filed: filed.len(),
            expected_precision: mean(&filed),
            expected_accuracy: mean(&all),
        }
    }

    /// Whether the confidences are calibrated probabilities (their mean over the filed
    /// photos then estimates how many are right).
    pub fn calibrated(&self) -> bool {
        matches!(
            self.method,
            SortMethod::ClassProxies | SortMethod::ClassProxiesWithSecondOpinion
        )
    }
}

/// Refuses an inbox and a library that overlap: filing would then touch the inbox's
/// own photos as library photos, or the other way round. Folders are compared by device
/// and inode, so a bind mount or a link of one inside the other is caught too.
pub fn check_folders(inbox: &Path, library: &Path) -> Result<(PathBuf, PathBuf)> {
    let canonical = |folder: &Path| {
        std::fs::canonicalize(folder).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => EngineError::MissingFolder(folder.to_path_buf()),
            _ => EngineError::io(folder, e),
        })
    };
    let (inbox, library) = (canonical(inbox)?, canonical(library)?);
    if inbox.starts_with(&library)
        || library.starts_with(&inbox)
        || super::files::folder_within(&inbox, &library)
        || super::files::folder_within(&library, &inbox)
    {
        return Err(EngineError::Config(format!(
            "the inbox ({}) and the library ({}) must be separate folders, neither inside the \
             other (nor the same folder under another name, as a bind mount or a link makes)",
            inbox.display(),
            library.display()
        )));
    }
    Ok((inbox, library))
}

/// Refuses an index of another folder than `library`: its photos' neighbours would vote
/// for that folder's classes, and filing would make them in the person's library.
pub fn check_index_library(index_folder: &Path, library: &Path) -> Result<()> {
    if super::files::same_folder(index_folder, library) {
        return Ok(());
    }
    Err(EngineError::Config(format!(
        "the index is of {}, not of the library {}: sort with the library's own index \
         (nothing was done)",
        index_folder.display(),
        library.display()
    )))
}

/// What sorting asks of the shipped ImageNet network besides the model.
#[derive(Clone, Copy)]
pub struct ImageNetAsks<'a> {
    pub network: &'a EmbeddingModel,
    /// Join the model's second opinion (fitted on this network's features) with its class
    /// proxies.
    pub second_opinion: bool,
    /// Look in the inbox for a new kind ([`new_kind`]): its photos wait.
    pub new_kinds: bool,
}

/// Suggests a folder of `library` for every photo of `inbox` (already scanned). With
/// class proxies in `model` they decide; otherwise `gallery` (the library's index) must be
/// given and the photos' neighbours in it vote. `imagenet` asks the shipped ImageNet
/// network for the second opinion and to look for a new kind: the inbox is embedded by it
/// too (and, for a new kind, a sample of the library).
#[allow(clippy::too_many_arguments)] // the plan's inputs, each used here
pub fn plan(
    model: &EmbeddingModel,
    inbox: &ImageFolder,
    library: &Path,
    gallery: Option<&mut Gallery>,
    min_confidence: f64,
    imagenet: Option<ImageNetAsks<'_>>,
    on_progress: ProgressFn<'_>,
    cancel: &AtomicBool,
) -> Result<SortPlan> {
    let paths: Vec<PathBuf> = inbox.images.iter().map(|i| i.path.clone()).collect();
    let dimension = model.config.embedding_dim;
    let mut folders: Vec<String> = match (&model.classifier, &gallery) {
        (Some(classifier), _) => classifier.info.classes.clone(),
        (None, Some(gallery)) => gallery
            .header
            .images
            .iter()
            .filter_map(|i| i.class.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect(),
        (None, None) => Vec::new(),
    };
    folders.sort();
    let (method, guess): (SortMethod, GuessFn<'_>) = match (&model.classifier, gallery) {
        (Some(classifier), _) => (
            if classifier.info.calibrated_on > 0 {
                SortMethod::ClassProxies
            } else {
                SortMethod::UncalibratedProxies
            },
            Box::new(move |embedding: &[f32]| {
                let guess = classifier.guess(embedding).ok_or_else(|| {
                    EngineError::Config("the model's classifier has no classes".into())
                })?;
                Ok(Guess {
                    folder: classifier.info.classes[guess.class].clone(),
                    confidence: guess.probability,
                    fits_none: guess.fits_none,
                })
            }),
        ),
        (None, Some(gallery)) => (
            SortMethod::Neighbours,
            Box::new(move |embedding: &[f32]| neighbour_vote(gallery, embedding)),
        ),
        (None, None) => {
            return Err(EngineError::Config(
                "this model has no class folders of its own (it was not trained with the \
                     default preset, or was retrained from marks): index the library with it \
                     first, so that each photo's nearest photos can vote"
                    .into(),
            ));
        }
    };
    let imagenet = imagenet.filter(|asks| asks.second_opinion || asks.new_kinds);
    let opinion = imagenet
        .filter(|asks| asks.second_opinion)
        .map(|asks| check_second_opinion(model, asks.network))
        .transpose()?;
    let method = if opinion.is_some() {
        SortMethod::ClassProxiesWithSecondOpinion
    } else {
        method
    };
    let sample = match imagenet.filter(|asks| asks.new_kinds) {
        Some(_) => Some(new_kind::LibrarySample::of(&LabeledDataset::scan(
            library,
            super::data::DEFAULT_MAX_PIXELS,
        )?)),
        None => None,
    };
    let mut guess = guess;
    // Progress counts every pass: the inbox by the model and by the ImageNet network, and
    // the library's sample.
    let total = paths.len() * (1 + usize::from(imagenet.is_some()))
        + sample.as_ref().map_or(0, |s| s.paths.len());
    let pass = |network: &EmbeddingModel, files: &[PathBuf], before: usize| {
        embed_files(
            network,
            files,
            super::data::DEFAULT_MAX_PIXELS,
            &|p| {
                on_progress(Embedding {
                    done: before + p.done,
                    total,
                })
            },
            cancel,
        )
    };
    let embedded = pass(model, &paths, 0)?;
    let imagenet_embedded = match imagenet {
        Some(asks) => Some(pass(asks.network, &paths, paths.len())?),
        None => None,
    };
    // The ImageNet network reads each photo's features: by input photo.
    let features: HashMap<usize, &[f32]> = match (imagenet, &imagenet_embedded) {
        (Some(asks), Some(read)) => rows_by_input(read, asks.network.config.embedding_dim),
        _ => HashMap::new(),
    };
    let (new_kinds, in_new_kind) = match (imagenet, sample, &imagenet_embedded) {
        (Some(asks), Some(sample), Some(read)) => {
            let read_sample = pass(asks.network, &sample.paths, 2 * paths.len())?;
            look_for_new_kind(asks.network, &sample, &read_sample, read)
        }
        _ => (NewKindSearch::No, HashMap::new()),
    };
    let group_size = new_kinds.group_size();
    let mut suggestions = Vec::with_capacity(embedded.embedded.len());
    for (row, &input) in embedded.embedded.iter().enumerate() {
        let embedding = &embedded.vectors[row * dimension..(row + 1) * dimension];
        let joined = opinion.zip(features.get(&input)).and_then(|(c, f)| {
            c.guess_with_second_opinion(embedding, f).map(|g| Guess {
                folder: c.info.classes[g.class].clone(),
                confidence: g.probability,
                fits_none: g.fits_none,
            })
        });
        let Guess {
            folder,
            confidence,
            fits_none,
        } = match joined {
            Some(joined) => joined,
            // A photo the ImageNet network could not read (it read it a moment ago for
            // the model) has the proxies' word alone.
            None => guess(embedding)?,
        };
        let (new_kind, new_kind_probability) = in_new_kind.get(&input).copied().unwrap_or_default();
        // The folders' probabilities are for a photo of a known kind.
        let confidence = confidence * (1.0 - new_kind_probability);
        suggestions.push(Suggestion {
            photo: paths[input].clone(),
            unsure: Suggestion::unsure_reason(
                &folder,
                confidence,
                fits_none,
                group_size.filter(|_| new_kind),
                min_confidence,
            ),
            best_folder: folder,
            confidence,
            fits_none,
            new_kind,
        });
    }
    suggestions.sort_by(|a, b| {
        a.unsure
            .is_some()
            .cmp(&b.unsure.is_some())
            .then(b.confidence.total_cmp(&a.confidence))
            .then(a.photo.cmp(&b.photo))
    });
    let mut skipped = inbox.skipped.clone();
    skipped.extend(embedded.failed);
    Ok(SortPlan {
        inbox: inbox.root.clone(),
        library: library.to_path_buf(),
        method,
        min_confidence,
        folders,
        suggestions,
        skipped,
        new_kinds,
    })
}

/// Each embedded photo's row of `read`, by its index among the inputs.
fn rows_by_input(read: &super::index::Embedded, width: usize) -> HashMap<usize, &[f32]> {
    read.embedded
        .iter()
        .enumerate()
        .map(|(row, &input)| (input, &read.vectors[row * width..(row + 1) * width]))
        .collect()
}

/// Each inbox photo's (by input index) place in the new kind and how likely it is of it,
/// from the ImageNet features of the library's sample and of the inbox; photos either
/// network could not read are left out of the comparison.
fn look_for_new_kind(
    network: &EmbeddingModel,
    sample: &new_kind::LibrarySample,
    read_sample: &super::index::Embedded,
    read_inbox: &super::index::Embedded,
) -> (NewKindSearch, HashMap<usize, (bool, f64)>) {
    let width = network.config.embedding_dim;
    let read = new_kind::LibrarySample {
        paths: read_sample
            .embedded
            .iter()
            .map(|&i| sample.paths[i].clone())
            .collect(),
        folders: read_sample
            .embedded
            .iter()
            .map(|&i| sample.folders[i])
            .collect(),
        held: read_sample
            .embedded
            .iter()
            .map(|&i| sample.held[i])
            .collect(),
        folder_count: sample.folder_count,
    };
    match new_kind::find(&read, &read_sample.vectors, &read_inbox.vectors, width) {
        Ok(found) => {
            let by_input: HashMap<usize, (bool, f64)> = read_inbox
                .embedded
                .iter()
                .zip(found.group.iter().zip(&found.probability))
                .map(|(&input, (&in_group, &probability))| (input, (in_group, probability)))
                .collect();
            (
                NewKindSearch::Done {
                    photos: found.group.iter().filter(|g| **g).count(),
                    library_photos: read.paths.len(),
                },
                by_input,
            )
        }
        Err(too_few) => (
            NewKindSearch::TooFew {
                why: match too_few {
                    new_kind::TooFew::InboxPhotos => {
                        "the inbox has too few photos for a kind to show (more than 10 needed)"
                    }
                    new_kind::TooFew::LibraryPhotos => {
                        "the library needs two class folders with enough photos to compare \
                         (about 100 in all)"
                    }
                }
                .into(),
            },
            HashMap::new(),
        ),
    }
}

/// The model's classifier when it can be joined with `network`'s features: it was fitted
/// on them. Errors that say why not, and what to do.
fn check_second_opinion<'m>(
    model: &'m EmbeddingModel,
    network: &EmbeddingModel,
) -> Result<&'m super::model::classifier::Classifier> {
    let classifier = model
        .classifier
        .as_ref()
        .filter(|c| c.second_opinion.is_some())
        .ok_or_else(|| {
            EngineError::Config(
                "this model has no second opinion on its folders: it is fitted at the end of \
                 training, on photos held out of the library (the window holds out 10 %, as \
                 does `likeness train` unless --holdout 0), with the ImageNet weights that \
                 ship with Likeness. Train the model again, or sort without the second \
                 opinion (nothing was done)"
                    .into(),
            )
        })?;
    let fitted = classifier
        .second_opinion
        .as_ref()
        .map(|o| (o.info.features, o.info.features_from.as_str()));
    if fitted
        != Some((
            network.config.embedding_dim,
            super::model::pretrained::LITE0_WEIGHTS_ID,
        ))
    {
        return Err(EngineError::Config(
            "this model's second opinion was fitted on another ImageNet network than the one \
             this Likeness ships: train the model again, or sort without the second opinion \
             (nothing was done)"
                .into(),
        ));
    }
    Ok(classifier)
}

/// Guesses the folder of one photo from its embedding.
type GuessFn<'a> = Box<dyn FnMut(&[f32]) -> Result<Guess> + 'a>;

struct Guess {
    folder: String,
    confidence: f64,
    fits_none: bool,
}

/// The class most of the photo's nearest library photos are in, and their share.
fn neighbour_vote(gallery: &mut Gallery, embedding: &[f32]) -> Result<Guess> {
    let near = gallery.nearest(embedding, VOTERS)?;
    let mut votes: HashMap<&str, usize> = HashMap::new();
    let row = near.first().map(Vec::as_slice).unwrap_or_default();
    for &(position, _) in row {
        if let Some(class) = gallery
            .header
            .images
            .get(position)
            .and_then(|i| i.class.as_deref())
        {
            *votes.entry(class).or_default() += 1;
        }
    }
    let (folder, count) = votes
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
        .ok_or_else(|| {
            EngineError::Config("the library's index has no photos in class folders to vote".into())
        })?;
    Ok(Guess {
        folder: folder.to_string(),
        confidence: count as f64 / row.len().max(1) as f64,
        fits_none: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A filing line as Likeness signs it for `journal` (what a sort killed after writing
    /// it leaves).
    pub(super) fn signed_line(journal: &Path, filed: &Filed) -> String {
        let text = std::fs::read_to_string(journal).expect("journal");
        let header: Signed<JournalHeader> =
            serde_json::from_str(text.lines().next().expect("header")).expect("header");
        let key = RecordKey::load_or_create().expect("key");
        let mac = filing_mac(&key, &header.record.nonce, filed).expect("mac");
        json_line(&Signed { record: filed, mac }).expect("line")
    }

    /// Issue #41 item 2: the level moves without embedding again, below 50 % too; the
    /// photos that fit no folder, or are of a new kind (#40), stay unsure at any level; the
    /// outlook is the filed photos' mean calibrated confidence.
    #[test]
    fn a_plan_moves_to_another_level_and_says_what_filing_there_gives() {
        let new_kinds = NewKindSearch::Done {
            photos: 1,
            library_photos: 100,
        };
        let suggestion = |name: &str, confidence: f64, fits_none: bool, new_kind: bool| {
            let group = new_kinds.group_size().filter(|_| new_kind);
            Suggestion {
                photo: PathBuf::from(name),
                best_folder: "rose".into(),
                confidence,
                unsure: Suggestion::unsure_reason("rose", confidence, fits_none, group, 0.9),
                fits_none,
                new_kind,
            }
        };
        let plan = SortPlan {
            inbox: "inbox".into(),
            library: "library".into(),
            method: SortMethod::ClassProxies,
            min_confidence: 0.9,
            folders: vec!["rose".into(), "tulip".into()],
            suggestions: vec![
                suggestion("a", 0.95, false, false),
                suggestion("b", 0.6, false, false),
                suggestion("c", 0.4, false, false),
                suggestion("d", 0.97, true, false),
                suggestion("e", 0.99, false, true),
            ],
            skipped: Vec::new(),
            new_kinds: new_kinds.clone(),
        };
        let sure = |plan: &SortPlan| -> Vec<bool> {
            plan.suggestions
                .iter()
                .map(|s| s.unsure.is_none())
                .collect()
        };
        assert_eq!(sure(&plan), [true, false, false, false, false]);
        let lower = plan.at_level(0.35);
        assert_eq!(lower.min_confidence, 0.35);
        assert_eq!(
            sure(&lower),
            [true, true, true, false, false],
            "d fits no folder, e is of a new kind"
        );
        let why =
            |plan: &SortPlan, i: usize| plan.suggestions[i].unsure.clone().unwrap_or_default();
        assert!(why(&lower, 3).contains("none"), "{}", why(&lower, 3));
        assert!(why(&lower, 4).contains("new kind"), "{}", why(&lower, 4));
        assert_eq!(
            lower
                .suggestions
                .iter()
                .map(|s| &s.photo)
                .collect::<Vec<_>>(),
            plan.suggestions
                .iter()
                .map(|s| &s.photo)
                .collect::<Vec<_>>(),
            "same order"
        );
        assert_eq!(sure(&lower.at_level(0.9)), sure(&plan), "and back");
        let outlook = plan.outlook(0.5);
        assert_eq!(outlook.filed, 2);
        assert!((outlook.expected_precision.expect("filed") - 0.775).abs() < 1e-12);
        assert!((outlook.expected_accuracy.expect("photos") - 0.782).abs() < 1e-12);
        assert_eq!(plan.outlook(0.99).expected_precision, None);
        assert!(
            new_kinds
                .describe()
                .is_some_and(|line| line.contains("1 photo looks like a new kind"))
        );
        assert_eq!(NewKindSearch::No.describe(), None);
    }

    fn write(path: &Path, bytes: &[u8]) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write");
    }

    /// An untrained tiny model (no classifier yet) and a scanned inbox in `dir` of
    /// `per_class` generated photos of each of 2 classes.
    fn tiny_model_and_inbox(dir: &Path, per_class: usize) -> (EmbeddingModel, ImageFolder) {
        let model_path = dir.join("tiny.safetensors");
        crate::engine::synthetic::write_tiny_model(&model_path).expect("model");
        let (model, _) =
            crate::engine::model::load_model(&model_path, tch::Device::Cpu).expect("load");
        let inbox_root = dir.join("inbox");
        crate::engine::synthetic::write_dataset(&inbox_root, 2, per_class, 32, 4).expect("photos");
        let inbox = super::super::data::scan_folder(&inbox_root, u64::MAX).expect("scan");
        (model, inbox)
    }

    /// The plan's rules: sure first, most confident first; below the confidence asked
    /// for, or fitting no folder, a photo is unsure and says why; the method says whether
    /// the confidences are calibrated; without proxies an index must be given.
    #[test]
    fn the_plan_files_the_sure_ones_and_says_why_the_others_wait() {
        use crate::engine::model::classifier::Classifier;
        let dir = tempfile::tempdir().expect("dir");
        let (mut model, inbox) = tiny_model_and_inbox(dir.path(), 3);
        let library = dir.path().join("library");
        let no_cancel = AtomicBool::new(false);
        let plan_with = |model: &EmbeddingModel, min_confidence: f64| {
            plan(
                model,
                &inbox,
                &library,
                None,
                min_confidence,
                None,
                &|_| {},
                &no_cancel,
            )
        };
        let error = plan_with(&model, 0.5).expect_err("no proxies, no index");
        assert!(error.to_string().contains("index the library"), "{error}");

        let dimension = model.config.embedding_dim;
        let proxies: Vec<f32> = (0..2 * dimension)
            .map(|i| ((i * 7) % 5) as f32 - 2.0)
            .collect();
        model.classifier = Some(Classifier::new(
            vec!["rose".into(), "tulip".into()],
            &proxies,
            dimension,
            0.5,
        ));
        let all_sure = plan_with(&model, 0.0).expect("plan");
        assert_eq!(all_sure.method, SortMethod::UncalibratedProxies);
        assert_eq!(all_sure.folders, ["rose", "tulip"]);
        assert_eq!(all_sure.suggestions.len(), 6);
        assert!(all_sure.suggestions.iter().all(|s| s.folder().is_some()));
        let confidences: Vec<f64> = all_sure.suggestions.iter().map(|s| s.confidence).collect();
        assert!(
            confidences.windows(2).all(|w| w[0] >= w[1]),
            "{confidences:?}"
        );

        let none_sure = plan_with(&model, 1.0).expect("plan");
        for suggestion in &none_sure.suggestions {
            let why = suggestion.unsure.as_deref().expect("unsure");
            assert!(why.contains("is below the 100% asked for"), "{why}");
        }
        if let Some(classifier) = &mut model.classifier {
            classifier.info.calibrated_on = 40;
            classifier.info.fits_below = Some(1.5);
        }
        let fits_none = plan_with(&model, 0.0).expect("plan");
        assert_eq!(fits_none.method, SortMethod::ClassProxies);
        for suggestion in &fits_none.suggestions {
            let why = suggestion.unsure.as_deref().expect("unsure");
            assert!(why.contains("looks like none of the folders"), "{why}");
        }
    }

    /// Issue #40: the second opinion is asked only of a model that has one, fitted on the
    /// network given; otherwise the plan says why. An opinion that knows nothing (zero
    /// weights) leaves the proxies' calibrated confidences as they were.
    #[test]
    fn the_second_opinion_is_asked_only_of_a_model_fitted_on_that_network() {
        use crate::engine::model::classifier::Classifier;
        use crate::engine::model::second_opinion::{SecondOpinion, SecondOpinionInfo};
        let dir = tempfile::tempdir().expect("dir");
        let (mut model, inbox) = tiny_model_and_inbox(dir.path(), 2);
        let network = crate::engine::model::pretrained::lite0_feature_network(tch::Device::Cpu)
            .expect("the shipped weights (`make setup`)");
        let no_cancel = AtomicBool::new(false);
        let plan_with = |model: &EmbeddingModel, network: Option<&EmbeddingModel>| {
            plan(
                model,
                &inbox,
                &dir.path().join("library"),
                None,
                0.0,
                network.map(|network| ImageNetAsks {
                    network,
                    second_opinion: true,
                    new_kinds: false,
                }),
                &|_| {},
                &no_cancel,
            )
        };
        let dimension = model.config.embedding_dim;
        let proxies: Vec<f32> = (0..2 * dimension)
            .map(|i| ((i * 3) % 7) as f32 - 3.0)
            .collect();
        let mut classifier = Classifier::new(
            vec!["rose".into(), "tulip".into()],
            &proxies,
            dimension,
            0.5,
        );
        classifier.info.calibrated_on = 40;
        model.classifier = Some(classifier.clone());
        let error = plan_with(&model, Some(&network)).expect_err("none fitted");
        assert!(error.to_string().contains("no second opinion"), "{error}");

        let features = network.config.embedding_dim;
        let knows_nothing = |features_from: &str| SecondOpinion {
            info: SecondOpinionInfo {
                features_from: features_from.into(),
                features,
                trained_on: 30,
                probe_temperature: 1.0,
                joint_temperature: 1.0,
                joint_bias: vec![0.0, 0.0],
                calibrated_on: 40,
            },
            weight: vec![0.0; 2 * features],
            bias: vec![0.0, 0.0],
            mean: vec![0.0; features],
            scale: vec![1.0; features],
        };
        classifier.set_second_opinion(knows_nothing("other weights"));
        model.classifier = Some(classifier.clone());
        let error = plan_with(&model, Some(&network)).expect_err("another network");
        assert!(
            error.to_string().contains("another ImageNet network"),
            "{error}"
        );

        classifier.set_second_opinion(knows_nothing(
            crate::engine::model::pretrained::LITE0_WEIGHTS_ID,
        ));
        model.classifier = Some(classifier);
        let joined = plan_with(&model, Some(&network)).expect("joined");
        assert_eq!(joined.method, SortMethod::ClassProxiesWithSecondOpinion);
        assert!(joined.calibrated());
        let alone = plan_with(&model, None).expect("proxies");
        assert_eq!(alone.method, SortMethod::ClassProxies);
        assert_eq!(joined.suggestions.len(), 4);
        for suggestion in &joined.suggestions {
            let same = alone
                .suggestions
                .iter()
                .find(|s| s.photo == suggestion.photo)
                .expect("the same photo");
            assert_eq!(same.best_folder, suggestion.best_folder);
            assert!((same.confidence - suggestion.confidence).abs() < 1e-9);
        }
    }

    /// A filed photo takes its name only when the name is free, by a hard link or, where
    /// none can be made (here: a directory, which Linux never hard-links, as FAT never
    /// links anything), by a rename after checking the name.
    #[test]
    fn a_new_name_is_taken_only_when_free_with_or_without_hard_links() {
        let dir = tempfile::tempdir().expect("dir");
        let taken = dir.path().join("taken.jpg");
        write(&taken, b"the person's photo");

        let linked = dir.path().join("linked.tmp");
        write(&linked, b"new");
        place_new(&linked, &dir.path().join("free.jpg")).expect("a free name");
        assert_eq!(
            std::fs::read(dir.path().join("free.jpg")).expect("read"),
            b"new"
        );
        assert!(place_new(&linked, &taken).is_err());

        let unlinkable = dir.path().join("unlinkable.tmp");
        std::fs::create_dir(&unlinkable).expect("dir");
        assert!(place_new(&unlinkable, &taken).is_err());
        place_new(&unlinkable, &dir.path().join("renamed")).expect("renamed into place");
        assert!(dir.path().join("renamed").is_dir() && !unlinkable.exists());

        assert_eq!(std::fs::read(&taken).expect("read"), b"the person's photo");
    }

    /// A library that is a pipe or a file is refused at once, never waited on; a second
    /// lock on the same library is refused while the first is held.
    #[cfg(unix)]
    #[test]
    fn the_library_lock_takes_only_a_folder_and_only_once() {
        let dir = tempfile::tempdir().expect("dir");
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
        assert!(LibraryLock::acquire(&fifo).is_err());
        write(&dir.path().join("file.jpg"), b"x");
        assert!(LibraryLock::acquire(&dir.path().join("file.jpg")).is_err());
        let held = LibraryLock::acquire(dir.path()).expect("a folder");
        let error = LibraryLock::acquire(dir.path()).expect_err("held");
        assert!(error.to_string().contains("another sort"), "{error}");
        drop(held);
        LibraryLock::acquire(dir.path()).expect("free again");
    }

    #[test]
    fn overlapping_inbox_and_library_are_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let library = dir.path().join("library");
        std::fs::create_dir_all(library.join("inbox")).expect("mkdir");
        let error = check_folders(&library.join("inbox"), &library).expect_err("inside");
        assert!(error.to_string().contains("separate folders"), "{error}");
        assert!(check_folders(&library, &library).is_err());
        std::fs::create_dir_all(dir.path().join("inbox")).expect("mkdir");
        assert!(check_folders(&dir.path().join("inbox"), &library).is_ok());
    }

    #[test]
    fn a_taken_name_gets_a_number_and_the_same_bytes_are_not_filed_twice() {
        let dir = tempfile::tempdir().expect("dir");
        let (inbox, library) = (dir.path().join("inbox"), dir.path().join("library"));
        write(&library.join("rose/a.jpg"), b"an older photo");
        write(&library.join("rose/a (2).jpg"), b"another older photo");
        write(&library.join("rose/kept.jpg"), b"already here");
        write(&inbox.join("a.jpg"), b"a new photo");
        write(&inbox.join("same.jpg"), b"already here");
        let journal = dir.path().join("journal.jsonl");
        let choices = vec![
            (inbox.join("a.jpg"), "rose".to_string()),
            (inbox.join("same.jpg"), "rose".to_string()),
        ];
        let report = file_photos(
            &choices,
            &inbox,
            &library,
            FileMode::Copy,
            &journal,
            &AtomicBool::new(false),
        )
        .expect("file");
        assert_eq!(report.filed.len(), 1);
        assert_eq!(report.filed[0].to, library.join("rose/a (3).jpg"));
        assert_eq!(
            std::fs::read(library.join("rose/a.jpg")).expect("read"),
            b"an older photo"
        );
        assert_eq!(
            std::fs::read(library.join("rose/a (3).jpg")).expect("read"),
            b"a new photo"
        );
        assert_eq!(
            report.already_there,
            vec![(inbox.join("same.jpg"), library.join("rose/kept.jpg"))]
        );
        assert!(
            inbox.join("a.jpg").exists(),
            "a copy leaves the inbox as it was"
        );
        // A folder name that leaves the library is refused.
        let escape = vec![(inbox.join("a.jpg"), "../elsewhere".to_string())];
        // A journal is always a new file: one that exists is never written into.
        let error = file_photos(
            &escape,
            &inbox,
            &library,
            FileMode::Copy,
            &journal,
            &AtomicBool::new(false),
        )
        .expect_err("the journal exists");
        assert!(error.to_string().contains("always a new file"), "{error}");
        let journal = dir.path().join("escape.jsonl");
        let report = file_photos(
            &escape,
            &inbox,
            &library,
            FileMode::Copy,
            &journal,
            &AtomicBool::new(false),
        )
        .expect("file");
        assert_eq!(report.failed.len(), 1);
        assert!(!dir.path().join("elsewhere").exists());
    }

    #[test]
    fn undo_reverses_a_move_exactly_and_removes_copies() {
        let dir = tempfile::tempdir().expect("dir");
        let (inbox, library) = (dir.path().join("inbox"), dir.path().join("library"));
        write(&inbox.join("one.jpg"), b"first");
        write(&inbox.join("two.jpg"), b"second");
        write(&library.join("tulip/one.jpg"), b"a tulip already there");
        let journal = dir.path().join("moves.jsonl");
        let choices = vec![
            (inbox.join("one.jpg"), "tulip".to_string()),
            (inbox.join("two.jpg"), "daisy".to_string()),
        ];
        let report = file_photos(
            &choices,
            &inbox,
            &library,
            FileMode::Move,
            &journal,
            &AtomicBool::new(false),
        )
        .expect("move");
        assert_eq!(report.filed.len(), 2);
        assert!(!inbox.join("one.jpg").exists() && !inbox.join("two.jpg").exists());
        assert_eq!(
            std::fs::read(library.join("tulip/one (2).jpg")).expect("read"),
            b"first"
        );
        let undone = undo(&journal).expect("undo");
        assert_eq!(undone.restored.len(), 2, "{undone:?}");
        assert_eq!(
            std::fs::read(inbox.join("one.jpg")).expect("read"),
            b"first"
        );
        assert_eq!(
            std::fs::read(inbox.join("two.jpg")).expect("read"),
            b"second"
        );
        assert!(!library.join("tulip/one (2).jpg").exists());
        assert!(!library.join("daisy/two.jpg").exists());
        assert_eq!(
            std::fs::read(library.join("tulip/one.jpg")).expect("read"),
            b"a tulip already there",
            "the library's own photo is untouched"
        );
        // Copies: undo removes them, unless they changed since.
        let journal = dir.path().join("copies.jsonl");
        let report = file_photos(
            &choices,
            &inbox,
            &library,
            FileMode::Copy,
            &journal,
            &AtomicBool::new(false),
        )
        .expect("copy");
        std::fs::write(&report.filed[1].to, b"edited in the library").expect("edit");
        let undone = undo(&journal).expect("undo");
        assert_eq!(undone.removed, vec![report.filed[0].to.clone()]);
        assert_eq!(undone.left.len(), 1);
        assert!(
            report.filed[1].to.exists(),
            "an edited copy is the person's now"
        );
    }

    /// A sort killed at any point: the journal says what was about to happen; every photo
    /// is whole in one place or the other, and undo puts back exactly what was filed.
    #[test]
    fn a_killed_sort_leaves_no_half_filed_photo() {
        let dir = tempfile::tempdir().expect("dir");
        let (inbox, library) = (dir.path().join("inbox"), dir.path().join("library"));
        std::fs::create_dir_all(&library).expect("library");
        let mut choices = Vec::new();
        for i in 0..6 {
            let photo = inbox.join(format!("{i}.jpg"));
            write(&photo, format!("photo {i}").as_bytes());
            choices.push((photo, "rose".to_string()));
        }
        let journal = dir.path().join("moves.jsonl");
        // Killed after the journal line of photo 3 and the copy of it, before the original
        // was removed: what a cross-device move looks like when killed mid-way.
        file_photos(
            &choices[..3],
            &inbox,
            &library,
            FileMode::Move,
            &journal,
            &AtomicBool::new(false),
        )
        .expect("move");
        let half = Filed {
            mode: FileMode::Move,
            from: choices[3].0.clone(),
            to: library.join("rose/3.jpg"),
            content: xxhash_rust::xxh3::xxh3_64(b"photo 3"),
        };
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&journal)
            .expect("open");
        writeln!(file, "{}", signed_line(&journal, &half)).expect("write");
        std::fs::copy(&half.from, &half.to).expect("copy");
        // And a cancel stops between photos, never inside one.
        let cancel = AtomicBool::new(true);
        let later = dir.path().join("later.jsonl");
        let report = file_photos(
            &choices[4..],
            &inbox,
            &library,
            FileMode::Move,
            &later,
            &cancel,
        )
        .expect("file");
        assert!(report.cancelled && report.filed.is_empty());
        let leftovers: Vec<_> = std::fs::read_dir(library.join("rose"))
            .expect("list")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".likeness-tmp"))
            .collect();
        assert!(leftovers.is_empty());
        undo(&journal).expect("undo");
        for (i, (photo, _)) in choices.iter().enumerate() {
            assert_eq!(
                std::fs::read(photo).expect("back"),
                format!("photo {i}").as_bytes()
            );
        }
        assert_eq!(
            std::fs::read_dir(library.join("rose"))
                .expect("list")
                .count(),
            0
        );
    }

    /// A journal is Likeness' only with every line signed for it: a filing copied from
    /// another journal is refused (the nonce differs), and a last line cut off by a kill
    /// is passed over, since the filing it announced never began.
    #[test]
    fn only_lines_signed_for_the_journal_are_undone_and_a_cut_off_tail_is_passed_over() {
        let dir = tempfile::tempdir().expect("dir");
        let (inbox, library) = (dir.path().join("inbox"), dir.path().join("library"));
        write(&inbox.join("one.jpg"), b"first");
        write(&inbox.join("two.jpg"), b"second");
        std::fs::create_dir_all(&library).expect("library");
        let file = |photo: &str, journal: &Path| {
            file_photos(
                &[(inbox.join(photo), "rose".to_string())],
                &inbox,
                &library,
                FileMode::Copy,
                journal,
                &AtomicBool::new(false),
            )
            .expect("file")
        };
        let (first, second) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
        file("one.jpg", &first);
        file("two.jpg", &second);
        let line_of_second = std::fs::read_to_string(&second)
            .expect("read")
            .lines()
            .nth(1)
            .expect("filing")
            .to_string();
        let spliced = dir.path().join("spliced.jsonl");
        let mut text = std::fs::read_to_string(&first).expect("read");
        text.push_str(&line_of_second);
        text.push('\n');
        std::fs::write(&spliced, &text).expect("write");
        let error = undo(&spliced).expect_err("a line of another journal");
        assert!(error.to_string().contains("signature"), "{error}");

        let mut cut = std::fs::read_to_string(&first).expect("read");
        cut.push_str(&line_of_second[..line_of_second.len() / 2]);
        let cut_path = dir.path().join("cut.jsonl");
        std::fs::write(&cut_path, &cut).expect("write");
        let undone = undo(&cut_path).expect("undo");
        assert!(undone.cut_off_last_line);
        assert_eq!(undone.removed, vec![library.join("rose/one.jpg")]);
        assert!(library.join("rose/two.jpg").exists());
    }
}
