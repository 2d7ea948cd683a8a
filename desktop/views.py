"""The desk's pages and the thin views behind its controls, and the health check.

Views authenticate, hand the request to ``calls.actions`` (which authorizes and validates) and
answer 204, or a toast with the refusal; call cards change when the Voice API's notification
arrives over the WebSocket, never from an action's response.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from calls import actions, fragments
from calls.actions import ActionRefused
from calls.directory import speed_dials
from calls.models import AgentLogin, CallRecord
from desktop.routing import channel_routes

CHANNEL_LAYER_TIMEOUT_S = 2.0


class SignedInRequest(HttpRequest):
    """The request of a view behind ``login_required``: its user has signed in."""

    user: User


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


async def _check_channel_layer() -> str:
    """A message round trip through the layer: proves Redis (when used) is reachable and serving."""
    layer = get_channel_layer()
    if layer is None:
        return "error: no channel layer configured"
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "healthz.ping"})
    message = await asyncio.wait_for(layer.receive(channel), CHANNEL_LAYER_TIMEOUT_S)
    return "ok" if message.get("type") == "healthz.ping" else "error: wrong message came back"


def _session_workers() -> dict[str, Any]:
    """Which worker channels this deployment serves, which workers hold live sessions, and how many."""
    now = timezone.now()
    live = AgentLogin.objects.filter(wanted=True, lease_until__gt=now)
    return {
        "routes": sorted(channel_routes),
        "workers": sorted(set(live.values_list("worker", flat=True))),
        "sessions": {
            status: live.filter(connection=status).count()
            for status in (AgentLogin.CONNECTED, AgentLogin.RECONNECTING, AgentLogin.OFFLINE)
        },
    }


def _error(exc: BaseException) -> str:
    return f"error: {type(exc).__name__}: {exc}".rstrip(": ")


@never_cache
@require_GET
async def healthz(request: HttpRequest) -> JsonResponse:
    try:
        database = await sync_to_async(_check_database)()
    except Exception as exc:
        database = _error(exc)
    try:
        channel_layer = await _check_channel_layer()
    except Exception as exc:
        channel_layer = _error(exc)
    body = {
        "status": "ok" if database == channel_layer == "ok" else "error",
        "database": database,
        "channel_layer": channel_layer,
        "simulator": "embedded" if settings.SIMULATOR_ENABLED else "off",
        "session_workers": await sync_to_async(_session_workers)() if database == "ok" else {},
    }
    return JsonResponse(body, status=200 if body["status"] == "ok" else 503)


def _toast(message: str, status: int) -> HttpResponse:
    """A refusal the agent sees in ``#toasts``; the card itself is left to the server's truth."""
    html = render_to_string("desktop/toast.html", {"message": message})
    return HttpResponse(html, status=status)


@login_required
@require_GET
@never_cache
def desk(request: SignedInRequest) -> HttpResponse:
    logins = AgentLogin.objects.select_related("server", "user")
    login = logins.filter(user=request.user, enabled=True).first()
    context: dict[str, Any] = {"login": login}
    if login is not None:
        context |= {
            "agent_state_html": fragments.agent_state(login, oob=False),
            "connection_html": fragments.connection(login, oob=False),
            "calls_html": fragments.calls_region(login, oob=False),
            "speed_dials": speed_dials(),
        }
    return render(request, "desktop/desk.html", context)


async def _act(request: HttpRequest, action: Callable[[User], Awaitable[None]]) -> HttpResponse:
    """Runs ``action`` for the signed-in user."""
    user = await request.auser()
    if not user.is_authenticated:
        return _toast("Your desk session has ended: log in again.", 401)
    try:
        await action(user)
    except ActionRefused as exc:
        return _toast(exc.message, exc.status)
    return HttpResponse(status=204)


@require_POST
async def call_operation(request: HttpRequest, call_id: str) -> HttpResponse:
    operation = request.POST.get("operation", "")
    return await _act(request, lambda user: actions.call_operation(user, call_id, operation, request.POST))


@require_POST
async def agent_operation(request: HttpRequest) -> HttpResponse:
    operation = request.POST.get("operation", "")
    reason = request.POST.get("reason", "")
    return await _act(request, lambda user: actions.agent_operation(user, operation, reason))


@require_POST
async def dial(request: HttpRequest) -> HttpResponse:
    return await _act(request, lambda user: actions.dial(user, request.POST))


@login_required
@require_GET
@never_cache
def history(request: SignedInRequest) -> HttpResponse:
    """The agent's own calls, newest first, filtered by number and day."""
    records = CallRecord.objects.filter(login__user=request.user)
    number = request.GET.get("number", "").strip()[:32]
    day = request.GET.get("date", "").strip()
    error = ""
    if number:
        records = records.filter(Q(parties__icontains=number) | Q(dnis__icontains=number))
    if day:
        try:
            records = records.filter(started_at__date=datetime.date.fromisoformat(day))
        except ValueError:
            error = "Enter the date as YYYY-MM-DD."
    page = Paginator(records, 50).get_page(request.GET.get("page"))
    context = {"page": page, "number": number, "date": day, "error": error}
    return render(request, "desktop/history.html", context)
