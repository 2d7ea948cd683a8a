"""The simulator's Genesys REST surface: sessions, CSRF, refusals, agent state, isolation."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from .genesys_client import GenesysAgent

pytestmark = pytest.mark.asyncio


async def ringing_call(simulator: str, agent: GenesysAgent, origin: str = "5000") -> str:
    async with httpx.AsyncClient(base_url=simulator) as http:
        response = await http.post(
            "/control/calls", json={"from": origin, "to": agent.me["devices"][0]["phoneNumber"]}
        )
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def test_a_request_without_credentials_is_refused_with_401(simulator: str) -> None:
    async with httpx.AsyncClient(base_url=f"{simulator}/genesys/api/v2") as http:
        response = await http.get("/me")
    assert response.status_code == 401
    assert response.json()["statusCode"] == 20


async def test_a_wrong_password_is_refused_with_401(simulator: str) -> None:
    async with httpx.AsyncClient(base_url=f"{simulator}/genesys/api/v2", auth=("agent1", "nope")) as http:
        response = await http.get("/me")
    assert response.status_code == 401
    assert "password" in response.json()["statusMessage"]


async def test_basic_auth_opens_a_session_with_a_cookie_and_a_csrf_token(simulator: str) -> None:
    async with httpx.AsyncClient(base_url=f"{simulator}/genesys/api/v2", auth=("agent1", "agent1")) as http:
        response = await http.get("/me")
        assert response.status_code == 200
        assert response.json()["user"]["userName"] == "agent1"
        assert response.headers["X-CSRF-HEADER"] == "X-CSRF-TOKEN"
        token = response.headers["X-CSRF-TOKEN"]
        assert "JSESSIONID" in http.cookies
        http.auth = None
        again = await http.get("/me")
        assert again.status_code == 200, "the session cookie alone authenticates"
        assert again.headers["X-CSRF-TOKEN"] == token


async def test_a_post_without_the_csrf_token_is_refused_with_403_and_changes_nothing(simulator: str) -> None:
    async with GenesysAgent(simulator, "agent1") as agent:
        response = await agent.http.post(
            "/me", json={"operationName": "StartContactCenterSession", "channels": ["voice"]}
        )
        assert response.status_code == 403
        assert response.json()["statusMessage"] == "Missing or invalid Csrf token"
        wrong = await agent.http.post(
            "/me", json={"operationName": "StartContactCenterSession"}, headers={"X-CSRF-TOKEN": "guess"}
        )
        assert wrong.status_code == 403
        state = (await agent.http.get("/me/devices", params={"fields": "*"})).json()
        assert state["devices"][0]["deviceState"] == "Inactive"


async def test_a_post_with_basic_auth_but_no_session_is_refused_with_403(simulator: str) -> None:
    async with httpx.AsyncClient(base_url=f"{simulator}/genesys/api/v2", auth=("agent1", "agent1")) as http:
        response = await http.post("/me", json={"operationName": "Ready"})
    assert response.status_code == 403


async def test_an_unknown_call_id_answers_404_with_status_code_6(simulator: str) -> None:
    async with GenesysAgent(simulator, "agent1") as agent:
        response = await agent.operation("01NOSUCHCALL000000000000000000AB", "Answer")
    assert response.status_code == 404
    assert response.json()["statusCode"] == 6


async def test_an_agent_cannot_see_or_act_on_another_agents_call(simulator: str) -> None:
    async with GenesysAgent(simulator, "agent1") as agent1, GenesysAgent(simulator, "agent2") as agent2:
        await agent1.start_session()
        call_id = await ringing_call(simulator, agent1)
        assert [c["id"] for c in await agent1.calls()] == [call_id]
        assert await agent2.calls() == []
        response = await agent2.operation(call_id, "Answer")
        assert response.status_code == 404
        assert (await agent2.http.get(f"/me/calls/{call_id}")).status_code == 404
        assert (await agent1.calls())[0]["state"] == "Ringing"


@pytest.mark.parametrize(
    ("body", "status", "code", "words"),
    [
        ({"operationName": "Teleport"}, 400, 10, "Unknown operationName"),
        ({}, 400, 1, "operationName is required"),
        ({"operationName": "Hold"}, 400, 2, "Hold is not available"),
        ({"operationName": "Reject"}, 400, 2, "Reject is not available"),
        ({"operationName": "AttachUserData"}, 400, 1, "userData is required"),
        (
            {"operationName": "AttachUserData", "userData": {"k": {"nested": 1}}},
            400,
            10,
            "string or a number",
        ),
        ({"operationName": "DeleteUserDataPair", "key": "absent"}, 400, 2, "no attached data"),
    ],
)
async def test_a_bad_operation_on_a_ringing_call_is_refused_clearly_and_changes_nothing(
    simulator: str, body: dict[str, object], status: int, code: int, words: str
) -> None:
    async with GenesysAgent(simulator, "agent1") as agent:
        await agent.start_session()
        call_id = await ringing_call(simulator, agent)
        response = await agent.post(f"/me/calls/{call_id}", body)
        assert response.status_code == status
        assert response.json()["statusCode"] == code
        assert words in response.json()["statusMessage"]
        (call,) = await agent.calls()
        assert call["state"] == "Ringing"
        assert "userData" not in call


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"operationName": "InitiateTransfer"}, "destination.phoneNumber is required"),
        ({"operationName": "InitiateTransfer", "destination": {"phoneNumber": "50x1"}}, "can be dialled"),
        ({"operationName": "SendDtmf"}, "digits is required"),
        ({"operationName": "SendDtmf", "digits": "12a"}, "digits must be"),
        ({"operationName": "SingleStepTransfer", "destination": "5001"}, "destination.phoneNumber"),
    ],
)
async def test_a_missing_or_invalid_parameter_is_refused_and_the_call_stays_as_it_was(
    simulator: str, body: dict[str, object], words: str
) -> None:
    async with GenesysAgent(simulator, "agent1") as agent:
        await agent.start_session()
        call_id = await ringing_call(simulator, agent)
        await agent.ok(call_id, "Answer")
        response = await agent.post(f"/me/calls/{call_id}", body)
        assert response.status_code == 400
        assert words in response.json()["statusMessage"]
        (call,) = await agent.calls()
        assert call["state"] == "Established"


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"Answer"'])
async def test_a_malformed_body_is_refused_with_400_not_500(simulator: str, raw: bytes) -> None:
    async with GenesysAgent(simulator, "agent1") as agent:
        await agent.start_session()
        call_id = await ringing_call(simulator, agent)
        response = await agent.http.post(
            f"/me/calls/{call_id}",
            content=raw,
            headers={"X-CSRF-TOKEN": agent.csrf, "Content-Type": "application/json"},
        )
        assert response.status_code == 400
        assert response.json()["statusCode"] == 10


async def test_agent_state_changes_are_notified_on_the_devices_channel(simulator: str) -> None:
    async with GenesysAgent(simulator, "agent1") as agent:
        await agent.listen("/v2/me/devices")
        await agent.start_session()
        message = await agent.next()
        assert message["channel"] == "/v2/me/devices"
        assert message["data"]["messageType"] == "DeviceStateChangeMessage"
        device = message["data"]["devices"][0]
        assert device["deviceState"] == "Active" and device["userState"]["state"] == "NotReady"
        response = await agent.post(
            "/me/channels/voice", {"operationName": "NotReady", "reasonCode": "Lunch"}
        )
        assert response.json() == {"statusCode": 0}
        device = (await agent.next())["data"]["devices"][0]
        assert device["userState"]["state"] == "NotReady" and device["userState"]["reason"] == "Lunch"
        await agent.post("/me", {"operationName": "Ready"})
        assert (await agent.next())["data"]["devices"][0]["userState"]["state"] == "Ready"
        await agent.post("/me", {"operationName": "AfterCallWork"})
        assert (await agent.next())["data"]["devices"][0]["userState"]["workMode"] == "AfterCallWork"


async def test_agent_state_cannot_change_before_the_contact_center_session_starts(simulator: str) -> None:
    async with GenesysAgent(simulator, "agent1") as agent:
        response = await agent.post("/me", {"operationName": "Ready"})
    assert response.status_code == 400
    assert "not logged in" in response.json()["statusMessage"]


async def test_ending_the_contact_center_session_logs_out_and_invalidates_the_http_session(
    simulator: str,
) -> None:
    async with GenesysAgent(simulator, "agent1") as agent:
        await agent.start_session()
        response = await agent.post("/me", {"operationName": "EndContactCenterSession"})
        assert response.json() == {"statusCode": 0}
        agent.http.auth = None
        assert (await agent.http.get("/me")).status_code == 401


async def test_a_call_to_a_logged_out_agents_dn_is_answered_by_the_desk_phone(simulator: str) -> None:
    async with GenesysAgent(simulator, "agent1") as agent:
        await ringing_call(simulator, agent)
        await asyncio.sleep(0.1)
        assert await agent.calls() == []
    async with httpx.AsyncClient(base_url=simulator) as http:
        state = (await http.get("/control/state")).json()
    assert [p["state"] for p in state["calls"][0]["parties"]] == ["Established", "Established"]


async def test_the_ringing_timeout_releases_an_unanswered_call(simulator: str) -> None:
    async with httpx.AsyncClient(base_url=simulator) as http:
        await http.put("/control/settings", json={"ringing_timeout_ms": 200})
    async with GenesysAgent(simulator, "agent1") as agent:
        await agent.listen()
        await agent.start_session()
        await ringing_call(simulator, agent)
        assert (await agent.next())["data"]["call"]["state"] == "Ringing"
        released = await agent.next(wait=3)
        assert released["data"]["call"]["state"] == "Released"


async def test_a_remote_hangup_releases_the_agents_call(simulator: str) -> None:
    async with GenesysAgent(simulator, "agent1") as agent:
        await agent.listen()
        await agent.start_session()
        call_id = await ringing_call(simulator, agent, origin="+4930123456")
        assert (await agent.next())["data"]["call"]["callType"] == "Inbound"
        await agent.ok(call_id, "Answer")
        await agent.next()
        async with httpx.AsyncClient(base_url=simulator) as http:
            assert (await http.post("/control/parties/+4930123456/hangup")).json() == {"hungUp": 1}
        message = await agent.next()
        assert message["data"]["call"]["state"] == "Released"
        assert await agent.calls() == []


async def test_duration_counts_real_seconds(simulator: str) -> None:
    async with GenesysAgent(simulator, "agent1") as agent:
        await agent.start_session()
        await ringing_call(simulator, agent)
        await asyncio.sleep(1.1)
        (call,) = await agent.calls()
        assert int(call["duration"]) >= 1


async def test_mute_and_user_data_operations_change_the_call_as_documented(simulator: str) -> None:
    async with GenesysAgent(simulator, "agent4") as agent:
        await agent.listen()
        await agent.start_session()
        await agent.dial("15001")
        call_id = (await agent.next())["data"]["call"]["id"]
        await agent.next()
        await agent.ok(call_id, "SingleStepConference", destination={"phoneNumber": "15002"})
        await agent.next()
        await agent.ok(call_id, "MuteCall")
        muted = (await agent.next())["data"]["call"]
        assert (
            muted["mute"] == "On"
            and "UnmuteCall" in muted["capabilities"]
            and "MuteCall" not in muted["capabilities"]
        )
        await agent.ok(call_id, "UpdateUserData", userData={"Account": "42", "Reason": "billing"})
        changed = (await agent.next())["data"]
        assert changed["notificationType"] == "AttachedDataChanged"
        assert changed["call"]["userData"]["Account"] == "42"
        await agent.ok(call_id, "DeleteUserDataPair", key="Account")
        assert "Account" not in (await agent.next())["data"]["call"]["userData"]
        await agent.ok(call_id, "DeleteUserData")
        assert "userData" not in (await agent.next())["data"]["call"]
        await agent.ok(call_id, "SendDtmf", digits="1234#")
        assert (await agent.next())["data"]["notificationType"] == "DtmfSent"


async def test_a_held_call_that_loses_its_partner_stops_offering_swap(simulator: str) -> None:
    async with GenesysAgent(simulator, "agent1") as agent:
        await agent.listen()
        await agent.start_session()
        first = await ringing_call(simulator, agent)
        await agent.next()
        await agent.ok(first, "Answer")
        await agent.next()
        await agent.ok(first, "InitiateTransfer", destination={"phoneNumber": "5001"})
        await agent.next()
        consult = (await agent.next())["data"]["call"]
        await agent.next()  # 5001's desk phone answers
        await agent.ok(first, "Retrieve")
        retrieved = [(await agent.next())["data"]["call"] for _ in range(2)]
        assert [c["state"] for c in retrieved] == ["Held", "Established"]
        assert "SwapCalls" in retrieved[1]["capabilities"]
        await agent.ok(consult["id"], "Hangup")
        released = (await agent.next())["data"]["call"]
        assert released["id"] == consult["id"] and released["state"] == "Released"
        settled = (await agent.next())["data"]["call"]
        assert settled["id"] == first and "SwapCalls" not in settled["capabilities"]


async def test_answering_a_second_call_holds_the_established_one_first(simulator: str) -> None:
    async with GenesysAgent(simulator, "agent1") as agent:
        await agent.listen("/v2/me/calls")
        await agent.start_session()
        first = await ringing_call(simulator, agent)
        await agent.ok(first, "Answer")
        second = await ringing_call(simulator, agent, origin="5002")
        await agent.ok(second, "Answer")
        seen: list[tuple[str, str]] = []
        while (second, "Established") not in seen:
            call = (await agent.next())["data"]["call"]
            seen.append((call["id"], call["state"]))
        assert seen.index((first, "Held")) < seen.index((second, "Established"))
        states = {call["id"]: call["state"] for call in await agent.calls()}
        assert states == {first: "Held", second: "Established"}


async def test_each_session_of_an_agent_hears_its_notifications_and_one_that_ended_hears_none(
    simulator: str,
) -> None:
    async with GenesysAgent(simulator, "agent1") as first, GenesysAgent(simulator, "agent1") as second:
        await first.listen("/v2/me/devices")
        await second.listen("/v2/me/devices")
        await first.start_session()
        assert (await first.next())["data"]["devices"][0]["userState"]["state"] == "NotReady"
        assert (await second.next())["data"]["devices"][0]["userState"]["state"] == "NotReady"

        await first.post("/me", {"operationName": "EndContactCenterSession"})
        await second.start_session()

        assert (await second.next())["data"]["devices"][0]["deviceState"] == "Inactive"
        assert (await second.next())["data"]["devices"][0]["userState"]["state"] == "NotReady"
        await first.no_more()
