//! How entities are stored: JSON records under keys of `podid-store` namespaces.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Namespaces.
pub(crate) mod ns {
    pub(crate) const ACCOUNT: &str = "account";
    pub(crate) const USER: &str = "user";
    pub(crate) const ACCESS_KEY: &str = "access-key";
    pub(crate) const ROLE: &str = "role";
    pub(crate) const POLICY: &str = "policy";
    pub(crate) const ATTACHMENT: &str = "attachment";
    pub(crate) const OIDC: &str = "oidc";
}

/// A tag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

/// An account hosted by this podid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    /// The account id.
    pub id: String,
    /// Created, epoch milliseconds.
    pub created: i64,
}

/// Policies of a user or role: inline documents by name, attached managed policy ARNs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyHolder {
    /// Inline policies: name (as given) → document.
    pub inline: BTreeMap<String, String>,
    /// Attached managed policies, in attachment order.
    pub attached: Vec<String>,
    /// The permissions boundary's ARN.
    pub boundary: Option<String>,
}

/// An IAM user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// The name, as given.
    pub name: String,
    /// The path.
    pub path: String,
    /// `AIDA…`.
    pub id: String,
    /// The ARN.
    pub arn: String,
    /// Created, epoch milliseconds.
    pub created: i64,
    /// Tags.
    pub tags: Vec<Tag>,
    /// Policies.
    pub policies: PolicyHolder,
    /// Access key ids.
    pub access_keys: Vec<String>,
}

/// An access key of a user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKeyRecord {
    /// `AKIA…`.
    pub id: String,
    /// The user's account.
    pub account: String,
    /// The user's name.
    pub user: String,
    /// The secret, sealed with the master key.
    pub sealed_secret: String,
    /// `Active` or `Inactive`.
    pub status: String,
    /// Created, epoch milliseconds.
    pub created: i64,
}

/// An IAM role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleRecord {
    /// The name, as given.
    pub name: String,
    /// The path.
    pub path: String,
    /// `AROA…`.
    pub id: String,
    /// The ARN.
    pub arn: String,
    /// Created, epoch milliseconds.
    pub created: i64,
    /// The trust policy, as given.
    pub trust_policy: String,
    /// The user and role ARNs of the trust policy's principals, bound to their unique ids when
    /// the policy was saved.
    pub trust_bindings: BTreeMap<String, String>,
    /// The description.
    pub description: Option<String>,
    /// Seconds.
    pub max_session_duration: u32,
    /// Tags.
    pub tags: Vec<Tag>,
    /// Policies.
    pub policies: PolicyHolder,
}

/// A version of a managed policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyVersionRecord {
    /// `v1`, `v2`, ...
    pub id: String,
    /// The document, as given.
    pub document: String,
    /// Created, epoch milliseconds.
    pub created: i64,
}

/// A customer managed policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRecord {
    /// The name.
    pub name: String,
    /// The path.
    pub path: String,
    /// `ANPA…`.
    pub id: String,
    /// The ARN.
    pub arn: String,
    /// The description.
    pub description: Option<String>,
    /// Created, epoch milliseconds.
    pub created: i64,
    /// Updated (new default version), epoch milliseconds.
    pub updated: i64,
    /// Tags.
    pub tags: Vec<Tag>,
    /// The default version's id.
    pub default_version: String,
    /// Versions, oldest first (at most 5).
    pub versions: Vec<PolicyVersionRecord>,
    /// The number the next version gets.
    pub next_version: u32,
    /// Set while DeletePolicy checks that nothing uses the policy: attaching fails meanwhile.
    #[serde(default)]
    pub deleting: bool,
}

impl PolicyRecord {
    /// The default version.
    pub fn default_document(&self) -> Option<&PolicyVersionRecord> {
        self.versions.iter().find(|v| v.id == self.default_version)
    }
}

/// An OIDC identity provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcRecord {
    /// The ARN.
    pub arn: String,
    /// The issuer URL without `https://`.
    pub url: String,
    /// Audiences.
    pub client_ids: Vec<String>,
    /// Certificate thumbprints.
    pub thumbprints: Vec<String>,
    /// Tags.
    pub tags: Vec<Tag>,
    /// Created, epoch milliseconds.
    pub created: i64,
}
