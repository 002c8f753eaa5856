//! Running the `likeness` binary as a script or a person would, for the end-to-end tests
//! (`cli.rs`, `reliability.rs`). Each includes this file; not every test crate uses every
//! helper.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `likeness ARGS` with no display (the window never opens).
pub fn likeness(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_likeness"))
        .args(args)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .expect("run likeness")
}

/// The JSON object on the last line of stdout (`--json`).
pub fn last_json(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_else(|| {
        panic!(
            "no stdout; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    serde_json::from_str(line).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {line}"))
}

/// Exit 0, or a failure that shows what was printed.
pub fn assert_ok(output: &Output) {
    assert_ok_doing(output, "likeness");
}

/// Exit 0, or a failure that names what ran (`what`) and shows what it printed.
pub fn assert_ok_doing(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what}: exit {:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// What was printed on stderr.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A test path as an argument (test paths are UTF-8).
pub fn s(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}
