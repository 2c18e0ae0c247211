"""TLS and WebSocket transports with clients from other ecosystems: the mosquitto CLI and
paho-mqtt over (mutual) TLS, paho-mqtt over WebSockets (`/mqtt`), nats.py over TLS, `ws://`
and `wss://`, and MQTT over WebSocket bridged to nats.py. The servers come from the
`tls_server` / `wss_server` fixtures (interop/conftest.py, harness/transports.py)."""

import asyncio
import queue
import shutil
import ssl
import subprocess
import time
import uuid

import nats
import paho.mqtt.client as mqtt
import pytest

from harness.transports import CA, CLIENT_CERT, CLIENT_KEY

WAIT_S = 5

needs_mosquitto = pytest.mark.skipif(
    shutil.which("mosquitto_pub") is None, reason="mosquitto-clients is not installed"
)


def _uid() -> str:
    return uuid.uuid4().hex[:8]


# ---- mosquitto CLI over mutual TLS ----------------------------------------------------------


def _mosquitto_tls(server, cert=True):
    args = ["-h", "127.0.0.1", "-p", str(server.mqtt_port), "--cafile", CA]
    if cert:
        args += ["--cert", CLIENT_CERT, "--key", CLIENT_KEY]
    return args


@needs_mosquitto
def test_mosquitto_pub_and_sub_over_mutual_tls(tls_server):
    topic = f"tls/{_uid()}/t"
    sub = subprocess.Popen(
        ["mosquitto_sub", *_mosquitto_tls(tls_server), "-q", "1", "-t", topic, "-C", "1", "-W", str(WAIT_S), "-v"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(0.5)  # mosquitto_sub has no "subscribed" signal
    subprocess.run(
        ["mosquitto_pub", *_mosquitto_tls(tls_server), "-q", "1", "-t", topic, "-m", "secret"],
        check=True,
        timeout=WAIT_S,
    )
    out, err = sub.communicate(timeout=WAIT_S + 2)
    assert sub.returncode == 0, err.decode()
    assert out.decode().strip() == f"{topic} secret"


@needs_mosquitto
def test_mosquitto_without_a_client_certificate_or_without_tls_is_refused(tls_server):
    no_cert = subprocess.run(
        ["mosquitto_pub", *_mosquitto_tls(tls_server, cert=False), "-t", "x", "-m", "y"],
        capture_output=True,
        timeout=WAIT_S + 5,
    )
    assert no_cert.returncode != 0
    plain = subprocess.run(
        ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(tls_server.mqtt_port), "-t", "x", "-m", "y"],
        capture_output=True,
        timeout=WAIT_S + 5,
    )
    assert plain.returncode != 0


# ---- paho-mqtt over TLS and WebSockets --------------------------------------------------------


class Paho:
    """A connected paho 3.1.1 client; received messages land in a queue."""

    def __init__(self, host, port, transport="tcp", tls=False, ws_path=None):
        self.messages = queue.Queue()
        self.c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"paho-{_uid()}",
            protocol=mqtt.MQTTv311,
            transport=transport,
        )
        if ws_path:
            self.c.ws_set_options(path=ws_path)
        if tls:
            self.c.tls_set(ca_certs=CA, certfile=CLIENT_CERT, keyfile=CLIENT_KEY)
        self.c.on_message = lambda _c, _u, msg: self.messages.put(msg)
        connected, subscribed = queue.Queue(), queue.Queue()
        self.subscribed = subscribed
        self.c.on_connect = lambda _c, _u, _f, rc, _p: connected.put(rc)
        self.c.on_subscribe = lambda _c, _u, _mid, codes, _p: subscribed.put(codes)
        self.c.connect(host, port, keepalive=30)
        self.c.loop_start()
        rc = connected.get(timeout=WAIT_S)
        assert not rc.is_failure, f"CONNACK {rc}"

    def subscribe(self, topic, qos=1):
        self.c.subscribe(topic, qos)
        codes = self.subscribed.get(timeout=WAIT_S)
        assert all(not code.is_failure for code in codes), codes

    def publish(self, topic, payload, qos=1):
        info = self.c.publish(topic, payload, qos=qos)
        info.wait_for_publish(timeout=WAIT_S)
        assert info.is_published()

    def next_message(self):
        return self.messages.get(timeout=WAIT_S)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def _round_trip(a: Paho, b: Paho):
    topic = f"paho/{_uid()}"
    a.subscribe(f"{topic}/#")
    b.publish(f"{topic}/x", b"over the wire")
    msg = a.next_message()
    assert (msg.topic, msg.payload) == (f"{topic}/x", b"over the wire")


def test_paho_over_mutual_tls(tls_server):
    a = Paho("127.0.0.1", tls_server.mqtt_port, tls=True)
    b = Paho("127.0.0.1", tls_server.mqtt_port, tls=True)
    try:
        _round_trip(a, b)
    finally:
        a.close()
        b.close()


def test_paho_over_websockets_and_with_a_tls_client(tls_server):
    ws = Paho("127.0.0.1", tls_server.ws_port, transport="websockets", ws_path="/mqtt")
    tls = Paho("127.0.0.1", tls_server.mqtt_port, tls=True)
    try:
        _round_trip(ws, tls)
        _round_trip(tls, ws)
    finally:
        ws.close()
        tls.close()


# ---- nats.py over TLS and WebSocket; MQTT over WebSocket bridged to NATS --------------------


def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=CA)


async def _pub_sub(publisher, subscriber):
    subject = f"py.{_uid()}"
    sub = await subscriber.subscribe(subject)
    await subscriber.flush()
    await subscriber.flush()  # nats.py's flush can overtake a pending SUB (see nats_py/barrier.py)
    await publisher.publish(subject, b"hello")
    await publisher.flush()
    msg = await sub.next_msg(timeout=WAIT_S)
    assert msg.data == b"hello"


async def test_nats_py_over_tls(tls_server):
    nc = await nats.connect(
        f"tls://127.0.0.1:{tls_server.port}", tls=_tls_context(), connect_timeout=WAIT_S, allow_reconnect=False
    )
    try:
        await _pub_sub(nc, nc)
    finally:
        await nc.close()


async def test_nats_py_over_ws_talks_to_a_tls_client(tls_server):
    ws = await nats.connect(f"ws://127.0.0.1:{tls_server.ws_port}", connect_timeout=WAIT_S, allow_reconnect=False)
    tcp = await nats.connect(
        f"tls://127.0.0.1:{tls_server.port}", tls=_tls_context(), connect_timeout=WAIT_S, allow_reconnect=False
    )
    try:
        assert ws.connected_server_version.major == 2
        await _pub_sub(ws, tcp)
        await _pub_sub(tcp, ws)
    finally:
        await ws.close()
        await tcp.close()


async def test_nats_py_over_wss(wss_server):
    nc = await nats.connect(
        f"wss://localhost:{wss_server.ws_port}", tls=_tls_context(), connect_timeout=WAIT_S, allow_reconnect=False
    )
    try:
        await _pub_sub(nc, nc)
    finally:
        await nc.close()


async def test_mqtt_over_websocket_publish_reaches_nats_and_back(tls_server):
    nc = await nats.connect(
        f"tls://127.0.0.1:{tls_server.port}", tls=_tls_context(), connect_timeout=WAIT_S, allow_reconnect=False
    )
    device = Paho("127.0.0.1", tls_server.ws_port, transport="websockets", ws_path="/mqtt")
    try:
        base = f"dev{_uid()}"
        telemetry = await nc.subscribe(f"{base}.telemetry.>")
        await nc.flush()
        await asyncio.to_thread(device.publish, f"{base}/telemetry/temp", b"21.5")
        msg = await telemetry.next_msg(timeout=WAIT_S)
        assert (msg.subject, msg.data) == (f"{base}.telemetry.temp", b"21.5")

        await asyncio.to_thread(device.subscribe, f"{base}/cmd/#")
        await nc.publish(f"{base}.cmd.reboot", b"now")
        await nc.flush()
        got = await asyncio.to_thread(device.next_message)
        assert (got.topic, got.payload) == (f"{base}/cmd/reboot", b"now")
    finally:
        device.close()
        await nc.close()
