"""The desk's pages and the thin views behind its controls, and the health check.

Views authenticate, hand the request to ``calls.actions`` (which authorizes and validates) and
answer 204, or a toast with the refusal; call cards change when the Voice API's notification
arrives over the WebSocket, never from an action's response.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.paginator import Paginator
from django.db.models import Case, CharField, Count, Q, Value, When
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.csrf import csrf_failure as django_csrf_failure
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from calls import actions, fragments
from calls import directory as transfer_directory
from calls.actions import ActionRefused
from calls.db import database_sync_to_async
from calls.models import AgentLogin, CallRecord, DispositionCode
from calls.operations import CONTROL_CHARACTERS
from calls.worker import lease_seconds
from desktop.routing import channel_routes
from desktop.security import toast

log = logging.getLogger("switchboard.health")

CHANNEL_LAYER_TIMEOUT_S = 2.0
IN_MEMORY_LAYER = "channels.layers.InMemoryChannelLayer"
# Since when (a timestamp) some session agents want has had no worker lease at all.
UNHELD_SINCE_KEY = "healthz:unheld-since"


class SignedInRequest(HttpRequest):
    """The request of a view behind ``login_required``: its user has signed in."""

    user: User


async def _check_channel_layer() -> str:
    """A message round trip through the layer: proves Redis (when used) is reachable and serving."""
    layer = get_channel_layer()
    if layer is None:
        return "error: no channel layer configured"
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "healthz.ping"})
    message = await asyncio.wait_for(layer.receive(channel), CHANNEL_LAYER_TIMEOUT_S)
    return "ok" if message.get("type") == "healthz.ping" else "error: wrong message came back"


async def _channel_layer_status() -> str:
    try:
        return await _check_channel_layer()
    except Exception as exc:
        return _error(exc)


def _separate_workers() -> bool:
    """Whether session workers run in processes of their own (``runworker``), which only a shared
    channel layer allows; the in-memory layer means the worker runs inside this very process."""
    backend = settings.CHANNEL_LAYERS.get("default", {}).get("BACKEND", "")
    return bool(backend) and backend != IN_MEMORY_LAYER


def _unheld_for(unheld: int) -> float:
    """How long, in seconds, some wanted session with no lease at all has gone unheld: from the first
    health check that saw one, in the cache every desk process shares (Redis with separate workers).
    A session is legitimately unheld for a moment, between being wanted and being claimed."""
    try:
        if not unheld:
            cache.delete(UNHELD_SINCE_KEY)
            return 0.0
        now = time.time()
        cache.add(UNHELD_SINCE_KEY, now, timeout=None)
        return now - float(cache.get(UNHELD_SINCE_KEY, now))
    except Exception:
        log.warning("the health check could not read the cache", exc_info=True)
        return 0.0


def _session_workers(*, staff: bool) -> dict[str, Any]:
    """The sessions agents want, by who holds them, in one grouped query (however many logins): a
    lease is live, lapsing (ran out less than a lease period ago: a worker renewing late or handing
    over), lapsed (ran out longer ago) or none. Worker ids are for staff; others get counts."""
    now = timezone.now()
    period = datetime.timedelta(seconds=lease_seconds())
    lease = Case(
        When(lease_until__gt=now, then=Value("live")),
        When(lease_until__gt=now - period, then=Value("lapsing")),
        When(lease_until__isnull=False, then=Value("lapsed")),
        default=Value("none"),
        output_field=CharField(),
    )
    rows = list(
        AgentLogin.objects.filter(wanted=True, enabled=True, user__is_active=True)
        .annotate(lease=lease)
        .values("worker", "connection", "lease")
        .annotate(count=Count("pk"))
        .order_by()
    )
    live = [row for row in rows if row["lease"] == "live"]
    workers = sorted({row["worker"] for row in live if row["worker"]})
    # Refused credentials wait for an administrator, not for a worker: no worker may hold them.
    unheld = [
        row for row in rows if row["lease"] in ("lapsed", "none") and row["connection"] != AgentLogin.REFUSED
    ]
    body: dict[str, Any] = {
        "routes": sorted(channel_routes),
        "separate": _separate_workers(),
        "workers": len(workers),
        "sessions": {
            status: sum(row["count"] for row in live if row["connection"] == status)
            for status, _ in AgentLogin.CONNECTIONS
        },
        "wanted": sum(row["count"] for row in rows),
        "unheld": sum(row["count"] for row in unheld),
        "unheld_for_seconds": round(
            _unheld_for(sum(row["count"] for row in unheld if row["lease"] == "none")), 1
        ),
    }
    lapsed = any(row["lease"] == "lapsed" for row in unheld)
    body["degraded"] = bool(body["unheld"]) and (
        lapsed or body["unheld_for_seconds"] > period.total_seconds()
    )
    if staff:
        body["worker_ids"] = workers
    return body


def _database_and_sessions(staff: bool) -> tuple[str, dict[str, Any]]:
    """The session query doubles as the database check: one round trip, not two."""
    try:
        return "ok", _session_workers(staff=staff)
    except Exception as exc:
        return _error(exc), {}


def _error(exc: BaseException) -> str:
    return f"error: {type(exc).__name__}: {exc}".rstrip(": ")


@never_cache
@require_GET
async def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the desk can serve agents; 503 with ``error`` when the database or the channel layer
    fails, or ``degraded`` when, with separate workers, agents want sessions that no worker holds."""
    user = await request.auser()
    (database, sessions), channel_layer = await asyncio.gather(
        sync_to_async(_database_and_sessions)(bool(user.is_staff)), _channel_layer_status()
    )
    if database != "ok" or channel_layer != "ok":
        status = "error"
    elif sessions.get("separate") and sessions.get("degraded"):
        status = "degraded"
    else:
        status = "ok"
    body = {
        "status": status,
        "database": database,
        "channel_layer": channel_layer,
        "simulator": "embedded" if settings.SIMULATOR_ENABLED else "off",
        "session_workers": sessions,
    }
    return JsonResponse(body, status=200 if status == "ok" else 503)


@login_required
@require_GET
@never_cache
def desk(request: SignedInRequest) -> HttpResponse:
    logins = AgentLogin.objects.select_related("server", "user")
    login = logins.filter(user=request.user, enabled=True).first()
    context: dict[str, Any] = {"login": login}
    if login is not None:
        context |= {
            "desk": fragments.desk_parts(login, oob=False),
            "speed_dials": fragments.PAGE_LISTS.current().speed_dials,
        }
    return render(request, "desktop/desk.html", context)


async def _act(request: HttpRequest, action: Callable[[User], Awaitable[None]]) -> HttpResponse:
    """Runs ``action`` for the signed-in user."""
    user = await request.auser()
    if not user.is_authenticated:
        return toast("Your desk session has ended: log in again.", 401)
    try:
        await action(user)
    except ActionRefused as exc:
        return toast(exc.message, exc.status)
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


@require_POST
async def disposition(request: HttpRequest, call_id: str) -> HttpResponse:
    code = request.POST.get("disposition", "")
    return await _act(request, lambda user: actions.disposition(user, call_id, code))


def _directory_html(user: User, query: str) -> tuple[str, int]:
    login = AgentLogin.objects.select_related("server").filter(user=user, enabled=True).first()
    if login is None:
        return fragments.directory_refusal("You have no agent login: ask an administrator for one."), 403
    return fragments.directory(login, query), 200


@require_GET
@never_cache
async def directory(request: HttpRequest) -> HttpResponse:
    """The transfer directory's options for ``q`` (part of a name, a user name or a number), as the
    list under a transfer, conference or dial form shows them; a refusal is said in the list."""
    user = await request.auser()
    if not user.is_authenticated:
        message = "Your desk session has ended: log in again."
        return HttpResponse(fragments.directory_refusal(message), status=401)
    if not await transfer_directory.search_allowed(user.pk):
        message = "Too many searches at once: wait a few seconds."
        response = HttpResponse(fragments.directory_refusal(message), status=429)
        response.headers["Retry-After"] = str(transfer_directory.rate_limit_seconds())
        return response
    try:
        query = transfer_directory.clean_query(request.GET.get("q", ""))
    except transfer_directory.InvalidQuery as exc:
        return HttpResponse(fragments.directory_refusal(str(exc)), status=400)
    html, status = await database_sync_to_async(_directory_html)(user, query)
    return HttpResponse(html, status=status)


HISTORY_PAGE_SIZE = 50


@login_required
@require_GET
@never_cache
def history(request: SignedInRequest) -> HttpResponse:
    """The agent's own calls, newest first, filtered by number, day and outcome; times in the desk's
    TIME_ZONE (the page says which)."""
    records = CallRecord.objects.filter(login__user=request.user)
    # A search, not an identifier: control characters (a NUL, which PostgreSQL refuses) are dropped.
    number = CONTROL_CHARACTERS.sub("", request.GET.get("number", "")).strip()[:32]
    day = request.GET.get("date", "").strip()
    outcome = request.GET.get("outcome", "").strip()
    error = ""
    if number:
        records = records.filter(Q(parties__icontains=number) | Q(dnis__icontains=number))
    if day:
        try:
            records = records.filter(started_at__date=datetime.date.fromisoformat(day))
        except ValueError:
            error = "Enter the date as YYYY-MM-DD."
    if outcome in dict(CallRecord.OUTCOMES):
        records = records.filter(outcome=outcome)
    else:
        outcome = ""
    page = Paginator(records, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    labels = dict(DispositionCode.objects.values_list("code", "label"))
    rows = [(record, labels.get(record.disposition, record.disposition)) for record in page]
    context = {
        "page": page,
        "rows": rows,
        "number": number,
        "date": day,
        "outcome": outcome,
        "outcomes": CallRecord.OUTCOMES,
        "error": error,
        "time_zone": timezone.get_current_timezone_name(),
    }
    return render(request, "desktop/history.html", context)


security_log = logging.getLogger("switchboard.security")
STALE_PAGE = (
    "This page's security token is out of date (you signed in again, perhaps in another tab): "
    "reload the page to go on."
)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A control on a page whose CSRF token is stale: a toast saying so, with a reload link (a page
    that is not the desk's gets Django's own explanation)."""
    security_log.warning("refused a request without a valid CSRF token: %s %r", request.method, request.path)
    if request.headers.get("HX-Request") == "true":
        html = render_to_string("desktop/toast.html", {"message": STALE_PAGE, "reload": True, "sticky": True})
        return HttpResponse(html, status=403)
    return django_csrf_failure(request, reason=reason)
