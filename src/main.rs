//! The `likeness` binary: the window with no arguments, a headless command otherwise.

use std::process::ExitCode;

use clap::Parser;
use likeness::cli::Cli;

fn main() -> ExitCode {
    likeness::engine::device::openmp_threads_spin_briefly();
    likeness::engine::device::keep_freed_memory();
    likeness::engine::device::blas_on_calling_thread();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(command) => likeness::cli::run(command),
        None => likeness::app::run_window(cli.open),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // A file name in the message must not drive the terminal (escape codes).
            eprintln!(
                "error: {}",
                likeness::cli::terminal_safe(&format!("{error:#}"))
            );
            ExitCode::FAILURE
        }
    }
}
