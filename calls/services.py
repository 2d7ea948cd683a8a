"""The one writer of call state, agent state and connection status, and their one publisher.

Each public coroutine saves in a transaction (on a database thread) and, once it has committed,
pushes the re-rendered fragments to the agent's group from the event loop. Nothing else writes
``LiveCall``/``CallRecord`` or sends to a desk group.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable

from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone

from . import fragments
from .db import database_sync_to_async
from .models import AgentLogin, CallRecord, LiveCall
from .voice import AgentState, Call

log = logging.getLogger("switchboard.services")


def group_name(user_id: int) -> str:
    return f"desk.agent.{user_id}"


Push = tuple[int, str]


async def publish(push: Push | None) -> None:
    """Send HTML (htmx out-of-band fragments) to every desktop tab of one agent."""
    if not push or not push[1]:
        return
    layer = get_channel_layer()
    if layer is None:
        return
    user_id, html = push
    try:
        await layer.group_send(group_name(user_id), {"type": "desk.push", "html": html})
    except Exception:
        # A full or unreachable layer must not undo a saved state change: the next snapshot heals the page.
        log.exception("could not publish to agent %s", user_id)


def _record(login: AgentLogin, call: Call, now: datetime.datetime) -> None:
    record, created = CallRecord.objects.get_or_create(
        login=login,
        call_id=call.id,
        defaults={
            "call_type": call.call_type,
            "dnis": call.dnis,
            "parties": list(call.participants),
            "user_data": call.user_data,
            "started_at": now - datetime.timedelta(seconds=call.duration),
        },
    )
    if not created:
        record.parties = list(dict.fromkeys([*record.parties, *call.participants]))
        if call.user_data:
            record.user_data = call.user_data
    record.duration = max(record.duration, call.duration)
    record.final_state = call.state
    if not call.is_live and record.ended_at is None:
        record.ended_at = now
        record.duration = max(call.duration, int((now - record.started_at).total_seconds()))
    record.save()


def _save_live(login: AgentLogin, call: Call, now: datetime.datetime) -> tuple[LiveCall, bool]:
    state = {
        "state": call.state,
        "call_type": call.call_type,
        "parent_call_id": call.parent_id or "",
        "participants": list(call.participants),
        "capabilities": list(call.capabilities),
        "user_data": call.user_data,
        "muted": call.muted,
        "dnis": call.dnis,
    }
    return LiveCall.objects.update_or_create(
        login=login,
        call_id=call.id,
        defaults=state,
        # When a call is first seen, its duration says how long ago it started.
        create_defaults={**state, "started_at": now - datetime.timedelta(seconds=call.duration)},
    )


def _apply_call(login_id: int, call: Call) -> Push:
    now = timezone.now()
    with transaction.atomic():
        login = AgentLogin.objects.select_related("user").get(pk=login_id)
        _record(login, call, now)
        if call.is_live:
            live, created = _save_live(login, call, now)
            html = fragments.card_push(live, created=created)
        else:
            deleted, _ = LiveCall.objects.filter(login=login, call_id=call.id).delete()
            html = fragments.card_removed(call.id) if deleted else ""
    return login.user_id, html


def _replace_calls(login_id: int, calls: Iterable[Call]) -> Push:
    now = timezone.now()
    calls = [c for c in calls if c.is_live]
    with transaction.atomic():
        login = AgentLogin.objects.select_related("user").get(pk=login_id)
        gone = LiveCall.objects.filter(login=login).exclude(call_id__in=[c.id for c in calls])
        for live in gone:
            CallRecord.objects.filter(login=login, call_id=live.call_id, ended_at__isnull=True).update(
                ended_at=now, final_state="Released"
            )
        gone.delete()
        for call in calls:
            _record(login, call, now)
            _save_live(login, call, now)
    return login.user_id, fragments.calls_region(login)


def _set_agent_state(login_id: int, state: AgentState) -> Push:
    with transaction.atomic():
        login = AgentLogin.objects.select_related("user").get(pk=login_id)
        if (login.agent_state, login.state_reason) != (state.state, state.reason):
            login.agent_state, login.state_reason, login.state_since = (
                state.state,
                state.reason,
                timezone.now(),
            )
            login.save(update_fields=["agent_state", "state_reason", "state_since"])
    return login.user_id, fragments.agent_state(login)


def _set_connection(login_id: int, status: str, reason: str) -> Push | None:
    reason = "" if status == AgentLogin.CONNECTED else reason[:200]
    with transaction.atomic():
        login = AgentLogin.objects.select_related("user").get(pk=login_id)
        if (login.connection, login.connection_reason) == (status, reason):
            return None
        login.connection, login.connection_reason = status, reason
        login.save(update_fields=["connection", "connection_reason"])
    return login.user_id, fragments.connection(login)


async def apply_call(login_id: int, call: Call) -> None:
    """One call notification: save the live call (or drop it when released), update its history."""
    await publish(await database_sync_to_async(_apply_call)(login_id, call))


async def replace_calls(login_id: int, calls: Iterable[Call]) -> None:
    """A full resync: the saved live calls become exactly the server's, and the page is re-rendered."""
    await publish(await database_sync_to_async(_replace_calls)(login_id, list(calls)))


async def set_agent_state(login_id: int, state: AgentState) -> None:
    await publish(await database_sync_to_async(_set_agent_state)(login_id, state))


async def set_connection(login_id: int, status: str, reason: str = "") -> None:
    """The session's link to the Voice API; ``reason`` says, in the agent's words, why it is not up."""
    await publish(await database_sync_to_async(_set_connection)(login_id, status, reason))
