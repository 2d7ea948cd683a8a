"""What a session costs as a worker brings hundreds up at once: the desks' reads and the first writes.

At a worker's start every one of its sessions reads its agent's desk and saves what it learns as it
signs in. These tests hold the number of database round trips of that to what the work needs.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from calls import live, persist, services
from calls.models import AgentLogin, CallRecord, LiveCall
from calls.voice import Call
from calls.worker import request_sessions
from tests.desk import RunningWorker, saved


def _history(agent1: AgentLogin, agent2: AgentLogin) -> datetime.datetime:
    """agent1: an answered call ended, a consult ended after it, and a live answered call;
    agent2: one call that rang and was never answered. When the last of them ended."""
    now = timezone.now()

    def ago(minutes: int) -> datetime.datetime:
        return now - datetime.timedelta(minutes=minutes)

    inbound = {"call_type": "Inbound", "direction": CallRecord.INBOUND}
    CallRecord.objects.create(
        login=agent1,
        call_id="handled",
        started_at=ago(30),
        answered_at=ago(29),
        ended_at=ago(20),
        disposition="sale",
        **inbound,
    )
    CallRecord.objects.create(
        login=agent1,
        call_id="consult",
        call_type="Consult",
        direction=CallRecord.CONSULT,
        started_at=ago(19),
        answered_at=ago(19),
        ended_at=ago(18),
    )
    CallRecord.objects.create(
        login=agent1, call_id="live", started_at=ago(2), answered_at=ago(1), parties=["5551000"], **inbound
    )
    LiveCall.objects.create(
        login=agent1,
        call_id="live",
        state="Held",
        call_type="Inbound",
        participants=["5551000"],
        capabilities=["Retrieve"],
        started_at=ago(2),
    )
    CallRecord.objects.create(login=agent2, call_id="missed", started_at=ago(12), ended_at=ago(11), **inbound)
    return ago(11)


def _fresh(*logins: AgentLogin) -> list[live.Desk]:
    return [live.Desk(AgentLogin.objects.select_related("server").get(pk=login.pk)) for login in logins]


@pytest.mark.django_db
def test_desks_loaded_together_are_read_in_four_queries_with_what_each_desk_read_alone(
    agent1: AgentLogin, agent2: AgentLogin, lead1: AgentLogin
) -> None:
    _history(agent1, agent2)
    AgentLogin.objects.filter(pk=agent2.pk).update(agent_state="NotReady", state_reason="Lunch")
    desks = _fresh(agent1, agent2, lead1)

    with CaptureQueriesContext(connection) as queries:
        live._load(desks)

    assert len(queries) == 4
    first, second, third = desks
    assert first.last_handled is not None and first.last_handled.call_id == "handled"
    assert first.last_handled.disposition == "sale"
    assert first.last_end == CallRecord.objects.get(login=agent1, call_id="consult").ended_at
    [(call_id, followed)] = first.calls.items()
    assert call_id == "live" and followed.live.state == "Held"
    assert followed.answered and not followed.consult and followed.parties == ["5551000"]
    assert (second.last_handled, second.login.agent_state, second.login.state_reason) == (
        None,
        "NotReady",
        "Lunch",
    )
    assert second.last_end == CallRecord.objects.get(login=agent2).ended_at and not second.calls
    assert (third.last_end, third.last_handled, third.calls) == (None, None, {})


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_desks_that_start_in_the_same_turn_are_loaded_in_one_read(
    agent1: AgentLogin, agent2: AgentLogin, lead1: AgentLogin, monkeypatch: pytest.MonkeyPatch
) -> None:
    ended = await sync_to_async(_history)(agent1, agent2)
    desks = await sync_to_async(_fresh)(agent1, agent2, lead1)
    batches: list[int] = []
    load = live._load

    def counted(loading: list[live.Desk]) -> None:
        batches.append(len(loading))
        load(loading)

    monkeypatch.setattr(live, "_load", counted)

    await asyncio.gather(*(desk.load() for desk in desks))
    await desks[1].load()

    assert batches == [3, 1]
    assert desks[1].last_end is not None and abs(desks[1].last_end - ended) < datetime.timedelta(seconds=1)
    assert list(desks[0].calls) == ["live"]


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("vendor", ["genesys", "huawei"])
async def test_a_session_that_comes_up_saves_what_it_learned_in_one_transaction(
    vendor: str,
    agent1: AgentLogin,
    agent101: AgentLogin,
    monkeypatch: pytest.MonkeyPatch,
    quick_backoff: None,
) -> None:
    """Its credentials, its desk as the first resync found it and its link, connected: before, one
    transaction for the credentials and another for the rest, for every session of a start."""
    login = agent1 if vendor == "genesys" else agent101
    await sync_to_async(AgentLogin.objects.filter(pk=login.pk).update)(agent_state="NotReady")
    transactions: list[set[str]] = []
    run = persist._run

    def counted(batch: list[functools.partial[None]], *args: Any) -> None:
        transactions.append({write.func.__name__ for write in batch})
        run(batch, *args)

    monkeypatch.setattr(persist, "_run", counted)
    worker = RunningWorker()
    await worker.start()
    try:
        await request_sessions(get_channel_layer(), [login.pk])

        @sync_to_async
        def state() -> tuple[str, bool]:
            saved_login = AgentLogin.objects.get(pk=login.pk)
            return saved_login.connection, bool(saved_login.voice_session)

        await saved(state, (AgentLogin.CONNECTED, True), wait=15)
    finally:
        await worker.stop()
    # Later events (an agent state the switch announces after the sign-in) are saved after these.
    assert transactions[0] == {"save_credentials", "save_calls", "save_agent_state", "save_connection"}


@pytest.mark.django_db
def test_a_resync_that_finds_no_call_gone_deletes_nothing(agent1: AgentLogin, agent2: AgentLogin) -> None:
    """At a start every session's first resync rewrites its calls: an agent with none left to
    close costs one read, not a read and a DELETE."""
    _history(agent1, agent2)
    held = Call("live", "Held", "Inbound", participants=("5551000",), capabilities=("Retrieve",))

    with CaptureQueriesContext(connection) as queries:
        services.save_calls(agent2, [], timezone.now())
        services.save_calls(agent1, [held], timezone.now())

    assert not [q for q in queries if q["sql"].startswith("DELETE")]
    assert LiveCall.objects.get(login=agent1).state == "Held"

    services.save_calls(agent1, [], timezone.now())

    assert not LiveCall.objects.filter(login=agent1).exists()
    assert CallRecord.objects.get(login=agent1, call_id="live").ended_at is not None
