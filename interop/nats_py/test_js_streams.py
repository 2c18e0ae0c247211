"""JetStream streams through nats.py's manager API: create, update, info, delete, names
and list, purge, and reading stored messages back by sequence or by subject."""

import nats.js.errors
import pytest
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from js_helpers import api_request

pytestmark = pytest.mark.jetstream

STREAM_NOT_FOUND = 10059
STREAM_NAME_IN_USE = 10058
NO_MESSAGE_FOUND = 10037
STREAM_INVALID_CONFIG = 10052


@pytest.mark.parametrize("storage", [StorageType.FILE, StorageType.MEMORY], ids=["file", "memory"])
async def test_add_info_update_delete_stream(js, storage):
    name = f"LIFECYCLE_{storage.value.upper()}"
    subject = f"life.{storage.value}"

    created = await js.add_stream(name=name, subjects=[f"{subject}.>"], storage=storage)
    assert created.config.name == name
    assert created.config.subjects == [f"{subject}.>"]
    assert created.config.storage == storage
    # Server-side defaults (reference §2.1).
    assert created.config.retention == RetentionPolicy.LIMITS
    assert created.config.discard == DiscardPolicy.OLD
    assert created.config.max_msgs == -1
    assert created.config.duplicate_window == 120.0
    assert created.state.messages == 0
    assert created.state.last_seq == 0

    for i in range(3):
        await js.publish(f"{subject}.a", f"m{i}".encode())
    info = await js.stream_info(name)
    assert info.state.messages == 3
    assert info.state.first_seq == 1
    assert info.state.last_seq == 3
    assert info.state.bytes > 0

    # Update: one more subject and a message limit; the stored messages stay.
    updated = await js.update_stream(
        StreamConfig(name=name, subjects=[f"{subject}.>", f"extra.{storage.value}"], storage=storage, max_msgs=100)
    )
    assert updated.config.max_msgs == 100
    assert set(updated.config.subjects) == {f"{subject}.>", f"extra.{storage.value}"}
    assert updated.state.messages == 3
    ack = await js.publish(f"extra.{storage.value}", b"via the new subject")
    assert (ack.stream, ack.seq) == (name, 4)

    assert await js.delete_stream(name) is True
    with pytest.raises(nats.js.errors.NotFoundError) as missing:
        await js.stream_info(name)
    assert missing.value.err_code == STREAM_NOT_FOUND
    # The subjects are free again: nothing captures them any more.
    with pytest.raises(nats.js.errors.NoStreamResponseError):
        await js.publish(f"{subject}.a", b"nobody stores this", timeout=2)


async def test_update_cannot_change_storage(js):
    await js.add_stream(name="IMMUTABLE", subjects=["immutable"], storage=StorageType.FILE)
    with pytest.raises(nats.js.errors.APIError) as refused:
        await js.update_stream(StreamConfig(name="IMMUTABLE", subjects=["immutable"], storage=StorageType.MEMORY))
    assert refused.value.err_code == STREAM_INVALID_CONFIG
    assert (await js.stream_info("IMMUTABLE")).config.storage == StorageType.FILE


async def test_recreating_with_the_same_config_succeeds_and_a_different_one_fails(js):
    await js.add_stream(name="AGAIN", subjects=["again.>"])
    again = await js.add_stream(name="AGAIN", subjects=["again.>"])
    assert again.config.name == "AGAIN"
    with pytest.raises(nats.js.errors.BadRequestError) as clash:
        await js.add_stream(name="AGAIN", subjects=["different.>"])
    assert clash.value.err_code == STREAM_NAME_IN_USE


async def test_stream_names_and_list(nc, js):
    names = {"LIST_A", "LIST_B", "LIST_C"}
    for name in sorted(names):
        await js.add_stream(name=name, subjects=[f"{name.lower()}.>"])
    await js.publish("list_b.x", b"one")

    reply = await api_request(nc, "$JS.API.STREAM.NAMES", {"offset": 0})
    assert reply["type"] == "io.nats.jetstream.api.v1.stream_names_response"
    assert names <= set(reply["streams"])
    assert reply["total"] >= len(names)

    filtered = await api_request(nc, "$JS.API.STREAM.NAMES", {"subject": "list_b.x"})
    assert filtered["streams"] == ["LIST_B"]
    assert await js.find_stream_name_by_subject("list_c.anything") == "LIST_C"

    infos = {info.config.name: info for info in await js.streams_info()}
    assert names <= set(infos)
    assert infos["LIST_B"].state.messages == 1
    assert infos["LIST_A"].state.messages == 0


async def test_purge_everything_and_by_subject(js):
    await js.add_stream(name="PURGE", subjects=["purge.>"])
    for i in range(10):
        await js.publish(f"purge.{'odd' if i % 2 else 'even'}", str(i).encode())

    assert await js.purge_stream("PURGE", subject="purge.odd") is True
    state = (await js.stream_info("PURGE")).state
    assert state.messages == 5
    assert state.last_seq == 10

    assert await js.purge_stream("PURGE") is True
    state = (await js.stream_info("PURGE")).state
    assert state.messages == 0
    # A purge keeps the sequence: the next message continues after the last one.
    assert state.last_seq == 10
    assert state.first_seq == 11
    ack = await js.publish("purge.even", b"after")
    assert ack.seq == 11


async def test_get_message_by_sequence_and_last_by_subject(js):
    await js.add_stream(name="GETMSG", subjects=["get.>"])
    await js.publish("get.a", b"first a")
    await js.publish("get.b", b"first b", headers={"X-Trace": "t-1"})
    await js.publish("get.a", b"second a")

    by_seq = await js.get_msg("GETMSG", seq=2)
    assert (by_seq.seq, by_seq.subject, by_seq.data) == (2, "get.b", b"first b")
    assert by_seq.headers is not None and by_seq.headers.get("X-Trace") == "t-1"
    assert by_seq.time is not None

    last_a = await js.get_last_msg("GETMSG", "get.a")
    assert (last_a.seq, last_a.data) == (3, b"second a")

    with pytest.raises(nats.js.errors.NotFoundError) as missing:
        await js.get_msg("GETMSG", seq=99)
    assert missing.value.err_code == NO_MESSAGE_FOUND
    with pytest.raises(nats.js.errors.NotFoundError):
        await js.get_last_msg("GETMSG", "get.none")
