"""nats.py connections to the module's server, closed at the end of each test."""

import nats
import pytest_asyncio

CONNECT_TIMEOUT_S = 5


@pytest_asyncio.fixture
async def connect(server_url):
    """A factory: `await connect()` opens one more client connection."""
    opened = []

    async def _connect(**options):
        options.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
        # A reconnect would hide a server that dropped us; fail instead.
        options.setdefault("allow_reconnect", False)
        nc = await nats.connect(servers=[server_url], **options)
        opened.append(nc)
        return nc

    yield _connect
    for nc in opened:
        if not nc.is_closed:
            await nc.close()


@pytest_asyncio.fixture
async def nc(connect):
    return await connect()


@pytest_asyncio.fixture
async def js(nc):
    """A JetStream context on `nc`; every API call and publish ack waits at most 5 s."""
    return nc.jetstream(timeout=CONNECT_TIMEOUT_S)
