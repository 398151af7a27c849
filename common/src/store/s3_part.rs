//! One UploadPart request, signed and sent without copying the part.
//!
//! rust-s3's `put_multipart_chunk` copies every part into a new buffer to
//! sign and send it, and computes an MD5 of it besides. With parts in
//! flight that doubles an upload's memory: two parts at once measured
//! 30.7 MiB peak RSS for a 2 GB upload, against 20.6 MiB for one part at
//! a time (which only reached 0.75× rclone's throughput). This request is
//! signed exactly as rust-s3 signs its own, with rust-s3's SigV4 functions,
//! and sends the caller's buffer as it is: the payload's SHA-256 is signed
//! (never UNSIGNED-PAYLOAD, never aws-chunked), and no MD5 is computed.

use super::s3_config::Secret;
use s3::Bucket;
use s3::error::S3Error;
use s3::serde_types::Part;
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

/// Uploads part `number` of upload `upload_id` of the object at `key`.
pub fn upload_part(
    bucket: &Bucket,
    signer: &Signer,
    key: &str,
    number: u32,
    upload_id: &str,
    data: &[u8],
    timeout: Duration,
) -> Result<Part, S3Error> {
    use attohttpc::header::{
        AUTHORIZATION, CONTENT_LENGTH, ETAG, HOST, HeaderMap, HeaderName, HeaderValue,
    };
    use hmac::Mac;

    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("zero nanoseconds is valid");
    let url = url::Url::parse(&format!(
        "{}/{}?partNumber={number}&uploadId={}",
        bucket.url(),
        signing::uri_encode(key.trim_start_matches('/'), false),
        signing::uri_encode(upload_id, true),
    ))?;
    let payload_sha256 = crate::digest::hex(&sha2::Sha256::digest(data));
    let host = bucket.host();
    let authority = host.split('/').next().unwrap_or(&host);
    let stamp = crate::time::Timestamp::from_unix(now.unix_timestamp()).stamp();

    let mut headers = HeaderMap::new();
    headers.insert(HOST, HeaderValue::from_str(authority)?);
    headers.insert(CONTENT_LENGTH, HeaderValue::from(data.len()));
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
    let region = bucket.region();
    let canonical = signing::canonical_request("PUT", &url, &headers, &payload_sha256)?;
    let to_sign = signing::string_to_sign(&now, &region, &canonical)?;
    let key_bytes = signing::signing_key(&now, signer.secret_key.expose(), &region, "s3")?;
    let mut mac = signing::HmacSha256::new_from_slice(&key_bytes)?;
    mac.update(to_sign.as_bytes());
    let signature = crate::digest::hex(&mac.finalize().into_bytes());
    let authorization = signing::authorization_header(
        &signer.access_key,
        &now,
        &region,
        &signing::signed_header_string(&headers),
        &signature,
    )?;
    headers.insert(AUTHORIZATION, HeaderValue::from_str(&authorization)?);

    let mut request = attohttpc::put(url.as_str()).timeout(timeout);
    for (name, value) in &headers {
        request = request.header(name, value.clone());
    }
    let response = request.bytes(data).send()?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().unwrap_or_default();
        return Err(S3Error::HttpFailWithBody(status.as_u16(), body));
    }
    let etag = response
        .headers()
        .get(ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| {
            S3Error::HttpFailWithBody(
                status.as_u16(),
                "<Code>NoETag</Code><Message>part uploaded without an ETag</Message>".into(),
            )
        })?;
    Ok(Part {
        etag,
        part_number: number,
    })
}
