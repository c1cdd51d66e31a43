//! Set-up shared by the EKS, Pod Identity and web identity tests.
#![allow(dead_code, reason = "each test crate uses a part of it")]

use std::sync::Arc;

use podid_core::eks::{ClusterTokens, CreateCluster};
use podid_core::{
    AuditQuery, AuditRecord, Caller, Core, CreateRole, Ending, MasterKey, RequestAudit,
    RequestEvent, RequestInfo, SeqIds,
};
use podid_store::MemoryStore;
use podid_types::{FixedClock, Timestamp};

/// Creates the role `name` with the trust policy `trust`, as `caller`.
pub(crate) async fn create_role(core: &Core, caller: &Caller, name: &str, trust: &str) {
    core.iam()
        .create_role(
            caller,
            CreateRole {
                name: name.into(),
                trust_policy: trust.into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
}

/// A core on the in-memory store with accounts 111122223333 and 444455556666, at `secs` on a
/// fixed clock; the clock and each account's `admin`.
pub(crate) async fn two_accounts(seed: u64, secs: i64) -> (Core, Arc<FixedClock>, Caller, Caller) {
    two_accounts_with(seed, secs, |core| core).await
}

/// [`two_accounts`], with the core configured by `configure` before bootstrap.
pub(crate) async fn two_accounts_with(
    seed: u64,
    secs: i64,
    configure: impl FnOnce(Core) -> Core,
) -> (Core, Arc<FixedClock>, Caller, Caller) {
    two_accounts_on(Arc::new(MemoryStore::new()), seed, secs, configure).await
}

/// [`two_accounts_with`] on `store`.
pub(crate) async fn two_accounts_on(
    store: Arc<dyn podid_store::Store>,
    seed: u64,
    secs: i64,
    configure: impl FnOnce(Core) -> Core,
) -> (Core, Arc<FixedClock>, Caller, Caller) {
    let ids = Arc::new(SeqIds::new(seed));
    let clock = Arc::new(FixedClock::new(Timestamp::from_secs(secs)));
    let core = configure(Core::new(
        store,
        clock.clone(),
        ids.clone(),
        MasterKey::generate(&*ids),
    ));
    let boot = core
        .bootstrap(&[
            "111122223333".parse().unwrap(),
            "444455556666".parse().unwrap(),
        ])
        .await
        .unwrap();
    assert_eq!(boot.keys.len(), 2);
    let mut admins = Vec::new();
    for key in &boot.keys {
        let (record, secret) = core.access_key(&key.access_key_id).await.unwrap().unwrap();
        assert_eq!(secret.expose(), key.secret_access_key.expose());
        admins.push(core.caller(&record).await.unwrap());
    }
    let b = admins.pop().unwrap();
    let a = admins.pop().unwrap();
    (core, clock, a, b)
}

/// Creates local clusters named `names` in `region`, as `caller`.
pub(crate) async fn local_clusters(core: &Core, caller: &Caller, region: &str, names: &[&str]) {
    for name in names {
        core.eks()
            .create_cluster(
                caller,
                CreateCluster {
                    name: (*name).into(),
                    region: region.into(),
                    tokens: ClusterTokens::Local,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
}

/// Serves documents from a map, counting the fetches.
pub(crate) struct Documents {
    pub(crate) pages: std::collections::HashMap<String, String>,
    pub(crate) fetches: std::sync::atomic::AtomicUsize,
}

impl Documents {
    /// An issuer's discovery document (`jwks_uri` = `ISSUER/openid/v1/jwks`) and key set.
    pub(crate) fn issuer(issuer: &str, jwks: &str) -> Arc<Self> {
        Arc::new(Self {
            pages: [
                (
                    format!("{issuer}/.well-known/openid-configuration"),
                    format!(r#"{{"issuer":"{issuer}","jwks_uri":"{issuer}/openid/v1/jwks"}}"#),
                ),
                (format!("{issuer}/openid/v1/jwks"), jwks.to_owned()),
            ]
            .into_iter()
            .collect(),
            fetches: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// How many documents were fetched.
    pub(crate) fn count(&self) -> usize {
        self.fetches.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl podid_core::Fetcher for Documents {
    async fn get(&self, url: &str) -> Result<String, String> {
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.pages
            .get(url)
            .cloned()
            .ok_or_else(|| format!("404 for {url}"))
    }
}

/// `caller` with an audit of operation `name` with `parameters` started, as the server starts
/// it for an audited request.
pub(crate) fn audited(
    core: &Core,
    caller: &Caller,
    name: &str,
    parameters: serde_json::Value,
) -> (Caller, RequestAudit) {
    let audit = RequestAudit::new(RequestEvent {
        request_id: core.ids().request_id(),
        time: core.clock().now(),
        source: "test.amazonaws.com",
        name: name.into(),
        parameters,
        ..RequestEvent::default()
    });
    let caller = caller.clone().with_request(RequestInfo {
        audit: Some(audit.clone()),
        ..RequestInfo::default()
    });
    (caller, audit)
}

/// Finishes `audit` as the server does: the error's text stands for its code.
pub(crate) async fn finish<T>(
    core: &Core,
    audit: &RequestAudit,
    caller: &Caller,
    result: &Result<T, podid_core::Error>,
) {
    let message = result.as_ref().err().map(ToString::to_string);
    let ending = match &message {
        None => Ending::Success(None),
        Some(message) => Ending::Failure {
            code: "Refused",
            message,
        },
    };
    core.audit()
        .finish(audit, Some(caller), ending)
        .await
        .unwrap();
}

/// The newest audit record `caller`'s account sees.
pub(crate) async fn last_record(core: &Core, caller: &Caller) -> AuditRecord {
    let page = core
        .audit()
        .lookup(
            caller,
            &AuditQuery {
                max_results: 1000,
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    page.records.last().cloned().unwrap()
}
