//! The worker's searches: a query against the open index, and the results refined by
//! the person's marks.

use super::*;

impl Worker {
    /// The `k` nearest photos of the current index to a query, with its preview.
    pub(super) fn search(&mut self, query: Query, k: usize) -> Result<Outcome, EngineError> {
        let Some(open) = self.index.as_mut() else {
            return Err(EngineError::Config(
                "there is no index yet: train or open a model, then index a folder".into(),
            ));
        };
        let (vector, preview) = match &query {
            Query::File(path) => {
                let as_image_error = |reason| EngineError::Image {
                    path: path.clone(),
                    reason,
                };
                // Read once, decoded twice from memory (the network's size, the preview's).
                let bytes = read_photo(path).map_err(as_image_error)?;
                let decode = |side: u32| {
                    decode_rgb_bytes_sized(&bytes, DEFAULT_MAX_PIXELS, TargetSize::ShortSide(side))
                        .map_err(as_image_error)
                };
                // The network's input decoded exactly as indexing decodes it (same DCT
                // scale, same EXIF-preview choice), so a library photo finds itself at
                // distance 0; the preview on screen is a decode of its own.
                let input = decode(open.model.info.config.preprocess.image_size_px)?;
                let vector = embed_image(&open.model.model, &input)?;
                let preview = match decode(QUERY_PREVIEW_PX) {
                    Ok(larger) => shrink_to_fit(&larger, QUERY_PREVIEW_PX),
                    Err(_) => shrink_to_fit(&input, QUERY_PREVIEW_PX),
                };
                (vector, preview)
            }
            Query::Rgb { image, .. } => (
                embed_image(&open.model.model, image)?,
                shrink_to_fit(image, QUERY_PREVIEW_PX),
            ),
        };
        let hits = open.gallery.search(&vector, k)?;
        let preview = Arc::new(preview);
        Ok(Outcome::Results {
            query,
            preview,
            hits,
            vector: Arc::new(vector),
        })
    }

    /// Searches again with a query's marks (see [`Request::Refine`]).
    pub(super) fn refine(
        &mut self,
        query: Query,
        vector: &[f32],
        marks: &[(PathBuf, bool)],
        k: usize,
    ) -> Result<Outcome, EngineError> {
        let Some(open) = self.index.as_mut() else {
            return Err(EngineError::Config(
                "there is no index yet: train or open a model, then index a folder".into(),
            ));
        };
        let refined = refined_search(
            &mut open.gallery,
            &open.model.model,
            vector,
            marks,
            k,
            &Rocchio::DEFAULT,
            DEFAULT_MAX_PIXELS,
        )?;
        Ok(Outcome::Refined {
            query,
            hits: refined.hits,
            refined_by: refined.used,
            missing: refined.missing,
        })
    }
}

/// Each marked photo's rank among its query's results (1 = first) in `gallery`, embedded
/// with `model`; `None` where the query cannot be read or the photo is not indexed.
pub(super) fn marked_ranks(
    model: &crate::engine::model::EmbeddingModel,
    gallery: &mut Gallery,
    marks: &Marks,
) -> HashMap<(PathBuf, PathBuf), Option<usize>> {
    use crate::engine::data::{TargetSize, decode_rgb_sized};
    let size = TargetSize::ShortSide(model.config.preprocess.image_size_px);
    let mut ranks = HashMap::new();
    let mut queries: Vec<&PathBuf> = marks.marks.iter().map(|m| &m.query).collect();
    queries.sort();
    queries.dedup();
    for query in queries {
        let hits = decode_rgb_sized(query, DEFAULT_MAX_PIXELS, size)
            .ok()
            .and_then(|image| {
                let everything = gallery.len();
                crate::engine::index::search_image(model, gallery, &image, everything).ok()
            })
            .unwrap_or_default();
        for mark in marks.marks.iter().filter(|m| &m.query == query) {
            let rank = hits.iter().find(|h| h.path == mark.photo).map(|h| h.rank);
            ranks.insert((mark.query.clone(), mark.photo.clone()), rank);
        }
    }
    ranks
}
