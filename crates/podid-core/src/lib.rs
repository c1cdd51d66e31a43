#![doc = include_str!("../README.md")]

mod auth;
mod bootstrap;
mod catalogue;
mod crypto;
mod eks;
mod error;
mod iam;
mod ids;
mod names;
mod records;
mod sts;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use podid_policy::{ParseOptions, Policy, PolicyErrors};
use podid_store::{Item, Store, StoreError};
use podid_types::Clock;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use auth::{Caller, Identity, RequestInfo, SessionInfo};
pub use bootstrap::{ADMIN_USER, BootstrapKey, Bootstrapped};
pub use catalogue::AwsManagedPolicy;
pub use crypto::{KeyError, MasterKey};
pub use eks::{
    AssociationSummary, ClusterTokens, CreateAssociation, CreateCluster, EksPage, Fetcher,
    ListAssociations, PODS_SERVICE, PodCredentials, PodIdentityDecision, ServiceAccountToken,
    TOKEN_LEEWAY_SECONDS, UpdateAssociation,
};
pub use error::IamError;
pub use iam::{
    AttachedPolicy, CreateOidcProvider, CreatePolicy, CreateRole, CreateUser, Entity,
    EvaluationResult, ListPolicies, MatchedStatement, NewAccessKey, Page, PageRequest, PolicyView,
    SimulateInput, SimulationPolicy,
};
pub use ids::{Ids, OsIds, SeqIds};
pub use records::{
    AccessKeyRecord, AccountRecord, AssociationRecord, ClusterRecord, OidcRecord, PolicyHolder,
    PolicyRecord, PolicyVersionRecord, RoleRecord, SigningKeyRecord, Tag, TokenSource, UserRecord,
};
pub use sts::{
    AssumeRole, AssumedRole, Assumer, CallerIdentity, OpenedSession, SessionCredentials,
};

/// The embedded IAM: every operation, authorized by the policy engine.
pub struct Iam {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn Ids>,
    master: MasterKey,
    cache: PolicyCache,
    keyring: sts::Keyring,
    association_quota: u32,
    fetcher: Option<Arc<dyn eks::Fetcher>>,
    audit: eks::AuditLog,
}

impl std::fmt::Debug for Iam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iam")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Iam {
    /// The IAM of `store`, with the given clock, randomness and master key.
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
            association_quota: eks::DEFAULT_ASSOCIATION_QUOTA,
            fetcher: None,
            audit: eks::AuditLog::default(),
        }
    }

    /// Lets the domain fetch external issuers' discovery documents and key sets.
    #[must_use]
    pub fn with_fetcher(mut self, fetcher: Arc<dyn eks::Fetcher>) -> Self {
        self.fetcher = Some(fetcher);
        self
    }

    /// Sets the most Pod Identity associations a cluster may have (default 1,000).
    #[must_use]
    pub fn with_association_quota(mut self, quota: u32) -> Self {
        self.association_quota = quota;
        self
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
    ) -> Result<Option<(T, u64)>, IamError> {
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

fn decode<T: DeserializeOwned>(item: &Item) -> Result<T, IamError> {
    serde_json::from_str(&item.value).map_err(|e| {
        IamError::from(StoreError::Unusable(format!(
            "record `{}` cannot be read: {e}",
            item.key
        )))
    })
}

fn encode<T: Serialize>(record: &T) -> String {
    // Records are plain data (strings, numbers, maps with string keys): they always serialize.
    serde_json::to_string(record).unwrap_or_default()
}

/// Parsed policies by document, so that the same document is parsed once.
#[derive(Default)]
struct PolicyCache {
    entries: Mutex<HashMap<(ParseOptionsKey, String), Arc<Policy>>>,
}

type ParseOptionsKey = String;

/// The most documents kept; the cache is cleared when it is full.
const CACHE_ENTRIES: usize = 4096;

impl PolicyCache {
    fn parse(&self, text: &str, options: ParseOptions) -> Result<Arc<Policy>, PolicyErrors> {
        let key = (format!("{options:?}"), text.to_owned());
        if let Ok(entries) = self.entries.lock() {
            if let Some(policy) = entries.get(&key) {
                return Ok(policy.clone());
            }
        }
        let policy = Arc::new(Policy::parse_with(text, options)?);
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CACHE_ENTRIES {
                entries.clear();
            }
            entries.insert(key, policy.clone());
        }
        Ok(policy)
    }
}
