//! `podid serviceaccount ...`: the service accounts of a podid cluster, where IRSA's
//! annotations live (`eks.amazonaws.com/role-arn`, `audience`, `sts-regional-endpoints`,
//! `token-expiration`), over the server's service-account API.

use serde_json::{Map, Value, json};

use crate::Status;
use crate::aws_client::ClientArgs;
use crate::cluster::{Format, eks, finish};

/// Where a service account is.
#[derive(Debug, clap::Args)]
pub(crate) struct Where {
    /// The service account's name.
    name: String,
    /// The cluster.
    #[arg(long)]
    cluster: String,
    /// The namespace.
    #[arg(long, short, default_value = "default")]
    namespace: String,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ServiceAccountCommand {
    /// Create a service account. For IRSA, give it a role:
    ///   podid serviceaccount create app --cluster my-cluster --role-arn arn:aws:iam::111122223333:role/app
    /// (the same as --annotation eks.amazonaws.com/role-arn=ARN). Needs `podid:CreateServiceAccount`.
    #[command(verbatim_doc_comment)]
    Create {
        #[command(flatten)]
        at: Where,
        /// IRSA's role for the service account's pods.
        #[arg(long, value_name = "ARN")]
        role_arn: Option<String>,
        /// An annotation, KEY=VALUE (repeatable).
        #[arg(long = "annotation", value_name = "KEY=VALUE", value_parser = key_value)]
        annotations: Vec<(String, String)>,
        /// A label, KEY=VALUE (repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = key_value)]
        labels: Vec<(String, String)>,
        #[command(flatten)]
        client: ClientArgs,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t)]
        output: Format,
    },
    /// Set or remove annotations, as `kubectl annotate` does: KEY=VALUE sets, KEY- removes.
    ///   podid serviceaccount annotate app --cluster my-cluster eks.amazonaws.com/role-arn=arn:aws:iam::111122223333:role/app
    /// Needs `podid:UpdateServiceAccount`.
    #[command(verbatim_doc_comment)]
    Annotate {
        #[command(flatten)]
        at: Where,
        /// KEY=VALUE to set, KEY- to remove.
        #[arg(required = true, value_name = "KEY=VALUE|KEY-")]
        changes: Vec<String>,
        #[command(flatten)]
        client: ClientArgs,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t)]
        output: Format,
    },
    /// Show a service account. Needs `podid:GetServiceAccount`.
    Get {
        #[command(flatten)]
        at: Where,
        #[command(flatten)]
        client: ClientArgs,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t)]
        output: Format,
    },
    /// List a cluster's service accounts (of one namespace with --namespace), with their IRSA
    /// roles. Needs `podid:ListServiceAccounts`.
    List {
        /// The cluster.
        #[arg(long)]
        cluster: String,
        /// Only this namespace.
        #[arg(long, short)]
        namespace: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t)]
        output: Format,
    },
    /// Delete a service account. Needs `podid:DeleteServiceAccount`.
    Delete {
        #[command(flatten)]
        at: Where,
        #[command(flatten)]
        client: ClientArgs,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t)]
        output: Format,
    },
}

pub(crate) fn run(command: ServiceAccountCommand) -> anyhow::Result<Status> {
    let base = |cluster: &str| format!("/clusters/{cluster}/podid/service-accounts");
    let one = |at: &Where| format!("{}/{}/{}", base(&at.cluster), at.namespace, at.name);
    let (output, result) = match command {
        ServiceAccountCommand::Create {
            at,
            role_arn,
            mut annotations,
            labels,
            client,
            output,
        } => {
            if let Some(role) = role_arn {
                annotations.push(("eks.amazonaws.com/role-arn".into(), role));
            }
            let body = json!({"metadata": {
                "namespace": at.namespace, "name": at.name,
                "labels": object(labels), "annotations": object(annotations),
            }});
            let result =
                eks(&client).and_then(|c| c.json("POST", &base(&at.cluster), "", Some(&body)));
            (output, result)
        }
        ServiceAccountCommand::Annotate {
            at,
            changes,
            client,
            output,
        } => {
            let mut patch = Map::new();
            for change in changes {
                match change.split_once('=') {
                    Some((k, v)) => patch.insert(k.to_owned(), v.into()),
                    None => match change.strip_suffix('-') {
                        Some(k) => patch.insert(k.to_owned(), Value::Null),
                        None => anyhow::bail!(
                            "`{change}` is neither KEY=VALUE (to set) nor KEY- (to remove)"
                        ),
                    },
                };
            }
            let body = json!({"metadata": {"annotations": patch}});
            let result = eks(&client).and_then(|c| c.json("POST", &one(&at), "", Some(&body)));
            (output, result)
        }
        ServiceAccountCommand::Get { at, client, output } => {
            let result = eks(&client).and_then(|c| c.json("GET", &one(&at), "", None));
            (output, result)
        }
        ServiceAccountCommand::List {
            cluster,
            namespace,
            client,
            output,
        } => {
            let query = namespace
                .map(|n| format!("namespace={n}"))
                .unwrap_or_default();
            let result = eks(&client).and_then(|c| c.json("GET", &base(&cluster), &query, None));
            (output, result)
        }
        ServiceAccountCommand::Delete { at, client, output } => {
            let result = eks(&client).and_then(|c| c.json("DELETE", &one(&at), "", None));
            (output, result)
        }
    };
    finish(result, output)
}

/// Pairs as a JSON object of strings.
fn object(pairs: Vec<(String, String)>) -> Map<String, Value> {
    pairs
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect()
}

/// `KEY=VALUE`.
fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{text}` is not KEY=VALUE"))
}
