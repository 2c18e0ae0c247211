//! A WebSocket connection as the two byte-stream halves the connection tasks take, so the
//! NATS and MQTT code runs unchanged over WebSocket.
//!
//! Reading: the payloads of binary (and text) messages, concatenated; one message may hold
//! part of a packet or several. Pings are answered and a close is acknowledged by
//! tokio-websockets while it reads; a close (or the end of the TCP stream) reads as EOF.
//! Writing: each write goes out as one binary message and is flushed before the write
//! completes; shutting down sends a close frame whose status says why the server closed.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{Sink, Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_websockets::{Message, WebSocketStream};

/// Builds the close frame when the writer shuts down (the reason is known only then).
pub type CloseFrame = Box<dyn FnOnce() -> Message + Send>;

/// Splits an upgraded stream into reader and writer halves.
pub fn split<S>(ws: WebSocketStream<S>, close: CloseFrame) -> (WsReader<S>, WsWriter<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (sink, stream) = ws.split();
    (WsReader { stream, pending: Bytes::new() }, WsWriter { sink, in_flight: None, close: Some(close) })
}

/// The reading half: message payloads as a byte stream.
pub struct WsReader<S> {
    stream: SplitStream<WebSocketStream<S>>,
    /// What is left of the last message's payload.
    pending: Bytes,
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsReader<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut this.stream).poll_next(cx)) {
                // The end of the stream; after a close frame the next poll sends the close
                // acknowledgement first, then ends here.
                None => return Poll::Ready(Ok(())),
                Some(Ok(message)) if message.is_binary() || message.is_text() => {
                    this.pending = message.into_payload().into();
                }
                // Pings (answered by the library), pongs and the close frame carry no data.
                Some(Ok(_)) => {}
                Some(Err(e)) => return Poll::Ready(Err(io::Error::other(e))),
            }
        }
    }
}

/// The writing half: each write is one binary message.
pub struct WsWriter<S> {
    sink: SplitSink<WebSocketStream<S>, Message>,
    /// Bytes of the message queued by a write that is still flushing. A write returns only
    /// once its message is flushed, so the connection's writer (which never calls `flush`)
    /// cannot leave a message queued. The connection tasks never retry a pending write with
    /// other bytes: they close the connection instead.
    in_flight: Option<usize>,
    close: Option<CloseFrame>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsWriter<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.in_flight.is_none() {
            ready!(Pin::new(&mut this.sink).poll_ready(cx)).map_err(io::Error::other)?;
            Pin::new(&mut this.sink)
                .start_send(Message::binary(Bytes::copy_from_slice(buf)))
                .map_err(io::Error::other)?;
            this.in_flight = Some(buf.len());
        }
        let flushed = ready!(Pin::new(&mut this.sink).poll_flush(cx));
        let written = this.in_flight.take().unwrap_or_default();
        Poll::Ready(flushed.map(|()| written).map_err(io::Error::other))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().sink).poll_flush(cx).map_err(io::Error::other)
    }

    /// Sends the close frame and flushes. It does not wait for the peer's close reply: the
    /// socket closes when both halves are dropped, which the connection task does next.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(close) = this.close.take() {
            if ready!(Pin::new(&mut this.sink).poll_ready(cx)).is_err() {
                return Poll::Ready(Ok(()));
            }
            // Fails when the peer closed first: the flush below then sends the library's
            // acknowledgement of the peer's close instead.
            let _ = Pin::new(&mut this.sink).start_send(close());
        }
        // A peer that went away makes this fail; shutdown has nothing left to do then.
        let _ = ready!(Pin::new(&mut this.sink).poll_flush(cx));
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_websockets::{CloseCode, ServerBuilder};

    use super::*;

    /// A server-side stream over an in-memory pipe and the raw client end of the pipe.
    fn pair(
    ) -> (WsReader<tokio::io::DuplexStream>, WsWriter<tokio::io::DuplexStream>, tokio::io::DuplexStream) {
        let (server, client) = tokio::io::duplex(64 * 1024);
        let ws = ServerBuilder::new().serve(server);
        let (reader, writer) = split(
            ws,
            Box::new(|| Message::close(Some(CloseCode::POLICY_VIOLATION), "Authentication Failure")),
        );
        (reader, writer, client)
    }

    /// A masked client frame (RFC 6455 §5.2) with a fixed mask.
    fn frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        assert!(payload.len() < 126, "short frames only");
        out.push(0x80 | payload.len() as u8);
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[tokio::test]
    async fn payloads_of_fragmented_and_batched_messages_read_as_one_byte_stream() {
        let (mut reader, _writer, mut client) = pair();
        let mut wire = frame(0x2, false, b"PUB a 2\r");
        wire.extend(frame(0x0, true, b"\nhi\r\n"));
        wire.extend(frame(0x9, true, b"ping"));
        wire.extend(frame(0x1, true, b"PING\r\nPONG\r\n"));
        client.write_all(&wire).await.unwrap_or_else(|e| panic!("{e}"));
        let mut got = vec![0u8; 25];
        reader.read_exact(&mut got).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&got, b"PUB a 2\r\nhi\r\nPING\r\nPONG\r\n");
        // The ping was answered with a pong carrying its payload (server frames are unmasked).
        let mut pong = [0u8; 6];
        client.read_exact(&mut pong).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&pong, b"\x8a\x04ping");
    }

    #[tokio::test]
    async fn a_close_frame_reads_as_eof_and_is_acknowledged() {
        let (mut reader, _writer, mut client) = pair();
        client.write_all(&frame(0x8, true, &1000u16.to_be_bytes())).await.unwrap_or_else(|e| panic!("{e}"));
        let mut rest = Vec::new();
        assert_eq!(reader.read_to_end(&mut rest).await.unwrap_or_else(|e| panic!("{e}")), 0);
        let mut ack = [0u8; 4];
        client.read_exact(&mut ack).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&ack, b"\x88\x02\x03\xe8");
    }

    #[tokio::test]
    async fn writes_are_binary_messages_and_shutdown_sends_the_close_reason() {
        let (_reader, mut writer, mut client) = pair();
        writer.write_all(b"INFO {}\r\n").await.unwrap_or_else(|e| panic!("{e}"));
        writer.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
        let why = b"Authentication Failure";
        let mut want = b"\x82\x09INFO {}\r\n".to_vec();
        want.extend([0x88, 2 + why.len() as u8, 0x03, 0xf0]);
        want.extend(why);
        let mut got = vec![0u8; want.len()];
        client.read_exact(&mut got).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, want);
    }
}
