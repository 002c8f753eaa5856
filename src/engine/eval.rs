//! Retrieval quality of a model: embeds a gallery and queries, ranks, and fills the
//! report ([`crate::engine::metrics`]) with recall@K, mAP@R, per-class figures,
//! confusions, and the photos whose neighbours doubt their label
//! ([`crate::engine::collection::mislabels`]).
//!
//! The protocol is the seed's: the gallery is a class-folder set (usually the training
//! split), the queries are held-out photos of the same classes; a hit is a gallery image
//! of the query's class.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use super::collection::mislabels::{
    MISLABEL_CONFIDENCE, MISLABEL_NEIGHBOURS, find_mislabels, gallery_neighbours,
};
use super::data::{LabeledDataset, scan_folder};
use super::index::{ProgressFn, embed_files, labelled_gallery};
pub use super::metrics::{ConfusedPair, RetrievalReport, SuspectImage, retrieval_metrics};
use super::model::EmbeddingModel;
use super::progress::Embedding;
use super::{EngineError, Result};

/// Embeds a class-folder gallery and query set with `model` and measures retrieval.
pub fn evaluate_model(
    model: &EmbeddingModel,
    model_id: &str,
    gallery_root: &Path,
    queries_root: &Path,
    max_pixels: u64,
    on_progress: ProgressFn<'_>,
    cancel: &AtomicBool,
) -> Result<RetrievalReport> {
    let gallery_set = LabeledDataset::from_folder(scan_folder(gallery_root, max_pixels)?);
    let query_set = LabeledDataset::from_folder(scan_folder(queries_root, max_pixels)?);
    if gallery_set.images.is_empty() {
        return Err(EngineError::Dataset(format!(
            "{}: no images in class folders to search among",
            gallery_root.display()
        )));
    }
    if query_set.images.is_empty() {
        return Err(EngineError::Dataset(format!(
            "{}: no images in class folders to query with",
            queries_root.display()
        )));
    }
    // One class list for both sets, so a class missing from one side still counts.
    let mut class_names: Vec<String> = gallery_set.classes.clone();
    for class in &query_set.classes {
        if !class_names.contains(class) {
            class_names.push(class.clone());
        }
    }
    let class_of = |name: &str| class_names.iter().position(|c| c == name).unwrap_or(0);
    let total = gallery_set.images.len() + query_set.images.len();
    let gallery_paths: Vec<PathBuf> = gallery_set.images.iter().map(|(p, _)| p.clone()).collect();
    let query_paths: Vec<PathBuf> = query_set.images.iter().map(|(p, _)| p.clone()).collect();
    let mut gallery_embedded = embed_files(
        model,
        &gallery_paths,
        max_pixels,
        &|p| {
            on_progress(Embedding {
                done: p.done,
                total,
            })
        },
        cancel,
    )?;
    let offset = gallery_paths.len();
    let query_embedded = embed_files(
        model,
        &query_paths,
        max_pixels,
        &|p| {
            on_progress(Embedding {
                done: offset + p.done,
                total,
            })
        },
        cancel,
    )?;

    let gallery_classes: Vec<usize> = gallery_embedded
        .embedded
        .iter()
        .map(|&i| class_of(&gallery_set.classes[gallery_set.images[i].1]))
        .collect();
    let query_classes: Vec<usize> = query_embedded
        .embedded
        .iter()
        .map(|&i| class_of(&query_set.classes[query_set.images[i].1]))
        .collect();
    let mut gallery = labelled_gallery(
        gallery_root,
        model_id,
        &gallery_set,
        &gallery_embedded.embedded,
        std::mem::take(&mut gallery_embedded.vectors),
        model.config.embedding_dim,
    )?;
    let largest_class = (0..class_names.len())
        .map(|c| gallery_classes.iter().filter(|&&g| g == c).count())
        .max()
        .unwrap_or(0);
    let k = gallery.len().min(largest_class.max(10));
    let positions = |neighbours: Vec<(usize, f32)>| -> Vec<usize> {
        neighbours.into_iter().map(|(p, _)| p).collect()
    };
    let ranked: Vec<Vec<usize>> = gallery
        .nearest(&query_embedded.vectors, k)?
        .into_iter()
        .map(positions)
        .collect();
    let mut report = retrieval_metrics(&class_names, &gallery_classes, &query_classes, &ranked);

    // Possible mislabels: gallery images (the labelled folder) judged by their other
    // gallery neighbours. Queries are not judged: their labels are not what a person
    // would fix here, and flagging every hard query made the list noise.
    let neighbours = gallery_neighbours(&mut gallery, MISLABEL_NEIGHBOURS)?;
    let paths: Vec<PathBuf> = gallery.paths();
    report.suspects = find_mislabels(
        &paths,
        &gallery_classes,
        &class_names,
        &neighbours,
        MISLABEL_CONFIDENCE,
    );
    report.skipped = gallery_set.skipped;
    report.skipped.extend(query_set.skipped);
    report.skipped.extend(gallery_embedded.failed);
    report.skipped.extend(query_embedded.failed);
    Ok(report)
}
