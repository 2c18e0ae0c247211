//! Reader for nats-server's `.conf` format (see nats-server's `conf/lex.go` and `conf/parse.go`
//! for the original; this is an independent implementation of the same language).
//!
//! - `lexer`: positions, comments, keys and scalar values (strings, numbers with size suffixes,
//!   booleans, datetimes, `$variables`).
//! - `parser`: maps, arrays, separators and terminators, variable scoping, includes.
//! - `value`: the located tree both config formats produce.
//!
//! Reading is sans-IO except for what the [`Environment`] provides (include files and
//! environment variables), so tests and the fuzzer run without touching the machine.

mod error;
mod lexer;
mod parser;
pub mod value;

use std::io;
use std::path::Path;
use std::sync::Arc;

pub use error::{ParseError, ParseErrorKind};
pub use value::{Entry, Location, Map, Node, Value};

/// What the reader needs from the outside world.
pub trait Environment {
    /// The text of an included file.
    fn read_file(&self, path: &Path) -> io::Result<String>;
    /// An environment variable, the fallback for `$name` when no key in scope matches.
    fn var(&self, name: &str) -> Option<String>;
}

/// The real file system and process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemEnvironment;

impl Environment for SystemEnvironment {
    fn read_file(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn var(&self, name: &str) -> Option<String> {
        // Names the OS cannot hold are simply absent (std may panic on them).
        if name.is_empty() || name.contains(['=', '\0']) {
            return None;
        }
        std::env::var(name).ok()
    }
}

/// Parses `.conf` text read from `origin`; `include` paths are relative to `origin`'s folder.
pub fn parse(text: &str, origin: &Path, env: &dyn Environment) -> Result<Map, ParseError> {
    let mut shared = parser::Shared::new(env);
    parser::Parser::new(text, Arc::from(origin), &mut shared, 0).parse_document()
}

#[cfg(test)]
mod tests;
