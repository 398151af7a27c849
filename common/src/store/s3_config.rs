//! Where an S3 address points and with which credentials.
//!
//! `s3://bucket/prefix` reads the standard AWS variables (exactly what
//! Fly.io sets for Tigris). `name:bucket/prefix` is resolved the way rclone
//! resolves a remote, so an existing rclone setup is reused as it is:
//! `RCLONE_CONFIG_<NAME>_<KEY>` variables first, then the `[name]` section
//! of rclone's config file. Every problem here is a configuration error
//! (exit 2) whose message names what to set, and no secret ever appears in
//! one.

use super::rclone_ini::{LineError, RcloneIni, Section};
use crate::address::Address;
use crate::exit::{Exit, fail};
use anyhow::Result;
use std::fmt;
use std::path::PathBuf;

/// A credential that must never be printed: its `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret's text, for signing requests only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Everything needed to talk to one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix under the bucket, without leading or trailing `/`.
    pub key: String,
    /// The address as the operator wrote it (`s3://…` or `name:…`), for
    /// records and logs.
    pub display: String,
    /// Endpoint URL with its scheme.
    pub endpoint: String,
    /// True when the endpoint was given without a scheme and https was
    /// assumed (said when TLS then fails: a plain-HTTP server).
    pub scheme_assumed: bool,
    /// Signing region (`us-east-1`, `auto`, …).
    pub region: String,
    /// Path-style requests (`endpoint/bucket/key`) rather than
    /// virtual-hosted (`bucket.endpoint/key`).
    pub path_style: bool,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: Secret,
    /// Session token of temporary credentials.
    pub session_token: Option<Secret>,
}

/// Looks up an environment variable (a parameter so tests need not touch
/// the process environment).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, ignoring empty values.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Resolves an S3 or named address.
pub fn resolve(address: &Address, env: Env<'_>) -> Result<S3Config> {
    match address {
        Address::S3 { bucket, key } => from_aws_env(bucket, key, &address.to_string(), env),
        Address::Named {
            remote,
            bucket,
            key,
        } => from_rclone(remote, bucket, key, &address.to_string(), env),
        Address::Local(_) => Err(fail(
            Exit::Usage,
            "a local directory has no S3 configuration",
        )),
    }
}

/// `s3://` from `AWS_*` variables.
fn from_aws_env(bucket: &str, key: &str, display: &str, env: Env<'_>) -> Result<S3Config> {
    let (Some(access_key), Some(secret_key)) =
        (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"))
    else {
        return Err(fail(
            Exit::Usage,
            format!(
                "{display}: no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY \
                 (and AWS_ENDPOINT_URL_S3 and AWS_REGION for storage other than AWS)"
            ),
        ));
    };
    let custom = env("AWS_ENDPOINT_URL_S3").or_else(|| env("AWS_ENDPOINT_URL"));
    let region = env("AWS_REGION")
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| default_region(custom.as_deref()));
    let path_style = match env("SQLKEEP_S3_PATH_STYLE").as_deref() {
        Some(v) => parse_bool(v).ok_or_else(|| {
            fail(
                Exit::Usage,
                format!("SQLKEEP_S3_PATH_STYLE={v:?}: use true or false"),
            )
        })?,
        None => custom.is_some(),
    };
    Ok(S3Config {
        bucket: bucket.into(),
        key: key.into(),
        display: display.into(),
        scheme_assumed: custom.as_deref().is_some_and(|u| !u.contains("://")),
        endpoint: match custom {
            Some(url) => normalize_endpoint(&url),
            None => aws_endpoint(&region),
        },
        region,
        path_style,
        access_key,
        secret_key: Secret(secret_key),
        session_token: env("AWS_SESSION_TOKEN").map(Secret),
    })
}

/// Providers rclone talks to in virtual-hosted style whatever
/// `force_path_style` says (its `setQuirks`); every other provider gets
/// path style unless `force_path_style = false`.
const VIRTUAL_HOST_PROVIDERS: [&str; 12] = [
    "AWS",
    "Alibaba",
    "DigitalOcean",
    "Dreamhost",
    "HuaweiOBS",
    "LyveCloud",
    "Netease",
    "RackCorp",
    "Scaleway",
    "Storj",
    "TencentCOS",
    "Wasabi",
];

/// `name:` from rclone's variables and config file.
fn from_rclone(
    remote: &str,
    bucket: &str,
    key: &str,
    display: &str,
    env: Env<'_>,
) -> Result<S3Config> {
    let conf = RcloneRemote::load(remote, env)?;
    let kind = conf.get("type").unwrap_or_default();
    match kind.as_str() {
        "s3" => {}
        "b2" => {
            return Err(fail(
                Exit::Usage,
                format!(
                    "remote {remote:?} is rclone's native B2 API (type = b2); sqlkeep speaks B2's S3 API: \
                     add a remote with type = s3, provider = Other, endpoint = s3.<region>.backblazeb2.com \
                     (the bucket's S3 endpoint in B2's console), region = <region>, \
                     access_key_id = <keyID>, secret_access_key = <applicationKey>, and use that remote's name"
                ),
            ));
        }
        "" => return Err(fail(Exit::Usage, format!("remote {remote:?} has no type"))),
        other => {
            return Err(fail(
                Exit::Usage,
                format!(
                    "remote {remote:?} has type = {other}; sqlkeep supports type = s3 remotes only"
                ),
            ));
        }
    }
    let provider_setting = conf.get("provider");
    let provider = provider_setting.clone().unwrap_or_else(|| "Other".into());
    let region = conf.get("region").unwrap_or_else(|| {
        if provider == "Cloudflare" {
            "auto".into()
        } else {
            "us-east-1".into()
        }
    });
    let scheme_assumed = conf.get("endpoint").is_some_and(|u| !u.contains("://"));
    let endpoint = match conf.get("endpoint") {
        Some(url) => normalize_endpoint(&url),
        None if matches!(provider_setting.as_deref(), None | Some("AWS")) => aws_endpoint(&region),
        None => {
            return Err(fail(
                Exit::Usage,
                format!(
                    "remote {remote:?} (provider {provider}) has no endpoint; set endpoint in its config"
                ),
            ));
        }
    };
    let path_style = if VIRTUAL_HOST_PROVIDERS.contains(&provider.as_str()) {
        false
    } else {
        match conf.get("force_path_style") {
            Some(v) => parse_bool(&v).ok_or_else(|| {
                fail(
                    Exit::Usage,
                    format!("remote {remote:?}: force_path_style = {v:?} is not true or false"),
                )
            })?,
            None => true,
        }
    };
    let env_auth = conf
        .get("env_auth")
        .is_some_and(|v| parse_bool(&v) == Some(true));
    let (access_key, secret_key, session_token) = match (
        conf.get("access_key_id"),
        conf.get("secret_access_key"),
    ) {
        (Some(id), Some(secret)) => (id, secret, conf.get("session_token")),
        _ if env_auth => match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => (id, secret, env("AWS_SESSION_TOKEN")),
            _ => {
                return Err(fail(
                    Exit::Usage,
                    format!(
                        "remote {remote:?} has env_auth = true but AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set"
                    ),
                ));
            }
        },
        _ => {
            return Err(fail(
                Exit::Usage,
                format!(
                    "remote {remote:?} has no access_key_id and secret_access_key \
                     (set them, or env_auth = true with the AWS_* variables)"
                ),
            ));
        }
    };
    Ok(S3Config {
        bucket: bucket.into(),
        key: key.into(),
        display: display.into(),
        endpoint,
        scheme_assumed,
        region,
        path_style,
        access_key,
        secret_key: Secret(secret_key),
        session_token: session_token.map(Secret),
    })
}

/// The signing region when none is set: `auto` for the providers that
/// document it (Tigris, whose `fly storage create` does not always set
/// `AWS_REGION`, and Cloudflare R2), else `us-east-1`, which AWS and MinIO
/// take as the default.
fn default_region(endpoint: Option<&str>) -> String {
    let host = endpoint.unwrap_or_default().to_ascii_lowercase();
    let auto = ["tigris.dev", "storage.dev", "r2.cloudflarestorage.com"];
    if auto.iter().any(|h| host.contains(h)) {
        "auto".into()
    } else {
        "us-east-1".into()
    }
}

/// AWS's regional endpoint.
fn aws_endpoint(region: &str) -> String {
    format!("https://s3.{region}.amazonaws.com")
}

/// An endpoint without a scheme means https; no trailing slash.
fn normalize_endpoint(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    if url.contains("://") {
        url.to_string()
    } else {
        format!("https://{url}")
    }
}

/// rclone's boolean spellings.
fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

/// One rclone remote's settings: variables win over the config file.
struct RcloneRemote<'a> {
    name: String,
    file: Section,
    env: Env<'a>,
}

impl<'a> RcloneRemote<'a> {
    /// Finds the remote in variables or the config file (usage error when
    /// it is in neither).
    fn load(name: &str, env: Env<'a>) -> Result<RcloneRemote<'a>> {
        let path = config_path(env);
        let file = match &path {
            Some(path) => read_section(path, name)?,
            None => None,
        };
        let remote = RcloneRemote {
            name: name.to_string(),
            file: file.clone().unwrap_or_default(),
            env,
        };
        if file.is_none() && remote.variable("type").is_none() {
            let known = known_remotes(path.as_deref());
            let hint = match crate::suggest::closest(name, known.iter().map(String::as_str)) {
                Some(best) => format!("; did you mean {best}:?"),
                None => {
                    format!(" (for a local directory whose name has a colon, write ./{name}:…)")
                }
            };
            let place = path.map_or("no rclone config file found".to_string(), |p| {
                format!("not in {}", p.display())
            });
            return Err(fail(
                Exit::Usage,
                format!(
                    "unknown remote {name:?}: no RCLONE_CONFIG_{}_TYPE variable, and {place}{hint}",
                    name.to_uppercase().replace('-', "_")
                ),
            ));
        }
        Ok(remote)
    }

    /// A setting, from `RCLONE_CONFIG_<NAME>_<KEY>` or the file.
    fn get(&self, key: &str) -> Option<String> {
        self.variable(key)
            .or_else(|| self.file.get(key).cloned())
            .filter(|v| !v.is_empty())
    }

    /// rclone's variable names: the remote name upper-cased, `-` in the key
    /// as `_`; older rclone also wrote the name's `-` as `_`, so both are
    /// tried.
    fn variable(&self, key: &str) -> Option<String> {
        let key = key.to_uppercase().replace('-', "_");
        let name = self.name.to_uppercase();
        (self.env)(&format!("RCLONE_CONFIG_{name}_{key}"))
            .or_else(|| (self.env)(&format!("RCLONE_CONFIG_{}_{key}", name.replace('-', "_"))))
    }
}

/// rclone's config file: `$RCLONE_CONFIG`, else
/// `$XDG_CONFIG_HOME/rclone/rclone.conf`, else `~/.config/rclone/rclone.conf`,
/// else the legacy `~/.rclone.conf`.
fn config_path(env: Env<'_>) -> Option<PathBuf> {
    if let Some(path) = env("RCLONE_CONFIG") {
        return Some(PathBuf::from(path));
    }
    let home = env("HOME").map(PathBuf::from);
    let candidates = [
        env("XDG_CONFIG_HOME").map(|x| PathBuf::from(x).join("rclone/rclone.conf")),
        home.as_ref().map(|h| h.join(".config/rclone/rclone.conf")),
        home.as_ref().map(|h| h.join(".rclone.conf")),
    ];
    candidates.into_iter().flatten().find(|p| p.is_file())
}

/// The remotes rclone would know, for "did you mean": the sections of the
/// config file and the `RCLONE_CONFIG_<NAME>_TYPE` variables.
fn known_remotes(path: Option<&std::path::Path>) -> Vec<String> {
    let mut names: Vec<String> = std::env::vars_os()
        .filter_map(|(key, _)| {
            let key = key.to_str()?;
            let name = key.strip_prefix("RCLONE_CONFIG_")?.strip_suffix("_TYPE")?;
            Some(name.to_lowercase())
        })
        .collect();
    if let Some(text) = path.and_then(|p| std::fs::read_to_string(p).ok())
        && let Ok(ini) = RcloneIni::parse(&text)
    {
        names.extend(ini.names().map(str::to_string));
    }
    names
}

/// One `[section]` of rclone's config file; None when the file or the
/// section is missing.
fn read_section(path: &std::path::Path, name: &str) -> Result<Option<Section>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(fail(
                Exit::Usage,
                format!("cannot read rclone config {}: {e}", path.display()),
            ));
        }
    };
    if text.trim_start().starts_with("RCLONE_ENCRYPT_V0:") {
        return Err(fail(
            Exit::Usage,
            format!(
                "rclone config {} is encrypted; give the remote as RCLONE_CONFIG_<NAME>_* variables instead",
                path.display()
            ),
        ));
    }
    let ini = RcloneIni::parse(&text).map_err(|LineError { line, why }| {
        fail(
            Exit::Usage,
            format!(
                "rclone config {} line {line}: {why} (rclone itself would refuse this file)",
                path.display()
            ),
        )
    })?;
    Ok(ini.section(name).cloned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn fly_tigris_variables() {
        let env = env_of(&[
            ("AWS_ACCESS_KEY_ID", "tid_x"),
            ("AWS_SECRET_ACCESS_KEY", "tsec_y"),
            ("AWS_REGION", "auto"),
            ("AWS_ENDPOINT_URL_S3", "fly.storage.tigris.dev"),
        ]);
        let c = resolve(
            &Address::parse("s3://my-app-bucket/databases").unwrap(),
            &env,
        )
        .unwrap();
        assert_eq!(c.endpoint, "https://fly.storage.tigris.dev");
        assert_eq!((c.region.as_str(), c.path_style), ("auto", true));
        assert_eq!(
            (c.bucket.as_str(), c.key.as_str()),
            ("my-app-bucket", "databases")
        );
        assert!(!format!("{c:?}").contains("tsec_y"), "secret in Debug");
    }

    #[test]
    fn tigris_without_a_region_signs_for_auto() {
        let env = env_of(&[
            ("AWS_ACCESS_KEY_ID", "tid_x"),
            ("AWS_SECRET_ACCESS_KEY", "tsec_y"),
            ("AWS_ENDPOINT_URL_S3", "https://fly.storage.tigris.dev"),
        ]);
        let c = resolve(&Address::parse("s3://b").unwrap(), &env).unwrap();
        assert_eq!(c.region, "auto");
    }

    #[test]
    fn aws_defaults_and_missing_credentials() {
        let env = env_of(&[
            ("AWS_ACCESS_KEY_ID", "a"),
            ("AWS_SECRET_ACCESS_KEY", "b"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
        ]);
        let c = resolve(&Address::parse("s3://b").unwrap(), &env).unwrap();
        assert_eq!(c.endpoint, "https://s3.eu-west-1.amazonaws.com");
        assert!(!c.path_style);
        let err = resolve(&Address::parse("s3://b").unwrap(), &env_of(&[])).unwrap_err();
        assert_eq!(crate::exit::exit_of(&err), Exit::Usage);
        assert!(format!("{err}").contains("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"));
    }

    #[test]
    fn rclone_variables_win_over_file() {
        let dir = std::env::temp_dir().join(format!("sqlkeep-rclone-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("rclone.conf");
        std::fs::write(
            &conf,
            "[other]\ntype = s3\n\n[r2]\ntype = s3\nprovider = Cloudflare\nendpoint = acct.r2.cloudflarestorage.com\n\
             access_key_id = fileid\nsecret_access_key = filesecret\n\n[nativeb2]\ntype = b2\naccount = x\nkey = y\n",
        )
        .unwrap();
        let conf_s = conf.display().to_string();
        let env = env_of(&[
            ("RCLONE_CONFIG", &conf_s),
            ("RCLONE_CONFIG_R2_ACCESS_KEY_ID", "envid"),
        ]);
        let c = resolve(&Address::parse("r2:bkt/db").unwrap(), &env).unwrap();
        assert_eq!(c.access_key, "envid");
        assert_eq!(c.secret_key.expose(), "filesecret");
        assert_eq!((c.region.as_str(), c.path_style), ("auto", true));
        assert_eq!(c.endpoint, "https://acct.r2.cloudflarestorage.com");

        let err = resolve(&Address::parse("nativeb2:bkt").unwrap(), &env).unwrap_err();
        assert!(
            format!("{err}").contains("s3.<region>.backblazeb2.com"),
            "{err}"
        );
        let err = resolve(&Address::parse("nope:bkt").unwrap(), &env).unwrap_err();
        assert!(
            format!("{err}").contains("unknown remote \"nope\""),
            "{err}"
        );
        assert_eq!(crate::exit::exit_of(&err), Exit::Usage);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn remote_from_variables_only() {
        let env = env_of(&[
            ("RCLONE_CONFIG", "/nonexistent/rclone.conf"),
            ("RCLONE_CONFIG_MINIO_TYPE", "s3"),
            ("RCLONE_CONFIG_MINIO_PROVIDER", "Minio"),
            ("RCLONE_CONFIG_MINIO_ENDPOINT", "http://127.0.0.1:9000"),
            ("RCLONE_CONFIG_MINIO_ACCESS_KEY_ID", "k"),
            ("RCLONE_CONFIG_MINIO_SECRET_ACCESS_KEY", "s"),
        ]);
        let c = resolve(&Address::parse("minio:bkt/x").unwrap(), &env).unwrap();
        assert_eq!(
            (c.endpoint.as_str(), c.path_style),
            ("http://127.0.0.1:9000", true)
        );
        let env_aws = env_of(&[
            ("RCLONE_CONFIG", "/nonexistent/rclone.conf"),
            ("RCLONE_CONFIG_AWS_TYPE", "s3"),
            ("RCLONE_CONFIG_AWS_PROVIDER", "AWS"),
            ("RCLONE_CONFIG_AWS_REGION", "eu-central-1"),
            ("RCLONE_CONFIG_AWS_ENV_AUTH", "true"),
            ("AWS_ACCESS_KEY_ID", "k"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
        ]);
        let c = resolve(&Address::parse("aws:bkt").unwrap(), &env_aws).unwrap();
        assert_eq!(
            (c.endpoint.as_str(), c.path_style),
            ("https://s3.eu-central-1.amazonaws.com", false)
        );
    }
}
