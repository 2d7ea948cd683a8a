"""In a real browser: attached data that looks like markup is shown as text and runs nothing, and the
desk (htmx, its WebSocket, our script) works under the Content-Security-Policy without a violation."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from tests.e2e.conftest import World, card, desk_env, desk_url, sign_in, world  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser

SCRIPT = "<script>window.__xss=1</script>"
IMAGE = '"><img src=x onerror=window.__xss=2>'
KEY_SCRIPT = "<script>window.__xss=3</script>"
KEY_IMAGE = '"><img src=x onerror=window.__xss=4>'

# Installed before any page script: records every CSP violation the page reports.
WATCH_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(event.violatedDirective + " " + event.blockedURI + " " + event.sourceFile);
});
"""


def watched(page: Page) -> list[str]:
    console: list[str] = []

    def keep(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            console.append(message.text)

    page.on("console", keep)
    page.add_init_script(WATCH_VIOLATIONS)
    return console


def assert_nothing_ran(page: Page, console: list[str]) -> None:
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.evaluate("window.__violations") == []
    assert console == []


def test_markup_in_attached_data_is_shown_as_text_and_runs_nothing(
    page: Page,
    desk_url: str,  # noqa: F811
    world: World,  # noqa: F811
) -> None:
    console = watched(page)
    response = page.goto(f"{desk_url}/")
    assert response is not None and "script-src 'self'" in response.headers["content-security-policy"]
    sign_in(page, desk_url, "agent1")  # the WebSocket is up: connect-src 'self' lets ws: through

    user_data: dict[str, Any] = {"note": SCRIPT, "x": IMAGE, KEY_SCRIPT: "k1", KEY_IMAGE: "k2"}
    call_id = world.call("5000", "5005", user_data)
    call = card(page, call_id)
    expect(call).to_have_attribute("data-state", "Ringing")

    pairs = call.locator("[data-user-data-key]")
    expect(pairs).to_have_count(4)
    expect(call.locator("[data-user-data-key=note] dd")).to_contain_text(SCRIPT)
    expect(call.locator("[data-user-data-key=x] dd")).to_contain_text(IMAGE)
    expect(call.locator("dt", has_text=KEY_SCRIPT)).to_have_count(1)
    expect(call.locator("dt", has_text=KEY_IMAGE)).to_have_count(1)
    assert call.locator("img").count() == 0 and call.locator("script").count() == 0
    assert_nothing_ran(page, console)

    # The same data through htmx (a click, a push that replaces the card) and on the history page.
    call.locator("[data-operation=Answer]").click()
    expect(call).to_have_attribute("data-state", "Established")
    expect(call.locator("[data-user-data-key=note] dd")).to_contain_text(SCRIPT)
    call.locator("[data-operation=Hangup]").click()
    expect(call).to_have_count(0)
    assert_nothing_ran(page, console)

    page.goto(f"{desk_url}/history/")
    row = page.locator(f"tr[data-call-id='{call_id}']")
    expect(row).to_contain_text(f"note={SCRIPT}")
    expect(row).to_contain_text(f"{KEY_IMAGE}=k2")
    assert_nothing_ran(page, console)
