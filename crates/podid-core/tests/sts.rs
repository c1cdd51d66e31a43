//! STS on the in-memory store: who may assume what, with which tags, for how long, with what
//! errors; session credentials and what they may do; the session keys.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use std::sync::Arc;

use podid_core::{
    AssumeRole, AssumedRole, Assumer, Caller, Core, CreateRole, CreateUser, Entity, Error,
    MasterKey, PageRequest, SeqIds, Tag,
};
use podid_store::MemoryStore;
use podid_types::{FixedClock, Timestamp};

const A: &str = "111122223333";
const B: &str = "444455556666";
const READ_ONLY: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";

struct World {
    core: Core,
    clock: Arc<FixedClock>,
    admin_a: Caller,
    admin_b: Caller,
}

async fn world() -> World {
    let ids = SeqIds::new(1000);
    world_on(Arc::new(MemoryStore::new()), 42, MasterKey::generate(&ids)).await
}

/// A server on `store` (bootstrapped once per store) with its own randomness.
async fn world_on(store: Arc<MemoryStore>, seed: u64, master: MasterKey) -> World {
    let ids = Arc::new(SeqIds::new(seed));
    let clock = Arc::new(FixedClock::new(Timestamp::from_secs(1_763_800_000)));
    let core = Core::new(store, clock.clone(), ids.clone(), master);
    let boot = core
        .bootstrap(&[A.parse().unwrap(), B.parse().unwrap()])
        .await
        .unwrap();
    let keys = if boot.keys.is_empty() {
        core.admin_keys().await.unwrap()
    } else {
        boot.keys
    };
    let mut admins = Vec::new();
    for key in &keys {
        let (record, _) = core.access_key(&key.access_key_id).await.unwrap().unwrap();
        admins.push(core.caller(&record).await.unwrap());
    }
    let admin_b = admins.pop().unwrap();
    let admin_a = admins.pop().unwrap();
    World {
        core,
        clock,
        admin_a,
        admin_b,
    }
}

fn trust(statement: &str) -> String {
    format!(r#"{{"Version":"2012-10-17","Statement":[{statement}]}}"#)
}

fn allow(principal: &str, actions: &str) -> String {
    trust(&format!(
        r#"{{"Effect":"Allow","Principal":{principal},"Action":{actions}}}"#
    ))
}

impl World {
    async fn role(&self, admin: &Caller, name: &str, path: &str, trust: String) -> String {
        self.role_with(
            admin,
            CreateRole {
                name: name.into(),
                path: Some(path.into()),
                trust_policy: trust,
                ..Default::default()
            },
        )
        .await
    }

    async fn role_with(&self, admin: &Caller, role: CreateRole) -> String {
        let name = role.name.clone();
        let record = self.core.iam().create_role(admin, role).await.unwrap();
        self.core
            .iam()
            .attach_entity_policy(admin, Entity::Role, &name, READ_ONLY)
            .await
            .unwrap();
        // Sessions of every test role may assume roles (role chaining needs both sides too).
        self.core
            .iam()
            .put_entity_policy(admin, Entity::Role, &name, "assume", ASSUME_ANY.into())
            .await
            .unwrap();
        record.arn
    }

    /// A role of account A that account A trusts, whose sessions may last `seconds`.
    async fn account_role_lasting(&self, name: &str, seconds: u32) -> String {
        self.role_with(
            &self.admin_a,
            CreateRole {
                name: name.into(),
                trust_policy: allow(r#"{"AWS":"111122223333"}"#, r#""sts:AssumeRole""#),
                max_session_duration: Some(seconds),
                ..Default::default()
            },
        )
        .await
    }

    /// A user of `admin`'s account with the given inline identity policy (if any).
    async fn user(&self, admin: &Caller, name: &str, policy: Option<&str>) -> Caller {
        self.core
            .iam()
            .create_user(
                admin,
                CreateUser {
                    name: name.into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        if let Some(policy) = policy {
            self.core
                .iam()
                .put_entity_policy(admin, Entity::User, name, "p", policy.into())
                .await
                .unwrap();
        }
        let key = self
            .core
            .iam()
            .create_access_key(admin, Some(name))
            .await
            .unwrap();
        self.core.caller(&key.record).await.unwrap()
    }

    /// The caller that the credentials of `assumed` authenticate.
    async fn session(&self, assumed: &AssumedRole) -> Caller {
        let opened = self
            .core
            .open_session(
                assumed.credentials.session_token.expose(),
                &assumed.credentials.access_key_id,
            )
            .await
            .unwrap();
        self.core.session_caller(&opened).await.unwrap()
    }
}

fn assume(role_arn: &str, session: &str) -> AssumeRole {
    AssumeRole {
        role_arn: role_arn.into(),
        session_name: session.into(),
        ..Default::default()
    }
}

fn tags(pairs: &[(&str, &str)]) -> Vec<Tag> {
    pairs
        .iter()
        .map(|(k, v)| Tag {
            key: (*k).into(),
            value: (*v).into(),
        })
        .collect()
}

fn denied(e: Error) -> String {
    match e {
        Error::AccessDenied(message) => message,
        other => panic!("expected AccessDenied, got {other:?}"),
    }
}

/// An identity policy that lets its holder assume any role, tag the session and set a source
/// identity (what chaining and cross-account calls need on the caller's side).
const ASSUME_ANY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["sts:AssumeRole","sts:TagSession","sts:SetSourceIdentity"],"Resource":"*"}]}"#;

#[tokio::test]
async fn assume_role_outputs_follow_aws() {
    let w = world().await;
    let arn = w
        .role(
            &w.admin_a,
            "app",
            "/team/",
            allow(r#"{"AWS":"111122223333"}"#, r#""sts:AssumeRole""#),
        )
        .await;
    assert_eq!(arn, "arn:aws:iam::111122223333:role/team/app");
    let role = w.core.iam().get_role(&w.admin_a, "app").await.unwrap();
    let out = w
        .core
        .sts()
        .assume_role(&w.admin_a, assume(&arn, "s-1"))
        .await
        .unwrap();
    assert!(out.credentials.access_key_id.starts_with("ASIA"));
    assert_eq!(out.credentials.access_key_id.len(), 20);
    assert_eq!(out.credentials.secret_access_key.expose().len(), 40);
    // The role path is dropped from the assumed-role ARN.
    assert_eq!(out.arn, "arn:aws:sts::111122223333:assumed-role/app/s-1");
    assert_eq!(out.assumed_role_id, format!("{}:s-1", role.id));
    assert_eq!(
        out.credentials.expiration,
        Timestamp::from_secs(1_763_800_000 + 3600)
    );
    assert_eq!(
        out.packed_policy_size, None,
        "nothing packed, nothing reported"
    );
    let session = w.session(&out).await;
    let identity = w.core.sts().caller_identity(&session);
    assert_eq!(identity.arn, out.arn);
    assert_eq!(identity.user_id, out.assumed_role_id);
    assert_eq!(identity.account, A);
    // The session has the role's permissions (ReadOnlyAccess), under the session's ARN.
    w.core
        .iam()
        .list_roles(&session, None, &PageRequest::default())
        .await
        .unwrap();
    let message = denied(w.core.iam().delete_role(&session, "app").await.unwrap_err());
    assert_eq!(
        message,
        "User: arn:aws:sts::111122223333:assumed-role/app/s-1 is not authorized to perform: iam:DeleteRole on resource: arn:aws:iam::111122223333:role/team/app because no identity-based policy allows the iam:DeleteRole action"
    );
}

#[tokio::test]
async fn trust_and_identity_decide_as_aws_does() {
    let w = world().await;
    let account_trust = w
        .role(
            &w.admin_a,
            "by-account",
            "/",
            allow(r#"{"AWS":"111122223333"}"#, r#""sts:AssumeRole""#),
        )
        .await;
    // Trap 1: the account principal is not a grant; the user needs an identity policy.
    let bare = w.user(&w.admin_a, "bare", None).await;
    assert_eq!(
        denied(
            w.core
                .sts()
                .assume_role(&bare, assume(&account_trust, "s"))
                .await
                .unwrap_err()
        ),
        "User: arn:aws:iam::111122223333:user/bare is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::111122223333:role/by-account"
    );
    let allowed = w.user(&w.admin_a, "allowed", Some(ASSUME_ANY)).await;
    w.core
        .sts()
        .assume_role(&allowed, assume(&account_trust, "s"))
        .await
        .unwrap();
    // Trap 3: a trust policy naming the user directly needs no identity policy.
    let direct = w
        .role(
            &w.admin_a,
            "direct",
            "/",
            allow(
                r#"{"AWS":"arn:aws:iam::111122223333:user/bare"}"#,
                r#""sts:AssumeRole""#,
            ),
        )
        .await;
    w.core
        .sts()
        .assume_role(&bare, assume(&direct, "s"))
        .await
        .unwrap();
    // Trap 2: identity allows but the trust does not name the caller.
    let other = w
        .role(
            &w.admin_a,
            "other",
            "/",
            allow(r#"{"Service":"ec2.amazonaws.com"}"#, r#""sts:AssumeRole""#),
        )
        .await;
    assert_eq!(
        denied(
            w.core
                .sts()
                .assume_role(&allowed, assume(&other, "s"))
                .await
                .unwrap_err()
        ),
        "User: arn:aws:iam::111122223333:user/allowed is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::111122223333:role/other"
    );
    // A role that does not exist is denied in the same words: existence is not revealed.
    assert_eq!(
        denied(
            w.core
                .sts()
                .assume_role(&allowed, assume("arn:aws:iam::111122223333:role/nope", "s"))
                .await
                .unwrap_err()
        ),
        "User: arn:aws:iam::111122223333:user/allowed is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::111122223333:role/nope"
    );
    // The path is part of the ARN.
    assert!(matches!(
        w.core
            .sts()
            .assume_role(
                &allowed,
                assume("arn:aws:iam::111122223333:role/x/by-account", "s")
            )
            .await,
        Err(Error::AccessDenied(_))
    ));
    // Root never assumes roles.
    assert_eq!(
        denied(
            w.core
                .sts()
                .assume_role(
                    &Caller::root(A.parse().unwrap()),
                    assume(&account_trust, "s")
                )
                .await
                .unwrap_err()
        ),
        "Roles may not be assumed by root accounts."
    );
}

#[tokio::test]
async fn cross_account_needs_both_sides() {
    let w = world().await;
    let target = w
        .role(
            &w.admin_b,
            "target",
            "/",
            allow(
                r#"{"AWS":"arn:aws:iam::111122223333:root"}"#,
                r#""sts:AssumeRole""#,
            ),
        )
        .await;
    // Account A's admin has AdministratorAccess: both sides allow.
    let out = w
        .core
        .sts()
        .assume_role(&w.admin_a, assume(&target, "x"))
        .await
        .unwrap();
    assert_eq!(out.arn, "arn:aws:sts::444455556666:assumed-role/target/x");
    // A user of A without sts:AssumeRole in its identity policy is refused.
    let bare = w.user(&w.admin_a, "bare", None).await;
    assert_eq!(
        denied(
            w.core
                .sts()
                .assume_role(&bare, assume(&target, "x"))
                .await
                .unwrap_err()
        ),
        "User: arn:aws:iam::111122223333:user/bare is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::444455556666:role/target"
    );
    // Trap 6: naming the user directly does not help across accounts.
    let named = w
        .role(
            &w.admin_b,
            "named",
            "/",
            allow(
                r#"{"AWS":"arn:aws:iam::111122223333:user/bare"}"#,
                r#""sts:AssumeRole""#,
            ),
        )
        .await;
    assert!(
        w.core
            .sts()
            .assume_role(&bare, assume(&named, "x"))
            .await
            .is_err()
    );
    // A's session reads A's IAM, not B's.
    let session = w.session(&out).await;
    assert_eq!(session.account().to_string(), B);
    let message = denied(
        w.core
            .iam()
            .get_policy(
                &w.session(
                    &w.core
                        .sts()
                        .assume_role(&w.admin_a, assume(&target, "y"))
                        .await
                        .unwrap(),
                )
                .await,
                "arn:aws:iam::111122223333:policy/none",
            )
            .await
            .unwrap_err(),
    );
    assert!(message.starts_with("User: arn:aws:sts::444455556666:assumed-role/target/y is not authorized to perform: iam:GetPolicy on resource: arn:aws:iam::111122223333:policy/none"), "{message}");
}

#[tokio::test]
async fn durations_follow_max_session_duration_and_the_chaining_limit() {
    let w = world().await;
    let first = w.account_role_lasting("first", 7200).await;
    let second = w.account_role_lasting("second", 43_200).await;
    let over = AssumeRole {
        duration_seconds: Some(7201),
        ..assume(&first, "s")
    };
    assert_eq!(
        w.core
            .sts()
            .assume_role(&w.admin_a, over)
            .await
            .unwrap_err(),
        Error::Validation(
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
                .into()
        )
    );
    let two_hours = AssumeRole {
        duration_seconds: Some(7200),
        ..assume(&first, "s")
    };
    let out = w
        .core
        .sts()
        .assume_role(&w.admin_a, two_hours)
        .await
        .unwrap();
    assert_eq!(
        out.credentials.expiration,
        Timestamp::from_secs(1_763_800_000 + 7200)
    );
    // Chaining: a role session assuming a role gets at most one hour, whatever the role allows.
    let session = w.session(&out).await;
    let chained = AssumeRole {
        duration_seconds: Some(7200),
        ..assume(&second, "c")
    };
    assert_eq!(
        w.core.sts().assume_role(&session, chained).await.unwrap_err(),
        Error::Validation(
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.".into()
        )
    );
    // Over both limits: the role's maximum is reported first.
    let third = w
        .role(
            &w.admin_a,
            "third",
            "/",
            allow(r#"{"AWS":"111122223333"}"#, r#""sts:AssumeRole""#),
        )
        .await;
    let over_both = AssumeRole {
        duration_seconds: Some(3601),
        ..assume(&third, "c")
    };
    assert_eq!(
        w.core
            .sts()
            .assume_role(&session, over_both)
            .await
            .unwrap_err(),
        Error::Validation(
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
                .into()
        )
    );
    let hour = AssumeRole {
        duration_seconds: Some(3600),
        ..assume(&second, "c")
    };
    let chained = w.core.sts().assume_role(&session, hour).await.unwrap();
    assert_eq!(w.session(&chained).await.session().unwrap().depth, 1);
}

#[tokio::test]
async fn session_tags_need_tag_session_and_follow_the_rules() {
    let w = world().await;
    let no_tag_session = w
        .role(
            &w.admin_a,
            "plain",
            "/",
            allow(r#"{"AWS":"111122223333"}"#, r#""sts:AssumeRole""#),
        )
        .await;
    let tagged = AssumeRole {
        tags: tags(&[("team", "blue")]),
        ..assume(&no_tag_session, "s")
    };
    assert_eq!(
        denied(
            w.core
                .sts()
                .assume_role(&w.admin_a, tagged)
                .await
                .unwrap_err()
        ),
        "User: arn:aws:iam::111122223333:user/admin is not authorized to perform: sts:TagSession on resource: arn:aws:iam::111122223333:role/plain"
    );
    let role = w
        .role_with(
            &w.admin_a,
            CreateRole {
                name: "tagging".into(),
                trust_policy: allow(
                    r#"{"AWS":"111122223333"}"#,
                    r#"["sts:AssumeRole","sts:TagSession"]"#,
                ),
                tags: tags(&[("Team", "role-value"), ("env", "prod")]),
                ..Default::default()
            },
        )
        .await;
    let bad = |t: Vec<Tag>, transitive: &[&str]| AssumeRole {
        tags: t,
        transitive_tag_keys: transitive.iter().map(|s| (*s).to_owned()).collect(),
        ..assume(&role, "s")
    };
    for (input, message) in [
        (
            bad(tags(&[("team", "a"), ("TEAM", "b")]), &[]),
            "Duplicate tag keys found. Please note that Tag keys are case insensitive.",
        ),
        (
            bad(tags(&[("aws:team", "a")]), &[]),
            "Tag keys and values cannot start with the prefix 'aws:'.",
        ),
        (
            bad(tags(&[("team", "aws:a")]), &[]),
            "Tag keys and values cannot start with the prefix 'aws:'.",
        ),
        (
            bad(tags(&[("team", "a")]), &["other"]),
            "The specified transitive tag key must be included in the requested tags.",
        ),
    ] {
        assert_eq!(
            w.core
                .sts()
                .assume_role(&w.admin_a, input)
                .await
                .unwrap_err(),
            Error::InvalidParameterValue(message.into())
        );
    }
    let out = w
        .core
        .sts()
        .assume_role(
            &w.admin_a,
            bad(tags(&[("team", "blue"), ("cost", "42")]), &["TEAM"]),
        )
        .await
        .unwrap();
    assert!(out.packed_policy_size.is_some(), "tags are packed");
    let session = w.session(&out).await;
    // Session tags override the role's same-key tags (any case) in aws:PrincipalTag.
    let mut principal_tags = session.tags().to_vec();
    principal_tags.sort();
    assert_eq!(
        principal_tags,
        [
            ("cost".to_owned(), "42".to_owned()),
            ("env".to_owned(), "prod".to_owned()),
            ("team".to_owned(), "blue".to_owned()),
        ]
    );
    assert_eq!(
        session.session().unwrap().transitive_tags,
        [("team".to_owned(), "blue".to_owned())]
    );
    // Chained: the transitive tag is inherited and cannot be passed again, in any case.
    let next = w
        .role(
            &w.admin_a,
            "next",
            "/",
            allow(
                r#"{"AWS":"111122223333"}"#,
                r#"["sts:AssumeRole","sts:TagSession"]"#,
            ),
        )
        .await;
    let again = AssumeRole {
        tags: tags(&[("Team", "red")]),
        ..assume(&next, "c")
    };
    assert_eq!(
        w.core.sts().assume_role(&session, again).await.unwrap_err(),
        Error::InvalidParameterValue(
            "One of the specified transitive tag keys can't be set because it conflicts with a transitive tag key from the calling session.".into()
        )
    );
    // Inherited transitive tags tag the new session: its trust must allow sts:TagSession.
    let untaggable = w
        .role(
            &w.admin_a,
            "untaggable",
            "/",
            allow(r#"{"AWS":"111122223333"}"#, r#""sts:AssumeRole""#),
        )
        .await;
    assert_eq!(
        denied(
            w.core
                .sts()
                .assume_role(&session, assume(&untaggable, "c"))
                .await
                .unwrap_err()
        ),
        "User: arn:aws:sts::111122223333:assumed-role/tagging/s is not authorized to perform: sts:TagSession on resource: arn:aws:iam::111122223333:role/untaggable"
    );
    let chained = w
        .core
        .sts()
        .assume_role(&session, assume(&next, "c"))
        .await
        .unwrap();
    let chained = w.session(&chained).await;
    assert_eq!(chained.tags(), [("team".to_owned(), "blue".to_owned())]);
    assert_eq!(
        chained.session().unwrap().transitive_tags,
        [("team".to_owned(), "blue".to_owned())],
        "transitive tags stay transitive down the chain"
    );
}

#[tokio::test]
async fn principal_tags_reach_policies_of_later_calls() {
    let w = world().await;
    let role = w
        .role(
            &w.admin_a,
            "abac",
            "/",
            allow(
                r#"{"AWS":"111122223333"}"#,
                r#"["sts:AssumeRole","sts:TagSession"]"#,
            ),
        )
        .await;
    // The role may list roles only when its session is tagged team=blue.
    w.core
        .iam().put_entity_policy(
            &w.admin_a,
            Entity::Role,
            "abac",
            "abac",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"iam:ListRoles","Resource":"*","Condition":{"StringNotEquals":{"aws:PrincipalTag/team":"blue"}}}]}"#.into(),
        )
        .await
        .unwrap();
    let blue = AssumeRole {
        tags: tags(&[("team", "blue")]),
        ..assume(&role, "s")
    };
    let blue = w
        .session(&w.core.sts().assume_role(&w.admin_a, blue).await.unwrap())
        .await;
    w.core
        .iam()
        .list_roles(&blue, None, &PageRequest::default())
        .await
        .unwrap();
    let untagged = w
        .session(
            &w.core
                .sts()
                .assume_role(&w.admin_a, assume(&role, "t"))
                .await
                .unwrap(),
        )
        .await;
    let message = denied(
        w.core
            .iam()
            .list_roles(&untagged, None, &PageRequest::default())
            .await
            .unwrap_err(),
    );
    assert!(
        message.contains("with an explicit deny in an identity-based policy"),
        "{message}"
    );
}

#[tokio::test]
async fn external_id_must_match_exactly() {
    let w = world().await;
    let role = w
        .role(
            &w.admin_b,
            "vendor",
            "/",
            trust(r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"sts:AssumeRole","Condition":{"StringEquals":{"sts:ExternalId":"Unique-42"}}}"#),
        )
        .await;
    let with = |id: Option<&str>| AssumeRole {
        external_id: id.map(str::to_owned),
        ..assume(&role, "s")
    };
    assert!(matches!(
        w.core.sts().assume_role(&w.admin_a, with(None)).await,
        Err(Error::AccessDenied(_))
    ));
    assert!(matches!(
        w.core
            .sts()
            .assume_role(&w.admin_a, with(Some("unique-42")))
            .await,
        Err(Error::AccessDenied(_))
    ));
    w.core
        .sts()
        .assume_role(&w.admin_a, with(Some("Unique-42")))
        .await
        .unwrap();
}

#[tokio::test]
async fn source_identity_needs_its_action_and_is_set_once() {
    let w = world().await;
    let without = w
        .role(
            &w.admin_a,
            "without",
            "/",
            allow(r#"{"AWS":"111122223333"}"#, r#""sts:AssumeRole""#),
        )
        .await;
    let set = |arn: &str, source: &str| AssumeRole {
        source_identity: Some(source.into()),
        ..assume(arn, "s")
    };
    assert_eq!(
        denied(
            w.core
                .sts()
                .assume_role(&w.admin_a, set(&without, "alice"))
                .await
                .unwrap_err()
        ),
        "User: arn:aws:iam::111122223333:user/admin is not authorized to perform: sts:SetSourceIdentity on resource: arn:aws:iam::111122223333:role/without"
    );
    let with = w
        .role(
            &w.admin_a,
            "with",
            "/",
            allow(
                r#"{"AWS":"111122223333"}"#,
                r#"["sts:AssumeRole","sts:SetSourceIdentity"]"#,
            ),
        )
        .await;
    assert_eq!(
        w.core.sts().assume_role(&w.admin_a, set(&with, "aws:alice")).await.unwrap_err(),
        Error::Validation(
            r"1 validation error detected: Value 'aws:alice' at 'sourceIdentity' failed to satisfy constraint: Member must satisfy regular expression pattern: [\w+=,.@-]*".into()
        )
    );
    let out = w
        .core
        .sts()
        .assume_role(&w.admin_a, set(&with, "alice"))
        .await
        .unwrap();
    assert_eq!(out.source_identity.as_deref(), Some("alice"));
    let session = w.session(&out).await;
    // Inherited down the chain, where the next trust must allow setting it.
    assert_eq!(
        denied(
            w.core
                .sts()
                .assume_role(&session, assume(&without, "c"))
                .await
                .unwrap_err()
        ),
        "User: arn:aws:sts::111122223333:assumed-role/with/s is not authorized to perform: sts:SetSourceIdentity on resource: arn:aws:iam::111122223333:role/without"
    );
    let chained = w
        .core
        .sts()
        .assume_role(&session, assume(&with, "c"))
        .await
        .unwrap();
    assert_eq!(chained.source_identity.as_deref(), Some("alice"));
    let chained_session = w.session(&chained).await;
    assert_eq!(
        chained_session
            .session()
            .unwrap()
            .source_identity
            .as_deref(),
        Some("alice")
    );
    // Passing the same value again is fine; another value is not.
    w.core
        .sts()
        .assume_role(&session, set(&with, "alice"))
        .await
        .unwrap();
    assert_eq!(
        w.core
            .sts()
            .assume_role(&session, set(&with, "bob"))
            .await
            .unwrap_err(),
        Error::Validation("The source identity is already set for this assume role session".into())
    );
}

#[tokio::test]
async fn session_policies_narrow_the_session() {
    let w = world().await;
    let role = w
        .role(
            &w.admin_a,
            "wide",
            "/",
            allow(r#"{"AWS":"111122223333"}"#, r#""sts:AssumeRole""#),
        )
        .await;
    let narrow = AssumeRole {
        policy: Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:GetRole","Resource":"*"}]}"#.into()),
        ..assume(&role, "s")
    };
    let out = w.core.sts().assume_role(&w.admin_a, narrow).await.unwrap();
    assert!(out.packed_policy_size.unwrap() > 0);
    let session = w.session(&out).await;
    w.core.iam().get_role(&session, "wide").await.unwrap();
    let message = denied(
        w.core
            .iam()
            .list_roles(&session, None, &PageRequest::default())
            .await
            .unwrap_err(),
    );
    assert!(
        message.contains("because no session policy allows the iam:ListRoles action"),
        "{message}"
    );
    // Managed session policies too.
    let managed = AssumeRole {
        policy_arns: vec!["arn:aws:iam::aws:policy/IAMReadOnlyAccess".into()],
        ..assume(&role, "m")
    };
    let session = w
        .session(&w.core.sts().assume_role(&w.admin_a, managed).await.unwrap())
        .await;
    w.core
        .iam()
        .list_roles(&session, None, &PageRequest::default())
        .await
        .unwrap();
    // A malformed session policy, and one over the packed limit.
    let malformed = AssumeRole {
        policy: Some("{".into()),
        ..assume(&role, "s")
    };
    assert!(matches!(
        w.core
            .sts()
            .assume_role(&w.admin_a, malformed)
            .await
            .unwrap_err(),
        Error::MalformedPolicy { .. }
    ));
    let statements: Vec<String> = (0..40)
        .map(|i| format!(r#"{{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::bucket-{i:03}/*"}}"#))
        .collect();
    let large = AssumeRole {
        policy: Some(format!(
            r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
            statements.join(",")
        )),
        ..assume(&role, "s")
    };
    assert!(matches!(
        w.core
            .sts()
            .assume_role(&w.admin_a, large)
            .await
            .unwrap_err(),
        Error::PackedPolicyTooLarge(_) | Error::MalformedPolicy { .. }
    ));
}

#[tokio::test]
async fn a_deleted_role_invalidates_its_sessions() {
    let w = world().await;
    let role = w
        .role(
            &w.admin_a,
            "gone",
            "/",
            allow(r#"{"AWS":"111122223333"}"#, r#""sts:AssumeRole""#),
        )
        .await;
    let out = w
        .core
        .sts()
        .assume_role(&w.admin_a, assume(&role, "s"))
        .await
        .unwrap();
    let session = w.session(&out).await;
    w.core
        .iam()
        .list_roles(&session, None, &PageRequest::default())
        .await
        .unwrap();
    w.core
        .iam()
        .detach_entity_policy(&w.admin_a, Entity::Role, "gone", READ_ONLY)
        .await
        .unwrap();
    w.core
        .iam()
        .delete_entity_policy(&w.admin_a, Entity::Role, "gone", "assume")
        .await
        .unwrap();
    w.core.iam().delete_role(&w.admin_a, "gone").await.unwrap();
    // Re-created with the same name, it is another role: the old session's token is invalid.
    w.role(
        &w.admin_a,
        "gone",
        "/",
        allow(r#"{"AWS":"111122223333"}"#, r#""sts:AssumeRole""#),
    )
    .await;
    let opened = w
        .core
        .open_session(
            out.credentials.session_token.expose(),
            &out.credentials.access_key_id,
        )
        .await
        .unwrap();
    assert_eq!(
        w.core.session_caller(&opened).await.unwrap_err(),
        Error::InvalidClientTokenId(
            "The security token included in the request is invalid.".into()
        )
    );
}

#[tokio::test]
async fn service_principals_assume_by_trust_alone() {
    let w = world().await;
    let role = w
        .role(
            &w.admin_a,
            "pod",
            "/",
            allow(
                r#"{"Service":"pods.eks.amazonaws.com"}"#,
                r#"["sts:AssumeRole","sts:TagSession"]"#,
            ),
        )
        .await;
    let pod = AssumeRole {
        tags: tags(&[
            ("kubernetes-namespace", "prod"),
            ("kubernetes-service-account", "api"),
        ]),
        transitive_tag_keys: vec![
            "kubernetes-namespace".into(),
            "kubernetes-service-account".into(),
        ],
        ..assume(&role, "eks-c1-api-1234")
    };
    let out = w
        .core
        .sts()
        .assume(Assumer::Service("pods.eks.amazonaws.com"), pod)
        .await
        .unwrap();
    let session = w.session(&out).await;
    assert_eq!(session.session().unwrap().transitive_tags.len(), 2);
    assert!(
        w.core
            .sts()
            .assume(Assumer::Service("ec2.amazonaws.com"), assume(&role, "x"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn session_tokens_are_checked() {
    let w = world().await;
    let role = w
        .role(
            &w.admin_a,
            "r",
            "/",
            allow(r#"{"AWS":"111122223333"}"#, r#""sts:AssumeRole""#),
        )
        .await;
    let out = w
        .core
        .sts()
        .assume_role(&w.admin_a, assume(&role, "s"))
        .await
        .unwrap();
    let token = out.credentials.session_token.expose().clone();
    let key = out.credentials.access_key_id.clone();
    let invalid = Error::InvalidClientTokenId(
        "The security token included in the request is invalid.".into(),
    );
    // Tampered: flip one character in the middle.
    let mut bytes = token.clone().into_bytes();
    let middle = bytes.len() / 2;
    bytes[middle] = if bytes[middle] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    assert_eq!(
        w.core.open_session(&tampered, &key).await.unwrap_err(),
        invalid
    );
    assert_eq!(
        w.core.open_session("garbage", &key).await.unwrap_err(),
        invalid
    );
    assert_eq!(
        w.core
            .open_session(&token, "ASIAOTHERKEY00000000")
            .await
            .unwrap_err(),
        invalid
    );
    // Sealed by another server's keys.
    let other = world_on(
        Arc::new(MemoryStore::new()),
        7,
        MasterKey::generate(&SeqIds::new(5)),
    )
    .await;
    let role_b = other
        .role(
            &other.admin_a,
            "r",
            "/",
            allow(r#"{"AWS":"111122223333"}"#, r#""sts:AssumeRole""#),
        )
        .await;
    let foreign = other
        .core
        .sts()
        .assume_role(&other.admin_a, assume(&role_b, "s"))
        .await
        .unwrap();
    assert_eq!(
        w.core
            .open_session(
                foreign.credentials.session_token.expose(),
                &foreign.credentials.access_key_id
            )
            .await
            .unwrap_err(),
        invalid
    );
    // Expired, by the injected clock.
    w.core.open_session(&token, &key).await.unwrap();
    w.clock.advance_millis(3600 * 1000);
    assert_eq!(
        w.core.open_session(&token, &key).await.unwrap_err(),
        Error::ExpiredToken("The security token included in the request is expired".into())
    );
}

#[tokio::test]
async fn session_keys_rotate_and_old_tokens_open_until_they_expire() {
    let w = world().await;
    let role = w.account_role_lasting("r", 43_200).await;
    w.core.sts().rotate_session_keys().await.unwrap();
    assert_eq!(w.core.sts().session_key_count(), 1);
    let long = AssumeRole {
        duration_seconds: Some(43_200),
        ..assume(&role, "s")
    };
    let old = w
        .core
        .sts()
        .assume_role(&w.admin_a, long.clone())
        .await
        .unwrap();
    // A day later a new key seals; the old one still opens.
    w.clock.advance_millis(24 * 3600 * 1000 - 1000);
    w.core.sts().rotate_session_keys().await.unwrap();
    assert_eq!(w.core.sts().session_key_count(), 1, "not yet a day old");
    w.clock.advance_millis(1000);
    w.core.sts().rotate_session_keys().await.unwrap();
    assert_eq!(w.core.sts().session_key_count(), 2);
    let new = w.core.sts().assume_role(&w.admin_a, long).await.unwrap();
    assert_ne!(
        new.credentials.session_token.expose().get(..16),
        old.credentials.session_token.expose().get(..16),
        "the new key seals"
    );
    w.core
        .open_session(
            new.credentials.session_token.expose(),
            &new.credentials.access_key_id,
        )
        .await
        .unwrap();
    // After the old key's retention, it is gone.
    w.clock.advance_millis(37 * 3600 * 1000 + 1000);
    w.core.sts().rotate_session_keys().await.unwrap();
    assert_eq!(
        w.core.sts().session_key_count(),
        2,
        "the replaced key is dropped, a newer one made"
    );
}

#[tokio::test]
async fn replicas_open_each_others_sessions() {
    // Two servers on one store, sharing the master key (as replicas on one PostgreSQL do).
    let store = Arc::new(MemoryStore::new());
    let master = MasterKey::generate(&SeqIds::new(3));
    let one = world_on(store.clone(), 1, master.clone()).await;
    let two = world_on(store, 2, master).await;
    let role = one
        .role(
            &one.admin_a,
            "r",
            "/",
            allow(r#"{"AWS":"111122223333"}"#, r#""sts:AssumeRole""#),
        )
        .await;
    let first = one
        .core
        .sts()
        .assume_role(&one.admin_a, assume(&role, "s"))
        .await
        .unwrap();
    let session = two.session(&first).await;
    assert_eq!(two.core.sts().caller_identity(&session).arn, first.arn);
    // The other way round, after the second server rotated to a key of its own.
    two.clock.advance_millis(25 * 3600 * 1000);
    two.core.sts().rotate_session_keys().await.unwrap();
    let second = two
        .core
        .sts()
        .assume_role(&two.admin_a, assume(&role, "t"))
        .await
        .unwrap();
    one.clock.advance_millis(25 * 3600 * 1000);
    let session = one.session(&second).await;
    assert_eq!(one.core.sts().caller_identity(&session).arn, second.arn);
}

#[tokio::test]
async fn get_session_token_and_caller_identity() {
    let w = world().await;
    let user = w
        .user(
            &w.admin_a,
            "dev",
            Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}"#),
        )
        .await;
    // GetCallerIdentity needs no permission, even under an explicit deny of everything.
    let me = w.core.sts().caller_identity(&user);
    assert_eq!(me.arn, "arn:aws:iam::111122223333:user/dev");
    assert!(me.user_id.starts_with("AIDA"));
    let creds = w
        .core
        .sts()
        .get_session_token(&w.admin_a, None)
        .await
        .unwrap();
    assert_eq!(
        creds.expiration,
        Timestamp::from_secs(1_763_800_000 + 43_200)
    );
    let opened = w
        .core
        .open_session(creds.session_token.expose(), &creds.access_key_id)
        .await
        .unwrap();
    let session = w.core.session_caller(&opened).await.unwrap();
    assert_eq!(
        w.core.sts().caller_identity(&session).arn,
        "arn:aws:iam::111122223333:user/admin"
    );
    assert!(session.session().is_some());
    assert!(matches!(
        w.core
            .sts()
            .get_session_token(&session, None)
            .await
            .unwrap_err(),
        Error::AccessDenied(_)
    ));
    let root = Caller::root(A.parse().unwrap());
    assert_eq!(w.core.sts().caller_identity(&root).user_id, A);
    assert_eq!(
        w.core.sts().caller_identity(&root).arn,
        "arn:aws:iam::111122223333:root"
    );
}

#[tokio::test]
async fn session_context_keys_reach_later_calls() {
    let w = world().await;
    let role = w
        .role(
            &w.admin_a,
            "ctx",
            "/",
            allow(
                r#"{"AWS":"111122223333"}"#,
                r#"["sts:AssumeRole","sts:SetSourceIdentity"]"#,
            ),
        )
        .await;
    // Sessions issued before 2030 may not list roles; sessions of `alice` may not get roles.
    w.core
        .iam().put_entity_policy(
            &w.admin_a,
            Entity::Role,
            "ctx",
            "ctx",
            r#"{"Version":"2012-10-17","Statement":[
                {"Effect":"Deny","Action":"iam:ListRoles","Resource":"*","Condition":{"DateLessThan":{"aws:TokenIssueTime":"2030-01-01T00:00:00Z"}}},
                {"Effect":"Deny","Action":"iam:GetRole","Resource":"*","Condition":{"StringEquals":{"aws:SourceIdentity":"alice"}}}]}"#
                .into(),
        )
        .await
        .unwrap();
    let alice = AssumeRole {
        source_identity: Some("alice".into()),
        ..assume(&role, "s")
    };
    let session = w
        .session(&w.core.sts().assume_role(&w.admin_a, alice).await.unwrap())
        .await;
    let message = denied(
        w.core
            .iam()
            .list_roles(&session, None, &PageRequest::default())
            .await
            .unwrap_err(),
    );
    assert!(
        message.contains("iam:ListRoles") && message.contains("explicit deny"),
        "{message}"
    );
    assert!(matches!(
        w.core.iam().get_role(&session, "ctx").await,
        Err(Error::AccessDenied(_))
    ));
    let bob = AssumeRole {
        source_identity: Some("bob".into()),
        ..assume(&role, "t")
    };
    let session = w
        .session(&w.core.sts().assume_role(&w.admin_a, bob).await.unwrap())
        .await;
    w.core.iam().get_role(&session, "ctx").await.unwrap();
}
