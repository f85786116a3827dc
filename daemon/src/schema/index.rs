//! Collection indexes. PocketBase keeps them as `CREATE INDEX` strings; we
//! parse each into an `IndexDef` and render SQL only from the parsed parts,
//! so no index text from a request reaches SQLite.

use regex_lite::Regex;
use std::sync::OnceLock;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexColumn {
    pub name: String,
    /// NOCASE, BINARY or RTRIM.
    pub collate: Option<String>,
    pub desc: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexDef {
    pub name: String,
    pub unique: bool,
    pub table: String,
    pub columns: Vec<IndexColumn>,
    /// Partial index condition, limited to `column != ''` (what PocketBase
    /// itself generates) or `column IS NOT NULL`.
    pub where_clause: Option<IndexWhere>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexWhere {
    NotEmpty(String),
    NotNull(String),
}

fn index_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r#"(?is)^\s*CREATE\s+(UNIQUE\s+)?INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?[`"'\[]?([A-Za-z0-9_]+)[`"'\]]?\s+ON\s+[`"'\[]?([A-Za-z0-9_]+)[`"'\]]?\s*\(([^()]+)\)\s*(?:WHERE\s+(.+?))?\s*;?\s*$"#,
        )
        .expect("static regex")
    })
}

fn strip_quotes(s: &str) -> &str {
    s.trim_matches(|c| c == '`' || c == '"' || c == '\'' || c == '[' || c == ']')
}

fn is_ident(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses one index string; `Err` carries a user-facing reason.
pub fn parse_index(sql: &str) -> Result<IndexDef, String> {
    let caps = index_re()
        .captures(sql)
        .ok_or_else(|| "Invalid CREATE INDEX expression.".to_string())?;
    let unique = caps.get(1).is_some();
    let name = caps[2].to_string();
    let table = caps[3].to_string();
    let mut columns = Vec::new();
    for part in caps[4].split(',') {
        let words: Vec<&str> = part.split_whitespace().collect();
        let Some(first) = words.first() else {
            return Err("Invalid index column.".into());
        };
        let col = strip_quotes(first);
        if !is_ident(col) {
            return Err(format!("Invalid index column {col:?}."));
        }
        let mut collate = None;
        let mut desc = false;
        let mut i = 1;
        while i < words.len() {
            match words[i].to_ascii_uppercase().as_str() {
                "COLLATE" => {
                    let c = words.get(i + 1).map(|w| w.to_ascii_uppercase());
                    match c.as_deref() {
                        Some("NOCASE") | Some("BINARY") | Some("RTRIM") => collate = c,
                        _ => return Err("Unsupported index collation.".into()),
                    }
                    i += 2;
                }
                "ASC" => i += 1,
                "DESC" => {
                    desc = true;
                    i += 1
                }
                _ => return Err(format!("Unsupported index column option {:?}.", words[i])),
            }
        }
        columns.push(IndexColumn {
            name: col.to_string(),
            collate,
            desc,
        });
    }
    let where_clause = match caps.get(5) {
        None => None,
        Some(w) => Some(parse_where(w.as_str())?),
    };
    Ok(IndexDef {
        name,
        unique,
        table,
        columns,
        where_clause,
    })
}

fn parse_where(w: &str) -> Result<IndexWhere, String> {
    let words: Vec<&str> = w.split_whitespace().collect();
    let err = || {
        "Only `column != ''` and `column IS NOT NULL` partial indexes are supported.".to_string()
    };
    match words.as_slice() {
        [col, "!=", "''"] | [col, "<>", "''"] if is_ident(strip_quotes(col)) => {
            Ok(IndexWhere::NotEmpty(strip_quotes(col).to_string()))
        }
        [col, is, not, null]
            if is.eq_ignore_ascii_case("is")
                && not.eq_ignore_ascii_case("not")
                && null.eq_ignore_ascii_case("null")
                && is_ident(strip_quotes(col)) =>
        {
            Ok(IndexWhere::NotNull(strip_quotes(col).to_string()))
        }
        _ => Err(err()),
    }
}

impl IndexDef {
    /// Renders the index as PocketBase writes it (backquoted identifiers).
    pub fn to_sql(&self) -> String {
        let cols: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                let mut s = format!("`{}`", c.name);
                if let Some(k) = &c.collate {
                    s.push_str(" COLLATE ");
                    s.push_str(k);
                }
                if c.desc {
                    s.push_str(" DESC");
                }
                s
            })
            .collect();
        let mut s = format!(
            "CREATE {}INDEX `{}` ON `{}` ({})",
            if self.unique { "UNIQUE " } else { "" },
            self.name,
            self.table,
            cols.join(", ")
        );
        match &self.where_clause {
            Some(IndexWhere::NotEmpty(c)) => s.push_str(&format!(" WHERE `{c}` != ''")),
            Some(IndexWhere::NotNull(c)) => s.push_str(&format!(" WHERE `{c}` IS NOT NULL")),
            None => {}
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pocketbase_default_indexes() {
        let d = parse_index("CREATE UNIQUE INDEX `idx_email__pb_users_auth_` ON `users` (`email`) WHERE `email` != ''").unwrap();
        assert!(d.unique);
        assert_eq!(d.table, "users");
        assert_eq!(d.columns[0].name, "email");
        assert_eq!(d.where_clause, Some(IndexWhere::NotEmpty("email".into())));
        let d = parse_index("CREATE INDEX idx_x ON posts (a, b DESC, c COLLATE nocase)").unwrap();
        assert_eq!(d.columns.len(), 3);
        assert!(d.columns[1].desc);
        assert_eq!(d.columns[2].collate.as_deref(), Some("NOCASE"));
    }

    #[test]
    fn rejects_anything_else() {
        for bad in [
            "CREATE INDEX x ON t (a); DROP TABLE t",
            "CREATE INDEX x ON t (a) WHERE 1=1; DROP TABLE t",
            "CREATE INDEX x ON t (lower(a))",
            "DROP TABLE users",
            "CREATE INDEX x ON t (a COLLATE evil)",
        ] {
            assert!(parse_index(bad).is_err(), "{bad}");
        }
    }
}
