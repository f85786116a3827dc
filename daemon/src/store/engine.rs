//! The database engine a query is compiled for, chosen at run time: each
//! query fragment the filter compiler needs, spelled by that engine's
//! dialect (`sqlite::dialect`, `postgres::dialect` with the `postgres`
//! feature). Nothing here is SQL of its own: every arm hands over to its
//! engine's module. SQLite's arm is the dialect's function as it was, so
//! its output does not depend on the other engine being built.

use super::dialect::{self as sqlite, Bind, Frag, Ident};
#[cfg(feature = "postgres")]
use super::postgres::dialect as pg;

/// The engine whose SQL a compile produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Engine {
    #[default]
    Sqlite,
    #[cfg(feature = "postgres")]
    Postgres,
}

/// What an operand yields, as far as the compiler can tell: SQLite types
/// values at run time (and gives a column its affinity), PostgreSQL needs
/// them known when the statement is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// Text that is not a column (a literal, a function's result).
    Text,
    /// A text column (SQLite: TEXT affinity).
    TextCol,
    /// A number that is not a column (literal, count, distance).
    Num,
    /// A number column (SQLite: NUMERIC affinity).
    NumCol,
    /// A bool column or `TRUE`/`FALSE` (SQLite: 0/1).
    Bool,
    /// A value read out of JSON (SQLite: any type, per value).
    Json,
    /// NULL, or nothing known.
    Unknown,
}

impl Ty {
    /// The type of a bound value.
    pub fn of(b: &Bind) -> Ty {
        match b {
            Bind::Null => Ty::Unknown,
            Bind::Bool(_) | Bind::Int(_) | Bind::Real(_) => Ty::Num,
            Bind::Text(_) | Bind::Slot(_) => Ty::Text,
        }
    }
}

/// A comparison's two operands as the engine compares them, and the type
/// they are compared as.
pub struct Unified {
    pub left: Frag,
    pub right: Frag,
    pub ty: Ty,
}

impl Engine {
    /// Whether compiled SQL needs each operand's type (no: SQLite).
    #[inline]
    pub fn typed(self) -> bool {
        self != Engine::Sqlite
    }

    /// Compiled SQL as the engine runs it with `params[*next..]` bound in
    /// order (`next` moved past its placeholders): SQLite as written;
    /// PostgreSQL with each `?` cast to its value's type.
    pub fn bound_sql(
        self,
        sql: &str,
        _params: &[crate::store::SqlValue],
        _next: &mut usize,
    ) -> String {
        match self {
            Engine::Sqlite => sql.to_string(),
            #[cfg(feature = "postgres")]
            Engine::Postgres => pg::typed_placeholders_from(sql, _params, _next),
        }
    }

    /// A value bound in place of a column declared `column_def`
    /// (`schema::Field::column_def`): typed as that column.
    pub fn bound_as_column(self, _column_def: &str) -> std::borrow::Cow<'static, str> {
        match self {
            Engine::Sqlite => "?".into(),
            #[cfg(feature = "postgres")]
            Engine::Postgres => super::postgres::ddl::bound_as_column(_column_def).into(),
        }
    }

    /// A collection's index (parsed and validated) as the engine creates it.
    pub fn index_sql(self, def: &crate::schema::index::IndexDef) -> String {
        match self {
            Engine::Sqlite => def.to_sql(),
            #[cfg(feature = "postgres")]
            Engine::Postgres => super::postgres::ddl::index_sql(def),
        }
    }

    /// A collection's stored table, named where a CTE of the same name
    /// shadows it (SQLite: in `main`; PostgreSQL: a CTE is not visible
    /// inside its own definition).
    pub fn stored_table(self, name: &str) -> String {
        match self {
            Engine::Sqlite => sqlite::qualified_table(name),
            #[cfg(feature = "postgres")]
            Engine::Postgres => sqlite::quote_ident(name),
        }
    }

    pub fn json_each(self, col: &Frag) -> Frag {
        match self {
            Engine::Sqlite => sqlite::json_each(col),
            #[cfg(feature = "postgres")]
            Engine::Postgres => pg::json_each(col),
        }
    }

    pub fn json_each_bound(self, json_array: Bind) -> Frag {
        match self {
            Engine::Sqlite => sqlite::json_each_bound(json_array),
            #[cfg(feature = "postgres")]
            Engine::Postgres => pg::json_each_bound(json_array),
        }
    }

    pub fn json_array_length(self, col: &Frag) -> Frag {
        match self {
            Engine::Sqlite => sqlite::json_array_length(col),
            #[cfg(feature = "postgres")]
            Engine::Postgres => pg::json_array_length(col),
        }
    }

    pub fn json_extract(self, col: &Frag, path: &str) -> Frag {
        match self {
            Engine::Sqlite => sqlite::json_extract(col, path),
            #[cfg(feature = "postgres")]
            Engine::Postgres => pg::json_extract(col, path),
        }
    }

    pub fn in_json_array(self, lhs: &Frag, json_array: Bind) -> Frag {
        match self {
            Engine::Sqlite => sqlite::in_json_array(lhs, json_array),
            #[cfg(feature = "postgres")]
            Engine::Postgres => pg::in_json_array(lhs, json_array),
        }
    }

    /// Null-safe (in)equality.
    pub fn is(self, a: &Frag, b: &Frag, negate: bool) -> Frag {
        match self {
            Engine::Sqlite => sqlite::is(a, b, negate),
            #[cfg(feature = "postgres")]
            Engine::Postgres => pg::is(a, b, negate),
        }
    }

    /// PocketBase's `~`: ASCII case-insensitive LIKE with `\` escapes.
    pub fn like(self, a: &Frag, _ty: Ty, pattern: &Frag, negate: bool) -> Frag {
        match self {
            Engine::Sqlite => sqlite::like(a, pattern, negate),
            #[cfg(feature = "postgres")]
            Engine::Postgres => pg::like(a, _ty, pattern, negate),
        }
    }

    pub fn like_contains(self, a: &Frag, _at: Ty, b: &Frag, _bt: Ty, negate: bool) -> Frag {
        match self {
            Engine::Sqlite => sqlite::like_contains(a, b, negate),
            #[cfg(feature = "postgres")]
            Engine::Postgres => pg::like_contains(a, _at, b, _bt, negate),
        }
    }

    /// ASCII lower case (SQLite's `LOWER` without ICU).
    pub fn lower(self, x: &Frag, _ty: Ty) -> Frag {
        match self {
            Engine::Sqlite => sqlite::lower(x),
            #[cfg(feature = "postgres")]
            Engine::Postgres => pg::lower(x, _ty),
        }
    }

    /// SQLite's `strftime`; `None` where the engine has none yet.
    pub fn strftime(self, args: &[Frag]) -> Option<Frag> {
        match self {
            Engine::Sqlite => Some(sqlite::strftime(args)),
            #[cfg(feature = "postgres")]
            Engine::Postgres => pg::strftime(args),
        }
    }

    /// Haversine distance in km between (lon, lat) points; `tys` are the
    /// arguments' types.
    pub fn geo_distance(self, args: [&Frag; 4], _tys: [Ty; 4]) -> Frag {
        match self {
            Engine::Sqlite => sqlite::geo_distance(args[0], args[1], args[2], args[3]),
            #[cfg(feature = "postgres")]
            Engine::Postgres => pg::geo_distance(args, _tys),
        }
    }

    pub fn random(self) -> Frag {
        match self {
            Engine::Sqlite => sqlite::random(),
            #[cfg(feature = "postgres")]
            Engine::Postgres => pg::random(),
        }
    }

    /// The insertion order of `alias`'s rows (`@rowid`).
    pub fn insertion_order(self, alias: &Ident) -> Frag {
        match self {
            Engine::Sqlite => sqlite::rowid(alias),
            #[cfg(feature = "postgres")]
            Engine::Postgres => pg::rowid(alias),
        }
    }

    /// What a join with no condition of its own ends with.
    pub fn no_on(self, f: Frag) -> Frag {
        match self {
            Engine::Sqlite => f,
            #[cfg(feature = "postgres")]
            Engine::Postgres => f.s(pg::ON_TRUE),
        }
    }

    /// One `sort` term: `x` ascending or descending, NULLs first when
    /// ascending (SQLite's order).
    pub fn sort_term(self, x: Frag, _ty: Ty, desc: bool) -> Frag {
        match self {
            Engine::Sqlite => x.s(if desc { " DESC" } else { " ASC" }),
            #[cfg(feature = "postgres")]
            Engine::Postgres => pg::sort_term(&x, _ty, desc),
        }
    }

    /// What stands for '' in PocketBase's null/empty comparisons of
    /// operands compared as `ty`.
    pub fn blank(self, _ty: Ty) -> Frag {
        match self {
            Engine::Sqlite => Frag::sql("''"),
            #[cfg(feature = "postgres")]
            Engine::Postgres => pg::blank(_ty),
        }
    }

    /// The two operands of a comparison made comparable as SQLite compares
    /// them (its affinities); SQLite itself needs nothing.
    pub fn unify(self, l: &Frag, lt: Ty, r: &Frag, rt: Ty, ordering: bool) -> Option<Unified> {
        match self {
            Engine::Sqlite => {
                let _ = (l, lt, r, rt, ordering);
                None
            }
            #[cfg(feature = "postgres")]
            Engine::Postgres => Some(pg::unify(l, lt, r, rt, ordering)),
        }
    }
}
