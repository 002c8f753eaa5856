//! Ctrl+C and SIGTERM for the long headless commands: the first signal asks the running
//! job to stop at its next batch (indexing then saves what it has), a second one exits
//! at once. Folders registered with [`remove_on_interrupt`] (a benchmark's scratch copy
//! of a data set) are removed before the process exits on a signal.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the first Ctrl+C / SIGTERM.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// Scratch folders to remove if the process is ended by a signal.
static SCRATCH: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Whether the first signal should end the process (after removing the scratch) rather
/// than ask the job to stop.
static EXIT_AT_ONCE: AtomicBool = AtomicBool::new(false);
/// A line the handler prints at the first signal (where a sort's journal is).
static NOTE: Mutex<Option<String>> = Mutex::new(None);

/// Exit code after an interrupt (128 + SIGINT), as shells expect.
pub const INTERRUPTED_EXIT_CODE: i32 = 130;

/// Installs the handler (once) and returns the flag a job polls to stop early.
pub fn flag() -> &'static AtomicBool {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let installed = ctrlc::set_handler(|| {
            let second = INTERRUPTED.swap(true, Ordering::SeqCst);
            if let Ok(note) = NOTE.lock()
                && let Some(note) = note.as_deref()
            {
                eprintln!("\n{note}");
            }
            if second || EXIT_AT_ONCE.load(Ordering::SeqCst) {
                remove_scratch();
                std::process::exit(INTERRUPTED_EXIT_CODE);
            }
            eprintln!(
                "\ninterrupted: stopping after the current batch (press Ctrl+C again to quit now)"
            );
        });
        if let Err(error) = installed {
            eprintln!("warning: Ctrl+C will end Likeness without cleaning up ({error})");
        }
    });
    &INTERRUPTED
}

/// Prints `note` when the process is interrupted (what a person needs to know to pick up
/// the pieces, such as the journal that undoes a sort).
pub fn note_on_interrupt(note: String) {
    flag();
    if let Ok(mut slot) = NOTE.lock() {
        *slot = Some(note);
    }
}

/// Removes `folder` if the process is ended by Ctrl+C or SIGTERM, and makes the first
/// signal end it (the job holding the folder has nothing worth saving).
pub fn remove_on_interrupt(folder: PathBuf) {
    flag();
    EXIT_AT_ONCE.store(true, Ordering::SeqCst);
    if let Ok(mut scratch) = SCRATCH.lock() {
        scratch.push(folder);
    }
}

fn remove_scratch() {
    if let Ok(scratch) = SCRATCH.lock() {
        for folder in scratch.iter() {
            std::fs::remove_dir_all(folder).ok();
        }
    }
}
