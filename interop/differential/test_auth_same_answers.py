"""Users and permissions, configured the same way (one nats-server `.conf`) on the server under
test and on nats-server: the same connections doing the same things must see the same protocol
answers (`-ERR` texts, closes, which messages arrive)."""

import re
import socket
import time

import pytest

from harness.server import KIND_NATS_SERVER, ServerError, ServerProcess, started_pair

AUTH_CONF = """
authorization {
  users = [
    {user: "pub", password: "p", permissions: {publish: {allow: ["a.>"], deny: ["a.secret"]}, subscribe: {deny: [">"]}}}
    {user: "sub", password: "s", permissions: {publish: {deny: [">"]}, subscribe: {allow: ["a.*", "b.>"], deny: ["b.hidden"]}, allow_responses: true}}
    {user: "queue", password: "q", permissions: {subscribe: {allow: ["jobs workers", "plain"]}, publish: {allow: ["jobs", "plain"]}}}
    {user: "free", password: "f"}
  ]
}
"""

ACCOUNTS_CONF = """
accounts {
  A: {
    users: [{user: "a", password: "a"}]
    exports: [{stream: "events.>"}, {service: "svc.>"}, {stream: "private.>", accounts: ["C"]}]
  }
  B: {
    users: [{user: "b", password: "b"}]
    imports: [
      {stream: {account: "A", subject: "events.>"}, prefix: "fromA"}
      {service: {account: "A", subject: "svc.echo"}, to: "echo"}
    ]
  }
  C: {
    users: [{user: "c", password: "c"}]
    imports: [{stream: {account: "A", subject: "private.>"}}]
  }
}
"""

# B imports a stream that A exports to C only: a configuration error for both servers.
UNAUTHORIZED_IMPORT_CONF = ACCOUNTS_CONF.replace(
    '{service: {account: "A", subject: "svc.echo"}, to: "echo"}',
    '{service: {account: "A", subject: "svc.echo"}, to: "echo"}\n      {stream: {account: "A", subject: "private.>"}}',
)

INFO_LINE = re.compile(rb"INFO \{.*?\} ?\r\n")
# The reply subject a service import gives a request is random (`_R_.<random>.<random>`).
SERVICE_REPLY = re.compile(rb"_R_\.[A-Za-z0-9.]+")


def _connect(user, password):
    return b'CONNECT {"verbose":false,"pedantic":false,"user":"%s","pass":"%s"}\r\n' % (user.encode(), password.encode())


# Each case: steps of (connection, bytes); a connection opens at its first step.
CASES = {
    "publish allowed and denied": [
        ("pub", _connect("pub", "p")),
        ("pub", b"PUB a.x 1\r\nx\r\nPUB a.secret 1\r\nx\r\nPUB b 1\r\nx\r\nSUB a.x 1\r\nPING\r\n"),
    ],
    "subscribe allowed and denied": [
        ("sub", _connect("sub", "s")),
        ("sub", b"SUB a.x 1\r\nSUB a.x.y 2\r\nSUB b.hidden 3\r\nSUB b.> 4\r\nSUB b.* 5\r\nPUB a.x 1\r\nx\r\nPING\r\n"),
        ("free", _connect("free", "f")),
        ("free", b"PUB b.hidden 6\r\nhidden\r\nPUB b.shown 5\r\nshown\r\nPING\r\n"),
        ("sub", b"PING\r\n"),
    ],
    "queue permissions": [
        ("q", _connect("queue", "q")),
        ("q", b"SUB jobs workers 1\r\nSUB jobs others 2\r\nSUB jobs 3\r\nSUB plain 4\r\nSUB plain any 5\r\nPING\r\n"),
        ("q", b"PUB jobs 2\r\nj1\r\nPUB plain 2\r\np1\r\nPING\r\n"),
    ],
    "responses allowed once": [
        ("sub", _connect("sub", "s")),
        ("sub", b"SUB b.req 1\r\nPING\r\n"),
        ("free", _connect("free", "f")),
        ("free", b"SUB rep.1 9\r\nPUB b.req rep.1 3\r\nreq\r\nPING\r\n"),
        ("sub", b"PUB rep.1 3\r\none\r\nPUB rep.1 3\r\ntwo\r\nPUB rep.2 5\r\nother\r\nPING\r\n"),
        ("free", b"PING\r\n"),
    ],
    "wrong password": [("pub", _connect("pub", "nope")), ("pub", b"PING\r\n")],
    "no credentials": [("anon", b"CONNECT {}\r\n"), ("anon", b"PING\r\n")],
    "user without password": [("pub", b'CONNECT {"user":"pub"}\r\n'), ("pub", b"PING\r\n")],
}


ACCOUNT_CASES = {
    "stream import with prefix": [
        ("b", _connect("b", "b")),
        ("b", b"SUB fromA.events.> 1\r\nSUB events.> 2\r\nPING\r\n"),
        ("a", _connect("a", "a")),
        ("a", b"SUB events.> 7\r\nPUB events.x 2\r\nhi\r\nPING\r\n"),
        ("b", b"PUB events.y 5\r\nlocal\r\nPING\r\n"),
    ],
    "service import": [
        ("a", _connect("a", "a")),
        ("a", b"SUB svc.echo 1\r\nPING\r\n"),
        ("b", _connect("b", "b")),
        ("b", b"SUB inbox.1 5\r\nPUB echo inbox.1 4\r\nping\r\nPING\r\n"),
    ],
    "stream export to listed accounts": [
        ("c", _connect("c", "c")),
        ("c", b"SUB private.> 1\r\nPING\r\n"),
        ("b", _connect("b", "b")),
        ("b", b"SUB private.> 1\r\nPING\r\n"),
        ("a", _connect("a", "a")),
        ("a", b"PUB private.x 6\r\nsecret\r\nPING\r\n"),
        ("c", b"PING\r\n"),
        ("b", b"PING\r\n"),
    ],
}


def _run(port, steps):
    """What each connection received, in order, after every step ran."""
    socks, out = {}, {}
    try:
        for name, data in steps:
            if name not in socks:
                s = socket.create_connection(("127.0.0.1", port), timeout=2)
                s.settimeout(0.05)
                socks[name], out[name] = s, b""
            try:
                socks[name].sendall(data)
            except OSError:
                out[name] += b"<send failed>"
            time.sleep(0.15)
            for other, s in socks.items():
                out[other] += _drain(s)
        time.sleep(0.3)
        for other, s in socks.items():
            out[other] += _drain(s)
    finally:
        for s in socks.values():
            s.close()
    return {name: _normal(data) for name, data in out.items()}


def _normal(data):
    """Without what differs by design: INFO contents, random service reply subjects, and the
    server's first PING (about 2 s after CONNECT on both, so a case may end either side of it)."""
    data = INFO_LINE.sub(b"INFO\r\n", data)
    return SERVICE_REPLY.sub(b"_R_", data).replace(b"PING\r\n", b"")


def _drain(sock):
    got = b""
    while True:
        try:
            data = sock.recv(65536)
        except socket.timeout:
            return got
        except OSError:
            return got + b"<closed>"
        if not data:
            return got + b"<closed>"
        got += data


@pytest.fixture(scope="module")
def servers(jetway_binary, reference_binary):
    with started_pair(jetway_binary, reference_binary, conf=AUTH_CONF) as pair:
        yield pair


@pytest.fixture(scope="module")
def account_servers(jetway_binary, reference_binary):
    with started_pair(jetway_binary, reference_binary, conf=ACCOUNTS_CONF) as pair:
        yield pair


@pytest.mark.parametrize("name", sorted(ACCOUNT_CASES))
def test_same_answers_across_accounts(account_servers, name):
    ours, theirs = account_servers
    assert _run(ours.port, ACCOUNT_CASES[name]) == _run(theirs.port, ACCOUNT_CASES[name])


def test_an_unauthorized_import_stops_both_servers(jetway_binary, reference_binary):
    assert UNAUTHORIZED_IMPORT_CONF != ACCOUNTS_CONF
    for binary, kind in ((jetway_binary, None), (reference_binary, KIND_NATS_SERVER)):
        server = ServerProcess(binary, kind=kind, conf=UNAUTHORIZED_IMPORT_CONF)
        with pytest.raises(ServerError):
            server.start()
        server.stop()


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_answers_with_permissions(servers, name):
    ours, theirs = servers
    assert _run(ours.port, CASES[name]) == _run(theirs.port, CASES[name])
