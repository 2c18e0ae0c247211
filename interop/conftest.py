"""Fixtures shared by every client suite under interop/ (nats_py/ now; paho/, mosquitto/ later).

The binary under test comes from `JETWAY_BIN` (run.sh sets it). Each test module gets a
fresh server on a random loopback port, stopped by PID when the module ends.
"""

import os
import signal

import pytest

from harness.server import ServerProcess, detect_kind, server_version
from harness.transports import transports_conf


def _binary() -> str:
    binary = os.environ.get("JETWAY_BIN", "")
    if not binary:
        raise pytest.UsageError("JETWAY_BIN is not set: run the suite through interop/run.sh")
    if not os.access(binary, os.X_OK):
        raise pytest.UsageError(f"JETWAY_BIN={binary} is not an executable file")
    return binary


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config):
    # SIGTERM (from run.sh's trap or a CI timeout) becomes an interrupt, so fixture
    # teardown still stops every server it started.
    signal.signal(signal.SIGTERM, _interrupt)


def pytest_report_header(config):
    binary = _binary()
    return [f"server: {binary} (kind {detect_kind(binary)}, {server_version(binary)})"]


def _run(srv: ServerProcess):
    """Yields the started server, stops it, and fails the module if it crashed or logged a
    panic, even if its tests passed."""
    srv.start()
    try:
        yield srv
    finally:
        died_with = srv.exited()
        srv.stop()
    if died_with is not None:
        pytest.fail(f"server exited with code {died_with} during the tests\n{srv.log_tail()}")
    if srv.fatal_lines:
        pytest.fail("server logged fatal lines:\n" + "\n".join(srv.fatal_lines[:20]))


@pytest.fixture(scope="module")
def server():
    yield from _run(ServerProcess(_binary()))


@pytest.fixture
def server_url(server) -> str:
    return server.url


@pytest.fixture(scope="module")
def mqtt_server():
    """A server with its MQTT listener on a random loopback port (`.mqtt_host`, `.mqtt_port`)."""
    yield from _run(ServerProcess(_binary(), mqtt=True))


@pytest.fixture(scope="module")
def tls_server():
    """NATS over TLS, MQTT over mutual TLS, plain `ws://` for NATS and MQTT (`/mqtt`); the
    addresses are `.port`, `.mqtt_port` and `.ws_port` (on 127.0.0.1)."""
    conf = transports_conf(websocket_tls=False)
    yield from _run(ServerProcess(_binary(), mqtt=True, websocket=True, conf=conf))


@pytest.fixture(scope="module")
def wss_server():
    """The same with the WebSocket listener on `wss://`."""
    conf = transports_conf(websocket_tls=True)
    yield from _run(ServerProcess(_binary(), mqtt=True, websocket=True, conf=conf))
