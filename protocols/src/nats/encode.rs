//! Encoders for server → client frames. Each appends to a caller-owned buffer so a connection
//! can batch many frames into one write.

use bytes::{BufMut, BytesMut};

use super::info::ServerInfo;

pub const PING: &[u8] = b"PING\r\n";
pub const PONG: &[u8] = b"PONG\r\n";
pub const OK: &[u8] = b"+OK\r\n";

/// Appends `MSG` (no headers) or `HMSG` (with a header block).
pub fn msg(
    out: &mut BytesMut,
    subject: &[u8],
    sid: &[u8],
    reply: Option<&[u8]>,
    headers: Option<&[u8]>,
    payload: &[u8],
) {
    let mut num = itoa::Buffer::new();
    let hdr_len = headers.map_or(0, <[u8]>::len);
    out.reserve(subject.len() + sid.len() + reply.map_or(0, <[u8]>::len) + hdr_len + payload.len() + 40);
    out.put_slice(if headers.is_some() { b"HMSG " } else { b"MSG " });
    out.put_slice(subject);
    out.put_u8(b' ');
    out.put_slice(sid);
    out.put_u8(b' ');
    if let Some(reply) = reply {
        out.put_slice(reply);
        out.put_u8(b' ');
    }
    if let Some(headers) = headers {
        out.put_slice(num.format(hdr_len).as_bytes());
        out.put_u8(b' ');
        out.put_slice(num.format(hdr_len + payload.len()).as_bytes());
        out.put_slice(b"\r\n");
        out.put_slice(headers);
    } else {
        out.put_slice(num.format(payload.len()).as_bytes());
        out.put_slice(b"\r\n");
    }
    out.put_slice(payload);
    out.put_slice(b"\r\n");
}

/// Appends `INFO {json}`.
pub fn info(out: &mut BytesMut, info: &ServerInfo) {
    out.put_slice(b"INFO ");
    // Serializing a plain struct of strings, numbers and bools cannot fail.
    if let Ok(json) = serde_json::to_vec(info) {
        out.put_slice(&json);
    }
    out.put_slice(b"\r\n");
}

/// Appends `-ERR '<text>'`.
pub fn err(out: &mut BytesMut, text: &str) {
    out.put_slice(b"-ERR '");
    out.put_slice(text.as_bytes());
    out.put_slice(b"'\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        let mut out = BytesMut::new();
        msg(&mut out, b"a.b", b"7", None, None, b"hi");
        msg(&mut out, b"a", b"1", Some(b"r"), Some(b"NATS/1.0\r\n\r\n"), b"x");
        err(&mut out, "Stale Connection");
        assert_eq!(
            &out[..],
            b"MSG a.b 7 2\r\nhi\r\nHMSG a 1 r 12 13\r\nNATS/1.0\r\n\r\nx\r\n-ERR 'Stale Connection'\r\n"
        );
    }
}
