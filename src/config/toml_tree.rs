//! Reads TOML into the same located tree as the `.conf` reader, so both formats share the
//! alias rewriting, deserialization and unknown-key reporting that follow.

use std::path::Path;
use std::sync::Arc;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::conf::{Entry, Location, Map, Node, Value};

/// A TOML syntax error or an integer `Config` cannot hold.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct TomlError {
    pub location: Location,
    pub message: String,
}

/// Turns byte offsets into line and column.
struct Lines {
    file: Arc<Path>,
    text_len: usize,
    /// Byte offset where each line starts.
    starts: Vec<usize>,
}

impl Lines {
    fn new(text: &str, file: Arc<Path>) -> Self {
        let starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        Lines { file, text_len: text.len(), starts }
    }

    fn locate(&self, text: &str, offset: usize) -> Location {
        let offset = offset.min(self.text_len);
        let line = self.starts.partition_point(|&start| start <= offset).max(1);
        let line_start = self.starts.get(line - 1).copied().unwrap_or(0);
        let column = text.get(line_start..offset).map_or(0, |s| s.chars().count()) + 1;
        Location {
            file: self.file.clone(),
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
        }
    }
}

/// Parses TOML text read from `origin` into a located map.
pub fn parse(text: &str, origin: &Path) -> Result<Map, TomlError> {
    let lines = Lines::new(text, Arc::from(origin));
    let table = DeTable::parse(text).map_err(|e| TomlError {
        location: lines.locate(text, e.span().map_or(0, |s| s.start)),
        message: e.message().trim().to_string(),
    })?;
    convert_table(table.get_ref(), text, &lines)
}

fn convert_table(table: &DeTable<'_>, text: &str, lines: &Lines) -> Result<Map, TomlError> {
    let mut map = Map::new();
    for (key, value) in table.iter() {
        map.insert(Entry {
            key: key.get_ref().to_string(),
            key_location: lines.locate(text, key.span().start),
            value: convert(value, text, lines)?,
            used_as_variable: false,
        });
    }
    Ok(map)
}

fn convert(value: &Spanned<DeValue<'_>>, text: &str, lines: &Lines) -> Result<Node, TomlError> {
    let location = lines.locate(text, value.span().start);
    let value = match value.get_ref() {
        DeValue::String(s) => Value::String(s.to_string()),
        DeValue::Integer(n) => match i64::from_str_radix(n.as_str(), n.radix()) {
            Ok(n) => Value::Integer(n),
            Err(_) => return Err(TomlError { location, message: format!("integer {n} is out of range") }),
        },
        DeValue::Float(f) => match f.as_str().parse::<f64>() {
            Ok(f) => Value::Float(f),
            Err(_) => return Err(TomlError { location, message: format!("invalid float {f}") }),
        },
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Datetime(d) => Value::DateTime(d.to_string()),
        DeValue::Array(items) => {
            Value::Array(items.iter().map(|item| convert(item, text, lines)).collect::<Result<_, _>>()?)
        }
        DeValue::Table(table) => Value::Map(convert_table(table, text, lines)?),
    };
    Ok(Node { value, location })
}
