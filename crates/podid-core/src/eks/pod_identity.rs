//! EKS Auth's AssumeRoleForPodIdentity: a pod's service-account token in, AWS credentials out.
//!
//! 1. The caller (a node) needs `eks-auth:AssumeRoleForPodIdentity` on the cluster.
//! 2. The token is verified against the cluster's keys (local, or the external issuer's key
//!    set, fetched again once when the token names a key the cached set lacks).
//! 3. The association of (cluster, namespace, service account) names the role.
//! 4. The role is assumed as `pods.eks.amazonaws.com` through the one assume core, with the six
//!    transitive session tags unless they are disabled.
//! 5. With a target role, the first session assumes it (role chaining), passing the
//!    association's external id and session policy.
//!
//! Every call leaves a structured log line (target `podid::audit`) and adds what it found (the
//! token's namespace, service account and pod, the association, the roles assumed) to the
//! request's audit record, which the server writes before the credentials are returned.

use podid_jwt::Jwks;
use serde::Serialize;
use serde_json::Value;

use podid_types::Timestamp;

use super::records::{AssociationRecord, ClusterRecord};
use super::upstream::{self, BrokerCall, CredentialBackend};
use super::{EksAuth, PODS_SERVICE, names};
use crate::auth::Caller;
use crate::error::Error;
use crate::records::Tag;
use crate::sts::{AssumeRole, AssumedRole, Assumer, SessionCredentials};

/// Clock skew allowed on a token's `exp`, `nbf` and `iat`, in seconds.
pub const TOKEN_LEEWAY_SECONDS: i64 = 60;

/// How long the credentials of a one-hop association last by default, and at most (EKS Pod
/// Identity: six hours).
pub const ONE_HOP_SECONDS: u32 = 6 * 3600;

/// The shortest credential lifetime a server may set: STS's minimum session, 15 minutes.
pub const MIN_CREDENTIAL_SECONDS: u32 = 900;

/// How long a target role's credentials last at most: role chaining's limit, one hour.
const TARGET_SECONDS: u32 = 3600;

/// What AssumeRoleForPodIdentity returns.
#[derive(Clone, Debug)]
pub struct PodCredentials {
    /// The token's namespace.
    pub namespace: String,
    /// The token's service account.
    pub service_account: String,
    /// The association used.
    pub association_arn: String,
    /// Its id.
    pub association_id: String,
    /// The session the pod gets (the target role's, when there is one).
    pub assumed: AssumedRole,
}

/// One decision of AssumeRoleForPodIdentity, for auditing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodIdentityDecision {
    /// When, epoch milliseconds.
    pub time: i64,
    /// The caller (the node's identity).
    pub caller: String,
    /// The cluster.
    pub cluster: String,
    /// The token's namespace, service account and pod, when the token was read.
    pub namespace: Option<String>,
    /// The service account.
    pub service_account: Option<String>,
    /// The pod's name.
    pub pod: Option<String>,
    /// The association used.
    pub association_id: Option<String>,
    /// The roles assumed, in order.
    pub roles: Vec<String>,
    /// `allowed` or the error code.
    pub outcome: String,
    /// Why not, when refused.
    pub reason: Option<String>,
}

/// What a verified token says.
pub(super) struct PodClaims {
    pub(super) namespace: String,
    pub(super) service_account: String,
    pub(super) pod: Option<(String, String)>,
}

impl EksAuth<'_> {
    /// How long a target role's credentials last: the server's lifetime, at most an hour.
    fn target_seconds(self) -> u32 {
        self.core.eks.pod_credential_seconds.min(TARGET_SECONDS)
    }

    /// AssumeRoleForPodIdentity.
    pub async fn assume_role_for_pod_identity(
        self,
        caller: &Caller,
        region: &str,
        cluster: &str,
        token: &str,
    ) -> Result<PodCredentials, Error> {
        let mut decision = PodIdentityDecision {
            time: self.core.now(),
            caller: caller.arn().to_owned(),
            cluster: cluster.to_owned(),
            namespace: None,
            service_account: None,
            pod: None,
            association_id: None,
            roles: Vec::new(),
            outcome: "allowed".into(),
            reason: None,
        };
        let result = self
            .pod_identity(caller, region, cluster, token, &mut decision)
            .await;
        if let Err(e) = &result {
            decision.outcome = error_code(e).into();
            decision.reason = Some(e.to_string());
        }
        tracing::info!(
            target: "podid::audit",
            caller = %decision.caller,
            cluster = %decision.cluster,
            namespace = decision.namespace.as_deref().unwrap_or("-"),
            service_account = decision.service_account.as_deref().unwrap_or("-"),
            pod = decision.pod.as_deref().unwrap_or("-"),
            association = decision.association_id.as_deref().unwrap_or("-"),
            roles = %decision.roles.join(" -> "),
            outcome = %decision.outcome,
            reason = decision.reason.as_deref().unwrap_or("-"),
            "AssumeRoleForPodIdentity"
        );
        if let Some(audit) = caller.audit() {
            for role in &decision.roles {
                audit.note_account_of(role);
            }
            audit.add_data(
                "podIdentity",
                serde_json::to_value(&decision).unwrap_or_default(),
            );
        }
        result
    }

    async fn pod_identity(
        self,
        caller: &Caller,
        region: &str,
        cluster_name: &str,
        token: &str,
        decision: &mut PodIdentityDecision,
    ) -> Result<PodCredentials, Error> {
        names::cluster_name(cluster_name)?;
        let (cluster, _) = self
            .core
            .eks()
            .cluster_for(
                caller,
                "eks-auth:AssumeRoleForPodIdentity",
                region,
                cluster_name,
            )
            .await?;
        let claims = self.verify_pod_token(&cluster, token).await?;
        decision.namespace = Some(claims.namespace.clone());
        decision.service_account = Some(claims.service_account.clone());
        decision.pod = claims.pod.as_ref().map(|(name, _)| name.clone());
        let association = self
            .core.eks().association_of(&cluster, &claims.namespace, &claims.service_account)
            .await?
            .ok_or_else(|| {
                Error::ResourceNotFound(format!(
                    "No Pod Identity association found for service account {} in namespace {} of cluster {cluster_name}.",
                    claims.service_account, claims.namespace
                ))
            })?;
        decision.association_id = Some(association.id.clone());
        if let CredentialBackend::Aws {
            upstream_sts_endpoint,
        } = &cluster.credential_backend
        {
            let assumed = self
                .upstream_hops(
                    caller,
                    &cluster,
                    &association,
                    &claims,
                    upstream_sts_endpoint.clone(),
                    decision,
                )
                .await?;
            return Ok(PodCredentials {
                namespace: claims.namespace,
                service_account: claims.service_account,
                association_arn: association.arn,
                association_id: association.id,
                assumed,
            });
        }
        let first = self
            .first_hop(&cluster, &association, &claims)
            .await
            .map_err(|e| hop_error(e, "association role", &association.role_arn))?;
        decision.roles.push(association.role_arn.clone());
        let assumed = match &association.target_role_arn {
            None => first,
            Some(target) => {
                let session = self
                    .core
                    .open_session(
                        first.credentials.session_token.expose(),
                        &first.credentials.access_key_id,
                    )
                    .await?;
                let from = self.core.session_caller(&session).await?;
                let assumed = self
                    .core
                    .sts()
                    .assume(
                        Assumer::Caller(&from),
                        self.target_request(&cluster, &association, &claims, target),
                    )
                    .await
                    .map_err(|e| hop_error(e, "target role", target))?;
                decision.roles.push(target.clone());
                assumed
            }
        };
        Ok(PodCredentials {
            namespace: claims.namespace,
            service_account: claims.service_account,
            association_arn: association.arn,
            association_id: association.id,
            assumed,
        })
    }

    /// The `aws` backend: both hops made upstream by the broker, with the same session names,
    /// tags, external id and session policy as the embedded hops. Upstream sessions last an
    /// hour (the default maximum of an IAM role, and role chaining's limit), or the server's
    /// shorter credential lifetime.
    async fn upstream_hops(
        self,
        caller: &Caller,
        cluster: &ClusterRecord,
        association: &AssociationRecord,
        claims: &PodClaims,
        endpoint: Option<String>,
        decision: &mut PodIdentityDecision,
    ) -> Result<AssumedRole, Error> {
        let broker = self.core.broker()?;
        let session_name = session_name(&cluster.name, claims.pod.as_ref(), self.core.ids());
        let tags = session_tags(cluster, association, claims);
        let chained = association.target_role_arn.is_some();
        let mut request_ids = Vec::new();
        let first = broker
            .assume_role(BrokerCall {
                endpoint: endpoint.clone(),
                region: cluster.region.clone(),
                as_session: None,
                role_arn: association.role_arn.clone(),
                session_name: session_name.clone(),
                duration_seconds: self.target_seconds(),
                transitive_tag_keys: tags.iter().map(|t| t.key.clone()).collect(),
                tags,
                external_id: None,
                policy: if chained {
                    None
                } else {
                    association.policy.clone()
                },
            })
            .await
            .map_err(|e| upstream::hop_failed(e, "association role", &association.role_arn))?;
        decision.roles.push(association.role_arn.clone());
        request_ids.push(first.request_id.clone());
        let last = match &association.target_role_arn {
            None => first,
            Some(target) => {
                let second = broker
                    .assume_role(BrokerCall {
                        endpoint,
                        region: cluster.region.clone(),
                        as_session: Some(first),
                        role_arn: target.clone(),
                        session_name,
                        duration_seconds: self.target_seconds(),
                        tags: Vec::new(),
                        transitive_tag_keys: Vec::new(),
                        external_id: association.external_id.clone(),
                        policy: association.policy.clone(),
                    })
                    .await
                    .map_err(|e| upstream::hop_failed(e, "target role", target))?;
                decision.roles.push(target.clone());
                request_ids.push(second.request_id.clone());
                second
            }
        };
        if let Some(audit) = caller.audit() {
            audit.add_data("upstreamRequestIds", serde_json::json!(request_ids));
        }
        Ok(AssumedRole {
            credentials: SessionCredentials {
                access_key_id: last.access_key_id,
                secret_access_key: last.secret_access_key,
                session_token: last.session_token,
                expiration: Timestamp::from_secs(last.expiration),
            },
            assumed_role_id: last.assumed_role_id,
            arn: last.assumed_role_arn,
            packed_policy_size: None,
            source_identity: None,
        })
    }

    /// The association role, assumed as the EKS Pod Identity service principal.
    async fn first_hop(
        self,
        cluster: &ClusterRecord,
        association: &AssociationRecord,
        claims: &PodClaims,
    ) -> Result<AssumedRole, Error> {
        self.core
            .sts()
            .assume(
                Assumer::Service(PODS_SERVICE),
                self.first_request(cluster, association, claims),
            )
            .await
    }

    /// The first hop's AssumeRole, as EKS Pod Identity asks it of STS: the association role,
    /// with the six session tags (transitive).
    pub(super) fn first_request(
        self,
        cluster: &ClusterRecord,
        association: &AssociationRecord,
        claims: &PodClaims,
    ) -> AssumeRole {
        let tags = session_tags(cluster, association, claims);
        let transitive = tags.iter().map(|t| t.key.clone()).collect();
        AssumeRole {
            role_arn: association.role_arn.clone(),
            session_name: session_name(&cluster.name, claims.pod.as_ref(), self.core.ids()),
            duration_seconds: Some(if association.target_role_arn.is_some() {
                self.target_seconds()
            } else {
                self.core.eks.pod_credential_seconds
            }),
            tags,
            transitive_tag_keys: transitive,
            // With a target role, the session policy restricts only the target.
            policy: if association.target_role_arn.is_some() {
                None
            } else {
                association.policy.clone()
            },
            ..Default::default()
        }
    }

    /// The second hop's AssumeRole, made as the first hop's session: the target role, with the
    /// association's external id and session policy.
    pub(super) fn target_request(
        self,
        cluster: &ClusterRecord,
        association: &AssociationRecord,
        claims: &PodClaims,
        target: &str,
    ) -> AssumeRole {
        AssumeRole {
            role_arn: target.to_owned(),
            session_name: session_name(&cluster.name, claims.pod.as_ref(), self.core.ids()),
            duration_seconds: Some(self.target_seconds()),
            external_id: association.external_id.clone(),
            policy: association.policy.clone(),
            ..Default::default()
        }
    }

    /// Verifies a service-account token for `cluster`; what it says about the pod.
    async fn verify_pod_token(
        self,
        cluster: &ClusterRecord,
        token: &str,
    ) -> Result<PodClaims, Error> {
        let unverified = podid_jwt::decode_unverified(token).map_err(|_| {
            Error::InvalidToken(
                "The service account token is not a JWT: it must be three base64url parts (header, claims, signature).".into(),
            )
        })?;
        let kid = unverified
            .header
            .get("kid")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut jwks = self.core.eks().cluster_jwks(cluster)?;
        if !kid.is_empty() && !has_kid(&jwks, kid) {
            // An external issuer may have rotated its keys since the key set was fetched.
            let refreshed = self.core.eks().refresh_cluster_jwks(cluster, true).await?;
            jwks = self.core.eks().cluster_jwks(&refreshed)?;
        }
        let now = self.core.clock.now();
        let claims = unverified
            .verify(&jwks, now, TOKEN_LEEWAY_SECONDS)
            .map_err(|e| match e {
                podid_jwt::JwtError::Expired(at) => Error::ExpiredIdentityToken(format!(
                    "The service account token expired at {} (epoch {}); the kubelet refreshes projected tokens, so check the pod's token file and the node's clock.",
                    at.to_iso8601(),
                    at.as_secs()
                )),
                podid_jwt::JwtError::UnknownKey(kid) => Error::InvalidToken(format!(
                    "The service account token is signed with key `{kid}`, which is not a key of cluster {}'s issuer: was it issued by another cluster?",
                    cluster.name
                )),
                podid_jwt::JwtError::NotYetValid { claim, at } => Error::InvalidToken(format!(
                    "The service account token's `{claim}` claim says it is not valid before {}, but this server's clock reads {}: the clocks of the token's issuer and of this server differ by more than {TOKEN_LEEWAY_SECONDS} seconds; synchronize them (NTP).",
                    at.to_iso8601(),
                    now.to_iso8601()
                )),
                other => Error::InvalidToken(format!(
                    "The service account token was refused: {other}."
                )),
            })?;
        let text = |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or_default();
        if text("iss") != cluster.issuer {
            return Err(Error::InvalidToken(format!(
                "The service account token's issuer `{}` is not cluster {}'s issuer `{}`.",
                text("iss"),
                cluster.name,
                cluster.issuer
            )));
        }
        let audience_ok = match claims.get("aud") {
            Some(Value::String(a)) => a == PODS_SERVICE,
            Some(Value::Array(list)) => list.iter().any(|a| a == PODS_SERVICE),
            _ => false,
        };
        if !audience_ok {
            return Err(Error::InvalidToken(format!(
                "The service account token's audience is not `{PODS_SERVICE}`: project the token with that audience."
            )));
        }
        let sub = text("sub");
        let Some((namespace, service_account)) = sub
            .strip_prefix("system:serviceaccount:")
            .and_then(|rest| rest.split_once(':'))
        else {
            return Err(Error::InvalidToken(format!(
                "The service account token's subject `{sub}` is not `system:serviceaccount:NAMESPACE:NAME`."
            )));
        };
        let kubernetes = claims.get("kubernetes.io").cloned().unwrap_or(Value::Null);
        let field = |path: &[&str]| {
            let mut v = &kubernetes;
            for p in path {
                v = v.get(p).unwrap_or(&Value::Null);
            }
            v.as_str().unwrap_or_default().to_owned()
        };
        if field(&["namespace"]) != namespace
            || field(&["serviceaccount", "name"]) != service_account
        {
            return Err(Error::InvalidToken(
                "The service account token's `kubernetes.io` claims do not match its subject."
                    .into(),
            ));
        }
        let pod_name = field(&["pod", "name"]);
        Ok(PodClaims {
            namespace: namespace.to_owned(),
            service_account: service_account.to_owned(),
            pod: (!pod_name.is_empty()).then(|| (pod_name, field(&["pod", "uid"]))),
        })
    }
}

/// The six session tags of EKS Pod Identity (none when the association disables them; empty
/// values left out).
fn session_tags(
    cluster: &ClusterRecord,
    association: &AssociationRecord,
    claims: &PodClaims,
) -> Vec<Tag> {
    if association.disable_session_tags {
        return Vec::new();
    }
    let (pod_name, pod_uid) = claims.pod.clone().unwrap_or_default();
    [
        ("eks-cluster-arn", cluster.arn.clone()),
        ("eks-cluster-name", cluster.name.clone()),
        ("kubernetes-namespace", claims.namespace.clone()),
        ("kubernetes-service-account", claims.service_account.clone()),
        ("kubernetes-pod-name", pod_name),
        ("kubernetes-pod-uid", pod_uid),
    ]
    .into_iter()
    .filter(|(_, value)| !value.is_empty())
    .map(|(key, value)| Tag {
        key: key.into(),
        value,
    })
    .collect()
}

fn has_kid(jwks: &Jwks, kid: &str) -> bool {
    jwks.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
}

/// `eks-<cluster>-<pod>-<uuid>`, fitted to STS's 64 characters: the UUID is kept whole (it
/// makes the name unique); the cluster and pod names are shortened, the longer first, and
/// characters STS does not allow are left out.
fn session_name(cluster: &str, pod: Option<&(String, String)>, ids: &dyn crate::Ids) -> String {
    let uuid = ids.request_id();
    let allowed = |c: &char| c.is_ascii_alphanumeric() || "+=,.@-_".contains(*c);
    let mut cluster: String = cluster.chars().filter(allowed).collect();
    let mut pod: String = pod
        .map(|(name, _)| name.chars().filter(allowed).collect())
        .unwrap_or_else(|| "pod".into());
    // "eks-" + cluster + "-" + pod + "-" + uuid (36)
    let budget = 64 - 4 - 1 - 1 - uuid.len();
    while cluster.len() + pod.len() > budget {
        if cluster.len() >= pod.len() {
            cluster.pop();
        } else {
            pod.pop();
        }
    }
    format!("eks-{cluster}-{pod}-{uuid}")
}

/// Which hop failed, and why, in the refusal's own words.
fn hop_error(e: Error, hop: &str, role: &str) -> Error {
    match e {
        Error::AccessDenied(message) => Error::AccessDenied(format!(
            "EKS Pod Identity could not assume the {hop} {role}: {message}"
        )),
        Error::Validation(message) | Error::InvalidParameterValue(message) => {
            Error::InvalidRequest(format!(
                "EKS Pod Identity could not assume the {hop} {role}: {message}"
            ))
        }
        Error::PackedPolicyTooLarge(message) => Error::InvalidRequest(format!(
            "EKS Pod Identity could not assume the {hop} {role}: {message} Set disableSessionTags on the association to leave the session tags out."
        )),
        other => other,
    }
}

fn error_code(e: &Error) -> &'static str {
    match e {
        Error::AccessDenied(_) => "AccessDeniedException",
        Error::InvalidToken(_) => "InvalidTokenException",
        Error::ExpiredIdentityToken(_) => "ExpiredTokenException",
        Error::ResourceNotFound(_) => "ResourceNotFoundException",
        Error::InvalidParameter(_) => "InvalidParameterException",
        Error::InvalidRequest(_) => "InvalidRequestException",
        _ => "InternalServerException",
    }
}
