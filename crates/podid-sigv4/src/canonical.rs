//! The canonical request and string to sign.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::HttpRequest;

/// `AWS4-HMAC-SHA256`.
pub(crate) const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The hex SHA-256 of the empty string.
pub(crate) const EMPTY_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Builds the canonical request of `request` for the given signed headers; `exclude_query`
/// names a query parameter left out (`X-Amz-Signature` of a presigned request).
pub(crate) fn canonical_request(
    request: &HttpRequest<'_>,
    signed_headers: &[String],
    payload_hash: &str,
    exclude_query: Option<&str>,
) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(request.method);
    out.push('\n');
    out.push_str(&canonical_uri(request.path));
    out.push('\n');
    out.push_str(&canonical_query(request.query, exclude_query));
    out.push('\n');
    for name in signed_headers {
        out.push_str(name);
        out.push(':');
        let mut first = true;
        for value in request.header_values(name) {
            if !first {
                out.push(',');
            }
            first = false;
            push_trimmed(&mut out, value);
        }
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed_headers.join(";"));
    out.push('\n');
    out.push_str(payload_hash);
    out
}

/// The string to sign for a canonical request.
pub(crate) fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    )
}

/// The signature of `string_to_sign` with the key derived from `secret` for the scope.
pub(crate) fn signature(
    secret: &str,
    date: &str,
    region: &str,
    service: &str,
    string_to_sign: &str,
) -> [u8; 32] {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    hmac(&k_signing, string_to_sign.as_bytes())
}

/// The hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this never fails.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return [0; 32],
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(hex_digit(b >> 4));
        out.push(hex_digit(b & 0xf));
    }
    out
}

/// The lower-case hex digit of a nibble.
fn hex_digit(nibble: u8) -> char {
    char::from_digit(u32::from(nibble), 16).unwrap_or('0')
}

/// The path, normalized (dot segments removed, repeated slashes collapsed) and URI-encoded as
/// services other than S3 do: the path as sent is encoded again, so `%3A` becomes `%253A`.
fn canonical_uri(path: &str) -> String {
    let path = if path.is_empty() { "/" } else { path };
    let segments = path_segments(path);
    let mut out = String::with_capacity(path.len() + 8);
    for segment in &segments {
        out.push('/');
        uri_encode(&mut out, segment.as_bytes());
    }
    if segments.is_empty() || (path.ends_with('/') && path.len() > 1) {
        out.push('/');
    }
    out
}

/// The path's segments as the canonical URI has them: empty and `.` segments dropped, `..`
/// removing the one before. A handler that routes on them reads the path the signature covers:
/// `/clusters/./c`, `/clusters//c` and `/clusters/c` carry one signature and name one resource.
pub fn path_segments(path: &str) -> Vec<&str> {
    let mut segments = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    segments
}

/// The query's parameters, decoded, encoded strictly, and sorted by name then value.
fn canonical_query(query: &str, exclude: Option<&str>) -> String {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        let name = percent_decode(name);
        if exclude.is_some_and(|e| e.as_bytes() == name.as_slice()) {
            continue;
        }
        let mut encoded_name = String::new();
        uri_encode(&mut encoded_name, &name);
        let mut encoded_value = String::new();
        uri_encode(&mut encoded_value, &percent_decode(value));
        pairs.push((encoded_name, encoded_value));
    }
    pairs.sort();
    let mut out = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// Appends `value` trimmed, with runs of whitespace (folded lines included) as one space.
fn push_trimmed(out: &mut String, value: &str) {
    let mut pending_space = false;
    for word in value
        .split([' ', '\t', '\n', '\r'])
        .filter(|w| !w.is_empty())
    {
        if pending_space {
            out.push(' ');
        }
        out.push_str(word);
        pending_space = true;
    }
}

/// `text` percent-encoded as SigV4 encodes: every byte but `A-Z a-z 0-9 - _ . ~`, as `%XX`. Also
/// what a query-protocol form value needs.
pub fn uri_encoded(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    uri_encode(&mut out, text.as_bytes());
    out
}

/// Percent-encodes every byte except the unreserved characters `A-Z a-z 0-9 - _ . ~`.
pub(crate) fn uri_encode(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(hex_digit(b >> 4).to_ascii_uppercase());
            out.push(hex_digit(b & 0xf).to_ascii_uppercase());
        }
    }
}

/// Decodes `%XX` sequences; anything else (including `+`) is kept as it is.
/// `text` with its `%XX` sequences decoded (other bytes as they are), as text: what
/// [`uri_encoded`] encodes, and how AWS's query APIs encode policy documents.
pub fn percent_decoded(text: &str) -> String {
    String::from_utf8_lossy(&percent_decode(text)).into_owned()
}

pub(crate) fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = bytes.get(i + 1).and_then(|c| char::from(*c).to_digit(16));
            let lo = bytes.get(i + 2).and_then(|c| char::from(*c).to_digit(16));
            if let (Some(hi), Some(lo)) = (hi, lo) {
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'%'));
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_normalized_and_encoded_again() {
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri("//example//"), "/example/");
        assert_eq!(canonical_uri("/example/.."), "/");
        assert_eq!(canonical_uri("/a/./b/../c"), "/a/c");
        assert_eq!(canonical_uri("/example space/"), "/example%20space/");
        assert_eq!(canonical_uri("/arn%3Aaws"), "/arn%253Aaws");
    }

    #[test]
    fn queries_are_sorted_and_encoded_strictly() {
        assert_eq!(canonical_query("b=2&a=1&a=0", None), "a=0&a=1&b=2");
        assert_eq!(canonical_query("k=a+b&e", None), "e=&k=a%2Bb");
        assert_eq!(
            canonical_query("X-Amz-Signature=x&a=1", Some("X-Amz-Signature")),
            "a=1"
        );
        assert_eq!(canonical_query("%E1%88%B4=1", None), "%E1%88%B4=1");
    }

    #[test]
    fn header_values_are_trimmed() {
        let mut out = String::new();
        push_trimmed(&mut out, "  value1\n  value2   value3 ");
        assert_eq!(out, "value1 value2 value3");
    }
}
