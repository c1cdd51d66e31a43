//! `podid exec`: runs a command as a pod of a local cluster runs: with a fresh service-account
//! token and nothing else to take credentials from; for EKS Pod Identity, the
//! container-credentials variables pointing at an agent; for IRSA (a service account annotated
//! with `eks.amazonaws.com/role-arn` and no Pod Identity association, or `--role-arn`), what the
//! IRSA webhook injects: `AWS_ROLE_ARN` and `AWS_WEB_IDENTITY_TOKEN_FILE`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use podid_agent::AgentConfig;
use podid_core::{Ids as _, OsIds};
use serde_json::{Value, json};

use crate::Status;
use crate::aws_client::{ApiFailure, Client, ClientArgs};

/// Variables a pod's SDK could take credentials or a profile from instead of the agent
/// (`AWS_CONFIG_FILE` and `AWS_SHARED_CREDENTIALS_FILE` are replaced, not removed).
const REMOVED: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
];

#[derive(Debug, Args)]
pub(crate) struct ExecArgs {
    /// The local cluster the pod runs in.
    #[arg(long)]
    cluster: String,
    /// The pod's namespace.
    #[arg(long)]
    namespace: String,
    /// The pod's service account.
    #[arg(long)]
    service_account: String,
    /// The pod's name (default: SERVICE_ACCOUNT-xxxxx, like a Deployment's pods).
    #[arg(long)]
    pod_name: Option<String>,
    /// An agent to use (its full credentials URL) instead of the one `podid exec` starts on a
    /// free loopback port for the command's lifetime. It must serve the same cluster.
    #[arg(long, value_name = "URL", env = "PODID_AGENT_URL")]
    agent_url: Option<String>,
    /// The token's lifetime in seconds (600 to 172800), as a projected volume's
    /// `expirationSeconds`. Like kubelet, podid exec writes a fresh token into the file when
    /// 80 % of it has passed, so commands may run for days.
    #[arg(
        long,
        default_value_t = 86_400,
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u32).range(600..=172_800)
    )]
    token_expiration: u32,
    /// Use IRSA with this role for this run, whatever the service account's annotations and
    /// associations say (the token's audience is `sts.amazonaws.com`).
    #[arg(long, value_name = "ARN")]
    role_arn: Option<String>,
    /// Seconds between token rotations (default: 80 % of --token-expiration); for tests.
    #[arg(long, hide = true, value_name = "SECONDS")]
    token_refresh_seconds: Option<u64>,
    #[command(flatten)]
    client: ClientArgs,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

pub(crate) fn run(args: ExecArgs) -> anyhow::Result<Status> {
    let eks = Client::new(&args.client, "eks")?;
    let endpoint = eks.endpoint().to_owned();
    let region = eks.region().to_owned();
    let ids = OsIds;
    let pod_name = args
        .pod_name
        .clone()
        .unwrap_or_else(|| format!("{}-{}", args.service_account, ids.lower_alphanumeric(5)));
    let identity = Identity::of(&args, &eks)?;
    let pod = Pod {
        cluster: args.cluster.clone(),
        namespace: args.namespace.clone(),
        service_account: args.service_account.clone(),
        name: pod_name,
        uid: ids.request_id().to_ascii_lowercase(),
        expiration: match &identity {
            Identity::Irsa {
                expiration: Some(seconds),
                ..
            } => *seconds,
            _ => args.token_expiration,
        },
        audience: match &identity {
            Identity::Irsa { audience, .. } => Some(audience.clone()),
            Identity::PodIdentity => None,
        },
    };
    let token = pod.mint_token(&eks)?;
    let dir = PrivateDir::create()?;
    let token_file = dir.path.join(match identity {
        Identity::Irsa { .. } => "token",
        Identity::PodIdentity => "eks-pod-identity-token",
    });
    crate::server::write_private(&token_file, &token)?;
    // The pod's AWS config: the region and podid's endpoint, and no credentials at all.
    let config_file = dir.path.join("config");
    crate::server::write_private(
        &config_file,
        &format!("[default]\nregion = {region}\nendpoint_url = {endpoint}\n"),
    )?;
    let credentials_file = dir.path.join("credentials");
    crate::server::write_private(&credentials_file, "")?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let agent_url = match (&identity, &args.agent_url) {
        (Identity::Irsa { .. }, _) => String::new(),
        (Identity::PodIdentity, Some(url)) => url.clone(),
        (Identity::PodIdentity, None) => {
            let upstream = crate::agent::eks_auth(&args.client, None)?;
            let mut config = AgentConfig::new(&args.cluster);
            config.allowed_hosts = vec!["127.0.0.1".into()];
            let agent = podid_agent::agent(config, Arc::new(upstream));
            let running = runtime.block_on(crate::agent::start(
                agent,
                &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
                0,
                None,
                None,
                crate::listen::Limits::default(),
            ))?;
            let address = running
                .addresses
                .first()
                .context("the agent did not start")?;
            format!("http://{address}/v1/credentials")
        }
    };
    // Signals: Ctrl-C reaches the command from the terminal (it signals the whole process
    // group); SIGTERM and SIGHUP, sent to podid alone, are passed on. Either way podid waits for
    // the command to end and cleans up rather than dying first.
    let signals = {
        let _runtime = runtime.enter();
        Signals::install()
    };
    let every = args.token_refresh_seconds.unwrap_or(
        u64::from(pod.expiration) * 4 / 5, // kubelet's rule: at 80 % of the lifetime
    );
    runtime.spawn(rotate_token(eks, pod, token_file.clone(), every.max(1)));

    let (program, rest) = args
        .command
        .split_first()
        .context("give the command to run after `--`")?;
    let mut command = std::process::Command::new(program);
    command.args(rest);
    for name in REMOVED {
        command.env_remove(name);
    }
    // Per-service endpoints would send the pod's credentials somewhere other than podid.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AWS_ENDPOINT_URL_")
            || name == "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"
        {
            command.env_remove(name);
        }
    }
    match &identity {
        Identity::PodIdentity => command
            .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", &agent_url)
            .env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &token_file),
        Identity::Irsa { role, regional, .. } => {
            command
                .env("AWS_ROLE_ARN", role)
                .env("AWS_WEB_IDENTITY_TOKEN_FILE", &token_file)
                .env_remove("AWS_CONTAINER_CREDENTIALS_FULL_URI")
                .env_remove("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
            if *regional {
                command.env("AWS_STS_REGIONAL_ENDPOINTS", "regional");
            }
            &mut command
        }
    };
    command
        .env("AWS_CONFIG_FILE", &config_file)
        .env("AWS_SHARED_CREDENTIALS_FILE", &credentials_file)
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_REGION", &region)
        .env("AWS_DEFAULT_REGION", &region)
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let status = command
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                anyhow::anyhow!("cannot run `{program}`: no such command (check its name and PATH)")
            } else {
                anyhow::anyhow!("cannot run `{program}`: {e}")
            }
        })
        .and_then(|mut child| {
            runtime.spawn(signals.forward_to(child.id()));
            child
                .wait()
                .with_context(|| format!("cannot wait for `{program}`"))
        });
    drop(dir);
    runtime.shutdown_background();
    let status = match status {
        Ok(status) => status,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(Status::Exit(127));
        }
    };
    Ok(Status::Exit(exit_code(&status)))
}

/// The signals podid passes on to the command, installed before it starts.
struct Signals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    hangup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Installs the handlers; call it inside the runtime.
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Self {
                interrupt: signal(SignalKind::interrupt()).ok(),
                terminate: signal(SignalKind::terminate()).ok(),
                hangup: signal(SignalKind::hangup()).ok(),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// Passes SIGTERM and SIGHUP on to process `pid` (with `kill`, which needs no unsafe code);
    /// SIGINT is only absorbed: the terminal delivered it to the command already.
    async fn forward_to(self, pid: u32) {
        #[cfg(unix)]
        {
            let Self {
                mut interrupt,
                mut terminate,
                mut hangup,
            } = self;
            loop {
                let name = tokio::select! {
                    () = next(&mut interrupt) => continue,
                    () = next(&mut terminate) => "TERM",
                    () = next(&mut hangup) => "HUP",
                };
                let _ = std::process::Command::new("kill")
                    .args(["-s", name, &pid.to_string()])
                    .status();
            }
        }
        #[cfg(not(unix))]
        let _ = pid;
    }
}

/// The next delivery of `signal`; never, if it could not be installed.
#[cfg(unix)]
async fn next(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(s) => {
            if s.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}

/// The command's exit status, as a shell reports it (128 + the signal that ended it).
fn exit_code(status: &std::process::ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        return u8::try_from(code & 0xff).unwrap_or(1);
    }
    #[cfg(unix)]
    if let Some(signal) = std::os::unix::process::ExitStatusExt::signal(status) {
        return u8::try_from((128 + signal) & 0xff).unwrap_or(1);
    }
    1
}

/// How the pod gets credentials, decided as EKS decides: a Pod Identity association wins over
/// IRSA's annotation; `--role-arn` forces IRSA.
enum Identity {
    /// The agent, with the pod's token.
    PodIdentity,
    /// AssumeRoleWithWebIdentity by the SDK, with the pod's token.
    Irsa {
        /// `AWS_ROLE_ARN`.
        role: String,
        /// The token's audience (`eks.amazonaws.com/audience`, default `sts.amazonaws.com`).
        audience: String,
        /// `AWS_STS_REGIONAL_ENDPOINTS=regional` (`eks.amazonaws.com/sts-regional-endpoints`).
        regional: bool,
        /// The token's lifetime (`eks.amazonaws.com/token-expiration`).
        expiration: Option<u32>,
    },
}

impl Identity {
    fn of(args: &ExecArgs, eks: &Client) -> anyhow::Result<Self> {
        if let Some(role) = &args.role_arn {
            return Ok(Self::Irsa {
                role: role.clone(),
                audience: "sts.amazonaws.com".into(),
                regional: true,
                expiration: None,
            });
        }
        let cluster = &args.cluster;
        let associations = eks
            .json(
                "GET",
                &format!("/clusters/{cluster}/pod-identity-associations"),
                &format!(
                    "namespace={}&serviceAccount={}",
                    args.namespace, args.service_account
                ),
                None,
            )
            .with_context(|| {
                format!("cannot list the Pod Identity associations of cluster `{cluster}`")
            })?;
        if associations
            .get("associations")
            .and_then(Value::as_array)
            .is_some_and(|list| !list.is_empty())
        {
            return Ok(Self::PodIdentity);
        }
        let path = format!(
            "/clusters/{cluster}/podid/service-accounts/{}/{}",
            args.namespace, args.service_account
        );
        let account = match eks.json("GET", &path, "", None) {
            Ok(account) => account,
            // No such service account (or no permission to read it): no IRSA annotations.
            Err(e) if e.downcast_ref::<ApiFailure>().is_some() => return Ok(Self::PodIdentity),
            Err(e) => return Err(e.context("cannot read the service account")),
        };
        let annotation = |name: &str| {
            account
                .pointer(&format!("/metadata/annotations/eks.amazonaws.com~1{name}"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Ok(match annotation("role-arn") {
            Some(role) => Self::Irsa {
                role,
                audience: annotation("audience").unwrap_or_else(|| "sts.amazonaws.com".into()),
                regional: annotation("sts-regional-endpoints").as_deref() == Some("true"),
                expiration: annotation("token-expiration").and_then(|s| s.parse().ok()),
            },
            None => Self::PodIdentity,
        })
    }
}

/// The pod `podid exec` runs as.
#[derive(Clone)]
struct Pod {
    cluster: String,
    namespace: String,
    service_account: String,
    name: String,
    uid: String,
    expiration: u32,
    /// The token's audience (default `pods.eks.amazonaws.com`).
    audience: Option<String>,
}

impl Pod {
    /// A service-account token for the pod, as kubelet gets one for a projected volume.
    fn mint_token(&self, eks: &Client) -> anyhow::Result<String> {
        let mut body = json!({
            "namespace": self.namespace,
            "serviceAccount": self.service_account,
            "podName": self.name,
            "podUid": self.uid,
            "expirationSeconds": self.expiration,
        });
        if let (Some(audience), Some(map)) = (&self.audience, body.as_object_mut()) {
            map.insert("audiences".into(), json!([audience]));
        }
        let answer = eks
            .json(
                "POST",
                &format!("/clusters/{}/podid/service-account-token", self.cluster),
                "",
                Some(&body),
            )
            .map_err(|e| {
                // The server answered: name the likely cause. It did not: its reason says it all.
                let hint = if e.downcast_ref::<ApiFailure>().is_some() {
                    " (is it a local cluster? `podid cluster list` shows them)"
                } else {
                    ""
                };
                e.context(format!(
                    "cannot mint a service-account token in cluster `{}`{hint}",
                    self.cluster
                ))
            })?;
        answer
            .get("token")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .context("the server answered without a token")
    }
}

/// Writes a fresh token into `file` every `seconds`, as kubelet rotates projected tokens; a
/// failure is logged and tried again in 10 s (the old token stays until it expires).
async fn rotate_token(eks: Client, pod: Pod, file: PathBuf, seconds: u64) {
    let mut wait = seconds;
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
        let (eks, pod, file) = (eks.clone(), pod.clone(), file.clone());
        let written = tokio::task::spawn_blocking(move || {
            let token = pod.mint_token(&eks)?;
            crate::server::write_private(&file, &token)
        })
        .await;
        wait = match written {
            Ok(Ok(())) => seconds,
            Ok(Err(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot rotate the pod's token; retrying in 10 s");
                10
            }
            Err(_) => 10,
        };
    }
}

/// A directory only its owner can enter, removed when dropped.
struct PrivateDir {
    path: PathBuf,
}

impl PrivateDir {
    fn create() -> anyhow::Result<Self> {
        let path =
            std::env::temp_dir().join(format!("podid-exec-{}", OsIds.lower_alphanumeric(12)));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&path)
            .with_context(|| format!("cannot create `{}`", path.display()))?;
        Ok(Self { path })
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(Path::new(&self.path));
    }
}
