"""No chair that takes calls is left empty, and no call rings out unseen: in a real browser."""

from __future__ import annotations

import time
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from .conftest import World, card, sign_in

pytestmark = pytest.mark.browser


def agent_on_switch(world: World, login: str, *, until: dict[str, Any], wait: float = 15.0) -> dict[str, Any]:
    """The switch's view of the agent, once it shows ``until`` (or the test fails)."""
    deadline = time.monotonic() + wait
    while True:
        agent = next(a for a in world.client.get("/state").json()["agents"] if a["login"] == login)
        if all(agent.get(key) == value for key, value in until.items()):
            return agent
        assert time.monotonic() < deadline, f"the switch still has {agent}"
        time.sleep(0.2)


def test_signing_out_of_the_desk_logs_the_agent_out_of_the_contact_center(
    page: Page, desk_url: str, world: World
) -> None:
    sign_in(page, desk_url, "agent2")
    page.locator("[data-agent-operation=Ready]").click()
    expect(page.locator("#agent-state")).to_have_attribute("data-state", "Ready")

    page.get_by_role("button", name="Sign out").click()

    expect(page.get_by_label("Username")).to_be_visible()
    agent_on_switch(world, "agent2", until={"state": "LoggedOut", "loggedIn": False})


def test_closing_every_tab_of_a_ready_agent_sets_it_not_ready(
    browser: Browser, desk_url: str, world: World
) -> None:
    """Two tabs: closing one changes nothing; closing the last sets the agent Not Ready."""
    context = browser.new_context()
    first, second = context.new_page(), context.new_page()
    sign_in(first, desk_url, "agent4")
    second.goto(f"{desk_url}/")
    expect(second.locator("#connection")).to_have_attribute("data-status", "connected")
    first.locator("[data-agent-operation=Ready]").click()
    expect(second.locator("#agent-state")).to_have_attribute("data-state", "Ready")

    first.close()
    time.sleep(4)  # longer than the desk's grace (3 s here)
    assert agent_on_switch(world, "agent4", until={"state": "Ready"})["state"] == "Ready"

    second.close()
    agent_on_switch(world, "agent4", until={"state": "NotReady", "reason": "Desk closed"})
    context.close()


def test_a_call_that_rings_out_stays_on_screen_as_a_missed_call_and_in_history(
    page: Page, desk_url: str, world: World
) -> None:
    world.settings(ringing_timeout_ms=2000)
    sign_in(page, desk_url, "agent1")
    page.locator("[data-agent-operation=Ready]").click()
    expect(page.locator("#agent-state")).to_have_attribute("data-state", "Ready")

    call_id = world.call("5000", "5005")
    expect(card(page, call_id)).to_have_attribute("data-state", "Ringing")
    expect(card(page, call_id)).to_have_count(0)

    toast = page.locator("#toasts [role=alert]", has_text="Missed call from 5000")
    expect(toast).to_be_visible()
    expect(page.locator("#agent-state")).to_have_attribute("data-state", "NotReady")
    expect(page.locator("#agent-state")).to_have_attribute("data-reason", "Missed call")
    page.wait_for_timeout(9000)  # longer than an ordinary toast lasts
    expect(toast).to_be_visible()
    toast.get_by_role("button", name="Dismiss this message").click()
    expect(toast).to_have_count(0)

    page.get_by_role("link", name="History").click()
    expect(page.locator(f"#history [data-call-id='{call_id}']")).to_have_attribute("data-outcome", "missed")
