//! Loading batches on worker threads while the network computes (prefetching), in order.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A batch of preprocessed images, in the order requested, with those that failed.
#[derive(Debug)]
pub struct LoadedBatch {
    /// Position of this batch in the job list.
    pub batch_index: usize,
    /// CHW floats of the images that loaded, one after another.
    pub pixels: Vec<f32>,
    /// Item indices (as given in the job) of the images in `pixels`.
    pub loaded: Vec<usize>,
    /// Items that failed, with the reason.
    pub failed: Vec<(usize, String)>,
}

/// Loads one item (an image index) into `out`, or says why it cannot.
pub type LoadFn = dyn Fn(usize, &mut fastrand::Rng, &mut [f32]) -> Result<(), String> + Send + Sync;

/// Batches loaded by worker threads ahead of the consumer, yielded in job order.
/// Dropping the stream stops the workers.
pub struct BatchStream {
    results: Option<crossbeam_channel::Receiver<LoadedBatch>>,
    pending: HashMap<usize, LoadedBatch>,
    next_index: usize,
    total: usize,
    stop: Arc<AtomicBool>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl BatchStream {
    /// Starts `workers` threads loading `jobs` (lists of item indices) through `load`,
    /// keeping at most `prefetch` finished batches waiting. Each batch's random numbers
    /// come from `seed` and its index, so the content does not depend on thread timing.
    pub fn spawn(
        jobs: Vec<Vec<usize>>,
        floats_per_item: usize,
        seed: u64,
        workers: usize,
        prefetch: usize,
        load: Arc<LoadFn>,
    ) -> Self {
        let total = jobs.len();
        let (job_sender, job_receiver) = crossbeam_channel::unbounded();
        for job in jobs.into_iter().enumerate() {
            job_sender.send(job).ok();
        }
        drop(job_sender);
        let (result_sender, result_receiver) = crossbeam_channel::bounded(prefetch.max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..workers.max(1))
            .map(|_| {
                let job_receiver = job_receiver.clone();
                let result_sender = result_sender.clone();
                let stop = Arc::clone(&stop);
                let load = Arc::clone(&load);
                std::thread::spawn(move || {
                    for (batch_index, items) in job_receiver.iter() {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let mut rng = fastrand::Rng::with_seed(
                            seed ^ (batch_index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                        );
                        let mut pixels = vec![0.0f32; items.len() * floats_per_item];
                        let mut loaded = Vec::with_capacity(items.len());
                        let mut failed = Vec::new();
                        for &item in &items {
                            // A stream dropped mid-batch (the time budget ran out, a
                            // cancel) does not wait for the rest of the batch.
                            if stop.load(Ordering::Relaxed) {
                                return;
                            }
                            let slot = loaded.len();
                            let out =
                                &mut pixels[slot * floats_per_item..(slot + 1) * floats_per_item];
                            match load(item, &mut rng, out) {
                                Ok(()) => loaded.push(item),
                                Err(reason) => failed.push((item, reason)),
                            }
                        }
                        pixels.truncate(loaded.len() * floats_per_item);
                        let batch = LoadedBatch {
                            batch_index,
                            pixels,
                            loaded,
                            failed,
                        };
                        if result_sender.send(batch).is_err() {
                            break;
                        }
                    }
                })
            })
            .collect();
        Self {
            results: Some(result_receiver),
            pending: HashMap::new(),
            next_index: 0,
            total,
            stop,
            workers,
        }
    }

    /// Number of batches this stream yields in all.
    pub fn len(&self) -> usize {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

impl Iterator for BatchStream {
    type Item = LoadedBatch;

    fn next(&mut self) -> Option<LoadedBatch> {
        if self.next_index >= self.total {
            return None;
        }
        loop {
            if let Some(batch) = self.pending.remove(&self.next_index) {
                self.next_index += 1;
                return Some(batch);
            }
            let batch = self.results.as_ref()?.recv().ok()?;
            self.pending.insert(batch.batch_index, batch);
        }
    }
}

impl Drop for BatchStream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Dropping the receiver unblocks workers waiting to send.
        self.results = None;
        for worker in self.workers.drain(..) {
            worker.join().ok();
        }
    }
}

/// Worker threads for decoding: leave a core for libtorch when there are few.
pub fn default_loader_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    if cores <= 2 { 2 } else { (cores - 1).min(8) }
}
