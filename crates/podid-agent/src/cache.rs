//! The agent: a cache of pods' credentials in front of EKS Auth.
//!
//! Entries are keyed by pod (the `kubernetes.io.pod.uid` claim; the token's hash when a token
//! names no pod). A request is served from an entry only when its token is the one EKS Auth
//! accepted for that entry, or a newer token of the same pod whose signature verifies against
//! the cluster issuer's key set. Nothing else (an unverified claim, a forged token) reaches an
//! entry or removes one.

use std::collections::HashMap;
use std::hash::BuildHasher as _;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use axum::body::Bytes;
use std::time::Duration;

use podid_types::{Clock, Secret, Timestamp, constant_time_eq};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;

mod persist;

use crate::keys::Keys;
use crate::metrics::Metrics;
use crate::upstream::{Upstream, UpstreamCredentials, UpstreamError};
use crate::{AgentConfig, MIN_REMAINING};

/// Clock skew allowed on a token's `exp`, `nbf` and `iat`, as EKS Auth allows.
const TOKEN_LEEWAY_SECONDS: i64 = 60;

/// The audience of Pod Identity tokens.
const POD_IDENTITY_AUDIENCE: &str = "pods.eks.amazonaws.com";

/// A source of randomness for jitter: returns a number in `[0, bound)`.
pub type Random = Arc<dyn Fn(u64) -> u64 + Send + Sync>;

/// The credentials handed to a pod, as the container credentials provider reads them.
#[derive(Clone)]
pub struct ContainerCredentials {
    /// `AccessKeyId`.
    pub access_key_id: String,
    /// `SecretAccessKey`.
    pub secret_access_key: Secret<String>,
    /// `Token`.
    pub token: Secret<String>,
    /// `AccountId`: the assumed role's account.
    pub account_id: String,
    /// `Expiration`.
    pub expiration: Timestamp,
}

impl std::fmt::Debug for ContainerCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("account_id", &self.account_id)
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

impl ContainerCredentials {
    /// The response body: `AccessKeyId`, `SecretAccessKey`, `Token`, `AccountId`, `Expiration`
    /// (RFC 3339, UTC).
    pub fn to_json(&self) -> String {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Body<'a> {
            access_key_id: &'a str,
            secret_access_key: &'a str,
            token: &'a str,
            account_id: &'a str,
            expiration: String,
        }
        serde_json::to_string(&Body {
            access_key_id: &self.access_key_id,
            secret_access_key: self.secret_access_key.expose(),
            token: self.token.expose(),
            account_id: &self.account_id,
            expiration: self.expiration.to_iso8601(),
        })
        .unwrap_or_default()
    }
}

/// Why a request got no credentials.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// The token is empty, not a JWT, or outside its validity window (400).
    #[error("{0}")]
    BadToken(String),
    /// EKS Auth refused or could not be reached.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

/// How long a read of the change feed waits for a change (the server's long poll).
const FEED_WAIT_SECONDS: u64 = 5;

/// The first and the longest pause before reading the change feed again after a failure.
const FEED_RETRY_MIN: Duration = Duration::from_millis(200);
const FEED_RETRY_MAX: Duration = Duration::from_secs(2);

/// The pause before asking a feed that refused this agent again (its policy may change).
const FEED_REFUSED_RETRY: Duration = Duration::from_secs(60);

/// How often a moving feed cursor is written to the state file at most (a restarted agent
/// resumes from the cursor written, so the changes made while it was down reach it).
const FEED_CURSOR_SAVE_MS: i64 = 60_000;

/// How many times a miss asks again when a change forgot credentials during its call.
const STALE_ANSWER_RETRIES: usize = 2;

/// One pod's credentials and the token they were issued for.
struct Entry {
    credentials: UpstreamCredentials,
    /// The newest token accepted for this pod (by EKS Auth, or verified locally); renewals
    /// present it.
    token: Secret<String>,
    token_hash: [u8; 32],
    issuer: String,
    subject: String,
    /// When the credentials were fetched (ms).
    fetched_at: i64,
    /// When they are renewed (ms); moved forward after a renewal failed.
    refresh_at: AtomicI64,
    /// When a pod last asked (ms).
    last_used: AtomicI64,
    /// Whether a renewal is running.
    refreshing: AtomicBool,
    /// The response body, rendered on the first hit.
    body: OnceLock<Bytes>,
}

impl Entry {
    fn expiration_ms(&self) -> i64 {
        self.credentials.expiration.saturating_mul(1000)
    }

    /// Whether the credentials may still be served at `now`.
    fn servable(&self, now: i64) -> bool {
        self.expiration_ms() - now > min_remaining_ms()
    }

    fn container_credentials(&self) -> ContainerCredentials {
        let c = &self.credentials;
        ContainerCredentials {
            access_key_id: c.access_key_id.clone(),
            secret_access_key: c.secret_access_key.clone(),
            token: c.session_token.clone(),
            account_id: c
                .assumed_role_arn
                .split(':')
                .nth(4)
                .unwrap_or_default()
                .to_owned(),
            expiration: Timestamp::from_secs(c.expiration),
        }
    }

    /// The response body, rendered on the first hit and shared by the next ones.
    fn body(&self) -> Bytes {
        self.body
            .get_or_init(|| Bytes::from(self.container_credentials().to_json()))
            .clone()
    }
}

impl Entry {
    /// The entry with a newer token of the same pod.
    fn with_token(&self, token: &str, hash: [u8; 32]) -> Self {
        Self {
            credentials: self.credentials.clone(),
            token: Secret::new(token.to_owned()),
            token_hash: hash,
            issuer: self.issuer.clone(),
            subject: self.subject.clone(),
            fetched_at: self.fetched_at,
            refresh_at: AtomicI64::new(self.refresh_at.load(Ordering::Relaxed)),
            last_used: AtomicI64::new(self.last_used.load(Ordering::Relaxed)),
            refreshing: AtomicBool::new(self.refreshing.load(Ordering::Relaxed)),
            body: self.body.clone(),
        }
    }

    /// The entry with renewed credentials.
    fn renewed(&self, credentials: UpstreamCredentials, now: i64, refresh_at: i64) -> Self {
        Self {
            credentials,
            token: self.token.clone(),
            token_hash: self.token_hash,
            issuer: self.issuer.clone(),
            subject: self.subject.clone(),
            fetched_at: now,
            refresh_at: AtomicI64::new(refresh_at),
            last_used: AtomicI64::new(self.last_used.load(Ordering::Relaxed)),
            refreshing: AtomicBool::new(false),
            body: OnceLock::new(),
        }
    }
}

fn min_remaining_ms() -> i64 {
    i64::try_from(MIN_REMAINING.as_millis()).unwrap_or(i64::MAX)
}

/// A miss in flight: its answer, once the upstream call ends.
type Flight = watch::Receiver<Option<Result<Arc<Entry>, UpstreamError>>>;

/// The agent's state: the cache, the misses in flight, the issuers' key sets, the renewal
/// budget and the metrics.
pub struct Agent {
    config: AgentConfig,
    upstream: Arc<dyn Upstream>,
    clock: Arc<dyn Clock>,
    random: Random,
    metrics: Metrics,
    entries: RwLock<HashMap<String, Arc<Entry>>>,
    /// Tokens read before, by a keyed hash of their text: their claims, cache key and SHA-256.
    /// What a token says never changes, so a pod asking again with the same token skips
    /// decoding and hashing it (its times are still checked on every request). A hit is
    /// confirmed by comparing the whole token, in constant time.
    read_tokens: RwLock<ReadTokens>,
    /// The keyed hash of [`Agent::read_tokens`], seeded at random when the agent starts.
    token_slots: foldhash::quality::RandomState,
    in_flight: Mutex<HashMap<(String, [u8; 32]), Flight>>,
    keys: Keys,
    bucket: Mutex<Bucket>,
    /// Bumped whenever an entry is added, renewed, given a newer token or removed (for the
    /// state file).
    generation: std::sync::atomic::AtomicU64,
    /// Bumped whenever the change feed forgets credentials: an upstream answer obtained across
    /// a bump may predate the change, and is asked for again instead of being cached.
    forgets: std::sync::atomic::AtomicU64,
    /// Where the change feed carries on, and when it was last written to the state file.
    feed_cursor: Mutex<FeedCursor>,
}

/// The change feed's cursor, kept in the state file.
#[derive(Default)]
struct FeedCursor {
    cursor: Option<String>,
    saved_at: i64,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("cluster", &self.config.cluster_name)
            .field("cached_pods", &self.cached_pods())
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// The agent for `config`, asking `upstream`, with `clock` and `random` (jitter) injected.
    pub fn new(
        config: AgentConfig,
        upstream: Arc<dyn Upstream>,
        clock: Arc<dyn Clock>,
        random: Random,
    ) -> Self {
        let qps = f64::from(config.max_service_qps.max(1));
        let now = clock.now().as_millis();
        Self {
            keys: Keys::new(upstream.clone()),
            config,
            upstream,
            clock,
            random,
            metrics: Metrics::default(),
            entries: RwLock::new(HashMap::new()),
            read_tokens: RwLock::new(ReadTokens::default()),
            token_slots: foldhash::quality::RandomState::default(),
            in_flight: Mutex::new(HashMap::new()),
            bucket: Mutex::new(Bucket {
                tokens: qps,
                capacity: qps,
                per_ms: qps / 1000.0,
                at: now,
            }),
            generation: std::sync::atomic::AtomicU64::new(0),
            forgets: std::sync::atomic::AtomicU64::new(0),
            feed_cursor: Mutex::new(FeedCursor::default()),
        }
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The configuration.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// How many pods have credentials cached.
    pub fn cached_pods(&self) -> usize {
        self.entries.read().map_or(0, |e| e.len())
    }

    /// The Prometheus text of the metrics, with the gauges of the cache and key sets.
    pub fn render_metrics(&self) -> String {
        self.metrics.render(self.cached_pods(), self.keys.held())
    }

    /// The credentials for the pod whose service-account token is `token`.
    pub async fn credentials(
        self: &Arc<Self>,
        token: &str,
    ) -> Result<ContainerCredentials, AgentError> {
        Ok(self.serve(token).await?.container_credentials())
    }

    /// What [`Agent::credentials`] answers, as the body of `GET /v1/credentials`: rendered once
    /// per entry, so that a cache hit copies nothing.
    pub async fn credentials_body(self: &Arc<Self>, token: &str) -> Result<Bytes, AgentError> {
        Ok(self.serve(token).await?.body())
    }

    async fn serve(self: &Arc<Self>, token: &str) -> Result<Arc<Entry>, AgentError> {
        let now = self.clock.now();
        let read = self.read_token(token)?;
        check_times(&read.claims, now)?;
        let (claims, key, hash) = (&read.claims, &read.key, read.hash);
        if let Some(entry) = self.entry(key)
            && entry.servable(now.as_millis())
        {
            if entry.token_hash == hash {
                return Ok(self.hit(&entry, now));
            }
            if self.rotated(&entry, token, claims, now).await {
                let renewed = self.replace_token(key, &entry, token, hash);
                return Ok(self.hit(&renewed, now));
            }
        }
        self.metrics.cache_state("miss");
        self.fetch(key, token, hash, claims).await
    }

    /// Forgets the pod whose uid is `uid` (it was deleted, or has finished): its credentials
    /// are no longer served or renewed. Whether it was cached.
    pub fn forget_pod(&self, uid: &str) -> bool {
        let forgotten = self.remove_if(&format!("pod:{uid}"), |_| true);
        if forgotten {
            self.metrics.cache_state("evicted");
        }
        forgotten
    }

    /// Forgets the credentials of every pod of the service account `namespace/name` (its
    /// association, or a policy of its role, changed): the pod's next request fetches new ones.
    /// How many were forgotten.
    pub fn forget_service_account(&self, namespace: &str, name: &str) -> usize {
        let subject = format!("system:serviceaccount:{namespace}:{name}");
        self.forget_where(|entry| entry.subject == subject)
    }

    /// Forgets every pod's credentials (the change feed may have missed changes).
    pub fn forget_all(&self) -> usize {
        self.forget_where(|_| true)
    }

    fn forget_where(&self, condition: impl Fn(&Entry) -> bool) -> usize {
        let Ok(mut entries) = self.entries.write() else {
            return 0;
        };
        let before = entries.len();
        entries.retain(|_, entry| !condition(entry));
        // Under the lock: a miss that stores its answer after this sees the bump.
        self.forgets.fetch_add(1, Ordering::AcqRel);
        let forgotten = before - entries.len();
        drop(entries);
        if forgotten > 0 {
            self.changed();
            for _ in 0..forgotten {
                self.metrics.cache_state("evicted");
            }
        }
        forgotten
    }

    /// Follows the upstream's change feed until the task is dropped: each change of a service
    /// account's association or role drops its pods' cached credentials at once, so that the
    /// SDK's next refresh gets the new role. The feed is a long poll that resumes from its
    /// cursor after a disconnect, a server restart or an agent restart (the cursor is in the
    /// state file). An upstream without a feed (AWS's EKS Auth) ends the task, and credentials
    /// then follow changes when they are renewed; a feed that refuses this agent is asked
    /// again every minute; a cursor the feed no longer takes is dropped with every credential.
    pub async fn follow_changes(self: Arc<Self>) {
        let mut backoff = FEED_RETRY_MIN;
        let mut refused = false;
        loop {
            let cursor = self.feed_cursor();
            let read = self
                .upstream
                .changes(
                    &self.config.cluster_name,
                    cursor.as_deref(),
                    FEED_WAIT_SECONDS,
                )
                .await;
            match read {
                Ok(None) => {
                    tracing::info!(
                        "the upstream has no change feed: cached credentials follow changes when they are renewed"
                    );
                    return;
                }
                Ok(Some(page)) => {
                    backoff = FEED_RETRY_MIN;
                    if refused {
                        refused = false;
                        tracing::info!("the change feed takes this agent again");
                    }
                    if page.reset {
                        let forgotten = self.forget_all();
                        tracing::warn!(
                            forgotten,
                            "the change feed may have missed changes (out of reach for longer than it keeps them, or too many to list): every cached credential is dropped"
                        );
                    }
                    for (namespace, name) in &page.service_accounts {
                        let forgotten = self.forget_service_account(namespace, name);
                        tracing::info!(
                            namespace = %namespace,
                            service_account = %name,
                            forgotten,
                            "changed upstream: the pods' cached credentials are dropped"
                        );
                    }
                    self.set_feed_cursor(Some(page.cursor));
                }
                Err(UpstreamError::Refused {
                    status: 400,
                    ref code,
                    ref message,
                    ..
                }) if cursor.is_some() && code == "InvalidParameterException" => {
                    // A cursor of another server version, or of a restored state: start
                    // afresh, and drop what may have changed meanwhile.
                    let forgotten = self.forget_all();
                    tracing::warn!(
                        forgotten,
                        reason = %message,
                        "the change feed no longer takes this agent's cursor: it starts afresh and every cached credential is dropped"
                    );
                    self.set_feed_cursor(None);
                }
                Err(e @ UpstreamError::Refused { .. }) if !e.is_throttled() => {
                    if refused {
                        tracing::debug!(error = %e, "the change feed still refuses this agent");
                    } else {
                        refused = true;
                        tracing::warn!(
                            error = %e,
                            retry_s = FEED_REFUSED_RETRY.as_secs(),
                            "the change feed refused this agent (it needs `podid:ListChanges` on the cluster): cached credentials follow changes when they are renewed until it is allowed"
                        );
                    }
                    tokio::time::sleep(FEED_REFUSED_RETRY).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX), "the change feed is out of reach");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(FEED_RETRY_MAX);
                }
            }
        }
    }

    /// Takes the change feed's cursor of an earlier run, unless the feed has one already.
    fn restore_feed_cursor(&self, cursor: Option<String>) {
        if let Ok(mut feed) = self.feed_cursor.lock()
            && feed.cursor.is_none()
        {
            feed.cursor = cursor;
        }
    }

    /// Where the change feed carries on (none: from now).
    fn feed_cursor(&self) -> Option<String> {
        self.feed_cursor.lock().ok().and_then(|c| c.cursor.clone())
    }

    /// Moves the change feed's cursor; the state file is written with it at most every
    /// [`FEED_CURSOR_SAVE_MS`] (the cursor moves on every read).
    fn set_feed_cursor(&self, cursor: Option<String>) {
        let now = self.clock.now().as_millis();
        let Ok(mut feed) = self.feed_cursor.lock() else {
            return;
        };
        let due = cursor.is_none() != feed.cursor.is_none()
            || now.saturating_sub(feed.saved_at) >= FEED_CURSOR_SAVE_MS;
        feed.cursor = cursor;
        if due {
            feed.saved_at = now;
            self.changed();
        }
    }

    /// Renews the entries due, within the QPS budget, and drops the ones about to expire. The
    /// caller runs it about once a second ([`Agent::run`]).
    pub async fn maintain(self: &Arc<Self>) {
        let now = self.clock.now().as_millis();
        let mut due: Vec<(String, Arc<Entry>)> = Vec::new();
        let mut expired = Vec::new();
        if let Ok(entries) = self.entries.read() {
            for (key, entry) in entries.iter() {
                if !entry.servable(now) {
                    expired.push(key.clone());
                } else if entry.refresh_at.load(Ordering::Relaxed) <= now
                    && self.worth_renewing(entry, now)
                    // Claimed under the lock, so a token replacing the entry meanwhile
                    // (which takes the write lock) copies the claim.
                    && entry
                        .refreshing
                        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                {
                    due.push((key.clone(), entry.clone()));
                }
            }
        }
        for key in expired {
            self.remove_if(&key, |e| !e.servable(now));
        }
        let agent = self.clone();
        tokio::spawn(async move { agent.keys.prefetch(Timestamp::from_millis(now)).await });
        due.sort_by_key(|(_, e)| e.refresh_at.load(Ordering::Relaxed));
        for (key, entry) in due {
            if !self.take_budget(now) {
                // Over budget: release the claim; the next tick tries again.
                if let Ok(entries) = self.entries.read()
                    && let Some(current) = entries.get(&key)
                {
                    current.refreshing.store(false, Ordering::Relaxed);
                }
                continue;
            }
            let agent = self.clone();
            tokio::spawn(async move { agent.renew(key, entry).await });
        }
    }

    /// Runs [`Agent::maintain`] every second until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            self.maintain().await;
        }
    }

    /// The token's claims, cache key and hash, read now or found from before.
    fn read_token(&self, token: &str) -> Result<Arc<ReadToken>, AgentError> {
        let slot = self.token_slots.hash_one(token);
        if let Some(read) = self
            .read_tokens
            .read()
            .ok()
            .and_then(|r| r.slots.get(&slot).cloned())
            && constant_time_eq(read.token.expose().as_bytes(), token.as_bytes())
        {
            return Ok(read);
        }
        let claims = decode_token(token)?;
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let read = Arc::new(ReadToken {
            token: Secret::new(token.to_owned()),
            hash,
            key: pod_key(&claims, &hash),
            claims,
        });
        if let Ok(mut tokens) = self.read_tokens.write() {
            // The text and its claims: about twice the token's length.
            let size = token.len().saturating_mul(2);
            if tokens.slots.len() >= READ_TOKENS
                || tokens.bytes.saturating_add(size) > READ_TOKEN_BYTES
            {
                *tokens = ReadTokens::default();
            }
            // Another token in the same slot (a collision of the keyed hash) gives way.
            tokens.slots.insert(slot, read.clone());
            tokens.bytes = tokens.bytes.saturating_add(size);
        }
        Ok(read)
    }

    fn entry(&self, key: &str) -> Option<Arc<Entry>> {
        self.entries.read().ok()?.get(key).cloned()
    }

    fn hit(&self, entry: &Arc<Entry>, now: Timestamp) -> Arc<Entry> {
        self.metrics.cache_state("hit");
        entry.last_used.store(now.as_millis(), Ordering::Relaxed);
        entry.clone()
    }

    /// Whether `token`, which differs from the entry's, is a newer token of the same pod: same
    /// issuer and subject, the Pod Identity audience, and a signature of the issuer's keys.
    async fn rotated(
        &self,
        entry: &Entry,
        token: &str,
        claims: &Map<String, Value>,
        now: Timestamp,
    ) -> bool {
        let text = |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or_default();
        if text("iss") != entry.issuer || text("sub") != entry.subject || !has_audience(claims) {
            return false;
        }
        self.keys
            .verify(&entry.issuer, token, now, TOKEN_LEEWAY_SECONDS)
            .await
    }

    /// Puts `token` in place of the entry's token (renewals present the newest one). The copy is
    /// made under the write lock, so a renewal claimed meanwhile stays claimed.
    fn replace_token(
        &self,
        key: &str,
        entry: &Arc<Entry>,
        token: &str,
        hash: [u8; 32],
    ) -> Arc<Entry> {
        let Ok(mut entries) = self.entries.write() else {
            return entry.clone();
        };
        match entries.get(key) {
            Some(current) if Arc::ptr_eq(current, entry) => {
                let renewed = Arc::new(current.with_token(token, hash));
                entries.insert(key.to_owned(), renewed.clone());
                self.changed();
                renewed
            }
            // Renewed or replaced meanwhile: serve what is there now.
            Some(current) => current.clone(),
            None => entry.clone(),
        }
    }

    /// A miss: one upstream call per pod and token, however many requests wait for it.
    async fn fetch(
        self: &Arc<Self>,
        key: &str,
        token: &str,
        hash: [u8; 32],
        claims: &Map<String, Value>,
    ) -> Result<Arc<Entry>, AgentError> {
        let flight_key = (key.to_owned(), hash);
        let mut flight = {
            let Ok(mut map) = self.in_flight.lock() else {
                return Err(AgentError::Upstream(UpstreamError::Unavailable(
                    "the agent's state is broken: restart it".into(),
                )));
            };
            match map.get(&flight_key) {
                Some(flight) => flight.clone(),
                None => {
                    // The flight that just ended stored its answer before leaving the map.
                    if let Some(entry) = self.entry(key)
                        && entry.token_hash == hash
                        && entry.servable(self.clock.now().as_millis())
                    {
                        return Ok(entry);
                    }
                    let (sender, flight) = watch::channel(None);
                    map.insert(flight_key.clone(), flight.clone());
                    // The call runs in its own task: a pod that hangs up does not cancel it,
                    // the others waiting still get its answer, and the map entry always goes.
                    let agent = self.clone();
                    let (key, token, claims) = (key.to_owned(), token.to_owned(), claims.clone());
                    tokio::spawn(async move {
                        let mut forgets = agent.forgets.load(Ordering::Acquire);
                        let mut result = agent.call_upstream(&token).await;
                        // The change feed forgot credentials while the call ran: its answer
                        // may be of the old role, so it is asked for again.
                        for _ in 0..STALE_ANSWER_RETRIES {
                            let now_forgets = agent.forgets.load(Ordering::Acquire);
                            if result.is_err() || now_forgets == forgets {
                                break;
                            }
                            forgets = now_forgets;
                            result = agent.call_upstream(&token).await;
                        }
                        let outcome = match result {
                            Ok(credentials) => {
                                Ok(agent.store(&key, &token, hash, &claims, &credentials, forgets))
                            }
                            Err(e) => {
                                agent.upstream_failed(&key, &hash, &e);
                                Err(e)
                            }
                        };
                        if let Ok(mut map) = agent.in_flight.lock() {
                            map.remove(&flight_key);
                        }
                        let _ = sender.send(Some(outcome));
                    });
                    flight
                }
            }
        };
        let answer = match flight.wait_for(Option::is_some).await {
            Ok(answer) => answer.clone(),
            Err(_) => None,
        };
        answer
            .unwrap_or_else(|| {
                Err(UpstreamError::Unavailable(
                    "the EKS Auth call stopped".into(),
                ))
            })
            .map_err(AgentError::Upstream)
    }

    async fn call_upstream(&self, token: &str) -> Result<UpstreamCredentials, UpstreamError> {
        let result = self.upstream.assume(&self.config.cluster_name, token).await;
        self.metrics
            .upstream_call(if result.is_ok() { "success" } else { "error" });
        result
    }

    /// Caches fresh credentials for the pod (unless caching is off, or the change feed forgot
    /// credentials since `forgets` was read, before the call that got them) and learns the
    /// issuer whose token EKS Auth just accepted.
    fn store(
        &self,
        key: &str,
        token: &str,
        hash: [u8; 32],
        claims: &Map<String, Value>,
        credentials: &UpstreamCredentials,
        forgets: u64,
    ) -> Arc<Entry> {
        let now = self.clock.now().as_millis();
        let text = |name: &str| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let entry = Arc::new(Entry {
            credentials: credentials.clone(),
            token: Secret::new(token.to_owned()),
            token_hash: hash,
            issuer: text("iss"),
            subject: text("sub"),
            fetched_at: now,
            refresh_at: AtomicI64::new(self.refresh_time(now, credentials.expiration)),
            last_used: AtomicI64::new(now),
            refreshing: AtomicBool::new(false),
            body: OnceLock::new(),
        });
        if self.config.max_retention.is_zero() || self.config.max_cache_size == 0 {
            return entry;
        }
        self.keys.learn(&entry.issuer);
        self.insert(key, entry.clone(), forgets);
        entry
    }

    /// Inserts or replaces an entry, unless the change feed forgot credentials since `forgets`
    /// was read; a new pod in a full cache evicts the least recently used.
    fn insert(&self, key: &str, entry: Arc<Entry>, forgets: u64) {
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if self.forgets.load(Ordering::Acquire) != forgets {
            return;
        }
        if !entries.contains_key(key) && entries.len() >= self.config.max_cache_size {
            let oldest = entries
                .iter()
                .min_by_key(|(_, e)| e.last_used.load(Ordering::Relaxed))
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                entries.remove(&oldest);
                self.metrics.cache_state("evicted");
            }
        }
        entries.insert(key.to_owned(), entry);
        self.changed();
    }

    /// Notes a change of the entries.
    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failure; a refusal that can never turn into credentials evicts the pod's entry,
    /// but only when it refused the very token the entry holds (a forged token of a cached pod
    /// must not evict it).
    fn upstream_failed(&self, key: &str, hash: &[u8; 32], error: &UpstreamError) {
        match error {
            UpstreamError::Refused { code, .. } if error.is_permanent() => {
                self.metrics.cache_error("NonRecoverable", code);
                if self.remove_if(key, |e| e.token_hash == *hash) {
                    self.metrics.cache_state("evicted");
                }
            }
            UpstreamError::Refused { code, .. } => self.metrics.cache_error("Recoverable", code),
            UpstreamError::Unavailable(_) => {
                self.metrics.cache_error("Recoverable", "Unavailable");
            }
        }
    }

    fn remove_if(&self, key: &str, condition: impl Fn(&Entry) -> bool) -> bool {
        let Ok(mut entries) = self.entries.write() else {
            return false;
        };
        if entries.get(key).is_some_and(|e| condition(e)) {
            entries.remove(key);
            self.changed();
            return true;
        }
        false
    }

    /// Renewal time for credentials fetched at `now` (ms) that expire at `expiration` (s): half
    /// their lifetime, at most `max_retention`, less up to a tenth of that as jitter so that
    /// pods started together do not renew together.
    fn refresh_time(&self, now: i64, expiration: i64) -> i64 {
        let lifetime = expiration.saturating_mul(1000).saturating_sub(now).max(0);
        let retention = i64::try_from(self.config.max_retention.as_millis()).unwrap_or(i64::MAX);
        let after = (lifetime / 2).min(retention);
        let jitter = (self.random)(u64::try_from(after / 10).unwrap_or(0).max(1));
        now + after - i64::try_from(jitter).unwrap_or(0)
    }

    /// Only pods that asked within the credentials' lifetime, and whose newest token has not
    /// expired, are renewed ahead: a pod that has gone stops costing upstream calls.
    fn worth_renewing(&self, entry: &Entry, now: i64) -> bool {
        let lifetime = entry.expiration_ms() - entry.fetched_at;
        let recently_used = now - entry.last_used.load(Ordering::Relaxed) <= lifetime;
        let token_alive = podid_jwt::decode_unverified(entry.token.expose())
            .ok()
            .and_then(|t| podid_jwt::expiry(&t.claims))
            .is_some_and(|exp| exp.as_millis() > now);
        recently_used && token_alive
    }

    async fn renew(&self, key: String, entry: Arc<Entry>) {
        let forgets = self.forgets.load(Ordering::Acquire);
        let result = self.call_upstream(entry.token.expose()).await;
        let now = self.clock.now().as_millis();
        match result {
            Ok(credentials) => {
                let refresh_at = self.refresh_time(now, credentials.expiration);
                if let Ok(mut entries) = self.entries.write() {
                    if self.forgets.load(Ordering::Acquire) != forgets {
                        // The change feed forgot credentials during the call: the answer may
                        // be of the old role. What is cached now (fetched after the change,
                        // or nothing) stays, and is renewed at the next tick.
                        if let Some(current) = entries.get(&key) {
                            current.refreshing.store(false, Ordering::Relaxed);
                        }
                        return;
                    }
                    // A newer token may have replaced the entry meanwhile: keep its token.
                    if let Some(current) = entries.get(&key) {
                        let renewed = Arc::new(current.renewed(credentials, now, refresh_at));
                        entries.insert(key, renewed);
                        self.changed();
                    }
                }
            }
            Err(error) => {
                self.upstream_failed(&key, &entry.token_hash, &error);
                // Keep serving what is cached; try again in one to two minutes, or before
                // the credentials run out.
                let retry = 60_000 + i64::try_from((self.random)(60_000)).unwrap_or(0);
                let left = entry.expiration_ms() - min_remaining_ms() - now;
                let next = now + retry.min((left / 2).max(1000));
                if let Ok(entries) = self.entries.read()
                    && let Some(current) = entries.get(&key)
                {
                    current.refresh_at.store(next, Ordering::Relaxed);
                    current.refreshing.store(false, Ordering::Relaxed);
                }
            }
        }
    }

    fn take_budget(&self, now: i64) -> bool {
        let Ok(mut bucket) = self.bucket.lock() else {
            return false;
        };
        bucket.refill(now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return true;
        }
        false
    }
}

/// Renewals' budget: `max_service_qps` a second, bursting to as many.
struct Bucket {
    tokens: f64,
    capacity: f64,
    per_ms: f64,
    at: i64,
}

impl Bucket {
    fn refill(&mut self, now: i64) {
        #[expect(clippy::cast_precision_loss, reason = "milliseconds between renewals")]
        let elapsed = (now - self.at).max(0) as f64;
        self.tokens = (self.tokens + elapsed * self.per_ms).min(self.capacity);
        self.at = now;
    }
}

/// The checks made before anything else, as the reference agent makes them: the token is a
/// JWT and is inside its validity window.
fn decode_token(token: &str) -> Result<Map<String, Value>, AgentError> {
    if token.trim().is_empty() {
        return Err(AgentError::BadToken(
            "the service account token is empty: send it in the `Authorization` header".into(),
        ));
    }
    let parsed = podid_jwt::decode_unverified(token).map_err(|_| {
        AgentError::BadToken(
            "the service account token cannot be parsed: send the raw projected token (no `Bearer `)"
                .into(),
        )
    })?;
    Ok(parsed.claims)
}

/// A token read: its text, SHA-256, claims and entry's key.
struct ReadToken {
    token: Secret<String>,
    hash: [u8; 32],
    claims: Map<String, Value>,
    key: String,
}

/// The tokens read before, by slot (a keyed hash of the text), and about how much memory they
/// hold.
#[derive(Default)]
struct ReadTokens {
    slots: HashMap<u64, Arc<ReadToken>>,
    bytes: usize,
}

/// Tokens whose claims are kept, and about how many bytes they may take (tokens are read
/// before they are verified, up to 20,000 characters each); past either the agent starts
/// again empty. A node runs at most a few hundred pods, each with one token of about a
/// kilobyte at a time, two while it rotates.
const READ_TOKENS: usize = 4096;
const READ_TOKEN_BYTES: usize = 16 << 20;

/// The token's `exp`, `nbf` and `iat` against `now`.
fn check_times(claims: &Map<String, Value>, now: Timestamp) -> Result<(), AgentError> {
    podid_jwt::check_times(claims, now, TOKEN_LEEWAY_SECONDS)
        .map(drop)
        .map_err(|e| {
            AgentError::BadToken(match e {
                podid_jwt::JwtError::Expired(at) => {
                    format!("the service account token expired at {}", at.to_iso8601())
                }
                other => format!("the service account token is not valid: {other}"),
            })
        })
}

/// The cache key: the pod's uid, or the token's hash when the token names no pod.
fn pod_key(claims: &Map<String, Value>, hash: &[u8; 32]) -> String {
    let uid = claims
        .get("kubernetes.io")
        .and_then(|k| k.get("pod"))
        .and_then(|p| p.get("uid"))
        .and_then(Value::as_str);
    match uid {
        // Kubernetes uids are 36 characters; a longer claim is not a pod's.
        Some(uid) if !uid.is_empty() && uid.len() <= 128 => format!("pod:{uid}"),
        _ => {
            let mut key = String::from("token:");
            for byte in hash {
                key.push_str(&format!("{byte:02x}"));
            }
            key
        }
    }
}

fn has_audience(claims: &Map<String, Value>) -> bool {
    match claims.get("aud") {
        Some(Value::String(aud)) => aud == POD_IDENTITY_AUDIENCE,
        Some(Value::Array(auds)) => auds
            .iter()
            .any(|a| a.as_str() == Some(POD_IDENTITY_AUDIENCE)),
        _ => false,
    }
}
