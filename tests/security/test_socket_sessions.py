"""A desktop socket lives no longer than the desk session that opened it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from calls import presence
from calls.models import AgentLogin
from desktop.asgi import application

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


async def open_socket(client: Client) -> WebsocketCommunicator:
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost"), (b"cookie", cookie)]
    socket = WebsocketCommunicator(application, "/ws/desktop/", headers=headers)
    connected, _ = await socket.connect()
    assert connected
    assert 'id="agent-state"' in await socket.receive_from(timeout=5)
    return socket


async def closed_with(socket: WebsocketCommunicator) -> int:
    """The code the server closed the socket with, skipping whatever it pushed before."""
    while True:
        message: dict[str, Any] = await socket.receive_output(timeout=5)
        if message["type"] == "websocket.close":
            return int(message.get("code", 1000))


@sync_to_async
def signed_in(login: AgentLogin) -> Client:
    client = Client()
    client.force_login(login.user)
    return client


async def test_signing_out_closes_the_sockets_of_that_session_only(agent1: AgentLogin) -> None:
    leaving = await signed_in(agent1)
    staying = await signed_in(agent1)
    closing = await open_socket(leaving)
    other = await open_socket(staying)

    await sync_to_async(leaving.post)("/accounts/logout/")

    assert await closed_with(closing) == 4401
    assert await other.receive_nothing(timeout=0.5)
    await other.disconnect()


async def test_a_socket_whose_session_expired_is_closed_at_the_next_check(
    agent1: AgentLogin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(presence, "TAB_ALIVE_SECONDS", 0.2)
    client = await signed_in(agent1)
    socket = await open_socket(client)

    await sync_to_async(Session.objects.update)(expire_date=timezone.now())

    assert await closed_with(socket) == 4401


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [
        ("http://localhost:8000", True),
        ("http://localhost:9999", False),
        ("https://localhost:8000", False),
        ("http://localhost", False),
    ],
)
async def test_a_socket_is_accepted_only_from_the_desks_own_scheme_host_and_port(
    agent1: AgentLogin, origin: str, accepted: bool
) -> None:
    client = await signed_in(agent1)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    headers = [(b"origin", origin.encode()), (b"host", b"localhost:8000"), (b"cookie", cookie)]
    socket = WebsocketCommunicator(application, "/ws/desktop/", headers=headers)

    connected, _ = await socket.connect()

    assert connected is accepted
    await socket.disconnect()


async def test_a_trusted_origin_behind_a_tls_proxy_is_accepted(agent1: AgentLogin, settings: Any) -> None:
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    client = await signed_in(agent1)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    headers = [
        (b"origin", b"https://localhost"),
        (b"host", b"localhost"),
        (b"x-forwarded-proto", b"https"),
        (b"cookie", cookie),
    ]
    socket = WebsocketCommunicator(application, "/ws/desktop/", headers=headers)

    connected, _ = await socket.connect()

    assert connected
    await socket.disconnect()


async def test_a_socket_whose_group_membership_was_lost_gets_pushes_again(
    agent1: AgentLogin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Redis restart forgets every group: an open tab joins its group again by itself."""
    from channels.layers import get_channel_layer

    from calls import services

    monkeypatch.setattr(presence, "TAB_ALIVE_SECONDS", 0.2)
    client = await signed_in(agent1)
    socket = await open_socket(client)
    layer = get_channel_layer()
    group = services.group_name(agent1.user_id)
    layer.groups.clear()  # the layer forgets its groups, as a restarted Redis does

    await asyncio.sleep(0.5)
    await services.publish((agent1.user_id, '<div id="probe"></div>'))

    assert await socket.receive_from(timeout=3) == '<div id="probe"></div>'
    assert group in layer.groups
    await socket.disconnect()
