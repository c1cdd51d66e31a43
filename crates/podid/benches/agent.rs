//! The node agent, as real processes on loopback: cache-hit throughput and p50/p99 latency at 64
//! concurrent connections (beside the same load with the cache off, every request an EKS Auth
//! call, in the same run); resident memory with 10,000 pods cached; and the time from `podid up`
//! to ready, on an empty data directory and on a restart.
//!
//! Run: `cargo bench -p podid --bench agent` (optional: `PODID_BENCH_SECONDS`, default 10;
//! `PODID_BENCH_PODS`, default 10000).
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "a benchmark program fails loudly"
)]

mod common;

use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Connection, Server, read_response, setting, start};
use podid_sigv4::Credentials;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const TRUST: &str = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22Service%22%3A%22pods.eks.amazonaws.com%22%7D%2C%22Action%22%3A%5B%22sts%3AAssumeRole%22%2C%22sts%3ATagSession%22%5D%7D%5D%7D";

/// A `podid agent` process.
struct AgentProcess {
    child: Child,
    address: String,
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl AgentProcess {
    fn start(server: &Server, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_podid"))
            .args(["agent", "--cluster-name", "bench", "--endpoint"])
            .arg(format!("http://{}", server.address))
            .args([
                "--bind-hosts",
                "127.0.0.1",
                "--port",
                "0",
                "--probe-port",
                "0",
            ])
            .args(["--metrics-port", "0", "--max-cache-size", "20000"])
            .args(extra)
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
        let address = loop {
            let line = lines
                .next()
                .expect("the agent says where it serves")
                .unwrap();
            if let Some(rest) = line.split("serving http://").nth(1) {
                break rest.split('/').next().unwrap().to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Self { child, address }
    }

    /// Resident memory (KiB), from /proc.
    fn rss_kib(&self) -> u64 {
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

/// One keep-alive connection to the agent.
struct Pod {
    stream: BufReader<TcpStream>,
    host: String,
}

impl Pod {
    async fn open(address: &str) -> Self {
        let stream = TcpStream::connect(address).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream: BufReader::new(stream),
            host: address.to_owned(),
        }
    }

    async fn credentials(&mut self, token: &str) -> u16 {
        let request = format!(
            "GET /v1/credentials HTTP/1.1\r\nhost: {}\r\naccept: application/json\r\nauthorization: {token}\r\n\r\n",
            self.host
        );
        self.stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .unwrap();
        read_response(&mut self.stream).await.0
    }
}

/// A cluster `bench` with an association for default/app.
async fn setup(server: &Server) {
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

/// `count` service-account tokens of distinct pods, minted by 16 clients.
async fn tokens(server: &Server, count: usize) -> Vec<String> {
    let mut tasks = Vec::new();
    for worker in 0..16 {
        let address = server.address.clone();
        let admin: Credentials = server.credentials.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Connection::open(&address).await;
            let mut out = Vec::new();
            for i in (worker..count).step_by(16) {
                let body = format!(
                    r#"{{"namespace":"default","serviceAccount":"app","podName":"app-{i}","podUid":"uid-{i}"}}"#
                );
                let (status, text) = conn
                    .send(
                        &admin,
                        "eks",
                        "POST",
                        "/clusters/bench/podid/service-account-token",
                        "",
                        "application/json",
                        &body,
                    )
                    .await;
                assert_eq!(status, 200, "{text}");
                let value: serde_json::Value = serde_json::from_str(&text).unwrap();
                out.push(value["token"].as_str().unwrap().to_owned());
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

/// `connections` pods asking for `seconds`, each with its own token: requests/s, p50 and p99 (µs),
/// failures.
async fn load(
    address: &str,
    tokens: &[String],
    connections: usize,
    seconds: u64,
) -> (f64, u64, u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let tokens = Arc::new(tokens.to_vec());
    let mut tasks = Vec::new();
    for worker in 0..connections {
        let (address, tokens) = (address.to_owned(), tokens.clone());
        tasks.push(tokio::spawn(async move {
            let mut pod = Pod::open(&address).await;
            let token = &tokens[worker % tokens.len()];
            let (mut latencies, mut failed) = (Vec::new(), 0u64);
            while Instant::now() < deadline {
                let began = Instant::now();
                let status = pod.credentials(token).await;
                latencies.push(began.elapsed().as_micros() as u64);
                if status != 200 {
                    failed += 1;
                }
            }
            (latencies, failed)
        }));
    }
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

/// Seconds from spawning `podid up` to its `ready` line.
fn time_up(data: &std::path::Path) -> (f64, String) {
    let began = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_podid"))
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--agent-port",
            "0",
            "--data-dir",
        ])
        .arg(data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut said = String::new();
    for line in lines {
        let line = line.unwrap();
        if line.starts_with("ready in") {
            said = line;
            break;
        }
    }
    let elapsed = began.elapsed().as_secs_f64();
    // SIGTERM: a graceful stop, so the restart finds the data as a user's would.
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    (elapsed, said)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let seconds: u64 = setting("PODID_BENCH_SECONDS", 10);
    let pods: usize = setting("PODID_BENCH_PODS", 10_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let server = start(None, &[]);
        setup(&server).await;
        let minted = Instant::now();
        let tokens = tokens(&server, pods.max(64)).await;
        println!(
            "minted {} tokens in {:.1} s",
            tokens.len(),
            minted.elapsed().as_secs_f64()
        );

        // Cache hits: 64 pods, each its own keep-alive connection, after one miss each.
        let agent = AgentProcess::start(&server, &[]);
        let idle = agent.rss_kib();
        let (_, _, _, failed) = load(&agent.address, &tokens[..64], 64, 1).await;
        assert_eq!(failed, 0, "warm-up: one miss per pod, then hits");
        let (rate, p50, p99, failed) = load(&agent.address, &tokens[..64], 64, seconds).await;
        println!(
            "agent, cache hits          {rate:>9.0} req/s  p50 {p50} µs  p99 {p99} µs  (64 connections, {seconds} s, {failed} failed)"
        );
        // The same load with the cache off: every request is an EKS Auth call.
        let uncached = AgentProcess::start(
            &server,
            &["--max-credential-retention-before-renewal", "0"],
        );
        let (miss_rate, miss_p50, miss_p99, miss_failed) =
            load(&uncached.address, &tokens[..64], 64, seconds).await;
        println!(
            "agent, cache off (EKS Auth) {miss_rate:>8.0} req/s  p50 {miss_p50} µs  p99 {miss_p99} µs  (64 connections, {seconds} s, {miss_failed} failed)"
        );
        println!("hits / EKS Auth calls: {:.1}x", rate / miss_rate);
        drop(uncached);

        // Memory with `pods` pods cached.
        assert_eq!(load_all(&agent.address, &tokens[..pods]).await, 0);
        let full = agent.rss_kib();
        println!(
            "agent RSS: {:.1} MiB idle, {:.1} MiB with {pods} pods cached ({:.2} KiB per pod)",
            idle as f64 / 1024.0,
            full as f64 / 1024.0,
            (full.saturating_sub(idle)) as f64 / pods as f64
        );
        drop(agent);
        drop(server);
    });

    // Time from `podid up` to ready.
    let dir = tempfile::tempdir().unwrap();
    let (mut fresh, mut restart) = (Vec::new(), Vec::new());
    let mut said = Vec::new();
    for i in 0..3 {
        let data = dir.path().join(format!("up-{i}"));
        let (t, line) = time_up(&data);
        fresh.push(t);
        said.push(line);
        restart.push(time_up(&data).0);
    }
    println!(
        "podid up to ready: {:.0} ms on an empty data directory, {:.0} ms on a restart (median of 3; it said: {})",
        median(fresh) * 1000.0,
        median(restart) * 1000.0,
        said.join(", ")
    );
}

/// Every token once, by 64 connections; the failures.
async fn load_all(address: &str, tokens: &[String]) -> u64 {
    let tokens = Arc::new(tokens.to_vec());
    let mut tasks = Vec::new();
    for worker in 0..64 {
        let (address, tokens) = (address.to_owned(), tokens.clone());
        tasks.push(tokio::spawn(async move {
            let mut pod = Pod::open(&address).await;
            let mut failed = 0u64;
            for token in tokens.iter().skip(worker).step_by(64) {
                if pod.credentials(token).await != 200 {
                    failed += 1;
                }
            }
            failed
        }));
    }
    let mut failed = 0;
    for t in tasks {
        failed += t.await.unwrap();
    }
    failed
}
