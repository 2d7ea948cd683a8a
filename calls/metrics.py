"""The desk's metrics for operators, in the Prometheus text format, and who may read them.

Every metric is a module-level object of prometheus-client's default registry, so any module
imports it and records into it. Each process keeps its own figures: every daphne process answers
``/metrics`` (desktop.metrics) and every ``runworker`` serves them on ``METRICS_PORT``
(:func:`serve`), and Prometheus scrapes each process as a target of its own and adds them up (the
``instance`` label tells them apart). No multiprocess directory is shared: processes here are
long-lived and separately addressed, which is what per-process scraping expects.

Metrics are not public: a scrape is answered only for a client address in ``METRICS_ALLOWED_IPS``
or with ``Authorization: Bearer <METRICS_TOKEN>``; anyone else gets a 404, as if there were none.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import hmac
import ipaddress
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

log = logging.getLogger("switchboard.metrics")

# From a millisecond to ten seconds: a push is a few milliseconds when all is well, and seconds
# when a queue builds up, which is what an operator needs to see.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

VOICE_SESSIONS = Gauge(
    "switchboard_voice_sessions",
    "Agent sessions with the Voice API this worker process owns, by status "
    "(connected, reconnecting, offline, refused).",
    ["status"],
)
EVENT_LAG = Histogram(
    "switchboard_event_lag_seconds",
    "Seconds from a Voice API event reaching the worker to its push to the agent's desk being sent.",
    buckets=LATENCY_BUCKETS,
)
PUSH_SECONDS = Histogram(
    "switchboard_push_seconds",
    "Seconds one group send to the channel layer takes.",
    buckets=LATENCY_BUCKETS,
)
VOICE_API_ERRORS = Counter(
    "switchboard_voice_api_errors",
    "Voice API requests that failed, by vendor and kind: http_5xx and http_4xx (the server answered "
    "with that status), refused (no connection could be made), timeout, transport (the connection "
    "failed otherwise).",
    ["vendor", "kind"],
)
LOOP_LAG = Histogram(
    "switchboard_event_loop_lag_seconds",
    "Seconds a timer of the worker's event loop fires late: how long anything ready to run (a push, an "
    "event) waits for its turn.",
    buckets=LATENCY_BUCKETS,
)
GC_PAUSE = Histogram(
    "switchboard_gc_pause_seconds",
    "Seconds each garbage collection held this process, by generation (nothing else runs meanwhile).",
    ["generation"],
    buckets=LATENCY_BUCKETS,
)
WRITE_QUEUE_DEPTH = Gauge(
    "switchboard_write_queue_depth",
    "Writes of live state and call history waiting to reach the database in this worker process.",
)
SESSION_REQUESTS_DROPPED = Counter(
    "switchboard_session_requests_dropped",
    "Requests to start an agent's session dropped because the session workers' shared channel was full "
    "(logged; the agent's desk asks again).",
)
WRITES_FAILED = Counter(
    "switchboard_writes_failed",
    "Writes of live state or call history that failed (logged; the next resync heals them).",
)
HTTP_REQUESTS = Counter(
    "switchboard_http_requests",
    "HTTP requests the desk answered, by view (its URL name, or 'unmatched') and status class (2xx...).",
    ["view", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "switchboard_http_request_seconds",
    "Seconds the desk took to answer an HTTP request, by view.",
    ["view"],
    buckets=LATENCY_BUCKETS,
)

# Every status the gauge knows, exported at 0 from the start: a dashboard sees the series before the
# first session of that status exists.
SESSION_STATUSES = ("connected", "reconnecting", "offline", "refused")
for _status in SESSION_STATUSES:
    VOICE_SESSIONS.labels(status=_status)


# How often the loop probe asks to be woken: often enough to catch a busy burst, rarely enough to cost
# nothing (four wake-ups a second).
LOOP_PROBE_SECONDS = 0.25


async def probe_loop(interval: float = LOOP_PROBE_SECONDS) -> None:
    """For ever: sleep ``interval`` and record how late the wake-up came (``LOOP_LAG``)."""
    loop = asyncio.get_running_loop()
    while True:
        asked = loop.time() + interval
        await asyncio.sleep(interval)
        LOOP_LAG.observe(max(0.0, loop.time() - asked))


_gc_started: list[float] = []


def _time_gc(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _gc_started[:] = [time.perf_counter()]
    elif _gc_started:
        GC_PAUSE.labels(generation=str(info["generation"])).observe(time.perf_counter() - _gc_started.pop())


def time_gc() -> None:
    """Record every garbage collection's pause in ``GC_PAUSE`` from now on (once per process)."""
    if _time_gc not in gc.callbacks:
        gc.callbacks.append(_time_gc)


@functools.cache
def allowed_networks(addresses: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """METRICS_ALLOWED_IPS as networks; a value that is neither an address nor a network stops the
    process with its name rather than answer every scrape with an error."""
    networks = []
    for value in addresses:
        try:
            networks.append(ipaddress.ip_network(value.strip()))
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"METRICS_ALLOWED_IPS: {value!r} is not an IP address or network: {exc}"
            ) from exc
    return tuple(networks)


def _address_allowed(address: str) -> bool:
    try:
        peer = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return False
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
        peer = peer.ipv4_mapped
    networks = allowed_networks(tuple(settings.METRICS_ALLOWED_IPS))
    return any(peer.version == network.version and peer in network for network in networks)


def scrape_allowed(address: str, authorization: str) -> bool:
    """Whether a scrape from ``address`` (the TCP peer) with this Authorization header may be answered:
    the address is in METRICS_ALLOWED_IPS, or the header is ``Bearer <METRICS_TOKEN>``."""
    token: str = settings.METRICS_TOKEN
    scheme, _, presented = authorization.partition(" ")
    if (
        token
        and scheme.lower() == "bearer"
        and hmac.compare_digest(presented.strip().encode(), token.encode())
    ):
        return True
    return _address_allowed(address)


def exposition() -> tuple[bytes, str]:
    """This process's metrics in the Prometheus text format, and their content type."""
    return generate_latest(), CONTENT_TYPE_LATEST


class _ScrapeHandler(BaseHTTPRequestHandler):
    """Answers GET /metrics to an allowed scraper; everything else is a 404 with an empty body."""

    def do_GET(self) -> None:  # noqa: N802  # the name http.server calls
        path = self.path.split("?", 1)[0]
        if path != "/metrics" or not scrape_allowed(
            self.client_address[0], self.headers.get("Authorization", "")
        ):
            self._answer(404, b"", "text/plain; charset=utf-8")
            return
        body, content_type = exposition()
        self._answer(200, body, content_type)

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002  # http.server's signature
        """Scrapes come every few seconds: not worth a log line each."""


def serve(port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Serves this process's metrics on ``host:port`` from a daemon thread (the worker's event loop
    stays free of it); returns the server, whose ``shutdown()`` stops it."""
    allowed_networks(tuple(settings.METRICS_ALLOWED_IPS))
    server = ThreadingHTTPServer((host, port), _ScrapeHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name=f"metrics :{port}", daemon=True)
    thread.start()
    log.info("metrics served on %s:%d/metrics", host, server.server_address[1])
    return server
