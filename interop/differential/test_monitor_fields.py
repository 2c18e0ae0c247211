"""The monitoring endpoints of the server under test and of nats-server, after the same
activity, must have the same fields (names, nesting): dashboards, exporters and `nats server`
read them. What differs on purpose is listed below, with why."""

import json
import urllib.request

import nats
import pytest

from harness.server import started_pair

ENDPOINTS = [
    "varz",
    "connz?subs=1&auth=1",
    "subsz?subs=1",
    "jsz?accounts=1&streams=1&consumers=1&config=1",
    "accountz",
    "accstatz",
    "healthz",
    "routez",
    "gatewayz",
    "leafz",
]

# Fields nats-server 2.15 has that Jetway does not (yet), by endpoint.
KNOWN_MISSING = {
    "varz": {
        # Newer than the 2.11 Jetway presents, or about its build and Go runtime.
        "config_digest", "git_commit", "feature_flags", "disk_io_wait_stats",
        "jetstream.limits.default_max_consumers",
        # nats-server syncs every 2 minutes by default; Jetway fsyncs before acks (sync_always).
        "jetstream.config.sync_interval",
    },
    "subsz?subs=1": {"subscriptions_list.[].account_tag"},
    "jsz?accounts=1&streams=1&consumers=1&config=1": {
        "config.sync_interval", "limits", "limits.default_max_consumers",
    },
}
# Fields Jetway has that nats-server does not.
KNOWN_EXTRA = {
    "varz": {"jetway_version", "jetstream.config.sync_always"},
    "jsz?accounts=1&streams=1&consumers=1&config=1": {"config.sync_always"},
}


def _keys(value, prefix=""):
    found = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            found.add(prefix + key)
            found |= _keys(inner, f"{prefix}{key}.")
    elif isinstance(value, list) and value:
        found |= _keys(value[0], f"{prefix}[].")
    return found


def _get(server, endpoint):
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/{endpoint}", timeout=5) as reply:
        return json.load(reply)


async def _activity(server):
    nc = await nats.connect(server.url, name="fields")
    await nc.subscribe("fields.x")
    js = nc.jetstream()
    await js.add_stream(name="FIELDS", subjects=["fields.s"])
    await js.publish("fields.s", b"1")
    await js.pull_subscribe("fields.s", durable="reader")
    return nc


@pytest.fixture(scope="module")
def monitored(jetway_binary, reference_binary):
    with started_pair(jetway_binary, reference_binary, monitor=True) as pair:
        yield pair


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_same_fields(monitored, endpoint):
    ours, theirs = monitored
    connections = [await _activity(ours), await _activity(theirs)]
    try:
        mine, reference = _keys(_get(ours, endpoint)), _keys(_get(theirs, endpoint))
    finally:
        for nc in connections:
            await nc.close()
    missing = {k for k in reference - mine if not _listed(k, KNOWN_MISSING.get(endpoint, set()))}
    extra = {k for k in mine - reference if not _listed(k, KNOWN_EXTRA.get(endpoint, set()))}
    assert (sorted(missing), sorted(extra)) == ([], [])


def _listed(key, listed):
    """`key` is listed, or lies inside a listed field."""
    return any(key == entry or key.startswith(entry + ".") for entry in listed)


SYSTEM_CONF = """
system_account: SYS
accounts {
  SYS { users: [{user: "sys", password: "sys"}] }
  APP { users: [{user: "app", password: "app"}], jetstream: enabled }
}
"""

# The same endpoints asked over NATS in the system account (what `nats server` commands
# send), with options as JSON; a reply is nats-server's envelope around the document.
SYSTEM_REQUESTS = [
    ("$SYS.REQ.SERVER.PING", ""),
    ("$SYS.REQ.SERVER.PING.IDZ", ""),
    ("$SYS.REQ.SERVER.PING.VARZ", ""),
    ("$SYS.REQ.SERVER.PING.CONNZ", '{"subscriptions": true, "auth": true}'),
    ("$SYS.REQ.SERVER.PING.SUBSZ", '{"subscriptions": true}'),
    ("$SYS.REQ.SERVER.PING.ACCOUNTZ", ""),
    ("$SYS.REQ.SERVER.PING.JSZ", '{"accounts": true, "streams": true, "consumers": true, "config": true}'),
    ("$SYS.REQ.SERVER.PING.HEALTHZ", ""),
    ("$SYS.REQ.SERVER.PING.CONNZ", '{"sort": "nonsense"}'),
]

# nats-server 2.12+ describes its feature flags in every reply; the documents differ as over HTTP.
SYSTEM_KNOWN_MISSING = {"server.feature_flags", "statsz.jetstream.limits", "statsz.jetstream.config.sync_interval"} | {
    "data." + key
    for endpoint in ("varz", "subsz?subs=1", "jsz?accounts=1&streams=1&consumers=1&config=1")
    for key in KNOWN_MISSING[endpoint]
}
SYSTEM_KNOWN_EXTRA = {"statsz.jetstream.config.sync_always"} | {
    "data." + key for key in KNOWN_EXTRA["varz"] | KNOWN_EXTRA["jsz?accounts=1&streams=1&consumers=1&config=1"]
}


@pytest.fixture(scope="module")
def system_pair(jetway_binary, reference_binary):
    with started_pair(jetway_binary, reference_binary, conf=SYSTEM_CONF) as pair:
        yield pair


async def _system_answer(server, subject, body):
    app = await nats.connect(server.url, user="app", password="app")
    sys_client = await nats.connect(server.url, user="sys", password="sys")
    try:
        await app.subscribe("fields.x")
        js = app.jetstream()
        await js.add_stream(name="SYSFIELDS", subjects=["sysfields.s"])
        await js.publish("sysfields.s", b"1")
        reply = await sys_client.request(subject, body.encode(), timeout=2)
        return json.loads(reply.data)
    finally:
        await sys_client.close()
        await app.close()


@pytest.mark.parametrize("subject,body", SYSTEM_REQUESTS)
async def test_same_fields_over_nats(system_pair, subject, body):
    ours, theirs = system_pair
    mine = _keys(await _system_answer(ours, subject, body))
    reference = _keys(await _system_answer(theirs, subject, body))
    missing = {k for k in reference - mine if not _listed(k, SYSTEM_KNOWN_MISSING)}
    extra = {k for k in mine - reference if not _listed(k, SYSTEM_KNOWN_EXTRA)}
    assert (sorted(missing), sorted(extra)) == ([], [])
