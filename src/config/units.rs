//! Value forms shared by both config formats: durations ("2m", "1h30m", "500ms", or a number of
//! seconds) and sizes (a number, or "8MB"/"1GiB"-style strings), with their serde adapters.
//!
//! The adapters use visitors rather than untagged enums so a bad value gets a precise message
//! ("invalid duration \"5x\": unknown unit \"x\"") instead of "did not match any variant".

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::{SyncInterval, TlsVersion};

/// The multiplier of a size suffix (case-insensitive), nats-server's table: `k m g t p e` are
/// powers of 1000; `kb/ki/kib`, `mb/mi/mib`, … are powers of 1024. `b` and "" are bytes.
/// Shared by the `.conf` lexer (for `8MB` written unquoted) and [`parse_size`].
pub fn size_multiplier(suffix: &str) -> Option<u64> {
    let lower = suffix.to_ascii_lowercase();
    let (letter, binary) = match lower.as_str() {
        "" | "b" => return Some(1),
        s if s.len() == 1 => (s, false),
        s => match s.strip_suffix("ib").or_else(|| s.strip_suffix('b')).or_else(|| s.strip_suffix('i')) {
            Some(letter) if letter.len() == 1 => (letter, true),
            _ => return None,
        },
    };
    let power = match letter {
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        "p" => 5,
        "e" => 6,
        _ => return None,
    };
    let base: u64 = if binary { 1024 } else { 1000 };
    base.checked_pow(power)
}

/// Parses a size: a number of bytes, optionally followed by a suffix (see [`size_multiplier`]).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (num, suffix) = text.split_at(digits);
    let value: u64 = num.parse().map_err(|_| format!("invalid size {text:?}"))?;
    let mult = size_multiplier(suffix.trim())
        .ok_or_else(|| format!("invalid size {text:?}: unknown suffix {suffix:?}"))?;
    value.checked_mul(mult).ok_or_else(|| format!("size {text:?} overflows"))
}

/// Parses a Go-style duration ("1h2m3.5s", "250ms", "10us") or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<f64>() {
        return secs_to_duration(secs);
    }
    if text.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        let value: f64 = num.parse().map_err(|_| format!("invalid duration {text:?}"))?;
        let unit_len = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
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

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as \"2m\", \"1h30m\", \"500ms\", or a number of seconds")
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Duration, E> {
        Ok(Duration::from_secs(n))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Duration, E> {
        u64::try_from(n).map(Duration::from_secs).map_err(|_| E::custom(format!("negative duration {n}")))
    }

    fn visit_f64<E: de::Error>(self, secs: f64) -> Result<Duration, E> {
        secs_to_duration(secs).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        parse_duration(text).map_err(E::custom)
    }
}

/// Serde adapter for `Duration` fields.
pub mod duration {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(DurationVisitor)
    }
}

struct SizeVisitor;

impl Visitor<'_> for SizeVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a size in bytes such as 1048576, \"64MB\" or \"1GiB\"")
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<u64, E> {
        Ok(n)
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<u64, E> {
        u64::try_from(n).map_err(|_| E::custom(format!("negative size {n}")))
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<u64, E> {
        Err(E::custom(format!("size {f} is not a whole number of bytes")))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<u64, E> {
        parse_size(text).map_err(E::custom)
    }
}

/// Serde adapter for byte-size fields.
pub mod size {
    use super::*;

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(*v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        d.deserialize_any(SizeVisitor)
    }
}

/// Serde adapter for optional byte-size fields (absent means "derive from the machine").
pub mod size_opt {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        d.deserialize_any(SizeVisitor).map(Some)
    }
}

/// A boolean that nats-server also accepts as `"true"`/`"on"`/`"false"`/`"off"`.
pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    struct FlagVisitor;
    impl Visitor<'_> for FlagVisitor {
        type Value = bool;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a boolean, or \"on\"/\"off\"")
        }

        fn visit_bool<E: de::Error>(self, b: bool) -> Result<bool, E> {
            Ok(b)
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<bool, E> {
            match text.to_ascii_lowercase().as_str() {
                "true" | "on" | "yes" => Ok(true),
                "false" | "off" | "no" => Ok(false),
                _ => Err(E::custom(format!("expected a boolean, got {text:?}"))),
            }
        }
    }
    d.deserialize_any(FlagVisitor)
}

impl Serialize for TlsVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            TlsVersion::V1_2 => "1.2",
            TlsVersion::V1_3 => "1.3",
        })
    }
}

impl<'de> Deserialize<'de> for TlsVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct VersionVisitor;
        impl Visitor<'_> for VersionVisitor {
            type Value = TlsVersion;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a TLS version, \"1.2\" or \"1.3\"")
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<TlsVersion, E> {
                self.visit_str(&v.to_string())
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<TlsVersion, E> {
                match text.trim() {
                    "1.2" => Ok(TlsVersion::V1_2),
                    "1.3" => Ok(TlsVersion::V1_3),
                    // nats-server refuses these too: Go dropped them as insecure.
                    "1.0" | "1.1" => Err(E::custom(format!("TLS {text} is not supported; use 1.2 or 1.3"))),
                    _ => Err(E::custom(format!("unknown TLS version {text:?}; use \"1.2\" or \"1.3\""))),
                }
            }
        }
        d.deserialize_any(VersionVisitor)
    }
}

impl Serialize for SyncInterval {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            SyncInterval::Always => s.serialize_str("always"),
            SyncInterval::Every(d) => s.serialize_str(&format_duration(*d)),
        }
    }
}

impl<'de> Deserialize<'de> for SyncInterval {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SyncVisitor;
        impl Visitor<'_> for SyncVisitor {
            type Value = SyncInterval;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"always\" or a positive duration such as \"1s\"")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<SyncInterval, E> {
                if text.trim().eq_ignore_ascii_case("always") {
                    return Ok(SyncInterval::Always);
                }
                DurationVisitor.visit_str(text).and_then(every)
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<SyncInterval, E> {
                every(Duration::from_secs(n))
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<SyncInterval, E> {
                DurationVisitor.visit_i64(n).and_then(every)
            }

            fn visit_f64<E: de::Error>(self, secs: f64) -> Result<SyncInterval, E> {
                DurationVisitor.visit_f64(secs).and_then(every)
            }
        }
        fn every<E: de::Error>(d: Duration) -> Result<SyncInterval, E> {
            if d.is_zero() {
                Err(E::custom("sync_interval must be \"always\" or longer than zero"))
            } else {
                Ok(SyncInterval::Every(d))
            }
        }
        d.deserialize_any(SyncVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_suffixes_follow_nats_server() {
        assert_eq!(parse_size("8MB"), Ok(8 * 1024 * 1024));
        assert_eq!(parse_size("8mb"), Ok(8 * 1024 * 1024));
        assert_eq!(parse_size("8M"), Ok(8_000_000));
        assert_eq!(parse_size("1k"), Ok(1000));
        assert_eq!(parse_size("1Ki"), Ok(1024));
        assert_eq!(parse_size("1KiB"), Ok(1024));
        assert_eq!(parse_size("2GB"), Ok(2 << 30));
        assert_eq!(parse_size("1T"), Ok(1_000_000_000_000));
        assert_eq!(parse_size("1pib"), Ok(1 << 50));
        assert_eq!(parse_size("1E"), Ok(1_000_000_000_000_000_000));
        assert_eq!(parse_size("42"), Ok(42));
        assert!(parse_size("1x").is_err());
        assert!(parse_size("1kbx").is_err());
        assert!(parse_size("99999E").is_err());
    }

    #[test]
    fn durations_are_go_style_or_seconds() {
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn formatted_durations_parse_back() {
        for d in [
            Duration::from_millis(250),
            Duration::from_secs(10),
            Duration::from_secs(120),
            Duration::from_secs(7200),
        ] {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }
}
