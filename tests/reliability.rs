//! The case list: bad folders, bad files and faults, each run through the `likeness`
//! binary as a user (or a hostile file) would. Each test asserts the exit code, the
//! message, that the good files next to the bad one were processed, and that nothing
//! partial is left at a final path. Numbers refer to the cases of issue #14; the last
//! tests are cases that were already handled and must stay so.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use likeness::engine::files::INDEX_MAGIC;
use likeness::engine::synthetic::{class_image, write_tiny_model};

fn likeness_in(dir: Option<&Path>, args: &[&OsStr]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_likeness"));
    command
        .args(args)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY");
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    command.output().expect("run likeness")
}

fn likeness(args: &[&str]) -> Output {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    likeness_in(None, &args)
}

fn s(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn last_json(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|_| panic!("no JSON in {stdout:?}"))
}

/// The exit code, and the message when it is not 0 (never a panic's 101 or an abort).
fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        stderr(output)
    );
}

/// A tiny untrained model file (32 px, 8-d).
fn tiny_model(path: &Path) {
    write_tiny_model(path).expect("tiny model");
}

/// `count` small photos in `folder` (PNG), named photo_0.png…
fn photos(folder: &Path, count: usize) -> Vec<PathBuf> {
    std::fs::create_dir_all(folder).expect("mkdir");
    let mut rng = fastrand::Rng::with_seed(count as u64);
    (0..count)
        .map(|i| {
            let path = folder.join(format!("photo_{i}.png"));
            class_image(i % 3, 3, 32, &mut rng)
                .save(&path)
                .expect("save");
            path
        })
        .collect()
}

/// No temporary of ours is left in `folder`.
fn assert_no_temporaries(folder: &Path) {
    let left: Vec<_> = std::fs::read_dir(folder)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".likeness-tmp-") || n.contains(".tmp-"))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "temporaries left in {}: {left:?}",
        folder.display()
    );
}

struct Fixture {
    dir: tempfile::TempDir,
    model: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let model = dir.path().join("tiny.safetensors");
        tiny_model(&model);
        Self { dir, model }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn index(&self, folder: &Path, index: &Path) -> Output {
        likeness(&[
            "index",
            "--model",
            s(&self.model),
            "--folder",
            s(folder),
            "--index",
            s(index),
            "--device",
            "cpu",
            "--json",
        ])
    }

    /// An index of 3 photos in `photos/`.
    fn indexed(&self) -> (PathBuf, PathBuf, Vec<PathBuf>) {
        let folder = self.path("photos");
        let files = photos(&folder, 3);
        let index = self.path("photos.likeness-index");
        assert_exit(&self.index(&folder, &index), 0);
        (folder, index, files)
    }

    fn export(&self, index: &Path, query: &Path, k: usize, to: &Path) -> Output {
        likeness(&[
            "export",
            "--index",
            s(index),
            s(query),
            "-k",
            &k.to_string(),
            "--to",
            s(to),
            "--device",
            "cpu",
        ])
    }
}

fn skipped_reasons(json: &serde_json::Value) -> Vec<String> {
    json["skipped_files"]
        .as_array()
        .map(|files| {
            files
                .iter()
                .map(|f| {
                    format!(
                        "{} {}",
                        f["path"].as_str().unwrap_or(""),
                        f["reason"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(unix)]
#[test]
fn case_01_two_links_to_the_folder_itself_do_not_hang_the_walk() {
    let fixture = Fixture::new();
    let folder = fixture.path("photos");
    photos(&folder, 3);
    std::os::unix::fs::symlink(".", folder.join("a")).expect("link");
    std::os::unix::fs::symlink(".", folder.join("b")).expect("link");
    let started = Instant::now();
    let output = fixture.index(&folder, &fixture.path("i.likeness-index"));
    assert_exit(&output, 0);
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(last_json(&output)["images"], 3);
}

#[cfg(unix)]
#[test]
fn case_02_a_link_to_the_parent_is_not_followed_and_photos_are_listed_once() {
    let fixture = Fixture::new();
    let folder = fixture.path("photos");
    photos(&folder, 3);
    std::os::unix::fs::symlink("..", folder.join("loop")).expect("link");
    let output = fixture.index(&folder, &fixture.path("i.likeness-index"));
    assert_exit(&output, 0);
    let json = last_json(&output);
    assert_eq!(json["images"], 3);
    let reasons = skipped_reasons(&json);
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("loop") && r.contains("outside the folder; not followed")),
        "{reasons:?}"
    );
}

#[cfg(unix)]
#[test]
fn case_03_a_name_that_is_not_utf8_is_skipped_and_the_rest_indexed() {
    use std::os::unix::ffi::OsStrExt;
    let fixture = Fixture::new();
    let folder = fixture.path("photos");
    let files = photos(&folder, 3);
    let odd = folder.join(OsStr::from_bytes(b"caf\xe9.png"));
    std::fs::copy(&files[0], &odd).expect("copy");
    let index = fixture.path("i.likeness-index");
    let output = fixture.index(&folder, &index);
    assert_exit(&output, 0);
    let json = last_json(&output);
    assert_eq!(json["images"], 3);
    assert!(
        skipped_reasons(&json)
            .iter()
            .any(|r| r.contains("not valid UTF-8"))
    );
    assert!(index.is_file());
}

#[test]
fn case_04_a_relative_folder_gives_absolute_paths_that_work_from_anywhere() {
    let fixture = Fixture::new();
    let folder = fixture.path("photos");
    let files = photos(&folder, 3);
    let args = [
        "index",
        "--model",
        s(&fixture.model),
        "--folder",
        "photos",
        "--index",
        "rel.likeness-index",
        "--device",
        "cpu",
    ];
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    assert_exit(&likeness_in(Some(fixture.dir.path()), &args), 0);
    let index = fixture.path("rel.likeness-index");
    // Searched from another working directory: the results are real, absolute files.
    let search = [
        "search",
        "--index",
        s(&index),
        s(&files[1]),
        "-k",
        "3",
        "--json",
        "--device",
        "cpu",
    ];
    let search: Vec<&OsStr> = search.iter().map(OsStr::new).collect();
    let output = likeness_in(Some(Path::new("/")), &search);
    assert_exit(&output, 0);
    let json = last_json(&output);
    let hits = json["queries"][0]["results"].as_array().expect("results");
    assert_eq!(hits.len(), 3);
    for hit in hits {
        let path = Path::new(hit["path"].as_str().expect("path"));
        assert!(path.is_absolute() && path.is_file(), "{path:?}");
    }
}

#[test]
fn case_05_a_failed_export_leaves_nothing_behind_and_the_next_one_works() {
    let fixture = Fixture::new();
    let (_, index, files) = fixture.indexed();
    let export = fixture.path("export");
    // One photo vanished after indexing: the export fails as a whole.
    let kept = std::fs::read(&files[2]).expect("read");
    std::fs::remove_file(&files[2]).expect("remove");
    let output = fixture.export(&index, &files[0], 3, &export);
    assert_exit(&output, 1);
    let left: Vec<_> = std::fs::read_dir(&export)
        .expect("export folder")
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "a failed export left {left:?}");
    // The photo is back: the same folder takes the export.
    std::fs::write(&files[2], kept).expect("restore");
    assert_exit(&fixture.export(&index, &files[0], 3, &export), 0);
    assert!(export.join("results.json").is_file());
    assert_no_temporaries(&export);
}

#[test]
fn case_06_a_photo_with_a_long_legal_name_is_exported() {
    let fixture = Fixture::new();
    let folder = fixture.path("photos");
    let files = photos(&folder, 2);
    let long = folder.join(format!("{}.png", "x".repeat(250)));
    std::fs::copy(&files[0], &long).expect("copy");
    let index = fixture.path("i.likeness-index");
    assert_exit(&fixture.index(&folder, &index), 0);
    let export = fixture.path("export");
    assert_exit(&fixture.export(&index, &long, 3, &export), 0);
    let names: Vec<String> = std::fs::read_dir(&export)
        .expect("list")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 5, "{names:?}");
    assert!(names.iter().all(|n| n.len() <= 255));
    assert!(
        names
            .iter()
            .any(|n| n.contains("_xxxxx") && n.ends_with(".png")),
        "{names:?}"
    );
}

#[test]
fn case_07_a_users_results_json_is_not_taken_for_an_export() {
    let fixture = Fixture::new();
    let (_, index, files) = fixture.indexed();
    let theirs = fixture.path("theirs");
    std::fs::create_dir(&theirs).expect("mkdir");
    std::fs::write(theirs.join("results.json"), b"{\"my\": \"data\"}").expect("write");
    std::fs::write(theirs.join("results.csv"), b"a,b\n").expect("write");
    let output = fixture.export(&index, &files[0], 2, &theirs);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("not written by a Likeness export"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        std::fs::read(theirs.join("results.json")).expect("read"),
        b"{\"my\": \"data\"}"
    );
    assert_eq!(
        std::fs::read(theirs.join("results.csv")).expect("read"),
        b"a,b\n"
    );
    assert_eq!(std::fs::read_dir(&theirs).expect("list").count(), 2);
}

/// Rewrites a model file's description (the `likeness.info` metadata).
fn craft_model(source: &Path, target: &Path, change: impl Fn(&mut serde_json::Value)) {
    let bytes = std::fs::read(source).expect("read");
    let file = safetensors::SafeTensors::deserialize(&bytes).expect("parse");
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).expect("metadata");
    let mut metadata = metadata.metadata().clone().expect("metadata");
    let mut info: serde_json::Value =
        serde_json::from_str(&metadata["likeness.info"]).expect("info");
    change(&mut info);
    metadata.insert("likeness.info".into(), info.to_string());
    let tensors = file.tensors();
    let out = safetensors::serialize(tensors, Some(metadata)).expect("serialise");
    std::fs::write(target, out).expect("write");
}

/// A change to a model's description.
type DescriptionChange = fn(&mut serde_json::Value);

#[test]
fn case_08_a_model_description_that_lies_is_refused_without_a_panic() {
    let fixture = Fixture::new();
    let folder = fixture.path("photos");
    photos(&folder, 2);
    let cases: [(&str, DescriptionChange); 5] = [
        ("huge embedding", |i| {
            i["config"]["embedding_dim"] = 1_000_000_000_000u64.into()
        }),
        ("zero size", |i| {
            i["config"]["preprocess"]["image_size_px"] = 0.into()
        }),
        ("huge size", |i| {
            i["config"]["preprocess"]["image_size_px"] = 70_000.into()
        }),
        ("zero std", |i| {
            i["config"]["preprocess"]["std"] = serde_json::json!([0.0, 0.0, 0.0])
        }),
        ("other dim", |i| i["config"]["embedding_dim"] = 16.into()),
    ];
    for (name, change) in cases {
        let model = fixture.path(&format!("{}.safetensors", name.replace(' ', "-")));
        craft_model(&fixture.model, &model, change);
        let index = fixture.path("crafted.likeness-index");
        let output = likeness(&[
            "index",
            "--model",
            s(&model),
            "--folder",
            s(&folder),
            "--index",
            s(&index),
            "--device",
            "cpu",
        ]);
        assert_exit(&output, 1);
        assert!(
            stderr(&output).contains("damaged"),
            "{name}: {}",
            stderr(&output)
        );
        assert!(!index.exists(), "{name}: an index was written");
    }
}

#[test]
fn case_09_a_truncated_jpeg_is_reported_as_damaged_and_the_rest_indexed() {
    let fixture = Fixture::new();
    let folder = fixture.path("photos");
    photos(&folder, 3);
    let mut rng = fastrand::Rng::with_seed(9);
    let jpeg = folder.join("cut.jpg");
    class_image(0, 3, 64, &mut rng).save(&jpeg).expect("jpeg");
    let bytes = std::fs::read(&jpeg).expect("read");
    std::fs::write(&jpeg, &bytes[..bytes.len() / 2]).expect("truncate");
    // A complete JPEG whose header claims 4000×3000 pixels.
    let liar = folder.join("liar.jpg");
    class_image(1, 3, 64, &mut rng).save(&liar).expect("jpeg");
    let mut bytes = std::fs::read(&liar).expect("read");
    let sof = bytes
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("baseline frame header");
    bytes[sof + 5..sof + 9].copy_from_slice(&[0x0B, 0xB8, 0x0F, 0xA0]); // 3000 high, 4000 wide
    std::fs::write(&liar, bytes).expect("write");
    let output = fixture.index(&folder, &fixture.path("i.likeness-index"));
    assert_exit(&output, 0);
    let json = last_json(&output);
    assert_eq!(json["images"], 3);
    assert!(
        skipped_reasons(&json)
            .iter()
            .any(|r| r.contains("liar.jpg") && r.contains("claims 4000×3000")),
        "{:?}",
        skipped_reasons(&json)
    );
    assert!(
        skipped_reasons(&json)
            .iter()
            .any(|r| r.contains("cut.jpg") && r.contains("damaged JPEG")),
        "{:?}",
        skipped_reasons(&json)
    );
}

#[test]
fn case_10_a_folder_of_only_bad_files_writes_no_index_and_fails() {
    let fixture = Fixture::new();
    let folder = fixture.path("bad");
    std::fs::create_dir(&folder).expect("mkdir");
    std::fs::write(folder.join("a.png"), b"not a png at all").expect("write");
    let mut rng = fastrand::Rng::with_seed(10);
    let jpeg = folder.join("b.jpg");
    class_image(0, 3, 64, &mut rng).save(&jpeg).expect("jpeg");
    let bytes = std::fs::read(&jpeg).expect("read");
    std::fs::write(&jpeg, &bytes[..bytes.len() / 3]).expect("truncate");
    let index = fixture.path("bad.likeness-index");
    let output = fixture.index(&folder, &index);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("no index was written"),
        "{}",
        stderr(&output)
    );
    assert!(!index.exists());
    assert_no_temporaries(fixture.dir.path());
}

#[test]
fn case_11_a_smaller_re_export_removes_the_earlier_extra_files() {
    let fixture = Fixture::new();
    let (_, index, files) = fixture.indexed();
    let export = fixture.path("export");
    assert_exit(&fixture.export(&index, &files[0], 3, &export), 0);
    assert_exit(&fixture.export(&index, &files[0], 1, &export), 0);
    let mut names: Vec<String> = std::fs::read_dir(&export)
        .expect("list")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["01_photo_0.png", "results.csv", "results.json"]);
}

#[cfg(unix)]
#[test]
fn case_12_an_exported_copy_keeps_its_sources_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let fixture = Fixture::new();
    let (_, index, files) = fixture.indexed();
    for file in &files {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let export = fixture.path("export");
    assert_exit(&fixture.export(&index, &files[0], 1, &export), 0);
    let mode = std::fs::metadata(export.join("01_photo_0.png"))
        .expect("copy")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// Rewrites an index file: `change` edits the header and the vectors. With `checksum`,
/// the vectors' checksum is recomputed (a consistent forgery); without, it is left stale.
fn craft_index(
    source: &Path,
    target: &Path,
    checksum: bool,
    change: impl Fn(&mut serde_json::Value, &mut Vec<u8>),
) {
    let bytes = std::fs::read(source).expect("read");
    let rest = &bytes[INDEX_MAGIC.len()..];
    let header_len = u64::from_le_bytes(rest[4..12].try_into().expect("len")) as usize;
    let mut header: serde_json::Value =
        serde_json::from_slice(&rest[12..12 + header_len]).expect("header");
    let mut vectors = rest[12 + header_len..].to_vec();
    change(&mut header, &mut vectors);
    if checksum {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for &byte in &vectors {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        header["vectors_checksum"] = format!("{hash:016x}").into();
    }
    let header = serde_json::to_vec(&header).expect("json");
    let mut out = INDEX_MAGIC.to_vec();
    out.extend_from_slice(&rest[..4]);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&vectors);
    std::fs::write(target, out).expect("write");
}

#[test]
fn case_13_index_contents_are_checked() {
    let fixture = Fixture::new();
    let (_, index, files) = fixture.indexed();
    let search = |index: &Path| {
        likeness(&[
            "search",
            "--index",
            s(index),
            s(&files[0]),
            "-k",
            "2",
            "--device",
            "cpu",
        ])
    };
    // A dimension unlike the model's (vectors resized to match the claim).
    let other_dim = fixture.path("dim.likeness-index");
    craft_index(&index, &other_dim, true, |header, vectors| {
        header["dimension"] = 4.into();
        vectors.truncate(vectors.len() / 2);
    });
    let output = search(&other_dim);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("4-d vectors"),
        "{}",
        stderr(&output)
    );
    // NaN vectors, with a matching checksum.
    let nan = fixture.path("nan.likeness-index");
    craft_index(&index, &nan, true, |_, vectors| {
        vectors[..4].copy_from_slice(&f32::NAN.to_le_bytes());
    });
    let output = search(&nan);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("not numbers"),
        "{}",
        stderr(&output)
    );
    // One flipped byte: the checksum catches it.
    let flipped = fixture.path("flipped.likeness-index");
    craft_index(&index, &flipped, false, |_, vectors| vectors[5] ^= 0x10);
    let output = search(&flipped);
    assert_exit(&output, 1);
    assert!(stderr(&output).contains("checksum"), "{}", stderr(&output));
    // The real index still answers.
    assert_exit(&search(&index), 0);
}

#[test]
fn case_14_a_killed_saves_temporary_is_cleaned_by_the_next_save() {
    let fixture = Fixture::new();
    let folder = fixture.path("photos");
    photos(&folder, 2);
    let out = fixture.path("indexes");
    std::fs::create_dir(&out).expect("mkdir");
    // What a save killed by kill -9 leaves: its process is gone.
    let stale = out.join(".likeness-tmp-4194399-0badf00d");
    let legacy = out.join(".i.likeness-index.tmp-4194398-77");
    std::fs::write(&stale, b"half an index").expect("write");
    std::fs::write(&legacy, b"half an index").expect("write");
    assert_exit(&fixture.index(&folder, &out.join("i.likeness-index")), 0);
    assert!(!stale.exists() && !legacy.exists());
    assert_no_temporaries(&out);
}

#[test]
fn case_15_export_reads_only_regular_files_inside_the_indexed_folder() {
    let fixture = Fixture::new();
    let (_, index, files) = fixture.indexed();
    let outside = fixture.path("secret.png");
    std::fs::copy(&files[1], &outside).expect("copy");
    for (name, target) in [
        ("dev-zero", "/dev/zero".to_string()),
        ("outside", s(&outside).to_string()),
    ] {
        let crafted = fixture.path(&format!("{name}.likeness-index"));
        craft_index(&index, &crafted, false, |header, _| {
            for image in header["images"].as_array_mut().expect("images") {
                image["path"] = target.clone().into();
            }
        });
        let export = fixture.path(&format!("export-{name}"));
        let output = fixture.export(&crafted, &files[0], 2, &export);
        assert_exit(&output, 1);
        let message = stderr(&output);
        assert!(
            message.contains("outside the indexed folder")
                || message.contains("not a regular file"),
            "{name}: {message}"
        );
        assert_eq!(
            std::fs::read_dir(&export).map(|d| d.count()).unwrap_or(0),
            0,
            "{name}: something was exported"
        );
    }
}

/// CRC-32 (IEEE), as PNG chunks carry it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

// Cases that were already handled, kept so.

#[test]
fn handled_odd_formats_swapped_extensions_bombs_and_junk() {
    let fixture = Fixture::new();
    let folder = fixture.path("photos");
    let files = photos(&folder, 2);
    let image = image::open(&files[0]).expect("open").to_rgb8();
    for format in ["bmp", "gif", "tiff", "webp"] {
        image
            .save(folder.join(format!("odd.{format}")))
            .expect("save");
    }
    // A JPEG named .png, and text named .jpg.
    image
        .save_with_format(folder.join("swapped.png"), image::ImageFormat::Jpeg)
        .expect("save");
    std::fs::write(folder.join("text.jpg"), b"hello, not a photo").expect("write");
    // A PNG whose header claims 200 000 × 200 000 pixels (a valid IHDR, with its CRC).
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&200_000u32.to_be_bytes());
    ihdr.extend_from_slice(&200_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut bomb = b"\x89PNG\r\n\x1a\n\0\0\0\r".to_vec();
    bomb.extend_from_slice(&ihdr);
    bomb.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    // A first IDAT (the pixels would follow; the header check stops before them).
    let idat = b"IDAT\x78\x9c";
    bomb.extend_from_slice(&2u32.to_be_bytes());
    bomb.extend_from_slice(idat);
    bomb.extend_from_slice(&crc32(idat).to_be_bytes());
    bomb.extend_from_slice(&[0, 0, 0, 0]);
    bomb.extend_from_slice(b"IEND");
    bomb.extend_from_slice(&crc32(b"IEND").to_be_bytes());
    std::fs::write(folder.join("bomb.png"), bomb).expect("write");
    let output = fixture.index(&folder, &fixture.path("i.likeness-index"));
    assert_exit(&output, 0);
    let json = last_json(&output);
    assert_eq!(json["images"], 7, "{:?}", skipped_reasons(&json));
    let reasons = skipped_reasons(&json);
    assert!(reasons.iter().any(|r| r.contains("text.jpg")));
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("bomb.png") && r.contains("megapixels")),
        "{reasons:?}"
    );
}

#[test]
fn handled_pickles_and_swapped_model_and_index_files_are_refused() {
    let fixture = Fixture::new();
    let (folder, index, files) = fixture.indexed();
    let pickle = fixture.path("model.pt");
    std::fs::write(&pickle, b"\x80\x02}q\x00(X\x05\x00\x00\x00torch").expect("write");
    let output = likeness(&[
        "index",
        "--model",
        s(&pickle),
        "--folder",
        s(&folder),
        "--index",
        s(&fixture.path("p.likeness-index")),
    ]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("pickle files are never loaded"),
        "{}",
        stderr(&output)
    );
    let output = likeness(&["search", "--index", s(&fixture.model), s(&files[0])]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("model file, not an index"),
        "{}",
        stderr(&output)
    );
    let output = likeness(&[
        "index",
        "--model",
        s(&index),
        "--folder",
        s(&folder),
        "--index",
        s(&fixture.path("q.likeness-index")),
    ]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("index, not a model"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn handled_a_model_replaced_under_its_index_is_refused() {
    let fixture = Fixture::new();
    let (_, index, files) = fixture.indexed();
    tiny_model(&fixture.model); // a different, freshly initialised model at the same path
    let output = likeness(&[
        "search",
        "--index",
        s(&index),
        s(&files[0]),
        "--device",
        "cpu",
    ]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("was built with model"),
        "{}",
        stderr(&output)
    );
}

#[cfg(unix)]
#[test]
fn handled_kill_9_during_indexing_keeps_the_previous_index() {
    let fixture = Fixture::new();
    let (folder, index, files) = fixture.indexed();
    let before = std::fs::read(&index).expect("index");
    photos(&folder.join("more"), 300);
    let mut child = Command::new(env!("CARGO_BIN_EXE_likeness"))
        .args([
            "index",
            "--model",
            s(&fixture.model),
            "--folder",
            s(&folder),
            "--index",
            s(&index),
            "--device",
            "cpu",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(1500));
    // On a fast machine the update may already be done; then the new index must be whole.
    let finished_first = child.try_wait().expect("child status").is_some();
    child.kill().ok(); // SIGKILL
    child.wait().ok();
    if !finished_first {
        assert_eq!(
            std::fs::read(&index).expect("index"),
            before,
            "a killed update changed the index"
        );
    }
    let output = likeness(&[
        "search",
        "--index",
        s(&index),
        s(&files[0]),
        "-k",
        "1",
        "--device",
        "cpu",
    ]);
    assert_exit(&output, 0);
}
