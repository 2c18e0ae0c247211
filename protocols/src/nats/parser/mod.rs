//! Parser for client → server operations.
//!
//! "Check, then parse": [`Parser::parse`] looks for a complete operation at the front of the
//! buffer. If there is one it is split off and returned; if not, `Ok(None)` says "read more" and
//! the buffer is left untouched. Limits are checked on the control line alone, before a payload
//! is buffered, so an oversized `PUB` is refused without reading its body.
//!
//! Lines end with `\n`; a preceding `\r` is optional (nats-server accepts both). Operation names
//! are case-insensitive. Arguments are separated by runs of spaces or tabs.

use bytes::{Bytes, BytesMut};

/// One client operation. Byte fields are slices of the read buffer (no copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOp {
    /// `CONNECT {json}`: the JSON text, decoded by the caller into [`super::ConnectOptions`].
    Connect(Bytes),
    /// `PUB` or `HPUB`. `headers` is the raw header block (including the final blank line).
    Pub {
        subject: Bytes,
        reply: Option<Bytes>,
        headers: Option<Bytes>,
        payload: Bytes,
    },
    /// `SUB <subject> [queue] <sid>`.
    Sub {
        subject: Bytes,
        queue: Option<Bytes>,
        sid: Bytes,
    },
    /// `UNSUB <sid> [max_msgs]`.
    Unsub {
        sid: Bytes,
        max_msgs: Option<u64>,
    },
    Ping,
    Pong,
    /// `+OK` (clients may echo it; ignored).
    Ok,
    /// `-ERR` from a client (ignored, as nats-server does).
    Err,
}

/// Limits checked while parsing.
#[derive(Debug, Clone, Copy)]
pub struct ParserLimits {
    /// Largest accepted payload (headers + body), bytes.
    pub max_payload: usize,
    /// Longest accepted control line (the operation and its arguments), bytes.
    pub max_control_line: usize,
    /// Whether `HPUB` is allowed (the client sent `headers: true`).
    pub headers: bool,
}

impl Default for ParserLimits {
    fn default() -> Self {
        ParserLimits { max_payload: 1024 * 1024, max_control_line: 4096, headers: true }
    }
}

/// Why input was refused. Every variant closes the connection except where noted by the server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("Unknown Protocol Operation")]
    UnknownOp,
    #[error("maximum control line exceeded")]
    MaxControlLine { max: usize, len: usize },
    #[error("Maximum Payload Violation")]
    MaxPayload { size: usize, max: usize },
    /// Wrong number or form of arguments for `op`.
    #[error("{op} parse error: bad arguments")]
    BadArgs { op: &'static str },
    /// A payload was not followed by CRLF.
    #[error("payload not terminated by CRLF")]
    BadPayloadTerminator,
    /// `HPUB` without `headers: true`.
    #[error("message headers not supported")]
    HeadersNotSupported,
    /// `HPUB` header length larger than its total length.
    #[error("HPUB parse error: header size larger than total size")]
    BadHeaderSize,
}

/// Parser state: only the limits. The parser is stateless between calls (a partial operation
/// stays in the caller's buffer), which keeps it trivially restartable and fuzzable.
#[derive(Debug, Clone, Default)]
pub struct Parser {
    pub limits: ParserLimits,
}

/// A control line found at the front of the buffer.
struct Line<'a> {
    /// Bytes of the line without the terminator.
    text: &'a [u8],
    /// Bytes consumed including the terminator.
    consumed: usize,
}

fn find_line(buf: &[u8]) -> Option<Line<'_>> {
    let nl = memchr::memchr(b'\n', buf)?;
    let end = if nl > 0 && buf.get(nl - 1) == Some(&b'\r') { nl - 1 } else { nl };
    Some(Line { text: buf.get(..end)?, consumed: nl + 1 })
}

/// Up to `N` argument ranges (start, end) within `text`; `None` if there are more than `N`.
fn split_args<const N: usize>(text: &[u8], from: usize) -> Option<([(usize, usize); N], usize)> {
    let mut out = [(0usize, 0usize); N];
    let mut count = 0;
    let mut start: Option<usize> = None;
    for (i, b) in text.iter().enumerate().skip(from) {
        let space = matches!(b, b' ' | b'\t');
        match (space, start) {
            (true, Some(s)) => {
                *out.get_mut(count)? = (s, i);
                count += 1;
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        *out.get_mut(count)? = (s, text.len());
        count += 1;
    }
    Some((out, count))
}

/// Parses a decimal size with no sign; `None` if empty, not all digits, or overflowing.
fn parse_size(text: &[u8]) -> Option<usize> {
    if text.is_empty() || text.len() > 19 {
        return None;
    }
    let mut n: usize = 0;
    for b in text {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(usize::from(b - b'0'))?;
    }
    Some(n)
}

/// Matches the operation name case-insensitively; returns it and where its arguments begin.
fn op_name(text: &[u8]) -> Option<(&'static str, usize)> {
    const OPS: [&str; 8] = ["CONNECT", "HPUB", "PUB", "SUB", "UNSUB", "PING", "PONG", "+OK"];
    let name_end = text.iter().position(|b| matches!(b, b' ' | b'\t')).unwrap_or(text.len());
    let name = text.get(..name_end)?;
    if let Some(op) = OPS.iter().find(|op| op.as_bytes().eq_ignore_ascii_case(name)) {
        return Some((op, name_end));
    }
    // `-ERR 'text'` has its argument after a space; match its name alone.
    if name.eq_ignore_ascii_case(b"-ERR") {
        return Some(("-ERR", name_end));
    }
    None
}

impl Parser {
    pub fn new(limits: ParserLimits) -> Self {
        Parser { limits }
    }

    /// Parses one operation from the front of `buf`, splitting it off on success.
    /// `Ok(None)`: incomplete, read more (the buffer is untouched).
    pub fn parse(&self, buf: &mut BytesMut) -> Result<Option<ClientOp>, ParseError> {
        let Some(line) = find_line(buf) else {
            if buf.len() > self.limits.max_control_line {
                return Err(ParseError::MaxControlLine { max: self.limits.max_control_line, len: buf.len() });
            }
            // An op name that can never become valid is refused now, not after 4 KiB.
            if !buf.is_empty() && !self.could_be_op(buf) {
                return Err(ParseError::UnknownOp);
            }
            return Ok(None);
        };
        let (op, args_at) = op_name(line.text).ok_or(ParseError::UnknownOp)?;
        let text = line.text;
        let consumed = line.consumed;
        if text.len() > self.limits.max_control_line {
            return Err(ParseError::MaxControlLine { max: self.limits.max_control_line, len: text.len() });
        }
        match op {
            "PUB" => self.parse_pub(buf, args_at, text.len(), consumed, false),
            "HPUB" => self.parse_pub(buf, args_at, text.len(), consumed, true),
            "SUB" => {
                let (a, n) = split_args::<3>(text, args_at).ok_or(ParseError::BadArgs { op: "SUB" })?;
                let line = buf.split_to(consumed).freeze();
                let s = |i: usize| a.get(i).map(|&(s, e)| line.slice(s..e));
                match n {
                    2 => Ok(Some(ClientOp::Sub {
                        subject: s(0).ok_or(ParseError::BadArgs { op: "SUB" })?,
                        queue: None,
                        sid: s(1).ok_or(ParseError::BadArgs { op: "SUB" })?,
                    })),
                    3 => Ok(Some(ClientOp::Sub {
                        subject: s(0).ok_or(ParseError::BadArgs { op: "SUB" })?,
                        queue: s(1),
                        sid: s(2).ok_or(ParseError::BadArgs { op: "SUB" })?,
                    })),
                    _ => Err(ParseError::BadArgs { op: "SUB" }),
                }
            }
            "UNSUB" => {
                let (a, n) = split_args::<2>(text, args_at).ok_or(ParseError::BadArgs { op: "UNSUB" })?;
                let max_msgs = match (n, a.get(1)) {
                    (1, _) => None,
                    (2, Some(&(s, e))) => {
                        Some(text.get(s..e).and_then(parse_size).ok_or(ParseError::BadArgs { op: "UNSUB" })?
                            as u64)
                    }
                    _ => return Err(ParseError::BadArgs { op: "UNSUB" }),
                };
                let (s, e) = *a.first().ok_or(ParseError::BadArgs { op: "UNSUB" })?;
                let line = buf.split_to(consumed).freeze();
                Ok(Some(ClientOp::Unsub { sid: line.slice(s..e), max_msgs }))
            }
            "CONNECT" => {
                let json_start = text
                    .iter()
                    .skip(args_at)
                    .position(|b| !matches!(b, b' ' | b'\t'))
                    .map_or(text.len(), |p| p + args_at);
                let end = text.len();
                let line = buf.split_to(consumed).freeze();
                Ok(Some(ClientOp::Connect(line.slice(json_start..end))))
            }
            "PING" | "PONG" | "+OK" | "-ERR" => {
                let _ = buf.split_to(consumed);
                Ok(Some(match op {
                    "PING" => ClientOp::Ping,
                    "PONG" => ClientOp::Pong,
                    "+OK" => ClientOp::Ok,
                    _ => ClientOp::Err,
                }))
            }
            _ => Err(ParseError::UnknownOp),
        }
    }

    fn parse_pub(
        &self,
        buf: &mut BytesMut,
        args_at: usize,
        text_len: usize,
        line_len: usize,
        with_headers: bool,
    ) -> Result<Option<ClientOp>, ParseError> {
        let op = if with_headers { "HPUB" } else { "PUB" };
        if with_headers && !self.limits.headers {
            return Err(ParseError::HeadersNotSupported);
        }
        let text = buf.get(..text_len).ok_or(ParseError::BadArgs { op })?;
        let (a, n) = split_args::<4>(text, args_at).ok_or(ParseError::BadArgs { op })?;
        let arg = |i: usize| a.get(i).and_then(|&(s, e)| text.get(s..e));
        let size_at = |i: usize| arg(i).and_then(parse_size).ok_or(ParseError::BadArgs { op });
        // (reply index, header size, total size)
        let (reply_idx, hdr_len, total) = match (with_headers, n) {
            (false, 2) => (None, 0, size_at(1)?),
            (false, 3) => (Some(1), 0, size_at(2)?),
            (true, 3) => (None, size_at(1)?, size_at(2)?),
            (true, 4) => (Some(1), size_at(2)?, size_at(3)?),
            _ => return Err(ParseError::BadArgs { op }),
        };
        if total > self.limits.max_payload {
            return Err(ParseError::MaxPayload { size: total, max: self.limits.max_payload });
        }
        if hdr_len > total {
            return Err(ParseError::BadHeaderSize);
        }
        let frame_len = line_len + total + 2;
        if buf.len() < frame_len {
            return Ok(None);
        }
        if buf.get(line_len + total..frame_len) != Some(b"\r\n".as_slice()) {
            return Err(ParseError::BadPayloadTerminator);
        }
        let subject = *a.first().ok_or(ParseError::BadArgs { op })?;
        let reply = reply_idx.and_then(|i| a.get(i).copied());
        let frame = buf.split_to(frame_len).freeze();
        let body_at = line_len;
        Ok(Some(ClientOp::Pub {
            subject: frame.slice(subject.0..subject.1),
            reply: reply.map(|(s, e)| frame.slice(s..e)),
            headers: with_headers.then(|| frame.slice(body_at..body_at + hdr_len)),
            payload: frame.slice(body_at + hdr_len..body_at + total),
        }))
    }

    /// True when `partial` (no newline yet) is a prefix of some operation name or starts one.
    fn could_be_op(&self, partial: &[u8]) -> bool {
        const NAMES: [&[u8]; 9] =
            [b"CONNECT", b"HPUB", b"PUB", b"SUB", b"UNSUB", b"PING", b"PONG", b"+OK", b"-ERR"];
        let name_end = partial.iter().position(|b| matches!(b, b' ' | b'\t' | b'\r'));
        let name = match name_end {
            Some(e) => partial.get(..e).unwrap_or(partial),
            None => partial,
        };
        NAMES.iter().any(|n| match name_end {
            Some(_) => n.eq_ignore_ascii_case(name),
            None => {
                n.len() >= name.len() && n.get(..name.len()).is_some_and(|p| p.eq_ignore_ascii_case(name))
            }
        })
    }
}

#[cfg(test)]
mod tests;
