//! `likeness train`.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use serde_json::json;

use super::choices::{
    AugmentArg, BackboneArg, DeviceArg, LossArg, MiningArg, PresetArg, ScheduleArg,
};
use super::{OutputArgs, absolute, print_json, progress, warn_skipped};
use crate::engine::files::OutputKind;
use crate::engine::model::model_file_bytes_estimate;
use crate::engine::output::{Input, check_output};
use crate::engine::train::resume::{pending_state_path, state_file_bytes_estimate, state_path};
use crate::engine::train::{
    HeldOutScore, KeptTraining, Preset, TrainEvent, TrainJob, TrainSettings, save_run, train,
};

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Training folder: one sub-folder per class (e.g. train/daisy, train/rose).
    #[arg(long)]
    pub data: PathBuf,
    /// Validation folder with the same classes: validation loss each epoch, and recall@K
    /// and mAP@R (gallery: the training folder) at the end.
    #[arg(long)]
    pub val: Option<PathBuf>,
    /// Without --val: the share of each class's photos held out of training to validate
    /// the run and to calibrate the confidences `likeness sort` gives. A tenth by default,
    /// as the window holds out (a resumed run keeps its first run's choice); `0` trains on
    /// every photo, at the cost of confidences from the training temperature alone
    /// (docs/quality.md: calibration error 0.099 against 0.064; the tenth costs about 0.03
    /// recall@1).
    #[arg(long, value_parser = holdout_share, conflicts_with = "val")]
    pub holdout: Option<f64>,
    /// Where to write the model (a .safetensors file; its training state goes beside it,
    /// as NAME.train-state.safetensors, for --resume). With --resume, the model resumed.
    #[arg(long, required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// Starting settings: `seed` is the tutorial recipe exactly; `default` retrieves best.
    #[arg(long, value_enum, default_value_t = PresetArg::Default)]
    pub preset: PresetArg,
    /// At most this many epochs. With --max-seconds and no --epochs, training runs until
    /// the budget is spent; with neither, 20 epochs.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// The whole run's time budget in seconds: reading and decoding the photos, the
    /// training steps, validation, and the final evaluation with --val. The steps stop
    /// early enough for the rest to fit (measured as the run starts); only saving the
    /// model comes after it.
    #[arg(long)]
    pub max_seconds: Option<f64>,
    #[arg(long)]
    pub image_size: Option<u32>,
    /// Triplets per batch (random triplets) or images per batch (batch-hard).
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long)]
    pub lr: Option<f64>,
    /// What to minimise: `normalized-softmax` (the default preset's) or `triplet`.
    #[arg(long, value_enum)]
    pub loss: Option<LossArg>,
    /// Triplet loss margin (on squared L2 distance).
    #[arg(long)]
    pub margin: Option<f64>,
    /// Normalised softmax temperature: logits are cosines divided by it.
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Normalised softmax label smoothing (0 to below 1).
    #[arg(long)]
    pub label_smoothing: Option<f64>,
    /// Share of the run over which the learning rate warms up (0 to below 1).
    #[arg(long)]
    pub warmup: Option<f64>,
    #[arg(long)]
    pub embedding_dim: Option<usize>,
    /// Scale embeddings to unit length (true/false).
    #[arg(long)]
    pub normalize: Option<bool>,
    #[arg(long, value_enum)]
    pub mining: Option<MiningArg>,
    /// K: images of each class in a batch-hard batch.
    #[arg(long)]
    pub images_per_class: Option<usize>,
    #[arg(long, value_enum)]
    pub augment: Option<AugmentArg>,
    #[arg(long)]
    pub weight_decay: Option<f64>,
    #[arg(long, value_enum)]
    pub schedule: Option<ScheduleArg>,
    /// Keep BatchNorm statistics fixed (useful when fine-tuning pretrained weights).
    #[arg(long)]
    pub freeze_bn: bool,
    /// Keep an exponential moving average of the weights with this decay per step, and
    /// validate and save the average (0: off).
    #[arg(long, value_name = "DECAY")]
    pub ema: Option<f64>,
    /// Progressive resizing: start at this many pixels and grow to --image-size by 70% of
    /// the run (0: every epoch at full size).
    #[arg(long, value_name = "PX")]
    pub progressive_from: Option<u32>,
    /// Mixup's Beta(α, α) parameter (0: off; normalised softmax only).
    #[arg(long, value_name = "ALPHA")]
    pub mixup: Option<f64>,
    /// CutMix's Beta(α, α) parameter for the pasted box's area (0: off; normalised softmax
    /// only; not with --mixup).
    #[arg(long, value_name = "ALPHA")]
    pub cutmix: Option<f64>,
    /// Hand the network channels-last (NHWC) batches (true/false).
    #[arg(long, value_name = "BOOL")]
    pub channels_last: Option<bool>,
    /// The model embeds a photo as the mean of its and its mirror image's embedding, when
    /// indexing and searching (true/false; twice the network work per photo).
    #[arg(long, value_name = "BOOL")]
    pub mirror_average: Option<bool>,
    /// The model embeds photos (indexing, search, validation) at this multiple of
    /// --image-size, from 1 to 2: training's crops show things larger than a whole photo
    /// does at the same size. The default preset: 1.125 (128-px training, 144-px photos).
    #[arg(long, value_name = "MULTIPLE")]
    pub embed_scale: Option<f64>,
    /// The backbone learns at this share of --lr (0 to 1); the embedding layer and the
    /// class proxies at --lr itself. The default preset: 0.3.
    #[arg(long, value_name = "SHARE")]
    pub backbone_lr_factor: Option<f64>,
    /// The network: `efficientnet-lite0` (the default preset's) or `resnet18`.
    #[arg(long, value_enum)]
    pub backbone: Option<BackboneArg>,
    /// Where training starts: `imagenet` (the backbone's ImageNet weights: shipped with
    /// Likeness for EfficientNet-Lite0, downloaded the first time for ResNet18, see
    /// `likeness weights`), `none` (from scratch), or a .safetensors file of the
    /// backbone's weights. Default: the preset's (the default preset: imagenet).
    #[arg(long, value_name = "imagenet|none|FILE")]
    pub weights: Option<PathBuf>,
    #[arg(long, value_enum)]
    pub device: Option<DeviceArg>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Fine-tune `--model` from alike / not-alike marks (the marks JSON the window keeps
    /// next to an index, or one it exported) instead of training from class folders.
    /// `--data` is the library: a sample of its photos keeps its places. The budget is
    /// `--max-seconds` (default 60). The result goes to `--out`; `--model` is not touched.
    #[arg(long, value_name = "MARKS", requires = "model")]
    pub feedback: Option<PathBuf>,
    /// The model to fine-tune with --feedback.
    #[arg(long, requires = "feedback")]
    pub model: Option<PathBuf>,
    /// With --feedback, for a model trained with class folders (the default preset): hold
    /// the library in its class folders with the training loss as well, the marked photos
    /// among them as hard examples.
    #[arg(long, requires = "feedback")]
    pub with_classes: bool,
    /// Continue training this Likeness model on the class folders (instead of starting
    /// from scratch or from --weights); the result goes to --out.
    #[arg(long, conflicts_with_all = ["weights", "feedback"])]
    pub init_model: Option<PathBuf>,
    /// Go on training this model where its run stopped (weights, weight average, optimiser
    /// and learning-rate schedule, from the training state beside it), for --max-seconds
    /// or --epochs more. The settings are the earlier run's, so flags that shape training
    /// cannot be given. The result replaces the model (atomically) unless --out is given.
    #[arg(long, value_name = "MODEL", conflicts_with_all = [
        "weights", "feedback", "init_model", "preset", "image_size", "batch_size", "lr",
        "loss", "margin", "temperature", "label_smoothing", "warmup", "embedding_dim",
        "normalize", "mining", "images_per_class", "augment", "weight_decay", "schedule",
        "freeze_bn", "ema", "progressive_from", "mixup", "cutmix", "channels_last", "mirror_average",
        "embed_scale",
    ])]
    pub resume: Option<PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `likeness train --feedback`: fine-tunes a model from marks.
fn run_feedback(args: &TrainArgs, marks_path: &std::path::Path) -> anyhow::Result<()> {
    use crate::engine::feedback::{FineTune, Marks, fine_tune};
    let model_path = args.model.as_ref().context("--feedback needs --model")?;
    let out = args.out.as_ref().context("--feedback needs --out")?;
    anyhow::ensure!(
        marks_path.exists(),
        "{}: no such marks file",
        marks_path.display()
    );
    let marks = Marks::load(marks_path).context("could not read the marks")?;
    let (marks, cleanup) = marks.deduplicated();
    if let Some(note) = cleanup.describe() {
        eprintln!("note: {note}");
    }
    let device = args.device.unwrap_or(DeviceArg::Auto).resolve()?;
    let (mut model, info) =
        crate::engine::model::load_model(model_path, device).context("could not open the model")?;
    check_output(
        out,
        OutputKind::Model,
        &[
            Input {
                flag: "--model",
                path: model_path,
            },
            Input {
                flag: "--feedback",
                path: marks_path,
            },
        ],
        model_file_bytes_estimate(&model.config),
    )?;
    let library =
        crate::engine::data::scan_folder(&args.data, crate::engine::data::DEFAULT_MAX_PIXELS)
            .context("could not scan the library")?;
    let library: Vec<PathBuf> = library.images.into_iter().map(|i| i.path).collect();
    // Marks of another library would train on photos outside --data: only the marks of
    // photos in this library are used.
    let data_root = std::fs::canonicalize(&args.data)
        .with_context(|| format!("could not open {}", args.data.display()))?;
    let in_library = |photo: &std::path::Path| {
        std::fs::canonicalize(photo).is_ok_and(|p| p.starts_with(&data_root))
    };
    let total_marks = marks.marks.len();
    let mut marks = marks;
    marks.marks.retain(|mark| in_library(&mark.photo));
    anyhow::ensure!(
        !marks.marks.is_empty(),
        "none of the {total_marks} marks of {} is of a photo in {}: they belong to another \
         library (nothing was trained)",
        marks_path.display(),
        args.data.display()
    );
    if marks.marks.len() < total_marks {
        eprintln!(
            "note: {} of the {total_marks} marks are of photos outside {} (another library, or \
             deleted since); they were left out",
            total_marks - marks.marks.len(),
            args.data.display()
        );
    }
    let options = FineTune {
        seconds: args
            .max_seconds
            .unwrap_or(crate::engine::feedback::DEFAULT_SECONDS),
        seed: args.seed.unwrap_or(1),
        class_temperature: if args.with_classes {
            let temperature =
                crate::engine::feedback::class_loss_temperature(&model, &info.summary);
            anyhow::ensure!(
                temperature.is_some(),
                "--with-classes needs a model trained on class folders with the default \
                 preset; {} has no class proxies",
                model_path.display()
            );
            temperature
        } else {
            None
        },
        ..FineTune::default()
    };
    eprintln!(
        "fine-tuning {} from {} marks ({} alike, {} not alike) for {:.0} s, keeping {} library photos in place",
        model_path.display(),
        marks.marks.len(),
        marks.alike(),
        marks.not_alike(),
        options.seconds,
        library.len().min(options.anchors)
    );
    let bar = progress::bar(options.seconds as u64, "fine-tuning");
    let done = fine_tune(
        &mut model,
        &marks,
        &library,
        &options,
        &AtomicBool::new(false),
        &|p| {
            bar.set_position(p.secs as u64);
        },
    )?;
    bar.finish_and_clear();
    for change in &done.pair_changes {
        eprintln!("  {}", super::terminal_safe(&change.describe()));
    }
    if !done.held_out_changes.is_empty() {
        eprintln!(
            "kept out of training to check it ({} marks):",
            done.held_out_changes.len()
        );
        for change in &done.held_out_changes {
            eprintln!("  {}", super::terminal_safe(&change.describe()));
        }
    }
    let saved = crate::engine::feedback::save_fine_tuned(&mut model, &info.summary, &done, out)
        .with_context(|| format!("could not write the model to {}", out.display()))?;
    let Some(saved) = saved else {
        anyhow::bail!(
            "the retrained model was not written: {}; {} is unchanged",
            done.refusal().unwrap_or_default(),
            absolute(model_path).display()
        );
    };
    eprintln!(
        "{} steps on {} pairs ({} marks skipped): alike pairs {:.2} → {:.2}, not-alike pairs {:.2} → {:.2} of the typical distance; wrote {}",
        done.steps,
        done.pairs,
        done.skipped_marks,
        done.alike_before,
        done.alike_after,
        done.not_alike_before,
        done.not_alike_after,
        absolute(out).display()
    );
    if args.output.json {
        print_json(&json!({
            "model": absolute(out),
            "model_id": saved.model_id,
            "fine_tuned_from": absolute(model_path),
            "fine_tune": done,
        }))?;
    }
    Ok(())
}

/// The run's settings: the preset's, with each flag given overriding it, and the weights
/// file `--weights` names (`None` for `none`, for the shipped EfficientNet-Lite0 weights,
/// which training finds itself, and without the flag).
fn settings_from_args(
    args: &TrainArgs,
) -> anyhow::Result<(TrainSettings, Option<std::path::PathBuf>)> {
    let mut settings = Preset::from(args.preset).settings();
    // Explicit flags override the preset.
    macro_rules! take {
        ($($field:ident <- $arg:ident),* $(,)?) => { $( if let Some(v) = args.$arg { settings.$field = v.into(); } )* };
    }
    take!(
        image_size_px <- image_size, batch_size <- batch_size, lr <- lr,
        margin <- margin, embedding_dim <- embedding_dim, l2_normalize <- normalize,
        mining <- mining, images_per_class <- images_per_class, augment <- augment,
        weight_decay <- weight_decay, schedule <- schedule, device <- device, seed <- seed,
        loss <- loss, temperature <- temperature, label_smoothing <- label_smoothing,
        warmup_fraction <- warmup, ema_decay <- ema, mixup_alpha <- mixup, cutmix_alpha <- cutmix,
        channels_last <- channels_last, mirror_average <- mirror_average,
        backbone_lr_factor <- backbone_lr_factor, embed_scale <- embed_scale,
    );
    if let Some(from) = args.progressive_from {
        settings.progressive_from_px = (from > 0).then_some(from);
    }
    if args.epochs.is_some() {
        settings.epochs = args.epochs;
    }
    if args.freeze_bn {
        settings.freeze_batch_norm = true;
    }
    if let Some(backbone) = args.backbone {
        settings.backbone = backbone.into();
    }
    // `--weights imagenet|none` say where the run starts; a file is read as weights.
    let weights_file = match args.weights.as_deref() {
        Some(path) if path.as_os_str() == "none" && !path.exists() => {
            settings.pretrained = false;
            None
        }
        Some(path) if path.as_os_str() == "imagenet" && !path.exists() => {
            settings.pretrained = true;
            // The shipped EfficientNet-Lite0 weights are found by training itself; the
            // ResNet18 ones are downloaded now, the first time.
            (settings.backbone == crate::engine::train::Backbone::Resnet18)
                .then(|| super::weights::resolve_weights_argument(path))
                .transpose()?
        }
        Some(path) => Some(path.to_path_buf()),
        None => None,
    };
    if args.max_seconds.is_some() {
        settings.max_seconds = args.max_seconds;
    }
    settings.validate()?;
    Ok((settings, weights_file))
}

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    if let Some(marks) = &args.feedback {
        return run_feedback(&args, marks);
    }
    let (settings, weights_file) = settings_from_args(&args)?;
    let out = args
        .out
        .clone()
        .or_else(|| args.resume.clone())
        .context("--out is needed")?;
    // A resumed model is replaced by its continuation (atomically: a run that is stopped
    // leaves it as it was); every other input is never an output.
    let resumed_in_place = args
        .resume
        .as_deref()
        .is_some_and(|resumed| crate::engine::output::same_file(resumed, &out));
    let inputs: Vec<Input<'_>> = [
        ("--init-model", args.init_model.as_deref()),
        ("--weights", weights_file.as_deref()),
        (
            "--resume",
            args.resume.as_deref().filter(|_| !resumed_in_place),
        ),
    ]
    .into_iter()
    .filter_map(|(flag, path)| path.map(|path| Input { flag, path }))
    .collect();
    let model_bytes = model_file_bytes_estimate(&settings.model_config());
    check_output(&out, OutputKind::Model, &inputs, model_bytes)?;
    for state in [state_path(&out), pending_state_path(&out)] {
        check_output(
            &state,
            OutputKind::TrainState,
            &[],
            state_file_bytes_estimate(model_bytes),
        )?;
    }
    // Under a time budget the progress bar counts seconds; otherwise steps.
    let bar_counts_seconds = settings.max_seconds.is_some();
    let mut job = TrainJob::new(args.data.clone(), settings);
    job.validation = args.val.clone();
    // Held out as the window holds out, so that a model trained here sorts with calibrated
    // confidences too (issue #40); a resumed run keeps what its first run chose.
    job.holdout_share = match (args.holdout, &args.val, &args.resume) {
        (Some(share), _, _) => (share > 0.0).then_some(share),
        (None, None, None) => Some(crate::engine::train::DEFAULT_HOLDOUT_SHARE),
        (None, _, _) => None,
    };
    job.init_model = args.init_model.clone();
    job.decoded_cache = crate::engine::data::decoded_cache::DecodedCache::in_user_cache();
    job.resume = args.resume.clone();
    job.weights = weights_file;

    let bar = progress::bar(0, "preparing");
    let cancel = AtomicBool::new(false);
    let outcome = train(&job, &cancel, &|event| {
        show_train_event(&bar, bar_counts_seconds, event);
    })
    .with_context(|| format!("training on {} failed", args.data.display()))?;
    bar.finish_and_clear();

    // A run that went on from a model in place replaces it only when it is measured better
    // on the held-out photos (the window's Keep training rule).
    let saved = save_run(&outcome, &out, args.resume.as_deref())
        .with_context(|| format!("could not write the model to {}", out.display()))?;
    for warning in &saved.summary.warnings[outcome.summary.warnings.len()..] {
        eprintln!("warning: the model is saved, but {warning}");
    }
    report_run(&args, &out, &outcome, &saved)
}

/// What a finished run says: where its model went (or why the earlier one stayed), its
/// steps and figures, the labels it doubts, and with `--json` all of it as JSON.
fn report_run(
    args: &TrainArgs,
    out: &std::path::Path,
    outcome: &crate::engine::train::TrainOutcome,
    saved: &crate::engine::train::SavedRun,
) -> anyhow::Result<()> {
    let model_id = saved.info.as_ref().map(|info| info.model_id.clone());
    let summary = &outcome.summary;
    let stopped = if summary.cancelled {
        " (cancelled)"
    } else if summary.stopped_by_time_budget {
        " (time budget reached)"
    } else {
        ""
    };
    let written = match &saved.kept_training {
        None if saved.info.is_some() => format!("model written to {}", absolute(out).display()),
        Some(kept) if saved.info.is_none() => format!(
            "not better on the held-out photos than the model it went on from ({}), \
             so {} is unchanged",
            held_out_change(kept),
            absolute(out).display()
        ),
        Some(kept) => format!(
            "model written to {} ({})",
            absolute(out).display(),
            if kept.improved() {
                format!(
                    "better than the model it went on from: {}",
                    held_out_change(kept)
                )
            } else if kept.measured_no_better() {
                format!(
                    "not better than {}: {}",
                    absolute(&kept.from).display(),
                    held_out_change(kept)
                )
            } else {
                "no held-out score to compare with the model it went on from; train with \
                 --holdout to keep only a better one"
                    .to_string()
            }
        ),
        None => format!("model not written to {}", absolute(out).display()),
    };
    eprintln!(
        "trained {} epochs, {} steps in {:.0}s on {}{stopped}; {written}",
        summary.epochs, summary.steps, summary.train_secs, summary.device,
    );
    for warning in &summary.warnings {
        eprintln!("warning: {warning}");
    }
    if let (Some(epoch), Some(map)) = (summary.best_epoch, summary.best_validation_map_at_r) {
        eprintln!(
            "kept the weights of epoch {epoch} of {}, the best on the validation photos (mAP@R {map:.3})",
            summary.epochs
        );
    } else if let Some(map) = summary.validation_map_at_r.last() {
        eprintln!(
            "kept the last epoch's weights (mAP@R {map:.3} on the validation photos): no earlier \
             epoch was clearly better"
        );
    }
    if let Some(report) = &outcome.validation {
        eprintln!(
            "validation: recall@1 {:.3}, recall@5 {:.3}, recall@10 {:.3}, mAP@R {:.3}",
            report.recall_at_1, report.recall_at_5, report.recall_at_10, report.map_at_r
        );
    }
    let second_opinion = outcome
        .model
        .classifier
        .as_ref()
        .and_then(|c| c.info.second_opinion.as_ref());
    if let Some(opinion) = second_opinion {
        eprintln!(
            "fitted a second opinion on the folders from the ImageNet network that ships with \
             Likeness ({} photos, calibrated on the {} held out): `likeness sort \
             --second-opinion` asks it",
            opinion.trained_on, opinion.calibrated_on
        );
    }
    print_label_check(summary);
    if args.output.json {
        print_json(&json!({
            "model": absolute(out),
            "resumed_from": summary.resumed_from,
            "model_id": model_id,
            "written": saved.info.is_some(),
            "improved_on_resumed": saved.kept_training.as_ref().map(KeptTraining::improved),
            "epochs": summary.epochs,
            "steps": summary.steps,
            "train_secs": summary.train_secs,
            "device": summary.device,
            "epoch_losses": summary.epoch_losses,
            "validation_losses": summary.validation_losses,
            "validation_map_at_r": summary.validation_map_at_r,
            "best_epoch": summary.best_epoch,
            "embedding_spreads": summary.embedding_spreads,
            "warnings": summary.warnings,
            "images": summary.images,
            "classes": summary.classes.len(),
            "skipped": summary.skipped_files,
            "cancelled": summary.cancelled,
            "stopped_by_time_budget": summary.stopped_by_time_budget,
            "validation": outcome.validation,
            "labels_checked": summary.labels_checked,
            "label_suspects": summary.label_suspects,
            "finish_work": outcome.finish_work,
            "second_opinion": second_opinion,
        }))?;
    }
    Ok(())
}

/// "mAP@R 0.412 → 0.398" on the held-out photos.
fn held_out_change(kept: &KeptTraining) -> String {
    let show = |score: Option<HeldOutScore>| {
        score.map_or_else(|| "unknown".to_string(), |s| format!("{:.3}", s.map_at_r))
    };
    format!("mAP@R {} → {}", show(kept.before), show(kept.after))
}

/// The photos whose labels training doubts: the first few with why, and how many in all.
fn print_label_check(summary: &crate::engine::run::TrainingSummary) {
    const SHOWN: usize = 10;
    if summary.labels_checked == 0 {
        if summary.label_passes > 0 {
            eprintln!(
                "labels: not judged: this run trained on each photo at most {} time(s), and a \
                 label is judged after {}; a longer run checks them",
                summary.label_passes,
                crate::engine::train::margins::MIN_PASSES_TO_JUDGE
            );
        }
        return;
    }
    if summary.label_suspects.is_empty() {
        eprintln!(
            "labels: training took none of the {} photos for another class",
            summary.labels_checked
        );
        return;
    }
    eprintln!(
        "check these labels ({} of the {} photos trained on at least {} times; --json lists \
         them all):",
        summary.label_suspects.len(),
        summary.labels_checked,
        crate::engine::train::margins::MIN_PASSES_TO_JUDGE
    );
    for suspect in summary.label_suspects.iter().take(SHOWN) {
        let line = format!("  {}: {}", suspect.path.display(), suspect.reason());
        eprintln!("{}", super::terminal_safe(&line));
    }
    if summary.label_suspects.len() > SHOWN {
        eprintln!("  … and {} more", summary.label_suspects.len() - SHOWN);
    }
}

/// Shows a training event on the terminal: the progress bar (in seconds under a time
/// budget, in steps otherwise) and a line per epoch, warning and note.
fn show_train_event(bar: &indicatif::ProgressBar, bar_counts_seconds: bool, event: TrainEvent) {
    match event {
        TrainEvent::Preparing { done, total } => {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }
        TrainEvent::Started {
            device,
            classes,
            images,
            steps_per_epoch,
            epochs,
            budget_secs,
            skipped,
            notes,
        } => {
            let length = match (epochs, budget_secs) {
                (Some(epochs), None) => format!("{epochs} epochs of {steps_per_epoch} steps"),
                (Some(epochs), Some(budget)) => {
                    format!("{budget:.0} s (at most {epochs} epochs of {steps_per_epoch} steps)")
                }
                (None, Some(budget)) => format!("{budget:.0} s, epochs of {steps_per_epoch} steps"),
                (None, None) => format!("epochs of {steps_per_epoch} steps"),
            };
            bar.suspend(|| {
                warn_skipped(&skipped);
                for note in &notes {
                    eprintln!("note: {note}");
                }
                eprintln!("training on {device}: {images} images in {classes} classes, {length}");
            });
            bar.set_prefix("training");
            bar.set_length(match (budget_secs, epochs) {
                (Some(budget), _) => budget.ceil() as u64,
                (None, Some(epochs)) => (steps_per_epoch * epochs) as u64,
                (None, None) => 0,
            });
            bar.set_position(0);
        }
        TrainEvent::Step {
            epoch,
            global_step,
            loss,
            elapsed_secs,
            remaining_secs,
            ..
        } => {
            bar.set_position(if bar_counts_seconds {
                elapsed_secs as u64
            } else {
                global_step as u64
            });
            bar.set_message(format!(
                "epoch {epoch} loss {loss:.4} ~{remaining_secs:.0}s left"
            ));
        }
        TrainEvent::EpochEnd {
            epoch,
            mean_loss,
            validation_loss,
            validation_map_at_r,
            embedding_spread,
            elapsed_secs,
        } => {
            let validation =
                validation_loss.map_or(String::new(), |v| format!(", validation loss {v:.4}"));
            let retrieval =
                validation_map_at_r.map_or(String::new(), |m| format!(", validation mAP@R {m:.3}"));
            progress::say(
                bar,
                format!(
                    "epoch {epoch}: loss {mean_loss:.4}{validation}{retrieval}, spread {embedding_spread:.3} ({elapsed_secs:.0}s)"
                ),
            );
        }
        TrainEvent::Warning { message } => progress::say(bar, format!("warning: {message}")),
        TrainEvent::Phase(phase) => bar.set_message(phase.describe()),
        TrainEvent::Evaluating { done, total } => {
            bar.set_prefix("evaluating");
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }
    }
}

/// A share of photos to hold out: 0 (none) to 0.5.
fn holdout_share(text: &str) -> Result<f64, String> {
    let share: f64 = text
        .parse()
        .map_err(|_| format!("'{text}' is not a number"))?;
    if (0.0..=0.5).contains(&share) {
        Ok(share)
    } else {
        Err("the share to hold out must be from 0 (none) to 0.5".into())
    }
}
