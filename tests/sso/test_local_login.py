"""The local login form: open to everyone by default, to staff only when LOCAL_LOGIN_FOR_AGENTS is off."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import SESSION_KEY, get_user_model
from django.test import Client

User = get_user_model()

pytestmark = pytest.mark.django_db


@pytest.fixture
def agent() -> Any:
    return User.objects.create_user("agent7", password="agent7-local-password")


@pytest.fixture
def admin() -> Any:
    return User.objects.create_superuser("boss", password="boss-local-password")


def log_in(client: Client, username: str, password: str) -> Any:
    return client.post("/accounts/login/", {"username": username, "password": password, "next": "/"})


def test_agents_log_in_locally_by_default(agent: Any, client: Client) -> None:
    response = log_in(client, "agent7", "agent7-local-password")

    assert response.status_code == 302
    assert client.session[SESSION_KEY] == str(agent.pk)


def test_an_agent_is_refused_with_a_clear_message_when_local_login_is_off_for_agents(
    settings: Any, agent: Any, client: Client
) -> None:
    settings.LOCAL_LOGIN_FOR_AGENTS = False

    response = log_in(client, "agent7", "agent7-local-password")

    assert response.status_code == 200
    assert SESSION_KEY not in client.session
    page = response.content.decode()
    assert "Agents sign in with single sign-on, not with a desk password." in page
    assert page.count('role="alert"') == 1  # not also the page's "didn't match" line
    assert 'value="agent7"' in page


def test_the_refusal_names_the_provider_when_oidc_is_on(settings: Any, agent: Any, client: Client) -> None:
    settings.LOCAL_LOGIN_FOR_AGENTS = False
    settings.OIDC_ENABLED = True
    settings.OIDC_PROVIDER_NAME = "Contoso ID"
    settings.ROOT_URLCONF = "tests.sso.oidc_urls"

    page = log_in(client, "agent7", "agent7-local-password").content.decode()

    assert "Agents sign in with Contoso ID, not with a desk password." in page
    assert "Sign in with Contoso ID" in page


def test_admins_still_log_in_locally_when_local_login_is_off_for_agents(
    settings: Any, admin: Any, client: Client
) -> None:
    settings.LOCAL_LOGIN_FOR_AGENTS = False

    response = log_in(client, "boss", "boss-local-password")

    assert response.status_code == 302
    assert client.session[SESSION_KEY] == str(admin.pk)


def test_a_wrong_password_gives_no_hint_about_the_account(settings: Any, agent: Any, client: Client) -> None:
    settings.LOCAL_LOGIN_FOR_AGENTS = False

    page = log_in(client, "agent7", "wrong").content.decode()

    assert 'role="alert"' in page
    assert "single sign-on" not in page
