//! Primitive encodings shared by every packet (spec 1.5): big-endian integers, variable byte
//! integers, and 16-bit length-prefixed strings and binary data.
//!
//! Reading goes through [`Reader`], a cursor over one packet's body that hands out `Bytes`
//! views and turns every short read into [`ErrorKind::Truncated`] instead of a panic.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::error::{EncodeError, ErrorKind};
use super::MqttStr;

/// Largest value of a variable byte integer (four bytes of seven bits).
pub(crate) const MAX_VARINT: usize = 268_435_455;

/// Parses a variable byte integer at the front of `buf`. `Ok(None)` if `buf` ends before the
/// last byte of the integer; an error if it would take more than four bytes.
pub(crate) fn parse_varint(buf: &[u8]) -> Result<Option<(usize, usize)>, ErrorKind> {
    let mut value = 0usize;
    for (i, byte) in buf.iter().enumerate().take(4) {
        value |= usize::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if buf.len() >= 4 {
        Err(ErrorKind::MalformedRemainingLength)
    } else {
        Ok(None)
    }
}

/// The bytes of `value` as a variable byte integer (`value` at most [`MAX_VARINT`]).
fn varint_bytes(mut value: usize) -> ([u8; 4], usize) {
    let mut bytes = [0u8; 4];
    let mut len = 0;
    for slot in bytes.iter_mut() {
        // Truncation intended: the low seven bits.
        let byte = (value & 0x7F) as u8;
        value >>= 7;
        len += 1;
        if value == 0 {
            *slot = byte;
            break;
        }
        *slot = byte | 0x80;
    }
    (bytes, len)
}

pub(crate) fn put_varint(out: &mut BytesMut, value: usize) {
    let (bytes, len) = varint_bytes(value);
    out.put_slice(bytes.get(..len).unwrap_or_default());
}

/// Writes a 16-bit length-prefixed field.
pub(crate) fn put_binary(out: &mut BytesMut, data: &[u8]) -> Result<(), EncodeError> {
    let len = u16::try_from(data.len()).map_err(|_| EncodeError::FieldTooLong)?;
    out.put_u16(len);
    out.put_slice(data);
    Ok(())
}

pub(crate) fn put_str(out: &mut BytesMut, s: &MqttStr) -> Result<(), EncodeError> {
    put_binary(out, s.as_bytes())
}

/// Appends `lead` (if any), then the length of what `body` writes plus `trailing` as a variable
/// byte integer, then what `body` writes. `trailing` counts bytes the caller appends afterwards
/// (a PUBLISH payload), so they are not copied through a scratch buffer.
///
/// The body is written once, after room for the longest length prefix; the prefix is then
/// filled in and the gap closed by moving the (small) body left.
pub(crate) fn put_length_prefixed(
    out: &mut BytesMut,
    lead: Option<u8>,
    trailing: usize,
    body: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let start = out.len();
    let reserved = usize::from(lead.is_some()) + 4;
    out.put_bytes(0, reserved);
    if let Err(e) = body(out) {
        out.truncate(start);
        return Err(e);
    }
    let body_len = out.len() - start - reserved;
    let total = body_len + trailing;
    if total > MAX_VARINT {
        out.truncate(start);
        return Err(EncodeError::TooLarge(total));
    }
    let (len_bytes, len_len) = varint_bytes(total);
    let lead_len = usize::from(lead.is_some());
    let gap = reserved - lead_len - len_len;
    if let (Some(slot), Some(bytes)) =
        (out.get_mut(start + gap + lead_len..start + reserved), len_bytes.get(..len_len))
    {
        slot.copy_from_slice(bytes);
    }
    if let (Some(lead), Some(slot)) = (lead, out.get_mut(start + gap)) {
        *slot = lead;
    }
    if gap > 0 {
        if let Some(tail) = out.get_mut(start..) {
            tail.copy_within(gap.., 0);
        }
        out.truncate(out.len() - gap);
    }
    Ok(())
}

/// A cursor over one packet's body.
#[derive(Debug)]
pub(crate) struct Reader {
    buf: Bytes,
}

impl Reader {
    pub(crate) fn new(buf: Bytes) -> Reader {
        Reader { buf }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, ErrorKind> {
        self.buf.try_get_u8().map_err(|_| ErrorKind::Truncated(what))
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, ErrorKind> {
        self.buf.try_get_u16().map_err(|_| ErrorKind::Truncated(what))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, ErrorKind> {
        self.buf.try_get_u32().map_err(|_| ErrorKind::Truncated(what))
    }

    pub(crate) fn varint(&mut self, what: &'static str) -> Result<usize, ErrorKind> {
        match parse_varint(&self.buf) {
            Ok(Some((value, len))) => {
                self.buf.advance(len);
                Ok(value)
            }
            Ok(None) => Err(ErrorKind::Truncated(what)),
            Err(_) => Err(ErrorKind::MalformedVarInt),
        }
    }

    pub(crate) fn take(&mut self, len: usize, what: &'static str) -> Result<Bytes, ErrorKind> {
        if len > self.buf.len() {
            return Err(ErrorKind::Truncated(what));
        }
        Ok(self.buf.split_to(len))
    }

    /// Everything left (a PUBLISH payload).
    pub(crate) fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    pub(crate) fn binary(&mut self, what: &'static str) -> Result<Bytes, ErrorKind> {
        let len = self.u16(what)?;
        self.take(usize::from(len), what)
    }

    pub(crate) fn string(&mut self, what: &'static str) -> Result<MqttStr, ErrorKind> {
        MqttStr::from_bytes(self.binary(what)?)
    }

    /// Fails with [`ErrorKind::TrailingBytes`] unless the body was read to its end.
    pub(crate) fn finish(&self, packet: &'static str) -> Result<(), ErrorKind> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(ErrorKind::TrailingBytes(packet))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_every_length_boundary() {
        for (value, len) in [
            (0, 1),
            (127, 1),
            (128, 2),
            (16_383, 2),
            (16_384, 3),
            (2_097_151, 3),
            (2_097_152, 4),
            (MAX_VARINT, 4),
        ] {
            let mut out = BytesMut::new();
            put_varint(&mut out, value);
            assert_eq!(out.len(), len);
            assert_eq!(parse_varint(&out), Ok(Some((value, out.len()))));
        }
    }

    #[test]
    fn a_fifth_varint_byte_is_malformed() {
        assert_eq!(parse_varint(&[0xFF, 0xFF, 0xFF, 0xFF, 0x01]), Err(ErrorKind::MalformedRemainingLength));
        assert_eq!(parse_varint(&[0xFF, 0xFF, 0xFF]), Ok(None));
    }

    #[test]
    fn length_prefix_closes_the_gap() {
        let mut out = BytesMut::from(&b"xy"[..]);
        put_length_prefixed(&mut out, Some(0x30), 3, |out| {
            out.put_slice(b"abc");
            Ok(())
        })
        .unwrap();
        assert_eq!(&out[..], b"xy\x30\x06abc");

        let mut out = BytesMut::new();
        let big = vec![7u8; 200];
        put_length_prefixed(&mut out, None, 0, |out| {
            out.put_slice(&big);
            Ok(())
        })
        .unwrap();
        assert_eq!(&out[..2], &[0xC8, 0x01]);
        assert_eq!(out.len(), 202);
    }
}
