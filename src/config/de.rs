//! Lets serde read the located tree. Two jobs beyond plain deserialization:
//!
//! - Unknown keys: serde's derived code reads the value of a key it does not know as
//!   `IgnoredAny`, which lands in `deserialize_ignored_any`; we record the key path and
//!   location there (the trick `serde_ignored` uses, without the dependency).
//! - Errors: each map level adds its key and the innermost value's location, so a bad value
//!   is reported as `jetstream.max_memory_store` at `file:line:col`.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::forward_to_deserialize_any;

use super::conf::{Entry, Location, Map, Node, Value};

/// A key present in the file that no `Config` field reads.
#[derive(Debug, Clone, PartialEq)]
pub struct IgnoredKey {
    pub path: String,
    pub location: Location,
}

/// A deserialization error, located as precisely as the tree allows.
#[derive(Debug, Clone, PartialEq)]
pub struct DeError {
    /// Key path segments, outermost first.
    pub path: Vec<String>,
    pub location: Option<Location>,
    pub message: String,
}

impl DeError {
    /// Adds the enclosing key; the location is the innermost one known.
    fn within(mut self, key: &str, location: &Location) -> Self {
        self.path.insert(0, key.to_string());
        if self.location.is_none() {
            self.location = Some(location.clone());
        }
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError { path: Vec::new(), location: None, message: msg.to_string() }
    }
}

/// Deserializes `T` from a map, returning it with the keys nothing read.
pub fn from_map<'de, T: de::Deserialize<'de>>(
    map: &'de Map,
    root: &Location,
) -> Result<(T, Vec<IgnoredKey>), DeError> {
    let ignored = RefCell::new(Vec::new());
    let value =
        T::deserialize(MapDeserializer { map, path: String::new(), ignored: &ignored }).map_err(|e| {
            if e.location.is_none() {
                DeError { location: Some(root.clone()), ..e }
            } else {
                e
            }
        })?;
    Ok((value, ignored.into_inner()))
}

struct MapDeserializer<'de, 'c> {
    map: &'de Map,
    path: String,
    ignored: &'c RefCell<Vec<IgnoredKey>>,
}

impl<'de> de::Deserializer<'de> for MapDeserializer<'de, '_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_map(Entries {
            entries: self.map.entries().iter(),
            current: None,
            path: self.path,
            ignored: self.ignored,
        })
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

/// Deserializes one node; `entry` is the map entry it is the value of, if any.
struct NodeDeserializer<'de, 'c> {
    node: &'de Node,
    entry: Option<&'de Entry>,
    path: String,
    ignored: &'c RefCell<Vec<IgnoredKey>>,
}

impl<'de> de::Deserializer<'de> for NodeDeserializer<'de, '_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let located = |e: DeError| match e.location {
            Some(_) => e,
            None => DeError { location: Some(self.node.location.clone()), ..e },
        };
        match &self.node.value {
            Value::String(s) | Value::DateTime(s) => visitor.visit_borrowed_str(s),
            Value::Integer(n) => visitor.visit_i64(*n),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Array(items) => visitor.visit_seq(Items {
                items: items.iter(),
                index: 0,
                path: self.path.clone(),
                ignored: self.ignored,
            }),
            Value::Map(map) => visitor.visit_map(Entries {
                entries: map.entries().iter(),
                current: None,
                path: self.path.clone(),
                ignored: self.ignored,
            }),
        }
        .map_err(located)
    }

    /// Neither format has a null: a present key is always `Some`.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::String(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            other => Err(DeError {
                path: Vec::new(),
                location: Some(self.node.location.clone()),
                message: format!("expected a string, found {}", other.kind()),
            }),
        }
    }

    /// Reached for keys no field wants: remember them, unless the key is a variable.
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if let Some(entry) = self.entry {
            if !entry.used_as_variable {
                self.ignored
                    .borrow_mut()
                    .push(IgnoredKey { path: self.path, location: entry.key_location.clone() });
            }
        }
        visitor.visit_unit()
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map struct identifier
    }
}

struct Entries<'de, 'c> {
    entries: std::slice::Iter<'de, Entry>,
    current: Option<&'de Entry>,
    path: String,
    ignored: &'c RefCell<Vec<IgnoredKey>>,
}

impl<'de> MapAccess<'de> for Entries<'de, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.current = Some(entry);
        seed.deserialize(entry.key.as_str().into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some(entry) = self.current.take() else {
            return Err(de::Error::custom("value requested before its key"));
        };
        let path =
            if self.path.is_empty() { entry.key.clone() } else { format!("{}.{}", self.path, entry.key) };
        seed.deserialize(NodeDeserializer {
            node: &entry.value,
            entry: Some(entry),
            path,
            ignored: self.ignored,
        })
        .map_err(|e| e.within(&entry.key, &entry.value.location))
    }
}

struct Items<'de, 'c> {
    items: std::slice::Iter<'de, Node>,
    index: usize,
    path: String,
    ignored: &'c RefCell<Vec<IgnoredKey>>,
}

impl<'de> SeqAccess<'de> for Items<'de, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DeError> {
        let Some(node) = self.items.next() else {
            return Ok(None);
        };
        let path = format!("{}[{}]", self.path, self.index);
        self.index += 1;
        seed.deserialize(NodeDeserializer { node, entry: None, path, ignored: self.ignored }).map(Some)
    }
}
