"""The control API: the outside world for tests, demos and training, and fault injection."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from .genesys_client import GenesysAgent

pytestmark = pytest.mark.asyncio


async def test_a_placed_call_answers_201_with_the_id_the_agent_sees(simulator: str) -> None:
    async with GenesysAgent(simulator, "agent1") as agent:
        await agent.start_session()
        async with httpx.AsyncClient(base_url=simulator) as http:
            response = await http.post(
                "/control/calls", json={"from": "5000", "to": "5005", "userData": {"Account": "7"}}
            )
        assert response.status_code == 201
        (call,) = await agent.calls()
        assert call["id"] == response.json()["id"]
        assert call["userData"] == {"Account": "7"}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/control/calls", {"from": "5000"}),
        ("/control/calls", {"from": "5000", "to": "5000"}),
        ("/control/calls", {"from": "abc", "to": "5005"}),
        ("/control/calls", {"from": "5000", "to": "5005", "userData": ["x"]}),
        ("/control/directory", {"login": "agent9", "password": "x", "dn": "123"}),
        ("/control/directory", {"login": "agent9", "password": "x", "dn": "5005"}),
        ("/control/faults", {"http_status": 200, "for_ms": 10}),
        ("/control/faults", {"http_status": 503}),
        ("/control/faults", {"explode": True}),
    ],
)
async def test_bad_control_requests_get_a_clear_400(
    simulator: str, path: str, body: dict[str, object]
) -> None:
    async with httpx.AsyncClient(base_url=simulator) as http:
        response = await http.post(path, json=body)
    assert response.status_code == 400
    assert response.json()["error"]


async def test_bad_settings_are_refused_and_good_ones_apply(simulator: str) -> None:
    async with httpx.AsyncClient(base_url=simulator) as http:
        assert (await http.put("/control/settings", json={"answer_delay_ms": -1})).status_code == 400
        assert (await http.put("/control/settings", json={"colour": "red"})).status_code == 400
        response = await http.put(
            "/control/settings", json={"answer_delay_ms": 250, "ringing_timeout_ms": 9000}
        )
        assert response.json() == {"answer_delay_ms": 250, "ringing_timeout_ms": 9000}


async def test_an_added_agent_can_log_in_and_reset_removes_it(simulator: str) -> None:
    async with httpx.AsyncClient(base_url=simulator) as http:
        created = await http.post(
            "/control/directory", json={"login": "agent9", "password": "pw9", "dn": "5009"}
        )
        assert created.status_code == 201
        async with GenesysAgent(simulator, "agent9", "pw9") as agent:
            assert agent.me["devices"][0]["phoneNumber"] == "5009"
        await http.post("/control/reset")
        state = (await http.get("/control/state")).json()
        assert "agent9" not in [a["login"] for a in state["agents"]]
        assert state["calls"] == []


async def test_an_http_status_fault_answers_every_voice_api_request_for_its_duration(simulator: str) -> None:
    async with GenesysAgent(simulator, "agent1") as agent, httpx.AsyncClient(base_url=simulator) as http:
        await http.post("/control/faults", json={"http_status": 503, "for_ms": 300})
        assert (await agent.http.get("/me")).status_code == 503
        assert (await http.get("/control/state")).status_code == 200, "the control API is never faulted"
        await asyncio.sleep(0.4)
        assert (await agent.http.get("/me")).status_code == 200


async def test_dropping_cometd_sessions_makes_the_next_connect_answer_402(simulator: str) -> None:
    async with GenesysAgent(simulator, "agent1") as agent, httpx.AsyncClient(base_url=simulator) as http:
        url = "/notifications"
        handshake = await agent.http.post(
            url,
            json=[
                {"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": ["long-polling"]}
            ],
        )
        client_id = handshake.json()[0]["clientId"]
        dropped = await http.post("/control/faults", json={"drop_cometd_sessions": True})
        assert dropped.json()["faults"]["dropped"] >= 1
        connect = await agent.http.post(
            url, json=[{"channel": "/meta/connect", "clientId": client_id, "connectionType": "long-polling"}]
        )
        reply = connect.json()[0]
        assert reply["successful"] is False
        assert reply["error"].startswith("402")
        assert reply["advice"]["reconnect"] == "handshake"


async def test_a_plain_bayeux_client_receives_call_notifications(simulator: str) -> None:
    """Any Bayeux 1.0 client works, not only aiocometd: here the protocol is spoken by hand."""
    async with GenesysAgent(simulator, "agent1") as agent, httpx.AsyncClient(base_url=simulator) as http:
        await agent.start_session()
        url = "/notifications"
        (handshake,) = (
            await agent.http.post(
                url,
                json=[
                    {
                        "channel": "/meta/handshake",
                        "version": "1.0",
                        "supportedConnectionTypes": ["long-polling"],
                    }
                ],
            )
        ).json()
        client_id = handshake["clientId"]
        first = await agent.http.post(
            url,
            json=[
                {"channel": "/meta/subscribe", "clientId": client_id, "subscription": "/v2/me/calls"},
                {"channel": "/meta/connect", "clientId": client_id, "connectionType": "long-polling"},
            ],
        )
        assert all(reply["successful"] for reply in first.json())
        await http.post("/control/calls", json={"from": "5000", "to": "5005"})
        polled = await agent.http.post(
            url, json=[{"channel": "/meta/connect", "clientId": client_id, "connectionType": "long-polling"}]
        )
        notes = [m for m in polled.json() if m["channel"] == "/v2/me/calls"]
        assert notes[0]["data"]["call"]["state"] == "Ringing"


async def test_a_reset_drops_every_cometd_client_as_a_switch_restart_would(simulator: str) -> None:
    async with GenesysAgent(simulator, "agent1") as agent, httpx.AsyncClient(base_url=simulator) as http:
        url = "/notifications"
        handshake = await agent.http.post(
            url,
            json=[
                {"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": ["long-polling"]}
            ],
        )
        client_id = handshake.json()[0]["clientId"]
        await http.post("/control/reset")
        connect = await agent.http.post(
            url, json=[{"channel": "/meta/connect", "clientId": client_id, "connectionType": "long-polling"}]
        )
        assert connect.json()[0]["error"].startswith("402")
