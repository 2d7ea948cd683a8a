"""Seed 004 (making a three-party call) and one site with both vendors, replayed over real HTTP.

The seed's flow is spec section 8.7: the agent talks to B, holds B, calls C, then ``confjoin`` with
the held call's id: ``AgentEvent_Conference`` names both other parties, then
``AgentEvent_Customer_Release`` releases the held call that was folded in; when the agent leaves,
B and C stay connected. Genesys and Huawei agents share one switch, so calls cross between them.
"""

from __future__ import annotations

from typing import Any

import pytest

from .genesys_client import GenesysAgent
from .huawei_client import HuaweiAgent, control, fast

pytestmark = pytest.mark.asyncio


async def parties(simulator: str) -> list[list[tuple[str, str]]]:
    """Every call on the switch as its sorted (number, state) pairs."""
    state = (await control(simulator, "GET", "/control/state")).json()
    return sorted(sorted((p["number"], p["state"]) for p in call["parties"]) for call in state["calls"])


async def three_party_call(simulator: str, agent: HuaweiAgent) -> tuple[str, str]:
    """Seed 004 up to the three-party call: (the held call's id, the conference's id)."""
    held = (await control(simulator, "POST", "/control/calls", {"from": "5000", "to": "6101"})).json()["id"]
    (ringing,) = await agent.expect("AgentEvent_Ringing")
    assert ringing["content"]["callid"] == held
    await agent.ok("PUT", "/voicecall/{id}/answer")
    await agent.expect("AgentEvent_Talking")
    await agent.ok("POST", "/voicecall/{id}/hold")
    (hold,) = await agent.expect("AgentEvent_Hold")
    assert hold["content"] == held

    second = await agent.ok("PUT", "/voicecall/{id}/callout", json={"called": "5003", "caller": "6101"})
    alerting, talking = await agent.expect("AgentEvent_Customer_Alerting", "AgentEvent_Talking")
    assert alerting["content"] == {
        "callid": second,
        "otherPhoneWorkno": "",
        "otherPhone": "5003",
        "type": "main",
    }
    assert talking["content"]["callid"] == second and talking["content"]["called"] == "5003"

    answer = await agent.request("POST", "/voicecall/{id}/confjoin", json={"callid": held, "callappdata": ""})
    assert answer == {"result": {}, "message": "success", "retcode": "0"}
    conference, release = await agent.expect("AgentEvent_Conference", "AgentEvent_Customer_Release")
    assert conference["content"] == {"callid": second, "partner": "5000,5003"}
    assert release["content"] == {"callid": held, "number": "5000"}
    await agent.no_more()
    return held, second


async def test_seed_004_confjoin_makes_a_three_party_call_and_the_other_two_stay_when_the_agent_leaves(
    simulator: str,
) -> None:
    await fast(simulator)
    async with HuaweiAgent(simulator, "101") as agent:
        await agent.signed_in()
        held, conference = await three_party_call(simulator, agent)
        assert await agent.ok("GET", "/calldata/{id}/allcallid") == [conference]
        assert await agent.refused("GET", "/calldata/{id}/holdlist") == "400-003"
        assert await parties(simulator) == [
            [("5000", "Established"), ("5003", "Established"), ("6101", "Established")]
        ]

        await agent.ok("DELETE", "/voicecall/{id}/release")
        release, phone = await agent.expect("AgentEvent_Call_Release", "AgentOther_PhoneRelease")
        assert release["content"] == conference
        assert phone["content"] == {"phoneState": 3}
        await agent.no_more()
        assert await parties(simulator) == [[("5000", "Established"), ("5003", "Established")]]


async def test_seed_004_when_b_hangs_up_the_agent_and_c_stay_connected(simulator: str) -> None:
    await fast(simulator)
    async with HuaweiAgent(simulator, "101") as agent:
        await agent.signed_in()
        _, conference = await three_party_call(simulator, agent)
        await control(simulator, "POST", "/control/parties/5000/hangup")
        (release,) = await agent.expect("AgentEvent_Customer_Release")
        assert release["content"] == {"callid": conference, "number": "5000"}
        await agent.no_more()
        assert await parties(simulator) == [[("5003", "Established"), ("6101", "Established")]]


async def test_seed_004_disconnect_drops_c_and_returns_the_agent_to_b(simulator: str) -> None:
    await fast(simulator)
    async with HuaweiAgent(simulator, "101") as agent:
        await agent.signed_in()
        _, conference = await three_party_call(simulator, agent)
        await agent.ok("POST", "/voicecall/{id}/disconnect/5003")
        (release,) = await agent.expect("AgentEvent_Customer_Release")
        assert release["content"] == {"callid": conference, "number": "5003"}
        assert await parties(simulator) == [[("5000", "Established"), ("6101", "Established")]]


async def test_seed_004_error_codes_no_active_call_200_010_and_no_held_call_200_011(simulator: str) -> None:
    await fast(simulator)
    async with HuaweiAgent(simulator, "101") as agent:
        await agent.signed_in()
        held = (await control(simulator, "POST", "/control/calls", {"from": "5000", "to": "6101"})).json()[
            "id"
        ]
        await agent.expect("AgentEvent_Ringing")
        await agent.ok("PUT", "/voicecall/{id}/answer")
        await agent.ok("POST", "/voicecall/{id}/hold")
        await agent.expect("AgentEvent_Talking", "AgentEvent_Hold")
        assert await agent.refused("POST", "/voicecall/{id}/confjoin", json={"callid": held}) == "200-010"
        second = await agent.ok("PUT", "/voicecall/{id}/callout", json={"called": "5003"})
        await agent.expect("AgentEvent_Customer_Alerting", "AgentEvent_Talking")
        assert await agent.refused("POST", "/voicecall/{id}/confjoin", json={"callid": second}) == "200-011"
        assert await agent.refused(
            "POST", "/voicecall/{id}/confjoin", json={"callid": "1455885056-1095"}
        ) == ("200-011")
        await agent.no_more()
        assert len(await parties(simulator)) == 2


async def test_seed_004_from_an_internal_help_consult_joins_the_helper_into_the_call(simulator: str) -> None:
    await fast(simulator)
    async with HuaweiAgent(simulator, "101") as agent101, HuaweiAgent(simulator, "102") as agent102:
        await agent101.signed_in()
        await agent102.signed_in()
        held = (await control(simulator, "POST", "/control/calls", {"from": "5000", "to": "6101"})).json()[
            "id"
        ]
        await agent101.expect("AgentEvent_Ringing")
        await agent101.ok("PUT", "/voicecall/{id}/answer")
        await agent101.expect("AgentEvent_Talking")
        help_call = await agent101.ok("POST", "/voicecall/{id}/innerhelp", json={"dstaddress": "102"})
        await agent101.expect("AgentEvent_Hold", "AgentEvent_Customer_Alerting")
        await agent102.expect("AgentEvent_Ringing")
        await agent102.ok("PUT", "/voicecall/{id}/answer")
        await agent101.expect("AgentEvent_Talking")
        await agent102.expect("AgentEvent_Talking")

        await agent101.ok("POST", "/voicecall/{id}/confjoin", json={"callid": held})
        conference, release = await agent101.expect("AgentEvent_Conference", "AgentEvent_Customer_Release")
        assert conference["content"] == {"callid": help_call, "partner": "5000,6102"}
        assert release["content"] == {"callid": held, "number": "5000"}
        (joined,) = await agent102.expect("AgentEvent_Conference")
        assert joined["content"] == {"callid": help_call, "partner": "5000,6101"}

        await agent101.ok("DELETE", "/voicecall/{id}/release")
        await agent101.expect("AgentEvent_Call_Release", "AgentOther_PhoneRelease")
        (left,) = await agent102.expect("AgentEvent_Customer_Release")
        assert left["content"] == {"callid": help_call, "number": "6101"}
        assert await parties(simulator) == [[("5000", "Established"), ("6102", "Established")]]


# -- one site, both vendors ------------------------------------------------------------------------


async def genesys_agent(simulator: str) -> GenesysAgent:
    agent = await GenesysAgent(simulator, "agent1").__aenter__()
    await agent.listen("/v2/me/calls")
    await agent.start_session()
    return agent


async def genesys_call(agent: GenesysAgent, state: str) -> dict[str, Any]:
    """The next call notification in ``state``, skipping the ones in between."""
    while True:
        message = await agent.next()
        call = message["data"]["call"]
        if call["state"] == state:
            return call


async def test_a_genesys_agent_consults_and_transfers_to_a_huawei_agent(simulator: str) -> None:
    await fast(simulator)
    genesys = await genesys_agent(simulator)
    try:
        async with HuaweiAgent(simulator, "101") as huawei:
            await huawei.signed_in()
            await control(simulator, "POST", "/control/calls", {"from": "5000", "to": "5005"})
            original = (await genesys_call(genesys, "Ringing"))["id"]
            await genesys.ok(original, "Answer")
            await genesys_call(genesys, "Established")
            await genesys.ok(original, "InitiateTransfer", destination={"phoneNumber": "6101"})
            consult = (await genesys_call(genesys, "Dialing"))["id"]

            (ringing,) = await huawei.expect("AgentEvent_Ringing")
            assert ringing["content"]["callid"] == consult
            assert ringing["content"]["caller"] == "5005" and ringing["content"]["called"] == "6101"
            assert ringing["content"]["feature"] == "6"
            await huawei.ok("PUT", "/voicecall/{id}/answer")
            (talking,) = await huawei.expect("AgentEvent_Talking")
            assert talking["content"]["callid"] == consult
            assert (await genesys_call(genesys, "Established"))["id"] == consult

            await genesys.ok(consult, "CompleteTransfer")
            release, talking = await huawei.expect("AgentEvent_Customer_Release", "AgentEvent_Talking")
            assert release["content"] == {"callid": consult, "number": "5005"}
            assert talking["content"]["caller"] == "5000" and talking["content"]["callid"] == consult
            await huawei.no_more()
            assert await genesys.calls() == []
            assert await parties(simulator) == [[("5000", "Established"), ("6101", "Established")]]
            info = await huawei.ok("GET", f"/calldata/{{id}}/callinfobycallid/{consult}")
            assert info["caller"] == "5000"
    finally:
        await genesys.__aexit__()


async def test_a_genesys_agent_conferences_a_huawei_agent_into_its_call(simulator: str) -> None:
    await fast(simulator)
    genesys = await genesys_agent(simulator)
    try:
        async with HuaweiAgent(simulator, "101") as huawei:
            await huawei.signed_in()
            await control(simulator, "POST", "/control/calls", {"from": "5000", "to": "5005"})
            original = (await genesys_call(genesys, "Ringing"))["id"]
            await genesys.ok(original, "Answer")
            await genesys.ok(original, "InitiateConference", destination={"phoneNumber": "6101"})
            consult = (await genesys_call(genesys, "Dialing"))["id"]
            await huawei.expect("AgentEvent_Ringing")
            await huawei.ok("PUT", "/voicecall/{id}/answer")
            await huawei.expect("AgentEvent_Talking")
            await genesys_call(genesys, "Established")

            await genesys.ok(consult, "CompleteConference")
            release, talking, conference = await huawei.expect(
                "AgentEvent_Call_Release", "AgentEvent_Talking", "AgentEvent_Conference"
            )
            assert release["content"] == consult
            assert talking["content"]["callid"] == original
            assert conference["content"]["callid"] == original
            assert sorted(conference["content"]["partner"].split(",")) == ["5000", "5005"]
            await huawei.no_more()
            assert await huawei.ok("GET", "/calldata/{id}/allcallid") == [original]

            await huawei.ok("DELETE", "/voicecall/{id}/release")
            await huawei.expect("AgentEvent_Call_Release", "AgentOther_PhoneRelease")
            assert await parties(simulator) == [[("5000", "Established"), ("5005", "Established")]]
    finally:
        await genesys.__aexit__()


async def test_a_genesys_single_step_transfer_rings_the_huawei_agent_with_the_customer_as_caller(
    simulator: str,
) -> None:
    await fast(simulator)
    genesys = await genesys_agent(simulator)
    try:
        async with HuaweiAgent(simulator, "101") as huawei:
            await huawei.signed_in()
            await control(simulator, "POST", "/control/calls", {"from": "0201234567", "to": "5005"})
            call_id = (await genesys_call(genesys, "Ringing"))["id"]
            await genesys.ok(call_id, "Answer")
            await genesys.ok(call_id, "SingleStepTransfer", destination={"phoneNumber": "6101"})
            (ringing,) = await huawei.expect("AgentEvent_Ringing")
            assert ringing["content"]["callid"] == call_id
            assert ringing["content"]["caller"] == "0201234567" and ringing["content"]["feature"] == "0"
            await huawei.ok("PUT", "/voicecall/{id}/answer")
            await huawei.expect("AgentEvent_Talking")
            assert await parties(simulator) == [[("0201234567", "Established"), ("6101", "Established")]]
    finally:
        await genesys.__aexit__()


async def test_a_huawei_agent_calls_out_to_a_genesys_agent(simulator: str) -> None:
    await fast(simulator)
    genesys = await genesys_agent(simulator)
    try:
        async with HuaweiAgent(simulator, "101") as huawei:
            await huawei.signed_in()
            call_id = await huawei.ok("PUT", "/voicecall/{id}/callout", json={"called": "5005"})
            (alerting,) = await huawei.expect("AgentEvent_Customer_Alerting")
            assert alerting["content"]["otherPhone"] == "5005"
            ringing = await genesys_call(genesys, "Ringing")
            assert ringing["id"] == call_id
            assert [p["phoneNumber"] for p in ringing["participants"]] == ["6101"]
            await genesys.ok(call_id, "Answer")
            (talking,) = await huawei.expect("AgentEvent_Talking")
            assert talking["content"] == {
                "caller": "6101",
                "callid": call_id,
                "called": "5005",
                "feature": "6",
                "type": "main",
                "mediaAbility": "1",
            }
            await genesys.ok(call_id, "Hangup")
            await huawei.expect(
                "AgentEvent_Customer_Release", "AgentEvent_Call_Release", "AgentOther_PhoneRelease"
            )
    finally:
        await genesys.__aexit__()


async def test_a_huawei_agent_consults_a_genesys_agent_and_releases_to_transfer(simulator: str) -> None:
    await fast(simulator)
    genesys = await genesys_agent(simulator)
    try:
        async with HuaweiAgent(simulator, "101") as huawei:
            await huawei.signed_in()
            await control(simulator, "POST", "/control/calls", {"from": "5000", "to": "6101"})
            await huawei.expect("AgentEvent_Ringing")
            await huawei.ok("PUT", "/voicecall/{id}/answer")
            await huawei.expect("AgentEvent_Talking")
            help_call = await huawei.ok(
                "POST", "/voicecall/{id}/innerhelp", json={"dstaddress": "5005", "devicetype": 2, "mode": 1}
            )
            await huawei.expect("AgentEvent_Hold", "AgentEvent_Customer_Alerting")
            assert (await genesys_call(genesys, "Ringing"))["id"] == help_call
            await genesys.ok(help_call, "Answer")
            (talking,) = await huawei.expect("AgentEvent_Talking")
            assert talking["content"]["feature"] == "51"
            await genesys_call(genesys, "Established")

            await huawei.ok("DELETE", "/voicecall/{id}/release")
            await huawei.expect(
                "AgentEvent_Customer_Release", "AgentEvent_Call_Release", "AgentOther_PhoneRelease"
            )
            (call,) = await genesys.calls()
            assert call["id"] == help_call and call["state"] == "Established"
            assert [p["phoneNumber"] for p in call["participants"]] == ["5000"]
            assert await parties(simulator) == [[("5000", "Established"), ("5005", "Established")]]
    finally:
        await genesys.__aexit__()


async def test_a_huawei_agent_transfers_a_call_to_a_genesys_agent(simulator: str) -> None:
    await fast(simulator)
    genesys = await genesys_agent(simulator)
    try:
        async with HuaweiAgent(simulator, "101") as huawei:
            await huawei.signed_in()
            call_id = (
                await control(simulator, "POST", "/control/calls", {"from": "5000", "to": "6101"})
            ).json()["id"]
            await huawei.expect("AgentEvent_Ringing")
            await huawei.ok("PUT", "/voicecall/{id}/answer")
            await huawei.expect("AgentEvent_Talking")
            await huawei.ok(
                "POST", "/voicecall/{id}/transfer", json={"devicetype": 2, "mode": 0, "address": "5005"}
            )
            await huawei.expect("AgentEvent_Call_Release", "AgentOther_PhoneRelease")
            ringing = await genesys_call(genesys, "Ringing")
            assert ringing["id"] == call_id
            assert [p["phoneNumber"] for p in ringing["participants"]] == ["5000"]
            await genesys.ok(call_id, "Answer")
            assert await parties(simulator) == [[("5000", "Established"), ("5005", "Established")]]
    finally:
        await genesys.__aexit__()
