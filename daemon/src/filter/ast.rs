//! The filter AST: comparisons joined by `&&`/`||` (AND binds tighter, as
//! in SQL), operands that are identifiers, literals or function calls.

use std::fmt;

/// A parsed filter or rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Cmp(Cmp),
    /// Two or more expressions joined by `&&`.
    And(Vec<Expr>),
    /// Two or more expressions joined by `||`.
    Or(Vec<Expr>),
}

/// `left op right`.
#[derive(Debug, Clone, PartialEq)]
pub struct Cmp {
    pub left: Term,
    pub op: Op,
    pub right: Term,
}

/// An operand.
#[derive(Debug, Clone, PartialEq)]
pub enum Term {
    /// A field path, `@request.*`/`@collection.*` path, macro (`@now`) or
    /// `null`/`true`/`false`; `pos` is its byte offset in the source.
    Ident { name: String, pos: usize },
    /// A quoted string, unescaped.
    Text(String),
    /// A number literal as written (`-1`, `2.5`).
    Number(String),
    /// `name(args...)`.
    Func {
        name: String,
        args: Vec<Term>,
        pos: usize,
    },
}

/// Comparison operators; the `Any*` forms are PocketBase's `?`-prefixed
/// "at least one of" operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Neq,
    Like,
    NotLike,
    Lt,
    Lte,
    Gt,
    Gte,
    AnyEq,
    AnyNeq,
    AnyLike,
    AnyNotLike,
    AnyLt,
    AnyLte,
    AnyGt,
    AnyGte,
}

impl Op {
    pub fn from_sign(s: &str) -> Option<Op> {
        Some(match s {
            "=" => Op::Eq,
            "!=" => Op::Neq,
            "~" => Op::Like,
            "!~" => Op::NotLike,
            "<" => Op::Lt,
            "<=" => Op::Lte,
            ">" => Op::Gt,
            ">=" => Op::Gte,
            "?=" => Op::AnyEq,
            "?!=" => Op::AnyNeq,
            "?~" => Op::AnyLike,
            "?!~" => Op::AnyNotLike,
            "?<" => Op::AnyLt,
            "?<=" => Op::AnyLte,
            "?>" => Op::AnyGt,
            "?>=" => Op::AnyGte,
            _ => return None,
        })
    }

    pub fn sign(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Neq => "!=",
            Op::Like => "~",
            Op::NotLike => "!~",
            Op::Lt => "<",
            Op::Lte => "<=",
            Op::Gt => ">",
            Op::Gte => ">=",
            Op::AnyEq => "?=",
            Op::AnyNeq => "?!=",
            Op::AnyLike => "?~",
            Op::AnyNotLike => "?!~",
            Op::AnyLt => "?<",
            Op::AnyLte => "?<=",
            Op::AnyGt => "?>",
            Op::AnyGte => "?>=",
        }
    }

    /// Whether this is an "any of" (`?`) operator.
    pub fn is_any(self) -> bool {
        matches!(
            self,
            Op::AnyEq
                | Op::AnyNeq
                | Op::AnyLike
                | Op::AnyNotLike
                | Op::AnyLt
                | Op::AnyLte
                | Op::AnyGt
                | Op::AnyGte
        )
    }

    /// The plain operator with the same comparison.
    pub fn base(self) -> Op {
        match self {
            Op::AnyEq => Op::Eq,
            Op::AnyNeq => Op::Neq,
            Op::AnyLike => Op::Like,
            Op::AnyNotLike => Op::NotLike,
            Op::AnyLt => Op::Lt,
            Op::AnyLte => Op::Lte,
            Op::AnyGt => Op::Gt,
            Op::AnyGte => Op::Gte,
            other => other,
        }
    }
}

impl Expr {
    /// Number of comparisons (PocketBase's "expressions").
    pub fn count(&self) -> usize {
        match self {
            Expr::Cmp(_) => 1,
            Expr::And(v) | Expr::Or(v) => v.iter().map(Expr::count).sum(),
        }
    }

    /// Calls `f` on every operand, function arguments included.
    pub fn visit_terms<'a>(&'a self, f: &mut impl FnMut(&'a Term)) {
        fn term<'a>(t: &'a Term, f: &mut impl FnMut(&'a Term)) {
            f(t);
            if let Term::Func { args, .. } = t {
                for a in args {
                    term(a, f);
                }
            }
        }
        match self {
            Expr::Cmp(c) => {
                term(&c.left, f);
                term(&c.right, f);
            }
            Expr::And(v) | Expr::Or(v) => {
                for e in v {
                    e.visit_terms(f);
                }
            }
        }
    }
}

fn write_text(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("'")?;
    for c in s.chars() {
        match c {
            '\\' => f.write_str("\\\\")?,
            '\'' => f.write_str("\\'")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("'")
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Term::Ident { name, .. } => f.write_str(name),
            Term::Text(s) => write_text(f, s),
            Term::Number(n) => f.write_str(n),
            Term::Func { name, args, .. } => {
                write!(f, "{name}(")?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
        }
    }
}

/// The canonical filter text: parses back to the same AST.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Cmp(c) => write!(f, "{} {} {}", c.left, c.op.sign(), c.right),
            Expr::And(v) | Expr::Or(v) => {
                let sep = if matches!(self, Expr::And(_)) {
                    " && "
                } else {
                    " || "
                };
                for (i, e) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(sep)?;
                    }
                    // AND binds tighter than OR: only an OR inside an AND,
                    // or a group of the same kind, needs its parentheses.
                    let bare = matches!((self, e), (_, Expr::Cmp(_)) | (Expr::Or(_), Expr::And(_)));
                    if bare {
                        write!(f, "{e}")?;
                    } else {
                        write!(f, "({e})")?;
                    }
                }
                Ok(())
            }
        }
    }
}
