"""DTMF for an IVR, and where the keyboard focus goes: each keypad key is sent as it is pressed, the
pad stays open and shows what was sent; focus never falls to the page body when a card goes away."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Locator, Page, expect

from .conftest import World, call_operation, card, sign_in

pytestmark = pytest.mark.browser


def dtmf_heard(world: World, call_id: str, count: int, timeout: float = 10) -> list[str]:
    """The SendDtmf requests the switch received on the call, in order, once there are ``count``."""
    deadline = time.monotonic() + timeout
    while True:
        calls = {c["id"]: c for c in world.client.get("/state").json()["calls"]}
        heard = list(calls[call_id]["dtmf"]) if call_id in calls else []
        if len(heard) >= count or time.monotonic() > deadline:
            return heard
        time.sleep(0.1)


def answered(page: Page, world: World, origin: str = "5000") -> Locator:
    call_id = world.call(origin, "5005")
    call = card(page, call_id)
    call.locator("[data-operation=Answer]").click()
    expect(call).to_have_attribute("data-state", "Established")
    return call


def body_has_focus(page: Page) -> bool:
    return bool(page.evaluate("document.activeElement === document.body || !document.activeElement"))


def test_each_key_is_sent_as_it_is_pressed_and_the_pad_stays_open(
    page: Page, desk_url: str, world: World
) -> None:
    sign_in(page, desk_url, "agent1")
    call = answered(page, world)
    call_id = (call.get_attribute("id") or "").removeprefix("call-")
    call.locator("details[data-disclosure=dtmf] > summary").click()
    keypad = call.locator("form[data-operation=SendDtmf] .keypad")
    sent = call.locator("[data-dtmf-sent-digits]")

    for key in ("1", "2", "#"):
        keypad.locator(f"[data-key='{key}']").click()

    expect(sent).to_have_text("12#")
    assert dtmf_heard(world, call_id, 3) == ["1", "2", "#"]
    expect(call.locator("details[data-disclosure=dtmf]")).to_have_attribute("open", "")
    expect(keypad.locator("[data-key='#']")).to_be_focused()
    expect(page.locator("#toasts [role=alert]")).to_have_count(0)

    # The same key twice is two digits for the IVR, not a double click.
    keypad.locator("[data-key='0']").click()
    keypad.locator("[data-key='0']").click()
    expect(sent).to_have_text("12#00")
    assert dtmf_heard(world, call_id, 5) == ["1", "2", "#", "0", "0"]

    # Typing a string of digits and Enter still sends them, in one go; the pad stays ready for more.
    digits = call.locator("form[data-operation=SendDtmf] input[name=digits]")
    digits.fill("34*")
    digits.press("Enter")
    expect(sent).to_have_text("12#0034*")
    assert dtmf_heard(world, call_id, 6)[-1] == "34*"
    expect(digits).to_have_value("")
    expect(digits).to_be_focused()
    expect(call.locator("details[data-disclosure=dtmf]")).to_have_attribute("open", "")
    expect(page.locator("#toasts [role=alert]")).to_have_count(0)


def test_hanging_up_the_only_call_moves_focus_to_the_dial_pad(
    page: Page, desk_url: str, world: World
) -> None:
    sign_in(page, desk_url, "agent1")
    call = answered(page, world)
    call.locator("[data-operation=Hangup]").click()
    expect(call).to_have_count(0)
    expect(page.locator("#dial-destination")).to_be_focused()
    assert not body_has_focus(page)


def test_hanging_up_one_of_two_calls_moves_focus_to_the_other_card(
    page: Page, desk_url: str, world: World
) -> None:
    sign_in(page, desk_url, "agent1")
    first = answered(page, world)
    second = answered(page, world, origin="5002")
    expect(first).to_have_attribute("data-state", "Held")

    second.locator("[data-operation=Hangup]").click()
    expect(second).to_have_count(0)
    expect(first.locator("[data-operation=Retrieve]")).to_be_focused()
    assert not body_has_focus(page)


def test_a_refused_form_and_a_dismissed_toast_leave_the_focus_on_a_control(
    page: Page, desk_url: str, world: World
) -> None:
    sign_in(page, desk_url, "agent1")
    call = answered(page, world)
    call.locator("details[data-disclosure=transfer] > summary").click()
    transfer = call.locator("form[data-operation=InitiateTransfer]")
    transfer.locator("input[name=destination]").fill("5005")  # the switch will not consult the agent's own DN
    send = transfer.locator("button[type=submit]")
    send.click()

    toast = page.locator("#toasts [role=alert]")
    expect(toast).to_contain_text("An agent cannot consult its own DN")
    expect(send).to_be_focused()
    toast.get_by_role("button", name="Dismiss this message").click()
    expect(toast).to_have_count(0)
    expect(call.locator(".call-actions button:focus")).to_have_count(1)
    assert not body_has_focus(page)


def test_sending_a_transfer_form_leaves_the_focus_on_the_card(
    page: Page, desk_url: str, world: World
) -> None:
    sign_in(page, desk_url, "agent1")
    call = answered(page, world)
    call_operation(call, "InitiateTransfer", "5001")
    expect(call).to_have_attribute("data-state", "Held")
    expect(page.locator("#calls .call-card[data-parent]")).to_have_attribute("data-state", "Dialing")
    expect(call.locator("button:focus")).to_have_count(1)
    assert not body_has_focus(page)
