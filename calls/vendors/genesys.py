"""Genesys Web Services API v2, Voice API: the only place that speaks GWS REST and reads its JSON.

The owner's session signs in with HTTP Basic (``GET /me``), which gives a session cookie and a CSRF
token: those are the credentials borrowers use. Notifications come over CometD
(``calls.vendors.cometd``) on ``/v2/me/calls`` and ``/v2/me/devices``. A 401/403 means the
credentials are no longer good: the owner signs in again; a borrower reports it and never does.
Reads are retried (tenacity); an operation is never sent twice.

A supervisor (a user with ``ROLE_SUPERVISOR``) monitors from its own device: ``ListenIn``,
``Coach`` or ``BargeIn`` on ``/me/devices/{id}`` naming the agent's device (found through
``GET /users?userName=``), for the agent's current call; the switch then gives the supervisor a
monitoring call (``monitoring: true``) that offers ``SwitchToListenIn``/``SwitchToCoach``/
``SwitchToBargeIn``, and ``CancelSupervisorMonitoring`` on the device ends it. The monitored agent's
call says ``supervisorListeningIn``. A supervisor sets another user's agent state on
``/users/{id}/channels/voice``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from calls.voice import (
    CALL_OPERATIONS,
    MAX_CALL_TYPE,
    MAX_DNIS,
    MAX_REASON,
    MONITORING_MODES,
    STOP_MONITORING,
    SUPERVISION_OPERATIONS,
    SWITCH_TO,
    AgentState,
    AgentStateChanged,
    Call,
    CallChanged,
    Credentials,
    CredentialsRefused,
    Event,
    MalformedNotification,
    Member,
    Observation,
    Reconnecting,
    Resynced,
    Server,
    SignInRefused,
    Unavailable,
    VoiceApiError,
    VoiceBackend,
    storable_call_id,
    storable_text,
    storable_user_data,
)
from calls.voice import Agent as AgentIdentity

from . import http
from .cometd import RECONNECTING, RESYNC, NotificationStream

log = logging.getLogger("switchboard.genesys")

API = "/api/v2"
CALLS_CHANNEL = "/v2/me/calls"
DEVICES_CHANNEL = "/v2/me/devices"
# What a resync reads with the user: the sub-resources by name, as clients may ask for a subset.
RESYNC_SUBRESOURCES = "devices,calls"
# After CometD starts reconnecting: how long aiocometd gets on its own, and how often the Voice API
# is asked whether it is back.
RETURN_GRACE_SECONDS = 2.0
RETURN_PROBE_SECONDS = 0.5
CALL_STATES = ("Ringing", "Dialing", "Established", "Held", "Released")
# What a supervisor may set on another user's voice channel, by the desk's state.
MEMBER_STATE_OPERATIONS = {"Ready": "Ready", "NotReady": "NotReady", "LoggedOut": "Logout"}


def _text(value: Any, default: str = "") -> str:
    """A string of the vendor's JSON, as the desk may store it (``calls.voice.storable_text``)."""
    return storable_text(value) if isinstance(value, str) else default


def parse_call(raw: Any) -> Call:
    """A GWS call resource as our ``Call``; raises ``MalformedNotification`` when it is not one.
    Every string it keeps is storable, and so is its attached data (NaN and Infinity become text)."""
    raw_id = raw.get("id") if isinstance(raw, dict) else None
    call_id = storable_call_id(raw_id) if isinstance(raw_id, str) else ""
    if not isinstance(raw, dict) or not call_id:
        raise MalformedNotification("call resource without a usable id")
    state = raw.get("state")
    if state not in CALL_STATES:
        raise MalformedNotification(f"call {call_id!r} has an unknown state")
    participants = raw.get("participants") or []
    numbers: list[str] = []
    for party in participants if isinstance(participants, list) else []:
        if isinstance(party, dict):
            numbers.append(_text(party.get("phoneNumber")) or _text(party.get("digits")))
        else:
            numbers.append(_text(party))
    capabilities = raw.get("capabilities") or []
    if not isinstance(capabilities, list) or not all(isinstance(c, str) for c in capabilities):
        raise MalformedNotification(f"call {call_id!r} has malformed capabilities")
    user_data = raw.get("userData") or {}
    if not isinstance(user_data, dict):
        raise MalformedNotification(f"call {call_id!r} has malformed userData")
    parent_uri = raw.get("parentCallUri")
    parent_id = ""
    if isinstance(parent_uri, str) and parent_uri:
        parent_id = storable_call_id(parent_uri.rstrip("/").rsplit("/", 1)[-1])
    duration = _text(raw.get("duration"), "0")
    # The agent's call says only that a supervisor is on it, whatever the mode: listening, to the agent.
    monitored = raw.get("supervisorListeningIn") is True and raw.get("monitoring") is not True
    return Call(
        id=call_id,
        state=state,
        call_type=_text(raw.get("callType"), "Internal")[:MAX_CALL_TYPE],
        participants=tuple(n for n in numbers if n),
        capabilities=tuple(c for c in capabilities if c in CALL_OPERATIONS or c in SUPERVISION_OPERATIONS),
        parent_id=parent_id or None,
        user_data=storable_user_data(user_data),
        duration=int(duration) if duration.isascii() and duration.isdigit() else 0,
        muted=raw.get("mute") == "On",
        dnis=_text(raw.get("dnis"))[:MAX_DNIS],
        supervisor=MONITORING_MODES[0] if monitored else "",
    )


def parse_agent_state(device: Any) -> AgentState:
    if not isinstance(device, dict):
        raise MalformedNotification("device resource is not an object")
    user_state = device.get("userState") or {}
    if not isinstance(user_state, dict):
        raise MalformedNotification("device userState is not an object")
    if device.get("deviceState") == "Inactive" or user_state.get("state") == "LoggedOut":
        return AgentState(state="LoggedOut")
    state = _text(user_state.get("state"), "NotReady")
    if user_state.get("workMode") == "AfterCallWork":
        state = "AfterCallWork"
    if state not in ("Ready", "NotReady", "AfterCallWork"):
        state = "NotReady"
    return AgentState(
        state=state,
        reason=(_text(user_state.get("reason")) or _text(user_state.get("reasonCode")))[:MAX_REASON],
    )


def parse_message(channel: str, data: Any) -> Event | None:
    """One CometD message as our event; ``None`` for channels and types we do not use."""
    if not isinstance(data, dict):
        raise MalformedNotification(f"message on {channel} has no data object")
    if channel == CALLS_CHANNEL and data.get("messageType") == "CallStateChangeMessage":
        call = parse_call(data.get("call"))
        extensions = data.get("extensions")
        wrap_up = extensions.get("WrapUpTime") if isinstance(extensions, dict) else None
        if isinstance(wrap_up, int) and not isinstance(wrap_up, bool) and 0 < wrap_up <= 86400:
            call = dataclasses.replace(call, wrap_up_seconds=wrap_up)
        return CallChanged(call)
    if channel == DEVICES_CHANNEL and data.get("messageType") == "DeviceStateChangeMessage":
        devices = data.get("devices")
        if not isinstance(devices, list) or not devices:
            raise MalformedNotification("DeviceStateChangeMessage without devices")
        return AgentStateChanged(parse_agent_state(devices[0]))
    return None


class GenesysBackend(VoiceBackend):
    dialect = "genesys"
    label = "Genesys Web Services (API v2)"

    def __init__(self, server: Server, agent: AgentIdentity, credentials: Credentials | None = None) -> None:
        super().__init__(server, agent, credentials)
        self.root = server.base_url.rstrip("/")
        # Other users' ids and devices, by user name, as a supervisor looked them up (they do not change).
        self._users: dict[str, tuple[str, str]] = {}
        self._http = http.client(self.root + API, verify=server.verify_tls, vendor=self.dialect)

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- transport -----------------------------------------------------------------------

    def _session_headers(self, method: str) -> dict[str, str]:
        headers: dict[str, str] = {}
        cookies = self.credentials.get("cookies") or {}
        if cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        if method != "GET" and self.credentials.get("csrf_token"):
            headers[self.credentials.get("csrf_header") or "X-CSRF-TOKEN"] = self.credentials["csrf_token"]
        return headers

    async def _request(
        self, method: str, path: str, *, body: dict[str, Any] | None = None, **params: Any
    ) -> dict[str, Any]:
        if not self.credentials.get("cookies"):
            raise CredentialsRefused("The contact-center session is not open yet.")
        try:
            response = await self._http.request(
                method, path, json=body, params=params or None, headers=self._session_headers(method)
            )
        except httpx.HTTPError as exc:
            raise http.unreachable(exc) from exc
        self._remember(response)
        return self._payload(response)

    def _remember(self, response: httpx.Response) -> None:
        header = response.headers.get("X-CSRF-HEADER")
        token = response.headers.get(header or "X-CSRF-TOKEN")
        if header:
            self.credentials["csrf_header"] = header
        if token:
            self.credentials["csrf_token"] = token
        if response.cookies:
            self.credentials["cookies"] = {**(self.credentials.get("cookies") or {}), **response.cookies}
        # The session's cookies travel in our own header: the client's jar must not add stale ones.
        self._http.cookies.clear()

    @staticmethod
    def _payload(response: httpx.Response) -> dict[str, Any]:
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            payload = {}
        message = _text(payload.get("statusMessage")) or response.reason_phrase or "no message"
        code = payload.get("statusCode")
        code_text = str(code) if isinstance(code, int) else ""
        if response.status_code >= 500:
            raise Unavailable(f"Voice API error {response.status_code}: {message}", code=code_text)
        # 403 with statusCode 5 is a refusal of this operation to this user (a supervisor's one to an
        # agent), not of the session's credentials.
        if response.status_code in (401, 403) and code != 5:
            raise CredentialsRefused(message, code=code_text)
        if response.status_code >= 400 or (isinstance(code, int) and code not in (0, 7)):
            raise VoiceApiError(message, code=code_text)
        return payload

    async def _read(self, path: str, **params: Any) -> dict[str, Any]:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(Unavailable),
            stop=stop_after_attempt(3),
            wait=wait_exponential_jitter(multiplier=0.2, max=2.0),
            reraise=True,
        ):
            with attempt:
                return await self._request("GET", path, **params)
        raise AssertionError("unreachable")

    async def _write(self, path: str, body: dict[str, Any]) -> None:
        await self._request("POST", path, body=body)

    # -- the owner's session -------------------------------------------------------------

    async def _sign_in_to_api(self) -> None:
        """HTTP Basic once: keep the cookie and CSRF token, learn the device and its DN."""
        self.credentials = {}
        try:
            response = await self._http.get(
                "/me",
                params={"subresources": "*"},
                auth=httpx.BasicAuth(self.agent.username, self.agent.password),
            )
        except httpx.HTTPError as exc:
            raise http.unreachable(exc) from exc
        self._remember(response)
        try:
            payload = self._payload(response)
        except CredentialsRefused as exc:
            raise SignInRefused(exc.message, code=exc.code) from exc
        user = payload.get("user")
        devices = user.get("devices") if isinstance(user, dict) else None
        if not isinstance(devices, list):
            devices = []
        if devices and isinstance(devices[0], dict):
            self.credentials["device_id"] = _text(devices[0].get("id"))
            self.credentials["dn"] = _text(devices[0].get("phoneNumber"))

    def _cometd_headers(self) -> dict[str, str]:
        return self._session_headers("GET")

    @asynccontextmanager
    async def session(self, *, signed_in: bool) -> AsyncIterator[AsyncIterator[Event]]:
        await self._sign_in_to_api()
        async with NotificationStream(
            f"{self.root}{API}/notifications",
            [CALLS_CHANNEL, DEVICES_CHANNEL],
            self._cometd_headers,
            verify=self.server.verify_tls,
        ) as stream:
            yield self._events(stream)

    async def _events(self, stream: NotificationStream) -> AsyncIterator[Event]:
        yield await self.resync()
        watch: asyncio.Task[None] | None = None
        try:
            async for channel, data in stream:
                if (channel, data) == RECONNECTING:
                    yield Reconnecting()
                    await self._check_session()
                    if watch is None or watch.done():
                        watch = asyncio.create_task(self._watch_for_return(stream))
                elif (channel, data) == RESYNC:
                    yield await self.resync()
                else:
                    event = self.event_of(channel, data)
                    if event is not None:
                        yield event
        finally:
            if watch is not None:
                watch.cancel()

    async def _watch_for_return(self, stream: NotificationStream) -> None:
        """While CometD reconnects after an outage: as soon as the Voice API answers again, end the
        stream so the owner opens a new one now, rather than after aiocometd's own backoff (which
        can run to its 10 s timeout). A dropped CometD client re-handshakes faster than the grace."""
        await asyncio.sleep(RETURN_GRACE_SECONDS)
        while stream.reconnecting:
            try:
                await self._request("GET", "/me")
            except VoiceApiError:
                await asyncio.sleep(RETURN_PROBE_SECONDS)
                continue
            if stream.reconnecting:
                stream.abort("the Voice API answers again while CometD still reconnects")
            return

    def event_of(self, channel: str, data: Any) -> Event | None:
        """A CometD message as our event; a malformed one is logged and skipped, never fatal."""
        try:
            return parse_message(channel, data)
        except MalformedNotification as exc:
            log.warning("skipped a malformed notification for %s: %s", self.agent.username, exc)
            return None

    async def _check_session(self) -> None:
        """While CometD reconnects: a server that forgot the HTTP session (a restart) refuses the
        handshakes until aiocometd gives up; find out at once, so the owner signs in again now.
        An unreachable server is left to aiocometd's own retries."""
        try:
            await self._request("GET", "/me")
        except CredentialsRefused:
            raise
        except Unavailable:
            pass

    async def resync(self) -> Resynced:
        """The agent's calls and device in one read, ``GET /me`` with both as sub-resources ("Recovering
        existing state"); from ``/me/calls`` and ``/me/devices`` when the server leaves them out."""
        user = (await self._read("/me", subresources=RESYNC_SUBRESOURCES)).get("user")
        raw_calls = user.get("calls") if isinstance(user, dict) else None
        devices = user.get("devices") if isinstance(user, dict) else None
        if not isinstance(raw_calls, list) or not isinstance(devices, list):
            raw_calls = (await self._read("/me/calls", fields="*")).get("calls")
            if not isinstance(raw_calls, list):
                raise Unavailable("GET /me/calls answered without a calls list")
            devices = (await self._read("/me/devices", fields="*")).get("devices")
        calls = []
        for raw in raw_calls:
            try:
                calls.append(parse_call(raw))
            except MalformedNotification as exc:
                log.warning("skipped a malformed call for %s: %s", self.agent.username, exc)
        state = parse_agent_state(devices[0]) if isinstance(devices, list) and devices else None
        return Resynced(tuple(calls), state or AgentState("LoggedOut"))

    async def sign_in(self) -> None:
        body: dict[str, Any] = {"operationName": "StartContactCenterSession", "channels": ["voice"]}
        if self.agent.place:
            body["place"] = self.agent.place
        await self._write("/me", body)

    async def sign_out(self) -> None:
        await self._write("/me", {"operationName": "EndContactCenterSession"})

    async def check(self) -> str:
        """A Voice API sign-in of its own (HTTP Basic): it proves the password and touches neither
        the owner's session nor the agent's contact-center sign-in."""
        await self._sign_in_to_api()
        dn = self.credentials.get("dn")
        return f"connected, DN {dn}" if dn else "connected, no DN"

    # -- operations (borrowed credentials) -----------------------------------------------

    async def set_agent_state(self, state: str, reason: str = "") -> None:
        if state not in ("Ready", "NotReady", "AfterCallWork"):
            raise VoiceApiError(f"Unknown agent state {state!r}")
        body: dict[str, Any] = {"operationName": state}
        if state == "NotReady" and reason:
            body["reasonCode"] = reason
        await self._write("/me/channels/voice", body)

    async def dial(self, destination: str) -> None:
        device = self.credentials.get("device_id")
        if not device:
            raise VoiceApiError("The Voice API named no device for this agent.")
        await self._write(
            f"/me/devices/{device}/calls",
            {"operationName": "Dial", "destination": {"phoneNumber": destination}},
        )

    async def call_operation(
        self, call_id: str, operation: str, params: dict[str, Any]
    ) -> Observation | None:
        if operation not in CALL_OPERATIONS:
            raise VoiceApiError(f"Unknown call operation {operation!r}")
        body: dict[str, Any] = {"operationName": operation}
        if params.get("destination"):
            body["destination"] = {"phoneNumber": params["destination"]}
        if operation == "SwapCalls" and params.get("other_call_id"):
            body["otherCallUri"] = f"{self.root}{API}/me/calls/{params['other_call_id']}"
        if params.get("user_data"):
            body["userData"] = params["user_data"]
        for name in ("digits", "key", "participant"):
            if params.get(name):
                body[name] = params[name]
        await self._write(f"/me/calls/{call_id}", body)
        return None

    # -- a supervisor's operations (borrowed credentials) --------------------------------

    @classmethod
    def supervision_offers(cls, call_state: str, mode: str, leg: tuple[str, ...] = ()) -> tuple[str, ...]:
        """As the interface says; while monitoring, the switches the monitoring call lists now."""
        offered = super().supervision_offers(call_state, mode, leg)
        if not mode or not leg:
            return offered
        switches = tuple(name for name in SWITCH_TO.values() if name in leg)
        return (*switches, STOP_MONITORING)

    async def _user(self, member: Member) -> tuple[str, str]:
        """The member's user id and device id, looked up by user name once."""
        known = self._users.get(member.username)
        if known is not None:
            return known
        payload = await self._read("/users", userName=member.username, fields="*", subresources="*")
        users = payload.get("users")
        user = users[0] if isinstance(users, list) and users and isinstance(users[0], dict) else None
        if user is None or not _text(user.get("id")):
            raise VoiceApiError(f"The Voice API knows no user {member.username}.")
        devices = user.get("devices")
        device = devices[0] if isinstance(devices, list) and devices and isinstance(devices[0], dict) else {}
        found = (_text(user.get("id")), _text(device.get("id")))
        self._users[member.username] = found
        return found

    async def _as_user(self, member: Member, send: Callable[[str, str], Awaitable[None]]) -> None:
        """``send(user id, device id)`` for the member. Ids remembered from earlier that the Voice
        API no longer knows (statusCode 6: nothing was applied) are looked up once more."""
        remembered = member.username in self._users
        try:
            await send(*await self._user(member))
        except VoiceApiError as exc:
            if exc.code != "6" or not remembered:
                raise
            self._users.pop(member.username, None)
            await send(*await self._user(member))

    async def supervise(self, operation: str, member: Member, call_id: str, *, mode: str = "") -> None:
        device = self.credentials.get("device_id")
        if not device:
            raise VoiceApiError("The Voice API named no device for you.")
        if operation in MONITORING_MODES:

            async def monitor(user_id: str, target: str) -> None:
                if not target:
                    raise VoiceApiError(f"{member.username} has no device to monitor.")
                body = {
                    "operationName": operation,
                    "targetDeviceUri": f"{self.root}{API}/devices/{target}",
                    "supervisorMonitoringScope": "Call",
                    "supervisorMonitoringMode": "NextCall",
                }
                await self._write(f"/me/devices/{device}", body)

            await self._as_user(member, monitor)
        elif operation == STOP_MONITORING:
            await self._write(f"/me/devices/{device}", {"operationName": operation})
        elif operation in SWITCH_TO.values():
            await self._write(f"/me/calls/{await self._monitoring_call()}", {"operationName": operation})
        else:
            raise VoiceApiError(f"Unknown supervision operation {operation!r}")

    async def _monitoring_call(self) -> str:
        """The supervisor's own monitoring call, as the Voice API lists it now."""
        payload = await self._read("/me/calls", fields="*")
        calls = payload.get("calls")
        for raw in calls if isinstance(calls, list) else []:
            if isinstance(raw, dict) and raw.get("monitoring") is True:
                call_id = storable_call_id(_text(raw.get("id")))
                if call_id:
                    return call_id
        raise VoiceApiError("You are not monitoring a call now.")

    async def set_member_state(self, member: Member, state: str, reason: str = "") -> None:
        operation = MEMBER_STATE_OPERATIONS.get(state)
        if operation is None:
            raise VoiceApiError(f"Unknown agent state {state!r}")
        body: dict[str, Any] = {"operationName": operation}
        if operation == "NotReady" and reason:
            body["reasonCode"] = reason

        async def set_state(user_id: str, device_id: str) -> None:
            await self._write(f"/users/{user_id}/channels/voice", body)

        await self._as_user(member, set_state)
