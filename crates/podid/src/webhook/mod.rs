//! `podid webhook`: the mutating admission webhook, a drop-in for
//! amazon-eks-pod-identity-webhook that also gives pods EKS Pod Identity, as EKS's own webhook
//! does. The decision is `podid_webhook::mutate`; this module is its HTTPS front, its look-ups
//! and its metrics.

mod lookup;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use clap::Args;
use podid_webhook::review::{self, Rejection};
use serde_json::Value;

use crate::Status;
use crate::aws_client::{Client, ClientArgs};
use crate::listen::{ListenArgs, parse_duration, serve};
use crate::tls::TlsArgs;
pub(crate) use lookup::{Account, account_of};
use lookup::{Accounts, Lookups};

#[derive(Debug, Args)]
pub(crate) struct WebhookArgs {
    /// The podid cluster whose pods are mutated: its Pod Identity associations (and, unless
    /// Kubernetes is read, its service accounts) are asked of the podid server found by the
    /// usual AWS settings (--profile, --region, --endpoint-url, --ca-bundle). The credentials
    /// need `eks:ListPodIdentityAssociations` and `podid:GetServiceAccount` on the cluster.
    #[arg(long, env = "PODID_CLUSTER_NAME")]
    cluster: String,
    /// The HTTPS port of `/mutate` and `/healthz` (0 picks a free one; it is printed).
    #[arg(long, default_value_t = 443)]
    port: u16,
    /// The port of `/metrics` (Prometheus) and `/healthz`, plain HTTP (0 picks a free one).
    #[arg(long, default_value_t = 9999)]
    metrics_port: u16,
    /// The address both ports listen on (`::` or `0.0.0.0` for all).
    #[arg(long, default_value = "0.0.0.0", value_name = "ADDR")]
    bind_address: std::net::IpAddr,
    /// The serving certificate (PEM chain), read again when it changes: renew it in place.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/etc/webhook/certs/tls.crt"
    )]
    tls_cert: PathBuf,
    /// The certificate's key (PEM).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/etc/webhook/certs/tls.key"
    )]
    tls_key: PathBuf,
    /// The prefix of the annotations read (`PREFIX/role-arn`, `PREFIX/audience`,
    /// `PREFIX/sts-regional-endpoints`, `PREFIX/token-expiration`, `PREFIX/skip-containers`)
    /// and of the opt-out label `PREFIX/skip-pod-identity-webhook`.
    #[arg(long, default_value = "eks.amazonaws.com", value_name = "PREFIX")]
    annotation_prefix: String,
    /// The audience of IRSA tokens whose service account names none.
    #[arg(long, default_value = "sts.amazonaws.com")]
    token_audience: String,
    /// The lifetime of projected tokens, in seconds, unless an annotation says otherwise (at
    /// least 600; Pod Identity tokens of the default lifetime are spread over 79200–86400 s so
    /// that a node's pods do not renew at once).
    #[arg(long, default_value_t = 86_400, value_name = "SECONDS")]
    token_expiration: i64,
    /// Where IRSA tokens are mounted in containers.
    #[arg(
        long,
        default_value = podid_webhook::IRSA_MOUNT_PATH,
        value_name = "PATH"
    )]
    token_mount_path: String,
    /// Set AWS_REGION and AWS_DEFAULT_REGION in containers that set neither.
    #[arg(long, value_name = "REGION")]
    aws_default_region: Option<String>,
    /// Set AWS_STS_REGIONAL_ENDPOINTS=regional for IRSA pods (a service account's
    /// `sts-regional-endpoints` annotation overrides it).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value_t = false, value_name = "BOOL")]
    sts_regional_endpoint: bool,
    /// The agent's URL given to Pod Identity pods (`http://[fd00:ec2::23]/v1/credentials` on
    /// IPv6 clusters).
    #[arg(long, default_value = podid_webhook::POD_IDENTITY_URI, value_name = "URL")]
    container_credentials_full_uri: String,
    /// Set `spec.securityContext.fsGroup` to this group on mutated pods that set none, so
    /// that containers running as a non-root user can read the token (pain point of the
    /// reference: it leaves them unable to).
    #[arg(long, value_name = "GID")]
    fs_group: Option<i64>,
    /// How long a pod of a new service account (unknown, or created in the last minute) waits
    /// for its association or service account to appear, so that a service account, its
    /// association and a pod created together still work. Pods of older service accounts do
    /// not wait.
    #[arg(long, default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    service_account_lookup_grace_period: Duration,
    /// Read service accounts from the Kubernetes API with the pod's own service account
    /// (true by default inside a pod). Without it, or --kubeconfig, they are read from the
    /// podid server (local clusters).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    in_cluster: Option<bool>,
    /// Read service accounts from the Kubernetes API with this kubeconfig file.
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    limits: ListenArgs,
}

pub(crate) fn run(args: WebhookArgs) -> anyhow::Result<Status> {
    if args.token_expiration < 1 {
        bail!(
            "--token-expiration {} is not a lifetime: give seconds, at least 600",
            args.token_expiration
        );
    }
    let config = podid_webhook::Config {
        annotation_prefix: args.annotation_prefix.clone(),
        token_audience: args.token_audience.clone(),
        token_expiration: args.token_expiration,
        irsa_mount_path: args.token_mount_path.clone(),
        region: args.aws_default_region.clone().filter(|r| !r.is_empty()),
        sts_regional_endpoints: args.sts_regional_endpoint,
        pod_identity_uri: args.container_credentials_full_uri.clone(),
        fs_group: args.fs_group,
    };
    let tls = TlsArgs {
        tls_cert: Some(args.tls_cert.clone()),
        tls_key: Some(args.tls_key.clone()),
    }
    .acceptor()?;
    let eks = Client::new(&args.client, "eks")?.with_timeout(Duration::from_secs(1));
    let in_cluster = args
        .in_cluster
        .unwrap_or_else(|| std::env::var_os("KUBERNETES_SERVICE_HOST").is_some());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let accounts = if in_cluster || args.kubeconfig.is_some() {
        let kube = runtime.block_on(async {
            let client = crate::kubernetes::client(args.kubeconfig.as_deref()).await?;
            anyhow::Ok(crate::kubernetes::ServiceAccounts::watch(client))
        })?;
        // Serve once the first list is in (misses are read live meanwhile anyway).
        let waited = runtime.block_on(async {
            for _ in 0..100 {
                if kube.synced() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            false
        });
        if !waited {
            tracing::warn!(
                "the service accounts are not listed yet; serving, reading them live meanwhile"
            );
        }
        Accounts::Kubernetes(kube)
    } else {
        Accounts::podid(eks.clone(), &args.cluster)
    };
    let lookups = Lookups::new(
        eks,
        &args.cluster,
        accounts,
        args.service_account_lookup_grace_period,
    );
    let webhook = Arc::new(Webhook {
        config,
        lookups,
        metrics: Metrics::default(),
    });
    runtime.block_on(async {
        let stop = crate::server::shutdown();
        let limits = args.limits.limits();
        let address = SocketAddr::new(args.bind_address, args.port);
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address}: choose another --port"))?;
        let bound = listener.local_addr().unwrap_or(address);
        let metrics_address = SocketAddr::new(args.bind_address, args.metrics_port);
        let metrics_listener = tokio::net::TcpListener::bind(metrics_address)
            .await
            .with_context(|| {
                format!("cannot listen on {metrics_address}: choose another --metrics-port")
            })?;
        let metrics_bound = metrics_listener.local_addr().unwrap_or(metrics_address);
        tokio::spawn(serve(
            metrics_listener,
            metrics_router(webhook.clone()),
            limits,
            None,
            std::future::pending(),
        ));
        println!(
            "podid webhook for cluster `{}` serving https://{bound}/mutate and https://{bound}/healthz; metrics on http://{metrics_bound}/metrics",
            args.cluster
        );
        serve(listener, router(webhook), limits, tls, stop).await;
        Ok(Status::Success)
    })
}

/// The webhook's state.
struct Webhook {
    config: podid_webhook::Config,
    lookups: Arc<Lookups>,
    metrics: Metrics,
}

fn router(webhook: Arc<Webhook>) -> Router {
    Router::new()
        .route("/mutate", post(mutate))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(webhook)
}

fn metrics_router(webhook: Arc<Webhook>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(webhook): State<Arc<Webhook>>| async move {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    webhook.metrics.render(),
                )
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .with_state(webhook)
}

/// `POST /mutate`.
async fn mutate(State(webhook): State<Arc<Webhook>>, request: Request) -> Response {
    let started = Instant::now();
    let response = answer(&webhook, request.headers().clone(), request.into_body()).await;
    webhook
        .metrics
        .request(response.status().as_u16(), started.elapsed());
    response
}

async fn answer(webhook: &Webhook, headers: HeaderMap, body: Body) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence != "application/json" {
        return rejected(&review::wrong_content_type(content_type));
    }
    let body = match read_body(body).await {
        Ok(body) => body,
        Err(rejection) => return rejected(&rejection),
    };
    let pod = match review::parse(&body) {
        Ok(review::Request::CreatePod(pod)) => pod,
        Ok(review::Request::Other {
            uid,
            api_version,
            what,
        }) => {
            tracing::info!(%uid, %what, "not a pod's creation: allowed unchanged (the webhook configuration should send only CREATE of pods)");
            return json(
                StatusCode::OK,
                &review::allow(&uid, &api_version, &podid_webhook::Mutation::default(), &[]),
            );
        }
        Err(rejection) => return rejected(&rejection),
    };
    let found = webhook
        .lookups
        .find(&pod.namespace, &pod.service_account)
        .await;
    let mut warnings = Vec::new();
    let associated = match &found.associated {
        Ok(associated) => *associated,
        Err(e) => {
            webhook.metrics.skipped("association_lookup_failed");
            tracing::warn!(namespace = %pod.namespace, service_account = %pod.service_account, pod = %pod.name, error = %e, "cannot ask the podid server whether the service account has a Pod Identity association: the pod does not get Pod Identity");
            warnings.push(format!(
                "podid: cannot tell whether {}/{} has a Pod Identity association (the podid server did not answer); the pod has no Pod Identity: recreate it when the server is back",
                pod.namespace, pod.service_account
            ));
            false
        }
    };
    if found.account.is_some() {
        webhook.metrics.service_account_found();
    } else {
        webhook.metrics.missing_service_account();
        if let Some(e) = &found.account_error {
            tracing::warn!(namespace = %pod.namespace, service_account = %pod.service_account, error = %e, "cannot read the service account: its IRSA annotations are not applied");
        }
    }
    let account = found.account.map(|a| podid_webhook::ServiceAccount {
        annotations: a.annotations,
    });
    let mutation = podid_webhook::mutate(
        &pod.pod,
        account.as_ref(),
        associated,
        &webhook.config,
        &mut jitter,
    );
    match (&mutation.mode, &mutation.skipped) {
        (_, Some(reason)) => {
            webhook.metrics.skipped("conflicting_volume");
            tracing::warn!(namespace = %pod.namespace, pod = %pod.name, %reason, "pod not mutated");
            warnings.push(format!(
                "podid: the pod was not given an AWS identity: {reason}"
            ));
        }
        (Some(mode), None) => {
            webhook.metrics.mutated(mode);
            tracing::info!(namespace = %pod.namespace, service_account = %pod.service_account, pod = %pod.name, mode, operations = mutation.patch.len(), "pod mutated");
        }
        (None, None) => {}
    }
    json(
        StatusCode::OK,
        &review::allow(&pod.uid, &pod.api_version, &mutation, &warnings),
    )
}

/// The body, at most [`review::MAX_BODY`] bytes. A longer one is read on (and dropped) up to four
/// times that, so that the client, still sending, can read the answer; beyond, the connection
/// is closed.
async fn read_body(body: Body) -> Result<Vec<u8>, Rejection> {
    use http_body_util::BodyExt as _;
    let mut body = body;
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(Rejection {
                uid: None,
                api_version: None,
                code: 400,
                message: "the body could not be read to its end".into(),
            });
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen <= review::MAX_BODY {
            kept.extend_from_slice(&data);
        } else if seen > 4 * review::MAX_BODY {
            break;
        }
    }
    if seen > review::MAX_BODY {
        return Err(review::too_large(seen));
    }
    Ok(kept)
}

/// A lifetime in `[low, high]`, from the operating system's randomness.
pub(crate) fn jitter(low: i64, high: i64) -> i64 {
    let mut bytes = [0u8; 8];
    podid_core::Ids::fill(&podid_core::OsIds, &mut bytes);
    let span = u64::try_from(high.saturating_sub(low)).unwrap_or(0) + 1;
    low.saturating_add(i64::try_from(u64::from_le_bytes(bytes) % span).unwrap_or(0))
}

fn rejected(rejection: &Rejection) -> Response {
    tracing::warn!(code = rejection.code, message = %rejection.message, "AdmissionReview refused");
    json(
        StatusCode::from_u16(rejection.code).unwrap_or(StatusCode::BAD_REQUEST),
        &review::reject(rejection),
    )
}

fn json(status: StatusCode, value: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// The webhook's metrics, with the reference's names, types, labels and units (its HTTP
/// latencies are in microseconds).
#[derive(Default)]
struct Metrics {
    used: std::sync::atomic::AtomicBool,
    pod_identity: AtomicU64,
    irsa: AtomicU64,
    missing_service_account: AtomicU64,
    skipped_lookup: AtomicU64,
    skipped_volume: AtomicU64,
    requests: std::sync::Mutex<std::collections::BTreeMap<u16, u64>>,
    latency: Histogram,
}

/// `/mutate` latencies in microseconds, with the reference's buckets
/// (`ExponentialBuckets(125000, 2, 7)`).
#[derive(Default)]
struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

const BUCKETS: [u64; 7] = [
    125_000, 250_000, 500_000, 1_000_000, 2_000_000, 4_000_000, 8_000_000,
];

impl Metrics {
    fn mutated(&self, mode: &str) {
        let counter = if mode == "irsa" {
            &self.irsa
        } else {
            &self.pod_identity
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn service_account_found(&self) {
        self.used.store(true, Ordering::Relaxed);
    }

    fn missing_service_account(&self) {
        self.missing_service_account.fetch_add(1, Ordering::Relaxed);
    }

    fn skipped(&self, reason: &str) {
        let counter = if reason == "conflicting_volume" {
            &self.skipped_volume
        } else {
            &self.skipped_lookup
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn request(&self, code: u16, took: Duration) {
        if let Ok(mut requests) = self.requests.lock() {
            *requests.entry(code).or_default() += 1;
        }
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        for (bucket, count) in BUCKETS.iter().zip(&self.latency.counts) {
            if micros <= *bucket {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency.sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.latency.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self) -> String {
        use std::fmt::Write as _;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP pod_identity_webhook_used Indicator to know pod identity webhook is used\n# TYPE pod_identity_webhook_used gauge\npod_identity_webhook_used {}",
            u8::from(self.used.load(Ordering::Relaxed))
        );
        let _ = writeln!(
            out,
            "# HELP pod_identity_webhook_pod_count Indicator to how many pods are using sts web identity or container credentials\n# TYPE pod_identity_webhook_pod_count counter\npod_identity_webhook_pod_count{{Method=\"container_credentials\"}} {}\npod_identity_webhook_pod_count{{Method=\"sts_web_identity\"}} {}",
            load(&self.pod_identity),
            load(&self.irsa)
        );
        let _ = writeln!(
            out,
            "# HELP pod_identity_webhook_missing_sa_count Number of pods whose service account was not found\n# TYPE pod_identity_webhook_missing_sa_count counter\npod_identity_webhook_missing_sa_count {}",
            load(&self.missing_service_account)
        );
        let _ = writeln!(
            out,
            "# HELP podid_webhook_skipped_pod_count Pods that should have been mutated and were not, by reason (each is also logged and shown to the pod's creator as a warning).\n# TYPE podid_webhook_skipped_pod_count counter\npodid_webhook_skipped_pod_count{{reason=\"association_lookup_failed\"}} {}\npodid_webhook_skipped_pod_count{{reason=\"conflicting_volume\"}} {}",
            load(&self.skipped_lookup),
            load(&self.skipped_volume)
        );
        let _ = writeln!(
            out,
            "# HELP http_request_count Counter of requests broken out for each verb, path, and response code.\n# TYPE http_request_count counter"
        );
        if let Ok(requests) = self.requests.lock() {
            for (code, count) in requests.iter() {
                let _ = writeln!(
                    out,
                    "http_request_count{{code=\"{code}\",path=\"/mutate\",verb=\"POST\"}} {count}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP http_request_latencies Response latency distribution in microseconds for each verb and path\n# TYPE http_request_latencies histogram"
        );
        for (bucket, count) in BUCKETS.iter().zip(&self.latency.counts) {
            let _ = writeln!(
                out,
                "http_request_latencies_bucket{{path=\"/mutate\",verb=\"POST\",le=\"{bucket}\"}} {}",
                load(count)
            );
        }
        let (total, sum) = (load(&self.latency.count), load(&self.latency.sum_micros));
        let _ = writeln!(
            out,
            "http_request_latencies_bucket{{path=\"/mutate\",verb=\"POST\",le=\"+Inf\"}} {total}\nhttp_request_latencies_sum{{path=\"/mutate\",verb=\"POST\"}} {sum}\nhttp_request_latencies_count{{path=\"/mutate\",verb=\"POST\"}} {total}"
        );
        let _ = writeln!(
            out,
            "# HELP http_request_duration_microseconds Response latency summary in microseconds for each verb and path.\n# TYPE http_request_duration_microseconds summary\nhttp_request_duration_microseconds_sum{{path=\"/mutate\",verb=\"POST\"}} {sum}\nhttp_request_duration_microseconds_count{{path=\"/mutate\",verb=\"POST\"}} {total}"
        );
        out
    }
}
