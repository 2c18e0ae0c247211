"""nkey users (`users: [{nkey: U…}]`), configured the same way on the server under test and on
nats-server: nats.py signs the INFO nonce with a seed; the same logins must succeed and fail,
with the same permissions and the same errors."""

import asyncio

import nats
import pytest

from harness.server import started_pair

# Test keys only (made for this suite): a user with permissions, and a stranger nobody knows.
USER_SEED = "SUAKSFHSIJNNM7XWP6A4DX5IFPLAKXQWXHKLUWAEXJYQZ4SCURF55VSIOM"
USER_KEY = "UAATNPATSBAA2WCTWYQFZAZBZBYXVS2UTIISQB4FZNWHPJQU6WTGCTDF"
STRANGER_SEED = "SUAGBIHRDXKDNMHG44WDC4IIEQF6AXT3GJ4L7NQKWEX3DC2LOI6VAMZ3J4"

CONF = f"""
authorization {{
  users = [
    {{nkey: "{USER_KEY}", permissions: {{publish: "nk.>", subscribe: "nk.>"}}}}
    {{user: "admin", password: "pw"}}
  ]
}}
"""


@pytest.fixture(scope="module")
def servers(jetway_binary, reference_binary):
    with started_pair(jetway_binary, reference_binary, conf=CONF) as pair:
        yield pair


async def _login(url, **options):
    """What a client logging in with `options` sees: its messages and errors, or why it
    could not connect."""
    errors = []

    async def on_error(e):
        errors.append(str(e))

    try:
        nc = await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=2, error_cb=on_error, **options)
    except Exception as e:  # the refusal is the answer
        return ("refused", type(e).__name__, str(e))
    try:
        sub = await nc.subscribe("nk.x")
        await nc.publish("nk.x", b"signed")
        await nc.publish("other", b"denied")
        await nc.flush()
        got = [(await sub.next_msg(timeout=2)).data]
        await asyncio.sleep(0.2)
        return ("in", got, errors)
    finally:
        await nc.close()


@pytest.mark.parametrize(
    "name,options",
    [
        ("the user's seed", {"nkeys_seed_str": USER_SEED}),
        ("a stranger's seed", {"nkeys_seed_str": STRANGER_SEED}),
        ("the public key as a user name", {"user": USER_KEY, "password": ""}),
    ],
)
async def test_same_nkey_logins(servers, name, options):
    ours, theirs = servers
    assert await _login(ours.url, **options) == await _login(theirs.url, **options)
