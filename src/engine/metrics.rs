//! Retrieval figures from ranked neighbour lists: recall@K, mAP@R, per-class recall and
//! confusions, and the shape of the photos whose neighbours doubt their label. Pure
//! arithmetic on classes and positions, below training (which measures with it between
//! epochs) and evaluation (which embeds, ranks and fills the report).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::data::SkippedFile;

/// A labelled image whose nearest neighbours say another class: possibly mislabelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuspectImage {
    pub path: PathBuf,
    /// The class of its folder.
    pub class: String,
    /// The class its neighbours say.
    pub neighbours_class: String,
    /// Share of its neighbours in `neighbours_class`.
    pub share: f64,
    /// How sure the finder is, 0..=1: the share of neighbours in `neighbours_class` minus
    /// the share in the image's own class. The list is sorted by it, highest first.
    #[serde(default)]
    pub confidence: f64,
}

/// How often one class's queries found another class first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfusedPair {
    pub query_class: String,
    pub retrieved_class: String,
    /// Queries of `query_class` whose nearest neighbour is of `retrieved_class`.
    pub count: usize,
}

/// The figures `likeness eval` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrievalReport {
    #[serde(rename = "recall@1")]
    pub recall_at_1: f64,
    #[serde(rename = "recall@5")]
    pub recall_at_5: f64,
    #[serde(rename = "recall@10")]
    pub recall_at_10: f64,
    #[serde(rename = "map@r")]
    pub map_at_r: f64,
    pub queries: usize,
    pub gallery: usize,
    /// Recall@1 of each query class.
    pub per_class_recall_at_1: BTreeMap<String, f64>,
    /// Top-1 confusions between classes, most frequent first.
    pub confused_pairs: Vec<ConfusedPair>,
    /// Gallery images whose neighbours say another class with at least
    /// `collection::mislabels::MISLABEL_CONFIDENCE`, most confident first.
    pub suspects: Vec<SuspectImage>,
    /// Files that could not be used, in either folder.
    pub skipped: Vec<SkippedFile>,
}

/// Computes the metrics from ranked neighbour lists. `ranked[q]` lists gallery positions
/// nearest first; it must hold at least R entries (R = gallery images of the query's
/// class) for mAP@R to be exact, as in pytorch-metric-learning.
pub fn retrieval_metrics(
    class_names: &[String],
    gallery_classes: &[usize],
    query_classes: &[usize],
    ranked: &[Vec<usize>],
) -> RetrievalReport {
    let mut class_sizes = vec![0usize; class_names.len()];
    for &c in gallery_classes {
        class_sizes[c] += 1;
    }
    let (mut hits1, mut hits5, mut hits10, mut ap_sum) = (0usize, 0usize, 0usize, 0.0f64);
    let mut per_class: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut confusions: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    for (query_class, neighbours) in query_classes.iter().zip(ranked) {
        let relevant: Vec<bool> = neighbours
            .iter()
            .map(|&g| gallery_classes[g] == *query_class)
            .collect();
        let hit_within = |k: usize| relevant.iter().take(k).any(|&r| r);
        hits1 += usize::from(hit_within(1));
        hits5 += usize::from(hit_within(5));
        hits10 += usize::from(hit_within(10));
        let entry = per_class
            .entry(class_names[*query_class].clone())
            .or_default();
        entry.0 += usize::from(hit_within(1));
        entry.1 += 1;
        if let Some(&first) = neighbours.first() {
            let retrieved = gallery_classes[first];
            if retrieved != *query_class {
                *confusions.entry((*query_class, retrieved)).or_default() += 1;
            }
        }
        let r = class_sizes[*query_class].min(relevant.len());
        if r > 0 {
            let mut found = 0usize;
            let mut precision_sum = 0.0;
            for (i, &is_relevant) in relevant.iter().take(r).enumerate() {
                if is_relevant {
                    found += 1;
                    precision_sum += found as f64 / (i + 1) as f64;
                }
            }
            ap_sum += precision_sum / r as f64;
        }
    }
    let n = query_classes.len().max(1) as f64;
    let mut confused_pairs: Vec<ConfusedPair> = confusions
        .into_iter()
        .map(|((q, g), count)| ConfusedPair {
            query_class: class_names[q].clone(),
            retrieved_class: class_names[g].clone(),
            count,
        })
        .collect();
    confused_pairs.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(a.query_class.cmp(&b.query_class))
    });
    RetrievalReport {
        recall_at_1: hits1 as f64 / n,
        recall_at_5: hits5 as f64 / n,
        recall_at_10: hits10 as f64 / n,
        map_at_r: ap_sum / n,
        queries: query_classes.len(),
        gallery: gallery_classes.len(),
        per_class_recall_at_1: per_class
            .into_iter()
            .map(|(class, (hits, total))| (class, hits as f64 / total.max(1) as f64))
            .collect(),
        confused_pairs,
        suspects: Vec::new(),
        skipped: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_match_a_hand_built_case() {
        let names = vec!["a".to_string(), "b".to_string()];
        // Gallery: positions 0,1 are class a; 2,3,4 are class b.
        let gallery = [0, 0, 1, 1, 1];
        let queries = [0, 1];
        let ranked = vec![
            vec![2, 0, 3, 1, 4], // query a: miss, hit, miss, hit → R=2: P(2)=1/2 → AP=(1/2)/2=0.25
            vec![2, 3, 0, 4, 1], // query b: hit, hit, miss → R=3: (1 + 1)/3 = 0.6667
        ];
        let report = retrieval_metrics(&names, &gallery, &queries, &ranked);
        assert_eq!(report.recall_at_1, 0.5);
        assert_eq!(report.recall_at_5, 1.0);
        assert!((report.map_at_r - (0.25 + 2.0 / 3.0) / 2.0).abs() < 1e-9);
        assert_eq!(report.per_class_recall_at_1["a"], 0.0);
        assert_eq!(report.per_class_recall_at_1["b"], 1.0);
        assert_eq!(
            report.confused_pairs,
            vec![ConfusedPair {
                query_class: "a".into(),
                retrieved_class: "b".into(),
                count: 1
            }]
        );
    }
}
