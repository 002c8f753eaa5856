//! `cargo bench --bench duplicates`: precision and recall of near-duplicate groups on
//! copies planted in a real photo folder.
//!
//! A copy of `../shared/data/flowers5-train` (or `LIKENESS_DATA`) gets, for every 25th
//! photo, five planted variants next to it: resized to 50 %, recompressed at JPEG quality
//! 60, cropped by 5 %, brightness ±10 %, and a byte-for-byte copy. The folder is indexed
//! (exactly) with a trained model (`LIKENESS_BENCH_MODEL`, or one trained here for
//! `LIKENESS_BENCH_TRAIN_SECS`, default 120 s) and, when its weights are in the cache,
//! with `--model imagenet`. Pairs inside one planted family are the truth; pairs inside
//! one found group are the prediction. Printed per threshold: precision, recall, groups,
//! and how many grouped pairs were different photos of the same flower class.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;

use likeness::engine::collection::duplicates::{
    Candidates, DEFAULT_RELATIVE_THRESHOLD, LAYOUT_MATCH,
};
use likeness::engine::index::Gallery;

const EVERY: usize = 25;
const VARIANTS: [&str; 5] = ["half", "q60", "crop", "light", "copy"];

fn run(command: &mut Command) -> Result<(), Box<dyn std::error::Error>> {
    let output = command.output()?;
    if !output.status.success() {
        return Err(format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(())
}

fn save_jpeg(image: &image::RgbImage, path: &Path, quality: u8) -> image::ImageResult<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut file, quality).encode_image(image)
}

/// Copies `source` into `target` and plants the variants; returns each planted family's
/// files (the original first).
fn plant(source: &Path, target: &Path) -> Result<Vec<Vec<PathBuf>>, Box<dyn std::error::Error>> {
    let mut families = Vec::new();
    let mut classes: Vec<PathBuf> = std::fs::read_dir(source)?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.is_dir())
        .collect();
    classes.sort();
    let mut counter = 0;
    for class in classes {
        let out = target.join(class.file_name().ok_or("class name")?);
        std::fs::create_dir_all(&out)?;
        let mut photos: Vec<PathBuf> = std::fs::read_dir(&class)?
            .filter_map(|e| Some(e.ok()?.path()))
            .filter(|p| p.is_file())
            .collect();
        photos.sort();
        for photo in photos {
            let name = photo.file_name().ok_or("file name")?;
            let copied = out.join(name);
            std::fs::copy(&photo, &copied)?;
            counter += 1;
            if counter % EVERY != 0 {
                continue;
            }
            let Ok(image) = image::open(&photo) else {
                continue;
            };
            let image = image.to_rgb8();
            let stem = copied
                .file_stem()
                .ok_or("stem")?
                .to_string_lossy()
                .into_owned();
            let variant = |tag: &str| out.join(format!("{stem}-{tag}.jpg"));
            let (w, h) = image.dimensions();
            save_jpeg(
                &image::imageops::resize(
                    &image,
                    w / 2,
                    h / 2,
                    image::imageops::FilterType::Triangle,
                ),
                &variant("half"),
                90,
            )?;
            save_jpeg(&image, &variant("q60"), 60)?;
            let (dx, dy) = (w / 40, h / 40);
            let cropped =
                image::imageops::crop_imm(&image, dx, dy, w - 2 * dx, h - 2 * dy).to_image();
            save_jpeg(&cropped, &variant("crop"), 90)?;
            let factor = if counter % (2 * EVERY) == 0 { 1.1 } else { 0.9 };
            let mut light = image.clone();
            for pixel in light.pixels_mut() {
                for c in &mut pixel.0 {
                    *c = (*c as f32 * factor).round().clamp(0.0, 255.0) as u8;
                }
            }
            save_jpeg(&light, &variant("light"), 90)?;
            std::fs::copy(&photo, variant("copy"))?;
            let mut family = vec![copied.clone()];
            family.extend(VARIANTS.iter().map(|tag| variant(tag)));
            families.push(family);
        }
    }
    Ok(families)
}

struct Scores {
    precision: f64,
    recall: f64,
    groups: usize,
    same_class_unrelated: usize,
}

fn score(
    candidates: &Candidates,
    threshold: f32,
    layout_match: f32,
    family_of: &HashMap<PathBuf, usize>,
    true_pairs: usize,
) -> Scores {
    let groups = candidates.groups_with(threshold, layout_match);
    let (mut predicted, mut correct, mut same_class_unrelated) = (0, 0, 0);
    for group in &groups {
        for (i, &a) in group.members.iter().enumerate() {
            for &b in &group.members[i + 1..] {
                predicted += 1;
                let fa = family_of.get(&candidates.paths[a]);
                let fb = family_of.get(&candidates.paths[b]);
                if fa.is_some() && fa == fb {
                    correct += 1;
                } else if candidates.classes[a] == candidates.classes[b] {
                    same_class_unrelated += 1;
                }
            }
        }
    }
    Scores {
        precision: if predicted == 0 {
            1.0
        } else {
            correct as f64 / predicted as f64
        },
        recall: correct as f64 / true_pairs.max(1) as f64,
        groups: groups.len(),
        same_class_unrelated,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let source = std::env::var_os("LIKENESS_DATA").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/flowers5-train"),
        PathBuf::from,
    );
    if !source.is_dir() {
        println!(
            "duplicates bench skipped: {} not found (set LIKENESS_DATA)",
            source.display()
        );
        return Ok(());
    }
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_likeness"));
    let dir = tempfile::tempdir()?;
    let library = dir.path().join("library");
    let families = plant(&source, &library)?;
    let mut family_of = HashMap::new();
    for (f, family) in families.iter().enumerate() {
        for path in family {
            family_of.insert(std::fs::canonicalize(path)?, f);
        }
    }
    let true_pairs: usize = families.iter().map(|f| f.len() * (f.len() - 1) / 2).sum();
    let model = match std::env::var_os("LIKENESS_BENCH_MODEL") {
        Some(model) => PathBuf::from(model),
        None => {
            let model = dir.path().join("model.safetensors");
            let secs = std::env::var("LIKENESS_BENCH_TRAIN_SECS").unwrap_or("120".into());
            run(Command::new(&binary)
                .args(["train", "--data"])
                .arg(&source)
                .arg("--out")
                .arg(&model)
                .args(["--max-seconds", &secs]))?;
            model
        }
    };
    println!(
        "Near-duplicates planted in {} ({} families of 6: original, 50 % size, JPEG q60, 5 % \
         crop, ±10 % brightness, exact copy; {true_pairs} true pairs)",
        source.display(),
        families.len()
    );
    let mut models: Vec<(String, PathBuf)> = vec![("trained".into(), model)];
    models.push(("imagenet".into(), PathBuf::from("imagenet")));
    for (name, model) in models {
        let index = dir.path().join(format!("{name}.likeness-index"));
        if let Err(error) = run(Command::new(&binary)
            .args(["index", "--exact", "--model"])
            .arg(&model)
            .arg("--folder")
            .arg(&library)
            .arg("--index")
            .arg(&index))
        {
            let first = error.to_string();
            let first = first.lines().last().unwrap_or_default().to_string();
            println!("{name}: not available here ({first})");
            continue;
        }
        let mut gallery = Gallery::load(&index)?;
        let mut candidates = Candidates::find(&mut gallery, &|_| {}, &AtomicBool::new(false))?;
        let canonical: Vec<PathBuf> = candidates
            .paths
            .iter()
            .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
            .collect();
        candidates.paths = canonical;
        println!(
            "\n{name} model, {} photos, median nearest-neighbour distance {:.4}",
            gallery.len(),
            candidates.typical_distance
        );
        println!(
            "| threshold (share of median NN distance) | distance | layout ≥ | precision | recall | groups | unrelated same-class pairs grouped |"
        );
        println!("|---|---|---|---|---|---|---|");
        let shares: HashSet<u32> = [1.0f32, 3.0, 5.0, 8.0, 10.0, 12.0, 20.0]
            .into_iter()
            .chain([DEFAULT_RELATIVE_THRESHOLD])
            .map(f32::to_bits)
            .collect();
        let mut shares: Vec<f32> = shares.into_iter().map(f32::from_bits).collect();
        shares.sort_by(f32::total_cmp);
        for layout_match in [-1.0, 0.9, LAYOUT_MATCH, 0.97] {
            for &share in &shares {
                let threshold = share * candidates.typical_distance;
                let s = score(&candidates, threshold, layout_match, &family_of, true_pairs);
                let default = if share == DEFAULT_RELATIVE_THRESHOLD && layout_match == LAYOUT_MATCH
                {
                    " (default)"
                } else {
                    ""
                };
                let layout = if layout_match < 0.0 {
                    "any".to_string()
                } else {
                    format!("{layout_match:.2}")
                };
                println!(
                    "| {share:.2}{default} | {threshold:.4} | {layout} | {:.3} | {:.3} | {} | {} |",
                    s.precision, s.recall, s.groups, s.same_class_unrelated
                );
            }
        }
    }
    Ok(())
}
