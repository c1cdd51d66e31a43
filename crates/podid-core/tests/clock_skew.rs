//! Replicas whose clocks disagree: two cores on one store, the second's clock ahead of or behind
//! the first's. Within the documented bound (60 s, the leeway on tokens' time claims) a session or
//! a service-account token issued by one replica works on the other, and either may rotate the
//! session keys; beyond it, a token from the future is refused with a message that names the clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

mod common;

use std::sync::Arc;

use podid_core::eks::{CreateAssociation, ServiceAccountToken};
use podid_core::{AssumeRole, Caller, Core, Error, MasterKey, PageRequest, SeqIds};
use podid_store::{MemoryStore, Store};
use podid_types::{FixedClock, Timestamp};

const REGION: &str = "us-west-2";
const START: i64 = 1_760_000_000;
const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"sts:AssumeRole"},{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]}]}"#;

/// The bound docs/reliability.md promises: the leeway on tokens' `iat` and `nbf`.
const BOUND_SECS: i64 = podid_core::eks::TOKEN_LEEWAY_SECONDS;

struct Replicas {
    first: Core,
    second: Core,
    admin: Caller,
}

/// Two replicas on one store, the second's clock `skew` seconds from the first's; a role `app`,
/// a local cluster `dev` and an association of `default/app` with the role.
async fn replicas(skew: i64) -> Replicas {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let ids = Arc::new(SeqIds::new(3));
    let master = MasterKey::generate(&*ids);
    let key = master.to_hex();
    let core = |secs: i64, seed: u64| {
        Core::new(
            store.clone(),
            Arc::new(FixedClock::new(Timestamp::from_secs(secs))),
            Arc::new(SeqIds::new(seed)),
            MasterKey::parse(key.expose()).unwrap(),
        )
    };
    let first = core(START, 1);
    let second = core(START + skew, 2);
    let boot = first
        .bootstrap(&["111122223333".parse().unwrap()])
        .await
        .unwrap();
    let (record, _) = first
        .access_key(&boot.keys[0].access_key_id)
        .await
        .unwrap()
        .unwrap();
    let admin = first.caller(&record).await.unwrap();
    common::create_role(&first, &admin, "app", TRUST).await;
    common::local_clusters(&first, &admin, REGION, &["dev"]).await;
    first
        .eks()
        .create_association(
            &admin,
            REGION,
            "dev",
            CreateAssociation {
                namespace: "default".into(),
                service_account: "app".into(),
                role_arn: "arn:aws:iam::111122223333:role/app".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    Replicas {
        first,
        second,
        admin,
    }
}

impl Replicas {
    async fn token_from_first(&self) -> String {
        self.first
            .eks()
            .create_service_account_token(
                &self.admin,
                REGION,
                "dev",
                ServiceAccountToken {
                    namespace: "default".into(),
                    service_account: "app".into(),
                    pod: Some(("app-0".into(), "uid-0".into())),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn within_the_bound_each_replica_accepts_what_the_other_issued() {
    for skew in [-BOUND_SECS, -1, 1, BOUND_SECS] {
        let r = replicas(skew).await;
        // A session issued by the first replica signs calls to the second.
        let assumed = r
            .first
            .sts()
            .assume_role(
                &r.admin,
                AssumeRole {
                    role_arn: "arn:aws:iam::111122223333:role/app".into(),
                    session_name: "skewed".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let c = &assumed.credentials;
        let opened = r
            .second
            .open_session(c.session_token.expose(), &c.access_key_id)
            .await
            .unwrap_or_else(|e| panic!("skew {skew}s: {e}"));
        let session = r.second.session_caller(&opened).await.unwrap();
        assert_eq!(session.arn(), assumed.arn, "skew {skew}s");
        // The second replica rotates the session keys; the first's sessions still open there
        // and on the first.
        r.second.sts().rotate_session_keys().await.unwrap();
        for core in [&r.first, &r.second] {
            core.open_session(c.session_token.expose(), &c.access_key_id)
                .await
                .unwrap_or_else(|e| panic!("skew {skew}s after rotation: {e}"));
        }
        // A pod's token minted by the first replica buys credentials from the second.
        let token = r.token_from_first().await;
        let pod = r
            .second
            .eks_auth()
            .assume_role_for_pod_identity(&r.admin, REGION, "dev", &token)
            .await
            .unwrap_or_else(|e| panic!("skew {skew}s: {e}"));
        assert_eq!(pod.service_account, "app");
        // And the second replica lists what the first wrote.
        let roles = r
            .second
            .iam()
            .list_roles(&r.admin, None, &PageRequest::default())
            .await
            .unwrap();
        assert!(roles.items.iter().any(|role| role.name == "app"));
    }
}

#[tokio::test]
async fn beyond_the_bound_a_token_from_the_future_is_refused_and_says_why() {
    // The second replica runs two minutes behind: the first's tokens were issued in its future.
    let r = replicas(-2 * BOUND_SECS).await;
    let token = r.token_from_first().await;
    let refused = r
        .second
        .eks_auth()
        .assume_role_for_pod_identity(&r.admin, REGION, "dev", &token)
        .await
        .unwrap_err();
    let Error::InvalidToken(message) = &refused else {
        panic!("{refused:?}");
    };
    assert!(message.contains("clock"), "{message}");
}
