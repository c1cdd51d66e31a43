//! Signing requests, for podid's own clients and tests.

use podid_types::{Secret, Timestamp};

use crate::HttpRequest;
use crate::canonical::{self, ALGORITHM};
use crate::verify::amz_date;

/// Credentials to sign with.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret<String>,
    /// The session token of temporary credentials.
    pub session_token: Option<Secret<String>>,
}

/// A JSON request to sign for [`sign_json`]: what rest-json clients (EKS, EKS Auth) send.
#[derive(Clone, Copy, Debug)]
pub struct JsonRequest<'a> {
    /// The service's URL, `http://host:port` (the `host` header is taken from it).
    pub endpoint: &'a str,
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The path, from `/`.
    pub path: &'a str,
    /// The query string, without `?`.
    pub query: &'a str,
    /// The JSON body (empty for none).
    pub body: &'a str,
}

/// The headers that sign `request` for `service` in `region`: [`sign`]'s, with `host` taken
/// from the endpoint and `content-type: application/json` (the caller sends that header too).
pub fn sign_json(
    request: &JsonRequest<'_>,
    credentials: &Credentials,
    region: &str,
    service: &str,
    now: Timestamp,
) -> Vec<(String, String)> {
    let endpoint = request.endpoint;
    let host = endpoint
        .split("://")
        .nth(1)
        .unwrap_or(endpoint)
        .split('/')
        .next()
        .unwrap_or_default();
    let headers = [("host", host), ("content-type", "application/json")];
    let http = HttpRequest {
        method: request.method,
        path: request.path,
        query: request.query,
        headers: &headers,
        body: request.body.as_bytes(),
    };
    sign(&http, credentials, region, service, now)
}

/// The headers to add to `request` to sign it: `x-amz-date`, `x-amz-security-token` (for
/// temporary credentials) and `authorization`. The request must have a `host` header; the
/// signature covers `host`, `content-type` and every `x-amz-*` header.
pub fn sign(
    request: &HttpRequest<'_>,
    credentials: &Credentials,
    region: &str,
    service: &str,
    now: Timestamp,
) -> Vec<(String, String)> {
    let date = amz_date(now);
    let mut added: Vec<(String, String)> = vec![("x-amz-date".into(), date.clone())];
    if let Some(token) = &credentials.session_token {
        added.push(("x-amz-security-token".into(), token.expose().clone()));
    }
    let mut all: Vec<(&str, &str)> = request.headers.to_vec();
    all.extend(added.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut signed: Vec<String> = all
        .iter()
        .map(|(k, _)| k.to_ascii_lowercase())
        .filter(|k| k == "host" || k == "content-type" || k.starts_with("x-amz-"))
        .collect();
    signed.sort();
    signed.dedup();
    let with_date = HttpRequest {
        headers: &all,
        ..*request
    };
    let payload = canonical::sha256_hex(request.body);
    let canonical = canonical::canonical_request(&with_date, &signed, &payload, None);
    let scope = format!(
        "{}/{region}/{service}/aws4_request",
        date.get(..8).unwrap_or_default()
    );
    let signature = signature_hex(credentials, &date, &scope, region, service, &canonical);
    added.push((
        "authorization".into(),
        format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={}, Signature={}",
            credentials.access_key_id,
            signed.join(";"),
            signature
        ),
    ));
    added
}

/// The query string of a presigned `request` (which must have a `host` header), valid for
/// `expires_secs` seconds from `now`: the request's own query followed by the `X-Amz-*`
/// parameters. Only `host` is signed.
pub fn presign(
    request: &HttpRequest<'_>,
    credentials: &Credentials,
    region: &str,
    service: &str,
    now: Timestamp,
    expires_secs: u64,
) -> String {
    let date = amz_date(now);
    let scope = format!(
        "{}/{region}/{service}/aws4_request",
        date.get(..8).unwrap_or_default()
    );
    let mut query = String::from(request.query);
    let mut push = |name: &str, value: &str| {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(name);
        query.push('=');
        canonical::uri_encode(&mut query, value.as_bytes());
    };
    push("X-Amz-Algorithm", ALGORITHM);
    push(
        "X-Amz-Credential",
        &format!("{}/{scope}", credentials.access_key_id),
    );
    push("X-Amz-Date", &date);
    push("X-Amz-Expires", &expires_secs.to_string());
    if let Some(token) = &credentials.session_token {
        push("X-Amz-Security-Token", token.expose());
    }
    push("X-Amz-SignedHeaders", "host");
    let unsigned = HttpRequest {
        query: &query,
        ..*request
    };
    let payload = canonical::sha256_hex(request.body);
    let canonical = canonical::canonical_request(&unsigned, &["host".to_owned()], &payload, None);
    let signature = signature_hex(credentials, &date, &scope, region, service, &canonical);
    format!("{query}&X-Amz-Signature={signature}")
}

/// The hex signature of `canonical` at `date` (`YYYYMMDDTHHMMSSZ`) in `scope`.
fn signature_hex(
    credentials: &Credentials,
    date: &str,
    scope: &str,
    region: &str,
    service: &str,
    canonical: &str,
) -> String {
    let to_sign = canonical::string_to_sign(date, scope, canonical);
    canonical::hex(&canonical::signature(
        credentials.secret_access_key.expose(),
        date.get(..8).unwrap_or_default(),
        region,
        service,
        &to_sign,
    ))
}
