//! `podid server`: the control plane (the IAM API today), with its storage and bootstrap.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Args;
use podid_core::{BootstrapKey, Core, MasterKey, OsIds};
use podid_store::Store;
use podid_types::{AccountId, SystemClock};

use crate::Status;
use crate::listen::{Limits, ListenArgs};

/// The address `podid server` listens on unless told otherwise.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:4599";

#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    /// Address to listen on (HTTP). Port 0 picks a free port; the chosen address is printed.
    #[arg(long, default_value = DEFAULT_LISTEN, value_name = "ADDR")]
    listen: SocketAddr,
    /// Directory for podid's data: the SQLite database, the master key, and the AWS config and
    /// credentials files (`DATA_DIR/aws/`, rewritten at every start from the `admin` users'
    /// access keys, with this server's endpoint). Default: the same as `podid up`'s,
    /// `$XDG_DATA_HOME/podid`, else `~/.local/share/podid` (outside any checkout, since it
    /// holds secrets).
    #[arg(long, value_name = "DIR", env = "PODID_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Storage: `sqlite` (the default: `DATA_DIR/podid.db`), `sqlite:PATH`, or a PostgreSQL URL
    /// (`postgres://user@host:5432/db`) shared by any number of servers. TLS to PostgreSQL as
    /// libpq says it: `?sslmode=verify-full&sslrootcert=ca.pem` (or PGSSLMODE, PGSSLROOTCERT).
    #[arg(long, value_name = "URL", env = "PODID_DATABASE_URL", global = true)]
    database_url: Option<String>,
    /// Accounts to create at the first start (comma-separated 12-digit ids), each with an IAM user
    /// `admin` (AdministratorAccess) and an access key. Ignored when the store has accounts.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "111122223333",
        value_name = "IDS"
    )]
    accounts: Vec<String>,
    /// File holding the master key that seals secrets at rest (64 hex digits). Default:
    /// `DATA_DIR/master.key`, created with mode 0600 at the first start. Servers sharing one
    /// PostgreSQL database must share the key. `PODID_MASTER_KEY` may hold the key itself.
    #[arg(long, value_name = "FILE", global = true)]
    master_key_file: Option<PathBuf>,
    /// The region written into the AWS config file.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// The endpoint URL written into the AWS config file (default: `http://` + the listen
    /// address, `https://` with --tls-cert).
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// PostgreSQL connections per server.
    #[arg(long, default_value_t = 16)]
    database_pool: usize,
    /// The most Pod Identity associations one cluster may have.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    association_quota: u32,
    /// How long AssumeRoleForPodIdentity's credentials last: 15m to 6h (EKS's, the default). A
    /// target role's last the same, at most 1h. Shorter bounds how long a pod keeps a role's
    /// credentials after its association changes (docs/eks-auth.md).
    #[arg(long, default_value = "6h", value_name = "DURATION", value_parser = pod_credential_lifetime)]
    pod_credential_lifetime: std::time::Duration,
    /// With PostgreSQL: how long (milliseconds) a replica may reuse a record it read (access
    /// keys, users, roles), saving a round trip per request. Its own writes are seen at once;
    /// other replicas' writes at most this late, as IAM changes propagate in AWS. 0 turns the
    /// cache off. SQLite needs none: its reads are local.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    read_cache_ms: u64,
    /// How long audit records are kept (`90d`, `36h`, ...; at least a minute). Older ones are
    /// deleted at start and every ten minutes, by every replica. `podid audit` reads the trail.
    #[arg(long, default_value = "90d", value_name = "DURATION", value_parser = audit_retention)]
    audit_retention: std::time::Duration,
    /// The broker identity of clusters with the `aws` credential backend: a profile of the AWS
    /// config files (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE) with keys, or with `role_arn`
    /// and `web_identity_token_file`, that signs the upstream AssumeRole calls. Default: the
    /// AWS SDKs' standard chain: the environment (AWS_ACCESS_KEY_ID, ...), the profile
    /// (AWS_PROFILE, else `default`), a web identity (AWS_WEB_IDENTITY_TOKEN_FILE and
    /// AWS_ROLE_ARN), container credentials (AWS_CONTAINER_CREDENTIALS_FULL_URI or
    /// _RELATIVE_URI), then instance metadata. docs/upstream.md.
    #[arg(long, value_name = "NAME")]
    upstream_profile: Option<String>,
    #[command(flatten)]
    limits: ListenArgs,
    #[command(flatten)]
    tls: crate::tls::TlsArgs,
    #[command(flatten)]
    throttle: ThrottleArgs,
    #[command(subcommand)]
    action: Option<ServerAction>,
    /// Written as `ca_bundle` into the AWS config files' profiles (`podid up --ca-bundle`).
    #[arg(skip)]
    profile_ca_bundle: Option<PathBuf>,
}

/// What `podid server` can do besides serving.
#[derive(Clone, Copy, Debug, clap::Subcommand)]
pub(crate) enum ServerAction {
    /// Reseal every secret at rest with a new master key, and replace the key file with it
    ///
    /// The secrets are access keys' secrets, session keys and clusters' signing keys, resealed
    /// in one transaction. Stop every server of the store first; start them again with the new key, which is
    /// written where the current one was read (DATA_DIR/master.key or --master-key-file). The
    /// old key opens nothing afterwards. The new key is written beside the old one before the
    /// store changes, so an interrupted rotation is finished by the next start.
    ///
    /// Example:
    ///   podid server rotate-master-key --data-dir ~/.local/share/podid
    #[command(verbatim_doc_comment)]
    RotateMasterKey,
}

/// How long audit records are kept unless told otherwise (CloudTrail's event history: 90 days).
const DEFAULT_AUDIT_RETENTION_DAYS: u64 = 90;

/// `--audit-retention`: a duration of at least a minute.
fn audit_retention(text: &str) -> Result<std::time::Duration, String> {
    let duration = crate::listen::parse_duration(text)?;
    if duration < std::time::Duration::from_secs(60) {
        return Err(format!(
            "`{text}`: the audit trail keeps records for at least a minute; give e.g. `90d` or `7d`"
        ));
    }
    Ok(duration)
}

fn pod_credential_lifetime(text: &str) -> Result<std::time::Duration, String> {
    let duration = crate::listen::parse_duration(text)?;
    let range = u64::from(podid_core::eks::MIN_CREDENTIAL_SECONDS)
        ..=u64::from(podid_core::eks::ONE_HOP_SECONDS);
    if !range.contains(&duration.as_secs()) || duration.subsec_nanos() != 0 {
        return Err(format!(
            "`{text}`: Pod Identity credentials last from 15 minutes to 6 hours in whole seconds; give e.g. `1h` or `15m`"
        ));
    }
    Ok(duration)
}

/// Per-caller rates of the calls that issue credentials.
#[derive(Clone, Copy, Debug, clap::Args)]
pub(crate) struct ThrottleArgs {
    /// STS calls per second per caller (access key's principal or session; unsigned
    /// AssumeRoleWithWebIdentity by client address), AWS's default STS quota. Over it: STS's
    /// `Throttling` error, which SDKs retry. 0: no limit.
    #[arg(long, default_value_t = 600.0, value_name = "PER_SECOND")]
    sts_rate: f64,
    /// How many STS calls a caller may make at once before the rate applies.
    #[arg(long, default_value_t = 600.0, value_name = "N")]
    sts_burst: f64,
    /// EKS Auth (AssumeRoleForPodIdentity) calls per second per caller (a node's credentials).
    /// Over it: `ThrottlingException` (429), which the agent retries with back-off. 0: no limit.
    #[arg(long, default_value_t = 1000.0, value_name = "PER_SECOND")]
    eks_auth_rate: f64,
    /// How many EKS Auth calls a caller may make at once before the rate applies.
    #[arg(long, default_value_t = 2000.0, value_name = "N")]
    eks_auth_burst: f64,
}

impl Default for ThrottleArgs {
    fn default() -> Self {
        Self {
            sts_rate: 600.0,
            sts_burst: 600.0,
            eks_auth_rate: 1000.0,
            eks_auth_burst: 2000.0,
        }
    }
}

impl ThrottleArgs {
    fn throttles(self) -> podid_server::Throttles {
        let rate = |per_second: f64, burst: f64| podid_server::Rate {
            per_second,
            burst: burst.max(1.0),
        };
        podid_server::Throttles::new(
            rate(self.sts_rate, self.sts_burst),
            rate(self.eks_auth_rate, self.eks_auth_burst),
        )
    }
}

impl ServerArgs {
    /// The settings of `podid up`: SQLite in `data_dir`, the defaults for the rest.
    pub(crate) fn local(
        listen: SocketAddr,
        data_dir: PathBuf,
        accounts: Vec<String>,
        region: String,
        limits: ListenArgs,
    ) -> Self {
        Self {
            listen,
            data_dir: Some(data_dir),
            database_url: None,
            accounts,
            master_key_file: None,
            region,
            public_url: None,
            database_pool: 16,
            association_quota: 1000,
            pod_credential_lifetime: std::time::Duration::from_secs(u64::from(
                podid_core::eks::ONE_HOP_SECONDS,
            )),
            read_cache_ms: 1000,
            audit_retention: std::time::Duration::from_secs(DEFAULT_AUDIT_RETENTION_DAYS * 86_400),
            upstream_profile: None,
            limits,
            tls: crate::tls::TlsArgs::default(),
            throttle: ThrottleArgs::default(),
            action: None,
            profile_ca_bundle: None,
        }
    }

    /// The data directory (resolved by [`run`], given by [`ServerArgs::local`]).
    fn data_dir(&self) -> &Path {
        self.data_dir.as_deref().unwrap_or(Path::new("."))
    }

    /// These settings serving HTTPS with `tls`, the profiles trusting `ca_bundle`.
    #[must_use]
    pub(crate) fn with_tls(mut self, tls: crate::tls::TlsArgs, ca_bundle: Option<PathBuf>) -> Self {
        self.tls = tls;
        self.profile_ca_bundle = ca_bundle;
        self
    }
}

pub(crate) fn run(mut args: ServerArgs) -> anyhow::Result<Status> {
    args.data_dir = Some(crate::up::data_dir(args.data_dir.take())?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match args.action {
        Some(ServerAction::RotateMasterKey) => runtime.block_on(rotate_master_key(&args)),
        None => runtime.block_on(serve(args)),
    }
}

/// `podid server rotate-master-key`.
async fn rotate_master_key(args: &ServerArgs) -> anyhow::Result<Status> {
    if std::env::var("PODID_MASTER_KEY").is_ok() {
        bail!(
            "the current master key comes from PODID_MASTER_KEY, and a rotation writes the new one to a file: put the current key in a file (0600) and give it with --master-key-file"
        );
    }
    let path = key_path(args);
    if !path.exists() {
        bail!(
            "`{}` does not exist: give the current master key with --master-key-file",
            path.display()
        );
    }
    let store = open_store(args).await?;
    let current = master_key(args, &*store).await?;
    let core = Core::new(store, Arc::new(SystemClock), Arc::new(OsIds), current);
    check_master_key(&core).await?;
    let new = MasterKey::generate(&OsIds);
    let pending = pending_key_path(&path);
    write_private(&pending, &format!("{}\n", new.to_hex().expose()))?;
    let resealed = core.reseal(&new).await.map_err(|e| {
        let _ = std::fs::remove_file(&pending);
        anyhow::anyhow!("{e}")
    })?;
    std::fs::rename(&pending, &path)
        .with_context(|| format!("cannot move the new key to `{}`", path.display()))?;
    println!(
        "resealed {resealed} secrets with a new master key, now in `{}`; the old key opens nothing any more: start every server of this store with the new one",
        path.display()
    );
    Ok(Status::Success)
}

/// Where the master key file is (when it is not given by `PODID_MASTER_KEY`).
fn key_path(args: &ServerArgs) -> PathBuf {
    args.master_key_file
        .clone()
        .unwrap_or_else(|| args.data_dir().join("master.key"))
}

/// Where a rotation writes the new key before the store changes.
fn pending_key_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".new");
    PathBuf::from(name)
}

async fn serve(args: ServerArgs) -> anyhow::Result<Status> {
    let stop = shutdown();
    let started = start(&args).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "to use the AWS CLI or an SDK against it:")?;
    writeln!(
        out,
        "  export AWS_CONFIG_FILE={}",
        crate::up::shell_quote(&started.aws_dir.join("config").display().to_string())
    )?;
    writeln!(
        out,
        "  export AWS_SHARED_CREDENTIALS_FILE={}",
        crate::up::shell_quote(&started.aws_dir.join("credentials").display().to_string())
    )?;
    writeln!(
        out,
        "  aws sts get-caller-identity   # the first account; --profile ACCOUNT_ID for others"
    )?;
    drop(out);
    started.serve(stop).await?;
    Ok(Status::Success)
}

/// A server about to serve: its store open, its accounts bootstrapped, the AWS files written
/// and its listener bound.
pub(crate) struct Started {
    /// The URL clients use.
    pub(crate) endpoint: String,
    /// `DATA_DIR/aws`.
    pub(crate) aws_dir: PathBuf,
    /// The `admin` users' access keys, the first account's first.
    pub(crate) admin_keys: Vec<BootstrapKey>,
    /// The region of the AWS config files.
    pub(crate) region: String,
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: Limits,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Started {
    /// Serves until `stop` completes, then finishes the requests in flight.
    pub(crate) async fn serve(
        self,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        crate::listen::serve(self.listener, self.app, self.limits, self.tls, stop).await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Opens the store, bootstraps, writes the AWS files, binds the listener and says so.
pub(crate) async fn start(args: &ServerArgs) -> anyhow::Result<Started> {
    std::fs::create_dir_all(args.data_dir()).with_context(|| {
        format!(
            "cannot create the data directory `{}`",
            args.data_dir().display()
        )
    })?;
    private_directory(args.data_dir());
    let store = open_store(args).await?;
    let accounts = parse_accounts(&args.accounts)?;
    let master = master_key(args, &*store).await?;
    let broker = upstream_broker(args)?;
    let make_core = |master: MasterKey| {
        Arc::new(
            Core::new(
                store.clone(),
                Arc::new(SystemClock),
                Arc::new(OsIds),
                master,
            )
            .with_association_quota(args.association_quota)
            .with_pod_credential_lifetime(
                u32::try_from(args.pod_credential_lifetime.as_secs()).unwrap_or(u32::MAX),
            )
            .with_fetcher(Arc::new(HttpFetcher))
            .with_broker(broker.clone()),
        )
    };
    let mut core = make_core(master);
    if let Err(e) = check_master_key(&core).await {
        // A rotation interrupted after the store changed: its new key is beside the old one.
        let pending = pending_key_path(&key_path(args));
        let finished = match std::fs::read_to_string(&pending).map(|t| MasterKey::parse(&t)) {
            Ok(Ok(new)) => {
                let candidate = make_core(new);
                check_master_key(&candidate)
                    .await
                    .is_ok()
                    .then_some(candidate)
            }
            _ => None,
        };
        let Some(candidate) = finished else {
            return Err(e);
        };
        std::fs::rename(&pending, key_path(args))
            .with_context(|| format!("cannot move `{}` into place", pending.display()))?;
        tracing::warn!(key = %key_path(args).display(), "finished an interrupted master-key rotation: the new key is in place");
        core = candidate;
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}: is another server using it? Choose another with --listen",
                args.listen
            )
        })?;
    let address = listener
        .local_addr()
        .context("cannot read the listening address")?;
    let tls = args.tls.acceptor()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let endpoint = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{address}"));
    let bootstrapped = core
        .bootstrap(&accounts)
        .await
        .map_err(|e| anyhow::anyhow!("bootstrap failed: {e}"))?;
    // The files are rewritten from the store at every start: they follow a new endpoint, come
    // back after a crash between the bootstrap and their writing, and appear in the data
    // directory of every replica that shares a PostgreSQL database.
    let aws_dir = args.data_dir().join("aws");
    let admin_keys = core
        .admin_keys()
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the administrators' access keys: {e}"))?;
    if !admin_keys.is_empty() {
        write_aws_files(
            &aws_dir,
            &admin_keys,
            &args.region,
            &endpoint,
            args.profile_ca_bundle.as_deref(),
        )?;
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "podid server listening on {endpoint} (storage: {})",
        store.backend()
    )?;
    if bootstrapped.keys.is_empty() {
        writeln!(
            out,
            "accounts: {} (existing data; nothing bootstrapped)",
            core.accounts()
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .join(", ")
        )?;
    } else {
        let ids: Vec<String> = bootstrapped
            .keys
            .iter()
            .map(|k| k.account.to_string())
            .collect();
        writeln!(
            out,
            "bootstrapped accounts: {} (user `admin` with AdministratorAccess in each)",
            ids.join(", ")
        )?;
    }
    drop(out);
    // Session keys: one exists before the first AssumeRole, and they rotate daily.
    core.sts()
        .rotate_session_keys()
        .await
        .map_err(|e| anyhow::anyhow!("cannot prepare the session keys: {e}"))?;
    let rotating = core.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
        every.tick().await;
        loop {
            every.tick().await;
            if let Err(e) = rotating.sts().rotate_session_keys().await {
                tracing::error!(error = %e, "session key rotation failed; retrying in an hour");
            }
        }
    });
    let pruning = core.clone();
    let retention = i64::try_from(args.audit_retention.as_millis()).unwrap_or(i64::MAX);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            every.tick().await;
            match pruning.audit().prune(retention).await {
                Ok(0) => {}
                Ok(deleted) => {
                    tracing::info!(deleted, "deleted audit records past their retention")
                }
                Err(e) => {
                    tracing::error!(error = %e, "pruning the audit trail failed; retrying in ten minutes")
                }
            }
            // Console sessions that ended without a sign-out.
            if let Err(e) = pruning.prune_console_sessions().await {
                tracing::error!(error = %e, "pruning console sessions failed; retrying in ten minutes");
            }
            // The change feed keeps an hour (podid_core::eks::RETENTION_MS).
            if let Err(e) = pruning.prune_changes(10_000).await {
                tracing::error!(error = %e, "pruning the change feed failed; retrying in ten minutes");
            }
        }
    });
    tracing::info!(%address, backend = store.backend(), "serving");
    let app = podid_server::app(podid_server::AppState {
        core,
        public_url: endpoint.clone(),
        throttles: Arc::new(args.throttle.throttles()),
    });
    Ok(Started {
        endpoint,
        aws_dir,
        admin_keys,
        region: args.region.clone(),
        listener,
        app,
        limits: args.limits.limits(),
        tls,
    })
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM. The handlers are installed when this is called,
/// not when the future is first polled, so a signal that arrives while the process is still
/// starting stops it gracefully too. Call it inside the runtime, before starting anything.
pub(crate) fn shutdown() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let (mut interrupt, mut terminate) = signals;
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(interrupt.take()) => {},
                () = wait(terminate.take()) => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutting down: finishing requests in flight");
    }
}

/// The SQLite database's file in the data directory.
pub(crate) const DATABASE_FILE: &str = "podid.db";

async fn open_store(args: &ServerArgs) -> anyhow::Result<Arc<dyn Store>> {
    let url = args.database_url.as_deref().unwrap_or("sqlite");
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = podid_store_postgres::PostgresStore::connect(url, args.database_pool)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if args.read_cache_ms == 0 {
            return Ok(Arc::new(store));
        }
        return Ok(Arc::new(podid_store::CachedStore::new(
            Arc::new(store),
            Arc::new(podid_types::SystemClock),
            i64::try_from(args.read_cache_ms).unwrap_or(i64::MAX),
        )));
    }
    let path = match url {
        "sqlite" => args.data_dir().join(DATABASE_FILE),
        other => match other.strip_prefix("sqlite:") {
            Some(path) => PathBuf::from(path.trim_start_matches("//")),
            None => bail!(
                "--database-url `{other}`: use `sqlite`, `sqlite:PATH` or `postgres://user@host:port/db`"
            ),
        },
    };
    let store = podid_store_sqlite::SqliteStore::open(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let sibling = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    private_files(&[
        path.clone(),
        sibling("-wal"),
        sibling("-shm"),
        sibling(".lock"),
    ]);
    Ok(Arc::new(store))
}

fn parse_accounts(accounts: &[String]) -> anyhow::Result<Vec<AccountId>> {
    let mut out = Vec::new();
    for a in accounts {
        let id: AccountId = a
            .trim()
            .parse()
            .map_err(|e| anyhow::anyhow!("--accounts: {e}"))?;
        if !out.contains(&id) {
            out.push(id);
        }
    }
    if out.is_empty() {
        bail!("--accounts: give at least one 12-digit account id");
    }
    Ok(out)
}

/// The master key: from `PODID_MASTER_KEY`, `--master-key-file`, or `DATA_DIR/master.key`
/// (created when the store is empty).
async fn master_key(args: &ServerArgs, store: &dyn Store) -> anyhow::Result<MasterKey> {
    if let Ok(text) = std::env::var("PODID_MASTER_KEY") {
        return MasterKey::parse(&text).map_err(|e| anyhow::anyhow!("PODID_MASTER_KEY: {e}"));
    }
    let path = key_path(args);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            MasterKey::parse(&text).map_err(|e| anyhow::anyhow!("`{}`: {e}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let empty = store
                .scan("account", "", None, 1)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .is_empty();
            if !empty {
                bail!(
                    "the store already has data but `{}` does not exist: restore the master key it was written with (or give it with --master-key-file or PODID_MASTER_KEY)",
                    path.display()
                );
            }
            let key = MasterKey::generate(&OsIds);
            write_private(&path, &format!("{}\n", key.to_hex().expose()))?;
            Ok(key)
        }
        Err(e) => Err(anyhow::anyhow!(
            "cannot read the master key `{}`: {e}",
            path.display()
        )),
    }
}

/// Fails early when the master key does not open the store's secrets.
async fn check_master_key(core: &Core) -> anyhow::Result<()> {
    let keys = core
        .store()
        .scan("access-key", "", None, 1)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(item) = keys.first()
        && let Err(e) = core.access_key(&item.key).await
    {
        bail!(
            "{e}: the master key is not the one the data was written with (check --master-key-file / PODID_MASTER_KEY)"
        );
    }
    Ok(())
}

fn write_aws_files(
    dir: &Path,
    keys: &[BootstrapKey],
    region: &str,
    endpoint: &str,
    ca_bundle: Option<&Path>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let ca_line = ca_bundle
        .map(|path| format!("ca_bundle = {}\n", path.display()))
        .unwrap_or_default();
    let mut config = String::new();
    let mut credentials = String::new();
    for (i, key) in keys.iter().enumerate() {
        let account = key.account.to_string();
        let mut sections = vec![(format!("profile {account}"), account.clone())];
        if i == 0 {
            sections.insert(0, ("default".to_owned(), "default".to_owned()));
        }
        for (config_section, credentials_section) in sections {
            config.push_str(&format!(
                "[{config_section}]\nregion = {region}\nendpoint_url = {endpoint}\n{ca_line}\n"
            ));
            credentials.push_str(&format!(
                "[{credentials_section}]\naws_access_key_id = {}\naws_secret_access_key = {}\n\n",
                key.access_key_id,
                key.secret_access_key.expose()
            ));
        }
    }
    write_private(&dir.join("config"), &config)?;
    write_private(&dir.join("credentials"), &credentials)?;
    Ok(())
}

/// Writes a file readable by its owner only, atomically (a temporary file renamed into place).
pub(crate) fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(&tmp)
            .with_context(|| format!("cannot write `{}`", tmp.display()))?;
        let written = file
            .write_all(contents.as_bytes())
            .and_then(|()| file.sync_all());
        if let Err(e) = written {
            // Nothing half-written stays behind (a full disk, typically).
            let _ = std::fs::remove_file(&tmp);
            return Err(e).with_context(|| {
                format!(
                    "cannot write `{}`: is the disk full? Free space and start again",
                    path.display()
                )
            });
        }
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(())
}

/// The broker of the `aws` credential backend: `--upstream-profile` (which must be usable), else
/// the standard credential chain, else none (clusters with the `aws` backend are then refused
/// with the reason).
fn upstream_broker(args: &ServerArgs) -> anyhow::Result<Arc<crate::upstream::StsBroker>> {
    let identity = match crate::upstream::BrokerIdentity::find(
        args.upstream_profile.as_deref(),
        &args.region,
        Arc::new(podid_types::SystemClock),
    ) {
        Ok(identity) => {
            // On a laptop the chain ends at instance metadata, which is never asked unless a
            // cluster with the `aws` backend needs credentials: not worth a line at every start.
            if identity.is_fallback() {
                tracing::debug!(broker = %identity.describe(), "upstream STS broker identity, if a cluster needs one");
            } else {
                tracing::info!(broker = %identity.describe(), "upstream STS broker identity found");
            }
            Ok(identity)
        }
        Err(e) if args.upstream_profile.is_some() => {
            anyhow::bail!("cannot use --upstream-profile as the broker identity: {e}");
        }
        Err(e) => Err(format!(
            "This server has no broker identity for upstream STS calls ({e}): start podid server with --upstream-profile NAME, or with AWS credentials in its environment."
        )),
    };
    let trust = identity
        .as_ref()
        .map(crate::upstream::BrokerIdentity::trust)
        .unwrap_or_default();
    Ok(Arc::new(crate::upstream::StsBroker::new(identity, trust)))
}

/// Creates `dir` and its missing parents, each new one for its owner only (0700).
pub(crate) fn create_private_dir_all(dir: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("cannot create the directory `{}`", dir.display()))
}

/// Makes `dir` readable by its owner only (0700): it holds the database and the master key.
fn private_directory(dir: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Err(e) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot make the data directory private (0700)");
        }
    }
}

/// Makes the SQLite files readable and writable by their owner only (0600).
fn private_files(paths: &[PathBuf]) {
    #[cfg(unix)]
    for path in paths.iter().filter(|p| p.exists()) {
        use std::os::unix::fs::PermissionsExt as _;
        if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
            tracing::warn!(file = %path.display(), error = %e, "cannot make a database file private (0600)");
        }
    }
}

/// Fetches external issuers' discovery documents and key sets: `GET` over http(s), 5 s, at
/// most 1 MiB, three redirects.
struct HttpFetcher;

#[async_trait::async_trait]
impl podid_core::Fetcher for HttpFetcher {
    async fn get(&self, url: &str) -> Result<String, String> {
        let url = url.to_owned();
        tokio::task::spawn_blocking(move || {
            podid_agent::document(
                &url,
                std::time::Duration::from_secs(5),
                &podid_agent::Trust::default(),
            )
        })
        .await
        .map_err(|e| e.to_string())?
    }
}
