//! `likeness search`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::json;

use super::choices::DeviceArg;
use super::{OutputArgs, print_json, shown};
use crate::engine::feedback::Marks;
use crate::engine::feedback::refine::{Rocchio, refined_search};
use crate::engine::index::{SearchHit, SearchSession};

#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    #[command(flatten)]
    pub session: IndexArgs,
    /// Query images.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Number of results per query.
    #[arg(short, default_value_t = 5, value_parser = super::choices::result_count)]
    pub k: usize,
    /// Only results closer than this (squared distance, as printed).
    #[arg(long, value_name = "D", value_parser = super::choices::distance)]
    pub max_distance: Option<f32>,
    /// Refine each query's results by the marks a person made on them (a marks JSON file,
    /// as the window keeps or exports them): moved toward the photos marked alike and away
    /// from those marked not alike, which are left out.
    #[arg(long, value_name = "FILE")]
    pub marks: Option<PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// The index a query runs against, the model that embeds the query, and where it runs:
/// what `search` and `export` share.
#[derive(Debug, clap::Args)]
pub struct IndexArgs {
    /// The index to search (written by `likeness index`).
    #[arg(long)]
    pub index: PathBuf,
    /// The model, if it moved since the index was built.
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
}

impl IndexArgs {
    /// Opens the index with its model (`--model imagenet`: the shipped ImageNet features).
    pub fn open(&self) -> anyhow::Result<SearchSession> {
        SearchSession::open(
            &self.index,
            super::weights::resolve_optional_model(self.model.as_deref())?.as_deref(),
            self.device.resolve()?,
        )
        .context("could not open the index")
    }
}

pub fn run(args: SearchArgs) -> anyhow::Result<()> {
    let mut session = args.session.open()?;
    let marks =
        match &args.marks {
            Some(path) if !path.is_file() => {
                anyhow::bail!("{}: no such marks file", shown(path.display()))
            }
            Some(path) => Some(Marks::load(path).with_context(|| {
                format!("could not read the marks in {}", shown(path.display()))
            })?),
            None => None,
        };
    let mut results = Vec::new();
    let mut failures = 0;
    for query in &args.images {
        match search_one(&mut session, query, args.k, marks.as_ref()) {
            Ok((mut hits, refined_by)) => {
                if let Some(limit) = args.max_distance {
                    hits.retain(|hit| hit.distance < limit);
                }
                if !args.output.json {
                    println!("{}", shown(query.display()));
                    if let Some(n) = refined_by.filter(|n| *n > 0) {
                        println!("  (refined by {n} mark{})", if n == 1 { "" } else { "s" });
                    }
                    for hit in &hits {
                        println!(
                            "  {:>3}. {:>10.4}  {:<16} {}",
                            hit.rank,
                            hit.distance,
                            shown(hit.class.as_deref().unwrap_or("-")),
                            shown(hit.path.display())
                        );
                    }
                }
                let gone = hits
                    .iter()
                    .filter(|hit| std::fs::symlink_metadata(&hit.path).is_err())
                    .count();
                if gone > 0 {
                    eprintln!(
                        "warning: {gone} of these {} results no longer exist on disk (deleted or \
                         moved since the folder was indexed); update the index with `likeness \
                         index`",
                        hits.len()
                    );
                }
                let mut result = json!({ "query": query, "results": hits, "missing": gone });
                if let Some(n) = refined_by {
                    result["refined_by"] = json!(n);
                }
                results.push(result);
            }
            Err(error) => {
                failures += 1;
                eprintln!("error: {}", shown(&error));
                results.push(json!({ "query": query, "error": error.to_string() }));
            }
        }
    }
    if args.output.json {
        print_json(&json!({ "queries": results }))?;
    }
    if failures > 0 {
        anyhow::bail!(
            "{failures} of {} queries could not be searched",
            args.images.len()
        );
    }
    Ok(())
}

/// Searches with one query file: plainly, or refined by its marks when a marks file was
/// given (then also how many marks refined it). Marks match the query by its canonical
/// path, so a relative or absolute spelling finds the same marks.
fn search_one(
    session: &mut SearchSession,
    query: &Path,
    k: usize,
    marks: Option<&Marks>,
) -> anyhow::Result<(Vec<SearchHit>, Option<usize>)> {
    let Some(marks) = marks else {
        return Ok((session.search_file(query, k)?, None));
    };
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let wanted = canonical(query);
    let for_query: Vec<(PathBuf, bool)> = marks
        .marks
        .iter()
        .filter(|mark| canonical(&mark.query) == wanted)
        .map(|mark| (mark.photo.clone(), mark.alike))
        .collect();
    let vector = session.embed_file(query)?;
    let refined = refined_search(
        &mut session.gallery,
        &session.model.model,
        &vector,
        &for_query,
        k,
        &Rocchio::DEFAULT,
        session.max_pixels,
    )?;
    if refined.missing > 0 {
        eprintln!(
            "warning: {} marked photo(s) of {} could not be read",
            refined.missing,
            shown(query.display())
        );
    }
    Ok((refined.hits, Some(refined.used)))
}
