//! The audit trail on the in-memory store: a change and its record in one transaction, a record
//! that cannot be written failing its call, lookups (filters, pages, accounts) and retention.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use podid_core::{
    AssumeRole, AuditQuery, Caller, Core, CreateRole, Ending, Error, MasterKey, Outcome, SeqIds,
};
use podid_store::{Item, MemoryStore, Op, Store, StoreError};
use podid_types::{FixedClock, Timestamp};

const TRUST_A: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"AccountA","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"sts:AssumeRole"}]}"#;

/// A memory store whose commits that carry an audit record fail while `broken` is set (a disk
/// that refuses the audit's writes), and which counts commits and, with `slow`, takes a
/// millisecond over each, as a disk's `fsync` does.
#[derive(Debug, Default)]
struct AuditBreaks {
    inner: MemoryStore,
    broken: AtomicBool,
    slow: AtomicBool,
    commits: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl Store for AuditBreaks {
    async fn get(&self, ns: &'static str, key: &str) -> Result<Option<Item>, StoreError> {
        self.inner.get(ns, key).await
    }

    async fn scan(
        &self,
        ns: &'static str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        self.inner.scan(ns, prefix, after, limit).await
    }

    async fn commit(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        self.commits.fetch_add(1, Ordering::SeqCst);
        if self.slow.load(Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        if self.broken.load(Ordering::SeqCst) && ops.iter().any(|op| op.target().0 == "audit") {
            return Err(StoreError::Unavailable("no space left on device".into()));
        }
        self.inner.commit(ops).await
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}

struct World {
    core: Core,
    store: Arc<AuditBreaks>,
    clock: Arc<FixedClock>,
    a: Caller,
    b: Caller,
}

async fn world() -> World {
    let store = Arc::new(AuditBreaks::default());
    let (core, clock, a, b) =
        common::two_accounts_on(store.clone(), 7, 1_760_000_000, |core| core).await;
    World {
        core,
        store,
        clock,
        a,
        b,
    }
}

impl World {
    /// CreateRole `name`, audited as the server audits it.
    async fn create_role(&self, caller: &Caller, name: &str) -> Result<(), Error> {
        let (caller, audit) = common::audited(
            &self.core,
            caller,
            "CreateRole",
            serde_json::json!({"RoleName": name}),
        );
        let result = self
            .core
            .iam()
            .create_role(
                &caller,
                CreateRole {
                    name: name.into(),
                    trust_policy: TRUST_A.into(),
                    ..Default::default()
                },
            )
            .await
            .map(|_| ());
        assert_eq!(
            audit.written(),
            result.is_ok(),
            "a change carries its record"
        );
        common::finish(&self.core, &audit, &caller, &result).await;
        result
    }

    async fn lookup(&self, caller: &Caller, query: AuditQuery) -> podid_core::AuditPage {
        self.core.audit().lookup(caller, &query).await.unwrap()
    }

    async fn audit_count(&self) -> usize {
        self.store
            .scan("audit", "", None, 10_000)
            .await
            .unwrap()
            .len()
    }
}

#[tokio::test]
async fn a_change_and_its_record_are_one_transaction() {
    let w = world().await;
    w.create_role(&w.a, "app").await.unwrap();
    let record = common::last_record(&w.core, &w.a).await;
    assert_eq!(record.event_name, "CreateRole");
    assert_eq!(record.outcome, Outcome::Success);
    assert_eq!(
        record.user_identity.as_ref().unwrap().arn.as_deref(),
        Some(w.a.arn())
    );
    assert!(
        record.reasons.iter().any(|r| r.starts_with("iam:CreateRole on arn:aws:iam::111122223333:role/app: allowed")),
        "{:?}",
        record.reasons
    );
    // The same name again: nothing changes, and the refusal has its own record.
    let again = w.create_role(&w.a, "app").await.unwrap_err();
    assert!(matches!(again, Error::EntityAlreadyExists(_)));
    let record = common::last_record(&w.core, &w.a).await;
    assert_eq!(record.outcome, Outcome::Failed);
    assert!(record.error_message.unwrap().contains("already exists"));
    assert_eq!(w.audit_count().await, 2);

    // While the audit cannot be written, the change is not made either.
    w.store.broken.store(true, Ordering::SeqCst);
    let (caller, _audit) = common::audited(&w.core, &w.a, "CreateRole", serde_json::Value::Null);
    let failed = w
        .core
        .iam()
        .create_role(
            &caller,
            CreateRole {
                name: "unrecorded".into(),
                trust_policy: TRUST_A.into(),
                ..Default::default()
            },
        )
        .await;
    assert!(
        matches!(failed, Err(Error::ServiceFailure(_))),
        "{failed:?}"
    );
    w.store.broken.store(false, Ordering::SeqCst);
    let missing = w.core.iam().get_role(&w.a, "unrecorded").await;
    assert!(
        matches!(missing, Err(Error::NoSuchEntity(_))),
        "{missing:?}"
    );
    assert_eq!(w.audit_count().await, 2);
}

#[tokio::test]
async fn credentials_whose_record_cannot_be_written_are_not_returned() {
    let w = world().await;
    w.create_role(&w.a, "app").await.unwrap();
    let user = w
        .core
        .iam()
        .create_user(
            &w.a,
            podid_core::CreateUser {
                name: "dev".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(user.name, "dev");
    let (caller, audit) = common::audited(&w.core, &w.a, "AssumeRole", serde_json::Value::Null);
    let assumed = w
        .core
        .sts()
        .assume_role(
            &caller,
            AssumeRole {
                role_arn: "arn:aws:iam::111122223333:role/app".into(),
                session_name: "s".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(!audit.written(), "an issuance changes nothing by itself");
    w.store.broken.store(true, Ordering::SeqCst);
    let response = serde_json::json!({"Credentials": {
        "AccessKeyId": assumed.credentials.access_key_id,
        "SecretAccessKey": assumed.credentials.secret_access_key.expose(),
    }});
    let finished = w
        .core
        .audit()
        .finish(&audit, Some(&caller), Ending::Success(Some(&response)))
        .await;
    assert!(
        matches!(finished, Err(Error::ServiceFailure(_))),
        "{finished:?}"
    );
    w.store.broken.store(false, Ordering::SeqCst);
    w.core
        .audit()
        .finish(&audit, Some(&caller), Ending::Success(Some(&response)))
        .await
        .unwrap();
    let record = common::last_record(&w.core, &w.a).await;
    assert_eq!(record.event_name, "AssumeRole");
    let text = serde_json::to_string(&record).unwrap();
    assert!(text.contains(&assumed.credentials.access_key_id));
    assert!(
        !text.contains(assumed.credentials.secret_access_key.expose().as_str()),
        "{text}"
    );
    assert!(
        record
            .reasons
            .iter()
            .any(|r| r.contains("`role trust policy` statement `AccountA`")),
        "{:?}",
        record.reasons
    );
}

#[tokio::test]
async fn lookups_filter_page_and_keep_to_the_callers_account() {
    let w = world().await;
    for i in 0..5 {
        w.create_role(&w.a, &format!("role-{i}")).await.unwrap();
        w.clock.advance_millis(1000);
    }
    let _ = w.create_role(&w.a, "role-0").await.unwrap_err();
    w.create_role(&w.b, "in-b").await.unwrap();

    // Pages of two cover the six records of account A, oldest first, each once.
    let mut names = Vec::new();
    let mut token = None;
    loop {
        let page = w
            .lookup(
                &w.a,
                AuditQuery {
                    max_results: 2,
                    next_token: token.clone(),
                    ..AuditQuery::default()
                },
            )
            .await;
        names.extend(page.records.iter().map(|r| r.outcome.as_str()));
        match page.next_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    assert_eq!(names.len(), 6, "{names:?}");
    assert_eq!(
        names.iter().filter(|n| **n == "failed").count(),
        1,
        "{names:?}"
    );

    let failed = w
        .lookup(
            &w.a,
            AuditQuery {
                outcome: Some(Outcome::Failed),
                max_results: 100,
                ..AuditQuery::default()
            },
        )
        .await;
    assert_eq!(failed.records.len(), 1);
    // A time range: the records of the second and third seconds.
    let start = Timestamp::from_secs(1_760_000_001);
    let ranged = w
        .lookup(
            &w.a,
            AuditQuery {
                start: Some(start),
                end: Some(Timestamp::from_millis(start.as_millis() + 1999)),
                max_results: 100,
                ..AuditQuery::default()
            },
        )
        .await;
    assert_eq!(ranged.records.len(), 2);
    // Account B sees its own record only; a principal filter that matches nothing finds nothing.
    let b = w
        .lookup(
            &w.b,
            AuditQuery {
                max_results: 100,
                ..AuditQuery::default()
            },
        )
        .await;
    assert_eq!(b.records.len(), 1);
    let none = w
        .lookup(
            &w.a,
            AuditQuery {
                principal: Some("user/nobody".into()),
                max_results: 100,
                ..AuditQuery::default()
            },
        )
        .await;
    assert!(none.records.is_empty());
    let bad = w
        .core
        .audit()
        .lookup(
            &w.a,
            &AuditQuery {
                next_token: Some("not-a-token".into()),
                max_results: 1,
                ..AuditQuery::default()
            },
        )
        .await;
    assert!(matches!(bad, Err(Error::InvalidParameter(_))), "{bad:?}");
}

#[tokio::test]
async fn retention_deletes_the_oldest_records() {
    let w = world().await;
    w.create_role(&w.a, "old").await.unwrap();
    w.clock.advance_millis(10 * 86_400_000);
    w.create_role(&w.a, "new").await.unwrap();
    let deleted = w.core.audit().prune(5 * 86_400_000).await.unwrap();
    assert_eq!(deleted, 1);
    assert_eq!(w.audit_count().await, 1);
    let record = common::last_record(&w.core, &w.a).await;
    assert_eq!(record.request_parameters["RoleName"], "new");
    assert_eq!(w.core.audit().prune(5 * 86_400_000).await.unwrap(), 0);
}

#[tokio::test]
async fn reading_the_trail_needs_podid_read_audit() {
    let w = world().await;
    let (caller, _) = common::audited(&w.core, &w.a, "CreateUser", serde_json::Value::Null);
    w.core
        .iam()
        .create_user(
            &caller,
            podid_core::CreateUser {
                name: "reader".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let key = w
        .core
        .iam()
        .create_access_key(&w.a, Some("reader"))
        .await
        .unwrap();
    let reader = w.core.caller(&key.record).await.unwrap();
    let denied = w.core.audit().lookup(&reader, &AuditQuery::default()).await;
    assert!(
        matches!(&denied, Err(Error::AccessDenied(m)) if m.contains("podid:ReadAudit")),
        "{denied:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_written_at_once_share_commits_and_each_is_durable() {
    let ids = Arc::new(SeqIds::new(11));
    let store = Arc::new(AuditBreaks::default());
    store.slow.store(true, Ordering::SeqCst);
    let core = Arc::new(Core::new(
        store.clone(),
        Arc::new(FixedClock::new(Timestamp::from_secs(1_760_000_000))),
        ids.clone(),
        MasterKey::generate(&*ids),
    ));
    let admin = Caller::root("111122223333".parse().unwrap());
    let before = store.commits.load(Ordering::SeqCst);
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..200 {
        let (core, admin) = (core.clone(), admin.clone());
        calls.spawn(async move {
            let (caller, audit) = common::audited(
                &core,
                &admin,
                "AssumeRole",
                serde_json::json!({"RoleSessionName": format!("s{i}")}),
            );
            core.audit()
                .finish(&audit, Some(&caller), Ending::Success(None))
                .await
        });
    }
    while let Some(done) = calls.join_next().await {
        done.unwrap().unwrap();
    }
    let commits = store.commits.load(Ordering::SeqCst) - before;
    assert!(
        commits < 200,
        "200 records in {commits} commits: none grouped"
    );
    let page = core
        .audit()
        .lookup(
            &admin,
            &AuditQuery {
                max_results: 1000,
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.records.len(), 200, "every record is there");
    println!("200 concurrent records in {commits} commits");
}

#[tokio::test]
async fn after_a_failed_group_the_next_records_are_written() {
    let w = world().await;
    w.store.broken.store(true, Ordering::SeqCst);
    let (caller, audit) = common::audited(&w.core, &w.a, "AssumeRole", serde_json::Value::Null);
    let failed = w
        .core
        .audit()
        .finish(&audit, Some(&caller), Ending::Success(None))
        .await;
    assert!(matches!(failed, Err(Error::ServiceFailure(_))));
    w.store.broken.store(false, Ordering::SeqCst);
    let (caller, audit) = common::audited(&w.core, &w.a, "AssumeRole", serde_json::Value::Null);
    w.core
        .audit()
        .finish(&audit, Some(&caller), Ending::Success(None))
        .await
        .unwrap();
}
