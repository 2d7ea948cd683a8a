"""`manage.py runworker voice-sessions` as operators run it: it reopens sessions at start and drains
on SIGTERM or SIGINT, handing every lease back before it exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.core.management import get_commands, load_command_class

from calls.management.commands.runworker import Command as RunworkerCommand
from calls.management.commands.runworker import cancel_until_done

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0


@pytest.fixture
def worker_env(redis_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """A migrated SQLite file and a Redis database of the tests' own, for processes to share."""
    layer_url = redis_url.rsplit("/", 1)[0] + "/15"
    redis.Redis.from_url(layer_url).flushdb()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'worker.sqlite3'}", "REDIS_URL": layer_url}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    manage(env, "migrate", "--verbosity", "0")
    yield env
    redis.Redis.from_url(layer_url).flushdb()


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def rows(env: dict[str, str], sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(env["DATABASE_URL"].removeprefix("sqlite:///"), timeout=10) as db:
        return db.execute(sql).fetchall()


def wait_for(condition: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout:.0f} s:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)


@pytest.fixture
def start_worker(worker_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[[], tuple[Any, Path]]]:
    """Starts `runworker voice-sessions` and waits until it serves; always killed at the end."""
    processes: list[subprocess.Popen[bytes]] = []

    def start() -> tuple[subprocess.Popen[bytes], Path]:
        log = tmp_path / f"worker{len(processes)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "manage.py", "runworker", "voice-sessions"],
                cwd=ROOT,
                env=worker_env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        processes.append(process)
        wait_for(
            lambda: "Serving channels voice-sessions" in log.read_text() or process.poll() is not None,
            START_TIMEOUT_S,
            "the worker did not start",
            log,
        )
        assert process.poll() is None, log.read_text()
        return process, log

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def stop(process: subprocess.Popen[bytes], signum: int, log: Path) -> int:
    process.send_signal(signum)
    try:
        return process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(
            f"the worker did not stop within {STOP_TIMEOUT_S:.0f} s of the signal:\n{log.read_text()}"
        )


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
def test_an_idle_worker_stops_cleanly_on_a_signal(start_worker: Any, signum: int) -> None:
    process, log = start_worker()

    assert stop(process, signum, log) == 0
    assert "Worker stopped" in log.read_text()


@pytest.mark.multiprocess
def test_an_idle_worker_keeps_serving_past_the_redis_read_timeout(start_worker: Any) -> None:
    # The layer's blocking read waits 5 s on the server; a client-side socket timeout of the same length
    # (redis-py 8's default) would fail it and end the worker.
    process, log = start_worker()

    time.sleep(7)

    assert process.poll() is None, log.read_text()
    assert stop(process, signal.SIGTERM, log) == 0


@pytest.mark.multiprocess
def test_a_worker_reopens_wanted_sessions_at_start_and_hands_their_leases_back_on_sigterm(
    start_worker: Any, worker_env: dict[str, str], simulator: str
) -> None:
    # A session that should run, left by a worker that is gone: its lease has expired.
    manage(
        worker_env,
        "shell",
        "-c",
        "from django.contrib.auth.models import User; from calls.models import AgentLogin, VoiceServer; "
        f"server = VoiceServer.objects.create(name='sim', base_url='{simulator}/genesys'); "
        "user = User.objects.create_user('agent1'); "
        "AgentLogin.objects.create(user=user, server=server, username='agent1', password='agent1', "
        "dn='5005', wanted=True, worker='gone:1:abc')",
    )
    process, log = start_worker()

    wait_for(
        lambda: rows(worker_env, "SELECT connection FROM calls_agentlogin") == [("connected",)],
        15,
        "the wanted session did not connect",
        log,
    )
    (holder,) = rows(worker_env, "SELECT worker FROM calls_agentlogin")[0]
    assert holder.split(":")[1] == str(process.pid)

    assert stop(process, signal.SIGTERM, log) == 0
    assert rows(worker_env, "SELECT worker, lease_until FROM calls_agentlogin") == [("", None)]
