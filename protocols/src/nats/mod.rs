//! The NATS client protocol, sans-IO.
//!
//! - [`parser`]: bytes from a client → [`ClientOp`]s, zero-copy (payloads are `Bytes` split off
//!   the read buffer), with `max_payload` and `max_control_line` enforced before buffering.
//! - [`encode`]: server → client frames (`MSG`, `HMSG`, `INFO`, `-ERR`, …) appended to a buffer.
//! - [`headers`]: the `NATS/1.0` header block (status line, multi-value fields).
//! - [`info`]: the JSON bodies of `INFO` and `CONNECT`.

pub mod encode;
pub mod headers;
pub mod info;
pub mod parser;

pub use headers::{HeaderError, HeaderMap};
pub use info::{ConnectOptions, ServerInfo};
pub use parser::{ClientOp, ParseError, Parser, ParserLimits};
