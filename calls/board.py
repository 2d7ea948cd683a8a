"""The team lead's board: one row per team member, rendered in one place for the page, the socket's
snapshot and every push, and pushed to the boards of the member's teams when the member changes.

A row shows the member's agent state (with its reason and since when), the current call (type,
other party, state, since when), the link of the member's session, who monitors the member's call,
and the controls the lead may use now: Listen, Coach, Barge in (and, while monitoring, switch or
stop), Ready, Not ready with a reason, Log out.

The controls depend on who looks: the lead who monitors a call sees Switch and Stop, another lead
sees who monitors it. So a row is rendered for each lead of the team and pushed to that lead's
group for that team (``board_group``), which only a socket of that lead, checked to lead the team
(``Team.objects.led_by``), ever joins. A lead removed from a team gets no further push at once.

The hook: the session worker (and ``calls.services``) awaits ``member_changed`` once a change of a
login's agent state, connection or calls is saved. The row is rendered from the database, so the
board shows what is saved, and the push goes out through ``calls.services.publish_group``, the one
publisher. The same hook ends the desk's record of a supervision (``Supervision``) whose monitored
call, or whose lead's own monitoring leg, has ended, and re-renders a lead's own boards when the
lead changes (their controls follow their own state).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q
from django.template.loader import render_to_string

from . import services
from .fragments import STATE_LABELS
from .models import AgentLogin, LiveCall, NotReadyReason, Supervision, Team
from .persist import in_parallel
from .vendors import backend_class
from .voice import STOP_MONITORING, SWITCH_TO, VoiceApiError

log = logging.getLogger("switchboard.board")

# The order a member's calls are told in: the one that needs the agent now first.
RELEVANCE = ("Ringing", "Established", "Dialing", "Held")
# Labels of the supervision controls, by the operation's name.
SUPERVISE_LABELS = {
    "ListenIn": "Listen",
    "Coach": "Coach",
    "BargeIn": "Barge in",
    "SwitchToListenIn": "Switch to listen",
    "SwitchToCoach": "Switch to coach",
    "SwitchToBargeIn": "Switch to barge-in",
    STOP_MONITORING: "Stop",
}
SUPERVISE_HINTS = {
    "ListenIn": "Hear the call; nobody hears you",
    "Coach": "Speak to the agent only; the other party does not hear you",
    "BargeIn": "Join the call: everyone hears you",
}
# How a row says who monitors the call: "You are listening", "lead2 is coaching".
DOING = {"ListenIn": "listening", "Coach": "coaching", "BargeIn": "in the call (barged in)"}
# The count filters at the top of a board, in the order shown: every agent state, and on a call.
COUNTED = (
    ("Ready", "Ready"),
    ("NotReady", "Not ready"),
    ("AfterCallWork", "After-call work"),
    ("LoggedOut", "Logged out"),
    ("call", "On a call"),
)


def board_group(team_id: int, user_id: int) -> str:
    """The sockets of one lead's board of one team."""
    return f"board.team.{team_id}.lead.{user_id}"


@dataclass
class Viewer:
    """The lead a board is rendered for: the desk user, their own agent login (``None``: they have
    none, so they may look but not act), and the supervision they have running, if any."""

    user_id: int
    login: AgentLogin | None = None
    supervision: Supervision | None = None
    leg: LiveCall | None = None


@dataclass
class Facts:
    """What rows are rendered from, read in a few queries for the whole board."""

    calls: dict[int, list[LiveCall]] = field(default_factory=dict)
    supervisions: dict[int, list[Supervision]] = field(default_factory=dict)
    reasons: list[NotReadyReason] = field(default_factory=list)

    @classmethod
    def read(cls, member_ids: Iterable[int]) -> Facts:
        ids = list(member_ids)
        facts = cls(reasons=list(NotReadyReason.objects.all()))
        for live in LiveCall.objects.filter(login_id__in=ids):
            facts.calls.setdefault(live.login_id, []).append(live)
        for supervision in Supervision.objects.filter(member_id__in=ids).select_related("lead__user"):
            facts.supervisions.setdefault(supervision.member_id, []).append(supervision)
        return facts


def viewer(user_id: int) -> Viewer:
    """A lead as a board sees them: their enabled agent login, their supervision and its leg."""
    login = AgentLogin.objects.select_related("server", "user").filter(user_id=user_id, enabled=True).first()
    if login is None:
        return Viewer(user_id)
    supervision = Supervision.objects.filter(lead=login).first()
    leg = None
    if supervision is not None and supervision.lead_call_id:
        leg = LiveCall.objects.filter(login=login, call_id=supervision.lead_call_id).first()
    return Viewer(user_id, login, supervision, leg)


def current_call(calls: Iterable[LiveCall]) -> LiveCall | None:
    """The call a row shows: ringing first, then talking, dialling, held; the earliest of a kind."""
    ranked = sorted(
        calls,
        key=lambda c: (RELEVANCE.index(c.state) if c.state in RELEVANCE else len(RELEVANCE), c.started_at),
    )
    return ranked[0] if ranked else None


def _may_act(member: AgentLogin, seen_by: Viewer) -> bool:
    """Whether the lead may act on the member at all: through an agent login of their own, in the
    contact center (the lead's own session acts), on the member's voice server, and not on themselves."""
    lead = seen_by.login
    return (
        lead is not None
        and lead.agent_state != "LoggedOut"
        and lead.pk != member.pk
        and lead.server_id == member.server_id
    )


def _supervise_controls(member: AgentLogin, call: LiveCall | None, seen_by: Viewer) -> list[dict[str, str]]:
    """The supervision controls the lead has now: none unless the lead may act on the member;
    while the lead monitors another member's call, none here (one call at a time); otherwise
    what the member's Voice API offers."""
    if not _may_act(member, seen_by):
        return []
    mine = seen_by.supervision
    if mine is not None and mine.member_id != member.pk:
        return []
    mode = mine.mode if mine is not None else ""
    if not mode and call is None:
        return []
    leg = tuple(seen_by.leg.capabilities) if seen_by.leg is not None else ()
    try:
        offered = backend_class(member.server.dialect).supervision_offers(
            call.state if call else "", mode, leg
        )
    except VoiceApiError:
        return []
    return [
        {"name": name, "label": SUPERVISE_LABELS[name], "hint": SUPERVISE_HINTS.get(name, "")}
        for name in offered
        if name in SUPERVISE_LABELS
    ]


def _state_controls(
    member: AgentLogin, calls: list[LiveCall], reasons: list[NotReadyReason], seen_by: Viewer
) -> dict[str, bool]:
    """Which of Ready, Not ready and Log out the lead may set for the member now: only for a member
    in the contact center whom the lead may act on; Not ready again only to change the reason; Log
    out only once the member's calls are over, as for the agent's own."""
    if not _may_act(member, seen_by):
        return {}
    state = member.agent_state
    if state == "LoggedOut":
        return {}
    return {
        "Ready": state != "Ready",
        "NotReady": state != "NotReady" or bool(reasons),
        "Logout": not calls,
    }


def _monitoring(member: AgentLogin, supervisions: list[Supervision], seen_by: Viewer) -> list[str]:
    """Who monitors the member's calls, in words: "You are listening", "lead2 is coaching"."""
    lines = []
    for supervision in supervisions:
        doing = DOING.get(supervision.mode, supervision.mode)
        if seen_by.login is not None and supervision.lead_id == seen_by.login.pk:
            lines.append(f"You are {doing}")
        else:
            lines.append(f"{supervision.lead.user.get_username()} is {doing}")
    return lines


def _note(seen_by: Viewer) -> str:
    """Why a lead has no controls on any row, when that is so."""
    if seen_by.login is None:
        return "You need an agent login of your own to act."
    if seen_by.login.agent_state == "LoggedOut":
        return "Log in to the contact center to act."
    return ""


def member_row(team: Team, member: AgentLogin, facts: Facts, seen_by: Viewer, *, oob: bool = False) -> str:
    """One member's row on one lead's board of one team."""
    calls = facts.calls.get(member.pk, [])
    call = current_call(calls)
    supervisions = facts.supervisions.get(member.pk, [])
    labels = {reason.code: reason.label for reason in facts.reasons}
    state_label = STATE_LABELS.get(member.agent_state, member.agent_state)
    reason_label = labels.get(member.state_reason, member.state_reason)
    if member.agent_state == "NotReady" and reason_label:
        state_label += f" · {reason_label}"
    mine = seen_by.supervision if seen_by.supervision and seen_by.supervision.member_id == member.pk else None
    reasons = [reason for reason in facts.reasons if reason.active]
    context: dict[str, Any] = {
        "team": team,
        "member": member,
        "name": member.user.get_full_name() or member.user.get_username(),
        "state_label": state_label,
        "call": call,
        "more_calls": max(0, len(calls) - 1),
        "monitoring": _monitoring(member, supervisions, seen_by),
        "mine": mine,
        "supervise": _supervise_controls(member, call, seen_by),
        "operations": _state_controls(member, calls, reasons, seen_by),
        "reasons": reasons,
        "note": _note(seen_by),
        "oob": oob,
    }
    return render_to_string("calls/board_row.html", context)


def counts(team: Team, members: list[AgentLogin], facts: Facts, *, oob: bool = False) -> str:
    """How many members are in each agent state, and on a call: the filters at the top of a board."""
    by_state = Counter(member.agent_state for member in members)
    by_state["call"] = sum(1 for member in members if facts.calls.get(member.pk))
    filters = [{"value": value, "label": label, "count": by_state[value]} for value, label in COUNTED]
    context = {"team": team, "total": len(members), "filters": filters, "oob": oob}
    return render_to_string("calls/board_counts.html", context)


def board_region(team: Team, seen_by: Viewer, *, oob: bool = False) -> str:
    """A lead's whole board of one team (``#team``): the counts, then one row per member."""
    members = list(team.active_members())
    facts = Facts.read(member.pk for member in members)
    rows = [member_row(team, member, facts, seen_by) for member in members]
    context = {"team": team, "counts": counts(team, members, facts), "rows": rows, "oob": oob}
    return render_to_string("calls/board.html", context)


def snapshot(team_id: int, user_id: int) -> str:
    """What a lead's board socket gets right after it connects: the whole board, out of band
    (nothing for a team deleted meanwhile)."""
    team = Team.objects.filter(pk=team_id).first()
    return board_region(team, viewer(user_id), oob=True) if team is not None else ""


# --- The hook ------------------------------------------------------------------------------------


def _settle(login: AgentLogin) -> set[int]:
    """Ends the desk's record of the supervisions the login's change has ended; returns the members
    whose rows change because of it.

    1. Any supervision ends when its lead or its member leaves the contact center.
    2. Where monitoring ends with its call (``VoiceBackend.monitoring_follows_agent`` false), it ends
       when the member's call ends, or when the lead's own monitoring leg does (the lead hung it up).
       The leg is the lead's call that offers switching the monitoring: remembered once seen.
    3. Where it follows the agent, it goes on from call to call until the lead stops it.
    """
    ended: list[Supervision] = []
    changed: set[int] = set()
    involved = Supervision.objects.filter(Q(member=login) | Q(lead=login)).select_related(
        "lead", "member__server"
    )
    for supervision in involved:
        if "LoggedOut" in (supervision.lead.agent_state, supervision.member.agent_state):
            ended.append(supervision)
            continue
        member_calls = LiveCall.objects.filter(login_id=supervision.member_id)
        if backend_class(supervision.member.server.dialect).monitoring_follows_agent:
            now = current_call(member_calls)
            if now is not None and now.call_id != supervision.call_id:
                Supervision.objects.filter(pk=supervision.pk).update(call_id=now.call_id)
                changed.add(supervision.member_id)
            continue
        if not member_calls.filter(call_id=supervision.call_id).exists():
            ended.append(supervision)
            continue
        lead_calls = LiveCall.objects.filter(login_id=supervision.lead_id)
        if supervision.lead_call_id:
            if not lead_calls.filter(call_id=supervision.lead_call_id).exists():
                ended.append(supervision)
            continue
        leg = next((c for c in lead_calls if set(c.capabilities) & set(SWITCH_TO.values())), None)
        if leg is not None:
            Supervision.objects.filter(pk=supervision.pk).update(lead_call_id=leg.call_id)
            changed.add(supervision.member_id)
    if ended:
        Supervision.objects.filter(pk__in=[s.pk for s in ended]).delete()
        changed.update(s.member_id for s in ended)
    return changed


def _pushes(login_id: int) -> list[tuple[str, str]]:
    """What to push after a change of the login, as (group, html):

    1. The rows of the login, and of the members whose supervision changed with it or whom it
       monitors, on the board of each lead of every team they are on, with the team's counts.
    2. Where the login's user leads teams: their whole board of each, since their controls on every
       row follow their own state and monitoring call.
    """
    login = AgentLogin.objects.filter(pk=login_id).first()
    if login is None:
        return []
    member_ids = {login.pk} | _settle(login)
    member_ids.update(Supervision.objects.filter(lead=login).values_list("member_id", flat=True))
    led = Team.objects.filter(leads=login.user_id, leads__is_active=True)
    pushes = []
    viewers: dict[int, Viewer] = {}
    if led.exists():
        viewers[login.user_id] = viewer(login.user_id)
        pushes += [
            (board_group(team.pk, login.user_id), board_region(team, viewers[login.user_id], oob=True))
            for team in led
        ]
    teams = Team.objects.filter(members__in=member_ids).distinct().prefetch_related("leads")
    for team in teams:
        leads = [user for user in team.leads.all() if user.is_active and user.pk != login.user_id]
        if not leads:
            continue
        members = list(team.active_members())
        facts = Facts.read(member.pk for member in members)
        html = counts(team, members, facts, oob=True)
        for lead in leads:
            seen_by = viewers.get(lead.pk) or viewers.setdefault(lead.pk, viewer(lead.pk))
            rows = "".join(
                member_row(team, member, facts, seen_by, oob=True)
                for member in members
                if member.pk in member_ids
            )
            pushes.append((board_group(team.pk, lead.pk), rows + html))
    return pushes


async def member_changed(login_id: int) -> None:
    """A login's agent state, connection or calls changed (and are saved): re-render its row on the
    boards of every team it is on, and, for a lead, the lead's own boards (``_pushes``). Never
    raises: a board that misses a push is healed by the next one or by a reload, and the change
    itself is saved already."""
    try:
        pushes = await in_parallel(_pushes)(login_id)
    except Exception:
        log.exception("could not render the board rows of login %s", login_id)
        return
    for group, html in pushes:
        await services.publish_group(group, html)
