//! eksctl's `ClusterConfig` files (`apiVersion: eksctl.io/v1alpha5`): the schema of the parts
//! podid acts on, read strictly (an unknown key is an error with its line, column and the key
//! it was probably meant to be), and the sections podid has no meaning for accepted and named.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde_json::Value;

/// A ClusterConfig file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ClusterConfig {
    pub(crate) api_version: Option<String>,
    pub(crate) kind: Option<String>,
    pub(crate) metadata: Option<Metadata>,
    pub(crate) iam: Option<Iam>,
    pub(crate) addons: Option<Vec<Addon>>,
    pub(crate) addons_config: Option<AddonsConfig>,
    // Sections podid has no meaning for: accepted, and named once as ignored.
    upgrade_policy: Option<Value>,
    kubernetes_network_config: Option<Value>,
    auto_mode_config: Option<Value>,
    remote_network_config: Option<Value>,
    iam_identity_mappings: Option<Value>,
    identity_providers: Option<Value>,
    access_config: Option<Value>,
    vpc: Option<Value>,
    private_cluster: Option<Value>,
    node_groups: Option<Value>,
    managed_node_groups: Option<Value>,
    fargate_profiles: Option<Value>,
    availability_zones: Option<Value>,
    local_zones: Option<Value>,
    cloud_watch: Option<Value>,
    secrets_encryption: Option<Value>,
    gitops: Option<Value>,
    karpenter: Option<Value>,
    outpost: Option<Value>,
    control_plane_scaling_config: Option<Value>,
    zonal_shift_config: Option<Value>,
    capabilities: Option<Value>,
}

/// `metadata`.
#[expect(
    dead_code,
    reason = "every key of eksctl's schema is read, so that files load; podid acts on some"
)]
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Metadata {
    pub(crate) name: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) version: Option<YamlString>,
    force_update_version: Option<bool>,
    rollback_config: Option<Value>,
    pub(crate) tags: Option<BTreeMap<String, YamlString>>,
    annotations: Option<BTreeMap<String, YamlString>>,
}

/// `iam`.
#[expect(
    dead_code,
    reason = "every key of eksctl's schema is read, so that files load; podid acts on some"
)]
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Iam {
    #[serde(rename = "serviceRoleARN")]
    service_role_arn: Option<String>,
    service_role_permissions_boundary: Option<String>,
    #[serde(rename = "fargatePodExecutionRoleARN")]
    fargate_pod_execution_role_arn: Option<String>,
    fargate_pod_execution_role_permissions_boundary: Option<String>,
    #[serde(rename = "withOIDC")]
    pub(crate) with_oidc: Option<bool>,
    pub(crate) service_accounts: Option<Vec<IamServiceAccount>>,
    pub(crate) pod_identity_associations: Option<Vec<PodIdentityAssociation>>,
    vpc_resource_controller_policy: Option<bool>,
}

/// One of `iam.podIdentityAssociations` (and of an add-on's `podIdentityAssociations`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct PodIdentityAssociation {
    #[serde(default)]
    pub(crate) namespace: String,
    #[serde(default)]
    pub(crate) service_account_name: String,
    #[serde(rename = "roleARN", default)]
    pub(crate) role_arn: String,
    #[serde(default)]
    pub(crate) create_service_account: bool,
    #[serde(default)]
    pub(crate) role_name: String,
    #[serde(rename = "permissionsBoundaryARN", default)]
    pub(crate) permissions_boundary_arn: String,
    #[serde(rename = "permissionPolicyARNs", default)]
    pub(crate) permission_policy_arns: Vec<String>,
    #[serde(default)]
    pub(crate) permission_policy_name: String,
    #[serde(default)]
    pub(crate) permission_policy: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    pub(crate) well_known_policies: WellKnownPolicies,
    #[serde(default)]
    pub(crate) tags: BTreeMap<String, YamlString>,
    #[serde(rename = "targetRoleARN", default)]
    pub(crate) target_role_arn: String,
    #[serde(default)]
    pub(crate) disable_session_tags: bool,
    /// A session policy: a JSON string, or (podid accepts it too) the document itself.
    #[serde(default)]
    pub(crate) policy: Option<Value>,
}

/// eksctl's well-known policy families.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct WellKnownPolicies {
    #[serde(default)]
    pub(crate) image_builder: bool,
    #[serde(default)]
    pub(crate) auto_scaler: bool,
    #[serde(default)]
    pub(crate) aws_load_balancer_controller: bool,
    #[serde(rename = "externalDNS", default)]
    pub(crate) external_dns: bool,
    #[serde(default)]
    pub(crate) cert_manager: bool,
    #[serde(rename = "ebsCSIController", default)]
    pub(crate) ebs_csi_controller: bool,
    #[serde(rename = "efsCSIController", default)]
    pub(crate) efs_csi_controller: bool,
}

impl WellKnownPolicies {
    /// Whether any family is asked for.
    pub(crate) fn any(self) -> bool {
        self != Self::default()
    }
}

/// One of `iam.serviceAccounts` (IRSA).
#[expect(
    dead_code,
    reason = "every key of eksctl's schema is read, so that files load; podid acts on some"
)]
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct IamServiceAccount {
    #[serde(default)]
    pub(crate) metadata: ServiceAccountMeta,
    #[serde(rename = "attachPolicyARNs", default)]
    pub(crate) attach_policy_arns: Vec<String>,
    #[serde(default)]
    pub(crate) well_known_policies: WellKnownPolicies,
    pub(crate) attach_policy: Option<serde_json::Map<String, Value>>,
    #[serde(rename = "attachRoleARN", default)]
    pub(crate) attach_role_arn: String,
    #[serde(default)]
    pub(crate) permissions_boundary: String,
    pub(crate) status: Option<Value>,
    #[serde(default)]
    pub(crate) role_name: String,
    #[serde(default)]
    pub(crate) role_only: bool,
    #[serde(default)]
    pub(crate) tags: BTreeMap<String, YamlString>,
    #[serde(default)]
    pub(crate) subject_pattern: String,
}

/// An iamserviceaccount's `metadata`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ServiceAccountMeta {
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) namespace: String,
    #[serde(default)]
    pub(crate) labels: BTreeMap<String, YamlString>,
    #[serde(default)]
    pub(crate) annotations: BTreeMap<String, YamlString>,
}

/// One of `addons`.
#[expect(
    dead_code,
    reason = "every key of eksctl's schema is read, so that files load; podid acts on some"
)]
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Addon {
    #[serde(default)]
    pub(crate) name: String,
    pub(crate) version: Option<YamlString>,
    #[serde(rename = "serviceAccountRoleARN", default)]
    pub(crate) service_account_role_arn: String,
    #[serde(rename = "attachPolicyARNs", default)]
    pub(crate) attach_policy_arns: Vec<String>,
    pub(crate) attach_policy: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    pub(crate) permissions_boundary: String,
    #[serde(default)]
    pub(crate) well_known_policies: WellKnownPolicies,
    #[serde(default)]
    pub(crate) tags: BTreeMap<String, YamlString>,
    pub(crate) resolve_conflicts: Option<String>,
    pub(crate) pod_identity_associations: Option<Vec<PodIdentityAssociation>>,
    #[serde(default)]
    pub(crate) use_default_pod_identity_associations: bool,
    pub(crate) configuration_values: Option<String>,
    pub(crate) namespace_config: Option<NamespaceConfig>,
    pub(crate) publishers: Option<Vec<String>>,
    pub(crate) types: Option<Vec<String>>,
    pub(crate) owners: Option<Vec<String>>,
}

/// An add-on's `namespaceConfig`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct NamespaceConfig {
    pub(crate) namespace: Option<String>,
}

/// `addonsConfig`.
#[expect(
    dead_code,
    reason = "every key of eksctl's schema is read, so that files load; podid acts on some"
)]
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct AddonsConfig {
    #[serde(default)]
    pub(crate) auto_apply_pod_identity_associations: bool,
    #[serde(default)]
    pub(crate) disable_default_addons: bool,
}

/// A YAML scalar read as text: a string, an integer or a boolean (a tag value `true` is
/// "true"). A decimal number is refused: YAML reads `1.30` as 1.3, losing what was meant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct YamlString(pub(crate) String);

impl<'de> Deserialize<'de> for YamlString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(Self(s)),
            Value::Number(n) if !n.is_f64() => Ok(Self(n.to_string())),
            // `1.30` is the number 1.3 to YAML: the text the user meant is lost.
            Value::Number(n) => Err(serde::de::Error::custom(format!(
                "the number {n} must be quoted to be read as text (for example \"1.30\")"
            ))),
            Value::Bool(b) => Ok(Self(b.to_string())),
            Value::Null => Ok(Self(String::new())),
            _ => Err(serde::de::Error::custom(
                "expected a string, number or boolean",
            )),
        }
    }
}

impl fmt::Display for YamlString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Plain text of a tag map.
pub(crate) fn texts(map: &BTreeMap<String, YamlString>) -> BTreeMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect()
}

/// Why a config file cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// It could not be read.
    #[error("reading config file {file:?}: {why}")]
    Read { file: String, why: String },
    /// It is not a ClusterConfig (YAML syntax, unknown key, wrong type, wrong kind).
    #[error("loading config file {file:?}: {why}")]
    Load { file: String, why: String },
    /// A rule of eksctl's does not hold.
    #[error("{0}")]
    Invalid(String),
}

impl ClusterConfig {
    /// Reads `file` (`-` is standard input) as eksctl does: strictly, then checks `apiVersion`,
    /// `kind`, `metadata.name` and `metadata.region`.
    pub(crate) fn load(file: &str) -> Result<Self, ConfigError> {
        let text = if file == "-" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map(|_| text)
        } else {
            std::fs::read_to_string(file)
        }
        .map_err(|e| ConfigError::Read {
            file: file.to_owned(),
            why: e.to_string(),
        })?;
        Self::parse(&text).map_err(|why| ConfigError::Load {
            file: file.to_owned(),
            why,
        })
    }

    /// Parses a ClusterConfig document. The error names the line and column, and for an
    /// unknown key the key it was probably meant to be.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let config: Self = serde_norway::from_str(text).map_err(|e| describe(&e))?;
        let api_version = config.api_version.as_deref().unwrap_or_default();
        let kind = config.kind.as_deref().unwrap_or_default();
        if api_version.is_empty() || kind.is_empty() {
            return Err(
                "Object 'Kind' is missing: a ClusterConfig starts with `apiVersion: eksctl.io/v1alpha5` and `kind: ClusterConfig`"
                    .into(),
            );
        }
        if api_version != "eksctl.io/v1alpha5" || kind != "ClusterConfig" {
            return Err(format!(
                "no kind {kind:?} is registered for version {api_version:?}: podid reads `apiVersion: eksctl.io/v1alpha5`, `kind: ClusterConfig`"
            ));
        }
        Ok(config)
    }

    /// `metadata`, which a loaded file must have, with its name and region.
    pub(crate) fn checked_metadata(&self) -> Result<&Metadata, ConfigError> {
        let metadata = self
            .metadata
            .as_ref()
            .ok_or_else(|| ConfigError::Invalid("metadata must be set".into()))?;
        if metadata.name.as_deref().unwrap_or_default().is_empty() {
            return Err(ConfigError::Invalid("metadata.name must be set".into()));
        }
        if metadata.region.as_deref().unwrap_or_default().is_empty() {
            return Err(ConfigError::Invalid("metadata.region must be set".into()));
        }
        Ok(metadata)
    }

    /// The cluster's name (after [`Self::checked_metadata`]).
    pub(crate) fn name(&self) -> &str {
        self.metadata
            .as_ref()
            .and_then(|m| m.name.as_deref())
            .unwrap_or_default()
    }

    /// The cluster's region (after [`Self::checked_metadata`]).
    pub(crate) fn region(&self) -> &str {
        self.metadata
            .as_ref()
            .and_then(|m| m.region.as_deref())
            .unwrap_or_default()
    }

    /// The sections of the file podid accepts and does nothing with, by their keys.
    pub(crate) fn ignored_sections(&self) -> Vec<&'static str> {
        let sections: [(&'static str, bool); 22] = [
            ("upgradePolicy", self.upgrade_policy.is_some()),
            (
                "kubernetesNetworkConfig",
                self.kubernetes_network_config.is_some(),
            ),
            ("autoModeConfig", self.auto_mode_config.is_some()),
            ("remoteNetworkConfig", self.remote_network_config.is_some()),
            ("iamIdentityMappings", self.iam_identity_mappings.is_some()),
            ("identityProviders", self.identity_providers.is_some()),
            ("accessConfig", self.access_config.is_some()),
            ("vpc", self.vpc.is_some()),
            ("privateCluster", self.private_cluster.is_some()),
            ("nodeGroups", self.node_groups.is_some()),
            ("managedNodeGroups", self.managed_node_groups.is_some()),
            ("fargateProfiles", self.fargate_profiles.is_some()),
            ("availabilityZones", self.availability_zones.is_some()),
            ("localZones", self.local_zones.is_some()),
            ("cloudWatch", self.cloud_watch.is_some()),
            ("secretsEncryption", self.secrets_encryption.is_some()),
            ("gitops", self.gitops.is_some()),
            ("karpenter", self.karpenter.is_some()),
            ("outpost", self.outpost.is_some()),
            (
                "controlPlaneScalingConfig",
                self.control_plane_scaling_config.is_some(),
            ),
            ("zonalShiftConfig", self.zonal_shift_config.is_some()),
            ("capabilities", self.capabilities.is_some()),
        ];
        sections
            .into_iter()
            .filter_map(|(key, present)| present.then_some(key))
            .collect()
    }
}

/// A YAML or schema error, as a user reads it: `line L, column C: ...`, the key's path, and for
/// an unknown key a suggestion.
fn describe(e: &serde_norway::Error) -> String {
    let text = e.to_string();
    // serde_norway: "PATH: MESSAGE at line L column C" (the path is absent at the top level).
    let (body, location) = match e.location() {
        Some(at) => (
            text.rsplit_once(" at line ")
                .map_or(text.as_str(), |(b, _)| b),
            format!("line {}, column {}: ", at.line(), at.column()),
        ),
        None => (text.as_str(), String::new()),
    };
    let (path, message) = match body.split_once(": ") {
        Some((path, message)) if !path.contains(' ') => (Some(path), message),
        _ => (None, body),
    };
    let at_path = path.map(|p| format!(" in {p}")).unwrap_or_default();
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let hint = closest(field, &candidates)
            .map(|c| format!("; did you mean {c:?}?"))
            .unwrap_or_else(|| {
                if candidates.is_empty() {
                    String::new()
                } else {
                    format!("; the keys here are {}", candidates.join(", "))
                }
            });
        return format!("{location}unknown field {field:?}{at_path}{hint}");
    }
    format!("{location}{message}{at_path}")
}

/// The candidate nearest to `word` by edit distance (case-insensitive), if it is near enough
/// to be a typo.
fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (distance(&word, &c.to_ascii_lowercase()), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row.first().copied().unwrap_or(0);
        if let Some(first) = row.first_mut() {
            *first = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let above = row.get(j + 1).copied().unwrap_or(0);
            let left = row.get(j).copied().unwrap_or(0);
            let cost = usize::from(ca != *cb);
            let value = (above + 1).min(left + 1).min(previous + cost);
            previous = above;
            if let Some(cell) = row.get_mut(j + 1) {
                *cell = value;
            }
        }
    }
    row.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata:\n  name: c\n  region: us-east-1\n";

    #[test]
    fn an_unknown_key_names_its_line_column_path_and_the_key_meant() {
        let text = format!(
            "{HEAD}iam:\n  podIdentityAssociations:\n  - namespace: default\n    serviceAccountNme: app\n"
        );
        let error = ClusterConfig::parse(&text).err().unwrap_or_default();
        assert!(
            error.starts_with("line 9, column 5: unknown field \"serviceAccountNme\""),
            "{error}"
        );
        assert!(error.contains("iam.podIdentityAssociations[0]"), "{error}");
        assert!(
            error.ends_with("did you mean \"serviceAccountName\"?"),
            "{error}"
        );
        let error = ClusterConfig::parse(&format!("{HEAD}metadatum: {{}}\n"))
            .err()
            .unwrap_or_default();
        assert!(error.contains("did you mean \"metadata\"?"), "{error}");
    }

    #[test]
    fn malformed_yaml_and_wrong_kinds_are_named() {
        let error = ClusterConfig::parse("apiVersion: [\n")
            .err()
            .unwrap_or_default();
        assert!(error.starts_with("line "), "{error}");
        let error = ClusterConfig::parse("apiVersion: eksctl.io/v1alpha4\nkind: ClusterConfig\n")
            .err()
            .unwrap_or_default();
        assert!(
            error.starts_with(
                "no kind \"ClusterConfig\" is registered for version \"eksctl.io/v1alpha4\""
            ),
            "{error}"
        );
        let error = ClusterConfig::parse(&format!("{HEAD}iam:\n  withOIDC: [1]\n"))
            .err()
            .unwrap_or_default();
        assert!(error.contains("iam.withOIDC"), "{error}");
    }

    #[test]
    fn sections_podid_ignores_are_accepted_and_named() {
        let config = ClusterConfig::parse(&format!(
            "{HEAD}  version: \"1.30\"\nvpc:\n  cidr: 10.0.0.0/16\nmanagedNodeGroups:\n- name: ng\n"
        ));
        let config = config.unwrap_or_default();
        assert_eq!(config.ignored_sections(), ["vpc", "managedNodeGroups"]);
        assert_eq!(
            config.metadata.and_then(|m| m.version).map(|v| v.0),
            Some("1.30".into())
        );
    }

    #[test]
    fn eksctl_s_own_example_files_load() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/reference/eksctl-examples");
        let load = |name: &str| {
            let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
            assert!(
                !text.is_empty(),
                "{name}: ../shared must be beside the project"
            );
            ClusterConfig::parse(&text)
        };
        let pods = load("39-pod-identity-association.yaml").unwrap_or_default();
        let associations = pods
            .iam
            .as_ref()
            .and_then(|i| i.pod_identity_associations.clone())
            .unwrap_or_default();
        assert_eq!(associations.len(), 4);
        assert!(
            associations
                .get(1)
                .is_some_and(|a| a.well_known_policies.auto_scaler)
        );
        assert!(
            associations
                .get(2)
                .is_some_and(|a| a.permission_policy.is_some())
        );
        assert!(associations.get(3).is_some_and(|a| a.disable_session_tags));
        assert_eq!(pods.ignored_sections(), ["managedNodeGroups"]);
        let irsa = load("13-iamserviceaccounts.yaml").unwrap_or_default();
        let accounts = irsa
            .iam
            .and_then(|i| i.service_accounts)
            .unwrap_or_default();
        assert_eq!(accounts.len(), 4);
        let addons = load("25-addons.yaml").unwrap_or_default();
        assert_eq!(addons.addons.map(|a| a.len()), Some(4));
    }

    #[test]
    fn typos_are_matched_to_near_keys_only() {
        assert_eq!(
            closest("namspace", &["namespace", "name"]),
            Some("namespace")
        );
        assert_eq!(closest("zzzzzz", &["namespace", "name"]), None);
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
