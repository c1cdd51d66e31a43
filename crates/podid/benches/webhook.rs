//! `podid webhook` as a real process on loopback: mutations per second and p50/p99 latency of
//! `POST /mutate` over HTTPS with 16 keep-alive connections, each request the creation of a pod
//! whose service account has a Pod Identity association (answered with a patch). The webhook
//! asks a real `podid server`: the association comes from its cache after the first pod, the
//! service account is read from the server for every pod (local clusters' source; on a real
//! cluster it comes from the watch cache).
//!
//! Run: `cargo bench -p podid --bench webhook` (optional: `PODID_BENCH_SECONDS`, default 10;
//! `PODID_BENCH_CONNECTIONS`, default 16). Needs `openssl` for the test certificate.
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

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Process, Server, read_response, setting, setup, start, summarize};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A `podid webhook` process.
struct WebhookProcess {
    _process: Process,
    port: u16,
}

impl WebhookProcess {
    fn start(server: &Server, dir: &Path) -> Self {
        let endpoint = format!("http://{}", server.address);
        let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
        let args = [
            "webhook",
            "--cluster",
            "bench",
            "--bind-address",
            "127.0.0.1",
            "--port",
            "0",
            "--metrics-port",
            "0",
            "--in-cluster=false",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--endpoint-url",
            &endpoint,
        ];
        let (process, rest) = Process::start(server, &args, "https://127.0.0.1:");
        let port = rest.split('/').next().unwrap().parse().unwrap();
        Self {
            _process: process,
            port,
        }
    }
}

/// A CA and a certificate for 127.0.0.1 signed by it, with `openssl`.
fn certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl makes the test certificate");
        assert!(status.success(), "openssl {args:?}");
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=bench-ca",
            "-days",
            "1",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "tls.key",
            "-out",
            "tls.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "tls.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "tls.crt",
        "-days",
        "1",
        "-extfile",
        "ext",
    ]);
}

fn connector(ca: &Path) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// The AdmissionReview of a pod of default/app, with request uid `n`.
fn review(n: u64) -> String {
    serde_json::json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": format!("00000000-0000-0000-0000-{n:012}"),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "default", "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"generateName": "app-6d4cf56db6-", "labels": {"app": "app"}},
                "spec": {
                    "serviceAccountName": "app",
                    "containers": [{"name": "app", "image": "public.ecr.aws/aws-cli/aws-cli:2",
                                    "env": [{"name": "LOG_LEVEL", "value": "info"}]}],
                    "volumes": [{"name": "kube-api-access-x", "projected": {"sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}]}}],
                },
            },
            "dryRun": false,
        },
    })
    .to_string()
}

/// `connections` clients POSTing reviews for `seconds`: mutations/s, p50 and p99 (µs), failures.
async fn load(port: u16, ca: &Path, connections: usize, seconds: u64) -> (f64, u64, u64, u64) {
    let connector = connector(ca);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for worker in 0..connections {
        let connector = connector.clone();
        tasks.push(tokio::spawn(async move {
            let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let name = ServerName::try_from("127.0.0.1").unwrap();
            let mut stream = BufReader::new(connector.connect(name, tcp).await.unwrap());
            let (mut latencies, mut failed, mut n) = (Vec::new(), 0u64, worker as u64 * 1_000_000);
            while Instant::now() < deadline {
                n += 1;
                let body = review(n);
                let request = format!(
                    "POST /mutate HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                let began = Instant::now();
                stream.get_mut().write_all(request.as_bytes()).await.unwrap();
                let (status, answer) = read_response(&mut stream).await;
                latencies.push(began.elapsed().as_micros() as u64);
                if status != 200 || !answer.contains("\"patch\"") {
                    failed += 1;
                }
            }
            (latencies, failed)
        }));
    }
    summarize(tasks).await
}

fn main() {
    let seconds: u64 = setting("PODID_BENCH_SECONDS", 10);
    let connections: usize = setting("PODID_BENCH_CONNECTIONS", 16);
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let server = start(None, &[]);
        setup(&server).await;
        let webhook = WebhookProcess::start(&server, dir.path());
        let ca = dir.path().join("ca.pem");
        let (_, _, _, failed) = load(webhook.port, &ca, connections, 1).await;
        assert_eq!(failed, 0, "warm-up: every pod is mutated");
        let (rate, p50, p99, failed) = load(webhook.port, &ca, connections, seconds).await;
        println!(
            "webhook, POST /mutate over HTTPS  {rate:>7.0} mutations/s  p50 {p50} µs  p99 {p99} µs  ({connections} connections, {seconds} s, {failed} failed)"
        );
        drop(webhook);
        drop(server);
    });
}
