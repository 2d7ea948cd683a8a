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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from channels.db import database_sync_to_async
from django.contrib.auth.models import AbstractBaseUser

from . import audit
from .clients import shared_client
from .genesys import VoiceApiError, VoiceApiUnavailable
from .models import AgentLogin, AuditEntry, LiveCall
from .operations import OPERATIONS, InvalidParameters, clean, clean_destination

log = logging.getLogger("switchboard.actions")

AGENT_OPERATIONS = ("Login", "Logout", "Ready", "NotReady", "AfterCallWork")


class ActionRefused(Exception):
    """The desk or the Voice API refused an action; ``message`` is shown to the agent."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class NotFound(ActionRefused):
    def __init__(self, message: str = "No such call") -> None:
        super().__init__(message, 404)


@database_sync_to_async
def login_for(user: AbstractBaseUser) -> AgentLogin:
    """The user's enabled agent login; every action starts here, so no action skips the check."""
    login = AgentLogin.objects.select_related("server", "user").filter(user_id=user.pk, enabled=True).first()
    if login is None:
        raise ActionRefused("You have no enabled agent login; ask an administrator.", 403)
    return login


@database_sync_to_async
def own_live_call(login: AgentLogin, call_id: str) -> LiveCall:
    live = LiveCall.objects.filter(login=login, call_id=call_id).first()
    if live is None:
        raise NotFound()
    return live


@database_sync_to_async
def _swap_partner(login: AgentLogin, live: LiveCall) -> str:
    others = LiveCall.objects.filter(login=login).exclude(call_id=live.call_id)
    partner = (
        others.filter(call_id=live.parent_call_id).first()
        or others.filter(parent_call_id=live.call_id).first()
        or others.filter(state="Held").first()
    )
    if partner is None:
        raise ActionRefused("There is no held call to swap with.", 409)
    return partner.call_id


async def _voice_api(coro: Any) -> None:
    try:
        await coro
    except VoiceApiUnavailable as exc:
        raise ActionRefused(f"The Voice API is unavailable: {exc.message}", 503) from exc
    except VoiceApiError as exc:
        raise ActionRefused(exc.message, 409) from exc


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
    login = await login_for(user)
    live = await own_live_call(login, call_id)
    operation = OPERATIONS.get(name)
    if operation is None:
        raise ActionRefused(f"Unknown operation {name!r}")
    if not live.offers(name):
        raise ActionRefused(f"{operation.label} is not available for this call now.", 409)
    try:
        params = clean(operation, data, live)
    except InvalidParameters as exc:
        raise ActionRefused(str(exc)) from exc
    voice: dict[str, Any] = {}
    if "destination" in params:
        voice["destination"] = params["destination"]
    if "digits" in params:
        voice["digits"] = params["digits"]
    if "participant" in params:
        voice["participant"] = params["participant"]
    if name in ("AttachUserData", "UpdateUserData"):
        voice["userData"] = {params["key"]: params["value"]}
    elif name == "DeleteUserDataPair":
        voice["key"] = params["key"]
    if name == "SwapCalls":
        voice["other_call_id"] = await _swap_partner(login, live)
    client = shared_client(login)
    await _voice_api(client.call_operation(live.call_id, name, **voice))


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
        raise ActionRefused("Log in to the contact center before dialling.", 409)
    await _voice_api(shared_client(login).dial(number))


async def agent_operation(user: AbstractBaseUser, name: str, reason: str = "") -> None:
    async with _audited(user, name, detail=reason[:64]):
        await _agent_operation(user, name, reason)


async def _agent_operation(user: AbstractBaseUser, name: str, reason: str = "") -> None:
    login = await login_for(user)
    if name not in AGENT_OPERATIONS:
        raise ActionRefused(f"Unknown agent operation {name!r}")
    client = shared_client(login)
    if name == "Login":
        await _voice_api(client.start_contact_center_session(login.place))
    elif name == "Logout":
        await _voice_api(client.end_contact_center_session())
    else:
        await _voice_api(client.set_agent_state(name, reason[:64]))
