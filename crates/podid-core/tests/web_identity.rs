//! AssumeRoleWithWebIdentity on the in-memory store: seed 001's cross-account IRSA (a local
//! cluster in account 111122223333, its issuer an OIDC provider of account 444455556666), and
//! every way a token or a trust can fail.
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
use podid_core::{
    AssumeRole, AssumeRoleWithWebIdentity, Assumer, Caller, Core, CreateOidcProvider, CreateRole,
    Entity, Error, WebIdentitySession,
};
use podid_types::{FixedClock, Secret};

const REGION: &str = "us-west-2";
const ROLE_B: &str = "arn:aws:iam::444455556666:role/account-b-role";

struct World {
    core: Core,
    clock: Arc<FixedClock>,
    a: Caller,
    b: Caller,
    issuer: String,
}

/// Seed 001 option 1: the cluster in A, its issuer registered in B, B's role trusting it for
/// `default/app` with audience `sts.amazonaws.com`.
async fn world() -> World {
    let (core, clock, a, b) = common::two_accounts(7, 1_700_862_734).await;
    common::local_clusters(&core, &a, REGION, &["my-cluster", "other-cluster"]).await;
    let issuer = core
        .eks()
        .describe_cluster(&a, REGION, "my-cluster")
        .await
        .unwrap()
        .issuer;
    let w = World {
        core,
        clock,
        a,
        b,
        issuer,
    };
    w.provider(&w.b).await;
    let host = w.host();
    w.role(
        &w.b,
        "account-b-role",
        &format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"Federated":"arn:aws:iam::444455556666:oidc-provider/{host}"}},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{{"StringEquals":{{"{host}:sub":"system:serviceaccount:default:app","{host}:aud":"sts.amazonaws.com"}}}}}}]}}"#
        ),
    )
    .await;
    w
}

impl World {
    fn host(&self) -> String {
        self.issuer.trim_start_matches("https://").to_owned()
    }

    async fn provider(&self, admin: &Caller) {
        self.core
            .iam()
            .create_oidc_provider(
                admin,
                CreateOidcProvider {
                    url: self.issuer.clone(),
                    client_ids: vec!["sts.amazonaws.com".into()],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }

    async fn role(&self, admin: &Caller, name: &str, trust: &str) {
        common::create_role(&self.core, admin, name, trust).await;
    }

    async fn token(&self, cluster: &str, sa: &str, audience: &str) -> String {
        self.core
            .eks()
            .create_service_account_token(
                &self.a,
                REGION,
                cluster,
                ServiceAccountToken {
                    namespace: "default".into(),
                    service_account: sa.into(),
                    audiences: vec![audience.into()],
                    ..Default::default()
                },
            )
            .await
            .unwrap()
    }

    async fn assume(
        &self,
        role_arn: &str,
        token: &str,
        duration: Option<u32>,
    ) -> Result<WebIdentitySession, Error> {
        self.core
            .sts()
            .assume_role_with_web_identity(AssumeRoleWithWebIdentity {
                role_arn: role_arn.into(),
                session_name: "irsa".into(),
                token: Secret::new(token.into()),
                duration_seconds: duration,
                ..Default::default()
            })
            .await
    }
}

fn invalid(result: Result<WebIdentitySession, Error>) -> String {
    match result {
        Err(Error::InvalidIdentityToken(message)) => message,
        other => panic!("expected InvalidIdentityToken, got {other:?}"),
    }
}

#[tokio::test]
async fn a_cluster_token_assumes_a_role_of_another_account_through_its_oidc_provider() {
    let w = world().await;
    let token = w.token("my-cluster", "app", "sts.amazonaws.com").await;
    let session = w.assume(ROLE_B, &token, None).await.unwrap();
    assert_eq!(
        session.assumed.arn,
        "arn:aws:sts::444455556666:assumed-role/account-b-role/irsa"
    );
    assert_eq!(session.subject, "system:serviceaccount:default:app");
    assert_eq!(
        session.provider,
        format!("arn:aws:iam::444455556666:oidc-provider/{}", w.host())
    );
    assert_eq!(session.audience, "sts.amazonaws.com");
    assert!(
        w.issuer
            .starts_with("https://oidc.eks.us-west-2.amazonaws.com/id/")
    );
    // The session chains further, with the 1-hour cap of chained sessions.
    w.core
        .iam()
        .create_role(
            &w.b,
            CreateRole {
                name: "next".into(),
                trust_policy: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"sts:AssumeRole"}]}"#.into(),
                max_session_duration: Some(43_200),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    w.core
        .iam()
        .put_entity_policy(
            &w.b,
            Entity::Role,
            "account-b-role",
            "chain",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}]}"#.into(),
        )
        .await
        .unwrap();
    let opened = w
        .core
        .open_session(
            session.assumed.credentials.session_token.expose(),
            &session.assumed.credentials.access_key_id,
        )
        .await
        .unwrap();
    let caller = w.core.session_caller(&opened).await.unwrap();
    assert_eq!(caller.arn(), session.assumed.arn);
    let sts = w.core.sts();
    let chain = |duration| {
        let input = AssumeRole {
            role_arn: "arn:aws:iam::444455556666:role/next".into(),
            session_name: "next".into(),
            duration_seconds: duration,
            ..Default::default()
        };
        sts.assume(Assumer::Caller(&caller), input)
    };
    assert_eq!(
        chain(None).await.unwrap().arn,
        "arn:aws:sts::444455556666:assumed-role/next/next"
    );
    assert_eq!(
        chain(Some(7200)).await.unwrap_err(),
        Error::Validation(
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.".into()
        )
    );
}

#[tokio::test]
async fn tokens_and_trusts_that_do_not_hold_are_refused_with_aws_codes() {
    let w = world().await;
    let good = w.token("my-cluster", "app", "sts.amazonaws.com").await;

    // No provider for the issuer in the role's account (the provider is in B only).
    w.role(
        &w.a,
        "a-role",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"arn:aws:iam::111122223333:oidc-provider/x.example.com"},"Action":"sts:AssumeRoleWithWebIdentity"}]}"#,
    )
    .await;
    assert_eq!(
        invalid(
            w.assume("arn:aws:iam::111122223333:role/a-role", &good, None)
                .await
        ),
        format!(
            "No OpenIDConnect provider found in your account for {}",
            w.issuer
        )
    );
    // A token of another cluster, with the same subject: another issuer, no provider.
    let other = w.token("other-cluster", "app", "sts.amazonaws.com").await;
    assert!(
        invalid(w.assume(ROLE_B, &other, None).await)
            .starts_with("No OpenIDConnect provider found in your account for https://oidc.eks.")
    );
    // Wrong audience.
    let pods = w.token("my-cluster", "app", "pods.eks.amazonaws.com").await;
    assert_eq!(
        invalid(w.assume(ROLE_B, &pods, None).await),
        "Incorrect token audience"
    );
    // The `sub` of another service account: the trust's condition does not hold.
    let other_sa = w.token("my-cluster", "intruder", "sts.amazonaws.com").await;
    assert_eq!(
        w.assume(ROLE_B, &other_sa, None).await.unwrap_err(),
        Error::AccessDenied("Not authorized to perform sts:AssumeRoleWithWebIdentity".into())
    );
    // A role that does not exist says no more than a trust that does not allow.
    assert_eq!(
        w.assume("arn:aws:iam::444455556666:role/ghost", &good, None)
            .await
            .unwrap_err(),
        Error::AccessDenied("Not authorized to perform sts:AssumeRoleWithWebIdentity".into())
    );
    // A tampered payload, `alg: none`, and an HMAC signed with the public key.
    let parts: Vec<&str> = good.split('.').collect();
    let forged_claims = {
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut claims: serde_json::Value =
            serde_json::from_slice(&engine.decode(parts[1]).unwrap()).unwrap();
        claims["sub"] = "system:serviceaccount:default:app".into();
        claims["exp"] = (1_700_862_734 + 999_999).into();
        engine.encode(claims.to_string())
    };
    let tampered = format!("{}.{forged_claims}.{}", parts[0], parts[2]);
    assert!(invalid(w.assume(ROLE_B, &tampered, None).await).contains("refused"));
    let header = |alg: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#))
    };
    let none = format!("{}.{}.", header("none"), parts[1]);
    assert!(invalid(w.assume(ROLE_B, &none, None).await).contains("refused"));
    let hmac = format!("{}.{}.{}", header("HS256"), parts[1], parts[2]);
    assert!(invalid(w.assume(ROLE_B, &hmac, None).await).contains("refused"));
    assert!(invalid(w.assume(ROLE_B, "not-a-jwt", None).await).contains("not a JWT"));
    // DurationSeconds over the role's maximum (one hour by default).
    assert_eq!(
        w.assume(ROLE_B, &good, Some(7200)).await.unwrap_err(),
        Error::Validation(
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
                .into()
        )
    );
    // Expired: a day and more later.
    w.clock.advance_millis((86_400 + 120) * 1000);
    assert!(matches!(
        w.assume(ROLE_B, &good, None).await,
        Err(Error::ExpiredIdentityToken(m)) if m.starts_with("Token expired: current date/time ")
    ));
}

#[tokio::test]
async fn a_trust_without_the_web_identity_action_refuses() {
    let w = world().await;
    let host = w.host();
    w.role(
        &w.b,
        "assume-only",
        &format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"Federated":"arn:aws:iam::444455556666:oidc-provider/{host}"}},"Action":"sts:AssumeRole"}}]}}"#
        ),
    )
    .await;
    let token = w.token("my-cluster", "app", "sts.amazonaws.com").await;
    assert_eq!(
        w.assume("arn:aws:iam::444455556666:role/assume-only", &token, None)
            .await
            .unwrap_err(),
        Error::AccessDenied("Not authorized to perform sts:AssumeRoleWithWebIdentity".into())
    );
}

/// A token of `issuer` for `aud`, signed by `key`, with the given extra claims.
fn idp_token(
    key: &podid_jwt::SigningKey,
    issuer: &str,
    now: i64,
    extra: serde_json::Value,
) -> String {
    let mut claims = serde_json::json!({
        "iss": issuer, "aud": "my-app", "sub": "user-1", "iat": now, "exp": now + 3600,
    });
    for (name, value) in extra.as_object().unwrap() {
        claims[name] = value.clone();
    }
    key.sign(claims.as_object().unwrap()).unwrap()
}

#[tokio::test]
async fn other_issuers_key_sets_are_fetched_and_kept_and_their_tags_need_tag_session() {
    let now = 1_700_862_734;
    let key = podid_jwt::SigningKey::generate_es256().unwrap();
    let issuer = "https://idp.example.com";
    let jwks = serde_json::to_string(&podid_jwt::Jwks {
        keys: vec![key.jwk()],
    })
    .unwrap();
    let documents = common::Documents::issuer(issuer, &jwks);
    let fetcher = documents.clone();
    let (core, clock, a, _) =
        common::two_accounts_with(9, now, move |core| core.with_fetcher(fetcher)).await;
    for url in [issuer, "https://down.example.com"] {
        core.iam()
            .create_oidc_provider(
                &a,
                CreateOidcProvider {
                    url: url.into(),
                    client_ids: vec!["my-app".into()],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    let trust = |actions: &str| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"Federated":"arn:aws:iam::111122223333:oidc-provider/idp.example.com"}},"Action":{actions},"Condition":{{"StringEquals":{{"idp.example.com:sub":"user-1","aws:RequestTag/team":"blue"}}}}}}]}}"#
        )
    };
    common::create_role(
        &core,
        &a,
        "no-tags",
        &trust(r#""sts:AssumeRoleWithWebIdentity""#),
    )
    .await;
    common::create_role(
        &core,
        &a,
        "tags",
        &trust(r#"["sts:AssumeRoleWithWebIdentity","sts:TagSession"]"#),
    )
    .await;
    let assume = |role: &str, token: String| {
        core.sts()
            .assume_role_with_web_identity(AssumeRoleWithWebIdentity {
                role_arn: format!("arn:aws:iam::111122223333:role/{role}"),
                session_name: "web".into(),
                token: Secret::new(token),
                ..Default::default()
            })
    };
    let tagged = idp_token(
        &key,
        issuer,
        now,
        serde_json::json!({"https://aws.amazon.com/tags": {"principal_tags": {"team": ["blue"]}, "transitive_tag_keys": ["team"]}}),
    );
    // Tags in the token need sts:TagSession.
    assert_eq!(
        assume("no-tags", tagged.clone()).await.unwrap_err(),
        Error::AccessDenied("Not authorized to perform sts:TagSession".into())
    );
    assert_eq!(documents.count(), 2, "discovery, then the key set");
    let session = assume("tags", tagged.clone()).await.unwrap();
    assert_eq!(
        session.provider,
        "arn:aws:iam::111122223333:oidc-provider/idp.example.com"
    );
    assert_eq!(
        (session.subject.as_str(), session.audience.as_str()),
        ("user-1", "my-app")
    );
    assert_eq!(documents.count(), 2, "the key set is kept");
    let opened = core
        .open_session(
            session.assumed.credentials.session_token.expose(),
            &session.assumed.credentials.access_key_id,
        )
        .await
        .unwrap();
    let caller = core.session_caller(&opened).await.unwrap();
    assert_eq!(caller.tags(), [("team".to_owned(), "blue".to_owned())]);
    // A token without the tag does not meet the trust's condition.
    let untagged = idp_token(&key, issuer, now, serde_json::json!({}));
    assert_eq!(
        assume("tags", untagged).await.unwrap_err(),
        Error::AccessDenied("Not authorized to perform sts:AssumeRoleWithWebIdentity".into())
    );
    // Not yet valid.
    let early = idp_token(&key, issuer, now, serde_json::json!({"nbf": now + 600}));
    assert!(
        matches!(assume("tags", early).await, Err(Error::InvalidIdentityToken(m)) if m.contains("not valid before"))
    );
    // A key the set lacks: refused, and fetched again only after a minute.
    let stranger = podid_jwt::SigningKey::generate().unwrap();
    let unknown = idp_token(&stranger, issuer, now, serde_json::json!({}));
    assert!(
        matches!(assume("tags", unknown.clone()).await, Err(Error::InvalidIdentityToken(m)) if m.contains("not in the key set of https://idp.example.com"))
    );
    assert_eq!(documents.count(), 2);
    clock.advance_millis(61_000);
    assert!(assume("tags", unknown).await.is_err());
    assert_eq!(documents.count(), 4, "fetched again for the unknown key");
    // An issuer that cannot be reached.
    let down = idp_token(&key, "https://down.example.com", now, serde_json::json!({}));
    assert_eq!(
        assume("tags", down).await.unwrap_err(),
        Error::IdpCommunicationError("Couldn't retrieve verification key from your identity provider, please reference AssumeRoleWithWebIdentity documentation for requirements".into())
    );
}
