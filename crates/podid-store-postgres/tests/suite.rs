//! The storage conformance suite on PostgreSQL. The database comes from
//! `PODID_TEST_DATABASE_URL`; each run works in a fresh schema of its own, dropped at the end.
//! Without the variable the test does nothing; `scripts/test` prints `SKIPPED: postgres` then.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

use std::sync::Arc;

use podid_store::{Op, Store};
use podid_store_postgres::PostgresStore;

/// A fresh schema on the test database, and a URL that works in it.
async fn fresh_schema() -> Option<(String, String, tokio_postgres::Client)> {
    let url = std::env::var("PODID_TEST_DATABASE_URL").ok()?;
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!("PODID_TEST_DATABASE_URL is set but the database cannot be reached: {e}")
        });
    tokio::spawn(connection);
    let schema = format!(
        "podid_test_{}_{}",
        std::process::id(),
        std::time::SystemTime::UNIX_EPOCH
            .elapsed()
            .unwrap()
            .as_nanos()
    );
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    let separator = if url.contains('?') { '&' } else { '?' };
    let scoped = format!("{url}{separator}options=-csearch_path%3D{schema}");
    Some((scoped, schema, client))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_conformance_suite() {
    let Some((url, schema, admin)) = fresh_schema().await else {
        eprintln!("SKIPPED: postgres (set PODID_TEST_DATABASE_URL)");
        return;
    };
    let store = PostgresStore::connect(&url, 8).await.unwrap();
    podid_store::suite::run(Arc::new(store)).await;
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_database_share_data() {
    let Some((url, schema, admin)) = fresh_schema().await else {
        eprintln!("SKIPPED: postgres (set PODID_TEST_DATABASE_URL)");
        return;
    };
    let (a, b) = tokio::join!(
        PostgresStore::connect(&url, 2),
        PostgresStore::connect(&url, 2)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    a.commit(vec![Op::create("ns", "k", "from a")])
        .await
        .unwrap();
    assert_eq!(b.get("ns", "k").await.unwrap().unwrap().value, "from a");
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_unreachable_database_is_a_clear_error() {
    let err = PostgresStore::connect("postgres://podid:secret@127.0.0.1:1/none", 1)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("storage is unavailable"), "{text}");
    assert!(!text.contains("secret"), "{text}");
    let err = PostgresStore::connect("mysql://nope", 1)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not a PostgreSQL URL"), "{err}");
}
