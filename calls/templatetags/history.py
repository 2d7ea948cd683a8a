"""Filters for call history and the agent-state bar: clocks, and attached data within bounds."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.text import Truncator

register = template.Library()

# Attached data can be large (a CRM's notes, a whole IVR path): the history shows a bounded taste.
USER_DATA_PAIRS = 5
USER_DATA_KEY_CHARS = 64  # as long as a key the desk lets an agent attach
USER_DATA_VALUE_CHARS = 60


@register.filter
def clock(seconds: int | float | None) -> str:
    """``75`` -> ``1:15``; an hour or more -> ``1:02:03``."""
    total = max(0, int(seconds or 0))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


@register.filter
def bounded_pairs(user_data: Any) -> dict[str, Any]:
    """At most ``USER_DATA_PAIRS`` pairs, keys and values cut to a readable length, and how many
    more there are: ``{"pairs": [(key, value), ...], "more": n}``."""
    items = list(user_data.items()) if isinstance(user_data, dict) else []
    pairs = [
        (
            Truncator(str(key)).chars(USER_DATA_KEY_CHARS),
            Truncator("" if value is None else str(value)).chars(USER_DATA_VALUE_CHARS),
        )
        for key, value in items[:USER_DATA_PAIRS]
    ]
    return {"pairs": pairs, "more": max(0, len(items) - USER_DATA_PAIRS)}
