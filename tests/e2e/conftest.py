"""Real-browser flows: the whole desk (`rundesk` on the embedded simulator) runs as a subprocess for
the session; each test resets the switch and drives the page only by clicks and typing, while the
simulator's control API plays the outside world (callers, colleagues' phones).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Error, Locator, Page, expect

from tests.servers import ROOT, free_port, serving

DESK_START_TIMEOUT_S = 30.0
# Pushes cross the simulator, the session worker and the WebSocket: allow for a slow machine.
expect.set_options(timeout=10_000)

# Admin-managed reasons for NotReady, as an administrator would set them up.
NOT_READY_REASONS = """
from calls.models import NotReadyReason
NotReadyReason.objects.get_or_create(code="LUNCH", defaults={"label": "Lunch", "position": 1})
NotReadyReason.objects.get_or_create(code="TRAINING", defaults={"label": "Training", "position": 2})
NotReadyReason.objects.get_or_create(code="OLD", defaults={"label": "Retired reason", "active": False})
"""


@pytest.fixture(scope="session")
def desk_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment `rundesk` runs in for the session (a fresh SQLite database among it)."""
    directory = tmp_path_factory.mktemp("desk")
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{directory / 'e2e.sqlite3'}",
        "SIMULATOR_ANSWER_DELAY_MS": "0",
        "SIMULATOR_ENABLED": "1",
        # Short enough for a test to watch an empty chair or a missed call happen.
        "DESK_CLOSED_GRACE_SECONDS": "3",
        "MISSED_CALL_RING_SECONDS": "1",
    }
    env.pop("REDIS_URL", None)  # one process: the in-memory layer and the in-process worker
    return env


def desk_shell(env: dict[str, str], code: str) -> None:
    """Runs ``code`` in `manage.py shell` on the desk's database, as an administrator's script would."""
    shell = [sys.executable, "manage.py", "shell", "-c", code]
    subprocess.run(shell, cwd=ROOT, env=env, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def desk_url(desk_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`manage.py rundesk` on the embedded default, on a fresh SQLite database, for the session."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "manage.py", "rundesk", "--host", "127.0.0.1", "--port", str(port)]
    log = tmp_path_factory.mktemp("desk-log") / "desk.log"
    with serving("rundesk", command, f"{url}/healthz", timeout=DESK_START_TIMEOUT_S, env=desk_env, log=log):
        desk_shell(desk_env, NOT_READY_REASONS)
        yield url


@dataclass
class World:
    """The simulator's control API: everyone who is not the agent under test."""

    client: httpx.Client

    def call(self, origin: str, destination: str, user_data: dict[str, str] | None = None) -> str:
        body: dict[str, Any] = {"from": origin, "to": destination}
        if user_data:
            body["userData"] = user_data
        response = self.client.post("/calls", json=body)
        response.raise_for_status()
        return str(response.json()["id"])

    def answer(self, number: str) -> None:
        self.client.post(f"/parties/{number}/answer").raise_for_status()

    def hang_up(self, number: str) -> None:
        self.client.post(f"/parties/{number}/hangup").raise_for_status()

    def settings(self, **settings: Any) -> None:
        self.client.put("/settings", json=settings).raise_for_status()

    def faults(self, **faults: Any) -> None:
        self.client.post("/faults", json=faults).raise_for_status()


@pytest.fixture
def world(desk_url: str) -> Iterator[World]:
    """The switch back to its seeded directory with no calls; remote parties answer only when told.

    Dropping the CometD clients makes every running agent session resynchronise, so the desk
    forgets the calls and agent states of earlier tests (a reset announces nothing by itself)."""
    with httpx.Client(base_url=f"{desk_url}/sim/control", timeout=5) as client:
        world = World(client)
        client.post("/reset").raise_for_status()
        world.settings(answer_delay_ms=None)
        world.faults(drop_cometd_sessions=True)
        yield world


def sign_in(page: Page, desk_url: str, username: str) -> Page:
    """Log in to the page, then to the contact center, and wait until the desk is live."""
    page.goto(f"{desk_url}/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(username)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#agent-state")).to_have_attribute("data-state", "LoggedOut")
    expect(page.locator("#calls .call-card")).to_have_count(0)
    page.locator("[data-agent-operation=Login]").click()
    expect(page.locator("#agent-state")).to_have_attribute("data-state", "NotReady")
    expect(page.locator("#connection")).to_have_attribute("data-status", "connected")
    return page


# Opens an agent's desk, signed in to the contact center (the ``desks`` fixture).
Desks = Callable[[str], Page]


@pytest.fixture
def desks(browser: Browser, desk_url: str, world: World) -> Iterator[Desks]:
    """Opens an agent's desk in a browser context of its own, signed in to the contact center.
    Afterwards the outside party 5000 hangs up and every agent still free of calls logs out of the
    contact center: the next test's switch restart then finds them signed out, as it expects (a
    Huawei session signs a signed-in agent in again)."""
    opened: list[Page] = []

    def open_desk(username: str) -> Page:
        page = sign_in(browser.new_context().new_page(), desk_url, username)
        opened.append(page)
        return page

    yield open_desk
    world.client.post("/parties/5000/hangup")
    for page in opened:
        try:
            page.goto(f"{desk_url}/")
            state = page.locator("#agent-state")
            expect(state).not_to_have_attribute("data-activity", "call")
            if state.get_attribute("data-state") != "LoggedOut":
                state.locator("[data-agent-operation=Logout]").click()
                expect(state).to_have_attribute("data-state", "LoggedOut")
        except (AssertionError, Error):
            pass  # the next test's reset signs everyone out in the end
        page.context.close()


def card(page: Page, call_id: str) -> Locator:
    return page.locator(f"#call-{call_id}")


def consult_of(page: Page, call_id: str) -> Locator:
    return page.locator(f"#calls .call-card[data-parent='{call_id}']")


def only_card(page: Page) -> Locator:
    cards = page.locator("#calls .call-card")
    expect(cards).to_have_count(1)
    return cards.first


def call_operation(scope: Locator, operation: str, destination: str) -> None:
    """Open the card's disclosure holding the operation's form, type the number and send it."""
    selector = f"form[data-operation={operation}]"
    form = scope.locator(selector)
    if not form.is_visible():
        scope.locator("details", has=scope.page.locator(selector)).locator("summary").click()
    form.locator("input[name=destination]").fill(destination)
    form.locator("button[type=submit]").click()
