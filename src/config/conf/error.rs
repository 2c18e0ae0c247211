//! Errors of the `.conf` reader. Each carries the place in the file where reading stopped.

use std::path::PathBuf;

use super::value::Location;

/// A syntax or resolution error in a `.conf` file, at `file:line:col`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{location}: {kind}")]
pub struct ParseError {
    pub location: Location,
    pub kind: ParseErrorKind,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseErrorKind {
    #[error("unexpected {found}, expected {expected}")]
    Unexpected { found: String, expected: &'static str },
    #[error("unterminated quoted string")]
    UnterminatedString,
    #[error("unterminated block string: '(' needs a ')' alone on a line")]
    UnterminatedBlock,
    #[error("invalid escape '\\{0}'; allowed: \\xXX, \\t, \\n, \\r, \\\", \\\\")]
    InvalidEscape(String),
    #[error("'\\x' must be followed by two hexadecimal digits")]
    InvalidHexEscape,
    #[error("escaped bytes do not form valid UTF-8")]
    InvalidUtf8,
    #[error("integer {0:?} is out of range")]
    IntegerOutOfRange(String),
    #[error("invalid float {0:?}")]
    InvalidFloat(String),
    #[error("invalid datetime: ISO-8601 dates must be in full Zulu form (2006-01-02T15:04:05Z)")]
    InvalidDateTime,
    #[error("variable reference \"${0}\" can not be found (no such key in scope and no such environment variable)")]
    VariableNotFound(String),
    #[error("variable reference cycle for \"${0}\"")]
    VariableCycle(String),
    #[error("error reading include file {path:?}: {reason}")]
    Include { path: PathBuf, reason: String },
    #[error("include cycle: {0:?} includes itself")]
    IncludeCycle(PathBuf),
    #[error("variables expand to more than {0} values")]
    TooLarge(usize),
    #[error("nesting deeper than {0} levels (maps, arrays, includes and variables)")]
    TooDeep(usize),
}
