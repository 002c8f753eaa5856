//! Near-duplicate groups: photos of an index that are the same shot resized, recompressed,
//! slightly cropped or re-exposed, burst shots, and byte-for-byte copies.
//!
//! No all-pairs matrix: each photo's [`NEIGHBOURS`] nearest are looked up in the index
//! (so the work grows as N·k searches, not N²) and pairs closer than a ceiling are kept.
//! Groups are made from the pairs under a threshold by complete linkage: two groups merge
//! only when every photo of one is within the threshold of every photo of the other. (Plain
//! connected components chain: a model trained to tell flower classes apart puts the
//! photos of one class close together, and chains of close pairs then swallow the class.)
//! Grouping again at another threshold needs only the pairs, which is what lets the
//! window's slider regroup live. Exact copies are told apart by a content hash, computed
//! only for pairs whose files have the same size.
//!
//! A model trained to tell classes apart puts all photos of a class close together, so
//! embedding distance alone cannot tell a recompressed copy from another photo of the
//! same flower. Each photo's layout fingerprint (an 8×8 grey picture taken when it was
//! embedded, see [`crate::engine::data::fingerprint`]) settles it: a pair is a
//! near-duplicate when its embeddings are within the threshold *and* its layouts agree
//! ([`LAYOUT_MATCH`]) or, where an edit broke the layout (highlights clipped by
//! brightening, a crop, a small turn), its perceptual hashes are within [`HASH_MATCH`]
//! bits. Candidates come from both the embedding's and the layouts' nearest neighbours.
//! Indexes written before fingerprints existed group by embedding alone, and those
//! written before the hash by embedding and layout.
//!
//! Distances are on the index's scale, which depends on the model (unit embeddings of a
//! trained model, unnormalised ImageNet features), so the default threshold is relative:
//! [`DEFAULT_RELATIVE_THRESHOLD`] of the median distance from a photo to its nearest
//! other photo in the index.
//! Likeness never deletes or moves a photo; it lists them.

use super::keeper::{KeeperFacts, why_kept};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::engine::data::fingerprint::{self, Fingerprint};
use crate::engine::index::Gallery;
use crate::engine::progress::{Comparing, OnProgress};
use crate::engine::{EngineError, Result};

/// Neighbours looked up per photo: a group larger than this is still found whole when
/// its members chain together.
pub const NEIGHBOURS: usize = 10;

/// Default threshold as a share of the median nearest-neighbour distance of the index
/// (measured: `cargo bench --bench duplicates`).
pub const DEFAULT_RELATIVE_THRESHOLD: f32 = 10.0;

/// Pairs are kept up to this multiple of the default threshold, so the window's slider can
/// go that far without searching again.
pub const CEILING_FACTOR: f32 = 3.0;

/// Least layout similarity (cosine of the fingerprints) for two photos to be the same
/// shot (measured: `cargo bench --bench duplicates`).
pub const LAYOUT_MATCH: f32 = 0.95;

/// Most bits two perceptual hashes may differ in for a pair whose layouts disagree
/// (brightened until highlights clip, cropped, turned a little) to still be the same shot.
pub const HASH_MATCH: u32 = 10;

/// Least layout similarity for a pair found by layout alone to be kept as a candidate.
const LAYOUT_CANDIDATE: f32 = 0.75;

/// Queries per batch (progress is reported per batch).
const QUERY_BATCH: usize = 512;

/// Two photos of the index close enough to be looked at together.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    /// Positions in the index, `a < b`.
    pub a: usize,
    pub b: usize,
    /// Squared Euclidean distance of their embeddings.
    pub distance: f32,
    /// The two files hold the same bytes.
    pub identical: bool,
    /// Cosine similarity of their layout fingerprints (`None` when one has none).
    #[serde(default)]
    pub layout: Option<f32>,
    /// Bits their perceptual hashes differ in (`None` when one has none).
    #[serde(default)]
    pub hash_distance: Option<u32>,
}

impl Pair {
    /// Whether the pair is a near-duplicate at this embedding threshold: the same bytes;
    /// or perceptual hashes at most [`HASH_MATCH`] bits apart (the same shot whatever the
    /// model makes of an edit: brightening or a crop can move a weak model's embedding
    /// far); or embeddings within the threshold and layouts that agree (at least
    /// `layout_match`). Pairs from indexes without fingerprints go by the embedding alone.
    /// A threshold of 0 asks for exact copies: then the hash, a looser rule, does not join.
    pub fn joins(&self, threshold: f32, layout_match: f32) -> bool {
        let same_layout = self.layout.is_none_or(|l| l >= layout_match);
        self.identical
            || (threshold > 0.0 && self.hash_distance.is_some_and(|h| h <= HASH_MATCH))
            || (self.distance <= threshold && same_layout)
    }
}

/// Every pair of an index under the ceiling, from which groups are made at any threshold
/// up to it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Candidates {
    pub paths: Vec<PathBuf>,
    pub classes: Vec<Option<String>>,
    /// File sizes in bytes, as indexed.
    pub sizes: Vec<u64>,
    /// What decides which copy to keep, for each photo in a pair (`None` for the others,
    /// and for a photo that could not be read).
    #[serde(default)]
    pub keeper_facts: Vec<Option<KeeperFacts>>,
    /// Nearest first.
    pub pairs: Vec<Pair>,
    /// Median squared distance from a photo to its nearest other photo (identical files
    /// aside).
    pub typical_distance: f32,
    pub default_threshold: f32,
    /// Pairs farther than this were not kept.
    pub ceiling: f32,
}

/// Photos that are near-duplicates of one another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// Positions in the index; the first is the one suggested to keep (the one a person
    /// would keep: [`super::keeper`]).
    pub members: Vec<usize>,
    /// The pairs inside the group that joined it, nearest first.
    pub pairs: Vec<Pair>,
}

impl Group {
    /// Whether every member is a byte-for-byte copy of another.
    pub fn all_identical(&self) -> bool {
        !self.pairs.is_empty() && self.pairs.iter().all(|p| p.identical)
    }
}

/// XXH3 of a file's bytes (None when it cannot be read): kept in memory only, and an
/// order of magnitude faster than FNV-1a on multi-megabyte photos.
fn content_hash(path: &Path) -> Option<u64> {
    // Only a regular photo file, bounded: a photo swapped for a pipe or /dev/zero since
    // it was indexed must not hang the comparison or fill memory.
    let bytes = crate::engine::data::decode::read_photo(path).ok()?;
    Some(xxhash_rust::xxh3::xxh3_64(&bytes))
}

impl Candidates {
    /// Finds the pairs of `gallery` within [`CEILING_FACTOR`] × the default threshold.
    pub fn find(
        gallery: &mut Gallery,
        on_progress: OnProgress<'_, Comparing>,
        cancel: &AtomicBool,
    ) -> Result<Self> {
        let count = gallery.len();
        let dimension = gallery.header.dimension;
        let vectors = gallery
            .all_vectors()
            .ok_or_else(|| {
                EngineError::Config(
                    "this index is approximate and keeps no vectors to compare photos with \
                     each other; build it with `likeness index --exact` to find duplicates"
                        .to_string(),
                )
            })?
            .to_vec();
        let k = (NEIGHBOURS + 1).min(count);
        let mut rows: Vec<Vec<(usize, f32)>> = Vec::with_capacity(count);
        for start in (0..count).step_by(QUERY_BATCH) {
            if cancel.load(Ordering::Relaxed) {
                return Err(EngineError::Cancelled);
            }
            let end = (start + QUERY_BATCH).min(count);
            let found = gallery.nearest(&vectors[start * dimension..end * dimension], k)?;
            for (offset, row) in found.into_iter().enumerate() {
                let i = start + offset;
                rows.push(row.into_iter().filter(|&(j, _)| j != i).collect());
            }
            on_progress(Comparing {
                done: end,
                total: count,
            });
        }
        let typical_distance = median_nearest(&rows);
        let default_threshold = DEFAULT_RELATIVE_THRESHOLD * typical_distance;
        let ceiling = CEILING_FACTOR * default_threshold;
        let mut pairs: HashMap<(usize, usize), f32> = HashMap::new();
        for (i, row) in rows.into_iter().enumerate() {
            for (j, distance) in row {
                if distance <= ceiling {
                    pairs.insert((i.min(j), i.max(j)), distance);
                }
            }
        }
        let prints: Vec<Option<&Fingerprint>> = gallery
            .header
            .images
            .iter()
            .map(|i| i.fingerprint.as_ref())
            .collect();
        let layout = |a: usize, b: usize| Some(prints[a]?.similarity(prints[b]?));
        // Pairs whose layouts agree, or whose perceptual hashes do, whatever the embedding
        // says (it is measured below): a family of many edited copies does not fit in each
        // photo's few nearest neighbours, and complete linkage needs every pair of it.
        let mut same_shot = layout_neighbours(&prints, cancel)?;
        same_shot.extend(hash_neighbours(&prints, cancel)?);
        for (a, b) in same_shot {
            let hash_close = prints[a]
                .zip(prints[b])
                .and_then(|(x, y)| x.hash_distance(y))
                .is_some_and(|d| d <= HASH_MATCH);
            if hash_close || layout(a, b).is_some_and(|l| l >= LAYOUT_CANDIDATE) {
                let distance = squared_distance(
                    &vectors[a * dimension..(a + 1) * dimension],
                    &vectors[b * dimension..(b + 1) * dimension],
                );
                if distance <= ceiling || hash_close {
                    pairs.insert((a.min(b), a.max(b)), distance);
                }
            }
        }
        let sizes: Vec<u64> = gallery.header.images.iter().map(|i| i.bytes).collect();
        let paths: Vec<PathBuf> = gallery.paths();
        // Hash only files that could be copies: same size, in a pair.
        let mut hashes: HashMap<usize, Option<u64>> = HashMap::new();
        let mut hash_of = |i: usize| *hashes.entry(i).or_insert_with(|| content_hash(&paths[i]));
        let mut pairs: Vec<Pair> = pairs
            .into_iter()
            .map(|((a, b), distance)| Pair {
                a,
                b,
                distance,
                identical: sizes[a] != 0
                    && sizes[a] == sizes[b]
                    && hash_of(a).is_some()
                    && hash_of(a) == hash_of(b),
                layout: layout(a, b),
                hash_distance: prints[a]
                    .zip(prints[b])
                    .and_then(|(x, y)| x.hash_distance(y)),
            })
            .collect();
        pairs.sort_by(|x, y| {
            x.distance
                .total_cmp(&y.distance)
                .then(x.a.cmp(&y.a))
                .then(x.b.cmp(&y.b))
        });
        // Only photos in a pair can be in a group: each is read once, its header and a
        // small decode for the corners.
        let mut keeper_facts: Vec<Option<KeeperFacts>> = vec![None; count];
        let in_pairs: std::collections::BTreeSet<usize> =
            pairs.iter().flat_map(|p| [p.a, p.b]).collect();
        for i in in_pairs {
            if cancel.load(Ordering::Relaxed) {
                return Err(EngineError::Cancelled);
            }
            let image = &gallery.header.images[i];
            keeper_facts[i] = KeeperFacts::read(&paths[i], image.bytes, image.modified_ns);
        }
        Ok(Self {
            classes: gallery
                .header
                .images
                .iter()
                .map(|i| i.class.clone())
                .collect(),
            paths,
            sizes,
            keeper_facts,
            pairs,
            typical_distance,
            default_threshold,
            ceiling,
        })
    }

    /// The groups at `threshold` (identical files count as distance 0), largest first,
    /// then closest first. Complete linkage: every two photos of a group are within the
    /// threshold of each other (as found among their nearest neighbours).
    pub fn groups(&self, threshold: f32) -> Vec<Group> {
        self.groups_with(threshold, LAYOUT_MATCH)
    }

    /// [`Candidates::groups`] with another layout similarity than [`LAYOUT_MATCH`].
    pub fn groups_with(&self, threshold: f32, layout_match: f32) -> Vec<Group> {
        let joining: Vec<&Pair> = self
            .pairs
            .iter()
            .filter(|p| p.joins(threshold, layout_match))
            .collect();
        let close: std::collections::HashSet<(usize, usize)> =
            joining.iter().map(|p| (p.a, p.b)).collect();
        let is_close = |a: usize, b: usize| close.contains(&(a.min(b), a.max(b)));
        // Each photo's group (an index into `members`), merged nearest pair first.
        let mut group_of: HashMap<usize, usize> = HashMap::new();
        let mut members: Vec<Vec<usize>> = Vec::new();
        for pair in &joining {
            match (
                group_of.get(&pair.a).copied(),
                group_of.get(&pair.b).copied(),
            ) {
                (Some(x), Some(y)) if x == y => {}
                (Some(x), Some(y)) => {
                    let all_close = members[x]
                        .iter()
                        .all(|&m| members[y].iter().all(|&n| is_close(m, n)));
                    if all_close {
                        let moved = std::mem::take(&mut members[y]);
                        for &m in &moved {
                            group_of.insert(m, x);
                        }
                        members[x].extend(moved);
                    }
                }
                (Some(x), None) | (None, Some(x)) => {
                    let newcomer = if group_of.contains_key(&pair.a) {
                        pair.b
                    } else {
                        pair.a
                    };
                    if members[x].iter().all(|&m| is_close(m, newcomer)) {
                        members[x].push(newcomer);
                        group_of.insert(newcomer, x);
                    }
                }
                (None, None) => {
                    group_of.insert(pair.a, members.len());
                    group_of.insert(pair.b, members.len());
                    members.push(vec![pair.a, pair.b]);
                }
            }
        }
        let mut by_group: HashMap<usize, Group> = HashMap::new();
        for pair in joining {
            let (Some(&x), Some(&y)) = (group_of.get(&pair.a), group_of.get(&pair.b)) else {
                continue;
            };
            if x == y {
                by_group
                    .entry(x)
                    .or_insert_with(|| Group {
                        members: members[x].clone(),
                        pairs: Vec::new(),
                    })
                    .pairs
                    .push(*pair);
            }
        }
        let mut groups: Vec<Group> = by_group
            .into_values()
            .map(|mut group| {
                // The one a person would keep first (no added border, most pixels, the
                // camera's EXIF, earliest, largest), then by path.
                group.members.sort_by(|&x, &y| {
                    let facts = |i: usize| self.keeper_facts.get(i).copied().flatten();
                    let by_facts = match (facts(x), facts(y)) {
                        (Some(a), Some(b)) => a.compare(&b),
                        _ => std::cmp::Ordering::Equal,
                    };
                    by_facts
                        .then(self.sizes[y].cmp(&self.sizes[x]))
                        .then(self.paths[x].cmp(&self.paths[y]))
                });
                group
            })
            .collect();
        groups.sort_by(|x, y| {
            y.members.len().cmp(&x.members.len()).then(
                x.pairs[0]
                    .distance
                    .total_cmp(&y.pairs[0].distance)
                    .then(self.paths[x.members[0]].cmp(&self.paths[y.members[0]])),
            )
        });
        groups
    }

    /// Why `kept` (a member of `group`) is the one kept, in words ("kept: no added border,
    /// the earliest file").
    pub fn why_kept(&self, group: &Group, kept: usize) -> String {
        let facts = |i: usize| self.keeper_facts.get(i).copied().flatten();
        let others: Option<Vec<KeeperFacts>> = group
            .members
            .iter()
            .filter(|&&m| m != kept)
            .map(|&m| facts(m))
            .collect();
        if group.members.first() != Some(&kept) {
            return "kept: your choice".into();
        }
        match (facts(kept), others) {
            (Some(kept), Some(others)) => why_kept(&kept, &others),
            _ => "kept: the largest file".into(),
        }
    }

    /// Distance between two members of a group (from its pairs; `None` when they were
    /// joined only through others).
    pub fn distance(&self, group: &Group, a: usize, b: usize) -> Option<f32> {
        let (a, b) = (a.min(b), a.max(b));
        group
            .pairs
            .iter()
            .find(|p| p.a == a && p.b == b)
            .map(|p| p.distance)
    }
}

fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Largest index whose perceptual hashes are compared all against all (about two billion
/// comparisons of 64 bits, a few seconds); beyond it, candidates come from the embedding
/// and the layouts only.
const HASH_ALL_PAIRS_UP_TO: usize = 65_536;

/// The pairs of photos whose perceptual hashes are within [`HASH_MATCH`] bits, all
/// against all: whole against whole, and each whole against the other's middles
/// ([`Fingerprint::hash_distance`]), a XOR and a popcount each.
fn hash_neighbours(
    prints: &[Option<&Fingerprint>],
    cancel: &AtomicBool,
) -> Result<Vec<(usize, usize)>> {
    // A photo without middles (an older index) compares its whole hash in their place.
    let hashes: Vec<(usize, u64, [u64; 2])> = prints
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let print = (*p)?;
            let whole = print.hash?.0;
            let middles = print.middles.map_or([whole, whole], |m| m.map(|h| h.0));
            Some((i, whole, middles))
        })
        .collect();
    if hashes.len() > HASH_ALL_PAIRS_UP_TO {
        return Ok(Vec::new());
    }
    let close = |a: u64, b: u64| (a ^ b).count_ones() <= HASH_MATCH;
    let mut pairs = Vec::new();
    for (n, &(a, whole_a, middles_a)) in hashes.iter().enumerate() {
        if n % QUERY_BATCH == 0 && cancel.load(Ordering::Relaxed) {
            return Err(EngineError::Cancelled);
        }
        for &(b, whole_b, middles_b) in &hashes[n + 1..] {
            if close(whole_a, whole_b)
                || middles_b.iter().any(|&m| close(whole_a, m))
                || middles_a.iter().any(|&m| close(m, whole_b))
            {
                pairs.push((a, b));
            }
        }
    }
    Ok(pairs)
}

/// Each photo's nearest photos by layout (pairs of positions), from a flat index of the
/// fingerprints; photos without one are left out.
fn layout_neighbours(
    prints: &[Option<&Fingerprint>],
    cancel: &AtomicBool,
) -> Result<Vec<(usize, usize)>> {
    let with: Vec<usize> = (0..prints.len()).filter(|&i| prints[i].is_some()).collect();
    if with.len() < 2 {
        return Ok(Vec::new());
    }
    let floats: Vec<f32> = with
        .iter()
        .filter_map(|&i| prints[i].map(Fingerprint::to_floats))
        .flatten()
        .collect();
    let side = fingerprint::SIDE * fingerprint::SIDE;
    let mut index = faiss::index::flat::FlatIndex::new_l2(side as u32)?;
    faiss::Index::add(&mut index, &floats)?;
    let k = (NEIGHBOURS + 1).min(with.len());
    let mut pairs = Vec::new();
    for start in (0..with.len()).step_by(QUERY_BATCH * 4) {
        if cancel.load(Ordering::Relaxed) {
            return Err(EngineError::Cancelled);
        }
        let end = (start + QUERY_BATCH * 4).min(with.len());
        let found = faiss::Index::search(&mut index, &floats[start * side..end * side], k)?;
        for q in 0..end - start {
            for label in &found.labels[q * k..(q + 1) * k] {
                if let Some(j) = label.get()
                    && j as usize != start + q
                {
                    pairs.push((with[start + q], with[j as usize]));
                }
            }
        }
    }
    Ok(pairs)
}

/// Median distance from a photo to its nearest other photo, leaving out distance 0 (exact
/// copies), which says nothing about the model's scale.
fn median_nearest(rows: &[Vec<(usize, f32)>]) -> f32 {
    let mut nearest: Vec<f32> = rows
        .iter()
        .filter_map(|row| row.iter().map(|&(_, d)| d).find(|&d| d > 0.0))
        .collect();
    if nearest.is_empty() {
        return 1.0;
    }
    nearest.sort_by(f32::total_cmp);
    nearest[nearest.len() / 2]
}

/// One row of an exported duplicate list: a photo that is not the one kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OtherCopy {
    /// 1-based group number, as shown.
    pub group: usize,
    pub path: PathBuf,
    pub bytes: u64,
    /// The photo kept in its group.
    pub kept: PathBuf,
    /// Distance to the kept photo, when they were compared directly.
    pub distance_to_kept: Option<f32>,
    pub identical_to_kept: bool,
}

/// The photos that are not kept, given which member of each group is (`keep[g]` is a
/// position in `groups[g].members`).
pub fn others(candidates: &Candidates, groups: &[Group], keep: &[usize]) -> Vec<OtherCopy> {
    let mut rows = Vec::new();
    for (g, group) in groups.iter().enumerate() {
        let kept = group.members[keep
            .get(g)
            .copied()
            .unwrap_or(0)
            .min(group.members.len() - 1)];
        for &member in group.members.iter().filter(|&&m| m != kept) {
            let (a, b) = (member.min(kept), member.max(kept));
            let pair = group.pairs.iter().find(|p| p.a == a && p.b == b);
            rows.push(OtherCopy {
                group: g + 1,
                path: candidates.paths[member].clone(),
                bytes: candidates.sizes[member],
                kept: candidates.paths[kept].clone(),
                distance_to_kept: pair.map(|p| p.distance),
                identical_to_kept: pair.is_some_and(|p| p.identical),
            });
        }
    }
    rows
}

/// The list as CSV (a header row, then one row per photo not kept).
pub fn others_csv(rows: &[OtherCopy]) -> String {
    use crate::engine::csv::field;
    let mut csv = format!("{}\n", crate::engine::files::DUPLICATES_CSV_HEADER);
    for row in rows {
        csv.push_str(&format!(
            "{},{},{},{},{},{}\n",
            row.group,
            field(&row.path.to_string_lossy()),
            row.bytes,
            field(&row.kept.to_string_lossy()),
            row.distance_to_kept
                .map_or(String::new(), |d| format!("{d:.6}")),
            row.identical_to_kept
        ));
    }
    csv
}

/// Copies the photos not kept into `folder` (created if needed; names made unique), and
/// returns how many were copied. Nothing is moved or deleted.
pub fn copy_others(rows: &[OtherCopy], folder: &Path) -> Result<usize> {
    std::fs::create_dir_all(folder).map_err(|e| EngineError::io(folder, e))?;
    for row in rows {
        let name = row
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "photo".to_string());
        let target = folder.join(format!("{:04}-{name}", row.group));
        let mut unique = target.clone();
        let mut n = 1;
        while unique.exists() {
            unique = folder.join(format!("{:04}-{n}-{name}", row.group));
            n += 1;
        }
        let bytes = crate::engine::data::decode::read_photo(&row.path)
            .map_err(|reason| EngineError::bad_file(&row.path, reason))?;
        crate::engine::atomic::write_atomic(&unique, &bytes)?;
    }
    Ok(rows.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue #28: a brightened (clipped) or cropped copy whose layout no longer agrees is
    /// still the same shot by its perceptual hash, even where the edit moved its
    /// embedding past the threshold; a pair close in embedding and layout but far by hash
    /// still joins by layout.
    #[test]
    fn the_hash_rescues_a_pair_whose_layout_disagrees_but_not_a_distant_one() {
        let pair = |layout, hash_distance| Pair {
            a: 0,
            b: 1,
            distance: 0.5,
            identical: false,
            layout,
            hash_distance,
        };
        assert!(pair(Some(0.80), Some(HASH_MATCH)).joins(1.0, LAYOUT_MATCH));
        assert!(!pair(Some(0.80), Some(HASH_MATCH + 1)).joins(1.0, LAYOUT_MATCH));
        assert!(pair(Some(0.99), Some(40)).joins(1.0, LAYOUT_MATCH));
        // The same shot by hash joins beyond the embedding threshold; by layout it does not.
        assert!(pair(Some(0.80), Some(0)).joins(0.1, LAYOUT_MATCH));
        assert!(!pair(Some(0.99), Some(HASH_MATCH + 1)).joins(0.1, LAYOUT_MATCH));
        // An index written before the hash: the layout alone, as before.
        assert!(!pair(Some(0.80), None).joins(1.0, LAYOUT_MATCH));
        // Before fingerprints: the embedding alone.
        assert!(pair(None, None).joins(1.0, LAYOUT_MATCH));
        // Threshold 0 asks for exact copies: the hash does not join (issue #38's note).
        assert!(!pair(Some(0.80), Some(0)).joins(0.0, LAYOUT_MATCH));
        let identical = Pair {
            identical: true,
            ..pair(Some(0.80), Some(0))
        };
        assert!(identical.joins(0.0, LAYOUT_MATCH));
    }
    use crate::engine::data::ImageFile;
    use crate::engine::index::GalleryHeader;

    fn gallery(dir: &Path, vectors: &[[f32; 2]], contents: &[&[u8]]) -> Gallery {
        let images = contents
            .iter()
            .enumerate()
            .map(|(i, bytes)| {
                let path = dir.join(format!("{i}.jpg"));
                std::fs::write(&path, bytes).expect("write");
                let mut image = ImageFile::new(path, None);
                image.bytes = bytes.len() as u64;
                image
            })
            .collect();
        let header = GalleryHeader {
            format_version: 1,
            model_id: "m".into(),
            model_path: "m.safetensors".into(),
            folder: dir.to_path_buf(),
            dimension: 2,
            images,
            skipped: Vec::new(),
            vectors_checksum: None,
            exclude: Vec::new(),
            search: Default::default(),
            ids: Vec::new(),
        };
        Gallery::from_parts(header, vectors.iter().flatten().copied().collect()).expect("gallery")
    }

    #[test]
    fn close_photos_group_and_identical_files_are_marked() {
        let dir = tempfile::tempdir().expect("dir");
        // Photos 0, 1 (an exact copy of 0) and 2 (close) form a group; 3 and 4 are far
        // from everything; 5 is near 4 only at a looser threshold.
        let mut g = gallery(
            dir.path(),
            &[
                [0.0, 0.0],
                [0.0, 0.0],
                [0.01, 0.0],
                [10.0, 10.0],
                [-10.0, 5.0],
                [-10.0, 5.4],
            ],
            &[b"aaaa", b"aaaa", b"bbbbbb", b"c", b"dd", b"ee"],
        );
        let candidates =
            Candidates::find(&mut g, &|_| {}, &AtomicBool::new(false)).expect("candidates");
        let tight = candidates.groups(0.01);
        assert_eq!(tight.len(), 1);
        // The largest file first: the suggested keeper.
        assert_eq!(tight[0].members[0], 2);
        let mut members = tight[0].members.clone();
        members.sort();
        assert_eq!(members, [0, 1, 2]);
        let copy = tight[0]
            .pairs
            .iter()
            .find(|p| p.a == 0 && p.b == 1)
            .expect("the copy pair");
        assert!(copy.identical);
        // Looser: 4 and 5 join as a second, smaller group.
        let loose = candidates.groups(0.2);
        assert_eq!(loose.len(), 2);
        assert_eq!(loose[1].members.len(), 2);

        let rows = others(&candidates, &tight, &[0]);
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.kept.ends_with("2.jpg")));
        let csv = others_csv(&rows);
        assert!(csv.starts_with("group,path,"));
        assert_eq!(csv.lines().count(), 3);

        let out = dir.path().join("others");
        assert_eq!(copy_others(&rows, &out).expect("copy"), 2);
        assert_eq!(std::fs::read_dir(&out).expect("list").count(), 2);
        // The originals are untouched.
        assert!(dir.path().join("0.jpg").exists() && dir.path().join("1.jpg").exists());
    }

    #[test]
    fn a_chain_of_close_photos_does_not_swallow_photos_far_from_each_other() {
        let dir = tempfile::tempdir().expect("dir");
        // Five photos 0.1 apart in a line: neighbours are within 0.011 (squared), the ends
        // 0.16 apart. Complete linkage keeps groups whose members are all close.
        let mut vectors: Vec<[f32; 2]> = (0..5).map(|i| [i as f32 * 0.1, 0.0]).collect();
        vectors.extend((0..20).map(|i| [100.0 + i as f32 * 7.0, 50.0]));
        let contents: Vec<Vec<u8>> = (0..vectors.len()).map(|i| vec![b'x'; i + 1]).collect();
        let refs: Vec<&[u8]> = contents.iter().map(Vec::as_slice).collect();
        let mut g = gallery(dir.path(), &vectors, &refs);
        let candidates =
            Candidates::find(&mut g, &|_| {}, &AtomicBool::new(false)).expect("candidates");
        for group in candidates.groups(0.011) {
            for &a in &group.members {
                for &b in &group.members {
                    let gap = (vectors[a][0] - vectors[b][0]).powi(2);
                    assert!(gap <= 0.011 + 1e-6, "{a} and {b} grouped at {gap}");
                }
            }
        }
        // Loose enough, the whole line is one group.
        let loose = candidates.groups(0.2);
        assert_eq!(loose[0].members.len(), 5);
    }
}
