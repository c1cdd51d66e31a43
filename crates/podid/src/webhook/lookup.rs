//! What the webhook asks before it mutates a pod: does its service account have a Pod Identity
//! association (the podid server's EKS API), and what are the service account's annotations
//! (the podid server's service-account API for local clusters; Kubernetes for real ones).
//!
//! Pain point 8 of the reference: a service account, its association and a pod created together
//! (one `kubectl apply`) race. A pod whose service account is new (unknown, or created less
//! than a minute ago) is given up to the grace period for its association and its service
//! account to appear, asked again every 100 ms; a pod of an older service account is answered at
//! once. Associations found are cached for a minute; a miss is always asked live (one call), so
//! that an association created for an existing service account applies to the next pod. Service
//! accounts read from the podid server are remembered for a second (found or not), as an
//! informer's cache lags; a pod waiting for its service account asks past that memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use podid_types::{Clock, SystemClock};

use serde_json::Value;

use crate::aws_client::{ApiFailure, Client};

/// How long a found association is believed without asking again.
const POSITIVE_TTL: Duration = Duration::from_secs(60);
/// How often the look-up is repeated while a new service account's pod waits.
const RETRY_EVERY: Duration = Duration::from_millis(100);
/// A service account younger than this is new: its association may still be on its way.
const NEW_FOR: Duration = Duration::from_secs(60);

/// A service account, as the mutation reads it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Account {
    pub(crate) annotations: BTreeMap<String, String>,
    /// `metadata.creationTimestamp`, in milliseconds since the epoch.
    pub(crate) created: Option<i64>,
}

/// How long a service account read from the podid server is reused (found or not), as an
/// informer's cache lags: an annotation changed takes at most this long to apply.
const ACCOUNT_TTL: Duration = Duration::from_secs(1);
/// The most service accounts remembered; the memory is cleared when it is full.
const ACCOUNT_CAPACITY: usize = 10_000;

/// Service accounts read from the podid server, remembered for [`ACCOUNT_TTL`].
type Remembered = Arc<Mutex<HashMap<(String, String), (Instant, Option<Account>)>>>;

/// Where service accounts are read.
#[derive(Clone)]
pub(crate) enum Accounts {
    /// The podid server's service-account API (local clusters).
    Podid {
        eks: Client,
        cluster: String,
        remembered: Remembered,
    },
    /// The Kubernetes API (real clusters): a watch-backed cache, live on a miss.
    Kubernetes(crate::kubernetes::ServiceAccounts),
}

impl Accounts {
    /// Service accounts of `cluster`, read from the podid server.
    pub(crate) fn podid(eks: Client, cluster: &str) -> Self {
        Self::Podid {
            eks,
            cluster: cluster.to_owned(),
            remembered: Arc::default(),
        }
    }

    /// The service account, or `None` when it does not exist (yet); `fresh` asks past any
    /// memory of it.
    async fn read(
        &self,
        namespace: &str,
        name: &str,
        fresh: bool,
    ) -> Result<Option<Account>, String> {
        match self {
            Self::Kubernetes(kube) => kube.read(namespace, name).await,
            Self::Podid {
                eks,
                cluster,
                remembered,
            } => {
                let key = (namespace.to_owned(), name.to_owned());
                if !fresh
                    && let Ok(memory) = remembered.lock()
                    && let Some((at, account)) = memory.get(&key)
                    && at.elapsed() < ACCOUNT_TTL
                {
                    return Ok(account.clone());
                }
                let path = format!("/clusters/{cluster}/podid/service-accounts/{namespace}/{name}");
                let eks = eks.clone();
                let answer = tokio::task::spawn_blocking(move || eks.json("GET", &path, "", None))
                    .await
                    .map_err(|e| format!("the look-up stopped: {e}"))?;
                let account = match answer {
                    Ok(object) => Some(account_of(&object)),
                    Err(e) => match e.downcast_ref::<ApiFailure>() {
                        Some(failure) if failure.status == 404 => None,
                        _ => return Err(format!("{e:#}")),
                    },
                };
                if let Ok(mut memory) = remembered.lock() {
                    if memory.len() >= ACCOUNT_CAPACITY {
                        memory.clear();
                    }
                    memory.insert(key, (Instant::now(), account.clone()));
                }
                Ok(account)
            }
        }
    }
}

/// A Kubernetes ServiceAccount object's annotations and creation time.
pub(crate) fn account_of(object: &Value) -> Account {
    let annotations = object
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let created = object
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .and_then(podid_policy::parse_date);
    Account {
        annotations,
        created,
    }
}

/// What the look-ups found for one pod.
#[derive(Debug)]
pub(crate) struct Found {
    /// The service account, when it exists.
    pub(crate) account: Option<Account>,
    /// Whether it has a Pod Identity association; `Err` when the server could not say.
    pub(crate) associated: Result<bool, String>,
    /// The service account could not be read (the pod may still get Pod Identity).
    pub(crate) account_error: Option<String>,
}

/// The look-ups, with the association cache.
pub(crate) struct Lookups {
    eks: Client,
    cluster: String,
    accounts: Accounts,
    grace: Duration,
    clock: Arc<dyn Clock>,
    found: Mutex<HashMap<(String, String), Instant>>,
}

impl Lookups {
    pub(crate) fn new(
        eks: Client,
        cluster: &str,
        accounts: Accounts,
        grace: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            eks,
            cluster: cluster.to_owned(),
            accounts,
            grace,
            clock: Arc::new(SystemClock),
            found: Mutex::new(HashMap::new()),
        })
    }

    /// What the mutation of a pod of `namespace`/`name` needs to know.
    pub(crate) async fn find(&self, namespace: &str, name: &str) -> Found {
        let deadline = Instant::now() + self.grace;
        let mut found = Found {
            account: None,
            associated: Ok(false),
            account_error: None,
        };
        let mut fresh = false;
        loop {
            if found.account.is_none() {
                // Asked again while waiting: past the memory of its absence.
                match self.accounts.read(namespace, name, fresh).await {
                    Ok(account) => {
                        found.account = account;
                        found.account_error = None;
                    }
                    Err(e) => found.account_error = Some(e),
                }
            }
            found.associated = self.associated(namespace, name).await;
            let new = match &found.account {
                None => found.account_error.is_none(),
                Some(account) => account.created.is_none_or(|created| {
                    let age = self.clock.now().as_millis().saturating_sub(created);
                    u128::try_from(age).unwrap_or(0) < NEW_FOR.max(self.grace).as_millis()
                }),
            };
            let settled = matches!(found.associated, Ok(true)) || !new;
            if settled || Instant::now() + RETRY_EVERY > deadline {
                return found;
            }
            tokio::time::sleep(RETRY_EVERY).await;
            fresh = true;
        }
    }

    /// Whether the service account has an association: the cache, else the server.
    async fn associated(&self, namespace: &str, name: &str) -> Result<bool, String> {
        let key = (namespace.to_owned(), name.to_owned());
        if let Ok(mut found) = self.found.lock() {
            match found.get(&key) {
                Some(at) if at.elapsed() < POSITIVE_TTL => return Ok(true),
                Some(_) => {
                    found.remove(&key);
                }
                None => {}
            }
        }
        let eks = self.eks.clone();
        let path = format!("/clusters/{}/pod-identity-associations", self.cluster);
        let query = format!(
            "namespace={}&serviceAccount={}",
            podid_sigv4::uri_encoded(namespace),
            podid_sigv4::uri_encoded(name)
        );
        let answer = tokio::task::spawn_blocking(move || eks.json("GET", &path, &query, None))
            .await
            .map_err(|e| format!("the look-up stopped: {e}"))?
            .map_err(|e| format!("{e:#}"))?;
        let associated = answer
            .get("associations")
            .and_then(Value::as_array)
            .is_some_and(|list| !list.is_empty());
        if associated && let Ok(mut found) = self.found.lock() {
            found.insert(key, Instant::now());
        }
        Ok(associated)
    }
}
