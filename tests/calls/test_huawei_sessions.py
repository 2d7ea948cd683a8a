"""The Huawei AgentGateway through the desk: the session worker signs in and polls, the desk's actions
borrow its Guid, and the same cards and buttons appear as on Genesys.

A real voicesim process, real HTTP and event polling, the real worker and desktop consumers.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from calls import actions
from calls.actions import ActionRefused
from calls.backends import backend_for, borrowed, credentials_of
from calls.models import AgentLogin
from calls.voice import CallChanged, CredentialsRefused, Event, VoiceApiError
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
    saved,
    switch_calls,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


async def live_call_ids(login: AgentLogin) -> set[str]:
    return set(await live_calls(login))


@pytest.fixture(autouse=True)
async def short_polls(simulator: str) -> None:
    # An idle poll is held this long: short, so a drained worker's poll ends quickly.
    await control(simulator, "PUT", "/control/settings", {"poll_wait_ms": 1000})


@sync_to_async
def fresh(login: AgentLogin) -> AgentLogin:
    return AgentLogin.objects.select_related("server", "user").get(pk=login.pk)


async def signed_in(simulator: str, agent_id: str) -> bool:
    """Whether the switch has the agent signed in to the contact center."""
    state = await control(simulator, "GET", "/control/state")
    return bool({a["login"]: a["loggedIn"] for a in state["agents"]}[agent_id])


def card_of(html: str, call_id: str) -> str:
    match = re.search(rf'<article id="call-{call_id}".*?</article>', html, re.S)
    assert match, f"no card for {call_id}"
    return match.group(0)


def operations(html: str) -> set[str]:
    return set(re.findall(r'data-operation="(\w+)"', html))


async def new_card(desk: Desk, state: str, *, besides: set[str]) -> tuple[str, str]:
    """The id and the card of the next card pushed in ``state`` that is not one of ``besides``."""
    others = "|".join(map(re.escape, besides)) or "-"
    pattern = rf'<article id="call-(?!(?:{others})")([^"]+)"[^>]*data-state="{state}"'
    html = await desk.until(pattern)
    match = re.search(pattern, html)
    assert match
    return match.group(1), card_of(html, match.group(1))


async def test_seed_004_a_three_party_call_from_a_held_call_and_a_new_one(
    simulator: str, agent101: AgentLogin, worker: RunningWorker
) -> None:
    """Ring, answer, hold, call a third party, complete the conference (confjoin): one card lists
    both other parties; the agent hangs up and the other two stay connected."""
    desk = await ready_desk(agent101)
    first = (await control(simulator, "POST", "/control/calls", {"from": "5000", "to": "6101"}))["id"]
    ringing = card_of(await desk.until(card(first, "Ringing")), first)
    assert operations(ringing) == {"Answer"}

    await actions.call_operation(agent101.user, first, "Answer", {})
    established = card_of(await desk.until(card(first, "Established")), first)
    assert {"Hangup", "Hold", "MuteCall", "SendDtmf", "InitiateTransfer", "InitiateConference"} <= operations(
        established
    )
    await actions.call_operation(agent101.user, first, "Hold", {})
    held = card_of(await desk.until(card(first, "Held")), first)
    assert operations(held) == {"Retrieve", "Hangup"}

    await actions.dial(agent101.user, {"destination": "5003"})
    second, both = await new_card(desk, "Established", besides={first})
    assert {"CompleteConference", "CompleteTransfer", "SwapCalls"} <= operations(both)

    await actions.call_operation(agent101.user, second, "CompleteConference", {})
    conference = card_of(
        await desk.until(rf'id="call-{second}"[^>]*data-state="Established".*?data-participant="5000"'),
        second,
    )
    assert {'data-participant="5000"', 'data-participant="5003"'} <= set(
        re.findall(r'data-participant="\d+"', conference)
    )
    assert "RemoveParticipantFromConference" in operations(conference)
    await desk.until(rf'id="call-{first}"[^>]*hx-swap-oob="delete"')
    await saved(lambda: live_call_ids(agent101), {second})

    await actions.call_operation(agent101.user, second, "Hangup", {})
    await desk.until(rf'id="call-{second}"[^>]*hx-swap-oob="delete"')
    await saved(lambda: live_calls(agent101), {})
    assert list((await switch_calls(simulator)).values()) == [{"5000": "Established", "5003": "Established"}]
    await desk.close()


async def test_mute_has_no_event_yet_the_card_follows_the_answer_of_the_request(
    simulator: str, agent101: AgentLogin, worker: RunningWorker
) -> None:
    desk = await ready_desk(agent101)
    call_id = await answered_call(simulator, desk)

    await actions.call_operation(agent101.user, call_id, "MuteCall", {})
    muted = card_of(await desk.until(rf'id="call-{call_id}"[^>]*>.*?data-operation="UnmuteCall"'), call_id)
    assert "MuteCall" not in operations(muted)
    await actions.call_operation(agent101.user, call_id, "UnmuteCall", {})
    await desk.until(rf'id="call-{call_id}"[^>]*>.*?data-operation="MuteCall"')
    await desk.close()


async def test_a_consult_sits_under_its_held_call_and_completes_a_transfer(
    simulator: str, agent101: AgentLogin, agent102: AgentLogin, worker: RunningWorker
) -> None:
    desk = await ready_desk(agent101)
    helper = await ready_desk(agent102)
    call_id = await answered_call(simulator, desk)

    await actions.call_operation(agent101.user, call_id, "InitiateTransfer", {"destination": "6102"})
    await desk.until(card(call_id, "Held"))
    offered, _ = await new_card(helper, "Ringing", besides=set())
    await actions.call_operation(agent102.user, offered, "Answer", {})
    consult, linked = await new_card(desk, "Established", besides={call_id})
    assert f'data-parent="{call_id}"' in linked
    assert {"CompleteTransfer", "SwapCalls"} <= operations(linked)
    assert "CompleteConference" not in operations(linked)

    await actions.call_operation(agent101.user, consult, "CompleteTransfer", {})
    await desk.until(rf'id="call-{consult}"[^>]*hx-swap-oob="delete"')
    await saved(lambda: live_calls(agent101), {})
    assert list((await switch_calls(simulator)).values()) == [{"5000": "Established", "6102": "Established"}]
    await desk.close()
    await helper.close()


async def test_the_gateways_refusal_reaches_the_agent_in_words_with_its_code(
    simulator: str, agent101: AgentLogin, worker: RunningWorker
) -> None:
    """A desk that has not heard of a change yet (its worker stopped) asks for something the
    gateway refuses: the agent reads what the retcode means, in a toast."""
    desk = await ready_desk(agent101)
    call_id = await answered_call(simulator, desk)
    await worker.stop()
    await control(simulator, "POST", "/control/parties/5000/hangup")

    client = await desk_client(agent101.user, headers={"HX-Request": "true"})
    response = await client.post(f"/calls/{call_id}/", {"operation": "Hold"})
    assert response.status_code == 409
    assert "There is no call to hold (200-013)." in response.content.decode()
    await desk.close()


async def test_each_refusal_of_the_wire_is_worded_for_the_agent(
    simulator: str, agent101: AgentLogin, worker: RunningWorker
) -> None:
    desk = await ready_desk(agent101)
    backend = borrowed(await fresh(agent101))
    refusals: dict[str, str] = {}
    attempts: dict[str, Any] = {
        "answer": backend.call_operation("1", "Answer", {}),
        "hold": backend.call_operation("1", "Hold", {}),
        "retrieve": backend.call_operation("1", "Retrieve", {}),
        "hangup": backend.call_operation("1", "Hangup", {}),
        "conference": backend.call_operation("1", "CompleteConference", {"other_call_id": "2"}),
    }
    for name, attempt in attempts.items():
        with pytest.raises(VoiceApiError) as refused:
            await attempt
        refusals[name] = refused.value.message
    assert refusals == {
        "answer": "There is no call to answer (200-002).",
        "hold": "There is no call to hold (200-013).",
        "retrieve": "There is no held call to retrieve (200-015).",
        "hangup": "There is no call to release (200-017).",
        "conference": "There is no active call to join into a conference (200-010).",
    }
    await desk.close()


async def test_a_rotated_guid_reaches_the_desks_actions(
    simulator: str, agent101: AgentLogin, worker: RunningWorker
) -> None:
    await control(simulator, "PUT", "/control/settings", {"guid_interval_ms": 300, "guid_timeout_ms": 600})
    desk = await ready_desk(agent101)
    first_guid = credentials_of(await fresh(agent101))["guid"]
    call_id = (await control(simulator, "POST", "/control/calls", {"from": "5000", "to": "6101"}))["id"]
    await desk.until(card(call_id, "Ringing"))

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while credentials_of(await fresh(agent101))["guid"] == first_guid:
        assert loop.time() < deadline, "the Guid never rotated"
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.8)  # the first Guid has expired by now

    await actions.call_operation(agent101.user, call_id, "Answer", {})
    await desk.until(card(call_id, "Established"))
    stale = borrowed(await fresh(agent101))
    stale.credentials = {"guid": first_guid}
    with pytest.raises(CredentialsRefused):
        await stale.set_agent_state("Ready")
    await desk.close()


async def test_a_lost_poll_heals_and_the_desk_catches_up_with_what_happened_meanwhile(
    simulator: str, agent101: AgentLogin, worker: RunningWorker
) -> None:
    desk = await ready_desk(agent101)
    await control(simulator, "POST", "/control/faults", {"http_status": 503, "for_ms": 1500})
    await desk.until(r'id="connection"[^>]*data-status="reconnecting"')
    call_id = (await control(simulator, "POST", "/control/calls", {"from": "5000", "to": "6101"}))["id"]

    await desk.until(r'id="connection"[^>]*data-status="connected"')
    await desk.until(card(call_id, "Ringing"))
    await saved(lambda: live_calls(agent101), {call_id: ("Ringing", "")})
    await desk.close()


async def test_a_switch_restart_under_the_desk_signs_the_agent_in_again_and_clears_the_calls(
    simulator: str, agent101: AgentLogin, worker: RunningWorker
) -> None:
    desk = await ready_desk(agent101)
    await answered_call(simulator, desk)
    await actions.agent_operation(agent101.user, "Ready")
    await desk.until(r'id="agent-state"[^>]*data-state="Ready"')

    await control(simulator, "POST", "/control/reset")

    await desk.until(r'<section id="calls"[^>]*hx-swap-oob="innerHTML">\s*</section>', wait=15)
    await desk.until(r'id="agent-state"[^>]*data-state="NotReady"', wait=15)
    await saved(lambda: live_calls(agent101), {})
    assert await signed_in(simulator, "101")
    await desk.close()


async def test_a_genesys_agent_transfers_a_customer_to_a_huawei_agent_who_conferences_a_third_party(
    simulator: str, agent1: AgentLogin, agent101: AgentLogin, worker: RunningWorker
) -> None:
    genesys = await ready_desk(agent1)
    huawei = await ready_desk(agent101)
    customer = await answered_call(simulator, genesys)

    await actions.call_operation(agent1.user, customer, "InitiateTransfer", {"destination": "6101"})
    offered, _ = await new_card(huawei, "Ringing", besides=set())
    await actions.call_operation(agent101.user, offered, "Answer", {})
    await huawei.until(card(offered, "Established"))
    consult, _ = await new_card(genesys, "Established", besides={customer})
    await actions.call_operation(agent1.user, consult, "CompleteTransfer", {})
    await genesys.until(rf'id="call-{consult}"[^>]*hx-swap-oob="delete"')
    await huawei.until(rf'id="call-{offered}"[^>]*>.*?data-participant="5000"')

    await actions.call_operation(agent101.user, offered, "InitiateConference", {"destination": "5003"})
    await huawei.until(card(offered, "Held"))
    third, linked = await new_card(huawei, "Established", besides={offered})
    assert f'data-parent="{offered}"' in linked and "CompleteConference" in operations(linked)
    await actions.call_operation(agent101.user, third, "CompleteConference", {})

    conference = card_of(await huawei.until(rf'id="call-{third}"[^>]*>.*?data-participant="5000"'), third)
    assert {"5000", "5003"} <= set(re.findall(r'data-participant="(\d+)"', conference))
    await huawei.until(rf'id="call-{offered}"[^>]*hx-swap-oob="delete"')
    await saved(lambda: live_call_ids(agent101), {third})
    await saved(lambda: live_calls(agent1), {})
    parties = sorted(sorted(legs) for legs in (await switch_calls(simulator)).values())
    assert parties == [["5000", "5003", "6101"]]
    await genesys.close()
    await huawei.close()


async def test_the_admins_check_neither_signs_a_huawei_agent_in_nor_out(
    simulator: str, agent101: AgentLogin, worker: RunningWorker, admin_client: Client
) -> None:
    @sync_to_async
    def check() -> list[str]:
        response = admin_client.post(
            "/admin/calls/agentlogin/",
            {"action": "check_connection", "_selected_action": [agent101.pk]},
            follow=True,
        )
        return [str(message) for message in response.context["messages"]]

    assert await check() == ["101: the gateway answers; the password is checked when the agent signs in"]
    assert not await signed_in(simulator, "101")

    desk = await ready_desk(agent101)
    assert await check() == ["101: live session connected, agent NotReady"]
    assert await signed_in(simulator, "101")
    await desk.close()


async def test_signing_out_and_in_again_goes_through_the_session_owner(
    simulator: str, agent101: AgentLogin, worker: RunningWorker
) -> None:
    desk = await ready_desk(agent101)
    await actions.agent_operation(agent101.user, "Logout")
    await desk.until(r'id="agent-state"[^>]*data-state="LoggedOut"')
    assert credentials_of(await fresh(agent101)) == {}
    with pytest.raises(ActionRefused):
        await actions.dial(agent101.user, {"destination": "5003"})

    await actions.agent_operation(agent101.user, "Login")
    await desk.until(r'id="agent-state"[^>]*data-state="NotReady"')
    await actions.agent_operation(agent101.user, "Ready")
    await desk.until(r'id="agent-state"[^>]*data-state="Ready"')
    await desk.close()


async def test_a_call_released_while_the_desk_resyncs_stays_released(
    simulator: str, agent101: AgentLogin
) -> None:
    """The poll goes on while a resync reads the gateway's truth in several requests. A call the
    poll learns is released in between stays released: the resync's older list of call ids once
    brought it back, and the next event showed its card again, for good."""
    backend: Any = backend_for(await fresh(agent101))
    seen: list[Event] = []

    def heard(state: str) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return any(isinstance(e, CallChanged) and e.call.state == state for e in seen)

        return check

    async def released_meanwhile(response: httpx.Response) -> None:
        if response.url.path.endswith("/holdlist"):
            await control(simulator, "POST", "/control/parties/5000/hangup")
            await asyncio.sleep(1.5)  # the poll meanwhile hears of the release

    async with backend.session(signed_in=True) as events:

        async def read() -> None:
            async for event in events:
                seen.append(event)

        reading = asyncio.create_task(read())
        await control(simulator, "POST", "/control/calls", {"from": "5000", "to": "6101"})
        await eventually(heard("Ringing"))
        backend._http.event_hooks["response"].append(released_meanwhile)
        await backend.resync()
        await eventually(heard("Released"))
        reading.cancel()

    assert backend.calls == {}
    await backend.aclose()


async def test_a_call_that_ends_while_the_desk_resyncs_is_left_out_and_fails_nothing(
    simulator: str, agent101: AgentLogin
) -> None:
    """The resync reads the agent's call ids, then each new call's details: a call that ended in
    between has no details any more, which once failed the resync and restarted the session."""
    backend: Any = backend_for(await fresh(agent101))
    await backend.sign_in()
    await control(simulator, "POST", "/control/calls", {"from": "5000", "to": "6101"})

    async def ended_meanwhile(response: httpx.Response) -> None:
        if response.url.path.endswith("/allcallid"):
            await control(simulator, "POST", "/control/parties/5000/hangup")

    backend._http.event_hooks["response"].append(ended_meanwhile)
    resynced = await backend.resync()

    assert resynced.calls == ()
    assert resynced.state.state == "NotReady"
    await backend.aclose()


async def test_an_idle_agents_resync_reads_its_state_and_its_calls_and_nothing_more(
    simulator: str, agent101: AgentLogin
) -> None:
    """Every session resyncs every minute: with no call, there is none held and none ringing to read."""
    backend: Any = backend_for(await fresh(agent101))
    await backend.sign_in()
    sent: list[str] = []

    async def count(request: httpx.Request) -> None:
        sent.append(request.url.path.rsplit("/", 1)[-1])

    backend._http.event_hooks["request"].append(count)

    idle = await backend.resync()
    idle_reads, sent[:] = list(sent), []
    await control(simulator, "POST", "/control/calls", {"from": "5000", "to": "6101"})
    ringing = await backend.resync()

    assert idle_reads == ["agentstatus", "allcallid"]
    assert (idle.calls, idle.state.state) == ((), "NotReady")
    assert {"holdlist", "callinfobeforeanswer"} <= set(sent)
    assert [call.state for call in ringing.calls] == ["Ringing"]
    await backend.aclose()
