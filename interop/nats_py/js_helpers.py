"""Small helpers for the JetStream tests: bounded waits, and reading a raw API reply.

nats.py's KV `keys()`/`history()` and object-store `list()` iterate a watcher until the
server says "no more"; a server that never says so would hang them, so every such call
goes through `bounded()`.
"""

import asyncio
import json
from typing import Optional

# No single JetStream wait in these tests may take longer than this.
WAIT_S = 10.0
POLL_INTERVAL_S = 0.05


async def bounded(awaitable, timeout: float = WAIT_S):
    return await asyncio.wait_for(awaitable, timeout)


async def eventually(check, timeout: float = WAIT_S):
    """Polls the async `check()` until it returns a truthy value; returns that value.

    For state the server updates asynchronously (acks processed, consumer counters).
    """
    deadline = asyncio.get_running_loop().time() + timeout
    last = None
    while True:
        last = await check()
        if last:
            return last
        if asyncio.get_running_loop().time() >= deadline:
            raise AssertionError(f"condition still false after {timeout:.0f}s (last value {last!r})")
        await asyncio.sleep(POLL_INTERVAL_S)


async def api_request(nc, subject: str, body: Optional[dict] = None, timeout: float = 5.0) -> dict:
    """A raw `$JS.API.…` request; returns the decoded JSON reply."""
    payload = json.dumps(body).encode() if body is not None else b""
    reply = await nc.request(subject, payload, timeout=timeout)
    return json.loads(reply.data)
