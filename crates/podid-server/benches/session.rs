#![allow(missing_docs, reason = "criterion generates undocumented items")]
#![expect(clippy::expect_used, reason = "benchmark set-up fails loudly")]
//! What authenticating a request signed with session credentials costs the server, per
//! request: opening the session token (AES-256-GCM and the claims), verifying the SigV4
//! signature, and both together with building the caller (the role's policies and tags, from
//! the in-memory store).
//!
//! Run with `cargo bench -p podid-server --bench session`.

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use podid_core::{AssumeRole, Caller, Core, CreateRole, MasterKey, SeqIds, Tag};
use podid_sigv4::{Credentials, HttpRequest, sign};
use podid_store::MemoryStore;
use podid_types::{FixedClock, Secret, Timestamp};

const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":["sts:AssumeRole","sts:TagSession"]}]}"#;
const BODY: &[u8] = b"Action=GetCallerIdentity&Version=2011-06-15";

struct Fixture {
    core: Core,
    runtime: tokio::runtime::Runtime,
    token: String,
    access_key_id: String,
    headers: Vec<(String, String)>,
    now: Timestamp,
}

fn fixture() -> Fixture {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let ids = Arc::new(SeqIds::new(1));
    let now = Timestamp::from_secs(1_763_800_000);
    let core = Core::new(
        Arc::new(MemoryStore::new()),
        Arc::new(FixedClock::new(now)),
        ids.clone(),
        MasterKey::generate(&*ids),
    );
    let (token, access_key_id, secret) = runtime.block_on(async {
        let boot = core
            .bootstrap(&["111122223333".parse().expect("an account")])
            .await
            .expect("bootstrap");
        let (record, _) = core
            .access_key(&boot.keys.first().expect("a key").access_key_id)
            .await
            .expect("a key")
            .expect("a key");
        let admin: Caller = core.caller(&record).await.expect("the admin");
        core.iam()
            .create_role(
                &admin,
                CreateRole {
                    name: "app".into(),
                    trust_policy: TRUST.into(),
                    ..Default::default()
                },
            )
            .await
            .expect("a role");
        let out = core
            .sts()
            .assume_role(
                &admin,
                AssumeRole {
                    role_arn: "arn:aws:iam::111122223333:role/app".into(),
                    session_name: "bench".into(),
                    tags: vec![Tag {
                        key: "kubernetes-namespace".into(),
                        value: "prod".into(),
                    }],
                    transitive_tag_keys: vec!["kubernetes-namespace".into()],
                    ..Default::default()
                },
            )
            .await
            .expect("a session");
        (
            out.credentials.session_token.expose().clone(),
            out.credentials.access_key_id.clone(),
            out.credentials.secret_access_key.expose().clone(),
        )
    });
    let credentials = Credentials {
        access_key_id: access_key_id.clone(),
        secret_access_key: Secret::new(secret),
        session_token: Some(Secret::new(token.clone())),
    };
    let base = [
        ("host", "127.0.0.1:4599"),
        (
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        ),
    ];
    let request = HttpRequest {
        method: "POST",
        path: "/",
        query: "",
        headers: &base,
        body: BODY,
    };
    let mut headers: Vec<(String, String)> = base
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    headers.extend(sign(&request, &credentials, "us-east-1", "sts", now));
    Fixture {
        core,
        runtime,
        token,
        access_key_id,
        headers,
        now,
    }
}

fn verify(f: &Fixture, secret: &str) {
    let headers: Vec<(&str, &str)> = f
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let request = HttpRequest {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        body: BODY,
    };
    let signed = podid_sigv4::parse(&request).expect("a signed request");
    signed
        .verify(&request, secret, f.now)
        .expect("a valid signature");
}

fn bench(c: &mut Criterion) {
    let f = fixture();
    let secret = f.runtime.block_on(async {
        f.core
            .open_session(&f.token, &f.access_key_id)
            .await
            .expect("opens")
            .secret_access_key()
    });
    let mut group = c.benchmark_group("session");
    group.throughput(Throughput::Elements(1));
    group.bench_function("open token", |b| {
        b.iter(|| {
            f.runtime
                .block_on(f.core.open_session(&f.token, &f.access_key_id))
                .expect("opens")
        });
    });
    group.bench_function("verify signature", |b| {
        b.iter(|| verify(&f, secret.expose()));
    });
    group.bench_function("open + verify + caller", |b| {
        b.iter(|| {
            f.runtime.block_on(async {
                let session = f
                    .core
                    .open_session(&f.token, &f.access_key_id)
                    .await
                    .expect("opens");
                verify(&f, session.secret_access_key().expose());
                f.core.session_caller(&session).await.expect("a caller")
            })
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
