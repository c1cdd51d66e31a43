//! The agent's state as a document, so that a restarted agent serves its pods through an EKS
//! Auth outage (pain point 6 of the reference agent): the cached pods (credentials, the newest
//! token, issuer and subject), the issuers' key sets that verify rotated tokens, and the change
//! feed's cursor, so that the changes made while the agent was down still reach its pods.
//!
//! The document holds credentials and tokens: whoever writes it keeps it where only the agent
//! can read it (`podid agent --state-dir` writes it with mode 0600).

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use podid_jwt::Jwks;
use podid_types::Secret;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{Agent, Entry};
use crate::upstream::UpstreamCredentials;

/// The document's format; a document of another version is ignored.
const VERSION: u64 = 1;

/// The document, as written.
#[derive(Serialize)]
struct StateOut<'a> {
    version: u64,
    cluster: &'a str,
    issuers: Vec<IssuerOut<'a>>,
    pods: PodsOut,
    #[serde(rename = "feedCursor", skip_serializing_if = "Option::is_none")]
    feed_cursor: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IssuerOut<'a> {
    issuer: &'a str,
    jwks: &'a Jwks,
    fetched_at: i64,
}

/// The cached pods, serialized one by one as the document is written (no copy of them all).
struct PodsOut(Vec<(String, Arc<Entry>)>);

impl Serialize for PodsOut {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|(key, e)| PodOut {
            key,
            token: e.token.expose(),
            issuer: &e.issuer,
            subject: &e.subject,
            fetched_at: e.fetched_at,
            refresh_at: e.refresh_at.load(Ordering::Relaxed),
            last_used: e.last_used.load(Ordering::Relaxed),
            credentials: CredentialsOut {
                access_key_id: &e.credentials.access_key_id,
                secret_access_key: e.credentials.secret_access_key.expose(),
                session_token: e.credentials.session_token.expose(),
                expiration: e.credentials.expiration,
                assumed_role_arn: &e.credentials.assumed_role_arn,
            },
        }))
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PodOut<'a> {
    key: &'a str,
    token: &'a str,
    issuer: &'a str,
    subject: &'a str,
    fetched_at: i64,
    refresh_at: i64,
    last_used: i64,
    credentials: CredentialsOut<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CredentialsOut<'a> {
    access_key_id: &'a str,
    secret_access_key: &'a str,
    session_token: &'a str,
    expiration: i64,
    assumed_role_arn: &'a str,
}

/// The document, as read.
#[derive(Deserialize)]
struct StateIn {
    version: u64,
    #[serde(default)]
    cluster: String,
    #[serde(default)]
    issuers: Vec<IssuerIn>,
    #[serde(default)]
    pods: Vec<PodIn>,
    #[serde(default, rename = "feedCursor")]
    feed_cursor: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IssuerIn {
    issuer: String,
    jwks: Jwks,
    #[serde(default)]
    fetched_at: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodIn {
    key: String,
    token: String,
    issuer: String,
    subject: String,
    fetched_at: i64,
    refresh_at: i64,
    last_used: i64,
    credentials: CredentialsIn,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CredentialsIn {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    expiration: i64,
    assumed_role_arn: String,
}

/// Only the version, read first so that another version is named as such.
#[derive(Deserialize)]
struct Version {
    version: Option<u64>,
}

impl Agent {
    /// A number that changes whenever the state does: write the state when it moved.
    pub fn state_generation(&self) -> u64 {
        self.generation
            .load(Ordering::Relaxed)
            .wrapping_add(self.keys.generation())
    }

    /// Writes the state as a JSON document to `out` (secrets in the clear: keep it private).
    /// The pods are taken under the lock and written after it, one by one.
    ///
    /// # Errors
    /// What `out` fails with.
    pub fn write_state(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let pods: Vec<(String, Arc<Entry>)> = self.entries.read().map_or_else(
            |_| Vec::new(),
            |entries| {
                entries
                    .iter()
                    .map(|(k, e)| (k.clone(), e.clone()))
                    .collect()
            },
        );
        let exported = self.keys.export();
        let issuers = exported
            .iter()
            .map(|(issuer, jwks, fetched_at)| IssuerOut {
                issuer,
                jwks,
                fetched_at: *fetched_at,
            })
            .collect();
        let state = StateOut {
            version: VERSION,
            cluster: &self.config.cluster_name,
            issuers,
            pods: PodsOut(pods),
            feed_cursor: self.feed_cursor(),
        };
        serde_json::to_writer(&mut *out, &state).map_err(std::io::Error::other)?;
        out.flush()
    }

    /// The state as a JSON document (see [`Agent::write_state`]).
    pub fn state(&self) -> String {
        let mut out = Vec::new();
        let _ = self.write_state(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Takes back the state of an earlier run: the key sets, the pods whose credentials may
    /// still be served, and the change feed's cursor (the feed then reads the changes made
    /// since, or says they are too old and every pod is dropped). Returns how many pods were
    /// restored.
    ///
    /// # Errors
    /// A document that is not the agent's state, of another version or another cluster.
    pub fn restore(&self, document: &str) -> Result<usize, String> {
        let version: Version =
            serde_json::from_str(document).map_err(|e| format!("the state is not JSON ({e})"))?;
        if version.version != Some(VERSION) {
            return Err(format!(
                "the state is not of version {VERSION}: it is ignored"
            ));
        }
        let state: StateIn = serde_json::from_str(document)
            .map_err(|e| format!("the state cannot be read ({e}): it is ignored"))?;
        if state.cluster != self.config.cluster_name {
            return Err(format!(
                "the state is of cluster `{}`, not `{}`: it is ignored",
                state.cluster, self.config.cluster_name
            ));
        }
        debug_assert_eq!(state.version, VERSION);
        for issuer in state.issuers {
            self.keys
                .import(&issuer.issuer, issuer.jwks, issuer.fetched_at);
        }
        self.restore_feed_cursor(state.feed_cursor);
        let now = self.clock.now().as_millis();
        let mut restored = 0;
        for pod in state.pods {
            let (key, entry) = entry_of(pod);
            if !entry.servable(now) || self.cached_pods() >= self.config.max_cache_size {
                continue;
            }
            if let Ok(mut entries) = self.entries.write() {
                entries.entry(key).or_insert_with(|| Arc::new(entry));
                restored += 1;
            }
        }
        Ok(restored)
    }
}

/// One pod of the document.
fn entry_of(pod: PodIn) -> (String, Entry) {
    let c = pod.credentials;
    let entry = Entry {
        credentials: UpstreamCredentials {
            access_key_id: c.access_key_id,
            secret_access_key: Secret::new(c.secret_access_key),
            session_token: Secret::new(c.session_token),
            expiration: c.expiration,
            assumed_role_arn: c.assumed_role_arn,
        },
        token_hash: Sha256::digest(pod.token.as_bytes()).into(),
        token: Secret::new(pod.token),
        issuer: pod.issuer,
        subject: pod.subject,
        fetched_at: pod.fetched_at,
        refresh_at: AtomicI64::new(pod.refresh_at),
        last_used: AtomicI64::new(pod.last_used),
        refreshing: AtomicBool::new(false),
        body: std::sync::OnceLock::new(),
    };
    (pod.key, entry)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::AgentConfig;
    use crate::upstream::{Upstream, UpstreamError};
    use podid_types::{FixedClock, Timestamp};

    struct Down;

    #[async_trait::async_trait]
    impl Upstream for Down {
        async fn assume(&self, _: &str, _: &str) -> Result<UpstreamCredentials, UpstreamError> {
            Err(UpstreamError::Unavailable("down".into()))
        }
        async fn fetch(&self, _: &str) -> Result<String, String> {
            Err("down".into())
        }
    }

    fn agent(cluster: &str, now_ms: i64) -> Agent {
        Agent::new(
            AgentConfig::new(cluster),
            Arc::new(Down),
            Arc::new(FixedClock::new(Timestamp::from_millis(now_ms))),
            Arc::new(|_| 0),
        )
    }

    fn document(expiration: i64) -> String {
        json!({
            "version": 1, "cluster": "c",
            "issuers": [{"issuer": "https://issuer.example", "jwks": {"keys": []}, "fetchedAt": 5}],
            "pods": [{"key": "uid-1", "token": "a.b.c", "issuer": "https://issuer.example",
                      "subject": "system:serviceaccount:default:app", "fetchedAt": 1,
                      "refreshAt": 2, "lastUsed": 3,
                      "credentials": {"accessKeyId": "ASIAX", "secretAccessKey": "s",
                                      "sessionToken": "t", "expiration": expiration,
                                      "assumedRoleArn": "arn:aws:sts::111122223333:assumed-role/r/s"}}],
        })
        .to_string()
    }

    #[test]
    fn a_state_round_trips_and_expired_or_foreign_ones_are_left_out() {
        let now = 1_000_000_000;
        let first = agent("c", now);
        assert_eq!(first.restore(&document(now / 1000 + 3600)), Ok(1));
        assert_eq!(first.cached_pods(), 1);
        // Written and read again: the same pod, the same credentials.
        let second = agent("c", now);
        assert_eq!(second.restore(&first.state()), Ok(1));
        let state: Value = serde_json::from_str(&second.state()).unwrap_or_default();
        assert_eq!(state["pods"][0]["credentials"]["accessKeyId"], "ASIAX");
        assert_eq!(state["issuers"][0]["issuer"], "https://issuer.example");
        // Credentials about to expire are not restored.
        assert_eq!(agent("c", now).restore(&document(now / 1000 + 10)), Ok(0));
        // Another cluster's state, another version, not JSON: refused with the reason.
        let other = agent("other", now).restore(&document(now / 1000 + 3600));
        assert!(other.is_err_and(|e| e.contains("cluster `c`")));
        let old = agent("c", now).restore(r#"{"version": 0}"#);
        assert!(old.is_err_and(|e| e.contains("version 1")));
        assert!(agent("c", now).restore("not json").is_err());
    }
}
