"""The simulator's Huawei AgentGateway surface: Guid sessions, event polling, refusals, operations, faults."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from .huawei_client import RESOURCE, HuaweiAgent, control, fast

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def simulator_fast(simulator: str) -> str:
    await fast(simulator)
    return simulator


async def ringing_call(simulator: str, to: str = "6101", origin: str = "5000") -> str:
    response = await control(simulator, "POST", "/control/calls", {"from": origin, "to": to})
    return response.json()["id"]


async def talking_call(simulator: str, agent: HuaweiAgent, origin: str = "5000") -> str:
    call_id = await ringing_call(simulator, origin=origin)
    await agent.expect("AgentEvent_Ringing")
    await agent.ok("PUT", "/voicecall/{id}/answer")
    await agent.expect("AgentEvent_Talking")
    return call_id


async def switch_calls(simulator: str) -> list[list[str]]:
    state = (await control(simulator, "GET", "/control/state")).json()
    return sorted(sorted(p["number"] for p in call["parties"]) for call in state["calls"])


# -- sign-in and the Guid ------------------------------------------------------------------------


async def test_sign_in_answers_with_a_guid_header_the_documented_result_and_events(
    simulator_fast: str,
) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent:
        answer = await agent.sign_in(phonenum="6101")
        assert answer["retcode"] == "0"
        assert agent.guid.endswith(".AgentGateway0")
        result = answer["result"]
        assert set(result) == {
            "vdnid",
            "workno",
            "mediatype",
            "loginTime",
            "isForceChange",
            "serverName",
            "timeRemaining",
        }
        assert result["workno"] == "101" and result["loginTime"].isdigit()
        events = await agent.expect("AgentOther_InService", "AgentState_Ready")
        assert [e["content"] for e in events] == [None, None]
        await agent.no_more()
        status = await agent.ok("GET", "/onlineagent/{id}/agentstatus")
        assert status == {"agentState": 4, "isWorking": False}


async def test_sign_in_takes_numbers_and_booleans_sent_as_strings(simulator_fast: str) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent:
        answer = await agent.sign_in(status="3", releasephone="false", agenttype="4", autoanswer="false")
        assert answer["retcode"] == "0", answer
        events = await agent.expect(
            "AgentOther_InService", "AgentState_Ready", "AgentState_SetNotReady_Success"
        )
        assert events[2]["content"] == {"reason": "0"}
        assert (await agent.ok("GET", "/onlineagent/{id}/agentstatus"))["agentState"] == 3


async def test_sign_in_with_status_5_starts_the_agent_in_wrap_up(simulator_fast: str) -> None:
    async with HuaweiAgent(simulator_fast, "102") as agent:
        await agent.sign_in(status=5)
        await agent.expect("AgentOther_InService", "AgentState_Ready", "AgentState_Work")
        assert (await agent.ok("GET", "/onlineagent/{id}/agentstatus"))["agentState"] == 5
        state = (await control(simulator_fast, "GET", "/control/state")).json()
        (me,) = [a for a in state["agents"] if a["login"] == "102"]
        assert me["loggedIn"] is True and me["state"] == "AfterCallWork"


@pytest.mark.parametrize(
    ("workno", "password"),
    [("101", "wrong"), ("101", ""), ("999", "agent999"), ("agent1", "agent1")],
    ids=["wrong-password", "empty-password", "unknown-agent", "genesys-agent"],
)
async def test_a_wrong_agent_or_password_is_refused_with_100_004_and_no_guid(
    simulator_fast: str, workno: str, password: str
) -> None:
    async with HuaweiAgent(simulator_fast, workno, password) as agent:
        answer = await agent.sign_in()
        assert answer["retcode"] == "100-004" and answer["message"]
        assert agent.guid == ""


async def test_a_sign_in_with_a_bad_status_is_refused_with_100_011(simulator_fast: str) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent:
        assert (await agent.sign_in(status=7))["retcode"] == "100-011"
        assert (await agent.sign_in(autoanswer="perhaps"))["retcode"] == "100-011"


async def test_a_second_sign_in_is_refused_with_100_002_and_forcelogin_throws_the_old_guid_out(
    simulator_fast: str,
) -> None:
    async with HuaweiAgent(simulator_fast, "101") as first, HuaweiAgent(simulator_fast, "101") as second:
        await first.signed_in()
        assert (await second.sign_in())["retcode"] == "100-002"
        assert second.guid == ""
        assert (await first.ok("GET", "/onlineagent/{id}/agentstatus"))["agentState"] == 4

        answer = await second.sign_in(force=True)
        assert answer["retcode"] == "0"
        assert second.guid and second.guid != first.guid
        await second.expect("AgentOther_InService", "AgentState_Ready")
        assert (await first.poll())["retcode"] == "100-006"
        assert await first.refused("GET", "/onlineagent/{id}/agentstatus") == "100-006"
        assert (await second.ok("GET", "/onlineagent/{id}/agentstatus"))["agentState"] == 4


async def test_forcelogin_signs_in_an_agent_that_was_not_signed_in(simulator_fast: str) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent:
        assert (await agent.sign_in(force=True))["retcode"] == "0"
        await agent.expect("AgentOther_InService", "AgentState_Ready")


@pytest.mark.parametrize(
    "headers",
    [{}, {"Guid": ""}, {"Guid": "00000000-0000-0000-0000-000000000000.AgentGateway0"}],
    ids=["no-header", "empty", "unknown"],
)
async def test_a_request_without_a_valid_guid_is_refused_with_100_006(
    simulator_fast: str, headers: dict[str, str]
) -> None:
    async with httpx.AsyncClient(base_url=simulator_fast + RESOURCE) as http:
        for method, path in [
            ("GET", "/agentevent/101"),
            ("GET", "/onlineagent/101/agentstatus"),
            ("PUT", "/voicecall/101/answer"),
            ("GET", "/calldata/101/allcallid"),
        ]:
            response = await http.request(method, path, headers=headers)
            assert response.status_code == 200
            assert response.json()["retcode"] == "100-006", (method, path)


async def test_the_guid_header_name_is_case_insensitive(simulator_fast: str) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent:
        await agent.signed_in()
        response = await agent.http.get("/onlineagent/101/agentstatus", headers={"guid": agent.guid})
        assert response.json()["retcode"] == "0"


async def test_a_guid_used_for_another_agent_is_refused_with_000_003(simulator_fast: str) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent101, HuaweiAgent(simulator_fast, "102") as agent102:
        await agent101.signed_in()
        await agent102.signed_in()
        await ringing_call(simulator_fast, to="6102")
        assert await agent101.refused("PUT", "/voicecall/102/answer") == "000-003"
        assert await agent101.refused("GET", "/agentevent/102") == "000-003"
        (event,) = await agent102.expect("AgentEvent_Ringing")
        assert event["content"]["called"] == "6102"


# -- the envelope and strict JSON --------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "retcode"),
    [
        ("GET", "/nosuchthing", "000-002"),
        ("POST", "/voicecall/101/teleport", "000-002"),
        ("GET", "/onlineagent/101/logout", "000-002"),
        ("POST", "/agentevent/101", "000-001"),
    ],
)
async def test_unknown_paths_and_wrong_methods_answer_http_200_with_a_retcode(
    simulator_fast: str, method: str, path: str, retcode: str
) -> None:
    async with httpx.AsyncClient(base_url=simulator_fast + RESOURCE) as http:
        response = await http.request(method, path)
    assert response.status_code == 200
    body = response.json()
    assert body["retcode"] == retcode and body["message"]
    assert set(body) == {"message", "retcode", "result"}


@pytest.mark.parametrize(
    "body",
    [
        b'{"password": "agent101", "status": NaN}',
        b'{"password": "agent101", "status": Infinity}',
        b'{"password": "agent101", "status": -Infinity}',
        b'{"password": "agent101", "status": 1e999}',
        b'{"password": "agent101"',
        b'["agent101"]',
        b'{"password": "agent101\\u0000"}',
    ],
    ids=["nan", "infinity", "minus-infinity", "overflow", "truncated", "array", "nul"],
)
async def test_a_body_that_is_not_strict_json_is_refused_with_000_002(
    simulator_fast: str, body: bytes
) -> None:
    async with httpx.AsyncClient(base_url=simulator_fast + RESOURCE) as http:
        response = await http.put(
            "/onlineagent/101", content=body, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 200
    assert response.json()["retcode"] == "000-002"
    assert "Set-GUID" not in response.headers


async def test_a_strict_body_on_a_voice_operation_is_refused_with_000_002_too(simulator_fast: str) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent:
        await agent.signed_in()
        response = await agent.http.put(
            "/voicecall/101/callout",
            content=b'{"called": "5003", "mediaability": NaN}',
            headers={"Guid": agent.guid, "Content-Type": "application/json"},
        )
        assert response.json()["retcode"] == "000-002"
        assert await switch_calls(simulator_fast) == []


# -- polling ---------------------------------------------------------------------------------------


async def test_the_poll_holds_and_answers_event_null_after_poll_wait_ms(simulator: str) -> None:
    await fast(simulator, poll_wait_ms=400)
    async with HuaweiAgent(simulator, "101") as agent:
        await agent.signed_in()
        started = time.monotonic()
        answer = await agent.poll()
        assert time.monotonic() - started >= 0.35
        assert answer == {"message": "", "retcode": "0", "event": None}


async def test_a_held_poll_answers_as_soon_as_an_event_arrives(simulator: str) -> None:
    await fast(simulator, poll_wait_ms=5000)
    async with HuaweiAgent(simulator, "101") as agent:
        await agent.signed_in()
        started = time.monotonic()
        poll = asyncio.create_task(agent.poll())
        await asyncio.sleep(0.2)
        await ringing_call(simulator)
        answer = await poll
        assert answer["event"]["eventType"] == "AgentEvent_Ringing"
        assert time.monotonic() - started < 2


async def test_events_queued_between_polls_are_all_delivered_in_order_one_per_answer(
    simulator_fast: str,
) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent:
        await agent.sign_in()
        await agent.ok("POST", "/onlineagent/{id}/saybusy", params={"reason": "201"})
        await agent.ok("POST", "/onlineagent/{id}/sayfree")
        await agent.ok("POST", "/onlineagent/{id}/rest/600/4")
        call_id = await ringing_call(simulator_fast)
        events = await agent.expect(
            "AgentOther_InService",
            "AgentState_Ready",
            "AgentState_SetNotReady_Success",
            "AgentState_CancelNotReady_Success",
            "AgentState_Ready",
            "AgentState_SetRest_Success",
            "AgentEvent_Ringing",
        )
        assert events[2]["content"] == {"reason": "201"}
        assert events[5]["content"] == {"reason": "4"}
        assert events[6]["content"]["callid"] == call_id
        await agent.no_more()


async def test_the_guid_rotates_on_a_poll_and_the_old_one_works_until_guid_timeout_ms(simulator: str) -> None:
    await fast(simulator, guid_interval_ms=200, guid_timeout_ms=700, poll_wait_ms=50)
    async with HuaweiAgent(simulator, "101") as agent:
        await agent.signed_in()
        old = agent.guid
        await asyncio.sleep(0.25)
        answer = await agent.poll()
        assert answer["retcode"] == "0"
        assert agent.last_poll is not None and agent.last_poll.headers["Set-GUID"].startswith("JSESSIONID=")
        assert agent.guid != old and agent.guid.endswith(".AgentGateway0")
        assert (await agent.ok("GET", "/onlineagent/{id}/agentstatus", guid=old))["agentState"] == 4
        await asyncio.sleep(0.8)
        assert await agent.refused("GET", "/onlineagent/{id}/agentstatus", guid=old) == "100-006"
        assert (await agent.ok("GET", "/onlineagent/{id}/agentstatus"))["agentState"] == 4


async def test_a_poll_answer_carries_no_set_guid_before_the_interval(simulator_fast: str) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent:
        await agent.signed_in()
        await agent.poll()
        assert agent.last_poll is not None and "Set-GUID" not in agent.last_poll.headers


async def test_an_agent_that_does_not_poll_for_signout_after_ms_is_signed_out(simulator: str) -> None:
    await fast(simulator, signout_after_ms=300, poll_wait_ms=100)
    async with HuaweiAgent(simulator, "101") as agent:
        await agent.signed_in()
        for _ in range(4):
            await agent.no_more()
        await asyncio.sleep(0.8)
        assert (await agent.poll())["retcode"] == "100-006"
        state = (await control(simulator, "GET", "/control/state")).json()
        (me,) = [a for a in state["agents"] if a["login"] == "101"]
        assert me["loggedIn"] is False
        assert (await agent.sign_in())["retcode"] == "0", "a new sign-in is not a second one"


async def test_the_timing_settings_are_validated_and_shown_in_the_control_state(simulator: str) -> None:
    async with httpx.AsyncClient(base_url=simulator) as http:
        refused = await http.put("/control/settings", json={"guid_interval_ms": -5, "poll_wait_ms": 100})
        assert refused.status_code == 400
        state = (await http.get("/control/state")).json()
        assert state["settings"]["poll_wait_ms"] == 10000, "nothing applies when one setting is bad"
        changed = await http.put(
            "/control/settings", json={"guid_timeout_ms": 9000, "signout_after_ms": 8000}
        )
        assert changed.json() == {"guid_timeout_ms": 9000, "signout_after_ms": 8000}
        state = (await http.get("/control/state")).json()
        assert state["settings"] == {
            "answer_delay_ms": 0,
            "ringing_timeout_ms": 30000,
            "guid_interval_ms": 60000,
            "guid_timeout_ms": 9000,
            "signout_after_ms": 8000,
            "poll_wait_ms": 10000,
        }
        await http.post("/control/reset")
        assert (await http.get("/control/state")).json()["settings"]["guid_timeout_ms"] == 120000


# -- agent state -----------------------------------------------------------------------------------


async def test_state_operations_emit_their_documented_events_and_agentstatus_follows(
    simulator_fast: str,
) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent:
        await agent.signed_in()

        async def step(path: str, status: int, *events: str, **kwargs: Any) -> list[dict[str, Any]]:
            await agent.ok("POST", "/onlineagent/{id}/" + path, **kwargs)
            received = await agent.expect(*events)
            assert (await agent.ok("GET", "/onlineagent/{id}/agentstatus"))["agentState"] == status
            return received

        (busy,) = await step("saybusy", 3, "AgentState_SetNotReady_Success", params={"reason": "250"})
        assert busy["content"] == {"reason": "250"}
        await step("cancelbusy", 4, "AgentState_CancelNotReady_Success", "AgentState_Ready")
        await step("saybusy", 3, "AgentState_SetNotReady_Success")
        await step("sayfree", 4, "AgentState_CancelNotReady_Success", "AgentState_Ready")
        (rest,) = await step("rest/300/2", 8, "AgentState_SetRest_Success")
        assert rest["content"] == {"reason": "2"}
        await step("cancelrest", 4, "AgentState_CancelRest_Success", "AgentState_Ready")
        (work,) = await step("work", 5, "AgentState_SetWork_Success")
        assert work["content"] is None
        await step("cancelwork", 4, "AgentState_CancelWork_Success", "AgentState_Ready")
        await agent.ok("POST", "/onlineagent/{id}/cancelwork")
        await agent.no_more()


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("saybusy", {"reason": "199"}),
        ("saybusy", {"reason": "251"}),
        ("saybusy", {"reason": "lunch"}),
        ("rest/0/1", None),
        ("rest/86400/1", None),
        ("rest/60/256", None),
    ],
)
async def test_a_state_operation_with_a_bad_parameter_is_refused_with_000_002(
    simulator_fast: str, path: str, params: dict[str, str] | None
) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent:
        await agent.signed_in()
        assert await agent.refused("POST", "/onlineagent/{id}/" + path, params=params) == "000-002"
        assert (await agent.ok("GET", "/onlineagent/{id}/agentstatus"))["agentState"] == 4
        await agent.no_more()


async def test_agentstatus_says_talking_while_the_agent_is_on_a_call(simulator_fast: str) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent:
        await agent.signed_in()
        await ringing_call(simulator_fast)
        await agent.expect("AgentEvent_Ringing")
        assert await agent.ok("GET", "/onlineagent/{id}/agentstatus") == {"agentState": 4, "isWorking": True}
        await agent.ok("PUT", "/voicecall/{id}/answer")
        assert await agent.ok("GET", "/onlineagent/{id}/agentstatus") == {"agentState": 7, "isWorking": True}


async def test_logout_emits_shutdown_service_then_the_guid_stops_working(simulator_fast: str) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent:
        login_time = (await agent.sign_in())["result"]["loginTime"]
        await agent.expect("AgentOther_InService", "AgentState_Ready")
        await agent.ok("DELETE", "/onlineagent/{id}/logout")
        (event,) = await agent.expect("AgentOther_ShutdownService")
        assert event["content"] == {"loginTime": login_time}
        assert (await agent.poll())["retcode"] == "100-006"
        assert await agent.refused("GET", "/onlineagent/{id}/agentstatus") == "100-006"
        state = (await control(simulator_fast, "GET", "/control/state")).json()
        assert [a["loggedIn"] for a in state["agents"] if a["login"] == "101"] == [False]


async def test_logout_is_refused_with_100_010_on_a_call_and_forcelogout_releases_it(
    simulator_fast: str,
) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent:
        await agent.signed_in()
        call_id = await talking_call(simulator_fast, agent)
        assert await agent.refused("DELETE", "/onlineagent/{id}/logout") == "100-010"
        await agent.ok("DELETE", "/onlineagent/{id}/forcelogout")
        events = await agent.expect(
            "AgentEvent_Call_Release", "AgentOther_PhoneRelease", "AgentOther_ShutdownService"
        )
        assert events[0]["content"] == call_id
        assert await switch_calls(simulator_fast) == []


# -- calls -----------------------------------------------------------------------------------------


async def test_a_call_rings_with_the_documented_content_and_answering_gives_talking(
    simulator_fast: str,
) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent:
        await agent.signed_in()
        call_id = await ringing_call(simulator_fast, origin="0201234567")
        (ringing,) = await agent.expect("AgentEvent_Ringing")
        assert ringing["content"] == {
            "caller": "0201234567",
            "transfer": "no",
            "callid": call_id,
            "transfrom": "",
            "called": "6101",
            "type": "main",
            "mediaType": "5",
            "mediaAbility": "1",
            "feature": "0",
        }
        before = await agent.ok("GET", "/calldata/{id}/callinfobeforeanswer")
        assert before["callid"] == call_id and before["caller"] == "0201234567"
        await agent.ok("PUT", "/voicecall/{id}/answer")
        (talking,) = await agent.expect("AgentEvent_Talking")
        assert talking["content"] == {
            "caller": "0201234567",
            "callid": call_id,
            "called": "6101",
            "feature": "0",
            "type": "main",
            "mediaAbility": "1",
        }
        await agent.no_more()


async def test_the_resync_reads_show_the_calls_in_their_documented_shapes(simulator_fast: str) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent:
        await agent.signed_in()
        first = await talking_call(simulator_fast, agent)
        await agent.ok("POST", "/voicecall/{id}/hold")
        second = await agent.ok(
            "PUT", "/voicecall/{id}/callout", json={"called": "5003", "callappdata": "VIP"}
        )
        assert isinstance(second, str)
        assert sorted(await agent.ok("GET", "/calldata/{id}/allcallid")) == sorted([first, second])
        info = await agent.ok("GET", f"/calldata/{{id}}/callinfobycallid/{second}")
        assert info == {
            "called": "5003",
            "caller": "6101",
            "callid": second,
            "calldata": "VIP",
            "orgicallednum": "5003",
            "callfeature": 6,
            "callskill": "",
            "callskillid": 0,
        }
        held = await agent.ok("GET", "/calldata/{id}/holdlist")
        assert held == [
            {"callfeature": 6, "callid": first, "caller": "5000", "called": "6101", "callskill": ""}
        ]
        assert await agent.refused("GET", "/calldata/{id}/callinfobeforeanswer") == "200-002"
        assert await agent.refused("GET", "/calldata/{id}/callinfobycallid/NOSUCHCALL") == "000-002"


async def test_hold_and_gethold_emit_hold_and_talking(simulator_fast: str) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent:
        await agent.signed_in()
        call_id = await talking_call(simulator_fast, agent)
        await agent.ok("POST", "/voicecall/{id}/hold")
        (hold,) = await agent.expect("AgentEvent_Hold")
        assert hold["content"] == call_id
        await agent.ok("POST", "/voicecall/{id}/gethold", params={"callid": call_id})
        (talking,) = await agent.expect("AgentEvent_Talking")
        assert talking["content"]["callid"] == call_id
        await agent.no_more()


@pytest.mark.parametrize(
    ("method", "path", "body", "retcode"),
    [
        ("PUT", "/voicecall/{id}/answer", None, "200-002"),
        ("DELETE", "/voicecall/{id}/release", None, "200-017"),
        ("POST", "/voicecall/{id}/release", None, "200-017"),
        ("DELETE", "/voicecall/{id}", None, "200-017"),
        ("POST", "/voicecall/{id}/dropcall/NOSUCHCALL", None, "200-017"),
        ("POST", "/voicecall/{id}/hold", None, "200-013"),
        ("POST", "/voicecall/{id}/gethold", None, "200-015"),
        ("POST", "/voicecall/{id}/confjoin", {"callid": "NOSUCHCALL"}, "200-010"),
        ("POST", "/voicecall/{id}/confjoin", {}, "000-002"),
        ("POST", "/voicecall/{id}/transfer", {"devicetype": 2, "mode": 0, "address": "102"}, "200-012"),
        ("POST", "/voicecall/{id}/transfer", {"devicetype": 1, "mode": 0, "address": "3"}, "000-002"),
        ("POST", "/voicecall/{id}/innerhelp", {"dstaddress": "102", "devicetype": 2, "mode": 1}, "200-018"),
        ("POST", "/voicecall/{id}/innerhelp", {"dstaddress": "102", "mode": 3}, "000-002"),
        ("POST", "/voicecall/{id}/beginmute", None, "200-003"),
        ("POST", "/voicecall/{id}/endmute", None, "200-007"),
        ("POST", "/voicecall/{id}/connecthold/NOSUCHCALL", None, "200-013"),
        ("PUT", "/voicecall/{id}/callout", {"called": "not a number"}, "200-001"),
        ("PUT", "/voicecall/{id}/callout", {}, "200-001"),
        ("PUT", "/voicecall/{id}/callout", {"called": "6101"}, "200-001"),
        ("PUT", "/voicecall/{id}/callinner", {"called": "101"}, "200-001"),
        ("POST", "/voicecall/{id}/seconddialex?number=12", None, "100-007"),
        ("POST", "/voicecall/{id}/seconddialex?number=1%252", None, "000-002"),
        ("GET", "/calldata/{id}/holdlist", None, "400-003"),
        ("GET", "/calldata/{id}/callinfobeforeanswer", None, "200-002"),
    ],
)
async def test_an_operation_without_a_call_is_refused_with_its_documented_retcode(
    simulator_fast: str, method: str, path: str, body: dict[str, Any] | None, retcode: str
) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent:
        await agent.signed_in()
        assert await agent.refused(method, path, json=body) == retcode
        assert await switch_calls(simulator_fast) == []
        await agent.no_more()


async def test_operations_on_a_ringing_call_are_refused_as_the_wrong_state(simulator_fast: str) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent:
        await agent.signed_in()
        call_id = await ringing_call(simulator_fast)
        await agent.expect("AgentEvent_Ringing")
        assert await agent.refused("POST", "/voicecall/{id}/hold") == "200-014"
        assert await agent.refused("POST", "/voicecall/{id}/beginmute") == "200-004"
        assert await agent.refused("POST", "/voicecall/{id}/endmute") == "200-008"
        assert await agent.refused("POST", "/voicecall/{id}/gethold", params={"callid": call_id}) == "200-016"
        assert await agent.refused("POST", "/voicecall/{id}/gethold") == "200-015"
        assert await agent.refused("POST", "/voicecall/{id}/confjoin", json={"callid": call_id}) == "200-010"
        await agent.no_more()
        assert (await agent.ok("GET", "/calldata/{id}/callinfobeforeanswer"))["callid"] == call_id


async def test_confjoin_with_a_call_that_is_not_held_is_refused_with_200_011(simulator_fast: str) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent:
        await agent.signed_in()
        call_id = await talking_call(simulator_fast, agent)
        assert await agent.refused("POST", "/voicecall/{id}/confjoin", json={"callid": call_id}) == "200-011"
        assert await agent.refused("POST", "/voicecall/{id}/confjoin", json={"callid": "NOSUCH"}) == "200-011"
        assert await agent.refused("POST", "/voicecall/{id}/connecthold/" + call_id) == "200-013"
        await agent.no_more()


async def test_a_call_ringing_out_at_the_agent_gives_no_answer(simulator: str) -> None:
    await fast(simulator, ringing_timeout_ms=300)
    async with HuaweiAgent(simulator, "101") as agent:
        await agent.signed_in()
        call_id = await ringing_call(simulator)
        ringing, no_answer = await agent.expect("AgentEvent_Ringing", "AgentEvent_No_Answer")
        assert no_answer["content"] == call_id
        await agent.no_more()
        assert await switch_calls(simulator) == []


async def test_the_caller_hanging_up_gives_customer_release_call_release_and_phone_release(
    simulator_fast: str,
) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent:
        await agent.signed_in()
        call_id = await talking_call(simulator_fast, agent)
        await control(simulator_fast, "POST", "/control/parties/5000/hangup")
        events = await agent.expect(
            "AgentEvent_Customer_Release", "AgentEvent_Call_Release", "AgentOther_PhoneRelease"
        )
        assert events[0]["content"] == {"callid": call_id, "number": "5000"}
        assert events[1]["content"] == call_id
        assert events[2]["content"] == {"phoneState": 3}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/voicecall/{id}/release"),
        ("POST", "/voicecall/{id}/release"),
        ("DELETE", "/voicecall/{id}"),
    ],
)
async def test_releasing_gives_call_release_and_phone_release(
    simulator_fast: str, method: str, path: str
) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent:
        await agent.signed_in()
        call_id = await talking_call(simulator_fast, agent)
        await agent.ok(method, path)
        release, _ = await agent.expect("AgentEvent_Call_Release", "AgentOther_PhoneRelease")
        assert release["content"] == call_id
        assert await switch_calls(simulator_fast) == []
        await agent.no_more()


async def test_answering_a_second_call_holds_the_first(simulator_fast: str) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent:
        await agent.signed_in()
        first = await talking_call(simulator_fast, agent)
        second = await ringing_call(simulator_fast, origin="5002")
        await agent.expect("AgentEvent_Ringing")
        await agent.ok("PUT", "/voicecall/{id}/answer")
        hold, talking = await agent.expect("AgentEvent_Hold", "AgentEvent_Talking")
        assert hold["content"] == first and talking["content"]["callid"] == second
        await agent.ok("POST", f"/voicecall/{{id}}/dropcall/{first}")
        (release,) = await agent.expect("AgentEvent_Call_Release")
        assert release["content"] == first
        await agent.no_more()


async def test_mute_and_unmute_answer_but_send_no_event(simulator_fast: str) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent:
        await agent.signed_in()
        call_id = await talking_call(simulator_fast, agent)
        await agent.ok("POST", "/voicecall/{id}/beginmute")
        state = (await control(simulator_fast, "GET", "/control/state")).json()
        (call,) = [c for c in state["calls"] if c["id"] == call_id]
        assert [p["muted"] for p in call["parties"] if p["number"] == "6101"] == [True]
        await agent.ok("POST", "/voicecall/{id}/endmute")
        await agent.no_more()


async def test_second_dial_sends_digits_on_the_call_in_both_spellings(simulator_fast: str) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent:
        await agent.signed_in()
        await talking_call(simulator_fast, agent)
        await agent.ok("POST", "/voicecall/{id}/seconddialex", params={"number": "12#"})
        await agent.ok("POST", "/voicecall/{id}/seconddial/34*")
        await agent.no_more()


async def test_an_internal_call_to_a_workno_rings_that_huawei_agent(simulator_fast: str) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent101, HuaweiAgent(simulator_fast, "102") as agent102:
        await agent101.signed_in()
        await agent102.signed_in()
        call_id = await agent101.ok("PUT", "/voicecall/{id}/callinner", json={"called": "102"})
        (alerting,) = await agent101.expect("AgentEvent_Customer_Alerting")
        assert alerting["content"] == {
            "callid": call_id,
            "otherPhoneWorkno": "102",
            "otherPhone": "6102",
            "type": "main",
        }
        (ringing,) = await agent102.expect("AgentEvent_Ringing")
        assert ringing["content"]["caller"] == "6101" and ringing["content"]["feature"] == "6"
        await agent102.ok("PUT", "/voicecall/{id}/answer")
        (talking,) = await agent101.expect("AgentEvent_Talking")
        assert talking["content"] == {
            "caller": "6101",
            "callid": call_id,
            "called": "6102",
            "feature": "6",
            "type": "main",
            "mediaAbility": "1",
        }
        (other_side,) = await agent102.expect("AgentEvent_Talking")
        assert other_side["content"]["caller"] == "6101"
        await agent102.ok("DELETE", "/voicecall/{id}/release")
        await agent101.expect(
            "AgentEvent_Customer_Release", "AgentEvent_Call_Release", "AgentOther_PhoneRelease"
        )
        await agent102.expect("AgentEvent_Call_Release", "AgentOther_PhoneRelease")


async def test_a_callout_to_an_outside_number_talks_with_feature_7(simulator_fast: str) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent:
        await agent.signed_in()
        call_id = await agent.ok(
            "PUT", "/voicecall/{id}/callout", json={"called": "0201234567", "caller": ""}
        )
        alerting, talking = await agent.expect("AgentEvent_Customer_Alerting", "AgentEvent_Talking")
        assert alerting["content"]["otherPhoneWorkno"] == ""
        assert talking["content"]["feature"] == "7"
        assert talking["content"]["callid"] == call_id


async def test_innerhelp_consults_with_feature_51_and_release_hands_the_customer_over(
    simulator_fast: str,
) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent101, HuaweiAgent(simulator_fast, "102") as agent102:
        await agent101.signed_in()
        await agent102.signed_in()
        original = await talking_call(simulator_fast, agent101)
        help_call = await agent101.ok(
            "POST",
            "/voicecall/{id}/innerhelp",
            json={"dstaddress": "102", "devicetype": "2", "mode": "1", "holdflag": "true"},
        )
        assert isinstance(help_call, str) and help_call != original
        hold, alerting = await agent101.expect("AgentEvent_Hold", "AgentEvent_Customer_Alerting")
        assert hold["content"] == original and alerting["content"]["callid"] == help_call
        await agent102.expect("AgentEvent_Ringing")
        await agent102.ok("PUT", "/voicecall/{id}/answer")
        (talking,) = await agent101.expect("AgentEvent_Talking")
        assert talking["content"]["feature"] == "51" and talking["content"]["callid"] == help_call
        await agent102.expect("AgentEvent_Talking")

        await agent101.ok("DELETE", "/voicecall/{id}/release")
        events = await agent101.expect(
            "AgentEvent_Customer_Release", "AgentEvent_Call_Release", "AgentOther_PhoneRelease"
        )
        assert events[0]["content"] == {"callid": original, "number": "5000"}
        assert events[1]["content"] == help_call
        released, talking = await agent102.expect("AgentEvent_Customer_Release", "AgentEvent_Talking")
        assert released["content"] == {"callid": help_call, "number": "6101"}
        assert talking["content"]["caller"] == "5000" and talking["content"]["callid"] == help_call
        assert await switch_calls(simulator_fast) == [["5000", "6102"]]
        assert await agent102.ok("GET", "/calldata/{id}/allcallid") == [help_call]


async def test_dropcall_on_the_help_call_takes_the_customer_back(simulator_fast: str) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent:
        await agent.signed_in()
        original = await talking_call(simulator_fast, agent)
        help_call = await agent.ok(
            "POST", "/voicecall/{id}/innerhelp", json={"dstaddress": "5003", "mode": 1}
        )
        await agent.expect("AgentEvent_Hold", "AgentEvent_Customer_Alerting", "AgentEvent_Talking")
        await agent.ok("POST", f"/voicecall/{{id}}/dropcall/{help_call}")
        (release,) = await agent.expect("AgentEvent_Call_Release")
        assert release["content"] == help_call
        await agent.ok("POST", "/voicecall/{id}/gethold", params={"callid": original})
        await agent.expect("AgentEvent_Talking")
        assert await switch_calls(simulator_fast) == [["5000", "6101"]]


async def test_innerhelp_mode_2_brings_the_helper_into_a_three_party_call(simulator_fast: str) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent101, HuaweiAgent(simulator_fast, "102") as agent102:
        await agent101.signed_in()
        await agent102.signed_in()
        call_id = await talking_call(simulator_fast, agent101)
        result = await agent101.ok("POST", "/voicecall/{id}/innerhelp", json={"dstaddress": "102", "mode": 2})
        assert result == call_id
        await agent102.expect("AgentEvent_Ringing")
        await agent102.ok("PUT", "/voicecall/{id}/answer")
        (conference,) = await agent101.expect("AgentEvent_Conference")
        assert conference["content"] == {"callid": call_id, "partner": "6102,5000"}
        talking, conference102 = await agent102.expect("AgentEvent_Talking", "AgentEvent_Conference")
        assert conference102["content"]["callid"] == call_id
        assert sorted(conference102["content"]["partner"].split(",")) == ["5000", "6101"]

        await agent101.ok("POST", "/voicecall/{id}/disconnect/102")
        (released,) = await agent101.expect("AgentEvent_Customer_Release")
        assert released["content"] == {"callid": call_id, "number": "6102"}
        await agent102.expect("AgentEvent_Call_Release", "AgentOther_PhoneRelease")
        assert await switch_calls(simulator_fast) == [["5000", "6101"]]


async def test_connecthold_joins_the_talking_and_held_calls_and_the_agent_drops_out(
    simulator_fast: str,
) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent:
        await agent.signed_in()
        held = await talking_call(simulator_fast, agent)
        await agent.ok("POST", "/voicecall/{id}/hold")
        await agent.expect("AgentEvent_Hold")
        second = await agent.ok("PUT", "/voicecall/{id}/callout", json={"called": "5003"})
        await agent.expect("AgentEvent_Customer_Alerting", "AgentEvent_Talking")
        await agent.ok("POST", f"/voicecall/{{id}}/connecthold/{held}")
        events = await agent.expect(
            "AgentEvent_Customer_Release", "AgentEvent_Call_Release", "AgentOther_PhoneRelease"
        )
        assert events[0]["content"] == {"callid": held, "number": "5000"}
        assert events[1]["content"] == second
        assert await switch_calls(simulator_fast) == [["5000", "5003"]]


async def test_a_release_transfer_hands_the_call_over_at_once(simulator_fast: str) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent101, HuaweiAgent(simulator_fast, "102") as agent102:
        await agent101.signed_in()
        await agent102.signed_in()
        call_id = await talking_call(simulator_fast, agent101)
        await agent101.ok(
            "POST", "/voicecall/{id}/transfer", json={"devicetype": 2, "mode": 0, "address": "102"}
        )
        release, _ = await agent101.expect("AgentEvent_Call_Release", "AgentOther_PhoneRelease")
        assert release["content"] == call_id
        (ringing,) = await agent102.expect("AgentEvent_Ringing")
        assert ringing["content"]["callid"] == call_id and ringing["content"]["caller"] == "5000"
        await agent102.ok("PUT", "/voicecall/{id}/answer")
        await agent102.expect("AgentEvent_Talking")
        assert await switch_calls(simulator_fast) == [["5000", "6102"]]


async def test_a_success_transfer_hands_over_when_the_target_answers(simulator_fast: str) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent101, HuaweiAgent(simulator_fast, "102") as agent102:
        await agent101.signed_in()
        await agent102.signed_in()
        call_id = await talking_call(simulator_fast, agent101)
        await agent101.ok(
            "POST", "/voicecall/{id}/transfer", json={"devicetype": "2", "mode": "2", "address": "102"}
        )
        (alerting,) = await agent101.expect("AgentEvent_Customer_Alerting")
        assert alerting["content"]["callid"] == call_id and alerting["content"]["otherPhoneWorkno"] == "102"
        assert await agent101.ok("GET", "/calldata/{id}/allcallid") == [call_id]
        await agent102.expect("AgentEvent_Ringing")
        await agent102.ok("PUT", "/voicecall/{id}/answer")
        result, release, _ = await agent101.expect(
            "AgentEvent_SuccTransResult", "AgentEvent_Call_Release", "AgentOther_PhoneRelease"
        )
        assert result["content"] == {"result": 0, "callId": call_id}
        assert release["content"] == call_id
        await agent101.no_more()
        assert await switch_calls(simulator_fast) == [["5000", "6102"]]


async def test_a_success_transfer_that_is_not_answered_leaves_the_customer_with_the_agent(
    simulator: str,
) -> None:
    await fast(simulator, ringing_timeout_ms=300)
    async with HuaweiAgent(simulator, "101") as agent101, HuaweiAgent(simulator, "102") as agent102:
        await agent101.signed_in()
        await agent102.signed_in()
        call_id = await talking_call(simulator, agent101)
        await agent101.ok(
            "POST", "/voicecall/{id}/transfer", json={"devicetype": 2, "mode": 2, "address": "102"}
        )
        _, result, talking = await agent101.expect(
            "AgentEvent_Customer_Alerting", "AgentEvent_SuccTransResult", "AgentEvent_Talking"
        )
        assert result["content"] == {"result": 1, "callId": call_id}
        assert talking["content"]["callid"] == call_id
        await agent102.expect("AgentEvent_Ringing", "AgentEvent_No_Answer")
        assert await switch_calls(simulator) == [["5000", "6101"]]


async def test_a_transfer_to_an_outside_number_uses_devicetype_5(simulator_fast: str) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent:
        await agent.signed_in()
        await talking_call(simulator_fast, agent)
        body = {"devicetype": 5, "mode": 1, "address": "0201234567"}
        await agent.ok("POST", "/voicecall/{id}/transfer", json=body)
        await agent.expect("AgentEvent_Call_Release", "AgentOther_PhoneRelease")
        assert await switch_calls(simulator_fast) == [["0201234567", "5000"]]


# -- faults and resets -----------------------------------------------------------------------------


async def test_an_http_status_fault_answers_huawei_paths_with_that_status_for_its_duration(
    simulator_fast: str,
) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent:
        await agent.signed_in()
        await control(simulator_fast, "POST", "/control/faults", {"http_status": 503, "for_ms": 300})
        response = await agent.http.get("/onlineagent/101/agentstatus", headers={"Guid": agent.guid})
        assert response.status_code == 503
        unknown = await agent.http.get("/nosuchthing")
        assert unknown.status_code == 503
        await asyncio.sleep(0.4)
        assert (await agent.ok("GET", "/onlineagent/{id}/agentstatus"))["agentState"] == 4


async def test_a_delay_fault_slows_huawei_paths(simulator_fast: str) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent:
        await agent.signed_in()
        await control(simulator_fast, "POST", "/control/faults", {"delay_ms": 300, "for_ms": 1000})
        started = time.monotonic()
        await agent.ok("GET", "/onlineagent/{id}/agentstatus")
        assert time.monotonic() - started >= 0.25
        await control(simulator_fast, "POST", "/control/faults", {"clear": True})


async def test_dropping_sessions_expires_every_guid_and_the_agent_can_sign_in_again(
    simulator_fast: str,
) -> None:
    await fast(simulator_fast, poll_wait_ms=3000)
    async with HuaweiAgent(simulator_fast, "101") as agent:
        await agent.signed_in()
        call_id = await talking_call(simulator_fast, agent)
        held_poll = asyncio.create_task(agent.poll())
        await asyncio.sleep(0.2)
        dropped = await control(simulator_fast, "POST", "/control/faults", {"drop_cometd_sessions": True})
        assert dropped.json()["faults"]["droppedGuids"] == 1
        assert (await held_poll)["retcode"] == "100-006"
        assert await agent.refused("GET", "/onlineagent/{id}/agentstatus") == "100-006"
        assert (await agent.sign_in())["retcode"] == "0"
        await agent.expect("AgentOther_InService", "AgentState_Ready")
        assert await agent.ok("GET", "/calldata/{id}/allcallid") == [call_id], "the call went on"


async def test_a_reset_drops_every_guid_and_its_queue(simulator_fast: str) -> None:
    async with HuaweiAgent(simulator_fast, "101") as agent:
        await agent.sign_in()
        await control(simulator_fast, "POST", "/control/reset")
        assert (await agent.poll())["retcode"] == "100-006"
        await fast(simulator_fast)
        await agent.sign_in()
        events = await agent.expect("AgentOther_InService", "AgentState_Ready")
        assert events[0]["content"] is None
        await agent.no_more()


async def test_an_event_is_not_handed_to_a_poll_whose_client_went_away(simulator: str) -> None:
    """A desk process killed while its poll was held: the next event waits for the next poll (the
    one its successor sends with the same Guid) instead of going down a dead connection."""
    await fast(simulator, poll_wait_ms=5000)
    async with HuaweiAgent(simulator, "101") as agent:
        await agent.signed_in()
        dying = HuaweiAgent(simulator, "101")
        dying.guid = agent.guid
        held = asyncio.ensure_future(dying.poll())
        await asyncio.sleep(0.3)
        held.cancel()
        await dying.http.aclose()  # the connection is gone, as with a killed process
        await asyncio.sleep(0.3)

        await control(simulator, "POST", "/control/calls", {"from": "5000", "to": "6101"})

        (ringing,) = await agent.expect("AgentEvent_Ringing")
        assert ringing["content"]["caller"] == "5000"
