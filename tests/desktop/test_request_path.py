"""What an agent's click and a desk tab cost on the way in: each thread hop of an async request
waits for a thread (about half a millisecond idle, more under load), so the path takes as few as
its database work needs, and a tab that connects renders its snapshot once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from asgiref.sync import SyncToAsync
from django.utils import timezone

from calls import fragments
from calls.models import AgentLogin, LiveCall
from tests.desk import Desk, desk_client

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

HOOKS = ("process_request", "process_view", "process_response")


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
