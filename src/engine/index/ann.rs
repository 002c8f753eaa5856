//! Approximate nearest-neighbour search for large galleries.
//!
//! Up to [`APPROXIMATE_FROM`] images a gallery is searched exactly (faiss `IndexFlatL2`
//! over the raw vectors). Above it, exact search costs more than a desktop can give a
//! query (one full pass over N × d floats) and the raw vectors more memory than a
//! photo library is worth (1M × 512-d = 2 GB), so the gallery becomes a faiss
//! `PCA{p},IVF{nlist},SQ8` index:
//! - PCA keeps the directions that hold 99.9 % of the vectors' variance. Our embeddings
//!   come from ResNet18's 512-d features through one linear layer, and on real photo
//!   folders 99.9 % of their variance lies in the first ~128 directions.
//! - IVF splits the space into `nlist` ≈ √N cells and a query visits `nprobe` of them.
//! - SQ8 stores each reduced vector as one byte per dimension (1M × 128-d = 128 MB).
//!
//! `nprobe` is not guessed: after building, a sample of the gallery's own vectors is
//! searched exactly and approximately and the smallest `nprobe` that finds
//! [`TUNED_RECALL_AT_10`] of the exact 10 nearest is kept, with the recall it measured.
//! New photos can be added to a built index (and removed from it) by id, without
//! training it again.

use faiss::index::autotune::ParameterSpace;
use faiss::index::{Idx, IndexImpl, TryClone};
use faiss::selector::IdSelector;
use faiss::{Index, MetricType};
use serde::{Deserialize, Serialize};

use crate::engine::{EngineError, Result};

/// Galleries of at least this many images are indexed approximately unless exact search
/// is asked for (measured: `cargo bench --bench index_scale`; exact search of 50k 512-d
/// vectors takes about 10 ms a query on a 2-core CPU).
pub const APPROXIMATE_FROM: usize = 50_000;

/// Recall@10 against exact search that `nprobe` is tuned to reach on the gallery's own
/// sample (a little above the 0.95 promised for unseen queries).
pub const TUNED_RECALL_AT_10: f32 = 0.97;

/// Share of the vectors' variance the PCA step keeps.
const PCA_ENERGY: f64 = 0.999;

/// Vectors used to measure the variance spectrum and to tune `nprobe`.
const SPECTRUM_SAMPLE: usize = 20_000;
const TUNING_QUERIES: usize = 200;

/// Fewest vectors a PCA step is trained on (a smaller index is searched without one).
const MIN_PCA_TRAINING: usize = 1000;

/// Training points per IVF cell (faiss wants at least 39; more only costs time).
const TRAINING_PER_CELL: usize = 64;

/// How a gallery is searched, as stored in its index file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SearchMethod {
    /// Exhaustive search over the raw vectors: the true nearest neighbours.
    #[default]
    Exact,
    /// A faiss approximate index.
    Approximate(ApproximateParams),
}

impl SearchMethod {
    /// A short description for the status bar and `--json` readers.
    pub fn describe(&self) -> String {
        match self {
            SearchMethod::Exact => "exact search".to_string(),
            SearchMethod::Approximate(params) => params.describe(),
        }
    }
}

/// The parameters chosen for an approximate index, and what they measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApproximateParams {
    /// The faiss `index_factory` string, e.g. `PCA128,IVF1024,SQ8`.
    pub factory: String,
    /// Dimensions kept by PCA (`None` when the vectors are used as they are).
    pub pca_dimensions: Option<usize>,
    /// IVF cells.
    pub nlist: usize,
    /// Cells a query visits.
    pub nprobe: usize,
    /// Vectors the PCA and IVF were trained on.
    pub trained_on: usize,
    /// Recall@10 against exact search measured when `nprobe` was chosen.
    pub measured_recall_at_10: f32,
}

impl ApproximateParams {
    pub fn describe(&self) -> String {
        format!(
            "approximate search ({}, nprobe {}, recall@10 {:.2} measured)",
            self.factory, self.nprobe, self.measured_recall_at_10
        )
    }
}

/// Which search a gallery is built for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MethodChoice {
    /// Exact up to [`APPROXIMATE_FROM`] images, approximate above.
    #[default]
    Auto,
    /// Always exact (`--exact`).
    Exact,
    /// Always approximate (for tests and benchmarks of small galleries).
    Approximate,
}

impl MethodChoice {
    /// Whether a gallery of `images` vectors should be approximate.
    pub fn approximate_for(self, images: usize) -> bool {
        match self {
            MethodChoice::Auto => images >= APPROXIMATE_FROM,
            MethodChoice::Exact => false,
            MethodChoice::Approximate => true,
        }
    }
}

/// A built approximate index. Vectors are known to it by caller-chosen 64-bit ids.
pub struct ApproximateIndex {
    index: IndexImpl,
    pub params: ApproximateParams,
}

impl std::fmt::Debug for ApproximateIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApproximateIndex")
            .field("params", &self.params)
            .finish()
    }
}

/// Evenly spread positions of `count` of `total` items (all of them when fewer).
fn spread(total: usize, count: usize) -> Vec<usize> {
    if total <= count {
        return (0..total).collect();
    }
    (0..count).map(|i| i * total / count).collect()
}

fn rows(vectors: &[f32], dimension: usize, positions: &[usize]) -> Vec<f32> {
    positions
        .iter()
        .flat_map(|&p| &vectors[p * dimension..(p + 1) * dimension])
        .copied()
        .collect()
}

/// Dimensions that hold [`PCA_ENERGY`] of the variance of `sample` (rows of
/// `dimension` floats), rounded up to a multiple of 16.
fn dimensions_for_energy(sample: &[f32], dimension: usize) -> Result<usize> {
    let count = sample.len() / dimension;
    if count < 2 {
        return Ok(dimension);
    }
    let matrix = tch::Tensor::from_slice(sample)
        .view([count as i64, dimension as i64])
        .to_kind(tch::Kind::Double);
    let centred = &matrix - matrix.mean_dim(0, true, tch::Kind::Double);
    let covariance = centred.tr().matmul(&centred) / (count as f64);
    let eigenvalues: Vec<f64> = covariance
        .f_linalg_eigvalsh("L")
        .and_then(|values| values.f_flip([0]))
        .and_then(|values| Vec::<f64>::try_from(values.clamp_min(0.0)))
        .map_err(|e| EngineError::Config(format!("measuring the embedding's variance: {e}")))?;
    let total: f64 = eigenvalues.iter().sum();
    if total <= 0.0 {
        return Ok(dimension.min(16));
    }
    let mut kept = 0.0;
    for (i, value) in eigenvalues.iter().enumerate() {
        kept += value;
        if kept / total >= PCA_ENERGY {
            return Ok((i + 1).next_multiple_of(16).min(dimension));
        }
    }
    Ok(dimension)
}

/// The exact 10 nearest (by position) of each query among all `vectors`, computed in
/// slices so no second copy of the gallery is made.
fn exact_neighbours(
    vectors: &[f32],
    dimension: usize,
    queries: &[f32],
    k: usize,
) -> Result<Vec<Vec<usize>>> {
    const SLICE: usize = 65_536;
    let query_count = queries.len() / dimension;
    let total = vectors.len() / dimension;
    let mut best: Vec<Vec<(f32, usize)>> = vec![Vec::new(); query_count];
    for start in (0..total).step_by(SLICE) {
        let end = (start + SLICE).min(total);
        let mut flat = faiss::index::flat::FlatIndex::new_l2(dimension as u32)?;
        flat.add(&vectors[start * dimension..end * dimension])?;
        let found = flat.search(queries, k.min(end - start))?;
        let per_query = found.labels.len() / query_count;
        for (q, row) in best.iter_mut().enumerate() {
            for j in 0..per_query {
                if let Some(label) = found.labels[q * per_query + j].get() {
                    row.push((found.distances[q * per_query + j], start + label as usize));
                }
            }
            row.sort_by(|a, b| a.0.total_cmp(&b.0));
            row.truncate(k);
        }
    }
    Ok(best
        .into_iter()
        .map(|row| row.into_iter().map(|(_, p)| p).collect())
        .collect())
}

impl ApproximateIndex {
    /// Builds an index of `vectors` (rows of `dimension` floats) known by `ids`, choosing
    /// its parameters from the data.
    pub fn build(vectors: &[f32], dimension: usize, ids: &[u64]) -> Result<Self> {
        let count = vectors.len() / dimension;
        if count == 0 || ids.len() != count {
            return Err(EngineError::Config(format!(
                "an approximate index needs vectors and one id each ({count} vectors, {} ids)",
                ids.len()
            )));
        }
        let sample = rows(vectors, dimension, &spread(count, SPECTRUM_SAMPLE));
        let kept = dimensions_for_energy(&sample, dimension)?;
        // A PCA that keeps nearly everything only costs a matrix product per query, and
        // one trained on a few hundred vectors (fewer than its dimensions, at worst) would
        // describe those, not the library.
        let pca_dimensions =
            (kept * 4 < dimension * 3 && count >= MIN_PCA_TRAINING).then_some(kept);
        // About √N cells, as a power of two, with enough training points for each.
        let nlist = ((count as f64).sqrt() as usize)
            .next_power_of_two()
            .clamp(1, (count / 39).max(1));
        let factory = match pca_dimensions {
            Some(p) => format!("PCA{p},IVF{nlist},SQ8"),
            None => format!("IVF{nlist},SQ8"),
        };
        let mut index = faiss::index_factory(dimension as u32, &factory, MetricType::L2)?;
        let training = spread(count, nlist * TRAINING_PER_CELL);
        index.train(&rows(vectors, dimension, &training))?;
        let faiss_ids: Vec<Idx> = ids.iter().map(|&id| Idx::new(id)).collect();
        index.add_with_ids(vectors, &faiss_ids)?;
        let mut built = Self {
            index,
            params: ApproximateParams {
                factory,
                pca_dimensions,
                nlist,
                nprobe: 1,
                trained_on: training.len(),
                measured_recall_at_10: 0.0,
            },
        };
        built.tune(vectors, dimension, ids)?;
        Ok(built)
    }

    /// Picks the smallest `nprobe` whose recall@10 against exact search, on a sample of
    /// the gallery's own vectors, reaches [`TUNED_RECALL_AT_10`].
    fn tune(&mut self, vectors: &[f32], dimension: usize, ids: &[u64]) -> Result<()> {
        let count = vectors.len() / dimension;
        let k = 10.min(count);
        // Offset by half a step so the queries are not the IVF's training points.
        let positions: Vec<usize> = spread(count, TUNING_QUERIES)
            .into_iter()
            .map(|p| (p + count / (2 * TUNING_QUERIES).max(1)) % count)
            .collect();
        let queries = rows(vectors, dimension, &positions);
        let truth = exact_neighbours(vectors, dimension, &queries, k)?;
        let mut nprobe = 1;
        loop {
            self.set_nprobe(nprobe)?;
            let recall = self.recall(&queries, &truth, ids, k)?;
            self.params.nprobe = nprobe;
            self.params.measured_recall_at_10 = recall;
            if recall >= TUNED_RECALL_AT_10 || nprobe >= self.params.nlist {
                return Ok(());
            }
            nprobe = (nprobe * 2).min(self.params.nlist);
        }
    }

    fn recall(
        &mut self,
        queries: &[f32],
        truth: &[Vec<usize>],
        ids: &[u64],
        k: usize,
    ) -> Result<f32> {
        let found = self.index.search(queries, k)?;
        let mut hits = 0;
        let mut wanted = 0;
        for (q, exact) in truth.iter().enumerate() {
            let got: Vec<u64> = found.labels[q * k..(q + 1) * k]
                .iter()
                .filter_map(|label| label.get())
                .collect();
            wanted += exact.len();
            hits += exact.iter().filter(|&&p| got.contains(&ids[p])).count();
        }
        Ok(hits as f32 / wanted.max(1) as f32)
    }

    /// A copy to change while this one stays as it is.
    pub fn try_clone(&self) -> Result<Self> {
        Ok(Self {
            index: self.index.try_clone()?,
            params: self.params.clone(),
        })
    }

    pub fn set_nprobe(&mut self, nprobe: usize) -> Result<()> {
        ParameterSpace::new()?.set_index_parameter(&self.index, "nprobe", nprobe as f64)?;
        self.params.nprobe = nprobe;
        Ok(())
    }

    /// Vectors in the index.
    pub fn len(&self) -> usize {
        self.index.ntotal() as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds vectors under new ids (the index is not trained again).
    pub fn add(&mut self, vectors: &[f32], ids: &[u64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let faiss_ids: Vec<Idx> = ids.iter().map(|&id| Idx::new(id)).collect();
        self.index.add_with_ids(vectors, &faiss_ids)?;
        Ok(())
    }

    /// Removes the vectors with these ids; returns how many were found.
    pub fn remove(&mut self, ids: &[u64]) -> Result<usize> {
        if ids.is_empty() {
            return Ok(0);
        }
        let faiss_ids: Vec<Idx> = ids.iter().map(|&id| Idx::new(id)).collect();
        Ok(self.index.remove_ids(&IdSelector::batch(&faiss_ids)?)?)
    }

    /// Ids and distances of the `k` nearest to each query, nearest first.
    pub fn search(&mut self, queries: &[f32], k: usize) -> Result<Vec<Vec<(u64, f32)>>> {
        let dimension = self.index.d() as usize;
        let query_count = queries.len() / dimension;
        let found = self.index.search(queries, k)?;
        Ok((0..query_count)
            .map(|q| {
                (0..k)
                    .filter_map(|j| {
                        let id = found.labels[q * k + j].get()?;
                        Some((id, found.distances[q * k + j].max(0.0)))
                    })
                    .collect()
            })
            .collect())
    }

    /// The index as faiss' own serialisation.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        memory_file::write(&self.index)
    }

    /// Reads an index written by [`ApproximateIndex::to_bytes`].
    pub fn from_bytes(bytes: &[u8], params: ApproximateParams) -> Result<Self> {
        let index = memory_file::read(bytes)?;
        let mut loaded = Self { index, params };
        loaded.set_nprobe(loaded.params.nprobe)?;
        Ok(loaded)
    }
}

/// faiss reads and writes indexes through C `FILE`s; these stream them to and from
/// memory so an approximate index lives inside our own index file (written atomically
/// with its header) and is never staged through a second file. Two FFI calls whose
/// ownership rules are stated at each (the other unsafe code is libjpeg-turbo's cropped
/// decode in `engine/data/turbo.rs`).
#[allow(unsafe_code)]
mod memory_file {
    use faiss::index::{FromInnerPtr, IndexImpl};

    use crate::engine::{EngineError, Result};

    fn failed(what: &str) -> EngineError {
        EngineError::Config(format!(
            "faiss could not {what} the approximate index: {}",
            std::io::Error::last_os_error()
        ))
    }

    pub fn write(index: &IndexImpl) -> Result<Vec<u8>> {
        let mut buffer: *mut libc::c_char = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        // SAFETY: open_memstream owns `buffer` until fclose, after which it is a malloc'd
        // block of `size` bytes that we copy and free exactly once.
        unsafe {
            let file = libc::open_memstream(&mut buffer, &mut size);
            if file.is_null() {
                return Err(failed("serialise"));
            }
            let status = faiss_sys::faiss_write_index(index.inner_ptr(), file.cast());
            let closed = libc::fclose(file);
            let bytes = if buffer.is_null() {
                Vec::new()
            } else {
                std::slice::from_raw_parts(buffer.cast::<u8>(), size).to_vec()
            };
            libc::free(buffer.cast());
            if status != 0 || closed != 0 {
                return Err(failed("serialise"));
            }
            Ok(bytes)
        }
    }

    pub fn read(bytes: &[u8]) -> Result<IndexImpl> {
        if bytes.is_empty() {
            return Err(EngineError::Config(
                "the approximate index is empty".to_string(),
            ));
        }
        // SAFETY: fmemopen reads `bytes` (alive and unchanged for the whole call) through
        // a FILE that is closed before returning; faiss hands back a new index it owns,
        // which IndexImpl frees on drop.
        unsafe {
            let file = libc::fmemopen(
                bytes.as_ptr() as *mut libc::c_void,
                bytes.len(),
                c"rb".as_ptr(),
            );
            if file.is_null() {
                return Err(failed("open"));
            }
            let mut index = std::ptr::null_mut();
            let status = faiss_sys::faiss_read_index(file.cast(), 0, &mut index);
            libc::fclose(file);
            if status != 0 || index.is_null() {
                return Err(EngineError::Config(
                    "the approximate index inside the file is damaged".to_string(),
                ));
            }
            Ok(IndexImpl::from_inner_ptr(index))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Clustered vectors whose variance falls off like a real embedding's.
    fn clustered(count: usize, dimension: usize, seed: u64) -> Vec<f32> {
        let mut rng = fastrand::Rng::with_seed(seed);
        let centres: Vec<f32> = (0..20 * dimension)
            .map(|i| (rng.f32() - 0.5) * 8.0 / (1 + i % dimension) as f32)
            .collect();
        (0..count)
            .flat_map(|_| {
                let c = rng.usize(..20);
                (0..dimension)
                    .map(|d| centres[c * dimension + d] + (rng.f32() - 0.5) / (1 + d) as f32)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn a_built_index_finds_what_exact_search_finds_and_survives_a_round_trip() {
        let dimension = 64;
        let vectors = clustered(3000, dimension, 7);
        let ids: Vec<u64> = (0..3000).map(|i| i * 3 + 1).collect();
        let mut index = ApproximateIndex::build(&vectors, dimension, &ids).expect("ann");
        assert!(index.params.measured_recall_at_10 >= TUNED_RECALL_AT_10);
        assert_eq!(index.len(), 3000);
        // A gallery vector's own id comes back first.
        let hits = index
            .search(&vectors[5 * dimension..6 * dimension], 3)
            .expect("ann");
        assert_eq!(hits[0][0].0, ids[5]);

        let bytes = index.to_bytes().expect("ann");
        let mut loaded = ApproximateIndex::from_bytes(&bytes, index.params.clone()).expect("ann");
        assert_eq!(loaded.len(), 3000);
        assert_eq!(
            loaded
                .search(&vectors[5 * dimension..6 * dimension], 3)
                .expect("ann"),
            hits
        );

        // Removing and adding by id, without training again.
        assert_eq!(loaded.remove(&[ids[5]]).expect("ann"), 1);
        let hits = loaded
            .search(&vectors[5 * dimension..6 * dimension], 3)
            .expect("ann");
        assert!(hits[0].iter().all(|&(id, _)| id != ids[5]));
        loaded
            .add(&vectors[5 * dimension..6 * dimension], &[99_999])
            .expect("ann");
        let hits = loaded
            .search(&vectors[5 * dimension..6 * dimension], 1)
            .expect("ann");
        assert_eq!(hits[0][0].0, 99_999);
    }

    #[test]
    fn damaged_bytes_are_an_error_not_a_crash() {
        let params = ApproximateParams {
            factory: "IVF4,SQ8".into(),
            pca_dimensions: None,
            nlist: 4,
            nprobe: 1,
            trained_on: 0,
            measured_recall_at_10: 0.0,
        };
        assert!(ApproximateIndex::from_bytes(b"not an index at all", params.clone()).is_err());
        assert!(ApproximateIndex::from_bytes(b"", params).is_err());
    }

    #[test]
    fn auto_switches_at_the_measured_size() {
        assert!(!MethodChoice::Auto.approximate_for(APPROXIMATE_FROM - 1));
        assert!(MethodChoice::Auto.approximate_for(APPROXIMATE_FROM));
        assert!(!MethodChoice::Exact.approximate_for(10_000_000));
        assert!(MethodChoice::Approximate.approximate_for(10));
    }
}
