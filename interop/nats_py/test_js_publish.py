"""Publishing into a stream with nats.py: PubAcks, de-duplication by `Nats-Msg-Id`, the
expected-last-sequence guard, and the error codes nats.py surfaces as `err_code`."""

import asyncio

import nats.js.errors
import pytest

from js_helpers import bounded

pytestmark = pytest.mark.jetstream

STREAM_NOT_FOUND = 10059
STREAM_MISMATCH = 10060
WRONG_LAST_SEQUENCE = 10071


async def test_publish_acks_carry_stream_and_sequence(js):
    await js.add_stream(name="ACKS", subjects=["acks.>"])
    acks = [await js.publish("acks.x", f"msg {i}".encode()) for i in range(5)]
    assert [ack.seq for ack in acks] == [1, 2, 3, 4, 5]
    assert {ack.stream for ack in acks} == {"ACKS"}
    assert not any(ack.duplicate for ack in acks)
    state = (await js.stream_info("ACKS")).state
    assert (state.messages, state.first_seq, state.last_seq) == (5, 1, 5)


async def test_async_publish_of_many_messages(js):
    await js.add_stream(name="ASYNC", subjects=["async.>"])
    futures = [await js.publish_async("async.x", str(i).encode()) for i in range(200)]
    acks = await bounded(asyncio.gather(*futures))
    assert sorted(ack.seq for ack in acks) == list(range(1, 201))
    assert (await js.stream_info("ASYNC")).state.messages == 200


async def test_duplicate_message_id_is_acked_but_not_stored(js):
    await js.add_stream(name="DEDUPE", subjects=["dedupe"])
    first = await js.publish("dedupe", b"once", headers={"Nats-Msg-Id": "id-1"})
    second = await js.publish("dedupe", b"once", headers={"Nats-Msg-Id": "id-1"})
    assert not first.duplicate
    assert second.duplicate is True
    assert second.seq == first.seq
    assert second.stream == "DEDUPE"
    other = await js.publish("dedupe", b"other", headers={"Nats-Msg-Id": "id-2"})
    assert other.seq == first.seq + 1 and not other.duplicate
    assert (await js.stream_info("DEDUPE")).state.messages == 2


async def test_expected_last_sequence(js):
    await js.add_stream(name="EXPECT", subjects=["expect"])
    await js.publish("expect", b"1")
    await js.publish("expect", b"2")
    with pytest.raises(nats.js.errors.BadRequestError) as wrong:
        await js.publish("expect", b"3", headers={"Nats-Expected-Last-Sequence": "1"})
    assert wrong.value.err_code == WRONG_LAST_SEQUENCE
    # Nothing was stored, and the right expectation succeeds.
    assert (await js.stream_info("EXPECT")).state.messages == 2
    ack = await js.publish("expect", b"3", headers={"Nats-Expected-Last-Sequence": "2"})
    assert ack.seq == 3


async def test_expected_stream_name(js):
    await js.add_stream(name="NAMED", subjects=["named"])
    ack = await js.publish("named", b"ok", stream="NAMED")
    assert ack.stream == "NAMED"
    with pytest.raises(nats.js.errors.BadRequestError) as wrong:
        await js.publish("named", b"bad", stream="OTHER")
    assert wrong.value.err_code == STREAM_MISMATCH


async def test_missing_stream_errors(js):
    with pytest.raises(nats.js.errors.NotFoundError) as info:
        await js.stream_info("NO_SUCH_STREAM")
    assert info.value.err_code == STREAM_NOT_FOUND
    assert info.value.code == 404
    with pytest.raises(nats.js.errors.NotFoundError) as delete:
        await js.delete_stream("NO_SUCH_STREAM")
    assert delete.value.err_code == STREAM_NOT_FOUND
    # A publish nothing captures gets no responders, which nats.py reports as "no stream".
    with pytest.raises(nats.js.errors.NoStreamResponseError):
        await js.publish("uncaptured.subject", b"x", timeout=2)
