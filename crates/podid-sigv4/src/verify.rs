//! Reading the signature of a request, and checking it.

use podid_types::Timestamp;
use subtle::ConstantTimeEq;

use crate::canonical::{self, ALGORITHM};
use crate::error::{SigV4Error, SigV4ErrorKind};
use crate::{HttpRequest, MAX_CLOCK_SKEW_SECS, MAX_PRESIGN_EXPIRY_SECS};

/// Where the signature was: the `Authorization` header, or the query string (a presigned URL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
    Header,
    /// `?X-Amz-Algorithm=...&X-Amz-Credential=...&X-Amz-Signature=...`.
    Query,
}

/// The credential scope: `DATE/REGION/SERVICE/aws4_request`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    /// `YYYYMMDD`.
    pub date: String,
    /// The region the client signed for; any region is accepted.
    pub region: String,
    /// The service the client signed for, such as `iam` or `sts`.
    pub service: String,
}

impl Scope {
    /// `DATE/REGION/SERVICE/aws4_request`.
    pub fn to_path(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }
}

/// A request's signature, read but not yet checked: the caller finds the secret of
/// [`SignedRequest::access_key_id`] and calls [`SignedRequest::verify`].
#[derive(Clone, Debug)]
pub struct SignedRequest {
    form: Form,
    access_key_id: String,
    scope: Scope,
    signed_headers: Vec<String>,
    signature: String,
    amz_date: String,
    timestamp: Timestamp,
    expires: Option<u64>,
    security_token: Option<String>,
}

/// Headers that must appear at most once: each decides how the request is verified.
const SINGLE_HEADERS: [&str; 5] = [
    "authorization",
    "host",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

/// The query parameters of a presigned request, each allowed once.
const AUTH_PARAMS: [&str; 7] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Signature",
    "X-Amz-SignedHeaders",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-Security-Token",
];

/// Reads the signature of `request`, from its `Authorization` header or its presigned query.
pub fn parse(request: &HttpRequest<'_>) -> Result<SignedRequest, SigV4Error> {
    // A header that steers verification is read once; two copies would let the signature cover
    // one while the verifier or a handler reads the other.
    for name in SINGLE_HEADERS {
        let count = request.header_values(name).count();
        if count > 1 {
            return Err(SigV4Error::new(
                SigV4ErrorKind::Incomplete,
                format!("The request has {count} '{name}' headers; send it once."),
            ));
        }
    }
    let params = query_params(request.query);
    let presigned = params
        .iter()
        .any(|(k, _)| AUTH_PARAMS.contains(&k.as_str()));
    if let Some(header) = request.header("authorization") {
        if presigned {
            return Err(SigV4Error::new(
                SigV4ErrorKind::Incomplete,
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified",
            ));
        }
        return parse_header(request, header);
    }
    if presigned {
        for name in AUTH_PARAMS {
            let count = params.iter().filter(|(k, _)| k == name).count();
            if count > 1 {
                return Err(SigV4Error::new(
                    SigV4ErrorKind::Incomplete,
                    format!("The query string has {count} '{name}' parameters; send it once."),
                ));
            }
        }
        return parse_query(&params);
    }
    Err(SigV4Error::new(
        SigV4ErrorKind::Missing,
        "Request is missing Authentication Token",
    ))
}

fn parse_header(request: &HttpRequest<'_>, header: &str) -> Result<SignedRequest, SigV4Error> {
    let incomplete = |why: String| {
        SigV4Error::new(
            SigV4ErrorKind::Incomplete,
            format!("{why} Authorization={header}"),
        )
    };
    let (algorithm, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    if algorithm != ALGORITHM {
        return Err(SigV4Error::new(
            SigV4ErrorKind::Incomplete,
            format!("Unsupported AWS 'algorithm': '{algorithm}'"),
        ));
    }
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, value)) = part.split_once('=') else {
            return Err(incomplete(format!(
                "'{part}' not a valid key=value pair (missing equal-sign) in Authorization header: '{header}'."
            )));
        };
        match name {
            "Credential" => credential = Some(value),
            "SignedHeaders" => signed_headers = Some(value),
            "Signature" => signature = Some(value),
            _ => {}
        }
    }
    let mut missing = String::new();
    for (name, value) in [
        ("Credential", credential),
        ("Signature", signature),
        ("SignedHeaders", signed_headers),
    ] {
        if value.is_none() {
            missing.push_str(&format!(
                "Authorization header requires '{name}' parameter. "
            ));
        }
    }
    let amz_date = request.header("x-amz-date");
    if amz_date.is_none() {
        missing.push_str(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ",
        );
    }
    let (Some(credential), Some(signed_headers), Some(signature), Some(amz_date)) =
        (credential, signed_headers, signature, amz_date)
    else {
        return Err(incomplete(missing.trim_end().to_owned()));
    };
    let (access_key_id, scope) = parse_credential(credential)?;
    let timestamp = parse_amz_date(amz_date).ok_or_else(|| {
        SigV4Error::new(
            SigV4ErrorKind::Incomplete,
            format!("Date must be in ISO-8601 'basic format'. Got '{amz_date}'. See http://en.wikipedia.org/wiki/ISO_8601"),
        )
    })?;
    let signed_headers = parse_signed_headers(signed_headers)?;
    Ok(SignedRequest {
        form: Form::Header,
        access_key_id,
        scope,
        signed_headers,
        signature: signature.to_owned(),
        amz_date: amz_date.to_owned(),
        timestamp,
        expires: None,
        security_token: request.header("x-amz-security-token").map(str::to_owned),
    })
}

fn parse_query(params: &[(String, String)]) -> Result<SignedRequest, SigV4Error> {
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let mut missing = Vec::new();
    for name in [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Signature",
        "X-Amz-SignedHeaders",
        "X-Amz-Date",
    ] {
        if get(name).is_none() {
            missing.push(name);
        }
    }
    if !missing.is_empty() {
        return Err(SigV4Error::new(
            SigV4ErrorKind::Incomplete,
            format!(
                "AWS query-string parameters must include {}. Re-examine the query-string parameters.",
                missing
                    .iter()
                    .map(|m| format!("'{m}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let algorithm = get("X-Amz-Algorithm").unwrap_or_default();
    if algorithm != ALGORITHM {
        return Err(SigV4Error::new(
            SigV4ErrorKind::Incomplete,
            format!("Unsupported AWS 'algorithm': '{algorithm}'"),
        ));
    }
    let (access_key_id, scope) = parse_credential(get("X-Amz-Credential").unwrap_or_default())?;
    let amz_date = get("X-Amz-Date").unwrap_or_default();
    let timestamp = parse_amz_date(amz_date).ok_or_else(|| {
        SigV4Error::new(
            SigV4ErrorKind::Incomplete,
            format!("Date must be in ISO-8601 'basic format'. Got '{amz_date}'. See http://en.wikipedia.org/wiki/ISO_8601"),
        )
    })?;
    let expires = match get("X-Amz-Expires") {
        None => None,
        Some(text) => match text.parse::<u64>() {
            Ok(secs) if (1..=MAX_PRESIGN_EXPIRY_SECS).contains(&secs) => Some(secs),
            _ => {
                return Err(SigV4Error::new(
                    SigV4ErrorKind::Incomplete,
                    format!(
                        "X-Amz-Expires must be a whole number of seconds from 1 to {MAX_PRESIGN_EXPIRY_SECS}; got '{text}'."
                    ),
                ));
            }
        },
    };
    Ok(SignedRequest {
        form: Form::Query,
        access_key_id,
        scope,
        signed_headers: parse_signed_headers(get("X-Amz-SignedHeaders").unwrap_or_default())?,
        signature: get("X-Amz-Signature").unwrap_or_default().to_owned(),
        amz_date: amz_date.to_owned(),
        timestamp,
        expires,
        security_token: get("X-Amz-Security-Token").map(str::to_owned),
    })
}

fn parse_credential(credential: &str) -> Result<(String, Scope), SigV4Error> {
    let parts: Vec<&str> = credential.split('/').collect();
    match parts.as_slice() {
        [key, date, region, service, "aws4_request"]
            if !key.is_empty()
                && date.len() == 8
                && date.bytes().all(|b| b.is_ascii_digit())
                && !region.is_empty()
                && !service.is_empty() =>
        {
            Ok((
                (*key).to_owned(),
                Scope {
                    date: (*date).to_owned(),
                    region: (*region).to_owned(),
                    service: (*service).to_owned(),
                },
            ))
        }
        [_, _, _, _, terminator] if *terminator != "aws4_request" => Err(SigV4Error::new(
            SigV4ErrorKind::Incomplete,
            format!(
                "Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'."
            ),
        )),
        _ => Err(SigV4Error::new(
            SigV4ErrorKind::Incomplete,
            format!(
                "Credential should be scoped to a valid region, service and date: 'ACCESS_KEY/YYYYMMDD/REGION/SERVICE/aws4_request', not '{credential}'."
            ),
        )),
    }
}

fn parse_signed_headers(text: &str) -> Result<Vec<String>, SigV4Error> {
    let headers: Vec<String> = text
        .split(';')
        .filter(|h| !h.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    if !headers.iter().any(|h| h == "host") {
        return Err(SigV4Error::new(
            SigV4ErrorKind::Incomplete,
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    Ok(headers)
}

impl SignedRequest {
    /// Where the signature was.
    pub fn form(&self) -> Form {
        self.form
    }

    /// The access key the request was signed with.
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The credential scope.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The time the client signed at.
    pub fn timestamp(&self) -> Timestamp {
        self.timestamp
    }

    /// `X-Amz-Security-Token`, if sent: the session token of temporary credentials, for the
    /// caller to open (the signature covers it when it is among the signed headers).
    pub fn security_token(&self) -> Option<&str> {
        self.security_token.as_deref()
    }

    /// The headers the signature covers, in lower case.
    pub fn signed_headers(&self) -> &[String] {
        &self.signed_headers
    }

    /// The canonical request the signature should cover. Its payload hash is always the
    /// SHA-256 of the body received, never a value the request states: an
    /// `x-amz-content-sha256` header is checked against it by [`SignedRequest::verify`].
    pub fn canonical_request(&self, request: &HttpRequest<'_>) -> String {
        let payload = payload_hash(request.body);
        let exclude = (self.form == Form::Query).then_some("X-Amz-Signature");
        canonical::canonical_request(request, &self.signed_headers, &payload, exclude)
    }

    /// The string to sign.
    pub fn string_to_sign(&self, request: &HttpRequest<'_>) -> String {
        canonical::string_to_sign(
            &self.amz_date,
            &self.scope.to_path(),
            &self.canonical_request(request),
        )
    }

    /// Checks the `x-amz-content-sha256` header, if sent, against the body; then the signature
    /// against `secret` (compared in constant time); then the time: within 15 minutes of `now`
    /// for the header form; before `X-Amz-Expires` has passed for the query form.
    pub fn verify(
        &self,
        request: &HttpRequest<'_>,
        secret: &str,
        now: Timestamp,
    ) -> Result<(), SigV4Error> {
        check_content_hash(request)?;
        let expected = canonical::signature(
            secret,
            &self.scope.date,
            &self.scope.region,
            &self.scope.service,
            &self.string_to_sign(request),
        );
        let expected_hex = canonical::hex(&expected);
        let matches: bool = expected_hex
            .as_bytes()
            .ct_eq(self.signature.to_ascii_lowercase().as_bytes())
            .into();
        if !matches {
            return Err(SigV4Error::new(
                SigV4ErrorKind::Mismatch,
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
            ));
        }
        if !self.amz_date.starts_with(&self.scope.date) {
            return Err(SigV4Error::new(
                SigV4ErrorKind::Mismatch,
                format!(
                    "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{}'.",
                    self.scope.date,
                    self.amz_date.get(..8).unwrap_or_default(),
                    self.amz_date
                ),
            ));
        }
        let skew = MAX_CLOCK_SKEW_SECS * 1000;
        let signed = self.timestamp.as_millis();
        let now_ms = now.as_millis();
        if signed > now_ms + skew {
            return Err(SigV4Error::new(
                SigV4ErrorKind::Mismatch,
                format!(
                    "Signature not yet current: {} is still later than {} ({} + 15 min.)",
                    self.amz_date,
                    amz_date(Timestamp::from_millis(now_ms + skew)),
                    amz_date(now)
                ),
            ));
        }
        // Presigned requests: IAM and STS allow 15 minutes whatever `X-Amz-Expires` says, and a
        // shorter `X-Amz-Expires` ends validity sooner; both answer "Signature expired".
        let limit = match self.expires {
            Some(expires) => skew.min(
                i64::try_from(expires)
                    .unwrap_or(i64::MAX)
                    .saturating_mul(1000),
            ),
            None => skew,
        };
        if signed < now_ms - limit {
            return Err(SigV4Error::new(
                SigV4ErrorKind::Mismatch,
                format!(
                    "Signature expired: {} is now earlier than {} ({} - {} min.)",
                    self.amz_date,
                    amz_date(Timestamp::from_millis(now_ms - limit)),
                    amz_date(now),
                    limit / 60_000
                ),
            ));
        }
        Ok(())
    }
}

/// The hex SHA-256 of a body.
fn payload_hash(body: &[u8]) -> String {
    if body.is_empty() {
        canonical::EMPTY_SHA256.to_owned()
    } else {
        canonical::sha256_hex(body)
    }
}

/// An `x-amz-content-sha256` header, signed or not, must be the SHA-256 of the body received:
/// IAM, STS, EKS and EKS Auth take neither `UNSIGNED-PAYLOAD` nor streaming payloads (S3's).
fn check_content_hash(request: &HttpRequest<'_>) -> Result<(), SigV4Error> {
    let Some(stated) = request.header("x-amz-content-sha256") else {
        return Ok(());
    };
    let stated = stated.trim();
    if stated == "UNSIGNED-PAYLOAD" || stated.starts_with("STREAMING-") {
        return Err(SigV4Error::new(
            SigV4ErrorKind::ContentHash,
            format!(
                "x-amz-content-sha256 '{stated}' is not accepted by this service: sign the SHA-256 of the body (in hex) or leave the header out."
            ),
        ));
    }
    if stated != payload_hash(request.body) {
        return Err(SigV4Error::new(
            SigV4ErrorKind::ContentHash,
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        ));
    }
    Ok(())
}

/// The query's parameters, percent-decoded (`+` kept as it is).
pub(crate) fn query_params(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|part| {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            (
                String::from_utf8_lossy(&canonical::percent_decode(k)).into_owned(),
                String::from_utf8_lossy(&canonical::percent_decode(v)).into_owned(),
            )
        })
        .collect()
}

/// Reads `YYYYMMDDTHHMMSSZ`.
pub(crate) fn parse_amz_date(text: &str) -> Option<Timestamp> {
    let b = text.as_bytes();
    if b.len() != 16 || b.get(8) != Some(&b'T') || b.get(15) != Some(&b'Z') {
        return None;
    }
    let num = |from: usize, len: usize| -> Option<i64> {
        let s = text.get(from..from + len)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (year, month, day) = (num(0, 4)?, num(4, 2)?, num(6, 2)?);
    let (hour, minute, second) = (num(9, 2)?, num(11, 2)?, num(13, 2)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = podid_types::days_from_civil(year, month, day);
    Some(Timestamp::from_secs(
        days * 86_400 + hour * 3600 + minute * 60 + second,
    ))
}

/// `YYYYMMDDTHHMMSSZ`.
pub(crate) fn amz_date(t: Timestamp) -> String {
    // `2024-05-01T10:00:00Z` → `20240501T100000Z`.
    t.to_iso8601().replace(['-', ':'], "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates_round_trip() {
        let t = parse_amz_date("20150830T123600Z").unwrap();
        assert_eq!(t.to_iso8601(), "2015-08-30T12:36:00Z");
        assert_eq!(amz_date(t), "20150830T123600Z");
        for bad in [
            "",
            "20150830T123600",
            "2015-08-30T12:36:00Z",
            "20151330T123600Z",
            "20150830T250000Z",
        ] {
            assert!(parse_amz_date(bad).is_none(), "{bad}");
        }
    }
}
