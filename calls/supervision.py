"""What a team lead asks the Voice API to do about a member: monitor a call, set an agent state.

As for an agent's own actions (``calls.actions``), every request is authorized and checked here
before anything is sent: the team must be one the user leads (``Team.objects.led_by``), the member
on it, the operation one the board offers now. The lead acts through the lead's own agent login's
Voice API session, borrowed from its owner, never through the member's. Each action writes exactly
one audit entry (ok, refused or failed), naming the member.

The desk keeps what it started (``Supervision``): the Voice API answers a supervision request
before its notifications follow, and the board's controls depend on it. ``calls.board`` drops the
record when the monitoring is over (the monitored call or the lead's monitoring leg ended, where
monitoring ends with its call; the lead or the member left the contact center).

The checks and the audit come from ``calls.actions`` (its private helpers, shared on purpose: one
way to reach the owner's session, one way to audit).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser

from . import board
from .actions import (
    REASON_REFUSED,
    ActionRefused,
    NotFound,
    _audited,
    _offered_reason,
    _settle,
    _voice_api,
    login_for,
)
from .db import database_sync_to_async
from .models import AgentLogin, LiveCall, Supervision, Team
from .operations import has_control_characters
from .vendors import backend_class
from .voice import MEMBER_STATES, MONITORING_MODES, STOP_MONITORING, SUPERVISION_OPERATIONS, Member

# The agent state each control of a member's row sets (calls.voice.MEMBER_STATES), by the name the
# page and the audit log give the control.
MEMBER_OPERATIONS = dict(zip(("Ready", "NotReady", "Logout"), MEMBER_STATES, strict=True))


@dataclass(frozen=True)
class Subject:
    """Whom an action is about, for its audit entry: the member's user name and current call."""

    username: str
    call_id: str = ""


# Ids in a URL beyond what the database's keys hold name nothing (and must not reach a query).
MAX_ID = 2**63 - 1


@database_sync_to_async
def _subject(member_id: int) -> Subject:
    member = AgentLogin.objects.select_related("user").filter(pk=min(member_id, MAX_ID)).first()
    if member is None:
        return Subject(f"login {member_id}")
    call = board.current_call(LiveCall.objects.filter(login=member))
    return Subject(member.user.get_username(), call.call_id if call else "")


@database_sync_to_async
def led_member(user: AbstractBaseUser, team_id: int, member_id: int) -> tuple[Team, AgentLogin]:
    """The member of a team the user leads; ``NotFound`` for anything else, whether the team or the
    member does not exist or is not the user's to see (the answer must not tell which)."""
    if not (0 < team_id <= MAX_ID and 0 < member_id <= MAX_ID):
        raise NotFound("No such team member")
    team = Team.objects.led_by(user).filter(pk=team_id).first()
    member = team.active_members().filter(pk=member_id).first() if team is not None else None
    if team is None or member is None:
        raise NotFound("No such team member")
    return team, member


def _name(member: AgentLogin) -> str:
    return member.user.get_full_name() or member.user.get_username()


async def _lead_and_member(
    user: AbstractBaseUser, team_id: int, member_id: int
) -> tuple[AgentLogin, AgentLogin]:
    """The lead's login and the led member's. Either logged out as saved is read again once its
    session's owner has saved all it has pushed: a lead who has just logged in sees it on the desk a
    moment before the database has it, and must not be refused for it."""
    lead = await login_for(user)
    _, member = await led_member(user, team_id, member_id)
    stale = [login for login in (lead, member) if login.agent_state == "LoggedOut"]
    if stale:
        await asyncio.gather(*(_settle(login) for login in stale))
        lead = await login_for(user)
        _, member = await led_member(user, team_id, member_id)
    return lead, member


def _may_act(lead: AgentLogin, member: AgentLogin) -> None:
    """The lead's own session acts, so the lead must be in the contact center, on the member's
    Voice API: never through the member's own session."""
    if lead.agent_state == "LoggedOut":
        raise ActionRefused("Log in to the contact center first: your own session acts.", 409)
    if lead.pk == member.pk:
        raise ActionRefused("That is your own agent login: use your desk.", 409)
    if lead.server_id != member.server_id:
        raise ActionRefused(f"{_name(member)} is on another voice server than yours.", 409)


@dataclass(frozen=True)
class Situation:
    """What the lead's supervision controls depend on now."""

    mine: Supervision | None
    call: LiveCall | None
    leg: tuple[str, ...]


@database_sync_to_async
def _situation(lead: AgentLogin, member: AgentLogin) -> Situation:
    mine = Supervision.objects.filter(lead=lead).select_related("member__user").first()
    call = board.current_call(LiveCall.objects.filter(login=member))
    leg: tuple[str, ...] = ()
    if mine is not None and mine.lead_call_id:
        found = LiveCall.objects.filter(login=lead, call_id=mine.lead_call_id).first()
        leg = tuple(found.capabilities) if found else ()
    return Situation(mine, call, leg)


@database_sync_to_async
def _record(lead: AgentLogin, member: AgentLogin, call_id: str, operation: str) -> None:
    """What the Voice API accepted: a supervision started, switched to another mode, or stopped."""
    if operation == STOP_MONITORING:
        Supervision.objects.filter(lead=lead).delete()
    elif operation in MONITORING_MODES:
        Supervision.objects.update_or_create(
            lead=lead, defaults={"member": member, "call_id": call_id, "mode": operation, "lead_call_id": ""}
        )
    else:
        mode = operation.removeprefix("SwitchTo")
        Supervision.objects.filter(lead=lead, member=member).update(mode=mode)


async def supervise(user: AbstractBaseUser, team_id: int, member_id: int, operation: str) -> None:
    """Listen in on, coach or barge in on a member's call; switch the monitoring; stop it."""
    subject = await _subject(member_id)
    async with _audited(user, operation[:64], subject.call_id, subject.username):
        await _supervise(user, team_id, member_id, operation)


async def _supervise(user: AbstractBaseUser, team_id: int, member_id: int, operation: str) -> None:
    lead, member = await _lead_and_member(user, team_id, member_id)
    if operation not in SUPERVISION_OPERATIONS:
        raise ActionRefused(f"Unknown operation {operation!r}")
    _may_act(lead, member)
    now = await _situation(lead, member)
    if now.mine is not None and now.mine.member_id != member.pk:
        other = _name(now.mine.member)
        raise ActionRefused(f"You are monitoring the call of {other}: stop that first.", 409)
    mode = now.mine.mode if now.mine is not None else ""
    state = now.call.state if now.call is not None else ""
    offered = backend_class(member.server.dialect).supervision_offers(state, mode, now.leg)
    if operation not in offered:
        label = board.SUPERVISE_LABELS.get(operation, operation)
        raise ActionRefused(f"{label} is not available for {_name(member)} now.", 409)
    call_id = now.mine.call_id if now.mine is not None else now.call.call_id if now.call else ""
    target = Member(username=member.username, dn=member.dn)
    await _voice_api(lead, lambda backend: backend.supervise(operation, target, call_id, mode=mode))
    await _record(lead, member, call_id, operation)
    await board.member_changed(member.pk)


async def set_member_state(
    user: AbstractBaseUser, team_id: int, member_id: int, operation: str, reason: str = ""
) -> None:
    """Set a member Ready, Not ready (with one of the admin's reasons) or log them out."""
    subject = await _subject(member_id)
    detail = f"{subject.username} {reason}".strip() if operation == "NotReady" else subject.username
    async with _audited(user, f"Member{operation}"[:64], detail=detail[:100]):
        await _set_member_state(user, team_id, member_id, operation, reason)


async def _set_member_state(
    user: AbstractBaseUser, team_id: int, member_id: int, operation: str, reason: str
) -> None:
    lead, member = await _lead_and_member(user, team_id, member_id)
    state = MEMBER_OPERATIONS.get(operation)
    if state is None:
        raise ActionRefused(f"Unknown operation {operation!r}")
    reason = reason if operation == "NotReady" else ""
    if reason and (has_control_characters(reason) or not await _offered_reason(reason)):
        raise ActionRefused(REASON_REFUSED)
    _may_act(lead, member)
    if member.agent_state == "LoggedOut":
        raise ActionRefused(f"{_name(member)} is not logged in to the contact center.", 409)
    if operation == "Logout" and await _on_a_call(member):
        raise ActionRefused(f"{_name(member)} is on a call: log them out once it is over.", 409)
    target = Member(username=member.username, dn=member.dn)
    await _voice_api(lead, lambda backend: backend.set_member_state(target, state, reason[:64]))


@database_sync_to_async
def _on_a_call(member: AgentLogin) -> bool:
    return LiveCall.objects.filter(login=member).exists()
