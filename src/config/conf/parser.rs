//! Structure of the `.conf` format: maps, arrays, key separators, item terminators, variables
//! and includes. Recursive descent over the [`Scanner`]; nesting is bounded so hostile input
//! cannot overflow the stack.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use super::error::{ParseError, ParseErrorKind};
use super::lexer::{Scalar, Scanner};
use super::value::{Entry, Location, Map, Node, Value};
use super::Environment;

/// Deepest nesting of maps, arrays, includes and environment-variable values combined.
pub const MAX_DEPTH: usize = 64;

/// Most values variable references may copy in total. Without a bound, `b = [$a, $a]`,
/// `c = [$b, $b]`, … doubles with every line (the "billion laughs" attack).
pub const MAX_COPIED_VALUES: usize = 1_000_000;

/// State shared by a file's parser and the parsers of its includes and environment values.
pub struct Shared<'e> {
    pub env: &'e dyn Environment,
    /// Environment variables being resolved right now: seeing one again is a cycle.
    resolving_env: HashSet<String>,
    /// Files being parsed right now (outermost first): including one again is a cycle.
    include_stack: Vec<PathBuf>,
    /// Values variable references may still copy.
    copy_budget: usize,
}

impl<'e> Shared<'e> {
    pub fn new(env: &'e dyn Environment) -> Self {
        Shared {
            env,
            resolving_env: HashSet::new(),
            include_stack: Vec::new(),
            copy_budget: MAX_COPIED_VALUES,
        }
    }
}

pub struct Parser<'a, 'e> {
    scanner: Scanner<'a>,
    shared: &'a mut Shared<'e>,
    /// Maps being built, outermost first; `$name` looks through them innermost first.
    scopes: Vec<Map>,
    depth: usize,
}

/// Where a body of entries ends.
#[derive(Clone, Copy, PartialEq)]
enum BodyEnd {
    EndOfFile,
    Brace,
}

impl<'a, 'e> Parser<'a, 'e> {
    pub fn new(text: &'a str, file: Arc<Path>, shared: &'a mut Shared<'e>, depth: usize) -> Self {
        Parser { scanner: Scanner::new(text, file), shared, scopes: Vec::new(), depth }
    }

    /// Parses a whole document into its top-level map.
    pub fn parse_document(mut self) -> Result<Map, ParseError> {
        self.shared.include_stack.push(self.scanner.file().to_path_buf());
        self.scopes.push(Map::new());
        self.parse_body(BodyEnd::EndOfFile)?;
        self.shared.include_stack.pop();
        Ok(self.scopes.pop().unwrap_or_default())
    }

    /// Parses text holding a single value (an environment variable's content).
    fn parse_lone_value(mut self) -> Result<Node, ParseError> {
        self.scanner.skip_blanks();
        let node = self.parse_value()?;
        self.scanner.skip_blanks();
        if !self.scanner.at_eof() {
            return Err(self.scanner.unexpected("end of value"));
        }
        Ok(node)
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.scanner.error(ParseErrorKind::TooDeep(MAX_DEPTH)));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Entries into the innermost scope until `end`.
    fn parse_body(&mut self, end: BodyEnd) -> Result<(), ParseError> {
        loop {
            self.scanner.skip_blank_lines();
            match self.scanner.peek() {
                None if end == BodyEnd::EndOfFile => return Ok(()),
                None => return Err(self.scanner.unexpected("'}'")),
                Some('}') if end == BodyEnd::Brace => {
                    self.scanner.bump();
                    return Ok(());
                }
                // Stray terminators are empty items.
                Some(';' | ',') => {
                    self.scanner.bump();
                }
                // A top-level `{ … }` wraps the whole file JSON-style; its keys are top-level keys.
                Some('{') if end == BodyEnd::EndOfFile => {
                    self.scanner.bump();
                    self.enter()?;
                    self.parse_body(BodyEnd::Brace)?;
                    self.leave();
                }
                Some(_) => {
                    self.parse_entry()?;
                    self.expect_item_end()?;
                }
            }
        }
    }

    /// `key [=|:] value`, or `include path`.
    fn parse_entry(&mut self) -> Result<(), ParseError> {
        let key_location = self.scanner.location();
        let (key, quoted) = self.scanner.read_key()?;
        let blank_follows = matches!(self.scanner.peek(), Some(' ' | '\t'));
        self.scanner.skip_blanks();
        if !quoted
            && blank_follows
            && key.eq_ignore_ascii_case("include")
            && !matches!(self.scanner.peek(), Some('=' | ':'))
        {
            return self.parse_include();
        }
        if matches!(self.scanner.peek(), Some('=' | ':')) {
            self.scanner.bump();
            self.scanner.skip_blanks();
        }
        if matches!(self.scanner.peek(), None | Some('\n' | '\r' | '#')) || self.scanner.at_comment() {
            return Err(self.scanner.unexpected("a value"));
        }
        let value = self.parse_value()?;
        self.current_scope().insert(Entry { key, key_location, value, used_as_variable: false });
        Ok(())
    }

    /// After a map entry: blanks and a comment, then a new line, `;`, `,`, `}` or the end.
    fn expect_item_end(&mut self) -> Result<(), ParseError> {
        self.scanner.skip_blanks();
        if self.scanner.at_comment() {
            self.scanner.skip_comment();
        }
        match self.scanner.peek() {
            None | Some('}') => Ok(()),
            Some('\n' | '\r' | ';' | ',') => {
                self.scanner.bump();
                Ok(())
            }
            Some(_) => Err(self.scanner.unexpected("a new line, ';' or ',' after the value")),
        }
    }

    fn current_scope(&mut self) -> &mut Map {
        if self.scopes.is_empty() {
            self.scopes.push(Map::new());
        }
        let last = self.scopes.len() - 1;
        &mut self.scopes[last]
    }

    fn parse_value(&mut self) -> Result<Node, ParseError> {
        let location = self.scanner.location();
        let value = match self.scanner.peek() {
            Some('[') => {
                self.scanner.bump();
                self.enter()?;
                let items = self.parse_array_items()?;
                self.leave();
                Value::Array(items)
            }
            Some('{') => {
                self.scanner.bump();
                self.enter()?;
                self.scopes.push(Map::new());
                self.parse_body(BodyEnd::Brace)?;
                let map = self.scopes.pop().unwrap_or_default();
                self.leave();
                Value::Map(map)
            }
            _ => match self.scanner.read_scalar()? {
                Scalar::String(s) => Value::String(s),
                Scalar::Integer(n) => Value::Integer(n),
                Scalar::Float(f) => Value::Float(f),
                Scalar::Bool(b) => Value::Bool(b),
                Scalar::DateTime(d) => Value::DateTime(d),
                Scalar::Variable(name) => return self.resolve_variable(&name, location),
            },
        };
        Ok(Node { value, location })
    }

    /// Array items after `[`, through `]`. Items are separated by `,` or new lines.
    fn parse_array_items(&mut self) -> Result<Vec<Node>, ParseError> {
        let mut items = Vec::new();
        loop {
            self.scanner.skip_blank_lines();
            match self.scanner.peek() {
                Some(']') => {
                    self.scanner.bump();
                    return Ok(items);
                }
                None | Some(',') => return Err(self.scanner.unexpected("an array value or ']'")),
                Some(_) => items.push(self.parse_value()?),
            }
            self.scanner.skip_blanks();
            if self.scanner.at_comment() {
                self.scanner.skip_comment();
            }
            match self.scanner.peek() {
                Some(',' | '\n' | '\r') => {
                    self.scanner.bump();
                }
                Some(']') => {}
                _ => return Err(self.scanner.unexpected("',' or ']' after an array value")),
            }
        }
    }

    /// `$name`: the nearest enclosing map's `name` (block scoping), else the environment
    /// variable, whose text is read as a value itself (so `8MB` in the environment is a size).
    fn resolve_variable(&mut self, name: &str, location: Location) -> Result<Node, ParseError> {
        // bcrypt hashes ($2a$…) are written unquoted in real configs; they are not variables.
        if name.starts_with("2a$") {
            return Ok(Node { value: Value::String(format!("${name}")), location });
        }
        let at = |kind| ParseError { location: location.clone(), kind };
        for scope in self.scopes.iter_mut().rev() {
            if let Some(entry) = scope.entry_mut(name) {
                entry.used_as_variable = true;
                let budget = self.shared.copy_budget;
                let size = count_values(&entry.value.value, budget.saturating_add(1));
                if size > budget {
                    return Err(at(ParseErrorKind::TooLarge(MAX_COPIED_VALUES)));
                }
                self.shared.copy_budget = budget - size;
                return Ok(Node { value: entry.value.value.clone(), location });
            }
        }
        if self.shared.resolving_env.contains(name) {
            return Err(at(ParseErrorKind::VariableCycle(name.to_string())));
        }
        let Some(text) = self.shared.env.var(name) else {
            return Err(at(ParseErrorKind::VariableNotFound(name.to_string())));
        };
        self.enter()?;
        self.shared.resolving_env.insert(name.to_string());
        let file: Arc<Path> = Arc::from(PathBuf::from(format!("${name}")));
        let result = Parser::new(&text, file, self.shared, self.depth).parse_lone_value();
        self.shared.resolving_env.remove(name);
        self.leave();
        let node = result?;
        Ok(Node { value: node.value, location })
    }

    /// `include path`: the named file (relative to this one) is parsed on its own, with its
    /// own variables, and its top-level keys are added to the current map.
    fn parse_include(&mut self) -> Result<(), ParseError> {
        let location = self.scanner.location();
        let relative = self.scanner.read_include_path()?;
        let at = |kind| ParseError { location: location.clone(), kind };
        let base = self.scanner.file().parent().unwrap_or(Path::new(""));
        let path = join_lexically(base, Path::new(&relative));
        if self.shared.include_stack.contains(&path) {
            return Err(at(ParseErrorKind::IncludeCycle(path)));
        }
        let text = self
            .shared
            .env
            .read_file(&path)
            .map_err(|e| at(ParseErrorKind::Include { path: path.clone(), reason: e.to_string() }))?;
        self.enter()?;
        let included = Parser::new(&text, Arc::from(path), self.shared, self.depth).parse_document()?;
        self.leave();
        let scope = self.current_scope();
        for entry in included.into_entries() {
            scope.insert(entry);
        }
        Ok(())
    }
}

/// `base/relative` with `.` and `..` resolved without touching the disk, so the same file
/// reached two ways is recognised in the include cycle check.
fn join_lexically(base: &Path, relative: &Path) -> PathBuf {
    let mut joined = PathBuf::new();
    for component in base.join(relative).components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir if matches!(joined.components().next_back(), Some(Component::Normal(_))) => {
                joined.pop();
            }
            other => joined.push(other),
        }
    }
    joined
}

/// Counts the values in a tree, stopping once `limit` is reached.
fn count_values(value: &Value, limit: usize) -> usize {
    let mut count = 1;
    let children: Box<dyn Iterator<Item = &Value>> = match value {
        Value::Array(items) => Box::new(items.iter().map(|n| &n.value)),
        Value::Map(map) => Box::new(map.entries().iter().map(|e| &e.value.value)),
        _ => return count,
    };
    for child in children {
        if count >= limit {
            break;
        }
        count += count_values(child, limit - count);
    }
    count
}
