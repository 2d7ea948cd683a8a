"""The production shape for real: daphne and a `runworker voice-sessions` process sharing PostgreSQL and
Redis, a standalone `voicesim`, and an agent driving seed 002 over real HTTP and a real WebSocket.

Nothing runs in this process but the test: every component is its own OS process started as the README's
Production section says, so a change that only works on the in-memory layer or SQLite fails here.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx
import psycopg
import pytest
import redis
from psycopg import sql

from tests.desk import card, control
from tests.servers import free_port

pytestmark = pytest.mark.multiprocess

ROOT = Path(__file__).resolve().parent.parent
LAYER_DB = 14  # test_runworker uses 15
START_TIMEOUT_S = 20.0
SETUP_TIMEOUT_S = 40.0
PUSH_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
# Longer than the Redis layer's 5 s blocking read, which a desk left alone must sit through.
QUIET_SPELL_S = 6.5
LOG_TAIL_CHARS = 3000


@dataclass
class Stack:
    """The processes of one deployment, each logging to its own file; stopped together."""

    env: dict[str, str]
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    simulator_url: str = ""
    desk_url: str = ""

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, *args], cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        self.processes[name] = process
        return process

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=SETUP_TIMEOUT_S,
        )
        if done.returncode != 0:
            pytest.fail(f"manage.py {args[0]} failed:\n{done.stdout}{done.stderr}\n{self.tails()}")
        return done.stdout

    def wait_for(self, what: str, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            exited = [name for name, process in self.processes.items() if process.poll() is not None]
            if exited:
                pytest.fail(f"{', '.join(exited)} exited while waiting for {what}:\n{self.tails()}")
            if ready():
                return
            time.sleep(0.1)
        pytest.fail(f"{what} within {START_TIMEOUT_S:.0f} s:\n{self.tails()}")

    def assert_running(self) -> None:
        exited = {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}
        assert not exited, f"processes exited: {exited}\n{self.tails()}"

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def tails(self) -> str:
        return "\n".join(
            f"--- {name} (last {LOG_TAIL_CHARS} characters) ---\n{self.log(name)[-LOG_TAIL_CHARS:]}"
            for name in self.processes
        )

    def stop(self) -> None:
        """The desk first, so the worker drains its session against a live simulator; then the simulator."""
        desk = [p for name, p in self.processes.items() if name != "voicesim"]
        for group in (desk, [p for p in self.processes.values() if p not in desk]):
            for process in group:
                if process.poll() is None:
                    process.terminate()
            for process in group:
                try:
                    process.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def database_url(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL database of this test's own, dropped at the end whoever still holds it."""
    name = f"switchboard_mp_{secrets.token_hex(4)}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{postgres_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def layer_url(redis_url: str) -> Iterator[str]:
    """A Redis database index of this test's own, empty before and after."""
    url = f"{redis_url.rsplit('/', 1)[0]}/{LAYER_DB}"
    redis.Redis.from_url(url).flushdb()
    try:
        yield url
    finally:
        redis.Redis.from_url(url).flushdb()


AGENT1 = """
from django.contrib.auth import get_user_model
from calls.models import AgentLogin, VoiceServer
server = VoiceServer.objects.create(name="Simulator", base_url="{simulator}/genesys")
user = get_user_model().objects.create_user("agent1", password="agent1")
AgentLogin.objects.create(user=user, server=server, username="agent1", password="agent1", dn="5005")
"""


@pytest.fixture
def stack(database_url: str, layer_url: str, tmp_path: Path) -> Iterator[Stack]:
    """voicesim, a migrated database with agent1 on it, daphne and the worker; all stopped at the end.

    Their logs are printed at teardown, which pytest shows only when the test failed.
    """
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": layer_url,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "SIMULATOR_ENABLED": "0",
        # Plain HTTP on loopback: cookies marked Secure would never come back.
        "SECURE_COOKIES": "0",
        "VOICE_SESSION_MAX_BACKOFF_SECONDS": "1",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    running = Stack(env=env, logs=tmp_path)
    try:
        sim_port, desk_port = free_port(), free_port()
        running.simulator_url = f"http://127.0.0.1:{sim_port}"
        running.desk_url = f"http://127.0.0.1:{desk_port}"
        simulator = ["voicesim", "--host", "127.0.0.1", "--port", str(sim_port), "--answer-delay-ms", "0"]
        running.start("voicesim", "manage.py", *simulator)
        running.manage("migrate", "--verbosity", "0")
        running.manage("shell", "-c", AGENT1.format(simulator=running.simulator_url))
        running.wait_for("voicesim to answer", lambda: answers(f"{running.simulator_url}/control/state"))
        running.start(
            "daphne", "-m", "daphne", "-b", "127.0.0.1", "-p", str(desk_port), "desktop.asgi:application"
        )
        running.start("worker", "manage.py", "runworker", "voice-sessions")
        running.wait_for("the desk to be healthy", lambda: answers(f"{running.desk_url}/healthz"))
        running.wait_for("the worker to serve", lambda: "Serving channels" in running.log("worker"))
        yield running
    finally:
        running.stop()
        print(running.tails())


class DeskSocket:
    """The desktop's WebSocket, with every frame it has been sent."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket
        self.received: list[str] = []

    async def until(self, pattern: str) -> str:
        """The first frame so far, or to come, matching ``pattern``: pushes of one step may come in any
        order, and each pattern of the scenario names a state only that step produces."""
        for html in self.received:
            if re.search(pattern, html, re.S):
                return html
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PUSH_TIMEOUT_S
        while (remaining := deadline - loop.time()) > 0:
            try:
                message = await self.socket.receive(timeout=remaining)
            except TimeoutError:
                break
            if message.type != aiohttp.WSMsgType.TEXT:
                raise AssertionError(f"the socket ended ({message.type.name}) waiting for {pattern!r}")
            self.received.append(message.data)
            if re.search(pattern, message.data, re.S):
                return message.data
        raise AssertionError(
            f"no push matched {pattern!r} in {PUSH_TIMEOUT_S:.0f} s; got {self.received[-5:]}"
        )


def deleted(call_id: str) -> str:
    return rf'<div id="call-{call_id}" hx-swap-oob="delete">'


async def log_in(http: aiohttp.ClientSession, username: str, password: str) -> None:
    async with http.get("/accounts/login/") as page:
        form = await page.text()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
    assert token, form
    body = {"username": username, "password": password, "csrfmiddlewaretoken": token.group(1)}
    async with http.post("/accounts/login/", data=body, allow_redirects=False) as response:
        assert response.status == 302, await response.text()


async def post(http: aiohttp.ClientSession, path: str, **data: str) -> None:
    """What an htmx button does: a form POST with the CSRF token in a header; the desk answers 204."""
    csrf = next(cookie.value for cookie in http.cookie_jar if cookie.key == "csrftoken")
    async with http.post(path, data=data, headers={"X-CSRFToken": csrf}) as response:
        assert response.status == 204, f"{path} {data}: {response.status} {await response.text()}"


async def test_seed_002_runs_end_to_end_across_daphne_a_worker_postgresql_and_redis(stack: Stack) -> None:
    await control(stack.simulator_url, "PUT", "/control/settings", {"answer_delay_ms": None})
    jar = aiohttp.CookieJar(unsafe=True)  # the desk is an IP address, which the default jar refuses
    timeout = aiohttp.ClientTimeout(total=PUSH_TIMEOUT_S)
    async with aiohttp.ClientSession(base_url=stack.desk_url, cookie_jar=jar, timeout=timeout) as http:
        await log_in(http, "agent1", "agent1")
        ws_timeout = aiohttp.ClientWSTimeout(ws_close=STOP_TIMEOUT_S)
        async with http.ws_connect("/ws/desktop/", origin=stack.desk_url, timeout=ws_timeout) as ws:
            desk = DeskSocket(ws)
            await desk.until(r'id="connection"[^>]*data-status="connected"')
            await post(http, "/agent/", operation="Login")
            await desk.until(r'id="agent-state"[^>]*data-state="NotReady"')
            # An agent waits for calls: nothing crosses the layer for longer than its blocking read.
            await asyncio.sleep(QUIET_SPELL_S)
            stack.assert_running()

            placed = await control(
                stack.simulator_url, "POST", "/control/calls", {"from": "5000", "to": "5005"}
            )
            call_id = placed["id"]
            ringing = await desk.until(card(call_id, "Ringing"))
            assert 'hx-swap-oob="beforeend:#calls"' in ringing and 'data-operation="Answer"' in ringing

            await post(http, f"/calls/{call_id}/", operation="Answer")
            await desk.until(card(call_id, "Established"))

            await post(http, f"/calls/{call_id}/", operation="InitiateTransfer", destination="5001")
            await desk.until(card(call_id, "Held"))
            consult = await desk.until(r'<article id="call-[^"]+"[^>]*data-state="Dialing"')
            found = re.search(r'<article id="call-([^"]+)"', consult)
            assert found
            consult_id = found.group(1)
            assert f'data-parent="{call_id}"' in consult and 'data-operation="CompleteTransfer"' in consult

            await post(http, f"/calls/{consult_id}/", operation="CompleteTransfer")
            await desk.until(deleted(call_id))
            await desk.until(deleted(consult_id))

        async with http.get("/history/") as response:
            history = await response.text()
    assert response.status == 200
    assert f'data-call-id="{call_id}"' in history and f'data-call-id="{consult_id}"' in history


async def test_a_call_rings_on_the_screen_while_the_database_is_blocked_and_is_saved_once_it_is_free(
    stack: Stack, database_url: str
) -> None:
    """Push first: the switch is the source of truth, so a call's card does not wait for its write."""
    jar = aiohttp.CookieJar(unsafe=True)
    timeout = aiohttp.ClientTimeout(total=PUSH_TIMEOUT_S)
    async with aiohttp.ClientSession(base_url=stack.desk_url, cookie_jar=jar, timeout=timeout) as http:
        await log_in(http, "agent1", "agent1")
        ws_timeout = aiohttp.ClientWSTimeout(ws_close=STOP_TIMEOUT_S)
        async with http.ws_connect("/ws/desktop/", origin=stack.desk_url, timeout=ws_timeout) as ws:
            desk = DeskSocket(ws)
            await desk.until(r'id="connection"[^>]*data-status="connected"')
            await post(http, "/agent/", operation="Login")
            await desk.until(r'id="agent-state"[^>]*data-state="NotReady"')
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
