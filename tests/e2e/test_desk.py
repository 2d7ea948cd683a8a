"""The desk around the calls: ringing, shortcuts, refusals, several tabs, reloads, the link banner,
agent states with reasons, and a narrow window."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import BrowserContext, Page, WebSocketRoute, expect

from .conftest import World, call_operation, card, consult_of, sign_in

pytestmark = pytest.mark.browser


def test_a_ringing_call_takes_focus_and_shortcuts_work(page: Page, desk_url: str, world: World) -> None:
    sign_in(page, desk_url, "agent1")
    call_id = world.call("5000", "5005")
    ringing = card(page, call_id)
    expect(ringing.locator("[data-operation=Answer]")).to_be_focused()
    expect(page).to_have_title("☎ Call from 5000")
    expect(page.locator("#announcer")).to_have_text("Call from 5000 ringing")

    page.keyboard.press("?")
    overlay = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(overlay).to_be_visible()
    expect(overlay).to_contain_text("Answer")
    page.keyboard.press("Escape")
    expect(overlay).to_be_hidden()

    page.keyboard.press("a")
    expect(ringing).to_have_attribute("data-state", "Established")
    expect(page).not_to_have_title("☎ Call from 5000")

    page.keyboard.press("t")
    destination = ringing.locator("form[data-operation=InitiateTransfer] input[name=destination]")
    expect(destination).to_be_focused()
    page.keyboard.type("h")  # typing in a field is not a shortcut: the call stays up
    expect(destination).to_have_value("h")
    destination.fill("")
    page.locator("body").click(position={"x": 5, "y": 300})

    page.keyboard.press("o")
    expect(ringing).to_have_attribute("data-state", "Held")
    page.keyboard.press("o")
    expect(ringing).to_have_attribute("data-state", "Established")
    page.keyboard.press("h")
    expect(ringing).to_have_count(0)
    expect(page.locator("#announcer")).to_have_text("Call with 5000 ended")

    page.keyboard.press("r")
    expect(page.locator("#agent-state")).to_have_attribute("data-state", "Ready")
    page.keyboard.press("n")
    expect(page.locator("#agent-state")).to_have_attribute("data-state", "NotReady")


# Stand-ins for what a headless browser cannot show: a hidden tab, notifications, a speaker.
NOTIFICATIONS_AND_SOUND = """
window.seen = {asked: 0, notes: [], played: 0, closed: 0, hidden: false};
window.Notification = class {
  static permission = "default";
  static requestPermission() {
    window.seen.asked += 1;
    Notification.permission = "granted";
    return Promise.resolve("granted");
  }
  constructor(title, options) { window.seen.notes.push(title + ": " + options.body); }
  close() { window.seen.closed += 1; }
};
Object.defineProperty(Document.prototype, "hidden", {get() { return window.seen.hidden; }});
HTMLMediaElement.prototype.play = function () { window.seen.played += 1; return Promise.resolve(); };
"""


def test_a_call_rings_and_notifies_while_the_tab_is_hidden(page: Page, desk_url: str, world: World) -> None:
    page.add_init_script(NOTIFICATIONS_AND_SOUND)
    sign_in(page, desk_url, "agent1")
    assert page.evaluate("window.seen.asked") == 1
    page.locator("[data-agent-operation=Logout]").click()
    page.locator("[data-agent-operation=Login]").click()
    expect(page.locator("#agent-state")).to_have_attribute("data-state", "NotReady")
    assert page.evaluate("window.seen.asked") == 1, "asked for notifications twice"

    page.evaluate("window.seen.hidden = true")
    call_id = world.call("5000", "5005")
    expect(card(page, call_id)).to_have_attribute("data-state", "Ringing")
    assert page.evaluate("window.seen.notes") == ["Incoming call: Call from 5000"]
    assert page.evaluate("window.seen.played") == 1

    page.evaluate("window.seen.hidden = false")
    page.keyboard.press("a")
    expect(card(page, call_id)).to_have_attribute("data-state", "Established")
    assert page.evaluate("window.seen.closed") == 1, "the notification outlived the ringing"


def test_a_click_shows_a_pending_state_until_the_push_arrives(
    page: Page, desk_url: str, world: World
) -> None:
    sign_in(page, desk_url, "agent1")
    call_id = world.call("5000", "5005")
    call = card(page, call_id)
    call.locator("[data-operation=Answer]").click()
    expect(call).to_have_attribute("data-state", "Established")

    world.faults(delay_ms=1500, for_ms=3000)
    hold = call.locator("[data-operation=Hold]")
    hold.click()
    expect(hold).to_be_disabled()
    expect(hold).to_have_class(re.compile(r"htmx-request|is-pending"))
    expect(call).to_have_attribute("data-state", "Held")
    expect(call.locator("[data-operation=Retrieve]")).to_be_enabled()


def test_a_refused_operation_shows_the_voice_api_message(page: Page, desk_url: str, world: World) -> None:
    sign_in(page, desk_url, "agent1")
    call_id = world.call("5000", "5005")
    call = card(page, call_id)
    call.locator("[data-operation=Answer]").click()
    expect(call).to_have_attribute("data-state", "Established")

    # A number the browser and the desk accept, but the switch will not consult: the agent's own DN.
    call_operation(call, "InitiateTransfer", "5005")
    toast = page.locator("#toasts [role=alert]")
    expect(toast).to_have_count(1)
    expect(toast).to_contain_text("An agent cannot consult its own DN")
    expect(call).to_have_attribute("data-state", "Established")
    expect(consult_of(page, call_id)).to_have_count(0)
    toast.get_by_role("button", name="Dismiss this message").click()
    expect(toast).to_have_count(0)

    # The browser refuses what is not a number before anything is sent.
    dial = page.locator("form#dial input[name=destination]")
    dial.fill("call me")
    page.locator("form#dial button[type=submit]").click()
    assert dial.evaluate("input => input.validity.patternMismatch")

    # The same refusal again is shown, then leaves by itself.
    call.locator("form[data-operation=InitiateTransfer] button[type=submit]").click()
    expect(toast).to_contain_text("An agent cannot consult its own DN")
    expect(toast).to_have_count(0, timeout=15_000)


def test_a_second_tab_follows_every_change(
    page: Page, context: BrowserContext, desk_url: str, world: World
) -> None:
    sign_in(page, desk_url, "agent1")
    other = context.new_page()
    other.goto(f"{desk_url}/")
    expect(other.locator("#agent-state")).to_have_attribute("data-state", "NotReady")

    page.locator("[data-agent-operation=Ready]").click()
    expect(other.locator("#agent-state")).to_have_attribute("data-state", "Ready")
    call_id = world.call("5000", "5005", {"Customer": "ACME"})
    expect(card(other, call_id)).to_have_attribute("data-state", "Ringing")
    expect(card(other, call_id).locator("[data-user-data-key=Customer]")).to_contain_text("ACME")
    card(page, call_id).locator("[data-operation=Answer]").click()
    expect(card(other, call_id)).to_have_attribute("data-state", "Established")
    call_operation(card(page, call_id), "InitiateConference", "5001")
    expect(card(other, call_id)).to_have_attribute("data-state", "Held")
    expect(consult_of(other, call_id)).to_have_attribute("data-state", "Dialing")
    world.answer("5001")
    expect(consult_of(other, call_id)).to_have_attribute("data-state", "Established")
    consult_of(page, call_id).locator("[data-operation=CompleteConference]").click()
    expect(consult_of(other, call_id)).to_have_count(0)
    expect(card(other, call_id).locator("[data-participant='5001']")).to_be_visible()
    card(page, call_id).locator("[data-operation=Hangup]").click()
    expect(other.locator("#calls .call-card")).to_have_count(0)
    page.locator("[data-agent-operation=AfterCallWork]").click()
    expect(other.locator("#agent-state")).to_have_attribute("data-state", "AfterCallWork")


def test_a_reload_mid_consult_shows_both_calls_as_they_are(page: Page, desk_url: str, world: World) -> None:
    sign_in(page, desk_url, "agent1")
    call_id = world.call("5000", "5005")
    card(page, call_id).locator("[data-operation=Answer]").click()
    expect(card(page, call_id)).to_have_attribute("data-state", "Established")
    call_operation(card(page, call_id), "InitiateTransfer", "5001")
    expect(consult_of(page, call_id)).to_have_attribute("data-state", "Dialing")
    world.answer("5001")
    expect(consult_of(page, call_id)).to_have_attribute("data-state", "Established")

    page.reload()
    cards = page.locator("#calls .call-card")
    expect(cards).to_have_count(2)
    expect(cards.nth(0)).to_have_attribute("id", f"call-{call_id}")
    expect(cards.nth(0)).to_have_attribute("data-state", "Held")
    expect(cards.nth(1)).to_have_attribute("data-parent", call_id)
    expect(cards.nth(1)).to_have_attribute("data-state", "Established")
    expect(cards.nth(1)).to_contain_text("Consult for 5000")
    expect(cards.nth(1).locator("[data-operation=CompleteTransfer]")).to_be_visible()
    expect(cards.nth(0).locator("[data-operation=Retrieve]")).to_be_visible()
    expect(cards.nth(0).locator("[data-operation=Hold]")).to_have_count(0)


def test_not_ready_takes_a_reason_and_after_call_work_shows_a_timer(
    page: Page, desk_url: str, world: World
) -> None:
    sign_in(page, desk_url, "agent1")
    state = page.locator("#agent-state")
    expect(state.locator("select[name=reason] option")).to_have_text(["Reason…", "Lunch", "Training"])
    state.locator("select[name=reason]").select_option(label="Lunch")
    state.locator("[data-agent-operation=NotReady]").click()
    expect(state).to_have_attribute("data-reason", "LUNCH")
    expect(state).to_contain_text("Not ready · Lunch")

    state.locator("[data-agent-operation=Ready]").click()
    expect(state).to_have_attribute("data-state", "Ready")
    expect(state).not_to_have_attribute("data-reason", "LUNCH")
    state.locator("[data-agent-operation=AfterCallWork]").click()
    expect(state).to_have_attribute("data-state", "AfterCallWork")
    # It counts up: past 0:00 within seconds (a busy browser may skip a tick, 0:00 straight to 0:02).
    expect(state.locator("[data-state-timer]")).to_have_text(re.compile(r"^0:0[1-9]$"), timeout=5_000)


def test_a_slow_voice_api_link_shows_a_banner_and_disables_the_controls(
    page: Page, desk_url: str, world: World
) -> None:
    sign_in(page, desk_url, "agent1")
    banner = page.locator("#link-banner")
    expect(banner).to_be_hidden()
    # The worker re-reads the server's state after losing its notifications; a slow server keeps
    # it "reconnecting" for a while.
    world.faults(delay_ms=2500, for_ms=6000)
    world.faults(drop_cometd_sessions=True)
    expect(page.locator("#connection")).to_have_attribute("data-status", "reconnecting")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Reconnecting to the Voice API")
    assert page.locator("#agent-state").evaluate("element => element.inert")
    assert page.locator("#calls").evaluate("element => element.inert")

    expect(page.locator("#connection")).to_have_attribute("data-status", "connected", timeout=20_000)
    expect(banner).to_be_hidden()
    assert not page.locator("#agent-state").evaluate("element => element.inert")
    page.locator("[data-agent-operation=Ready]").click()
    expect(page.locator("#agent-state")).to_have_attribute("data-state", "Ready")


def test_a_lost_desk_link_shows_a_banner_until_the_page_reconnects(
    page: Page, desk_url: str, world: World
) -> None:
    sockets: list[WebSocketRoute] = []

    def through(socket: WebSocketRoute) -> None:
        socket.connect_to_server()
        sockets.append(socket)

    page.route_web_socket("**/ws/desktop/", through)
    sign_in(page, desk_url, "agent1")
    banner = page.locator("#link-banner")
    expect(banner).to_be_hidden()

    sockets[-1].close(code=1001, reason="going away")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("connection to the desk is lost")
    expect(page.locator("#connection")).to_have_attribute("data-status", "offline")
    assert page.locator("#agent-state").evaluate("element => element.inert")

    # Meanwhile a call arrives; the snapshot after reconnecting shows it.
    call_id = world.call("5000", "5005")
    expect(banner).to_be_hidden(timeout=20_000)
    expect(page.locator("#connection")).to_have_attribute("data-status", "connected")
    expect(card(page, call_id)).to_have_attribute("data-state", "Ringing")
    card(page, call_id).locator("[data-operation=Answer]").click()
    expect(card(page, call_id)).to_have_attribute("data-state", "Established")


def test_the_desk_fits_a_phone_sized_window(page: Page, desk_url: str, world: World) -> None:
    page.set_viewport_size({"width": 375, "height": 740})
    sign_in(page, desk_url, "agent1")
    call_id = world.call("5000", "5005", {"Customer": "ACME Corporation", "Reason": "Billing question"})
    card(page, call_id).locator("[data-operation=Answer]").click()
    call_operation(card(page, call_id), "InitiateTransfer", "5001")
    consult = consult_of(page, call_id)
    expect(consult).to_have_attribute("data-state", "Dialing")
    world.answer("5001")
    expect(consult).to_have_attribute("data-state", "Established")
    consult.locator("summary", has_text="Transfer / Conference").click()
    consult.locator("summary", has_text="Keypad").click()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page scrolls sideways: {width} px wide"
    for operation in ("CompleteTransfer", "SwapCalls", "Hangup"):
        expect(consult.locator(f"[data-operation={operation}]")).to_be_in_viewport()


def test_a_pushed_change_keeps_what_the_agent_was_typing(
    page: Page, context: BrowserContext, desk_url: str, world: World
) -> None:
    sign_in(page, desk_url, "agent1")
    call_id = world.call("5000", "5005")
    card(page, call_id).locator("[data-operation=Answer]").click()
    expect(card(page, call_id)).to_have_attribute("data-state", "Established")
    card(page, call_id).locator("summary", has_text="Transfer / Conference").click()
    blind_transfer = card(page, call_id).locator("form[data-operation=SingleStepTransfer]")
    destination = blind_transfer.locator("input[name=destination]")
    destination.fill("50")

    # A supervisor's screen, or the agent's other tab, attaches data: the card is re-rendered.
    other = context.new_page()
    other.goto(f"{desk_url}/")
    other_card = card(other, call_id)
    other_card.locator("summary", has_text="Edit attached data").click()
    attach = other_card.locator("form[data-operation=AttachUserData]")
    attach.locator("input[name=key]").fill("Note")
    attach.locator("input[name=value]").fill("VIP")
    attach.locator("button[type=submit]").click()

    expect(card(page, call_id).locator("[data-user-data-key=Note]")).to_contain_text("VIP")
    page.bring_to_front()
    expect(destination).to_be_visible()
    expect(destination).to_have_value("50")
    expect(destination).to_be_focused()
    destination.press_sequentially("01")
    destination.press("Enter")
    expect(card(page, call_id)).to_have_count(0)
