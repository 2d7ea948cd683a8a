"""The one interface between the desk and a Voice API, in the contact center's words.

A ``VoiceBackend`` is one agent's connection to one Voice API. The session worker owns the
agent's Voice API session: it alone calls ``session()``, which signs the agent in to the Voice API
and yields the events of that session. Everyone else (the desk's views, the admin) *borrows* the
session: they build a backend from the credentials the owner holds (``credentials``) and send
operations with them, never signing in a second time.

Calls, agent states and events are our own typed objects; each vendor module under
``calls/vendors/`` turns its JSON into them and maps the desk's operation names (the Genesys ones:
``Answer``, ``Hold``, ``CompleteConference``, ``SendDtmf``...) onto its own operations. Nothing
outside ``calls/vendors/`` sees a vendor's URLs, JSON or event names.

A team lead supervises through the lead's own session, borrowed in the same way: the operations
name the member (``Member``: the Voice API user name and DN, never a password), and no member's
session is ever used to supervise them.
"""

from __future__ import annotations

import abc
import json
import math
import re
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

LIVE_STATES = ("Ringing", "Dialing", "Established", "Held")
AGENT_STATES = ("LoggedOut", "NotReady", "Ready", "AfterCallWork")

# The operations a call card may offer, named as the desk names them on both vendors.
CALL_OPERATIONS = frozenset(
    {
        "Answer",
        "Hangup",
        "Hold",
        "Retrieve",
        "InitiateTransfer",
        "CompleteTransfer",
        "InitiateConference",
        "CompleteConference",
        "SingleStepTransfer",
        "SingleStepConference",
        "SwapCalls",
        "SendDtmf",
        "AttachUserData",
        "UpdateUserData",
        "DeleteUserData",
        "DeleteUserDataPair",
        "RemoveParticipantFromConference",
        "MuteCall",
        "UnmuteCall",
    }
)
# Operations that act on two calls: the desk names the other one (``other_call_id``).
TWO_CALL_OPERATIONS = frozenset({"SwapCalls", "CompleteTransfer", "CompleteConference"})

# Supervision, in the Genesys names on both vendors: a team lead's own device monitors an agent's
# call silently (ListenIn), heard by the agent only (Coach) or by everyone (BargeIn); while it
# does, it may switch to another mode or stop.
MONITORING_MODES = ("ListenIn", "Coach", "BargeIn")
SWITCH_TO = {"ListenIn": "SwitchToListenIn", "Coach": "SwitchToCoach", "BargeIn": "SwitchToBargeIn"}
STOP_MONITORING = "CancelSupervisorMonitoring"
SUPERVISION_OPERATIONS = frozenset({*MONITORING_MODES, *SWITCH_TO.values(), STOP_MONITORING})
# The agent states a team lead may set for a member of the team.
MEMBER_STATES = ("Ready", "NotReady", "LoggedOut")

Credentials = dict[str, Any]


class VoiceApiError(Exception):
    """The Voice API refused a request. ``message`` is fit to show the agent; ``code`` is the
    vendor's own code for the refusal (a GWS statusCode, a Huawei retcode), kept for the logs."""

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class Unavailable(VoiceApiError):
    """The Voice API could not be reached or failed (5xx, a timeout): nothing is known to be applied."""


class CredentialsRefused(VoiceApiError):
    """The Voice API no longer accepts the session's credentials: its owner must sign in again."""


class RestartNow(VoiceApiError):
    """The session must be opened again, and at once: the Voice API is fine, but the way to its
    notifications is not (no backoff: nothing failed that waiting would help)."""


class SignInRefused(VoiceApiError):
    """The Voice API refused the agent login's own user name or password: signing in again with the
    same ones would only fail again (and may lock the account), so nobody retries until they change."""


class MalformedNotification(ValueError):
    """A vendor message that cannot be understood; logged and skipped, never fatal."""


# -- vendor text as the desk may store it --------------------------------------------------------
# A vendor's JSON may carry what no database column takes: NUL (PostgreSQL refuses it in text), lone
# surrogates (no encoding takes them), NaN and Infinity (not JSON: PostgreSQL's jsonb refuses them).
# Stored as they came, one such value would fail every write for its call, at every event, for as
# long as the call lives. Each vendor module passes every string and attached-data value it keeps
# through these.


# The longest text the desk keeps of each (the columns in calls.models): PostgreSQL refuses longer.
MAX_CALL_ID = 100
MAX_CALL_TYPE = 20
MAX_DNIS = 32
MAX_REASON = 64
NOT_IN_A_CALL_ID = re.compile(r"[\x00-\x1f\x7f/]")


def storable_text(value: str) -> str:
    """``value`` without NUL characters, and with any lone surrogate replaced."""
    text = value.replace("\x00", "")
    if text.isascii():
        return text
    return text.encode("utf-8", "replace").decode("utf-8")


def storable_call_id(value: str) -> str:
    """A vendor's call id as the desk may keep it, or ``""`` when it cannot be one: the desk puts call
    ids in its URLs (one path segment: no ``/``) and refuses control characters in them."""
    text = storable_text(value)
    if len(text) > MAX_CALL_ID or text != value or NOT_IN_A_CALL_ID.search(text):
        return ""
    return text


def storable_value(value: Any) -> str | int | float | bool:
    """An attached-data value as a string or a number: a string made storable; NaN and Infinity as
    the JSON spelling they came in (``"NaN"``, ``"Infinity"``); lists, objects and null as text."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else json.dumps(value)
    return storable_text(str(value))


def storable_user_data(raw: dict[Any, Any]) -> dict[str, Any]:
    """Attached data as the desk may store it; a key that is nothing once its NULs are gone is dropped."""
    pairs = ((storable_text(str(key)), storable_value(value)) for key, value in raw.items())
    return {key: value for key, value in pairs if key}


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
    # After-call work the switch asks for once this call ends, in seconds (0: none announced).
    wrap_up_seconds: int = 0
    # How a supervisor monitors this call, as the Voice API tells the monitored agent: one of
    # MONITORING_MODES, or "" when nobody does (or the Voice API does not say).
    supervisor: str = ""

    @property
    def is_live(self) -> bool:
        return self.state in LIVE_STATES

    def offers(self, operation: str) -> bool:
        return operation in self.capabilities


@dataclass(frozen=True)
class AgentState:
    state: str
    reason: str = ""


# -- what a session yields -------------------------------------------------------------------


@dataclass(frozen=True)
class CallChanged:
    call: Call


@dataclass(frozen=True)
class AgentStateChanged:
    state: AgentState


@dataclass(frozen=True)
class Reconnecting:
    """The session is trying to get its notifications back; events may be missed meanwhile."""


@dataclass(frozen=True)
class Resynced:
    """The whole truth, read from the Voice API: on connecting, and after every reconnection."""

    calls: tuple[Call, ...]
    state: AgentState


@dataclass(frozen=True)
class CredentialsChanged:
    """The Voice API gave the session new credentials (a rotated Guid); borrowers need them."""

    credentials: Credentials


Event = CallChanged | AgentStateChanged | Reconnecting | Resynced | CredentialsChanged


@dataclass(frozen=True)
class Observation:
    """What a borrower learnt from an operation's answer that no event will report (a soft mute,
    which call a consult belongs to); the owner folds it into its session's state."""

    call_id: str
    facts: dict[str, Any]


@dataclass(frozen=True)
class Agent:
    """Who the backend acts for: the agent login's Voice API identity."""

    username: str
    password: str
    dn: str = ""
    place: str = ""


@dataclass(frozen=True)
class Member:
    """A team member as a supervisor's backend names them to the Voice API: never their password."""

    username: str
    dn: str = ""


@dataclass(frozen=True)
class Server:
    base_url: str
    verify_tls: bool = True


class VoiceBackend(abc.ABC):
    """One agent's connection to one Voice API; see the module docstring for who may call what."""

    dialect: str = ""
    label: str = ""
    # Whether a supervisor's monitoring follows the agent from call to call until stopped (rather
    # than ending with the call it began on).
    monitoring_follows_agent: bool = False

    def __init__(self, server: Server, agent: Agent, credentials: Credentials | None = None) -> None:
        self.server = server
        self.agent = agent
        self.credentials: Credentials = dict(credentials or {})

    # -- the owner's side --------------------------------------------------------------------

    @abc.abstractmethod
    def session(self, *, signed_in: bool) -> AbstractAsyncContextManager[AsyncIterator[Event]]:
        """Sign in to the Voice API and yield the session's events, a ``Resynced`` first.

        ``signed_in`` says whether the agent was in the contact center when the desk last knew,
        for a Voice API where the session and the contact-center sign-in are one thing. Raises
        ``VoiceApiError`` (or one of its kinds) when the session cannot go on."""

    @abc.abstractmethod
    async def resync(self) -> Resynced:
        """Read the whole truth again, now (the owner's session must be open)."""

    @abc.abstractmethod
    async def sign_in(self) -> None:
        """Sign the agent in to the contact center (the owner's session carries on)."""

    @abc.abstractmethod
    async def sign_out(self) -> None:
        """Sign the agent out of the contact center."""

    def observe(self, observation: Observation) -> list[Event]:
        """Fold a borrower's observation into the session; the events it changes. None by default."""
        return []

    @abc.abstractmethod
    async def check(self) -> str:
        """For the admin: whether the server answers (and, where the Voice API allows it without
        signing the agent in or out, accepts the agent's credentials), as one line."""

    # -- anybody's side (borrowed credentials) -----------------------------------------------

    @abc.abstractmethod
    async def set_agent_state(self, state: str, reason: str = "") -> None:
        """``Ready``, ``NotReady`` (with a reason code) or ``AfterCallWork``."""

    @abc.abstractmethod
    async def dial(self, destination: str) -> None: ...

    @abc.abstractmethod
    async def call_operation(
        self, call_id: str, operation: str, params: dict[str, Any]
    ) -> Observation | None:
        """One call operation by the desk's name. ``params`` may hold ``destination``, ``digits``,
        ``participant``, ``user_data`` (a dict), ``key`` and ``other_call_id`` (the other call of
        a two-call operation)."""

    # -- a team lead's side (the lead's own session, borrowed) ----------------------------------

    @abc.abstractmethod
    async def supervise(self, operation: str, member: Member, call_id: str, *, mode: str = "") -> None:
        """One of ``SUPERVISION_OPERATIONS`` from this agent's own device: start monitoring the
        member's call ``call_id`` (``ListenIn``, ``Coach``, ``BargeIn``), switch the monitoring in
        progress (in ``mode``) to another mode, or stop it. Refused unless this agent may supervise."""

    @abc.abstractmethod
    async def set_member_state(self, member: Member, state: str, reason: str = "") -> None:
        """One of ``MEMBER_STATES`` for another agent, as their supervisor: ``Ready``, ``NotReady``
        (with a reason code) or ``LoggedOut``."""

    @classmethod
    def supervision_offers(cls, call_state: str, mode: str, leg: tuple[str, ...] = ()) -> tuple[str, ...]:
        """What a supervisor may do now about an agent's call in ``call_state``: while not
        monitoring it (``mode`` empty), start in each mode the Voice API has; while monitoring it
        in ``mode``, switch to the others and stop. ``leg`` is the capabilities the Voice API lists
        on the supervisor's own monitoring call, where it lists them (they win). For a Voice API
        that sends no capability lists, the backend works them out here."""
        if not mode:
            return MONITORING_MODES if call_state in ("Established", "Held") else ()
        switches = tuple(SWITCH_TO[other] for other in MONITORING_MODES if other != mode)
        return (*switches, STOP_MONITORING)

    @abc.abstractmethod
    async def aclose(self) -> None: ...
