"""Call waiting at the desk: a second call answered while talking holds the first, and Swap works."""

from __future__ import annotations

import pytest
from playwright.sync_api import Locator, Page, expect

from .conftest import World, card, sign_in

pytestmark = pytest.mark.browser


def leg_states(world: World, number: str) -> dict[str, str]:
    """What the switch itself says: call id -> the state of ``number``'s leg on it."""
    calls = world.client.get("/state").json()["calls"]
    return {c["id"]: leg["state"] for c in calls for leg in c["parties"] if leg["number"] == number}


def answer_a_waiting_call_and_swap(page: Page, world: World, dn: str) -> Locator:
    """Two calls ring the agent in turn and are answered; Swap goes back and forth. Returns the
    first call's card, established again after the second call ends."""
    first_id = world.call("5000", dn)
    first = card(page, first_id)
    first.locator("[data-operation=Answer]").click()
    expect(first).to_have_attribute("data-state", "Established")

    second_id = world.call("5002", dn)
    second = card(page, second_id)
    expect(second).to_have_attribute("data-state", "Ringing")
    expect(first).to_have_attribute("data-state", "Established")  # still talking while it rings
    second.locator("[data-operation=Answer]").click()

    expect(first).to_have_attribute("data-state", "Held")
    expect(second).to_have_attribute("data-state", "Established")
    expect(page.locator('#calls .call-card[data-state="Established"]')).to_have_count(1)
    assert leg_states(world, dn) == {first_id: "Held", second_id: "Established"}

    second.locator("[data-operation=SwapCalls]").click()
    expect(first).to_have_attribute("data-state", "Established")
    expect(second).to_have_attribute("data-state", "Held")
    assert leg_states(world, dn) == {first_id: "Established", second_id: "Held"}

    first.locator("[data-operation=SwapCalls]").click()
    expect(first).to_have_attribute("data-state", "Held")
    expect(second).to_have_attribute("data-state", "Established")

    second.locator("[data-operation=Hangup]").click()
    expect(second).to_have_count(0)
    expect(first).to_have_attribute("data-state", "Held")
    first.locator("[data-operation=Retrieve]").click()
    expect(first).to_have_attribute("data-state", "Established")
    return first


def test_a_genesys_agent_answers_a_waiting_call_and_swaps(page: Page, desk_url: str, world: World) -> None:
    sign_in(page, desk_url, "agent1")
    answer_a_waiting_call_and_swap(page, world, "5005")


def test_a_huawei_agent_answers_a_waiting_call_and_swaps(page: Page, desk_url: str, world: World) -> None:
    sign_in(page, desk_url, "agent101")
    first = answer_a_waiting_call_and_swap(page, world, "6101")

    # A switch reset does not sign a Huawei session out: leave agent101 logged out for the next test.
    first.locator("[data-operation=Hangup]").click()
    expect(first).to_have_count(0)
    page.locator("[data-agent-operation=Logout]").click()
    expect(page.locator("#agent-state")).to_have_attribute("data-state", "LoggedOut")
