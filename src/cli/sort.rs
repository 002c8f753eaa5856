//! `likeness sort`: file the photos of an inbox into the library's class folders, or undo
//! a sort.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use serde_json::json;

use super::choices::DeviceArg;
use super::{OutputArgs, absolute, print_json, progress, shown, warn_skipped};
use crate::engine::data::{DEFAULT_MAX_PIXELS, scan_folder};
use crate::engine::index::{Gallery, IndexOptions};
use crate::engine::model::LoadedModel;
use crate::engine::model::pretrained::lite0_feature_network;
use crate::engine::sort::{self, FileMode};

#[derive(Debug, clap::Args)]
pub struct SortArgs {
    /// The model trained on the library's class folders.
    #[arg(long, required_unless_present = "undo")]
    pub model: Option<PathBuf>,
    /// The folder of new photos to file (not inside the library).
    #[arg(long, required_unless_present = "undo")]
    pub inbox: Option<PathBuf>,
    /// The library: one sub-folder per class.
    #[arg(long, required_unless_present = "undo")]
    pub library: Option<PathBuf>,
    /// The library's index: updated with the filed photos afterwards, and, for a model
    /// without class folders of its own, asked for each photo's nearest photos.
    #[arg(long)]
    pub index: Option<PathBuf>,
    /// File a photo only when at least this sure (0 to 1); the others stay in the inbox
    /// as unsure. By default 0.9, or 0.85 with --second-opinion (where it files as
    /// precisely: docs/quality.md); 0.05 lower with --new-kinds.
    #[arg(long, value_parser = confidence)]
    pub min_confidence: Option<f64>,
    /// Ask the shipped ImageNet network too, as the model's run fitted it to: about twice
    /// the photos filed at the same precision, but a photo of a kind no folder holds is
    /// filed (into the nearest folder) far more often. The inbox is embedded twice.
    #[arg(long)]
    pub second_opinion: bool,
    /// Look in the inbox for a new kind: a group of photos alike each other and unlike
    /// every folder, which then wait in the inbox, and every other photo is less sure the
    /// nearer it is to them (the default level is 0.05 lower). Made for an inbox with a
    /// subject none of the folders holds; in one without, some photos of a batch shot in
    /// one place wait too. A sample of the library (up to 300 photos a folder) is embedded
    /// too.
    #[arg(long)]
    pub new_kinds: bool,
    /// Copy the photos into the library (the default; the inbox stays as it is).
    #[arg(long, conflicts_with = "move_photos")]
    pub copy: bool,
    /// Move the photos instead of copying them.
    #[arg(long = "move", id = "move_photos")]
    pub move_photos: bool,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Where to write the journal that `--undo` reverses (default: a new file in
    /// Likeness' data folder, named on stderr).
    #[arg(long)]
    pub journal: Option<PathBuf>,
    /// Undo the sort this journal records: copies are removed, moved photos go back.
    #[arg(long, value_name = "JOURNAL", conflicts_with_all = ["model", "inbox", "dry_run", "second_opinion", "new_kinds"])]
    pub undo: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    #[command(flatten)]
    pub output: OutputArgs,
}

fn confidence(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("'{text}' is not a number"))?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err("the confidence must be between 0 and 1".into())
    }
}

pub fn run(args: SortArgs) -> anyhow::Result<()> {
    if let Some(journal) = &args.undo {
        return undo(&args, journal);
    }
    let (Some(model_path), Some(inbox), Some(library)) = (&args.model, &args.inbox, &args.library)
    else {
        anyhow::bail!("--model, --inbox and --library are needed to sort");
    };
    let (inbox, library) = sort::check_folders(inbox, library)?;
    let model_path = &super::weights::resolve_model_argument(model_path)?;
    let loaded = LoadedModel::load(model_path, args.device.resolve()?)
        .with_context(|| format!("could not open the model {}", model_path.display()))?;
    let folder = scan_folder(&inbox, DEFAULT_MAX_PIXELS).context("could not scan the inbox")?;
    if folder.images.is_empty() {
        warn_skipped(&folder.skipped);
        anyhow::bail!("{}: no photos to sort", inbox.display());
    }
    let mut gallery = match &args.index {
        Some(path) => {
            let gallery = Gallery::load(path)
                .with_context(|| format!("could not open the index {}", path.display()))?;
            sort::check_index_library(&gallery.header.folder, &library)
                .with_context(|| format!("{} is not this library's index", path.display()))?;
            Some(gallery)
        }
        None => None,
    };
    let network = match args.second_opinion || args.new_kinds {
        true => Some(lite0_feature_network(loaded.model.device()).context(
            "the second opinion and the search for a new kind need the ImageNet network \
             that ships with Likeness",
        )?),
        false => None,
    };
    let bar = progress::bar(folder.images.len() as u64, "looking at the inbox");
    let plan = sort::plan(
        &loaded.model,
        &folder,
        &library,
        gallery.as_mut(),
        args.min_confidence
            .unwrap_or_else(|| sort::default_min_confidence(args.second_opinion, args.new_kinds)),
        network.as_ref().map(|network| sort::ImageNetAsks {
            network,
            second_opinion: args.second_opinion,
            new_kinds: args.new_kinds,
        }),
        &|p| {
            // With the ImageNet network the inbox is embedded twice (and a sample of the
            // library once for a new kind): the total says so.
            bar.set_length(p.total as u64);
            bar.set_position(p.done as u64)
        },
        &AtomicBool::new(false),
    )?;
    bar.finish_and_clear();
    print_plan(&plan);
    let mode = if args.move_photos {
        FileMode::Move
    } else {
        FileMode::Copy
    };
    if args.dry_run {
        eprintln!("dry run: nothing was copied or moved");
        if args.output.json {
            print_json(&json!({ "plan": plan, "dry_run": true }))?;
        }
        return Ok(());
    }
    let choices: Vec<(PathBuf, String)> = plan
        .suggestions
        .iter()
        .filter_map(|s| Some((s.photo.clone(), s.folder()?.to_string())))
        .collect();
    let journal = match &args.journal {
        Some(path) => path.clone(),
        None => sort::new_journal_path(&sort::journals_folder())?,
    };
    let undo_line = format!(
        "undo with: likeness sort --undo {}",
        shown(absolute(&journal).display())
    );
    // Said before the first photo is filed, and again if the sort is interrupted: the
    // journal is how a person takes a sort back, whatever stops it.
    eprintln!(
        "journal of this sort: {}",
        shown(absolute(&journal).display())
    );
    super::interrupt::note_on_interrupt(format!("the sort stops after this photo; {undo_line}"));
    let interrupted = super::interrupt::flag();
    let report = sort::file_photos(&choices, &inbox, &library, mode, &journal, interrupted)?;
    let verb = if mode == FileMode::Move {
        "moved"
    } else {
        "copied"
    };
    eprintln!(
        "{verb} {} of {} photos into {}; {undo_line}",
        report.filed.len(),
        choices.len(),
        library.display(),
    );
    for folder in &report.created_folders {
        eprintln!(
            "note: the library had no folder {}; it was made",
            shown(folder.display())
        );
    }
    for (photo, existing) in &report.already_there {
        eprintln!(
            "already in the library: {} (the same bytes as {}); not filed",
            shown(photo.display()),
            shown(existing.display())
        );
    }
    for (wanted, given) in &report.renamed {
        eprintln!(
            "{} was taken: filed as {}",
            shown(wanted.display()),
            shown(given.display())
        );
    }
    warn_skipped(&report.failed);
    if report.cancelled {
        eprintln!(
            "interrupted: {} photos were not filed",
            choices.len() - report.filed.len() - report.already_there.len() - report.failed.len()
        );
    }
    let updated = match (&args.index, gallery, report.filed.is_empty()) {
        (Some(path), Some(gallery), false) => Some(update_index(path, &gallery, &loaded)?),
        _ => None,
    };
    if args.output.json {
        print_json(&json!({
            "plan": plan,
            "filed": report.filed,
            "already_there": report.already_there,
            "renamed": report.renamed,
            "failed": report.failed,
            "created_folders": report.created_folders,
            "journal": absolute(&journal),
            "index_added": updated,
            "cancelled": report.cancelled,
        }))?;
    }
    if report.cancelled {
        std::process::exit(super::interrupt::INTERRUPTED_EXIT_CODE);
    }
    if !report.failed.is_empty() {
        anyhow::bail!(
            "{} of {} photos could not be filed (listed above); the others were",
            report.failed.len(),
            choices.len()
        );
    }
    Ok(())
}

/// The plan on stderr: each photo, its folder and how sure, the unsure ones with why.
fn print_plan(plan: &sort::SortPlan) {
    eprintln!("folders suggested by {}:", plan.method.describe());
    for suggestion in &plan.suggestions {
        let name = shown(suggestion.photo.display());
        match &suggestion.unsure {
            None => eprintln!(
                "  {name} -> {} ({:.0}%)",
                shown(&suggestion.best_folder),
                suggestion.confidence * 100.0
            ),
            Some(why) => eprintln!("  {name} -> unsure: {}", shown(why)),
        }
    }
    let sure = plan
        .suggestions
        .iter()
        .filter(|s| s.unsure.is_none())
        .count();
    eprintln!(
        "{sure} sure, {} unsure (left in the inbox)",
        plan.suggestions.len() - sure
    );
    if let Some(new_kinds) = plan.new_kinds.describe() {
        eprintln!("{new_kinds}");
    }
    warn_skipped(&plan.skipped);
}

/// Updates the library's index with what was filed (only new photos are embedded).
fn update_index(path: &Path, earlier: &Gallery, loaded: &LoadedModel) -> anyhow::Result<usize> {
    if earlier.header.model_id != loaded.info.model_id {
        eprintln!(
            "note: {} was built with another model; update it with `likeness index`",
            path.display()
        );
        return Ok(0);
    }
    let folder = crate::engine::data::scan_folder_excluding(
        &earlier.header.folder,
        DEFAULT_MAX_PIXELS,
        &earlier.header.exclude,
    )
    .context("could not scan the library")?;
    let (gallery, changes) = Gallery::update(
        loaded,
        &folder,
        Some(earlier),
        &IndexOptions::new(DEFAULT_MAX_PIXELS),
        &|_| {},
        &AtomicBool::new(false),
    )?;
    gallery
        .save(path)
        .with_context(|| format!("could not write the index to {}", path.display()))?;
    eprintln!(
        "updated the index: {} added, {} changed, {} removed",
        changes.added, changes.updated, changes.removed
    );
    Ok(changes.added)
}

fn undo(args: &SortArgs, journal: &Path) -> anyhow::Result<()> {
    let report =
        sort::undo(journal).with_context(|| format!("could not undo {}", journal.display()))?;
    eprintln!(
        "undone: {} copies removed, {} photos moved back",
        report.removed.len(),
        report.restored.len()
    );
    if report.cut_off_last_line {
        eprintln!(
            "note: the journal's last line was cut off (the sort was killed as it wrote it); \
             that photo was never filed"
        );
    }
    for left in &report.left {
        eprintln!("left as it is: {}", shown(left));
    }
    if args.output.json {
        print_json(&report)?;
    }
    Ok(())
}
