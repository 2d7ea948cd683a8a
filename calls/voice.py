"""Our own words for what the Voice APIs tell us: calls, agent states, notifications.

Every dialect module (``genesys``, later ``huawei``) turns its vendor's JSON into these typed
objects, so the services, the worker, the templates and the tests never see vendor payloads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LIVE_STATES = ("Ringing", "Dialing", "Established", "Held")
AGENT_STATES = ("LoggedOut", "NotReady", "Ready", "AfterCallWork")


class MalformedNotification(ValueError):
    """A vendor message that cannot be understood; logged and skipped, never fatal."""


@dataclass(frozen=True)
class Call:
    id: str
    state: str
    call_type: str = "Internal"
    participants: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()
    parent_id: str | None = None
    user_data: dict[str, Any] = field(default_factory=dict)
    duration: int = 0
    muted: bool = False
    dnis: str = ""

    @property
    def is_live(self) -> bool:
        return self.state in LIVE_STATES

    def offers(self, operation: str) -> bool:
        return operation in self.capabilities


@dataclass(frozen=True)
class AgentState:
    state: str
    reason: str = ""


@dataclass(frozen=True)
class CallNotification:
    kind: str
    call: Call


@dataclass(frozen=True)
class StateNotification:
    state: AgentState
