//! `keepd import pocketbase PB_DATA`: a keepd data dir built from a
//! PocketBase 0.23+ `pb_data`, which is only read.
//!
//! The steps: refuse a source PocketBase still has open (a lock on its
//! WAL index, below), copy `data.db` and its WAL into a private temporary
//! directory and read the copy; refuse a target that holds anything; build
//! the collections through keepd's collection validation (a collection or
//! index keepd refuses is reported and left out, not fatal); insert every
//! record of the imported base and auth collections through
//! `store::import` (ids, timestamps and password hashes kept; each value
//! validated as a write validates it; a refused record is reported); map the
//! settings through keepd's typed `Settings` (a group that doesn't validate
//! is reported and left at its default); copy the stored files of the
//! imported collections (`storage/<collectionId>/<recordId>/…`, with the
//! thumbnails PocketBase made, under the keys keepd uses too; the `.attrs`
//! metadata files of PocketBase's blob store left out) with keepd's modes.
//!
//! A live PocketBase: every SQLite connection to a WAL database holds a
//! shared POSIX lock on the "dead man switch" byte of `data.db-shm` (offset
//! 128) for as long as it is open. `F_GETLK` asks whether a write lock on
//! that byte would be refused — without taking one and without writing —
//! so a `-shm` with a reader means PocketBase (or anything else) still has
//! the database open.
//!
//! `--dry-run` does all of it in the temporary directory and removes it:
//! the report is the one a real run gives, and the target is not touched.

use crate::config::Config;
use crate::schema::{Collection, CollectionType};
use crate::settings::Settings;
use crate::store::import as src;
use crate::store::Store;
use serde_json::{Map, Value};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Records read and written at a time.
const BATCH: usize = 500;

/// What an import did (or, dry, would do).
#[derive(Default, Debug)]
pub struct Report {
    pub collections: Vec<String>,
    /// (collection, records imported, records in the source)
    pub records: Vec<(String, usize, usize)>,
    pub files: usize,
    pub file_bytes: u64,
    pub settings: Vec<String>,
    /// Everything not mapped, and why.
    pub not_imported: Vec<String>,
}

impl Report {
    pub fn render(&self, dry_run: bool) -> String {
        let mut s = String::new();
        let verb = if dry_run { "would import" } else { "imported" };
        let _ = writeln!(s, "{verb} {} collection(s):", self.collections.len());
        for c in &self.collections {
            let n = self.records.iter().find(|r| &r.0 == c);
            match n {
                Some((_, done, of)) => {
                    let _ = writeln!(s, "  {c}: {done} of {of} record(s)");
                }
                None => {
                    let _ = writeln!(s, "  {c}: view (no records)");
                }
            }
        }
        let _ = writeln!(
            s,
            "{verb} {} stored file(s), {} byte(s)",
            self.files, self.file_bytes
        );
        if self.settings.is_empty() {
            let _ = writeln!(s, "settings: none imported");
        } else {
            let _ = writeln!(s, "settings: {}", self.settings.join(", "));
        }
        if self.not_imported.is_empty() {
            let _ = writeln!(s, "not imported: nothing");
        } else {
            let _ = writeln!(s, "not imported ({}):", self.not_imported.len());
            for n in &self.not_imported {
                let _ = writeln!(s, "  - {n}");
            }
        }
        s
    }
}

/// Whether any process holds a lock on the WAL index's dead-man-switch
/// byte of `db` (the database is open somewhere).
fn in_use(db: &Path) -> anyhow::Result<bool> {
    use rustix::process::{fcntl_getlk, Flock, FlockOffsetType, FlockType};
    let shm = PathBuf::from(format!("{}-shm", db.display()));
    let f = match std::fs::File::open(&shm) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => anyhow::bail!("reading {}: {e}", shm.display()),
    };
    // SQLite's unix VFS: the WAL-index locks are bytes 120..128, the
    // dead-man switch byte 128.
    let probe = Flock {
        start: 120,
        length: 9,
        pid: None,
        typ: FlockType::WriteLock,
        offset_type: FlockOffsetType::Set,
    };
    Ok(fcntl_getlk(&f, &probe)
        .map_err(|e| anyhow::anyhow!("checking the locks of {}: {e}", shm.display()))?
        .is_some())
}

/// A private temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> anyhow::Result<Scratch> {
        use std::os::unix::fs::DirBuilderExt;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!("keepd-import-{}-{nanos}", std::process::id()));
        std::fs::DirBuilder::new().mode(0o700).create(&p)?;
        Ok(Scratch(p))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Copies `from` to `to` (0600), synced.
fn copy_private(from: &Path, to: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut r = std::fs::File::open(from)?;
    let mut w = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)?;
    let n = std::io::copy(&mut r, &mut w)?;
    w.sync_all()?;
    Ok(n)
}

/// Refuses a target that holds anything; `Ok(true)` when it must be made.
fn check_target(dir: &Path) -> anyhow::Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut it) => {
            if it.next().is_some() {
                anyhow::bail!(
                    "{} already holds data: import only into a new or empty directory",
                    dir.display()
                );
            }
            Ok(false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => anyhow::bail!("reading {}: {e}", dir.display()),
    }
}

/// Runs the import of `pb_data` into `cfg.dir` (or, with `dry_run`, into a
/// temporary directory removed after).
pub async fn run(cfg: &Config, pb_data: &Path, dry_run: bool) -> anyhow::Result<Report> {
    let db = pb_data.join("data.db");
    if !pb_data.is_dir() || !db.is_file() {
        anyhow::bail!(
            "{} is not a PocketBase data directory (no data.db)",
            pb_data.display()
        );
    }
    for name in ["data.db", "auxiliary.db"] {
        if in_use(&pb_data.join(name))? {
            anyhow::bail!(
                "{} is open in another process (PocketBase still running?): stop it first",
                pb_data.join(name).display()
            );
        }
    }
    let target_new = check_target(&cfg.dir)?;
    let scratch = Scratch::new()?;
    let copy = scratch.0.join("source.db");
    copy_private(&db, &copy)?;
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    if wal.is_file() {
        copy_private(&wal, &scratch.0.join("source.db-wal"))?;
    }
    let source = src::open_source(&copy)
        .map_err(|e| anyhow::anyhow!("{}: can't read this database: {e}", db.display()))?;
    match src::source_format(&source)
        .map_err(|e| anyhow::anyhow!("{}: can't read this database: {e}", db.display()))?
    {
        src::SourceFormat::PocketBase => {}
        src::SourceFormat::OldPocketBase => anyhow::bail!(
            "{} was written by PocketBase before 0.23: upgrade it with PocketBase 0.23 or later first",
            db.display()
        ),
        src::SourceFormat::Keepd => anyhow::bail!(
            "{} is a keepd database, not PocketBase's",
            db.display()
        ),
        src::SourceFormat::Other => anyhow::bail!(
            "{} is not a PocketBase database (no _collections table)",
            pb_data.display()
        ),
    }

    // On PostgreSQL the schema must hold nothing yet (a dry run builds in
    // a scratch SQLite store instead, and writes nothing there).
    let postgres = cfg.database_url().map_err(anyhow::Error::msg)?.is_some();
    if postgres && !dry_run && !crate::store::database_is_empty(cfg)? {
        anyhow::bail!(
            "the PostgreSQL schema {} already holds data: import only into an empty schema",
            cfg.database_schema
        );
    }
    let mut cfg = cfg.clone();
    if dry_run {
        cfg.dir = scratch.0.join("target");
    }
    if target_new || dry_run {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&cfg.dir)?;
    }
    let result = build(&cfg, pb_data, &source, postgres && !dry_run).await;
    if result.is_err() && postgres && !dry_run {
        // The schema was empty: it is again.
        if let Err(e) = crate::store::empty_database(&cfg) {
            tracing::warn!(error = %e, "emptying the PostgreSQL schema after a failed import");
        }
    }
    if result.is_err() && !dry_run {
        // Nothing half-built is left behind: the directory was empty.
        if let Ok(entries) = std::fs::read_dir(&cfg.dir) {
            for e in entries.flatten() {
                let p = e.path();
                let _ = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
            }
        }
        if target_new {
            let _ = std::fs::remove_dir(&cfg.dir);
        }
    }
    result
}

async fn build(
    cfg: &Config,
    pb_data: &Path,
    source: &crate::store::Conn,
    postgres: bool,
) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let store = if postgres {
        crate::open_store(cfg)?
    } else {
        crate::open_sqlite_store(cfg)?
    };
    let res = build_in(cfg, &store, pb_data, source, &mut report).await;
    store
        .close()
        .await
        .map_err(|e| anyhow::anyhow!("closing the store: {}", e.to_body()))?;
    res.map(|()| report)
}

fn api_err(e: crate::error::ApiError) -> anyhow::Error {
    anyhow::anyhow!("{}", e.to_body())
}

/// The collections keepd accepts, built: refused indexes are dropped one
/// by one, then refused collections (each reported with PocketBase's
/// message), until the rest validates.
fn plan_collections(
    schema: &crate::schema::Schema,
    source: &[src::SourceCollection],
    report: &mut Report,
) -> crate::api::collections::Planned {
    let mut list: Vec<Value> = source.iter().map(|c| c.json.clone()).collect();
    loop {
        let (planned, errs) = crate::api::collections::plan_import(schema, &list);
        let Some((first, msg)) = errs.iter().next() else {
            return planned;
        };
        let i: usize = first.parse().unwrap_or(0);
        let msg = msg.as_str().unwrap_or_default().replace('\n', " ");
        let name = list[i]["name"].as_str().unwrap_or_default().to_string();
        // Try it without each of its indexes in turn.
        let indexes: Vec<Value> = list[i]["indexes"].as_array().cloned().unwrap_or_default();
        let mut fixed = false;
        for (k, idx) in indexes.iter().enumerate() {
            let mut trial = list.clone();
            let mut rest = indexes.clone();
            rest.remove(k);
            trial[i]["indexes"] = Value::Array(rest);
            let (_, e) = crate::api::collections::plan_import(schema, &trial);
            if !e.contains_key(first) {
                report.not_imported.push(format!(
                    "index of {name} {}: keepd refuses it ({msg})",
                    idx.as_str().unwrap_or_default()
                ));
                list = trial;
                fixed = true;
                break;
            }
        }
        if !fixed {
            report
                .not_imported
                .push(format!("collection {name} and its records: {msg}"));
            list.remove(i);
        }
    }
}

async fn build_in(
    cfg: &Config,
    store: &Arc<Store>,
    pb_data: &Path,
    source: &crate::store::Conn,
    report: &mut Report,
) -> anyhow::Result<()> {
    // Collections.
    let pb_collections = src::source_collections(source)?;
    let schema = store.schema();
    let mut planned = plan_collections(&schema, &pb_collections, report);
    for (_, c) in planned.iter_mut() {
        if let Some(s) = pb_collections
            .iter()
            .find(|s| s.json["id"] == c.id.as_str())
        {
            c.created = s.created.clone();
            c.updated = s.updated.clone();
        }
    }
    // A view whose query keepd refuses (a system table, a password hash…)
    // is reported, not imported.
    loop {
        let after = crate::api::collections::staged_schema(&schema, &planned, &[]);
        let refused = planned.iter().position(|(_, c)| {
            c.kind == CollectionType::View
                && crate::schema::view::plan(
                    c.options
                        .get("viewQuery")
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or_default(),
                    &after,
                    &c.name,
                )
                .is_err()
        });
        let Some(i) = refused else { break };
        let (_, c) = planned.remove(i);
        let why = crate::schema::view::plan(
            c.options
                .get("viewQuery")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default(),
            &after,
            &c.name,
        )
        .err()
        .unwrap_or_default();
        report
            .not_imported
            .push(format!("view collection {}: {why}", c.name));
    }
    let names: Vec<String> = planned.iter().map(|(_, c)| c.name.clone()).collect();
    let after = crate::api::collections::staged_schema(&schema, &planned, &[]);
    store
        .write(move |conn| {
            for (old, new) in &planned {
                match old {
                    None => crate::store::catalog::create(conn, new)?,
                    Some(o) => crate::store::catalog::update(conn, o, new)?,
                }
            }
            let views: Vec<&Collection> = planned
                .iter()
                .map(|(_, c)| c)
                .filter(|c| c.kind == CollectionType::View)
                .collect();
            crate::store::catalog::make_views(conn, &after, &views)?;
            Ok(())
        })
        .await
        .map_err(api_err)?;
    store.reload_schema().await.map_err(api_err)?;
    report.collections = names.clone();

    // Records, collection by collection.
    let schema = store.schema();
    let imported: Vec<Arc<Collection>> = names
        .iter()
        .filter_map(|n| schema.get(n).cloned())
        .collect();
    for coll in &imported {
        if coll.kind == CollectionType::View {
            continue;
        }
        let total = src::source_count(source, &coll.name)? as usize;
        let mut done = 0usize;
        let mut refused: Vec<(String, String)> = Vec::new();
        src::source_records(source, coll, BATCH, |rows| {
            let c = coll.clone();
            let n = rows.len();
            let r = futures_block(
                store.write(move |conn| crate::store::import::insert_imported(conn, &c, &rows)),
            )
            .map_err(api_err)?;
            done += n - r.len();
            refused.extend(r);
            Ok(())
        })?;
        for (id, why) in refused {
            report
                .not_imported
                .push(format!("record {}/{id}: {why}", coll.name));
        }
        report.records.push((coll.name.clone(), done, total));
    }

    // Settings.
    let lockout = crate::auth::lockout::Policy {
        max_failures: cfg.lockout_max_failures,
        window: cfg.lockout_window_secs,
        base: cfg.lockout_base_secs,
        max: cfg.lockout_max_secs,
    };
    let mut settings = Settings::load(None, lockout.into());
    match src::source_settings(source)? {
        Err(why) => report.not_imported.push(format!("settings: {why}")),
        Ok(None) => {}
        Ok(Some(Value::Object(pb))) => {
            let known = settings.to_json();
            let mut groups: Vec<&String> = pb.keys().collect();
            groups.sort();
            for g in groups {
                if known.get(g).is_none() {
                    report
                        .not_imported
                        .push(format!("settings.{g}: keepd has no such setting"));
                    continue;
                }
                let mut patch = Map::new();
                patch.insert(g.clone(), pb[g].clone());
                match settings.patched(&patch) {
                    Ok(s) => {
                        settings = s;
                        report.settings.push(g.clone());
                    }
                    Err(e) => report.not_imported.push(format!(
                        "settings.{g}: keepd refuses it ({}); its default applies",
                        e.to_body()
                    )),
                }
            }
            let v = settings.to_json();
            store
                .write(move |conn| {
                    crate::store::params::put(conn, crate::store::params::Key::Settings, &v)
                })
                .await
                .map_err(api_err)?;
        }
        Ok(Some(_)) => {}
    }
    if settings.s3.enabled {
        report.not_imported.push(
            "stored files: PocketBase keeps them in S3 (settings.s3); they stay in the bucket, which keepd reads with the same settings".into(),
        );
    }

    // Stored files.
    let storage = pb_data.join("storage");
    for coll in &imported {
        let from = storage.join(&coll.id);
        if coll.has_file_fields() && from.is_dir() {
            let to = store.dir().join("storage").join(&coll.id);
            copy_tree(&from, &to, report)?;
        }
    }
    Ok(())
}

/// Runs a store future to completion from inside a synchronous callback
/// (the source is read on this thread; the writer runs on its own).
fn futures_block<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

/// Copies a stored-files tree: directories 0700, files 0600, synced;
/// links refused. PocketBase's thumbnails (`thumbs_<name>/<size>_<name>`,
/// the keys keepd uses too) come along: served as they were, not remade.
fn copy_tree(from: &Path, to: &Path, report: &mut Report) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(to)?;
    let mut entries: Vec<_> = std::fs::read_dir(from)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let ty = e.file_type()?;
        let dest = to.join(&name);
        if ty.is_symlink() {
            report.not_imported.push(format!(
                "{}: a symbolic link (keepd stores no links)",
                e.path().display()
            ));
        } else if ty.is_dir() {
            copy_tree(&e.path(), &dest, report)?;
        } else if ty.is_file() {
            // PocketBase's blob store keeps each file's metadata beside it
            // (`<name>.attrs`); keepd sniffs the type when serving.
            if name.to_string_lossy().ends_with(".attrs") {
                continue;
            }
            report.file_bytes += copy_private(&e.path(), &dest)?;
            report.files += 1;
        }
    }
    std::fs::File::open(to)?.sync_all()?;
    Ok(())
}
