//! TraceQL, the query language of Grafana Tempo: parsing ([`parse`]) and evaluation over one trace
//! at a time ([`eval`]). The search engine over every source is in `crate::traceql_search`.

mod ast;
pub mod eval;
mod lexer;
mod parser;
pub mod pushdown;
pub mod trace;
mod value;

use std::fmt;

pub use ast::*;
pub use lexer::parse_duration;
pub use parser::{parse, parse_field, MAX_DEPTH, MAX_TOKENS};
pub use value::{duration_text, Value};

/// Why a query could not be parsed: where (a byte offset, and the line and column a user sees) and
/// what was expected there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub offset: usize,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(text: &str, offset: usize, message: impl Into<String>) -> ParseError {
        let before = &text[..offset.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        ParseError {
            offset,
            line,
            column,
            message: message.into(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "parse error at line {}, col {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl std::error::Error for ParseError {}

#[cfg(test)]
mod eval_tests;
#[cfg(test)]
mod parser_tests;
