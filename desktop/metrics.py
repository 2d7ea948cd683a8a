"""The desk's HTTP side of the metrics: a middleware that counts and times every request, and the
``/metrics`` view that each daphne process answers for itself (calls.metrics holds the metrics)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.views.decorators.http import require_GET

from calls import metrics

GetResponse = Callable[[HttpRequest], HttpResponseBase | Awaitable[HttpResponseBase]]


def _observe(request: HttpRequest, status: int, started: float) -> None:
    # The URL pattern's name, never the path: paths carry call ids and would make a series per call.
    match = request.resolver_match
    view = match.view_name if match is not None and match.view_name else "unmatched"
    metrics.HTTP_REQUESTS.labels(view=view, status=f"{status // 100}xx").inc()
    metrics.HTTP_REQUEST_SECONDS.labels(view=view).observe(time.perf_counter() - started)


class RequestMetricsMiddleware:
    """Counts each request by view and status class and times it; first in MIDDLEWARE, so the time
    is the whole of Django's work on it."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.is_async:
            return self.__acall__(request)
        started = time.perf_counter()
        response = cast(HttpResponseBase, self.get_response(request))
        _observe(request, response.status_code, started)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        response = await cast(Awaitable[HttpResponseBase], self.get_response(request))
        _observe(request, response.status_code, started)
        return response


@require_GET
def scrape(request: HttpRequest) -> HttpResponse:
    """This process's metrics to an allowed scraper (METRICS_ALLOWED_IPS or METRICS_TOKEN); a 404 to
    anyone else, the same as for a path that does not exist."""
    address = str(request.META.get("REMOTE_ADDR") or "")
    if not metrics.scrape_allowed(address, request.headers.get("Authorization", "")):
        raise Http404
    body, content_type = metrics.exposition()
    return HttpResponse(body, content_type=content_type)
