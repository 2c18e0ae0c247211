//! SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK (spec 3.8–3.11).
//!
//! Filters are checked on decode (grammar, shared-subscription form), so an invalid filter is
//! refused with the whole packet: 3.1.1 treats it as a protocol violation and closes, MQTT 5
//! sends DISCONNECT 0x8F. Translating a valid filter to NATS can still fail (whitespace); the
//! gateway reports that per filter in the SUBACK, as nats-server does.

use bytes::{BufMut, BytesMut};

use super::error::{EncodeError, ErrorKind};
use super::properties::{Context, Properties};
use super::reason::ReasonCode;
use super::topic::{validate_topic_filter, SharedSubscription};
use super::wire::{put_length_prefixed, put_str, Reader};
use super::{MqttStr, ProtocolVersion, QoS};

/// When the server sends retained messages for a new subscription (MQTT 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RetainHandling {
    /// Send retained messages on every SUBSCRIBE (the only 3.1.1 behaviour).
    #[default]
    OnSubscribe = 0,
    /// Only if the subscription did not exist.
    OnNewSubscribe = 1,
    Never = 2,
}

/// The options byte of one SUBSCRIBE filter. On 3.1.1 only `qos` exists; the rest are defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionOptions {
    pub qos: QoS,
    /// Don't deliver the client's own publishes back to it.
    pub no_local: bool,
    /// Keep the RETAIN flag of forwarded messages instead of clearing it.
    pub retain_as_published: bool,
    pub retain_handling: RetainHandling,
}

impl SubscriptionOptions {
    pub fn new(qos: QoS) -> SubscriptionOptions {
        SubscriptionOptions {
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: RetainHandling::OnSubscribe,
        }
    }

    fn decode(byte: u8, version: ProtocolVersion) -> Result<SubscriptionOptions, ErrorKind> {
        // [MQTT-3.8.3-4] (3.1.1: six reserved bits), [MQTT-3.8.3-5] (MQTT 5: two).
        let reserved = match version {
            ProtocolVersion::V4 => 0b1111_1100,
            ProtocolVersion::V5 => 0b1100_0000,
        };
        if byte & reserved != 0 {
            return Err(ErrorKind::SubscriptionOptionsReserved(byte));
        }
        let qos = QoS::from_bits(byte & 0b11).ok_or(ErrorKind::InvalidQoS)?;
        let retain_handling = match (byte >> 4) & 0b11 {
            0 => RetainHandling::OnSubscribe,
            1 => RetainHandling::OnNewSubscribe,
            2 => RetainHandling::Never,
            _ => return Err(ErrorKind::InvalidRetainHandling),
        };
        Ok(SubscriptionOptions {
            qos,
            no_local: byte & 0b0100 != 0,
            retain_as_published: byte & 0b1000 != 0,
            retain_handling,
        })
    }

    fn encode(self, version: ProtocolVersion) -> u8 {
        let mut byte = self.qos as u8;
        if version == ProtocolVersion::V5 {
            byte |= u8::from(self.no_local) << 2;
            byte |= u8::from(self.retain_as_published) << 3;
            byte |= (self.retain_handling as u8) << 4;
        }
        byte
    }
}

/// One filter of a SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeFilter {
    /// As sent, including any `$share/<group>/` prefix (see [`SharedSubscription::parse`]).
    pub filter: MqttStr,
    pub options: SubscriptionOptions,
}

/// SUBSCRIBE: at least one filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub packet_id: u16,
    /// MQTT 5: a subscription identifier and user properties.
    pub properties: Properties,
    pub filters: Vec<SubscribeFilter>,
}

/// SUBACK: one code per filter, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    pub packet_id: u16,
    pub properties: Properties,
    /// Granted QoS or a failure; 3.1.1 clients get [`ReasonCode::v4_suback_code`].
    pub codes: Vec<ReasonCode>,
}

/// UNSUBSCRIBE: at least one filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    pub packet_id: u16,
    pub properties: Properties,
    pub filters: Vec<MqttStr>,
}

/// UNSUBACK. The codes (one per filter) exist only in MQTT 5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    pub packet_id: u16,
    pub properties: Properties,
    pub codes: Vec<ReasonCode>,
}

fn read_packet_id(r: &mut Reader) -> Result<u16, ErrorKind> {
    match r.u16("packet identifier")? {
        0 => Err(ErrorKind::PacketIdZero),
        id => Ok(id),
    }
}

/// Checks a filter's grammar. `$share/...` is a shared subscription only in MQTT 5; 3.1.1
/// clients get it as a literal filter, as nats-server treats it. Returns whether it is shared.
fn check_filter(filter: &MqttStr, version: ProtocolVersion) -> Result<bool, ErrorKind> {
    let shared = match SharedSubscription::parse(filter.as_str()) {
        Some(parsed) if version == ProtocolVersion::V5 => parsed.map(|_| true),
        _ => validate_topic_filter(filter.as_str()).map(|()| false),
    };
    shared.map_err(ErrorKind::InvalidTopicFilter)
}

/// Reads what SUBSCRIBE and UNSUBSCRIBE share: a packet identifier, MQTT 5 properties, and a
/// non-empty list of entries read by `read_entry` ([MQTT-3.8.3-3], [MQTT-3.10.3-2]).
fn decode_filter_list<T>(
    r: &mut Reader,
    version: ProtocolVersion,
    context: Context,
    packet: &'static str,
    mut read_entry: impl FnMut(&mut Reader) -> Result<T, ErrorKind>,
) -> Result<(u16, Properties, Vec<T>), ErrorKind> {
    let packet_id = read_packet_id(r)?;
    let properties = match version {
        ProtocolVersion::V4 => Properties::default(),
        ProtocolVersion::V5 => Properties::decode(r, context)?,
    };
    let mut entries = Vec::new();
    while !r.is_empty() {
        entries.push(read_entry(r)?);
    }
    if entries.is_empty() {
        return Err(ErrorKind::NoTopicFilters(packet));
    }
    Ok((packet_id, properties, entries))
}

/// Writes a packet identifier, MQTT 5 properties and what `entries` writes: the shape of
/// SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK.
fn encode_with_id_and_properties(
    out: &mut BytesMut,
    byte1: u8,
    packet_id: u16,
    properties: &Properties,
    version: ProtocolVersion,
    entries: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    put_length_prefixed(out, Some(byte1), 0, |out| {
        out.put_u16(packet_id);
        if version == ProtocolVersion::V5 {
            properties.encode(out)?;
        }
        entries(out)
    })
}

impl Subscribe {
    pub(crate) fn decode(r: &mut Reader, version: ProtocolVersion) -> Result<Subscribe, ErrorKind> {
        let (packet_id, properties, filters) =
            decode_filter_list(r, version, Context::Subscribe, "SUBSCRIBE", |r| {
                let filter = r.string("topic filter")?;
                let options = SubscriptionOptions::decode(r.u8("subscription options")?, version)?;
                // [MQTT-3.8.3-4] (MQTT 5): "no local" has no meaning for a group.
                if check_filter(&filter, version)? && options.no_local {
                    return Err(ErrorKind::NoLocalOnSharedSubscription);
                }
                Ok(SubscribeFilter { filter, options })
            })?;
        Ok(Subscribe { packet_id, properties, filters })
    }

    pub(crate) fn encode(&self, version: ProtocolVersion, out: &mut BytesMut) -> Result<(), EncodeError> {
        encode_with_id_and_properties(out, 0x82, self.packet_id, &self.properties, version, |out| {
            for filter in &self.filters {
                put_str(out, &filter.filter)?;
                out.put_u8(filter.options.encode(version));
            }
            Ok(())
        })
    }
}

impl Unsubscribe {
    pub(crate) fn decode(r: &mut Reader, version: ProtocolVersion) -> Result<Unsubscribe, ErrorKind> {
        let (packet_id, properties, filters) =
            decode_filter_list(r, version, Context::Unsubscribe, "UNSUBSCRIBE", |r| {
                let filter = r.string("topic filter")?;
                check_filter(&filter, version)?;
                Ok(filter)
            })?;
        Ok(Unsubscribe { packet_id, properties, filters })
    }

    pub(crate) fn encode(&self, version: ProtocolVersion, out: &mut BytesMut) -> Result<(), EncodeError> {
        encode_with_id_and_properties(out, 0xA2, self.packet_id, &self.properties, version, |out| {
            for filter in &self.filters {
                put_str(out, filter)?;
            }
            Ok(())
        })
    }
}

impl SubAck {
    pub(crate) fn encode(&self, version: ProtocolVersion, out: &mut BytesMut) -> Result<(), EncodeError> {
        encode_with_id_and_properties(out, 0x90, self.packet_id, &self.properties, version, |out| {
            for code in &self.codes {
                out.put_u8(match version {
                    ProtocolVersion::V4 => code.v4_suback_code(),
                    ProtocolVersion::V5 => code.as_u8(),
                });
            }
            Ok(())
        })
    }
}

impl UnsubAck {
    pub(crate) fn encode(&self, version: ProtocolVersion, out: &mut BytesMut) -> Result<(), EncodeError> {
        encode_with_id_and_properties(out, 0xB0, self.packet_id, &self.properties, version, |out| {
            // 3.1.1's UNSUBACK is the packet identifier alone.
            if version == ProtocolVersion::V5 {
                for code in &self.codes {
                    out.put_u8(code.as_u8());
                }
            }
            Ok(())
        })
    }
}
