//! `podid create|get|delete addon`: eksctl's add-on commands over EKS's add-on API, with the
//! roles of an add-on's Pod Identity associations made (and removed) as eksctl makes them.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::config::{Addon, IamServiceAccount, PodIdentityAssociation, ServiceAccountMeta, texts};
use super::roles::{self, RoleSpec};
use super::tasks::{Level, info, log};
use super::{AGENT_ADDON, Failure, General, Output, Target, agent_installed, check_cluster};

/// `create addon`.
#[derive(Debug, clap::Args)]
pub(crate) struct CreateArgs {
    #[command(flatten)]
    general: General,
    /// Add-on name.
    #[arg(long)]
    name: Option<String>,
    /// Add-on version. Use `aws eks describe-addon-versions` to discover a version or set to
    /// "latest".
    #[arg(long)]
    version: Option<String>,
    /// Add-on serviceAccountRoleARN.
    #[arg(long, value_name = "ARN")]
    service_account_role_arn: Option<String>,
    /// Apply recommended pod identity associations for the addon(s), if supported.
    #[arg(long)]
    auto_apply_pod_identity_associations: bool,
    /// Force migrates an existing self-managed add-on to an EKS managed add-on (accepted;
    /// podid has no self-managed add-ons).
    #[arg(long)]
    force: bool,
    /// Wait for the addon creation to complete (podid's add-ons are active at once).
    #[arg(long)]
    wait: bool,
}

/// `get addon`.
#[derive(Debug, clap::Args)]
pub(crate) struct GetArgs {
    #[command(flatten)]
    general: General,
    /// Addon name.
    #[arg(long)]
    name: Option<String>,
    /// Specifies the output format (valid option: table, json, yaml).
    #[arg(long, short, value_enum, default_value_t)]
    output: Output,
}

/// `delete addon`.
#[derive(Debug, clap::Args)]
pub(crate) struct DeleteArgs {
    #[command(flatten)]
    general: General,
    /// Addon name.
    #[arg(long)]
    name: Option<String>,
    /// Delete the addon from the API but preserve its Kubernetes resources (and, as EKS
    /// does, its Pod Identity associations).
    #[arg(long)]
    preserve: bool,
}

pub(crate) fn run_create(args: CreateArgs) -> Result<(), Failure> {
    let flags = [
        ("name", args.name.is_some()),
        ("version", args.version.is_some()),
        (
            "service-account-role-arn",
            args.service_account_role_arn.is_some(),
        ),
    ];
    let target = args.general.target(&flags, true)?;
    let (addons, auto_apply) = match &target.config {
        Some(config) => (
            config.addons.clone().unwrap_or_default(),
            config
                .addons_config
                .as_ref()
                .is_some_and(|c| c.auto_apply_pod_identity_associations),
        ),
        None => (
            vec![Addon {
                name: args
                    .name
                    .clone()
                    .ok_or_else(|| Failure::Usage("no addons specified".into()))?,
                version: args.version.clone().map(super::config::YamlString),
                service_account_role_arn: args.service_account_role_arn.clone().unwrap_or_default(),
                ..Addon::default()
            }],
            false,
        ),
    };
    let auto_apply = auto_apply || args.auto_apply_pod_identity_associations;
    if addons.is_empty() {
        return Err(Failure::Usage("no addons specified".into()));
    }
    for addon in &addons {
        validate(addon)?;
    }
    check_cluster(&target)?;
    let metadata_tags = target
        .config
        .as_ref()
        .and_then(|c| c.metadata.as_ref())
        .and_then(|m| m.tags.as_ref())
        .map(texts)
        .unwrap_or_default();
    create_addons(&target, addons, auto_apply, &metadata_tags)
}

/// Creates the add-ons (the agent first), after checking that the agent is there or among
/// them if any add-on wants Pod Identity.
pub(crate) fn create_addons(
    target: &Target,
    mut addons: Vec<Addon>,
    auto_apply: bool,
    metadata_tags: &BTreeMap<String, String>,
) -> Result<(), Failure> {
    // The agent first: the others' associations need it.
    addons.sort_by_key(|a| a.name != AGENT_ADDON);
    let wants_pod_identity = |a: &Addon| {
        a.pod_identity_associations
            .as_ref()
            .is_some_and(|p| !p.is_empty())
            || a.use_default_pod_identity_associations
            || auto_apply
    };
    if addons
        .iter()
        .any(|a| wants_pod_identity(a) && a.name != AGENT_ADDON)
        && !addons.iter().any(|a| a.name == AGENT_ADDON)
        && !agent_installed(target)?
    {
        return Err(Failure::Refused(format!(
            "the \"{AGENT_ADDON}\" addon must be installed to create pod identity associations; please enable it using `podid create addon --cluster={} --name={AGENT_ADDON}`, or by adding it to the config file",
            target.cluster
        )));
    }
    for addon in &addons {
        create_one(target, addon, auto_apply, metadata_tags)?;
    }
    Ok(())
}

/// eksctl's rules for an add-on (its texts).
pub(crate) fn validate(addon: &Addon) -> Result<(), Failure> {
    let invalid = |why: &str| {
        Err(Failure::Usage(format!(
            "invalid configuration for {:?} addon: {why}",
            addon.name
        )))
    };
    if addon.name.is_empty() {
        return invalid("name is required");
    }
    let irsa = !addon.service_account_role_arn.is_empty()
        || !addon.attach_policy_arns.is_empty()
        || addon.attach_policy.is_some()
        || addon.well_known_policies.any();
    let pod_ids = addon
        .pod_identity_associations
        .as_ref()
        .is_some_and(|p| !p.is_empty());
    if irsa && pod_ids {
        return invalid(
            "cannot set IRSA config (`addon.ServiceAccountRoleARN`, `addon.AttachPolicyARNs`, `addon.AttachPolicy`, `addon.WellKnownPolicies`) and pod identity associations at the same time",
        );
    }
    let irsa_settings = [
        !addon.service_account_role_arn.is_empty(),
        !addon.attach_policy_arns.is_empty(),
        addon.attach_policy.is_some(),
        addon.well_known_policies.any(),
    ];
    if irsa_settings.iter().filter(|s| **s).count() > 1 {
        return invalid(
            "at most one of wellKnownPolicies, serviceAccountRoleARN, attachPolicyARNs and attachPolicy can be specified",
        );
    }
    if pod_ids && addon.name == AGENT_ADDON {
        return invalid(&format!(
            "cannot set pod identity associations for {AGENT_ADDON:?} addon"
        ));
    }
    if let Some(values) = &addon.configuration_values
        && configuration_json(values).is_none()
    {
        return invalid(&format!(
            "configurationValues: {values:?} is not valid, supported format(s) are: JSON and YAML"
        ));
    }
    for (i, pia) in addon.pod_identity_associations.iter().flatten().enumerate() {
        let path = format!("podIdentityAssociations[{i}]");
        if pia.service_account_name.is_empty() {
            return invalid(&format!("{path}.serviceAccountName must be set"));
        }
        if let Some(why) = super::podidentity::role_source_rule(pia, &path) {
            return invalid(&why);
        }
    }
    Ok(())
}

/// `configurationValues` as JSON text: JSON as given, YAML converted.
fn configuration_json(values: &str) -> Option<String> {
    if serde_json::from_str::<Value>(values).is_ok() {
        return Some(values.to_owned());
    }
    serde_norway::from_str::<Value>(values)
        .ok()
        .filter(Value::is_object)
        .map(|v| v.to_string())
}

fn create_one(
    target: &Target,
    addon: &Addon,
    auto_apply: bool,
    metadata_tags: &BTreeMap<String, String>,
) -> Result<(), Failure> {
    let name = &addon.name;
    let path = format!("/clusters/{}/addons", target.cluster);
    if target
        .eks
        .json("GET", &format!("{path}/{name}"), "", None)
        .is_ok()
    {
        info(&format!(
            "{name:?} addon is already present on the cluster, as an EKS managed addon, skipping creation"
        ));
        return Ok(());
    }
    let version = addon
        .version
        .as_ref()
        .map(|v| v.0.clone())
        .filter(|v| !v.is_empty() && v != "latest");
    let namespace = addon
        .namespace_config
        .as_ref()
        .and_then(|c| c.namespace.clone())
        .unwrap_or_else(|| "kube-system".into());
    let mut associations: Vec<PodIdentityAssociation> =
        addon.pod_identity_associations.clone().unwrap_or_default();
    if associations.is_empty()
        && addon.service_account_role_arn.is_empty()
        && (addon.use_default_pod_identity_associations || auto_apply)
    {
        info(&format!(
            "\"addonsConfig.autoApplyPodIdentityAssociations\" is set to true; will lookup recommended pod identity configuration for {name:?} addon"
        ));
        associations = recommended(target, name, version.as_deref())?;
        if !associations.is_empty() {
            info(&format!(
                "creating role using recommended policies for {name:?} addon"
            ));
        }
    }
    if !associations.is_empty() {
        info(&format!(
            "pod identity associations are set for {name:?} addon; will use these to configure required IAM permissions"
        ));
    } else if !addon.service_account_role_arn.is_empty() {
        info(&format!(
            "using provided ServiceAccountRoleARN {:?}",
            addon.service_account_role_arn
        ));
    }
    // Roles first; each made role is removed again if the add-on is not created.
    let mut made_roles: Vec<String> = Vec::new();
    let mut service_account_role = addon.service_account_role_arn.clone();
    if has_irsa_policies(addon) {
        log(
            Level::Warning,
            &format!(
                "IRSA has been deprecated; the recommended way to provide IAM permissions for {name:?} addon is via pod identity associations; after addon creation is completed, run `podid utils migrate-to-pod-identity`"
            ),
        );
        let arn = irsa_role(target, addon, version.as_deref(), &namespace, metadata_tags)?;
        made_roles.push(roles::role_name_of(&arn).to_owned());
        service_account_role = arn;
    }
    let mut pairs = Vec::new();
    for pia in &associations {
        let sa = &pia.service_account_name;
        let role_arn = if pia.role_arn.is_empty() {
            let spec = addon_role_spec(&target.cluster, name, &namespace, pia, metadata_tags);
            match roles::create_role(&target.iam, &spec) {
                Ok(arn) => {
                    made_roles.push(roles::role_name_of(&arn).to_owned());
                    arn
                }
                Err(e) => {
                    remove_roles(target, &made_roles);
                    return Err(Failure::Other(e.context(format!(
                        "creating IAM role for pod identity association for service account {sa:?} of addon {name:?}"
                    ))));
                }
            }
        } else {
            pia.role_arn.clone()
        };
        pairs.push(json!({"serviceAccount": sa, "roleArn": role_arn}));
    }
    let mut body = Map::new();
    body.insert("addonName".into(), name.clone().into());
    if let Some(v) = &version {
        body.insert("addonVersion".into(), v.clone().into());
    }
    if !service_account_role.is_empty() {
        body.insert("serviceAccountRoleArn".into(), service_account_role.into());
    }
    if let Some(resolve) = &addon.resolve_conflicts {
        body.insert(
            "resolveConflicts".into(),
            resolve.to_ascii_uppercase().into(),
        );
    }
    if let Some(values) = addon
        .configuration_values
        .as_deref()
        .and_then(configuration_json)
    {
        body.insert("configurationValues".into(), values.into());
    }
    let mut tags = metadata_tags.clone();
    tags.extend(texts(&addon.tags));
    body.insert("tags".into(), json!(tags));
    if !pairs.is_empty() {
        body.insert("podIdentityAssociations".into(), Value::Array(pairs));
    }
    if addon.namespace_config.is_some() {
        body.insert("namespaceConfig".into(), json!({"namespace": namespace}));
    }
    info(&format!("creating addon: {name}"));
    match target
        .eks
        .json("POST", &path, "", Some(&Value::Object(body)))
    {
        Ok(_) => {
            info(&format!("successfully created addon: {name}"));
            Ok(())
        }
        Err(e) => {
            remove_roles(target, &made_roles);
            if roles::is_code(&e, "ResourceInUseException") && !associations.is_empty() {
                let accounts: Vec<&str> = associations
                    .iter()
                    .map(|p| p.service_account_name.as_str())
                    .collect();
                return Err(Failure::Refused(format!(
                    "creating addon: one or more service accounts corresponding to {name:?} addon is already associated with a different IAM role; please delete all pre-existing pod identity associations corresponding to {} service account(s) in the addon's namespace, then re-try creating the addon",
                    accounts.join(", ")
                )));
            }
            Err(Failure::Other(
                e.context(format!("failed to create {name:?} addon")),
            ))
        }
    }
}

/// DescribeAddonConfiguration of an add-on version.
pub(crate) fn configuration(target: &Target, name: &str, version: &str) -> anyhow::Result<Value> {
    target.eks.json(
        "GET",
        "/addons/configuration-schemas",
        &format!(
            "addonName={}&addonVersion={}",
            podid_sigv4::uri_encoded(name),
            podid_sigv4::uri_encoded(version)
        ),
        None,
    )
}

/// Whether the add-on asks for an IRSA role to be made.
fn has_irsa_policies(addon: &Addon) -> bool {
    !addon.attach_policy_arns.is_empty()
        || addon.attach_policy.is_some()
        || addon.well_known_policies.any()
}

/// Makes the IRSA role of an add-on (`attachPolicyARNs`, `attachPolicy`,
/// `wellKnownPolicies`): trusting the cluster's OIDC provider for the add-on's service account
/// (the first one DescribeAddonConfiguration names). Its ARN.
fn irsa_role(
    target: &Target,
    addon: &Addon,
    version: Option<&str>,
    namespace: &str,
    metadata_tags: &BTreeMap<String, String>,
) -> Result<String, Failure> {
    let name = &addon.name;
    let provider = super::irsa::provider(target)?;
    if !provider.exists {
        return Err(Failure::Refused(format!(
            "IRSA config is set for {name:?} addon, but the cluster has no IAM OIDC provider: set `iam.withOIDC: true`, or run `podid utils associate-iam-oidc-provider --cluster={} --approve`",
            target.cluster
        )));
    }
    let service_account = recommended(target, name, version)?
        .into_iter()
        .next()
        .map(|p| p.service_account_name)
        .ok_or_else(|| {
            Failure::Refused(format!(
                "{name:?} addon names no service account for IAM permissions: give serviceAccountRoleARN instead"
            ))
        })?;
    info(&format!(
        "creating role using provided policies for {name:?} addon"
    ));
    let account = IamServiceAccount {
        metadata: ServiceAccountMeta {
            name: service_account,
            namespace: namespace.to_owned(),
            ..ServiceAccountMeta::default()
        },
        attach_policy_arns: addon.attach_policy_arns.clone(),
        attach_policy: addon.attach_policy.clone(),
        well_known_policies: addon.well_known_policies,
        permissions_boundary: addon.permissions_boundary.clone(),
        ..IamServiceAccount::default()
    };
    let mut spec = super::irsa::role_spec(&target.cluster, &account, &provider, metadata_tags);
    spec.stack = format!("eksctl-{}-addon-{name}", target.cluster);
    spec.tags.insert(ADDON_TAG.into(), name.clone());
    spec.tags.remove(super::irsa::IAMSERVICEACCOUNT_TAG);
    Ok(roles::create_role(&target.iam, &spec)?)
}

/// The associations AWS recommends for an add-on: each of its service accounts with a role
/// made of the recommended managed policies.
fn recommended(
    target: &Target,
    name: &str,
    version: Option<&str>,
) -> Result<Vec<PodIdentityAssociation>, Failure> {
    let version = match version {
        Some(v) => v.to_owned(),
        None => {
            let versions = target.eks.json(
                "GET",
                "/addons/supported-versions",
                &format!("addonName={}", podid_sigv4::uri_encoded(name)),
                None,
            )?;
            versions
                .pointer("/addons/0/addonVersions/0/addonVersion")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        }
    };
    let configuration = configuration(target, name, &version)?;
    let mut out = Vec::new();
    for item in configuration
        .get("podIdentityConfiguration")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let sa = item
            .get("serviceAccount")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let policies: Vec<String> = item
            .get("recommendedManagedPolicies")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str().map(str::to_owned))
            .collect();
        info(&format!(
            "creating role using recommended policies for {name:?} addon"
        ));
        out.push(PodIdentityAssociation {
            service_account_name: sa.to_owned(),
            permission_policy_arns: policies,
            ..PodIdentityAssociation::default()
        });
    }
    if out.is_empty() {
        log(
            Level::Warning,
            &format!("{name:?} addon does not support pod identity associations"),
        );
    }
    Ok(out)
}

/// The role eksctl makes for an add-on's association.
fn addon_role_spec(
    cluster: &str,
    addon: &str,
    namespace: &str,
    pia: &PodIdentityAssociation,
    metadata_tags: &BTreeMap<String, String>,
) -> RoleSpec {
    let with_namespace = PodIdentityAssociation {
        namespace: namespace.to_owned(),
        ..pia.clone()
    };
    let mut spec = super::podidentity::role_spec(cluster, &with_namespace, metadata_tags);
    spec.stack = format!(
        "eksctl-{cluster}-addon-{addon}-podidentityrole-{}",
        pia.service_account_name
    );
    spec.tags.insert(ADDON_TAG.into(), addon.into());
    spec
}

/// The tag of roles made for an add-on.
const ADDON_TAG: &str = "alpha.eksctl.io/addon-name";

/// The roles of an add-on's Pod Identity associations (its `Addon` shape given).
fn association_roles(target: &Target, addon: &Value) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for arn in addon
        .get("podIdentityAssociations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let id = arn.rsplit('/').next().unwrap_or_default();
        // An association deleted directly (EKS allows it) is simply gone.
        let association =
            match super::podidentity::describe_association(&target.eks, &target.cluster, id) {
                Ok(a) => a,
                Err(e) if roles::is_code(&e, "ResourceNotFoundException") => continue,
                Err(e) => return Err(e),
            };
        if let Some(role) = association.get("roleArn").and_then(Value::as_str) {
            out.push(role.to_owned());
        }
    }
    Ok(out)
}

fn remove_roles(target: &Target, names: &[String]) {
    for name in names {
        if let Err(e) = roles::delete_role(&target.iam, name) {
            log(
                Level::Warning,
                &format!("could not remove role {name:?}: {e:#}"),
            );
        }
    }
}

pub(crate) fn run_get(args: GetArgs) -> Result<(), Failure> {
    let target = args
        .general
        .target(&[("name", args.name.is_some())], false)?;
    let path = format!("/clusters/{}/addons", target.cluster);
    let names: Vec<String> = match &args.name {
        Some(name) => vec![name.clone()],
        None => {
            let listed = target.eks.json("GET", &path, "", None)?;
            listed
                .get("addons")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect()
        }
    };
    let mut rows = Vec::new();
    for name in names {
        let described = target
            .eks
            .json("GET", &format!("{path}/{name}"), "", None)?;
        let addon = described.get("addon").cloned().unwrap_or(Value::Null);
        let field = |key: &str| {
            addon
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let version = field("addonVersion");
        let newest = target
            .eks
            .json(
                "GET",
                "/addons/supported-versions",
                &format!("addonName={}", podid_sigv4::uri_encoded(&name)),
                None,
            )?
            .pointer("/addons/0/addonVersions/0/addonVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let association_roles = association_roles(&target, &addon)?;
        let issues = addon
            .pointer("/health/issues")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let mut row = Map::new();
        row.insert("Name".into(), name.clone().into());
        row.insert("Version".into(), version.clone().into());
        row.insert(
            "NewerVersion".into(),
            if newest != version {
                newest
            } else {
                String::new()
            }
            .into(),
        );
        row.insert("IAMRole".into(), field("serviceAccountRoleArn").into());
        row.insert("Status".into(), field("status").into());
        row.insert(
            "ConfigurationValues".into(),
            field("configurationValues").into(),
        );
        row.insert("Issues".into(), issues.into());
        row.insert(
            "PodIdentityAssociationRoles".into(),
            association_roles.join(",").into(),
        );
        rows.push(row);
    }
    super::print_rows(
        &rows,
        &[
            ("NAME", "Name"),
            ("VERSION", "Version"),
            ("STATUS", "Status"),
            ("ISSUES", "Issues"),
            ("IAMROLE", "IAMRole"),
            ("UPDATE AVAILABLE", "NewerVersion"),
            ("CONFIGURATION VALUES", "ConfigurationValues"),
            (
                "POD IDENTITY ASSOCIATION ROLES",
                "PodIdentityAssociationRoles",
            ),
        ],
        args.output,
    )?;
    Ok(())
}

pub(crate) fn run_delete(args: DeleteArgs) -> Result<(), Failure> {
    let target = args
        .general
        .target(&[("name", args.name.is_some())], false)?;
    let names: Vec<String> = match &target.config {
        Some(config) => config
            .addons
            .iter()
            .flatten()
            .map(|a| a.name.clone())
            .collect(),
        None => args.name.clone().into_iter().collect(),
    };
    if names.is_empty() {
        return Err(Failure::Usage("must specify addon name".into()));
    }
    check_cluster(&target)?;
    for name in names {
        delete_one(&target, &name, args.preserve)?;
    }
    Ok(())
}

fn delete_one(target: &Target, name: &str, preserve: bool) -> Result<(), Failure> {
    let path = format!("/clusters/{}/addons/{name}", target.cluster);
    let described = match target.eks.json("GET", &path, "", None) {
        Ok(d) => d,
        Err(e) if roles::is_code(&e, "ResourceNotFoundException") => {
            info(&format!("addon {name:?} does not exist"));
            return Err(Failure::Refused(
                "could not find addon or associated IAM stack to delete".into(),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    // The roles made for it (IRSA and its associations), known before they go.
    let mut candidates: Vec<String> = described
        .pointer("/addon/serviceAccountRoleArn")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .into_iter()
        .collect();
    if let Some(addon) = described.get("addon") {
        candidates.extend(association_roles(target, addon)?);
    }
    let mut owned_roles = Vec::new();
    for role in candidates {
        if roles::made_for(&target.iam, &role, &target.cluster, (ADDON_TAG, name))? {
            owned_roles.push(roles::role_name_of(&role).to_owned());
        }
    }
    if preserve {
        info(&format!(
            "deleting addon {name:?} and preserving its resources"
        ));
    } else {
        info(&format!("deleting addon: {name}"));
    }
    let query = if preserve { "preserve=true" } else { "" };
    target.eks.json("DELETE", &path, query, None)?;
    info(&format!("deleted addon: {name}"));
    if !preserve && !owned_roles.is_empty() {
        info("deleting associated IAM stacks");
        for role in owned_roles {
            roles::delete_role(&target.iam, &role)?;
        }
    }
    Ok(())
}
