//! CONNECT (spec 3.1 in both versions) and CONNACK (3.2).
//!
//! CONNECT is decoded in two steps so that the [`super::Decoder`] knows the protocol version
//! before anything else can fail: a malformed MQTT 5 CONNECT gets an MQTT 5 CONNACK with a
//! reason code, a malformed 3.1.1 one is just closed.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::{EncodeError, ErrorKind};
use super::properties::{Context, Properties};
use super::reason::ReasonCode;
use super::topic::validate_topic_name;
use super::wire::{put_binary, put_length_prefixed, put_str, Reader};
use super::{MqttStr, ProtocolVersion, QoS};

const FLAG_RESERVED: u8 = 0x01;
const FLAG_CLEAN_START: u8 = 0x02;
const FLAG_WILL: u8 = 0x04;
const FLAG_WILL_QOS_SHIFT: u8 = 3;
const FLAG_WILL_RETAIN: u8 = 0x20;
const FLAG_PASSWORD: u8 = 0x40;
const FLAG_USERNAME: u8 = 0x80;

/// A client's CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    pub version: ProtocolVersion,
    /// "Clean session" in 3.1.1, "clean start" in MQTT 5.
    pub clean_start: bool,
    /// Seconds; 0 turns keep alive off.
    pub keep_alive: u16,
    /// May be empty: the server then assigns one (3.1.1 only with `clean_start`).
    pub client_id: MqttStr,
    pub will: Option<Will>,
    pub username: Option<MqttStr>,
    /// Binary data, not a string, in both versions.
    pub password: Option<Bytes>,
    pub properties: Properties,
}

/// The message the server publishes for a client that goes away without DISCONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    /// A topic name: not empty, no wildcards.
    pub topic: MqttStr,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// MQTT 5 will properties (will delay, message expiry, content type, …).
    pub properties: Properties,
}

/// The server's answer to CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    /// Written as 0 when `code` is a refusal, as the spec requires ([MQTT-3.2.2-6]).
    pub session_present: bool,
    /// MQTT 5 code; 3.1.1 clients get [`ReasonCode::v4_connack_code`].
    pub code: ReasonCode,
    pub properties: Properties,
}

/// Reads the protocol name and level, the part of CONNECT that decides how to read the rest.
/// MQTT 3.1 (`MQIsdp`, level 3) is refused as an unsupported version, like nats-server, but
/// with the CONNACK 0x01 a 3.1 client understands.
pub(crate) fn read_protocol(r: &mut Reader) -> Result<ProtocolVersion, ErrorKind> {
    let name = r.binary("protocol name")?;
    let level = r.u8("protocol level")?;
    match (name.as_ref(), level) {
        (b"MQTT", 4) => Ok(ProtocolVersion::V4),
        (b"MQTT", 5) => Ok(ProtocolVersion::V5),
        (b"MQTT", level) | (b"MQIsdp", level @ 3) => Err(ErrorKind::UnsupportedProtocolVersion(level)),
        _ => Err(ErrorKind::UnknownProtocolName),
    }
}

impl Connect {
    /// Reads the rest of a CONNECT after [`read_protocol`].
    pub(crate) fn decode(r: &mut Reader, version: ProtocolVersion) -> Result<Connect, ErrorKind> {
        let v5 = version == ProtocolVersion::V5;
        let flags = r.u8("connect flags")?;
        if flags & FLAG_RESERVED != 0 {
            return Err(ErrorKind::ConnectReservedFlag);
        }
        let clean_start = flags & FLAG_CLEAN_START != 0;
        let has_will = flags & FLAG_WILL != 0;
        let will_qos_bits = (flags >> FLAG_WILL_QOS_SHIFT) & 0b11;
        let will_retain = flags & FLAG_WILL_RETAIN != 0;
        let has_password = flags & FLAG_PASSWORD != 0;
        let has_username = flags & FLAG_USERNAME != 0;
        // [MQTT-3.1.2-11], [MQTT-3.1.2-13], [MQTT-3.1.2-15]
        if !has_will && (will_qos_bits != 0 || will_retain) {
            return Err(ErrorKind::WillFlagsWithoutWill);
        }
        // [MQTT-3.1.2-14]
        let will_qos = QoS::from_bits(will_qos_bits).ok_or(ErrorKind::InvalidQoS)?;
        // [MQTT-3.1.2-22]; MQTT 5 allows a password alone (e.g. a token).
        if !v5 && has_password && !has_username {
            return Err(ErrorKind::PasswordWithoutUsername);
        }
        let keep_alive = r.u16("keep alive")?;
        let properties = if v5 { Properties::decode(r, Context::Connect)? } else { Properties::default() };

        let client_id = r.string("client ID")?;
        // [MQTT-3.1.3-8]; MQTT 5 lets the server assign an ID whatever the clean start flag.
        if !v5 && client_id.is_empty() && !clean_start {
            return Err(ErrorKind::EmptyClientIdWithoutCleanSession);
        }
        let will = if has_will {
            let properties = if v5 { Properties::decode(r, Context::Will)? } else { Properties::default() };
            let topic = r.string("will topic")?;
            validate_topic_name(topic.as_str()).map_err(ErrorKind::InvalidTopicName)?;
            let payload = r.binary("will message")?;
            Some(Will { topic, payload, qos: will_qos, retain: will_retain, properties })
        } else {
            None
        };
        let username = if has_username {
            let username = r.string("user name")?;
            // nats-server refuses an empty user name with "bad user name or password".
            if username.is_empty() {
                return Err(ErrorKind::EmptyUsername);
            }
            Some(username)
        } else {
            None
        };
        let password = if has_password { Some(r.binary("password")?) } else { None };
        r.finish("CONNECT")?;
        Ok(Connect { version, clean_start, keep_alive, client_id, will, username, password, properties })
    }

    pub(crate) fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        let v5 = self.version == ProtocolVersion::V5;
        let mut flags = 0u8;
        if self.clean_start {
            flags |= FLAG_CLEAN_START;
        }
        if let Some(will) = &self.will {
            flags |= FLAG_WILL | ((will.qos as u8) << FLAG_WILL_QOS_SHIFT);
            if will.retain {
                flags |= FLAG_WILL_RETAIN;
            }
        }
        if self.username.is_some() {
            flags |= FLAG_USERNAME;
        }
        if self.password.is_some() {
            flags |= FLAG_PASSWORD;
        }
        put_length_prefixed(out, Some(0x10), 0, |out| {
            put_binary(out, b"MQTT")?;
            out.put_u8(self.version.level());
            out.put_u8(flags);
            out.put_u16(self.keep_alive);
            if v5 {
                self.properties.encode(out)?;
            }
            put_str(out, &self.client_id)?;
            if let Some(will) = &self.will {
                if v5 {
                    will.properties.encode(out)?;
                }
                put_str(out, &will.topic)?;
                put_binary(out, &will.payload)?;
            }
            if let Some(username) = &self.username {
                put_str(out, username)?;
            }
            if let Some(password) = &self.password {
                put_binary(out, password)?;
            }
            Ok(())
        })
    }
}

impl ConnAck {
    pub(crate) fn encode(&self, version: ProtocolVersion, out: &mut BytesMut) -> Result<(), EncodeError> {
        let session_present = self.session_present && !self.code.is_error();
        put_length_prefixed(out, Some(0x20), 0, |out| {
            out.put_u8(u8::from(session_present));
            match version {
                ProtocolVersion::V4 => out.put_u8(self.code.v4_connack_code()),
                ProtocolVersion::V5 => {
                    out.put_u8(self.code.as_u8());
                    self.properties.encode(out)?;
                }
            }
            Ok(())
        })
    }
}
