"""Fixtures shared by every test: the browser, the simulator over loopback, voice servers and agents on
it, the session worker on the test's loop, Redis and PostgreSQL; and a cache and channel layer of each
test's own; for the multi-process tests, a database and a Redis index of the test's own and the desk's
production shape. The helpers they are built on are in ``tests/desk.py``, ``tests/servers.py`` and
``tests/stack.py``."""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from deploy.processes import Database
from tests.servers import free_port, serving

# The fixtures below import the desk's code when they run, not here: the simulator's own tests see this
# file too, and must not depend on calls/ or desktop/ even to be collected.
if TYPE_CHECKING:
    from calls.models import AgentLogin, VoiceServer
    from tests.desk import RunningWorker
    from tests.stack import Stack

CHROMIUM = "/usr/bin/chromium"
SIMULATOR_START_TIMEOUT_S = 20.0
STACK_REDIS_INDEX = 14  # the multi-process tests' layer; test_runworker's workers use 15


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Debian's chromium instead of a browser Playwright downloads, quiet and off the network."""
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "headless": browser_type_launch_args.get("headless", True),
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }


@pytest.fixture(autouse=True)
def _allow_django_orm_beside_playwright(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Playwright's sync API keeps an event loop running in the test's thread, which makes Django
    # refuse ORM calls there; browser tests legitimately set up rows from that thread.
    if request.node.get_closest_marker("browser"):
        monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    # The real hasher is slow by design; tests hash the demo passwords over and over.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session")
def simulator_url() -> Iterator[str]:
    """A standalone `voicesim` on a free loopback port, for the whole session."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "manage.py", "voicesim", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--answer-delay-ms", "0"]
    with serving("voicesim", command, f"{url}/control/state", timeout=SIMULATOR_START_TIMEOUT_S):
        yield url


@pytest.fixture
def simulator(simulator_url: str) -> str:
    """The session's simulator, back to its seeded directory with no calls, answering at once."""
    httpx.post(f"{simulator_url}/control/reset", timeout=5).raise_for_status()
    httpx.put(f"{simulator_url}/control/settings", json={"answer_delay_ms": 0}, timeout=5).raise_for_status()
    return simulator_url


def _require_service(name: str, host: str, port: int) -> None:
    """Skips when a service is not running here; in CI, which always provides it, fails instead."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return
    except OSError as exc:
        reason = f"{name} is not running on {host}:{port}: {exc}"
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must provide it: see .ci/run)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_url() -> str:
    _require_service("Redis", "127.0.0.1", 6379)
    return "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    _require_service("PostgreSQL", "127.0.0.1", 5432)
    return "postgres://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def database_url(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL database of this test's own, dropped at the end whoever still holds it."""
    database = Database(postgres_url, "switchboard_mp")
    database.create()
    try:
        yield database.url
    finally:
        database.drop()


@pytest.fixture
def layer_url(redis_url: str) -> Iterator[str]:
    """A Redis database index of this test's own, empty before and after: the processes' channel layer."""
    from tests.stack import redis_index

    with redis_index(redis_url, STACK_REDIS_INDEX) as url:
        yield url


@pytest.fixture
def stack(database_url: str, layer_url: str, tmp_path: Path) -> Iterator[Stack]:
    """The desk's production shape (``tests/stack.py``): voicesim, daphne and the worker, each its own
    process, with agent1 on the database; all stopped at the end."""
    from tests.stack import production_stack

    with production_stack(database_url, layer_url, tmp_path) as running:
        yield running


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests run last. Playwright's sync API keeps an event loop running from its first test
    to the end of the session, and an asyncio test after it could not start its own loop."""
    for item in items:
        if {"page", "browser", "context"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.browser)
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


@pytest.fixture(autouse=True)
def _fresh_channel_layers() -> Iterator[None]:
    """A new in-memory channel layer for every test: its queues belong to the test's own event loop."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture(autouse=True)
def _fresh_page_lists() -> None:
    """The pages read the admin's lists anew in every test: the lists of a test whose transaction was
    rolled back (which tells no one) never show in the next. Nothing to do before the desk's code
    was ever imported."""
    fragments = sys.modules.get("calls.fragments")
    if fragments is not None:
        fragments.PAGE_LISTS.changed()


@pytest.fixture(autouse=True)
def _own_cache(settings: Any) -> None:
    """Each test gets its own in-memory cache, so rate-limit counters never carry over between tests."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"test-{time.monotonic_ns()}",
        }
    }


@pytest.fixture
def quick_backoff(settings: Any) -> None:
    """A session that lost its Voice API retries within a second, not the production 30 s."""
    settings.VOICE_SESSION_MAX_BACKOFF_SECONDS = 1


@pytest.fixture
def server(simulator: str) -> VoiceServer:
    """A voice server speaking Genesys, on the session's simulator."""
    from calls.models import VoiceServer

    return VoiceServer.objects.create(name="Simulator", base_url=f"{simulator}/genesys")


@pytest.fixture
def huawei_server(simulator: str) -> VoiceServer:
    """A voice server speaking Huawei, on the session's simulator."""
    from calls.models import VoiceServer

    return VoiceServer.objects.create(
        name="Huawei simulator", dialect="huawei", base_url=f"{simulator}/huawei"
    )


@pytest.fixture
def agent1(server: VoiceServer) -> AgentLogin:
    from tests.desk import make_login

    return make_login(server, "agent1")


@pytest.fixture
def agent2(server: VoiceServer) -> AgentLogin:
    from tests.desk import make_login

    return make_login(server, "agent2")


@pytest.fixture
def agent101(huawei_server: VoiceServer) -> AgentLogin:
    from tests.desk import make_login

    return make_login(huawei_server, "agent101", username="101", password="agent101")


@pytest.fixture
def agent102(huawei_server: VoiceServer) -> AgentLogin:
    from tests.desk import make_login

    return make_login(huawei_server, "agent102", username="102", password="agent102")


@pytest.fixture
def lead1(server: VoiceServer) -> AgentLogin:
    """The Genesys team lead: the simulator's supervisor lead1 on 5010 (it leads no team yet)."""
    from tests.desk import make_login

    return make_login(server, "lead1")


@pytest.fixture
def lead101(huawei_server: VoiceServer) -> AgentLogin:
    """The Huawei team lead: the simulator's inspector 103 on 6103 (it leads no team yet)."""
    from tests.desk import make_login

    return make_login(huawei_server, "lead101", username="103", password="agent103")


@pytest.fixture
async def worker(quick_backoff: None) -> AsyncIterator[RunningWorker]:
    """The session worker on this test's loop, stopped (drained) at the end if the test did not."""
    from tests.desk import RunningWorker

    running = RunningWorker()
    await running.start()
    yield running
    if running.communicator is not None:
        await running.stop()
    # The worker's database work runs on asgiref's one thread-sensitive thread: wait for what is still
    # queued there and close that thread's connection, so the next test starts with a free thread.
    await sync_to_async(connections.close_all)()
