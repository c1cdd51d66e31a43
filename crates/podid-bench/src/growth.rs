//! How podid's costs grow with what it holds: EKS Auth, AssumeRole, an association looked up by
//! id, and list pages, measured at each size of one growing world (associations in cluster
//! `grow`, roles `grow-N`), on 8 connections.

use std::sync::Arc;
use std::time::{Duration, Instant};

use podid_bench::{Connection, Figures, Generator, Request, load};
use podid_sigv4::uri_encoded;

use crate::{ASSUME_TRUST, Peer, create_cluster};

/// One figure at one size.
#[derive(serde::Serialize)]
pub(crate) struct GrowthRow {
    pub(crate) workload: &'static str,
    pub(crate) size: usize,
    #[serde(flatten)]
    pub(crate) figures: Figures,
}

/// Measures every workload at each of `sizes` (ascending), growing the world in between.
pub(crate) async fn growth(
    peer: &Peer,
    sizes: &[usize],
    connections: usize,
    duration: Duration,
) -> Vec<GrowthRow> {
    let admin = &peer.credentials;
    let mut conn = Connection::open(&peer.address).await;
    create_cluster(&mut conn, peer, "grow").await;
    let pod_role = format!("arn:aws:iam::{}:role/bench-pod", peer.account);
    // The association the lookups read and EKS Auth uses: the first one.
    let first = association_body("ns-0", "sa-0", &pod_role);
    let (status, text) = conn
        .send(
            admin,
            "eks",
            "POST",
            "/clusters/grow/pod-identity-associations",
            "",
            "application/json",
            &first,
        )
        .await;
    assert_eq!(status, 200, "CreatePodIdentityAssociation: {text}");
    let created: serde_json::Value = serde_json::from_str(&text).unwrap();
    let association_id = created["association"]["associationId"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = podid_bench::pod_token(&mut conn, admin, "grow", ("ns-0", "sa-0"), "grow-0").await;

    let mut rows = Vec::new();
    let mut held = 1;
    for &size in sizes {
        let began = Instant::now();
        create_associations(peer, "grow", held..size).await;
        create_roles(peer, held..size).await;
        held = held.max(size);
        eprintln!(
            "   (grew to {size} associations and roles in {:.1} s)",
            began.elapsed().as_secs_f64()
        );
        let middle = uri_encoded(&format!(
            "arn:aws:iam::{}:role/grow-{}",
            peer.account,
            size / 2
        ));
        let body = format!(r#"{{"token":"{token}"}}"#);
        let id = association_id.clone();
        let workloads: Vec<(&'static str, Generator)> = vec![
            (
                "AssumeRoleForPodIdentity",
                Arc::new(move |_, _| {
                    Request::json(
                        "eks-auth",
                        "POST",
                        "/clusters/grow/assume-role-for-pod-identity".into(),
                        body.clone(),
                    )
                }),
            ),
            (
                "AssumeRole (a role among them)",
                Arc::new(move |w, n| {
                    Request::query(
                        "sts",
                        format!(
                            "Action=AssumeRole&Version=2011-06-15&RoleArn={middle}&RoleSessionName=g-{w}-{n}"
                        ),
                    )
                }),
            ),
            (
                "DescribePodIdentityAssociation",
                Arc::new(move |_, _| {
                    Request::json(
                        "eks",
                        "GET",
                        format!("/clusters/grow/pod-identity-associations/{id}"),
                        String::new(),
                    )
                }),
            ),
            (
                "ListPodIdentityAssociations (first page of 100)",
                Arc::new(|_, _| {
                    Request::json(
                        "eks",
                        "GET",
                        "/clusters/grow/pod-identity-associations?maxResults=100".into(),
                        String::new(),
                    )
                }),
            ),
            (
                "ListPodIdentityAssociations (one namespace, first page)",
                Arc::new(|_, _| {
                    Request::json(
                        "eks",
                        "GET",
                        "/clusters/grow/pod-identity-associations?namespace=ns-7&maxResults=100"
                            .into(),
                        String::new(),
                    )
                }),
            ),
        ];
        for (workload, generator) in workloads {
            let figures = load(
                &peer.address,
                admin,
                connections,
                duration,
                generator,
                Some(peer.pid()),
            )
            .await;
            crate::progress(&format!("{workload:<56} {size:>7}"), &figures);
            rows.push(GrowthRow {
                workload,
                size,
                figures,
            });
        }
    }
    rows
}

/// Prints the growth table: one row per workload, one column per size.
pub(crate) fn print_growth(rows: &[GrowthRow], sizes: &[usize], connections: usize) {
    if rows.is_empty() {
        return;
    }
    println!();
    print!("| podid, {connections} connections |");
    for size in sizes {
        print!(" {size} |");
    }
    println!();
    println!("|---|{}", "---|".repeat(sizes.len()));
    let mut workloads: Vec<&str> = Vec::new();
    for r in rows {
        if !workloads.contains(&r.workload) {
            workloads.push(r.workload);
        }
    }
    for workload in workloads {
        print!("| {workload} |");
        for &size in sizes {
            match rows
                .iter()
                .find(|r| r.workload == workload && r.size == size)
            {
                Some(r) => print!(
                    " {:.0}/s ({} µs CPU) |",
                    r.figures.rate,
                    r.figures
                        .cpu_us_per_call
                        .map_or("-".into(), |c| format!("{c:.0}"))
                ),
                None => print!(" — |"),
            }
        }
        println!();
    }
}

fn association_body(namespace: &str, service_account: &str, role: &str) -> String {
    format!(
        r#"{{"namespace":"{namespace}","serviceAccount":"{service_account}","roleArn":"{role}"}}"#
    )
}

/// Creates associations `sa-I` (namespace `ns-(I mod 50)`) for each I of `range` in `cluster`,
/// over 8 connections.
pub(crate) async fn create_associations(peer: &Peer, cluster: &str, range: std::ops::Range<usize>) {
    let path = format!("/clusters/{cluster}/pod-identity-associations");
    let role = format!("arn:aws:iam::{}:role/bench-pod", peer.account);
    over_eight(peer, range, move |i| {
        Request::json(
            "eks",
            "POST",
            path.clone(),
            association_body(&format!("ns-{}", i % 50), &format!("sa-{i}"), &role),
        )
    })
    .await;
}

/// Creates roles `grow-I` for each I of `range`, over 8 connections.
async fn create_roles(peer: &Peer, range: std::ops::Range<usize>) {
    let trust = uri_encoded(&ASSUME_TRUST.replace("ACCOUNT", &peer.account));
    over_eight(peer, range, move |i| {
        Request::query(
            "iam",
            format!(
                "Action=CreateRole&Version=2010-05-08&RoleName=grow-{i}&AssumeRolePolicyDocument={trust}"
            ),
        )
    })
    .await;
}

/// Sends `request(i)` for each i of `range` over 8 connections; every answer must be 200.
async fn over_eight(
    peer: &Peer,
    range: std::ops::Range<usize>,
    request: impl Fn(usize) -> Request + Send + Sync + 'static,
) {
    let request = Arc::new(request);
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let (address, admin) = (peer.address.clone(), peer.credentials.clone());
        let request = request.clone();
        let range = range.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Connection::open(&address).await;
            for i in range.skip(worker).step_by(8) {
                let (status, text) = conn.request(&admin, &request(i)).await;
                assert_eq!(status, 200, "{text}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}
