//! The packet model, the [`Decoder`] for bytes from a client, and [`Packet::encode`].
//!
//! "Check, then parse": [`Decoder::decode`] checks the first byte (packet type and its reserved
//! flags) as soon as it arrives, then the remaining length against the packet type and
//! `max_packet_size`, and only then waits for the body. `Ok(None)` leaves the buffer untouched
//! (it may reserve room for the announced body); a whole packet is split off the buffer and
//! decoded from that `Bytes`, so every field of the result is a view of it.

use bytes::BytesMut;

use super::ack::{Ack, Auth, Disconnect};
use super::connect::{read_protocol, ConnAck, Connect};
use super::error::{EncodeError, ErrorKind, MqttError, Phase};
use super::publish::Publish;
use super::reason::{PUBACK_FROM_CLIENT, PUBREL_FROM_CLIENT};
use super::subscribe::{SubAck, Subscribe, UnsubAck, Unsubscribe};
use super::wire::{parse_varint, Reader};
use super::ProtocolVersion;

/// Every MQTT control packet, both directions and both versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// Boxed: CONNECT is rare and the largest packet; the others stay small to move around.
    Connect(Box<Connect>),
    ConnAck(ConnAck),
    Publish(Publish),
    PubAck(Ack),
    PubRec(Ack),
    PubRel(Ack),
    PubComp(Ack),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(UnsubAck),
    PingReq,
    PingResp,
    Disconnect(Disconnect),
    Auth(Auth),
}

impl Packet {
    /// The packet's name, for logs and traces.
    pub fn name(&self) -> &'static str {
        match self {
            Packet::Connect(_) => "CONNECT",
            Packet::ConnAck(_) => "CONNACK",
            Packet::Publish(_) => "PUBLISH",
            Packet::PubAck(_) => "PUBACK",
            Packet::PubRec(_) => "PUBREC",
            Packet::PubRel(_) => "PUBREL",
            Packet::PubComp(_) => "PUBCOMP",
            Packet::Subscribe(_) => "SUBSCRIBE",
            Packet::SubAck(_) => "SUBACK",
            Packet::Unsubscribe(_) => "UNSUBSCRIBE",
            Packet::UnsubAck(_) => "UNSUBACK",
            Packet::PingReq => "PINGREQ",
            Packet::PingResp => "PINGRESP",
            Packet::Disconnect(_) => "DISCONNECT",
            Packet::Auth(_) => "AUTH",
        }
    }

    /// Appends the packet, encoded for `version`, to `out`. On 3.1.1 properties are dropped and
    /// reason codes become return codes; AUTH has no 3.1.1 form. (CONNECT is encoded for its
    /// own `version` field.) On error nothing is appended.
    pub fn encode(&self, version: ProtocolVersion, out: &mut BytesMut) -> Result<(), EncodeError> {
        match self {
            Packet::Connect(connect) => connect.encode(out),
            Packet::ConnAck(ack) => ack.encode(version, out),
            Packet::Publish(publish) => publish.encode(version, out),
            Packet::PubAck(ack) => ack.encode(0x40, version, out),
            Packet::PubRec(ack) => ack.encode(0x50, version, out),
            Packet::PubRel(ack) => ack.encode(0x62, version, out),
            Packet::PubComp(ack) => ack.encode(0x70, version, out),
            Packet::Subscribe(subscribe) => subscribe.encode(version, out),
            Packet::SubAck(ack) => ack.encode(version, out),
            Packet::Unsubscribe(unsubscribe) => unsubscribe.encode(version, out),
            Packet::UnsubAck(ack) => ack.encode(version, out),
            Packet::PingReq => {
                out.extend_from_slice(&[0xC0, 0]);
                Ok(())
            }
            Packet::PingResp => {
                out.extend_from_slice(&[0xD0, 0]);
                Ok(())
            }
            Packet::Disconnect(disconnect) => disconnect.encode(version, out),
            Packet::Auth(auth) => auth.encode(version, out),
        }
    }
}

const CONNECT: u8 = 1;
const PUBLISH: u8 = 3;
const PUBACK: u8 = 4;
const PUBREC: u8 = 5;
const PUBREL: u8 = 6;
const PUBCOMP: u8 = 7;
const SUBSCRIBE: u8 = 8;
const UNSUBSCRIBE: u8 = 10;
const PINGREQ: u8 = 12;
const DISCONNECT: u8 = 14;
const AUTH: u8 = 15;

/// Decodes the packets a client sends, for one connection.
#[derive(Debug, Clone)]
pub struct Decoder {
    /// Largest accepted packet, fixed header included (what MQTT 5 calls the maximum packet
    /// size; announce the same value in CONNACK).
    max_packet_size: usize,
    /// Learned from CONNECT; `None` until then, when only CONNECT is accepted.
    version: Option<ProtocolVersion>,
    /// Whether CONNECT's session expiry was 0, in which case DISCONNECT may not raise it
    /// ([MQTT-3.14.2-2]).
    session_expiry_was_zero: bool,
}

impl Decoder {
    /// A decoder for a new connection: the first packet must be CONNECT.
    pub fn new(max_packet_size: usize) -> Decoder {
        Decoder { max_packet_size, version: None, session_expiry_was_zero: true }
    }

    /// A decoder for a connection whose CONNECT was already handled, e.g. to fuzz or test the
    /// later packets of one version directly.
    pub fn connected(max_packet_size: usize, version: ProtocolVersion) -> Decoder {
        Decoder { version: Some(version), ..Decoder::new(max_packet_size) }
    }

    /// The version of the client's CONNECT, once one was decoded.
    pub fn version(&self) -> Option<ProtocolVersion> {
        self.version
    }

    pub fn max_packet_size(&self) -> usize {
        self.max_packet_size
    }

    /// Changes the limit for the packets still to come, e.g. once the client is authenticated
    /// and its account's limit is known.
    pub fn set_max_packet_size(&mut self, max_packet_size: usize) {
        self.max_packet_size = max_packet_size;
    }

    /// Decodes the packet at the front of `buf`: `Ok(Some)` with the packet split off `buf`,
    /// `Ok(None)` when more bytes are needed, or the error and what to tell the client before
    /// closing. After an error the connection must be closed; the decoder is not reusable.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, MqttError> {
        let phase = match self.version {
            None => Phase::Unknown,
            Some(version) => Phase::Connected(version),
        };
        let fail = |kind| MqttError::new(kind, phase);
        let Some(&byte1) = buf.first() else {
            return Ok(None);
        };
        let packet_type = byte1 >> 4;
        let flags = byte1 & 0x0F;
        self.check_first_byte(packet_type, flags).map_err(fail)?;
        let Some((remaining, len_len)) = parse_varint(buf.get(1..).unwrap_or_default()).map_err(fail)? else {
            return Ok(None);
        };
        self.check_remaining_length(packet_type, remaining).map_err(fail)?;
        let total = 1 + len_len + remaining;
        if total > self.max_packet_size {
            return Err(fail(ErrorKind::PacketTooLarge { size: total, max: self.max_packet_size }));
        }
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        let mut frame = buf.split_to(total).freeze();
        let mut r = Reader::new(frame.split_off(1 + len_len));
        let packet = match self.version {
            None => self.decode_connect(&mut r)?,
            Some(version) => self.decode_after_connect(packet_type, flags, &mut r, version).map_err(fail)?,
        };
        Ok(Some(packet))
    }

    /// The packet type and the fixed header flags, which are known from the first byte.
    fn check_first_byte(&self, packet_type: u8, flags: u8) -> Result<(), ErrorKind> {
        let Some(version) = self.version else {
            if packet_type != CONNECT {
                return Err(ErrorKind::FirstPacketNotConnect(packet_type));
            }
            return check_flags(packet_type, flags, 0);
        };
        match packet_type {
            CONNECT => Err(ErrorKind::SecondConnect),
            // Flags carry DUP, QoS and RETAIN; they are checked with the packet.
            PUBLISH => Ok(()),
            PUBACK | PUBREC | PUBCOMP | PINGREQ | DISCONNECT => check_flags(packet_type, flags, 0),
            // [MQTT-3.6.1-1], [MQTT-3.8.1-1], [MQTT-3.10.1-1]
            PUBREL | SUBSCRIBE | UNSUBSCRIBE => check_flags(packet_type, flags, 0b0010),
            AUTH if version == ProtocolVersion::V5 => check_flags(packet_type, flags, 0),
            2 => Err(ErrorKind::UnexpectedPacket("CONNACK")),
            9 => Err(ErrorKind::UnexpectedPacket("SUBACK")),
            11 => Err(ErrorKind::UnexpectedPacket("UNSUBACK")),
            13 => Err(ErrorKind::UnexpectedPacket("PINGRESP")),
            other => Err(ErrorKind::ReservedPacketType(other)),
        }
    }

    /// Packets of fixed size are refused before their body is awaited, as nats-server does.
    fn check_remaining_length(&self, packet_type: u8, len: usize) -> Result<(), ErrorKind> {
        let v4 = self.version == Some(ProtocolVersion::V4);
        let ok = match packet_type {
            PUBACK | PUBREC | PUBREL | PUBCOMP if v4 => len == 2,
            PUBACK | PUBREC | PUBREL | PUBCOMP => len >= 2,
            DISCONNECT if v4 => len == 0,
            PINGREQ => len == 0,
            _ => true,
        };
        if ok {
            Ok(())
        } else {
            Err(ErrorKind::InvalidRemainingLength { packet: type_name(packet_type), len })
        }
    }

    fn decode_connect(&mut self, r: &mut Reader) -> Result<Packet, MqttError> {
        let version = read_protocol(r).map_err(|kind| MqttError::new(kind, Phase::Unknown))?;
        let connect =
            Connect::decode(r, version).map_err(|kind| MqttError::new(kind, Phase::Connect(version)))?;
        self.version = Some(version);
        self.session_expiry_was_zero = connect.properties.session_expiry_interval.unwrap_or(0) == 0;
        Ok(Packet::Connect(Box::new(connect)))
    }

    fn decode_after_connect(
        &self,
        packet_type: u8,
        flags: u8,
        r: &mut Reader,
        version: ProtocolVersion,
    ) -> Result<Packet, ErrorKind> {
        Ok(match packet_type {
            PUBLISH => Packet::Publish(Publish::decode(flags, r, version)?),
            PUBACK => Packet::PubAck(Ack::decode(r, version, "PUBACK", PUBACK_FROM_CLIENT)?),
            PUBREC => Packet::PubRec(Ack::decode(r, version, "PUBREC", PUBACK_FROM_CLIENT)?),
            PUBREL => Packet::PubRel(Ack::decode(r, version, "PUBREL", PUBREL_FROM_CLIENT)?),
            PUBCOMP => Packet::PubComp(Ack::decode(r, version, "PUBCOMP", PUBREL_FROM_CLIENT)?),
            SUBSCRIBE => Packet::Subscribe(Subscribe::decode(r, version)?),
            UNSUBSCRIBE => Packet::Unsubscribe(Unsubscribe::decode(r, version)?),
            PINGREQ => Packet::PingReq,
            DISCONNECT => {
                let disconnect = Disconnect::decode(r, version)?;
                let expiry = disconnect.properties.session_expiry_interval.unwrap_or(0);
                if self.session_expiry_was_zero && expiry != 0 {
                    return Err(ErrorKind::SessionExpiryAfterZero);
                }
                Packet::Disconnect(disconnect)
            }
            AUTH => Packet::Auth(Auth::decode(r)?),
            // `check_first_byte` let no other type through.
            other => return Err(ErrorKind::ReservedPacketType(other)),
        })
    }
}

fn check_flags(packet_type: u8, flags: u8, expected: u8) -> Result<(), ErrorKind> {
    if flags == expected {
        Ok(())
    } else {
        Err(ErrorKind::InvalidFixedHeaderFlags { packet_type, flags })
    }
}

fn type_name(packet_type: u8) -> &'static str {
    match packet_type {
        PUBACK => "PUBACK",
        PUBREC => "PUBREC",
        PUBREL => "PUBREL",
        PUBCOMP => "PUBCOMP",
        PINGREQ => "PINGREQ",
        DISCONNECT => "DISCONNECT",
        _ => "packet",
    }
}
