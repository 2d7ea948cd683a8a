"""The desk's HTTP hardening: response headers, the sliding idle timeout, and the rate limits in front
of the action views and the login forms.

``SecurityHeadersMiddleware`` goes first (right after Django's SecurityMiddleware) so that every
response Django makes carries the headers, then ``RequestBodyMiddleware``, which refuses an
oversized body before anything else reads it; ``DeskGuardMiddleware`` goes last, where the session,
the user and the CSRF check are already in place. Static files are served outside Django's
middleware (``desktop.asgi``) and keep their own caching.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast
from urllib.parse import urlsplit

from asgiref.sync import async_to_sync, iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.http.multipartparser import MultiPartParserError
from django.template import RequestContext, Template, TemplateDoesNotExist
from django.template.loader import get_template, render_to_string
from django.utils.cache import patch_cache_control

from calls import audit, ratelimit
from calls.db import database_sync_to_async
from calls.models import AgentLogin, AuditEntry

log = logging.getLogger("switchboard.security")

# The views behind the desk's controls (URL names in desktop/urls.py) and the forms that take a password.
ACTION_VIEWS = {"call-operation", "agent-operation", "dial", "call-disposition"}
LOGIN_VIEWS = {"login", "admin:login"}
# The idle timeout slides, but the session is written at most this often, not on every request.
IDLE_REFRESH_EVERY_S = 60
IDLE_REFRESHED_KEY = "_idle_refreshed"
# Where an action's claim waits for the response that decides whether to release it (as Django's
# CSRF middleware keeps its cookie in request.META).
CLAIMED_ACTION_KEY = "switchboard.claimed_action"

STORM_MESSAGE = "Too many actions at once: wait a few seconds, then try again."
LOCKED_MESSAGES = {
    "username": (
        "Too many failed sign-ins for this username. Try again in {wait}, or ask your supervisor to "
        "check your account."
    ),
    "address": "Too many failed sign-ins from your address. Try again in {wait}.",
}
# Used when no registration/locked_out.html template exists: the page shell and a sentence.
LOCKED_PAGE = (
    '{% extends "base.html" %}{% block title %}Sign-in paused · Switchboard{% endblock %}'
    '{% block body %}<main class="login"><h1><span class="logo" aria-hidden="true"></span>Switchboard</h1>'
    '<p role="alert" class="error">{{ message }}</p><p><a href="{{ login_url }}">Back to sign in</a></p>'
    "</main>{% endblock %}"
)


def form_targets() -> str:
    """'self', and the OpenID provider's logout endpoint when configured: browsers apply form-action
    to the redirect that answers the Sign out form's POST."""
    logout = urlsplit(getattr(settings, "OIDC_OP_LOGOUT_URL", "") or "")
    return f"'self' {logout.scheme}://{logout.netloc}" if logout.scheme and logout.netloc else "'self'"


def content_security_policy() -> str:
    """No inline script, no eval, nothing from elsewhere; framing only by FRAME_ANCESTORS."""
    ancestors = " ".join(settings.FRAME_ANCESTORS) or "'none'"
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            # 'self' covers the same-origin ws:/wss: WebSocket in CSP Level 3 browsers.
            "connect-src 'self'",
            "media-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            f"form-action {form_targets()}",
            f"frame-ancestors {ancestors}",
        ]
    )


GetResponse = Callable[[HttpRequest], HttpResponseBase | Awaitable[HttpResponseBase]]


class _Middleware:
    """Runs sync or async, whichever the handler is."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        raise NotImplementedError  # each middleware answers both ways itself

    # The handler is sync or async for the middleware's whole life, as is_async says.
    def handler_response(self, request: HttpRequest) -> HttpResponseBase:
        return cast(HttpResponseBase, self.get_response(request))

    async def ahandler_response(self, request: HttpRequest) -> HttpResponseBase:
        return await cast(Awaitable[HttpResponseBase], self.get_response(request))


class SecurityHeadersMiddleware(_Middleware):
    """CSP, framing, and ``Cache-Control: no-store`` on every response Django makes.

    Django's SecurityMiddleware (before this one) sends nosniff, the Referrer-Policy and COOP;
    this one replaces XFrameOptionsMiddleware: X-Frame-Options DENY when FRAME_ANCESTORS is
    'none', and none at all otherwise (it cannot name an allowed framer; CSP does).
    It also tells ``calls.audit`` the client's address for the request.
    """

    def __init__(self, get_response: GetResponse) -> None:
        super().__init__(get_response)
        self.policy = content_security_policy()
        self.deny_framing = list(settings.FRAME_ANCESTORS) in ([], ["'none'"])
        self.debug = settings.DEBUG

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.is_async:
            return self.__acall__(request)
        token = audit.remote_address.set(audit.request_address(request))
        try:
            return self.secure(self.handler_response(request))
        finally:
            audit.remote_address.reset(token)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        token = audit.remote_address.set(audit.request_address(request))
        try:
            return self.secure(await self.ahandler_response(request))
        finally:
            audit.remote_address.reset(token)

    def secure(self, response: HttpResponseBase) -> HttpResponseBase:
        # Django's DEBUG error pages are styled and scripted inline; only a developer sees them.
        if not (self.debug and response.status_code in (404, 500)):
            response.headers.setdefault("Content-Security-Policy", self.policy)
        if self.deny_framing and not getattr(response, "xframe_options_exempt", False):
            response.headers.setdefault("X-Frame-Options", "DENY")
        else:
            response.headers.pop("X-Frame-Options", None)
        # Pages and fragments show calls, numbers and attached data: keep them out of every cache,
        # the browser's back-forward cache and disk included.
        patch_cache_control(response, no_store=True)
        return response


class RequestBodyMiddleware(_Middleware):
    """Reads a form body once, up front, within Django's DATA_UPLOAD_MAX_* limits. A body too big
    (413), with too many fields or files, or a malformed multipart one (400) is answered here and
    logged as one warning line: otherwise whichever middleware reads it first (the CSRF check,
    before anyone is authenticated) makes Django log an ERROR with a traceback, for any client."""

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.is_async:
            return self.__acall__(request)
        return self.refuse(request) or self.handler_response(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        return self.refuse(request) or await self.ahandler_response(request)

    @staticmethod
    def refuse(request: HttpRequest) -> HttpResponse | None:
        if request.method not in ("POST", "PUT", "PATCH", "DELETE"):
            return None
        try:
            request.POST  # noqa: B018 (parsed once here, and kept on the request)
        except RequestDataTooBig:
            status, why = 413, "the request body is too large"
        except (TooManyFieldsSent, TooManyFilesSent):
            status, why = 400, "the request has too many fields"
        except MultiPartParserError:
            status, why = 400, "the request body is malformed"
        else:
            return None
        address = audit.request_address(request)
        log.warning("refused %r %r from %r: %s", request.method, request.path, address, why)
        return HttpResponse(f"Refused: {why}.", status=status, content_type="text/plain; charset=utf-8")


def _fingerprint(
    request: HttpRequest, view_name: str, view_kwargs: dict[str, Any], state: object = None
) -> str:
    """Which action this is: the view, its URL arguments and the form, but not the CSRF token; and
    ``state``, what it acts on as the desk has it, when it is not the call in the URL."""
    form = sorted(
        (key, tuple(request.POST.getlist(key))) for key in request.POST if key != "csrfmiddlewaretoken"
    )
    text = repr((view_name, sorted(view_kwargs.items()), form, state))
    return hashlib.sha256(text.encode()).hexdigest()


@database_sync_to_async
def _agent_state(user_id: int) -> object:
    """The agent's state and since when, as saved: a Login again after the switch logged the agent
    out (a restart) is a new action, not a double click, however soon it follows the first."""
    return (
        AgentLogin.objects.filter(user_id=user_id, enabled=True)
        .values_list("agent_state", "state_since")
        .first()
    )


def toast(message: str, status: int) -> HttpResponse:
    """A refusal the agent sees in ``#toasts``; the card itself is left to the server's truth."""
    return HttpResponse(render_to_string("desktop/toast.html", {"message": message}), status=status)


async def storm_refusal(user: Any, operation: str, call_id: str = "") -> HttpResponse:
    """An action beyond ACTION_RATE_LIMIT: audited, and answered 429 with a toast and when to try again."""
    await audit.arecord(
        action=operation, result=AuditEntry.REFUSED, user=user, call_id=call_id, message=STORM_MESSAGE
    )
    response = toast(STORM_MESSAGE, 429)
    response.headers["Retry-After"] = str(ratelimit.action_window_seconds())
    return response


def _locked_page(request: HttpRequest, message: str) -> HttpResponse:
    context = {"message": message, "login_url": request.path}
    try:
        html = get_template("registration/locked_out.html").render(context, request)
    except TemplateDoesNotExist:
        html = Template(LOCKED_PAGE).render(RequestContext(request, context))
    return HttpResponse(html, status=429)


class DeskGuardMiddleware(_Middleware):
    """Rate limits in front of the action views and the login forms, and the sliding idle timeout.

    1. An action identical to the user's previous one within ACTION_DUPLICATE_WINDOW_SECONDS (a
       double click, a key held down) is answered 204 and never reaches the Voice API; one that
       is refused or fails is forgotten, so the agent may retry it at once. An agent-state action
       is identical only while the agent's saved state is unchanged: after the switch logged the
       agent out, a Login is a new action.
    2. More actions than ACTION_RATE_LIMIT allows are answered 429 with a toast, and audited.
    3. A sign-in for a username that failed LOGIN_FAILURE_LIMIT times (from any address), or from an
       address that failed LOGIN_ADDRESS_FAILURE_LIMIT times, waits a time that doubles with each
       failure: sooner, it is refused before the password is checked, with a page that says how
       long to wait, and audited.
    4. A signed-in session's expiry moves SESSION_IDLE_TIMEOUT_SECONDS ahead at most once a minute.
    """

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.is_async:
            return self.__acall__(request)
        response = self.handler_response(request)
        self._release_if_refused(request, response)
        self._slide_idle_timeout(request)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response = await self.ahandler_response(request)
        claimed = request.META.get(CLAIMED_ACTION_KEY)
        if claimed is not None and response.status_code >= 300:
            await ratelimit.release_action(*claimed)
        await self._aslide_idle_timeout(request)
        return response

    async def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: Any, kwargs: dict[str, Any]
    ) -> HttpResponse | None:
        match = request.resolver_match
        if request.method != "POST" or match is None:
            return None
        if match.view_name in ACTION_VIEWS:
            return await self._limit_action(request, match.view_name, kwargs)
        if match.view_name in LOGIN_VIEWS:
            return await self._limit_login(request)
        return None

    async def _limit_action(
        self, request: HttpRequest, view_name: str, kwargs: dict[str, Any]
    ) -> HttpResponse | None:
        user = await request.auser()
        if not user.is_authenticated:
            return None  # the view answers that
        state = await _agent_state(user.pk) if view_name == "agent-operation" else None
        fingerprint = _fingerprint(request, view_name, kwargs, state)
        admission = await ratelimit.admit_action(user.pk, fingerprint)
        if admission is ratelimit.Admission.STORM:
            operation = str(request.POST.get("operation") or ("Dial" if view_name == "dial" else view_name))
            return await storm_refusal(user, operation, str(kwargs.get("call_id", "")))
        if admission is ratelimit.Admission.DUPLICATE:
            return HttpResponse(status=204)  # the first one is on its way; its outcome is what counts
        request.META[CLAIMED_ACTION_KEY] = (user.pk, fingerprint)
        return None

    async def _limit_login(self, request: HttpRequest) -> HttpResponse | None:
        username = str(request.POST.get("username") or "")
        address = audit.request_address(request)
        if not username:
            return None  # the form answers that
        throttled = await ratelimit.admit_sign_in(username, address)
        if throttled is None:
            return None
        who = "for this username" if throttled.by == "username" else "from this address"
        await audit.arecord(
            action=audit.DESK_LOGIN,
            result=AuditEntry.REFUSED,
            username=username,
            message=f"refused without checking the password: too many failed sign-ins {who}",
            address=address,
        )
        wait = "1 second" if throttled.seconds == 1 else f"{throttled.seconds} seconds"
        response = _locked_page(request, LOCKED_MESSAGES[throttled.by].format(wait=wait))
        response.headers["Retry-After"] = str(throttled.seconds)
        return response

    def _release_if_refused(self, request: HttpRequest, response: HttpResponseBase) -> None:
        claimed = request.META.get(CLAIMED_ACTION_KEY)
        if claimed is not None and response.status_code >= 300:
            async_to_sync(ratelimit.release_action)(*claimed)

    def _slide_idle_timeout(self, request: HttpRequest) -> None:
        session = getattr(request, "session", None)
        if session is None or session.get(SESSION_KEY) is None:
            return
        now = int(time.time())
        if now - int(session.get(IDLE_REFRESHED_KEY, 0)) >= IDLE_REFRESH_EVERY_S:
            session[IDLE_REFRESHED_KEY] = now  # modified: SessionMiddleware saves it with a new expiry

    async def _aslide_idle_timeout(self, request: HttpRequest) -> None:
        session = getattr(request, "session", None)
        if session is None or await session.aget(SESSION_KEY) is None:
            return
        now = int(time.time())
        if now - int(await session.aget(IDLE_REFRESHED_KEY, 0)) >= IDLE_REFRESH_EVERY_S:
            await session.aset(IDLE_REFRESHED_KEY, now)
