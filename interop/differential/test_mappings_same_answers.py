"""Subject mappings (`mappings`, top-level and per account), configured the same way on the
server under test and on nats-server: the same connections publishing the same subjects must
see the same messages arrive (on the same subjects) and the same `-ERR`s."""

import pytest

from harness.server import KIND_NATS_SERVER, ServerError, ServerProcess, started_pair
from test_auth_same_answers import _connect, _run

# Weighted cases are chosen so that no random pick decides anything: a 0% destination never
# gets a message, and a source listed among destinations whose weights add up to 0 drops all.
GLOBAL_CONF = """
mappings = {
  "foo": "bar"
  "orders.*.*": "shipped.$2.$1"
  "dev.>": "devices.>"
  "part.*": "part.{{partition(3,1)}}.{{wildcard(1)}}"
  "never": [{destination: "never.taken", weight: 0}]
  "gone": [{destination: "gone", weight: 0}, {destination: "elsewhere", weight: 0}]
  "always": [{destination: "always.a", weight: 100%}]
}
"""

ACCOUNTS_CONF = """
accounts {
  A: {
    users: [{user: "a", password: "a", permissions: {publish: {allow: ["ok.>", "svc.>", "_R_.>"]}}}]
    mappings: {"in.*": "ok.$1", "blocked": "no.way", "svc.old": "svc.new"}
    exports: [{service: "svc.>"}]
  }
  B: {
    users: [{user: "b", password: "b"}]
    imports: [{service: {account: "A", subject: "svc.>"}}]
    mappings: {"foo": "bar"}
  }
}
"""

ANONYMOUS = b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true}\r\n'

GLOBAL_CASES = {
    "literal, wildcard and full-wildcard mappings": [
        ("s", ANONYMOUS + b"SUB bar 1\r\nSUB foo 2\r\nSUB shipped.> 3\r\nSUB devices.> 4\r\nSUB dev.> 5\r\nPING\r\n"),
        ("p", ANONYMOUS + b"PUB foo 1\r\na\r\nPUB orders.eu.42 1\r\nb\r\nPUB dev.7.temp 1\r\nc\r\nPUB orders.eu 1\r\nd\r\nPING\r\n"),
        ("s", b"PING\r\n"),
    ],
    "mapping functions": [
        ("s", ANONYMOUS + b"SUB part.> 1\r\nPING\r\n"),
        ("p", ANONYMOUS + b"PUB part.k1 1\r\na\r\nPUB part.k2 1\r\nb\r\nPUB part.order-17 1\r\nc\r\nPING\r\n"),
        ("s", b"PING\r\n"),
    ],
    "weights that leave nothing to chance": [
        ("s", ANONYMOUS + b"SUB never.taken 1\r\nSUB never 2\r\nSUB gone 3\r\nSUB elsewhere 4\r\nSUB always.a 5\r\nSUB always 6\r\nPING\r\n"),
        ("p", ANONYMOUS + b"PUB never 1\r\na\r\nPUB gone 1\r\nb\r\nPUB always 1\r\nc\r\nPING\r\n"),
        ("s", b"PING\r\n"),
    ],
    "a request to a mapped subject nobody serves": [
        ("p", ANONYMOUS + b"SUB inbox 1\r\nHPUB foo inbox 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPING\r\n"),
    ],
    "verbose acknowledges mapped and dropped publishes": [
        ("p", b'CONNECT {"verbose":true,"pedantic":false}\r\nPUB foo 1\r\na\r\nPUB gone 1\r\nb\r\nPING\r\n'),
    ],
}

ACCOUNT_CASES = {
    "permissions see the destination": [
        ("a", _connect("a", "a")),
        ("a", b"SUB ok.> 1\r\nPUB in.x 1\r\na\r\nPUB blocked 1\r\nb\r\nPUB in.y.z 1\r\nc\r\nPING\r\n"),
    ],
    "mappings stay in their account": [
        ("a", _connect("a", "a")),
        ("a", b"SUB bar 1\r\nPING\r\n"),
        ("b", _connect("b", "b")),
        ("b", b"SUB bar 1\r\nPUB foo 1\r\nx\r\nPING\r\n"),
        ("a", b"PING\r\n"),
    ],
    "a service import follows the exporter's mapping": [
        ("a", _connect("a", "a")),
        ("a", b"SUB svc.new 1\r\nSUB svc.old 2\r\nPING\r\n"),
        ("b", _connect("b", "b")),
        ("b", b"SUB inbox 5\r\nPUB svc.old inbox 1\r\n?\r\nPING\r\n"),
        ("a", b"PING\r\n"),
    ],
}

# What both servers must refuse to start with.
BAD_CONFS = {
    "weights over 100": 'mappings = { "a": [{destination: "b", weight: 60}, {destination: "c", weight: 50}] }',
    "a wildcard the source lacks": 'mappings = { "a.*": "b.$2" }',
    "a weight missing": 'mappings = { "a": {destination: "b"} }',
    "a weight over 100": 'mappings = { "a": {destination: "b", weight: 101} }',
    "a destination twice": 'mappings = { "a": [{destination: "b", weight: 10}, {destination: "b", weight: 10}] }',
}


@pytest.fixture(scope="module")
def global_servers(jetway_binary, reference_binary):
    with started_pair(jetway_binary, reference_binary, conf=GLOBAL_CONF) as pair:
        yield pair


@pytest.fixture(scope="module")
def account_servers(jetway_binary, reference_binary):
    with started_pair(jetway_binary, reference_binary, conf=ACCOUNTS_CONF) as pair:
        yield pair


@pytest.mark.parametrize("name", sorted(GLOBAL_CASES))
def test_same_mapped_messages(global_servers, name):
    ours, theirs = global_servers
    assert _run(ours.port, GLOBAL_CASES[name]) == _run(theirs.port, GLOBAL_CASES[name])


@pytest.mark.parametrize("name", sorted(ACCOUNT_CASES))
def test_same_mapped_messages_in_accounts(account_servers, name):
    ours, theirs = account_servers
    assert _run(ours.port, ACCOUNT_CASES[name]) == _run(theirs.port, ACCOUNT_CASES[name])


@pytest.mark.parametrize("name", sorted(BAD_CONFS))
def test_a_bad_mapping_stops_both_servers(jetway_binary, reference_binary, name):
    for binary, kind in ((jetway_binary, None), (reference_binary, KIND_NATS_SERVER)):
        server = ServerProcess(binary, kind=kind, conf=BAD_CONFS[name])
        with pytest.raises(ServerError):
            server.start()
        server.stop()
