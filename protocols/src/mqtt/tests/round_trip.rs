//! Round trips: client packets encoded by us or by rumqttc's client codec decode to the same
//! values; server packets encoded by us decode with rumqttc's client codec.

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4 as r4;
use rumqttc::mqttbytes::QoS as RQoS;
use rumqttc::v5::mqttbytes::v5 as r5;
use rumqttc::v5::mqttbytes::QoS as R5QoS;

use super::*;
use ProtocolVersion::{V4, V5};

fn user(name: &'static str, value: &'static str) -> (MqttStr, MqttStr) {
    (name.into(), value.into())
}

fn full_connect(version: ProtocolVersion) -> Connect {
    let v5 = version == V5;
    Connect {
        version,
        clean_start: true,
        keep_alive: 30,
        client_id: "client-1".into(),
        will: Some(Will {
            topic: "will/topic".into(),
            payload: Bytes::from_static(b"gone"),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: if v5 {
                Properties {
                    will_delay_interval: Some(5),
                    content_type: Some("text/plain".into()),
                    ..Properties::default()
                }
            } else {
                Properties::default()
            },
        }),
        username: Some("user".into()),
        // Passwords are binary data, not strings.
        password: Some(Bytes::from_static(b"\xff\x00pw")),
        properties: if v5 {
            Properties {
                session_expiry_interval: Some(3600),
                receive_maximum: Some(10),
                maximum_packet_size: Some(65536),
                topic_alias_maximum: Some(16),
                request_response_information: Some(true),
                request_problem_information: Some(false),
                authentication_method: Some("SCRAM".into()),
                authentication_data: Some(Bytes::from_static(b"\x01\x02")),
                user_properties: vec![user("a", "1"), user("a", "2")],
                ..Properties::default()
            }
        } else {
            Properties::default()
        },
    }
}

/// Every packet a client sends, filled in as far as `version` allows.
pub(super) fn client_packets(version: ProtocolVersion) -> Vec<Packet> {
    let v5 = version == V5;
    let props = |p: Properties| if v5 { p } else { Properties::default() };
    let ack = |packet_id, reason| Ack {
        packet_id,
        reason: if v5 { reason } else { ReasonCode::Success },
        properties: props(Properties { reason_string: Some("why".into()), ..Properties::default() }),
    };
    let mut options = SubscriptionOptions::new(QoS::ExactlyOnce);
    if v5 {
        options.no_local = true;
        options.retain_as_published = true;
        options.retain_handling = RetainHandling::Never;
    }
    let mut packets = vec![
        Packet::Connect(Box::new(full_connect(version))),
        Packet::Publish(Publish::new("a/b", Bytes::from_static(b"hello"))),
        Packet::Publish(Publish {
            dup: true,
            qos: QoS::ExactlyOnce,
            retain: true,
            topic: "a/b/c".into(),
            packet_id: 7,
            properties: props(Properties {
                payload_format_utf8: Some(true),
                message_expiry_interval: Some(60),
                topic_alias: Some(3),
                response_topic: Some("reply/here".into()),
                correlation_data: Some(Bytes::from_static(b"\x00corr")),
                content_type: Some("json".into()),
                user_properties: vec![user("k", "v")],
                ..Properties::default()
            }),
            payload: Bytes::from(vec![0u8; 300]),
        }),
        Packet::PubAck(ack(1, ReasonCode::NoMatchingSubscribers)),
        Packet::PubRec(ack(2, ReasonCode::QuotaExceeded)),
        Packet::PubRel(ack(3, ReasonCode::PacketIdentifierNotFound)),
        Packet::PubComp(Ack::new(4)),
        Packet::Subscribe(Subscribe {
            packet_id: 5,
            properties: props(Properties {
                subscription_identifiers: vec![268_435_455],
                user_properties: vec![user("s", "1")],
                ..Properties::default()
            }),
            filters: vec![
                SubscribeFilter { filter: "a/+/c".into(), options },
                SubscribeFilter { filter: "#".into(), options: SubscriptionOptions::new(QoS::AtMostOnce) },
            ],
        }),
        Packet::Unsubscribe(Unsubscribe {
            packet_id: 6,
            properties: props(Properties { user_properties: vec![user("u", "1")], ..Properties::default() }),
            filters: vec!["a/+/c".into(), "#".into()],
        }),
        Packet::PingReq,
        Packet::Disconnect(Disconnect::new(ReasonCode::Success)),
    ];
    if v5 {
        // A PUBLISH whose topic travels as an alias.
        let mut aliased = Publish::new("", Bytes::new());
        aliased.properties.topic_alias = Some(3);
        packets.push(Packet::Publish(aliased));
        packets.push(Packet::Auth(Auth {
            reason: ReasonCode::ContinueAuthentication,
            properties: Properties {
                authentication_method: Some("SCRAM".into()),
                authentication_data: Some(Bytes::from_static(b"nonce")),
                ..Properties::default()
            },
        }));
    }
    packets
}

#[test]
fn every_client_packet_round_trips_in_both_versions() {
    for version in [V4, V5] {
        let packets = client_packets(version);
        let mut bytes = BytesMut::new();
        for packet in &packets {
            packet.encode(version, &mut bytes).unwrap();
        }
        // A fresh decoder: the CONNECT at the front sets the version.
        let decoded = decode_all(&mut Decoder::new(MAX), &bytes).unwrap();
        assert_eq!(decoded, packets, "{version:?}");
    }
}

#[test]
fn v5_disconnect_with_reason_and_properties_round_trips() {
    let disconnect = Packet::Disconnect(Disconnect {
        reason: ReasonCode::DisconnectWithWillMessage,
        properties: Properties { reason_string: Some("bye".into()), ..Properties::default() },
    });
    let bytes = encode(&disconnect, V5);
    assert_eq!(decode_one(&mut connected(V5), &bytes).unwrap(), disconnect);
}

#[test]
fn rumqttc_v4_client_packets_decode() {
    let mut connect = r4::Connect::new("rumqttc-4");
    connect.keep_alive = 15;
    connect.clean_session = false;
    connect.set_login("alice", "secret");
    connect.last_will = Some(r4::LastWill::new("lw", "bye", RQoS::AtMostOnce, false));
    let mut publish = r4::Publish::new("a/b", RQoS::AtLeastOnce, "payload");
    publish.pkid = 9;
    let mut subscribe = r4::Subscribe::new("a/#", RQoS::ExactlyOnce);
    subscribe.pkid = 10;
    let mut unsubscribe = r4::Unsubscribe::new("a/#");
    unsubscribe.pkid = 11;
    let mut bytes = BytesMut::new();
    for packet in [
        r4::Packet::Connect(connect),
        r4::Packet::Publish(publish),
        r4::Packet::Subscribe(subscribe),
        r4::Packet::Unsubscribe(unsubscribe),
        r4::Packet::PubAck(r4::PubAck::new(1)),
        r4::Packet::PubRec(r4::PubRec::new(2)),
        r4::Packet::PubRel(r4::PubRel::new(3)),
        r4::Packet::PubComp(r4::PubComp::new(4)),
        r4::Packet::PingReq,
        r4::Packet::Disconnect,
    ] {
        packet.write(&mut bytes, MAX).unwrap();
    }
    let packets = decode_all(&mut Decoder::new(MAX), &bytes).unwrap();
    let Packet::Connect(connect) = &packets[0] else { panic!("{packets:?}") };
    assert_eq!(connect.version, V4);
    assert_eq!(connect.client_id, "rumqttc-4");
    assert_eq!(connect.keep_alive, 15);
    assert!(!connect.clean_start);
    assert_eq!(connect.username.as_ref().unwrap(), "alice");
    assert_eq!(connect.password.as_deref(), Some(&b"secret"[..]));
    let will = connect.will.as_ref().unwrap();
    assert_eq!((will.topic.as_str(), &will.payload[..]), ("lw", &b"bye"[..]));
    let Packet::Publish(publish) = &packets[1] else { panic!() };
    assert_eq!((publish.topic.as_str(), publish.qos, publish.packet_id), ("a/b", QoS::AtLeastOnce, 9));
    assert_eq!(&publish.payload[..], b"payload");
    let Packet::Subscribe(subscribe) = &packets[2] else { panic!() };
    assert_eq!(subscribe.packet_id, 10);
    assert_eq!(subscribe.filters[0].filter, "a/#");
    assert_eq!(subscribe.filters[0].options.qos, QoS::ExactlyOnce);
    assert!(matches!(&packets[3], Packet::Unsubscribe(u) if u.packet_id == 11 && u.filters[0] == "a/#"));
    assert_eq!(packets[4], Packet::PubAck(Ack::new(1)));
    assert_eq!(packets[5], Packet::PubRec(Ack::new(2)));
    assert_eq!(packets[6], Packet::PubRel(Ack::new(3)));
    assert_eq!(packets[7], Packet::PubComp(Ack::new(4)));
    assert_eq!(packets[8], Packet::PingReq);
    assert_eq!(packets[9], Packet::Disconnect(Disconnect::new(ReasonCode::Success)));
}

#[test]
fn rumqttc_v5_client_packets_decode() {
    let mut props = r5::ConnectProperties::new();
    props.session_expiry_interval = Some(120);
    props.receive_maximum = Some(20);
    props.user_properties = vec![("k".into(), "v".into())];
    let connect = r5::Connect {
        keep_alive: 5,
        client_id: "rumqttc-5".into(),
        clean_start: true,
        properties: Some(props),
    };
    let will = r5::LastWill::new("lw", "bye", R5QoS::AtLeastOnce, true, None);
    let login = r5::Login::new("bob", "pw");
    let publish_props = r5::PublishProperties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(30),
        topic_alias: Some(2),
        response_topic: Some("r".into()),
        correlation_data: Some(Bytes::from_static(b"c")),
        user_properties: vec![("x".into(), "y".into())],
        subscription_identifiers: vec![],
        content_type: Some("t".into()),
    };
    let mut publish = r5::Publish::new("a/b", R5QoS::ExactlyOnce, "data", Some(publish_props));
    publish.pkid = 3;
    let mut filter = r5::Filter::new("x/+", R5QoS::AtLeastOnce);
    filter.nolocal = true;
    filter.retain_forward_rule = r5::RetainForwardRule::OnNewSubscribe;
    let subscribe_props = r5::SubscribeProperties { id: Some(42), user_properties: vec![] };
    let mut subscribe = r5::Subscribe::new(filter, Some(subscribe_props));
    subscribe.pkid = 4;
    let mut unsubscribe = r5::Unsubscribe::new("x/+", None);
    unsubscribe.pkid = 5;
    let mut bytes = BytesMut::new();
    for packet in [
        r5::Packet::Connect(connect, Some(will), Some(login)),
        r5::Packet::Publish(publish),
        r5::Packet::Subscribe(subscribe),
        r5::Packet::Unsubscribe(unsubscribe),
        r5::Packet::PubAck(r5::PubAck::new(3, None)),
        r5::Packet::PubRel(r5::PubRel::new(3, None)),
        r5::Packet::PingReq(r5::PingReq),
        // Not a DISCONNECT with a reason code: rumqttc 0.25 writes its property length past
        // the remaining length it announces.
        r5::Packet::Disconnect(r5::Disconnect::new(r5::DisconnectReasonCode::NormalDisconnection)),
    ] {
        packet.write(&mut bytes, None).unwrap();
    }
    let packets = decode_all(&mut Decoder::new(MAX), &bytes).unwrap();
    let Packet::Connect(connect) = &packets[0] else { panic!("{packets:?}") };
    assert_eq!(connect.version, V5);
    assert_eq!(connect.client_id, "rumqttc-5");
    assert_eq!(connect.properties.session_expiry_interval, Some(120));
    assert_eq!(connect.properties.receive_maximum, Some(20));
    assert_eq!(connect.properties.user_properties, vec![user("k", "v")]);
    let will = connect.will.as_ref().unwrap();
    assert_eq!((will.qos, will.retain), (QoS::AtLeastOnce, true));
    assert_eq!(connect.username.as_ref().unwrap(), "bob");
    let Packet::Publish(publish) = &packets[1] else { panic!() };
    assert_eq!((publish.qos, publish.packet_id), (QoS::ExactlyOnce, 3));
    assert_eq!(publish.properties.payload_format_utf8, Some(true));
    assert_eq!(publish.properties.topic_alias, Some(2));
    assert_eq!(publish.properties.content_type.as_ref().unwrap(), "t");
    let Packet::Subscribe(subscribe) = &packets[2] else { panic!() };
    assert_eq!(subscribe.properties.subscription_identifiers, vec![42]);
    let options = subscribe.filters[0].options;
    assert!(options.no_local);
    assert_eq!(options.retain_handling, RetainHandling::OnNewSubscribe);
    assert!(matches!(&packets[3], Packet::Unsubscribe(u) if u.packet_id == 5));
    assert_eq!(packets[4], Packet::PubAck(Ack::new(3)));
    assert_eq!(packets[5], Packet::PubRel(Ack::new(3)));
    assert_eq!(packets[6], Packet::PingReq);
    assert!(matches!(&packets[7], Packet::Disconnect(_)));
}

fn read_v4(bytes: &BytesMut) -> r4::Packet {
    let mut bytes = bytes.clone();
    let packet = r4::Packet::read(&mut bytes, MAX).unwrap();
    assert!(bytes.is_empty());
    packet
}

fn read_v5(bytes: &BytesMut) -> r5::Packet {
    let mut bytes = bytes.clone();
    let packet = r5::Packet::read(&mut bytes, None).unwrap();
    assert!(bytes.is_empty());
    packet
}

#[test]
fn server_packets_decode_with_rumqttc_v4() {
    let connack = Packet::ConnAck(ConnAck {
        session_present: true,
        code: ReasonCode::Success,
        properties: Properties::default(),
    });
    assert_eq!(
        read_v4(&encode(&connack, V4)),
        r4::Packet::ConnAck(r4::ConnAck::new(r4::ConnectReturnCode::Success, true))
    );
    let refused = Packet::ConnAck(ConnAck {
        session_present: true,
        code: ReasonCode::NotAuthorized,
        properties: Properties::default(),
    });
    assert_eq!(
        read_v4(&encode(&refused, V4)),
        r4::Packet::ConnAck(r4::ConnAck::new(r4::ConnectReturnCode::NotAuthorized, false))
    );
    let mut publish = Publish::new("a/b", Bytes::from_static(b"x"));
    publish.qos = QoS::AtLeastOnce;
    publish.packet_id = 5;
    publish.retain = true;
    publish.properties.message_expiry_interval = Some(9); // dropped on 3.1.1
    let mut expected = r4::Publish::new("a/b", RQoS::AtLeastOnce, "x");
    expected.pkid = 5;
    expected.retain = true;
    assert_eq!(read_v4(&encode(&Packet::Publish(publish), V4)), r4::Packet::Publish(expected));
    let suback = Packet::SubAck(SubAck {
        packet_id: 3,
        properties: Properties::default(),
        codes: vec![ReasonCode::GrantedQoS1, ReasonCode::TopicFilterInvalid, ReasonCode::Success],
    });
    assert_eq!(&encode(&suback, V4)[..], &[0x90, 5, 0, 3, 1, 0x80, 0]);
    assert_eq!(
        read_v4(&encode(&suback, V4)),
        r4::Packet::SubAck(r4::SubAck::new(
            3,
            vec![
                r4::SubscribeReasonCode::Success(RQoS::AtLeastOnce),
                r4::SubscribeReasonCode::Failure,
                r4::SubscribeReasonCode::Success(RQoS::AtMostOnce),
            ]
        ))
    );
    let unsuback = Packet::UnsubAck(UnsubAck {
        packet_id: 4,
        properties: Properties::default(),
        codes: vec![ReasonCode::Success],
    });
    assert_eq!(read_v4(&encode(&unsuback, V4)), r4::Packet::UnsubAck(r4::UnsubAck::new(4)));
    assert_eq!(read_v4(&encode(&Packet::PubAck(Ack::new(1)), V4)), r4::Packet::PubAck(r4::PubAck::new(1)));
    assert_eq!(read_v4(&encode(&Packet::PubRec(Ack::new(2)), V4)), r4::Packet::PubRec(r4::PubRec::new(2)));
    assert_eq!(read_v4(&encode(&Packet::PubRel(Ack::new(3)), V4)), r4::Packet::PubRel(r4::PubRel::new(3)));
    assert_eq!(read_v4(&encode(&Packet::PubComp(Ack::new(4)), V4)), r4::Packet::PubComp(r4::PubComp::new(4)));
    assert_eq!(read_v4(&encode(&Packet::PingResp, V4)), r4::Packet::PingResp);
    assert_eq!(
        Packet::Auth(Auth { reason: ReasonCode::Success, properties: Properties::default() })
            .encode(V4, &mut BytesMut::new()),
        Err(EncodeError::NotInVersion("AUTH"))
    );
}

#[test]
fn server_packets_decode_with_rumqttc_v5() {
    let connack = Packet::ConnAck(ConnAck {
        session_present: false,
        code: ReasonCode::Success,
        properties: Properties {
            session_expiry_interval: Some(60),
            receive_maximum: Some(100),
            maximum_qos: Some(QoS::AtLeastOnce),
            retain_available: Some(true),
            maximum_packet_size: Some(1 << 20),
            assigned_client_identifier: Some("auto-1".into()),
            topic_alias_maximum: Some(10),
            reason_string: Some("welcome".into()),
            user_properties: vec![user("srv", "jetway")],
            wildcard_subscription_available: Some(true),
            subscription_identifiers_available: Some(true),
            shared_subscription_available: Some(false),
            server_keep_alive: Some(30),
            response_information: Some("resp/".into()),
            server_reference: Some("other:1883".into()),
            authentication_method: Some("SCRAM".into()),
            authentication_data: Some(Bytes::from_static(b"d")),
            ..Properties::default()
        },
    });
    let r5::Packet::ConnAck(ack) = read_v5(&encode(&connack, V5)) else { panic!() };
    assert_eq!(ack.code, r5::ConnectReturnCode::Success);
    let p = ack.properties.unwrap();
    assert_eq!(p.session_expiry_interval, Some(60));
    assert_eq!(p.receive_max, Some(100));
    assert_eq!(p.max_qos, Some(1));
    assert_eq!(p.retain_available, Some(1));
    assert_eq!(p.max_packet_size, Some(1 << 20));
    assert_eq!(p.assigned_client_identifier.as_deref(), Some("auto-1"));
    assert_eq!(p.topic_alias_max, Some(10));
    assert_eq!(p.reason_string.as_deref(), Some("welcome"));
    assert_eq!(p.user_properties, vec![("srv".into(), "jetway".into())]);
    assert_eq!(p.shared_subscription_available, Some(0));
    assert_eq!(p.server_keep_alive, Some(30));
    assert_eq!(p.server_reference.as_deref(), Some("other:1883"));
    assert_eq!(p.authentication_data.as_deref(), Some(&b"d"[..]));

    let refused = Packet::ConnAck(ConnAck {
        session_present: false,
        code: ReasonCode::BadUserNameOrPassword,
        properties: Properties::default(),
    });
    let r5::Packet::ConnAck(ack) = read_v5(&encode(&refused, V5)) else { panic!() };
    assert_eq!(ack.code, r5::ConnectReturnCode::BadUserNamePassword);

    let mut publish = Publish::new("a/b", Bytes::from_static(b"x"));
    publish.qos = QoS::ExactlyOnce;
    publish.packet_id = 8;
    publish.properties.subscription_identifiers = vec![1, 300];
    publish.properties.topic_alias = Some(4);
    let r5::Packet::Publish(p) = read_v5(&encode(&Packet::Publish(publish), V5)) else { panic!() };
    assert_eq!((&p.topic[..], p.pkid, &p.payload[..]), (&b"a/b"[..], 8, &b"x"[..]));
    let props = p.properties.unwrap();
    assert_eq!(props.subscription_identifiers, vec![1, 300]);
    assert_eq!(props.topic_alias, Some(4));

    let suback = Packet::SubAck(SubAck {
        packet_id: 3,
        properties: Properties { reason_string: Some("r".into()), ..Properties::default() },
        codes: vec![ReasonCode::GrantedQoS2, ReasonCode::QuotaExceeded],
    });
    let r5::Packet::SubAck(ack) = read_v5(&encode(&suback, V5)) else { panic!() };
    assert_eq!(
        ack.return_codes,
        vec![r5::SubscribeReasonCode::Success(R5QoS::ExactlyOnce), r5::SubscribeReasonCode::QuotaExceeded]
    );
    let unsuback = Packet::UnsubAck(UnsubAck {
        packet_id: 4,
        properties: Properties::default(),
        codes: vec![ReasonCode::NoSubscriptionExisted],
    });
    let r5::Packet::UnsubAck(ack) = read_v5(&encode(&unsuback, V5)) else { panic!() };
    assert_eq!(ack.reasons, vec![r5::UnsubAckReason::NoSubscriptionExisted]);

    let puback = Packet::PubAck(Ack {
        packet_id: 6,
        reason: ReasonCode::NoMatchingSubscribers,
        properties: Properties::default(),
    });
    let r5::Packet::PubAck(ack) = read_v5(&encode(&puback, V5)) else { panic!() };
    assert_eq!(ack.reason, r5::PubAckReason::NoMatchingSubscribers);
    for packet in [
        Packet::PubRec(Ack::new(7)),
        Packet::PubRel(Ack::new(7)),
        Packet::PubComp(Ack::new(7)),
        Packet::PingResp,
    ] {
        // Success without properties is the short 3.1.1-shaped form.
        let bytes = encode(&packet, V5);
        assert_eq!(bytes, encode(&packet, V4));
        read_v5(&bytes);
    }
    let disconnect = Packet::Disconnect(Disconnect::new(ReasonCode::SessionTakenOver));
    let r5::Packet::Disconnect(d) = read_v5(&encode(&disconnect, V5)) else { panic!() };
    assert_eq!(d.reason_code, r5::DisconnectReasonCode::SessionTakenOver);
    let auth = Packet::Auth(Auth {
        reason: ReasonCode::ContinueAuthentication,
        properties: Properties { authentication_method: Some("SCRAM".into()), ..Properties::default() },
    });
    // rumqttc 0.25 cannot read AUTH (packet type 15): check the bytes, and our own decoder.
    let bytes = encode(&auth, V5);
    assert_eq!(&bytes[..], b"\xF0\x0A\x18\x08\x15\x00\x05SCRAM");
    assert_eq!(decode_one(&mut connected(V5), &bytes).unwrap(), auth);
}
