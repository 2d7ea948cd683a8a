"""The desktop's WebSocket: a snapshot on connect, then every push for this agent.

Authenticated by the session cookie and origin-checked in ``asgi.py``; a socket joins only its
own user's group. Connecting also asks the session worker to make sure the agent's Voice API
session runs (idempotent), so a page opened after a worker restart brings its session back.
"""

from __future__ import annotations

import asyncio
import logging
from importlib import import_module
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth import SESSION_KEY, get_user_model

from calls import audit, fragments, presence
from calls.db import database_sync_to_async
from calls.models import AgentLogin
from calls.services import group_name, session_group
from calls.worker import CHANNEL, desk_tab

log = logging.getLogger("switchboard.desktop")

# The close code a page reads as "your desk session has ended: sign in again".
SESSION_ENDED = 4401


@database_sync_to_async
def _login_and_snapshot(user_id: int) -> tuple[int, str] | None:
    login = AgentLogin.objects.select_related("user", "server").filter(user_id=user_id, enabled=True).first()
    if login is None:
        return None
    return login.pk, fragments.snapshot(login)


@database_sync_to_async
def _session_lives(session_key: str, user_id: int) -> bool:
    """Whether the desk session is still there, unexpired, for this user, who is still active."""
    if not session_key:
        return False
    data = import_module(settings.SESSION_ENGINE).SessionStore(session_key).load()
    if str(data.get(SESSION_KEY, "")) != str(user_id):
        return False
    return get_user_model().objects.filter(pk=user_id, is_active=True).exists()


@database_sync_to_async
def _snapshot(login_id: int) -> str:
    return fragments.snapshot(AgentLogin.objects.select_related("user").get(pk=login_id))


class DesktopConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    group = ""
    session_key = ""
    login_id = 0
    _alive: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            await audit.websocket_refused(self.scope, "not signed in")
            await self.close(code=4401)
            return
        found = await _login_and_snapshot(user.pk)
        if found is None:
            await audit.websocket_refused(self.scope, "no enabled agent login")
            await self.close(code=4403)
            return
        login_id, _ = found
        self.group = group_name(user.pk)
        # Join first, then read the snapshot: a change saved in between reaches this socket twice
        # (harmless: the same card is re-rendered) instead of not at all.
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send(text_data=await _snapshot(login_id))
        await self.channel_layer.send(CHANNEL, {"type": "session.ensure", "login": login_id})
        self.login_id = login_id
        session = self.scope.get("session")
        self.session_key = getattr(session, "session_key", None) or ""
        if self.session_key:
            await self.channel_layer.group_add(session_group(self.session_key), self.channel_name)
        self._alive = asyncio.create_task(self._say_alive())

    async def _say_alive(self) -> None:
        """Now and then: check that the desk session behind this socket still lives (sign-out, idle
        expiry, a single sign-on that ended), closing the socket when it does not; and tell the
        Voice API session's owner that this desk tab is open (an empty chair is set Not Ready)."""
        while True:
            if not await _session_lives(self.session_key, self.scope["user"].pk):
                await self.close(code=SESSION_ENDED)
                return
            await desk_tab(self.login_id, self.channel_name, closed=False)
            await asyncio.sleep(presence.TAB_ALIVE_SECONDS)
            # Joining again is harmless, and it mends a membership the channel layer lost (a Redis
            # restart forgets every group): the tab would otherwise get no push until a reload.
            await self.channel_layer.group_add(self.group, self.channel_name)

    async def desk_close(self, event: dict[str, Any]) -> None:
        """The desk session behind this socket ended (a sign-out): nothing more is sent to it."""
        await self.close(code=SESSION_ENDED)

    async def disconnect(self, code: int) -> None:
        if self._alive:
            self._alive.cancel()
            await desk_tab(self.login_id, self.channel_name, closed=True)
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
        if self.session_key:
            await self.channel_layer.group_discard(session_group(self.session_key), self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Actions go over HTTP (CSRF-checked, audited); the socket only listens."""

    async def desk_push(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["html"])
