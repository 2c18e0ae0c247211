"""Request/reply through a responder, and the no-responders status when nobody listens."""

import asyncio

import nats.errors
import pytest

from barrier import barrier

TIMEOUT_S = 2.0


async def test_request_gets_the_responders_reply(connect):
    responder_nc, requester_nc = await connect(), await connect()

    async def echo(msg):
        await msg.respond(b"re:" + msg.data)

    await responder_nc.subscribe("svc.echo", cb=echo)
    await barrier(responder_nc)
    for i in range(20):
        reply = await requester_nc.request("svc.echo", f"ping {i}".encode(), timeout=TIMEOUT_S)
        assert reply.data == f"re:ping {i}".encode()


async def test_concurrent_requests_get_their_own_replies(connect):
    responder_nc, requester_nc = await connect(), await connect()

    async def double(msg):
        await msg.respond(str(int(msg.data) * 2).encode())

    await responder_nc.subscribe("svc.double", cb=double)
    await barrier(responder_nc)
    replies = await asyncio.gather(
        *(requester_nc.request("svc.double", str(i).encode(), timeout=TIMEOUT_S) for i in range(50))
    )
    assert [int(r.data) for r in replies] == [i * 2 for i in range(50)]


async def test_request_reply_with_queue_group_responders(connect):
    responders = [await connect() for _ in range(3)]
    for index, rnc in enumerate(responders):

        async def answer(msg, index=index):
            await msg.respond(str(index).encode())

        await rnc.subscribe("svc.who", queue="pool", cb=answer)
        await barrier(rnc)
    requester = await connect()
    answers = [await requester.request("svc.who", b"", timeout=TIMEOUT_S) for _ in range(30)]
    assert {a.data for a in answers} <= {b"0", b"1", b"2"}


async def test_request_without_subscribers_raises_no_responders(nc):
    with pytest.raises(nats.errors.NoRespondersError):
        await nc.request("nobody.home", b"hello?", timeout=TIMEOUT_S)


async def test_no_responders_is_fast_not_a_timeout(nc):
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(nats.errors.NoRespondersError):
        await nc.request("nobody.home", b"", timeout=5)
    assert loop.time() - started < 2.0


async def test_server_advertises_headers_support(nc):
    # nats.py only asks for no-responders when the server says it supports headers.
    assert nc._server_info.get("headers") is True
