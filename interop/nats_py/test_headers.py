"""Message headers (HPUB/HMSG) pass through the server unchanged."""

from barrier import barrier
from harness.raw import RawConnection

TIMEOUT_S = 2.0


async def test_headers_round_trip_between_nats_py_clients(connect):
    sub_nc, pub_nc = await connect(), await connect()
    sub = await sub_nc.subscribe("hdr")
    await barrier(sub_nc)
    sent = {"Trace-Id": "abc-123", "Content-Type": "application/json", "X-Empty-Body": "yes"}
    await pub_nc.publish("hdr", b"", headers=sent)
    await pub_nc.publish("hdr", b'{"a":1}', headers=sent)
    for expected_body in (b"", b'{"a":1}'):
        msg = await sub.next_msg(timeout=TIMEOUT_S)
        assert msg.data == expected_body
        # The `NATS/1.0` status line carries no status here, so no Status key appears.
        assert msg.headers == sent


async def test_message_without_headers_has_none(connect):
    sub_nc, pub_nc = await connect(), await connect()
    sub = await sub_nc.subscribe("nohdr")
    await barrier(sub_nc)
    await pub_nc.publish("nohdr", b"plain")
    msg = await sub.next_msg(timeout=TIMEOUT_S)
    assert msg.data == b"plain"
    assert not msg.headers


async def test_multi_value_header_reaches_subscribers_byte_for_byte(server_url, connect):
    """A header repeated twice must survive; nats.py keeps one value, the raw bytes keep both."""
    header_block = b"NATS/1.0\r\nX-Multi: first\r\nX-Multi: second\r\nX-Other: o\r\n\r\n"
    body = b"body"

    py_nc = await connect()
    py_sub = await py_nc.subscribe("multi")
    await barrier(py_nc)

    raw_sub = await RawConnection.open(server_url)
    raw_pub = await RawConnection.open(server_url)
    try:
        await raw_sub.send(b'CONNECT {"verbose":false,"headers":true,"no_responders":true}\r\nSUB multi 7\r\nPING\r\n')
        assert await raw_sub.read_until(b"PONG") == [b"PONG"]

        total = len(header_block) + len(body)
        await raw_pub.send(
            b'CONNECT {"verbose":false,"headers":true}\r\n'
            + f"HPUB multi {len(header_block)} {total}\r\n".encode()
            + header_block
            + body
            + b"\r\nPING\r\n"
        )
        assert await raw_pub.read_until(b"PONG") == [b"PONG"]

        control = await raw_sub.read_line()
        assert control == f"HMSG multi 7 {len(header_block)} {total}".encode()
        assert await raw_sub.read_exact(total + 2) == header_block + body + b"\r\n"
    finally:
        await raw_sub.close()
        await raw_pub.close()

    msg = await py_sub.next_msg(timeout=TIMEOUT_S)
    assert msg.data == body
    assert msg.headers["X-Other"] == "o"
    assert msg.headers["X-Multi"] in ("first", "second")
    assert "Status" not in msg.headers
