//! Any bytes as a JWT and as a JWKS: decoding, key-set parsing and verification (every
//! allow-listed algorithm, the time claims) must never panic, and nothing unsigned may verify.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podid_jwt::Jwks;
use podid_types::Timestamp;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (token, jwks) = text.split_once('\n').unwrap_or((text, r#"{"keys":[]}"#));
    let _ = podid_jwt::decode_unverified(token);
    let set = Jwks::parse(jwks).unwrap_or_default();
    if let Ok(claims) = podid_jwt::verify(token, &set, Timestamp::from_secs(1_763_800_000), 60) {
        // A token verifies only against a key of the set.
        assert!(!set.keys.is_empty(), "a token verified with no key: {claims:?}");
    }
});
