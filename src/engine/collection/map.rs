//! The map of a library: an exact index's photos on a plane ([`EmbeddingMap`]), with
//! each photo's class and whether its neighbours say it is mislabelled, and copying the
//! photos a person picked on it.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use crate::engine::collection::mislabels::{
    MISLABEL_CONFIDENCE, MISLABEL_NEIGHBOURS, gallery_neighbours, mislabel_evidence,
};
use crate::engine::index::Gallery;
use crate::engine::projection::{EmbeddingMap, Forming, MapInput, MapMethod};
use crate::engine::{EngineError, Result};

impl EmbeddingMap {
    /// The map of an exact index (an approximate one keeps no vectors to project) by
    /// `method`, reported as it forms, with the photos its neighbours say are
    /// mislabelled.
    pub fn of_gallery(
        gallery: &mut Gallery,
        method: MapMethod,
        cancel: &AtomicBool,
        on_forming: &mut dyn FnMut(Forming<'_>),
    ) -> Result<Self> {
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
        let (names, classes) = gallery.class_labels();
        let paths = gallery.paths();
        let input = MapInput {
            paths,
            classes,
            class_names: names,
            vectors: &vectors,
            dimension,
        };
        let mut map = Self::of_vectors_with(input, method, cancel, on_forming)?;
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

#[cfg(test)]
mod tests {
    use super::*;
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
        let map =
            EmbeddingMap::of_gallery(&mut g, MapMethod::Pca, &AtomicBool::new(false), &mut |_| {})
                .expect("map");
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
        let coloured = picture
            .pixels()
            .filter(|p| p.0 == crate::engine::projection::CLASS_COLOURS[0])
            .count();
        assert!(coloured > 20, "points are drawn");
        let dark = picture
            .pixels()
            .filter(|p| p.0.iter().all(|&c| c < 80))
            .count();
        assert!(dark > 20, "the legend has text");
    }
}
