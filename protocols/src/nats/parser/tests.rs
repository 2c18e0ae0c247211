use super::*;
use proptest::prelude::*;

fn parse_all(parser: &Parser, input: &[u8]) -> Result<Vec<ClientOp>, ParseError> {
    let mut buf = BytesMut::from(input);
    let mut ops = Vec::new();
    while let Some(op) = parser.parse(&mut buf)? {
        ops.push(op);
    }
    assert!(buf.is_empty(), "leftover {:?}", buf);
    Ok(ops)
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[test]
fn parses_every_operation() {
    let p = Parser::default();
    let ops = parse_all(
        &p,
        b"CONNECT {\"verbose\":false}\r\nPUB a 2\r\nhi\r\nPUB a r 0\r\n\r\nHPUB a r 12 14\r\nNATS/1.0\r\n\r\nhi\r\n\
          SUB a 1\r\nSUB a q 2\r\nUNSUB 1\r\nUNSUB 2 5\r\nPING\r\nPONG\r\n+OK\r\n-ERR 'x'\r\n",
    )
    .unwrap();
    assert_eq!(
        ops,
        vec![
            ClientOp::Connect(b("{\"verbose\":false}")),
            ClientOp::Pub { subject: b("a"), reply: None, headers: None, payload: b("hi") },
            ClientOp::Pub { subject: b("a"), reply: Some(b("r")), headers: None, payload: b("") },
            ClientOp::Pub {
                subject: b("a"),
                reply: Some(b("r")),
                headers: Some(b("NATS/1.0\r\n\r\n")),
                payload: b("hi")
            },
            ClientOp::Sub { subject: b("a"), queue: None, sid: b("1") },
            ClientOp::Sub { subject: b("a"), queue: Some(b("q")), sid: b("2") },
            ClientOp::Unsub { sid: b("1"), max_msgs: None },
            ClientOp::Unsub { sid: b("2"), max_msgs: Some(5) },
            ClientOp::Ping,
            ClientOp::Pong,
            ClientOp::Ok,
            ClientOp::Err,
        ]
    );
}

#[test]
fn op_names_are_case_insensitive_and_args_tolerate_tabs_and_runs_of_spaces() {
    let p = Parser::default();
    let ops = parse_all(&p, b"pub  a\t 2\r\nhi\r\nping\nSuB a\t1\r\n").unwrap();
    assert_eq!(ops.len(), 3);
    assert_eq!(ops[1], ClientOp::Ping);
}

#[test]
fn incomplete_input_leaves_buffer_untouched() {
    let p = Parser::default();
    for partial in [&b"PU"[..], b"PUB a 5\r\nhel", b"PUB a 5\r\nhello", b"PING\r", b"SUB a 1"] {
        let mut buf = BytesMut::from(partial);
        assert_eq!(p.parse(&mut buf), Ok(None), "{partial:?}");
        assert_eq!(&buf[..], partial);
    }
}

#[test]
fn payload_over_max_is_refused_before_it_arrives() {
    let p = Parser::new(ParserLimits { max_payload: 10, ..ParserLimits::default() });
    let mut buf = BytesMut::from(&b"PUB a 11\r\n"[..]);
    assert_eq!(p.parse(&mut buf), Err(ParseError::MaxPayload { size: 11, max: 10 }));
}

#[test]
fn control_line_over_max_is_refused() {
    let p = Parser::new(ParserLimits { max_control_line: 16, ..ParserLimits::default() });
    let mut buf = BytesMut::from(&b"SUB aaaaaaaaaaaaaaaaaaaaaaa 1\r\n"[..]);
    assert!(matches!(p.parse(&mut buf), Err(ParseError::MaxControlLine { .. })));
    let mut buf = BytesMut::from(&b"SUB aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"[..]);
    assert!(matches!(p.parse(&mut buf), Err(ParseError::MaxControlLine { .. })));
}

#[test]
fn unknown_operations_are_refused_early() {
    let p = Parser::default();
    for bad in [&b"FOO\r\n"[..], b"X", b"PUBX a 1\r\n", b"PINGX"] {
        let mut buf = BytesMut::from(bad);
        assert_eq!(p.parse(&mut buf), Err(ParseError::UnknownOp), "{bad:?}");
    }
}

#[test]
fn malformed_arguments_are_refused() {
    let p = Parser::default();
    for bad in [
        &b"PUB a\r\n"[..],
        b"PUB a b c 1\r\n",
        b"PUB a -1\r\n",
        b"PUB a x\r\n",
        b"PUB a 99999999999999999999999\r\n",
        b"SUB a\r\n",
        b"SUB a b c d\r\n",
        b"UNSUB\r\n",
        b"UNSUB 1 x\r\n",
        b"HPUB a 1\r\n",
    ] {
        let mut buf = BytesMut::from(bad);
        assert!(matches!(p.parse(&mut buf), Err(ParseError::BadArgs { .. })), "{bad:?}");
    }
    let mut buf = BytesMut::from(&b"HPUB a 5 2\r\n"[..]);
    assert_eq!(p.parse(&mut buf), Err(ParseError::BadHeaderSize));
    let mut buf = BytesMut::from(&b"PUB a 2\r\nhiXX"[..]);
    assert_eq!(p.parse(&mut buf), Err(ParseError::BadPayloadTerminator));
}

#[test]
fn hpub_requires_headers_support() {
    let p = Parser::new(ParserLimits { headers: false, ..ParserLimits::default() });
    let mut buf = BytesMut::from(&b"HPUB a 12 12\r\nNATS/1.0\r\n\r\n\r\n"[..]);
    assert_eq!(p.parse(&mut buf), Err(ParseError::HeadersNotSupported));
}

fn op_strategy() -> impl Strategy<Value = Vec<u8>> {
    let subject = "[a-z]{1,5}(\\.[a-z*]{1,3}){0,2}";
    let payload = proptest::collection::vec(any::<u8>(), 0..40);
    prop_oneof![
        (subject, payload.clone()).prop_map(|(s, p)| {
            let mut v = format!("PUB {s} {}\r\n", p.len()).into_bytes();
            v.extend_from_slice(&p);
            v.extend_from_slice(b"\r\n");
            v
        }),
        (subject, payload).prop_map(|(s, p)| {
            let hdr = b"NATS/1.0\r\nA: b\r\n\r\n";
            let mut v = format!("HPUB {s} _INBOX.x {} {}\r\n", hdr.len(), hdr.len() + p.len()).into_bytes();
            v.extend_from_slice(hdr);
            v.extend_from_slice(&p);
            v.extend_from_slice(b"\r\n");
            v
        }),
        (subject, 1u32..1000).prop_map(|(s, sid)| format!("SUB {s} {sid}\r\n").into_bytes()),
        (1u32..1000).prop_map(|sid| format!("UNSUB {sid} 3\r\n").into_bytes()),
        Just(b"PING\r\n".to_vec()),
        Just(b"PONG\r\n".to_vec()),
        Just(b"CONNECT {\"headers\":true}\r\n".to_vec()),
    ]
}

proptest! {
    // Feeding the same stream in arbitrary chunks must give exactly the same operations.
    #[test]
    fn random_split_points_parse_identically(
        ops in proptest::collection::vec(op_strategy(), 1..20),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
    ) {
        let p = Parser::default();
        let stream: Vec<u8> = ops.concat();
        let whole = parse_all(&p, &stream).unwrap();
        prop_assert_eq!(whole.len(), ops.len());

        let mut cut_points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        cut_points.sort_unstable();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut last = 0;
        for cut in cut_points.into_iter().chain([stream.len()]) {
            buf.extend_from_slice(&stream[last..cut]);
            last = cut;
            while let Some(op) = p.parse(&mut buf).unwrap() {
                got.push(op);
            }
        }
        prop_assert_eq!(got, whole);
    }

    // Arbitrary bytes never panic the parser, and never produce an op from nothing.
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let p = Parser::new(ParserLimits { max_payload: 64, max_control_line: 64, headers: true });
        let mut buf = BytesMut::from(&data[..]);
        let before = buf.len();
        while let Ok(Some(_)) = p.parse(&mut buf) {
            prop_assert!(buf.len() < before);
        }
    }
}
