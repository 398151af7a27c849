//! The `sqlkeep-metrics` binary: everything lives in the library, so that man pages and
//! completions are generated from the same clap definition this parses with.

fn main() -> std::process::ExitCode {
    sqlkeep_common::cli::main("sqlkeep-metrics", sqlkeep_metrics::run)
}
