//! The key sets of OpenID Connect issuers, for verifying their tokens: an issuer of this podid
//! (one whose keys podid holds) is answered from the store and never fetched; any other is
//! fetched through the injected [`Fetcher`] (OpenID discovery, then `jwks_uri`), kept for an
//! hour, and fetched again early for a `kid` it lacks, at most once a minute per issuer.

use std::collections::HashMap;
use std::sync::Mutex;

use podid_jwt::{Jwks, JwtError};
use serde_json::{Map, Value};

use crate::Core;
use crate::error::Error;
use crate::sts::WEB_IDENTITY_LEEWAY_SECONDS;

/// Fetches documents over HTTP(S) for the domain: OpenID discovery documents and key sets of
/// issuers podid does not hold the keys of. The binary supplies one; without it, such issuers
/// cannot be used (EKS's external clusters must then be given their key set inline).
#[async_trait::async_trait]
pub trait Fetcher: Send + Sync {
    /// The body of a `GET url` that answered 200, or why not.
    async fn get(&self, url: &str) -> Result<String, String>;
}

/// How long a fetched key set is used before it is fetched again (ms).
const KEEP_MILLIS: i64 = 3_600_000;

/// The shortest time between two fetches of one issuer's key set for an unknown `kid` (ms).
const REFETCH_MILLIS: i64 = 60_000;

/// The most issuers whose key sets are kept; the cache is cleared when it is full.
const MAX_ISSUERS: usize = 1000;

/// Fetched key sets by issuer.
#[derive(Debug, Default)]
pub(crate) struct KeySets {
    entries: Mutex<HashMap<String, (Jwks, i64)>>,
}

/// AWS's text when an identity provider cannot be reached.
const UNREACHABLE: &str = "Couldn't retrieve verification key from your identity provider, please reference AssumeRoleWithWebIdentity documentation for requirements";

impl Core {
    /// Verifies a web identity `token` of `issuer` (its header's `kid` given): signature against
    /// the issuer's key set (RS256/384/512, ES256), then `exp`, `nbf` and `iat`. Its claims.
    pub(crate) async fn verify_issuer_token(
        &self,
        issuer: &str,
        kid: Option<&str>,
        token: &str,
    ) -> Result<Map<String, Value>, Error> {
        let jwks = match self.local_issuer_jwks(issuer).await? {
            Some(jwks) => jwks,
            None => self.fetched_jwks(issuer, kid).await?,
        };
        let now = self.clock.now();
        podid_jwt::verify(token, &jwks, now, WEB_IDENTITY_LEEWAY_SECONDS).map_err(|e| match e {
            JwtError::Expired(at) => Error::ExpiredIdentityToken(format!(
                "Token expired: current date/time {} must be before the expiration date/time {}",
                now.as_secs(),
                at.as_secs()
            )),
            JwtError::UnknownKey(kid) => Error::InvalidIdentityToken(format!(
                "The web identity token is signed with key `{kid}`, which is not in the key set of {issuer}."
            )),
            other => Error::InvalidIdentityToken(format!(
                "The web identity token was refused: {other}."
            )),
        })
    }

    /// The key set of an issuer podid does not hold, from the cache or fetched.
    async fn fetched_jwks(&self, issuer: &str, kid: Option<&str>) -> Result<Jwks, Error> {
        let now = self.now();
        let cached = self
            .key_sets
            .entries
            .lock()
            .ok()
            .and_then(|entries| entries.get(issuer).cloned());
        if let Some((jwks, fetched)) = &cached {
            let knows_kid =
                kid.is_none_or(|kid| jwks.keys.iter().any(|k| k.kid.as_deref() == Some(kid)));
            let fresh = now - fetched < KEEP_MILLIS;
            if fresh && (knows_kid || now - fetched < REFETCH_MILLIS) {
                return Ok(jwks.clone());
            }
        }
        let jwks = match self.fetch_jwks(issuer).await {
            Ok(jwks) => jwks,
            // A set fetched before still serves while the issuer is unreachable.
            Err(e) => return cached.map(|(jwks, _)| jwks).ok_or(e),
        };
        if let Ok(mut entries) = self.key_sets.entries.lock() {
            if entries.len() >= MAX_ISSUERS {
                entries.clear();
            }
            entries.insert(issuer.to_owned(), (jwks.clone(), now));
        }
        Ok(jwks)
    }

    /// OpenID discovery of `issuer`, then its `jwks_uri`.
    async fn fetch_jwks(&self, issuer: &str) -> Result<Jwks, Error> {
        let fetched = match self.discover_jwks_uri(issuer).await {
            Ok(uri) => self.fetch_key_set(&uri).await,
            Err(e) => Err(e),
        };
        fetched.map(|(_, jwks)| jwks).map_err(|e| {
            tracing::warn!(issuer, error = %e, "an identity provider's key set could not be fetched");
            Error::IdpCommunicationError(UNREACHABLE.into())
        })
    }

    /// The `jwks_uri` of `issuer`'s OpenID discovery document.
    pub(crate) async fn discover_jwks_uri(&self, issuer: &str) -> Result<String, FetchError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let text = self.fetch_document(&url).await?;
        serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("jwks_uri").and_then(Value::as_str).map(str::to_owned))
            .ok_or(FetchError::NoJwksUri { url })
    }

    /// The key set at `url`: its text and what it parses to.
    pub(crate) async fn fetch_key_set(&self, url: &str) -> Result<(String, Jwks), FetchError> {
        let text = self.fetch_document(url).await?;
        match Jwks::parse(&text) {
            Ok(jwks) => Ok((text, jwks)),
            Err(e) => Err(FetchError::NotJwks {
                url: url.to_owned(),
                why: e.to_string(),
            }),
        }
    }

    async fn fetch_document(&self, url: &str) -> Result<String, FetchError> {
        let Some(fetcher) = &self.fetcher else {
            return Err(FetchError::NoFetcher);
        };
        fetcher
            .get(url)
            .await
            .map_err(|why| FetchError::Unreachable {
                url: url.to_owned(),
                why,
            })
    }
}

/// Why an issuer's key set could not be fetched.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    /// The core has no [`Fetcher`].
    #[error("this server does not fetch key sets")]
    NoFetcher,
    /// A fetch failed.
    #[error("cannot fetch {url}: {why}")]
    Unreachable { url: String, why: String },
    /// The discovery document names no key set.
    #[error("the discovery document {url} has no `jwks_uri`")]
    NoJwksUri { url: String },
    /// The key set is not a JWKS.
    #[error("{url} is not a JWKS: {why}")]
    NotJwks { url: String, why: String },
}
