"""Fixtures shared by every test: the browser, the simulator over loopback, Redis and PostgreSQL."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
SIMULATOR_START_TIMEOUT_S = 20.0


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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def simulator_url() -> Iterator[str]:
    """A standalone `voicesim` on a free loopback port, for the whole session."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "manage.py", "voicesim", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--answer-delay-ms", "0"]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_for_simulator(url, process, log)
            yield url
        finally:
            stop_process(process)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate a server the tests started; kill it if it does not stop within 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_for_simulator(url: str, process: subprocess.Popen[bytes], log: Any) -> None:
    deadline = time.monotonic() + SIMULATOR_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if httpx.get(f"{url}/control/state", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    log.seek(0)
    output = log.read().decode(errors="replace")
    state = f"exited with {process.returncode}" if process.poll() is not None else "did not answer"
    pytest.fail(f"voicesim {state} within {SIMULATOR_START_TIMEOUT_S:.0f} s:\n{output}")


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
def _own_cache(settings: Any) -> None:
    """Each test gets its own in-memory cache, so rate-limit counters never carry over between tests."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"test-{time.monotonic_ns()}",
        }
    }
