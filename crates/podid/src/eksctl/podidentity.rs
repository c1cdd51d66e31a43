//! `podid create|get|update|delete podidentityassociation`: eksctl's commands, from flags or
//! from `iam.podIdentityAssociations` of a ClusterConfig file.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::config::{PodIdentityAssociation, WellKnownPolicies, texts};
use super::roles::{self, RoleSpec};
use super::tasks::{self, Level, info, log};
use super::{Failure, General, Output, Target, agent_installed, check_cluster, key_values, list};
use crate::aws_client::Client;

/// `create podidentityassociation`.
#[derive(Debug, clap::Args)]
pub(crate) struct CreateArgs {
    #[command(flatten)]
    general: General,
    /// Namespace the service account belongs to.
    #[arg(long)]
    namespace: Option<String>,
    /// Name of the service account.
    #[arg(long)]
    service_account_name: Option<String>,
    /// ARN of the IAM role to be associated with the service account.
    #[arg(long)]
    role_arn: Option<String>,
    /// Set a custom name for the created role.
    #[arg(long)]
    role_name: Option<String>,
    /// ARN of the policy that is used to set the permission boundary for the role.
    #[arg(long, visible_alias = "permission-boundary-arn", value_name = "ARN")]
    permissions_boundary_arn: Option<String>,
    /// List of ARNs of the IAM permission policies to attach (comma-separated).
    #[arg(long, value_name = "ARNS")]
    permission_policy_arns: Option<String>,
    /// Used to attach common IAM policies (comma-separated: imageBuilder, autoScaler,
    /// awsLoadBalancerController, externalDNS, certManager, ebsCSIController,
    /// efsCSIController).
    #[arg(long, value_name = "NAMES")]
    well_known_policies: Option<String>,
    /// AWS tags to attach to the PodIdentityAssociation (k1=v1,k2=v2).
    #[arg(long, value_parser = key_values)]
    tags: Option<BTreeMap<String, String>>,
    /// Create the service account (podid's service-account API) if it does not exist.
    #[arg(long)]
    create_service_account: bool,
    /// ARN of the target IAM role for cross-account access (default to empty string for no
    /// cross-account access).
    #[arg(long, value_name = "ARN")]
    target_role_arn: Option<String>,
    /// Disable session tags added by EKS Pod Identity.
    #[arg(long)]
    disable_session_tags: bool,
    /// Optional policy that applies additional restrictions to this pod identity association
    /// beyond the IAM policies attached to the IAM role (JSON).
    #[arg(long, value_name = "JSON")]
    policy: Option<String>,
    /// How many associations are made at once.
    #[arg(long, default_value_t = 8, value_name = "N")]
    concurrency: usize,
}

/// `get podidentityassociation`.
#[derive(Debug, clap::Args)]
pub(crate) struct GetArgs {
    #[command(flatten)]
    general: General,
    /// Namespace the service account belongs to.
    #[arg(long)]
    namespace: Option<String>,
    /// Name of the service account.
    #[arg(long)]
    service_account_name: Option<String>,
    /// Specifies the output format (valid option: table, json, yaml).
    #[arg(long, short, value_enum, default_value_t)]
    output: Output,
    /// Accepted for eksctl's scripts: podid reads every page.
    #[arg(long, hide = true)]
    chunk_size: Option<u32>,
}

/// `update podidentityassociation`.
#[derive(Debug, clap::Args)]
pub(crate) struct UpdateArgs {
    #[command(flatten)]
    general: General,
    /// Namespace of the pod identity association.
    #[arg(long)]
    namespace: Option<String>,
    /// Service account name of the pod identity association.
    #[arg(long)]
    service_account_name: Option<String>,
    /// ARN of the IAM role to be associated with the service account.
    #[arg(long)]
    role_arn: Option<String>,
    /// ARN of the target IAM role for cross-account access ("" removes it).
    #[arg(long, value_name = "ARN")]
    target_role_arn: Option<String>,
    /// Disable session tags added by EKS Pod Identity.
    #[arg(long, overrides_with = "no_disable_session_tags")]
    disable_session_tags: bool,
    /// Enable session tags added by EKS Pod Identity.
    #[arg(long)]
    no_disable_session_tags: bool,
    /// Optional policy that applies additional restrictions to this pod identity association
    /// beyond the IAM policies attached to the IAM role.
    #[arg(long, value_name = "JSON")]
    policy: Option<String>,
}

/// `delete podidentityassociation`.
#[derive(Debug, clap::Args)]
pub(crate) struct DeleteArgs {
    #[command(flatten)]
    general: General,
    /// Namespace of the pod identity association.
    #[arg(long)]
    namespace: Option<String>,
    /// Service account name of the pod identity association.
    #[arg(long)]
    service_account_name: Option<String>,
}

pub(crate) fn run_create(args: CreateArgs) -> Result<(), Failure> {
    let flags = [
        ("namespace", args.namespace.is_some()),
        ("service-account-name", args.service_account_name.is_some()),
        ("role-arn", args.role_arn.is_some()),
        ("role-name", args.role_name.is_some()),
        (
            "permissions-boundary-arn",
            args.permissions_boundary_arn.is_some(),
        ),
        (
            "permission-policy-arns",
            args.permission_policy_arns.is_some(),
        ),
        ("well-known-policies", args.well_known_policies.is_some()),
        ("create-service-account", args.create_service_account),
        ("target-role-arn", args.target_role_arn.is_some()),
        ("disable-session-tags", args.disable_session_tags),
        ("policy", args.policy.is_some()),
    ];
    let target = args.general.target(&flags, true)?;
    let (associations, metadata_tags) = match &target.config {
        Some(config) => {
            let associations = config
                .iam
                .as_ref()
                .and_then(|i| i.pod_identity_associations.clone())
                .unwrap_or_default();
            validate(&associations, true)?;
            let tags = config
                .metadata
                .as_ref()
                .and_then(|m| m.tags.as_ref())
                .map(texts)
                .unwrap_or_default();
            (associations, tags)
        }
        None => (vec![from_flags(&args)?], BTreeMap::new()),
    };
    check_cluster(&target)?;
    if !agent_installed(&target)? {
        return Err(Failure::Refused(format!(
            "the \"{agent}\" addon must be installed to create pod identity associations; please enable it using `podid create addon --cluster={} --name={agent}`",
            target.cluster,
            agent = super::AGENT_ADDON
        )));
    }
    create_associations(&target, &associations, &metadata_tags, args.concurrency)
}

/// Makes the associations (and their roles and service accounts), in parallel. If any fails,
/// everything this run made is removed again.
pub(crate) fn create_associations(
    target: &Target,
    associations: &[PodIdentityAssociation],
    metadata_tags: &BTreeMap<String, String>,
    concurrency: usize,
) -> Result<(), Failure> {
    let plan: Vec<Vec<String>> = associations.iter().map(create_steps).collect();
    info(&tasks::describe_tree(&plan));
    let results = tasks::run_parallel(associations, concurrency, |pia| {
        create_one(target, pia, metadata_tags)
    });
    let mut made = Vec::new();
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(m) => made.push(m),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        info("all tasks were completed successfully");
        return Ok(());
    }
    if !made.is_empty() {
        log(
            Level::Warning,
            &format!(
                "{} of {} pod identity associations failed; removing the {} this command made",
                errors.len(),
                associations.len(),
                made.len()
            ),
        );
        for m in &made {
            undo(target, m);
        }
    }
    Err(Failure::Refused(errors.join("\n")))
}

/// eksctl's task descriptions for one association.
fn create_steps(pia: &PodIdentityAssociation) -> Vec<String> {
    let who = format!("{}/{}", pia.namespace, pia.service_account_name);
    let mut steps = Vec::new();
    if pia.role_arn.is_empty() {
        steps.push(format!(
            "create IAM role for pod identity association for service account {who:?}"
        ));
    }
    if pia.create_service_account {
        steps.push(format!(
            "create service account {who:?}, if it does not already exist"
        ));
    }
    steps.push(format!(
        "create pod identity association for service account {who:?}"
    ));
    steps
}

/// What one association's creation made, to undo it.
struct Made {
    association: Option<String>,
    role: Option<String>,
    service_account: Option<(String, String)>,
}

fn create_one(
    target: &Target,
    pia: &PodIdentityAssociation,
    metadata_tags: &BTreeMap<String, String>,
) -> Result<Made, String> {
    let (ns, sa) = (&pia.namespace, &pia.service_account_name);
    let mut made = Made {
        association: None,
        role: None,
        service_account: None,
    };
    let result = (|| -> anyhow::Result<()> {
        let role_arn = if pia.role_arn.is_empty() {
            let spec = role_spec(&target.cluster, pia, metadata_tags);
            let arn = roles::create_role(&target.iam, &spec).map_err(|e| {
                e.context(format!(
                    "creating IAM role for pod identity association for service account {sa} in namespace {ns}"
                ))
            })?;
            made.role = Some(roles::role_name_of(&arn).to_owned());
            arn
        } else {
            pia.role_arn.clone()
        };
        if pia.create_service_account && create_service_account(target, ns, sa)? {
            made.service_account = Some((ns.clone(), sa.clone()));
        }
        let mut body = json!({
            "namespace": ns,
            "serviceAccount": sa,
            "roleArn": role_arn,
            "tags": texts(&pia.tags),
        });
        if let Some(map) = body.as_object_mut() {
            if !pia.target_role_arn.is_empty() {
                map.insert("targetRoleArn".into(), pia.target_role_arn.clone().into());
            }
            if pia.disable_session_tags {
                map.insert("disableSessionTags".into(), true.into());
            }
            if let Some(policy) = policy_text(pia.policy.as_ref()) {
                map.insert("policy".into(), policy.into());
            }
        }
        let created = target
            .eks
            .json(
                "POST",
                &format!("/clusters/{}/pod-identity-associations", target.cluster),
                "",
                Some(&body),
            )
            .map_err(|e| {
                e.context(format!(
                    "creating pod identity association for service account {sa:?} in namespace {ns:?}"
                ))
            })?;
        made.association = created
            .pointer("/association/associationId")
            .and_then(Value::as_str)
            .map(str::to_owned);
        info(&format!(
            "created pod identity association for service account {sa:?} in namespace {ns:?}"
        ));
        // A cluster with the `aws` credential backend: what could not be checked upstream.
        for skipped in created
            .pointer("/association/podidUpstreamChecks/skipped")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            log(Level::Warning, &format!("not checked: {skipped}"));
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(made),
        Err(e) => {
            undo(target, &made);
            Err(format!("{e:#}"))
        }
    }
}

/// Removes what a creation made.
fn undo(target: &Target, made: &Made) {
    if let Some(id) = &made.association {
        let path = format!(
            "/clusters/{}/pod-identity-associations/{id}",
            target.cluster
        );
        if let Err(e) = target.eks.json("DELETE", &path, "", None) {
            log(
                Level::Warning,
                &format!("could not remove association {id}: {e:#}"),
            );
        }
    }
    if let Some(role) = &made.role
        && let Err(e) = roles::delete_role(&target.iam, role)
    {
        log(
            Level::Warning,
            &format!("could not remove role {role:?}: {e:#}"),
        );
    }
    if let Some((ns, sa)) = &made.service_account {
        let path = format!(
            "/clusters/{}/podid/service-accounts/{ns}/{sa}",
            target.cluster
        );
        if let Err(e) = target.eks.json("DELETE", &path, "", None) {
            log(
                Level::Warning,
                &format!("could not remove service account {ns}/{sa}: {e:#}"),
            );
        }
    }
}

/// The role eksctl would make for an association.
pub(crate) fn role_spec(
    cluster: &str,
    pia: &PodIdentityAssociation,
    metadata_tags: &BTreeMap<String, String>,
) -> RoleSpec {
    let (ns, sa) = (&pia.namespace, &pia.service_account_name);
    let mut tags = metadata_tags.clone();
    tags.extend(texts(&pia.tags));
    tags.insert(roles::CLUSTER_TAG.into(), cluster.into());
    tags.insert(roles::CLUSTER_TAG_OLD.into(), cluster.into());
    tags.insert(roles::ASSOCIATION_TAG.into(), format!("{ns}/{sa}"));
    let inline = pia.permission_policy.as_ref().map(|document| {
        let name = if pia.permission_policy_name.is_empty() {
            "Policy1".to_owned()
        } else {
            pia.permission_policy_name.clone()
        };
        (name, Value::Object(document.clone()))
    });
    RoleSpec {
        name: (!pia.role_name.is_empty()).then(|| pia.role_name.clone()),
        stack: format!("eksctl-{cluster}-podidentityrole-{ns}-{sa}"),
        trust: json!({"Version": "2012-10-17", "Statement": [roles::pod_identity_trust_statement()]}),
        inline,
        managed: pia.permission_policy_arns.clone(),
        well_known: pia.well_known_policies,
        assume: (!pia.target_role_arn.is_empty()).then(|| pia.target_role_arn.clone()),
        boundary: (!pia.permissions_boundary_arn.is_empty())
            .then(|| pia.permissions_boundary_arn.clone()),
        tags,
    }
}

/// Creates a service account labelled as eksctl labels the ones it manages; whether it was
/// created (false: it existed).
fn create_service_account(target: &Target, ns: &str, sa: &str) -> anyhow::Result<bool> {
    let body = json!({"metadata": {
        "namespace": ns,
        "name": sa,
        "labels": {"app.kubernetes.io/managed-by": "eksctl"},
    }});
    match target.eks.json(
        "POST",
        &format!("/clusters/{}/podid/service-accounts", target.cluster),
        "",
        Some(&body),
    ) {
        Ok(_) => {
            info(&format!("created serviceaccount \"{ns}/{sa}\""));
            Ok(true)
        }
        Err(e) if roles::is_code(&e, "ResourceInUseException") => {
            info(&format!("serviceaccount \"{ns}/{sa}\" already exists"));
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// A session policy as text: a string as given, a document as JSON.
fn policy_text(policy: Option<&Value>) -> Option<String> {
    match policy? {
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// The association the flags describe, checked as eksctl checks them.
fn from_flags(args: &CreateArgs) -> Result<PodIdentityAssociation, Failure> {
    let usage = |m: &str| Failure::Usage(m.to_owned());
    let namespace = args
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| usage("--namespace is required"))?;
    let service_account_name = args
        .service_account_name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| usage("--service-account-name is required"))?;
    let policy_arns = args
        .permission_policy_arns
        .as_deref()
        .map(list)
        .unwrap_or_default();
    let well_known = args
        .well_known_policies
        .as_deref()
        .map(well_known_from_names)
        .transpose()?
        .unwrap_or_default();
    let role_arn = args.role_arn.clone().unwrap_or_default();
    if role_arn.is_empty() && policy_arns.is_empty() && !well_known.any() {
        return Err(usage(
            "at least one of the following flags must be specified: --role-arn, --permission-policy-arns, --well-known-policies",
        ));
    }
    if !role_arn.is_empty() && !policy_arns.is_empty() {
        return Err(usage(
            "--permission-policy-arns cannot be specified when --role-arn is set",
        ));
    }
    if !role_arn.is_empty() && well_known.any() {
        return Err(usage(
            "--well-known-policies cannot be specified when --role-arn is set",
        ));
    }
    if args.policy.is_some() && !args.disable_session_tags {
        return Err(usage(
            "--disable-session-tags must be set to true when using --policy",
        ));
    }
    Ok(PodIdentityAssociation {
        namespace,
        service_account_name,
        role_arn,
        create_service_account: args.create_service_account,
        role_name: args.role_name.clone().unwrap_or_default(),
        permissions_boundary_arn: args.permissions_boundary_arn.clone().unwrap_or_default(),
        permission_policy_arns: policy_arns,
        well_known_policies: well_known,
        tags: args
            .tags
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, super::config::YamlString(v)))
            .collect(),
        target_role_arn: args.target_role_arn.clone().unwrap_or_default(),
        disable_session_tags: args.disable_session_tags,
        policy: args.policy.clone().map(Value::String),
        ..PodIdentityAssociation::default()
    })
}

/// `autoScaler,externalDNS` as the families.
fn well_known_from_names(text: &str) -> Result<WellKnownPolicies, Failure> {
    let mut families = WellKnownPolicies::default();
    for name in list(text) {
        let flag = match name.as_str() {
            "imageBuilder" => &mut families.image_builder,
            "autoScaler" => &mut families.auto_scaler,
            "awsLoadBalancerController" => &mut families.aws_load_balancer_controller,
            "externalDNS" => &mut families.external_dns,
            "certManager" => &mut families.cert_manager,
            "ebsCSIController" => &mut families.ebs_csi_controller,
            "efsCSIController" => &mut families.efs_csi_controller,
            other => {
                return Err(Failure::Usage(format!(
                    "invalid well-known policy {other:?}: the families are imageBuilder, autoScaler, awsLoadBalancerController, externalDNS, certManager, ebsCSIController, efsCSIController"
                )));
            }
        };
        *flag = true;
    }
    Ok(families)
}

/// eksctl's rules for `iam.podIdentityAssociations` (its texts), and podid's: a service
/// account once, `permissionPolicyName` only with `permissionPolicy`, `policy` only with
/// `disableSessionTags`.
pub(crate) fn validate(
    associations: &[PodIdentityAssociation],
    is_create: bool,
) -> Result<(), Failure> {
    if associations.is_empty() {
        return Err(Failure::Usage(
            "no iam.podIdentityAssociations specified in the config file".into(),
        ));
    }
    let invalid = |m: String| Err(Failure::Usage(m));
    for (i, pia) in associations.iter().enumerate() {
        let path = format!("podIdentityAssociations[{i}]");
        if pia.namespace.is_empty() {
            return invalid(format!("{path}.namespace must be set"));
        }
        if pia.service_account_name.is_empty() {
            return invalid(format!("{path}.serviceAccountName must be set"));
        }
        let who = format!("{}/{}", pia.namespace, pia.service_account_name);
        if associations.iter().take(i).any(|other| {
            other.namespace == pia.namespace
                && other.service_account_name == pia.service_account_name
        }) {
            return invalid(format!(
                "<namespace>/<serviceAccountName> of {path} {who:?} is not unique"
            ));
        }
        if !is_create {
            continue;
        }
        if let Some(why) = role_source_rule(pia, &path) {
            return invalid(why);
        }
        let inline = pia
            .permission_policy
            .as_ref()
            .is_some_and(|p| !p.is_empty());
        if !pia.permission_policy_name.is_empty() {
            if !inline {
                return invalid(format!(
                    "{path}.permissionPolicyName requires permissionPolicy to be set"
                ));
            }
            if !pia
                .permission_policy_name
                .chars()
                .any(|c| c.is_ascii_alphanumeric())
            {
                return invalid(format!(
                    "{path}.permissionPolicyName must contain at least one alphanumeric character"
                ));
            }
        }
        if policy_text(pia.policy.as_ref()).is_some() && !pia.disable_session_tags {
            return invalid(format!(
                "{path}.disableSessionTags must be set to true when {path}.policy is set"
            ));
        }
    }
    Ok(())
}

/// eksctl's rule for where an association's role comes from (its texts): `roleARN`, or
/// policies to make one with, not both. Also the rule of an add-on's associations.
pub(crate) fn role_source_rule(pia: &PodIdentityAssociation, path: &str) -> Option<String> {
    let inline = pia
        .permission_policy
        .as_ref()
        .is_some_and(|p| !p.is_empty());
    let given = [
        ("permissionPolicy", inline),
        (
            "permissionPolicyARNs",
            !pia.permission_policy_arns.is_empty(),
        ),
        ("wellKnownPolicies", pia.well_known_policies.any()),
    ];
    if pia.role_arn.is_empty() {
        return (!given.iter().any(|(_, set)| *set)).then(|| format!(
            "at least one of the following must be specified: {path}.roleARN, {path}.permissionPolicy, {path}.permissionPolicyARNs, {path}.wellKnownPolicies"
        ));
    }
    given
        .iter()
        .find(|(_, set)| *set)
        .map(|(field, _)| format!("{path}.{field} cannot be specified when {path}.roleARN is set"))
}

/// An association as listed: `associationArn`, `associationId`, `namespace`,
/// `serviceAccount`, `ownerArn`.
pub(crate) fn list_associations(
    eks: &Client,
    cluster: &str,
    namespace: Option<&str>,
    service_account: Option<&str>,
) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut query = Vec::new();
        if let Some(ns) = namespace {
            query.push(format!("namespace={}", podid_sigv4::uri_encoded(ns)));
        }
        if let Some(sa) = service_account {
            query.push(format!("serviceAccount={}", podid_sigv4::uri_encoded(sa)));
        }
        if let Some(t) = &token {
            query.push(format!("nextToken={}", podid_sigv4::uri_encoded(t)));
        }
        query.sort();
        let page = eks.json(
            "GET",
            &format!("/clusters/{cluster}/pod-identity-associations"),
            &query.join("&"),
            None,
        )?;
        if let Some(items) = page.get("associations").and_then(Value::as_array) {
            out.extend(items.iter().cloned());
        }
        match page.get("nextToken").and_then(Value::as_str) {
            Some(next) => token = Some(next.to_owned()),
            None => return Ok(out),
        }
    }
}

pub(crate) fn describe_association(eks: &Client, cluster: &str, id: &str) -> anyhow::Result<Value> {
    Ok(eks
        .json(
            "GET",
            &format!("/clusters/{cluster}/pod-identity-associations/{id}"),
            "",
            None,
        )?
        .get("association")
        .cloned()
        .unwrap_or(Value::Null))
}

pub(crate) fn run_get(args: GetArgs) -> Result<(), Failure> {
    let target = args.general.target(&[], false)?;
    if args.service_account_name.is_some() && args.namespace.is_none() {
        return Err(Failure::Usage(
            "--namespace must be set in order to specify --service-account-name".into(),
        ));
    }
    let listed = list_associations(
        &target.eks,
        &target.cluster,
        args.namespace.as_deref(),
        args.service_account_name.as_deref(),
    )?;
    let described = tasks::run_parallel(&listed, 8, |summary| {
        let id = summary
            .get("associationId")
            .and_then(Value::as_str)
            .unwrap_or_default();
        describe_association(&target.eks, &target.cluster, id).map_err(|e| {
            e.context(format!(
                "failed to describe pod identity association with associationID: {id}"
            ))
        })
    });
    let mut rows = Vec::new();
    for association in described {
        let association = association?;
        let field = |name: &str| {
            association
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let mut row = Map::new();
        row.insert("AssociationARN".into(), field("associationArn").into());
        row.insert("Namespace".into(), field("namespace").into());
        row.insert("ServiceAccountName".into(), field("serviceAccount").into());
        row.insert("RoleARN".into(), field("roleArn").into());
        row.insert("OwnerARN".into(), field("ownerArn").into());
        rows.push(row);
    }
    super::print_rows(
        &rows,
        &[
            ("ASSOCIATION ARN", "AssociationARN"),
            ("NAMESPACE", "Namespace"),
            ("SERVICE ACCOUNT NAME", "ServiceAccountName"),
            ("IAM ROLE ARN", "RoleARN"),
            ("OWNER ARN", "OwnerARN"),
        ],
        args.output,
    )?;
    Ok(())
}

/// The one association of a service account, described; `None` if it has none.
fn find(target: &Target, ns: &str, sa: &str) -> anyhow::Result<Option<Value>> {
    let listed = list_associations(&target.eks, &target.cluster, Some(ns), Some(sa))?;
    match listed.as_slice() {
        [] => Ok(None),
        [one] => {
            let id = one
                .get("associationId")
                .and_then(Value::as_str)
                .unwrap_or_default();
            describe_association(&target.eks, &target.cluster, id).map(Some)
        }
        many => anyhow::bail!(
            "expected to find only 1 pod identity association for \"{ns}/{sa}\"; got {}",
            many.len()
        ),
    }
}

/// Whether podid (or eksctl) made `role_arn` for this association: its tags say so.
fn owned_role(target: &Target, role_arn: &str, ns: &str, sa: &str) -> anyhow::Result<bool> {
    roles::made_for(
        &target.iam,
        role_arn,
        &target.cluster,
        (roles::ASSOCIATION_TAG, &format!("{ns}/{sa}")),
    )
}

pub(crate) fn run_update(args: UpdateArgs) -> Result<(), Failure> {
    let flags = [
        ("namespace", args.namespace.is_some()),
        ("service-account-name", args.service_account_name.is_some()),
        ("role-arn", args.role_arn.is_some()),
    ];
    let session_tags = match (args.disable_session_tags, args.no_disable_session_tags) {
        (true, _) => Some(true),
        (false, true) => Some(false),
        _ => None,
    };
    if args.policy.is_some() && session_tags == Some(false) {
        return Err(Failure::Usage(
            "--disable-session-tags must be set to true when using --policy".into(),
        ));
    }
    let target = args.general.target(&flags, false)?;
    let associations = match &target.config {
        Some(config) => {
            let list = config
                .iam
                .as_ref()
                .and_then(|i| i.pod_identity_associations.clone())
                .unwrap_or_default();
            validate(&list, false)?;
            list
        }
        None => {
            let namespace = args
                .namespace
                .clone()
                .ok_or_else(|| Failure::Usage("--namespace is required".into()))?;
            let service_account_name = args
                .service_account_name
                .clone()
                .ok_or_else(|| Failure::Usage("--service-account-name is required".into()))?;
            let role_arn = args
                .role_arn
                .clone()
                .ok_or_else(|| Failure::Usage("--role-arn is required".into()))?;
            vec![PodIdentityAssociation {
                namespace,
                service_account_name,
                role_arn,
                ..PodIdentityAssociation::default()
            }]
        }
    };
    check_cluster(&target)?;
    let mut errors = Vec::new();
    for pia in &associations {
        let who = format!("{}/{}", pia.namespace, pia.service_account_name);
        let changes = Changes {
            target_role_arn: args
                .target_role_arn
                .clone()
                .or_else(|| (!pia.target_role_arn.is_empty()).then(|| pia.target_role_arn.clone())),
            disable_session_tags: session_tags
                .or_else(|| target.config.as_ref().map(|_| pia.disable_session_tags)),
            policy: args
                .policy
                .clone()
                .or_else(|| policy_text(pia.policy.as_ref())),
        };
        if let Err(e) = update_one(&target, pia, &changes) {
            errors.push(format!(
                "error updating pod identity association {who:?}: {e:#}"
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Failure::Refused(errors.join("\n")))
    }
}

/// What an update changes besides the role.
struct Changes {
    target_role_arn: Option<String>,
    disable_session_tags: Option<bool>,
    policy: Option<String>,
}

fn update_one(
    target: &Target,
    pia: &PodIdentityAssociation,
    changes: &Changes,
) -> anyhow::Result<()> {
    let (ns, sa) = (&pia.namespace, &pia.service_account_name);
    let who = format!("{ns}/{sa}");
    let Some(current) = find(target, ns, sa)? else {
        anyhow::bail!("pod identity association does not exist");
    };
    let id = current
        .get("associationId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if let Some(owner) = current.get("ownerArn").and_then(Value::as_str) {
        anyhow::bail!(
            "cannot update podidentityassociation {who} as it is in use by addon {owner}; please use `podid update addon` instead"
        );
    }
    let current_role = current
        .get("roleArn")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let owned = owned_role(target, &current_role, ns, sa)?;
    let role_changes = pia.permission_policy.is_some()
        || !pia.permission_policy_arns.is_empty()
        || pia.well_known_policies.any()
        || !pia.permissions_boundary_arn.is_empty()
        || !pia.role_name.is_empty();
    let mut new_role = None;
    if owned {
        if !pia.role_arn.is_empty() && pia.role_arn != current_role {
            anyhow::bail!(
                "cannot change podIdentityAssociation.roleARN since the role was created by podid"
            );
        }
        if role_changes {
            if !pia.role_name.is_empty() && pia.role_name != roles::role_name_of(&current_role) {
                anyhow::bail!("cannot update role name of a role created by podid");
            }
            let spec = role_spec(&target.cluster, pia, &BTreeMap::new());
            roles::replace_policies(&target.iam, roles::role_name_of(&current_role), &spec)?;
            info(&format!(
                "updated IAM resources for {who:?} (pod identity association ID: {id})"
            ));
        } else {
            info(&format!(
                "IAM resources for {who} (pod identity association ID: {id}) are already up-to-date"
            ));
        }
    } else {
        if pia.role_arn.is_empty() {
            anyhow::bail!(
                "podIdentityAssociation.roleARN is required since the role was not created by podid"
            );
        }
        if role_changes {
            anyhow::bail!(
                "only namespace, serviceAccountName, roleARN and policy can be specified if the role was not created by podid"
            );
        }
        new_role = Some(pia.role_arn.clone());
    }
    let mut body = Map::new();
    if let Some(role) = &new_role {
        body.insert("roleArn".into(), role.clone().into());
    }
    if let Some(t) = &changes.target_role_arn {
        body.insert("targetRoleArn".into(), t.clone().into());
    }
    if let Some(d) = changes.disable_session_tags {
        body.insert("disableSessionTags".into(), d.into());
    }
    if let Some(p) = &changes.policy {
        body.insert("policy".into(), p.clone().into());
    }
    if body.is_empty() {
        return Ok(());
    }
    target.eks.json(
        "POST",
        &format!(
            "/clusters/{}/pod-identity-associations/{id}",
            target.cluster
        ),
        "",
        Some(&Value::Object(body)),
    )?;
    if let Some(role) = new_role {
        info(&format!(
            "updated role ARN {role:?} for pod identity association {who:?}"
        ));
    }
    Ok(())
}

pub(crate) fn run_delete(args: DeleteArgs) -> Result<(), Failure> {
    let flags = [
        ("namespace", args.namespace.is_some()),
        ("service-account-name", args.service_account_name.is_some()),
    ];
    let target = args.general.target(&flags, false)?;
    let associations = match &target.config {
        Some(config) => {
            let list = config
                .iam
                .as_ref()
                .and_then(|i| i.pod_identity_associations.clone())
                .unwrap_or_default();
            validate(&list, false)?;
            list
        }
        None => vec![PodIdentityAssociation {
            namespace: args
                .namespace
                .clone()
                .ok_or_else(|| Failure::Usage("--namespace is required".into()))?,
            service_account_name: args
                .service_account_name
                .clone()
                .ok_or_else(|| Failure::Usage("--service-account-name is required".into()))?,
            ..PodIdentityAssociation::default()
        }],
    };
    check_cluster(&target)?;
    let plan: Vec<Vec<String>> = associations
        .iter()
        .map(|pia| {
            let who = format!("{}/{}", pia.namespace, pia.service_account_name);
            vec![
                format!("delete pod identity association {who:?}"),
                format!("delete service account {who:?}, if it exists and is managed by eksctl"),
            ]
        })
        .collect();
    info(&tasks::describe_tree(&plan));
    let results = tasks::run_parallel(&associations, 8, |pia| delete_one(&target, pia));
    let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    if errors.is_empty() {
        info("all tasks were completed successfully");
        Ok(())
    } else {
        Err(Failure::Refused(errors.join("\n")))
    }
}

fn delete_one(target: &Target, pia: &PodIdentityAssociation) -> Result<(), String> {
    let (ns, sa) = (&pia.namespace, &pia.service_account_name);
    let who = format!("{ns}/{sa}");
    let result = (|| -> anyhow::Result<()> {
        let Some(current) = find(target, ns, sa)? else {
            log(
                Level::Warning,
                &format!("pod identity association {who:?} not found"),
            );
            return Ok(());
        };
        if let Some(owner) = current.get("ownerArn").and_then(Value::as_str) {
            anyhow::bail!(
                "cannot delete podidentityassociation {who} as it is in use by addon {owner}; please use `podid update addon` or `podid delete addon` instead"
            );
        }
        let id = current
            .get("associationId")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let role = current
            .get("roleArn")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let owned = owned_role(target, role, ns, sa)?;
        target.eks.json(
            "DELETE",
            &format!(
                "/clusters/{}/pod-identity-associations/{id}",
                target.cluster
            ),
            "",
            None,
        )?;
        info(&format!("deleted pod identity association {who:?}"));
        if owned {
            info(&format!(
                "deleting IAM role {:?} for pod identity association {who:?}",
                roles::role_name_of(role)
            ));
            roles::delete_role(&target.iam, roles::role_name_of(role))?;
        }
        delete_managed_service_account(target, ns, sa)
    })();
    result.map_err(|e| format!("error deleting pod identity association {who:?}: {e:#}"))
}

/// Deletes a service account if eksctl (or podid for eksctl) made it.
fn delete_managed_service_account(target: &Target, ns: &str, sa: &str) -> anyhow::Result<()> {
    let path = format!(
        "/clusters/{}/podid/service-accounts/{ns}/{sa}",
        target.cluster
    );
    let account = match target.eks.json("GET", &path, "", None) {
        Ok(account) => account,
        Err(e) if roles::is_code(&e, "ResourceNotFoundException") => return Ok(()),
        Err(e) => return Err(e),
    };
    let managed = account
        .pointer("/metadata/labels/app.kubernetes.io~1managed-by")
        .and_then(Value::as_str)
        == Some("eksctl");
    if !managed {
        info(&format!(
            "serviceaccount \"{ns}/{sa}\" was not created by eksctl; will not be deleted"
        ));
        return Ok(());
    }
    target.eks.json("DELETE", &path, "", None)?;
    info(&format!("deleted serviceaccount \"{ns}/{sa}\""));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pia(ns: &str, sa: &str) -> PodIdentityAssociation {
        PodIdentityAssociation {
            namespace: ns.into(),
            service_account_name: sa.into(),
            ..PodIdentityAssociation::default()
        }
    }

    fn message(result: Result<(), Failure>) -> String {
        result.err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn eksctl_rules_with_eksctl_texts() {
        assert_eq!(
            message(validate(&[], true)),
            "no iam.podIdentityAssociations specified in the config file"
        );
        assert_eq!(
            message(validate(&[pia("", "a")], true)),
            "podIdentityAssociations[0].namespace must be set"
        );
        assert_eq!(
            message(validate(&[pia("n", "")], true)),
            "podIdentityAssociations[0].serviceAccountName must be set"
        );
        assert_eq!(
            message(validate(&[pia("n", "a")], true)),
            "at least one of the following must be specified: podIdentityAssociations[0].roleARN, podIdentityAssociations[0].permissionPolicy, podIdentityAssociations[0].permissionPolicyARNs, podIdentityAssociations[0].wellKnownPolicies"
        );
        // Not creating: only the names count.
        assert!(validate(&[pia("n", "a")], false).is_ok());
        let mut both = pia("n", "a");
        both.role_arn = "arn:aws:iam::111122223333:role/r".into();
        both.permission_policy_arns = vec!["arn:aws:iam::aws:policy/ReadOnlyAccess".into()];
        assert_eq!(
            message(validate(&[both.clone()], true)),
            "podIdentityAssociations[0].permissionPolicyARNs cannot be specified when podIdentityAssociations[0].roleARN is set"
        );
        both.permission_policy_arns.clear();
        both.well_known_policies.auto_scaler = true;
        assert_eq!(
            message(validate(&[both.clone()], true)),
            "podIdentityAssociations[0].wellKnownPolicies cannot be specified when podIdentityAssociations[0].roleARN is set"
        );
        both.well_known_policies = WellKnownPolicies::default();
        assert_eq!(
            message(validate(&[both.clone(), both.clone()], true)),
            "<namespace>/<serviceAccountName> of podIdentityAssociations[1] \"n/a\" is not unique"
        );
        both.policy = Some(Value::String("{}".into()));
        assert_eq!(
            message(validate(&[both], true)),
            "podIdentityAssociations[0].disableSessionTags must be set to true when podIdentityAssociations[0].policy is set"
        );
    }

    #[test]
    fn well_known_names_are_eksctl_s() {
        let families = well_known_from_names("autoScaler, externalDNS")
            .ok()
            .unwrap_or_default();
        assert!(families.auto_scaler && families.external_dns && !families.cert_manager);
        assert!(well_known_from_names("autoscaler").is_err());
    }
}
