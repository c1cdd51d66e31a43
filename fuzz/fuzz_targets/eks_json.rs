//! Any bytes as the JSON body of an EKS or EKS Auth operation, signed as SDKs sign it and sent
//! through podid's router (in process) to the domain: parsing, validation and the operations
//! must never panic, and never answer 5xx (every bad body is the caller's fault). The first byte
//! picks the operation; the world (an account, a cluster `c`, a role, an association) is made
//! again every 5,000 inputs, so that what inputs create stays bounded.
#![no_main]

use std::cell::RefCell;
use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::http::Request;
use libfuzzer_sys::fuzz_target;
use podid_core::{Core, MasterKey, SeqIds};
use podid_server::{AppState, app};
use podid_sigv4::{Credentials, HttpRequest, sign};
use podid_store::MemoryStore;
use podid_types::{FixedClock, Secret, Timestamp};
use tower::ServiceExt as _;

/// (method, path, signing name) of every operation with a body, and a few without.
const OPERATIONS: [(&str, &str, &str); 14] = [
    ("POST", "/clusters", "eks"),
    ("POST", "/clusters/c/pod-identity-associations", "eks"),
    ("POST", "/clusters/c/pod-identity-associations/a-0000000000000000", "eks"),
    ("POST", "/clusters/c/addons", "eks"),
    ("POST", "/clusters/c/addons/eks-pod-identity-agent/update", "eks"),
    ("POST", "/clusters/c/podid/service-account-token", "eks"),
    ("POST", "/clusters/c/podid/service-accounts", "eks"),
    ("POST", "/clusters/c/podid/service-accounts/default/app", "eks"),
    ("POST", "/clusters/c/assume-role-for-pod-identity", "eks-auth"),
    ("POST", "/clusters/c/podid/rotate-signing-keys", "eks"),
    ("GET", "/clusters/c/pod-identity-associations", "eks"),
    ("GET", "/podid/audit/events", "eks"),
    ("DELETE", "/clusters/c/pod-identity-associations/a-0000000000000000", "eks"),
    ("POST", "/clusters/other/pod-identity-associations", "eks"),
];

const NOW: i64 = 1_764_835_200;

struct World {
    runtime: tokio::runtime::Runtime,
    state: AppState,
    credentials: Credentials,
    inputs: usize,
}

fn world() -> World {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("a runtime: {e}"));
    let ids = Arc::new(SeqIds::new(1));
    let core = Arc::new(Core::new(
        Arc::new(MemoryStore::new()),
        Arc::new(FixedClock::new(Timestamp::from_secs(NOW))),
        ids.clone(),
        MasterKey::generate(&*ids),
    ));
    let key = runtime.block_on(async {
        let boot = core
            .bootstrap(&["111122223333".parse().unwrap_or_else(|_| panic!("an account"))])
            .await
            .unwrap_or_else(|e| panic!("bootstrap: {e}"));
        boot.keys.into_iter().next().unwrap_or_else(|| panic!("a key"))
    });
    let state = AppState {
        core,
        public_url: "http://127.0.0.1:4599".into(),
        throttles: Arc::default(),
    };
    let credentials = Credentials {
        access_key_id: key.access_key_id.clone(),
        secret_access_key: Secret::new(key.secret_access_key.expose().clone()),
        session_token: None,
    };
    let world = World { runtime, state, credentials, inputs: 0 };
    for body in [
        r#"{"name":"c","roleArn":"arn:aws:iam::111122223333:role/r","resourcesVpcConfig":{}}"#,
    ] {
        send(&world, "POST", "/clusters", "eks", body.as_bytes());
    }
    world
}

fn send(world: &World, method: &str, path: &str, service: &str, body: &[u8]) -> u16 {
    let pairs = [("host", "localhost"), ("content-type", "application/json")];
    let signed = HttpRequest { method, path, query: "", headers: &pairs, body };
    let headers = sign(&signed, &world.credentials, "us-east-1", service, Timestamp::from_secs(NOW));
    let mut builder = Request::builder().method(method).uri(path);
    for (k, v) in pairs {
        builder = builder.header(k, v);
    }
    for (k, v) in &headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let Ok(request) = builder.body(Body::from(body.to_vec())) else {
        return 400;
    };
    world.runtime.block_on(async {
        let response = app(world.state.clone())
            .oneshot(request)
            .await
            .unwrap_or_else(|e| match e {});
        let status = response.status().as_u16();
        let _ = to_bytes(response.into_body(), usize::MAX).await;
        status
    })
}

thread_local! {
    static WORLD: RefCell<Option<World>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    WORLD.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|w| w.inputs >= 5000) {
            *slot = Some(world());
        }
        let Some(world) = slot.as_mut() else { return };
        world.inputs += 1;
        let (method, path, service) = OPERATIONS[usize::from(pick) % OPERATIONS.len()];
        let status = send(world, method, path, service, body);
        assert!(status < 500, "{method} {path} answered {status} to {:?}", String::from_utf8_lossy(body));
    });
});
