"""The session worker: one live, self-healing Voice API session per agent login.

Runs as ``python manage.py runworker voice-sessions`` (or inside ``rundesk`` on the embedded
default). The consumer only decodes layer messages; each agent's session is its own task, so
one agent's failure never touches another's, and nothing escapes a handler.

Several workers may run: a worker claims a login atomically (a lease in the database, renewed
while the session lives) before it opens a session, so each agent has exactly one.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import json
import logging
import os
import random
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from channels.consumer import AsyncConsumer
from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Min, Q
from django.utils import timezone

from . import audit, backends, board, fragments, heap, metrics, services, sql
from .db import DirectDispatch, database_sync_to_async
from .layer import LAYER_ERRORS, health_of
from .live import REFERENCE, Desk
from .models import AgentLogin, AuditEntry
from .persist import Writer, in_parallel
from .presence import Presence
from .voice import (
    AgentState,
    AgentStateChanged,
    Call,
    CallChanged,
    Credentials,
    CredentialsChanged,
    CredentialsRefused,
    Event,
    Observation,
    Reconnecting,
    RestartNow,
    Resynced,
    SignInRefused,
    Unavailable,
    VoiceApiError,
    VoiceBackend,
)

log = logging.getLogger("switchboard.worker")

CHANNEL = "voice-sessions"
DRAIN_SECONDS = 5.0
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
COMMAND_TIMEOUT_SECONDS = 10.0
# How often a session looks after itself (periodic resync, presence) while it is open.
WATCH_SECONDS = 5.0
REFUSED_MESSAGE = "Your contact-center credentials were refused: ask your administrator."
LEAVE_SECONDS = 5.0
# Taking over a session just after its lease ran out, not just before (when the claim would fail).
TAKEOVER_MARGIN_SECONDS = 0.05
SESSION_ENDED_REASON = "Desk closed"
# The longest one change of an agent's desk (an event, a resync, a command) may take.
APPLY_SECONDS = 15.0
# A worker claims a start's worth of sessions at a time, with this many batches coming up at once; it
# waits this long at most for the older batch before claiming the next.
CLAIMS_IN_FLIGHT = 2
CLAIM_WAIT_SECONDS = 5.0


async def _started(sessions: list[AgentSession]) -> None:
    """Until every one of the sessions has come up (or failed once), ``CLAIM_WAIT_SECONDS`` at most."""
    waits = [asyncio.ensure_future(session.started.wait()) for session in sessions]
    if waits:
        _, pending = await asyncio.wait(waits, timeout=CLAIM_WAIT_SECONDS)
        for wait in pending:
            wait.cancel()


def start_concurrency() -> int:
    """How many of a worker's sessions sign in and resync at once: enough to bring thousands up
    in seconds, few enough that the Voice API and the database are not flooded at a start."""
    return max(1, int(getattr(settings, "VOICE_SESSION_START_CONCURRENCY", 64)))


def owner_channel(worker_id: str) -> str:
    """The channel on which one worker takes commands for the sessions it owns."""
    return "voice-sessions.owner." + re.sub(r"[^A-Za-z0-9_.\-]", "-", worker_id)[:60]


async def request_sessions(layer: Any, login_ids: Collection[int]) -> None:
    """Ask the session workers to start these logins' sessions, in one message that whichever worker
    is free takes. A shared channel that is full holds that many requests the workers have still to
    take (thousands of desks opening at once): these are dropped, logged and counted, not failed, and
    the desks' tabs ask again within ``calls.presence.TAB_ALIVE_SECONDS``. Other layer failures raise."""
    if not login_ids:
        return
    try:
        await layer.send(CHANNEL, {"type": "session.ensure", "logins": sorted(login_ids)})
    except ChannelFull:
        metrics.SESSION_REQUESTS_DROPPED.inc(len(login_ids))
        log.warning(
            "the session workers' channel is full: %s session start requests dropped, to be asked again",
            len(login_ids),
        )


ERROR_KINDS: dict[type[VoiceApiError], str] = {Unavailable: "unavailable", CredentialsRefused: "credentials"}
ERRORS_BY_KIND = {kind: error for error, kind in ERROR_KINDS.items()}


async def ask_owner(login: AgentLogin, command: str, *, wait: bool = True, **fields: Any) -> None:
    """Have the worker that owns the login's session carry out ``command``; raise its refusal.

    With no live owner, the shared channel is asked to start the session and the caller is told
    to try again shortly."""
    layer = get_channel_layer()
    if layer is None:
        raise Unavailable("The desk has no channel layer to reach its session workers.")
    try:
        await _ask_owner(layer, login, command, wait=wait, **fields)
    except LAYER_ERRORS as exc:
        health_of(layer).failed(exc)
        raise Unavailable(
            "The desk cannot reach its session workers just now: try again in a moment."
        ) from exc


def _owned(login: AgentLogin) -> bool:
    """Whether a worker holds the login's session now, as the login was read."""
    return bool(login.worker) and login.lease_until is not None and login.lease_until > timezone.now()


async def _ask_owner(layer: Any, login: AgentLogin, command: str, *, wait: bool, **fields: Any) -> None:
    if not _owned(login):
        await request_sessions(layer, [login.pk])
        raise Unavailable("The contact-center session is starting: try again in a moment.")
    message: dict[str, Any] = {"type": "session.command", "login": login.pk, "command": command, **fields}
    if not wait:
        await layer.send(owner_channel(login.worker), message)
        return
    message["reply"] = await layer.new_channel()
    await layer.send(owner_channel(login.worker), message)
    try:
        answer = await asyncio.wait_for(layer.receive(message["reply"]), COMMAND_TIMEOUT_SECONDS)
    except TimeoutError:
        raise Unavailable("The session worker did not answer in time.") from None
    if not answer.get("ok"):
        error = ERRORS_BY_KIND.get(str(answer.get("kind")), VoiceApiError)
        raise error(str(answer.get("message") or "Refused"), code=str(answer.get("code") or ""))


async def desk_tab(login_id: int, tab: str, *, closed: bool, snapshot: bool = False) -> None:
    """Tell the owner of the login's session that a desk tab is open (or has closed); ``snapshot``:
    the tab has just read its snapshot from the database, which may be a write behind, and wants
    the session's (a tab new to the owner always gets it). Never raises: a tab's news is not worth
    failing a socket for, and the next one comes soon."""
    try:
        login = await _login(login_id)
        if login is not None:
            await ask_owner(login, "tab", wait=False, tab=tab, closed=closed, snapshot=snapshot)
    except VoiceApiError:
        pass
    except LAYER_ERRORS as exc:
        log.warning(
            "could not tell the session worker about a desk tab of login %s (%s)",
            login_id,
            type(exc).__name__,
        )
    except Exception:
        log.exception("could not tell the session worker about a desk tab of login %s", login_id)


async def tell_owners(tabs: list[tuple[AgentLogin, str]]) -> None:
    """Tell the owners of the logins' sessions that these desk tabs, ``(login as owner_of read it, tab)``,
    are open: one message to each worker for all its agents' tabs; a session with no live owner is
    asked to start. Never raises, as ``desk_tab``."""
    layer = get_channel_layer()
    if layer is None or not tabs:
        return
    by_worker: dict[str, list[tuple[int, str]]] = {}
    unowned: set[int] = set()
    for login, tab in tabs:
        if _owned(login):
            by_worker.setdefault(login.worker, []).append((login.pk, tab))
        else:
            unowned.add(login.pk)
    try:
        for worker_id, owned in by_worker.items():
            await layer.send(owner_channel(worker_id), {"type": "session.tabs", "tabs": owned})
        await request_sessions(layer, unowned)
    except LAYER_ERRORS as exc:
        health_of(layer).failed(exc)
        log.warning("could not tell the session workers of %s desk tabs (%s)", len(tabs), type(exc).__name__)


def owner_of(login_id: int) -> AgentLogin | None:
    """The login, with only what finding its session's owner needs (unordered): every open tab asks
    every few seconds."""
    return AgentLogin.objects.filter(pk=login_id).only("id", "worker", "lease_until").order_by().first()


# Not on the one thread that every socket of the process shares for its database work.
_login = in_parallel(owner_of)


def lease_seconds() -> float:
    return float(getattr(settings, "VOICE_SESSION_LEASE_SECONDS", 30))


def backoff_delay(failures: int) -> float:
    """Capped exponential backoff with full jitter: 0.5 s, 1 s, 2 s … up to the cap."""
    cap = float(getattr(settings, "VOICE_SESSION_MAX_BACKOFF_SECONDS", 30))
    return random.uniform(0.5, min(cap, 0.5 * 2 ** min(failures, 16)))  # noqa: S311 (jitter, not a secret)


def _take_leases(login_ids: list[int]) -> int:
    """Take (or keep) the leases of those of the logins no other worker holds, in one statement.

    Every condition on the login's own row stays in the statement's own WHERE, with no join (the
    active user is a subquery on the user table): a claim that waits on another worker's claim of the
    same row then checks the lease again as that claim left it, and fails. A join would make Django
    put the whole filter in a subquery, read as the claim started, and both workers would win."""
    now = timezone.now()
    active = get_user_model().objects.filter(is_active=True).values("pk")
    return (
        AgentLogin.objects.filter(pk__in=login_ids, enabled=True, wanted=True, user__in=active)
        .exclude(connection=AgentLogin.REFUSED)
        .filter(Q(worker=WORKER_ID) | Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(worker=WORKER_ID, lease_until=now + timedelta(seconds=lease_seconds()))
    )


@database_sync_to_async
def claim(login_id: int) -> AgentLogin | None:
    """Take (or keep) the login's lease; ``None`` when another worker holds a live one or it is off."""
    if not _take_leases([login_id]):
        return None
    return AgentLogin.objects.select_related("server", "user").get(pk=login_id)


@database_sync_to_async
def claim_many(login_ids: list[int]) -> list[AgentLogin]:
    """``claim`` for many logins in two statements (a worker's start): those it now holds."""
    _take_leases(login_ids)
    return list(
        AgentLogin.objects.select_related("server", "user").filter(pk__in=login_ids, worker=WORKER_ID)
    )


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
    AgentLogin.objects.filter(pk=login_id, worker=WORKER_ID).update(
        worker="", lease_until=None, voice_session=""
    )


@database_sync_to_async
def release_many(login_ids: list[int]) -> None:
    """Hand leases back on a drain, keeping the sessions' credentials for whoever takes over."""
    AgentLogin.objects.filter(pk__in=login_ids, worker=WORKER_ID).update(worker="", lease_until=None)


def holds_lease(login_id: int) -> bool:
    """Inside a write's transaction: whether this worker still holds the login's lease. The row is
    locked until the write commits, so no other worker takes the session over in between; one that
    has taken it over already gets none of this worker's writes."""
    return sql.lock(AgentLogin, id=login_id, worker=WORKER_ID)


def save_credentials(login_id: int, credentials: Credentials) -> None:
    """What borrowers need to act in the session (encrypted at rest), while this worker owns it."""
    AgentLogin.objects.filter(pk=login_id, worker=WORKER_ID).update(
        voice_session=json.dumps(credentials) if credentials else ""
    )


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
        .exclude(connection=AgentLogin.REFUSED)
        .filter(Q(worker=WORKER_ID) | Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .values_list("pk", flat=True)
    )


@database_sync_to_async
def taken_over(login_ids: list[int]) -> set[int]:
    """Those of the logins another worker holds now."""
    if not login_ids:
        return set()
    held = AgentLogin.objects.filter(pk__in=login_ids).exclude(worker__in=("", WORKER_ID))
    return set(held.values_list("pk", flat=True))


@database_sync_to_async
def next_foreign_expiry() -> float | None:
    """Seconds until the first lease another worker holds on a wanted session runs out, if any."""
    now = timezone.now()
    first = (
        AgentLogin.objects.filter(enabled=True, wanted=True, user__is_active=True, lease_until__gt=now)
        .exclude(worker=WORKER_ID)
        .aggregate(first=Min("lease_until"))["first"]
    )
    return None if first is None else (first - now).total_seconds()


@database_sync_to_async
def set_wanted(login_ids: Collection[int], wanted: bool) -> None:
    AgentLogin.objects.filter(pk__in=login_ids).update(wanted=wanted)


class AgentSession:
    """One agent's Voice API session: sign in, resync, apply events; heal on any failure.

    Each event changes the agent's desk in memory (``calls.live``), is pushed to the agent's pages
    at once, and is saved behind the push by the agent's writer (``calls.persist``), in order.

    The backend of the running session is the only one that may sign the agent in or out; the
    worker's commands (``session.command``) reach it here."""

    def __init__(self, login: AgentLogin, starting: asyncio.Semaphore | None = None) -> None:
        self.login_id = login.pk
        self.login = login
        self.failures = 0
        self.task: asyncio.Task[None] | None = None
        self.backend: VoiceBackend | None = None
        self.stopping = False
        self._attempt: asyncio.Task[None] | None = None
        self._renewing = False
        # Events, resyncs and observations change the desk one at a time, in order.
        self._applying = asyncio.Lock()
        self._last_resync = 0.0
        # Whether the next resync pushes and saves the whole desk even if it finds nothing changed:
        # the first of each sign-in (whoever ran the session before may have left the pages or the
        # database behind), one after a failed write, and one asked for; not a periodic one that
        # finds the desk as it was, at 2,000 agents some 30 a second.
        self._rewrite = True
        self._starting = starting
        # Set once the session has signed in and resynced (or its first attempt failed): the worker
        # claims more sessions as earlier ones come up.
        self.started = asyncio.Event()
        self._received = 0.0
        # Whether this session has been connected (and said so) yet.
        self._up = False
        self.desk = Desk(login)
        self.history = services.History()
        self.writer = Writer(
            login.pk,
            after=self._saved,
            failed=self._write_failed,
            fence=functools.partial(holds_lease, login.pk),
            lost=self.stop,
            begin=self.history.begin,
        )
        self.presence = Presence(
            AgentState(login.agent_state, login.state_reason),
            act=self.act,
            missed=self.missed_call,
            wrap_up_limit=lambda announced: services.wrap_up_limit(self.login, announced),
            wrap_up_started=self.wrap_up_started,
            owes_disposition=self._owes_disposition,
        )

    @asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        """The desk to change alone, for at most ``APPLY_SECONDS``: a change that hangs (a library
        call that never returns) fails and lets the session start again, rather than holding every
        later event behind it for ever."""
        try:
            async with asyncio.timeout(APPLY_SECONDS), self._applying:
                yield
        except TimeoutError:
            log.error(
                "session of login %s: a change of its desk took over %.0f s", self.login_id, APPLY_SECONDS
            )
            raise Unavailable("The session stalled; it is starting again.") from None

    def stop(self) -> None:
        # The flag as well as the cancellation: a cancellation that lands inside a library call can
        # come back as another exception, which the retry loop below would otherwise retry.
        self.stopping = True
        self.presence.close()
        if self.task:
            self.task.cancel()

    def renew(self) -> None:
        """Sign in again now: a borrower's credentials were refused."""
        if self._attempt and not self._attempt.done():
            self._renewing = True
            self._attempt.cancel()

    async def run(self) -> None:
        """0. read what the database holds of the desk; 1. sign in to the Voice API and open its
        events; 2. resync (the first event); 3. apply events until the session fails; 4. on failure,
        back off and start again. Whatever ends it, what is still to be saved is saved."""
        try:
            await self._run()
        finally:
            await self.writer.close()

    async def _run(self) -> None:
        await self.desk.load()
        while not self.stopping:
            self._attempt = asyncio.create_task(self._attempt_session())
            try:
                await self._attempt
            except asyncio.CancelledError:
                if self.stopping or not self._renewing:
                    raise
                self._renewing = False
                log.info("session of login %s signs in again: its credentials were refused", self.login_id)
            except RestartNow as exc:
                log.info("session of login %s opens again at once: %s", self.login_id, exc.message)
            except SignInRefused as exc:
                # Trying again with the same password would only fail again, and may lock the account.
                log.warning("login %s: the Voice API refused its credentials (%s)", self.login_id, exc.code)
                await self.status(AgentLogin.REFUSED, REFUSED_MESSAGE)
                await self.writer.flush()
                await release(self.login_id)
                return
            except VoiceApiError as exc:
                await self.failed(f"{type(exc).__name__}: {exc}", exc.message)
            except OSError as exc:
                await self.failed(f"{type(exc).__name__}: {exc}", "The Voice API cannot be reached.")
            except Exception as exc:
                if self.stopping:
                    # A cancellation that came back from a library as another exception.
                    raise asyncio.CancelledError from exc
                log.exception("session of login %s failed unexpectedly", self.login_id)
                await self.failed(
                    type(exc).__name__, "The session failed unexpectedly; it is starting again."
                )

    async def _attempt_session(self) -> None:
        # A session a worker left behind (a drain, a crash) may still be good: the backend may resume it.
        backend = backends.backend_for(self.login, backends.credentials_of(self.login))
        # Another worker may have run the session since the last attempt: its rows are read anew.
        self.history.forget()
        self._rewrite = True
        # A worker's start brings its sessions up a bounded number at a time: sign-in and first resync.
        starting = self._starting
        if starting is not None:
            await starting.acquire()
        # What the session learns as it comes up is saved in one transaction, once it has resynced.
        self.writer.hold()
        try:
            async with backend.session(signed_in=self.login.agent_state != "LoggedOut") as events:
                self.backend = backend
                self.writer.put(functools.partial(save_credentials, self.login_id, backend.credentials))
                watch = asyncio.create_task(self._watch(backend))
                try:
                    async for event in events:
                        self._received = time.monotonic()
                        async with self._exclusive():
                            await self.apply(event)
                        if isinstance(event, Resynced):
                            self.writer.resume()
                            if starting is not None:
                                starting.release()
                                starting = self._starting = None
                            self.started.set()
                finally:
                    watch.cancel()
            raise Unavailable("the Voice API ended the session's events")
        finally:
            self.writer.resume()
            if starting is not None:
                starting.release()
            self.started.set()
            self.backend = None
            await backend.aclose()

    async def _watch(self, backend: VoiceBackend) -> None:
        """While the session is open: compare the saved state with the Voice API's every
        ``VOICE_SESSION_RESYNC_SECONDS`` and repair it (changes no event announced), and look after
        the agent's presence (a desk left without a tab)."""
        interval = float(getattr(settings, "VOICE_SESSION_RESYNC_SECONDS", 60))
        # Sessions that start together (VOICE_SESSION_START_CONCURRENCY at a time) would otherwise look
        # after themselves, and resync, in step: a burst of Voice API reads every period.
        await asyncio.sleep(random.uniform(0, WATCH_SECONDS))  # noqa: S311 (timing, not a secret)
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            try:
                if interval and time.monotonic() - self._last_resync >= interval:
                    await self.resync(backend, periodic=True)
                layer = get_channel_layer()
                if layer is None or health_of(layer).is_up:
                    await self.presence.tick()
                else:
                    # Tabs cannot say they are open while the layer is down: no chair is empty for that.
                    self.presence.keep_tabs()
            except VoiceApiError as exc:
                log.info("session of login %s: periodic check failed (%s)", self.login_id, exc.code or exc)

    async def resync(self, backend: VoiceBackend, *, periodic: bool = False) -> None:
        """Read the Voice API's whole truth; unless ``periodic``, push and save all of it."""
        self._received = time.monotonic()
        self._rewrite = self._rewrite or not periodic
        async with self._exclusive():
            await self.apply(await backend.resync())

    async def refresh(self) -> None:
        """Push the whole desk again, as the session holds it, to every tab of the agent."""
        async with self._exclusive():
            await self.push(self.desk.snapshot())

    def _write_failed(self) -> None:
        """A write did not reach the database: the next look-after resyncs, and so rewrites it all."""
        self._last_resync = 0.0
        self._rewrite = True

    async def _saved(self) -> None:
        """Once a batch of the agent's changes is saved: the boards of the agent's teams follow."""
        if self.desk.reference.on_boards(self.login_id):
            await board.member_changed(self.login_id)

    async def push(self, html: str) -> None:
        """Send fragments to every desk tab of the agent, now."""
        if not html:
            return
        sent = time.monotonic()
        await services.publish((self.login.user_id, html))
        now = time.monotonic()
        metrics.PUSH_SECONDS.observe(now - sent)
        if self._received:
            metrics.EVENT_LAG.observe(now - self._received)

    async def act(self, state: AgentState, why: str) -> None:
        """Set the agent's state on the agent's behalf (the owner's own session), and audit it."""
        backend = self.backend
        result, message = AuditEntry.OK, f"by the desk: {why}"
        try:
            if backend is None:
                raise Unavailable("no open session")
            await backend.set_agent_state(state.state, state.reason)
        except VoiceApiError as exc:
            result, message = AuditEntry.FAILED, f"by the desk: {why}; refused: {exc.message}"
        await audit.arecord(
            user=self.login.user, action=state.state, detail=state.reason, result=result, message=message
        )

    async def leave(self, why: str) -> None:
        """Before the session stops: log the agent out of the contact center, or set it Not Ready
        (``SESSION_END_ACTION``), bounded in time; audited either way."""
        if self.backend is None or self.presence.state.state == "LoggedOut":
            return
        action = getattr(settings, "SESSION_END_ACTION", "logout")
        try:
            async with asyncio.timeout(LEAVE_SECONDS):
                if action == "logout":
                    await self._sign_out(why)
                else:
                    await self.act(AgentState("NotReady", SESSION_ENDED_REASON), why)
        except TimeoutError:
            log.warning("session of login %s: taking the agent out timed out", self.login_id)

    async def _sign_out(self, why: str) -> None:
        assert self.backend is not None
        try:
            await self.backend.sign_out()
        except VoiceApiError as exc:
            # Refused (on a call, say): at least no new call is routed to the agent.
            await audit.arecord(
                user=self.login.user,
                action="Logout",
                result=AuditEntry.FAILED,
                message=f"{why} {exc.message}",
            )
            await self.act(AgentState("NotReady", SESSION_ENDED_REASON), why)
            return
        await audit.arecord(
            user=self.login.user, action="Logout", result=AuditEntry.OK, message=f"by the desk: {why}"
        )
        async with self._exclusive():
            await self.apply(AgentStateChanged(AgentState("LoggedOut")))

    async def missed_call(self, call: Call) -> None:
        await self.push(fragments.missed_call(call))

    async def wrap_up_started(self, seconds: int) -> None:
        """The desk has started after-call work by itself for ``seconds``: the bar shows the time
        left until the agent leaves after-call work (which forgets the limit)."""
        until = timezone.now() + timedelta(seconds=seconds) if seconds > 0 else None
        await self.push(self.desk.wrap_up(until))
        self.writer.put(functools.partial(services.save_wrap_up, self.login_id, until))

    async def _owes_disposition(self) -> bool:
        return self.desk.owes_disposition()

    async def failed(self, reason: str, for_agent: str) -> None:
        """Back off before trying again, and tell the agent's pages why the session is down."""
        if self.stopping:
            raise asyncio.CancelledError
        self.failures += 1
        delay = backoff_delay(self.failures)
        log.warning("session of login %s lost (%s); retrying in %.1fs", self.login_id, reason, delay)
        status = AgentLogin.RECONNECTING if self.failures < 5 else AgentLogin.OFFLINE
        await self.status(status, for_agent)
        await asyncio.sleep(delay)
        login = await claim(self.login_id)
        if login is None:
            raise asyncio.CancelledError
        self.login = login

    async def apply(self, event: Event) -> None:
        """Change the desk, push what changed, and have it saved behind the push."""
        await self.desk.reference.current()
        now = timezone.now()
        desk, put, login_id = self.desk, self.writer.put, self.login_id
        if isinstance(event, CallChanged):
            await self.push(desk.call(event.call, now))
            put(functools.partial(services.save_call, desk.login, event.call, now, self.history))
            await self.presence.call_changed(event.call)
        elif isinstance(event, AgentStateChanged):
            await self.push(desk.agent_state(event.state, now))
            put(functools.partial(services.save_agent_state, login_id, event.state, desk.login.state_since))
            self.login.agent_state = event.state.state
            self.presence.state_changed(event.state)
        elif isinstance(event, Resynced):
            self._last_resync = time.monotonic()
            html = desk.resynced(event.calls, event.state, now, anew=self._rewrite)
            if html:
                # Pushed and saved only when it changed something (or must be: ``_rewrite``).
                self._rewrite = False
                since = desk.login.state_since
                put(functools.partial(services.save_calls, desk.login, event.calls, now, self.history))
                put(functools.partial(services.save_agent_state, login_id, event.state, since))
            self.login.agent_state = event.state.state
            self.presence.resynced(event.calls, event.state)
            # The desk and the link's status in one push.
            await self.push(html + self._connection(AgentLogin.CONNECTED, anew=not self._up))
            self._up = True
            self.failures = 0
        elif isinstance(event, Reconnecting):
            await self.status(AgentLogin.RECONNECTING)
        elif isinstance(event, CredentialsChanged):
            put(functools.partial(save_credentials, login_id, event.credentials))

    async def command(self, name: str, message: dict[str, Any]) -> None:
        """A command for the session's owner: sign the agent in or out, or fold in an observation."""
        if name == "tab":
            opened = self.presence.tab(str(message.get("tab", "")), closed=bool(message.get("closed")))
            if opened or message.get("snapshot"):
                # A tab that just opened read its snapshot from the database, which may be a write
                # behind: it gets the desk as the session holds it.
                await self.refresh()
            return
        if name == "flush":
            await self.writer.flush()
            return
        if name == "disposition":
            async with self._exclusive():
                await self.push(self.desk.disposition(str(message["call_id"]), str(message["code"])))
            return
        backend = self.backend
        if backend is None:
            raise Unavailable("The contact-center session is starting: try again in a moment.")
        if name == "sign_in":
            await backend.sign_in()
        elif name == "sign_out":
            await backend.sign_out()
        elif name == "observe":
            async with self._exclusive():
                for event in backend.observe(Observation(str(message["call_id"]), dict(message["facts"]))):
                    await self.apply(event)
        elif name == "resync":
            await self.resync(backend)
        elif name == "renew":
            self.renew()
        else:
            raise VoiceApiError(f"Unknown session command {name!r}")

    async def status(self, status: str, reason: str = "", *, anew: bool = False) -> None:
        """The session's link to the Voice API; ``reason`` says, in the agent's words, why it is not up.
        ``anew``: pushed and saved even if the desk shows it already (a session that has just come
        up: whoever ran it before may have left the pages or the database saying otherwise)."""
        await self.push(self._connection(status, reason, anew=anew))

    def _connection(self, status: str, reason: str = "", *, anew: bool = False) -> str:
        """The link's status on the desk, to push, and saved behind it; ``""`` when it is as shown."""
        reason = services.connection_reason(status, reason)
        html = self.desk.connection(status, reason, anew=anew)
        if html:
            self.writer.put(functools.partial(services.save_connection, self.login_id, status, reason))
        return html


class VoiceSessionsConsumer(DirectDispatch, AsyncConsumer):  # type: ignore[misc]  # channels has no types
    """Layer messages: ``session.ensure`` (``logins``; ``login``, one, from a desk of an earlier
    release), ``session.stop`` (``login``), ``session.reconcile``. Each handler is quick: sessions
    run as their own tasks.

    Commands for the sessions this worker owns (``ask_owner``) arrive on its own channel, since any
    worker may take a message from the shared one."""

    sessions: dict[int, AgentSession]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.sessions = {}
        self._starting = asyncio.Semaphore(start_concurrency())
        for status in metrics.SESSION_STATUSES:
            metrics.VOICE_SESSIONS.labels(status=status).set_function(functools.partial(self._count, status))
        self._reconciler: asyncio.Task[None] | None = None
        self._claims: asyncio.Task[None] | None = None
        self._commands: set[asyncio.Task[None]] = set()
        listener = asyncio.create_task(self._serve_commands(), name="voice-session-commands")
        reference = asyncio.create_task(REFERENCE.watch(self._reference_changed), name="reference-lists")
        probe = asyncio.create_task(metrics.probe_loop(), name="event-loop-probe")
        steward = asyncio.create_task(heap.steward(), name="heap-steward")
        try:
            await super().__call__(scope, receive, send)
        finally:
            steward.cancel()
            probe.cancel()
            reference.cancel()
            listener.cancel()
            for task in self._commands:
                task.cancel()
            await self.shutdown()

    async def _reference_changed(self) -> None:
        """The admin's Not Ready reasons or disposition codes changed: every page shows the new ones."""
        for session in list(self.sessions.values()):
            try:
                await session.refresh()
            except VoiceApiError as exc:
                log.warning("session of login %s: could not re-render its desk (%s)", session.login_id, exc)

    def _count(self, status: str) -> int:
        return sum(1 for session in self.sessions.values() if session.desk.login.connection == status)

    async def _serve_commands(self) -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        channel = owner_channel(WORKER_ID)
        while True:
            try:
                message = await layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not read session commands; retrying")
                await asyncio.sleep(1)
                continue
            task = asyncio.create_task(self._command(layer, message))
            self._commands.add(task)
            task.add_done_callback(self._commands.discard)

    async def _tabs(self, message: dict[str, Any]) -> None:
        """Desk tabs of sessions this worker owns are still open (``tell_owners``, every period). One
        new to the session is not sent the desk: it was open when the session started here, and a
        session pushes the whole desk as it starts. A tab that connects says so itself (``desk_tab``)."""
        for login_id, tab in message["tabs"]:
            session = self.sessions.get(int(login_id))
            if session is not None:  # else gone from this worker since: heard of again where it went
                session.presence.tab(str(tab), closed=False)

    async def _command(self, layer: Any, message: dict[str, Any]) -> None:
        if message.get("type") == "session.tabs":
            await self._tabs(message)
            return
        answer: dict[str, Any] = {"type": "session.answer", "ok": True}
        try:
            session = self.sessions.get(int(message["login"]))
            if session is None:
                raise Unavailable("The contact-center session is starting: try again in a moment.")
            await session.command(str(message["command"]), message)
        except VoiceApiError as exc:
            answer = {"type": "session.answer", "ok": False, "message": exc.message, "code": exc.code}
            answer["kind"] = ERROR_KINDS.get(type(exc), "refused")
        except Exception:
            log.exception("session command %s failed", message.get("command"))
            answer = {"type": "session.answer", "ok": False, "kind": "unavailable"}
            answer["message"] = "The session worker failed to carry out the request."
        if message.get("reply"):
            await layer.send(message["reply"], answer)

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
        login_ids = [int(login_id) for login_id in message.get("logins") or [message["login"]]]
        await set_wanted(login_ids, True)
        missing = [login_id for login_id in login_ids if not self._running(login_id)]
        for login in await claim_many(missing) if missing else []:
            self._open(login)

    def _running(self, login_id: int) -> bool:
        session = self.sessions.get(login_id)
        return session is not None and session.task is not None and not session.task.done()

    def _open(self, login: AgentLogin) -> AgentSession | None:
        """Start the login's session here, unless it runs here already: a page's ``session.ensure``
        and the worker's own claims may both win the lease (both are this worker's), and a second
        session beside the first would sign the agent in twice."""
        if self._running(login.pk):
            return None
        session = AgentSession(login, self._starting)
        session.task = asyncio.create_task(session.run(), name=f"voice-session-{login.pk}")
        session.task.add_done_callback(functools.partial(self._ended, login.pk))
        self.sessions[login.pk] = session
        return session

    def _ended(self, login_id: int, task: asyncio.Task[None]) -> None:
        if self.sessions.get(login_id) and self.sessions[login_id].task is task:
            del self.sessions[login_id]

    async def _stop(self, message: dict[str, Any]) -> None:
        """1. nobody wants the session any more; 2. take the agent out of the contact center, so no
        call rings at a desk nobody looks at; 3. stop the session, telling the pages why."""
        login_id = int(message["login"])
        why = str(message.get("why") or "")
        await set_wanted([login_id], False)
        session = self.sessions.get(login_id)
        if session is not None:
            await session.leave(why)
        await self._end(login_id, why)

    async def _end(self, login_id: int, why: str = "", *, announce: bool = True) -> None:
        """Stop the session here. ``announce``: the agent's pages learn it is offline, unless
        another worker has taken the session over (its status is that worker's to tell)."""
        session = self.sessions.pop(login_id, None)
        if session and session.task:
            session.stop()
            await settle([session.task])
        if login_id in self.sessions:
            # Opened here again meanwhile (the agent's page asked for it): it keeps the lease.
            return
        await release(login_id)
        if announce:
            await services.set_connection(login_id, AgentLogin.OFFLINE, why)

    async def _reconcile_now(self, message: dict[str, Any]) -> None:
        """Renew our leases in one statement, end the sessions that lost theirs (no longer wanted,
        disabled, or taken over), and open every session that should exist and is not held elsewhere."""
        # Those running now: a session opened meanwhile (claimed, or ensured) holds a fresh lease.
        running = list(self.sessions)
        kept = await renew_leases(running)
        lost = set(running) - kept
        taken = await taken_over(list(lost))
        for login_id in lost:
            await self._end(login_id, announce=login_id not in taken)
        if self._claims is None or self._claims.done():
            self._claims = asyncio.create_task(self._claim_in_turns(), name="voice-session-claims")

    async def _claim_in_turns(self) -> None:
        """Claims the wanted sessions that no worker holds, a start's worth at a time: the next batch
        once the one before the last has come up (or ``CLAIM_WAIT_SECONDS`` passed). Workers that start
        together so share the agents, the quicker taking more, where the first to look would take
        them all and the others none."""
        in_flight: collections.deque[list[AgentSession]] = collections.deque()
        try:
            while True:
                if len(in_flight) >= CLAIMS_IN_FLIGHT:
                    await _started(in_flight.popleft())
                missing = [login_id for login_id in await wanted_logins() if login_id not in self.sessions]
                random.shuffle(missing)  # workers claiming at once mostly ask for different ones
                logins = await claim_many(missing[: start_concurrency()]) if missing else []
                if not logins:
                    return
                in_flight.append([session for session in map(self._open, logins) if session is not None])
        except Exception:
            log.exception("could not claim the sessions no worker holds; the next reconcile tries again")

    async def _reconcile_forever(self) -> None:
        """Renew every third of a lease, and also the moment another worker's lease on a wanted
        session runs out (that worker died): its agents are taken over at once, not a tick later."""
        interval = lease_seconds() / 3
        while True:
            try:
                expiry = await next_foreign_expiry()
            except Exception:
                log.exception("could not read when other workers' leases run out")
                expiry = None
            await asyncio.sleep(
                min(interval, expiry + TAKEOVER_MARGIN_SECONDS) if expiry is not None else interval
            )
            await self._guard(self._reconcile_now, {"type": "session.reconcile"})

    async def shutdown(self) -> None:
        """Drain: stop every session and hand its lease back, so another worker can take over at once."""
        if self._reconciler:
            self._reconciler.cancel()
        if self._claims:
            self._claims.cancel()
        sessions, self.sessions = self.sessions, {}
        for session in sessions.values():
            session.stop()
        await settle([session.task for session in sessions.values() if session.task])
        await release_many(list(sessions))
