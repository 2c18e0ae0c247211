"""`jetstream { limits {} }`, the same on the server under test and on nats-server: the same
stream and consumer configs must get the same defaults and the same refusals."""

import json

import nats
import pytest

from harness.server import started_pair

CONF = """
jetstream {
  limits {
    max_ack_pending: 500
    max_request_batch: 100
    duplicate_window: "1m"
    max_ha_assets: 2
  }
}
"""

STREAMS = {
    "default window": {"name": "W1", "subjects": ["w1"]},
    "window at the limit": {"name": "W2", "subjects": ["w2"], "duplicate_window": 60_000_000_000},
    "window over the limit": {"name": "W3", "subjects": ["w3"], "duplicate_window": 300_000_000_000},
    "window under max age": {"name": "W4", "subjects": ["w4"], "max_age": 30_000_000_000},
}

CONSUMERS = {
    "default ack pending and batch": {"durable_name": "c1", "ack_policy": "explicit"},
    "ack pending at the limit": {"durable_name": "c2", "ack_policy": "explicit", "max_ack_pending": 500},
    "ack pending over the limit": {"durable_name": "c3", "ack_policy": "explicit", "max_ack_pending": 501},
    "batch over the limit": {"durable_name": "c4", "ack_policy": "explicit", "max_batch": 101},
    "batch at the limit": {"durable_name": "c5", "ack_policy": "explicit", "max_batch": 100},
    "push consumer": {"durable_name": "c6", "ack_policy": "explicit", "deliver_subject": "push.c6"},
    "no acks": {"durable_name": "c7", "ack_policy": "none"},
}


@pytest.fixture(scope="module")
def servers(jetway_binary, reference_binary):
    with started_pair(jetway_binary, reference_binary, conf=CONF) as pair:
        yield pair


def _outcome(answer):
    """What matters of an API answer: the error, or the limits the config ended up with."""
    if "error" in answer:
        return {"error": answer["error"]}
    config = answer.get("config", {})
    keys = ("duplicate_window", "max_ack_pending", "max_batch", "max_age")
    return {key: config.get(key) for key in keys}


async def _answers(url):
    nc = await nats.connect(url, allow_reconnect=False)
    try:
        async def api(subject, body):
            reply = await nc.request(subject, json.dumps(body).encode(), timeout=2)
            return _outcome(json.loads(reply.data))

        out = {}
        for name, config in STREAMS.items():
            out["stream " + name] = await api(f"$JS.API.STREAM.CREATE.{config['name']}", config)
        await api("$JS.API.STREAM.CREATE.LIM", {"name": "LIM", "subjects": ["lim.>"]})
        for name, config in CONSUMERS.items():
            body = {"stream_name": "LIM", "config": config}
            out["consumer " + name] = await api(f"$JS.API.CONSUMER.CREATE.LIM.{config['durable_name']}", body)
        return out
    finally:
        await nc.close()


async def test_same_defaults_and_refusals_under_limits(servers):
    ours, theirs = servers
    mine, reference = await _answers(ours.url), await _answers(theirs.url)
    assert mine == reference
