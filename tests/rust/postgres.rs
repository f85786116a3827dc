//! PostgreSQL (cargo feature `postgres`): the connection as the security
//! review asks, the start-up checks of the role, and keepd serving from
//! PostgreSQL, against Debian's PostgreSQL started by the test
//! (`common::pg`). Run with
//! `cargo test -p keepd --features postgres --test integration postgres::`.

use crate::common::pg::PgCluster;
use crate::common::{keepd_cmd, TempRoot, TestServer, SU_EMAIL};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::process::Output;

/// The passwords of every role the tests use: none may ever be printed.
const PASSWORDS: &[&str] = &[
    "keepd-Secret-1",
    "su-Secret-2",
    "cr-Secret-3",
    "mem-Secret-4",
    "out-Secret-5",
    "own-Secret-6",
    "md5-Secret-7",
    "pgrsf-Secret-8",
    "wrong-Secret-9",
    "grantee-Secret-10",
    "clear-Secret-11",
];

/// pg_hba.conf: md5, trust and password (clear text) for three roles over
/// TLS (the client must refuse them all), plaintext SCRAM for keepd on loopback and the Unix socket
/// (sslmode=disable), SCRAM over TLS for everyone else.
const HBA: &str = "\
hostssl all md5user 127.0.0.1/32 md5
hostssl all trustuser 127.0.0.1/32 trust
hostssl all clearuser 127.0.0.1/32 password
hostnossl all keepd 127.0.0.1/32 scram-sha-256
local all keepd scram-sha-256
hostssl all all 127.0.0.1/32 scram-sha-256
";

struct Run {
    code: i32,
    out: String,
}

impl Run {
    fn has(&self, s: &str) -> bool {
        self.out.contains(s)
    }
}

fn finish(o: Output) -> Run {
    Run {
        code: o.status.code().unwrap_or(-1),
        out: format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    }
}

/// Runs `keepd <args> --config <file with toml>` (the file 0600), with
/// `env` added; returns the exit code and stdout+stderr.
fn keepd(args: &[&str], toml: &str, env: &[(&str, &str)]) -> Run {
    let root = TempRoot::new("pg");
    let f = root.path.join("keepd.toml");
    std::fs::write(&f, toml).expect("config");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let mut c = keepd_cmd();
    c.args(args)
        .arg("--config")
        .arg(&f)
        .arg("--dir")
        .arg(root.path.join("data"));
    for (k, v) in env {
        c.env(k, v);
    }
    let run = finish(c.output().expect("run keepd"));
    assert!(
        !root.path.join("data").exists(),
        "nothing may be created in the SQLite data dir:\n{}",
        run.out
    );
    run
}

fn config(url: &str, ca: &std::path::Path, schema: &str) -> String {
    format!(
        "database_url = \"{url}\"\ndatabase_ca = \"{}\"\ndatabase_schema = \"{schema}\"\n",
        ca.display()
    )
}

#[test]
fn the_role_and_the_connection_are_checked() {
    let Some(pg) = PgCluster::start(HBA) else {
        return;
    };
    let p = pg.port;
    pg.psql("postgres", "CREATE DATABASE app");
    pg.psql(
        "app",
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC;
         CREATE ROLE keepd LOGIN PASSWORD 'keepd-Secret-1';
         CREATE SCHEMA keepd AUTHORIZATION keepd;
         ALTER ROLE postgres PASSWORD 'su-Secret-2';
         CREATE ROLE cr LOGIN CREATEROLE PASSWORD 'cr-Secret-3';
         CREATE SCHEMA cr AUTHORIZATION cr;
         CREATE ROLE dbcreator NOLOGIN CREATEDB;
         CREATE ROLE middle NOLOGIN IN ROLE dbcreator;
         CREATE ROLE mem LOGIN PASSWORD 'mem-Secret-4' IN ROLE middle;
         CREATE SCHEMA mem AUTHORIZATION mem;
         CREATE ROLE outside LOGIN PASSWORD 'out-Secret-5';
         CREATE SCHEMA outside AUTHORIZATION outside;
         CREATE TABLE public.stray (id int);
         ALTER TABLE public.stray OWNER TO outside;
         CREATE ROLE grantee LOGIN PASSWORD 'grantee-Secret-10';
         CREATE SCHEMA grantee AUTHORIZATION grantee;
         GRANT SELECT ON public.stray TO grantee;
         CREATE ROLE pgrsf LOGIN PASSWORD 'pgrsf-Secret-8' IN ROLE pg_read_server_files;
         CREATE SCHEMA pgrsf AUTHORIZATION pgrsf;
         CREATE ROLE owner LOGIN PASSWORD 'own-Secret-6';
         CREATE ROLE trustuser LOGIN;
         CREATE ROLE clearuser LOGIN PASSWORD 'clear-Secret-11';
         CREATE SCHEMA trustuser AUTHORIZATION trustuser;",
    );
    pg.psql("postgres", "CREATE DATABASE owned OWNER owner");
    pg.psql("owned", "CREATE SCHEMA owner AUTHORIZATION owner");
    // An md5 hash, so the server asks for md5 (with a SCRAM secret it
    // would do SCRAM on an md5 line).
    pg.psql(
        "app",
        "SET password_encryption = 'md5';
         CREATE ROLE md5user LOGIN PASSWORD 'md5-Secret-7';
         CREATE SCHEMA md5user AUTHORIZATION md5user;",
    );

    let mut all = Vec::new();
    let mut check = |what: &str, url: &str, ca: &std::path::Path, schema: &str| {
        let r = keepd(&["db", "check"], &config(url, ca, schema), &[]);
        all.push(format!("--- {what}\n{}", r.out));
        r
    };

    // The least-privileged role passes, over TLS 1.2+ with SCRAM and channel binding.
    let r = check(
        "least privileged",
        &format!("postgres://keepd:keepd-Secret-1@localhost:{p}/app"),
        &pg.ca,
        "keepd",
    );
    assert_eq!(r.code, 0, "{}", r.out);
    for want in [
        "ok: every check passed",
        "server: PostgreSQL ",
        "tls: TLSv1.",
        "SCRAM-SHA-256-PLUS",
        "data checksums: ",
        "search_path=keepd statement_timeout=30s lock_timeout=30s idle_in_transaction_session_timeout=30s",
        "ok: search_path is pinned to keepd",
        "ok: schema keepd exists and is owned by keepd",
    ] {
        assert!(r.has(want), "{want}:\n{}", r.out);
    }
    assert!(!r.has("refused"), "{}", r.out);

    // Each refusal, saying why.
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "superuser",
            "postgres:su-Secret-2",
            "keepd",
            "refused: role postgres is a superuser",
        ),
        (
            "CREATEROLE",
            "cr:cr-Secret-3",
            "cr",
            "refused: role cr has CREATEROLE",
        ),
        (
            "member of a CREATEDB role, through another",
            "mem:mem-Secret-4",
            "mem",
            "refused: role mem is a member of role dbcreator, which has CREATEDB",
        ),
        (
            "member of a predefined role",
            "pgrsf:pgrsf-Secret-8",
            "pgrsf",
            "refused: role pgrsf is a member of the predefined role pg_read_server_files",
        ),
        (
            "an object owned outside the schema",
            "outside:out-Secret-5",
            "outside",
            "refused: role outside owns more than its schema outside: table public.stray",
        ),
        (
            "a privilege on a table outside the schema",
            "grantee:grantee-Secret-10",
            "grantee",
            "refused: role grantee may use tables outside schema grantee: public.stray",
        ),
        (
            "no such schema",
            "keepd:keepd-Secret-1",
            "nothere",
            "refused: schema nothere does not exist",
        ),
    ];
    for (what, cred, schema, want) in cases {
        let r = check(
            what,
            &format!("postgres://{cred}@localhost:{p}/app"),
            &pg.ca,
            schema,
        );
        assert_eq!(r.code, 1, "{what}: {}", r.out);
        assert!(r.has(want), "{what}: {want}:\n{}", r.out);
    }
    let r = check(
        "owner of the database",
        &format!("postgres://owner:own-Secret-6@localhost:{p}/owned"),
        &pg.ca,
        "owner",
    );
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(
        r.has("refused: role owner owns the database owned"),
        "{}",
        r.out
    );

    // The server's certificate: the chain, then the name.
    let r = check(
        "another CA",
        &format!("postgres://keepd:keepd-Secret-1@localhost:{p}/app"),
        &pg.other_ca,
        "keepd",
    );
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(
        r.has("invalid peer certificate") && r.has("UnknownIssuer"),
        "{}",
        r.out
    );
    let r = check(
        "a certificate for another name",
        &format!("postgres://keepd:keepd-Secret-1@127.0.0.1:{p}/app"),
        &pg.ca,
        "keepd",
    );
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(r.has("not valid for name \"127.0.0.1\""), "{}", r.out);

    // md5, trust and a clear-text password over TLS: the client refuses
    // them all (no channel binding), before sending any password.
    for (what, user, url) in [
        (
            "md5",
            "md5user",
            format!("postgres://md5user:md5-Secret-7@localhost:{p}/app"),
        ),
        (
            "trust",
            "trustuser",
            format!("postgres://trustuser@localhost:{p}/app"),
        ),
        (
            "password",
            "clearuser",
            format!("postgres://clearuser:clear-Secret-11@localhost:{p}/app"),
        ),
    ] {
        let r = check(what, &url, &pg.ca, user);
        assert_eq!(r.code, 1, "{what}: {}", r.out);
        assert!(
            r.has("server did not use channel binding") && r.has("scram-sha-256"),
            "{what}: {}",
            r.out
        );
    }

    // Plaintext: to loopback when asked for, never elsewhere.
    let r = check(
        "plaintext to loopback",
        &format!("postgres://keepd:keepd-Secret-1@127.0.0.1:{p}/app?sslmode=disable"),
        &pg.ca,
        "keepd",
    );
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(r.has("tls: off (sslmode=disable"), "{}", r.out);
    let socket_dir = pg.root.to_str().expect("utf-8 path").replace('/', "%2F");
    let r = check(
        "plaintext over the Unix socket",
        &format!("postgres://keepd:keepd-Secret-1@{socket_dir}:{p}/app?sslmode=disable"),
        &pg.ca,
        "keepd",
    );
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(r.has("tls: off (sslmode=disable"), "{}", r.out);
    let r = check(
        "the Unix socket without sslmode=disable",
        &format!("postgres://keepd:keepd-Secret-1@{socket_dir}:{p}/app"),
        &pg.ca,
        "keepd",
    );
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(
        r.has("Unix socket directory") && r.has("add sslmode=disable"),
        "{}",
        r.out
    );
    let r = check(
        "plaintext to another host",
        &format!("postgres://keepd:keepd-Secret-1@db.example:{p}/app?sslmode=disable"),
        &pg.ca,
        "keepd",
    );
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(
        r.has("sslmode=disable is taken only for a loopback host") && r.has("db.example"),
        "{}",
        r.out
    );
    let r = check(
        "TLS without verification",
        &format!("postgres://keepd:keepd-Secret-1@localhost:{p}/app?sslmode=require"),
        &pg.ca,
        "keepd",
    );
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(r.has("sslmode=require is not taken"), "{}", r.out);

    // A wrong password: the server's refusal, the password in no output.
    let r = check(
        "wrong password",
        &format!("postgres://keepd:wrong-Secret-9@localhost:{p}/app"),
        &pg.ca,
        "keepd",
    );
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(
        r.has("password authentication failed for user \"keepd\""),
        "{}",
        r.out
    );
    assert!(r.has("postgres://keepd:***@localhost"), "{}", r.out);

    // The statement timeout and the pool come from the configuration.
    let toml = format!(
        "{}database_statement_timeout_secs = 7\ndatabase_pool = 1\n",
        config(
            &format!("postgres://keepd:keepd-Secret-1@localhost:{p}/app"),
            &pg.ca,
            "keepd"
        )
    );
    let r = keepd(&["db", "check"], &toml, &[]);
    all.push(r.out.clone());
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(
        r.has("statement_timeout=7s lock_timeout=7s idle_in_transaction_session_timeout=7s"),
        "{}",
        r.out
    );

    // The systemd credential `database-url`.
    let creds = TempRoot::new("pg-creds");
    std::fs::write(
        creds.path.join("database-url"),
        format!("postgres://keepd:keepd-Secret-1@localhost:{p}/app\n"),
    )
    .expect("credential");
    let toml = format!("database_ca = \"{}\"\n", pg.ca.display());
    let cred_dir = creds.path.to_str().expect("utf-8 path");
    let r = keepd(
        &["db", "check"],
        &toml,
        &[("CREDENTIALS_DIRECTORY", cred_dir)],
    );
    all.push(r.out.clone());
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(r.has("role: keepd on database app"), "{}", r.out);

    // `keepd serve`: the same checks refuse it before anything else.
    let r = keepd(
        &["serve", "--http", "127.0.0.1:0"],
        &config(
            &format!("postgres://cr:cr-Secret-3@localhost:{p}/app"),
            &pg.ca,
            "cr",
        ),
        &[("KEEPD_LOG", "debug")],
    );
    all.push(r.out.clone());
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(
        r.has("keepd: refused to start: role cr has CREATEROLE"),
        "{}",
        r.out
    );
    let r = keepd(
        &["serve", "--http", "127.0.0.1:0"],
        &config(
            &format!("postgres://keepd:wrong-Secret-9@localhost:{p}/app"),
            &pg.ca,
            "keepd",
        ),
        &[("KEEPD_LOG", "debug")],
    );
    all.push(r.out.clone());
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(r.has("password authentication failed"), "{}", r.out);

    // The pool: never more sessions than database_pool; a caller waits
    // for one given back, and gives up after the statement timeout.
    {
        use keepd::store::postgres::{connect, pool::Pool, url::DatabaseUrl};
        let settings = connect::Settings {
            url: DatabaseUrl::new(&format!(
                "postgres://keepd:keepd-Secret-1@localhost:{p}/app"
            )),
            ca: Some(pg.ca.clone()),
            schema: "keepd".into(),
            pool: 2,
            statement_timeout: std::time::Duration::from_secs(1),
        };
        let pool = Pool::new(connect::prepare(&settings).expect("target"), 2);
        let mut a = pool.get().expect("first");
        let b = pool.get().expect("second");
        let count = "SELECT count(*) FROM pg_stat_activity WHERE usename = 'keepd' AND application_name = 'keepd'";
        let n: i64 = a.query_one(count, &[]).expect("count").get(0);
        assert_eq!(n, 2);
        let started = std::time::Instant::now();
        let e = pool.get().err().expect("a third session while two are out");
        assert!(e.0.contains("database_pool"), "{e}");
        assert!(started.elapsed() >= std::time::Duration::from_millis(900));
        std::thread::scope(|s| {
            let waiter = s.spawn(|| pool.get().map(|_| ()));
            std::thread::sleep(std::time::Duration::from_millis(200));
            drop(b);
            waiter
                .join()
                .expect("waiter")
                .expect("the session given back");
        });
        assert_eq!(pool.open(), 2);
        let n: i64 = a.query_one(count, &[]).expect("count").get(0);
        assert_eq!(n, 2, "sessions are reused, not reopened");
        // The pinned session: a statement longer than the timeout is ended.
        let Err(e) = a.simple_query("SELECT pg_sleep(3)") else {
            panic!("a statement longer than the timeout ran to its end");
        };
        assert_eq!(
            e.code(),
            Some(&::postgres::error::SqlState::QUERY_CANCELED),
            "{e:?}"
        );
    }

    // No password in any output, nor in the server's log.
    let server_log = std::fs::read_to_string(pg.root.join("server.log")).unwrap_or_default();
    all.push(server_log);
    let all = all.join("\n");
    for pw in PASSWORDS {
        assert!(!all.contains(pw), "{pw} was printed:\n{all}");
    }
}

/// What is refused before any connection: no PostgreSQL needed.
#[test]
fn the_url_is_never_taken_from_the_environment_or_a_readable_file() {
    let root = TempRoot::new("pg-cfg");
    let r = finish(
        keepd_cmd()
            .args(["db", "check", "--dir"])
            .arg(root.path.join("data"))
            .env("KEEPD_DATABASE_URL", "postgres://k:env-Secret@db/app")
            .output()
            .expect("run"),
    );
    assert_ne!(r.code, 0, "{}", r.out);
    assert!(r.has("environment") && !r.has("env-Secret"), "{}", r.out);
    let f = root.path.join("keepd.toml");
    std::fs::write(&f, "database_url = \"postgres://k:file-Secret@db/app\"\n").expect("config");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let r = finish(
        keepd_cmd()
            .args(["db", "check", "--config"])
            .arg(&f)
            .output()
            .expect("run"),
    );
    assert_ne!(r.code, 0, "{}", r.out);
    assert!(
        r.has("read by others") && !r.has("file-Secret"),
        "{}",
        r.out
    );
    // Without a URL, `db check` says SQLite is in use.
    let r = finish(
        keepd_cmd()
            .args(["db", "check", "--dir"])
            .arg(root.path.join("data"))
            .output()
            .expect("run"),
    );
    assert_ne!(r.code, 0, "{}", r.out);
    assert!(r.has("database_url is not set"), "{}", r.out);
}

/// A database of its own for one test (nobody may create in `public`) and
/// a least-privileged role owning one schema in it.
fn database_with_role(pg: &PgCluster, db: &str, role: &str, password: &str) {
    pg.psql("postgres", &format!("CREATE DATABASE {db}"));
    pg.psql(db, "REVOKE CREATE ON SCHEMA public FROM PUBLIC");
    role_with_schema(pg, db, role, password);
}

/// A least-privileged role owning one schema of its own, for one test
/// (over TLS with SCRAM, as `HBA` lets every role but the listed ones in).
fn role_with_schema(pg: &PgCluster, db: &str, role: &str, password: &str) {
    pg.psql(
        db,
        &format!(
            "CREATE ROLE {role} LOGIN PASSWORD '{password}';
             CREATE SCHEMA {role} AUTHORIZATION {role};"
        ),
    );
}

/// A config file (0600) in `root` for `role` on `db`, its own schema.
fn config_file(
    root: &TempRoot,
    pg: &PgCluster,
    db: &str,
    role: &str,
    pw: &str,
) -> std::path::PathBuf {
    let f = root.path.join("keepd.toml");
    std::fs::write(
        &f,
        config(
            &format!("postgres://{role}:{pw}@localhost:{}/{db}", pg.port),
            &pg.ca,
            role,
        ),
    )
    .expect("config");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    f
}

/// Point reads (a get by id) borrow one of the readers' sessions on the
/// calling thread. With more of them at once than there are readers
/// (`database_pool = 4`: one reader beside the writer, the watch and the
/// change log's follower), the others wait for the session to be given
/// back — they used to ask the pool for one more, find it full and wait
/// there, where a reader's session given back never came, until
/// `database_statement_timeout_secs` ran out and the request failed.
#[test]
fn point_reads_beyond_the_readers_wait_for_a_session_given_back() {
    let Some(pg) = PgCluster::start(HBA) else {
        return;
    };
    pg.psql("postgres", "CREATE DATABASE points");
    role_with_schema(&pg, "points", "app6", "app6-Secret-12");
    let root = TempRoot::new("pgpoints");
    let cfg = config_file(&root, &pg, "points", "app6", "app6-Secret-12");
    let mut toml = std::fs::read_to_string(&cfg).expect("config");
    toml.push_str("database_pool = 4\ndatabase_statement_timeout_secs = 2\n");
    std::fs::write(&cfg, toml).expect("config");
    let srv = TestServer::builder()
        .root(root.clone())
        .config(&cfg)
        .start();
    srv.create_collection(&json!({
        "name": "pts", "type": "base", "listRule": "", "viewRule": "",
        "fields": [{"name": "title", "type": "text"}]
    }));
    let (st, rec) = srv
        .su()
        .post("/api/collections/pts/records", &json!({"title": "one"}));
    assert_eq!(st, 200, "{rec}");
    let path = format!(
        "/api/collections/pts/records/{}",
        rec["id"].as_str().expect("id")
    );
    // Eight clients at once, each getting the record over and over: reads
    // overlap all the time, and every one is answered.
    let failed: Vec<(u16, Value)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let guest = srv.guest();
                    (0..40)
                        .map(|_| guest.get(&path))
                        .filter(|(st, _)| *st != 200)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("client thread"))
            .collect()
    });
    assert!(
        failed.is_empty(),
        "{} of 320 gets failed, the first: {:?}\n{}",
        failed.len(),
        failed.first(),
        srv.output()
    );
}

#[test]
fn keepd_serves_records_from_postgres() {
    let Some(pg) = PgCluster::start(HBA) else {
        return;
    };
    database_with_role(&pg, "srv", "app1", "app1-Secret-12");
    let root = TempRoot::new("pgsrv");
    let cfg = config_file(&root, &pg, "srv", "app1", "app1-Secret-12");
    let mut srv = TestServer::builder()
        .root(root.clone())
        .config(&cfg)
        .start();

    // A superuser made by `keepd superuser upsert` with the same config
    // logs in; a base collection with text, number and bool fields.
    let su = srv.su();
    let (st, c) = su.post(
        "/api/collections",
        &json!({
            "name": "notes",
            "type": "base",
            "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
            "fields": [
                {"name": "title", "type": "text"},
                {"name": "n", "type": "number"},
                {"name": "done", "type": "bool"}
            ],
            "indexes": ["CREATE UNIQUE INDEX `idx_notes_title` ON `notes` (`title`)"]
        }),
    );
    assert_eq!(st, 200, "{c}\n{}", srv.output());

    // A cascade delete publishes each child's delete and then the
    // parent's, once each — and nothing of the writes answered before the
    // subscription was made.
    let posts = srv.create_collection(&json!({
        "name": "posts", "type": "base", "listRule": "", "viewRule": "",
        "fields": [{"name": "title", "type": "text"}]
    }));
    let posts_id = posts["id"].as_str().expect("collection id");
    srv.create_collection(&json!({
        "name": "comments", "type": "base", "listRule": "", "viewRule": "",
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "post", "type": "relation", "collectionId": posts_id,
             "maxSelect": 1, "cascadeDelete": true}
        ]
    }));
    // Someone listening, so that every write has events to publish.
    let earlier = crate::realtime::Sse::connect(&srv);
    let (st, v) = earlier.subscribe(&srv, None, &["comments/*"]);
    assert_eq!(st, 204, "{v}");
    for round in 0..3 {
        let (st, parent) = su.post(
            "/api/collections/posts/records",
            &json!({"title": format!("parent{round}")}),
        );
        assert_eq!(st, 200, "{parent}");
        let parent = parent["id"].as_str().expect("id").to_string();
        let mut children = Vec::new();
        for title in ["one", "two"] {
            let (st, c) = su.post(
                "/api/collections/comments/records",
                &json!({"title": title, "post": parent}),
            );
            assert_eq!(st, 200, "{c}");
            children.push((
                "delete".to_string(),
                c["id"].as_str().expect("id").to_string(),
                title.to_string(),
            ));
        }
        let mut sse = crate::realtime::Sse::connect(&srv);
        let topic = format!("posts/{parent}");
        let (st, v) = sse.subscribe(&srv, None, &["comments/*", &topic]);
        assert_eq!(st, 204, "{v}");
        let (st, _) = su.delete(&format!("/api/collections/posts/records/{parent}"));
        assert_eq!(st, 204);
        let sentinel = format!("sentinel-cascade{round}");
        let (st, v) = su.post(
            "/api/collections/comments/records",
            &json!({ "title": sentinel }),
        );
        assert_eq!(st, 200, "{v}");
        let mut got = events_until(&mut sse, &sentinel);
        let last = got.pop();
        got.sort();
        children.sort();
        assert_eq!(got, children, "round {round}: each child's delete once");
        assert_eq!(
            last,
            Some(("delete".into(), parent.clone(), format!("parent{round}"))),
            "round {round}: the parent's delete last"
        );
    }
    drop(earlier);

    // Create, get, update, list, delete.
    let (st, a) = su.post(
        "/api/collections/notes/records",
        &json!({"title": "first", "n": 1.5, "done": true}),
    );
    assert_eq!(st, 200, "{a}\n{}", srv.output());
    let id = a["id"].as_str().expect("id").to_string();
    assert_eq!(
        (a["title"].clone(), a["n"].clone(), a["done"].clone()),
        (json!("first"), json!(1.5), json!(true))
    );
    // A UNIQUE violation is PocketBase's validation error, and the write
    // after it goes through (the failed one was rolled back alone).
    let (st, dup) = su.post("/api/collections/notes/records", &json!({"title": "first"}));
    assert_eq!(st, 400, "{dup}\n{}", srv.output());
    assert_eq!(
        dup["data"]["title"]["code"], "validation_not_unique",
        "{dup}"
    );
    let (st, b) = su.post(
        "/api/collections/notes/records",
        &json!({"title": "second", "n": 7}),
    );
    assert_eq!(st, 200, "{b}");
    let gone = b["id"].as_str().expect("id").to_string();
    let (st, got) = su.get(&format!("/api/collections/notes/records/{id}"));
    assert_eq!(st, 200, "{got}");
    assert_eq!(got["title"], "first");
    let (st, up) = su.patch(
        &format!("/api/collections/notes/records/{id}"),
        &json!({"title": "changed", "n": 42, "done": false}),
    );
    assert_eq!(st, 200, "{up}\n{}", srv.output());
    assert_eq!(
        (up["title"].clone(), up["n"].clone(), up["done"].clone()),
        (json!("changed"), json!(42), json!(false))
    );
    let (st, _) = su.delete(&format!("/api/collections/notes/records/{gone}"));
    assert_eq!(st, 204, "{}", srv.output());
    let (st, list) = su.list("notes", &[]);
    assert_eq!(st, 200, "{list}\n{}", srv.output());
    assert_eq!(list["totalItems"], 1, "{list}");
    assert_eq!(list["items"][0]["id"], id.as_str(), "{list}");

    // An auth collection: sign-up and login, and an email taken (the
    // partial UNIQUE index of PocketBase's users collection).
    let (user, _) = srv.sign_up("Ann@Example.com", "ann-password-1");
    let (st, again) = srv.guest().post(
        "/api/collections/users/records",
        &json!({"email": "Ann@Example.com", "password": "ann-password-2", "passwordConfirm": "ann-password-2"}),
    );
    assert_eq!(st, 400, "{again}\n{}", srv.output());
    assert_eq!(
        again["data"]["email"]["code"], "validation_not_unique",
        "{again}"
    );
    // Sessions lost (an administrator ends them; a server restart does
    // the same): the next read and write run on new ones.
    let ended = pg.query(
        "srv",
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = 'app1'",
    );
    assert_ne!(ended, "0");
    let (st, got) = su.get(&format!("/api/collections/notes/records/{id}"));
    assert_eq!(st, 200, "{got}\n{}", srv.output());
    let (st, c3) = su.post(
        "/api/collections/notes/records",
        &json!({"title": "after the sessions were ended"}),
    );
    assert_eq!(st, 200, "{c3}\n{}", srv.output());
    let (st, list) = su.list("notes", &[]);
    assert_eq!((st, list["totalItems"].clone()), (200, json!(2)), "{list}");
    let extra = c3["id"].as_str().expect("id").to_string();
    let (st, _) = su.delete(&format!("/api/collections/notes/records/{extra}"));
    assert_eq!(st, 204, "{}", srv.output());

    // Logins recorded their origins (`_authOrigins`, a system collection
    // whose mixed-case names are quoted).
    assert!(
        !srv.output().contains("origins not updated"),
        "{}",
        srv.output()
    );
    assert_ne!(
        pg.query("srv", "SELECT count(*) FROM app1.\"_authOrigins\""),
        "0"
    );

    // Durable: a new process reads it back.
    let srv2 = srv.restart();
    let (st, got) = srv2
        .su()
        .get(&format!("/api/collections/notes/records/{id}"));
    assert_eq!(st, 200, "{got}\n{}", srv2.output());
    assert_eq!(
        (got["title"].clone(), got["n"].clone(), got["done"].clone()),
        (json!("changed"), json!(42), json!(false))
    );

    // The superuser CLI finds its superuser without regard to case
    // (`COLLATE NOCASE`): an upsert of the upper-cased email changes it.
    let out = keepd_cmd()
        .args([
            "superuser",
            "upsert",
            &SU_EMAIL.to_uppercase(),
            "another-Password-1",
            "--dir",
        ])
        .arg(&srv2.dir)
        .arg("--config")
        .arg(&cfg)
        .output()
        .expect("superuser upsert");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (st, login) = srv2.guest().post(
        "/api/collections/_superusers/auth-with-password",
        &json!({"identity": SU_EMAIL, "password": "another-Password-1"}),
    );
    assert_eq!(st, 200, "{login}\n{}", srv2.output());

    // The rows are in the role's schema, as another client sees them.
    assert_eq!(
        pg.query(
            "srv",
            &format!("SELECT title, n, done FROM app1.notes WHERE id = '{id}'")
        ),
        "changed|42|f"
    );
    assert_eq!(
        pg.query("srv", "SELECT count(*) FROM app1._superusers"),
        "1"
    );
    assert_eq!(
        pg.query(
            "srv",
            &format!("SELECT email FROM app1.users WHERE id = '{user}'")
        ),
        "Ann@Example.com"
    );
    assert_eq!(
        pg.query(
            "srv",
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        "0",
        "nothing outside the schema"
    );

    // The audit log is append-only for the role itself.
    assert_ne!(
        pg.query("srv", "SELECT count(*) FROM app1._keepd_audit"),
        "0"
    );
    for sql in [
        "UPDATE app1._keepd_audit SET action = 'x'",
        "DELETE FROM app1._keepd_audit",
    ] {
        let out = pg.psql_as("postgres", "srv", &format!("SET ROLE app1; {sql}"));
        let text = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "{sql} went through");
        assert!(
            text.contains("append-only") || text.contains("younger than a day"),
            "{sql}: {text}"
        );
    }
    drop(srv2);
}

#[test]
fn synchronous_commit_off_is_refused() {
    let Some(pg) = PgCluster::start(HBA) else {
        return;
    };
    database_with_role(&pg, "lossy", "app2", "app2-Secret-13");
    pg.psql("lossy", "ALTER ROLE app2 SET synchronous_commit = off");
    let root = TempRoot::new("pgsync");
    let cfg = config_file(&root, &pg, "lossy", "app2", "app2-Secret-13");
    let err = match TestServer::builder()
        .root(root.clone())
        .config(&cfg)
        .try_start()
    {
        Ok(_) => panic!("started with synchronous_commit=off"),
        Err(e) => e,
    };
    assert!(err.contains("synchronous_commit is off"), "{err}");
    assert!(!err.contains("app2-Secret-13"), "{err}");
    // Nothing was made in the schema.
    assert_eq!(
        pg.query(
            "lossy",
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'app2'"
        ),
        "0"
    );
}

/// What a subscriber saw of one event: (action, record id, title).
type Seen = (String, String, String);

/// The events `sse` receives up to (not including) the create titled
/// `sentinel`; none may be missing for longer than 10 s.
fn events_until(sse: &mut crate::realtime::Sse, sentinel: &str) -> Vec<Seen> {
    let mut out = Vec::new();
    loop {
        let (_, data) = sse
            .next(std::time::Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no event for 10 s; got so far {out:?}"));
        let v: serde_json::Value = serde_json::from_str(&data).expect("event json");
        let seen = (
            v["action"].as_str().unwrap_or_default().to_string(),
            v["record"]["id"].as_str().unwrap_or_default().to_string(),
            v["record"]["title"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
        if seen.2 == sentinel {
            return out;
        }
        out.push(seen);
    }
}

/// The change log's record changes of collection `coll` after `seq`, in
/// log order, read by the cluster's superuser: ((action, id, title), seq).
fn logged(pg: &PgCluster, db: &str, schema: &str, coll: &str, after: i64) -> Vec<(Seen, i64)> {
    let rows = pg.query(
        db,
        &format!(
            "SELECT action, record::json->>'id', record::json->>'title', seq \
             FROM {schema}._keepd_changes WHERE collection = '{coll}' AND seq > {after} ORDER BY seq"
        ),
    );
    rows.lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (
                (f[0].to_string(), f[1].to_string(), f[2].to_string()),
                f[3].parse().expect("seq"),
            )
        })
        .collect()
}

/// Writes `n` creates and updates titled `{tag}{i}` through the server at
/// `addr` (every third an update of the write's own latest create); stops
/// at the first request that gets no answer. The titles answered 200.
fn write_through(addr: std::net::SocketAddr, token: &str, tag: &str, n: usize) -> Vec<String> {
    let mut done = Vec::new();
    let mut last_id = None::<String>;
    for i in 0..n {
        let title = format!("{tag}{i}");
        let body = json!({ "title": title }).to_string();
        let (method, path) = match (&last_id, i % 3) {
            (Some(id), 2) => ("PATCH", format!("/api/collections/notes/records/{id}")),
            _ => ("POST", "/api/collections/notes/records".to_string()),
        };
        let r = crate::common::raw_at(
            addr,
            method,
            &path,
            &[("Authorization", token)],
            Some(body.as_bytes()),
        );
        let Ok(r) = r else { break };
        if r.status != 200 {
            eprintln!("{method} {path}: {} {}", r.status, r.text());
            break;
        }
        if method == "POST" {
            last_id = r.json()["id"].as_str().map(str::to_string);
        }
        done.push(title);
    }
    done
}

/// Several keepd processes on one schema (a hub behind a load balancer):
/// the realtime clients of each get every process's record changes once,
/// in commit order (the change log's order), and when one process is
/// killed the others' clients miss nothing; restarted, its new clients
/// hear of new changes again.
#[test]
fn realtime_events_reach_the_clients_of_every_process_in_commit_order() {
    let Some(pg) = PgCluster::start(HBA) else {
        return;
    };
    database_with_role(&pg, "hub", "hub1", "hub1-Secret-13");
    let root_a = TempRoot::new("pghub-a");
    let cfg = config_file(&root_a, &pg, "hub", "hub1", "hub1-Secret-13");
    let mut a = TestServer::builder()
        .root(root_a.clone())
        .config(&cfg)
        .start();
    let coll = a.create_collection(&json!({
        "name": "notes", "type": "base", "listRule": "", "viewRule": "",
        "fields": [{"name": "title", "type": "text"}]
    }));
    let coll = coll["id"].as_str().expect("collection id").to_string();
    let b = TestServer::builder()
        .root(TempRoot::new("pghub-b"))
        .config(&cfg)
        .start();
    // (b's `superuser upsert` set the password again: a's cached token is
    // void.)
    let token = b.superuser_token();
    let start = logged(&pg, "hub", "hub1", &coll, 0).len();
    assert_eq!(start, 0);

    let subscribe = |srv: &TestServer| {
        let sse = crate::realtime::Sse::connect(srv);
        let (st, v) = sse.subscribe(srv, None, &["notes/*"]);
        assert_eq!(st, 204, "{v}");
        sse
    };
    let mut subs = vec![subscribe(&a), subscribe(&a), subscribe(&b)];

    // 200 writes, through both processes at once.
    let (addr_a, addr_b) = (a.addr, b.addr);
    let (wa, wb) = std::thread::scope(|s| {
        let ta = s.spawn(|| write_through(addr_a, &token, "a", 100));
        let tb = s.spawn(|| write_through(addr_b, &token, "b", 100));
        (ta.join().expect("a"), tb.join().expect("b"))
    });
    assert_eq!((wa.len(), wb.len()), (100, 100), "{}", a.output());
    let (st, v) = b.su().post(
        "/api/collections/notes/records",
        &json!({"title": "sentinel-1"}),
    );
    assert_eq!(st, 200, "{v}");
    let log: Vec<Seen> = logged(&pg, "hub", "hub1", &coll, 0)
        .into_iter()
        .map(|(s, _)| s)
        .filter(|s| s.2 != "sentinel-1")
        .collect();
    assert_eq!(log.len(), 200, "{log:?}");
    // The log holds each write once, and each process's writes in the
    // order they were answered.
    for (tag, titles) in [("a", &wa), ("b", &wb)] {
        let mine: Vec<&String> = log
            .iter()
            .map(|s| &s.2)
            .filter(|t| t.starts_with(tag))
            .collect();
        assert_eq!(mine, titles.iter().collect::<Vec<_>>());
    }
    for (i, sse) in subs.iter_mut().enumerate() {
        let got = events_until(sse, "sentinel-1");
        assert_eq!(
            got, log,
            "subscriber {i}: every event once, in the log's order"
        );
    }
    // Both processes wrote in turns, not one after the other: the order is
    // the commits', interleaved.
    let switches = log
        .windows(2)
        .filter(|w| w[0].2[..1] != w[1].2[..1])
        .count();
    assert!(switches > 1, "{log:?}");

    // One process killed while both write: the other's clients get every
    // change that committed, through either, once, in order.
    let seq_before = logged(&pg, "hub", "hub1", &coll, 0)
        .last()
        .map(|(_, s)| *s)
        .expect("a seq");
    let mut sub_b = subs.pop().expect("b's subscriber");
    drop(subs);
    let (wa, wb) = std::thread::scope(|s| {
        let ta = s.spawn(|| write_through(addr_a, &token, "ka", 1000));
        let tb = s.spawn(|| write_through(addr_b, &token, "kb", 60));
        // Let both get going, then SIGKILL a.
        while logged(&pg, "hub", "hub1", &coll, seq_before).len() < 20 {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        a.kill9();
        (ta.join().expect("a"), tb.join().expect("b"))
    });
    assert!(!wa.is_empty() && wa.len() < 1000, "{}", wa.len());
    assert_eq!(wb.len(), 60);
    let (st, v) = b.su().post(
        "/api/collections/notes/records",
        &json!({"title": "sentinel-2"}),
    );
    assert_eq!(st, 200, "{v}");
    let log: Vec<Seen> = logged(&pg, "hub", "hub1", &coll, seq_before)
        .into_iter()
        .map(|(s, _)| s)
        .filter(|s| s.2 != "sentinel-2")
        .collect();
    // Every answered write of the killed process is in the log (one that
    // got no answer may or may not have committed).
    let titles: Vec<&String> = log.iter().map(|s| &s.2).collect();
    for t in wa.iter().chain(&wb) {
        assert!(titles.contains(&t), "{t} committed but is not in the log");
    }
    let got = events_until(&mut sub_b, "sentinel-2");
    assert_eq!(
        got, log,
        "b's subscriber: every change once, in the log's order"
    );

    // a restarted: its new clients hear of writes through either process.
    let a2 = a.restart();
    let mut sub_a2 = subscribe(&a2);
    let token2 = a2.superuser_token();
    let wa2 = write_through(a2.addr, &token2, "ra", 5);
    let wb2 = write_through(b.addr, &token2, "rb", 5);
    assert_eq!((wa2.len(), wb2.len()), (5, 5));
    // A delete through one process reaches the other's clients too
    // (shown from the row as it was).
    let (st, gone) = b.su().post(
        "/api/collections/notes/records",
        &json!({"title": "deleted"}),
    );
    assert_eq!(st, 200, "{gone}");
    let gone = gone["id"].as_str().expect("id").to_string();
    let (st, _) = b
        .su()
        .delete(&format!("/api/collections/notes/records/{gone}"));
    assert_eq!(st, 204);
    let (st, v) = b.su().post(
        "/api/collections/notes/records",
        &json!({"title": "sentinel-3"}),
    );
    assert_eq!(st, 200, "{v}");
    let mut want: Vec<(String, String)> = wa2
        .into_iter()
        .chain(wb2)
        .map(|t| {
            (
                (if t.ends_with('2') { "update" } else { "create" }).to_string(),
                t,
            )
        })
        .collect();
    want.push(("create".into(), "deleted".into()));
    want.push(("delete".into(), "deleted".into()));
    for (who, sse) in [("a2", &mut sub_a2), ("b", &mut sub_b)] {
        let got: Vec<Seen> = events_until(sse, "sentinel-3");
        let deleted: Vec<&String> = got
            .iter()
            .filter(|s| s.2 == "deleted")
            .map(|s| &s.1)
            .collect();
        assert_eq!(deleted, [&gone, &gone], "{who}");
        let got: Vec<(String, String)> = got.into_iter().map(|s| (s.0, s.2)).collect();
        assert_eq!(got, want, "{who}");
    }

    // A collection made through one process is known to the others at
    // once (the log marks the change; each loads its schema again): a2
    // serves it, writes to it, and its clients get b's writes to it.
    b.create_collection(&json!({
        "name": "later", "type": "base", "listRule": "", "viewRule": "",
        "fields": [{"name": "title", "type": "text"}]
    }));
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (st, v) = a2.su().get("/api/collections/later");
        if st == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "a2 never saw it: {st} {v}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut sub_later = crate::realtime::Sse::connect(&a2);
    let (st, v) = sub_later.subscribe(&a2, None, &["later/*"]);
    assert_eq!(st, 204, "{v}");
    for (srv, title) in [(&b, "from b"), (&a2, "from a2"), (&b, "sentinel-later")] {
        let (st, v) = srv
            .su()
            .post("/api/collections/later/records", &json!({ "title": title }));
        assert_eq!(st, 200, "{title}: {v}");
    }
    let got: Vec<String> = events_until(&mut sub_later, "sentinel-later")
        .into_iter()
        .map(|s| s.2)
        .collect();
    assert_eq!(got, ["from b", "from a2"]);

    // The log is bounded: filled (by hand) to just under a prune mark past
    // 10,000 changes, the next write prunes all but the last 10,000, and
    // the clients still get it.
    let max: i64 = pg
        .query("hub", "SELECT max(seq) FROM hub1._keepd_changes")
        .parse()
        .expect("max seq");
    let fill = (10_000 - max).max(0) + 255 - (max + (10_000 - max).max(0)) % 256;
    pg.psql(
        "hub",
        &format!(
            "INSERT INTO hub1._keepd_changes (collection, action, record)              SELECT 'elsewhere', 'create', '{{}}' FROM generate_series(1, {fill})"
        ),
    );
    let count = |pg: &PgCluster| -> (i64, i64, i64) {
        let r = pg.query(
            "hub",
            "SELECT count(*), min(seq), max(seq) FROM hub1._keepd_changes",
        );
        let f: Vec<i64> = r.split('|').map(|x| x.parse().expect("number")).collect();
        (f[0], f[1], f[2])
    };
    let (n, _, last) = count(&pg);
    assert!(n > 10_000 && last % 256 == 255, "{n} {last}");
    let (st, v) = b.su().post(
        "/api/collections/notes/records",
        &json!({"title": "pruning"}),
    );
    assert_eq!(st, 200, "{v}");
    let (n, min, max) = count(&pg);
    assert_eq!(max, last + 1);
    assert!(n <= 10_000 && min > max - 10_000, "{n} {min} {max}");
    let (st, v) = b.su().post(
        "/api/collections/notes/records",
        &json!({"title": "sentinel-4"}),
    );
    assert_eq!(st, 200, "{v}");
    for (who, sse) in [("a2", &mut sub_a2), ("b", &mut sub_b)] {
        let got: Vec<String> = events_until(sse, "sentinel-4")
            .into_iter()
            .map(|s| s.2)
            .collect();
        assert_eq!(got, ["pruning"], "{who}");
    }
}

/// Filters, sorts, rules and expand are compiled for PostgreSQL when the
/// store is there: typed comparisons, a rule joining another collection
/// (rows repeated by the join, listed once, sorted by the joined field),
/// a relation expanded, a view rule checked with the request's identity.
#[test]
fn filters_sorts_rules_and_expand_run_on_postgres() {
    let Some(pg) = PgCluster::start(HBA) else {
        return;
    };
    database_with_role(&pg, "q", "app3", "app3-Secret-13");
    let root = TempRoot::new("pgq");
    let cfg = config_file(&root, &pg, "q", "app3", "app3-Secret-13");
    let srv = TestServer::builder()
        .root(root.clone())
        .config(&cfg)
        .start();
    let su = srv.su();
    let (st, tags) = su.post(
        "/api/collections",
        &json!({"name": "tags", "type": "base", "listRule": "", "viewRule": "",
                "fields": [{"name": "name", "type": "text"}]}),
    );
    assert_eq!(st, 200, "{tags}\n{}", srv.output());
    let (user, token) = srv.sign_up("bo@example.com", "bo-password-1");
    let (st, c) = su.post(
        "/api/collections",
        &json!({
            "name": "posts", "type": "base",
            "listRule": "tags.name ?= 'pub' || owner = @request.auth.id",
            "viewRule": "owner = @request.auth.id",
            "fields": [
                {"name": "title", "type": "text"},
                {"name": "n", "type": "number"},
                {"name": "done", "type": "bool"},
                {"name": "owner", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1},
                {"name": "tags", "type": "relation", "collectionId": tags["id"], "maxSelect": 5}
            ]
        }),
    );
    assert_eq!(st, 200, "{c}\n{}", srv.output());
    let tag = |name: &str| {
        let (st, t) = su.post("/api/collections/tags/records", &json!({"name": name}));
        assert_eq!(st, 200, "{t}");
        t["id"].as_str().expect("id").to_string()
    };
    let (public, zed, alpha) = (tag("pub"), tag("zed"), tag("alpha"));
    for (title, n, done, tags, owner) in [
        ("p1", 3, true, vec![&public, &zed], ""),
        ("p2", 1, true, vec![&public, &alpha], ""),
        ("p3", 7, false, vec![&alpha], user.as_str()),
        ("p4", 5, true, vec![&zed], ""),
    ] {
        let (st, r) = su.post(
            "/api/collections/posts/records",
            &json!({"title": title, "n": n, "done": done, "tags": tags, "owner": owner}),
        );
        assert_eq!(st, 200, "{r}\n{}", srv.output());
    }
    let titles = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|r| r["title"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    // A superuser's filter and sort: numbers and bools typed.
    let (st, l) = su.list(
        "posts",
        &[("filter", "n > 2 && done = true"), ("sort", "-n")],
    );
    assert_eq!(st, 200, "{l}\n{}", srv.output());
    assert_eq!(titles(&l), ["p4", "p1"], "{l}");
    // `@rowid`: the order records were inserted in.
    let (st, l) = su.list("posts", &[("sort", "-@rowid")]);
    assert_eq!(st, 200, "{l}\n{}", srv.output());
    assert_eq!(titles(&l), ["p4", "p3", "p2", "p1"], "{l}");
    // A back-relation expanded (each tag's posts).
    let (st, t) = su.get(&format!(
        "/api/collections/tags/records/{alpha}?expand=posts_via_tags"
    ));
    assert_eq!(st, 200, "{t}\n{}", srv.output());
    assert_eq!(
        t["expand"]["posts_via_tags"].as_array().map(Vec::len),
        Some(2),
        "{t}"
    );
    // The list rule joins tags: each record once, sorted by a joined field.
    let bo = srv.with_token(&token);
    let (st, l) = bo.list("posts", &[("sort", "-tags.name,title")]);
    assert_eq!(st, 200, "{l}\n{}", srv.output());
    assert_eq!(l["totalItems"], 3, "{l}");
    let mut got = titles(&l);
    got.sort();
    assert_eq!(got, ["p1", "p2", "p3"], "{l}");
    let (st, l) = srv
        .guest()
        .list("posts", &[("sort", "title"), ("filter", "title ~ 'P'")]);
    assert_eq!(st, 200, "{l}\n{}", srv.output());
    // (A guest's @request.auth.id is '', as p4's owner is.)
    assert_eq!(titles(&l), ["p1", "p2", "p4"], "{l}");
    // Expand, and the view rule with the request's identity.
    let (st, l) = bo.list("posts", &[("filter", "done = false"), ("expand", "tags")]);
    assert_eq!(st, 200, "{l}\n{}", srv.output());
    assert_eq!(titles(&l), ["p3"], "{l}");
    assert_eq!(l["items"][0]["expand"]["tags"][0]["name"], "alpha", "{l}");
    let p3 = l["items"][0]["id"].as_str().expect("id").to_string();
    let (st, _) = bo.get(&format!("/api/collections/posts/records/{p3}"));
    assert_eq!(st, 200, "{}", srv.output());
    let (st, _) = srv
        .guest()
        .get(&format!("/api/collections/posts/records/{p3}"));
    assert_eq!(st, 404, "{}", srv.output());

    // A view collection: its query planned (a subquery in FROM named, as
    // PostgreSQL wants) and its columns asked of the server, its records
    // listed with a filter and a sort.
    let (st, v) = su.post(
        "/api/collections",
        &json!({"name": "big", "type": "view", "listRule": "",
                "viewQuery": "SELECT id, title, twice FROM (SELECT id, title, (n * 2) AS twice FROM posts WHERE n > 2)"}),
    );
    assert_eq!(st, 200, "{v}\n{}", srv.output());
    let (st, l) = srv
        .guest()
        .list("big", &[("filter", "twice >= 10"), ("sort", "-twice")]);
    assert_eq!(st, 200, "{l}\n{}", srv.output());
    assert_eq!(titles(&l), ["p3", "p4"], "{l}");
    assert_eq!(l["items"][0]["twice"], 14, "{l}");
}

/// The export (`data.pgexport`) in an age-encrypted backup: each table's
/// rows as JSON arrays, by column name.
fn exported_rows(
    backup: &[u8],
    id: &age::x25519::Identity,
) -> std::collections::HashMap<String, Vec<serde_json::Map<String, Value>>> {
    use std::io::Read;
    assert!(
        backup.starts_with(b"age-encryption.org/v1"),
        "not encrypted"
    );
    let d = age::Decryptor::new(backup).expect("age header");
    let mut plain = Vec::new();
    d.decrypt(std::iter::once(id as &dyn age::Identity))
        .expect("decrypt")
        .read_to_end(&mut plain)
        .expect("read");
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(plain)).expect("zip");
    assert!(z.index_for_name("data.db").is_none(), "no SQLite file");
    let mut text = String::new();
    z.by_name("data.pgexport")
        .expect("the export")
        .read_to_string(&mut text)
        .expect("read");
    let mut out: std::collections::HashMap<String, Vec<_>> = Default::default();
    let mut table = (String::new(), Vec::<String>::new());
    let mut lines = text.lines();
    let head: Value = serde_json::from_str(lines.next().expect("manifest")).expect("json");
    assert_eq!(head["format"], "keepd-export", "{head}");
    assert_eq!(head["engine"], "postgres", "{head}");
    for l in lines {
        let v: Value = serde_json::from_str(l).expect("json line");
        if let Some(t) = v["table"].as_str() {
            let cols = v["columns"]
                .as_array()
                .expect("columns")
                .iter()
                .map(|c| c.as_str().unwrap_or_default().to_string())
                .collect();
            table = (t.to_string(), cols);
            out.entry(t.to_string()).or_default();
        } else if let Some(a) = v.as_array() {
            let row = table.1.iter().cloned().zip(a.iter().cloned()).collect();
            out.entry(table.0.clone()).or_default().push(row);
        }
    }
    assert!(
        !out.contains_key("_keepd_changes"),
        "the change log stays out"
    );
    out
}

/// Backups on PostgreSQL: the schema exported in one repeatable-read
/// snapshot (a pair of counters written together in one batch, while
/// backups are taken, is equal in every backup), encrypted as SQLite's
/// are; restore (keepd exits, starts again and loads it in one
/// transaction) gives back every collection, record, auth record (its
/// login works), stored file and the audit log, and drops what came after;
/// a SQLite backup is refused with a clear 400.
#[test]
fn backups_on_postgres_are_consistent_snapshots_that_restore() {
    let Some(pg) = PgCluster::start(HBA) else {
        return;
    };
    database_with_role(&pg, "bk", "app6", "app6-Secret-16");
    let root = TempRoot::new("pgbk");
    let cfg = config_file(&root, &pg, "bk", "app6", "app6-Secret-16");
    let id = age::x25519::Identity::generate();
    let key_file = root.path.join("backup.key");
    use age::secrecy::ExposeSecret;
    std::fs::write(&key_file, id.to_string().expose_secret()).expect("key");
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).expect("mode");
    let mut srv = TestServer::builder()
        .root(root.clone())
        .config(&cfg)
        .env("KEEPD_BACKUP_RECIPIENTS", &id.to_public().to_string())
        .env(
            "KEEPD_BACKUP_IDENTITY_FILE",
            key_file.to_str().expect("utf8"),
        )
        .start();
    let su = srv.su();
    let (st, v) = su.patch(
        "/api/settings",
        &json!({"batch": {"enabled": true, "maxRequests": 10}}),
    );
    assert_eq!(st, 200, "{v}");
    for name in ["lefts", "rights"] {
        srv.create_collection(&json!({
            "name": name, "type": "base", "listRule": "", "viewRule": "",
            "fields": [{"name": "n", "type": "number"}, {"name": "on", "type": "bool"}]
        }));
    }
    srv.create_collection(&json!({
        "name": "docs", "type": "base", "listRule": "", "viewRule": "",
        "fields": [{"name": "title", "type": "text"}, {"name": "file", "type": "file", "maxSelect": 1}]
    }));
    srv.create_collection(&json!({
        "name": "pairs", "type": "view", "listRule": "", "viewRule": "",
        "viewQuery": "SELECT l.id, l.n AS left_n, r.n AS right_n FROM lefts l, rights r"
    }));
    let (_, l) = su.post("/api/collections/lefts/records", &json!({"n": 0}));
    let (_, r) = su.post("/api/collections/rights/records", &json!({"n": 0}));
    let (lid, rid) = (
        l["id"].as_str().expect("id").to_string(),
        r["id"].as_str().expect("id").to_string(),
    );
    let (st, u) = su.post(
        "/api/collections/users/records",
        &json!({"email": "ann@example.com", "password": "ann-Pass-1234", "passwordConfirm": "ann-Pass-1234", "name": "Ann"}),
    );
    assert_eq!(st, 200, "{u}");
    let (ct, body) = crate::common::multipart(&[
        ("title", None, b"doc"),
        ("file", Some("hello.txt"), b"hello from a backup"),
    ]);
    let tok = srv.superuser_token();
    let r = srv.raw(
        "POST",
        "/api/collections/docs/records",
        &[
            ("Content-Type", ct.as_str()),
            ("Authorization", tok.as_str()),
        ],
        Some(&body),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let doc = r.json();
    let (doc_id, file_name) = (
        doc["id"].as_str().expect("id").to_string(),
        doc["file"].as_str().expect("file").to_string(),
    );

    // Both counters move together in one batch, again and again, while
    // backups are taken.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (addr, tok, stop) = (srv.addr, tok.clone(), stop.clone());
        let (lid, rid) = (lid.clone(), rid.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let body = json!({"requests": [
                    {"method": "PATCH", "url": format!("/api/collections/lefts/records/{lid}"), "body": {"n": n, "on": n % 2 == 1}},
                    {"method": "PATCH", "url": format!("/api/collections/rights/records/{rid}"), "body": {"n": n, "on": n % 2 == 1}}
                ]})
                .to_string();
                let r = crate::common::raw_at(
                    addr,
                    "POST",
                    "/api/batch",
                    &[("Authorization", tok.as_str())],
                    Some(body.as_bytes()),
                )
                .expect("batch");
                assert_eq!(r.status, 200, "{}", r.text());
            }
            n
        })
    };
    let backups = root.path.join("data").join("backups");
    let mut seen = Vec::new();
    for i in 0..4 {
        std::thread::sleep(std::time::Duration::from_millis(150));
        let name = format!("snap{i}.zip");
        let (st, v) = su.post("/api/backups", &json!({ "name": name }));
        assert_eq!(st, 204, "{v}\n{}", srv.output());
        let rows = exported_rows(&std::fs::read(backups.join(&name)).expect("backup"), &id);
        let (l, r) = (&rows["lefts"][0], &rows["rights"][0]);
        assert_eq!(l["n"], r["n"], "backup {name}: the pair differs");
        assert_eq!(l["on"], r["on"], "backup {name}");
        assert!(
            l["n"].is_f64(),
            "a number field's value stays a real: {l:?}"
        );
        seen.push(l["n"].as_f64().unwrap_or(0.0));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = writer.join().expect("writer");
    assert!(writes > 4, "the writer ran: {writes}");
    assert!(
        seen.windows(2).any(|w| w[0] != w[1]),
        "writes ran between backups: {seen:?}"
    );

    // What the last backup holds, then changes after it.
    let (st, v) = su.post("/api/backups", &json!({"name": "keep.zip"}));
    assert_eq!(st, 204, "{v}");
    let kept = exported_rows(
        &std::fs::read(backups.join("keep.zip")).expect("backup"),
        &id,
    );
    // `keepd backup` beside the server takes the same export.
    let out = keepd_cmd()
        .args(["backup", "--name", "cli.zip", "--config"])
        .arg(&cfg)
        .arg("--dir")
        .arg(root.path.join("data"))
        .env("KEEPD_BACKUP_RECIPIENTS", id.to_public().to_string())
        .output()
        .expect("keepd backup");
    assert!(out.status.success(), "{}", finish(out).out);
    let cli = exported_rows(
        &std::fs::read(backups.join("cli.zip")).expect("backup"),
        &id,
    );
    assert_eq!(cli["lefts"], kept["lefts"]);
    let kept_n = kept["lefts"][0]["n"].clone();
    let audit_before = kept["_keepd_audit"].len();
    assert!(audit_before > 0, "the audit log is in the backup");
    let (st, _) = su.post("/api/collections/docs/records", &json!({"title": "after"}));
    assert_eq!(st, 200);
    let (st, _) = su.delete(&format!(
        "/api/collections/users/records/{}",
        u["id"].as_str().unwrap_or_default()
    ));
    assert_eq!(st, 204);

    // A SQLite backup (data.db) is refused, clearly, nothing changed.
    let mut zip_bytes = Vec::new();
    {
        use std::io::Write;
        let mut z = zip::ZipWriter::new(std::io::Cursor::new(&mut zip_bytes));
        z.start_file("data.db", zip::write::SimpleFileOptions::default())
            .expect("entry");
        z.write_all(b"SQLite format 3\0").expect("write");
        z.finish().expect("finish");
    }
    let mut enc = Vec::new();
    {
        use std::io::Write;
        let e = age::Encryptor::with_recipients(std::iter::once(
            &id.to_public() as &dyn age::Recipient
        ))
        .expect("encryptor");
        let mut w = e.wrap_output(&mut enc).expect("wrap");
        w.write_all(&zip_bytes).expect("write");
        w.finish().expect("finish");
    }
    std::fs::write(backups.join("sqlite.zip"), &enc).expect("write");
    std::fs::set_permissions(
        backups.join("sqlite.zip"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("mode");
    let (st, v) = su.post("/api/backups/sqlite.zip/restore", &json!({}));
    assert_eq!(st, 400, "{v}");
    assert!(
        v["message"].as_str().unwrap_or_default().contains("SQLite"),
        "{v}"
    );
    let (st, _) = su.get("/api/health");
    assert_eq!(st, 200, "still serving");

    // Restore: answered, keepd exits, and comes back with the backup.
    let (st, v) = su.post("/api/backups/keep.zip/restore", &json!({}));
    assert_eq!(st, 204, "{v}");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while srv.is_running() && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!srv.is_running(), "keepd didn't exit after the restore");
    let srv = srv.restart();
    let su = srv.su();
    let (st, l) = su.get(&format!("/api/collections/lefts/records/{lid}"));
    assert_eq!(st, 200, "{l}\n{}", srv.output());
    assert_eq!(l["n"].as_f64(), kept_n.as_f64(), "{l}");
    let (_, r) = su.get(&format!("/api/collections/rights/records/{rid}"));
    assert_eq!(r["n"].as_f64(), kept_n.as_f64(), "{r}");
    // The view is made again from its restored definition.
    let (st, p) = su.get("/api/collections/pairs/records");
    assert_eq!(st, 200, "{p}");
    assert_eq!(p["items"][0]["left_n"].as_f64(), kept_n.as_f64(), "{p}");
    assert_eq!(p["items"][0]["right_n"].as_f64(), kept_n.as_f64(), "{p}");
    let (_, docs) = su.get("/api/collections/docs/records");
    assert_eq!(
        docs["totalItems"], 1,
        "what came after the backup is gone: {docs}"
    );
    let got = srv.raw(
        "GET",
        &format!("/api/files/docs/{doc_id}/{file_name}"),
        &[],
        None,
    );
    assert_eq!(got.status, 200);
    assert_eq!(got.body, b"hello from a backup".to_vec());
    // The auth record is back and its password works.
    let (st, a) = srv.guest().post(
        "/api/collections/users/auth-with-password",
        &json!({"identity": "ann@example.com", "password": "ann-Pass-1234"}),
    );
    assert_eq!(st, 200, "{a}");
    // The collections are the backup's, the audit log too (and the restore
    // recorded in it).
    let (_, cols) = su.get("/api/collections?perPage=200");
    let names: Vec<&str> = cols["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for n in ["lefts", "rights", "docs", "pairs", "users", "_superusers"] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    let (_, audit) = su.get("/api/audit?perPage=500");
    let total = audit["totalItems"].as_u64().unwrap_or(0) as usize;
    assert!(total > audit_before, "{total} vs {audit_before}");
    let (_, restored) = su.get("/api/audit?action=backup.restore");
    assert_eq!(
        restored["items"].as_array().map(Vec::len),
        Some(1),
        "{restored}"
    );
    // New writes go on past the restored ids.
    let (st, v) = su.post("/api/collections/docs/records", &json!({"title": "new"}));
    assert_eq!(st, 200, "{v}");
    let (_, list) = su.get("/api/collections/docs/records?sort=@rowid");
    assert_eq!(list["items"][1]["title"], "new", "{list}");
}

/// `keepd import pocketbase` into a keepd on PostgreSQL: a pb_data made by
/// the reference PocketBase (a collection, a user, a record with a file)
/// moves into an empty schema through the records layer — served from
/// PostgreSQL after, the user's password working, the file the same —; a
/// dry run writes nothing to the schema; a schema that holds data is
/// refused.
#[test]
fn import_from_pocketbase_into_postgres() {
    let Some(bin) = crate::common::reference_pocketbase() else {
        return;
    };
    let Some(pg) = PgCluster::start(HBA) else {
        return;
    };
    database_with_role(&pg, "imp", "app7", "app7-Secret-17");
    let root = TempRoot::new("pgimp");
    let cfg = config_file(&root, &pg, "imp", "app7", "app7-Secret-17");
    let pb_dir = root.path.join("pb_data");
    let out = std::process::Command::new(&bin)
        .args([
            "superuser",
            "upsert",
            "mover@example.com",
            "mover-Pass-123",
            "--dir",
        ])
        .arg(&pb_dir)
        .output()
        .expect("pocketbase superuser upsert");
    assert!(out.status.success(), "{}", finish(out).out);
    let pb = crate::common::PocketBase::start(&bin, &pb_dir);
    let call = |method: &str, path: &str, tok: Option<&str>, body: &[u8], ct: &str| {
        let mut h = vec![("Content-Type", ct)];
        if let Some(t) = tok {
            h.push(("Authorization", t));
        }
        let r = crate::common::raw_at(pb.addr, method, path, &h, Some(body)).expect("pocketbase");
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        r.json()
    };
    let json_ct = "application/json";
    let auth = call(
        "POST",
        "/api/collections/_superusers/auth-with-password",
        None,
        json!({"identity": "mover@example.com", "password": "mover-Pass-123"})
            .to_string()
            .as_bytes(),
        json_ct,
    );
    let tok = auth["token"].as_str().expect("token").to_string();
    call(
        "POST",
        "/api/collections",
        Some(&tok),
        json!({
            "name": "notes", "type": "base", "listRule": "", "viewRule": "",
            "fields": [
                {"name": "title", "type": "text"},
                {"name": "n", "type": "number"},
                {"name": "doc", "type": "file", "maxSelect": 1, "maxSize": 100000}
            ]
        })
        .to_string()
        .as_bytes(),
        json_ct,
    );
    call(
        "POST",
        "/api/collections/users/records",
        None,
        json!({"email": "ann@example.com", "password": "ann-Pass-1234", "passwordConfirm": "ann-Pass-1234"})
            .to_string()
            .as_bytes(),
        json_ct,
    );
    let (ct, body) = crate::common::multipart(&[
        ("title", None, b"moved"),
        ("n", None, b"7"),
        ("doc", Some("a.txt"), b"bytes that move"),
    ]);
    let note = call(
        "POST",
        "/api/collections/notes/records",
        Some(&tok),
        &body,
        &ct,
    );
    let (note_id, doc) = (
        note["id"].as_str().expect("id").to_string(),
        note["doc"].as_str().expect("doc").to_string(),
    );
    drop(pb);

    let import = |dir: &str, extra: &[&str]| {
        let mut c = keepd_cmd();
        c.args(["import", "pocketbase"])
            .arg(&pb_dir)
            .args(extra)
            .arg("--config")
            .arg(&cfg)
            .arg("--dir")
            .arg(root.path.join(dir))
            .env("TMPDIR", &root.path);
        finish(c.output().expect("keepd import"))
    };
    let tables = || {
        let o = pg.psql_as(
            "postgres",
            "imp",
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'app7'",
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    // A dry run: nothing in the schema after it.
    let r = import("dry", &["--dry-run"]);
    assert_eq!(r.code, 0, "{}", r.out);
    assert_eq!(tables(), "0", "a dry run wrote to the schema");
    let r = import("data", &[]);
    assert_eq!(r.code, 0, "{}", r.out);
    let made = tables();
    assert_ne!(made, "0");
    // Another import into the same schema: refused, nothing written.
    let r = import("data2", &[]);
    assert_ne!(r.code, 0, "{}", r.out);
    assert!(r.has("already holds data"), "{}", r.out);
    assert!(
        !root.path.join("data2").exists(),
        "the refused import made its data dir"
    );
    assert_eq!(tables(), made);

    let srv = TestServer::builder()
        .root(root.clone())
        .config(&cfg)
        .no_superuser()
        .start();
    let (st, n) = srv
        .guest()
        .get(&format!("/api/collections/notes/records/{note_id}"));
    assert_eq!(st, 200, "{n}\n{}", srv.output());
    assert_eq!(n["title"], "moved");
    assert_eq!(n["n"].as_f64(), Some(7.0));
    let got = srv.raw(
        "GET",
        &format!("/api/files/notes/{note_id}/{doc}"),
        &[],
        None,
    );
    assert_eq!(
        (got.status, got.body.as_slice()),
        (200, &b"bytes that move"[..])
    );
    let (st, a) = srv.guest().post(
        "/api/collections/users/auth-with-password",
        &json!({"identity": "ann@example.com", "password": "ann-Pass-1234"}),
    );
    assert_eq!(st, 200, "{a}");
    let (st, a) = srv.guest().post(
        "/api/collections/_superusers/auth-with-password",
        &json!({"identity": "mover@example.com", "password": "mover-Pass-123"}),
    );
    assert_eq!(st, 200, "{a}");
}

/// Numbers as floats (SQLite's 7 is PostgreSQL's 7.0), and a record's
/// collection id and name left out (each server has its own).
fn normalized(v: &Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64()),
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(k, _)| *k != "collectionId" && *k != "collectionName")
                .map(|(k, v)| (k.clone(), normalized(v)))
                .collect(),
        ),
        _ => v.clone(),
    }
}

/// What a dry run of a view query answers: the fields (name, type,
/// onlyInt) and the sample records; or the status and message.
fn dry_run(srv: &TestServer, query: &str) -> (u16, Value) {
    let (st, v) = srv.su().post(
        "/api/collections/meta/dry-run-view",
        &json!({ "query": query }),
    );
    if st != 200 {
        return (st, v);
    }
    let fields: Vec<Value> = v["fields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| json!([f["name"], f["type"], f["onlyInt"]]))
                .collect()
        })
        .unwrap_or_default();
    (
        st,
        json!({"fields": fields, "sample": normalized(&v["sample"])}),
    )
}

/// The same collections and records on a server.
fn view_sources(srv: &TestServer) {
    let su = srv.su();
    let (st, c) = su.post(
        "/api/collections",
        &json!({"name": "posts", "type": "base", "listRule": "", "viewRule": "",
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "code", "type": "text"},
            {"name": "n", "type": "number"},
            {"name": "f", "type": "number"},
            {"name": "flag", "type": "bool"},
            {"name": "mail", "type": "email"},
            {"name": "meta", "type": "json"},
            {"name": "labels", "type": "select", "values": ["a", "b", "c"], "maxSelect": 3}
        ]}),
    );
    assert_eq!(st, 200, "{c}\n{}", srv.output());
    for (id, title, code, n, f, flag, mail, meta, labels) in [
        (
            "aaaaaaaaaaaaaa1",
            "Alpha",
            "12abc",
            7.0,
            1.5,
            true,
            "a@example.com",
            json!({"a": 1, "b": true, "c": {"d": [1, "x"]}}),
            json!(["a", "b"]),
        ),
        (
            "aaaaaaaaaaaaaa2",
            "Beta",
            " -3.9x",
            2.0,
            -2.75,
            false,
            "",
            json!({"a": "x", "b": false}),
            json!(["c"]),
        ),
        (
            "aaaaaaaaaaaaaa3",
            "gamma émile",
            "abc",
            4.0,
            0.0,
            false,
            "g@example.com",
            Value::Null,
            json!([]),
        ),
        (
            "aaaaaaaaaaaaaa4",
            "DELTA",
            "1e3",
            -3.0,
            9.99,
            true,
            "",
            json!([1, 2]),
            json!(["a"]),
        ),
    ] {
        let (st, r) = su.post(
            "/api/collections/posts/records",
            &json!({"id": id, "title": title, "code": code, "n": n, "f": f, "flag": flag,
                    "mail": mail, "meta": meta, "labels": labels}),
        );
        assert_eq!(st, 200, "{r}\n{}", srv.output());
    }
}

/// View queries PostgreSQL answers as SQLite does: each through the dry
/// run of a keepd on SQLite and of one on PostgreSQL, the same fields and
/// the same records in the same order.
const SAME_VIEWS: &[&str] = &[
    "select id, total(n) over (order by title) as t from posts order by title",
    "select id, (select total(p.n) from posts p where p.n > 100) as t from posts order by title",
    "select id, cast(f as integer) as a, cast(code as integer) as b, cast(flag as integer) as c, cast(n as integer) as d from posts order by title",
    "select id, cast(code as real) as a, cast(n as numeric) as b, cast(f as real) as c from posts order by title",
    "select id, cast(flag as text) as a, cast(n as text) as b, cast(title as text) as c from posts order by title",
    "select id, cast(n as boolean) as a, cast(f as boolean) as b from posts order by title",
    "select id, json_extract(meta, '$.a') as a, json_extract(meta, '$.b') as b, json_extract(meta, '$.c.d[1]') as c, json_extract(meta, '$.c') as d, json_extract(meta, '$[1]') as e from posts order by title",
    "select id, json_array_length(labels) as a, json_array_length(meta) as b from posts order by title",
    "select (p.id || j.value) as id, j.value as v from posts p, json_each(p.labels) j order by p.title, j.value",
    "select (p.id || j.value) as id, p.title from posts p join json_each(p.labels) as j on j.value = 'a' order by p.title",
    "select id, upper(title) as u, lower(title) as l from posts order by title",
    "select id, title from posts where title like 'a%' or title like '%ELT_' order by title",
    "select id, title from posts where title not like 'b%' order by title",
    "select id, ('a\\b' like 'a\\b') as a, ('a%' like 'a!%' escape '!') as b, ('ab' like 'a!%' escape '!') as c from posts order by title",
    "select id, round(f) as a, round(f, 1) as b, round(n) as c from posts order by title",
    "select 'x' as id, (select group_concat(title) from (select title from posts order by title)) as g, (select group_concat(title, '; ') from (select title from posts order by title)) as h from posts limit 1",
    "select id, iif(n > 3, 'big', 'small') as s, ifnull(nullif(mail, ''), 'none') as m, coalesce(nullif(code, 'abc'), 'x') as c from posts order by title",
    "select id, length(title) as a, instr(title, 'a') as b, replace(title, 'a', 'o') as c, ltrim(code) as e, rtrim(title, 'a') as g, ltrim(title, 'A') as h from posts order by title",
    "select id, (n > 3) as big, (title like 'a%') as l, (mail = '') as e, flag from posts order by title",
    "select id, title from posts order by title limit -1 offset 1",
    "select id, title from posts order by title offset 2",
    "select id, title from posts order by n desc limit 2",
    "select 'x' as id, max(n) as a, min(f) as b, count(*) as c, avg(n) as d, sum(n) as e, count(distinct flag) as g from posts",
    "select id, abs(n) as a, sign(f) as b, mod(n, 3) as c, pow(n, 2) as d, sqrt(4) as e, trunc(f) as g, exp(0) as h, ln(1) as i, log10(100) as j, pi() as k from posts order by title",
    "select id, (row_number() over (order by n)) as r, (rank() over (partition by flag order by n)) as k from posts order by title",
    "select id, title from posts where title = 'alpha' collate nocase or title = 'BETA' collate binary",
    "select id, concat(title, '-', n) as c, (title || ':' || f) as d from posts order by title",
    "select id, nullif(mail, '') as m from posts order by nullif(mail, ''), title",
    "select id, nullif(mail, '') as m from posts order by m desc, title",
    "select id, (row_number() over (order by json_extract(meta, '$.a'), title)) as r from posts order by title",
    "select id, (n / 2) as a, (n / 0) as b, (f / 2) as c, (n / 2.0) as d, (7 / 2) as e, (-7 / 2) as g, (n % 3) as h, (f % 2) as i, (n % 0) as j, (7.5 % 2) as k from posts order by title",
    "select id, likely(n) as a, unlikely(f) as b, likelihood(flag, 0.5) as c from posts order by title",
];

/// What PostgreSQL can't answer as SQLite does: refused there (400, the
/// view query's validation error), run on SQLite.
const PG_REFUSED_VIEWS: &[&str] = &[
    "select id, typeof(n) as t from posts",
    "select id, max(n, f) as m from posts",
    "select id, unicode(title) as s from posts",
    "select id, strftime('%Y', '2024-01-02') as y from posts",
    "select id, json_extract(meta, '$.' || 'a') as j from posts",
    "select id, json_type(meta) as j from posts",
    "select id, cast(title as blob) as b from posts",
    "select id, (title collate rtrim) as t from posts",
    "select id, date('now') as d from posts",
];

#[test]
fn view_queries_answer_on_postgres_as_on_sqlite() {
    let Some(pg) = PgCluster::start(HBA) else {
        return;
    };
    database_with_role(&pg, "vq", "app4", "app4-Secret-14");
    let root = TempRoot::new("pgvq");
    let cfg = config_file(&root, &pg, "vq", "app4", "app4-Secret-14");
    let on_pg = TestServer::builder()
        .root(root.clone())
        .config(&cfg)
        .start();
    let on_lite = TestServer::start();
    view_sources(&on_pg);
    view_sources(&on_lite);

    let mut failures = Vec::new();
    for q in SAME_VIEWS {
        let lite = dry_run(&on_lite, q);
        let pgv = dry_run(&on_pg, q);
        if lite.0 != 200 {
            failures.push(format!("{q}: SQLite refused it: {}", lite.1));
        } else if lite != pgv {
            failures.push(format!(
                "{q}:\n SQLite     {}\n PostgreSQL {}",
                lite.1, pgv.1
            ));
        }
    }
    for q in PG_REFUSED_VIEWS {
        let (st, v) = dry_run(&on_lite, q);
        if st != 200 {
            failures.push(format!("{q}: SQLite refused it: {v}"));
        }
        let (st, v) = dry_run(&on_pg, q);
        if st != 400 {
            failures.push(format!("{q}: PostgreSQL answered {st}: {v}"));
        } else {
            crate::common::assert_error_shape(&v, 400, q);
        }
    }
    assert!(
        failures.is_empty(),
        "{} view queries differ:\n{}\n{}",
        failures.len(),
        failures.join("\n"),
        on_pg.output()
    );

    // A view column collated `nocase`: its filter's `~`/`!~` select the
    // same records on both engines.
    for srv in [&on_lite, &on_pg] {
        srv.create_collection(&json!({"name": "vt", "type": "view", "listRule": "",
            "viewQuery": "select id, cast((title collate nocase) as text) as t, n from posts"}));
    }
    for filter in [
        "t ~ 'ALP'",
        "t !~ 'a'",
        "t ~ 'É'",
        "t = 'delta'",
        "t ~ 'e' && n > 0",
    ] {
        let lite = on_lite
            .su()
            .list("vt", &[("filter", filter), ("sort", "n")]);
        let pgl = on_pg.su().list("vt", &[("filter", filter), ("sort", "n")]);
        assert_eq!(lite.0, 200, "{filter}: {}", lite.1);
        assert_eq!(pgl.0, 200, "{filter}: {}\n{}", pgl.1, on_pg.output());
        assert_eq!(
            crate::common::ids(&lite.1),
            crate::common::ids(&pgl.1),
            "{filter}"
        );
    }
    // A view's JSON column holding text that is not JSON (SQLite's
    // `upper()`): filtered and sorted, then read, as on SQLite.
    for srv in [&on_lite, &on_pg] {
        srv.create_collection(&json!({"name": "vu", "type": "view", "listRule": "",
            "viewQuery": "select id, upper(title) as up, (n > 3) as big, json_extract(meta, '$.a') as a, n from posts"}));
    }
    for (filter, sort) in [
        ("up ~ 'ALP'", "n"),
        ("up = 'BETA'", "n"),
        ("up != '' && big = 0", "-up"),
        ("a = 1 || a = 'x'", "up"),
        ("", "a,up"),
    ] {
        let lite = on_lite
            .su()
            .list("vu", &[("filter", filter), ("sort", sort)]);
        let pgl = on_pg.su().list("vu", &[("filter", filter), ("sort", sort)]);
        assert_eq!(lite.0, 200, "{filter}: {}", lite.1);
        assert_eq!(pgl.0, 200, "{filter}: {}\n{}", pgl.1, on_pg.output());
        assert_eq!(normalized(&lite.1), normalized(&pgl.1), "{filter} | {sort}");
    }
}

/// The plans auto_explain wrote to the server's log (JSON) for statements
/// whose text has every one of `parts`.
fn logged_plans(pg: &PgCluster, parts: &[&str]) -> Vec<String> {
    let log = std::fs::read_to_string(pg.root.join("server.log")).expect("server log");
    log.split("plan:")
        .skip(1)
        .map(|p| p.split("\n20").next().unwrap_or(p).to_string())
        .filter(|p| parts.iter().all(|s| p.contains(s)))
        .collect()
}

#[test]
fn text_compares_by_bytes_and_sorted_lists_read_an_index() {
    let Some(pg) = PgCluster::start(HBA) else {
        return;
    };
    // A database whose default collation is not byte order (ICU's root
    // locale: 'a' before 'B').
    pg.psql(
        "postgres",
        "CREATE DATABASE loc LOCALE_PROVIDER icu ICU_LOCALE 'und' LOCALE 'C.UTF-8' TEMPLATE template0",
    );
    pg.psql("loc", "REVOKE CREATE ON SCHEMA public FROM PUBLIC");
    role_with_schema(&pg, "loc", "app9", "app9-Secret-15");
    let order = pg.query(
        "loc",
        "SELECT string_agg(x, '' ORDER BY x) FROM (VALUES ('a'), ('B')) v(x)",
    );
    assert!(
        order.contains("aB"),
        "the database's collation should not be byte order: {order}"
    );
    // Every statement's plan in the server's log.
    pg.psql(
        "loc",
        "ALTER ROLE app9 SET session_preload_libraries = 'auto_explain';
         ALTER ROLE app9 SET auto_explain.log_min_duration = 0;
         ALTER ROLE app9 SET auto_explain.log_format = 'json';",
    );
    let root = TempRoot::new("pgloc");
    let cfg = config_file(&root, &pg, "loc", "app9", "app9-Secret-15");
    let srv = TestServer::builder()
        .root(root.clone())
        .config(&cfg)
        .start();
    let su = srv.su();
    srv.create_collection(&json!({
        "name": "notes", "type": "base", "listRule": "", "viewRule": "",
        "fields": [{"name": "title", "type": "text"}, {"name": "n", "type": "number"}],
        "indexes": [
            "CREATE INDEX `idx_notes_n` ON `notes` (`n`)",
            "CREATE INDEX `idx_notes_title` ON `notes` (`title`)"
        ]
    }));
    for (title, n) in [("a", -1), ("B", -2), ("_", -3), ("é", -4)] {
        let (st, r) = su.post(
            "/api/collections/notes/records",
            &json!({"title": title, "n": n}),
        );
        assert_eq!(st, 200, "{r}\n{}", srv.output());
    }
    let titles = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|r| r["title"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    // Lists: sorted and compared by bytes.
    let (st, l) = su.list("notes", &[("filter", "n < 0"), ("sort", "title")]);
    assert_eq!(st, 200, "{l}\n{}", srv.output());
    assert_eq!(titles(&l), ["B", "_", "a", "é"], "{l}");
    let (st, l) = su.list(
        "notes",
        &[("filter", "n < 0 && title > 'Z'"), ("sort", "-title")],
    );
    assert_eq!(st, 200, "{l}\n{}", srv.output());
    assert_eq!(titles(&l), ["é", "a", "_"], "{l}");
    // A view's own comparisons and order, on the table's text.
    let (st, v) = su.post(
        "/api/collections",
        &json!({"name": "low", "type": "view", "listRule": "",
                "viewQuery": "SELECT id, title FROM notes WHERE n < 0 AND title < 'a'"}),
    );
    assert_eq!(st, 200, "{v}\n{}", srv.output());
    let (st, l) = su.list("low", &[("sort", "title")]);
    assert_eq!(st, 200, "{l}\n{}", srv.output());
    assert_eq!(titles(&l), ["B", "_"], "{l}");

    // Lists sorted by an indexed column read the index (forwards or
    // backwards) and stop after the page: no Sort.
    pg.psql(
        "loc",
        "INSERT INTO app9.notes (title, n) SELECT md5(g::text), g FROM generate_series(1, 5000) g;
         ANALYZE app9.notes;",
    );
    for (sort, direction) in [
        ("-n", "Backward"),
        ("title", "Forward"),
        ("-title", "Backward"),
    ] {
        let (st, l) = su.list("notes", &[("sort", sort), ("perPage", "5")]);
        assert_eq!(st, 200, "{l}\n{}", srv.output());
        let key = sort.trim_start_matches('-');
        let plans = logged_plans(&pg, &["ORDER BY", &format!("\\\"{key}\\\""), "LIMIT"]);
        let plan = plans.last().unwrap_or_else(|| {
            panic!(
                "no plan logged for sort={sort}:\n{}",
                std::fs::read_to_string(pg.root.join("server.log")).unwrap_or_default()
            )
        });
        assert!(
            plan.contains("\"Index Scan\"")
                && plan.contains(&format!("\"Scan Direction\": \"{direction}\""))
                && plan.contains(&format!("idx_notes_{key}"))
                && !plan.contains("\"Sort\""),
            "sort={sort}: {plan}"
        );
    }
}
