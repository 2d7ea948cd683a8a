"""The desktop's WebSocket: a snapshot on connect, then every push for this agent.

Authenticated by the session cookie and origin-checked in ``asgi.py``; a socket joins only its
own user's group. Connecting also asks the session worker to make sure the agent's Voice API
session runs (idempotent), so a page opened after a worker restart brings its session back.
"""

from __future__ import annotations

import logging
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

from calls import audit, fragments
from calls.db import database_sync_to_async
from calls.models import AgentLogin
from calls.services import group_name
from calls.worker import CHANNEL

log = logging.getLogger("switchboard.desktop")


@database_sync_to_async
def _login_and_snapshot(user_id: int) -> tuple[int, str] | None:
    login = AgentLogin.objects.select_related("user", "server").filter(user_id=user_id, enabled=True).first()
    if login is None:
        return None
    return login.pk, fragments.snapshot(login)


@database_sync_to_async
def _snapshot(login_id: int) -> str:
    return fragments.snapshot(AgentLogin.objects.select_related("user").get(pk=login_id))


class DesktopConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    group = ""

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

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Actions go over HTTP (CSRF-checked, audited); the socket only listens."""

    async def desk_push(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["html"])
