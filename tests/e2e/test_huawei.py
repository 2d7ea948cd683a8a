"""The Huawei AgentGateway in a real browser: seed 004 by clicks, and a call passed between vendors.

The same cards and buttons as on Genesys: the desk's Huawei backend derives them from its events.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .conftest import Desks, World, call_operation, card, consult_of

pytestmark = pytest.mark.browser


def test_seed_004_three_parties_from_a_held_call_and_a_dialled_one(desks: Desks, world: World) -> None:
    """agent101 (Huawei agent 101 on 6101) answers 5000, holds, dials 5003 and completes the
    conference (confjoin): one card lists both parties; hanging up leaves the other two talking."""
    page = desks("agent101")
    first_id = world.call("5000", "6101")
    first = card(page, first_id)
    expect(first).to_have_attribute("data-state", "Ringing")
    expect(first.locator("[data-operation]")).to_have_count(1)
    first.locator("[data-operation=Answer]").click()
    expect(first).to_have_attribute("data-state", "Established")
    first.locator("[data-operation=Hold]").click()
    expect(first).to_have_attribute("data-state", "Held")

    page.locator("form#dial input[name=destination]").fill("5003")
    page.locator("form#dial button[type=submit]").click()
    second = page.locator("#calls .call-card").filter(has=page.locator("[data-participant='5003']"))
    expect(second).to_have_attribute("data-state", "Dialing")
    world.answer("5003")
    expect(second).to_have_attribute("data-state", "Established")

    second.locator("[data-operation=CompleteConference]").click()
    conference = page.locator("#calls .call-card")
    expect(conference).to_have_count(1)
    expect(conference.locator("[data-participant='5000']")).to_be_visible()
    expect(conference.locator("[data-participant='5003']")).to_be_visible()

    conference.locator("[data-operation=Hangup]").click()
    expect(page.locator("#calls .call-card")).to_have_count(0)
    parties = [sorted(p["number"] for p in c["parties"]) for c in world.client.get("/state").json()["calls"]]
    assert parties == [["5000", "5003"]]


def test_a_genesys_agent_transfers_to_a_huawei_agent_who_conferences_a_third_party(
    desks: Desks, world: World
) -> None:
    genesys = desks("agent1")
    huawei = desks("agent102")

    customer_id = world.call("5000", "5005")
    customer = card(genesys, customer_id)
    customer.locator("[data-operation=Answer]").click()
    expect(customer).to_have_attribute("data-state", "Established")
    call_operation(customer, "InitiateTransfer", "6102")
    offered = huawei.locator("#calls .call-card")
    expect(offered).to_have_attribute("data-state", "Ringing")
    offered.locator("[data-operation=Answer]").click()
    consult = consult_of(genesys, customer_id)
    expect(consult).to_have_attribute("data-state", "Established")
    consult.locator("[data-operation=CompleteTransfer]").click()
    expect(genesys.locator("#calls .call-card")).to_have_count(0)
    expect(offered.locator("[data-participant='5000']")).to_be_visible()

    offered_id = (offered.get_attribute("id") or "").removeprefix("call-")
    call_operation(offered, "InitiateConference", "5003")
    third = consult_of(huawei, offered_id)
    expect(third).to_have_attribute("data-state", "Dialing")
    world.answer("5003")
    expect(third).to_have_attribute("data-state", "Established")
    third.locator("[data-operation=CompleteConference]").click()

    conference = huawei.locator("#calls .call-card")
    expect(conference).to_have_count(1)
    expect(conference.locator("[data-participant='5000']")).to_be_visible()
    expect(conference.locator("[data-participant='5003']")).to_be_visible()
    genesys.context.close()
    huawei.context.close()
