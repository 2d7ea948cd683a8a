"""The state bar that shows the work: on a call, after-call work and its limit, disposition codes
chosen on the card or in the bar (kept with the history, attached to the live call as user data),
a disposition required before Ready, and no contact-center logout in the middle of a call; the
admin's codes and reasons reach open desks within two seconds."""

from __future__ import annotations

import datetime
import re

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.utils import timezone

from calls import actions, live, services
from calls.models import AgentLogin, AuditEntry, CallRecord, DispositionCode, NotReadyReason, VoiceServer
from calls.voice import AgentState
from tests.desk import (
    Desk,
    RunningWorker,
    answered_call,
    card,
    control,
    desk_client,
    make_login,
    ready_desk,
    switch_calls,
)

pytestmark = pytest.mark.django_db(transaction=True)

BAR = r'<div id="agent-state"[^>]*'


def gone(call_id: str) -> str:
    return rf'<div id="call-{call_id}" hx-swap-oob="delete">'


@pytest.fixture
def codes(db: None) -> list[DispositionCode]:
    return [
        DispositionCode.objects.create(code="SALE", label="Sale made", position=1),
        DispositionCode.objects.create(code="INFO", label="Information given", position=2),
        DispositionCode.objects.create(code="OLD", label="Retired code", active=False),
    ]


@sync_to_async
def audit_rows(call_id: str) -> list[tuple[str, str, str, str]]:
    rows = AuditEntry.objects.filter(call_id=call_id).order_by("id")
    return [(r.username, r.action, r.detail, r.result) for r in rows]


@sync_to_async
def disposition_of(login: AgentLogin, call_id: str) -> str:
    return CallRecord.objects.get(login=login, call_id=call_id).disposition


async def ended_call(simulator: str, desk: Desk) -> str:
    """A call the agent answered and hung up; returns its id once its card is gone."""
    call_id = await answered_call(simulator, desk)
    await actions.call_operation(desk.user, call_id, "Hangup", {})
    removed = await desk.until(gone(call_id))
    assert re.search(BAR + 'data-activity="idle"', removed)  # the same push re-renders the bar
    return call_id


@pytest.mark.asyncio
async def test_the_state_bar_says_the_agent_is_on_a_call_and_idle_again_after_it(
    simulator: str, agent1: AgentLogin, worker: RunningWorker
) -> None:
    desk = await ready_desk(agent1)
    await actions.agent_operation(agent1.user, "Ready")
    await desk.until(BAR + 'data-state="Ready"')
    call_id = (await control(simulator, "POST", "/control/calls", {"from": "5000", "to": "5005"}))["id"]

    on_call = await desk.until(BAR + 'data-state="Ready" data-activity="call"')
    started = re.search(rf'id="call-{call_id}".*?data-started="(\d+)"', on_call, re.S)
    assert started and f'data-since="{started.group(1)}"' in on_call  # the clock counts the call
    assert re.search(r"data-on-call>On a call</span>.*?agent-state-then[^>]*>Ready<", on_call, re.S)
    await actions.call_operation(agent1.user, call_id, "Answer", {})
    await desk.until(card(call_id, "Established"))
    await actions.call_operation(agent1.user, call_id, "Hangup", {})

    idle = await desk.until(BAR + 'data-activity="idle"')
    record = await sync_to_async(CallRecord.objects.get)(call_id=call_id)
    since = re.search(r'data-since="(\d+)"', idle)
    assert since and record.ended_at and int(since.group(1)) >= int(record.ended_at.timestamp())
    assert "On a call" not in idle
    await desk.close()


@pytest.mark.asyncio
async def test_logging_out_of_the_contact_center_during_a_call_is_refused_and_audited(
    simulator: str, agent1: AgentLogin, worker: RunningWorker
) -> None:
    desk = await ready_desk(agent1)
    await answered_call(simulator, desk)

    with pytest.raises(actions.ActionRefused, match="You are on a call: finish it before you log out"):
        await actions.agent_operation(agent1.user, "Logout")

    entry = await sync_to_async(AuditEntry.objects.filter(action="Logout").get)()
    assert (entry.username, entry.result) == ("agent1", "refused") and "on a call" in entry.message
    state = await control(simulator, "GET", "/control/state")
    assert next(a for a in state["agents"] if a["login"] == "agent1")["loggedIn"] is True
    await desk.close()


@pytest.mark.asyncio
async def test_an_agent_chooses_a_disposition_for_the_last_call_in_the_bar(
    simulator: str, agent1: AgentLogin, worker: RunningWorker, codes: list[DispositionCode]
) -> None:
    desk = await ready_desk(agent1)
    call_id = await ended_call(simulator, desk)
    picker = desk.received[-1]
    assert re.search(rf'<form class="disposition" data-disposition data-call-id="{call_id}"', picker)
    assert 'name="disposition"' in picker and "Sale made" in picker and "Retired code" not in picker
    client = await desk_client(agent1.user)

    response = await client.post(f"/calls/{call_id}/disposition/", {"disposition": "SALE"})

    assert response.status_code == 204
    assert await disposition_of(agent1, call_id) == "SALE"
    assert await audit_rows(call_id) == [
        ("agent1", "Answer", "", "ok"),
        ("agent1", "Hangup", "", "ok"),
        ("agent1", "Disposition", "SALE", "ok"),
    ]
    # Chosen, and the agent is not in after-call work: the bar has nothing more to ask.
    bar = await desk.until(BAR + 'data-activity="idle"')
    assert "data-disposition" not in bar
    await desk.close()


@pytest.mark.asyncio
async def test_a_code_the_admin_adds_in_another_process_reaches_an_open_desk_within_two_seconds(
    simulator: str, agent1: AgentLogin, worker: RunningWorker, codes: list[DispositionCode]
) -> None:
    desk = await ready_desk(agent1)
    call_id = await answered_call(simulator, desk)
    assert "Sale made" in desk.received[-1] and "Call back" not in desk.received[-1]

    # A bulk insert sends no signal to this process, as a change in the admin's process would not.
    await sync_to_async(DispositionCode.objects.bulk_create)(
        [DispositionCode(code="CALLBACK", label="Call back")]
    )

    await desk.until(rf'id="call-{call_id}".*?Call back', wait=live.REFERENCE_SECONDS + 1)
    await desk.close()


@pytest.mark.asyncio
async def test_a_not_ready_reason_the_admin_adds_in_another_process_reaches_an_open_bar_within_two_seconds(
    agent1: AgentLogin, worker: RunningWorker
) -> None:
    desk = await ready_desk(agent1)
    assert "Coffee" not in desk.received[-1]

    await sync_to_async(NotReadyReason.objects.bulk_create)([NotReadyReason(code="COFFEE", label="Coffee")])

    await desk.until(BAR + r'>.*?<option value="COFFEE">Coffee</option>', wait=live.REFERENCE_SECONDS + 1)
    await desk.close()


@pytest.mark.asyncio
async def test_another_agents_call_answers_404_and_keeps_its_disposition(
    simulator: str,
    agent1: AgentLogin,
    agent2: AgentLogin,
    worker: RunningWorker,
    codes: list[DispositionCode],
) -> None:
    desk = await ready_desk(agent1)
    call_id = await ended_call(simulator, desk)
    intruder = await desk_client(agent2.user)

    response = await intruder.post(f"/calls/{call_id}/disposition/", {"disposition": "SALE"})

    assert response.status_code == 404 and "No such call" in response.content.decode()
    assert await disposition_of(agent1, call_id) == ""
    assert (await audit_rows(call_id))[-1] == ("agent2", "Disposition", "SALE", "refused")
    await desk.close()


@pytest.mark.asyncio
async def test_a_code_that_is_not_offered_is_refused(
    simulator: str, agent1: AgentLogin, worker: RunningWorker, codes: list[DispositionCode]
) -> None:
    desk = await ready_desk(agent1)
    call_id = await ended_call(simulator, desk)
    client = await desk_client(agent1.user)

    for code in ("OLD", "NOPE", ""):
        response = await client.post(f"/calls/{call_id}/disposition/", {"disposition": code})
        assert response.status_code == 400 and "disposition codes offered" in response.content.decode()
    assert await disposition_of(agent1, call_id) == ""
    await desk.close()


@pytest.mark.asyncio
async def test_on_a_live_genesys_call_the_disposition_is_attached_to_the_call_as_user_data(
    simulator: str, agent1: AgentLogin, worker: RunningWorker, codes: list[DispositionCode]
) -> None:
    desk = await ready_desk(agent1)
    call_id = await answered_call(simulator, desk)
    established = desk.received[-1]
    assert re.search(
        r'<form class="disposition" data-disposition hx-post="/calls/[^"]+/disposition/"', established
    )

    await actions.disposition(agent1.user, call_id, "INFO")
    await desk.until(rf'id="call-{call_id}"[^>]*>.*?data-user-data-key="Disposition"')
    assert (await switch_calls(simulator))[call_id] == {"5000": "Established", "5005": "Established"}
    state = await control(simulator, "GET", "/control/state")
    assert next(c for c in state["calls"] if c["id"] == call_id)["userData"] == {"Disposition": "INFO"}

    await actions.disposition(agent1.user, call_id, "SALE")  # a change of mind replaces the pair
    await desk.until(rf'id="call-{call_id}"[^>]*>.*?<option value="SALE" selected>')
    state = await control(simulator, "GET", "/control/state")
    assert next(c for c in state["calls"] if c["id"] == call_id)["userData"] == {"Disposition": "SALE"}
    assert await disposition_of(agent1, call_id) == "SALE"
    await desk.close()


@pytest.mark.asyncio
async def test_on_a_live_huawei_call_the_disposition_is_kept_though_the_gateway_takes_no_user_data(
    simulator: str, agent101: AgentLogin, worker: RunningWorker, codes: list[DispositionCode]
) -> None:
    desk = await ready_desk(agent101)
    call_id = await answered_call(simulator, desk)

    await actions.disposition(agent101.user, call_id, "SALE")

    await desk.until(rf'id="call-{call_id}"[^>]*>.*?<option value="SALE" selected>')
    assert await disposition_of(agent101, call_id) == "SALE"
    assert (await audit_rows(call_id))[-1] == ("agent101", "Disposition", "SALE", "ok")
    await desk.close()


@pytest.mark.asyncio
async def test_ready_from_after_call_work_waits_for_the_disposition_the_server_requires(
    simulator: str, agent1: AgentLogin, worker: RunningWorker, codes: list[DispositionCode]
) -> None:
    await sync_to_async(VoiceServer.objects.filter(pk=agent1.server_id).update)(disposition_required=True)
    desk = await ready_desk(agent1)
    call_id = await ended_call(simulator, desk)
    await actions.agent_operation(agent1.user, "AfterCallWork")
    bar = await desk.until(BAR + 'data-state="AfterCallWork"')
    assert "needed before Ready" in bar

    with pytest.raises(actions.ActionRefused, match="Choose a disposition for your last call"):
        await actions.agent_operation(agent1.user, "Ready")
    entry = await sync_to_async(AuditEntry.objects.filter(action="Ready").latest)("id")
    assert entry.result == "refused"

    await actions.disposition(agent1.user, call_id, "SALE")
    await actions.agent_operation(agent1.user, "Ready")
    await desk.until(BAR + 'data-state="Ready"')
    await desk.close()


# --- After-call work's limit ------------------------------------------------------------------


def test_the_switchs_wrap_up_time_wins_over_the_voice_servers(db: None) -> None:
    server = VoiceServer.objects.create(name="Switch", base_url="https://switch.example", wrap_up_seconds=30)
    login = make_login(server, "agent1")

    assert services.wrap_up_limit(login) == 30
    assert services.wrap_up_limit(login, announced=12) == 12
    server.wrap_up_seconds = 0
    assert services.wrap_up_limit(login) == 0


@pytest.mark.asyncio
async def test_after_call_work_the_desk_started_shows_the_time_left_until_the_agent_leaves_it(
    agent1: AgentLogin,
) -> None:
    await sync_to_async(AgentLogin.objects.filter(pk=agent1.pk).update)(agent_state="AfterCallWork")
    desk = live.Desk(await sync_to_async(AgentLogin.objects.select_related("server").get)(pk=agent1.pk))
    await desk.load()

    limited = desk.wrap_up(timezone.now() + datetime.timedelta(seconds=45))

    left = re.search(r'<time data-wrap-up-left data-until="(\d+)">(\d+:\d\d)</time> left', limited)
    assert left and left.group(2) in ("0:45", "0:44")
    assert abs(int(left.group(1)) - (timezone.now() + datetime.timedelta(seconds=45)).timestamp()) < 2
    assert "data-wrap-up-left" not in desk.agent_state(AgentState("Ready"), timezone.now())


# --- The admin and the wire -------------------------------------------------------------------


def test_the_admin_manages_disposition_codes_and_a_voice_servers_after_call_work(
    admin_client: Client, codes: list[DispositionCode]
) -> None:
    server = VoiceServer.objects.create(name="Switch", base_url="https://switch.example")

    listing = admin_client.get("/admin/calls/dispositioncode/").content.decode()
    change = admin_client.get(f"/admin/calls/voiceserver/{server.pk}/change/").content.decode()

    assert "Sale made" in listing and "Retired code" in listing
    assert 'name="wrap_up_seconds"' in change and "WrapUpTime" in change
    assert 'name="disposition_required"' in change


def test_a_disposition_without_the_csrf_token_is_forbidden(db: None) -> None:
    server = VoiceServer.objects.create(name="Switch", base_url="https://switch.example")
    login = make_login(server, "agent1")
    client = Client(enforce_csrf_checks=True)
    client.force_login(login.user)

    assert client.post("/calls/some-call/disposition/", {"disposition": "SALE"}).status_code == 403
    assert not AuditEntry.objects.filter(action="Disposition").exists()
