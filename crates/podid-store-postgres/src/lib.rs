#![doc = include_str!("../README.md")]

mod tls;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use podid_store::{Condition, Item, Op, Store, StoreError};
use tokio::sync::Semaphore;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, Statement};

/// The schema version this code writes.
const SCHEMA_VERSION: i32 = 1;

/// How many times a batch is retried after a deadlock or serialization failure.
const RETRIES: usize = 5;

/// A store in a PostgreSQL database.
pub struct PostgresStore {
    config: Config,
    tls: tls::RustlsConnect,
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
    /// Reads a key's version and holds a share lock on it to the end of the transaction.
    check: Statement,
    /// Inserts unless the key exists (`Absent`).
    insert_absent: Statement,
    /// Inserts or overwrites (`Any`).
    upsert: Statement,
    /// Overwrites an existing key (`Exists`).
    update: Statement,
    /// Overwrites a key at a version (`Version`).
    update_version: Statement,
    delete: Statement,
    delete_version: Statement,
    scan: Statement,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db`, with libpq's options,
    /// `sslmode` and `sslrootcert` as libpq reads them) with up to `pool_size` connections, and
    /// migrates it to the current schema.
    pub async fn connect(url: &str, pool_size: usize) -> Result<Self, StoreError> {
        let (tls, rest) = tls::settings(url)?;
        let mut config: Config = rest.parse().map_err(|e| {
            StoreError::Unusable(format!(
                "`{}` is not a PostgreSQL URL: {}",
                redact(url),
                with_causes(&e)
            ))
        })?;
        config.ssl_mode(tls.mode.wire());
        let connector = tls.connector()?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        config.application_name("podid");
        let store = Self {
            config,
            tls: connector,
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
            .connect(self.tls.clone())
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
        let client_ref = &client;
        let statement = |sql: &'static str| async move {
            client_ref.prepare(sql).await.map_err(|e| unavailable(&e))
        };
        Ok(Conn {
            get,
            check: statement(
                "SELECT version FROM podid_kv WHERE ns = $1 AND key = $2 FOR SHARE",
            )
            .await?,
            insert_absent: statement(
                "INSERT INTO podid_kv (ns, key, version, value) VALUES ($1, $2, 1, $3)
                 ON CONFLICT (ns, key) DO NOTHING",
            )
            .await?,
            upsert: statement(
                "INSERT INTO podid_kv (ns, key, version, value) VALUES ($1, $2, 1, $3)
                 ON CONFLICT (ns, key) DO UPDATE SET value = EXCLUDED.value, version = podid_kv.version + 1",
            )
            .await?,
            update: statement(
                "UPDATE podid_kv SET value = $3, version = version + 1 WHERE ns = $1 AND key = $2",
            )
            .await?,
            update_version: statement(
                "UPDATE podid_kv SET value = $3, version = version + 1
                 WHERE ns = $1 AND key = $2 AND version = $4",
            )
            .await?,
            delete: statement("DELETE FROM podid_kv WHERE ns = $1 AND key = $2").await?,
            delete_version: statement(
                "DELETE FROM podid_kv WHERE ns = $1 AND key = $2 AND version = $3",
            )
            .await?,
            scan: prepare(
                "SELECT key, version, value FROM podid_kv
                 WHERE ns = $1 AND key >= $2 AND key > $3 AND key < $5 AND starts_with(key, $2)
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
        // An upper bound, so that the index scan stops where the prefix's keys end (keys are
        // compared bytewise: COLLATE "C").
        let upper = format!("{prefix}\u{10FFFF}");
        let (conn, _permit) = self.acquire().await?;
        let result = conn
            .client
            .query(&conn.scan, &[&ns, &prefix, &start, &limit, &upper])
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

/// Applies a batch in one transaction. Each operation is one statement whose condition is part
/// of it (`ON CONFLICT DO NOTHING`, `WHERE version = ...`), and the statements are pipelined:
/// a batch costs three round trips (BEGIN, the statements, COMMIT) whatever its size.
async fn apply(conn: &mut Conn, ops: &[Op]) -> Result<(), Failure> {
    let conn = &*conn;
    // BEGIN goes out in the same flight as the statements (tokio-postgres pipelines requests
    // in the order they are polled).
    let (begun, outcome) =
        futures_util::future::join(conn.client.batch_execute("BEGIN"), statements(conn, ops)).await;
    if let Err(e) = begun {
        let _ = conn.client.batch_execute("ROLLBACK").await;
        return Err(e.into());
    }
    match outcome {
        Ok(()) => {
            if let Err(e) = conn.client.batch_execute("COMMIT").await {
                let _ = conn.client.batch_execute("ROLLBACK").await;
                return Err(e.into());
            }
            Ok(())
        }
        Err(e) => {
            let _ = conn.client.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

async fn statements(conn: &Conn, ops: &[Op]) -> Result<(), Failure> {
    let outcomes =
        futures_util::future::join_all(ops.iter().map(|op| run(&conn.client, conn, op))).await;
    for (index, outcome) in outcomes.into_iter().enumerate() {
        if !outcome? {
            let op = ops.get(index);
            let (ns, key) = op.map_or(("", ""), Op::target);
            return Err(Failure::Store(StoreError::Conflict {
                index,
                ns,
                key: key.to_owned(),
                condition: op.map_or(Condition::Any, Op::condition),
            }));
        }
    }
    Ok(())
}

/// Runs one operation; whether its condition held.
async fn run(tx: &Client, conn: &Conn, op: &Op) -> Result<bool, Failure> {
    let (ns, key) = op.target();
    let version = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    Ok(match (op, op.condition()) {
        (Op::Put { value, .. }, Condition::Absent) => {
            tx.execute(&conn.insert_absent, &[&ns, &key, value]).await? == 1
        }
        (Op::Put { value, .. }, Condition::Any) => {
            tx.execute(&conn.upsert, &[&ns, &key, value]).await?;
            true
        }
        (Op::Put { value, .. }, Condition::Exists) => {
            tx.execute(&conn.update, &[&ns, &key, value]).await? == 1
        }
        (Op::Put { value, .. }, Condition::Version(v)) => {
            tx.execute(&conn.update_version, &[&ns, &key, value, &version(v)])
                .await?
                == 1
        }
        (Op::Delete { .. }, Condition::Any) => {
            tx.execute(&conn.delete, &[&ns, &key]).await?;
            true
        }
        (Op::Delete { .. }, Condition::Exists) => {
            tx.execute(&conn.delete, &[&ns, &key]).await? == 1
        }
        (Op::Delete { .. }, Condition::Version(v)) => {
            tx.execute(&conn.delete_version, &[&ns, &key, &version(v)])
                .await?
                == 1
        }
        (Op::Delete { .. } | Op::Check { .. }, condition) => {
            let current = tx
                .query_opt(&conn.check, &[&ns, &key])
                .await?
                .map(|row| u64::try_from(row.get::<_, i64>(0)).unwrap_or(0));
            match condition {
                Condition::Any => true,
                Condition::Absent => current.is_none(),
                Condition::Exists => current.is_some(),
                Condition::Version(v) => current == Some(v),
            }
        }
    })
}

fn unavailable(e: &tokio_postgres::Error) -> StoreError {
    // tokio-postgres's own text is generic ("error performing TLS handshake"); the cause says
    // what went wrong.
    let mut message = with_causes(e);
    if message.contains("TLS handshake") && message.contains("certificate") {
        message.push_str(
            " (with sslmode=verify-full or verify-ca, sslrootcert must hold the CA that signed the PostgreSQL server's certificate, and with verify-full the URL's host must be a name the certificate holds)",
        );
    }
    StoreError::Unavailable(message)
}

/// `e`'s text followed by its causes'.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
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
