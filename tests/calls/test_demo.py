"""The demo of the embedded default: its agents, their logins on the embedded simulator, its URL."""

from __future__ import annotations

import asyncio
import io
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer
from django.contrib.auth import get_user_model

from calls.demo import create_demo_agent_logins, point_embedded_server
from calls.models import AgentLogin, Team, VoiceServer
from desktop.management.commands.rundesk import bring_sessions_back, embedded_simulator_url
from tests.servers import free_port, stop_process

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_each_demo_agent_gets_a_login_on_the_embedded_simulator() -> None:
    create_demo_agent_logins(io.StringIO())

    genesys = VoiceServer.objects.get(embedded=True, dialect="genesys")
    huawei = VoiceServer.objects.get(embedded=True, dialect="huawei")
    logins = {login.user.username: login for login in AgentLogin.objects.select_related("user", "server")}
    assert genesys.name == "Embedded simulator"
    assert huawei.name == "Embedded simulator (Huawei)"
    assert sorted(logins) == ["agent1", "agent101", "agent102", "agent2", "agent4", "lead1", "lead101"]
    assert {
        name: (login.server, login.username, login.dn, login.place) for name, login in logins.items()
    } == {
        "agent1": (genesys, "agent1", "5005", "place_5005"),
        "agent2": (genesys, "agent2", "5001", "place_5001"),
        "agent4": (genesys, "agent4", "15000", "place_15000"),
        "agent101": (huawei, "101", "6101", "place_6101"),
        "agent102": (huawei, "102", "6102", "place_6102"),
        "lead1": (genesys, "lead1", "5010", "place_5010"),
        "lead101": (huawei, "103", "6103", "place_6103"),
    }
    passwords = {name: login.password for name, login in logins.items()}
    assert passwords == {**{name: name for name in logins}, "lead101": "agent103"}


@pytest.mark.django_db
def test_creating_the_demo_twice_changes_nothing() -> None:
    first = io.StringIO()
    create_demo_agent_logins(first)
    again = io.StringIO()

    logins = create_demo_agent_logins(again)

    assert [name for name, _ in logins] == [
        "agent1",
        "agent2",
        "agent4",
        "agent101",
        "agent102",
        "lead1",
        "lead101",
    ]
    assert all(name == password for name, password in logins)
    assert "Created agent login agent1 (DN 5005) on Embedded simulator" in first.getvalue()
    assert "Created agent login 101 (DN 6101) on Embedded simulator (Huawei)" in first.getvalue()
    assert "Created Genesys demo team, led by lead1" in first.getvalue()
    assert again.getvalue() == ""
    assert VoiceServer.objects.count() == 2
    assert AgentLogin.objects.count() == 7
    assert get_user_model().objects.count() == 7
    assert Team.objects.count() == 2


@pytest.mark.django_db
def test_the_demo_keeps_what_an_operator_changed() -> None:
    create_demo_agent_logins(io.StringIO())
    AgentLogin.objects.filter(user__username="agent2").update(dn="5002")
    login = AgentLogin.objects.get(user__username="agent2")
    login.password = "changed"
    login.save()

    create_demo_agent_logins(io.StringIO())

    login = AgentLogin.objects.get(user__username="agent2")
    assert (login.dn, login.password) == ("5002", "changed")


@pytest.mark.django_db
def test_pointing_the_embedded_servers_changes_their_urls_only() -> None:
    create_demo_agent_logins(io.StringIO())
    other = VoiceServer.objects.create(name="Site A", base_url="http://gws.example.test")

    point_embedded_server("http://127.0.0.1:8123/sim")

    assert dict(VoiceServer.objects.filter(embedded=True).values_list("dialect", "base_url")) == {
        "genesys": "http://127.0.0.1:8123/sim/genesys",
        "huawei": "http://127.0.0.1:8123/sim/huawei",
    }
    other.refresh_from_db()
    assert other.base_url == "http://gws.example.test"


@pytest.mark.django_db
def test_pointing_without_an_embedded_server_does_nothing() -> None:
    point_embedded_server("http://127.0.0.1:8123/sim")

    assert not VoiceServer.objects.exists()


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8000/sim"),
        ("0.0.0.0", "http://127.0.0.1:8000/sim"),
        ("::", "http://[::1]:8000/sim"),
        ("::1", "http://[::1]:8000/sim"),
        ("desk.example.test", "http://desk.example.test:8000/sim"),
    ],
)
def test_rundesk_points_the_embedded_server_at_an_address_it_can_connect_to(host: str, url: str) -> None:
    assert embedded_simulator_url(host, 8000) == url


@pytest.mark.django_db
def test_once_listening_rundesk_points_the_embedded_server_then_asks_for_a_reconcile() -> None:
    create_demo_agent_logins(io.StringIO())
    layer = InMemoryChannelLayer()

    async def listening() -> dict[str, str]:
        await bring_sessions_back("http://127.0.0.1:8123/sim", layer)
        return await asyncio.wait_for(layer.receive("voice-sessions"), timeout=1)

    # async_to_sync runs the ORM part back in this thread, where the test database is.
    assert async_to_sync(listening)() == {"type": "session.reconcile"}
    assert (
        VoiceServer.objects.get(embedded=True, dialect="genesys").base_url
        == "http://127.0.0.1:8123/sim/genesys"
    )


@pytest.mark.multiprocess
def test_a_restarted_rundesk_brings_back_the_sessions_that_should_run(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'desk.sqlite3'}"}
    for name in ("REDIS_URL", "SIMULATOR_ENABLED", "DJANGO_SETTINGS_MODULE"):
        env.pop(name, None)
    setup = (
        "import io; from calls.demo import create_demo_agent_logins; from calls.models import AgentLogin; "
        "create_demo_agent_logins(io.StringIO()); "
        "AgentLogin.objects.filter(username='agent1').update(wanted=True)"
    )
    for args in (["migrate", "-v", "0"], ["shell", "-c", setup]):
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
    port = free_port()
    log = tmp_path / "rundesk.log"

    def agent1() -> tuple[str, str]:
        with sqlite3.connect(tmp_path / "desk.sqlite3", timeout=10) as db:
            return db.execute(
                "SELECT s.base_url, l.connection FROM calls_agentlogin l JOIN calls_voiceserver s "
                "ON s.id = l.server_id WHERE l.username = 'agent1'"
            ).fetchone()

    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "rundesk", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=out,
        )
    try:
        deadline = time.monotonic() + 30
        while agent1() != (f"http://127.0.0.1:{port}/sim/genesys", "connected"):
            assert process.poll() is None and time.monotonic() < deadline, (agent1(), log.read_text())
            time.sleep(0.2)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    finally:
        stop_process(process)
