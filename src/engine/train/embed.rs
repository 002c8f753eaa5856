//! Embedding prepared (decoded, cached) photos with the model being trained, for the
//! monitor's measures and calibration.

use std::sync::atomic::{AtomicBool, Ordering};

use tch::{Kind, Tensor};

use crate::engine::data::PreparedImages;
use crate::engine::device::guard_libtorch;
use crate::engine::model::EmbeddingModel;
use crate::engine::{EngineError, Result};

/// Embeds `indices` of `images` (cached squares) without augmentation, in inference mode.
pub fn embed_prepared(
    model: &EmbeddingModel,
    images: &PreparedImages,
    indices: &[usize],
) -> Result<Tensor> {
    embed_prepared_until(model, images, indices, &AtomicBool::new(false))
}

/// [`embed_prepared`], stopping with [`EngineError::Cancelled`] at the next batch of 64
/// once `cancel` is set (validation must not hold up a cancel for tens of seconds).
pub fn embed_prepared_until(
    model: &EmbeddingModel,
    images: &PreparedImages,
    indices: &[usize],
    cancel: &AtomicBool,
) -> Result<Tensor> {
    let preprocess = &model.config.preprocess;
    let floats = preprocess.floats_per_image();
    let size = i64::from(preprocess.image_size_px);
    let mut parts = Vec::new();
    for chunk in indices.chunks(64) {
        if cancel.load(Ordering::Relaxed) {
            return Err(EngineError::Cancelled);
        }
        let mut pixels = vec![0.0f32; chunk.len() * floats];
        for (slot, &item) in chunk.iter().enumerate() {
            preprocess.write_plain(
                images.get(item),
                &mut pixels[slot * floats..(slot + 1) * floats],
            );
        }
        parts.push(guard_libtorch(|| {
            tch::no_grad(|| {
                let batch = Tensor::from_slice(&pixels)
                    .view([chunk.len() as i64, 3, size, size])
                    .to_device(model.device());
                model.forward_t(&batch, false).to_kind(Kind::Float)
            })
        })?);
    }
    if parts.is_empty() {
        return Ok(Tensor::zeros(
            [0, model.config.embedding_dim as i64],
            (Kind::Float, model.device()),
        ));
    }
    Ok(Tensor::cat(&parts, 0))
}
