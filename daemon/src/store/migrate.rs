//! Versioned migrations, applied at start inside one transaction each, and
//! the collection rows ↔ `Collection` mapping.

use super::ddl;
use super::{args, uncached, Conn as Connection};
use crate::error::ApiResult;
use crate::schema::{Collection, CollectionType, Schema};
use crate::util::{now_string, random_string, ALPHANUM};
use serde_json::Value;

struct Migration {
    version: i64,
    name: &'static str,
    up: fn(&Connection) -> anyhow::Result<()>,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init: system tables and default collections",
        up: init,
    },
    Migration {
        version: 3,
        name: "audit log (append-only)",
        up: audit_log,
    },
    Migration {
        version: 4,
        name: "TOTP second factor",
        up: totp,
    },
    // Numbered apart from the others so that migrations added meanwhile on
    // other lines of work don't collide with it.
    Migration {
        version: 20,
        name: "sync: state, clocks, outbox, hub log, devices, conflicts, rejected changes",
        up: sync_tables,
    },
];

fn sync_tables(conn: &Connection) -> anyhow::Result<()> {
    conn.script(super::sync::DDL)?;
    Ok(())
}

fn totp(conn: &Connection) -> anyhow::Result<()> {
    conn.script(
        "CREATE TABLE IF NOT EXISTS _keepd_totp (
            collectionRef TEXT NOT NULL,
            recordRef     TEXT NOT NULL,
            secret        TEXT NOT NULL,
            confirmed     INTEGER NOT NULL DEFAULT 0,
            lastStep      INTEGER NOT NULL DEFAULT 0,
            recovery      JSON NOT NULL DEFAULT '[]',
            created       TEXT NOT NULL DEFAULT '',
            updated       TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (collectionRef, recordRef)
        );",
    )?;
    Ok(())
}

fn audit_log(conn: &Connection) -> anyhow::Result<()> {
    conn.script(super::audit::DDL)?;
    super::audit_triggers(conn)?;
    super::keep_insertion_order(conn, "_keepd_audit")?;
    Ok(())
}

pub(crate) fn run(conn: &Connection) -> anyhow::Result<()> {
    run_in(conn, false)
}

/// The newest migration's version: what a store brought up to date has.
#[cfg(feature = "postgres")]
pub(crate) fn latest() -> i64 {
    MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0)
}

/// `run` inside a transaction the caller holds (a restore): each migration
/// under a savepoint instead of a transaction of its own.
#[cfg(feature = "postgres")]
pub(crate) fn run_nested(conn: &Connection) -> anyhow::Result<()> {
    run_in(conn, true)
}

fn run_in(conn: &Connection, nested: bool) -> anyhow::Result<()> {
    // A PocketBase database is not served in place (its collections would
    // collide with keepd's first migration); it is imported.
    let table = |name: &str| super::table_exists(conn, name);
    if table("_collections")? && !table("_keepd_migrations")? {
        anyhow::bail!(
            "this database was written by PocketBase: keepd does not serve it in place; \
             build a keepd data dir from it with `keepd import pocketbase PB_DATA --dir NEW_DIR` \
             (README, \"Moving in from PocketBase\")"
        );
    }
    super::before_tables(conn)?;
    conn.script(
        "CREATE TABLE IF NOT EXISTS _keepd_migrations (
            version INTEGER PRIMARY KEY,
            name    TEXT NOT NULL,
            applied TEXT NOT NULL
        )",
    )?;
    for m in MIGRATIONS {
        let done: Option<i64> = conn.one(
            uncached("SELECT version FROM _keepd_migrations WHERE version = ?1"),
            [m.version],
            |r| r.get(0),
        )?;
        if done.is_some() {
            continue;
        }
        tracing::info!(version = m.version, name = m.name, "applying migration");
        // Each migration in its own transaction, rolled back if it fails.
        if nested {
            super::savepoint(conn, "keepd_migration")?;
        } else {
            conn.script("BEGIN")?;
        }
        let applied = (m.up)(conn).and_then(|()| {
            conn.exec(
                uncached(
                    "INSERT INTO _keepd_migrations (version, name, applied) VALUES (?1, ?2, ?3)",
                ),
                args![m.version, m.name, now_string()],
            )?;
            Ok(())
        });
        match applied {
            Ok(()) if nested => super::release(conn, "keepd_migration")?,
            Ok(()) => conn.script("COMMIT")?,
            Err(e) => {
                let _ = if nested {
                    super::roll_back_to(conn, "keepd_migration")
                } else {
                    conn.script("ROLLBACK")
                };
                return Err(e);
            }
        }
    }
    Ok(())
}

fn init(conn: &Connection) -> anyhow::Result<()> {
    conn.script(
        r#"CREATE TABLE IF NOT EXISTS _collections (
            id         TEXT PRIMARY KEY NOT NULL,
            system     BOOLEAN DEFAULT FALSE NOT NULL,
            type       TEXT DEFAULT 'base' NOT NULL,
            name       TEXT UNIQUE NOT NULL,
            fields     JSON DEFAULT '[]' NOT NULL,
            indexes    JSON DEFAULT '[]' NOT NULL,
            listRule   TEXT DEFAULT NULL,
            viewRule   TEXT DEFAULT NULL,
            createRule TEXT DEFAULT NULL,
            updateRule TEXT DEFAULT NULL,
            deleteRule TEXT DEFAULT NULL,
            options    JSON DEFAULT '{}' NOT NULL,
            created    TEXT DEFAULT '' NOT NULL,
            updated    TEXT DEFAULT '' NOT NULL
        );
        CREATE INDEX IF NOT EXISTS idx__collections_type ON _collections (type);
        CREATE TABLE IF NOT EXISTS _params (
            id      TEXT PRIMARY KEY NOT NULL,
            value   JSON DEFAULT NULL,
            created TEXT DEFAULT '' NOT NULL,
            updated TEXT DEFAULT '' NOT NULL
        );"#,
    )?;
    super::keep_insertion_order(conn, "_collections")?;
    let defaults: Vec<Value> = serde_json::from_str(include_str!("../schema/defaults.json"))?;
    for d in defaults {
        let mut c = crate::schema::parse::collection_from_json(&d)
            .map_err(|e| anyhow::anyhow!("default collection: {e:?}"))?;
        let now = now_string();
        c.created = now.clone();
        c.updated = now;
        for key in crate::schema::collection::TOKEN_KEYS {
            if let Some(o) = c.options.get_mut(*key).and_then(Value::as_object_mut) {
                o.insert("secret".into(), Value::String(random_string(50, ALPHANUM)));
            }
        }
        insert_collection(conn, &c)?;
        ddl::create_table(conn, &c)?;
    }
    Ok(())
}

pub(crate) fn insert_collection(conn: &Connection, c: &Collection) -> ApiResult<()> {
    conn.exec(
        uncached(
            "INSERT INTO _collections (id, system, type, name, fields, indexes, listRule, viewRule,
            createRule, updateRule, deleteRule, options, created, updated)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        ),
        args![
            c.id,
            c.system,
            c.kind.as_str(),
            c.name,
            serde_json::to_string(&c.fields).unwrap_or_else(|_| "[]".into()),
            serde_json::to_string(&c.indexes).unwrap_or_else(|_| "[]".into()),
            c.list_rule,
            c.view_rule,
            c.create_rule,
            c.update_rule,
            c.delete_rule,
            Value::Object(c.options.clone()).to_string(),
            c.created,
            c.updated,
        ],
    )?;
    Ok(())
}

pub(crate) fn update_collection(conn: &Connection, c: &Collection) -> ApiResult<()> {
    conn.exec(
        uncached(
            "UPDATE _collections SET system = ?2, type = ?3, name = ?4, fields = ?5, indexes = ?6,
            listRule = ?7, viewRule = ?8, createRule = ?9, updateRule = ?10, deleteRule = ?11,
            options = ?12, updated = ?13 WHERE id = ?1",
        ),
        args![
            c.id,
            c.system,
            c.kind.as_str(),
            c.name,
            serde_json::to_string(&c.fields).unwrap_or_else(|_| "[]".into()),
            serde_json::to_string(&c.indexes).unwrap_or_else(|_| "[]".into()),
            c.list_rule,
            c.view_rule,
            c.create_rule,
            c.update_rule,
            c.delete_rule,
            Value::Object(c.options.clone()).to_string(),
            c.updated,
        ],
    )?;
    Ok(())
}

pub(crate) fn load_schema(conn: &Connection) -> anyhow::Result<Schema> {
    let sql = format!(
        "SELECT id, system, type, name, fields, indexes, listRule, viewRule, createRule,
                updateRule, deleteRule, options, created, updated
         FROM _collections ORDER BY {}",
        super::dialect::INSERTION_ORDER
    );
    let rows = conn.all(uncached(&sql), (), |r| {
        Ok((
            r.get::<String>(0)?,
            r.get::<bool>(1)?,
            r.get::<String>(2)?,
            r.get::<String>(3)?,
            r.get::<String>(4)?,
            r.get::<String>(5)?,
            [
                r.get::<Option<String>>(6)?,
                r.get::<Option<String>>(7)?,
                r.get::<Option<String>>(8)?,
                r.get::<Option<String>>(9)?,
                r.get::<Option<String>>(10)?,
            ],
            r.get::<String>(11)?,
            r.get::<String>(12)?,
            r.get::<String>(13)?,
        ))
    })?;
    let mut out = Vec::new();
    for (id, system, kind, name, fields, indexes, rules, options, created, updated) in rows {
        let [list_rule, view_rule, create_rule, update_rule, delete_rule] = rules;
        let kind = match kind.as_str() {
            "auth" => CollectionType::Auth,
            "view" => CollectionType::View,
            _ => CollectionType::Base,
        };
        out.push(Collection {
            id,
            name,
            kind,
            system,
            fields: serde_json::from_str(&fields)?,
            indexes: serde_json::from_str(&indexes)?,
            list_rule,
            view_rule,
            create_rule,
            update_rule,
            delete_rule,
            options: serde_json::from_str(&options)?,
            created,
            updated,
            derived: Default::default(),
        });
    }
    Ok(Schema::new(out).with_engine(conn.sql_engine()))
}
