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

use podid_sigv4::{Credentials, HttpRequest, sign};
use podid_types::{Clock, Secret, SystemClock};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

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
    if let Some(url) = database_url {
        command.args(["--database-url", url]);
    }
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
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
    let credentials = std::fs::read_to_string(data.join("aws/credentials")).unwrap();
    let value = |key: &str| {
        credentials
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key} = ")))
            .unwrap()
            .to_owned()
    };
    Server {
        child,
        address,
        credentials: Credentials {
            access_key_id: value("aws_access_key_id"),
            secret_access_key: Secret::new(value("aws_secret_access_key")),
            session_token: None,
        },
        _dir: dir,
    }
}

/// One keep-alive connection that sends signed form requests.
pub(crate) struct Connection {
    stream: BufReader<TcpStream>,
    host: String,
}

impl Connection {
    pub(crate) async fn open(address: &str) -> Self {
        let stream = TcpStream::connect(address).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream: BufReader::new(stream),
            host: address.to_owned(),
        }
    }

    pub(crate) async fn call(
        &mut self,
        credentials: &Credentials,
        service: &str,
        body: &str,
    ) -> u16 {
        self.exchange(credentials, service, body).await.0
    }

    /// Sends a signed form request (the query protocol); the status and the body.
    pub(crate) async fn exchange(
        &mut self,
        credentials: &Credentials,
        service: &str,
        body: &str,
    ) -> (u16, String) {
        self.send(
            credentials,
            service,
            "POST",
            "/",
            "",
            "application/x-www-form-urlencoded; charset=utf-8",
            body,
        )
        .await
    }

    /// Sends a signed request; the status and the body.
    #[allow(
        clippy::too_many_arguments,
        reason = "an HTTP request has this many parts"
    )]
    pub(crate) async fn send(
        &mut self,
        credentials: &Credentials,
        service: &str,
        method: &str,
        path: &str,
        query: &str,
        content_type: &str,
        body: &str,
    ) -> (u16, String) {
        let headers = [("host", self.host.as_str()), ("content-type", content_type)];
        let request = HttpRequest {
            method,
            path,
            query,
            headers: &headers,
            body: body.as_bytes(),
        };
        // No access key: an unsigned request, as SDKs send AssumeRoleWithWebIdentity.
        let signed = if credentials.access_key_id.is_empty() {
            Vec::new()
        } else {
            sign(
                &request,
                credentials,
                "us-east-1",
                service,
                SystemClock.now(),
            )
        };
        let target = if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        };
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nhost: {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n",
            self.host,
            body.len()
        );
        for (k, v) in signed {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        head.push_str(body);
        self.stream
            .get_mut()
            .write_all(head.as_bytes())
            .await
            .unwrap();
        read_response(&mut self.stream).await
    }
}

/// Reads one HTTP/1.1 response with a `content-length`: its status and body.
pub(crate) async fn read_response(stream: &mut BufReader<TcpStream>) -> (u16, String) {
    let mut line = String::new();
    stream.read_line(&mut line).await.unwrap();
    let status: u16 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut length = 0usize;
    loop {
        line.clear();
        stream.read_line(&mut line).await.unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.unwrap();
    (status, String::from_utf8(body).unwrap())
}

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
