"""The control API: how tests, demos and training scripts play the outside world.

Places calls from remote parties, answers and hangs up as them, changes the switch's timing and
the Huawei gateway's session timing, adds agents (supervisors too, with ``"supervisor": true``),
shows the whole switch (with its ``monitoring``: who supervises whom, in which mode, on which
call), resets it (dropping every notification session of both dialects), and injects faults.
Off unless enabled.

Any web page an agent visits could otherwise play the outside world too, so every request must:
come from no other site (a browser's ``Origin`` and ``Sec-Fetch-Site`` say; scripts send neither),
carry a JSON body as ``application/json`` (which no cross-site form can send without asking first),
and, when the simulator has a control token, name it (``Authorization: Bearer <token>``).
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from typing import Any

from .bayeux import BayeuxServer
from .genesys import GenesysDialect
from .huawei import TIMING_SETTINGS, HuaweiDialect
from .switch import Switch, SwitchError
from .web import Handler, HttpError, Request, Response, Router

MAX_FAULT_MS = 10 * 60 * 1000
SWITCH_SETTINGS = ("answer_delay_ms", "ringing_timeout_ms")


@dataclass(slots=True)
class Faults:
    """Fault injection for the vendor surfaces (never for the control API itself)."""

    http_status: int = 0
    http_status_until: float = 0.0
    delay_ms: int = 0
    delay_until: float = 0.0

    def status_now(self) -> int:
        return self.http_status if time.monotonic() < self.http_status_until else 0

    def delay_now(self) -> float:
        return self.delay_ms / 1000 if time.monotonic() < self.delay_until else 0.0

    def clear(self) -> None:
        self.http_status = self.delay_ms = 0
        self.http_status_until = self.delay_until = 0.0


def _bad(message: str) -> HttpError:
    return HttpError(400, {"error": message})


def _same_site(request: Request) -> bool:
    """Whether no browser says the request comes from another origin."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site.strip().lower() not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return origin.strip().rstrip("/").lower() == f"{request.scheme}://{request.host}".lower()


def _guarded(handler: Handler, token: str) -> Handler:
    async def guarded(request: Request) -> Response:
        if not _same_site(request):
            raise HttpError(403, {"error": "the control API refuses requests from other sites"})
        if token:
            offered = request.headers.get("authorization", "")
            scheme, _, value = offered.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
                raise HttpError(
                    401, {"error": "the control API needs its token"}, {"WWW-Authenticate": "Bearer"}
                )
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if request.body.strip() and media_type != "application/json":
            raise HttpError(415, {"error": "send the body as Content-Type: application/json"})
        return await handler(request)

    return guarded


def _body(request: Request) -> dict[str, Any]:
    try:
        body = request.json()
    except HttpError as exc:
        raise _bad(exc.body["statusMessage"]) from exc
    if not isinstance(body, dict):
        raise _bad("the body must be a JSON object")
    return body


def _number(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise _bad(f"{name} is required")
    return value


def _milliseconds(body: dict[str, Any], name: str, *, nullable: bool = False) -> int | None:
    value = body[name]
    if value is None and nullable:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_FAULT_MS:
        raise _bad(f"{name} must be a whole number of milliseconds from 0 to {MAX_FAULT_MS}")
    return value


class Control:
    def __init__(
        self,
        switch: Switch,
        bayeux: BayeuxServer,
        faults: Faults,
        huawei: HuaweiDialect,
        genesys: GenesysDialect,
        token: str = "",
    ) -> None:
        self.switch = switch
        self.bayeux = bayeux
        self.faults = faults
        self.huawei = huawei
        self.genesys = genesys
        self.token = token

    def routes(self, router: Router) -> None:
        for method, pattern, handler in (
            ("POST", "/control/calls", self.place_call),
            ("POST", "/control/parties/{number}/answer", self.answer),
            ("POST", "/control/parties/{number}/hangup", self.hangup),
            ("PUT", "/control/settings", self.settings),
            ("POST", "/control/directory", self.directory),
            ("GET", "/control/state", self.state),
            ("POST", "/control/reset", self.reset),
            ("POST", "/control/faults", self.inject),
        ):
            router.add(method, pattern, _guarded(handler, self.token))

    async def place_call(self, request: Request) -> Response:
        body = _body(request)
        origin, destination = _number(body, "from"), _number(body, "to")
        user_data = body.get("userData") or {}
        if not isinstance(user_data, dict):
            raise _bad("userData must be a JSON object")
        try:
            call = self.switch.place_call(origin, destination, user_data)
        except SwitchError as exc:
            raise _bad(str(exc)) from exc
        return Response(201, {"id": call.id})

    async def answer(self, request: Request) -> Response:
        return Response(body={"answered": self.switch.answer_party(request.params["number"])})

    async def hangup(self, request: Request) -> Response:
        return Response(body={"hungUp": self.switch.hangup_party(request.params["number"])})

    async def settings(self, request: Request) -> Response:
        """Validates every named setting before applying any; answers with each named setting as it now is."""
        body = _body(request)
        unknown = set(body) - {*SWITCH_SETTINGS, *TIMING_SETTINGS}
        if unknown:
            raise _bad(f"unknown settings: {', '.join(sorted(unknown))}")
        values = {name: _milliseconds(body, name, nullable=name == "answer_delay_ms") for name in body}
        if "answer_delay_ms" in values:
            self.switch.settings.answer_delay_ms = values["answer_delay_ms"]
        if "ringing_timeout_ms" in values:
            self.switch.settings.ringing_timeout_ms = values["ringing_timeout_ms"] or 0
        for name in TIMING_SETTINGS:
            if name in values:
                setattr(self.huawei.timing, name, values[name] or 0)
        settings = self._settings()
        return Response(body={name: settings[name] for name in body})

    def _settings(self) -> dict[str, Any]:
        return {**self.switch.state()["settings"], **self.huawei.timing_settings()}

    async def directory(self, request: Request) -> Response:
        """Adds an agent; ``"supervisor": true`` makes it a team lead (Genesys ``ROLE_SUPERVISOR``,
        a Huawei inspector) that may monitor other agents and set their state."""
        body = _body(request)
        supervisor = body.get("supervisor", False)
        if not isinstance(supervisor, bool):
            raise _bad("supervisor must be true or false")
        try:
            agent = self.switch.add_agent(
                _number(body, "login"),
                _number(body, "password"),
                _number(body, "dn"),
                body.get("dialect", "genesys"),
                supervisor=supervisor,
            )
        except SwitchError as exc:
            raise _bad(str(exc)) from exc
        return Response(
            201,
            {"login": agent.login, "dn": agent.dn, "dialect": agent.dialect, "supervisor": agent.supervisor},
        )

    async def state(self, request: Request) -> Response:
        """The switch as JSON; ``monitoring`` lists who monitors whom, in which mode, on which call."""
        return Response(body={**self.switch.state(), "settings": self._settings()})

    async def reset(self, request: Request) -> Response:
        # The gateway forgets its Guids before the switch forgets its agents, so no sign-out
        # event is generated for a session that no longer exists.
        self.huawei.reset()
        self.genesys.reset()
        self.bayeux.drop_all()
        self.switch.reset()
        self.faults.clear()
        return Response(body={"reset": True})

    async def inject(self, request: Request) -> Response:
        body = _body(request)
        unknown = set(body) - {"drop_cometd_sessions", "http_status", "for_ms", "delay_ms", "clear"}
        if unknown or not body:
            raise _bad(f"unknown or missing faults: {', '.join(sorted(unknown)) or 'none given'}")
        answer: dict[str, Any] = {}
        if body.get("clear"):
            self.faults.clear()
        if body.get("drop_cometd_sessions"):
            # Both dialects' notification sessions: Bayeux clients and Huawei Guids (with their queues).
            answer["dropped"] = self.bayeux.drop_all()
            answer["droppedGuids"] = self.huawei.drop_sessions()
        until = time.monotonic() + (_milliseconds(body, "for_ms") or 0) / 1000 if "for_ms" in body else None
        if "http_status" in body:
            status = body["http_status"]
            if not isinstance(status, int) or not 400 <= status <= 599:
                raise _bad("http_status must be an HTTP error status from 400 to 599")
            if until is None:
                raise _bad("http_status needs for_ms")
            self.faults.http_status, self.faults.http_status_until = status, until
        if "delay_ms" in body:
            self.faults.delay_ms = _milliseconds(body, "delay_ms") or 0
            self.faults.delay_until = until if until is not None else float("inf")
        return Response(body={"faults": answer or "set"})
