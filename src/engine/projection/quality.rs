//! How faithful a map is to the embedding it draws: trustworthiness (Venna and Kaski,
//! 2001; scikit-learn's definition) and the share of each photo's nearest photos on the
//! map that share its folder, against the same share in the embedding.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::layout::k_nearest;
use crate::engine::device::guard_libtorch;
use crate::engine::{EngineError, Result};

/// A map's faithfulness at `k` neighbours.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MapQuality {
    pub k: usize,
    /// 1 when every photo's `k` nearest on the map are among its `k` nearest in the
    /// embedding; lower the farther (by rank in the embedding) the intruders come from.
    pub trustworthiness: f64,
    /// Mean share of a labelled photo's `k` nearest on the map in its folder.
    pub folder_agreement_map: f64,
    /// The same share with its `k` nearest in the embedding.
    pub folder_agreement_embedding: f64,
}

/// Measures `points` (one per row of `vectors`, `dimension` floats each) at `k`.
pub fn map_quality(
    vectors: &[f32],
    dimension: usize,
    points: &[[f32; 2]],
    classes: &[Option<usize>],
    k: usize,
) -> Result<MapQuality> {
    let count = points.len();
    if count <= 2 * k + 1 || vectors.len() != count * dimension {
        return Err(EngineError::Config(format!(
            "measuring a map at {k} neighbours needs more than {} photos and one vector each",
            2 * k + 1
        )));
    }
    let flat_points: Vec<f32> = points.iter().flatten().copied().collect();
    let on_map = k_nearest(&flat_points, 2, &flat_points, k, true)?;
    let in_embedding = k_nearest(vectors, dimension, vectors, k, true)?;
    let agreement = |near: &[Vec<(usize, f32)>]| {
        let (mut sum, mut labelled) = (0.0, 0usize);
        for (i, neighbours) in near.iter().enumerate() {
            let Some(own) = classes[i] else { continue };
            let same = neighbours
                .iter()
                .filter(|&&(j, _)| classes[j] == Some(own))
                .count();
            sum += same as f64 / neighbours.len().max(1) as f64;
            labelled += 1;
        }
        sum / labelled.max(1) as f64
    };
    // Ranks in the embedding of each map neighbour that is not an embedding neighbour:
    // rank = 1 + how many photos are nearer to the photo than it is.
    let intruders: Vec<Vec<usize>> = on_map
        .iter()
        .zip(&in_embedding)
        .map(|(map_near, near)| {
            map_near
                .iter()
                .map(|&(j, _)| j)
                .filter(|j| !near.iter().any(|&(n, _)| n == *j))
                .collect()
        })
        .collect();
    let penalty = intruder_ranks(vectors, dimension, &intruders, k)?;
    let (n, k_f) = (count as f64, k as f64);
    let trustworthiness = 1.0 - 2.0 / (n * k_f * (2.0 * n - 3.0 * k_f - 1.0)) * penalty;
    Ok(MapQuality {
        k,
        trustworthiness,
        folder_agreement_map: agreement(&on_map),
        folder_agreement_embedding: agreement(&in_embedding),
    })
}

/// Σ (rank − k) over every photo's intruders, ranks counted in blocks of rows.
fn intruder_ranks(
    vectors: &[f32],
    dimension: usize,
    intruders: &[Vec<usize>],
    k: usize,
) -> Result<f64> {
    const BLOCK: usize = 256;
    let count = intruders.len();
    let failed = |e: tch::TchError| EngineError::Config(format!("measuring the map: {e}"));
    guard_libtorch(|| -> Result<f64> {
        let all = Tensor::from_slice(vectors).view([count as i64, dimension as i64]);
        let norms = all
            .pow_tensor_scalar(2)
            .sum_dim_intlist(1, false, Kind::Float);
        let mut penalty = 0.0;
        for start in (0..count).step_by(BLOCK) {
            let rows = BLOCK.min(count - start);
            let block = all.narrow(0, start as i64, rows as i64);
            let squared = norms.narrow(0, start as i64, rows as i64).unsqueeze(1)
                + norms.unsqueeze(0)
                - block.matmul(&all.tr()) * 2.0;
            let flat = Vec::<f32>::try_from(squared.flatten(0, -1)).map_err(failed)?;
            for row in 0..rows {
                let me = start + row;
                let distances = &flat[row * count..(row + 1) * count];
                for &j in &intruders[me] {
                    let to_j = distances[j];
                    let nearer = distances
                        .iter()
                        .enumerate()
                        .filter(|&(other, &d)| other != me && d < to_j)
                        .count();
                    penalty += ((nearer + 1) as f64 - k as f64).max(0.0);
                }
            }
        }
        Ok(penalty)
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_of_the_plane_is_fully_trustworthy_and_a_shuffle_is_not() {
        let mut rng = fastrand::Rng::with_seed(3);
        let points: Vec<[f32; 2]> = (0..200)
            .map(|i| [(i % 2) as f32 * 50.0 + rng.f32(), rng.f32()])
            .collect();
        let vectors: Vec<f32> = points.iter().flatten().copied().collect();
        let classes: Vec<Option<usize>> = (0..200).map(|i| Some(i % 2)).collect();
        let same = map_quality(&vectors, 2, &points, &classes, 10).expect("quality");
        assert!((same.trustworthiness - 1.0).abs() < 1e-9, "{same:?}");
        assert!((same.folder_agreement_map - 1.0).abs() < 1e-9);
        let mut shuffled = points.clone();
        rng.shuffle(&mut shuffled);
        let lost = map_quality(&vectors, 2, &shuffled, &classes, 10).expect("quality");
        assert!(lost.trustworthiness < 0.7, "{lost:?}");
        assert!(lost.folder_agreement_map < 0.7);
        assert!((lost.folder_agreement_embedding - 1.0).abs() < 1e-9);
    }
}
