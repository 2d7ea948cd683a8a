"""Numbers the desk offers agents to dial without typing them: the admin-managed speed dials."""

from __future__ import annotations

from .models import SpeedDial


def speed_dials() -> list[SpeedDial]:
    """The active speed dials in the order the admin gave them, for the dial pad.

    Each has ``label`` and ``number``; the number is already in the form the dial pad accepts.
    """
    return list(SpeedDial.objects.filter(active=True).order_by("position", "label"))
