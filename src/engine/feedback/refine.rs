//! Marks that act at once: the query on screen is moved toward the photos marked alike
//! and away from those marked not alike (Rocchio's relevance feedback, in the embedding
//! space), then searched again. Nothing is retrained, so it takes a search's time.
//!
//! Two steps follow where the index keeps its vectors (an exact index): the refined query
//! takes in its own first few unmarked results (average query expansion), and the photos
//! nearer a not-alike photo than to the query or an alike photo are ranked after the
//! others (the marks' nearest-neighbour vote).
//!
//! The weights were chosen on the 1500/1034 split of flowers5-train (`cargo bench --bench
//! refine`, docs/quality.md): the person marks the top 10 of a query, and the 10 results
//! after the marked ones are scored.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use crate::engine::index::{Gallery, SearchHit, embed_files};
use crate::engine::model::EmbeddingModel;
use crate::engine::{EngineError, Result};

/// How much of the query, of the alike photos' mean and of the not-alike photos' mean
/// make the refined query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rocchio {
    pub query: f32,
    pub alike: f32,
    pub not_alike: f32,
}

impl Rocchio {
    /// What refined best on the split (docs/quality.md, "Marks that act at once"). The
    /// not-alike weight is as large as the query's on purpose: when every one of the top
    /// results is marked not alike, the query sits inside their cluster, and only
    /// subtracting their whole mean leaves the direction that tells it apart.
    pub const DEFAULT: Self = Self {
        query: 1.0,
        alike: 1.0,
        not_alike: 1.0,
    };

    /// The refined query: `query·q + alike·mean(alike) − not_alike·mean(not alike)`, put
    /// back on the unit sphere when the model's embeddings live there. An empty side
    /// adds nothing.
    pub fn refine(
        &self,
        query: &[f32],
        alike: &[Vec<f32>],
        not_alike: &[Vec<f32>],
        unit_length: bool,
    ) -> Vec<f32> {
        let mut refined: Vec<f32> = query.iter().map(|v| v * self.query).collect();
        let mut add_mean = |vectors: &[Vec<f32>], weight: f32| {
            if vectors.is_empty() {
                return;
            }
            let share = weight / vectors.len() as f32;
            for vector in vectors {
                for (r, v) in refined.iter_mut().zip(vector) {
                    *r += share * v;
                }
            }
        };
        add_mean(alike, self.alike);
        add_mean(not_alike, -self.not_alike);
        if unit_length {
            let norm = refined.iter().map(|v| v * v).sum::<f32>().sqrt();
            if norm > f32::EPSILON {
                refined.iter_mut().for_each(|v| *v /= norm);
            }
        }
        refined
    }
}

/// Unmarked results of the refined query that the query takes in, and their weight.
const EXPANSION: usize = 5;
const EXPANSION_WEIGHT: f32 = 0.5;
/// How far past the results asked for the vote looks for photos to bring up.
const VOTE_DEPTH: usize = 200;

/// A query's marks, ready for refining: each marked photo and whether it is alike.
pub type QueryMarks = [(PathBuf, bool)];

/// Results refined by marks.
#[derive(Debug, Clone, PartialEq)]
pub struct Refined {
    /// Nearest first, the photos marked not alike left out; distances are to the refined
    /// query.
    pub hits: Vec<SearchHit>,
    /// Marks that refined the query (their photos could be found or read).
    pub used: usize,
    /// Marked photos that are neither in the index nor readable.
    pub missing: usize,
}

/// The embeddings of a query's marked photos.
#[derive(Debug, Default)]
struct MarkedVectors {
    alike: Vec<Vec<f32>>,
    not_alike: Vec<Vec<f32>>,
    /// Marked photos found neither in the index nor readable on disk.
    missing: usize,
}

/// The vectors of the marked photos: the index's own where it keeps them (an exact
/// index), else embedded from their files with `model`.
fn marked_vectors(
    gallery: &Gallery,
    model: &EmbeddingModel,
    marks: &QueryMarks,
    max_pixels: u64,
) -> Result<MarkedVectors> {
    let mut alike = Vec::new();
    let mut not_alike = Vec::new();
    let mut to_embed: Vec<(PathBuf, bool)> = Vec::new();
    for (photo, is_alike) in marks {
        let stored = gallery
            .header
            .images
            .iter()
            .position(|image| image.path == *photo)
            .and_then(|i| gallery.vector(i));
        match stored {
            Some(vector) if *is_alike => alike.push(vector.to_vec()),
            Some(vector) => not_alike.push(vector.to_vec()),
            None => to_embed.push((photo.clone(), *is_alike)),
        }
    }
    let mut missing = 0;
    if !to_embed.is_empty() {
        let paths: Vec<PathBuf> = to_embed.iter().map(|(p, _)| p.clone()).collect();
        let embedded = embed_files(model, &paths, max_pixels, &|_| {}, &AtomicBool::new(false))?;
        let dimension = model.config.embedding_dim;
        for (row, &input) in embedded.embedded.iter().enumerate() {
            let vector = embedded.vectors[row * dimension..(row + 1) * dimension].to_vec();
            if to_embed[input].1 {
                alike.push(vector);
            } else {
                not_alike.push(vector);
            }
        }
        missing = embedded.failed.len();
    }
    Ok(MarkedVectors {
        alike,
        not_alike,
        missing,
    })
}

/// The `k` nearest photos to `query` (a vector of `model`, which built `gallery`) after
/// refining it with `marks`; the photos marked not alike are left out of the results.
pub fn refined_search(
    gallery: &mut Gallery,
    model: &EmbeddingModel,
    query: &[f32],
    marks: &QueryMarks,
    k: usize,
    weights: &Rocchio,
    max_pixels: u64,
) -> Result<Refined> {
    if query.len() != gallery.header.dimension {
        return Err(EngineError::Config(format!(
            "the query has {} values but the index holds {}-d vectors",
            query.len(),
            gallery.header.dimension
        )));
    }
    let MarkedVectors {
        alike,
        not_alike,
        missing,
    } = marked_vectors(gallery, model, marks, max_pixels)?;
    let unit_length = model.config.l2_normalize;
    let mut refined = weights.refine(query, &alike, &not_alike, unit_length);
    // Each marked photo's place in the index, and whether it is alike.
    let marked: HashMap<usize, bool> = {
        let by_path: HashMap<&Path, bool> = marks
            .iter()
            .map(|(p, alike)| (p.as_path(), *alike))
            .collect();
        gallery
            .header
            .images
            .iter()
            .enumerate()
            .filter_map(|(i, image)| Some((i, *by_path.get(image.path.as_path())?)))
            .collect()
    };
    let is_marked = |position: usize, only_not_alike: bool| {
        marked
            .get(&position)
            .is_some_and(|alike| !(only_not_alike && *alike))
    };
    let used = alike.len() + not_alike.len();
    if used > 0 {
        refined = expanded(gallery, &refined, &is_marked, marks.len(), unit_length)?;
    }
    let depth = k + marks.len() + VOTE_DEPTH;
    let mut ranked: Vec<(usize, f32)> = gallery
        .nearest(&refined, depth)?
        .into_iter()
        .next()
        .unwrap_or_default();
    if !not_alike.is_empty() {
        ranked = outvoted_last(gallery, ranked, &refined, &alike, &not_alike);
    }
    let hits = ranked
        .into_iter()
        .filter(|&(position, _)| !is_marked(position, true))
        .take(k)
        .enumerate()
        .filter_map(|(rank, (position, distance))| {
            let image = gallery.header.images.get(position)?;
            Some(SearchHit {
                rank: rank + 1,
                distance,
                path: image.path.clone(),
                class: image.class.clone(),
            })
        })
        .collect();
    Ok(Refined {
        hits,
        used,
        missing,
    })
}

/// `refined` moved toward the mean of its own first [`EXPANSION`] unmarked results;
/// unchanged when the index keeps no vectors.
fn expanded(
    gallery: &mut Gallery,
    refined: &[f32],
    is_marked: &dyn Fn(usize, bool) -> bool,
    marked_count: usize,
    unit_length: bool,
) -> Result<Vec<f32>> {
    let first = gallery
        .nearest(refined, EXPANSION + marked_count)?
        .into_iter()
        .next()
        .unwrap_or_default();
    let vectors: Vec<Vec<f32>> = first
        .iter()
        .filter(|&&(position, _)| !is_marked(position, false))
        .take(EXPANSION)
        .filter_map(|&(position, _)| gallery.vector(position).map(<[f32]>::to_vec))
        .collect();
    let expansion = Rocchio {
        query: 1.0,
        alike: EXPANSION_WEIGHT,
        not_alike: 0.0,
    };
    Ok(expansion.refine(refined, &vectors, &[], unit_length))
}

/// Index positions with their distances, nearest first.
type Ranked = Vec<(usize, f32)>;

/// `ranked` (positions and distances) with the photos nearer a not-alike photo than to
/// the refined query or any alike photo moved after the others (each part keeps its
/// order). Photos whose vector the index does not keep stay where they are.
fn outvoted_last(
    gallery: &Gallery,
    ranked: Vec<(usize, f32)>,
    refined: &[f32],
    alike: &[Vec<f32>],
    not_alike: &[Vec<f32>],
) -> Vec<(usize, f32)> {
    let squared =
        |a: &[f32], b: &[f32]| -> f32 { a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum() };
    let nearest = |vectors: &mut dyn Iterator<Item = &[f32]>, photo: &[f32]| {
        vectors
            .map(|v| squared(v, photo))
            .fold(f32::INFINITY, f32::min)
    };
    let (mut kept, mut outvoted): (Ranked, Ranked) =
        ranked.into_iter().partition(|&(position, _)| {
            let Some(photo) = gallery.vector(position) else {
                return true;
            };
            let to_positive = nearest(
                &mut std::iter::once(refined).chain(alike.iter().map(Vec::as_slice)),
                photo,
            );
            let to_negative = nearest(&mut not_alike.iter().map(Vec::as_slice), photo);
            to_positive <= to_negative
        });
    kept.append(&mut outvoted);
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refined_query_moves_toward_alike_and_away_from_not_alike() {
        let rocchio = Rocchio {
            query: 1.0,
            alike: 1.0,
            not_alike: 0.5,
        };
        let refined = rocchio.refine(
            &[1.0, 0.0],
            &[vec![0.0, 1.0], vec![0.0, 3.0]],
            &[vec![1.0, 0.0]],
            false,
        );
        assert_eq!(refined, vec![0.5, 2.0]);
        let unit = rocchio.refine(&[1.0, 0.0], &[vec![0.0, 1.0]], &[], true);
        assert!((unit[0] - unit[1]).abs() < 1e-6 && (unit[0] - 0.5f32.sqrt()).abs() < 1e-6);
        // No marks: the query as it was.
        assert_eq!(rocchio.refine(&[0.6, 0.8], &[], &[], true), vec![0.6, 0.8]);
    }

    #[test]
    fn marks_reorder_an_ambiguous_query_and_not_alike_photos_leave_the_results() {
        let dir = tempfile::tempdir().expect("dir");
        let model_path = dir.path().join("tiny.safetensors");
        crate::engine::synthetic::write_tiny_model(&model_path).expect("model");
        let (model, _) =
            crate::engine::model::load_model(&model_path, tch::Device::Cpu).expect("model");
        // Even photos lie along x, odd ones along y; the query sits between, nearer y.
        let mut gallery = crate::engine::index::test_gallery(&[
            [1.0, 0.0],
            [0.0, 1.0],
            [0.9, 0.1],
            [0.1, 0.9],
            [0.8, 0.0],
            [0.0, 0.8],
        ]);
        let query = [0.45, 0.55];
        let plain = gallery.search(&query, 3).expect("search");
        assert!(plain[0].path.to_string_lossy().contains("odd"), "{plain:?}");
        let marks = vec![
            (PathBuf::from("photos/odd/3.jpg"), false),
            (PathBuf::from("photos/even/2.jpg"), true),
        ];
        let refined = refined_search(
            &mut gallery,
            &model,
            &query,
            &marks,
            3,
            &Rocchio::DEFAULT,
            crate::engine::data::DEFAULT_MAX_PIXELS,
        )
        .expect("refined");
        assert_eq!((refined.used, refined.missing), (2, 0));
        assert!(
            refined
                .hits
                .iter()
                .all(|h| h.path.to_string_lossy().contains("even")),
            "{:?}",
            refined.hits
        );
        assert!(
            refined
                .hits
                .iter()
                .all(|h| h.path != Path::new("photos/odd/3.jpg"))
        );
        assert_eq!(
            refined.hits.iter().map(|h| h.rank).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        // A marked photo that is neither indexed nor on disk is counted, not fatal.
        let gone = vec![(dir.path().join("gone.jpg"), true)];
        let refined = refined_search(
            &mut gallery,
            &model,
            &query,
            &gone,
            3,
            &Rocchio::DEFAULT,
            crate::engine::data::DEFAULT_MAX_PIXELS,
        )
        .expect("refined");
        assert_eq!((refined.used, refined.missing), (0, 1));
        assert_eq!(refined.hits, plain);
    }
}
