"""Core publish/subscribe: literal subjects, wildcards, auto-unsubscribe, flush, large payloads."""

import nats.errors
import pytest

from barrier import barrier

TIMEOUT_S = 2.0
ONE_MIB = 1024 * 1024


async def test_literal_subject_delivers_payload_to_other_connection(connect):
    sub_nc, pub_nc = await connect(), await connect()
    sub = await sub_nc.subscribe("greet.alice")
    await barrier(sub_nc)
    await pub_nc.publish("greet.alice", b"hello")
    await pub_nc.publish("greet.bob", b"not for alice")
    await pub_nc.publish("greet.alice", b"again")
    msgs = [await sub.next_msg(timeout=TIMEOUT_S) for _ in range(2)]
    assert [(m.subject, m.data) for m in msgs] == [("greet.alice", b"hello"), ("greet.alice", b"again")]
    with pytest.raises(nats.errors.TimeoutError):
        await sub.next_msg(timeout=0.2)


@pytest.mark.parametrize(
    ("pattern", "delivered"),
    [
        # `*` matches exactly one token.
        ("orders.*", ["orders.new", "orders.paid"]),
        # `>` matches one or more trailing tokens.
        (">", ["orders.new", "orders", "orders.new.eu", "other.new", "orders.paid", "orders.a.b.c"]),
        ("orders.>", ["orders.new", "orders.new.eu", "orders.paid", "orders.a.b.c"]),
        ("orders.*.eu", ["orders.new.eu"]),
        ("*.new", ["orders.new", "other.new"]),
    ],
)
async def test_wildcards_match_by_token(connect, pattern, delivered):
    sub_nc, pub_nc = await connect(), await connect()
    sub = await sub_nc.subscribe(pattern)
    sentinel = await sub_nc.subscribe("orders.done")
    await barrier(sub_nc)
    for subject in ("orders.new", "orders", "orders.new.eu", "other.new", "orders.paid", "orders.a.b.c"):
        await pub_nc.publish(subject, subject.encode())
    await pub_nc.publish("orders.done", b"")
    # Delivery from one publisher to one connection is ordered: once the sentinel is in,
    # everything published before it has been delivered.
    await sentinel.next_msg(timeout=TIMEOUT_S)
    got = []
    for _ in range(sub.pending_msgs):
        msg = await sub.next_msg(timeout=TIMEOUT_S)
        if msg.subject != "orders.done":
            got.append(msg)
    assert [m.subject for m in got] == delivered
    assert [m.data for m in got] == [s.encode() for s in delivered]


async def test_overlapping_subscriptions_each_receive_a_copy(nc):
    exact = await nc.subscribe("a.b")
    star = await nc.subscribe("a.*")
    full = await nc.subscribe(">")
    await nc.publish("a.b", b"x")
    await barrier(nc)
    for sub in (exact, star, full):
        msg = await sub.next_msg(timeout=TIMEOUT_S)
        assert (msg.subject, msg.data) == ("a.b", b"x")


async def test_auto_unsubscribe_after_limit_delivers_exactly_limit(connect):
    sub_nc, pub_nc = await connect(), await connect()
    sub = await sub_nc.subscribe("limited")
    await sub.unsubscribe(limit=3)
    await barrier(sub_nc)
    for i in range(10):
        await pub_nc.publish("limited", str(i).encode())
    await barrier(pub_nc)
    got = [await sub.next_msg(timeout=TIMEOUT_S) for _ in range(3)]
    assert [m.data for m in got] == [b"0", b"1", b"2"]
    # The server must have dropped the interest: a new publish reaches nobody.
    with pytest.raises(nats.errors.NoRespondersError):
        await pub_nc.request("limited", b"anyone?", timeout=TIMEOUT_S)


async def test_flush_round_trips_a_ping(nc):
    for _ in range(5):
        await nc.flush(timeout=TIMEOUT_S)
    rtt = await nc.rtt()
    assert 0 <= rtt < TIMEOUT_S


async def test_flush_after_many_publishes_means_server_processed_them(connect):
    sub_nc, pub_nc = await connect(), await connect()
    sub = await sub_nc.subscribe("burst")
    await barrier(sub_nc)
    for i in range(1000):
        await pub_nc.publish("burst", i.to_bytes(4, "big"))
    await pub_nc.flush(timeout=TIMEOUT_S)
    got = [await sub.next_msg(timeout=TIMEOUT_S) for _ in range(1000)]
    assert [int.from_bytes(m.data, "big") for m in got] == list(range(1000))


async def test_server_advertises_one_mib_max_payload(nc):
    assert nc.max_payload == ONE_MIB


async def test_one_mib_payload_is_delivered_intact(connect):
    sub_nc, pub_nc = await connect(), await connect()
    sub = await sub_nc.subscribe("big")
    await barrier(sub_nc)
    payload = bytes(i % 251 for i in range(ONE_MIB))
    await pub_nc.publish("big", payload)
    await pub_nc.flush(timeout=5)
    msg = await sub.next_msg(timeout=5)
    assert len(msg.data) == ONE_MIB
    assert msg.data == payload


async def test_empty_payload_is_delivered(nc):
    sub = await nc.subscribe("empty")
    await nc.publish("empty", b"")
    msg = await sub.next_msg(timeout=TIMEOUT_S)
    assert msg.data == b""


async def test_unsubscribe_stops_delivery(nc):
    sub = await nc.subscribe("gone")
    await nc.publish("gone", b"1")
    assert (await sub.next_msg(timeout=TIMEOUT_S)).data == b"1"
    await sub.unsubscribe()
    await barrier(nc)
    with pytest.raises(nats.errors.NoRespondersError):
        await nc.request("gone", b"", timeout=TIMEOUT_S)


async def test_no_echo_connection_does_not_receive_its_own_messages(connect):
    quiet_nc, other_nc = await connect(no_echo=True), await connect()
    own = await quiet_nc.subscribe("echo.test")
    other = await other_nc.subscribe("echo.test")
    await barrier(quiet_nc, other_nc)
    await quiet_nc.publish("echo.test", b"from quiet")
    await other_nc.publish("echo.test", b"from other")
    await barrier(quiet_nc, other_nc)
    assert (await own.next_msg(timeout=TIMEOUT_S)).data == b"from other"
    assert sorted([(await other.next_msg(timeout=TIMEOUT_S)).data for _ in range(2)]) == [b"from other", b"from quiet"]
    with pytest.raises(nats.errors.TimeoutError):
        await own.next_msg(timeout=0.2)


async def test_drain_delivers_what_was_already_sent(connect):
    sub_nc, pub_nc = await connect(), await connect()
    received = []

    async def collect(msg):
        received.append(msg.data)

    await sub_nc.subscribe("drain.me", cb=collect)
    await barrier(sub_nc)
    for i in range(100):
        await pub_nc.publish("drain.me", str(i).encode())
    await barrier(pub_nc)
    await sub_nc.drain()
    assert received == [str(i).encode() for i in range(100)]
    assert sub_nc.is_closed
