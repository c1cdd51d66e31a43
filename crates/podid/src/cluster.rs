//! `podid cluster ...` and `podid token create`: EKS clusters and service-account tokens, over
//! the EKS API of a podid server (signed like any AWS client).

use std::io::Write as _;

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::Status;
use crate::aws_client::{ApiFailure, Client, ClientArgs};

/// Output formats of client commands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// JSON, as the AWS CLI prints it.
    #[default]
    Json,
    /// YAML.
    Yaml,
    /// A table for people.
    Table,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ClusterCommand {
    /// Create a local cluster: podid keeps its signing keys, gives it an issuer of EKS's shape
    /// (`https://oidc.eks.<region>.amazonaws.com/id/<ID>`, for IAM OIDC providers), serves the
    /// issuer's documents (`<server>/id/<ID>/.well-known/openid-configuration` and `/keys`) and
    /// mints its service-account tokens (`podid token create`).
    Create {
        /// The cluster's name (letters, digits, `-`, `_`; at most 100).
        name: String,
        /// The cluster's IAM role (optional for podid; the AWS API requires one).
        #[arg(long)]
        role_arn: Option<String>,
        /// The Kubernetes version to report.
        #[arg(long)]
        version: Option<String>,
        #[command(flatten)]
        backend: BackendArgs,
        #[command(flatten)]
        client: ClientArgs,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t)]
        output: Format,
    },
    /// Register an external cluster: a real Kubernetes cluster whose kube-apiserver issues the
    /// service-account tokens. Give its issuer URL, and its key set as a file (e.g. from
    /// `kubectl get --raw /openid/v1/jwks`) or let the server fetch it from the issuer.
    Register {
        /// The cluster's name.
        name: String,
        /// The issuer URL (`kubectl get --raw /.well-known/openid-configuration | jq -r .issuer`).
        #[arg(long)]
        issuer: String,
        /// A file with the issuer's JWKS. Without it, the server fetches the key set (from
        /// --jwks-uri, or from the issuer's discovery document) and refreshes it hourly.
        #[arg(long, value_name = "FILE", conflicts_with = "jwks_uri")]
        jwks: Option<std::path::PathBuf>,
        /// Where the server fetches the issuer's JWKS (default: the `jwks_uri` of
        /// `ISSUER/.well-known/openid-configuration`).
        #[arg(long, value_name = "URL")]
        jwks_uri: Option<String>,
        /// The cluster's IAM role.
        #[arg(long)]
        role_arn: Option<String>,
        #[command(flatten)]
        backend: BackendArgs,
        #[command(flatten)]
        client: ClientArgs,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t)]
        output: Format,
    },
    /// List the clusters of the account and region.
    List {
        #[command(flatten)]
        client: ClientArgs,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t)]
        output: Format,
    },
    /// Show a cluster.
    Describe {
        /// The cluster's name.
        name: String,
        #[command(flatten)]
        client: ClientArgs,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t)]
        output: Format,
    },
    /// Print the trust policy a role needs so that pods of a cluster with the `aws` credential
    /// backend can assume it through the server's broker: the broker as principal,
    /// sts:AssumeRole and sts:TagSession, and conditions on the session tags that pin the
    /// cluster (and, with --namespace and --service-account, the pod's namespace and service
    /// account). With --role, the statements that role needs for the cluster's associations
    /// that use it: one per association as its role (the broker, pinned to the association's
    /// namespace and service account), one per association as its target role (the
    /// association's role, with its sts:ExternalId). Merge the statements into the role's trust
    /// policy (docs/upstream.md):
    ///   podid cluster trust-policy my-cluster --role arn:aws:iam::111122223333:role/app > trust.json
    ///   aws iam update-assume-role-policy --role-name app --policy-document file://trust.json
    /// Needs `eks:DescribeCluster` (and `eks:ListPodIdentityAssociations` with --role); the
    /// server asks the upstream STS who the broker is.
    #[command(verbatim_doc_comment)]
    TrustPolicy {
        /// The cluster's name.
        name: String,
        /// Pin the namespace (`aws:RequestTag/kubernetes-namespace`).
        #[arg(long)]
        namespace: Option<String>,
        /// Pin the service account (`aws:RequestTag/kubernetes-service-account`).
        #[arg(long)]
        service_account: Option<String>,
        /// The statements this role (an ARN) needs for the associations that use it.
        #[arg(long, value_name = "ARN")]
        role: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
        /// Output format (the policy document).
        #[arg(long, short, value_enum, default_value_t)]
        output: Format,
    },
    /// Delete a cluster and its Pod Identity associations.
    Delete {
        /// The cluster's name.
        name: String,
        #[command(flatten)]
        client: ClientArgs,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t)]
        output: Format,
    },
    /// Register the cluster's OIDC issuer as an IAM OIDC provider (client id
    /// `sts.amazonaws.com`) for IRSA, as eksctl's `utils associate-iam-oidc-provider` does: in
    /// the cluster's account, or with --account in another one (its profile, as `podid server`
    /// names them, signs the IAM call). Already registered: not an error. Needs
    /// `eks:DescribeCluster` and `iam:CreateOpenIDConnectProvider`.
    AssociateOidcProvider {
        /// The cluster's name.
        name: String,
        /// The account that trusts the issuer (default: the caller's).
        #[arg(long, value_name = "ACCOUNT_ID")]
        account: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t)]
        output: Format,
    },
    /// Make a new signing key for a local cluster; the old one stays in the JWKS until the
    /// tokens it signed expire.
    RotateKeys {
        /// The cluster's name.
        name: String,
        #[command(flatten)]
        client: ClientArgs,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t)]
        output: Format,
    },
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum TokenCommand {
    /// Mint a service-account token for a local cluster, with the claims kube-apiserver puts
    /// in projected tokens (`iss`, `sub`, `aud`, `exp`, `iat`, `nbf`, `jti`, `kubernetes.io`).
    /// Needs `podid:CreateServiceAccountToken` on the cluster. Prints the token.
    Create {
        /// The cluster.
        #[arg(long)]
        cluster: String,
        /// The namespace.
        #[arg(long)]
        namespace: String,
        /// The service account.
        #[arg(long)]
        service_account: String,
        /// An audience (repeatable; default `pods.eks.amazonaws.com`; IRSA uses
        /// `sts.amazonaws.com`).
        #[arg(long = "audience")]
        audiences: Vec<String>,
        /// The pod's name.
        #[arg(long, requires = "pod_uid")]
        pod_name: Option<String>,
        /// The pod's uid.
        #[arg(long, requires = "pod_name")]
        pod_uid: Option<String>,
        /// The node's name.
        #[arg(long)]
        node_name: Option<String>,
        /// The node's uid.
        #[arg(long)]
        node_uid: Option<String>,
        /// Lifetime in seconds (600 to 172800; default 86400).
        #[arg(long, value_name = "SECONDS")]
        expiration: Option<i64>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

pub(crate) fn run_cluster(command: ClusterCommand) -> anyhow::Result<Status> {
    let (output, result) = match command {
        ClusterCommand::Create {
            name,
            role_arn,
            version,
            backend,
            client,
            output,
        } => {
            let result = cluster_body(&name, role_arn, version, None, &backend)
                .and_then(|body| eks(&client)?.json("POST", "/clusters", "", Some(&body)));
            (output, result)
        }
        ClusterCommand::Register {
            name,
            issuer,
            jwks,
            jwks_uri,
            role_arn,
            backend,
            client,
            output,
        } => {
            let mut spec = json!({"issuer": issuer});
            if let Some(jwks) = jwks {
                let text = std::fs::read_to_string(&jwks)
                    .with_context(|| format!("cannot read the JWKS file `{}`", jwks.display()))?;
                let keys: Value = serde_json::from_str(&text).with_context(|| {
                    format!("`{}` is not a JWKS document (JSON)", jwks.display())
                })?;
                if let Some(map) = spec.as_object_mut() {
                    map.insert("jwks".into(), keys);
                }
            }
            if let (Some(uri), Some(map)) = (jwks_uri, spec.as_object_mut()) {
                map.insert("jwksUri".into(), uri.into());
            }
            let result = cluster_body(&name, role_arn, None, Some(spec), &backend)
                .and_then(|body| eks(&client)?.json("POST", "/clusters", "", Some(&body)));
            (output, result)
        }
        ClusterCommand::List { client, output } => {
            let result = eks(&client).and_then(|c| list_all(&c));
            (output, result)
        }
        ClusterCommand::Describe {
            name,
            client,
            output,
        } => {
            let result =
                eks(&client).and_then(|c| c.json("GET", &format!("/clusters/{name}"), "", None));
            (output, result)
        }
        ClusterCommand::TrustPolicy {
            name,
            namespace,
            service_account,
            role,
            client,
            output,
        } => {
            let mut query = Vec::new();
            if let Some(role) = role {
                query.push(format!("roleArn={}", podid_sigv4::uri_encoded(&role)));
            }
            if let Some(namespace) = namespace {
                query.push(format!(
                    "namespace={}",
                    podid_sigv4::uri_encoded(&namespace)
                ));
            }
            if let Some(service_account) = service_account {
                query.push(format!(
                    "serviceAccount={}",
                    podid_sigv4::uri_encoded(&service_account)
                ));
            }
            let result = eks(&client).and_then(|c| {
                c.json(
                    "GET",
                    &format!("/clusters/{name}/podid/upstream-trust-policy"),
                    &query.join("&"),
                    None,
                )
            });
            let output = if output == Format::Table {
                Format::Json
            } else {
                output
            };
            (
                output,
                result.map(|v| v.get("policyDocument").cloned().unwrap_or_default()),
            )
        }
        ClusterCommand::Delete {
            name,
            client,
            output,
        } => {
            let result =
                eks(&client).and_then(|c| c.json("DELETE", &format!("/clusters/{name}"), "", None));
            (output, result)
        }
        ClusterCommand::AssociateOidcProvider {
            name,
            account,
            client,
            output,
        } => (
            output,
            associate_oidc_provider(&name, account.as_deref(), &client),
        ),
        ClusterCommand::RotateKeys {
            name,
            client,
            output,
        } => {
            let result = eks(&client).and_then(|c| {
                c.json(
                    "POST",
                    &format!("/clusters/{name}/podid/rotate-signing-keys"),
                    "",
                    Some(&json!({})),
                )
            });
            (output, result)
        }
    };
    finish(result, output)
}

/// Registers `cluster`'s issuer as an OIDC provider of `account` (default: the caller's).
fn associate_oidc_provider(
    cluster: &str,
    account: Option<&str>,
    client: &ClientArgs,
) -> anyhow::Result<Value> {
    let described = eks(client)?.json("GET", &format!("/clusters/{cluster}"), "", None)?;
    let issuer = described
        .pointer("/cluster/identity/oidc/issuer")
        .and_then(Value::as_str)
        .context("the server described the cluster without an OIDC issuer")?
        .to_owned();
    let args = account.map_or_else(|| client.clone(), |a| client.with_profile(a));
    let iam = Client::new(&args, "iam")?;
    let created = iam.query(&[
        ("Action", "CreateOpenIDConnectProvider"),
        ("Version", "2010-05-08"),
        ("Url", &issuer),
        ("ClientIDList.member.1", "sts.amazonaws.com"),
    ]);
    let already = match &created {
        Ok(_) => false,
        Err(e) => e
            .downcast_ref::<ApiFailure>()
            .is_some_and(|f| f.code == "EntityAlreadyExists"),
    };
    if let (Err(_), false) = (&created, already) {
        return created.map(|_| Value::Null);
    }
    let identity = Client::new(&args, "sts")?
        .query(&[("Action", "GetCallerIdentity"), ("Version", "2011-06-15")])?;
    let account = crate::aws_client::xml_first(&identity, "Account")
        .context("GetCallerIdentity answered without an account")?;
    let host = issuer.trim_start_matches("https://");
    Ok(json!({
        "OpenIDConnectProviderArn": format!("arn:aws:iam::{account}:oidc-provider/{host}"),
        "Issuer": issuer,
        "Created": !already,
    }))
}

pub(crate) fn run_token(command: TokenCommand) -> anyhow::Result<Status> {
    let TokenCommand::Create {
        cluster,
        namespace,
        service_account,
        audiences,
        pod_name,
        pod_uid,
        node_name,
        node_uid,
        expiration,
        client,
    } = command;
    let mut body = json!({
        "namespace": namespace,
        "serviceAccount": service_account,
        "audiences": audiences,
    });
    if let Some(map) = body.as_object_mut() {
        for (key, value) in [
            ("podName", pod_name),
            ("podUid", pod_uid),
            ("nodeName", node_name),
            ("nodeUid", node_uid),
        ] {
            if let Some(value) = value {
                map.insert(key.into(), value.into());
            }
        }
        if let Some(seconds) = expiration {
            map.insert("expirationSeconds".into(), seconds.into());
        }
    }
    let result = eks(&client).and_then(|c| {
        c.json(
            "POST",
            &format!("/clusters/{cluster}/podid/service-account-token"),
            "",
            Some(&body),
        )
    });
    match result {
        Ok(value) => {
            let token = value
                .get("token")
                .and_then(Value::as_str)
                .unwrap_or_default();
            writeln!(std::io::stdout().lock(), "{token}")?;
            Ok(Status::Success)
        }
        Err(e) => refused(e),
    }
}

pub(crate) fn eks(args: &ClientArgs) -> anyhow::Result<Client> {
    Client::new(args, "eks")
}

/// Where a cluster's pods get their credentials.
#[derive(Debug, clap::Args)]
pub(crate) struct BackendArgs {
    /// Where pods' credentials come from: `embedded` (podid's own STS: credentials podid
    /// accepts) or `aws` (an upstream STS, real AWS by default, asked with the server's broker
    /// identity: credentials AWS accepts; docs/upstream.md).
    #[arg(long, value_enum, default_value_t = Backend::Embedded)]
    credential_backend: Backend,
    /// With `--credential-backend aws`: the upstream STS endpoint (default: the cluster
    /// region's `https://sts.REGION.amazonaws.com`; a FIPS or any other URL works).
    #[arg(long, value_name = "URL")]
    upstream_sts_endpoint: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Backend {
    Embedded,
    Aws,
}

fn cluster_body(
    name: &str,
    role_arn: Option<String>,
    version: Option<String>,
    external: Option<Value>,
    backend: &BackendArgs,
) -> anyhow::Result<Value> {
    if backend.credential_backend == Backend::Embedded && backend.upstream_sts_endpoint.is_some() {
        anyhow::bail!(
            "--upstream-sts-endpoint is for clusters whose pods get credentials upstream: add --credential-backend aws"
        );
    }
    let mut body = json!({"name": name});
    if let Some(map) = body.as_object_mut() {
        if let Some(role) = role_arn {
            map.insert("roleArn".into(), role.into());
        }
        if let Some(version) = version {
            map.insert("version".into(), version.into());
        }
        if let Some(external) = external {
            map.insert("podidExternalIssuer".into(), external);
        }
        if backend.credential_backend == Backend::Aws {
            let mut spec = json!({"type": "aws"});
            if let (Some(url), Some(spec)) = (&backend.upstream_sts_endpoint, spec.as_object_mut())
            {
                spec.insert("upstreamStsEndpoint".into(), url.clone().into());
            }
            map.insert("podidCredentialBackend".into(), spec);
        }
    }
    Ok(body)
}

fn list_all(client: &Client) -> anyhow::Result<Value> {
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let query = match &token {
            Some(t) => format!("nextToken={t}"),
            None => String::new(),
        };
        let page = client.json("GET", "/clusters", &query, None)?;
        if let Some(items) = page.get("clusters").and_then(Value::as_array) {
            names.extend(items.iter().cloned());
        }
        match page.get("nextToken").and_then(Value::as_str) {
            Some(next) => token = Some(next.to_owned()),
            None => break,
        }
    }
    Ok(json!({"clusters": names}))
}

pub(crate) fn finish(result: anyhow::Result<Value>, output: Format) -> anyhow::Result<Status> {
    match result {
        Ok(value) => {
            print(&value, output)?;
            Ok(Status::Success)
        }
        Err(e) => refused(e),
    }
}

/// The server said no: its code and message, exit code 1. Anything else is exit code 2.
fn refused(e: anyhow::Error) -> anyhow::Result<Status> {
    match e.downcast_ref::<ApiFailure>() {
        Some(failure) => {
            eprintln!("error: {failure}");
            Ok(Status::No)
        }
        None => Err(e),
    }
}

fn print(value: &Value, output: Format) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match output {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(value)?)?,
        Format::Yaml => {
            let mut text = String::new();
            yaml(value, 0, &mut text);
            write!(out, "{text}")?;
        }
        Format::Table => table(value, &mut out)?,
    }
    Ok(())
}

/// A small YAML writer for JSON values.
fn yaml(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) => {
            if map.is_empty() {
                out.push_str(&format!("{pad}{{}}\n"));
            }
            for (key, v) in map {
                match v {
                    Value::Object(m) if !m.is_empty() => {
                        out.push_str(&format!("{pad}{}:\n", scalar(&Value::from(key.clone()))));
                        yaml(v, indent + 2, out);
                    }
                    Value::Array(a) if !a.is_empty() => {
                        out.push_str(&format!("{pad}{}:\n", scalar(&Value::from(key.clone()))));
                        yaml(v, indent, out);
                    }
                    _ => out.push_str(&format!(
                        "{pad}{}: {}\n",
                        scalar(&Value::from(key.clone())),
                        scalar(v)
                    )),
                }
            }
        }
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str(&format!("{pad}[]\n"));
            }
            for item in items {
                match item {
                    Value::Object(_) | Value::Array(_) => {
                        let mut inner = String::new();
                        yaml(item, indent + 2, &mut inner);
                        let trimmed = inner.trim_start();
                        out.push_str(&format!("{pad}- {trimmed}"));
                    }
                    _ => out.push_str(&format!("{pad}- {}\n", scalar(item))),
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other))),
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => {
            let plain = !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:@".contains(c))
                && !matches!(s.as_str(), "true" | "false" | "null" | "yes" | "no")
                && s.parse::<f64>().is_err();
            if plain {
                s.clone()
            } else {
                Value::String(s.clone()).to_string()
            }
        }
        Value::Object(m) if m.is_empty() => "{}".into(),
        Value::Array(a) if a.is_empty() => "[]".into(),
        other => other.to_string(),
    }
}

/// A table: one row per cluster (list), or the fields of one object.
fn table(value: &Value, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    let one = std::slice::from_ref(value);
    let service_accounts = match value.get("kind").and_then(Value::as_str) {
        Some("ServiceAccount") => Some(one),
        _ => value
            .get("items")
            .and_then(Value::as_array)
            .map(Vec::as_slice),
    };
    if let Some(items) = service_accounts {
        // Service accounts, as `kubectl get serviceaccounts` lists them, with IRSA's role.
        writeln!(out, "{:<24} {:<32} ROLE", "NAMESPACE", "NAME")?;
        for item in items {
            let field = |path: &str| {
                item.pointer(path)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            writeln!(
                out,
                "{:<24} {:<32} {}",
                field("/metadata/namespace"),
                field("/metadata/name"),
                field("/metadata/annotations/eks.amazonaws.com~1role-arn")
            )?;
        }
        return Ok(());
    }
    if let Some(names) = value.get("clusters").and_then(Value::as_array) {
        writeln!(out, "NAME")?;
        for name in names {
            writeln!(out, "{}", name.as_str().unwrap_or_default())?;
        }
        return Ok(());
    }
    let object = value
        .get("cluster")
        .or_else(|| value.get("association"))
        .unwrap_or(value);
    if let Value::Object(map) = object {
        let width = map.keys().map(String::len).max().unwrap_or(0);
        for (key, v) in map {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            writeln!(out, "{key:<width$}  {text}")?;
        }
    }
    Ok(())
}
