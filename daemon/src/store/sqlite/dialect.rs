//! The SQLite dialect: the one module that spells SQLite-specific SQL.
//!
//! Everything here builds [`Frag`]s — SQL fragments whose text comes only
//! from `&'static str` constants, validated identifiers ([`Ident`]) and
//! integers, and whose values are bound parameters. A runtime string can
//! reach SQL text only through [`Ident::new`], which admits nothing but
//! `[A-Za-z0-9_]+`. The filter compiler and the store call these helpers;
//! the filter compiler reaches them through `store::engine`, which picks
//! this module or PostgreSQL's (`store/postgres/dialect.rs`) per compile.

use crate::store::SqlValue as Value;
use std::fmt::Write as _;

/// Quotes an SQL identifier that comes from the schema (collection or field
/// names, validated as `[A-Za-z0-9_]+` when the collection is saved). Any
/// embedded quote is doubled, so even a bad name cannot end the identifier.
pub fn quote_ident(name: &str) -> String {
    debug_assert!(
        is_plain_ident(name),
        "identifier outside [A-Za-z0-9_]: {name:?}"
    );
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes `name` only if it is a plain identifier (`[A-Za-z0-9_]+`).
pub fn try_quote_ident(name: &str) -> Option<String> {
    is_plain_ident(name).then(|| format!("\"{name}\""))
}

fn is_plain_ident(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// An SQL identifier that is safe to splice: a schema name checked against
/// `[A-Za-z0-9_]+`, or an alias generated from a fixed prefix and a number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ident(String);

impl Ident {
    /// Admits a schema name; `None` for anything outside `[A-Za-z0-9_]+`.
    pub fn new(name: &str) -> Option<Ident> {
        is_plain_ident(name).then(|| Ident(name.to_string()))
    }

    /// A generated alias such as `_j3`; the prefix is a compile-time constant.
    pub fn generated(prefix: &'static str, n: u32) -> Ident {
        debug_assert!(is_plain_ident(prefix));
        Ident(format!("{prefix}{n}"))
    }

    /// A generated alias with two numbers, such as `_j7_3`.
    pub fn generated_pair(prefix: &'static str, a: u32, b: u32) -> Ident {
        debug_assert!(is_plain_ident(prefix));
        Ident(format!("{prefix}{a}_{b}"))
    }

    /// A name written in the source (`id`, `emailVisibility`).
    pub fn constant(name: &'static str) -> Ident {
        debug_assert!(is_plain_ident(name));
        Ident(name.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A value bound to a placeholder. Keeps the source type (bool vs integer)
/// because LIKE patterns format values the way PocketBase does.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Null,
    Bool(bool),
    Int(i64),
    Real(f64),
    Text(String),
    /// A late-bound parameter: its value is supplied when the rendered
    /// statement is bound (a request value of a rule compiled once). It
    /// is never empty; rendered by [`Frag::render`] it binds NULL.
    Slot(u32),
}

impl Bind {
    pub fn to_value(&self) -> Value {
        match self {
            Bind::Null => Value::Null,
            Bind::Bool(b) => Value::Integer(i64::from(*b)),
            Bind::Int(i) => Value::Integer(*i),
            Bind::Real(f) => Value::Real(*f),
            Bind::Text(s) => Value::Text(s.clone()),
            Bind::Slot(_) => Value::Null,
        }
    }

    /// The value as text (Go's `cast.ToString`: shortest float form without
    /// exponent, `true`/`false`, empty for null).
    pub fn to_text(&self) -> String {
        match self {
            Bind::Null => String::new(),
            Bind::Bool(b) => b.to_string(),
            Bind::Int(i) => i.to_string(),
            Bind::Real(f) => format!("{f}"),
            Bind::Text(s) => s.clone(),
            Bind::Slot(_) => String::new(),
        }
    }

    /// PocketBase's "empty" value test (nil or "").
    pub fn is_empty(&self) -> bool {
        matches!(self, Bind::Null) || matches!(self, Bind::Text(s) if s.is_empty())
    }
}

#[derive(Debug, Clone)]
enum Part {
    Sql(&'static str),
    Ident(Ident),
    Int(i64),
    /// A value that is an operand of the expression (counts as one of its
    /// parameters in PocketBase's null/empty rules; LIKE-wrapped on the right).
    Value(Bind),
    /// A value that is part of the query's shape (JSON paths, ids in joins).
    Aux(Bind),
}

/// An SQL fragment: constant text, safe identifiers, integers and bound
/// values. Rendering turns values into `?` placeholders in textual order.
#[derive(Debug, Clone, Default)]
pub struct Frag {
    parts: Vec<Part>,
}

impl Frag {
    pub fn new() -> Frag {
        Frag::default()
    }

    /// A fragment of constant SQL text.
    pub fn sql(s: &'static str) -> Frag {
        Frag {
            parts: vec![Part::Sql(s)],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Appends constant SQL text.
    pub fn s(mut self, s: &'static str) -> Frag {
        self.parts.push(Part::Sql(s));
        self
    }

    /// Appends a quoted identifier.
    pub fn ident(mut self, i: &Ident) -> Frag {
        self.parts.push(Part::Ident(i.clone()));
        self
    }

    /// Appends `"alias"."column"`.
    pub fn col(self, alias: &Ident, column: &Ident) -> Frag {
        self.ident(alias).s(".").ident(column)
    }

    /// Appends an integer literal.
    pub fn int(mut self, n: i64) -> Frag {
        self.parts.push(Part::Int(n));
        self
    }

    /// Appends an operand value placeholder.
    pub fn value(mut self, v: Bind) -> Frag {
        self.parts.push(Part::Value(v));
        self
    }

    /// Appends a structural value placeholder.
    pub fn aux(mut self, v: Bind) -> Frag {
        self.parts.push(Part::Aux(v));
        self
    }

    /// Appends another fragment.
    pub fn f(mut self, other: &Frag) -> Frag {
        self.parts.extend(other.parts.iter().cloned());
        self
    }

    /// Appends `parts` separated by `sep`.
    pub fn join(mut self, parts: &[Frag], sep: &'static str) -> Frag {
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                self.parts.push(Part::Sql(sep));
            }
            self.parts.extend(p.parts.iter().cloned());
        }
        self
    }

    /// The value, if the fragment is one operand value and nothing else.
    pub fn single_value(&self) -> Option<&Bind> {
        match self.parts.as_slice() {
            [Part::Value(v)] => Some(v),
            _ => None,
        }
    }

    /// The operand values (not the structural ones), in order.
    pub fn values(&self) -> impl Iterator<Item = &Bind> {
        self.parts.iter().filter_map(|p| match p {
            Part::Value(v) => Some(v),
            _ => None,
        })
    }

    /// Rewrites every operand value with `f`.
    pub fn map_values(&self, f: impl Fn(&Bind) -> Bind) -> Frag {
        Frag {
            parts: self
                .parts
                .iter()
                .map(|p| match p {
                    Part::Value(v) => Part::Value(f(v)),
                    other => other.clone(),
                })
                .collect(),
        }
    }

    /// The same fragment with its operand values turned structural.
    pub fn to_aux(&self) -> Frag {
        Frag {
            parts: self
                .parts
                .iter()
                .map(|p| match p {
                    Part::Value(v) => Part::Aux(v.clone()),
                    other => other.clone(),
                })
                .collect(),
        }
    }

    /// Renders the fragment with `?` placeholders, pushing values in order.
    pub fn render(&self, out: &mut String, params: &mut Vec<Value>) {
        self.render_with(out, |v| params.push(v.to_value()));
    }

    /// Renders the fragment with `?` placeholders, pushing the values
    /// themselves (late-bound slots included) in order.
    pub fn render_binds(&self, out: &mut String, params: &mut Vec<Bind>) {
        self.render_with(out, |v| params.push(v.clone()));
    }

    fn render_with(&self, out: &mut String, mut push: impl FnMut(&Bind)) {
        for p in &self.parts {
            match p {
                Part::Sql(s) => out.push_str(s),
                Part::Ident(i) => {
                    out.push('"');
                    out.push_str(i.as_str());
                    out.push('"');
                }
                Part::Int(n) => {
                    let _ = write!(out, "{n}");
                }
                Part::Value(v) | Part::Aux(v) => {
                    out.push('?');
                    push(v);
                }
            }
        }
    }

    /// Renders into a fresh string and parameter list.
    pub fn to_sql(&self) -> (String, Vec<Value>) {
        let mut s = String::new();
        let mut p = Vec::new();
        self.render(&mut s, &mut p);
        (s, p)
    }
}

// ---------------------------------------------------------------------------
// JSON

/// `json_each` over a column that may hold a JSON array, a scalar or
/// non-JSON text: non-arrays are iterated as a one-element array.
pub fn json_each(col: &Frag) -> Frag {
    Frag::sql("json_each(CASE WHEN iif(json_valid(")
        .f(col)
        .s("), json_type(")
        .f(col)
        .s(")='array', FALSE) THEN ")
        .f(col)
        .s(" ELSE json_array(")
        .f(col)
        .s(") END)")
}

/// A table of the main database named past any CTE of the same name
/// (`main."t"`).
pub fn qualified_table(name: &str) -> String {
    format!("main.{}", quote_ident(name))
}

/// `json_each` over a column given as SQL text (`"t"."col"`, from schema
/// identifiers) holding a JSON array of ids; anything else iterates nothing.
pub fn json_each_text(col: &str) -> String {
    format!("json_each(CASE WHEN json_valid({col}) THEN {col} ELSE '[]' END)")
}

/// `json_each` over a bound JSON array (request body values).
pub fn json_each_bound(json_array: Bind) -> Frag {
    Frag::sql("json_each(").aux(json_array).s(")")
}

/// The number of items of a multi-value column; 0 for '' and NULL, 1 for a
/// non-array value.
pub fn json_array_length(col: &Frag) -> Frag {
    Frag::sql("json_array_length(CASE WHEN iif(json_valid(")
        .f(col)
        .s("), json_type(")
        .f(col)
        .s(")='array', FALSE) THEN ")
        .f(col)
        .s(" ELSE (CASE WHEN ")
        .f(col)
        .s(" = '' OR ")
        .f(col)
        .s(" IS NULL THEN json_array() ELSE json_array(")
        .f(col)
        .s(") END) END)")
}

/// Extracts `path` (PocketBase's form: `""`, `"a.b"`, `"[0].c"`) from a
/// column holding JSON or plain text (plain text is treated as a JSON
/// string). The path is bound, never spliced.
pub fn json_extract(col: &Frag, path: &str) -> Frag {
    let path = if !path.is_empty() && !path.starts_with('[') {
        format!(".{path}")
    } else {
        path.to_string()
    };
    Frag::sql("(CASE WHEN json_valid(")
        .f(col)
        .s(") THEN json_extract(")
        .f(col)
        .s(", ")
        .aux(Bind::Text(format!("${path}")))
        .s(") ELSE json_extract(json_object('pb', ")
        .f(col)
        .s("), ")
        .aux(Bind::Text(format!("$.pb{path}")))
        .s(") END)")
}

/// `lhs IN (values of the bound JSON array)`.
pub fn in_json_array(lhs: &Frag, json_array: Bind) -> Frag {
    Frag::new()
        .f(lhs)
        .s(" IN (SELECT value FROM json_each(")
        .aux(json_array)
        .s("))")
}

// ---------------------------------------------------------------------------
// Comparison

/// Null-safe equality: `a IS b` / `a IS NOT b`.
pub fn is(a: &Frag, b: &Frag, negate: bool) -> Frag {
    Frag::new()
        .f(a)
        .s(if negate { " IS NOT " } else { " IS " })
        .f(b)
}

/// `a [NOT] LIKE pattern ESCAPE '\'`.
pub fn like(a: &Frag, pattern: &Frag, negate: bool) -> Frag {
    Frag::new()
        .f(a)
        .s(if negate { " NOT LIKE " } else { " LIKE " })
        .f(pattern)
        .s(" ESCAPE '\\'")
}

/// `a [NOT] LIKE ('%' || b || '%') ESCAPE '\'` (b is an expression).
pub fn like_contains(a: &Frag, b: &Frag, negate: bool) -> Frag {
    Frag::new()
        .f(a)
        .s(if negate {
            " NOT LIKE ('%' || "
        } else {
            " LIKE ('%' || "
        })
        .f(b)
        .s(" || '%') ESCAPE '\\'")
}

/// PocketBase's LIKE operand: unless the text already holds an unescaped
/// `%`, escape `\`, `%` and `_` that are not escaped yet and wrap in `%…%`.
pub fn like_pattern(text: &str) -> String {
    if contains_unescaped(text, '%') {
        return text.to_string();
    }
    format!("%{}%", escape_unescaped(text, &['\\', '%', '_']))
}

fn contains_unescaped(s: &str, ch: char) -> bool {
    let mut prev: Option<char> = None;
    for c in s.chars() {
        if c == ch && prev != Some('\\') {
            return true;
        }
        prev = if c == '\\' && prev == Some('\\') {
            None
        } else {
            Some(c)
        };
    }
    false
}

/// Walks backwards: a special character gets a `\` unless one already
/// precedes it (the `\` itself is then taken as the escape).
fn escape_unescaped(s: &str, specials: &[char]) -> String {
    let rs: Vec<char> = s.chars().collect();
    let mut out: Vec<char> = Vec::with_capacity(rs.len() + 4);
    let mut pending = false;
    for i in (0..rs.len()).rev() {
        if pending {
            if rs[i] != '\\' {
                out.push('\\');
            }
            pending = false;
        } else if specials.contains(&rs[i]) {
            pending = true;
        }
        out.push(rs[i]);
        if i == 0 && pending {
            out.push('\\');
        }
    }
    out.into_iter().rev().collect()
}

// ---------------------------------------------------------------------------
// Functions

pub fn lower(x: &Frag) -> Frag {
    Frag::sql("LOWER(").f(x).s(")")
}

/// SQLite's `strftime(format, time-value, modifiers...)`.
pub fn strftime(args: &[Frag]) -> Frag {
    Frag::sql("strftime(").join(args, ",").s(")")
}

/// Haversine distance in kilometres between two (lon, lat) points.
pub fn geo_distance(lon_a: &Frag, lat_a: &Frag, lon_b: &Frag, lat_b: &Frag) -> Frag {
    Frag::sql("(6371 * acos(cos(radians(")
        .f(lat_a)
        .s(")) * cos(radians(")
        .f(lat_b)
        .s(")) * cos(radians(")
        .f(lon_b)
        .s(") - radians(")
        .f(lon_a)
        .s(")) + sin(radians(")
        .f(lat_a)
        .s(")) * sin(radians(")
        .f(lat_b)
        .s("))))")
}

pub fn random() -> Frag {
    Frag::sql("RANDOM()")
}

/// The implicit row id of `alias`.
pub fn rowid(alias: &Ident) -> Frag {
    Frag::new().ident(alias).s("._rowid_")
}

// ---------------------------------------------------------------------------
// Statements of the store's repositories (system tables)

/// `INSERT INTO table (cols…) VALUES (?…) ON CONFLICT (key…) DO UPDATE SET
/// c = excluded.c, …` for every column of `cols` that is neither in `key`
/// nor `created`: the row is inserted, or its other columns overwritten
/// (its creation time kept). Every name is a constant of the source.
pub fn upsert(table: &'static str, cols: &[&'static str], key: &[&'static str]) -> String {
    let marks = vec!["?"; cols.len()].join(", ");
    let set: Vec<String> = cols
        .iter()
        .filter(|c| !key.contains(c) && **c != "created")
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    format!(
        "INSERT INTO {table} ({}) VALUES ({marks}) ON CONFLICT ({}) DO UPDATE SET {}",
        cols.join(", "),
        key.join(", "),
        set.join(", ")
    )
}

/// `EXISTS …`: the JSON array in `table.column` (schema names, quoted
/// here; anything but an array counts as empty) holds the bound value.
pub fn json_array_holds(table: &str, column: &str) -> String {
    let col = format!("{}.{}", quote_ident(table), quote_ident(column));
    format!(
        "EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid({col}) THEN {col} ELSE '[]' END) je WHERE je.value = ?1)"
    )
}

/// Opens the writer's transaction, taking the write lock at once (so a
/// group of writes never fails half way for want of it).
pub const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// Opens a read transaction: its reads see the database as of its first.
pub const BEGIN_READ: &str = "BEGIN";

/// Appended to a text comparison: compare without regard to ASCII case
/// (how PocketBase matches emails).
pub const COLLATE_NOCASE: &str = " COLLATE NOCASE";

/// The implicit insertion order of a table's rows (a tie-breaker for rows
/// with the same timestamp).
pub const INSERTION_ORDER: &str = "rowid";

/// `col < now - ?days` for a column holding PocketBase's timestamp text
/// (`2006-01-02 15:04:05.000Z`); the number of days is the bound value.
pub fn older_than_days(col: &'static str) -> String {
    format!("julianday(replace(replace({col}, 'Z', ''), 'T', ' ')) < julianday('now') - ?")
}

/// A LIMIT clause that limits nothing (an OFFSET needs one before it).
pub const NO_LIMIT: &str = " LIMIT -1";

/// The column definition of a collection's `id`: text, filled with `r` and
/// 14 random hex digits when an insert gives none (as PocketBase declares it).
pub const RANDOM_ID_COLUMN: &str =
    "TEXT PRIMARY KEY DEFAULT ('r'||lower(hex(randomblob(7)))) NOT NULL";

/// Every keyword, function and string constant the filter compiler's SQL
/// is made of, through this module (`filter::audit` admits no other word).
pub const VOCABULARY: &[&str] = &[
    "select",
    "from",
    "where",
    "left",
    "join",
    "on",
    "and",
    "or",
    "not",
    "exists",
    "is",
    "null",
    "like",
    "escape",
    "in",
    "as",
    "case",
    "when",
    "then",
    "else",
    "end",
    "coalesce",
    "true",
    "false",
    "json_each",
    "json_valid",
    "json_type",
    "json_array",
    "json_array_length",
    "json_extract",
    "json_object",
    "iif",
    "lower",
    "strftime",
    "acos",
    "cos",
    "sin",
    "radians",
    "random",
    "value",
    "_rowid_",
    "asc",
    "desc",
    "mmv",
];

// ---------------------------------------------------------------------------
// A list sorted by the store itself (`store::records::list_counted`)

/// The implicit row id of the table `table` (a schema name), as SQL text.
pub fn rowid_text(table: &str) -> String {
    format!("{}._rowid_", quote_ident(table))
}

/// `lhs IN (values of one bound JSON array)`, as SQL text with one `?`.
pub fn in_bound_json_array_text(lhs: &str) -> String {
    format!("{lhs} IN (SELECT value FROM json_each(?))")
}

/// The statement that asks how `sql` would be run (one row per step, its
/// text in the last column).
pub fn explain_plan(sql: &str) -> String {
    format!("EXPLAIN QUERY PLAN {sql}")
}

/// The step of a plan that sorts the rows after reading them (no index
/// gives the order).
pub const PLAN_SORTS_AFTER_READING: &str = "USE TEMP B-TREE FOR ORDER BY";

/// Any step of a plan that sorts (all of the ORDER BY, or the part of it
/// an index does not give).
pub const PLAN_SORTS: &str = "USE TEMP B-TREE";

/// What a plan's step says of an index it reads without the table.
pub const PLAN_COVERING: &str = "COVERING ";

/// The hint, after a table's name, that reads the table itself rather than
/// through an index.
pub const NOT_INDEXED: &str = " NOT INDEXED";

/// How a plan's step that walks an index by its terms begins, for `table`
/// (then the index's name and, in parentheses, its terms: `(n>? AND n<?)`).
pub fn plan_searches_index(table: &str) -> String {
    format!("SEARCH {table} USING INDEX ")
}

/// Whether an ORDER BY term's expression names a collation (its values
/// then do not compare as [`compare_values`] compares them).
pub fn names_collation(expr: &str) -> bool {
    expr.to_ascii_uppercase().contains("COLLATE")
}

/// How the engine orders two values in an ORDER BY with its default
/// (binary) collation: NULL first, then numbers (integers and reals by
/// value), then text and blobs, each byte by byte.
pub fn compare_values(a: &Value, b: &Value) -> std::cmp::Ordering {
    use crate::store::Param;
    compare_refs(a.to_ref(), b.to_ref())
}

/// [`compare_values`] on borrowed values (a row's, before it is copied).
pub fn compare_refs(
    a: crate::store::SqlRef<'_>,
    b: crate::store::SqlRef<'_>,
) -> std::cmp::Ordering {
    use crate::store::SqlRef as R;
    use std::cmp::Ordering;
    fn class(v: &R<'_>) -> u8 {
        match v {
            R::Null => 0,
            R::Integer(_) | R::Real(_) => 1,
            R::Text(_) => 2,
            R::Blob(_) => 3,
        }
    }
    match (a, b) {
        (R::Integer(x), R::Integer(y)) => x.cmp(&y),
        (R::Real(x), R::Real(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        (R::Integer(x), R::Real(y)) => cmp_int_real(x, y),
        (R::Real(x), R::Integer(y)) => cmp_int_real(y, x).reverse(),
        (R::Text(x), R::Text(y)) | (R::Blob(x), R::Blob(y)) => x.cmp(y),
        _ => class(&a).cmp(&class(&b)),
    }
}

/// An integer against a real, exactly (as the engine compares them).
fn cmp_int_real(i: i64, r: f64) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    if r.is_nan() {
        return Ordering::Greater;
    }
    if r < -9.223_372_036_854_776e18 {
        return Ordering::Greater;
    }
    if r >= 9.223_372_036_854_776e18 {
        return Ordering::Less;
    }
    let t = r.trunc();
    match i.cmp(&(t as i64)) {
        Ordering::Equal => {
            if r > t {
                Ordering::Less
            } else if r < t {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        }
        o => o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns() {
        for (input, want) in [
            ("abc", "%abc%"),
            ("a_b", "%a\\_b%"),
            ("a\\_b", "%a\\_b%"),
            ("100%", "100%"),
            ("100\\%", "%100\\%%"),
            ("\\", "%\\\\%"),
            ("_", "%\\_%"),
            ("", "%%"),
            ("%", "%"),
            ("a\\\\%", "a\\\\%"),
        ] {
            assert_eq!(like_pattern(input), want, "{input:?}");
        }
    }

    #[test]
    fn idents() {
        assert!(Ident::new("posts_2").is_some());
        for bad in ["", "a b", "a\"b", "a;", "é", "a-b", "a.b"] {
            assert!(Ident::new(bad).is_none(), "{bad:?}");
            assert!(try_quote_ident(bad).is_none());
        }
        assert_eq!(quote_ident("posts"), "\"posts\"");
    }

    #[test]
    fn upserts_keep_key_and_creation_time() {
        assert_eq!(
            upsert("t", &["a", "b", "c", "created", "updated"], &["a", "b"]),
            "INSERT INTO t (a, b, c, created, updated) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (a, b) DO UPDATE SET c = excluded.c, updated = excluded.updated"
        );
    }

    #[test]
    fn render_binds_in_order() {
        let f = Frag::sql("a = ")
            .value(Bind::Text("x".into()))
            .s(" AND b = ")
            .aux(Bind::Int(2))
            .s(" AND c = ")
            .value(Bind::Bool(true));
        let (sql, params) = f.to_sql();
        assert_eq!(sql, "a = ? AND b = ? AND c = ?");
        assert_eq!(
            params,
            vec![
                Value::Text("x".into()),
                Value::Integer(2),
                Value::Integer(1)
            ]
        );
        assert_eq!(f.values().count(), 2);
    }
}
