"""The desk in its production shape for the multi-process tests: daphne, ``runworker voice-sessions`` and a
standalone ``voicesim``, each its own OS process (``deploy/processes.py`` starts and stops them), and
what a test does against them over real HTTP and a real WebSocket: sign in, press a button, read the
pushes.

Fixtures built on these (``layer_url``, ``stack``) are in ``tests/conftest.py``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import aiohttp
import pytest

from deploy.processes import WORKER, Processes, answers, daphne, desk_env, flush_redis, free_port, voicesim
from tests.desk import card, control

START_TIMEOUT_S = 30.0
PUSH_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
CONNECTED = r'id="connection"[^>]*data-status="connected"'
NOT_READY = r'id="agent-state"[^>]*data-state="NotReady"'

# agent1 on the stack's simulator (run by `manage.py shell`).
AGENT1 = """
from django.contrib.auth import get_user_model
from calls.models import AgentLogin, VoiceServer
server = VoiceServer.objects.create(name="Simulator", base_url="{simulator}/genesys")
user = get_user_model().objects.create_user("agent1", password="agent1")
AgentLogin.objects.create(user=user, server=server, username="agent1", password="agent1", dn="5005")
"""


class Stack(Processes):
    """Processes a test started, logging into its folder; a process that ends unasked, a wait that runs
    out or a failed management command fails the test, with the processes' log tails."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        super().__init__(env, logs, error=pytest.fail.Exception, stop_timeout=STOP_TIMEOUT_S)
        self.simulator_url = ""
        self.desk_url = ""

    def start_worker(self, name: str) -> None:
        """Starts ``runworker voice-sessions`` as ``name``; returns once it serves its channel."""
        self.spawn(name, WORKER)
        self.wait_for(f"{name} to serve", lambda: self.serving(name), START_TIMEOUT_S)


@contextmanager
def redis_index(redis_url: str, index: int) -> Iterator[str]:
    """Database ``index`` of the Redis at ``redis_url``, empty before and after."""
    url = f"{redis_url.rsplit('/', 1)[0]}/{index}"
    flush_redis(url)
    try:
        yield url
    finally:
        flush_redis(url)


@contextmanager
def production_stack(database_url: str, layer_url: str, logs: Path) -> Iterator[Stack]:
    """voicesim, the migrated database with agent1 on it, daphne and the worker, on free ports; all
    stopped at the end. Their logs are printed at the end, which pytest shows only when a test failed."""
    env = desk_env(
        database_url,
        layer_url,
        {
            "SECURE_COOKIES": "0",  # plain HTTP on loopback: cookies marked Secure would never come back
            "VOICE_SESSION_MAX_BACKOFF_SECONDS": "1",
        },
    )
    running = Stack(env, logs)
    try:
        simulator_port, desk_port = free_port(), free_port()
        running.simulator_url = f"http://127.0.0.1:{simulator_port}"
        running.desk_url = f"http://127.0.0.1:{desk_port}"
        running.spawn("voicesim", voicesim(simulator_port, answer_delay_ms=0))
        running.manage("migrate", "--verbosity", "0")
        running.manage("shell", "-c", AGENT1.format(simulator=running.simulator_url))
        simulator = f"{running.simulator_url}/control/state"
        running.wait_for("voicesim to answer", lambda: answers(simulator), START_TIMEOUT_S)
        running.spawn("daphne", daphne(desk_port))
        running.spawn("worker", WORKER)
        desk = f"{running.desk_url}/healthz"
        running.wait_for("the desk to be healthy", lambda: answers(desk), START_TIMEOUT_S)
        running.wait_for("the worker to serve", lambda: running.serving("worker"), START_TIMEOUT_S)
        yield running
    finally:
        running.end()
        print(running.tails())


@contextmanager
def worker_stack(logs: Path, layer_url: str) -> Iterator[Stack]:
    """A migrated SQLite file in ``logs`` and the Redis ``layer_url``, for session workers to share
    (``start_worker``); every worker ended at the end."""
    running = Stack(desk_env(f"sqlite:///{logs / 'worker.sqlite3'}", layer_url), logs)
    running.manage("migrate", "--verbosity", "0")
    try:
        yield running
    finally:
        running.end()


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
            frame = str(message.data)
            self.received.append(frame)
            if re.search(pattern, frame, re.S):
                return frame
        raise AssertionError(
            f"no push matched {pattern!r} in {PUSH_TIMEOUT_S:.0f} s; got {self.received[-5:]}"
        )


def deleted(call_id: str) -> str:
    """The push that takes a call's card off the page."""
    return rf'<div id="call-{call_id}" hx-swap-oob="delete">'


async def log_in(http: aiohttp.ClientSession, username: str, password: str) -> None:
    """Signs in through the login form, as a browser does."""
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


@asynccontextmanager
async def desk_tab(desk_url: str) -> AsyncIterator[aiohttp.ClientSession]:
    """agent1 signed in to the desk at ``desk_url`` over plain HTTP, as a browser tab is."""
    jar = aiohttp.CookieJar(unsafe=True)  # the desk is an IP address, which the default jar refuses
    timeout = aiohttp.ClientTimeout(total=PUSH_TIMEOUT_S)
    async with aiohttp.ClientSession(base_url=desk_url, cookie_jar=jar, timeout=timeout) as http:
        await log_in(http, "agent1", "agent1")
        yield http


@asynccontextmanager
async def logged_in_socket(http: aiohttp.ClientSession, origin: str) -> AsyncIterator[DeskSocket]:
    """The desk's WebSocket of a signed-in tab, connected, once its agent has pressed Login and the
    contact center has it Not ready."""
    timeout = aiohttp.ClientWSTimeout(ws_close=STOP_TIMEOUT_S)
    async with http.ws_connect("/ws/desktop/", origin=origin, timeout=timeout) as ws:
        desk = DeskSocket(ws)
        await desk.until(CONNECTED)
        await post(http, "/agent/", operation="Login")
        await desk.until(NOT_READY)
        yield desk


async def seed_002(simulator_url: str, http: aiohttp.ClientSession, desk: DeskSocket) -> tuple[str, str]:
    """Seed 002 at agent1's desk: a call from 5000 rings, agent1 answers, consults 5001 and completes
    the transfer. The call's id and the consultation's, once both cards have left the page."""
    placed = await control(simulator_url, "POST", "/control/calls", {"from": "5000", "to": "5005"})
    call_id = str(placed["id"])
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
    return call_id, consult_id
