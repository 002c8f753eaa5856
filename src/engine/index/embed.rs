//! Photos to vectors: batches decoded on loader threads ahead of the network, exactly as
//! a query is decoded, so a photo embeds the same in the index and as a query.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::{EMBED_BATCH, IndexOptions};
use crate::engine::data::fingerprint::Fingerprint;
use crate::engine::data::{
    BatchStream, ImageFolder, SkippedFile, TargetSize, decode_rgb_sized, default_loader_threads,
};
use crate::engine::model::EmbeddingModel;
use crate::engine::progress::{Embedding, OnProgress};
use crate::engine::{EngineError, Result};

/// Progress of a long embedding job: photos embedded of total.
pub type ProgressFn<'a> = OnProgress<'a, Embedding>;

/// The vectors of images that embedded, and the files that could not be read.
pub struct Embedded {
    pub vectors: Vec<f32>,
    /// Indices (into the input) of the images in `vectors`, in order.
    pub embedded: Vec<usize>,
    /// The fingerprint of each input image that decoded (by input index).
    pub fingerprints: Vec<Option<Fingerprint>>,
    pub failed: Vec<SkippedFile>,
    /// Whether the job was cancelled before every file was embedded (only
    /// [`embed_files_until_cancelled`] returns such a partial result).
    pub interrupted: bool,
}

/// Embeds image files in batches, decoding on worker threads ahead of the network.
pub fn embed_files(
    model: &EmbeddingModel,
    paths: &[PathBuf],
    max_pixels: u64,
    on_progress: ProgressFn<'_>,
    cancel: &AtomicBool,
) -> Result<Embedded> {
    let embedded = embed_files_until_cancelled(model, paths, max_pixels, on_progress, cancel)?;
    if embedded.interrupted {
        return Err(EngineError::Cancelled);
    }
    Ok(embedded)
}

/// [`embed_files`], returning what was embedded when `cancel` is set part-way (marked
/// `interrupted`) rather than an error.
pub fn embed_files_until_cancelled(
    model: &EmbeddingModel,
    paths: &[PathBuf],
    max_pixels: u64,
    on_progress: ProgressFn<'_>,
    cancel: &AtomicBool,
) -> Result<Embedded> {
    let preprocess = model.config.preprocess.clone();
    let floats = preprocess.floats_per_image();
    let shared_paths: Arc<Vec<PathBuf>> = Arc::new(paths.to_vec());
    let load_paths = Arc::clone(&shared_paths);
    // Taken from the image decoded for the network, on the loader threads.
    let fingerprints = Arc::new(std::sync::Mutex::new(vec![None; paths.len()]));
    let loader_fingerprints = Arc::clone(&fingerprints);
    let load = Arc::new(
        move |item: usize, _rng: &mut fastrand::Rng, out: &mut [f32]| {
            let image = decode_rgb_sized(
                &load_paths[item],
                max_pixels,
                TargetSize::ShortSide(preprocess.image_size_px),
            )?;
            preprocess.write_plain(&image, out);
            let print = Fingerprint::of(&image);
            if let Ok(mut prints) = loader_fingerprints.lock() {
                prints[item] = Some(print);
            }
            Ok(())
        },
    );
    let jobs: Vec<Vec<usize>> = (0..paths.len())
        .collect::<Vec<_>>()
        .chunks(EMBED_BATCH)
        .map(<[usize]>::to_vec)
        .collect();
    let stream = BatchStream::spawn(jobs, floats, 0, default_loader_threads(), 3, load);
    let mut result = Embedded {
        vectors: Vec::with_capacity(paths.len() * model.config.embedding_dim),
        embedded: Vec::with_capacity(paths.len()),
        fingerprints: Vec::new(),
        failed: Vec::new(),
        interrupted: false,
    };
    let mut done = 0;
    for batch in stream {
        if cancel.load(std::sync::atomic::Ordering::Relaxed) {
            result.interrupted = true;
            break;
        }
        done += batch.loaded.len() + batch.failed.len();
        let vectors = model.embed_pixels(&batch.pixels, batch.loaded.len())?;
        result.vectors.extend(vectors);
        result.embedded.extend(&batch.loaded);
        result
            .failed
            .extend(batch.failed.into_iter().map(|(item, reason)| SkippedFile {
                path: shared_paths[item].clone(),
                reason,
            }));
        on_progress(Embedding {
            done: done.min(paths.len()),
            total: paths.len(),
        });
    }
    result.fingerprints = fingerprints
        .lock()
        .map(|mut prints| std::mem::take(&mut *prints))
        .unwrap_or_default();
    Ok(result)
}

/// Embeds the files an update needs: a partial result on cancel only when the options ask.
pub(super) fn embed_for_update(
    model: &EmbeddingModel,
    paths: &[PathBuf],
    options: &IndexOptions,
    on_progress: ProgressFn<'_>,
    cancel: &AtomicBool,
) -> Result<Embedded> {
    if options.keep_partial_on_cancel {
        embed_files_until_cancelled(model, paths, options.max_pixels, on_progress, cancel)
    } else {
        embed_files(model, paths, options.max_pixels, on_progress, cancel)
    }
}

/// How many of `queued` files an interrupted embedding did not reach.
pub(super) fn pending(embedded: &Embedded, queued: usize) -> usize {
    if embedded.interrupted {
        queued.saturating_sub(embedded.embedded.len() + embedded.failed.len())
    } else {
        0
    }
}

/// The embedding of one decoded image.
pub fn embed_image(model: &EmbeddingModel, image: &image::RgbImage) -> Result<Vec<f32>> {
    let preprocess = &model.config.preprocess;
    let mut pixels = vec![0.0f32; preprocess.floats_per_image()];
    preprocess.write_plain(image, &mut pixels);
    model.embed_pixels(&pixels, 1)
}

/// The error for a folder none of whose files could be embedded: an index of nothing
/// would only make every search come back empty.
pub(super) fn nothing_readable(folder: &ImageFolder, failed: &[SkippedFile]) -> EngineError {
    let examples: Vec<String> = failed
        .iter()
        .chain(&folder.skipped)
        .take(3)
        .map(ToString::to_string)
        .collect();
    EngineError::Dataset(format!(
        "{}: none of its files could be read as images, so no index was written \
         ({} files skipped, e.g. {})",
        folder.root.display(),
        failed.len() + folder.skipped.len(),
        examples.join("; ")
    ))
}
