//! Inline and attached policies of users and roles, written once for both.

use podid_policy::{ContextValue, ParseOptions, PolicyKind};
use podid_store::{Condition, Op};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::roles::{attachment_key, no_such_role};
use super::users::no_such_user;
use super::{Page, PageRequest, RETRIES, busy, is_conflict};
use crate::auth::Caller;
use crate::error::Error;
use crate::names::{arn, entity_key, parse_policy_arn};
use crate::records::{PolicyHolder, PolicyRecord, RoleRecord, UserRecord, ns};
use crate::{Iam, catalogue, encode};

/// A user or a role: the entities that hold policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entity {
    /// A role.
    Role,
    /// A user.
    User,
}

/// A managed policy attached to a user or role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachedPolicy {
    /// `PolicyName`.
    pub name: String,
    /// `PolicyArn`.
    pub arn: String,
}

pub(crate) trait Holder: Serialize + DeserializeOwned {
    fn holder_mut(&mut self) -> &mut PolicyHolder;
    fn arn(&self) -> &str;
    fn into_parts(self) -> (String, PolicyHolder);
}

impl Holder for RoleRecord {
    fn holder_mut(&mut self) -> &mut PolicyHolder {
        &mut self.policies
    }
    fn arn(&self) -> &str {
        &self.arn
    }
    fn into_parts(self) -> (String, PolicyHolder) {
        (self.arn, self.policies)
    }
}

impl Holder for UserRecord {
    fn holder_mut(&mut self) -> &mut PolicyHolder {
        &mut self.policies
    }
    fn arn(&self) -> &str {
        &self.arn
    }
    fn into_parts(self) -> (String, PolicyHolder) {
        (self.arn, self.policies)
    }
}

impl Entity {
    fn ns(self) -> &'static str {
        match self {
            Self::Role => ns::ROLE,
            Self::User => ns::USER,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Self::Role => "role",
            Self::User => "user",
        }
    }

    fn not_found(self, name: &str) -> Error {
        match self {
            Self::Role => no_such_role(name),
            Self::User => no_such_user(name),
        }
    }

    fn quota_name(self) -> &'static str {
        match self {
            Self::Role => "PoliciesPerRole",
            Self::User => "PoliciesPerUser",
        }
    }

    /// The limit on the total size of an entity's inline policies.
    fn inline_limit(self) -> usize {
        match self {
            Self::Role => 10_240,
            Self::User => 2048,
        }
    }

    fn action(self, verb: &str) -> String {
        let noun = match self {
            Self::Role => "Role",
            Self::User => "User",
        };
        format!("iam:{}", verb.replace("{}", noun))
    }
}

impl Iam<'_> {
    async fn holder_for<T: Holder>(
        self,
        caller: &Caller,
        entity: Entity,
        action: &str,
        name: &str,
    ) -> Result<(T, u64), Error> {
        let account = caller.account().to_string();
        let found = self
            .core
            .load::<T>(entity.ns(), &entity_key(&account, name))
            .await?;
        let resource = found.as_ref().map_or_else(
            || arn(&account, entity.noun(), "/", name),
            |(r, _)| r.arn().to_owned(),
        );
        self.core.authorize(caller, action, &resource, &[])?;
        found.ok_or_else(|| entity.not_found(name))
    }

    async fn update_holder<T: Holder>(
        self,
        caller: &Caller,
        entity: Entity,
        action: &str,
        name: &str,
        mut change: impl FnMut(&mut T) -> Result<Vec<Op>, Error>,
    ) -> Result<(), Error> {
        for _ in 0..RETRIES {
            let (mut record, version) = self.holder_for::<T>(caller, entity, action, name).await?;
            let mut ops = change(&mut record)?;
            let key = entity_key(&caller.account().to_string(), name);
            ops.insert(0, Op::update(entity.ns(), key, encode(&record), version));
            if entity == Entity::Role {
                // Pods holding this role's credentials are told (the change feed).
                ops.push(self.core.role_change(record.arn(), action));
            }
            match self.core.commit_as(caller, ops).await {
                Ok(()) => return Ok(()),
                Err(e) if is_conflict(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(busy())
    }

    /// The ARN and policies of the role or user `name`, authorizing `action` on it.
    async fn entity_policies(
        self,
        caller: &Caller,
        entity: Entity,
        action: &str,
        name: &str,
    ) -> Result<(String, PolicyHolder), Error> {
        Ok(match entity {
            Entity::Role => self
                .holder_for::<RoleRecord>(caller, entity, action, name)
                .await?
                .0
                .into_parts(),
            Entity::User => self
                .holder_for::<UserRecord>(caller, entity, action, name)
                .await?
                .0
                .into_parts(),
        })
    }

    /// Applies `change` (given the entity's ARN) to the policies of the role or user `name`,
    /// and commits the record with the operations `change` returns.
    async fn change_entity_policies(
        self,
        caller: &Caller,
        entity: Entity,
        action: &str,
        name: &str,
        mut change: impl FnMut(&str, &mut PolicyHolder) -> Result<Vec<Op>, Error>,
    ) -> Result<(), Error> {
        fn apply<T: Holder>(
            record: &mut T,
            change: &mut impl FnMut(&str, &mut PolicyHolder) -> Result<Vec<Op>, Error>,
        ) -> Result<Vec<Op>, Error> {
            let arn = record.arn().to_owned();
            change(&arn, record.holder_mut())
        }
        match entity {
            Entity::Role => {
                self.update_holder::<RoleRecord>(caller, entity, action, name, |r| {
                    apply(r, &mut change)
                })
                .await
            }
            Entity::User => {
                self.update_holder::<UserRecord>(caller, entity, action, name, |r| {
                    apply(r, &mut change)
                })
                .await
            }
        }
    }

    /// PutRolePolicy / PutUserPolicy.
    pub async fn put_entity_policy(
        self,
        caller: &Caller,
        entity: Entity,
        name: &str,
        policy_name: &str,
        document: String,
    ) -> Result<(), Error> {
        let action = entity.action("Put{}Policy");
        // The entity first, then the document (AWS's order).
        self.entity_policies(caller, entity, &action, name).await?;
        self.core
            .parse(
                &document,
                ParseOptions::new(PolicyKind::Identity).without_size_limit(),
            )
            .map_err(|e| Error::policy(&e))?;
        let limit = entity.inline_limit();
        let change = |holder: &mut PolicyHolder| -> Result<Vec<Op>, Error> {
            holder
                .inline
                .insert(policy_name.to_owned(), document.clone());
            let size: usize = holder
                .inline
                .values()
                .map(|d| d.chars().filter(|c| !c.is_whitespace()).count())
                .sum();
            if size > limit {
                return Err(Error::LimitExceeded(format!(
                    "Maximum policy size of {limit} bytes exceeded for {} {name}",
                    entity.noun()
                )));
            }
            Ok(Vec::new())
        };
        self.change_entity_policies(caller, entity, &action, name, |_, h| change(h))
            .await
    }

    /// GetRolePolicy / GetUserPolicy: the document.
    pub async fn get_entity_policy(
        self,
        caller: &Caller,
        entity: Entity,
        name: &str,
        policy_name: &str,
    ) -> Result<String, Error> {
        let action = entity.action("Get{}Policy");
        let holder = self.entity_policies(caller, entity, &action, name).await?.1;
        holder
            .inline
            .get(policy_name)
            .cloned()
            .ok_or_else(|| no_such_inline(entity, policy_name))
    }

    /// DeleteRolePolicy / DeleteUserPolicy.
    pub async fn delete_entity_policy(
        self,
        caller: &Caller,
        entity: Entity,
        name: &str,
        policy_name: &str,
    ) -> Result<(), Error> {
        let action = entity.action("Delete{}Policy");
        let change = |holder: &mut PolicyHolder| -> Result<Vec<Op>, Error> {
            holder
                .inline
                .remove(policy_name)
                .map(|_| Vec::new())
                .ok_or_else(|| no_such_inline(entity, policy_name))
        };
        self.change_entity_policies(caller, entity, &action, name, |_, h| change(h))
            .await
    }

    /// ListRolePolicies / ListUserPolicies.
    pub async fn list_entity_policies(
        self,
        caller: &Caller,
        entity: Entity,
        name: &str,
        page: &PageRequest,
    ) -> Result<Page<String>, Error> {
        let action = entity.action("List{}Policies");
        let holder = self.entity_policies(caller, entity, &action, name).await?.1;
        Ok(super::roles::page_of(
            holder.inline.into_keys().collect(),
            page,
        ))
    }

    /// AttachRolePolicy / AttachUserPolicy.
    pub async fn attach_entity_policy(
        self,
        caller: &Caller,
        entity: Entity,
        name: &str,
        policy_arn: &str,
    ) -> Result<(), Error> {
        let action = entity.action("Attach{}Policy");
        let account = caller.account().to_string();
        let (owner, _, policy_name) = parse_policy_arn(policy_arn)?;
        let extra = [(
            "iam:PolicyARN".to_owned(),
            ContextValue::One(policy_arn.to_owned()),
        )];
        let resource = self.entity_policies(caller, entity, &action, name).await?.0;
        self.core.authorize(caller, &action, &resource, &extra)?;
        let not_attachable = || {
            Error::NoSuchEntity(format!(
                "Policy {policy_arn} does not exist or is not attachable."
            ))
        };
        // The policy must exist, and be unchanged (not being deleted) when the batch commits.
        let mut check = Vec::new();
        if owner == "aws" {
            catalogue::find(policy_arn).ok_or_else(not_attachable)?;
        } else {
            let found = if owner == account {
                self.core
                    .load::<PolicyRecord>(ns::POLICY, &entity_key(owner, policy_name))
                    .await?
                    .filter(|(p, _)| p.arn == policy_arn && !p.deleting)
            } else {
                None
            };
            let (_, version) = found.ok_or_else(not_attachable)?;
            check.push(Op::Check {
                ns: ns::POLICY,
                key: entity_key(owner, policy_name),
                condition: Condition::Version(version),
            });
        }
        let quota = entity.quota_name();
        let change = |record_arn: &str, holder: &mut PolicyHolder| -> Result<Vec<Op>, Error> {
            if holder.attached.iter().any(|a| a == policy_arn) {
                return Ok(Vec::new());
            }
            if holder.attached.len() >= 10 {
                return Err(Error::LimitExceeded(format!(
                    "Cannot exceed quota for {quota}: 10"
                )));
            }
            holder.attached.push(policy_arn.to_owned());
            let mut ops = check.clone();
            ops.push(Op::upsert(
                ns::ATTACHMENT,
                attachment_key(policy_arn, "policy", record_arn),
                record_arn,
            ));
            Ok(ops)
        };
        self.change_entity_policies(caller, entity, &action, name, change)
            .await
            .map_err(|e| match e {
                // The policy changed or went between the check and the commit, every time.
                Error::ConcurrentModification(_) if owner != "aws" => not_attachable(),
                e => e,
            })
    }

    /// DetachRolePolicy / DetachUserPolicy.
    pub async fn detach_entity_policy(
        self,
        caller: &Caller,
        entity: Entity,
        name: &str,
        policy_arn: &str,
    ) -> Result<(), Error> {
        let action = entity.action("Detach{}Policy");
        parse_policy_arn(policy_arn)?;
        let change = |record_arn: &str, holder: &mut PolicyHolder| -> Result<Vec<Op>, Error> {
            let before = holder.attached.len();
            holder.attached.retain(|a| a != policy_arn);
            if holder.attached.len() == before {
                return Err(Error::NoSuchEntity(format!(
                    "Policy {policy_arn} was not found."
                )));
            }
            Ok(vec![Op::Delete {
                ns: ns::ATTACHMENT,
                key: attachment_key(policy_arn, "policy", record_arn),
                condition: Condition::Any,
            }])
        };
        self.change_entity_policies(caller, entity, &action, name, change)
            .await
    }

    /// ListAttachedRolePolicies / ListAttachedUserPolicies.
    pub async fn list_attached_entity_policies(
        self,
        caller: &Caller,
        entity: Entity,
        name: &str,
        path_prefix: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<AttachedPolicy>, Error> {
        let action = entity.action("ListAttached{}Policies");
        let holder = self.entity_policies(caller, entity, &action, name).await?.1;
        let prefix = path_prefix.unwrap_or("/");
        let attached: Vec<AttachedPolicy> = holder
            .attached
            .iter()
            .filter_map(|arn| {
                let (_, path, name) = crate::names::policy_arn_parts(arn)?;
                path.starts_with(prefix).then(|| AttachedPolicy {
                    name: name.to_owned(),
                    arn: arn.clone(),
                })
            })
            .collect();
        Ok(super::roles::page_of(attached, page))
    }
}

fn no_such_inline(entity: Entity, policy_name: &str) -> Error {
    Error::NoSuchEntity(format!(
        "The {} policy with name {policy_name} cannot be found.",
        entity.noun()
    ))
}
