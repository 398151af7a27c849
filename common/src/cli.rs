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

/// Parses the arguments as `A`, runs the tool, and turns the result into
/// the process exit status.
///
/// Usage errors exit 2 (clap's own convention matches the contract). An
/// error that escapes `run` is printed as one `ERROR` line with its whole
/// context chain; a broken pipe is a clean, silent exit.
pub fn main<A: Parser>(tool: &'static str, run: fn(A) -> anyhow::Result<Exit>) -> ExitCode {
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
