"""The control API: the outside world for tests, demos and training, and fault injection."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import httpx
import pytest

from simulator.asgi import build_app
from simulator.web import HttpError, Request, Response

from .genesys_client import GenesysAgent

ROOT = Path(__file__).resolve().parents[2]

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


# --- Strict JSON, and who may use the control API ---

NESTED = b"[" * 50_000 + b"]" * 50_000


def in_process(**options: object) -> httpx.AsyncClient:
    """The simulator app itself, without a server: for settings the session's voicesim does not have."""
    app = build_app(control_enabled=True, answer_delay_ms=0, **options)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim.test")


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
async def test_the_control_api_refuses_numbers_json_does_not_have(simulator: str, number: bytes) -> None:
    body = b'{"from": "5000", "to": "5005", "userData": {"score": ' + number + b"}}"
    async with httpx.AsyncClient(base_url=simulator) as http:
        response = await http.post(
            "/control/calls", content=body, headers={"Content-Type": "application/json"}
        )
        state = (await http.get("/control/state")).json()

    assert response.status_code == 400
    assert "not JSON" in response.json()["error"] or "out of range" in response.json()["error"]
    assert state["calls"] == []


async def test_deeply_nested_json_answers_400_not_500() -> None:
    headers = {"Content-Type": "application/json"}
    async with in_process() as http:
        control = await http.post("/control/calls", content=NESTED, headers=headers)
        huawei = await http.put(
            "/huawei/agentgateway/resource/onlineagent/101", content=NESTED, headers=headers
        )

    assert control.status_code == 400 and "nested too deeply" in control.json()["error"]
    assert huawei.status_code == 200 and huawei.json()["retcode"] == "000-002"  # Huawei's way of saying 400


@pytest.mark.parametrize("body", [NESTED, b'{"userData": {"x": NaN}}', b'{"n": Infinity}', b"[1e999]"])
async def test_the_genesys_and_bayeux_bodies_are_strict_json(body: bytes) -> None:
    request = Request("POST", "/", {}, {}, body, "", "http", "sim.test")

    with pytest.raises(HttpError) as refused:
        request.json()

    assert refused.value.status == 400


async def test_a_response_never_carries_nan() -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        Response(body={"score": float("nan")}).encode()


async def test_a_control_body_must_be_sent_as_json() -> None:
    body = b'{"from": "5000", "to": "5005"}'
    async with in_process() as http:
        as_text = await http.post("/control/calls", content=body, headers={"Content-Type": "text/plain"})
        as_form = await http.post(
            "/control/reset", content=b"x=1", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        as_json = await http.post(
            "/control/calls", content=body, headers={"Content-Type": "application/json; charset=utf-8"}
        )

    assert (as_text.status_code, as_form.status_code, as_json.status_code) == (415, 415, 201)


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "http://sim.test", "Sec-Fetch-Site": "cross-site"},
    ],
)
async def test_a_request_from_another_site_is_refused(headers: dict[str, str]) -> None:
    async with in_process() as http:
        reset = await http.post("/control/reset", headers=headers)
        call = await http.post("/control/calls", json={"from": "5000", "to": "5005"}, headers=headers)
        state = (await http.get("/control/state")).json()

    assert (reset.status_code, call.status_code) == (403, 403)
    assert state["calls"] == []


async def test_the_same_origin_and_scripts_are_served() -> None:
    async with in_process() as http:
        same_origin = await http.post(
            "/control/reset", headers={"Origin": "http://sim.test", "Sec-Fetch-Site": "same-origin"}
        )
        script = await http.post("/control/reset")

    assert (same_origin.status_code, script.status_code) == (200, 200)


async def test_with_a_token_the_control_api_requires_it() -> None:
    async with in_process(control_token="s3cret-token") as http:
        without = await http.get("/control/state")
        wrong = await http.post("/control/reset", headers={"Authorization": "Bearer nope"})
        right = await http.post("/control/reset", headers={"Authorization": "Bearer s3cret-token"})
        genesys = await http.get("/genesys/api/v2/me")  # the vendor surfaces have their own credentials

    assert (without.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
    assert without.headers["WWW-Authenticate"] == "Bearer"
    assert genesys.status_code == 401


async def test_voicesim_will_not_serve_the_control_api_beyond_loopback_without_a_token() -> None:
    env = {k: v for k, v in os.environ.items() if k != "SIMULATOR_CONTROL_TOKEN"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "manage.py",
        "voicesim",
        "--host",
        "0.0.0.0",
        "--port",
        "0",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)

    assert process.returncode != 0
    assert "--control-token" in stderr.decode()
