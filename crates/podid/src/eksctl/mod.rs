//! eksctl's commands for Pod Identity, add-ons and IRSA, named and flagged as eksctl names
//! them (`podid create podidentityassociation ...` is `eksctl create podidentityassociation
//! ...`), reading eksctl's ClusterConfig files, printing eksctl's log lines and tables. Like
//! eksctl, they are clients of the AWS APIs (IAM, EKS, and podid's service-account API): no
//! shortcut into the store. CloudFormation stacks are not used: roles are made with IAM's API
//! and tagged so that they are known again.

pub(crate) mod addons;
pub(crate) mod cluster;
pub(crate) mod config;
pub(crate) mod irsa;
pub(crate) mod migrate;
pub(crate) mod podidentity;
pub(crate) mod roles;
pub(crate) mod tasks;

use anyhow::Context as _;
use serde_json::Value;

use crate::Status;
use crate::aws_client::{ApiFailure, Client, ClientArgs};
use config::{ClusterConfig, ConfigError};

/// `podid utils ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Utils {
    /// Setup IAM OIDC provider for a cluster to enable IAM roles for pods (plan unless
    /// --approve).
    AssociateIamOidcProvider(irsa::AssociateArgs),
    /// Migrate iamserviceaccounts and add-ons with IRSA roles to pod identity associations:
    /// the plan, or with --approve the migration (the agent add-on, the roles' trust policies,
    /// the associations; --remove-oidc-provider-trust-relationship also drops IRSA's trust and
    /// annotations). A rerun after success changes nothing.
    MigrateToPodIdentity(migrate::MigrateArgs),
}

/// `podid create ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Create {
    /// Create a pod identity association (and its IAM role, unless --role-arn names one).
    /// Needs the eks-pod-identity-agent add-on, as eksctl does.
    #[command(name = "podidentityassociation")]
    PodIdentityAssociation(podidentity::CreateArgs),
    /// Create an Addon.
    Addon(addons::CreateArgs),
    /// Create an iamserviceaccount - AWS IAM role bound to a Kubernetes service account (plan
    /// unless --approve).
    #[command(name = "iamserviceaccount")]
    IamServiceAccount(irsa::CreateArgs),
    /// Create a local cluster with what its ClusterConfig file asks for (-f): OIDC provider,
    /// add-ons, iamserviceaccounts, pod identity associations.
    Cluster(cluster::CreateClusterArgs),
}

/// `podid get ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Get {
    /// Get a pod identity association.
    #[command(
        name = "podidentityassociation",
        visible_alias = "podidentityassociations"
    )]
    PodIdentityAssociation(podidentity::GetArgs),
    /// Get an Addon.
    #[command(visible_alias = "addons")]
    Addon(addons::GetArgs),
    /// Get iamserviceaccount(s).
    #[command(name = "iamserviceaccount", visible_alias = "iamserviceaccounts")]
    IamServiceAccount(irsa::GetArgs),
}

/// `podid update ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Update {
    /// Update pod identity associations.
    #[command(name = "podidentityassociation")]
    PodIdentityAssociation(podidentity::UpdateArgs),
}

/// `podid delete ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Delete {
    /// Delete pod identity associations.
    #[command(name = "podidentityassociation")]
    PodIdentityAssociation(podidentity::DeleteArgs),
    /// Delete an Addon.
    Addon(addons::DeleteArgs),
    /// Delete an IAM service account.
    #[command(name = "iamserviceaccount")]
    IamServiceAccount(irsa::DeleteArgs),
}

/// Runs `podid create ...`.
pub(crate) fn create(command: Create) -> Result<(), Failure> {
    match command {
        Create::PodIdentityAssociation(args) => podidentity::run_create(args),
        Create::Addon(args) => addons::run_create(args),
        Create::IamServiceAccount(args) => irsa::run_create(args),
        Create::Cluster(args) => cluster::run(args),
    }
}

/// Runs `podid get ...`.
pub(crate) fn get(command: Get) -> Result<(), Failure> {
    match command {
        Get::PodIdentityAssociation(args) => podidentity::run_get(args),
        Get::Addon(args) => addons::run_get(args),
        Get::IamServiceAccount(args) => irsa::run_get(args),
    }
}

/// Runs `podid update ...`.
pub(crate) fn update(command: Update) -> Result<(), Failure> {
    match command {
        Update::PodIdentityAssociation(args) => podidentity::run_update(args),
    }
}

/// Runs `podid delete ...`.
pub(crate) fn delete(command: Delete) -> Result<(), Failure> {
    match command {
        Delete::PodIdentityAssociation(args) => podidentity::run_delete(args),
        Delete::Addon(args) => addons::run_delete(args),
        Delete::IamServiceAccount(args) => irsa::run_delete(args),
    }
}

/// Runs `podid utils ...`.
pub(crate) fn utils(command: Utils) -> Result<(), Failure> {
    match command {
        Utils::AssociateIamOidcProvider(args) => irsa::run_associate(args),
        Utils::MigrateToPodIdentity(args) => migrate::run(args),
    }
}

/// The flags eksctl's commands share.
#[derive(Clone, Debug, Default, clap::Args)]
pub(crate) struct General {
    /// EKS cluster name.
    #[arg(long, short = 'c')]
    pub(crate) cluster: Option<String>,
    /// Load configuration from a file (or stdin if set to '-').
    #[arg(long = "config-file", short = 'f', value_name = "FILE")]
    pub(crate) config_file: Option<String>,
    /// AWS region.
    #[arg(long, short = 'r')]
    pub(crate) region: Option<String>,
    /// AWS credentials profile to use (overrides the AWS_PROFILE environment variable).
    #[arg(long, short = 'p')]
    pub(crate) profile: Option<String>,
    /// The podid server's URL (default: `AWS_ENDPOINT_URL_EKS`, `AWS_ENDPOINT_URL`, then the
    /// profile's `endpoint_url`).
    #[arg(long, value_name = "URL")]
    pub(crate) endpoint_url: Option<String>,
    /// Maximum waiting time for any long-running operation (accepted for eksctl's scripts;
    /// podid's operations do not wait).
    #[arg(long, value_name = "DURATION", hide = true)]
    pub(crate) timeout: Option<String>,
}

/// What a command works on: the config file (if any), the cluster and its clients.
pub(crate) struct Target {
    pub(crate) config: Option<ClusterConfig>,
    pub(crate) cluster: String,
    pub(crate) eks: Client,
    pub(crate) iam: Client,
}

impl General {
    /// Loads the config file if there is one (refusing the flags it replaces, named in
    /// `replaced_by_file`, and `--region` unless `region_with_file`), finds the cluster, and
    /// makes the EKS and IAM clients.
    pub(crate) fn target(
        &self,
        replaced_by_file: &[(&str, bool)],
        region_with_file: bool,
    ) -> Result<Target, Failure> {
        let mut region = self.region.clone();
        let (config, cluster) = match &self.config_file {
            Some(file) => {
                let config = ClusterConfig::load(file)?;
                config.checked_metadata()?;
                let mut flags: Vec<(&str, bool)> = replaced_by_file.to_vec();
                flags.push(("cluster", self.cluster.is_some()));
                if !region_with_file {
                    flags.push(("region", self.region.is_some()));
                }
                flags.sort_by_key(|(name, _)| *name);
                if let Some((name, _)) = flags.iter().find(|(_, given)| *given) {
                    return Err(Failure::Usage(format!(
                        "cannot use --{name} when --config-file/-f is set"
                    )));
                }
                let ignored = config.ignored_sections();
                if !ignored.is_empty() {
                    tasks::log(
                        tasks::Level::Warning,
                        &format!(
                            "podid ignores these sections of {file:?}: {} (it runs no nodes, networks or cluster add-ons)",
                            ignored.join(", ")
                        ),
                    );
                }
                region = Some(config.region().to_owned());
                let cluster = config.name().to_owned();
                (Some(config), cluster)
            }
            None => {
                let cluster = self
                    .cluster
                    .clone()
                    .filter(|c| !c.is_empty())
                    .ok_or_else(|| Failure::Usage("--cluster must be set".into()))?;
                (None, cluster)
            }
        };
        let client = ClientArgs::new(self.profile.clone(), region, self.endpoint_url.clone());
        let eks = Client::new(&client, "eks")?;
        let iam = Client::new(&client, "iam")?;
        Ok(Target {
            config,
            cluster,
            eks,
            iam,
        })
    }
}

/// Why a command stopped: bad usage or input (exit code 2), the server said no or a task
/// failed (exit code 1).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Self::Usage(e.to_string())
    }
}

/// Prints the failure as eksctl does (`Error: ...`) and gives the exit status.
pub(crate) fn finish(result: Result<(), Failure>) -> anyhow::Result<Status> {
    match result {
        Ok(()) => Ok(Status::Success),
        Err(Failure::Usage(message)) => {
            eprintln!("Error: {message}");
            Ok(Status::Error)
        }
        Err(Failure::Refused(message)) => {
            eprintln!("Error: {message}");
            Ok(Status::No)
        }
        Err(Failure::Other(e)) => match e.downcast_ref::<ApiFailure>() {
            Some(_) => {
                eprintln!("Error: {e:#}");
                Ok(Status::No)
            }
            None => Err(e),
        },
    }
}

/// Whether the cluster exists (eksctl checks before anything else).
pub(crate) fn check_cluster(target: &Target) -> Result<Value, Failure> {
    target
        .eks
        .json("GET", &format!("/clusters/{}", target.cluster), "", None)
        .map_err(|e| match e.downcast_ref::<ApiFailure>() {
            Some(f) if f.code == "ResourceNotFoundException" => Failure::Refused(format!(
                "cluster {:?} not found: {}",
                target.cluster, f.message
            )),
            _ => Failure::Other(e),
        })
}

/// Whether the cluster has the `eks-pod-identity-agent` add-on.
pub(crate) fn agent_installed(target: &Target) -> Result<bool, Failure> {
    match target.eks.json(
        "GET",
        &format!("/clusters/{}/addons/{AGENT_ADDON}", target.cluster),
        "",
        None,
    ) {
        Ok(_) => Ok(true),
        Err(e) if roles::is_code(&e, "ResourceNotFoundException") => Ok(false),
        Err(e) => Err(Failure::Other(
            e.context(format!("calling \"EKS::DescribeAddon::{AGENT_ADDON}\"")),
        )),
    }
}

/// The EKS Pod Identity agent's add-on.
pub(crate) const AGENT_ADDON: &str = "eks-pod-identity-agent";

/// Output formats of eksctl's `get` commands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Output {
    /// A table for people.
    #[default]
    Table,
    /// JSON, indented by four spaces, as eksctl prints it.
    Json,
    /// YAML, keys in order.
    Yaml,
}

/// Prints rows (objects with the same keys) in the format asked for.
pub(crate) fn print_rows(
    rows: &[serde_json::Map<String, Value>],
    columns: &[(&str, &str)],
    output: Output,
) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match output {
        Output::Json => {
            let mut text = Vec::new();
            let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            let mut serializer = serde_json::Serializer::with_formatter(&mut text, formatter);
            serde::Serialize::serialize(rows, &mut serializer).context("writing JSON")?;
            out.write_all(&text)?;
            writeln!(out)?;
        }
        Output::Yaml => {
            let sorted: Vec<std::collections::BTreeMap<&String, &Value>> =
                rows.iter().map(|r| r.iter().collect()).collect();
            write!(
                out,
                "{}",
                serde_norway::to_string(&sorted).context("writing YAML")?
            )?;
        }
        Output::Table => {
            let cell = |row: &serde_json::Map<String, Value>, key: &str| match row.get(key) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            let widths: Vec<usize> = columns
                .iter()
                .map(|(header, key)| {
                    rows.iter()
                        .map(|r| cell(r, key).chars().count())
                        .chain([header.len()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let line = |cells: Vec<String>| -> String {
                let mut text = String::new();
                for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
                    if i + 1 == cells.len() {
                        text.push_str(c);
                    } else {
                        text.push_str(&format!("{c:<w$}\t"));
                    }
                }
                text.trim_end().to_owned()
            };
            writeln!(
                out,
                "{}",
                line(columns.iter().map(|(h, _)| (*h).to_owned()).collect())
            )?;
            for row in rows {
                writeln!(
                    out,
                    "{}",
                    line(columns.iter().map(|(_, k)| cell(row, k)).collect())
                )?;
            }
        }
    }
    Ok(())
}

/// `a=b,c=d` as a map (eksctl's `--tags`).
pub(crate) fn key_values(text: &str) -> Result<std::collections::BTreeMap<String, String>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .ok_or_else(|| format!("{pair:?} must be formatted as key=value"))
        })
        .collect()
}

/// A comma-separated list, items trimmed (`"a, b"` is `a` and `b`).
pub(crate) fn list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}
