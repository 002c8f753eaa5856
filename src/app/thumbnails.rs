//! Thumbnails: decoded and shrunk on background threads, uploaded to the GPU once, kept
//! within a memory budget and evicted by last use.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crossbeam_channel::{Receiver, Sender};

use crate::engine::data::{DEFAULT_MAX_PIXELS, decode_rgb};

/// Longest side of a thumbnail in pixels: big enough for the hover preview.
pub const THUMBNAIL_SIDE_PX: u32 = 320;
/// Texture memory the cache may hold (RGBA bytes).
pub const DEFAULT_BUDGET_BYTES: usize = 192 << 20;
/// Finished thumbnails uploaded per frame, so a burst never makes one frame long.
const UPLOADS_PER_FRAME: usize = 8;
const LOADER_THREADS: usize = 2;

/// What the cache has for a path.
pub enum Thumbnail<'a> {
    Loading,
    Ready(&'a egui::TextureHandle),
    Failed(&'a str),
}

enum Entry {
    Loading,
    Ready {
        texture: egui::TextureHandle,
        bytes: usize,
        last_used: u64,
    },
    Failed(String),
}

/// The cache; call [`ThumbnailCache::poll`] once per frame.
pub struct ThumbnailCache {
    requests: Sender<PathBuf>,
    finished: Receiver<(PathBuf, Result<egui::ColorImage, String>)>,
    entries: HashMap<PathBuf, Entry>,
    budget_bytes: usize,
    used_bytes: usize,
    frame: u64,
}

impl ThumbnailCache {
    /// Starts the loader threads; `wake` asks for a repaint when a thumbnail is ready.
    pub fn new(budget_bytes: usize, wake: impl Fn() + Send + Sync + Clone + 'static) -> Self {
        let (requests, request_receiver) = crossbeam_channel::bounded::<PathBuf>(512);
        let (finished_sender, finished) = crossbeam_channel::bounded(256);
        for _ in 0..LOADER_THREADS {
            let request_receiver = request_receiver.clone();
            let finished_sender = finished_sender.clone();
            let wake = wake.clone();
            std::thread::Builder::new()
                .name("likeness-thumbnails".into())
                .spawn(move || {
                    for path in request_receiver.iter() {
                        let result = load_thumbnail(&path);
                        if finished_sender.send((path, result)).is_err() {
                            break;
                        }
                        wake();
                    }
                })
                .ok();
        }
        Self {
            requests,
            finished,
            entries: HashMap::new(),
            budget_bytes,
            used_bytes: 0,
            frame: 0,
        }
    }

    /// The thumbnail of `path`, asking for it to be loaded the first time.
    pub fn get(&mut self, path: &Path) -> Thumbnail<'_> {
        if !self.entries.contains_key(path) {
            // A full queue means many requests are pending; ask again next frame.
            if self.requests.try_send(path.to_path_buf()).is_ok() {
                self.entries.insert(path.to_path_buf(), Entry::Loading);
            }
            return Thumbnail::Loading;
        }
        let frame = self.frame;
        match self.entries.get_mut(path) {
            Some(Entry::Ready {
                texture, last_used, ..
            }) => {
                *last_used = frame;
                Thumbnail::Ready(texture)
            }
            Some(Entry::Failed(reason)) => Thumbnail::Failed(reason),
            _ => Thumbnail::Loading,
        }
    }

    /// Uploads a few finished thumbnails and evicts the least recently used beyond the
    /// budget. Returns whether thumbnails are still pending.
    pub fn poll(&mut self, ctx: &egui::Context) -> bool {
        self.frame += 1;
        for (path, result) in self.finished.try_iter().take(UPLOADS_PER_FRAME) {
            let entry = match result {
                Ok(image) => {
                    let bytes = image.pixels.len() * 4;
                    let texture = ctx.load_texture(
                        path.display().to_string(),
                        image,
                        egui::TextureOptions::LINEAR,
                    );
                    self.used_bytes += bytes;
                    Entry::Ready {
                        texture,
                        bytes,
                        last_used: self.frame,
                    }
                }
                Err(reason) => Entry::Failed(reason),
            };
            self.entries.insert(path, entry);
        }
        self.evict();
        !self.finished.is_empty() || self.entries.values().any(|e| matches!(e, Entry::Loading))
    }

    fn evict(&mut self) {
        if self.used_bytes <= self.budget_bytes {
            return;
        }
        let mut ready: Vec<(u64, PathBuf, usize)> = self
            .entries
            .iter()
            .filter_map(|(path, entry)| match entry {
                // Never evict what this frame shows.
                Entry::Ready {
                    last_used, bytes, ..
                } if *last_used < self.frame => Some((*last_used, path.clone(), *bytes)),
                _ => None,
            })
            .collect();
        ready.sort();
        for (_, path, bytes) in ready {
            if self.used_bytes <= self.budget_bytes {
                break;
            }
            self.entries.remove(&path);
            self.used_bytes -= bytes;
        }
    }

    /// Thumbnails asked for and not decoded yet.
    pub fn pending(&self) -> usize {
        self.entries
            .values()
            .filter(|e| matches!(e, Entry::Loading))
            .count()
    }

    /// Texture bytes held now.
    pub fn used_bytes(&self) -> usize {
        self.used_bytes
    }

    /// Thumbnails held (loaded, loading or failed).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn load_thumbnail(path: &Path) -> Result<egui::ColorImage, String> {
    let image = decode_rgb(path, DEFAULT_MAX_PIXELS)?;
    Ok(color_image(&shrink(&image)))
}

/// Shrinks to fit within [`THUMBNAIL_SIDE_PX`], keeping the aspect ratio.
pub fn shrink(image: &image::RgbImage) -> image::RgbImage {
    crate::engine::data::shrink_to_fit(image, THUMBNAIL_SIDE_PX)
}

/// An RGB image as egui pixels.
pub fn color_image(image: &image::RgbImage) -> egui::ColorImage {
    egui::ColorImage::from_rgb(
        [image.width() as usize, image.height() as usize],
        image.as_raw(),
    )
}
