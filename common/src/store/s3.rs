//! S3-compatible object storage: AWS, Backblaze B2, Cloudflare R2, Tigris,
//! MinIO, and rclone's own S3 server in the tests.
//!
//! What this backend promises, and how:
//! - **Only the requests that are needed.** No bucket HEAD or creation
//!   (creating a bucket is where rust-s3 sends the LocationConstraint some
//!   providers reject), no HEAD after PUT, no LIST unless asked.
//! - **Plain signed payloads.** Every request carries the SHA-256 of its
//!   body; nothing uses aws-chunked or trailing checksums, which B2, R2 and
//!   others reject.
//! - **Bounded memory.** Small objects go up in one PUT; larger ones in
//!   parts of [`part_size`] bytes, two sent while a third is read, sized
//!   so no upload needs more than 10,000 parts. A fatal error on one part
//!   stops the whole upload at once.
//! - **Nothing half-visible.** A multipart upload becomes an object only on
//!   completion, which happens only when the bytes match the expected
//!   SHA-256; on any failure it is aborted, unless the completion's answer
//!   was lost and the object proves to exist after all.
//! - **Truncation and replacement are caught.** A download is counted
//!   against its Content-Length (an early close is an error, never the end
//!   of the body) and resumed with a Range request after a fault; the
//!   resumed request carries `If-Match` with the object's ETag, so the
//!   rest of another object is never spliced on.
//! - **Conditional writes where the provider has them.** `If-Match` and
//!   `If-None-Match: *` make small writes compare-and-swap on AWS, R2,
//!   Tigris, MinIO; a provider that answers 501 Not Implemented gets plain
//!   writes for the rest of the run (rclone's server ignores the headers).
//! - **Listings are data, not trust.** Every listed key must lie below the
//!   store's prefix and be a safe [`Key`].

use super::http::Failure;
use super::retry::{Fault, Retry};
use super::s3_config::S3Config;
use super::s3_request::{Request, Signer, send};
use super::{Condition, Fetched, Kind, ObjectInfo, Requests, Store, check_body};
use crate::digest::{Digest, hex};
use crate::exit::{Conflict, Exit, fail};
use crate::key::Key;
use crate::time::Timestamp;
use anyhow::Context;
use s3::creds::Credentials;
use s3::error::S3Error;
use s3::serde_types::Part;
use s3::{Bucket, Region};
use sha2::Digest as _;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Objects up to this size go up in one PUT (held in memory): an
/// incremental snapshot's delta (a few MiB for a percent of a 2 GB
/// database) then costs one request, not four (issue 11 measured 25 of
/// 60 minute-deltas just above 5 MiB going multipart). As much memory as
/// the two 5 MiB parts in flight plus a third of a multipart upload.
pub const SINGLE_PUT_MAX: u64 = 16 << 20;

/// The smallest part of a multipart upload we use: S3's minimum. Parts
/// are held in memory, so the part size is what bounds an upload's
/// memory: at most three parts are alive.
pub const MIN_PART: u64 = 5 << 20;

/// S3's limit on the number of parts of one upload.
pub const MAX_PARTS: u64 = 10_000;

/// Parts sent at once. Two in flight were 1.12× rclone's upload throughput
/// against one at 0.75× (2 GB, local server); each costs one part of
/// memory.
pub const PARTS_IN_FLIGHT: usize = 2;

/// Keys per listing page (the S3 maximum).
const LIST_PAGE: usize = 1000;

/// The most of a listing page read: 1,000 keys of at most 1,024 bytes,
/// each with its XML around it.
const LISTING_MAX: u64 = 4 << 20;

/// The most of another answer's body read (an upload id, a completion).
const ANSWER_MAX: u64 = 1 << 20;

/// The part size for an upload of `len` bytes: [`MIN_PART`], or larger
/// (in whole MiB) when that would need more than [`MAX_PARTS`] parts.
pub fn part_size(len: u64) -> u64 {
    let needed = len.div_ceil(MAX_PARTS);
    needed.div_ceil(1 << 20).max(MIN_PART >> 20) << 20
}

/// Settings of the requests themselves.
#[derive(Debug, Clone, Copy)]
pub struct Transfer {
    /// Retries and backoff.
    pub retry: Retry,
    /// Limit on one whole request (a part, a manifest, a listing page);
    /// downloads instead fail when no data arrives for 30 s.
    pub request_timeout: Duration,
    /// Requests in flight (and connections open) at most: `--transfers`
    /// + 1 (see [`super::http`]).
    pub connections: usize,
}

impl Default for Transfer {
    fn default() -> Transfer {
        Transfer {
            retry: Retry::default(),
            request_timeout: Duration::from_secs(300),
            connections: super::http::DEFAULT_CONNECTIONS,
        }
    }
}

/// A bucket (and key prefix) in S3-compatible storage.
pub struct S3Store {
    bucket: Box<Bucket>,
    signer: Signer,
    root: Option<Key>,
    display: String,
    transfer: Transfer,
    requests: Requests,
    /// Cleared when the provider answers a conditional write with 501.
    conditions_work: AtomicBool,
    /// The endpoint's host and port, for TLS messages.
    host: String,
    /// The endpoint was given without a scheme (https assumed).
    scheme_assumed: bool,
}

impl S3Store {
    /// Prepares a client for `config`. Makes no request.
    pub fn open(config: &S3Config, transfer: Transfer) -> anyhow::Result<S3Store> {
        s3::set_retries(0);
        let credentials = Credentials::new(
            Some(&config.access_key),
            Some(config.secret_key.expose()),
            None,
            config.session_token.as_ref().map(|t| t.expose()),
            None,
        )
        .map_err(|e| {
            fail(
                Exit::Usage,
                format!("{}: bad credentials: {e}", config.display),
            )
        })?;
        let region = Region::Custom {
            region: config.region.clone(),
            endpoint: config.endpoint.clone(),
        };
        let mut bucket = Bucket::new(&config.bucket, region, credentials)
            .map_err(|e| fail(Exit::Usage, format!("{}: {e}", config.display)))?;
        if config.path_style {
            bucket = bucket.with_path_style();
        }
        bucket.set_request_timeout(Some(transfer.request_timeout));
        // A bad CA bundle is a configuration error now, not a failure of
        // every request later.
        super::http::extra_roots()?;
        super::http::allow_connections(transfer.connections);
        let root = if config.key.is_empty() {
            None
        } else {
            Some(
                Key::parse(&config.key)
                    .map_err(|e| fail(Exit::Usage, format!("{}: {e:#}", config.display)))?,
            )
        };
        Ok(S3Store {
            bucket,
            signer: Signer {
                access_key: config.access_key.clone(),
                secret_key: config.secret_key.clone(),
                session_token: config.session_token.clone(),
            },
            root,
            display: config.display.trim_end_matches('/').to_string(),
            transfer,
            requests: Requests::default(),
            conditions_work: AtomicBool::new(true),
            scheme_assumed: config.scheme_assumed,
            host: url::Url::parse(&config.endpoint)
                .ok()
                .and_then(|u| {
                    u.host_str().map(|h| {
                        format!(
                            "{h}{}",
                            u.port().map(|p| format!(":{p}")).unwrap_or_default()
                        )
                    })
                })
                .unwrap_or_else(|| config.endpoint.clone()),
        })
    }

    /// The full key of `key` under the store's prefix.
    fn full_key(&self, key: &Key) -> String {
        match &self.root {
            Some(root) => root.join(key).to_string(),
            None => key.to_string(),
        }
    }

    /// Runs one request kind with retries, counting every attempt.
    fn retried<T>(
        &self,
        kind: Kind,
        what: &str,
        mut op: impl FnMut() -> Result<T, S3Error>,
    ) -> anyhow::Result<T> {
        self.transfer.retry.run(what, |_| {
            self.requests.count(kind);
            op().map_err(|e| classify(e, &self.host, self.scheme_assumed))
        })
    }

    /// A request with the whole-request timeout set.
    fn timed<'a>(&self, method: &'static str, key: &'a str) -> Request<'a> {
        let mut request = Request::new(method, key);
        request.timeout = Some(self.transfer.request_timeout);
        request
    }

    /// One PUT of an object held in memory, under `condition`.
    fn put_small(
        &self,
        key: &Key,
        body: &[u8],
        condition: &Condition,
    ) -> anyhow::Result<Option<String>> {
        let full = self.full_key(key);
        let content_type = if key.name().ends_with(".json") {
            "application/json"
        } else {
            "application/octet-stream"
        };
        let what = format!("uploading {}", self.url(key));
        let mut conditional = self.conditions_work.load(Ordering::Relaxed);
        loop {
            let result = self.retried(Kind::Put, &what, || {
                let mut request = self.timed("PUT", &full);
                request.body = body;
                request
                    .headers
                    .push(("content-type", content_type.to_string()));
                if conditional {
                    match condition {
                        Condition::Any => {}
                        Condition::Absent => request.headers.push(("if-none-match", "*".into())),
                        Condition::Matches(tag) => request.headers.push(("if-match", tag.clone())),
                    }
                }
                send(&self.bucket, &self.signer, &request).map(|r| r.header("etag"))
            });
            match result {
                Err(e) if conditional && is_unsupported(&e) => {
                    // The provider cannot check conditions: the caller's
                    // read just before is the check we have.
                    self.conditions_work.store(false, Ordering::Relaxed);
                    conditional = false;
                }
                other => return other,
            }
        }
    }

    /// A multipart upload from `body`, completed only if the bytes read
    /// match `len` and `sha256`; aborted on any failure.
    fn put_multipart(
        &self,
        key: &Key,
        body: &mut dyn Read,
        len: u64,
        sha256: Option<&str>,
    ) -> anyhow::Result<Digest> {
        let full = self.full_key(key);
        let url = self.url(key);
        let content_type = "application/octet-stream";
        let id = self.retried(
            Kind::Multipart,
            &format!("starting upload of {url}"),
            || {
                let mut request = self.timed("POST", &full);
                request.query.push(("uploads", String::new()));
                request
                    .headers
                    .push(("content-type", content_type.to_string()));
                let body = send(&self.bucket, &self.signer, &request)?
                    .text(ANSWER_MAX)
                    .map_err(S3Error::Io)?;
                xml_field(&body, "UploadId").ok_or_else(|| {
                    S3Error::HttpFailWithBody(200, "an answer without UploadId".into())
                })
            },
        )?;
        let result = self
            .send_parts(&full, &id, &url, body, part_size(len) as usize)
            .and_then(|(parts, digest)| {
                check_body(&digest, len, sha256)?;
                self.complete(&full, &id, &url, &parts, len)?;
                Ok(digest)
            });
        if result.is_err() {
            // Best effort: an abandoned upload costs storage on some
            // providers until a lifecycle rule removes it.
            self.requests.count(Kind::Multipart);
            let mut request = self.timed("DELETE", &full);
            request.query.push(("uploadId", id.clone()));
            let _ = send(&self.bucket, &self.signer, &request);
        }
        result
    }

    /// Completes a multipart upload. When the answer is lost or cannot be
    /// read (the request may have succeeded), the object is looked up
    /// before the upload is given up: a completed object must not be
    /// aborted and reported as failed while it stays.
    fn complete(
        &self,
        full: &str,
        id: &str,
        url: &str,
        parts: &[Part],
        len: u64,
    ) -> anyhow::Result<()> {
        let mut xml = String::from("<CompleteMultipartUpload>");
        for part in parts {
            xml.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
                part.part_number,
                escape_xml(&part.etag)
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let what = format!("completing upload of {url}");
        let result = self.retried(Kind::Multipart, &what, || {
            let mut request = self.timed("POST", full);
            request.query.push(("uploadId", id.to_string()));
            request.body = xml.as_bytes();
            let response = send(&self.bucket, &self.signer, &request)?;
            // S3 may answer 200 and still report an error in the body.
            let text = response.text(ANSWER_MAX).map_err(S3Error::Io)?;
            if text.contains("<Error>") {
                return Err(S3Error::HttpFailWithBody(500, text));
            }
            if !text.contains("CompleteMultipartUploadResult") {
                return Err(S3Error::HttpFailWithBody(
                    200,
                    "<Code>UnreadableAnswer</Code><Message>the completion's answer could not be read</Message>".into(),
                ));
            }
            Ok(())
        });
        let err = match result {
            Ok(()) => return Ok(()),
            Err(err) => err,
        };
        // The completion may have happened even though its answer was
        // lost or unreadable (a retry then finds no such upload): the
        // object itself decides, never the answer.
        match self.head(full) {
            Ok(Some((size, etag))) if size == len && etag_is_of(etag.as_deref(), parts) => Ok(()),
            _ => Err(err),
        }
    }

    /// The size and ETag of the object at `full`, or None when it is not
    /// there.
    fn head(&self, full: &str) -> anyhow::Result<Option<(u64, Option<String>)>> {
        let result = self.retried(Kind::Head, &format!("looking up {full}"), || {
            let request = self.timed("HEAD", full);
            let response = send(&self.bucket, &self.signer, &request)?;
            let size = response
                .header("content-length")
                .and_then(|v| v.parse::<u64>().ok());
            Ok(size.map(|s| (s, response.header("etag"))))
        });
        match result {
            Ok(found) => Ok(found),
            Err(e) if crate::exit::is_missing(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads and hashes parts on this thread while [`PARTS_IN_FLIGHT`]
    /// others send them. Each part is handed over at a rendezvous and sent
    /// from its own buffer, so at most `PARTS_IN_FLIGHT + 1` parts are in
    /// memory, whatever the file's size. The first failure stops reading
    /// and sending at once.
    fn send_parts(
        &self,
        full: &str,
        id: &str,
        url: &str,
        body: &mut dyn Read,
        size: usize,
    ) -> anyhow::Result<(Vec<Part>, Digest)> {
        let (to_senders, parts_in) = std::sync::mpsc::sync_channel::<(u32, Vec<u8>)>(0);
        // A sender that fails drops the receiving end, so a reader blocked
        // handing over the next part wakes with an error instead of
        // waiting forever for senders that have stopped.
        let parts_in = std::sync::Mutex::new(Some(parts_in));
        let (give_back, spare) = std::sync::mpsc::channel::<Vec<u8>>();
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let senders: Vec<_> = (0..PARTS_IN_FLIGHT)
                .map(|_| {
                    let (parts_in, give_back, stop) = (&parts_in, give_back.clone(), &stop);
                    scope.spawn(move || -> anyhow::Result<Vec<Part>> {
                        let mut parts = Vec::new();
                        while !stop.load(Ordering::Relaxed) {
                            let next = match parts_in
                                .lock()
                                .map_err(|_| anyhow::anyhow!("upload queue poisoned"))?
                                .as_ref()
                            {
                                Some(receiver) => receiver.recv(),
                                None => break,
                            };
                            let Ok((number, chunk)) = next else { break };
                            let sent = self.retried(
                                Kind::Part,
                                &format!("uploading part {number} of {url}"),
                                || self.upload_part(full, id, number, &chunk),
                            );
                            match sent {
                                Ok(part) => parts.push(part),
                                Err(e) => {
                                    stop.store(true, Ordering::Relaxed);
                                    if let Ok(mut receiver) = parts_in.lock() {
                                        receiver.take();
                                    }
                                    return Err(e);
                                }
                            }
                            let _ = give_back.send(chunk);
                        }
                        Ok(parts)
                    })
                })
                .collect();
            drop(give_back);
            let mut hasher = sha2::Sha256::new();
            let mut total = 0u64;
            let read = (|| -> anyhow::Result<()> {
                for number in 1u32.. {
                    if stop.load(Ordering::Relaxed) {
                        break; // a sender failed; its error is reported below
                    }
                    let mut chunk = spare.try_recv().unwrap_or_default();
                    chunk.resize(size, 0);
                    let filled = crate::compress::read_up_to(body, &mut chunk)?;
                    if filled == 0 && number > 1 {
                        break;
                    }
                    chunk.truncate(filled);
                    hasher.update(&chunk);
                    total += filled as u64;
                    if to_senders.send((number, chunk)).is_err() {
                        break; // every sender stopped; their errors are reported below
                    }
                    if filled < size {
                        break;
                    }
                }
                Ok(())
            })();
            if read.is_err() {
                stop.store(true, Ordering::Relaxed);
            }
            drop(to_senders);
            let mut parts = Vec::new();
            let mut first_error = None;
            for sender in senders {
                match sender
                    .join()
                    .map_err(|_| anyhow::anyhow!("upload thread panicked"))
                    .and_then(|r| r)
                {
                    Ok(sent) => parts.extend(sent),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = first_error {
                return Err(e);
            }
            read?;
            parts.sort_by_key(|p| p.part_number);
            Ok((
                parts,
                Digest {
                    sha256: hex(&hasher.finalize()),
                    bytes: total,
                },
            ))
        })
    }

    /// One UploadPart request, sent from the caller's buffer.
    fn upload_part(&self, full: &str, id: &str, number: u32, data: &[u8]) -> Result<Part, S3Error> {
        let mut request = self.timed("PUT", full);
        request.query.push(("partNumber", number.to_string()));
        request.query.push(("uploadId", id.to_string()));
        request.body = data;
        let response = send(&self.bucket, &self.signer, &request)?;
        let etag = response.header("etag").ok_or_else(|| {
            S3Error::HttpFailWithBody(
                response.status(),
                "<Code>NoETag</Code><Message>part uploaded without an ETag</Message>".into(),
            )
        })?;
        Ok(Part {
            etag,
            part_number: number,
        })
    }
}

impl Store for S3Store {
    fn url(&self, key: &Key) -> String {
        format!("{}/{key}", self.display)
    }

    fn root_url(&self) -> String {
        self.display.clone()
    }

    fn put(
        &self,
        key: &Key,
        body: &mut dyn Read,
        len: u64,
        sha256: Option<&str>,
    ) -> anyhow::Result<Digest> {
        if len > SINGLE_PUT_MAX {
            return self.put_multipart(key, body, len, sha256);
        }
        let mut buf = Vec::with_capacity(len as usize);
        body.take(len + 1)
            .read_to_end(&mut buf)
            .context("reading upload")?;
        let digest = Digest {
            sha256: hex(&sha2::Sha256::digest(&buf)),
            bytes: buf.len() as u64,
        };
        check_body(&digest, len, sha256)?;
        self.put_small(key, &buf, &Condition::Any)?;
        Ok(digest)
    }

    fn put_if(
        &self,
        key: &Key,
        bytes: &[u8],
        condition: &Condition,
    ) -> anyhow::Result<Option<String>> {
        self.put_small(key, bytes, condition).map_err(|e| {
            if is_precondition_failed(&e) {
                anyhow::Error::new(Conflict(self.url(key)))
            } else {
                e
            }
        })
    }

    fn get(&self, key: &Key, sink: &mut dyn Write) -> anyhow::Result<u64> {
        let full = self.full_key(key);
        let mut sink = Tracked {
            inner: sink,
            failed: false,
            bytes: 0,
        };
        let mut total: Option<u64> = None;
        let mut etag: Option<String> = None;
        self.transfer
            .retry
            .run(&format!("downloading {}", self.url(key)), |_| {
                self.requests.count(Kind::Get);
                // After a fault mid-body, ask only for the rest, and only
                // of the same object.
                let start = sink.bytes;
                let mut request = Request::new("GET", &full);
                if start > 0 {
                    request.headers.push(("range", format!("bytes={start}-")));
                    if let Some(tag) = &etag {
                        request.headers.push(("if-match", tag.clone()));
                    }
                }
                let mut response = match send(&self.bucket, &self.signer, &request) {
                    Ok(response) => response,
                    Err(e) => {
                        let fault = classify(e, &self.host, self.scheme_assumed);
                        if start > 0 && is_precondition_failed(&fault.error) {
                            return Err(Fault::fatal(fail(
                                Exit::Failed,
                                "the object was replaced while it was downloaded; nothing was restored",
                            )));
                        }
                        return Err(fault);
                    }
                };
                if start == 0 {
                    etag = response.header("etag");
                }
                // A resumed body must start where the last one stopped: AWS
                // answers 206, rclone's server 200 with a Content-Range; a
                // server that ignored the Range would send the whole object.
                let resumed = start == 0
                    || response.status() == 206
                    || response
                        .header("content-range")
                        .is_some_and(|v| v.starts_with(&format!("bytes {start}-")));
                if !resumed {
                    return Err(Fault::fatal(fail(
                        Exit::Unavailable,
                        "the server ignored a Range request, so the download cannot resume",
                    )));
                }
                let length = response
                    .header("content-length")
                    .and_then(|v| v.parse::<u64>().ok());
                if total.is_none() {
                    total = length.map(|l| l + start);
                }
                if let Err(e) = std::io::copy(&mut response, &mut sink) {
                    let error = anyhow::Error::new(e);
                    return Err(if sink.failed {
                        Fault::fatal(error)
                    } else {
                        Fault::transient(error.context("connection failed mid-body"))
                    });
                }
                match total {
                    Some(t) if sink.bytes < t => Err(Fault::transient(anyhow::anyhow!(
                        "connection closed after {} of {t} bytes",
                        sink.bytes
                    ))),
                    _ => Ok(sink.bytes),
                }
            })
    }

    fn fetch(&self, key: &Key, max_bytes: u64) -> anyhow::Result<Fetched> {
        let full = self.full_key(key);
        let url = self.url(key);
        self.retried(Kind::Get, &format!("downloading {url}"), || {
            let request = self.timed("GET", &full);
            let response = send(&self.bucket, &self.signer, &request)?;
            let tag = response.header("etag");
            let mut bytes = Vec::new();
            response
                .take(max_bytes + 1)
                .read_to_end(&mut bytes)
                .map_err(S3Error::Io)?;
            Ok(Fetched { bytes, tag })
        })
        .and_then(|fetched| {
            if fetched.bytes.len() as u64 > max_bytes {
                return Err(fail(
                    Exit::Failed,
                    format!("{url} is larger than {max_bytes} bytes"),
                ));
            }
            Ok(fetched)
        })
    }

    fn list(&self, under: Option<&Key>) -> anyhow::Result<Vec<ObjectInfo>> {
        let (prefix, what) = match under {
            Some(key) => (format!("{}/", self.full_key(key)), self.url(key)),
            None => (
                self.root
                    .as_ref()
                    .map(|r| format!("{r}/"))
                    .unwrap_or_default(),
                self.display.clone(),
            ),
        };
        let root_prefix = self
            .root
            .as_ref()
            .map(|r| format!("{r}/"))
            .unwrap_or_default();
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self.retried(Kind::List, &format!("listing {what}"), || {
                let mut request = self.timed("GET", "");
                request.query.push(("list-type", "2".into()));
                request.query.push(("max-keys", LIST_PAGE.to_string()));
                request.query.push(("prefix", prefix.clone()));
                if let Some(token) = &token {
                    request.query.push(("continuation-token", token.clone()));
                }
                let body = send(&self.bucket, &self.signer, &request)?
                    .text(LISTING_MAX)
                    .map_err(S3Error::Io)?;
                quick_xml::de::from_str::<s3::serde_types::ListBucketResult>(&body).map_err(|e| {
                    S3Error::HttpFailWithBody(200, format!("an unreadable listing ({e})"))
                })
            })?;
            for object in page.contents {
                // A listing is data from the server: a key outside the
                // prefix asked for, or not a safe key, fails the listing.
                let rel = object
                    .key
                    .strip_prefix(&prefix)
                    .and_then(|_| object.key.strip_prefix(&root_prefix))
                    .ok_or_else(|| {
                        fail(
                            Exit::Failed,
                            format!(
                                "listing {what}: the server returned {:?}, which is not below it",
                                object.key
                            ),
                        )
                    })?;
                let key = Key::parse(rel).with_context(|| format!("listing {what}"))?;
                found.push(ObjectInfo {
                    key,
                    bytes: object.size,
                    modified: Timestamp::parse_rfc3339(&object.last_modified).ok(),
                });
            }
            match page.next_continuation_token {
                Some(next) if page.is_truncated => token = Some(next),
                _ => break,
            }
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    fn delete(&self, key: &Key) -> anyhow::Result<()> {
        let full = self.full_key(key);
        self.retried(Kind::Delete, &format!("deleting {}", self.url(key)), || {
            send(&self.bucket, &self.signer, &self.timed("DELETE", &full)).map(|_| ())
        })
    }

    fn requests(&self) -> &Requests {
        &self.requests
    }
}

/// A sink that remembers whether it was the sink itself that failed (a
/// full disk, a damaged snapshot): those errors are final, while a failing
/// connection is retried.
/// It also counts what it accepted, so a retry resumes where data stopped.
struct Tracked<'a> {
    inner: &'a mut dyn Write,
    failed: bool,
    bytes: u64,
}

impl Write for Tracked<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let result = self.inner.write(buf);
        match &result {
            Ok(n) => self.bytes += *n as u64,
            Err(_) => self.failed = true,
        }
        result
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let result = self.inner.flush();
        self.failed |= result.is_err();
        result
    }
}

/// An answer callers must recognise by status and code: a condition that
/// did not hold, or a header the provider does not implement. Displays
/// as the rest of the errors do.
#[derive(Debug)]
struct Answer {
    status: u16,
    code: String,
    detail: String,
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for Answer {}

/// The S3 answer in an error's chain, if any.
fn answer_of(err: &anyhow::Error) -> Option<&Answer> {
    err.chain().find_map(|c| c.downcast_ref::<Answer>())
}

/// True when a conditional request's condition did not hold.
fn is_precondition_failed(err: &anyhow::Error) -> bool {
    answer_of(err).is_some_and(|a| {
        a.status == 412 || (a.status == 409 && a.code == "ConditionalRequestConflict")
    })
}

/// True when the provider does not implement a header we sent.
fn is_unsupported(err: &anyhow::Error) -> bool {
    answer_of(err).is_some_and(|a| a.status == 501 || a.code == "NotImplemented")
}

/// Turns a rust-s3 error into a fault: which are worth retrying, and a
/// message and exit code for the rest. Only the S3 error code and message
/// of a response are kept, never the whole body (AWS echoes the string it
/// signed in some of them).
fn classify(error: S3Error, host: &str, scheme_assumed: bool) -> Fault {
    match error {
        S3Error::HttpFailWithBody(status, body) => {
            let code = xml_field(&body, "Code").unwrap_or_default();
            let message = xml_field(&body, "Message").unwrap_or_default();
            let detail = match (code.is_empty(), message.is_empty()) {
                (true, _) => format!("HTTP {status}"),
                (false, true) => format!("HTTP {status} {code}"),
                (false, false) => format!("HTTP {status} {code}: {message}"),
            };
            if matches!(status, 409 | 412 | 501) || code == "NotImplemented" {
                return Fault::fatal(anyhow::Error::new(Answer {
                    status,
                    code,
                    detail,
                }));
            }
            match status {
                408 | 429 | 500 | 502 | 503 | 504 => Fault::transient(anyhow::anyhow!(detail)),
                401 | 403 => Fault::fatal(fail(
                    Exit::Usage,
                    format!("access denied ({detail}): check the access key, secret and region"),
                )),
                404 if code == "NoSuchBucket" => {
                    Fault::fatal(anyhow::Error::new(super::NoSuchBucket(detail)))
                }
                404 => Fault::fatal(fail(Exit::NotFound, format!("not found ({detail})"))),
                301 | 307 | 400 => Fault::fatal(fail(
                    Exit::Usage,
                    format!("request refused ({detail}): check the endpoint and region"),
                )),
                _ => Fault::fatal(fail(Exit::Failed, detail)),
            }
        }
        S3Error::Io(error) => match error.get_ref().and_then(|e| e.downcast_ref::<Failure>()) {
            // rustls refused the certificate: configuration, never worth
            // a retry.
            Some(Failure::Tls {
                certificate: true,
                text,
            }) => {
                let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
                Fault::fatal(fail(
                    Exit::Usage,
                    format!(
                        "TLS: the certificate {host} presented was refused for the name {name} ({text}); if it is signed by a private CA, set AWS_CA_BUNDLE (or SSL_CERT_FILE) to that CA's PEM file"
                    ),
                ))
            }
            Some(Failure::Tls {
                certificate: false,
                text,
            }) => Fault::fatal(fail(
                Exit::Usage,
                format!(
                    "TLS: the handshake with {host} failed ({text}){}",
                    if scheme_assumed {
                        "; the endpoint has no scheme, so https is assumed: write http:// for a plain-HTTP server"
                    } else {
                        ""
                    }
                ),
            )),
            Some(Failure::Endpoint(text)) => {
                Fault::fatal(fail(Exit::Usage, format!("cannot reach storage: {text}")))
            }
            Some(Failure::Network(e)) => Fault::transient(anyhow::anyhow!("network error: {e}")),
            None => Fault::transient(anyhow::Error::new(error).context("network error")),
        },
        other => Fault::fatal(fail(Exit::Failed, format!("storage error: {other}"))),
    }
}

/// The text of `<name>…</name>` in an S3 error body.
fn xml_field(body: &str, name: &str) -> Option<String> {
    let start = body.find(&format!("<{name}>"))? + name.len() + 2;
    let end = body[start..].find(&format!("</{name}>"))? + start;
    Some(body[start..end].trim().to_string())
}

/// True when an object's ETag is that of a multipart upload of `parts`
/// (the MD5 of the parts' MD5s, a dash, the count), or when the server
/// uses another scheme we cannot check (then size alone decided).
fn etag_is_of(etag: Option<&str>, parts: &[Part]) -> bool {
    let Some(etag) = etag.map(|e| e.trim_matches('"')) else {
        return true;
    };
    let Some((_, count)) = etag.split_once('-') else {
        return true;
    };
    let mut md5s = Vec::with_capacity(parts.len() * 16);
    for part in parts {
        let hex = part.etag.trim_matches('"');
        if hex.len() != 32 {
            return true;
        }
        for i in (0..32).step_by(2) {
            match u8::from_str_radix(&hex[i..i + 2], 16) {
                Ok(b) => md5s.push(b),
                Err(_) => return true,
            }
        }
    }
    let expected = format!(
        "{}-{}",
        crate::digest::hex(&md5::compute(&md5s).0),
        parts.len()
    );
    count == parts.len().to_string() && etag == expected
}

/// Escapes text for an XML element.
fn escape_xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_sizes_respect_the_part_limit() {
        assert_eq!(part_size(100 << 20), 5 << 20);
        assert_eq!(part_size(2 << 30), 5 << 20);
        let huge = 500u64 << 30; // 500 GiB
        let size = part_size(huge);
        assert!(huge.div_ceil(size) <= MAX_PARTS, "{size}");
        assert_eq!(size % (1 << 20), 0);
    }

    #[test]
    fn errors_are_classified() {
        let denied = classify(S3Error::HttpFailWithBody(
            403,
            "<Error><Code>SignatureDoesNotMatch</Code><Message>bad sig</Message><StringToSign>x</StringToSign></Error>".into(),
        ), "storage.example", false);
        assert!(!denied.transient);
        assert_eq!(crate::exit::exit_of(&denied.error), Exit::Usage);
        assert!(!format!("{:#}", denied.error).contains("StringToSign"));
        let missing = classify(
            S3Error::HttpFailWithBody(404, "<Code>NoSuchBucket</Code>".into()),
            "storage.example",
            false,
        );
        assert_eq!(crate::exit::exit_of(&missing.error), Exit::NotFound);
        assert!(
            classify(
                S3Error::HttpFailWithBody(503, "<Code>SlowDown</Code>".into()),
                "storage.example",
                false
            )
            .transient
        );
        let lost = classify(
            S3Error::HttpFailWithBody(412, "<Code>PreconditionFailed</Code>".into()),
            "storage.example",
            false,
        );
        assert!(!lost.transient && is_precondition_failed(&lost.error));
        let unsupported = classify(
            S3Error::HttpFailWithBody(501, "<Code>NotImplemented</Code>".into()),
            "storage.example",
            false,
        );
        assert!(is_unsupported(&unsupported.error));
    }
}
