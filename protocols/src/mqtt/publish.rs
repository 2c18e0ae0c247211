//! PUBLISH (spec 3.3), the one packet on the hot path: the topic and payload are views of the
//! read buffer, and the encoder appends the payload after the header without a scratch copy.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::{EncodeError, ErrorKind};
use super::properties::{Context, Properties};
use super::topic::{validate_topic_name, TopicError};
use super::wire::{put_length_prefixed, put_str, Reader};
use super::{MqttStr, ProtocolVersion, QoS};

const FLAG_RETAIN: u8 = 0x01;
const FLAG_DUP: u8 = 0x08;

/// An application message, either direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// Empty only in MQTT 5 with a topic alias, which the gateway resolves.
    pub topic: MqttStr,
    /// 0 for QoS 0 (no identifier on the wire), otherwise never 0.
    pub packet_id: u16,
    pub properties: Properties,
    pub payload: Bytes,
}

impl Publish {
    /// A QoS 0 message without properties.
    pub fn new(topic: impl Into<MqttStr>, payload: impl Into<Bytes>) -> Publish {
        Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: topic.into(),
            packet_id: 0,
            properties: Properties::default(),
            payload: payload.into(),
        }
    }

    /// Decodes the body of a PUBLISH whose fixed header flags are `flags`.
    pub(crate) fn decode(flags: u8, r: &mut Reader, version: ProtocolVersion) -> Result<Publish, ErrorKind> {
        let dup = flags & FLAG_DUP != 0;
        let retain = flags & FLAG_RETAIN != 0;
        // [MQTT-3.3.1-4]
        let qos = QoS::from_bits((flags >> 1) & 0b11).ok_or(ErrorKind::InvalidQoS)?;
        // [MQTT-3.3.1-2]
        if dup && qos == QoS::AtMostOnce {
            return Err(ErrorKind::DupOnQoS0);
        }
        let topic = r.string("topic")?;
        let packet_id = if qos == QoS::AtMostOnce {
            0
        } else {
            match r.u16("packet identifier")? {
                0 => return Err(ErrorKind::PacketIdZero),
                id => id,
            }
        };
        let properties = if version == ProtocolVersion::V5 {
            Properties::decode(r, Context::Publish)?
        } else {
            Properties::default()
        };
        match validate_topic_name(topic.as_str()) {
            Ok(()) => {}
            // MQTT 5 sends an empty topic when a topic alias stands for it (3.3.2.3.4).
            Err(TopicError::Empty) if properties.topic_alias.is_some() => {}
            Err(TopicError::Empty) if version == ProtocolVersion::V5 => {
                return Err(ErrorKind::EmptyTopicWithoutAlias)
            }
            Err(e) => return Err(ErrorKind::InvalidTopicName(e)),
        }
        Ok(Publish { dup, qos, retain, topic, packet_id, properties, payload: r.rest() })
    }

    pub(crate) fn encode(&self, version: ProtocolVersion, out: &mut BytesMut) -> Result<(), EncodeError> {
        let mut byte1 = 0x30 | ((self.qos as u8) << 1);
        if self.dup {
            byte1 |= FLAG_DUP;
        }
        if self.retain {
            byte1 |= FLAG_RETAIN;
        }
        put_length_prefixed(out, Some(byte1), self.payload.len(), |out| {
            put_str(out, &self.topic)?;
            if self.qos != QoS::AtMostOnce {
                out.put_u16(self.packet_id);
            }
            if version == ProtocolVersion::V5 {
                self.properties.encode(out)?;
            }
            Ok(())
        })?;
        out.put_slice(&self.payload);
        Ok(())
    }
}
