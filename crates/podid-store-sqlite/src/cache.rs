//! The items point reads found, kept in memory.
//!
//! SQLite drops a read connection's page cache whenever another connection has written, and
//! podid writes all the time (every credential issued leaves an audit record), so without this
//! every point read copies the B-tree pages of its key again from the file, a system call each.
//!
//! Coherence rests on two facts: this process is the database's only writer (the store holds an
//! exclusive lock on it), and the writer thread forgets every key a transaction wrote after the
//! transaction commits and before any caller learns it committed. A read that misses marks its
//! key as pending with a number of its own before it reads the file, and keeps what it read only
//! if its mark is still there afterwards: a write that committed in between removed the mark, so
//! a value read before that write is never kept.

use std::collections::HashMap;
use std::sync::Mutex;

use podid_store::{Item, Op};

/// The most bytes of keys and values kept; past it the cache starts again empty.
const MAX_BYTES: usize = 32 << 20;

#[derive(Debug, Default)]
pub(crate) struct Cache {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    slots: HashMap<(&'static str, String), Slot>,
    bytes: usize,
    next_mark: u64,
}

#[derive(Debug)]
enum Slot {
    /// A read of the file is under way, by the reader with this mark.
    Pending(u64),
    /// What the file holds (`None`: nothing).
    Ready(Option<Item>),
}

/// What a lookup found.
pub(crate) enum Lookup {
    /// The item (or its absence), from memory.
    Hit(Option<Item>),
    /// Read the file, then [`Cache::keep`] with this mark.
    Miss(u64),
}

impl Cache {
    pub(crate) fn lookup(&self, ns: &'static str, key: &str) -> Lookup {
        let mut state = self.lock();
        // A lookup with a borrowed key would need a second map type; keys are short.
        let slot_key = (ns, key.to_owned());
        if let Some(Slot::Ready(item)) = state.slots.get(&slot_key) {
            return Lookup::Hit(item.clone());
        }
        state.next_mark += 1;
        let mark = state.next_mark;
        state.slots.insert(slot_key, Slot::Pending(mark));
        Lookup::Miss(mark)
    }

    /// Keeps what a read that missed found, unless a write to the key committed meanwhile.
    pub(crate) fn keep(&self, ns: &'static str, key: &str, mark: u64, item: &Option<Item>) {
        let mut state = self.lock();
        let slot_key = (ns, key.to_owned());
        let Some(slot) = state.slots.get_mut(&slot_key) else {
            return;
        };
        if !matches!(slot, Slot::Pending(m) if *m == mark) {
            return;
        }
        let size = key.len() + item.as_ref().map_or(0, |i| i.key.len() + i.value.len());
        *slot = Slot::Ready(item.clone());
        state.bytes += size;
        if state.bytes > MAX_BYTES {
            state.slots.clear();
            state.bytes = 0;
        }
    }

    /// Forgets the keys `ops` wrote; called after they committed, before anyone is told.
    pub(crate) fn forget(&self, ops: &[Op]) {
        let mut state = self.lock();
        for op in ops {
            if matches!(op, Op::Check { .. }) {
                continue;
            }
            let (ns, key) = op.target();
            if let Some(Slot::Ready(item)) = state.slots.remove(&(ns, key.to_owned())) {
                let size = key.len() + item.map_or(0, |i| i.key.len() + i.value.len());
                state.bytes = state.bytes.saturating_sub(size);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(value: &str) -> Option<Item> {
        Some(Item {
            key: "k".into(),
            version: 1,
            value: value.into(),
        })
    }

    #[test]
    fn a_kept_read_is_found_and_a_write_forgets_it() {
        let cache = Cache::default();
        let Lookup::Miss(mark) = cache.lookup("ns", "k") else {
            panic!("an empty cache missed nothing");
        };
        cache.keep("ns", "k", mark, &item("a"));
        assert!(matches!(cache.lookup("ns", "k"), Lookup::Hit(Some(i)) if i.value == "a"));
        cache.forget(&[Op::upsert("ns", "k", "b")]);
        assert!(matches!(cache.lookup("ns", "k"), Lookup::Miss(_)));
    }

    #[test]
    fn a_read_overtaken_by_a_write_is_not_kept() {
        let cache = Cache::default();
        let Lookup::Miss(mark) = cache.lookup("ns", "k") else {
            panic!("an empty cache missed nothing");
        };
        // The write commits while the read is under way: what the read found may be older.
        cache.forget(&[Op::upsert("ns", "k", "b")]);
        cache.keep("ns", "k", mark, &item("a"));
        assert!(matches!(cache.lookup("ns", "k"), Lookup::Miss(_)));
    }

    #[test]
    fn only_the_latest_reader_keeps_its_read_and_absence_is_kept() {
        let cache = Cache::default();
        let Lookup::Miss(first) = cache.lookup("ns", "k") else {
            panic!("an empty cache missed nothing");
        };
        let Lookup::Miss(second) = cache.lookup("ns", "k") else {
            panic!("a pending key missed nothing");
        };
        cache.keep("ns", "k", first, &item("old"));
        assert!(matches!(cache.lookup("ns", "k"), Lookup::Miss(_)));
        let Lookup::Miss(third) = cache.lookup("ns", "k") else {
            panic!("a pending key missed nothing");
        };
        cache.keep("ns", "k", second, &item("x"));
        cache.keep("ns", "k", third, &None);
        assert!(matches!(cache.lookup("ns", "k"), Lookup::Hit(None)));
    }

    #[test]
    fn the_cache_stays_within_its_bytes() {
        let cache = Cache::default();
        let big = "x".repeat(1 << 20);
        for n in 0..40 {
            let key = format!("k{n}");
            if let Lookup::Miss(mark) = cache.lookup("ns", &key) {
                cache.keep("ns", &key, mark, &item(&big));
            }
        }
        assert!(cache.lock().bytes <= MAX_BYTES);
    }
}
