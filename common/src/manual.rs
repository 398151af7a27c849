//! What a tool's `--help` and man page say besides its options: examples,
//! where credentials come from, the environment it reads, and what its
//! exit statuses mean.
//!
//! Each tool's `cli.rs` holds one [`Manual`]. The end of its `--help` is
//! [`Manual::after_help`], and `tests/generated.rs` renders the man page's
//! EXAMPLES, ENVIRONMENT and EXIT STATUS sections from the same value, so
//! the two cannot disagree. The examples are kept as lines, not prose,
//! because a man page must show them verbatim: rendered as clap_mangen's
//! EXTRA paragraph they were reflowed and hyphenated mid-word (issue 14).

use crate::crypt::args::IDENTITY_FILE_ENV;
use crate::exit::Exit;

/// An environment variable a tool reads, and what it changes.
#[derive(Debug)]
pub struct Var {
    /// The name, or a pattern such as `RCLONE_CONFIG_<NAME>_<KEY>`.
    pub name: &'static str,
    /// What it does, one sentence or two.
    pub meaning: &'static str,
}

/// The parts of a tool's documentation that are not its options.
#[derive(Debug)]
pub struct Manual {
    /// Command lines, shown exactly as written; a line starting with `#`
    /// is a comment on the line after it.
    pub examples: &'static [&'static str],
    /// One line saying where the tool's credentials come from.
    pub credentials: &'static str,
    /// The variables the tool reads, in groups (shared groups below).
    pub environment: &'static [&'static [Var]],
    /// What each exit status means for this tool.
    pub exit_status: &'static [(Exit, &'static str)],
}

impl Manual {
    /// The text `--help` ends with: examples, credentials, exit statuses.
    pub fn after_help(&self) -> String {
        let mut text = String::from("Examples:\n");
        for line in self.examples {
            text.push_str("  ");
            text.push_str(line);
            text.push('\n');
        }
        text.push('\n');
        text.push_str(self.credentials);
        text.push_str("\n\nExit status: ");
        let statuses: Vec<String> = self
            .exit_status
            .iter()
            .map(|(exit, meaning)| format!("{} {meaning}", exit.code()))
            .collect();
        text.push_str(&statuses.join(", "));
        text.push('.');
        text
    }

    /// Every variable, in order.
    pub fn variables(&self) -> impl Iterator<Item = &'static Var> {
        self.environment.iter().flat_map(|group| group.iter())
    }
}

/// The credentials line of the tools that talk to remotes: one line of
/// `--help` (under 100 columns, clap's width without a terminal), the man
/// page's ENVIRONMENT has the rest.
pub const REMOTE_CREDENTIALS: &str = "Credentials: AWS_* variables for s3://, rclone config for name: (ENVIRONMENT in the man page).";

/// Where `s3://` addresses get their storage and keys.
pub const S3: &[Var] = &[
    Var {
        name: "AWS_ACCESS_KEY_ID",
        meaning: "The access key for s3:// addresses (and for rclone remotes with env_auth = true).",
    },
    Var {
        name: "AWS_SECRET_ACCESS_KEY",
        meaning: "Its secret. Never printed, logged or stored.",
    },
    Var {
        name: "AWS_SESSION_TOKEN",
        meaning: "The session token of temporary credentials.",
    },
    Var {
        name: "AWS_ENDPOINT_URL_S3",
        meaning: "The endpoint of S3-compatible storage other than AWS \
(https://fly.storage.tigris.dev, https://<account>.r2.cloudflarestorage.com, \
http://minio:9000); https is assumed without a scheme.",
    },
    Var {
        name: "AWS_ENDPOINT_URL",
        meaning: "The endpoint when AWS_ENDPOINT_URL_S3 is not set.",
    },
    Var {
        name: "AWS_REGION",
        meaning: "The signing region. Default: auto for Tigris and Cloudflare R2 endpoints, \
else us-east-1.",
    },
    Var {
        name: "AWS_DEFAULT_REGION",
        meaning: "The region when AWS_REGION is not set.",
    },
    Var {
        name: "SQLKEEP_S3_PATH_STYLE",
        meaning: "true: address the bucket in the path (http://host/bucket/key); false: as a \
host name (http://bucket.host/key). Default: true with a custom endpoint, false on AWS.",
    },
];

/// Where `name:` addresses find rclone's remote definitions.
pub const RCLONE: &[Var] = &[
    Var {
        name: "RCLONE_CONFIG_<NAME>_<KEY>",
        meaning: "A setting of the remote name: as rclone reads it (RCLONE_CONFIG_B2_TYPE=s3, \
..._PROVIDER, ..._ENDPOINT, ..._REGION, ..._ACCESS_KEY_ID, ..._SECRET_ACCESS_KEY); \
these win over the config file.",
    },
    Var {
        name: "RCLONE_CONFIG",
        meaning: "rclone's config file. Default: $XDG_CONFIG_HOME/rclone/rclone.conf, \
~/.config/rclone/rclone.conf, then ~/.rclone.conf.",
    },
    Var {
        name: "XDG_CONFIG_HOME",
        meaning: "Where rclone's config file is looked for first.",
    },
];

/// Extra trust for storage behind a private certificate authority.
pub const TLS: &[Var] = &[
    Var {
        name: "AWS_CA_BUNDLE",
        meaning: "A PEM file of certificate authorities trusted in addition to the built-in \
roots (MinIO or Garage behind a private CA).",
    },
    Var {
        name: "SSL_CERT_FILE",
        meaning: "Another such PEM file, also added.",
    },
];

/// `$HOME`, for the defaults that live below it.
pub const HOME: &[Var] = &[Var {
    name: "HOME",
    meaning: "The base of the default directories under ~ named above.",
}];

/// The private directory for temporary snapshots.
pub const TMPDIR: &[Var] = &[Var {
    name: "TMPDIR",
    meaning: "Where temporary snapshots live, in a private directory \
$TMPDIR/sqlkeep-<uid> (mode 0700). Default: /tmp.",
}];

/// The identity that decrypts age-encrypted objects.
pub const IDENTITY: &[Var] = &[Var {
    name: IDENTITY_FILE_ENV,
    meaning: "An age identity file used when no --identity is given, to decrypt encrypted \
objects.",
}];

/// The passphrase variable the user names.
pub const PASSPHRASE_ENV: &[Var] = &[Var {
    name: "the variable named by --passphrase-env",
    meaning: "The age passphrase, read from the environment instead of a file.",
}];
