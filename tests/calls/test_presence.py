"""The desk never lies, and never leaves a chair that takes calls with nobody at it.

Through the real worker and simulator: signing out and ending sessions take the agent out of the
contact center, a closed desk and a missed call set the agent Not Ready, refused credentials are
not retried, and the saved state converges on the switch's after a restart, a refusal that
contradicts it, or a change no notification announced.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from calls import actions, live, presence, services, worker
from calls.models import AgentLogin, AuditEntry, LiveCall
from calls.signals import ENDED_BY_ADMIN
from calls.voice import CallChanged, Event
from calls.worker import AgentSession
from tests.desk import (
    Desk,
    RunningWorker,
    answered_call,
    card,
    control,
    desk_client,
    eventually,
    live_calls,
    ready_desk,
    saved,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def brisk_sessions(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sessions look after themselves often and tabs say they are alive often, so a test sees it
    within a second or two."""
    monkeypatch.setattr(worker, "WATCH_SECONDS", 0.2)
    monkeypatch.setattr(presence, "TAB_ALIVE_SECONDS", 0.3)
    settings.VOICE_SESSION_RESYNC_SECONDS = 60


async def agent_on_switch(simulator: str, login: str) -> dict[str, Any]:
    state = await control(simulator, "GET", "/control/state")
    return next(a for a in state["agents"] if a["login"] == login)


@sync_to_async
def audited(action: str) -> list[tuple[str, str]]:
    return list(AuditEntry.objects.filter(action=action).values_list("result", "message"))


async def test_signing_out_of_the_desk_logs_the_agent_out_of_the_contact_center_first(
    simulator: str, agent1: AgentLogin, worker: RunningWorker
) -> None:
    desk = await ready_desk(agent1)
    await actions.agent_operation(agent1.user, "Ready")
    await desk.until(r'id="agent-state"[^>]*data-state="Ready"')

    client = await desk_client(agent1.user)
    await client.post("/accounts/logout/")

    await eventually(lambda: _state_is(simulator, "agent1", "LoggedOut"))
    assert ("ok", "by the desk: You signed out of the desk.") in await audited("Logout")
    await desk.close()


async def _state_is(simulator: str, login: str, state: str) -> bool:
    return bool((await agent_on_switch(simulator, login))["state"] == state)


async def test_with_the_not_ready_setting_an_ended_session_leaves_the_agent_not_ready(
    simulator: str, agent101: AgentLogin, worker: RunningWorker, settings: Any
) -> None:
    settings.SESSION_END_ACTION = "notready"
    desk = await ready_desk(agent101)
    await actions.agent_operation(agent101.user, "Ready")
    await desk.until(r'id="agent-state"[^>]*data-state="Ready"')

    client = await desk_client(agent101.user)
    await client.post("/accounts/logout/")

    await eventually(lambda: _state_is(simulator, "101", "NotReady"))
    assert (await agent_on_switch(simulator, "101"))["loggedIn"] is True
    await desk.close()


async def test_after_an_admins_end_session_the_page_says_what_happened_and_the_agent_is_out(
    simulator: str, agent1: AgentLogin, worker: RunningWorker, admin_client: Client
) -> None:
    desk = await ready_desk(agent1)
    await actions.agent_operation(agent1.user, "Ready")
    await desk.until(r'id="agent-state"[^>]*data-state="Ready"')

    await sync_to_async(admin_client.post)(
        "/admin/calls/agentlogin/", {"action": "end_session", "_selected_action": [agent1.pk]}
    )

    await desk.until(r'id="agent-state"[^>]*data-state="LoggedOut"')
    offline = await desk.until(r'id="connection"[^>]*data-status="offline"')
    assert ENDED_BY_ADMIN in offline
    assert (await agent_on_switch(simulator, "agent1"))["state"] == "LoggedOut"
    await desk.close()


async def test_a_ready_agent_with_every_desk_tab_closed_is_set_not_ready_after_the_grace(
    simulator: str, agent1: AgentLogin, worker: RunningWorker, settings: Any
) -> None:
    settings.DESK_CLOSED_GRACE_SECONDS = 1
    desk = await ready_desk(agent1)
    await actions.agent_operation(agent1.user, "Ready")
    await desk.until(r'id="agent-state"[^>]*data-state="Ready"')
    await asyncio.sleep(1.5)
    assert (await agent_on_switch(simulator, "agent1"))["state"] == "Ready"  # the tab is open

    await desk.close()

    await eventually(lambda: _state_is(simulator, "agent1", "NotReady"))
    assert (await agent_on_switch(simulator, "agent1"))["reason"] == "Desk closed"
    assert ("ok", "by the desk: no desk tab was open") in await audited("NotReady")


async def test_a_tab_the_periodic_check_reports_to_a_session_new_to_it_is_not_sent_the_desk_again(
    simulator: str, agent1: AgentLogin, worker: RunningWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As after a worker restart: the session pushed the whole desk as it started, to every open tab,
    so a tab it hears of only from the periodic check needs nothing more (at 2,000 agents, a second
    render and push of every desk)."""
    desk = await ready_desk(agent1)
    refreshed: list[int] = []
    refresh = AgentSession.refresh

    async def counted(self: AgentSession) -> None:
        refreshed.append(self.login_id)
        await refresh(self)

    def forgetful(self: presence.Presence, tab: str, *, closed: bool) -> bool:
        self.tabs.clear()  # every tab is new to the session
        return opened(self, tab, closed=closed)

    opened = presence.Presence.tab
    monkeypatch.setattr(AgentSession, "refresh", counted)
    monkeypatch.setattr(presence.Presence, "tab", forgetful)

    await asyncio.sleep(3 * presence.TAB_ALIVE_SECONDS)

    assert refreshed == []
    await desk.close()


@pytest.fixture(params=["agent1", "agent101"])
def either_agent(request: pytest.FixtureRequest) -> AgentLogin:
    """The same test for an agent on each vendor."""
    login: AgentLogin = request.getfixturevalue(request.param)
    return login


async def test_a_call_that_rings_out_is_told_and_sets_the_agent_not_ready(
    simulator: str, either_agent: AgentLogin, worker: RunningWorker, settings: Any
) -> None:
    settings.MISSED_CALL_RING_SECONDS = 0.5
    login = either_agent
    await control(simulator, "PUT", "/control/settings", {"ringing_timeout_ms": 1000})
    desk = await ready_desk(login)
    await actions.agent_operation(login.user, "Ready")
    await desk.until(r'id="agent-state"[^>]*data-state="Ready"')

    call_id = (await control(simulator, "POST", "/control/calls", {"from": "5000", "to": login.dn}))["id"]
    await desk.until(card(call_id, "Ringing"))

    toast = await desk.until(r'class="toast sticky"[^>]*data-notify="Missed call"')
    assert "Missed call from 5000" in toast
    await desk.until(r'id="agent-state"[^>]*data-state="NotReady"')
    await saved(lambda: live_calls(login), {})
    await desk.close()


async def test_a_caller_who_gives_up_at_once_is_no_missed_call(
    simulator: str, agent1: AgentLogin, worker: RunningWorker, settings: Any
) -> None:
    settings.MISSED_CALL_RING_SECONDS = 5
    desk = await ready_desk(agent1)
    await actions.agent_operation(agent1.user, "Ready")
    await desk.until(r'id="agent-state"[^>]*data-state="Ready"')
    call_id = (await control(simulator, "POST", "/control/calls", {"from": "5000", "to": "5005"}))["id"]
    await desk.until(card(call_id, "Ringing"))

    await control(simulator, "POST", "/control/parties/5000/hangup")

    await desk.until(rf'id="call-{call_id}"[^>]*hx-swap-oob="delete"')
    await asyncio.sleep(0.5)
    assert not any("Missed call" in html for html in desk.received)
    assert (await agent_on_switch(simulator, "agent1"))["state"] == "Ready"
    await desk.close()


async def test_refused_credentials_are_said_and_not_retried_until_an_admin_changes_them(
    simulator: str, agent1: AgentLogin, worker: RunningWorker
) -> None:
    @sync_to_async
    def set_password(password: str) -> None:
        login = AgentLogin.objects.get(pk=agent1.pk)
        login.password = password
        login.save()

    @sync_to_async
    def bookkeeping() -> tuple[str, str, str]:
        login = AgentLogin.objects.get(pk=agent1.pk)
        return login.connection, login.connection_reason, login.worker

    await set_password("wrong")
    desk = Desk(agent1)
    await desk.open()
    refused = await desk.until(r'id="connection"[^>]*data-status="refused"')
    assert "Your contact-center credentials were refused: ask your administrator." in refused
    await asyncio.sleep(1.5)  # a retry would show as reconnecting, or as a lease held
    assert await bookkeeping() == (
        "refused",
        "Your contact-center credentials were refused: ask your administrator.",
        "",
    )
    assert not any('data-status="reconnecting"' in html for html in desk.received)

    await set_password("agent1")
    await desk.close()
    desk = await ready_desk(agent1)
    await desk.close()


async def test_a_switch_restart_leaves_no_phantom_call_or_state_and_the_agent_can_log_in_again(
    simulator: str, agent1: AgentLogin, worker: RunningWorker
) -> None:
    desk = await ready_desk(agent1)
    call_id = await answered_call(simulator, desk)
    await actions.agent_operation(agent1.user, "Ready")
    await desk.until(r'id="agent-state"[^>]*data-state="Ready"')

    await control(simulator, "POST", "/control/reset")

    await desk.until(r'id="agent-state"[^>]*data-state="LoggedOut"', wait=15)
    await eventually(lambda: _no_live_calls(agent1), wait=5)
    assert call_id not in desk.received[-1]
    await actions.agent_operation(agent1.user, "Login")
    await desk.until(r'id="agent-state"[^>]*data-state="NotReady"')
    await desk.close()


async def _no_live_calls(login: AgentLogin) -> bool:
    return await live_calls(login) == {}


@sync_to_async
def phantom(login: AgentLogin, call_id: str) -> None:
    """A call the desk believes in and the switch never had: what a lost notification leaves."""
    from django.utils import timezone

    LiveCall.objects.create(
        login=login,
        call_id=call_id,
        state="Established",
        call_type="Inbound",
        participants=["5000"],
        capabilities=["Hold", "Hangup"],
        started_at=timezone.now(),
    )


async def test_a_refusal_that_contradicts_the_saved_state_resyncs_the_agent(
    simulator: str, agent1: AgentLogin, worker: RunningWorker
) -> None:
    desk = await ready_desk(agent1)
    await phantom(agent1, "PHANTOM1")

    with pytest.raises(actions.ActionRefused):
        await actions.call_operation(agent1.user, "PHANTOM1", "Hold", {})

    await desk.until(r'<section id="calls"[^>]*hx-swap-oob="innerHTML">\s*</section>')
    await saved(lambda: live_calls(agent1), {})
    await desk.close()


async def test_a_change_no_notification_announced_is_repaired_by_the_periodic_reconciliation(
    simulator: str,
    agent101: AgentLogin,
    worker: RunningWorker,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.VOICE_SESSION_RESYNC_SECONDS = 1
    desk = await ready_desk(agent101)
    call_id = await answered_call(simulator, desk)
    assert await live_calls(agent101) == {call_id: ("Established", "")}
    hear = AgentSession.apply

    async def deaf(session: AgentSession, event: Event) -> None:
        if not isinstance(event, CallChanged):  # call notifications are lost on the way
            await hear(session, event)

    monkeypatch.setattr(AgentSession, "apply", deaf)
    await control(simulator, "POST", "/control/parties/5000/hangup")

    await desk.until(r'<section id="calls"[^>]*hx-swap-oob="innerHTML">\s*</section>', wait=5)
    await saved(lambda: live_calls(agent101), {})
    await desk.close()


async def test_a_periodic_resync_that_finds_the_desk_as_the_switch_has_it_pushes_and_saves_nothing(
    simulator: str, agent1: AgentLogin, worker: RunningWorker, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.VOICE_SESSION_RESYNC_SECONDS = 0.2
    desk = await ready_desk(agent1)
    call_id = await answered_call(simulator, desk)
    rendered: list[str] = []
    saves: list[int] = []
    resynced, save = live.Desk.resynced, services.save_calls

    def counted_resynced(held: live.Desk, *args: Any, **kwargs: Any) -> str:
        rendered.append(resynced(held, *args, **kwargs))
        return rendered[-1]

    def counted_save(*args: Any, **kwargs: Any) -> None:
        saves.append(1)
        save(*args, **kwargs)

    monkeypatch.setattr(live.Desk, "resynced", counted_resynced)
    monkeypatch.setattr(services, "save_calls", counted_save)

    await asyncio.sleep(1.5)

    assert len(rendered) >= 3
    assert rendered == [""] * len(rendered)
    assert saves == []
    assert await live_calls(agent1) == {call_id: ("Established", "")}
    await desk.close()


async def test_after_call_work_starts_when_the_last_call_ends_and_ends_at_the_limit(
    simulator: str, agent1: AgentLogin, worker: RunningWorker
) -> None:
    @sync_to_async
    def wrap_up_after_calls(seconds: int) -> None:
        agent1.server.wrap_up_seconds = seconds
        agent1.server.save()

    await wrap_up_after_calls(1)
    desk = await ready_desk(agent1)
    await actions.agent_operation(agent1.user, "Ready")
    await desk.until(r'id="agent-state"[^>]*data-state="Ready"')
    await answered_call(simulator, desk)

    await control(simulator, "POST", "/control/parties/5000/hangup")

    await desk.until(r'id="agent-state"[^>]*data-state="AfterCallWork"')
    assert (await agent_on_switch(simulator, "agent1"))["state"] == "AfterCallWork"
    await desk.until(r'id="agent-state"[^>]*data-state="Ready"', wait=5)
    assert (await agent_on_switch(simulator, "agent1"))["state"] == "Ready"
    await desk.close()


async def test_ending_a_session_logs_no_error(
    simulator: str, agent1: AgentLogin, worker: RunningWorker, caplog: pytest.LogCaptureFixture
) -> None:
    desk = await ready_desk(agent1)
    caplog.set_level(logging.WARNING)

    client = await desk_client(agent1.user)
    await client.post("/accounts/logout/")
    await eventually(lambda: _state_is(simulator, "agent1", "LoggedOut"))
    await desk.until(r'id="connection"[^>]*data-status="offline"')
    await asyncio.sleep(0.5)

    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    await desk.close()
