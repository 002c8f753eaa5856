//! Installing like a desktop app: `scripts/package.sh` (what `make install`, `make
//! uninstall` and `make dist` run) installs into a temporary PREFIX and packs an archive
//! that is unpacked into a temporary folder. Both copies then run with the build cache out
//! of reach (another HOME, no inherited environment): `--help`, and a tiny index and
//! search. The launcher entry passes desktop-file-validate, and uninstall removes exactly
//! what was installed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use likeness::engine::synthetic::{write_dataset, write_tiny_model};

#[path = "common/binary.rs"]
#[allow(dead_code)] // each test crate uses its own subset
mod binary;
use binary::assert_ok_doing;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn package(args: &[&str], extra: &[&Path]) -> Output {
    let mut command = Command::new(repo().join("scripts/package.sh"));
    command.args(args);
    command.args(extra);
    command
        .arg("--binary")
        .arg(env!("CARGO_BIN_EXE_likeness"))
        .output()
        .expect("scripts/package.sh runs")
}

/// Runs an installed or unpacked binary as on another account: no inherited environment,
/// a HOME without the build cache.
fn run_elsewhere(binary: &Path, home: &Path, args: &[&str]) -> Output {
    Command::new(binary)
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("PATH", "/usr/bin:/bin")
        .current_dir(home)
        .output()
        .expect("the binary starts")
}

/// `--help`, then index a generated folder with a tiny model and search it.
fn works_without_the_build_cache(binary: &Path, dir: &Path) {
    let home = dir.join("home");
    std::fs::create_dir_all(&home).expect("home");
    let help = run_elsewhere(binary, &home, &["--help"]);
    assert_ok_doing(&help, "--help");
    assert!(String::from_utf8_lossy(&help.stdout).contains("Usage: likeness"));
    let photos = dir.join("photos");
    write_dataset(&photos, 2, 3, 32, 5).expect("photos");
    let model = dir.join("tiny.safetensors");
    write_tiny_model(&model).expect("model");
    let index = dir.join("photos.likeness-index");
    let s = |p: &Path| p.to_string_lossy().into_owned();
    let indexed = run_elsewhere(
        binary,
        &home,
        &[
            "index",
            "--model",
            &s(&model),
            "--folder",
            &s(&photos),
            "--index",
            &s(&index),
            "--device",
            "cpu",
        ],
    );
    assert_ok_doing(&indexed, "index");
    let query = photos.join("class_01/img_001.png");
    let searched = run_elsewhere(
        binary,
        &home,
        &[
            "search",
            "--index",
            &s(&index),
            "-k",
            "3",
            &s(&query),
            "--json",
        ],
    );
    assert_ok_doing(&searched, "search");
    let stdout = String::from_utf8_lossy(&searched.stdout);
    assert!(stdout.contains("img_001.png"), "{stdout}");
    // Search without training, out of the box: the ImageNet EfficientNet-Lite0 weights
    // travel with the binary, so a fresh HOME with no cache and no network finds them.
    let evaluated = run_elsewhere(
        binary,
        &home,
        &[
            "eval",
            "--model",
            "imagenet",
            "--gallery",
            &s(&photos),
            "--queries",
            &s(&photos),
            "--device",
            "cpu",
            "--json",
        ],
    );
    assert_ok_doing(&evaluated, "eval --model imagenet");
    let stdout = String::from_utf8_lossy(&evaluated.stdout);
    assert!(stdout.contains("recall@1"), "{stdout}");
}

#[test]
fn install_and_dist_run_without_the_build_cache_and_uninstall_removes_everything() {
    let dir = tempfile::tempdir().expect("temp dir");
    let prefix = dir.path().join("prefix");
    let started = std::time::Instant::now();
    let installed = package(&["install", "--prefix"], &[&prefix]);
    assert_ok_doing(&installed, "install");
    eprintln!("install took {:.1} s", started.elapsed().as_secs_f64());
    let binary = prefix.join("bin/likeness");
    let readelf = Command::new("readelf")
        .arg("-d")
        .arg(&binary)
        .output()
        .expect("readelf");
    let dynamic = String::from_utf8_lossy(&readelf.stdout);
    assert!(dynamic.contains("[$ORIGIN/../lib/likeness]"), "{dynamic}");
    assert!(
        !dynamic.contains(".cache"),
        "no path into the build cache: {dynamic}"
    );
    assert!(
        !dynamic.contains("libtorch_cuda"),
        "the CPU build needs no CUDA: {dynamic}"
    );
    let libraries: Vec<String> = std::fs::read_dir(prefix.join("lib/likeness"))
        .expect("libraries")
        .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
        .collect();
    assert!(
        libraries.iter().any(|l| l == "libtorch_cpu.so"),
        "{libraries:?}"
    );
    assert!(
        !libraries
            .iter()
            .any(|l| l.starts_with("libcublas") || l.starts_with("libcudnn")),
        "{libraries:?}"
    );
    let entry = prefix.join("share/applications/likeness.desktop");
    let validated = Command::new("desktop-file-validate")
        .arg(&entry)
        .output()
        .expect("desktop-file-validate (make setup installs it)");
    assert_ok_doing(&validated, "desktop-file-validate");
    assert!(
        std::fs::read_to_string(&entry)
            .expect("entry")
            .contains("Exec=likeness %f")
    );
    assert!(
        prefix
            .join("share/icons/hicolor/256x256/apps/likeness.png")
            .exists()
    );
    assert!(
        prefix
            .join("share/icons/hicolor/16x16/apps/likeness.png")
            .exists()
    );
    works_without_the_build_cache(&binary, &dir.path().join("installed-run"));

    let out = dir.path().join("dist");
    let packed = package(&["dist", "--out"], &[&out]);
    assert_ok_doing(&packed, "dist");
    let archive = std::fs::read_dir(&out)
        .expect("dist folder")
        .filter_map(|e| Some(e.ok()?.path()))
        .find(|p| p.to_string_lossy().ends_with("-linux-x86_64.tar.zst"))
        .expect("likeness-VERSION-linux-x86_64.tar.zst");
    eprintln!(
        "archive {} is {:.0} MB",
        archive.display(),
        std::fs::metadata(&archive).map_or(0, |m| m.len()) as f64 / 1e6
    );
    let unpacked = dir.path().join("anywhere");
    std::fs::create_dir_all(&unpacked).expect("unpack folder");
    let untar = Command::new("tar")
        .arg("--zstd")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&unpacked)
        .output()
        .expect("tar");
    assert_ok_doing(&untar, "unpacking");
    let top = std::fs::read_dir(&unpacked)
        .expect("unpacked")
        .filter_map(|e| Some(e.ok()?.path()))
        .next()
        .expect("one top folder");
    for notice in [
        "share/doc/likeness/licenses/README",
        "share/doc/likeness/licenses/libjpeg-turbo/LICENSE.md",
        "share/doc/likeness/README.md",
    ] {
        assert!(top.join(notice).exists(), "{notice} is in the archive");
    }
    works_without_the_build_cache(&top.join("likeness"), &dir.path().join("unpacked-run"));

    let removed = Command::new(repo().join("scripts/package.sh"))
        .args(["uninstall", "--prefix"])
        .arg(&prefix)
        .output()
        .expect("uninstall");
    assert_ok_doing(&removed, "uninstall");
    let left: Vec<PathBuf> = walk(&prefix);
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .flat_map(|p| if p.is_dir() { walk(&p) } else { vec![p] })
        .collect()
}

/// Issue #44: `make deb`'s package (scripts/package.sh deb) says what it is and needs,
/// installs into a scratch root with dpkg, runs from there with no inherited environment
/// (the ImageNet weights found beside it), and purges without a trace; lintian reports no
/// error or warning on it (packaging/README.md explains each override).
#[test]
fn the_deb_installs_into_a_scratch_root_runs_and_purges_without_a_trace() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("dist");
    let built = package(&["deb", "--out"], &[&out]);
    assert_ok_doing(&built, "deb");
    let deb = std::fs::read_dir(&out)
        .expect("dist folder")
        .filter_map(|e| Some(e.ok()?.path()))
        .find(|p| p.to_string_lossy().ends_with("_amd64.deb"))
        .expect("likeness_VERSION_amd64.deb");
    eprintln!(
        "{} is {:.0} MB",
        deb.display(),
        std::fs::metadata(&deb).map_or(0, |m| m.len()) as f64 / 1e6
    );
    let field = |name: &str| {
        let output = Command::new("dpkg-deb")
            .arg("-f")
            .arg(&deb)
            .arg(name)
            .output()
            .expect("dpkg-deb");
        assert_ok_doing(&output, "dpkg-deb -f");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    };
    assert_eq!(field("Package"), "likeness");
    assert_eq!(field("Architecture"), "amd64");
    assert_eq!(field("Version"), format!("{}-1", env!("CARGO_PKG_VERSION")));
    let depends = field("Depends");
    for needed in ["libc6 (>= 2.35)", "libstdc++6", "libgtk-3-0", "libgl1"] {
        assert!(depends.contains(needed), "{needed} in {depends}");
    }
    assert!(!depends.contains("torch"), "libtorch is private: {depends}");

    // A scratch root with an empty dpkg database.
    let root = dir.path().join("root");
    for folder in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "var/log"] {
        std::fs::create_dir_all(root.join(folder)).expect("dpkg folders");
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").expect("status");
    let dpkg = |args: &[&str]| {
        Command::new("dpkg")
            .arg(format!("--root={}", root.display()))
            .arg("--force-not-root")
            // The scratch root has no libc6 or GTK registered; the host provides them.
            .arg("--force-depends")
            .args(args)
            .output()
            .expect("dpkg")
    };
    assert_ok_doing(&dpkg(&["-i", &deb.to_string_lossy()]), "dpkg -i");
    for file in [
        "usr/bin/likeness",
        "usr/lib/likeness/libtorch_cpu.so",
        "usr/share/likeness/pretrained/efficientnet-lite0-imagenet.safetensors",
        "usr/share/applications/likeness.desktop",
        "usr/share/icons/hicolor/256x256/apps/likeness.png",
        "usr/share/man/man1/likeness.1.gz",
        "usr/share/doc/likeness/copyright",
        "usr/share/doc/likeness/changelog.Debian.gz",
    ] {
        assert!(root.join(file).is_file(), "{file} installed");
    }
    let copyright =
        std::fs::read_to_string(root.join("usr/share/doc/likeness/copyright")).expect("copyright");
    for licence in ["BSD-3-Clause", "Apache-2.0", "GPL-3+", "NVIDIA-CUDA", "MIT"] {
        assert!(
            copyright.contains(licence),
            "{licence} in the copyright file"
        );
    }
    let binary = root.join("usr/bin/likeness");
    let home = dir.path().join("version-home");
    std::fs::create_dir_all(&home).expect("home");
    let version = run_elsewhere(&binary, &home, &["--version"]);
    assert_ok_doing(&version, "--version");
    assert!(String::from_utf8_lossy(&version.stdout).contains(env!("CARGO_PKG_VERSION")));
    works_without_the_build_cache(&binary, &dir.path().join("deb-run"));

    assert_ok_doing(&dpkg(&["--purge", "likeness"]), "dpkg --purge");
    let left: Vec<PathBuf> = walk(&root)
        .into_iter()
        .filter(|p| !p.starts_with(root.join("var")))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(!root.join("usr").exists(), "its folders are gone too");
    assert!(!root.join("usr").exists(), "its folders are gone too");

    // lintian (make setup installs it): no error, no warning.
    let lintian = Command::new("lintian")
        .args(["--tag-display-limit", "0"])
        .arg(&deb)
        .output()
        .expect("lintian (make setup installs it)");
    let report = String::from_utf8_lossy(&lintian.stdout);
    let complaints: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("E:") || l.starts_with("W:"))
        .collect();
    assert!(complaints.is_empty(), "lintian: {complaints:?}");
}
