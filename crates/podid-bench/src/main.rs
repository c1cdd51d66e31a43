//! `podid-bench peers`: podid and the servers a user would pick instead (moto; FakeCloud when
//! given), side by side in one run, driven by one load generator (this crate's: SigV4 on every
//! request, keep-alive, 1 and N connections, a fixed duration). It prints one table of figures
//! and ratios, and writes them as JSON. `bench/peers` builds and runs it.
//!
//! `podid-bench static-server`: a minimal axum server answering `GET /v1/credentials` with a
//! fixed body, the baseline of the agent's cache hits.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "a benchmark program fails loudly"
)]

use std::collections::BTreeMap;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;

mod growth;
mod propagation;
use podid_bench::{Connection, Figures, Generator, Request, load, rss_kib};
use podid_sigv4::{Credentials, uri_encoded};
use podid_types::Secret;

#[derive(Parser)]
#[command(about = "podid's benchmarks against its peers, with one load generator")]
enum Cli {
    /// Runs podid, moto and (when given) FakeCloud side by side and prints the figures and
    /// ratios.
    Peers(PeersArgs),
    /// Serves `GET /v1/credentials` with a fixed body (the agent's baseline); prints
    /// `listening on ADDRESS`.
    StaticServer {
        /// The body to answer.
        #[arg(long)]
        body: String,
    },
    /// How long a change of a Pod Identity association takes to reach a pod through the agent
    /// (one server, after a restart, two PostgreSQL replicas): p50/p90/p99.
    Propagation(propagation::PropagationArgs),
}

#[derive(clap::Args)]
struct PeersArgs {
    /// The `podid` binary (a release build).
    #[arg(long)]
    podid: PathBuf,
    /// moto's `moto_server`; without it, moto is reported as skipped.
    #[arg(long)]
    moto: Option<PathBuf>,
    /// FakeCloud's `fakecloud`; without it, FakeCloud is reported as skipped.
    #[arg(long)]
    fakecloud: Option<PathBuf>,
    /// FakeCloud's arguments; `{port}` is replaced by the port it must listen on.
    #[arg(
        long,
        default_value = "--addr 127.0.0.1:{port}",
        allow_hyphen_values = true
    )]
    fakecloud_args: String,
    /// Seconds per figure.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// The many-connections figure's connections.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Associations in the cluster whose first page ListPodIdentityAssociations reads.
    #[arg(long, default_value_t = 5000)]
    associations: usize,
    /// Runs of `podid up` on an empty directory.
    #[arg(long, default_value_t = 10)]
    up_runs: usize,
    /// Where to write the figures as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// The sizes (associations in one cluster, and roles) at which podid's costs are measured
    /// again (`growth`); none: no growth figures.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
    growth: Vec<usize>,
    /// Only the workloads whose names contain one of these (case-insensitive; `agent` and
    /// `up` name the agent's and `podid up`'s figures); every workload without it.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

impl PeersArgs {
    fn wants(&self, workload: &str) -> bool {
        let workload = workload.to_ascii_lowercase();
        self.only.is_empty()
            || self
                .only
                .iter()
                .any(|o| workload.contains(&o.to_ascii_lowercase()))
    }
}

#[tokio::main]
async fn main() {
    match Cli::parse() {
        Cli::Peers(args) => peers(args).await,
        Cli::StaticServer { body } => static_server(body).await,
        Cli::Propagation(args) => propagation::propagation(args).await,
    }
}

/// A server under test.
struct Peer {
    name: &'static str,
    child: Child,
    address: String,
    credentials: Credentials,
    account: String,
    _dir: tempfile::TempDir,
}

impl Drop for Peer {
    fn drop(&mut self) {
        // SIGTERM first, so that a server run under a profiler (PODID_BENCH_WRAP) exits
        // cleanly and the profiler writes its data; SIGKILL if it has not gone in 30 s.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Peer {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// One measured figure.
#[derive(serde::Serialize)]
struct Row {
    workload: &'static str,
    connections: usize,
    server: &'static str,
    #[serde(flatten)]
    figures: Figures,
}

async fn peers(args: PeersArgs) {
    let duration = Duration::from_secs(args.seconds);
    let mut rows: Vec<Row> = Vec::new();
    let mut memory: BTreeMap<&'static str, (u64, u64)> = BTreeMap::new();
    let mut skipped: Vec<String> = Vec::new();
    let mut servers = vec![start_podid(&args.podid)];
    match &args.moto {
        Some(moto) => match start_moto(moto) {
            Ok(peer) => servers.push(peer),
            Err(e) => skipped.push(format!("moto: {e}")),
        },
        None => skipped.push("moto: not given (--moto)".into()),
    }
    match &args.fakecloud {
        Some(bin) => match start_fakecloud(bin, &args.fakecloud_args) {
            Ok(peer) => servers.push(peer),
            Err(e) => skipped.push(format!("FakeCloud: {e}")),
        },
        None => skipped.push(
            "FakeCloud: no `fakecloud` binary (cargo install fakecloud; AGPL: run it, never vendor it)"
                .into(),
        ),
    }
    for s in &skipped {
        eprintln!("SKIPPED {s}");
    }
    let counts = [1, args.connections];
    for peer in &servers {
        eprintln!("-- {}", peer.name);
        let idle = rss_kib(peer.pid());
        let world = World::set_up(peer, args.associations).await;
        for (workload, generator, credentials) in world.workloads(peer) {
            if !args.wants(workload) {
                continue;
            }
            for &n in &counts {
                let figures = load(
                    &peer.address,
                    &credentials,
                    n,
                    duration,
                    generator.clone(),
                    Some(peer.pid()),
                )
                .await;
                progress(&format!("{workload:<36} {n:>2} conns"), &figures);
                rows.push(Row {
                    workload,
                    connections: n,
                    server: peer.name,
                    figures,
                });
            }
        }
        memory.insert(peer.name, (idle, rss_kib(peer.pid())));
    }
    // The agent's cache hits beside a static server answering the same body.
    let podid = &servers[0];
    if args.wants("agent") {
        agent_against_static(&args, podid, duration, &counts, &mut rows).await;
    }
    let growth = if args.wants("growth") && !args.growth.is_empty() {
        eprintln!("-- podid, growing");
        growth::growth(podid, &args.growth, args.connections, duration).await
    } else {
        Vec::new()
    };
    let up = if args.wants("up") {
        time_podid_up(&args.podid, args.up_runs)
    } else {
        Vec::new()
    };
    print_table(&rows, &memory, &servers, &counts, &up, &skipped);
    growth::print_growth(&growth, &args.growth, args.connections);
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "seconds": args.seconds,
            "connections": counts,
            "associations": args.associations,
            "rows": rows,
            "rss_kib": memory.iter().map(|(k, (idle, after))| (k.to_string(), serde_json::json!({"idle": idle, "after_load": after}))).collect::<serde_json::Map<_, _>>(),
            "podid_up_ms": up,
            "growth": growth,
            "skipped": skipped,
        });
        std::fs::write(path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
        eprintln!("figures written to {}", path.display());
    }
}

/// What the workloads need on one server: roles, a cluster, associations, tokens.
struct World {
    /// The role AssumeRole assumes (trusts the account).
    assume_role: String,
    /// AssumeRoleWithWebIdentity's role and token, when the server has local clusters.
    web: Option<(String, String)>,
    /// A pod's token of cluster `bench`, for EKS Auth (podid only).
    pod_token: Option<String>,
    /// Whether the server serves EKS's Pod Identity associations.
    associations: bool,
}

const ASSUME_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::ACCOUNT:root"},"Action":["sts:AssumeRole","sts:TagSession"]}]}"#;
const PODS_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]}]}"#;

impl World {
    async fn set_up(peer: &Peer, associations: usize) -> Self {
        let admin = &peer.credentials;
        let mut conn = Connection::open(&peer.address).await;
        let account = &peer.account;
        for (name, trust) in [
            ("bench-assume", ASSUME_TRUST.replace("ACCOUNT", account)),
            ("bench-pod", PODS_TRUST.to_owned()),
        ] {
            let (status, text) = conn
                .exchange(
                    admin,
                    "iam",
                    &format!(
                        "Action=CreateRole&Version=2010-05-08&RoleName={name}&AssumeRolePolicyDocument={}",
                        uri_encoded(&trust)
                    ),
                )
                .await;
            assert_eq!(status, 200, "{}: CreateRole: {text}", peer.name);
        }
        let mut world = Self {
            assume_role: format!("arn:aws:iam::{account}:role/bench-assume"),
            web: None,
            pod_token: None,
            associations: false,
        };
        // EKS: a cluster, if the server has EKS.
        if !try_create_cluster(&mut conn, peer, "bench").await {
            return world;
        }
        let association = |ns: &str, sa: &str| {
            format!(
                r#"{{"namespace":"{ns}","serviceAccount":"{sa}","roleArn":"arn:aws:iam::{account}:role/bench-pod"}}"#
            )
        };
        let (status, _) = conn
            .send(
                admin,
                "eks",
                "POST",
                "/clusters/bench/pod-identity-associations",
                "",
                "application/json",
                &association("default", "app"),
            )
            .await;
        world.associations = status == 200;
        if world.associations {
            fill_list_cluster(peer, associations).await;
        }
        // podid's local clusters: tokens for EKS Auth and for web identity.
        let (status, text) = conn
            .send(
                admin,
                "eks",
                "POST",
                "/clusters/bench/podid/service-account-token",
                "",
                "application/json",
                r#"{"namespace":"default","serviceAccount":"app","podName":"app-0","podUid":"uid-0"}"#,
            )
            .await;
        if status == 200 {
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            world.pod_token = value["token"].as_str().map(str::to_owned);
            world.web = web_identity(&mut conn, admin, account).await;
        }
        world
    }

    /// The workloads this server supports: name, request generator, signing credentials.
    fn workloads(&self, peer: &Peer) -> Vec<(&'static str, Generator, Credentials)> {
        let admin = peer.credentials.clone();
        let anonymous = Credentials {
            access_key_id: String::new(),
            secret_access_key: Secret::new(String::new()),
            session_token: None,
        };
        let run = peer.name;
        let mut out: Vec<(&'static str, Generator, Credentials)> = vec![
            (
                "GetCallerIdentity",
                Arc::new(|_, _| {
                    Request::query("sts", "Action=GetCallerIdentity&Version=2011-06-15".into())
                }),
                admin.clone(),
            ),
            {
                let role = uri_encoded(&self.assume_role);
                (
                    "AssumeRole",
                    Arc::new(move |w, n| {
                        Request::query(
                            "sts",
                            format!(
                                "Action=AssumeRole&Version=2011-06-15&RoleArn={role}&RoleSessionName=s-{w}-{n}"
                            ),
                        )
                    }),
                    admin.clone(),
                )
            },
            {
                let trust = uri_encoded(&ASSUME_TRUST.replace("ACCOUNT", &peer.account));
                let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
                (
                    "CreateRole (durable on podid)",
                    Arc::new(move |w, _| {
                        let k = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        Request::query(
                            "iam",
                            format!(
                                "Action=CreateRole&Version=2010-05-08&RoleName={run}-{w}-{k}&AssumeRolePolicyDocument={trust}"
                            ),
                        )
                    }),
                    admin.clone(),
                )
            },
        ];
        if let Some((role, token)) = &self.web {
            let (role, token) = (uri_encoded(role), token.clone());
            out.push((
                "AssumeRoleWithWebIdentity",
                Arc::new(move |w, n| {
                    Request::query(
                        "sts",
                        format!(
                            "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={role}&RoleSessionName=w-{w}-{n}&WebIdentityToken={token}"
                        ),
                    )
                }),
                anonymous,
            ));
        }
        if self.associations {
            let role = format!("arn:aws:iam::{}:role/bench-pod", peer.account);
            let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
            out.push((
                "CreatePodIdentityAssociation",
                Arc::new(move |w, _| {
                    let k = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    Request::json(
                        "eks",
                        "POST",
                        "/clusters/bench/pod-identity-associations".into(),
                        format!(
                            r#"{{"namespace":"load","serviceAccount":"sa-{w}-{k}","roleArn":"{role}"}}"#
                        ),
                    )
                }),
                admin.clone(),
            ));
            out.push((
                "ListPodIdentityAssociations (first page)",
                Arc::new(|_, _| {
                    Request::json(
                        "eks",
                        "GET",
                        "/clusters/list/pod-identity-associations?maxResults=100".into(),
                        String::new(),
                    )
                }),
                admin.clone(),
            ));
        }
        if let Some(token) = &self.pod_token {
            let body = format!(r#"{{"token":"{token}"}}"#);
            out.push((
                "AssumeRoleForPodIdentity",
                Arc::new(move |_, _| {
                    Request::json(
                        "eks-auth",
                        "POST",
                        "/clusters/bench/assume-role-for-pod-identity".into(),
                        body.clone(),
                    )
                }),
                admin,
            ));
        }
        out
    }
}

/// One figure as it is measured, on stderr.
fn progress(label: &str, figures: &Figures) {
    eprintln!(
        "   {label} {:>9.0}/s  p50 {:>6} µs  p99 {:>6} µs  cpu {:>7} µs/call  {} failed{}",
        figures.rate,
        figures.p50_us,
        figures.p99_us,
        figures
            .cpu_us_per_call
            .map_or("-".into(), |c| format!("{c:.0}")),
        figures.failed,
        figures
            .first_failure
            .as_deref()
            .map_or(String::new(), |f| format!(" (first: {f})"))
    );
}

/// Cluster `list` with `count` associations, created over 8 connections.
async fn fill_list_cluster(peer: &Peer, count: usize) {
    let mut conn = Connection::open(&peer.address).await;
    create_cluster(&mut conn, peer, "list").await;
    let began = Instant::now();
    growth::create_associations(peer, "list", 0..count).await;
    eprintln!(
        "   ({count} associations in cluster `list` in {:.1} s)",
        began.elapsed().as_secs_f64()
    );
}

/// Creates the EKS cluster `name`, or fails the run.
async fn create_cluster(conn: &mut Connection, peer: &Peer, name: &str) {
    assert!(
        try_create_cluster(conn, peer, name).await,
        "{}: CreateCluster `{name}` failed",
        peer.name
    );
}

/// Creates the EKS cluster `name`; whether the server did (servers without EKS do not).
async fn try_create_cluster(conn: &mut Connection, peer: &Peer, name: &str) -> bool {
    let cluster = format!(
        r#"{{"name":"{name}","roleArn":"arn:aws:iam::{}:role/bench-assume","resourcesVpcConfig":{{"subnetIds":["subnet-1"]}}}}"#,
        peer.account
    );
    let (status, _) = conn
        .send(
            &peer.credentials,
            "eks",
            "POST",
            "/clusters",
            "",
            "application/json",
            &cluster,
        )
        .await;
    status == 200
}

/// An OIDC provider for cluster `bench`'s issuer, a role trusting it, and a token: the role's
/// ARN and the token.
async fn web_identity(
    conn: &mut Connection,
    admin: &Credentials,
    account: &str,
) -> Option<(String, String)> {
    let (status, text) = conn
        .send(
            admin,
            "eks",
            "GET",
            "/clusters/bench",
            "",
            "application/json",
            "",
        )
        .await;
    if status != 200 {
        return None;
    }
    let cluster: serde_json::Value = serde_json::from_str(&text).ok()?;
    let issuer = cluster["cluster"]["identity"]["oidc"]["issuer"]
        .as_str()?
        .to_owned();
    let host = issuer.trim_start_matches("https://");
    let (status, _) = conn
        .exchange(
            admin,
            "iam",
            &format!(
                "Action=CreateOpenIDConnectProvider&Version=2010-05-08&Url={}&ClientIDList.member.1=sts.amazonaws.com",
                uri_encoded(&issuer)
            ),
        )
        .await;
    assert_eq!(status, 200);
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"Federated":"arn:aws:iam::{account}:oidc-provider/{host}"}},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{{"StringEquals":{{"{host}:sub":"system:serviceaccount:default:web","{host}:aud":"sts.amazonaws.com"}}}}}}]}}"#
    );
    let (status, _) = conn
        .exchange(
            admin,
            "iam",
            &format!(
                "Action=CreateRole&Version=2010-05-08&RoleName=bench-web&AssumeRolePolicyDocument={}",
                uri_encoded(&trust)
            ),
        )
        .await;
    assert_eq!(status, 200);
    let (status, text) = conn
        .send(
            admin,
            "eks",
            "POST",
            "/clusters/bench/podid/service-account-token",
            "",
            "application/json",
            r#"{"namespace":"default","serviceAccount":"web","audiences":["sts.amazonaws.com"]}"#,
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let token: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some((
        format!("arn:aws:iam::{account}:role/bench-web"),
        token["token"].as_str()?.to_owned(),
    ))
}

fn start_podid(bin: &Path) -> Peer {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // PODID_BENCH_WRAP: a command to run the server under, e.g.
    // `valgrind --tool=callgrind --callgrind-out-file=/tmp/podid.callgrind`.
    let wrap = std::env::var("PODID_BENCH_WRAP").unwrap_or_default();
    let mut words = wrap.split_whitespace();
    let mut command = match words.next() {
        Some(first) => {
            let mut command = Command::new(first);
            command.args(words).arg(bin);
            command
        }
        None => Command::new(bin),
    };
    let mut child = command
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        // Throughput, not the per-caller limits: every load comes from one caller.
        .args(["--sts-rate", "0", "--eks-auth-rate", "0"])
        // Room for the associations the workloads create.
        .args(["--association-quota", "1000000"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{}`: {e}", bin.display()));
    let address = podid_bench::listening_address(child.stdout.take().unwrap());
    Peer {
        name: "podid",
        child,
        address,
        credentials: podid_bench::admin_credentials(&data),
        account: "111122223333".into(),
        _dir: dir,
    }
}

/// A free loopback port (bound, then released for the server to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `address` accepts connections.
fn wait_for(address: &str, child: &mut Child, name: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(address).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{name} exited with {status}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("{name} did not listen on {address} within 60 s"))
}

fn start_moto(bin: &Path) -> Result<Peer, String> {
    start_peer("moto", bin, "-H 127.0.0.1 -p {port}")
}

fn start_fakecloud(bin: &Path, template: &str) -> Result<Peer, String> {
    start_peer("FakeCloud", bin, template)
}

/// A peer that takes any credentials and account 123456789012, started with `template`'s
/// arguments (`{port}` replaced by a free port).
fn start_peer(name: &'static str, bin: &Path, template: &str) -> Result<Peer, String> {
    let port = free_port();
    let args: Vec<String> = template
        .split_whitespace()
        .map(|a| a.replace("{port}", &port.to_string()))
        .collect();
    let mut child = Command::new(bin)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start `{}`: {e}", bin.display()))?;
    let address = format!("127.0.0.1:{port}");
    wait_for(&address, &mut child, name)?;
    Ok(Peer {
        name,
        child,
        address,
        credentials: testing_keys(),
        account: "123456789012".into(),
        _dir: tempfile::tempdir().unwrap(),
    })
}

fn testing_keys() -> Credentials {
    Credentials {
        access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
        secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into()),
        session_token: None,
    }
}

/// `podid agent` for cluster `bench` against `podid`, its cache hits beside a static axum
/// server answering the same body.
async fn agent_against_static(
    args: &PeersArgs,
    podid: &Peer,
    duration: Duration,
    counts: &[usize],
    rows: &mut Vec<Row>,
) {
    let mut conn = Connection::open(&podid.address).await;
    let token = podid_bench::pod_token(
        &mut conn,
        &podid.credentials,
        "bench",
        ("default", "app"),
        "agent-0",
    )
    .await;
    let (mut agent, address) =
        spawn_agent(&args.podid, &podid.address, &podid.credentials, "bench");
    let anonymous = Credentials {
        access_key_id: String::new(),
        secret_access_key: Secret::new(String::new()),
        session_token: None,
    };
    let get: Generator = Arc::new(move |_, _| Request {
        service: "",
        method: "GET",
        path: "/v1/credentials".into(),
        content_type: "application/json",
        body: String::new(),
        headers: vec![("authorization", token.clone())],
    });
    // The first request fills the cache; the body is what the baseline answers.
    let mut first = Connection::open(&address).await;
    let (status, body) = first.request(&anonymous, &get(0, 0)).await;
    assert_eq!(status, 200, "the agent: {body}");
    let own = std::env::current_exe().unwrap();
    let (mut baseline, baseline_address) = spawn_with_marker(
        Command::new(own).args(["static-server", "--body", &body]),
        "listening on ",
    );
    for (name, address, pid) in [
        (
            "agent cache hit (GET /v1/credentials)",
            address.as_str(),
            agent.id(),
        ),
        (
            "static axum baseline (same body)",
            baseline_address.as_str(),
            baseline.id(),
        ),
    ] {
        for &n in counts {
            let figures = load(address, &anonymous, n, duration, get.clone(), Some(pid)).await;
            progress(&format!("{name:<36} {n:>2} conns"), &figures);
            rows.push(Row {
                workload: name,
                connections: n,
                server: "podid",
                figures,
            });
        }
    }
    let _ = agent.kill();
    let _ = agent.wait();
    let _ = baseline.kill();
    let _ = baseline.wait();
}

/// `podid agent` for `cluster` against the server at `server`, signing with `admin`: the
/// process and the address it serves on.
fn spawn_agent(bin: &Path, server: &str, admin: &Credentials, cluster: &str) -> (Child, String) {
    let (child, address) = spawn_with_marker(
        Command::new(bin)
            .args(["agent", "--cluster-name", cluster])
            .args(["--endpoint", &format!("http://{server}")])
            .args(["--bind-hosts", "127.0.0.1"])
            .args(["--port", "0", "--probe-port", "0", "--metrics-port", "0"])
            .env("AWS_REGION", podid_bench::REGION)
            .env("AWS_ACCESS_KEY_ID", &admin.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", admin.secret_access_key.expose()),
        "serving http://",
    );
    (child, address.split('/').next().unwrap().to_owned())
}

/// Spawns `command` and waits for the stdout line holding `marker`: the child and what follows
/// the marker.
fn spawn_with_marker(command: &mut Command, marker: &str) -> (Child, String) {
    let mut child = command
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let rest = loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("no `{marker}` line"))
            .unwrap();
        if let Some(rest) = line.split(marker).nth(1) {
            break rest.trim().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, rest)
}

/// Milliseconds from spawning `podid up` on an empty directory to its `ready` line, `runs`
/// times: the sorted times.
fn time_podid_up(bin: &Path, runs: usize) -> Vec<f64> {
    let mut times = Vec::new();
    for _ in 0..runs {
        let dir = tempfile::tempdir().unwrap();
        let began = Instant::now();
        let (mut child, _) = spawn_with_marker(
            Command::new(bin)
                .args([
                    "up",
                    "--listen",
                    "127.0.0.1:0",
                    "--agent-port",
                    "0",
                    "--data-dir",
                ])
                .arg(dir.path().join("data")),
            "ready in",
        );
        times.push(began.elapsed().as_secs_f64() * 1000.0);
        let _ = child.kill();
        let _ = child.wait();
    }
    times.sort_by(f64::total_cmp);
    times
}

fn print_table(
    rows: &[Row],
    memory: &BTreeMap<&'static str, (u64, u64)>,
    servers: &[Peer],
    counts: &[usize],
    up: &[f64],
    skipped: &[String],
) {
    let names: Vec<&str> = servers.iter().map(|s| s.name).collect();
    let mut workloads: Vec<&str> = Vec::new();
    for r in rows {
        if !workloads.contains(&r.workload) {
            workloads.push(r.workload);
        }
    }
    print!("| workload | conns |");
    for name in &names {
        print!(" {name} |");
    }
    for name in names.iter().skip(1) {
        print!(" podid ÷ {name} |");
    }
    println!();
    println!("|{}", "---|".repeat(2 + names.len() * 2 - 1));
    for workload in workloads {
        for &n in counts {
            let find = |server: &str| {
                rows.iter()
                    .find(|r| r.workload == workload && r.connections == n && r.server == server)
            };
            print!("| {workload} | {n} |");
            for name in &names {
                match find(name) {
                    Some(r) => print!(
                        " {:.0}/s (p99 {:.2} ms{}) |",
                        r.figures.rate,
                        r.figures.p99_us as f64 / 1000.0,
                        r.figures
                            .cpu_us_per_call
                            .map_or(String::new(), |c| format!(", {c:.0} µs CPU"))
                    ),
                    None => print!(" — |"),
                }
            }
            for name in names.iter().skip(1) {
                match (find("podid"), find(name)) {
                    (Some(p), Some(o)) if o.figures.rate > 0.0 => {
                        print!(" {:.1}× |", p.figures.rate / o.figures.rate);
                    }
                    _ => print!(" — |"),
                }
            }
            println!();
        }
    }
    println!();
    for (name, (idle, after)) in memory {
        println!(
            "RSS {name}: {:.1} MiB idle, {:.1} MiB after the load",
            *idle as f64 / 1024.0,
            *after as f64 / 1024.0
        );
    }
    if let Some(agent) = rows
        .iter()
        .filter(|r| r.workload.starts_with("agent"))
        .zip(rows.iter().filter(|r| r.workload.starts_with("static")))
        .map(|(a, s)| {
            format!(
                "{:.2}× at {} conns",
                a.figures.rate / s.figures.rate,
                a.connections
            )
        })
        .reduce(|a, b| format!("{a}, {b}"))
    {
        println!("agent cache hits ÷ static axum baseline: {agent}");
    }
    if !up.is_empty() {
        let median = up[up.len() / 2];
        let p90 = up[((up.len() * 9) / 10).min(up.len() - 1)];
        println!(
            "podid up on an empty directory, {} runs: median {median:.0} ms, p90 {p90:.0} ms",
            up.len()
        );
    }
    for s in skipped {
        println!("SKIPPED {s}");
    }
}

async fn static_server(body: String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("listening on {}", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/v1/credentials",
        axum::routing::get(move || {
            let body = body.clone();
            async move { ([("content-type", "application/json")], body) }
        }),
    );
    axum::serve(listener, app).await.unwrap();
}
