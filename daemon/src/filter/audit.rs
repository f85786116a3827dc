//! A checker for compiled SQL, used by the tests and the fuzz target: it
//! proves that nothing typed by a user reached the SQL text. Every token of
//! the output must be a placeholder, a number, punctuation, one of the few
//! keywords and string constants the compiler writes, a schema name, or a
//! generated alias (`_j3`, `_m12`, `_j7_2`...).

use crate::schema::Schema;
use crate::store::engine::Engine;
use std::collections::HashSet;

/// The words the compiler writes: the dialect's vocabulary.
const KEYWORDS: &[&str] = crate::store::dialect::VOCABULARY;

const LITERALS: &[&str] = &["", "%", "\\", "array", "pb"];

/// What an engine's SQL may hold besides SQLite's words and literals:
/// (words, string literals, quoted names, punctuation).
type Extra = (
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
    &'static [u8],
);

fn extra(engine: Engine) -> Extra {
    match engine {
        Engine::Sqlite => (&[], &[], &[], &[]),
        #[cfg(feature = "postgres")]
        Engine::Postgres => {
            use crate::store::postgres::dialect as pg;
            (pg::VOCABULARY, pg::LITERALS, &["C"], b"~#[]")
        }
    }
}

/// The schema names the compiler may write.
pub fn schema_names(schema: &Schema) -> HashSet<String> {
    let mut s = HashSet::new();
    for c in schema.all() {
        s.insert(c.name.clone());
        for f in &c.fields {
            s.insert(f.name.clone());
        }
    }
    s.insert("id".into());
    s.insert("emailVisibility".into());
    s
}

fn is_generated_alias(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('_') else {
        return false;
    };
    let letters = rest.chars().take_while(|c| c.is_ascii_lowercase()).count();
    let tail = &rest[letters..];
    letters > 0 && !tail.is_empty() && tail.chars().all(|c| c.is_ascii_digit() || c == '_')
}

/// Checks `sql` (SQLite's); `Err` names the first offending token.
pub fn check_sql(sql: &str, names: &HashSet<String>) -> Result<(), String> {
    check_sql_for(Engine::Sqlite, sql, names)
}

/// Checks `sql` written for `engine`.
pub fn check_sql_for(engine: Engine, sql: &str, names: &HashSet<String>) -> Result<(), String> {
    let (words, literals, quoted, punct) = extra(engine);
    let b = sql.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'?' | b'(' | b')' | b',' | b'.' | b'=' | b'<' | b'>' | b'!' | b'|' | b'*'
            | b'-' | b'+' => {
                if c == b'-' && b.get(i + 1) == Some(&b'-') {
                    return Err(format!("comment at {i}"));
                }
                i += 1;
            }
            c if punct.contains(&c) => i += 1,
            b'"' => {
                let end = sql[i + 1..].find('"').ok_or("unterminated identifier")? + i + 1;
                let name = &sql[i + 1..end];
                if !names.contains(name) && !is_generated_alias(name) && !quoted.contains(&name) {
                    return Err(format!("identifier {name:?} is not from the schema"));
                }
                i = end + 1;
            }
            b'\'' => {
                let end = sql[i + 1..].find('\'').ok_or("unterminated literal")? + i + 1;
                let lit = &sql[i + 1..end];
                if !LITERALS.contains(&lit) && !literals.contains(&lit) {
                    return Err(format!("string literal {lit:?} in SQL"));
                }
                i = end + 1;
            }
            b'0'..=b'9' => {
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let w = sql[start..i].to_ascii_lowercase();
                if !KEYWORDS.contains(&w.as_str()) && !words.contains(&w.as_str()) {
                    return Err(format!("unexpected word {:?}", &sql[start..i]));
                }
            }
            _ => {
                return Err(format!(
                    "unexpected character {:?} at {i}",
                    sql[i..].chars().next()
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_rejects_foreign_text() {
        let names: HashSet<String> = ["posts".to_string(), "title".to_string()].into();
        assert!(check_sql(
            "(\"posts\".\"title\" = ?) AND \"_j1\".value IS NOT NULL",
            &names
        )
        .is_ok());
        for bad in [
            "\"users\".\"x\"",
            "'abc'",
            "x = 1 -- c",
            "UNION SELECT 1",
            "a; DROP",
            "\"_j\"",
            "/* c */",
        ] {
            assert!(check_sql(bad, &names).is_err(), "{bad}");
        }
    }
}
