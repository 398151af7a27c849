//! End-to-end tests: the real binaries, run as a shell user would, on real
//! SQLite files (with a real concurrent writer process where it matters).
//!
//! One test binary for all tools (as uutils does), so the binaries are
//! built once per run; see `e2e/support.rs` for the harness.

mod proxy;
mod races;
mod s3server;
mod support;

mod age_cli;
mod bad_input;
mod bank;
mod consistency;
mod encrypted_sync;
mod encryption;
mod examples;
mod full_disk;
mod incremental;
mod install;
mod kills;
mod leftovers;
mod listing;
mod maint;
mod metrics;
mod pipeline;
mod pipes;
mod rclone_ini;
mod restore_daily;
mod retention;
mod s3;
mod snap;
mod special;
mod sync;
mod tamper;
mod tenants;
mod tls;
mod verify;
mod wording;
