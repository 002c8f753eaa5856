//! The embedding map: an index's photos on a plane, by the two directions along which
//! their embeddings vary most (PCA), with each photo's class and whether its neighbours
//! say it is mislabelled.
//!
//! The projection is kept (mean and axes), so a query embedded later lands where it
//! belongs on the same map. Written as CSV or drawn as a PNG with a legend for reports made
//! without the window.

use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use serde::{Deserialize, Serialize};

use crate::engine::collection::mislabels::{
    MISLABEL_CONFIDENCE, MISLABEL_NEIGHBOURS, gallery_neighbours, mislabel_evidence,
};
use crate::engine::index::Gallery;
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
    /// The map of an exact index (an approximate one keeps no vectors to project).
    pub fn of_gallery(gallery: &mut Gallery) -> Result<Self> {
        let count = gallery.len();
        let dimension = gallery.header.dimension;
        let vectors = gallery
            .all_vectors()
            .ok_or_else(|| {
                EngineError::Config(
                    "this index is approximate and keeps no vectors to draw; build it with \
                     `likeness index --exact` to draw its map"
                        .to_string(),
                )
            })?
            .to_vec();
        let mut names: Vec<String> = gallery
            .header
            .images
            .iter()
            .filter_map(|i| i.class.clone())
            .collect();
        names.sort();
        names.dedup();
        let classes = gallery
            .header
            .images
            .iter()
            .map(|i| i.class.as_ref().and_then(|c| names.binary_search(c).ok()))
            .collect();
        let paths = gallery.paths();
        let mut map = Self::of_vectors(paths, classes, names, &vectors, dimension)?;
        if map.class_names.len() >= 2 && count > MISLABEL_NEIGHBOURS {
            let neighbours = gallery_neighbours(gallery, MISLABEL_NEIGHBOURS)?;
            for (i, near) in neighbours.iter().enumerate() {
                let Some(own) = map.classes[i] else { continue };
                let near_classes: Vec<usize> =
                    near.iter().filter_map(|&j| map.classes[j]).collect();
                if mislabel_evidence(own, &near_classes)
                    .is_some_and(|(_, _, confidence)| confidence >= MISLABEL_CONFIDENCE)
                {
                    map.suspects.push(i);
                }
            }
        }
        Ok(map)
    }

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
        let mut csv = format!("{}\n", crate::engine::output::MAP_CSV_HEADER);
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

    /// The map drawn as a picture: points coloured by class, likely-mislabelled photos
    /// ringed in red, and a legend of the classes (colour swatches with names).
    pub fn render(&self, width: u32, height: u32) -> RgbImage {
        let mut picture = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
        if self.points.is_empty() {
            return picture;
        }
        let legend_width = if self.class_names.is_empty() {
            0
        } else {
            (width / 4).min(260)
        };
        let margin = 20.0;
        let plot_w = (width - legend_width) as f32 - 2.0 * margin;
        let plot_h = height as f32 - 2.0 * margin;
        let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
        for &[x, y] in &self.points {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        let sx = plot_w / (x1 - x0).max(f32::EPSILON);
        let sy = plot_h / (y1 - y0).max(f32::EPSILON);
        let to_pixel = |[x, y]: [f32; 2]| {
            (
                (margin + (x - x0) * sx) as i64,
                (margin + plot_h - (y - y0) * sy) as i64,
            )
        };
        let dot = |picture: &mut RgbImage, cx: i64, cy: i64, radius: i64, colour: [u8; 3]| {
            for dy in -radius..=radius {
                for dx in -radius..=radius {
                    if dx * dx + dy * dy > radius * radius {
                        continue;
                    }
                    let (x, y) = (cx + dx, cy + dy);
                    if x >= 0 && y >= 0 && (x as u32) < width && (y as u32) < height {
                        picture.put_pixel(x as u32, y as u32, Rgb(colour));
                    }
                }
            }
        };
        for &i in &self.suspects {
            let (x, y) = to_pixel(self.points[i]);
            dot(&mut picture, x, y, 5, [220, 30, 30]);
        }
        for i in 0..self.points.len() {
            let (x, y) = to_pixel(self.points[i]);
            dot(&mut picture, x, y, 2, self.colour(self.classes[i]));
        }
        let left = (width - legend_width) as i64 + 10;
        let mut rows: Vec<(String, [u8; 3])> = self
            .class_names
            .iter()
            .enumerate()
            .map(|(c, name)| (name.clone(), self.colour(Some(c))))
            .collect();
        if self.classes.iter().any(Option::is_none) {
            rows.push(("no class".to_string(), NO_CLASS_COLOUR));
        }
        if !self.suspects.is_empty() {
            rows.push(("likely mislabelled".to_string(), [220, 30, 30]));
        }
        for (row, (name, colour)) in rows.iter().enumerate() {
            let top = 24 + row as i64 * 24;
            dot(&mut picture, left + 6, top + 6, 6, *colour);
            text::draw(&mut picture, name, left + 20, top - 2, 16.0);
        }
        picture
    }
}

/// Copies photos into `folder` (created if needed; names made unique) with a `photos.csv`
/// listing where each came from; returns how many were copied. Nothing is moved.
pub fn copy_photos(paths: &[PathBuf], folder: &Path) -> Result<usize> {
    std::fs::create_dir_all(folder).map_err(|e| EngineError::io(folder, e))?;
    let mut list = String::from("copy,original\n");
    for path in paths {
        let name = path
            .file_name()
            .map_or_else(|| "photo".to_string(), |n| n.to_string_lossy().into_owned());
        let mut target = folder.join(&name);
        let mut n = 1;
        while target.exists() {
            target = folder.join(format!("{n}-{name}"));
            n += 1;
        }
        let bytes = crate::engine::data::decode::read_photo(path)
            .map_err(|reason| EngineError::bad_file(path, reason))?;
        crate::engine::atomic::write_atomic(&target, &bytes)?;
        let quote = |p: &Path| format!("\"{}\"", p.to_string_lossy().replace('"', "\"\""));
        list.push_str(&format!("{},{}\n", quote(&target), quote(path)));
    }
    crate::engine::atomic::write_atomic(&folder.join("photos.csv"), list.as_bytes())?;
    Ok(paths.len())
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

/// Text for the PNG legend, drawn with the font the window uses (Ubuntu Light, from the
/// font data crate egui ships; no GUI code).
mod text {
    use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
    use image::RgbImage;

    pub fn draw(picture: &mut RgbImage, text: &str, left: i64, top: i64, size: f32) {
        let Ok(font) = FontRef::try_from_slice(epaint_default_fonts::UBUNTU_LIGHT) else {
            return;
        };
        let scaled = font.as_scaled(PxScale::from(size));
        let mut x = left as f32;
        let baseline = top as f32 + scaled.ascent();
        for ch in text.chars() {
            let glyph = scaled.scaled_glyph(ch);
            let advance = scaled.h_advance(glyph.id);
            let glyph = ab_glyph::Glyph {
                position: ab_glyph::point(x, baseline),
                ..glyph
            };
            if let Some(outlined) = font.outline_glyph(glyph) {
                let bounds = outlined.px_bounds();
                outlined.draw(|gx, gy, coverage| {
                    let px = bounds.min.x as i64 + gx as i64;
                    let py = bounds.min.y as i64 + gy as i64;
                    if px >= 0
                        && py >= 0
                        && (px as u32) < picture.width()
                        && (py as u32) < picture.height()
                    {
                        let pixel = picture.get_pixel_mut(px as u32, py as u32);
                        for c in &mut pixel.0 {
                            *c = (*c as f32 * (1.0 - coverage)) as u8;
                        }
                    }
                });
            }
            x += advance;
        }
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
    use crate::engine::data::ImageFile;
    use crate::engine::index::GalleryHeader;

    fn gallery(points: &[([f32; 3], &str)]) -> Gallery {
        let header = GalleryHeader {
            format_version: 1,
            model_id: "m".into(),
            model_path: "m.safetensors".into(),
            folder: "photos".into(),
            dimension: 3,
            images: points
                .iter()
                .enumerate()
                .map(|(i, (_, class))| {
                    ImageFile::new(
                        format!("photos/{class}/{i}.jpg").into(),
                        Some(class.to_string()),
                    )
                })
                .collect(),
            skipped: Vec::new(),
            vectors_checksum: None,
            exclude: Vec::new(),
            search: Default::default(),
            ids: Vec::new(),
        };
        Gallery::from_parts(header, points.iter().flat_map(|(v, _)| *v).collect()).expect("gallery")
    }

    #[test]
    fn the_map_spreads_photos_along_their_main_directions_and_flags_a_stray() {
        // Two classes far apart along x; one "b" photo sits among the "a" photos.
        let mut points: Vec<([f32; 3], &str)> = Vec::new();
        for i in 0..12 {
            points.push(([0.0 + i as f32 * 0.01, i as f32 * 0.02, 0.0], "a"));
            points.push(([10.0 + i as f32 * 0.01, i as f32 * 0.02, 0.0], "b"));
        }
        points.push(([0.05, 0.1, 0.0], "b"));
        let mut g = gallery(&points);
        let map = EmbeddingMap::of_gallery(&mut g).expect("map");
        assert_eq!(map.len(), 25);
        assert_eq!(map.class_names, ["a", "b"]);
        assert!(map.explained[0] > 0.9, "{:?}", map.explained);
        // The classes separate along the first axis.
        let a = map.points[0][0];
        let b = map.points[1][0];
        assert!((a - b).abs() > 9.0, "{a} {b}");
        // The stray "b" is flagged; no "a" is.
        assert_eq!(map.suspects, [24]);
        // A query near the "b" cluster lands near it.
        let q = map.project(&[10.0, 0.1, 0.0]);
        assert!((q[0] - b).abs() < 0.5);
        let chosen = map.inside([b - 0.5, -10.0], [b + 0.5, 10.0]);
        assert_eq!(chosen.len(), 12);
        let csv = map.to_csv();
        assert!(csv.starts_with("path,class,x,y,likely_mislabelled\n"));
        assert_eq!(csv.lines().count(), 26);
        assert!(csv.lines().any(|l| l.ends_with(",true")));
        let picture = map.render(400, 300);
        let coloured = picture.pixels().filter(|p| p.0 == CLASS_COLOURS[0]).count();
        assert!(coloured > 20, "points are drawn");
        let dark = picture
            .pixels()
            .filter(|p| p.0.iter().all(|&c| c < 80))
            .count();
        assert!(dark > 20, "the legend has text");
    }
}
