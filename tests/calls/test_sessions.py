"""The session worker against the simulator over loopback: pushes, saved state, self-healing.

No mocks of our own code: a real voicesim process, real HTTP and CometD, the real worker
consumer on the in-memory layer, and the desktop consumer through Channels' communicator.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import re
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import OperationalError, connection
from django.utils import timezone
from prometheus_client import REGISTRY

from calls import actions
from calls import worker as calls_worker
from calls.backends import backend_for
from calls.models import AgentLogin
from calls.voice import Call, CallChanged
from calls.worker import AgentSession
from desktop.settings import channel_layers_from_env
from tests.desk import (
    Desk,
    RunningWorker,
    answered_call,
    card,
    control,
    desk_client,
    eventually,
    live_calls,
    ready_desk,
    records,
    saved,
    server_calls,
)
from tests.servers import free_port

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


async def test_seed_002_pushes_every_step_and_saves_state_and_history(
    simulator: str, agent1: AgentLogin, worker: RunningWorker
) -> None:
    await control(simulator, "PUT", "/control/settings", {"answer_delay_ms": None})
    desk = await ready_desk(agent1)
    call_id = (await control(simulator, "POST", "/control/calls", {"from": "5000", "to": "5005"}))["id"]
    ringing = await desk.until(card(call_id, "Ringing"))
    assert 'hx-swap-oob="beforeend:#calls"' in ringing
    assert 'data-operation="Answer"' in ringing and 'data-operation="Hangup"' not in ringing
    await saved(lambda: live_calls(agent1), {call_id: ("Ringing", "")})

    await actions.call_operation(agent1.user, call_id, "Answer", {})
    established = await desk.until(card(call_id, "Established"))
    assert (
        'data-operation="Hold"' in established
        and 'form class="op-form" data-operation="InitiateTransfer"' in (established)
    )
    await saved(lambda: live_calls(agent1), {call_id: ("Established", "")})

    await actions.call_operation(agent1.user, call_id, "InitiateTransfer", {"destination": "5001"})
    await desk.until(card(call_id, "Held"))
    consult = await desk.until(r'data-state="Dialing"[^>]*data-call-type="Consult"|data-call-type="Consult"')
    consult_id = re.search(r'id="call-([^"]+)" class', consult).group(1)
    assert 'hx-swap-oob="beforeend:#calls"' in consult
    assert f'data-parent="{call_id}"' in consult and 'data-operation="CompleteTransfer"' in consult
    await saved(lambda: live_calls(agent1), {call_id: ("Held", ""), consult_id: ("Dialing", call_id)})

    await actions.call_operation(agent1.user, consult_id, "CompleteTransfer", {})
    await desk.until(rf'<div id="call-{call_id}" hx-swap-oob="delete">')
    await desk.until(rf'<div id="call-{consult_id}" hx-swap-oob="delete">')
    await saved(lambda: live_calls(agent1), {})
    history = await records(agent1)
    assert [(r.call_id, r.final_state, r.parties) for r in history] == [
        (call_id, "Released", ["5000"]),
        (consult_id, "Released", ["5001"]),
    ]
    assert all(r.ended_at is not None for r in history)
    await desk.close()


async def test_seed_003_hold_dial_and_swap_arrive_as_fragments(
    simulator: str, agent1: AgentLogin, worker: RunningWorker
) -> None:
    await control(simulator, "PUT", "/control/settings", {"answer_delay_ms": None})
    desk = await ready_desk(agent1)
    first = await answered_call(simulator, desk)
    await actions.call_operation(agent1.user, first, "Hold", {})
    await desk.until(card(first, "Held"))
    await actions.dial(agent1.user, {"destination": "5001"})
    dialing = await desk.until(r'data-state="Dialing"')
    second = re.search(r'id="call-([^"]+)" class', dialing).group(1)
    await control(simulator, "POST", "/control/parties/5001/answer")
    swappable = await desk.until(card(second, "Established"))
    assert 'data-operation="SwapCalls"' in swappable
    await actions.call_operation(agent1.user, second, "SwapCalls", {})
    await desk.until(card(second, "Held"))
    await desk.until(card(first, "Established"))
    await saved(lambda: live_calls(agent1), {first: ("Established", ""), second: ("Held", "")})
    await desk.close()


async def test_two_tabs_of_an_agent_get_every_push_and_another_agent_gets_none(
    simulator: str, agent1: AgentLogin, agent2: AgentLogin, worker: RunningWorker
) -> None:
    first_tab = await ready_desk(agent1)
    second_tab = Desk(agent1)
    await second_tab.open()
    other = Desk(agent2)
    await other.open()
    await other.until(r'id="connection"[^>]*data-status="connected"')
    call_id = (await control(simulator, "POST", "/control/calls", {"from": "5000", "to": "5005"}))["id"]
    for tab in (first_tab, second_tab):
        await tab.until(card(call_id, "Ringing"))
    await actions.call_operation(agent1.user, call_id, "Answer", {})
    for tab in (first_tab, second_tab):
        await tab.until(card(call_id, "Established"))
    assert await other.socket.receive_nothing(timeout=0.5)
    assert not any(call_id in html for html in other.received)
    for tab in (first_tab, second_tab, other):
        await tab.close()


async def test_an_agent_cannot_act_on_another_agents_call(
    simulator: str, agent1: AgentLogin, agent2: AgentLogin, worker: RunningWorker
) -> None:
    desk = await ready_desk(agent1)
    call_id = (await control(simulator, "POST", "/control/calls", {"from": "5000", "to": "5005"}))["id"]
    await desk.until(card(call_id, "Ringing"))
    with pytest.raises(actions.NotFound):
        await actions.call_operation(agent2.user, call_id, "Answer", {})
    assert (await server_calls(simulator, "agent1"))[call_id][0] == "Ringing"
    await desk.close()


async def test_an_operation_the_saved_capabilities_do_not_offer_is_refused_without_asking_the_voice_api(
    simulator: str, agent1: AgentLogin, worker: RunningWorker
) -> None:
    desk = await ready_desk(agent1)
    call_id = (await control(simulator, "POST", "/control/calls", {"from": "5000", "to": "5005"}))["id"]
    await desk.until(card(call_id, "Ringing"))
    with pytest.raises(actions.ActionRefused, match="not available"):
        await actions.call_operation(agent1.user, call_id, "Hold", {})
    with pytest.raises(actions.ActionRefused, match="phone number"):
        await actions.dial(agent1.user, {"destination": "not a number"})
    assert (await server_calls(simulator, "agent1"))[call_id][0] == "Ringing"
    await desk.close()


async def test_after_a_cometd_drop_an_outage_and_a_worker_restart_the_state_equals_the_servers(
    simulator: str, agent1: AgentLogin, worker: RunningWorker
) -> None:
    await control(simulator, "PUT", "/control/settings", {"answer_delay_ms": None})
    desk = await ready_desk(agent1)
    await answered_call(simulator, desk)

    # 1. The server forgets the CometD session; a call placed meanwhile is notified to nobody.
    await control(simulator, "POST", "/control/faults", {"drop_cometd_sessions": True})
    second = (await control(simulator, "POST", "/control/calls", {"from": "5002", "to": "5005"}))["id"]
    await desk.until(card(second, "Ringing"))

    # 2. The Voice API answers 503 for a while; the caller hangs up meanwhile.
    await control(simulator, "POST", "/control/faults", {"http_status": 503, "for_ms": 1500})
    await control(simulator, "POST", "/control/parties/5002/hangup")
    await desk.until(rf'<div id="call-{second}" hx-swap-oob="delete">', wait=20)
    await desk.until(r'id="connection"[^>]*data-status="reconnecting"', wait=10)
    await desk.until(r'id="connection"[^>]*data-status="connected"', wait=20)

    # 3. The worker stops (SIGTERM drain) and the call changes while no worker runs.
    await worker.stop()
    await control(simulator, "POST", "/control/parties/5000/hangup")
    third = (await control(simulator, "POST", "/control/calls", {"from": "5003", "to": "5005"}))["id"]
    await worker.start()
    await desk.until(card(third, "Ringing"), wait=20)

    await saved(lambda: live_calls(agent1), {third: ("Ringing", "")})
    assert await server_calls(simulator, "agent1") == {third: ("Ringing", "")}
    snapshot = await Desk(agent1).open()
    assert re.findall(r'<article id="call-([^"]+)"', snapshot) == [third]
    await desk.close()


async def test_a_malformed_notification_is_logged_and_skipped(
    simulator: str, agent1: AgentLogin, caplog: pytest.LogCaptureFixture
) -> None:
    await calls_worker.set_wanted([agent1.pk], True)
    assert await calls_worker.claim(agent1.pk) is not None  # a session writes only under its lease
    session = AgentSession(agent1)
    backend = backend_for(agent1)
    caplog.set_level(logging.WARNING, logger="switchboard.genesys")
    bad = [
        {"messageType": "CallStateChangeMessage", "call": {"id": "X1", "state": "Exploded"}},
        {"messageType": "CallStateChangeMessage", "call": "not an object"},
        {
            "messageType": "CallStateChangeMessage",
            "call": {"id": "X2", "state": "Ringing", "capabilities": "Answer"},
        },
        "just a string",
    ]
    assert [backend.event_of("/v2/me/calls", data) for data in bad] == [None] * len(bad)
    assert len([r for r in caplog.records if "malformed" in r.getMessage()]) == len(bad)
    good = {
        "messageType": "CallStateChangeMessage",
        "notificationType": "StatusChange",
        "call": {"id": "X3", "state": "Ringing", "capabilities": ["Answer"], "participants": []},
    }
    event = backend.event_of("/v2/me/calls", good)
    assert event is not None
    await session.apply(event)
    await session.writer.flush()
    await saved(lambda: live_calls(agent1), {"X3": ("Ringing", "")})
    await backend.aclose()


async def test_a_session_whose_lease_another_worker_took_writes_nothing_more_and_stops(
    agent1: AgentLogin, caplog: pytest.LogCaptureFixture
) -> None:
    """Two owners' writes must never interleave: once another worker holds the lease (this one was
    too slow to renew it), what this session still has to save is left to the new owner."""
    await calls_worker.set_wanted([agent1.pk], True)
    assert await calls_worker.claim(agent1.pk) is not None
    session = AgentSession(agent1)
    session.task = asyncio.create_task(asyncio.sleep(3600))
    await sync_to_async(AgentLogin.objects.filter(pk=agent1.pk).update)(worker="another-worker")
    caplog.set_level(logging.WARNING, logger="switchboard.persist")

    await session.apply(CallChanged(Call(id="X9", state="Ringing", call_type="Inbound")))
    await session.writer.flush()

    assert await live_calls(agent1) == {}
    assert session.stopping and session.task.cancelling()
    assert "another worker holds the session now" in caplog.text
    with contextlib.suppress(asyncio.CancelledError):
        await session.task


async def test_deactivating_the_user_stops_the_session_and_says_so(
    simulator: str, agent1: AgentLogin, worker: RunningWorker
) -> None:
    desk = await ready_desk(agent1)

    @sync_to_async
    def deactivate() -> None:
        user = agent1.user
        user.is_active = False
        user.save()

    await deactivate()
    await desk.until(r'id="connection"[^>]*data-status="offline"')

    @sync_to_async
    def bookkeeping() -> tuple[bool, str]:
        login = AgentLogin.objects.get(pk=agent1.pk)
        return login.wanted, login.worker

    assert await bookkeeping() == (False, "")
    await desk.close()


async def test_stopping_the_worker_during_a_voice_api_outage_drains_promptly(
    simulator: str, agent1: AgentLogin, worker: RunningWorker
) -> None:
    desk = await ready_desk(agent1)
    await control(simulator, "POST", "/control/faults", {"http_status": 503, "for_ms": 5000})
    await control(simulator, "POST", "/control/calls", {"from": "5000", "to": "5005"})
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(worker.stop(), 8)
    assert loop.time() - started < 5
    await desk.close()


def _writes_failed() -> float:
    return REGISTRY.get_sample_value("switchboard_writes_failed_total") or 0.0


@sync_to_async
def _refuse_live_call_writes(refuse: bool) -> None:
    """A database that refuses every new live call (a trigger), as a full disk or a lost
    connection would, until it is told to take them again."""
    with connection.cursor() as cursor:
        if refuse:
            cursor.execute(
                "CREATE TRIGGER refuse_live_calls BEFORE INSERT ON calls_livecall "
                "BEGIN SELECT RAISE(ABORT, 'the database refuses'); END"
            )
        else:
            cursor.execute("DROP TRIGGER refuse_live_calls")


async def test_a_write_the_database_refuses_is_retried_logged_and_healed_by_a_resync(
    simulator: str, agent1: AgentLogin, worker: RunningWorker, caplog: pytest.LogCaptureFixture
) -> None:
    desk = await ready_desk(agent1)
    failed_before = _writes_failed()
    await _refuse_live_call_writes(True)
    try:
        placed = await control(simulator, "POST", "/control/calls", {"from": "5000", "to": "5005"})
        # The page does not wait for the database.
        await desk.until(card(placed["id"], "Ringing"), wait=2)
        deadline = asyncio.get_running_loop().time() + 10
        while _writes_failed() == failed_before:
            assert asyncio.get_running_loop().time() < deadline, "the refused write was never given up on"
            await asyncio.sleep(0.05)
        assert await live_calls(agent1) == {}
    finally:
        await _refuse_live_call_writes(False)
    assert any("writes failed" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
    # The session resyncs at its next look-after and saves what the Voice API reports.
    await saved(
        lambda: live_calls(agent1), {placed["id"]: ("Ringing", "")}, wait=calls_worker.WATCH_SECONDS + 5
    )
    await desk.close()


async def test_an_action_the_channel_layer_cannot_carry_is_refused_with_a_503_not_a_500(
    agent1: AgentLogin, settings: Any
) -> None:
    """Signing in goes to the session's owner over the channel layer; a layer that refuses (Redis
    down, or its connections used up) is the agent's "try again", never a server error."""
    from channels.layers import channel_layers

    settings.CHANNEL_LAYERS = channel_layers_from_env({"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    channel_layers.backends.clear()
    client = await desk_client(agent1.user)

    response = await client.post("/agent/", {"operation": "Login"})

    assert response.status_code == 503
    assert "cannot reach its session workers" in response.content.decode()


async def test_a_resync_reads_the_agents_calls_and_device_in_one_request(
    simulator: str, agent1: AgentLogin
) -> None:
    """Every session resyncs every minute: at 2,000 agents, 33 resyncs a second."""
    backend: Any = backend_for(agent1)
    await backend._sign_in_to_api()
    await backend.sign_in()
    placed = await control(simulator, "POST", "/control/calls", {"from": "5000", "to": "5005"})
    sent: list[str] = []

    async def count(request: httpx.Request) -> None:
        sent.append(f"{request.method} {request.url.path}")

    backend._http.event_hooks["request"].append(count)

    resynced = await backend.resync()

    assert sent == ["GET /genesys/api/v2/me"]
    assert [(call.id, call.state) for call in resynced.calls] == [(placed["id"], "Ringing")]
    assert resynced.state.state == "NotReady"
    await backend.aclose()


async def test_a_resync_reads_calls_and_devices_apart_from_a_server_that_leaves_them_out_of_the_user(
    agent1: AgentLogin,
) -> None:
    """A Voice API that answers ``GET /me`` without the sub-resources asked for (a server we cannot
    run here, so answered by a stand-in): the two documented reads instead."""
    device = {"id": "d1", "phoneNumber": "5005", "userState": {"state": "Ready"}}
    call = {"id": "c1", "state": "Established", "capabilities": ["Hold"], "participants": []}
    answers = {
        "/api/v2/me": {"statusCode": 0, "user": {"id": "u1", "userName": "agent1"}},
        "/api/v2/me/calls": {"statusCode": 0, "calls": [call]},
        "/api/v2/me/devices": {"statusCode": 0, "devices": [device]},
    }
    backend: Any = backend_for(agent1, {"cookies": {"JSESSIONID": "s1"}})
    await backend.aclose()
    backend._http = httpx.AsyncClient(
        base_url="http://gws.example.test/api/v2",
        transport=httpx.MockTransport(lambda request: httpx.Response(200, json=answers[request.url.path])),
    )

    resynced = await backend.resync()

    assert [(c.id, c.state) for c in resynced.calls] == [("c1", "Established")]
    assert resynced.state.state == "Ready"
    await backend.aclose()


async def test_a_starting_worker_claims_its_sessions_a_starts_worth_at_a_time(
    simulator: str,
    agent1: AgentLogin,
    agent2: AgentLogin,
    lead1: AgentLogin,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    quick_backoff: None,
) -> None:
    """Workers that start together share the agents: the first to look does not claim them all, and
    the others none (at 5,000 agents, one worker brought them all up while the second stood idle)."""
    settings.VOICE_SESSION_START_CONCURRENCY = 1
    logins = [agent1.pk, agent2.pk, lead1.pk]
    for login_id in logins:
        await calls_worker.set_wanted([login_id], True)
    claimed: list[int] = []
    claim_many = calls_worker.claim_many

    async def counted(login_ids: list[int]) -> list[AgentLogin]:
        claimed.append(len(login_ids))
        return await claim_many(login_ids)

    monkeypatch.setattr(calls_worker, "claim_many", counted)
    running = RunningWorker()
    await running.start()

    @sync_to_async
    def connections() -> list[str]:
        return list(AgentLogin.objects.filter(pk__in=logins).values_list("connection", flat=True))

    await saved(connections, [AgentLogin.CONNECTED] * 3, wait=15)
    await running.stop()
    assert claimed == [1, 1, 1]


async def test_a_session_opened_while_the_leases_are_renewed_is_not_ended_as_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker claims in turns while it renews its leases: a session claimed in between holds a
    fresh lease, and ending it as lost would hand it to another worker while it runs here."""
    consumer = calls_worker.VoiceSessionsConsumer()
    consumer.sessions = {}
    consumer._claims = None
    ended: list[int] = []

    async def end(login_id: int, why: str = "", *, announce: bool = True) -> None:
        ended.append(login_id)

    async def renew(login_ids: list[int]) -> set[int]:
        consumer.sessions[99] = AgentSession.__new__(AgentSession)  # claimed meanwhile
        return set(login_ids)

    monkeypatch.setattr(consumer, "_end", end)
    monkeypatch.setattr(calls_worker, "renew_leases", renew)

    await consumer._reconcile_now({"type": "session.reconcile"})

    assert ended == []
    assert consumer._claims is not None
    consumer._claims.cancel()


async def test_a_claim_the_database_refuses_is_logged_and_left_to_the_next_reconcile(
    agent1: AgentLogin, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    await calls_worker.set_wanted([agent1.pk], True)
    consumer = calls_worker.VoiceSessionsConsumer()
    consumer.sessions = {}
    consumer._claims = None

    async def refused(login_ids: list[int]) -> list[AgentLogin]:
        raise OperationalError("the database is down")

    monkeypatch.setattr(calls_worker, "claim_many", refused)
    caplog.set_level(logging.ERROR, logger="switchboard.worker")

    await consumer._reconcile_now({"type": "session.reconcile"})
    assert consumer._claims is not None
    await consumer._claims

    assert consumer.sessions == {}
    assert any("could not claim" in record.getMessage() for record in caplog.records)


def _running_sessions(login_id: int) -> list[asyncio.Task[Any]]:
    return [
        task
        for task in asyncio.all_tasks()
        if task.get_name() == f"voice-session-{login_id}" and not task.done()
    ]


async def test_a_session_ensured_while_the_worker_claims_it_runs_once(
    simulator: str, agent1: AgentLogin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page's ``session.ensure`` and the worker's own claims both win the lease (both are this
    worker's): whichever opens the session second must not start another beside the first."""
    consumer = calls_worker.VoiceSessionsConsumer()
    consumer.sessions = {}
    consumer._claims = None
    consumer._reconciler = None
    consumer._starting = asyncio.Semaphore(4)
    claim_many = calls_worker.claim_many
    claims: list[list[int]] = []

    async def claimed_while_the_claims_task_opens(login_ids: list[int]) -> list[AgentLogin]:
        """The page's claim (the first) returns only once the worker's own claims have opened it."""
        claims.append(login_ids)
        logins = await claim_many(login_ids)

        async def opened() -> bool:
            return all(login_id in consumer.sessions for login_id in login_ids)

        if len(claims) == 1:
            await eventually(opened)
        return logins

    monkeypatch.setattr(calls_worker, "claim_many", claimed_while_the_claims_task_opens)
    ensure = asyncio.create_task(consumer._ensure({"type": "session.ensure", "logins": [agent1.pk]}))
    await eventually(lambda: sync_to_async(lambda: AgentLogin.objects.get(pk=agent1.pk).wanted)())
    await consumer._reconcile_now({"type": "session.reconcile"})
    await ensure

    assert len(_running_sessions(agent1.pk)) == 1
    await consumer.shutdown()


async def test_a_session_opened_again_while_its_predecessor_stops_keeps_the_lease(
    agent1: AgentLogin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent's page asks for the session again while the worker ends it: the new session runs
    here, so the lease stays here too (handed back, another worker would open it as well)."""
    consumer = calls_worker.VoiceSessionsConsumer()
    consumer.sessions = {}
    await calls_worker.set_wanted([agent1.pk], True)
    login = await calls_worker.claim(agent1.pk)
    assert login is not None

    async def opened_again_meanwhile(tasks: list[asyncio.Task[None]]) -> None:
        consumer.sessions[agent1.pk] = AgentSession(login)

    monkeypatch.setattr(calls_worker, "settle", opened_again_meanwhile)
    ending = consumer.sessions[agent1.pk] = AgentSession(login)
    ending.task = asyncio.create_task(asyncio.sleep(60))

    await consumer._end(agent1.pk, announce=False)

    holder = await sync_to_async(lambda: AgentLogin.objects.get(pk=agent1.pk).worker)()
    assert holder == calls_worker.WORKER_ID


def _consumer() -> calls_worker.VoiceSessionsConsumer:
    """A session worker's consumer, without its loops: each test drives it by hand."""
    consumer = calls_worker.VoiceSessionsConsumer()
    consumer.sessions = {}
    consumer._claims = None
    consumer._reconciler = None
    consumer._starting = asyncio.Semaphore(4)
    return consumer


async def test_one_request_starts_the_sessions_of_many_logins(
    simulator: str, agent1: AgentLogin, agent2: AgentLogin
) -> None:
    consumer = _consumer()

    await consumer._ensure({"type": "session.ensure", "logins": [agent1.pk, agent2.pk]})

    assert set(consumer.sessions) == {agent1.pk, agent2.pk}
    wanted = await sync_to_async(
        lambda: set(AgentLogin.objects.filter(wanted=True).values_list("pk", flat=True))
    )()
    assert wanted == {agent1.pk, agent2.pk}
    await consumer.shutdown()


async def test_a_request_for_one_login_as_a_desk_of_the_earlier_release_sends_it_starts_its_session(
    simulator: str, agent1: AgentLogin
) -> None:
    consumer = _consumer()

    await consumer._ensure({"type": "session.ensure", "login": agent1.pk})

    assert set(consumer.sessions) == {agent1.pk}
    await consumer.shutdown()


@pytest.fixture
async def full_session_channel(settings: Any) -> Any:
    """The session workers' shared channel full (thousands of desks opened at once): a layer that holds
    one message a channel, with one waiting there already."""
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 1}}
    }
    layer = get_channel_layer()
    await layer.send(calls_worker.CHANNEL, {"type": "session.ensure", "logins": [0]})
    return layer


def _dropped() -> float:
    return REGISTRY.get_sample_value("switchboard_session_requests_dropped_total") or 0.0


async def test_a_desk_tab_opens_while_the_session_workers_channel_is_full(
    agent1: AgentLogin, full_session_channel: Any
) -> None:
    before = _dropped()
    desk = Desk(agent1)

    snapshot = await desk.open()

    assert 'id="agent-state"' in snapshot
    await asyncio.sleep(0.5)
    assert not desk.socket.future.done()  # open, not ended by an error (1011)
    assert _dropped() > before
    await desk.close()


async def test_a_look_after_with_the_session_workers_channel_full_still_tells_the_owners(
    agent1: AgentLogin, agent2: AgentLogin, full_session_channel: Any
) -> None:
    lease = timezone.now() + datetime.timedelta(seconds=30)
    await sync_to_async(AgentLogin.objects.filter(pk=agent1.pk).update)(worker="w1", lease_until=lease)
    owned = await sync_to_async(AgentLogin.objects.get)(pk=agent1.pk)
    before = _dropped()

    await calls_worker.tell_owners([(owned, "tab-1"), (agent2, "tab-2")])

    told = await full_session_channel.receive(calls_worker.owner_channel("w1"))
    assert told == {"type": "session.tabs", "tabs": [(agent1.pk, "tab-1")]}
    assert _dropped() == before + 1
