#![allow(missing_docs, reason = "criterion generates undocumented items")]
#![expect(clippy::expect_used, reason = "benchmark set-up fails loudly")]
//! What one service-account token costs: verification (EKS Auth pays it on every call, the agent
//! on every rotated token) and signing (the server, for every token it issues).
//!
//! Run with `cargo bench -p podid-jwt --bench tokens`. The key and tokens are the fixtures in
//! `tests/data/` (a 2048-bit RSA key and a P-256 key, with kube-apiserver's claims), so the same
//! inputs are measured whatever implementation is underneath.

use criterion::{Criterion, criterion_group, criterion_main};
use podid_jwt::{Jwks, SigningKey, verify};
use podid_types::Timestamp;
use serde_json::{Map, Value};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

fn read(name: &str) -> String {
    std::fs::read_to_string(format!("{DATA}/{name}")).expect("fixture")
}

fn tokens(c: &mut Criterion) {
    let now = Timestamp::from_secs(1_800_000_000);
    let rsa_jwks = Jwks::parse(&read("rsa-2048.jwks.json")).expect("jwks");
    let rs256 = read("rs256-token.jwt");
    let ec_jwks = Jwks::parse(&read("p256.jwks.json")).expect("jwks");
    let es256 = read("es256-token.jwt");
    let der = std::fs::read(format!("{DATA}/rsa-2048.pk8")).expect("key");
    let key = SigningKey::from_pkcs8_der(&der).expect("key");
    let claims: Map<String, Value> = podid_jwt::decode_unverified(&rs256).expect("token").claims;

    c.bench_function("verify RS256 (2048-bit key)", |b| {
        b.iter(|| verify(&rs256, &rsa_jwks, now, 60).expect("valid"));
    });
    c.bench_function("verify ES256 (P-256)", |b| {
        b.iter(|| verify(&es256, &ec_jwks, now, 60).expect("valid"));
    });
    c.bench_function("sign RS256 (2048-bit key)", |b| {
        b.iter(|| key.sign(&claims));
    });
}

criterion_group!(benches, tokens);
criterion_main!(benches);
