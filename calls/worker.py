"""The session worker: one live, self-healing Voice API session per agent login.

Runs as ``python manage.py runworker voice-sessions`` (or inside ``rundesk`` on the embedded
default). The consumer only decodes layer messages; each agent's session is its own task, so
one agent's failure never touches another's, and nothing escapes a handler.

Several workers may run: a worker claims a login atomically (a lease in the database, renewed
while the session lives) before it opens a session, so each agent has exactly one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import uuid
from datetime import timedelta
from typing import Any

from channels.consumer import AsyncConsumer
from channels.db import database_sync_to_async
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from . import services
from .clients import new_client
from .cometd import RECONNECTING, RESYNC, NotificationStream, StreamLost
from .genesys import CALLS_CHANNEL, DEVICES_CHANNEL, VoiceApiError, parse_message
from .models import AgentLogin
from .voice import CallNotification, MalformedNotification

log = logging.getLogger("switchboard.worker")

CHANNEL = "voice-sessions"
DRAIN_SECONDS = 5.0
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def lease_seconds() -> float:
    return float(getattr(settings, "VOICE_SESSION_LEASE_SECONDS", 30))


def backoff_delay(failures: int) -> float:
    """Capped exponential backoff with full jitter: 0.5 s, 1 s, 2 s … up to the cap."""
    cap = float(getattr(settings, "VOICE_SESSION_MAX_BACKOFF_SECONDS", 30))
    return random.uniform(0.5, min(cap, 0.5 * 2 ** min(failures, 16)))  # noqa: S311 (jitter, not a secret)


@database_sync_to_async
def claim(login_id: int) -> AgentLogin | None:
    """Take (or keep) the login's lease; ``None`` when another worker holds a live one or it is off."""
    now = timezone.now()
    claimed = (
        AgentLogin.objects.filter(pk=login_id, enabled=True, wanted=True, user__is_active=True)
        .filter(Q(worker=WORKER_ID) | Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(worker=WORKER_ID, lease_until=now + timedelta(seconds=lease_seconds()))
    )
    if not claimed:
        return None
    return AgentLogin.objects.select_related("server", "user").get(pk=login_id)


@database_sync_to_async
def renew_leases(login_ids: list[int]) -> set[int]:
    """Extend this worker's leases on the logins it runs and may keep; return those kept."""
    if not login_ids:
        return set()
    keep = AgentLogin.objects.filter(
        pk__in=login_ids, worker=WORKER_ID, enabled=True, wanted=True, user__is_active=True
    )
    kept = set(keep.values_list("pk", flat=True))
    AgentLogin.objects.filter(pk__in=kept, worker=WORKER_ID).update(
        lease_until=timezone.now() + timedelta(seconds=lease_seconds())
    )
    return kept


@database_sync_to_async
def release(login_id: int) -> None:
    AgentLogin.objects.filter(pk=login_id, worker=WORKER_ID).update(worker="", lease_until=None)


@database_sync_to_async
def release_many(login_ids: list[int]) -> None:
    AgentLogin.objects.filter(pk__in=login_ids, worker=WORKER_ID).update(worker="", lease_until=None)


async def settle(tasks: list[asyncio.Task[None]]) -> None:
    """Wait for cancelled sessions to finish, but not for ever: a library that swallows a
    cancellation while the Voice API is down must not hold up a drain."""
    if tasks:
        await asyncio.wait(tasks, timeout=DRAIN_SECONDS)


def release_all_leases() -> int:
    """For a process that knows it is the only worker (the embedded default): forget every lease."""
    return AgentLogin.objects.exclude(worker="").update(worker="", lease_until=None)


@database_sync_to_async
def wanted_logins() -> list[int]:
    now = timezone.now()
    return list(
        AgentLogin.objects.filter(enabled=True, wanted=True, user__is_active=True)
        .filter(Q(worker=WORKER_ID) | Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .values_list("pk", flat=True)
    )


@database_sync_to_async
def set_wanted(login_id: int, wanted: bool) -> None:
    AgentLogin.objects.filter(pk=login_id).update(wanted=wanted)


class AgentSession:
    """One agent's connection: login, subscribe, resync, apply notifications; heal on any failure."""

    def __init__(self, login: AgentLogin) -> None:
        self.login_id = login.pk
        self.login = login
        self.failures = 0
        self.task: asyncio.Task[None] | None = None
        self.stopping = False

    def stop(self) -> None:
        # The flag as well as the cancellation: a cancellation that lands inside a library call can
        # come back as another exception, which the retry loop below would otherwise retry.
        self.stopping = True
        if self.task:
            self.task.cancel()

    async def run(self) -> None:
        """1. log in to the Voice API; 2. open CometD and subscribe; 3. resync calls and agent state;
        4. apply notifications until the stream fails; 5. on failure, back off and start again."""
        while not self.stopping:
            client = new_client(self.login)
            try:
                await client.login()
                channels = [CALLS_CHANNEL, DEVICES_CHANNEL]
                async with NotificationStream(
                    client.notifications_url,
                    channels,
                    client.cometd_headers,
                    verify=self.login.server.verify_tls,
                ) as stream:
                    await self.resync(client)
                    await self.status(AgentLogin.CONNECTED)
                    self.failures = 0
                    async for channel, data in stream:
                        if (channel, data) == RECONNECTING:
                            await self.status(AgentLogin.RECONNECTING)
                        elif (channel, data) == RESYNC:
                            await self.status(AgentLogin.RECONNECTING)
                            await self.resync(client)
                            await self.status(AgentLogin.CONNECTED)
                        else:
                            await self.apply(channel, data)
                raise StreamLost("CometD stream closed")
            except asyncio.CancelledError:
                raise
            except (VoiceApiError, StreamLost, OSError) as exc:
                await self.failed(f"{type(exc).__name__}: {exc}")
            except Exception as exc:
                log.exception("session of login %s failed unexpectedly", self.login_id)
                await self.failed(type(exc).__name__)
            finally:
                await client.aclose()

    async def failed(self, reason: str) -> None:
        if self.stopping:
            raise asyncio.CancelledError
        self.failures += 1
        delay = backoff_delay(self.failures)
        log.warning("session of login %s lost (%s); retrying in %.1fs", self.login_id, reason, delay)
        await self.status(AgentLogin.RECONNECTING if self.failures < 5 else AgentLogin.OFFLINE)
        await asyncio.sleep(delay)
        login = await claim(self.login_id)
        if login is None:
            raise asyncio.CancelledError
        self.login = login

    async def resync(self, client: Any) -> None:
        """Read the server's truth and make the saved state (and every open page) equal it."""
        calls = await client.calls()
        state = await client.agent_state()
        await services.replace_calls(self.login_id, calls)
        await services.set_agent_state(self.login_id, state)

    async def apply(self, channel: str, data: Any) -> None:
        try:
            notification = parse_message(channel, data)
        except MalformedNotification as exc:
            log.warning("skipped a malformed notification for login %s: %s", self.login_id, exc)
            return
        if notification is None:
            return
        if isinstance(notification, CallNotification):
            await services.apply_call(self.login_id, notification.call)
        else:
            await services.set_agent_state(self.login_id, notification.state)

    async def status(self, status: str) -> None:
        await services.set_connection(self.login_id, status)


class VoiceSessionsConsumer(AsyncConsumer):
    """Layer messages: ``session.ensure``, ``session.stop``, ``session.reconcile`` (all take ``login``
    except reconcile). Each handler is quick: sessions run as their own tasks."""

    sessions: dict[int, AgentSession]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.sessions = {}
        self._reconciler: asyncio.Task[None] | None = None
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.shutdown()

    async def session_ensure(self, message: dict[str, Any]) -> None:
        await self._guard(self._ensure, message)

    async def session_stop(self, message: dict[str, Any]) -> None:
        await self._guard(self._stop, message)

    async def session_reconcile(self, message: dict[str, Any]) -> None:
        await self._guard(self._reconcile_now, message)
        if self._reconciler is None:
            self._reconciler = asyncio.create_task(self._reconcile_forever())

    async def _guard(self, handler: Any, message: dict[str, Any]) -> None:
        try:
            await handler(message)
        except Exception:
            log.exception("voice-sessions handler failed on %s", message.get("type"))

    async def _ensure(self, message: dict[str, Any]) -> None:
        login_id = int(message["login"])
        await set_wanted(login_id, True)
        session = self.sessions.get(login_id)
        if session and session.task and not session.task.done():
            return
        login = await claim(login_id)
        if login is None:
            return
        session = AgentSession(login)
        session.task = asyncio.create_task(session.run(), name=f"voice-session-{login_id}")
        session.task.add_done_callback(lambda task, lid=login_id: self._ended(lid, task))
        self.sessions[login_id] = session

    def _ended(self, login_id: int, task: asyncio.Task[None]) -> None:
        if self.sessions.get(login_id) and self.sessions[login_id].task is task:
            del self.sessions[login_id]

    async def _stop(self, message: dict[str, Any]) -> None:
        login_id = int(message["login"])
        await set_wanted(login_id, False)
        await self._end(login_id)

    async def _end(self, login_id: int) -> None:
        session = self.sessions.pop(login_id, None)
        if session and session.task:
            session.stop()
            await settle([session.task])
        await release(login_id)
        await services.set_connection(login_id, AgentLogin.OFFLINE)

    async def _reconcile_now(self, message: dict[str, Any]) -> None:
        """Renew our leases in one statement, end the sessions that lost theirs (no longer wanted,
        disabled, or taken over), and open every session that should exist and is not held elsewhere."""
        kept = await renew_leases(list(self.sessions))
        for login_id in set(self.sessions) - kept:
            await self._end(login_id)
        for login_id in await wanted_logins():
            if login_id not in self.sessions:
                await self._ensure({"login": login_id})

    async def _reconcile_forever(self) -> None:
        interval = lease_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            await self._guard(self._reconcile_now, {"type": "session.reconcile"})

    async def shutdown(self) -> None:
        """Drain: stop every session and hand its lease back, so another worker can take over at once."""
        if self._reconciler:
            self._reconciler.cancel()
        sessions, self.sessions = self.sessions, {}
        for session in sessions.values():
            session.stop()
        await settle([session.task for session in sessions.values() if session.task])
        await release_many(list(sessions))
