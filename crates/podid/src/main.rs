//! `podid`: EKS Pod Identity and IRSA, self-hosted. This binary is the composition root: it
//! parses the command line and calls into the library crates.

mod access;
mod agent;
mod audit;
mod aws_client;
mod cluster;
mod eksctl;
mod exec;
mod kubernetes;
mod listen;
mod policy;
mod server;
mod serviceaccount;
mod tls;
mod up;
mod upstream;
mod webhook;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc: per-thread free lists make the many short-lived allocations of a request (parsed
/// JSON, headers, records) cheaper than glibc's malloc, which cost a sixth of the server's CPU
/// under load (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// podid: EKS Pod Identity and IRSA on any Kubernetes, with IAM and STS decisions that match AWS.
///
/// Exit codes: 0 success (valid, allowed, all cases passed); 1 the answer is no (invalid policy,
/// denied request, failing case, the server refused the request); 2 the question could not be
/// asked (bad usage, unreadable or malformed input, no credentials, server unreachable).
#[derive(Debug, Parser)]
#[command(name = "podid", version, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate, lint and simulate IAM policies: the decisions AWS would make, and why.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Run the control plane: IAM, STS, EKS and EKS Auth, with SigV4 authentication, on
    /// SQLite (default) or PostgreSQL
    ///
    /// At the first start it creates the accounts of --accounts, each with an IAM user `admin`
    /// (AdministratorAccess) and an access key, and writes DATA_DIR/aws/config and
    /// DATA_DIR/aws/credentials (mode 0600) with one profile per account (named by the account
    /// id; `default` is the first), so that
    ///   AWS_CONFIG_FILE=DATA_DIR/aws/config AWS_SHARED_CREDENTIALS_FILE=DATA_DIR/aws/credentials aws iam list-roles
    /// works with nothing else set. Later starts on the same data change nothing.
    #[command(verbatim_doc_comment)]
    Server(server::ServerArgs),
    /// EKS clusters on a podid server: local clusters (podid issues their service-account
    /// tokens) and external ones (a real kube-apiserver does). Finds the server and
    /// credentials like the AWS CLI (--profile, AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE,
    /// endpoint_url / AWS_ENDPOINT_URL, --region).
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Service-account tokens of local clusters, as kube-apiserver projects them into pods.
    #[command(subcommand)]
    Token(cluster::TokenCommand),
    /// Service accounts of a cluster, with the annotations IRSA reads
    /// (`eks.amazonaws.com/role-arn`, ...): `podid exec` gives a pod of an annotated service
    /// account what the IRSA webhook would.
    #[command(subcommand, visible_alias = "sa")]
    Serviceaccount(serviceaccount::ServiceAccountCommand),
    /// The audit trail: every change, every credential issued (EKS Auth, STS, service-account
    /// tokens) and every refusal of one, with who, what, when, from where and why. Needs
    /// `podid:ReadAudit`.
    Audit(audit::AuditArgs),
    /// Who can reach which role, and why: every role each service account can obtain (Pod
    /// Identity, target roles, IRSA, role chaining), the statements behind each hop, and findings
    /// with their fixes; `--role ARN` for the reverse. Needs `podid:GetAccessGraph`.
    Access(access::AccessArgs),
    /// The node agent, a drop-in for the EKS Pod Identity agent
    ///
    /// Pods' AWS SDKs call `GET http://169.254.170.23/v1/credentials` with their
    /// service-account token (AWS_CONTAINER_CREDENTIALS_FULL_URI,
    /// AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE) and get the credentials EKS Auth issues for
    /// their association.
    ///
    /// Better than the reference agent where its users suffer: concurrent first requests of a
    /// pod make one EKS Auth call; the cache is keyed by pod, and a rotated token of a cached
    /// pod is checked against the cluster's keys locally (no EKS Auth call); credentials are
    /// renewed ahead of expiry, with jitter, within --max-service-qps, and only for pods that
    /// still ask; while EKS Auth is down, cached pods keep their credentials until 15 s before
    /// they expire; an IPv6 address the node lacks is skipped, not fatal.
    ///
    /// Example (beside `podid up`, on loopback ports, no root needed):
    ///   eval "$(podid env)"
    ///   podid agent --cluster-name local --bind-hosts 127.0.0.1 --port 4700 \
    ///       --probe-port 4701 --metrics-port 4702
    #[command(verbatim_doc_comment)]
    Agent(agent::AgentArgs),
    /// Run a command as a pod of a local cluster runs, with credentials from an agent
    ///
    /// The command gets a fresh service-account token in a private file (0600);
    /// AWS_CONTAINER_CREDENTIALS_FULL_URI and AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE pointing
    /// at an agent (one started for the command, or --agent-url); AWS_ENDPOINT_URL at podid;
    /// and none of the caller's AWS credential variables, profiles or per-service endpoints,
    /// so its SDK must use the agent. SIGTERM and SIGHUP are passed on to it. podid exits with
    /// the command's status (128 + N after signal N; 127 when it cannot run).
    ///
    /// Example:
    ///   podid exec --cluster local --namespace default --service-account app -- \
    ///       aws sts get-caller-identity
    #[command(verbatim_doc_comment)]
    Exec(exec::ExecArgs),
    /// podid on one machine, in one command: server, local cluster and agent
    ///
    /// It runs the server (IAM, STS, EKS, EKS Auth) on SQLite in the data directory, the
    /// accounts with their `admin` users and AWS config files, a local cluster (`local`) if it
    /// does not exist, and an agent for it on 127.0.0.1:4600. It prints the endpoints and the
    /// `export` lines for the AWS CLI and SDKs; Ctrl-C or SIGTERM stops it gracefully.
    ///
    /// Example:
    ///   podid up &
    ///   eval "$(podid env)"
    ///   aws iam list-roles
    #[command(verbatim_doc_comment)]
    Up(up::UpArgs),
    /// The mutating admission webhook: pods get EKS Pod Identity or IRSA, as on EKS
    ///
    /// A drop-in for amazon-eks-pod-identity-webhook (same flags, annotations, names and
    /// metrics) that also does what EKS's own webhook does for Pod Identity: a pod whose
    /// service account has an association (asked of the podid server) gets the
    /// `eks-pod-identity-token` volume and AWS_CONTAINER_CREDENTIALS_FULL_URI /
    /// AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE; else a service account annotated
    /// `eks.amazonaws.com/role-arn` gives IRSA's `aws-iam-token` volume, AWS_ROLE_ARN and
    /// AWS_WEB_IDENTITY_TOKEN_FILE. Serves `POST /mutate` (AdmissionReview v1) and `/healthz`
    /// over HTTPS on --port, `/metrics` on --metrics-port. A pod that should have been
    /// mutated and was not is logged, counted and shown to its creator as a warning.
    ///
    /// Example (docs/kubernetes.md is the guide):
    ///   podid webhook --cluster my-cluster --tls-cert tls.crt --tls-key tls.key \
    ///       --port 8443 --in-cluster
    #[command(verbatim_doc_comment)]
    Webhook(webhook::WebhookArgs),
    /// Print the `export` lines that point the AWS CLI and SDKs at the podid that `podid up`
    /// runs, for `eval "$(podid env)"`.
    Env(up::EnvArgs),
    /// eksctl's create commands: podidentityassociation, addon, iamserviceaccount, cluster
    ///
    /// From flags or a ClusterConfig file (-f), with eksctl's texts (docs/eksctl.md).
    ///
    /// Examples (eksctl's, with `podid` for `eksctl`):
    ///   podid create addon --cluster my-cluster --name eks-pod-identity-agent
    ///   podid create podidentityassociation --cluster my-cluster --namespace default \
    ///       --service-account-name s3-reader \
    ///       --permission-policy-arns arn:aws:iam::111122223333:policy/s3-read
    ///   podid create podidentityassociation -f config.yaml
    #[command(subcommand, verbatim_doc_comment)]
    Create(eksctl::Create),
    /// eksctl's get commands: podidentityassociation, addon, iamserviceaccount (table, JSON,
    /// YAML).
    #[command(subcommand)]
    Get(eksctl::Get),
    /// eksctl's update commands: pod identity associations.
    #[command(subcommand)]
    Update(eksctl::Update),
    /// eksctl's delete commands: pod identity associations (and the roles podid or eksctl made
    /// for them), add-ons and iamserviceaccounts.
    #[command(subcommand)]
    Delete(eksctl::Delete),
    /// eksctl's utils: associate-iam-oidc-provider, migrate-to-pod-identity.
    #[command(subcommand)]
    Utils(eksctl::Utils),
}

/// The exit codes, documented in `--help`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    /// Everything asked for is true.
    Success,
    /// The answer is no.
    No,
    /// The question could not be asked.
    Error,
    /// A command's own exit status (`podid exec`).
    Exit(u8),
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> Self {
        match status {
            Status::Success => ExitCode::SUCCESS,
            Status::No => ExitCode::from(1),
            Status::Error => ExitCode::from(2),
            Status::Exit(code) => ExitCode::from(code),
        }
    }
}

/// Where the logs go and how much: stderr by default; for `podid exec`, only errors unless
/// `--agent-log FILE` (everything, to that file) or `RUST_LOG` says otherwise, so that its
/// embedded agent's lines stay out of the command's terminal.
enum Logging {
    Stderr,
    Quiet,
    File(std::fs::File),
}

/// Logs: human-readable by default, JSON with `PODID_LOG_FORMAT=json`; the level comes from
/// `RUST_LOG` (default `info` for podid, `warn` for the rest).
fn init_logging(logging: Logging) {
    let configured = tracing_subscriber::EnvFilter::try_from_default_env().ok();
    let quiet = matches!(logging, Logging::Quiet) && configured.is_none();
    let filter = configured.unwrap_or_else(|| {
        tracing_subscriber::EnvFilter::new(if quiet {
            "error"
        } else {
            "warn,podid=info,podid_server=info,podid_core=info"
        })
    });
    let json = std::env::var("PODID_LOG_FORMAT").is_ok_and(|f| f == "json");
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match logging {
        Logging::File(file) => {
            let builder = builder
                .with_writer(std::sync::Mutex::new(file))
                .with_ansi(false);
            if json {
                builder.json().try_init()
            } else {
                builder.try_init()
            }
        }
        Logging::Stderr | Logging::Quiet => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let builder = builder.with_writer(std::io::stderr).with_ansi(ansi);
            if json {
                builder.json().try_init()
            } else {
                builder.try_init()
            }
        }
    };
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let usage = e.use_stderr();
            let _ = e.print();
            return if usage {
                Status::Error
            } else {
                Status::Success
            }
            .into();
        }
    };
    let logging = match &cli.command {
        Command::Exec(args) => match exec::log_file(args) {
            Ok(Some(file)) => Logging::File(file),
            Ok(None) => Logging::Quiet,
            Err(e) => {
                eprintln!("error: {e:#}");
                return Status::Error.into();
            }
        },
        _ => Logging::Stderr,
    };
    init_logging(logging);
    let result = match cli.command {
        Command::Policy(command) => policy::run(command),
        Command::Server(args) => server::run(args),
        Command::Cluster(command) => cluster::run_cluster(command),
        Command::Token(command) => cluster::run_token(command),
        Command::Serviceaccount(command) => serviceaccount::run(command),
        Command::Audit(args) => audit::run(args),
        Command::Access(args) => access::run(args),
        Command::Agent(args) => agent::run(args),
        Command::Exec(args) => exec::run(args),
        Command::Up(args) => up::run(args),
        Command::Webhook(args) => webhook::run(args),
        Command::Env(args) => up::run_env(args),
        Command::Create(command) => eksctl::finish(eksctl::create(command)),
        Command::Get(command) => eksctl::finish(eksctl::get(command)),
        Command::Update(command) => eksctl::finish(eksctl::update(command)),
        Command::Delete(command) => eksctl::finish(eksctl::delete(command)),
        Command::Utils(command) => eksctl::finish(eksctl::utils(command)),
    };
    match result {
        Ok(status) => status.into(),
        // A reader that stopped reading (`podid ... | head`) is not an error worth a message.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            Status::Success.into()
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            Status::Error.into()
        }
    }
}
