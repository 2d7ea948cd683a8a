"""The Genesys Web Services API v2 dialect: REST Voice API, HTTP sessions with CSRF, CometD topics.

Owns the wire format of ``../shared/spec/genesys.md`` and the seeds: the call resource, the
capability list of every situation, the status codes of refusals, and the notifications on
``/v2/me/calls`` and ``/v2/me/devices``. The switch underneath knows nothing of any of it.

Supervisors (``roles`` with ``ROLE_SUPERVISOR``, feature ``api-supervisor-monitoring``):

* Users. ``GET /api/v2/users`` lists the Genesys users' URIs; ``?fields=*`` lists the users
  themselves, ``?userName=agent1`` or ``?phoneNumber=5005`` filters them, ``subresources=*`` adds
  each user's ``devices`` and ``channels``; ``GET /api/v2/users/{id}`` is one user. Any signed-in
  user may read them (a colleague directory); a user's ``id`` is the one ``GET /api/v2/me`` shows.
* Agent state of another user: ``POST /api/v2/users/{id}/channels/voice`` with ``operationName``
  ``Ready``, ``NotReady`` (optional ``reasonCode``), ``AfterCallWork``, ``AuxWork`` or ``Logout``.
  The agent's own sessions get what they would get had the agent done it: a
  ``DeviceStateChangeMessage`` on ``/v2/me/devices`` and a ``ChannelStateChangeMessageV2`` on
  ``/v2/me/channels`` (``Logout``: ``deviceState`` ``Inactive``, ``userState`` ``LoggedOut``).
* Monitoring, on the supervisor's own device ``POST /api/v2/me/devices/{deviceId}``: ``ListenIn``,
  ``Coach`` or ``BargeIn`` with ``targetDeviceUri`` (the agent's device URI, or its device id),
  optional ``supervisorMonitoringScope`` (``Call``, default, or ``Agent``) and
  ``supervisorMonitoringMode`` (``NextCall``, default: the current or next call only, or
  ``AllCalls``: every call until cancelled); ``CancelSupervisorMonitoring`` ends it. The device
  then carries ``supervisorMonitoringState`` ``{state, mode, scope, targetDeviceUri}`` and its
  capabilities offer ``CancelSupervisorMonitoring`` instead of ``ListenIn``/``Coach``/``BargeIn``.
* The supervisor's monitoring call (``monitoring: true``; ``mute: "On"`` while listening) offers
  ``Hangup`` (which cancels the monitoring), the ``SwitchToListenIn``/``SwitchToCoach``/
  ``SwitchToBargeIn`` it is not in, and ``MuteMonitoredUser`` or ``UnmuteMonitoredUser``
  (``MonitoredUserMutedStateChange`` to both sides, ``monitoredUserMuted``).
* The monitored agent's call shows ``supervisorListeningIn: true`` while a supervisor is on it
  (a ``StatusChange``); a barging supervisor is listed among the participants of every party's
  view of the call (``ParticipantsUpdated`` when it joins, leaves, or switches to or from barging).
* Refusals: a user that is not a supervisor gets HTTP 403 with ``statusCode`` 5; an unknown user
  or device HTTP 404 with ``statusCode`` 6; an operation the device or call does not offer now,
  or a target that is not logged in, HTTP 400 with ``statusCode`` 2.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .bayeux import BayeuxServer
from .switch import (
    BARGE_IN,
    COACH,
    CONFERENCE,
    DIALING,
    HELD,
    LISTEN_IN,
    MONITOR_MODES,
    MONITOR_SCOPES,
    RELEASED,
    RINGING,
    TRANSFER,
    Agent,
    Call,
    CallEvent,
    CallView,
    MonitorEvent,
    Switch,
    SwitchError,
    SwitchEvent,
)
from .web import HttpError, Request, Response, Router

API = "/genesys/api/v2"
SESSION_COOKIE = "JSESSIONID"
CSRF_HEADER = "X-CSRF-TOKEN"
SESSION_IDLE_SECONDS = 4 * 3600
SESSION_SWEEP_SECONDS = 60.0
VERSION = "8.5.200.50"
VOICE_ENVIRONMENT = uuid.uuid5(uuid.NAMESPACE_URL, "switchboard-simulator")

# Capability lists as the seeds show them, in their order (order carries no meaning).
RINGING_CAPABILITIES = ("UpdateUserData", "DeleteUserData", "AttachUserData", "DeleteUserDataPair", "Answer")
DIALING_CAPABILITIES = (
    "UpdateUserData",
    "DeleteUserData",
    "Hangup",
    "SendDtmf",
    "AttachUserData",
    "DeleteUserDataPair",
)
ESTABLISHED_CAPABILITIES = (
    "UpdateUserData",
    "SingleStepConference",
    "DeleteUserData",
    "Hangup",
    "SendDtmf",
    "Hold",
    "AttachUserData",
    "SingleStepTransfer",
    "InitiateConference",
    "DeleteUserDataPair",
    "InitiateTransfer",
)
CONFERENCE_CAPABILITIES = (
    "UpdateUserData",
    "SendDtmf",
    "InitiateConference",
    "Hold",
    "SingleStepTransfer",
    "InitiateTransfer",
    "RemoveParticipantFromConference",
    "AttachUserData",
    "DeleteUserDataPair",
    "SingleStepConference",
    "DeleteUserData",
    "MuteCall",
    "Hangup",
)
HELD_CAPABILITIES = (
    "UpdateUserData",
    "SingleStepConference",
    "DeleteUserData",
    "Hangup",
    "Retrieve",
    "AttachUserData",
    "SingleStepTransfer",
    "InitiateConference",
    "DeleteUserDataPair",
    "InitiateTransfer",
)

# Operations the Voice API defines but the simulated site never offers (queue-delivered calls,
# recording, outbound preview): a request for one is refused like any operation the call's
# capabilities lack, not as an unknown name.
NEVER_OFFERED = frozenset(
    {
        "Reject",
        "StartCallRecording",
        "StopCallRecording",
        "PauseCallRecording",
        "ResumeCallRecording",
        "Accept",
        "Decline",
        "SetCallDisposition",
    }
)

# The switch operation of each mode on a monitoring call, and the device operation starting it.
SWITCH_TO = {LISTEN_IN: "SwitchToListenIn", COACH: "SwitchToCoach", BARGE_IN: "SwitchToBargeIn"}
MONITORING_MODES = {"NextCall": False, "AllCalls": True}
SUPERVISOR_ROLE = "ROLE_SUPERVISOR"

USER_STATES: dict[str, dict[str, str]] = {
    "Ready": {"id": "9430250E-0A1B-421F-B372-F29E69366DED", "displayName": "Ready", "state": "Ready"},
    "NotReady": {
        "id": "900D55CC-2BB0-431F-8BF9-D3525B383BE6",
        "displayName": "Not Ready",
        "state": "NotReady",
    },
    "AfterCallWork": {
        "id": "D3663509-3D82-4DD3-A82E-2EA8EFA02AEF",
        "displayName": "AfterCallWork",
        "state": "NotReady",
        "workMode": "AfterCallWork",
    },
    "AuxWork": {
        "id": "2B36138D-C564-4562-A8CB-3C32D564F296",
        "displayName": "AuxWork",
        "state": "NotReady",
        "workMode": "AuxWork",
    },
    "LoggedOut": {
        "id": "6A0F1B8E-1D3C-4F52-9E0B-6A2C0E1D7F10",
        "displayName": "Logged Out",
        "state": "LoggedOut",
    },
}
AGENT_STATE_OPERATIONS = ("Ready", "NotReady", "AfterCallWork", "AuxWork")
# What a supervisor may set on another user's voice channel.
REMOTE_STATE_OPERATIONS = (*AGENT_STATE_OPERATIONS, "Logout")


def monitoring_capabilities(view: CallView) -> list[str]:
    """A supervisor's monitoring call (spec §7.2 "Supervisor monitoring call")."""
    caps = ["Hangup", *(SWITCH_TO[mode] for mode in MONITOR_MODES if mode != view.monitoring)]
    caps.append("UnmuteMonitoredUser" if view.monitored_muted else "MuteMonitoredUser")
    return caps


def capabilities(view: CallView) -> list[str]:
    """The operations a call offers to this agent now (``../shared/spec/genesys.md`` §7.2, seeds first)."""
    if view.state == RELEASED:
        return []
    if view.monitoring:
        return monitoring_capabilities(view)
    if view.state == RINGING:
        return list(RINGING_CAPABILITIES)
    if view.state == HELD:
        return list(HELD_CAPABILITIES)
    completes: list[str] = []
    if view.partner_held:
        if view.consult_kind == TRANSFER or (view.consult_kind is None and view.state == DIALING):
            completes = ["CompleteTransfer"]
        elif view.consult_kind == CONFERENCE:
            completes = ["CompleteConference"]
        else:
            completes = ["CompleteTransfer", "CompleteConference"]
    if view.state == DIALING:
        base = list(DIALING_CAPABILITIES)
        return base[:3] + (["SwapCalls", *completes] if view.partner_held else []) + base[3:]
    caps = list(CONFERENCE_CAPABILITIES if view.conference else ESTABLISHED_CAPABILITIES)
    if view.conference and view.muted:
        caps[caps.index("MuteCall")] = "UnmuteCall"
    elif view.muted:
        caps.append("UnmuteCall")
    if view.partner_held:
        caps += ["SwapCalls", *completes]
    return caps


@dataclass(slots=True)
class Session:
    id: str
    login: str
    csrf: str
    seen: float = field(default_factory=time.monotonic)


def _error(status: int, code: int, message: str) -> HttpError:
    return HttpError(status, {"statusCode": code, "statusMessage": message})


def _ok(**extra: Any) -> Response:
    return Response(body={"statusCode": 0, **extra})


def _phone_number(body: dict[str, Any], name: str = "destination") -> str:
    value = body.get(name)
    number = value.get("phoneNumber") if isinstance(value, dict) else None
    if not isinstance(number, str) or not number.strip():
        raise _error(400, 1, f'{name}.phoneNumber is required, as {{"{name}": {{"phoneNumber": "5001"}}}}')
    return number.strip()


def _user_data(body: dict[str, Any], *, required: bool = False) -> dict[str, Any]:
    value = body.get("userData")
    if value is None and not required:
        return {}
    if not isinstance(value, dict) or (required and not value):
        raise _error(400, 1, "userData is required: a JSON object of key/value pairs")
    for key, item in value.items():
        if not key or not isinstance(item, str | int | float) or isinstance(item, bool):
            raise _error(400, 10, f"userData value for {key!r} must be a string or a number")
    return value


def _string(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise _error(400, 1, f"{name} is required")
    return value


def _call_id_from_uri(uri: Any, name: str) -> str:
    if not isinstance(uri, str) or not uri.strip("/"):
        raise _error(400, 10, f"{name} must be the URI of a call")
    return uri.rstrip("/").rsplit("/", 1)[-1]


class GenesysDialect:
    """The Genesys surface over one switch; CometD notifications go out through ``bayeux``."""

    def __init__(self, switch: Switch, bayeux: BayeuxServer) -> None:
        self.switch = switch
        self.bayeux = bayeux
        self.sessions: dict[str, Session] = {}
        # Each agent's sessions: an agent's notifications go to its own, not through every agent's.
        self._sessions_of: dict[str, set[str]] = {}
        self._swept = time.monotonic()
        self.bases: dict[str, str] = {}
        switch.listeners.append(self.on_switch_event)

    # -- wire format ---------------------------------------------------------------------

    def base(self, agent: Agent) -> str:
        return self.bases.get(agent.login, "http://127.0.0.1:8090" + API)

    @staticmethod
    def user_id(agent: Agent) -> str:
        return uuid.uuid5(uuid.NAMESPACE_URL, agent.login).hex

    def call_resource(self, agent: Agent, view: CallView) -> dict[str, Any]:
        base = self.base(agent)
        resource: dict[str, Any] = {
            "id": view.call_id,
            "state": view.state,
            "callUuid": view.call_id,
            "connId": view.conn_id,
            "deviceUri": f"{base}/devices/{agent.device_id}",
            "participants": [
                {"e164Number": "", "formattedPhoneNumber": n, "phoneNumber": n, "digits": n}
                for n in (*view.participants, *view.bargers)
            ],
            "dnis": view.dnis,
            "callType": view.call_type,
            "capabilities": capabilities(view),
        }
        if view.parent_id:
            resource["parentCallUri"] = f"{base}/me/calls/{view.parent_id}"
        if view.user_data:
            resource["userData"] = dict(view.user_data)
        resource.update(
            {
                "duration": str(view.duration),
                "mute": "On" if view.muted or view.monitoring == LISTEN_IN else "Off",
                "supervisorListeningIn": bool(view.monitored_by),
                "monitoredUserMuted": view.monitored_muted,
                "monitoring": bool(view.monitoring),
                "uri": f"{base}/me/calls/{view.call_id}",
                "path": f"/calls/{view.call_id}",
            }
        )
        if view.parent_id:
            resource["parentCallPath"] = f"/calls/{view.parent_id}"
        return resource

    def device_resource(self, agent: Agent) -> dict[str, Any]:
        user_state = dict(USER_STATES.get(agent.state, USER_STATES["NotReady"]))
        if agent.state == "NotReady" and agent.reason:
            user_state.update({"reason": agent.reason, "workMode": "AuxWork"})
        device: dict[str, Any] = {
            "id": agent.device_id,
            "deviceState": "Active" if agent.logged_in else "Inactive",
            "userState": user_state,
            "phoneNumber": agent.dn,
            "e164Number": agent.dn,
            "telephonyNetwork": "Private",
            "doNotDisturb": "On" if agent.do_not_disturb else "Off",
            "voiceEnvironmentUri": f"{self.base(agent)}/voice-environments/{VOICE_ENVIRONMENT}",
            "capabilities": [
                "ForwardCallsOff" if agent.forward_to else "ForwardCallsOn",
                "DoNotDisturbOff" if agent.do_not_disturb else "DoNotDisturbOn",
            ],
        }
        if agent.forward_to:
            device["forwardTo"] = agent.forward_to
        monitor = self.switch.monitors.get(agent.login)
        if agent.supervisor and agent.logged_in:
            device["capabilities"] += ["CancelSupervisorMonitoring"] if monitor else list(MONITOR_MODES)
        if monitor is not None:
            target = self.switch.agents.get(monitor.target)
            device["supervisorMonitoringState"] = {
                "state": monitor.mode,
                "mode": "AllCalls" if monitor.all_calls else "NextCall",
                "scope": monitor.scope,
                "targetDeviceUri": f"{self.base(agent)}/devices/{target.device_id if target else ''}",
            }
        return device

    def call_message(self, agent: Agent, view: CallView, notification_type: str) -> dict[str, Any]:
        return {
            "notificationType": notification_type,
            "call": self.call_resource(agent, view),
            "phoneNumber": agent.dn,
            "extensions": {"WrapUpTime": 0, "BusinessCall": 0},
            "messageType": "CallStateChangeMessage",
        }

    def on_switch_event(self, event: SwitchEvent) -> None:
        if isinstance(event, MonitorEvent):
            # The supervisor's device shows the monitoring; the parties learn of it from their calls.
            supervisor = self.switch.agents.get(event.monitor.supervisor)
            if supervisor is not None and supervisor.dialect == "genesys":
                self._publish_device(supervisor)
            return
        agent = event.agent
        if agent.dialect != "genesys":
            return
        if isinstance(event, CallEvent):
            self._publish(
                agent, "/v2/me/calls", self.call_message(agent, event.view, event.notification_type)
            )
        else:
            self._publish_device(agent)
            channels = {
                "messageType": "ChannelStateChangeMessageV2",
                "channels": [
                    {
                        "channel": "voice",
                        "dndState": "Off",
                        "userState": self.device_resource(agent)["userState"],
                    }
                ],
            }
            self._publish(agent, "/v2/me/channels", channels)

    def _publish_device(self, agent: Agent) -> None:
        devices = {"messageType": "DeviceStateChangeMessage", "devices": [self.device_resource(agent)]}
        self._publish(agent, "/v2/me/devices", devices)

    def _publish(self, agent: Agent, channel: str, data: dict[str, Any]) -> None:
        for session_id in list(self._sessions_of.get(agent.login, ())):
            self.bayeux.publish(session_id, channel, data)

    # -- sessions ------------------------------------------------------------------------

    def authenticate(self, request: Request) -> tuple[Session, Agent, bool]:
        """The request's session and agent; HTTP Basic opens a new session. Returns whether it is new."""
        now = time.monotonic()
        session = self.sessions.get(request.cookies.get(SESSION_COOKIE, ""))
        credentials = request.basic_auth()
        if credentials and (session is None or session.login != credentials[0]):
            agent = self.switch.agents.get(credentials[0])
            if (
                agent is None
                or agent.dialect != "genesys"
                or not secrets.compare_digest(agent.password.encode(), credentials[1].encode())
            ):
                raise HttpError(
                    401,
                    {"statusCode": 20, "statusMessage": "Access denied: bad user name or password"},
                    {"WWW-Authenticate": 'Basic realm="Genesys Web Services"'},
                )
            self._expire_sessions(now)
            session = Session(id=secrets.token_hex(16), login=agent.login, csrf=str(uuid.uuid4()))
            self.sessions[session.id] = session
            self._sessions_of.setdefault(agent.login, set()).add(session.id)
            fresh = True
        elif session is None:
            raise HttpError(
                401,
                {"statusCode": 20, "statusMessage": "User is not authenticated"},
                {"WWW-Authenticate": 'Basic realm="Genesys Web Services"'},
            )
        else:
            fresh = False
        agent = self.switch.agents.get(session.login)
        if agent is None:
            self._forget(session.id)
            raise _error(401, 20, "User is not authenticated")
        session.seen = now
        self.bases[agent.login] = request.base_url + API
        return session, agent, fresh

    def _expire_sessions(self, now: float) -> None:
        """Sessions idle for ``SESSION_IDLE_SECONDS`` end, looked for once a ``SESSION_SWEEP_SECONDS``
        at most: on every sign-in, thousands of agents signing in would go through all the others."""
        if now - self._swept < SESSION_SWEEP_SECONDS:
            return
        self._swept = now
        for key in [k for k, s in self.sessions.items() if now - s.seen > SESSION_IDLE_SECONDS]:
            self.invalidate(key)

    def reset(self) -> None:
        """A restarted server knows no session: every client must authenticate again."""
        for key in list(self.sessions):
            self.invalidate(key)

    def invalidate(self, session_id: str) -> None:
        self._forget(session_id)
        self.bayeux.drop_principal(session_id)

    def _forget(self, session_id: str) -> None:
        session = self.sessions.pop(session_id, None)
        if session is None:
            return
        ids = self._sessions_of.get(session.login, set())
        ids.discard(session_id)
        if not ids:
            self._sessions_of.pop(session.login, None)

    # -- routing -------------------------------------------------------------------------

    def routes(self, router: Router) -> None:
        def authed(handler: Callable[[Request, Session, Agent], Awaitable[Response]]) -> Any:
            async def wrapper(request: Request) -> Response:
                session, agent, fresh = self.authenticate(request)
                if request.method in ("POST", "PUT", "DELETE") and not request.path.startswith(
                    API + "/notifications"
                ):
                    token = request.headers.get(CSRF_HEADER.lower(), "")
                    if fresh or not secrets.compare_digest(token.encode(), session.csrf.encode()):
                        raise HttpError(
                            403,
                            {"statusCode": 3, "statusMessage": "Missing or invalid Csrf token"},
                            self._session_headers(session),
                        )
                response = await handler(request, session, agent)
                response.headers.update(self._session_headers(session))
                if fresh:
                    response.cookies[SESSION_COOKIE] = session.id
                return response

            return wrapper

        router.add("GET", API + "/diagnostics/version", self.version)
        router.add("GET", API + "/me", authed(self.get_me))
        router.add("POST", API + "/me", authed(self.post_me))
        router.add("GET", API + "/me/devices", authed(self.get_devices))
        router.add("GET", API + "/me/devices/{device_id}", authed(self.get_device))
        router.add("POST", API + "/me/devices/{device_id}", authed(self.post_device))
        router.add("POST", API + "/me/devices/{device_id}/calls", authed(self.dial))
        router.add("GET", API + "/me/calls", authed(self.get_calls))
        router.add("GET", API + "/me/calls/{call_id}", authed(self.get_call))
        router.add("POST", API + "/me/calls/{call_id}", authed(self.post_call))
        router.add("GET", API + "/me/channels", authed(self.get_channels))
        router.add("POST", API + "/me/channels/{channel}", authed(self.post_channel))
        router.add("GET", API + "/settings/agent-states", authed(self.agent_states))
        router.add("GET", API + "/users", authed(self.get_users))
        router.add("GET", API + "/users/{user_id}", authed(self.get_user))
        router.add("POST", API + "/users/{user_id}/channels/{channel}", authed(self.post_user_channel))
        router.add("POST", API + "/notifications", authed(self.notifications))
        router.add("POST", API + "/notifications/{meta}", authed(self.notifications))

    @staticmethod
    def _session_headers(session: Session) -> dict[str, str]:
        return {"X-CSRF-HEADER": CSRF_HEADER, CSRF_HEADER: session.csrf}

    # -- handlers ------------------------------------------------------------------------

    async def version(self, request: Request) -> Response:
        return _ok(version=VERSION)

    def _user(self, agent: Agent, base: str) -> dict[str, Any]:
        user_id = self.user_id(agent)
        return {
            "id": user_id,
            "userName": agent.login,
            "firstName": agent.login,
            "lastName": "",
            "roles": ["ROLE_AGENT", SUPERVISOR_ROLE] if agent.supervisor else ["ROLE_AGENT"],
            "enabled": True,
            "changePasswordOnFirstLogin": False,
            "uri": f"{base}/users/{user_id}",
            "path": f"/users/{user_id}",
        }

    async def get_me(self, request: Request, session: Session, agent: Agent) -> Response:
        user = self._user(agent, self.base(agent))
        if request.query.get("subresources"):
            user["devices"] = [self.device_resource(agent)]
            user["calls"] = self._calls(agent)
            user["channels"] = [self._channel(agent)]
            user["features"] = [{"id": "api-voice"}]
            if agent.supervisor:
                user["features"].append({"id": "api-supervisor-monitoring"})
            user["settings"] = {}
        return _ok(user=user)

    # -- users (supervisors) -------------------------------------------------------------------

    def _users(self) -> list[Agent]:
        return [a for a in self.switch.agents.values() if a.dialect == "genesys"]

    def _other_user(self, user_id: str) -> Agent:
        user = next((a for a in self._users() if self.user_id(a) == user_id), None)
        if user is None:
            raise _error(404, 6, f"User {user_id} not found")
        return user

    def _user_with(self, request: Request, user: Agent, base: str) -> dict[str, Any]:
        """A user as a supervisor reads it, with its device and channel when ``subresources`` asks."""
        resource = self._user(user, base)
        if request.query.get("subresources"):
            resource["devices"] = [self.device_resource(user)]
            resource["channels"] = [self._channel(user)]
        return resource

    async def get_users(self, request: Request, session: Session, agent: Agent) -> Response:
        base = self.base(agent)
        users = self._users()
        if request.query.get("userName"):
            users = [a for a in users if a.login == request.query["userName"][0]]
        if request.query.get("phoneNumber"):
            users = [a for a in users if a.dn == request.query["phoneNumber"][0]]
        if "fields" in request.query:
            return _ok(users=[self._user_with(request, user, base) for user in users])
        return _ok(uris=[f"{base}/users/{self.user_id(user)}" for user in users])

    async def get_user(self, request: Request, session: Session, agent: Agent) -> Response:
        user = self._other_user(request.params["user_id"])
        return _ok(user=self._user_with(request, user, self.base(agent)))

    @staticmethod
    def _require_supervisor(agent: Agent) -> None:
        if not agent.supervisor:
            raise _error(403, 5, f"User {agent.login} does not have permission to perform this operation")

    async def post_user_channel(self, request: Request, session: Session, agent: Agent) -> Response:
        """A supervisor sets another user's agent state; that user's sessions are told as usual."""
        self._require_supervisor(agent)
        user = self._other_user(request.params["user_id"])
        if request.params["channel"] != "voice":
            raise _error(404, 6, f"Channel {request.params['channel']} not found")
        body = self._body(request)
        name = self._operation(body)
        if name not in REMOTE_STATE_OPERATIONS:
            raise _error(400, 10, f"Unknown agent state operation {name!r}")
        try:
            if name == "Logout":
                if not user.logged_in:
                    raise SwitchError(f"User {user.login} is not logged in")
                self.switch.logout(user)
            else:
                self._set_state(user, name, body)
        except SwitchError as exc:
            raise _error(400, 2, str(exc)) from exc
        return _ok()

    def _calls(self, agent: Agent) -> list[dict[str, Any]]:
        return [
            self.call_resource(agent, self.switch.view(agent, c)) for c in self.switch.visible_calls(agent)
        ]

    def _channel(self, agent: Agent) -> dict[str, Any]:
        return {
            "channel": "voice",
            "phoneNumber": agent.dn,
            "switchName": "SIM_Switch",
            "userActivity": "Busy" if self.switch.visible_calls(agent) else "Idle",
            "dndState": "On" if agent.do_not_disturb else "Off",
            "userState": self.device_resource(agent)["userState"],
        }

    async def get_devices(self, request: Request, session: Session, agent: Agent) -> Response:
        if "fields" in request.query:
            return _ok(devices=[self.device_resource(agent)])
        return _ok(uris=[f"{self.base(agent)}/devices/{agent.device_id}"])

    def _own_device(self, agent: Agent, device_id: str) -> None:
        if device_id != agent.device_id:
            raise _error(404, 6, f"Device {device_id} not found")

    async def get_device(self, request: Request, session: Session, agent: Agent) -> Response:
        self._own_device(agent, request.params["device_id"])
        return _ok(device=self.device_resource(agent))

    async def get_calls(self, request: Request, session: Session, agent: Agent) -> Response:
        if "fields" in request.query:
            return _ok(calls=self._calls(agent))
        return _ok(uris=[f"{self.base(agent)}/me/calls/{c.id}" for c in self.switch.visible_calls(agent)])

    async def get_call(self, request: Request, session: Session, agent: Agent) -> Response:
        call = self._own_call(agent, request.params["call_id"])
        return _ok(call=self.call_resource(agent, self.switch.view(agent, call)))

    async def get_channels(self, request: Request, session: Session, agent: Agent) -> Response:
        return _ok(channels=[self._channel(agent)])

    async def agent_states(self, request: Request, session: Session, agent: Agent) -> Response:
        settings = [
            {**USER_STATES[name], "operationName": name, "name": name} for name in AGENT_STATE_OPERATIONS
        ]
        return Response(body={"statusCode": 0, "settings": settings})

    async def notifications(self, request: Request, session: Session, agent: Agent) -> Response:
        return await self.bayeux.handle(request, session.id)

    @staticmethod
    def _body(request: Request) -> dict[str, Any]:
        body = request.json()
        if not isinstance(body, dict):
            raise _error(400, 10, "The request body must be a JSON object")
        return body

    @staticmethod
    def _operation(body: dict[str, Any]) -> str:
        name = body.get("operationName")
        if not isinstance(name, str) or not name:
            raise _error(400, 1, "operationName is required")
        return name

    async def post_me(self, request: Request, session: Session, agent: Agent) -> Response:
        body = self._body(request)
        name = self._operation(body)
        try:
            if name == "StartContactCenterSession":
                channels = body.get("channels", ["voice"])
                if not isinstance(channels, list) or "voice" not in channels:
                    raise _error(400, 10, 'channels must be a list that includes "voice"')
                self.switch.login(agent, place=str(body.get("place") or ""))
            elif name == "EndContactCenterSession":
                self.switch.logout(agent)
                self.invalidate(session.id)
            elif name in AGENT_STATE_OPERATIONS:
                self._set_state(agent, name, body)
            else:
                raise _error(400, 10, f"Unknown operationName {name!r} for /me")
        except SwitchError as exc:
            raise _error(400, 2, str(exc)) from exc
        return _ok()

    async def post_channel(self, request: Request, session: Session, agent: Agent) -> Response:
        if request.params["channel"] != "voice":
            raise _error(404, 6, f"Channel {request.params['channel']} not found")
        body = self._body(request)
        name = self._operation(body)
        if name not in AGENT_STATE_OPERATIONS:
            raise _error(400, 10, f"Unknown agent state operation {name!r}")
        try:
            self._set_state(agent, name, body)
        except SwitchError as exc:
            raise _error(400, 2, str(exc)) from exc
        return _ok()

    def _set_state(self, agent: Agent, name: str, body: dict[str, Any]) -> None:
        reason = body.get("reasonCode", body.get("reason", ""))
        if not isinstance(reason, str) or len(reason) > 64:
            raise _error(400, 10, "reasonCode must be a string of at most 64 characters")
        self.switch.set_state(agent, name, reason if name == "NotReady" else "")

    async def post_device(self, request: Request, session: Session, agent: Agent) -> Response:
        self._own_device(agent, request.params["device_id"])
        body = self._body(request)
        name = self._operation(body)
        if name in (*MONITOR_MODES, "CancelSupervisorMonitoring"):
            self._supervise(agent, name, body)
            return _ok()
        try:
            if name in ("DoNotDisturbOn", "DoNotDisturbOff"):
                self.switch.set_device(agent, do_not_disturb=name == "DoNotDisturbOn")
            elif name == "ForwardCallsOn":
                destination = body.get("destination")
                if not isinstance(destination, str) or not destination:
                    raise _error(400, 1, 'destination is required, as {"destination": "5001"}')
                self.switch.set_device(agent, forward_to=destination)
            elif name == "ForwardCallsOff":
                self.switch.set_device(agent, forward_to="")
            else:
                raise _error(400, 10, f"Unknown device operation {name!r}")
        except SwitchError as exc:
            raise _error(400, 2, str(exc)) from exc
        return _ok()

    def _supervise(self, agent: Agent, name: str, body: dict[str, Any]) -> None:
        """ListenIn, Coach, BargeIn and CancelSupervisorMonitoring on the supervisor's device."""
        self._require_supervisor(agent)
        if name not in self.device_resource(agent)["capabilities"]:
            raise _error(400, 2, f"{name} is not available on device {agent.device_id} now")
        try:
            if name == "CancelSupervisorMonitoring":
                self.switch.stop_supervising(agent)
                return
            target_uri = body.get("targetDeviceUri")
            if not isinstance(target_uri, str) or not target_uri.strip("/"):
                raise _error(400, 1, "targetDeviceUri is required: the device URI of the agent to monitor")
            device_id = target_uri.rstrip("/").rsplit("/", 1)[-1]
            target = next((a for a in self._users() if a.device_id == device_id), None)
            if target is None:
                raise _error(404, 6, f"Device {device_id} not found")
            scope = body.get("supervisorMonitoringScope", "Call")
            if scope not in MONITOR_SCOPES:
                raise _error(400, 10, f"supervisorMonitoringScope must be one of {', '.join(MONITOR_SCOPES)}")
            mode = body.get("supervisorMonitoringMode", "NextCall")
            if mode not in MONITORING_MODES:
                raise _error(400, 10, "supervisorMonitoringMode must be NextCall or AllCalls")
            self.switch.supervise(agent, target, name, scope=scope, all_calls=MONITORING_MODES[mode])
        except SwitchError as exc:
            raise _error(400, 2, str(exc)) from exc

    async def dial(self, request: Request, session: Session, agent: Agent) -> Response:
        self._own_device(agent, request.params["device_id"])
        body = self._body(request)
        if self._operation(body) != "Dial":
            raise _error(400, 10, "The only operation on a device's calls is Dial")
        destination = _phone_number(body)
        user_data = _user_data(body)
        if not agent.logged_in:
            raise _error(400, 2, "The agent is not logged in to a contact-center session")
        try:
            self.switch.dial(agent, destination, user_data)
        except SwitchError as exc:
            raise _error(400, 2, str(exc)) from exc
        return _ok()

    def _own_call(self, agent: Agent, call_id: str) -> Call:
        try:
            call = self.switch.call_for(agent, call_id)
        except SwitchError as exc:
            raise _error(404, 6, str(exc)) from exc
        if call not in self.switch.visible_calls(agent):
            raise _error(404, 6, f"Call {call_id} not found")
        return call

    async def post_call(self, request: Request, session: Session, agent: Agent) -> Response:
        call = self._own_call(agent, request.params["call_id"])
        body = self._body(request)
        name = self._operation(body)
        operation = CALL_OPERATIONS.get(name)
        if operation is None and name not in NEVER_OFFERED:
            raise _error(400, 10, f"Unknown operationName {name!r}")
        view = self.switch.view(agent, call)
        if name not in capabilities(view):
            raise _error(400, 2, f"{name} is not available for call {call.id} in state {view.state}")
        assert operation is not None
        try:
            operation(self, agent, call, body)
        except SwitchError as exc:
            raise _error(404 if exc.not_found else 400, 6 if exc.not_found else 2, str(exc)) from exc
        return _ok()

    def _check_partner(self, agent: Agent, call: Call, body: dict[str, Any], name: str) -> None:
        if body.get(name) is None:
            return
        other = self.switch.call_for(agent, _call_id_from_uri(body[name], name))
        if other.id == call.id or self.switch.view(agent, call).partner_id != other.id:
            raise SwitchError(f"{name} does not name the other call of this transfer or conference")


def _merge_pairs(body: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    # The switch keeps one value per key: AttachUserData on an existing key overwrites it, where
    # a real GWS would keep a duplicate key that every client then has to disambiguate.
    pairs = _user_data(body, required=True)
    return lambda data: data.update(pairs)


def _delete_pair(body: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    key = _string(body, "key")

    def change(data: dict[str, Any]) -> None:
        if key not in data:
            raise SwitchError(f"The call has no attached data with key {key!r}")
        del data[key]

    return change


def _complete(kind: str) -> Callable[[GenesysDialect, Agent, Call, dict[str, Any]], None]:
    def run(dialect: GenesysDialect, agent: Agent, call: Call, body: dict[str, Any]) -> None:
        dialect._check_partner(agent, call, body, "consultCallUri")
        if kind == TRANSFER:
            dialect.switch.complete_transfer(agent, call)
        else:
            dialect.switch.complete_conference(agent, call)

    return run


# An operation's result (a new call, for some) is announced by the switch, not returned.
CALL_OPERATIONS: dict[str, Callable[[GenesysDialect, Agent, Call, dict[str, Any]], object]] = {
    "Answer": lambda d, a, c, b: d.switch.answer(a, c),
    "Hangup": lambda d, a, c, b: d.switch.hangup(a, c),
    "Hold": lambda d, a, c, b: d.switch.hold(a, c),
    "Retrieve": lambda d, a, c, b: d.switch.retrieve(a, c),
    "InitiateTransfer": lambda d, a, c, b: d.switch.initiate(a, c, _phone_number(b), TRANSFER, _user_data(b)),
    "InitiateConference": lambda d, a, c, b: d.switch.initiate(
        a, c, _phone_number(b), CONFERENCE, _user_data(b)
    ),
    "CompleteTransfer": _complete(TRANSFER),
    "CompleteConference": _complete(CONFERENCE),
    "SingleStepTransfer": lambda d, a, c, b: d.switch.single_step_transfer(
        a, c, _phone_number(b), _user_data(b)
    ),
    "SingleStepConference": lambda d, a, c, b: d.switch.single_step_conference(
        a, c, _phone_number(b), _user_data(b)
    ),
    "SwapCalls": lambda d, a, c, b: d.switch.swap(
        a, c, _call_id_from_uri(b["otherCallUri"], "otherCallUri") if b.get("otherCallUri") else None
    ),
    "SendDtmf": lambda d, a, c, b: d.switch.send_dtmf(a, c, _string(b, "digits")),
    "AttachUserData": lambda d, a, c, b: d.switch.change_user_data(a, c, _merge_pairs(b)),
    "UpdateUserData": lambda d, a, c, b: d.switch.change_user_data(a, c, _merge_pairs(b)),
    "DeleteUserData": lambda d, a, c, b: d.switch.change_user_data(a, c, lambda data: data.clear()),
    "DeleteUserDataPair": lambda d, a, c, b: d.switch.change_user_data(a, c, _delete_pair(b)),
    "RemoveParticipantFromConference": lambda d, a, c, b: d.switch.remove_participant(
        a, c, _string(b, "participant")
    ),
    "MuteCall": lambda d, a, c, b: d.switch.set_mute(a, c, True),
    "UnmuteCall": lambda d, a, c, b: d.switch.set_mute(a, c, False),
    "SwitchToListenIn": lambda d, a, c, b: d.switch.change_monitoring(a, LISTEN_IN),
    "SwitchToCoach": lambda d, a, c, b: d.switch.change_monitoring(a, COACH),
    "SwitchToBargeIn": lambda d, a, c, b: d.switch.change_monitoring(a, BARGE_IN),
    "MuteMonitoredUser": lambda d, a, c, b: d.switch.mute_monitored(a, True),
    "UnmuteMonitoredUser": lambda d, a, c, b: d.switch.mute_monitored(a, False),
}
