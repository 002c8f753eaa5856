//! The neighbour-preserving map: UMAP (McInnes, Healy and Melville, 2018), written out so
//! that it reports its layout as it forms and stops on a cancel.
//!
//! The embeddings are reduced to their [`REDUCED_DIMENSIONS`] main directions first (PCA:
//! the rest is mostly noise, and every distance after is cheap). Each photo's
//! [`NEIGHBOURS`] nearest photos make a graph whose edges weigh how surely they are
//! neighbours (each photo's distances measured from its nearest one, scaled so that its
//! neighbourhood holds log2(k) of weight; the two directions of an edge joined as a fuzzy
//! union). The layout starts from the 2-D PCA picture and is pulled along the edges and
//! pushed apart by random other photos, with a step that shrinks to nothing over the
//! epochs.

use std::sync::atomic::{AtomicBool, Ordering};

use tch::{Kind, Tensor};

use crate::engine::device::guard_libtorch;
use crate::engine::{EngineError, Result};

/// Dimensions kept before the layout (PCA).
pub const REDUCED_DIMENSIONS: usize = 50;
/// Neighbours of each photo in the graph (UMAP's default).
pub const NEIGHBOURS: usize = 15;
/// Epochs of the layout (UMAP's default for libraries of more than 10 000 points; the
/// measured quality on flowers5-train does not grow with more, docs/benchmarks.md).
pub const EPOCHS: usize = 200;
/// The layout is reported every this many epochs, for the window to draw it forming.
pub const REPORT_EVERY: usize = 10;
/// Random other photos each edge pushes away per sample (UMAP's default).
const NEGATIVE_SAMPLES: usize = 5;
/// The curve of the low-dimensional similarity, 1 / (1 + a d^2b), for UMAP's defaults
/// `min_dist` 0.1 and `spread` 1 (fitted as UMAP fits them).
const CURVE_A: f32 = 1.577;
const CURVE_B: f32 = 0.8951;
/// A single move is at most this long (UMAP clips the gradient at 4).
const CLIP: f32 = 4.0;

/// The reduced photos: `rows` of `dimensions` floats, with the basis that made them.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Reduced {
    pub dimensions: usize,
    pub rows: Vec<f32>,
    pub mean: Vec<f32>,
    /// `dimensions` unit vectors of the original dimension, most variance first.
    pub basis: Vec<Vec<f32>>,
}

impl Reduced {
    pub fn count(&self) -> usize {
        self.rows.len() / self.dimensions.max(1)
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.rows[i * self.dimensions..(i + 1) * self.dimensions]
    }

    /// A vector of the original space in the reduced one.
    pub fn reduce(&self, vector: &[f32]) -> Vec<f32> {
        self.basis
            .iter()
            .map(|axis| along(vector, &self.mean, axis))
            .collect()
    }
}

/// How far `vector` lies along `axis` (a unit vector) from `mean`.
pub fn along(vector: &[f32], mean: &[f32], axis: &[f32]) -> f32 {
    vector
        .iter()
        .zip(mean)
        .zip(axis)
        .map(|((v, m), a)| (v - m) * a)
        .sum()
}

/// Main directions of a set of vectors, from one eigendecomposition of their covariance:
/// the PCA map takes the first two, UMAP's graph all of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Directions {
    /// The vectors' mean, the directions (most variance first) and, when asked for, the
    /// vectors along them (`rows` empty otherwise).
    pub reduced: Reduced,
    /// The share of all the variance along each direction.
    pub shares: Vec<f32>,
}

/// The mean of `vectors` (rows of `dimension`) and at most `kept` of their main
/// directions; with `along_them`, the vectors themselves along those directions.
pub fn principal_directions(
    vectors: &[f32],
    dimension: usize,
    kept: usize,
    along_them: bool,
) -> Result<Directions> {
    let count = vectors.len() / dimension.max(1);
    if count == 0 || dimension == 0 {
        return Err(EngineError::Config("an empty index has no map".to_string()));
    }
    let kept = kept.clamp(1, dimension);
    let failed = |e: tch::TchError| EngineError::Config(format!("computing the map: {e}"));
    guard_libtorch(|| -> Result<Directions> {
        let matrix = Tensor::from_slice(vectors)
            .view([count as i64, dimension as i64])
            .to_kind(Kind::Double);
        let mean = matrix.mean_dim(0, false, Kind::Double);
        let centred = &matrix - mean.unsqueeze(0);
        let covariance = centred.tr().matmul(&centred) / (count.max(2) - 1) as f64;
        let (values, eigenvectors) = covariance.f_linalg_eigh("L").map_err(failed)?;
        let values: Vec<f64> = Vec::<f64>::try_from(values).map_err(failed)?;
        let total = values
            .iter()
            .map(|v| v.max(0.0))
            .sum::<f64>()
            .max(f64::EPSILON);
        // eigh lists the directions by growing variance: the last `kept`, reversed.
        let shares = values
            .iter()
            .rev()
            .take(kept)
            .map(|v| (v.max(0.0) / total) as f32)
            .collect();
        let basis = eigenvectors
            .narrow(1, (dimension - kept) as i64, kept as i64)
            .flip([1]);
        let to_f32 = |t: &Tensor| -> Result<Vec<f32>> {
            Vec::<f32>::try_from(t.to_kind(Kind::Float).flatten(0, -1)).map_err(failed)
        };
        let rows = if along_them {
            to_f32(&centred.matmul(&basis))?
        } else {
            Vec::new()
        };
        Ok(Directions {
            reduced: Reduced {
                dimensions: kept,
                rows,
                mean: to_f32(&mean)?,
                basis: to_f32(&basis.tr().contiguous())?
                    .chunks(dimension)
                    .map(<[f32]>::to_vec)
                    .collect(),
            },
            shares,
        })
    })?
}

/// Each row's `k` nearest other rows (positions and Euclidean distances, nearest first).
pub fn nearest(reduced: &Reduced, k: usize) -> Result<Vec<Vec<(usize, f32)>>> {
    k_nearest(&reduced.rows, reduced.dimensions, &reduced.rows, k, true)
}

/// For each row of `queries`, its `k` nearest rows of `base` (both rows of `dimensions`
/// floats), computed in blocks so that memory stays at a block of distances;
/// `skip_self` leaves out the row of the query's own position.
pub fn k_nearest(
    base: &[f32],
    dimensions: usize,
    queries: &[f32],
    k: usize,
    skip_self: bool,
) -> Result<Vec<Vec<(usize, f32)>>> {
    const BLOCK: usize = 1024;
    let dims = dimensions.max(1);
    let count = base.len() / dims;
    let wanted = (k + usize::from(skip_self)).min(count) as i64;
    let query_count = queries.len() / dims;
    let failed = |e: tch::TchError| EngineError::Config(format!("computing the map: {e}"));
    guard_libtorch(|| -> Result<Vec<Vec<(usize, f32)>>> {
        let all = Tensor::from_slice(base).view([count as i64, dims as i64]);
        let all_norms = all
            .pow_tensor_scalar(2)
            .sum_dim_intlist(1, false, Kind::Float);
        let mut found = Vec::with_capacity(query_count);
        for start in (0..query_count).step_by(BLOCK) {
            let rows = BLOCK.min(query_count - start);
            let block = Tensor::from_slice(&queries[start * dims..(start + rows) * dims])
                .view([rows as i64, dims as i64]);
            let norms = block
                .pow_tensor_scalar(2)
                .sum_dim_intlist(1, true, Kind::Float);
            let squared =
                (norms + all_norms.unsqueeze(0) - block.matmul(&all.tr()) * 2.0).clamp_min(0.0);
            let (distances, positions) = squared.topk(wanted, 1, false, true);
            let distances =
                Vec::<f32>::try_from(distances.sqrt().flatten(0, -1)).map_err(failed)?;
            let positions = Vec::<i64>::try_from(positions.flatten(0, -1)).map_err(failed)?;
            for row in 0..rows {
                let me = start + row;
                let near: Vec<(usize, f32)> = (0..wanted as usize)
                    .map(|j| {
                        let at = row * wanted as usize + j;
                        (positions[at] as usize, distances[at])
                    })
                    .filter(|&(position, _)| !(skip_self && position == me))
                    .take(k)
                    .collect();
                found.push(near);
            }
        }
        Ok(found)
    })?
}

/// The fuzzy neighbour graph: undirected edges (i < j) with their weights in 0..=1.
pub fn neighbour_graph(near: &[Vec<(usize, f32)>]) -> Vec<(usize, usize, f32)> {
    let target = (near.first().map_or(1, Vec::len).max(2) as f32).log2();
    let mut directed: std::collections::HashMap<(usize, usize), f32> =
        std::collections::HashMap::new();
    for (i, neighbours) in near.iter().enumerate() {
        let rho = neighbours
            .iter()
            .map(|&(_, d)| d)
            .find(|&d| d > 0.0)
            .unwrap_or(0.0);
        let weights = |sigma: f32| -> f32 {
            neighbours
                .iter()
                .map(|&(_, d)| (-(d - rho).max(0.0) / sigma).exp())
                .sum()
        };
        // The scale at which the neighbourhood holds log2(k) of weight (bisection, as
        // UMAP's smooth_knn_dist).
        let (mut low, mut high, mut sigma) = (0.0f32, f32::INFINITY, 1.0f32);
        for _ in 0..64 {
            let sum = weights(sigma);
            if (sum - target).abs() < 1e-5 {
                break;
            }
            if sum > target {
                high = sigma;
                sigma = (low + high) / 2.0;
            } else {
                low = sigma;
                sigma = if high.is_finite() {
                    (low + high) / 2.0
                } else {
                    sigma * 2.0
                };
            }
        }
        let sigma = sigma.max(1e-3 * mean_distance(neighbours));
        for &(j, d) in neighbours {
            if j != i {
                directed.insert((i, j), (-(d - rho).max(0.0) / sigma).exp());
            }
        }
    }
    let mut edges: Vec<(usize, usize, f32)> = Vec::new();
    for (&(i, j), &w) in &directed {
        let back = directed.get(&(j, i)).copied();
        if i < j || back.is_none() {
            let back = back.unwrap_or(0.0);
            let (a, b) = (i.min(j), i.max(j));
            edges.push((a, b, w + back - w * back));
        }
    }
    edges.sort_by_key(|e| (e.0, e.1));
    edges
}

fn mean_distance(neighbours: &[(usize, f32)]) -> f32 {
    if neighbours.is_empty() {
        return 1.0;
    }
    neighbours.iter().map(|&(_, d)| d).sum::<f32>() / neighbours.len() as f32
}

/// Lays the graph out on the plane from `start` (one point per photo), for [`EPOCHS`]
/// epochs; `on_forming(epoch, points)` every [`REPORT_EVERY`] epochs. Deterministic for a
/// seed.
pub fn lay_out(
    edges: &[(usize, usize, f32)],
    start: Vec<[f32; 2]>,
    seed: u64,
    cancel: &AtomicBool,
    on_forming: &mut dyn FnMut(usize, &[[f32; 2]]),
) -> Result<Vec<[f32; 2]>> {
    let mut points = start;
    let count = points.len();
    let heaviest = edges.iter().map(|e| e.2).fold(0.0f32, f32::max);
    if count < 2 || heaviest <= 0.0 {
        return Ok(points);
    }
    // Each edge is sampled in proportion to its weight: every `per_sample` epochs.
    let per_sample: Vec<f32> = edges
        .iter()
        .map(|e| {
            if e.2 * EPOCHS as f32 >= heaviest {
                heaviest / e.2
            } else {
                f32::INFINITY
            }
        })
        .collect();
    let per_negative: Vec<f32> = per_sample
        .iter()
        .map(|p| p / NEGATIVE_SAMPLES as f32)
        .collect();
    let mut next_sample = per_sample.clone();
    let mut next_negative = per_negative.clone();
    let mut rng = fastrand::Rng::with_seed(seed);
    let clip = |v: f32| v.clamp(-CLIP, CLIP);
    for epoch in 0..EPOCHS {
        if cancel.load(Ordering::Relaxed) {
            return Err(EngineError::Cancelled);
        }
        let alpha = 1.0 - epoch as f32 / EPOCHS as f32;
        let now = epoch as f32;
        for (e, &(i, j, _)) in edges.iter().enumerate() {
            if next_sample[e] > now {
                continue;
            }
            let (pi, pj) = (points[i], points[j]);
            let delta = [pi[0] - pj[0], pi[1] - pj[1]];
            let dist2 = delta[0] * delta[0] + delta[1] * delta[1];
            if dist2 > 0.0 {
                let coefficient = -2.0 * CURVE_A * CURVE_B * dist2.powf(CURVE_B - 1.0)
                    / (1.0 + CURVE_A * dist2.powf(CURVE_B));
                for d in 0..2 {
                    let step = clip(coefficient * delta[d]) * alpha;
                    points[i][d] += step;
                    points[j][d] -= step;
                }
            }
            next_sample[e] += per_sample[e];
            let negatives = ((now - next_negative[e]) / per_negative[e]).max(0.0) as usize;
            for _ in 0..negatives {
                let k = rng.usize(..count);
                if k == i {
                    continue;
                }
                let (pi, pk) = (points[i], points[k]);
                let delta = [pi[0] - pk[0], pi[1] - pk[1]];
                let dist2 = delta[0] * delta[0] + delta[1] * delta[1];
                let coefficient = if dist2 > 0.0 {
                    2.0 * CURVE_B / ((0.001 + dist2) * (1.0 + CURVE_A * dist2.powf(CURVE_B)))
                } else {
                    0.0
                };
                for d in 0..2 {
                    let step = if coefficient > 0.0 {
                        clip(coefficient * delta[d])
                    } else {
                        CLIP
                    };
                    points[i][d] += step * alpha;
                }
            }
            next_negative[e] += negatives as f32 * per_negative[e];
        }
        if (epoch + 1) % REPORT_EVERY == 0 {
            on_forming(epoch + 1, &points);
        }
    }
    Ok(points)
}

/// Scales `points` into a 20-wide square around the origin (UMAP starts from a layout
/// of that size), keeping their shape.
pub fn scaled_start(points: &[[f32; 2]], seed: u64) -> Vec<[f32; 2]> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let extent = points
        .iter()
        .flat_map(|p| p.iter().map(|v| v.abs()))
        .fold(0.0f32, f32::max)
        .max(f32::EPSILON);
    points
        .iter()
        .map(|p| {
            // A little noise, so that photos at one point can part.
            let mut noise = || (rng.f32() - 0.5) * 1e-4;
            [
                p[0] / extent * 10.0 + noise(),
                p[1] / extent * 10.0 + noise(),
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::projection::{EmbeddingMap, MapInput, MapMethod};

    fn umap(vectors: &[f32], dimension: usize) -> Vec<[f32; 2]> {
        let count = vectors.len() / dimension;
        let input = MapInput {
            paths: vec![std::path::PathBuf::new(); count],
            classes: vec![None; count],
            class_names: Vec::new(),
            vectors,
            dimension,
        };
        EmbeddingMap::of_vectors_with(input, MapMethod::Umap, &AtomicBool::new(false), &mut |_| {})
            .expect("map")
            .points
    }

    #[test]
    fn odd_libraries_still_get_a_map_of_finite_points() {
        // Every photo the same, fewer photos than neighbours, one photo, two.
        for (vectors, dimension) in [
            (vec![0.5f32; 40 * 8], 8),
            ((0..3 * 4).map(|i| i as f32).collect::<Vec<_>>(), 4),
            (vec![1.0, 2.0], 2),
            (vec![1.0, 2.0, 3.0, 4.0], 2),
        ] {
            let points = umap(&vectors, dimension);
            assert_eq!(points.len(), vectors.len() / dimension);
            assert!(points.iter().flatten().all(|v| v.is_finite()), "{points:?}");
        }
    }

    #[test]
    fn two_far_groups_stay_apart_and_a_cancel_stops_the_layout() {
        let mut rng = fastrand::Rng::with_seed(2);
        let vectors: Vec<f32> = (0..200)
            .flat_map(|i| {
                let centre = if i < 100 { 0.0 } else { 20.0 };
                (0..6).map(|_| centre + rng.f32()).collect::<Vec<_>>()
            })
            .collect();
        let points = umap(&vectors, 6);
        let mean = |range: std::ops::Range<usize>| {
            let n = range.len() as f32;
            range.fold([0.0f32; 2], |acc, i| {
                [acc[0] + points[i][0] / n, acc[1] + points[i][1] / n]
            })
        };
        let (a, b) = (mean(0..100), mean(100..200));
        let between = ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
        let spread = (0..100)
            .map(|i| ((points[i][0] - a[0]).powi(2) + (points[i][1] - a[1]).powi(2)).sqrt())
            .fold(0.0f32, f32::max);
        assert!(between > spread, "{between} against {spread}");
        let reduced = principal_directions(&vectors, 6, REDUCED_DIMENSIONS, true)
            .expect("reduced")
            .reduced;
        let edges = neighbour_graph(&nearest(&reduced, NEIGHBOURS).expect("near"));
        let cancel = AtomicBool::new(true);
        let stopped = lay_out(&edges, vec![[0.0, 0.0]; 200], 1, &cancel, &mut |_, _| {});
        assert!(matches!(stopped, Err(EngineError::Cancelled)));
    }
}
