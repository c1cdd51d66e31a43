//! Pod Identity associations: Create, Describe, List, Update, Delete.
//!
//! Records (keys are `ACCOUNT/REGION/CLUSTER/...`):
//! - `association`: `.../ID` → the association;
//! - `association-sa`: `.../NAMESPACE/SERVICE_ACCOUNT` → `{id, owner}`, created with the
//!   association under an "absent" condition, so one service account has one association
//!   however many creates race; lists page through this index in (namespace, service account)
//!   order, so a page costs the same whatever the cluster holds;
//! - `association-token`: `.../CLIENT_REQUEST_TOKEN` → the request and the id (idempotency);
//! - `association-count`: `ACCOUNT/REGION/CLUSTER/SHARD` → how many the cluster has (the
//!   quota), in shards by the id's first two random characters (the record names its shard).

use std::collections::BTreeMap;

use podid_policy::ContextValue;
use podid_store::{Condition, Op};
use serde::{Deserialize, Serialize};

use super::clusters::{decode_token, encode_token, max_results_of, more, tag_context};
use super::records::{AssociationRecord, ClusterRecord, ns};
use super::{Eks, EksPage, PODS_SERVICE, key, names};
use crate::auth::Caller;
use crate::encode;
use crate::error::Error;
use crate::iam::{RETRIES, busy, is_conflict};
use crate::records::RoleRecord;

/// A CreatePodIdentityAssociation request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CreateAssociation {
    /// `namespace`.
    pub namespace: String,
    /// `serviceAccount`.
    pub service_account: String,
    /// `roleArn`.
    pub role_arn: String,
    /// `targetRoleArn`.
    pub target_role_arn: Option<String>,
    /// `disableSessionTags`.
    pub disable_session_tags: bool,
    /// `policy`.
    pub policy: Option<String>,
    /// `tags`.
    pub tags: BTreeMap<String, String>,
    /// `clientRequestToken`.
    #[serde(skip)]
    pub client_request_token: Option<String>,
}

/// An UpdatePodIdentityAssociation request: what to change.
#[derive(Clone, Debug, Default)]
pub struct UpdateAssociation {
    /// `roleArn`.
    pub role_arn: Option<String>,
    /// `targetRoleArn` (`Some("")` removes the target role).
    pub target_role_arn: Option<String>,
    /// `disableSessionTags`.
    pub disable_session_tags: Option<bool>,
    /// `policy` (`Some("")` removes it).
    pub policy: Option<String>,
}

/// ListPodIdentityAssociations' filters and page.
#[derive(Clone, Debug, Default)]
pub struct ListAssociations {
    /// `namespace`.
    pub namespace: Option<String>,
    /// `serviceAccount`.
    pub service_account: Option<String>,
    /// `maxResults`.
    pub max_results: Option<u32>,
    /// `nextToken`.
    pub next_token: Option<String>,
}

/// What List shows of an association.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssociationSummary {
    /// `clusterName`.
    pub cluster: String,
    /// `namespace`.
    pub namespace: String,
    /// `serviceAccount`.
    pub service_account: String,
    /// `associationArn`.
    pub arn: String,
    /// `associationId`.
    pub id: String,
    /// `ownerArn`.
    pub owner_arn: Option<String>,
}

/// The service-account index entry.
#[derive(Serialize, Deserialize)]
struct IndexEntry {
    id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
}

/// The idempotency record of a create.
#[derive(Serialize, Deserialize)]
struct TokenEntry {
    request: String,
    id: String,
}

impl Eks<'_> {
    /// CreatePodIdentityAssociation.
    pub async fn create_association(
        self,
        caller: &Caller,
        region: &str,
        cluster: &str,
        input: CreateAssociation,
    ) -> Result<AssociationRecord, Error> {
        self.create_owned_association(caller, region, cluster, input, None)
            .await
    }

    /// Creates an association owned by `owner` (an add-on's ARN: deleted with the add-on);
    /// with no owner, CreatePodIdentityAssociation.
    pub(crate) async fn create_owned_association(
        self,
        caller: &Caller,
        region: &str,
        cluster: &str,
        input: CreateAssociation,
        owner: Option<String>,
    ) -> Result<AssociationRecord, Error> {
        names::cluster_name(cluster)?;
        names::namespace(&input.namespace)?;
        names::service_account(&input.service_account)?;
        names::tags(&input.tags)?;
        check_policy(&input.policy, input.disable_session_tags)?;
        let account = caller.account().to_string();
        let cluster_arn = format!("arn:aws:eks:{region}:{account}:cluster/{cluster}");
        self.core.authorize(
            caller,
            "eks:CreatePodIdentityAssociation",
            &cluster_arn,
            &tag_context(&input.tags),
        )?;
        let (record, _) = self.cluster_record(&account, region, cluster).await?;
        let upstream_checks = self
            .check_roles(
                caller,
                &record,
                &input.role_arn,
                input.target_role_arn.as_deref(),
                input.disable_session_tags,
            )
            .await?;
        let cluster_key = key(&[&account, region, cluster]);
        let fingerprint = serde_json::to_string(&input).unwrap_or_default();
        if let Some(token) = &input.client_request_token
            && let Some(existing) = self.replay(&cluster_key, token, &fingerprint).await?
        {
            return Ok(existing);
        }
        let id = format!("a-{}", self.core.ids.lower_alphanumeric(17));
        let now = self.core.now();
        let association = AssociationRecord {
            arn: format!("arn:aws:eks:{region}:{account}:podidentityassociation/{cluster}/{id}"),
            id: id.clone(),
            account: account.clone(),
            region: region.to_owned(),
            cluster: cluster.to_owned(),
            external_id: input.target_role_arn.as_ref().map(|_| {
                external_id(
                    region,
                    &account,
                    cluster,
                    &input.namespace,
                    &input.service_account,
                )
            }),
            namespace: input.namespace.clone(),
            service_account: input.service_account.clone(),
            role_arn: input.role_arn.clone(),
            target_role_arn: input.target_role_arn.clone(),
            disable_session_tags: input.disable_session_tags,
            policy: input.policy.clone(),
            tags: input.tags.clone(),
            owner_arn: owner.clone(),
            created: now,
            modified: now,
            client_request_token: input.client_request_token.clone(),
            upstream_checks,
            count_shard: Some(count_shard(&id)),
        };
        let sa_key = key(&[&cluster_key, &input.namespace, &input.service_account]);
        for _ in 0..RETRIES {
            let count = self.association_total(&cluster_key).await?;
            let (shard_count, version) = self.shard_count(&cluster_key, &association).await?;
            if count >= u64::from(self.core.eks.association_quota) {
                return Err(Error::ResourceLimitExceeded(format!(
                    "Cluster {cluster} has reached its quota of {} Pod Identity associations.",
                    self.core.eks.association_quota
                )));
            }
            let mut ops = vec![
                Op::create(
                    ns::ASSOCIATION,
                    key(&[&cluster_key, &id]),
                    encode(&association),
                ),
                Op::create(
                    ns::ASSOCIATION_SA,
                    sa_key.clone(),
                    encode(&IndexEntry {
                        id: id.clone(),
                        owner: owner.clone(),
                    }),
                ),
                count_op(&cluster_key, &association, shard_count + 1, version),
                self.core
                    .association_change(&association, "association created"),
            ];
            if let Some(token) = &input.client_request_token {
                ops.push(Op::create(
                    ns::ASSOCIATION_TOKEN,
                    key(&[&cluster_key, token]),
                    encode(&TokenEntry {
                        request: fingerprint.clone(),
                        id: id.clone(),
                    }),
                ));
            }
            match self.core.commit_as(caller, ops).await {
                Ok(()) => {
                    self.core.eks.totals.created(&cluster_key);
                    return Ok(association);
                }
                Err(podid_store::StoreError::Conflict { index: 1, .. }) => {
                    // Another create for this service account won (perhaps this very request,
                    // retried by its client with the same token).
                    if let Some(token) = &input.client_request_token
                        && let Some(existing) =
                            self.replay(&cluster_key, token, &fingerprint).await?
                    {
                        return Ok(existing);
                    }
                    let existing = self
                        .core
                        .store
                        .get(ns::ASSOCIATION_SA, &sa_key)
                        .await?
                        .and_then(|i| serde_json::from_str::<IndexEntry>(&i.value).ok())
                        .map(|e| e.id)
                        .unwrap_or_default();
                    return Err(Error::ResourceInUse(format!(
                        "Association already exists: {existing}"
                    )));
                }
                Err(podid_store::StoreError::Conflict { index: 3, .. }) => {
                    if let Some(token) = &input.client_request_token
                        && let Some(existing) =
                            self.replay(&cluster_key, token, &fingerprint).await?
                    {
                        return Ok(existing);
                    }
                }
                Err(e) if is_conflict(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(busy())
    }

    /// DescribePodIdentityAssociation.
    pub async fn describe_association(
        self,
        caller: &Caller,
        region: &str,
        cluster: &str,
        id: &str,
    ) -> Result<AssociationRecord, Error> {
        self.association_for(
            caller,
            "eks:DescribePodIdentityAssociation",
            region,
            cluster,
            id,
        )
        .await
        .map(|(a, _)| a)
    }

    /// ListPodIdentityAssociations: summaries in (namespace, service account) order.
    pub async fn list_associations(
        self,
        caller: &Caller,
        region: &str,
        cluster: &str,
        input: &ListAssociations,
    ) -> Result<EksPage<AssociationSummary>, Error> {
        names::cluster_name(cluster)?;
        let limit = max_results_of(input.max_results)?;
        let account = caller.account().to_string();
        let cluster_arn = format!("arn:aws:eks:{region}:{account}:cluster/{cluster}");
        self.core
            .authorize(caller, "eks:ListPodIdentityAssociations", &cluster_arn, &[])?;
        self.cluster_record(&account, region, cluster).await?;
        let cluster_key = key(&[&account, region, cluster]);
        let list_prefix = format!("{cluster_key}/");
        let prefix = match (&input.namespace, &input.service_account) {
            (Some(namespace), _) => format!("{list_prefix}{namespace}/"),
            (None, _) => list_prefix.clone(),
        };
        let after = input
            .next_token
            .as_deref()
            .map(|t| decode_token(t, &list_prefix))
            .transpose()?;
        let mut items = match (&input.namespace, &input.service_account) {
            (Some(_), Some(sa)) => {
                // One service account has at most one association.
                let exact = format!("{prefix}{sa}");
                let found = self.core.store.get(ns::ASSOCIATION_SA, &exact).await?;
                found
                    .filter(|i| after.as_deref().is_none_or(|a| i.key.as_str() > a))
                    .into_iter()
                    .collect()
            }
            (None, Some(sa)) => {
                // Filtered by service account across namespaces: scan, keeping that name.
                let mut out = Vec::new();
                let mut cursor = after.clone();
                while out.len() <= limit {
                    let batch = self
                        .core
                        .store
                        .scan(ns::ASSOCIATION_SA, &prefix, cursor.as_deref(), 1000)
                        .await?;
                    let Some(last) = batch.last().map(|i| i.key.clone()) else {
                        break;
                    };
                    let full = batch.len() == 1000;
                    out.extend(
                        batch
                            .into_iter()
                            .filter(|i| i.key.ends_with(&format!("/{sa}"))),
                    );
                    if !full {
                        break;
                    }
                    cursor = Some(last);
                }
                out
            }
            _ => {
                self.core
                    .store
                    .scan(ns::ASSOCIATION_SA, &prefix, after.as_deref(), limit + 1)
                    .await?
            }
        };
        let next = more(&mut items, limit).map(|k| encode_token(&k));
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let Some(rest) = item.key.strip_prefix(&list_prefix) else {
                continue;
            };
            let Some((namespace, service_account)) = rest.split_once('/') else {
                continue;
            };
            let Ok(entry) = serde_json::from_str::<IndexEntry>(&item.value) else {
                continue;
            };
            out.push(AssociationSummary {
                cluster: cluster.to_owned(),
                namespace: namespace.to_owned(),
                service_account: service_account.to_owned(),
                arn: format!(
                    "arn:aws:eks:{region}:{account}:podidentityassociation/{cluster}/{}",
                    entry.id
                ),
                id: entry.id,
                owner_arn: entry.owner,
            });
        }
        Ok(EksPage {
            items: out,
            next_token: next,
        })
    }

    /// UpdatePodIdentityAssociation.
    pub async fn update_association(
        self,
        caller: &Caller,
        region: &str,
        cluster: &str,
        id: &str,
        input: UpdateAssociation,
    ) -> Result<AssociationRecord, Error> {
        self.update_owned_association(caller, region, cluster, id, input, None)
            .await
    }

    /// Updates an association as `owner` (an add-on's ARN, or `None` for a caller of
    /// UpdatePodIdentityAssociation): an add-on changes only associations it owns.
    pub(crate) async fn update_owned_association(
        self,
        caller: &Caller,
        region: &str,
        cluster: &str,
        id: &str,
        input: UpdateAssociation,
        owner: Option<&str>,
    ) -> Result<AssociationRecord, Error> {
        if input.role_arn.is_none()
            && input.target_role_arn.is_none()
            && input.disable_session_tags.is_none()
            && input.policy.is_none()
        {
            return Err(Error::InvalidParameter(
                "An update must change at least one of roleArn, targetRoleArn, disableSessionTags or policy.".into(),
            ));
        }
        for _ in 0..RETRIES {
            let (mut association, version) = self
                .association_for(
                    caller,
                    "eks:UpdatePodIdentityAssociation",
                    region,
                    cluster,
                    id,
                )
                .await?;
            check_owner(&association, owner)?;
            if let Some(role) = &input.role_arn {
                association.role_arn.clone_from(role);
            }
            match input.target_role_arn.as_deref() {
                Some("") => {
                    association.target_role_arn = None;
                    association.external_id = None;
                }
                Some(target) => {
                    association.target_role_arn = Some(target.to_owned());
                    association.external_id.get_or_insert_with(|| {
                        external_id(
                            region,
                            &association.account,
                            cluster,
                            &association.namespace,
                            &association.service_account,
                        )
                    });
                }
                None => {}
            }
            if let Some(disable) = input.disable_session_tags {
                association.disable_session_tags = disable;
            }
            match input.policy.as_deref() {
                Some("") => association.policy = None,
                Some(policy) => association.policy = Some(policy.to_owned()),
                None => {}
            }
            check_policy(&association.policy, association.disable_session_tags)?;
            let (cluster_record, _) = self
                .cluster_record(&association.account, region, cluster)
                .await?;
            if input.role_arn.is_some() || input.target_role_arn.is_some() {
                association.upstream_checks = self
                    .check_roles(
                        caller,
                        &cluster_record,
                        &association.role_arn,
                        association.target_role_arn.as_deref(),
                        association.disable_session_tags,
                    )
                    .await?;
            }
            association.modified = self.core.now();
            let association_key = key(&[&association.account, region, cluster, id]);
            match self
                .core
                .commit_as(
                    caller,
                    vec![
                        Op::update(
                            ns::ASSOCIATION,
                            association_key,
                            encode(&association),
                            version,
                        ),
                        self.core
                            .association_change(&association, "association updated"),
                    ],
                )
                .await
            {
                Ok(()) => return Ok(association),
                Err(e) if is_conflict(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(busy())
    }

    /// DeletePodIdentityAssociation: the deleted association.
    pub async fn delete_association(
        self,
        caller: &Caller,
        region: &str,
        cluster: &str,
        id: &str,
    ) -> Result<AssociationRecord, Error> {
        self.delete_owned_association(caller, region, cluster, id, None)
            .await
    }

    /// Deletes an association as `owner` (see [`Self::update_owned_association`]).
    pub(crate) async fn delete_owned_association(
        self,
        caller: &Caller,
        region: &str,
        cluster: &str,
        id: &str,
        owner: Option<&str>,
    ) -> Result<AssociationRecord, Error> {
        for _ in 0..RETRIES {
            let (mut association, version) = self
                .association_for(
                    caller,
                    "eks:DeletePodIdentityAssociation",
                    region,
                    cluster,
                    id,
                )
                .await?;
            check_owner(&association, owner)?;
            let cluster_key = key(&[&association.account, region, cluster]);
            let (shard_count, count_version) = self.shard_count(&cluster_key, &association).await?;
            let mut ops = vec![
                Op::delete(ns::ASSOCIATION, key(&[&cluster_key, id]), version),
                Op::Delete {
                    ns: ns::ASSOCIATION_SA,
                    key: key(&[
                        &cluster_key,
                        &association.namespace,
                        &association.service_account,
                    ]),
                    condition: Condition::Any,
                },
                count_op(
                    &cluster_key,
                    &association,
                    shard_count.saturating_sub(1),
                    count_version,
                ),
                self.core
                    .association_change(&association, "association deleted"),
            ];
            // The token that created it no longer replays it.
            if let Some(token) = &association.client_request_token {
                ops.push(Op::Delete {
                    ns: ns::ASSOCIATION_TOKEN,
                    key: key(&[&cluster_key, token]),
                    condition: Condition::Any,
                });
            }
            match self.core.commit_as(caller, ops).await {
                Ok(()) => {
                    association.modified = self.core.now();
                    return Ok(association);
                }
                Err(e) if is_conflict(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(busy())
    }

    /// The association for the credentials of a pod: (cluster, namespace, service account).
    pub async fn association_of(
        self,
        cluster: &ClusterRecord,
        namespace: &str,
        service_account: &str,
    ) -> Result<Option<AssociationRecord>, Error> {
        let cluster_key = key(&[&cluster.account, &cluster.region, &cluster.name]);
        let Some(item) = self
            .core
            .store
            .get(
                ns::ASSOCIATION_SA,
                &key(&[&cluster_key, namespace, service_account]),
            )
            .await?
        else {
            return Ok(None);
        };
        let Ok(entry) = serde_json::from_str::<IndexEntry>(&item.value) else {
            return Ok(None);
        };
        Ok(self
            .core
            .load::<AssociationRecord>(ns::ASSOCIATION, &key(&[&cluster_key, &entry.id]))
            .await?
            .map(|(a, _)| a))
    }

    async fn association_for(
        self,
        caller: &Caller,
        action: &str,
        region: &str,
        cluster: &str,
        id: &str,
    ) -> Result<(AssociationRecord, u64), Error> {
        names::cluster_name(cluster)?;
        names::association_id(id)?;
        let account = caller.account().to_string();
        let arn = format!("arn:aws:eks:{region}:{account}:podidentityassociation/{cluster}/{id}");
        self.core.authorize(caller, action, &arn, &[])?;
        self.cluster_record(&account, region, cluster).await?;
        self.core
            .load::<AssociationRecord>(ns::ASSOCIATION, &key(&[&account, region, cluster, id]))
            .await?
            .ok_or_else(|| {
                Error::ResourceNotFound(format!("No Pod Identity association found for id: {id}."))
            })
    }

    pub(super) async fn cluster_record(
        self,
        account: &str,
        region: &str,
        cluster: &str,
    ) -> Result<(ClusterRecord, u64), Error> {
        self.core
            .load::<ClusterRecord>(ns::CLUSTER, &key(&[account, region, cluster]))
            .await?
            .ok_or_else(|| {
                Error::ResourceNotFound(format!("No cluster found for name: {cluster}."))
            })
    }

    /// The association's role: passable by the caller to EKS Pod Identity, in the cluster's
    /// account, existing, and trusting `pods.eks.amazonaws.com`; the target role: a role ARN.
    /// With the `aws` backend, what could be checked upstream and what could not.
    async fn check_roles(
        self,
        caller: &Caller,
        cluster: &ClusterRecord,
        role_arn: &str,
        target_role_arn: Option<&str>,
        disable_session_tags: bool,
    ) -> Result<Option<super::UpstreamChecks>, Error> {
        if let Some(target) = target_role_arn
            && names::role_account(target).is_none()
        {
            return Err(Error::InvalidParameter(format!(
                "The parameter targetRoleArn is not a valid IAM role ARN: {target}"
            )));
        }
        // With the `aws` backend the roles live upstream: their account is the upstream's, and
        // whether they exist and trust the broker is read there when the broker may.
        let upstream = match &cluster.credential_backend {
            super::CredentialBackend::Aws {
                upstream_sts_endpoint,
            } => Some(upstream_sts_endpoint.clone()),
            super::CredentialBackend::Embedded => None,
        };
        if upstream.is_some() {
            if names::role_account(role_arn).is_none() {
                return Err(Error::InvalidParameter(format!(
                    "The parameter roleArn is not a valid IAM role ARN: {role_arn}"
                )));
            }
        } else if names::role_account(role_arn) != Some(cluster.account.as_str()) {
            return Err(Error::AccessDenied(
                "Cross-account pass role is not allowed.".into(),
            ));
        }
        let passed = [(
            "iam:PassedToService".to_owned(),
            ContextValue::One(PODS_SERVICE.into()),
        )];
        if upstream.is_some() {
            self.core.authorize_owned(
                caller,
                "iam:PassRole",
                role_arn,
                Some(caller.account()),
                &passed,
            )?;
        } else {
            self.core
                .authorize(caller, "iam:PassRole", role_arn, &passed)?;
        }
        if let Some(endpoint) = upstream {
            let checks = self
                .upstream_role_checks(
                    cluster,
                    endpoint,
                    role_arn,
                    target_role_arn,
                    !disable_session_tags,
                )
                .await?;
            tracing::info!(
                cluster = %cluster.name,
                role = role_arn,
                checked = ?checks.checked,
                skipped = ?checks.skipped,
                "the association's role lives upstream"
            );
            return Ok(Some(checks));
        }
        let name = role_arn.rsplit('/').next().unwrap_or_default();
        let role = self
            .core
            .load::<RoleRecord>(
                crate::records::ns::ROLE,
                &crate::names::entity_key(&cluster.account, name),
            )
            .await?
            .map(|(r, _)| r)
            .filter(|r| r.arn == role_arn)
            .ok_or_else(|| {
                Error::InvalidParameter("Role provided in the request does not exist.".into())
            })?;
        if !trusts_pod_identity(&role.trust_policy, !disable_session_tags) {
            // EKS's message names no requirement; the log says which one is missing.
            let reason = if disable_session_tags {
                "its trust policy does not let `pods.eks.amazonaws.com` assume it (`sts:AssumeRole` for the service principal)"
            } else {
                association_role_fit(&role.trust_policy)
                    .err()
                    .unwrap_or_default()
            };
            tracing::info!(
                role = role_arn,
                reason,
                "refused the association's role: Trust policy of the role provided is invalid"
            );
            return Err(Error::InvalidParameter(
                "Trust policy of the role provided is invalid.".into(),
            ));
        }
        Ok(None)
    }

    /// How many associations the cluster has, for the quota.
    ///
    /// The count is kept in shards (by the id's first two random characters), so that
    /// concurrent creates in one cluster rarely touch the same record; the total is their sum. A sum counted less than
    /// a second ago, plus this server's creates since, stands in for a new count while it is
    /// more than [`Totals::headroom`] below the quota, so a create rarely scans the shards.
    /// Creates racing near the limit (here, or on another replica in that second) may pass it by
    /// a few.
    async fn association_total(self, cluster_key: &str) -> Result<u64, Error> {
        let quota = u64::from(self.core.eks.association_quota);
        let now = self.core.now();
        if let Some(total) = self.core.eks.totals.estimate(cluster_key, now, quota) {
            return Ok(total);
        }
        const PAGE: usize = 1_000;
        let prefix = format!("{cluster_key}/");
        let mut total = 0;
        let mut after: Option<String> = None;
        loop {
            let page = self
                .core
                .store
                .scan(ns::ASSOCIATION_COUNT, &prefix, after.as_deref(), PAGE)
                .await?;
            total += page
                .iter()
                .map(|item| item.value.parse::<u64>().unwrap_or(0))
                .sum::<u64>();
            match page.last() {
                Some(last) if page.len() == PAGE => after = Some(last.key.clone()),
                _ => break,
            }
        }
        self.core.eks.totals.counted(cluster_key, total, now);
        Ok(total)
    }

    /// The count and version of the shard that counts `association`.
    async fn shard_count(
        self,
        cluster_key: &str,
        association: &AssociationRecord,
    ) -> Result<(u64, Option<u64>), Error> {
        Ok(
            match self
                .core
                .store
                .get(ns::ASSOCIATION_COUNT, &count_key(cluster_key, association))
                .await?
            {
                Some(item) => (item.value.parse().unwrap_or(0), Some(item.version)),
                None => (0, None),
            },
        )
    }

    /// The association a `clientRequestToken` already made, if the request is the same; an
    /// error if the token was used for a different request.
    async fn replay(
        self,
        cluster_key: &str,
        token: &str,
        fingerprint: &str,
    ) -> Result<Option<AssociationRecord>, Error> {
        let Some(item) = self
            .core
            .store
            .get(ns::ASSOCIATION_TOKEN, &key(&[cluster_key, token]))
            .await?
        else {
            return Ok(None);
        };
        let Ok(entry) = serde_json::from_str::<TokenEntry>(&item.value) else {
            return Ok(None);
        };
        if entry.request != fingerprint {
            return Err(Error::InvalidRequest(format!(
                "The client request token `{token}` was already used for a different request: use a new token for a new request."
            )));
        }
        Ok(self
            .core
            .load::<AssociationRecord>(ns::ASSOCIATION, &key(&[cluster_key, &entry.id]))
            .await?
            .map(|(a, _)| a))
    }
}

/// Recent association totals per cluster (see [`Eks::association_total`]).
#[derive(Debug, Default)]
pub(crate) struct Totals {
    clusters: std::sync::Mutex<std::collections::HashMap<String, Total>>,
}

#[derive(Debug)]
struct Total {
    /// The sum of the shards when they were last read,
    counted: u64,
    /// at this time (epoch milliseconds),
    at: i64,
    /// and the creates this server has made in the cluster since.
    since: u64,
}

impl Totals {
    /// How long a count stands in for a new one.
    const FRESH_MILLIS: i64 = 1_000;
    /// The most clusters remembered (all are forgotten past it).
    const MAX_CLUSTERS: usize = 4_096;

    /// How far below the quota an estimate must be to be used: a tenth of it, and at least 16.
    fn headroom(quota: u64) -> u64 {
        (quota / 10).max(16)
    }

    fn estimate(&self, cluster_key: &str, now: i64, quota: u64) -> Option<u64> {
        let clusters = self.clusters.lock().ok()?;
        let total = clusters.get(cluster_key)?;
        let estimate = total.counted + total.since;
        let fresh = (0..Self::FRESH_MILLIS).contains(&(now - total.at));
        (fresh && estimate + Self::headroom(quota) < quota).then_some(estimate)
    }

    fn counted(&self, cluster_key: &str, counted: u64, at: i64) {
        if let Ok(mut clusters) = self.clusters.lock() {
            if clusters.len() >= Self::MAX_CLUSTERS {
                clusters.clear();
            }
            clusters.insert(
                cluster_key.to_owned(),
                Total {
                    counted,
                    at,
                    since: 0,
                },
            );
        }
    }

    fn created(&self, cluster_key: &str) {
        if let Ok(mut clusters) = self.clusters.lock()
            && let Some(total) = clusters.get_mut(cluster_key)
        {
            total.since += 1;
        }
    }
}

/// An add-on changes or deletes only associations it owns. Anyone allowed to may change or
/// delete an add-on's association directly, as EKS allows (eksctl's CLI refuses, client-side).
fn check_owner(association: &AssociationRecord, owner: Option<&str>) -> Result<(), Error> {
    match owner {
        Some(addon) if association.owner_arn.as_deref() != Some(addon) => {
            Err(Error::InvalidRequest(format!(
                "Pod Identity association {} is not owned by addon {addon}.",
                association.id
            )))
        }
        _ => Ok(()),
    }
}

/// The count shard of a new association: the first two random characters of its id (1,296
/// shards), so that concurrent creates in one cluster seldom update the same shard (with the
/// 36 shards of one character, one create in eight at eight connections had to start again).
fn count_shard(id: &str) -> String {
    id.chars().skip(2).take(2).collect()
}

fn count_key(cluster_key: &str, association: &AssociationRecord) -> String {
    match &association.count_shard {
        Some(shard) => format!("{cluster_key}/{shard}"),
        // Records from before two-character shards: counted by the id's first random character.
        None => format!(
            "{cluster_key}/{}",
            association.id.chars().nth(2).unwrap_or('0')
        ),
    }
}

fn count_op(
    cluster_key: &str,
    association: &AssociationRecord,
    count: u64,
    version: Option<u64>,
) -> Op {
    let key = count_key(cluster_key, association);
    match version {
        Some(v) => Op::update(ns::ASSOCIATION_COUNT, key, count.to_string(), v),
        None => Op::create(ns::ASSOCIATION_COUNT, key, count.to_string()),
    }
}

/// `policy` needs `disableSessionTags` (EKS's rule: the session policy and the session tags
/// cannot both be packed into the session).
fn check_policy(policy: &Option<String>, disable_session_tags: bool) -> Result<(), Error> {
    if policy.is_some() && !disable_session_tags {
        return Err(Error::InvalidParameter(
            "disableSessionTags must be set to true when a policy is specified.".into(),
        ));
    }
    if let Some(text) = policy {
        podid_policy::Policy::parse(text, podid_policy::PolicyKind::Session).map_err(|e| {
            Error::InvalidParameter(format!(
                "The policy is not valid: {}",
                e.first().aws_message()
            ))
        })?;
    }
    Ok(())
}

/// Whether a role's trust policy lets it be an association's role, by the rule
/// CreatePodIdentityAssociation applies: `Ok` when `pods.eks.amazonaws.com` may assume it and tag
/// the session; otherwise why not (the console's role picker says it for each role it leaves out).
pub fn association_role_fit(trust_policy: &str) -> Result<(), &'static str> {
    if trusts_pod_identity(trust_policy, true) {
        Ok(())
    } else if trusts_pod_identity(trust_policy, false) {
        Err(
            "its trust policy lets `pods.eks.amazonaws.com` assume it but not tag the session (`sts:TagSession`): it can serve only with session tags disabled",
        )
    } else {
        Err(
            "its trust policy does not let `pods.eks.amazonaws.com` assume it (`sts:AssumeRole` and `sts:TagSession` for the service principal)",
        )
    }
}

/// Whether a trust policy lets `pods.eks.amazonaws.com` assume the role (and tag the session,
/// when tags are on): an `Allow` statement naming the service, with the actions.
fn trusts_pod_identity(document: &str, with_tags: bool) -> bool {
    trusts(document, with_tags, |principal| {
        principal == "*"
            || strings(principal.get("Service")).contains(&PODS_SERVICE)
            || strings(principal.get("AWS")).contains(&"*")
    })
}

/// A policy element that is a string or a list of strings, as a list.
pub(super) fn strings(value: Option<&serde_json::Value>) -> Vec<&str> {
    match value {
        Some(serde_json::Value::String(s)) => vec![s.as_str()],
        Some(serde_json::Value::Array(a)) => {
            a.iter().filter_map(serde_json::Value::as_str).collect()
        }
        _ => Vec::new(),
    }
}

/// Whether a trust policy has `Allow` statements whose `Principal` passes `names`, granting
/// `sts:AssumeRole` (and `sts:TagSession`, when tags are on). Conditions are not evaluated.
pub(super) fn trusts(
    document: &str,
    with_tags: bool,
    names: impl Fn(&serde_json::Value) -> bool,
) -> bool {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(document) else {
        return false;
    };
    let null = serde_json::Value::Null;
    let field = |v: &'_ serde_json::Value, name: &str| {
        v.get(name).cloned().unwrap_or(serde_json::Value::Null)
    };
    let statements = match value.get("Statement").unwrap_or(&null) {
        serde_json::Value::Array(list) => list.clone(),
        other @ serde_json::Value::Object(_) => vec![other.clone()],
        _ => Vec::new(),
    };
    let covers = |actions: &[&str], wanted: &str| {
        actions.iter().any(|a| {
            let a = a.to_ascii_lowercase();
            a == "*" || a == "sts:*" || a == wanted
        })
    };
    let mut assume = false;
    let mut tag = false;
    for statement in statements {
        if field(&statement, "Effect") != "Allow" {
            continue;
        }
        if !names(&field(&statement, "Principal")) {
            continue;
        }
        let actions = strings(statement.get("Action"));
        assume |= covers(&actions, "sts:assumerole");
        tag |= covers(&actions, "sts:tagsession");
    }
    assume && (tag || !with_tags)
}

/// The external id EKS gives an association with a target role:
/// `REGION/ACCOUNT/CLUSTER/NAMESPACE/SERVICE_ACCOUNT`.
fn external_id(
    region: &str,
    account: &str,
    cluster: &str,
    namespace: &str,
    service_account: &str,
) -> String {
    format!("{region}/{account}/{cluster}/{namespace}/{service_account}")
}

#[cfg(test)]
mod tests {
    use super::Totals;

    #[test]
    fn a_recent_total_stands_in_only_while_fresh_and_far_below_the_quota() {
        let totals = Totals::default();
        assert_eq!(totals.estimate("c", 0, 1_000), None, "never counted");
        totals.counted("c", 500, 10_000);
        totals.created("c");
        totals.created("c");
        assert_eq!(totals.estimate("c", 10_500, 1_000), Some(502));
        assert_eq!(totals.estimate("c", 11_000, 1_000), None, "a second old");
        assert_eq!(
            totals.estimate("c", 9_000, 1_000),
            None,
            "the clock went back"
        );
        assert_eq!(
            totals.estimate("c", 10_500, 550),
            None,
            "within a tenth of the quota"
        );
        assert_eq!(totals.estimate("c", 10_500, 510), None);
        assert_eq!(totals.estimate("other", 10_500, 1_000), None);
        totals.counted("small", 0, 0);
        assert_eq!(totals.estimate("small", 1, 16), None, "at least 16 below");
        assert_eq!(totals.estimate("small", 1, 17), Some(0));
    }
}
