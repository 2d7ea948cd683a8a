"""Template filters for call cards."""

from __future__ import annotations

import datetime

from django import template

register = template.Library()


@register.filter
def epoch(value: datetime.datetime | None) -> int:
    """Seconds since the epoch: the page's clock ticks call durations from it."""
    return int(value.timestamp()) if value else 0
