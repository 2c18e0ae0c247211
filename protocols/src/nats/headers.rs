//! The NATS header block: `NATS/1.0[ <status>[ <description>]]\r\n` then `Name: value\r\n`
//! lines and a blank line. Names may repeat (multi-value). Lookups are exact-case, as in
//! nats-server.

use bytes::{BufMut, Bytes, BytesMut};

const VERSION_LINE: &[u8] = b"NATS/1.0";

/// Why a header block was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("header block does not start with NATS/1.0")]
    BadVersionLine,
    #[error("header block is not terminated by a blank line")]
    Unterminated,
    #[error("malformed header line")]
    BadLine,
    #[error("header block is not valid UTF-8")]
    NotUtf8,
}

/// A decoded header block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderMap {
    /// Inline status code (e.g. 503) when present.
    pub status: Option<u16>,
    /// Status description, when present.
    pub description: Option<String>,
    entries: Vec<(String, String)>,
}

impl HeaderMap {
    pub fn new() -> Self {
        Self::default()
    }

    /// A block with only a status line (`NATS/1.0 503`).
    pub fn with_status(status: u16, description: Option<&str>) -> Self {
        HeaderMap { status: Some(status), description: description.map(str::to_owned), entries: Vec::new() }
    }

    /// Appends a value (keeps earlier values of the same name).
    pub fn append(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.entries.push((name.into(), value.into()));
    }

    /// Replaces every value of `name` with one value.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        self.entries.retain(|(n, _)| *n != name);
        self.entries.push((name, value.into()));
    }

    /// Removes every value of `name`.
    pub fn remove(&mut self, name: &str) {
        self.entries.retain(|(n, _)| n != name);
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries.iter().filter(move |(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.status.is_none()
    }

    /// Decodes a raw block as sent in `HPUB`/`HMSG`.
    pub fn decode(raw: &[u8]) -> Result<HeaderMap, HeaderError> {
        let text = std::str::from_utf8(raw).map_err(|_| HeaderError::NotUtf8)?;
        let body = text.strip_suffix("\r\n\r\n").ok_or(HeaderError::Unterminated)?;
        let mut lines = body.split("\r\n");
        let first = lines.next().ok_or(HeaderError::BadVersionLine)?;
        let rest = first.strip_prefix("NATS/1.0").ok_or(HeaderError::BadVersionLine)?;
        let mut map = HeaderMap::new();
        let rest = rest.trim();
        if !rest.is_empty() {
            let (code, desc) = rest.split_once(' ').unwrap_or((rest, ""));
            map.status = Some(code.parse().map_err(|_| HeaderError::BadVersionLine)?);
            let desc = desc.trim();
            if !desc.is_empty() {
                map.description = Some(desc.to_owned());
            }
        }
        for line in lines {
            if line.is_empty() {
                continue;
            }
            let (name, value) = line.split_once(':').ok_or(HeaderError::BadLine)?;
            let name = name.trim();
            if name.is_empty() || name.contains(' ') {
                return Err(HeaderError::BadLine);
            }
            map.entries.push((name.to_owned(), value.trim().to_owned()));
        }
        Ok(map)
    }

    /// Encodes the block, terminated by the blank line.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(64);
        self.encode_into(&mut out);
        out.freeze()
    }

    pub fn encode_into(&self, out: &mut BytesMut) {
        out.put_slice(VERSION_LINE);
        if let Some(status) = self.status {
            out.put_u8(b' ');
            out.put_slice(itoa::Buffer::new().format(status).as_bytes());
            if let Some(desc) = &self.description {
                out.put_u8(b' ');
                out.put_slice(desc.as_bytes());
            }
        }
        out.put_slice(b"\r\n");
        for (n, v) in &self.entries {
            out.put_slice(n.as_bytes());
            out.put_slice(b": ");
            out.put_slice(v.as_bytes());
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"\r\n");
    }
}

/// Finds the first value of `name` in a raw block without decoding it all (hot-path lookups
/// such as `Nats-Msg-Id`).
pub fn find_raw<'a>(raw: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let mut lines = raw.split(|b| *b == b'\n').skip(1);
    lines.find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = memchr::memchr(b':', line)?;
        let (n, v) = line.split_at(colon);
        if n.trim_ascii() != name.as_bytes() {
            return None;
        }
        v.get(1..).map(<[u8]>::trim_ascii)
    })
}

/// The inline status code of a raw block, if any (`NATS/1.0 503` → 503).
pub fn raw_status(raw: &[u8]) -> Option<u16> {
    let first = raw.split(|b| *b == b'\n').next()?;
    let rest = first.strip_prefix(VERSION_LINE)?.trim_ascii();
    let code = rest.split(|b| *b == b' ').next()?;
    std::str::from_utf8(code).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_multi_value_headers_and_status() {
        let mut h = HeaderMap::with_status(408, Some("Request Timeout"));
        h.append("A", "1");
        h.append("A", "2");
        h.append("Nats-Msg-Id", "x");
        let raw = h.encode();
        assert_eq!(&raw[..], b"NATS/1.0 408 Request Timeout\r\nA: 1\r\nA: 2\r\nNats-Msg-Id: x\r\n\r\n");
        let back = HeaderMap::decode(&raw).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.get_all("A").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(find_raw(&raw, "Nats-Msg-Id"), Some(&b"x"[..]));
        assert_eq!(find_raw(&raw, "B"), None);
        assert_eq!(raw_status(&raw), Some(408));
    }

    #[test]
    fn status_only_block() {
        let h = HeaderMap::decode(b"NATS/1.0 503\r\n\r\n").unwrap();
        assert_eq!(h.status, Some(503));
        assert_eq!(h.description, None);
        assert_eq!(raw_status(b"NATS/1.0\r\n\r\n"), None);
    }

    #[test]
    fn malformed_blocks_are_refused() {
        assert_eq!(HeaderMap::decode(b"HTTP/1.1\r\n\r\n"), Err(HeaderError::BadVersionLine));
        assert_eq!(HeaderMap::decode(b"NATS/1.0\r\nA: b\r\n"), Err(HeaderError::Unterminated));
        assert_eq!(HeaderMap::decode(b"NATS/1.0\r\nnocolon\r\n\r\n"), Err(HeaderError::BadLine));
    }
}
