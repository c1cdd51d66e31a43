#![doc = include_str!("../README.md")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use podid_store::{Condition, Item, Op, Store, StoreError};
use tokio::sync::Semaphore;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls, Statement};

/// The schema version this code writes.
const SCHEMA_VERSION: i32 = 1;

/// How many times a batch is retried after a deadlock or serialization failure.
const RETRIES: usize = 5;

/// A store in a PostgreSQL database.
pub struct PostgresStore {
    config: Config,
    idle: Arc<Mutex<Vec<Conn>>>,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("hosts", &self.config.get_hosts())
            .field("dbname", &self.config.get_dbname())
            .finish_non_exhaustive()
    }
}

struct Conn {
    client: Client,
    get: Statement,
    lock: Statement,
    insert: Statement,
    update: Statement,
    delete: Statement,
    scan: Statement,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db`, with libpq's options)
    /// with up to `pool_size` connections, and migrates it to the current schema.
    pub async fn connect(url: &str, pool_size: usize) -> Result<Self, StoreError> {
        let mut config: Config = url.parse().map_err(|e| {
            StoreError::Unusable(format!("`{}` is not a PostgreSQL URL: {e}", redact(url)))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        config.application_name("podid");
        let store = Self {
            config,
            idle: Arc::new(Mutex::new(Vec::new())),
            permits: Arc::new(Semaphore::new(pool_size.max(1))),
        };
        let mut conn = store.open().await?;
        migrate(&mut conn.client).await?;
        store.release(conn);
        Ok(store)
    }

    async fn open(&self) -> Result<Conn, StoreError> {
        let (client, connection) = self
            .config
            .connect(NoTls)
            .await
            .map_err(|e| unavailable(&e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "postgres connection closed");
            }
        });
        let prepare = |sql: &'static str| client.prepare(sql);
        let get = prepare("SELECT version, value FROM podid_kv WHERE ns = $1 AND key = $2").await;
        // Before the schema exists (first connection), statements cannot be prepared yet.
        let Ok(get) = get else {
            migrate_raw(&client).await?;
            return Box::pin(self.open()).await;
        };
        Ok(Conn {
            get,
            lock: prepare("SELECT version FROM podid_kv WHERE ns = $1 AND key = $2 FOR UPDATE")
                .await
                .map_err(|e| unavailable(&e))?,
            insert: prepare(
                "INSERT INTO podid_kv (ns, key, version, value) VALUES ($1, $2, 1, $3)",
            )
            .await
            .map_err(|e| unavailable(&e))?,
            update: prepare(
                "UPDATE podid_kv SET value = $3, version = version + 1 WHERE ns = $1 AND key = $2",
            )
            .await
            .map_err(|e| unavailable(&e))?,
            delete: prepare("DELETE FROM podid_kv WHERE ns = $1 AND key = $2")
                .await
                .map_err(|e| unavailable(&e))?,
            scan: prepare(
                "SELECT key, version, value FROM podid_kv
                 WHERE ns = $1 AND key >= $2 AND key > $3 AND starts_with(key, $2)
                 ORDER BY key LIMIT $4",
            )
            .await
            .map_err(|e| unavailable(&e))?,
            client,
        })
    }

    async fn acquire(&self) -> Result<(Conn, tokio::sync::OwnedSemaphorePermit), StoreError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Unavailable("the connection pool is closed".into()))?;
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match idle {
            Some(conn) if !conn.client.is_closed() => conn,
            _ => self.open().await?,
        };
        Ok((conn, permit))
    }

    fn release(&self, conn: Conn) {
        if conn.client.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
    }
}

async fn migrate_raw(client: &Client) -> Result<(), StoreError> {
    client
        .batch_execute(
            "BEGIN;
             SELECT pg_advisory_xact_lock(7263540001);
             CREATE TABLE IF NOT EXISTS podid_schema (version INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS podid_kv (
                 ns TEXT NOT NULL,
                 key TEXT COLLATE \"C\" NOT NULL,
                 version BIGINT NOT NULL,
                 value TEXT NOT NULL,
                 PRIMARY KEY (ns, key)
             );
             INSERT INTO podid_schema (version) SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM podid_schema);
             COMMIT;",
        )
        .await
        .map_err(|e| StoreError::Unusable(format!("cannot create podid's tables: {e}")))
}

async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    migrate_raw(client).await?;
    let row = client
        .query_one("SELECT max(version) FROM podid_schema", &[])
        .await
        .map_err(|e| unavailable(&e))?;
    let version: Option<i32> = row.get(0);
    match version {
        Some(v) if v > SCHEMA_VERSION => Err(StoreError::Unusable(format!(
            "the database has schema version {v}, newer than this podid understands ({SCHEMA_VERSION}): upgrade podid"
        ))),
        _ => Ok(()),
    }
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    async fn get(&self, ns: &'static str, key: &str) -> Result<Option<Item>, StoreError> {
        let (conn, _permit) = self.acquire().await?;
        let result = conn.client.query_opt(&conn.get, &[&ns, &key]).await;
        let row = result.map_err(|e| unavailable(&e));
        self.release(conn);
        Ok(row?.map(|row| Item {
            key: key.to_owned(),
            version: u64::try_from(row.get::<_, i64>(0)).unwrap_or(0),
            value: row.get(1),
        }))
    }

    async fn scan(
        &self,
        ns: &'static str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let start = match after {
            Some(after) if after >= prefix => after,
            _ => "",
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let (conn, _permit) = self.acquire().await?;
        let result = conn
            .client
            .query(&conn.scan, &[&ns, &prefix, &start, &limit])
            .await;
        self.release(conn);
        Ok(result
            .map_err(|e| unavailable(&e))?
            .into_iter()
            .map(|row| Item {
                key: row.get(0),
                version: u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
                value: row.get(2),
            })
            .collect())
    }

    async fn commit(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let (mut conn, _permit) = self.acquire().await?;
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            match apply(&mut conn, &ops).await {
                Err(Failure::Retry(e)) if attempt < RETRIES => {
                    tracing::debug!(error = %e, attempt, "retrying a batch");
                    continue;
                }
                Err(Failure::Retry(e)) => {
                    break Err(StoreError::Unavailable(format!(
                        "gave up after {RETRIES} attempts: {e}"
                    )));
                }
                Err(Failure::Store(e)) => break Err(e),
                Ok(()) => break Ok(()),
            }
        };
        self.release(conn);
        result
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }
}

enum Failure {
    /// A deadlock or serialization failure: the whole batch can be tried again.
    Retry(tokio_postgres::Error),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.code() {
            Some(code)
                if *code == SqlState::T_R_DEADLOCK_DETECTED
                    || *code == SqlState::T_R_SERIALIZATION_FAILURE =>
            {
                Self::Retry(e)
            }
            _ => Self::Store(unavailable(&e)),
        }
    }
}

async fn apply(conn: &mut Conn, ops: &[Op]) -> Result<(), Failure> {
    let tx = conn.client.transaction().await?;
    for (index, op) in ops.iter().enumerate() {
        let (ns, key) = op.target();
        let conflict = || {
            Failure::Store(StoreError::Conflict {
                index,
                ns,
                key: key.to_owned(),
                condition: op.condition(),
            })
        };
        let current = tx
            .query_opt(&conn.lock, &[&ns, &key])
            .await?
            .map(|row| u64::try_from(row.get::<_, i64>(0)).unwrap_or(0));
        let holds = match op.condition() {
            Condition::Any => true,
            Condition::Absent => current.is_none(),
            Condition::Exists => current.is_some(),
            Condition::Version(v) => current == Some(v),
        };
        if !holds {
            return Err(conflict());
        }
        match op {
            Op::Put { value, .. } => {
                if current.is_some() {
                    tx.execute(&conn.update, &[&ns, &key, value]).await?;
                } else if let Err(e) = tx.execute(&conn.insert, &[&ns, &key, value]).await {
                    // Another transaction inserted the key since we looked.
                    if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
                        return Err(if op.condition() == Condition::Absent {
                            conflict()
                        } else {
                            Failure::Retry(e)
                        });
                    }
                    return Err(e.into());
                }
            }
            Op::Delete { .. } => {
                tx.execute(&conn.delete, &[&ns, &key]).await?;
            }
            Op::Check { .. } => {}
        }
    }
    tx.commit().await?;
    Ok(())
}

fn unavailable(e: &tokio_postgres::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = url.get(scheme + 3..at).unwrap_or_default();
            let user = userinfo.split(':').next().unwrap_or_default();
            format!(
                "{}{user}:***{}",
                url.get(..scheme + 3).unwrap_or_default(),
                url.get(at..).unwrap_or_default()
            )
        }
        _ => url.to_owned(),
    }
}
