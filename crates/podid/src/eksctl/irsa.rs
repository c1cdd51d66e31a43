//! IRSA the eksctl way: `podid utils associate-iam-oidc-provider` and `podid
//! create|get|delete iamserviceaccount` (a role trusting the cluster's OIDC provider for one
//! service account, and the service account annotated with it).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::config::{IamServiceAccount, ServiceAccountMeta, WellKnownPolicies, texts};
use super::roles::{self, RoleSpec};
use super::tasks::{self, Level, info, log};
use super::{Failure, General, Output, Target, check_cluster, key_values, list};

/// IRSA's role annotation.
pub(crate) const ROLE_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
/// eksctl's label on the service accounts it manages.
pub(crate) const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "eksctl");

/// `utils associate-iam-oidc-provider`.
#[derive(Debug, clap::Args)]
pub(crate) struct AssociateArgs {
    #[command(flatten)]
    general: General,
    /// Apply the changes.
    #[arg(long)]
    approve: bool,
}

/// `create iamserviceaccount`.
#[derive(Debug, clap::Args)]
pub(crate) struct CreateArgs {
    #[command(flatten)]
    general: General,
    /// Name of the iamserviceaccount to create.
    #[arg(long)]
    name: Option<String>,
    /// Namespace where to create the iamserviceaccount.
    #[arg(long)]
    namespace: Option<String>,
    /// ARN of the policy where to create the iamserviceaccount (comma-separated or repeated).
    #[arg(long = "attach-policy-arn", value_name = "ARN")]
    attach_policy_arn: Vec<String>,
    /// ARN of the role to attach to the iamserviceaccount (no role is made).
    #[arg(long, value_name = "ARN")]
    attach_role_arn: Option<String>,
    /// Set a custom name for the created role.
    #[arg(long)]
    role_name: Option<String>,
    /// Create only the role, not the service account.
    #[arg(long)]
    role_only: bool,
    /// ARN of the policy that is used to set the permission boundary for the role.
    #[arg(long, value_name = "ARN")]
    permissions_boundary: Option<String>,
    /// Used to tag the IAM role (k1=v1,k2=v2).
    #[arg(long, value_parser = key_values)]
    tags: Option<BTreeMap<String, String>>,
    /// Create IAM roles for existing serviceaccounts and update the serviceaccount.
    #[arg(long)]
    override_existing_serviceaccounts: bool,
    /// Apply the changes.
    #[arg(long)]
    approve: bool,
}

/// `get iamserviceaccount`.
#[derive(Debug, clap::Args)]
pub(crate) struct GetArgs {
    #[command(flatten)]
    general: General,
    /// Name of the iamserviceaccount.
    #[arg(long)]
    name: Option<String>,
    /// Namespace where to retrieve the iamserviceaccount.
    #[arg(long)]
    namespace: Option<String>,
    /// Specifies the output format (valid option: table, json, yaml).
    #[arg(long, short, value_enum, default_value_t)]
    output: Output,
}

/// `delete iamserviceaccount`.
#[derive(Debug, clap::Args)]
pub(crate) struct DeleteArgs {
    #[command(flatten)]
    general: General,
    /// Name of the iamserviceaccount to delete.
    #[arg(long)]
    name: Option<String>,
    /// Namespace where to delete the iamserviceaccount.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Apply the changes (with -f).
    #[arg(long)]
    approve: bool,
}

/// The cluster's issuer and IAM's OIDC provider for it: (provider ARN, `HOST/PATH`, whether
/// the provider exists).
pub(crate) struct Provider {
    pub(crate) arn: String,
    pub(crate) host_path: String,
    pub(crate) issuer: String,
    pub(crate) exists: bool,
}

/// The OIDC provider of the cluster's issuer in the cluster's account.
pub(crate) fn provider(target: &Target) -> Result<Provider, Failure> {
    let cluster = check_cluster(target)?;
    let issuer = cluster
        .pointer("/cluster/identity/oidc/issuer")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let account = cluster
        .pointer("/cluster/arn")
        .and_then(Value::as_str)
        .and_then(|arn| arn.split(':').nth(4))
        .unwrap_or_default()
        .to_owned();
    let host_path = issuer.trim_start_matches("https://").to_owned();
    let arn = format!("arn:aws:iam::{account}:oidc-provider/{host_path}");
    let exists = match target.iam.query(&[
        ("Action", "GetOpenIDConnectProvider"),
        ("Version", "2010-05-08"),
        ("OpenIDConnectProviderArn", &arn),
    ]) {
        Ok(_) => true,
        Err(e) if roles::is_code(&e, "NoSuchEntity") => false,
        Err(e) => return Err(e.into()),
    };
    Ok(Provider {
        arn,
        host_path,
        issuer,
        exists,
    })
}

/// Registers the cluster's issuer as an OIDC provider (client id `sts.amazonaws.com`).
pub(crate) fn create_provider(target: &Target, provider: &Provider) -> Result<(), Failure> {
    target.iam.query(&[
        ("Action", "CreateOpenIDConnectProvider"),
        ("Version", "2010-05-08"),
        ("Url", &provider.issuer),
        ("ClientIDList.member.1", "sts.amazonaws.com"),
    ])?;
    Ok(())
}

pub(crate) fn run_associate(args: AssociateArgs) -> Result<(), Failure> {
    let target = args.general.target(&[], false)?;
    if let Some(config) = &target.config
        && config.iam.as_ref().and_then(|i| i.with_oidc) != Some(true)
    {
        return Err(Failure::Usage(format!(
            "'iam.withOIDC' is not enabled in {:?}",
            args.general.config_file.as_deref().unwrap_or_default()
        )));
    }
    let provider = provider(&target)?;
    let (cluster, region) = (&target.cluster, target.eks.region());
    if provider.exists {
        info(&format!(
            "IAM Open ID Connect provider is already associated with cluster {cluster:?} in {region:?}"
        ));
        return Ok(());
    }
    if !args.approve {
        info(&format!(
            "(plan) would create IAM Open ID Connect provider for cluster {cluster:?} in {region:?}"
        ));
        tasks::plan_warning();
        return Ok(());
    }
    info(&format!(
        "will create IAM Open ID Connect provider for cluster {cluster:?} in {region:?}"
    ));
    create_provider(&target, &provider)?;
    info(&format!(
        "created IAM Open ID Connect provider for cluster {cluster:?} in {region:?}"
    ));
    Ok(())
}

pub(crate) fn run_create(args: CreateArgs) -> Result<(), Failure> {
    let flags = [
        ("name", args.name.is_some()),
        ("namespace", args.namespace.is_some()),
        ("attach-policy-arn", !args.attach_policy_arn.is_empty()),
        ("attach-role-arn", args.attach_role_arn.is_some()),
        ("role-name", args.role_name.is_some()),
    ];
    let target = args.general.target(&flags, false)?;
    let (accounts, metadata_tags) = match &target.config {
        Some(config) => {
            let iam = config.iam.clone().unwrap_or_default();
            let Some(accounts) = iam.service_accounts.clone() else {
                return Err(Failure::Usage(format!(
                    "'iam.serviceAccounts' is not defined in {:?}",
                    args.general.config_file.as_deref().unwrap_or_default()
                )));
            };
            validate(&accounts, iam.with_oidc)?;
            let tags = config
                .metadata
                .as_ref()
                .and_then(|m| m.tags.as_ref())
                .map(texts)
                .unwrap_or_default();
            (accounts, tags)
        }
        None => (vec![from_flags(&args)?], BTreeMap::new()),
    };
    create_service_accounts(
        &target,
        &accounts,
        &metadata_tags,
        args.approve,
        args.override_existing_serviceaccounts,
    )
}

/// Makes the iamserviceaccounts: each role (unless `attachRoleARN`), then the service account
/// annotated with it (unless `roleOnly`). In plan mode, only the plan.
pub(crate) fn create_service_accounts(
    target: &Target,
    accounts: &[IamServiceAccount],
    metadata_tags: &BTreeMap<String, String>,
    approve: bool,
    override_existing: bool,
) -> Result<(), Failure> {
    let provider = provider(target)?;
    if !provider.exists {
        log(
            Level::Warning,
            &format!(
                "no IAM OIDC provider associated with cluster, try 'podid utils associate-iam-oidc-provider --region={} --cluster={}'",
                target.eks.region(),
                target.cluster
            ),
        );
        return Err(Failure::Refused(
            "unable to create iamserviceaccount(s) without IAM OIDC provider enabled".into(),
        ));
    }
    let names: Vec<String> = accounts.iter().map(name_of).collect();
    info(&format!(
        "{} iamserviceaccount{} ({}) {} included (based on the include/exclude rules)",
        accounts.len(),
        if accounts.len() == 1 { "" } else { "s" },
        names.join(", "),
        if accounts.len() == 1 { "was" } else { "were" }
    ));
    if !override_existing {
        log(
            Level::Warning,
            "serviceaccounts that exists in Kubernetes will be excluded, use --override-existing-serviceaccounts to override",
        );
    }
    let plan: Vec<Vec<String>> = accounts
        .iter()
        .map(|a| {
            let who = name_of(a);
            let mut steps = Vec::new();
            if a.attach_role_arn.is_empty() {
                steps.push(format!("create IAM role for serviceaccount {who:?}"));
            }
            if !a.role_only {
                steps.push(format!("create serviceaccount {who:?}"));
            }
            steps
        })
        .collect();
    let plan_text = tasks::describe_tree(&plan);
    if !approve {
        info(&format!("(plan) {}", plan_text.trim_start()));
        info("all tasks were skipped");
        tasks::plan_warning();
        return Ok(());
    }
    info(&plan_text);
    let results = tasks::run_parallel(accounts, 8, |account| {
        create_one(target, account, &provider, metadata_tags, override_existing)
    });
    let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    if errors.is_empty() {
        info("all tasks were completed successfully");
        return Ok(());
    }
    log(
        Level::Warning,
        &format!(
            "{} error(s) occurred and IAM Role stacks haven't been created properly",
            errors.len()
        ),
    );
    Err(Failure::Refused(format!(
        "failed to create iamserviceaccount(s):\n{}",
        errors.join("\n")
    )))
}

/// `NAMESPACE/NAME`, the namespace `default` if none is given.
fn name_of(account: &IamServiceAccount) -> String {
    format!(
        "{}/{}",
        namespace_of(&account.metadata),
        account.metadata.name
    )
}

fn namespace_of(meta: &ServiceAccountMeta) -> &str {
    if meta.namespace.is_empty() {
        "default"
    } else {
        &meta.namespace
    }
}

fn create_one(
    target: &Target,
    account: &IamServiceAccount,
    provider: &Provider,
    metadata_tags: &BTreeMap<String, String>,
    override_existing: bool,
) -> Result<(), String> {
    let who = name_of(account);
    let ns = namespace_of(&account.metadata).to_owned();
    let name = account.metadata.name.clone();
    let sa_path = format!(
        "/clusters/{}/podid/service-accounts/{ns}/{name}",
        target.cluster
    );
    let existing = target.eks.json("GET", &sa_path, "", None).ok();
    if existing.is_some() && !override_existing && !account.role_only {
        info(&format!(
            "serviceaccount {who:?} exists; it is excluded (use --override-existing-serviceaccounts)"
        ));
        return Ok(());
    }
    let mut made_role = None;
    let result = (|| -> anyhow::Result<()> {
        let role_arn = if account.attach_role_arn.is_empty() {
            let spec = role_spec(&target.cluster, account, provider, metadata_tags);
            let arn = roles::create_role(&target.iam, &spec)
                .map_err(|e| e.context(format!("creating IAM role for serviceaccount {who:?}")))?;
            made_role = Some(roles::role_name_of(&arn).to_owned());
            arn
        } else {
            account.attach_role_arn.clone()
        };
        if account.role_only {
            info(&format!(
                "created IAM role {role_arn:?} for serviceaccount {who:?} (role only)"
            ));
            return Ok(());
        }
        let mut labels: Map<String, Value> = texts(&account.metadata.labels)
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        labels.insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
        let mut annotations: Map<String, Value> = texts(&account.metadata.annotations)
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        annotations.insert(ROLE_ANNOTATION.into(), role_arn.into());
        let metadata = json!({"labels": labels, "annotations": annotations});
        if existing.is_some() {
            target
                .eks
                .json("POST", &sa_path, "", Some(&json!({"metadata": metadata})))?;
            info(&format!("updated serviceaccount {who:?}"));
        } else {
            let mut full = metadata;
            if let Some(map) = full.as_object_mut() {
                map.insert("namespace".into(), ns.clone().into());
                map.insert("name".into(), name.clone().into());
            }
            target.eks.json(
                "POST",
                &format!("/clusters/{}/podid/service-accounts", target.cluster),
                "",
                Some(&json!({"metadata": full})),
            )?;
            info(&format!("created serviceaccount {who:?}"));
        }
        Ok(())
    })();
    result.map_err(|e| {
        if let Some(role) = &made_role
            && let Err(undo) = roles::delete_role(&target.iam, role)
        {
            log(
                Level::Warning,
                &format!("could not remove role {role:?}: {undo:#}"),
            );
        }
        format!("{e:#}")
    })
}

/// The role eksctl makes for an iamserviceaccount: trusting the cluster's OIDC provider for
/// `system:serviceaccount:NS:NAME` (or `subjectPattern`, with `StringLike`) and audience
/// `sts.amazonaws.com`.
pub(crate) fn role_spec(
    cluster: &str,
    account: &IamServiceAccount,
    provider: &Provider,
    metadata_tags: &BTreeMap<String, String>,
) -> RoleSpec {
    let ns = namespace_of(&account.metadata);
    let name = &account.metadata.name;
    let host = &provider.host_path;
    let condition = if account.subject_pattern.is_empty() {
        json!({"StringEquals": {
            format!("{host}:aud"): "sts.amazonaws.com",
            format!("{host}:sub"): format!("system:serviceaccount:{ns}:{name}"),
        }})
    } else {
        json!({
            "StringEquals": {format!("{host}:aud"): "sts.amazonaws.com"},
            "StringLike": {format!("{host}:sub"): account.subject_pattern},
        })
    };
    let trust = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"Federated": provider.arn},
        "Action": ["sts:AssumeRoleWithWebIdentity"],
        "Condition": condition,
    }]});
    let mut tags = metadata_tags.clone();
    tags.extend(texts(&account.tags));
    tags.insert(roles::CLUSTER_TAG.into(), cluster.into());
    tags.insert(roles::CLUSTER_TAG_OLD.into(), cluster.into());
    tags.insert(IAMSERVICEACCOUNT_TAG.into(), format!("{ns}/{name}"));
    RoleSpec {
        name: (!account.role_name.is_empty()).then(|| account.role_name.clone()),
        stack: format!("eksctl-{cluster}-addon-iamserviceaccount-{ns}-{name}"),
        trust,
        inline: account
            .attach_policy
            .as_ref()
            .map(|p| ("Policy1".to_owned(), Value::Object(p.clone()))),
        managed: account.attach_policy_arns.clone(),
        well_known: account.well_known_policies,
        assume: None,
        boundary: (!account.permissions_boundary.is_empty())
            .then(|| account.permissions_boundary.clone()),
        tags,
    }
}

/// The tag of a role made for an iamserviceaccount: `NAMESPACE/NAME`.
pub(crate) const IAMSERVICEACCOUNT_TAG: &str = "alpha.eksctl.io/iamserviceaccount-name";

/// eksctl's rules for `iam.serviceAccounts` (its texts, odd spacing included).
pub(crate) fn validate(
    accounts: &[IamServiceAccount],
    with_oidc: Option<bool>,
) -> Result<(), Failure> {
    if !accounts.is_empty() && with_oidc != Some(true) {
        return Err(Failure::Usage(
            "iam.withOIDC must be enabled explicitly for iam.serviceAccounts to be created".into(),
        ));
    }
    for (i, account) in accounts.iter().enumerate() {
        let path = format!("iam.serviceAccounts[{i}]");
        if account.metadata.name.is_empty() {
            return Err(Failure::Usage(format!("{path}.name must be set")));
        }
        let who = name_of(account);
        if accounts.iter().take(i).any(|a| name_of(a) == who) {
            return Err(Failure::Usage(format!(
                "<namespace>/<name> of {path} {who:?} is not unique"
            )));
        }
        if !account.well_known_policies.any()
            && account.attach_policy_arns.is_empty()
            && account.attach_policy.is_none()
            && account.attach_role_arn.is_empty()
        {
            return Err(Failure::Usage(format!(
                "{path}.wellKnownPolicies, {path}.attachPolicyARNs,{path}.attachRoleARN  or {path}.attachPolicy must be set"
            )));
        }
    }
    Ok(())
}

fn from_flags(args: &CreateArgs) -> Result<IamServiceAccount, Failure> {
    let usage = |m: &str| Failure::Usage(m.to_owned());
    let name = args
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| usage("--name must be set"))?;
    let policies: Vec<String> = args
        .attach_policy_arn
        .iter()
        .flat_map(|p| list(p))
        .collect();
    if policies.is_empty() && args.attach_role_arn.is_none() {
        return Err(usage(
            "--attach-policy-arn or --attach-role-arn must be set",
        ));
    }
    if args.attach_role_arn.is_some() && (args.role_name.is_some() || args.role_only) {
        return Err(usage(
            "cannot provide --role-name or --role-only when --attach-role-arn is configured",
        ));
    }
    if args.attach_role_arn.is_some() && !policies.is_empty() {
        return Err(usage(
            "cannot provide --attach-role-arn and specify polices to attach",
        ));
    }
    Ok(IamServiceAccount {
        metadata: ServiceAccountMeta {
            name,
            namespace: args.namespace.clone().unwrap_or_else(|| "default".into()),
            ..ServiceAccountMeta::default()
        },
        attach_policy_arns: policies,
        well_known_policies: WellKnownPolicies::default(),
        attach_role_arn: args.attach_role_arn.clone().unwrap_or_default(),
        permissions_boundary: args.permissions_boundary.clone().unwrap_or_default(),
        role_name: args.role_name.clone().unwrap_or_default(),
        role_only: args.role_only,
        tags: args
            .tags
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, super::config::YamlString(v)))
            .collect(),
        ..IamServiceAccount::default()
    })
}

/// The cluster's service accounts with IRSA's role annotation.
pub(crate) fn annotated(target: &Target, namespace: Option<&str>) -> anyhow::Result<Vec<Value>> {
    let query = namespace
        .map(|ns| format!("namespace={}", podid_sigv4::uri_encoded(ns)))
        .unwrap_or_default();
    let listed = target.eks.json(
        "GET",
        &format!("/clusters/{}/podid/service-accounts", target.cluster),
        &query,
        None,
    )?;
    Ok(listed
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|sa| {
            sa.pointer("/metadata/annotations")
                .and_then(|a| a.get(ROLE_ANNOTATION))
                .is_some()
        })
        .cloned()
        .collect())
}

pub(crate) fn run_get(args: GetArgs) -> Result<(), Failure> {
    let target = args
        .general
        .target(&[("name", args.name.is_some())], false)?;
    check_cluster(&target)?;
    let mut rows = Vec::new();
    for sa in annotated(&target, args.namespace.as_deref())? {
        let field = |path: &str| {
            sa.pointer(path)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let name = field("/metadata/name");
        if args.name.as_deref().is_some_and(|n| n != name) {
            continue;
        }
        let mut row = Map::new();
        row.insert("Namespace".into(), field("/metadata/namespace").into());
        row.insert("Name".into(), name.into());
        row.insert(
            "RoleARN".into(),
            field("/metadata/annotations/eks.amazonaws.com~1role-arn").into(),
        );
        rows.push(row);
    }
    if let (Some(name), true) = (&args.name, rows.is_empty()) {
        return Err(Failure::Refused(format!(
            "iamserviceaccount {name:?} not found"
        )));
    }
    super::print_rows(
        &rows,
        &[
            ("NAMESPACE", "Namespace"),
            ("NAME", "Name"),
            ("ROLE ARN", "RoleARN"),
        ],
        args.output,
    )?;
    Ok(())
}

pub(crate) fn run_delete(args: DeleteArgs) -> Result<(), Failure> {
    let target = args
        .general
        .target(&[("name", args.name.is_some())], false)?;
    let accounts: Vec<(String, String)> = match &target.config {
        Some(config) => config
            .iam
            .iter()
            .flat_map(|i| i.service_accounts.iter().flatten())
            .map(|a| {
                (
                    namespace_of(&a.metadata).to_owned(),
                    a.metadata.name.clone(),
                )
            })
            .collect(),
        None => vec![(
            args.namespace.clone(),
            args.name
                .clone()
                .ok_or_else(|| Failure::Usage("--name must be set".into()))?,
        )],
    };
    check_cluster(&target)?;
    let mut errors = Vec::new();
    for (ns, name) in &accounts {
        if let Err(e) = delete_one(&target, ns, name) {
            errors.push(format!("deleting iamserviceaccount \"{ns}/{name}\": {e:#}"));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Failure::Refused(errors.join("\n")))
    }
}

fn delete_one(target: &Target, ns: &str, name: &str) -> anyhow::Result<()> {
    let who = format!("{ns}/{name}");
    let path = format!(
        "/clusters/{}/podid/service-accounts/{ns}/{name}",
        target.cluster
    );
    let account = match target.eks.json("GET", &path, "", None) {
        Ok(a) => Some(a),
        Err(e) if roles::is_code(&e, "ResourceNotFoundException") => None,
        Err(e) => return Err(e),
    };
    if let Some(role) = account
        .as_ref()
        .and_then(|a| a.pointer("/metadata/annotations/eks.amazonaws.com~1role-arn"))
        .and_then(Value::as_str)
        && roles::made_for(
            &target.iam,
            role,
            &target.cluster,
            (IAMSERVICEACCOUNT_TAG, &who),
        )?
    {
        info(&format!("delete IAM role for serviceaccount {who:?}"));
        roles::delete_role(&target.iam, roles::role_name_of(role))?;
    }
    match account {
        None => info(&format!("serviceaccount {who:?} was already deleted")),
        Some(a)
            if a.pointer("/metadata/labels/app.kubernetes.io~1managed-by")
                .and_then(Value::as_str)
                == Some(MANAGED_BY.1) =>
        {
            target.eks.json("DELETE", &path, "", None)?;
            info(&format!("deleted serviceaccount {who:?}"));
        }
        Some(_) => info(&format!(
            "serviceaccount {who:?} was not created by eksctl; will not be deleted"
        )),
    }
    Ok(())
}
