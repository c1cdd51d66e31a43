//! Roles.

use std::collections::BTreeMap;

use podid_policy::{ContextValue, ParseOptions, PolicyKind};
use podid_store::{Condition, Op};

use super::{Page, PageRequest, RETRIES, busy, is_conflict, merge_tags, remove_tags};
use crate::auth::Caller;
use crate::error::Error;
use crate::names::{arn, entity_key};
use crate::records::{AccountRecord, RoleRecord, Tag, UserRecord, ns};
use crate::{Iam, encode};

/// The parameters of CreateRole.
#[derive(Clone, Debug, Default)]
pub struct CreateRole {
    /// `RoleName`.
    pub name: String,
    /// `Path` (default `/`).
    pub path: Option<String>,
    /// `AssumeRolePolicyDocument`.
    pub trust_policy: String,
    /// `Description`.
    pub description: Option<String>,
    /// `MaxSessionDuration` (default 3600).
    pub max_session_duration: Option<u32>,
    /// `PermissionsBoundary`.
    pub permissions_boundary: Option<String>,
    /// `Tags`.
    pub tags: Vec<Tag>,
}

impl Iam<'_> {
    /// CreateRole.
    pub async fn create_role(
        self,
        caller: &Caller,
        input: CreateRole,
    ) -> Result<RoleRecord, Error> {
        let account = caller.account().to_string();
        let path = input.path.unwrap_or_else(|| "/".into());
        let role_arn = arn(&account, "role", &path, &input.name);
        let mut extra = tag_context(&input.tags);
        if let Some(boundary) = &input.permissions_boundary {
            extra.push((
                "iam:PermissionsBoundary".to_owned(),
                ContextValue::One(boundary.clone()),
            ));
        }
        self.core
            .authorize(caller, "iam:CreateRole", &role_arn, &extra)?;
        super::check_new_tags(&input.tags, true)?;
        let bindings = self.trust_bindings(&input.trust_policy).await?;
        let mut ops = Vec::new();
        if let Some(boundary) = &input.permissions_boundary {
            ops.extend(self.boundary_ops(&account, boundary, &role_arn).await?);
        }
        let role = RoleRecord {
            name: input.name.clone(),
            path,
            id: self.core.ids.unique_id("AROA"),
            arn: role_arn,
            created: self.core.now(),
            trust_policy: input.trust_policy,
            trust_bindings: bindings,
            description: input.description,
            max_session_duration: input.max_session_duration.unwrap_or(3600),
            tags: input.tags,
            policies: crate::records::PolicyHolder {
                boundary: input.permissions_boundary,
                ..Default::default()
            },
        };
        ops.insert(
            0,
            Op::create(ns::ROLE, entity_key(&account, &role.name), encode(&role)),
        );
        match self.core.commit_as(caller, ops).await {
            Ok(()) => Ok(role),
            Err(e) if is_conflict(&e) => match e {
                podid_store::StoreError::Conflict { index: 0, .. } => {
                    Err(Error::EntityAlreadyExists(format!(
                        "Role with name {} already exists.",
                        input.name
                    )))
                }
                _ => Err(boundary_gone(
                    role.policies.boundary.as_deref().unwrap_or_default(),
                )),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// GetRole.
    pub async fn get_role(self, caller: &Caller, name: &str) -> Result<RoleRecord, Error> {
        let (role, _) = self.role_for(caller, "iam:GetRole", name).await?;
        Ok(role)
    }

    /// Loads a role of the caller's account and authorizes `action` on it.
    pub(crate) async fn role_for(
        self,
        caller: &Caller,
        action: &str,
        name: &str,
    ) -> Result<(RoleRecord, u64), Error> {
        let account = caller.account().to_string();
        let found = self
            .core
            .load::<RoleRecord>(ns::ROLE, &entity_key(&account, name))
            .await?;
        let resource = found
            .as_ref()
            .map_or_else(|| arn(&account, "role", "/", name), |(r, _)| r.arn.clone());
        self.core.authorize(caller, action, &resource, &[])?;
        found.ok_or_else(|| no_such_role(name))
    }

    /// Applies `change` to a role, retrying when another writer got there first.
    pub(crate) async fn update_role_record(
        self,
        caller: &Caller,
        action: &str,
        name: &str,
        mut change: impl FnMut(&mut RoleRecord) -> Result<Vec<Op>, Error>,
    ) -> Result<RoleRecord, Error> {
        for _ in 0..RETRIES {
            let (mut role, version) = self.role_for(caller, action, name).await?;
            let mut ops = change(&mut role)?;
            let key = entity_key(&caller.account().to_string(), name);
            ops.insert(0, Op::update(ns::ROLE, key, encode(&role), version));
            // Pods holding this role's credentials are told (the change feed).
            ops.push(self.core.role_change(&role.arn, action));
            match self.core.commit_as(caller, ops).await {
                Ok(()) => return Ok(role),
                Err(e) if is_conflict(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(busy())
    }

    /// UpdateAssumeRolePolicy.
    pub async fn update_assume_role_policy(
        self,
        caller: &Caller,
        name: &str,
        document: String,
    ) -> Result<(), Error> {
        // The role must exist before the document is looked at (AWS's order).
        self.role_for(caller, "iam:UpdateAssumeRolePolicy", name)
            .await?;
        let bindings = self.trust_bindings(&document).await?;
        self.update_role_record(caller, "iam:UpdateAssumeRolePolicy", name, |role| {
            role.trust_policy = document.clone();
            role.trust_bindings = bindings.clone();
            Ok(Vec::new())
        })
        .await
        .map(drop)
    }

    /// UpdateRole: the description and the maximum session duration, when given.
    pub async fn update_role(
        self,
        caller: &Caller,
        name: &str,
        description: Option<String>,
        max_session_duration: Option<u32>,
    ) -> Result<(), Error> {
        self.update_role_record(caller, "iam:UpdateRole", name, |role| {
            if let Some(d) = &description {
                role.description = Some(d.clone());
            }
            if let Some(m) = max_session_duration {
                role.max_session_duration = m;
            }
            Ok(Vec::new())
        })
        .await
        .map(drop)
    }

    /// DeleteRole: only a role without inline or attached policies.
    pub async fn delete_role(self, caller: &Caller, name: &str) -> Result<(), Error> {
        for _ in 0..RETRIES {
            let (role, version) = self.role_for(caller, "iam:DeleteRole", name).await?;
            if !role.policies.attached.is_empty() {
                return Err(Error::DeleteConflict(
                    "Cannot delete entity, must detach all policies first.".into(),
                ));
            }
            if !role.policies.inline.is_empty() {
                return Err(Error::DeleteConflict(
                    "Cannot delete entity, must delete policies first.".into(),
                ));
            }
            let account = caller.account().to_string();
            let mut ops = vec![
                Op::delete(ns::ROLE, entity_key(&account, name), version),
                self.core.role_change(&role.arn, "iam:DeleteRole"),
            ];
            if let Some(boundary) = &role.policies.boundary {
                ops.push(Op::Delete {
                    ns: ns::ATTACHMENT,
                    key: attachment_key(boundary, "boundary", &role.arn),
                    condition: Condition::Any,
                });
            }
            match self.core.commit_as(caller, ops).await {
                Ok(()) => return Ok(()),
                Err(e) if is_conflict(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(busy())
    }

    /// ListRoles.
    pub async fn list_roles(
        self,
        caller: &Caller,
        path_prefix: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<RoleRecord>, Error> {
        let account = caller.account().to_string();
        self.core.authorize(
            caller,
            "iam:ListRoles",
            &arn(&account, "role", path_prefix.unwrap_or("/"), ""),
            &[],
        )?;
        let prefix = path_prefix.unwrap_or("/");
        self.core
            .page(ns::ROLE, &format!("{account}/"), page, |item| {
                crate::decode::<RoleRecord>(item)
                    .ok()
                    .filter(|r| r.path.starts_with(prefix))
            })
            .await
    }

    /// PutRolePermissionsBoundary.
    pub async fn put_role_permissions_boundary(
        self,
        caller: &Caller,
        name: &str,
        boundary: &str,
    ) -> Result<(), Error> {
        let account = caller.account().to_string();
        let extra = [(
            "iam:PermissionsBoundary".to_owned(),
            ContextValue::One(boundary.to_owned()),
        )];
        let (role, _) = self
            .role_for(caller, "iam:PutRolePermissionsBoundary", name)
            .await?;
        self.core
            .authorize(caller, "iam:PutRolePermissionsBoundary", &role.arn, &extra)?;
        let boundary_ops = self.boundary_ops(&account, boundary, &role.arn).await?;
        self.update_role_record(caller, "iam:PutRolePermissionsBoundary", name, |role| {
            let mut ops = boundary_ops.clone();
            if let Some(old) = role.policies.boundary.replace(boundary.to_owned())
                && old != boundary
            {
                ops.push(Op::Delete {
                    ns: ns::ATTACHMENT,
                    key: attachment_key(&old, "boundary", &role.arn),
                    condition: Condition::Any,
                });
            }
            Ok(ops)
        })
        .await
        .map(drop)
    }

    /// DeleteRolePermissionsBoundary.
    pub async fn delete_role_permissions_boundary(
        self,
        caller: &Caller,
        name: &str,
    ) -> Result<(), Error> {
        self.update_role_record(caller, "iam:DeleteRolePermissionsBoundary", name, |role| {
            Ok(role
                .policies
                .boundary
                .take()
                .map(|old| Op::Delete {
                    ns: ns::ATTACHMENT,
                    key: attachment_key(&old, "boundary", &role.arn),
                    condition: Condition::Any,
                })
                .into_iter()
                .collect())
        })
        .await
        .map(drop)
    }

    /// TagRole.
    pub async fn tag_role(self, caller: &Caller, name: &str, tags: Vec<Tag>) -> Result<(), Error> {
        let (role, _) = self.role_for(caller, "iam:TagRole", name).await?;
        self.core
            .authorize(caller, "iam:TagRole", &role.arn, &tag_context(&tags))?;
        self.update_role_record(caller, "iam:TagRole", name, |role| {
            merge_tags(&mut role.tags, tags.clone(), true)?;
            Ok(Vec::new())
        })
        .await
        .map(drop)
    }

    /// UntagRole.
    pub async fn untag_role(
        self,
        caller: &Caller,
        name: &str,
        keys: &[String],
    ) -> Result<(), Error> {
        self.update_role_record(caller, "iam:UntagRole", name, |role| {
            remove_tags(&mut role.tags, keys, true);
            Ok(Vec::new())
        })
        .await
        .map(drop)
    }

    /// ListRoleTags.
    pub async fn list_role_tags(
        self,
        caller: &Caller,
        name: &str,
        page: &PageRequest,
    ) -> Result<Page<Tag>, Error> {
        let (role, _) = self.role_for(caller, "iam:ListRoleTags", name).await?;
        Ok(page_of(role.tags, page))
    }

    /// Resolves the user and role ARNs of a trust policy to unique ids (§2.2). Principals in
    /// accounts this podid hosts must exist; others are kept as ARNs.
    pub(crate) async fn trust_bindings(
        self,
        document: &str,
    ) -> Result<BTreeMap<String, String>, Error> {
        let policy = self
            .core
            .parse(document, ParseOptions::new(PolicyKind::Trust))
            .map_err(|e| Error::policy(&e))?;
        let mut bindings = BTreeMap::new();
        for principal in policy.principal_arns() {
            let Some(rest) = principal.strip_prefix("arn:aws:iam::") else {
                continue;
            };
            let Some((account, resource)) = rest.split_once(':') else {
                continue;
            };
            if self
                .core
                .load::<AccountRecord>(ns::ACCOUNT, account)
                .await?
                .is_none()
            {
                continue;
            }
            let name = resource.rsplit('/').next().unwrap_or_default();
            let id = if resource.starts_with("role/") {
                self.core
                    .load::<RoleRecord>(ns::ROLE, &entity_key(account, name))
                    .await?
                    .filter(|(r, _)| r.arn == principal)
                    .map(|(r, _)| r.id)
            } else {
                self.core
                    .load::<UserRecord>(ns::USER, &entity_key(account, name))
                    .await?
                    .filter(|(u, _)| u.arn == principal)
                    .map(|(u, _)| u.id)
            };
            match id {
                Some(id) => {
                    bindings.insert(principal.to_owned(), id);
                }
                None => {
                    return Err(Error::MalformedPolicy {
                        code: "MalformedPolicyDocument",
                        message: format!("Invalid principal in policy: \"AWS\":\"{principal}\""),
                        detail: format!(
                            "principal `{principal}` does not exist in account {account}"
                        ),
                    });
                }
            }
        }
        Ok(bindings)
    }

    /// The operations that make `policy` the boundary of `entity`: the policy must exist (and be
    /// unchanged when the batch commits), and the use is indexed.
    pub(crate) async fn boundary_ops(
        self,
        account: &str,
        policy: &str,
        entity: &str,
    ) -> Result<Vec<Op>, Error> {
        let (owner, _, name) = crate::names::parse_policy_arn(policy)?;
        let mut ops = Vec::new();
        if owner == "aws" {
            if crate::catalogue::find(policy).is_none() {
                return Err(boundary_gone(policy));
            }
        } else {
            let found = if owner == account {
                self.core
                    .load::<crate::records::PolicyRecord>(ns::POLICY, &entity_key(owner, name))
                    .await?
                    .filter(|(p, _)| p.arn == policy && !p.deleting)
            } else {
                None
            };
            let Some((_, version)) = found else {
                return Err(boundary_gone(policy));
            };
            ops.push(Op::Check {
                ns: ns::POLICY,
                key: entity_key(owner, name),
                condition: Condition::Version(version),
            });
        }
        ops.push(Op::upsert(
            ns::ATTACHMENT,
            attachment_key(policy, "boundary", entity),
            entity,
        ));
        Ok(ops)
    }
}

/// The key of an attachment-index entry: a policy used by an entity as `kind` (`policy` or
/// `boundary`).
pub(crate) fn attachment_key(policy: &str, kind: &str, entity: &str) -> String {
    format!("{policy}|{kind}|{entity}")
}

pub(crate) fn no_such_role(name: &str) -> Error {
    Error::NoSuchEntity(format!("The role with name {name} cannot be found."))
}

fn boundary_gone(policy: &str) -> Error {
    Error::NoSuchEntity(format!(
        "Scope ARN: {policy} does not exist or is not attachable."
    ))
}

/// `aws:RequestTag/*` and `aws:TagKeys` for tags passed in a request.
pub(crate) fn tag_context(tags: &[Tag]) -> Vec<(String, ContextValue)> {
    if tags.is_empty() {
        return Vec::new();
    }
    let mut out = vec![(
        "aws:TagKeys".to_owned(),
        ContextValue::Many(tags.iter().map(|t| t.key.clone()).collect()),
    )];
    out.extend(tags.iter().map(|t| {
        (
            format!("aws:RequestTag/{}", t.key),
            ContextValue::One(t.value.clone()),
        )
    }));
    out
}

/// Pages through a list held in memory.
pub(crate) fn page_of<T: Clone>(items: Vec<T>, page: &PageRequest) -> Page<T> {
    let start = page
        .marker
        .as_deref()
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(0);
    let limit = page.limit();
    let slice: Vec<T> = items.iter().skip(start).take(limit).cloned().collect();
    let next = start + slice.len();
    Page {
        items: slice,
        marker: (next < items.len()).then(|| next.to_string()),
    }
}
