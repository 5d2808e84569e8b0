//! TraceQL's tokens. Attribute names follow Tempo's lexer: after a scope (`span.`, `resource.`, `.`,
//! …) every character up to whitespace or one of `{}()=~!<>&|^,` belongs to the name, so
//! `span.http.status_code` and `.k8s.pod-name` are one name each; `"quoted parts"` may hold any.

use super::ParseError;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A keyword or bare word (`count`, `duration`, `ok`, `by`, …).
    Word(String),
    /// A scoped attribute: scope (`span`, `resource`, `event`, `link`, `instrumentation`, or
    /// empty for `.name`), whether `parent.` came first, and the name.
    Attribute {
        scope: String,
        parent: bool,
        name: String,
    },
    /// A scoped intrinsic such as `span:duration`: scope and name.
    Intrinsic {
        scope: String,
        name: String,
    },
    Str(String),
    Int(i64),
    Float(f64),
    /// Nanoseconds.
    Duration(i64),
    /// Punctuation and operators, as written (`{`, `&&`, `!>>`, …).
    Sym(&'static str),
    End,
}

impl Tok {
    /// How an error message names this token.
    pub fn describe(&self) -> String {
        match self {
            Tok::Word(w) => format!("`{w}`"),
            Tok::Attribute { .. } => "an attribute".into(),
            Tok::Intrinsic { scope, name } => format!("`{scope}:{name}`"),
            Tok::Str(_) => "a string".into(),
            Tok::Int(_) | Tok::Float(_) => "a number".into(),
            Tok::Duration(_) => "a duration".into(),
            Tok::Sym(s) => format!("`{s}`"),
            Tok::End => "the end of the query".into(),
        }
    }
}

/// A token and the byte offset where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub at: usize,
}

/// Operators, longest first so that the longest match wins (`!>>` before `!>` before `!`).
const SYMBOLS: &[&str] = &[
    "!>>", "!<<", "&>>", "&<<", "&&", "||", "!=", "=~", "!~", ">=", "<=", ">>", "<<", "!>", "!<",
    "&~", "&>", "&<", "{", "}", "(", ")", ",", "=", ">", "<", "~", "!", "|", "+", "-", "*", "/",
    "%", "^",
];

const ATTRIBUTE_SCOPES: &[&str] = &["span", "resource", "event", "link", "instrumentation"];
const INTRINSIC_SCOPES: &[&str] = &["trace", "span", "event", "link", "instrumentation"];

fn is_attribute_char(c: char) -> bool {
    !c.is_whitespace()
        && !matches!(
            c,
            '{' | '}' | '(' | ')' | '=' | '~' | '!' | '<' | '>' | '&' | '|' | '^' | ','
        )
}

fn is_word_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

struct Lexer<'a> {
    text: &'a str,
    at: usize,
}

pub fn tokens(text: &str) -> Result<Vec<Token>, ParseError> {
    let mut lexer = Lexer { text, at: 0 };
    let mut out = Vec::new();
    loop {
        lexer.skip_space();
        let at = lexer.at;
        let tok = lexer.next_token()?;
        let end = tok == Tok::End;
        out.push(Token { tok, at });
        if end {
            return Ok(out);
        }
    }
}

impl Lexer<'_> {
    fn rest(&self) -> &str {
        &self.text[self.at..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn error(&self, at: usize, message: impl Into<String>) -> ParseError {
        ParseError::new(self.text, at, message)
    }

    fn skip_space(&mut self) {
        while let Some(c) = self.peek() {
            if !c.is_whitespace() {
                break;
            }
            self.at += c.len_utf8();
        }
    }

    fn next_token(&mut self) -> Result<Tok, ParseError> {
        let Some(c) = self.peek() else {
            return Ok(Tok::End);
        };
        let start = self.at;
        if c == '"' || c == '`' {
            return self.string().map(Tok::Str);
        }
        let next_is_digit = self.rest()[c.len_utf8()..]
            .chars()
            .next()
            .is_some_and(|d| d.is_ascii_digit());
        if c.is_ascii_digit() || (c == '.' && next_is_digit) {
            return self.number();
        }
        if c == '.' {
            self.at += 1;
            return self.attribute(String::new(), false, start);
        }
        if is_word_start(c) {
            let word = self.word();
            if self.peek() == Some('.') {
                if word == "parent" {
                    self.at += 1;
                    return self.parent_attribute(start);
                }
                if ATTRIBUTE_SCOPES.contains(&word.as_str()) {
                    self.at += 1;
                    return self.attribute(word, false, start);
                }
            }
            if self.peek() == Some(':') && INTRINSIC_SCOPES.contains(&word.as_str()) {
                self.at += 1;
                let name_at = self.at;
                if !self.peek().is_some_and(is_word_start) {
                    return Err(
                        self.error(name_at, format!("expected an intrinsic after `{word}:`"))
                    );
                }
                let name = self.word();
                return Ok(Tok::Intrinsic { scope: word, name });
            }
            return Ok(Tok::Word(word));
        }
        for symbol in SYMBOLS {
            if self.rest().starts_with(symbol) {
                self.at += symbol.len();
                return Ok(Tok::Sym(symbol));
            }
        }
        Err(self.error(start, format!("unexpected character `{c}`")))
    }

    fn word(&mut self) -> String {
        let start = self.at;
        while self.peek().is_some_and(is_word_char) {
            self.at += 1;
        }
        self.text[start..self.at].to_string()
    }

    /// After `parent.`: `span.x`, `resource.x` or `x`.
    fn parent_attribute(&mut self, start: usize) -> Result<Tok, ParseError> {
        for scope in ["span", "resource"] {
            if self.rest().starts_with(scope) && self.rest()[scope.len()..].starts_with('.') {
                self.at += scope.len() + 1;
                return self.attribute(scope.to_string(), true, start);
            }
        }
        self.attribute(String::new(), true, start)
    }

    fn attribute(&mut self, scope: String, parent: bool, start: usize) -> Result<Tok, ParseError> {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c == '"' {
                name.push_str(&self.quoted_name()?);
            } else if is_attribute_char(c) {
                name.push(c);
                self.at += c.len_utf8();
            } else {
                break;
            }
        }
        if name.is_empty() {
            return Err(self.error(start, "expected an attribute name after the scope"));
        }
        Ok(Tok::Attribute {
            scope,
            parent,
            name,
        })
    }

    /// A `"…"` part of an attribute name: `\"` and `\\` are its only escapes.
    fn quoted_name(&mut self) -> Result<String, ParseError> {
        let start = self.at;
        self.at += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.error(start, "unterminated quoted attribute name"));
            };
            self.at += c.len_utf8();
            match c {
                '"' => return Ok(out),
                '\\' => match self.peek() {
                    Some(e @ ('"' | '\\')) => {
                        out.push(e);
                        self.at += 1;
                    }
                    _ => return Err(self.error(self.at - 1, "invalid escape in attribute name")),
                },
                c => out.push(c),
            }
        }
    }

    /// A `"…"` string with Go's escapes, or a raw `` `…` `` string.
    fn string(&mut self) -> Result<String, ParseError> {
        let start = self.at;
        let quote = self.peek().expect("called on a quote");
        self.at += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.error(start, "unterminated string"));
            };
            self.at += c.len_utf8();
            if c == quote {
                return Ok(out);
            }
            if c != '\\' || quote == '`' {
                out.push(c);
                continue;
            }
            let escape_at = self.at - 1;
            let Some(e) = self.peek() else {
                return Err(self.error(start, "unterminated string"));
            };
            self.at += e.len_utf8();
            match e {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                '0' => out.push('\0'),
                'a' => out.push('\x07'),
                'b' => out.push('\x08'),
                'f' => out.push('\x0c'),
                'v' => out.push('\x0b'),
                '\\' | '"' | '\'' => out.push(e),
                'u' | 'U' | 'x' => {
                    let digits = match e {
                        'x' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let hex = self.rest().get(..digits).unwrap_or("");
                    let code = u32::from_str_radix(hex, 16)
                        .ok()
                        .filter(|_| hex.len() == digits)
                        .and_then(char::from_u32)
                        .ok_or_else(|| self.error(escape_at, "invalid escape in string"))?;
                    out.push(code);
                    self.at += digits;
                }
                _ => return Err(self.error(escape_at, format!("invalid escape `\\{e}` in string"))),
            }
        }
    }

    /// An integer, a float, or a duration (`1ms`, `1.5s`, `1h30m`).
    fn number(&mut self) -> Result<Tok, ParseError> {
        let start = self.at;
        let numeric = |c: char| c.is_ascii_digit() || c == '.';
        let unit = |c: char| matches!(c, 'n' | 'u' | 'µ' | 'μ' | 'm' | 's' | 'h' | 'd' | 'w' | 'y');
        let mut end = self.at;
        let mut has_unit = false;
        for (i, c) in self.rest().char_indices() {
            if numeric(c) || unit(c) {
                has_unit |= unit(c);
                end = self.at + i + c.len_utf8();
            } else {
                break;
            }
        }
        let text = &self.text[start..end];
        if has_unit {
            if let Some(ns) = parse_duration(text) {
                self.at = end;
                return Ok(Tok::Duration(ns));
            }
        }
        // Not a duration: the number alone.
        let mut end = self.at;
        for (i, c) in self.rest().char_indices() {
            let exponent = (c == 'e' || c == 'E') && i > 0;
            let exponent_sign =
                (c == '-' || c == '+') && self.text[..self.at + i].ends_with(['e', 'E']);
            if numeric(c) || exponent || exponent_sign {
                end = self.at + i + 1;
            } else {
                break;
            }
        }
        let text = &self.text[start..end];
        self.at = end;
        if let Ok(i) = text.parse::<i64>() {
            return Ok(Tok::Int(i));
        }
        text.parse::<f64>()
            .map(Tok::Float)
            .map_err(|_| self.error(start, format!("invalid number `{text}`")))
    }
}

/// `1h30m`, `1.5s`, `250ms`, `2d`: the sum of number-unit pairs, in nanoseconds (Go's and
/// Prometheus's duration units, `µs` in either spelling).
pub fn parse_duration(text: &str) -> Option<i64> {
    let mut total = 0f64;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let units: &[(&str, f64)] = &[
            ("ns", 1.0),
            ("us", 1e3),
            ("µs", 1e3),
            ("μs", 1e3),
            ("ms", 1e6),
            ("s", 1e9),
            ("m", 60e9),
            ("h", 3600e9),
            ("d", 86400e9),
            ("w", 7.0 * 86400e9),
            ("y", 365.0 * 86400e9),
        ];
        let (unit, scale) = units.iter().find(|(u, _)| rest.starts_with(u))?;
        rest = &rest[unit.len()..];
        total += number * scale;
    }
    (total.is_finite() && total < i64::MAX as f64).then_some(total.round() as i64)
}
