//! The node agent, as real processes on loopback: cache-hit throughput and p50/p99 latency at 64
//! concurrent connections (beside the same load with the cache off, every request an EKS Auth
//! call, in the same run); resident memory with 10,000 pods cached (the agent keeping its state
//! on disk, `--state-dir`, as on a node); and the time from `podid up`
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
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Connection, Process, Server, read_response, setting, setup, start, summarize};
use podid_sigv4::Credentials;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A `podid agent` process.
struct AgentProcess {
    process: Process,
    address: String,
}

impl AgentProcess {
    fn start(server: &Server, extra: &[&str]) -> Self {
        let endpoint = format!("http://{}", server.address);
        let mut args = vec![
            "agent",
            "--cluster-name",
            "bench",
            "--endpoint",
            &endpoint,
            "--bind-hosts",
            "127.0.0.1",
            "--port",
            "0",
            "--probe-port",
            "0",
            "--metrics-port",
            "0",
            "--max-cache-size",
            "20000",
        ];
        args.extend_from_slice(extra);
        let (process, rest) = Process::start(server, &args, "serving http://");
        let address = rest.split('/').next().unwrap().to_owned();
        Self { process, address }
    }

    fn rss_kib(&self) -> u64 {
        self.process.rss_kib()
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
    summarize(tasks).await
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
        // The agent as on a node: its state (cached pods, key sets) kept on disk.
        let state = tempfile::tempdir().unwrap();
        let state_dir = state.path().to_str().unwrap().to_owned();
        let agent = AgentProcess::start(&server, &["--state-dir", &state_dir]);
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
        // The state file catches up within two seconds of the last change.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let full = agent.rss_kib();
        let file = std::fs::metadata(state.path().join("state.json"))
            .map(|m| m.len())
            .unwrap_or(0);
        println!(
            "agent RSS (with --state-dir): {:.1} MiB idle, {:.1} MiB with {pods} pods cached ({:.2} KiB per pod); state file {:.1} MiB",
            idle as f64 / 1024.0,
            full as f64 / 1024.0,
            (full.saturating_sub(idle)) as f64 / pods as f64,
            file as f64 / 1048576.0
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
