"""MQTT and NATS clients of one server see each other's messages the same way on the server
under test and on nats-server (both with MQTT): the subjects MQTT topics become, the headers
NATS subscribers get, and the topics NATS subjects become for MQTT subscribers."""

import asyncio
import time
import uuid

import nats
import paho.mqtt.client as mqtt
import pytest

from harness.server import started_pair

WAIT_S = 3.0

# Topics that map onto NATS subjects by nats-server's rules: levels, empty levels, a `.`
# inside a level.
TOPICS = ["t/a/b", "t/a//b", "t/a/", "t/dot.ted/x", "t/x"]
# What the deviations listed in the README make differ: Jetway sends a QoS 0 PUBLISH to NATS
# without `Nmqtt-Pub` and marks a retained one with `Nmqtt-Retained`.
DEVIATING_HEADERS = {"Nmqtt-Pub", "Nmqtt-Retained"}


@pytest.fixture(scope="module")
def servers(jetway_binary, reference_binary):
    with started_pair(jetway_binary, reference_binary, mqtt=True) as pair:
        yield pair


def _mqtt(server, name):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{name}-{uuid.uuid4().hex[:6]}")
    c.connect(server.mqtt_host, server.mqtt_port, keepalive=30)
    c.loop_start()
    return c


async def _mqtt_to_nats(server):
    nc = await nats.connect(server.url, allow_reconnect=False)
    seen = []

    async def on_msg(m):
        headers = {k: v for k, v in (m.headers or {}).items() if k not in DEVIATING_HEADERS}
        seen.append((m.subject, headers, m.data.decode()))

    try:
        await nc.subscribe("t.>", cb=on_msg)
        await nc.flush()
        pub = _mqtt(server, "pub")
        try:
            for qos in (0, 1):
                for topic in TOPICS:
                    pub.publish(topic, f"{topic} at {qos}", qos=qos).wait_for_publish(WAIT_S)
            deadline = time.time() + WAIT_S
            while len(seen) < 2 * len(TOPICS) and time.time() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
        finally:
            pub.disconnect()
            pub.loop_stop()
    finally:
        await nc.close()
    return sorted(seen, key=str)


async def _nats_to_mqtt(server):
    got = []
    sub = _mqtt(server, "sub")
    sub.on_message = lambda _c, _u, m: got.append((m.topic, m.payload.decode(), m.qos, bool(m.retain)))
    subscribed = []
    sub.on_subscribe = lambda *_: subscribed.append(True)
    sub.subscribe("n/#", 1)
    deadline = time.time() + WAIT_S
    while not subscribed and time.time() < deadline:
        await asyncio.sleep(0.02)
    nc = await nats.connect(server.url, allow_reconnect=False)
    try:
        for subject in ("n", "n.a", "n.a.b", "n.dot//ted", "n./x"):
            await nc.publish(subject, subject.encode())
        await nc.publish("n.h", b"with headers", headers={"k": "v"})
        await nc.flush()
        deadline = time.time() + WAIT_S
        while len(got) < 6 and time.time() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
    finally:
        await nc.close()
        sub.disconnect()
        sub.loop_stop()
    return sorted(got)


async def test_mqtt_publishes_reach_nats_the_same_way(servers):
    ours, theirs = servers
    assert await _mqtt_to_nats(ours) == await _mqtt_to_nats(theirs)


async def test_nats_publishes_reach_mqtt_the_same_way(servers):
    ours, theirs = servers
    assert await _nats_to_mqtt(ours) == await _nats_to_mqtt(theirs)
