"""OpenID Connect sign-in and logout against a real provider, both over loopback.

The browser is an httpx client that follows each redirect by hand, so every hop of the
authorization code flow is visible: the desk's redirect with state, nonce and PKCE, the provider's
login form, the code coming back, the desk's own token and userinfo requests behind the callback.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.sso.conftest import PROVIDER_NAME, Desk, Provider, running_desk


@pytest.fixture(scope="module")
def desk(oidc_provider: Provider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    """A desk that creates accounts for unknown users (OIDC_CREATE_USERS=1)."""
    with running_desk(
        oidc_provider, tmp_path_factory.mktemp("desk"), "desk-creating", OIDC_CREATE_USERS="1"
    ) as desk:
        yield desk


@pytest.fixture(scope="module")
def strict_desk(oidc_provider: Provider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    """A desk with the default OIDC_CREATE_USERS=0 and some accounts of its own."""
    with running_desk(oidc_provider, tmp_path_factory.mktemp("strict-desk"), "desk-strict") as desk:
        desk.manage_shell(
            "from django.contrib.auth.models import User;"
            "User.objects.create_user('alan', password='alan-local-password');"
            "User.objects.create_superuser('root', password='root-local-password')"
        )
        yield desk


@pytest.fixture
def browser() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=15, follow_redirects=False) as client:
        yield client


def location(response: httpx.Response) -> str:
    assert response.is_redirect, (
        f"{response.request.url} answered {response.status_code}: {response.text[:500]}"
    )
    return str(response.url.join(response.headers["location"]))


def sign_in(
    browser: httpx.Client, desk: Desk, provider: Provider, username: str, password: str
) -> httpx.Response:
    """From the desk's SSO button to the desk's answer to the provider's redirect back."""
    start = browser.get(f"{desk.url}/oidc/authenticate/", params={"next": "/history/"})
    authorize = location(start)
    assert authorize.startswith(f"{provider.issuer}/authorize?")
    params = {name: values[0] for name, values in parse_qs(urlsplit(authorize).query).items()}
    assert params["response_type"] == "code"
    assert params["state"] and params["nonce"]
    assert params["code_challenge"] and params["code_challenge_method"] == "S256"
    assert params["redirect_uri"] == f"{desk.url}/oidc/callback/"

    login_page = location(browser.get(authorize))
    assert login_page.startswith(f"{provider.url}/accounts/login/")
    form = browser.get(login_page)
    assert form.status_code == 200
    next_url = parse_qs(urlsplit(login_page).query)["next"][0]
    signed_in = browser.post(
        login_page,
        data={
            "username": username,
            "password": password,
            "next": next_url,
            "csrfmiddlewaretoken": browser.cookies["op_csrftoken"],
        },
    )
    back_to_authorize = location(signed_in)
    assert back_to_authorize.startswith(f"{provider.issuer}/authorize?")

    callback = location(browser.get(back_to_authorize))  # no consent screen: require_consent=False
    assert callback.startswith(f"{desk.url}/oidc/callback/?")
    returned = parse_qs(urlsplit(callback).query)
    assert returned["state"] == [params["state"]]
    assert "code" in returned
    return browser.get(callback)


def test_the_login_page_offers_the_provider(desk: Desk, browser: httpx.Client) -> None:
    page = browser.get(f"{desk.url}/accounts/login/", params={"next": "/history/"})
    assert page.status_code == 200
    assert f"Sign in with {PROVIDER_NAME}" in page.text
    assert 'href="/oidc/authenticate/?next=/history/"' in page.text
    assert 'name="password"' in page.text  # the local form stays for admins


def test_a_new_agent_signs_in_and_gets_an_account_with_their_claims(
    desk: Desk, oidc_provider: Provider, browser: httpx.Client
) -> None:
    sub = oidc_provider.add_user("ada", "ada-at-the-idp", "Ada", "Lovelace", "ada@example.com")

    answer = sign_in(browser, desk, oidc_provider, "ada", "ada-at-the-idp")

    assert location(answer) == f"{desk.url}/history/"
    assert browser.get(f"{desk.url}/history/").status_code == 200
    assert desk.session_username(browser) == "ada"
    user = desk.user("ada")
    assert user is not None
    assert (user["first_name"], user["last_name"], user["email"]) == ("Ada", "Lovelace", "ada@example.com")
    assert user["password"].startswith("!")  # no desk password: only the provider signs Ada in
    assert not user["is_staff"]
    identity = desk.identity(user["id"])
    assert identity is not None
    assert (identity["issuer"], identity["sub"]) == (oidc_provider.issuer, sub)


def test_logout_ends_the_desk_session_and_the_providers(
    desk: Desk, oidc_provider: Provider, browser: httpx.Client
) -> None:
    oidc_provider.add_user("grace", "grace-at-the-idp", "Grace", "Hopper", "grace@example.com")
    sign_in(browser, desk, oidc_provider, "grace", "grace-at-the-idp")
    assert desk.session_username(browser) == "grace"
    session_key = browser.cookies["sessionid"]

    logout = browser.post(
        f"{desk.url}/accounts/logout/", data={"csrfmiddlewaretoken": browser.cookies["csrftoken"]}
    )

    end_session = location(logout)
    assert end_session.startswith(f"{oidc_provider.issuer}/end-session?")
    query = parse_qs(urlsplit(end_session).query)
    assert query["post_logout_redirect_uri"] == [f"{desk.url}/accounts/login/"]
    assert query["id_token_hint"]
    assert desk.query("SELECT * FROM django_session WHERE session_key = ?", session_key) == []
    assert location(browser.get(end_session)) == f"{desk.url}/accounts/login/"
    assert location(browser.get(f"{desk.url}/")).startswith(f"{desk.url}/accounts/login/")
    assert desk.session_username(browser) is None
    # The provider forgot Grace too: signing in again asks for her password.
    again = location(browser.get(f"{desk.url}/oidc/authenticate/"))
    assert location(browser.get(again)).startswith(f"{oidc_provider.url}/accounts/login/")


def test_an_unknown_user_is_refused_when_account_creation_is_off(
    strict_desk: Desk, oidc_provider: Provider, browser: httpx.Client
) -> None:
    oidc_provider.add_user("mallory", "mallory-at-the-idp", "Mal", "Lory", "mallory@example.com")

    answer = sign_in(browser, strict_desk, oidc_provider, "mallory", "mallory-at-the-idp")

    assert location(answer) == f"{strict_desk.url}/accounts/login/?sso=failed"
    assert strict_desk.session_username(browser) is None
    assert strict_desk.user("mallory") is None
    page = browser.get(location(answer))
    assert f"{PROVIDER_NAME} did not sign you in to the desk" in page.text


def test_an_existing_agent_is_linked_to_their_identity_on_first_sign_in(
    strict_desk: Desk, oidc_provider: Provider, browser: httpx.Client
) -> None:
    sub = oidc_provider.add_user("alan", "alan-at-the-idp", "Alan", "Turing", "alan@example.com")
    before = strict_desk.user("alan")
    assert before is not None

    sign_in(browser, strict_desk, oidc_provider, "alan", "alan-at-the-idp")

    assert strict_desk.session_username(browser) == "alan"
    after = strict_desk.user("alan")
    assert after is not None
    assert after["id"] == before["id"]
    assert (after["first_name"], after["last_name"], after["email"]) == ("Alan", "Turing", "alan@example.com")
    identity = strict_desk.identity(after["id"])
    assert identity is not None and identity["sub"] == sub


def test_a_provider_user_cannot_take_over_a_staff_account_of_the_same_name(
    strict_desk: Desk, oidc_provider: Provider, browser: httpx.Client
) -> None:
    oidc_provider.add_user("root", "root-at-the-idp", "Not", "Root", "root@example.com")

    answer = sign_in(browser, strict_desk, oidc_provider, "root", "root-at-the-idp")

    assert location(answer) == f"{strict_desk.url}/accounts/login/?sso=failed"
    assert strict_desk.session_username(browser) is None
    root = strict_desk.user("root")
    assert root is not None and root["first_name"] == ""
    assert strict_desk.identity(root["id"]) is None
