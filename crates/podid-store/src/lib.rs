#![doc = include_str!("../README.md")]

mod cached;
mod memory;
pub mod suite;

use std::fmt;

pub use cached::CachedStore;
pub use memory::MemoryStore;

/// A stored value and its version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// The key.
    pub key: String,
    /// The version: 1 when created, one more with each write.
    pub version: u64,
    /// The value.
    pub value: String,
}

/// What must hold of a key for an operation to apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// Nothing.
    Any,
    /// The key does not exist.
    Absent,
    /// The key exists.
    Exists,
    /// The key exists at this version.
    Version(u64),
}

/// One operation of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Writes `value` under `key`.
    Put {
        /// The namespace.
        ns: &'static str,
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// What must hold first.
        condition: Condition,
    },
    /// Removes `key` (no error if it is absent and the condition allows it).
    Delete {
        /// The namespace.
        ns: &'static str,
        /// The key.
        key: String,
        /// What must hold first.
        condition: Condition,
    },
    /// Writes nothing; fails the batch unless the condition holds.
    Check {
        /// The namespace.
        ns: &'static str,
        /// The key.
        key: String,
        /// What must hold.
        condition: Condition,
    },
}

impl Op {
    /// Puts `value` under `key` if the key does not exist.
    pub fn create(ns: &'static str, key: impl Into<String>, value: impl Into<String>) -> Self {
        Self::Put {
            ns,
            key: key.into(),
            value: value.into(),
            condition: Condition::Absent,
        }
    }

    /// Puts `value` under `key` if the key is at `version`.
    pub fn update(
        ns: &'static str,
        key: impl Into<String>,
        value: impl Into<String>,
        version: u64,
    ) -> Self {
        Self::Put {
            ns,
            key: key.into(),
            value: value.into(),
            condition: Condition::Version(version),
        }
    }

    /// Puts `value` under `key`, whatever was there.
    pub fn upsert(ns: &'static str, key: impl Into<String>, value: impl Into<String>) -> Self {
        Self::Put {
            ns,
            key: key.into(),
            value: value.into(),
            condition: Condition::Any,
        }
    }

    /// Deletes `key` if it is at `version`.
    pub fn delete(ns: &'static str, key: impl Into<String>, version: u64) -> Self {
        Self::Delete {
            ns,
            key: key.into(),
            condition: Condition::Version(version),
        }
    }

    /// The namespace and key the operation is about.
    pub fn target(&self) -> (&'static str, &str) {
        match self {
            Self::Put { ns, key, .. }
            | Self::Delete { ns, key, .. }
            | Self::Check { ns, key, .. } => (ns, key),
        }
    }

    /// The operation's condition.
    pub fn condition(&self) -> Condition {
        match self {
            Self::Put { condition, .. }
            | Self::Delete { condition, .. }
            | Self::Check { condition, .. } => *condition,
        }
    }
}

/// Why a store operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A condition of a batch did not hold: nothing was written.
    #[error(
        "condition {condition:?} does not hold for `{ns}/{key}` (operation {index} of the batch)"
    )]
    Conflict {
        /// The index of the first failing operation.
        index: usize,
        /// Its namespace.
        ns: &'static str,
        /// Its key.
        key: String,
        /// Its condition.
        condition: Condition,
    },
    /// The backend could not be reached or failed; the batch may or may not have been written only
    /// if the message says so.
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
    /// The store is not in a state podid can use (a newer schema, a corrupt file).
    #[error("storage is unusable: {0}")]
    Unusable(String),
}

/// The storage every podid server uses. All methods are safe to call concurrently.
#[async_trait::async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// The item under `key`, if any.
    async fn get(&self, ns: &'static str, key: &str) -> Result<Option<Item>, StoreError>;

    /// The items whose keys start with `prefix` and come after `after` (if given), in byte
    /// order of keys, at most `limit`.
    async fn scan(
        &self,
        ns: &'static str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError>;

    /// Applies `ops` atomically and durably: all of them, or (when a condition fails, reported
    /// as [`StoreError::Conflict`]) none.
    async fn commit(&self, ops: Vec<Op>) -> Result<(), StoreError>;

    /// A short name of the backend, for logs: `memory`, `sqlite`, `postgres`.
    fn backend(&self) -> &'static str;

    /// Drops what this handle keeps of `keys` (a read cache's copies), because another replica
    /// changed them: the next read of each goes to the backend. Stores that keep no copies of
    /// other replicas' writes do nothing.
    fn forget(&self, keys: &[(&'static str, String)]) {
        let _ = keys;
    }

    /// Whether commits sent while another is being written already share one transaction
    /// (SQLite's writer thread groups them), so that callers need not group them first.
    fn groups_commits(&self) -> bool {
        false
    }
}
