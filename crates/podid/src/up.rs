//! `podid up` and `podid env`: the server, a local cluster and a node agent in one process, and
//! the `export` lines that point the AWS CLI and SDKs at them.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use podid_agent::{AgentConfig, EksAuth};
use podid_sigv4::Credentials;

use crate::Status;
use crate::aws_client::{ApiFailure, Client};
use crate::listen::ListenArgs;
use crate::server::ServerArgs;

#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// podid's data: the SQLite database, the master key, the AWS config and credentials files
    /// and `env` (what `podid env` prints). Default: `PODID_DATA_DIR`, else
    /// `$XDG_DATA_HOME/podid`, else `~/.local/share/podid`.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Accounts to create at the first start, each with an IAM user `admin`
    /// (AdministratorAccess) and a profile named by its id; the first is the `default` profile
    /// and owns the cluster.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "111122223333,444455556666",
        value_name = "IDS"
    )]
    accounts: Vec<String>,
    /// The server's address (IAM, STS, EKS, EKS Auth, OIDC).
    #[arg(long, default_value = crate::server::DEFAULT_LISTEN, value_name = "ADDR")]
    listen: SocketAddr,
    /// The agent's port on 127.0.0.1 (`GET /v1/credentials`).
    #[arg(long, default_value_t = 4600)]
    agent_port: u16,
    /// The local cluster the agent serves, created if it does not exist.
    #[arg(long, default_value = "local")]
    cluster: String,
    /// The region of the AWS config file.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    #[command(flatten)]
    limits: ListenArgs,
    /// Serve HTTPS instead of plain HTTP (with --tls-key; loopback stays plain unless asked).
    #[command(flatten)]
    tls: crate::tls::TlsArgs,
    /// The CA certificate (PEM) that signed --tls-cert: the agent, podid's clients and the AWS
    /// config files' profiles (`ca_bundle`) trust it, and `podid env` exports it as
    /// AWS_CA_BUNDLE for the AWS CLI, the SDKs and `podid exec`.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    ca_bundle: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct EnvArgs {
    /// The data directory `podid up` uses (same default).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

pub(crate) fn run(args: UpArgs) -> anyhow::Result<Status> {
    let began = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(up(args, began))
}

async fn up(args: UpArgs, began: Instant) -> anyhow::Result<Status> {
    let stop_signal = crate::server::shutdown();
    let data_dir = data_dir(args.data_dir.clone())?;
    if !data_dir.join(crate::server::DATABASE_FILE).exists() {
        // A first start creates the cluster: its RSA key is made while the server starts, on
        // the other core.
        podid_jwt::SigningKey::make_ahead();
    }
    // The CA bundle is written into the config files by its absolute path: they are read from
    // any directory.
    let ca_bundle = args
        .ca_bundle
        .as_deref()
        .map(|path| {
            std::fs::canonicalize(path)
                .with_context(|| format!("--ca-bundle `{}` cannot be read", path.display()))
        })
        .transpose()?;
    let trust = match &ca_bundle {
        Some(path) => podid_agent::Trust::ca_bundle(path).map_err(|e| anyhow::anyhow!(e))?,
        None => podid_agent::Trust::default(),
    };
    let server_args = ServerArgs::local(
        args.listen,
        data_dir.clone(),
        args.accounts.clone(),
        args.region.clone(),
        args.limits.clone(),
    )
    .with_tls(args.tls.clone(), ca_bundle.clone());
    let started = crate::server::start(&server_args).await?;
    let (endpoint, aws_dir, region) = (
        started.endpoint.clone(),
        started.aws_dir.clone(),
        started.region.clone(),
    );
    let admin = started
        .admin_keys
        .first()
        .map(|k| Credentials {
            access_key_id: k.access_key_id.clone(),
            secret_access_key: k.secret_access_key.clone(),
            session_token: None,
        })
        .context("the store has no administrator key: start from an empty data directory")?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(started.serve(async {
        let _ = stopped.await;
    }));

    let eks = Client::with(admin.clone(), &region, &endpoint, "eks").with_trust(trust.clone());
    let cluster = args.cluster.clone();
    let created = tokio::task::spawn_blocking(move || ensure_cluster(&eks, &cluster))
        .await
        .context("the cluster check stopped")??;

    let mut config = AgentConfig::new(&args.cluster);
    config.allowed_hosts = vec!["127.0.0.1".into()];
    let upstream = EksAuth::new(&endpoint, &region, admin, Duration::from_secs(1), trust);
    let agent = podid_agent::agent(config, Arc::new(upstream));
    let running = crate::agent::start(
        agent,
        &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
        args.agent_port,
        None,
        None,
        args.limits.limits(),
    )
    .await
    .with_context(|| {
        format!(
            "the agent cannot listen on 127.0.0.1:{}: choose another --agent-port",
            args.agent_port
        )
    })?;
    let agent_url = running
        .addresses
        .first()
        .map(|a| format!("http://{a}/v1/credentials"))
        .unwrap_or_default();

    let mut exports = format!(
        "export AWS_CONFIG_FILE={}\nexport AWS_SHARED_CREDENTIALS_FILE={}\nexport PODID_DATA_DIR={}\n",
        shell_quote(&aws_dir.join("config").display().to_string()),
        shell_quote(&aws_dir.join("credentials").display().to_string()),
        shell_quote(&data_dir.display().to_string()),
    );
    if let Some(path) = &ca_bundle {
        exports.push_str(&format!(
            "export AWS_CA_BUNDLE={}\n",
            shell_quote(&path.display().to_string())
        ));
    }
    crate::server::write_private(&data_dir.join("env"), &exports)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "cluster `{}`: {}",
        args.cluster,
        if created {
            "created (a local cluster: podid issues its service-account tokens)"
        } else {
            "exists"
        }
    )?;
    writeln!(
        out,
        "agent for cluster `{}` listening on {agent_url}",
        args.cluster
    )?;
    writeln!(
        out,
        "\npoint the AWS CLI and SDKs at podid (or run: eval \"$(podid env)\"):"
    )?;
    for line in exports.lines() {
        writeln!(out, "  {line}")?;
    }
    writeln!(
        out,
        "then run a command as a pod of cluster `{}`:\n  podid exec --cluster {} --namespace default --service-account app -- aws sts get-caller-identity",
        args.cluster, args.cluster
    )?;
    writeln!(
        out,
        "\nready in {} ms; Ctrl-C stops",
        began.elapsed().as_millis()
    )?;
    out.flush()?;
    drop(out);

    stop_signal.await;
    let _ = stop.send(());
    server.await.context("the server task failed")??;
    Ok(Status::Success)
}

/// Creates `name` as a local cluster unless it exists; whether it was created.
fn ensure_cluster(eks: &Client, name: &str) -> anyhow::Result<bool> {
    match eks.json("GET", &format!("/clusters/{name}"), "", None) {
        Ok(_) => Ok(false),
        Err(e)
            if e.downcast_ref::<ApiFailure>()
                .is_some_and(|f| f.code == "ResourceNotFoundException") =>
        {
            eks.json(
                "POST",
                "/clusters",
                "",
                Some(&serde_json::json!({"name": name})),
            )
            .with_context(|| format!("cannot create the cluster `{name}`"))?;
            Ok(true)
        }
        Err(e) => Err(e.context(format!("cannot look up the cluster `{name}`"))),
    }
}

pub(crate) fn run_env(args: EnvArgs) -> anyhow::Result<Status> {
    let dir = data_dir(args.data_dir)?;
    let path = dir.join("env");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "`{}` does not exist: run `podid up` first (with the same --data-dir)",
            path.display()
        ),
        Err(e) => bail!("cannot read `{}`: {e}", path.display()),
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(Status::Success)
}

/// `--data-dir`, else `PODID_DATA_DIR`, else `$XDG_DATA_HOME/podid`, else
/// `~/.local/share/podid`; made absolute, so that the `export` lines printed with it work from
/// any directory.
pub(crate) fn data_dir(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let dir = match given.or_else(|| var("PODID_DATA_DIR").map(PathBuf::from)) {
        Some(dir) => dir,
        None => match var("XDG_DATA_HOME") {
            Some(xdg) => PathBuf::from(xdg).join("podid"),
            None => PathBuf::from(
                var("HOME").context("no data directory: give --data-dir or set PODID_DATA_DIR")?,
            )
            .join(".local/share/podid"),
        },
    };
    std::path::absolute(&dir)
        .with_context(|| format!("cannot resolve the data directory `{}`", dir.display()))
}

/// `text` quoted for a POSIX shell when it needs quoting.
pub(crate) fn shell_quote(text: &str) -> String {
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:=@".contains(c))
    {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}
