//! EKS on the in-memory store: clusters, Pod Identity associations and their rules, tokens.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

mod common;

use std::sync::Arc;

use podid_core::eks::{
    ClusterTokens, CreateAssociation, CreateCluster, ListAssociations, ServiceAccountToken,
    UpdateAssociation,
};
use podid_core::{Caller, Core, Entity, Error};
use podid_store::{Item, Op, Store};
use podid_types::{FixedClock, Timestamp};

const REGION: &str = "us-west-2";
const POD_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"AllowEksAuthToAssumeRoleForPodIdentity","Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]}]}"#;

struct World {
    core: Core,
    admin: Caller,
    clock: Arc<FixedClock>,
}

impl World {
    /// Creates an association in `my-cluster` as the admin.
    async fn create(&self, namespace: &str, sa: &str) -> Result<String, Error> {
        self.core
            .eks()
            .create_association(
                &self.admin,
                REGION,
                "my-cluster",
                association(namespace, sa),
            )
            .await
            .map(|created| created.id)
    }
}

async fn world(quota: u32) -> World {
    let (core, clock, admin, _) =
        common::two_accounts_with(11, 1_700_862_734, |core| core.with_association_quota(quota))
            .await;
    for (name, trust) in [
        ("my-role", POD_TRUST),
        (
            "ec2-role",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        ),
        (
            "no-tags",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        ),
    ] {
        common::create_role(&core, &admin, name, trust).await;
    }
    core.eks()
        .create_cluster(
            &admin,
            CreateCluster {
                name: "my-cluster".into(),
                region: REGION.into(),
                role_arn: Some("arn:aws:iam::111122223333:role/my-role".into()),
                tokens: ClusterTokens::Local,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    World { core, admin, clock }
}

fn association(namespace: &str, sa: &str) -> CreateAssociation {
    CreateAssociation {
        namespace: namespace.into(),
        service_account: sa.into(),
        role_arn: "arn:aws:iam::111122223333:role/my-role".into(),
        ..Default::default()
    }
}

fn invalid_parameter(e: Error) -> String {
    match e {
        Error::InvalidParameter(m) => m,
        other => panic!("expected InvalidParameter, got {other:?}"),
    }
}

#[tokio::test]
async fn clusters_have_arns_issuers_and_unique_names() {
    let w = world(1000).await;
    let cluster = w
        .core
        .eks()
        .describe_cluster(&w.admin, REGION, "my-cluster")
        .await
        .unwrap();
    assert_eq!(
        cluster.arn,
        "arn:aws:eks:us-west-2:111122223333:cluster/my-cluster"
    );
    assert_eq!(cluster.id.len(), 32);
    assert_eq!(
        cluster.issuer,
        format!("https://oidc.eks.us-west-2.amazonaws.com/id/{}", cluster.id)
    );
    // Another region does not see it.
    assert_eq!(
        w.core
            .eks()
            .describe_cluster(&w.admin, "eu-west-1", "my-cluster")
            .await
            .unwrap_err(),
        Error::ResourceNotFound("No cluster found for name: my-cluster.".into())
    );
    let again = w
        .core
        .eks()
        .create_cluster(
            &w.admin,
            CreateCluster {
                name: "my-cluster".into(),
                region: REGION.into(),
                role_arn: Some("arn:aws:iam::111122223333:role/my-role".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        again,
        Error::ResourceInUse("Cluster already exists with name: my-cluster".into())
    );
    let page = w
        .core
        .eks()
        .list_clusters(&w.admin, REGION, None, None)
        .await
        .unwrap();
    assert_eq!(page.items, ["my-cluster"]);
    assert_eq!(
        w.core
            .eks()
            .cluster_by_id(&cluster.id)
            .await
            .unwrap()
            .unwrap()
            .name,
        "my-cluster"
    );
}

#[tokio::test]
async fn associations_follow_the_aws_contract() {
    let w = world(1000).await;
    let created = w
        .core
        .eks()
        .create_association(
            &w.admin,
            REGION,
            "my-cluster",
            association("default", "my-service-account"),
        )
        .await
        .unwrap();
    assert!(created.id.starts_with("a-") && created.id.len() == 19);
    assert!(
        created
            .id
            .chars()
            .skip(2)
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    );
    assert_eq!(
        created.arn,
        format!(
            "arn:aws:eks:us-west-2:111122223333:podidentityassociation/my-cluster/{}",
            created.id
        )
    );
    assert_eq!(created.created, created.modified);
    assert_eq!(created.external_id, None);
    // One association per service account.
    assert_eq!(
        w.core
            .eks()
            .create_association(
                &w.admin,
                REGION,
                "my-cluster",
                association("default", "my-service-account")
            )
            .await
            .unwrap_err(),
        Error::ResourceInUse(format!("Association already exists: {}", created.id))
    );
    // Describe, update, delete.
    let described = w
        .core
        .eks()
        .describe_association(&w.admin, REGION, "my-cluster", &created.id)
        .await
        .unwrap();
    assert_eq!(described, created);
    w.clock.advance_millis(5000);
    let updated = w
        .core
        .eks()
        .update_association(
            &w.admin,
            REGION,
            "my-cluster",
            &created.id,
            UpdateAssociation {
                target_role_arn: Some("arn:aws:iam::444455556666:role/target".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        updated.external_id.as_deref(),
        Some("us-west-2/111122223333/my-cluster/default/my-service-account")
    );
    assert_eq!(updated.modified, created.modified + 5000);
    assert!(matches!(
        w.core
            .eks()
            .update_association(
                &w.admin,
                REGION,
                "my-cluster",
                &created.id,
                UpdateAssociation::default()
            )
            .await,
        Err(Error::InvalidParameter(_))
    ));
    let deleted = w
        .core
        .eks()
        .delete_association(&w.admin, REGION, "my-cluster", &created.id)
        .await
        .unwrap();
    assert_eq!(deleted.id, created.id);
    assert_eq!(
        w.core
            .eks()
            .describe_association(&w.admin, REGION, "my-cluster", &created.id)
            .await
            .unwrap_err(),
        Error::ResourceNotFound(format!(
            "No Pod Identity association found for id: {}.",
            created.id
        ))
    );
    // The service account is free again.
    w.core
        .eks()
        .create_association(
            &w.admin,
            REGION,
            "my-cluster",
            association("default", "my-service-account"),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn bad_input_gets_eks_errors_and_changes_nothing() {
    let w = world(1000).await;
    let too_long = "n".repeat(64);
    let cases = [
        association(&too_long, "sa"),
        association("Bad_NS", "sa"),
        association("default", "SA"),
        CreateAssociation {
            policy: Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#.into()),
            ..association("default", "sa")
        },
        CreateAssociation {
            role_arn: "arn:aws:iam::111122223333:role/missing".into(),
            ..association("default", "sa")
        },
        CreateAssociation {
            role_arn: "arn:aws:iam::111122223333:role/ec2-role".into(),
            ..association("default", "sa")
        },
        CreateAssociation {
            role_arn: "arn:aws:iam::111122223333:role/no-tags".into(),
            ..association("default", "sa")
        },
        CreateAssociation {
            target_role_arn: Some("not-an-arn".into()),
            ..association("default", "sa")
        },
    ];
    let messages: Vec<String> = {
        let mut out = Vec::new();
        for input in cases {
            out.push(invalid_parameter(
                w.core
                    .eks()
                    .create_association(&w.admin, REGION, "my-cluster", input)
                    .await
                    .unwrap_err(),
            ));
        }
        out
    };
    assert_eq!(
        messages[0],
        "The parameter namespace should not be greater than 63 characters."
    );
    assert!(messages[1].starts_with("The parameter namespace contains invalid characters."));
    assert!(messages[2].starts_with("The parameter serviceAccount contains invalid characters."));
    assert_eq!(
        messages[3],
        "disableSessionTags must be set to true when a policy is specified."
    );
    assert_eq!(messages[4], "Role provided in the request does not exist.");
    assert_eq!(messages[5], "Trust policy of the role provided is invalid.");
    assert_eq!(messages[6], "Trust policy of the role provided is invalid.");
    assert!(messages[7].contains("targetRoleArn"));
    // A role of another account, an unknown cluster.
    assert_eq!(
        w.core
            .eks()
            .create_association(
                &w.admin,
                REGION,
                "my-cluster",
                CreateAssociation {
                    role_arn: "arn:aws:iam::444455556666:role/my-role".into(),
                    ..association("default", "sa")
                }
            )
            .await
            .unwrap_err(),
        Error::AccessDenied("Cross-account pass role is not allowed.".into())
    );
    assert_eq!(
        w.core
            .eks()
            .create_association(&w.admin, REGION, "nope", association("default", "sa"))
            .await
            .unwrap_err(),
        Error::ResourceNotFound("No cluster found for name: nope.".into())
    );
    // A session policy with tags disabled is fine; without tags, a trust without TagSession too.
    w.core
        .eks().create_association(
            &w.admin,
            REGION,
            "my-cluster",
            CreateAssociation {
                role_arn: "arn:aws:iam::111122223333:role/no-tags".into(),
                disable_session_tags: true,
                policy: Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#.into()),
                ..association("default", "sa")
            },
        )
        .await
        .unwrap();
    for (max, token) in [(Some(0), None), (Some(101), None), (None, Some("garbage"))] {
        let e = w
            .core
            .eks()
            .list_associations(
                &w.admin,
                REGION,
                "my-cluster",
                &ListAssociations {
                    max_results: max,
                    next_token: token.map(str::to_owned),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(e, Error::InvalidParameter(_)), "{e:?}");
    }
    assert_eq!(
        invalid_parameter(
            w.core
                .eks()
                .describe_association(&w.admin, REGION, "my-cluster", "a-short")
                .await
                .unwrap_err()
        ),
        "The parameter associationId should be 19 characters long."
    );
    let all = w
        .core
        .eks()
        .list_associations(&w.admin, REGION, "my-cluster", &ListAssociations::default())
        .await
        .unwrap();
    assert_eq!(all.items.len(), 1, "only the valid association was made");
}

#[tokio::test]
async fn pages_return_each_association_once_even_while_others_are_created() {
    let w = world(1000).await;
    for i in 0..250 {
        w.core
            .eks()
            .create_association(
                &w.admin,
                REGION,
                "my-cluster",
                association(&format!("ns-{}", i % 7), &format!("sa-{i:03}")),
            )
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = w
            .core
            .eks()
            .list_associations(
                &w.admin,
                REGION,
                "my-cluster",
                &ListAssociations {
                    max_results: Some(30),
                    next_token: token.clone(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        pages += 1;
        seen.extend(page.items.iter().map(|s| s.id.clone()));
        // Creates during the listing.
        w.core
            .eks()
            .create_association(
                &w.admin,
                REGION,
                "my-cluster",
                association("zz-late", &format!("late-{pages}")),
            )
            .await
            .unwrap();
        match page.next_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no association twice");
    assert!(
        seen.len() >= 250,
        "every association that existed throughout: {}",
        seen.len()
    );
    // Filters.
    let ns3 = w
        .core
        .eks()
        .list_associations(
            &w.admin,
            REGION,
            "my-cluster",
            &ListAssociations {
                namespace: Some("ns-3".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ns3.items.len(), 36);
    assert!(ns3.items.iter().all(|s| s.namespace == "ns-3"));
    let one = w
        .core
        .eks()
        .list_associations(
            &w.admin,
            REGION,
            "my-cluster",
            &ListAssociations {
                service_account: Some("sa-010".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(one.items.len(), 1);
    assert_eq!(one.items[0].namespace, "ns-3");
}

#[tokio::test]
async fn client_request_tokens_make_creates_idempotent() {
    let w = world(1000).await;
    let with = |sa: &str, token: &str| CreateAssociation {
        client_request_token: Some(token.into()),
        ..association("default", sa)
    };
    let first = w
        .core
        .eks()
        .create_association(&w.admin, REGION, "my-cluster", with("sa", "t-1"))
        .await
        .unwrap();
    let again = w
        .core
        .eks()
        .create_association(&w.admin, REGION, "my-cluster", with("sa", "t-1"))
        .await
        .unwrap();
    assert_eq!(
        again, first,
        "same token, same request: the same association"
    );
    assert!(matches!(
        w.core
            .eks()
            .create_association(&w.admin, REGION, "my-cluster", with("other", "t-1"))
            .await
            .unwrap_err(),
        Error::InvalidRequest(_)
    ));
}

#[tokio::test]
async fn the_quota_is_per_cluster() {
    let w = world(3).await;
    for i in 0..3 {
        w.create("default", &format!("sa-{i}")).await.unwrap();
    }
    assert!(matches!(
        w.create("default", "sa-3").await.unwrap_err(),
        Error::ResourceLimitExceeded(_)
    ));
    let page = w
        .core
        .eks()
        .list_associations(&w.admin, REGION, "my-cluster", &ListAssociations::default())
        .await
        .unwrap();
    w.core
        .eks()
        .delete_association(&w.admin, REGION, "my-cluster", &page.items[0].id)
        .await
        .unwrap();
    w.create("default", "sa-3").await.unwrap();
}

#[tokio::test]
async fn a_larger_quota_is_exact_at_the_limit_and_counts_deletes() {
    // Far below the quota, a create uses a recent count; near it, every create counts anew.
    let w = world(40).await;
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(w.create("default", &format!("sa-{i}")).await.unwrap());
    }
    let refused = w.create("default", "sa-x").await.unwrap_err();
    assert!(
        matches!(refused, Error::ResourceLimitExceeded(_)),
        "{refused:?}"
    );
    for id in &ids[..30] {
        w.core
            .eks()
            .delete_association(&w.admin, REGION, "my-cluster", id)
            .await
            .unwrap();
    }
    // The deletes count at once: the cluster is near its quota no longer.
    for i in 0..30 {
        w.create("other", &format!("sa-{i}")).await.unwrap();
    }
    w.clock.advance_millis(2_000);
    let refused = w.create("other", "sa-x").await.unwrap_err();
    assert!(
        matches!(refused, Error::ResourceLimitExceeded(_)),
        "{refused:?}"
    );
}

async fn stored(store: &Arc<dyn Store>, ns: &'static str, key: &str) -> Item {
    store.get(ns, key).await.unwrap().unwrap()
}

#[tokio::test]
async fn an_association_counted_before_two_character_shards_is_uncounted_from_its_own_shard() {
    let w = world(1).await;
    let id = w.create("default", "legacy").await.unwrap();
    // Make it what an earlier release wrote: no `count_shard` in the record, and the count in
    // the shard of the id's first random character.
    let store = w.core.store();
    let cluster_key = format!("{}/{REGION}/my-cluster", w.admin.account());
    let record_key = format!("{cluster_key}/{id}");
    let item = stored(store, "association", &record_key).await;
    let mut record: serde_json::Value = serde_json::from_str(&item.value).unwrap();
    let shard = record["count_shard"].as_str().unwrap().to_owned();
    assert_eq!(shard, id.get(2..4).unwrap());
    record.as_object_mut().unwrap().remove("count_shard");
    let new_shard = format!("{cluster_key}/{shard}");
    let old_shard = format!("{cluster_key}/{}", id.get(2..3).unwrap());
    let counted = stored(store, "association-count", &new_shard).await;
    assert_eq!(counted.value, "1");
    store
        .commit(vec![
            Op::update("association", record_key, record.to_string(), item.version),
            Op::delete("association-count", new_shard, counted.version),
            Op::create("association-count", old_shard.clone(), "1"),
        ])
        .await
        .unwrap();
    assert!(matches!(
        w.create("default", "other").await.unwrap_err(),
        Error::ResourceLimitExceeded(_)
    ));
    w.core
        .eks()
        .delete_association(&w.admin, REGION, "my-cluster", &id)
        .await
        .unwrap();
    let old = stored(store, "association-count", &old_shard).await;
    assert_eq!(old.value, "0");
    w.create("default", "other").await.unwrap();
}

#[tokio::test]
async fn pass_role_is_required() {
    let w = world(1000).await;
    w.core
        .iam()
        .create_user(
            &w.admin,
            podid_core::CreateUser {
                name: "dev".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    w.core
        .iam().put_entity_policy(
            &w.admin,
            Entity::User,
            "dev",
            "eks",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"eks:*","Resource":"*"}]}"#.into(),
        )
        .await
        .unwrap();
    let key = w
        .core
        .iam()
        .create_access_key(&w.admin, Some("dev"))
        .await
        .unwrap();
    let dev = w.core.caller(&key.record).await.unwrap();
    let e = w
        .core
        .eks()
        .create_association(&dev, REGION, "my-cluster", association("default", "sa"))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        Error::AccessDenied("User: arn:aws:iam::111122223333:user/dev is not authorized to perform: iam:PassRole on resource: arn:aws:iam::111122223333:role/my-role because no identity-based policy allows the iam:PassRole action".into())
    );
}

#[tokio::test]
async fn service_account_tokens_verify_against_the_cluster_keys() {
    let w = world(1000).await;
    let token = w
        .core
        .eks()
        .create_service_account_token(
            &w.admin,
            REGION,
            "my-cluster",
            ServiceAccountToken {
                namespace: "default".into(),
                service_account: "my-service-account".into(),
                pod: Some(("app-1".into(), "uid-1".into())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let cluster = w
        .core
        .eks()
        .describe_cluster(&w.admin, REGION, "my-cluster")
        .await
        .unwrap();
    let jwks = w.core.eks().cluster_jwks(&cluster).unwrap();
    let claims = podid_jwt::verify(&token, &jwks, Timestamp::from_secs(1_700_862_800), 0).unwrap();
    assert_eq!(
        claims["sub"],
        "system:serviceaccount:default:my-service-account"
    );
    assert_eq!(claims["aud"], serde_json::json!(["pods.eks.amazonaws.com"]));
    assert_eq!(claims["iss"], cluster.issuer.as_str());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        86_400
    );
    assert_eq!(claims["kubernetes.io"]["namespace"], "default");
    assert_eq!(claims["kubernetes.io"]["pod"]["name"], "app-1");
    assert_eq!(
        claims["kubernetes.io"]["serviceaccount"]["name"],
        "my-service-account"
    );
    // After a rotation the old key still verifies its tokens; new tokens use the new key.
    w.core
        .eks()
        .rotate_cluster_keys(&w.admin, REGION, "my-cluster")
        .await
        .unwrap();
    let cluster = w
        .core
        .eks()
        .describe_cluster(&w.admin, REGION, "my-cluster")
        .await
        .unwrap();
    let jwks = w.core.eks().cluster_jwks(&cluster).unwrap();
    assert_eq!(jwks.keys.len(), 2);
    podid_jwt::verify(&token, &jwks, Timestamp::from_secs(1_700_862_800), 0).unwrap();
}

#[tokio::test]
async fn external_issuers_key_sets_are_fetched_and_refreshed() {
    let source = world(1000).await;
    let local = source
        .core
        .eks()
        .describe_cluster(&source.admin, REGION, "my-cluster")
        .await
        .unwrap();
    let jwks = serde_json::to_string(&source.core.eks().cluster_jwks(&local).unwrap()).unwrap();
    let issuer = "https://kubernetes.example.com".to_owned();
    let documents = common::Documents::issuer(&issuer, &jwks);
    let fetcher = documents.clone();
    let (core, clock, admin, _) =
        common::two_accounts_with(5, 1_700_862_734, move |core| core.with_fetcher(fetcher)).await;
    let external = |name: &str, issuer: &str| CreateCluster {
        name: name.into(),
        region: REGION.into(),
        tokens: ClusterTokens::External {
            issuer: issuer.into(),
            jwks: None,
            jwks_uri: None,
        },
        ..Default::default()
    };
    // Discovery, then the key set.
    let cluster = core
        .eks()
        .create_cluster(&admin, external("ext", &issuer))
        .await
        .unwrap();
    assert_eq!(
        documents.fetches.load(std::sync::atomic::Ordering::SeqCst),
        2
    );
    assert_eq!(core.eks().cluster_jwks(&cluster).unwrap().keys.len(), 1);
    // A fresh key set is not fetched again; an hour later it is.
    core.eks()
        .refresh_cluster_jwks(&cluster, false)
        .await
        .unwrap();
    assert_eq!(
        documents.fetches.load(std::sync::atomic::Ordering::SeqCst),
        2
    );
    clock.advance_millis(3600 * 1000);
    core.eks()
        .refresh_cluster_jwks(&cluster, false)
        .await
        .unwrap();
    assert_eq!(
        documents.fetches.load(std::sync::atomic::Ordering::SeqCst),
        3
    );
    // Forced refreshes are limited to one a minute.
    let cluster = core
        .eks()
        .describe_cluster(&admin, REGION, "ext")
        .await
        .unwrap();
    core.eks()
        .refresh_cluster_jwks(&cluster, true)
        .await
        .unwrap();
    assert_eq!(
        documents.fetches.load(std::sync::atomic::Ordering::SeqCst),
        3
    );
    // An issuer that serves nothing.
    let e = core
        .eks()
        .create_cluster(&admin, external("broken", "https://nowhere.example.com"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::InvalidParameter(ref m) if m.contains("Cannot fetch https://nowhere.example.com/.well-known/openid-configuration")),
        "{e:?}"
    );
}
