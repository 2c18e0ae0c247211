"""JetStream mirrors and sources of another account's stream (`external`), configured the same
way (one nats-server `.conf` with JetStream accounts, API and delivery imports) on the server
under test and on nats-server: the same requests must get the same answers, and the sourcing
streams must end up holding the same messages with the same `Nats-Stream-Source` headers."""

import asyncio
import base64
import json

import nats

from harness.server import started_pair

ACCOUNTS_CONF = """
accounts {
  A: {
    jetstream: enabled
    users: [{user: "a", password: "a"}]
    exports: [
      {service: "$JS.API.CONSUMER.CREATE.ORDERS"}
      {service: "$JS.API.CONSUMER.CREATE.ORDERS.>"}
      {service: "$JS.API.CONSUMER.CREATE.PARTLY.>"}
      {service: "$JS.FC.>"}
      {stream: "deliver.b.>"}
    ]
  }
  B: {
    jetstream: enabled
    users: [{user: "b", password: "b"}]
    imports: [
      {service: {account: "A", subject: "$JS.API.CONSUMER.CREATE.ORDERS"}, to: "$JS.a.API.CONSUMER.CREATE.ORDERS"}
      {service: {account: "A", subject: "$JS.API.CONSUMER.CREATE.ORDERS.>"}, to: "$JS.a.API.CONSUMER.CREATE.ORDERS.>"}
      {service: {account: "A", subject: "$JS.API.CONSUMER.CREATE.PARTLY.>"}, to: "$JS.a.API.CONSUMER.CREATE.PARTLY.>"}
      {service: {account: "A", subject: "$JS.FC.>"}}
      {stream: {account: "A", subject: "deliver.b.>"}}
    ]
  }
}
"""

EXTERNAL = {"api": "$JS.a.API", "deliver": "deliver.b"}
# PARTLY's API is exported only for filtered consumers (the create subject of an unfiltered one
# ends with the stream name); SECRET's not at all; UNDELIVERED's deliveries are not imported.
# What is compared of a source's info: not how long ago it was active, its lag while it
# catches up, or nats-server 2.14+'s stream-identity sequence.
SOURCE_VOLATILE = ("active", "lag", "seq")


async def _api(nc, subject, body=b""):
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return json.loads((await nc.request(subject, payload, timeout=2)).data)


def _error(reply):
    error = reply.get("error")
    return None if error is None else (error.get("code"), error.get("err_code"), error.get("description"))


def _sources(info):
    """The mirror and source infos of a stream info, without volatile fields, in name order."""
    entries = ([info["mirror"]] if info.get("mirror") else []) + list(info.get("sources") or [])
    stable = [{k: v for k, v in e.items() if k not in SOURCE_VOLATILE} for e in entries]
    return sorted(stable, key=lambda e: json.dumps(e, sort_keys=True))


async def _held(nc, stream):
    """Each message of `stream`: subject, payload and its `Nats-Stream-Source` header without
    nats-server 2.14+'s trailing stream identity (the first five tokens), sorted: how the
    messages of two sources interleave is not defined."""
    info = await _api(nc, f"$JS.API.STREAM.INFO.{stream}")
    held = []
    for seq in range(info["state"]["first_seq"], info["state"]["last_seq"] + 1):
        reply = await _api(nc, f"$JS.API.STREAM.MSG.GET.{stream}", {"seq": seq})
        message = reply.get("message")
        if message is None:
            held.append(_error(reply))
            continue
        header = None
        if message.get("hdrs"):
            for line in base64.b64decode(message["hdrs"]).decode().split("\r\n"):
                if line.lower().startswith("nats-stream-source:"):
                    header = " ".join(line.split(":", 1)[1].strip().split(" ")[:5])
        held.append((message["subject"], message.get("data"), header))
    return sorted(held, key=str)


async def _wait_for(nc, counts):
    """Waits (5 s at most) until each stream holds its number of messages; whether they did."""
    for _ in range(50):
        held = {name: (await _api(nc, f"$JS.API.STREAM.INFO.{name}"))["state"]["messages"] for name in counts}
        if held == counts:
            return True
        await asyncio.sleep(0.1)
    return held


async def _scenario(url_a, url_b):
    a = await nats.connect(url_a, user="a", password="a", allow_reconnect=False)
    b = await nats.connect(url_b, user="b", password="b", allow_reconnect=False)
    answers = []
    try:
        for name in ("ORDERS", "PARTLY", "SECRET"):
            config = {"name": name, "subjects": [f"{name.lower()}.>"]}
            answers.append((name, _error(await _api(a, f"$JS.API.STREAM.CREATE.{name}", config))))
            for i, subject in enumerate(["a.1", "b.2", "a.3"]):
                await a.request(f"{name.lower()}.{subject}", f"m{i}".encode(), timeout=2)
        creates = {
            "AGG": {
                "name": "AGG",
                "subjects": ["agg.local"],
                "sources": [
                    {"name": "ORDERS", "external": EXTERNAL},
                    {"name": "ORDERS", "filter_subject": "orders.a.>", "external": EXTERNAL},
                ],
            },
            "MIR": {"name": "MIR", "mirror": {"name": "ORDERS", "external": EXTERNAL}},
            "FILTERED": {
                "name": "FILTERED",
                "sources": [
                    {"name": "PARTLY", "external": EXTERNAL},
                    {"name": "PARTLY", "filter_subject": "partly.b.>", "external": EXTERNAL},
                    {"name": "SECRET", "filter_subject": "secret.>", "external": EXTERNAL},
                    {"name": "ORDERS", "filter_subject": "orders.b.>", "external": {"api": "$JS.a.API", "deliver": "undelivered"}},
                ],
            },
            # Refused: the prefixes nats-server checks.
            "OVERLAP": {"name": "OVERLAP", "sources": [{"name": "ORDERS", "external": {"api": "$JS.API", "deliver": "x"}}]},
            "WILDAPI": {"name": "WILDAPI", "sources": [{"name": "ORDERS", "external": {"api": "$JS.*.API", "deliver": "x"}}]},
            "WILDDELIVER": {"name": "WILDDELIVER", "sources": [{"name": "ORDERS", "external": {"api": "$JS.a.API", "deliver": "d.>"}}]},
            "DUPLICATE": {"name": "DUPLICATE", "sources": [{"name": "ORDERS", "external": EXTERNAL}, {"name": "ORDERS", "external": EXTERNAL}]},
        }
        for name, config in creates.items():
            reply = await _api(b, f"$JS.API.STREAM.CREATE.{name}", config)
            answers.append((name, _error(reply), (reply.get("config") or {}).get("sources"), (reply.get("config") or {}).get("mirror")))
        answers.append(("caught up", await _wait_for(b, {"AGG": 5, "MIR": 3, "FILTERED": 1})))
        # A message published after the sources started follows.
        await a.request("orders.a.4", b"late", timeout=2)
        answers.append(("follows", await _wait_for(b, {"AGG": 7, "MIR": 4, "FILTERED": 1})))
        for name in ("AGG", "MIR", "FILTERED"):
            info = await _api(b, f"$JS.API.STREAM.INFO.{name}")
            answers.append((name, "sources", _sources(info), info["state"]["messages"]))
            answers.append((name, "held", await _held(b, name)))
    finally:
        await a.close()
        await b.close()
    return answers


def test_external_sources_and_mirrors(jetway_binary, reference_binary):
    with started_pair(jetway_binary, reference_binary, conf=ACCOUNTS_CONF) as (ours, theirs):
        mine = asyncio.run(_scenario(ours.url, ours.url))
        reference = asyncio.run(_scenario(theirs.url, theirs.url))
    for m, r in zip(mine, reference):
        assert m == r
    assert len(mine) == len(reference)


DOMAIN_CONF = """
jetstream {
  domain: hub
}
"""


async def _own_domain_scenario(url):
    """Sources naming a domain's API prefix get nothing on a server without leaf nodes, even
    its own domain's (`$JS.hub.API`, which answers clients: nats-server's sourcing requests
    do not take that mapping), and report no error."""
    nc = await nats.connect(url, allow_reconnect=False)
    answers = []
    try:
        answers.append(("origin", _error(await _api(nc, "$JS.API.STREAM.CREATE.ORDERS", {"name": "ORDERS", "subjects": ["orders.>"]}))))
        for subject in ("orders.a", "orders.b"):
            ack = json.loads((await nc.request(subject, b"x", timeout=2)).data)
            answers.append(("ack", ack))
        hub = {"api": "$JS.hub.API", "deliver": "dlv"}
        creates = {
            "LOCAL": {"name": "LOCAL", "subjects": ["local"], "sources": [{"name": "ORDERS", "external": hub}]},
            "MIR": {"name": "MIR", "mirror": {"name": "ORDERS", "filter_subject": "orders.b", "external": hub}},
            "LEAF": {"name": "LEAF", "subjects": ["leaf"], "sources": [{"name": "ORDERS", "external": {"api": "$JS.leaf.API", "deliver": ""}}]},
        }
        for name, config in creates.items():
            answers.append((name, _error(await _api(nc, f"$JS.API.STREAM.CREATE.{name}", config))))
        # Nothing to wait for: the origin's messages are stored already, and a round of the
        # sources would copy them at once.
        await asyncio.sleep(1.5)
        for name in creates:
            info = await _api(nc, f"$JS.API.STREAM.INFO.{name}")
            answers.append((name, "sources", _sources(info), await _held(nc, name)))
    finally:
        await nc.close()
    return answers


def test_sources_through_a_domain_prefix_get_nothing(jetway_binary, reference_binary):
    with started_pair(jetway_binary, reference_binary, conf=DOMAIN_CONF) as (ours, theirs):
        mine = asyncio.run(_own_domain_scenario(ours.url))
        reference = asyncio.run(_own_domain_scenario(theirs.url))
    for m, r in zip(mine, reference):
        assert m == r
    assert len(mine) == len(reference)
