//! Placing embeddings on a plane: the map of a library, a training run's before/after
//! view, and the window's Map tab all draw an [`EmbeddingMap`].
//!
//! Two ways ([`MapMethod`]), through one function ([`EmbeddingMap::of_vectors_with`]):
//! PCA, the two directions along which the embeddings vary most (instant, linear: what the
//! before/after view compares), and UMAP ([`layout`]), which keeps each photo's neighbours
//! its neighbours on the plane, reported as it forms. Either way a query embedded later
//! lands where it belongs on the same map (PCA: along the kept axes; UMAP: among its
//! nearest photos). Written as CSV or drawn as a PNG with a legend for reports made
//! without the window. Below training and the collection tools: it knows vectors, classes
//! and paths, no index or model.

pub mod layout;
mod picture;
pub mod quality;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize};

use crate::engine::{EngineError, Result};
use layout::Reduced;

/// Photos laid out by UMAP at most; past it a sample is laid out and the rest placed
/// among their nearest sampled photos (the map says so).
pub const MAP_SAMPLE: usize = 10_000;
/// Nearest sampled photos that place a photo left out of the layout, or a query.
const PLACING_NEIGHBOURS: usize = 5;

/// How a map places the photos.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MapMethod {
    /// The two main directions of the embeddings: instant, but a linear picture mixes
    /// neighbourhoods that the embedding keeps apart.
    Pca,
    /// UMAP: neighbours stay neighbours (docs/benchmarks.md, "The map").
    #[default]
    Umap,
}

impl MapMethod {
    pub fn label(self) -> &'static str {
        match self {
            Self::Pca => "PCA",
            Self::Umap => "UMAP",
        }
    }
}

/// A map forming: after `epoch` of `epochs`, the map with every photo's place so far.
#[derive(Debug, Clone, Copy)]
pub struct Forming<'a> {
    pub epoch: usize,
    pub epochs: usize,
    pub map: &'a EmbeddingMap,
}

/// What places a query on a UMAP map: the reduced photos that were laid out, and where.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Placement {
    reduced: Reduced,
    /// Positions (in the map) of the laid-out photos, row by row of `reduced`.
    laid_out: Vec<usize>,
}

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
    /// Share of the embeddings' variance along each PCA axis.
    pub explained: [f32; 2],
    #[serde(default = "pca")]
    pub method: MapMethod,
    /// Photos UMAP laid out when the library had more than [`MAP_SAMPLE`]; the others
    /// were placed among their nearest sampled photos.
    #[serde(default)]
    pub sampled: Option<usize>,
    mean: Vec<f32>,
    axes: [Vec<f32>; 2],
    #[serde(default)]
    placement: Option<Placement>,
}

/// Maps saved before the method was recorded were PCA maps.
fn pca() -> MapMethod {
    MapMethod::Pca
}

impl EmbeddingMap {
    /// The PCA map of `vectors` (the before/after view's; see [`Self::of_vectors_with`]).
    pub fn of_vectors(
        paths: Vec<PathBuf>,
        classes: Vec<Option<usize>>,
        class_names: Vec<String>,
        vectors: &[f32],
        dimension: usize,
    ) -> Result<Self> {
        let input = MapInput {
            paths,
            classes,
            class_names,
            vectors,
            dimension,
        };
        Self::of_vectors_with(input, MapMethod::Pca, &AtomicBool::new(false), &mut |_| {})
    }

    /// The map of `vectors` (rows of `dimension` floats), one per path, with their
    /// classes (indices into `class_names`), by `method`; no mislabelled marks. UMAP
    /// reports its layout as it forms (the PCA picture first) and stops on `cancel`.
    pub fn of_vectors_with(
        input: MapInput<'_>,
        method: MapMethod,
        cancel: &AtomicBool,
        on_forming: &mut dyn FnMut(Forming<'_>),
    ) -> Result<Self> {
        let MapInput {
            paths,
            classes,
            class_names,
            vectors,
            dimension,
        } = input;
        let count = vectors.len() / dimension.max(1);
        if paths.len() != count || classes.len() != count {
            return Err(EngineError::Config(format!(
                "a map of {count} vectors needs as many paths and classes ({} and {})",
                paths.len(),
                classes.len()
            )));
        }
        // One decomposition for both pictures: UMAP starts from the PCA one and builds
        // its graph in the same reduced space.
        let umap = method == MapMethod::Umap;
        let directions =
            layout::principal_directions(vectors, dimension, layout::REDUCED_DIMENSIONS, umap)?;
        let axis = |i: usize| {
            directions
                .reduced
                .basis
                .get(i)
                .cloned()
                .unwrap_or_else(|| vec![0.0; dimension])
        };
        let share = |i: usize| directions.shares.get(i).copied().unwrap_or(0.0);
        let (axes, explained) = ([axis(0), axis(1)], [share(0), share(1)]);
        let mut map = Self {
            paths,
            points: Vec::with_capacity(count),
            classes,
            class_names,
            suspects: Vec::new(),
            explained,
            method: MapMethod::Pca,
            sampled: None,
            mean: directions.reduced.mean.clone(),
            axes,
            placement: None,
        };
        for i in 0..count {
            let point = map.project(&vectors[i * dimension..(i + 1) * dimension]);
            map.points.push(point);
        }
        if umap {
            map.lay_out_neighbours(directions.reduced, cancel, on_forming)?;
        }
        Ok(map)
    }

    /// Moves the PCA points to the UMAP layout (of a sample past [`MAP_SAMPLE`] photos,
    /// the others placed among their nearest sampled photos).
    fn lay_out_neighbours(
        &mut self,
        mut reduced: Reduced,
        cancel: &AtomicBool,
        on_forming: &mut dyn FnMut(Forming<'_>),
    ) -> Result<()> {
        let count = self.points.len();
        // The PCA picture is the first one shown, at once; the layout moves it after.
        let mut forming = self.clone();
        forming.method = MapMethod::Umap;
        forming.sampled = (count > MAP_SAMPLE).then_some(MAP_SAMPLE);
        on_forming(Forming {
            epoch: 0,
            epochs: layout::EPOCHS,
            map: &forming,
        });
        let laid_out: Vec<usize> = if count > MAP_SAMPLE {
            (0..MAP_SAMPLE).map(|i| i * count / MAP_SAMPLE).collect()
        } else {
            (0..count).collect()
        };
        let rest: Vec<usize> = if count > MAP_SAMPLE {
            let mut chosen = vec![false; count];
            laid_out.iter().for_each(|&i| chosen[i] = true);
            (0..count).filter(|&i| !chosen[i]).collect()
        } else {
            Vec::new()
        };
        let rows_of = |positions: &[usize], reduced: &Reduced| -> Vec<f32> {
            positions
                .iter()
                .flat_map(|&i| reduced.row(i).iter().copied())
                .collect()
        };
        let rest_rows = rows_of(&rest, &reduced);
        reduced.rows = rows_of(&laid_out, &reduced);
        let near = layout::nearest(&reduced, layout::NEIGHBOURS)?;
        let edges = layout::neighbour_graph(&near);
        let start: Vec<[f32; 2]> = laid_out.iter().map(|&i| self.points[i]).collect();
        // Each photo left out follows its nearest laid-out photos, weighted by nearness.
        let followers = layout::k_nearest(
            &reduced.rows,
            reduced.dimensions,
            &rest_rows,
            PLACING_NEIGHBOURS,
            false,
        )?;
        let place = |laid: &[[f32; 2]], points: &mut Vec<[f32; 2]>| {
            for (row, &i) in laid_out.iter().enumerate() {
                points[i] = laid[row];
            }
            for (near, &i) in followers.iter().zip(&rest) {
                points[i] = weighted_place(near, laid);
            }
        };
        let laid = layout::lay_out(
            &edges,
            layout::scaled_start(&start, 1),
            1,
            cancel,
            &mut |epoch, laid| {
                place(laid, &mut forming.points);
                on_forming(Forming {
                    epoch,
                    epochs: layout::EPOCHS,
                    map: &forming,
                });
            },
        )?;
        place(&laid, &mut self.points);
        self.method = MapMethod::Umap;
        self.sampled = (count > MAP_SAMPLE).then_some(MAP_SAMPLE);
        self.placement = Some(Placement { reduced, laid_out });
        Ok(())
    }

    /// Where an embedding (of the model that made the index) lands on this map.
    pub fn project(&self, vector: &[f32]) -> [f32; 2] {
        if let Some(placement) = &self.placement {
            let reduced = placement.reduced.reduce(vector);
            let mut near: Vec<(usize, f32)> = (0..placement.reduced.count())
                .map(|row| {
                    let d2: f32 = placement
                        .reduced
                        .row(row)
                        .iter()
                        .zip(&reduced)
                        .map(|(a, b)| (a - b) * (a - b))
                        .sum();
                    (row, d2.sqrt())
                })
                .collect();
            let keep = PLACING_NEIGHBOURS.min(near.len());
            if keep == 0 {
                return [0.0, 0.0];
            }
            near.select_nth_unstable_by(keep - 1, |a, b| a.1.total_cmp(&b.1));
            near.truncate(keep);
            let laid: Vec<[f32; 2]> = placement.laid_out.iter().map(|&i| self.points[i]).collect();
            return weighted_place(&near, &laid);
        }
        [
            layout::along(vector, &self.mean, &self.axes[0]),
            layout::along(vector, &self.mean, &self.axes[1]),
        ]
    }

    /// How the photos were placed, for the window and the command line alike.
    pub fn describe_placement(&self) -> String {
        match (self.method, self.sampled) {
            (MapMethod::Pca, _) => format!(
                "PCA: the axes hold {:.0}% and {:.0}% of the variance",
                self.explained[0] * 100.0,
                self.explained[1] * 100.0
            ),
            (MapMethod::Umap, None) => "UMAP: nearest photos kept near".to_string(),
            (MapMethod::Umap, Some(laid_out)) => {
                format!("UMAP of {laid_out} photos; the others placed among their nearest")
            }
        }
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

/// What a map is made of: one path and class per row of `vectors` (`dimension` floats).
pub struct MapInput<'a> {
    pub paths: Vec<PathBuf>,
    pub classes: Vec<Option<usize>>,
    pub class_names: Vec<String>,
    pub vectors: &'a [f32],
    pub dimension: usize,
}

/// The place of a photo among `near` laid-out photos (row, distance): their places
/// weighted by nearness (an exact match takes its place).
fn weighted_place(near: &[(usize, f32)], laid: &[[f32; 2]]) -> [f32; 2] {
    let (mut x, mut y, mut total) = (0.0f32, 0.0f32, 0.0f32);
    for &(row, distance) in near {
        let weight = 1.0 / (distance + 1e-6);
        x += laid[row][0] * weight;
        y += laid[row][1] * weight;
        total += weight;
    }
    if total > 0.0 {
        [x / total, y / total]
    } else {
        [0.0, 0.0]
    }
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
