#![doc = include_str!("../README.md")]

mod audit;
mod auth;
mod bootstrap;
mod catalogue;
mod console;
mod crypto;
pub mod eks;
mod error;
mod iam;
mod ids;
mod issuers;
mod names;
mod records;
mod rekey;
mod sts;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use podid_policy::{ParseOptions, Policy, PolicyErrors};
use podid_store::{Item, Store, StoreError};
use podid_types::Clock;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use audit::{
    Audit, AuditPage, AuditQuery, AuditRecord, Ending, HIDDEN, MAX_PAGE as MAX_AUDIT_PAGE, Outcome,
    RequestAudit, RequestEvent, UserIdentity, redacted,
};
pub use auth::{Caller, Identity, RequestInfo, SessionInfo};
pub use bootstrap::{ADMIN_USER, BootstrapKey, Bootstrapped};
pub use catalogue::AwsManagedPolicy;
pub use console::{
    ABSOLUTE_MS as CONSOLE_ABSOLUTE_MS, ConsoleSession, IDLE_MS as CONSOLE_IDLE_MS, OpenedConsole,
    csrf_matches,
};
pub use crypto::{KeyError, MasterKey};
pub use error::Error;
pub use iam::{
    AttachedPolicy, CreateOidcProvider, CreatePolicy, CreateRole, CreateUser, Entity,
    EvaluationResult, Iam, ListPolicies, MatchedStatement, NewAccessKey, Page, PageRequest,
    PolicyView, SimulateInput, SimulationPolicy,
};
pub use ids::{Ids, OsIds, SeqIds};
pub use issuers::Fetcher;
pub use records::{
    AccessKeyRecord, AccountRecord, OidcRecord, PolicyHolder, PolicyRecord, PolicyVersionRecord,
    RoleRecord, Tag, UserRecord,
};
pub use sts::{
    AssumeRole, AssumeRoleWithWebIdentity, AssumedRole, Assumer, CallerIdentity, OpenedSession,
    SessionCredentials, Sts, WEB_IDENTITY_LEEWAY_SECONDS, WebIdentity, WebIdentitySession,
};

/// The state every service shares (the store, the clock, the source of ids, the master key, the
/// parsed-policy cache, the session keys, the document fetcher and issuers' key sets, and each
/// service's settings), with one view per
/// service: [`Core::iam`], [`Core::sts`], [`Core::eks`] and [`Core::eks_auth`]. Authentication
/// (access keys and session tokens to a [`Caller`]) and authorization are the core's own, used by
/// every view alike.
pub struct Core {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn Ids>,
    master: MasterKey,
    cache: PolicyCache,
    keyring: sts::Keyring,
    fetcher: Option<Arc<dyn Fetcher>>,
    key_sets: issuers::KeySets,
    eks: eks::State,
    audit_writer: audit::AuditWriter,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Core {
    /// The core over `store`, with the given clock, randomness and master key.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn Ids>,
        master: MasterKey,
    ) -> Self {
        Self {
            store,
            clock,
            ids,
            master,
            cache: PolicyCache::default(),
            keyring: sts::Keyring::default(),
            fetcher: None,
            key_sets: issuers::KeySets::default(),
            eks: eks::State::default(),
            audit_writer: audit::AuditWriter::default(),
        }
    }

    /// Lets the core fetch documents over HTTP(S): OpenID discovery documents and key sets of
    /// issuers whose keys podid does not hold (web identity, EKS's external clusters).
    #[must_use]
    pub fn with_fetcher(mut self, fetcher: Arc<dyn Fetcher>) -> Self {
        self.fetcher = Some(fetcher);
        self
    }

    /// IAM: users and access keys, roles, managed and inline policies, OIDC providers, the
    /// simulator.
    pub fn iam(&self) -> Iam<'_> {
        Iam { core: self }
    }

    /// STS: AssumeRole (the one assume core), GetSessionToken, GetCallerIdentity, session keys.
    pub fn sts(&self) -> Sts<'_> {
        Sts { core: self }
    }

    /// EKS: clusters, their issuers and service-account tokens, Pod Identity associations.
    pub fn eks(&self) -> eks::Eks<'_> {
        eks::Eks { core: self }
    }

    /// EKS Auth: AssumeRoleForPodIdentity.
    pub fn eks_auth(&self) -> eks::EksAuth<'_> {
        eks::EksAuth { core: self }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The source of ids.
    pub fn ids(&self) -> &dyn Ids {
        &*self.ids
    }

    /// The clock.
    pub fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    fn now(&self) -> i64 {
        self.clock.now().as_millis()
    }

    async fn load<T: DeserializeOwned>(
        &self,
        ns: &'static str,
        key: &str,
    ) -> Result<Option<(T, u64)>, Error> {
        match self.store.get(ns, key).await? {
            Some(item) => Ok(Some((decode(&item)?, item.version))),
            None => Ok(None),
        }
    }

    /// A parsed policy, from the cache when the same document of the same kind was parsed before.
    fn parse(&self, text: &str, options: ParseOptions) -> Result<Arc<Policy>, PolicyErrors> {
        self.cache.parse(text, options)
    }
}

fn decode<T: DeserializeOwned>(item: &Item) -> Result<T, Error> {
    serde_json::from_str(&item.value).map_err(|e| {
        Error::from(StoreError::Unusable(format!(
            "record `{}` cannot be read: {e}",
            item.key
        )))
    })
}

fn encode<T: Serialize>(record: &T) -> String {
    // Records are plain data (strings, numbers, maps with string keys): they always serialize.
    serde_json::to_string(record).unwrap_or_default()
}

/// Parsed policies by document, so that the same document is parsed once: by text, then by
/// the options it was parsed with (a lookup copies nothing).
#[derive(Default)]
struct PolicyCache {
    entries: Mutex<HashMap<String, Parsed>>,
}

/// One document's parsings, by the options each was parsed with.
type Parsed = Vec<(ParseOptions, Arc<Policy>)>;

/// The most documents kept; the cache is cleared when it is full.
const CACHE_ENTRIES: usize = 4096;

impl PolicyCache {
    fn parse(&self, text: &str, options: ParseOptions) -> Result<Arc<Policy>, PolicyErrors> {
        let cached = self.entries.lock().ok().and_then(|entries| {
            entries.get(text).and_then(|parsed| {
                parsed
                    .iter()
                    .find(|(o, _)| *o == options)
                    .map(|(_, policy)| policy.clone())
            })
        });
        if let Some(policy) = cached {
            return Ok(policy);
        }
        let policy = Arc::new(Policy::parse_with(text, options)?);
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CACHE_ENTRIES {
                entries.clear();
            }
            entries
                .entry(text.to_owned())
                .or_default()
                .push((options, policy.clone()));
        }
        Ok(policy)
    }
}
