"""Teams and their leads: who leads what, the board's rows and their pushes, and what a lead does
through the lead's own Voice API session (real HTTP, CometD and polling against the simulator)."""

from __future__ import annotations

import asyncio
import io
import re
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.utils import timezone

from calls import board, supervision
from calls.actions import ActionRefused
from calls.backends import borrowed
from calls.demo import create_demo_agent_logins
from calls.fragments import card
from calls.models import AgentLogin, AuditEntry, LiveCall, NotReadyReason, Supervision, Team
from calls.persist import Writer
from calls.vendors.genesys import parse_call
from calls.vendors.huawei import HuaweiBackend
from calls.voice import Agent, Member, Server
from tests.desk import (
    Desk,
    RunningWorker,
    answered_call,
    control,
    live_calls,
    make_team,
    ready_desk,
    saved,
)


def _row(html: str, username: str) -> str:
    """The row of one member in rendered board HTML."""
    match = re.search(
        rf'<div id="member-\d+-\d+"[^>]*data-member="{username}".*?(?=<div id="member-|\Z)', html, re.S
    )
    assert match, f"no row for {username}"
    return match.group(0)


def _controls(row: str, kind: str) -> list[str]:
    return re.findall(rf'data-{kind}="([^"]+)"', row)


# --- Who leads what ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_team_is_led_only_by_its_named_active_leads_who_hold_the_permission(
    agent1: AgentLogin, agent2: AgentLogin, lead1: AgentLogin
) -> None:
    sales = make_team("Sales", [lead1], [agent1])
    make_team("Support", [agent2], [agent1])
    users = get_user_model().objects

    assert list(Team.objects.led_by(users.get(pk=lead1.user_id))) == [sales]
    assert list(Team.objects.led_by(users.get(pk=agent1.user_id))) == []

    lead1.user.user_permissions.clear()
    assert list(Team.objects.led_by(users.get(pk=lead1.user_id))) == []


@pytest.mark.django_db
def test_a_deactivated_lead_leads_nothing(agent1: AgentLogin, lead1: AgentLogin) -> None:
    make_team("Sales", [lead1], [agent1])
    get_user_model().objects.filter(pk=lead1.user_id).update(is_active=False)

    assert not Team.objects.led_by(get_user_model().objects.get(pk=lead1.user_id)).exists()


@pytest.mark.django_db
def test_the_demo_has_a_team_on_each_vendor_led_by_a_lead_who_may_lead() -> None:
    create_demo_agent_logins(io.StringIO())

    teams = {
        team.name: (
            [user.username for user in team.leads.all()],
            sorted(login.user.username for login in team.members.all()),
        )
        for team in Team.objects.all()
    }
    assert teams == {
        "Genesys demo team": (["lead1"], ["agent1", "agent2", "agent4"]),
        "Huawei demo team": (["lead101"], ["agent101", "agent102"]),
    }
    leads = {
        login.user.username: login for login in AgentLogin.objects.filter(user__username__startswith="lead")
    }
    assert {name: (login.username, login.dn) for name, login in leads.items()} == {
        "lead1": ("lead1", "5010"),
        "lead101": ("103", "6103"),
    }
    assert leads["lead101"].password == "agent103"
    assert all(Team.objects.led_by(login.user).exists() for login in leads.values())


# --- The board's rows ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_row_shows_state_with_its_reason_the_call_held_and_the_session(
    agent1: AgentLogin, agent2: AgentLogin, lead1: AgentLogin
) -> None:
    NotReadyReason.objects.create(code="LUNCH", label="Lunch")
    AgentLogin.objects.filter(pk__in=[agent1.pk, lead1.pk]).update(
        agent_state="NotReady", state_reason="LUNCH", connection=AgentLogin.CONNECTED
    )
    LiveCall.objects.create(
        login=agent1,
        call_id="C1",
        state="Held",
        call_type="Inbound",
        participants=["5000"],
        capabilities=["Retrieve", "Hangup"],
        started_at=timezone.now() - timedelta(seconds=30),
    )
    team = make_team("Sales", [lead1], [agent1, agent2])

    html = board.board_region(team, board.viewer(lead1.user_id))

    row = _row(html, "agent1")
    assert 'data-state="NotReady"' in row and 'data-reason="LUNCH"' in row
    assert "Not ready · Lunch" in row
    assert re.search(r'data-member-call data-state="Held" data-call-type="Inbound"', row)
    assert "On hold" in row and "5000" in row and "DN 5005" in row and "Connected" in row
    assert _controls(row, "supervise") == ["ListenIn", "Coach", "BargeIn"]
    # Not ready again to change the reason; no log out while the call lasts.
    assert _controls(row, "member-operation") == ["Ready", "NotReady"]
    idle = _row(html, "agent2")
    assert 'data-state="LoggedOut"' in idle and "No call" in idle
    assert _controls(idle, "supervise") == _controls(idle, "member-operation") == []
    counts = re.search(r'id="team-\d+-counts".*?</div>', html, re.S)
    assert counts is not None
    numbers = dict(
        re.findall(r'data-filter="(\w*)"[^>]*>[^<]*<span class="count" data-count>(\d+)', counts.group(0))
    )
    assert numbers == {
        "": "2",
        "Ready": "0",
        "NotReady": "1",
        "AfterCallWork": "0",
        "LoggedOut": "1",
        "call": "1",
    }


@pytest.mark.django_db
def test_the_lead_who_monitors_sees_switch_and_stop_and_another_lead_sees_who_monitors(
    agent1: AgentLogin, agent2: AgentLogin, lead1: AgentLogin
) -> None:
    LiveCall.objects.create(
        login=agent1, call_id="C1", state="Established", call_type="Inbound", started_at=timezone.now()
    )
    AgentLogin.objects.filter(pk__in=[agent1.pk, agent2.pk, lead1.pk]).update(agent_state="Ready")
    team = make_team("Sales", [lead1, agent2], [agent1])
    Supervision.objects.create(lead=lead1, member=agent1, call_id="C1", mode="ListenIn")

    mine = _row(board.board_region(team, board.viewer(lead1.user_id)), "agent1")
    theirs = _row(board.board_region(team, board.viewer(agent2.user_id)), "agent1")

    assert 'data-monitoring="ListenIn"' in mine and "You are listening" in mine
    assert _controls(mine, "supervise") == ["SwitchToCoach", "SwitchToBargeIn", "CancelSupervisorMonitoring"]
    assert "lead1 is listening" in theirs and "data-monitoring" not in theirs
    assert _controls(theirs, "supervise") == ["ListenIn", "Coach", "BargeIn"]


@pytest.mark.django_db
def test_a_lead_out_of_the_contact_center_has_no_controls(agent1: AgentLogin, lead1: AgentLogin) -> None:
    LiveCall.objects.create(login=agent1, call_id="C1", state="Established", started_at=timezone.now())
    AgentLogin.objects.filter(pk=agent1.pk).update(agent_state="Ready")
    team = make_team("Sales", [lead1], [agent1])

    row = _row(board.board_region(team, board.viewer(lead1.user_id)), "agent1")

    assert _controls(row, "supervise") == _controls(row, "member-operation") == []
    assert "Log in to the contact center to act." in row


@pytest.mark.django_db
def test_a_lead_without_an_agent_login_sees_the_board_but_no_controls(
    agent1: AgentLogin, lead1: AgentLogin
) -> None:
    LiveCall.objects.create(login=agent1, call_id="C1", state="Established", started_at=timezone.now())
    team = make_team("Sales", [lead1], [agent1])
    AgentLogin.objects.filter(pk=lead1.pk).update(enabled=False)

    row = _row(board.board_region(team, board.viewer(lead1.user_id)), "agent1")

    assert _controls(row, "supervise") == [] and "You need an agent login of your own to act." in row


@pytest.mark.django_db(transaction=True)
async def test_a_members_change_is_pushed_to_each_lead_of_each_of_their_teams_and_no_other_board(
    agent1: AgentLogin, agent2: AgentLogin, lead1: AgentLogin
) -> None:
    sales = await sync_to_async(make_team)("Sales", [lead1, agent2], [agent1])
    support = await sync_to_async(make_team)("Support", [lead1], [agent2])
    await sync_to_async(AgentLogin.objects.filter(pk=agent1.pk).update)(agent_state="Ready")
    layer = get_channel_layer()
    boards = {
        "lead1 sales": board.board_group(sales.pk, lead1.user_id),
        "agent2 sales": board.board_group(sales.pk, agent2.user_id),
        "lead1 support": board.board_group(support.pk, lead1.user_id),
    }
    channels = {}
    for name, group in boards.items():
        channels[name] = await layer.new_channel()
        await layer.group_add(group, channels[name])

    await board.member_changed(agent1.pk)

    for name in ("lead1 sales", "agent2 sales"):
        html = (await asyncio.wait_for(layer.receive(channels[name]), 5))["html"]
        assert re.search(r'<div id="member-\d+-\d+"[^>]*data-member="agent1" data-state="Ready"', html)
        assert 'hx-swap-oob="outerHTML"' in html and f'id="team-{sales.pk}-counts"' in html
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(channels["lead1 support"]), 0.3)


# --- What the member is told ---------------------------------------------------------------------


def test_a_genesys_call_a_supervisor_is_on_tells_the_agent_a_supervisor_listens() -> None:
    raw: dict[str, Any] = {
        "id": "C1",
        "state": "Established",
        "supervisorListeningIn": True,
        "monitoring": False,
    }

    assert parse_call(raw).supervisor == "ListenIn"
    assert parse_call({**raw, "supervisorListeningIn": False}).supervisor == ""
    # The supervisor's own monitoring call is not one a supervisor listens to.
    leg = parse_call(
        {**raw, "monitoring": True, "capabilities": ["Hangup", "SwitchToBargeIn", "MuteMonitoredUser"]}
    )
    assert leg.supervisor == "" and leg.capabilities == ("Hangup", "SwitchToBargeIn")


def test_a_huawei_agent_is_told_how_the_inspector_monitors_until_it_stops() -> None:
    backend = HuaweiBackend(Server("http://127.0.0.1:1"), Agent("101", "agent101", dn="6101"))
    backend._translate({"eventType": "AgentEvent_Talking", "content": {"callid": "C1", "caller": "5000"}})

    modes = []
    for event, qc_type in (
        ("AgentOther_BeQcStart", 8),
        ("AgentOther_BeQcStart", 20172),
        ("AgentOther_BeQcStop", 20172),
    ):
        (changed,) = backend._translate(
            {"eventType": event, "content": {"qcType": qc_type, "qcAgentId": 103}}
        )
        modes.append(changed.call.supervisor)  # type: ignore[union-attr]

    assert modes == ["ListenIn", "Coach", ""]


@pytest.mark.django_db
def test_the_card_says_a_supervisor_listens_unless_the_admin_hides_it(
    agent1: AgentLogin, settings: Any
) -> None:
    live = LiveCall(
        login=agent1, call_id="C1", state="Established", supervisor="Coach", started_at=timezone.now()
    )

    assert 'data-supervised="Coach"' in card(live)
    assert "A supervisor is coaching you" in card(live)
    settings.SUPERVISION_INDICATOR = False
    assert "data-supervised" not in card(live)


@pytest.mark.django_db
def test_a_supervisors_monitoring_call_says_how_they_monitor_it(agent1: AgentLogin) -> None:
    leg = LiveCall(login=agent1, call_id="C1", state="Established", started_at=timezone.now())
    told = {}
    for switches in (["SwitchToCoach", "SwitchToBargeIn"], ["SwitchToListenIn", "SwitchToCoach"]):
        leg.capabilities = ["Hangup", *switches]
        told[switches[0]] = re.findall(r'data-monitoring-call="(\w+)">([^<]+)', card(leg))

    assert told == {
        "SwitchToCoach": [("ListenIn", "You are listening in: nobody hears you")],
        "SwitchToListenIn": [("BargeIn", "You have barged in: everyone hears you")],
    }


# --- Through the lead's own Voice API session (the simulator) --------------------------------------


async def _monitoring(simulator: str) -> list[tuple[str, str, str]]:
    state = await control(simulator, "GET", "/control/state")
    return [(m["supervisor"], m["target"], m["mode"]) for m in state["monitoring"]]


@sync_to_async
def _supervisions() -> list[tuple[str, str, str]]:
    return [
        (s.lead.username, s.member.username, s.mode)
        for s in Supervision.objects.select_related("lead", "member")
    ]


@sync_to_async
def _audit(user_id: int) -> list[tuple[str, str, str]]:
    rows = AuditEntry.objects.filter(user_id=user_id).exclude(action__in=["Login"]).order_by("id")
    return [(row.action, row.detail, row.result) for row in rows]


async def _team_at_desks(
    name: str, lead: AgentLogin, members: list[AgentLogin]
) -> tuple[Team, Desk, list[Desk]]:
    """The team ``name`` of ``members`` led by ``lead``; each member, then the lead, at the desk and
    logged in to the contact center. The team, the lead's desk and the members' desks."""
    team = await sync_to_async(make_team)(name, [lead], members)
    desks = [await ready_desk(member) for member in members]
    return team, await ready_desk(lead), desks


async def _set_ready_not_ready_and_logged_out(
    lead: AgentLogin, team: Team, member: AgentLogin, desk: Desk, reason: str, shown: str
) -> None:
    """The lead sets the member Ready, then Not ready with ``reason``, then logs them out; the member's
    page shows each state in turn, Not ready with ``shown`` as its reason."""
    await supervision.set_member_state(lead.user, team.pk, member.pk, "Ready")
    await desk.until(r'id="agent-state"[^>]*data-state="Ready"')
    await supervision.set_member_state(lead.user, team.pk, member.pk, "NotReady", reason)
    await desk.until(rf'id="agent-state"[^>]*data-state="NotReady"[^>]*data-reason="{shown}"')
    await supervision.set_member_state(lead.user, team.pk, member.pk, "Logout")
    await desk.until(r'id="agent-state"[^>]*data-state="LoggedOut"')


@pytest.mark.django_db(transaction=True)
async def test_a_genesys_lead_listens_switches_to_barge_in_and_stops_with_the_board_following(
    simulator: str, agent1: AgentLogin, lead1: AgentLogin, worker: RunningWorker
) -> None:
    team, lead, (agent,) = await _team_at_desks("Sales", lead1, [agent1])
    tab = Desk(lead1, f"/ws/desktop/?team={team.pk}")
    await tab.open()
    await tab.until(r'id="team"')
    call_id = await answered_call(simulator, agent)
    await tab.until(r'data-member="agent1"[^>]*data-activity="call"')

    await supervision.supervise(lead1.user, team.pk, agent1.pk, "ListenIn")
    assert await _monitoring(simulator) == [("lead1", "agent1", "ListenIn")]
    told = rf'<article id="call-{call_id}".*data-supervised="ListenIn"[^>]*>A supervisor is listening'
    await agent.until(told)
    await tab.until(r'data-member="agent1"[^>]*data-monitoring="ListenIn".*data-supervise="SwitchToBargeIn"')
    # The lead's own monitoring call: silent while listening.
    await lead.until(r'<article id="call-[^"]+"[^>]*data-state="Established".*data-muted')

    await supervision.supervise(lead1.user, team.pk, agent1.pk, "SwitchToBargeIn")
    assert await _monitoring(simulator) == [("lead1", "agent1", "BargeIn")]
    await tab.until(r'data-member="agent1"[^>]*data-monitoring="BargeIn"')

    await supervision.supervise(lead1.user, team.pk, agent1.pk, "CancelSupervisorMonitoring")
    assert await _monitoring(simulator) == []
    await agent.until(rf'<article id="call-{call_id}"(?!.*data-supervised)')
    await tab.until(r'data-member="agent1"(?![^>]*data-monitoring)[^>]*>.*data-supervise="ListenIn"')
    assert await _supervisions() == []
    assert await _audit(lead1.user_id) == [
        ("ListenIn", "agent1", "ok"),
        ("SwitchToBargeIn", "agent1", "ok"),
        ("CancelSupervisorMonitoring", "agent1", "ok"),
    ]
    await saved(lambda: live_calls(agent1), {call_id: ("Established", "")})  # the call goes on
    for desk in (agent, lead, tab):
        await desk.close()


@pytest.mark.django_db(transaction=True)
async def test_a_genesys_supervision_ends_with_the_monitored_call(
    simulator: str, agent1: AgentLogin, lead1: AgentLogin, worker: RunningWorker
) -> None:
    team, _, (agent,) = await _team_at_desks("Sales", lead1, [agent1])
    await answered_call(simulator, agent)
    await supervision.supervise(lead1.user, team.pk, agent1.pk, "Coach")
    assert await _monitoring(simulator) == [("lead1", "agent1", "Coach")]

    await control(simulator, "POST", "/control/parties/5000/hangup")

    none: list[tuple[str, str, str]] = []
    await saved(_supervisions, none)
    assert await _monitoring(simulator) == []


@pytest.mark.django_db(transaction=True)
async def test_a_genesys_lead_sets_a_member_not_ready_with_a_reason_then_ready_then_logs_them_out(
    simulator: str, agent1: AgentLogin, lead1: AgentLogin, worker: RunningWorker
) -> None:
    await sync_to_async(NotReadyReason.objects.create)(code="LUNCH", label="Lunch")
    team, _, (agent,) = await _team_at_desks("Sales", lead1, [agent1])

    await _set_ready_not_ready_and_logged_out(lead1, team, agent1, agent, "LUNCH", "LUNCH")

    assert await _audit(lead1.user_id) == [
        ("MemberReady", "agent1", "ok"),
        ("MemberNotReady", "agent1 LUNCH", "ok"),
        ("MemberLogout", "agent1", "ok"),
    ]


@pytest.mark.django_db(transaction=True)
async def test_a_huawei_inspector_listens_switches_to_insert_and_stops_and_the_agent_is_told(
    simulator: str, agent101: AgentLogin, lead101: AgentLogin, worker: RunningWorker
) -> None:
    team, _, (agent,) = await _team_at_desks("Service", lead101, [agent101])
    call_id = await answered_call(simulator, agent)

    await supervision.supervise(lead101.user, team.pk, agent101.pk, "ListenIn")
    assert await _monitoring(simulator) == [("103", "101", "ListenIn")]
    await agent.until(rf'<article id="call-{call_id}".*data-supervised="ListenIn"')
    await supervision.supervise(lead101.user, team.pk, agent101.pk, "SwitchToBargeIn")
    assert await _monitoring(simulator) == [("103", "101", "BargeIn")]
    await agent.until(rf'<article id="call-{call_id}".*data-supervised="BargeIn"')
    assert await _supervisions() == [("103", "101", "BargeIn")]
    await supervision.supervise(lead101.user, team.pk, agent101.pk, "CancelSupervisorMonitoring")

    assert await _monitoring(simulator) == []
    await agent.until(rf'<article id="call-{call_id}"(?!.*data-supervised)')
    assert await _supervisions() == []


@pytest.mark.django_db(transaction=True)
async def test_a_lead_who_has_just_logged_in_may_set_a_member_before_the_database_has_the_login(
    simulator: str, agent1: AgentLogin, lead1: AgentLogin, worker: RunningWorker, monkeypatch: Any
) -> None:
    """The desk pushes first and saves behind: the lead's desk says logged in a moment before the
    database does, and the lead may act on what the desk says."""
    team = await sync_to_async(make_team)("Sales", [lead1], [agent1])
    agent = await ready_desk(agent1)
    write = Writer._write

    async def slow_database(self: Writer, batch: Any) -> None:
        await asyncio.sleep(0.5)
        await write(self, batch)

    monkeypatch.setattr(Writer, "_write", slow_database)
    await ready_desk(lead1)

    await supervision.set_member_state(lead1.user, team.pk, agent1.pk, "Ready")
    await agent.until(r'id="agent-state"[^>]*data-state="Ready"')


@pytest.mark.django_db(transaction=True)
async def test_a_huawei_inspector_sets_a_member_busy_then_idle_then_signs_them_out(
    simulator: str, agent101: AgentLogin, lead101: AgentLogin, worker: RunningWorker
) -> None:
    team, _, (agent,) = await _team_at_desks("Service", lead101, [agent101])

    await _set_ready_not_ready_and_logged_out(lead101, team, agent101, agent, "", "Set by a supervisor")


@pytest.mark.django_db(transaction=True)
async def test_a_lead_monitors_one_call_at_a_time_and_only_what_is_offered(
    simulator: str, agent1: AgentLogin, agent2: AgentLogin, lead1: AgentLogin, worker: RunningWorker
) -> None:
    team, _, (first, second) = await _team_at_desks("Sales", lead1, [agent1, agent2])
    await answered_call(simulator, first)

    with pytest.raises(ActionRefused, match="Switch to barge-in is not available for agent2 now"):
        await supervision.supervise(lead1.user, team.pk, agent2.pk, "SwitchToBargeIn")
    with pytest.raises(ActionRefused, match="Listen is not available for agent2 now"):
        await supervision.supervise(lead1.user, team.pk, agent2.pk, "ListenIn")
    await supervision.supervise(lead1.user, team.pk, agent1.pk, "ListenIn")
    await answered_call(simulator, second, origin="5002")
    with pytest.raises(ActionRefused, match="You are monitoring the call of agent1: stop that first"):
        await supervision.supervise(lead1.user, team.pk, agent2.pk, "ListenIn")

    assert await _monitoring(simulator) == [("lead1", "agent1", "ListenIn")]


@pytest.mark.django_db(transaction=True)
async def test_a_genesys_lead_whose_voice_api_user_may_not_supervise_gets_the_voice_apis_refusal(
    simulator: str, agent1: AgentLogin, agent2: AgentLogin, worker: RunningWorker
) -> None:
    team, _, (agent,) = await _team_at_desks("Sales", agent2, [agent1])
    await answered_call(simulator, agent)
    session = await _session_of(agent2)

    with pytest.raises(ActionRefused) as refused:
        await supervision.supervise(agent2.user, team.pk, agent1.pk, "ListenIn")

    assert refused.value.status == 409
    assert refused.value.message == "User agent2 does not have permission to perform this operation"
    assert await _monitoring(simulator) == [] and await _supervisions() == []
    # A refusal of the operation, not of the session: the lead's session is not signed in again.
    await asyncio.sleep(0.5)
    assert await _session_of(agent2) == session


@sync_to_async
def _session_of(login: AgentLogin) -> str:
    """The credentials of the login's Voice API session, which change when it signs in again."""
    return str(AgentLogin.objects.get(pk=login.pk).voice_session)


@pytest.mark.django_db(transaction=True)
async def test_a_huawei_lead_who_is_no_inspector_gets_the_gateways_refusal(
    simulator: str, agent101: AgentLogin, agent102: AgentLogin, worker: RunningWorker
) -> None:
    team, _, (agent,) = await _team_at_desks("Service", agent102, [agent101])
    await answered_call(simulator, agent)

    with pytest.raises(ActionRefused, match=r"You may not inspect agents: ask an administrator \(900-002\)"):
        await supervision.supervise(agent102.user, team.pk, agent101.pk, "ListenIn")
    with pytest.raises(ActionRefused, match=r"\(900-002\)"):
        await supervision.set_member_state(agent102.user, team.pk, agent101.pk, "Ready")

    assert await _monitoring(simulator) == []


@pytest.mark.django_db
def test_the_admin_warns_about_leads_who_could_not_run_the_team(
    admin_client: Any, agent1: AgentLogin, agent2: AgentLogin, lead1: AgentLogin
) -> None:
    make_team("Existing", [lead1], [])
    no_login = get_user_model().objects.create_user("lead9", password="lead9")
    no_login.user_permissions.set(lead1.user.user_permissions.all())

    response = admin_client.post(
        "/admin/calls/team/add/",
        {"name": "Sales", "members": [agent1.pk], "leads": [lead1.user_id, agent2.user_id, no_login.pk]},
        follow=True,
    )

    messages = [str(message) for message in response.context["messages"]]
    hidden = 'agent2 cannot see this team: an active user with the permission "Can lead a team" can.'
    assert hidden in messages
    assert "lead9 has no enabled agent login: they see the board but cannot act on it." in messages
    assert not any(message.startswith("lead1") for message in messages)
    team = Team.objects.get(name="Sales")
    assert list(team.members.all()) == [agent1]
    assert "Sales" in admin_client.get("/admin/calls/team/").content.decode()


@pytest.mark.django_db(transaction=True)
async def test_a_lead_out_of_the_contact_center_is_told_to_log_in_first(
    agent1: AgentLogin, lead1: AgentLogin
) -> None:
    team = await sync_to_async(make_team)("Sales", [lead1], [agent1])

    for act in (
        supervision.supervise(lead1.user, team.pk, agent1.pk, "ListenIn"),
        supervision.set_member_state(lead1.user, team.pk, agent1.pk, "Ready"),
    ):
        with pytest.raises(ActionRefused, match="Log in to the contact center first") as refused:
            await act
        assert refused.value.status == 409


@pytest.mark.django_db(transaction=True)
async def test_a_genesys_lead_looks_up_a_members_device_again_when_the_remembered_one_is_unknown(
    simulator: str, agent1: AgentLogin, lead1: AgentLogin, worker: RunningWorker
) -> None:
    agent = await ready_desk(agent1)
    await ready_desk(lead1)
    call_id = await answered_call(simulator, agent)
    lead = await sync_to_async(AgentLogin.objects.select_related("server").get)(pk=lead1.pk)
    backend = borrowed(lead)
    backend._users["agent1"] = ("0" * 32, "00000000-0000-0000-0000-000000000000")  # type: ignore[attr-defined]

    await backend.supervise("ListenIn", Member("agent1", "5005"), call_id)

    assert await _monitoring(simulator) == [("lead1", "agent1", "ListenIn")]
    await backend.supervise("CancelSupervisorMonitoring", Member("agent1", "5005"), call_id)
    assert await _monitoring(simulator) == []
