"""Who may act and listen: another agent's call, a request without its CSRF token, a WebSocket from a
foreign origin or without a signed-in user."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from calls.models import AgentLogin, AuditEntry, LiveCall
from desktop.asgi import application
from tests.desk import RunningWorker, card, control, desk_client, ready_desk, server_calls, switch_calls


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_another_agents_call_id_answers_404_and_reaches_no_voice_api(
    simulator: str, agent1: AgentLogin, agent2: AgentLogin, worker: RunningWorker
) -> None:
    desk = await ready_desk(agent2)
    call_id = (await control(simulator, "POST", "/control/calls", {"from": "5000", "to": "5001"}))["id"]
    await desk.until(card(call_id, "Ringing"))
    intruder = await desk_client(agent1.user)

    for operation in ("Answer", "Hangup"):
        response = await intruder.post(f"/calls/{call_id}/", {"operation": operation})
        assert response.status_code == 404
        assert "No such call" in response.content.decode()

    assert (await server_calls(simulator, "agent2"))[call_id][0] == "Ringing"
    assert await switch_calls(simulator) == {call_id: {"5000": "Established", "5001": "Ringing"}}

    @sync_to_async
    def saved() -> tuple[str, list[tuple[str, str, str]]]:
        rows = AuditEntry.objects.filter(call_id=call_id).order_by("id")
        return (
            LiveCall.objects.get(call_id=call_id).state,
            [(r.username, r.action, r.result, r.remote_address) for r in rows],
        )

    assert await saved() == (
        "Ringing",
        [("agent1", "Answer", "refused", "127.0.0.1"), ("agent1", "Hangup", "refused", "127.0.0.1")],
    )
    await desk.close()


@pytest.mark.django_db
def test_an_action_without_the_csrf_token_is_forbidden() -> None:
    user = get_user_model().objects.create_user("agent9", password="agent9-password")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)

    response = client.post("/calls/some-call/", {"operation": "Answer"})

    assert response.status_code == 403
    assert client.post("/dial/", {"destination": "5001"}).status_code == 403
    assert client.post("/agent/", {"operation": "Ready"}).status_code == 403
    assert not AuditEntry.objects.exclude(action="DeskLogin").exists()  # nothing got as far as an action


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_websocket_from_a_foreign_origin_is_refused(agent1: AgentLogin) -> None:
    cookie = await _session_cookie(agent1)
    headers = [(b"origin", b"http://evil.example"), (b"host", b"localhost"), (b"cookie", cookie)]
    socket = WebsocketCommunicator(application, "/ws/desktop/", headers=headers)

    connected, _ = await socket.connect()

    assert not connected
    await socket.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_same_origin_with_the_session_cookie_is_accepted(agent1: AgentLogin) -> None:
    """The counterpart of the two refusals: they fail for the reason they name, not any reason."""
    cookie = await _session_cookie(agent1)
    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost"), (b"cookie", cookie)]
    socket = WebsocketCommunicator(application, "/ws/desktop/", headers=headers)

    connected, _ = await socket.connect()

    assert connected
    assert 'id="agent-state"' in await socket.receive_from(timeout=5)
    await socket.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_websocket_without_a_signed_in_user_is_refused_and_audited() -> None:
    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
    attempts = []
    for _ in range(3):
        socket = WebsocketCommunicator(application, "/ws/desktop/", headers=headers)
        connected, code = await socket.connect()
        attempts.append((connected, code))
        await socket.disconnect()

    assert attempts == [(False, 4401)] * 3

    @sync_to_async
    def audited() -> list[tuple[str, str, str]]:
        return [(r.action, r.result, r.message) for r in AuditEntry.objects.all()]

    # Recorded once a minute per address and reason, however often a stale tab retries.
    assert await audited() == [("WebSocketConnect", "refused", "not signed in")]


@sync_to_async
def _session_cookie(login: AgentLogin) -> bytes:
    client = Client()
    client.force_login(login.user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()
