"""Queue groups: each message goes to exactly one member of the group."""

import asyncio
import collections

from barrier import barrier

MEMBERS = 3
MESSAGES = 300
DEADLINE_S = 10.0


async def test_queue_group_delivers_each_message_once_and_spreads_load(connect):
    counts = collections.Counter()
    seen = collections.Counter()
    all_in = asyncio.Event()

    def member(index):
        async def on_msg(msg):
            counts[index] += 1
            seen[msg.data] += 1
            if sum(counts.values()) >= MESSAGES:
                all_in.set()

        return on_msg

    members = [await connect() for _ in range(MEMBERS)]
    for index, member_nc in enumerate(members):
        await member_nc.subscribe("work", queue="workers", cb=member(index))
        await barrier(member_nc)

    pub_nc = await connect()
    for i in range(MESSAGES):
        await pub_nc.publish("work", str(i).encode())
    await barrier(pub_nc)

    await asyncio.wait_for(all_in.wait(), DEADLINE_S)
    # Give duplicates, if any, the chance to show up before counting.
    for member_nc in members:
        await barrier(member_nc)
    await asyncio.sleep(0.2)

    assert sum(counts.values()) == MESSAGES
    assert set(seen) == {str(i).encode() for i in range(MESSAGES)}
    assert max(seen.values()) == 1, "a message was delivered to more than one member"
    assert len([c for c in counts.values() if c > 0]) > 1, f"all messages went to one member: {counts}"


async def test_queue_group_and_plain_subscriber_both_receive(connect):
    plain_nc, queue_nc, pub_nc = await connect(), await connect(), await connect()
    plain = await plain_nc.subscribe("jobs")
    queued = [await queue_nc.subscribe("jobs", queue="q") for _ in range(2)]
    await barrier(plain_nc)
    await barrier(queue_nc)
    for i in range(20):
        await pub_nc.publish("jobs", str(i).encode())
    await barrier(pub_nc)

    plain_got = [await plain.next_msg(timeout=2) for _ in range(20)]
    assert [m.data for m in plain_got] == [str(i).encode() for i in range(20)]

    queued_got = []
    for _ in range(40):
        if len(queued_got) == 20:
            break
        for sub in queued:
            while sub.pending_msgs:
                queued_got.append((await sub.next_msg(timeout=2)).data)
        await asyncio.sleep(0.05)
    assert sorted(queued_got, key=int) == [str(i).encode() for i in range(20)]
