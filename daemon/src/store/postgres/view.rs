//! PostgreSQL's spellings of a view query's SQLite functions, casts and
//! table functions (`schema::view` renders the checked query and asks here
//! for each on this engine). Each is spelled so that PostgreSQL gives the
//! value SQLite gives for keepd's tables (numbers are `double precision`,
//! bools `boolean`, JSON and multi-value fields JSON text):
//!
//! - `total(x)` is `sum` as a float, 0.0 over no rows;
//! - `CAST(x AS INTEGER)` truncates toward zero and reads the leading
//!   integer of a text (0 when there is none); `AS REAL`/`NUMERIC` read its
//!   leading number; `AS TEXT` of a bool is `1`/`0`; `AS BOOLEAN` is the
//!   number being non-zero;
//! - `json_extract(x, '$.path')` is the value as text (a JSON string
//!   unquoted, a bool `1`/`0`, an object or array as JSON text, JSON null
//!   NULL); `json_array_length(x)` is 0 for a JSON value that is not an
//!   array; `json_each(x)` in FROM gives the elements of an array as
//!   `value` text (a scalar is one element, NULL none);
//! - `lower`/`upper` fold ASCII only (`translate`), as SQLite does;
//! - `round` rounds half away from zero (through `numeric`), as SQLite's;
//! - `group_concat`, `ifnull`, `iif`, `instr`, `likely`/`unlikely`/
//!   `likelihood`, `mod`, two-argument `log` as their PostgreSQL
//!   equivalents; `current_timestamp`/`_date`/`_time` as SQLite's UTC text.
//!
//! Everything else SQLite spells differently or answers differently
//! (other JSON and date functions, `typeof`, `quote`, `random`, multi-
//! argument `min`/`max`, `substr` with a start other than a positive
//! literal, ...) is refused: `Err` is the reason, worded for the client.
//!
//! An argument a spelling repeats (a `CASE` over its type) is rendered
//! once and copied; one longer than [`MAX_REPEATED`] is refused, so that
//! nesting can't make the SQL grow beyond a bound.

/// The longest rendered argument a spelling may repeat.
pub const MAX_REPEATED: usize = 2000;

/// What stands in for SQLite's `LIMIT -1` (an OFFSET with no LIMIT):
/// PostgreSQL takes an OFFSET alone.
pub const NO_LIMIT: &str = "";

const UPPER: &str = "'ABCDEFGHIJKLMNOPQRSTUVWXYZ'";
const LOWER: &str = "'abcdefghijklmnopqrstuvwxyz'";
/// The leading integer of a text (sign, digits), as `\1` and `\2`.
const INT_PREFIX: &str = r"'^\s*([-+]?)([0-9]*).*$'";
/// The leading number of a text (sign, mantissa, exponent) as `\1`–`\3`.
const REAL_PREFIX: &str = r"'^\s*([-+]?)([0-9]+\.?[0-9]*|\.[0-9]+)?([eE][-+]?[0-9]+)?.*$'";

/// A function call spelled for PostgreSQL: `head`, then the call's
/// `FILTER`/`OVER` (which belong to the aggregate inside), then `tail`.
pub struct Call {
    pub head: String,
    pub tail: String,
}

fn call(head: String) -> Call {
    Call {
        head,
        tail: String::new(),
    }
}

fn unsupported(name: &str) -> String {
    format!("the function {name} is not supported by views on PostgreSQL")
}

fn repeatable(x: &str) -> Result<&str, String> {
    if x.len() > MAX_REPEATED {
        return Err("the expression is too complex for a view on PostgreSQL".into());
    }
    Ok(x)
}

fn text(x: &str) -> String {
    format!("CAST({x} AS text)")
}

/// `x` as the text SQLite would see: a bool as `1`/`0`.
fn sqlite_text(x: &str) -> Result<String, String> {
    let x = repeatable(x)?;
    Ok(format!(
        "(CASE WHEN pg_typeof({x}) = 'boolean'::regtype THEN CASE CAST({x} AS text) \
         WHEN 'true' THEN '1' WHEN 'false' THEN '0' END ELSE CAST({x} AS text) END)"
    ))
}

fn fold(x: &str, from: &str, to: &str) -> String {
    format!("translate({}, {from}, {to})", text(x))
}

fn is_positive_literal(x: &str) -> bool {
    !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit()) && x.bytes().any(|b| b != b'0')
}

fn is_literal_int(x: &str) -> bool {
    !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit())
}

/// A SQLite JSON path (`$`, `$.a.b`, `$.a[0]`, a string literal) as a
/// PostgreSQL text-array literal of its keys; `None` for what it doesn't
/// read (quoted keys, `#-1`, a path that is not a literal).
fn path_keys(lit: &str) -> Option<String> {
    let inner = lit.strip_prefix('\'')?.strip_suffix('\'')?;
    if inner.contains('\'') || inner.contains('"') {
        return None;
    }
    let rest = inner.strip_prefix('$')?;
    let mut keys: Vec<String> = Vec::new();
    let b = rest.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'.' => {
                let start = i + 1;
                i = start;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                if i == start {
                    return None;
                }
                keys.push(rest[start..i].to_string());
            }
            b'[' => {
                let start = i + 1;
                i = start;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                if i == start || b.get(i) != Some(&b']') {
                    return None;
                }
                keys.push(rest[start..i].to_string());
                i += 1;
            }
            _ => return None,
        }
    }
    Some(format!("'{{{}}}'", keys.join(",")))
}

/// `x` (JSON text, '' or NULL) as `jsonb`: '' is not a document.
fn doc(x: &str) -> Result<String, String> {
    let x = repeatable(x)?;
    Ok(format!("CAST(NULLIF({}, '') AS jsonb)", text(x)))
}

/// A `jsonb` value as SQLite's `json_extract` gives it, as text.
fn json_value(j: &str) -> Result<String, String> {
    let j = repeatable(j)?;
    Ok(format!(
        "(CASE jsonb_typeof({j}) WHEN 'boolean' THEN CASE WHEN {j} = 'true'::jsonb \
         THEN '1' ELSE '0' END WHEN 'null' THEN NULL ELSE {j} #>> '{{}}' END)"
    ))
}

/// `name(args)` (`args` rendered; `distinct`: `DISTINCT` given) as
/// PostgreSQL spells it for SQLite's answer.
pub fn function(name: &str, distinct: bool, args: &[String]) -> Result<Call, String> {
    let d = if distinct { "DISTINCT " } else { "" };
    let same = || call(format!("{name}({d}{})", args.join(", ")));
    let n = args.len();
    let a = |i: usize| args[i].as_str();
    Ok(match (name, n) {
        ("count" | "avg" | "sum", _)
        | ("min" | "max", 1)
        | ("abs" | "ceil" | "ceiling" | "floor" | "trunc" | "sign" | "sqrt" | "exp" | "ln", 1)
        | ("log10" | "sin" | "cos" | "tan" | "asin" | "acos" | "atan" | "degrees", 1)
        | ("radians", 1)
        | ("atan2" | "pow" | "power", 2)
        | ("pi", 0)
        | ("coalesce" | "concat" | "concat_ws", _)
        | ("nullif", 2)
        | ("row_number" | "rank" | "dense_rank" | "percent_rank" | "cume_dist", 0)
        | ("ntile", 1)
        | ("lag" | "lead", 1..=3)
        | ("first_value" | "last_value", 1)
        | ("nth_value", 2) => same(),
        ("log", 1) => same(),
        ("log", 2) => call(format!(
            "CAST(log(CAST({} AS numeric), CAST({} AS numeric)) AS double precision)",
            a(0),
            a(1)
        )),
        ("mod", 2) => call(format!(
            "CAST(mod(CAST({} AS numeric), CAST({} AS numeric)) AS double precision)",
            a(0),
            a(1)
        )),
        ("total", 1) => Call {
            head: format!("COALESCE(CAST(sum({d}{})", a(0)),
            tail: " AS double precision), 0.0)".into(),
        },
        ("group_concat", 1) => call(format!("string_agg({d}{}, ',')", text(a(0)))),
        ("group_concat" | "string_agg", 2) => {
            call(format!("string_agg({d}{}, {})", text(a(0)), text(a(1))))
        }
        ("ifnull", 2) => call(format!("coalesce({}, {})", a(0), a(1))),
        ("iif", 3) => call(format!(
            "(CASE WHEN {} THEN {} ELSE {} END)",
            a(0),
            a(1),
            a(2)
        )),
        ("likely" | "unlikely", 1) | ("likelihood", 2) => call(format!("({})", a(0))),
        ("lower", 1) => call(fold(a(0), UPPER, LOWER)),
        ("upper", 1) => call(fold(a(0), LOWER, UPPER)),
        ("length", 1) => call(format!("length({})", sqlite_text(a(0))?)),
        ("instr", 2) => call(format!(
            "strpos({}, {})",
            sqlite_text(a(0))?,
            sqlite_text(a(1))?
        )),
        ("replace", 3) => call(format!(
            "replace({}, {}, {})",
            sqlite_text(a(0))?,
            sqlite_text(a(1))?,
            sqlite_text(a(2))?
        )),
        ("trim" | "ltrim" | "rtrim", 1) => {
            let f = if name == "trim" { "btrim" } else { name };
            call(format!("{f}({}, ' ')", sqlite_text(a(0))?))
        }
        ("trim" | "ltrim" | "rtrim", 2) => {
            let f = if name == "trim" { "btrim" } else { name };
            call(format!("{f}({}, {})", sqlite_text(a(0))?, text(a(1))))
        }
        ("substr" | "substring", 2) if is_positive_literal(a(1)) => {
            call(format!("substr({}, {})", sqlite_text(a(0))?, a(1)))
        }
        ("substr" | "substring", 3) if is_positive_literal(a(1)) && is_literal_int(a(2)) => call(
            format!("substr({}, {}, {})", sqlite_text(a(0))?, a(1), a(2)),
        ),
        ("round", 1) => call(format!(
            "CAST(round(CAST({} AS numeric)) AS double precision)",
            a(0)
        )),
        ("round", 2) if is_literal_int(a(1)) => call(format!(
            "CAST(round(CAST({} AS numeric), {}) AS double precision)",
            a(0),
            a(1)
        )),
        ("json_extract", 2) => {
            let keys = path_keys(a(1)).ok_or_else(|| {
                "json_extract on PostgreSQL takes a literal path of keys and indexes \
                 ('$.a.b[0]')"
                    .to_string()
            })?;
            let j = format!("({} #> {keys})", doc(a(0))?);
            call(json_value(&j)?)
        }
        ("json_array_length", 1) => {
            let j = doc(a(0))?;
            call(format!(
                "(CASE WHEN {j} IS NULL THEN NULL WHEN jsonb_typeof({j}) = 'array' \
                 THEN jsonb_array_length({j}) ELSE 0 END)"
            ))
        }
        _ => return Err(unsupported(name)),
    })
}

/// SQLite's `current_timestamp`/`current_date`/`current_time` (UTC text).
pub fn nullary(name: &str) -> Result<String, String> {
    let fmt = match name {
        "current_timestamp" => "YYYY-MM-DD HH24:MI:SS",
        "current_date" => "YYYY-MM-DD",
        "current_time" => "HH24:MI:SS",
        _ => return Err(unsupported(name)),
    };
    Ok(format!(
        "to_char(statement_timestamp() AT TIME ZONE 'UTC', '{fmt}')"
    ))
}

/// `CAST(x AS ty)` (`ty` lowercased, one of the view's cast types) with
/// SQLite's conversions.
pub fn cast(x: &str, ty: &str) -> Result<String, String> {
    let t = sqlite_text(x)?;
    let x = repeatable(x)?;
    let real =
        format!("CAST(regexp_replace({t}, {REAL_PREFIX}, '\\10\\2\\3') AS double precision)");
    Ok(match ty {
        "text" => t,
        "int" | "integer" => format!(
            "(CASE WHEN pg_typeof({x}) IN ('double precision'::regtype, 'numeric'::regtype, \
             'real'::regtype) THEN CAST(trunc({real}) AS bigint) ELSE \
             CAST(regexp_replace({t}, {INT_PREFIX}, '\\10\\2') AS bigint) END)"
        ),
        "real" | "float" | "double" | "numeric" | "decimal" => real,
        "boolean" | "bool" => format!("({real} <> 0)"),
        _ => {
            return Err(format!(
                "CAST AS {ty} is not supported by views on PostgreSQL"
            ))
        }
    })
}

/// A table-valued function in FROM: `json_each(x)` as the elements of
/// the JSON array `x` (its only column `value`, as text); `alias` is the
/// quoted name the query gives it (or its own).
pub fn table_function(name: &str, args: &[String], alias: &str) -> Result<String, String> {
    match (name, args) {
        ("json_each", [x]) => {
            let j = doc(x)?;
            Ok(format!(
                "LATERAL (SELECT ({v}) AS \"value\" FROM jsonb_array_elements(CASE WHEN {j} IS \
                 NULL THEN '[]'::jsonb WHEN jsonb_typeof({j}) = 'array' THEN {j} ELSE \
                 jsonb_build_array({j}) END) AS \"__e\"(\"e\")) AS {alias}",
                v = json_value("\"__e\".\"e\"")?
            ))
        }
        _ => Err(format!(
            "the table function {name} is not supported by views on PostgreSQL"
        )),
    }
}

/// Whether a rendered operand is a number literal SQLite reads as a
/// REAL (`1.5`, `2e3`).
fn real_literal(x: &str) -> bool {
    let t = x.trim_start_matches(['(', '-', '+']).trim_end_matches(')');
    !t.is_empty()
        && t.bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
        && t.bytes().any(|c| matches!(c, b'.' | b'e' | b'E'))
}

/// `a / b` as SQLite divides: whole numbers (SQLite keeps a number
/// field's whole values as integers) by integer division truncating
/// toward zero, anything with a REAL literal as floats; by zero NULL.
pub fn divide(a: &str, b: &str) -> Result<String, String> {
    let (a, b) = (repeatable(a)?, repeatable(b)?);
    let real =
        format!("(CAST({a} AS double precision) / NULLIF(CAST({b} AS double precision), 0))");
    if real_literal(a) || real_literal(b) {
        return Ok(real);
    }
    Ok(format!(
        "(CASE WHEN {a} = trunc({a}) AND {b} = trunc({b}) THEN trunc{real} ELSE {real} END)"
    ))
}

/// `a % b` as SQLite's: the remainder of both truncated to integers (its
/// sign the dividend's); by zero NULL.
pub fn modulo(a: &str, b: &str) -> String {
    format!(
        "CAST(mod(CAST(trunc({a}) AS bigint), NULLIF(CAST(trunc({b}) AS bigint), 0)) AS double precision)"
    )
}

/// Where NULLs sort when the query doesn't say: first ascending, last
/// descending, as in SQLite (PostgreSQL's default is the opposite).
pub fn nulls(desc: bool) -> &'static str {
    if desc {
        " NULLS LAST"
    } else {
        " NULLS FIRST"
    }
}

/// ` LIMIT x`: a negative `x` is no limit, as in SQLite (PostgreSQL's
/// is NULL).
pub fn limit(x: &str) -> Result<String, String> {
    let x = repeatable(x)?;
    Ok(format!(" LIMIT (CASE WHEN {x} < 0 THEN NULL ELSE {x} END)"))
}

/// `a [NOT] LIKE p [ESCAPE e]` as SQLite's: ASCII letters match either
/// case, `\` is no escape unless it is the ESCAPE, and bytes compare as
/// they are (`COLLATE "C"`, which also lets it
/// run over a `nocase` column).
pub fn like(a: &str, p: &str, escape: Option<&str>, negated: bool) -> String {
    // No ESCAPE is none (PostgreSQL's default is `\`).
    let esc = format!(" ESCAPE {}", escape.unwrap_or("''"));
    format!(
        "({} COLLATE \"C\"{}{}{esc})",
        fold(a, UPPER, LOWER),
        if negated { " NOT LIKE " } else { " LIKE " },
        fold(p, UPPER, LOWER),
    )
}

/// A view query's collation: SQLite's `BINARY` is byte order (`"C"`),
/// `NOCASE` the schema's `nocase`; `RTRIM` has no counterpart.
pub fn collation(c: &str) -> Result<&'static str, String> {
    match c {
        "binary" => Ok("\"C\""),
        "nocase" => Ok("nocase"),
        _ => Err(format!(
            "the collation {c} is not supported by views on PostgreSQL"
        )),
    }
}

/// The column a view gives a JSON field from a value of PostgreSQL type
/// `pg_type` (`quoted` the column): SQLite's truth values are 1 and 0, and
/// text that the record reader would not take for JSON (`ALPHA`) is
/// stored as the JSON string it reads as (`"ALPHA"`), so that a filter,
/// which reads a JSON column as JSON here, can read it too. Text the reader
/// tries as JSON ('', `null`, `true`, `false`, starting with a digit, `-`,
/// `"`, `[` or `{`) is kept as it is.
pub fn json_column(quoted: &str, pg_type: Option<&str>) -> String {
    let t = match pg_type {
        Some("bool") => format!("CAST(CAST({quoted} AS int) AS text)"),
        _ => format!("CAST({quoted} AS text)"),
    };
    format!(
        "(CASE WHEN {t} = '' OR {t} IN ('null', 'true', 'false') OR {t} ~ '^[-0-9\"\\[{{]' \
         THEN {t} ELSE CAST(to_jsonb({t}) AS text) END)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths() {
        assert_eq!(path_keys("'$.a'").as_deref(), Some("'{a}'"));
        assert_eq!(path_keys("'$.a[0].b_1'").as_deref(), Some("'{a,0,b_1}'"));
        assert_eq!(path_keys("'$'").as_deref(), Some("'{}'"));
        for bad in ["'$.\"a\"'", "'a'", "x", "'$[#-1]'", "'$.'", "'$.a'']'"] {
            assert_eq!(path_keys(bad), None, "{bad}");
        }
    }

    #[test]
    fn refuses_what_it_cannot_match() {
        for (name, args) in [
            ("typeof", vec!["1"]),
            ("random", vec![]),
            ("max", vec!["1", "2"]),
            ("substr", vec!["x", "-1"]),
            ("strftime", vec!["'%Y'", "x"]),
            ("json_extract", vec!["x", "y"]),
        ] {
            let args: Vec<String> = args.into_iter().map(String::from).collect();
            assert!(function(name, false, &args).is_err(), "{name}");
        }
        let long = "x".repeat(MAX_REPEATED + 1);
        assert!(cast(&long, "integer").is_err());
    }
}
