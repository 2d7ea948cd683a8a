"""The production shape for real: daphne and a `runworker voice-sessions` process sharing PostgreSQL and
Redis, a standalone `voicesim`, and an agent driving seed 002 over real HTTP and a real WebSocket.

Nothing runs in this process but the test: every component is its own OS process started as the README's
Production section says, so a change that only works on the in-memory layer or SQLite fails here.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from tests.desk import card, control
from tests.stack import PUSH_TIMEOUT_S, Stack, desk_tab, logged_in_socket, seed_002

pytestmark = pytest.mark.multiprocess

# Longer than the Redis layer's 5 s blocking read, which a desk left alone must sit through.
QUIET_SPELL_S = 6.5


SS = shutil.which("ss")


def listen_queue(url: str) -> int:
    """The length of the queue of connections the kernel keeps for the listener of ``url`` (``ss``)."""
    assert SS is not None
    port = urlsplit(url).port
    table = subprocess.run(  # noqa: S603 (ss, with a port of ours)
        [SS, "-H", "-l", "-t", "-n", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    return int(table.split()[2])


@pytest.mark.skipif(SS is None, reason="ss (Debian's iproute2) is not installed")
def test_the_desk_and_the_simulator_each_queue_a_thousand_connections_while_they_accept(stack: Stack) -> None:
    """Twisted's default is 50: when every page of a desk process, or every session of a worker,
    connects at once, what overflows it waits a second or more for the client to try again."""
    kernel_limit = int(Path("/proc/sys/net/core/somaxconn").read_text())

    assert listen_queue(stack.desk_url) == min(1024, kernel_limit)
    assert listen_queue(stack.simulator_url) == min(1024, kernel_limit)


async def test_seed_002_runs_end_to_end_across_daphne_a_worker_postgresql_and_redis(stack: Stack) -> None:
    await control(stack.simulator_url, "PUT", "/control/settings", {"answer_delay_ms": None})
    async with desk_tab(stack.desk_url) as http:
        async with logged_in_socket(http, stack.desk_url) as desk:
            # An agent waits for calls: nothing crosses the layer for longer than its blocking read.
            await asyncio.sleep(QUIET_SPELL_S)
            stack.check()

            call_id, consult_id = await seed_002(stack.simulator_url, http, desk)

        async with http.get("/history/") as response:
            history = await response.text()
    assert response.status == 200
    assert f'data-call-id="{call_id}"' in history and f'data-call-id="{consult_id}"' in history


async def test_a_call_rings_on_the_screen_while_the_database_is_blocked_and_is_saved_once_it_is_free(
    stack: Stack, database_url: str
) -> None:
    """Push first: the switch is the source of truth, so a call's card does not wait for its write."""
    async with desk_tab(stack.desk_url) as http, logged_in_socket(http, stack.desk_url) as desk:
        with (
            psycopg.connect(database_url) as blocker,
            psycopg.connect(database_url, autocommit=True) as reader,
        ):
            # Every write about the agent's calls waits for this row lock (the foreign key).
            blocker.execute("SELECT id FROM calls_agentlogin FOR UPDATE")
            placed = await control(
                stack.simulator_url, "POST", "/control/calls", {"from": "5000", "to": "5005"}
            )
            call_id = placed["id"]
            started = time.monotonic()
            await desk.until(card(call_id, "Ringing"))
            assert time.monotonic() - started < 2
            saved = "SELECT state FROM calls_livecall WHERE call_id = %s"
            assert reader.execute(saved, [call_id]).fetchall() == []
            blocker.rollback()
            deadline = time.monotonic() + PUSH_TIMEOUT_S
            while reader.execute(saved, [call_id]).fetchall() != [("Ringing",)]:
                assert time.monotonic() < deadline, "the call was never saved once the database was free"
                await asyncio.sleep(0.1)
