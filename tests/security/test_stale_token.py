"""A control on a page whose CSRF token went stale says so, and offers a reload."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from calls.models import AgentLogin, AuditEntry


def sign_in(client: Client) -> None:
    """Through the login form, as a browser does (which is what rotates the CSRF token)."""
    form = client.get("/accounts/login/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
    assert token
    response = client.post(
        "/accounts/login/",
        {"username": "agent1", "password": "agent1", "csrfmiddlewaretoken": token.group(1)},
    )
    assert response.status_code == 302


def desk_token(client: Client) -> str:
    page = client.get("/").content.decode()
    match = re.search(r'"X-CSRFToken": "([^"]+)"', page)
    assert match, "the desk page carries its CSRF token for htmx"
    return match.group(1)


@pytest.mark.django_db
def test_after_a_second_sign_in_the_first_tabs_controls_say_why_they_fail(agent1: AgentLogin) -> None:
    first_tab = Client(enforce_csrf_checks=True)
    sign_in(first_tab)
    stale = desk_token(first_tab)
    # Signing in again (another tab of the same browser) rotates the CSRF token.
    sign_in(first_tab)

    response = first_tab.post(
        "/agent/", {"operation": "Ready"}, headers={"X-CSRFToken": stale, "HX-Request": "true"}
    )

    assert response.status_code == 403
    body = response.content.decode()
    assert 'role="alert"' in body and "security token is out of date" in body
    assert "data-reload" in body
    assert not AuditEntry.objects.filter(action="Ready").exists()


@pytest.mark.django_db
def test_a_stale_token_outside_the_desks_controls_gets_djangos_page(agent1: AgentLogin) -> None:
    client = Client(enforce_csrf_checks=True)
    client.login(username="agent1", password="agent1")

    response = client.post("/agent/", {"operation": "Ready"})

    assert response.status_code == 403
    assert "data-reload" not in response.content.decode()
