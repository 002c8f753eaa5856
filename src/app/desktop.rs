//! Handing files to the desktop: open a photo with its default application, or show it
//! selected in the file manager. Launchers run on a short-lived thread (some block until
//! the application starts), and a failure comes back as a message for the window, so a
//! click never silently does nothing.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

/// How long a launcher may run before we take it as started (a launcher that waits for
/// the application it opened would otherwise never report).
const LAUNCH_WAIT: Duration = Duration::from_secs(8);

/// What to do with a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Open it with the desktop's default application.
    Open,
    /// Show it selected in the file manager.
    ShowInFolder,
}

/// The programs used for each action.
#[derive(Debug, Clone)]
pub enum Launchers {
    /// The platform's own: `xdg-open` and the FileManager1 D-Bus call on Linux, `open`
    /// on macOS, `explorer` on Windows.
    System,
    /// Fixed commands (the path is appended as the last argument); tests use these.
    Custom {
        open: Vec<OsString>,
        show: Vec<OsString>,
    },
}

/// Runs launchers and collects their failures.
pub struct Desktop {
    launchers: Launchers,
    failures: Sender<LaunchFailure>,
    reported: Receiver<LaunchFailure>,
}

/// A photo the desktop could not open or show, and what to tell the person.
#[derive(Debug, Clone)]
pub struct LaunchFailure {
    pub path: PathBuf,
    pub message: String,
}

impl Default for Desktop {
    fn default() -> Self {
        Self::new(Launchers::System)
    }
}

impl Desktop {
    pub fn new(launchers: Launchers) -> Self {
        let (failures, reported) = crossbeam_channel::unbounded();
        Self {
            launchers,
            failures,
            reported,
        }
    }

    /// Starts `action` on `path`; a failure arrives later through [`Desktop::failures`].
    /// `wake` asks the window to repaint when it does.
    pub fn launch(&self, action: Action, path: &Path, wake: impl Fn() + Send + 'static) {
        let attempts = attempts(&self.launchers, action, path);
        let failures = self.failures.clone();
        let path = path.to_path_buf();
        std::thread::Builder::new()
            .name("likeness-launcher".into())
            .spawn(move || {
                if let Err(reasons) = run_first_that_works(&attempts) {
                    // What the person can do first; the commands that failed after it.
                    let name = path.file_name().map_or_else(
                        || path.display().to_string(),
                        |n| n.to_string_lossy().into_owned(),
                    );
                    let what = match action {
                        Action::Open => format!("No application could open {name}."),
                        Action::ShowInFolder => {
                            format!("No file manager could be opened to show {name}.")
                        }
                    };
                    failures
                        .send(LaunchFailure {
                            message: format!(
                                "{what} The photo is at {} (Copy path copies it).\nDetails: {}",
                                path.display(),
                                reasons.join("; ")
                            ),
                            path,
                        })
                        .ok();
                    wake();
                }
            })
            .ok();
    }

    /// Failures reported since the last call.
    pub fn failures(&self) -> Vec<LaunchFailure> {
        self.reported.try_iter().collect()
    }
}

/// The commands to try in order for `action` on `path`.
fn attempts(launchers: &Launchers, action: Action, path: &Path) -> Vec<Vec<OsString>> {
    let with_path = |program: &[OsString], path: &Path| {
        let mut command = program.to_vec();
        command.push(path.as_os_str().to_owned());
        command
    };
    match launchers {
        Launchers::Custom { open, show } => match action {
            Action::Open => vec![with_path(open, path)],
            Action::ShowInFolder => vec![with_path(show, path)],
        },
        Launchers::System => system_attempts(action, path),
    }
}

#[cfg(target_os = "macos")]
fn system_attempts(action: Action, path: &Path) -> Vec<Vec<OsString>> {
    match action {
        Action::Open => vec![vec!["open".into(), path.into()]],
        Action::ShowInFolder => vec![vec!["open".into(), "-R".into(), path.into()]],
    }
}

#[cfg(target_os = "windows")]
fn system_attempts(action: Action, path: &Path) -> Vec<Vec<OsString>> {
    match action {
        Action::Open => vec![vec![
            "cmd".into(),
            "/C".into(),
            "start".into(),
            "".into(),
            path.into(),
        ]],
        Action::ShowInFolder => {
            let mut select = OsString::from("/select,");
            select.push(path);
            vec![vec!["explorer".into(), select]]
        }
    }
}

#[cfg(not(any(target_os = "macos", target_os = "windows")))]
fn system_attempts(action: Action, path: &Path) -> Vec<Vec<OsString>> {
    let open_with = |path: &Path| {
        vec![
            vec!["xdg-open".into(), path.into()],
            vec!["gio".into(), "open".into(), path.into()],
        ]
    };
    match action {
        Action::Open => open_with(path),
        Action::ShowInFolder => {
            // The freedesktop FileManager1 call opens the folder with the file selected
            // (Nautilus, Dolphin, Nemo, Caja, Thunar…); without it, open the folder.
            let uri = file_uri(path);
            let mut attempts = vec![
                vec![
                    "gdbus".into(),
                    "call".into(),
                    "--session".into(),
                    "--dest".into(),
                    "org.freedesktop.FileManager1".into(),
                    "--object-path".into(),
                    "/org/freedesktop/FileManager1".into(),
                    "--method".into(),
                    "org.freedesktop.FileManager1.ShowItems".into(),
                    format!("['{uri}']").into(),
                    "".into(),
                ],
                vec![
                    "dbus-send".into(),
                    "--session".into(),
                    "--print-reply".into(),
                    "--dest=org.freedesktop.FileManager1".into(),
                    "/org/freedesktop/FileManager1".into(),
                    "org.freedesktop.FileManager1.ShowItems".into(),
                    format!("array:string:{uri}").into(),
                    "string:".into(),
                ],
            ];
            let folder = path
                .parent()
                .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
            attempts.extend(open_with(&folder));
            attempts
        }
    }
}

/// A `file://` URI with every byte outside the unreserved set percent-encoded.
pub fn file_uri(path: &Path) -> String {
    let mut uri = String::from("file://");
    for &byte in path.as_os_str().as_encoded_bytes() {
        if byte.is_ascii_alphanumeric() || b"/-_.~".contains(&byte) {
            uri.push(byte as char);
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri
}

/// Runs each command until one exits successfully (or keeps running past
/// [`LAUNCH_WAIT`]); otherwise returns why each failed.
fn run_first_that_works(attempts: &[Vec<OsString>]) -> Result<(), Vec<String>> {
    let mut reasons = Vec::new();
    for command in attempts {
        let Some((program, args)) = command.split_first() else {
            continue;
        };
        let name = program.to_string_lossy().into_owned();
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                reasons.push(format!("{name} is not installed"));
                continue;
            }
            Err(error) => {
                reasons.push(format!("{name} could not start ({error})"));
                continue;
            }
        };
        let started = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    let mut stderr = String::new();
                    if let Some(mut pipe) = child.stderr.take() {
                        std::io::Read::read_to_string(&mut pipe, &mut stderr).ok();
                    }
                    let detail = stderr.lines().next().unwrap_or("").trim().to_string();
                    reasons.push(if detail.is_empty() {
                        format!("{name} failed ({status})")
                    } else {
                        format!("{name} failed: {detail}")
                    });
                    break;
                }
                Ok(None) if started.elapsed() > LAUNCH_WAIT => return Ok(()),
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(error) => {
                    reasons.push(format!("{name}: {error}"));
                    break;
                }
            }
        }
    }
    Err(reasons)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_uris_escape_what_a_uri_cannot_hold() {
        assert_eq!(
            file_uri(Path::new("/photos/a b/ü's.jpg")),
            "file:///photos/a%20b/%C3%BC%27s.jpg"
        );
    }

    #[test]
    fn the_first_working_launcher_wins_and_failures_say_why() {
        let ok = run_first_that_works(&[
            vec!["likeness-no-such-launcher".into()],
            vec!["true".into()],
        ]);
        assert!(ok.is_ok());
        let failed = run_first_that_works(&[
            vec!["likeness-no-such-launcher".into()],
            vec![
                "sh".into(),
                "-c".into(),
                "echo no handler >&2; exit 3".into(),
            ],
        ])
        .expect_err("both fail");
        assert_eq!(
            failed,
            vec![
                "likeness-no-such-launcher is not installed".to_string(),
                "sh failed: no handler".to_string()
            ]
        );
    }
}
