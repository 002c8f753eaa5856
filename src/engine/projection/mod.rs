//! Placing embeddings on a plane: the map of a library, a training run's before/after
//! view, and the window's Map tab all draw an [`EmbeddingMap`].
//!
//! Today's projection is PCA: the two directions along which the embeddings vary most. The
//! projection is kept (mean and axes), so a query embedded later lands where it belongs
//! on the same map. Written as CSV or drawn as a PNG with a legend for reports made
//! without the window. Below training and the collection tools: it knows vectors, classes
//! and paths, no index or model.

mod picture;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::engine::{EngineError, Result};

/// Distinct colours for classes, cycled when there are more: Okabe and Ito's palette for
/// colour-blind readers, ordered so that the first five (the size of a typical library)
/// are the five most unlike each other and both backgrounds (the window's dark one, the
/// PNG's white one): at least 53 apart in CIE L*a*b* (ΔE 1976), where orange and
/// vermillion, both among the first five before, were 33 apart and a trial took dandelion
/// and tulip for one class (issue #41).
pub const CLASS_COLOURS: [[u8; 3]; 10] = [
    [0, 114, 178],
    [213, 94, 0],
    [0, 158, 115],
    [204, 121, 167],
    [240, 228, 66],
    [86, 180, 233],
    [230, 159, 0],
    [120, 120, 120],
    [148, 103, 189],
    [140, 86, 75],
];

/// Photos with no class folder.
pub const NO_CLASS_COLOUR: [u8; 3] = [170, 170, 170];

/// An index's photos placed on a plane.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingMap {
    pub paths: Vec<PathBuf>,
    /// Position of each photo on the map.
    pub points: Vec<[f32; 2]>,
    /// Each photo's class (an index into `class_names`), if it is in a class folder.
    pub classes: Vec<Option<usize>>,
    pub class_names: Vec<String>,
    /// Photos whose nearest neighbours mostly say another class (positions).
    pub suspects: Vec<usize>,
    /// Share of the embeddings' variance along each axis.
    pub explained: [f32; 2],
    mean: Vec<f32>,
    axes: [Vec<f32>; 2],
}

impl EmbeddingMap {
    /// The map of `vectors` (rows of `dimension` floats), one per path, with their
    /// classes (indices into `class_names`). No mislabelled marks.
    pub fn of_vectors(
        paths: Vec<PathBuf>,
        classes: Vec<Option<usize>>,
        class_names: Vec<String>,
        vectors: &[f32],
        dimension: usize,
    ) -> Result<Self> {
        let count = vectors.len() / dimension.max(1);
        if paths.len() != count || classes.len() != count {
            return Err(EngineError::Config(format!(
                "a map of {count} vectors needs as many paths and classes ({} and {})",
                paths.len(),
                classes.len()
            )));
        }
        let (mean, axes, explained) = principal_axes(vectors, dimension)?;
        let mut map = Self {
            paths,
            points: Vec::with_capacity(count),
            classes,
            class_names,
            suspects: Vec::new(),
            explained,
            mean,
            axes,
        };
        for i in 0..count {
            let point = map.project(&vectors[i * dimension..(i + 1) * dimension]);
            map.points.push(point);
        }
        Ok(map)
    }

    /// Where an embedding (of the model that made the index) lands on this map.
    pub fn project(&self, vector: &[f32]) -> [f32; 2] {
        let along = |axis: &[f32]| -> f32 {
            vector
                .iter()
                .zip(&self.mean)
                .zip(axis)
                .map(|((v, m), a)| (v - m) * a)
                .sum()
        };
        [along(&self.axes[0]), along(&self.axes[1])]
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Dimension of the embeddings it projects.
    pub fn dimension(&self) -> usize {
        self.mean.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Photos inside the rectangle spanned by two corners (map coordinates).
    pub fn inside(&self, a: [f32; 2], b: [f32; 2]) -> Vec<usize> {
        let (x0, x1) = (a[0].min(b[0]), a[0].max(b[0]));
        let (y0, y1) = (a[1].min(b[1]), a[1].max(b[1]));
        (0..self.points.len())
            .filter(|&i| {
                let [x, y] = self.points[i];
                (x0..=x1).contains(&x) && (y0..=y1).contains(&y)
            })
            .collect()
    }

    /// A class's colour.
    pub fn colour(&self, class: Option<usize>) -> [u8; 3] {
        class.map_or(NO_CLASS_COLOUR, |c| CLASS_COLOURS[c % CLASS_COLOURS.len()])
    }

    /// The map as CSV: path, class, x, y, suspect.
    pub fn to_csv(&self) -> String {
        let mut csv = format!("{}\n", crate::engine::files::MAP_CSV_HEADER);
        for i in 0..self.points.len() {
            let path = crate::engine::csv::field(&self.paths[i].to_string_lossy());
            let class = crate::engine::csv::field(
                self.classes[i].map_or("", |c| self.class_names[c].as_str()),
            );
            csv.push_str(&format!(
                "{path},{class},{:.6},{:.6},{}\n",
                self.points[i][0],
                self.points[i][1],
                self.suspects.contains(&i)
            ));
        }
        csv
    }
}

/// The mean, the two principal axes (unit vectors) and the share of variance along each.
type Projection = (Vec<f32>, [Vec<f32>; 2], [f32; 2]);

fn principal_axes(vectors: &[f32], dimension: usize) -> Result<Projection> {
    let count = vectors.len() / dimension;
    if count == 0 {
        return Err(EngineError::Config("an empty index has no map".to_string()));
    }
    let failed = |e: tch::TchError| EngineError::Config(format!("computing the map: {e}"));
    let matrix = tch::Tensor::from_slice(vectors)
        .view([count as i64, dimension as i64])
        .to_kind(tch::Kind::Double);
    let mean = matrix.mean_dim(0, false, tch::Kind::Double);
    let centred = &matrix - mean.unsqueeze(0);
    let covariance = centred.tr().matmul(&centred) / (count.max(2) - 1) as f64;
    let (values, vectors_t) = covariance.f_linalg_eigh("L").map_err(failed)?;
    let values: Vec<f64> = Vec::<f64>::try_from(values).map_err(failed)?;
    let total: f64 = values
        .iter()
        .map(|v| v.max(0.0))
        .sum::<f64>()
        .max(f64::EPSILON);
    let last = dimension as i64 - 1;
    let axis = |column: i64| -> Result<Vec<f32>> {
        if column < 0 {
            return Ok(vec![0.0; dimension]);
        }
        Vec::<f64>::try_from(vectors_t.select(1, column))
            .map(|v| v.into_iter().map(|x| x as f32).collect())
            .map_err(failed)
    };
    let share = |i: i64| {
        usize::try_from(i)
            .ok()
            .and_then(|i| values.get(i))
            .map_or(0.0, |v| (v.max(0.0) / total) as f32)
    };
    let mean: Vec<f32> = Vec::<f64>::try_from(mean)
        .map_err(failed)?
        .into_iter()
        .map(|x| x as f32)
        .collect();
    Ok((
        mean,
        [axis(last)?, axis(last - 1)?],
        [share(last), share(last - 1)],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CIE L*a*b* of an sRGB colour (D65).
    fn lab(rgb: [u8; 3]) -> [f64; 3] {
        let linear = |u: u8| {
            let u = f64::from(u) / 255.0;
            if u > 0.04045 {
                ((u + 0.055) / 1.055).powf(2.4)
            } else {
                u / 12.92
            }
        };
        let [r, g, b] = rgb.map(linear);
        let x = (r * 0.4124 + g * 0.3576 + b * 0.1805) / 0.95047;
        let y = r * 0.2126 + g * 0.7152 + b * 0.0722;
        let z = (r * 0.0193 + g * 0.1192 + b * 0.9505) / 1.08883;
        let f = |t: f64| {
            if t > 0.008856 {
                t.cbrt()
            } else {
                7.787 * t + 16.0 / 116.0
            }
        };
        [
            116.0 * f(y) - 16.0,
            500.0 * (f(x) - f(y)),
            200.0 * (f(y) - f(z)),
        ]
    }

    #[test]
    fn the_first_five_class_colours_are_clearly_different_from_each_other_and_the_background() {
        let distance = |a: [u8; 3], b: [u8; 3]| {
            let (a, b) = (lab(a), lab(b));
            ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
        };
        for (i, &a) in CLASS_COLOURS[..5].iter().enumerate() {
            for &b in &CLASS_COLOURS[i + 1..5] {
                assert!(distance(a, b) > 50.0, "{a:?} and {b:?}: {}", distance(a, b));
            }
            for background in [[255, 255, 255], [27, 27, 27]] {
                assert!(distance(a, background) > 50.0, "{a:?} on {background:?}");
            }
        }
    }
}
