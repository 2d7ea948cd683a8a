"""Tests of simulator.bayeux, the Bayeux 1.0 long-polling server.

Protocol behaviour is exercised over real HTTP: daphne serves the small ASGI app below in a subprocess
on loopback, and the tests drive it with raw httpx POSTs and with the aiocometd client. The app also
exposes control routes so a test can publish, drop clients and reconfigure the server in that process.
A few tests that are about the server object itself (shutdown, memory) run it in-process.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiocometd_noloop import Client, ConnectionType

from simulator.bayeux import BayeuxServer
from simulator.web import HttpError, Request, Response, read_request, send_response

pytestmark = pytest.mark.asyncio

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = {"timeout_ms": 1000, "interval_ms": 0, "max_interval_ms": 2000}


# The ASGI app daphne serves. It authenticates nothing: the principal is whatever X-Principal says.

_served: dict[str, BayeuxServer] = {}


def _server() -> BayeuxServer:
    if "server" not in _served:
        _served["server"] = BayeuxServer(**DEFAULTS)
    return _served["server"]


async def _route(request: Request) -> Response:
    server = _server()
    if request.path == "/cometd" and request.method == "POST":
        return await server.handle(request, request.headers.get("x-principal", "agent1"))
    if request.path == "/control/reset":
        await server.close()
        _served["server"] = BayeuxServer(**{**DEFAULTS, **request.json()})
        return Response(body={})
    if request.path == "/control/publish":
        body = request.json()
        try:
            count = server.publish(body["principal"], body["channel"], body["data"])
        except ValueError as exc:
            raise HttpError(400, {"statusCode": 1, "statusMessage": str(exc)}) from exc
        return Response(body={"count": count})
    if request.path == "/control/drop_all":
        return Response(body={"count": server.drop_all()})
    if request.path == "/control/drop_principal":
        return Response(body={"count": server.drop_principal(request.json()["principal"])})
    if request.path == "/control/clients":
        return Response(body={"count": server.client_count()})
    raise HttpError(404, {"statusCode": 6, "statusMessage": "Not found"})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    try:
        response = await _route(await read_request(scope, receive, scope["path"]))
    except HttpError as exc:
        response = Response(exc.status, exc.body, exc.headers)
    await send_response(send, response)


# Fixtures and helpers.


@pytest.fixture(scope="module")
def bayeux_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Daphne serving ``app`` on a free loopback port, for the whole module."""
    log_path = tmp_path_factory.mktemp("daphne") / "daphne.log"
    here = Path(__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here), str(ROOT)])}
    command = [sys.executable, "-m", "daphne", "-e", "tcp:port=0:interface=127.0.0.1"]
    command += ["--application-close-timeout", "2", f"{Path(__file__).stem}:app"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            found = re.search(r"Listening on TCP address ([\d.]+):(\d+)", log_path.read_text())
            if found:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"daphne did not start:\n{log_path.read_text()}")
            time.sleep(0.05)
        yield f"http://{found[1]}:{found[2]}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Sim:
    """The served Bayeux server, seen from a test."""

    def __init__(self, base_url: str, http: httpx.AsyncClient) -> None:
        self.base_url = base_url
        self.url = f"{base_url}/cometd"
        self.http = http

    async def reset(self, **settings: int) -> None:
        (await self.http.post("/control/reset", json=settings)).raise_for_status()

    async def post(self, payload: Any, principal: str = "agent1") -> httpx.Response:
        content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return await self.http.post("/cometd", content=content, headers={"X-Principal": principal})

    async def bayeux(self, payload: Any, principal: str = "agent1") -> list[dict[str, Any]]:
        response = await self.post(payload, principal)
        assert response.status_code == 200, response.text
        return response.json()

    async def handshake(self, principal: str = "agent1") -> str:
        message = {
            "channel": "/meta/handshake",
            "version": "1.0",
            "supportedConnectionTypes": ["long-polling"],
        }
        [reply] = await self.bayeux(message, principal)
        assert reply["successful"], reply
        return reply["clientId"]

    async def connect(self, client_id: str, principal: str = "agent1", **extra: Any) -> list[dict[str, Any]]:
        message = {"channel": "/meta/connect", "clientId": client_id, "connectionType": "long-polling"}
        return await self.bayeux({**message, **extra}, principal)

    async def subscribe(self, client_id: str, subscription: Any, principal: str = "agent1") -> dict[str, Any]:
        message = {"channel": "/meta/subscribe", "clientId": client_id, "subscription": subscription}
        [reply] = await self.bayeux(message, principal)
        return reply

    async def polling_client(self, *subscriptions: str, principal: str = "agent1") -> str:
        """A client that has handshaken, subscribed and had its first (immediate) connect answered."""
        client_id = await self.handshake(principal)
        for subscription in subscriptions:
            assert (await self.subscribe(client_id, subscription, principal))["successful"]
        [reply] = await self.connect(client_id, principal)
        assert reply["successful"], reply
        return client_id

    async def publish(self, principal: str, channel: str, data: dict[str, Any]) -> int:
        response = await self.http.post(
            "/control/publish", json={"principal": principal, "channel": channel, "data": data}
        )
        response.raise_for_status()
        return response.json()["count"]

    async def drop_all(self) -> int:
        return (await self.http.post("/control/drop_all")).json()["count"]

    async def drop_principal(self, principal: str) -> int:
        return (await self.http.post("/control/drop_principal", json={"principal": principal})).json()[
            "count"
        ]

    async def client_count(self) -> int:
        return (await self.http.get("/control/clients")).json()["count"]


@pytest_asyncio.fixture
async def sim(bayeux_url: str) -> AsyncIterator[Sim]:
    async with httpx.AsyncClient(base_url=bayeux_url, timeout=10) as http:
        served = Sim(bayeux_url, http)
        await served.reset()
        yield served


def split(replies: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The delivered messages and the connect reply of a connect response."""
    connect = [r for r in replies if r["channel"] == "/meta/connect"]
    assert len(connect) == 1 and replies[-1] is connect[0], replies
    return replies[:-1], connect[0]


async def eventually(condition: Callable[[], Awaitable[bool]], within: float = 5) -> None:
    """Poll ``condition`` until it holds; fail the test if it does not within ``within`` seconds."""
    async with asyncio.timeout(within):
        while True:
            if await condition():
                return
            await asyncio.sleep(0.01)


async def settled() -> None:
    """Give the server a moment to receive a request sent concurrently."""
    await asyncio.sleep(0.3)


# Handshake.


async def test_handshake_answers_version_connection_type_a_client_id_and_advice(sim: Sim) -> None:
    [reply] = await sim.bayeux(
        [
            {
                "channel": "/meta/handshake",
                "version": "1.0",
                "supportedConnectionTypes": ["long-polling"],
                "id": "7",
            }
        ]
    )
    assert reply["channel"] == "/meta/handshake"
    assert reply["successful"] is True
    assert reply["id"] == "7"
    assert reply["version"] == "1.0"
    assert reply["supportedConnectionTypes"] == ["long-polling"]
    assert reply["advice"] == {"reconnect": "retry", "interval": 0, "timeout": 1000}
    assert isinstance(reply["clientId"], str)


async def test_every_handshake_gets_a_distinct_unguessable_client_id(sim: Sim) -> None:
    ids = {await sim.handshake() for _ in range(20)}
    assert len(ids) == 20
    assert all(len(client_id) >= 22 for client_id in ids)
    assert await sim.client_count() == 20


async def test_a_handshake_without_long_polling_is_refused(sim: Sim) -> None:
    [reply] = await sim.bayeux({"channel": "/meta/handshake", "supportedConnectionTypes": ["websocket"]})
    assert reply["successful"] is False
    assert reply["error"].startswith("403::")
    assert await sim.client_count() == 0


# Connect.


async def test_the_first_connect_after_a_handshake_answers_at_once(sim: Sim) -> None:
    await sim.reset(timeout_ms=10000)
    client_id = await sim.handshake()
    started = time.monotonic()
    [reply] = await sim.connect(client_id, id="1")
    assert time.monotonic() - started < 1
    assert reply == {
        "channel": "/meta/connect",
        "successful": True,
        "id": "1",
        "clientId": client_id,
        "advice": {"reconnect": "retry", "interval": 0, "timeout": 10000},
    }


async def test_a_held_connect_returns_when_a_message_is_published(sim: Sim) -> None:
    await sim.reset(timeout_ms=10000)
    client_id = await sim.polling_client("/v2/me/calls")
    poll = asyncio.create_task(sim.connect(client_id))
    await settled()
    assert not poll.done(), "a connect with nothing to deliver must be held"

    started = time.monotonic()
    assert await sim.publish("agent1", "/v2/me/calls", {"messageType": "CallStateChangeMessage"}) == 1
    delivered, reply = split(await asyncio.wait_for(poll, 5))
    assert time.monotonic() - started < 2
    assert reply["successful"] is True
    assert [(m["channel"], m["data"]) for m in delivered] == [
        ("/v2/me/calls", {"messageType": "CallStateChangeMessage"})
    ]
    assert isinstance(delivered[0]["id"], str)


async def test_a_held_connect_with_nothing_to_deliver_returns_after_the_advised_timeout(sim: Sim) -> None:
    await sim.reset(timeout_ms=600, interval_ms=250)
    client_id = await sim.polling_client("/v2/me/calls")
    started = time.monotonic()
    delivered, reply = split(await sim.connect(client_id))
    elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 3
    assert delivered == []
    assert reply["successful"] is True
    assert reply["advice"] == {"reconnect": "retry", "interval": 250, "timeout": 600}


async def test_a_connect_may_ask_for_a_shorter_hold_than_the_server_timeout(sim: Sim) -> None:
    await sim.reset(timeout_ms=10000)
    client_id = await sim.polling_client()
    started = time.monotonic()
    [reply] = await sim.connect(client_id, advice={"timeout": 0})
    assert time.monotonic() - started < 1
    assert reply["successful"] is True


async def test_a_connect_from_an_unknown_client_is_told_to_handshake_again(sim: Sim) -> None:
    [reply] = await sim.connect("no-such-client", id="3")
    assert reply["channel"] == "/meta/connect"
    assert reply["successful"] is False
    assert reply["id"] == "3"
    assert reply["error"] == "402::unknown client"
    assert reply["advice"] == {"reconnect": "handshake", "interval": 0}


async def test_a_client_id_is_unknown_to_any_other_principal(sim: Sim) -> None:
    client_id = await sim.handshake("agent1")
    [reply] = await sim.connect(client_id, principal="agent2")
    assert reply["error"] == "402::unknown client"
    reply = await sim.subscribe(client_id, "/v2/me/calls", principal="agent2")
    assert reply["error"] == "402::unknown client"
    [reply] = await sim.connect(client_id, principal="agent1")
    assert reply["successful"] is True


async def test_messages_published_between_polls_are_queued_and_delivered_in_order(sim: Sim) -> None:
    client_id = await sim.polling_client("/v2/me/calls")
    for n in range(3):
        assert await sim.publish("agent1", "/v2/me/calls", {"n": n}) == 1

    started = time.monotonic()
    delivered, reply = split(await sim.connect(client_id))
    assert time.monotonic() - started < 0.5, "a connect with queued messages answers at once"
    assert reply["successful"] is True
    assert [m["data"]["n"] for m in delivered] == [0, 1, 2]
    ids = [int(m["id"]) for m in delivered]
    assert ids == sorted(ids) and len(set(ids)) == 3


async def test_messages_queued_before_the_first_connect_come_with_it(sim: Sim) -> None:
    client_id = await sim.handshake()
    await sim.subscribe(client_id, "/v2/me/devices")
    assert await sim.publish("agent1", "/v2/me/devices", {"state": "Ready"}) == 1
    delivered, reply = split(await sim.connect(client_id))
    assert [m["data"] for m in delivered] == [{"state": "Ready"}]


async def test_a_second_connect_completes_the_held_one_without_messages(sim: Sim) -> None:
    await sim.reset(timeout_ms=10000)
    client_id = await sim.polling_client("/v2/me/calls")
    first = asyncio.create_task(sim.connect(client_id, id="a"))
    await settled()
    second = asyncio.create_task(sim.connect(client_id, id="b"))

    delivered, reply = split(await asyncio.wait_for(first, 3))
    assert (delivered, reply["id"], reply["successful"]) == ([], "a", True)
    await settled()
    assert not second.done(), "the second connect is held in its turn"

    await sim.publish("agent1", "/v2/me/calls", {"n": 1})
    delivered, reply = split(await asyncio.wait_for(second, 3))
    assert reply["id"] == "b"
    assert [m["data"] for m in delivered] == [{"n": 1}]


async def test_a_batch_handles_its_subscribe_before_its_connect(sim: Sim) -> None:
    await sim.reset(timeout_ms=10000)
    client_id = await sim.polling_client()
    batch = [
        {"channel": "/meta/connect", "clientId": client_id, "connectionType": "long-polling", "id": "c"},
        {"channel": "/meta/subscribe", "clientId": client_id, "subscription": "/v2/me/calls", "id": "s"},
    ]
    poll = asyncio.create_task(sim.bayeux(batch))
    await settled()
    assert not poll.done()
    assert await sim.publish("agent1", "/v2/me/calls", {"n": 1}) == 1

    replies = await asyncio.wait_for(poll, 3)
    assert [(r["channel"], r.get("id")) for r in replies] == [
        ("/meta/subscribe", "s"),
        ("/v2/me/calls", replies[1]["id"]),
        ("/meta/connect", "c"),
    ]
    assert replies[0]["successful"] and replies[0]["subscription"] == "/v2/me/calls"
    assert replies[1]["data"] == {"n": 1}


async def test_a_connect_with_another_connection_type_is_refused(sim: Sim) -> None:
    client_id = await sim.polling_client()
    [reply] = await sim.connect(client_id, connectionType="websocket")
    assert reply["successful"] is False
    assert reply["error"].startswith("400::")


# Expiry.


async def test_a_client_that_stops_polling_expires_after_the_max_interval(sim: Sim) -> None:
    await sim.reset(timeout_ms=1000, max_interval_ms=400)
    client_id = await sim.polling_client("/v2/me/calls")
    last_answered = time.monotonic()
    assert await sim.client_count() == 1

    async def expired() -> bool:
        return await sim.client_count() == 0

    await eventually(expired)
    gone_after = time.monotonic() - last_answered
    assert 0.4 <= gone_after < 2
    assert await sim.publish("agent1", "/v2/me/calls", {"n": 1}) == 0
    [reply] = await sim.connect(client_id)
    assert reply["error"] == "402::unknown client"


async def test_a_client_that_never_connects_expires_too(sim: Sim) -> None:
    await sim.reset(max_interval_ms=300)
    await sim.handshake()
    await asyncio.sleep(1)
    assert await sim.client_count() == 0


async def test_a_client_whose_connect_is_held_does_not_expire(sim: Sim) -> None:
    await sim.reset(timeout_ms=1200, max_interval_ms=300)
    client_id = await sim.polling_client("/v2/me/calls")
    delivered, reply = split(await sim.connect(client_id))
    assert reply["successful"] is True, "held for longer than max_interval, yet still known"
    assert await sim.client_count() == 1
    assert await sim.publish("agent1", "/v2/me/calls", {"n": 1}) == 1


# Subscriptions.


@pytest.mark.parametrize(
    ("subscription", "matching", "not_matching"),
    [
        ("/v2/me/calls", ["/v2/me/calls"], ["/v2/me/devices", "/v2/me/calls/x", "/v2/me"]),
        ("/v2/me/*", ["/v2/me/calls", "/v2/me/devices"], ["/v2/me", "/v2/me/calls/x", "/v2/you/calls"]),
        ("/v2/me/**", ["/v2/me/calls", "/v2/me/calls/x/y"], ["/v2/me", "/v2/you/calls"]),
        ("/**", ["/v2", "/v2/me/calls", "/notifications/services"], []),
        ("/*", ["/v2"], ["/v2/me"]),
    ],
)
async def test_wildcard_subscriptions_match_one_segment_or_any_depth(
    sim: Sim, subscription: str, matching: list[str], not_matching: list[str]
) -> None:
    client_id = await sim.polling_client(subscription)
    for channel in not_matching:
        assert await sim.publish("agent1", channel, {"channel": channel}) == 0, channel
    for channel in matching:
        assert await sim.publish("agent1", channel, {"channel": channel}) == 1, channel
    delivered, _ = split(await sim.connect(client_id))
    assert [m["channel"] for m in delivered] == matching


async def test_a_message_reaches_only_the_subscribed_clients_of_its_principal(sim: Sim) -> None:
    calls = await sim.polling_client("/v2/me/calls")
    also_calls = await sim.polling_client("/v2/me/*")
    devices = await sim.polling_client("/v2/me/devices")
    other_agent = await sim.polling_client("/v2/me/calls", principal="agent2")

    assert await sim.publish("agent1", "/v2/me/calls", {"n": 1}) == 2

    for client_id in (calls, also_calls):
        delivered, _ = split(await sim.connect(client_id))
        assert [m["data"] for m in delivered] == [{"n": 1}]
    for client_id, principal in ((devices, "agent1"), (other_agent, "agent2")):
        delivered, _ = split(await sim.connect(client_id, principal, advice={"timeout": 0}))
        assert delivered == []


async def test_a_subscription_may_name_several_channels_and_unsubscribe_stops_delivery(sim: Sim) -> None:
    client_id = await sim.polling_client()
    reply = await sim.subscribe(client_id, ["/v2/me/calls", "/v2/me/devices"])
    assert reply["successful"] is True
    assert reply["subscription"] == ["/v2/me/calls", "/v2/me/devices"]

    [reply] = await sim.bayeux(
        {"channel": "/meta/unsubscribe", "clientId": client_id, "subscription": "/v2/me/calls", "id": "u"}
    )
    assert (reply["successful"], reply["subscription"], reply["id"]) == (True, "/v2/me/calls", "u")
    assert await sim.publish("agent1", "/v2/me/calls", {"n": 1}) == 0
    assert await sim.publish("agent1", "/v2/me/devices", {"n": 2}) == 1


@pytest.mark.parametrize(
    ("subscription", "code"),
    [
        ("v2/me/calls", "400"),
        ("/v2//calls", "400"),
        ("/v2/me/", "400"),
        ("/v2/*/calls", "400"),
        ("/v2/me/call*", "400"),
        ("", "400"),
        (None, "400"),
        (42, "400"),
        ([], "400"),
        (["/v2/me/calls", "nope"], "400"),
        ("/meta/connect", "403"),
        ("/meta/*", "403"),
    ],
)
async def test_an_invalid_subscription_is_refused_with_a_bayeux_error(
    sim: Sim, subscription: Any, code: str
) -> None:
    client_id = await sim.polling_client()
    reply = await sim.subscribe(client_id, subscription)
    assert reply["channel"] == "/meta/subscribe"
    assert reply["successful"] is False
    assert reply["error"].startswith(f"{code}::")
    assert await sim.publish("agent1", "/v2/me/calls", {}) == 0


async def test_subscribing_needs_a_known_client(sim: Sim) -> None:
    reply = await sim.subscribe("nobody", "/v2/me/calls")
    assert reply["successful"] is False
    assert reply["error"] == "402::unknown client"
    assert reply["advice"]["reconnect"] == "handshake"


# Malformed input and refused operations.


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"42",
        b'"/meta/handshake"',
        b"[]",
        b"[1]",
        b'[{"channel": "/meta/handshake"}, "x"]',
        b'{"clientId": "x"}',
        b'[{"channel": 5}]',
    ],
)
async def test_a_malformed_body_is_answered_with_http_400(sim: Sim, body: bytes) -> None:
    response = await sim.post(body)
    assert response.status_code == 400
    assert response.json()["statusCode"] == 10
    assert isinstance(response.json()["statusMessage"], str)
    assert await sim.client_count() == 0


async def test_an_unknown_meta_channel_is_answered_with_a_bayeux_error(sim: Sim) -> None:
    [reply] = await sim.bayeux({"channel": "/meta/reboot", "id": "9"})
    assert reply == {"channel": "/meta/reboot", "successful": False, "id": "9", "error": reply["error"]}
    assert reply["error"].startswith("400::")


async def test_a_client_may_not_publish(sim: Sim) -> None:
    client_id = await sim.polling_client("/v2/me/calls")
    [reply] = await sim.bayeux(
        {"channel": "/v2/me/calls", "clientId": client_id, "data": {"x": 1}, "id": "p"}
    )
    assert reply["successful"] is False
    assert reply["error"] == "403::publish denied"
    assert (reply["channel"], reply["id"]) == ("/v2/me/calls", "p")
    delivered, _ = split(await sim.connect(client_id, advice={"timeout": 0}))
    assert delivered == []


async def test_publishing_on_an_invalid_channel_is_a_programming_error(sim: Sim) -> None:
    for channel in ("/meta/connect", "/v2/me/*", "v2", "/v2//x"):
        response = await sim.http.post(
            "/control/publish", json={"principal": "agent1", "channel": channel, "data": {}}
        )
        assert response.status_code == 400, channel


# Disconnect and dropping clients.


async def test_disconnect_removes_the_client_and_answers_its_held_connect(sim: Sim) -> None:
    await sim.reset(timeout_ms=10000)
    client_id = await sim.polling_client("/v2/me/calls")
    poll = asyncio.create_task(sim.connect(client_id))
    await settled()

    [reply] = await sim.bayeux({"channel": "/meta/disconnect", "clientId": client_id, "id": "d"})
    assert (reply["channel"], reply["successful"], reply["id"]) == ("/meta/disconnect", True, "d")
    [held] = await asyncio.wait_for(poll, 3)
    assert held["successful"] is True
    assert held["advice"]["reconnect"] == "none"
    assert await sim.client_count() == 0
    [reply] = await sim.connect(client_id)
    assert reply["error"] == "402::unknown client"


async def test_drop_all_answers_held_connects_with_unknown_client(sim: Sim) -> None:
    await sim.reset(timeout_ms=10000)
    first = await sim.polling_client("/v2/me/calls")
    second = await sim.polling_client("/v2/me/calls", principal="agent2")
    polls = [asyncio.create_task(sim.connect(first)), asyncio.create_task(sim.connect(second, "agent2"))]
    await settled()

    assert await sim.drop_all() == 2
    for poll in polls:
        [reply] = await asyncio.wait_for(poll, 3)
        assert reply["error"] == "402::unknown client"
        assert reply["advice"] == {"reconnect": "handshake", "interval": 0}
    assert await sim.client_count() == 0


async def test_drop_principal_forgets_only_that_principals_clients(sim: Sim) -> None:
    await sim.polling_client("/v2/me/calls", principal="agent1")
    await sim.polling_client("/v2/me/calls", principal="agent1")
    kept = await sim.polling_client("/v2/me/calls", principal="agent2")

    assert await sim.drop_principal("agent1") == 2
    assert await sim.drop_principal("agent1") == 0
    assert await sim.client_count() == 1
    assert await sim.publish("agent2", "/v2/me/calls", {"n": 1}) == 1
    delivered, _ = split(await sim.connect(kept, "agent2"))
    assert [m["data"] for m in delivered] == [{"n": 1}]


# The aiocometd client, as the desk uses it.


async def test_an_aiocometd_client_receives_published_messages(sim: Sim) -> None:
    async with Client(sim.url, connection_types=[ConnectionType.LONG_POLLING]) as client:
        await client.subscribe("/v2/me/calls")
        await client.subscribe("/v2/me/*")
        assert await sim.publish("agent1", "/v2/me/calls", {"notificationType": "StatusChange"}) == 1
        assert await sim.publish("agent1", "/v2/me/devices", {"messageType": "DeviceStateChangeMessage"}) == 1

        received = []
        async with asyncio.timeout(5):
            async for message in client:
                received.append((message["channel"], message["data"]))
                if len(received) == 2:
                    break
    assert received == [
        ("/v2/me/calls", {"notificationType": "StatusChange"}),
        ("/v2/me/devices", {"messageType": "DeviceStateChangeMessage"}),
    ]
    await asyncio.sleep(0.2)
    assert await sim.client_count() == 0, "closing the client disconnects it"


async def test_an_aiocometd_client_survives_drop_all_by_handshaking_and_resubscribing(sim: Sim) -> None:
    async with Client(sim.url, connection_types=[ConnectionType.LONG_POLLING]) as client:
        await client.subscribe("/v2/me/calls")
        await settled()
        assert await sim.drop_all() == 1

        # Publishes reach nobody until the client has re-handshaken and re-subscribed by itself.
        async with asyncio.timeout(5):
            attempt = 0
            while await sim.publish("agent1", "/v2/me/calls", {"attempt": attempt}) == 0:
                attempt += 1
                await asyncio.sleep(0.02)
            message = await client.receive()
        assert message["data"] == {"attempt": attempt}
        assert client.subscriptions == {"/v2/me/calls"}
        assert await sim.client_count() == 1


# The server object itself.


def _request(payload: Any) -> Request:
    return Request(
        method="POST",
        path="/cometd",
        query={},
        headers={},
        body=json.dumps(payload).encode(),
        root="",
        scheme="http",
        host="test",
    )


async def _handle(server: BayeuxServer, payload: Any, principal: str = "agent1") -> Response:
    """One request, in-process; bounded so that a connect held by mistake fails the test, not hangs it."""
    return await asyncio.wait_for(server.handle(_request(payload), principal), 5)


async def _polling_client(server: BayeuxServer, principal: str = "agent1") -> str:
    handshake = await _handle(server, {"channel": "/meta/handshake"}, principal)
    client_id = handshake.body[0]["clientId"]
    subscribe = {"channel": "/meta/subscribe", "clientId": client_id, "subscription": "/v2/me/calls"}
    await _handle(server, [subscribe, {"channel": "/meta/connect", "clientId": client_id}], principal)
    return client_id


def _sweepers() -> list[asyncio.Task[Any]]:
    return [task for task in asyncio.all_tasks() if task.get_name() == "bayeux-sweeper"]


async def test_close_answers_thousands_of_held_connects_at_once_and_stops_the_sweeper() -> None:
    server = BayeuxServer(timeout_ms=60000)
    client_ids = [await _polling_client(server, f"agent{n}") for n in range(2000)]
    polls = [
        asyncio.create_task(
            server.handle(_request({"channel": "/meta/connect", "clientId": cid}), f"agent{n}")
        )
        for n, cid in enumerate(client_ids)
    ]
    await asyncio.sleep(0.1)
    assert not any(poll.done() for poll in polls)
    assert len(_sweepers()) == 1

    started = time.monotonic()
    await server.close()
    responses = await asyncio.wait_for(asyncio.gather(*polls), 5)
    assert time.monotonic() - started < 2
    assert all(response.body[-1]["successful"] for response in responses)
    assert _sweepers() == []

    started = time.monotonic()
    response = await _handle(server, {"channel": "/meta/connect", "clientId": client_ids[0]}, "agent0")
    assert response.body[-1]["successful"] is True
    assert time.monotonic() - started < 1, "after close, connects are no longer held"


async def test_a_held_connect_costs_a_few_kilobytes() -> None:
    server = BayeuxServer(timeout_ms=60000)
    client_ids = [await _polling_client(server) for _ in range(1000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        polls = [
            asyncio.create_task(
                server.handle(_request({"channel": "/meta/connect", "clientId": cid}), "agent1")
            )
            for cid in client_ids
        ]
        await asyncio.sleep(0.1)
        per_connect = (tracemalloc.get_traced_memory()[0] - before) / len(polls)
    finally:
        tracemalloc.stop()
    assert not any(poll.done() for poll in polls)
    assert per_connect < 8192, f"{per_connect:.0f} bytes per held connect"
    assert server.publish("agent1", "/v2/me/calls", {"n": 1}) == 1000
    responses = await asyncio.wait_for(asyncio.gather(*polls), 5)
    assert all([m["data"] for m in r.body[:-1]] == [{"n": 1}] for r in responses)
    await server.close()


async def test_a_client_record_is_small() -> None:
    server = BayeuxServer()
    await _polling_client(server)
    [client] = server._clients.values()
    assert not hasattr(client, "__dict__")
    await server.close()


async def test_the_sweeper_ends_once_every_client_has_expired() -> None:
    server = BayeuxServer(max_interval_ms=50)
    await _polling_client(server)
    assert len(_sweepers()) == 1

    async def swept() -> bool:
        return not server.client_count() and not _sweepers()

    await eventually(swept)
    await _polling_client(server)
    assert len(_sweepers()) == 1, "the next handshake starts it again"
    await server.close()


async def test_published_data_is_a_snapshot_and_must_be_json() -> None:
    server = BayeuxServer(timeout_ms=0)
    client_id = await _polling_client(server)
    data = {"call": {"state": "Ringing"}}
    assert server.publish("agent1", "/v2/me/calls", data) == 1
    data["call"]["state"] = "Established"
    with pytest.raises(TypeError):
        server.publish("agent1", "/v2/me/calls", {"when": object()})
    with pytest.raises(ValueError):
        server.publish("agent1", "/v2/me/calls", {"duration": float("nan")})
    response = await _handle(server, {"channel": "/meta/connect", "clientId": client_id})
    assert [m["data"] for m in response.body[:-1]] == [{"call": {"state": "Ringing"}}]
    await server.close()
