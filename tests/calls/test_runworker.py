"""`manage.py runworker voice-sessions` as operators run it: it reopens sessions at start and drains
on SIGTERM or SIGINT, handing every lease back before it exits 0."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import get_commands, load_command_class

from calls.management.commands.runworker import Command as RunworkerCommand
from calls.management.commands.runworker import cancel_until_done
from tests.stack import Stack, redis_index, worker_stack

WORKER_REDIS_INDEX = 15  # the multi-process tests' stack uses 14


@pytest.fixture
def workers(redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    """A migrated SQLite file and a Redis database of the tests' own, for worker processes to share;
    every worker stopped at the end."""
    with redis_index(redis_url, WORKER_REDIS_INDEX) as layer_url, worker_stack(tmp_path, layer_url) as stack:
        yield stack


def rows(workers: Stack, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(workers.env["DATABASE_URL"].removeprefix("sqlite:///"), timeout=10) as db:
        return db.execute(sql).fetchall()


def test_our_runworker_replaces_the_one_of_channels() -> None:
    assert get_commands()["runworker"] == "calls"
    assert isinstance(load_command_class("calls", "runworker"), RunworkerCommand)


async def test_stopping_cancels_again_a_listener_that_swallowed_the_first_cancellation() -> None:
    async def stubborn() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            pass  # as a Redis client's blocking read sometimes does
        await asyncio.sleep(60)

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)

    assert await asyncio.wait_for(cancel_until_done([task]), timeout=2) is None
    assert task.cancelled()


async def test_stopping_reports_how_a_listener_failed() -> None:
    async def broken() -> None:
        raise ConnectionError("layer gone")

    task = asyncio.create_task(broken())
    await asyncio.sleep(0)

    failure = await cancel_until_done([task])

    assert isinstance(failure, ConnectionError)


@pytest.mark.multiprocess
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_an_idle_worker_stops_cleanly_on_a_signal(workers: Stack, signum: int) -> None:
    workers.start_worker("worker")

    assert workers.kill("worker", signum) == 0
    assert "Worker stopped" in workers.log("worker")


@pytest.mark.multiprocess
def test_an_idle_worker_keeps_serving_past_the_redis_read_timeout(workers: Stack) -> None:
    # The layer's blocking read waits 5 s on the server; a client-side socket timeout of the same length
    # (redis-py 8's default) would fail it and end the worker.
    workers.start_worker("worker")

    time.sleep(7)

    assert workers.exited() == {}, workers.tails()
    assert workers.kill("worker", signal.SIGTERM) == 0


@pytest.mark.multiprocess
def test_a_worker_reopens_wanted_sessions_at_start_and_hands_their_leases_back_on_sigterm(
    workers: Stack, simulator: str
) -> None:
    # A session that should run, left by a worker that is gone: its lease has expired.
    workers.manage(
        "shell",
        "-c",
        "from django.contrib.auth.models import User; from calls.models import AgentLogin, VoiceServer; "
        f"server = VoiceServer.objects.create(name='sim', base_url='{simulator}/genesys'); "
        "user = User.objects.create_user('agent1'); "
        "AgentLogin.objects.create(user=user, server=server, username='agent1', password='agent1', "
        "dn='5005', wanted=True, worker='gone:1:abc')",
    )
    workers.start_worker("worker")

    workers.wait_for(
        "the wanted session to connect",
        lambda: rows(workers, "SELECT connection FROM calls_agentlogin") == [("connected",)],
        15,
    )
    (holder,) = rows(workers, "SELECT worker FROM calls_agentlogin")[0]
    assert holder.split(":")[1] == str(workers.pid("worker"))

    assert workers.kill("worker", signal.SIGTERM) == 0
    assert rows(workers, "SELECT worker, lease_until FROM calls_agentlogin") == [("", None)]
