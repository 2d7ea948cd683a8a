"""Response headers, cookies and the idle timeout of the desk's pages and fragments."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.test import Client

from desktop.security import IDLE_REFRESHED_KEY

pytestmark = pytest.mark.django_db

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "media-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


@pytest.fixture
def agent() -> Any:
    return get_user_model().objects.create_user("agent9", password="agent9-password")


@pytest.fixture
def signed_in(agent: Any) -> Client:
    client = Client()
    client.force_login(agent)
    return client


def test_the_desk_page_carries_the_content_security_policy_and_the_other_headers(signed_in: Client) -> None:
    response = signed_in.get("/")

    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == CSP
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "no-store" in response.headers["Cache-Control"]


def test_a_fragment_answering_an_action_is_not_stored_either(signed_in: Client) -> None:
    # A signed-in user without an agent login is refused with a toast: a fragment like any other.
    response = signed_in.post("/agent/", {"operation": "Ready"})

    assert response.status_code == 403
    assert 'role="alert"' in response.content.decode()
    assert "no-store" in response.headers["Cache-Control"]
    assert response.headers["Content-Security-Policy"] == CSP


def test_the_login_page_and_the_admin_carry_the_policy(client: Client) -> None:
    for path in ("/accounts/login/", "/admin/login/"):
        response = client.get(path)
        assert response.headers["Content-Security-Policy"] == CSP
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "no-store" in response.headers["Cache-Control"]


def test_frame_ancestors_follows_the_setting_and_then_x_frame_options_is_not_sent(
    settings: Any, agent: Any
) -> None:
    settings.FRAME_ANCESTORS = ["'self'", "https://crm.example.com"]
    client = Client()  # a new handler: the middleware reads the setting when it starts
    client.force_login(agent)

    response = client.get("/")

    assert response.headers["Content-Security-Policy"].endswith(
        "frame-ancestors 'self' https://crm.example.com"
    )
    assert "X-Frame-Options" not in response.headers


def test_the_session_cookie_is_http_only_and_same_site_lax(client: Client, agent: Any) -> None:
    response = client.post("/accounts/login/", {"username": "agent9", "password": "agent9-password"})

    cookie = response.cookies["sessionid"]
    assert response.status_code == 302
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert client.cookies["csrftoken"]["httponly"] is True


def test_the_idle_timeout_slides_at_most_once_a_minute(settings: Any, signed_in: Client) -> None:
    assert settings.SESSION_COOKIE_AGE == settings.SESSION_IDLE_TIMEOUT_SECONDS == 8 * 3600
    first = signed_in.get("/")
    assert first.cookies["sessionid"]["max-age"] == 8 * 3600  # the first request after sign-in slides it

    again = signed_in.get("/")
    assert "sessionid" not in again.cookies  # within the minute: the session is not written again

    session = signed_in.session
    session[IDLE_REFRESHED_KEY] = int(time.time()) - 61
    session.save()
    before = Session.objects.get(session_key=session.session_key).expire_date
    later = signed_in.get("/")
    assert later.cookies["sessionid"]["max-age"] == 8 * 3600
    assert Session.objects.get(session_key=session.session_key).expire_date > before


def test_an_idle_session_ends(settings: Any, signed_in: Client) -> None:
    session = signed_in.session
    session.set_expiry(-1)  # what SESSION_IDLE_TIMEOUT_SECONDS without a request comes to
    session.save()

    response = signed_in.get("/")

    assert response.status_code == 302
    assert response.headers["Location"].startswith("/accounts/login/")
