#![doc = include_str!("../README.md")]

mod cache;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use podid_store::{Condition, Item, Op, Store, StoreError};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use cache::{Cache, Lookup};

/// The schema version this code writes.
const SCHEMA_VERSION: i64 = 2;

/// The table of every item (schema 2). A rowid table, with `(ns, key)` as a separate unique
/// index: values (audit records are 1–2 KB) stay in the table's leaves, out of the index. In
/// schema 1's `WITHOUT ROWID` table they lived in the index itself, where a value over 1,002
/// bytes spills onto an overflow page of its own, and every insert's binary search had to read
/// those overflow pages back from the file to compare keys: about eleven `pread`s and a 4 KB
/// page written per audit record.
const CREATE_KV: &str = "CREATE TABLE kv (
     ns TEXT NOT NULL,
     key TEXT NOT NULL,
     version INTEGER NOT NULL,
     value TEXT NOT NULL,
     PRIMARY KEY (ns, key)
 )";

/// The most batches committed in one transaction.
const MAX_GROUP: usize = 512;

/// Idle read connections kept open.
const READ_POOL: usize = 8;

/// Scans of at most this many items run on the calling thread, like point reads: a page of a
/// hundred, and the one more that says whether another page follows (a hop to the blocking
/// pool cost a list page about a tenth of its CPU).
const SMALL_SCAN: usize = 128;

/// A store in one SQLite file.
pub struct SqliteStore {
    path: PathBuf,
    writer: mpsc::Sender<Job>,
    readers: Arc<Mutex<Vec<Connection>>>,
    cache: Arc<Cache>,
    /// `podid.db.lock`, locked for as long as the store is open: the cache of point reads is
    /// right only while this process is the database's one writer.
    _lock: std::fs::File,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

struct Job {
    ops: Vec<Op>,
    reply: tokio::sync::oneshot::Sender<Result<(), StoreError>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, migrating it to the current schema.
    /// Refused while another store (in this process or another) has it open.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let lock = lock(path)?;
        let mut conn = Connection::open(path).map_err(|e| unusable(path, &e))?;
        configure(&conn).map_err(|e| unusable(path, &e))?;
        migrate(&mut conn, path)?;
        let (tx, rx) = mpsc::channel::<Job>();
        let writer_path = path.to_owned();
        let cache = Arc::new(Cache::default());
        let writer_cache = cache.clone();
        std::thread::Builder::new()
            .name("podid-sqlite-writer".into())
            .spawn(move || writer(conn, rx, &writer_path, &writer_cache))
            .map_err(|e| StoreError::Unusable(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            path: path.to_owned(),
            writer: tx,
            readers: Arc::new(Mutex::new(Vec::new())),
            cache,
            _lock: lock,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs a read on a pooled read-only connection. Point reads and small scans run right
    /// here: from SQLite's page cache they take microseconds, less than handing them to another
    /// thread would. Large scans go to the blocking pool, so they never hold up other requests.
    async fn read<T: Send + 'static>(
        &self,
        small: bool,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        if small {
            return read_with(&self.readers, &self.path, f);
        }
        let readers = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || read_with(&readers, &path, f))
            .await
            .map_err(|e| StoreError::Unavailable(format!("a read task failed: {e}")))?
    }
}

impl SqliteStore {
    async fn read_item(&self, ns: &'static str, key: &str) -> Result<Option<Item>, StoreError> {
        let key = key.to_owned();
        self.read(true, move |conn| {
            conn.prepare_cached("SELECT version, value FROM kv WHERE ns = ?1 AND key = ?2")?
                .query_row(params![ns, key], |row| {
                    Ok(Item {
                        key: key.clone(),
                        version: u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0),
                        value: row.get(1)?,
                    })
                })
                .optional()
        })
        .await
    }
}

/// Takes the exclusive lock beside the database file.
fn lock(path: &Path) -> Result<std::fs::File, StoreError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| {
            StoreError::Unusable(format!("`{}`: cannot open: {e}", lock_path.display()))
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Unusable(format!(
            "`{}` is in use by another podid server: stop it, or give this one its own --data-dir (replicas share a PostgreSQL database, not a SQLite file)",
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Unusable(format!(
            "`{}`: cannot lock: {e}",
            lock_path.display()
        ))),
    }
}

/// A key above every key that starts with `prefix`: the prefix and the highest character.
/// (A key whose character after the prefix is U+10FFFF itself would be missed; podid's keys
/// are names and ids.)
fn upper_bound(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

/// Runs `f` on a connection from `readers` (opened if there is none free).
fn read_with<T>(
    readers: &Mutex<Vec<Connection>>,
    path: &Path,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> Result<T, StoreError> {
    let pooled = readers.lock().ok().and_then(|mut pool| pool.pop());
    let conn = match pooled {
        Some(conn) => conn,
        None => {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| unavailable(&e))?;
            conn.busy_timeout(std::time::Duration::from_secs(5))
                .map_err(|e| unavailable(&e))?;
            conn
        }
    };
    let result = f(&conn).map_err(|e| unavailable(&e));
    if let Ok(mut pool) = readers.lock()
        && pool.len() < READ_POOL
    {
        pool.push(conn);
    }
    result
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: every commit is synced, so an acknowledged write survives a power loss.
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(())
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(|e| unusable(path, &e))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Unusable(format!(
            "`{}` has schema version {version}, newer than this podid understands ({SCHEMA_VERSION}): upgrade podid",
            path.display()
        )));
    }
    if version < SCHEMA_VERSION {
        let tx = conn.transaction().map_err(|e| unusable(path, &e))?;
        let script = if version < 1 {
            format!("{CREATE_KV}; PRAGMA user_version = {SCHEMA_VERSION};")
        } else {
            // 1 → 2: the items move to the rowid table, in one transaction.
            tracing::info!(path = %path.display(), "moving the store to schema {SCHEMA_VERSION}");
            format!(
                "ALTER TABLE kv RENAME TO kv_schema_1;
                 {CREATE_KV};
                 INSERT INTO kv (ns, key, version, value)
                     SELECT ns, key, version, value FROM kv_schema_1 ORDER BY ns, key;
                 DROP TABLE kv_schema_1;
                 PRAGMA user_version = {SCHEMA_VERSION};"
            )
        };
        tx.execute_batch(&script).map_err(|e| unusable(path, &e))?;
        tx.commit().map_err(|e| unusable(path, &e))?;
    }
    Ok(())
}

/// The writer thread: commits waiting batches together.
fn writer(mut conn: Connection, rx: mpsc::Receiver<Job>, path: &Path, cache: &Cache) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let outcome = commit_group(&mut conn, &jobs);
        // Whatever the outcome, before anyone learns it: a failed commit changed nothing, but
        // forgetting costs only a read.
        for job in &jobs {
            cache.forget(&job.ops);
        }
        match outcome {
            Ok(results) => {
                for (job, result) in jobs.into_iter().zip(results) {
                    let _ = job.reply.send(result);
                }
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "sqlite commit failed");
                for job in jobs {
                    let _ = job.reply.send(Err(unavailable(&e)));
                }
            }
        }
    }
}

fn commit_group(
    conn: &mut Connection,
    jobs: &[Job],
) -> rusqlite::Result<Vec<Result<(), StoreError>>> {
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        // A batch without conditions cannot fail alone (a database error fails the group):
        // it needs no savepoint.
        if job.ops.iter().all(|op| op.condition() == Condition::Any) {
            apply_unconditional(&tx, &job.ops)?;
            results.push(Ok(()));
            continue;
        }
        let mut savepoint = tx.savepoint()?;
        match apply(&savepoint, &job.ops)? {
            Ok(()) => {
                savepoint.commit()?;
                results.push(Ok(()));
            }
            Err(conflict) => {
                savepoint.rollback()?;
                savepoint.commit()?;
                results.push(Err(conflict));
            }
        }
    }
    tx.set_drop_behavior(rusqlite::DropBehavior::Rollback);
    tx.commit()?;
    Ok(results)
}

/// Applies a batch whose operations have no condition: puts are upserts, with no read first.
fn apply_unconditional(conn: &Connection, ops: &[Op]) -> rusqlite::Result<()> {
    for op in ops {
        match op {
            Op::Put { ns, key, value, .. } => {
                conn.prepare_cached(
                    "INSERT INTO kv (ns, key, version, value) VALUES (?1, ?2, 1, ?3)
                     ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, version = version + 1",
                )?
                .execute(params![ns, key, value])?;
            }
            Op::Delete { ns, key, .. } => {
                conn.prepare_cached("DELETE FROM kv WHERE ns = ?1 AND key = ?2")?
                    .execute(params![ns, key])?;
            }
            Op::Check { .. } => {}
        }
    }
    Ok(())
}

/// Applies one batch; the outer `Result` is a database failure, the inner a failed condition.
fn apply(conn: &Connection, ops: &[Op]) -> rusqlite::Result<Result<(), StoreError>> {
    for (index, op) in ops.iter().enumerate() {
        let (ns, key) = op.target();
        let current: Option<i64> = conn
            .prepare_cached("SELECT version FROM kv WHERE ns = ?1 AND key = ?2")?
            .query_row(params![ns, key], |row| row.get(0))
            .optional()?;
        let current = current.and_then(|v| u64::try_from(v).ok());
        let holds = match op.condition() {
            Condition::Any => true,
            Condition::Absent => current.is_none(),
            Condition::Exists => current.is_some(),
            Condition::Version(v) => current == Some(v),
        };
        if !holds {
            return Ok(Err(StoreError::Conflict {
                index,
                ns,
                key: key.to_owned(),
                condition: op.condition(),
            }));
        }
        match op {
            Op::Put { value, .. } => match current {
                Some(_) => {
                    conn.prepare_cached("UPDATE kv SET value = ?3, version = version + 1 WHERE ns = ?1 AND key = ?2")?
                        .execute(params![ns, key, value])?;
                }
                None => {
                    conn.prepare_cached(
                        "INSERT INTO kv (ns, key, version, value) VALUES (?1, ?2, 1, ?3)",
                    )?
                    .execute(params![ns, key, value])?;
                }
            },
            Op::Delete { .. } => {
                conn.prepare_cached("DELETE FROM kv WHERE ns = ?1 AND key = ?2")?
                    .execute(params![ns, key])?;
            }
            Op::Check { .. } => {}
        }
    }
    Ok(Ok(()))
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn get(&self, ns: &'static str, key: &str) -> Result<Option<Item>, StoreError> {
        let mark = match self.cache.lookup(ns, key) {
            Lookup::Hit(item) => return Ok(item),
            Lookup::Miss(mark) => mark,
        };
        let found = self.read_item(ns, key).await?;
        self.cache.keep(ns, key, mark, &found);
        Ok(found)
    }

    async fn scan(
        &self,
        ns: &'static str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let prefix = prefix.to_owned();
        // One lower bound, the tighter of the prefix and `after`, so that the index seeks
        // straight to it: a page deep into a long list costs what the first page costs.
        let after = after.filter(|a| *a >= prefix.as_str()).map(str::to_owned);
        // And an upper bound, so that the scan stops where the prefix's keys end.
        let upper = upper_bound(&prefix);
        let small = limit <= SMALL_SCAN;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(small, move |conn| {
            // Keys are compared as bytes (SQLite's BINARY collation); the prefix is checked on
            // each row, so `%` and `_` in keys mean nothing special.
            let mut statement = conn.prepare_cached(if after.is_some() {
                "SELECT key, version, value FROM kv
                 WHERE ns = ?1 AND key > ?3 AND key < ?5 AND substr(key, 1, length(?2)) = ?2
                 ORDER BY key LIMIT ?4"
            } else {
                "SELECT key, version, value FROM kv
                 WHERE ns = ?1 AND key >= ?2 AND key < ?5 AND substr(key, 1, length(?2)) = ?2
                 ORDER BY key LIMIT ?4"
            })?;
            let start = after.clone().unwrap_or_default();
            let rows = statement.query_map(params![ns, prefix, start, limit, upper], |row| {
                Ok(Item {
                    key: row.get(0)?,
                    version: u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
                    value: row.get(2)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn commit(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.writer
            .send(Job { ops, reply })
            .map_err(|_| StoreError::Unavailable("the sqlite writer has stopped".into()))?;
        answer.await.map_err(|_| {
            StoreError::Unavailable("the sqlite writer stopped before answering".into())
        })?
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn groups_commits(&self) -> bool {
        true
    }
}

fn unusable(path: &Path, e: &rusqlite::Error) -> StoreError {
    StoreError::Unusable(format!("`{}`: {e}", path.display()))
}

fn unavailable(e: &rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}
