"""Key-value buckets through nats.py (a KV bucket is a stream `KV_<bucket>` with subjects
`$KV.<bucket>.>`): put, get, optimistic updates by revision, delete, purge, history,
keys, and watchers."""

import nats.js.errors
import pytest

from js_helpers import bounded

pytestmark = pytest.mark.jetstream


async def test_create_bucket_put_and_get(js):
    kv = await js.create_key_value(bucket="config", history=5)
    status = await kv.status()
    assert status.bucket == "config"
    assert status.history == 5
    info = await js.stream_info("KV_config")
    assert info.config.subjects == ["$KV.config.>"]
    assert info.config.max_msgs_per_subject == 5

    rev = await kv.put("app.mode", b"fast")
    assert rev == 1
    entry = await kv.get("app.mode")
    assert (entry.key, entry.value, entry.revision) == ("app.mode", b"fast", 1)
    assert (await kv.put("app.size", b"10")) == 2
    assert (await kv.get("app.size")).value == b"10"

    with pytest.raises(nats.js.errors.KeyNotFoundError):
        await kv.get("never.set")
    # Opening the existing bucket by name sees the same data.
    same = await js.key_value("config")
    assert (await same.get("app.mode")).value == b"fast"


async def test_update_with_revision(js):
    kv = await js.create_key_value(bucket="cas", history=3)
    rev1 = await kv.create("counter", b"1")
    with pytest.raises(nats.js.errors.KeyWrongLastSequenceError):
        await kv.create("counter", b"again")

    rev2 = await kv.update("counter", b"2", last=rev1)
    assert rev2 > rev1
    # nats.py raises this for the server's err_code 10071 (wrong last sequence).
    with pytest.raises(nats.js.errors.KeyWrongLastSequenceError):
        await kv.update("counter", b"3", last=rev1)
    entry = await kv.get("counter")
    assert (entry.value, entry.revision) == (b"2", rev2)


async def test_delete_purge_and_history(js):
    kv = await js.create_key_value(bucket="hist", history=10)
    for value in (b"a", b"b", b"c"):
        await kv.put("k", value)
    history = await bounded(kv.history("k"))
    assert [e.value for e in history] == [b"a", b"b", b"c"]
    assert [e.revision for e in history] == [1, 2, 3]

    await kv.delete("k")
    with pytest.raises(nats.js.errors.KeyNotFoundError):
        await kv.get("k")
    history = await bounded(kv.history("k"))
    assert len(history) == 4
    assert history[-1].operation == "DEL"

    # Re-created after a delete: a live value again.
    await kv.put("k", b"d")
    assert (await kv.get("k")).value == b"d"

    # Purge drops every earlier revision and leaves one purge marker.
    await kv.purge("k")
    with pytest.raises(nats.js.errors.KeyNotFoundError):
        await kv.get("k")
    history = await bounded(kv.history("k"))
    assert len(history) == 1
    assert history[0].operation == "PURGE"


async def test_keys(js):
    kv = await js.create_key_value(bucket="keys")
    with pytest.raises(nats.js.errors.NoKeysError):
        await bounded(kv.keys())
    for key in ("a", "b.c", "d"):
        await kv.put(key, b"v")
    await kv.put("a", b"v2")
    await kv.delete("d")
    assert sorted(await bounded(kv.keys())) == ["a", "b.c"]


async def test_watch_receives_updates(js):
    kv = await js.create_key_value(bucket="watched")
    await kv.put("sensor.1", b"20")
    watcher = await kv.watchall()
    try:
        initial = await watcher.updates(timeout=5)
        assert (initial.key, initial.value) == ("sensor.1", b"20")
        # After the existing values, nats.py yields one None: "caught up".
        assert await watcher.updates(timeout=5) is None

        await kv.put("sensor.2", b"21")
        await kv.put("sensor.1", b"22")
        await kv.delete("sensor.2")
        updates = [await watcher.updates(timeout=5) for _ in range(3)]
        assert [(u.key, u.value) for u in updates[:2]] == [("sensor.2", b"21"), ("sensor.1", b"22")]
        assert (updates[2].key, updates[2].operation) == ("sensor.2", "DEL")
    finally:
        await watcher.stop()

    key_watcher = await kv.watch("sensor.1")
    try:
        assert (await key_watcher.updates(timeout=5)).value == b"22"
        assert await key_watcher.updates(timeout=5) is None
        await kv.put("sensor.3", b"ignored")
        await kv.put("sensor.1", b"23")
        assert (await key_watcher.updates(timeout=5)).value == b"23"
    finally:
        await key_watcher.stop()


async def test_delete_bucket(js):
    await js.create_key_value(bucket="doomed")
    assert await js.delete_key_value("doomed") is True
    with pytest.raises(nats.js.errors.BucketNotFoundError):
        await js.key_value("doomed")
