"""The transfer directory in a real browser, on the embedded default: an agent of each vendor finds a
colleague by typing part of the name, sees the colleague's state change live, picks them with the
keyboard and consults them; the consult rings at the colleague's desk. The dial pad offers the same
directory: a click, or Enter after part of a name, fills the number in."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Locator, Page, expect

from .conftest import World, card, consult_of, desk_shell, sign_in

pytestmark = pytest.mark.browser

# Colleagues with names, as an administrator gives them: the directory finds them by any part.
NAMES = """
from django.contrib.auth import get_user_model
get_user_model().objects.filter(username="agent2").update(first_name="Grace", last_name="Hopper")
get_user_model().objects.filter(username="agent102").update(first_name="Katherine", last_name="Johnson")
"""
# A colleague's state shows in an open directory within about a second, without a reload.
LIVE_MS = 3_000


@pytest.fixture(scope="module")
def named_colleagues(desk_env: dict[str, str], desk_url: str) -> None:
    desk_shell(desk_env, NAMES)


def answered(page: Page, world: World, dn: str) -> tuple[str, Locator]:
    call_id = world.call("5000", dn)
    call = card(page, call_id)
    call.locator("[data-operation=Answer]").click()
    expect(call).to_have_attribute("data-state", "Established")
    return call_id, call


@pytest.mark.parametrize(
    ("agent", "dn", "colleague", "colleague_dn", "typed"),
    [
        ("agent1", "5005", "agent2", "5001", "hopp"),
        ("agent101", "6101", "agent102", "6102", "kather"),
    ],
    ids=["genesys", "huawei"],
)
def test_an_agent_consults_a_colleague_picked_from_the_directory_by_part_of_the_name(
    desks: Callable[[str], Page],
    world: World,
    named_colleagues: None,
    agent: str,
    dn: str,
    colleague: str,
    colleague_dn: str,
    typed: str,
) -> None:
    theirs = desks(colleague)
    mine = desks(agent)
    call_id, call = answered(mine, world, dn)

    call.locator("details[data-disclosure=transfer] > summary").click()
    form = call.locator("form[data-operation=InitiateTransfer]")
    destination = form.locator("input[name=destination]")
    destination.click()
    directory = form.locator("[data-directory]")
    expect(directory).to_be_visible()
    expect(destination).to_have_attribute("aria-expanded", "true")
    destination.press_sequentially(typed)

    found = directory.locator("[data-directory-entry][data-kind=colleague]")
    expect(found).to_have_count(1)
    expect(found).to_have_attribute("data-number", colleague_dn)
    expect(found).to_have_attribute("data-state", "NotReady")

    # The colleague becomes Ready: the open directory says so, without a reload.
    theirs.locator("[data-agent-operation=Ready]").click()
    expect(theirs.locator("#agent-state")).to_have_attribute("data-state", "Ready")
    expect(found).to_have_attribute("data-state", "Ready", timeout=LIVE_MS)

    destination.press("ArrowDown")
    expect(found).to_have_attribute("aria-selected", "true")
    expect(destination).to_have_attribute("aria-activedescendant", found.get_attribute("id") or "")
    destination.press("Enter")
    expect(destination).to_have_value(colleague_dn)
    expect(directory).to_be_hidden()
    expect(destination).to_be_focused()

    destination.press("Enter")
    consult = consult_of(mine, call_id)
    expect(consult).to_have_attribute("data-state", "Dialing")
    expect(theirs.locator("#calls .call-card")).to_have_attribute("data-state", "Ringing")
    expect(mine.locator("#toasts [role=alert]")).to_have_count(0)

    consult.locator("[data-operation=Hangup]").click()
    expect(theirs.locator("#calls .call-card")).to_have_count(0)


def test_the_dial_pad_offers_the_directory_and_a_click_fills_the_number_in(
    page: Page, desk_url: str, world: World, named_colleagues: None
) -> None:
    sign_in(page, desk_url, "agent1")
    dial = page.locator("#dial-destination")
    dial.click()
    directory = page.locator("form#dial [data-directory]")
    expect(directory.locator("[data-directory-entry][data-number='6102']")).to_be_visible()

    dial.press_sequentially("GRACE")
    grace = directory.locator("[data-directory-entry][data-kind=colleague]")
    expect(grace).to_have_count(1)
    grace.click()

    expect(dial).to_have_value("5001")
    expect(directory).to_be_hidden()
    expect(dial).to_be_focused()

    # Part of a name and Enter: the first colleague found for exactly that.
    dial.fill("")
    dial.press_sequentially("johns")
    dial.press("Enter")
    expect(dial).to_have_value("6102")
    expect(page.locator("#calls .call-card")).to_have_count(0)  # filled in, not dialled

    # Escape closes the list and a letter typed again searches, rather than acting as a shortcut.
    dial.fill("")
    dial.press_sequentially("r")
    expect(directory).to_be_visible()
    dial.press("Escape")
    expect(directory).to_be_hidden()
    expect(page.locator("#agent-state")).to_have_attribute("data-state", "NotReady")
