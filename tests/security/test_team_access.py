"""Who may see and run a team: only its leads, who hold the permission to lead teams. Anyone else is
refused by URL (403 when they lead nothing, 404 for a team or member that is not theirs) and by
socket (4403), audited, and nothing reaches the Voice API."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import AsyncClient, Client

from calls import board, presence
from calls.models import AgentLogin, AuditEntry, Team
from desktop.asgi import application
from tests.desk import RunningWorker, answered_call, control, desk_client, make_team, ready_desk

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def teams(agent1: AgentLogin, agent2: AgentLogin, lead1: AgentLogin) -> tuple[Team, Team]:
    """agent1's team, led by lead1; agent2's team, led by agent2's own user (another lead)."""
    return make_team("Sales", [lead1], [agent1]), make_team("Support", [agent2], [agent2])


@pytest.fixture
async def lead(lead1: AgentLogin) -> AsyncClient:
    """lead1 signed in to the desk."""
    return await desk_client(lead1.user)


@sync_to_async
def _cookie(login: AgentLogin) -> bytes:
    client = Client()
    client.force_login(login.user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def _socket(login: AgentLogin, path: str) -> tuple[WebsocketCommunicator, bool, Any]:
    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost"), (b"cookie", await _cookie(login))]
    socket = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await socket.connect()
    return socket, connected, code


@sync_to_async
def _refusals(username: str) -> list[tuple[str, str, str, str]]:
    rows = AuditEntry.objects.filter(username=username, result=AuditEntry.REFUSED).order_by("id")
    return [(row.action, row.detail, row.message, row.call_id) for row in rows]


async def test_a_desk_user_who_leads_no_team_is_refused_the_board(agent1: AgentLogin) -> None:
    client = await desk_client(agent1.user)

    response = await client.get("/team/")

    assert response.status_code == 403
    assert "You lead no team" in response.content.decode()
    assert (await client.get("/team/1/")).status_code == 403


async def test_a_lead_sees_their_own_team_and_another_teams_board_is_not_found(
    teams: tuple[Team, Team], lead: AsyncClient
) -> None:
    sales, support = teams

    board_page = (await lead.get("/team/")).content.decode()
    other = await lead.get(f"/team/{support.pk}/")

    assert f'data-team="{sales.pk}"' in board_page and 'data-member="agent1"' in board_page
    assert 'data-member="agent2"' not in board_page and "Support" not in board_page
    assert f'ws-connect="/ws/desktop/?team={sales.pk}"' in board_page
    assert other.status_code == 404 and "agent2" not in other.content.decode()
    assert (await lead.get("/team/99999999999999999999999/")).status_code == 404


async def test_a_lead_named_on_a_team_without_the_permission_sees_nothing(
    teams: tuple[Team, Team], agent1: AgentLogin, lead1: AgentLogin, lead: AsyncClient
) -> None:
    sales, _ = teams
    await sync_to_async(lead1.user.user_permissions.clear)()

    assert (await lead.get("/team/")).status_code == 403
    assert (await lead.get(f"/team/{sales.pk}/")).status_code == 403
    response = await lead.post(f"/team/{sales.pk}/members/{agent1.pk}/state/", {"operation": "Ready"})
    assert response.status_code == 404


async def test_another_teams_lead_is_refused_every_action_and_nothing_reaches_the_voice_api(
    simulator: str, teams: tuple[Team, Team], agent1: AgentLogin, agent2: AgentLogin, worker: RunningWorker
) -> None:
    sales, support = teams
    member = await ready_desk(agent1)
    await ready_desk(agent2)
    call_id = await answered_call(simulator, member)
    intruder = await desk_client(agent2.user)

    attempts = [
        (f"/team/{support.pk}/members/{agent1.pk}/supervise/", {"operation": "ListenIn"}),
        (f"/team/{sales.pk}/members/{agent1.pk}/supervise/", {"operation": "BargeIn"}),
        (f"/team/{support.pk}/members/{agent1.pk}/state/", {"operation": "Logout"}),
        (f"/team/{sales.pk}/members/{agent1.pk}/state/", {"operation": "Ready"}),
    ]
    answers = [await intruder.post(path, form) for path, form in attempts]

    assert [answer.status_code for answer in answers] == [404] * 4
    assert all("No such team member" in answer.content.decode() for answer in answers)
    state = await control(simulator, "GET", "/control/state")
    assert state["monitoring"] == []
    assert {a["login"]: a["state"] for a in state["agents"]}["agent1"] == "NotReady"
    assert await _refusals("agent2") == [
        ("ListenIn", "agent1", "No such team member", call_id),
        ("BargeIn", "agent1", "No such team member", call_id),
        ("MemberLogout", "agent1", "No such team member", ""),
        ("MemberReady", "agent1", "No such team member", ""),
    ]


async def test_a_board_socket_for_a_team_the_user_does_not_lead_is_refused_and_audited(
    teams: tuple[Team, Team], lead1: AgentLogin
) -> None:
    _, support = teams

    outcomes = []
    for path in (f"/ws/desktop/?team={support.pk}", "/ws/desktop/?team=x", "/ws/desktop/?team=0"):
        socket, connected, code = await _socket(lead1, path)
        outcomes.append((connected, code))
        await socket.disconnect()

    assert outcomes == [(False, 4403)] * 3
    assert await _refusals("lead1") == [("WebSocketConnect", "", "not a lead of that team", "")]


async def test_a_leads_board_socket_gets_the_board_and_only_its_teams_pushes(
    teams: tuple[Team, Team], agent1: AgentLogin, agent2: AgentLogin, lead1: AgentLogin
) -> None:
    sales, _ = teams
    socket, connected, _ = await _socket(lead1, f"/ws/desktop/?team={sales.pk}")
    assert connected
    assert 'id="agent-state"' in await socket.receive_from(timeout=5)
    snapshot = await socket.receive_from(timeout=5)

    await board.member_changed(agent2.pk)
    await board.member_changed(agent1.pk)

    assert f'<section id="team" class="team" data-team="{sales.pk}"' in snapshot
    assert 'data-member="agent1"' in snapshot and 'data-member="agent2"' not in snapshot
    push = await socket.receive_from(timeout=5)
    assert 'data-member="agent1"' in push and 'data-member="agent2"' not in push
    assert await socket.receive_nothing(timeout=0.3)
    await socket.disconnect()


async def test_a_lead_removed_from_the_team_gets_no_further_push_and_the_board_closes(
    teams: tuple[Team, Team], agent1: AgentLogin, lead1: AgentLogin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(presence, "TAB_ALIVE_SECONDS", 0.2)
    sales, _ = teams
    socket, connected, _ = await _socket(lead1, f"/ws/desktop/?team={sales.pk}")
    assert connected
    await socket.receive_from(timeout=5)
    await socket.receive_from(timeout=5)

    await sync_to_async(sales.leads.clear)()
    await board.member_changed(agent1.pk)

    # Nothing more of the board, and the socket's next check finds the user no longer leads the team.
    message: dict[str, Any] = await socket.receive_output(timeout=5)
    while message["type"] == "websocket.send" and 'id="member-' not in message.get("text", ""):
        message = await socket.receive_output(timeout=5)
    assert message == {"type": "websocket.close", "code": 4403}
    await socket.disconnect()


async def test_hostile_team_requests_get_a_clear_answer_never_a_server_error(
    teams: tuple[Team, Team], agent1: AgentLogin, lead: AsyncClient
) -> None:
    sales, _ = teams
    base = f"/team/{sales.pk}/members/{agent1.pk}"

    answers = {
        "huge member": await lead.post(f"/team/{sales.pk}/members/{10**30}/state/", {"operation": "Ready"}),
        "huge team": await lead.post(
            f"/team/{10**30}/members/{agent1.pk}/supervise/", {"operation": "Coach"}
        ),
        "unknown operation": await lead.post(f"{base}/supervise/", {"operation": "Intercept\x00"}),
        "unknown state": await lead.post(f"{base}/state/", {"operation": "AfterCallWork"}),
        "hostile reason": await lead.post(f"{base}/state/", {"operation": "NotReady", "reason": "LUNCH\x00"}),
        "a GET": await lead.get(f"{base}/state/"),
    }

    assert {name: answer.status_code for name, answer in answers.items()} == {
        "huge member": 404,
        "huge team": 404,
        "unknown operation": 400,
        "unknown state": 400,
        "hostile reason": 400,
        "a GET": 405,
    }
    assert "Choose one of the reasons offered" in answers["hostile reason"].content.decode()


@pytest.mark.django_db
def test_team_actions_need_the_csrf_token(agent1: AgentLogin, lead1: AgentLogin) -> None:
    sales = make_team("Sales", [lead1], [agent1])
    client = Client(enforce_csrf_checks=True)
    client.force_login(lead1.user)

    supervise = client.post(f"/team/{sales.pk}/members/{agent1.pk}/supervise/", {"operation": "ListenIn"})
    state = client.post(f"/team/{sales.pk}/members/{agent1.pk}/state/", {"operation": "Ready"})

    assert (supervise.status_code, state.status_code) == (403, 403)
    assert not AuditEntry.objects.exclude(action="DeskLogin").exists()


async def test_a_storm_of_team_actions_is_refused_and_audited_like_an_agents(
    agent1: AgentLogin, lead1: AgentLogin, lead: AsyncClient, settings: Any
) -> None:
    settings.ACTION_RATE_LIMIT = "2/30"
    sales = await sync_to_async(make_team)("Sales", [lead1], [agent1])
    base = f"/team/{sales.pk}/members/{agent1.pk}/state/"

    answers = [await lead.post(base, {"operation": name}) for name in ("Ready", "Logout", "Ready")]

    assert answers[2].status_code == 429 and answers[2].headers["Retry-After"] == "30"
    assert "Too many actions at once" in answers[2].content.decode()
    refused = await _refusals("lead1")
    assert refused[-1][:1] == ("MemberReady",) and "Too many actions" in refused[-1][2]
