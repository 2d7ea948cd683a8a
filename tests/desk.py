"""What tests use to play an agent at the desk: desk users with their logins on a voice server, the
session worker on the test's own loop, desk tabs over the WebSocket, and the simulator's view.

Fixtures built on these (``server``, ``agent1``, ``worker`` ...) are in ``tests/conftest.py``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from importlib import import_module
from typing import Any, TypeVar

import httpx
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import ApplicationCommunicator, WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.models import AbstractBaseUser, Permission
from django.contrib.sessions.backends.base import SessionBase
from django.test import AsyncClient

from calls import actions
from calls.models import AgentLogin, CallRecord, LiveCall, Team, VoiceServer
from calls.worker import CHANNEL, VoiceSessionsConsumer
from desktop.consumers import DesktopConsumer

T = TypeVar("T")

# Each test agent's DN on the simulator's seeded directory.
DNS = {
    "agent1": "5005",
    "agent2": "5001",
    "agent4": "15000",
    "agent101": "6101",
    "agent102": "6102",
    "lead1": "5010",
    "lead101": "6103",
}


def make_team(name: str, leads: list[AgentLogin], members: list[AgentLogin]) -> Team:
    """A team of ``members`` led by the users of ``leads``, each given the permission to lead teams."""
    permission = Permission.objects.get(content_type__app_label="calls", codename="supervise_team")
    team = Team.objects.create(name=name)
    team.members.set(members)
    for lead in leads:
        lead.user.user_permissions.add(permission)
    team.leads.set([lead.user for lead in leads])
    return team


def make_login(
    server: VoiceServer, name: str, *, username: str | None = None, password: str | None = None
) -> AgentLogin:
    """The desk user ``name`` (password ``name``) and its login on ``server``, whose Voice API
    credentials default to the same name: a Huawei agent passes its work number and password."""
    user = get_user_model().objects.create_user(name, password=name)
    username = name if username is None else username
    password = name if password is None else password
    return AgentLogin.objects.create(
        user=user, server=server, username=username, password=password, dn=DNS[name]
    )


class RunningWorker:
    """The voice-sessions worker as ``runworker`` runs it, on this test's event loop: one consumer
    instance fed from the layer's ``voice-sessions`` channel, started with a reconcile."""

    def __init__(self) -> None:
        self.communicator: ApplicationCommunicator | None = None
        self.pump: asyncio.Task[None] | None = None

    async def start(self) -> None:
        layer = get_channel_layer()
        self.communicator = ApplicationCommunicator(
            VoiceSessionsConsumer.as_asgi(), {"type": "channel", "channel": CHANNEL}
        )
        await self.communicator.send_input({"type": "session.reconcile"})
        self.pump = asyncio.create_task(self._forward(layer))

    async def _forward(self, layer: Any) -> None:
        while True:
            message = await layer.receive(CHANNEL)
            assert self.communicator is not None
            await self.communicator.send_input(message)

    async def stop(self) -> None:
        """What SIGTERM does: the consumer drains its sessions and hands their leases back."""
        assert self.communicator is not None and self.pump is not None
        self.pump.cancel()
        self.communicator.future.cancel()
        await asyncio.gather(self.pump, self.communicator.future, return_exceptions=True)
        self.communicator = None


@sync_to_async
def _signed_in_session(user: AbstractBaseUser) -> SessionBase:
    """A desk session of ``user``, as signing in makes one (without the sign-in's audit row)."""
    session: SessionBase = import_module(settings.SESSION_ENGINE).SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return session


class Desk:
    """One desktop tab: a WebSocket of the desk, with what it has been sent. A team lead's board
    opens it at ``/ws/desktop/?team=<id>``."""

    def __init__(self, login: AgentLogin, path: str = "/ws/desktop/") -> None:
        self.login = login
        self.user = login.user
        self.socket = WebsocketCommunicator(DesktopConsumer.as_asgi(), path)
        self.socket.scope["user"] = login.user
        self.received: list[str] = []

    async def open(self) -> str:
        # A desk socket belongs to a signed-in desk session, as the browser's does.
        self.socket.scope["session"] = await _signed_in_session(self.user)
        connected, _ = await self.socket.connect()
        assert connected
        snapshot = await self.socket.receive_from(timeout=5)
        self.received.append(snapshot)
        return snapshot

    async def until(self, pattern: str, wait: float = 10) -> str:
        """The next push matching ``pattern`` (a regular expression), skipping the others."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no push matched {pattern!r}; got {self.received[-5:]}")
            try:
                html = await self.socket.receive_from(timeout=remaining)
            except TimeoutError:
                raise AssertionError(f"no push matched {pattern!r}; got {self.received[-5:]}") from None
            self.received.append(html)
            if re.search(pattern, html, re.S):
                return html

    async def close(self) -> None:
        await self.socket.disconnect()


async def control(simulator: str, method: str, path: str, body: Any = None) -> Any:
    """One request to the simulator's control API (the outside world); its JSON answer."""
    async with httpx.AsyncClient(base_url=simulator, timeout=10) as http:
        response = await http.request(method, path, json=body)
    assert response.status_code < 300, response.text
    return response.json()


async def ready_desk(login: AgentLogin) -> Desk:
    """A connected desk tab of ``login``'s agent, logged in to the contact center (NotReady)."""
    desk = Desk(login)
    await desk.open()
    await desk.until(r'id="connection"[^>]*data-status="connected"')
    await actions.agent_operation(login.user, "Login")
    await desk.until(r'id="agent-state"[^>]*data-state="NotReady"')
    return desk


async def answered_call(simulator: str, desk: Desk, origin: str = "5000") -> str:
    """A call from ``origin`` rings the desk's agent, who answers it; returns its id."""
    placed = await control(simulator, "POST", "/control/calls", {"from": origin, "to": desk.login.dn})
    call_id = placed["id"]
    await desk.until(card(call_id, "Ringing"))
    await actions.call_operation(desk.user, call_id, "Answer", {})
    await desk.until(card(call_id, "Established"))
    return call_id


def card(call_id: str, state: str) -> str:
    """A pattern for the call's card in ``state``, as the desk renders or pushes it."""
    return rf'<article id="call-{call_id}"[^>]*data-state="{state}"'


@sync_to_async
def live_calls(login: AgentLogin) -> dict[str, tuple[str, str]]:
    """The calls saved for ``login``: call id -> (state, parent call id)."""
    return {c.call_id: (c.state, c.parent_call_id) for c in LiveCall.objects.filter(login=login)}


async def eventually(check: Callable[[], Awaitable[bool]], wait: float = 5.0) -> None:
    """Until ``check()`` holds; fail the test if it does not within ``wait`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while not await check():
        assert loop.time() < deadline, "the condition never held"
        await asyncio.sleep(0.05)


async def saved(read: Callable[[], Awaitable[T]], expected: T, wait: float = 5.0) -> None:
    """Until ``read()`` gives ``expected``: the worker pushes first and saves behind the push, so
    the database catches up a moment after the page."""
    deadline = asyncio.get_running_loop().time() + wait
    while (found := await read()) != expected:
        assert asyncio.get_running_loop().time() < deadline, f"saved {found!r}, not {expected!r}"
        await asyncio.sleep(0.02)


@sync_to_async
def records(login: AgentLogin) -> list[CallRecord]:
    """``login``'s call history, oldest first."""
    return list(CallRecord.objects.filter(login=login).order_by("started_at", "id"))


async def server_calls(simulator: str, login: str) -> dict[str, tuple[str, str]]:
    """The Genesys agent ``login``'s calls as its Voice API reports them: call id -> (state, parent)."""
    async with httpx.AsyncClient(base_url=f"{simulator}/genesys/api/v2", auth=(login, login)) as http:
        calls = (await http.get("/me/calls", params={"fields": "*"})).json()["calls"]
    return {
        c["id"]: (c["state"], c.get("parentCallUri", "").rsplit("/", 1)[-1] if c.get("parentCallUri") else "")
        for c in calls
    }


async def switch_calls(simulator: str) -> dict[str, dict[str, str]]:
    """Every call on the switch, as the simulator itself sees it: call id -> {number: leg state}."""
    state = await control(simulator, "GET", "/control/state")
    return {c["id"]: {leg["number"]: leg["state"] for leg in c["parties"]} for c in state["calls"]}


async def desk_client(user: AbstractBaseUser, **defaults: Any) -> AsyncClient:
    """The desk over HTTP (the ASGI handler, every middleware) as a signed-in user."""
    client = AsyncClient(**defaults)
    await client.aforce_login(user)
    return client
