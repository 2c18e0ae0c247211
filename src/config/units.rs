//! Value forms shared by both config formats: durations ("2m", "1h30m", "500ms", or a number of
//! seconds), sizes (a number, or "8MB"/"1GiB"-style strings), and the shorthand forms of blocks.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{JetStream, SyncInterval};

/// Parses a Go-style duration ("1h2m3.5s", "250ms", "10us") or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<f64>() {
        return secs_to_duration(secs);
    }
    let mut total = 0f64;
    let mut rest = text;
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        let value: f64 = num
            .parse()
            .map_err(|_| format!("invalid duration {text:?}"))?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(format!("invalid duration {text:?}: unknown unit {unit:?}")),
        };
        total += value * scale;
        rest = tail;
    }
    secs_to_duration(total)
}

fn secs_to_duration(secs: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(secs).map_err(|e| format!("invalid duration {secs}: {e}"))
}

/// Formats a duration the way it is parsed back ("2m", "10s", "500ms").
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if d.subsec_millis() != 0 || ms < 1000 {
        return format!("{ms}ms");
    }
    let s = d.as_secs();
    if s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// Parses a size: a number of bytes or a number with a suffix. `k/m/g/t` are powers of 1000,
/// `kb/ki/kib`, `mb/mi/mib`… are powers of 1024 (nats-server's rules).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (num, suffix) = text.split_at(digits);
    let value: u64 = num.parse().map_err(|_| format!("invalid size {text:?}"))?;
    let mult: u64 = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" => 1000,
        "m" => 1000u64.pow(2),
        "g" => 1000u64.pow(3),
        "t" => 1000u64.pow(4),
        "kb" | "ki" | "kib" => 1 << 10,
        "mb" | "mi" | "mib" => 1 << 20,
        "gb" | "gi" | "gib" => 1 << 30,
        "tb" | "ti" | "tib" => 1 << 40,
        other => return Err(format!("invalid size {text:?}: unknown suffix {other:?}")),
    };
    value
        .checked_mul(mult)
        .ok_or_else(|| format!("size {text:?} overflows"))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrText {
    Int(i64),
    Float(f64),
    Text(String),
}

/// Serde adapter for `Duration` fields.
pub mod duration {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        match NumOrText::deserialize(d)? {
            NumOrText::Int(n) if n >= 0 => Ok(Duration::from_secs(n as u64)),
            NumOrText::Int(n) => Err(serde::de::Error::custom(format!("negative duration {n}"))),
            NumOrText::Float(f) => secs_to_duration(f).map_err(serde::de::Error::custom),
            NumOrText::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
        }
    }
}

/// Serde adapter for byte-size fields.
pub mod size {
    use super::*;

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(*v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        match NumOrText::deserialize(d)? {
            NumOrText::Int(n) if n >= 0 => Ok(n as u64),
            NumOrText::Int(n) => Err(serde::de::Error::custom(format!("negative size {n}"))),
            NumOrText::Float(f) => Err(serde::de::Error::custom(format!("size {f} is not whole"))),
            NumOrText::Text(t) => parse_size(&t).map_err(serde::de::Error::custom),
        }
    }
}

/// `sync_interval`: a duration or `"always"`.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum SyncIntervalRepr {
    Int(i64),
    Text(String),
}

impl TryFrom<SyncIntervalRepr> for SyncInterval {
    type Error = String;
    fn try_from(r: SyncIntervalRepr) -> Result<Self, String> {
        match r {
            SyncIntervalRepr::Text(t) if t.eq_ignore_ascii_case("always") => {
                Ok(SyncInterval::Always)
            }
            SyncIntervalRepr::Text(t) => parse_duration(&t).map(SyncInterval::Every),
            SyncIntervalRepr::Int(n) if n > 0 => {
                Ok(SyncInterval::Every(Duration::from_secs(n as u64)))
            }
            SyncIntervalRepr::Int(n) => Err(format!("invalid sync_interval {n}")),
        }
    }
}

impl From<SyncInterval> for String {
    fn from(s: SyncInterval) -> String {
        match s {
            SyncInterval::Always => "always".into(),
            SyncInterval::Every(d) => format_duration(d),
        }
    }
}

/// The JetStream block, or its shorthand (`jetstream: enabled`, `true`, `false`).
#[derive(Deserialize)]
#[serde(untagged)]
pub enum JetStreamRepr {
    Flag(bool),
    Word(String),
    Block(JetStreamBlock),
}

/// Mirror of [`JetStream`] without the `try_from`, so the block form can be deserialized.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JetStreamBlock {
    enabled: bool,
    store_dir: Option<std::path::PathBuf>,
    #[serde(default, deserialize_with = "opt_size")]
    max_memory_store: Option<u64>,
    #[serde(default, deserialize_with = "opt_size")]
    max_file_store: Option<u64>,
    sync_interval: SyncInterval,
    domain: Option<String>,
    unique_tag: Option<String>,
}

impl Default for JetStreamBlock {
    fn default() -> Self {
        let d = JetStream::default();
        JetStreamBlock {
            enabled: d.enabled,
            store_dir: d.store_dir,
            max_memory_store: d.max_memory_store,
            max_file_store: d.max_file_store,
            sync_interval: d.sync_interval,
            domain: d.domain,
            unique_tag: d.unique_tag,
        }
    }
}

fn opt_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    size::deserialize(d).map(Some)
}

impl TryFrom<JetStreamRepr> for JetStream {
    type Error = String;
    fn try_from(r: JetStreamRepr) -> Result<Self, String> {
        let enabled_only = |enabled| JetStream {
            enabled,
            ..JetStream::default()
        };
        match r {
            JetStreamRepr::Flag(b) => Ok(enabled_only(b)),
            JetStreamRepr::Word(w) => match w.to_ascii_lowercase().as_str() {
                "enabled" | "enable" | "true" | "yes" | "on" => Ok(enabled_only(true)),
                "disabled" | "disable" | "false" | "no" | "off" => Ok(enabled_only(false)),
                other => Err(format!("invalid jetstream value {other:?}")),
            },
            JetStreamRepr::Block(b) => Ok(JetStream {
                enabled: b.enabled,
                store_dir: b.store_dir,
                max_memory_store: b.max_memory_store,
                max_file_store: b.max_file_store,
                sync_interval: b.sync_interval,
                domain: b.domain,
                unique_tag: b.unique_tag,
            }),
        }
    }
}

impl Serialize for JetStreamBlock {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_unit()
    }
}
