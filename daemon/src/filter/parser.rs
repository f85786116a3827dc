//! The filter parser: tokens → [`Expr`], with PocketBase's acceptance rules
//! and hard limits so that hostile input cannot exhaust the stack or memory.
//!
//! fexpr's grammar is a flat list of comparisons and parenthesised groups,
//! each preceded by `&&` or `||`; turned into SQL text it gets SQL's
//! precedence (AND before OR), which is the tree built here. Like fexpr, a
//! group may directly follow a comparison or group without an operator
//! (`(a = 1) (b = 2)`); it is joined with the last operator seen (AND at
//! first). Unlike fexpr, a group in operand position (`a = (b = 1)`) is an
//! error instead of silently dropping `a =`.

use super::ast::{Cmp, Expr, Op, Term};
use super::error::FilterError;
use super::lexer::{Lexer, Tok};

/// PocketBase's cap on the `filter` query parameter (bytes); the API layer
/// applies it (`MaxFilterLength`).
pub const MAX_FILTER_LENGTH: usize = 3500;
/// PocketBase's cap on comparisons per filter or rule (`DefaultFilterExprLimit`).
pub const MAX_EXPRESSIONS: usize = 200;
/// Our cap on parenthesis nesting (PocketBase has none; fexpr recurses).
pub const MAX_DEPTH: usize = 64;
/// Our cap on any text handed to the parser (rules included).
pub const MAX_INPUT_LENGTH: usize = 64 * 1024;

/// The bounds a parse runs under.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_len: usize,
    pub max_expressions: usize,
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_len: MAX_INPUT_LENGTH,
            max_expressions: MAX_EXPRESSIONS,
            max_depth: MAX_DEPTH,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Join {
    And,
    Or,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    BeforeSign,
    Sign,
    AfterSign,
    Join,
}

struct Parser<'s> {
    lexer: Lexer<'s>,
    src_len: usize,
    limits: Limits,
    count: usize,
}

/// Parses `src` under the default [`Limits`].
pub fn parse(src: &str) -> Result<Expr, FilterError> {
    parse_with(src, &Limits::default())
}

/// Parses `src` under `limits`.
pub fn parse_with(src: &str, limits: &Limits) -> Result<Expr, FilterError> {
    if src.len() > limits.max_len {
        return Err(FilterError::TooComplex(format!(
            "max filter length limit reached ({} bytes)",
            limits.max_len
        )));
    }
    let mut p = Parser {
        lexer: Lexer::new(src),
        src_len: src.len(),
        limits: *limits,
        count: 0,
    };
    p.group(0, None)
}

impl Parser<'_> {
    /// Parses a sequence up to EOF (`open` = None) or the `)` matching the
    /// `(` at byte `open`.
    fn group(&mut self, depth: usize, open: Option<usize>) -> Result<Expr, FilterError> {
        let mut items: Vec<(Join, Expr)> = Vec::new();
        let mut step = Step::BeforeSign;
        let mut join = Join::And;
        let mut left: Option<Term> = None;
        let mut op = Op::Eq;
        let end = loop {
            let t = self.lexer.next_token()?;
            match t.tok {
                Tok::Eof => {
                    if let Some(at) = open {
                        return Err(FilterError::parse(
                            at,
                            "invalid formatted group - missing closing bracket",
                        ));
                    }
                    break t.pos;
                }
                Tok::RParen => {
                    if open.is_none() {
                        return Err(FilterError::parse(t.pos, "unexpected character ')'"));
                    }
                    break t.pos;
                }
                Tok::LParen => {
                    if step != Step::BeforeSign && step != Step::Join {
                        return Err(FilterError::parse(t.pos, expected(step)));
                    }
                    if depth + 1 > self.limits.max_depth {
                        return Err(FilterError::TooComplex(format!(
                            "max nesting depth reached ({})",
                            self.limits.max_depth
                        )));
                    }
                    let inner = self.group(depth + 1, Some(t.pos))?;
                    items.push((join, inner));
                    step = Step::Join;
                }
                Tok::Term(term) => match step {
                    Step::BeforeSign => {
                        left = Some(term);
                        step = Step::Sign;
                    }
                    Step::AfterSign => {
                        self.count += 1;
                        if self.count > self.limits.max_expressions {
                            return Err(FilterError::TooComplex(format!(
                                "max filter expressions limit reached ({})",
                                self.limits.max_expressions
                            )));
                        }
                        let Some(l) = left.take() else {
                            return Err(FilterError::parse(t.pos, "missing left operand"));
                        };
                        items.push((
                            join,
                            Expr::Cmp(Cmp {
                                left: l,
                                op,
                                right: term,
                            }),
                        ));
                        step = Step::Join;
                    }
                    _ => return Err(FilterError::parse(t.pos, expected(step))),
                },
                Tok::Sign(o) => {
                    if step != Step::Sign {
                        return Err(FilterError::parse(t.pos, expected(step)));
                    }
                    op = o;
                    step = Step::AfterSign;
                }
                Tok::And | Tok::Or => {
                    if step != Step::Join {
                        return Err(FilterError::parse(t.pos, expected(step)));
                    }
                    join = if t.tok == Tok::And {
                        Join::And
                    } else {
                        Join::Or
                    };
                    step = Step::BeforeSign;
                }
            }
        };
        if step != Step::Join {
            let at = open.unwrap_or(0);
            if items.is_empty() && left.is_none() {
                return Err(FilterError::parse(at, "empty filter expression"));
            }
            return Err(FilterError::parse(
                end.min(self.src_len),
                "invalid or incomplete filter expression",
            ));
        }
        Ok(build(items))
    }
}

fn expected(step: Step) -> &'static str {
    match step {
        Step::BeforeSign => "expected left operand (identifier, function, text or number)",
        Step::Sign => "expected a sign operator",
        Step::AfterSign => "expected right operand (identifier, function, text or number)",
        Step::Join => "expected && or ||",
    }
}

/// Folds the flat `(join, item)` list into AND-chains separated by OR.
fn build(items: Vec<(Join, Expr)>) -> Expr {
    let mut ors: Vec<Vec<Expr>> = Vec::new();
    for (join, e) in items {
        match ors.last_mut() {
            Some(chain) if join == Join::And => chain.push(e),
            _ => ors.push(vec![e]),
        }
    }
    let mut ors: Vec<Expr> = ors
        .into_iter()
        .map(|mut chain| {
            if chain.len() == 1 {
                chain.remove(0)
            } else {
                Expr::And(chain)
            }
        })
        .collect();
    if ors.len() == 1 {
        ors.remove(0)
    } else {
        Expr::Or(ors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parse cases: input → canonical text (or `Err(byte offset)`).
    #[test]
    fn parse_cases() {
        let ok: &[(&str, &str)] = &[
            ("a = 1", "a = 1"),
            ("a=1&&b!='x'", "a = 1 && b != 'x'"),
            ("a > 1 || b < 2 && c ~ 'x'", "a > 1 || b < 2 && c ~ 'x'"),
            ("(a > 1 || b < 2) && c ~ 'x'", "(a > 1 || b < 2) && c ~ 'x'"),
            ("((((a = 1))))", "a = 1"),
            ("(a = 1) (b = 2)", "a = 1 && b = 2"),
            ("a = 1 || b = 2 (c = 3)", "a = 1 || b = 2 || c = 3"),
            (
                "a ?= 1 && a ?!= 1 && a ?~ 1 && a ?!~ 1",
                "a ?= 1 && a ?!= 1 && a ?~ 1 && a ?!~ 1",
            ),
            (
                "a ?< 1 && a ?<= 1 && a ?> 1 && a ?>= 1",
                "a ?< 1 && a ?<= 1 && a ?> 1 && a ?>= 1",
            ),
            ("a !~ 'x' // trailing comment", "a !~ 'x'"),
            ("// lead\na = @now", "a = @now"),
            ("\"it's\" = 'x'", "'it\\'s' = 'x'"),
            (
                "@request.body.tags:each ?= 'a'",
                "@request.body.tags:each ?= 'a'",
            ),
            (
                "@collection.posts:p.title = title",
                "@collection.posts:p.title = title",
            ),
            (
                "geoDistance(a.lon,a.lat, 1, -2.5) < 10",
                "geoDistance(a.lon, a.lat, 1, -2.5) < 10",
            ),
            (
                "strftime('%Y', created, 'start of month') = '2024'",
                "strftime('%Y', created, 'start of month') = '2024'",
            ),
            ("1 = 1", "1 = 1"),
            ("a\t=\n1", "a = 1"),
        ];
        for (src, want) in ok {
            let e = parse(src).unwrap_or_else(|e| panic!("{src:?}: {e}"));
            assert_eq!(e.to_string(), *want, "{src:?}");
            // The canonical text parses back to the same tree.
            let again = parse(&e.to_string()).unwrap_or_else(|e| panic!("{want:?}: {e}"));
            assert_eq!(strip_pos(&again), strip_pos(&e));
        }

        let bad: &[(&str, usize)] = &[
            ("", 0),
            ("   ", 0),
            ("// only", 0),
            ("()", 0),
            ("a = 1 && ()", 9),
            ("a", 1),
            ("a =", 3),
            ("a = 1 &&", 8),
            ("&& a = 1", 0),
            ("a = 1 b = 2", 6),
            ("a 'x'", 2),
            ("a == 1", 2),
            ("a = (b = 1)", 4),
            ("(a = 1", 0),
            ("a = 1)", 5),
            ("a = 1 &&& b = 1", 6),
            ("a = 1 | b = 1", 6),
            ("a = 1 and b = 1", 6),
            ("a = 'x", 4),
            ("a = 1e3", 5),
            ("a = 1\r", 5),
            ("a = (", 4),
        ];
        for (src, pos) in bad {
            match parse(src) {
                Err(FilterError::Parse { pos: p, .. }) => assert_eq!(p, *pos, "{src:?}"),
                other => panic!("{src:?}: {other:?}"),
            }
        }
    }

    fn strip_pos(e: &Expr) -> String {
        format!("{e}")
    }

    #[test]
    fn limits() {
        let many = vec!["a = 1"; MAX_EXPRESSIONS].join(" && ");
        assert!(parse(&many).is_ok());
        let too_many = vec!["a = 1"; MAX_EXPRESSIONS + 1].join(" || ");
        assert!(matches!(parse(&too_many), Err(FilterError::TooComplex(_))));

        let deep = format!("{}a = 1{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(parse(&deep).is_ok());
        let deeper = format!(
            "{}a = 1{}",
            "(".repeat(MAX_DEPTH + 1),
            ")".repeat(MAX_DEPTH + 1)
        );
        assert!(matches!(parse(&deeper), Err(FilterError::TooComplex(_))));
        // Far deeper than the stack would allow without the cap.
        let hostile = "(".repeat(200_000);
        assert!(parse_with(
            &hostile,
            &Limits {
                max_len: usize::MAX,
                ..Limits::default()
            }
        )
        .is_err());

        let long = format!("a = '{}'", "x".repeat(MAX_INPUT_LENGTH));
        assert!(matches!(parse(&long), Err(FilterError::TooComplex(_))));
        let short = Limits {
            max_len: MAX_FILTER_LENGTH,
            ..Limits::default()
        };
        assert!(parse_with(&format!("a = '{}'", "x".repeat(MAX_FILTER_LENGTH)), &short).is_err());
    }

    #[test]
    fn tree_shape() {
        let e = parse("a = 1 || b = 2 && c = 3 || d = 4").unwrap_or_else(|e| panic!("{e}"));
        match e {
            Expr::Or(v) => {
                assert_eq!(v.len(), 3);
                assert!(matches!(&v[1], Expr::And(a) if a.len() == 2));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse("(a=1 || b=2) && c=3").map(|e| e.count()).ok(),
            Some(3)
        );
    }
}
