"""Fixtures for the security tests: a clean cache (rate-limit counters), agents on the simulator, the
session worker on the test's loop, and desk HTTP clients signed in as an agent."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from channels.layers import channel_layers
from django.contrib.auth.models import AbstractBaseUser
from django.test import AsyncClient

from calls.models import AgentLogin, VoiceServer
from tests.calls.test_sessions import RunningWorker, control, make_login


@pytest.fixture(autouse=True)
def clean_cache(settings: Any) -> None:
    """Rate-limit counters live in the cache, which outlives a test: each test gets its own, in memory."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": uuid.uuid4().hex}
    }


@pytest.fixture
def fresh_layer(settings: Any) -> None:
    """A new in-memory layer per test: its queues belong to the test's event loop."""
    settings.VOICE_SESSION_MAX_BACKOFF_SECONDS = 1
    channel_layers.backends.pop("default", None)


@pytest.fixture
def server(simulator: str) -> VoiceServer:
    return VoiceServer.objects.create(name="Simulator", base_url=f"{simulator}/genesys")


@pytest.fixture
def agent1(server: VoiceServer) -> AgentLogin:
    return make_login(server, "agent1")


@pytest.fixture
def agent2(server: VoiceServer) -> AgentLogin:
    return make_login(server, "agent2")


@pytest.fixture
async def worker(fresh_layer: None) -> AsyncIterator[RunningWorker]:
    running = RunningWorker()
    await running.start()
    yield running
    if running.communicator is not None:
        await running.stop()


async def desk_client(user: AbstractBaseUser, **defaults: Any) -> AsyncClient:
    """The desk over HTTP (the ASGI handler, every middleware) as a signed-in user."""
    client = AsyncClient(**defaults)
    await client.aforce_login(user)
    return client


async def switch_calls(simulator: str) -> dict[str, dict[str, str]]:
    """Every call on the switch, as the simulator itself sees it: call id -> {number: leg state}."""
    state = await control(simulator, "GET", "/control/state")
    return {c["id"]: {leg["number"]: leg["state"] for leg in c["parties"]} for c in state["calls"]}
