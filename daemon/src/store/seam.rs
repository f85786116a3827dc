//! The seam between the store and its database engines, checked: a walk
//! over `daemon/src` that fails when
//! - a file outside an engine's module (`store/sqlite/`, `store/postgres/`)
//!   spells SQLite-specific SQL (`INSERT OR …`, `ON CONFLICT`, `rowid`,
//!   `strftime(`, `json_each`, `json_extract`, `COLLATE NOCASE`, `PRAGMA`,
//!   `sqlite_master`/`sqlite_schema`, `last_insert_rowid`, `GLOB`,
//!   `datetime(`, `randomblob`, `julianday(`, `RAISE(ABORT …`, `LIMIT -1`)
//!   or PostgreSQL-specific SQL (`$1` placeholders, `jsonb`, `serial`,
//!   `plpgsql`, `AS IDENTITY`, `pg_catalog` and its tables);
//! - a file outside an engine's module spells PostgreSQL-specific SQL in a
//!   string literal (`jsonb…`, a `::` cast, a `$1` placeholder, `ILIKE`,
//!   `translate(`, `IS [NOT] DISTINCT FROM`, `NULLS FIRST/LAST`,
//!   `COLLATE "C"`): only string literals are looked at, since Rust spells
//!   `::` and `$` too;
//! - a file outside an engine's module names `rusqlite` or calls the engine
//!   connection's statement methods (`.execute(`, `.prepare(`,
//!   `.query_row(`, …): the rest of the store runs its statements through
//!   `Conn`'s own (`exec`, `one`, `all`, `each`, `exists`, `script`, which
//!   only `store/` may call) and reads rows as `store::Row`.
//!
//! Only code counts: comments are stripped (string literals are kept, they
//! are where SQL is), and so are test modules (`#[cfg(test)] mod … {` to the
//! end of a file, and the files of `#[cfg(test)] mod …;`): the filter's
//! tests, for one, run compiled SQL on an in-memory SQLite to check its
//! answers. What remains and is not SQL for the engine is allow-listed
//! below, line by line, each with its reason; an entry that allows nothing
//! fails the test.

use regex_lite::Regex;
use std::path::{Path, PathBuf};

/// Directories (under `daemon/src`) that hold an engine: everything there
/// may be engine-specific.
const ENGINES: &[&str] = &["store/sqlite/", "store/postgres/"];

/// The checker itself (it spells what it looks for).
const SELF: &str = "store/seam.rs";

/// Lines that match a pattern without being SQL for the engine: (file,
/// text the code line contains, why).
const ALLOW: &[(&str, &str, &str)] = &[
    (
        "schema/view.rs",
        "\"glob\",",
        "the SQL functions a PocketBase view query may call: PocketBase's view \
         queries are SQLite's SQL, parsed (sqlparser's SQLite dialect) and checked \
         before the engine runs them",
    ),
    ("schema/view.rs", "\"json_extract\",", "as above"),
    (
        "schema/view.rs",
        "\"jsonb\",",
        "as above: SQLite's own `jsonb()` function, which a view query may call",
    ),
    (
        "schema/view.rs",
        "const table_functions: &[&str] = &[\"json_each\", \"json_tree\"];",
        "as above: the table-valued functions a view query may read",
    ),
    (
        "schema/view.rs",
        "some(true) => self.w(\" nulls first\"),",
        "a view query's ORDER BY rendered again as written: SQLite's grammar too",
    ),
    (
        "schema/view.rs",
        "some(false) => self.w(\" nulls last\"),",
        "as above",
    ),
];

/// What is looked for: (name, pattern on the lowercased code line, whether
/// the match is a call or a name that a Rust path (`x::name`, `.name`,
/// `fn name`) may also spell).
struct Rule {
    name: &'static str,
    re: Regex,
    rust_name: bool,
}

fn sqlisms() -> Vec<Rule> {
    let r = |name, re: &str, rust_name| Rule {
        name,
        re: Regex::new(re).expect("pattern"),
        rust_name,
    };
    vec![
        r(
            "INSERT OR …",
            r"\binsert\s+or\s+(replace|ignore|abort|fail|rollback)\b",
            false,
        ),
        r("ON CONFLICT", r"\bon\s+conflict\b", false),
        // `@rowid` is a field of PocketBase's filter language, not SQL;
        // `dialect::rowid` is a Rust path.
        r("rowid", r"(^|[^@\w:])rowid\b", false),
        r("strftime(", r"\bstrftime\s*\(", true),
        r("json_each", r"\bjson_each\b", true),
        r("json_extract", r"\bjson_extract\b", true),
        r("COLLATE NOCASE", r"\bcollate\s+nocase\b", false),
        r("PRAGMA", r"\bpragma\b", false),
        r("sqlite_master", r"\bsqlite_(master|schema)\b", false),
        r("last_insert_rowid", r"\blast_insert_rowid\b", false),
        r("GLOB", r"\bglob\b", false),
        r("datetime(", r"\bdatetime\s*\(", true),
        r("randomblob", r"\brandomblob\b", false),
        r("LIMIT -1", r"\blimit\s+-1\b", false),
        r("julianday", r"\bjulianday\s*\(", false),
        r(
            "RAISE(ABORT",
            r"\braise\s*\(\s*(abort|fail|rollback|ignore)\b",
            false,
        ),
        // PostgreSQL's own spellings: its types and languages, and its
        // catalogue (`$n` placeholders and `jsonb`: `pgisms`, in literals).
        r("bigserial", r"\b(big)?serial\b", false),
        r("plpgsql", r"\bplpgsql\b", false),
        r("GENERATED … AS IDENTITY", r"\bas\s+identity\b", false),
        r(
            "pg_catalog",
            r"\bpg_(catalog|class|namespace|current_wal\w*)\b",
            false,
        ),
    ]
}

/// PostgreSQL's spellings, looked for in the string literals of a line.
fn pgisms() -> Vec<Rule> {
    let r = |name, re: &str| Rule {
        name,
        re: Regex::new(re).expect("pattern"),
        rust_name: false,
    };
    vec![
        r("jsonb", r"\bjsonb\w*"),
        r(":: cast", r"::\s*[a-z]"),
        r("$n placeholder", r"\$[0-9]+\b"),
        r("ILIKE", r"\bilike\b"),
        r("translate(", r"\btranslate\s*\("),
        r("IS DISTINCT FROM", r"\bis\s+(not\s+)?distinct\s+from\b"),
        r("NULLS FIRST/LAST", r"\bnulls\s+(first|last)\b"),
        r("COLLATE \"C\"", r#"\bcollate\s+\\?"c\\?""#),
    ]
}

/// The contents of the string literals of a code line, each followed by a
/// space.
fn literals(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    let mut in_str = false;
    while let Some(c) = chars.next() {
        if in_str {
            match c {
                '\\' => {
                    out.push(c);
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                }
                '"' => {
                    in_str = false;
                    out.push(' ');
                }
                _ => out.push(c),
            }
        } else if c == '"' {
            in_str = true;
        }
    }
    out
}

fn engine_api() -> Vec<Rule> {
    let r = |name, re: &str| Rule {
        name,
        re: Regex::new(re).expect("pattern"),
        rust_name: false,
    };
    vec![
        r("rusqlite", r"\brusqlite\b"),
        r(
            "a connection's statement method",
            r"\.(execute|execute_batch|prepare|prepare_cached|query_row|query_one|pragma_update|last_insert_rowid|transaction|unchecked_transaction)\s*\(",
        ),
    ]
}

/// Whether the match at `start` is a Rust path or definition (`dialect::
/// json_each(…)`, `self.strftime(…)`, `fn strftime`), not SQL text.
fn rust_path_at(line: &str, start: usize) -> bool {
    let before = line[..start].trim_end();
    before.ends_with("::") || before.ends_with('.') || before.ends_with("fn")
}

/// The code of a Rust source: each line without its comment, lowercased,
/// with its number; nothing from the first test module on.
pub(crate) fn code_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_str = false;
    let mut raw_hashes: Option<usize> = None;
    let mut block = 0usize;
    let mut cfg_test = false;
    for (n, line) in text.lines().enumerate() {
        let t = line.trim();
        if cfg_test && t.starts_with("mod ") && t.ends_with('{') {
            break;
        }
        cfg_test = t == "#[cfg(test)]" || (cfg_test && t.starts_with("#["));
        let b = line.as_bytes();
        let mut code = String::with_capacity(line.len());
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            if block > 0 {
                if b[i..].starts_with(b"*/") {
                    block -= 1;
                    i += 2;
                } else if b[i..].starts_with(b"/*") {
                    block += 1;
                    i += 2;
                } else {
                    i += 1;
                }
                continue;
            }
            if let Some(h) = raw_hashes {
                let end = format!("\"{}", "#".repeat(h));
                if b[i..].starts_with(end.as_bytes()) {
                    raw_hashes = None;
                    code.push_str(&end);
                    i += end.len();
                } else {
                    code.push(c as char);
                    i += 1;
                }
                continue;
            }
            if in_str {
                if c == b'\\' && i + 1 < b.len() {
                    code.push(c as char);
                    code.push(b[i + 1] as char);
                    i += 2;
                    continue;
                }
                if c == b'"' {
                    in_str = false;
                }
                code.push(c as char);
                i += 1;
                continue;
            }
            if b[i..].starts_with(b"//") {
                break;
            }
            if b[i..].starts_with(b"/*") {
                block += 1;
                i += 2;
                continue;
            }
            if c == b'r' && (i == 0 || !(b[i - 1] as char).is_alphanumeric()) {
                let h = b[i + 1..].iter().take_while(|&&x| x == b'#').count();
                if b.get(i + 1 + h) == Some(&b'"') {
                    raw_hashes = Some(h);
                    code.push_str(&line[i..i + 2 + h]);
                    i += 2 + h;
                    continue;
                }
            }
            if c == b'"' {
                in_str = true;
                code.push('"');
                i += 1;
                continue;
            }
            if c == b'\'' {
                // A char literal ('"', '\'', '\u{..}'), or a lifetime.
                if b.get(i + 1) == Some(&b'\\') {
                    if let Some(e) = b[i + 2..].iter().position(|&x| x == b'\'') {
                        code.push_str("' '");
                        i += e + 3;
                        continue;
                    }
                } else if b.get(i + 2) == Some(&b'\'') {
                    code.push_str("' '");
                    i += 3;
                    continue;
                }
            }
            code.push(c as char);
            i += 1;
        }
        out.push((n + 1, code.to_ascii_lowercase()));
    }
    out
}

/// Every violation in one file's text: "path:line: what".
pub(crate) fn check(rel: &str, text: &str) -> Vec<String> {
    if rel == SELF || ENGINES.iter().any(|e| rel.starts_with(e)) {
        return Vec::new();
    }
    let mut rules = sqlisms();
    rules.extend(engine_api());
    let pg = pgisms();
    let mut out = Vec::new();
    for (n, line) in code_lines(text) {
        if ALLOW
            .iter()
            .any(|(f, l, _)| *f == rel && line.contains(&l.to_ascii_lowercase()))
        {
            continue;
        }
        for rule in hits(&rules, &line) {
            out.push(format!("{rel}:{n}: {} outside the engine", rule.name));
        }
        for rule in hits(&pg, &literals(&line)) {
            out.push(format!("{rel}:{n}: {} outside the engine", rule.name));
        }
    }
    out
}

/// The rules a code line breaks.
fn hits<'r>(rules: &'r [Rule], line: &str) -> Vec<&'r Rule> {
    rules
        .iter()
        .filter(|rule| {
            rule.re
                .find_iter(line)
                .any(|m| !(rule.rust_name && rust_path_at(line, m.start())))
        })
        .collect()
}

/// The files of the test-only modules `rel` declares (`#[cfg(test)] mod
/// name;`), as paths under `daemon/src`.
pub(crate) fn test_modules(rel: &str, text: &str) -> Vec<String> {
    let dir = match rel.rsplit_once('/') {
        Some((d, "mod.rs")) => format!("{d}/"),
        Some((d, f)) => format!("{d}/{}/", f.trim_end_matches(".rs")),
        None if rel == "lib.rs" || rel == "main.rs" => String::new(),
        None => format!("{}/", rel.trim_end_matches(".rs")),
    };
    let mut out = Vec::new();
    let mut cfg_test = false;
    for line in text.lines() {
        let t = line.trim();
        if cfg_test {
            if let Some(name) = t.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
                out.push(format!("{dir}{name}.rs"));
            }
        }
        cfg_test = t == "#[cfg(test)]" || (cfg_test && t.starts_with("#["));
    }
    out
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_engine_specific_sql_outside_the_engine() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&root, &mut files);
        assert!(files.len() > 50, "the walk found the sources");
        let texts: Vec<(String, String)> = files
            .iter()
            .map(|f| {
                let rel = f
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                (rel, std::fs::read_to_string(f).unwrap())
            })
            .collect();
        let tests: Vec<String> = texts
            .iter()
            .flat_map(|(rel, text)| test_modules(rel, text))
            .collect();
        assert!(tests.contains(&"filter/tests.rs".to_string()), "{tests:?}");
        let mut bad = Vec::new();
        for (rel, text) in &texts {
            if !tests.contains(rel) {
                bad.extend(check(rel, text));
            }
        }
        assert!(
            bad.is_empty(),
            "engine-specific code outside the engine:\n{}",
            bad.join("\n")
        );
        // Every allow-listed line still exists and would be refused without
        // its entry (a stale entry allows nothing).
        let rules = sqlisms();
        let pg = pgisms();
        for (f, l, _) in ALLOW {
            let text = std::fs::read_to_string(root.join(f)).unwrap();
            let l = l.to_ascii_lowercase();
            assert!(
                code_lines(&text).iter().any(|(_, x)| x.contains(&l)
                    && !(hits(&rules, x).is_empty() && hits(&pg, &literals(x)).is_empty())),
                "allow-list entry not needed: {f}: {l}"
            );
        }
    }

    #[test]
    fn the_scanner_finds_sqlisms_in_code_and_not_in_comments() {
        let sample = r#"
// PRAGMA in a comment is fine; so is rowid.
/* INSERT OR REPLACE in a block comment */
fn f(c: &Conn) {
    let a = "SELECT * FROM t ORDER BY rowid";
    let b = format!("INSERT OR IGNORE INTO t VALUES (?1)");
    let c = "x COLLATE  NoCase"; // and a PRAGMA after code
    let d = dialect::json_each(&col);
    let e = "SELECT value FROM json_each(?1)";
    let f = "@rowid";
    let g = '"'; let h = "pragma user_version";
}
#[cfg(test)]
mod tests {
    const X: &str = "PRAGMA journal_mode=WAL";
}
"#;
        let got = check("records/x.rs", sample);
        assert_eq!(
            got,
            vec![
                "records/x.rs:5: rowid outside the engine",
                "records/x.rs:6: INSERT OR … outside the engine",
                "records/x.rs:7: COLLATE NOCASE outside the engine",
                "records/x.rs:9: json_each outside the engine",
                "records/x.rs:11: PRAGMA outside the engine",
            ]
        );
        // The same text is the engine's own business.
        assert!(check("store/sqlite/x.rs", sample).is_empty());
    }

    #[test]
    fn the_scanner_finds_postgresql_spellings_in_literals_only() {
        let sample = r#"
fn f(c: &Conn) {
    let a = "SELECT CAST(x AS jsonb) FROM t";
    let b = "SELECT x::text FROM t WHERE id = $1";
    let c = "name ILIKE ?";
    let d = format!("translate({col}, 'AB', 'ab')");
    let e = "a IS NOT DISTINCT FROM b";
    let f = "ORDER BY a NULLS FIRST";
    let g = "ORDER BY a COLLATE \"C\"";
    let h = std::mem::take(&mut v); let i = format!("{x:?} costs ${y}");
    // x::jsonb in a comment
}
"#;
        assert_eq!(
            check("records/x.rs", sample),
            vec![
                "records/x.rs:3: jsonb outside the engine",
                "records/x.rs:4: :: cast outside the engine",
                "records/x.rs:4: $n placeholder outside the engine",
                "records/x.rs:5: ILIKE outside the engine",
                "records/x.rs:6: translate( outside the engine",
                "records/x.rs:7: IS DISTINCT FROM outside the engine",
                "records/x.rs:8: NULLS FIRST/LAST outside the engine",
                "records/x.rs:9: COLLATE \"C\" outside the engine",
            ]
        );
        assert!(check("store/postgres/x.rs", sample).is_empty());
    }

    #[test]
    fn the_scanner_keeps_rusqlite_inside_the_engine() {
        let sample =
            "use rusqlite::Connection;\nfn f(c: &Conn) { c.execute_batch(\"SAVEPOINT s\"); }\n";
        assert_eq!(
            check("sync/x.rs", sample),
            vec![
                "sync/x.rs:1: rusqlite outside the engine",
                "sync/x.rs:2: a connection's statement method outside the engine",
            ]
        );
        // Nor may the rest of the store: it has `Conn`'s statement API.
        assert_eq!(check("store/records.rs", sample).len(), 2);
        assert!(check("store/sqlite/conn.rs", sample).is_empty());
    }

    #[test]
    fn test_modules_are_found_where_they_are_declared() {
        let text = "mod a;\n#[cfg(test)]\nmod tests;\n#[cfg(test)]\n#[allow(dead_code)]\nmod bench;\nfn f() {}\n";
        assert_eq!(
            test_modules("filter/mod.rs", text),
            vec!["filter/tests.rs", "filter/bench.rs"]
        );
        assert_eq!(
            test_modules("records/read.rs", text),
            vec!["records/read/tests.rs", "records/read/bench.rs"]
        );
        // A declaration is not the end of the file's code.
        let code = code_lines(&format!("{text}const S: &str = \"PRAGMA x\";\n"));
        assert!(code.iter().any(|(_, l)| l.contains("pragma")));
    }
}
