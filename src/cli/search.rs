//! `likeness search`.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::json;

use super::choices::DeviceArg;
use super::{OutputArgs, print_json, shown};
use crate::engine::index::SearchSession;

#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    /// The index to search (written by `likeness index`).
    #[arg(long)]
    pub index: PathBuf,
    /// Query images.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Number of results per query.
    #[arg(short, default_value_t = 5, value_parser = super::choices::result_count)]
    pub k: usize,
    /// Only results closer than this (squared distance, as printed).
    #[arg(long, value_name = "D", value_parser = super::choices::distance)]
    pub max_distance: Option<f32>,
    /// The model, if it moved since the index was built.
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn run(args: SearchArgs) -> anyhow::Result<()> {
    let mut session =
        SearchSession::open(&args.index, args.model.as_deref(), args.device.resolve()?)
            .context("could not open the index")?;
    let mut results = Vec::new();
    let mut failures = 0;
    for query in &args.images {
        match session.search_file(query, args.k) {
            Ok(mut hits) => {
                if let Some(limit) = args.max_distance {
                    hits.retain(|hit| hit.distance < limit);
                }
                if !args.output.json {
                    println!("{}", shown(query.display()));
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
                results.push(json!({ "query": query, "results": hits }));
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
