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

#[path = "common/binary.rs"]
#[allow(dead_code)] // each test crate uses its own subset
mod binary;
use binary::{last_json, likeness, s, stderr};

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

    fn index_args<'a>(&'a self, folder: &'a Path, index: &'a Path) -> [&'a str; 9] {
        [
            "index",
            "--model",
            s(&self.model),
            "--folder",
            s(folder),
            "--index",
            s(index),
            "--device",
            "cpu",
        ]
    }

    fn index(&self, folder: &Path, index: &Path) -> Output {
        let mut args = self.index_args(folder, index).to_vec();
        args.push("--json");
        likeness(&args)
    }

    /// `likeness index … --json` started in the background, its output piped.
    fn spawn_index(&self, folder: &Path, index: &Path) -> std::process::Child {
        Command::new(env!("CARGO_BIN_EXE_likeness"))
            .args(self.index_args(folder, index))
            .arg("--json")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
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
    let mut child = fixture.spawn_index(&folder, &index);
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().ok(); // SIGKILL
    child.wait().ok();
    // The previous index, or (when the update beat the kill, which a fast machine or an
    // unlucky moment allows) the whole new one: never anything in between.
    let after = std::fs::read(&index).expect("index");
    if after != before {
        let updated = likeness::engine::index::Gallery::load(&index).expect("a whole index");
        assert_eq!(updated.len(), 303, "a killed update left a partial index");
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

// Issue #22: outputs that overwrite what they should not, files that are not files.

/// The bytes of each file, to show nothing was replaced.
fn contents(files: &[&Path]) -> Vec<Vec<u8>> {
    files
        .iter()
        .map(|f| std::fs::read(f).expect("read"))
        .collect()
}

#[test]
fn case_22_01_an_output_replaces_only_its_own_kind_and_never_an_input() {
    let fixture = Fixture::new();
    let (folder, index, files) = fixture.indexed();
    let before = contents(&[&fixture.model, &index, &files[0]]);
    let refused = |output: &Output, what: &str| {
        assert_exit(output, 1);
        let message = stderr(output);
        assert!(message.contains(what), "{message}");
        assert!(message.contains("nothing was done"), "{message}");
    };

    // --index naming the model (the reported case), and a photo inside the folder.
    let output = likeness(&[
        "index",
        "--model",
        s(&fixture.model),
        "--folder",
        s(&folder),
        "--index",
        s(&fixture.model),
        "--device",
        "cpu",
    ]);
    refused(&output, "--model");
    let output = likeness(&[
        "index",
        "--model",
        s(&fixture.model),
        "--folder",
        s(&folder),
        "--index",
        s(&files[0]),
        "--device",
        "cpu",
    ]);
    refused(&output, "is a photo (Png)");

    // train --out over a photo and over the index.
    let data = fixture.path("classes");
    likeness::engine::synthetic::write_dataset(&data, 2, 4, 32, 1).expect("dataset");
    for target in [&files[0], &index] {
        let output = likeness(&[
            "train",
            "--data",
            s(&data),
            "--out",
            s(target),
            "--epochs",
            "1",
            "--image-size",
            "32",
            "--device",
            "cpu",
        ]);
        refused(&output, "Likeness writes a model only");
        assert!(!stderr(&output).contains("training on"), "trained first");
    }
    // map --out over a photo, duplicates --others-csv over the index it reads.
    let photo_png = fixture.path("photo.png");
    std::fs::copy(&files[1], &photo_png).expect("copy");
    let output = likeness(&["map", "--index", s(&index), "--out", s(&photo_png)]);
    refused(&output, "is a photo");
    let output = likeness(&[
        "duplicates",
        "--index",
        s(&index),
        "--others-csv",
        s(&index),
    ]);
    refused(&output, "--index");
    assert_eq!(contents(&[&fixture.model, &index, &files[0]]), before);
    assert_eq!(
        std::fs::read(&photo_png).ok(),
        std::fs::read(&files[1]).ok()
    );

    // Their own earlier outputs are replaced without fuss.
    let map = fixture.path("map.png");
    let table = fixture.path("map.csv");
    let list = fixture.path("others.csv");
    for _ in 0..2 {
        assert_exit(
            &likeness(&["map", "--index", s(&index), "--out", s(&map)]),
            0,
        );
        assert_exit(
            &likeness(&["map", "--index", s(&index), "--out", s(&table)]),
            0,
        );
        let output = likeness(&["duplicates", "--index", s(&index), "--others-csv", s(&list)]);
        assert_exit(&output, 0);
        assert_exit(&fixture.index(&folder, &index), 0);
    }
    // A CSV of the person's own under the map's name is not replaced.
    let theirs = fixture.path("budget.csv");
    std::fs::write(&theirs, "month,amount\njan,3\n").expect("write");
    let output = likeness(&["map", "--index", s(&index), "--out", s(&theirs)]);
    refused(&output, "a file Likeness did not write");
    assert_eq!(
        std::fs::read_to_string(&theirs).expect("read"),
        "month,amount\njan,3\n"
    );
}

#[test]
fn case_22_04_an_output_that_cannot_be_written_is_refused_before_the_work() {
    let fixture = Fixture::new();
    let data = fixture.path("classes");
    likeness::engine::synthetic::write_dataset(&data, 2, 4, 32, 1).expect("dataset");
    // A folder that cannot be made (a file stands where it would be): a read-only
    // folder does not stop root, which CI may run as, but this stops everyone.
    let blocker = fixture.path("not-a-folder");
    std::fs::write(&blocker, b"x").expect("write");
    let out = blocker.join("model.safetensors");
    let output = likeness(&[
        "train",
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--max-seconds",
        "30",
        "--image-size",
        "32",
        "--device",
        "cpu",
    ]);
    assert_exit(&output, 1);
    let message = stderr(&output);
    assert!(message.contains("cannot be written"), "{message}");
    assert!(
        !message.contains("training on"),
        "it trained first: {message}"
    );
    let (folder, _, _) = fixture.indexed();
    let output = likeness(&[
        "index",
        "--model",
        s(&fixture.model),
        "--folder",
        s(&folder),
        "--index",
        s(&blocker.join("x.likeness-index")),
        "--device",
        "cpu",
    ]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("cannot be written"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn case_22_08_an_embedding_size_no_loader_accepts_is_refused_before_training() {
    let fixture = Fixture::new();
    let data = fixture.path("classes");
    likeness::engine::synthetic::write_dataset(&data, 2, 4, 32, 1).expect("dataset");
    let out = fixture.path("wide.safetensors");
    let output = likeness(&[
        "train",
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--epochs",
        "1",
        "--image-size",
        "32",
        "--embedding-dim",
        "70000",
        "--device",
        "cpu",
    ]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("between 1 and 65536"),
        "{}",
        stderr(&output)
    );
    assert!(!out.exists());
}

#[test]
fn case_22_10_csv_cells_a_spreadsheet_would_run_are_written_as_text() {
    let fixture = Fixture::new();
    let folder = fixture.path("library");
    let class = "=HYPERLINK(\"http:evil.example\";\"open\")";
    let files = photos(&folder.join(class), 3);
    photos(&folder.join("@SUM(1+1)"), 2);
    let index = fixture.path("l.likeness-index");
    assert_exit(&fixture.index(&folder, &index), 0);
    let to = fixture.path("export");
    assert_exit(&fixture.export(&index, &files[0], 5, &to), 0);
    let table = fixture.path("map.csv");
    assert_exit(
        &likeness(&["map", "--index", s(&index), "--out", s(&table)]),
        0,
    );
    for csv in [to.join("results.csv"), table] {
        let text = std::fs::read_to_string(&csv).expect("csv");
        for cell in text.lines().skip(1).flat_map(|line| line.split(',')) {
            let cell = cell.trim_start_matches('"');
            assert!(
                !cell.starts_with(['=', '+', '@']),
                "{}: a live formula cell {cell:?}",
                csv.display()
            );
        }
        assert!(
            text.contains("'=HYPERLINK") && text.contains("'@SUM"),
            "{text}"
        );
    }
}

/// Runs likeness, killing it after `limit` (a hang is a failure, not a stuck test run).
fn likeness_within(limit: Duration, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_likeness"))
        .args(args)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let started = Instant::now();
    while child.try_wait().expect("status").is_none() {
        if started.elapsed() > limit {
            child.kill().ok();
            let output = child.wait_with_output().expect("output");
            panic!(
                "likeness {args:?} still running after {limit:?}: {}",
                stderr(&output)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

#[cfg(unix)]
fn mkfifo(path: &Path) {
    let made = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(made.success(), "mkfifo {}", path.display());
}

#[cfg(unix)]
#[test]
fn case_22_05_pipes_and_devices_are_refused_without_hanging_or_filling_memory() {
    let fixture = Fixture::new();
    let (folder, index, files) = fixture.indexed();
    let fifo = fixture.path("query.jpg");
    mkfifo(&fifo);
    let limit = Duration::from_secs(60);
    for query in [s(&fifo), "/dev/zero"] {
        let output = likeness_within(
            limit,
            &["search", "--index", s(&index), query, "--device", "cpu"],
        );
        assert_exit(&output, 1);
        assert!(
            stderr(&output).contains("not a regular file"),
            "{}",
            stderr(&output)
        );
    }
    let output = likeness_within(
        limit,
        &[
            "search",
            "--index",
            "/dev/zero",
            s(&files[0]),
            "--device",
            "cpu",
        ],
    );
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("not a regular file"),
        "{}",
        stderr(&output)
    );
    let output = likeness_within(
        limit,
        &[
            "index",
            "--model",
            "/dev/zero",
            "--folder",
            s(&folder),
            "--index",
            s(&fixture.path("z.likeness-index")),
            "--device",
            "cpu",
        ],
    );
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("not a regular file"),
        "{}",
        stderr(&output)
    );
    // A pipe named results.json in an export folder is not taken for a manifest.
    let to = fixture.path("export");
    std::fs::create_dir(&to).expect("mkdir");
    mkfifo(&to.join("results.json"));
    let output = likeness_within(
        limit,
        &[
            "export",
            "--index",
            s(&index),
            s(&files[0]),
            "-k",
            "1",
            "--to",
            s(&to),
            "--device",
            "cpu",
        ],
    );
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("results.json"),
        "{}",
        stderr(&output)
    );
}

#[cfg(unix)]
#[test]
fn case_22_06_a_photo_turned_into_a_pipe_or_device_link_after_indexing_does_not_hang() {
    let fixture = Fixture::new();
    let (_, index, files) = fixture.indexed();
    std::fs::remove_file(&files[1]).expect("rm");
    mkfifo(&files[1]);
    std::fs::remove_file(&files[2]).expect("rm");
    std::os::unix::fs::symlink("/dev/zero", &files[2]).expect("link");
    let output = likeness_within(
        Duration::from_secs(60),
        &["duplicates", "--index", s(&index), "--json"],
    );
    assert_exit(&output, 0);
    // Index update: the pipe and the device link are skipped with the reason.
    let output = fixture.index(files[0].parent().expect("folder"), &index);
    assert_exit(&output, 0);
    let reasons = skipped_reasons(&last_json(&output)).join("\n");
    assert!(
        reasons.contains("photo_1.png cannot be read (not a regular file"),
        "{reasons}"
    );
    assert!(
        reasons.contains("photo_2.png a link to /dev/zero"),
        "{reasons}"
    );
}

#[test]
fn case_22_11_control_characters_in_names_reach_the_terminal_escaped() {
    let fixture = Fixture::new();
    let folder = fixture.path("photos");
    let files = photos(&folder.join("bell\u{7}class"), 2);
    let odd = folder.join("bell\u{7}class").join("esc\u{1b}[2Jname.png");
    std::fs::copy(&files[0], &odd).expect("copy");
    let index = fixture.path("p.likeness-index");
    assert_exit(&fixture.index(&folder, &index), 0);
    let output = likeness(&[
        "search",
        "--index",
        s(&index),
        s(&odd),
        "-k",
        "3",
        "--device",
        "cpu",
    ]);
    assert_exit(&output, 0);
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        !printed.contains('\u{1b}') && !printed.contains('\u{7}'),
        "{printed:?}"
    );
    assert!(printed.contains("esc\\u{1b}[2Jname.png"), "{printed}");
    // JSON stays exact.
    let output = likeness(&[
        "search",
        "--index",
        s(&index),
        s(&odd),
        "-k",
        "1",
        "--device",
        "cpu",
        "--json",
    ]);
    let json = last_json(&output);
    assert_eq!(
        json["queries"][0]["results"][0]["path"].as_str(),
        odd.to_str()
    );
    // An error naming the file is escaped too.
    let missing = folder.join("gone\u{1b}]0;title\u{7}.png");
    let output = likeness(&[
        "search",
        "--index",
        s(&index),
        s(&missing),
        "--device",
        "cpu",
    ]);
    assert_exit(&output, 1);
    assert!(!stderr(&output).contains('\u{1b}'), "{:?}", stderr(&output));
}

#[test]
fn case_22_13_nonsense_arguments_are_refused_or_warned_about() {
    let fixture = Fixture::new();
    let (folder, index, files) = fixture.indexed();
    for bad in [
        vec!["search", "--index", s(&index), s(&files[0]), "-k", "0"],
        vec![
            "search",
            "--index",
            s(&index),
            s(&files[0]),
            "--max-distance",
            "nan",
        ],
        vec![
            "search",
            "--index",
            s(&index),
            s(&files[0]),
            "--max-distance",
            "-1",
        ],
        vec!["duplicates", "--index", s(&index), "--threshold", "nan"],
        vec!["duplicates", "--index", s(&index), "--threshold", "-1"],
    ] {
        let output = likeness(&bad);
        assert_eq!(output.status.code(), Some(2), "{bad:?} was accepted");
    }
    let output = likeness(&[
        "index",
        "--model",
        s(&fixture.model),
        "--folder",
        s(&folder),
        "--index",
        s(&fixture.path("x.likeness-index")),
        "--exclude",
        "[",
    ]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("exclude pattern '['") && stderr(&output).contains("unclosed"),
        "{}",
        stderr(&output)
    );
    let classes = fixture.path("classes");
    likeness::engine::synthetic::write_dataset(&classes, 2, 3, 32, 1).expect("dataset");
    let output = likeness(&[
        "eval",
        "--model",
        s(&fixture.model),
        "--gallery",
        s(&classes),
        "--queries",
        s(&classes),
        "--device",
        "cpu",
    ]);
    assert_exit(&output, 0);
    assert!(
        stderr(&output).contains("the queries are the gallery"),
        "{}",
        stderr(&output)
    );
    let queries = fixture.path("queries");
    likeness::engine::synthetic::write_dataset(&queries, 3, 2, 32, 2).expect("dataset");
    let output = likeness(&[
        "eval",
        "--model",
        s(&fixture.model),
        "--gallery",
        s(&classes),
        "--queries",
        s(&queries),
        "--device",
        "cpu",
    ]);
    assert!(
        stderr(&output).contains("no class folder for 1"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn case_22_14_a_deleted_result_is_named_and_the_os_reason_said_once() {
    let fixture = Fixture::new();
    let (_, index, files) = fixture.indexed();
    std::fs::remove_file(&files[2]).expect("rm");
    let output = fixture.export(&index, &files[0], 3, &fixture.path("out"));
    assert_exit(&output, 1);
    let message = stderr(&output);
    assert!(message.contains("photo_2.png"), "{message}");
    assert!(message.contains("update the index"), "{message}");
    assert!(message.matches("os error").count() <= 1, "{message}");
}

#[test]
fn case_22_15_an_export_inside_the_library_is_warned_about_and_never_indexed() {
    let fixture = Fixture::new();
    let (folder, index, files) = fixture.indexed();
    let to = folder.join("exported");
    let output = fixture.export(&index, &files[0], 3, &to);
    assert_exit(&output, 0);
    assert!(
        stderr(&output).contains("inside the indexed folder"),
        "{}",
        stderr(&output)
    );
    let output = fixture.index(&folder, &index);
    assert_exit(&output, 0);
    let json = last_json(&output);
    assert_eq!(json["images"], 3, "exported copies were indexed: {json}");
}

#[cfg(unix)]
#[test]
fn case_22_16_ctrl_c_during_indexing_saves_what_was_embedded_and_the_next_run_continues() {
    let fixture = Fixture::new();
    let folder = fixture.path("many");
    photos(&folder, 3000);
    let index = fixture.path("many.likeness-index");
    let child = fixture.spawn_index(&folder, &index);
    // Once the scan is done and embedding has begun (the index is refused before that).
    std::thread::sleep(Duration::from_millis(2500));
    let signalled = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(signalled.success());
    let output = child.wait_with_output().expect("wait");
    if output.status.code() == Some(0) {
        eprintln!("the machine indexed 3000 photos before the signal; nothing to check");
        return;
    }
    assert_exit(&output, 130);
    if stderr(&output).contains("interrupted before any photo was embedded") {
        // A slow machine was still scanning: nothing to save, and nothing written.
        assert!(!index.exists(), "an index was written");
        return;
    }
    let json = last_json(&output);
    let saved = json["images"].as_u64().expect("images");
    let pending = json["pending"].as_u64().expect("pending");
    assert!(saved > 0 && pending > 0, "{json}");
    assert!(
        stderr(&output).contains("run the same command again"),
        "{}",
        stderr(&output)
    );
    let output = fixture.index(&folder, &index);
    assert_exit(&output, 0);
    let json = last_json(&output);
    assert_eq!(json["images"], 3000);
    assert_eq!(json["kept"].as_u64(), Some(saved), "{json}");
}

// Issue #38 (data safety IV): sort, export and resume never delete what Likeness did not
// write, and never leave a model nothing opens.

/// A library of two class folders (4 photos each), its index with the tiny model, and an
/// inbox of `inbox_count` new photos: every photo's neighbours vote, and with
/// `--min-confidence 0` every one is filed.
struct SortFixture {
    fixture: Fixture,
    library: PathBuf,
    inbox: PathBuf,
    index: PathBuf,
}

impl SortFixture {
    fn new(inbox_count: usize) -> Self {
        let fixture = Fixture::new();
        let library = fixture.path("library");
        let mut rng = fastrand::Rng::with_seed(7);
        for (class, name) in ["daisy", "rose"].iter().enumerate() {
            let folder = library.join(name);
            std::fs::create_dir_all(&folder).expect("mkdir");
            for i in 0..4 {
                class_image(class, 2, 32, &mut rng)
                    .save(folder.join(format!("{name}_{i}.png")))
                    .expect("save");
            }
        }
        let inbox = fixture.path("inbox");
        std::fs::create_dir_all(&inbox).expect("mkdir");
        for i in 0..inbox_count {
            class_image(i % 2, 2, 32, &mut rng)
                .save(inbox.join(format!("new_{i}.png")))
                .expect("save");
        }
        let index = fixture.path("library.likeness-index");
        assert_exit(&fixture.index(&library, &index), 0);
        Self {
            fixture,
            library,
            inbox,
            index,
        }
    }

    fn sort_with(&self, inbox: &Path, library: &Path, index: &Path, extra: &[&str]) -> Output {
        let mut args = vec![
            "sort",
            "--model",
            s(&self.fixture.model),
            "--inbox",
            s(inbox),
            "--library",
            s(library),
            "--index",
            s(index),
            "--min-confidence",
            "0",
            "--device",
            "cpu",
        ];
        args.extend_from_slice(extra);
        likeness(&args)
    }

    fn sort(&self, extra: &[&str]) -> Output {
        self.sort_with(&self.inbox, &self.library, &self.index, extra)
    }

    /// Every file under the library, with its bytes.
    fn library_files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut files = Vec::new();
        for folder in std::fs::read_dir(&self.library).expect("list").flatten() {
            if let Ok(entries) = std::fs::read_dir(folder.path()) {
                for entry in entries.flatten() {
                    files.push((
                        entry.path(),
                        std::fs::read(entry.path()).unwrap_or_default(),
                    ));
                }
            }
        }
        files.sort();
        files
    }
}

#[test]
fn case_38_01_undoing_a_copy_sort_keeps_copies_whose_original_is_gone() {
    let sort = SortFixture::new(6);
    let journal = sort.fixture.path("copies.jsonl");
    assert_exit(&sort.sort(&["--copy", "--journal", s(&journal)]), 0);
    let filed = sort.library_files();
    assert_eq!(filed.len(), 8 + 6);
    std::fs::remove_dir_all(&sort.inbox).expect("the person deletes the inbox");
    let output = likeness(&["sort", "--undo", s(&journal)]);
    assert_exit(&output, 0);
    assert!(
        stderr(&output).contains("may be the only one"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        sort.library_files(),
        filed,
        "the copies are the only ones left: undo keeps them"
    );
}

#[test]
fn case_38_02_a_second_export_keeps_an_exported_file_the_person_edited() {
    let fixture = Fixture::new();
    let (_, index, files) = fixture.indexed();
    let out = fixture.path("out");
    assert_exit(&fixture.export(&index, &files[0], 3, &out), 0);
    let edited = out.join("01_photo_0.png");
    std::fs::write(&edited, b"the person's edit").expect("edit");
    let output = fixture.export(&index, &files[0], 3, &out);
    assert_exit(&output, 0);
    assert_eq!(
        std::fs::read(&edited).expect("kept"),
        b"the person's edit",
        "an edited export is the person's"
    );
    assert!(stderr(&output).contains("kept"), "{}", stderr(&output));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).expect("manifest"))
            .expect("json");
    let first = manifest["results"][0]["file"].as_str().expect("file");
    assert_ne!(first, "01_photo_0.png", "the new copy took another name");
    assert_eq!(
        std::fs::read(out.join(first)).expect("new copy"),
        std::fs::read(&files[0]).expect("photo")
    );
    // An unedited file of the earlier export is replaced as before, and a smaller export
    // removes only what is still as it was written.
    std::fs::write(out.join("03_photo_2.png"), b"edited too").expect("edit");
    assert_exit(&fixture.export(&index, &files[0], 1, &out), 0);
    assert_eq!(
        std::fs::read(out.join("03_photo_2.png")).expect("kept"),
        b"edited too"
    );
    assert!(!out.join("02_photo_1.png").exists(), "unedited: removed");
}

#[test]
fn case_38_03_a_crafted_manifest_never_leads_export_out_of_its_folder() {
    let fixture = Fixture::new();
    let (_, index, files) = fixture.indexed();
    let keep = fixture.path("x");
    std::fs::create_dir_all(&keep).expect("mkdir");
    std::fs::write(keep.join("keep.jpg"), b"precious").expect("write");
    let absolute = fixture.path("absolute.jpg");
    std::fs::write(&absolute, b"precious too").expect("write");
    let out = fixture.path("out");
    std::fs::create_dir_all(&out).expect("mkdir");
    for journal in [false, true] {
        let manifest = serde_json::json!({
            "generator": "Likeness",
            "query": "q.jpg",
            "results": [
                {"rank": 1, "distance": 0.0, "source": "a", "class": null, "file": "../x/keep.jpg"},
                {"rank": 2, "distance": 0.0, "source": "b", "class": null, "file": s(&absolute)},
            ],
        });
        let name = if journal {
            ".likeness-export-in-progress.json"
        } else {
            "results.json"
        };
        std::fs::write(out.join(name), manifest.to_string()).expect("craft");
        let _ = fixture.export(&index, &files[0], 3, &out);
        assert_eq!(
            std::fs::read(keep.join("keep.jpg")).expect("kept"),
            b"precious"
        );
        assert_eq!(std::fs::read(&absolute).expect("kept"), b"precious too");
    }
}

#[test]
fn case_38_04_a_crafted_journal_deletes_nothing() {
    let sort = SortFixture::new(2);
    let precious = sort.fixture.path("precious.jpg");
    std::fs::write(&precious, b"precious").expect("write");
    let content = xxhash_rust::xxh3::xxh3_64(b"precious");
    let inside = sort.library.join("..").join("precious.jpg");
    for to in [precious.clone(), inside] {
        let journal = sort.fixture.path("crafted.jsonl");
        let line = serde_json::json!({"mode": "copy", "from": "x", "to": to, "content": content});
        std::fs::write(&journal, format!("{line}\n")).expect("craft");
        let output = likeness(&["sort", "--undo", s(&journal)]);
        assert_exit(&output, 1);
        assert!(
            stderr(&output).contains("journals Likeness wrote"),
            "{}",
            stderr(&output)
        );
        assert_eq!(std::fs::read(&precious).expect("kept"), b"precious");
    }
    // A line added to a journal Likeness wrote makes the whole journal refused.
    let journal = sort.fixture.path("real.jsonl");
    assert_exit(&sort.sort(&["--copy", "--journal", s(&journal)]), 0);
    let before = sort.library_files();
    let forged = serde_json::json!({
        "mode": "copy", "from": s(&sort.inbox.join("new_0.png")),
        "to": s(&sort.library.join("rose").join("..").join("..").join("precious.jpg")),
        "content": content, "mac": "00".repeat(32),
    });
    let mut text = std::fs::read_to_string(&journal).expect("journal");
    text.push_str(&format!("{forged}\n"));
    std::fs::write(&journal, text).expect("forge");
    assert_exit(&likeness(&["sort", "--undo", s(&journal)]), 1);
    assert_eq!(std::fs::read(&precious).expect("kept"), b"precious");
    assert_eq!(sort.library_files(), before, "nothing was undone");
}

#[cfg(unix)]
#[test]
fn case_38_05_a_move_of_a_linked_inbox_entry_files_no_link() {
    let sort = SortFixture::new(2);
    // A link inside the inbox to one of its photos (relative, as a file manager makes).
    std::os::unix::fs::symlink("new_0.png", sort.inbox.join("link.png")).expect("link");
    let output = sort.sort(&["--move", "--journal", s(&sort.fixture.path("j.jsonl"))]);
    assert!(
        stderr(&output).contains("symbolic link"),
        "{}",
        stderr(&output)
    );
    for (path, _) in sort.library_files() {
        let meta = std::fs::symlink_metadata(&path).expect("meta");
        assert!(
            !meta.file_type().is_symlink(),
            "{} is a link",
            path.display()
        );
    }
    assert!(
        std::fs::symlink_metadata(sort.inbox.join("link.png")).is_ok(),
        "the link stays in the inbox"
    );
    let output = likeness(&["sort", "--undo", s(&sort.fixture.path("j.jsonl"))]);
    assert_exit(&output, 0);
    assert!(
        sort.inbox.join("new_0.png").is_file(),
        "undo put the photo back"
    );
}

/// `likeness train` on 2 classes of 6 photos in `dir/data` (made once), to
/// `dir/model.safetensors`: a new tiny run with `new_run` (32 px, 1 epoch), or `--resume`.
fn trained_model(dir: &Path, new_run: &[&str]) -> (PathBuf, Output) {
    let data = dir.join("data");
    if !data.exists() {
        likeness::engine::synthetic::write_dataset(&data, 2, 6, 32, 3).expect("photos");
    }
    let model = dir.join("model.safetensors");
    let mut args = vec![
        "train",
        "--data",
        s(&data),
        "--epochs",
        "1",
        "--device",
        "cpu",
    ];
    if new_run.first() == Some(&"--resume") {
        args.extend_from_slice(new_run);
    } else {
        args.extend_from_slice(&["--out", s(&model)]);
        for (flag, default) in [("--image-size", "32"), ("--batch-size", "4")] {
            if !new_run.contains(&flag) {
                args.extend_from_slice(&[flag, default]);
            }
        }
        args.extend_from_slice(new_run);
    }
    let output = likeness(&args);
    (model, output)
}

fn state_of(model: &Path) -> PathBuf {
    likeness::engine::train::resume::state_path(model)
}

#[test]
fn case_38_06_a_damaged_training_state_is_refused_and_the_model_kept() {
    let dir = tempfile::tempdir().expect("dir");
    let (model, output) = trained_model(dir.path(), &[]);
    assert_exit(&output, 0);
    let state = state_of(&model);
    let mut bytes = std::fs::read(&state).expect("state");
    // 64 bytes flipped inside the tensor data (after the JSON header).
    let at = bytes.len() - 4096;
    for byte in &mut bytes[at..at + 64] {
        *byte ^= 0xa5;
    }
    std::fs::write(&state, &bytes).expect("damage");
    let model_before = std::fs::read(&model).expect("model");
    let (_, output) = trained_model(dir.path(), &["--resume", s(&model)]);
    assert_exit(&output, 1);
    assert!(stderr(&output).contains("damaged"), "{}", stderr(&output));
    assert_eq!(std::fs::read(&model).expect("model"), model_before);
}

#[test]
fn case_38_07_a_run_that_diverges_in_its_first_step_writes_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let (model, output) = trained_model(
        dir.path(),
        // One step: 12 photos in one batch.
        &["--lr", "1e30", "--image-size", "64", "--batch-size", "12"],
    );
    assert_exit(&output, 1);
    assert!(stderr(&output).contains("diverged"), "{}", stderr(&output));
    assert!(!model.exists(), "a diverged run wrote a model");
    assert!(!state_of(&model).exists());
}

#[test]
fn case_38_08_a_resume_killed_between_model_and_state_goes_on_next_time() {
    let dir = tempfile::tempdir().expect("dir");
    let (model, output) = trained_model(dir.path(), &[]);
    assert_exit(&output, 0);
    let old_state = std::fs::read(state_of(&model)).expect("state");
    let (_, output) = trained_model(dir.path(), &["--resume", s(&model)]);
    assert_exit(&output, 0);
    // What a kill -9 after the new model was renamed into place, and before its state
    // was, leaves: the new model, the old state, the new state still pending.
    let pending = likeness::engine::train::resume::pending_state_path(&model);
    std::fs::rename(state_of(&model), &pending).expect("pending");
    std::fs::write(state_of(&model), &old_state).expect("old state");
    let (_, output) = trained_model(dir.path(), &["--resume", s(&model)]);
    assert_exit(&output, 0);
    assert!(!pending.exists());
}

/// Runs `mount ARGS`; false where this machine does not allow it (no privilege).
#[cfg(target_os = "linux")]
fn mount(args: &[&str]) -> bool {
    Command::new("mount")
        .args(args)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(target_os = "linux")]
struct Unmount(PathBuf);

#[cfg(target_os = "linux")]
impl Drop for Unmount {
    fn drop(&mut self) {
        Command::new("umount").arg(&self.0).status().ok();
    }
}

#[cfg(target_os = "linux")]
#[test]
fn case_38_09_a_bind_mount_of_the_library_is_not_an_inbox() {
    let sort = SortFixture::new(1);
    let bound = sort.fixture.path("bound");
    std::fs::create_dir_all(&bound).expect("mkdir");
    if !mount(&["--bind", s(&sort.library), s(&bound)]) {
        eprintln!("bind mounts need privileges this machine does not give; nothing to check");
        return;
    }
    let _unmount = Unmount(bound.clone());
    let before = sort.library_files();
    let output = sort.sort_with(&bound, &sort.library, &sort.index, &["--move"]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("separate folders"),
        "{}",
        stderr(&output)
    );
    assert_eq!(sort.library_files(), before);
}

#[test]
fn case_38_10_an_export_into_a_class_folder_is_refused() {
    let sort = SortFixture::new(1);
    let rose = sort.library.join("rose");
    let query = rose.join("rose_0.png");
    let output = sort.fixture.export(&sort.index, &query, 3, &rose);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("a folder of the indexed library"),
        "{}",
        stderr(&output)
    );
    assert!(!rose.join("results.json").exists());
    let output = sort.fixture.index(&sort.library, &sort.index);
    assert_exit(&output, 0);
    assert_eq!(last_json(&output)["images"], 8, "rose is still indexed");
}

#[test]
fn case_38_11_sort_refuses_the_index_of_another_library() {
    let sort = SortFixture::new(2);
    let other = sort.fixture.path("other");
    std::fs::create_dir_all(other.join("tulip")).expect("mkdir");
    let mut rng = fastrand::Rng::with_seed(3);
    for i in 0..3 {
        class_image(0, 2, 32, &mut rng)
            .save(other.join("tulip").join(format!("t{i}.png")))
            .expect("save");
    }
    let other_index = sort.fixture.path("other.likeness-index");
    assert_exit(&sort.fixture.index(&other, &other_index), 0);
    let output = sort.sort_with(&sort.inbox, &sort.library, &other_index, &[]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("not of the library"),
        "{}",
        stderr(&output)
    );
    assert!(!sort.library.join("tulip").exists());
}

#[test]
fn case_38_12_two_copy_sorts_of_one_inbox_at_once_file_each_photo_once() {
    let sort = SortFixture::new(200);
    let spawn = |journal: &str| {
        Command::new(env!("CARGO_BIN_EXE_likeness"))
            .args([
                "sort",
                "--model",
                s(&sort.fixture.model),
                "--inbox",
                s(&sort.inbox),
                "--library",
                s(&sort.library),
                "--index",
                s(&sort.index),
                "--min-confidence",
                "0",
                "--device",
                "cpu",
                "--journal",
                s(&sort.fixture.path(journal)),
            ])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let (first, second) = (spawn("a.jsonl"), spawn("b.jsonl"));
    first.wait_with_output().expect("wait");
    second.wait_with_output().expect("wait");
    let files = sort.library_files();
    assert_eq!(files.len(), 8 + 200, "each photo filed once");
    let names: Vec<String> = files
        .iter()
        .map(|(p, _)| p.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains(" (2)")), "{names:?}");
}

#[cfg(target_os = "linux")]
#[test]
fn case_38_13_a_read_only_inbox_with_move_files_nothing_and_fails() {
    let sort = SortFixture::new(3);
    let read_only = sort.fixture.path("read-only-inbox");
    std::fs::create_dir_all(&read_only).expect("mkdir");
    if !mount(&["--bind", s(&sort.inbox), s(&read_only)]) {
        eprintln!("bind mounts need privileges this machine does not give; nothing to check");
        return;
    }
    let _unmount = Unmount(read_only.clone());
    assert!(
        mount(&["-o", "remount,bind,ro", s(&read_only)]),
        "read-only"
    );
    let before = sort.library_files();
    let output = sort.sort_with(&read_only, &sort.library, &sort.index, &["--move"]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("could not be filed"),
        "{}",
        stderr(&output)
    );
    assert_eq!(sort.library_files(), before, "no copy left in the library");
    assert_eq!(std::fs::read_dir(&sort.inbox).expect("list").count(), 3);
}

#[test]
fn case_38_14_a_sort_names_its_journal_before_it_files() {
    let sort = SortFixture::new(2);
    let journal = sort.fixture.path("named.jsonl");
    let output = sort.sort(&["--journal", s(&journal)]);
    assert_exit(&output, 0);
    let message = stderr(&output);
    let named = message
        .find("journal of this sort:")
        .expect("the journal is named");
    let filed = message.find("copied").expect("the summary");
    assert!(named < filed, "{message}");
    assert!(message.contains(s(&journal)), "{message}");
}

#[test]
fn case_38_15_the_room_asked_for_follows_the_real_size() {
    use likeness::engine::output::bytes_needed_with_margin;
    // A 1-photo index (2.6 kB), a 5.6-kB CSV and a 140-kB map all fit in 430 kB free.
    for bytes in [2_600, 5_600, 140_000] {
        assert!(bytes_needed_with_margin(bytes) < 430_000, "{bytes}");
    }
    assert!(bytes_needed_with_margin(100 << 20) > 100 << 20);
    let estimate = likeness::engine::index::format::index_bytes_estimate(1, 8);
    assert!(
        estimate < 4096,
        "a 1-photo index estimated at {estimate} bytes"
    );
}

#[test]
fn case_38_notes_a_photo_already_in_another_class_folder_is_not_filed_again() {
    let sort = SortFixture::new(0);
    std::fs::copy(
        sort.library.join("rose").join("rose_0.png"),
        sort.inbox.join("again.png"),
    )
    .expect("copy");
    let output = sort.sort(&["--journal", s(&sort.fixture.path("j.jsonl")), "--json"]);
    assert_exit(&output, 0);
    let json = last_json(&output);
    assert_eq!(json["filed"].as_array().map(Vec::len), Some(0), "{json}");
    assert_eq!(json["already_there"].as_array().map(Vec::len), Some(1));
}
