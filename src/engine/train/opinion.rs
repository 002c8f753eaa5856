//! Fitting the second opinion on a photo's folder at the end of a run
//! ([`crate::engine::model::second_opinion`]): the library's photos through the shipped
//! ImageNet network once more, at its own 224-px input, and a linear classifier on them.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use super::prepare::PreparedData;
use crate::engine::Result;
use crate::engine::index::embed_files;
use crate::engine::model::classifier::Classifier;
use crate::engine::model::pretrained::{LITE0_WEIGHTS_ID, lite0_feature_network};
use crate::engine::model::second_opinion::{LabelledFeatures, MAX_PHOTOS_PER_CLASS, SecondOpinion};

/// The photos the second opinion is fitted on: up to [`MAX_PHOTOS_PER_CLASS`] of each
/// class the run trained on (evenly spread over the class) and every held-out photo.
pub(super) struct OpinionPhotos {
    pub(super) trained: Vec<(PathBuf, usize)>,
    pub(super) held: Vec<(PathBuf, usize)>,
}

impl OpinionPhotos {
    /// `None` when the run has no held-out photos of its own classes to calibrate on.
    pub(super) fn of(data: &PreparedData) -> Option<Self> {
        let validation = data
            .validation
            .as_ref()
            .filter(|v| v.dataset.classes == data.training.dataset.classes && !v.is_empty())?;
        let classes = data.training.dataset.classes.len();
        let mut trained = Vec::new();
        for class in 0..classes {
            let members: Vec<&(PathBuf, usize)> = data
                .training
                .dataset
                .images
                .iter()
                .filter(|(_, c)| *c == class)
                .collect();
            let take = members.len().min(MAX_PHOTOS_PER_CLASS);
            trained.extend((0..take).map(|i| members[i * members.len() / take.max(1)].clone()));
        }
        Some(Self {
            trained,
            held: validation.dataset.images.clone(),
        })
    }

    pub(super) fn len(&self) -> usize {
        self.trained.len() + self.held.len()
    }
}

/// Fits the second opinion into `classifier` (already calibrated on the same held-out
/// photos, whose embeddings under the trained network are `held_embeddings`). Returns how
/// many photos went through the ImageNet network, and a warning when it could not be
/// fitted (the shipped weights missing, too few photos decoded): sorting then has only
/// the proxies, as before.
pub(super) fn fit_second_opinion(
    classifier: &mut Classifier,
    photos: &OpinionPhotos,
    held_embeddings: &[f32],
    device: tch::Device,
    max_pixels: u64,
    cancel: &AtomicBool,
) -> Result<(usize, Option<String>)> {
    let network = match lite0_feature_network(device) {
        Ok(network) => network,
        Err(error) => {
            return Ok((
                0,
                Some(format!(
                    "no second opinion on the folders was fitted, so sorting can use only \
                     the model's own: {error}"
                )),
            ));
        }
    };
    let features = network.config.embedding_dim;
    let paths: Vec<PathBuf> = photos
        .trained
        .iter()
        .chain(&photos.held)
        .map(|(p, _)| p.clone())
        .collect();
    let embedded = embed_files(&network, &paths, max_pixels, &|_| {}, cancel)?;
    let trained_count = photos.trained.len();
    let held_rows: Vec<&[f32]> = held_embeddings
        .chunks(classifier.dimension.max(1))
        .collect();
    let (mut trained_features, mut trained_classes) = (Vec::new(), Vec::new());
    let (mut held_features, mut held_classes, mut held_proxies) =
        (Vec::new(), Vec::new(), Vec::new());
    for (row, &input) in embedded.embedded.iter().enumerate() {
        let vector = &embedded.vectors[row * features..(row + 1) * features];
        if input < trained_count {
            trained_features.extend_from_slice(vector);
            trained_classes.push(photos.trained[input].1);
        } else if let Some(embedding) = held_rows.get(input - trained_count) {
            held_features.extend_from_slice(vector);
            held_classes.push(photos.held[input - trained_count].1);
            held_proxies.push(classifier.proxy_log_probabilities(embedding));
        }
    }
    let opinion = SecondOpinion::fit(
        LabelledFeatures {
            features: &trained_features,
            classes: &trained_classes,
        },
        LabelledFeatures {
            features: &held_features,
            classes: &held_classes,
        },
        &held_proxies,
        classifier.info.classes.len(),
        features,
        LITE0_WEIGHTS_ID,
    );
    let embedded_count = embedded.embedded.len();
    match opinion {
        Some(opinion) => {
            classifier.set_second_opinion(opinion);
            Ok((embedded_count, None))
        }
        None => Ok((
            embedded_count,
            Some(format!(
                "no second opinion on the folders was fitted: only {} held-out photos could \
                 be read to calibrate it (10 are needed)",
                held_classes.len()
            )),
        )),
    }
}
