//! Tests across packets: every validation rule with its exact error and reaction
//! (`validation`), round trips and interop with rumqttc's client codec (`round_trip`), and
//! property tests (split points, arbitrary bytes).

mod properties_based;
mod round_trip;
mod validation;

use bytes::{BufMut, BytesMut};

use super::*;

pub(super) const MAX: usize = 1 << 20;

/// `body` behind a fixed header with `byte1`.
pub(super) fn frame(byte1: u8, body: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.put_u8(byte1);
    super::wire::put_varint(&mut out, body.len());
    out.put_slice(body);
    out.to_vec()
}

/// A 16-bit length-prefixed string.
pub(super) fn s(text: &[u8]) -> Vec<u8> {
    let mut out = (text.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(text);
    out
}

/// Concatenates byte pieces.
pub(super) fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A CONNECT with protocol name `name`, `level`, `flags`, keep alive 60, then `rest` (MQTT 5
/// properties, client id, …).
pub(super) fn connect(name: &[u8], level: u8, flags: u8, rest: &[u8]) -> Vec<u8> {
    frame(0x10, &cat(&[&s(name), &[level, flags, 0, 60], rest]))
}

/// Decodes everything in `bytes` with `decoder`, expecting nothing left over.
pub(super) fn decode_all(decoder: &mut Decoder, bytes: &[u8]) -> Result<Vec<Packet>, MqttError> {
    let mut buf = BytesMut::from(bytes);
    let mut packets = Vec::new();
    while let Some(packet) = decoder.decode(&mut buf)? {
        packets.push(packet);
    }
    assert!(buf.is_empty(), "leftover {buf:?}");
    Ok(packets)
}

/// Decodes `bytes` expecting exactly one packet.
pub(super) fn decode_one(decoder: &mut Decoder, bytes: &[u8]) -> Result<Packet, MqttError> {
    let mut packets = decode_all(decoder, bytes)?;
    assert_eq!(packets.len(), 1, "{packets:?}");
    Ok(packets.remove(0))
}

pub(super) fn connected(version: ProtocolVersion) -> Decoder {
    Decoder::connected(MAX, version)
}

pub(super) fn encode(packet: &Packet, version: ProtocolVersion) -> BytesMut {
    let mut out = BytesMut::new();
    packet.encode(version, &mut out).unwrap();
    out
}
