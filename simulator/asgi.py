"""The simulator as one plain ASGI application: Genesys dialect, CometD, control API.

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
from .switch import Switch
from .web import HttpError, Response, Router, read_request, send_response

log = logging.getLogger("switchboard.simulator")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class SimulatorApp:
    def __init__(self, *, prefix: str, control_enabled: bool, answer_delay_ms: int | None) -> None:
        self.prefix = prefix.rstrip("/")
        self.switch = Switch(answer_delay_ms=answer_delay_ms)
        self.bayeux = BayeuxServer()
        self.faults = Faults()
        self.genesys = GenesysDialect(self.switch, self.bayeux)
        self.router = Router()
        self.genesys.routes(self.router)
        self.control_enabled = control_enabled
        if control_enabled:
            Control(self.switch, self.bayeux, self.faults).routes(self.router)

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
        try:
            request = await read_request(scope, receive, scope["path"])
            response = await self._dispatch(request)
        except HttpError as exc:
            response = Response(exc.status, exc.body, exc.headers)
        except Exception:
            log.exception("simulator failed on %s %s", scope.get("method"), scope.get("path"))
            response = Response(500, {"statusCode": 4, "statusMessage": "Internal error in the simulator"})
        await send_response(send, response)

    async def _dispatch(self, request: Any) -> Response:
        handler, params, path_known = self.router.resolve(request.method, request.path)
        if handler is None:
            if path_known:
                raise HttpError(
                    405, {"statusCode": 3, "statusMessage": f"{request.method} is not allowed here"}
                )
            raise HttpError(404, {"statusCode": 6, "statusMessage": f"No resource at {request.path}"})
        request.params = params
        if request.path.startswith(API):
            delay = self.faults.delay_now()
            if delay:
                await asyncio.sleep(delay)
            status = self.faults.status_now()
            if status:
                raise HttpError(
                    status, {"statusCode": 4, "statusMessage": "Service unavailable (simulated fault)"}
                )
        return await handler(request)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.bayeux.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def build_app(
    *, prefix: str = "", control_enabled: bool = False, answer_delay_ms: int | None = 1500
) -> SimulatorApp:
    return SimulatorApp(prefix=prefix, control_enabled=control_enabled, answer_delay_ms=answer_delay_ms)
