"""The Genesys Web Services API v2 Voice API client: the only place that speaks GWS REST.

Owns authentication (HTTP Basic, then the server's session cookie and CSRF token, renewed once
on a 401/403), retries (reads only: an operation is never sent twice unless the server proves
it was not applied), and the translation of vendor JSON into our own typed objects. Nothing
outside this module sees a raw GWS payload.
"""

from __future__ import annotations

import functools
import logging
import ssl
from dataclasses import dataclass, field
from typing import Any

import certifi
import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from .voice import AgentState, Call, CallNotification, MalformedNotification, StateNotification

log = logging.getLogger("switchboard.genesys")

API = "/api/v2"
CALLS_CHANNEL = "/v2/me/calls"
DEVICES_CHANNEL = "/v2/me/devices"

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
        "Reject",
    }
)


class VoiceApiError(Exception):
    """The Voice API refused or failed a request; ``message`` is fit to show the agent."""

    def __init__(self, message: str, *, status: int = 0, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class VoiceApiUnavailable(VoiceApiError):
    """The server could not be reached or answered 5xx: nothing is known to have been applied."""


@dataclass
class GenesysSession:
    """What a login yields: the agent's device and DN, and what CometD needs to authenticate."""

    device_id: str = ""
    dn: str = ""
    csrf_header: str = "X-CSRF-TOKEN"
    csrf_token: str = ""
    cookies: dict[str, str] = field(default_factory=dict)


def _text(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) else default


def parse_call(raw: Any) -> Call:
    """A GWS call resource as our ``Call``; raises ``MalformedNotification`` when it is not one."""
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not raw["id"]:
        raise MalformedNotification("call resource without an id")
    state = raw.get("state")
    if state not in ("Ringing", "Dialing", "Established", "Held", "Released"):
        raise MalformedNotification(f"call {raw['id']} has an unknown state {state!r}")
    participants = raw.get("participants") or []
    numbers: list[str] = []
    for party in participants if isinstance(participants, list) else []:
        if isinstance(party, dict):
            numbers.append(_text(party.get("phoneNumber")) or _text(party.get("digits")))
        elif isinstance(party, str):
            numbers.append(party)
    capabilities = raw.get("capabilities") or []
    if not isinstance(capabilities, list) or not all(isinstance(c, str) for c in capabilities):
        raise MalformedNotification(f"call {raw['id']} has malformed capabilities")
    user_data = raw.get("userData") or {}
    if not isinstance(user_data, dict):
        raise MalformedNotification(f"call {raw['id']} has malformed userData")
    parent_uri = _text(raw.get("parentCallUri"))
    duration = _text(raw.get("duration"), "0")
    return Call(
        id=raw["id"],
        state=state,
        call_type=_text(raw.get("callType"), "Internal"),
        participants=tuple(n for n in numbers if n),
        capabilities=tuple(capabilities),
        parent_id=parent_uri.rstrip("/").rsplit("/", 1)[-1] if parent_uri else None,
        user_data={str(k): v if isinstance(v, str | int | float) else str(v) for k, v in user_data.items()},
        duration=int(duration) if duration.isdigit() else 0,
        muted=raw.get("mute") == "On",
        dnis=_text(raw.get("dnis")),
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
        state=state, reason=_text(user_state.get("reason")) or _text(user_state.get("reasonCode"))
    )


def parse_message(channel: str, data: Any) -> CallNotification | StateNotification | None:
    """One CometD message as our notification; ``None`` for channels and types we do not use."""
    if not isinstance(data, dict):
        raise MalformedNotification(f"message on {channel} has no data object")
    if channel == CALLS_CHANNEL and data.get("messageType") == "CallStateChangeMessage":
        return CallNotification(
            kind=_text(data.get("notificationType"), "StatusChange"), call=parse_call(data.get("call"))
        )
    if channel == DEVICES_CHANNEL and data.get("messageType") == "DeviceStateChangeMessage":
        devices = data.get("devices")
        if not isinstance(devices, list) or not devices:
            raise MalformedNotification("DeviceStateChangeMessage without devices")
        return StateNotification(state=parse_agent_state(devices[0]))
    return None


@functools.cache
def tls_context(verify: bool) -> ssl.SSLContext:
    """One TLS context per verification mode for every client: loading the CA bundle into a new
    context costs most of a megabyte, and a worker holds one client per agent session."""
    if verify:
        return ssl.create_default_context(cafile=certifi.where())
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class GenesysClient:
    """One agent's Voice API client. Create it, ``await login()``, then call operations."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        verify: bool = True,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._auth = httpx.BasicAuth(username, password)
        self.session = GenesysSession()
        tls = tls_context(verify)
        self._http = httpx.AsyncClient(
            base_url=self.base_url + API,
            verify=tls,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            # Connection failures happen before anything is sent, so retrying them is safe for writes too.
            transport=transport or httpx.AsyncHTTPTransport(retries=1, verify=tls),
            headers={"Accept": "application/json"},
        )

    @property
    def notifications_url(self) -> str:
        return f"{self.base_url}{API}/notifications"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> GenesysClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- transport -----------------------------------------------------------------------

    async def _send(
        self, method: str, path: str, *, body: dict[str, Any] | None = None, **params: Any
    ) -> dict[str, Any]:
        if not self.session.cookies:
            await self.login()
        headers = {self.session.csrf_header: self.session.csrf_token} if method != "GET" else {}
        try:
            response = await self._http.request(
                method, path, json=body, params=params or None, headers=headers
            )
        except httpx.HTTPError as exc:
            raise VoiceApiUnavailable(f"Voice API unreachable: {type(exc).__name__}") from exc
        self._remember(response)
        return self._payload(response)

    def _remember(self, response: httpx.Response) -> None:
        token = response.headers.get("X-CSRF-TOKEN")
        header = response.headers.get("X-CSRF-HEADER")
        if header:
            self.session.csrf_header = header
            token = response.headers.get(header, token)
        if token:
            self.session.csrf_token = token
        self.session.cookies = dict(self._http.cookies.items())

    @staticmethod
    def _payload(response: httpx.Response) -> dict[str, Any]:
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            payload = {}
        message = _text(payload.get("statusMessage")) or response.reason_phrase or "no message"
        if response.status_code >= 500:
            raise VoiceApiUnavailable(
                f"Voice API error {response.status_code}: {message}", status=response.status_code
            )
        code = payload.get("statusCode")
        if response.status_code >= 400 or (isinstance(code, int) and code not in (0, 7)):
            raise VoiceApiError(
                message, status=response.status_code, code=code if isinstance(code, int) else None
            )
        return payload

    async def _authenticated(
        self, method: str, path: str, *, body: dict[str, Any] | None = None, **params: Any
    ) -> dict[str, Any]:
        """Send once; a 401/403 (session expired, CSRF token stale) re-authenticates and sends once more.
        The server refused the first attempt, so the second cannot apply an operation twice."""
        try:
            return await self._send(method, path, body=body, **params)
        except VoiceApiError as exc:
            if exc.status not in (401, 403):
                raise
        await self.login()
        return await self._send(method, path, body=body, **params)

    async def _read(self, path: str, **params: Any) -> dict[str, Any]:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(VoiceApiUnavailable),
            stop=stop_after_attempt(3),
            wait=wait_exponential_jitter(multiplier=0.2, max=2.0),
            reraise=True,
        ):
            with attempt:
                return await self._authenticated("GET", path, **params)
        raise AssertionError("unreachable")

    # -- session -------------------------------------------------------------------------

    async def login(self) -> GenesysSession:
        """Authenticate with HTTP Basic, keep the cookie and CSRF token, learn the device."""
        self._http.cookies.clear()
        self.session.cookies = {}
        try:
            response = await self._http.get("/me", params={"subresources": "*"}, auth=self._auth)
        except httpx.HTTPError as exc:
            raise VoiceApiUnavailable(f"Voice API unreachable: {type(exc).__name__}") from exc
        self._remember(response)
        payload = self._payload(response)
        user = payload.get("user") if isinstance(payload.get("user"), dict) else {}
        devices = user.get("devices") if isinstance(user.get("devices"), list) else []
        if devices and isinstance(devices[0], dict):
            self.session.device_id = _text(devices[0].get("id"))
            self.session.dn = _text(devices[0].get("phoneNumber"))
        return self.session

    def cometd_headers(self) -> dict[str, str]:
        """What a CometD request needs to ride on this Voice API session."""
        cookie = "; ".join(f"{k}={v}" for k, v in self.session.cookies.items())
        return {"Cookie": cookie} if cookie else {}

    # -- reads ---------------------------------------------------------------------------

    async def calls(self) -> list[Call]:
        payload = await self._read("/me/calls", fields="*")
        raw_calls = payload.get("calls")
        if not isinstance(raw_calls, list):
            raise VoiceApiError("GET /me/calls answered without a calls list")
        return [parse_call(raw) for raw in raw_calls]

    async def agent_state(self) -> AgentState:
        payload = await self._read("/me/devices", fields="*")
        devices = payload.get("devices")
        if not isinstance(devices, list) or not devices:
            return AgentState(state="LoggedOut")
        return parse_agent_state(devices[0])

    # -- agent operations ----------------------------------------------------------------

    async def _write(self, path: str, body: dict[str, Any]) -> None:
        await self._authenticated("POST", path, body=body)

    async def start_contact_center_session(self, place: str = "") -> None:
        body: dict[str, Any] = {"operationName": "StartContactCenterSession", "channels": ["voice"]}
        if place:
            body["place"] = place
        await self._write("/me", body)

    async def end_contact_center_session(self) -> None:
        await self._write("/me", {"operationName": "EndContactCenterSession"})

    async def set_agent_state(self, operation: str, reason: str = "") -> None:
        if operation not in ("Ready", "NotReady", "AfterCallWork"):
            raise VoiceApiError(f"Unknown agent state {operation!r}")
        body: dict[str, Any] = {"operationName": operation}
        if operation == "NotReady" and reason:
            body["reasonCode"] = reason
        await self._write("/me/channels/voice", body)

    async def dial(self, destination: str, user_data: dict[str, str] | None = None) -> None:
        if not self.session.device_id:
            await self.login()
        body: dict[str, Any] = {"operationName": "Dial", "destination": {"phoneNumber": destination}}
        if user_data:
            body["userData"] = user_data
        await self._write(f"/me/devices/{self.session.device_id}/calls", body)

    # -- call operations -----------------------------------------------------------------

    def call_uri(self, call_id: str) -> str:
        return f"{self.base_url}{API}/me/calls/{call_id}"

    async def call_operation(self, call_id: str, operation: str, **params: Any) -> None:
        """Send one call operation; parameters are the Voice API's own (``destination`` a number)."""
        if operation not in CALL_OPERATIONS:
            raise VoiceApiError(f"Unknown call operation {operation!r}")
        body: dict[str, Any] = {"operationName": operation}
        if "destination" in params:
            body["destination"] = {"phoneNumber": params.pop("destination")}
        if "other_call_id" in params:
            body["otherCallUri"] = self.call_uri(params.pop("other_call_id"))
        body.update({k: v for k, v in params.items() if v not in (None, "", {})})
        await self._write(f"/me/calls/{call_id}", body)

    async def answer(self, call_id: str) -> None:
        await self.call_operation(call_id, "Answer")

    async def hangup(self, call_id: str) -> None:
        await self.call_operation(call_id, "Hangup")

    async def hold(self, call_id: str) -> None:
        await self.call_operation(call_id, "Hold")

    async def retrieve(self, call_id: str) -> None:
        await self.call_operation(call_id, "Retrieve")

    async def initiate_transfer(
        self, call_id: str, destination: str, user_data: dict[str, str] | None = None
    ) -> None:
        await self.call_operation(call_id, "InitiateTransfer", destination=destination, userData=user_data)

    async def complete_transfer(self, call_id: str) -> None:
        await self.call_operation(call_id, "CompleteTransfer")

    async def initiate_conference(
        self, call_id: str, destination: str, user_data: dict[str, str] | None = None
    ) -> None:
        await self.call_operation(call_id, "InitiateConference", destination=destination, userData=user_data)

    async def complete_conference(self, call_id: str) -> None:
        await self.call_operation(call_id, "CompleteConference")

    async def single_step_transfer(
        self, call_id: str, destination: str, user_data: dict[str, str] | None = None
    ) -> None:
        await self.call_operation(call_id, "SingleStepTransfer", destination=destination, userData=user_data)

    async def single_step_conference(
        self, call_id: str, destination: str, user_data: dict[str, str] | None = None
    ) -> None:
        await self.call_operation(
            call_id, "SingleStepConference", destination=destination, userData=user_data
        )

    async def swap_calls(self, call_id: str, other_call_id: str) -> None:
        await self.call_operation(call_id, "SwapCalls", other_call_id=other_call_id)

    async def send_dtmf(self, call_id: str, digits: str) -> None:
        await self.call_operation(call_id, "SendDtmf", digits=digits)

    async def attach_user_data(self, call_id: str, user_data: dict[str, str]) -> None:
        await self.call_operation(call_id, "AttachUserData", userData=user_data)

    async def update_user_data(self, call_id: str, user_data: dict[str, str]) -> None:
        await self.call_operation(call_id, "UpdateUserData", userData=user_data)

    async def delete_user_data(self, call_id: str) -> None:
        await self.call_operation(call_id, "DeleteUserData")

    async def delete_user_data_pair(self, call_id: str, key: str) -> None:
        await self.call_operation(call_id, "DeleteUserDataPair", key=key)

    async def remove_participant(self, call_id: str, participant: str) -> None:
        await self.call_operation(call_id, "RemoveParticipantFromConference", participant=participant)

    async def mute(self, call_id: str) -> None:
        await self.call_operation(call_id, "MuteCall")

    async def unmute(self, call_id: str) -> None:
        await self.call_operation(call_id, "UnmuteCall")
