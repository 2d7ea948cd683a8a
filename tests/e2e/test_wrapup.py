"""After the call, in a real browser: the bar shows the agent on a call, then asks for a disposition,
and the history keeps what happened and what the agent chose."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.servers import ROOT

from .conftest import World, card, sign_in

pytestmark = pytest.mark.browser

CODES = """
from calls.models import DispositionCode
DispositionCode.objects.get_or_create(code="SALE", defaults={"label": "Sale made", "position": 1})
DispositionCode.objects.get_or_create(code="INFO", defaults={"label": "Information given", "position": 2})
"""
NO_CODES = """
from calls.models import DispositionCode
DispositionCode.objects.filter(code__in=["SALE", "INFO"]).delete()
"""


def _desk_shell(tmp_path_factory: pytest.TempPathFactory, code: str) -> None:
    """Run ``code`` against the database of the session's ``rundesk`` (set up by ``desk_url``)."""
    database = next(tmp_path_factory.getbasetemp().glob("desk*/e2e.sqlite3"))
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "SIMULATOR_ENABLED": "1"}
    env.pop("REDIS_URL", None)
    command = [sys.executable, "manage.py", "shell", "-c", code]
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, timeout=60)


@pytest.fixture
def disposition_codes(desk_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Codes an administrator set up, for this test only: other tests' cards and bars stay as they were."""
    _desk_shell(tmp_path_factory, CODES)
    yield
    _desk_shell(tmp_path_factory, NO_CODES)


def test_an_agent_answers_hangs_up_and_chooses_a_disposition_that_the_history_keeps(
    page: Page, desk_url: str, world: World, disposition_codes: None
) -> None:
    sign_in(page, desk_url, "agent1")
    bar = page.locator("#agent-state")
    expect(bar).to_have_attribute("data-activity", "idle")
    call_id = world.call("5000", "5005")
    call = card(page, call_id)
    expect(bar).to_have_attribute("data-activity", "call")
    call.locator("[data-operation=Answer]").click()
    expect(call).to_have_attribute("data-state", "Established")
    expect(bar).to_contain_text("On a call")

    call.locator("[data-operation=Hangup]").click()
    expect(page.locator("#calls .call-card")).to_have_count(0)
    expect(bar).to_have_attribute("data-activity", "idle")
    expect(bar).not_to_contain_text("On a call")
    picker = bar.locator("[data-disposition]")
    expect(picker).to_contain_text("for the call with 5000")
    picker.locator("select[name=disposition]").select_option("SALE")
    picker.get_by_role("button", name="Save").click()
    expect(bar.locator("[data-disposition]")).to_have_count(0)

    page.get_by_role("link", name="History").click()
    row = page.locator(f"#history tr[data-call-id='{call_id}']")
    expect(row).to_have_attribute("data-direction", "internal")
    expect(row).to_have_attribute("data-outcome", "answered")
    expect(row).to_have_attribute("data-disposition", "SALE")
    expect(row).to_contain_text("Sale made")
    expect(row.get_by_role("button", name="Call back 5000")).to_be_visible()
