//! EKS: clusters (with the OIDC issuers and signing keys of their service-account tokens) and
//! Pod Identity associations.

mod associations;
mod clusters;
mod names;
mod pod_identity;

pub use associations::{
    AssociationSummary, CreateAssociation, ListAssociations, UpdateAssociation,
};
pub use clusters::{ClusterTokens, CreateCluster, ServiceAccountToken};
pub(crate) use pod_identity::AuditLog;
pub use pod_identity::{PodCredentials, PodIdentityDecision, TOKEN_LEEWAY_SECONDS};

/// The service principal of EKS Pod Identity.
pub const PODS_SERVICE: &str = "pods.eks.amazonaws.com";

/// The default quota of associations per cluster.
pub(crate) const DEFAULT_ASSOCIATION_QUOTA: u32 = 1000;

/// Fetches documents over HTTP(S) for the domain: the OpenID discovery documents and key sets
/// of external clusters' issuers. The binary supplies one; without it, key sets must be given
/// inline.
#[async_trait::async_trait]
pub trait Fetcher: Send + Sync {
    /// The body of a `GET url` that answered 200, or why not.
    async fn get(&self, url: &str) -> Result<String, String>;
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
