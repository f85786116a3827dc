//! The PostgreSQL dialect of the filter compiler: the same vocabulary as
//! `store::sqlite::dialect` (the [`Frag`]s, their constant text, validated
//! identifiers and bound values), spelled so that PostgreSQL answers as
//! SQLite does for keepd's tables.
//!
//! Table shape assumed (the PostgreSQL DDL): text, date, select, relation,
//! file, editor, email, url and json fields are `text` — multi-value
//! fields hold a JSON array as text, as in SQLite, and are read through
//! `jsonb` here —; number fields `double precision`; bool fields `boolean`.
//! A JSON field holds valid JSON text or '' (as keepd writes it: PostgreSQL
//! 15 has no way to test text for JSON without failing on it). Every table
//! has a `rowid` identity column: the insertion order (`@rowid`).
//!
//! SQLite's behaviour reproduced:
//! - its loose typing: [`unify`] gives both operands of a comparison one
//!   type the way SQLite's affinities do (a text column against a number,
//!   a number column against numeric text, JSON values of any type, bools
//!   as 0/1);
//! - its ASCII-only case folding (`LIKE`, `LOWER`): `translate` of A–Z,
//!   never `lower()`/`ILIKE`, which fold beyond ASCII;
//! - its binary text order: `COLLATE "C"`; NULLs first when ascending;
//! - its types of values read out of JSON: JSON null is SQL NULL, and a
//!   JSON value compares as a number or as text by its JSON type;
//! - `strftime(format, time)` as `to_char` for the directives with an exact
//!   translation (others, modifiers and the clock are refused for now).
//!
//! Placeholders: the compiler writes `?`, as every statement of the store
//! does; [`numbered_placeholders`] turns a whole statement's into `$n`,
//! each cast to the type of the value bound (SQLite's values carry their
//! type; PostgreSQL's parameters are typed by their statement). The
//! differential test binds through it; plain `$n` typed by inference is
//! meant to work too (a placeholder whose type matters is in a `CAST`, in
//! `string_to_array`, or compared with a column) but is not tested.

use crate::store::dialect::{Bind, Frag, Ident};
use crate::store::engine::{Ty, Unified};
use crate::store::SqlValue as Value;

const UPPER: &str = "'ABCDEFGHIJKLMNOPQRSTUVWXYZ'";
const LOWER: &str = "'abcdefghijklmnopqrstuvwxyz'";
/// Time text SQLite's date functions read (date, then time to the
/// minute, second or fraction, `T` or space, optional `Z`).
const TIME_TEXT: &str =
    r"'^[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)?Z?$'";
/// Text SQLite reads as a number (NUMERIC affinity), as a regular expression.
const NUMERIC_TEXT: &str = r"'^\s*[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$'";

/// Ends a join that has no condition of its own (PostgreSQL requires one).
pub const ON_TRUE: &str = " ON TRUE";

/// ASCII-only lower case, in byte order: `COLLATE "C"`, as SQLite's
/// `lower()` has no collation of its own (and LIKE refuses a `nocase`
/// operand).
fn fold(x: &Frag) -> Frag {
    Frag::sql("(translate(")
        .f(x)
        .s(", ")
        .s(UPPER)
        .s(", ")
        .s(LOWER)
        .s(") COLLATE \"C\")")
}

/// A multi-value column as `jsonb`: a JSON array as is, '' and NULL as
/// `empty` (or one NULL/'' element when `empty` is None), anything else
/// as a one-element array.
fn as_array(col: &Frag, empty_is_empty: bool) -> Frag {
    let f = Frag::sql("(CASE WHEN left(")
        .f(col)
        .s(", 1) = '[' THEN CAST(")
        .f(col)
        .s(" AS jsonb)");
    let f = if empty_is_empty {
        f.s(" WHEN ")
            .f(col)
            .s(" = '' OR ")
            .f(col)
            .s(" IS NULL THEN CAST('[]' AS jsonb)")
    } else {
        f
    };
    f.s(" ELSE jsonb_build_array(").f(col).s(") END)")
}

/// The elements of a multi-value column, as text (a table function whose
/// column is `value`).
pub fn json_each(col: &Frag) -> Frag {
    Frag::sql("jsonb_array_elements_text(")
        .f(&as_array(col, false))
        .s(")")
}

/// The elements of a bound JSON array.
pub fn json_each_bound(json_array: Bind) -> Frag {
    Frag::sql("jsonb_array_elements_text(CAST(")
        .aux(json_array)
        .s(" AS jsonb))")
}

pub fn json_array_length(col: &Frag) -> Frag {
    Frag::sql("jsonb_array_length(")
        .f(&as_array(col, true))
        .s(")")
}

/// PocketBase's path (`a.b`, `[0].c`, `""` for an empty key) as its keys
/// joined by `.`, for `string_to_array(…, '.')` (a key is `[A-Za-z0-9_]*`:
/// the filter's grammar admits no other).
pub fn path_keys(path: &str) -> String {
    let mut elems: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut started = false;
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                if started {
                    elems.push(std::mem::take(&mut cur));
                }
                started = false;
            }
            '[' => {
                if started {
                    elems.push(std::mem::take(&mut cur));
                }
                let mut idx = String::new();
                for d in chars.by_ref() {
                    if d == ']' {
                        break;
                    }
                    idx.push(d);
                }
                elems.push(idx);
                started = false;
            }
            _ => {
                cur.push(c);
                started = true;
            }
        }
    }
    if started {
        elems.push(cur);
    }
    let keys: Vec<&str> = elems
        .iter()
        .map(|e| if e == "\"\"" { "" } else { e.as_str() })
        .collect();
    keys.join(".")
}

/// `path` read out of a column holding JSON text (or ''), as `jsonb`;
/// JSON null is SQL NULL (as SQLite's `json_extract` gives it). '' reads
/// as the JSON string "" at the root and as nothing below it. The path is
/// bound, never spliced.
pub fn json_extract(col: &Frag, path: &str) -> Frag {
    let f = Frag::sql("(CASE WHEN ").f(col).s(" = '' THEN ");
    let f = if path.is_empty() {
        f.s("to_jsonb(").f(col).s(")")
    } else {
        f.s("NULL")
    };
    let f = f.s(" ELSE NULLIF(CAST(").f(col).s(" AS jsonb)");
    let f = if path.is_empty() {
        f
    } else {
        f.s(" #> string_to_array(")
            .aux(Bind::Text(path_keys(path)))
            .s(", '.')")
    };
    f.s(", 'null') END)")
}

pub fn in_json_array(lhs: &Frag, json_array: Bind) -> Frag {
    Frag::new()
        .f(lhs)
        .s(" IN (SELECT value FROM ")
        .f(&json_each_bound(json_array))
        .s(")")
}

pub fn is(a: &Frag, b: &Frag, negate: bool) -> Frag {
    Frag::new()
        .f(a)
        .s(if negate {
            " IS DISTINCT FROM "
        } else {
            " IS NOT DISTINCT FROM "
        })
        .f(b)
}

/// A JSON value compared as text: strings (and objects/arrays as JSON
/// text); NULL for numbers and bools, which SQLite never finds equal to text.
fn json_text(v: &Frag) -> Frag {
    Frag::sql("(CASE WHEN jsonb_typeof(")
        .f(v)
        .s(") IN ('number', 'boolean') THEN NULL ELSE ")
        .f(v)
        .s(" #>> '{}' END)")
}

/// A JSON value compared as a number: numbers, and bools as 1/0; NULL for
/// the rest.
fn json_num(v: &Frag) -> Frag {
    Frag::sql("(CASE jsonb_typeof(")
        .f(v)
        .s(") WHEN 'number' THEN CAST(")
        .f(v)
        .s(" #>> '{}' AS float8) WHEN 'boolean' THEN CAST(CAST(")
        .f(v)
        .s(" #>> '{}' AS boolean) AS int) END)")
}

/// What text that is not a number is, compared with a number: never equal
/// to one (NULL), and greater than every one when ordered (SQLite orders
/// numbers before text).
fn not_a_number(ordering: bool) -> &'static str {
    if ordering {
        "CAST('Infinity' AS float8)"
    } else {
        "NULL"
    }
}

/// A JSON value compared with a number: numbers and bools as numbers,
/// strings, objects and arrays as text (see [`not_a_number`]), JSON null
/// as NULL.
fn json_num_against(v: &Frag, ordering: bool) -> Frag {
    if !ordering {
        return json_num(v);
    }
    Frag::sql("(CASE WHEN ")
        .f(v)
        .s(" IS NULL THEN NULL WHEN jsonb_typeof(")
        .f(v)
        .s(") IN ('number', 'boolean') THEN ")
        .f(&json_num(v))
        .s(" ELSE ")
        .s(not_a_number(true))
        .s(" END)")
}

/// SQLite's NUMERIC affinity applied to text compared with a number
/// column: text that reads as a number is that number, other text is
/// text (see [`not_a_number`]).
fn text_as_number(x: &Frag, ordering: bool) -> Frag {
    let x = text_operand(x);
    Frag::sql("(CASE WHEN ")
        .f(&x)
        .s(" IS NULL THEN NULL WHEN ")
        .f(&x)
        .s(" ~ ")
        .s(NUMERIC_TEXT)
        .s(" THEN CAST(")
        .f(&x)
        .s(" AS float8) ELSE ")
        .s(not_a_number(ordering))
        .s(" END)")
}

/// Any operand as the text SQLite's LIKE and LOWER would see.
fn to_text(x: &Frag, ty: Ty) -> Frag {
    match ty {
        Ty::Text | Ty::TextCol | Ty::Unknown => x.clone(),
        Ty::Num | Ty::NumCol => Frag::sql("CAST(").f(x).s(" AS text)"),
        Ty::Bool => Frag::sql("CAST(CAST(").f(x).s(" AS int) AS text)"),
        Ty::Json => Frag::sql("(").f(x).s(" #>> '{}')"),
    }
}

fn to_num(x: &Frag, ty: Ty) -> Frag {
    match ty {
        Ty::Json => json_num(x),
        Ty::Bool => Frag::sql("CAST(").f(x).s(" AS int)"),
        Ty::Text | Ty::TextCol => Frag::sql("CAST(").f(x).s(" AS float8)"),
        _ => x.clone(),
    }
}

pub fn like(a: &Frag, ty: Ty, pattern: &Frag, negate: bool) -> Frag {
    fold(&to_text(a, ty))
        .s(if negate { " NOT LIKE " } else { " LIKE " })
        .f(&fold(pattern))
        .s(" ESCAPE '\\'")
}

pub fn like_contains(a: &Frag, at: Ty, b: &Frag, bt: Ty, negate: bool) -> Frag {
    fold(&to_text(a, at))
        .s(if negate {
            " NOT LIKE ('%' || "
        } else {
            " LIKE ('%' || "
        })
        .f(&fold(&to_text(b, bt)))
        .s(" || '%') ESCAPE '\\'")
}

pub fn lower(x: &Frag, ty: Ty) -> Frag {
    fold(&to_text(x, ty))
}

/// Haversine distance in km; NULL where `acos` is out of its domain (SQLite
/// gives NULL there, PostgreSQL an error).
pub fn geo_distance(args: [&Frag; 4], tys: [Ty; 4]) -> Frag {
    let [lon_a, lat_a, lon_b, lat_b] = [0, 1, 2, 3].map(|i| to_num(args[i], tys[i]));
    let x = Frag::sql("(cos(radians(")
        .f(&lat_a)
        .s(")) * cos(radians(")
        .f(&lat_b)
        .s(")) * cos(radians(")
        .f(&lon_b)
        .s(") - radians(")
        .f(&lon_a)
        .s(")) + sin(radians(")
        .f(&lat_a)
        .s(")) * sin(radians(")
        .f(&lat_b)
        .s(")))");
    Frag::sql("(CASE WHEN ")
        .f(&x)
        .s(" BETWEEN -1 AND 1 THEN 6371 * acos(")
        .f(&x)
        .s(") END)")
}

/// SQLite's `strftime(format, time)` for a literal format and a time held
/// as text (PocketBase's `2006-01-02 15:04:05.000Z`; '' is NULL):
/// `to_char` with the format translated and bound. `None` (refused) for
/// what has no exact translation yet: no time value (now), modifiers,
/// a number as the time, `%s`, `%w`, `%W`, `%J` and unknown directives.
pub fn strftime(args: &[Frag]) -> Option<Frag> {
    let [format, time] = args else {
        return None;
    };
    let Some(Bind::Text(f)) = format.single_value() else {
        return None;
    };
    if matches!(
        time.single_value(),
        Some(Bind::Real(_) | Bind::Int(_) | Bind::Bool(_))
    ) {
        return None;
    }
    let pattern = to_char_pattern(f)?;
    // Text that is not a time is NULL, as in SQLite (a cast would fail).
    Some(
        Frag::sql("to_char(CASE WHEN ")
            .f(time)
            .s(" ~ ")
            .s(TIME_TEXT)
            .s(" THEN CAST(")
            .f(time)
            .s(" AS timestamp) END, ")
            .value(Bind::Text(pattern))
            .s(")"),
    )
}

/// An SQLite strftime format as a `to_char` pattern; text between the
/// directives double-quoted.
fn to_char_pattern(f: &str) -> Option<String> {
    let mut out = String::new();
    let mut lit = String::new();
    let flush = |out: &mut String, lit: &mut String| {
        if !lit.is_empty() {
            out.push('"');
            out.push_str(&lit.replace('\\', "\\\\").replace('"', "\\\""));
            out.push('"');
            lit.clear();
        }
    };
    let mut chars = f.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            lit.push(c);
            continue;
        }
        let code = match chars.next()? {
            '%' => {
                lit.push('%');
                continue;
            }
            'd' => "DD",
            'f' => "SS.MS",
            'H' => "HH24",
            'j' => "DDD",
            'm' => "MM",
            'M' => "MI",
            'S' => "SS",
            'Y' => "YYYY",
            _ => return None,
        };
        flush(&mut out, &mut lit);
        out.push_str(code);
    }
    flush(&mut out, &mut lit);
    Some(out)
}

pub fn random() -> Frag {
    Frag::sql("random()")
}

/// The insertion order of a table's rows: its `rowid` column (an identity
/// column the PostgreSQL tables have in place of SQLite's implicit one).
pub fn rowid(alias: &Ident) -> Frag {
    Frag::new().ident(alias).s(".rowid")
}

/// '' in null/empty comparisons of operands compared as `ty`: NaN stands
/// for it among numbers (no stored number is NaN; NaN = NaN holds in
/// PostgreSQL, as '' = '' in SQLite).
pub fn blank(ty: Ty) -> Frag {
    match ty {
        Ty::Num | Ty::NumCol | Ty::Bool => Frag::sql("CAST('NaN' AS float8)"),
        _ => Frag::sql("''"),
    }
}

fn dir(desc: bool) -> &'static str {
    if desc {
        " DESC NULLS LAST"
    } else {
        " ASC NULLS FIRST"
    }
}

/// A sort term in SQLite's order: NULL, then numbers, then text by bytes.
pub fn sort_term(x: &Frag, ty: Ty, desc: bool) -> Frag {
    match ty {
        Ty::Text | Ty::TextCol => Frag::new().f(x).s(" COLLATE \"C\"").s(dir(desc)),
        Ty::Json => Frag::sql("(CASE WHEN ")
            .f(x)
            .s(" IS NULL THEN 0 WHEN jsonb_typeof(")
            .f(x)
            .s(") IN ('number', 'boolean') THEN 1 ELSE 2 END)")
            .s(dir(desc))
            .s(", ")
            .f(&json_num(x))
            .s(dir(desc))
            .s(", ")
            .f(&json_text(x))
            .s(" COLLATE \"C\"")
            .s(dir(desc)),
        _ => Frag::new().f(x).s(dir(desc)),
    }
}

/// Whether SQLite would take `s` for a number (NUMERIC affinity).
fn numeric_text(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty()
        || !t
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    t.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// A REAL as SQLite writes it as text (`%!.15g`: `5.0`, `1.5`).
pub fn sqlite_real_text(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

fn cast_text(x: &Frag) -> Frag {
    Frag::sql("CAST(").f(x).s(" AS text)")
}

/// Both operands of a comparison as SQLite compares them, in one type.
pub fn unify(l: &Frag, lt: Ty, r: &Frag, rt: Ty, ordering: bool) -> Unified {
    // Bools are 0/1 against anything.
    let (l, lt) = bool_num(l, lt);
    let (r, rt) = bool_num(r, rt);
    let (left, right, ty) = match (lt, rt) {
        (Ty::Json, Ty::Num | Ty::NumCol) => (json_num_against(&l, ordering), r, Ty::Num),
        (Ty::Num | Ty::NumCol, Ty::Json) => (l, json_num_against(&r, ordering), Ty::Num),
        (Ty::Json, Ty::Text | Ty::TextCol) => (json_text(&l), text_operand(&r), Ty::Text),
        (Ty::Text | Ty::TextCol, Ty::Json) => (text_operand(&l), json_text(&r), Ty::Text),
        (Ty::NumCol, Ty::Text | Ty::TextCol) => match numeric_value(&r) {
            Some(n) => (l, n, Ty::Num),
            None => (l, text_as_number(&r, ordering), Ty::Num),
        },
        (Ty::Text | Ty::TextCol, Ty::NumCol) => match numeric_value(&l) {
            Some(n) => (n, r, Ty::Num),
            None => (text_as_number(&l, ordering), r, Ty::Num),
        },
        (Ty::TextCol | Ty::Text, Ty::Num) => (text_operand(&l), number_as_text(&r), Ty::Text),
        (Ty::Num, Ty::TextCol | Ty::Text) => (number_as_text(&l), text_operand(&r), Ty::Text),
        (Ty::Text | Ty::TextCol, _) | (_, Ty::Text | Ty::TextCol) => {
            let ty = if matches!(lt, Ty::Unknown) { rt } else { lt };
            (text_operand(&l), text_operand(&r), ty)
        }
        (Ty::Unknown, t) | (t, Ty::Unknown) => (l, r, t),
        (t, _) => (l, r, t),
    };
    let (left, right) = if ordering && matches!(ty, Ty::Text | Ty::TextCol) {
        (left.s(" COLLATE \"C\""), right)
    } else {
        (left, right)
    };
    Unified { left, right, ty }
}

fn bool_num(x: &Frag, ty: Ty) -> (Frag, Ty) {
    if ty == Ty::Bool {
        (Frag::sql("CAST(").f(x).s(" AS int)"), Ty::NumCol)
    } else {
        (x.clone(), ty)
    }
}

/// A text operand; a late-bound request value is cast (it may be bound
/// as a number).
fn text_operand(x: &Frag) -> Frag {
    match x.single_value() {
        Some(Bind::Slot(_)) => cast_text(x),
        _ => x.clone(),
    }
}

/// A literal text that looks like a number, as that number (a NUMERIC
/// column's affinity applied to it).
fn numeric_value(x: &Frag) -> Option<Frag> {
    match x.single_value() {
        Some(Bind::Text(s)) => numeric_text(s).map(|n| Frag::new().value(Bind::Real(n))),
        _ => None,
    }
}

/// A number compared with a text column: a literal as SQLite writes it as
/// text (TEXT affinity), anything else cast.
fn number_as_text(x: &Frag) -> Frag {
    match x.single_value() {
        Some(Bind::Real(f)) => Frag::new().value(Bind::Text(sqlite_real_text(*f))),
        Some(Bind::Int(i)) => Frag::new().value(Bind::Text(i.to_string())),
        _ => cast_text(x),
    }
}

/// Filter SQL written with `?` placeholders, each cast to the type of the
/// value bound there (text, bigint, double, bytea; NULL takes the type its
/// place gives it): what the dialect's fragments assume, since PostgreSQL
/// types a statement before it sees its values. The session
/// (`postgres::conn`) then numbers them and binds each by the type the
/// server inferred — the cast's. `?` inside quoted literals and
/// identifiers is left alone.
pub fn typed_placeholders(sql: &str, params: &[Value]) -> String {
    typed_placeholders_from(sql, params, &mut 0)
}

/// [`typed_placeholders`] for a part of a statement whose first `?` is
/// `params[*next]`; `next` is moved past the part's placeholders.
pub fn typed_placeholders_from(sql: &str, params: &[Value], next: &mut usize) -> String {
    let mut out = String::with_capacity(sql.len() + params.len() * 8);
    let mut quote: Option<char> = None;
    let n = next;
    for c in sql.chars() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '?' => {
                *n += 1;
                match params.get(*n - 1) {
                    Some(Value::Text(_)) => out.push_str("CAST(? AS text)"),
                    Some(Value::Integer(_)) => out.push_str("CAST(? AS int8)"),
                    Some(Value::Real(_)) => out.push_str("CAST(? AS float8)"),
                    Some(Value::Blob(_)) => out.push_str("CAST(? AS bytea)"),
                    _ => out.push('?'),
                }
            }
            None => out.push(c),
        }
    }
    out
}

/// A statement of filter SQL as the session runs it: [`typed_placeholders`]
/// then `$n` numbering (`postgres::conn::placeholders`).
pub fn numbered_placeholders(sql: &str, params: &[Value]) -> String {
    super::conn::placeholders(&typed_placeholders(sql, params))
}

/// The string constants of this dialect's filter SQL (`filter::audit`).
pub const LITERALS: &[&str] = &[
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "abcdefghijklmnopqrstuvwxyz",
    r"^\s*[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$",
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)?Z?$",
    "{}",
    "[",
    "[]",
    "null",
    "number",
    "boolean",
    "NaN",
    "Infinity",
    ".",
];

/// The keywords and functions of this dialect's filter SQL, besides
/// SQLite's common ones (`filter::audit`).
pub const VOCABULARY: &[&str] = &[
    "translate",
    "jsonb",
    "jsonb_array_elements_text",
    "jsonb_array_length",
    "jsonb_build_array",
    "jsonb_typeof",
    "to_jsonb",
    "nullif",
    "cast",
    "text",
    "float8",
    "int8",
    "bytea",
    "int",
    "boolean",
    "distinct",
    "between",
    "collate",
    "nulls",
    "first",
    "last",
    "left",
    "string_to_array",
    "to_char",
    "timestamp",
    "rowid",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(path_keys("a"), "a");
        assert_eq!(path_keys("a.b[0].c"), "a.b.0.c");
        assert_eq!(path_keys("[2]"), "2");
        assert_eq!(path_keys("a.\"\""), "a.");
        assert_eq!(path_keys("a.\"\".b"), "a..b");
    }

    #[test]
    fn strftime_patterns() {
        assert_eq!(
            to_char_pattern("%Y-%m-%d").as_deref(),
            Some("YYYY\"-\"MM\"-\"DD")
        );
        assert_eq!(
            to_char_pattern("%H:%M:%f").as_deref(),
            Some("HH24\":\"MI\":\"SS.MS")
        );
        assert_eq!(
            to_char_pattern("year %Y%%").as_deref(),
            Some("\"year \"YYYY\"%\"")
        );
        assert_eq!(to_char_pattern("%s"), None);
        assert_eq!(to_char_pattern("%"), None);
    }

    #[test]
    fn placeholders() {
        let p = [
            Value::Text("x".into()),
            Value::Integer(1),
            Value::Real(1.5),
            Value::Null,
        ];
        assert_eq!(
            numbered_placeholders("a = ? AND '?' = \"?\" AND b IN (?, ?) OR ?", &p),
            "a = CAST($1 AS text) AND '?' = \"?\" AND b IN (CAST($2 AS int8), CAST($3 AS float8)) OR $4"
        );
    }

    #[test]
    fn reals_as_sqlite_writes_them() {
        assert_eq!(sqlite_real_text(5.0), "5.0");
        assert_eq!(sqlite_real_text(-2.0), "-2.0");
        assert_eq!(sqlite_real_text(1.5), "1.5");
        assert_eq!(numeric_text(" 12 "), Some(12.0));
        assert_eq!(numeric_text("inf"), None);
        assert_eq!(numeric_text("1e3"), Some(1000.0));
        assert_eq!(numeric_text("abc"), None);
    }
}
