//! The access graph on a fixture world: three accounts, two clusters, associations with and
//! without target roles, IRSA roles with exact, wildcard and missing `sub` conditions, a chain
//! of three roles across accounts with an external id, and a deny on one hop.
//!
//! The graph must match the golden files in `tests/data/access/` (regenerate them with
//! `PODID_BLESS=1`, then read the diff), and every edge is checked by obtaining the credentials
//! (EKS Auth, AssumeRoleWithWebIdentity, AssumeRole): no edge the server would refuse, and no
//! missing edge it would grant.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use podid_core::eks::{
    AccessGraph, AccessQuery, ClusterTokens, CreateAssociation, CreateCluster, Edge,
    ServiceAccountName, ServiceAccountToken,
};
use podid_core::{
    AssumeRole, AssumeRoleWithWebIdentity, Caller, Core, CreateOidcProvider, CreateRole, Entity,
    Error, MasterKey, SeqIds,
};
use podid_store::MemoryStore;
use podid_types::{FixedClock, Secret, Timestamp};

const REGION: &str = "us-west-2";
const A: &str = "111122223333";
const B: &str = "444455556666";
const C: &str = "777788889999";
const POD_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"EksPods","Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]}]}"#;

struct World {
    core: Core,
    admins: BTreeMap<&'static str, Caller>,
    issuers: BTreeMap<&'static str, String>,
    /// Every external id the world's trust policies and associations use.
    external_ids: Vec<String>,
}

fn arn(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:role/{name}")
}

fn allow(actions: &str, resource: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"Next","Effect":"Allow","Action":{actions},"Resource":"{resource}"}}]}}"#
    )
}

impl World {
    fn admin(&self, account: &str) -> &Caller {
        &self.admins[account]
    }

    async fn role(&self, account: &str, name: &str, trust: &str) {
        self.core
            .iam()
            .create_role(
                self.admin(account),
                CreateRole {
                    name: name.into(),
                    trust_policy: trust.into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap_or_else(|e| panic!("role {name}: {e:?}"));
    }

    async fn policy(&self, account: &str, role: &str, name: &str, document: String) {
        self.core
            .iam()
            .put_entity_policy(self.admin(account), Entity::Role, role, name, document)
            .await
            .unwrap();
    }

    async fn associate(
        &self,
        cluster: &str,
        namespace: &str,
        sa: &str,
        role: &str,
        target: Option<&str>,
    ) -> Option<String> {
        self.core
            .eks()
            .create_association(
                self.admin(A),
                REGION,
                cluster,
                CreateAssociation {
                    namespace: namespace.into(),
                    service_account: sa.into(),
                    role_arn: role.into(),
                    target_role_arn: target.map(str::to_owned),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .external_id
    }

    fn host(&self, cluster: &str) -> String {
        self.issuers[cluster]
            .trim_start_matches("https://")
            .to_owned()
    }

    fn irsa_trust(&self, account: &str, cluster: &str, sub: Option<(&str, &str)>) -> String {
        let host = self.host(cluster);
        let condition = match sub {
            Some(("StringEquals", value)) => format!(
                r#","Condition":{{"StringEquals":{{"{host}:sub":"{value}","{host}:aud":"sts.amazonaws.com"}}}}"#
            ),
            Some((operator, value)) => format!(
                r#","Condition":{{"{operator}":{{"{host}:sub":"{value}"}},"StringEquals":{{"{host}:aud":"sts.amazonaws.com"}}}}"#
            ),
            None => String::new(),
        };
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"Irsa","Effect":"Allow","Principal":{{"Federated":"arn:aws:iam::{account}:oidc-provider/{host}"}},"Action":"sts:AssumeRoleWithWebIdentity"{condition}}}]}}"#
        )
    }

    async fn graph(&self, query: AccessQuery) -> AccessGraph {
        self.graph_as(A, query).await.unwrap()
    }

    async fn graph_as(&self, account: &str, query: AccessQuery) -> Result<AccessGraph, Error> {
        self.core
            .eks()
            .access_graph(self.admin(account), &query)
            .await
    }

    async fn token(&self, cluster: &str, namespace: &str, sa: &str, audience: &str) -> String {
        self.core
            .eks()
            .create_service_account_token(
                self.admin(A),
                REGION,
                cluster,
                ServiceAccountToken {
                    namespace: namespace.into(),
                    service_account: sa.into(),
                    audiences: vec![audience.into()],
                    pod: Some((
                        "pod-1".into(),
                        "0d3c2a4e-1111-2222-3333-444455556666".into(),
                    )),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
    }

    /// A caller for a session's credentials.
    async fn session(&self, assumed: &podid_core::AssumedRole) -> Caller {
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

/// The fixture world.
async fn world() -> World {
    let ids = Arc::new(SeqIds::new(19));
    let clock = Arc::new(FixedClock::new(Timestamp::from_secs(1_764_892_800)));
    let core = Core::new(
        Arc::new(MemoryStore::new()),
        clock,
        ids.clone(),
        MasterKey::generate(&*ids),
    );
    let boot = core
        .bootstrap(&[A.parse().unwrap(), B.parse().unwrap(), C.parse().unwrap()])
        .await
        .unwrap();
    let mut admins = BTreeMap::new();
    for (key, account) in boot.keys.iter().zip([A, B, C]) {
        let (record, _) = core.access_key(&key.access_key_id).await.unwrap().unwrap();
        admins.insert(account, core.caller(&record).await.unwrap());
    }
    let mut issuers = BTreeMap::new();
    for name in ["prod", "dev"] {
        let cluster = core
            .eks()
            .create_cluster(
                &admins[A],
                CreateCluster {
                    name: name.into(),
                    region: REGION.into(),
                    tokens: ClusterTokens::Local,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        issuers.insert(name, cluster.issuer);
    }
    let mut w = World {
        core,
        admins,
        issuers,
        external_ids: vec!["chain-secret".into()],
    };
    // IAM OIDC providers: prod's and dev's issuers in A, prod's in B.
    for (account, cluster) in [(A, "prod"), (A, "dev"), (B, "prod")] {
        w.core
            .iam()
            .create_oidc_provider(
                w.admin(account),
                CreateOidcProvider {
                    url: w.issuers[cluster].clone(),
                    client_ids: vec!["sts.amazonaws.com".into()],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }

    // Pod Identity roles in A.
    for name in ["app-role", "hop-role", "lonely-role", "temp-role"] {
        w.role(A, name, POD_TRUST).await;
    }
    w.role(A, "broken-role", POD_TRUST).await;
    // The chain: A app-role → B chain-1 (trusts A's root, no external id) → C chain-2 (external
    // id) ↛ C chain-3 (chain-2's own policy denies it).
    w.policy(
        A,
        "app-role",
        "next",
        allow(r#"["sts:AssumeRole","sts:TagSession"]"#, &arn(B, "chain-1")),
    )
    .await;
    w.role(
        B,
        "chain-1",
        &format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"AccountA","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{A}:root"}},"Action":["sts:AssumeRole","sts:TagSession"]}}]}}"#
        ),
    )
    .await;
    w.policy(
        B,
        "chain-1",
        "next",
        allow(r#"["sts:AssumeRole","sts:TagSession"]"#, &arn(C, "chain-2")),
    )
    .await;
    w.role(
        C,
        "chain-2",
        &format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"FromChain1","Effect":"Allow","Principal":{{"AWS":"{}"}},"Action":["sts:AssumeRole","sts:TagSession"],"Condition":{{"StringEquals":{{"sts:ExternalId":"chain-secret"}}}}}}]}}"#,
            arn(B, "chain-1")
        ),
    )
    .await;
    w.policy(
        C,
        "chain-2",
        "next",
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"sts:*","Resource":"*"}},{{"Sid":"NotChain3","Effect":"Deny","Action":"sts:AssumeRole","Resource":"{}"}}]}}"#,
            arn(C, "chain-3")
        ),
    )
    .await;
    w.role(
        C,
        "chain-3",
        &format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{}"}},"Action":["sts:AssumeRole","sts:TagSession"]}}]}}"#,
            arn(C, "chain-2")
        ),
    )
    .await;

    // Associations in prod: one plain, one with a target role in B (external id), one whose
    // role lacks sts:TagSession.
    w.associate("prod", "default", "app", &arn(A, "app-role"), None)
        .await;
    w.role(B, "target-role", POD_TRUST).await;
    let external_id = w
        .associate(
            "prod",
            "payments",
            "worker",
            &arn(A, "hop-role"),
            Some(&arn(B, "target-role")),
        )
        .await
        .unwrap();
    w.core
        .iam()
        .update_assume_role_policy(
            w.admin(B),
            "target-role",
            format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"FromHop","Effect":"Allow","Principal":{{"AWS":"{}"}},"Action":["sts:AssumeRole","sts:TagSession"],"Condition":{{"StringEquals":{{"sts:ExternalId":"{external_id}"}}}}}}]}}"#,
                arn(A, "hop-role")
            ),
        )
        .await
        .unwrap();
    w.policy(
        A,
        "hop-role",
        "target",
        allow(
            r#"["sts:AssumeRole","sts:TagSession"]"#,
            &arn(B, "target-role"),
        ),
    )
    .await;
    w.associate("prod", "default", "broken", &arn(A, "broken-role"), None)
        .await;
    // Since then, the role no longer lets EKS tag the session.
    w.core
        .iam()
        .update_assume_role_policy(
            w.admin(A),
            "broken-role",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#.into(),
        )
        .await
        .unwrap();
    // In dev: a target role the Pod Identity role may not assume, and a role deleted since.
    w.role(
        C,
        "locked-target",
        &format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{}"}},"Action":["sts:AssumeRole","sts:TagSession"]}}]}}"#,
            arn(A, "lonely-role")
        ),
    )
    .await;
    let locked = w
        .associate(
            "dev",
            "ops",
            "locked",
            &arn(A, "lonely-role"),
            Some(&arn(C, "locked-target")),
        )
        .await
        .unwrap();
    w.external_ids.extend([external_id, locked]);
    w.associate("dev", "ops", "gone", &arn(A, "temp-role"), None)
        .await;
    w.core
        .iam()
        .delete_role(w.admin(A), "temp-role")
        .await
        .unwrap();

    // IRSA: exact, wildcard and missing `sub` conditions, and a role in B.
    w.role(
        A,
        "irsa-exact",
        &w.irsa_trust(
            A,
            "prod",
            Some(("StringEquals", "system:serviceaccount:web:frontend")),
        ),
    )
    .await;
    w.role(
        A,
        "irsa-team",
        &w.irsa_trust(
            A,
            "prod",
            Some(("StringLike", "system:serviceaccount:team-*:*")),
        ),
    )
    .await;
    w.role(A, "irsa-open", &w.irsa_trust(A, "dev", None)).await;
    w.role(
        B,
        "irsa-b",
        &w.irsa_trust(
            B,
            "prod",
            Some(("StringEquals", "system:serviceaccount:web:frontend")),
        ),
    )
    .await;
    for (namespace, name) in [("web", "frontend"), ("team-a", "api"), ("other", "svc")] {
        w.core
            .eks()
            .create_service_account(
                w.admin(A),
                ServiceAccountName {
                    region: REGION,
                    cluster: "prod",
                    namespace,
                    name,
                },
                BTreeMap::new(),
                BTreeMap::new(),
            )
            .await
            .unwrap();
    }
    w
}

/// Every role of the world, for the searches of what the graph might have missed.
fn roles() -> Vec<String> {
    [
        (A, "app-role"),
        (A, "hop-role"),
        (A, "lonely-role"),
        (A, "broken-role"),
        (A, "irsa-exact"),
        (A, "irsa-team"),
        (A, "irsa-open"),
        (B, "chain-1"),
        (B, "target-role"),
        (B, "irsa-b"),
        (C, "chain-2"),
        (C, "chain-3"),
        (C, "locked-target"),
    ]
    .iter()
    .map(|(account, name)| arn(account, name))
    .collect()
}

/// Compares `graph` with `tests/data/access/NAME.json`, or writes it there with `PODID_BLESS=1`.
fn golden(name: &str, graph: &AccessGraph) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/access")
        .join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(graph).unwrap() + "\n";
    if std::env::var_os("PODID_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; write it with PODID_BLESS=1", path.display()));
    assert!(
        text == expected,
        "the graph differs from {}; if the change is meant, run again with PODID_BLESS=1 and read the diff.\n{text}",
        path.display()
    );
}

#[tokio::test]
async fn the_graph_matches_the_golden_files() {
    let w = world().await;
    golden("forward", &w.graph(AccessQuery::default()).await);
    golden(
        "forward-prod-team-a-api",
        &w.graph(AccessQuery {
            region: REGION.into(),
            cluster: Some("prod".into()),
            namespace: Some("team-a".into()),
            service_account: Some("api".into()),
            ..Default::default()
        })
        .await,
    );
    // Reverse: asked by the role's account, across every cluster podid hosts.
    let reverse = AccessQuery {
        role: Some(arn(C, "chain-2")),
        ..Default::default()
    };
    golden(
        "reverse-chain-2",
        &w.graph_as(C, reverse.clone()).await.unwrap(),
    );
    // Another account's role, or cluster, is not the caller's to ask about.
    let denied = w.graph_as(A, reverse).await.unwrap_err();
    assert!(
        matches!(&denied, Error::AccessDenied(m) if m.contains("podid:GetAccessGraph")),
        "{denied:?}"
    );
    let other = w
        .graph_as(
            B,
            AccessQuery {
                region: REGION.into(),
                cluster: Some("prod".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(other, Error::ResourceNotFound(_)), "{other:?}");
}

#[tokio::test]
async fn each_finding_appears_with_its_subject() {
    let w = world().await;
    let graph = w.graph(AccessQuery::default()).await;
    let found: BTreeSet<(&str, &str)> = graph
        .findings
        .iter()
        .map(|f| (f.kind, f.subject.as_str()))
        .collect();
    let by_kind = |kind: &str| -> Vec<&str> {
        found
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, s)| *s)
            .collect()
    };
    assert_eq!(by_kind("IrsaTrustWithoutSub"), vec![arn(A, "irsa-open")]);
    assert_eq!(by_kind("TrustOfAccountRoot"), vec![arn(B, "chain-1")]);
    assert_eq!(
        by_kind("CrossAccountWithoutExternalId"),
        vec![arn(B, "chain-1")]
    );
    assert_eq!(by_kind("AssociationRoleRefuses").len(), 1);
    assert_eq!(by_kind("TargetRoleRefuses").len(), 1);
    assert_eq!(by_kind("DanglingAssociation").len(), 1);
    for finding in &graph.findings {
        assert!(!finding.fix.is_empty() && !finding.message.is_empty());
    }
    // The depth bound is honoured and said.
    let short = w
        .graph(AccessQuery {
            max_depth: Some(1),
            ..Default::default()
        })
        .await;
    assert!(short.truncated);
    // An association's target role is one call of EKS Auth: shown whatever the depth.
    assert!(
        short.edges.iter().all(|e| e.via != "assumeRole"),
        "{:#?}",
        short.edges
    );
    assert!(short.reach.iter().all(|r| r.depth <= 2));
    assert!(!graph.truncated);
}

/// The cluster name and (namespace, name) a graph source stands for: a service account, or a
/// service account its `sub` pattern admits.
fn source(graph: &AccessGraph, id: &str) -> (String, String, String) {
    let node = graph.nodes.iter().find(|n| n.id == id).unwrap();
    let cluster = node
        .cluster
        .as_deref()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    match (&node.namespace, &node.service_account, &node.subject) {
        (Some(namespace), Some(name), _) => (cluster, namespace.clone(), name.clone()),
        (_, _, Some(pattern)) => {
            let sample = if pattern == "*" {
                "system:serviceaccount:x:x".to_owned()
            } else {
                pattern.replace(['*', '?'], "x")
            };
            let mut parts = sample.splitn(4, ':').skip(2);
            (
                cluster,
                parts.next().unwrap().to_owned(),
                parts.next().unwrap().to_owned(),
            )
        }
        _ => panic!("node {id} is not a source"),
    }
}

/// Follows `path` from its source by obtaining credentials, as a pod and its SDK would.
async fn obtain(
    w: &World,
    graph: &AccessGraph,
    from: &str,
    path: &[&Edge],
) -> Result<podid_core::AssumedRole, Error> {
    let (cluster, namespace, name) = source(graph, from);
    let mut current: Option<podid_core::AssumedRole> = None;
    let mut edges = path.iter();
    while let Some(edge) = edges.next() {
        current = Some(match edge.via {
            "podIdentity" => {
                let token = w
                    .token(&cluster, &namespace, &name, "pods.eks.amazonaws.com")
                    .await;
                if edge.intermediate {
                    // EKS Auth makes the target-role hop too.
                    assert_eq!(edges.next().map(|e| e.via), Some("targetRole"));
                }
                w.core
                    .eks_auth()
                    .assume_role_for_pod_identity(w.admin(A), REGION, &cluster, &token)
                    .await?
                    .assumed
            }
            "webIdentity" => {
                let token = w
                    .token(&cluster, &namespace, &name, "sts.amazonaws.com")
                    .await;
                w.core
                    .sts()
                    .assume_role_with_web_identity(AssumeRoleWithWebIdentity {
                        role_arn: edge.to.clone(),
                        session_name: "check".into(),
                        token: Secret::new(token),
                        ..Default::default()
                    })
                    .await?
                    .assumed
            }
            "assumeRole" => {
                let caller = w.session(current.as_ref().unwrap()).await;
                w.core
                    .sts()
                    .assume_role(
                        &caller,
                        AssumeRole {
                            role_arn: edge.to.clone(),
                            session_name: "check".into(),
                            external_id: edge
                                .conditions
                                .iter()
                                .find(|c| c.key == "sts:ExternalId")
                                .map(|c| c.value.clone()),
                            ..Default::default()
                        },
                    )
                    .await?
            }
            other => panic!("edge {} starts no path: {other}", edge.id),
        });
    }
    Ok(current.unwrap())
}

/// `arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION` → the role's ARN.
fn role_of(assumed: &podid_core::AssumedRole) -> String {
    let rest = assumed.arn.strip_prefix("arn:aws:sts::").unwrap();
    let (account, rest) = rest.split_once(':').unwrap();
    let name = rest.split('/').nth(1).unwrap();
    arn(account, name)
}

#[tokio::test]
async fn every_edge_is_granted_and_nothing_else_is() {
    let w = world().await;
    let graph = w.graph(AccessQuery::default()).await;
    let edge = |id: &str| graph.edges.iter().find(|e| e.id == id).unwrap();
    let reach: BTreeSet<(String, String)> = graph
        .reach
        .iter()
        .map(|r| (r.from.clone(), r.role.clone()))
        .collect();
    let external_ids: BTreeSet<Option<String>> = std::iter::once(None)
        .chain(w.external_ids.iter().cloned().map(Some))
        .collect();
    assert!(graph.reach.len() >= 10, "{:#?}", graph.reach);
    for row in &graph.reach {
        // No edge the server would refuse.
        let path: Vec<&Edge> = row.path.iter().map(|id| edge(id)).collect();
        let assumed = obtain(&w, &graph, &row.from, &path)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "{} → {}: the graph says yes, the server {e:?}",
                    row.from, row.role
                )
            });
        assert_eq!(role_of(&assumed), row.role);
        // No missing edge the server would grant: from this session, every other role.
        let caller = w.session(&assumed).await;
        for to in roles() {
            for external_id in &external_ids {
                let granted = w
                    .core
                    .sts()
                    .assume_role(
                        &caller,
                        AssumeRole {
                            role_arn: to.clone(),
                            session_name: "probe".into(),
                            external_id: external_id.clone(),
                            ..Default::default()
                        },
                    )
                    .await
                    .is_ok();
                if granted {
                    assert!(
                        reach.contains(&(row.from.clone(), to.clone()))
                            || row.depth >= graph.max_depth,
                        "{} holds {} and can assume {to} (external id {external_id:?}), which the graph misses",
                        row.from,
                        row.role
                    );
                }
            }
        }
    }
    // Every known service account, as a web identity and through EKS Auth, against every role.
    let sources: Vec<&str> = graph
        .nodes
        .iter()
        .filter(|n| n.kind == "serviceAccount")
        .map(|n| n.id.as_str())
        .collect();
    assert!(sources.len() >= 8, "{sources:#?}");
    for from in sources {
        let (cluster, namespace, name) = source(&graph, from);
        let token = w
            .token(&cluster, &namespace, &name, "sts.amazonaws.com")
            .await;
        for to in roles() {
            let granted = w
                .core
                .sts()
                .assume_role_with_web_identity(AssumeRoleWithWebIdentity {
                    role_arn: to.clone(),
                    session_name: "probe".into(),
                    token: Secret::new(token.clone()),
                    ..Default::default()
                })
                .await
                .is_ok();
            assert_eq!(
                granted,
                graph
                    .edges
                    .iter()
                    .any(|e| e.from == from && e.to == to && e.via == "webIdentity"),
                "{from} as a web identity for {to}"
            );
        }
        let token = w
            .token(&cluster, &namespace, &name, "pods.eks.amazonaws.com")
            .await;
        match w
            .core
            .eks_auth()
            .assume_role_for_pod_identity(w.admin(A), REGION, &cluster, &token)
            .await
        {
            Ok(credentials) => {
                let role = role_of(&credentials.assumed);
                let row = graph
                    .reach
                    .iter()
                    .find(|r| r.from == from && r.role == role);
                assert!(
                    row.is_some_and(|r| edge(&r.path[0]).via == "podIdentity"),
                    "EKS Auth gives {from} {role}, which the graph misses"
                );
            }
            Err(_) => assert!(
                !graph.edges.iter().any(|e| e.from == from
                    && e.via == "podIdentity"
                    && graph
                        .reach
                        .iter()
                        .any(|r| r.from == from && r.path.first() == Some(&e.id))),
                "EKS Auth refuses {from}, which the graph says reaches a role"
            ),
        }
    }
}

#[tokio::test]
async fn a_role_reached_again_with_other_session_tags_is_followed_again() {
    let w = world().await;
    // prod/multi/both reaches `meet` two ways: through IRSA (irsa-x, no session tags, 2 hops)
    // and through Pod Identity (pod-x → mid, with the transitive session tags, 3 hops). Only a
    // session of `meet` that carries `kubernetes-namespace` may assume `last`: the shorter,
    // untagged arrival must not hide the longer, tagged one.
    let trusts = |principals: &[String], condition: &str| {
        let principals: Vec<String> = principals.iter().map(|p| format!("\"{p}\"")).collect();
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":[{}]}},"Action":["sts:AssumeRole","sts:TagSession"]{condition}}}]}}"#,
            principals.join(",")
        )
    };
    let assume = |to: &str| allow(r#"["sts:AssumeRole","sts:TagSession"]"#, &arn(A, to));
    w.role(A, "pod-x", POD_TRUST).await;
    w.role(
        A,
        "irsa-x",
        &w.irsa_trust(
            A,
            "prod",
            Some(("StringEquals", "system:serviceaccount:multi:both")),
        ),
    )
    .await;
    w.role(A, "mid", &trusts(&[arn(A, "pod-x")], "")).await;
    w.role(A, "meet", &trusts(&[arn(A, "irsa-x"), arn(A, "mid")], ""))
        .await;
    w.role(
        A,
        "last",
        &trusts(
            &[arn(A, "meet")],
            r#","Condition":{"StringEquals":{"aws:PrincipalTag/kubernetes-namespace":"multi"}}"#,
        ),
    )
    .await;
    for (role, to) in [
        ("pod-x", "mid"),
        ("mid", "meet"),
        ("irsa-x", "meet"),
        ("meet", "last"),
    ] {
        w.policy(A, role, "next", assume(to)).await;
    }
    w.associate("prod", "multi", "both", &arn(A, "pod-x"), None)
        .await;
    let graph = w
        .graph(AccessQuery {
            region: REGION.into(),
            cluster: Some("prod".into()),
            namespace: Some("multi".into()),
            service_account: Some("both".into()),
            ..Default::default()
        })
        .await;
    let reach = graph
        .reach
        .iter()
        .find(|r| r.role == arn(A, "last"))
        .unwrap_or_else(|| panic!("`last` is not reached: {:#?}", graph.reach));
    assert_eq!(reach.depth, 4);
    // The path the graph gives is one that STS grants.
    let path: Vec<&Edge> = reach
        .path
        .iter()
        .map(|id| graph.edges.iter().find(|e| e.id == *id).unwrap())
        .collect();
    let vias: Vec<&str> = path.iter().map(|e| e.via).collect();
    assert_eq!(
        vias,
        ["podIdentity", "assumeRole", "assumeRole", "assumeRole"]
    );
    let assumed = obtain(&w, &graph, &reach.from, &path).await.unwrap();
    assert_eq!(role_of(&assumed), arn(A, "last"));
    // And the untagged way does not get there.
    let meet = graph
        .reach
        .iter()
        .find(|r| r.role == arn(A, "meet"))
        .unwrap();
    assert_eq!(meet.depth, 2, "the shorter way to `meet` is IRSA's");
}
