//! A progress line on a terminal, and nothing anywhere else (cron mail,
//! a pipe, a log file, `-q`). indicatif draws it, limits how often it is
//! redrawn, and clears it when the work is done.

use crate::log::Log;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress line, or nothing when stderr is not a person's terminal.
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// A line for `total` units of work, drawn with `template` (indicatif's
    /// syntax: `{msg}` is `label`, `{pos}`, `{len}`, `{percent}`).
    pub fn new(log: &Log, label: &str, total: u64, template: &str) -> Progress {
        if !log.interactive() {
            return Progress(None);
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.set_message(label.to_string());
        Progress(Some(bar))
    }

    /// Sets how much is done.
    pub fn set(&self, done: u64) {
        if let Some(bar) = &self.0 {
            bar.set_position(done);
        }
    }

    /// One more unit done.
    pub fn inc(&self) {
        if let Some(bar) = &self.0 {
            bar.inc(1);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
