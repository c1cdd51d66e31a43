//! The conformance suite: every backend runs `run` against a fresh, empty store of its own.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test suite fails loudly"
)]

use std::sync::Arc;

use crate::{Condition, Op, Store, StoreError};

const NS: &str = "suite";
const OTHER: &str = "suite-other";

/// Runs every check against `store`, which must be empty. Panics with the name of the first check
/// that fails.
pub async fn run(store: Arc<dyn Store>) {
    create_get_and_versions(&*store).await;
    conditions(&*store).await;
    batches_are_atomic(&*store).await;
    operations_see_earlier_ones_of_their_batch(&*store).await;
    scans(&*store).await;
    values_and_keys_of_every_kind(&*store).await;
    concurrent_writers(store.clone()).await;
}

async fn create_get_and_versions(store: &dyn Store) {
    assert_eq!(store.get(NS, "a").await.unwrap(), None, "absent key");
    store.commit(vec![Op::create(NS, "a", "1")]).await.unwrap();
    let a = store.get(NS, "a").await.unwrap().expect("created key");
    assert_eq!((a.key.as_str(), a.version, a.value.as_str()), ("a", 1, "1"));
    store
        .commit(vec![Op::update(NS, "a", "2", 1)])
        .await
        .unwrap();
    assert_eq!(
        store.get(NS, "a").await.unwrap().unwrap().version,
        2,
        "update bumps the version"
    );
    store.commit(vec![Op::upsert(NS, "a", "3")]).await.unwrap();
    let a = store.get(NS, "a").await.unwrap().unwrap();
    assert_eq!(
        (a.version, a.value.as_str()),
        (3, "3"),
        "upsert bumps the version"
    );
    store
        .commit(vec![Op::upsert(NS, "fresh", "x")])
        .await
        .unwrap();
    assert_eq!(
        store.get(NS, "fresh").await.unwrap().unwrap().version,
        1,
        "upsert creates at 1"
    );
    // Namespaces are separate.
    assert_eq!(
        store.get(OTHER, "a").await.unwrap(),
        None,
        "namespaces are separate"
    );
    store
        .commit(vec![Op::delete(NS, "a", 3), Op::delete(NS, "fresh", 1)])
        .await
        .unwrap();
    assert_eq!(store.get(NS, "a").await.unwrap(), None, "deleted");
}

async fn conditions(store: &dyn Store) {
    store.commit(vec![Op::create(NS, "c", "v")]).await.unwrap();
    let conflict = store
        .commit(vec![Op::create(NS, "c", "again")])
        .await
        .unwrap_err();
    assert!(
        matches!(
            conflict,
            StoreError::Conflict {
                index: 0,
                condition: Condition::Absent,
                ..
            }
        ),
        "create over existing: {conflict:?}"
    );
    let stale = store
        .commit(vec![Op::update(NS, "c", "w", 7)])
        .await
        .unwrap_err();
    assert!(
        matches!(
            stale,
            StoreError::Conflict {
                condition: Condition::Version(7),
                ..
            }
        ),
        "stale update: {stale:?}"
    );
    assert_eq!(
        store.get(NS, "c").await.unwrap().unwrap().value,
        "v",
        "a failed update writes nothing"
    );
    let check = |condition| Op::Check {
        ns: NS,
        key: "c".into(),
        condition,
    };
    store
        .commit(vec![
            check(Condition::Exists),
            check(Condition::Version(1)),
            check(Condition::Any),
        ])
        .await
        .unwrap();
    assert!(
        store.commit(vec![check(Condition::Absent)]).await.is_err(),
        "check absent on an existing key"
    );
    let missing = |condition| Op::Check {
        ns: NS,
        key: "nope".into(),
        condition,
    };
    store
        .commit(vec![missing(Condition::Absent)])
        .await
        .unwrap();
    assert!(
        store
            .commit(vec![missing(Condition::Exists)])
            .await
            .is_err(),
        "check exists on a missing key"
    );
    // Deleting a missing key with `Any` is fine; with a version it is a conflict.
    store
        .commit(vec![Op::Delete {
            ns: NS,
            key: "nope".into(),
            condition: Condition::Any,
        }])
        .await
        .unwrap();
    assert!(
        store.commit(vec![Op::delete(NS, "nope", 1)]).await.is_err(),
        "delete a missing key at a version"
    );
    store.commit(vec![Op::delete(NS, "c", 1)]).await.unwrap();
}

async fn batches_are_atomic(store: &dyn Store) {
    store
        .commit(vec![Op::create(NS, "b2", "existing")])
        .await
        .unwrap();
    let err = store
        .commit(vec![
            Op::create(NS, "b1", "new"),
            Op::upsert(NS, "b3", "x"),
            Op::create(NS, "b2", "clash"),
        ])
        .await
        .unwrap_err();
    match err {
        StoreError::Conflict { index, ns, key, .. } => assert_eq!(
            (index, ns, key.as_str()),
            (2, NS, "b2"),
            "the failing operation is named"
        ),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        store.get(NS, "b1").await.unwrap(),
        None,
        "nothing of a failed batch is written"
    );
    assert_eq!(
        store.get(NS, "b3").await.unwrap(),
        None,
        "nothing of a failed batch is written"
    );
    assert_eq!(
        store.get(NS, "b2").await.unwrap().unwrap().value,
        "existing"
    );
    store.commit(vec![Op::delete(NS, "b2", 1)]).await.unwrap();
    // An empty batch is fine.
    store.commit(Vec::new()).await.unwrap();
}

async fn operations_see_earlier_ones_of_their_batch(store: &dyn Store) {
    store
        .commit(vec![
            Op::create(NS, "seq", "1"),
            Op::update(NS, "seq", "2", 1),
            Op::Check {
                ns: NS,
                key: "seq".into(),
                condition: Condition::Version(2),
            },
            Op::create(NS, "gone", "x"),
            Op::delete(NS, "gone", 1),
            Op::Check {
                ns: NS,
                key: "gone".into(),
                condition: Condition::Absent,
            },
        ])
        .await
        .unwrap();
    let seq = store.get(NS, "seq").await.unwrap().unwrap();
    assert_eq!(
        (seq.version, seq.value.as_str()),
        (2, "2"),
        "later operations see earlier ones"
    );
    assert_eq!(store.get(NS, "gone").await.unwrap(), None);
    store.commit(vec![Op::delete(NS, "seq", 2)]).await.unwrap();
}

async fn scans(store: &dyn Store) {
    let keys = [
        "acct1/role/b",
        "acct1/role/a",
        "acct1/role/B",
        "acct1/role%/x",
        "acct1/role_/y",
        "acct10/role/z",
        "acct2/role/a",
    ];
    store
        .commit(
            keys.iter()
                .map(|k| Op::create(NS, *k, format!("v:{k}")))
                .collect(),
        )
        .await
        .unwrap();
    store
        .commit(vec![Op::create(OTHER, "acct1/role/a", "other")])
        .await
        .unwrap();
    let scan = |prefix: &'static str, after: Option<&'static str>, limit| async move {
        store
            .scan(NS, prefix, after, limit)
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.key)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        scan("acct1/role/", None, 10).await,
        ["acct1/role/B", "acct1/role/a", "acct1/role/b"],
        "byte order, prefix only"
    );
    assert_eq!(
        scan("acct1/role/", Some("acct1/role/B"), 10).await,
        ["acct1/role/a", "acct1/role/b"],
        "after a key"
    );
    assert_eq!(
        scan("acct1/role/", None, 2).await,
        ["acct1/role/B", "acct1/role/a"],
        "limit"
    );
    assert_eq!(
        scan("acct1/role%", None, 10).await,
        ["acct1/role%/x"],
        "% is not a wildcard"
    );
    assert_eq!(
        scan("acct1/role_", None, 10).await,
        ["acct1/role_/y"],
        "_ is not a wildcard"
    );
    assert_eq!(scan("acct1", None, 10).await.len(), 6, "acct1 and acct10");
    assert_eq!(scan("acct1/", None, 10).await.len(), 5);
    assert_eq!(
        scan("", None, 100).await.len(),
        7,
        "everything in the namespace"
    );
    assert_eq!(
        scan("acct1/role/", Some("zzz"), 10).await,
        Vec::<String>::new(),
        "after the end"
    );
    assert_eq!(
        scan("acct1/role/", Some("a"), 10).await.len(),
        3,
        "after a key before the prefix"
    );
    let items = store.scan(NS, "acct2/", None, 10).await.unwrap();
    assert_eq!(
        (items[0].version, items[0].value.as_str()),
        (1, "v:acct2/role/a"),
        "scan returns values and versions"
    );
    let mut ops = Vec::new();
    for item in store.scan(NS, "", None, 100).await.unwrap() {
        ops.push(Op::delete(NS, item.key, item.version));
    }
    store.commit(ops).await.unwrap();
    store
        .commit(vec![Op::delete(OTHER, "acct1/role/a", 1)])
        .await
        .unwrap();
}

async fn values_and_keys_of_every_kind(store: &dyn Store) {
    let big = "x".repeat(200_000);
    let unicode = "ключ/値/🔑";
    let value = "{\"quote\":\"\\\"\",\"nul-free\":\"tab\\t\",\"é\":\"ü\"}";
    store
        .commit(vec![
            Op::create(NS, "big", big.clone()),
            Op::create(NS, unicode, value),
            Op::create(NS, "empty", ""),
        ])
        .await
        .unwrap();
    assert_eq!(store.get(NS, "big").await.unwrap().unwrap().value, big);
    assert_eq!(store.get(NS, unicode).await.unwrap().unwrap().value, value);
    assert_eq!(store.get(NS, "empty").await.unwrap().unwrap().value, "");
    assert_eq!(
        store.scan(NS, "ключ/", None, 10).await.unwrap().len(),
        1,
        "scan by a non-ASCII prefix"
    );
    store
        .commit(vec![
            Op::delete(NS, "big", 1),
            Op::delete(NS, unicode, 1),
            Op::delete(NS, "empty", 1),
        ])
        .await
        .unwrap();
}

async fn concurrent_writers(store: Arc<dyn Store>) {
    // Many tasks race to bump one counter with compare-and-set; no update may be lost.
    store
        .commit(vec![Op::create(NS, "counter", "0")])
        .await
        .unwrap();
    let tasks = 8;
    let bumps = 25;
    let mut handles = Vec::new();
    for t in 0..tasks {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..bumps {
                loop {
                    let current = store.get(NS, "counter").await.unwrap().unwrap();
                    let n: u64 = current.value.parse().unwrap();
                    let ops = vec![
                        Op::update(NS, "counter", (n + 1).to_string(), current.version),
                        Op::create(NS, format!("task/{t}/{i}"), "done"),
                    ];
                    match store.commit(ops).await {
                        Ok(()) => break,
                        Err(StoreError::Conflict { .. }) => continue,
                        Err(e) => panic!("concurrent commit failed: {e}"),
                    }
                }
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let counter = store.get(NS, "counter").await.unwrap().unwrap();
    assert_eq!(
        counter.value,
        (tasks * bumps).to_string(),
        "no lost updates"
    );
    assert_eq!(counter.version, tasks * bumps + 1);
    assert_eq!(
        store.scan(NS, "task/", None, 1000).await.unwrap().len() as u64,
        tasks * bumps,
        "every task's write"
    );
}
