//! podid's load generator, the same for every server it measures: keep-alive HTTP/1.1
//! connections on loopback that sign every request with SigV4 (a signature per request, as the
//! SDKs sign; no pre-signed replays), a fixed duration, and per-request latencies. The process
//! measures nothing of itself: the server's CPU time and resident memory are read from /proc.
//!
//! Used by `podid-bench peers` (the side-by-side harness, `bench/peers`) and by the benches of
//! the `podid` crate.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "a benchmark program fails loudly"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use podid_sigv4::{Credentials, HttpRequest, sign};
use podid_types::{Clock, SystemClock};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The region every request is signed for.
pub const REGION: &str = "us-east-1";

/// One keep-alive connection that signs its requests.
pub struct Connection {
    stream: BufReader<TcpStream>,
    host: String,
    /// The server said `connection: close` (moto's server does after every answer): the next
    /// request opens a new connection.
    closed: bool,
}

/// One request to send: signed for `service` unless the credentials have no access key.
#[derive(Clone, Debug)]
pub struct Request {
    /// The SigV4 service name (`sts`, `iam`, `eks`, `eks-auth`).
    pub service: &'static str,
    /// `GET`, `POST`, ...
    pub method: &'static str,
    /// The path.
    pub path: String,
    /// The content type of the body.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
    /// Extra headers, sent and not signed (e.g. the agent's `authorization`).
    pub headers: Vec<(&'static str, String)>,
}

impl Request {
    /// A query-protocol call (IAM, STS): a form body POSTed to `/`.
    pub fn query(service: &'static str, body: String) -> Self {
        Self {
            service,
            method: "POST",
            path: "/".into(),
            content_type: "application/x-www-form-urlencoded; charset=utf-8",
            body,
            headers: Vec::new(),
        }
    }

    /// A REST-JSON call (EKS, EKS Auth).
    pub fn json(service: &'static str, method: &'static str, path: String, body: String) -> Self {
        Self {
            service,
            method,
            path,
            content_type: "application/json",
            body,
            headers: Vec::new(),
        }
    }
}

impl Connection {
    /// Connects to `address` (`HOST:PORT`).
    pub async fn open(address: &str) -> Self {
        let stream = TcpStream::connect(address).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream: BufReader::new(stream),
            host: address.to_owned(),
            closed: false,
        }
    }

    /// Sends a signed form request (the query protocol); the status and the body.
    pub async fn exchange(
        &mut self,
        credentials: &Credentials,
        service: &'static str,
        body: &str,
    ) -> (u16, String) {
        self.request(credentials, &Request::query(service, body.to_owned()))
            .await
    }

    /// Sends a signed request with a body; the status and the body of the answer.
    #[expect(
        clippy::too_many_arguments,
        reason = "an HTTP request has this many parts"
    )]
    pub async fn send(
        &mut self,
        credentials: &Credentials,
        service: &'static str,
        method: &'static str,
        path: &str,
        query: &str,
        content_type: &'static str,
        body: &str,
    ) -> (u16, String) {
        let path = if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        };
        self.request(
            credentials,
            &Request {
                service,
                method,
                path,
                content_type,
                body: body.to_owned(),
                headers: Vec::new(),
            },
        )
        .await
    }

    /// Sends `request`, signed now with `credentials` (unsigned when they have no access key,
    /// as SDKs send AssumeRoleWithWebIdentity); the status and the body of the answer.
    pub async fn request(&mut self, credentials: &Credentials, request: &Request) -> (u16, String) {
        let (path, query) = request
            .path
            .split_once('?')
            .unwrap_or((request.path.as_str(), ""));
        let headers = [
            ("host", self.host.as_str()),
            ("content-type", request.content_type),
        ];
        let signed = if credentials.access_key_id.is_empty() {
            Vec::new()
        } else {
            sign(
                &HttpRequest {
                    method: request.method,
                    path,
                    query,
                    headers: &headers,
                    body: request.body.as_bytes(),
                },
                credentials,
                REGION,
                request.service,
                SystemClock.now(),
            )
        };
        let mut head = format!(
            "{} {} HTTP/1.1\r\nhost: {}\r\ncontent-type: {}\r\ncontent-length: {}\r\n",
            request.method,
            request.path,
            self.host,
            request.content_type,
            request.body.len()
        );
        for (k, v) in signed {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        for (k, v) in &request.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        head.push_str(&request.body);
        if self.closed {
            *self = Self::open(&self.host).await;
        }
        self.stream
            .get_mut()
            .write_all(head.as_bytes())
            .await
            .unwrap();
        let (status, body, close) = read_answer(&mut self.stream).await;
        self.closed = close;
        (status, body)
    }
}

/// Reads one HTTP/1.1 response with a `content-length`: its status and body.
pub async fn read_response<S>(stream: &mut S) -> (u16, String)
where
    S: tokio::io::AsyncBufRead + Unpin,
{
    let (status, body, _) = read_answer(stream).await;
    (status, body)
}

/// Reads one HTTP/1.1 response with a `content-length`: its status, body, and whether the
/// server closes the connection after it.
async fn read_answer<S>(stream: &mut S) -> (u16, String, bool)
where
    S: tokio::io::AsyncBufRead + Unpin,
{
    let mut line = String::new();
    stream.read_line(&mut line).await.unwrap();
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("not an HTTP response: {line:?}"))
        .parse()
        .unwrap();
    let (mut length, mut close) = (0usize, false);
    loop {
        line.clear();
        stream.read_line(&mut line).await.unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
        if lower.starts_with("connection:") && lower.contains("close") {
            close = true;
        }
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned(), close)
}

/// What one load run measured.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Figures {
    /// Successful requests per second.
    pub rate: f64,
    /// Median latency, µs.
    pub p50_us: u64,
    /// 99th percentile latency, µs.
    pub p99_us: u64,
    /// Requests answered with another status than 200.
    pub failed: u64,
    /// The first failure's status and body, when there was one.
    pub first_failure: Option<String>,
    /// Server CPU time (user + system, every thread) per successful request, µs, when the
    /// server's process id was given.
    pub cpu_us_per_call: Option<f64>,
}

/// The generator of the `n`th request of connection `worker`.
pub type Generator = Arc<dyn Fn(usize, u64) -> Request + Send + Sync>;

/// Runs `connections` keep-alive connections to `address` for `duration`, each sending the
/// requests of `generator` one after another, signed with `credentials`. With `server_pid`, the
/// server's CPU time is read before and after.
pub async fn load(
    address: &str,
    credentials: &Credentials,
    connections: usize,
    duration: Duration,
    generator: Generator,
    server_pid: Option<u32>,
) -> Figures {
    let failed = Arc::new(AtomicU64::new(0));
    let first_failure = Arc::new(std::sync::Mutex::new(None));
    let mut tasks = Vec::new();
    let mut opened = Vec::new();
    for _ in 0..connections {
        opened.push(Connection::open(address).await);
    }
    let cpu_before = server_pid.map(cpu_time);
    let started = Instant::now();
    let deadline = started + duration;
    for (worker, mut connection) in opened.into_iter().enumerate() {
        let (failed, first_failure, generator) =
            (failed.clone(), first_failure.clone(), generator.clone());
        let credentials = credentials.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0;
            while Instant::now() < deadline {
                let request = generator(worker, n);
                let sent = Instant::now();
                let (status, body) = connection.request(&credentials, &request).await;
                n += 1;
                if status == 200 {
                    latencies.push(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut first) = first_failure.lock()
                        && first.is_none()
                    {
                        *first = Some(format!(
                            "{status}: {}",
                            body.chars().take(300).collect::<String>()
                        ));
                    }
                }
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = match (server_pid, cpu_before) {
        (Some(pid), Some(before)) => Some(cpu_time(pid) - before),
        _ => None,
    };
    all.sort_unstable();
    let at = |q: f64| {
        if all.is_empty() {
            0
        } else {
            all[((all.len() as f64 * q) as usize).min(all.len() - 1)]
        }
    };
    let calls = all.len() as f64;
    Figures {
        rate: calls / elapsed,
        p50_us: at(0.50),
        p99_us: at(0.99),
        failed: failed.load(Ordering::Relaxed),
        first_failure: first_failure.lock().ok().and_then(|f| f.clone()),
        cpu_us_per_call: cpu
            .filter(|_| calls > 0.0)
            .map(|seconds| seconds * 1e6 / calls),
    }
}

/// The CPU time (user + system, all threads) of process `pid`, in seconds, from /proc.
pub fn cpu_time(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after `)`.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    ticks as f64 / clock_ticks_per_second()
}

/// `sysconf(_SC_CLK_TCK)` as `getconf` reports it (100 on Linux, but asked).
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// The resident memory of process `pid`, KiB, from /proc.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The address a starting `podid server` prints (`listening on http://ADDRESS`), read from its
/// standard output, which is then drained in the background.
pub fn listening_address(stdout: std::process::ChildStdout) -> String {
    use std::io::BufRead as _;
    let mut lines = std::io::BufReader::new(stdout).lines();
    let address = loop {
        let line = lines
            .next()
            .expect("the server says where it listens")
            .unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    address
}

/// The administrator's keys a server wrote to `DATA_DIR/aws/credentials`.
pub fn admin_credentials(data_dir: &std::path::Path) -> Credentials {
    let credentials = std::fs::read_to_string(data_dir.join("aws/credentials")).unwrap();
    let value = |key: &str| {
        credentials
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key} = ")))
            .unwrap()
            .to_owned()
    };
    Credentials {
        access_key_id: value("aws_access_key_id"),
        secret_access_key: podid_types::Secret::new(value("aws_secret_access_key")),
        session_token: None,
    }
}

/// A token of the local cluster `cluster` for the pod `pod` (uid `uid-POD`) of the service
/// account `namespace/service_account`, minted by a podid server over `conn`.
pub async fn pod_token(
    conn: &mut Connection,
    admin: &Credentials,
    cluster: &str,
    (namespace, service_account): (&str, &str),
    pod: &str,
) -> String {
    let (status, text) = conn
        .send(
            admin,
            "eks",
            "POST",
            &format!("/clusters/{cluster}/podid/service-account-token"),
            "",
            "application/json",
            &format!(
                r#"{{"namespace":"{namespace}","serviceAccount":"{service_account}","podName":"{pod}","podUid":"uid-{pod}"}}"#
            ),
        )
        .await;
    assert_eq!(status, 200, "service-account-token: {text}");
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["token"].as_str().unwrap().to_owned()
}
