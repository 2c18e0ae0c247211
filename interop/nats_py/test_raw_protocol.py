"""Protocol-level behaviour seen over a plain socket: pipelining, limits, and errors."""

from harness.raw import raw_session

ONE_MIB = 1024 * 1024
QUIET = b'CONNECT {"verbose":false}\r\n'


async def test_info_is_sent_first_and_describes_the_server(server_url):
    async with raw_session(server_url) as conn:
        for key in ("server_id", "version", "max_payload", "proto", "headers"):
            assert key in conn.info, key
        assert conn.info["max_payload"] == ONE_MIB
        assert conn.info["headers"] is True


async def test_pipelined_connect_sub_pub_ping_in_one_write(server_url):
    async with raw_session(server_url) as conn:
        await conn.send(b"CONNECT {}\r\nSUB a 1\r\nPUB a 2\r\nhi\r\nPING\r\n")
        # `+OK` acks (CONNECT {} leaves verbose at the server's default) are skipped.
        assert await conn.read_until(b"PONG") == [b"MSG a 1 2", b"hi", b"PONG"]


async def test_pipelined_with_verbose_off_sends_no_acks(server_url):
    async with raw_session(server_url) as conn:
        await conn.send(QUIET + b"SUB a 1\r\nPUB a 2\r\nhi\r\nPUB a 3\r\nbye\r\nPING\r\n")
        assert await conn.read_until(b"PONG", skip=()) == [b"MSG a 1 2", b"hi", b"MSG a 1 3", b"bye", b"PONG"]


async def test_reply_subject_is_carried_in_msg(server_url):
    async with raw_session(server_url) as conn:
        await conn.send(QUIET + b"SUB req 9\r\nPUB req inbox.1 3\r\nabc\r\nPING\r\n")
        assert await conn.read_until(b"PONG", skip=()) == [b"MSG req 9 inbox.1 3", b"abc", b"PONG"]


async def test_client_pong_is_accepted_silently(server_url):
    async with raw_session(server_url) as conn:
        await conn.send(QUIET + b"PONG\r\nPING\r\n")
        assert await conn.read_until(b"PONG", skip=()) == [b"PONG"]


async def test_unsub_with_max_stops_after_that_many_messages(server_url):
    pubs = b"".join(f"PUB lim {len(str(i))}\r\n{i}\r\n".encode() for i in range(5))
    async with raw_session(server_url) as conn:
        await conn.send(QUIET + b"SUB lim 4\r\nUNSUB 4 2\r\n" + pubs + b"PING\r\n")
        assert await conn.read_until(b"PONG", skip=()) == [b"MSG lim 4 1", b"0", b"MSG lim 4 1", b"1", b"PONG"]


async def test_payload_over_max_payload_is_rejected(server_url):
    async with raw_session(server_url) as conn:
        await conn.send(QUIET + b"PUB foo 2000000\r\n")
        assert await conn.read_error() == b"-ERR 'Maximum Payload Violation'"


async def test_unknown_operation_is_rejected(server_url):
    async with raw_session(server_url) as conn:
        await conn.send(QUIET + b"FOO bar\r\n")
        assert await conn.read_error() == b"-ERR 'Unknown Protocol Operation'"


async def test_protocol_is_case_insensitive(server_url):
    async with raw_session(server_url) as conn:
        await conn.send(b'connect {"verbose":false}\r\nsub a 1\r\npub a 2\r\nhi\r\nping\r\n')
        assert await conn.read_until(b"PONG", skip=()) == [b"MSG a 1 2", b"hi", b"PONG"]
