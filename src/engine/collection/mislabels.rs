//! The photos whose labels their neighbours doubt: each photo of a labelled index is
//! judged by its nearest other photos, and listed when most of them agree on another
//! class (the finder for models without class proxies; the default preset's training
//! margins, [`crate::engine::train::margins`], give the list worth reading).
//! [`crate::engine::bench::planted_mislabels`] scores it on mistakes planted on purpose.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::engine::index::Gallery;
pub use crate::engine::metrics::SuspectImage;
use crate::engine::{EngineError, Result};

/// Neighbours (other than itself) that judge whether a labelled image is mislabelled.
pub const MISLABEL_NEIGHBOURS: usize = 10;
/// The lowest confidence that puts an image on the "check its label" list: at least 8 of
/// 10 neighbours agree on one other class and few or none share its own. Measured on
/// planted mistakes (`likeness bench --plant-mislabels`, docs/quality.md): it keeps the list
/// to about 5% of a real folder, at the price of finding about 4 in 10 planted mistakes.
pub const MISLABEL_CONFIDENCE: f64 = 0.8;

/// How strongly an image's neighbours say another class than its own: the most common
/// other class among `neighbour_classes`, its share, and the confidence (that share minus
/// the own class's share). `None` when no neighbour is of another class.
pub fn mislabel_evidence(class: usize, neighbour_classes: &[usize]) -> Option<(usize, f64, f64)> {
    if neighbour_classes.is_empty() {
        return None;
    }
    let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
    for &c in neighbour_classes {
        *counts.entry(c).or_default() += 1;
    }
    let own = counts.get(&class).copied().unwrap_or(0);
    let (&other, &other_count) = counts
        .iter()
        .filter(|(c, _)| **c != class)
        .max_by_key(|(_, count)| **count)?;
    let n = neighbour_classes.len() as f64;
    let share = other_count as f64 / n;
    Some((other, share, share - own as f64 / n))
}

/// The images of a labelled set whose neighbours say another class with at least
/// `min_confidence`, most confident first. `neighbours[i]` lists image `i`'s nearest other
/// images (not itself), nearest first.
pub fn find_mislabels(
    paths: &[PathBuf],
    classes: &[usize],
    class_names: &[String],
    neighbours: &[Vec<usize>],
    min_confidence: f64,
) -> Vec<SuspectImage> {
    let mut suspects: Vec<SuspectImage> = neighbours
        .iter()
        .enumerate()
        .filter_map(|(i, near)| {
            let near_classes: Vec<usize> = near.iter().map(|&g| classes[g]).collect();
            let (other, share, confidence) = mislabel_evidence(classes[i], &near_classes)?;
            (confidence >= min_confidence).then(|| SuspectImage {
                path: paths[i].clone(),
                class: class_names[classes[i]].clone(),
                neighbours_class: class_names[other].clone(),
                share,
                confidence,
            })
        })
        .collect();
    suspects.sort_by(|a, b| {
        b.confidence
            .total_cmp(&a.confidence)
            .then(a.path.cmp(&b.path))
    });
    suspects
}

/// Each gallery image's nearest other gallery images (leave-one-out), nearest first.
pub fn gallery_neighbours(gallery: &mut Gallery, k: usize) -> Result<Vec<Vec<usize>>> {
    let vectors = gallery
        .all_vectors()
        .ok_or_else(|| {
            EngineError::Config(
                "an approximate index keeps no vectors to compare its photos with each other"
                    .to_string(),
            )
        })?
        .to_vec();
    let hits = gallery.nearest(&vectors, (k + 1).min(gallery.len()))?;
    Ok(hits
        .into_iter()
        .enumerate()
        .map(|(i, row)| {
            row.into_iter()
                .map(|(g, _)| g)
                .filter(|&g| g != i)
                .take(k)
                .collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mislabels_need_neighbours_agreeing_on_another_class() {
        let names = vec!["a".to_string(), "b".to_string()];
        let (other, share, confidence) =
            mislabel_evidence(0, &[1, 1, 1, 1, 1, 1, 1, 1, 1, 0]).expect("evidence");
        assert_eq!(other, 1);
        assert!((share - 0.9).abs() < 1e-9 && (confidence - 0.8).abs() < 1e-9);
        assert!(mislabel_evidence(0, &[0, 0, 0]).is_none());

        // Six images: 0..=2 class a, 3..=5 class b; image 2 sits among the b's.
        let paths: Vec<PathBuf> = (0..6).map(|i| PathBuf::from(format!("{i}.jpg"))).collect();
        let classes = [0, 0, 0, 1, 1, 1];
        let neighbours = vec![
            vec![1, 2, 3],
            vec![0, 2, 3],
            vec![3, 4, 0], // two b's, one a: confidence 1/3
            vec![4, 5, 2],
            vec![3, 5, 2],
            vec![3, 4, 2],
        ];
        let strict = find_mislabels(&paths, &classes, &names, &neighbours, 0.8);
        assert!(strict.is_empty(), "{strict:?}");
        let loose = find_mislabels(&paths, &classes, &names, &neighbours, 0.3);
        assert_eq!(loose.len(), 1);
        assert_eq!(loose[0].path, PathBuf::from("2.jpg"));
        assert_eq!(loose[0].neighbours_class, "b");
    }
}
