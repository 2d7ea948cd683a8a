"""What a call card says about supervision: to a monitored agent, that a supervisor is on the call;
to the supervisor, on their own monitoring call, how they monitor it. And whether a desk user leads
a team."""

from __future__ import annotations

from typing import Any

from django import template
from django.conf import settings
from django.utils.html import format_html
from django.utils.safestring import SafeString

from calls.models import LiveCall, Team
from calls.voice import MONITORING_MODES, SWITCH_TO

register = template.Library()

# In the agent's words, by the Voice API's monitoring mode (calls.voice.MONITORING_MODES).
TOLD = {
    "ListenIn": "A supervisor is listening",
    "Coach": "A supervisor is coaching you: only you hear them",
    "BargeIn": "A supervisor has joined the call",
}
# In the supervisor's words, on their own monitoring call.
MONITORING = {
    "ListenIn": "You are listening in: nobody hears you",
    "Coach": "You are coaching: only the agent hears you",
    "BargeIn": "You have barged in: everyone hears you",
}


def monitoring_mode(call: LiveCall) -> str:
    """The mode of a supervisor's own monitoring call: the one mode it offers no switch to."""
    offered = set(call.capabilities)
    if not offered & set(SWITCH_TO.values()):
        return ""
    current = [mode for mode in MONITORING_MODES if SWITCH_TO[mode] not in offered]
    return current[0] if len(current) == 1 else ""


@register.simple_tag
def supervision_notice(call: LiveCall) -> SafeString:
    """The line a card shows: to the monitored agent while a supervisor is on the call, unless the
    administrator hides it (SUPERVISION_INDICATOR=0); to the supervisor on their monitoring call."""
    mode = monitoring_mode(call)
    if mode:
        return format_html('<p class="supervised" data-monitoring-call="{}">{}</p>', mode, MONITORING[mode])
    if call.supervisor in TOLD and getattr(settings, "SUPERVISION_INDICATOR", True):
        return format_html(
            '<p class="supervised" data-supervised="{}" role="status">{}</p>',
            call.supervisor,
            TOLD[call.supervisor],
        )
    return SafeString("")


@register.filter
def leads_a_team(user: Any) -> bool:
    """Whether the desk user leads a team: their desk then links to the team board. (Named a lead
    first, in one query: most desk users are not, and their permissions need not be loaded.)"""
    named = getattr(user, "is_authenticated", False) and Team.objects.filter(leads=user).exists()
    return bool(named) and Team.objects.led_by(user).exists()
