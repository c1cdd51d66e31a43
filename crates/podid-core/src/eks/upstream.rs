//! The `aws` credential backend: for a cluster created with it, EKS Auth verifies the pod's token
//! and finds its association exactly as for any cluster, then obtains the credentials from an
//! upstream STS (real AWS, or any STS) through the [`Broker`] the server was given, with the
//! server's own AWS identity: the association role with EKS's session name and the six session
//! tags; then, with a target role, the second hop from that session with the association's
//! external id and session policy.
//!
//! The core speaks no HTTP: the broker is injected (`Core::with_broker`); the binary's broker
//! signs STS requests with SigV4.

use std::sync::Arc;

use podid_types::Secret;
use serde::{Deserialize, Serialize};

use crate::Core;
use crate::error::Error;
use crate::records::Tag;

/// Where a cluster's pods' credentials come from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum CredentialBackend {
    /// podid's own STS: credentials that podid accepts (development, CI).
    #[default]
    Embedded,
    /// An upstream STS, with the server's broker identity.
    Aws {
        /// The STS endpoint (default: the regional `https://sts.REGION.amazonaws.com`).
        #[serde(
            default,
            rename = "upstreamStsEndpoint",
            skip_serializing_if = "Option::is_none"
        )]
        upstream_sts_endpoint: Option<String>,
    },
}

/// One AssumeRole the broker makes upstream.
#[derive(Clone, Debug)]
pub struct BrokerCall {
    /// The STS endpoint (`None`: the region's).
    pub endpoint: Option<String>,
    /// The region (of the cluster), for signing and the default endpoint.
    pub region: String,
    /// Sign with this session instead of the broker's own identity (the second hop).
    pub as_session: Option<BrokerSession>,
    /// `RoleArn`.
    pub role_arn: String,
    /// `RoleSessionName`.
    pub session_name: String,
    /// `DurationSeconds`.
    pub duration_seconds: u32,
    /// `Tags`.
    pub tags: Vec<Tag>,
    /// `TransitiveTagKeys`.
    pub transitive_tag_keys: Vec<String>,
    /// `ExternalId`.
    pub external_id: Option<String>,
    /// `Policy`.
    pub policy: Option<String>,
}

/// A session STS issued upstream.
#[derive(Clone)]
pub struct BrokerSession {
    /// `AccessKeyId`.
    pub access_key_id: String,
    /// `SecretAccessKey`.
    pub secret_access_key: Secret<String>,
    /// `SessionToken`.
    pub session_token: Secret<String>,
    /// `Expiration`, epoch seconds.
    pub expiration: i64,
    /// `AssumedRoleUser.Arn`.
    pub assumed_role_arn: String,
    /// `AssumedRoleUser.AssumedRoleId`.
    pub assumed_role_id: String,
    /// The upstream request id, for the audit.
    pub request_id: String,
}

impl std::fmt::Debug for BrokerSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerSession")
            .field("access_key_id", &self.access_key_id)
            .field("assumed_role_arn", &self.assumed_role_arn)
            .field("expiration", &self.expiration)
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

/// Why the upstream STS gave no session.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    /// STS refused (its code, message and request id).
    #[error("{code}: {message} (upstream request {request_id})")]
    Refused {
        /// The AWS error code (`AccessDenied`, `RegionDisabledException`, ...).
        code: String,
        /// STS's message.
        message: String,
        /// The upstream request id.
        request_id: String,
    },
    /// STS throttled the broker, and retries did not get through.
    #[error("the upstream STS is throttling the broker: {0}")]
    Throttled(String),
    /// STS could not be reached, failed, or did not answer in time.
    #[error("the upstream STS is unavailable: {0}")]
    Unavailable(String),
    /// The broker has no identity to sign with.
    #[error("{0}")]
    NoIdentity(String),
}

/// The upstream STS, as the core uses it.
#[async_trait::async_trait]
pub trait Broker: Send + Sync {
    /// AssumeRole upstream.
    async fn assume_role(&self, call: BrokerCall) -> Result<BrokerSession, BrokerError>;

    /// The broker's own ARN, as GetCallerIdentity on the upstream STS (`endpoint`, else the
    /// region's) says it.
    async fn identity(
        &self,
        endpoint: Option<String>,
        region: String,
    ) -> Result<String, BrokerError>;

    /// The role `role_name` of the broker's own account as `iam:GetRole` at the upstream IAM
    /// (the one that goes with the STS `endpoint`) reads it; `None` when there is no such role.
    /// One attempt: this checks an association, it does not serve a pod.
    async fn role(
        &self,
        endpoint: Option<String>,
        region: String,
        role_name: String,
    ) -> Result<Option<UpstreamRole>, BrokerError>;
}

/// A role as the upstream IAM's GetRole shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamRole {
    /// `Arn`.
    pub arn: String,
    /// `AssumeRolePolicyDocument`, decoded.
    pub trust_policy: String,
}

/// What was checked of an association's roles upstream, and what was not, and why. Shown by
/// podid as `podidUpstreamChecks` in the association (SDKs ignore the member).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamChecks {
    /// The checks made, in words.
    pub checked: Vec<String>,
    /// The checks not made, each with the reason.
    pub skipped: Vec<String>,
}

/// The principal a trust policy names for `caller_arn` (GetCallerIdentity's ARN): a user as it
/// is; an assumed-role session as its role (`arn:aws:sts::A:assumed-role/R/S` →
/// `arn:aws:iam::A:role/R`; a role path, which STS does not show, must be added by hand).
pub fn trust_principal(caller_arn: &str) -> String {
    let mut parts = caller_arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("sts"), Some(_), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return caller_arn.to_owned();
    };
    match resource
        .strip_prefix("assumed-role/")
        .and_then(|r| r.split('/').next())
    {
        Some(role) => format!("arn:{partition}:iam::{account}:role/{role}"),
        None => caller_arn.to_owned(),
    }
}

impl Core {
    /// The broker of the `aws` credential backend.
    #[must_use]
    pub fn with_broker(mut self, broker: Arc<dyn Broker>) -> Self {
        self.eks.broker = Some(broker);
        self
    }

    /// The broker, or why there is none.
    pub(crate) fn broker(&self) -> Result<&Arc<dyn Broker>, Error> {
        self.eks.broker.as_ref().ok_or_else(|| {
            Error::ServiceFailure(
                "This cluster obtains credentials from an upstream STS, but the server has no broker: start podid server with AWS credentials (--upstream-profile, or the standard credential chain).".into(),
            )
        })
    }
}

impl super::Eks<'_> {
    /// The trust policy a role needs for pods of `cluster` (an `aws`-backend cluster) to
    /// assume it through the broker: the broker's principal, `sts:AssumeRole` and
    /// `sts:TagSession`, and conditions on the session tags that pin the cluster and, when
    /// given, the namespace and service account. Needs `eks:DescribeCluster`.
    ///
    /// With `role_arn`, the statements that role needs for the cluster's associations that use
    /// it (also needs `eks:ListPodIdentityAssociations`): as an association's role, one
    /// statement per association for the broker, pinned to its namespace and service account
    /// (without tag conditions or `sts:TagSession` when the association disables session tags);
    /// as a target role, one statement for the association's role with its `sts:ExternalId`.
    pub async fn upstream_trust_policy(
        self,
        caller: &crate::auth::Caller,
        region: &str,
        cluster: &str,
        pin: TrustPin<'_>,
    ) -> Result<serde_json::Value, Error> {
        let (record, _) = self
            .cluster_for(caller, "eks:DescribeCluster", region, cluster)
            .await?;
        let CredentialBackend::Aws {
            upstream_sts_endpoint,
        } = &record.credential_backend
        else {
            return Err(Error::InvalidRequest(format!(
                "Cluster {cluster} uses the embedded credential backend: its roles trust pods.eks.amazonaws.com (sts:AssumeRole, sts:TagSession), not a broker."
            )));
        };
        let Some(role_arn) = pin.role_arn else {
            let principal = self
                .broker_principal(upstream_sts_endpoint.clone(), &record.region)
                .await?;
            let statement = broker_statement(
                "PodidBroker",
                &principal,
                cluster,
                pin.namespace,
                pin.service_account,
                true,
            );
            return Ok(serde_json::json!({"Version": "2012-10-17", "Statement": [statement]}));
        };
        self.core
            .authorize(caller, "eks:ListPodIdentityAssociations", &record.arn, &[])?;
        let prefix = format!("{}/", super::key(&[&record.account, region, cluster]));
        let mut associations = Vec::new();
        for item in self
            .core
            .store
            .scan(super::records::ns::ASSOCIATION, &prefix, None, 100_000)
            .await?
        {
            let a: super::AssociationRecord = crate::decode(&item)?;
            let pinned = pin.namespace.is_none_or(|n| n == a.namespace)
                && pin.service_account.is_none_or(|s| s == a.service_account);
            if pinned && (a.role_arn == role_arn || a.target_role_arn.as_deref() == Some(role_arn))
            {
                associations.push(a);
            }
        }
        if associations.is_empty() {
            return Err(Error::InvalidRequest(format!(
                "No Pod Identity association of cluster {cluster} uses {role_arn} as its role or target role{}: create the association first, or leave out --role for the statement that --namespace and --service-account pin.",
                if pin.namespace.is_some() || pin.service_account.is_some() {
                    " in that namespace and service account"
                } else {
                    ""
                }
            )));
        }
        associations.sort_by(|x, y| {
            (&x.namespace, &x.service_account).cmp(&(&y.namespace, &y.service_account))
        });
        let mut principal = None;
        let mut statements = Vec::new();
        for (n, a) in associations.iter().enumerate() {
            let sid = n + 1;
            if a.role_arn == role_arn {
                if principal.is_none() {
                    principal = Some(
                        self.broker_principal(upstream_sts_endpoint.clone(), &record.region)
                            .await?,
                    );
                }
                statements.push(broker_statement(
                    &format!("PodidBroker{sid}"),
                    principal.as_deref().unwrap_or_default(),
                    cluster,
                    Some(&a.namespace),
                    Some(&a.service_account),
                    !a.disable_session_tags,
                ));
            }
            if a.target_role_arn.as_deref() == Some(role_arn) {
                let actions: &[&str] = if a.disable_session_tags {
                    &["sts:AssumeRole"]
                } else {
                    &["sts:AssumeRole", "sts:TagSession"]
                };
                statements.push(serde_json::json!({
                    "Sid": format!("PodidTarget{sid}"),
                    "Effect": "Allow",
                    "Principal": {"AWS": a.role_arn},
                    "Action": actions,
                    "Condition": {"StringEquals": {"sts:ExternalId": a.external_id}},
                }));
            }
        }
        Ok(serde_json::json!({"Version": "2012-10-17", "Statement": statements}))
    }

    /// The principal that names the broker in trust policies, from GetCallerIdentity upstream.
    async fn broker_principal(
        self,
        endpoint: Option<String>,
        region: &str,
    ) -> Result<String, Error> {
        let identity = self
            .core
            .broker()?
            .identity(endpoint, region.to_owned())
            .await
            .map_err(|e| match e {
                BrokerError::Refused { code, message, request_id } => Error::AccessDenied(format!(
                    "The broker cannot read its own identity upstream: {code}: {message} (upstream request {request_id})."
                )),
                other => hop_failed(other, "identity of the", "broker"),
            })?;
        Ok(trust_principal(&identity))
    }
}

/// What `upstream_trust_policy` pins: a namespace, a service account, a role of associations.
#[derive(Clone, Copy, Debug, Default)]
pub struct TrustPin<'a> {
    /// `aws:RequestTag/kubernetes-namespace`.
    pub namespace: Option<&'a str>,
    /// `aws:RequestTag/kubernetes-service-account`.
    pub service_account: Option<&'a str>,
    /// The statements this role needs for the associations that use it.
    pub role_arn: Option<&'a str>,
}

/// A statement that lets the broker assume a role for pods of `cluster`, with session tags
/// (and conditions on them) when `tags`.
fn broker_statement(
    sid: &str,
    principal: &str,
    cluster: &str,
    namespace: Option<&str>,
    service_account: Option<&str>,
    tags: bool,
) -> serde_json::Value {
    if !tags {
        return serde_json::json!({
            "Sid": sid,
            "Effect": "Allow",
            "Principal": {"AWS": principal},
            "Action": "sts:AssumeRole",
        });
    }
    let mut conditions = serde_json::Map::new();
    conditions.insert("aws:RequestTag/eks-cluster-name".into(), cluster.into());
    if let Some(namespace) = namespace {
        conditions.insert(
            "aws:RequestTag/kubernetes-namespace".into(),
            namespace.into(),
        );
    }
    if let Some(service_account) = service_account {
        conditions.insert(
            "aws:RequestTag/kubernetes-service-account".into(),
            service_account.into(),
        );
    }
    serde_json::json!({
        "Sid": sid,
        "Effect": "Allow",
        "Principal": {"AWS": principal},
        "Action": ["sts:AssumeRole", "sts:TagSession"],
        "Condition": {"StringEquals": conditions},
    })
}

impl super::Eks<'_> {
    /// The checks of an association's roles on a cluster with the `aws` backend, after the ARN
    /// forms and the caller's `iam:PassRole` (done by the caller): with the broker's identity, a
    /// role in the broker's own account is read with `iam:GetRole` upstream: it must exist and
    /// its trust policy must name the broker with `sts:AssumeRole` (and `sts:TagSession` when
    /// tags are on). What cannot be checked (another account, GetRole denied, the upstream
    /// unreachable) is skipped and said.
    pub(crate) async fn upstream_role_checks(
        self,
        cluster: &super::ClusterRecord,
        endpoint: Option<String>,
        role_arn: &str,
        target_role_arn: Option<&str>,
        with_tags: bool,
    ) -> Result<UpstreamChecks, Error> {
        let mut checks = UpstreamChecks {
            checked: vec![
                "the role ARNs' form and account number".into(),
                "iam:PassRole of the role by the caller, in podid".into(),
            ],
            skipped: Vec::new(),
        };
        let exists = "the role's existence and its trust of the broker";
        if let Some(target) = target_role_arn {
            checks.skipped.push(format!(
                "the target role {target}'s existence and its trust of the association role with the external id: the upstream STS decides at the first pod"
            ));
        }
        let broker = match self.core.broker() {
            Ok(broker) => broker,
            Err(_) => {
                checks
                    .skipped
                    .push(format!("{exists}: this server has no broker identity"));
                return Ok(checks);
            }
        };
        let identity = match broker
            .identity(endpoint.clone(), cluster.region.clone())
            .await
        {
            Ok(arn) => arn,
            Err(e) => {
                checks.skipped.push(format!(
                    "{exists}: the broker's identity could not be read upstream ({e})"
                ));
                return Ok(checks);
            }
        };
        let broker_account = identity.split(':').nth(4).unwrap_or_default().to_owned();
        let role_account = super::names::role_account(role_arn).unwrap_or_default();
        if role_account != broker_account {
            checks.skipped.push(format!(
                "{exists}: the role is in account {role_account}, and iam:GetRole reads only the broker's own account ({broker_account})"
            ));
            return Ok(checks);
        }
        let name = role_arn.rsplit('/').next().unwrap_or_default().to_owned();
        let role = match broker.role(endpoint, cluster.region.clone(), name).await {
            Ok(role) => role,
            Err(e) => {
                checks.skipped.push(format!(
                    "{exists}: the broker could not read the role with iam:GetRole upstream ({e})"
                ));
                return Ok(checks);
            }
        };
        let Some(role) = role.filter(|r| r.arn == role_arn) else {
            return Err(Error::InvalidParameter(format!(
                "Role provided in the request does not exist: the upstream IAM has no role {role_arn}."
            )));
        };
        let principal = trust_principal(&identity);
        let names_broker = |p: &serde_json::Value| {
            p == "*"
                || super::associations::strings(p.get("AWS")).iter().any(|a| {
                    *a == "*"
                        || *a == principal
                        || *a == broker_account
                        || (a.ends_with(&format!(":iam::{broker_account}:root"))
                            && a.starts_with("arn:"))
                })
        };
        if !super::associations::trusts(&role.trust_policy, with_tags, names_broker) {
            return Err(Error::InvalidParameter(format!(
                "Trust policy of the role provided is invalid: {role_arn} does not allow the broker {principal} sts:AssumeRole{}. `podid cluster trust-policy {}` prints the statement to add.",
                if with_tags { " and sts:TagSession" } else { "" },
                cluster.name
            )));
        }
        checks.checked.push(format!(
            "the role exists upstream and its trust policy names the broker {principal} (iam:GetRole; conditions are left to the upstream STS)"
        ));
        Ok(checks)
    }
}

/// EKS Auth's error for a failed upstream hop.
pub(crate) fn hop_failed(e: BrokerError, hop: &str, role: &str) -> Error {
    match e {
        BrokerError::Refused {
            code,
            message,
            request_id,
        } => {
            let hint = if message.contains("transitive tag key") {
                "The broker's own session carries transitive session tags with the same keys: give the broker credentials without them (a broker that gets its identity from EKS Pod Identity needs an association with disableSessionTags)."
            } else {
                "The role's trust policy must allow the broker sts:AssumeRole and sts:TagSession: `podid cluster trust-policy` prints the statement."
            };
            let text = format!(
                "EKS Pod Identity could not assume the {hop} {role} upstream: {code}: {message} (upstream request {request_id}). {hint}"
            );
            match code.as_str() {
                "AccessDenied" | "AccessDeniedException" => Error::AccessDenied(text),
                "ExpiredToken" | "ExpiredTokenException" => Error::ExpiredToken(text),
                "PackedPolicyTooLarge" => Error::PackedPolicyTooLarge(text),
                "MalformedPolicyDocument" | "ValidationError" | "InvalidParameterValue" => {
                    Error::InvalidParameter(text)
                }
                _ => Error::AccessDenied(text),
            }
        }
        BrokerError::Throttled(detail) => Error::Throttling(format!(
            "The upstream STS is throttling requests; retry later ({detail})."
        )),
        BrokerError::Unavailable(detail) => Error::ServiceUnavailable(format!(
            "The upstream STS is unavailable; retry later ({detail})."
        )),
        BrokerError::NoIdentity(detail) => Error::ServiceFailure(detail),
    }
}

#[cfg(test)]
mod tests {
    use super::trust_principal;

    #[test]
    fn a_session_is_trusted_as_its_role_and_a_user_as_itself() {
        assert_eq!(
            trust_principal("arn:aws:sts::111122223333:assumed-role/podid-broker/i-0abc"),
            "arn:aws:iam::111122223333:role/podid-broker"
        );
        assert_eq!(
            trust_principal("arn:aws-cn:sts::111122223333:assumed-role/b/s"),
            "arn:aws-cn:iam::111122223333:role/b"
        );
        assert_eq!(
            trust_principal("arn:aws:iam::111122223333:user/broker"),
            "arn:aws:iam::111122223333:user/broker"
        );
    }
}
