"""Consumers through nats.py: pull (fetch, ack, NAK and redelivery), push (ephemeral and
durable), and the counters in consumer info."""

import asyncio

import nats.errors
import nats.js.errors
import pytest
from nats.js.api import AckPolicy, ConsumerConfig

from barrier import barrier
from js_helpers import WAIT_S, bounded, eventually

pytestmark = pytest.mark.jetstream

FETCH_TIMEOUT_S = 5.0
CONSUMER_NOT_FOUND = 10014


async def fill(js, stream: str, subject: str, count: int) -> None:
    await js.add_stream(name=stream, subjects=[f"{subject}.>"])
    for i in range(count):
        await js.publish(f"{subject}.{i % 2}", f"{i}".encode())


async def test_pull_fetch_in_batches_and_ack(nc, js):
    await fill(js, "PULL", "pull", 10)
    psub = await js.pull_subscribe("pull.>", durable="worker", stream="PULL")

    first = await psub.fetch(4, timeout=FETCH_TIMEOUT_S)
    assert [m.metadata.sequence.stream for m in first] == [1, 2, 3, 4]
    assert [m.data for m in first] == [b"0", b"1", b"2", b"3"]
    assert first[1].subject == "pull.1"
    assert first[0].metadata.stream == "PULL"
    assert first[0].metadata.consumer == "worker"
    assert first[0].metadata.num_delivered == 1
    for msg in first:
        await msg.ack()

    rest = []
    for _ in range(10):  # the server may answer a fetch with fewer messages than asked
        if len(rest) >= 6:
            break
        rest += await psub.fetch(6 - len(rest), timeout=FETCH_TIMEOUT_S)
    assert [m.metadata.sequence.stream for m in rest] == [5, 6, 7, 8, 9, 10]
    for msg in rest:
        await msg.ack()
    await barrier(nc)

    async def drained():
        info = await js.consumer_info("PULL", "worker")
        return info if info.num_ack_pending == 0 and info.num_pending == 0 else None

    info = await eventually(drained)
    assert info.delivered.stream_seq == 10
    assert info.ack_floor.stream_seq == 10

    # Nothing left: a fetch times out rather than returning stale messages.
    with pytest.raises(nats.errors.TimeoutError):
        await psub.fetch(1, timeout=1)


async def test_consumer_info_counts_pending_and_unacked(nc, js):
    await fill(js, "COUNTS", "counts", 10)
    psub = await js.pull_subscribe("counts.>", durable="counter", stream="COUNTS")
    info = await js.consumer_info("COUNTS", "counter")
    assert info.name == "counter"
    assert info.stream_name == "COUNTS"
    assert info.config.durable_name == "counter"
    assert info.config.ack_policy == AckPolicy.EXPLICIT
    assert (info.num_pending, info.num_ack_pending) == (10, 0)

    msgs = await psub.fetch(3, timeout=FETCH_TIMEOUT_S)
    assert len(msgs) == 3
    info = await js.consumer_info("COUNTS", "counter")
    assert (info.num_pending, info.num_ack_pending) == (7, 3)
    assert info.delivered.stream_seq == 3

    await msgs[0].ack()
    await barrier(nc)

    async def one_acked():
        current = await js.consumer_info("COUNTS", "counter")
        return current if current.num_ack_pending == 2 else None

    info = await eventually(one_acked)
    assert info.ack_floor.stream_seq == 1
    assert info.num_pending == 7

    with pytest.raises(nats.js.errors.NotFoundError) as missing:
        await js.consumer_info("COUNTS", "nobody")
    assert missing.value.err_code == CONSUMER_NOT_FOUND


async def test_nak_redelivers_the_message(js):
    await fill(js, "NAK", "nak", 3)
    psub = await js.pull_subscribe("nak.>", durable="naker", stream="NAK")
    (msg,) = await psub.fetch(1, timeout=FETCH_TIMEOUT_S)
    assert msg.metadata.sequence.stream == 1
    assert msg.metadata.num_delivered == 1
    await msg.nak()

    # nats-server queues acks and NAKs for its consumer loop, so a pull request sent right
    # after the NAK may still be served with the next message first: fetch until seq 1
    # comes back (at most a few fetches).
    seen = []
    for _ in range(4):
        (next_msg,) = await psub.fetch(1, timeout=FETCH_TIMEOUT_S)
        seen.append(next_msg)
        if next_msg.metadata.sequence.stream == 1:
            break
    again = seen[-1]
    assert again.metadata.sequence.stream == 1, [m.metadata.sequence.stream for m in seen]
    assert again.data == msg.data
    assert again.metadata.num_delivered == 2
    assert again.metadata.sequence.consumer > msg.metadata.sequence.consumer
    for m in seen:
        await m.ack()


async def test_unacked_message_is_redelivered_after_ack_wait(js):
    await fill(js, "ACKWAIT", "ackwait", 1)
    psub = await js.pull_subscribe("ackwait.>", durable="slow", stream="ACKWAIT", config=ConsumerConfig(ack_wait=1.0))
    (msg,) = await psub.fetch(1, timeout=FETCH_TIMEOUT_S)
    assert msg.metadata.num_delivered == 1
    # No ack: after ack_wait (1 s) the server hands it out again.
    (again,) = await psub.fetch(1, timeout=FETCH_TIMEOUT_S)
    assert again.metadata.sequence.stream == msg.metadata.sequence.stream
    assert again.metadata.num_delivered == 2
    await again.ack()


async def test_push_ephemeral_gets_stored_and_new_messages(nc, js):
    await fill(js, "PUSHE", "pushe", 5)
    sub = await js.subscribe("pushe.>", stream="PUSHE")
    await barrier(nc)
    for i in range(5, 8):
        await js.publish(f"pushe.{i % 2}", f"{i}".encode())

    received = []
    for _ in range(8):
        msg = await sub.next_msg(timeout=WAIT_S)
        received.append(msg)
        await msg.ack()
    assert [m.data for m in received] == [str(i).encode() for i in range(8)]
    assert [m.metadata.sequence.stream for m in received] == list(range(1, 9))
    info = await sub.consumer_info()
    assert info.config.durable_name is None
    assert info.config.deliver_subject
    await sub.unsubscribe()


async def test_push_durable_with_callback(nc, js):
    await fill(js, "PUSHD", "pushd", 4)
    got = []
    done = asyncio.Event()

    async def handler(msg):
        got.append(msg.data)
        await msg.ack()
        if len(got) == 6:
            done.set()

    sub = await js.subscribe("pushd.>", durable="pusher", stream="PUSHD", cb=handler, manual_ack=True)
    await barrier(nc)
    await js.publish("pushd.0", b"4")
    await js.publish("pushd.1", b"5")
    await bounded(done.wait())
    assert got == [str(i).encode() for i in range(6)]

    await barrier(nc)

    async def all_acked():
        info = await js.consumer_info("PUSHD", "pusher")
        return info if info.num_ack_pending == 0 and info.delivered.stream_seq == 6 else None

    info = await eventually(all_acked)
    assert info.config.durable_name == "pusher"
    assert info.num_pending == 0
    await sub.unsubscribe()
    # A durable outlives its subscription.
    assert (await js.consumer_info("PUSHD", "pusher")).name == "pusher"


async def test_add_and_delete_consumer(js):
    await fill(js, "MANAGED", "managed", 2)
    info = await js.add_consumer("MANAGED", durable_name="made", ack_policy=AckPolicy.EXPLICIT)
    assert info.name == "made"
    assert info.num_pending == 2
    names = [c.name for c in await js.consumers_info("MANAGED")]
    assert "made" in names
    assert await js.delete_consumer("MANAGED", "made") is True
    with pytest.raises(nats.js.errors.NotFoundError):
        await js.consumer_info("MANAGED", "made")
