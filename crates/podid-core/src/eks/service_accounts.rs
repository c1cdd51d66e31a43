//! Service accounts of podid's clusters (a podid extension): what IRSA binds a role to. A local
//! cluster has no kube-apiserver, so podid keeps its service accounts, shaped like Kubernetes'
//! ServiceAccount objects (namespace, name, uid, labels, annotations). The annotations IRSA
//! reads (`eks.amazonaws.com/role-arn`, `audience`, `sts-regional-endpoints`,
//! `token-expiration`) are checked when set. Each call is authorized as a `podid:` action on the
//! cluster's ARN.

use std::collections::BTreeMap;

use podid_store::Op;
use serde::{Deserialize, Serialize};

use super::records::ns;
use super::{Eks, key, names};
use crate::auth::Caller;
use crate::encode;
use crate::error::Error;
use crate::iam::{RETRIES, busy, is_conflict};

/// The annotation prefix of EKS's IRSA webhook.
pub const IRSA_PREFIX: &str = "eks.amazonaws.com/";

/// The most bytes of labels and annotations together, as Kubernetes allows (256 KiB).
const MAX_METADATA_BYTES: usize = 256 * 1024;

/// The most service accounts a list returns.
const MAX_LISTED: usize = 1000;

/// A service account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAccountRecord {
    /// The cluster's name.
    pub cluster: String,
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// A UUID, as Kubernetes gives every object.
    pub uid: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// Created, epoch milliseconds.
    pub created: i64,
}

impl ServiceAccountRecord {
    /// The role IRSA gives the service account's pods (`eks.amazonaws.com/role-arn`).
    pub fn irsa_role(&self) -> Option<&str> {
        self.annotations
            .get("eks.amazonaws.com/role-arn")
            .map(String::as_str)
    }
}

/// Which service account: cluster, namespace and name.
#[derive(Clone, Copy, Debug)]
pub struct ServiceAccountName<'a> {
    /// The cluster's region.
    pub region: &'a str,
    /// The cluster's name.
    pub cluster: &'a str,
    /// The namespace.
    pub namespace: &'a str,
    /// The name.
    pub name: &'a str,
}

/// A change of labels and annotations, as a JSON merge patch: a value sets, `None` removes.
#[derive(Clone, Debug, Default)]
pub struct MetadataChange {
    /// Labels to set or remove.
    pub labels: BTreeMap<String, Option<String>>,
    /// Annotations to set or remove.
    pub annotations: BTreeMap<String, Option<String>>,
}

impl Eks<'_> {
    /// Creates a service account (`podid:CreateServiceAccount`).
    pub async fn create_service_account(
        self,
        caller: &Caller,
        sa: ServiceAccountName<'_>,
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
    ) -> Result<ServiceAccountRecord, Error> {
        let account = self
            .authorized(caller, "podid:CreateServiceAccount", sa)
            .await?;
        check_metadata(&labels, &annotations)?;
        let record = ServiceAccountRecord {
            cluster: sa.cluster.to_owned(),
            namespace: sa.namespace.to_owned(),
            name: sa.name.to_owned(),
            uid: self.core.ids.request_id().to_ascii_lowercase(),
            labels,
            annotations,
            created: self.core.now(),
        };
        match self
            .core
            .commit_as(
                caller,
                vec![Op::create(
                    ns::SERVICE_ACCOUNT,
                    sa_key(&account, sa),
                    encode(&record),
                )],
            )
            .await
        {
            Ok(()) => Ok(record),
            Err(e) if is_conflict(&e) => Err(Error::ResourceInUse(format!(
                "Service account {}/{} already exists in cluster {}.",
                sa.namespace, sa.name, sa.cluster
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// A service account (`podid:GetServiceAccount`).
    pub async fn describe_service_account(
        self,
        caller: &Caller,
        sa: ServiceAccountName<'_>,
    ) -> Result<ServiceAccountRecord, Error> {
        let account = self
            .authorized(caller, "podid:GetServiceAccount", sa)
            .await?;
        self.load_service_account(&account, sa)
            .await?
            .map(|(record, _)| record)
            .ok_or_else(|| not_found(sa))
    }

    /// The service accounts of a cluster, of one namespace if given, in namespace and name
    /// order (`podid:ListServiceAccounts`).
    pub async fn list_service_accounts(
        self,
        caller: &Caller,
        region: &str,
        cluster: &str,
        namespace: Option<&str>,
    ) -> Result<Vec<ServiceAccountRecord>, Error> {
        let (record, _) = self
            .cluster_for(caller, "podid:ListServiceAccounts", region, cluster)
            .await?;
        if let Some(namespace) = namespace {
            names::namespace(namespace)?;
        }
        let mut prefix = key(&[&record.account, region, cluster, ""]);
        if let Some(namespace) = namespace {
            prefix.push_str(namespace);
            prefix.push('/');
        }
        let items = self
            .core
            .store
            .scan(ns::SERVICE_ACCOUNT, &prefix, None, MAX_LISTED)
            .await?;
        items.iter().map(crate::decode).collect()
    }

    /// Sets or removes labels and annotations (`podid:UpdateServiceAccount`).
    pub async fn update_service_account(
        self,
        caller: &Caller,
        sa: ServiceAccountName<'_>,
        change: MetadataChange,
    ) -> Result<ServiceAccountRecord, Error> {
        let account = self
            .authorized(caller, "podid:UpdateServiceAccount", sa)
            .await?;
        for _ in 0..RETRIES {
            let (mut record, version) = self
                .load_service_account(&account, sa)
                .await?
                .ok_or_else(|| not_found(sa))?;
            apply(&mut record.labels, &change.labels);
            apply(&mut record.annotations, &change.annotations);
            check_metadata(&record.labels, &record.annotations)?;
            match self
                .core
                .commit_as(
                    caller,
                    vec![Op::update(
                        ns::SERVICE_ACCOUNT,
                        sa_key(&account, sa),
                        encode(&record),
                        version,
                    )],
                )
                .await
            {
                Ok(()) => return Ok(record),
                Err(e) if is_conflict(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(busy())
    }

    /// Deletes a service account (`podid:DeleteServiceAccount`); what it was.
    pub async fn delete_service_account(
        self,
        caller: &Caller,
        sa: ServiceAccountName<'_>,
    ) -> Result<ServiceAccountRecord, Error> {
        let account = self
            .authorized(caller, "podid:DeleteServiceAccount", sa)
            .await?;
        for _ in 0..RETRIES {
            let (record, version) = self
                .load_service_account(&account, sa)
                .await?
                .ok_or_else(|| not_found(sa))?;
            match self
                .core
                .commit_as(
                    caller,
                    vec![Op::Delete {
                        ns: ns::SERVICE_ACCOUNT,
                        key: sa_key(&account, sa),
                        condition: podid_store::Condition::Version(version),
                    }],
                )
                .await
            {
                Ok(()) => return Ok(record),
                Err(e) if is_conflict(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(busy())
    }

    /// Checks the names, authorizes `action` on the cluster and checks that it exists; the
    /// caller's account.
    async fn authorized(
        self,
        caller: &Caller,
        action: &str,
        sa: ServiceAccountName<'_>,
    ) -> Result<String, Error> {
        names::namespace(sa.namespace)?;
        names::service_account(sa.name)?;
        let (cluster, _) = self
            .cluster_for(caller, action, sa.region, sa.cluster)
            .await?;
        Ok(cluster.account)
    }

    async fn load_service_account(
        self,
        account: &str,
        sa: ServiceAccountName<'_>,
    ) -> Result<Option<(ServiceAccountRecord, u64)>, Error> {
        self.core
            .load(ns::SERVICE_ACCOUNT, &sa_key(account, sa))
            .await
    }
}

fn sa_key(account: &str, sa: ServiceAccountName<'_>) -> String {
    key(&[account, sa.region, sa.cluster, sa.namespace, sa.name])
}

fn not_found(sa: ServiceAccountName<'_>) -> Error {
    Error::ResourceNotFound(format!(
        "No service account {}/{} in cluster {}.",
        sa.namespace, sa.name, sa.cluster
    ))
}

fn apply(map: &mut BTreeMap<String, String>, change: &BTreeMap<String, Option<String>>) {
    for (name, value) in change {
        match value {
            Some(value) => {
                map.insert(name.clone(), value.clone());
            }
            None => {
                map.remove(name);
            }
        }
    }
}

/// Kubernetes' bound on metadata, and IRSA's annotations where they are set.
fn check_metadata(
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> Result<(), Error> {
    let size: usize = labels
        .iter()
        .chain(annotations)
        .map(|(k, v)| k.len() + v.len())
        .sum();
    if size > MAX_METADATA_BYTES {
        return Err(Error::InvalidParameter(format!(
            "Labels and annotations take {size} bytes; at most {MAX_METADATA_BYTES} are allowed."
        )));
    }
    if let Some(key) = labels.keys().chain(annotations.keys()).find(|k| {
        k.is_empty()
            || k.len() > 317
            || !k
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
    }) {
        return Err(Error::InvalidParameter(format!(
            "`{key}` is not a label or annotation key: use letters, digits, `-`, `_`, `.`, and one `/` after a DNS prefix."
        )));
    }
    for (name, value) in annotations {
        let Some(irsa) = name.strip_prefix(IRSA_PREFIX) else {
            continue;
        };
        let valid = match irsa {
            "role-arn" => names::role_account(value).is_some(),
            "audience" => !value.is_empty(),
            "sts-regional-endpoints" => value == "true" || value == "false",
            "token-expiration" => value
                .parse::<u32>()
                .is_ok_and(|s| (600..=86_400).contains(&s)),
            _ => true,
        };
        if !valid {
            let want = match irsa {
                "role-arn" => "an IAM role ARN, `arn:aws:iam::ACCOUNT:role/NAME`",
                "audience" => "a non-empty audience, such as `sts.amazonaws.com`",
                "sts-regional-endpoints" => "`true` or `false`",
                _ => "a number of seconds from 600 to 86400",
            };
            return Err(Error::InvalidParameter(format!(
                "Annotation `{name}` is `{value}`: it must be {want}."
            )));
        }
    }
    Ok(())
}
