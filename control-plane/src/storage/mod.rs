//! Storage: a sea-orm connection to SQLite (the default, a file such as
//! `sqlite://paved.db?mode=rwc`) or PostgreSQL (`postgres://...`), with the schema migrated at
//! connect time. Every query goes through sea-orm, so both databases share one code path.

pub mod entities;
pub mod migrations;

use std::time::Duration;

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

/// The database of the control plane.
#[derive(Clone, Debug)]
pub struct Store {
    db: DatabaseConnection,
}

/// A lock key for `pg_advisory_xact_lock`: control-plane replicas sharing one PostgreSQL
/// database serialize their mutations on it, so snapshot versions stay gap-free and monotonic.
const WRITE_LOCK_KEY: i64 = 0x7061_7665_6400; // "paved\0"

impl Store {
    /// Connects to `url` and migrates the schema. `schema` (PostgreSQL only) is put first on the
    /// `search_path`; it must exist.
    pub async fn connect(url: &str, schema: Option<&str>) -> Result<Store, crate::Error> {
        let mut options = ConnectOptions::new(url.to_string());
        options
            .connect_timeout(Duration::from_secs(10))
            .acquire_timeout(Duration::from_secs(30))
            // sqlx logs every statement at info level otherwise, parameters included.
            .sqlx_logging(false);
        if url.contains(":memory:") || url.contains("mode=memory") {
            // Each connection to an in-memory SQLite database is a database of its own.
            options.max_connections(1).min_connections(1);
        } else {
            options.max_connections(10);
        }
        if let Some(schema) = schema {
            options.set_schema_search_path(schema.to_string());
        }
        let db = Database::connect(options).await?;
        let backend = db.get_database_backend();
        if !matches!(backend, DbBackend::Sqlite | DbBackend::Postgres) {
            return Err(crate::Error::BadRequest(
                "unsupported database: use sqlite://... or postgres://...".into(),
            ));
        }
        if backend == DbBackend::Sqlite {
            // WAL lets readers (long polls, GraphQL queries) proceed while a write commits.
            db.execute_unprepared("PRAGMA journal_mode=WAL").await?;
            db.execute_unprepared("PRAGMA foreign_keys=ON").await?;
        }
        migrations::Migrator::up(&db, None).await?;
        tracing::info!(backend = ?backend, "database ready");
        Ok(Store { db })
    }

    /// The connection pool.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// Begins a transaction that will write. On SQLite it takes the database's write lock at
    /// `BEGIN` (`BEGIN IMMEDIATE`): a deferred transaction that reads first fails at once with
    /// "database is locked" when another connection commits before its first write, whatever the
    /// busy timeout; taking the lock up front makes it wait for the busy timeout instead.
    pub async fn begin(&self) -> Result<DatabaseTransaction, DbErr> {
        self.db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await
    }

    /// Begins a transaction that changes what gateways are sent (apps, intents, snapshots,
    /// identities). Like [`Store::begin`]; on PostgreSQL it also takes the transaction-scoped
    /// advisory lock shared by every replica. (Within one process, callers also hold the
    /// control plane's write mutex.)
    pub async fn begin_write(&self) -> Result<DatabaseTransaction, DbErr> {
        let tx = self.begin().await?;
        if tx.get_database_backend() == DbBackend::Postgres {
            tx.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_advisory_xact_lock($1)",
                [WRITE_LOCK_KEY.into()],
            ))
            .await?;
        }
        Ok(tx)
    }

    /// Closes the pool.
    pub async fn close(self) -> Result<(), DbErr> {
        self.db.close().await
    }
}

/// Strings of a JSON array (other values are skipped).
pub fn json_strings(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A JSON array of strings.
pub fn strings_json<S: AsRef<str>>(items: &[S]) -> serde_json::Value {
    serde_json::Value::Array(
        items
            .iter()
            .map(|s| serde_json::Value::String(s.as_ref().to_string()))
            .collect(),
    )
}
