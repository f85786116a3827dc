//! The filter language: PocketBase's `filter`/`sort` parameters and API
//! rules, parsed into an AST and compiled to SQL with bound parameters.
//!
//! ```text
//! text ──lexer──► tokens ──parser──► Expr ──compile (schema, request shape)──► Template
//!                                                  ──bind (request values, clock)──► Compiled
//! ```
//!
//! A [`Template`] serves every request that answers the compiler's probes
//! as the one it was compiled for (`rules` keeps one per rule and request
//! shape); [`Query::finish`] compiles and binds at once.
//!
//! Invariants:
//! - No path from input text to SQL text: identifiers are looked up in the
//!   schema and written from it (`dialect::Ident`), every literal and every
//!   request value is a bound parameter, JSON paths included. `audit`
//!   checks compiled SQL token by token (tests and fuzzing).
//! - Bounded: input length, comparisons (200, PocketBase's cap), parenthesis
//!   nesting (64), function nesting (3), relation depth (6), sort terms (8).
//! - Pure: no I/O; SQLite spelling lives in `store::dialect`.
//! - For a non-superuser nothing hidden shapes an answer: hidden fields are
//!   refused, an auth e-mail is read only where `emailVisibility` is on
//!   (`hidden_tests` checks this by non-interference).
//!
//! Use one [`Query`] per SELECT so that the rule, the client filter and the
//! sort share their joins as in PocketBase:
//!
//! ```text
//! let ctx = Ctx::new(&schema, &coll, &request_info, is_superuser);
//! let mut q = Query::new(&ctx)?;
//! if !is_superuser { q.rule(list_rule)?; }
//! q.filter_str(filter_param)?.sort(sort_param)?;
//! let c = q.finish()?;   // joins, where_sql, order_by + their params
//! ```
//!
//! Semantics deliberately different from PocketBase: see `COMPATIBILITY.md`
//! (NUL in a filter is an error; a parenthesised group in operand position
//! is an error; `@collection.a:x` and `@collection.b:x` are separate joins).

mod ast;
#[doc(hidden)]
pub mod audit;
mod compile;
mod context;
mod error;
#[cfg(test)]
mod hidden_tests;
mod lexer;
mod parser;
mod resolve;
mod template;
#[cfg(test)]
mod template_tests;
#[cfg(test)]
mod tests;

pub use ast::{Cmp, Expr, Op, Term};
pub use compile::{
    check_superuser_only, compile, compile_rule, compile_sort, Compiled, Query, SortCompiled,
    MAX_SORT_FIELD_LENGTH, MAX_SORT_TERMS,
};
pub use context::{header_key, Access, AuthInfo, AuthView, Ctx, RequestInfo, RequestView};
pub use error::{FilterError, GENERIC_MESSAGE};
pub use lexer::MAX_FUNC_DEPTH;
pub use parser::{
    parse, parse_with, Limits, MAX_DEPTH, MAX_EXPRESSIONS, MAX_FILTER_LENGTH, MAX_INPUT_LENGTH,
};
pub use resolve::MAX_NESTED_RELATIONS;
pub use template::Template;

/// PocketBase's check on a non-superuser's `filter` and `sort` parameters:
/// 403 "Only superusers can filter by @collection." / "... @request." when
/// either text contains the prefix (anywhere, literals included).
pub fn check_superuser_only_fields(filter: &str, sort: &str) -> Result<(), FilterError> {
    check_superuser_only(filter)?;
    check_superuser_only(sort)
}

/// Whether a filter or sort text may read the clock or chance: any `@`
/// that is not `@request.`/`@collection.` (the clock macros `@now`,
/// `@todayStart`, … and any added later), `strftime`, `random`.
pub fn volatile(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    if lower.contains("strftime") || lower.contains("random") {
        return true;
    }
    lower.match_indices('@').any(|(i, _)| {
        let rest = &lower[i + 1..];
        !(rest.starts_with("request.") || rest.starts_with("collection."))
    })
}

#[cfg(test)]
mod volatile_tests {
    #[test]
    fn clock_and_chance() {
        for f in [
            "created > @now",
            "d >= @todayStart",
            "x = @WEEKDAY",
            "strftime('%Y', created) = '2024'",
            "@yesterday = 1",
        ] {
            assert!(super::volatile(f), "{f}");
        }
        for f in [
            "owner = @request.auth.id",
            "@collection.posts.author ?= @request.auth.id",
            "title ~ 'now'",
            "-updated,created",
        ] {
            assert!(!super::volatile(f), "{f}");
        }
    }
}
