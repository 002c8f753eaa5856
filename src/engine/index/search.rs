//! Nearest neighbours in a gallery, and a search session: an index opened with the model
//! that built it.

use std::path::Path;

use faiss::Index;

use super::embed::embed_image;
use super::{Gallery, SearchHit, Store};
use crate::engine::data::{TargetSize, decode_rgb_sized};
use crate::engine::model::{EmbeddingModel, LoadedModel};
use crate::engine::{EngineError, Result};

impl Gallery {
    /// The index's own distance scale: the median distance from a photo to its nearest
    /// other photo, over up to 200 photos spread over the index. `None` for an
    /// approximate index (no raw vectors) or one of fewer than two photos.
    pub fn typical_neighbour_distance(&mut self) -> Option<f32> {
        const SAMPLE: usize = 200;
        let count = self.len();
        if count < 2 {
            return None;
        }
        let picked: Vec<usize> = (0..SAMPLE.min(count))
            .map(|i| i * count / SAMPLE.min(count))
            .collect();
        let mut queries = Vec::with_capacity(picked.len() * self.header.dimension);
        for &i in &picked {
            queries.extend_from_slice(self.vector(i)?);
        }
        let nearest = self.nearest(&queries, 2).ok()?;
        let mut distances: Vec<f32> = picked
            .iter()
            .zip(&nearest)
            .filter_map(|(&i, hits)| hits.iter().find(|(j, _)| *j != i).map(|(_, d)| *d))
            .filter(|d| d.is_finite())
            .collect();
        if distances.is_empty() {
            return None;
        }
        distances.sort_by(f32::total_cmp);
        Some(distances[distances.len() / 2])
    }

    /// Gallery positions and distances of the `k` nearest images to each query vector
    /// (rows of `queries`), nearest first.
    pub fn nearest(&mut self, queries: &[f32], k: usize) -> Result<Vec<Vec<(usize, f32)>>> {
        let dimension = self.header.dimension;
        if !queries.len().is_multiple_of(dimension) {
            return Err(EngineError::Config(format!(
                "query vectors have {} values, not a multiple of the index dimension {dimension}",
                queries.len()
            )));
        }
        let query_count = queries.len() / dimension;
        let k = k.min(self.len());
        if k == 0 || query_count == 0 {
            return Ok(vec![Vec::new(); query_count]);
        }
        match &mut self.store {
            Store::Exact { index, .. } => {
                let result = index.search(queries, k)?;
                Ok((0..query_count)
                    .map(|q| {
                        (0..k)
                            .filter_map(|j| {
                                let position = result.labels[q * k + j].get()? as usize;
                                // faiss can return tiny negative distances from rounding.
                                Some((position, result.distances[q * k + j].max(0.0)))
                            })
                            .collect()
                    })
                    .collect())
            }
            Store::Approximate(index) => {
                let ids = &self.header.ids;
                Ok(index
                    .search(queries, k)?
                    .into_iter()
                    .map(|row| {
                        row.into_iter()
                            .filter_map(|(id, distance)| {
                                Some((ids.binary_search(&id).ok()?, distance))
                            })
                            .collect()
                    })
                    .collect())
            }
        }
    }

    /// The `k` nearest images to each query vector, as search hits.
    pub fn search_many(&mut self, queries: &[f32], k: usize) -> Result<Vec<Vec<SearchHit>>> {
        let nearest = self.nearest(queries, k)?;
        Ok(nearest
            .into_iter()
            .map(|neighbours| {
                neighbours
                    .into_iter()
                    .filter_map(|(position, distance)| {
                        Some((self.header.images.get(position)?, distance))
                    })
                    .enumerate()
                    .map(|(rank, (image, distance))| SearchHit {
                        rank: rank + 1,
                        distance,
                        path: image.path.clone(),
                        class: image.class.clone(),
                    })
                    .collect()
            })
            .collect())
    }

    /// The `k` nearest images to one query vector.
    pub fn search(&mut self, query: &[f32], k: usize) -> Result<Vec<SearchHit>> {
        Ok(self
            .search_many(query, k)?
            .into_iter()
            .next()
            .unwrap_or_default())
    }
}

/// An index opened together with the model that built it, ready to search.
pub struct SearchSession {
    pub gallery: Gallery,
    /// The model that built the gallery (queries are embedded with it).
    pub model: LoadedModel,
    pub max_pixels: u64,
}

impl std::fmt::Debug for SearchSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchSession")
            .field("gallery", &self.gallery)
            .field("model_path", &self.model.path)
            .finish()
    }
}

impl SearchSession {
    /// Opens `index_path` and its model: `model_path` when given, else the model the
    /// index remembers. A model other than the one that built the index is refused.
    pub fn open(index_path: &Path, model_path: Option<&Path>, device: tch::Device) -> Result<Self> {
        let gallery = Gallery::load(index_path)?;
        let model_path =
            model_path.map_or_else(|| gallery.header.model_path.clone(), Path::to_path_buf);
        if !model_path.exists() {
            return Err(EngineError::bad_file(
                &model_path,
                format!(
                    "the model that built {} is no longer there; pass its new location with --model",
                    index_path.display()
                ),
            ));
        }
        let model = LoadedModel::load(&model_path, device)?;
        gallery.check_model(index_path, &model_path, &model.info)?;
        Ok(Self {
            gallery,
            model,
            max_pixels: crate::engine::data::DEFAULT_MAX_PIXELS,
        })
    }

    /// The nearest `k` gallery images to the image file at `query`.
    pub fn search_file(&mut self, query: &Path, k: usize) -> Result<Vec<SearchHit>> {
        let vector = self.embed_file(query)?;
        self.gallery.search(&vector, k)
    }

    /// The embedding of the image file at `query`, decoded exactly as indexing decodes.
    pub fn embed_file(&self, query: &Path) -> Result<Vec<f32>> {
        let size = TargetSize::ShortSide(self.model.model.config.preprocess.image_size_px);
        let image = decode_rgb_sized(query, self.max_pixels, size).map_err(|reason| {
            EngineError::Image {
                path: query.to_path_buf(),
                reason,
            }
        })?;
        embed_image(&self.model.model, &image)
    }

    /// The nearest `k` gallery images to a decoded image.
    pub fn search_image(&mut self, image: &image::RgbImage, k: usize) -> Result<Vec<SearchHit>> {
        search_image(&self.model.model, &mut self.gallery, image, k)
    }
}

/// The nearest `k` images of `gallery` to a decoded image, embedded with `model` (the
/// model that built the gallery).
pub fn search_image(
    model: &EmbeddingModel,
    gallery: &mut Gallery,
    image: &image::RgbImage,
    k: usize,
) -> Result<Vec<SearchHit>> {
    gallery.search(&embed_image(model, image)?, k)
}
