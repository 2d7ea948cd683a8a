"""Django's own middleware, with the hooks that do no I/O run inline on an async request; and the
desktop socket's sign-in check, on the pool of database threads.

On an async request Django runs every hook of a ``MiddlewareMixin`` in a thread (``sync_to_async``):
two thread hops for each middleware, each about half a millisecond on an idle process and more
on a busy one, a dozen of them for every click before the view starts. The hooks below only read
the request and set headers and cookies, so they run in the event loop; the two that may reach the
database (saving a changed session, storing messages) still run in a thread when they would.

A hook that touched the database inline would fail loudly (Django refuses a query from the event
loop), never silently.
"""

from __future__ import annotations

import functools
from typing import Any, cast

from asgiref.sync import sync_to_async
from channels import auth as channels_auth
from channels.sessions import CookieMiddleware
from channels.sessions import SessionMiddleware as SocketSessionMiddleware
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.http import HttpRequest, HttpResponseBase
from django.middleware import common, csrf, security

from calls.persist import in_parallel


class InlineHooks:
    """``MiddlewareMixin.__acall__``, with the hooks called directly; ``in_thread`` names the
    responses whose ``process_response`` must still run in a thread."""

    get_response: Any

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response: HttpResponseBase | None = None
        process_request = getattr(self, "process_request", None)
        if process_request is not None:
            response = process_request(request)
        response = response or await self.get_response(request)
        process_response = getattr(self, "process_response", None)
        if process_response is not None:
            if self.in_thread(request):
                response = await sync_to_async(process_response, thread_sensitive=True)(request, response)
            else:
                response = process_response(request, response)
        return cast(HttpResponseBase, response)

    def in_thread(self, request: HttpRequest) -> bool:
        return False


class SecurityMiddleware(InlineHooks, security.SecurityMiddleware):
    pass


class CommonMiddleware(InlineHooks, common.CommonMiddleware):
    pass


class CsrfViewMiddleware(InlineHooks, csrf.CsrfViewMiddleware):
    """The token is checked in the event loop: the form was parsed before (``RequestBodyMiddleware``)
    and the token is a cookie, not in the session (``CSRF_USE_SESSIONS`` is off)."""

    # Async, so Django calls it in the event loop instead of wrapping it in a thread.
    async def process_view(  # type: ignore[override]
        self, request: HttpRequest, callback: Any, callback_args: Any, callback_kwargs: Any
    ) -> HttpResponseBase | None:
        checked: HttpResponseBase | None = super().process_view(
            request, callback, callback_args, callback_kwargs
        )
        return checked


class SessionMiddleware(InlineHooks, sessions.SessionMiddleware):
    """Reading the cookie is inline; saving a changed session is a query, in a thread."""

    def in_thread(self, request: HttpRequest) -> bool:
        session = getattr(request, "session", None)
        return session is not None and (session.modified or settings.SESSION_SAVE_EVERY_REQUEST)


async def _auser(request: HttpRequest) -> Any:
    if not hasattr(request, "_acached_user"):
        request._acached_user = await sync_to_async(auth.get_user, thread_sensitive=True)(request)  # type: ignore[attr-defined]
    return request._acached_user  # type: ignore[attr-defined]


class AuthenticationMiddleware(InlineHooks, auth.AuthenticationMiddleware):
    """Only sets the user up lazily. ``request.auser()`` reads the session and then the user in one
    thread hop, where Django's takes one for each."""

    def process_request(self, request: HttpRequest) -> None:
        super().process_request(request)
        request.auser = functools.partial(_auser, request)


class MessageMiddleware(InlineHooks, messages.MessageMiddleware):
    """Messages are stored (in the cookie, or the session) only when a view added or read some."""

    def in_thread(self, request: HttpRequest) -> bool:
        storage = getattr(request, "_messages", None)
        return storage is not None and bool(storage.used or storage.added_new)


_socket_user = in_parallel(channels_auth.get_user.func)


class SocketAuthMiddleware(channels_auth.AuthMiddleware):  # type: ignore[misc]  # channels has no types
    """Channels' ``AuthMiddleware``, reading the session and the user on the pool of database
    threads (``calls.persist.in_parallel``). Channels' own read queues on the one thread that every
    socket of the process shares for its database work: a thousand tabs that reconnect at once (a
    daphne restart) would wait for each other there, past daphne's connect timeout."""

    async def resolve_scope(self, scope: dict[str, Any]) -> None:
        scope["user"]._wrapped = await _socket_user(scope)


def socket_auth_stack(inner: Any) -> Any:
    """Channels' ``AuthMiddlewareStack``, with ``SocketAuthMiddleware``."""
    return CookieMiddleware(SocketSessionMiddleware(SocketAuthMiddleware(inner)))
