"""Template filters and tags for call cards and the desk page."""

from __future__ import annotations

import datetime

from django import template
from django.utils.safestring import SafeString

from calls.models import LiveCall
from calls.operations import INPUT_HINTS, INPUT_PATTERNS, shortcuts

register = template.Library()


@register.filter
def epoch(value: datetime.datetime | None) -> int:
    """Seconds since the epoch: the page's clock ticks call durations from it."""
    return int(value.timestamp()) if value else 0


@register.filter
def parties(call: LiveCall) -> str:
    """Who the call is with, as the agent reads it: the other parties, else the dialled number."""
    return ", ".join(call.participants) or call.dnis or "unknown number"


@register.filter
def input_pattern(param: str) -> str:
    return INPUT_PATTERNS.get(param, "")


@register.filter
def input_hint(param: str) -> str:
    return INPUT_HINTS.get(param, "")


@register.simple_tag
def keyboard_shortcuts() -> list[tuple[str, str]]:
    return shortcuts()


@register.simple_tag
def keypad(target: str) -> SafeString:
    """The keypad that types into the field ``target`` (the card's DTMF field, the dial field)."""
    from desktop import jinja  # desktop.jinja imports this module's filters

    return jinja.render("calls/keypad.html", {"target": target})


@register.simple_tag
def directory_list(list_id: str) -> SafeString:
    """The directory's list ``list_id`` under a number field (a card's transfer forms, the dial form)."""
    from desktop import jinja  # desktop.jinja imports this module's filters

    return jinja.render("calls/directory_list.html", {"list_id": list_id})
