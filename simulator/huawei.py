"""The Huawei CC-Gateway AgentGateway dialect: sign-in with Guids, event polling, voice and state operations.

Owns the wire format of ``../shared/spec/huawei.md`` (sections 2-8 and 11) and of seed 004: the
``{"message", "retcode", "result"}`` envelope, always with HTTP 200; the Guid sessions with their
dynamic rotation and the sign-out of an agent that stops polling; one bounded event queue per
signed-in agent; the translation of the switch's per-agent call views and agent states into
Huawei events; and the retcode of every refusal. It serves the agents of the ``huawei`` dialect
only. The switch underneath knows nothing of any of it.

Events come from diffing what each agent was last told about each call against the switch's new
view, so a call placed, transferred or conferenced by anyone (a Genesys agent, the control API)
reaches a Huawei agent the same way as one it handles itself.

Real-time inspection (``/qualitycontrol/{inspector}/...``, spec section 11), for agents the
directory marks as supervisors ("inspectors"); anyone else is refused with ``900-002``:

* ``PUT addsupervise/{workNo}`` listens, ``PUT addinsert/{workNo}`` inserts (barges in),
  ``POST requestwhisperagent?whisperagentid={workNo}`` whispers (coaches). An inspection follows
  the agent from call to call until cancelled. The inspector's poll returns
  ``AgentOther_PhoneAlerting``, ``AgentOther_PhoneOffhook`` and ``AgentState_Busy``; the inspected
  agent's returns ``AgentOther_BeQcStart`` ``{"qcType": 8|9|20172, "qcAgentId": <inspector>}``
  (8 listen, 9 insert, 20172 whisper). The inspector gets no call events for the inspected call.
* ``POST switch/{workNo}`` toggles listening and inserting (whispering goes to listening);
  ``POST requestswitchinsertwhisperagent?whisperagentid=&switchtype=0|1|2`` switches to listening,
  inserting or whispering. The inspected agent gets ``AgentOther_BeQcStart`` with the new type.
* ``DELETE {workNo}`` cancels, ``POST requeststopwhisperagent?whisperagentid=`` stops whispering:
  the inspected agent gets ``AgentOther_BeQcStop`` (the type it had), the inspector
  ``AgentOther_PhoneRelease`` then its state's event (``AgentState_Ready`` when idle).
* ``PUT intercept/{workNo}`` (or ``intercept/{workNo}/{callId}``) takes the call over: the agent
  gets ``AgentEvent_Call_Release`` (and ``AgentOther_PhoneRelease``) then ``AgentOther_BeQcStop``,
  the inspector ``AgentEvent_Talking`` on the call, now its own.
* ``POST forcebusy/{workNo}``, ``forceidle/{workNo}``, ``forcerest/{workNo}/{time}/{reason}``,
  ``forcelogout/{workNo}`` and ``forcedropcall/{callid}``: the agent's poll returns what its own
  operation would have (``AgentState_SetNotReady_Success`` with reason ``"3"``, "forced by an
  inspector"; ``AgentState_Ready`` after the cancel event of its former state;
  ``AgentState_SetRest_Success``; ``AgentOther_ShutdownService``, after which its Guid is signed
  out; the call's release events).
* Refusals (HTTP 200): ``000-005`` the inspector names itself, ``900-004`` no such Huawei agent,
  ``900-005`` wrong state (the agent is not signed in, the inspector is busy or is not inspecting
  that agent in a way the operation needs), ``000-002`` a bad parameter.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import secrets
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from typing import Any

from .switch import (
    BARGE_IN,
    COACH,
    DIALING,
    ENDED,
    ESTABLISHED,
    HELD,
    LISTEN_IN,
    LIVE_STATES,
    MERGED,
    RELEASED,
    RINGING,
    STARTED,
    STOPPED,
    TIMED_OUT,
    TRANSFER,
    Agent,
    Call,
    CallEvent,
    CallView,
    Monitor,
    MonitorEvent,
    Switch,
    SwitchError,
    SwitchEvent,
    is_dialable,
    is_internal,
)
from .web import Request, Response, Router, strict_json

log = logging.getLogger("switchboard.simulator")

HUAWEI_API = "/huawei/agentgateway/resource"
GUID_NODE = "AgentGateway0"
QUEUE_LIMIT = 1000
MAX_CALL_DATA = 16 * 1024

# Retcodes (spec section 6 and 11).
OK = "0"
WRONG_EVENT_METHOD = "000-001"
BAD_PARAMETER = "000-002"
NO_RIGHT = "000-003"
ALREADY_SIGNED_IN = "100-002"
WRONG_CREDENTIALS = "100-004"
NOT_SIGNED_IN = "100-006"
AGENT_ERROR = "100-007"
WRONG_STATE_AT_SIGN_OUT = "100-010"
BAD_SIGN_IN_PARAMETER = "100-011"
BAD_NUMBER = "200-001"
ANSWER_NO_CALL = "200-002"
MUTE_NO_CALL = "200-003"
MUTE_WRONG_STATE = "200-004"
UNMUTE_NO_CALL = "200-007"
UNMUTE_WRONG_STATE = "200-008"
THREE_PARTY_NO_CALL = "200-010"
THREE_PARTY_NO_HELD_CALL = "200-011"
TRANSFER_NO_CALL = "200-012"
HOLD_NO_CALL = "200-013"
HOLD_WRONG_STATE = "200-014"
UNHOLD_NO_HELD_CALL = "200-015"
UNHOLD_WRONG_STATE = "200-016"
RELEASE_NO_CALL = "200-017"
HELP_NO_CALL = "200-018"
NO_HELD_CALLS = "400-003"
QC_SELF = "000-005"
QC_NO_PERMISSION = "900-002"
QC_NO_AGENT = "900-004"
QC_WRONG_STATE = "900-005"

# ``qcType`` of AgentOther_BeQcStart/Stop per inspection mode, and the modes of ``switchtype``.
QC_TYPES = {LISTEN_IN: 8, BARGE_IN: 9, COACH: 20172}
SWITCH_TYPES = {"0": LISTEN_IN, "1": BARGE_IN, "2": COACH}
# The reason of AgentState_SetNotReady_Success when an inspector forced the agent busy.
FORCED_BUSY_REASON = "3"

# Agent state codes of ``GET agentstatus`` (spec 7.1), from the switch's vendor-neutral states.
STATE_CODES = {"LoggedOut": 2, "NotReady": 3, "Ready": 4, "AfterCallWork": 5, "AuxWork": 8}
TALKING_CODE = 7
# The ``status`` of a sign-in, and the switch state it starts the agent in.
SIGN_IN_STATES = {3: "NotReady", 4: "Ready", 5: "AfterCallWork"}
# The event that leaves a state on the way back to idle, before ``AgentState_Ready``.
CANCEL_EVENTS = {
    "NotReady": "AgentState_CancelNotReady_Success",
    "AuxWork": "AgentState_CancelRest_Success",
    "AfterCallWork": "AgentState_CancelWork_Success",
}
# Transfer ``devicetype`` and ``mode`` pairs the simulated site serves (spec 4.1): to an agent,
# 0 release (blind) or 2 success; to an outside number, 1 release or 2 success.
TRANSFER_MODES = {(2, 0): "release", (2, 2): "success", (5, 1): "release", (5, 2): "success"}

TIMING_SETTINGS = ("guid_interval_ms", "guid_timeout_ms", "signout_after_ms", "poll_wait_ms")

# How often Guids and silent agents are looked for, relative to signout_after_ms.
_MIN_SWEEP_PERIOD_S = 0.01
_MAX_SWEEP_PERIOD_S = 0.25


@dataclass(slots=True)
class Timing:
    """The gateway's session timing (GUIDINTERVAL, GUIDTIMEOUT, the 2-minute sign-out, the poll hold)."""

    guid_interval_ms: int = 60000
    guid_timeout_ms: int = 120000
    signout_after_ms: int = 120000
    poll_wait_ms: int = 10000


class Refusal(Exception):
    """An operation refused with a Huawei retcode; the message is for the agent."""

    def __init__(self, retcode: str, message: str) -> None:
        super().__init__(message)
        self.retcode = retcode
        self.message = message


@dataclass(slots=True, eq=False)
class Session:
    """One signed-in agent: its Guids, its event queue and its held poll."""

    login: str
    guid: str
    login_time: str
    rotated: float
    seen: float
    guids: set[str] = field(default_factory=set)
    queue: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=QUEUE_LIMIT))
    # The future a held poll awaits; resolving it to True tells that poll another one took over.
    waiter: asyncio.Future[bool] | None = None
    polling: int = 0
    # Signed out: its Guid may still poll until the queue (with AgentOther_ShutdownService) is drained.
    closed: bool = False
    gone: bool = False


@dataclass(frozen=True, slots=True)
class Told:
    """What an agent was last told about one call: enough to diff the next view against."""

    state: str
    others: tuple[str, ...]
    connected: frozenset[str]


@dataclass(slots=True)
class SuccessTransfer:
    """A "success" transfer: the target rings on a consult call the agent does not see; the customer
    is handed over when it answers, and stays with the agent when it does not."""

    login: str
    original_id: str
    target: str
    consult_id: str = ""
    completed: bool = False
    abandoned: bool = False


def _settle(future: asyncio.Future[bool], superseded: bool = False) -> None:
    if not future.done():
        future.set_result(superseded)


def _envelope(
    retcode: str, message: str, result: Any = None, headers: dict[str, str] | None = None
) -> Response:
    return Response(body={"message": message, "retcode": retcode, "result": result}, headers=headers or {})


def _ok(result: Any = None, headers: dict[str, str] | None = None) -> Response:
    return _envelope(OK, "success", {} if result is None else result, headers)


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


def _json_body(request: Request) -> dict[str, Any]:
    """The body as a JSON object, strictly: no NaN, no Infinity, no NUL. An empty body is ``{}``."""
    if not request.body.strip():
        return {}
    try:
        value = strict_json(request.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Refusal(BAD_PARAMETER, f"The body is not strict JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise Refusal(BAD_PARAMETER, "The body must be a JSON object")
    try:
        nul = _holds_nul(value)
    except RecursionError:
        raise Refusal(BAD_PARAMETER, "The body is nested too deeply") from None
    if nul:
        raise Refusal(BAD_PARAMETER, "The body must not contain NUL characters")
    return value


# Huawei's own samples send numbers and booleans as strings, so the readers accept both.


def _text(body: dict[str, Any], name: str, retcode: str = BAD_PARAMETER) -> str:
    value = body.get(name)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Refusal(retcode, f"{name} must be a string")
    return str(value).strip()


def _integer(body: dict[str, Any], name: str, default: int | None, retcode: str = BAD_PARAMETER) -> int:
    value = body.get(name)
    if value is None or value == "":
        if default is None:
            raise Refusal(retcode, f"{name} is required")
        return default
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise Refusal(retcode, f"{name} must be a whole number")


def _flag(body: dict[str, Any], name: str, default: bool, retcode: str = BAD_PARAMETER) -> bool:
    value = body.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise Refusal(retcode, f"{name} must be true or false")


def _call_data(body: dict[str, Any]) -> dict[str, Any]:
    """``callappdata`` as the switch's user data: one key, so a Genesys agent sees it too."""
    data = _text(body, "callappdata")
    if len(data) > MAX_CALL_DATA:
        raise Refusal(BAD_PARAMETER, f"callappdata must be at most {MAX_CALL_DATA} characters")
    return {"callappdata": data} if data else {}


def _render_call_data(user_data: dict[str, Any]) -> str:
    """Huawei call data is one string: the Huawei-set text itself, else the user data as JSON."""
    if set(user_data) == {"callappdata"} and isinstance(user_data["callappdata"], str):
        return user_data["callappdata"]
    if not user_data:
        return ""
    try:
        return json.dumps(user_data, allow_nan=False, separators=(",", ":"))
    except ValueError:
        # Another dialect let in a number JSON cannot carry; it goes out as its text, never as NaN.
        return json.dumps({key: str(value) for key, value in user_data.items()}, separators=(",", ":"))


def _query(request: Request, name: str) -> str:
    values = request.query.get(name)
    return values[0].strip() if values else ""


Handler = Callable[[Request, Session, Agent], Awaitable[Response]]


class HuaweiDialect:
    """The Huawei surface over one switch: sessions, event queues, and the operations."""

    def __init__(self, switch: Switch) -> None:
        self.switch = switch
        self.timing = Timing()
        self.sessions: dict[str, Session] = {}
        self._draining: dict[str, Session] = {}
        # Every Guid that authenticates, with when it stops: the current one never, a rotated one later.
        self._guids: dict[str, tuple[Session, float]] = {}
        self._told: dict[str, dict[str, Told]] = {}
        self._states: dict[str, tuple[str, str]] = {}
        self._offhook: set[str] = set()
        # Agents whose sign-in reports its own documented events rather than the state diff.
        self._quiet: set[str] = set()
        self._transfers: dict[str, SuccessTransfer] = {}
        self._starting: SuccessTransfer | None = None
        self._sweeper: asyncio.Task[None] | None = None
        switch.listeners.append(self.on_switch_event)

    # -- settings, reset, faults ---------------------------------------------------------------

    def timing_settings(self) -> dict[str, int]:
        return {f.name: getattr(self.timing, f.name) for f in fields(self.timing)}

    def reset(self) -> None:
        """A gateway restart: every Guid, queue and held poll is gone, the timing is the default."""
        self.drop_sessions()
        self._told.clear()
        self._states.clear()
        self._offhook.clear()
        self._transfers.clear()
        self._starting = None
        self.timing = Timing()

    def drop_sessions(self) -> int:
        """Expire every Guid, as losing the gateway would; agents stay signed in at the switch and
        their calls go on, so a client that signs in again finds them. Returns how many were open."""
        sessions = [*self.sessions.values(), *self._draining.values()]
        for session in sessions:
            self._drop(session)
        self._guids.clear()
        return len(sessions)

    async def close(self) -> None:
        for session in [*self.sessions.values(), *self._draining.values()]:
            if session.waiter is not None:
                _settle(session.waiter)
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None and not sweeper.done():
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper

    def error_response(self, path: str, status: int, message: str) -> Response:
        """The answer to a request that failed before reaching a handler: HTTP 200 and a retcode."""
        if status == 405 and path.startswith(HUAWEI_API + "/agentevent/"):
            return _envelope(WRONG_EVENT_METHOD, "Agent events are obtained with GET")
        if status >= 500:
            return _envelope(AGENT_ERROR, message or "Internal error")
        return _envelope(BAD_PARAMETER, message or "Invalid request")

    # -- sessions --------------------------------------------------------------------------------

    def _open(self, login: str) -> Session:
        now = time.monotonic()
        guid = f"{uuid.uuid4()}.{GUID_NODE}"
        session = Session(
            login=login, guid=guid, login_time=str(int(time.time() * 1000)), rotated=now, seen=now
        )
        session.guids.add(guid)
        self._guids[guid] = (session, math.inf)
        self.sessions[login] = session
        self._ensure_sweeper()
        return session

    def _rotate(self, session: Session, now: float) -> None:
        old, session.guid = session.guid, f"{uuid.uuid4()}.{GUID_NODE}"
        self._guids[old] = (session, now + self.timing.guid_timeout_ms / 1000)
        self._guids[session.guid] = (session, math.inf)
        session.guids.add(session.guid)
        session.rotated = now

    def _close(self, session: Session) -> None:
        """Signed out: the Guid may only collect what is left in the queue."""
        if self.sessions.get(session.login) is session:
            del self.sessions[session.login]
        session.closed = True
        self._draining[session.login] = session
        if session.waiter is not None:
            _settle(session.waiter)

    def _drop(self, session: Session) -> None:
        if self.sessions.get(session.login) is session:
            del self.sessions[session.login]
        if self._draining.get(session.login) is session:
            del self._draining[session.login]
        for guid in session.guids:
            self._guids.pop(guid, None)
        session.guids.clear()
        session.queue.clear()
        session.gone = True
        if session.waiter is not None:
            _settle(session.waiter)

    def _authenticate(self, request: Request, *, draining: bool = False) -> tuple[Session, Agent]:
        guid = request.headers.get("guid", "").strip().removeprefix("JSESSIONID=")
        entry = self._guids.get(guid) if guid else None
        if entry is None:
            if not guid:
                raise Refusal(NOT_SIGNED_IN, "Not signed in: send the Guid from Set-GUID in the Guid header")
            raise Refusal(NOT_SIGNED_IN, "The Guid is not valid (signed out or expired): sign in again")
        session, until = entry
        if time.monotonic() >= until:
            self._guids.pop(guid, None)
            session.guids.discard(guid)
            raise Refusal(NOT_SIGNED_IN, "The Guid has expired: use the one from the last Set-GUID")
        agentid = request.params.get("agentid", "")
        if agentid != session.login:
            raise Refusal(NO_RIGHT, f"The Guid belongs to agent {session.login}, not to agent {agentid}")
        if session.closed and not draining:
            raise Refusal(NOT_SIGNED_IN, f"Agent {session.login} is signed out")
        agent = self.switch.agents.get(session.login)
        if agent is None:
            self._drop(session)
            raise Refusal(NOT_SIGNED_IN, f"Agent {session.login} is no longer in the directory")
        return session, agent

    def _ensure_sweeper(self) -> None:
        loop = asyncio.get_running_loop()
        sweeper = self._sweeper
        if sweeper is not None and not sweeper.done() and sweeper.get_loop() is loop:
            return
        self._sweeper = loop.create_task(self._sweep(), name="huawei-sweeper")

    async def _sweep(self) -> None:
        # Ends once no session or Guid is left, so an idle gateway holds no task.
        while self.sessions or self._draining or self._guids:
            period = self.timing.signout_after_ms / 4000
            await asyncio.sleep(min(_MAX_SWEEP_PERIOD_S, max(_MIN_SWEEP_PERIOD_S, period)))
            try:
                self._expire(time.monotonic())
            except Exception:
                log.exception("the Huawei session sweep failed")

    def _expire(self, now: float) -> None:
        """Forget rotated Guids past their timeout, and sign out agents that stopped polling."""
        for guid, (session, until) in list(self._guids.items()):
            if now >= until:
                del self._guids[guid]
                session.guids.discard(guid)
        silence = self.timing.signout_after_ms / 1000
        for session in [*self.sessions.values(), *self._draining.values()]:
            if session.polling or now - session.seen <= silence:
                continue
            self._drop(session)
            agent = self.switch.agents.get(session.login)
            if not session.closed and agent is not None and agent.logged_in:
                log.info("Huawei agent %r did not poll for %d ms: signed out", agent.login, silence * 1000)
                self.switch.logout(agent)

    # -- events ----------------------------------------------------------------------------------

    def _push(self, agent: Agent, event_type: str, content: Any) -> None:
        session = self.sessions.get(agent.login)
        if session is None:
            return
        if len(session.queue) == QUEUE_LIMIT:
            log.warning("Huawei agent %r is not polling: its oldest event is dropped", agent.login)
        session.queue.append({"eventType": event_type, "workNo": agent.login, "content": content})
        if session.waiter is not None:
            _settle(session.waiter)

    def on_switch_event(self, event: SwitchEvent) -> None:
        if isinstance(event, MonitorEvent):
            self._on_monitor(event)
            return
        agent = event.agent
        if agent.dialect != "huawei":
            return
        if isinstance(event, CallEvent):
            # An inspector hears the inspected call but is told nothing of it as a call.
            if not event.view.monitoring:
                self._on_call(agent, event.view)
        else:
            self._on_agent(agent)

    def _on_monitor(self, event: MonitorEvent) -> None:
        """An inspection started, switched or stopped: the inspector's phone and the agent's BeQc."""
        monitor = event.monitor
        inspector = self.switch.agents.get(monitor.supervisor)
        target = self.switch.agents.get(monitor.target)
        qc_agent: int | str = int(monitor.supervisor) if monitor.supervisor.isdigit() else monitor.supervisor
        if inspector is not None and inspector.dialect == "huawei":
            if event.change == STARTED:
                self._push(inspector, "AgentOther_PhoneAlerting", None)
                self._push(inspector, "AgentOther_PhoneOffhook", {"type": "main"})
                self._push(inspector, "AgentState_Busy", None)
            elif event.change == STOPPED and inspector.logged_in and not self._calls(inspector):
                self._push(inspector, "AgentOther_PhoneRelease", {"phoneState": 3})
                self._push_state(inspector)
        if target is not None and target.dialect == "huawei":
            event_type = "AgentOther_BeQcStop" if event.change == STOPPED else "AgentOther_BeQcStart"
            self._push(target, event_type, {"qcType": QC_TYPES[monitor.mode], "qcAgentId": qc_agent})

    def _push_state(self, agent: Agent) -> None:
        """The event of the agent's current state, as when it entered it."""
        if agent.state == "Ready":
            self._push(agent, "AgentState_Ready", None)
        elif agent.state == "NotReady":
            self._push(agent, "AgentState_SetNotReady_Success", {"reason": agent.reason or "0"})
        elif agent.state == "AuxWork":
            self._push(agent, "AgentState_SetRest_Success", {"reason": agent.reason or "0"})
        elif agent.state == "AfterCallWork":
            self._push(agent, "AgentState_SetWork_Success", None)

    def _on_agent(self, agent: Agent) -> None:
        before = self._states.get(agent.login, ("LoggedOut", ""))
        now = (agent.state, agent.reason)
        self._states[agent.login] = now
        if agent.login in self._quiet or now == before:
            return
        if agent.state == "LoggedOut":
            session = self.sessions.get(agent.login)
            login_time = session.login_time if session else ""
            self._push(agent, "AgentOther_ShutdownService", {"loginTime": login_time})
            return
        if agent.state == "Ready" and before[0] in CANCEL_EVENTS:
            self._push(agent, CANCEL_EVENTS[before[0]], None)
        self._push_state(agent)

    def _on_call(self, agent: Agent, view: CallView) -> None:
        told = self._told.setdefault(agent.login, {})
        before = told.get(view.call_id)
        if view.state == RELEASED:
            if before is None:
                return
            del told[view.call_id]
            for event_type, content in self._released(agent, view, before):
                self._push(agent, event_type, content)
            self._phone_release_if_idle(agent)
            return
        connected = self._connected(agent, view)
        told[view.call_id] = Told(view.state, view.participants, connected)
        if view.state != RINGING:
            self._offhook.add(agent.login)
        for event_type, content in self._changed(agent, view, before, connected):
            self._push(agent, event_type, content)

    def _connected(self, agent: Agent, view: CallView) -> frozenset[str]:
        """The other parties that are on the call, not merely ringing."""
        call = self.switch.calls.get(view.call_id)
        if call is None:
            return frozenset()
        return frozenset(
            leg.number for leg in call.live_legs() if leg.number != agent.dn and leg.state != RINGING
        )

    def _changed(
        self, agent: Agent, view: CallView, before: Told | None, connected: frozenset[str]
    ) -> list[tuple[str, Any]]:
        """The events for a live view, against what the agent was last told about the call."""
        transfer, role = self._transfer_for(agent, view)
        entered = before is None or before.state != view.state
        if role == "consult":
            assert transfer is not None
            if entered and view.state == DIALING:
                return [
                    ("AgentEvent_Customer_Alerting", self._alerting(transfer.original_id, transfer.target))
                ]
            if entered and view.state == ESTABLISHED and not transfer.completed:
                self._soon(self._complete_success_transfer, view.call_id)
            return []
        if role == "original" and view.state == HELD:
            return []
        events: list[tuple[str, Any]] = []
        if entered:
            if view.state == RINGING:
                events.append(("AgentEvent_Ringing", self._ringing(agent, view)))
            elif view.state == DIALING:
                events.append(("AgentEvent_Customer_Alerting", self._alerting(view.call_id, view.dnis)))
            elif view.state == ESTABLISHED:
                events.append(("AgentEvent_Talking", self._talking(agent, view)))
            elif view.state == HELD:
                events.append(("AgentEvent_Hold", view.call_id))
        if before is not None:
            events += [
                ("AgentEvent_Customer_Release", {"callid": view.call_id, "number": number})
                for number in before.others
                if number not in view.participants
            ]
        was_connected = before.connected if before and before.state in (ESTABLISHED, HELD) else frozenset()
        if view.state == ESTABLISHED and not connected <= was_connected:
            if len(connected) >= 2:
                partner = ",".join(number for number in view.participants if number in connected)
                events.append(("AgentEvent_Conference", {"callid": view.call_id, "partner": partner}))
            elif not entered:
                # Someone else's transfer put a new party on this two-party call: it is announced
                # again, after the release of the party it replaced, so the desk learns who it is.
                events.append(("AgentEvent_Talking", self._talking(agent, view)))
        return events

    def _released(self, agent: Agent, view: CallView, before: Told) -> list[tuple[str, Any]]:
        """The events for the agent's leg of a call going away, by why it went."""
        transfer, role = self._transfer_for(agent, view)
        if role == "consult":
            assert transfer is not None
            self._transfers.pop(view.call_id, None)
            if transfer.completed or transfer.abandoned:
                return []
            self._soon(self._resume_after_failed_transfer, transfer)
            return [("AgentEvent_SuccTransResult", {"result": 1, "callId": transfer.original_id})]
        if role == "original":
            assert transfer is not None
            if view.release_cause == MERGED:
                return [
                    ("AgentEvent_SuccTransResult", {"result": 0, "callId": view.call_id}),
                    ("AgentEvent_Call_Release", view.call_id),
                ]
            # The customer or the agent ended the call: nobody is left to hand over.
            transfer.abandoned = True
            self._soon(self._hang_up_consult, transfer)
        releases = [
            ("AgentEvent_Customer_Release", {"callid": view.call_id, "number": number})
            for number in before.others
        ]
        if view.release_cause == TIMED_OUT and before.state == RINGING:
            return [("AgentEvent_No_Answer", view.call_id)]
        if view.release_cause == MERGED:
            return releases
        if view.release_cause == ENDED:
            return [*releases, ("AgentEvent_Call_Release", view.call_id)]
        return [("AgentEvent_Call_Release", view.call_id)]

    def _phone_release_if_idle(self, agent: Agent) -> None:
        """After the agent's last call ends (the others of one operation announced first)."""
        if agent.login not in self._offhook or self._told.get(agent.login):
            return
        if self.switch.visible_calls(agent):
            return
        self._offhook.discard(agent.login)
        self._push(agent, "AgentOther_PhoneRelease", {"phoneState": 3})

    def _feature(self, agent: Agent, view: CallView) -> str:
        """Call feature (spec 7.2): 51 internal help, 7 outbound, 6 internal, 0 inbound."""
        if view.consult_kind:
            return "51"
        if view.origin == agent.dn:
            return "7" if view.call_type == "Outbound" else "6"
        return "6" if is_internal(view.origin) else "0"

    @staticmethod
    def _ends(agent: Agent, view: CallView) -> tuple[str, str]:
        """(caller, called) as the call stands now: the agent's own call is from its DN to the party
        it reached; any other call is from its origin, or from whoever replaced it, to the DNIS."""
        others = view.participants
        if view.origin == agent.dn:
            return agent.dn, others[0] if len(others) == 1 else view.dnis
        caller = view.origin if view.origin in others or not others else others[0]
        return caller, view.dnis

    def _ringing(self, agent: Agent, view: CallView) -> dict[str, Any]:
        caller, called = self._ends(agent, view)
        return {
            "caller": caller,
            "transfer": "no",
            "callid": view.call_id,
            "transfrom": "",
            "called": called,
            "type": "main",
            "mediaType": "5",
            "mediaAbility": "1",
            "feature": "6" if is_internal(view.origin) else "0",
        }

    def _alerting(self, call_id: str, number: str) -> dict[str, Any]:
        owner = self.switch.agent_on(number)
        workno = owner.login if owner and owner.dialect == "huawei" else ""
        return {"callid": call_id, "otherPhoneWorkno": workno, "otherPhone": number, "type": "main"}

    def _talking(self, agent: Agent, view: CallView) -> dict[str, Any]:
        caller, called = self._ends(agent, view)
        return {
            "caller": caller,
            "callid": view.call_id,
            "called": called,
            "feature": self._feature(agent, view),
            "type": "main",
            "mediaAbility": "1",
        }

    # -- success transfers -------------------------------------------------------------------------

    def _transfer_for(self, agent: Agent, view: CallView) -> tuple[SuccessTransfer | None, str]:
        """The success transfer this view belongs to, and whether it is its "original" or "consult".

        While a success transfer is being started, the call the agent dials is taken as its consult."""
        starting = self._starting
        if starting is not None and starting.login == agent.login:
            if view.call_id == starting.original_id:
                return starting, "original"
            if not starting.consult_id and view.state == DIALING:
                starting.consult_id = view.call_id
                self._transfers[view.call_id] = starting
        transfer = self._transfers.get(view.call_id)
        if transfer is not None and transfer.login == agent.login:
            return transfer, "consult"
        for transfer in self._transfers.values():
            if transfer.login == agent.login and transfer.original_id == view.call_id:
                return transfer, "original"
        return None, ""

    def _soon(self, callback: Callable[..., None], *args: Any) -> None:
        """Act on the switch after the operation being announced has finished announcing."""

        def run() -> None:
            try:
                callback(*args)
            except SwitchError as exc:
                log.info("Huawei follow-up %s refused: %s", callback.__name__, exc)
            except Exception:
                log.exception("Huawei follow-up %s failed", callback.__name__)

        asyncio.get_running_loop().call_soon(run)

    def _complete_success_transfer(self, consult_id: str) -> None:
        transfer = self._transfers.get(consult_id)
        agent = self.switch.agents.get(transfer.login) if transfer else None
        consult = self.switch.calls.get(consult_id)
        original = self.switch.calls.get(transfer.original_id) if transfer else None
        if transfer is None or agent is None or consult is None or original is None or transfer.abandoned:
            return
        transfer.completed = True
        self.switch.complete_transfer(agent, consult, original)

    def _resume_after_failed_transfer(self, transfer: SuccessTransfer) -> None:
        agent = self.switch.agents.get(transfer.login)
        original = self.switch.calls.get(transfer.original_id)
        if agent is None or original is None or agent.dn not in original.legs:
            return
        if original.legs[agent.dn].state == HELD:
            self.switch.retrieve(agent, original)

    def _hang_up_consult(self, transfer: SuccessTransfer) -> None:
        agent = self.switch.agents.get(transfer.login)
        consult = self.switch.calls.get(transfer.consult_id)
        if agent is None or consult is None or agent.dn not in consult.legs:
            return
        if consult.legs[agent.dn].state in LIVE_STATES:
            self.switch.hangup(agent, consult)

    # -- routing ---------------------------------------------------------------------------------

    def routes(self, router: Router) -> None:
        def signed(handler: Handler, *, draining: bool = False) -> Callable[[Request], Awaitable[Response]]:
            async def run(request: Request) -> Response:
                try:
                    session, agent = self._authenticate(request, draining=draining)
                    return await handler(request, session, agent)
                except Refusal as exc:
                    return _envelope(exc.retcode, exc.message)
                except SwitchError as exc:
                    return _envelope(AGENT_ERROR, str(exc))

            return run

        def unsigned(
            handler: Callable[[Request], Awaitable[Response]],
        ) -> Callable[[Request], Awaitable[Response]]:
            async def run(request: Request) -> Response:
                try:
                    return await handler(request)
                except Refusal as exc:
                    return _envelope(exc.retcode, exc.message)
                except SwitchError as exc:
                    return _envelope(AGENT_ERROR, str(exc))

            return run

        def add(method: str, path: str, handler: Callable[[Request], Awaitable[Response]]) -> None:
            router.add(method, HUAWEI_API + path, handler)

        agent_path = "/onlineagent/{agentid}"
        add("PUT", agent_path, unsigned(self.sign_in))
        add("PUT", agent_path + "/forcelogin", unsigned(self.force_sign_in))
        add("DELETE", agent_path + "/logout", signed(self.sign_out))
        add("DELETE", agent_path + "/forcelogout", signed(self.force_sign_out))
        add("GET", agent_path + "/agentstatus", signed(self.agent_status))
        add("POST", agent_path + "/saybusy", signed(self.say_busy))
        add("POST", agent_path + "/sayfree", signed(self.say_free))
        add("POST", agent_path + "/cancelbusy", signed(self.cancel_busy))
        add("POST", agent_path + "/rest/{time}/{cause}", signed(self.rest))
        add("POST", agent_path + "/cancelrest", signed(self.cancel_rest))
        add("POST", agent_path + "/work", signed(self.work))
        add("POST", agent_path + "/cancelwork", signed(self.cancel_work))
        add("GET", "/agentevent/{agentid}", signed(self.poll, draining=True))

        voice = "/voicecall/{agentid}"
        add("PUT", voice + "/answer", signed(self.answer))
        # Huawei's documents say DELETE; some clients POST; releaseEx is DELETE on the bare resource.
        add("DELETE", voice + "/release", signed(self.release))
        add("POST", voice + "/release", signed(self.release))
        add("DELETE", voice, signed(self.release))
        add("POST", voice + "/dropcall/{callid}", signed(self.drop_call))
        add("POST", voice + "/hold", signed(self.hold))
        add("POST", voice + "/gethold", signed(self.get_hold))
        add("POST", voice + "/connecthold/{callid}", signed(self.connect_hold))
        add("PUT", voice + "/callout", signed(self.call_out))
        add("PUT", voice + "/callinner", signed(self.call_out))
        add("POST", voice + "/innerhelp", signed(self.inner_help))
        add("POST", voice + "/confjoin", signed(self.conf_join))
        add("POST", voice + "/transfer", signed(self.transfer))
        add("POST", voice + "/disconnect/{number}", signed(self.disconnect))
        add("POST", voice + "/beginmute", signed(self.begin_mute))
        add("POST", voice + "/endmute", signed(self.end_mute))
        add("POST", voice + "/seconddialex", signed(self.second_dial))
        add("POST", voice + "/seconddial/{number}", signed(self.second_dial))

        calldata = "/calldata/{agentid}"
        add("GET", calldata + "/allcallid", signed(self.all_call_ids))
        add("GET", calldata + "/callinfobycallid/{callid}", signed(self.call_info_by_id))
        add("GET", calldata + "/holdlist", signed(self.hold_list))
        add("GET", calldata + "/callinfobeforeanswer", signed(self.call_info_before_answer))

        qc = "/qualitycontrol/{agentid}"
        add("PUT", qc + "/addsupervise/{workno}", signed(self.qc_listen))
        add("PUT", qc + "/addinsert/{workno}", signed(self.qc_insert))
        add("POST", qc + "/requestwhisperagent", signed(self.qc_whisper))
        add("POST", qc + "/switch/{workno}", signed(self.qc_switch))
        add("POST", qc + "/requestswitchinsertwhisperagent", signed(self.qc_switch_type))
        add("POST", qc + "/requeststopwhisperagent", signed(self.qc_stop_whisper))
        add("DELETE", qc + "/{workno}", signed(self.qc_cancel))
        add("PUT", qc + "/intercept/{workno}", signed(self.qc_intercept))
        add("PUT", qc + "/intercept/{workno}/{callid}", signed(self.qc_intercept))
        add("POST", qc + "/forcebusy/{workno}", signed(self.qc_force_busy))
        add("POST", qc + "/forceidle/{workno}", signed(self.qc_force_idle))
        add("POST", qc + "/forcerest/{workno}/{time}/{reason}", signed(self.qc_force_rest))
        add("POST", qc + "/forcelogout/{workno}", signed(self.qc_force_logout))
        add("POST", qc + "/forcedropcall/{callid}", signed(self.qc_force_drop_call))

    # -- sign-in and sign-out --------------------------------------------------------------------

    async def sign_in(self, request: Request) -> Response:
        return self._sign_in(request, force=False)

    async def force_sign_in(self, request: Request) -> Response:
        return self._sign_in(request, force=True)

    def _sign_in(self, request: Request, *, force: bool) -> Response:
        """Sign in (or force sign in): events AgentOther_InService, AgentState_Ready, then the
        status's own (spec 8.1). ``phonenum`` is accepted and the agent's directory DN used."""
        login = request.params["agentid"]
        body = _json_body(request)
        password = _text(body, "password", BAD_SIGN_IN_PARAMETER)
        status = _integer(body, "status", 4, BAD_SIGN_IN_PARAMETER)
        if status not in SIGN_IN_STATES:
            raise Refusal(BAD_SIGN_IN_PARAMETER, "status must be 3 (busy), 4 (idle) or 5 (wrap-up)")
        _text(body, "phonenum", BAD_SIGN_IN_PARAMETER)
        for name in ("autoanswer", "autoenteridle", "releasephone", "phonelinkage", "checkInWebm"):
            _flag(body, name, True, BAD_SIGN_IN_PARAMETER)
        agent = self.switch.agents.get(login)
        if (
            agent is None
            or agent.dialect != "huawei"
            or not secrets.compare_digest(agent.password.encode(), password.encode())
        ):
            raise Refusal(WRONG_CREDENTIALS, "Wrong agent id or password")
        existing = self.sessions.get(login)
        if existing is not None and not force:
            raise Refusal(ALREADY_SIGNED_IN, f"Agent {login} is already signed in: use forcelogin")
        for old in (existing, self._draining.get(login)):
            if old is not None:
                self._drop(old)
        session = self._open(login)
        self._quiet.add(login)
        try:
            if not agent.logged_in:
                self.switch.login(agent)
            self.switch.set_state(agent, SIGN_IN_STATES[status])
        finally:
            self._quiet.discard(login)
        self._push(agent, "AgentOther_InService", None)
        self._push(agent, "AgentState_Ready", None)
        if status == 3:
            self._push(agent, "AgentState_SetNotReady_Success", {"reason": "0"})
        elif status == 5:
            self._push(agent, "AgentState_Work", None)
        result = {
            "vdnid": 1,
            "workno": login,
            "mediatype": "TFF",
            "loginTime": session.login_time,
            "isForceChange": "false",
            "serverName": "AgentGateway",
            "timeRemaining": "30",
        }
        return _ok(result, {"Set-GUID": f"JSESSIONID={session.guid}"})

    async def sign_out(self, request: Request, session: Session, agent: Agent) -> Response:
        if self._calls(agent):
            raise Refusal(
                WRONG_STATE_AT_SIGN_OUT, f"Agent {agent.login} is on a call: release it first, or forcelogout"
            )
        self.switch.logout(agent)
        self._close(session)
        return _ok()

    async def force_sign_out(self, request: Request, session: Session, agent: Agent) -> Response:
        self._force_out(agent)
        return _ok()

    def _force_out(self, agent: Agent) -> None:
        """Release every call of the agent, sign it out, and close its Guid session."""
        for call in self.switch.visible_calls(agent):
            # Hanging up one call may end another (a consult), so each is looked at afresh.
            leg = call.legs.get(agent.dn) if call.id in self.switch.calls else None
            if leg is not None and leg.state in LIVE_STATES:
                self.switch.hangup(agent, call)
        if agent.logged_in:
            self.switch.logout(agent)
        session = self.sessions.get(agent.login)
        if session is not None:
            self._close(session)

    async def poll(self, request: Request, session: Session, agent: Agent) -> Response:
        """One event at once if one is queued, else the first within poll_wait_ms, else ``null``.
        The answer carries Set-GUID when the Guid rotates, or when the request used an older one."""
        session.seen = time.monotonic()
        superseded = False
        if not session.queue:
            if session.closed:
                self._drop(session)
                raise Refusal(NOT_SIGNED_IN, f"Agent {session.login} is signed out")
            superseded = await self._hold(session, self.timing.poll_wait_ms / 1000, request)
            if session.gone:
                raise Refusal(NOT_SIGNED_IN, f"Agent {session.login} is signed out")
        event = session.queue.popleft() if session.queue and not superseded else None
        headers: dict[str, str] = {}
        if not session.closed:
            now = time.monotonic()
            used = request.headers.get("guid", "").strip().removeprefix("JSESSIONID=")
            if now - session.rotated >= self.timing.guid_interval_ms / 1000:
                self._rotate(session, now)
            if used != session.guid:
                headers["Set-GUID"] = f"JSESSIONID={session.guid}"
        return Response(body={"message": "", "retcode": OK, "event": event}, headers=headers)

    async def _hold(self, session: Session, hold_s: float, request: Request) -> bool:
        """Wait for an event, the timeout or the session's end; True if a newer poll took over or
        the client went away (an event must not be handed to a connection nobody reads)."""
        loop = asyncio.get_running_loop()
        if session.waiter is not None:
            _settle(session.waiter, superseded=True)
        waiter: asyncio.Future[bool] = loop.create_future()
        session.waiter = waiter
        session.polling += 1
        timer = loop.call_later(hold_s, _settle, waiter)
        gone = asyncio.ensure_future(request.gone())
        gone.add_done_callback(lambda _: _settle(waiter, superseded=True))
        try:
            return await waiter
        finally:
            gone.cancel()
            timer.cancel()
            session.polling -= 1
            session.seen = time.monotonic()
            if session.waiter is waiter:
                session.waiter = None

    # -- agent state -----------------------------------------------------------------------------

    async def agent_status(self, request: Request, session: Session, agent: Agent) -> Response:
        calls = self.switch.visible_calls(agent)
        occupied = any(call.legs[agent.dn].state != RINGING for call in calls)
        code = TALKING_CODE if occupied and agent.logged_in else STATE_CODES.get(agent.state, 3)
        return _ok({"agentState": code, "isWorking": bool(calls)})

    async def say_busy(self, request: Request, session: Session, agent: Agent) -> Response:
        reason = _query(request, "reason")
        if reason not in ("", "0") and not (reason.isdigit() and 200 <= int(reason) <= 250):
            raise Refusal(BAD_PARAMETER, "reason must be empty or a busy reason code from 200 to 250")
        self.switch.set_state(agent, "NotReady", "" if reason == "0" else reason)
        return _ok()

    async def say_free(self, request: Request, session: Session, agent: Agent) -> Response:
        self.switch.set_state(agent, "Ready")
        return _ok()

    def _cancel(self, agent: Agent, state: str) -> Response:
        if agent.state == state:
            self.switch.set_state(agent, "Ready")
        return _ok()

    async def cancel_busy(self, request: Request, session: Session, agent: Agent) -> Response:
        return self._cancel(agent, "NotReady")

    async def rest(self, request: Request, session: Session, agent: Agent) -> Response:
        seconds, cause = request.params["time"], request.params["cause"]
        if not (seconds.isdigit() and 1 <= int(seconds) <= 86399):
            raise Refusal(BAD_PARAMETER, "the rest time must be 1 to 86399 seconds")
        if not (cause.isdigit() and 0 <= int(cause) <= 255):
            raise Refusal(BAD_PARAMETER, "the rest cause must be 0 to 255")
        self.switch.set_state(agent, "AuxWork", str(int(cause)))
        return _ok()

    async def cancel_rest(self, request: Request, session: Session, agent: Agent) -> Response:
        return self._cancel(agent, "AuxWork")

    async def work(self, request: Request, session: Session, agent: Agent) -> Response:
        self.switch.set_state(agent, "AfterCallWork")
        return _ok()

    async def cancel_work(self, request: Request, session: Session, agent: Agent) -> Response:
        return self._cancel(agent, "AfterCallWork")

    # -- calls -----------------------------------------------------------------------------------

    def _calls(self, agent: Agent) -> list[Call]:
        """The agent's live calls as it sees them: neither a success transfer's consult call nor
        an inspector's inspected call is one."""
        return [
            call
            for call in self.switch.visible_calls(agent)
            if not (call.id in self._transfers and self._transfers[call.id].login == agent.login)
            and call.legs[agent.dn].monitor is None
        ]

    def _in(self, agent: Agent, calls: list[Call], *states: str) -> list[Call]:
        return [call for call in calls if call.legs[agent.dn].state in states]

    def _address(self, agent: Agent, value: str, retcode: str, name: str) -> str:
        """An agent id (workno) stands for that agent's DN; anything else is dialled as it is."""
        if not value:
            raise Refusal(retcode, f"{name} is required")
        owner = self.switch.agents.get(value)
        number = owner.dn if owner and owner.dialect == "huawei" else value
        if not is_dialable(number):
            raise Refusal(retcode, f"{name} {value!r} is not an agent id or a number that can be dialled")
        if number == agent.dn:
            raise Refusal(retcode, f"{name} {value!r} is the agent's own phone")
        return number

    async def answer(self, request: Request, session: Session, agent: Agent) -> Response:
        ringing = self._in(agent, self._calls(agent), RINGING)
        wanted = _query(request, "callid")
        if wanted:
            ringing = [call for call in ringing if call.id == wanted]
        if not ringing:
            raise Refusal(ANSWER_NO_CALL, "There is no ringing call to answer")
        self.switch.answer(agent, ringing[0])
        return _ok()

    async def release(self, request: Request, session: Session, agent: Agent) -> Response:
        """Hang up the active call, else the only call. Releasing an internal-help consult while its
        original call is held hands the original over to the helper (spec 8.8)."""
        calls = self._calls(agent)
        if not calls:
            raise Refusal(RELEASE_NO_CALL, "There is no call to release")
        active = self._in(agent, calls, ESTABLISHED, DIALING)
        call = active[0] if active else calls[0] if len(calls) == 1 else None
        if call is None:
            raise Refusal(
                RELEASE_NO_CALL, "There are several calls and none is active: name one with dropcall"
            )
        view = self.switch.view(agent, call)
        if view.parent_id and view.partner_held:
            self.switch.complete_transfer(agent, call)
        else:
            self.switch.hangup(agent, call)
        return _ok()

    async def drop_call(self, request: Request, session: Session, agent: Agent) -> Response:
        call_id = request.params["callid"]
        call = next((call for call in self._calls(agent) if call.id == call_id), None)
        if call is None:
            raise Refusal(RELEASE_NO_CALL, f"Agent {agent.login} has no call {call_id}")
        self.switch.hangup(agent, call)
        return _ok()

    async def hold(self, request: Request, session: Session, agent: Agent) -> Response:
        calls = self._calls(agent)
        if not calls:
            raise Refusal(HOLD_NO_CALL, "There is no call to hold")
        talking = self._in(agent, calls, ESTABLISHED)
        if not talking:
            raise Refusal(
                HOLD_WRONG_STATE,
                "No call is in conversation: a ringing, dialling or held call cannot be held",
            )
        self.switch.hold(agent, talking[0])
        return _ok()

    async def get_hold(self, request: Request, session: Session, agent: Agent) -> Response:
        calls = self._calls(agent)
        wanted = _query(request, "callid")
        if wanted:
            call = next((call for call in calls if call.id == wanted), None)
            if call is None:
                raise Refusal(UNHOLD_NO_HELD_CALL, f"Agent {agent.login} has no held call {wanted}")
            if call.legs[agent.dn].state != HELD:
                raise Refusal(UNHOLD_WRONG_STATE, f"Call {wanted} is not held")
        else:
            held = self._in(agent, calls, HELD)
            if not held:
                raise Refusal(UNHOLD_NO_HELD_CALL, "There is no held call to take back")
            call = held[0]
        self.switch.retrieve(agent, call)
        return _ok()

    async def connect_hold(self, request: Request, session: Session, agent: Agent) -> Response:
        """The talking call and the held call are joined and the agent drops out (spec 11)."""
        call_id = request.params["callid"]
        calls = self._calls(agent)
        talking = [call for call in self._in(agent, calls, ESTABLISHED, DIALING) if call.id != call_id]
        if not talking:
            raise Refusal(HOLD_NO_CALL, "There is no talking call to connect the held call to")
        held = next((call for call in self._in(agent, calls, HELD) if call.id == call_id), None)
        if held is None:
            raise Refusal(HOLD_WRONG_STATE, f"Call {call_id} is not a held call of agent {agent.login}")
        self.switch.complete_transfer(agent, talking[0], held)
        return _ok()

    async def call_out(self, request: Request, session: Session, agent: Agent) -> Response:
        """callout and callinner: ``called`` is an agent id, an internal DN or an outside number."""
        body = _json_body(request)
        destination = self._address(agent, _text(body, "called", BAD_NUMBER), BAD_NUMBER, "called")
        call = self.switch.dial(agent, destination, _call_data(body))
        return _ok(call.id)

    async def inner_help(self, request: Request, session: Session, agent: Agent) -> Response:
        """Mode 1 consults (the call is held, the help call dialled: its callid is the result); mode 2
        brings the helper into the call at once. ``holdflag`` is accepted: the consult always holds."""
        body = _json_body(request)
        devicetype = _integer(body, "devicetype", 2)
        mode = _integer(body, "mode", 1)
        _flag(body, "holdflag", True)
        if devicetype != 2:
            raise Refusal(BAD_PARAMETER, "devicetype must be 2 (agent): skill queues are not simulated")
        if mode not in (1, 2):
            raise Refusal(BAD_PARAMETER, "mode must be 1 (two-party help) or 2 (three-party help)")
        destination = self._address(agent, _text(body, "dstaddress"), BAD_PARAMETER, "dstaddress")
        data = _call_data(body)
        calls = self._calls(agent)
        talking = self._in(agent, calls, ESTABLISHED)
        if not talking:
            raise Refusal(HELP_NO_CALL, "There is no call in conversation to ask for help on")
        if mode == 1:
            consult = self.switch.initiate(agent, talking[0], destination, TRANSFER, data)
            return _ok(consult.id)
        self.switch.single_step_conference(agent, talking[0], destination, data)
        return _ok(talking[0].id)

    async def conf_join(self, request: Request, session: Session, agent: Agent) -> Response:
        """Seed 004: the held call and the talking call become one three-party call, which goes on
        under the talking call's id; events AgentEvent_Conference, then AgentEvent_Customer_Release
        for the held call that was folded in."""
        body = _json_body(request)
        call_id = _text(body, "callid")
        if not call_id:
            raise Refusal(BAD_PARAMETER, "callid (the held call) is required")
        _call_data(body)
        calls = self._calls(agent)
        talking = self._in(agent, calls, ESTABLISHED)
        if not talking:
            raise Refusal(THREE_PARTY_NO_CALL, "There is no call in conversation to join the held call to")
        held = next((call for call in self._in(agent, calls, HELD) if call.id == call_id), None)
        if held is None:
            raise Refusal(
                THREE_PARTY_NO_HELD_CALL, f"Call {call_id} is not a held call of agent {agent.login}"
            )
        self.switch.join_calls(agent, held, talking[0])
        return _ok()

    async def transfer(self, request: Request, session: Session, agent: Agent) -> Response:
        """Release mode hands the call over at once; success mode rings the target first and hands
        over when it answers (AgentEvent_SuccTransResult), keeping the customer when it does not."""
        body = _json_body(request)
        devicetype = _integer(body, "devicetype", None)
        mode = _integer(body, "mode", None)
        kind = TRANSFER_MODES.get((devicetype, mode))
        if kind is None:
            raise Refusal(
                BAD_PARAMETER,
                "devicetype 2 (agent) takes mode 0 or 2, devicetype 5 (number) mode 1 or 2; "
                "skill queues, IVRs and access codes are not simulated",
            )
        address = _text(body, "address")
        if devicetype == 5:
            destination = address
            if not is_dialable(address) or address == agent.dn:
                raise Refusal(BAD_PARAMETER, f"address {address!r} is not a number that can be dialled")
        else:
            destination = self._address(agent, address, BAD_PARAMETER, "address")
        data = _call_data(body)
        calls = self._calls(agent)
        talking = self._in(agent, calls, ESTABLISHED)
        call = talking[0] if talking else calls[0] if len(calls) == 1 else None
        if call is None or call.legs[agent.dn].state not in (ESTABLISHED, HELD):
            raise Refusal(TRANSFER_NO_CALL, "There is no connected call to transfer")
        if kind == "release":
            self.switch.single_step_transfer(agent, call, destination, data)
            return _ok()
        self._starting = SuccessTransfer(login=agent.login, original_id=call.id, target=destination)
        try:
            self.switch.initiate(agent, call, destination, TRANSFER, data)
        finally:
            self._starting = None
        return _ok()

    async def disconnect(self, request: Request, session: Session, agent: Agent) -> Response:
        """Drop one party from the agent's conference; the agent's own number drops the agent."""
        number = request.params["number"]
        owner = self.switch.agents.get(number)
        number = owner.dn if owner and owner.dialect == "huawei" else number
        calls = self._calls(agent)
        if number == agent.dn:
            active = self._in(agent, calls, ESTABLISHED, DIALING)
            if not active:
                raise Refusal(RELEASE_NO_CALL, "There is no call in conversation to leave")
            self.switch.hangup(agent, active[0])
            return _ok()
        call = next(
            (c for c in calls if number in c.legs and c.legs[number].state in LIVE_STATES),
            None,
        )
        if call is None:
            raise Refusal(BAD_PARAMETER, f"{number} is not on a call of agent {agent.login}")
        self.switch.remove_participant(agent, call, number)
        return _ok()

    def _mute(self, agent: Agent, muted: bool, no_call: str, wrong_state: str) -> Response:
        """Soft mute has no event (spec 11): the desk learns it from this answer."""
        calls = self._calls(agent)
        if not calls:
            raise Refusal(no_call, "There is no call to mute or unmute")
        talking = self._in(agent, calls, ESTABLISHED)
        if not talking:
            raise Refusal(wrong_state, "No call is in conversation")
        self.switch.set_mute(agent, talking[0], muted)
        return _ok()

    async def begin_mute(self, request: Request, session: Session, agent: Agent) -> Response:
        return self._mute(agent, True, MUTE_NO_CALL, MUTE_WRONG_STATE)

    async def end_mute(self, request: Request, session: Session, agent: Agent) -> Response:
        return self._mute(agent, False, UNMUTE_NO_CALL, UNMUTE_WRONG_STATE)

    async def second_dial(self, request: Request, session: Session, agent: Agent) -> Response:
        digits = request.params.get("number") or _query(request, "number")
        if not (1 <= len(digits) <= 24 and all(ch in "0123456789*#" for ch in digits)):
            raise Refusal(BAD_PARAMETER, "number must be 1 to 24 of 0-9, * and #")
        active = self._in(agent, self._calls(agent), ESTABLISHED, DIALING)
        if not active:
            raise Refusal(AGENT_ERROR, "There is no call in conversation to send digits on")
        self.switch.send_dtmf(agent, active[0], digits)
        return _ok()

    # -- call data -------------------------------------------------------------------------------

    def _call_info(self, agent: Agent, call: Call) -> dict[str, Any]:
        view = self.switch.view(agent, call)
        caller, called = self._ends(agent, view)
        return {
            "called": called,
            "caller": caller,
            "callid": call.id,
            "calldata": _render_call_data(call.user_data),
            "orgicallednum": view.dnis,
            "callfeature": int(self._feature(agent, view)),
            "callskill": "",
            "callskillid": 0,
        }

    async def all_call_ids(self, request: Request, session: Session, agent: Agent) -> Response:
        return _ok([call.id for call in self._calls(agent)])

    async def call_info_by_id(self, request: Request, session: Session, agent: Agent) -> Response:
        call_id = request.params["callid"]
        call = next((call for call in self._calls(agent) if call.id == call_id), None)
        if call is None:
            raise Refusal(BAD_PARAMETER, f"Agent {agent.login} has no call {call_id}")
        return _ok(self._call_info(agent, call))

    async def hold_list(self, request: Request, session: Session, agent: Agent) -> Response:
        held = self._in(agent, self._calls(agent), HELD)
        if not held:
            raise Refusal(NO_HELD_CALLS, "There is no held call")
        keys = ("callfeature", "callid", "caller", "called", "callskill")
        return _ok([{key: self._call_info(agent, call)[key] for key in keys} for call in held])

    async def call_info_before_answer(self, request: Request, session: Session, agent: Agent) -> Response:
        ringing = self._in(agent, self._calls(agent), RINGING)
        if not ringing:
            raise Refusal(ANSWER_NO_CALL, "There is no ringing call")
        return _ok(self._call_info(agent, ringing[0]))

    # -- real-time inspection (qualitycontrol) ---------------------------------------------------

    @staticmethod
    def _inspector(agent: Agent) -> None:
        if not agent.supervisor:
            raise Refusal(QC_NO_PERMISSION, f"Agent {agent.login} has no inspection permission")

    def _inspected(self, agent: Agent, workno: str) -> Agent:
        """The signed-in Huawei agent ``workno`` names, for an inspector to act on."""
        self._inspector(agent)
        if workno == agent.login:
            raise Refusal(QC_SELF, "An inspector cannot inspect itself")
        target = self.switch.agents.get(workno)
        if target is None or target.dialect != "huawei":
            raise Refusal(QC_NO_AGENT, f"There is no agent {workno}")
        if not target.logged_in:
            raise Refusal(QC_WRONG_STATE, f"Agent {workno} is not signed in")
        return target

    def _inspecting(self, agent: Agent, workno: str = "") -> Monitor:
        """The inspector's current inspection, of ``workno`` when one is named."""
        self._inspector(agent)
        monitor = self.switch.monitors.get(agent.login)
        if monitor is None:
            raise Refusal(QC_WRONG_STATE, f"Inspector {agent.login} is not inspecting any agent")
        if workno and monitor.target != workno:
            raise Refusal(QC_WRONG_STATE, f"Inspector {agent.login} is not inspecting agent {workno}")
        return monitor

    def _inspect(self, agent: Agent, workno: str, mode: str) -> Response:
        """Listen, insert or whisper: the inspector must be idle (no call, no other inspection)."""
        target = self._inspected(agent, workno)
        if agent.login in self.switch.monitors:
            raise Refusal(QC_WRONG_STATE, f"Inspector {agent.login} is already inspecting an agent")
        if self._calls(agent):
            raise Refusal(QC_WRONG_STATE, f"Inspector {agent.login} is on a call")
        self.switch.supervise(agent, target, mode, scope="Agent", all_calls=True)
        return _ok()

    async def qc_listen(self, request: Request, session: Session, agent: Agent) -> Response:
        return self._inspect(agent, request.params["workno"], LISTEN_IN)

    async def qc_insert(self, request: Request, session: Session, agent: Agent) -> Response:
        return self._inspect(agent, request.params["workno"], BARGE_IN)

    async def qc_whisper(self, request: Request, session: Session, agent: Agent) -> Response:
        """Whisper to an agent; while already inspecting it, switch the inspection to whispering."""
        self._inspector(agent)
        workno = _query(request, "whisperagentid")
        monitor = self.switch.monitors.get(agent.login)
        if monitor is not None and (not workno or monitor.target == workno):
            self.switch.change_monitoring(agent, COACH)
            return _ok()
        if not workno:
            raise Refusal(BAD_PARAMETER, "whisperagentid (the agent to whisper to) is required")
        return self._inspect(agent, workno, COACH)

    async def qc_switch(self, request: Request, session: Session, agent: Agent) -> Response:
        monitor = self._inspecting(agent, request.params["workno"])
        self.switch.change_monitoring(agent, LISTEN_IN if monitor.mode == BARGE_IN else BARGE_IN)
        return _ok()

    async def qc_switch_type(self, request: Request, session: Session, agent: Agent) -> Response:
        switch_type = _query(request, "switchtype")
        if switch_type not in SWITCH_TYPES:
            raise Refusal(BAD_PARAMETER, "switchtype must be 0 (listen), 1 (insert) or 2 (whisper)")
        self._inspecting(agent, _query(request, "whisperagentid"))
        self.switch.change_monitoring(agent, SWITCH_TYPES[switch_type])
        return _ok()

    async def qc_stop_whisper(self, request: Request, session: Session, agent: Agent) -> Response:
        monitor = self._inspecting(agent, _query(request, "whisperagentid"))
        if monitor.mode != COACH:
            raise Refusal(QC_WRONG_STATE, f"Inspector {agent.login} is not whispering")
        self.switch.stop_supervising(agent)
        return _ok()

    async def qc_cancel(self, request: Request, session: Session, agent: Agent) -> Response:
        self._inspecting(agent, request.params["workno"])
        self.switch.stop_supervising(agent)
        return _ok()

    async def qc_intercept(self, request: Request, session: Session, agent: Agent) -> Response:
        monitor = self._inspecting(agent, request.params["workno"])
        wanted = request.params.get("callid", "")
        if monitor.call is None or (wanted and monitor.call.id != wanted):
            raise Refusal(QC_WRONG_STATE, f"Agent {monitor.target} is not on that call")
        self.switch.intercept(agent)
        return _ok()

    async def qc_force_busy(self, request: Request, session: Session, agent: Agent) -> Response:
        target = self._inspected(agent, request.params["workno"])
        self.switch.set_state(target, "NotReady", FORCED_BUSY_REASON)
        return _ok()

    async def qc_force_idle(self, request: Request, session: Session, agent: Agent) -> Response:
        target = self._inspected(agent, request.params["workno"])
        self.switch.set_state(target, "Ready")
        return _ok()

    async def qc_force_rest(self, request: Request, session: Session, agent: Agent) -> Response:
        target = self._inspected(agent, request.params["workno"])
        seconds, reason = request.params["time"], request.params["reason"]
        if not (seconds.isdigit() and 1 <= int(seconds) <= 86399):
            raise Refusal(BAD_PARAMETER, "the rest time must be 1 to 86399 seconds")
        if not (reason.isdigit() and 1 <= int(reason) <= 255):
            raise Refusal(BAD_PARAMETER, "the rest reason must be 1 to 255")
        self.switch.set_state(target, "AuxWork", str(int(reason)))
        return _ok()

    async def qc_force_logout(self, request: Request, session: Session, agent: Agent) -> Response:
        self._force_out(self._inspected(agent, request.params["workno"]))
        return _ok()

    async def qc_force_drop_call(self, request: Request, session: Session, agent: Agent) -> Response:
        self._inspector(agent)
        call = self.switch.calls.get(request.params["callid"])
        if call is None or not call.live_legs():
            raise Refusal(BAD_PARAMETER, f"There is no call {request.params['callid']}")
        self.switch.drop_call(call)
        return _ok()
