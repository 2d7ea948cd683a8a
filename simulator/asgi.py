"""The simulator as one plain ASGI application: both dialects over one switch, and the control API.

Serves the Genesys Web Services API v2 (REST and CometD) under ``/genesys/api/v2``, the Huawei
CC-Gateway AgentGateway (REST and event polling) under ``/huawei/agentgateway/resource``, and the
control API under ``/control``. Owns what is common to the vendor surfaces: the prefix, the
injected faults, and how a failure is answered (Genesys status codes; Huawei's HTTP 200 with a
retcode, except for an injected HTTP status, which stands for a real outage).

``build_app`` is what the desk mounts under ``/sim`` (by dotted path from its settings, never
by import) and what ``manage.py voicesim`` serves on its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .bayeux import BayeuxServer
from .control import Control, Faults
from .genesys import API, GenesysDialect
from .huawei import HUAWEI_API, HuaweiDialect
from .switch import Switch
from .web import HttpError, Response, Router, read_request, send_response

log = logging.getLogger("switchboard.simulator")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class SimulatorApp:
    def __init__(
        self, *, prefix: str, control_enabled: bool, answer_delay_ms: int | None, control_token: str = ""
    ) -> None:
        self.prefix = prefix.rstrip("/")
        self.switch = Switch(answer_delay_ms=answer_delay_ms)
        self.bayeux = BayeuxServer()
        self.faults = Faults()
        self.genesys = GenesysDialect(self.switch, self.bayeux)
        self.huawei = HuaweiDialect(self.switch)
        self.router = Router()
        self.genesys.routes(self.router)
        self.huawei.routes(self.router)
        self.control_enabled = control_enabled
        if control_enabled:
            Control(
                self.switch, self.bayeux, self.faults, self.huawei, self.genesys, token=control_token
            ).routes(self.router)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope["path"]
        if self.prefix and (path == self.prefix or path.startswith(self.prefix + "/")):
            scope = {
                **scope,
                "path": path[len(self.prefix) :],
                "root_path": scope.get("root_path", "") + self.prefix,
            }
        huawei = _under(scope["path"], HUAWEI_API)
        try:
            request = await read_request(scope, receive, scope["path"])
            response = await self._dispatch(request)
        except HttpError as exc:
            if huawei:
                message = str(exc.body.get("statusMessage", ""))
                response = self.huawei.error_response(scope["path"], exc.status, message)
            else:
                response = Response(exc.status, exc.body, exc.headers)
        except Exception:
            # %r: the path is the client's, and must not be able to forge a log line.
            log.exception("simulator failed on %r %r", scope.get("method"), scope.get("path"))
            if huawei:
                response = self.huawei.error_response(scope["path"], 500, "Internal error in the simulator")
            else:
                response = Response(
                    500, {"statusCode": 4, "statusMessage": "Internal error in the simulator"}
                )
        await send_response(send, response)

    async def _dispatch(self, request: Any) -> Response:
        handler, params, path_known = self.router.resolve(request.method, request.path)
        if _under(request.path, API) or _under(request.path, HUAWEI_API):
            outage = await self._fault(request.path)
            if outage is not None:
                return outage
        if handler is None:
            if path_known:
                raise HttpError(
                    405, {"statusCode": 3, "statusMessage": f"{request.method} is not allowed here"}
                )
            raise HttpError(404, {"statusCode": 6, "statusMessage": f"No resource at {request.path}"})
        request.params = params
        return await handler(request)

    async def _fault(self, path: str) -> Response | None:
        """The injected delay, then the injected HTTP status: an outage answers every vendor path alike,
        Huawei's included (the one time a Huawei path answers other than HTTP 200)."""
        delay = self.faults.delay_now()
        if delay:
            await asyncio.sleep(delay)
        status = self.faults.status_now()
        if not status:
            return None
        message = "Service unavailable (simulated fault)"
        if _under(path, HUAWEI_API):
            return Response(status, {"message": message, "retcode": "100-007", "result": None})
        return Response(status, {"statusCode": 4, "statusMessage": message})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.bayeux.close()
                await self.huawei.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _under(path: str, base: str) -> bool:
    return path == base or path.startswith(base + "/")


def build_app(
    *,
    prefix: str = "",
    control_enabled: bool = False,
    answer_delay_ms: int | None = 1500,
    control_token: str = "",
) -> SimulatorApp:
    """``control_token``, when set, is what the control API requires (``Authorization: Bearer``)."""
    return SimulatorApp(
        prefix=prefix,
        control_enabled=control_enabled,
        answer_delay_ms=answer_delay_ms,
        control_token=control_token,
    )
