"""Call history that tells what happened: direction, outcome, talk and hold time, worked out from the
states the real worker applies as the simulator's calls ring, connect, hold, merge and end; and the
history page that shows them, with a call-back button and attached data kept within bounds."""

from __future__ import annotations

import asyncio
import datetime
import re
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.utils import timezone

from calls import actions
from calls.models import AgentLogin, CallRecord, DispositionCode, VoiceServer
from tests.desk import Desk, RunningWorker, answered_call, card, control, make_login, ready_desk

# An outside party: not one of the simulator's internal DNs, so calls with it are Inbound or Outbound.
CUSTOMER = "0471234567"


def gone(call_id: str) -> str:
    return rf'<div id="call-{call_id}" hx-swap-oob="delete">'


@sync_to_async
def record_of(login: AgentLogin, call_id: str) -> CallRecord:
    return CallRecord.objects.get(login=login, call_id=call_id)


async def ended_record(login: AgentLogin, call_id: str, wait: float = 10, outcome: str = "") -> CallRecord:
    """The call's history row once it is closed, with ``outcome`` when given: the worker saves it
    behind the push, and a later call's release (a transfer completed) may settle its outcome."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        record = await record_of(login, call_id)
        settled = record.ended_at is not None and record.outcome == (outcome or record.outcome)
        if settled or loop.time() > deadline:
            return record
        await asyncio.sleep(0.05)


async def new_card_id(desk: Desk, pattern: str, besides: set[str]) -> str:
    """The id of the next pushed card matching ``pattern`` (after its id) that is not in ``besides``."""
    others = "|".join(map(re.escape, besides)) or "-"
    full = rf'<article id="call-(?!(?:{others})")([^"]+)"{pattern}'
    match = re.search(full, await desk.until(full))
    assert match
    return match.group(1)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_an_inbound_call_answered_held_and_hung_up_is_answered_with_its_talk_and_hold_time(
    simulator: str, agent1: AgentLogin, worker: RunningWorker
) -> None:
    desk = await ready_desk(agent1)
    call_id = await answered_call(simulator, desk, origin=CUSTOMER)
    await asyncio.sleep(1.2)
    await actions.call_operation(agent1.user, call_id, "Hold", {})
    await desk.until(card(call_id, "Held"))
    await asyncio.sleep(1.2)
    await actions.call_operation(agent1.user, call_id, "Retrieve", {})
    await desk.until(card(call_id, "Established"))
    await actions.call_operation(agent1.user, call_id, "Hangup", {})
    await desk.until(gone(call_id))

    record = await ended_record(agent1, call_id)
    assert (record.direction, record.outcome, record.final_state) == ("inbound", "answered", "Released")
    assert record.answered_at is not None and record.answered_at <= record.ended_at
    assert record.talk_seconds >= 1 and record.hold_seconds >= 1
    assert record.talk_seconds + record.hold_seconds <= record.duration + 1
    await desk.close()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_call_that_rings_out_unanswered_is_missed(
    simulator: str, agent1: AgentLogin, worker: RunningWorker, settings: Any
) -> None:
    settings.MISSED_CALL_RING_SECONDS = 0.5
    await control(simulator, "PUT", "/control/settings", {"ringing_timeout_ms": 1000})
    desk = await ready_desk(agent1)
    call_id = (await control(simulator, "POST", "/control/calls", {"from": "5000", "to": "5005"}))["id"]
    await desk.until(card(call_id, "Ringing"))
    await desk.until(gone(call_id))

    record = await ended_record(agent1, call_id)
    assert (record.direction, record.outcome, record.answered_at) == ("internal", "missed", None)
    assert record.talk_seconds == record.hold_seconds == 0
    await desk.close()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_caller_who_hangs_up_at_once_abandoned_the_call(
    simulator: str, agent1: AgentLogin, worker: RunningWorker
) -> None:
    desk = await ready_desk(agent1)
    call_id = (await control(simulator, "POST", "/control/calls", {"from": CUSTOMER, "to": "5005"}))["id"]
    await desk.until(card(call_id, "Ringing"))
    await control(simulator, "POST", f"/control/parties/{CUSTOMER}/hangup")
    await desk.until(gone(call_id))

    record = await ended_record(agent1, call_id)
    assert (record.direction, record.outcome, record.answered_at) == ("inbound", "abandoned", None)
    await desk.close()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_an_outbound_call_is_outbound_and_answered(
    simulator: str, agent1: AgentLogin, worker: RunningWorker
) -> None:
    desk = await ready_desk(agent1)
    await actions.dial(agent1.user, {"destination": CUSTOMER})
    call_id = await new_card_id(desk, '[^>]*data-state="Established"', set())
    await actions.call_operation(agent1.user, call_id, "Hangup", {})
    await desk.until(gone(call_id))

    record = await ended_record(agent1, call_id)
    assert (record.direction, record.outcome, record.callback_number) == ("outbound", "answered", CUSTOMER)
    await desk.close()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_consult_completed_as_a_transfer_makes_the_original_call_transferred(
    simulator: str, agent1: AgentLogin, worker: RunningWorker
) -> None:
    desk = await ready_desk(agent1)
    call_id = await answered_call(simulator, desk)
    await actions.call_operation(agent1.user, call_id, "InitiateTransfer", {"destination": "5001"})
    consult_id = await new_card_id(
        desk, '[^>]*data-state="Established"[^>]*data-call-type="Consult"', {call_id}
    )
    await actions.call_operation(agent1.user, consult_id, "CompleteTransfer", {})
    await desk.until(gone(consult_id))

    original = await ended_record(agent1, call_id, outcome="transferred")
    consult = await ended_record(agent1, consult_id, outcome="transferred")
    assert (original.direction, original.outcome) == ("internal", "transferred")
    assert (consult.direction, consult.outcome, consult.parent_call_id) == ("consult", "transferred", call_id)
    assert original.hold_seconds >= 0 and original.answered_at is not None
    await desk.close()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_consult_completed_as_a_conference_makes_both_calls_conferenced(
    simulator: str, agent1: AgentLogin, worker: RunningWorker
) -> None:
    desk = await ready_desk(agent1)
    call_id = await answered_call(simulator, desk)
    await actions.call_operation(agent1.user, call_id, "InitiateConference", {"destination": "5001"})
    consult_id = await new_card_id(
        desk, '[^>]*data-state="Established"[^>]*data-call-type="Consult"', {call_id}
    )
    await actions.call_operation(agent1.user, consult_id, "CompleteConference", {})
    await desk.until(gone(consult_id))
    await desk.until(rf'id="call-{call_id}"[^>]*data-state="Established".*?data-participant="5001"')
    await actions.call_operation(agent1.user, call_id, "Hangup", {})
    await desk.until(gone(call_id))

    original = await ended_record(agent1, call_id, outcome="conferenced")
    consult = await ended_record(agent1, consult_id, outcome="conferenced")
    assert (original.outcome, consult.outcome) == ("conferenced", "conferenced")
    assert set(original.parties) == {"5000", "5001"}
    await desk.close()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_on_huawei_a_held_call_transferred_to_a_second_call_is_transferred(
    simulator: str, agent101: AgentLogin, worker: RunningWorker
) -> None:
    desk = await ready_desk(agent101)
    first = await answered_call(simulator, desk, origin=CUSTOMER)
    await actions.call_operation(agent101.user, first, "Hold", {})
    await desk.until(card(first, "Held"))
    await actions.dial(agent101.user, {"destination": "5003"})
    second = await new_card_id(desk, '[^>]*data-state="Established"', {first})
    await actions.call_operation(agent101.user, second, "CompleteTransfer", {})
    await desk.until(gone(first))
    await desk.until(gone(second))

    held = await ended_record(agent101, first, outcome="transferred")
    dialled = await ended_record(agent101, second, outcome="transferred")
    assert (held.direction, held.outcome) == ("inbound", "transferred")
    # The gateway calls a call to a DN without an agent outbound; the history takes its word.
    assert (dialled.direction, dialled.outcome) == ("outbound", "transferred")
    await desk.close()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_on_huawei_a_held_call_joined_into_a_three_party_call_is_conferenced(
    simulator: str, agent101: AgentLogin, worker: RunningWorker
) -> None:
    desk = await ready_desk(agent101)
    first = await answered_call(simulator, desk)
    await actions.call_operation(agent101.user, first, "Hold", {})
    await desk.until(card(first, "Held"))
    await actions.dial(agent101.user, {"destination": "5003"})
    second = await new_card_id(desk, '[^>]*data-state="Established"', {first})
    await actions.call_operation(agent101.user, second, "CompleteConference", {})
    await desk.until(gone(first))
    await actions.call_operation(agent101.user, second, "Hangup", {})
    await desk.until(gone(second))

    assert (await ended_record(agent101, first, outcome="conferenced")).outcome == "conferenced"
    assert (await ended_record(agent101, second, outcome="conferenced")).outcome == "conferenced"
    await desk.close()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_call_that_ended_while_no_worker_ran_is_closed_by_the_resync_with_its_outcome(
    simulator: str, agent1: AgentLogin, worker: RunningWorker
) -> None:
    desk = await ready_desk(agent1)
    call_id = await answered_call(simulator, desk, origin=CUSTOMER)
    await worker.stop()
    await control(simulator, "POST", f"/control/parties/{CUSTOMER}/hangup")
    await worker.start()

    record = await ended_record(agent1, call_id, wait=20)
    assert (record.final_state, record.outcome, record.released_from) == (
        "Released",
        "answered",
        "Established",
    )
    await desk.close()


# --- The history page ---------------------------------------------------------------------------


def history_row(html: str, call_id: str) -> str:
    match = re.search(rf'<tr data-call-id="{re.escape(call_id)}".*?</tr>', html, re.S)
    assert match, f"no row for {call_id}"
    return match.group(0)


def _record(login: AgentLogin, call_id: str, **fields: Any) -> CallRecord:
    now = timezone.now()
    values: dict[str, Any] = {
        "call_type": "Inbound",
        "direction": "inbound",
        "parties": [CUSTOMER],
        "started_at": now - datetime.timedelta(minutes=5),
        "answered_at": now - datetime.timedelta(minutes=5),
        "ended_at": now - datetime.timedelta(minutes=1),
        "outcome": "answered",
        "final_state": "Released",
        **fields,
    }
    return CallRecord.objects.create(login=login, call_id=call_id, **values)


@pytest.fixture
def history_login(db: None) -> AgentLogin:
    server = VoiceServer.objects.create(name="Switch", base_url="https://switch.example")
    return make_login(server, "agent1")


def test_the_history_shows_direction_outcome_disposition_talk_and_hold_time_and_a_call_back_button(
    history_login: AgentLogin, settings: Any
) -> None:
    settings.TIME_ZONE = "Europe/Brussels"
    DispositionCode.objects.create(code="SALE", label="Sale made")
    _record(history_login, "A1", disposition="SALE", talk_seconds=75, hold_seconds=12)
    _record(history_login, "M1", parties=["5000"], direction="internal", outcome="missed", answered_at=None)
    _record(history_login, "L1", ended_at=None, outcome="")
    client = Client()
    client.force_login(history_login.user)

    html = client.get("/history/").content.decode()

    answered = history_row(html, "A1")
    assert 'data-direction="inbound" data-outcome="answered" data-disposition="SALE"' in answered
    assert "Sale made" in answered and "1:15" in answered and "0:12" in answered
    assert 'name="destination" value="0471234567"' in answered and 'action="/dial/"' in answered
    missed = history_row(html, "M1")
    assert 'data-direction="internal" data-outcome="missed"' in missed and "data-disposition" not in missed
    assert "data-outcome" not in history_row(html, "L1") and "In progress" in history_row(html, "L1")
    assert "Times are in Europe/Brussels" in html


def test_the_history_shows_a_bounded_taste_of_large_attached_data(history_login: AgentLogin) -> None:
    data = {f"key{i}": f"value {i}" for i in range(12)} | {"notes": "x" * 5000}
    _record(history_login, "BIG", user_data=data)
    client = Client()
    client.force_login(history_login.user)

    row = history_row(client.get("/history/").content.decode(), "BIG")

    assert len(re.findall(r"data-user-data-key=", row)) == 5
    assert "and 8 more" in row and "x" * 100 not in row


def test_the_history_is_paged_and_filtered_by_outcome(history_login: AgentLogin) -> None:
    for i in range(51):
        _record(history_login, f"C{i:02}", started_at=timezone.now() - datetime.timedelta(minutes=60 - i))
    _record(history_login, "MISSED", outcome="missed", answered_at=None)
    client = Client()
    client.force_login(history_login.user)

    first = client.get("/history/").content.decode()
    missed = client.get("/history/", {"outcome": "missed"}).content.decode()

    assert first.count("<tr data-call-id=") == 50 and "Page 1 of 2" in first
    assert re.findall(r'<tr data-call-id="([^"]+)"', missed) == ["MISSED"]


def test_another_agents_calls_are_not_in_the_history(history_login: AgentLogin) -> None:
    other = make_login(history_login.server, "agent2")
    _record(other, "THEIRS")
    client = Client()
    client.force_login(history_login.user)

    assert "THEIRS" not in client.get("/history/").content.decode()
