"""Object store through nats.py (a bucket is a stream `OBJ_<bucket>`; objects are chunked
into `$O.<bucket>.C.<nuid>` with metadata in `$O.<bucket>.M.<name>`): a 1 MiB object
round trip, list, and delete."""

import hashlib
import os

import nats.js.errors
import pytest

from js_helpers import bounded

pytestmark = pytest.mark.jetstream

ONE_MIB = 1024 * 1024


async def test_put_and_get_a_one_mib_object(js):
    obs = await js.create_object_store(bucket="blobs")
    data = os.urandom(ONE_MIB)
    info = await bounded(obs.put("big.bin", data))
    assert info.name == "big.bin"
    assert info.size == ONE_MIB
    assert info.chunks >= 2  # nats.py chunks at 128 KiB

    result = await bounded(obs.get("big.bin"))
    assert len(result.data) == ONE_MIB
    assert hashlib.sha256(result.data).digest() == hashlib.sha256(data).digest()
    assert result.info.size == ONE_MIB

    stream = await js.stream_info("OBJ_blobs")
    assert stream.state.messages == info.chunks + 1  # the chunks and one metadata message
    assert stream.state.bytes > ONE_MIB


async def test_list_and_delete(js):
    obs = await js.create_object_store(bucket="docs")
    await bounded(obs.put("a.txt", b"alpha"))
    await bounded(obs.put("b.txt", b"bravo" * 1000))
    names = sorted(o.name for o in await bounded(obs.list()))
    assert names == ["a.txt", "b.txt"]

    await bounded(obs.delete("a.txt"))
    with pytest.raises(nats.js.errors.ObjectNotFoundError):
        await bounded(obs.get("a.txt"))
    tombstone = await obs.get_info("a.txt", show_deleted=True)
    assert tombstone.deleted is True
    assert tombstone.size == 0
    remaining = sorted(o.name for o in await bounded(obs.list(ignore_deletes=True)))
    assert remaining == ["b.txt"]
    assert (await bounded(obs.get("b.txt"))).data == b"bravo" * 1000
    with pytest.raises(nats.js.errors.ObjectNotFoundError):
        await bounded(obs.get("never.stored"))


async def test_replacing_an_object_keeps_only_the_new_content(js):
    obs = await js.create_object_store(bucket="replace")
    await bounded(obs.put("x", b"old" * 100_000))
    await bounded(obs.put("x", b"new"))
    assert (await bounded(obs.get("x"))).data == b"new"
    # The old chunks are purged: only the new chunk and the metadata remain.
    assert (await js.stream_info("OBJ_replace")).state.messages == 2
