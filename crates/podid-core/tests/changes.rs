//! The change feed on the in-memory store: associations created, updated and deleted, and
//! policies of associated roles changed, each seen once by a reader of the cluster; commits that
//! land out of time order within the re-read window; a cursor too old; pruning.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

mod common;

use podid_core::eks::{ChangePage, CreateAssociation, REREAD_MS, RETENTION_MS, UpdateAssociation};
use podid_core::{Caller, Core, Entity, Error};
use podid_types::Timestamp;

const REGION: &str = "us-west-2";
const POD_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]}]}"#;
const START: i64 = 1_764_892_800;

async fn read(core: &Core, caller: &Caller, cluster: &str, cursor: Option<&str>) -> ChangePage {
    core.eks()
        .changes(caller, REGION, cluster, cursor)
        .await
        .unwrap()
}

fn seen(page: &ChangePage) -> Vec<(String, String, String)> {
    page.changes
        .iter()
        .map(|c| {
            (
                c.namespace.clone(),
                c.service_account.clone(),
                c.what.clone(),
            )
        })
        .collect()
}

async fn associate(core: &Core, caller: &Caller, cluster: &str, sa: &str, role: &str) -> String {
    core.eks()
        .create_association(
            caller,
            REGION,
            cluster,
            CreateAssociation {
                namespace: "default".into(),
                service_account: sa.into(),
                role_arn: format!("arn:aws:iam::111122223333:role/{role}"),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .id
}

/// Account A with the roles `roles` (trusting pods) and a cluster `prod`, and a first read
/// of prod's feed.
async fn prod_feed(
    seed: u64,
    roles: &[&str],
) -> (
    Core,
    std::sync::Arc<podid_types::FixedClock>,
    Caller,
    ChangePage,
) {
    let (core, clock, a, _) = common::two_accounts(seed, START).await;
    for role in roles {
        common::create_role(&core, &a, role, POD_TRUST).await;
    }
    common::local_clusters(&core, &a, REGION, &["prod"]).await;
    let start = read(&core, &a, "prod", None).await;
    (core, clock, a, start)
}

#[tokio::test]
async fn each_change_of_a_clusters_service_accounts_is_read_once() {
    let (core, clock, a, b) = common::two_accounts(3, START).await;
    for role in ["one", "two", "elsewhere"] {
        common::create_role(&core, &a, role, POD_TRUST).await;
    }
    common::local_clusters(&core, &a, REGION, &["prod", "dev"]).await;
    // A first read starts from now: nothing of the past.
    associate(&core, &a, "prod", "before", "one").await;
    let first = read(&core, &a, "prod", None).await;
    assert!(first.changes.is_empty() && !first.reset);

    clock.advance_millis(1000);
    let id = associate(&core, &a, "prod", "app", "one").await;
    associate(&core, &a, "dev", "other", "elsewhere").await;
    let page = read(&core, &a, "prod", Some(&first.cursor)).await;
    assert_eq!(
        seen(&page),
        vec![("default".into(), "app".into(), "association created".into())]
    );
    // Read again from the new cursor: nothing twice, though the window is read again.
    let again = read(&core, &a, "prod", Some(&page.cursor)).await;
    assert!(again.changes.is_empty(), "{again:?}");

    clock.advance_millis(1000);
    core.eks()
        .update_association(
            &a,
            REGION,
            "prod",
            &id,
            UpdateAssociation {
                role_arn: Some("arn:aws:iam::111122223333:role/two".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // A policy of the association's role, and of a role no association of prod uses (a later
    // millisecond: changes of one millisecond come in the order of their ids).
    clock.advance_millis(1);
    core.iam()
        .put_entity_policy(
            &a,
            Entity::Role,
            "two",
            "p",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#.into(),
        )
        .await
        .unwrap();
    core.iam()
        .update_assume_role_policy(&a, "elsewhere", POD_TRUST.into())
        .await
        .unwrap();
    let page = read(&core, &a, "prod", Some(&again.cursor)).await;
    assert_eq!(
        seen(&page),
        vec![
            ("default".into(), "app".into(), "association updated".into()),
            (
                "default".into(),
                "app".into(),
                "iam:PutRolePolicy (`arn:aws:iam::111122223333:role/two`)".into()
            ),
        ],
        "a change of `elsewhere`, which no association of prod uses, is not prod's"
    );
    clock.advance_millis(1000);
    core.eks()
        .delete_association(&a, REGION, "prod", &id)
        .await
        .unwrap();
    let page = read(&core, &a, "prod", Some(&page.cursor)).await;
    assert_eq!(
        seen(&page),
        vec![("default".into(), "app".into(), "association deleted".into())]
    );

    // Another account's reader cannot follow prod.
    let other = core
        .eks()
        .changes(&b, REGION, "prod", None)
        .await
        .unwrap_err();
    assert!(matches!(other, Error::ResourceNotFound(_)), "{other:?}");
    // A cursor that is not one is refused with the fix.
    let bad = core
        .eks()
        .changes(&a, REGION, "prod", Some("not-a-cursor"))
        .await
        .unwrap_err();
    assert!(
        matches!(&bad, Error::InvalidParameter(m) if m.contains("start again without one")),
        "{bad:?}"
    );
}

#[tokio::test]
async fn a_policy_change_of_an_associated_role_reaches_its_service_accounts() {
    let (core, clock, a, _) = common::two_accounts(4, START).await;
    common::create_role(&core, &a, "shared", POD_TRUST).await;
    common::create_role(&core, &a, "alone", POD_TRUST).await;
    common::local_clusters(&core, &a, REGION, &["prod"]).await;
    associate(&core, &a, "prod", "web", "shared").await;
    associate(&core, &a, "prod", "api", "shared").await;
    associate(&core, &a, "prod", "solo", "alone").await;
    let start = read(&core, &a, "prod", None).await;
    clock.advance_millis(10);
    core.iam()
        .update_assume_role_policy(&a, "shared", POD_TRUST.into())
        .await
        .unwrap();
    let page = read(&core, &a, "prod", Some(&start.cursor)).await;
    let mut accounts: Vec<String> = page
        .changes
        .iter()
        .map(|c| c.service_account.clone())
        .collect();
    accounts.sort();
    assert_eq!(accounts, ["api", "web"]);
    assert!(
        page.changes[0]
            .what
            .starts_with("iam:UpdateAssumeRolePolicy"),
        "{page:?}"
    );
    // Deleting the role is a change too.
    clock.advance_millis(10);
    core.iam().delete_role(&a, "alone").await.unwrap();
    let page = read(&core, &a, "prod", Some(&page.cursor)).await;
    assert_eq!(seen(&page)[0].1, "solo");
}

#[tokio::test]
async fn a_commit_that_lands_late_within_the_window_is_still_read() {
    let (core, clock, a, start) = prod_feed(5, &["role"]).await;
    clock.advance_millis(3000);
    associate(&core, &a, "prod", "now", "role").await;
    let page = read(&core, &a, "prod", Some(&start.cursor)).await;
    assert_eq!(seen(&page).len(), 1);
    // Another replica's commit, stamped 2 s before the newest change read, becomes visible
    // only now.
    clock.set(Timestamp::from_millis(START * 1000 + 1000));
    associate(&core, &a, "prod", "late", "role").await;
    let page = read(&core, &a, "prod", Some(&page.cursor)).await;
    assert_eq!(
        seen(&page),
        vec![(
            "default".into(),
            "late".into(),
            "association created".into()
        )]
    );
    const { assert!(REREAD_MS >= 2000) };
}

#[tokio::test]
async fn a_cursor_older_than_the_changes_kept_says_reset_and_old_changes_are_pruned() {
    let (core, clock, a, start) = prod_feed(6, &["role"]).await;
    associate(&core, &a, "prod", "app", "role").await;
    clock.advance_millis(RETENTION_MS + 1000);
    let page = read(&core, &a, "prod", Some(&start.cursor)).await;
    assert!(page.reset && page.changes.is_empty());
    // The reset's cursor carries on from now: the next read is an ordinary one.
    let next = read(&core, &a, "prod", Some(&page.cursor)).await;
    assert!(!next.reset && next.changes.is_empty(), "{next:?}");
    assert_eq!(core.prune_changes(1000).await.unwrap(), 1);
    assert_eq!(core.prune_changes(1000).await.unwrap(), 0);
}

#[tokio::test]
async fn a_quiet_feed_read_now_and_then_is_never_reset() {
    let (core, clock, a, mut page) = prod_feed(7, &["role"]).await;
    // Nothing changes for longer than the changes are kept, read every 20 minutes: each read
    // moves the cursor on, so none of them says `reset`.
    for _ in 0..4 {
        clock.advance_millis(RETENTION_MS / 3);
        page = read(&core, &a, "prod", Some(&page.cursor)).await;
        assert!(!page.reset && page.changes.is_empty(), "{page:?}");
    }
    clock.advance_millis(1000);
    associate(&core, &a, "prod", "app", "role").await;
    let page = read(&core, &a, "prod", Some(&page.cursor)).await;
    assert_eq!(seen(&page).len(), 1);
    assert!(!page.reset);
}

#[tokio::test]
async fn more_changes_in_one_window_than_a_page_are_all_read_once() {
    let (core, clock, a, start) = prod_feed(8, &["role"]).await;
    // 2,500 changes within 2.5 s: more than a page (500) and more than a cursor's ids
    // (500), all inside one re-read window. (Policy changes of the associated role: a
    // cluster holds at most 1,000 associations.)
    clock.advance_millis(1);
    associate(&core, &a, "prod", "app", "role").await;
    let start = read(&core, &a, "prod", Some(&start.cursor)).await;
    assert_eq!(seen(&start).len(), 1);
    const N: usize = 2500;
    for i in 0..N {
        clock.advance_millis(1);
        core.iam()
            .put_entity_policy(
                &a,
                Entity::Role,
                "role",
                "p",
                format!(r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"S{i}","Effect":"Allow","Action":"s3:*","Resource":"*"}}]}}"#),
            )
            .await
            .unwrap();
    }
    let mut cursor = start.cursor;
    let mut got: Vec<String> = Vec::new();
    for _ in 0..20 {
        let page = read(&core, &a, "prod", Some(&cursor)).await;
        assert!(!page.reset);
        cursor = page.cursor;
        if page.changes.is_empty() {
            break;
        }
        assert!(page.changes.len() <= 800, "{}", page.changes.len());
        got.extend(page.changes.into_iter().map(|c| c.id));
    }
    let distinct: std::collections::BTreeSet<&String> = got.iter().collect();
    assert_eq!(distinct.len(), N, "every change is read");
    assert_eq!(got.len(), N, "none twice");
    // And the feed goes on after the burst.
    clock.advance_millis(10);
    associate(&core, &a, "prod", "after", "role").await;
    let page = read(&core, &a, "prod", Some(&cursor)).await;
    assert_eq!(seen(&page).len(), 1, "{page:?}");
}

#[tokio::test]
async fn a_forged_cursor_is_refused_or_starts_afresh_never_a_panic() {
    use base64::Engine as _;
    let (core, _clock, a, _) = common::two_accounts(9, START).await;
    common::local_clusters(&core, &a, REGION, &["prod"]).await;
    let token = |json: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    // A time before the epoch or past the keys' 13 digits is not one the server gave.
    for t in [i64::MIN, -1, 10_000_000_000_000, i64::MAX] {
        let err = core
            .eks()
            .changes(
                &a,
                REGION,
                "prod",
                Some(&token(&format!(r#"{{"t":{t},"ids":[]}}"#))),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidParameter(_)), "{t}: {err:?}");
    }
    let page = read(&core, &a, "prod", Some(&token(r#"{"t":0,"ids":[]}"#))).await;
    assert!(page.reset, "{page:?}");
    let ids: Vec<String> = (0..501).map(|i| format!("\"{i}\"")).collect();
    let many = token(&format!(r#"{{"t":0,"ids":[{}]}}"#, ids.join(",")));
    let err = core
        .eks()
        .changes(&a, REGION, "prod", Some(&many))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidParameter(_)), "{err:?}");
}

#[tokio::test]
async fn more_changes_than_an_answer_lists_are_a_reset() {
    let (core, clock, a, _) = common::two_accounts(10, START).await;
    common::create_role(&core, &a, "shared", POD_TRUST).await;
    common::local_clusters(&core, &a, REGION, &["prod"]).await;
    for i in 0..801 {
        associate(&core, &a, "prod", &format!("sa-{i}"), "shared").await;
    }
    let start = read(&core, &a, "prod", None).await;
    assert!(
        start.changes.is_empty() && !start.reset,
        "the past is not read"
    );
    // One policy change of a role that 801 service accounts use: more than an answer lists
    // (800), so the reader is told to drop everything.
    clock.advance_millis(10);
    core.iam()
        .update_assume_role_policy(&a, "shared", POD_TRUST.into())
        .await
        .unwrap();
    let page = read(&core, &a, "prod", Some(&start.cursor)).await;
    assert!(
        page.reset && page.changes.is_empty(),
        "{}",
        page.changes.len()
    );
    // The feed goes on.
    clock.advance_millis(10);
    associate(&core, &a, "prod", "after", "shared").await;
    let page = read(&core, &a, "prod", Some(&page.cursor)).await;
    assert!(!page.reset);
    assert_eq!(seen(&page).len(), 1, "{page:?}");
}
