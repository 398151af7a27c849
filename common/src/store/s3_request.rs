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

use super::s3_config::Secret;
use attohttpc::header::{AUTHORIZATION, CONTENT_LENGTH, HOST, HeaderMap, HeaderName, HeaderValue};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use s3::Bucket;
use s3::error::S3Error;
use s3::signing;
use sha2::Digest as _;
use std::time::Duration;

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
    /// HTTP method: GET, PUT, HEAD, POST.
    pub method: attohttpc::Method,
    /// The object's full key in the bucket.
    pub key: &'a str,
    /// Query parameters, unencoded.
    pub query: Vec<(&'static str, String)>,
    /// Extra headers (signed with the rest).
    pub headers: Vec<(&'static str, String)>,
    /// The body (empty for GET and HEAD).
    pub body: &'a [u8],
    /// Limit on the whole request; None leaves only attohttpc's 30 s limit
    /// on each read, for downloads of any length.
    pub timeout: Option<Duration>,
}

impl<'a> Request<'a> {
    /// A request without query, headers or body.
    pub fn new(method: attohttpc::Method, key: &'a str) -> Request<'a> {
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

/// Signs and sends `request`. A non-2xx answer becomes
/// `S3Error::HttpFailWithBody` with the body read, so errors classify the
/// same way as rust-s3's own.
pub fn send(
    bucket: &Bucket,
    signer: &Signer,
    request: &Request<'_>,
) -> Result<attohttpc::Response, S3Error> {
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
    if request.method != attohttpc::Method::GET && request.method != attohttpc::Method::HEAD {
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
    let canonical =
        signing::canonical_request(request.method.as_str(), &url, &headers, &payload_sha256)?;
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

    let mut builder = attohttpc::RequestBuilder::new(request.method.clone(), url.as_str());
    if let Ok(roots) = extra_roots() {
        for cert in roots {
            builder = builder.add_root_certificate(cert.clone());
        }
    }
    if let Some(timeout) = request.timeout {
        builder = builder.timeout(timeout);
    }
    for (name, value) in &headers {
        builder = builder.header(name, value.clone());
    }
    let response = builder.bytes(request.body).send()?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().unwrap_or_default();
        return Err(S3Error::HttpFailWithBody(status.as_u16(), body));
    }
    Ok(response)
}

/// Trust roots added to the built-in ones, from the PEM files that
/// `AWS_CA_BUNDLE` (the AWS CLI's variable) and `SSL_CERT_FILE` (OpenSSL's)
/// name: a self-hosted MinIO or Garage behind a private CA. Read once.
pub fn extra_roots() -> anyhow::Result<&'static [CertificateDer<'static>]> {
    static ROOTS: std::sync::OnceLock<Result<Vec<CertificateDer<'static>>, String>> =
        std::sync::OnceLock::new();
    let roots = ROOTS.get_or_init(|| {
        let mut roots = Vec::new();
        for var in ["AWS_CA_BUNDLE", "SSL_CERT_FILE"] {
            let Some(path) = std::env::var_os(var).filter(|v| !v.is_empty()) else {
                continue;
            };
            let shown = std::path::Path::new(&path).display().to_string();
            let pem = std::fs::read(&path).map_err(|e| format!("{var}={shown}: {e}"))?;
            let before = roots.len();
            for cert in CertificateDer::pem_slice_iter(&pem) {
                roots.push(cert.map_err(|e| format!("{var}={shown}: not a PEM file ({e:?})"))?);
            }
            if roots.len() == before {
                return Err(format!("{var}={shown}: holds no PEM certificate"));
            }
        }
        Ok(roots)
    });
    roots
        .as_deref()
        .map_err(|e| crate::exit::fail(crate::exit::Exit::Usage, e.clone()))
}

/// A response header as text.
pub fn header(response: &attohttpc::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}
