"""TLS and WebSocket transports with clients from other ecosystems: the mosquitto CLI and
paho-mqtt over (mutual) TLS, paho-mqtt over WebSockets (`/mqtt`), nats.py over TLS, `ws://`
and `wss://`, and MQTT over WebSocket bridged to nats.py. The servers come from the
`tls_server` / `wss_server` fixtures (interop/conftest.py, harness/transports.py)."""

import asyncio
import shutil
import ssl
import subprocess
import time
import uuid

import nats
import paho.mqtt.client as mqtt
import pytest

from harness.paho_client import Client
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

TLS_CLIENT = {"ca_certs": CA, "certfile": CLIENT_CERT, "keyfile": CLIENT_KEY}
V311 = mqtt.MQTTv311


def _round_trip(a: Client, b: Client):
    topic = f"paho/{_uid()}"
    a.subscribe(f"{topic}/#", qos=1)
    b.publish(f"{topic}/x", b"over the wire", qos=1)
    msg = a.next_message()
    assert (msg.topic, msg.payload) == (f"{topic}/x", b"over the wire")


def test_paho_over_mutual_tls(tls_server):
    a = Client(tls_server, V311, "tls-a", tls=TLS_CLIENT)
    b = Client(tls_server, V311, "tls-b", tls=TLS_CLIENT)
    try:
        _round_trip(a, b)
    finally:
        a.close()
        b.close()


def test_paho_over_websockets_and_with_a_tls_client(tls_server):
    ws = Client(tls_server, V311, "ws", websocket=True)
    tls = Client(tls_server, V311, "tls", tls=TLS_CLIENT)
    try:
        _round_trip(ws, tls)
        _round_trip(tls, ws)
    finally:
        ws.close()
        tls.close()


# ---- nats.py over TLS and WebSocket; MQTT over WebSocket bridged to NATS --------------------


async def _nats(url: str, tls: bool = True):
    """A nats.py client; `tls` trusts the development CA (for tls:// and wss:// URLs)."""
    context = ssl.create_default_context(cafile=CA) if tls else None
    return await nats.connect(url, tls=context, connect_timeout=WAIT_S, allow_reconnect=False)


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
    nc = await _nats(f"tls://127.0.0.1:{tls_server.port}")
    try:
        await _pub_sub(nc, nc)
    finally:
        await nc.close()


async def test_nats_py_over_ws_talks_to_a_tls_client(tls_server):
    ws = await _nats(f"ws://127.0.0.1:{tls_server.ws_port}", tls=False)
    tcp = await _nats(f"tls://127.0.0.1:{tls_server.port}")
    try:
        assert ws.connected_server_version.major == 2
        await _pub_sub(ws, tcp)
        await _pub_sub(tcp, ws)
    finally:
        await ws.close()
        await tcp.close()


async def test_nats_py_over_wss(wss_server):
    nc = await _nats(f"wss://localhost:{wss_server.ws_port}")
    try:
        await _pub_sub(nc, nc)
    finally:
        await nc.close()


async def test_mqtt_over_websocket_publish_reaches_nats_and_back(tls_server):
    nc = await _nats(f"tls://127.0.0.1:{tls_server.port}")
    device = Client(tls_server, V311, "device", websocket=True)
    try:
        base = f"dev{_uid()}"
        telemetry = await nc.subscribe(f"{base}.telemetry.>")
        await nc.flush()
        await asyncio.to_thread(device.publish, f"{base}/telemetry/temp", b"21.5", 1)
        msg = await telemetry.next_msg(timeout=WAIT_S)
        assert (msg.subject, msg.data) == (f"{base}.telemetry.temp", b"21.5")

        await asyncio.to_thread(device.subscribe, f"{base}/cmd/#", 1)
        await nc.publish(f"{base}.cmd.reboot", b"now")
        await nc.flush()
        got = await asyncio.to_thread(device.next_message)
        assert (got.topic, got.payload) == (f"{base}/cmd/reboot", b"now")
    finally:
        device.close()
        await nc.close()
