"""`/healthz` tells the truth: with separate session workers it is degraded (503) while agents want
sessions that no worker holds; it costs one query however many sessions there are; and it names
workers only to staff."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from channels.layers import InMemoryChannelLayer
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from calls.models import AgentLogin, VoiceServer

pytestmark = pytest.mark.django_db

LEASE_SECONDS = 30


class SharedLayer(InMemoryChannelLayer):
    """Stands in for a layer shared by several processes (Redis): the desk then runs its session
    workers separately, yet the health check's round trip works within this test."""


@pytest.fixture
def separate_workers(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "tests.test_health.SharedLayer"}}
    settings.VOICE_SESSION_LEASE_SECONDS = LEASE_SECONDS


@pytest.fixture
def server() -> VoiceServer:
    return VoiceServer.objects.create(name="Site A", base_url="http://gws.example.test")


def login(
    server: VoiceServer,
    name: str,
    *,
    wanted: bool = True,
    worker: str = "",
    lease_seconds: float | None = None,
    connection: str = AgentLogin.CONNECTED,
) -> AgentLogin:
    """An agent login; a lease ending ``lease_seconds`` from now (negative: in the past), or none."""
    user = get_user_model().objects.create_user(name, password=name)
    lease_until = (
        None if lease_seconds is None else timezone.now() + datetime.timedelta(seconds=lease_seconds)
    )
    return AgentLogin.objects.create(
        user=user,
        server=server,
        username=name,
        password=name,
        wanted=wanted,
        worker=worker,
        lease_until=lease_until,
        connection=connection,
    )


def health(client: Client | None = None) -> tuple[int, dict[str, Any]]:
    response = (client or Client()).get("/healthz")
    return response.status_code, response.json()


def test_it_is_ok_when_every_wanted_session_has_a_live_lease(
    separate_workers: None, server: VoiceServer
) -> None:
    login(server, "agent1", worker="worker-a", lease_seconds=20)
    login(server, "agent2", worker="worker-b", lease_seconds=20, connection=AgentLogin.RECONNECTING)
    login(server, "agent3", wanted=False)

    status, body = health()

    assert (status, body["status"]) == (200, "ok")
    workers = body["session_workers"]
    assert workers["separate"] is True
    assert (workers["workers"], workers["wanted"], workers["unheld"]) == (2, 2, 0)
    assert workers["sessions"]["connected"] == 1 and workers["sessions"]["reconnecting"] == 1


def test_it_is_degraded_when_wanted_sessions_lost_their_worker_a_lease_period_ago(
    separate_workers: None, server: VoiceServer
) -> None:
    """Every worker died: their leases ran out and nobody took the sessions over."""
    login(server, "agent1", worker="worker-a", lease_seconds=-2 * LEASE_SECONDS)
    login(server, "agent2", worker="worker-a", lease_seconds=20)

    status, body = health()

    assert (status, body["status"]) == (503, "degraded")
    assert body["database"] == body["channel_layer"] == "ok"
    assert body["session_workers"]["unheld"] == 1


def test_a_lease_that_just_ran_out_is_not_yet_degraded(separate_workers: None, server: VoiceServer) -> None:
    """A worker renewing late, or handing its sessions over on a restart, is not an outage."""
    login(server, "agent1", worker="worker-a", lease_seconds=-1)

    status, body = health()

    assert (status, body["status"]) == (200, "ok")


def test_sessions_no_worker_ever_claimed_are_degraded_after_one_lease_period(
    separate_workers: None, server: VoiceServer, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No worker runs at all: the sessions agents want never get a lease."""
    login(server, "agent1")
    clock = [1_000_000.0]
    monkeypatch.setattr("desktop.views.time.time", lambda: clock[0])

    assert health()[0] == 200, "just wanted: a worker may be claiming it right now"
    clock[0] += LEASE_SECONDS / 2
    assert health()[0] == 200
    clock[0] += LEASE_SECONDS
    status, body = health()
    assert (status, body["status"]) == (503, "degraded")
    assert body["session_workers"]["unheld_for_seconds"] == 1.5 * LEASE_SECONDS

    AgentLogin.objects.update(worker="worker-a", lease_until=timezone.now() + datetime.timedelta(seconds=20))
    assert health()[0] == 200


def test_refused_credentials_are_not_a_worker_outage(separate_workers: None, server: VoiceServer) -> None:
    login(server, "agent1", worker="", lease_seconds=-2 * LEASE_SECONDS, connection=AgentLogin.REFUSED)

    assert health()[0] == 200


def test_the_embedded_default_is_not_degraded_by_leases(settings: Any, server: VoiceServer) -> None:
    """One process, the in-memory layer: the worker lives and dies with the desk that answers."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    login(server, "agent1", worker="worker-a", lease_seconds=-3600)

    status, body = health()

    assert (status, body["status"]) == (200, "ok")
    assert body["session_workers"]["separate"] is False


def test_anonymous_clients_get_counts_and_staff_get_worker_ids(
    separate_workers: None, server: VoiceServer
) -> None:
    login(server, "agent1", worker="daphne-host-1234-secret", lease_seconds=20)

    anonymous = Client().get("/healthz")
    assert "daphne-host-1234-secret" not in anonymous.content.decode()
    assert "worker_ids" not in anonymous.json()["session_workers"]
    assert anonymous.json()["session_workers"]["workers"] == 1

    admin = Client()
    admin.force_login(get_user_model().objects.create_user("admin", password="x", is_staff=True))
    assert health(admin)[1]["session_workers"]["worker_ids"] == ["daphne-host-1234-secret"]


def test_it_costs_one_query_however_many_sessions_and_states(
    separate_workers: None, server: VoiceServer
) -> None:
    for n, state in enumerate([AgentLogin.CONNECTED, AgentLogin.RECONNECTING, AgentLogin.OFFLINE] * 4):
        login(server, f"agent{n}", worker=f"worker-{n % 3}", lease_seconds=20, connection=state)

    with CaptureQueriesContext(connection) as queries:
        status, body = health()

    assert status == 200 and body["session_workers"]["wanted"] == 12
    assert len(queries) == 1, [q["sql"] for q in queries]


def test_a_real_redis_layer_counts_as_separate_workers(
    settings: Any, redis_url: str, server: VoiceServer
) -> None:
    from desktop.settings import channel_layers_from_env

    settings.CHANNEL_LAYERS = channel_layers_from_env({"REDIS_URL": redis_url})
    settings.VOICE_SESSION_LEASE_SECONDS = LEASE_SECONDS
    login(server, "agent1", worker="worker-a", lease_seconds=-2 * LEASE_SECONDS)

    status, body = health()

    assert body["channel_layer"] == "ok"
    assert (status, body["status"]) == (503, "degraded")
