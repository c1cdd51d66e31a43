//! Users and access keys.

use podid_store::Op;
use podid_types::Secret;

use super::roles::tag_context;
use super::{Page, PageRequest, RETRIES, busy, is_conflict};
use crate::auth::{Caller, Identity};
use crate::error::Error;
use crate::names::{arn, entity_key};
use crate::records::{AccessKeyRecord, PolicyHolder, Tag, UserRecord, ns};
use crate::{Iam, encode};

/// The parameters of CreateUser.
#[derive(Clone, Debug, Default)]
pub struct CreateUser {
    /// `UserName`.
    pub name: String,
    /// `Path` (default `/`).
    pub path: Option<String>,
    /// `PermissionsBoundary`.
    pub permissions_boundary: Option<String>,
    /// `Tags`.
    pub tags: Vec<Tag>,
}

/// A new access key and its secret, shown once.
#[derive(Clone, Debug)]
pub struct NewAccessKey {
    /// The key.
    pub record: AccessKeyRecord,
    /// The secret access key.
    pub secret: Secret<String>,
}

impl Iam<'_> {
    /// CreateUser.
    pub async fn create_user(
        self,
        caller: &Caller,
        input: CreateUser,
    ) -> Result<UserRecord, Error> {
        let account = caller.account().to_string();
        let path = input.path.clone().unwrap_or_else(|| "/".into());
        let user_arn = arn(&account, "user", &path, &input.name);
        self.core.authorize(
            caller,
            "iam:CreateUser",
            &user_arn,
            &tag_context(&input.tags),
        )?;
        super::check_new_tags(&input.tags, true)?;
        self.insert_user(caller, &account, input).await
    }

    /// Creates a user; the caller has been authorized.
    pub(crate) async fn insert_user(
        self,
        caller: &Caller,
        account: &str,
        input: CreateUser,
    ) -> Result<UserRecord, Error> {
        let path = input.path.unwrap_or_else(|| "/".into());
        let user_arn = arn(account, "user", &path, &input.name);
        let mut ops = Vec::new();
        if let Some(boundary) = &input.permissions_boundary {
            ops.extend(self.boundary_ops(account, boundary, &user_arn).await?);
        }
        let user = UserRecord {
            name: input.name.clone(),
            path,
            id: self.core.ids.unique_id("AIDA"),
            arn: user_arn,
            created: self.core.now(),
            tags: input.tags,
            policies: PolicyHolder {
                boundary: input.permissions_boundary,
                ..Default::default()
            },
            access_keys: Vec::new(),
        };
        ops.insert(
            0,
            Op::create(ns::USER, entity_key(account, &user.name), encode(&user)),
        );
        match self.core.commit_as(caller, ops).await {
            Ok(()) => Ok(user),
            Err(podid_store::StoreError::Conflict { index: 0, .. }) => {
                Err(Error::EntityAlreadyExists(format!(
                    "User with name {} already exists.",
                    input.name
                )))
            }
            Err(e) if is_conflict(&e) => Err(Error::NoSuchEntity(format!(
                "Scope ARN: {} does not exist or is not attachable.",
                user.policies.boundary.as_deref().unwrap_or_default()
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// The user a request names, or the caller's own user when it names none.
    fn user_name_of<'a>(self, caller: &'a Caller, name: Option<&'a str>) -> Result<&'a str, Error> {
        match (name, caller.identity()) {
            (Some(name), _) => Ok(name),
            (None, Identity::User { name }) => Ok(name),
            (None, Identity::Root | Identity::Role { .. }) => Err(Error::Validation(
                "Must specify userName when calling with non-User credentials".into(),
            )),
        }
    }

    async fn user_for(
        self,
        caller: &Caller,
        action: &str,
        name: &str,
    ) -> Result<(UserRecord, u64), Error> {
        let account = caller.account().to_string();
        let found = self
            .core
            .load::<UserRecord>(ns::USER, &entity_key(&account, name))
            .await?;
        let resource = found
            .as_ref()
            .map_or_else(|| arn(&account, "user", "/", name), |(u, _)| u.arn.clone());
        self.core.authorize(caller, action, &resource, &[])?;
        found.ok_or_else(|| no_such_user(name))
    }

    /// GetUser: the named user, or the caller.
    pub async fn get_user(self, caller: &Caller, name: Option<&str>) -> Result<UserRecord, Error> {
        let name = self.user_name_of(caller, name)?;
        Ok(self.user_for(caller, "iam:GetUser", name).await?.0)
    }

    /// DeleteUser: only a user without access keys or policies.
    pub async fn delete_user(self, caller: &Caller, name: &str) -> Result<(), Error> {
        for _ in 0..RETRIES {
            let (user, version) = self.user_for(caller, "iam:DeleteUser", name).await?;
            if !user.access_keys.is_empty() {
                return Err(Error::DeleteConflict(
                    "Cannot delete entity, must delete access keys first.".into(),
                ));
            }
            if !user.policies.attached.is_empty() {
                return Err(Error::DeleteConflict(
                    "Cannot delete entity, must detach all policies first.".into(),
                ));
            }
            if !user.policies.inline.is_empty() {
                return Err(Error::DeleteConflict(
                    "Cannot delete entity, must delete policies first.".into(),
                ));
            }
            let mut ops = vec![Op::delete(
                ns::USER,
                entity_key(&caller.account().to_string(), name),
                version,
            )];
            if let Some(boundary) = &user.policies.boundary {
                ops.push(Op::Delete {
                    ns: ns::ATTACHMENT,
                    key: super::roles::attachment_key(boundary, "boundary", &user.arn),
                    condition: podid_store::Condition::Any,
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

    /// ListUsers.
    pub async fn list_users(
        self,
        caller: &Caller,
        path_prefix: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<UserRecord>, Error> {
        let account = caller.account().to_string();
        self.core.authorize(
            caller,
            "iam:ListUsers",
            &arn(&account, "user", path_prefix.unwrap_or("/"), ""),
            &[],
        )?;
        let prefix = path_prefix.unwrap_or("/");
        self.core
            .page(ns::USER, &format!("{account}/"), page, |item| {
                crate::decode::<UserRecord>(item)
                    .ok()
                    .filter(|u| u.path.starts_with(prefix))
            })
            .await
    }

    /// CreateAccessKey: for the named user, or the caller; at most two per user.
    pub async fn create_access_key(
        self,
        caller: &Caller,
        name: Option<&str>,
    ) -> Result<NewAccessKey, Error> {
        let name = self.user_name_of(caller, name)?.to_owned();
        self.user_for(caller, "iam:CreateAccessKey", &name).await?;
        self.insert_access_key(caller, &caller.account().to_string(), &name)
            .await
    }

    /// Creates an access key; the caller has been authorized.
    pub(crate) async fn insert_access_key(
        self,
        caller: &Caller,
        account: &str,
        name: &str,
    ) -> Result<NewAccessKey, Error> {
        let key = entity_key(account, name);
        for _ in 0..RETRIES {
            let (mut user, version) = self
                .core
                .load::<UserRecord>(ns::USER, &key)
                .await?
                .ok_or_else(|| no_such_user(name))?;
            if user.access_keys.len() >= 2 {
                return Err(Error::LimitExceeded(
                    "Cannot exceed quota for AccessKeysPerUser: 2".into(),
                ));
            }
            let secret = self.core.ids.secret_access_key();
            let record = AccessKeyRecord {
                id: self.core.ids.access_key_id("AKIA"),
                account: account.to_owned(),
                user: user.name.clone(),
                sealed_secret: self
                    .core
                    .master
                    .seal(&*self.core.ids, secret.expose().as_bytes()),
                status: "Active".into(),
                created: self.core.now(),
            };
            user.access_keys.push(record.id.clone());
            let ops = vec![
                Op::update(ns::USER, key.clone(), encode(&user), version),
                Op::create(ns::ACCESS_KEY, record.id.clone(), encode(&record)),
            ];
            match self.core.commit_as(caller, ops).await {
                Ok(()) => return Ok(NewAccessKey { record, secret }),
                Err(e) if is_conflict(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(busy())
    }

    /// DeleteAccessKey.
    pub async fn delete_access_key(
        self,
        caller: &Caller,
        name: Option<&str>,
        key_id: &str,
    ) -> Result<(), Error> {
        let name = self.user_name_of(caller, name)?.to_owned();
        for _ in 0..RETRIES {
            let (mut user, version) = self.user_for(caller, "iam:DeleteAccessKey", &name).await?;
            let Some((_, key_version)) = self
                .core
                .load::<AccessKeyRecord>(ns::ACCESS_KEY, key_id)
                .await?
                .filter(|(k, _)| user.access_keys.contains(&k.id))
            else {
                return Err(Error::NoSuchEntity(format!(
                    "The Access Key with id {key_id} cannot be found."
                )));
            };
            user.access_keys.retain(|k| k != key_id);
            let ops = vec![
                Op::update(
                    ns::USER,
                    entity_key(&caller.account().to_string(), &name),
                    encode(&user),
                    version,
                ),
                Op::delete(ns::ACCESS_KEY, key_id, key_version),
            ];
            match self.core.commit_as(caller, ops).await {
                Ok(()) => return Ok(()),
                Err(e) if is_conflict(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(busy())
    }

    /// ListAccessKeys.
    pub async fn list_access_keys(
        self,
        caller: &Caller,
        name: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<AccessKeyRecord>, Error> {
        let name = self.user_name_of(caller, name)?.to_owned();
        let (user, _) = self.user_for(caller, "iam:ListAccessKeys", &name).await?;
        let mut keys = Vec::new();
        for id in &user.access_keys {
            if let Some((record, _)) = self
                .core
                .load::<AccessKeyRecord>(ns::ACCESS_KEY, id)
                .await?
            {
                keys.push(record);
            }
        }
        Ok(super::roles::page_of(keys, page))
    }
}

pub(crate) fn no_such_user(name: &str) -> Error {
    Error::NoSuchEntity(format!("The user with name {name} cannot be found."))
}
