"""The NATS text protocol over a plain asyncio socket.

Client libraries refuse to send what a server must reject (nats.py raises MaxPayloadError
before a byte leaves), so protocol-level checks talk to the server directly. Every read
has a timeout and every loop a line budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import AsyncIterator, List, Optional
from urllib.parse import urlparse

READ_TIMEOUT_S = 5.0
MAX_LINES = 1000


class RawConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.info: dict = {}

    @classmethod
    async def open(cls, url: str) -> "RawConnection":
        """Connect and consume the server's INFO, which always comes first."""
        parsed = urlparse(url)
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(parsed.hostname, parsed.port), READ_TIMEOUT_S
        )
        conn = cls(reader, writer)
        first = await conn.read_line()
        if not first.startswith(b"INFO "):
            raise AssertionError(f"expected INFO first, got {first!r}")
        conn.info = json.loads(first[len(b"INFO ") :])
        return conn

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_line(self, timeout: float = READ_TIMEOUT_S) -> bytes:
        """One line without its CRLF; b"" means the server closed the connection."""
        line = await asyncio.wait_for(self.reader.readline(), timeout)
        return line.rstrip(b"\r\n")

    async def read_exact(self, n: int, timeout: float = READ_TIMEOUT_S) -> bytes:
        return await asyncio.wait_for(self.reader.readexactly(n), timeout)

    async def read_until(self, wanted: bytes, skip: tuple = (b"+OK",)) -> List[bytes]:
        """Lines up to and including `wanted`, leaving out lines in `skip` (verbose acks)."""
        seen: List[bytes] = []
        for _ in range(MAX_LINES):
            line = await self.read_line()
            if line in skip:
                continue
            seen.append(line)
            if line == wanted or line == b"":
                return seen
        raise AssertionError(f"no {wanted!r} within {MAX_LINES} lines: {seen[-5:]!r}")

    async def read_error(self) -> Optional[bytes]:
        """The first -ERR line, skipping acks and pings; None if the server just closed."""
        for _ in range(MAX_LINES):
            line = await self.read_line()
            if line.startswith(b"-ERR"):
                return line
            if line == b"":
                return None
        raise AssertionError(f"no -ERR within {MAX_LINES} lines")

    async def close(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), READ_TIMEOUT_S)
        except (ConnectionError, asyncio.TimeoutError):
            pass


@contextlib.asynccontextmanager
async def raw_session(url: str) -> AsyncIterator[RawConnection]:
    """A connection that has read INFO, closed when the block ends."""
    conn = await RawConnection.open(url)
    try:
        yield conn
    finally:
        await conn.close()
