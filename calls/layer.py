"""The channel layer: the desk's Redis layer (``DeskRedisChannelLayer``, a group send in two trips to
Redis), and the layer through a Redis outage: noticing one, waiting it out, knowing when it is over.

A Redis that stops (a restart, a failover) fails every layer call at once, and comes back empty: no
groups, no queued messages. No process may die of that: a worker's Voice API sessions and a desk
process's sockets need the Voice API and the database, not Redis, to live. Whoever sees a layer call
fail tells this process's ``LayerHealth``; one probe then pings Redis on a short, capped backoff until it
answers, and everything waiting on the layer resumes at once. A desk socket then joins its groups again
and sends a fresh snapshot (what was pushed meanwhile is lost); a worker's listeners read again.

Each probe first drops the connections idle in the layer's pools: redis-py keeps a connection whose
server went away and hands it out again (its "connection has data" check is off while maintenance
notifications are "auto", redis/redis-py#4252), so after a restart each stale connection would fail one
more command.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from channels_redis.core import RedisChannelLayer  # type: ignore[import-untyped]
from redis.exceptions import RedisError

log = logging.getLogger("switchboard.layer")

# What a layer call raises while Redis cannot be reached, or answers with an error (still loading, say).
LAYER_ERRORS: tuple[type[Exception], ...] = (RedisError, OSError)
# Pings while the layer is down: at once, then after 0.05 s, doubling up to the cap. A restarted Redis is
# noticed within the cap, well inside the desk's 2 s promise; one ping per process, whatever its sockets.
FIRST_PROBE_PAUSE_S = 0.05
MAX_PROBE_PAUSE_S = 0.25
PROBE_TIMEOUT_S = 1.0
# A receive that fails again although Redis answers pings pauses this long at most before the next try.
MAX_RECEIVE_PAUSE_S = 1.0

Failed = Callable[[Exception], None]


class LayerHealth:
    """Whether the channel layer answers, for one process's event loop: down from the first failed
    call anyone reports until a ping succeeds again."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.outages = 0
        self._up = asyncio.Event()
        self._up.set()
        self._probe: asyncio.Task[None] | None = None

    @property
    def is_up(self) -> bool:
        return self._up.is_set()

    def failed(self, error: Exception) -> None:
        """A layer call failed: the layer is down until the probe this starts gets an answer."""
        if not self._up.is_set():
            return
        self._up.clear()
        self.outages += 1
        log.warning(
            "the channel layer failed (%s: %s); waiting for it to answer again", type(error).__name__, error
        )
        self._probe = asyncio.get_running_loop().create_task(self._probe_until_up(), name="layer-probe")

    async def back(self) -> None:
        """Returns once the layer answers (at once while it does)."""
        await self._up.wait()

    async def _probe_until_up(self) -> None:
        loop = asyncio.get_running_loop()
        started, pause = loop.time(), FIRST_PROBE_PAUSE_S
        while True:
            try:
                await forget_idle_connections(self.layer)
                async with asyncio.timeout(PROBE_TIMEOUT_S):
                    await ping(self.layer)
                break
            except Exception as error:  # every failure means "not yet": only an answer ends the outage
                log.debug("the channel layer does not answer yet: %s", error)
            await asyncio.sleep(pause)
            pause = min(MAX_PROBE_PAUSE_S, pause * 2)
        log.warning("the channel layer answers again after %.2f s", loop.time() - started)
        self._up.set()


_healths: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, LayerHealth]] = (
    weakref.WeakKeyDictionary()
)


def health_of(layer: Any) -> LayerHealth:
    """The layer's health on the running event loop (channels_redis keeps its pools per loop too); a
    worker's ``OutageProofLayer`` has the health of the layer it wraps."""
    if isinstance(layer, OutageProofLayer):
        layer = layer.layer
    per_loop = _healths.setdefault(asyncio.get_running_loop(), {})
    health = per_loop.get(id(layer))
    if health is None or health.layer is not layer:
        health = per_loop[id(layer)] = LayerHealth(layer)
    return health


async def forget_idle_connections(layer: Any) -> None:
    """Disconnects the connections idle in a Redis layer's pools (each reconnects when next used);
    connections in use are left to their callers. Nothing to do on other layers."""
    if not hasattr(layer, "connection"):
        return
    for index in range(int(getattr(layer, "ring_size", 1))):
        pool = layer.connection(index).connection_pool
        await pool.disconnect(inuse_connections=False)


async def ping(layer: Any) -> None:
    """One round trip to every Redis server of a Redis layer; any other layer always answers."""
    if not hasattr(layer, "connection"):
        return
    for index in range(int(getattr(layer, "ring_size", 1))):
        await layer.connection(index).ping()


async def receive(layer: Any, channel: str, failed: Failed | None = None) -> dict[str, Any]:
    """The next message on ``channel``, waiting out any outage of the layer instead of failing;
    ``failed`` hears of each failed read (a socket mends its groups after one)."""
    health = health_of(layer)
    pause = 0.0
    while True:
        try:
            message: dict[str, Any] = await layer.receive(channel)
            return message
        except LAYER_ERRORS as error:
            health.failed(error)
            if failed is not None:
                failed(error)
        await health.back()
        await asyncio.sleep(pause)
        pause = min(MAX_RECEIVE_PAUSE_S, max(FIRST_PROBE_PAUSE_S, pause * 2))


async def join(layer: Any, memberships: Iterable[tuple[str, str]]) -> None:
    """Adds each channel to its group, ``(group, channel)``: in one trip to Redis on the desk's layer,
    one ``group_add`` each on any other."""
    add_many = getattr(layer, "group_add_many", None)
    if add_many is not None:
        await add_many(memberships)
        return
    for group, channel in memberships:
        await layer.group_add(group, channel)


class OutageProofLayer:
    """A channel layer whose ``receive`` waits out an outage rather than failing; everything else is
    the layer's own. A worker process installs it, so that no listener and no consumer instance ends
    (and drops its sessions) because Redis went away."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.layer, name)

    async def receive(self, channel: str) -> dict[str, Any]:
        return await receive(self.layer, channel)


# Per channel key of a group: drop its expired messages; then, below its capacity, add the message and
# renew the key's expiry. KEYS: the channel keys; ARGV: their messages, their capacities, the time, the
# expiry, and the score below which a message has expired. Returns how many channels were full.
_GROUP_SEND_LUA = """
local n = #KEYS
local now, expiry, expired = ARGV[2 * n + 1], ARGV[2 * n + 2], ARGV[2 * n + 3]
local full = 0
for i = 1, n do
    redis.call('ZREMRANGEBYSCORE', KEYS[i], 0, expired)
    if redis.call('ZCOUNT', KEYS[i], '-inf', '+inf') < tonumber(ARGV[n + i]) then
        redis.call('ZADD', KEYS[i], now, ARGV[i])
        redis.call('EXPIRE', KEYS[i], expiry)
    else
        full = full + 1
    end
end
return full
"""


class DeskRedisChannelLayer(RedisChannelLayer):  # type: ignore[misc]  # channels_redis ships no types
    """channels_redis's layer, with a group send of two round trips to Redis instead of four.

    Every push to a desk is a group send. channels_redis makes four trips for one: expire the group's
    members, read them, expire the messages of their channels, add the message. Each trip waits for a
    turn of the sender's event loop, and a session worker's loop runs thousands of sessions. Here the
    first two go in one pipeline and the last two in one script (run by its hash once Redis has it),
    with the same effect on Redis's keys: the queues, their capacity and the expiries are the layer's.
    """

    _add_to_channels: Any = None

    async def group_add_many(self, memberships: Iterable[tuple[str, str]]) -> None:
        """``group_add`` for each ``(group, channel)``, in one pipeline per Redis server where
        channels_redis makes two trips for each: a process's open tabs join their groups again
        together, every few seconds."""
        now = time.time()
        pipelines: dict[int, Any] = {}
        for group, channel in memberships:
            assert self.require_valid_group_name(group), "Group name not valid"
            assert self.require_valid_channel_name(channel), "Channel name not valid"
            index = self.consistent_hash(group)
            if index not in pipelines:
                pipelines[index] = self.connection(index).pipeline(transaction=False)
            key = self._group_key(group)
            pipelines[index].zadd(key, {channel: now})
            pipelines[index].expire(key, self.group_expiry)
        for pipeline in pipelines.values():
            await pipeline.execute()

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        assert self.require_valid_group_name(group), "Group name not valid"
        key = self._group_key(group)
        connection = self.connection(self.consistent_hash(group))
        now = time.time()
        members = connection.pipeline(transaction=False)
        members.zremrangebyscore(key, min=0, max=int(now) - self.group_expiry)
        members.zrange(key, 0, -1)
        _, names = await members.execute()
        if not names:
            return
        by_connection, messages, capacities = self._map_channel_keys_to_connection(
            [name.decode("utf8") for name in names], message
        )
        if self._add_to_channels is None:
            self._add_to_channels = connection.register_script(_GROUP_SEND_LUA)
        expiry = int(self.expiry)
        for index, keys in by_connection.items():
            args = [*(messages[key] for key in keys), *(capacities[key] for key in keys)]
            full = await self._add_to_channels(
                keys=keys, args=[*args, now, expiry, int(now) - expiry], client=self.connection(index)
            )
            if full:
                log.info("%s of %s channels over capacity in group %s", full, len(names), group)
