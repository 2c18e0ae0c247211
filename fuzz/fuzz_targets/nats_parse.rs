//! Arbitrary bytes into the NATS client-protocol parser, fed in two arbitrary pieces: it must
//! never panic, every op must consume input, and splitting must not change the result.
#![no_main]

use bytes::BytesMut;
use jetway_protocols::nats::{Parser, ParserLimits};
use libfuzzer_sys::fuzz_target;

fn parse_all(parser: &Parser, chunks: &[&[u8]]) -> (Vec<String>, bool) {
    let mut buf = BytesMut::new();
    let mut ops = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.len();
            match parser.parse(&mut buf) {
                Ok(Some(op)) => {
                    assert!(buf.len() < before, "an op must consume input");
                    ops.push(format!("{op:?}"));
                }
                Ok(None) => break,
                Err(_) => return (ops, true),
            }
        }
    }
    (ops, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else { return };
    let parser = Parser::new(ParserLimits { max_payload: 256, max_control_line: 128, headers: true });
    let cut = usize::from(cut).min(rest.len());
    let whole = parse_all(&parser, &[rest]);
    let split = parse_all(&parser, &[&rest[..cut], &rest[cut..]]);
    if !whole.1 && !split.1 {
        assert_eq!(whole.0, split.0);
    }
});
