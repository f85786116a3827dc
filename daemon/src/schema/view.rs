//! View collections: a `viewQuery` is parsed (sqlparser, SQLite dialect),
//! checked against a whitelist — one read-only SELECT (CTEs, joins,
//! subqueries, aggregates, window functions) over collection tables and
//! their columns, whitelisted functions only — and rendered again from the
//! tree with every identifier quoted. The request's text is never executed:
//! only what this module renders is. What is not explicitly handled here is
//! refused.
//!
//! Field inference follows PocketBase's: the top-level select's columns,
//! `id` as the view's text primary key, `count(…)`/`total(…)` as numbers,
//! `CAST(… AS type)` by the type, a plain column reference as a copy of the
//! source field (its `id` as a single relation to its collection), anything
//! else as JSON. Pure: the column names SQLite gives the rendered query are
//! passed in by the caller.

use super::field::FieldKind;
use super::Schema;
use serde_json::{json, Value};
use sqlparser::ast::{
    BinaryOperator, CastKind, Distinct, Expr, FunctionArg, FunctionArgExpr, FunctionArguments,
    GroupByExpr, Ident, JoinConstraint, JoinOperator, LimitClause, ObjectName, ObjectNamePart,
    OrderBy, OrderByExpr, OrderByKind, Query, Select, SelectFlavor, SelectItem, SetExpr,
    SetOperator, SetQuantifier, TableFactor, TableWithJoins, UnaryOperator, Value as V, WindowType,
};
use sqlparser::dialect::SQLiteDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;
use std::collections::HashSet;

/// The longest `viewQuery` accepted (PocketBase's dry-run form limit).
pub const MAX_QUERY_LEN: usize = 5000;
/// How deep expressions and subqueries may nest.
const MAX_DEPTH: usize = 48;

/// Scalar, aggregate, window, date and JSON functions of SQLite a view may
/// call. Nothing that reads files, loads extensions, allocates on demand
/// (`zeroblob`, `randomblob`) or inspects the database (`sqlite_*`,
/// `pragma_*`).
const FUNCTIONS: &[&str] = &[
    "abs",
    "char",
    "coalesce",
    "concat",
    "concat_ws",
    "format",
    "printf",
    "glob",
    "hex",
    "ifnull",
    "iif",
    "instr",
    "length",
    "like",
    "likelihood",
    "likely",
    "lower",
    "ltrim",
    "max",
    "min",
    "nullif",
    "octet_length",
    "quote",
    "random",
    "replace",
    "round",
    "rtrim",
    "sign",
    "substr",
    "substring",
    "trim",
    "typeof",
    "unhex",
    "unicode",
    "unlikely",
    "upper",
    "avg",
    "count",
    "group_concat",
    "string_agg",
    "sum",
    "total",
    "row_number",
    "rank",
    "dense_rank",
    "percent_rank",
    "cume_dist",
    "ntile",
    "lag",
    "lead",
    "first_value",
    "last_value",
    "nth_value",
    "date",
    "time",
    "datetime",
    "julianday",
    "unixepoch",
    "strftime",
    "timediff",
    "json",
    "json_array",
    "json_array_length",
    "json_extract",
    "json_insert",
    "json_object",
    "json_patch",
    "json_remove",
    "json_replace",
    "json_set",
    "json_type",
    "json_valid",
    "json_quote",
    "json_group_array",
    "json_group_object",
    "jsonb",
    "acos",
    "asin",
    "atan",
    "atan2",
    "ceil",
    "ceiling",
    "cos",
    "degrees",
    "exp",
    "floor",
    "ln",
    "log",
    "log10",
    "log2",
    "mod",
    "pi",
    "pow",
    "power",
    "radians",
    "sin",
    "sqrt",
    "tan",
    "trunc",
];
/// Table-valued functions a FROM may name (to read JSON arrays such as a
/// multiple relation).
const TABLE_FUNCTIONS: &[&str] = &["json_each", "json_tree"];
/// Bare keywords SQLite reads as values.
const NULLARY: &[&str] = &["current_timestamp", "current_date", "current_time"];
/// Type names a CAST may name.
const CAST_TYPES: &[&str] = &[
    "text", "int", "integer", "real", "numeric", "decimal", "boolean", "bool", "blob", "float",
    "double",
];
const COLLATIONS: &[&str] = &["binary", "nocase", "rtrim"];

/// What the top-level SELECT's column is, for field inference.
#[derive(Debug, Clone, PartialEq)]
pub enum Hint {
    /// `count(…)`: an integer number.
    Count,
    /// `total(…)`: a number.
    Total,
    /// `CAST(… AS type)`, the type lowercased.
    Cast(String),
    /// A column reference `[table.]column`.
    Column(Option<String>, String),
    /// Anything else.
    Other,
}

/// A checked view query.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The SELECT rendered from the tree: the only SQL of the view.
    pub sql: String,
    /// The top-level columns in order: hint and explicit alias.
    pub columns: Vec<(Hint, Option<String>)>,
    /// The top-level FROM/JOIN tables: (alias or name, collection name);
    /// the first is the main table.
    pub tables: Vec<(String, Option<String>)>,
    /// Every collection the query reads.
    pub sources: Vec<String>,
}

fn refuse<T>(msg: impl Into<String>) -> Result<T, String> {
    Err(msg.into())
}

/// `"name"` with inner quotes doubled.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Parses and checks `query` against `schema`; `self_name` is the view's own
/// name (a view can't read itself).
pub fn plan(query: &str, schema: &Schema, self_name: &str) -> Result<Plan, String> {
    let text = query.trim().trim_matches(';').trim();
    if text.is_empty() {
        return refuse("empty query");
    }
    if text.len() > MAX_QUERY_LEN {
        return refuse(format!(
            "the query is longer than {MAX_QUERY_LEN} characters"
        ));
    }
    // As PocketBase: a `;` between statements, or in a comment, is refused
    // (the rendered SQL has no comments, but the query should say what runs).
    let tokens = sqlparser::tokenizer::Tokenizer::new(&SQLiteDialect {}, text)
        .tokenize()
        .map_err(|e| format!("invalid SQL: {e}"))?;
    let hides = tokens.iter().any(|t| match t {
        sqlparser::tokenizer::Token::SemiColon => true,
        sqlparser::tokenizer::Token::Whitespace(w) => w.to_string().contains(';'),
        _ => false,
    });
    if hides {
        return refuse("multiple statements are not supported");
    }
    // Only the query grammar is entered (`parse_query`, not
    // `parse_statement`): the parser's DDL/DML statement code is then never
    // reached and the linker leaves it out of the binary (about 1 MB).
    let mut p = Parser::new(&SQLiteDialect {})
        .with_recursion_limit(MAX_DEPTH)
        .try_with_sql(text)
        .map_err(|e| format!("invalid SQL: {e}"))?;
    let first = p.peek_token();
    match &first.token {
        Token::LParen => {}
        Token::Word(w) => match w.keyword {
            Keyword::SELECT | Keyword::WITH | Keyword::VALUES | Keyword::FROM => {}
            Keyword::NoKeyword => {
                return p
                    .expected("an SQL statement", first)
                    .map_err(|e| format!("invalid SQL: {e}"))
            }
            // Another statement (INSERT, CREATE, PRAGMA...).
            _ => return refuse("only a SELECT query is allowed"),
        },
        _ => {
            return p
                .expected("an SQL statement", first)
                .map_err(|e| format!("invalid SQL: {e}"))
        }
    }
    let q = p
        .parse_query()
        .and_then(|q| match p.peek_token().token {
            Token::EOF => Ok(q),
            _ => p.expected("end of statement", p.peek_token()),
        })
        .map_err(|e| format!("invalid SQL: {e}"))?;
    let q = &*q;
    let mut r = Renderer {
        schema,
        self_name,
        out: String::new(),
        depth: 0,
        defined: HashSet::new(),
        ctes: HashSet::new(),
        tables: HashSet::new(),
        columns: Vec::new(),
        qualifiers: Vec::new(),
        sources: Vec::new(),
        unnamed: 0,
        #[cfg(feature = "postgres")]
        pg: schema.engine() == crate::store::engine::Engine::Postgres,
    };
    r.query(q)?;
    r.check_names()?;
    let (columns, tables) = top_level(q)?;
    let mut sources = r.sources;
    sources.sort();
    sources.dedup();
    Ok(Plan {
        sql: r.out,
        columns,
        tables,
        sources,
    })
}

/// The hints and tables of the top-level select (the leftmost of a
/// compound one).
type TopLevel = (Vec<(Hint, Option<String>)>, Vec<(String, Option<String>)>);

fn top_level(q: &Query) -> Result<TopLevel, String> {
    let mut body = q.body.as_ref();
    while let SetExpr::SetOperation { left, .. } = body {
        body = left;
    }
    let SetExpr::Select(s) = body else {
        return refuse("unsupported query body");
    };
    let mut cols = Vec::new();
    for item in &s.projection {
        let (e, alias) = match item {
            SelectItem::UnnamedExpr(e) => (e, None),
            SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.value.clone())),
            _ => return refuse(WILDCARD),
        };
        cols.push((hint(e), alias));
    }
    let mut tables = Vec::new();
    for twj in &s.from {
        for tf in std::iter::once(&twj.relation).chain(twj.joins.iter().map(|j| &j.relation)) {
            match tf {
                TableFactor::Table {
                    name, alias, args, ..
                } if args.is_none() => {
                    let n = single_name(name)?;
                    let a = alias.as_ref().map_or(n.clone(), |a| a.name.value.clone());
                    tables.push((a, Some(n)));
                }
                TableFactor::Table { alias, .. } | TableFactor::Derived { alias, .. } => {
                    let a = alias.as_ref().map(|a| a.name.value.clone());
                    tables.push((a.unwrap_or_default(), None));
                }
                _ => {}
            }
        }
    }
    Ok((cols, tables))
}

fn hint(e: &Expr) -> Hint {
    match e {
        Expr::Nested(e) => hint(e),
        Expr::Identifier(i) => Hint::Column(None, i.value.clone()),
        Expr::CompoundIdentifier(p) if p.len() == 2 => {
            Hint::Column(Some(p[0].value.clone()), p[1].value.clone())
        }
        Expr::Cast { data_type, .. } => Hint::Cast(
            data_type
                .to_string()
                .to_lowercase()
                .split('(')
                .next()
                .unwrap_or_default()
                .trim()
                .to_string(),
        ),
        Expr::Function(f) => match f.name.to_string().to_lowercase().as_str() {
            "count" => Hint::Count,
            "total" => Hint::Total,
            _ => Hint::Other,
        },
        _ => Hint::Other,
    }
}

const WILDCARD: &str = "wildcard columns (*) are not supported - manually type the collection field names you want the view query to have";

fn single_name(n: &ObjectName) -> Result<String, String> {
    match n.0.as_slice() {
        [ObjectNamePart::Identifier(i)] => Ok(i.value.clone()),
        _ => refuse(format!("unsupported name {n}")),
    }
}

struct Renderer<'a> {
    schema: &'a Schema,
    self_name: &'a str,
    out: String,
    depth: usize,
    /// Names the query defines: CTE names and columns, table and column
    /// aliases (lowercased).
    defined: HashSet<String>,
    ctes: HashSet<String>,
    /// Table names and aliases in the query (lowercased).
    tables: HashSet<String>,
    /// Column names the query reads.
    columns: Vec<String>,
    /// `t.column` references.
    qualifiers: Vec<(String, String)>,
    /// Collections read.
    sources: Vec<String>,
    /// Subqueries in FROM given a name of ours (an engine that needs one
    /// for each: PostgreSQL).
    unnamed: u32,
    /// Rendering for PostgreSQL: functions, casts, table functions and
    /// `LIKE` spelled by `store::postgres::view` for SQLite's answers.
    #[cfg(feature = "postgres")]
    pg: bool,
}

impl Renderer<'_> {
    fn w(&mut self, s: &str) {
        self.out.push_str(s);
    }

    fn ident(&mut self, i: &Ident) {
        let q = quote(&i.value);
        self.w(&q);
    }

    /// `e` rendered on its own (to be handed to the engine's spelling).
    #[cfg(feature = "postgres")]
    fn rendered(&mut self, e: &Expr) -> Result<String, String> {
        let saved = std::mem::take(&mut self.out);
        let r = self.expr(e);
        let out = std::mem::replace(&mut self.out, saved);
        r.map(|()| out)
    }

    /// Each argument rendered on its own (`*` as is).
    #[cfg(feature = "postgres")]
    fn rendered_args(&mut self, args: &[FunctionArg]) -> Result<Vec<String>, String> {
        let mut out = Vec::with_capacity(args.len());
        for a in args {
            match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => out.push(self.rendered(e)?),
                FunctionArg::Unnamed(FunctionArgExpr::Wildcard) if args.len() == 1 => {
                    out.push("*".into())
                }
                _ => return refuse("unsupported function argument"),
            }
        }
        Ok(out)
    }

    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return refuse("the query nests too deeply");
        }
        Ok(())
    }

    /// Every column a query reads is a field of a collection it reads or a
    /// name it defines; every qualifier is a table or alias of it; no
    /// hidden field (a password hash, a token key) is read.
    fn check_names(&self) -> Result<(), String> {
        let mut fields: HashSet<String> = HashSet::new();
        let mut secret: HashSet<String> = HashSet::new();
        for name in &self.sources {
            if let Some(c) = self.schema.get(name) {
                for f in &c.fields {
                    fields.insert(f.name.to_lowercase());
                    if matches!(f.kind, FieldKind::Password(_))
                        || (c.is_auth() && f.name == "tokenKey")
                    {
                        secret.insert(f.name.to_lowercase());
                    }
                }
            }
        }
        for col in &self.columns {
            let l = col.to_lowercase();
            if secret.contains(&l) {
                return refuse(format!("the hidden field {col} can't be read by a view"));
            }
            if !fields.contains(&l) && !self.defined.contains(&l) {
                return refuse(format!("SQL logic error: no such column: {col} (1)"));
            }
        }
        for (t, c) in &self.qualifiers {
            if !self.tables.contains(&t.to_lowercase()) {
                return refuse(format!("SQL logic error: no such column: {t}.{c} (1)"));
            }
        }
        Ok(())
    }

    fn query(&mut self, q: &Query) -> Result<(), String> {
        self.enter()?;
        if q.fetch.is_some()
            || !q.locks.is_empty()
            || q.for_clause.is_some()
            || q.settings.is_some()
            || q.format_clause.is_some()
            || !q.pipe_operators.is_empty()
        {
            return refuse("unsupported query clause");
        }
        if let Some(with) = &q.with {
            if with.recursive {
                return refuse("recursive common table expressions are not supported");
            }
            self.w("WITH ");
            for (i, cte) in with.cte_tables.iter().enumerate() {
                if i > 0 {
                    self.w(", ");
                }
                if cte.from.is_some() || cte.materialized.is_some() {
                    return refuse("unsupported common table expression");
                }
                let name = cte.alias.name.value.to_lowercase();
                self.ctes.insert(name.clone());
                self.defined.insert(name.clone());
                self.tables.insert(name);
                self.ident(&cte.alias.name);
                if !cte.alias.columns.is_empty() {
                    self.w(" (");
                    for (j, c) in cte.alias.columns.iter().enumerate() {
                        if c.data_type.is_some() {
                            return refuse("unsupported common table expression");
                        }
                        if j > 0 {
                            self.w(", ");
                        }
                        self.defined.insert(c.name.value.to_lowercase());
                        self.ident(&c.name);
                    }
                    self.w(")");
                }
                self.w(" AS (");
                self.query(&cte.query)?;
                self.w(")");
            }
            self.w(" ");
        }
        self.set_expr(&q.body)?;
        if let Some(ob) = &q.order_by {
            self.order_by(ob)?;
        }
        match &q.limit_clause {
            None => {}
            Some(LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            }) => {
                if !limit_by.is_empty() {
                    return refuse("unsupported LIMIT BY");
                }
                if let Some(l) = limit {
                    self.limit(l)?;
                } else if offset.is_some() {
                    #[cfg(feature = "postgres")]
                    if self.pg {
                        self.w(crate::store::postgres::view::NO_LIMIT);
                    } else {
                        self.w(crate::store::dialect::NO_LIMIT);
                    }
                    #[cfg(not(feature = "postgres"))]
                    self.w(crate::store::dialect::NO_LIMIT);
                }
                if let Some(o) = offset {
                    self.w(" OFFSET ");
                    self.expr(&o.value)?;
                }
            }
            Some(LimitClause::OffsetCommaLimit { offset, limit }) => {
                self.limit(limit)?;
                self.w(" OFFSET ");
                self.expr(offset)?;
            }
        }
        self.depth -= 1;
        Ok(())
    }

    /// ` LIMIT x` (on PostgreSQL, a negative `x` is no limit, as SQLite's).
    fn limit(&mut self, l: &Expr) -> Result<(), String> {
        #[cfg(feature = "postgres")]
        if self.pg {
            let x = self.rendered(l)?;
            self.w(&crate::store::postgres::view::limit(&x)?);
            return Ok(());
        }
        self.w(" LIMIT ");
        self.expr(l)
    }

    fn order_by(&mut self, ob: &OrderBy) -> Result<(), String> {
        let OrderByKind::Expressions(list) = &ob.kind else {
            return refuse("unsupported ORDER BY");
        };
        if ob.interpolate.is_some() {
            return refuse("unsupported ORDER BY");
        }
        self.w(" ORDER BY ");
        self.order_list(list)
    }

    fn order_list(&mut self, list: &[OrderByExpr]) -> Result<(), String> {
        for (i, o) in list.iter().enumerate() {
            if i > 0 {
                self.w(", ");
            }
            if o.with_fill.is_some() {
                return refuse("unsupported ORDER BY");
            }
            self.expr(&o.expr)?;
            match o.options.sort {
                Some(sqlparser::ast::OrderBySort::Asc) => self.w(" ASC"),
                Some(sqlparser::ast::OrderBySort::Desc) => self.w(" DESC"),
                None => {}
                Some(_) => return refuse("unsupported ORDER BY"),
            }
            match o.options.nulls_first {
                Some(true) => self.w(" NULLS FIRST"),
                Some(false) => self.w(" NULLS LAST"),
                #[cfg(feature = "postgres")]
                None if self.pg => self.w(crate::store::postgres::view::nulls(matches!(
                    o.options.sort,
                    Some(sqlparser::ast::OrderBySort::Desc)
                ))),
                None => {}
            }
        }
        Ok(())
    }

    fn set_expr(&mut self, s: &SetExpr) -> Result<(), String> {
        match s {
            SetExpr::Select(sel) => self.select(sel),
            SetExpr::SetOperation {
                left,
                op,
                set_quantifier,
                right,
            } => {
                if !matches!(**left, SetExpr::Select(_) | SetExpr::SetOperation { .. })
                    || !matches!(**right, SetExpr::Select(_))
                {
                    return refuse("unsupported compound SELECT");
                }
                self.set_expr(left)?;
                let op = match (op, set_quantifier) {
                    (SetOperator::Union, SetQuantifier::None | SetQuantifier::Distinct) => {
                        " UNION "
                    }
                    (SetOperator::Union, SetQuantifier::All) => " UNION ALL ",
                    (SetOperator::Intersect, SetQuantifier::None) => " INTERSECT ",
                    (SetOperator::Except, SetQuantifier::None) => " EXCEPT ",
                    _ => return refuse("unsupported compound SELECT"),
                };
                self.w(op);
                self.set_expr(right)
            }
            _ => refuse("only a read-only SELECT is allowed"),
        }
    }

    fn select(&mut self, s: &Select) -> Result<(), String> {
        if !s.optimizer_hints.is_empty()
            || s.select_modifiers.is_some()
            || s.top.is_some()
            || s.exclude.is_some()
            || s.into.is_some()
            || !s.lateral_views.is_empty()
            || s.prewhere.is_some()
            || !s.connect_by.is_empty()
            || !s.cluster_by.is_empty()
            || !s.distribute_by.is_empty()
            || !s.sort_by.is_empty()
            || !s.named_window.is_empty()
            || s.qualify.is_some()
            || s.value_table_mode.is_some()
            || s.flavor != SelectFlavor::Standard
        {
            return refuse("unsupported SELECT clause");
        }
        self.w("SELECT ");
        match &s.distinct {
            None | Some(Distinct::All) => {}
            Some(Distinct::Distinct) => self.w("DISTINCT "),
            Some(Distinct::On(_)) => return refuse("unsupported DISTINCT ON"),
        }
        // The FROM first: its aliases are known before the columns.
        let mut from = String::new();
        if !s.from.is_empty() {
            let saved = std::mem::take(&mut self.out);
            self.w(" FROM ");
            for (i, t) in s.from.iter().enumerate() {
                if i > 0 {
                    self.w(", ");
                }
                self.table_with_joins(t)?;
            }
            from = std::mem::replace(&mut self.out, saved);
        }
        if s.projection.is_empty() {
            return refuse("empty SELECT");
        }
        for (i, item) in s.projection.iter().enumerate() {
            if i > 0 {
                self.w(", ");
            }
            match item {
                SelectItem::UnnamedExpr(e) => self.expr(e)?,
                SelectItem::ExprWithAlias { expr, alias } => {
                    self.expr(expr)?;
                    self.defined.insert(alias.value.to_lowercase());
                    self.w(" AS ");
                    self.ident(alias);
                }
                _ => return refuse(WILDCARD),
            }
        }
        self.w(&from);
        if let Some(e) = &s.selection {
            self.w(" WHERE ");
            self.expr(e)?;
        }
        match &s.group_by {
            GroupByExpr::Expressions(list, mods) if mods.is_empty() => {
                if !list.is_empty() {
                    self.w(" GROUP BY ");
                    self.expr_list(list)?;
                }
            }
            _ => return refuse("unsupported GROUP BY"),
        }
        if let Some(h) = &s.having {
            self.w(" HAVING ");
            self.expr(h)?;
        }
        Ok(())
    }

    fn table_with_joins(&mut self, t: &TableWithJoins) -> Result<(), String> {
        self.table_factor(&t.relation)?;
        for j in &t.joins {
            if j.global {
                return refuse("unsupported join");
            }
            let (kw, c) = match &j.join_operator {
                JoinOperator::Join(c) => (" JOIN ", c),
                JoinOperator::Inner(c) => (" INNER JOIN ", c),
                JoinOperator::Left(c) => (" LEFT JOIN ", c),
                JoinOperator::LeftOuter(c) => (" LEFT OUTER JOIN ", c),
                JoinOperator::CrossJoin(c) => (" CROSS JOIN ", c),
                _ => return refuse("unsupported join"),
            };
            if matches!(c, JoinConstraint::Natural) {
                self.w(" NATURAL");
            }
            self.w(kw);
            self.table_factor(&j.relation)?;
            match c {
                JoinConstraint::On(e) => {
                    self.w(" ON ");
                    self.expr(e)?;
                }
                JoinConstraint::Using(cols) => {
                    self.w(" USING (");
                    for (i, c) in cols.iter().enumerate() {
                        if i > 0 {
                            self.w(", ");
                        }
                        let n = single_name(c)?;
                        self.columns.push(n.clone());
                        self.w(&quote(&n));
                    }
                    self.w(")");
                }
                JoinConstraint::Natural | JoinConstraint::None => {}
                JoinConstraint::UsingAlias(..) => return refuse("unsupported join"),
            }
        }
        Ok(())
    }

    fn table_alias(&mut self, alias: &Option<sqlparser::ast::TableAlias>) -> Result<(), String> {
        if let Some(a) = alias {
            if !a.columns.is_empty() || a.at.is_some() {
                return refuse("unsupported table alias");
            }
            self.tables.insert(a.name.value.to_lowercase());
            self.defined.insert(a.name.value.to_lowercase());
            self.w(" AS ");
            self.ident(&a.name);
        }
        Ok(())
    }

    fn table_factor(&mut self, t: &TableFactor) -> Result<(), String> {
        match t {
            TableFactor::Table {
                name,
                alias,
                args,
                with_hints,
                version,
                with_ordinality,
                partitions,
                json_path,
                sample,
                index_directives,
                inheritance,
            } => {
                if !with_hints.is_empty()
                    || version.is_some()
                    || *with_ordinality
                    || !partitions.is_empty()
                    || json_path.is_some()
                    || sample.is_some()
                    || !index_directives.is_empty()
                    || inheritance.is_some()
                {
                    return refuse("unsupported table clause");
                }
                let n = single_name(name)?;
                let lower = n.to_lowercase();
                if let Some(a) = args {
                    if !TABLE_FUNCTIONS.contains(&lower.as_str()) || a.settings.is_some() {
                        return refuse(format!("unsupported table function {n}"));
                    }
                    #[cfg(feature = "postgres")]
                    if self.pg {
                        let rendered = self.rendered_args(&a.args)?;
                        let name = match alias {
                            Some(al) if al.columns.is_empty() && al.at.is_none() => {
                                al.name.value.clone()
                            }
                            Some(_) => return refuse("unsupported table alias"),
                            None => lower.clone(),
                        };
                        let sql = crate::store::postgres::view::table_function(
                            &lower,
                            &rendered,
                            &quote(&name),
                        )?;
                        self.w(&sql);
                        self.defined.insert("value".into());
                        self.tables.insert(name.to_lowercase());
                        self.defined.insert(name.to_lowercase());
                        return Ok(());
                    }
                    self.w(&lower);
                    self.w("(");
                    self.function_args(&a.args)?;
                    self.w(")");
                    // json_each's columns.
                    for c in [
                        "key", "value", "type", "atom", "id", "parent", "fullkey", "path",
                    ] {
                        self.defined.insert(c.into());
                    }
                    self.tables.insert(lower);
                } else if self.ctes.contains(&lower) {
                    self.w(&quote(&n));
                    self.tables.insert(lower);
                } else {
                    let c = self.collection(&n)?;
                    self.sources.push(c.clone());
                    self.tables.insert(c.to_lowercase());
                    let q = quote(&c);
                    self.w(&q);
                }
                self.table_alias(alias)
            }
            TableFactor::Derived {
                lateral,
                subquery,
                alias,
                sample,
            } => {
                if *lateral || sample.is_some() {
                    return refuse("unsupported LATERAL");
                }
                self.w("(");
                self.query(subquery)?;
                self.w(")");
                if alias.is_none() && self.schema.engine().typed() {
                    self.unnamed += 1;
                    let a = quote(&format!("__from{}", self.unnamed));
                    self.w(" AS ");
                    self.w(&a);
                    return Ok(());
                }
                self.table_alias(alias)
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => {
                self.w("(");
                self.table_with_joins(table_with_joins)?;
                self.w(")");
                self.table_alias(alias)
            }
            _ => refuse("unsupported FROM item"),
        }
    }

    fn collection(&self, name: &str) -> Result<String, String> {
        if name.eq_ignore_ascii_case(self.self_name) {
            return refuse("a view can't read itself");
        }
        match self.schema.get(name) {
            Some(c) if c.name.eq_ignore_ascii_case(name) => Ok(c.name.clone()),
            _ => refuse(format!("SQL logic error: no such table: main.{name} (1)")),
        }
    }

    fn expr_list(&mut self, list: &[Expr]) -> Result<(), String> {
        for (i, e) in list.iter().enumerate() {
            if i > 0 {
                self.w(", ");
            }
            self.expr(e)?;
        }
        Ok(())
    }

    fn expr(&mut self, e: &Expr) -> Result<(), String> {
        self.enter()?;
        self.expr_inner(e)?;
        self.depth -= 1;
        Ok(())
    }

    fn expr_inner(&mut self, e: &Expr) -> Result<(), String> {
        match e {
            Expr::Identifier(i) => {
                self.columns.push(i.value.clone());
                self.ident(i);
            }
            Expr::CompoundIdentifier(parts) => {
                let [t, c] = parts.as_slice() else {
                    return refuse("unsupported qualified name");
                };
                self.qualifiers.push((t.value.clone(), c.value.clone()));
                self.columns.push(c.value.clone());
                self.ident(t);
                self.w(".");
                self.ident(c);
            }
            Expr::Value(v) => self.value(&v.value)?,
            // Every compound expression is rendered in its own parentheses.
            Expr::Nested(e) => self.expr(e)?,
            Expr::IsNull(x) | Expr::IsNotNull(x) => {
                self.w("(");
                self.expr(x)?;
                self.w(if matches!(e, Expr::IsNull(_)) {
                    " IS NULL)"
                } else {
                    " IS NOT NULL)"
                });
            }
            Expr::IsDistinctFrom(a, b) | Expr::IsNotDistinctFrom(a, b) => {
                self.w("(");
                self.expr(a)?;
                self.w(if matches!(e, Expr::IsDistinctFrom(..)) {
                    " IS NOT "
                } else {
                    " IS "
                });
                self.expr(b)?;
                self.w(")");
            }
            Expr::Between {
                expr,
                negated,
                low,
                high,
            } => {
                self.w("(");
                self.expr(expr)?;
                self.w(if *negated {
                    " NOT BETWEEN "
                } else {
                    " BETWEEN "
                });
                self.expr(low)?;
                self.w(" AND ");
                self.expr(high)?;
                self.w(")");
            }
            Expr::In {
                expr,
                target,
                negated,
                global,
            } => {
                if *global {
                    return refuse("unsupported IN");
                }
                self.w("(");
                self.expr(expr)?;
                self.w(if *negated { " NOT IN (" } else { " IN (" });
                match target {
                    sqlparser::ast::InTarget::List(l) => self.expr_list(l)?,
                    sqlparser::ast::InTarget::Subquery(q) => self.query(q)?,
                    _ => return refuse("unsupported IN"),
                }
                self.w("))");
            }
            Expr::BinaryOp { left, op, right } => {
                let o = match op {
                    BinaryOperator::Plus => "+",
                    BinaryOperator::Minus => "-",
                    BinaryOperator::Multiply => "*",
                    BinaryOperator::Divide => "/",
                    BinaryOperator::Modulo => "%",
                    BinaryOperator::StringConcat => "||",
                    BinaryOperator::Gt => ">",
                    BinaryOperator::Lt => "<",
                    BinaryOperator::GtEq => ">=",
                    BinaryOperator::LtEq => "<=",
                    BinaryOperator::Eq => "=",
                    BinaryOperator::NotEq => "!=",
                    BinaryOperator::And => "AND",
                    BinaryOperator::Or => "OR",
                    BinaryOperator::BitwiseOr => "|",
                    BinaryOperator::BitwiseAnd => "&",
                    BinaryOperator::PGBitwiseShiftLeft => "<<",
                    BinaryOperator::PGBitwiseShiftRight => ">>",
                    _ => return refuse(format!("unsupported operator {op}")),
                };
                #[cfg(feature = "postgres")]
                if self.pg && matches!(op, BinaryOperator::Divide | BinaryOperator::Modulo) {
                    let a = self.rendered(left)?;
                    let b = self.rendered(right)?;
                    let sql = if matches!(op, BinaryOperator::Divide) {
                        crate::store::postgres::view::divide(&a, &b)?
                    } else {
                        crate::store::postgres::view::modulo(&a, &b)
                    };
                    self.w(&sql);
                    return Ok(());
                }
                self.w("(");
                self.expr(left)?;
                self.w(" ");
                self.w(o);
                self.w(" ");
                self.expr(right)?;
                self.w(")");
            }
            Expr::UnaryOp { op, expr } => {
                let o = match op {
                    UnaryOperator::Not => "NOT ",
                    UnaryOperator::Minus => "-",
                    UnaryOperator::Plus => "+",
                    UnaryOperator::BitwiseNot => "~",
                    _ => return refuse(format!("unsupported operator {op}")),
                };
                self.w("(");
                self.w(o);
                self.expr(expr)?;
                self.w(")");
            }
            Expr::Like {
                negated,
                any,
                expr,
                pattern,
                escape_char,
            } => {
                if *any {
                    return refuse("unsupported LIKE");
                }
                #[cfg(feature = "postgres")]
                if self.pg {
                    let a = self.rendered(expr)?;
                    let p = self.rendered(pattern)?;
                    let esc = match escape_char {
                        Some(c) => Some(self.rendered(c)?),
                        None => None,
                    };
                    self.w(&crate::store::postgres::view::like(
                        &a,
                        &p,
                        esc.as_deref(),
                        *negated,
                    ));
                    return Ok(());
                }
                self.w("(");
                self.expr(expr)?;
                self.w(if *negated { " NOT LIKE " } else { " LIKE " });
                self.expr(pattern)?;
                if let Some(c) = escape_char {
                    self.w(" ESCAPE ");
                    self.expr(c)?;
                }
                self.w(")");
            }
            Expr::Cast {
                kind,
                expr,
                data_type,
                format,
            } => {
                if !matches!(kind, CastKind::Cast) || format.is_some() {
                    return refuse("unsupported CAST");
                }
                let t = data_type.to_string().to_lowercase();
                if !CAST_TYPES.contains(&t.as_str()) {
                    return refuse(format!("unsupported CAST type {data_type}"));
                }
                #[cfg(feature = "postgres")]
                if self.pg {
                    let x = self.rendered(expr)?;
                    self.w(&crate::store::postgres::view::cast(&x, &t)?);
                    return Ok(());
                }
                self.w("CAST(");
                self.expr(expr)?;
                self.w(" AS ");
                self.w(&t.to_uppercase());
                self.w(")");
            }
            Expr::Collate { expr, collation } => {
                let c = single_name(collation)?.to_lowercase();
                if !COLLATIONS.contains(&c.as_str()) {
                    return refuse(format!("unsupported collation {collation}"));
                }
                self.w("(");
                self.expr(expr)?;
                self.w(" COLLATE ");
                #[cfg(feature = "postgres")]
                if self.pg {
                    self.w(crate::store::postgres::view::collation(&c)?);
                    self.w(")");
                    return Ok(());
                }
                self.w(&c.to_uppercase());
                self.w(")");
            }
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                self.w("CASE");
                if let Some(o) = operand {
                    self.w(" ");
                    self.expr(o)?;
                }
                for w in conditions {
                    self.w(" WHEN ");
                    self.expr(&w.condition)?;
                    self.w(" THEN ");
                    self.expr(&w.result)?;
                }
                if let Some(e) = else_result {
                    self.w(" ELSE ");
                    self.expr(e)?;
                }
                self.w(" END");
            }
            Expr::Exists { subquery, negated } => {
                self.w(if *negated {
                    "(NOT EXISTS ("
                } else {
                    "(EXISTS ("
                });
                self.query(subquery)?;
                self.w("))");
            }
            Expr::Subquery(q) => {
                self.w("(");
                self.query(q)?;
                self.w(")");
            }
            Expr::Function(f) => self.function(f)?,
            _ => return refuse(format!("unsupported expression {e}")),
        }
        Ok(())
    }

    fn value(&mut self, v: &V) -> Result<(), String> {
        match v {
            V::Number(n, false) => {
                if n.is_empty()
                    || !n
                        .chars()
                        .all(|c| c.is_ascii_hexdigit() || matches!(c, '.' | 'x' | 'X' | '+' | '-'))
                {
                    return refuse("invalid number");
                }
                self.w(n);
            }
            V::SingleQuotedString(s) => {
                let q = format!("'{}'", s.replace('\'', "''"));
                self.w(&q);
            }
            V::HexStringLiteral(h) => {
                if !h.chars().all(|c| c.is_ascii_hexdigit()) {
                    return refuse("invalid blob literal");
                }
                let q = format!("X'{h}'");
                self.w(&q);
            }
            V::Boolean(b) => self.w(if *b { "TRUE" } else { "FALSE" }),
            V::Null => self.w("NULL"),
            _ => return refuse(format!("unsupported value {v}")),
        }
        Ok(())
    }

    fn function_args(&mut self, args: &[FunctionArg]) -> Result<(), String> {
        for (i, a) in args.iter().enumerate() {
            if i > 0 {
                self.w(", ");
            }
            match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => self.expr(e)?,
                FunctionArg::Unnamed(FunctionArgExpr::Wildcard) if args.len() == 1 => self.w("*"),
                _ => return refuse("unsupported function argument"),
            }
        }
        Ok(())
    }

    fn function(&mut self, f: &sqlparser::ast::Function) -> Result<(), String> {
        let name = single_name(&f.name)?.to_lowercase();
        if f.uses_odbc_syntax
            || !matches!(f.parameters, FunctionArguments::None)
            || !f.within_group.is_empty()
            || f.null_treatment.is_some()
        {
            return refuse(format!("unsupported function call {name}"));
        }
        if let FunctionArguments::None = f.args {
            if NULLARY.contains(&name.as_str()) && f.over.is_none() && f.filter.is_none() {
                #[cfg(feature = "postgres")]
                if self.pg {
                    self.w(&crate::store::postgres::view::nullary(&name)?);
                    return Ok(());
                }
                self.w(&name.to_uppercase());
                return Ok(());
            }
            return refuse(format!("unsupported function call {name}"));
        }
        if !FUNCTIONS.contains(&name.as_str()) {
            return refuse(format!("SQL logic error: no such function: {name} (1)"));
        }
        #[cfg(feature = "postgres")]
        if self.pg {
            let tail = self.pg_call(&name, f)?;
            self.filter_over(f)?;
            self.w(&tail);
            return Ok(());
        }
        self.plain_call(&name, f)?;
        self.filter_over(f)
    }

    /// `name(args)` as `store::postgres::view` spells it: its head written,
    /// its tail (to follow the call's FILTER and OVER) returned.
    #[cfg(feature = "postgres")]
    fn pg_call(&mut self, name: &str, f: &sqlparser::ast::Function) -> Result<String, String> {
        let FunctionArguments::List(l) = &f.args else {
            return refuse(format!("unsupported function call {name}"));
        };
        if !l.clauses.is_empty() {
            return refuse(format!("unsupported function call {name}"));
        }
        if name != "count"
            && l.args
                .iter()
                .any(|a| matches!(a, FunctionArg::Unnamed(FunctionArgExpr::Wildcard)))
        {
            return refuse(WILDCARD);
        }
        let distinct = matches!(
            l.duplicate_treatment,
            Some(sqlparser::ast::DuplicateTreatment::Distinct)
        );
        let args = self.rendered_args(&l.args)?;
        let c = crate::store::postgres::view::function(name, distinct, &args)?;
        self.w(&c.head);
        Ok(c.tail)
    }

    /// `name(args)` as SQLite spells it.
    fn plain_call(&mut self, name: &str, f: &sqlparser::ast::Function) -> Result<(), String> {
        self.w(name);
        self.w("(");
        match &f.args {
            FunctionArguments::List(l) => {
                if !l.clauses.is_empty() {
                    return refuse(format!("unsupported function call {name}"));
                }
                match l.duplicate_treatment {
                    Some(sqlparser::ast::DuplicateTreatment::Distinct) => self.w("DISTINCT "),
                    Some(sqlparser::ast::DuplicateTreatment::All) | None => {}
                }
                if name != "count"
                    && l.args
                        .iter()
                        .any(|a| matches!(a, FunctionArg::Unnamed(FunctionArgExpr::Wildcard)))
                {
                    return refuse(WILDCARD);
                }
                self.function_args(&l.args)?;
            }
            _ => return refuse(format!("unsupported function call {name}")),
        }
        self.w(")");
        Ok(())
    }

    /// A call's `FILTER (WHERE …)` and `OVER (…)`.
    fn filter_over(&mut self, f: &sqlparser::ast::Function) -> Result<(), String> {
        if let Some(filter) = &f.filter {
            self.w(" FILTER (WHERE ");
            self.expr(filter)?;
            self.w(")");
        }
        match &f.over {
            None => {}
            Some(WindowType::WindowSpec(spec)) => {
                if spec.window_name.is_some() || spec.window_frame.is_some() {
                    return refuse("unsupported window");
                }
                self.w(" OVER (");
                if !spec.partition_by.is_empty() {
                    self.w("PARTITION BY ");
                    self.expr_list(&spec.partition_by)?;
                }
                if !spec.order_by.is_empty() {
                    if !spec.partition_by.is_empty() {
                        self.w(" ");
                    }
                    self.w("ORDER BY ");
                    self.order_list(&spec.order_by)?;
                }
                self.w(")");
            }
            Some(WindowType::NamedWindow(_)) => return refuse("unsupported window"),
        }
        Ok(())
    }
}

/// The view's id field, as PocketBase defines it.
pub fn id_field() -> Value {
    json!({"autogeneratePattern": "", "hidden": false, "id": "text3208210256", "max": 0,
        "min": 0, "name": "id", "pattern": "^[a-z0-9]+$", "presentable": false,
        "primaryKey": true, "required": true, "system": true, "type": "text"})
}

fn json_field(name: &str) -> Value {
    json!({"hidden": false, "id": format!("json{}", crate::util::crc32_checksum(name)),
        "maxSize": 1, "name": name, "presentable": false, "required": false,
        "system": false, "type": "json"})
}

fn simple(kind: &str, name: &str, extra: Value) -> Value {
    let mut v = json!({"hidden": false, "id": format!("{kind}{}", crate::util::crc32_checksum(name)),
        "name": name, "presentable": false, "required": false, "system": false, "type": kind});
    if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
    v
}

/// The view's fields (PocketBase's field JSON) for the columns SQLite
/// names, in order. `Err` when there is no `id` column.
pub fn infer_fields(
    plan: &Plan,
    columns: &[String],
    schema: &Schema,
) -> Result<Vec<Value>, String> {
    if !columns.iter().any(|c| c == "id") {
        return refuse("missing required id column (you can use `(ROW_NUMBER() OVER()) as id` if you don't have one)");
    }
    let main = plan.tables.first().cloned();
    let mut out = Vec::with_capacity(columns.len());
    for name in columns {
        let hint = plan.columns.iter().find(|(h, alias)| match (alias, h) {
            (Some(a), _) => a == name,
            (None, Hint::Column(_, c)) => c == name,
            _ => false,
        });
        let f = match hint.map(|(h, _)| h) {
            _ if name == "id" => id_field(),
            None | Some(Hint::Other) => json_field(name),
            Some(Hint::Count) => simple(
                "number",
                name,
                json!({"max": null, "min": null, "onlyInt": true}),
            ),
            Some(Hint::Total) => simple(
                "number",
                name,
                json!({"max": null, "min": null, "onlyInt": false}),
            ),
            Some(Hint::Cast(t)) => match t.as_str() {
                "real" | "decimal" | "numeric" => simple(
                    "number",
                    name,
                    json!({"max": null, "min": null, "onlyInt": false}),
                ),
                "int" | "integer" => simple(
                    "number",
                    name,
                    json!({"max": null, "min": null, "onlyInt": true}),
                ),
                "text" => simple(
                    "text",
                    name,
                    json!({"autogeneratePattern": "", "max": 0, "min": 0, "pattern": "", "primaryKey": false}),
                ),
                "boolean" | "bool" => simple("bool", name, json!({})),
                _ => json_field(name),
            },
            Some(Hint::Column(table, col)) => {
                let coll = match table {
                    Some(t) => plan
                        .tables
                        .iter()
                        .find(|(a, _)| a == t)
                        .and_then(|(_, c)| c.clone()),
                    None => main.as_ref().and_then(|(_, c)| c.clone()),
                };
                let coll = coll.and_then(|c| schema.get(&c).filter(|x| x.name == c));
                let field = coll.and_then(|c| {
                    c.fields
                        .iter()
                        .find(|f| f.name.eq_ignore_ascii_case(col))
                        .map(|f| (c, f))
                });
                match field {
                    None => json_field(name),
                    Some((c, _)) if col.eq_ignore_ascii_case("id") => simple(
                        "relation",
                        name,
                        json!({"cascadeDelete": false, "collectionId": c.id, "maxSelect": 1, "minSelect": 0}),
                    ),
                    Some((_, f)) => {
                        let mut v = serde_json::to_value(f).unwrap_or(Value::Null);
                        v["id"] = json!(format!(
                            "_clone_{}",
                            crate::util::random_string(4, crate::util::ALPHANUM)
                        ));
                        v["name"] = json!(name);
                        v
                    }
                }
            }
        };
        out.push(f);
    }
    Ok(out)
}

#[cfg(test)]
use tests::schema as tests_schema;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::parse::collection_from_json;

    pub(super) fn schema() -> Schema {
        let id = json!({"name": "id", "type": "text", "primaryKey": true});
        Schema::new(vec![
            collection_from_json(&json!({"id": "p", "name": "posts", "fields": [id,
                {"name": "title", "type": "text"}, {"name": "n", "type": "number"},
                {"name": "tag", "type": "relation", "collectionId": "t"}]}))
            .unwrap(),
            collection_from_json(&json!({"id": "t", "name": "tags", "fields": [id,
                {"name": "title", "type": "text"}]}))
            .unwrap(),
            collection_from_json(
                &json!({"id": "u", "name": "users", "type": "auth", "fields": [id,
                {"name": "password", "type": "password"}, {"name": "tokenKey", "type": "text"},
                {"name": "name", "type": "text"}]}),
            )
            .unwrap(),
        ])
    }

    #[test]
    fn rendered_sql_is_a_fixed_point_and_quotes_every_identifier() {
        let s = schema();
        for q in [
            "select id, title from posts",
            "select p.id, -p.n as m, (p.n + 1) * 2 as x, not (p.n > 1) as b from posts p",
            "with x as (select id, title from posts) select id, upper(title) as t from x order by t desc limit 2 offset 1",
            "select t.id, count(p.id) as c from tags t left join posts p on p.tag = t.id group by t.id having count(*) > 0",
            "select (row_number() over (partition by tag order by n)) as id from posts",
            "select id, case when n between 1 and 2 then 'a''b' else null end as k from posts where title like 'x%' escape '!'",
            "select id from posts where id in (select id from tags) and exists (select 1 from tags) union all select id from tags",
            "select id, cast(n as integer) as i, j.value as v from posts, json_each(posts.tag) j",
        ] {
            let p = plan(q, &s, "v").unwrap_or_else(|e| panic!("{q}: {e}"));
            let again = plan(&p.sql, &s, "v").unwrap_or_else(|e| panic!("{}: {e}", p.sql));
            assert_eq!(p.sql, again.sql, "{q}");
            assert!(p.sql.contains("\"posts\"") || p.sql.contains("\"tags\""), "{}", p.sql);
        }
    }

    #[test]
    fn refuses_what_is_not_a_select_over_collections() {
        let s = schema();
        for q in [
            "delete from posts",
            "select id from posts; delete from posts",
            "select id from posts /* ; */",
            "select name as id from sqlite_master",
            "select id from _params",
            "select id from pragma_table_info('posts')",
            "select id, load_extension('x') as e from posts",
            "select id, password from users",
            "select id, tokenKey from users",
            "select id, nope from posts",
            "select x.id from posts p",
            "select * from posts",
            "select id from v",
            "select id from main.posts",
            "with recursive c(x) as (select 1) select x as id from c",
            "select id, zeroblob(1000000000) as z from posts",
            "select id, ?1 as p from posts",
            "attach 'x' as y",
        ] {
            assert!(plan(q, &s, "v").is_err(), "accepted: {q}");
        }
    }

    #[test]
    fn hints_for_inference() {
        let s = schema();
        let p = plan(
            "select p.id, count(*) as c, total(n) as t, cast(n as text) as s, p.tag, title, n + 1 as x from posts p",
            &s,
            "v",
        )
        .unwrap();
        let cols: Vec<String> = ["id", "c", "t", "s", "tag", "title", "x"]
            .map(String::from)
            .to_vec();
        let f = infer_fields(&p, &cols, &s).unwrap();
        let kinds: Vec<&str> = f.iter().map(|f| f["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            ["text", "number", "number", "text", "relation", "text", "json"]
        );
        assert_eq!(f[1]["onlyInt"], true);
        assert_eq!(f[2]["onlyInt"], false);
        assert_eq!(f[4]["collectionId"], "t");
        assert!(infer_fields(&p, &cols[1..], &s).is_err(), "no id column");
    }
}

/// Whether a view query may read the clock or chance: a date/time
/// function called (with no argument it is "now"), `current_*`,
/// `random`, or a comment (which could hide a call from this check).
pub fn volatile(sql: &str) -> bool {
    let squeezed: String = sql
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '"' | '`' | '[' | ']'))
        .flat_map(char::to_lowercase)
        .collect();
    [
        "date(",
        "time(",
        "julianday(",
        "unixepoch(",
        "strftime(",
        "timediff(",
        "current_",
        "random",
        "/*",
        "--",
    ]
    .iter()
    .any(|t| squeezed.contains(t))
}

#[cfg(test)]
mod volatile_tests {
    #[test]
    fn clock_and_chance() {
        for q in [
            "SELECT id, date() AS d FROM posts",
            "select id, DATETIME ('now') from posts",
            "select id, CURRENT_TIMESTAMP as t from posts",
            "select id, \"julianday\"() as t from posts",
            "select id, random() as r from posts",
            "select id /* date() */ from posts",
        ] {
            assert!(super::volatile(q), "{q}");
        }
        assert!(!super::volatile(
            "SELECT id, updated, title FROM posts WHERE title != 'x'"
        ));
    }
}

#[cfg(test)]
mod sqlite_text_tests {
    use super::tests_schema as schema;

    /// SQLite's rendering, pinned as it is: PostgreSQL's spellings live
    /// elsewhere and must not change it.
    #[test]
    fn sqlite_sql_is_pinned() {
        let s = schema();
        for (q, want) in [
            (
                "select id, total(n) filter (where n > 1) over (partition by tag order by n) as t from posts",
                "SELECT \"id\", total(\"n\") FILTER (WHERE (\"n\" > 1)) OVER (PARTITION BY \"tag\" ORDER BY \"n\") AS \"t\" FROM \"posts\"",
            ),
            (
                "select id, cast(n as integer) as i, json_extract(title, '$.a') as j, count(distinct n) as c from posts group by id",
                "SELECT \"id\", CAST(\"n\" AS INTEGER) AS \"i\", json_extract(\"title\", '$.a') AS \"j\", count(DISTINCT \"n\") AS \"c\" FROM \"posts\" GROUP BY \"id\"",
            ),
            (
                "select p.id, j.value as v from posts p, json_each(p.tag) j where p.title like 'a%' and p.title = 'x' collate nocase order by p.n limit -1 offset 2",
                "SELECT \"p\".\"id\", \"j\".\"value\" AS \"v\" FROM \"posts\" AS \"p\", json_each(\"p\".\"tag\") AS \"j\" WHERE ((\"p\".\"title\" LIKE 'a%') AND (\"p\".\"title\" = ('x' COLLATE NOCASE))) ORDER BY \"p\".\"n\" LIMIT (-1) OFFSET 2",
            ),
            (
                "select id, current_timestamp as t, iif(n > 1, 'a', 'b') as i from posts limit 1, 2",
                "SELECT \"id\", CURRENT_TIMESTAMP AS \"t\", iif((\"n\" > 1), 'a', 'b') AS \"i\" FROM \"posts\" LIMIT 2 OFFSET 1",
            ),
        ] {
            let p = super::plan(q, &s, "v").unwrap_or_else(|e| panic!("{q}: {e}"));
            assert_eq!(p.sql, want, "{q}");
        }
    }
}
