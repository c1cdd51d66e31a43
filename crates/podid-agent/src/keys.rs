//! The key sets of the issuers whose tokens EKS Auth accepted: the agent checks rotated tokens
//! of cached pods against them, so a token rotation costs no upstream call and survives an
//! EKS Auth outage.
//!
//! An issuer is learned only from a token EKS Auth accepted for this agent's cluster; its key
//! set comes from OIDC discovery (`ISSUER/.well-known/openid-configuration`, then `jwks_uri`).
//! A token whose `kid` the set lacks refetches it, at most once a minute per issuer.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use podid_jwt::{Jwks, JwtError};
use podid_types::Timestamp;
use serde_json::Value;

use crate::upstream::Upstream;

/// The shortest time between two fetches of one issuer's key set (ms).
const REFETCH_AFTER_MS: i64 = 60_000;

/// How long a key set is trusted before it is fetched again (ms): a key the issuer removed
/// stops verifying within the hour. A failed fetch keeps the set it had.
const KEY_SET_MAX_AGE_MS: i64 = 3_600_000;

pub(crate) struct Keys {
    upstream: Arc<dyn Upstream>,
    issuers: RwLock<HashMap<String, Issuer>>,
    /// Bumped whenever a key set is fetched (for the agent's state file).
    generation: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct Issuer {
    jwks: Option<Arc<Jwks>>,
    /// When the key set was last fetched or tried (ms); 0 = never.
    fetched_at: i64,
}

impl Keys {
    pub(crate) fn new(upstream: Arc<dyn Upstream>) -> Self {
        Self {
            upstream,
            issuers: RwLock::new(HashMap::new()),
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// A number that changes whenever a key set is fetched.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The key sets held: issuer, set, when it was fetched (ms).
    pub(crate) fn export(&self) -> Vec<(String, Arc<Jwks>, i64)> {
        self.issuers.read().map_or_else(
            |_| Vec::new(),
            |issuers| {
                issuers
                    .iter()
                    .filter_map(|(name, i)| Some((name.clone(), i.jwks.clone()?, i.fetched_at)))
                    .collect()
            },
        )
    }

    /// Takes back a key set of an earlier run (unless one is held already).
    pub(crate) fn import(&self, issuer: &str, jwks: Jwks, fetched_at: i64) {
        if !fetchable(issuer) {
            return;
        }
        if let Ok(mut issuers) = self.issuers.write() {
            let known = issuers.entry(issuer.to_owned()).or_default();
            if known.jwks.is_none() {
                known.jwks = Some(Arc::new(jwks));
                known.fetched_at = fetched_at;
            }
        }
    }

    /// How many issuers' key sets are held.
    pub(crate) fn held(&self) -> usize {
        self.issuers
            .read()
            .map_or(0, |i| i.values().filter(|k| k.jwks.is_some()).count())
    }

    /// Remembers `issuer` (its token was accepted upstream); its key set is fetched when first
    /// needed.
    pub(crate) fn learn(&self, issuer: &str) {
        if !fetchable(issuer) {
            return;
        }
        if let Ok(mut issuers) = self.issuers.write() {
            issuers.entry(issuer.to_owned()).or_default();
        }
    }

    /// Whether `token` carries a valid signature of `issuer`'s keys and is inside its validity
    /// window.
    pub(crate) async fn verify(
        &self,
        issuer: &str,
        token: &str,
        now: Timestamp,
        leeway: i64,
    ) -> bool {
        let (jwks, fetched_at) = match self.issuers.read() {
            Ok(issuers) => match issuers.get(issuer) {
                Some(known) => (known.jwks.clone(), known.fetched_at),
                None => return false,
            },
            Err(_) => return false,
        };
        if let Some(jwks) = &jwks {
            match podid_jwt::verify(token, jwks, now, leeway) {
                Ok(_) => return true,
                Err(JwtError::UnknownKey(_)) => {}
                Err(_) => return false,
            }
        }
        // No key set yet, or the token names a key the set lacks (the issuer rotated keys).
        if now.as_millis() - fetched_at < REFETCH_AFTER_MS {
            return false;
        }
        match self.fetch(issuer, now).await {
            Some(jwks) => podid_jwt::verify(token, &jwks, now, leeway).is_ok(),
            None => false,
        }
    }

    /// Fetches the key sets of issuers learned but not fetched yet, so that a rotated token is
    /// verified even if EKS Auth and the issuer become unreachable later; and fetches again
    /// the sets older than an hour.
    pub(crate) async fn prefetch(&self, now: Timestamp) {
        let missing: Vec<String> = match self.issuers.read() {
            Ok(issuers) => issuers
                .iter()
                .filter(|(_, i)| {
                    let age = now.as_millis() - i.fetched_at;
                    (i.jwks.is_none() && age >= REFETCH_AFTER_MS) || age >= KEY_SET_MAX_AGE_MS
                })
                .map(|(name, _)| name.clone())
                .collect(),
            Err(_) => return,
        };
        for issuer in missing {
            self.fetch(&issuer, now).await;
        }
    }

    async fn fetch(&self, issuer: &str, now: Timestamp) -> Option<Arc<Jwks>> {
        if let Ok(mut issuers) = self.issuers.write() {
            let known = issuers.entry(issuer.to_owned()).or_default();
            if now.as_millis() - known.fetched_at < REFETCH_AFTER_MS {
                return None;
            }
            known.fetched_at = now.as_millis();
        }
        let discovery = self.upstream.discovery_url(issuer);
        let document = self.upstream.fetch(&discovery).await.ok()?;
        let jwks_uri = serde_json::from_str::<Value>(&document)
            .ok()?
            .get("jwks_uri")?
            .as_str()?
            .to_owned();
        if !fetchable(&jwks_uri) {
            return None;
        }
        let text = self.upstream.fetch(&jwks_uri).await.ok()?;
        let jwks = Arc::new(Jwks::parse(&text).ok()?);
        if let Ok(mut issuers) = self.issuers.write() {
            issuers.entry(issuer.to_owned()).or_default().jwks = Some(jwks.clone());
        }
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(
            issuer,
            keys = jwks.keys.len(),
            "fetched the issuer's key set"
        );
        Some(jwks)
    }
}

/// Whether a key set may be fetched from `url`: over https, or over plain http from this
/// machine only (a local podid server). A key set fetched over the network in the clear could
/// be swapped on the way, and it decides which tokens are served from the cache.
fn fetchable(url: &str) -> bool {
    if url.starts_with("https://") {
        return true;
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::fetchable;

    #[test]
    fn key_sets_come_over_https_or_from_this_machine() {
        assert!(fetchable("https://oidc.eks.us-east-1.amazonaws.com/id/ABC"));
        assert!(fetchable("http://127.0.0.1:4599/id/abc"));
        assert!(fetchable("http://[::1]:4599/id/abc"));
        assert!(fetchable("http://localhost:4599/id/abc"));
        assert!(!fetchable("http://podid.internal:4599/id/abc"));
        assert!(!fetchable("http://10.0.0.5/id/abc"));
        assert!(!fetchable("http://127.0.0.1.evil.example/id/abc"));
        assert!(!fetchable("file:///etc/passwd"));
    }
}
