"""The desktop's WebSocket: a snapshot on connect, then every push for this agent.

Authenticated by the session cookie and origin-checked in ``asgi.py``; a socket joins only its
own user's group. Connecting also asks the session worker to make sure the agent's Voice API
session runs (idempotent), so a page opened after a worker restart brings its session back.

A team lead's board opens the same socket naming its team (``/ws/desktop/?team=<id>``): the socket
is refused (4403) unless the user leads that team, and otherwise also joins the lead's group of
that board (``calls.board.board_group``) and gets the board's snapshot; it is closed should the
user stop leading the team.

The sockets' database reads run on the pool of database threads (``calls.persist.in_parallel``),
not on the one thread Channels gives every consumer of the process: a thousand tabs that connect
at once would queue there. An open tab's periodic check (its desk session still lives, its owner hears
it is open, its groups are joined again) is done for many tabs at once by ``desktop.tabs``.

A Redis outage closes no socket: reads from the layer wait until Redis answers again, a socket opened
meanwhile gets its snapshot from the database, and once Redis is back (empty: no groups, no queued
pushes) every socket joins its groups again and is sent a fresh snapshot, within a fraction of a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncWebsocketConsumer

from calls import audit, board, fragments
from calls.db import DirectDispatch
from calls.layer import LAYER_ERRORS, MAX_RECEIVE_PAUSE_S, health_of, join
from calls.layer import receive as receive_through_outages
from calls.models import AgentLogin
from calls.persist import in_parallel
from calls.services import group_name, session_group
from calls.worker import desk_tab, request_sessions
from desktop.tabs import SESSION_ENDED, keeper, leads_of

log = logging.getLogger("switchboard.desktop")


@in_parallel
def _login_id(user_id: int) -> int | None:
    """The user's enabled agent login, if any."""
    return AgentLogin.objects.filter(user_id=user_id, enabled=True).values_list("pk", flat=True).first()


@in_parallel
def _snapshot(login_id: int) -> str:
    return fragments.snapshot(AgentLogin.objects.select_related("user").get(pk=login_id))


def _board_team(scope: dict[str, Any]) -> int | None:
    """The team whose board the socket is for (``?team=<id>``): 0 for what cannot name a team,
    ``None`` for an agent's desk."""
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("team")
    if not values:
        return None
    value = values[0]
    return int(value) if value.isascii() and value.isdigit() and 0 < int(value) < 2**63 else 0


@in_parallel
def _leads(user_id: int, team_id: int) -> bool:
    return user_id in leads_of({user_id}, team_id)


@in_parallel
def _board_snapshot(team_id: int, user_id: int) -> str:
    return board.snapshot(team_id, user_id)


class DesktopConsumer(DirectDispatch, AsyncWebsocketConsumer):  # type: ignore[misc]
    group = ""
    session_key = ""
    login_id = 0
    # A lead's board: the team, and the lead's group of its board.
    team_id = 0
    board_group = ""
    _kept = False
    _mending: asyncio.Task[None] | None = None

    @property
    def channel_receive(self) -> Callable[[], Awaitable[dict[str, Any]]]:
        """This socket's reads from the layer. Channels' own fail when Redis goes away, which ends the
        consumer and closes the socket (1011); these wait until Redis answers again, and a failed read
        has the socket mend its groups and its page then."""
        return functools.partial(
            receive_through_outages, self.channel_layer, self.channel_name, self._lost_layer
        )

    @channel_receive.setter
    def channel_receive(self, channels_own: Any) -> None:
        """Channels sets its plain read when the consumer starts; the property above stands in for it."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            await audit.websocket_refused(self.scope, "not signed in")
            await self.close(code=4401)
            return
        login_id = await _login_id(user.pk)
        if login_id is None:
            await audit.websocket_refused(self.scope, "no enabled agent login")
            await self.close(code=4403)
            return
        team_id = _board_team(self.scope)
        if team_id is not None:
            if not (team_id and await _leads(user.pk, team_id)):
                await audit.websocket_refused(self.scope, "not a lead of that team")
                await self.close(code=4403)
                return
            self.team_id, self.board_group = team_id, board.board_group(team_id, user.pk)
        self.group = group_name(user.pk)
        self.login_id = login_id
        session = self.scope.get("session")
        self.session_key = getattr(session, "session_key", None) or ""
        # Join first, then read the snapshot: a change saved in between reaches this socket twice
        # (harmless: the same card is re-rendered) instead of not at all. With Redis unreachable the
        # socket opens all the same, and joins once Redis answers again.
        joined = await self._join()
        await self.accept()
        await self.send(text_data=await _snapshot(login_id))
        await self._send_board()
        if not (joined and await self._ensure_session()):
            self.mend()
        keeper().add(self)
        self._kept = True
        await desk_tab(self.login_id, self.channel_name, closed=False)

    async def _send_board(self) -> None:
        """A lead's board socket: the board's snapshot."""
        html = await _board_snapshot(self.team_id, self.scope["user"].pk) if self.team_id else ""
        if html:
            await self.send(text_data=html)

    @property
    def user_id(self) -> int:
        return int(self.scope["user"].pk)

    def group_names(self) -> list[str]:
        """The groups this socket belongs to: its agent's pushes, its desk session's end, and a lead's
        board."""
        groups = [self.group, session_group(self.session_key)] if self.session_key else [self.group]
        return [*groups, self.board_group] if self.board_group else groups

    async def _join(self) -> bool:
        """Joins every group of the socket (again: harmless); False when the layer failed."""
        try:
            await join(self.channel_layer, [(group, self.channel_name) for group in self.group_names()])
        except LAYER_ERRORS as error:
            health_of(self.channel_layer).failed(error)
            return False
        return True

    async def _ensure_session(self) -> bool:
        """Asks the session worker to make sure the agent's Voice API session runs; False when the
        layer failed."""
        try:
            await request_sessions(self.channel_layer, [self.login_id])
        except LAYER_ERRORS as error:
            health_of(self.channel_layer).failed(error)
            return False
        return True

    def _lost_layer(self, error: Exception) -> None:
        """A read from the layer failed: Redis went away, and will come back without this socket's groups.
        A socket still connecting has none yet: its own join comes next, and mends if it fails."""
        if self.group:
            self.mend()

    def mend(self) -> None:
        """Mends the socket once the layer answers again (one mending at a time)."""
        if self._mending is None or self._mending.done():
            self._mending = asyncio.create_task(self._mend_when_back())

    async def _mend_when_back(self) -> None:
        """1. wait until the layer answers; 2. join the groups again and ask for the agent's session
        (both went with Redis's memory), from 1 again if the layer fails; 3. send a fresh snapshot,
        since whatever was pushed meanwhile is lost; 4. tell the session's owner the tab is open."""
        health = health_of(self.channel_layer)
        pause = 0.0
        try:
            while True:
                await health.back()
                if await self._join() and await self._ensure_session():
                    break
                # Failing again though Redis answered pings: do not spin on it.
                await asyncio.sleep(pause)
                pause = min(MAX_RECEIVE_PAUSE_S, max(0.05, pause * 2))
            await self.send(text_data=await _snapshot(self.login_id))
            await self._send_board()
            await desk_tab(self.login_id, self.channel_name, closed=False, snapshot=True)
        except Exception:
            log.exception(
                "could not mend the desk socket of login %s after a channel layer outage", self.login_id
            )

    async def desk_close(self, event: dict[str, Any]) -> None:
        """The desk session behind this socket ended (a sign-out): nothing more is sent to it."""
        await self.close(code=SESSION_ENDED)

    async def disconnect(self, code: int) -> None:
        if self._mending:
            self._mending.cancel()
        if self._kept:
            keeper().discard(self)
            await desk_tab(self.login_id, self.channel_name, closed=True)
        # A layer that fails here has lost the groups already (Redis restarts empty): nothing to undo.
        with contextlib.suppress(*LAYER_ERRORS):
            for group in self.group_names() if self.group else []:
                await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Actions go over HTTP (CSRF-checked, audited); the socket only listens."""

    async def desk_push(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["html"])
