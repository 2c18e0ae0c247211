//! The small packets: PUBACK, PUBREC, PUBREL, PUBCOMP (spec 3.4–3.7), DISCONNECT (3.14) and
//! AUTH (3.15). In MQTT 5 each is an optional reason code plus optional properties; both are
//! left out on the wire when they are "Success" and empty, which is also what 3.1.1 looks like.

use bytes::{BufMut, BytesMut};

use super::error::{EncodeError, ErrorKind};
use super::properties::{Context, Properties};
use super::reason::ReasonCode;
use super::wire::{put_length_prefixed, Reader};
use super::ProtocolVersion;

/// PUBACK, PUBREC, PUBREL or PUBCOMP (the [`super::Packet`] variant says which).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub packet_id: u16,
    /// Always [`ReasonCode::Success`] on 3.1.1.
    pub reason: ReasonCode,
    pub properties: Properties,
}

impl Ack {
    /// A successful acknowledgement of `packet_id`.
    pub fn new(packet_id: u16) -> Ack {
        Ack { packet_id, reason: ReasonCode::Success, properties: Properties::default() }
    }

    /// `allowed` lists the reason codes a client may send in this packet.
    pub(crate) fn decode(
        r: &mut Reader,
        version: ProtocolVersion,
        packet: &'static str,
        allowed: &[ReasonCode],
    ) -> Result<Ack, ErrorKind> {
        let packet_id = match r.u16("packet identifier")? {
            0 => return Err(ErrorKind::PacketIdZero),
            id => id,
        };
        let (reason, properties) = match version {
            ProtocolVersion::V4 => (ReasonCode::Success, Properties::default()),
            ProtocolVersion::V5 => read_reason_and_properties(r, packet, allowed, Context::PubResponse)?,
        };
        r.finish(packet)?;
        Ok(Ack { packet_id, reason, properties })
    }

    pub(crate) fn encode(
        &self,
        byte1: u8,
        version: ProtocolVersion,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        put_length_prefixed(out, Some(byte1), 0, |out| {
            out.put_u16(self.packet_id);
            if version == ProtocolVersion::V5 {
                put_reason_and_properties(out, self.reason, &self.properties)?;
            }
            Ok(())
        })
    }
}

/// DISCONNECT. A 3.1.1 DISCONNECT is only ever sent by the client and has no content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    /// 0x00 is "normal disconnection"; 0x04 asks the server to publish the will anyway.
    pub reason: ReasonCode,
    pub properties: Properties,
}

impl Disconnect {
    pub fn new(reason: ReasonCode) -> Disconnect {
        Disconnect { reason, properties: Properties::default() }
    }

    pub(crate) fn decode(r: &mut Reader, version: ProtocolVersion) -> Result<Disconnect, ErrorKind> {
        let (reason, properties) = match version {
            ProtocolVersion::V4 => (ReasonCode::Success, Properties::default()),
            ProtocolVersion::V5 => read_reason_and_properties(
                r,
                "DISCONNECT",
                super::reason::DISCONNECT_FROM_CLIENT,
                Context::Disconnect,
            )?,
        };
        r.finish("DISCONNECT")?;
        Ok(Disconnect { reason, properties })
    }

    pub(crate) fn encode(&self, version: ProtocolVersion, out: &mut BytesMut) -> Result<(), EncodeError> {
        put_length_prefixed(out, Some(0xE0), 0, |out| {
            if version == ProtocolVersion::V5 {
                put_reason_and_properties(out, self.reason, &self.properties)?;
            }
            Ok(())
        })
    }
}

/// AUTH, MQTT 5's extended authentication exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// Success, continue authentication or re-authenticate.
    pub reason: ReasonCode,
    pub properties: Properties,
}

impl Auth {
    pub(crate) fn decode(r: &mut Reader) -> Result<Auth, ErrorKind> {
        let (reason, properties) =
            read_reason_and_properties(r, "AUTH", super::reason::AUTH_CODES, Context::Auth)?;
        r.finish("AUTH")?;
        Ok(Auth { reason, properties })
    }

    pub(crate) fn encode(&self, version: ProtocolVersion, out: &mut BytesMut) -> Result<(), EncodeError> {
        if version == ProtocolVersion::V4 {
            return Err(EncodeError::NotInVersion("AUTH"));
        }
        put_length_prefixed(out, Some(0xF0), 0, |out| {
            put_reason_and_properties(out, self.reason, &self.properties)
        })
    }
}

/// Reads the optional MQTT 5 reason code and properties that end these packets: absent means
/// success and no properties (spec 3.4.2.1, 3.14.2.1).
fn read_reason_and_properties(
    r: &mut Reader,
    packet: &'static str,
    allowed: &[ReasonCode],
    context: Context,
) -> Result<(ReasonCode, Properties), ErrorKind> {
    if r.is_empty() {
        return Ok((ReasonCode::Success, Properties::default()));
    }
    let byte = r.u8("reason code")?;
    let reason = ReasonCode::from_u8(byte).ok_or(ErrorKind::UnknownReasonCode(byte))?;
    if !allowed.contains(&reason) {
        return Err(ErrorKind::ReasonCodeNotAllowed { code: byte, packet });
    }
    let properties = if r.is_empty() { Properties::default() } else { Properties::decode(r, context)? };
    Ok((reason, properties))
}

/// Writes the reason code and properties, or nothing for success without properties.
fn put_reason_and_properties(
    out: &mut BytesMut,
    reason: ReasonCode,
    properties: &Properties,
) -> Result<(), EncodeError> {
    if reason == ReasonCode::Success && properties.is_empty() {
        return Ok(());
    }
    // The spec lets a zero property length be left out after the reason code too, but some
    // clients (rumqttc among them) then fail to read the packet: always write it.
    out.put_u8(reason.as_u8());
    properties.encode(out)
}
