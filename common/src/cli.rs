//! The shared `main` of every tool: parse, run, map the outcome to an exit
//! code, and end quietly on a closed stdout.
//!
//! Each tool's `main.rs` is one call to [`main`]; each tool's library
//! exports `command()` (its clap definition, from which man pages and
//! completions are generated) and `run()`.

use crate::exit::{Exit, exit_of, is_broken_pipe};
use crate::log::{Level, Log};
use clap::Parser;
use std::process::ExitCode;

/// Makes glibc return large freed buffers to the system at once.
///
/// glibc raises its mmap threshold after the first large buffer is freed,
/// so later buffers of that size come from the heap and stay resident when
/// freed: measured here, bucket-push's peak RSS was 21.5 or 29.7 MiB from
/// one run to the next (one 8 MiB part kept or not). A fixed threshold
/// makes it the same every time.
fn bound_allocator_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Parses the arguments as `A`, runs the tool, and turns the result into
/// the process exit status.
///
/// Usage errors exit 2 (clap's own convention matches the contract). An
/// error that escapes `run` is printed as one `ERROR` line with its whole
/// context chain; a broken pipe is a clean, silent exit.
pub fn main<A: Parser>(tool: &'static str, run: fn(A) -> anyhow::Result<Exit>) -> ExitCode {
    bound_allocator_memory();
    let args = A::parse();
    match run(args) {
        Ok(exit) => exit.into(),
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            Log::new(tool, Level::Normal).error("", &err);
            exit_of(&err).into()
        }
    }
}
