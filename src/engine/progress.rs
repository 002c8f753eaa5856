//! How far a long engine job has come: one type per kind of job, each in its own unit,
//! so a caller cannot take seconds for photos or bytes for steps. Training reports
//! through its richer [`crate::engine::train::TrainEvent`].

/// A callback that receives a job's progress; jobs may call it from loader threads.
pub type OnProgress<'a, P> = &'a (dyn Fn(P) + Sync);

/// Photos embedded, of the photos to embed (indexing, evaluation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Embedding {
    pub done: usize,
    pub total: usize,
}

/// Photos compared with their nearest ones, of all the photos (finding duplicates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Comparing {
    pub done: usize,
    pub total: usize,
}

/// Bytes downloaded, of the size the server announced (when it did).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Downloading {
    pub bytes: u64,
    pub total_bytes: Option<u64>,
}

/// Seconds of a fine-tuning budget spent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FineTuning {
    pub secs: f64,
    pub budget_secs: f64,
}
