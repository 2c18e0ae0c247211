//! Property tests: any split of the input decodes the same; no input panics the decoder;
//! arbitrary publishes round trip.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::round_trip::client_packets;
use super::*;
use ProtocolVersion::{V4, V5};

/// Every client packet of `version`, encoded back to back (CONNECT first).
fn stream(version: ProtocolVersion) -> Vec<u8> {
    let mut bytes = BytesMut::new();
    for packet in client_packets(version) {
        packet.encode(version, &mut bytes).unwrap();
    }
    bytes.to_vec()
}

/// Feeds `bytes` in chunks cut at `cuts`, decoding after each chunk.
fn decode_in_chunks(bytes: &[u8], cuts: &[usize]) -> Result<Vec<Packet>, MqttError> {
    let mut decoder = Decoder::new(MAX);
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.push(bytes.len());
    cuts.sort_unstable();
    let mut buf = BytesMut::new();
    let mut packets = Vec::new();
    let mut fed = 0;
    for cut in cuts {
        buf.extend_from_slice(&bytes[fed..cut]);
        fed = cut;
        while let Some(packet) = decoder.decode(&mut buf)? {
            packets.push(packet);
        }
    }
    assert!(buf.is_empty());
    Ok(packets)
}

/// Decodes until the decoder wants more or refuses (the only outcomes allowed besides a
/// packet), checking that every packet survives re-encoding: the same oracle as the
/// `mqtt_decode` fuzz target.
fn drain(mut decoder: Decoder, bytes: &[u8]) {
    let mut buf = BytesMut::from(bytes);
    loop {
        let before = decoder.clone();
        let Ok(Some(packet)) = decoder.decode(&mut buf) else {
            return;
        };
        let version = match &packet {
            Packet::Connect(connect) => connect.version,
            _ => before.version().unwrap(),
        };
        let mut again = before;
        again.set_max_packet_size(usize::MAX);
        let encoded = encode(&packet, version);
        assert_eq!(decode_one(&mut again, &encoded).unwrap(), packet);
    }
}

proptest! {
    #[test]
    fn any_split_of_the_input_decodes_the_same(
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
        v5 in any::<bool>(),
    ) {
        let version = if v5 { V5 } else { V4 };
        let bytes = stream(version);
        let whole = decode_all(&mut Decoder::new(MAX), &bytes).unwrap();
        prop_assert_eq!(decode_in_chunks(&bytes, &cuts).unwrap(), whole);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        drain(Decoder::new(MAX), &bytes);
        drain(Decoder::connected(MAX, V4), &bytes);
        drain(Decoder::connected(MAX, V5), &bytes);
        drain(Decoder::connected(64, V5), &bytes);
    }

    #[test]
    fn corrupted_valid_streams_never_panic_the_decoder(
        v5 in any::<bool>(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        truncate in any::<usize>(),
    ) {
        let mut bytes = stream(if v5 { V5 } else { V4 });
        for (at, value) in edits {
            let at = at % bytes.len();
            bytes[at] = value;
        }
        bytes.truncate(truncate % (bytes.len() + 1));
        drain(Decoder::new(MAX), &bytes);
    }

    #[test]
    fn arbitrary_publishes_round_trip(
        topic in "[a-z0-9/ .$]{1,40}",
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        qos in 0u8..3,
        dup in any::<bool>(),
        retain in any::<bool>(),
        packet_id in 1u16..,
        expiry in proptest::option::of(any::<u32>()),
        v5 in any::<bool>(),
    ) {
        let version = if v5 { V5 } else { V4 };
        let qos = QoS::from_bits(qos).unwrap();
        let publish = Publish {
            dup: dup && qos != QoS::AtMostOnce,
            qos,
            retain,
            topic: MqttStr::from(topic),
            packet_id: if qos == QoS::AtMostOnce { 0 } else { packet_id },
            properties: Properties {
                message_expiry_interval: if v5 { expiry } else { None },
                ..Properties::default()
            },
            payload: Bytes::from(payload),
        };
        let packet = Packet::Publish(publish);
        let bytes = encode(&packet, version);
        prop_assert_eq!(decode_one(&mut connected(version), &bytes).unwrap(), packet);
    }
}
