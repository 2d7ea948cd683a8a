"""The switch model: directory numbers, agents, calls, legs, consult links, conferences, user data.

One model underneath every dialect. A call is a set of legs, one per number on it; each agent sees
its own view of a call (its leg's state, the other parties, whether the call is a consult it
started, and once its leg is released, why). Dialects (``genesys``, ``huawei``) render those views
in their own wire format and decide which operations a view offers; the switch only knows what is
physically possible.

Every change is announced to the listeners as ``CallEvent`` / ``AgentEvent`` values, in the
order the vendors' documents show them. After each operation the switch also re-announces, as a
plain status change, any other view of the involved agents that changed as a side effect
(a call that lost its held partner no longer offers SwapCalls), so no client keeps stale state.

Supervision. An agent marked ``supervisor`` may monitor one other logged-in agent at a time, in
one of three modes: ``ListenIn`` (silent: nobody hears the supervisor), ``Coach`` (only the
monitored agent hears the supervisor) or ``BargeIn`` (everybody hears the supervisor, who then
counts among the parties the others see). A ``Monitor`` records who monitors whom, how, and on
which call: while the monitored agent is established on a call the supervisor has a monitoring
leg on it (a ``Leg`` with ``monitor`` set), which is never a party of the call (it does not keep
a call alive, is not moved by transfers and conferences, and is not listed as a participant
except in ``BargeIn``). The supervisor's leg ends when the monitored agent's leg on that call
ends; a monitor that follows ``all_calls`` then joins the agent's next established call, any other
monitor ends with that first call. The mode can be switched, the monitored agent muted, and the
supervisor may take the call over (``intercept``: the agent drops out, the supervisor stays as a
party). Monitors start, switch and stop as ``MonitorEvent`` values, so each dialect can tell its
own agents (a Genesys supervisor's device, a Huawei inspected agent's ``AgentOther_BeQcStart``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("switchboard.simulator")

# The contract's three ranges, and 20000-29999 so training sites and benchmarks can add hundreds of agents.
INTERNAL_RANGES = ((5000, 5099), (6000, 6199), (15000, 15099), (20000, 29999))

RINGING = "Ringing"
DIALING = "Dialing"
ESTABLISHED = "Established"
HELD = "Held"
RELEASED = "Released"

LIVE_STATES = (RINGING, DIALING, ESTABLISHED, HELD)

TRANSFER = "transfer"
CONFERENCE = "conference"

# Why a leg was released: a dialect that reports who ended a call (Huawei's Call_Release versus
# Customer_Release) needs to know, and it cannot be recovered from the views alone.
LEFT = "left"  # the party hung up, or completed a transfer and dropped out
ENDED = "ended"  # the other parties left, so the call ended for this one
TIMED_OUT = "timed_out"  # it rang longer than the ringing timeout
REMOVED = "removed"  # another party took it out of a conference
MOVED = "moved"  # it went on in another call, which a transfer or conference joined it to
MERGED = "merged"  # the agent's own call whose other parties were joined to the agent's other call

STATUS_CHANGE = "StatusChange"
PARTICIPANTS_UPDATED = "ParticipantsUpdated"
ATTACHED_DATA_CHANGED = "AttachedDataChanged"
DTMF_SENT = "DtmfSent"
MONITORED_USER_MUTED = "MonitoredUserMutedStateChange"

# Supervision modes, named as the Genesys operations are (the desk's one vocabulary).
LISTEN_IN = "ListenIn"
COACH = "Coach"
BARGE_IN = "BargeIn"
MONITOR_MODES = (LISTEN_IN, COACH, BARGE_IN)
# Genesys supervisorMonitoringScope: recorded and reported; the supervisor's leg follows the agent.
MONITOR_SCOPES = ("Call", "Agent")

# What happened to a monitor, in a MonitorEvent.
STARTED = "started"
SWITCHED = "switched"
STOPPED = "stopped"

SEEDED_DIRECTORY = (
    ("agent1", "agent1", "5005", "genesys"),
    ("agent2", "agent2", "5001", "genesys"),
    ("agent4", "agent4", "15000", "genesys"),
    ("101", "agent101", "6101", "huawei"),
    ("102", "agent102", "6102", "huawei"),
    ("lead1", "lead1", "5010", "genesys"),
    ("103", "agent103", "6103", "huawei"),
)
# The seeded team leads: the Genesys supervisor and the Huawei inspector.
SEEDED_SUPERVISORS = frozenset({"lead1", "103"})

_BASE32 = "0123456789ABCDEFGHIJKLMNOPQRSTUV"


def is_internal(number: str) -> bool:
    return number.isdigit() and any(low <= int(number) <= high for low, high in INTERNAL_RANGES)


def is_dialable(number: str) -> bool:
    """Digits with an optional leading ``+``, or ``*``/``#`` service codes; 2 to 32 characters."""
    body = number[1:] if number.startswith("+") else number
    return 2 <= len(number) <= 32 and bool(body) and all(ch.isdigit() or ch in "*#" for ch in body)


class SwitchError(Exception):
    """An operation the switch cannot carry out in the current state; the message is for the agent."""

    def __init__(self, message: str, *, not_found: bool = False):
        super().__init__(message)
        self.not_found = not_found


@dataclass(slots=True)
class Agent:
    login: str
    password: str
    dn: str
    dialect: str
    device_id: str = ""
    logged_in: bool = False
    state: str = "LoggedOut"
    reason: str = ""
    do_not_disturb: bool = False
    forward_to: str = ""
    place: str = ""
    # May monitor other agents and set their state (Genesys ROLE_SUPERVISOR, a Huawei inspector).
    supervisor: bool = False

    def __post_init__(self) -> None:
        # Stable across resets, so a client that cached its device keeps a valid one.
        if not self.device_id:
            self.device_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"switchboard-device/{self.login}"))


@dataclass(slots=True, eq=False)
class Monitor:
    """A supervisor monitoring an agent: how, and the call its leg is on now (None while it waits)."""

    supervisor: str
    supervisor_dn: str
    target: str
    target_dn: str
    mode: str
    scope: str = "Call"
    # Follows the agent from call to call until cancelled (Genesys AllCalls, every Huawei inspection);
    # otherwise the monitor ends with the first call it joined (Genesys NextCall).
    all_calls: bool = False
    monitored_muted: bool = False
    call: Call | None = None


@dataclass(slots=True)
class Leg:
    number: str
    state: str
    joined: float
    muted: bool = False
    # What this party saw when it left: a released view still names the parties it had.
    final_others: tuple[str, ...] = ()
    release_cause: str = ""
    # Set on a supervisor's monitoring leg, which is not a party of the call.
    monitor: Monitor | None = None


@dataclass(slots=True)
class ConsultLink:
    owner: str
    parent_id: str
    kind: str


@dataclass(slots=True)
class Call:
    id: str
    conn_id: str
    dnis: str
    origin: str
    created: float
    legs: dict[str, Leg] = field(default_factory=dict)
    user_data: dict[str, Any] = field(default_factory=dict)
    consult: ConsultLink | None = None
    timers: list[asyncio.TimerHandle] = field(default_factory=list)
    # What each SendDtmf carried, in order: the far end (an IVR) hears them; tests read them back.
    dtmf: list[str] = field(default_factory=list)

    def live_legs(self) -> list[Leg]:
        """The live parties: supervisors' monitoring legs are not parties."""
        return [leg for leg in self.legs.values() if leg.state in LIVE_STATES and leg.monitor is None]

    def monitor_legs(self) -> list[Leg]:
        return [leg for leg in self.legs.values() if leg.state in LIVE_STATES and leg.monitor is not None]

    def others(self, number: str) -> list[str]:
        """The other live parties, the one who joined last first (as the documents list them)."""
        legs = sorted(self.live_legs(), key=lambda leg: leg.joined, reverse=True)
        return [leg.number for leg in legs if leg.number != number]


@dataclass(frozen=True, slots=True)
class CallView:
    """One agent's view of one call: everything a dialect needs to render or authorize it."""

    call_id: str
    conn_id: str
    dn: str
    state: str
    call_type: str
    participants: tuple[str, ...]
    dnis: str
    duration: int
    muted: bool
    user_data: tuple[tuple[str, Any], ...]
    parent_id: str | None
    consult_kind: str | None
    partner_held: bool
    partner_id: str | None
    conference: bool
    origin: str = ""
    release_cause: str = ""
    # The mode of this agent's own monitoring leg ("" unless the viewer is a supervisor on it).
    monitoring: str = ""
    # The supervisors monitoring this agent on this call, and whether one of them muted it (for a
    # supervisor's view: whether it muted the agent it monitors).
    monitored_by: tuple[str, ...] = ()
    monitored_muted: bool = False
    # Supervisors barging in on the call: heard by everyone, so dialects may list them as parties.
    bargers: tuple[str, ...] = ()

    def signature(self) -> tuple[Any, ...]:
        return (
            self.state,
            self.participants,
            self.muted,
            self.user_data,
            self.parent_id,
            self.partner_held,
            self.conference,
            self.monitoring,
            self.monitored_by,
            self.monitored_muted,
            self.bargers,
        )


@dataclass(frozen=True, slots=True)
class CallEvent:
    agent: Agent
    view: CallView
    notification_type: str


@dataclass(frozen=True, slots=True)
class AgentEvent:
    agent: Agent


@dataclass(frozen=True, slots=True)
class MonitorEvent:
    """A monitor started, switched mode (``previous`` names the old one) or stopped."""

    monitor: Monitor
    change: str
    previous: str = ""


SwitchEvent = CallEvent | AgentEvent | MonitorEvent
Listener = Callable[[SwitchEvent], None]
# One notification to announce: the number whose view it is, the call, the notification type.
Step = tuple[str, Call, str]


@dataclass(slots=True)
class Settings:
    answer_delay_ms: int | None = 1500
    ringing_timeout_ms: int = 30000


class Switch:
    """The whole simulated site. Not thread-safe: it lives on one event loop."""

    def __init__(self, *, answer_delay_ms: int | None = 1500, ringing_timeout_ms: int = 30000) -> None:
        self.settings = Settings(answer_delay_ms=answer_delay_ms, ringing_timeout_ms=ringing_timeout_ms)
        self._initial_settings = Settings(
            answer_delay_ms=answer_delay_ms, ringing_timeout_ms=ringing_timeout_ms
        )
        self.listeners: list[Listener] = []
        self.agents: dict[str, Agent] = {}
        self.calls: dict[str, Call] = {}
        # By supervisor login: each supervisor monitors at most one agent.
        self.monitors: dict[str, Monitor] = {}
        self._following = False
        self._id_prefix = "".join(secrets.choice(_BASE32) for _ in range(26))
        self._counter = itertools.count(1)
        self._sent: dict[tuple[str, str], tuple[Any, ...]] = {}
        self.reset()

    # -- directory -------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the seeded directory, no calls, the settings the switch was started with."""
        log.info("the switch is reset")
        for call in list(self.calls.values()):
            self._cancel_timers(call)
        self.calls.clear()
        self.agents.clear()
        self.monitors.clear()
        self._sent.clear()
        self.settings = Settings(
            answer_delay_ms=self._initial_settings.answer_delay_ms,
            ringing_timeout_ms=self._initial_settings.ringing_timeout_ms,
        )
        for login, password, dn, dialect in SEEDED_DIRECTORY:
            self.add_agent(login, password, dn, dialect, supervisor=login in SEEDED_SUPERVISORS)

    def add_agent(
        self, login: str, password: str, dn: str, dialect: str, *, supervisor: bool = False
    ) -> Agent:
        if not login or not password:
            raise SwitchError("login and password are required")
        if not is_internal(dn):
            ranges = ", ".join(f"{low}-{high}" for low, high in INTERNAL_RANGES)
            raise SwitchError(f"DN {dn!r} is not an internal number ({ranges})")
        if dialect not in ("genesys", "huawei"):
            raise SwitchError(f"unknown dialect {dialect!r}")
        owner = self.agent_on(dn)
        if owner and owner.login != login:
            raise SwitchError(f"DN {dn} already belongs to {owner.login}")
        if login in self.monitors or any(m.target == login for m in self.monitors.values()):
            raise SwitchError(f"{login} is part of a supervision: cancel it before changing the agent")
        agent = Agent(login=login, password=password, dn=dn, dialect=dialect, supervisor=supervisor)
        self.agents[login] = agent
        return agent

    def agent_on(self, dn: str) -> Agent | None:
        return next((agent for agent in self.agents.values() if agent.dn == dn), None)

    def _ringing_agent(self, number: str) -> Agent | None:
        """The agent whose device rings for calls to ``number``: logged in to a contact-center session."""
        agent = self.agent_on(number)
        return agent if agent and agent.logged_in else None

    # -- ids and views ---------------------------------------------------------------------

    def _new_ids(self) -> tuple[str, str]:
        n = next(self._counter)
        suffix = ""
        for _ in range(6):
            n, rem = divmod(n, 32)
            suffix = _BASE32[rem] + suffix
        return self._id_prefix + suffix, f"007102{secrets.token_hex(5)}"

    def call_for(self, agent: Agent, call_id: str) -> Call:
        """The agent's own live call, else ``SwitchError(not_found=True)``: others' calls do not exist."""
        call = self.calls.get(call_id)
        leg = call.legs.get(agent.dn) if call else None
        if call is None or leg is None or leg.state == RELEASED:
            raise SwitchError(f"Call {call_id} not found", not_found=True)
        return call

    def calls_of(self, agent: Agent) -> list[Call]:
        """The agent's live calls, a supervisor's monitoring call included."""
        return [
            call
            for call in self.calls.values()
            if agent.dn in call.legs and call.legs[agent.dn].state in LIVE_STATES
        ]

    def party_calls(self, agent: Agent) -> list[Call]:
        """The live calls the agent is a party of: its monitoring call is not one."""
        return [call for call in self.calls_of(agent) if call.legs[agent.dn].monitor is None]

    def view(self, agent: Agent, call: Call) -> CallView:
        leg = call.legs[agent.dn]
        others = call.others(agent.dn) if leg.state != RELEASED else leg.final_others
        partner = self._partner(agent, call)
        if call.consult and call.consult.owner == agent.dn:
            call_type = "Consult"
        elif all(is_internal(leg.number) for leg in call.legs.values()):
            call_type = "Internal"
        elif is_internal(call.origin):
            call_type = "Outbound"
        else:
            call_type = "Inbound"
        live = leg.state != RELEASED
        watchers = (
            [m for m in call.monitor_legs() if m.monitor and m.monitor.target_dn == agent.dn]
            if live and leg.monitor is None
            else []
        )
        if leg.monitor is not None:
            monitored_muted = leg.monitor.monitored_muted
        else:
            monitored_muted = any(m.monitor is not None and m.monitor.monitored_muted for m in watchers)
        bargers = tuple(
            m.number
            for m in call.monitor_legs()
            if live and m.monitor is not None and m.monitor.mode == BARGE_IN and m.number != agent.dn
        )
        return CallView(
            call_id=call.id,
            conn_id=call.conn_id,
            dn=agent.dn,
            state=leg.state,
            call_type=call_type,
            participants=tuple(others),
            dnis=call.dnis,
            duration=int(time.monotonic() - call.created),
            muted=leg.muted,
            user_data=tuple(call.user_data.items()),
            parent_id=call.consult.parent_id if call.consult and call.consult.owner == agent.dn else None,
            consult_kind=call.consult.kind if call.consult and call.consult.owner == agent.dn else None,
            partner_held=partner is not None and partner.legs[agent.dn].state == HELD,
            partner_id=partner.id if partner else None,
            conference=leg.state != RELEASED and len(others) >= 2,
            origin=call.origin,
            release_cause=leg.release_cause if leg.state == RELEASED else "",
            monitoring=leg.monitor.mode if leg.monitor is not None else "",
            monitored_by=tuple(m.number for m in watchers),
            monitored_muted=monitored_muted,
            bargers=bargers,
        )

    def _partner(self, agent: Agent, call: Call) -> Call | None:
        """The other call this one can be swapped with or completed into: its consult parent, or the
        agent's one other live call (a second call dialled while the first is held, as in seed 003)."""
        if call.legs[agent.dn].state == RELEASED or call.legs[agent.dn].monitor is not None:
            return None
        if call.consult and call.consult.owner == agent.dn:
            parent = self.calls.get(call.consult.parent_id)
            if parent and parent.legs.get(agent.dn) and parent.legs[agent.dn].state in LIVE_STATES:
                return parent
        others = [c for c in self.party_calls(agent) if c.id != call.id]
        for other in others:
            if other.consult and other.consult.owner == agent.dn and other.consult.parent_id == call.id:
                return other
        return others[0] if len(others) == 1 else None

    # -- announcing ------------------------------------------------------------------------

    def _emit(self, agent: Agent, call: Call, notification_type: str) -> None:
        view = self.view(agent, call)
        key = (agent.login, call.id)
        if view.state == RELEASED:
            self._sent.pop(key, None)
        else:
            self._sent[key] = view.signature()
        self._publish(CallEvent(agent=agent, view=view, notification_type=notification_type))

    def _publish(self, event: SwitchEvent) -> None:
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:
                log.exception("simulator listener failed on %s", type(event).__name__)

    def _announce(self, steps: Iterable[Step]) -> None:
        """Emit the documented notifications in order, then any side-effect change of the same agents."""
        touched: set[str] = set()
        for number, call, notification_type in steps:
            agent = self.agent_on(number)
            if agent is None or number not in call.legs or not self._sees(agent, call):
                continue
            touched.add(agent.login)
            self._emit(agent, call, notification_type)
        self._settle(touched)
        self._follow_monitors()

    def _sees(self, agent: Agent, call: Call) -> bool:
        """An agent sees the calls of its DN while logged in, and to their end any call it was shown."""
        return agent.logged_in or (agent.login, call.id) in self._sent

    def visible_calls(self, agent: Agent) -> list[Call]:
        return [call for call in self.calls_of(agent) if self._sees(agent, call)]

    def _settle(self, logins: Iterable[str]) -> None:
        for login in logins:
            agent = self.agents.get(login)
            if agent is None:
                continue
            for call in self.visible_calls(agent):
                key = (agent.login, call.id)
                if self._sent.get(key) != self.view(agent, call).signature():
                    self._emit(agent, call, STATUS_CHANGE)

    def _agents_on(self, call: Call) -> list[str]:
        return [number for number in call.legs if self.agent_on(number)]

    # -- placing calls -----------------------------------------------------------------------

    def place_call(self, origin: str, destination: str, user_data: dict[str, Any] | None = None) -> Call:
        """A call from ``origin`` (an outside party, a desk phone or an agent's DN) to ``destination``."""
        if not is_dialable(origin) or not is_dialable(destination):
            raise SwitchError("from and to must be phone numbers")
        if origin == destination:
            raise SwitchError("a number cannot call itself")
        caller_agent = self._ringing_agent(origin)
        now = time.monotonic()
        call_id, conn_id = self._new_ids()
        call = Call(id=call_id, conn_id=conn_id, dnis=destination, origin=origin, created=now)
        call.user_data.update(user_data or {})
        call.legs[origin] = Leg(origin, DIALING if caller_agent else ESTABLISHED, now)
        self.calls[call.id] = call
        steps: list[Step] = [(origin, call, STATUS_CHANGE)] if caller_agent else []
        steps += self._ring(call, destination)
        self._announce(steps)
        return call

    def _ring(self, call: Call, number: str) -> list[Step]:
        """Add ``number`` to the call as a ringing party; an agent's device rings, anything else
        answers by itself after the answer delay. Returns the notifications to announce."""
        call.legs[number] = Leg(number, RINGING, time.monotonic())
        loop = asyncio.get_event_loop()
        agent = self._ringing_agent(number)
        if agent is None and self.settings.answer_delay_ms is not None:
            delay = self.settings.answer_delay_ms / 1000
            call.timers.append(loop.call_later(delay, self._auto_answer, call.id, number))
        timeout = self.settings.ringing_timeout_ms / 1000
        call.timers.append(loop.call_later(timeout, self._ringing_timeout, call.id, number))
        return [(number, call, STATUS_CHANGE)] if agent else []

    def _auto_answer(self, call_id: str, number: str) -> None:
        call = self.calls.get(call_id)
        if call and number in call.legs and call.legs[number].state == RINGING:
            self._announce(self._answer_leg(call, number))

    def _ringing_timeout(self, call_id: str, number: str) -> None:
        call = self.calls.get(call_id)
        if call and number in call.legs and call.legs[number].state == RINGING:
            self._announce(self._leave(call, number, TIMED_OUT))

    def _answer_leg(self, call: Call, number: str) -> list[Step]:
        call.legs[number].state = ESTABLISHED
        steps: list[Step] = [(number, call, STATUS_CHANGE)]
        for other in call.live_legs():
            if other.number != number and other.state == DIALING:
                other.state = ESTABLISHED
                steps.append((other.number, call, STATUS_CHANGE))
        conferenced = len(call.live_legs()) > 2
        for other in call.live_legs():
            if other.number != number and other.state in (ESTABLISHED, HELD) and conferenced:
                steps.append((other.number, call, PARTICIPANTS_UPDATED))
        return steps

    # -- leaving and ending ------------------------------------------------------------------

    def _release_leg(self, call: Call, number: str, cause: str) -> None:
        leg = call.legs[number]
        leg.final_others = tuple(call.others(number))
        leg.state = RELEASED
        leg.release_cause = cause

    def _leave(self, call: Call, number: str, cause: str = LEFT) -> list[Step]:
        """``number`` leaves the call; with fewer than two parties left the call ends for everyone."""
        self._release_leg(call, number, cause)
        steps: list[Step] = [(number, call, STATUS_CHANGE)]
        remaining = call.live_legs()
        if len(remaining) < 2:
            for leg in remaining:
                self._release_leg(call, leg.number, ENDED)
                steps.append((leg.number, call, STATUS_CHANGE))
            self._end(call)
        else:
            steps += [(leg.number, call, PARTICIPANTS_UPDATED) for leg in remaining]
        return steps

    def _end(self, call: Call) -> None:
        self._cancel_timers(call)
        self.calls.pop(call.id, None)

    def _finish(self, steps: list[Step]) -> None:
        """Announce, then drop released legs of calls that go on, so views list only live parties."""
        self._announce(steps)
        for call in {id(c): c for _, c, _ in steps}.values():
            for number in [n for n, leg in call.legs.items() if leg.state == RELEASED]:
                if call.id in self.calls:
                    del call.legs[number]

    @staticmethod
    def _cancel_timers(call: Call) -> None:
        for timer in call.timers:
            timer.cancel()
        call.timers.clear()

    # -- agent operations on calls -------------------------------------------------------------

    def answer(self, agent: Agent, call: Call) -> None:
        """Call waiting: an established call is held first, its Held before the new call's Established."""
        self._require(call.legs[agent.dn].state == RINGING, "Only a ringing call can be answered")
        steps = self._hold_others(agent, call.id)
        self._finish([*steps, *self._answer_leg(call, agent.dn)])

    def answer_party(self, number: str) -> int:
        """A remote party or a DN's phone answers every call ringing for it."""
        ringing = [c for c in self.calls.values() if number in c.legs and c.legs[number].state == RINGING]
        for call in ringing:
            self._finish(self._answer_leg(call, number))
        return len(ringing)

    def hangup_party(self, number: str) -> int:
        """A party hangs up every call it is on; a supervisor's phone hanging up ends its monitoring."""
        on = [
            c for c in list(self.calls.values()) if number in c.legs and c.legs[number].state in LIVE_STATES
        ]
        for call in on:
            leg = call.legs.get(number)
            if leg is None or leg.state not in LIVE_STATES:
                continue
            if leg.monitor is not None:
                supervisor = self.agents.get(leg.monitor.supervisor)
                if supervisor is not None and self.monitors.get(supervisor.login) is leg.monitor:
                    self.stop_supervising(supervisor)
            else:
                self._finish(self._leave(call, number))
        return len(on)

    def hangup(self, agent: Agent, call: Call) -> None:
        """Leave the call; hanging up a monitoring call ends the monitoring."""
        if call.legs[agent.dn].monitor is not None:
            self.stop_supervising(agent)
            return
        self._finish(self._leave(call, agent.dn))

    def hold(self, agent: Agent, call: Call) -> None:
        self._require(call.legs[agent.dn].state == ESTABLISHED, "Only an established call can be held")
        call.legs[agent.dn].state = HELD
        self._finish([(agent.dn, call, STATUS_CHANGE)])

    def retrieve(self, agent: Agent, call: Call) -> None:
        self._require(call.legs[agent.dn].state == HELD, "Only a held call can be retrieved")
        steps = self._hold_others(agent, call.id)
        call.legs[agent.dn].state = ESTABLISHED
        self._finish([*steps, (agent.dn, call, STATUS_CHANGE)])

    def _hold_others(self, agent: Agent, keep_id: str = "") -> list[Step]:
        """An agent talks on one call at a time: retrieving or dialling holds the one that was active."""
        steps: list[Step] = []
        for other in self.party_calls(agent):
            if other.id != keep_id and other.legs[agent.dn].state == ESTABLISHED:
                other.legs[agent.dn].state = HELD
                steps.append((agent.dn, other, STATUS_CHANGE))
        return steps

    def dial(self, agent: Agent, destination: str, user_data: dict[str, Any] | None = None) -> Call:
        self._require(is_dialable(destination), f"{destination!r} is not a number that can be dialled")
        self._require(destination != agent.dn, "An agent cannot dial its own DN")
        steps = self._hold_others(agent)
        now = time.monotonic()
        call_id, conn_id = self._new_ids()
        call = Call(id=call_id, conn_id=conn_id, dnis=destination, origin=agent.dn, created=now)
        call.user_data.update(user_data or {})
        call.legs[agent.dn] = Leg(agent.dn, DIALING, now)
        self.calls[call.id] = call
        steps.append((agent.dn, call, STATUS_CHANGE))
        steps += self._ring(call, destination)
        self._finish(steps)
        return call

    def initiate(
        self, agent: Agent, parent: Call, destination: str, kind: str, user_data: dict[str, Any]
    ) -> Call:
        """Two-step transfer or conference: hold the call, dial a consult call linked to it."""
        self._require(parent.legs[agent.dn].state in (ESTABLISHED, HELD), "The call is not connected")
        self._require(is_dialable(destination), f"{destination!r} is not a number that can be dialled")
        self._require(destination != agent.dn, "An agent cannot consult its own DN")
        self._require(destination not in parent.legs, f"{destination} is already on this call")
        steps: list[Step] = []
        if parent.legs[agent.dn].state == ESTABLISHED:
            parent.legs[agent.dn].state = HELD
            steps.append((agent.dn, parent, STATUS_CHANGE))
        now = time.monotonic()
        call_id, conn_id = self._new_ids()
        consult = Call(id=call_id, conn_id=conn_id, dnis=destination, origin=agent.dn, created=now)
        consult.user_data.update(parent.user_data)
        consult.user_data.update(user_data)
        consult.consult = ConsultLink(owner=agent.dn, parent_id=parent.id, kind=kind)
        consult.legs[agent.dn] = Leg(agent.dn, DIALING, now)
        self.calls[consult.id] = consult
        steps.append((agent.dn, consult, STATUS_CHANGE))
        steps += self._ring(consult, destination)
        self._finish(steps)
        return consult

    def _pair(self, agent: Agent, call: Call, other: Call | None = None) -> tuple[Call, Call]:
        """(the held/original call, the consult or second call) for completing a transfer or conference.

        ``other`` names the second call when the agent has more than one besides ``call``."""
        partner = other if other is not None and other.id != call.id else self._partner(agent, call)
        self._require(partner is not None, "There is no other call to complete with")
        assert partner is not None
        if call.consult and call.consult.owner == agent.dn and call.consult.parent_id == partner.id:
            return partner, call
        if partner.consult and partner.consult.owner == agent.dn and partner.consult.parent_id == call.id:
            return call, partner
        held_first = call.legs[agent.dn].state == HELD
        return (call, partner) if held_first else (partner, call)

    def complete_transfer(self, agent: Agent, call: Call, other: Call | None = None) -> None:
        """The original call's parties join the consult call; the agent leaves both (seed 002)."""
        original, consult = self._pair(agent, call, other)
        movers = [leg for leg in original.live_legs() if leg.number != agent.dn]
        self._release_leg(original, agent.dn, MERGED)
        self._release_leg(consult, agent.dn, LEFT)
        steps: list[Step] = [
            (agent.dn, original, STATUS_CHANGE),
            (agent.dn, consult, STATUS_CHANGE),
        ]
        for leg in movers:
            self._release_leg(original, leg.number, MOVED)
            steps.append((leg.number, original, STATUS_CHANGE))
            consult.legs[leg.number] = Leg(leg.number, ESTABLISHED, time.monotonic(), muted=leg.muted)
        for key, value in original.user_data.items():
            consult.user_data.setdefault(key, value)
        self._end(original)
        if len(consult.live_legs()) < 2:
            steps += [(leg.number, consult, STATUS_CHANGE) for leg in consult.live_legs()]
            for leg in consult.live_legs():
                self._release_leg(consult, leg.number, ENDED)
            self._end(consult)
        else:
            steps += [(leg.number, consult, PARTICIPANTS_UPDATED) for leg in consult.live_legs()]
        self._finish(steps)
        self._unlink(consult)

    def complete_conference(self, agent: Agent, call: Call) -> None:
        """The consult call's parties join the original call, which is retrieved (seed 000)."""
        original, consult = self._pair(agent, call)
        released, joined = self._fold(agent, consult, original)
        self._finish([*released, *joined])
        self._unlink(consult)

    def _unlink(self, consult: Call) -> None:
        """A completed consultation is over: the call that goes on is an ordinary call, and no call
        stays a consult of it. Otherwise an agent later joined to the transferred call would see it
        as a consult of a call long gone. Done after the announcements, which still name the parent
        to the agent whose consult it was."""
        consult.consult = None
        for other in self.calls.values():
            if other.consult and other.consult.parent_id == consult.id:
                other.consult = None

    def join_calls(self, agent: Agent, held: Call, active: Call) -> None:
        """Three-party from any two of the agent's calls, consult-linked or not: the held call's parties
        join the active call, which goes on as the conference. The agent hears the conference form
        before its held call goes away, so the joined call's update comes first."""
        self._require(held.id != active.id, "A call cannot be joined with itself")
        self._require(held.legs[agent.dn].state == HELD, "Only a held call can be joined to the active one")
        self._require(active.legs[agent.dn].state == ESTABLISHED, "There is no established call to join")
        for key, value in held.user_data.items():
            active.user_data.setdefault(key, value)
        # The held call goes away: a consult made from it (the active call, say) is a consult no more.
        for call in self.calls.values():
            if call.consult and call.consult.parent_id == held.id:
                call.consult = None
        released, joined = self._fold(agent, held, active)
        self._finish([*joined, *released])

    def _fold(self, agent: Agent, source: Call, target: Call) -> tuple[list[Step], list[Step]]:
        """Move the parties of ``source`` into ``target`` and end ``source``; the agent's leg on
        ``target`` is active again. Returns the releases on ``source`` and the updates on ``target``."""
        movers = [leg for leg in source.live_legs() if leg.number != agent.dn]
        self._release_leg(source, agent.dn, MERGED)
        released: list[Step] = [(agent.dn, source, STATUS_CHANGE)]
        for leg in movers:
            self._release_leg(source, leg.number, MOVED)
            released.append((leg.number, source, STATUS_CHANGE))
            state = RINGING if leg.state == RINGING else ESTABLISHED
            target.legs[leg.number] = Leg(leg.number, state, time.monotonic(), muted=leg.muted)
        self._end(source)
        target.legs[agent.dn].state = ESTABLISHED
        joined: list[Step] = [(agent.dn, target, PARTICIPANTS_UPDATED)]
        joined += [
            (leg.number, target, PARTICIPANTS_UPDATED) for leg in target.live_legs() if leg.number != agent.dn
        ]
        return released, joined

    def single_step_transfer(
        self, agent: Agent, call: Call, destination: str, user_data: dict[str, Any]
    ) -> None:
        self._require(is_dialable(destination), f"{destination!r} is not a number that can be dialled")
        self._require(destination not in call.legs, f"{destination} is already on this call")
        call.user_data.update(user_data)
        self._release_leg(call, agent.dn, LEFT)
        steps: list[Step] = [(agent.dn, call, STATUS_CHANGE)]
        steps += [(leg.number, call, PARTICIPANTS_UPDATED) for leg in call.live_legs()]
        steps += self._ring(call, destination)
        self._finish(steps)

    def single_step_conference(
        self, agent: Agent, call: Call, destination: str, user_data: dict[str, Any]
    ) -> None:
        """Add a party at once; the switch records who started the conference (seed 001)."""
        self._require(is_dialable(destination), f"{destination!r} is not a number that can be dialled")
        self._require(destination not in call.legs, f"{destination} is already on this call")
        call.user_data.update(user_data)
        call.user_data["FirstConferencePartyDN"] = agent.dn
        self._finish(self._ring(call, destination))

    def swap(self, agent: Agent, call: Call, other_id: str | None) -> None:
        """Seed 003: the call the request names goes on hold first, then the other is retrieved."""
        partner = self.call_for(agent, other_id) if other_id else self._partner(agent, call)
        self._require(partner is not None and partner.id != call.id, "There is no other call to swap with")
        assert partner is not None
        mine, theirs = call.legs[agent.dn], partner.legs[agent.dn]
        self._require(
            theirs.state == HELD and mine.state in (ESTABLISHED, DIALING),
            "Swap needs one active call and one held call",
        )
        mine.state = HELD
        theirs.state = ESTABLISHED
        self._finish([(agent.dn, call, STATUS_CHANGE), (agent.dn, partner, STATUS_CHANGE)])

    def send_dtmf(self, agent: Agent, call: Call, digits: str) -> None:
        self._require(
            bool(digits) and len(digits) <= 64 and all(ch in "0123456789*#ABCD" for ch in digits),
            "digits must be 1 to 64 of 0-9, *, #, A-D",
        )
        self._require(call.legs[agent.dn].state in (ESTABLISHED, DIALING), "The call is not active")
        call.dtmf.append(digits)
        self._finish([(agent.dn, call, DTMF_SENT)])

    def change_user_data(self, agent: Agent, call: Call, change: Callable[[dict[str, Any]], None]) -> None:
        change(call.user_data)
        self._finish([(number, call, ATTACHED_DATA_CHANGED) for number in self._agents_on(call)])

    def remove_participant(self, agent: Agent, call: Call, number: str) -> None:
        self._require(number != agent.dn, "Use Hangup to leave the call")
        leg = call.legs.get(number)
        self._require(leg is not None and leg.state in LIVE_STATES, f"{number} is not on this call")
        self._require(len(call.live_legs()) > 2, "The call is not a conference")
        self._finish(self._leave(call, number, REMOVED))

    def set_mute(self, agent: Agent, call: Call, muted: bool) -> None:
        call.legs[agent.dn].muted = muted
        self._finish([(agent.dn, call, STATUS_CHANGE)])

    # -- supervision -----------------------------------------------------------------------------

    def monitor_of(self, supervisor: Agent) -> Monitor:
        monitor = self.monitors.get(supervisor.login)
        self._require(monitor is not None, f"{supervisor.login} is not monitoring anyone")
        assert monitor is not None
        return monitor

    def supervise(
        self,
        supervisor: Agent,
        target: Agent,
        mode: str,
        *,
        scope: str = "Call",
        all_calls: bool = False,
    ) -> Monitor:
        """Start monitoring ``target``: at once on its established call, else on its next one."""
        self._require(mode in MONITOR_MODES, f"mode must be one of {', '.join(MONITOR_MODES)}")
        self._require(scope in MONITOR_SCOPES, f"scope must be one of {', '.join(MONITOR_SCOPES)}")
        self._require(supervisor.supervisor, f"{supervisor.login} is not a supervisor")
        self._require(supervisor.logged_in, f"Supervisor {supervisor.login} is not logged in")
        self._require(target.login != supervisor.login, "A supervisor cannot monitor itself")
        self._require(target.logged_in, f"Agent {target.login} is not logged in")
        self._require(
            supervisor.login not in self.monitors,
            f"{supervisor.login} is already monitoring an agent: cancel that first",
        )
        monitor = Monitor(
            supervisor=supervisor.login,
            supervisor_dn=supervisor.dn,
            target=target.login,
            target_dn=target.dn,
            mode=mode,
            scope=scope,
            all_calls=all_calls,
        )
        self.monitors[supervisor.login] = monitor
        self._publish(MonitorEvent(monitor, STARTED))
        self._follow_monitors()
        return monitor

    def change_monitoring(self, supervisor: Agent, mode: str) -> None:
        """Switch between listening, coaching and barging in; only a change to or from BargeIn is
        news to the call's parties (the supervisor appears or disappears among them)."""
        self._require(mode in MONITOR_MODES, f"mode must be one of {', '.join(MONITOR_MODES)}")
        monitor = self.monitor_of(supervisor)
        previous = monitor.mode
        if mode == previous:
            return
        monitor.mode = mode
        self._publish(MonitorEvent(monitor, SWITCHED, previous))
        call = monitor.call
        if call is not None:
            steps: list[Step] = [(monitor.supervisor_dn, call, STATUS_CHANGE)]
            if BARGE_IN in (previous, mode):
                steps += self._parties_hear(call, monitor, barge=True)
            self._announce(steps)

    def mute_monitored(self, supervisor: Agent, muted: bool) -> None:
        monitor = self.monitor_of(supervisor)
        call = monitor.call
        self._require(call is not None, "The monitored agent is not on a call")
        assert call is not None
        monitor.monitored_muted = muted
        self._announce(
            [
                (monitor.supervisor_dn, call, MONITORED_USER_MUTED),
                (monitor.target_dn, call, MONITORED_USER_MUTED),
            ]
        )

    def stop_supervising(self, supervisor: Agent) -> None:
        """Cancel monitoring: the supervisor's leg leaves the call first, then the monitor ends."""
        monitor = self.monitor_of(supervisor)
        del self.monitors[supervisor.login]
        self._leave_monitored_call(monitor, LEFT)
        self._publish(MonitorEvent(monitor, STOPPED))

    def intercept(self, supervisor: Agent) -> Call:
        """The supervisor takes the monitored call over: the agent drops out, the supervisor's leg
        becomes an ordinary party of the call, and the monitoring ends."""
        monitor = self.monitor_of(supervisor)
        call = monitor.call
        self._require(call is not None, "The monitored agent is not on a call")
        assert call is not None
        del self.monitors[supervisor.login]
        monitor.call = None
        leg = call.legs[supervisor.dn]
        leg.monitor = None
        leg.joined = time.monotonic()
        self._finish(self._leave(call, monitor.target_dn, LEFT))
        self._publish(MonitorEvent(monitor, STOPPED))
        return call

    def _parties_hear(self, call: Call, monitor: Monitor, *, barge: bool) -> list[Step]:
        """What the call's parties are told when a supervisor joins, leaves or switches: with a
        barging supervisor every party's participants change, else only the monitored agent's
        view (``supervisorListeningIn``)."""
        if barge:
            return [(leg.number, call, PARTICIPANTS_UPDATED) for leg in call.live_legs()]
        target = call.legs.get(monitor.target_dn)
        return [(monitor.target_dn, call, STATUS_CHANGE)] if target and target.state in LIVE_STATES else []

    def _follow_monitors(self) -> None:
        """After every change: a monitoring leg whose agent left its call leaves too, and a monitor
        with no leg joins the call its agent is established on. Re-entrant calls (from the
        announcements made here) return at once."""
        if self._following or not self.monitors:
            return
        self._following = True
        try:
            for monitor in list(self.monitors.values()):
                if self.monitors.get(monitor.supervisor) is not monitor:
                    continue
                if monitor.call is not None and not self._still_monitored(monitor):
                    self._leave_monitored_call(monitor, ENDED)
                    if not monitor.all_calls:
                        del self.monitors[monitor.supervisor]
                        self._publish(MonitorEvent(monitor, STOPPED))
                        continue
                if monitor.call is None:
                    self._join_monitored_call(monitor)
        finally:
            self._following = False

    def _still_monitored(self, monitor: Monitor) -> bool:
        call = monitor.call
        if call is None or call.id not in self.calls:
            return False
        target, own = call.legs.get(monitor.target_dn), call.legs.get(monitor.supervisor_dn)
        return (
            target is not None
            and target.state in LIVE_STATES
            and target.monitor is None
            and own is not None
            and own.state in LIVE_STATES
        )

    def _join_monitored_call(self, monitor: Monitor) -> None:
        target = self.agents.get(monitor.target)
        if target is None:
            return
        call = next(
            (
                c
                for c in self.party_calls(target)
                if c.legs[target.dn].state == ESTABLISHED and monitor.supervisor_dn not in c.legs
            ),
            None,
        )
        if call is None:
            return
        call.legs[monitor.supervisor_dn] = Leg(
            monitor.supervisor_dn, ESTABLISHED, time.monotonic(), monitor=monitor
        )
        monitor.call = call
        steps: list[Step] = [(monitor.supervisor_dn, call, STATUS_CHANGE)]
        self._announce([*steps, *self._parties_hear(call, monitor, barge=monitor.mode == BARGE_IN)])

    def _leave_monitored_call(self, monitor: Monitor, cause: str) -> None:
        call, monitor.call = monitor.call, None
        leg = call.legs.get(monitor.supervisor_dn) if call is not None else None
        if call is None or leg is None or leg.state == RELEASED:
            return
        self._release_leg(call, monitor.supervisor_dn, cause)
        steps: list[Step] = [(monitor.supervisor_dn, call, STATUS_CHANGE)]
        going_on = call.id in self.calls
        if going_on:
            steps += self._parties_hear(call, monitor, barge=monitor.mode == BARGE_IN)
        self._announce(steps)
        if going_on and call.legs.get(monitor.supervisor_dn) is leg:
            del call.legs[monitor.supervisor_dn]

    def drop_call(self, call: Call) -> None:
        """The call is released for every party at once (an inspector's forced release)."""
        steps: list[Step] = []
        for leg in call.live_legs():
            self._release_leg(call, leg.number, ENDED)
            steps.append((leg.number, call, STATUS_CHANGE))
        self._end(call)
        self._finish(steps)

    # -- agent state ---------------------------------------------------------------------------

    def login(self, agent: Agent, place: str = "") -> None:
        log.info("agent %s logged in", agent.login)
        agent.logged_in = True
        agent.place = place
        agent.state, agent.reason = "NotReady", ""
        self._publish(AgentEvent(agent))

    def logout(self, agent: Agent) -> None:
        """Logged out: the agent's monitoring ends, and so does every monitoring of the agent."""
        for monitor in list(self.monitors.values()):
            supervisor = self.agents.get(monitor.supervisor)
            if supervisor is not None and agent.login in (monitor.supervisor, monitor.target):
                self.stop_supervising(supervisor)
        log.info("agent %s logged out", agent.login)
        agent.logged_in = False
        agent.state, agent.reason = "LoggedOut", ""
        self._publish(AgentEvent(agent))

    def set_state(self, agent: Agent, state: str, reason: str = "") -> None:
        self._require(agent.logged_in, "The agent is not logged in to a contact-center session")
        agent.state, agent.reason = state, reason
        self._publish(AgentEvent(agent))

    def set_device(
        self, agent: Agent, *, do_not_disturb: bool | None = None, forward_to: str | None = None
    ) -> None:
        if do_not_disturb is not None:
            agent.do_not_disturb = do_not_disturb
        if forward_to is not None:
            self._require(forward_to == "" or is_dialable(forward_to), f"{forward_to!r} is not a number")
            agent.forward_to = forward_to
        self._publish(AgentEvent(agent))

    @staticmethod
    def _require(condition: bool, message: str) -> None:
        if not condition:
            raise SwitchError(message)

    # -- inspection ----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The whole switch as JSON, for the control API."""
        return {
            "settings": {
                "answer_delay_ms": self.settings.answer_delay_ms,
                "ringing_timeout_ms": self.settings.ringing_timeout_ms,
            },
            "agents": [
                {
                    "login": a.login,
                    "dn": a.dn,
                    "dialect": a.dialect,
                    "loggedIn": a.logged_in,
                    "state": a.state,
                    "reason": a.reason,
                    "place": a.place,
                    "supervisor": a.supervisor,
                }
                for a in self.agents.values()
            ],
            "monitoring": [
                {
                    "supervisor": m.supervisor,
                    "supervisorDn": m.supervisor_dn,
                    "target": m.target,
                    "targetDn": m.target_dn,
                    "mode": m.mode,
                    "scope": m.scope,
                    "allCalls": m.all_calls,
                    "monitoredUserMuted": m.monitored_muted,
                    "callId": m.call.id if m.call is not None else None,
                }
                for m in self.monitors.values()
            ],
            "calls": [
                {
                    "id": c.id,
                    "connId": c.conn_id,
                    "from": c.origin,
                    "dnis": c.dnis,
                    "duration": int(time.monotonic() - c.created),
                    "userData": dict(c.user_data),
                    "dtmf": list(c.dtmf),
                    "consult": (
                        {"owner": c.consult.owner, "parent": c.consult.parent_id, "kind": c.consult.kind}
                        if c.consult
                        else None
                    ),
                    "parties": [
                        {"number": leg.number, "state": leg.state, "muted": leg.muted}
                        for leg in c.live_legs()
                    ],
                    "supervisors": [
                        {"number": leg.number, "mode": leg.monitor.mode, "monitoring": leg.monitor.target_dn}
                        for leg in c.monitor_legs()
                        if leg.monitor is not None
                    ],
                }
                for c in self.calls.values()
            ],
        }
