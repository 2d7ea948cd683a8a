"""The screenshots in docs/, taken from the real desk: run with SWITCHBOARD_SCREENSHOTS=1.

Off by default, so an ordinary test run never rewrites committed images.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from .conftest import World, call_operation, card, consult_of, only_card, sign_in

DOCS = Path(__file__).resolve().parents[2] / "docs"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.environ.get("SWITCHBOARD_SCREENSHOTS"), reason="set SWITCHBOARD_SCREENSHOTS=1"),
]


def shoot(page: Page, name: str, *, full_page: bool = False) -> None:
    page.mouse.move(0, 0)
    page.evaluate("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
    page.screenshot(path=DOCS / name, full_page=full_page)


def test_screenshots_of_the_main_states(page: Page, desk_url: str, world: World) -> None:
    DOCS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 1024, "height": 760})
    sign_in(page, desk_url, "agent1")
    page.locator("[data-agent-operation=Ready]").click()
    expect(page.locator("#agent-state")).to_have_attribute("data-state", "Ready")
    shoot(page, "desk-idle.png")

    call_id = world.call("4155550123", "5005", {"Customer": "ACME Corp", "Reason": "Billing question"})
    expect(card(page, call_id)).to_have_attribute("data-state", "Ringing")
    shoot(page, "desk-ringing.png")

    card(page, call_id).locator("[data-operation=Answer]").click()
    expect(card(page, call_id)).to_have_attribute("data-state", "Established")
    call_operation(card(page, call_id), "InitiateTransfer", "5001")
    expect(consult_of(page, call_id)).to_have_attribute("data-state", "Dialing")
    world.answer("5001")
    expect(consult_of(page, call_id)).to_have_attribute("data-state", "Established")
    consult_of(page, call_id).locator("summary", has_text="Transfer / Conference").click()
    shoot(page, "desk-consult.png")

    page.set_viewport_size({"width": 375, "height": 800})
    consult_of(page, call_id).locator("summary", has_text="Transfer / Conference").click()  # closes it
    shoot(page, "desk-phone.png", full_page=True)


def test_screenshot_of_a_conference(page: Page, desk_url: str, world: World) -> None:
    DOCS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 1024, "height": 760})
    world.settings(answer_delay_ms=0)
    sign_in(page, desk_url, "agent4")
    page.locator("form#dial input[name=destination]").fill("15001")
    page.locator("form#dial button[type=submit]").click()
    call = only_card(page)
    expect(call).to_have_attribute("data-state", "Established")
    call_operation(call, "SingleStepConference", "15002")
    expect(call.locator("[data-participant='15002']")).to_be_visible()
    call_operation(call, "SingleStepConference", "4155550199")
    expect(call.locator("[data-participant='4155550199']")).to_be_visible()
    call.locator("summary", has_text="Transfer / Conference").click()
    shoot(page, "desk-conference.png")
