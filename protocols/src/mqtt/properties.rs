//! MQTT 5 properties (spec 2.2.2): one struct for every packet, and a table of which packet may
//! carry which property.
//!
//! A single [`Properties`] type keeps the packet model small and lets the gateway copy
//! properties from a PUBLISH it received to the PUBLISH it delivers. The decoder enforces the
//! per-packet rules (a property not allowed in the packet, or repeated when it may appear once, is
//! a Protocol Error), so a decoded value only holds what its packet may carry. The encoder writes
//! whatever is set: the server builds these values itself.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::{EncodeError, ErrorKind};
use super::wire::{put_binary, put_length_prefixed, put_str, put_varint, Reader, MAX_VARINT};
use super::{MqttStr, QoS};

/// MQTT 5 properties. Every field is optional; the two lists may hold several values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    /// 0x01: whether the payload is UTF-8 (`true`) or unspecified bytes.
    pub payload_format_utf8: Option<bool>,
    /// 0x02: seconds until the message expires.
    pub message_expiry_interval: Option<u32>,
    /// 0x03
    pub content_type: Option<MqttStr>,
    /// 0x08: the topic a reply should be published to (no wildcards).
    pub response_topic: Option<MqttStr>,
    /// 0x09
    pub correlation_data: Option<Bytes>,
    /// 0x0B: in SUBSCRIBE (once), and in PUBLISH from the server (once per matching
    /// subscription). Never 0.
    pub subscription_identifiers: Vec<u32>,
    /// 0x11: seconds the session outlives the connection.
    pub session_expiry_interval: Option<u32>,
    /// 0x12: the client identifier the server chose for a client that sent an empty one.
    pub assigned_client_identifier: Option<MqttStr>,
    /// 0x13: the keep alive the server imposes instead of the client's.
    pub server_keep_alive: Option<u16>,
    /// 0x15
    pub authentication_method: Option<MqttStr>,
    /// 0x16
    pub authentication_data: Option<Bytes>,
    /// 0x17: whether the client wants reason strings and user properties on failures.
    pub request_problem_information: Option<bool>,
    /// 0x18: seconds between the connection's end and publishing the will.
    pub will_delay_interval: Option<u32>,
    /// 0x19: whether the client wants response information in CONNACK.
    pub request_response_information: Option<bool>,
    /// 0x1A
    pub response_information: Option<MqttStr>,
    /// 0x1C: another server to use.
    pub server_reference: Option<MqttStr>,
    /// 0x1F: a human-readable reason.
    pub reason_string: Option<MqttStr>,
    /// 0x21: how many QoS 1/2 PUBLISHes the sender accepts in flight. Never 0.
    pub receive_maximum: Option<u16>,
    /// 0x22: the highest topic alias the sender accepts.
    pub topic_alias_maximum: Option<u16>,
    /// 0x23: never 0.
    pub topic_alias: Option<u16>,
    /// 0x24: the highest QoS the server supports (0 or 1; absent means 2).
    pub maximum_qos: Option<QoS>,
    /// 0x25
    pub retain_available: Option<bool>,
    /// 0x26: name/value pairs, in order; names may repeat.
    pub user_properties: Vec<(MqttStr, MqttStr)>,
    /// 0x27: the largest packet the sender accepts. Never 0.
    pub maximum_packet_size: Option<u32>,
    /// 0x28
    pub wildcard_subscription_available: Option<bool>,
    /// 0x29
    pub subscription_identifiers_available: Option<bool>,
    /// 0x2A
    pub shared_subscription_available: Option<bool>,
}

/// The packets (and the will, which has properties of its own) that carry properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Context {
    Connect,
    Will,
    Publish,
    /// PUBACK, PUBREC, PUBREL and PUBCOMP.
    PubResponse,
    Subscribe,
    Unsubscribe,
    Disconnect,
    Auth,
}

impl Context {
    fn name(self) -> &'static str {
        match self {
            Context::Connect => "CONNECT",
            Context::Will => "will properties",
            Context::Publish => "PUBLISH",
            Context::PubResponse => "PUBACK/PUBREC/PUBREL/PUBCOMP",
            Context::Subscribe => "SUBSCRIBE",
            Context::Unsubscribe => "UNSUBSCRIBE",
            Context::Disconnect => "DISCONNECT",
            Context::Auth => "AUTH",
        }
    }

    /// The property identifiers a client may send here (spec 2.2.2.2, and the per-packet
    /// sections: a client's PUBLISH may not carry a subscription identifier [MQTT-3.3.4-6], and
    /// server reference is for the server's DISCONNECT).
    fn allowed(self) -> &'static [u8] {
        match self {
            Context::Connect => &[0x11, 0x15, 0x16, 0x17, 0x19, 0x21, 0x22, 0x26, 0x27],
            Context::Will => &[0x01, 0x02, 0x03, 0x08, 0x09, 0x18, 0x26],
            Context::Publish => &[0x01, 0x02, 0x03, 0x08, 0x09, 0x23, 0x26],
            Context::PubResponse => &[0x1F, 0x26],
            Context::Subscribe => &[0x0B, 0x26],
            Context::Unsubscribe => &[0x26],
            Context::Disconnect => &[0x11, 0x1F, 0x26],
            Context::Auth => &[0x15, 0x16, 0x1F, 0x26],
        }
    }
}

/// The property identifiers this version of the spec defines.
const KNOWN: &[u8] = &[
    0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x11, 0x12, 0x13, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x1C, 0x1F,
    0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A,
];

/// Sets `slot` once; a second value is a Protocol Error.
fn set_once<T>(slot: &mut Option<T>, id: u8, value: T) -> Result<(), ErrorKind> {
    if slot.is_some() {
        return Err(ErrorKind::DuplicateProperty(id));
    }
    *slot = Some(value);
    Ok(())
}

/// A byte property whose only values are 0 and 1.
fn read_bool(r: &mut Reader, id: u8) -> Result<bool, ErrorKind> {
    match r.u8("property value")? {
        0 => Ok(false),
        1 => Ok(true),
        value => Err(ErrorKind::InvalidPropertyValue { id, value: u32::from(value) }),
    }
}

/// A 16-bit property for which 0 is a Protocol Error.
fn read_nonzero_u16(r: &mut Reader, id: u8) -> Result<u16, ErrorKind> {
    match r.u16("property value")? {
        0 => Err(ErrorKind::InvalidPropertyValue { id, value: 0 }),
        value => Ok(value),
    }
}

impl Properties {
    /// True when no property is set: the encoder then writes a zero property length, or
    /// leaves the properties out where the packet allows it.
    pub fn is_empty(&self) -> bool {
        *self == Properties::default()
    }

    /// Reads a property length and the properties it covers, enforcing what `context` allows.
    pub(crate) fn decode(r: &mut Reader, context: Context) -> Result<Properties, ErrorKind> {
        let len = r.varint("property length")?;
        let mut r = Reader::new(r.take(len, "properties")?);
        let mut p = Properties::default();
        while !r.is_empty() {
            let raw_id = r.varint("property identifier")?;
            let id = u8::try_from(raw_id)
                .ok()
                .filter(|id| KNOWN.contains(id))
                .ok_or(ErrorKind::UnknownProperty(u32::try_from(raw_id).unwrap_or(u32::MAX)))?;
            if !context.allowed().contains(&id) {
                return Err(ErrorKind::PropertyNotAllowed { id, packet: context.name() });
            }
            p.read_one(&mut r, id)?;
        }
        if p.authentication_data.is_some() && p.authentication_method.is_none() {
            return Err(ErrorKind::AuthDataWithoutMethod);
        }
        Ok(p)
    }

    /// Reads the value of property `id` (one the context allows; only those are reached).
    fn read_one(&mut self, r: &mut Reader, id: u8) -> Result<(), ErrorKind> {
        const V: &str = "property value";
        match id {
            0x01 => set_once(&mut self.payload_format_utf8, id, read_bool(r, id)?),
            0x02 => set_once(&mut self.message_expiry_interval, id, r.u32(V)?),
            0x03 => set_once(&mut self.content_type, id, r.string(V)?),
            0x08 => {
                let topic = r.string(V)?;
                if topic.as_bytes().iter().any(|b| matches!(b, b'+' | b'#')) {
                    return Err(ErrorKind::WildcardInResponseTopic);
                }
                set_once(&mut self.response_topic, id, topic)
            }
            0x09 => set_once(&mut self.correlation_data, id, r.binary(V)?),
            0x0B => {
                // Only SUBSCRIBE reaches here, where it may appear once.
                if !self.subscription_identifiers.is_empty() {
                    return Err(ErrorKind::DuplicateProperty(id));
                }
                let value = r.varint(V)?;
                let value = u32::try_from(value).unwrap_or(u32::MAX);
                if value == 0 {
                    return Err(ErrorKind::InvalidPropertyValue { id, value });
                }
                self.subscription_identifiers.push(value);
                Ok(())
            }
            0x11 => set_once(&mut self.session_expiry_interval, id, r.u32(V)?),
            0x15 => set_once(&mut self.authentication_method, id, r.string(V)?),
            0x16 => set_once(&mut self.authentication_data, id, r.binary(V)?),
            0x17 => set_once(&mut self.request_problem_information, id, read_bool(r, id)?),
            0x18 => set_once(&mut self.will_delay_interval, id, r.u32(V)?),
            0x19 => set_once(&mut self.request_response_information, id, read_bool(r, id)?),
            0x1F => set_once(&mut self.reason_string, id, r.string(V)?),
            0x21 => set_once(&mut self.receive_maximum, id, read_nonzero_u16(r, id)?),
            0x22 => set_once(&mut self.topic_alias_maximum, id, r.u16(V)?),
            0x23 => {
                let alias = r.u16(V)?;
                if alias == 0 {
                    return Err(ErrorKind::TopicAliasZero);
                }
                set_once(&mut self.topic_alias, id, alias)
            }
            0x26 => {
                let name = r.string(V)?;
                let value = r.string(V)?;
                self.user_properties.push((name, value));
                Ok(())
            }
            0x27 => match r.u32(V)? {
                0 => Err(ErrorKind::InvalidPropertyValue { id, value: 0 }),
                size => set_once(&mut self.maximum_packet_size, id, size),
            },
            // Server-only properties never pass the context check of a client packet.
            _ => Err(ErrorKind::PropertyNotAllowed { id, packet: "a client packet" }),
        }
    }

    /// Writes the property length and every property that is set, in identifier order.
    pub(crate) fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        put_length_prefixed(out, None, 0, |out| self.encode_body(out))
    }

    fn encode_body(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        fn flag(out: &mut BytesMut, id: u8, value: Option<bool>) {
            if let Some(value) = value {
                out.put_u8(id);
                out.put_u8(u8::from(value));
            }
        }
        fn u16_prop(out: &mut BytesMut, id: u8, value: Option<u16>) {
            if let Some(value) = value {
                out.put_u8(id);
                out.put_u16(value);
            }
        }
        fn u32_prop(out: &mut BytesMut, id: u8, value: Option<u32>) {
            if let Some(value) = value {
                out.put_u8(id);
                out.put_u32(value);
            }
        }
        fn str_prop(out: &mut BytesMut, id: u8, value: &Option<MqttStr>) -> Result<(), EncodeError> {
            if let Some(value) = value {
                out.put_u8(id);
                put_str(out, value)?;
            }
            Ok(())
        }
        fn bin_prop(out: &mut BytesMut, id: u8, value: &Option<Bytes>) -> Result<(), EncodeError> {
            if let Some(value) = value {
                out.put_u8(id);
                put_binary(out, value)?;
            }
            Ok(())
        }

        flag(out, 0x01, self.payload_format_utf8);
        u32_prop(out, 0x02, self.message_expiry_interval);
        str_prop(out, 0x03, &self.content_type)?;
        str_prop(out, 0x08, &self.response_topic)?;
        bin_prop(out, 0x09, &self.correlation_data)?;
        for id in &self.subscription_identifiers {
            let id = usize::try_from(*id).unwrap_or(usize::MAX);
            if id > MAX_VARINT {
                return Err(EncodeError::TooLarge(id));
            }
            out.put_u8(0x0B);
            put_varint(out, id);
        }
        u32_prop(out, 0x11, self.session_expiry_interval);
        str_prop(out, 0x12, &self.assigned_client_identifier)?;
        u16_prop(out, 0x13, self.server_keep_alive);
        str_prop(out, 0x15, &self.authentication_method)?;
        bin_prop(out, 0x16, &self.authentication_data)?;
        flag(out, 0x17, self.request_problem_information);
        u32_prop(out, 0x18, self.will_delay_interval);
        flag(out, 0x19, self.request_response_information);
        str_prop(out, 0x1A, &self.response_information)?;
        str_prop(out, 0x1C, &self.server_reference)?;
        str_prop(out, 0x1F, &self.reason_string)?;
        u16_prop(out, 0x21, self.receive_maximum);
        u16_prop(out, 0x22, self.topic_alias_maximum);
        u16_prop(out, 0x23, self.topic_alias);
        if let Some(qos) = self.maximum_qos {
            out.put_u8(0x24);
            out.put_u8(qos as u8);
        }
        flag(out, 0x25, self.retain_available);
        for (name, value) in &self.user_properties {
            out.put_u8(0x26);
            put_str(out, name)?;
            put_str(out, value)?;
        }
        u32_prop(out, 0x27, self.maximum_packet_size);
        flag(out, 0x28, self.wildcard_subscription_available);
        flag(out, 0x29, self.subscription_identifiers_available);
        flag(out, 0x2A, self.shared_subscription_available);
        Ok(())
    }
}
