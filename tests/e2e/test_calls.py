"""The seed scenarios, played by an agent in a real browser: transfer, swap, conferences."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from .conftest import World, call_operation, card, consult_of, only_card, sign_in

pytestmark = pytest.mark.browser


def test_an_inbound_call_is_answered_and_transferred_after_a_consultation(
    page: Page, desk_url: str, world: World
) -> None:
    """Seed 002: 5000 calls agent1 (5005), who consults 5001 and completes the transfer."""
    sign_in(page, desk_url, "agent1")
    call_id = world.call("5000", "5005")
    customer = card(page, call_id)
    expect(customer).to_have_attribute("data-state", "Ringing")
    expect(customer).to_have_attribute("data-call-type", "Internal")
    customer.locator("[data-operation=Answer]").click()
    expect(customer).to_have_attribute("data-state", "Established")

    call_operation(customer, "InitiateTransfer", "5001")
    expect(customer).to_have_attribute("data-state", "Held")
    consult = consult_of(page, call_id)
    expect(consult).to_have_attribute("data-call-type", "Consult")
    expect(consult).to_contain_text("Consult for 5000")
    world.answer("5001")
    expect(consult).to_have_attribute("data-state", "Established")

    consult.locator("[data-operation=CompleteTransfer]").click()
    expect(page.locator("#calls .call-card")).to_have_count(0)

    page.get_by_role("link", name="History").click()
    expect(page.locator(f"#history tr[data-call-id='{call_id}']")).to_contain_text("5000")


def test_an_agent_holds_dials_a_second_call_and_swaps_between_them(
    page: Page, desk_url: str, world: World
) -> None:
    """Seed 003: answer, hold, dial 5001 from the dial pad, swap there and back, hang up both."""
    sign_in(page, desk_url, "agent1")
    first_id = world.call("5000", "5005")
    first = card(page, first_id)
    first.locator("[data-operation=Answer]").click()
    expect(first).to_have_attribute("data-state", "Established")
    first.locator("[data-operation=Hold]").click()
    expect(first).to_have_attribute("data-state", "Held")

    page.locator("form#dial input[name=destination]").fill("5001")
    page.locator("form#dial button[type=submit]").click()
    second = page.locator("#calls .call-card").filter(has=page.locator("[data-participant='5001']"))
    expect(second).to_have_attribute("data-state", "Dialing")
    expect(page.locator("form#dial input[name=destination]")).to_have_value("")
    world.answer("5001")
    expect(second).to_have_attribute("data-state", "Established")

    second.locator("[data-operation=SwapCalls]").click()
    expect(first).to_have_attribute("data-state", "Established")
    expect(second).to_have_attribute("data-state", "Held")
    first.locator("[data-operation=SwapCalls]").click()
    expect(first).to_have_attribute("data-state", "Held")
    expect(second).to_have_attribute("data-state", "Established")

    second.locator("[data-operation=Hangup]").click()
    expect(second).to_have_count(0)
    first.locator("[data-operation=Hangup]").click()
    expect(page.locator("#calls .call-card")).to_have_count(0)


def test_a_consult_conference_lists_every_party_and_one_can_be_removed(
    page: Page, desk_url: str, world: World
) -> None:
    """Seed 000: agent4 (15000) dials 15001, consults 15002, completes the conference."""
    sign_in(page, desk_url, "agent4")
    page.locator("form#dial input[name=destination]").fill("15001")
    page.locator("form#dial button[type=submit]").click()
    call = only_card(page)
    expect(call).to_have_attribute("data-state", "Dialing")
    world.answer("15001")
    expect(call).to_have_attribute("data-state", "Established")
    call_id = (call.get_attribute("id") or "").removeprefix("call-")

    call_operation(card(page, call_id), "InitiateConference", "15002")
    consult = consult_of(page, call_id)
    expect(consult).to_have_attribute("data-state", "Dialing")
    world.answer("15002")
    expect(consult).to_have_attribute("data-state", "Established")
    consult.locator("[data-operation=CompleteConference]").click()

    expect(consult).to_have_count(0)
    conference = card(page, call_id)
    expect(conference).to_have_attribute("data-state", "Established")
    expect(conference.locator("[data-participant='15001']")).to_be_visible()
    expect(conference.locator("[data-participant='15002']")).to_be_visible()

    conference.locator("[data-participant='15001']").get_by_role("button", name="Remove 15001").click()
    expect(conference.locator("[data-participant='15001']")).to_have_count(0)
    expect(conference.locator("[data-participant='15002']")).to_be_visible()


def test_a_single_step_conference_keeps_the_attached_data(page: Page, desk_url: str, world: World) -> None:
    """Seed 001: agent4 attaches data to the call, then adds 15002 in one step."""
    world.settings(answer_delay_ms=0)
    sign_in(page, desk_url, "agent4")
    page.locator("form#dial input[name=destination]").fill("15001")
    page.locator("form#dial button[type=submit]").click()
    call = only_card(page)
    expect(call).to_have_attribute("data-state", "Established")

    call.locator("summary", has_text="Edit attached data").click()
    attach = call.locator("form[data-operation=AttachUserData]")
    attach.locator("input[name=key]").fill("AccountNumber")
    attach.locator("input[name=value]").fill("A-1234")
    attach.locator("button[type=submit]").click()
    expect(call.locator("[data-user-data-key=AccountNumber]")).to_contain_text("A-1234")

    call_operation(call, "SingleStepConference", "15002")
    expect(call.locator("[data-participant='15002']")).to_be_visible()
    expect(call.locator("[data-participant='15001']")).to_be_visible()
    expect(call.locator("[data-user-data-key=AccountNumber]")).to_contain_text("A-1234")
    expect(call.locator("[data-user-data-key=FirstConferencePartyDN]")).to_contain_text("15000")
