//! EKS add-ons: CreateAddon, DescribeAddon, ListAddons, UpdateAddon, DeleteAddon,
//! DescribeAddonVersions and DescribeAddonConfiguration.
//!
//! podid runs no add-on's software: an add-on is ACTIVE as soon as it is created, and what it
//! does here is own Pod Identity associations (created, changed and deleted with it, and by
//! nothing else) and tell tools like eksctl that `eks-pod-identity-agent` is installed.
//!
//! Records: `addon`: `ACCOUNT/REGION/CLUSTER/NAME` → the add-on.

use std::collections::BTreeMap;

use podid_store::Op;

use super::associations::{CreateAssociation, UpdateAssociation};
use super::catalogue::{self, AddonSpec, CLUSTER_VERSIONS};
use super::clusters::{decode_token, encode_token, max_results_of, tag_context};
use super::records::{AddonRecord, AssociationRecord, ns};
use super::{Eks, EksPage, key, names};
use crate::auth::Caller;
use crate::encode;
use crate::error::Error;
use crate::iam::{RETRIES, busy, is_conflict};

/// A CreateAddon request.
#[derive(Clone, Debug, Default)]
pub struct CreateAddon {
    /// `addonName`.
    pub name: String,
    /// `addonVersion` (default: the catalogue's default for the cluster's version).
    pub version: Option<String>,
    /// `serviceAccountRoleArn`.
    pub service_account_role_arn: Option<String>,
    /// `resolveConflicts`: `OVERWRITE`, `NONE` or `PRESERVE` (checked, nothing to resolve here).
    pub resolve_conflicts: Option<String>,
    /// `configurationValues`, kept as given.
    pub configuration_values: Option<String>,
    /// `tags`.
    pub tags: BTreeMap<String, String>,
    /// `podIdentityAssociations`.
    pub pod_identity_associations: Vec<AddonAssociation>,
    /// `namespaceConfig.namespace`.
    pub namespace: Option<String>,
}

/// One of an add-on's `podIdentityAssociations`: a service account of the add-on and its role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddonAssociation {
    /// `serviceAccount`.
    pub service_account: String,
    /// `roleArn`.
    pub role_arn: String,
}

/// An UpdateAddon request: what to change.
#[derive(Clone, Debug, Default)]
pub struct UpdateAddon {
    /// `addonVersion`.
    pub version: Option<String>,
    /// `serviceAccountRoleArn` (`Some("")` is refused as EKS refuses it).
    pub service_account_role_arn: Option<String>,
    /// `resolveConflicts`.
    pub resolve_conflicts: Option<String>,
    /// `configurationValues`.
    pub configuration_values: Option<String>,
    /// `podIdentityAssociations`: the whole new list (`Some(vec![])` removes them all).
    pub pod_identity_associations: Option<Vec<AddonAssociation>>,
}

/// What UpdateAddon answers: EKS's `Update` of type `AddonUpdate`. podid applies an update at
/// once, so it is `Successful` when it is answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddonUpdate {
    /// `id`.
    pub id: String,
    /// `params`: (type, value), in EKS's names (`AddonVersion`, `ServiceAccountRoleArn`,
    /// `ResolveConflicts`, `ConfigurationValues`, `PodIdentityAssociations`).
    pub params: Vec<(&'static str, String)>,
    /// `createdAt`, epoch milliseconds.
    pub created: i64,
}

/// DescribeAddonVersions' filters and page.
#[derive(Clone, Debug, Default)]
pub struct ListAddonVersions {
    /// `addonName`.
    pub name: Option<String>,
    /// `kubernetesVersion`.
    pub kubernetes_version: Option<String>,
    /// `types`.
    pub types: Vec<String>,
    /// `publishers`.
    pub publishers: Vec<String>,
    /// `owners`.
    pub owners: Vec<String>,
    /// `maxResults`.
    pub max_results: Option<u32>,
    /// `nextToken`.
    pub next_token: Option<String>,
}

impl Eks<'_> {
    /// CreateAddon: the add-on, with the Pod Identity associations it asks for. If one of them
    /// cannot be made, none is left behind.
    pub async fn create_addon(
        self,
        caller: &Caller,
        region: &str,
        cluster: &str,
        input: CreateAddon,
    ) -> Result<AddonRecord, Error> {
        names::cluster_name(cluster)?;
        names::tags(&input.tags)?;
        let account = caller.account().to_string();
        let cluster_arn = format!("arn:aws:eks:{region}:{account}:cluster/{cluster}");
        self.core.authorize(
            caller,
            "eks:CreateAddon",
            &cluster_arn,
            &tag_context(&input.tags),
        )?;
        let (cluster_record, _) = self.cluster_record(&account, region, cluster).await?;
        let spec = supported(&input.name, &cluster_record.version)?;
        let version = version_for(spec, input.version.as_deref())?;
        check_resolve_conflicts(input.resolve_conflicts.as_deref())?;
        if let Some(role) = &input.service_account_role_arn {
            check_role_arn("serviceAccountRoleArn", role)?;
        }
        let namespace = input
            .namespace
            .clone()
            .unwrap_or_else(|| spec.namespace.into());
        names::namespace(&namespace)?;
        check_associations(spec, &version, &input.pod_identity_associations)?;
        let addon_key = key(&[&account, region, cluster, &input.name]);
        if self.core.store.get(ns::ADDON, &addon_key).await?.is_some() {
            return Err(already_exists());
        }
        let arn = format!(
            "arn:aws:eks:{region}:{account}:addon/{cluster}/{}/{}",
            input.name,
            self.core.ids.request_id()
        );
        let mut made: Vec<AssociationRecord> = Vec::new();
        for wanted in &input.pod_identity_associations {
            let created = self
                .create_owned_association(
                    caller,
                    region,
                    cluster,
                    CreateAssociation {
                        namespace: namespace.clone(),
                        service_account: wanted.service_account.clone(),
                        role_arn: wanted.role_arn.clone(),
                        ..CreateAssociation::default()
                    },
                    Some(arn.clone()),
                )
                .await;
            match created {
                Ok(association) => made.push(association),
                Err(e) => {
                    self.undo_associations(caller, &made, &arn).await;
                    return Err(e);
                }
            }
        }
        let now = self.core.now();
        let addon = AddonRecord {
            name: input.name.clone(),
            arn: arn.clone(),
            account,
            region: region.to_owned(),
            cluster: cluster.to_owned(),
            version,
            namespace,
            service_account_role_arn: input.service_account_role_arn,
            configuration_values: input.configuration_values,
            tags: input.tags,
            associations: made.iter().map(|a| a.arn.clone()).collect(),
            created: now,
            modified: now,
        };
        match self
            .core
            .commit_as(
                caller,
                vec![Op::create(ns::ADDON, addon_key, encode(&addon))],
            )
            .await
        {
            Ok(()) => Ok(addon),
            Err(e) => {
                self.undo_associations(caller, &made, &arn).await;
                Err(if is_conflict(&e) {
                    already_exists()
                } else {
                    e.into()
                })
            }
        }
    }

    /// DescribeAddon.
    pub async fn describe_addon(
        self,
        caller: &Caller,
        region: &str,
        cluster: &str,
        name: &str,
    ) -> Result<AddonRecord, Error> {
        self.addon_for(caller, "eks:DescribeAddon", region, cluster, name)
            .await
            .map(|(a, _)| a)
    }

    /// ListAddons: the names of the cluster's add-ons, in order.
    pub async fn list_addons(
        self,
        caller: &Caller,
        region: &str,
        cluster: &str,
        max_results: Option<u32>,
        next_token: Option<&str>,
    ) -> Result<EksPage<String>, Error> {
        names::cluster_name(cluster)?;
        let account = caller.account().to_string();
        let cluster_arn = format!("arn:aws:eks:{region}:{account}:cluster/{cluster}");
        self.core
            .authorize(caller, "eks:ListAddons", &cluster_arn, &[])?;
        self.cluster_record(&account, region, cluster).await?;
        let prefix = format!("{}/", key(&[&account, region, cluster]));
        self.name_page(ns::ADDON, &prefix, max_results, next_token)
            .await
    }

    /// UpdateAddon: applied at once. A new `podIdentityAssociations` list replaces the old:
    /// associations of service accounts no longer named are deleted, new ones created, and
    /// changed roles updated.
    pub async fn update_addon(
        self,
        caller: &Caller,
        region: &str,
        cluster: &str,
        name: &str,
        input: UpdateAddon,
    ) -> Result<(AddonRecord, AddonUpdate), Error> {
        for _ in 0..RETRIES {
            let (mut addon, version) = self
                .addon_for(caller, "eks:UpdateAddon", region, cluster, name)
                .await?;
            let (cluster_record, _) = self.cluster_record(&addon.account, region, cluster).await?;
            let spec = supported(name, &cluster_record.version)?;
            let mut params = Vec::new();
            if let Some(wanted) = &input.version {
                addon.version = version_for(spec, Some(wanted))?;
                params.push(("AddonVersion", addon.version.clone()));
            }
            if let Some(role) = &input.service_account_role_arn {
                if role.is_empty() {
                    // EKS's answer to an empty role (it reads it as a role of no account).
                    return Err(Error::AccessDenied(
                        "Cross-account pass role is not allowed.".into(),
                    ));
                }
                check_role_arn("serviceAccountRoleArn", role)?;
                addon.service_account_role_arn = Some(role.clone());
                params.push(("ServiceAccountRoleArn", role.clone()));
            }
            if let Some(resolve) = &input.resolve_conflicts {
                check_resolve_conflicts(Some(resolve))?;
                params.push(("ResolveConflicts", resolve.clone()));
            }
            if let Some(values) = &input.configuration_values {
                addon.configuration_values = (!values.is_empty()).then(|| values.clone());
                params.push(("ConfigurationValues", values.clone()));
            }
            if let Some(wanted) = &input.pod_identity_associations {
                check_associations(spec, &addon.version, wanted)?;
                addon.associations = self.reconcile_associations(caller, &addon, wanted).await?;
                let listed: Vec<serde_json::Value> = wanted
                    .iter()
                    .map(|a| {
                        serde_json::json!({
                            "serviceAccount": a.service_account,
                            "roleArn": a.role_arn,
                            "namespace": addon.namespace,
                        })
                    })
                    .collect();
                params.push((
                    "PodIdentityAssociations",
                    serde_json::Value::Array(listed).to_string(),
                ));
            }
            addon.modified = self.core.now();
            let addon_key = key(&[&addon.account, region, cluster, name]);
            match self
                .core
                .commit_as(
                    caller,
                    vec![Op::update(ns::ADDON, addon_key, encode(&addon), version)],
                )
                .await
            {
                Ok(()) => {
                    let update = AddonUpdate {
                        id: self.core.ids.request_id(),
                        params,
                        created: addon.modified,
                    };
                    return Ok((addon, update));
                }
                Err(e) if is_conflict(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(busy())
    }

    /// DeleteAddon: the add-on, with the associations it owns unless `preserve` (which keeps
    /// them, as EKS does).
    pub async fn delete_addon(
        self,
        caller: &Caller,
        region: &str,
        cluster: &str,
        name: &str,
        preserve: bool,
    ) -> Result<AddonRecord, Error> {
        for _ in 0..RETRIES {
            let (addon, version) = self
                .addon_for(caller, "eks:DeleteAddon", region, cluster, name)
                .await?;
            for arn in addon.associations.iter().filter(|_| !preserve) {
                let id = arn.rsplit('/').next().unwrap_or_default();
                match self
                    .delete_owned_association(caller, region, cluster, id, Some(&addon.arn))
                    .await
                {
                    Ok(_) | Err(Error::ResourceNotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            let addon_key = key(&[&addon.account, region, cluster, name]);
            match self
                .core
                .commit_as(caller, vec![Op::delete(ns::ADDON, addon_key, version)])
                .await
            {
                Ok(()) => return Ok(addon),
                Err(e) if is_conflict(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(busy())
    }

    /// DescribeAddonVersions: the catalogue, filtered, in name order, a page at a time.
    pub fn addon_versions(
        self,
        caller: &Caller,
        input: &ListAddonVersions,
    ) -> Result<EksPage<&'static AddonSpec>, Error> {
        self.core
            .authorize(caller, "eks:DescribeAddonVersions", "*", &[])?;
        let limit = max_results_of(input.max_results)?;
        if let Some(version) = &input.kubernetes_version
            && !CLUSTER_VERSIONS.contains(&version.as_str())
        {
            return Ok(EksPage {
                items: Vec::new(),
                next_token: None,
            });
        }
        let after = input
            .next_token
            .as_deref()
            .map(|t| decode_token(t, ""))
            .transpose()?;
        let wanted =
            |list: &[String], value: &str| list.is_empty() || list.iter().any(|v| v == value);
        let mut matching: Vec<&'static AddonSpec> = catalogue::ADDONS
            .iter()
            .filter(|a| input.name.as_deref().is_none_or(|n| n == a.name))
            .filter(|a| wanted(&input.types, a.kind))
            .filter(|a| wanted(&input.publishers, a.publisher) && wanted(&input.owners, a.owner))
            .filter(|a| after.as_deref().is_none_or(|after| a.name > after))
            .collect();
        matching.sort_by_key(|a| a.name);
        let next_token = (matching.len() > limit).then(|| {
            matching.truncate(limit);
            matching
                .last()
                .map(|a| encode_token(a.name))
                .unwrap_or_default()
        });
        Ok(EksPage {
            items: matching,
            next_token,
        })
    }

    /// DescribeAddonConfiguration: the add-on version's service accounts that Pod Identity
    /// can serve, with the managed policies AWS recommends for each.
    pub fn addon_configuration(
        self,
        caller: &Caller,
        name: &str,
        version: &str,
    ) -> Result<&'static AddonSpec, Error> {
        self.core
            .authorize(caller, "eks:DescribeAddonConfiguration", "*", &[])?;
        catalogue::addon(name)
            .filter(|a| a.versions.contains(&version))
            .ok_or_else(|| {
                Error::ResourceNotFound(format!(
                    "Addon {name} with version {version} does not exist."
                ))
            })
    }

    /// The add-on `name` of the cluster, after authorizing `action` on it.
    async fn addon_for(
        self,
        caller: &Caller,
        action: &str,
        region: &str,
        cluster: &str,
        name: &str,
    ) -> Result<(AddonRecord, u64), Error> {
        names::cluster_name(cluster)?;
        let account = caller.account().to_string();
        let found = self
            .core
            .load::<AddonRecord>(ns::ADDON, &key(&[&account, region, cluster, name]))
            .await?;
        let arn = found.as_ref().map_or_else(
            || format!("arn:aws:eks:{region}:{account}:addon/{cluster}/{name}/*"),
            |(a, _)| a.arn.clone(),
        );
        self.core.authorize(caller, action, &arn, &[])?;
        self.cluster_record(&account, region, cluster).await?;
        found.ok_or_else(|| {
            Error::ResourceNotFound(format!("No addon: {name} found in cluster: {cluster}"))
        })
    }

    /// Makes the add-on's associations those of `wanted`: the ARNs it then owns.
    async fn reconcile_associations(
        self,
        caller: &Caller,
        addon: &AddonRecord,
        wanted: &[AddonAssociation],
    ) -> Result<Vec<String>, Error> {
        let (region, cluster) = (addon.region.as_str(), addon.cluster.as_str());
        let mut owned = Vec::new();
        for arn in &addon.associations {
            let id = arn.rsplit('/').next().unwrap_or_default();
            match self.describe_association(caller, region, cluster, id).await {
                Ok(a) => owned.push(a),
                Err(Error::ResourceNotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let mut kept = Vec::new();
        for association in &owned {
            let still = wanted
                .iter()
                .find(|w| w.service_account == association.service_account);
            match still {
                None => {
                    self.delete_owned_association(
                        caller,
                        region,
                        cluster,
                        &association.id,
                        Some(&addon.arn),
                    )
                    .await?;
                }
                Some(w) if w.role_arn != association.role_arn => {
                    let changed = UpdateAssociation {
                        role_arn: Some(w.role_arn.clone()),
                        ..UpdateAssociation::default()
                    };
                    self.update_owned_association(
                        caller,
                        region,
                        cluster,
                        &association.id,
                        changed,
                        Some(&addon.arn),
                    )
                    .await?;
                    kept.push(association.arn.clone());
                }
                Some(_) => kept.push(association.arn.clone()),
            }
        }
        for w in wanted {
            if owned.iter().any(|a| a.service_account == w.service_account) {
                continue;
            }
            let created = self
                .create_owned_association(
                    caller,
                    region,
                    cluster,
                    CreateAssociation {
                        namespace: addon.namespace.clone(),
                        service_account: w.service_account.clone(),
                        role_arn: w.role_arn.clone(),
                        ..CreateAssociation::default()
                    },
                    Some(addon.arn.clone()),
                )
                .await?;
            kept.push(created.arn);
        }
        Ok(kept)
    }

    /// Deletes associations an add-on's failed create had made.
    async fn undo_associations(self, caller: &Caller, made: &[AssociationRecord], owner: &str) {
        for association in made {
            if let Err(e) = self
                .delete_owned_association(
                    caller,
                    &association.region,
                    &association.cluster,
                    &association.id,
                    Some(owner),
                )
                .await
            {
                tracing::warn!(association = %association.arn, error = %e, "an association of a failed CreateAddon could not be removed");
            }
        }
    }
}

/// The catalogue's add-on `name`, if it is offered for clusters of `cluster_version`.
fn supported(name: &str, cluster_version: &str) -> Result<&'static AddonSpec, Error> {
    catalogue::addon(name)
        .filter(|_| CLUSTER_VERSIONS.contains(&cluster_version))
        .ok_or_else(|| Error::InvalidParameter("Addon specified is not supported".into()))
}

/// The version to install: the one asked for, if the catalogue has it, or the default.
fn version_for(spec: &AddonSpec, wanted: Option<&str>) -> Result<String, Error> {
    match wanted {
        None | Some("latest") => Ok(spec.versions.first().copied().unwrap_or_default().into()),
        Some(version) if spec.versions.contains(&version) => Ok(version.to_owned()),
        Some(_) => Err(Error::InvalidParameter(
            "Addon version specified is not supported".into(),
        )),
    }
}

fn check_resolve_conflicts(value: Option<&str>) -> Result<(), Error> {
    match value {
        None | Some("OVERWRITE" | "NONE" | "PRESERVE") => Ok(()),
        Some(other) => Err(Error::InvalidParameter(format!(
            "The parameter resolveConflicts must be one of OVERWRITE, NONE or PRESERVE, not `{other}`."
        ))),
    }
}

fn check_role_arn(member: &str, arn: &str) -> Result<(), Error> {
    if names::role_account(arn).is_none() {
        return Err(Error::InvalidParameter(format!(
            "The parameter {member} is not a valid IAM role ARN: {arn}"
        )));
    }
    Ok(())
}

/// Each service account once, and one the add-on uses (EKS's texts).
fn check_associations(
    spec: &AddonSpec,
    version: &str,
    wanted: &[AddonAssociation],
) -> Result<(), Error> {
    if !wanted.is_empty() && spec.pod_identity.is_empty() {
        return Err(Error::InvalidParameter(format!(
            "Pod Identity feature is not supported for addon version: {version}"
        )));
    }
    for (i, association) in wanted.iter().enumerate() {
        names::service_account(&association.service_account)?;
        check_role_arn("podIdentityAssociations.roleArn", &association.role_arn)?;
        if wanted
            .iter()
            .take(i)
            .any(|a| a.service_account == association.service_account)
        {
            return Err(Error::InvalidParameter(format!(
                "The service account {} is named more than once in podIdentityAssociations.",
                association.service_account
            )));
        }
        if !spec
            .pod_identity
            .iter()
            .any(|(sa, _)| *sa == association.service_account)
        {
            return Err(Error::InvalidParameter(format!(
                "Service account {} in pod identity configuration is not supported for addon {}",
                association.service_account, spec.name
            )));
        }
    }
    Ok(())
}

fn already_exists() -> Error {
    Error::ResourceInUse("Addon already exists.".into())
}
