"""paho-mqtt (3.1.1 and 5) against the MQTT listener: QoS 0/1/2, retained, will, user properties."""

import queue
import socket
import uuid

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from harness.paho_client import Client
from harness.server import KIND_NATS_SERVER

WAIT_S = 5.0
V311 = mqtt.MQTTv311
V5 = mqtt.MQTTv5


def _skip_v5_on_reference(server, protocol):
    if protocol == V5 and server.kind == KIND_NATS_SERVER:
        pytest.skip("nats-server implements MQTT 3.1.1 only")


@pytest.fixture(params=[V311, V5], ids=["v311", "v5"])
def protocol(request, mqtt_server):
    _skip_v5_on_reference(mqtt_server, request.param)
    return request.param


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_round_trip_at_each_qos(mqtt_server, protocol, qos):
    topic = f"paho/rt/{uuid.uuid4().hex[:6]}"
    sub = Client(mqtt_server, protocol, "sub")
    pub = Client(mqtt_server, protocol, "pub")
    try:
        sub.subscribe(f"{topic}/+", qos)
        pub.publish(f"{topic}/x", b"hello", qos=qos)
        msg = sub.next_message()
        assert (msg.topic, msg.payload, msg.qos) == (f"{topic}/x", b"hello", qos)
    finally:
        sub.close()
        pub.close()


def test_retained_message_is_delivered_on_subscribe_and_deleted_by_empty_payload(mqtt_server, protocol):
    topic = f"paho/retained/{uuid.uuid4().hex[:6]}"
    pub = Client(mqtt_server, protocol, "pub")
    try:
        pub.publish(f"{topic}/a", b"old", qos=1, retain=True)
        pub.publish(f"{topic}/a", b"new", qos=1, retain=True)
        sub = Client(mqtt_server, protocol, "sub")
        sub.subscribe(f"{topic}/#", 1)
        msg = sub.next_message()
        assert (msg.topic, msg.payload, msg.retain) == (f"{topic}/a", b"new", True)
        sub.close()

        pub.publish(f"{topic}/a", b"", qos=1, retain=True)
        late = Client(mqtt_server, protocol, "late")
        late.subscribe(f"{topic}/#", 1)
        with pytest.raises(queue.Empty):
            late.messages.get(timeout=0.5)
        late.close()
    finally:
        pub.close()


def test_will_is_published_when_the_connection_drops(mqtt_server, protocol):
    topic = f"paho/will/{uuid.uuid4().hex[:6]}"
    watcher = Client(mqtt_server, protocol, "watcher")
    try:
        watcher.subscribe(topic, 1)
        dying = Client(mqtt_server, protocol, "dying", will=(topic, b"gone", 1, False))
        dying.c.loop_stop()
        # Close the socket under the client: no DISCONNECT is sent.
        dying.c.socket().shutdown(socket.SHUT_RDWR)
        dying.c.socket().close()
        msg = watcher.next_message()
        assert (msg.topic, msg.payload) == (topic, b"gone")
    finally:
        watcher.close()


def test_no_will_after_a_normal_disconnect(mqtt_server, protocol):
    topic = f"paho/nowill/{uuid.uuid4().hex[:6]}"
    watcher = Client(mqtt_server, protocol, "watcher")
    try:
        watcher.subscribe(topic, 1)
        leaving = Client(mqtt_server, protocol, "leaving", will=(topic, b"gone", 1, False))
        leaving.close()
        with pytest.raises(queue.Empty):
            watcher.messages.get(timeout=0.5)
    finally:
        watcher.close()


def test_v5_user_properties_round_trip(mqtt_server):
    _skip_v5_on_reference(mqtt_server, V5)
    topic = f"paho/props/{uuid.uuid4().hex[:6]}"
    sub = Client(mqtt_server, V5, "sub")
    pub = Client(mqtt_server, V5, "pub")
    try:
        sub.subscribe(topic, 0)
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [("colour", "blue"), ("size", "L")]
        props.ContentType = "text/plain"
        pub.publish(topic, b"x", properties=props)
        msg = sub.next_message()
        assert ("colour", "blue") in msg.properties.UserProperty
        assert ("size", "L") in msg.properties.UserProperty
        assert msg.properties.ContentType == "text/plain"
    finally:
        sub.close()
        pub.close()
