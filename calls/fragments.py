"""Every HTML fragment the desk swaps, rendered in one place for the page, htmx and pushes.

A pushed fragment is htmx out-of-band markup: the same partial as on the page, wrapped so the
ws extension knows where it goes (a new card at the end of ``#calls``, where the page moves a
consult under its parent; an updated card in place, a released card deleted).
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import format_html

from desktop import jinja

from .directory import search, speed_dials
from .models import AgentLogin, CallRecord, DispositionCode, LiveCall, NotReadyReason, SpeedDial
from .operations import card_controls
from .templatetags.calls import parties
from .voice import Call

# The admin's lists are read again at most this often: by the sessions for their pushes
# (``calls.live.Reference``) and by the pages (``PAGE_LISTS``) alike.
REFERENCE_SECONDS = 2.0


class AdminLists(NamedTuple):
    """The lists an administrator keeps that every desk page shows."""

    reasons: list[NotReadyReason]
    codes: list[DispositionCode]  # the active ones
    speed_dials: list[SpeedDial]  # the active ones


class PageLists:
    """The admin's lists as this process's pages render them (the desk page, a tab's snapshot): read
    at most every ``REFERENCE_SECONDS``, and at once after an administrator changes them in this
    process (``calls.signals``), as the sessions' pushes are. Three queries of every page render
    otherwise, and two of every tab's snapshot. Renders run in many threads: one that reads the lists
    while they change keeps what it read for itself."""

    def __init__(self) -> None:
        self._generation = 0
        self._held: tuple[AdminLists, float, int] | None = None

    def changed(self) -> None:
        self._generation += 1

    def current(self) -> AdminLists:
        generation, held, started = self._generation, self._held, time.monotonic()
        if held is not None and held[2] == generation and started - held[1] < REFERENCE_SECONDS:
            return held[0]
        reasons = list(NotReadyReason.objects.all())
        lists = AdminLists(reasons, list(DispositionCode.objects.filter(active=True)), speed_dials())
        self._held = (lists, started, generation)
        return lists


PAGE_LISTS = PageLists()


def card(live: LiveCall, *, oob: str = "", facts: CardFacts | None = None) -> str:
    """One call card. ``facts``: what the card shows beyond the call itself, when the caller holds
    it in memory (the session worker); otherwise it is read from the database."""
    facts = facts or card_facts(live)
    context = {
        "call": live,
        "controls": card_controls(live),
        "disposition": _card_disposition(live, facts),
        "consult_for": facts.consult_for,
        "oob": oob,
    }
    return jinja.render("calls/card.html", context)


@dataclass(frozen=True)
class CardFacts:
    """The active disposition codes, the code the agent chose for this call, and whom a consult
    is about (the parties of its parent call, as that card shows them)."""

    codes: list[DispositionCode]
    chosen: str = ""
    consult_for: str = "another call"


def card_facts(live: LiveCall) -> CardFacts:
    """A card's facts as the database has them."""
    codes: list[DispositionCode] = []
    chosen = ""
    consult_for = "another call"
    if live.parent_call_id:
        parent = LiveCall.objects.filter(login_id=live.login_id, call_id=live.parent_call_id).first()
        if parent is not None:
            consult_for = parties(parent)
    elif live.state in ("Established", "Held"):
        codes = list(DispositionCode.objects.filter(active=True))
        record = CallRecord.objects.filter(login_id=live.login_id, call_id=live.call_id)
        chosen = record.values_list("disposition", flat=True).first() or ""
    return CardFacts(codes, chosen, consult_for)


def _card_disposition(live: LiveCall, facts: CardFacts) -> dict[str, Any] | None:
    """The disposition picker of a connected customer call (consults have none), when codes exist."""
    if live.parent_call_id or live.state not in ("Established", "Held") or not facts.codes:
        return None
    return {"codes": facts.codes, "chosen": facts.chosen}


def card_push(live: LiveCall, *, created: bool, facts: CardFacts | None = None) -> str:
    if not created:
        return card(live, oob="outerHTML", facts=facts)
    # A new card may already be on the page (a snapshot taken after the call was saved):
    # delete it first, so the insert can never duplicate it. It always goes into #calls, even a
    # consult: htmx drops a swap whose target is missing, and the parent may not be on the page
    # (gone, or not pushed yet). desk.js moves a consult under its parent, as live_calls orders them.
    return card_removed(live.call_id) + format_html(
        '<div hx-swap-oob="beforeend:#calls">{}</div>', card(live, facts=facts)
    )


def card_removed(call_id: str) -> str:
    return format_html('<div id="call-{}" hx-swap-oob="delete"></div>', call_id)


def live_calls(login: AgentLogin) -> list[LiveCall]:
    """The agent's saved live calls in display order."""
    return in_display_order(login.live_calls.all())


def in_display_order(calls: Iterable[LiveCall]) -> list[LiveCall]:
    """Cards in display order: by start, each consult call right after its parent."""
    calls = sorted(calls, key=lambda c: (c.started_at, c.call_id))
    ids = {c.call_id for c in calls}
    ordered: list[LiveCall] = []
    for parent in [c for c in calls if not c.parent_call_id or c.parent_call_id not in ids]:
        ordered.append(parent)
        ordered += [c for c in calls if c.parent_call_id == parent.call_id]
    return ordered


def calls_region(
    login: AgentLogin,
    *,
    oob: bool = True,
    calls: Iterable[LiveCall] | None = None,
    facts: Callable[[LiveCall], CardFacts] | None = None,
) -> str:
    """Every card of the agent; ``calls`` and their ``facts`` when the caller holds them in memory,
    otherwise read from the database in three queries, however many calls there are."""
    if calls is None:
        shown = live_calls(login)
        facts = _facts_of(login, shown)
    else:
        shown = in_display_order(calls)
    cards = [card(c, facts=facts(c) if facts else None) for c in shown]
    return render_to_string("calls/calls_region.html", {"cards": cards, "oob": oob})


def _facts_of(
    login: AgentLogin, calls: list[LiveCall], codes: list[DispositionCode] | None = None
) -> Callable[[LiveCall], CardFacts]:
    """``card_facts`` for all of the agent's live calls at once (``codes``: the active disposition
    codes, when the caller has read them)."""
    if codes is None:
        codes = list(DispositionCode.objects.filter(active=True))
    records = CallRecord.objects.filter(login=login, call_id__in=[c.call_id for c in calls])
    chosen = dict(records.values_list("call_id", "disposition"))
    by_id = {c.call_id: c for c in calls}

    def facts(live: LiveCall) -> CardFacts:
        parent = by_id.get(live.parent_call_id) if live.parent_call_id else None
        return CardFacts(codes, chosen.get(live.call_id, ""), parties(parent) if parent else "another call")

    return facts


STATE_LABELS = {"LoggedOut": "Logged out", "NotReady": "Not ready", "AfterCallWork": "After-call work"}


@dataclass(frozen=True)
class BarFacts:
    """What the agent-state bar shows beyond the login itself: the admin's Not Ready reasons and
    disposition codes, when the first live call started, when the last call ended, and the last
    answered call (the one a disposition is for)."""

    reasons: list[NotReadyReason]
    codes: list[DispositionCode]
    first_call_started: datetime.datetime | None
    last_end: datetime.datetime | None
    last_handled: CallRecord | None


def last_call_end(login: AgentLogin) -> datetime.datetime | None:
    """When the agent's most recent call ended, as the history has it."""
    return CallRecord.objects.ended().filter(login=login).values_list("ended_at", flat=True).first()


def bar_facts(
    login: AgentLogin,
    calls: list[LiveCall] | None = None,
    codes: list[DispositionCode] | None = None,
    reasons: list[NotReadyReason] | None = None,
) -> BarFacts:
    """The bar's facts as the database has them (``calls``: the agent's live calls, ``codes``: the
    active disposition codes, and ``reasons``: the Not Ready reasons, when the caller has them)."""
    if calls is None:
        first_call = login.live_calls.order_by("started_at", "id").first()
    else:
        first_call = min(calls, key=lambda call: (call.started_at, call.pk), default=None)
    if codes is None:
        codes = list(DispositionCode.objects.filter(active=True))
    last_end = None
    last = None
    if first_call is None:
        last_end = last_call_end(login)
        last = CallRecord.objects.last_handled(login)
    return BarFacts(
        reasons=list(NotReadyReason.objects.all()) if reasons is None else reasons,
        codes=codes,
        first_call_started=first_call.started_at if first_call else None,
        last_end=last_end,
        last_handled=last,
    )


def agent_state(login: AgentLogin, *, oob: bool = True, facts: BarFacts | None = None) -> str:
    """The agent-state bar: the agent's state, with the admin-managed reasons the agent may give
    for NotReady; whether the agent is on a call; the time left of after-call work with a limit;
    and, after a call, the disposition picker for it. ``facts``: see ``BarFacts``; read from the
    database unless the caller holds them in memory (the session worker).

    Its clock counts the time on calls while the agent is on one, and otherwise the time in the
    state since it began or since the last call ended, whichever is later: a Ready agent who has
    just hung up has been waiting for a call for seconds, not for as long as the call lasted."""
    facts = facts or bar_facts(login)
    labels = {reason.code: reason.label for reason in facts.reasons}
    reason_label = labels.get(login.state_reason, login.state_reason)
    state_label = STATE_LABELS.get(login.agent_state, login.agent_state)
    if login.agent_state == "NotReady" and reason_label:
        state_label += f" · {reason_label}"
    on_call = facts.first_call_started is not None
    since = login.state_since
    last: CallRecord | None = None
    disposition: dict[str, Any] | None = None
    if facts.first_call_started is not None:
        since = facts.first_call_started
    else:
        if facts.last_end is not None and facts.last_end > since:
            since = facts.last_end
        last = facts.last_handled
    if last is not None and (not last.disposition or login.agent_state == "AfterCallWork") and facts.codes:
        disposition = {
            "call": last,
            "codes": facts.codes,
            "chosen": last.disposition,
            "required": login.server.disposition_required and not last.disposition,
        }
    wrap_up_left = None
    if login.agent_state == "AfterCallWork" and login.wrap_up_until is not None and not on_call:
        wrap_up_left = max(0, round((login.wrap_up_until - timezone.now()).total_seconds()))
    context = {
        "login": login,
        "reasons": [reason for reason in facts.reasons if reason.active],
        "reason_label": reason_label,
        "state_label": state_label,
        "on_call": on_call,
        "since": since,
        "wrap_up_left": wrap_up_left,
        "disposition": disposition,
        "oob": oob,
    }
    return jinja.render("calls/agent_state.html", context)


def connection(login: AgentLogin, *, oob: bool = True) -> str:
    context = {"status": login.connection, "reason": login.connection_reason, "oob": oob}
    return render_to_string("calls/connection.html", context)


class DeskParts(NamedTuple):
    """The agent's whole live state as a page shows it: the agent-state bar, the connection and the
    calls."""

    agent_state: str
    connection: str
    calls: str


def desk_parts(login: AgentLogin, *, oob: bool = True) -> DeskParts:
    """The agent's desk as the database has it, read once for the bar and the cards alike; the
    admin's lists as the pages hold them (``PAGE_LISTS``)."""
    calls = live_calls(login)
    lists = PAGE_LISTS.current()
    return DeskParts(
        agent_state(login, oob=oob, facts=bar_facts(login, calls, lists.codes, lists.reasons)),
        connection(login, oob=oob),
        calls_region(login, oob=oob, calls=calls, facts=_facts_of(login, calls, lists.codes)),
    )


def snapshot(login: AgentLogin) -> str:
    """What a desktop WebSocket gets right after it connects: the whole live state of the agent."""
    return "".join(desk_parts(login))


def directory(login: AgentLogin, query: str) -> str:
    """The directory's options for ``query`` (already cleaned): colleagues with their state, speed
    dials and recent numbers, for the list under a transfer, conference or dial form's number."""
    return render_to_string("calls/directory.html", {"directory": search(login, query)})


def directory_refusal(message: str) -> str:
    """Why the directory answers no options (a session that ended, a search too long or too many):
    said in the list itself, where the agent is looking."""
    return render_to_string("calls/directory.html", {"refusal": message})


def missed_call(call: Call) -> str:
    """A toast that stays until the agent dismisses it (and a browser notice in a hidden tab)."""
    caller = ", ".join(call.participants) or call.dnis or "an unknown number"
    return render_to_string(
        "desktop/toast.html",
        {"message": f"Missed call from {caller}", "sticky": True, "notify": "Missed call", "id": call.id},
    )
