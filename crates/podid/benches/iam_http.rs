//! Throughput of signed IAM and STS calls over HTTP: CreateRole (a durable write each), GetRole,
//! AssumeRole (trust and identity policies decided, session tags checked, a session token
//! sealed) with 1, 8 and many connections, and GetCallerIdentity signed with session credentials
//! (a token opened and a signature verified per request), against a real `podid server` process
//! on SQLite and, when `PODID_TEST_DATABASE_URL` is set, on PostgreSQL (a fresh schema).
//!
//! Run: `cargo bench -p podid --bench iam_http` (optional: `PODID_BENCH_SECONDS`,
//! `PODID_BENCH_CONNECTIONS`). Each request is signed with SigV4 by the client, authenticated
//! and authorized by the server, and every CreateRole is committed durably before its response.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "a benchmark program fails loudly"
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

const TRUST: &str = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22Service%22%3A%22pods.eks.amazonaws.com%22%7D%2C%22Action%22%3A%5B%22sts%3AAssumeRole%22%2C%22sts%3ATagSession%22%5D%7D%5D%7D";

/// Trusts the account, with session tags: the Pod Identity shape of trust for an IAM caller.
const ACCOUNT_TRUST: &str = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22AWS%22%3A%22arn%3Aaws%3Aiam%3A%3A111122223333%3Aroot%22%7D%2C%22Action%22%3A%5B%22sts%3AAssumeRole%22%2C%22sts%3ATagSession%22%5D%7D%5D%7D";

struct Server {
    child: Child,
    address: String,
    credentials: Credentials,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(database_url: Option<&str>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut command = Command::new(env!("CARGO_BIN_EXE_podid"));
    command
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
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
struct Connection {
    stream: BufReader<TcpStream>,
    host: String,
}

impl Connection {
    async fn open(address: &str) -> Self {
        let stream = TcpStream::connect(address).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream: BufReader::new(stream),
            host: address.to_owned(),
        }
    }

    async fn call(&mut self, credentials: &Credentials, service: &str, body: &str) -> u16 {
        self.exchange(credentials, service, body).await.0
    }

    /// Sends a signed request; the status and the body.
    async fn exchange(
        &mut self,
        credentials: &Credentials,
        service: &str,
        body: &str,
    ) -> (u16, String) {
        let headers = [
            ("host", self.host.as_str()),
            (
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
        ];
        let request = HttpRequest {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body: body.as_bytes(),
        };
        let signed = sign(
            &request,
            credentials,
            "us-east-1",
            service,
            SystemClock.now(),
        );
        let mut head = format!(
            "POST / HTTP/1.1\r\nhost: {}\r\ncontent-type: application/x-www-form-urlencoded; charset=utf-8\r\ncontent-length: {}\r\n",
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
        let mut line = String::new();
        self.stream.read_line(&mut line).await.unwrap();
        let status: u16 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        let mut length = 0usize;
        loop {
            line.clear();
            self.stream.read_line(&mut line).await.unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await.unwrap();
        (status, String::from_utf8(body).unwrap())
    }
}

/// Runs `connections` clients for `seconds`; each request's body comes from `body(worker, n)`.
async fn load(
    server: &Server,
    credentials: &Credentials,
    service: &'static str,
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
                let status = connection
                    .call(&credentials, service, &body(worker, n))
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

type Body = Arc<dyn Fn(usize, u64) -> String + Send + Sync>;

fn report(label: &str, what: &str, (rate, failed): (f64, u64), connections: usize, seconds: u64) {
    println!(
        "{label:<9} {what:<28} {rate:>9.0} req/s  ({connections} connections, {seconds} s, {failed} failed)"
    );
}

async fn run(label: &str, server: Server, connections: usize, seconds: u64) {
    let admin = server.credentials.clone();
    let create: Body = Arc::new(|w, n| {
        format!(
            "Action=CreateRole&Version=2010-05-08&RoleName=bench-{w}-{n}&AssumeRolePolicyDocument={TRUST}"
        )
    });
    let rate = load(&server, &admin, "iam", connections, seconds, create).await;
    report(label, "CreateRole", rate, connections, seconds);
    let get: Body =
        Arc::new(|w, _| format!("Action=GetRole&Version=2010-05-08&RoleName=bench-{w}-0"));
    let rate = load(&server, &admin, "iam", connections, seconds, get).await;
    report(label, "GetRole", rate, connections, seconds);

    // AssumeRole into a role that trusts the account, with and without session tags.
    let mut setup = Connection::open(&server.address).await;
    let (status, xml) = setup
        .exchange(
            &admin,
            "iam",
            &format!(
                "Action=CreateRole&Version=2010-05-08&RoleName=bench-target&AssumeRolePolicyDocument={ACCOUNT_TRUST}"
            ),
        )
        .await;
    assert_eq!(status, 200, "{xml}");
    let plain: Body = Arc::new(|w, n| {
        format!(
            "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fbench-target&RoleSessionName=s-{w}-{n}"
        )
    });
    let tagged: Body = Arc::new(|w, n| {
        format!(
            "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fbench-target&RoleSessionName=s-{w}-{n}\
             &Tags.member.1.Key=kubernetes-namespace&Tags.member.1.Value=prod\
             &Tags.member.2.Key=kubernetes-service-account&Tags.member.2.Value=api-{w}\
             &TransitiveTagKeys.member.1=kubernetes-namespace&TransitiveTagKeys.member.2=kubernetes-service-account"
        )
    });
    for n in [1, 8, connections] {
        let rate = load(&server, &admin, "sts", n, seconds, plain.clone()).await;
        report(label, "AssumeRole", rate, n, seconds);
    }
    for n in [1, 8, connections] {
        let rate = load(&server, &admin, "sts", n, seconds, tagged.clone()).await;
        report(label, "AssumeRole + 2 session tags", rate, n, seconds);
    }

    // Requests signed with session credentials: the token is opened on every request.
    let (status, xml) = setup.exchange(&admin, "sts", &tagged(0, 0)).await;
    assert_eq!(status, 200, "{xml}");
    let element = |tag: &str| {
        let start = xml.find(&format!("<{tag}>")).unwrap() + tag.len() + 2;
        let end = start + xml[start..].find(&format!("</{tag}>")).unwrap();
        xml[start..end].to_owned()
    };
    let session = Credentials {
        access_key_id: element("AccessKeyId"),
        secret_access_key: Secret::new(element("SecretAccessKey")),
        session_token: Some(Secret::new(element("SessionToken"))),
    };
    let who: Body = Arc::new(|_, _| "Action=GetCallerIdentity&Version=2011-06-15".to_owned());
    let rate = load(&server, &session, "sts", connections, seconds, who).await;
    report(
        label,
        "GetCallerIdentity (session)",
        rate,
        connections,
        seconds,
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a plain run with a filter is not supported.
    let seconds: u64 = std::env::var("PODID_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let connections: usize = std::env::var("PODID_BENCH_CONNECTIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(32);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        run("sqlite", start(None), connections, seconds).await;
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
                let scoped = format!("{url}{sep}options=-csearch_path%3D{schema}");
                run("postgres", start(Some(&scoped)), connections, seconds).await;
                client
                    .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                    .await
                    .unwrap();
            }
            Err(_) => println!("postgres  SKIPPED (set PODID_TEST_DATABASE_URL)"),
        }
    });
}
