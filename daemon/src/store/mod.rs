//! SQLite storage: one writer thread with group commit, a pool of read-only
//! readers, migrations, and the in-memory schema snapshot.
//!
//! Invariants:
//! - Only the writer thread writes. A write's result is sent to its caller
//!   only after the batch holding it has committed (`synchronous=FULL`).
//! - No connection is held across an `.await`.
//! - SQLite-specific SQL lives in `sqlite` (its `dialect` and the engine's
//!   statements); nothing else in the crate spells it, and nothing outside
//!   `sqlite` names `rusqlite`: the store's modules run their statements
//!   through `Conn`'s statement API (the unit test `seam` checks both).

pub mod audit;
pub mod auth_origins;
pub mod changes;
mod consistent;
mod ddl;
pub mod engine;
pub mod export;
pub mod external_auths;
pub mod health;
pub mod import;
pub mod key;
mod lock;
pub mod lookup;
mod marks;
pub mod mfas;
mod migrate;
pub mod otps;
pub mod params;
pub mod postgres;
mod readers;
pub mod records;
#[cfg(test)]
mod seam;
mod snapshot;
mod sqlite;
pub mod sync;
pub mod totp;
pub mod value;
mod writer;

pub use sqlite::dialect;
use sqlite::{open, rekey};

pub use changes::{Action, Capture, Captured, Change, ChangeSink, Changes, Prepared, Tag};
pub use consistent::read_consistent;
pub use key::{DbKey, KeyError};
pub use lock::DirLock;
pub use marks::{mark, Mark};
pub(crate) use migrate::load_schema;
pub use open::{
    check_modes, fix_modes, foreign_key_problems, integrity_check, open_read_only, ModeFault,
    ModeProblem,
};
pub use rekey::{rekey, Rekeyed};
pub use snapshot::{database_is_empty, empty_database, export_refusal, file_snapshot, load_export};
pub use sqlite::{snapshot, uncached, Conn, Row, Sql};
pub(crate) use value::args;
pub use value::{Column, Param, Params, SqlRef, SqlValue};
pub use writer::{WriteOutcome, WriterSnapshot};

use crate::error::{ApiError, ApiResult};
use crate::schema::Schema;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

/// Options the store needs from the configuration.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub readers: usize,
    /// Most writes committed together in one transaction.
    pub max_batch: usize,
    /// The database key (None: a plaintext database).
    pub key: Option<DbKey>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            readers: 4,
            max_batch: 256,
            key: None,
        }
    }
}

/// How long a write on PostgreSQL waits for this process's change log
/// follower to hand its changes on before it is answered anyway (the
/// follower is reconnecting).
#[cfg(feature = "postgres")]
const HAND_ON_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

pub struct Store {
    dir: PathBuf,
    writer: writer::Writer,
    readers: readers::Readers,
    local: readers::Local,
    schema: RwLock<Arc<Schema>>,
    /// Where committed record changes go (the realtime broker), once set.
    sink: OnceLock<Arc<dyn ChangeSink>>,
    /// What sees record changes inside their transaction (sync), once set.
    capture: OnceLock<Arc<dyn Capture>>,
    key: Option<DbKey>,
    /// Whether writes reach the disk (the writer's last failure).
    health: Arc<health::Health>,
    /// Bumped after every COMMIT that changed rows, a schema reload and a
    /// settings change: what was read under an older value may be stale
    /// (the list cache, `records::cache`).
    generation: Arc<AtomicU64>,
    /// A connection that only asks SQLite whether another connection —
    /// another process too (`keepd superuser upsert` while serving) —
    /// committed since it last asked, and the answer it last got.
    watch: Mutex<(Conn, i64)>,
    /// Record changes go to the database's change log, which every process
    /// follows (PostgreSQL), instead of to the sink after COMMIT.
    log_changes: bool,
    /// How far into the change log this process's follower has handed
    /// changes on to the sink (PostgreSQL): a write that logged changes is
    /// answered once they are past it, as on SQLite, where they reach the
    /// sink before the caller is answered.
    #[cfg(feature = "postgres")]
    handed_on: tokio::sync::watch::Sender<i64>,
    /// Where the change log's marks go (`marks`).
    marks: tokio::sync::broadcast::Sender<Mark>,
    /// The data dir's shared lock (keeps `keepd rekey` out).
    _lock: DirLock,
}

impl Store {
    /// Opens (creating if needed) the database in `dir`, applies migrations
    /// and loads the schema.
    pub fn open(dir: &Path, opts: &StoreOptions) -> anyhow::Result<Arc<Store>> {
        let lock = DirLock::shared(dir)?;
        let db_path = dir.join("data.db");
        let key = opts.key.as_ref();
        let conn = open::open_writer(&db_path, key)?;
        migrate::run(&conn)?;
        let schema = migrate::load_schema(&conn)?;
        let readers = readers::Readers::open(&db_path, opts.readers.max(1), key);
        let watch = open::open_watch(&db_path, key)?;
        let seen = sqlite::data_version(&watch)?;
        let checkpoints = sqlite::wal::Checkpoints::start(&conn, &db_path, key)?;
        let store = Store::assemble(
            dir,
            lock,
            opts,
            (conn, Some(checkpoints)),
            schema,
            readers,
            (watch, seen),
            0,
        )?;
        open::tighten_files(dir)?;
        Ok(store)
    }

    /// The store around its opened parts: the writer started on `conn`
    /// (with what asks for its WAL's checkpoints, on SQLite),
    /// record changes logged when the engine follows a change log
    /// (PostgreSQL) — `log_from` is where its follower starts.
    #[allow(clippy::too_many_arguments)]
    fn assemble(
        dir: &Path,
        lock: DirLock,
        opts: &StoreOptions,
        (conn, checkpoints): (Conn, Option<sqlite::wal::Checkpoints>),
        schema: Schema,
        readers: readers::Readers,
        watch: (Conn, i64),
        #[cfg_attr(not(feature = "postgres"), allow(unused_variables))] log_from: i64,
    ) -> anyhow::Result<Arc<Store>> {
        let log_changes = conn.is_postgres();
        let local = readers::Local::new(&readers);
        let health = Arc::new(health::Health::default());
        let generation = Arc::new(AtomicU64::new(1));
        let writer = writer::Writer::start(
            conn,
            opts.max_batch.max(1),
            health.clone(),
            generation.clone(),
            checkpoints,
        )?;
        Ok(Arc::new(Store {
            dir: dir.to_path_buf(),
            writer,
            readers,
            local,
            schema: RwLock::new(Arc::new(schema)),
            sink: OnceLock::new(),
            capture: OnceLock::new(),
            key: if log_changes { None } else { opts.key.clone() },
            health,
            generation,
            watch: Mutex::new(watch),
            log_changes,
            #[cfg(feature = "postgres")]
            handed_on: tokio::sync::watch::Sender::new(log_from),
            marks: tokio::sync::broadcast::Sender::new(64),
            _lock: lock,
        }))
    }

    /// Opens the store on PostgreSQL (feature `postgres`): the schema's
    /// tables made or brought up to date by the migrations, the writer and
    /// the readers on sessions of `pool`. Files stay in `dir`. Refused when
    /// `synchronous_commit` is `off` (a write is answered after its COMMIT,
    /// which must be durable then).
    #[cfg(feature = "postgres")]
    pub fn open_postgres(
        dir: &Path,
        opts: &StoreOptions,
        pool: Arc<self::postgres::pool::Pool>,
    ) -> anyhow::Result<Arc<Store>> {
        use self::postgres::store::{off_runtime, session};
        let lock = DirLock::shared(dir)?;
        let conn = session(&pool, false)?;
        off_runtime(|| -> anyhow::Result<()> {
            let sync =
                self::postgres::ddl::synchronous_commit(&conn).map_err(anyhow::Error::msg)?;
            if sync == "off" {
                anyhow::bail!(
                    "the server's synchronous_commit is off: a write keepd answers could be lost in a crash; \
                     set it to on (or remote_apply/remote_write/local) for the role or the database"
                );
            }
            migrate::run(&conn)
        })?;
        // The change log, before the writer's first BEGIN (which locks it).
        let last = off_runtime(|| self::postgres::changelog::prepare(&conn))
            .map_err(|e| anyhow::anyhow!("the change log: {e}"))?;
        let schema = off_runtime(|| migrate::load_schema(&conn))?;
        let readers = readers::Readers::from_source(
            readers::Source::Postgres(pool.clone()),
            opts.readers.max(1),
        )?;
        let watch = self::postgres::store::reader(&pool)?;
        let seen = off_runtime(|| self::postgres::ddl::data_version(&watch))
            .map_err(anyhow::Error::msg)?;
        let store = Store::assemble(
            dir,
            lock,
            opts,
            (conn, None),
            schema,
            readers,
            (watch, seen),
            last,
        )?;
        self::postgres::changelog::follow(pool, Arc::downgrade(&store), last)?;
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The database key (None: plaintext), for connections opened outside
    /// the store (backups).
    pub fn key(&self) -> Option<&DbKey> {
        self.key.as_ref()
    }

    /// The current schema snapshot.
    pub fn schema(&self) -> Arc<Schema> {
        match self.schema.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn set_schema(&self, s: Schema) {
        let mut g = match self.schema.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *g = Arc::new(s);
        drop(g);
        // After the swap: a reader that sees the new generation gets the
        // new schema.
        self.changed();
    }

    /// The data generation. Read it before reading anything an answer
    /// kept under it depends on. A commit by another connection (another
    /// process: the writer's own commits bump it already) is noticed here
    /// and makes a new generation; so does any doubt (an error asking).
    pub fn generation(&self) -> u64 {
        let unchanged = match self.watch.lock() {
            Ok(mut w) => match data_version(&w.0) {
                Ok(v) if v == w.1 => true,
                Ok(v) => {
                    w.1 = v;
                    false
                }
                Err(_) => false,
            },
            Err(_) => false,
        };
        if !unchanged {
            self.changed();
        }
        self.generation.load(Ordering::SeqCst)
    }

    /// Something answers depend on changed outside a record write (the
    /// settings held in memory): a new generation.
    pub fn changed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Reloads the schema from the database (after a collection change).
    pub async fn reload_schema(&self) -> ApiResult<()> {
        let s = self
            .read(|c| migrate::load_schema(c).map_err(ApiError::internal))
            .await?;
        self.set_schema(s);
        // The other processes on the schema load theirs again too.
        #[cfg(feature = "postgres")]
        if self.log_changes {
            self.write(self::postgres::changelog::schema_changed)
                .await?;
        }
        Ok(())
    }

    /// Runs `f` at once on this thread's own read-only connection, without
    /// the hand-off to a blocking thread. Only for reads whose cost is
    /// bounded and small (a row by primary key): it runs on an async worker.
    pub fn read_now<T>(&self, f: impl FnOnce(&Conn) -> ApiResult<T>) -> ApiResult<T> {
        self.local.run(f)
    }

    /// Runs `f` on a read-only connection.
    pub async fn read<T, F>(&self, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Conn) -> ApiResult<T> + Send + 'static,
    {
        self.readers.run(f).await
    }

    /// Runs `f` inside the writer's transaction; answers after commit.
    pub async fn write<T, F>(&self, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Conn) -> ApiResult<T> + Send + 'static,
    {
        self.writer.run(f).await
    }

    /// Registers where committed record changes go (once; later calls are
    /// ignored).
    pub fn set_change_sink(&self, sink: Arc<dyn ChangeSink>) {
        let _ = self.sink.set(sink);
    }

    /// Registers what sees record changes inside their transaction (once;
    /// later calls are ignored).
    pub fn set_capture(&self, capture: Arc<dyn Capture>) {
        let _ = self.capture.set(capture);
    }

    /// Like `write`, for writes that change records: `f` records them in
    /// `Changes`, which the capture sees inside the transaction and which
    /// are handed to the change sink after COMMIT (on the writer thread, in
    /// commit order, before the caller is answered). On PostgreSQL they go
    /// to the change log instead, and the caller is answered once this
    /// process's follower has handed them on to the sink: a realtime
    /// subscription made after the answer does not get them.
    pub async fn write_changes<T, F>(&self, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Conn, &mut Changes) -> ApiResult<T> + Send + 'static,
    {
        let sink = self.sink.get().cloned();
        let capture = self.capture.get().cloned();
        let log = self.log_changes;
        let (v, _, logged) = self
            .writer
            .run_then(
                move |c| {
                    let mut changes = Changes::new(sink, capture);
                    if log {
                        changes = changes.logging();
                    }
                    let v = f(c, &mut changes)?;
                    #[allow(unused_mut)]
                    let mut logged = 0i64;
                    #[cfg(feature = "postgres")]
                    if log {
                        logged = self::postgres::changelog::append(c, &changes.take_logged())?;
                    }
                    Ok((v, changes, logged))
                },
                |(_, changes, _): &mut (T, Changes, i64)| changes.publish(),
            )
            .await?;
        #[cfg(feature = "postgres")]
        if logged > 0 {
            self.handed_on_past(logged).await;
        }
        let _ = logged;
        Ok(v)
    }

    /// Waits (at most [`HAND_ON_WAIT`]) until this process's change log
    /// follower has handed on the change at `seq` (committed).
    #[cfg(feature = "postgres")]
    async fn handed_on_past(&self, seq: i64) {
        let mut rx = self.handed_on.subscribe();
        let waited = tokio::time::timeout(HAND_ON_WAIT, rx.wait_for(|s| *s >= seq)).await;
        if waited.is_err() {
            tracing::warn!(
                seq,
                "change log: the follower has not handed the write's changes on yet; answering anyway"
            );
        }
    }

    /// SQLite's `quick_check` on a reader: "ok", or what is damaged.
    pub async fn quick_check(&self) -> ApiResult<String> {
        self.read(|c| {
            if c.is_postgres() {
                // The server checks its own pages; a round trip is the check.
                c.one("SELECT 'ok'", (), |r| r.get::<String>(0))?;
                return Ok("ok".into());
            }
            Ok(sqlite::quick_check(c)?)
        })
        .await
    }

    /// At a clean stop, after the last request: commits what is queued,
    /// checkpoints the WAL into `data.db` (TRUNCATE) and stops the writer,
    /// so that a copy of `data.db` alone holds every committed write.
    pub async fn close(&self) -> ApiResult<()> {
        self.writer.close().await
    }

    /// What the writer did since start: commits (one fsync each), writes,
    /// group sizes, time running writes and committing.
    pub fn writer_stats(&self) -> WriterSnapshot {
        self.writer.stats()
    }

    /// A round trip through the writer (for health and the watchdog).
    pub async fn probe(&self) -> ApiResult<()> {
        self.write(|c| {
            c.one("SELECT 1", (), |_| Ok(()))?;
            Ok(())
        })
        .await
    }

    /// A write that reaches the disk and leaves nothing: a row added to
    /// and removed from `_keepd_migrations` in one transaction (its pages
    /// are still written to the WAL and synced). While writes are failing,
    /// this is how the monitor learns that the disk takes them again.
    pub async fn probe_write(&self) -> ApiResult<()> {
        self.write(|c| {
            c.exec(
                "INSERT INTO _keepd_migrations (version, name, applied) VALUES (-1, 'write probe', '')",
                (),
            )?;
            c.exec("DELETE FROM _keepd_migrations WHERE version = -1", ())?;
            Ok(())
        })
        .await
    }

    /// The last write failure not followed by a commit (disk full, I/O
    /// error, read-only), if any.
    pub fn write_failure(&self) -> Option<health::WriteFailure> {
        self.health.failure()
    }
}

/// The engine's count that moves when another connection commits
/// (SQLite's `data_version`; PostgreSQL's WAL insert position).
fn data_version(c: &Conn) -> ApiResult<i64> {
    #[cfg(feature = "postgres")]
    if c.is_postgres() {
        return self::postgres::store::off_runtime(|| self::postgres::ddl::data_version(c));
    }
    Ok(sqlite::data_version(c)?)
}

/// Whether the database has a table called `name`.
fn table_exists(c: &Conn, name: &str) -> ApiResult<bool> {
    #[cfg(feature = "postgres")]
    if c.is_postgres() {
        return self::postgres::ddl::table_exists(c, name);
    }
    Ok(sqlite::table_exists(c, name)?)
}

/// What the engine needs before the first table (PostgreSQL: the
/// case-insensitive collation).
fn before_tables(c: &Conn) -> ApiResult<()> {
    #[cfg(feature = "postgres")]
    if c.is_postgres() {
        return c.script(self::postgres::ddl::BEFORE_TABLES);
    }
    let _ = c;
    Ok(())
}

/// `table` read in insertion order (`dialect::INSERTION_ORDER`): SQLite's
/// implicit `rowid`, a column of that name on PostgreSQL.
/// (A collection's table too: `@rowid` sorts by it.)
pub(crate) fn keep_insertion_order(c: &Conn, table: &str) -> ApiResult<()> {
    #[cfg(feature = "postgres")]
    if c.is_postgres() {
        debug_assert!(dialect::Ident::new(table).is_some(), "table {table:?}");
        return c.script(
            &self::postgres::ddl::INSERTION_ORDER_COLUMN
                .replace("{table}", &dialect::quote_ident(table)),
        );
    }
    let _ = (c, table);
    Ok(())
}

/// `col < now - ?days` in the engine's words (`col` PocketBase's
/// timestamp text; the number of days the bound value).
fn older_than_days(c: &Conn, col: &'static str) -> String {
    #[cfg(feature = "postgres")]
    if c.is_postgres() {
        return self::postgres::ddl::older_than_days(col);
    }
    let _ = c;
    dialect::older_than_days(col)
}

/// The audit log's append-only triggers, in the engine's language.
fn audit_triggers(c: &Conn) -> ApiResult<()> {
    #[cfg(feature = "postgres")]
    if c.is_postgres() {
        return c.script(self::postgres::ddl::AUDIT_TRIGGERS);
    }
    c.script(sqlite::AUDIT_TRIGGERS)
}

/// Opens a savepoint `name` inside the writer's transaction: what follows
/// until `release` or `roll_back_to` can be undone alone.
pub fn savepoint(c: &Conn, name: &'static str) -> ApiResult<()> {
    debug_assert!(dialect::Ident::new(name).is_some(), "savepoint {name:?}");
    c.script(&format!("SAVEPOINT {name}"))
}

/// Keeps what was done since `savepoint(name)` (in the enclosing
/// transaction).
pub fn release(c: &Conn, name: &'static str) -> ApiResult<()> {
    c.script(&format!("RELEASE {name}"))
}

/// Undoes what was done since `savepoint(name)` and ends the savepoint.
pub fn roll_back_to(c: &Conn, name: &'static str) -> ApiResult<()> {
    c.script(&format!("ROLLBACK TO {name}; RELEASE {name}"))
}

/// Collection definitions: rows in `_collections` plus their tables.
pub mod catalog {
    use super::{ddl, migrate};
    use crate::error::ApiResult;
    use crate::schema::Collection;
    use crate::store::Conn as Connection;

    pub use super::ddl::{prepare_view, sample_view, ViewSql};

    pub fn create(conn: &Connection, c: &Collection) -> ApiResult<()> {
        migrate::insert_collection(conn, c)?;
        ddl::create_table(conn, c)?;
        Ok(())
    }

    /// A view collection: its row and its SQLite view (from `prepare_view`).
    pub fn create_view(conn: &Connection, c: &Collection, sql: &str) -> ApiResult<()> {
        migrate::insert_collection(conn, c)?;
        ddl::create_view(conn, &c.name, sql)?;
        Ok(())
    }

    /// A view collection changed: its row, its SQLite view made again.
    pub fn update_view(
        conn: &Connection,
        old: &Collection,
        new: &Collection,
        sql: &str,
    ) -> ApiResult<()> {
        migrate::update_collection(conn, new)?;
        ddl::drop_view(conn, &old.name)?;
        ddl::create_view(conn, &new.name, sql)?;
        Ok(())
    }

    pub fn update(conn: &Connection, old: &Collection, new: &Collection) -> ApiResult<()> {
        migrate::update_collection(conn, new)?;
        ddl::sync_table(conn, old, new)?;
        Ok(())
    }

    /// The SQLite views of imported view collections, made after every
    /// table exists (a view reading another view waits for it): each query
    /// checked and rendered against `schema`, the collections as they will
    /// be. `Err` names the first view whose query can't be made.
    pub fn make_views(
        conn: &Connection,
        schema: &crate::schema::Schema,
        views: &[&Collection],
    ) -> ApiResult<()> {
        let mut pending: Vec<&Collection> = views.to_vec();
        let mut last = String::new();
        let mut schema = schema.clone();
        while !pending.is_empty() {
            let before = pending.len();
            let mut left = Vec::new();
            for c in pending {
                let query = c
                    .options
                    .get("viewQuery")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default();
                ddl::drop_view(conn, &c.name)?;
                match ddl::prepare_view(conn, &schema, &c.name, query) {
                    Ok(v) => {
                        ddl::create_view(conn, &c.name, &v.sql)?;
                        // The fields inferred from the query, as on a save.
                        let mut with = c.clone();
                        with.fields = v
                            .fields
                            .into_iter()
                            .filter_map(|f| serde_json::from_value(f).ok())
                            .collect();
                        migrate::update_collection(conn, &with)?;
                        // A view reading this one sees its columns.
                        schema = crate::schema::Schema::new(
                            schema
                                .all()
                                .iter()
                                .map(|x| {
                                    if x.id == with.id {
                                        with.clone()
                                    } else {
                                        (**x).clone()
                                    }
                                })
                                .collect(),
                        );
                    }
                    Err(e) => {
                        last = format!("Failed to create the view {}: {e}", c.name);
                        left.push(c);
                    }
                }
            }
            if left.len() == before {
                return Err(crate::error::ApiError::bad(last));
            }
            pending = left;
        }
        Ok(())
    }

    pub fn delete(conn: &Connection, c: &Collection) -> ApiResult<()> {
        conn.exec("DELETE FROM _collections WHERE id = ?1", [&c.id])?;
        if c.kind == crate::schema::CollectionType::View {
            ddl::drop_view(conn, &c.name)?;
        }
        ddl::drop_table(conn, c)?;
        Ok(())
    }
}
