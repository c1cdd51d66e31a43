//! Master-key rotation: every sealed secret opens with the new key afterwards, and none with
//! the old one.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

mod common;

use std::sync::Arc;

use podid_core::eks::ServiceAccountToken;
use podid_core::{Caller, Core, MasterKey, SeqIds};

async fn token(core: &Core, caller: &Caller) -> Result<String, podid_core::Error> {
    core.eks()
        .create_service_account_token(
            caller,
            "us-east-1",
            "prod",
            ServiceAccountToken {
                namespace: "default".into(),
                service_account: "app".into(),
                audiences: vec!["pods.eks.amazonaws.com".into()],
                ..Default::default()
            },
        )
        .await
}

#[tokio::test]
async fn every_secret_opens_with_the_new_key_and_none_with_the_old() {
    let (core, clock, a, _) = common::two_accounts(11, 1_763_800_000).await;
    common::local_clusters(&core, &a, "us-east-1", &["prod"]).await;
    core.sts().rotate_session_keys().await.unwrap();
    assert!(token(&core, &a).await.is_ok());
    let keys = core.store().scan("access-key", "", None, 10).await.unwrap();
    assert_eq!(keys.len(), 2);
    // Account 111122223333's admin, who owns the cluster.
    let access_key = keys
        .iter()
        .find(|k| k.value.contains("111122223333"))
        .unwrap()
        .key
        .clone();

    let ids = Arc::new(SeqIds::new(99));
    let new = MasterKey::generate(&*ids);
    let resealed = core.reseal(&new).await.unwrap();
    // Two access keys, the session key, the cluster's signing key.
    assert_eq!(resealed, 4);

    let fresh = Core::new(core.store().clone(), clock.clone(), ids.clone(), new);
    let (record, _) = fresh.access_key(&access_key).await.unwrap().unwrap();
    let admin = fresh.caller(&record).await.unwrap();
    let signed = token(&fresh, &admin).await;
    assert!(signed.is_ok(), "{signed:?}");
    // The old key (still in `core`) opens nothing any more.
    assert!(core.access_key(&access_key).await.is_err());
    assert!(token(&core, &a).await.is_err());

    // A second rotation by a core holding the wrong key changes nothing.
    let wrong = MasterKey::generate(&*ids);
    assert!(core.reseal(&wrong).await.is_err());
    assert!(fresh.access_key(&access_key).await.unwrap().is_some());
}
