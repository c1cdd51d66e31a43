//! The first start: accounts, an administrator per account, and its access key.

use podid_store::Op;
use podid_types::{AccountId, Secret};

use crate::error::IamError;
use crate::iam::CreateUser;
use crate::names::entity_key;
use crate::records::{AccountRecord, UserRecord, ns};
use crate::{Iam, encode};

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

impl Iam {
    /// With an empty store, creates each account with an `admin` user that has
    /// `AdministratorAccess`, and an access key for it. With accounts already there, does
    /// nothing: a restart never re-bootstraps or rotates keys.
    pub async fn bootstrap(&self, accounts: &[AccountId]) -> Result<Bootstrapped, IamError> {
        if !self.store.scan(ns::ACCOUNT, "", None, 1).await?.is_empty() {
            return Ok(Bootstrapped { keys: Vec::new() });
        }
        let mut keys = Vec::new();
        for account in accounts {
            let id = account.to_string();
            let record = AccountRecord {
                id: id.clone(),
                created: self.now(),
            };
            self.store
                .commit(vec![Op::create(ns::ACCOUNT, id.clone(), encode(&record))])
                .await?;
            self.insert_user(
                &id,
                CreateUser {
                    name: ADMIN_USER.into(),
                    ..Default::default()
                },
            )
            .await?;
            // Attach AdministratorAccess directly: there is no caller yet to authorize.
            let key = entity_key(&id, ADMIN_USER);
            if let Some((mut user, version)) = self.load::<UserRecord>(ns::USER, &key).await? {
                let policy = "arn:aws:iam::aws:policy/AdministratorAccess".to_owned();
                user.policies.attached.push(policy.clone());
                self.store
                    .commit(vec![
                        Op::update(ns::USER, key, encode(&user), version),
                        Op::upsert(
                            ns::ATTACHMENT,
                            crate::iam::attachment_key(&policy, "policy", &user.arn),
                            user.arn.clone(),
                        ),
                    ])
                    .await?;
            }
            let new = self.insert_access_key(&id, ADMIN_USER).await?;
            keys.push(BootstrapKey {
                account: *account,
                user: ADMIN_USER.into(),
                access_key_id: new.record.id,
                secret_access_key: new.secret,
            });
        }
        Ok(Bootstrapped { keys })
    }

    /// The accounts this podid hosts.
    pub async fn accounts(&self) -> Result<Vec<String>, IamError> {
        Ok(self
            .store
            .scan(ns::ACCOUNT, "", None, 10_000)
            .await?
            .into_iter()
            .map(|i| i.key)
            .collect())
    }
}
