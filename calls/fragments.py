"""Every HTML fragment the desk swaps, rendered in one place for the page, htmx and pushes.

A pushed fragment is htmx out-of-band markup: the same partial as on the page, wrapped so the
ws extension knows where it goes (a new card at the end of ``#calls``, where the page moves a
consult under its parent; an updated card in place, a released card deleted).
"""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import format_html

from .models import AgentLogin, CallRecord, DispositionCode, LiveCall, NotReadyReason
from .operations import card_controls
from .voice import Call


def card(live: LiveCall, *, oob: str = "") -> str:
    context = {
        "call": live,
        "controls": card_controls(live),
        "disposition": _card_disposition(live),
        "oob": oob,
    }
    return render_to_string("calls/card.html", context)


def _card_disposition(live: LiveCall) -> dict[str, Any] | None:
    """The disposition picker of a connected customer call (consults have none), when codes exist."""
    if live.parent_call_id or live.state not in ("Established", "Held"):
        return None
    codes = list(DispositionCode.objects.filter(active=True))
    if not codes:
        return None
    chosen = CallRecord.objects.filter(login_id=live.login_id, call_id=live.call_id).values_list(
        "disposition", flat=True
    )
    return {"codes": codes, "chosen": chosen.first() or ""}


def card_push(live: LiveCall, *, created: bool) -> str:
    if not created:
        return card(live, oob="outerHTML")
    # A new card may already be on the page (a snapshot taken after the call was saved):
    # delete it first, so the insert can never duplicate it. It always goes into #calls, even a
    # consult: htmx drops a swap whose target is missing, and the parent may not be on the page
    # (gone, or not pushed yet). desk.js moves a consult under its parent, as live_calls orders them.
    return card_removed(live.call_id) + format_html(
        '<div hx-swap-oob="beforeend:#calls">{}</div>', card(live)
    )


def card_removed(call_id: str) -> str:
    return format_html('<div id="call-{}" hx-swap-oob="delete"></div>', call_id)


def live_calls(login: AgentLogin) -> list[LiveCall]:
    """Cards in display order: each consult call right after its parent."""
    calls = list(login.live_calls.all())
    ids = {c.call_id for c in calls}
    ordered: list[LiveCall] = []
    for parent in [c for c in calls if not c.parent_call_id or c.parent_call_id not in ids]:
        ordered.append(parent)
        ordered += [c for c in calls if c.parent_call_id == parent.call_id]
    return ordered


def calls_region(login: AgentLogin, *, oob: bool = True) -> str:
    return render_to_string(
        "calls/calls_region.html",
        {"cards": [card(c) for c in live_calls(login)], "oob": oob},
    )


STATE_LABELS = {"LoggedOut": "Logged out", "NotReady": "Not ready", "AfterCallWork": "After-call work"}


def agent_state(login: AgentLogin, *, oob: bool = True) -> str:
    """The agent-state bar: the agent's state, with the admin-managed reasons the agent may give
    for NotReady; whether the agent is on a call; the time left of after-call work with a limit;
    and, after a call, the disposition picker for it.

    Its clock counts the time on calls while the agent is on one, and otherwise the time in the
    state since it began or since the last call ended, whichever is later: a Ready agent who has
    just hung up has been waiting for a call for seconds, not for as long as the call lasted."""
    reasons = list(NotReadyReason.objects.all())
    labels = {reason.code: reason.label for reason in reasons}
    reason_label = labels.get(login.state_reason, login.state_reason)
    state_label = STATE_LABELS.get(login.agent_state, login.agent_state)
    if login.agent_state == "NotReady" and reason_label:
        state_label += f" · {reason_label}"
    first_call = login.live_calls.order_by("started_at", "id").first()
    since = login.state_since
    last: CallRecord | None = None
    disposition: dict[str, Any] | None = None
    if first_call is not None:
        since = first_call.started_at
    else:
        ended = login.call_records.filter(ended_at__isnull=False).order_by("-ended_at")
        last_end = ended.values_list("ended_at", flat=True).first()
        if last_end is not None and last_end > since:
            since = last_end
        last = CallRecord.objects.last_handled(login)
    if last is not None and (not last.disposition or login.agent_state == "AfterCallWork"):
        codes = list(DispositionCode.objects.filter(active=True))
        if codes:
            disposition = {
                "call": last,
                "codes": codes,
                "chosen": last.disposition,
                "required": login.server.disposition_required and not last.disposition,
            }
    wrap_up_left = None
    if login.agent_state == "AfterCallWork" and login.wrap_up_until is not None and first_call is None:
        wrap_up_left = max(0, round((login.wrap_up_until - timezone.now()).total_seconds()))
    context = {
        "login": login,
        "reasons": [reason for reason in reasons if reason.active],
        "reason_label": reason_label,
        "state_label": state_label,
        "on_call": first_call is not None,
        "since": since,
        "wrap_up_left": wrap_up_left,
        "disposition": disposition,
        "oob": oob,
    }
    return render_to_string("calls/agent_state.html", context)


def connection(login: AgentLogin, *, oob: bool = True) -> str:
    context = {"status": login.connection, "reason": login.connection_reason, "oob": oob}
    return render_to_string("calls/connection.html", context)


def snapshot(login: AgentLogin) -> str:
    """What a desktop WebSocket gets right after it connects: the whole live state of the agent."""
    return agent_state(login) + connection(login) + calls_region(login)


def missed_call(call: Call) -> str:
    """A toast that stays until the agent dismisses it (and a browser notice in a hidden tab)."""
    caller = ", ".join(call.participants) or call.dnis or "an unknown number"
    return render_to_string(
        "desktop/toast.html",
        {"message": f"Missed call from {caller}", "sticky": True, "notify": "Missed call", "id": call.id},
    )
