"""Huawei CC-Gateway AgentGateway: the only place that speaks its REST resources and reads its events.

On this Voice API the session *is* the agent's sign-in to the contact center: ``PUT
/onlineagent/{agentid}`` answers with a Guid (``Set-GUID: JSESSIONID=<guid>``) that every later
request carries in the ``Guid`` header, and a second sign-in is refused (``100-002``). So the session
owner signs in, polls ``GET /agentevent/{agentid}`` (the poll is also the heartbeat), keeps the Guid
current as the gateway rotates it on poll answers, and hands every new Guid to the borrowers.

Huawei sends no capability lists and no call resources: the owner keeps a small state machine of
the agent's calls, fed by the events, and derives from it the operations a call offers, in the
desk's vocabulary (``CompleteConference`` is ``confjoin`` with the held call, ``SendDtmf`` is
``seconddialex``, ``MuteCall`` is ``beginmute``...). Soft mute has no event, so the borrower that
muted reports it back to the owner as an ``Observation``; so does the consult call ``innerhelp``
returns, which the events do not link to its parent.

An inspector (a supervisor) acts under ``/qualitycontrol/{inspector}/``: listening
(``addsupervise``), inserting (``addinsert``: barging in) and whispering (``requestwhisperagent``:
coaching) follow the agent from call to call until cancelled; ``requestswitchinsertwhisperagent``
switches between them; ``forceidle``, ``forcebusy`` and ``forcelogout`` set the agent's state. The
inspected agent's poll returns ``AgentOther_BeQcStart``/``AgentOther_BeQcStop`` with the mode as
``qcType``, which the state machine carries onto the agent's calls.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from calls.voice import (
    MAX_DNIS,
    MAX_REASON,
    AgentState,
    AgentStateChanged,
    Call,
    CallChanged,
    Credentials,
    CredentialsChanged,
    CredentialsRefused,
    Event,
    Member,
    Observation,
    Resynced,
    Server,
    SignInRefused,
    Unavailable,
    VoiceApiError,
    VoiceBackend,
    storable_call_id,
    storable_text,
)
from calls.voice import Agent as AgentIdentity

from . import http

log = logging.getLogger("switchboard.huawei")

PATH = "/agentgateway/resource"
# The gateway holds a poll for up to 10 s; the client allows for that and the network.
POLL_TIMEOUT_SECONDS = 20.0
REPOLL_SECONDS = (0.2, 0.5)

# What a retcode means, in words for the agent (the code itself goes along in brackets).
RETCODES = {
    "000-001": "The gateway expects events to be fetched another way",
    "000-002": "The gateway found a parameter invalid",
    "000-003": "The contact-center session is no longer valid",
    "000-004": "The gateway is switching over: try again in a moment",
    "000-007": "The request was repeated too soon",
    "100-001": "The sign-in parameters are invalid",
    "100-002": "The agent is already signed in",
    "100-003": "The contact center has no resources to sign the agent in",
    "100-004": "Wrong agent ID or password",
    "100-006": "The agent is not signed in to the contact center",
    "100-007": "The contact center could not carry out the request",
    "100-008": "The agent is already signed out",
    "100-009": "The agent state could not be set",
    "100-010": "The agent cannot sign out in the current state (end the calls first)",
    "100-013": "The agent's phone number is invalid",
    "100-014": "The agent's phone number is not in the configured range",
    "100-015": "The agent is signed in elsewhere and cannot be signed out",
    "100-021": "A sign-in is already in progress",
    "200-001": "That number cannot be called",
    "200-002": "There is no call to answer",
    "200-003": "There is no call to mute",
    "200-004": "The call cannot be muted in its current state",
    "200-005": "There is no call to connect",
    "200-006": "There is no held call to connect",
    "200-007": "There is no call to unmute",
    "200-008": "The call cannot be unmuted in its current state",
    "200-010": "There is no active call to join into a conference",
    "200-011": "There is no held call to join into a conference",
    "200-012": "There is no call to transfer",
    "200-013": "There is no call to hold",
    "200-014": "The call cannot be held in its current state",
    "200-015": "There is no held call to retrieve",
    "200-016": "The call cannot be retrieved in its current state",
    "200-017": "There is no call to release",
    "200-018": "There is no call to consult from",
    "200-023": "That party could not be dropped from the call",
    "200-024": "That party could not be dropped from the call",
    "000-005": "An inspector cannot inspect themselves",
    "900-001": "The contact center offers no inspection",
    "900-002": "You may not inspect agents: ask an administrator",
    "900-003": "The contact center has no resources for an inspection now",
    "900-004": "The contact center knows no such agent",
    "900-005": "The agent or the inspection is not in a state that allows this",
}
# Sign-in refusals that another attempt with the same agent ID and password would only repeat.
SIGN_IN_REFUSED = frozenset({"100-004", "100-017", "100-020", "110-016", "110-021"})
SESSION_LOST = frozenset({"100-006", "000-003", "105-005", "105-006", "105-007"})

# AgentEvent_* whose content is the callid of a call that is over for this agent.
CALL_ENDED = frozenset(
    {
        "AgentEvent_Call_Release",
        "AgentEvent_No_Answer",
        "AgentEvent_Call_Out_Fail",
        "AgentEvent_Connect_Fail",
        "AgentEvent_Inside_Call_Fail",
        "AgentEvent_Consult_Fail",
    }
)
READY_EVENTS = frozenset(
    {
        "AgentState_Ready",
        "AgentState_CancelNotReady_Success",
        "AgentState_CancelRest_Success",
        "AgentState_CancelWork_Success",
        "AgentState_Force_Ready",
    }
)
WORK_EVENTS = frozenset({"AgentState_Work", "AgentState_SetWork_Success"})
# agentstatus codes (spec 7.1) in the desk's words; talking (7) keeps what the desk knew.
STATUS_CODES = {
    2: "LoggedOut",
    3: "NotReady",
    4: "Ready",
    5: "AfterCallWork",
    6: "Ready",
    8: "NotReady",
    9: "NotReady",
}
REST = "Rest"
CALL_TYPES = {"0": "Inbound", "5": "Inbound", "6": "Internal", "7": "Outbound"}
# The busy reason the gateway gives when an inspector forced the agent busy, in the agent's words.
FORCED_BUSY = {"3": "Set by a supervisor"}
# An inspection's qcType in AgentOther_BeQcStart/Stop, as the desk's monitoring mode.
QC_MODES = {8: "ListenIn", 9: "BargeIn", 20172: "Coach", 20173: "Coach"}
# switchtype of requestswitchinsertwhisperagent, by the mode switched to.
SWITCH_TYPES = {"SwitchToListenIn": "0", "SwitchToBargeIn": "1", "SwitchToCoach": "2"}
# The inspector's forced agent states, by the desk's state.
FORCED_STATES = {"Ready": "forceidle", "NotReady": "forcebusy", "LoggedOut": "forcelogout"}


def refusal(retcode: str, message: str) -> VoiceApiError:
    """A retcode as the desk's error, worded for the agent."""
    words = RETCODES.get(retcode) or message or "The contact center refused the request"
    text = f"{words} ({retcode})."
    if retcode in SESSION_LOST:
        return CredentialsRefused(text, code=retcode)
    return VoiceApiError(text, code=retcode)


@dataclass
class HuaweiCall:
    """One call as the owner's state machine knows it."""

    id: str
    state: str
    call_type: str = "Internal"
    parties: list[str] = field(default_factory=list)
    dnis: str = ""
    started: float = field(default_factory=time.monotonic)
    muted: bool = False
    parent_id: str | None = None
    consult_kind: str | None = None


def _text(value: Any) -> str:
    """A string (or a whole number) of the gateway's JSON, as the desk may store it; anything else,
    NaN and Infinity included, is no text at all."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return ""


def _callid(content: Any) -> str:
    """The callid of an event whose content is a string or an object naming it; none when it is not
    one the desk can keep (``calls.voice.storable_call_id``)."""
    values = [content.get("callid"), content.get("callId")] if isinstance(content, dict) else [content]
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and value:
            return storable_call_id(value)
    return ""


class HuaweiBackend(VoiceBackend):
    dialect = "huawei"
    label = "Huawei CC-Gateway AgentGateway"
    monitoring_follows_agent = True

    def __init__(self, server: Server, agent: AgentIdentity, credentials: Credentials | None = None) -> None:
        super().__init__(server, agent, credentials)
        root = server.base_url.rstrip("/") + PATH
        self._http = http.client(root, verify=server.verify_tls, vendor=self.dialect)
        self._poll_http = http.client(
            root, verify=server.verify_tls, timeout=POLL_TIMEOUT_SECONDS, vendor=self.dialect
        )
        self.calls: dict[str, HuaweiCall] = {}
        # The calls change one reader at a time: the poll goes on while a resync reads the gateway in
        # several requests, and an event it heard meanwhile applies after the resync, not under it.
        self._calls_lock = asyncio.Lock()
        self.state = AgentState("LoggedOut")
        # How an inspector monitors this agent now (AgentOther_BeQcStart/Stop), "" when none does.
        self.inspected = ""
        self._signed_in = False
        self._announced = False
        self._wake = asyncio.Event()
        self._resync_wanted = False
        # Observations about calls the events have not shown yet (innerhelp answers first).
        self._pending: dict[str, dict[str, Any]] = {}

    @property
    def agent_id(self) -> str:
        return self.agent.username

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._poll_http.aclose()

    # -- transport -----------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        guid = self.credentials.get("guid")
        return {"Guid": guid} if guid else {}

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        client: httpx.AsyncClient | None = None,
        authenticated: bool = True,
    ) -> tuple[Any, httpx.Response]:
        """Send one request; the envelope's ``result`` (or ``event``) and the response."""
        if authenticated and not self.credentials.get("guid"):
            raise CredentialsRefused(RETCODES["100-006"] + " (100-006).", code="100-006")
        try:
            response = await (client or self._http).request(
                method,
                path,
                json=body,
                params=params,
                headers={"Content-Type": "application/json; charset=UTF-8", **self._headers()},
            )
        except httpx.HTTPError as exc:
            raise http.unreachable(exc) from exc
        if response.status_code != 200:
            raise Unavailable(f"Voice API error {response.status_code}", code=str(response.status_code))
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or not isinstance(payload.get("retcode"), str):
            raise Unavailable("The Voice API answered without a result code.")
        retcode = payload["retcode"]
        if retcode != "0":
            raise refusal(retcode, _text(payload.get("message")))
        return payload.get("event", payload.get("result")), response

    def _take_guid(self, response: httpx.Response) -> bool:
        """Keep the Guid a response sets (``Set-GUID: JSESSIONID=<guid>``); whether it changed."""
        header = response.headers.get("Set-GUID", "")
        guid = header.split("=", 1)[1].strip() if "=" in header else header.strip()
        if not guid or guid == self.credentials.get("guid"):
            return False
        self.credentials = {**self.credentials, "guid": guid}
        return True

    # -- the owner's session -------------------------------------------------------------

    async def _sign_in(self) -> None:
        body = {
            "password": self.agent.password,
            "phonenum": self.agent.dn,
            "autoanswer": False,
            "autoenteridle": True,
            "releasephone": True,
            "agenttype": 4,
            # Signed in Not Ready, as on the other vendors: the agent says when to take calls.
            "status": 3,
        }
        path = f"/onlineagent/{self.agent_id}"
        self.credentials = {}
        try:
            _, response = await self._request("PUT", path, body=body, authenticated=False)
        except VoiceApiError as exc:
            if exc.code in SIGN_IN_REFUSED:
                raise SignInRefused(exc.message, code=exc.code) from exc
            if exc.code != "100-002":
                raise
            # Signed in already: by this desk's previous owner of the session (a worker that died),
            # since the desk is the only one that signs this agent in.
            _, response = await self._request("PUT", path + "/forcelogin", body=body, authenticated=False)
        if not self._take_guid(response):
            raise Unavailable("The gateway signed the agent in without a Guid.")
        self.calls.clear()
        self.inspected = ""
        self._signed_in, self._announced = True, False

    async def _resume(self) -> bool:
        """Carry on with a Guid an earlier owner left, when the gateway still takes it."""
        if not self.credentials.get("guid"):
            return False
        try:
            status, _ = await self._request("GET", f"/onlineagent/{self.agent_id}/agentstatus")
        except CredentialsRefused:
            return False
        if isinstance(status, dict) and status.get("agentState") == 2:
            return False
        self._signed_in, self._announced = True, False
        return True

    @asynccontextmanager
    async def session(self, *, signed_in: bool) -> AsyncIterator[AsyncIterator[Event]]:
        if not await self._resume():
            self.credentials = {}
            if signed_in:
                await self._sign_in()
        yield self._events()

    async def _events(self) -> AsyncIterator[Event]:
        """1. the truth first; 2. while signed in, poll and translate one event per answer,
        re-polling at once after an event and 200-500 ms after an empty answer; 3. while signed
        out, wait for the agent to sign in (nothing to poll, no Guid)."""
        while True:
            if not self._signed_in:
                if not self._announced:
                    self._announced = True
                    self.calls.clear()
                    self.state, self.inspected = AgentState("LoggedOut"), ""
                    yield CredentialsChanged({})
                    yield Resynced((), self.state)
                await self._wake.wait()
                self._wake.clear()
                continue
            if not self._announced:
                self._announced = True
                yield CredentialsChanged(dict(self.credentials))
                yield await self.resync()
                continue
            try:
                raw, response = await self._request(
                    "GET", f"/agentevent/{self.agent_id}", client=self._poll_http
                )
            except CredentialsRefused:
                if not self._signed_in:
                    continue
                raise
            if self._take_guid(response):
                yield CredentialsChanged(dict(self.credentials))
            if not isinstance(raw, dict):
                await asyncio.sleep(random.uniform(*REPOLL_SECONDS))  # noqa: S311 (timing, not a secret)
                continue
            async with self._calls_lock:
                events = self._translate(raw)
            for event in events:
                yield event
            if self._resync_wanted:
                self._resync_wanted = False
                yield await self.resync()

    async def resync(self) -> Resynced:
        """The gateway's truth: the agent's state, its call ids, which are held and which rings."""
        async with self._calls_lock:
            return await self._resync()

    async def _resync(self) -> Resynced:
        base = f"/calldata/{self.agent_id}"
        status, _ = await self._request("GET", f"/onlineagent/{self.agent_id}/agentstatus")
        code = status.get("agentState") if isinstance(status, dict) else None
        state = STATUS_CODES.get(code) if isinstance(code, int) else None
        if state == "LoggedOut":
            self.calls.clear()
            self.state, self.inspected = AgentState("LoggedOut"), ""
            return Resynced((), self.state)
        if state is not None and state != self.state.state:
            self.state = AgentState(state, REST if code in (8, 9) else "")
        elif self.state.state == "LoggedOut":
            self.state = AgentState(state or "NotReady")
        ids, _ = await self._request("GET", f"{base}/allcallid")
        call_ids = [call_id for call_id in map(_callid, ids) if call_id] if isinstance(ids, list) else []
        if not call_ids:
            # No call, so none held and none ringing: an idle agent's resync is two reads, not four
            # (every session resyncs every minute).
            self.calls = {}
            return Resynced((), self.state)
        held = {_callid(info) for info in await self._optional(f"{base}/holdlist", "400-003") or []}
        ringing = await self._optional(f"{base}/callinfobeforeanswer", "200-002")
        ringing_id = _callid(ringing) if isinstance(ringing, dict) else ""
        known, self.calls = self.calls, {}
        for call_id in call_ids:
            call = known.get(call_id)
            if call is None:
                # A call that ended since the list was read is no call of the agent's any more.
                info = await self._optional(f"{base}/callinfobycallid/{call_id}", "000-002")
                if info is None:
                    continue
                call = self._new_call(call_id, "Established", info if isinstance(info, dict) else {})
            if call_id in held:
                call.state = "Held"
            elif call_id == ringing_id:
                call.state = "Ringing"
            elif call.state in ("Held", "Ringing"):
                call.state = "Established"
            self.calls[call_id] = call
        return Resynced(tuple(self._call(c) for c in self.calls.values()), self.state)

    async def _optional(self, path: str, none_code: str) -> Any:
        """A read whose 'nothing there' is a retcode rather than an empty result."""
        try:
            result, _ = await self._request("GET", path)
        except VoiceApiError as exc:
            if exc.code == none_code:
                return None
            raise
        return result

    async def sign_in(self) -> None:
        await self._sign_in()
        self._wake.set()

    async def sign_out(self) -> None:
        # Signed out first, so the poll's 100-006 that follows is not taken for a lost session.
        self._signed_in = False
        try:
            await self._request("DELETE", f"/onlineagent/{self.agent_id}/logout")
        except VoiceApiError:
            self._signed_in = True
            raise
        self._announced = False
        self._wake.set()

    async def check(self) -> str:
        """Whether the gateway answers, asked without a Guid: the agent is neither signed in nor out."""
        try:
            await self._request("GET", f"/onlineagent/{self.agent_id}/agentstatus", authenticated=False)
        except CredentialsRefused:
            pass
        return "the gateway answers; the password is checked when the agent signs in"

    # -- the state machine ---------------------------------------------------------------

    def _other(self, content: dict[str, Any]) -> str:
        caller, called = _text(content.get("caller")), _text(content.get("called"))
        return called if caller in (self.agent.dn, self.agent_id) else caller

    def _new_call(self, call_id: str, state: str, content: dict[str, Any]) -> HuaweiCall:
        feature = _text(content.get("feature")) or _text(content.get("callfeature"))
        other = self._other(content) or _text(content.get("otherPhone"))
        call = HuaweiCall(
            id=call_id,
            state=state,
            call_type=CALL_TYPES.get(
                feature, "Internal" if _text(content.get("otherPhoneWorkno")) else "Outbound"
            ),
            parties=[other] if other else [],
            dnis=(_text(content.get("called")) or other)[:MAX_DNIS],
        )
        for name, value in self._pending.pop(call_id, {}).items():
            setattr(call, name, value)
        return call

    def _translate(self, raw: dict[str, Any]) -> list[Event]:
        kind, content = _text(raw.get("eventType")), raw.get("content")
        details = content if isinstance(content, dict) else {}
        call_id = _callid(content)
        if kind in READY_EVENTS:
            return self._agent(AgentState("Ready"))
        if kind == "AgentState_SetNotReady_Success":
            reason = _text(details.get("reason"))
            return self._agent(AgentState("NotReady", FORCED_BUSY.get(reason, reason)[:MAX_REASON]))
        if kind == "AgentState_Force_SetNotReady":
            return self._agent(AgentState("NotReady"))
        if kind == "AgentState_SetRest_Success":
            return self._agent(AgentState("NotReady", REST))
        if kind in WORK_EVENTS:
            return self._agent(AgentState("AfterCallWork"))
        if kind in ("AgentOther_BeQcStart", "AgentOther_BeQcStop"):
            qc_type = details.get("qcType")
            mode = QC_MODES.get(qc_type, "ListenIn") if isinstance(qc_type, int) else "ListenIn"
            self.inspected = mode if kind == "AgentOther_BeQcStart" else ""
            return self._changed()
        if kind == "AgentOther_ShutdownService":
            # Signed out by the gateway (a supervisor, another sign-in): the agent signs in again.
            self._signed_in, self._announced = False, False
            return []
        if not call_id:
            return []
        call = self.calls.get(call_id)
        if kind in ("AgentEvent_Ringing", "AgentEvent_Auto_Answer"):
            self.calls[call_id] = call or self._new_call(call_id, "Ringing", details)
        elif kind == "AgentEvent_Customer_Alerting":
            if call is not None:
                return []
            self.calls[call_id] = self._new_call(call_id, "Dialing", details)
        elif kind == "AgentEvent_Talking":
            if call is None:
                call = self.calls[call_id] = self._new_call(call_id, "Established", details)
            call.state = "Established"
            other = self._other(details)
            if len(call.parties) < 2 and other:
                call.parties = [other]
        elif kind == "AgentEvent_Hold" and call is not None:
            call.state = "Held"
        elif kind == "AgentEvent_Conference" and call is not None:
            call.state = "Established"
            call.parties = [p for p in _text(details.get("partner")).split(",") if p]
        elif kind == "AgentEvent_Customer_Release" and call is not None:
            number = _text(details.get("number"))
            if number not in call.parties:
                # A party the desk did not know of (the call was rebuilt from a resync, which names
                # only caller and called): whether the call goes on, only the gateway can say.
                self._resync_wanted = True
                return []
            call.parties.remove(number)
            if not call.parties:
                return self._ended(call_id)
        elif kind in CALL_ENDED:
            return self._ended(call_id)
        else:
            return []
        return self._changed()

    def _agent(self, state: AgentState) -> list[Event]:
        self.state = state
        return [AgentStateChanged(state)]

    def _ended(self, call_id: str) -> list[Event]:
        call = self.calls.pop(call_id, None)
        if call is None:
            return []
        released = self._call(call, state="Released")
        for other in self.calls.values():
            if other.parent_id == call_id:
                other.parent_id, other.consult_kind = None, None
        return [CallChanged(released), *self._changed()]

    def _changed(self) -> list[Event]:
        """Every live call again: one call's change may change what another offers."""
        return [CallChanged(self._call(call)) for call in self.calls.values()]

    def observe(self, observation: Observation) -> list[Event]:
        call = self.calls.get(observation.call_id)
        facts = {k: v for k, v in observation.facts.items() if k in ("muted", "parent_id", "consult_kind")}
        if call is None:
            self._pending.setdefault(observation.call_id, {}).update(facts)
            return []
        for name, value in facts.items():
            setattr(call, name, value)
        return self._changed()

    def capabilities(self, call: HuaweiCall) -> tuple[str, ...]:
        """What the gateway lets the agent do with the call now, in the desk's operation names."""
        if call.state == "Ringing":
            return ("Answer",)
        if call.state == "Dialing":
            return ("Hangup", "SendDtmf")
        if call.state == "Held":
            return ("Retrieve", "Hangup")
        operations = ["Hangup", "Hold", "SendDtmf", "UnmuteCall" if call.muted else "MuteCall"]
        if len(call.parties) >= 2:
            operations.append("RemoveParticipantFromConference")
        if any(c.state == "Held" for c in self.calls.values() if c.id != call.id):
            operations.append("SwapCalls")
            if call.consult_kind != "conference":
                operations.append("CompleteTransfer")
            if call.consult_kind != "transfer":
                operations.append("CompleteConference")
        else:
            operations += ["InitiateTransfer", "InitiateConference", "SingleStepTransfer"]
        return tuple(operations)

    def _call(self, call: HuaweiCall, *, state: str = "") -> Call:
        live = not state
        return Call(
            id=call.id,
            state=state or call.state,
            call_type="Consult" if call.parent_id else call.call_type,
            participants=tuple(call.parties),
            capabilities=self.capabilities(call) if live else (),
            parent_id=call.parent_id,
            duration=int(time.monotonic() - call.started),
            muted=call.muted,
            dnis=call.dnis,
            supervisor=self.inspected if live else "",
        )

    # -- operations (borrowed credentials) -----------------------------------------------

    async def set_agent_state(self, state: str, reason: str = "") -> None:
        base = f"/onlineagent/{self.agent_id}"
        if state == "Ready":
            await self._request("POST", f"{base}/sayfree")
        elif state == "NotReady":
            # The gateway's busy reasons are numbers from 200 to 250; any other reason goes without.
            code = reason if reason.isascii() and reason.isdigit() and 200 <= int(reason) <= 250 else ""
            await self._request("POST", f"{base}/saybusy", params={"reason": code} if code else None)
        elif state == "AfterCallWork":
            await self._request("POST", f"{base}/work")
        else:
            raise VoiceApiError(f"Unknown agent state {state!r}")

    async def dial(self, destination: str) -> None:
        await self._request("PUT", f"/voicecall/{self.agent_id}/callout", body={"called": destination})

    async def call_operation(
        self, call_id: str, operation: str, params: dict[str, Any]
    ) -> Observation | None:
        base = f"/voicecall/{self.agent_id}"
        other = str(params.get("other_call_id") or "")
        if operation == "Answer":
            await self._request("PUT", f"{base}/answer")
        elif operation == "Hangup":
            await self._request("POST", f"{base}/dropcall/{call_id}")
        elif operation == "Hold":
            await self._request("POST", f"{base}/hold")
        elif operation == "Retrieve":
            await self._request("POST", f"{base}/gethold", params={"callid": call_id})
        elif operation == "SwapCalls":
            await self._request("POST", f"{base}/hold")
            await self._request("POST", f"{base}/gethold", params={"callid": other})
        elif operation in ("InitiateTransfer", "InitiateConference"):
            body = {"dstaddress": params["destination"], "devicetype": 2, "mode": 1, "holdflag": True}
            consult, _ = await self._request("POST", f"{base}/innerhelp", body=body)
            kind = "transfer" if operation == "InitiateTransfer" else "conference"
            if _text(consult):
                return Observation(_text(consult), {"parent_id": call_id, "consult_kind": kind})
        elif operation == "CompleteTransfer":
            await self._request("POST", f"{base}/connecthold/{other}")
        elif operation == "CompleteConference":
            await self._request("POST", f"{base}/confjoin", body={"callid": other, "callappdata": ""})
        elif operation == "SingleStepTransfer":
            body = {"devicetype": 2, "mode": 0, "address": params["destination"]}
            await self._request("POST", f"{base}/transfer", body=body)
        elif operation == "SendDtmf":
            await self._request("POST", f"{base}/seconddialex", params={"number": params["digits"]})
        elif operation in ("MuteCall", "UnmuteCall"):
            muted = operation == "MuteCall"
            await self._request("POST", f"{base}/{'beginmute' if muted else 'endmute'}")
            return Observation(call_id, {"muted": muted})
        elif operation == "RemoveParticipantFromConference":
            await self._request("POST", f"{base}/disconnect/{params['participant']}")
        else:
            raise VoiceApiError(f"This contact center does not offer {operation}.")
        return None

    # -- an inspector's operations (borrowed credentials) --------------------------------

    async def supervise(self, operation: str, member: Member, call_id: str, *, mode: str = "") -> None:
        base = f"/qualitycontrol/{self.agent_id}"
        workno = quote(member.username, safe="")
        whom = {"whisperagentid": member.username}
        if operation == "ListenIn":
            await self._request("PUT", f"{base}/addsupervise/{workno}")
        elif operation == "BargeIn":
            await self._request("PUT", f"{base}/addinsert/{workno}")
        elif operation == "Coach":
            await self._request("POST", f"{base}/requestwhisperagent", params=whom)
        elif operation in SWITCH_TYPES:
            params = {**whom, "switchtype": SWITCH_TYPES[operation]}
            await self._request("POST", f"{base}/requestswitchinsertwhisperagent", params=params)
        elif operation == "CancelSupervisorMonitoring" and mode == "Coach":
            await self._request("POST", f"{base}/requeststopwhisperagent", params=whom)
        elif operation == "CancelSupervisorMonitoring":
            await self._request("DELETE", f"{base}/{workno}")
        else:
            raise VoiceApiError(f"This contact center does not offer {operation}.")

    async def set_member_state(self, member: Member, state: str, reason: str = "") -> None:
        """The gateway takes no reason for a forced busy: the agent is told it was set by a supervisor."""
        forced = FORCED_STATES.get(state)
        if forced is None:
            raise VoiceApiError(f"Unknown agent state {state!r}")
        workno = quote(member.username, safe="")
        await self._request("POST", f"/qualitycontrol/{self.agent_id}/{forced}/{workno}")
