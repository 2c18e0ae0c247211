"""The mosquitto command-line clients (`mosquitto_pub`, `mosquitto_sub`) against the MQTT
listener. `run.sh` installs the `mosquitto-clients` package when they are missing."""

import shutil
import subprocess
import time
import uuid

import pytest

from harness.server import KIND_NATS_SERVER

WAIT_S = 5

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto_pub") is None, reason="mosquitto-clients is not installed"
)


def _addr(server):
    return ["-h", server.mqtt_host, "-p", str(server.mqtt_port)]


def _sub(server, *args):
    """Starts mosquitto_sub for one message (-C 1) with a bounded wait (-W)."""
    cmd = ["mosquitto_sub", *_addr(server), "-C", "1", "-W", str(WAIT_S), *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _pub(server, *args):
    subprocess.run(["mosquitto_pub", *_addr(server), *args], check=True, timeout=WAIT_S)


def _wait_subscribed():
    # mosquitto_sub has no "subscribed" signal on stdout; give its SUBSCRIBE a moment.
    time.sleep(0.3)


def _output(proc):
    out, err = proc.communicate(timeout=WAIT_S + 2)
    assert proc.returncode == 0, f"mosquitto_sub exited {proc.returncode}: {err.decode()}"
    return out.decode().strip()


@pytest.mark.parametrize("qos", ["0", "1", "2"])
def test_publish_and_subscribe_at_each_qos(mqtt_server, qos):
    topic = f"mosq/{uuid.uuid4().hex[:6]}/t"
    sub = _sub(mqtt_server, "-q", qos, "-t", topic, "-v")
    _wait_subscribed()
    _pub(mqtt_server, "-q", qos, "-t", topic, "-m", f"at qos {qos}")
    assert _output(sub) == f"{topic} at qos {qos}"


def test_retained_message_reaches_a_later_wildcard_subscriber(mqtt_server):
    base = f"mosq/{uuid.uuid4().hex[:6]}"
    _pub(mqtt_server, "-q", "1", "-r", "-t", f"{base}/room", "-m", "21C")
    sub = _sub(mqtt_server, "-q", "1", "-t", f"{base}/#", "-v", "-F", "%r %t %p")
    assert _output(sub) == f"1 {base}/room 21C"


def test_v5_user_property_is_delivered(mqtt_server):
    if mqtt_server.kind == KIND_NATS_SERVER:
        pytest.skip("nats-server implements MQTT 3.1.1 only")
    topic = f"mosq/{uuid.uuid4().hex[:6]}/props"
    sub = _sub(mqtt_server, "-V", "mqttv5", "-t", topic, "-F", "%P %p")
    _wait_subscribed()
    _pub(mqtt_server, "-V", "mqttv5", "-t", topic, "-m", "x", "-D", "publish", "user-property", "k", "v")
    assert _output(sub) == "k:v x"
