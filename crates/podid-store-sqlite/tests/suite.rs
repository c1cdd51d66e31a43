//! The storage conformance suite on SQLite, and durability across reopening.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::sync::Arc;

use podid_store::{Op, Store};
use podid_store_sqlite::SqliteStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("podid.db")).unwrap();
    podid_store::suite::run(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("podid.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        store
            .commit(vec![Op::create("ns", "k", "v")])
            .await
            .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.get("ns", "k").await.unwrap().unwrap().value, "v");
}

#[test]
fn a_newer_schema_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("podid.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = SqliteStore::open(&path).unwrap_err().to_string();
    assert!(err.contains("newer than this podid understands"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_1_file_is_migrated_with_its_items_and_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("podid.db");
    {
        // Schema 1 exactly as earlier releases wrote it.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE kv (
                 ns TEXT NOT NULL,
                 key TEXT NOT NULL,
                 version INTEGER NOT NULL,
                 value TEXT NOT NULL,
                 PRIMARY KEY (ns, key)
             ) WITHOUT ROWID;
             PRAGMA user_version = 1;
             INSERT INTO kv VALUES ('role', 'a/x', 3, 'three');
             INSERT INTO kv VALUES ('role', 'a/y', 1, 'one');
             INSERT INTO kv VALUES ('audit', '0000000000001/r', 1, 'big');",
        )
        .unwrap();
        let big = "x".repeat(5000);
        conn.execute("UPDATE kv SET value = ?1 WHERE ns = 'audit'", [&big])
            .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let x = store.get("role", "a/x").await.unwrap().unwrap();
    assert_eq!((x.version, x.value.as_str()), (3, "three"));
    let keys: Vec<_> = store
        .scan("role", "a/", None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|item| item.key)
        .collect();
    assert_eq!(keys, ["a/x", "a/y"]);
    assert_eq!(
        store
            .get("audit", "0000000000001/r")
            .await
            .unwrap()
            .unwrap()
            .value
            .len(),
        5000
    );
    // Versions go on from where they were, and conditions hold against them.
    store
        .commit(vec![Op::update("role", "a/x", "four", 3)])
        .await
        .unwrap();
    assert_eq!(store.get("role", "a/x").await.unwrap().unwrap().version, 4);
    assert!(
        store
            .commit(vec![Op::create("role", "a/y", "again")])
            .await
            .is_err()
    );
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, 2);
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(tables, ["kv"]);
}

#[test]
fn a_file_that_is_not_a_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("podid.db");
    std::fs::write(&path, vec![b'x'; 4096]).unwrap();
    let err = SqliteStore::open(&path).unwrap_err().to_string();
    assert!(err.contains("podid.db"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_store_on_the_same_file_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("podid.db");
    let first = SqliteStore::open(&path).unwrap();
    // Reads are cached in memory: a second writer would leave them stale, so there is none.
    let err = SqliteStore::open(&path).unwrap_err().to_string();
    assert!(
        err.contains("in use by another podid server") && err.contains("--data-dir"),
        "{err}"
    );
    first
        .commit(vec![Op::create("ns", "k", "v")])
        .await
        .unwrap();
    assert_eq!(first.get("ns", "k").await.unwrap().unwrap().version, 1);
    first
        .commit(vec![Op::upsert("ns", "k", "w")])
        .await
        .unwrap();
    // The cached read of version 1 is gone once the write is acknowledged.
    let item = first.get("ns", "k").await.unwrap().unwrap();
    assert_eq!((item.version, item.value.as_str()), (2, "w"));
    drop(first);
    let second = SqliteStore::open(&path).unwrap();
    assert_eq!(second.get("ns", "k").await.unwrap().unwrap().value, "w");
}
