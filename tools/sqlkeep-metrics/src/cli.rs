//! The command line of `sqlkeep-metrics`, from which its man page and shell
//! completions are generated.

use clap::Parser;
use sqlkeep_common::exit::Exit;
use sqlkeep_common::log::LogArgs;
use sqlkeep_common::manual::Manual;
use std::path::PathBuf;

/// The examples, credentials, environment and exit statuses of
/// `sqlkeep-metrics`, for its `--help` and man page.
pub const MANUAL: Manual = Manual {
    examples: &[
        "sqlite-snap -q storage/ | bucket-push -q s3://my-bucket/databases | sqlkeep-metrics -q --textfile /var/lib/node_exporter/textfile_collector/sqlkeep.prom",
        "bucket-pull -q s3://my-bucket/databases/production --latest -o /tmp/drill.sqlite3 | sqlite-verify -q --max-age 26h | sqlkeep-metrics -q --textfile /var/lib/node_exporter/textfile_collector/sqlkeep.prom --expect-drill production",
        "# an alert rule to start from: examples/prometheus/sqlkeep.rules.yml",
    ],
    credentials: "Credentials: none; sqlkeep-metrics reads records and writes a local file.",
    environment: &[],
    exit_status: &[
        (Exit::Ok, "FILE updated and every record said success"),
        (
            Exit::Failed,
            "a record said a failure (a failed drill, a failed retention), an --expect-drill database had no drill record, a stdin line was not a record, or FILE could not be written (the records are passed on all the same)",
        ),
        (Exit::Usage, "usage"),
        (
            Exit::Unavailable,
            "the directory of FILE stayed locked by another run",
        ),
    ],
};

/// Turn records into Prometheus metrics for node_exporter.
#[derive(Parser, Debug)]
#[command(
    name = "sqlkeep-metrics",
    version,
    about = "Turn sqlkeep records into a node_exporter textfile (Prometheus metrics), passing them on unchanged",
    long_about = "Read records on stdin, copy every line to stdout unchanged (so it sits anywhere in a \
pipeline), and at the end of the input update FILE, a node_exporter textfile in the Prometheus \
exposition format, with one set of metrics per database (labels `db` and `remote`):\n\n\
from `object` records (bucket-push): sqlkeep_backup_last_success_timestamp_seconds (the newest \
backup's `stored_at`), sqlkeep_backup_taken_timestamp_seconds (its `taken_at`: the recovery point), \
sqlkeep_backup_bytes, sqlkeep_backup_raw_bytes, sqlkeep_backup_duration_seconds (snapshot plus \
upload), sqlkeep_backup_requests_total{class=\"a|b|c\"};\n\n\
from `verified` records of a restore drill (bucket-pull | sqlite-verify): sqlkeep_drill_ok (1 or 0), \
sqlkeep_drill_last_timestamp_seconds, sqlkeep_drill_last_success_timestamp_seconds, \
sqlkeep_drill_taken_timestamp_seconds (when the restored snapshot was taken), \
sqlkeep_drill_requests_total{class}.\n\n\
FILE keeps every database seen by earlier runs: their state is kept beside it in FILE.json. Both \
are replaced atomically (a temporary file in the same directory, fsync, rename; mode 0644), under \
a lock on the directory, so a killed or failed run leaves the previous file whole and two \
pipelines may update one file. A backup that failed upstream prints no record: it leaves its \
database's last-success time as it was, which is what an alert on its age catches.",
    after_help = MANUAL.after_help()
)]
pub struct Args {
    /// The textfile to update, e.g. /var/lib/node_exporter/textfile_collector/sqlkeep.prom (node_exporter reads only *.prom)
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub textfile: PathBuf,

    /// A restore drill of DB ran upstream: if no `verified` record of DB arrives, record a failed drill (repeatable)
    #[arg(long, value_name = "DB")]
    pub expect_drill: Vec<String>,

    /// -q and -v.
    #[command(flatten)]
    pub log: LogArgs,
}
