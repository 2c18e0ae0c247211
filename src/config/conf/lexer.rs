//! Character-level scanning of the `.conf` format: positions, blanks, comments, keys and scalar
//! values. The structure (maps, arrays, separators, variables, includes) is the parser's job;
//! what a token means depends on where it is, so the parser asks for the token it expects.

use std::path::Path;
use std::sync::Arc;

use super::error::{ParseError, ParseErrorKind};
use super::value::Location;
use crate::config::units::size_multiplier;

/// A scalar value token, before variables are resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    String(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
    DateTime(String),
    /// `$name`, resolved by the parser against enclosing maps and then the environment.
    Variable(String),
}

/// A cursor over the text that knows its line and column.
pub struct Scanner<'a> {
    text: &'a str,
    /// Byte offset; always on a char boundary because it only moves by whole chars.
    pos: usize,
    line: u32,
    column: u32,
    file: Arc<Path>,
}

impl<'a> Scanner<'a> {
    pub fn new(text: &'a str, file: Arc<Path>) -> Self {
        Scanner { text, pos: 0, line: 1, column: 1, file }
    }

    pub fn file(&self) -> &Arc<Path> {
        &self.file
    }

    pub fn location(&self) -> Location {
        Location { file: self.file.clone(), line: self.line, column: self.column }
    }

    pub fn error(&self, kind: ParseErrorKind) -> ParseError {
        ParseError { location: self.location(), kind }
    }

    /// An "unexpected X, expected Y" error at the current character.
    pub fn unexpected(&self, expected: &'static str) -> ParseError {
        let found = match self.peek() {
            None => "end of file".to_string(),
            Some('\n') | Some('\r') => "new line".to_string(),
            Some(c) => format!("'{c}'"),
        };
        self.error(ParseErrorKind::Unexpected { found, expected })
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or("")
    }

    pub fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    pub fn peek_second(&self) -> Option<char> {
        self.rest().chars().nth(1)
    }

    pub fn at_eof(&self) -> bool {
        self.pos >= self.text.len()
    }

    pub fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    /// Consumes `c` if it is next.
    pub fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.bump();
            true
        } else {
            false
        }
    }

    /// Skips spaces and tabs (not new lines: they end items).
    pub fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.bump();
        }
    }

    /// True at `#` or `//`.
    pub fn at_comment(&self) -> bool {
        match self.peek() {
            Some('#') => true,
            Some('/') => self.peek_second() == Some('/'),
            _ => false,
        }
    }

    /// Skips a comment up to (not including) the end of its line.
    pub fn skip_comment(&mut self) {
        while !matches!(self.peek(), None | Some('\n' | '\r')) {
            self.bump();
        }
    }

    /// Skips blanks, new lines and comments.
    pub fn skip_blank_lines(&mut self) {
        loop {
            match self.peek() {
                Some(c) if c.is_whitespace() => {
                    self.bump();
                }
                _ if self.at_comment() => self.skip_comment(),
                _ => return,
            }
        }
    }

    /// Reads a key: bare (up to a blank, separator or bracket) or quoted (no escapes).
    /// Returns the key and whether it was quoted (a quoted `include` is an ordinary key).
    pub fn read_key(&mut self) -> Result<(String, bool), ParseError> {
        match self.peek() {
            Some(quote @ ('"' | '\'')) => {
                self.bump();
                let key = self.read_until_quote(quote)?;
                Ok((key, true))
            }
            _ => {
                let start = self.pos;
                while let Some(c) = self.peek() {
                    if c.is_whitespace() || matches!(c, '=' | ':' | '{' | '[' | '}' | ']' | ',' | ';' | '#') {
                        break;
                    }
                    self.bump();
                }
                if self.pos == start {
                    return Err(self.unexpected("a key"));
                }
                Ok((self.text.get(start..self.pos).unwrap_or("").to_string(), false))
            }
        }
    }

    /// Reads the path of an `include`: quoted, or bare up to a blank or item end.
    pub fn read_include_path(&mut self) -> Result<String, ParseError> {
        match self.peek() {
            Some(quote @ ('"' | '\'')) => {
                self.bump();
                self.read_until_quote(quote)
            }
            Some(c) if !ends_bare_value(c) => {
                let start = self.pos;
                while self.peek().is_some_and(|c| !ends_bare_value(c)) {
                    self.bump();
                }
                Ok(self.text.get(start..self.pos).unwrap_or("").to_string())
            }
            _ => Err(self.unexpected("an include path")),
        }
    }

    /// Reads raw text up to the closing quote, which is consumed.
    fn read_until_quote(&mut self, quote: char) -> Result<String, ParseError> {
        let start = self.pos;
        loop {
            match self.peek() {
                None => return Err(self.error(ParseErrorKind::UnterminatedString)),
                Some(c) if c == quote => break,
                Some(_) => {
                    self.bump();
                }
            }
        }
        let text = self.text.get(start..self.pos).unwrap_or("").to_string();
        self.bump();
        Ok(text)
    }

    /// Reads a scalar value. The caller has ruled out `[` and `{`.
    pub fn read_scalar(&mut self) -> Result<Scalar, ParseError> {
        match self.peek() {
            Some('\'') => {
                self.bump();
                self.read_until_quote('\'').map(Scalar::String)
            }
            Some('"') => {
                self.bump();
                self.read_double_quoted().map(Scalar::String)
            }
            Some('(') => {
                self.bump();
                self.read_block().map(Scalar::String)
            }
            Some('.') => {
                Err(self.error(ParseErrorKind::InvalidFloat("floats must start with a digit".into())))
            }
            Some(c) if c.is_ascii_digit() => self.read_number_or_string(),
            Some('-') if self.peek_second().is_some_and(|c| c.is_ascii_digit()) => {
                self.read_number_or_string()
            }
            Some(c) if !ends_bare_value(c) => self.read_bare(),
            _ => Err(self.unexpected("a value")),
        }
    }

    /// A double-quoted string with escapes; the opening quote is consumed.
    fn read_double_quoted(&mut self) -> Result<String, ParseError> {
        let mut bytes = Vec::new();
        loop {
            match self.bump() {
                None => return Err(self.error(ParseErrorKind::UnterminatedString)),
                Some('"') => break,
                Some('\\') => self.read_escape(&mut bytes)?,
                Some(c) => push_char(&mut bytes, c),
            }
        }
        String::from_utf8(bytes).map_err(|_| self.error(ParseErrorKind::InvalidUtf8))
    }

    /// One escape sequence; the backslash is consumed. `\xHH` adds a raw byte, so the result is
    /// checked for UTF-8 once the whole string is read.
    fn read_escape(&mut self, bytes: &mut Vec<u8>) -> Result<(), ParseError> {
        match self.bump() {
            Some('t') => bytes.push(b'\t'),
            Some('n') => bytes.push(b'\n'),
            Some('r') => bytes.push(b'\r'),
            Some('"') => bytes.push(b'"'),
            Some('\\') => bytes.push(b'\\'),
            Some('x') => {
                let high = self.bump().and_then(|c| c.to_digit(16));
                let low = self.bump().and_then(|c| c.to_digit(16));
                match (high, low) {
                    (Some(h), Some(l)) => bytes.push((h * 16 + l) as u8),
                    _ => return Err(self.error(ParseErrorKind::InvalidHexEscape)),
                }
            }
            Some(other) => return Err(self.error(ParseErrorKind::InvalidEscape(other.to_string()))),
            None => return Err(self.error(ParseErrorKind::UnterminatedString)),
        }
        Ok(())
    }

    /// A `( … )` block string; the `(` is consumed. It ends at a `)` alone on its line, so the
    /// content may hold parentheses freely. The content keeps its new lines.
    fn read_block(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        let mut previous = '(';
        loop {
            let Some(c) = self.peek() else {
                return Err(self.error(ParseErrorKind::UnterminatedBlock));
            };
            if c == ')' && previous == '\n' && matches!(self.peek_second(), None | Some('\n' | '\r')) {
                let text = self.text.get(start..self.pos).unwrap_or("").to_string();
                self.bump();
                return Ok(text);
            }
            previous = c;
            self.bump();
        }
    }

    /// Something starting with a digit or `-digit`: an integer (maybe with a size suffix), a
    /// float, a datetime, or, when more text follows, a bare string (`10s`, `127.0.0.1:4222`).
    fn read_number_or_string(&mut self) -> Result<Scalar, ParseError> {
        let start = self.pos;
        let start_location = self.location();
        let negative = self.eat('-');
        let digits_start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
        }
        let digits = self.text.get(digits_start..self.pos).unwrap_or("");
        if !negative && digits.len() == 4 && self.peek() == Some('-') {
            return self.read_datetime(start);
        }
        let mut is_float = false;
        if self.peek() == Some('.') && self.peek_second().is_some_and(|c| c.is_ascii_digit()) {
            is_float = true;
            self.bump();
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.bump();
            }
        }
        let number_end = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
            self.bump();
        }
        let suffix = self.text.get(number_end..self.pos).unwrap_or("");
        let terminated = self.peek().is_none_or(ends_bare_value);
        let number = self.text.get(start..number_end).unwrap_or("");
        let at_start = |kind| ParseError { location: start_location.clone(), kind };
        if terminated && is_float && suffix.is_empty() {
            return number
                .parse::<f64>()
                .map(Scalar::Float)
                .map_err(|_| at_start(ParseErrorKind::InvalidFloat(number.to_string())));
        }
        if terminated && !is_float {
            let multiplier = if suffix.is_empty() { Some(1) } else { size_multiplier(suffix) };
            if let Some(multiplier) = multiplier {
                let whole = self.text.get(start..self.pos).unwrap_or("").to_string();
                return number
                    .parse::<i64>()
                    .ok()
                    .zip(i64::try_from(multiplier).ok())
                    .and_then(|(n, m)| n.checked_mul(m))
                    .map(Scalar::Integer)
                    .ok_or_else(|| at_start(ParseErrorKind::IntegerOutOfRange(whole)));
            }
        }
        // Not a number after all ("10s", "1h30m", "127.0.0.1:4222"): the rest is a bare string.
        self.read_bare_from(start)
    }

    /// `YYYY-MM-DDTHH:MM:SSZ`; `YYYY` is consumed.
    fn read_datetime(&mut self, start: usize) -> Result<Scalar, ParseError> {
        const SHAPE: &str = "-00-00T00:00:00Z";
        for expected in SHAPE.chars() {
            let ok = match self.peek() {
                Some(c) if expected == '0' => c.is_ascii_digit(),
                Some(c) => c == expected,
                None => false,
            };
            if !ok {
                return Err(self.error(ParseErrorKind::InvalidDateTime));
            }
            self.bump();
        }
        Ok(Scalar::DateTime(self.text.get(start..self.pos).unwrap_or("").to_string()))
    }

    fn read_bare(&mut self) -> Result<Scalar, ParseError> {
        let start = self.pos;
        self.read_bare_from(start)
    }

    /// A bare string from byte `start` to the next blank or item end. Backslash escapes apply
    /// (as in nats-server); without escapes, boolean words and `$name` get their meaning.
    fn read_bare_from(&mut self, start: usize) -> Result<Scalar, ParseError> {
        let mut bytes: Vec<u8> = self.text.get(start..self.pos).unwrap_or("").as_bytes().to_vec();
        let mut escaped = false;
        while let Some(c) = self.peek() {
            if ends_bare_value(c) {
                break;
            }
            self.bump();
            if c == '\\' {
                escaped = true;
                self.read_escape(&mut bytes)?;
            } else {
                push_char(&mut bytes, c);
            }
        }
        let text = String::from_utf8(bytes).map_err(|_| self.error(ParseErrorKind::InvalidUtf8))?;
        if escaped {
            return Ok(Scalar::String(text));
        }
        match text.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" => return Ok(Scalar::Bool(true)),
            "false" | "no" | "off" => return Ok(Scalar::Bool(false)),
            _ => {}
        }
        match text.strip_prefix('$') {
            Some(name) if !name.is_empty() => Ok(Scalar::Variable(name.to_string())),
            _ => Ok(Scalar::String(text)),
        }
    }
}

/// Characters that end a bare (unquoted) value.
fn ends_bare_value(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | ',' | ';' | ']' | '}')
}

fn push_char(bytes: &mut Vec<u8>, c: char) {
    let mut buf = [0u8; 4];
    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}
