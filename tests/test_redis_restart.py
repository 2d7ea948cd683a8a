"""A Redis restart. The desk in its production shape (``tests/test_multiprocess.py``'s daphne, ``runworker
voice-sessions``, voicesim and PostgreSQL, each its own process) on a ``redis-server`` of the test's own, on
a free port, which each test stops and starts again: empty, as a restarted Redis is (no groups, no queued
messages).

Nothing may end for it: the worker's Voice API sessions need the Voice API and the database, not Redis,
and an open desk socket waits the outage out. Within 2 s of Redis answering again the socket is in its
groups again and has been sent what changed while pushes could not reach it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
import redis
from channels_redis.core import RedisChannelLayer  # type: ignore[import-untyped]

from calls import layer as outages
from tests import test_multiprocess as production
from tests.calls import test_runworker as workers
from tests.desk import card, control
from tests.servers import free_port, stop_process

REDIS_SERVER = shutil.which("redis-server")
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
CONNECTED = r'id="connection"[^>]*data-status="connected"'
NOT_READY = r'id="agent-state"[^>]*data-state="NotReady"'

# The production shape of tests/test_multiprocess.py, its layer on this module's own Redis (``layer_url``).
database_url = production.database_url
stack = production.stack


class RedisServer:
    """A ``redis-server`` on a free loopback port, keeping nothing on disk: each start is an empty Redis."""

    def __init__(self, logs: Path) -> None:
        self.port = free_port()
        self.logs = logs
        self.starts = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> float:
        """Starts Redis and returns when (``time.monotonic()``) it answered a ping."""
        assert REDIS_SERVER is not None
        self.starts += 1
        log = self.logs / f"redis.{self.starts}.log"
        command = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [*command, "--appendonly", "no"], stdout=out, stderr=subprocess.STDOUT
            )
        client = redis.Redis(port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5)
        deadline = time.monotonic() + REDIS_START_TIMEOUT_S
        while True:
            try:
                client.ping()
                client.close()
                return time.monotonic()
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    pytest.fail(f"redis-server did not answer:\n{log.read_text(errors='replace')}")
                time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None


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


@asynccontextmanager
async def desk_tab(desk_url: str) -> AsyncIterator[aiohttp.ClientSession]:
    """agent1 signed in to the desk, as a browser tab is."""
    jar = aiohttp.CookieJar(unsafe=True)  # the desk is an IP address, which the default jar refuses
    timeout = aiohttp.ClientTimeout(total=production.PUSH_TIMEOUT_S)
    async with aiohttp.ClientSession(base_url=desk_url, cookie_jar=jar, timeout=timeout) as http:
        await production.log_in(http, "agent1", "agent1")
        yield http


async def ring(simulator: str) -> str:
    placed = await control(simulator, "POST", "/control/calls", {"from": "5000", "to": "5005"})
    return str(placed["id"])


async def within(seconds: float, pattern: str, desk: production.DeskSocket) -> None:
    """The socket is sent a frame matching ``pattern`` within ``seconds`` (from now, at most)."""
    try:
        await asyncio.wait_for(desk.until(pattern), max(0.0, seconds))
    except TimeoutError:
        raise AssertionError(f"no frame matched {pattern!r} in time; got {desk.received[-3:]}") from None


async def test_the_worker_and_an_open_desk_socket_ride_out_a_redis_restart(
    stack: production.Stack, redis_server: RedisServer
) -> None:
    worker = stack.processes["worker"]
    async with desk_tab(stack.desk_url) as http, http.ws_connect("/ws/desktop/", origin=stack.desk_url) as ws:
        desk = production.DeskSocket(ws)
        await desk.until(CONNECTED)
        await production.post(http, "/agent/", operation="Login")
        await desk.until(NOT_READY)

        redis_server.stop()
        # The call rings while Redis is down: the worker sees it, and its push to the desk is lost.
        call_id = await ring(stack.simulator_url)
        await asyncio.sleep(OUTAGE_S)
        answered = redis_server.start()

        # The socket mends itself: a fresh snapshot shows the call, and the live pushes flow again.
        await within(answered + RECOVERY_LIMIT_S - time.monotonic(), card(call_id, "Ringing"), desk)
        await production.post(http, f"/calls/{call_id}/", operation="Answer")
        await within(answered + RECOVERY_LIMIT_S - time.monotonic(), card(call_id, "Established"), desk)

    assert worker.poll() is None, stack.tails()
    assert "Exception inside application" not in stack.log("daphne"), stack.tails()


async def test_a_desk_socket_opened_while_redis_is_down_opens_and_gets_pushes_once_redis_answers(
    stack: production.Stack, redis_server: RedisServer
) -> None:
    async with desk_tab(stack.desk_url) as http:
        async with http.ws_connect("/ws/desktop/", origin=stack.desk_url) as ws:
            first = production.DeskSocket(ws)
            await first.until(CONNECTED)
            await production.post(http, "/agent/", operation="Login")
            await first.until(NOT_READY)

        redis_server.stop()
        # Not a failed handshake: the snapshot comes from the database.
        async with http.ws_connect("/ws/desktop/", origin=stack.desk_url) as ws:
            desk = production.DeskSocket(ws)
            await desk.until(NOT_READY)
            answered = redis_server.start()

            call_id = await ring(stack.simulator_url)
            await within(answered + RECOVERY_LIMIT_S - time.monotonic(), card(call_id, "Ringing"), desk)

    assert stack.processes["worker"].poll() is None, stack.tails()
    assert "Exception inside application" not in stack.log("daphne"), stack.tails()


async def test_a_layer_read_waits_out_a_redis_restart_and_no_dead_connection_is_handed_out_after_it(
    redis_server: RedisServer,
) -> None:
    layer = RedisChannelLayer(hosts=[{"address": redis_server.url, "socket_timeout": None}])
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
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'worker.sqlite3'}",
        "REDIS_URL": redis_server.url,
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    workers.manage(env, "migrate", "--verbosity", "0")
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runworker", "voice-sessions"],
            cwd=production.ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        workers.wait_for(
            lambda: "Serving channels" in log.read_text(),
            workers.START_TIMEOUT_S,
            "the worker did not serve",
            log,
        )
        redis_server.stop()
        time.sleep(OUTAGE_S)  # its reads fail, and wait for Redis instead of ending the worker
        assert process.poll() is None, log.read_text()

        assert workers.stop(process, signal.SIGTERM, log) == 0
        assert "Worker stopped" in log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
