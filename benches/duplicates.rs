//! `cargo bench --bench duplicates`: precision and recall of near-duplicate groups on
//! copies planted in a real photo folder.
//!
//! A copy of `../shared/data/flowers5-train` (or `LIKENESS_DATA`) gets, for every 25th
//! photo, planted variants next to it: the everyday edits of [`VARIANTS`] (resized to
//! 50 %, recompressed at JPEG quality 60, cropped by 5 % and by 10 %, brightened by 20 %
//! with the highlights clipped, darkened by 20 %, more contrast (clipped), turned by 3°)
//! and a byte-for-byte copy. `LIKENESS_BENCH_PLANTINGS` plantings (default 3) choose
//! different photos. The folder is indexed (exactly) with a trained model
//! (`LIKENESS_BENCH_MODEL`, or one trained here for `LIKENESS_BENCH_TRAIN_SECS`, default
//! 120 s, once) and, when its weights are in the cache, with `--model imagenet`. Pairs
//! inside one planted family are the truth; pairs inside one found group are the
//! prediction. Printed per threshold: precision, recall, groups, and how many grouped pairs
//! were different photos of the same flower class; and at the default, each edit's recall
//! (is the edited copy in its original's group?).
//!
//! First, the time to find duplicates at `LIKENESS_BENCH_SCALE` photos (default 10 000,
//! synthetic; `LIKENESS_BENCH_SCALE_ONLY=1` stops there), for the fingerprints of each
//! index version side by side.
//!
//! Burst shots are not planted: two frames of one moment cannot be made honestly from
//! single photos (a shifted crop of one photo is a crop, not a second frame).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;

use likeness::engine::collection::duplicates::{
    Candidates, DEFAULT_RELATIVE_THRESHOLD, HASH_MATCH, LAYOUT_MATCH,
};
use likeness::engine::index::Gallery;

const EVERY: usize = 25;
const VARIANTS: [&str; 9] = [
    "half", "q60", "crop5", "crop10", "brighter", "darker", "contrast", "turned", "copy",
];

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

/// Each pixel value through `f`, clipped to 0..=255 (as an editor clips highlights).
fn mapped(image: &image::RgbImage, f: impl Fn(f32) -> f32) -> image::RgbImage {
    let mut out = image.clone();
    for pixel in out.pixels_mut() {
        for c in &mut pixel.0 {
            *c = f(*c as f32).round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// `image` turned by `degrees` about its centre, bilinear, corners filled from the
/// nearest edge (as straightening in an editor does before its crop).
fn turned(image: &image::RgbImage, degrees: f32) -> image::RgbImage {
    let (w, h) = image.dimensions();
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    image::RgbImage::from_fn(w, h, |x, y| {
        let (dx, dy) = (x as f32 - cx, y as f32 - cy);
        let sx = (cos * dx + sin * dy + cx).clamp(0.0, w as f32 - 1.001);
        let sy = (-sin * dx + cos * dy + cy).clamp(0.0, h as f32 - 1.001);
        let (x0, y0) = (sx.floor() as u32, sy.floor() as u32);
        let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
        let at = |x: u32, y: u32| image.get_pixel(x.min(w - 1), y.min(h - 1)).0;
        let (a, b, c, d) = (
            at(x0, y0),
            at(x0 + 1, y0),
            at(x0, y0 + 1),
            at(x0 + 1, y0 + 1),
        );
        let mut out = [0u8; 3];
        for i in 0..3 {
            let top = a[i] as f32 * (1.0 - fx) + b[i] as f32 * fx;
            let bottom = c[i] as f32 * (1.0 - fx) + d[i] as f32 * fx;
            out[i] = (top * (1.0 - fy) + bottom * fy).round() as u8;
        }
        image::Rgb(out)
    })
}

/// Copies `source` into `target` and plants the variants next to every [`EVERY`]th photo
/// (counting from `offset`); returns each planted family's files (the original first,
/// then the variants in the order of [`VARIANTS`]).
fn plant(
    source: &Path,
    target: &Path,
    offset: usize,
) -> Result<Vec<Vec<PathBuf>>, Box<dyn std::error::Error>> {
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
            if counter % EVERY != offset % EVERY {
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
            // 5 % and 10 % of each side's length, taken from both ends.
            for (tag, share) in [("crop5", 40), ("crop10", 20)] {
                let (dx, dy) = (w / share, h / share);
                let cropped =
                    image::imageops::crop_imm(&image, dx, dy, w - 2 * dx, h - 2 * dy).to_image();
                save_jpeg(&cropped, &variant(tag), 90)?;
            }
            save_jpeg(
                &mapped(&image, |v| v * 1.2 + 10.0),
                &variant("brighter"),
                90,
            )?;
            save_jpeg(&mapped(&image, |v| v * 0.8), &variant("darker"), 90)?;
            save_jpeg(
                &mapped(&image, |v| (v - 128.0) * 1.3 + 128.0),
                &variant("contrast"),
                90,
            )?;
            let degrees = if counter % (2 * EVERY) == offset % EVERY {
                3.0
            } else {
                -3.0
            };
            save_jpeg(&turned(&image, degrees), &variant("turned"), 90)?;
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

/// At the default threshold: precision, recall, and each variant's recall.
type AtDefault = (f64, f64, Vec<f64>);

/// Indexes `library` with `model` and scores the groups at every threshold; returns the
/// default's precision, recall and each variant's recall (its family's original and it
/// in one group), or `None` when the model is not available here.
fn measure(
    binary: &Path,
    dir: &Path,
    library: &Path,
    families: &[Vec<PathBuf>],
    name: &str,
    model: &Path,
) -> Result<Option<AtDefault>, Box<dyn std::error::Error>> {
    let mut family_of = HashMap::new();
    for (f, family) in families.iter().enumerate() {
        for path in family {
            family_of.insert(std::fs::canonicalize(path)?, f);
        }
    }
    let true_pairs: usize = families.iter().map(|f| f.len() * (f.len() - 1) / 2).sum();
    let index = dir.join(format!("{name}.likeness-index"));
    if let Err(error) = run(Command::new(binary)
        .args(["index", "--exact", "--rebuild", "--model"])
        .arg(model)
        .arg("--folder")
        .arg(library)
        .arg("--index")
        .arg(&index))
    {
        let first = error.to_string();
        let first = first.lines().last().unwrap_or_default().to_string();
        println!("{name}: not available here ({first})");
        return Ok(None);
    }
    let mut gallery = Gallery::load(&index)?;
    let clock = std::time::Instant::now();
    let mut candidates = Candidates::find(&mut gallery, &|_| {}, &AtomicBool::new(false))?;
    let find_secs = clock.elapsed().as_secs_f64();
    let canonical: Vec<PathBuf> = candidates
        .paths
        .iter()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
        .collect();
    candidates.paths = canonical;
    println!(
        "\n{name} model, {} photos, median nearest-neighbour distance {:.4}, found in {find_secs:.2} s",
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
    for layout_match in [-1.0, LAYOUT_MATCH] {
        for &share in &shares {
            let threshold = share * candidates.typical_distance;
            let s = score(&candidates, threshold, layout_match, &family_of, true_pairs);
            let default = if share == DEFAULT_RELATIVE_THRESHOLD && layout_match == LAYOUT_MATCH {
                " (default)"
            } else {
                ""
            };
            let layout = if layout_match < 0.0 {
                "any".to_string()
            } else {
                format!("{layout_match:.2} or hash ≤ {HASH_MATCH} bits")
            };
            println!(
                "| {share:.2}{default} | {threshold:.4} | {layout} | {:.3} | {:.3} | {} | {} |",
                s.precision, s.recall, s.groups, s.same_class_unrelated
            );
        }
    }
    let threshold = DEFAULT_RELATIVE_THRESHOLD * candidates.typical_distance;
    let s = score(&candidates, threshold, LAYOUT_MATCH, &family_of, true_pairs);
    let groups = candidates.groups(threshold);
    let mut group_of: HashMap<&Path, usize> = HashMap::new();
    for (g, group) in groups.iter().enumerate() {
        for &m in &group.members {
            group_of.insert(candidates.paths[m].as_path(), g);
        }
    }
    let together = |a: &Path, b: &Path| -> bool {
        let (Ok(a), Ok(b)) = (std::fs::canonicalize(a), std::fs::canonicalize(b)) else {
            return false;
        };
        group_of
            .get(a.as_path())
            .is_some_and(|g| group_of.get(b.as_path()) == Some(g))
    };
    let per_variant: Vec<f64> = (0..VARIANTS.len())
        .map(|v| {
            let hits = families
                .iter()
                .filter(|family| together(&family[0], &family[v + 1]))
                .count();
            hits as f64 / families.len().max(1) as f64
        })
        .collect();
    Ok(Some((s.precision, s.recall, per_variant)))
}

/// Standard normal draws (Box–Muller).
fn normal(rng: &mut fastrand::Rng) -> f32 {
    let u = rng.f32().max(f32::MIN_POSITIVE);
    (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * rng.f32()).cos()
}

/// What an index's photos carry for telling the same shot apart, as each index version
/// wrote it: the layout alone, the whole photo's perceptual hash, or that and the hashes
/// of its middles.
#[derive(Clone, Copy)]
enum Prints {
    LayoutOnly,
    WholeHash,
    WholeAndMiddles,
}

/// Seconds to find duplicates among `count` photos of a synthetic index (512-d vectors in
/// clusters of about 10, random layouts and hashes), with `prints` as the index has them.
/// The same code runs for each: an older index takes the paths it took then.
fn seconds_to_find(count: usize, prints: Prints) -> Result<f64, Box<dyn std::error::Error>> {
    use likeness::engine::data::ImageFile;
    use likeness::engine::data::fingerprint::{Fingerprint, PerceptualHash};
    const DIMENSION: usize = 512;
    let mut rng = fastrand::Rng::with_seed(11);
    let centres: Vec<Vec<f32>> = (0..count / 10 + 1)
        .map(|_| (0..DIMENSION).map(|_| normal(&mut rng)).collect())
        .collect();
    let mut vectors = Vec::with_capacity(count * DIMENSION);
    let mut images = Vec::with_capacity(count);
    for i in 0..count {
        let centre = &centres[rng.usize(..centres.len())];
        vectors.extend(centre.iter().map(|c| c + 0.3 * normal(&mut rng)));
        let mut image = ImageFile::new(PathBuf::from(format!("/nowhere/{i}.jpg")), None);
        let mut cells = [0i8; 64];
        cells.iter_mut().for_each(|c| *c = rng.i8(..));
        let hash = Some(PerceptualHash(rng.u64(..)));
        let middles = Some([PerceptualHash(rng.u64(..)), PerceptualHash(rng.u64(..))]);
        image.fingerprint = Some(match prints {
            Prints::LayoutOnly => Fingerprint {
                cells,
                hash: None,
                middles: None,
            },
            Prints::WholeHash => Fingerprint {
                cells,
                hash,
                middles: None,
            },
            Prints::WholeAndMiddles => Fingerprint {
                cells,
                hash,
                middles,
            },
        });
        images.push(image);
    }
    let header = likeness::engine::index::GalleryHeader {
        format_version: 1,
        model_id: "synthetic".into(),
        model_path: "synthetic.safetensors".into(),
        folder: PathBuf::from("/nowhere"),
        dimension: DIMENSION,
        images,
        skipped: Vec::new(),
        vectors_checksum: None,
        exclude: Vec::new(),
        search: Default::default(),
        ids: Vec::new(),
    };
    let mut gallery = Gallery::from_parts(header, vectors)?;
    let clock = std::time::Instant::now();
    Candidates::find(&mut gallery, &|_| {}, &AtomicBool::new(false))?;
    Ok(clock.elapsed().as_secs_f64())
}

/// The time to find duplicates at `LIKENESS_BENCH_SCALE` photos (default 10 000), for
/// each index version's fingerprints, side by side.
fn scale() -> Result<(), Box<dyn std::error::Error>> {
    let count: usize = std::env::var("LIKENESS_BENCH_SCALE")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    println!("\nTime to find duplicates among {count} photos (synthetic index, one run):");
    println!("| what the index keeps per photo | seconds |");
    println!("|---|---:|");
    for (label, prints) in [
        ("layout (indexes before the hash)", Prints::LayoutOnly),
        (
            "layout + whole-photo hash (before the middles)",
            Prints::WholeHash,
        ),
        (
            "layout + whole-photo hash + 2 middles (now)",
            Prints::WholeAndMiddles,
        ),
    ] {
        println!("| {label} | {:.2} |", seconds_to_find(count, prints)?);
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // As the binary does (src/main.rs): freed memory is kept for reuse.
    likeness::engine::device::openmp_threads_spin_briefly();
    likeness::engine::device::keep_freed_memory();
    likeness::engine::device::blas_on_calling_thread();
    scale()?;
    if std::env::var_os("LIKENESS_BENCH_SCALE_ONLY").is_some() {
        return Ok(());
    }
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
    let plantings: usize = std::env::var("LIKENESS_BENCH_PLANTINGS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3);
    let mut at_default: Vec<AtDefault> = Vec::new();
    for planting in 0..plantings {
        let library = dir.path().join(format!("library-{planting}"));
        let families = plant(&source, &library, planting * 7)?;
        println!(
            "\nPlanting {}: near-duplicates planted in {} ({} families of {}: the original, {}; \
             {} true pairs)",
            planting + 1,
            source.display(),
            families.len(),
            VARIANTS.len() + 1,
            VARIANTS.join(", "),
            families
                .iter()
                .map(|f| f.len() * (f.len() - 1) / 2)
                .sum::<usize>()
        );
        for (name, model) in [("trained", model.clone()), ("imagenet", "imagenet".into())] {
            let result = measure(&binary, dir.path(), &library, &families, name, &model)?;
            if let Some(result) = result
                && name == "trained"
            {
                at_default.push(result);
            }
        }
        std::fs::remove_dir_all(&library)?;
    }
    if !at_default.is_empty() {
        let mean = |values: Vec<f64>| {
            let n = values.len() as f64;
            let mean = values.iter().sum::<f64>() / n;
            let spread = (values.iter().copied().fold(f64::MIN, f64::max)
                - values.iter().copied().fold(f64::MAX, f64::min))
                / 2.0;
            format!("{mean:.3} ± {spread:.3}")
        };
        println!(
            "\nAt the default, trained model, {} plantings: precision {}, recall {}",
            at_default.len(),
            mean(at_default.iter().map(|r| r.0).collect()),
            mean(at_default.iter().map(|r| r.1).collect())
        );
        println!("| edit | recall against the original |");
        println!("|---|---:|");
        for (v, tag) in VARIANTS.iter().enumerate() {
            println!(
                "| {tag} | {} |",
                mean(at_default.iter().map(|r| r.2[v]).collect())
            );
        }
    }
    Ok(())
}
