//! Pod Identity associations at scale, over HTTP against a real `podid server` process:
//! create 100,000 associations over 100 clusters (every write durable), then look them up by
//! (cluster, namespace, service account) and page through lists, on SQLite and, when
//! `PODID_TEST_DATABASE_URL` is set, on PostgreSQL. A page of a full cluster is compared with a
//! page of a cluster holding 10 associations.
//!
//! Run: `cargo bench -p podid --bench associations` (optional: `PODID_BENCH_SECONDS`,
//! `PODID_BENCH_CONNECTIONS`, `PODID_BENCH_CLUSTERS`, `PODID_BENCH_PER_CLUSTER`).
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a benchmark program fails loudly"
)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Connection, Server, on_each_backend, setting, start};

const POD_TRUST: &str = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22Service%22%3A%22pods.eks.amazonaws.com%22%7D%2C%22Action%22%3A%5B%22sts%3AAssumeRole%22%2C%22sts%3ATagSession%22%5D%7D%5D%7D";
const JSON: &str = "application/json";

async fn eks(
    connection: &mut Connection,
    server: &Server,
    method: &'static str,
    path: &str,
    query: &str,
    body: &str,
) -> (u16, String) {
    connection
        .send(&server.credentials, "eks", method, path, query, JSON, body)
        .await
}

fn association(n: u64, clusters: u64) -> (String, String) {
    let cluster = format!("c-{:03}", n % clusters);
    let body = format!(
        r#"{{"namespace":"ns-{}","serviceAccount":"sa-{}","roleArn":"arn:aws:iam::111122223333:role/pod-role"}}"#,
        (n / clusters) % 10,
        n / clusters
    );
    (cluster, body)
}

async fn run(label: &str, server: Server, connections: usize, seconds: u64) {
    let clusters: u64 = setting("PODID_BENCH_CLUSTERS", 100);
    let per_cluster: u64 = setting("PODID_BENCH_PER_CLUSTER", 1000);
    let total = clusters * per_cluster;
    let server = Arc::new(server);
    let mut setup = Connection::open(&server.address).await;
    let (status, xml) = setup
        .exchange(
            &server.credentials,
            "iam",
            &format!("Action=CreateRole&Version=2010-05-08&RoleName=pod-role&AssumeRolePolicyDocument={POD_TRUST}"),
        )
        .await;
    assert_eq!(status, 200, "{xml}");
    let started = Instant::now();
    for c in 0..=clusters {
        let name = if c == clusters {
            "small".to_owned()
        } else {
            format!("c-{c:03}")
        };
        let (status, body) = eks(
            &mut setup,
            &server,
            "POST",
            "/clusters",
            "",
            &format!(r#"{{"name":"{name}"}}"#),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    println!(
        "{label:<9} {clusters} clusters (each with a new RSA signing key) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for i in 0..10 {
        let body = format!(
            r#"{{"namespace":"default","serviceAccount":"sa-{i}","roleArn":"arn:aws:iam::111122223333:role/pod-role"}}"#
        );
        let (status, text) = eks(
            &mut setup,
            &server,
            "POST",
            "/clusters/small/pod-identity-associations",
            "",
            &body,
        )
        .await;
        assert_eq!(status, 200, "{text}");
    }

    // Creates: every association is a durable transaction (association, service-account index,
    // count shard).
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (server, next, failed) = (server.clone(), next.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let mut connection = Connection::open(&server.address).await;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                let (cluster, body) = association(n, clusters);
                let path = format!("/clusters/{cluster}/pod-identity-associations");
                let (status, _) = eks(&mut connection, &server, "POST", &path, "", &body).await;
                if status != 200 {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{label:<9} create                       {:>9.0} associations/s  ({total} in {elapsed:.1} s, {connections} connections, {} failed)",
        total as f64 / elapsed,
        failed.load(Ordering::Relaxed)
    );

    // Lookups by (cluster, namespace, service account), at random.
    let rate = load_for(seconds, connections, server.clone(), move |rng, _| {
        let n = rng % total;
        let cluster = format!("c-{:03}", n % clusters);
        let query = format!(
            "namespace=ns-{}&serviceAccount=sa-{}",
            (n / clusters) % 10,
            n / clusters
        );
        (
            format!("/clusters/{cluster}/pod-identity-associations"),
            query,
            1,
        )
    })
    .await;
    println!(
        "{label:<9} lookup (cluster, ns, sa)     {:>9.0} req/s  ({connections} connections, {seconds} s, {} failed)",
        rate.0, rate.1
    );

    // Pages through full clusters (every page, following nextToken), and of the small one: pages
    // of 10 in both, so that only the size of what is listed differs; and pages of 100.
    for (what, full, size) in [
        ("list page of 10, full clusters", true, 10),
        ("list page of 10, 10-association cluster", false, 10),
        ("list page of 100, full clusters", true, 100),
    ] {
        let rate = pages(seconds, connections, server.clone(), clusters, full, size).await;
        println!(
            "{label:<9} {what:<40} {:>9.0} pages/s  ({connections} connections, {seconds} s, {} failed)",
            rate.0, rate.1
        );
    }
}

/// Signed GETs, each from `request(random, worker)`: (path, query, expected items); req/s.
async fn load_for<F>(
    seconds: u64,
    connections: usize,
    server: Arc<Server>,
    request: F,
) -> (f64, u64)
where
    F: Fn(u64, usize) -> (String, String, usize) + Send + Sync + 'static,
{
    let request = Arc::new(request);
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for worker in 0..connections {
        let (server, request, done, failed) = (
            server.clone(),
            request.clone(),
            done.clone(),
            failed.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut connection = Connection::open(&server.address).await;
            let mut rng = 0x9E37_79B9_7F4A_7C15_u64.wrapping_mul(worker as u64 + 1);
            while Instant::now() < deadline {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let (path, query, expected) = request(rng, worker);
                // A lookup answers one association: the summary has its id once.
                let (status, body) = eks(&mut connection, &server, "GET", &path, &query, "").await;
                if status == 200 && body.matches("\"associationId\"").count() == expected {
                    done.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let started = Instant::now();
    for t in tasks {
        t.await.unwrap();
    }
    (
        done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64(),
        failed.load(Ordering::Relaxed),
    )
}

/// Walks lists page by page (`size` per page); pages/s.
async fn pages(
    seconds: u64,
    connections: usize,
    server: Arc<Server>,
    clusters: u64,
    full: bool,
    size: usize,
) -> (f64, u64) {
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for worker in 0..connections {
        let (server, done, failed) = (server.clone(), done.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let mut connection = Connection::open(&server.address).await;
            let mut c = worker as u64;
            let mut token: Option<String> = None;
            while Instant::now() < deadline {
                let cluster = if full {
                    format!("c-{:03}", c % clusters)
                } else {
                    "small".to_owned()
                };
                let query = match &token {
                    Some(t) => format!("maxResults={size}&nextToken={t}"),
                    None => format!("maxResults={size}"),
                };
                let path = format!("/clusters/{cluster}/pod-identity-associations");
                let (status, body) = eks(&mut connection, &server, "GET", &path, &query, "").await;
                let page: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                let items = page["associations"].as_array().map_or(0, Vec::len);
                let expected = if full { size } else { 10 };
                if status == 200 && items == expected {
                    done.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                token = page["nextToken"].as_str().map(str::to_owned);
                if token.is_none() {
                    c += connections as u64;
                }
            }
        }));
    }
    let started = Instant::now();
    for t in tasks {
        t.await.unwrap();
    }
    (
        done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64(),
        failed.load(Ordering::Relaxed),
    )
}

fn main() {
    let seconds: u64 = setting("PODID_BENCH_SECONDS", 5);
    let connections: usize = setting("PODID_BENCH_CONNECTIONS", 32);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(on_each_backend(|label, url| async move {
        run(
            label,
            start(url.as_deref(), &["--association-quota", "1000"]),
            connections,
            seconds,
        )
        .await;
    }));
}
