"""Supervision on the simulator, on the wire of both dialects: team leads find agents, set their
state, listen in, coach and barge in on their calls, and the monitored agents are told.

Genesys: a supervisor (``lead1``) over REST and a real CometD client; Huawei: an inspector (``103``)
over ``/qualitycontrol`` with event polling. The control API's state shows who monitors whom.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from .genesys_client import GenesysAgent
from .huawei_client import HuaweiAgent, control, fast

pytestmark = pytest.mark.asyncio

DEVICES = "/v2/me/devices"
CALLS = "/v2/me/calls"
CHANNELS = "/v2/me/channels"


async def state(simulator: str) -> dict[str, Any]:
    switch: dict[str, Any] = (await control(simulator, "GET", "/control/state")).json()
    return switch


async def place_call(simulator: str, to: str, origin: str = "5000") -> str:
    response = await control(simulator, "POST", "/control/calls", {"from": origin, "to": to})
    call_id: str = response.json()["id"]
    return call_id


# -- Genesys helpers ---------------------------------------------------------------------------


@asynccontextmanager
async def genesys_pair(
    simulator: str, login: str = "lead1", password: str | None = None
) -> AsyncIterator[tuple[GenesysAgent, GenesysAgent]]:
    """A client of ``login`` (the seeded team lead by default) and one of agent1, each with its HTTP
    session and its own user read; neither in a contact-center session yet."""
    async with GenesysAgent(simulator, login, password) as actor, GenesysAgent(simulator, "agent1") as agent:
        yield actor, agent


async def message(agent: GenesysAgent, channel: str) -> dict[str, Any]:
    """The agent's next notification, which must be on ``channel``; its ``data``."""
    received = await agent.next()
    assert received["channel"] == channel, received
    data: dict[str, Any] = received["data"]
    return data


async def call_message(agent: GenesysAgent, notification_type: str = "StatusChange") -> dict[str, Any]:
    data = await message(agent, CALLS)
    assert data["messageType"] == "CallStateChangeMessage"
    assert data["notificationType"] == notification_type, data
    call: dict[str, Any] = data["call"]
    return call


async def device_message(agent: GenesysAgent) -> dict[str, Any]:
    data = await message(agent, DEVICES)
    assert data["messageType"] == "DeviceStateChangeMessage"
    device: dict[str, Any]
    (device,) = data["devices"]
    return device


async def started(agent: GenesysAgent, *channels: str) -> GenesysAgent:
    """Listening on ``channels``, then in a contact-center session, past its own notifications."""
    await agent.listen(*channels)
    await agent.start_session()
    if DEVICES in channels:
        await device_message(agent)
    if CHANNELS in channels:
        await message(agent, CHANNELS)
    return agent


async def talking(simulator: str, agent: GenesysAgent) -> str:
    """A call from 5000 that the agent answered (its Ringing and Established notifications taken)."""
    call_id = await place_call(simulator, agent.me["devices"][0]["phoneNumber"])
    assert (await call_message(agent))["state"] == "Ringing"
    await agent.ok(call_id, "Answer")
    assert (await call_message(agent))["state"] == "Established"
    return call_id


@asynccontextmanager
async def agent_on_a_call(
    simulator: str, *lead_channels: str
) -> AsyncIterator[tuple[GenesysAgent, GenesysAgent, str]]:
    """lead1 in a session listening on ``lead_channels``, and agent1 on a call from 5000 it answered:
    the lead, the agent and the call's id."""
    async with genesys_pair(simulator) as (lead, agent):
        await started(agent, CALLS)
        await started(lead, *lead_channels)
        yield lead, agent, await talking(simulator, agent)


async def device_operation(agent: GenesysAgent, name: str, **params: Any) -> httpx.Response:
    return await agent.post(f"/me/devices/{agent.device_id}", {"operationName": name, **params})


async def listen_in(lead: GenesysAgent, agent: GenesysAgent, name: str = "ListenIn", **params: Any) -> None:
    target = agent.me["devices"][0]["id"]
    response = await device_operation(lead, name, targetDeviceUri=f"{agent.api}/devices/{target}", **params)
    assert response.json() == {"statusCode": 0}, response.text


def numbers(call: dict[str, Any]) -> list[str]:
    return [p["phoneNumber"] for p in call["participants"]]


async def user_id(lead: GenesysAgent, login: str) -> str:
    response = await lead.http.get("/users", params={"userName": login, "fields": "*"})
    (user,) = response.json()["users"]
    found: str = user["id"]
    return found


# -- Genesys: the directory and the users API --------------------------------------------------


async def test_the_seeded_team_lead_is_a_supervisor_with_the_monitoring_operations(simulator: str) -> None:
    async with genesys_pair(simulator) as (lead, agent):
        assert "ROLE_SUPERVISOR" in lead.me["roles"]
        assert {"id": "api-supervisor-monitoring"} in lead.me["features"]
        assert lead.me["devices"][0]["phoneNumber"] == "5010"
        assert agent.me["roles"] == ["ROLE_AGENT"]
        await lead.start_session()
        device = (await lead.http.get(f"/me/devices/{lead.device_id}")).json()["device"]
        assert {"ListenIn", "Coach", "BargeIn"} <= set(device["capabilities"])
        assert "CancelSupervisorMonitoring" not in device["capabilities"]
        assert "supervisorMonitoringState" not in device


async def test_a_supervisor_finds_an_agents_user_id_and_device_by_user_name_or_dn(simulator: str) -> None:
    async with genesys_pair(simulator) as (lead, agent):
        by_name = (await lead.http.get("/users", params={"userName": "agent1", "fields": "*"})).json()
        (user,) = by_name["users"]
        assert user["id"] == agent.me["id"] and user["userName"] == "agent1"
        assert user["path"] == f"/users/{agent.me['id']}"
        by_dn = (await lead.http.get("/users", params={"phoneNumber": "5005"})).json()
        assert by_dn == {"statusCode": 0, "uris": [user["uri"]]}
        one = (await lead.http.get(f"/users/{user['id']}", params={"subresources": "*"})).json()["user"]
        assert one["devices"][0]["id"] == agent.device_id
        assert one["channels"][0]["userState"]["state"] == "LoggedOut"
        everyone = (await lead.http.get("/users", params={"fields": "*"})).json()["users"]
        assert {u["userName"] for u in everyone} == {"agent1", "agent2", "agent4", "lead1"}
        missing = await lead.http.get("/users/00000000000000000000000000000000")
        assert missing.status_code == 404 and missing.json()["statusCode"] == 6


# -- Genesys: remote agent state ---------------------------------------------------------------


async def test_a_supervisor_sets_an_agents_state_and_the_agents_own_session_is_told(simulator: str) -> None:
    async with genesys_pair(simulator) as (lead, agent):
        await started(agent, DEVICES, CHANNELS)
        member = await user_id(lead, "agent1")
        voice = f"/users/{member}/channels/voice"

        answer = await lead.post(voice, {"operationName": "NotReady", "reasonCode": "Coaching"})
        assert answer.json() == {"statusCode": 0}
        device = await device_message(agent)
        assert device["userState"]["state"] == "NotReady" and device["userState"]["reason"] == "Coaching"
        channels = await message(agent, CHANNELS)
        assert channels["messageType"] == "ChannelStateChangeMessageV2"
        assert channels["channels"][0]["channel"] == "voice"
        assert channels["channels"][0]["userState"]["state"] == "NotReady"

        assert (await lead.post(voice, {"operationName": "Ready"})).json() == {"statusCode": 0}
        assert (await device_message(agent))["userState"]["state"] == "Ready"
        assert (await message(agent, CHANNELS))["channels"][0]["userState"]["state"] == "Ready"

        assert (await lead.post(voice, {"operationName": "Logout"})).json() == {"statusCode": 0}
        device = await device_message(agent)
        assert device["deviceState"] == "Inactive" and device["userState"]["state"] == "LoggedOut"
        assert (await message(agent, CHANNELS))["channels"][0]["userState"]["state"] == "LoggedOut"
        (me,) = [a for a in (await state(simulator))["agents"] if a["login"] == "agent1"]
        assert me["loggedIn"] is False
        assert (await agent.http.get("/me")).status_code == 200, "the agent's HTTP session lives on"


@pytest.mark.parametrize(
    ("login", "target", "body", "status", "code"),
    [
        ("agent2", "agent1", {"operationName": "NotReady"}, 403, 5),
        ("lead1", "nobody", {"operationName": "NotReady"}, 404, 6),
        ("lead1", "agent1", {"operationName": "Teleport"}, 400, 10),
        ("lead1", "agent4", {"operationName": "Ready"}, 400, 2),
        ("lead1", "agent4", {"operationName": "Logout"}, 400, 2),
    ],
)
async def test_remote_state_is_refused_with_the_genesys_error_body_and_changes_nothing(
    simulator: str, login: str, target: str, body: dict[str, str], status: int, code: int
) -> None:
    async with genesys_pair(simulator, login) as (actor, agent):
        await agent.start_session()
        member = agent.me["id"] if target == "agent1" else "0" * 32
        if target == "agent4":
            async with GenesysAgent(simulator, "agent4") as agent4:
                member = agent4.me["id"]
        response = await actor.post(f"/users/{member}/channels/voice", body)
        assert response.status_code == status, response.text
        assert response.json()["statusCode"] == code
        assert response.json()["statusMessage"]
        agents = {a["login"]: a for a in (await state(simulator))["agents"]}
        assert agents["agent1"]["state"] == "NotReady" and agents["agent4"]["state"] == "LoggedOut"


# -- Genesys: monitoring -----------------------------------------------------------------------


async def test_listen_in_then_barge_in_then_cancel_is_seen_by_both_sides(simulator: str) -> None:
    async with agent_on_a_call(simulator, DEVICES, CALLS) as (lead, agent, call_id):
        await listen_in(lead, agent)
        device = await device_message(lead)
        assert device["supervisorMonitoringState"] == {
            "state": "ListenIn",
            "mode": "NextCall",
            "scope": "Call",
            "targetDeviceUri": f"{agent.api}/devices/{agent.device_id}",
        }
        assert "CancelSupervisorMonitoring" in device["capabilities"]
        assert "ListenIn" not in device["capabilities"]
        monitoring = await call_message(lead)
        assert monitoring["id"] == call_id and monitoring["state"] == "Established"
        assert monitoring["monitoring"] is True and monitoring["mute"] == "On"
        assert numbers(monitoring) == ["5005", "5000"]
        assert monitoring["capabilities"] == [
            "Hangup",
            "SwitchToCoach",
            "SwitchToBargeIn",
            "MuteMonitoredUser",
        ]
        monitored = await call_message(agent)
        assert monitored["supervisorListeningIn"] is True and monitored["monitoring"] is False
        assert numbers(monitored) == ["5000"], "a listening supervisor is not a participant"
        (watch,) = (await state(simulator))["monitoring"]
        assert watch["supervisor"] == "lead1" and watch["target"] == "agent1"
        assert watch["mode"] == "ListenIn" and watch["callId"] == call_id

        await lead.ok(call_id, "SwitchToBargeIn")
        assert (await device_message(lead))["supervisorMonitoringState"]["state"] == "BargeIn"
        barging = await call_message(lead)
        assert barging["mute"] == "Off"
        assert barging["capabilities"] == ["Hangup", "SwitchToListenIn", "SwitchToCoach", "MuteMonitoredUser"]
        barged = await call_message(agent, "ParticipantsUpdated")
        assert numbers(barged) == ["5000", "5010"] and barged["supervisorListeningIn"] is True
        assert (await state(simulator))["monitoring"][0]["mode"] == "BargeIn"

        assert (await device_operation(lead, "CancelSupervisorMonitoring")).json() == {"statusCode": 0}
        released = await call_message(lead)
        assert released["state"] == "Released" and released["capabilities"] == []
        assert released["monitoring"] is True
        device = await device_message(lead)
        assert "supervisorMonitoringState" not in device and "ListenIn" in device["capabilities"]
        left = await call_message(agent, "ParticipantsUpdated")
        assert numbers(left) == ["5000"] and left["supervisorListeningIn"] is False
        assert left["state"] == "Established"
        after = await state(simulator)
        assert after["monitoring"] == []
        (call,) = after["calls"]
        assert sorted(p["number"] for p in call["parties"]) == ["5000", "5005"]
        assert call["supervisors"] == []
        await lead.no_more()
        await agent.no_more()


async def test_coach_is_heard_by_the_agent_only_and_the_supervisor_can_mute_the_agent(simulator: str) -> None:
    async with agent_on_a_call(simulator, CALLS) as (lead, agent, call_id):
        await listen_in(lead, agent, "Coach")
        coaching = await call_message(lead)
        assert coaching["monitoring"] is True and coaching["mute"] == "Off"
        assert "SwitchToListenIn" in coaching["capabilities"]
        assert "SwitchToCoach" not in coaching["capabilities"]
        coached = await call_message(agent)
        assert coached["supervisorListeningIn"] is True and numbers(coached) == ["5000"]
        assert (await state(simulator))["monitoring"][0]["mode"] == "Coach"

        await lead.ok(call_id, "MuteMonitoredUser")
        muting = await call_message(lead, "MonitoredUserMutedStateChange")
        assert muting["monitoredUserMuted"] is True and "UnmuteMonitoredUser" in muting["capabilities"]
        muted = await call_message(agent, "MonitoredUserMutedStateChange")
        assert muted["monitoredUserMuted"] is True

        await lead.ok(call_id, "SwitchToListenIn")
        assert (await call_message(lead))["mute"] == "On"
        # Listening and coaching look the same to the agent: nothing to tell it.
        await agent.no_more()

        await lead.ok(call_id, "Hangup")
        assert (await call_message(lead))["state"] == "Released"
        assert (await call_message(agent))["supervisorListeningIn"] is False
        assert (await state(simulator))["monitoring"] == []


async def test_the_supervisors_leg_goes_away_when_the_monitored_call_ends(simulator: str) -> None:
    async with agent_on_a_call(simulator, DEVICES, CALLS) as (lead, agent, call_id):
        await listen_in(lead, agent)
        await device_message(lead)
        await call_message(lead)
        await call_message(agent)

        await control(simulator, "POST", "/control/parties/5000/hangup")
        ended = await call_message(agent)
        assert ended["state"] == "Released" and ended["supervisorListeningIn"] is False
        gone = await call_message(lead)
        assert gone["id"] == call_id and gone["state"] == "Released" and gone["monitoring"] is True
        assert "supervisorMonitoringState" not in await device_message(lead), "NextCall ends with the call"
        after = await state(simulator)
        assert after["calls"] == [] and after["monitoring"] == []
        assert await lead.calls() == []


async def test_all_calls_monitoring_waits_for_the_agents_next_call_and_follows_it(simulator: str) -> None:
    async with genesys_pair(simulator) as (lead, agent):
        await started(agent, CALLS)
        await started(lead, DEVICES, CALLS)
        await listen_in(lead, agent, supervisorMonitoringMode="AllCalls", supervisorMonitoringScope="Agent")
        device = await device_message(lead)
        assert device["supervisorMonitoringState"]["mode"] == "AllCalls"
        assert device["supervisorMonitoringState"]["scope"] == "Agent"
        assert (await state(simulator))["monitoring"][0]["callId"] is None
        await lead.no_more()

        for _ in range(2):
            call_id = await talking(simulator, agent)
            joined = await call_message(lead)
            assert joined["id"] == call_id and joined["monitoring"] is True
            assert (await call_message(agent))["supervisorListeningIn"] is True
            await agent.ok(call_id, "Hangup")
            assert (await call_message(agent))["state"] == "Released"
            assert (await call_message(lead))["state"] == "Released"
            (watch,) = (await state(simulator))["monitoring"]
            assert watch["callId"] is None and watch["allCalls"] is True

        await device_operation(lead, "CancelSupervisorMonitoring")
        assert "supervisorMonitoringState" not in await device_message(lead)


@pytest.mark.parametrize(
    ("login", "operation", "target", "status", "code"),
    [
        ("agent2", "ListenIn", "agent1", 403, 5),
        ("lead1", "BargeIn", "nowhere", 404, 6),
        ("lead1", "Coach", None, 400, 1),
        ("lead1", "ListenIn", "lead1", 400, 2),
        ("lead1", "CancelSupervisorMonitoring", None, 400, 2),
    ],
)
async def test_a_monitoring_request_that_cannot_be_served_is_refused_with_a_genesys_error(
    simulator: str, login: str, operation: str, target: str | None, status: int, code: int
) -> None:
    async with genesys_pair(simulator, login) as (actor, agent):
        await actor.start_session()
        await agent.start_session()
        params: dict[str, str] = {}
        if target is not None:
            device = {"agent1": agent.device_id, "lead1": actor.device_id}.get(target, "no-such-device")
            params["targetDeviceUri"] = f"{agent.api}/devices/{device}"
        response = await device_operation(actor, operation, **params)
        assert response.status_code == status, response.text
        assert response.json()["statusCode"] == code and response.json()["statusMessage"]
        assert (await state(simulator))["monitoring"] == []


async def test_an_agent_cannot_use_the_supervisor_operations_on_its_own_call(simulator: str) -> None:
    async with GenesysAgent(simulator, "agent1") as agent:
        await started(agent, CALLS)
        call_id = await talking(simulator, agent)
        for name in ("SwitchToBargeIn", "MuteMonitoredUser"):
            response = await agent.operation(call_id, name)
            assert response.status_code == 400 and response.json()["statusCode"] == 2


async def test_a_second_monitoring_while_one_runs_is_refused(simulator: str) -> None:
    async with genesys_pair(simulator) as (lead, agent):
        await lead.start_session()
        await agent.start_session()
        await listen_in(lead, agent)
        target = f"{agent.api}/devices/{agent.device_id}"
        response = await device_operation(lead, "BargeIn", targetDeviceUri=target)
        assert response.status_code == 400 and response.json()["statusCode"] == 2
        assert [m["mode"] for m in (await state(simulator))["monitoring"]] == ["ListenIn"]


async def test_an_agent_added_as_a_supervisor_may_monitor(simulator: str) -> None:
    body = {"login": "lead9", "password": "pw9", "dn": "5019", "supervisor": True}
    created = await control(simulator, "POST", "/control/directory", body)
    assert created.json()["supervisor"] is True
    async with genesys_pair(simulator, "lead9", "pw9") as (lead, agent):
        assert "ROLE_SUPERVISOR" in lead.me["roles"]
        await lead.start_session()
        await agent.start_session()
        await listen_in(lead, agent, "BargeIn")
        (watch,) = (await state(simulator))["monitoring"]
        assert watch["supervisor"] == "lead9" and watch["supervisorDn"] == "5019"
    async with httpx.AsyncClient(base_url=simulator) as http:
        bad = await http.post("/control/directory", json={**body, "login": "lead8", "supervisor": "yes"})
    assert bad.status_code == 400 and "supervisor" in bad.json()["error"]


# -- Huawei: inspection ------------------------------------------------------------------------


@asynccontextmanager
async def huawei_pair(simulator: str, login: str = "103") -> AsyncIterator[tuple[HuaweiAgent, HuaweiAgent]]:
    """On the fast Huawei timing, agent 101 and then ``login`` (the seeded inspector by default), both
    signed in."""
    await fast(simulator)
    async with HuaweiAgent(simulator, login) as actor, HuaweiAgent(simulator, "101") as agent:
        await agent.signed_in()
        await actor.signed_in()
        yield actor, agent


async def inspector_joins(inspector: HuaweiAgent) -> None:
    """The inspector's own leg of the call: its phone alerts, goes off hook, and it is busy."""
    await inspector.expect("AgentOther_PhoneAlerting", "AgentOther_PhoneOffhook", "AgentState_Busy")


async def huawei_talking(simulator: str, agent: HuaweiAgent) -> str:
    call_id = await place_call(simulator, "6101")
    await agent.expect("AgentEvent_Ringing")
    await agent.ok("PUT", "/voicecall/{id}/answer")
    await agent.expect("AgentEvent_Talking")
    return call_id


async def test_an_inspector_listens_switches_to_insert_and_cancels_and_the_agent_is_told(
    simulator: str,
) -> None:
    async with huawei_pair(simulator) as (inspector, agent):
        call_id = await huawei_talking(simulator, agent)

        assert await inspector.ok("PUT", "/qualitycontrol/{id}/addsupervise/101") == {}
        await inspector_joins(inspector)
        (start,) = await agent.expect("AgentOther_BeQcStart")
        assert start["content"] == {"qcType": 8, "qcAgentId": 103}
        (watch,) = (await state(simulator))["monitoring"]
        assert (watch["supervisor"], watch["target"], watch["mode"]) == ("103", "101", "ListenIn")
        assert watch["callId"] == call_id
        (call,) = (await state(simulator))["calls"]
        assert call["supervisors"] == [{"number": "6103", "mode": "ListenIn", "monitoring": "6101"}]
        assert sorted(p["number"] for p in call["parties"]) == ["5000", "6101"]
        await inspector.no_more()
        await agent.no_more()

        await inspector.ok("POST", "/qualitycontrol/{id}/switch/101")
        (switched,) = await agent.expect("AgentOther_BeQcStart")
        assert switched["content"] == {"qcType": 9, "qcAgentId": 103}
        assert (await state(simulator))["monitoring"][0]["mode"] == "BargeIn"
        await agent.no_more()

        await inspector.ok("DELETE", "/qualitycontrol/{id}/101")
        (stop,) = await agent.expect("AgentOther_BeQcStop")
        assert stop["content"] == {"qcType": 9, "qcAgentId": 103}
        release, _ = await inspector.expect("AgentOther_PhoneRelease", "AgentState_Ready")
        assert release["content"] == {"phoneState": 3}
        after = await state(simulator)
        assert after["monitoring"] == [] and after["calls"][0]["supervisors"] == []
        await agent.no_more()
        await inspector.no_more()


async def test_an_inspector_whispers_switches_mode_and_stops_whispering(simulator: str) -> None:
    async with huawei_pair(simulator) as (inspector, agent):
        await huawei_talking(simulator, agent)

        await inspector.ok(
            "POST", "/qualitycontrol/{id}/requestwhisperagent", params={"whisperagentid": "101"}
        )
        await inspector_joins(inspector)
        (start,) = await agent.expect("AgentOther_BeQcStart")
        assert start["content"]["qcType"] == 20172
        assert (await state(simulator))["monitoring"][0]["mode"] == "Coach"

        switch = "/qualitycontrol/{id}/requestswitchinsertwhisperagent"
        await inspector.ok("POST", switch, params={"whisperagentid": "101", "switchtype": "0"})
        assert (await agent.expect("AgentOther_BeQcStart"))[0]["content"]["qcType"] == 8
        stop = "/qualitycontrol/{id}/requeststopwhisperagent"
        assert await inspector.refused("POST", stop, params={"whisperagentid": "101"}) == "900-005"
        await inspector.ok("POST", switch, params={"switchtype": "2"})
        assert (await agent.expect("AgentOther_BeQcStart"))[0]["content"]["qcType"] == 20172

        await inspector.ok("POST", stop, params={"whisperagentid": "101"})
        assert (await agent.expect("AgentOther_BeQcStop"))[0]["content"]["qcType"] == 20172
        await inspector.expect("AgentOther_PhoneRelease", "AgentState_Ready")
        assert (await state(simulator))["monitoring"] == []


async def test_the_inspectors_leg_leaves_with_the_call_and_joins_the_agents_next_call(
    simulator: str,
) -> None:
    async with huawei_pair(simulator) as (inspector, agent):
        first = await huawei_talking(simulator, agent)
        await inspector.ok("PUT", "/qualitycontrol/{id}/addsupervise/101")
        await inspector_joins(inspector)
        await agent.expect("AgentOther_BeQcStart")

        await control(simulator, "POST", "/control/parties/5000/hangup")
        await agent.expect(
            "AgentEvent_Customer_Release", "AgentEvent_Call_Release", "AgentOther_PhoneRelease"
        )
        after = await state(simulator)
        assert after["calls"] == []
        (watch,) = after["monitoring"]
        assert watch["callId"] is None, "the inspection of the agent goes on without a call"
        await inspector.no_more()
        await agent.no_more()

        second = await huawei_talking(simulator, agent)
        assert second != first
        assert (await state(simulator))["monitoring"][0]["callId"] == second
        await inspector.no_more()


async def test_an_inspector_intercepts_the_call_and_the_agent_drops_out(simulator: str) -> None:
    async with huawei_pair(simulator) as (inspector, agent):
        call_id = await huawei_talking(simulator, agent)
        await inspector.ok("PUT", "/qualitycontrol/{id}/addinsert/101")
        await inspector_joins(inspector)
        assert (await agent.expect("AgentOther_BeQcStart"))[0]["content"]["qcType"] == 9

        assert await inspector.refused("PUT", f"/qualitycontrol/{{id}}/intercept/101/{call_id}x") == "900-005"
        await inspector.ok("PUT", f"/qualitycontrol/{{id}}/intercept/101/{call_id}")
        release, _, stop = await agent.expect(
            "AgentEvent_Call_Release", "AgentOther_PhoneRelease", "AgentOther_BeQcStop"
        )
        assert release["content"] == call_id and stop["content"]["qcType"] == 9
        (talking_event,) = await inspector.expect("AgentEvent_Talking")
        assert talking_event["content"]["callid"] == call_id
        after = await state(simulator)
        assert after["monitoring"] == []
        (call,) = after["calls"]
        assert sorted(p["number"] for p in call["parties"]) == ["5000", "6103"]


async def test_an_inspector_forces_an_agent_busy_idle_to_rest_and_out(simulator: str) -> None:
    async with huawei_pair(simulator) as (inspector, agent):
        await inspector.ok("POST", "/qualitycontrol/{id}/forcebusy/101")
        (busy,) = await agent.expect("AgentState_SetNotReady_Success")
        assert busy["content"] == {"reason": "3"}
        assert (await agent.ok("GET", "/onlineagent/{id}/agentstatus"))["agentState"] == 3

        await inspector.ok("POST", "/qualitycontrol/{id}/forceidle/101")
        await agent.expect("AgentState_CancelNotReady_Success", "AgentState_Ready")

        await inspector.ok("POST", "/qualitycontrol/{id}/forcerest/101/600/5")
        (rest,) = await agent.expect("AgentState_SetRest_Success")
        assert rest["content"] == {"reason": "5"}

        await inspector.ok("POST", "/qualitycontrol/{id}/forcelogout/101")
        (shutdown,) = await agent.expect("AgentOther_ShutdownService")
        assert shutdown["content"]["loginTime"]
        assert (await agent.poll())["retcode"] == "100-006"
        (me,) = [a for a in (await state(simulator))["agents"] if a["login"] == "101"]
        assert me["loggedIn"] is False
        await inspector.no_more()


async def test_an_inspector_forces_a_call_released_for_everyone(simulator: str) -> None:
    async with huawei_pair(simulator) as (inspector, agent):
        call_id = await huawei_talking(simulator, agent)
        await inspector.ok("POST", f"/qualitycontrol/{{id}}/forcedropcall/{call_id}")
        await agent.expect(
            "AgentEvent_Customer_Release", "AgentEvent_Call_Release", "AgentOther_PhoneRelease"
        )
        assert (await state(simulator))["calls"] == []
        assert await inspector.refused("POST", f"/qualitycontrol/{{id}}/forcedropcall/{call_id}") == "000-002"


@pytest.mark.parametrize(
    ("login", "method", "path", "retcode"),
    [
        ("102", "PUT", "/qualitycontrol/{id}/addsupervise/101", "900-002"),
        ("102", "POST", "/qualitycontrol/{id}/forcebusy/101", "900-002"),
        ("102", "POST", "/qualitycontrol/{id}/requestwhisperagent", "900-002"),
        ("103", "PUT", "/qualitycontrol/{id}/addsupervise/103", "000-005"),
        ("103", "PUT", "/qualitycontrol/{id}/addinsert/999", "900-004"),
        ("103", "PUT", "/qualitycontrol/{id}/addsupervise/agent1", "900-004"),
        ("103", "POST", "/qualitycontrol/{id}/forceidle/102", "900-005"),
        ("103", "DELETE", "/qualitycontrol/{id}/101", "900-005"),
        ("103", "POST", "/qualitycontrol/{id}/switch/101", "900-005"),
        ("103", "PUT", "/qualitycontrol/{id}/intercept/101", "900-005"),
        ("103", "POST", "/qualitycontrol/{id}/forcerest/101/0/5", "000-002"),
        ("103", "POST", "/qualitycontrol/{id}/forcerest/101/60/0", "000-002"),
        ("103", "POST", "/qualitycontrol/{id}/requestswitchinsertwhisperagent?switchtype=7", "000-002"),
        ("103", "POST", "/qualitycontrol/{id}/requestwhisperagent", "000-002"),
    ],
)
async def test_an_inspection_that_cannot_be_served_is_refused_with_a_retcode_and_http_200(
    simulator: str, login: str, method: str, path: str, retcode: str
) -> None:
    async with huawei_pair(simulator, login) as (actor, agent):
        assert await actor.refused(method, path) == retcode
        assert (await state(simulator))["monitoring"] == []
        await agent.no_more()


async def test_an_inspector_cannot_inspect_while_on_a_call_of_its_own(simulator: str) -> None:
    async with huawei_pair(simulator) as (inspector, agent):
        await place_call(simulator, "6103")
        await inspector.expect("AgentEvent_Ringing")
        assert await inspector.refused("PUT", "/qualitycontrol/{id}/addsupervise/101") == "900-005"
        await agent.no_more()
