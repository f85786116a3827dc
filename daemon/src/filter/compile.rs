//! The compiler: AST → SQL with bound parameters, PocketBase's semantics.
//!
//! One [`Query`] collects everything that goes into one SELECT — the rule,
//! the client filter and the sort — so that they share their joins as they
//! do in PocketBase (one field resolver per request). Operands resolve to an
//! [`Operand`]; a comparison of two operands becomes SQL by PocketBase's
//! rules (`resolveEqualExpr`, LIKE wrapping, and the "multi-match"
//! `NOT EXISTS` that makes a plain operator on a multi-valued path require
//! every value to match).

use super::ast::{Cmp, Expr, Op, Term};
use super::context::{Access, Ctx};
use super::error::FilterError;
use super::parser::{self, MAX_EXPRESSIONS};
use super::resolve::Runner;
use super::template::{Binder, Outcome, Probe, Source, StaticClass, Template};
use crate::schema::{Collection, FieldKind};
use crate::store::dialect::{self, Bind, Frag, Ident};
use crate::store::engine::{Engine, Ty};
use crate::store::records::Range;
use crate::store::SqlValue as Value;
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Timelike, Utc};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};

/// PocketBase's cap on sort terms (`DefaultSortExprLimit`).
pub const MAX_SORT_TERMS: usize = 8;
/// PocketBase's cap on one sort term (`MaxSortFieldLength`).
pub const MAX_SORT_FIELD_LENGTH: usize = 255;

/// The SQL pieces of one query. Placeholders are plain `?`, numbered by
/// position, so the pieces must be assembled in this order and the
/// parameters bound in the same order:
///
/// ```text
/// SELECT [DISTINCT] <base alias>.* FROM <table> <alias> <joins...>
///   WHERE <where_sql> ORDER BY <order_by...>        -- then LIMIT ? OFFSET ?
/// params: join_params ++ params ++ order_params     -- see params_in_order()
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Compiled {
    /// `LEFT JOIN ...` clauses, in order.
    pub joins: Vec<String>,
    /// Values bound inside `joins`.
    pub join_params: Vec<Value>,
    /// The condition; empty when nothing was added (= true).
    pub where_sql: String,
    /// Values bound inside `where_sql`.
    pub params: Vec<Value>,
    /// `ORDER BY` terms.
    pub order_by: Vec<String>,
    /// Values bound inside `order_by`.
    pub order_params: Vec<Value>,
    /// Joins can repeat base rows: select DISTINCT (PocketBase does).
    pub distinct: bool,
}

impl Compiled {
    /// All parameters in textual order (joins, where, order by).
    pub fn params_in_order(&self) -> Vec<Value> {
        let mut v = self.join_params.clone();
        v.extend(self.params.iter().cloned());
        v.extend(self.order_params.iter().cloned());
        v
    }
}

/// The result of [`compile_sort`](super::compile_sort).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SortCompiled {
    /// `ORDER BY` terms.
    pub terms: Vec<String>,
    pub joins: Vec<String>,
    pub join_params: Vec<Value>,
    /// Values bound inside `terms`.
    pub params: Vec<Value>,
    pub distinct: bool,
}

/// How an operand treats NULL against '' in `=`/`!=` (PocketBase's
/// `NullFallbackPreference`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NullFallback {
    Auto,
    /// Compare with `IS`/`IS NOT` as is (JSON values, functions).
    Disabled,
    /// Never treat the operand as known non-empty (strftime).
    Enforced,
}

/// What PocketBase can tell from an operand's identifier text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A column or expression.
    Expr,
    /// The `NULL` identifier (an "empty identifier").
    Null,
    /// `1`, `0`, `TRUE`, `FALSE`: known non-empty.
    Const,
}

/// The subquery that yields every value of a multi-valued path for the
/// current row (PocketBase's `MultiMatchSubquery`).
#[derive(Debug, Clone)]
pub(crate) struct MultiMatch {
    pub target: Ident,
    pub from_table: Ident,
    pub from_alias: Ident,
    pub joins: Vec<Frag>,
    pub value: Frag,
    /// What `value` yields.
    pub ty: Ty,
}

impl MultiMatch {
    fn build(&self) -> Frag {
        let id = id_ident();
        Frag::sql("SELECT ")
            .f(&self.value)
            .s(" AS mmv FROM ")
            .ident(&self.from_table)
            .s(" ")
            .ident(&self.from_alias)
            .join(&self.joins, "")
            .s(" WHERE ")
            .col(&self.from_alias, &id)
            .s(" = ")
            .col(&self.target, &id)
    }
}

/// A resolved operand (PocketBase's `ResolverResult`).
#[derive(Debug, Clone)]
pub(crate) struct Operand {
    pub sql: Frag,
    pub nf: NullFallback,
    pub kind: Kind,
    pub multi: Option<Box<MultiMatch>>,
    /// ANDed to the built comparison (the `emailVisibility` check).
    pub guard: Option<Frag>,
    /// What `sql` yields (engines that type statements need it).
    pub ty: Ty,
}

impl Operand {
    pub fn expr(sql: Frag) -> Operand {
        Operand {
            sql,
            nf: NullFallback::Auto,
            kind: Kind::Expr,
            multi: None,
            guard: None,
            ty: Ty::Unknown,
        }
    }

    pub fn value(v: Bind) -> Operand {
        let ty = Ty::of(&v);
        Operand::expr(Frag::new().value(v)).with_ty(ty)
    }

    pub fn null() -> Operand {
        Operand {
            kind: Kind::Null,
            ..Operand::expr(Frag::sql("NULL"))
        }
    }

    pub fn constant(sql: &'static str) -> Operand {
        let ty = if sql == "TRUE" || sql == "FALSE" {
            Ty::Bool
        } else {
            Ty::Num
        };
        Operand {
            kind: Kind::Const,
            ty,
            ..Operand::expr(Frag::sql(sql))
        }
    }

    pub fn with_ty(mut self, ty: Ty) -> Operand {
        self.ty = ty;
        self
    }

    pub fn with_nf(mut self, nf: NullFallback) -> Operand {
        self.nf = nf;
        self
    }

    fn value_count(&self) -> usize {
        self.sql.values().count()
    }

    fn has_empty_value(&self) -> bool {
        self.sql.values().any(Bind::is_empty)
    }

    fn is_empty_ident(&self) -> bool {
        self.kind == Kind::Null
    }

    fn is_empty(&self) -> bool {
        self.is_empty_ident()
            || (self.nf == NullFallback::Auto && self.value_count() == 1 && self.has_empty_value())
    }

    fn known_non_empty(&self) -> bool {
        if self.nf == NullFallback::Enforced {
            return false;
        }
        if self.kind == Kind::Const {
            return true;
        }
        self.value_count() > 0 && !self.has_empty_value() && !self.is_empty_ident()
    }

    /// ANDs `other` to this operand's guard.
    fn and_guard(&mut self, other: Option<&Frag>) {
        if let Some(g) = other {
            self.guard = Some(match self.guard.take() {
                None => g.clone(),
                Some(mine) => Frag::sql("(").f(&mine).s(" AND ").f(g).s(")"),
            });
        }
    }

    /// The value as read outside a comparison (a sort term): NULL where
    /// the guard does not hold.
    fn visible_sql(&self) -> Frag {
        match &self.guard {
            None => self.sql.clone(),
            Some(g) => only_if(g, &self.sql),
        }
    }

    /// The operand without multi-match or guard, as a subquery comparison
    /// sees the other side.
    fn bare(&self, nf: NullFallback) -> Operand {
        Operand {
            sql: self.sql.clone(),
            nf,
            kind: self.kind,
            multi: None,
            guard: None,
            ty: self.ty,
        }
    }
}

/// `CASE WHEN cond THEN value END`: the value where `cond` holds, else NULL.
pub(crate) fn only_if(cond: &Frag, value: &Frag) -> Frag {
    Frag::sql("CASE WHEN ")
        .f(cond)
        .s(" THEN ")
        .f(value)
        .s(" END")
}

pub(crate) fn id_ident() -> Ident {
    Ident::constant("id")
}

/// A name space for one compile: the base collection, its alias and what is allowed.
#[derive(Debug, Clone)]
pub(crate) struct Scope<'a> {
    pub base: &'a Collection,
    pub alias: Ident,
    /// Separates join keys of list-rule compiles from the main ones.
    pub id: u32,
    pub allow_hidden: bool,
    pub client: bool,
}

#[derive(Debug, Clone)]
struct JoinDef {
    table: Frag,
    alias: Ident,
    on: Option<Frag>,
}

/// Alias prefixes for standalone compiles, so that two of them can be
/// ANDed into one query without their joins colliding.
static NAMESPACE: AtomicU32 = AtomicU32::new(1);

/// One SELECT under construction: rule, filter and sort share its joins.
pub struct Query<'a> {
    pub(crate) ctx: Ctx<'a>,
    base_alias: Ident,
    namespace: Option<u32>,
    joins: Vec<JoinDef>,
    join_keys: HashMap<String, usize>,
    rule_joins: Vec<(&'a Collection, Ident)>,
    wheres: Vec<Frag>,
    order: Vec<Frag>,
    next_join: u32,
    next_sub: u32,
    next_scope: u32,
    /// What the compile asked of the request, and the values it deferred.
    binder: Binder,
    /// The ranges the filters' top-level terms put on plain columns.
    ranges: Vec<Range>,
}

impl<'a> Query<'a> {
    pub fn new(ctx: &Ctx<'a>) -> Result<Query<'a>, FilterError> {
        let base_alias = Ident::new(ctx.alias)
            .ok_or_else(|| FilterError::invalid(format!("invalid table alias {:?}", ctx.alias)))?;
        Ok(Query {
            ctx: ctx.clone(),
            base_alias,
            namespace: None,
            joins: Vec::new(),
            join_keys: HashMap::new(),
            rule_joins: Vec::new(),
            wheres: Vec::new(),
            order: Vec::new(),
            next_join: 0,
            next_sub: 0,
            next_scope: 1,
            binder: Binder::default(),
            ranges: Vec::new(),
        })
    }

    /// Gives this query's join aliases a process-unique prefix, so that its
    /// pieces can be combined with another query's.
    pub fn unique_aliases(mut self) -> Self {
        self.namespace = Some(NAMESPACE.fetch_add(1, Ordering::Relaxed));
        self
    }

    fn scope(&self, access: Access) -> Scope<'a> {
        Scope {
            base: self.ctx.collection,
            alias: self.base_alias.clone(),
            id: 0,
            allow_hidden: access == Access::Privileged,
            client: access == Access::Client,
        }
    }

    /// ANDs an API rule (always privileged: hidden fields and `@request.*`
    /// allowed). An empty rule adds nothing.
    pub fn rule(&mut self, src: &str) -> Result<&mut Self, FilterError> {
        if src.trim().is_empty() {
            return Ok(self);
        }
        let e = parser::parse(src)?;
        self.rule_expr(&e)
    }

    /// [`Query::rule`] for a rule parsed beforehand.
    pub fn rule_expr(&mut self, e: &Expr) -> Result<&mut Self, FilterError> {
        let scope = self.scope(Access::Privileged);
        self.and_expr(e, &scope)?;
        Ok(self)
    }

    /// ANDs a parsed filter, compiled with the context's access.
    pub fn filter(&mut self, e: &Expr) -> Result<&mut Self, FilterError> {
        let scope = self.scope(self.ctx.access);
        self.and_expr(e, &scope)?;
        ranges_of(e, self.ctx.collection, &mut self.ranges);
        Ok(self)
    }

    /// The ranges the filters ANDed so far put on the collection's own
    /// number and date columns (`n > 5`, `created <= "2026-01-01"`, at the
    /// top level of `&&`), as the filter states them. For the store's
    /// choice of a count's plan, never for what matches.
    pub fn take_ranges(&mut self) -> Vec<Range> {
        std::mem::take(&mut self.ranges)
    }

    /// ANDs a filter string (empty = nothing). For client access the raw
    /// text is first checked for superuser-only prefixes, as PocketBase does.
    pub fn filter_str(&mut self, src: &str) -> Result<&mut Self, FilterError> {
        if src.is_empty() {
            return Ok(self);
        }
        if self.ctx.access == Access::Client {
            check_superuser_only(src)?;
        }
        let e = parser::parse(src)?;
        self.filter(&e)
    }

    /// Appends ORDER BY terms from a `sort` parameter (`-a,+b,@random,@rowid`).
    pub fn sort(&mut self, src: &str) -> Result<&mut Self, FilterError> {
        if src.is_empty() {
            return Ok(self);
        }
        if self.ctx.access == Access::Client {
            check_superuser_only(src)?;
        }
        let terms: Vec<(&str, bool)> = src
            .split(',')
            .map(|t| {
                let t = t.trim();
                match t.strip_prefix('-') {
                    Some(name) => (name, true),
                    None => (t.strip_prefix('+').unwrap_or(t), false),
                }
            })
            .collect();
        if terms.len() > MAX_SORT_TERMS {
            return Err(FilterError::TooComplex(format!(
                "max sort expressions limit reached ({MAX_SORT_TERMS})"
            )));
        }
        let scope = self.scope(self.ctx.access);
        for (name, desc) in terms {
            if name.len() > MAX_SORT_FIELD_LENGTH {
                return Err(FilterError::TooComplex(
                    "max sort field length limit reached".into(),
                ));
            }
            let engine = self.engine();
            if name == "@random" {
                self.order.push(engine.random());
                continue;
            }
            if name == "@rowid" {
                let order = engine.insertion_order(&self.base_alias);
                self.order.push(engine.sort_term(order, Ty::Num, desc));
                continue;
            }
            let invalid = || FilterError::invalid(format!("invalid sort field {name:?}"));
            let op = Runner::new(self, &scope, name).run().map_err(|e| match e {
                FilterError::TooComplex(_) => e,
                _ => invalid(),
            })?;
            if op.value_count() > 0 || op.kind == Kind::Null {
                return Err(invalid());
            }
            self.order
                .push(engine.sort_term(op.visible_sql(), op.ty, desc));
        }
        Ok(self)
    }

    /// Renders everything collected so far, bound for the context's
    /// request and clock.
    pub fn finish(self) -> Result<Compiled, FilterError> {
        let (request, now) = (self.ctx.request, self.ctx.now);
        Ok(self.finish_template()?.bind(request.as_ref(), now))
    }

    /// Renders everything collected so far as a [`Template`]: valid for
    /// every request that answers its probes as this one did.
    pub fn finish_template(mut self) -> Result<Template, FilterError> {
        self.apply_rule_joins()?;
        let mut out = Template::new(std::mem::take(&mut self.binder));
        out.engine = self.ctx.engine;
        for j in &self.joins {
            let mut s = String::from("LEFT JOIN ");
            let mut f = j.table.clone().s(" ").ident(&j.alias);
            if let Some(on) = &j.on {
                f = f.s(" ON ").f(on);
            } else {
                f = self.ctx.engine.no_on(f);
            }
            f.render_binds(&mut s, &mut out.join_params);
            out.joins.push(s);
        }
        if !self.wheres.is_empty() {
            let parts: Vec<Frag> = self
                .wheres
                .iter()
                .map(|w| Frag::sql("(").f(w).s(")"))
                .collect();
            Frag::new()
                .join(&parts, " AND ")
                .render_binds(&mut out.where_sql, &mut out.params);
        }
        for o in &self.order {
            let mut s = String::new();
            o.render_binds(&mut s, &mut out.order_params);
            out.order_by.push(s);
        }
        out.distinct = !self.joins.is_empty();
        Ok(out)
    }

    // -- what the compile may know of the request --------------------------

    /// Whether there is a request (else every `@request.*` is NULL).
    /// The engine the SQL is written for.
    pub(crate) fn engine(&self) -> Engine {
        self.ctx.engine
    }

    pub(crate) fn probe_request(&mut self) -> bool {
        let req = self.ctx.request;
        self.binder.probe(Probe::Request, req.as_ref()) == Outcome::Bool(true)
    }

    /// The auth collection, if the request is authenticated.
    pub(crate) fn probe_auth(&mut self) -> Option<&'a std::sync::Arc<Collection>> {
        let req = self.ctx.request;
        self.binder.probe(Probe::Auth, req.as_ref());
        req.and_then(|r| r.auth).map(|a| a.collection)
    }

    pub(crate) fn probe_static(&mut self, keys: Vec<String>, numeric: bool) -> StaticClass {
        let req = self.ctx.request;
        match self
            .binder
            .probe(Probe::Static { keys, numeric }, req.as_ref())
        {
            Outcome::Class(c) => c,
            _ => StaticClass::Missing,
        }
    }

    pub(crate) fn probe_bool(&mut self, p: Probe) -> bool {
        let req = self.ctx.request;
        self.binder.probe(p, req.as_ref()) == Outcome::Bool(true)
    }

    pub(crate) fn probe_count(&mut self, p: Probe) -> usize {
        let req = self.ctx.request;
        match self.binder.probe(p, req.as_ref()) {
            Outcome::Count(n) => n,
            _ => 0,
        }
    }

    /// A request value, bound when the template is.
    pub(crate) fn slot(&mut self, src: Source) -> Bind {
        self.binder.slot(src)
    }

    /// PocketBase's `updateQueryWithCollectionListRule`: a client filter
    /// that joins another collection also gets that collection's list rule,
    /// as `id = '' || (rule)` (the empty check keeps missing relations).
    fn apply_rule_joins(&mut self) -> Result<(), FilterError> {
        let rule_joins = std::mem::take(&mut self.rule_joins);
        for (coll, alias) in rule_joins {
            let Some(rule) = coll.list_rule.as_deref() else {
                continue;
            };
            if rule.is_empty() {
                continue;
            }
            let parsed = parser::parse(rule).map_err(|e| {
                FilterError::invalid(format!(
                    "failed to build {:?} list rule join: {e}",
                    coll.name
                ))
            })?;
            if parsed.count() + 1 > MAX_EXPRESSIONS {
                return Err(FilterError::TooComplex(format!(
                    "max filter expressions limit reached ({MAX_EXPRESSIONS})"
                )));
            }
            let empty_id = Expr::Cmp(Cmp {
                left: Term::Ident {
                    name: "id".into(),
                    pos: 0,
                },
                op: Op::Eq,
                right: Term::Text(String::new()),
            });
            let wrapped = Expr::Or(vec![empty_id, parsed]);
            let scope = Scope {
                base: coll,
                alias,
                id: self.next_scope,
                allow_hidden: true,
                client: false,
            };
            self.next_scope += 1;
            let f = self.expr(&wrapped, &scope)?;
            self.wheres.push(f);
        }
        Ok(())
    }

    fn and_expr(&mut self, e: &Expr, scope: &Scope<'a>) -> Result<(), FilterError> {
        if e.count() > MAX_EXPRESSIONS {
            return Err(FilterError::TooComplex(format!(
                "max filter expressions limit reached ({MAX_EXPRESSIONS})"
            )));
        }
        if scope.client {
            forbid_superuser_idents(e)?;
        }
        let f = self.expr(e, scope)?;
        self.wheres.push(f);
        Ok(())
    }

    pub(crate) fn expr(&mut self, e: &Expr, scope: &Scope<'a>) -> Result<Frag, FilterError> {
        match e {
            Expr::Cmp(c) => {
                let f = self.cmp(c, scope)?;
                Ok(Frag::sql("(").f(&f).s(")"))
            }
            Expr::And(v) | Expr::Or(v) => {
                let sep = if matches!(e, Expr::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                let mut parts = Vec::with_capacity(v.len());
                for x in v {
                    parts.push(self.expr(x, scope)?);
                }
                Ok(Frag::sql("(").join(&parts, sep).s(")"))
            }
        }
    }

    fn cmp(&mut self, c: &Cmp, scope: &Scope<'a>) -> Result<Frag, FilterError> {
        let l = self.term(&c.left, scope)?;
        let r = self.term(&c.right, scope)?;
        Ok(self.build(&l, c.op, &r, false))
    }

    pub(crate) fn term(&mut self, t: &Term, scope: &Scope<'a>) -> Result<Operand, FilterError> {
        match t {
            Term::Text(s) => Ok(Operand::value(Bind::Text(s.clone()))),
            Term::Number(n) => Ok(Operand::value(Bind::Real(parse_number(n)))),
            Term::Ident { name, .. } => {
                if let Some(m) = macro_name(name) {
                    let ty = match macro_value(m, self.ctx.now) {
                        Some(b) => Ty::of(&b),
                        None => Ty::Text,
                    };
                    return Ok(Operand::value(self.slot(Source::Macro(m))).with_ty(ty));
                }
                match Runner::new(self, scope, name).run() {
                    Ok(op) => Ok(op),
                    Err(e) => {
                        if name.eq_ignore_ascii_case("null") {
                            Ok(Operand::null())
                        } else if name.eq_ignore_ascii_case("true") {
                            Ok(Operand::constant("1"))
                        } else if name.eq_ignore_ascii_case("false") {
                            Ok(Operand::constant("0"))
                        } else {
                            Err(e)
                        }
                    }
                }
            }
            Term::Func { name, args, .. } => match name.as_str() {
                "geoDistance" => self.geo_distance(args, scope),
                "strftime" => self.strftime(args, scope),
                _ => Err(FilterError::invalid(format!("unknown function {name:?}"))),
            },
        }
    }

    fn geo_distance(&mut self, args: &[Term], scope: &Scope<'a>) -> Result<Operand, FilterError> {
        if args.len() != 4 {
            return Err(FilterError::invalid(format!(
                "[geoDistance] expected 4 arguments, got {}",
                args.len()
            )));
        }
        let mut r = Vec::with_capacity(4);
        let mut tys = [Ty::Unknown; 4];
        let mut guard = Operand::null();
        for (i, a) in args.iter().enumerate() {
            if !matches!(a, Term::Ident { .. } | Term::Number(_)) {
                return Err(FilterError::invalid(format!(
                    "[geoDistance] argument {i} must be an identifier or number"
                )));
            }
            let arg = self.term(a, scope)?;
            guard.and_guard(arg.guard.as_ref());
            tys[i] = arg.ty;
            r.push(arg.sql);
        }
        let engine = self.engine();
        let mut op = Operand::expr(engine.geo_distance([&r[0], &r[1], &r[2], &r[3]], tys))
            .with_nf(NullFallback::Disabled)
            .with_ty(Ty::Num);
        op.guard = guard.guard;
        Ok(op)
    }

    fn strftime(&mut self, args: &[Term], scope: &Scope<'a>) -> Result<Operand, FilterError> {
        if args.is_empty() {
            return Err(FilterError::invalid(
                "[strftime] expected at least 1 argument",
            ));
        }
        if args.len() > 10 {
            return Err(FilterError::invalid(format!(
                "[strftime] too many arguments (max allowed 10, got {})",
                args.len()
            )));
        }
        let Term::Text(_) = &args[0] else {
            return Err(FilterError::invalid(
                "[strftime] expects the first argument to be a format string",
            ));
        };
        let engine = self.engine();
        let time_format = |args: &[Frag]| {
            engine.strftime(args).ok_or_else(|| {
                FilterError::invalid("[strftime] is not available on this database engine yet")
            })
        };
        let format = self.term(&args[0], scope)?;
        if args.len() == 1 {
            return Ok(Operand::expr(time_format(&[format.sql])?)
                .with_nf(NullFallback::Enforced)
                .with_ty(Ty::Text));
        }
        if !matches!(
            &args[1],
            Term::Text(_) | Term::Ident { .. } | Term::Number(_)
        ) {
            return Err(FilterError::invalid(
                "[strftime] expects the second argument to be of a valid time-value type",
            ));
        }
        let time = self.term(&args[1], scope)?;
        let mut mods = Vec::new();
        for (i, a) in args[2..].iter().enumerate() {
            if !matches!(a, Term::Text(_)) {
                return Err(FilterError::invalid(format!(
                    "[strftime] invalid modifier argument {i} - can be only string"
                )));
            }
            mods.push(self.term(a, scope)?.sql);
        }
        let mut all = vec![format.sql.clone(), time.sql.clone()];
        all.extend(mods.iter().cloned());
        let mut op = Operand::expr(time_format(&all)?)
            .with_nf(NullFallback::Enforced)
            .with_ty(Ty::Text);
        // The time value's guard (a hidden e-mail) holds for the result.
        op.guard = time.guard;
        if let Some(mut mm) = time.multi {
            let mut mm_args = vec![format.sql, mm.value.clone()];
            mm_args.extend(mods);
            mm.value = time_format(&mm_args)?;
            mm.ty = Ty::Text;
            op.multi = Some(mm);
        }
        Ok(op)
    }

    // -- building comparisons ----------------------------------------------

    /// PocketBase's `buildResolversExpr`; `not` wraps the result in NOT(…)
    /// (the inner condition of a multi-match subquery).
    fn build(&mut self, l: &Operand, op: Op, r: &Operand, not: bool) -> Frag {
        let engine = self.engine();
        let like = matches!(op.base(), Op::Like | Op::NotLike);
        // Engines that type statements compare both sides as one type.
        let unified = if engine.typed() && !like {
            let ordering = !matches!(op.base(), Op::Eq | Op::Neq);
            engine.unify(&l.sql, l.ty, &r.sql, r.ty, ordering)
        } else {
            None
        };
        let (lsql, rsql, ty) = match &unified {
            Some(u) => (&u.left, &u.right, u.ty),
            None => (&l.sql, &r.sql, l.ty),
        };
        let base = match op.base() {
            Op::Eq => equal_expr(engine, true, (l, lsql), (r, rsql), ty),
            Op::Neq => equal_expr(engine, false, (l, lsql), (r, rsql), ty),
            Op::Like | Op::NotLike => {
                let negate = op.base() == Op::NotLike;
                if r.value_count() == 0 {
                    engine.like_contains(&l.sql, l.ty, &r.sql, r.ty, negate)
                } else {
                    // A late-bound value becomes its pattern when bound.
                    let mut likes = std::collections::BTreeMap::new();
                    for v in r.sql.values() {
                        if let Bind::Slot(i) = v {
                            likes.insert(*i, Bind::Slot(0));
                        }
                    }
                    for (i, b) in likes.iter_mut() {
                        *b = self.slot(Source::Like(*i));
                    }
                    let pattern = r.sql.map_values(|v| match v {
                        Bind::Slot(i) => likes.get(i).cloned().unwrap_or(Bind::Null),
                        v => Bind::Text(dialect::like_pattern(&v.to_text())),
                    });
                    engine.like(&l.sql, l.ty, &pattern, negate)
                }
            }
            Op::Lt => Frag::new().f(lsql).s(" < ").f(rsql),
            Op::Lte => Frag::new().f(lsql).s(" <= ").f(rsql),
            Op::Gt => Frag::new().f(lsql).s(" > ").f(rsql),
            _ => Frag::new().f(lsql).s(" >= ").f(rsql),
        };
        let mut expr = base;
        if !op.is_any() {
            let extra = match (&l.multi, &r.multi) {
                (Some(lm), Some(rm)) => Some(self.many_vs_many(lm, l.nf, rm, r.nf, op)),
                (Some(lm), None) => Some(self.many_vs_one(lm, l.nf, op, r, false)),
                (None, Some(rm)) => Some(self.many_vs_one(rm, r.nf, op, l, true)),
                (None, None) => None,
            };
            if let Some(x) = extra {
                expr = Frag::sql("(").f(&expr).s(" AND ").f(&x).s(")");
            }
        }
        for g in [&l.guard, &r.guard].into_iter().flatten() {
            expr = Frag::sql("(").f(&expr).s(" AND ").f(g).s(")");
        }
        if not {
            expr = Frag::sql("NOT (").f(&expr).s(")");
        }
        expr
    }

    /// Every value of the multi-valued side must satisfy `op` against the
    /// other side: NOT EXISTS a value that does not.
    fn many_vs_one(
        &mut self,
        mm: &MultiMatch,
        nf: NullFallback,
        op: Op,
        other: &Operand,
        inverse: bool,
    ) -> Frag {
        let alias = self.sub_alias("_s");
        let mine = Operand {
            nf,
            ty: mm.ty,
            ..Operand::expr(Frag::new().ident(&alias).s(".mmv"))
        };
        let theirs = other.bare(NullFallback::Auto);
        let inner = if inverse {
            self.build(&theirs, op, &mine, true)
        } else {
            self.build(&mine, op, &theirs, true)
        };
        Frag::sql("NOT EXISTS (SELECT 1 FROM (")
            .f(&mm.build())
            .s(") ")
            .ident(&alias)
            .s(" WHERE ")
            .f(&inner)
            .s(")")
    }

    fn many_vs_many(
        &mut self,
        lm: &MultiMatch,
        lnf: NullFallback,
        rm: &MultiMatch,
        rnf: NullFallback,
        op: Op,
    ) -> Frag {
        let la = self.sub_alias("_s");
        let ra = self.sub_alias("_s");
        let l = Operand {
            nf: lnf,
            ty: lm.ty,
            ..Operand::expr(Frag::new().ident(&la).s(".mmv"))
        };
        let r = Operand {
            nf: rnf,
            ty: rm.ty,
            ..Operand::expr(Frag::new().ident(&ra).s(".mmv"))
        };
        let inner = self.build(&l, op, &r, true);
        let joined = Frag::sql("NOT EXISTS (SELECT 1 FROM (")
            .f(&lm.build())
            .s(") ")
            .ident(&la)
            .s(" LEFT JOIN (")
            .f(&rm.build())
            .s(") ")
            .ident(&ra);
        self.engine().no_on(joined).s(" WHERE ").f(&inner).s(")")
    }

    // -- joins and aliases -------------------------------------------------

    /// A fresh alias for a subquery table.
    pub(crate) fn sub_alias(&mut self, prefix: &'static str) -> Ident {
        self.next_sub += 1;
        Ident::generated(prefix, self.next_sub)
    }

    /// Registers a LEFT JOIN (once per `key` and scope) and returns its
    /// alias. `collection` is the joined collection, if the table is one:
    /// for client access it must have a list rule, which then also applies.
    pub(crate) fn join(
        &mut self,
        scope: &Scope<'a>,
        key: String,
        table: Frag,
        collection: Option<&'a Collection>,
        on: impl FnOnce(&Ident) -> Option<Frag>,
    ) -> Result<Ident, FilterError> {
        if let (false, Some(c)) = (scope.allow_hidden, collection) {
            if c.list_rule.is_none() {
                return Err(FilterError::hidden(
                    &c.name,
                    format!("{:?} fields can be accessed only by superusers", c.name),
                ));
            }
        }
        let key = format!("{}|{key}", scope.id);
        let alias = match self.join_keys.get(&key) {
            Some(&i) => self.joins[i].alias.clone(),
            None => {
                self.next_join += 1;
                let alias = match self.namespace {
                    Some(ns) => Ident::generated_pair("_j", ns, self.next_join),
                    None => Ident::generated("_j", self.next_join),
                };
                let on = on(&alias);
                self.join_keys.insert(key, self.joins.len());
                self.joins.push(JoinDef {
                    table,
                    alias: alias.clone(),
                    on,
                });
                alias
            }
        };
        if let (false, Some(c)) = (scope.allow_hidden, collection) {
            match self.rule_joins.iter_mut().find(|(_, a)| *a == alias) {
                Some(entry) => entry.0 = c,
                None => self.rule_joins.push((c, alias.clone())),
            }
        }
        Ok(alias)
    }
}

/// PocketBase's `resolveEqualExpr`: `=`/`!=` that treat NULL and '' alike
/// where a column may hold either, without defeating indexes.
///
/// `lsql`/`rsql` are the operands as the engine compares them (as `ty`);
/// what is empty is told by the operands as written.
fn equal_expr(
    engine: Engine,
    equal: bool,
    (l, lsql): (&Operand, &Frag),
    (r, rsql): (&Operand, &Frag),
    ty: Ty,
) -> Frag {
    let (eq_op, concat, null_expr) = if equal {
        (" = ", " OR ", " IS NULL")
    } else {
        (" IS NOT ", " AND ", " IS NOT NULL")
    };
    if l.nf == NullFallback::Disabled || r.nf == NullFallback::Disabled {
        return engine.is(lsql, rsql, !equal);
    }
    let l_empty = l.is_empty();
    let r_empty = r.is_empty();
    let blank = engine.blank(ty);
    let cmp = |a: &Frag, b: &Frag| -> Frag {
        if equal {
            Frag::new().f(a).s(eq_op).f(b)
        } else {
            engine.is(a, b, true)
        }
    };
    if l_empty && r_empty {
        return cmp(&blank, &blank);
    }
    if l.known_non_empty() || r.known_non_empty() {
        let a = if l_empty { &blank } else { lsql };
        let b = if r_empty { &blank } else { rsql };
        return cmp(a, b);
    }
    if l_empty {
        return Frag::sql("(")
            .f(&cmp(&blank, rsql))
            .s(concat)
            .f(rsql)
            .s(null_expr)
            .s(")");
    }
    if r_empty {
        return Frag::sql("(")
            .f(&cmp(lsql, &blank))
            .s(concat)
            .f(lsql)
            .s(null_expr)
            .s(")");
    }
    let la = Frag::sql("COALESCE(").f(lsql).s(", ").f(&blank).s(")");
    let ra = Frag::sql("COALESCE(").f(rsql).s(", ").f(&blank).s(")");
    cmp(&la, &ra)
}

/// Go's `cast.ToFloat64` of a number literal: overflow becomes 0.
/// The ranges `e`'s top-level `&&` terms put on `coll`'s own number and
/// date columns: `field op literal` or `literal op field`, `op` one of
/// `<`, `<=`, `>`, `>=`; anything else (`||`, paths, `?>`, macros,
/// another type of literal) gives none.
fn ranges_of(e: &Expr, coll: &Collection, out: &mut Vec<Range>) {
    match e {
        Expr::And(v) => v.iter().for_each(|x| ranges_of(x, coll, out)),
        Expr::Cmp(c) => out.extend(range_of(c, coll)),
        Expr::Or(_) => {}
    }
}

fn range_of(c: &Cmp, coll: &Collection) -> Option<Range> {
    let (name, lit, flipped) = match (&c.left, &c.right) {
        (Term::Ident { name, .. }, lit) => (name, lit, false),
        (lit, Term::Ident { name, .. }) => (name, lit, true),
        _ => return None,
    };
    let op = match (c.op, flipped) {
        (Op::Lt, false) | (Op::Gt, true) => "<",
        (Op::Lte, false) | (Op::Gte, true) => "<=",
        (Op::Gt, false) | (Op::Lt, true) => ">",
        (Op::Gte, false) | (Op::Lte, true) => ">=",
        _ => return None,
    };
    let field = coll.fields.iter().find(|f| f.name == *name)?;
    let value = match (&field.kind, lit) {
        (FieldKind::Number(_), Term::Number(n)) => Value::Real(parse_number(n)),
        (FieldKind::Date(_) | FieldKind::Autodate(_), Term::Text(t)) => Value::Text(t.clone()),
        _ => return None,
    };
    Some(Range {
        column: field.name.clone(),
        op,
        value,
    })
}

fn parse_number(lit: &str) -> f64 {
    match lit.parse::<f64>() {
        Ok(f) if f.is_finite() => f,
        _ => 0.0,
    }
}

/// The superuser-only check PocketBase applies to a non-superuser's raw
/// `filter` and `sort` text (a substring test, literals included).
pub fn check_superuser_only(raw: &str) -> Result<(), FilterError> {
    for prefix in ["@collection.", "@request."] {
        if raw.contains(prefix) {
            return Err(FilterError::forbidden_prefix(prefix));
        }
    }
    Ok(())
}

fn forbid_superuser_idents(e: &Expr) -> Result<(), FilterError> {
    let mut found: Option<&'static str> = None;
    e.visit_terms(&mut |t| {
        if let Term::Ident { name, .. } = t {
            let p = if name.starts_with("@collection.") {
                Some("@collection.")
            } else if name.starts_with("@request.") {
                Some("@request.")
            } else {
                None
            };
            if let Some(p) = p {
                if found != Some("@collection.") {
                    found = Some(p);
                }
            }
        }
    });
    match found {
        Some(p) => Err(FilterError::forbidden_prefix(p)),
        None => Ok(()),
    }
}

/// PocketBase's identifier macros.
const MACROS: &[&str] = &[
    "@now",
    "@yesterday",
    "@tomorrow",
    "@second",
    "@minute",
    "@hour",
    "@day",
    "@month",
    "@weekday",
    "@year",
    "@todayStart",
    "@todayEnd",
    "@monthStart",
    "@monthEnd",
    "@yearStart",
    "@yearEnd",
];

/// `name` if it is a macro.
fn macro_name(name: &str) -> Option<&'static str> {
    MACROS.iter().copied().find(|m| *m == name)
}

/// `@now`, `@todayStart`, ... for `now` (PocketBase's identifier macros).
pub(crate) fn macro_value(name: &str, now: DateTime<Utc>) -> Option<Bind> {
    let date = |y: i32, m: u32, d: u32, end: bool| -> Option<Bind> {
        let day = NaiveDate::from_ymd_opt(y, m, d)?;
        let t = if end {
            day.and_hms_milli_opt(23, 59, 59, 999)?
        } else {
            day.and_hms_opt(0, 0, 0)?
        };
        Some(Bind::Text(crate::util::format_time(
            Utc.from_utc_datetime(&t),
        )))
    };
    let text = |t: DateTime<Utc>| Some(Bind::Text(crate::util::format_time(t)));
    match name {
        "@now" => text(now),
        "@yesterday" => text(now - Duration::days(1)),
        "@tomorrow" => text(now + Duration::days(1)),
        "@second" => Some(Bind::Int(i64::from(now.second()))),
        "@minute" => Some(Bind::Int(i64::from(now.minute()))),
        "@hour" => Some(Bind::Int(i64::from(now.hour()))),
        "@day" => Some(Bind::Int(i64::from(now.day()))),
        "@month" => Some(Bind::Int(i64::from(now.month()))),
        "@weekday" => Some(Bind::Int(i64::from(now.weekday().num_days_from_sunday()))),
        "@year" => Some(Bind::Int(i64::from(now.year()))),
        "@todayStart" => date(now.year(), now.month(), now.day(), false),
        "@todayEnd" => date(now.year(), now.month(), now.day(), true),
        "@monthStart" => date(now.year(), now.month(), 1, false),
        "@monthEnd" => {
            let (y, m) = if now.month() == 12 {
                (now.year() + 1, 1)
            } else {
                (now.year(), now.month() + 1)
            };
            let last = NaiveDate::from_ymd_opt(y, m, 1)?.pred_opt()?;
            date(last.year(), last.month(), last.day(), true)
        }
        "@yearStart" => date(now.year(), 1, 1, false),
        "@yearEnd" => date(now.year(), 12, 31, true),
        _ => None,
    }
}

/// Compiles one parsed filter on its own.
pub fn compile(e: &Expr, ctx: &Ctx<'_>) -> Result<Compiled, FilterError> {
    let mut q = Query::new(ctx)?.unique_aliases();
    q.filter(e)?;
    q.finish()
}

/// Parses and compiles an API rule (privileged) on its own.
pub fn compile_rule(rule: &str, ctx: &Ctx<'_>) -> Result<Compiled, FilterError> {
    let mut q = Query::new(ctx)?.unique_aliases();
    q.rule(rule)?;
    q.finish()
}

/// Compiles a `sort` parameter on its own.
pub fn compile_sort(sort: &str, ctx: &Ctx<'_>) -> Result<SortCompiled, FilterError> {
    let mut q = Query::new(ctx)?.unique_aliases();
    q.sort(sort)?;
    let c = q.finish()?;
    Ok(SortCompiled {
        terms: c.order_by,
        joins: c.joins,
        join_params: c.join_params,
        params: c.order_params,
        distinct: c.distinct,
    })
}
