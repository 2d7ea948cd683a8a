"""What an agent's click and a desk tab cost on the way in: each thread hop of an async request
waits for a thread (about half a millisecond idle, more under load), so the path takes as few as
its database work needs; a tab that connects renders its snapshot once, and its database reads do
not queue on the one thread that Channels gives every socket of the process (on PostgreSQL: SQLite
keeps all database work on that thread)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from asgiref.sync import SyncToAsync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connection
from django.test import Client
from django.utils import timezone

from calls import fragments, presence, services
from calls.models import AgentLogin, LiveCall
from desktop import tabs
from desktop.asgi import application
from desktop.settings import caches_from_env
from tests.desk import Desk, desk_client
from tests.servers import passes_on_postgresql

pytestmark = pytest.mark.django_db(transaction=True)

HOOKS = ("process_request", "process_view", "process_response")
ON_POSTGRESQL = "SWITCHBOARD_REQUEST_PATH_ON_POSTGRESQL"


@contextmanager
def thread_hops(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Callable[..., Any]]]:
    """Every function sent to a thread (``sync_to_async``) while the block runs."""
    sent: list[Callable[..., Any]] = []
    original = SyncToAsync.__call__

    async def recording(self: SyncToAsync[Any, Any], *args: Any, **kwargs: Any) -> Any:
        sent.append(self.func)
        return await original(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(SyncToAsync, "__call__", recording)
        yield sent


def name_of(func: Callable[..., Any]) -> str:
    return str(getattr(func, "__qualname__", None) or getattr(func, "__name__", repr(func)))


async def test_a_click_runs_no_middleware_hook_in_a_thread(
    agent1: AgentLogin, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await desk_client(agent1.user)
    # The first request of a session moves its idle expiry on: a save, in a thread.
    await client.post("/calls/NO-SUCH-CALL/", {"operation": "Retrieve"})

    with thread_hops(monkeypatch) as sent:
        response = await client.post("/calls/NO-SUCH-CALL/", {"operation": "Hold"})

    assert response.status_code == 404
    hooks = [name_of(func) for func in sent if name_of(func).rsplit(".", 1)[-1] in HOOKS]
    assert hooks == []


async def test_a_click_reads_the_user_and_the_call_in_one_thread_hop_each(
    agent1: AgentLogin, monkeypatch: pytest.MonkeyPatch
) -> None:
    await LiveCall.objects.acreate(
        login=agent1, call_id="C1", state="Held", capabilities=["Retrieve"], started_at=timezone.now()
    )
    client = await desk_client(agent1.user)

    with thread_hops(monkeypatch) as sent:
        await client.post("/calls/C1/", {"operation": "Retrieve"})

    names = [name_of(func) for func in sent]
    # The session and the user together; the login and the call together.
    assert names.count("get_user") == 1
    assert not any("aget" in name or "_get_session_from_db" in name for name in names)
    assert sum("_login_and_call" in name for name in names) == 1
    assert not any(name.endswith(("login_for", "own_live_call")) for name in names)


async def test_a_click_passes_both_rate_limits_on_the_shared_cache_in_one_thread_hop(
    agent1: AgentLogin, monkeypatch: pytest.MonkeyPatch, settings: Any, redis_url: str
) -> None:
    settings.CACHES = caches_from_env({"REDIS_URL": redis_url})
    settings.CACHES["default"]["KEY_PREFIX"] = f"test-hops-{time.monotonic_ns()}"
    client = await desk_client(agent1.user)
    await client.post("/calls/C0/", {"operation": "Retrieve"})  # the session's idle expiry moves on

    with thread_hops(monkeypatch) as sent:
        await client.post("/calls/C1/", {"operation": "Retrieve"})

    limits = [func.__name__ for func in sent if getattr(func, "__module__", "") == "calls.ratelimit"]
    # The storm limit and the double-click check together; the refused action is then forgotten.
    assert limits == ["_admit", "_forget"]


async def test_a_tab_that_connects_renders_its_snapshot_once(
    agent1: AgentLogin, monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered: list[int] = []
    original = fragments.snapshot

    def counted(login: AgentLogin) -> str:
        rendered.append(login.pk)
        return original(login)

    monkeypatch.setattr(fragments, "snapshot", counted)
    desk = Desk(agent1)

    snapshot = await desk.open()

    assert 'id="agent-state"' in snapshot
    assert rendered == [agent1.pk]
    await desk.close()


async def test_the_open_tabs_of_a_process_are_checked_together_in_one_thread_hop(
    agent1: AgentLogin, agent2: AgentLogin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every period each open tab's desk session is checked and its owner told it is open: the tabs
    that come due together (here, all three) share one trip to the database, not one each."""
    monkeypatch.setattr(presence, "TAB_ALIVE_SECONDS", 0.5)
    monkeypatch.setattr(tabs, "GATHER_SHARE", 1.0)  # tabs that connected within a period go together
    checked: list[int] = []
    original = tabs.check

    async def counted(batch: list[tuple[str, int, int, int]]) -> list[tabs.Verdict]:
        checked.append(len(batch))
        return await original(batch)

    monkeypatch.setattr(tabs, "check", counted)
    desks = [Desk(agent1), Desk(agent1), Desk(agent2)]
    await asyncio.gather(*(desk.open() for desk in desks))  # connected within a period of each other

    with thread_hops(monkeypatch) as sent:
        await asyncio.sleep(2.3)

    assert len(checked) >= 2 and set(checked) == {3}
    names = [name_of(func) for func in sent]
    assert not any(name.endswith(("owner_of", "_login")) for name in names)  # no tab reads its own login
    for desk in desks:
        await desk.close()


async def test_a_push_reaches_its_tab_while_the_sockets_shared_database_thread_is_busy(
    agent1: AgentLogin,
) -> None:
    desk = Desk(agent1)
    await desk.open()
    # Channels' one thread for every consumer's database work, held by someone else's slow query.
    busy = asyncio.create_task(sync_to_async(time.sleep, thread_sensitive=True)(3))
    await asyncio.sleep(0.1)
    try:
        await services.publish((agent1.user_id, '<p id="probe"></p>'))

        await desk.until('id="probe"', wait=1)
        assert not busy.done()
    finally:
        await busy
        await desk.close()


@pytest.mark.skipif(not os.environ.get(ON_POSTGRESQL), reason="only in the PostgreSQL run")
async def test_a_tab_connects_while_the_sockets_shared_database_thread_is_busy(agent1: AgentLogin) -> None:
    client = Client()
    await sync_to_async(client.force_login)(agent1.user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost"), (b"cookie", cookie)]
    # Channels' one thread for every consumer's database work, held by someone else's slow query.
    busy = asyncio.create_task(sync_to_async(time.sleep, thread_sensitive=True)(4))
    await asyncio.sleep(0.1)
    socket = WebsocketCommunicator(application, "/ws/desktop/", headers=headers)
    try:
        connected, _ = await socket.connect(timeout=2)
        assert connected
        assert 'id="agent-state"' in await socket.receive_from(timeout=2)
        assert not busy.done()
    finally:
        await socket.disconnect()
        await busy


@pytest.mark.skipif(bool(os.environ.get(ON_POSTGRESQL)), reason="this is the PostgreSQL run")
def test_the_request_path_holds_on_postgresql(postgres_url: str) -> None:
    assert connection.vendor == "sqlite"  # this run; the one below is PostgreSQL's
    output = passes_on_postgresql(__file__, postgres_url, flag=ON_POSTGRESQL, timeout=300)

    assert "7 passed" in output
