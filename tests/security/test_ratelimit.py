"""Rate limits: a double click reaches the Voice API once, a storm of actions is slowed down, and a
password guesser is locked out per username and address."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import SESSION_KEY, get_user_model
from django.test import Client

from calls.models import AgentLogin, AuditEntry
from desktop.security import STORM_MESSAGE
from tests.desk import RunningWorker, card, control, desk_client, ready_desk, switch_calls

User = get_user_model()


@pytest.fixture(autouse=True)
def slow_machine_proof_window(settings: Any) -> None:
    """However slow the machine, the requests of one test fall within one duplicate window."""
    settings.ACTION_DUPLICATE_WINDOW_SECONDS = 30


@sync_to_async
def audited(action: str) -> list[tuple[str, str]]:
    return list(AuditEntry.objects.filter(action=action).order_by("id").values_list("result", "message"))


async def established_call(simulator: str, login: AgentLogin) -> tuple[Any, str]:
    desk = await ready_desk(login)
    call_id = (await control(simulator, "POST", "/control/calls", {"from": "5000", "to": "5005"}))["id"]
    await desk.until(card(call_id, "Ringing"))
    client = await desk_client(login.user)
    assert (await client.post(f"/calls/{call_id}/", {"operation": "Answer"})).status_code == 204
    await desk.until(card(call_id, "Established"))
    return desk, call_id


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_double_click_on_hold_reaches_the_voice_api_once(
    simulator: str, agent1: AgentLogin, worker: RunningWorker
) -> None:
    desk, call_id = await established_call(simulator, agent1)
    client = await desk_client(agent1.user)

    first = await client.post(f"/calls/{call_id}/", {"operation": "Hold"})
    second = await client.post(f"/calls/{call_id}/", {"operation": "Hold"})

    assert (first.status_code, second.status_code) == (204, 204)
    await desk.until(card(call_id, "Held"))
    assert (await switch_calls(simulator))[call_id]["5005"] == "Held"
    assert await audited("Hold") == [("ok", "")]
    await desk.close()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_two_dial_requests_at_once_place_one_call(
    simulator: str, agent1: AgentLogin, worker: RunningWorker
) -> None:
    desk = await ready_desk(agent1)
    client = await desk_client(agent1.user)

    responses = await asyncio.gather(*(client.post("/dial/", {"destination": "5001"}) for _ in range(2)))

    assert [r.status_code for r in responses] == [204, 204]
    await desk.until(r'data-state="Dialing"')
    await asyncio.sleep(0.3)  # time for a second call to show up, were there one
    assert len(await switch_calls(simulator)) == 1
    assert await audited("Dial") == [("ok", "")]
    await desk.close()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_hold_retrieve_hold_in_quick_succession_are_three_actions(
    simulator: str, agent1: AgentLogin, worker: RunningWorker
) -> None:
    desk, call_id = await established_call(simulator, agent1)
    client = await desk_client(agent1.user)

    for operation, state in (("Hold", "Held"), ("Retrieve", "Established"), ("Hold", "Held")):
        assert (await client.post(f"/calls/{call_id}/", {"operation": operation})).status_code == 204
        await desk.until(card(call_id, state))

    assert (await switch_calls(simulator))[call_id]["5005"] == "Held"
    assert await audited("Hold") == [("ok", ""), ("ok", "")]
    await desk.close()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_refused_action_may_be_sent_again_at_once(
    simulator: str, agent1: AgentLogin, worker: RunningWorker
) -> None:
    desk, call_id = await established_call(simulator, agent1)
    client = await desk_client(agent1.user)
    own_dn = {"operation": "InitiateTransfer", "destination": "5005"}

    answers = [await client.post(f"/calls/{call_id}/", own_dn) for _ in range(2)]

    assert [r.status_code for r in answers] == [409, 409]
    assert all("own DN" in r.content.decode() for r in answers)
    assert [result for result, _ in await audited("InitiateTransfer")] == ["refused", "refused"]
    await desk.close()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_storm_of_actions_is_answered_429_and_audited(settings: Any) -> None:
    settings.ACTION_RATE_LIMIT = "3/3600"
    user = await sync_to_async(User.objects.create_user)("agent9")  # no agent login: each is refused 403
    client = await desk_client(user)

    statuses = []
    for operation in ("Ready", "NotReady", "AfterCallWork", "Logout"):
        statuses.append((await client.post("/agent/", {"operation": operation})).status_code)
    storm = await client.post("/dial/", {"destination": "5001"})

    assert statuses == [403, 403, 403, 429]
    assert storm.status_code == 429 and STORM_MESSAGE in storm.content.decode()
    assert storm.headers["Retry-After"] == "3600"
    assert await audited("Logout") == [("refused", STORM_MESSAGE)]
    assert await audited("Dial") == [("refused", STORM_MESSAGE)]


def log_in(client: Client, username: str, password: str, path: str = "/accounts/login/") -> Any:
    return client.post(path, {"username": username, "password": password})


@pytest.mark.django_db
def test_a_username_is_locked_out_from_an_address_after_too_many_failures(settings: Any) -> None:
    settings.LOGIN_FAILURE_LIMIT = "3/300"
    User.objects.create_user("agent9", password="Correct-Horse-9")
    client = Client()
    for _ in range(3):
        assert log_in(client, "agent9", "guess").status_code == 200

    locked = log_in(client, "agent9", "Correct-Horse-9")

    assert locked.status_code == 429
    assert locked.headers["Retry-After"] == "300"
    assert "Too many failed sign-ins" in locked.content.decode()
    assert SESSION_KEY not in client.session
    assert log_in(client, "AGENT9", "guess").status_code == 429  # not a way round it
    assert list(AuditEntry.objects.order_by("id").values_list("result", "message"))[2:] == [
        ("refused", "wrong username or password; further attempts refused for 5 min"),
        ("refused", "refused without checking the password: too many failed sign-ins"),
        ("refused", "refused without checking the password: too many failed sign-ins"),
    ]
    # The admin's form is the same door.
    assert log_in(Client(), "agent9", "Correct-Horse-9", "/admin/login/").status_code == 429
    # Another address is another count.
    elsewhere = Client(REMOTE_ADDR="10.0.0.7")
    assert log_in(elsewhere, "agent9", "Correct-Horse-9").status_code == 302


@pytest.mark.django_db
def test_a_successful_sign_in_clears_the_failures(settings: Any) -> None:
    settings.LOGIN_FAILURE_LIMIT = "3/300"
    User.objects.create_user("agent9", password="Correct-Horse-9")
    for _ in range(2):
        log_in(Client(), "agent9", "guess")
    assert log_in(Client(), "agent9", "Correct-Horse-9").status_code == 302
    for _ in range(2):
        log_in(Client(), "agent9", "guess")

    assert log_in(Client(), "agent9", "Correct-Horse-9").status_code == 302
