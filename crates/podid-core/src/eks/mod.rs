//! EKS: clusters (with the OIDC issuers and signing keys of their service-account tokens), Pod
//! Identity associations, add-ons and (podid's own) service accounts.

mod access;
mod addons;
mod associations;
pub mod catalogue;
mod changes;
mod clusters;
mod names;
mod pod_identity;
mod records;
mod service_accounts;
mod upstream;

use crate::Core;

pub use access::{
    AccessGraph, AccessQuery, DEFAULT_DEPTH, Edge, Finding, MAX_DEPTH, Node, Reach, Reason,
    Requirement, SCHEMA_VERSION,
};
pub use addons::{AddonAssociation, AddonUpdate, CreateAddon, ListAddonVersions, UpdateAddon};
pub use associations::{
    AssociationSummary, CreateAssociation, ListAssociations, UpdateAssociation,
    association_role_fit,
};
pub(crate) use changes::carries_change;
pub use changes::{Change, ChangePage, REREAD_MS, RETENTION_MS};
pub use clusters::{ClusterTokens, CreateCluster, ServiceAccountToken};
pub use pod_identity::{
    MIN_CREDENTIAL_SECONDS, ONE_HOP_SECONDS, PodCredentials, PodIdentityDecision,
    TOKEN_LEEWAY_SECONDS,
};
pub use records::{AddonRecord, AssociationRecord, ClusterRecord, SigningKeyRecord, TokenSource};
pub use service_accounts::{IRSA_PREFIX, MetadataChange, ServiceAccountName, ServiceAccountRecord};
pub use upstream::{
    Broker, BrokerCall, BrokerError, BrokerSession, CredentialBackend, TrustPin, UpstreamChecks,
    UpstreamRole, trust_principal,
};

/// The service principal of EKS Pod Identity.
pub const PODS_SERVICE: &str = "pods.eks.amazonaws.com";

/// The default quota of associations per cluster.
const DEFAULT_ASSOCIATION_QUOTA: u32 = 1000;

/// EKS: clusters (their issuers, signing keys and service-account tokens) and Pod Identity
/// associations. A view of the [`Core`]: `core.eks()`.
#[derive(Clone, Copy, Debug)]
pub struct Eks<'a> {
    pub(crate) core: &'a Core,
}

/// EKS Auth: AssumeRoleForPodIdentity. A view of the
/// [`Core`]: `core.eks_auth()`.
#[derive(Clone, Copy, Debug)]
pub struct EksAuth<'a> {
    pub(crate) core: &'a Core,
}

/// EKS's settings and state in the core.
pub(crate) struct State {
    association_quota: u32,
    /// How long Pod Identity credentials last, in seconds (a target role's at most an hour).
    pod_credential_seconds: u32,
    /// The upstream STS of clusters with the `aws` credential backend.
    broker: Option<std::sync::Arc<dyn Broker>>,
    /// Recent association totals, for the quota.
    totals: associations::Totals,
    /// Woken when this replica commits a change of the change feed.
    changed: tokio::sync::Notify,
}

impl Default for State {
    fn default() -> Self {
        Self {
            association_quota: DEFAULT_ASSOCIATION_QUOTA,
            pod_credential_seconds: pod_identity::ONE_HOP_SECONDS,
            broker: None,
            totals: associations::Totals::default(),
            changed: tokio::sync::Notify::new(),
        }
    }
}

impl Core {
    /// Sets the most Pod Identity associations a cluster may have (default 1,000).
    #[must_use]
    pub fn with_association_quota(mut self, quota: u32) -> Self {
        self.eks.association_quota = quota;
        self
    }

    /// Sets how long the credentials of AssumeRoleForPodIdentity last: 15 minutes to six hours
    /// (EKS's own, the default), clamped to that range. A target role's credentials last the
    /// same, at most an hour (role chaining's limit). Shorter lifetimes bound how long a pod
    /// keeps a role's credentials after its association changes.
    #[must_use]
    pub fn with_pod_credential_lifetime(mut self, seconds: u32) -> Self {
        self.eks.pod_credential_seconds = seconds.clamp(
            pod_identity::MIN_CREDENTIAL_SECONDS,
            pod_identity::ONE_HOP_SECONDS,
        );
        self
    }
}

/// A page of an EKS list: its items and the `nextToken` of the next page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EksPage<T> {
    /// The items.
    pub items: Vec<T>,
    /// The token of the next page, if there is one.
    pub next_token: Option<String>,
}

/// Store keys: account, region, then names, `/`-separated (names cannot contain `/`).
fn key(parts: &[&str]) -> String {
    parts.join("/")
}
