//! `likeness map`.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use serde_json::json;

use super::{OutputArgs, print_json, progress};
use crate::engine::files::OutputKind;
use crate::engine::index::Gallery;
use crate::engine::output::{Input, check_output, mark_png};
use crate::engine::projection::{EmbeddingMap, MapMethod};

#[derive(Debug, clap::Args)]
pub struct MapArgs {
    /// The index to draw (written by `likeness index`; an exact index).
    #[arg(long)]
    pub index: PathBuf,
    /// Where to write the map: `.png` draws it (classes coloured, with a legend; likely
    /// mislabelled photos ringed in red), `.csv` lists path, class, x, y per photo.
    #[arg(long)]
    pub out: PathBuf,
    /// How photos are placed: `umap` keeps each photo's nearest photos near it on the
    /// plane (from 10 000 photos, a sample is laid out and the rest placed among their
    /// nearest); `pca` is the two main directions of the embeddings (instant, linear).
    #[arg(long, value_enum, default_value_t = MethodArg::Umap)]
    pub method: MethodArg,
    /// Size of the PNG in pixels.
    #[arg(long, default_value_t = 1200)]
    pub width: u32,
    #[arg(long, default_value_t = 900)]
    pub height: u32,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `--method`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum MethodArg {
    Umap,
    Pca,
}

impl From<MethodArg> for MapMethod {
    fn from(method: MethodArg) -> Self {
        match method {
            MethodArg::Umap => Self::Umap,
            MethodArg::Pca => Self::Pca,
        }
    }
}

pub fn run(args: MapArgs) -> anyhow::Result<()> {
    let extension = args
        .out
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    let bytes_of = |map: &EmbeddingMap| -> anyhow::Result<Vec<u8>> {
        match extension.as_deref() {
            Some("csv") => Ok(map.to_csv().into_bytes()),
            Some("png") => {
                anyhow::ensure!(
                    (64..=8192).contains(&args.width) && (64..=8192).contains(&args.height),
                    "--width and --height must be between 64 and 8192 pixels"
                );
                let mut png = Vec::new();
                map.render(args.width, args.height)
                    .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
                Ok(mark_png(&png))
            }
            _ => anyhow::bail!(
                "{}: the map is written as .png or .csv; name the file so",
                args.out.display()
            ),
        }
    };
    // Refuse a bad --out before the work.
    bytes_of(&EmbeddingMap::default())?;
    let kind = match extension.as_deref() {
        Some("csv") => OutputKind::MapCsv,
        _ => OutputKind::MapPng,
    };
    let input = Input {
        flag: "--index",
        path: &args.index,
    };
    // The kind and the folder are checked before the work; the room once the bytes are
    // drawn, from their real size (a PNG is far smaller than its pixels).
    check_output(&args.out, kind, &[input], 0)?;
    let mut gallery = Gallery::load(&args.index).context("could not open the index")?;
    let method = MapMethod::from(args.method);
    let bar = progress::bar(0, "laying out the map");
    let map = EmbeddingMap::of_gallery(
        &mut gallery,
        method,
        &AtomicBool::new(false),
        &mut |forming| {
            bar.set_length(forming.epochs as u64);
            bar.set_position(forming.epoch as u64);
        },
    )
    .context("could not draw the map")?;
    bar.finish_and_clear();
    let bytes = bytes_of(&map)?;
    crate::engine::output::check_room(&args.out, bytes.len() as u64)?;
    crate::engine::atomic::write_atomic(&args.out, &bytes)
        .with_context(|| format!("could not write {}", args.out.display()))?;
    eprintln!(
        "drew {} photos in {} classes to {} ({}; {} likely mislabelled)",
        map.len(),
        map.class_names.len(),
        args.out.display(),
        map.describe_placement(),
        map.suspects.len(),
    );
    if args.output.json {
        print_json(&json!({
            "out": args.out,
            "photos": map.len(),
            "classes": map.class_names,
            "likely_mislabelled": map.suspects.iter().map(|&i| &map.paths[i]).collect::<Vec<_>>(),
            "method": map.method,
            "laid_out": map.sampled,
            "explained_variance": map.explained,
        }))?;
    }
    Ok(())
}
