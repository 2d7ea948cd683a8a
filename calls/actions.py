"""What an agent asks the Voice API to do, checked before anything is sent.

Every action is authorized here (the call must be the agent's own live call, and its saved
capabilities must offer the operation) and its parameters validated; only then is the Voice
API asked. The resulting state change arrives later as a notification, through the worker.

Each public action writes exactly one audit entry (``calls.audit``): ok, refused (by the desk,
including another agent's call, or by the Voice API) or failed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from . import audit, services
from .backends import borrowed, credentials_of
from .db import database_sync_to_async
from .models import AgentLogin, AuditEntry, CallRecord, DispositionCode, LiveCall, NotReadyReason
from .operations import OPERATIONS, InvalidParameters, clean, clean_destination, has_control_characters
from .voice import TWO_CALL_OPERATIONS, CredentialsRefused, Unavailable, VoiceApiError, VoiceBackend
from .worker import ask_owner

log = logging.getLogger("switchboard.actions")

AGENT_OPERATIONS = ("Login", "Logout", "Ready", "NotReady", "AfterCallWork")
REASON_REFUSED = "Choose one of the reasons offered for Not ready."
DISPOSITION = "Disposition"
# How long an action waits for the session's owner to save what it has pushed (see ``_settle``).
SETTLE_SECONDS = 2.0  # the action's name in the audit log, and the user data key on the call


class ActionRefused(Exception):
    """The desk or the Voice API refused an action; ``message`` is shown to the agent."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class NotFound(ActionRefused):
    def __init__(self, message: str = "No such call") -> None:
        super().__init__(message, 404)


def _enabled_logins(user: AbstractBaseUser) -> QuerySet[AgentLogin]:
    """The user's agent login, when it is enabled: the one rule of who may act."""
    return AgentLogin.objects.filter(user_id=user.pk, enabled=True)


def _login_for(user: AbstractBaseUser) -> AgentLogin:
    login = _enabled_logins(user).select_related("server", "user").first()
    if login is None:
        raise ActionRefused("You have no enabled agent login; ask an administrator.", 403)
    return login


@database_sync_to_async
def login_for(user: AbstractBaseUser) -> AgentLogin:
    """The user's enabled agent login; every action starts here, so no action skips the check."""
    return _login_for(user)


@database_sync_to_async
def _login_and_call(user: AbstractBaseUser, call_id: str) -> tuple[AgentLogin, LiveCall | None]:
    """``login_for``, and the login's live call ``call_id`` as saved (``None`` when there is none),
    in one thread hop: one query when the call is there, as it is for nearly every click."""
    if not _no_such_call_id(call_id):
        live = (
            LiveCall.objects.select_related("login__server", "login__user")
            .filter(login__in=_enabled_logins(user), call_id=call_id)
            .first()
        )
        if live is not None:
            return live.login, live
    return _login_for(user), None


def _no_such_call_id(call_id: str) -> bool:
    """An id no call has: empty, or holding control characters (which no query may carry: PostgreSQL
    refuses NUL in text)."""
    return not call_id or has_control_characters(call_id)


@database_sync_to_async
def own_live_call(login: AgentLogin, call_id: str) -> LiveCall:
    if _no_such_call_id(call_id):
        raise NotFound()
    live = LiveCall.objects.filter(login=login, call_id=call_id).first()
    if live is None:
        raise NotFound()
    return live


async def _settle(login: AgentLogin) -> None:
    """Until the session's owner has saved everything it has pushed. The owner pushes first and
    saves a moment later, so an agent quick enough can act on what the screen shows before the
    database has it: a check that refuses on the saved state asks this and reads it again."""
    try:
        async with asyncio.timeout(SETTLE_SECONDS):
            await ask_owner(login, "flush")
    except (VoiceApiError, TimeoutError):
        pass


async def _settled_check(login: AgentLogin, check: Callable[[AgentLogin], Awaitable[bool]]) -> bool:
    """Whether a refusal's ``check`` of the saved state holds, and still holds once the owner has
    saved everything it has pushed."""
    if not await check(login):
        return False
    await _settle(login)
    return await check(login)


async def _live_call_offering(login: AgentLogin, call_id: str, name: str, live: LiveCall | None) -> LiveCall:
    """The agent's live call (``live``, as read with the login), as saved once it offers ``name``
    or the owner has saved all it knows."""
    if live is not None and live.offers(name):
        return live
    if _no_such_call_id(call_id):
        raise NotFound()
    await _settle(login)
    return await own_live_call(login, call_id)


@database_sync_to_async
def _partner(login: AgentLogin, live: LiveCall) -> str:
    """The other call of a two-call operation: the consult's parent, the call's consult, or the
    agent's held call."""
    others = LiveCall.objects.filter(login=login).exclude(call_id=live.call_id)
    partner = (
        others.filter(call_id=live.parent_call_id).first()
        or others.filter(parent_call_id=live.call_id).first()
        or others.filter(state="Held").first()
    )
    return partner.call_id if partner else ""


@database_sync_to_async
def _fresh_credentials(login: AgentLogin) -> bool:
    """Re-read the session's credentials; whether the owner has new ones since the login was read."""
    before: str = login.voice_session
    login.refresh_from_db(fields=["voice_session", "worker", "lease_until"])
    return bool(login.voice_session != before)


def _refusal(exc: VoiceApiError) -> ActionRefused:
    if isinstance(exc, Unavailable):
        return ActionRefused(f"The Voice API is unavailable: {exc.message}", 503)
    return ActionRefused(exc.message, 409)


async def _voice_api(login: AgentLogin, send: Callable[[VoiceBackend], Awaitable[Any]]) -> Any:
    """Send through the owner's session. Refused credentials are re-read once (the owner may have
    rotated them meanwhile: a refused request was not applied, so sending it again is safe); if
    they are still refused the owner signs in again and the agent is told to try again."""
    try:
        if not credentials_of(login):
            raise CredentialsRefused("no credentials yet")
        try:
            return await send(borrowed(login))
        except CredentialsRefused:
            if not await _fresh_credentials(login) or not credentials_of(login):
                raise
            return await send(borrowed(login))
    except CredentialsRefused as exc:
        await _ask_quietly(login, "renew")
        raise ActionRefused(
            "Your contact-center session is being restored: try again in a moment.", 503
        ) from exc
    except Unavailable as exc:
        raise _refusal(exc) from exc
    except VoiceApiError as exc:
        # The desk offered what the Voice API refuses: the saved state may be wrong. Read it again.
        await _ask_quietly(login, "resync")
        raise _refusal(exc) from exc


async def _ask_quietly(login: AgentLogin, command: str, **fields: Any) -> None:
    """Tell the owner something that needs no answer; a missing owner is asked to start."""
    try:
        await ask_owner(login, command, wait=False, **fields)
    except VoiceApiError:
        pass
    except Exception:
        log.exception("could not reach the session worker of login %s", login.pk)


@asynccontextmanager
async def _audited(
    user: AbstractBaseUser, action: str, call_id: str = "", detail: str = ""
) -> AsyncIterator[None]:
    """Records how the action in the block ended: ok, refused (with the message the agent sees) or
    failed (the Voice API unavailable, or an error of ours, named by its type only)."""
    entry: dict[str, Any] = {"user": user, "action": action, "call_id": call_id, "detail": detail}
    try:
        yield
    except ActionRefused as exc:
        result = AuditEntry.FAILED if exc.status >= 500 else AuditEntry.REFUSED
        await audit.arecord(**entry, result=result, message=exc.message)
        raise
    except asyncio.CancelledError:
        await audit.arecord(**entry, result=AuditEntry.FAILED, message="cancelled: the request went away")
        raise
    except Exception as exc:
        await audit.arecord(**entry, result=AuditEntry.FAILED, message=type(exc).__name__)
        raise
    await audit.arecord(**entry, result=AuditEntry.OK)


def _detail(name: str, data: Any) -> str:
    """What an audit entry may say about an operation's parameters: never DTMF digits or data values."""
    operation = OPERATIONS.get(name)
    for param in ("destination", "participant", "key"):
        if operation is not None and param in operation.params:
            return str(data.get(param) or "")
    return ""


async def call_operation(user: AbstractBaseUser, call_id: str, name: str, data: Any) -> None:
    async with _audited(user, name, call_id, _detail(name, data)):
        await _call_operation(user, call_id, name, data)


async def _call_operation(user: AbstractBaseUser, call_id: str, name: str, data: Any) -> None:
    login, saved = await _login_and_call(user, call_id)
    live = await _live_call_offering(login, call_id, name, saved)
    operation = OPERATIONS.get(name)
    if operation is None:
        raise ActionRefused(f"Unknown operation {name!r}")
    if not live.offers(name):
        raise ActionRefused(f"{operation.label} is not available for this call now.", 409)
    try:
        params = clean(operation, data, live)
    except InvalidParameters as exc:
        raise ActionRefused(str(exc)) from exc
    voice: dict[str, Any] = {k: params[k] for k in ("destination", "digits", "participant") if k in params}
    if name in ("AttachUserData", "UpdateUserData"):
        voice["user_data"] = {params["key"]: params["value"]}
    elif name == "DeleteUserDataPair":
        voice["key"] = params["key"]
    if name in TWO_CALL_OPERATIONS:
        voice["other_call_id"] = await _partner(login, live)
        if name == "SwapCalls" and not voice["other_call_id"]:
            raise ActionRefused("There is no held call to swap with.", 409)
    observation = await _voice_api(login, lambda backend: backend.call_operation(live.call_id, name, voice))
    if observation is not None:
        await _ask_quietly(login, "observe", call_id=observation.call_id, facts=observation.facts)


async def dial(user: AbstractBaseUser, data: Any) -> None:
    async with _audited(user, "Dial", detail=str(data.get("destination") or "")):
        await _dial(user, data)


async def _dial(user: AbstractBaseUser, data: Any) -> None:
    login = await login_for(user)
    try:
        number = clean_destination(data.get("destination") or "")
    except InvalidParameters as exc:
        raise ActionRefused(str(exc)) from exc
    if login.agent_state == "LoggedOut":
        await _settle(login)
        login = await login_for(user)
    if login.agent_state == "LoggedOut":
        raise ActionRefused("Log in to the contact center before dialling.", 409)
    await _voice_api(login, lambda backend: backend.dial(number))


async def agent_operation(user: AbstractBaseUser, name: str, reason: str = "") -> None:
    async with _audited(user, name, detail=reason[:64]):
        await _agent_operation(user, name, reason)


async def _agent_operation(user: AbstractBaseUser, name: str, reason: str = "") -> None:
    login = await login_for(user)
    if name not in AGENT_OPERATIONS:
        raise ActionRefused(f"Unknown agent operation {name!r}")
    # Only Not ready takes a reason, and only one the administrator offers.
    reason = reason if name == "NotReady" else ""
    if reason and not await _offered_reason(reason):
        raise ActionRefused(REASON_REFUSED)
    if name == "Logout" and await _settled_check(login, _on_a_call):
        raise ActionRefused("You are on a call: finish it before you log out of the contact center.", 409)
    if (
        name == "Ready"
        and login.agent_state == "AfterCallWork"
        and await _settled_check(login, _disposition_missing)
    ):
        raise ActionRefused("Choose a disposition for your last call before you become Ready.", 409)
    if name in ("Login", "Logout"):
        # Signing in and out is the session owner's: on some Voice APIs it is the session itself.
        try:
            await ask_owner(login, "sign_in" if name == "Login" else "sign_out")
        except VoiceApiError as exc:
            raise _refusal(exc) from exc
    else:
        await _voice_api(login, lambda backend: backend.set_agent_state(name, reason[:64]))


@database_sync_to_async
def _offered_reason(reason: str) -> bool:
    if has_control_characters(reason):
        return False
    return NotReadyReason.objects.filter(code=reason, active=True).exists()


@database_sync_to_async
def _on_a_call(login: AgentLogin) -> bool:
    return LiveCall.objects.filter(login=login).exists()


@database_sync_to_async
def _disposition_missing(login: AgentLogin) -> bool:
    return login.disposition_missing()


@database_sync_to_async
def _own_call(login: AgentLogin, call_id: str) -> LiveCall | None:
    """The agent's own call by its id: its live call, or ``None`` once it has ended; ``NotFound``
    when the agent has no such call in the history (another agent's, or none at all)."""
    if _no_such_call_id(call_id) or not CallRecord.objects.filter(login=login, call_id=call_id).exists():
        raise NotFound()
    return LiveCall.objects.filter(login=login, call_id=call_id).first()


@database_sync_to_async
def _offered_code(code: str) -> bool:
    if not code or has_control_characters(code):
        return False
    return DispositionCode.objects.filter(code=code, active=True).exists()


async def disposition(user: AbstractBaseUser, call_id: str, code: str) -> None:
    async with _audited(user, DISPOSITION, call_id, code):
        await _disposition(user, call_id, code)


async def _disposition(user: AbstractBaseUser, call_id: str, code: str) -> None:
    """Keep the code with the call's history; while the call is live and the Voice API lets the
    desk attach data to it, attach it too (user data ``Disposition``), so the switch's reports
    have it. Kept first: the history is the desk's, and a refusal to attach loses nothing."""
    login = await login_for(user)
    try:
        live = await _own_call(login, call_id)
    except NotFound:
        await _settle(login)
        live = await _own_call(login, call_id)
    if not await _offered_code(code):
        raise ActionRefused("Choose one of the disposition codes offered.")
    await services.set_disposition(login.pk, call_id, code)
    # The session's owner pushes from memory: it must know the choice too.
    await _ask_quietly(login, "disposition", call_id=call_id, code=code)
    if live is None:
        return
    # Attached once, the pair is updated on a change of mind: some switches keep both otherwise.
    name = (
        "UpdateUserData"
        if DISPOSITION in live.user_data and live.offers("UpdateUserData")
        else "AttachUserData"
    )
    if not live.offers(name):
        return
    voice = {"user_data": {DISPOSITION: code}}
    try:
        await _voice_api(login, lambda backend: backend.call_operation(call_id, name, voice))
    except ActionRefused as exc:
        message = f"The disposition is saved, but the Voice API did not attach it to the call: {exc.message}"
        raise ActionRefused(message, exc.status) from exc
