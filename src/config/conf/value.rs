//! The generic tree both config formats are read into before serde maps it onto `Config`.
//!
//! Every key and value remembers where it was written, so warnings and errors can point at a
//! file, line and column even after includes and variable substitution.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// A position in a config file: 1-based line and column (columns count characters).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// Shared because every node of a file points at the same name.
    pub file: Arc<Path>,
    pub line: u32,
    pub column: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// A value with the location where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub location: Location,
}

/// The value forms of nats-server's format (TOML's are a subset after conversion).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    String(String),
    /// Integers with size suffixes are already multiplied out (`8MB` is 8388608).
    Integer(i64),
    Float(f64),
    Bool(bool),
    /// An ISO-8601 `Z` datetime, kept as written: no option needs it as a time yet.
    DateTime(String),
    Array(Vec<Node>),
    Map(Map),
}

impl Value {
    /// A short name for messages ("expected a map, found an integer").
    pub fn kind(&self) -> &'static str {
        match self {
            Value::String(_) => "a string",
            Value::Integer(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Bool(_) => "a boolean",
            Value::DateTime(_) => "a datetime",
            Value::Array(_) => "an array",
            Value::Map(_) => "a map",
        }
    }
}

/// One `key = value` of a map.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub key_location: Location,
    pub value: Node,
    /// Set when some `$key` referred to this entry. nats-server does not report such keys as
    /// unknown options: they are variables, not settings.
    pub used_as_variable: bool,
}

/// A map that keeps insertion order (so messages follow the file) and key locations.
///
/// Lookups are linear: config maps are small, and a `Vec` keeps the order for free.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Map {
    entries: Vec<Entry>,
}

impl Map {
    pub fn new() -> Self {
        Map::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn entries_mut(&mut self) -> &mut [Entry] {
        &mut self.entries
    }

    pub fn into_entries(self) -> Vec<Entry> {
        self.entries
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|e| &e.value)
    }

    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }

    pub fn entry_mut(&mut self, key: &str) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.key == key)
    }

    /// Adds an entry; a key written twice keeps the later value (as nats-server does) at the
    /// later location.
    pub fn insert(&mut self, entry: Entry) {
        match self.entry_mut(&entry.key) {
            Some(existing) => {
                let used = existing.used_as_variable;
                *existing = entry;
                existing.used_as_variable |= used;
            }
            None => self.entries.push(entry),
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Entry> {
        let index = self.entries.iter().position(|e| e.key == key)?;
        Some(self.entries.remove(index))
    }

    /// Follows a dotted path of map keys to a node.
    pub fn lookup(&self, path: &[&str]) -> Option<&Entry> {
        let (first, rest) = path.split_first()?;
        let entry = self.entry(first)?;
        if rest.is_empty() {
            return Some(entry);
        }
        match &entry.value.value {
            Value::Map(inner) => inner.lookup(rest),
            _ => None,
        }
    }
}
