"""OpenID Connect in a real browser, which (unlike httpx) enforces the desk's Content-Security-Policy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.sso.conftest import PROVIDER_NAME, Desk, Provider, running_desk


@pytest.fixture(scope="module")
def desk(oidc_provider: Provider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    directory: Path = tmp_path_factory.mktemp("browser-desk")
    with running_desk(oidc_provider, directory, "desk-browser", OIDC_CREATE_USERS="1") as desk:
        yield desk


@pytest.mark.browser
def test_signing_out_in_a_browser_ends_the_providers_session_too(
    desk: Desk, oidc_provider: Provider, page: Page
) -> None:
    oidc_provider.add_user("hedy", "hedy-at-the-idp", "Hedy", "Lamarr", "hedy@example.com")
    page.goto(f"{desk.url}/accounts/login/")
    page.get_by_role("link", name=f"Sign in with {PROVIDER_NAME}").click()
    page.locator("input[name=username]").fill("hedy")
    page.locator("input[name=password]").fill("hedy-at-the-idp")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{desk.url}/")

    page.get_by_role("button", name="Sign out").click()

    page.wait_for_url(f"{desk.url}/accounts/login/", timeout=10_000)
    page.get_by_role("link", name=f"Sign in with {PROVIDER_NAME}").click()
    expect(page.locator("input[name=password]")).to_be_visible()  # the provider asks again
    assert page.url.startswith(f"{oidc_provider.url}/accounts/login/")
