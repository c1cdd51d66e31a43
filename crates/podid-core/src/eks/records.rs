//! How EKS's entities are stored: clusters, their signing keys, Pod Identity associations and
//! add-ons.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// EKS's namespaces.
pub(crate) mod ns {
    pub(crate) const CLUSTER: &str = "cluster";
    pub(crate) const CLUSTER_ID: &str = "cluster-id";
    pub(crate) const ASSOCIATION: &str = "association";
    pub(crate) const ASSOCIATION_SA: &str = "association-sa";
    pub(crate) const ASSOCIATION_TOKEN: &str = "association-token";
    pub(crate) const ASSOCIATION_COUNT: &str = "association-count";
    pub(crate) const SERVICE_ACCOUNT: &str = "service-account";
    pub(crate) const ADDON: &str = "addon";
    /// The change feed (`eks/changes.rs`): `TIME/ID`.
    pub(crate) const CHANGE: &str = "change";
}

/// An EKS cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterRecord {
    /// The name.
    pub name: String,
    /// The account.
    pub account: String,
    /// The region.
    pub region: String,
    /// The cluster's id: 32 upper-case hex digits, as in EKS's issuer URLs.
    pub id: String,
    /// `arn:aws:eks:REGION:ACCOUNT:cluster/NAME`.
    pub arn: String,
    /// Created, epoch milliseconds.
    pub created: i64,
    /// The Kubernetes version.
    pub version: String,
    /// The cluster role.
    pub role_arn: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Other request fields, kept and echoed as given (`resourcesVpcConfig`, `logging`, ...).
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// The OIDC issuer URL.
    pub issuer: String,
    /// Where the service-account tokens come from.
    pub tokens: TokenSource,
    /// Where pods' credentials come from (records written before it existed: `embedded`).
    #[serde(default)]
    pub credential_backend: super::CredentialBackend,
}

/// Who signs a cluster's service-account tokens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TokenSource {
    /// podid: the cluster's signing keys, newest first, each sealed with the master key.
    Local {
        /// The keys.
        keys: Vec<SigningKeyRecord>,
    },
    /// A real cluster's kube-apiserver: its issuer's key set, given or fetched.
    External {
        /// The JWKS document.
        jwks: String,
        /// Where the JWKS is fetched from (refreshed), if it was not given inline.
        jwks_uri: Option<String>,
        /// When the JWKS was last fetched, epoch milliseconds.
        fetched: Option<i64>,
    },
}

/// A cluster's token-signing key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeyRecord {
    /// The key id.
    pub kid: String,
    /// The PKCS#8 DER, sealed with the master key.
    pub sealed: String,
    /// Created, epoch milliseconds.
    pub created: i64,
    /// When a newer key replaced it (it stays in the JWKS until its tokens expire).
    pub retired: Option<i64>,
    /// The public key as a JWK (JSON), so that serving and checking the key set needs no
    /// private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_jwk: Option<String>,
}

/// An EKS Pod Identity association.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssociationRecord {
    /// `a-` and 17 lower-case alphanumerics.
    pub id: String,
    /// `arn:aws:eks:REGION:ACCOUNT:podidentityassociation/CLUSTER/ID`.
    pub arn: String,
    /// The account.
    pub account: String,
    /// The region.
    pub region: String,
    /// The cluster's name.
    pub cluster: String,
    /// The Kubernetes namespace.
    pub namespace: String,
    /// The Kubernetes service account.
    pub service_account: String,
    /// The role pods get.
    pub role_arn: String,
    /// A role assumed from the first one (role chaining), perhaps in another account.
    pub target_role_arn: Option<String>,
    /// The external id for the target role's trust policy.
    pub external_id: Option<String>,
    /// Whether the six session tags are left out.
    pub disable_session_tags: bool,
    /// A session policy.
    pub policy: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// The owner (an EKS add-on), if any.
    pub owner_arn: Option<String>,
    /// Created, epoch milliseconds.
    pub created: i64,
    /// Modified, epoch milliseconds.
    pub modified: i64,
    /// The `clientRequestToken` that created it, which replays it until it is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_request_token: Option<String>,
    /// For a cluster with the `aws` credential backend: what was checked of the roles when they
    /// were set, and what was not, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_checks: Option<super::UpstreamChecks>,
    /// The shard of the cluster's association count that counts it (absent in records written
    /// before shards had two characters: then the id's first random character).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_shard: Option<String>,
}

/// An EKS add-on of a cluster. podid runs no add-on's software: the record is the add-on's
/// settings and the Pod Identity associations it owns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddonRecord {
    /// The add-on's name (`eks-pod-identity-agent`, `vpc-cni`, ...).
    pub name: String,
    /// `arn:aws:eks:REGION:ACCOUNT:addon/CLUSTER/NAME/UUID`.
    pub arn: String,
    /// The account.
    pub account: String,
    /// The region.
    pub region: String,
    /// The cluster's name.
    pub cluster: String,
    /// The version.
    pub version: String,
    /// The namespace its resources live in.
    pub namespace: String,
    /// The IRSA role of its service account.
    pub service_account_role_arn: Option<String>,
    /// `configurationValues`, as given.
    pub configuration_values: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// The ARNs of the Pod Identity associations it owns.
    pub associations: Vec<String>,
    /// Created, epoch milliseconds.
    pub created: i64,
    /// Modified, epoch milliseconds.
    pub modified: i64,
}
