//! `likeness duplicates`.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use serde_json::json;

use super::{OutputArgs, print_json, progress};
use crate::engine::collection::duplicates::{Candidates, others, others_csv};
use crate::engine::files::OutputKind;
use crate::engine::index::Gallery;
use crate::engine::output::{Input, check_output};

#[derive(Debug, clap::Args)]
pub struct DuplicatesArgs {
    /// The index whose photos to compare (written by `likeness index`).
    #[arg(long)]
    pub index: PathBuf,
    /// Photos closer than this (squared distance, as printed) whose layouts also agree are
    /// grouped. The default is 10 × the median distance from a photo to its nearest other
    /// photo in the index, and is printed. 0 groups exact copies only.
    #[arg(long, value_name = "D", value_parser = super::choices::distance)]
    pub threshold: Option<f32>,
    /// Write the photos that are not the suggested keeper of their group (the one without
    /// an added border, with the most pixels, the camera's EXIF, the earliest, the
    /// largest) to this CSV file. Nothing is deleted or moved.
    #[arg(long, value_name = "FILE")]
    pub others_csv: Option<PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn run(args: DuplicatesArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.others_csv {
        let input = Input {
            flag: "--index",
            path: &args.index,
        };
        check_output(path, OutputKind::DuplicatesCsv, &[input], 0)?;
    }
    let mut gallery = Gallery::load(&args.index).context("could not open the index")?;
    let bar = progress::bar(gallery.len() as u64, "comparing");
    let candidates = Candidates::find(
        &mut gallery,
        &|p| {
            bar.set_length(p.total as u64);
            bar.set_position(p.done as u64);
        },
        &AtomicBool::new(false),
    )?;
    bar.finish_and_clear();
    let threshold = args.threshold.unwrap_or(candidates.default_threshold);
    if threshold > candidates.ceiling {
        eprintln!(
            "note: pairs farther than {:.4} were not kept, so the threshold acts as {:.4}",
            candidates.ceiling, candidates.ceiling
        );
    }
    let groups = candidates.groups(threshold);
    let how = if args.threshold.is_some() {
        "given".to_string()
    } else {
        format!(
            "default: 10 × the median distance from a photo to its nearest other photo, {:.4}; layouts must agree",
            candidates.typical_distance
        )
    };
    eprintln!(
        "threshold {threshold:.4} ({how}): {} groups, {} photos in them",
        groups.len(),
        groups.iter().map(|g| g.members.len()).sum::<usize>()
    );
    let keep = vec![0; groups.len()];
    let rows = others(&candidates, &groups, &keep);
    if let Some(path) = &args.others_csv {
        crate::engine::atomic::write_atomic(path, others_csv(&rows).as_bytes())
            .with_context(|| format!("could not write {}", path.display()))?;
        eprintln!("wrote {} photos not kept to {}", rows.len(), path.display());
    }
    let described: Vec<serde_json::Value> = groups
        .iter()
        .map(|group| {
            json!({
                "files": group.members.iter().map(|&m| json!({
                    "path": candidates.paths[m],
                    "bytes": candidates.sizes[m],
                    "class": candidates.classes[m],
                })).collect::<Vec<_>>(),
                "identical": group.all_identical(),
                "why_kept": candidates.why_kept(group, group.members[0]),
                "pairs": group.pairs.iter().map(|p| json!({
                    "a": candidates.paths[p.a],
                    "b": candidates.paths[p.b],
                    "distance": p.distance,
                    "identical": p.identical,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    if args.output.json {
        print_json(&json!({
            "index": args.index,
            "threshold": threshold,
            "default_threshold": candidates.default_threshold,
            "typical_distance": candidates.typical_distance,
            "groups": described,
        }))?;
    } else {
        for (g, group) in groups.iter().enumerate() {
            let kind = if group.all_identical() {
                "identical files"
            } else {
                "near-duplicates"
            };
            println!(
                "group {} ({} photos, {kind}; the first is {})",
                g + 1,
                group.members.len(),
                candidates.why_kept(group, group.members[0])
            );
            for (i, &m) in group.members.iter().enumerate() {
                let distance = if i == 0 {
                    "keep".to_string()
                } else {
                    candidates
                        .distance(group, group.members[0], m)
                        .map_or("~".to_string(), |d| format!("{d:.4}"))
                };
                println!(
                    "  {distance:>8}  {:>10} bytes  {}",
                    candidates.sizes[m],
                    super::shown(candidates.paths[m].display())
                );
            }
        }
    }
    Ok(())
}
