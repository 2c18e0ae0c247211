"""Wait until the server has processed everything a nats.py connection has sent.

nats.py 2.16's `flush()` writes its PING straight to the socket while earlier commands
(SUB, PUB) can still sit in the client's pending buffer, so the PONG may come back before
the server has seen a just-made subscription: a publish from another connection then
races it and is lost. The first flush's round trip lets the flusher task write the
pending buffer; the second PING goes out behind it.
"""


async def barrier(*connections) -> None:
    for nc in connections:
        await nc.flush()
        await nc.flush()
