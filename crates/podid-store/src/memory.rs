//! An in-memory store, for tests.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::{Condition, Item, Op, Store, StoreError};

/// (namespace, key) → (version, value).
type Data = BTreeMap<(&'static str, String), (u64, String)>;

/// A store that keeps everything in memory and loses it on exit.
#[derive(Debug, Default)]
pub struct MemoryStore {
    data: Mutex<Data>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Whether `condition` holds for a key at `version` (`None`: absent).
pub(crate) fn holds(condition: Condition, version: Option<u64>) -> bool {
    match condition {
        Condition::Any => true,
        Condition::Absent => version.is_none(),
        Condition::Exists => version.is_some(),
        Condition::Version(v) => version == Some(v),
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn get(&self, ns: &'static str, key: &str) -> Result<Option<Item>, StoreError> {
        let data = self
            .data
            .lock()
            .map_err(|_| StoreError::Unusable("a writer panicked".into()))?;
        Ok(data
            .get(&(ns, key.to_owned()))
            .map(|(version, value)| Item {
                key: key.to_owned(),
                version: *version,
                value: value.clone(),
            }))
    }

    async fn scan(
        &self,
        ns: &'static str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let data = self
            .data
            .lock()
            .map_err(|_| StoreError::Unusable("a writer panicked".into()))?;
        let start = match after {
            Some(after) if after >= prefix => after.to_owned(),
            _ => prefix.to_owned(),
        };
        Ok(data
            .range((ns, start)..)
            .take_while(|((n, k), _)| *n == ns && k.starts_with(prefix))
            .filter(|((_, k), _)| after.is_none_or(|a| k.as_str() > a))
            .take(limit)
            .map(|((_, k), (version, value))| Item {
                key: k.clone(),
                version: *version,
                value: value.clone(),
            })
            .collect())
    }

    async fn commit(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        let mut data = self
            .data
            .lock()
            .map_err(|_| StoreError::Unusable("a writer panicked".into()))?;
        // Check every condition against the state as the batch goes, on a scratch copy of the
        // touched keys, then apply.
        let mut scratch: BTreeMap<(&'static str, String), Option<u64>> = BTreeMap::new();
        for (index, op) in ops.iter().enumerate() {
            let (ns, key) = op.target();
            let slot = (ns, key.to_owned());
            let current = match scratch.get(&slot) {
                Some(v) => *v,
                None => data.get(&slot).map(|(v, _)| *v),
            };
            if !holds(op.condition(), current) {
                return Err(StoreError::Conflict {
                    index,
                    ns,
                    key: key.to_owned(),
                    condition: op.condition(),
                });
            }
            let next = match op {
                Op::Put { .. } => Some(current.map_or(1, |v| v + 1)),
                Op::Delete { .. } => None,
                Op::Check { .. } => current,
            };
            scratch.insert(slot, next);
        }
        for op in ops {
            match op {
                Op::Put { ns, key, value, .. } => {
                    let version = data.get(&(ns, key.clone())).map_or(1, |(v, _)| v + 1);
                    data.insert((ns, key), (version, value));
                }
                Op::Delete { ns, key, .. } => {
                    data.remove(&(ns, key));
                }
                Op::Check { .. } => {}
            }
        }
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_store_passes_the_suite() {
        crate::suite::run(std::sync::Arc::new(super::MemoryStore::new())).await;
    }
}
