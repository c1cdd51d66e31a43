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
    /// Before listening, add the --bind-hosts addresses to a dummy network interface of their
    /// own (--link-name), as the reference agent's init container does: each address as a /32
    /// or /128, the link brought up; what is there already is kept. An IPv6 address that
    /// cannot be added (a node without IPv6) is skipped with a warning. A kernel without the
    /// dummy driver gets the addresses on `lo`. Needs CAP_NET_ADMIN and the `ip` command
    /// (iproute2).
    #[arg(long)]
    setup_link: bool,
    /// The interface --setup-link creates.
    #[arg(long, default_value = "pod-id-link0", value_name = "NAME")]
    link_name: String,
    /// With --setup-link: set the link up and exit (for an init container that alone holds
    /// CAP_NET_ADMIN).
    #[arg(long, requires = "setup_link")]
    setup_only: bool,
    /// Watch this node's pods (--node-name) through the Kubernetes API and forget a pod once
    /// it is deleted or has finished, instead of renewing its credentials until it stops
    /// asking. Needs `list` and `watch` on pods (in-cluster, or --kubeconfig).
    #[arg(long, requires = "node_name")]
    watch_pods: bool,
    /// The node this agent runs on (`spec.nodeName`; in a DaemonSet, from the downward API).
    #[arg(long, env = "NODE_NAME", value_name = "NAME")]
    node_name: Option<String>,
    /// With --watch-pods: the kubeconfig to use instead of the pod's own service account.
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<std::path::PathBuf>,
    /// Keep the agent's state (cached pods' credentials and tokens, the issuers' key sets) in
    /// DIR/state.json (mode 0600; DIR is created 0700), written within seconds of a change and
    /// at shutdown, and read at start: a restarted agent serves its pods, rotated tokens
    /// included, while EKS Auth is down. The file holds credentials: give a directory only the
    /// agent can read (on a node, a hostPath such as /var/lib/podid-agent).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<std::path::PathBuf>,
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    limits: ListenArgs,
}

pub(crate) fn run(args: AgentArgs) -> anyhow::Result<Status> {
    if args.setup_link {
        let (link, ready) = setup_link(&args.link_name, &args.bind_hosts)?;
        println!(
            "link `{link}` holds {}",
            ready
                .iter()
                .map(IpAddr::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        if args.setup_only {
            return Ok(Status::Success);
        }
    }
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
        let state = match &args.state_dir {
            Some(dir) => Some(State::open(dir, &agent)?),
            None => None,
        };
        if let (true, Some(node)) = (args.watch_pods, &args.node_name) {
            let client = crate::kubernetes::client(args.kubeconfig.as_deref()).await?;
            tokio::spawn(crate::kubernetes::forget_gone_pods(
                client,
                node.clone(),
                agent.clone(),
            ));
        }
        let running = start(
            agent.clone(),
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
        match state {
            Some(state) => {
                let keeper = tokio::spawn(state.clone().keep(agent.clone()));
                stop.await;
                keeper.abort();
                state.write(&agent);
            }
            None => stop.await,
        }
        Ok(Status::Success)
    })
}

/// The agent's state file.
#[derive(Clone)]
struct State {
    file: std::path::PathBuf,
    written: Arc<std::sync::atomic::AtomicU64>,
}

impl State {
    /// Creates the directory if needed and restores the state found in it.
    fn open(dir: &std::path::Path, agent: &Agent) -> anyhow::Result<Self> {
        crate::server::create_private_dir_all(dir)?;
        let file = dir.join("state.json");
        match std::fs::read_to_string(&file) {
            Ok(text) => match agent.restore(&text) {
                Ok(pods) => {
                    tracing::info!(file = %file.display(), pods, "restored the agent's state");
                }
                Err(e) => {
                    tracing::warn!(file = %file.display(), error = %e, "the state file was not used")
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read `{}`", file.display()));
            }
        }
        Ok(Self {
            file,
            written: Arc::new(std::sync::atomic::AtomicU64::new(agent.state_generation())),
        })
    }

    /// Writes the state every two seconds when it changed.
    async fn keep(self, agent: Arc<Agent>) {
        let mut every = tokio::time::interval(Duration::from_secs(2));
        loop {
            every.tick().await;
            if agent.state_generation() != self.written.load(Ordering::Relaxed) {
                self.write(&agent);
            }
        }
    }

    fn write(&self, agent: &Agent) {
        let generation = agent.state_generation();
        match write_state(&self.file, agent) {
            Ok(()) => self.written.store(generation, Ordering::Relaxed),
            Err(e) => {
                tracing::warn!(file = %self.file.display(), error = %e, "cannot write the agent's state; trying again");
            }
        }
    }
}

/// Streams the state into a private temporary file, then puts it in place: a crash leaves the
/// old file or the new one, never half of one.
fn write_state(file: &std::path::Path, agent: &Agent) -> std::io::Result<()> {
    let tmp = file.with_extension("tmp");
    let written = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut out = std::io::BufWriter::new(options.open(&tmp)?);
        agent.write_state(&mut out)?;
        out.into_inner()
            .map_err(std::io::IntoInnerError::into_error)?
            .sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, file)
}

/// Adds `hosts` to the dummy link `name` (created if missing; `lo` when the kernel has no dummy
/// driver) with `ip`; returns the link used and the addresses in place. Only IPv6 failures are
/// forgiven.
fn setup_link(name: &str, hosts: &[IpAddr]) -> anyhow::Result<(String, Vec<IpAddr>)> {
    let ip = |args: &[&str]| -> anyhow::Result<(bool, String)> {
        let output = std::process::Command::new("ip")
            .args(args)
            .output()
            .context("cannot run `ip` (iproute2), which --setup-link needs: install it, or add the addresses another way and drop --setup-link")?;
        Ok((
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ))
    };
    let mut link = name.to_owned();
    let (exists, _) = ip(&["link", "show", "dev", name])?;
    if !exists {
        let (created, error) = ip(&["link", "add", name, "type", "dummy"])?;
        if !created {
            if error.contains("Unknown device type") {
                tracing::warn!(
                    link = name,
                    "the kernel has no dummy network driver: the addresses go on `lo`"
                );
                link = "lo".into();
            } else {
                bail!(
                    "cannot create the link `{name}`: {error} (the agent needs CAP_NET_ADMIN for --setup-link)"
                );
            }
        }
    }
    let (up, error) = ip(&["link", "set", "dev", &link, "up"])?;
    if !up {
        bail!("cannot bring the link `{link}` up: {error}");
    }
    let mut ready = Vec::new();
    for host in hosts {
        let (family, prefix) = if host.is_ipv6() {
            ("-6", 128)
        } else {
            ("-4", 32)
        };
        let address = format!("{host}/{prefix}");
        let (added, error) = ip(&[family, "addr", "replace", &address, "dev", &link])?;
        if added {
            ready.push(*host);
        } else if host.is_ipv6() {
            tracing::warn!(%address, link, %error, "cannot add this IPv6 address (is IPv6 disabled on the node?): serving IPv4 only");
        } else {
            bail!("cannot add {address} to `{link}`: {error}");
        }
    }
    Ok((link, ready))
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
    tokio::spawn(agent.clone().follow_changes());
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
