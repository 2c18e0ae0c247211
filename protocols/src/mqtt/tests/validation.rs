//! One test per validation rule: the exact [`ErrorKind`] and the [`Reaction`] the spec wants.

use bytes::BytesMut;

use super::*;
use crate::mqtt::topic::TopicError;
use ProtocolVersion::{V4, V5};
use Reaction::Close;

fn refused(mut decoder: Decoder, bytes: &[u8]) -> MqttError {
    let mut buf = BytesMut::from(bytes);
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("accepted {bytes:?}"),
            Err(e) => return e,
        }
    }
}

fn check(decoder: Decoder, bytes: &[u8], kind: ErrorKind, reaction: Reaction) {
    let err = refused(decoder, bytes);
    assert_eq!(err.kind, kind, "{bytes:x?}");
    assert_eq!(err.reaction, reaction, "{bytes:x?}");
}

fn new() -> Decoder {
    Decoder::new(MAX)
}

fn v5_connack(code: ReasonCode) -> Reaction {
    Reaction::ConnAck { version: V5, code }
}

fn v4_connack(code: ReasonCode) -> Reaction {
    Reaction::ConnAck { version: V4, code }
}

/// A v5 CONNECT with `properties` (their length is added) and client id "c".
fn connect_v5(flags: u8, properties: &[u8], payload_rest: &[u8]) -> Vec<u8> {
    let mut props = vec![properties.len() as u8];
    props.extend_from_slice(properties);
    connect(b"MQTT", 5, flags, &cat(&[&props, &s(b"c"), payload_rest]))
}

/// A v5 PUBLISH QoS 0 on `topic` with `properties`.
fn publish_v5(topic: &[u8], properties: &[u8]) -> Vec<u8> {
    frame(0x30, &cat(&[&s(topic), &[properties.len() as u8], properties, b"x"]))
}

#[test]
fn the_first_packet_must_be_connect() {
    check(new(), &frame(0xC0, &[]), ErrorKind::FirstPacketNotConnect(12), Close);
}

#[test]
fn an_unknown_protocol_name_closes() {
    check(new(), &connect(b"MQTX", 4, 2, &s(b"c")), ErrorKind::UnknownProtocolName, Close);
}

#[test]
fn mqtt_3_1_and_unknown_levels_get_connack_unacceptable_protocol_version() {
    for (name, level) in [(&b"MQIsdp"[..], 3), (b"MQTT", 3), (b"MQTT", 6)] {
        let err = refused(new(), &connect(name, level, 2, &s(b"c")));
        assert_eq!(err.kind, ErrorKind::UnsupportedProtocolVersion(level));
        assert_eq!(err.reaction, v4_connack(ReasonCode::UnsupportedProtocolVersion));
        assert_eq!(err.reason_code(), ReasonCode::UnsupportedProtocolVersion);
    }
    // The 3.1.1 CONNACK every client version can read: return code 1.
    let connack = Packet::ConnAck(ConnAck {
        session_present: true,
        code: ReasonCode::UnsupportedProtocolVersion,
        properties: Properties::default(),
    });
    assert_eq!(&encode(&connack, V4)[..], &[0x20, 2, 0, 1]);
}

#[test]
fn connect_fixed_header_flags_must_be_zero() {
    let mut bytes = connect(b"MQTT", 4, 2, &s(b"c"));
    bytes[0] = 0x11;
    check(new(), &bytes, ErrorKind::InvalidFixedHeaderFlags { packet_type: 1, flags: 1 }, Close);
}

#[test]
fn connect_reserved_flag_is_malformed() {
    check(new(), &connect(b"MQTT", 4, 0x03, &s(b"c")), ErrorKind::ConnectReservedFlag, Close);
    check(
        new(),
        &connect_v5(0x03, &[], &[]),
        ErrorKind::ConnectReservedFlag,
        v5_connack(ReasonCode::MalformedPacket),
    );
}

#[test]
fn will_qos_or_retain_without_will_flag_is_malformed() {
    for flags in [0x02 | 0x08, 0x02 | 0x20] {
        check(new(), &connect(b"MQTT", 4, flags, &s(b"c")), ErrorKind::WillFlagsWithoutWill, Close);
    }
    check(
        new(),
        &connect_v5(0x02 | 0x10, &[], &[]),
        ErrorKind::WillFlagsWithoutWill,
        v5_connack(ReasonCode::MalformedPacket),
    );
}

#[test]
fn will_qos_3_is_malformed() {
    let will = cat(&[&s(b"w"), &s(b"bye")]);
    check(
        new(),
        &connect(b"MQTT", 4, 0x02 | 0x04 | 0x18, &cat(&[&s(b"c"), &will])),
        ErrorKind::InvalidQoS,
        Close,
    );
}

#[test]
fn will_topic_must_be_a_valid_topic_name() {
    let will = cat(&[&s(b"w/#"), &s(b"bye")]);
    check(
        new(),
        &connect(b"MQTT", 4, 0x02 | 0x04, &cat(&[&s(b"c"), &will])),
        ErrorKind::InvalidTopicName(TopicError::WildcardInTopicName),
        Close,
    );
    // MQTT 5: will properties (empty) come before the will topic.
    let will = cat(&[&[0], &s(b""), &s(b"bye")]);
    check(
        new(),
        &connect_v5(0x02 | 0x04, &[], &will),
        ErrorKind::InvalidTopicName(TopicError::Empty),
        v5_connack(ReasonCode::ProtocolError),
    );
}

#[test]
fn password_without_username_is_refused_on_v4_only() {
    check(
        new(),
        &connect(b"MQTT", 4, 0x02 | 0x40, &cat(&[&s(b"c"), &s(b"pw")])),
        ErrorKind::PasswordWithoutUsername,
        Close,
    );
    let Packet::Connect(connect) = decode_one(&mut new(), &connect_v5(0x02 | 0x40, &[], &s(b"pw"))).unwrap()
    else {
        panic!()
    };
    assert_eq!(connect.username, None);
    assert_eq!(connect.password.as_deref(), Some(&b"pw"[..]));
}

#[test]
fn empty_client_id_needs_clean_session_on_v4() {
    check(
        new(),
        &connect(b"MQTT", 4, 0, &s(b"")),
        ErrorKind::EmptyClientIdWithoutCleanSession,
        v4_connack(ReasonCode::ClientIdentifierNotValid),
    );
    let connack = Packet::ConnAck(ConnAck {
        session_present: false,
        code: ReasonCode::ClientIdentifierNotValid,
        properties: Properties::default(),
    });
    assert_eq!(&encode(&connack, V4)[..], &[0x20, 2, 0, 2]);
    // MQTT 5 lets the server assign an identifier whatever clean start says.
    let bytes = connect(b"MQTT", 5, 0, &cat(&[&[0], &s(b"")]));
    assert!(decode_one(&mut new(), &bytes).is_ok());
}

#[test]
fn empty_username_is_a_bad_user_name_like_nats_server() {
    check(
        new(),
        &connect(b"MQTT", 4, 0x02 | 0x80, &cat(&[&s(b"c"), &s(b"")])),
        ErrorKind::EmptyUsername,
        v4_connack(ReasonCode::BadUserNameOrPassword),
    );
    check(
        new(),
        &connect_v5(0x02 | 0x80, &[], &s(b"")),
        ErrorKind::EmptyUsername,
        v5_connack(ReasonCode::BadUserNameOrPassword),
    );
}

#[test]
fn strings_must_be_utf8_without_null() {
    check(new(), &connect(b"MQTT", 4, 2, &s(b"\xff")), ErrorKind::InvalidUtf8, Close);
    check(new(), &connect(b"MQTT", 4, 2, &s(b"a\0b")), ErrorKind::NullCharacter, Close);
    check(
        connected(V5),
        &frame(0x30, &cat(&[&s(b"a\0"), &[0]])),
        ErrorKind::NullCharacter,
        Reaction::Disconnect(ReasonCode::MalformedPacket),
    );
}

#[test]
fn bytes_after_the_last_connect_field_are_malformed() {
    check(
        new(),
        &connect(b"MQTT", 4, 2, &cat(&[&s(b"c"), b"x"])),
        ErrorKind::TrailingBytes("CONNECT"),
        Close,
    );
}

#[test]
fn a_second_connect_is_a_protocol_error() {
    let bytes = connect(b"MQTT", 4, 2, &s(b"c"));
    check(new(), &[bytes.clone(), bytes].concat(), ErrorKind::SecondConnect, Close);
    let bytes = connect_v5(2, &[], &[]);
    check(
        new(),
        &[bytes.clone(), bytes].concat(),
        ErrorKind::SecondConnect,
        Reaction::Disconnect(ReasonCode::ProtocolError),
    );
}

#[test]
fn properties_not_allowed_in_the_packet_are_protocol_errors() {
    // Topic alias (0x23) belongs to PUBLISH, not CONNECT.
    check(
        new(),
        &connect_v5(2, &[0x23, 0, 1], &[]),
        ErrorKind::PropertyNotAllowed { id: 0x23, packet: "CONNECT" },
        v5_connack(ReasonCode::ProtocolError),
    );
    // A client may not send a subscription identifier in PUBLISH [MQTT-3.3.4-6].
    check(
        connected(V5),
        &publish_v5(b"t", &[0x0B, 1]),
        ErrorKind::PropertyNotAllowed { id: 0x0B, packet: "PUBLISH" },
        Reaction::Disconnect(ReasonCode::ProtocolError),
    );
}

#[test]
fn properties_repeated_when_they_must_appear_once_are_protocol_errors() {
    check(
        new(),
        &connect_v5(2, &[0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2], &[]),
        ErrorKind::DuplicateProperty(0x11),
        v5_connack(ReasonCode::ProtocolError),
    );
    // User properties may repeat.
    let user = cat(&[&[0x26], &s(b"k"), &s(b"v")]);
    let Packet::Connect(connect) =
        decode_one(&mut new(), &connect_v5(2, &[user.clone(), user].concat(), &[])).unwrap()
    else {
        panic!()
    };
    assert_eq!(connect.properties.user_properties.len(), 2);
}

#[test]
fn property_values_out_of_range_are_protocol_errors() {
    for (props, id, value) in [
        (&[0x21, 0, 0][..], 0x21, 0),       // receive maximum 0
        (&[0x27, 0, 0, 0, 0][..], 0x27, 0), // maximum packet size 0
        (&[0x17, 2][..], 0x17, 2),          // request problem information 2
        (&[0x19, 5][..], 0x19, 5),          // request response information 5
    ] {
        check(
            new(),
            &connect_v5(2, props, &[]),
            ErrorKind::InvalidPropertyValue { id, value },
            v5_connack(ReasonCode::ProtocolError),
        );
    }
    check(
        connected(V5),
        &publish_v5(b"t", &[0x01, 2]),
        ErrorKind::InvalidPropertyValue { id: 0x01, value: 2 },
        Reaction::Disconnect(ReasonCode::ProtocolError),
    );
}

#[test]
fn authentication_data_needs_a_method() {
    check(
        new(),
        &connect_v5(2, &cat(&[&[0x16], &s(b"data")]), &[]),
        ErrorKind::AuthDataWithoutMethod,
        v5_connack(ReasonCode::ProtocolError),
    );
}

#[test]
fn unknown_properties_are_malformed() {
    check(
        new(),
        &connect_v5(2, &[0x7F, 0], &[]),
        ErrorKind::UnknownProperty(0x7F),
        v5_connack(ReasonCode::MalformedPacket),
    );
}

#[test]
fn packets_larger_than_the_limit_are_refused_from_the_fixed_header_alone() {
    // Only the fixed header is there: the body is never awaited.
    check(Decoder::new(100), &[0x10, 0xE8, 0x07], ErrorKind::PacketTooLarge { size: 1003, max: 100 }, Close);
    check(
        Decoder::connected(100, V5),
        &[0x30, 0xE8, 0x07],
        ErrorKind::PacketTooLarge { size: 1003, max: 100 },
        Reaction::Disconnect(ReasonCode::PacketTooLarge),
    );
}

#[test]
fn a_remaining_length_over_four_bytes_is_malformed() {
    check(connected(V4), &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], ErrorKind::MalformedRemainingLength, Close);
}

#[test]
fn publish_qos_3_is_malformed() {
    check(
        connected(V5),
        &frame(0x36, &cat(&[&s(b"t"), &[0, 1, 0]])),
        ErrorKind::InvalidQoS,
        Reaction::Disconnect(ReasonCode::MalformedPacket),
    );
}

#[test]
fn dup_on_qos_0_is_malformed() {
    check(connected(V4), &frame(0x38, &s(b"t")), ErrorKind::DupOnQoS0, Close);
}

#[test]
fn packet_id_0_is_refused_where_one_is_required() {
    for bytes in [
        frame(0x32, &cat(&[&s(b"t"), &[0, 0]])), // PUBLISH QoS 1
        frame(0x40, &[0, 0]),                    // PUBACK
        frame(0x62, &[0, 0]),                    // PUBREL
        frame(0x82, &cat(&[&[0, 0], &s(b"t"), &[0]])),
        frame(0xA2, &cat(&[&[0, 0], &s(b"t")])),
    ] {
        check(connected(V4), &bytes, ErrorKind::PacketIdZero, Close);
    }
    check(
        connected(V5),
        &frame(0x34, &cat(&[&s(b"t"), &[0, 0, 0]])),
        ErrorKind::PacketIdZero,
        Reaction::Disconnect(ReasonCode::ProtocolError),
    );
}

#[test]
fn publish_topics_may_not_hold_wildcards() {
    check(
        connected(V4),
        &frame(0x30, &s(b"a/+")),
        ErrorKind::InvalidTopicName(TopicError::WildcardInTopicName),
        Close,
    );
    check(
        connected(V5),
        &publish_v5(b"a/#", &[]),
        ErrorKind::InvalidTopicName(TopicError::WildcardInTopicName),
        Reaction::Disconnect(ReasonCode::ProtocolError),
    );
}

#[test]
fn publish_topics_may_be_empty_only_with_a_topic_alias() {
    check(connected(V4), &frame(0x30, &s(b"")), ErrorKind::InvalidTopicName(TopicError::Empty), Close);
    check(
        connected(V5),
        &publish_v5(b"", &[]),
        ErrorKind::EmptyTopicWithoutAlias,
        Reaction::Disconnect(ReasonCode::ProtocolError),
    );
    let Packet::Publish(publish) = decode_one(&mut connected(V5), &publish_v5(b"", &[0x23, 0, 7])).unwrap()
    else {
        panic!()
    };
    assert_eq!(publish.properties.topic_alias, Some(7));
    assert!(publish.topic.is_empty());
}

#[test]
fn topic_alias_0_is_invalid() {
    check(
        connected(V5),
        &publish_v5(b"t", &[0x23, 0, 0]),
        ErrorKind::TopicAliasZero,
        Reaction::Disconnect(ReasonCode::TopicAliasInvalid),
    );
}

#[test]
fn response_topics_may_not_hold_wildcards() {
    check(
        connected(V5),
        &publish_v5(b"t", &cat(&[&[0x08], &s(b"r/+")])),
        ErrorKind::WildcardInResponseTopic,
        Reaction::Disconnect(ReasonCode::ProtocolError),
    );
}

#[test]
fn subscribe_unsubscribe_and_pubrel_need_flags_0010() {
    for (byte1, packet_type) in [(0x80, 8), (0xA0, 10), (0x60, 6), (0x83, 8)] {
        check(
            connected(V4),
            &frame(byte1, &[0, 1]),
            ErrorKind::InvalidFixedHeaderFlags { packet_type, flags: byte1 & 0x0F },
            Close,
        );
    }
    check(
        connected(V5),
        &frame(0x41, &[0, 1]),
        ErrorKind::InvalidFixedHeaderFlags { packet_type: 4, flags: 1 },
        Reaction::Disconnect(ReasonCode::MalformedPacket),
    );
}

#[test]
fn subscribe_and_unsubscribe_need_a_filter() {
    check(connected(V4), &frame(0x82, &[0, 1]), ErrorKind::NoTopicFilters("SUBSCRIBE"), Close);
    check(
        connected(V5),
        &frame(0xA2, &[0, 1, 0]),
        ErrorKind::NoTopicFilters("UNSUBSCRIBE"),
        Reaction::Disconnect(ReasonCode::ProtocolError),
    );
}

#[test]
fn subscription_option_reserved_bits_are_malformed() {
    // 3.1.1: everything above the QoS bits is reserved.
    check(
        connected(V4),
        &frame(0x82, &cat(&[&[0, 1], &s(b"t"), &[0x04]])),
        ErrorKind::SubscriptionOptionsReserved(0x04),
        Close,
    );
    // MQTT 5: the top two bits.
    check(
        connected(V5),
        &frame(0x82, &cat(&[&[0, 1, 0], &s(b"t"), &[0x40]])),
        ErrorKind::SubscriptionOptionsReserved(0x40),
        Reaction::Disconnect(ReasonCode::MalformedPacket),
    );
    check(
        connected(V5),
        &frame(0x82, &cat(&[&[0, 1, 0], &s(b"t"), &[0x03]])),
        ErrorKind::InvalidQoS,
        Reaction::Disconnect(ReasonCode::MalformedPacket),
    );
    check(
        connected(V5),
        &frame(0x82, &cat(&[&[0, 1, 0], &s(b"t"), &[0x30]])),
        ErrorKind::InvalidRetainHandling,
        Reaction::Disconnect(ReasonCode::ProtocolError),
    );
}

#[test]
fn topic_filters_must_follow_the_wildcard_rules() {
    for (filter, err) in [
        (&b"a/#/b"[..], TopicError::MultiLevelWildcardMisplaced),
        (b"a#", TopicError::MultiLevelWildcardMisplaced),
        (b"a/b+", TopicError::SingleLevelWildcardMisplaced),
        (b"", TopicError::Empty),
    ] {
        check(
            connected(V4),
            &frame(0x82, &cat(&[&[0, 1], &s(filter), &[0]])),
            ErrorKind::InvalidTopicFilter(err),
            Close,
        );
        check(
            connected(V5),
            &frame(0xA2, &cat(&[&[0, 1, 0], &s(filter)])),
            ErrorKind::InvalidTopicFilter(err),
            Reaction::Disconnect(ReasonCode::MalformedPacket),
        );
    }
}

#[test]
fn shared_subscriptions_are_checked_on_v5_and_literal_on_v4() {
    check(
        connected(V5),
        &frame(0x82, &cat(&[&[0, 1, 0], &s(b"$share/g"), &[1]])),
        ErrorKind::InvalidTopicFilter(TopicError::InvalidSharedSubscription),
        Reaction::Disconnect(ReasonCode::MalformedPacket),
    );
    check(
        connected(V5),
        &frame(0x82, &cat(&[&[0, 1, 0], &s(b"$share/g/t"), &[0x04]])),
        ErrorKind::NoLocalOnSharedSubscription,
        Reaction::Disconnect(ReasonCode::ProtocolError),
    );
    let bytes = frame(0x82, &cat(&[&[0, 1], &s(b"$share/g"), &[1]]));
    assert!(decode_one(&mut connected(V4), &bytes).is_ok());
}

#[test]
fn subscription_identifier_must_be_nonzero_and_single() {
    check(
        connected(V5),
        &frame(0x82, &cat(&[&[0, 1, 2, 0x0B, 0], &s(b"t"), &[0]])),
        ErrorKind::InvalidPropertyValue { id: 0x0B, value: 0 },
        Reaction::Disconnect(ReasonCode::ProtocolError),
    );
    check(
        connected(V5),
        &frame(0x82, &cat(&[&[0, 1, 4, 0x0B, 1, 0x0B, 2], &s(b"t"), &[0]])),
        ErrorKind::DuplicateProperty(0x0B),
        Reaction::Disconnect(ReasonCode::ProtocolError),
    );
}

#[test]
fn fixed_size_packets_with_another_length_are_malformed() {
    check(
        connected(V4),
        &frame(0x40, &[0, 1, 0]),
        ErrorKind::InvalidRemainingLength { packet: "PUBACK", len: 3 },
        Close,
    );
    check(
        connected(V5),
        &frame(0xC0, &[0]),
        ErrorKind::InvalidRemainingLength { packet: "PINGREQ", len: 1 },
        Reaction::Disconnect(ReasonCode::MalformedPacket),
    );
    check(
        connected(V4),
        &frame(0xE0, &[0]),
        ErrorKind::InvalidRemainingLength { packet: "DISCONNECT", len: 1 },
        Close,
    );
}

#[test]
fn reason_codes_must_be_known_and_allowed_in_the_packet() {
    check(
        connected(V5),
        &frame(0x40, &[0, 1, 0x03]),
        ErrorKind::UnknownReasonCode(0x03),
        Reaction::Disconnect(ReasonCode::MalformedPacket),
    );
    check(
        connected(V5),
        &frame(0x62, &[0, 1, 0x10]),
        ErrorKind::ReasonCodeNotAllowed { code: 0x10, packet: "PUBREL" },
        Reaction::Disconnect(ReasonCode::ProtocolError),
    );
    // "Session taken over" is the server's to send.
    check(
        connected(V5),
        &frame(0xE0, &[0x8E]),
        ErrorKind::ReasonCodeNotAllowed { code: 0x8E, packet: "DISCONNECT" },
        Reaction::Disconnect(ReasonCode::ProtocolError),
    );
}

#[test]
fn server_packets_and_reserved_types_from_a_client_are_refused() {
    check(connected(V4), &frame(0x20, &[0, 0]), ErrorKind::UnexpectedPacket("CONNACK"), Close);
    check(
        connected(V5),
        &frame(0x90, &[0, 1, 0, 0]),
        ErrorKind::UnexpectedPacket("SUBACK"),
        Reaction::Disconnect(ReasonCode::ProtocolError),
    );
    check(connected(V4), &frame(0x00, &[]), ErrorKind::ReservedPacketType(0), Close);
    // AUTH exists only in MQTT 5.
    check(connected(V4), &frame(0xF0, &[]), ErrorKind::ReservedPacketType(15), Close);
}

#[test]
fn disconnect_may_not_raise_a_zero_session_expiry() {
    let mut decoder = new();
    decode_one(&mut decoder, &connect_v5(2, &[], &[])).unwrap();
    check(
        decoder,
        &frame(0xE0, &[0, 5, 0x11, 0, 0, 0, 9]),
        ErrorKind::SessionExpiryAfterZero,
        Reaction::Disconnect(ReasonCode::ProtocolError),
    );
    let mut decoder = new();
    decode_one(&mut decoder, &connect_v5(2, &[0x11, 0, 0, 0, 1], &[])).unwrap();
    let packet = decode_one(&mut decoder, &frame(0xE0, &[0, 5, 0x11, 0, 0, 0, 9])).unwrap();
    assert!(matches!(packet, Packet::Disconnect(d) if d.properties.session_expiry_interval == Some(9)));
}

#[test]
fn fields_running_past_the_packet_are_malformed() {
    check(connected(V4), &frame(0x30, &[0, 9, b'a']), ErrorKind::Truncated("topic"), Close);
    check(
        connected(V5),
        &frame(0x82, &[0, 1, 9, 0x26]),
        ErrorKind::Truncated("properties"),
        Reaction::Disconnect(ReasonCode::MalformedPacket),
    );
}
