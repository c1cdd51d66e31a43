//! A read cache in front of a shared store, for replicas of one PostgreSQL database.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use podid_types::Clock;

use crate::{Item, Op, Store, StoreError};

/// A namespace and a key.
type Key = (&'static str, String);

/// The most items kept; the cache starts over when it is full.
const CAPACITY: usize = 16_384;

/// A [`Store`] that keeps the items `get` found for `ttl_millis`, so that the records every
/// request reads (access keys, users, roles) cost no round trip while they are fresh.
///
/// What this replica writes is never served stale: a commit drops every key it touches (a
/// failed one too, so that a retry after a conflict reads afresh), and a read that raced with a
/// commit is not kept. What other replicas write is seen at most `ttl_millis` late, as IAM's
/// own changes propagate ("eventually consistent"). Scans and misses are never cached.
pub struct CachedStore {
    inner: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    ttl_millis: i64,
    entries: Mutex<HashMap<Key, (Item, i64)>>,
    /// Counts commits, so that a read that overlapped one is not cached.
    generation: AtomicU64,
}

impl std::fmt::Debug for CachedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedStore")
            .field("inner", &self.inner)
            .field("ttl_millis", &self.ttl_millis)
            .finish_non_exhaustive()
    }
}

impl CachedStore {
    /// Caches the point reads of `inner` for `ttl_millis` by `clock`.
    pub fn new(inner: Arc<dyn Store>, clock: Arc<dyn Clock>, ttl_millis: i64) -> Self {
        Self {
            inner,
            clock,
            ttl_millis,
            entries: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
        }
    }

    fn drop_keys(&self, keys: &[Key]) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut entries) = self.entries.lock() {
            for key in keys {
                entries.remove(key);
            }
        }
    }
}

#[async_trait::async_trait]
impl Store for CachedStore {
    async fn get(&self, ns: &'static str, key: &str) -> Result<Option<Item>, StoreError> {
        let now = self.clock.now().as_millis();
        if let Ok(entries) = self.entries.lock()
            && let Some((item, at)) = entries.get(&(ns, key.to_owned()))
            && now - at < self.ttl_millis
        {
            return Ok(Some(item.clone()));
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let found = self.inner.get(ns, key).await?;
        if let Some(item) = &found
            && let Ok(mut entries) = self.entries.lock()
            && self.generation.load(Ordering::SeqCst) == generation
        {
            if entries.len() >= CAPACITY {
                entries.clear();
            }
            entries.insert((ns, key.to_owned()), (item.clone(), now));
        }
        Ok(found)
    }

    async fn scan(
        &self,
        ns: &'static str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        self.inner.scan(ns, prefix, after, limit).await
    }

    async fn commit(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        let keys: Vec<Key> = ops
            .iter()
            .map(|op| {
                let (ns, key) = op.target();
                (ns, key.to_owned())
            })
            .collect();
        self.drop_keys(&keys);
        let result = self.inner.commit(ops).await;
        // Once more: a read that ran during the commit may have brought the old value back.
        self.drop_keys(&keys);
        result
    }

    fn forget(&self, keys: &[(&'static str, String)]) {
        self.drop_keys(keys);
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn groups_commits(&self) -> bool {
        self.inner.groups_commits()
    }
}

#[cfg(test)]
mod tests {
    use podid_types::{FixedClock, Timestamp};

    use super::*;
    use crate::MemoryStore;

    fn replicas() -> (CachedStore, CachedStore, Arc<FixedClock>) {
        let shared: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let clock = Arc::new(FixedClock::new(Timestamp::from_secs(1000)));
        (
            CachedStore::new(shared.clone(), clock.clone(), 1000),
            CachedStore::new(shared, clock.clone(), 1000),
            clock,
        )
    }

    #[tokio::test]
    async fn passes_the_conformance_suite() {
        let store: Arc<dyn Store> = Arc::new(CachedStore::new(
            Arc::new(MemoryStore::new()),
            Arc::new(FixedClock::new(Timestamp::from_secs(1))),
            60_000,
        ));
        crate::suite::run(store).await;
    }

    #[tokio::test]
    async fn own_writes_are_fresh_other_replicas_at_most_a_ttl_late() {
        let (one, two, clock) = replicas();
        one.commit(vec![Op::create("ns", "k", "v1")]).await.unwrap();
        assert_eq!(two.get("ns", "k").await.unwrap().unwrap().value, "v1");
        assert_eq!(one.get("ns", "k").await.unwrap().unwrap().value, "v1");
        one.commit(vec![Op::update("ns", "k", "v2", 1)])
            .await
            .unwrap();
        // The writer sees its write at once; the other replica may serve its copy for a TTL.
        assert_eq!(one.get("ns", "k").await.unwrap().unwrap().value, "v2");
        assert_eq!(two.get("ns", "k").await.unwrap().unwrap().value, "v1");
        clock.advance_millis(1000);
        assert_eq!(two.get("ns", "k").await.unwrap().unwrap().value, "v2");
    }

    #[tokio::test]
    async fn a_conflict_drops_the_stale_copy_so_a_retry_reads_afresh() {
        let (one, two, _) = replicas();
        one.commit(vec![Op::create("ns", "k", "v1")]).await.unwrap();
        let stale = two.get("ns", "k").await.unwrap().unwrap();
        one.commit(vec![Op::update("ns", "k", "v2", 1)])
            .await
            .unwrap();
        let conflict = two
            .commit(vec![Op::update("ns", "k", "v3", stale.version)])
            .await;
        assert!(matches!(conflict, Err(StoreError::Conflict { .. })));
        let fresh = two.get("ns", "k").await.unwrap().unwrap();
        assert_eq!((fresh.value.as_str(), fresh.version), ("v2", 2));
        two.commit(vec![Op::update("ns", "k", "v3", fresh.version)])
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn misses_are_not_cached() {
        let (one, two, _) = replicas();
        assert_eq!(two.get("ns", "k").await.unwrap(), None);
        one.commit(vec![Op::create("ns", "k", "v1")]).await.unwrap();
        assert_eq!(two.get("ns", "k").await.unwrap().unwrap().value, "v1");
    }
}
