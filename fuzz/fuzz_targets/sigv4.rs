//! Any bytes as an HTTP request (a request line with a query, header lines, a body): SigV4
//! parsing, canonicalization and verification must never panic, and the query as handlers read
//! it must never panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podid_sigv4::HttpRequest;
use podid_types::Timestamp;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let target = lines.next().unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let headers: Vec<(&str, &str)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim(), v.trim()))
        .collect();
    let request = HttpRequest {
        method: "POST",
        path,
        query,
        headers: &headers,
        body: body.as_bytes(),
    };
    let _ = podid_sigv4::query_params(query);
    let _ = podid_sigv4::query_params_with_lists(query, &["types", "owners"]);
    let _ = podid_sigv4::path_segments(path);
    if let Ok(signed) = podid_sigv4::parse(&request) {
        let _ = signed.canonical_request(&request);
        let _ = signed.string_to_sign(&request);
        let _ = signed.verify(&request, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", Timestamp::from_secs(1_763_800_000));
    }
});
