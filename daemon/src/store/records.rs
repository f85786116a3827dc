//! Record rows: reading, inserting, updating, deleting, listing. Every
//! identifier comes from the collection definition; every value is bound.

use super::dialect::{json_each_text, quote_ident, Frag, Ident};
use super::engine::Engine;
use super::Conn as Connection;
use super::SqlValue as Sql;
use super::{args, uncached, Row};
use crate::error::{ApiError, ApiResult};
use crate::schema::record::{from_sql, to_sql};
use crate::schema::Collection;
use serde_json::{Map, Value};

/// A compiled condition: SQL with `?` placeholders, its joins and values.
#[derive(Debug, Clone, Default)]
pub struct Cond {
    pub joins: Vec<String>,
    /// Values bound inside `joins` (they precede WHERE in the SQL text).
    pub join_params: Vec<Sql>,
    pub sql: String,
    pub params: Vec<Sql>,
    /// Joins may repeat rows: select DISTINCT.
    pub distinct: bool,
}

impl Cond {
    /// A condition no row passes.
    pub fn deny() -> Cond {
        Cond {
            sql: "0".into(),
            ..Default::default()
        }
    }
}

/// A list query.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub cond: Cond,
    /// ORDER BY terms (built from schema identifiers) and their values.
    pub order: Vec<String>,
    pub order_params: Vec<Sql>,
    pub limit: i64,
    pub offset: i64,
    /// The ranges the client's filter puts on columns of the collection
    /// (its top-level `&&` terms): what a count asks the index about
    /// before choosing its plan (see [`count_list`]). Which rows match
    /// never depends on them.
    pub ranges: Vec<Range>,
}

/// `column op value`, `op` one of `<`, `<=`, `>`, `>=`.
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    pub column: String,
    pub op: &'static str,
    pub value: Sql,
}

/// The table's name as an SQL identifier (made once per schema snapshot).
fn quoted_table(c: &Collection) -> &str {
    c.derived.3.get_or_init(|| quote_ident(&c.name))
}

/// `"t"."a", "t"."b", …` for every column, in field order (made once per
/// schema snapshot).
fn select_columns(c: &Collection) -> &str {
    c.derived.0.get_or_init(|| {
        let t = quote_ident(&c.name);
        c.fields
            .iter()
            .map(|f| format!("{t}.{}", quote_ident(&f.name)))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

pub fn row_to_map(c: &Collection, row: &Row<'_>) -> ApiResult<Map<String, Value>> {
    let mut m = Map::new();
    for (i, f) in c.fields.iter().enumerate() {
        m.insert(f.name.clone(), from_sql(f, row.get_ref(i)?));
    }
    Ok(m)
}

pub fn fetch_by_id(
    conn: &Connection,
    c: &Collection,
    id: &str,
) -> ApiResult<Option<Map<String, Value>>> {
    let sql = format!(
        "SELECT {} FROM {} WHERE {}.\"id\" = ?1 LIMIT 1",
        select_columns(c),
        quote_ident(&c.name),
        quote_ident(&c.name)
    );
    conn.one(&sql, [id], |r| row_to_map(c, r))
}

/// Fetches one record if it passes `cond`.
pub fn fetch_where(
    conn: &Connection,
    c: &Collection,
    id: &str,
    cond: &Cond,
) -> ApiResult<Option<Map<String, Value>>> {
    fetch_where_with(conn, c, id, cond, |r| row_to_map(c, r))
}

/// Fetches one record if it passes `cond`, handing its row (every column,
/// in field order) to `f` as it is read.
pub fn fetch_where_with<T>(
    conn: &Connection,
    c: &Collection,
    id: &str,
    cond: &Cond,
    f: impl FnOnce(&Row<'_>) -> ApiResult<T>,
) -> ApiResult<Option<T>> {
    let t = quoted_table(c);
    let cols = select_columns(c);
    let mut sql = String::with_capacity(cols.len() + 2 * t.len() + cond.sql.len() + 64);
    sql.push_str("SELECT ");
    if cond.distinct {
        sql.push_str("DISTINCT ");
    }
    sql.push_str(cols);
    sql.push_str(" FROM ");
    sql.push_str(t);
    sql.push(' ');
    for (i, j) in cond.joins.iter().enumerate() {
        if i > 0 {
            sql.push(' ');
        }
        sql.push_str(j);
    }
    sql.push_str(" WHERE ");
    sql.push_str(t);
    sql.push_str(".\"id\" = ?");
    if !cond.sql.is_empty() {
        sql.push_str(" AND (");
        sql.push_str(&cond.sql);
        sql.push(')');
    }
    sql.push_str(" LIMIT 1");
    conn.one(&sql, (&cond.join_params, [id], &cond.params), f)
}

/// Whether a record that is not stored yet would pass `cond`, judged as if
/// it were already in its table: the table is shadowed, for this one
/// query, by a CTE of the same name holding the new row and every stored
/// row with another id — so a rule that looks back into the collection
/// (`@collection.x`, a relation to itself) sees the table as it would be
/// (how PocketBase checks create rules, without writing anything).
pub fn passes_unsaved(
    conn: &Connection,
    c: &Collection,
    values: &Map<String, Value>,
    cond: &Cond,
) -> ApiResult<bool> {
    let t = quote_ident(&c.name);
    let engine = conn.sql_engine();
    let cols: Vec<String> = c
        .fields
        .iter()
        .map(|f| {
            format!(
                "{} AS {}",
                engine.bound_as_column(f.column_def()),
                quote_ident(&f.name)
            )
        })
        .collect();
    let names: Vec<String> = c.fields.iter().map(|f| quote_ident(&f.name)).collect();
    let mut sql = format!(
        "WITH {t} AS (SELECT {} UNION ALL SELECT {} FROM {} WHERE \"id\" <> ?) SELECT 1 FROM {t} {} WHERE {t}.\"id\" = ?",
        cols.join(", "),
        names.join(", "),
        engine.stored_table(&c.name),
        cond.joins.join(" ")
    );
    if !cond.sql.is_empty() {
        sql.push_str(&format!(" AND ({})", cond.sql));
    }
    sql.push_str(" LIMIT 1");
    let id = Sql::Text(
        values
            .get("id")
            .map(crate::schema::record::to_text)
            .unwrap_or_default(),
    );
    let mut params: Vec<Sql> = c
        .fields
        .iter()
        .map(|f| to_sql(f, values.get(&f.name).unwrap_or(&Value::Null)))
        .collect();
    params.push(id.clone());
    params.extend(cond.join_params.iter().cloned());
    params.push(id);
    params.extend(cond.params.iter().cloned());
    conn.exists(uncached(&sql), &params)
}

/// Whether a record, as given by `values` (e.g. as committed, or as it was
/// before a delete), passes `cond`. The values are bound as a one-row
/// subquery aliased like the collection's table, so the condition's own
/// references read the given values while its joins (`@collection.*`, other
/// relations) read the stored tables.
pub fn passes_snapshot(
    conn: &Connection,
    c: &Collection,
    values: &Map<String, Value>,
    cond: &Cond,
) -> ApiResult<bool> {
    if cond.sql.is_empty() && cond.joins.is_empty() {
        return Ok(true);
    }
    let engine = conn.sql_engine();
    let cols: Vec<String> = c
        .fields
        .iter()
        .map(|f| {
            format!(
                "{} AS {}",
                engine.bound_as_column(f.column_def()),
                quote_ident(&f.name)
            )
        })
        .collect();
    let mut sql = format!(
        "SELECT 1 FROM (SELECT {}) AS {} {}",
        cols.join(", "),
        quote_ident(&c.name),
        cond.joins.join(" ")
    );
    if !cond.sql.is_empty() {
        sql.push_str(&format!(" WHERE ({})", cond.sql));
    }
    sql.push_str(" LIMIT 1");
    let mut params: Vec<Sql> = c
        .fields
        .iter()
        .map(|f| to_sql(f, values.get(&f.name).unwrap_or(&Value::Null)))
        .collect();
    params.extend(cond.join_params.iter().cloned());
    params.extend(cond.params.iter().cloned());
    conn.exists(&sql, &params)
}

/// [`passes_snapshot`] for many conditions at once: whether the record
/// passes each. Conditions whose SQL has the same shape (the same joins and
/// WHERE text, e.g. one rule compiled for different subscribers, differing
/// only in bound values) are checked by one statement: a `UNION ALL` of
/// one branch per condition, each selecting its own index when a row
/// passes it.
/// Branch counts are rounded up to a power of two (the last condition
/// repeated) so that few distinct statements are prepared and cached.
pub fn passes_snapshot_all(
    conn: &Connection,
    c: &Collection,
    values: &Map<String, Value>,
    conds: &[Cond],
) -> ApiResult<Vec<bool>> {
    /// Most branches in one statement (SQLite allows 500).
    const MAX_BRANCHES: usize = 32;
    /// Bound values per statement, under SQLite's 32,766.
    const MAX_VARS: usize = 30_000;
    let mut out = vec![false; conds.len()];
    // Groups of the same shape, in first-seen order.
    let mut groups: Vec<(&[String], &str, Vec<usize>)> = Vec::new();
    for (i, cond) in conds.iter().enumerate() {
        if cond.sql.is_empty() && cond.joins.is_empty() {
            out[i] = true;
            continue;
        }
        match groups
            .iter_mut()
            .find(|(j, w, _)| *j == &cond.joins[..] && *w == cond.sql)
        {
            Some((_, _, members)) => members.push(i),
            None => groups.push((&cond.joins[..], &cond.sql, vec![i])),
        }
    }
    if groups.is_empty() {
        return Ok(out);
    }
    let field_values: Vec<Sql> = c
        .fields
        .iter()
        .map(|f| to_sql(f, values.get(&f.name).unwrap_or(&Value::Null)))
        .collect();
    let snapshot = format!(
        "FROM (SELECT {}) AS {}",
        c.fields
            .iter()
            .map(|f| format!(
                "{} AS {}",
                conn.sql_engine().bound_as_column(f.column_def()),
                quote_ident(&f.name)
            ))
            .collect::<Vec<_>>()
            .join(", "),
        quote_ident(&c.name)
    );
    for (joins, sql, members) in groups {
        let first = &conds[members[0]];
        let per_branch = 1 + field_values.len() + first.join_params.len() + first.params.len();
        let cap = (MAX_VARS / per_branch).clamp(1, MAX_BRANCHES);
        // Each branch as `passes_snapshot` asks it: does one row exist.
        let mut branch = format!(
            "SELECT {} WHERE EXISTS (SELECT 1 {snapshot} {}",
            conn.sql_engine().bound_as_column("INTEGER"),
            joins.join(" ")
        );
        if !sql.is_empty() {
            branch.push_str(&format!(" WHERE ({sql})"));
        }
        branch.push_str(" LIMIT 1)");
        for chunk in members.chunks(cap) {
            let n = chunk.len().next_power_of_two().min(cap.max(chunk.len()));
            let text = vec![branch.as_str(); n].join(" UNION ALL ");
            let mut params: Vec<Sql> = Vec::with_capacity(n * per_branch);
            for k in 0..n {
                let i = chunk[k.min(chunk.len() - 1)];
                params.push(Sql::Integer(i as i64));
                params.extend(field_values.iter().cloned());
                params.extend(conds[i].join_params.iter().cloned());
                params.extend(conds[i].params.iter().cloned());
            }
            conn.each(&text, &params, |row| {
                let i: i64 = row.get(0)?;
                if let Some(slot) = usize::try_from(i).ok().and_then(|i| out.get_mut(i)) {
                    *slot = true;
                }
                Ok(())
            })?;
        }
    }
    Ok(out)
}

fn from_where(c: &Collection, cond: &Cond) -> String {
    from_where_hinted(c, cond, "")
}

/// `from_where` with `hint` (an index hint of SQLite's grammar, or "")
/// after the collection's table.
fn from_where_hinted(c: &Collection, cond: &Cond, hint: &str) -> String {
    let mut s = format!("FROM {}{hint}", quote_ident(&c.name));
    for j in &cond.joins {
        s.push(' ');
        s.push_str(j);
    }
    if !cond.sql.is_empty() {
        s.push_str(" WHERE ");
        s.push_str(&cond.sql);
    }
    s
}

pub fn list(
    conn: &Connection,
    c: &Collection,
    q: &ListQuery,
) -> ApiResult<Vec<Map<String, Value>>> {
    if q.cond.distinct && !q.order.is_empty() && conn.sql_engine().typed() {
        return list_ranked(conn, c, q);
    }
    let mut sql = format!(
        "SELECT {}{} {}",
        if q.cond.distinct { "DISTINCT " } else { "" },
        select_columns(c),
        from_where(c, &q.cond)
    );
    if !q.order.is_empty() {
        sql.push_str(" ORDER BY ");
        sql.push_str(&q.order.join(", "));
    }
    sql.push_str(" LIMIT ? OFFSET ?");
    conn.all(
        &sql,
        (
            &q.cond.join_params,
            &q.cond.params,
            &q.order_params,
            [q.limit, q.offset],
        ),
        |r| row_to_map(c, r),
    )
}

/// A page of `q` and, when `count`, how many records match it (-1 when
/// not counted): the engine's page query and its COUNT, or — when the
/// engine would read every matching row anyway to sort them (no index
/// gives the order) — one pass that counts the matching rows and keeps
/// the sort keys of the page's window, then the page's rows by row id
/// (see [`list_by_keys`]). With `keep_order`, also the row ids of every
/// matching row in the list's order, when the store sorted the list itself
/// or an index gives its order ([`order_by_engine`]) and it matches at most
/// [`MAX_SORT_WINDOW`] rows: any other page of the list, while the data
/// stays as it was, is then a slice of it ([`page_window`], [`list_rows`]).
pub fn list_counted(
    conn: &Connection,
    c: &Collection,
    q: &ListQuery,
    count: bool,
    keep_order: bool,
) -> ApiResult<(Page, Option<Vec<i64>>)> {
    // The keyed pass asks SQLite's planner (`EXPLAIN QUERY PLAN`) and
    // compares values as SQLite does: SQLite's alone.
    if (count || q.offset > 0) && !conn.is_postgres() {
        if let Some(out) = list_by_keys(conn, c, q, count, keep_order)? {
            return Ok(out);
        }
        if keep_order {
            if let Some(rows) = order_by_engine(conn, c, q)? {
                let items = list_rows(conn, c, q, &rows[page_window(q, rows.len())])?;
                let total = if count { rows.len() as i64 } else { -1 };
                return Ok(((items, total), Some(rows)));
            }
        }
    }
    let items = list(conn, c, q)?;
    let total = if count { count_list(conn, c, q)? } else { -1 };
    Ok(((items, total), None))
}

/// A list the engine orders (an index gives the order): the row ids of
/// every matching row in the order of its page query, up to
/// [`MAX_SORT_WINDOW`] — read by the same statement without its LIMIT and
/// OFFSET when the engine's plan for it is the page query's (the same
/// index walked the same way, so ties come in the same order); asked once
/// per statement text and collection definition. None otherwise.
fn order_by_engine(
    conn: &Connection,
    c: &Collection,
    q: &ListQuery,
) -> ApiResult<Option<Vec<i64>>> {
    if c.kind == crate::schema::CollectionType::View
        || q.cond.distinct
        || q.order.is_empty()
        || !q.order_params.is_empty()
    {
        return Ok(None);
    }
    let fw = from_where(c, &q.cond);
    let row_id = super::dialect::rowid_text(&c.name);
    let order_sql = format!(
        "SELECT {row_id} {fw} ORDER BY {} LIMIT ?",
        q.order.join(", ")
    );
    let same = plan_answer(c, &format!("order: {order_sql}"), || {
        let page_plan = plan(conn, &page_sql(c, q, &fw), &q.cond, &[q.limit, q.offset])?;
        // Row ids alone may come from the index without the table
        // (`COVERING`): the same walk of the same index.
        let order_plan: Vec<String> = plan(conn, &order_sql, &q.cond, &[MAX_SORT_WINDOW + 1])?
            .into_iter()
            .map(|s| s.replacen(super::dialect::PLAN_COVERING, "", 1))
            .collect();
        // The order an index gives, whole: no sort (a sorter keeping the
        // top rows of a LIMIT may order ties otherwise).
        Ok(page_plan == order_plan
            && !page_plan
                .iter()
                .any(|s| s.contains(super::dialect::PLAN_SORTS)))
    })?;
    if !same {
        return Ok(None);
    }
    let rows: Vec<i64> = conn.all(
        order_sql.as_str(),
        (&q.cond.join_params, &q.cond.params, [MAX_SORT_WINDOW + 1]),
        |r| r.get(0),
    )?;
    if rows.len() as i64 > MAX_SORT_WINDOW {
        return Ok(None);
    }
    tracing::trace!(collection = %c.name, "list order read from the engine");
    Ok(Some(rows))
}

/// A page of records and the number matching (-1: not counted).
pub type Page = (Vec<Map<String, Value>>, i64);

/// Largest window (offset + limit) sorted here; deeper pages are left to
/// the engine (the window's keys are held in memory).
const MAX_SORT_WINDOW: i64 = 10_000;

/// One row's place in a sorted list: its sort keys, its place in the scan
/// (ties keep the order rows were read in, as the engine's sorter does)
/// and its row id.
struct Keyed<'a> {
    keys: Vec<Sql>,
    seq: u64,
    row: i64,
    desc: &'a [bool],
}

impl Keyed<'_> {
    fn order(&self, o: &Self) -> std::cmp::Ordering {
        for ((a, b), d) in self.keys.iter().zip(&o.keys).zip(self.desc) {
            let c = super::dialect::compare_values(a, b);
            if c.is_ne() {
                return if *d { c.reverse() } else { c };
            }
        }
        self.seq.cmp(&o.seq)
    }
}

impl PartialEq for Keyed<'_> {
    fn eq(&self, o: &Self) -> bool {
        self.order(o).is_eq()
    }
}
impl Eq for Keyed<'_> {}
impl PartialOrd for Keyed<'_> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Keyed<'_> {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.order(o)
    }
}

/// The page of `q` sorted here rather than by the engine, with the count
/// from the same pass; None when this does not apply: a view (no row ids),
/// DISTINCT joins, no ORDER BY, terms that are not a plain `expr ASC|DESC`
/// of the default collation, values bound in ORDER BY, a window over
/// [`MAX_SORT_WINDOW`], or a plan where an index gives the order (the
/// engine then stops after the page) or where leaving out ORDER BY would
/// read the rows in another order (ties would come out differently).
///
/// The page's rows are read by row id with `q`'s condition applied again:
/// a row changed or deleted between the two statements is left out, never
/// shown unchecked.
fn list_by_keys(
    conn: &Connection,
    c: &Collection,
    q: &ListQuery,
    count: bool,
    keep_order: bool,
) -> ApiResult<Option<(Page, Option<Vec<i64>>)>> {
    if c.kind == crate::schema::CollectionType::View
        || q.cond.distinct
        || q.order.is_empty()
        || !q.order_params.is_empty()
        || q.limit <= 0
        || q.offset < 0
        || q.offset.saturating_add(q.limit) > MAX_SORT_WINDOW
    {
        return Ok(None);
    }
    let mut exprs = Vec::with_capacity(q.order.len());
    let mut desc = Vec::with_capacity(q.order.len());
    for term in &q.order {
        let (e, d) = if let Some(e) = term.strip_suffix(" DESC") {
            (e, true)
        } else if let Some(e) = term.strip_suffix(" ASC") {
            (e, false)
        } else {
            return Ok(None);
        };
        if super::dialect::names_collation(e) {
            return Ok(None);
        }
        exprs.push(e);
        desc.push(d);
    }
    let fw = from_where(c, &q.cond);
    let row_id = super::dialect::rowid_text(&c.name);
    let keys_sql = format!("SELECT {row_id}, {} {fw}", exprs.join(", "));
    if !sorts_after_reading(conn, c, q, &fw, &keys_sql)? {
        return Ok(None);
    }
    tracing::trace!(collection = %c.name, "list sorted by the store");
    // One pass: every matching row counted, the best `window` kept (to
    // keep the whole order, as many as the window may hold).
    let window = if keep_order {
        MAX_SORT_WINDOW as usize
    } else {
        (q.offset + q.limit) as usize
    };
    let mut heap: std::collections::BinaryHeap<Keyed<'_>> =
        std::collections::BinaryHeap::with_capacity(window.min(1024) + 1);
    let mut seq = 0u64;
    conn.each(
        keys_sql.as_str(),
        (&q.cond.join_params, &q.cond.params),
        |r| {
            seq += 1;
            // A full window: a row no better than its worst is only
            // counted (a later row loses a tie), nothing copied.
            if heap.len() >= window {
                if let Some(worst) = heap.peek() {
                    let mut ord = std::cmp::Ordering::Equal;
                    for (i, (w, d)) in worst.keys.iter().zip(&desc).enumerate() {
                        let c = super::dialect::compare_refs(
                            r.get_ref(i + 1)?,
                            super::Param::to_ref(w),
                        );
                        if c.is_ne() {
                            ord = if *d { c.reverse() } else { c };
                            break;
                        }
                    }
                    if ord.is_ge() {
                        return Ok(());
                    }
                }
            }
            let mut keys = Vec::with_capacity(exprs.len());
            for i in 0..exprs.len() {
                keys.push(r.get::<Sql>(i + 1)?);
            }
            let k = Keyed {
                keys,
                seq,
                row: r.get(0)?,
                desc: &desc,
            };
            if heap.len() >= window {
                heap.pop();
            }
            heap.push(k);
            Ok(())
        },
    )?;
    let total = if count { seq as i64 } else { -1 };
    let sorted: Vec<i64> = heap.into_sorted_vec().into_iter().map(|k| k.row).collect();
    // Every matching row is in the window: the whole order.
    let whole = keep_order && seq as usize <= window;
    let items = list_rows(conn, c, q, &sorted[page_window(q, sorted.len())])?;
    Ok(Some(((items, total), whole.then_some(sorted))))
}

/// Where `q`'s page lies in a list of `len` rows in order (empty past
/// its end).
pub fn page_window(q: &ListQuery, len: usize) -> std::ops::Range<usize> {
    let from = usize::try_from(q.offset).unwrap_or(0).min(len);
    let to = usize::try_from(q.offset.saturating_add(q.limit))
        .unwrap_or(0)
        .clamp(from, len);
    from..to
}

/// The records of row ids `page` in that order, `q`'s condition checked
/// again: a row changed or deleted since its id was read is left out.
pub fn list_rows(
    conn: &Connection,
    c: &Collection,
    q: &ListQuery,
    page: &[i64],
) -> ApiResult<Vec<Map<String, Value>>> {
    if page.is_empty() {
        return Ok(vec![]);
    }
    let row_id = super::dialect::rowid_text(&c.name);
    let mut sql = format!(
        "SELECT {row_id}, {} FROM {} ",
        select_columns(c),
        quote_ident(&c.name)
    );
    sql.push_str(&q.cond.joins.join(" "));
    sql.push_str(" WHERE ");
    sql.push_str(&super::dialect::in_bound_json_array_text(&row_id));
    if !q.cond.sql.is_empty() {
        sql.push_str(" AND (");
        sql.push_str(&q.cond.sql);
        sql.push(')');
    }
    let ids = serde_json::to_string(&page).map_err(ApiError::internal)?;
    let mut rows: std::collections::HashMap<i64, Map<String, Value>> = conn
        .all(
            sql.as_str(),
            (&q.cond.join_params, [ids.as_str()], &q.cond.params),
            |r| {
                let id: i64 = r.get(0)?;
                let mut m = Map::new();
                for (i, f) in c.fields.iter().enumerate() {
                    m.insert(f.name.clone(), from_sql(f, r.get_ref(i + 1)?));
                }
                Ok((id, m))
            },
        )?
        .into_iter()
        .collect();
    Ok(page.iter().filter_map(|id| rows.remove(id)).collect())
}

/// Whether the engine would sort `q`'s rows after reading them all, and
/// reads them in the same order without the ORDER BY (the keys query
/// `keys_sql`): asked once per statement text and collection definition.
fn sorts_after_reading(
    conn: &Connection,
    c: &Collection,
    q: &ListQuery,
    fw: &str,
    keys_sql: &str,
) -> ApiResult<bool> {
    let page_sql = page_sql(c, q, fw);
    plan_answer(c, &page_sql, || {
        let page_plan = plan(conn, &page_sql, &q.cond, &[q.limit, q.offset])?;
        let keys_plan = plan(conn, keys_sql, &q.cond, &[])?;
        let sorts = page_plan
            .iter()
            .any(|s| s == super::dialect::PLAN_SORTS_AFTER_READING);
        let same_scan = page_plan
            .iter()
            .filter(|s| *s != super::dialect::PLAN_SORTS_AFTER_READING)
            .eq(keys_plan.iter());
        Ok(sorts && same_scan)
    })
}

/// The engine's page query of `q` (`fw`: its FROM and WHERE).
fn page_sql(c: &Collection, q: &ListQuery, fw: &str) -> String {
    format!(
        "SELECT {} {fw} ORDER BY {} LIMIT ? OFFSET ?",
        select_columns(c),
        q.order.join(", ")
    )
}

/// The engine's plan for `sql` (`EXPLAIN QUERY PLAN`, one line per step),
/// bound with `cond`'s values, then `tail`.
fn plan(conn: &Connection, sql: &str, cond: &Cond, tail: &[i64]) -> ApiResult<Vec<String>> {
    conn.all(
        uncached(&super::dialect::explain_plan(sql)),
        (&cond.join_params, &cond.params, tail),
        |r| r.get::<String>(3),
    )
}

/// A yes/no answer about plans, `ask`ed once per `key` (a statement's
/// text) and collection definition; at most 64 are kept.
fn plan_answer(
    c: &Collection,
    key: &str,
    ask: impl FnOnce() -> ApiResult<bool>,
) -> ApiResult<bool> {
    let memo = c.derived.2.get_or_init(Default::default);
    if let Some(v) = lock(memo).get(key) {
        return Ok(*v);
    }
    let v = ask()?;
    let mut m = lock(memo);
    if m.len() >= 64 {
        m.clear();
    }
    m.insert(key.to_string(), v);
    Ok(v)
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A sorted list whose joins may repeat rows, where DISTINCT can't be
/// sorted by what is not selected (PostgreSQL): each row numbered in the
/// sort's order, and within its own id; the first of each id kept, in
/// that order.
fn list_ranked(
    conn: &Connection,
    c: &Collection,
    q: &ListQuery,
) -> ApiResult<Vec<Map<String, Value>>> {
    let t = quote_ident(&c.name);
    let order = q.order.join(", ");
    let sql = format!(
        "SELECT * FROM (SELECT {}, ROW_NUMBER() OVER (ORDER BY {order}) AS \"__pos\", \
         ROW_NUMBER() OVER (PARTITION BY {t}.\"id\" ORDER BY {order}) AS \"__dup\" {}) AS \"__ranked\" \
         WHERE \"__dup\" = 1 ORDER BY \"__pos\" LIMIT ? OFFSET ?",
        select_columns(c),
        from_where(c, &q.cond)
    );
    conn.all(
        &sql,
        (
            &q.order_params,
            &q.order_params,
            &q.cond.join_params,
            &q.cond.params,
            [q.limit, q.offset],
        ),
        |r| row_to_map(c, r),
    )
}

/// The items of a multi-value column `t.col` as a table function whose
/// column is `value`, in the connection's engine.
fn items_of(conn: &Connection, table: &str, column: &str) -> String {
    let t = quote_ident(table);
    let col = format!("{t}.{}", quote_ident(column));
    match conn.sql_engine() {
        Engine::Sqlite => json_each_text(&col),
        #[allow(unreachable_patterns)]
        other => match (Ident::new(table), Ident::new(column)) {
            (Some(t), Some(f)) => {
                let mut s = String::new();
                other
                    .json_each(&Frag::new().col(&t, &f))
                    .render(&mut s, &mut Vec::new());
                s
            }
            _ => json_each_text(&col),
        },
    }
}

pub fn count(conn: &Connection, c: &Collection, cond: &Cond) -> ApiResult<i64> {
    count_hinted(conn, c, cond, "")
}

fn count_sql(c: &Collection, cond: &Cond, hint: &str) -> String {
    let fw = from_where_hinted(c, cond, hint);
    if cond.distinct {
        format!(
            "SELECT COUNT(DISTINCT {}.\"id\") {fw}",
            quote_ident(&c.name)
        )
    } else {
        format!("SELECT COUNT(*) {fw}")
    }
}

fn count_hinted(conn: &Connection, c: &Collection, cond: &Cond, hint: &str) -> ApiResult<i64> {
    let sql = count_sql(c, cond, hint);
    Ok(conn
        .one(&sql, (&cond.join_params, &cond.params), |r| r.get(0))?
        .unwrap_or(0))
}

/// Tables smaller than this are counted as the engine plans: either way
/// costs little.
const COUNT_PLAN_MIN_ROWS: i64 = 1_000;

/// A list's total. SQLite without statistics (keepd never runs ANALYZE,
/// see BENCHMARKS.md "List shapes") plans a count over an indexed range
/// as if the range held a quarter of the rows or fewer: it walks the
/// index and reads each row it finds from the table, a seek per row.
/// Past about a quarter of the table, reading the whole table in order is
/// cheaper (2–3.7× for half of it, on 10,000 rows). So where the count's
/// plan searches an index by a range the filter gives, the range's size
/// is asked of the index first — the index alone, stopped at a quarter
/// of the table's row ids — and a range that reaches it is counted by
/// reading the table (`NOT INDEXED`). The total is the same either way;
/// only the work differs.
fn count_list(conn: &Connection, c: &Collection, q: &ListQuery) -> ApiResult<i64> {
    if !q.ranges.is_empty()
        && !conn.is_postgres()
        && c.kind != crate::schema::CollectionType::View
        && broad_range(conn, c, q)?
    {
        tracing::trace!(collection = %c.name, "list counted by reading the table");
        return count_hinted(conn, c, &q.cond, super::dialect::NOT_INDEXED);
    }
    count(conn, c, &q.cond)
}

/// Whether the count of `q` would search an index by one of its ranges
/// that holds a quarter of the table's row ids or more.
fn broad_range(conn: &Connection, c: &Collection, q: &ListQuery) -> ApiResult<bool> {
    let Some(column) = range_searched(conn, c, q)? else {
        return Ok(false);
    };
    let t = quoted_table(c);
    let rows: i64 = conn
        .one(
            &format!(
                "SELECT max({}) FROM {t}",
                super::dialect::rowid_text(&c.name)
            ),
            (),
            |r| r.get::<Option<i64>>(0),
        )?
        .flatten()
        .unwrap_or(0);
    if rows < COUNT_PLAN_MIN_ROWS {
        return Ok(false);
    }
    let col = format!("{t}.{}", quote_ident(&column));
    let on_column: Vec<&Range> = q.ranges.iter().filter(|r| r.column == column).collect();
    let terms: Vec<String> = on_column
        .iter()
        .map(|r| format!("{col} {} ?", r.op))
        .collect();
    let values: Vec<&Sql> = on_column.iter().map(|r| &r.value).collect();
    let quarter = rows / 4;
    let sql = format!(
        "SELECT COUNT(*) FROM (SELECT 1 FROM {t} WHERE {} LIMIT ?)",
        terms.join(" AND ")
    );
    let found: i64 = conn
        .one(&sql, (values.as_slice(), [quarter]), |r| r.get(0))?
        .unwrap_or(0);
    Ok(found >= quarter)
}

/// The column of `q.ranges` by whose range the engine's plan for the count
/// searches an index (`SEARCH t USING INDEX i (col>?)`), if any: asked once
/// per statement text and column.
fn range_searched(conn: &Connection, c: &Collection, q: &ListQuery) -> ApiResult<Option<String>> {
    let sql = count_sql(c, &q.cond, "");
    let mut columns: Vec<&str> = q.ranges.iter().map(|r| r.column.as_str()).collect();
    columns.sort_unstable();
    columns.dedup();
    // `SEARCH t USING INDEX i (a=? AND n>? AND n<?)`: the index's terms.
    let mut terms: Option<String> = None;
    for col in columns {
        let searched = plan_answer(c, &format!("count by {col}: {sql}"), || {
            if terms.is_none() {
                let search = super::dialect::plan_searches_index(&c.name);
                terms = Some(
                    plan(conn, &sql, &q.cond, &[])?
                        .iter()
                        .find_map(|line| line.strip_prefix(&search))
                        .and_then(|rest| rest.split_once(" ("))
                        .map(|(_, t)| t.trim_end_matches(')').to_string())
                        .unwrap_or_default(),
                );
            }
            // Only a range on the index's first column: after an equality
            // on an earlier one (`(a=? AND n>?)`), the range's size over
            // the whole table says nothing of what the index walks.
            Ok(terms
                .as_deref()
                .and_then(|t| t.split(" AND ").next())
                .and_then(|first| first.strip_prefix(col))
                .is_some_and(|op| op.starts_with('>') || op.starts_with('<')))
        })?;
        if searched {
            return Ok(Some(col.to_string()));
        }
    }
    Ok(None)
}

/// How many of `ids` exist in `c` (relation validation).
pub fn count_existing(conn: &Connection, c: &Collection, ids: &[String]) -> ApiResult<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    let marks = vec!["?"; ids.len()].join(",");
    let sql = format!(
        "SELECT COUNT(*) FROM {} WHERE \"id\" IN ({marks})",
        quote_ident(&c.name)
    );
    let n: i64 = conn.one(uncached(&sql), ids, |r| r.get(0))?.unwrap_or(0);
    Ok(n as usize)
}

/// Fetches records by ids (for expand), in any order.
pub fn fetch_many(
    conn: &Connection,
    c: &Collection,
    ids: &[String],
    cond: &Cond,
) -> ApiResult<Vec<Map<String, Value>>> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let t = quote_ident(&c.name);
    let marks = vec!["?"; ids.len()].join(",");
    let mut sql = format!(
        "SELECT {}{} FROM {t} {} WHERE {t}.\"id\" IN ({marks})",
        if cond.distinct { "DISTINCT " } else { "" },
        select_columns(c),
        cond.joins.join(" ")
    );
    if !cond.sql.is_empty() {
        sql.push_str(&format!(" AND ({})", cond.sql));
    }
    conn.all(
        uncached(&sql),
        (&cond.join_params, ids, &cond.params),
        |r| row_to_map(c, r),
    )
}

/// Ids of records in `c` whose relation field `field` holds `target_id`.
pub fn referencing_ids(
    conn: &Connection,
    c: &Collection,
    field: &crate::schema::Field,
    target_id: &str,
) -> ApiResult<Vec<String>> {
    let t = quote_ident(&c.name);
    let col = quote_ident(&field.name);
    let sql = if field.is_multiple() {
        match conn.sql_engine() {
            Engine::Sqlite => format!(
                "SELECT {t}.\"id\" FROM {t} WHERE {}",
                super::dialect::json_array_holds(&c.name, &field.name)
            ),
            #[allow(unreachable_patterns)]
            _ => format!(
                "SELECT {t}.\"id\" FROM {t} WHERE EXISTS (SELECT 1 FROM {} je WHERE je.value = ?1)",
                items_of(conn, &c.name, &field.name)
            ),
        }
    } else {
        format!("SELECT {t}.\"id\" FROM {t} WHERE {t}.{col} = ?1")
    };
    conn.all(&sql, [target_id], |r| r.get::<String>(0))
}

/// Records of `c` whose relation `field` holds one of `target_ids` and that
/// pass `cond`: (the target id, the record), at most `per_target` records
/// for each target id (a back-relation's expand), in one query.
pub fn fetch_referencing(
    conn: &Connection,
    c: &Collection,
    field: &crate::schema::Field,
    target_ids: &[String],
    cond: &Cond,
    per_target: usize,
) -> ApiResult<Vec<(String, Map<String, Value>)>> {
    if target_ids.is_empty() {
        return Ok(vec![]);
    }
    let t = quote_ident(&c.name);
    let col = format!("{t}.{}", quote_ident(&field.name));
    let marks = vec!["?"; target_ids.len()].join(",");
    let (from, parent) = if field.is_multiple() {
        (
            {
                let mut on = String::new();
                conn.sql_engine()
                    .no_on(Frag::new())
                    .render(&mut on, &mut Vec::new());
                format!(
                    "{} {} JOIN {} __je{on}",
                    t,
                    cond.joins.join(" "),
                    items_of(conn, &c.name, &field.name)
                )
            },
            "__je.value".to_string(),
        )
    } else {
        (format!("{t} {}", cond.joins.join(" ")), col.clone())
    };
    // PostgreSQL keeps no row order of its own (an update moves a row):
    // each target's referrers in insertion order, as SQLite's table scan
    // gives them.
    let ordered = conn.is_postgres() && c.kind != crate::schema::CollectionType::View;
    let ord = match (ordered, Ident::new(&c.name)) {
        (true, Some(alias)) => {
            let mut o = String::new();
            conn.sql_engine()
                .insertion_order(&alias)
                .render(&mut o, &mut Vec::new());
            format!(", {o} AS \"__ord\"")
        }
        _ => String::new(),
    };
    let mut inner = format!(
        "SELECT {}{}, {parent} AS \"__parent\"{ord} FROM {from} WHERE {parent} IN ({marks})",
        if cond.distinct { "DISTINCT " } else { "" },
        select_columns(c),
    );
    if !cond.sql.is_empty() {
        inner.push_str(" AND (");
        inner.push_str(&cond.sql);
        inner.push(')');
    }
    let (within, after) = if ord.is_empty() {
        ("", "")
    } else {
        (" ORDER BY \"__ord\"", " ORDER BY \"__ord\"")
    };
    let sql = format!(
        "SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY \"__parent\"{within}) AS \"__rn\" FROM ({inner}) AS \"__i\") AS \"__n\" WHERE \"__rn\" <= ?{after}"
    );
    let n = c.fields.len();
    conn.all(
        uncached(&sql),
        (&cond.join_params, target_ids, &cond.params, [per_target]),
        |r| Ok((r.get::<String>(n)?, row_to_map(c, r)?)),
    )
}

/// A write that broke a UNIQUE constraint on `columns`: the fields'
/// validation error.
fn not_unique(columns: &[String], c: &Collection) -> ApiError {
    let mut errs = crate::error::FieldErrors::new();
    for col in columns {
        if c.has_field(col) {
            errs.add(col, "validation_not_unique", "Value must be unique.");
        }
    }
    ApiError::validation("Failed to create record.", errs)
}

/// Inserts a full row (every field present in `values`).
pub fn insert(conn: &Connection, c: &Collection, values: &Map<String, Value>) -> ApiResult<()> {
    Insert::new(c, values).run(conn, c)
}

/// An INSERT of one row made ready (its SQL and bound values), so that
/// the text and the conversions can be done before the writer runs it.
#[derive(Debug, Clone)]
pub struct Insert {
    sql: String,
    params: Vec<Sql>,
}

impl Insert {
    pub fn new(c: &Collection, values: &Map<String, Value>) -> Insert {
        let cols: Vec<String> = c.fields.iter().map(|f| quote_ident(&f.name)).collect();
        let marks = vec!["?"; cols.len()].join(", ");
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({marks})",
            quote_ident(&c.name),
            cols.join(", ")
        );
        let params: Vec<Sql> = c
            .fields
            .iter()
            .map(|f| to_sql(f, values.get(&f.name).unwrap_or(&Value::Null)))
            .collect();
        Insert { sql, params }
    }

    /// Runs it on `conn` (the collection must be the one it was made for).
    pub fn run(&self, conn: &Connection, c: &Collection) -> ApiResult<()> {
        match conn.exec_unique(&self.sql, &self.params)? {
            Ok(_) => Ok(()),
            Err(cols) => Err(not_unique(&cols, c)),
        }
    }
}

/// Rewrites a row (every field present in `values`), keyed by `old_id`.
pub fn update(
    conn: &Connection,
    c: &Collection,
    old_id: &str,
    values: &Map<String, Value>,
) -> ApiResult<()> {
    let sets: Vec<String> = c
        .fields
        .iter()
        .map(|f| format!("{} = ?", quote_ident(&f.name)))
        .collect();
    let sql = format!(
        "UPDATE {} SET {} WHERE \"id\" = ?",
        quote_ident(&c.name),
        sets.join(", ")
    );
    let mut params: Vec<Sql> = c
        .fields
        .iter()
        .map(|f| to_sql(f, values.get(&f.name).unwrap_or(&Value::Null)))
        .collect();
    params.push(Sql::Text(old_id.to_string()));
    match conn.exec_unique(&sql, &params)? {
        Ok(_) => Ok(()),
        Err(cols) => Err(not_unique(&cols, c)),
    }
}

/// Sets one field of a row (a system column such as a password hash).
pub fn set_value(
    conn: &Connection,
    c: &Collection,
    id: &str,
    field: &str,
    value: &Value,
) -> ApiResult<()> {
    let f = c
        .field(field)
        .ok_or_else(|| ApiError::internal(format!("no field {field} in {}", c.name)))?;
    let sql = format!(
        "UPDATE {} SET {} = ?1 WHERE \"id\" = ?2",
        quote_ident(&c.name),
        quote_ident(&f.name)
    );
    conn.exec(uncached(&sql), args![to_sql(f, value), id])?;
    Ok(())
}

pub fn delete(conn: &Connection, c: &Collection, id: &str) -> ApiResult<usize> {
    let sql = format!("DELETE FROM {} WHERE \"id\" = ?1", quote_ident(&c.name));
    conn.exec(uncached(&sql), [id])
}

pub fn truncate(conn: &Connection, c: &Collection) -> ApiResult<()> {
    conn.script(&format!("DELETE FROM {}", quote_ident(&c.name)))
}
