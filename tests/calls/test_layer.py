"""The desk's Redis channel layer: channels_redis's, with a group send of two trips to Redis, and the
same queues, capacities and expiries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis import asyncio as redis
from redis.asyncio.connection import AbstractConnection

from calls.layer import DeskRedisChannelLayer, join

pytestmark = pytest.mark.asyncio

PUSH = {"type": "desk.push", "html": "<p>pushed</p>"}


@pytest.fixture
async def layer(layer_url: str) -> AsyncIterator[DeskRedisChannelLayer]:
    hosts = [{"address": layer_url, "socket_timeout": None}]
    layer = DeskRedisChannelLayer(hosts=hosts, capacity=1, expiry=1)
    yield layer
    await layer.close_pools()


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts what is sent to Redis: one entry per write of commands (a pipeline is one)."""
    sent: list[int] = []
    original = AbstractConnection.send_packed_command

    async def counted(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        sent.append(1)
        await original(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
    return sent


async def received(layer: DeskRedisChannelLayer, channel: str) -> dict[str, Any]:
    message: dict[str, Any] = await asyncio.wait_for(layer.receive(channel), 2)
    return message


async def test_a_group_send_reaches_every_channel_of_the_group_in_two_trips_to_redis(
    layer: DeskRedisChannelLayer, trips: list[int]
) -> None:
    channels = [await layer.new_channel(), await layer.new_channel(), "desk-a", "desk-b"]
    for channel in channels:
        await layer.group_add("desk.agent.1", channel)
    await layer.group_send("desk.agent.1", PUSH)  # the first loads the script into Redis
    for channel in channels:
        assert await received(layer, channel) == PUSH

    trips.clear()
    await layer.group_send("desk.agent.1", PUSH)

    assert len(trips) == 2
    for channel in channels:
        assert await received(layer, channel) == PUSH


async def test_a_group_send_passes_over_a_full_channel_and_fills_the_others(
    layer: DeskRedisChannelLayer,
) -> None:
    full, free = "desk-full", "desk-free"
    await layer.group_add("desk.agent.1", full)
    await layer.group_add("desk.agent.1", free)
    await layer.send(full, {"type": "desk.push", "html": "first"})

    await layer.group_send("desk.agent.1", PUSH)

    assert await received(layer, free) == PUSH
    assert await received(layer, full) == {"type": "desk.push", "html": "first"}
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(full), 0.3)


async def test_a_group_send_drops_a_channels_expired_messages_before_it_counts_them(
    layer: DeskRedisChannelLayer,
) -> None:
    channel = await layer.new_channel()
    await layer.group_add("desk.agent.1", channel)
    await layer.send(channel, {"type": "desk.push", "html": "stale"})
    await asyncio.sleep(2.1)

    await layer.group_send("desk.agent.1", PUSH)

    assert await received(layer, channel) == PUSH


async def test_a_group_send_to_a_group_with_no_member_sends_nothing(layer: DeskRedisChannelLayer) -> None:
    await layer.group_send("desk.agent.2", PUSH)
    channel = await layer.new_channel()
    await layer.group_add("desk.agent.2", channel)

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(channel), 0.3)


async def test_many_channels_join_their_groups_in_one_trip_to_redis_as_group_add_would(
    layer: DeskRedisChannelLayer, trips: list[int], layer_url: str
) -> None:
    await layer.group_add("desk.agent.0", "desk-warm")  # the connection is made

    trips.clear()
    await join(layer, [("desk.agent.1", "desk-a"), ("desk.agent.1", "desk-b"), ("desk.agent.2", "desk-a")])

    assert len(trips) == 1
    await layer.group_send("desk.agent.1", PUSH)
    assert [await received(layer, "desk-a"), await received(layer, "desk-b")] == [PUSH, PUSH]
    async with redis.Redis.from_url(layer_url) as client:
        for group in ("desk.agent.1", "desk.agent.2"):
            assert 0 < await client.ttl(layer._group_key(group)) <= layer.group_expiry
