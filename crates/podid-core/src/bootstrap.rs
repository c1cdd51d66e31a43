//! The first start: accounts, an administrator per account, and its access key.

use podid_store::Op;
use podid_types::{AccountId, Secret};

use crate::error::Error;
use crate::iam::is_conflict;
use crate::names::{arn, entity_key};
use crate::records::{AccessKeyRecord, AccountRecord, PolicyHolder, UserRecord, ns};
use crate::{Core, encode};

/// An administrator's access key made by the bootstrap.
#[derive(Clone, Debug)]
pub struct BootstrapKey {
    /// The account.
    pub account: AccountId,
    /// The user (`admin`).
    pub user: String,
    /// The access key id.
    pub access_key_id: String,
    /// The secret.
    pub secret_access_key: Secret<String>,
}

/// What the bootstrap did.
#[derive(Clone, Debug)]
pub struct Bootstrapped {
    /// The keys it made; empty when the store already had accounts (nothing is done then).
    pub keys: Vec<BootstrapKey>,
}

/// The name of the administrator each bootstrapped account gets.
pub const ADMIN_USER: &str = "admin";

impl Core {
    /// With an empty store, creates each account with an `admin` user that has
    /// `AdministratorAccess`, and an access key for it, all in one transaction: a crash leaves
    /// either every account or none. With accounts already there (or when another replica
    /// bootstraps the same database first), does nothing: a restart never re-bootstraps or
    /// rotates keys.
    pub async fn bootstrap(&self, accounts: &[AccountId]) -> Result<Bootstrapped, Error> {
        if !self.store.scan(ns::ACCOUNT, "", None, 1).await?.is_empty() {
            return Ok(Bootstrapped { keys: Vec::new() });
        }
        let mut keys = Vec::new();
        let mut ops = Vec::new();
        for account in accounts {
            let id = account.to_string();
            let now = self.now();
            let record = AccountRecord {
                id: id.clone(),
                created: now,
            };
            ops.push(Op::create(ns::ACCOUNT, id.clone(), encode(&record)));
            let secret = self.ids.secret_access_key();
            let key = AccessKeyRecord {
                id: self.ids.access_key_id("AKIA"),
                account: id.clone(),
                user: ADMIN_USER.into(),
                sealed_secret: self.master.seal(&*self.ids, secret.expose().as_bytes()),
                status: "Active".into(),
                created: now,
            };
            // AdministratorAccess is attached directly: there is no caller yet to authorize.
            let user = UserRecord {
                name: ADMIN_USER.into(),
                path: "/".into(),
                id: self.ids.unique_id("AIDA"),
                arn: arn(&id, "user", "/", ADMIN_USER),
                created: now,
                tags: Vec::new(),
                policies: PolicyHolder {
                    attached: vec![ADMINISTRATOR_ACCESS.to_owned()],
                    ..Default::default()
                },
                access_keys: vec![key.id.clone()],
            };
            ops.push(Op::create(
                ns::USER,
                entity_key(&id, ADMIN_USER),
                encode(&user),
            ));
            ops.push(Op::upsert(
                ns::ATTACHMENT,
                crate::iam::attachment_key(ADMINISTRATOR_ACCESS, "policy", &user.arn),
                user.arn.clone(),
            ));
            ops.push(Op::create(ns::ACCESS_KEY, key.id.clone(), encode(&key)));
            keys.push(BootstrapKey {
                account: *account,
                user: ADMIN_USER.into(),
                access_key_id: key.id,
                secret_access_key: secret,
            });
        }
        match self.store.commit(ops).await {
            Ok(()) => Ok(Bootstrapped { keys }),
            // Another replica bootstrapped the same database first.
            Err(e) if is_conflict(&e) => Ok(Bootstrapped { keys: Vec::new() }),
            Err(e) => Err(e.into()),
        }
    }

    /// For each account, the first active access key of its `admin` user, with the secret: what
    /// the AWS config files hold. Accounts whose `admin` user or keys were deleted are left out.
    pub async fn admin_keys(&self) -> Result<Vec<BootstrapKey>, Error> {
        let mut keys = Vec::new();
        for account in self.accounts().await? {
            let Ok(account_id) = account.parse::<AccountId>() else {
                continue;
            };
            let Some((user, _)) = self
                .load::<UserRecord>(ns::USER, &entity_key(&account, ADMIN_USER))
                .await?
            else {
                continue;
            };
            for id in &user.access_keys {
                if let Some((record, secret)) = self.access_key(id).await? {
                    keys.push(BootstrapKey {
                        account: account_id,
                        user: user.name.clone(),
                        access_key_id: record.id,
                        secret_access_key: secret,
                    });
                    break;
                }
            }
        }
        Ok(keys)
    }

    /// The accounts this podid hosts.
    pub async fn accounts(&self) -> Result<Vec<String>, Error> {
        Ok(self
            .store
            .scan(ns::ACCOUNT, "", None, 10_000)
            .await?
            .into_iter()
            .map(|i| i.key)
            .collect())
    }
}

const ADMINISTRATOR_ACCESS: &str = "arn:aws:iam::aws:policy/AdministratorAccess";
