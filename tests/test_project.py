"""The project skeleton: settings, ASGI routing, health check, the two commands, the README."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from channels.consumer import AsyncConsumer
from channels.layers import InMemoryChannelLayer
from channels.testing import HttpCommunicator
from django.contrib.auth import get_user_model
from django.core.management import load_command_class
from django.test import Client

from calls.demo import create_demo_agent_logins
from desktop import views
from desktop.asgi import PrefixMount, build_http_app, django_asgi_app
from desktop.management.commands.rundesk import Command as RundeskCommand
from desktop.management.commands.rundesk import start_session_workers
from desktop.settings import caches_from_env, channel_layers_from_env, databases_from_env, env_bool
from tests.servers import free_port, stop_process

ROOT = Path(__file__).resolve().parent.parent


class RecordingApp:
    """A throwaway ASGI app that answers 200 with its name and remembers the scopes it saw."""

    def __init__(self, name: str):
        self.name = name
        self.scopes: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": self.name.encode()})


async def request(app: Any, path: str) -> dict[str, Any]:
    """One GET through ``app``: its status and whole body (ASGI allows body-less final messages)."""
    communicator = HttpCommunicator(app, "GET", path, headers=[(b"host", b"localhost")])
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output(timeout=5)
    body = b""
    while True:
        message = await communicator.receive_output(timeout=5)
        body += message.get("body", b"")
        if not message.get("more_body"):
            return {"status": start["status"], "body": body}


simulator_builds: list[dict[str, Any]] = []


def fake_simulator_factory(**kwargs: Any) -> RecordingApp:
    simulator_builds.append(kwargs)
    return RecordingApp("simulator")


# Health check


@pytest.mark.django_db
def test_healthz_answers_200_with_database_and_channel_layer_ok() -> None:
    response = Client().get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["channel_layer"] == "ok"


@pytest.mark.django_db
def test_healthz_answers_503_with_the_reason_when_the_channel_layer_fails(monkeypatch: Any) -> None:
    class BrokenLayer(InMemoryChannelLayer):
        async def send(self, channel: str, message: dict[str, Any]) -> None:
            raise ConnectionRefusedError("Connection refused")

    monkeypatch.setattr(views, "get_channel_layer", BrokenLayer)

    response = Client().get("/healthz")

    assert response.status_code == 503
    assert response.json()["channel_layer"] == "error: ConnectionRefusedError: Connection refused"
    assert response.json()["database"] == "ok"


@pytest.mark.django_db
def test_healthz_says_whether_the_simulator_is_embedded(settings: Any) -> None:
    assert Client().get("/healthz").json()["simulator"] == "embedded"
    settings.SIMULATOR_ENABLED = False
    assert Client().get("/healthz").json()["simulator"] == "off"


def test_healthz_refuses_post() -> None:
    assert Client().post("/healthz").status_code == 405


# ASGI routing


async def test_requests_under_sim_reach_the_mounted_app_with_the_prefix_in_root_path() -> None:
    simulator, desk = RecordingApp("simulator"), RecordingApp("desk")
    app = PrefixMount("/sim", simulator, desk)

    response = await request(app, "/sim/control/state?x=1")

    assert response["body"] == b"simulator"
    assert simulator.scopes[0]["root_path"] == "/sim"
    assert simulator.scopes[0]["path"] == "/control/state"
    assert simulator.scopes[0]["query_string"] == b"x=1"


async def test_the_bare_prefix_reaches_the_mounted_app_at_its_root() -> None:
    simulator, desk = RecordingApp("simulator"), RecordingApp("desk")

    await request(PrefixMount("/sim", simulator, desk), "/sim")

    assert simulator.scopes[0]["path"] == "/"


@pytest.mark.parametrize("path", ["/", "/healthz", "/simulator", "/static/app.css", "/admin/sim/"])
async def test_other_paths_reach_the_desk_unchanged(path: str) -> None:
    simulator, desk = RecordingApp("simulator"), RecordingApp("desk")

    response = await request(PrefixMount("/sim", simulator, desk), path)

    assert response["body"] == b"desk"
    assert desk.scopes[0]["path"] == path
    assert "root_path" not in desk.scopes[0]


async def test_the_embedded_simulator_is_built_from_the_factory_setting(settings: Any) -> None:
    settings.SIMULATOR_ASGI_FACTORY = "tests.test_project.fake_simulator_factory"
    settings.SIMULATOR_CONTROL_ENABLED = True
    settings.SIMULATOR_ANSWER_DELAY_MS = 250
    settings.SIMULATOR_CONTROL_TOKEN = "control-token"
    simulator_builds.clear()

    response = await request(build_http_app(RecordingApp("django")), "/sim/genesys/api/v2/me")

    assert response["body"] == b"simulator"
    assert simulator_builds == [
        {"prefix": "/sim", "control_enabled": True, "answer_delay_ms": 250, "control_token": "control-token"}
    ]


async def test_without_the_simulator_sim_paths_reach_django(settings: Any) -> None:
    settings.SIMULATOR_ENABLED = False

    response = await request(build_http_app(RecordingApp("django")), "/sim/control/state")

    assert response["body"] == b"django"


async def test_static_files_are_served_with_debug_off(settings: Any) -> None:
    settings.DEBUG = False
    settings.SIMULATOR_ENABLED = False

    response = await request(build_http_app(django_asgi_app), "/static/admin/css/base.css")

    assert response["status"] == 200
    assert b"body" in response["body"]


# Settings


def test_settings_pick_redis_when_redis_url_is_set() -> None:
    layers = channel_layers_from_env({"REDIS_URL": "redis://redis.example:6379/2"})

    assert layers["default"]["BACKEND"] == "calls.layer.DeskRedisChannelLayer"
    (host,) = layers["default"]["CONFIG"]["hosts"]
    assert (host["address"], host["socket_timeout"]) == ("redis://redis.example:6379/2", None)
    assert host["maint_notifications_config"].enabled is False


def test_settings_pick_redis_pub_sub_when_asked() -> None:
    layers = channel_layers_from_env({"REDIS_URL": "redis://redis.example:6379/2", "CHANNEL_LAYER": "pubsub"})

    assert layers["default"]["BACKEND"] == "channels_redis.pubsub.RedisPubSubChannelLayer"
    assert layers["default"]["CONFIG"]["hosts"] == [{"address": "redis://redis.example:6379/2"}]
    cache = caches_from_env({"REDIS_URL": "redis://redis.example:6379/2", "CHANNEL_LAYER": "pubsub"})
    assert cache["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"


def test_settings_use_the_in_memory_layer_without_redis_url() -> None:
    assert channel_layers_from_env({})["default"]["BACKEND"] == "channels.layers.InMemoryChannelLayer"


def test_settings_default_to_sqlite_beside_manage_py() -> None:
    database = databases_from_env({}, Path("/srv/switchboard"))["default"]

    assert database["ENGINE"] == "django.db.backends.sqlite3"
    assert database["NAME"] == "/srv/switchboard/db.sqlite3"


def test_settings_use_postgresql_from_database_url() -> None:
    url = "postgres://desk:secret@db.example:5432/switchboard"
    database = databases_from_env({"DATABASE_URL": url}, Path("/srv"))["default"]

    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert (database["HOST"], database["NAME"], database["USER"]) == ("db.example", "switchboard", "desk")
    assert database["CONN_MAX_AGE"] == 0


def test_boolean_settings_refuse_what_is_not_a_boolean() -> None:
    assert env_bool({"X": "0"}, "X", True) is False
    assert env_bool({"X": "yes"}, "X", False) is True
    assert env_bool({}, "X", True) is True
    with pytest.raises(ValueError, match="X='maybe' is not a boolean"):
        env_bool({"X": "maybe"}, "X", True)


# Commands


def parse(app: str, command: str, argv: list[str]) -> dict[str, Any]:
    parser = load_command_class(app, command).create_parser("manage.py", command)
    return vars(parser.parse_args(argv))


def test_rundesk_listens_on_loopback_port_8000_by_default() -> None:
    options = parse("desktop", "rundesk", [])

    assert (options["host"], options["port"], options["reset_admin"]) == ("127.0.0.1", 8000, False)


def test_rundesk_takes_host_port_and_reset_admin() -> None:
    options = parse("desktop", "rundesk", ["--host", "0.0.0.0", "--port", "9000", "--reset-admin"])

    assert (options["host"], options["port"], options["reset_admin"]) == ("0.0.0.0", 9000, True)


def test_voicesim_serves_on_8090_with_the_control_api_by_default() -> None:
    options = parse("simulator", "voicesim", [])

    assert options["host"] == "127.0.0.1"
    assert options["port"] == 8090
    assert options["prefix"] == ""
    assert options["control_enabled"] is True
    assert options["answer_delay_ms"] == 1500


def test_voicesim_takes_prefix_no_control_and_answer_delay() -> None:
    argv = ["--port", "9100", "--prefix", "/sim", "--no-control", "--answer-delay-ms", "0"]
    options = parse("simulator", "voicesim", argv)

    assert (options["port"], options["prefix"]) == (9100, "/sim")
    assert options["control_enabled"] is False
    assert options["answer_delay_ms"] == 0


@pytest.mark.django_db
def test_demo_agents_get_their_names_as_passwords(capsys: Any) -> None:
    logins = create_demo_agent_logins(sys.stdout)

    names = ("agent1", "agent2", "agent4", "agent101", "agent102", "lead1", "lead101")
    assert logins == [(name, name) for name in names]
    assert Client().login(username="agent2", password="agent2")
    assert Client().login(username="agent101", password="agent101")


@pytest.mark.django_db
def test_the_admin_password_is_made_once_and_again_only_on_reset() -> None:
    command = RundeskCommand()

    first = command.ensure_admin(reset=False)
    again = command.ensure_admin(reset=False)
    reset = command.ensure_admin(reset=True)

    assert first and again is None and reset and reset != first
    assert Client().login(username="admin", password=reset)
    assert get_user_model().objects.get(username="admin").is_superuser


# Channels closes stale database connections before each handler, so the consumer touches the database.
@pytest.mark.django_db
async def test_the_in_process_worker_serves_every_channel_route() -> None:
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    class Echo(AsyncConsumer):
        async def test_ping(self, message: dict[str, Any]) -> None:
            await received.put(message)

    layer = InMemoryChannelLayer()
    tasks = start_session_workers({"test-sessions": Echo.as_asgi()}, layer)
    try:
        await layer.send("test-sessions", {"type": "test.ping", "n": 1})
        message = await asyncio.wait_for(received.get(), timeout=5)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    assert message == {"type": "test.ping", "n": 1}


def test_the_in_process_worker_starts_nothing_without_routes() -> None:
    assert start_session_workers({}, InMemoryChannelLayer()) == []


def test_rundesk_serves_the_embedded_desk_on_a_fresh_database(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'desk.sqlite3'}"}
    for name in ("REDIS_URL", "SIMULATOR_ENABLED"):
        env.pop(name, None)
    log = tmp_path / "rundesk.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "rundesk", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        response = None
        deadline = time.monotonic() + 30
        while response is None and time.monotonic() < deadline and process.poll() is None:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            except httpx.TransportError:
                time.sleep(0.2)
        output = log.read_text()
        assert response is not None, output
        assert response.status_code == 200, output
        assert response.json()["database"] == "ok"
        assert response.json()["simulator"] == "embedded"
        assert httpx.get(f"http://127.0.0.1:{port}/sim/control/state", timeout=2).status_code == 200
        assert f"Switchboard desk ready at http://127.0.0.1:{port}/" in output
        assert "demo login: agent4 / agent4" in output
        assert "admin login: admin / " in output
    finally:
        stop_process(process)


# README


def test_the_readme_quick_start_is_exactly_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick_start = re.search(r"^## Quick start\n(.*?)(?=^## )", readme, re.M | re.S)
    assert quick_start is not None
    blocks = re.findall(r"^```(?:\w+)?\n(.*?)^```", quick_start.group(1), re.M | re.S)
    commands = [line.strip() for block in blocks for line in block.splitlines() if line.strip()]

    assert commands == [
        "python3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/python manage.py rundesk",
        "bash scripts/test",
    ]


# The libraries that speak to a Voice API and the modules that wrap them; the registry
# (``calls.vendors`` itself) is what everyone else may use.
VENDOR_ONLY = (
    "httpx",
    "aiocometd_noloop",
    "calls.vendors.genesys",
    "calls.vendors.huawei",
    "calls.vendors.cometd",
    "calls.vendors.http",
)


def _imports(path: Path) -> set[str]:
    import ast

    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                package = ".".join(path.relative_to(ROOT).with_suffix("").parts[: -node.level])
                module = f"{package}.{module}" if module else package
            names |= {module, *(f"{module}.{alias.name}" for alias in node.names)}
    return names


def test_only_the_vendor_modules_import_httpx_aiocometd_or_a_vendor_module() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            name for name in _imports(path) if any(name == v or name.startswith(v + ".") for v in VENDOR_ONLY)
        )
        for package in ("calls", "desktop")
        for path in (ROOT / package).rglob("*.py")
        if "vendors" not in path.parts and "migrations" not in path.parts
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_each_vendor_module_is_one_backend_behind_the_registry() -> None:
    from calls.vendors import BACKENDS
    from calls.voice import VoiceBackend

    assert sorted(BACKENDS) == ["genesys", "huawei"]
    assert all(issubclass(backend, VoiceBackend) for backend in BACKENDS.values())
    assert {backend.__module__ for backend in BACKENDS.values()} == {
        "calls.vendors.genesys",
        "calls.vendors.huawei",
    }
