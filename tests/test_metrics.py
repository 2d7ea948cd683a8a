"""Metrics in the Prometheus format: `/metrics` on the desk and a worker's own metrics server answer
only an allowed address or the bearer token (anyone else gets a 404); every request is counted by
view and status class; a failed Voice API request is counted by vendor and kind, on the real path to
the simulator."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import AsyncClient, Client
from prometheus_client import REGISTRY

from calls import metrics
from calls.vendors import backend_class
from calls.voice import Agent, Server, VoiceApiError
from tests.desk import control
from tests.servers import free_port

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-for-tests"  # noqa: S105


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def scrape_settings(settings: Any) -> Any:
    settings.METRICS_ALLOWED_IPS = ["127.0.0.1", "::1"]
    settings.METRICS_TOKEN = TOKEN
    return settings


@pytest.fixture
def worker_metrics(scrape_settings: Any) -> Iterator[str]:
    """A worker's metrics server, as runworker starts it with METRICS_PORT; its /metrics address."""
    server = metrics.serve(free_port())
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    finally:
        server.shutdown()
        server.server_close()


# The desk's /metrics


def test_the_desk_answers_metrics_to_a_loopback_scraper(scrape_settings: Any) -> None:
    response = Client().get("/metrics", REMOTE_ADDR="127.0.0.1")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    body = response.content.decode()
    assert 'switchboard_voice_sessions{status="connected"}' in body
    assert "# TYPE switchboard_event_lag_seconds histogram" in body


def test_the_desk_answers_metrics_to_an_ipv4_peer_of_a_dual_stack_listener(scrape_settings: Any) -> None:
    assert Client().get("/metrics", REMOTE_ADDR="::ffff:127.0.0.1").status_code == 200


def test_a_desk_process_times_its_garbage_collections_from_its_start() -> None:
    """Any process of the desk, daphne as much as a worker: a fresh one, with Django set up and nothing
    else started."""
    script = (
        "import gc; from prometheus_client import REGISTRY; gc.collect(); "
        "print(REGISTRY.get_sample_value('switchboard_gc_pause_seconds_count', {'generation': '2'}))"
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout.strip().splitlines()[-1]) >= 1


def test_metrics_are_a_404_to_an_address_not_allowed(scrape_settings: Any) -> None:
    response = Client().get("/metrics", REMOTE_ADDR="203.0.113.9")

    assert response.status_code == 404
    assert b"switchboard_" not in response.content


def test_an_allowed_network_admits_its_addresses(scrape_settings: Any) -> None:
    scrape_settings.METRICS_ALLOWED_IPS = ["10.20.0.0/16"]

    assert Client().get("/metrics", REMOTE_ADDR="10.20.3.4").status_code == 200
    assert Client().get("/metrics", REMOTE_ADDR="10.21.3.4").status_code == 404


def test_the_bearer_token_opens_metrics_to_any_address(scrape_settings: Any) -> None:
    stranger = Client(REMOTE_ADDR="203.0.113.9")

    assert stranger.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert stranger.get("/metrics", headers={"Authorization": "Bearer guess"}).status_code == 404
    assert stranger.get("/metrics", headers={"Authorization": TOKEN}).status_code == 404


def test_no_token_is_accepted_when_none_is_set(scrape_settings: Any) -> None:
    scrape_settings.METRICS_TOKEN = ""

    response = Client(REMOTE_ADDR="203.0.113.9").get("/metrics", headers={"Authorization": "Bearer "})

    assert response.status_code == 404


def test_metrics_answer_get_only(scrape_settings: Any) -> None:
    assert Client().post("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 405


def test_an_allowed_address_that_is_not_an_address_is_named(scrape_settings: Any) -> None:
    scrape_settings.METRICS_ALLOWED_IPS = ["desk.example.com"]

    with pytest.raises(ImproperlyConfigured, match="METRICS_ALLOWED_IPS: 'desk.example.com'"):
        metrics.serve(free_port())


# Requests by view and status class


async def test_each_request_is_counted_by_view_name_and_status_class_and_timed() -> None:
    before = value("switchboard_http_requests_total", view="login", status="2xx")
    timed_before = value("switchboard_http_request_seconds_count", view="login")
    unmatched_before = value("switchboard_http_requests_total", view="unmatched", status="4xx")
    client = AsyncClient()

    assert (await client.get("/accounts/login/")).status_code == 200
    assert (await client.get("/no/such/page/")).status_code == 404

    assert value("switchboard_http_requests_total", view="login", status="2xx") == before + 1
    assert value("switchboard_http_request_seconds_count", view="login") == timed_before + 1
    # A path that matches no URL is one series, whatever the path: a call id never makes a series.
    assert value("switchboard_http_requests_total", view="unmatched", status="4xx") == unmatched_before + 1


def test_a_sync_handler_counts_requests_too() -> None:
    before = value("switchboard_http_requests_total", view="healthz", status="2xx")

    Client().get("/healthz")

    assert value("switchboard_http_requests_total", view="healthz", status="2xx") == before + 1


# A worker's metrics server (METRICS_PORT)


def test_a_worker_serves_its_metrics_to_a_loopback_scraper(worker_metrics: str) -> None:
    response = httpx.get(worker_metrics, timeout=5)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    assert "# TYPE switchboard_write_queue_depth gauge" in response.text


def test_a_worker_answers_nothing_but_metrics(worker_metrics: str) -> None:
    response = httpx.get(worker_metrics.removesuffix("/metrics") + "/", timeout=5)

    assert (response.status_code, response.content) == (404, b"")


def test_a_worker_answers_a_scraper_not_allowed_only_with_the_token(
    worker_metrics: str, scrape_settings: Any
) -> None:
    scrape_settings.METRICS_ALLOWED_IPS = ["192.0.2.0/24"]

    assert httpx.get(worker_metrics, timeout=5).status_code == 404
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(worker_metrics, headers=bearer, timeout=5).status_code == 200


# Voice API errors, on the real path


def backend(dialect: str, base_url: str) -> Any:
    agent = Agent(username="agent1", password="agent1", dn="5005")
    if dialect == "huawei":
        agent = Agent(username="101", password="agent101", dn="6101")
    return backend_class(dialect)(Server(base_url=base_url), agent)


@pytest.mark.parametrize("dialect", ["genesys", "huawei"])
async def test_a_voice_api_answering_503_is_counted_as_http_5xx_for_its_vendor(
    simulator: str, dialect: str
) -> None:
    before = value("switchboard_voice_api_errors_total", vendor=dialect, kind="http_5xx")
    await control(simulator, "POST", "/control/faults", {"http_status": 503, "for_ms": 5000})
    voice = backend(dialect, f"{simulator}/{dialect}")
    try:
        with pytest.raises(VoiceApiError):
            await voice.check()
    finally:
        await voice.aclose()
        await control(simulator, "POST", "/control/faults", {"clear": True})

    assert value("switchboard_voice_api_errors_total", vendor=dialect, kind="http_5xx") >= before + 1


async def test_a_voice_api_refusing_connections_is_counted_as_refused() -> None:
    before = value("switchboard_voice_api_errors_total", vendor="genesys", kind="refused")
    voice = backend("genesys", f"http://127.0.0.1:{free_port()}/genesys")
    try:
        with pytest.raises(VoiceApiError):
            await voice.check()
    finally:
        await voice.aclose()

    # The transport retries a refused connection once; the request failed once, and counts once.
    assert value("switchboard_voice_api_errors_total", vendor="genesys", kind="refused") == before + 1


async def test_a_voice_api_that_answers_is_not_counted(simulator: str) -> None:
    before = {
        kind: value("switchboard_voice_api_errors_total", vendor="genesys", kind=kind)
        for kind in ("http_5xx", "http_4xx", "refused", "timeout", "transport")
    }
    voice = backend("genesys", f"{simulator}/genesys")
    try:
        assert (await voice.check()).startswith("connected")
    finally:
        await voice.aclose()

    after = {
        kind: value("switchboard_voice_api_errors_total", vendor="genesys", kind=kind) for kind in before
    }
    assert after == before


# What holds a worker's event loop up


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_running_worker_records_how_late_its_event_loop_runs_and_each_collections_pause(
    worker: Any,
) -> None:
    probes = value("switchboard_event_loop_lag_seconds_count")
    collections = value("switchboard_gc_pause_seconds_count", generation="2")
    await asyncio.sleep(2 * metrics.LOOP_PROBE_SECONDS + 0.1)
    gc.collect()

    assert value("switchboard_event_loop_lag_seconds_count") >= probes + 2
    assert value("switchboard_gc_pause_seconds_count", generation="2") >= collections + 1
