//! The filter lexer: PocketBase's (fexpr's) token grammar.
//!
//! - whitespace is space, tab and newline only (CR is an error, as in PocketBase);
//! - `//` starts a comment to the end of the line;
//! - identifiers start with an ASCII letter, `@`, `_` or `#` and go on with
//!   letters, digits, `_`, `.` and `:`; they may not end in `.`/`:` nor be a
//!   lone special character;
//! - an identifier immediately followed by `(` is a function call whose
//!   arguments are identifiers, numbers, strings or calls (three levels deep);
//! - numbers are `-?[0-9.]+` with at most one dot, not starting or ending with it;
//! - strings are single- or double-quoted; `\\`, `\'`, `\"`, `\n`, `\t`, `\r`
//!   are escapes, any other backslash is kept as written;
//! - NUL is rejected everywhere (PocketBase treats it as end of input).

use super::ast::{Op, Term};
use super::error::FilterError;

/// How deep function calls may nest (`a(b(c()))`), as in fexpr.
pub const MAX_FUNC_DEPTH: usize = 3;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Term(Term),
    Sign(Op),
    And,
    Or,
    LParen,
    RParen,
    Eof,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub pos: usize,
}

pub(crate) struct Lexer<'s> {
    src: &'s str,
    pos: usize,
}

fn is_ws(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\n'
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || is_special_start(c)
}

fn is_special_start(c: char) -> bool {
    c == '@' || c == '_' || c == '#'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == ':'
}

fn is_sign_char(c: char) -> bool {
    matches!(c, '=' | '?' | '!' | '>' | '<' | '~')
}

fn is_join_char(c: char) -> bool {
    c == '&' || c == '|'
}

fn is_valid_identifier(s: &str) -> bool {
    match s.chars().last() {
        None => false,
        Some(last) => {
            last != '.' && last != ':' && !(s.len() == 1 && s.starts_with(is_special_start))
        }
    }
}

impl<'s> Lexer<'s> {
    pub fn new(src: &'s str) -> Self {
        Lexer { src, pos: 0 }
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    /// Skips whitespace and comments.
    fn skip_trivia(&mut self) -> Result<(), FilterError> {
        loop {
            match self.peek() {
                Some(c) if is_ws(c) => {
                    self.pos += 1;
                }
                Some('/') => self.comment()?,
                _ => return Ok(()),
            }
        }
    }

    fn comment(&mut self) -> Result<(), FilterError> {
        let start = self.pos;
        if !self.src[self.pos..].starts_with("//") {
            return Err(FilterError::parse(start, "invalid comment"));
        }
        self.pos += 2;
        while let Some(c) = self.bump() {
            if c == '\n' {
                break;
            }
            if c == '\0' {
                return Err(FilterError::parse(
                    self.pos - 1,
                    "unexpected character '\\0'",
                ));
            }
        }
        Ok(())
    }

    pub fn next_token(&mut self) -> Result<Token, FilterError> {
        self.skip_trivia()?;
        let pos = self.pos;
        let Some(c) = self.peek() else {
            return Ok(Token { tok: Tok::Eof, pos });
        };
        let tok = if c == '(' {
            self.pos += 1;
            Tok::LParen
        } else if c == ')' {
            self.pos += 1;
            Tok::RParen
        } else if is_ident_start(c) {
            Tok::Term(self.identifier(MAX_FUNC_DEPTH)?)
        } else if c == '-' || c.is_ascii_digit() {
            Tok::Term(self.number()?)
        } else if c == '\'' || c == '"' {
            Tok::Term(self.text()?)
        } else if is_sign_char(c) {
            let s = self.run(is_sign_char);
            match Op::from_sign(s) {
                Some(op) => Tok::Sign(op),
                None => {
                    return Err(FilterError::parse(
                        pos,
                        format!("invalid sign operator {s:?}"),
                    ));
                }
            }
        } else if is_join_char(c) {
            match self.run(is_join_char) {
                "&&" => Tok::And,
                "||" => Tok::Or,
                s => {
                    return Err(FilterError::parse(
                        pos,
                        format!("invalid join operator {s:?}"),
                    ));
                }
            }
        } else {
            return Err(FilterError::parse(
                pos,
                format!("unexpected character {c:?}"),
            ));
        };
        Ok(Token { tok, pos })
    }

    /// Consumes the longest run of characters satisfying `f`.
    fn run(&mut self, f: impl Fn(char) -> bool) -> &'s str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if !f(c) {
                break;
            }
            self.pos += c.len_utf8();
        }
        &self.src[start..self.pos]
    }

    fn identifier(&mut self, func_depth: usize) -> Result<Term, FilterError> {
        let start = self.pos;
        self.bump();
        self.run(is_ident_char);
        let name = &self.src[start..self.pos];
        if self.peek() == Some('(') {
            if func_depth == 0 {
                return Err(FilterError::parse(
                    start,
                    format!("max nested function arguments reached (max: {MAX_FUNC_DEPTH})"),
                ));
            }
            if !is_valid_identifier(name) {
                return Err(FilterError::parse(
                    start,
                    format!("invalid function name {name:?}"),
                ));
            }
            return self.function_args(name.to_string(), start, func_depth);
        }
        if !is_valid_identifier(name) {
            return Err(FilterError::parse(
                start,
                format!("invalid identifier {name:?}"),
            ));
        }
        Ok(Term::Ident {
            name: name.to_string(),
            pos: start,
        })
    }

    fn function_args(
        &mut self,
        name: String,
        start: usize,
        depth: usize,
    ) -> Result<Term, FilterError> {
        self.pos += 1; // '('
        let mut args = Vec::new();
        let mut expect_comma = false;
        loop {
            let at = self.pos;
            let Some(c) = self.peek() else {
                return Err(FilterError::parse(
                    at,
                    format!("invalid or incomplete function {name:?} (expected ')')"),
                ));
            };
            if c == ')' {
                self.pos += 1;
                return Ok(Term::Func {
                    name,
                    args,
                    pos: start,
                });
            }
            if is_ws(c) {
                self.pos += 1;
                continue;
            }
            if c == '/' {
                self.comment()?;
                continue;
            }
            let is_comma = c == ',';
            if expect_comma && !is_comma {
                return Err(FilterError::parse(
                    at,
                    format!("expected comma after the last argument in function {name:?}"),
                ));
            }
            if !expect_comma && is_comma {
                return Err(FilterError::parse(
                    at,
                    format!("unexpected comma in function {name:?}"),
                ));
            }
            expect_comma = false;
            if is_comma {
                self.pos += 1;
                continue;
            }
            let arg = if is_ident_start(c) {
                self.identifier(depth - 1)?
            } else if c == '-' || c.is_ascii_digit() {
                self.number()?
            } else if c == '\'' || c == '"' {
                self.text()?
            } else {
                return Err(FilterError::parse(
                    at,
                    format!("unsupported argument character {c:?} in function {name:?}"),
                ));
            };
            args.push(arg);
            expect_comma = true;
        }
    }

    fn number(&mut self) -> Result<Term, FilterError> {
        let start = self.pos;
        let mut had_dot = false;
        while let Some(c) = self.peek() {
            let ok =
                c.is_ascii_digit() || (c == '-' && self.pos == start) || (c == '.' && !had_dot);
            if !ok {
                break;
            }
            had_dot |= c == '.';
            self.pos += 1;
        }
        let lit = &self.src[start..self.pos];
        if lit == "-" || lit.starts_with('.') || lit.ends_with('.') {
            return Err(FilterError::parse(start, format!("invalid number {lit:?}")));
        }
        Ok(Term::Number(lit.to_string()))
    }

    fn text(&mut self) -> Result<Term, FilterError> {
        let start = self.pos;
        let quote = self.bump();
        let mut out = String::new();
        loop {
            match self.bump() {
                None | Some('\0') => {
                    return Err(FilterError::parse(
                        start,
                        "invalid quoted text (missing closing quote)",
                    ));
                }
                Some('\\') => match self.bump() {
                    None | Some('\0') => {
                        return Err(FilterError::parse(
                            start,
                            "invalid quoted text (missing closing quote)",
                        ));
                    }
                    Some('\\') => out.push('\\'),
                    Some('\'') => out.push('\''),
                    Some('"') => out.push('"'),
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some(other) => {
                        out.push('\\');
                        out.push(other);
                    }
                },
                Some(c) if Some(c) == quote => return Ok(Term::Text(out)),
                Some(c) => out.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Result<Vec<Tok>, FilterError> {
        let mut l = Lexer::new(src);
        let mut out = Vec::new();
        loop {
            let t = l.next_token()?;
            if t.tok == Tok::Eof {
                return Ok(out);
            }
            out.push(t.tok);
        }
    }

    fn ident(name: &str, pos: usize) -> Tok {
        Tok::Term(Term::Ident {
            name: name.into(),
            pos,
        })
    }

    #[test]
    fn tokens() {
        assert_eq!(
            toks("a.b:each >= -1.5 && 'x' || (c)").unwrap(),
            vec![
                ident("a.b:each", 0),
                Tok::Sign(Op::Gte),
                Tok::Term(Term::Number("-1.5".into())),
                Tok::And,
                Tok::Term(Term::Text("x".into())),
                Tok::Or,
                Tok::LParen,
                ident("c", 28),
                Tok::RParen,
            ]
        );
        assert_eq!(
            toks("a//c\n=b // end").unwrap(),
            vec![ident("a", 0), Tok::Sign(Op::Eq), ident("b", 6)]
        );
        assert_eq!(
            toks("-.5").unwrap(),
            vec![Tok::Term(Term::Number("-.5".into()))]
        );
    }

    #[test]
    fn text_escapes() {
        for (src, want) in [
            (r"'it\'s'", "it's"),
            (r#""it\"s""#, "it\"s"),
            (r#"'a\"b'"#, "a\"b"),
            (r"'a\\'", "a\\"),
            (r"'a\\b'", "a\\b"),
            (r"'a\b'", "a\\b"),
            (r"'a\nb\tc\rd'", "a\nb\tc\rd"),
            (r"'100\%'", "100\\%"),
            ("'raw\nnewline'", "raw\nnewline"),
            ("'é✓'", "é✓"),
            ("\"'\"", "'"),
        ] {
            assert_eq!(
                toks(src).unwrap(),
                vec![Tok::Term(Term::Text(want.into()))],
                "{src}"
            );
        }
    }

    #[test]
    fn functions() {
        let t = toks("geoDistance(a.lon, -1, 'x' ,2,)").unwrap();
        assert_eq!(
            t,
            vec![Tok::Term(Term::Func {
                name: "geoDistance".into(),
                args: vec![
                    Term::Ident {
                        name: "a.lon".into(),
                        pos: 12
                    },
                    Term::Number("-1".into()),
                    Term::Text("x".into()),
                    Term::Number("2".into()),
                ],
                pos: 0
            })]
        );
        assert!(toks("a(b(c(1)))").is_ok());
        assert!(toks("a(b(c(d())))").is_err());
        assert!(toks("f(// c\n1)").is_ok());
    }

    #[test]
    fn errors_carry_positions() {
        for (src, pos) in [
            ("a = 'x", 4),
            ("a =! 1", 2),
            ("a & b", 2),
            ("a = 1.", 4),
            ("a = -", 4),
            ("a = .5", 4),
            ("a. = 1", 0),
            ("a: = 1", 0),
            ("@ = 1", 0),
            ("a = 1 / b", 6),
            ("a\r= 1", 1),
            ("a\0= 1", 1),
            ("títle", 1),
            ("f(1 2)", 4),
            ("f(,1)", 2),
            ("f(1", 3),
            ("f(;)", 2),
            ("a = 'x\0'", 4),
        ] {
            match toks(src) {
                Err(FilterError::Parse { pos: p, .. }) => assert_eq!(p, pos, "{src:?}"),
                other => panic!("{src:?}: {other:?}"),
            }
        }
    }
}
