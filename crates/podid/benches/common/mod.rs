//! What the HTTP benchmarks share: a real `podid server` process, keep-alive connections that
//! sign their requests, and a load loop.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "a benchmark program fails loudly; each bench uses part of this"
)]

use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use podid_sigv4::Credentials;

pub(crate) struct Server {
    child: Child,
    pub(crate) address: String,
    pub(crate) credentials: Credentials,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start(database_url: Option<&str>, extra: &[&str]) -> Server {
    start_with_env(database_url, extra, &[])
}

/// Like [`start`], with these variables in the server's environment.
pub(crate) fn start_with_env(
    database_url: Option<&str>,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut command = Command::new(env!("CARGO_BIN_EXE_podid"));
    command
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        // Throughput, not the per-caller limits: every load comes from one caller.
        .args(["--sts-rate", "0", "--eks-auth-rate", "0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    command.args(extra);
    command.envs(env.iter().copied());
    if let Some(url) = database_url {
        command.args(["--database-url", url]);
    }
    let mut child = command.spawn().unwrap();
    let address = podid_bench::listening_address(child.stdout.take().unwrap());
    Server {
        child,
        address,
        credentials: podid_bench::admin_credentials(&data),
        _dir: dir,
    }
}

// The load generator's connection, shared with `podid-bench peers`.
#[allow(unused_imports, reason = "each bench uses part of this")]
pub(crate) use podid_bench::{Connection, read_response};

/// Runs `connections` clients for `seconds`; each request's body comes from `body(worker, n)`.
pub(crate) async fn load(
    server: &Server,
    credentials: &Credentials,
    service: &'static str,
    connections: usize,
    seconds: u64,
    body: Arc<dyn Fn(usize, u64) -> String + Send + Sync>,
) -> (f64, u64) {
    load_to(
        server,
        credentials,
        service,
        ("/", "application/x-www-form-urlencoded; charset=utf-8"),
        connections,
        seconds,
        body,
    )
    .await
}

/// Like [`load`], POSTing to `path` with `content_type`.
pub(crate) async fn load_to(
    server: &Server,
    credentials: &Credentials,
    service: &'static str,
    (path, content_type): (&'static str, &'static str),
    connections: usize,
    seconds: u64,
    body: Arc<dyn Fn(usize, u64) -> String + Send + Sync>,
) -> (f64, u64) {
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for worker in 0..connections {
        let (done, failed, body) = (done.clone(), failed.clone(), body.clone());
        let credentials = credentials.clone();
        let address = server.address.clone();
        tasks.push(tokio::spawn(async move {
            let mut connection = Connection::open(&address).await;
            let mut n = 0;
            while Instant::now() < deadline {
                let (status, _) = connection
                    .send(
                        &credentials,
                        service,
                        "POST",
                        path,
                        "",
                        content_type,
                        &body(worker, n),
                    )
                    .await;
                n += 1;
                if status == 200 {
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
    let elapsed = started.elapsed().as_secs_f64();
    (
        done.load(Ordering::Relaxed) as f64 / elapsed,
        failed.load(Ordering::Relaxed),
    )
}

/// Runs `run` on SQLite and, when `PODID_TEST_DATABASE_URL` is set, on PostgreSQL in a fresh
/// schema (dropped afterwards).
pub(crate) async fn on_each_backend<F, Fut>(run: F)
where
    F: Fn(&'static str, Option<String>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    run("sqlite", None).await;
    match std::env::var("PODID_TEST_DATABASE_URL") {
        Ok(url) => {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            let schema = format!("podid_bench_{}", std::process::id());
            client
                .batch_execute(&format!(
                    "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
                ))
                .await
                .unwrap();
            let sep = if url.contains('?') { '&' } else { '?' };
            run(
                "postgres",
                Some(format!("{url}{sep}options=-csearch_path%3D{schema}")),
            )
            .await;
            client
                .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                .await
                .unwrap();
        }
        Err(_) => println!("postgres  SKIPPED (set PODID_TEST_DATABASE_URL)"),
    }
}

/// A number from the environment, or a default.
pub(crate) fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A trust policy for `pods.eks.amazonaws.com` (`sts:AssumeRole`, `sts:TagSession`), URL-encoded.
pub(crate) const TRUST: &str = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22Service%22%3A%22pods.eks.amazonaws.com%22%7D%2C%22Action%22%3A%5B%22sts%3AAssumeRole%22%2C%22sts%3ATagSession%22%5D%7D%5D%7D";

/// Lets the pod role assume any role and tag the session.
pub(crate) const CHAIN: &str = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%5B%22sts%3AAssumeRole%22%2C%22sts%3ATagSession%22%5D%2C%22Resource%22%3A%22*%22%7D%5D%7D";
/// Trusts the account, with session tags: the Pod Identity shape of trust for an IAM caller.
pub(crate) const ACCOUNT_TRUST: &str = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22AWS%22%3A%22arn%3Aaws%3Aiam%3A%3A111122223333%3Aroot%22%7D%2C%22Action%22%3A%5B%22sts%3AAssumeRole%22%2C%22sts%3ATagSession%22%5D%7D%5D%7D";

/// A cluster `bench` with an association for default/app.
pub(crate) async fn setup(server: &Server) {
    let admin = &server.credentials;
    let mut conn = Connection::open(&server.address).await;
    let (status, text) = conn
        .exchange(
            admin,
            "iam",
            &format!(
                "Action=CreateRole&Version=2010-05-08&RoleName=app&AssumeRolePolicyDocument={TRUST}"
            ),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    for (path, body) in [
        ("/clusters", r#"{"name":"bench"}"#.to_owned()),
        (
            "/clusters/bench/pod-identity-associations",
            r#"{"namespace":"default","serviceAccount":"app","roleArn":"arn:aws:iam::111122223333:role/app"}"#
                .to_owned(),
        ),
    ] {
        let (status, text) = conn
            .send(admin, "eks", "POST", path, "", "application/json", &body)
            .await;
        assert_eq!(status, 200, "{text}");
    }
}

/// A `podid` process a benchmark started, killed when dropped.
pub(crate) struct Process {
    child: Child,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// Starts `podid ARGS` with the server's `admin` keys and region in its environment, and
    /// waits for the stdout line that contains `marker`: the process, and what follows the
    /// marker on that line.
    pub(crate) fn start(server: &Server, args: &[&str], marker: &str) -> (Self, String) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_podid"))
            .args(args)
            .env("AWS_ACCESS_KEY_ID", &server.credentials.access_key_id)
            .env(
                "AWS_SECRET_ACCESS_KEY",
                server.credentials.secret_access_key.expose(),
            )
            .env("AWS_REGION", "us-east-1")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let rest = loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("podid {args:?} said no `{marker}`"))
                .unwrap();
            if let Some(rest) = line.split(marker).nth(1) {
                break rest.to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        (Self { child }, rest)
    }

    /// Resident memory (KiB), from /proc.
    pub(crate) fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }
}

/// Waits for load tasks that each return their latencies (µs) and failures: requests per
/// second, p50 and p99 (µs), failures.
pub(crate) async fn summarize(
    tasks: Vec<tokio::task::JoinHandle<(Vec<u64>, u64)>>,
) -> (f64, u64, u64, u64) {
    let started = Instant::now();
    let (mut all, mut failed) = (Vec::new(), 0);
    for t in tasks {
        let (latencies, f) = t.await.unwrap();
        all.extend(latencies);
        failed += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    (all.len() as f64 / elapsed, at(0.50), at(0.99), failed)
}
