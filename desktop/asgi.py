"""The desk's ASGI application: HTTP (with static files and the embedded simulator), WebSocket, workers.

Serve it with `python manage.py rundesk` or `daphne desktop.asgi:application`.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "desktop.settings")
# Sets up Django (apps, settings) before anything below imports models.
django_asgi_app = get_asgi_application()

from channels.routing import ChannelNameRouter, ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.core.exceptions import SuspiciousOperation  # noqa: E402
from django.http import HttpRequest, HttpResponseBase, HttpResponseNotFound  # noqa: E402
from django.utils.module_loading import import_string  # noqa: E402

from desktop.middleware import socket_auth_stack  # noqa: E402
from desktop.routing import channel_routes, websocket_urlpatterns  # noqa: E402
from desktop.sso import HeaderSsoWebSocketMiddleware  # noqa: E402

# As django-stubs spells Django's ASGI handler.
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Mapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class PrefixMount:
    """Sends requests under ``prefix`` to ``mounted``, everything else to ``default``.

    Per the ASGI spec (as WSGI's SCRIPT_NAME/PATH_INFO), the mounted app sees the prefix in
    ``root_path`` and the rest in ``path``, so it can build its own absolute URLs.
    """

    def __init__(self, prefix: str, mounted: ASGIApp, default: ASGIApp):
        self.prefix = "/" + prefix.strip("/")
        self.mounted = mounted
        self.default = default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if path == self.prefix or path.startswith(self.prefix + "/"):
            inner = dict(scope)
            inner["root_path"] = scope.get("root_path", "") + self.prefix
            inner["path"] = path[len(self.prefix) :] or "/"
            await self.mounted(inner, receive, send)
        else:
            await self.default(scope, receive, send)


class StaticFilesHandler(ASGIStaticFilesHandler):
    """Django's static files handler, answering a path that climbs out of the static directories
    (``/static/%2e%2e/...``) with a plain 404, where Django's would fail with a traceback."""

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        try:
            return await super().get_response_async(request)
        except SuspiciousOperation:
            return HttpResponseNotFound("Not found", content_type="text/plain; charset=utf-8")


def build_http_app(django_app: ASGIApp) -> ASGIApp:
    """Django behind the static files handler, and the simulator under /sim/ when it is enabled."""
    # django-stubs asks for Django's own handler; the static files handler wraps any ASGI app.
    app: ASGIApp = StaticFilesHandler(django_app)  # type: ignore[arg-type]
    if settings.SIMULATOR_ENABLED:
        simulator_app = import_string(settings.SIMULATOR_ASGI_FACTORY)(
            prefix="/sim",
            control_enabled=settings.SIMULATOR_CONTROL_ENABLED,
            answer_delay_ms=settings.SIMULATOR_ANSWER_DELAY_MS,
            control_token=settings.SIMULATOR_CONTROL_TOKEN,
        )
        app = PrefixMount("/sim", simulator_app, app)
    return app


class SameOriginValidator:
    """A WebSocket is accepted only from a page of this very desk: its ``Origin`` must equal the
    scheme, host and port the socket was opened on (or be one of ``CSRF_TRUSTED_ORIGINS``), as
    CSRF checks pages. Channels' own validator compares host names only."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if headers.get("origin", "") not in self.allowed(scope, headers):
            await send({"type": "websocket.close", "code": 4403})
            return
        await self.app(scope, receive, send)

    @staticmethod
    def allowed(scope: Scope, headers: dict[str, str]) -> set[str]:
        secure = scope.get("scheme") == "wss"
        proxy = settings.SECURE_PROXY_SSL_HEADER
        if proxy and headers.get(proxy[0].removeprefix("HTTP_").replace("_", "-").lower()) == proxy[1]:
            secure = True
        own = f"{'https' if secure else 'http'}://{headers.get('host', '')}"
        return {own, *settings.CSRF_TRUSTED_ORIGINS}


application = ProtocolTypeRouter(
    {
        "http": build_http_app(django_asgi_app),
        # The origin, the session, then the trusted-proxy rule of header SSO, as pages have it.
        "websocket": AllowedHostsOriginValidator(
            SameOriginValidator(
                socket_auth_stack(HeaderSsoWebSocketMiddleware(URLRouter(websocket_urlpatterns)))
            )
        ),
        "channel": ChannelNameRouter(channel_routes),
    }
)
