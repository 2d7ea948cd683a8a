"""A Redis restart. The desk in its production shape (``tests/stack.py``: daphne, ``runworker
voice-sessions``, voicesim and PostgreSQL, each its own process) on a ``redis-server`` of the test's own,
on a free port, which each test stops and starts again: empty, as a restarted Redis is (no groups, no
queued messages).

Nothing may end for it: the worker's Voice API sessions need the Voice API and the database, not Redis,
and an open desk socket waits the outage out. Within 2 s of Redis answering again the socket is in its
groups again and has been sent what changed while pushes could not reach it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from calls import layer as outages
from deploy.processes import REDIS_SERVER, Processes
from tests.desk import card, control
from tests.servers import free_port
from tests.stack import (
    NOT_READY,
    DeskSocket,
    Stack,
    desk_tab,
    logged_in_socket,
    post,
    worker_stack,
)

pytestmark = [
    pytest.mark.multiprocess,
    pytest.mark.skipif(
        REDIS_SERVER is None,
        reason="redis-server is not installed (apt-get install redis-server): these tests stop and start "
        "a Redis of their own",
    ),
]

REDIS_START_TIMEOUT_S = 10.0
RECOVERY_LIMIT_S = 2.0  # the desk's promise: every screen equals the switch this soon after a fault ends
OUTAGE_S = 1.5  # long enough for the worker to see a call ring, and to fail to push it


class RedisServer:
    """A ``redis-server`` on a free loopback port, keeping nothing on disk: each start is an empty Redis."""

    def __init__(self, logs: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.processes = Processes(os.environ, logs, error=pytest.fail.Exception)

    def start(self) -> float:
        """Starts Redis and returns when (``time.monotonic()``) it answered a ping."""
        self.processes.spawn_redis("redis", self.port, REDIS_START_TIMEOUT_S)
        return time.monotonic()

    def stop(self) -> None:
        self.processes.end()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def layer_url(redis_server: RedisServer) -> str:
    """The desk processes' channel layer and cache: the test's own Redis."""
    return redis_server.url


async def ring(simulator: str) -> str:
    placed = await control(simulator, "POST", "/control/calls", {"from": "5000", "to": "5005"})
    return str(placed["id"])


async def within(seconds: float, pattern: str, desk: DeskSocket) -> None:
    """The socket is sent a frame matching ``pattern`` within ``seconds`` (from now, at most)."""
    try:
        await asyncio.wait_for(desk.until(pattern), max(0.0, seconds))
    except TimeoutError:
        raise AssertionError(f"no frame matched {pattern!r} in time; got {desk.received[-3:]}") from None


async def test_the_worker_and_an_open_desk_socket_ride_out_a_redis_restart(
    stack: Stack, redis_server: RedisServer
) -> None:
    async with desk_tab(stack.desk_url) as http, logged_in_socket(http, stack.desk_url) as desk:
        redis_server.stop()
        # The call rings while Redis is down: the worker sees it, and its push to the desk is lost.
        call_id = await ring(stack.simulator_url)
        await asyncio.sleep(OUTAGE_S)
        answered = redis_server.start()

        # The socket mends itself: a fresh snapshot shows the call, and the live pushes flow again.
        await within(answered + RECOVERY_LIMIT_S - time.monotonic(), card(call_id, "Ringing"), desk)
        await post(http, f"/calls/{call_id}/", operation="Answer")
        await within(answered + RECOVERY_LIMIT_S - time.monotonic(), card(call_id, "Established"), desk)

    assert stack.exited() == {}, stack.tails()
    assert "Exception inside application" not in stack.log("daphne"), stack.tails()


async def test_a_desk_socket_opened_while_redis_is_down_opens_and_gets_pushes_once_redis_answers(
    stack: Stack, redis_server: RedisServer
) -> None:
    async with desk_tab(stack.desk_url) as http:
        # agent1 logs in to the contact center from a first socket, which then closes.
        async with logged_in_socket(http, stack.desk_url):
            pass

        redis_server.stop()
        # Not a failed handshake: the snapshot comes from the database.
        async with http.ws_connect("/ws/desktop/", origin=stack.desk_url) as ws:
            desk = DeskSocket(ws)
            await desk.until(NOT_READY)
            answered = redis_server.start()

            call_id = await ring(stack.simulator_url)
            await within(answered + RECOVERY_LIMIT_S - time.monotonic(), card(call_id, "Ringing"), desk)

    assert stack.exited() == {}, stack.tails()
    assert "Exception inside application" not in stack.log("daphne"), stack.tails()


async def test_a_layer_read_waits_out_a_redis_restart_and_no_dead_connection_is_handed_out_after_it(
    redis_server: RedisServer,
) -> None:
    layer = outages.DeskRedisChannelLayer(hosts=[{"address": redis_server.url, "socket_timeout": None}])
    channels = [await layer.new_channel() for _ in range(4)]
    # Several connections in the pool, idle when Redis goes away.
    await asyncio.gather(*(layer.group_add("desk.agent.1", channel) for channel in channels))
    reading = asyncio.create_task(outages.receive(layer, channels[0]))
    await asyncio.sleep(0.2)

    await asyncio.to_thread(redis_server.stop)
    await asyncio.sleep(0.3)
    assert not reading.done()
    answered = await asyncio.to_thread(redis_server.start)
    await asyncio.wait_for(outages.health_of(layer).back(), RECOVERY_LIMIT_S - (time.monotonic() - answered))

    # Every call succeeds at once (redis-py would hand out each connection from before the restart once
    # more, to fail), and the read that waited gets what is sent now.
    await asyncio.gather(*(layer.group_add("desk.agent.1", channel) for channel in channels))
    await layer.group_send("desk.agent.1", {"type": "desk.push", "html": "<p>back</p>"})
    assert await asyncio.wait_for(reading, 2) == {"type": "desk.push", "html": "<p>back</p>"}
    assert outages.health_of(layer).outages == 1
    await layer.close_pools()


def test_a_worker_told_to_stop_while_redis_is_down_still_drains_and_exits_0(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    with worker_stack(tmp_path, redis_server.url) as workers:
        workers.start_worker("worker")
        redis_server.stop()
        time.sleep(OUTAGE_S)  # its reads fail, and wait for Redis instead of ending the worker
        assert workers.exited() == {}, workers.tails()

        assert workers.kill("worker", signal.SIGTERM) == 0
        assert "Worker stopped" in workers.log("worker")
