"""A configuration reload (SIGHUP with the `.conf` rewritten) under connected clients, done the
same way to the server under test and to nats-server: the same clients must be told and
closed, the same ones kept, and the same logins accepted afterwards.

(One known difference is left out on purpose: nats-server keeps a client whose permissions
changed and applies the new ones; Jetway closes it, see the README.)"""

import socket
import time

import pytest

from harness.server import ServerProcess, KIND_NATS_SERVER
from test_auth_same_answers import _connect, _drain, _normal

BEFORE = """
authorization {
  users = [
    {user: "alice", password: "a"}
    {user: "bob", password: "b"}
    {user: "zed", password: "z"}
  ]
}
"""

# Bob's password changes, Zed goes, Dave comes; Alice stays as she was.
AFTER = """
authorization {
  users = [
    {user: "alice", password: "a"}
    {user: "bob", password: "b2"}
    {user: "dave", password: "d"}
  ]
}
"""

# A configuration that does not load: nothing may change.
BROKEN = "authorization { users = [ {user: \"alice\", password: \"a\", account: \"NOPE\"} ] }"


def _open(port, user, password):
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    s.settimeout(0.05)
    s.sendall(_connect(user, password) + b"PING\r\n")
    return s


def _session(server, reload_with):
    """What Alice, Bob and Zed see across the reload, then which logins work after it."""
    clients = {name: _open(server.port, name, pw) for name, pw in (("alice", "a"), ("bob", "b"), ("zed", "z"))}
    seen = {name: b"" for name in clients}
    try:
        time.sleep(0.3)
        for name, s in clients.items():
            seen[name] += _drain(s)
        server.reload(reload_with)
        time.sleep(1.0)
        for name, s in clients.items():
            try:
                s.sendall(b"PING\r\n")
            except OSError:
                seen[name] += b"<send failed>"
            time.sleep(0.1)
            seen[name] += _drain(s)
    finally:
        for s in clients.values():
            s.close()
    after = {}
    for user, pw in (("alice", "a"), ("bob", "b"), ("bob", "b2"), ("dave", "d"), ("zed", "z")):
        s = _open(server.port, user, pw)
        time.sleep(0.3)
        after[f"{user}/{pw}"] = _normal(_drain(s))
        s.close()
    return {name: _normal(data) for name, data in seen.items()}, after


@pytest.mark.parametrize("name,reload_with", [("users changed", AFTER), ("a broken file", BROKEN)])
def test_same_answers_across_a_reload(jetway_binary, reference_binary, name, reload_with):
    answers = []
    for binary, kind in ((jetway_binary, None), (reference_binary, KIND_NATS_SERVER)):
        server = ServerProcess(binary, kind=kind, conf=BEFORE).start()
        try:
            answers.append(_session(server, reload_with))
        finally:
            server.stop()
    ours, theirs = answers
    assert ours == theirs
