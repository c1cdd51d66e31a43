//! `podid agent`: the node agent, a drop-in for the EKS Pod Identity agent.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use podid_agent::{Agent, AgentConfig, EksAuth};

use crate::Status;
use crate::aws_client::{Client, ClientArgs};
use crate::listen::{Limits, ListenArgs, parse_duration, serve};

#[derive(Debug, Args)]
pub(crate) struct AgentArgs {
    /// The cluster whose pods run on this node (EKS Auth is asked for this cluster's pods).
    #[arg(long, env = "PODID_CLUSTER_NAME")]
    cluster_name: String,
    /// EKS Auth's URL (default: `AWS_ENDPOINT_URL_EKS_AUTH`, `AWS_ENDPOINT_URL`, the
    /// profile's `endpoint_url`, as the AWS CLI finds them; else AWS's own
    /// `https://eks-auth.REGION.api.aws`). The node's credentials sign the calls
    /// (`eks-auth:AssumeRoleForPodIdentity`). `--endpoint-url` is the same flag under the AWS
    /// CLI's name.
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// The port pods call (0 picks a free one per address; they are printed).
    #[arg(long, default_value_t = 80)]
    port: u16,
    /// The addresses to listen on (comma-separated). Each is also a `Host` that requests may
    /// carry; any other host is refused with 403. An address the node lacks (an IPv6 address
    /// on an IPv4-only node) is skipped with a warning; the agent fails only when none binds.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "169.254.170.23,fd00:ec2::23",
        value_name = "ADDRS"
    )]
    bind_hosts: Vec<IpAddr>,
    /// The port of `/healthz` and `/readyz`, on localhost (0 picks a free one; it is printed).
    #[arg(long, default_value_t = 2703)]
    probe_port: u16,
    /// The port of `/metrics` (Prometheus, with the probes beside it), on all addresses (0
    /// picks a free one; it is printed).
    #[arg(long, default_value_t = 2705)]
    metrics_port: u16,
    /// The longest credentials are served before they are renewed (e.g. `3h`, `45m`, `90s`);
    /// `0` turns the cache off.
    #[arg(long, default_value = "3h", value_parser = parse_duration, value_name = "DURATION")]
    max_credential_retention_before_renewal: Duration,
    /// The most pods whose credentials are cached; beyond it the least recently used go.
    #[arg(long, default_value_t = 2000, value_name = "N")]
    max_cache_size: usize,
    /// Renewals per second EKS Auth may receive from this agent (bursting to as many).
    #[arg(long, default_value_t = 3, value_name = "QPS", value_parser = clap::value_parser!(u32).range(1..))]
    max_service_qps: u32,
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    limits: ListenArgs,
}

pub(crate) fn run(args: AgentArgs) -> anyhow::Result<Status> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let stop = crate::server::shutdown();
        let upstream = eks_auth(&args.client, args.endpoint.as_deref())?;
        let mut config = AgentConfig::new(&args.cluster_name);
        config.max_retention = args.max_credential_retention_before_renewal;
        config.max_cache_size = args.max_cache_size;
        config.max_service_qps = args.max_service_qps;
        config.allowed_hosts = args.bind_hosts.iter().map(IpAddr::to_string).collect();
        let agent = podid_agent::agent(config, Arc::new(upstream));
        let running = start(
            agent,
            &args.bind_hosts,
            args.port,
            Some(args.probe_port),
            Some(args.metrics_port),
            args.limits.limits(),
        )
        .await?;
        println!(
            "podid agent for cluster `{}` serving {}",
            args.cluster_name,
            running
                .addresses
                .iter()
                .map(|a| format!("http://{a}/v1/credentials"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if let Some(probe) = running.probe {
            println!("probes on http://{probe}/healthz and http://{probe}/readyz");
        }
        if let Some(metrics) = running.metrics {
            println!("metrics on http://{metrics}/metrics");
        }
        stop.await;
        Ok(Status::Success)
    })
}

/// EKS Auth as the flags and the AWS config say, signed with the node's credentials.
pub(crate) fn eks_auth(client: &ClientArgs, endpoint: Option<&str>) -> anyhow::Result<EksAuth> {
    let mut client = client.clone();
    if let Some(endpoint) = endpoint {
        client.endpoint_url = Some(endpoint.to_owned());
    }
    let client = Client::with_default_endpoint(
        &client,
        "eks-auth",
        Some(|region| format!("https://eks-auth.{region}.api.aws")),
    )?;
    let trust = client.trust();
    let (credentials, region, endpoint) = client.into_parts();
    Ok(EksAuth::new(
        &endpoint,
        &region,
        credentials,
        Duration::from_secs(1),
        trust,
    ))
}

/// A running agent: the addresses it serves pods on.
pub(crate) struct Running {
    pub(crate) addresses: Vec<SocketAddr>,
    pub(crate) probe: Option<SocketAddr>,
    pub(crate) metrics: Option<SocketAddr>,
}

/// Binds the agent's listeners and serves them (and the renewal loop) in the background.
/// Each bind address is tried on its own: one the node lacks is skipped with a warning.
pub(crate) async fn start(
    agent: Arc<Agent>,
    hosts: &[IpAddr],
    port: u16,
    probe_port: Option<u16>,
    metrics_port: Option<u16>,
    limits: Limits,
) -> anyhow::Result<Running> {
    let ready = Arc::new(AtomicBool::new(false));
    let mut addresses = Vec::new();
    for host in hosts {
        let address = SocketAddr::new(*host, port);
        match tokio::net::TcpListener::bind(address).await {
            Ok(listener) => {
                addresses.push(listener.local_addr().unwrap_or(address));
                let router = podid_agent::credentials_router(agent.clone());
                tokio::spawn(serve(
                    listener,
                    router,
                    limits,
                    None,
                    std::future::pending(),
                ));
            }
            Err(e) => {
                let family = if host.is_ipv6() { "IPv6" } else { "IPv4" };
                tracing::warn!(
                    %address,
                    error = %e,
                    "cannot listen on this {family} address; serving the others (add it to the node, or leave it out of --bind-hosts)"
                );
            }
        }
    }
    if addresses.is_empty() {
        bail!(
            "cannot listen on any of --bind-hosts {} port {port}: add one of these addresses to the node (the reference agent's init container does), or choose others",
            hosts
                .iter()
                .map(IpAddr::to_string)
                .collect::<Vec<_>>()
                .join(",")
        );
    }
    let probe = match probe_port {
        Some(port) => Some(
            serve_side(
                "probe",
                SocketAddr::from(([127, 0, 0, 1], port)),
                podid_agent::probe_router(ready.clone()),
                limits,
            )
            .await?,
        ),
        None => None,
    };
    let metrics = match metrics_port {
        Some(port) => Some(
            serve_side(
                "metrics",
                SocketAddr::from(([0, 0, 0, 0], port)),
                podid_agent::metrics_router(agent.clone(), ready.clone()),
                limits,
            )
            .await?,
        ),
        None => None,
    };
    tokio::spawn(agent.run());
    ready.store(true, Ordering::Relaxed);
    Ok(Running {
        addresses,
        probe,
        metrics,
    })
}

/// Serves the probes or the metrics; the address bound.
async fn serve_side(
    what: &str,
    address: SocketAddr,
    router: axum::Router,
    limits: Limits,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| {
            format!("cannot listen on {address} for the {what} endpoint: choose another port")
        })?;
    let bound = listener.local_addr().unwrap_or(address);
    tokio::spawn(serve(
        listener,
        router,
        limits,
        None,
        std::future::pending(),
    ));
    Ok(bound)
}
