//! What every sqlkeep tool needs once.
//!
//! The tools (`sqlite-snap`, `bucket-push`, `bucket-pull`, `sqlite-verify`,
//! and those to come) are small programs composed in shell pipelines; this
//! crate holds the contract they share (`../shared/design.md`): records
//! and how input is read, the stderr log, exit codes, addresses and the
//! layout of a remote, atomic file writing, streaming SHA-256 and zstd,
//! and the storage backends.

pub mod address;
pub mod atomic;
pub mod cli;
pub mod compress;
pub mod digest;
pub mod discover;
pub mod exit;
pub mod input;
pub mod layout;
pub mod log;
pub mod private_dir;
pub mod record;
pub mod sqlite;
pub mod store;
pub mod time;
pub mod units;

pub use exit::{Exit, fail};
