//! `podid exec`: runs a command as a pod of a local cluster runs. It builds the pod (one
//! container, `main`), mutates it with `podid_webhook::mutate` (what `podid webhook` does to real
//! pods), and gives the command that container's variables and token: for EKS Pod Identity, the
//! container-credentials variables pointing at an agent; for IRSA (a service account annotated
//! with `eks.amazonaws.com/role-arn` and no Pod Identity association, or `--role-arn`),
//! `AWS_ROLE_ARN` and `AWS_WEB_IDENTITY_TOKEN_FILE`. The token volume is a private directory:
//! paths under the volume's mount path are moved under it. Nothing else to take credentials
//! from is left in the environment.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
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
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
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
    /// Run the command even when the pod gets no credentials. Without it, podid exec asks for
    /// the pod's credentials first (Pod Identity) and stops with exit code 125 and the reason
    /// when EKS Auth refuses them, instead of letting the command's SDK retry for seconds.
    #[arg(long)]
    no_credential_check: bool,
    /// Write podid's own log (the embedded agent's included) to FILE. Without it only errors
    /// are shown, on stderr, so that the command's terminal holds the command's output
    /// (`RUST_LOG` overrides the level).
    #[arg(long, value_name = "FILE")]
    agent_log: Option<PathBuf>,
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
    let uid = ids.request_id().to_ascii_lowercase();
    let (account, associated) = identity_of(&args, &eks)?;
    let spec = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod_name, "namespace": args.namespace, "uid": uid},
        "spec": {"serviceAccountName": args.service_account, "containers": [{"name": "main"}]},
    });
    let mut config = podid_webhook::Config {
        token_expiration: i64::from(args.token_expiration),
        region: Some(region.clone()),
        ..podid_webhook::Config::default()
    };
    let mutate = |config: &podid_webhook::Config| {
        podid_webhook::mutate(
            &spec,
            Some(&account),
            associated,
            config,
            &mut crate::webhook::jitter,
        )
    };
    // Which identity, first: the agent's URL goes into the variables.
    let pod_identity = mutate(&config).mode == Some("pod-identity");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    if pod_identity {
        config.pod_identity_uri = match &args.agent_url {
            Some(url) => url.clone(),
            None => {
                let upstream = crate::agent::eks_auth(&args.client, None)?;
                let mut agent_config = AgentConfig::new(&args.cluster);
                agent_config.allowed_hosts = vec!["127.0.0.1".into()];
                let agent = podid_agent::agent(agent_config, Arc::new(upstream));
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
    }
    let mutation = mutate(&config);
    if let Some(reason) = &mutation.skipped {
        bail!("the pod cannot be given an identity: {reason}");
    }
    let mut pod_json = spec.clone();
    podid_webhook::apply(&mut pod_json, &mutation.patch).map_err(anyhow::Error::msg)?;
    let dir = PrivateDir::create()?;
    let container = Container::of(&pod_json, &dir.path)?;
    let pod = Pod {
        cluster: args.cluster.clone(),
        namespace: args.namespace.clone(),
        service_account: args.service_account.clone(),
        name: pod_name,
        uid,
        expiration: container.token.expiration,
        audience: container.token.audience.clone(),
    };
    let token = pod.mint_token(&eks)?;
    let token_file = container.token.file.clone();
    write_token(&token_file, &token)?;
    if pod_identity
        && !args.no_credential_check
        && let Some(refusal) = credentials_refusal(&config.pod_identity_uri, &token)
    {
        let program = args.command.first().map(String::as_str).unwrap_or_default();
        eprintln!(
            "podid exec: the pod gets no credentials, so `{program}` was not run.\n  {refusal}\n  {}\n  (to run it anyway: --no-credential-check)",
            refusal_fix(&refusal, &args)
        );
        drop(dir);
        runtime.shutdown_background();
        return Ok(Status::Exit(EXIT_NO_CREDENTIALS));
    }
    // The pod's AWS config: the region and podid's endpoint, and no credentials at all.
    let config_file = dir.path.join("config");
    crate::server::write_private(
        &config_file,
        &format!("[default]\nregion = {region}\nendpoint_url = {endpoint}\n"),
    )?;
    let credentials_file = dir.path.join("credentials");
    crate::server::write_private(&credentials_file, "")?;

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
    runtime.spawn(rotate_token(eks, pod, token_file, every.max(1)));

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
    // What the webhook gives the pod's container, exactly.
    for (name, value) in &container.env {
        command.env(name, value);
    }
    command
        .env("AWS_CONFIG_FILE", &config_file)
        .env("AWS_SHARED_CREDENTIALS_FILE", &credentials_file)
        .env("AWS_ENDPOINT_URL", &endpoint)
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

/// `podid exec`'s exit code when the pod gets no credentials (as `docker run` uses 125 for its
/// own failures, apart from the command's 126 and 127).
const EXIT_NO_CREDENTIALS: u8 = 125;

/// The log file `--agent-log` names, created (or appended to) now.
pub(crate) fn log_file(args: &ExecArgs) -> anyhow::Result<Option<std::fs::File>> {
    let Some(path) = &args.agent_log else {
        return Ok(None);
    };
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(Some)
        .with_context(|| format!("cannot open the log file `{}`", path.display()))
}

/// Asks the agent for the pod's credentials once, as the pod's SDK will: the agent's answer
/// when it is a lasting refusal (a 4xx other than throttling), else `None`. An agent that is
/// out of reach or busy is left for the command's SDK to retry.
fn credentials_refusal(url: &str, token: &str) -> Option<String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(15)))
        .build()
        .into();
    let mut response = match agent.get(url).header("authorization", token).call() {
        Ok(response) => response,
        Err(e) => {
            tracing::warn!(error = %e, url, "cannot ask the agent for the pod's credentials");
            return None;
        }
    };
    let status = response.status().as_u16();
    if !(400..500).contains(&status) || status == 429 {
        return None;
    }
    let body = response
        .body_mut()
        .with_config()
        .limit(64 << 10)
        .read_to_string()
        .unwrap_or_default();
    Some(format!("the agent answered {status}: {}", body.trim()))
}

/// What to do about a refusal, by EKS Auth's error code.
fn refusal_fix(refusal: &str, args: &ExecArgs) -> String {
    if refusal.contains("ResourceNotFoundException") {
        format!(
            "fix: associate a role with the service account: aws eks create-pod-identity-association --cluster-name {} --namespace {} --service-account {} --role-arn ROLE_ARN (or use IRSA: podid exec --role-arn ROLE_ARN ...)",
            args.cluster, args.namespace, args.service_account
        )
    } else if refusal.contains("AccessDenied") {
        format!(
            "fix: a role's trust policy refused the request (it must let `pods.eks.amazonaws.com` `sts:AssumeRole` and `sts:TagSession`, and its conditions must hold for this pod's session tags); `podid access --cluster {} --namespace {} --service-account {}` shows the statements behind each hop",
            args.cluster, args.namespace, args.service_account
        )
    } else {
        "fix: see the message above; `podid audit --start-time 10m` shows EKS Auth's decision"
            .into()
    }
}

/// The pod's one container after the webhook's patch: its variables (paths inside its token
/// volume moved under the private directory) and the token it mounts.
struct Container {
    env: Vec<(String, String)>,
    token: Projected,
}

/// A projected service-account token: where it goes and what it is.
struct Projected {
    file: PathBuf,
    audience: String,
    expiration: u32,
}

impl Container {
    fn of(pod: &Value, root: &Path) -> anyhow::Result<Self> {
        let container = pod
            .pointer("/spec/containers/0")
            .context("the mutated pod has no container")?;
        let mount = container
            .get("volumeMounts")
            .and_then(Value::as_array)
            .and_then(|m| m.first())
            .context("the mutated pod mounts no token")?;
        let text = |v: &Value, key: &str| {
            v.get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let (volume_name, mount_path) = (text(mount, "name"), text(mount, "mountPath"));
        let source = pod
            .pointer("/spec/volumes")
            .and_then(Value::as_array)
            .and_then(|v| {
                v.iter()
                    .find(|v| v.get("name").and_then(Value::as_str) == Some(volume_name.as_str()))
            })
            .and_then(|v| v.pointer("/projected/sources/0/serviceAccountToken"))
            .context("the mutated pod's token volume is missing")?;
        let local_mount = root.join(mount_path.trim_start_matches('/'));
        let file = local_mount.join(text(source, "path"));
        let env = container
            .get("env")
            .and_then(Value::as_array)
            .map(|vars| {
                vars.iter()
                    .map(|var| {
                        let value = text(var, "value");
                        let value = match value.strip_prefix(&format!("{mount_path}/")) {
                            Some(inside) => local_mount.join(inside).display().to_string(),
                            None => value,
                        };
                        (text(var, "name"), value)
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            env,
            token: Projected {
                file,
                audience: text(source, "audience"),
                expiration: source
                    .get("expirationSeconds")
                    .and_then(Value::as_u64)
                    .and_then(|s| u32::try_from(s).ok())
                    .context("the mutated pod's token has no lifetime")?,
            },
        })
    }
}

/// Writes the token, creating its directory (owner only) first.
fn write_token(file: &Path, token: &str) -> anyhow::Result<()> {
    if let Some(parent) = file.parent() {
        crate::server::create_private_dir_all(parent)?;
    }
    crate::server::write_private(file, token)
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

/// What the webhook would know of the pod's service account: its annotations and whether it
/// has a Pod Identity association. `--role-arn` stands for the annotations (IRSA, regional
/// STS). A service account with neither runs as Pod Identity, so that the command sees EKS
/// Auth's refusal naming what is missing, rather than no credentials at all.
fn identity_of(
    args: &ExecArgs,
    eks: &Client,
) -> anyhow::Result<(podid_webhook::ServiceAccount, bool)> {
    let mut account = podid_webhook::ServiceAccount::default();
    if let Some(role) = &args.role_arn {
        account
            .annotations
            .insert("eks.amazonaws.com/role-arn".into(), role.clone());
        account.annotations.insert(
            "eks.amazonaws.com/sts-regional-endpoints".into(),
            "true".into(),
        );
        return Ok((account, false));
    }
    let cluster = &args.cluster;
    let associations = eks
        .json(
            "GET",
            &format!("/clusters/{cluster}/pod-identity-associations"),
            &format!(
                "namespace={}&serviceAccount={}",
                podid_sigv4::uri_encoded(&args.namespace),
                podid_sigv4::uri_encoded(&args.service_account)
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
        return Ok((account, true));
    }
    let path = format!(
        "/clusters/{cluster}/podid/service-accounts/{}/{}",
        args.namespace, args.service_account
    );
    let object = match eks.json("GET", &path, "", None) {
        Ok(object) => object,
        // No such service account (or no permission to read it): no IRSA annotations.
        Err(e) if e.downcast_ref::<ApiFailure>().is_some() => return Ok((account, true)),
        Err(e) => return Err(e.context("cannot read the service account")),
    };
    account.annotations = crate::webhook::account_of(&object).annotations;
    let irsa = account
        .annotations
        .get("eks.amazonaws.com/role-arn")
        .is_some_and(|r| !r.is_empty());
    Ok((account, !irsa))
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
    /// The token's audience.
    audience: String,
}

impl Pod {
    /// A service-account token for the pod, as kubelet gets one for a projected volume.
    fn mint_token(&self, eks: &Client) -> anyhow::Result<String> {
        let body = json!({
            "namespace": self.namespace,
            "serviceAccount": self.service_account,
            "podName": self.name,
            "podUid": self.uid,
            "expirationSeconds": self.expiration,
            "audiences": [self.audience],
        });
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
