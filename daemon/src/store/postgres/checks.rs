//! The start-up checks of keepd's PostgreSQL role, run by `keepd db check`
//! and by `keepd serve` before anything else. Each refusal says why in one
//! line. The role may not:
//!
//! - be a superuser, or have CREATEROLE, CREATEDB, REPLICATION or BYPASSRLS;
//! - be a member (directly or through other roles, inherited or not: SET
//!   ROLE reaches them all) of a role that has any of those, or of any of
//!   PostgreSQL's predefined `pg_*` roles — keepd needs none of them, and
//!   pg_read_server_files, pg_write_server_files, pg_execute_server_program,
//!   pg_read_all_data, pg_write_all_data reach beyond its schema (pg_monitor
//!   and pg_signal_backend too: the server's other sessions are not its
//!   business; monitoring uses a role of its own);
//! - own anything but its schema and what is in it: the database (an owner
//!   can drop it and grant itself anything in it), another schema, objects
//!   elsewhere, in this database or any other (`pg_shdepend`, through every
//!   role it is a member of);
//! - be able to create schemas in the database or objects in another schema
//!   (`public` included: `REVOKE CREATE ON SCHEMA public FROM PUBLIC`);
//! - have any privilege on a table, view or sequence outside its schema
//!   (PostgreSQL's catalogs excepted).
//!
//! And the schema (`database_schema`) must exist and be owned by the role —
//! the documented set-up creates it (`CREATE SCHEMA keepd AUTHORIZATION
//! keepd`); keepd never creates it, which would need CREATE on the database
//! — and the session's search_path must be that schema alone.
//!
//! Every query has bound parameters or none; no text from the
//! configuration is spelled into SQL.

use super::connect::{PgError, Settings, Target, Transport};
use super::pool::Pool;
use super::url::DatabaseUrl;

/// One check's outcome.
#[derive(Debug, Clone)]
pub struct Finding {
    pub ok: bool,
    pub text: String,
}

/// What `keepd db check` prints: facts about the server, then findings.
#[derive(Debug, Default)]
pub struct Report {
    pub facts: Vec<(&'static str, String)>,
    pub findings: Vec<Finding>,
}

impl Report {
    fn ok(&mut self, text: impl Into<String>) {
        self.findings.push(Finding {
            ok: true,
            text: text.into(),
        });
    }
    fn refuse(&mut self, text: impl Into<String>) {
        self.findings.push(Finding {
            ok: false,
            text: text.into(),
        });
    }
    pub fn passed(&self) -> bool {
        self.findings.iter().all(|f| f.ok)
    }

    /// The report as `keepd db check` prints it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.facts {
            out.push_str(&format!("{k}: {v}\n"));
        }
        for f in &self.findings {
            let tag = if f.ok { "ok" } else { "refused" };
            out.push_str(&format!("{tag}: {}\n", f.text));
        }
        let refused = self.findings.iter().filter(|f| !f.ok).count();
        if refused == 0 {
            out.push_str("ok: every check passed\n");
        } else {
            out.push_str(&format!(
                "refused: {refused} check(s) failed; keepd will not run as this role\n"
            ));
        }
        out
    }
}

fn db(e: postgres::Error) -> PgError {
    PgError(format!("PostgreSQL: {}", super::connect::describe(&e)))
}

/// Connects as configured (through a pool of `database_pool` sessions)
/// and runs every check.
pub fn run_configured(cfg: &crate::config::Config, url: DatabaseUrl) -> Result<Report, PgError> {
    let settings = Settings::from_config(cfg, url);
    let target = super::connect::prepare(&settings)?;
    let pool = Pool::new(target, settings.pool);
    let mut session = pool.get()?;
    run(&mut session, pool.target())
}

/// The attributes that refuse a role, as (attribute, why).
const ATTRIBUTES: [(&str, &str); 5] = [
    (
        "SUPERUSER",
        "it can read and change everything on the server and run programs as its user",
    ),
    (
        "CREATEROLE",
        "it could create roles and grant itself what other roles have",
    ),
    (
        "CREATEDB",
        "it could create databases, owning more than its schema",
    ),
    (
        "REPLICATION",
        "it could stream the changes of every database",
    ),
    ("BYPASSRLS", "row-level security would not apply to it"),
];

/// Runs every check on an open session of `target`.
pub fn run(c: &mut postgres::Client, target: &Target) -> Result<Report, PgError> {
    let mut r = Report::default();
    let schema = target.schema.as_str();

    // Server facts.
    let row = c
        .query_one(
            "SELECT current_user::text, current_database()::text, \
             current_setting('server_version'), current_setting('data_checksums'), \
             current_setting('search_path'), current_setting('statement_timeout'), \
             current_setting('lock_timeout'), current_setting('idle_in_transaction_session_timeout'), \
             current_schemas(false)::text[]",
            &[],
        )
        .map_err(db)?;
    let role: String = row.get(0);
    let database: String = row.get(1);
    let search_path: String = row.get(4);
    let schemas: Vec<String> = row.get(8);
    r.facts
        .push(("server", format!("PostgreSQL {}", row.get::<_, String>(2))));
    r.facts
        .push(("role", format!("{role} on database {database}")));
    let ssl = c
        .query_opt(
            "SELECT ssl, version, cipher, bits FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .map_err(db)?;
    let on_tls = ssl.as_ref().is_some_and(|s| s.get::<_, bool>(0));
    match (target.transport, ssl) {
        (Transport::Tls, Some(s)) if on_tls => r.facts.push((
            "tls",
            format!(
                "{} {} ({} bits); the certificate chain was checked against database_ca and names the host; SCRAM-SHA-256-PLUS (channel binding)",
                s.get::<_, Option<String>>(1).unwrap_or_default(),
                s.get::<_, Option<String>>(2).unwrap_or_default(),
                s.get::<_, Option<i32>>(3).unwrap_or_default()
            ),
        )),
        (Transport::Tls, _) => r.refuse("the server reports this session is not encrypted"),
        (Transport::LoopbackPlaintext, _) => r.facts.push((
            "tls",
            "off (sslmode=disable, to a loopback host or a Unix socket)".into(),
        )),
    }
    r.facts.push((
        "data checksums",
        match row.get::<_, String>(3).as_str() {
            "on" => "on".to_string(),
            other => format!("{other} (initdb --data-checksums catches corrupted pages)"),
        },
    ));
    r.facts.push((
        "session",
        format!(
            "search_path={search_path} statement_timeout={} lock_timeout={} idle_in_transaction_session_timeout={}",
            row.get::<_, String>(5),
            row.get::<_, String>(6),
            row.get::<_, String>(7)
        ),
    ));

    // The role's own attributes.
    let attrs = c
        .query_one(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls \
             FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .map_err(db)?;
    let mut clean = true;
    for (i, (attr, why)) in ATTRIBUTES.iter().enumerate() {
        if attrs.get::<_, bool>(i) {
            clean = false;
            if i == 0 {
                r.refuse(format!("role {role} is a superuser: {why}"));
            } else {
                r.refuse(format!("role {role} has {attr}: {why}"));
            }
        }
    }
    if clean {
        r.ok(format!(
            "role {role} is not a superuser and has no CREATEROLE, CREATEDB, REPLICATION or BYPASSRLS"
        ));
    }
    if attrs.get::<_, bool>(0) {
        // A superuser owns and may do everything: the rest would only
        // repeat it.
        return Ok(r);
    }

    // Memberships, direct or through other roles.
    let members = c
        .query(
            "WITH RECURSIVE up(roleid) AS ( \
               SELECT a.roleid FROM pg_auth_members a \
                 JOIN pg_roles me ON me.oid = a.member WHERE me.rolname = current_user \
               UNION \
               SELECT a.roleid FROM pg_auth_members a JOIN up ON a.member = up.roleid) \
             SELECT r.rolname::text, r.rolsuper, r.rolcreaterole, r.rolcreatedb, \
                    r.rolreplication, r.rolbypassrls \
             FROM up JOIN pg_roles r ON r.oid = up.roleid ORDER BY 1",
            &[],
        )
        .map_err(db)?;
    let mut clean = true;
    for m in &members {
        let name: String = m.get(0);
        if name.starts_with("pg_") {
            clean = false;
            r.refuse(format!(
                "role {role} is a member of the predefined role {name}: keepd needs none of PostgreSQL's predefined roles (REVOKE {name} FROM {role})"
            ));
            continue;
        }
        let has: Vec<&str> = ATTRIBUTES
            .iter()
            .enumerate()
            .filter(|(i, _)| m.get::<_, bool>(i + 1))
            .map(|(_, (a, _))| *a)
            .collect();
        if !has.is_empty() {
            clean = false;
            r.refuse(format!(
                "role {role} is a member of role {name}, which has {}: SET ROLE {name} would give it that",
                has.join(", ")
            ));
        }
    }
    if clean {
        r.ok(format!(
            "role {role} is a member of no privileged or predefined role"
        ));
    }

    // The schema: there, and the role's.
    let owner = c
        .query_opt(
            "SELECT pg_get_userbyid(nspowner)::text FROM pg_namespace WHERE nspname = $1",
            &[&schema],
        )
        .map_err(db)?;
    match owner {
        None => r.refuse(format!(
            "schema {schema} does not exist: create it as an administrator with CREATE SCHEMA {schema} AUTHORIZATION {role}"
        )),
        Some(o) => {
            let owner: String = o.get(0);
            if owner == role {
                r.ok(format!("schema {schema} exists and is owned by {role}"));
            } else {
                r.refuse(format!(
                    "schema {schema} is owned by {owner}, not by {role}: ALTER SCHEMA {schema} OWNER TO {role}"
                ));
            }
        }
    }

    // What the role (or a role it is a member of) owns, anywhere.
    let elsewhere = c
        .query(
            "SELECT coalesce(db.datname::text, '?'), count(*) FROM pg_shdepend d \
               LEFT JOIN pg_database db ON db.oid = d.dbid \
             WHERE d.deptype = 'o' AND d.refclassid = 'pg_authid'::regclass \
               AND pg_has_role(current_user, d.refobjid, 'MEMBER') \
               AND d.dbid <> 0 \
               AND d.dbid <> (SELECT oid FROM pg_database WHERE datname = current_database()) \
             GROUP BY 1 ORDER BY 1",
            &[],
        )
        .map_err(db)?;
    let owned = c
        .query(
            "SELECT o.type, o.schema, o.identity FROM pg_shdepend d, \
               LATERAL pg_identify_object(d.classid, d.objid, 0) o \
             WHERE d.deptype = 'o' AND d.refclassid = 'pg_authid'::regclass \
               AND pg_has_role(current_user, d.refobjid, 'MEMBER') \
               AND d.dbid IN (0, (SELECT oid FROM pg_database WHERE datname = current_database())) \
             ORDER BY 1, 3",
            &[],
        )
        .map_err(db)?;
    let mut outside = Vec::new();
    for o in &owned {
        let kind: Option<String> = o.get(0);
        let in_schema: Option<String> = o.get(1);
        let identity: Option<String> = o.get(2);
        let kind = kind.unwrap_or_default();
        let identity = identity.unwrap_or_default();
        if in_schema.as_deref() == Some(schema) || (kind == "schema" && identity == schema) {
            continue;
        }
        if kind == "database" {
            r.refuse(format!(
                "role {role} owns the database {identity}: an owner can drop it and grant itself anything in it (ALTER DATABASE {identity} OWNER TO an administrator)"
            ));
            continue;
        }
        outside.push(format!("{kind} {identity}"));
    }
    for e in &elsewhere {
        let name: String = e.get(0);
        let n: i64 = e.get(1);
        outside.push(format!("{n} object(s) in database {name}"));
    }
    if outside.is_empty() {
        r.ok(format!("role {role} owns nothing outside schema {schema}"));
    } else {
        let total = outside.len();
        let mut shown = outside.into_iter().take(5).collect::<Vec<_>>().join(", ");
        if total > 5 {
            shown.push_str(&format!(" and {} more", total - 5));
        }
        r.refuse(format!(
            "role {role} owns more than its schema {schema}: {shown}"
        ));
    }

    // What it may create outside its schema.
    let create = c
        .query_one(
            "SELECT has_database_privilege(current_database(), 'CREATE'), \
               coalesce(array_agg(n.nspname::text ORDER BY n.nspname) \
                 FILTER (WHERE n.nspname IS NOT NULL), '{}') \
             FROM (SELECT 1) one LEFT JOIN pg_namespace n \
               ON n.nspname <> $1 AND n.nspname NOT LIKE 'pg\\_temp\\_%' \
              AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%' \
              AND has_schema_privilege(n.oid, 'CREATE')",
            &[&schema],
        )
        .map_err(db)?;
    let mut clean = true;
    if create.get::<_, bool>(0) {
        clean = false;
        r.refuse(format!(
            "role {role} may create schemas in database {database}: REVOKE CREATE ON DATABASE {database} FROM {role} (and from PUBLIC)"
        ));
    }
    for s in create.get::<_, Vec<String>>(1) {
        clean = false;
        r.refuse(format!(
            "role {role} may create objects in schema {s}: REVOKE CREATE ON SCHEMA {s} FROM PUBLIC (and from {role})"
        ));
    }
    if clean {
        r.ok(format!(
            "role {role} may create objects only in schema {schema}"
        ));
    }

    // What it may read or write outside its schema (granted on tables,
    // views and sequences of others; PostgreSQL's catalogs excepted).
    let granted = c
        .query(
            "SELECT n.nspname::text || '.' || c.relname::text FROM pg_class c \
               JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname <> $1 \
               AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
               AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%' \
               AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') \
               AND CASE WHEN c.relkind = 'S' \
                     THEN has_sequence_privilege(c.oid, 'USAGE, SELECT, UPDATE') \
                     ELSE has_table_privilege(c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER') \
                   END \
             ORDER BY 1 LIMIT 6",
            &[&schema],
        )
        .map_err(db)?;
    if granted.is_empty() {
        r.ok(format!(
            "role {role} may use no table, view or sequence outside schema {schema}"
        ));
    } else {
        let mut names: Vec<String> = granted.iter().map(|g| g.get(0)).collect();
        if names.len() > 5 {
            names.truncate(5);
            names.push("more".into());
        }
        r.refuse(format!(
            "role {role} may use tables outside schema {schema}: {} (REVOKE ALL ON them FROM {role}, and from PUBLIC)",
            names.join(", ")
        ));
    }

    // The session's search_path.
    if schemas == [schema] && search_path.trim_matches('"') == schema {
        r.ok(format!("search_path is pinned to {schema}"));
    } else {
        r.refuse(format!(
            "search_path is {search_path} (schemas {}), not {schema} alone",
            schemas.join(", ")
        ));
    }
    Ok(r)
}
