//! Stateless session tokens: the whole session, sealed (AES-256-GCM) by a server session key.
//!
//! A token is base64 of `version (1) ‖ key id (8) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`; the
//! version and key id are authenticated as associated data. The plaintext is the session's
//! [`Claims`] as JSON. Any replica that shares the store opens any token: session keys live in
//! the store, sealed with the master key. A new key seals from its creation on; older keys still
//! open tokens until every session they sealed has expired, then they are deleted.

use std::sync::RwLock;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use podid_store::Op;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::iam::is_conflict;
use crate::{Core, encode};

/// The namespace of session keys.
const NS: &str = "session-key";

/// The token format's version byte.
const VERSION: u8 = 1;

/// The longest session podid issues (GetSessionToken's 36 hours).
pub(crate) const MAX_SESSION_MILLIS: i64 = 129_600 * 1000;

/// How long a session key seals before a new one replaces it.
const ROTATE_AFTER_MILLIS: i64 = 24 * 3600 * 1000;

/// How long a replaced key is kept: every session it sealed has expired by then, with an hour
/// for replicas that sealed with it a little longer.
const RETAIN_MILLIS: i64 = MAX_SESSION_MILLIS + 3600 * 1000;

/// The longest token accepted (AWS's tokens are a few kilobytes at most).
const MAX_TOKEN_CHARS: usize = 16 * 1024;

/// The least time between two reloads of the keys for tokens with an unknown key id, so that
/// forged tokens cannot make every request read the store.
const RELOAD_INTERVAL_MILLIS: i64 = 1000;

/// What a session token carries. Not `Debug`: it holds the session's secret.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Claims {
    /// The temporary access key id (`ASIA…`).
    #[serde(rename = "k")]
    pub(crate) access_key_id: String,
    /// The secret access key the client signs with.
    #[serde(rename = "s")]
    pub(crate) secret: String,
    /// The account of the session's principal.
    #[serde(rename = "a")]
    pub(crate) account: String,
    /// Who the session is.
    #[serde(rename = "p")]
    pub(crate) principal: SessionPrincipal,
    /// Session tags (passed, and inherited transitive ones), case as given.
    #[serde(rename = "t", default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) tags: Vec<(String, String)>,
    /// The keys of the transitive session tags.
    #[serde(rename = "tk", default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) transitive_keys: Vec<String>,
    /// The inline session policy.
    #[serde(rename = "po", default, skip_serializing_if = "Option::is_none")]
    pub(crate) policy: Option<String>,
    /// The managed session policies.
    #[serde(rename = "pa", default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) policy_arns: Vec<String>,
    /// The source identity.
    #[serde(rename = "si", default, skip_serializing_if = "Option::is_none")]
    pub(crate) source_identity: Option<String>,
    /// Issued, epoch milliseconds.
    #[serde(rename = "iat")]
    pub(crate) issued: i64,
    /// Expires, epoch milliseconds.
    #[serde(rename = "exp")]
    pub(crate) expires: i64,
    /// How many AssumeRole calls made by role sessions led here (0: assumed by a user, a service
    /// or a web identity).
    #[serde(rename = "d", default)]
    pub(crate) depth: u32,
}

/// The principal of a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub(crate) enum SessionPrincipal {
    /// A role session.
    #[serde(rename = "role")]
    Role {
        /// The role's ARN.
        arn: String,
        /// The role's unique id (`AROA…`).
        id: String,
        /// The session name.
        session: String,
    },
    /// The account root's session (GetSessionToken).
    #[serde(rename = "root")]
    Root,
    /// A user's session (GetSessionToken).
    #[serde(rename = "user")]
    User {
        /// The user's name.
        name: String,
    },
}

/// Why a token does not open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenError {
    /// Not a token podid sealed (malformed, tampered with, or sealed by another server's keys).
    Invalid,
}

/// A session key in memory.
struct LoadedKey {
    id: [u8; 8],
    created: i64,
    cipher: Aes256Gcm,
}

/// A session key as stored.
#[derive(Serialize, Deserialize)]
struct KeyRecord {
    /// The key id, 16 hex digits.
    id: String,
    /// Created, epoch milliseconds.
    created: i64,
    /// The 32-byte key, sealed with the master key.
    sealed_key: String,
}

/// The session keys this server knows, newest first.
#[derive(Default)]
pub(crate) struct Keyring {
    state: RwLock<KeyringState>,
}

#[derive(Default)]
struct KeyringState {
    keys: Vec<LoadedKey>,
    loaded_at: Option<i64>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyring(** redacted **)")
    }
}

impl super::Sts<'_> {
    /// Makes a new session key when the newest is older than a day (or there is none), and
    /// deletes keys replaced long enough ago that no session they sealed is still valid. Every
    /// server runs this periodically; replicas that race may each add a key, which is harmless.
    pub async fn rotate_session_keys(self) -> Result<(), Error> {
        self.core.load_session_keys().await?;
        let now = self.core.now();
        let newest = self.core.key_ids().first().map(|(created, _)| *created);
        if newest.is_none_or(|created| now - created >= ROTATE_AFTER_MILLIS) {
            self.core.create_session_key().await?;
        }
        self.core.load_session_keys().await?;
        // A key was replaced when the next newer key was made.
        let keys = self.core.key_ids();
        let mut ops = Vec::new();
        for ((newer, _), (_, older)) in keys.iter().zip(keys.iter().skip(1)) {
            if now - newer > RETAIN_MILLIS {
                ops.push(Op::Delete {
                    ns: NS,
                    key: older.clone(),
                    condition: podid_store::Condition::Any,
                });
            }
        }
        if !ops.is_empty() {
            self.core.store.commit(ops).await?;
            self.core.load_session_keys().await?;
        }
        Ok(())
    }

    /// How many session keys this server holds (for tests and diagnostics).
    pub fn session_key_count(self) -> usize {
        self.core
            .keyring
            .state
            .read()
            .map(|s| s.keys.len())
            .unwrap_or_default()
    }
}

impl Core {
    /// Seals `claims` into a session token with the newest session key (made if there is none).
    pub(crate) async fn seal_claims(&self, claims: &Claims) -> Result<String, Error> {
        if self.newest_key().is_none() {
            self.load_session_keys().await?;
            if self.newest_key().is_none() {
                self.create_session_key().await?;
                self.load_session_keys().await?;
            }
        }
        let (id, cipher) = self.newest_key().ok_or_else(|| {
            Error::ServiceFailure("no session key is available to seal a session".into())
        })?;
        let mut nonce = [0u8; 12];
        self.ids.fill(&mut nonce);
        let mut header = vec![VERSION];
        header.extend_from_slice(&id);
        let plaintext = serde_json::to_vec(claims).unwrap_or_default();
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad: &header,
                },
            )
            .map_err(|_| Error::ServiceFailure("a session could not be sealed".into()))?;
        let mut out = header;
        out.extend_from_slice(&nonce);
        out.extend(sealed);
        Ok(base64::engine::general_purpose::STANDARD.encode(out))
    }

    /// Opens a session token: its claims, if a key of this server's store sealed it.
    pub(crate) async fn open_claims(&self, token: &str) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_CHARS {
            return Err(TokenError::Invalid);
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(token)
            .map_err(|_| TokenError::Invalid)?;
        let (header, rest) = bytes.split_at_checked(9).ok_or(TokenError::Invalid)?;
        let (nonce, ciphertext) = rest.split_at_checked(12).ok_or(TokenError::Invalid)?;
        if header.first() != Some(&VERSION) || ciphertext.len() < 16 {
            return Err(TokenError::Invalid);
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(header.get(1..9).ok_or(TokenError::Invalid)?);
        let cipher = match self.key(&id) {
            Some(cipher) => cipher,
            None => {
                // Perhaps another replica made a key since this one last looked.
                if !self.may_reload() {
                    return Err(TokenError::Invalid);
                }
                self.load_session_keys()
                    .await
                    .map_err(|_| TokenError::Invalid)?;
                self.key(&id).ok_or(TokenError::Invalid)?
            }
        };
        let plaintext = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: header,
                },
            )
            .map_err(|_| TokenError::Invalid)?;
        serde_json::from_slice(&plaintext).map_err(|_| TokenError::Invalid)
    }

    fn newest_key(&self) -> Option<([u8; 8], Aes256Gcm)> {
        let state = self.keyring.state.read().ok()?;
        state.keys.first().map(|k| (k.id, k.cipher.clone()))
    }

    fn key(&self, id: &[u8; 8]) -> Option<Aes256Gcm> {
        let state = self.keyring.state.read().ok()?;
        state
            .keys
            .iter()
            .find(|k| &k.id == id)
            .map(|k| k.cipher.clone())
    }

    /// (created, id) of each key, newest first.
    fn key_ids(&self) -> Vec<(i64, String)> {
        self.keyring
            .state
            .read()
            .map(|s| s.keys.iter().map(|k| (k.created, hex(&k.id))).collect())
            .unwrap_or_default()
    }

    fn may_reload(&self) -> bool {
        let now = self.now();
        let Ok(mut state) = self.keyring.state.write() else {
            return false;
        };
        match state.loaded_at {
            Some(at) if now - at < RELOAD_INTERVAL_MILLIS => false,
            _ => {
                state.loaded_at = Some(now);
                true
            }
        }
    }

    async fn load_session_keys(&self) -> Result<(), Error> {
        let items = self.store.scan(NS, "", None, 1000).await?;
        let mut keys = Vec::new();
        for item in items {
            let record: KeyRecord = crate::decode(&item)?;
            let Some(id) = unhex(&record.id) else {
                continue;
            };
            let key = self.master.open(&record.sealed_key).map_err(|e| {
                tracing::error!(error = %e, "a session key does not open with the master key");
                Error::ServiceFailure(e.to_string())
            })?;
            let Ok(bytes) = <[u8; 32]>::try_from(key.expose().as_slice()) else {
                continue;
            };
            keys.push(LoadedKey {
                id,
                created: record.created,
                cipher: Aes256Gcm::new(&bytes.into()),
            });
        }
        keys.sort_by(|a, b| b.created.cmp(&a.created).then(b.id.cmp(&a.id)));
        let now = self.now();
        if let Ok(mut state) = self.keyring.state.write() {
            state.keys = keys;
            state.loaded_at = Some(now);
        }
        Ok(())
    }

    async fn create_session_key(&self) -> Result<(), Error> {
        let mut id = [0u8; 8];
        self.ids.fill(&mut id);
        let mut key = [0u8; 32];
        self.ids.fill(&mut key);
        let record = KeyRecord {
            id: hex(&id),
            created: self.now(),
            sealed_key: self.master.seal(&*self.ids, &key),
        };
        match self
            .store
            .commit(vec![Op::create(NS, record.id.clone(), encode(&record))])
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_conflict(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 8]> {
    if text.len() != 16 {
        return None;
    }
    let mut out = [0u8; 8];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}
