//! The IAM domain on the in-memory store: entities, their rules and texts, and authorization.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

mod common;

use std::sync::Arc;

use podid_core::{
    Caller, Core, CreatePolicy, CreateRole, CreateUser, Entity, Error, ListPolicies, MasterKey,
    PageRequest, SeqIds, SimulateInput, Tag,
};
use podid_store::MemoryStore;
use podid_types::{FixedClock, Timestamp};

const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]}]}"#;
const S3_READ: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;
const ADMIN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";

async fn core() -> (Core, Caller) {
    let (core, _, admin, _) = common::two_accounts(42, 1_763_800_000).await;
    (core, admin)
}

fn role(name: &str) -> CreateRole {
    CreateRole {
        name: name.into(),
        trust_policy: TRUST.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn bootstrap_runs_once() {
    let (core, _) = core().await;
    let again = core
        .bootstrap(&["111122223333".parse().unwrap()])
        .await
        .unwrap();
    assert!(again.keys.is_empty(), "a second bootstrap does nothing");
    assert_eq!(
        core.accounts().await.unwrap(),
        ["111122223333", "444455556666"]
    );
}

/// A store that lets other tasks run before each call, so that concurrent callers interleave
/// (the in-memory store alone answers at once).
#[derive(Debug)]
struct Interleaving(MemoryStore);

#[async_trait::async_trait]
impl podid_store::Store for Interleaving {
    async fn get(
        &self,
        ns: &'static str,
        key: &str,
    ) -> Result<Option<podid_store::Item>, podid_store::StoreError> {
        tokio::task::yield_now().await;
        self.0.get(ns, key).await
    }

    async fn scan(
        &self,
        ns: &'static str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<podid_store::Item>, podid_store::StoreError> {
        tokio::task::yield_now().await;
        self.0.scan(ns, prefix, after, limit).await
    }

    async fn commit(&self, ops: Vec<podid_store::Op>) -> Result<(), podid_store::StoreError> {
        tokio::task::yield_now().await;
        self.0.commit(ops).await
    }

    fn backend(&self) -> &'static str {
        "interleaving"
    }
}

#[tokio::test]
async fn replicas_racing_to_bootstrap_one_store_make_one_set_of_accounts() {
    // Both replicas find the store empty before either commits; one commit wins.
    let store: Arc<dyn podid_store::Store> = Arc::new(Interleaving(MemoryStore::new()));
    let ids = Arc::new(SeqIds::new(7));
    let master = MasterKey::generate(&*ids);
    let clock = Arc::new(FixedClock::new(Timestamp::from_secs(1_763_800_000)));
    let replica = |seed| {
        Core::new(
            store.clone(),
            clock.clone(),
            Arc::new(SeqIds::new(seed)),
            master.clone(),
        )
    };
    let (one, two) = (replica(1), replica(2));
    let accounts = ["111122223333".parse().unwrap()];
    let (a, b) = tokio::join!(one.bootstrap(&accounts), two.bootstrap(&accounts));
    let made: Vec<_> = [a.unwrap(), b.unwrap()]
        .into_iter()
        .flat_map(|b| b.keys)
        .collect();
    assert_eq!(made.len(), 1, "exactly one replica bootstraps");
    // Both replicas read back the key that won, with its secret.
    for core in [&one, &two] {
        let keys = core.admin_keys().await.unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].access_key_id, made[0].access_key_id);
        assert_eq!(
            keys[0].secret_access_key.expose(),
            made[0].secret_access_key.expose()
        );
    }
    let user = one
        .caller(
            &one.access_key(&made[0].access_key_id)
                .await
                .unwrap()
                .unwrap()
                .0,
        )
        .await
        .unwrap();
    assert_eq!(user.arn(), "arn:aws:iam::111122223333:user/admin");
}

#[tokio::test]
async fn admin_keys_leave_out_accounts_whose_admin_has_no_key() {
    let (core, admin) = core().await;
    let keys = core.admin_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    core.iam()
        .delete_access_key(&admin, None, &keys[0].access_key_id)
        .await
        .unwrap();
    let left = core.admin_keys().await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].account.to_string(), "444455556666");
}

#[tokio::test]
async fn role_lifecycle_and_texts() {
    let (core, admin) = core().await;
    let created = core
        .iam()
        .create_role(
            &admin,
            CreateRole {
                path: Some("/team/".into()),
                tags: vec![Tag {
                    key: "env".into(),
                    value: "prod".into(),
                }],
                ..role("App")
            },
        )
        .await
        .unwrap();
    assert_eq!(created.arn, "arn:aws:iam::111122223333:role/team/App");
    assert!(created.id.starts_with("AROA") && created.id.len() == 21);
    assert_eq!(created.max_session_duration, 3600);
    // Names are unique case-insensitively.
    let dup = core
        .iam()
        .create_role(&admin, role("app"))
        .await
        .unwrap_err();
    assert_eq!(
        dup,
        Error::EntityAlreadyExists("Role with name app already exists.".into())
    );
    assert_eq!(
        core.iam().get_role(&admin, "APP").await.unwrap().name,
        "App"
    );
    assert_eq!(
        core.iam().get_role(&admin, "nope").await.unwrap_err(),
        Error::NoSuchEntity("The role with name nope cannot be found.".into())
    );
    // Inline and attached policies block deletion.
    core.iam()
        .put_entity_policy(&admin, Entity::Role, "App", "read", S3_READ.into())
        .await
        .unwrap();
    core.iam()
        .attach_entity_policy(&admin, Entity::Role, "App", ADMIN)
        .await
        .unwrap();
    core.iam()
        .attach_entity_policy(&admin, Entity::Role, "App", ADMIN)
        .await
        .unwrap();
    let attached = core
        .iam()
        .list_attached_entity_policies(&admin, Entity::Role, "App", None, &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(attached.items.len(), 1, "attaching twice is once");
    assert_eq!(
        core.iam().delete_role(&admin, "App").await.unwrap_err(),
        Error::DeleteConflict("Cannot delete entity, must detach all policies first.".into())
    );
    core.iam()
        .detach_entity_policy(&admin, Entity::Role, "App", ADMIN)
        .await
        .unwrap();
    assert_eq!(
        core.iam()
            .detach_entity_policy(&admin, Entity::Role, "App", ADMIN)
            .await
            .unwrap_err(),
        Error::NoSuchEntity(format!("Policy {ADMIN} was not found."))
    );
    assert_eq!(
        core.iam().delete_role(&admin, "App").await.unwrap_err(),
        Error::DeleteConflict("Cannot delete entity, must delete policies first.".into())
    );
    assert_eq!(
        core.iam()
            .get_entity_policy(&admin, Entity::Role, "App", "read")
            .await
            .unwrap(),
        S3_READ
    );
    core.iam()
        .delete_entity_policy(&admin, Entity::Role, "App", "read")
        .await
        .unwrap();
    assert_eq!(
        core.iam()
            .get_entity_policy(&admin, Entity::Role, "App", "read")
            .await
            .unwrap_err(),
        Error::NoSuchEntity("The role policy with name read cannot be found.".into())
    );
    core.iam().delete_role(&admin, "App").await.unwrap();
    assert!(core.iam().get_role(&admin, "App").await.is_err());
}

#[tokio::test]
async fn documents_are_validated_with_aws_texts() {
    let (core, admin) = core().await;
    let err = core
        .iam().create_role(&admin, CreateRole { trust_policy: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole","Resource":"*"}]}"#.into(), ..role("r") })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::MalformedPolicy { code: "MalformedPolicyDocument", message, .. } if message == "Has prohibited field Resource"),
        "{err:?}"
    );
    core.iam().create_role(&admin, role("r")).await.unwrap();
    let err = core
        .iam()
        .put_entity_policy(&admin, Entity::Role, "r", "p", "{}".into())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::MalformedPolicy { .. }));
    // PutRolePolicy on a missing role: the role error comes first.
    let err = core
        .iam()
        .put_entity_policy(&admin, Entity::Role, "missing", "p", "{}".into())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        Error::NoSuchEntity("The role with name missing cannot be found.".into())
    );
    // The aggregate inline size of a role is 10,240.
    let statement = r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::a-bucket-with-a-rather-long-name-for-size/*"}"#;
    let big = format!(
        r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
        vec![statement; 50].join(",")
    );
    core.iam()
        .put_entity_policy(&admin, Entity::Role, "r", "one", big.clone())
        .await
        .unwrap();
    let err = core
        .iam()
        .put_entity_policy(&admin, Entity::Role, "r", "two", big)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        Error::LimitExceeded("Maximum policy size of 10240 bytes exceeded for role r".into())
    );
}

#[tokio::test]
async fn trust_principals_are_bound_to_unique_ids() {
    let (core, admin) = core().await;
    let deployer = core
        .iam()
        .create_role(&admin, role("deployer"))
        .await
        .unwrap();
    let trust = |arn: &str| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{arn}"}},"Action":"sts:AssumeRole"}}]}}"#
        )
    };
    let target = core
        .iam()
        .create_role(
            &admin,
            CreateRole {
                trust_policy: trust(&deployer.arn),
                ..role("target")
            },
        )
        .await
        .unwrap();
    assert_eq!(target.trust_bindings.get(&deployer.arn), Some(&deployer.id));
    // A principal in a hosted account must exist.
    let err = core
        .iam()
        .create_role(
            &admin,
            CreateRole {
                trust_policy: trust("arn:aws:iam::111122223333:role/ghost"),
                ..role("t2")
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::MalformedPolicy { message, .. } if message == r#"Invalid principal in policy: "AWS":"arn:aws:iam::111122223333:role/ghost""#),
        "{err:?}"
    );
    // One in an account podid does not host is kept as an ARN.
    let outside = core
        .iam()
        .create_role(
            &admin,
            CreateRole {
                trust_policy: trust("arn:aws:iam::999999999999:role/x"),
                ..role("t3")
            },
        )
        .await
        .unwrap();
    assert!(outside.trust_bindings.is_empty());
}

#[tokio::test]
async fn managed_policies_versions_and_deletion() {
    let (core, admin) = core().await;
    let policy = core
        .iam()
        .create_policy(
            &admin,
            CreatePolicy {
                name: "read".into(),
                document: S3_READ.into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(policy.arn, "arn:aws:iam::111122223333:policy/read");
    assert_eq!(policy.default_version, "v1");
    let dup = core
        .iam()
        .create_policy(
            &admin,
            CreatePolicy {
                name: "READ".into(),
                document: S3_READ.into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        dup,
        Error::EntityAlreadyExists(
            "A policy called READ already exists. Duplicate names are not allowed.".into()
        )
    );
    for _ in 0..4 {
        core.iam()
            .create_policy_version(&admin, &policy.arn, S3_READ.into(), true)
            .await
            .unwrap();
    }
    let sixth = core
        .iam()
        .create_policy_version(&admin, &policy.arn, S3_READ.into(), false)
        .await
        .unwrap_err();
    assert!(
        matches!(sixth, Error::LimitExceeded(m) if m.starts_with("A managed policy can have up to 5 versions."))
    );
    assert_eq!(
        core.iam()
            .get_policy(&admin, &policy.arn)
            .await
            .unwrap()
            .default_version,
        "v5"
    );
    assert_eq!(
        core.iam()
            .delete_policy_version(&admin, &policy.arn, "v5")
            .await
            .unwrap_err(),
        Error::DeleteConflict("Cannot delete the default version of a policy.".into())
    );
    let versions = core
        .iam()
        .list_policy_versions(&admin, &policy.arn, &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(
        versions
            .items
            .iter()
            .map(|(v, _)| v.id.as_str())
            .collect::<Vec<_>>(),
        ["v5", "v4", "v3", "v2", "v1"]
    );
    assert!(
        matches!(core.iam().delete_policy(&admin, &policy.arn).await.unwrap_err(), Error::DeleteConflict(m) if m.starts_with("This policy has more than one version."))
    );
    for v in ["v1", "v2", "v3", "v4"] {
        core.iam()
            .delete_policy_version(&admin, &policy.arn, v)
            .await
            .unwrap();
    }
    core.iam()
        .create_role(&admin, role("holder"))
        .await
        .unwrap();
    core.iam()
        .attach_entity_policy(&admin, Entity::Role, "holder", &policy.arn)
        .await
        .unwrap();
    assert_eq!(
        core.iam()
            .get_policy(&admin, &policy.arn)
            .await
            .unwrap()
            .attachment_count,
        1
    );
    assert_eq!(
        core.iam()
            .delete_policy(&admin, &policy.arn)
            .await
            .unwrap_err(),
        Error::DeleteConflict("Cannot delete a policy attached to entities.".into())
    );
    core.iam()
        .detach_entity_policy(&admin, Entity::Role, "holder", &policy.arn)
        .await
        .unwrap();
    core.iam().delete_policy(&admin, &policy.arn).await.unwrap();
    assert_eq!(
        core.iam()
            .attach_entity_policy(&admin, Entity::Role, "holder", &policy.arn)
            .await
            .unwrap_err(),
        Error::NoSuchEntity(format!(
            "Policy {} does not exist or is not attachable.",
            policy.arn
        ))
    );
    // AWS policies are listed, and cannot be changed.
    let all = core
        .iam()
        .list_policies(
            &admin,
            &ListPolicies {
                scope: Some("AWS".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(all.items.iter().any(|p| p.arn == ADMIN));
    assert!(
        core.iam()
            .create_policy_version(&admin, ADMIN, S3_READ.into(), true)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn every_call_is_authorized_with_aws_texts() {
    let (core, admin) = core().await;
    core.iam()
        .create_user(
            &admin,
            CreateUser {
                name: "dev".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let key = core
        .iam()
        .create_access_key(&admin, Some("dev"))
        .await
        .unwrap();
    let dev = core.caller(&key.record).await.unwrap();
    let err = core.iam().create_role(&dev, role("x")).await.unwrap_err();
    assert_eq!(
        err,
        Error::AccessDenied(
            "User: arn:aws:iam::111122223333:user/dev is not authorized to perform: iam:CreateRole on resource: arn:aws:iam::111122223333:role/x because no identity-based policy allows the iam:CreateRole action".into()
        )
    );
    core.iam().put_entity_policy(&admin, Entity::User, "dev", "roles", r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:*Role*","Resource":"arn:aws:iam::111122223333:role/dev-*"}]}"#.into())
        .await
        .unwrap();
    let dev = core.caller(&key.record).await.unwrap();
    core.iam().create_role(&dev, role("dev-app")).await.unwrap();
    assert!(matches!(
        core.iam()
            .create_role(&dev, role("prod-app"))
            .await
            .unwrap_err(),
        Error::AccessDenied(_)
    ));
    // The root user may do anything in its account and nothing in another.
    let root = Caller::root("111122223333".parse().unwrap());
    core.iam()
        .create_role(&root, role("by-root"))
        .await
        .unwrap();
    // Users see their own keys without naming themselves.
    assert_eq!(core.iam().get_user(&dev, None).await.unwrap_err(), Error::AccessDenied("User: arn:aws:iam::111122223333:user/dev is not authorized to perform: iam:GetUser on resource: arn:aws:iam::111122223333:user/dev because no identity-based policy allows the iam:GetUser action".into()));
    assert_eq!(
        core.iam()
            .list_access_keys(&admin, Some("dev"), &PageRequest::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    core.iam()
        .create_access_key(&admin, Some("dev"))
        .await
        .unwrap();
    assert_eq!(
        core.iam()
            .create_access_key(&admin, Some("dev"))
            .await
            .unwrap_err(),
        Error::LimitExceeded("Cannot exceed quota for AccessKeysPerUser: 2".into())
    );
    assert_eq!(
        core.iam().delete_user(&admin, "dev").await.unwrap_err(),
        Error::DeleteConflict("Cannot delete entity, must delete access keys first.".into())
    );
}

#[tokio::test]
async fn accounts_are_separate() {
    let (core, admin) = core().await;
    core.iam().create_role(&admin, role("mine")).await.unwrap();
    let other = core
        .caller(
            &core
                .access_key(&iam_key(&core, "444455556666").await)
                .await
                .unwrap()
                .unwrap()
                .0,
        )
        .await
        .unwrap();
    assert!(
        core.iam().get_role(&other, "mine").await.is_err(),
        "another account's role is not visible"
    );
    core.iam().create_role(&other, role("mine")).await.unwrap();
}

async fn iam_key(core: &Core, account: &str) -> String {
    let root = Caller::root(account.parse().unwrap());
    core.iam()
        .list_access_keys(&root, Some("admin"), &PageRequest::default())
        .await
        .unwrap()
        .items[0]
        .id
        .clone()
}

#[tokio::test]
async fn lists_page_with_markers() {
    let (core, admin) = core().await;
    for i in 0..25 {
        core.iam()
            .create_role(
                &admin,
                CreateRole {
                    path: Some(if i % 2 == 0 {
                        "/even/".into()
                    } else {
                        "/".into()
                    }),
                    ..role(&format!("role-{i:02}"))
                },
            )
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut page = PageRequest {
        marker: None,
        max_items: Some(7),
    };
    loop {
        let result = core.iam().list_roles(&admin, None, &page).await.unwrap();
        assert!(result.items.len() <= 7);
        seen.extend(result.items.into_iter().map(|r| r.name));
        match result.marker {
            Some(m) => page.marker = Some(m),
            None => break,
        }
    }
    assert_eq!(seen.len(), 25);
    let even = core
        .iam()
        .list_roles(&admin, Some("/even/"), &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(even.items.len(), 13);
    assert!(
        core.iam()
            .list_roles(
                &admin,
                None,
                &PageRequest {
                    marker: Some("!!".into()),
                    max_items: None
                }
            )
            .await
            .is_err()
    );
}

#[tokio::test]
async fn simulation_reports_decisions_and_statements() {
    let (core, admin) = core().await;
    let results = core
        .iam()
        .simulate(
            &admin,
            SimulateInput {
                policies: vec![S3_READ.into()],
                actions: vec!["s3:GetObject".into(), "s3:PutObject".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(results[0].decision, "allowed");
    assert_eq!(results[0].matched[0].source_policy_id, "PolicyInputList.1");
    assert_eq!(results[0].matched[0].start.0, 1);
    assert_eq!(results[1].decision, "implicitDeny");
    let principal = core
        .iam()
        .simulate(
            &admin,
            SimulateInput {
                source_arn: Some("arn:aws:iam::111122223333:user/admin".into()),
                actions: vec!["iam:CreateRole".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(principal[0].decision, "allowed");
    assert_eq!(principal[0].matched[0].source_policy_id, ADMIN);
    assert_eq!(principal[0].matched[0].source_policy_type, "aws-managed");
}
