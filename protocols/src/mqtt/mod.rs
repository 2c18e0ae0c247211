//! MQTT 3.1.1 and 5.0 for a server, sans-IO: bytes from a client in, typed packets out; typed
//! packets in, bytes for the client out.
//!
//! # Layout
//!
//! - [`codec`]: the [`Decoder`] (fixed header, `max_packet_size` checked on the fixed header
//!   before the body is buffered, the protocol version learned from CONNECT, dispatch) and
//!   [`Packet::encode`].
//! - [`connect`]: CONNECT (with its will) and CONNACK.
//! - [`publish`]: the PUBLISH packet, the one on the hot path.
//! - [`ack`]: PUBACK, PUBREC, PUBREL, PUBCOMP, DISCONNECT, AUTH: the small packets that are a
//!   packet identifier and/or a reason code plus properties.
//! - [`subscribe`]: SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK.
//! - [`properties`]: MQTT 5 properties, and which packet may carry which.
//! - [`reason`]: MQTT 5 reason codes and their MQTT 3.1.1 equivalents.
//! - [`topic`]: topic name and filter grammar, `$share/<group>/<filter>`, and nats-server's
//!   topic ↔ subject translation.
//! - [`error`]: [`MqttError`]: what was wrong and how the server must react.
//! - `wire`: the primitive encodings (variable byte integers, length-prefixed strings).
//!
//! # Invariants
//!
//! - The decoder never panics and never allocates more than the packet it was given: a fixed
//!   header announcing a packet larger than `max_packet_size` is refused before its body is read.
//! - `Ok(None)` means "read more"; the buffer is untouched until a whole packet is there.
//! - Strings are validated once (UTF-8, no U+0000) and then kept as [`MqttStr`], a view of the
//!   read buffer; payloads, passwords and binary properties are `Bytes` views too (no copy).
//! - One packet model serves both protocol versions. Encoding for 3.1.1 drops what 3.1.1 cannot
//!   carry (properties) and maps MQTT 5 reason codes to 3.1.1 return codes.
//!
//! # Why not rumqttc's codec
//!
//! DESIGN.md planned to wrap rumqttc's `mqttbytes`, but it is a client codec: it hides the
//! connect flags, reads passwords as UTF-8 strings, refuses `MQIsdp`, keeps the last of
//! duplicated properties, ignores reserved bits, and its errors don't say which reason code the
//! spec wants. (0.25 also cannot read AUTH, and writes a reasoned MQTT 5 DISCONNECT one byte
//! longer than its remaining length.) The server needs all of that, so decoding and encoding are
//! ours; rumqttc is the independent client the tests check our bytes against.

pub mod ack;
pub mod codec;
pub mod connect;
pub mod error;
pub mod properties;
pub mod publish;
pub mod reason;
pub mod subscribe;
pub mod topic;
mod wire;

#[cfg(test)]
mod tests;

use bytes::Bytes;

pub use ack::{Ack, Auth, Disconnect};
pub use codec::{Decoder, Packet};
pub use connect::{ConnAck, Connect, Will};
pub use error::{EncodeError, ErrorKind, MqttError, Reaction};
pub use properties::Properties;
pub use publish::Publish;
pub use reason::ReasonCode;
pub use subscribe::{
    RetainHandling, SubAck, Subscribe, SubscribeFilter, SubscriptionOptions, UnsubAck, Unsubscribe,
};
pub use topic::{SharedSubscription, TopicError};

/// The protocol version a client chose in its CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolVersion {
    /// MQTT 3.1.1 (protocol level 4).
    V4,
    /// MQTT 5.0 (protocol level 5).
    V5,
}

impl ProtocolVersion {
    /// The protocol level byte of CONNECT.
    pub fn level(self) -> u8 {
        match self {
            ProtocolVersion::V4 => 4,
            ProtocolVersion::V5 => 5,
        }
    }
}

/// Quality of service of a message or a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QoS {
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    /// `None` for 3, the value every packet must refuse.
    pub fn from_bits(bits: u8) -> Option<QoS> {
        match bits {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// An MQTT "UTF-8 encoded string": valid UTF-8 without U+0000, at most 65,535 bytes when it came
/// off the wire. It is a view of the read buffer, so decoding a topic does not copy it.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MqttStr(Bytes);

impl MqttStr {
    /// Validates `bytes` as an MQTT string.
    pub fn from_bytes(bytes: Bytes) -> Result<MqttStr, ErrorKind> {
        if std::str::from_utf8(&bytes).is_err() {
            return Err(ErrorKind::InvalidUtf8);
        }
        if memchr::memchr(0, &bytes).is_some() {
            return Err(ErrorKind::NullCharacter);
        }
        Ok(MqttStr(bytes))
    }

    pub fn as_str(&self) -> &str {
        // Validated on construction (every constructor checks or starts from a `str`), so the
        // fallback is unreachable; it exists only because the crate forbids `unwrap`.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The underlying buffer view, e.g. to hand a topic on without copying.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for MqttStr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for MqttStr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Strings built by the server are trusted to be free of U+0000; the encoder writes them as
/// they are.
impl From<&'static str> for MqttStr {
    fn from(s: &'static str) -> Self {
        MqttStr(Bytes::from_static(s.as_bytes()))
    }
}

impl From<String> for MqttStr {
    fn from(s: String) -> Self {
        MqttStr(Bytes::from(s))
    }
}

impl PartialEq<str> for MqttStr {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for MqttStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}
