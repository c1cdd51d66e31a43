//! Managed policies: customer policies with versions, and AWS's catalogue.

use podid_policy::{ParseOptions, PolicyKind};
use podid_store::Op;

use super::roles::{page_of, tag_context};
use super::{Page, PageRequest, RETRIES, busy, is_conflict};
use crate::auth::Caller;
use crate::error::Error;
use crate::names::{arn, entity_key, parse_policy_arn};
use crate::records::{PolicyRecord, PolicyVersionRecord, Tag, ns};
use crate::{Iam, catalogue, encode};

/// The most versions a managed policy keeps.
const MAX_VERSIONS: usize = 5;

/// The parameters of CreatePolicy.
#[derive(Clone, Debug, Default)]
pub struct CreatePolicy {
    /// `PolicyName`.
    pub name: String,
    /// `Path` (default `/`).
    pub path: Option<String>,
    /// `PolicyDocument`.
    pub document: String,
    /// `Description`.
    pub description: Option<String>,
    /// `Tags`.
    pub tags: Vec<Tag>,
}

/// The parameters of ListPolicies.
#[derive(Clone, Debug, Default)]
pub struct ListPolicies {
    /// `Scope`: `All` (default), `AWS` or `Local`.
    pub scope: Option<String>,
    /// `OnlyAttached`.
    pub only_attached: bool,
    /// `PathPrefix`.
    pub path_prefix: Option<String>,
    /// `PolicyUsageFilter`: `PermissionsPolicy` or `PermissionsBoundary`.
    pub usage_filter: Option<String>,
    /// `Marker`, `MaxItems`.
    pub page: PageRequest,
}

/// A managed policy as the API shows it, customer or AWS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyView {
    /// `PolicyName`.
    pub name: String,
    /// `PolicyId`.
    pub id: String,
    /// `Arn`.
    pub arn: String,
    /// `Path`.
    pub path: String,
    /// `DefaultVersionId`.
    pub default_version: String,
    /// `AttachmentCount`.
    pub attachment_count: u64,
    /// `PermissionsBoundaryUsageCount`.
    pub boundary_usage_count: u64,
    /// `Description`.
    pub description: Option<String>,
    /// `CreateDate`, epoch milliseconds.
    pub created: i64,
    /// `UpdateDate`, epoch milliseconds.
    pub updated: i64,
    /// `Tags`.
    pub tags: Vec<Tag>,
}

impl Iam<'_> {
    /// CreatePolicy.
    pub async fn create_policy(
        self,
        caller: &Caller,
        input: CreatePolicy,
    ) -> Result<PolicyView, Error> {
        let account = caller.account().to_string();
        let path = input.path.clone().unwrap_or_else(|| "/".into());
        let policy_arn = arn(&account, "policy", &path, &input.name);
        self.core.authorize(
            caller,
            "iam:CreatePolicy",
            &policy_arn,
            &tag_context(&input.tags),
        )?;
        super::check_new_tags(&input.tags, false)?;
        self.core
            .parse(&input.document, ParseOptions::new(PolicyKind::Identity))
            .map_err(|e| Error::policy(&e))?;
        let now = self.core.now();
        let record = PolicyRecord {
            name: input.name.clone(),
            path,
            id: self.core.ids.unique_id("ANPA"),
            arn: policy_arn,
            description: input.description,
            created: now,
            updated: now,
            tags: input.tags,
            default_version: "v1".into(),
            versions: vec![PolicyVersionRecord {
                id: "v1".into(),
                document: input.document,
                created: now,
            }],
            next_version: 2,
            deleting: false,
        };
        match self
            .core
            .commit_as(
                caller,
                vec![Op::create(
                    ns::POLICY,
                    entity_key(&account, &record.name),
                    encode(&record),
                )],
            )
            .await
        {
            Ok(()) => Ok(view(&record, 0, 0)),
            Err(e) if is_conflict(&e) => Err(Error::EntityAlreadyExists(format!(
                "A policy called {} already exists. Duplicate names are not allowed.",
                input.name
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Loads a customer policy by ARN (authorizing `action` on it), or `None` for an AWS policy.
    async fn policy_for(
        self,
        caller: &Caller,
        action: &str,
        policy_arn: &str,
    ) -> Result<Option<(PolicyRecord, u64)>, Error> {
        let (owner, _, name) = parse_policy_arn(policy_arn)?;
        self.core.authorize(caller, action, policy_arn, &[])?;
        if owner == "aws" {
            return catalogue::find(policy_arn)
                .map(|_| None)
                .ok_or_else(|| policy_not_found(policy_arn));
        }
        if owner != caller.account().to_string() {
            return Err(policy_not_found(policy_arn));
        }
        self.core
            .load::<PolicyRecord>(ns::POLICY, &entity_key(owner, name))
            .await?
            .filter(|(p, _)| p.arn == policy_arn)
            .map(Some)
            .ok_or_else(|| policy_not_found(policy_arn))
    }

    async fn usage(self, policy_arn: &str) -> Result<(u64, u64), Error> {
        let attached = self
            .core
            .store
            .scan(
                ns::ATTACHMENT,
                &format!("{policy_arn}|policy|"),
                None,
                100_000,
            )
            .await?
            .len();
        let boundary = self
            .core
            .store
            .scan(
                ns::ATTACHMENT,
                &format!("{policy_arn}|boundary|"),
                None,
                100_000,
            )
            .await?
            .len();
        Ok((attached as u64, boundary as u64))
    }

    /// GetPolicy.
    pub async fn get_policy(self, caller: &Caller, policy_arn: &str) -> Result<PolicyView, Error> {
        let found = self.policy_for(caller, "iam:GetPolicy", policy_arn).await?;
        let (attached, boundary) = self.usage(policy_arn).await?;
        Ok(match found {
            Some((record, _)) => view(&record, attached, boundary),
            None => aws_view(policy_arn, attached, boundary)
                .ok_or_else(|| policy_not_found(policy_arn))?,
        })
    }

    /// GetPolicyVersion.
    pub async fn get_policy_version(
        self,
        caller: &Caller,
        policy_arn: &str,
        version: &str,
    ) -> Result<(PolicyVersionRecord, bool), Error> {
        let missing = || {
            Error::NoSuchEntity(format!(
                "Policy {policy_arn} version {version} does not exist or is not attachable."
            ))
        };
        match self
            .policy_for(caller, "iam:GetPolicyVersion", policy_arn)
            .await?
        {
            Some((record, _)) => record
                .versions
                .iter()
                .find(|v| v.id == version)
                .map(|v| (v.clone(), v.id == record.default_version))
                .ok_or_else(missing),
            None => {
                let aws = catalogue::find(policy_arn).ok_or_else(missing)?;
                (aws.default_version == version)
                    .then(|| {
                        (
                            PolicyVersionRecord {
                                id: aws.default_version.to_owned(),
                                document: aws.document.to_owned(),
                                created: aws.updated,
                            },
                            true,
                        )
                    })
                    .ok_or_else(missing)
            }
        }
    }

    async fn update_policy(
        self,
        caller: &Caller,
        action: &str,
        policy_arn: &str,
        mut change: impl FnMut(&mut PolicyRecord) -> Result<(), Error>,
    ) -> Result<PolicyRecord, Error> {
        for _ in 0..RETRIES {
            let Some((mut record, version)) = self.policy_for(caller, action, policy_arn).await?
            else {
                return Err(Error::InvalidInput(format!(
                    "Policy {policy_arn} is an AWS managed policy, which cannot be changed."
                )));
            };
            change(&mut record)?;
            let key = entity_key(&caller.account().to_string(), &record.name);
            match self
                .core
                .commit_as(
                    caller,
                    vec![Op::update(ns::POLICY, key, encode(&record), version)],
                )
                .await
            {
                Ok(()) => return Ok(record),
                Err(e) if is_conflict(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(busy())
    }

    /// CreatePolicyVersion.
    pub async fn create_policy_version(
        self,
        caller: &Caller,
        policy_arn: &str,
        document: String,
        set_as_default: bool,
    ) -> Result<PolicyVersionRecord, Error> {
        self.policy_for(caller, "iam:CreatePolicyVersion", policy_arn)
            .await?;
        self.core
            .parse(&document, ParseOptions::new(PolicyKind::Identity))
            .map_err(|e| Error::policy(&e))?;
        let now = self.core.now();
        let record = self
            .update_policy(caller, "iam:CreatePolicyVersion", policy_arn, |p| {
                if p.versions.len() >= MAX_VERSIONS {
                    return Err(Error::LimitExceeded(
                        "A managed policy can have up to 5 versions. Before you create a new version, you must delete an existing version.".into(),
                    ));
                }
                let id = format!("v{}", p.next_version);
                p.next_version += 1;
                p.versions.push(PolicyVersionRecord {
                    id: id.clone(),
                    document: document.clone(),
                    created: now,
                });
                if set_as_default {
                    p.default_version = id;
                    p.updated = now;
                }
                Ok(())
            })
            .await?;
        record
            .versions
            .last()
            .cloned()
            .ok_or_else(|| policy_not_found(policy_arn))
    }

    /// DeletePolicyVersion.
    pub async fn delete_policy_version(
        self,
        caller: &Caller,
        policy_arn: &str,
        version: &str,
    ) -> Result<(), Error> {
        self.update_policy(caller, "iam:DeletePolicyVersion", policy_arn, |p| {
            if p.default_version == version {
                return Err(Error::DeleteConflict(
                    "Cannot delete the default version of a policy.".into(),
                ));
            }
            let before = p.versions.len();
            p.versions.retain(|v| v.id != version);
            if p.versions.len() == before {
                return Err(Error::NoSuchEntity(format!(
                    "Policy {policy_arn} version {version} does not exist or is not attachable."
                )));
            }
            Ok(())
        })
        .await
        .map(drop)
    }

    /// SetDefaultPolicyVersion.
    pub async fn set_default_policy_version(
        self,
        caller: &Caller,
        policy_arn: &str,
        version: &str,
    ) -> Result<(), Error> {
        let now = self.core.now();
        self.update_policy(caller, "iam:SetDefaultPolicyVersion", policy_arn, |p| {
            if !p.versions.iter().any(|v| v.id == version) {
                return Err(Error::NoSuchEntity(format!(
                    "Policy {policy_arn} version {version} does not exist or is not attachable."
                )));
            }
            p.default_version = version.to_owned();
            p.updated = now;
            Ok(())
        })
        .await
        .map(drop)
    }

    /// ListPolicyVersions: newest first.
    pub async fn list_policy_versions(
        self,
        caller: &Caller,
        policy_arn: &str,
        page: &PageRequest,
    ) -> Result<Page<(PolicyVersionRecord, bool)>, Error> {
        let versions: Vec<(PolicyVersionRecord, bool)> = match self
            .policy_for(caller, "iam:ListPolicyVersions", policy_arn)
            .await?
        {
            Some((record, _)) => record
                .versions
                .iter()
                .rev()
                .map(|v| (v.clone(), v.id == record.default_version))
                .collect(),
            None => catalogue::find(policy_arn)
                .map(|aws| {
                    vec![(
                        PolicyVersionRecord {
                            id: aws.default_version.to_owned(),
                            document: aws.document.to_owned(),
                            created: aws.updated,
                        },
                        true,
                    )]
                })
                .unwrap_or_default(),
        };
        Ok(page_of(versions, page))
    }

    /// DeletePolicy: only a policy that nothing uses and that has no version but the default.
    pub async fn delete_policy(self, caller: &Caller, policy_arn: &str) -> Result<(), Error> {
        let record = self
            .update_policy(caller, "iam:DeletePolicy", policy_arn, |p| {
                if p.versions.len() > 1 {
                    return Err(Error::DeleteConflict(
                        "This policy has more than one version. Before you delete a policy, you must delete the policy's versions. The default version is deleted with the policy.".into(),
                    ));
                }
                // From here on attaching fails, so the check below cannot be overtaken.
                p.deleting = true;
                Ok(())
            })
            .await?;
        let key = entity_key(&caller.account().to_string(), &record.name);
        let (attached, boundary) = self.usage(policy_arn).await?;
        let (current, version) = self
            .core
            .load::<PolicyRecord>(ns::POLICY, &key)
            .await?
            .ok_or_else(|| policy_not_found(policy_arn))?;
        if attached + boundary > 0 {
            let mut restored = current;
            restored.deleting = false;
            self.core
                .commit_as(
                    caller,
                    vec![Op::update(ns::POLICY, key, encode(&restored), version)],
                )
                .await?;
            return Err(Error::DeleteConflict(
                "Cannot delete a policy attached to entities.".into(),
            ));
        }
        self.core
            .commit_as(caller, vec![Op::delete(ns::POLICY, key, version)])
            .await?;
        Ok(())
    }

    /// ListPolicies: local and AWS policies, filtered.
    pub async fn list_policies(
        self,
        caller: &Caller,
        input: &ListPolicies,
    ) -> Result<Page<PolicyView>, Error> {
        let account = caller.account().to_string();
        self.core.authorize(
            caller,
            "iam:ListPolicies",
            &arn(&account, "policy", "/", ""),
            &[],
        )?;
        let scope = input.scope.as_deref().unwrap_or("All");
        let prefix = input.path_prefix.as_deref().unwrap_or("/");
        let mut all = Vec::new();
        if scope != "AWS" {
            let mut after: Option<String> = None;
            loop {
                let batch = self
                    .core
                    .store
                    .scan(ns::POLICY, &format!("{account}/"), after.as_deref(), 500)
                    .await?;
                let done = batch.len() < 500;
                for item in &batch {
                    after = Some(item.key.clone());
                    if let Ok(record) = crate::decode::<PolicyRecord>(item)
                        && !record.deleting
                    {
                        let (a, b) = self.usage(&record.arn).await?;
                        all.push(view(&record, a, b));
                    }
                }
                if done {
                    break;
                }
            }
        }
        if scope != "Local" {
            for aws in catalogue::all() {
                let (a, b) = self.usage(aws.arn).await?;
                if let Some(v) = aws_view(aws.arn, a, b) {
                    all.push(v);
                }
            }
        }
        all.retain(|p| {
            p.path.starts_with(prefix)
                && (!input.only_attached || p.attachment_count + p.boundary_usage_count > 0)
                && match input.usage_filter.as_deref() {
                    Some("PermissionsPolicy") if input.only_attached => p.attachment_count > 0,
                    Some("PermissionsBoundary") if input.only_attached => {
                        p.boundary_usage_count > 0
                    }
                    _ => true,
                }
        });
        Ok(page_of(all, &input.page))
    }
}

fn view(record: &PolicyRecord, attached: u64, boundary: u64) -> PolicyView {
    PolicyView {
        name: record.name.clone(),
        id: record.id.clone(),
        arn: record.arn.clone(),
        path: record.path.clone(),
        default_version: record.default_version.clone(),
        attachment_count: attached,
        boundary_usage_count: boundary,
        description: record.description.clone(),
        created: record.created,
        updated: record.updated,
        tags: record.tags.clone(),
    }
}

fn aws_view(policy_arn: &str, attached: u64, boundary: u64) -> Option<PolicyView> {
    let aws = catalogue::find(policy_arn)?;
    Some(PolicyView {
        name: aws.name.to_owned(),
        id: aws.id(),
        arn: aws.arn.to_owned(),
        path: aws.path.to_owned(),
        default_version: aws.default_version.to_owned(),
        attachment_count: attached,
        boundary_usage_count: boundary,
        description: (!aws.description.is_empty()).then(|| aws.description.to_owned()),
        created: aws.created,
        updated: aws.updated,
        tags: Vec::new(),
    })
}

fn policy_not_found(policy_arn: &str) -> Error {
    Error::NoSuchEntity(format!("Policy {policy_arn} was not found."))
}
