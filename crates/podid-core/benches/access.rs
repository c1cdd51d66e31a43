#![allow(missing_docs, reason = "criterion generates undocumented items")]
#![expect(clippy::expect_used, reason = "benchmark set-up fails loudly")]
//! What the access graph costs on a large world: 1,000 service accounts with Pod Identity
//! associations, 2,000 roles in three accounts, and chains of three hops (service account →
//! its role in A → a role in B → a role in C, with an external id), plus ten roles in B that
//! trust A's root (every session of A is asked about them).
//!
//! Run with `cargo bench -p podid-core --bench access`. The world is built once on the in-memory
//! store; each iteration computes the whole graph of the cluster (`Eks::access_graph`).

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use podid_core::eks::{AccessQuery, ClusterTokens, CreateAssociation, CreateCluster};
use podid_core::{Caller, Core, CreateRole, Entity, MasterKey, SeqIds};
use podid_store::MemoryStore;
use podid_types::{FixedClock, Timestamp};

const A: &str = "111122223333";
const B: &str = "444455556666";
const C: &str = "777788889999";
const REGION: &str = "us-west-2";
const SERVICE_ACCOUNTS: usize = 1000;
const MIDDLE: usize = 495;
const SHARED: usize = 10;
const POD_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]}]}"#;

async fn role(core: &Core, admin: &Caller, name: &str, trust: String, policy: Option<String>) {
    core.iam()
        .create_role(
            admin,
            CreateRole {
                name: name.into(),
                trust_policy: trust,
                ..Default::default()
            },
        )
        .await
        .expect("role");
    if let Some(policy) = policy {
        core.iam()
            .put_entity_policy(admin, Entity::Role, name, "next", policy)
            .await
            .expect("policy");
    }
}

fn trust(principal: &str, external_id: Option<&str>) -> String {
    let condition = external_id
        .map(|id| format!(r#","Condition":{{"StringEquals":{{"sts:ExternalId":"{id}"}}}}"#))
        .unwrap_or_default();
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{principal}"}},"Action":["sts:AssumeRole","sts:TagSession"]{condition}}}]}}"#
    )
}

fn allow(resources: &[String]) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":["sts:AssumeRole","sts:TagSession"],"Resource":{}}}]}}"#,
        serde_json::to_string(resources).expect("json")
    )
}

async fn world() -> (Core, Caller) {
    let ids = Arc::new(SeqIds::new(5));
    let core = Core::new(
        Arc::new(MemoryStore::new()),
        Arc::new(FixedClock::new(Timestamp::from_secs(1_764_892_800))),
        ids.clone(),
        MasterKey::generate(&*ids),
    )
    .with_association_quota(10_000);
    let boot = core
        .bootstrap(&[
            A.parse().expect("account"),
            B.parse().expect("account"),
            C.parse().expect("account"),
        ])
        .await
        .expect("bootstrap");
    let mut admins = Vec::new();
    for key in &boot.keys {
        let (record, _) = core
            .access_key(&key.access_key_id)
            .await
            .expect("key")
            .expect("key");
        admins.push(core.caller(&record).await.expect("caller"));
    }
    let [a, b, c] = <[Caller; 3]>::try_from(admins).expect("three admins");
    core.eks()
        .create_cluster(
            &a,
            CreateCluster {
                name: "big".into(),
                region: REGION.into(),
                tokens: ClusterTokens::Local,
                ..Default::default()
            },
        )
        .await
        .expect("cluster");
    for i in 0..SERVICE_ACCOUNTS {
        let name = format!("pod-{i}");
        let mut next = vec![format!("arn:aws:iam::{B}:role/mid-{}", (i / 2) % MIDDLE)];
        next.extend((0..SHARED).map(|j| format!("arn:aws:iam::{B}:role/shared-{j}")));
        role(&core, &a, &name, POD_TRUST.into(), Some(allow(&next))).await;
        core.eks()
            .create_association(
                &a,
                REGION,
                "big",
                CreateAssociation {
                    namespace: format!("team-{}", i % 20),
                    service_account: format!("sa-{i}"),
                    role_arn: format!("arn:aws:iam::{A}:role/{name}"),
                    ..Default::default()
                },
            )
            .await
            .expect("association");
    }
    // The roles a trust names must exist first: pods, then the middle, then the ends.
    for j in 0..SHARED {
        role(
            &core,
            &b,
            &format!("shared-{j}"),
            trust(&format!("arn:aws:iam::{A}:root"), None),
            None,
        )
        .await;
    }
    for j in 0..MIDDLE {
        role(
            &core,
            &b,
            &format!("mid-{j}"),
            trust(&format!("arn:aws:iam::{A}:role/pod-{}", 2 * j), None),
            Some(allow(&[format!("arn:aws:iam::{C}:role/end-{j}")])),
        )
        .await;
        role(
            &core,
            &c,
            &format!("end-{j}"),
            trust(&format!("arn:aws:iam::{B}:role/mid-{j}"), Some("bench")),
            None,
        )
        .await;
    }
    (core, a)
}

fn graph(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let (core, admin) = runtime.block_on(world());
    let query = AccessQuery {
        region: REGION.into(),
        cluster: Some("big".into()),
        ..Default::default()
    };
    let graph = runtime
        .block_on(core.eks().access_graph(&admin, &query))
        .expect("graph");
    // Each service account and its role; the middle and end roles the even ones reach; the
    // shared roles.
    assert_eq!(
        graph.nodes.len(),
        2 * SERVICE_ACCOUNTS + 2 * MIDDLE + SHARED
    );
    assert!(graph.reach.iter().any(|r| r.depth == 3), "three-hop chains");
    eprintln!(
        "the graph: {} nodes, {} edges, {} (service account, role) pairs",
        graph.nodes.len(),
        graph.edges.len(),
        graph.reach.len()
    );
    let mut group = c.benchmark_group("access graph");
    group.sample_size(10);
    group.bench_function("1,000 service accounts, 2,000 roles, 3-hop chains", |b| {
        b.iter(|| {
            runtime
                .block_on(core.eks().access_graph(&admin, &query))
                .expect("graph")
        });
    });
    group.finish();
}

criterion_group!(benches, graph);
criterion_main!(benches);
