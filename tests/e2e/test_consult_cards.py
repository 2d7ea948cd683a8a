"""Consult cards: one whose parent is not on the page is still shown, and one whose parent is sits
right under it."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect

from .conftest import World, call_operation, card, consult_of, sign_in

pytestmark = pytest.mark.browser


def test_an_agent_conferenced_into_a_call_it_transferred_earlier_sees_its_card(
    browser: Browser, desk_url: str, world: World
) -> None:
    """agent2 transfers a customer to agent1; later agent1 consults agent2 and conferences it in.
    agent2's card for the conference must show, as an ordinary call: the switch no longer links it
    to the customer call agent2 once had, and a card is never dropped for want of its parent."""
    agent1 = browser.new_context().new_page()
    agent2 = browser.new_context().new_page()
    sign_in(agent1, desk_url, "agent1")
    sign_in(agent2, desk_url, "agent2")

    customer_id = world.call("5000", "5001")
    customer = card(agent2, customer_id)
    customer.locator("[data-operation=Answer]").click()
    expect(customer).to_have_attribute("data-state", "Established")
    call_operation(customer, "InitiateTransfer", "5005")
    transfer = consult_of(agent2, customer_id)
    expect(transfer).to_have_attribute("data-state", "Dialing")
    transfer_id = (transfer.get_attribute("id") or "").removeprefix("call-")
    card(agent1, transfer_id).locator("[data-operation=Answer]").click()
    expect(transfer).to_have_attribute("data-state", "Established")
    transfer.locator("[data-operation=CompleteTransfer]").click()
    expect(agent2.locator("#calls .call-card")).to_have_count(0)
    on_agent1 = card(agent1, transfer_id)
    expect(on_agent1.locator("[data-participant='5000']")).to_be_visible()

    call_operation(on_agent1, "InitiateConference", "5001")
    consult = consult_of(agent1, transfer_id)
    expect(consult).to_have_attribute("data-state", "Dialing")
    consulted = agent2.locator("#calls .call-card")
    expect(consulted).to_have_count(1)
    consulted.locator("[data-operation=Answer]").click()
    expect(consult).to_have_attribute("data-state", "Established")
    consult.locator("[data-operation=CompleteConference]").click()

    conference = card(agent2, transfer_id)
    expect(conference).to_be_visible()
    expect(conference).to_have_attribute("data-state", "Established")
    expect(conference.locator("[data-participant='5000']")).to_be_visible()
    expect(conference.locator("[data-participant='5005']")).to_be_visible()
    assert conference.get_attribute("data-parent") is None
    expect(conference).not_to_contain_text("Consult for")
    expect(agent2.locator(".no-calls")).to_be_hidden()

    agent2.reload()
    expect(card(agent2, transfer_id)).to_be_visible()
    expect(card(agent2, transfer_id)).not_to_contain_text("Consult for")


def test_a_consult_card_sits_under_its_parent_with_another_call_waiting(
    page: Page, desk_url: str, world: World
) -> None:
    sign_in(page, desk_url, "agent1")
    first_id = world.call("5000", "5005")
    first = card(page, first_id)
    first.locator("[data-operation=Answer]").click()
    expect(first).to_have_attribute("data-state", "Established")
    waiting_id = world.call("5002", "5005")
    expect(card(page, waiting_id)).to_have_attribute("data-state", "Ringing")

    call_operation(first, "InitiateTransfer", "5001")
    consult = consult_of(page, first_id)
    expect(consult).to_have_attribute("data-state", "Dialing")
    cards = page.locator("#calls .call-card")
    expect(cards).to_have_count(3)
    expect(cards.nth(0)).to_have_attribute("id", f"call-{first_id}")
    expect(cards.nth(1)).to_have_attribute("data-parent", first_id)
    expect(cards.nth(2)).to_have_attribute("id", f"call-{waiting_id}")
