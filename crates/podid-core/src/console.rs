//! Sessions of the web console: an IAM user's access key id and secret, checked once, turned
//! into a server session that the browser holds in an HttpOnly cookie.
//!
//! The session's token is 32 random bytes. The store keeps only its SHA-256, so a copy of the
//! database opens no session. A record holds the account and access key it was opened with; each
//! request loads the caller from that key as it is now (a key deactivated or deleted ends the
//! session) and is authorized by the policy engine like any API call. A session ends after
//! [`IDLE_MS`] without a request, [`ABSOLUTE_MS`] after sign-in, or at sign-out (the record is
//! deleted, so the cookie opens nothing even if it was copied). Records live in the store, so
//! every replica and a restarted server know them.
//!
//! The form token that protects each change (CSRF) is derived from the session token: SHA-256
//! of a label and the token. A page of another site can neither read it nor compute it.

use podid_store::Op;
use podid_types::{Secret, constant_time_eq};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Core;
use crate::auth::Caller;
use crate::error::Error;

/// A session ends after this long without a request (30 minutes).
pub const IDLE_MS: i64 = 30 * 60 * 1000;

/// A session ends this long after sign-in, whatever its use (12 hours, as the AWS console's).
pub const ABSOLUTE_MS: i64 = 12 * 3600 * 1000;

/// How often the last use is written back (so that reads do not all write).
const TOUCH_MS: i64 = 60 * 1000;

/// The namespace of session records, by the SHA-256 of their token.
const NS: &str = "console-session";

/// The text of every failed sign-in: which part was wrong is not said.
const BAD_KEY: &str =
    "The access key ID or secret access key is not valid, or the key is inactive.";

#[derive(Clone, Debug, Serialize, Deserialize)]
struct SessionRecord {
    account: String,
    access_key_id: String,
    created: i64,
    last_used: i64,
}

/// A console session just opened.
#[derive(Debug)]
pub struct ConsoleSession {
    /// The cookie's value.
    pub token: Secret<String>,
    /// The form token of the session.
    pub csrf: Secret<String>,
    /// Who signed in.
    pub caller: Caller,
}

/// A console session of a request.
#[derive(Debug)]
pub struct OpenedConsole {
    /// Who the session is, with its policies as they are now.
    pub caller: Caller,
    /// The form token every change must carry.
    pub csrf: Secret<String>,
    /// When the session ends at the latest.
    pub expires: i64,
}

impl Core {
    /// Signs in with an IAM user's access key: a new session, or `InvalidClientTokenId` with
    /// the same text whatever was wrong.
    pub async fn console_sign_in(
        &self,
        access_key_id: &str,
        secret_access_key: &str,
    ) -> Result<ConsoleSession, Error> {
        let refused = || Error::InvalidClientTokenId(BAD_KEY.into());
        if access_key_id.is_empty() || access_key_id.len() > 128 {
            return Err(refused());
        }
        let Some((record, secret)) = self.access_key(access_key_id).await? else {
            return Err(refused());
        };
        if !constant_time_eq(secret.expose().as_bytes(), secret_access_key.as_bytes())
            || record.status != "Active"
        {
            return Err(refused());
        }
        let caller = self.caller(&record).await?;
        let mut bytes = [0u8; 32];
        self.ids.fill(&mut bytes);
        let token = hex(&bytes);
        let now = self.now();
        let session = SessionRecord {
            account: record.account.clone(),
            access_key_id: record.id.clone(),
            created: now,
            last_used: now,
        };
        self.store
            .commit(vec![Op::create(
                NS,
                digest(&token),
                crate::encode(&session),
            )])
            .await?;
        Ok(ConsoleSession {
            csrf: Secret::new(csrf_of(&token)),
            token: Secret::new(token),
            caller,
        })
    }

    /// The session whose cookie is `token`, if it is open: its caller as the key's user is now.
    /// `None` for an unknown, expired or signed-out session.
    pub async fn console_session(&self, token: &str) -> Result<Option<OpenedConsole>, Error> {
        if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let key = digest(token);
        let Some(item) = self.store.get(NS, &key).await? else {
            return Ok(None);
        };
        let session: SessionRecord = crate::decode(&item)?;
        let now = self.now();
        if ended_at(&session, now) {
            // Expired: gone for good (a failed delete is retried by the next request).
            let _ = self
                .store
                .commit(vec![Op::delete(NS, key, item.version)])
                .await;
            return Ok(None);
        }
        let Some((record, _)) = self.access_key(&session.access_key_id).await? else {
            return Ok(None);
        };
        if record.status != "Active" || record.account != session.account {
            return Ok(None);
        }
        let caller = self.caller(&record).await?;
        if now - session.last_used > TOUCH_MS {
            let touched = SessionRecord {
                last_used: now,
                ..session.clone()
            };
            // Another request may have touched it first: either write will do.
            let _ = self
                .store
                .commit(vec![Op::update(
                    NS,
                    key,
                    crate::encode(&touched),
                    item.version,
                )])
                .await;
        }
        Ok(Some(OpenedConsole {
            caller,
            csrf: Secret::new(csrf_of(token)),
            expires: (session.created + ABSOLUTE_MS).min(now + IDLE_MS),
        }))
    }

    /// Deletes the records of sessions that have ended (idle or past the absolute limit) but
    /// were never used again, so that abandoned sign-ins do not pile up; how many. The server
    /// runs it with the audit trail's pruning.
    pub async fn prune_console_sessions(&self) -> Result<usize, Error> {
        const CHUNK: usize = 1000;
        let now = self.now();
        let mut after: Option<String> = None;
        let mut pruned = 0;
        loop {
            let items = self.store.scan(NS, "", after.as_deref(), CHUNK).await?;
            let Some(last) = items.last() else {
                return Ok(pruned);
            };
            after = Some(last.key.clone());
            let mut ended = Vec::new();
            for item in &items {
                let session: SessionRecord = crate::decode(item)?;
                if ended_at(&session, now) {
                    ended.push(Op::delete(NS, item.key.clone(), item.version));
                }
            }
            pruned += ended.len();
            if !ended.is_empty() {
                // A session used meanwhile fails the batch: the next round prunes the rest.
                let _ = self.store.commit(ended).await;
            }
            if items.len() < CHUNK {
                return Ok(pruned);
            }
        }
    }

    /// Ends the session whose cookie is `token` (nothing happens for an unknown one).
    pub async fn console_sign_out(&self, token: &str) -> Result<(), Error> {
        let key = digest(token);
        if let Some(item) = self.store.get(NS, &key).await? {
            let _ = self
                .store
                .commit(vec![Op::delete(NS, key, item.version)])
                .await;
        }
        Ok(())
    }
}

/// Whether a session has ended at `now`: idle too long, or past its absolute limit.
fn ended_at(session: &SessionRecord, now: i64) -> bool {
    now - session.last_used > IDLE_MS || now - session.created > ABSOLUTE_MS
}

/// Whether `given` is the form token of the session `csrf` belongs to, in constant time.
pub fn csrf_matches(csrf: &Secret<String>, given: &str) -> bool {
    constant_time_eq(csrf.expose().as_bytes(), given.as_bytes())
}

fn digest(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn csrf_of(token: &str) -> String {
    hex(&Sha256::digest(
        format!("podid-console-csrf:{token}").as_bytes(),
    ))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
