//! EKS Auth's AssumeRoleForPodIdentity on the in-memory store: the seed 000 scenario (a target
//! role in another account), session tags, and the negative matrix.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

mod common;

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use podid_core::eks::{ClusterTokens, CreateAssociation, CreateCluster, ServiceAccountToken};
use podid_core::{Caller, Core, CreateRole, CreateUser, Entity, Error, PageRequest};
use podid_types::{FixedClock, Timestamp};
use sha2::{Digest, Sha256};

const REGION: &str = "us-west-2";
const POD_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]}]}"#;
const POD_ROLE: &str = "arn:aws:iam::111122223333:role/pod-role";
const TARGET: &str = "arn:aws:iam::444455556666:role/target";

struct World {
    core: Core,
    clock: Arc<FixedClock>,
    a: Caller,
    b: Caller,
}

async fn world() -> World {
    world_with(|core| core).await
}

/// [`world`], with the core configured by `configure`.
async fn world_with(configure: impl FnOnce(Core) -> Core) -> World {
    let (core, clock, a, b) = common::two_accounts_with(21, 1_700_862_734, configure).await;
    for (name, trust) in [("pod-role", POD_TRUST), ("other-role", POD_TRUST)] {
        common::create_role(&core, &a, name, trust).await;
    }
    // The pod role may assume the target role (and tag the session).
    core.iam().put_entity_policy(
        &a,
        Entity::Role,
        "pod-role",
        "to-target",
        format!(r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":["sts:AssumeRole","sts:TagSession"],"Resource":"{TARGET}"}}]}}"#),
    )
    .await
    .unwrap();
    common::local_clusters(&core, &a, REGION, &["my-cluster", "other-cluster"]).await;
    World { core, clock, a, b }
}

impl World {
    async fn token(&self, cluster: &str, sa: &str, audiences: Vec<String>) -> String {
        self.core
            .eks()
            .create_service_account_token(
                &self.a,
                REGION,
                cluster,
                ServiceAccountToken {
                    namespace: "default".into(),
                    service_account: sa.into(),
                    audiences,
                    pod: Some((
                        "app-7d9f-x2k4q".into(),
                        "0d3c2a4e-1111-2222-3333-444455556666".into(),
                    )),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
    }

    async fn associate(
        &self,
        sa: &str,
        target: Option<&str>,
    ) -> podid_core::eks::AssociationRecord {
        self.core
            .eks()
            .create_association(
                &self.a,
                REGION,
                "my-cluster",
                CreateAssociation {
                    namespace: "default".into(),
                    service_account: sa.into(),
                    role_arn: POD_ROLE.into(),
                    target_role_arn: target.map(str::to_owned),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
    }

    /// The target role in account B, trusting the pod role with the association's external id.
    async fn target(&self, external_id: &str) {
        let trust = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{POD_ROLE}"}},"Action":["sts:AssumeRole","sts:TagSession"],"Condition":{{"StringEquals":{{"sts:ExternalId":"{external_id}"}}}}}}]}}"#
        );
        self.core
            .iam()
            .create_role(
                &self.b,
                CreateRole {
                    name: "target".into(),
                    trust_policy: trust,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        // Namespace `default` may list roles and may not read one.
        self.core
            .iam().put_entity_policy(
                &self.b,
                Entity::Role,
                "target",
                "abac",
                r#"{"Version":"2012-10-17","Statement":[
                    {"Effect":"Allow","Action":["iam:ListRoles","iam:GetRole"],"Resource":"*","Condition":{"StringEquals":{"aws:PrincipalTag/kubernetes-namespace":"default"}}},
                    {"Effect":"Deny","Action":"iam:GetRole","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalTag/kubernetes-namespace":"default"}}}]}"#
                    .into(),
            )
            .await
            .unwrap();
    }

    /// AssumeRoleForPodIdentity on `my-cluster` as `a`, audited as the server audits it.
    async fn call(&self, token: &str) -> Result<podid_core::eks::PodCredentials, Error> {
        let (caller, audit) = common::audited(
            &self.core,
            &self.a,
            "AssumeRoleForPodIdentity",
            serde_json::json!({"clusterName": "my-cluster", "token": token}),
        );
        let result = self
            .core
            .eks_auth()
            .assume_role_for_pod_identity(&caller, REGION, "my-cluster", token)
            .await;
        common::finish(&self.core, &audit, &caller, &result).await;
        result
    }

    /// What the newest audit record says EKS Auth decided.
    async fn last_decision(&self) -> serde_json::Value {
        let record = common::last_record(&self.core, &self.a).await;
        assert_eq!(record.event_name, "AssumeRoleForPodIdentity");
        assert_eq!(record.request_parameters["token"], podid_core::HIDDEN);
        record.additional_event_data.unwrap()["podIdentity"].clone()
    }

    async fn session(&self, creds: &podid_core::eks::PodCredentials) -> Caller {
        let c = &creds.assumed.credentials;
        let opened = self
            .core
            .open_session(c.session_token.expose(), &c.access_key_id)
            .await
            .unwrap();
        self.core.session_caller(&opened).await.unwrap()
    }
}

#[tokio::test]
async fn one_hop_with_the_six_transitive_session_tags() {
    let w = world().await;
    let association = w.associate("api", None).await;
    let token = w.token("my-cluster", "api", vec![]).await;
    let creds = w.call(&token).await.unwrap();
    assert_eq!(
        (creds.namespace.as_str(), creds.service_account.as_str()),
        ("default", "api")
    );
    assert_eq!(creds.association_id, association.id);
    let session_name = creds.assumed.arn.rsplit('/').next().unwrap().to_owned();
    // eks-<cluster>-<pod>-<uuid>: the UUID is kept whole, the names are shortened to fit 64.
    assert!(
        session_name.starts_with("eks-my-cluster-app-7d9f-x2k-"),
        "{session_name}"
    );
    assert_eq!(session_name.len(), 64);
    assert!(
        creds
            .assumed
            .arn
            .starts_with("arn:aws:sts::111122223333:assumed-role/pod-role/")
    );
    assert_eq!(
        creds.assumed.credentials.expiration,
        Timestamp::from_secs(1_700_862_734 + 6 * 3600),
        "one hop: six hours"
    );
    let session = w.session(&creds).await;
    let mut tags = session.tags().to_vec();
    tags.sort();
    let keys: Vec<&str> = tags.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "eks-cluster-arn",
            "eks-cluster-name",
            "kubernetes-namespace",
            "kubernetes-pod-name",
            "kubernetes-pod-uid",
            "kubernetes-service-account"
        ]
    );
    assert_eq!(
        session.session().unwrap().transitive_tags.len(),
        6,
        "all transitive"
    );
    // The audit keeps the decision.
    let last = w.last_decision().await;
    assert_eq!(last["outcome"], "allowed");
    assert_eq!(last["roles"], serde_json::json!([POD_ROLE]));
    assert_eq!(last["pod"], "app-7d9f-x2k4q");
}

#[tokio::test]
async fn seed_000_target_role_in_another_account() {
    let w = world().await;
    let association = w.associate("xacct", Some(TARGET)).await;
    let external_id = association.external_id.clone().unwrap();
    assert_eq!(
        external_id,
        "us-west-2/111122223333/my-cluster/default/xacct"
    );
    w.target(&external_id).await;
    let creds = w
        .call(&w.token("my-cluster", "xacct", vec![]).await)
        .await
        .unwrap();
    assert!(
        creds
            .assumed
            .arn
            .starts_with("arn:aws:sts::444455556666:assumed-role/target/eks-my-cluster-"),
        "{}",
        creds.assumed.arn
    );
    assert_eq!(
        creds.assumed.credentials.expiration,
        Timestamp::from_secs(1_700_862_734 + 3600),
        "role chaining: one hour"
    );
    let session = w.session(&creds).await;
    assert_eq!(session.account().to_string(), "444455556666");
    // aws:PrincipalTag/kubernetes-namespace is in effect in account B.
    w.core
        .iam()
        .list_roles(&session, None, &PageRequest::default())
        .await
        .unwrap();
    let denied = w.core.iam().get_role(&session, "target").await.unwrap_err();
    assert!(
        matches!(&denied, Error::AccessDenied(m) if m.contains("with an explicit deny")),
        "{denied:?}"
    );
    assert_eq!(
        w.last_decision().await["roles"],
        serde_json::json!([POD_ROLE, TARGET])
    );
    // Account B's audit shows the call too: its role was reached.
    let seen_by_b = common::last_record(&w.core, &w.b).await;
    assert_eq!(seen_by_b.event_name, "AssumeRoleForPodIdentity");
}

#[tokio::test]
async fn the_server_sets_how_long_pod_credentials_last() {
    let now = 1_700_862_734;
    // (server lifetime, one hop's, a target role's): the target at most an hour; a lifetime
    // outside 15 minutes to 6 hours is brought into that range.
    for (lifetime, one_hop, target) in [
        (900, 900, 900),
        (2 * 3600, 2 * 3600, 3600),
        (60, 900, 900),
        (12 * 3600, 6 * 3600, 3600),
    ] {
        let w = world_with(|core| core.with_pod_credential_lifetime(lifetime)).await;
        w.associate("api", None).await;
        let association = w.associate("xacct", Some(TARGET)).await;
        w.target(&association.external_id.clone().unwrap()).await;
        for (sa, seconds) in [("api", one_hop), ("xacct", target)] {
            let creds = w
                .call(&w.token("my-cluster", sa, vec![]).await)
                .await
                .unwrap();
            assert_eq!(
                creds.assumed.credentials.expiration,
                Timestamp::from_secs(now + i64::from(seconds)),
                "lifetime {lifetime} s, service account {sa}"
            );
        }
    }
}

fn b64(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

#[tokio::test]
async fn the_negative_matrix() {
    let w = world().await;
    w.associate("api", None).await;
    let token = w.token("my-cluster", "api", vec![]).await;
    let invalid = |r: Result<podid_core::eks::PodCredentials, Error>| match r {
        Err(Error::InvalidToken(m)) => m,
        other => panic!("expected InvalidToken, got {other:?}"),
    };
    // No association.
    let unassociated = w.token("my-cluster", "nobody", vec![]).await;
    assert!(matches!(
        w.call(&unassociated).await,
        Err(Error::ResourceNotFound(_))
    ));
    // A token of another cluster: signed by a key this cluster does not have.
    let foreign = w.token("other-cluster", "api", vec![]).await;
    assert!(invalid(w.call(&foreign).await).contains("not a key of cluster my-cluster's issuer"));
    // Another audience.
    let sts_audience = w
        .token("my-cluster", "api", vec!["sts.amazonaws.com".into()])
        .await;
    assert!(invalid(w.call(&sts_audience).await).contains("audience"));
    // Tampered payload.
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = "system:serviceaccount:kube-system:admin".into();
    let tampered = format!("{}.{}.{}", parts[0], b64(&claims.to_string()), parts[2]);
    assert!(invalid(w.call(&tampered).await).contains("signature"));
    // `alg: none`, and HMAC with the public key as the secret.
    let kid =
        serde_json::from_slice::<serde_json::Value>(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap())
            .unwrap()["kid"]
            .as_str()
            .unwrap()
            .to_owned();
    let none = format!("{}.{}.", b64(r#"{"alg":"none"}"#), parts[1]);
    assert!(invalid(w.call(&none).await).contains("`none`"));
    let cluster = w
        .core
        .eks()
        .describe_cluster(&w.a, REGION, "my-cluster")
        .await
        .unwrap();
    let public = serde_json::to_string(&w.core.eks().cluster_jwks(&cluster).unwrap()).unwrap();
    let signed = format!(
        "{}.{}",
        b64(&format!(r#"{{"alg":"HS256","kid":"{kid}"}}"#)),
        parts[1]
    );
    let hmac = format!(
        "{signed}.{}",
        URL_SAFE_NO_PAD.encode(hmac_sha256(public.as_bytes(), signed.as_bytes()))
    );
    assert!(invalid(w.call(&hmac).await).contains("`HS256`"));
    assert!(invalid(w.call("not-a-jwt").await).contains("not a JWT"));
    // Expired (past the leeway).
    w.clock.advance_millis((86_400 + 61) * 1000);
    assert!(matches!(
        w.call(&token).await,
        Err(Error::ExpiredIdentityToken(_))
    ));
}

#[tokio::test]
async fn refusals_name_the_hop_and_the_reason() {
    let w = world().await;
    // A caller (node) without eks-auth:AssumeRoleForPodIdentity.
    w.core
        .iam()
        .create_user(
            &w.a,
            CreateUser {
                name: "node".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let key = w
        .core
        .iam()
        .create_access_key(&w.a, Some("node"))
        .await
        .unwrap();
    let node = w.core.caller(&key.record).await.unwrap();
    w.associate("api", None).await;
    let token = w.token("my-cluster", "api", vec![]).await;
    let e = w
        .core
        .eks_auth()
        .assume_role_for_pod_identity(&node, REGION, "my-cluster", &token)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::AccessDenied(m) if m.contains("eks-auth:AssumeRoleForPodIdentity")),
        "{e:?}"
    );
    // The role's trust no longer names pods.eks.amazonaws.com (changed after the association).
    w.core
        .iam().update_assume_role_policy(
            &w.a,
            "pod-role",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#.into(),
        )
        .await
        .unwrap();
    let e = w.call(&token).await.unwrap_err();
    assert!(
        matches!(&e, Error::AccessDenied(m) if m.starts_with("EKS Pod Identity could not assume the association role arn:aws:iam::111122223333:role/pod-role: User: pods.eks.amazonaws.com is not authorized to perform: sts:AssumeRole")),
        "{e:?}"
    );
    // Trust without sts:TagSession while tags are on.
    w.core
        .iam().update_assume_role_policy(
            &w.a,
            "pod-role",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#.into(),
        )
        .await
        .unwrap();
    let e = w.call(&token).await.unwrap_err();
    assert!(
        matches!(&e, Error::AccessDenied(m) if m.contains("sts:TagSession")),
        "{e:?}"
    );
    w.core
        .iam()
        .update_assume_role_policy(&w.a, "pod-role", POD_TRUST.into())
        .await
        .unwrap();
    // The target trust's ExternalId is not the association's.
    let association = w.associate("xacct", Some(TARGET)).await;
    w.target("someone-else").await;
    let xtoken = w.token("my-cluster", "xacct", vec![]).await;
    let e = w.call(&xtoken).await.unwrap_err();
    assert!(
        matches!(&e, Error::AccessDenied(m) if m.starts_with(&format!("EKS Pod Identity could not assume the target role {TARGET}: User: arn:aws:sts::111122223333:assumed-role/pod-role/eks-my-cluster-"))),
        "{e:?}"
    );
    // The pod role lacking sts:AssumeRole on the target.
    w.core
        .iam().update_assume_role_policy(
            &w.b,
            "target",
            format!(r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{POD_ROLE}"}},"Action":["sts:AssumeRole","sts:TagSession"],"Condition":{{"StringEquals":{{"sts:ExternalId":"{}"}}}}}}]}}"#, association.external_id.clone().unwrap()),
        )
        .await
        .unwrap();
    w.call(&xtoken).await.unwrap();
    w.core
        .iam()
        .delete_entity_policy(&w.a, Entity::Role, "pod-role", "to-target")
        .await
        .unwrap();
    let e = w.call(&xtoken).await.unwrap_err();
    assert!(
        matches!(&e, Error::AccessDenied(m) if m.contains("target role")),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_deleted_association_stops_new_credentials_not_issued_ones() {
    let w = world().await;
    let association = w.associate("api", None).await;
    let token = w.token("my-cluster", "api", vec![]).await;
    let creds = w.call(&token).await.unwrap();
    w.core
        .eks()
        .delete_association(&w.a, REGION, "my-cluster", &association.id)
        .await
        .unwrap();
    // A later millisecond: the trail orders records of one millisecond by request id.
    w.clock.advance_millis(1);
    assert!(matches!(
        w.call(&token).await,
        Err(Error::ResourceNotFound(_))
    ));
    // The credentials already issued stay valid until they expire.
    let session = w.session(&creds).await;
    assert!(session.session().is_some());
    assert_eq!(
        w.last_decision().await["outcome"],
        "ResourceNotFoundException"
    );
}

/// An external cluster `real` whose issuer signs with `key` (its JWKS given inline), and an
/// association of `default/api` with the pod role; the issuer.
async fn external_cluster(w: &World, key: &podid_jwt::SigningKey) -> &'static str {
    let jwks = serde_json::to_value(podid_jwt::Jwks {
        keys: vec![key.jwk()],
    })
    .unwrap();
    let issuer = "https://oidc.example.com/id/REAL";
    w.core
        .eks()
        .create_cluster(
            &w.a,
            CreateCluster {
                name: "real".into(),
                region: REGION.into(),
                tokens: ClusterTokens::External {
                    issuer: issuer.into(),
                    jwks: Some(jwks.to_string()),
                    jwks_uri: None,
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    w.core
        .eks()
        .create_association(
            &w.a,
            REGION,
            "real",
            CreateAssociation {
                namespace: "default".into(),
                service_account: "api".into(),
                role_arn: POD_ROLE.into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    issuer
}

/// A pod token's claims for `external_cluster`, with `times` (`exp`, `nbf`, `iat`) as given.
fn pod_claims(
    issuer: &str,
    times: serde_json::Value,
) -> serde_json::Map<String, serde_json::Value> {
    let mut claims = serde_json::json!({
        "aud": ["pods.eks.amazonaws.com"], "iss": issuer,
        "kubernetes.io": {"namespace": "default", "pod": {"name": "p", "uid": "u"},
                          "serviceaccount": {"name": "api", "uid": "s"}},
        "sub": "system:serviceaccount:default:api",
    });
    for (name, value) in times.as_object().unwrap() {
        claims[name] = value.clone();
    }
    claims.as_object().unwrap().clone()
}

#[tokio::test]
async fn external_clusters_es256_tokens() {
    let w = world().await;
    // A real cluster configured with an ECDSA service-account key.
    let key = podid_jwt::SigningKey::generate_es256().unwrap();
    let issuer = external_cluster(&w, &key).await;
    let now = 1_700_862_734;
    let claims = pod_claims(
        issuer,
        serde_json::json!({"exp": now + 3600, "iat": now, "nbf": now}),
    );
    let token = key.sign(&claims).unwrap();
    assert!(token.starts_with(&b64(&format!(r#"{{"alg":"ES256","kid":"{}"}}"#, key.kid()))));
    let creds = w
        .core
        .eks_auth()
        .assume_role_for_pod_identity(&w.a, REGION, "real", &token)
        .await
        .unwrap();
    assert!(
        creds
            .assumed
            .arn
            .starts_with("arn:aws:sts::111122223333:assumed-role/pod-role/eks-real-p-")
    );
}

/// Issue 11: time claims of any other shape than a JSON number used to skip the expiry check.
#[tokio::test]
async fn every_shape_of_time_claim_is_checked() {
    let w = world().await;
    let key = podid_jwt::SigningKey::generate().unwrap();
    let issuer = external_cluster(&w, &key).await;
    let now = 1_700_862_734_i64;
    let future = now + 3600;
    let assume = |times: serde_json::Value| {
        let token = key.sign(&pod_claims(issuer, times)).unwrap();
        let core = &w.core;
        let a = &w.a;
        async move {
            core.eks_auth()
                .assume_role_for_pod_identity(a, REGION, "real", &token)
                .await
        }
    };
    // Refused as invalid, naming the claim.
    for (times, claim) in [
        (serde_json::json!({"iat": now}), "`exp`"),
        (serde_json::json!({"exp": null}), "`exp` claim is null"),
        (
            serde_json::json!({"exp": future.to_string()}),
            "`exp` claim is a string",
        ),
        (serde_json::json!({"exp": true}), "`exp` claim is a boolean"),
        (
            serde_json::json!({"exp": future, "nbf": "0"}),
            "`nbf` claim is a string",
        ),
        (
            serde_json::json!({"exp": future, "iat": null}),
            "`iat` claim is null",
        ),
        (
            serde_json::json!({"exp": future, "nbf": now as f64 + 120.5}),
            "`nbf` claim says",
        ),
        (
            serde_json::json!({"exp": future, "iat": now as f64 + 60.5}),
            "`iat` claim says",
        ),
    ] {
        match assume(times.clone()).await {
            Err(Error::InvalidToken(message)) => {
                assert!(message.contains(claim), "{times}: {message}");
            }
            other => panic!("{times}: {other:?}"),
        }
    }
    // Refused as expired: a fractional `exp` just past the leeway, and `1e9` (2001).
    for times in [
        serde_json::json!({"exp": now as f64 - 60.5}),
        serde_json::json!({"exp": 1e9}),
    ] {
        assert!(
            matches!(
                assume(times.clone()).await,
                Err(Error::ExpiredIdentityToken(_))
            ),
            "{times}"
        );
    }
    // Accepted: integers, and fractions inside the window.
    for times in [
        serde_json::json!({"exp": future, "nbf": now, "iat": now}),
        serde_json::json!({"exp": future as f64 + 0.25, "nbf": now as f64 - 0.5, "iat": now as f64 + 59.5}),
        serde_json::json!({"exp": now as f64 - 59.5}),
    ] {
        assert!(assume(times.clone()).await.is_ok(), "{times}");
    }
}
