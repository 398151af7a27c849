//! S3 requests we sign and send ourselves, with rust-s3's SigV4 functions.
//!
//! rust-s3 builds most requests well, but not these:
//! - **UploadPart without a copy.** rust-s3's `put_multipart_chunk` copies
//!   every part to sign and send it, and computes an MD5 besides: with two
//!   parts in flight that measured 30.7 MiB peak RSS for a 2 GB upload
//!   against 20.6 MiB here.
//! - **Conditional requests.** `If-Match` / `If-None-Match` on a PUT
//!   (`latest.json` only moves forward; two `blob-sync` runs cannot lose
//!   each other's entries) and `If-Match` on a resumed GET (an object
//!   replaced mid-download is never spliced), which rust-s3 cannot add to
//!   one request.
//! - **A completion whose answer we read ourselves**, so an answer we
//!   cannot parse is checked against the object instead of taken for a
//!   failure.
//!
//! Every request signs its payload's SHA-256 (never UNSIGNED-PAYLOAD,
//! never aws-chunked, which B2, R2 and others reject).

use super::http::{Failure, Response};
use super::s3_config::Secret;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, HOST, HeaderMap, HeaderName, HeaderValue};
use s3::Bucket;
use s3::error::S3Error;
use s3::signing;
use sha2::Digest as _;
use std::time::Duration;

/// The most of an error answer's body read: the S3 code and message are
/// in its first lines.
const ERROR_BODY_MAX: u64 = 64 << 10;

/// What signs requests: the access key, secret and session token.
#[derive(Debug, Clone)]
pub struct Signer {
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: Secret,
    /// Session token of temporary credentials.
    pub session_token: Option<Secret>,
}

/// One request to send.
pub struct Request<'a> {
    /// HTTP method: GET, PUT, HEAD, POST, DELETE.
    pub method: &'static str,
    /// The object's full key in the bucket.
    pub key: &'a str,
    /// Query parameters, unencoded.
    pub query: Vec<(&'static str, String)>,
    /// Extra headers (signed with the rest).
    pub headers: Vec<(&'static str, String)>,
    /// The body (empty for GET and HEAD).
    pub body: &'a [u8],
    /// Limit on the whole request; None leaves only the 30 s limit on
    /// each read, for downloads of any length.
    pub timeout: Option<Duration>,
}

impl<'a> Request<'a> {
    /// A request without query, headers or body.
    pub fn new(method: &'static str, key: &'a str) -> Request<'a> {
        Request {
            method,
            key,
            query: Vec::new(),
            headers: Vec::new(),
            body: &[],
            timeout: None,
        }
    }
}

/// Signs `request` and sends it over the run's pool. A non-2xx answer
/// becomes `S3Error::HttpFailWithBody` with the start of its body read, so
/// errors classify the same way as rust-s3's own; a request that got no
/// answer is `S3Error::Io` carrying a [`Failure`].
pub fn send(bucket: &Bucket, signer: &Signer, request: &Request<'_>) -> Result<Response, S3Error> {
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("zero nanoseconds is valid");
    let mut url = url::Url::parse(&format!(
        "{}/{}",
        bucket.url(),
        signing::uri_encode(request.key.trim_start_matches('/'), false),
    ))?;
    if !request.query.is_empty() {
        let query: Vec<String> = request
            .query
            .iter()
            .map(|(k, v)| {
                if v.is_empty() {
                    (*k).to_string()
                } else {
                    format!("{k}={}", signing::uri_encode(v, true))
                }
            })
            .collect();
        url.set_query(Some(&query.join("&")));
    }
    let payload_sha256 = crate::digest::hex(&sha2::Sha256::digest(request.body));
    let host = bucket.host();
    let authority = host.split('/').next().unwrap_or(&host);
    let stamp = crate::time::Timestamp::from_unix(now.unix_timestamp()).stamp();

    let mut headers = HeaderMap::new();
    headers.insert(HOST, HeaderValue::from_str(authority)?);
    if request.method != "GET" && request.method != "HEAD" {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(request.body.len()));
    }
    headers.insert(
        HeaderName::from_static("x-amz-content-sha256"),
        HeaderValue::from_str(&payload_sha256)?,
    );
    headers.insert(
        HeaderName::from_static("x-amz-date"),
        HeaderValue::from_str(&stamp)?,
    );
    if let Some(token) = &signer.session_token {
        headers.insert(
            HeaderName::from_static("x-amz-security-token"),
            HeaderValue::from_str(token.expose())?,
        );
    }
    for (name, value) in &request.headers {
        headers.insert(HeaderName::from_static(name), HeaderValue::from_str(value)?);
    }
    let region = bucket.region();
    let canonical = signing::canonical_request(request.method, &url, &headers, &payload_sha256)?;
    let to_sign = signing::string_to_sign(&now, &region, &canonical)?;
    let key_bytes = signing::signing_key(&now, signer.secret_key.expose(), &region, "s3")?;
    let mut mac = <signing::HmacSha256 as hmac::Mac>::new_from_slice(&key_bytes)?;
    hmac::Mac::update(&mut mac, to_sign.as_bytes());
    let signature = crate::digest::hex(&hmac::Mac::finalize(mac).into_bytes());
    let authorization = signing::authorization_header(
        &signer.access_key,
        &now,
        &region,
        &signing::signed_header_string(&headers),
        &signature,
    )?;
    headers.insert(AUTHORIZATION, HeaderValue::from_str(&authorization)?);

    let headers: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_string())))
        .collect();
    let response = super::http::send(
        request.method,
        &url,
        &headers,
        request.body,
        request.timeout,
    )
    .map_err(|failure| {
        let kind = match failure {
            Failure::Network(_) => std::io::ErrorKind::Other,
            _ => std::io::ErrorKind::InvalidInput,
        };
        S3Error::Io(std::io::Error::new(kind, failure))
    })?;
    let status = response.status();
    if !(200..300).contains(&status) {
        let body = response.text(ERROR_BODY_MAX).unwrap_or_default();
        return Err(S3Error::HttpFailWithBody(status, body));
    }
    Ok(response)
}
