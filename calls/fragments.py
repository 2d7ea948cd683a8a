"""Every HTML fragment the desk swaps, rendered in one place for the page, htmx and pushes.

A pushed fragment is htmx out-of-band markup: the same partial as on the page, wrapped so the
ws extension knows where it goes (a new card after its parent or at the end of ``#calls``, an
updated card in place, a released card deleted).
"""

from __future__ import annotations

from django.template.loader import render_to_string
from django.utils.html import format_html

from .models import AgentLogin, LiveCall, NotReadyReason
from .operations import card_controls


def card(live: LiveCall, *, oob: str = "") -> str:
    return render_to_string("calls/card.html", {"call": live, "controls": card_controls(live), "oob": oob})


def card_push(live: LiveCall, *, created: bool) -> str:
    if not created:
        return card(live, oob="outerHTML")
    # A new card may already be on the page (a snapshot taken after the call was saved):
    # delete it first, so the insert can never duplicate it.
    target = f"afterend:#call-{live.parent_call_id}" if live.parent_call_id else "beforeend:#calls"
    return card_removed(live.call_id) + format_html('<div hx-swap-oob="{}">{}</div>', target, card(live))


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


def agent_state(login: AgentLogin, *, oob: bool = True) -> str:
    """The agent-state bar, with the admin-managed reasons the agent may give for NotReady."""
    reasons = list(NotReadyReason.objects.all())
    labels = {reason.code: reason.label for reason in reasons}
    context = {
        "login": login,
        "reasons": [reason for reason in reasons if reason.active],
        "reason_label": labels.get(login.state_reason, login.state_reason),
        "oob": oob,
    }
    return render_to_string("calls/agent_state.html", context)


def connection(login: AgentLogin, *, oob: bool = True) -> str:
    context = {"status": login.connection, "reason": login.connection_reason, "oob": oob}
    return render_to_string("calls/connection.html", context)


def snapshot(login: AgentLogin) -> str:
    """What a desktop WebSocket gets right after it connects: the whole live state of the agent."""
    return agent_state(login) + connection(login) + calls_region(login)
