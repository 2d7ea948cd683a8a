"""Trusted-header SSO: the proxy's user header counts only from SSO_TRUSTED_PROXIES, and only when on,
on pages and on the desk's WebSocket alike.

Django's test client goes through the synchronous middleware chain and its async client through
the asynchronous one; the middleware has a path for each, so both are exercised.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import SESSION_KEY, get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.test import AsyncClient, Client, RequestFactory

from calls.models import AgentLogin, VoiceServer
from desktop.asgi import application
from desktop.sso import HeaderSsoBackend, HeaderSsoMiddleware

User = get_user_model()
AUTH_MIDDLEWARE = "desktop.middleware.AuthenticationMiddleware"
PROXY = "10.20.3.4"
STRANGER = "203.0.113.9"

pytestmark = pytest.mark.django_db


@pytest.fixture
def header_sso(settings: Any) -> Any:
    """What the settings block does for SSO_HEADER=X-Remote-User, with a proxy network added."""
    settings.SSO_HEADER = "X-Remote-User"
    settings.SSO_TRUSTED_PROXIES = ["127.0.0.1/32", "::1/128", "10.20.0.0/16"]
    settings.SSO_CREATE_USERS = False
    middleware = list(settings.MIDDLEWARE)
    middleware.insert(middleware.index(AUTH_MIDDLEWARE) + 1, "desktop.sso.HeaderSsoMiddleware")
    settings.MIDDLEWARE = middleware
    settings.AUTHENTICATION_BACKENDS = [*settings.AUTHENTICATION_BACKENDS, "desktop.sso.HeaderSsoBackend"]
    return settings


@pytest.fixture
def ada() -> Any:
    return User.objects.create_user("ada", password="ada-local-password")


def logged_in_user_id(client: Client) -> int | None:
    value = client.session.get(SESSION_KEY)
    return int(value) if value is not None else None


def test_the_header_from_a_trusted_proxy_logs_the_user_in(header_sso: Any, ada: Any, client: Client) -> None:
    response = client.get("/", headers={"X-Remote-User": "ada"}, REMOTE_ADDR=PROXY)

    assert response.status_code == 200
    assert logged_in_user_id(client) == ada.pk


def test_the_header_from_an_untrusted_address_is_ignored_and_logged(
    header_sso: Any, ada: Any, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="desktop.sso"):
        response = client.get("/", headers={"X-Remote-User": "ada"}, REMOTE_ADDR=STRANGER)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert logged_in_user_id(client) is None
    [record] = [r for r in caplog.records if r.name == "desktop.sso"]
    assert record.levelno == logging.WARNING
    assert STRANGER in record.getMessage() and "X-Remote-User" in record.getMessage()


def test_the_header_is_ignored_when_header_mode_is_off(ada: Any, client: Client) -> None:
    response = client.get("/", headers={"X-Remote-User": "ada"}, REMOTE_ADDR="127.0.0.1")

    assert response.status_code == 302
    assert logged_in_user_id(client) is None


def test_the_middleware_ignores_the_header_when_the_setting_is_empty(
    header_sso: Any, ada: Any, client: Client
) -> None:
    header_sso.SSO_HEADER = ""

    response = client.get("/", headers={"X-Remote-User": "ada"}, REMOTE_ADDR=PROXY)

    assert response.status_code == 302
    assert logged_in_user_id(client) is None


def test_an_unknown_user_is_refused_when_creation_is_off(header_sso: Any, client: Client) -> None:
    response = client.get("/", headers={"X-Remote-User": "newcomer"}, REMOTE_ADDR=PROXY)

    assert response.status_code == 302
    assert logged_in_user_id(client) is None
    assert not User.objects.filter(username="newcomer").exists()


def test_an_unknown_user_is_created_when_creation_is_on(header_sso: Any, client: Client) -> None:
    header_sso.SSO_CREATE_USERS = True

    response = client.get("/", headers={"X-Remote-User": "newcomer"}, REMOTE_ADDR=PROXY)

    assert response.status_code == 200
    newcomer = User.objects.get(username="newcomer")
    assert logged_in_user_id(client) == newcomer.pk
    assert not newcomer.has_usable_password()


def test_an_inactive_user_is_refused(header_sso: Any, ada: Any, client: Client) -> None:
    ada.is_active = False
    ada.save()

    response = client.get("/", headers={"X-Remote-User": "ada"}, REMOTE_ADDR=PROXY)

    assert response.status_code == 302
    assert logged_in_user_id(client) is None


def test_an_ipv4_proxy_seen_through_a_dual_stack_socket_is_trusted(
    header_sso: Any, ada: Any, client: Client
) -> None:
    response = client.get("/", headers={"X-Remote-User": "ada"}, REMOTE_ADDR=f"::ffff:{PROXY}")

    assert response.status_code == 200
    assert logged_in_user_id(client) == ada.pk


def test_a_header_sent_twice_is_ignored(header_sso: Any, client: Client) -> None:
    header_sso.SSO_CREATE_USERS = True

    # What a server makes of a client's copy passed through beside the proxy's own.
    response = client.get("/", headers={"X-Remote-User": "mallory,ada"}, REMOTE_ADDR=PROXY)

    assert response.status_code == 302
    assert logged_in_user_id(client) is None
    assert not User.objects.exists()


def test_the_backend_itself_refuses_a_request_from_an_untrusted_address(header_sso: Any, ada: Any) -> None:
    backend = HeaderSsoBackend()

    assert backend.authenticate(RequestFactory().get("/", REMOTE_ADDR=STRANGER), remote_user="ada") is None
    assert backend.authenticate(RequestFactory().get("/", REMOTE_ADDR=PROXY), remote_user="ada") == ada


def test_a_header_session_ends_when_the_header_stops_coming(
    header_sso: Any, ada: Any, client: Client
) -> None:
    client.get("/", headers={"X-Remote-User": "ada"}, REMOTE_ADDR=PROXY)

    response = client.get("/", REMOTE_ADDR=PROXY)

    assert response.status_code == 302
    assert logged_in_user_id(client) is None


def test_a_header_session_ends_when_an_untrusted_address_sends_the_header(
    header_sso: Any, ada: Any, client: Client
) -> None:
    client.get("/", headers={"X-Remote-User": "ada"}, REMOTE_ADDR=PROXY)

    client.get("/", headers={"X-Remote-User": "ada"}, REMOTE_ADDR=STRANGER)

    assert logged_in_user_id(client) is None


def test_a_local_login_is_left_alone_by_requests_without_the_header(header_sso: Any, client: Client) -> None:
    admin = User.objects.create_superuser("admin", password="admin-local-password")
    client.force_login(admin, backend="django.contrib.auth.backends.ModelBackend")

    response = client.get("/", REMOTE_ADDR=STRANGER)

    assert response.status_code == 200
    assert logged_in_user_id(client) == admin.pk


@pytest.mark.django_db(transaction=True)
async def test_the_async_path_trusts_the_proxy(header_sso: Any, async_client: AsyncClient) -> None:
    ada = await User.objects.acreate(username="ada")

    response = await async_client.get("/", headers={"X-Remote-User": "ada"})  # from 127.0.0.1

    assert response.status_code == 200
    assert await (await async_client.asession()).aget(SESSION_KEY) == str(ada.pk)


@pytest.mark.django_db(transaction=True)
async def test_the_async_path_ignores_an_untrusted_address(
    header_sso: Any, async_client: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    await User.objects.acreate(username="ada")
    header_sso.SSO_TRUSTED_PROXIES = ["10.20.0.0/16"]  # the async test client always comes from 127.0.0.1

    with caplog.at_level(logging.WARNING, logger="desktop.sso"):
        response = await async_client.get("/", headers={"X-Remote-User": "ada"})

    assert response.status_code == 302
    assert await (await async_client.asession()).aget(SESSION_KEY) is None
    assert any(
        "127.0.0.1" in record.getMessage() for record in caplog.records if record.name == "desktop.sso"
    )


async def _desk_socket(cookie: str, client: str, *headers: tuple[bytes, bytes]) -> tuple[bool, Any]:
    """Whether the desk's WebSocket takes ``cookie``'s session from the address ``client``."""
    base = [
        (b"origin", b"http://localhost"),
        (b"host", b"localhost"),
        (b"cookie", f"sessionid={cookie}".encode()),
    ]
    socket = WebsocketCommunicator(application, "/ws/desktop/", headers=[*base, *headers])
    socket.scope["client"] = (client, 50000)
    connected, code = await socket.connect()
    await socket.disconnect()
    return connected, code


@pytest.mark.django_db(transaction=True)
async def test_a_header_session_works_on_the_websocket_only_through_the_trusted_proxy(
    header_sso: Any, caplog: pytest.LogCaptureFixture
) -> None:
    @sync_to_async
    def header_session() -> str:
        user = User.objects.create_user("ada")
        server = VoiceServer.objects.create(name="Nobody", base_url="http://127.0.0.1:9/genesys")
        AgentLogin.objects.create(user=user, server=server, username="ada", password="x", dn="5009")
        client = Client()
        assert client.get("/", headers={"X-Remote-User": "ada"}, REMOTE_ADDR=PROXY).status_code == 200
        return str(client.cookies["sessionid"].value)

    cookie = await header_session()

    with caplog.at_level(logging.WARNING, logger="desktop.sso"):
        from_a_stranger = await _desk_socket(cookie, STRANGER)
        stranger_with_header = await _desk_socket(cookie, STRANGER, (b"x-remote-user", b"ada"))
        proxy_without_header = await _desk_socket(cookie, PROXY)
        proxy_naming_another = await _desk_socket(cookie, PROXY, (b"x-remote-user", b"bob"))
    through_the_proxy = await _desk_socket(cookie, PROXY, (b"x-remote-user", b"ada"))

    assert (
        from_a_stranger
        == stranger_with_header
        == proxy_without_header
        == proxy_naming_another
        == (False, 4401)
    )
    assert through_the_proxy[0] is True
    assert any(STRANGER in record.getMessage() for record in caplog.records if record.name == "desktop.sso")


@pytest.mark.django_db(transaction=True)
async def test_a_local_session_works_on_the_websocket_from_anywhere(header_sso: Any) -> None:
    @sync_to_async
    def local_session() -> str:
        user = User.objects.create_user("ada", password="ada-local-password")
        server = VoiceServer.objects.create(name="Nobody", base_url="http://127.0.0.1:9/genesys")
        AgentLogin.objects.create(user=user, server=server, username="ada", password="x", dn="5009")
        client = Client()
        client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
        return str(client.cookies["sessionid"].value)

    connected, _ = await _desk_socket(await local_session(), STRANGER)

    assert connected


def test_a_malformed_trusted_proxy_stops_the_desk_at_startup(header_sso: Any) -> None:
    header_sso.SSO_TRUSTED_PROXIES = ["10.20.3.4/16"]

    with pytest.raises(ImproperlyConfigured, match="SSO_TRUSTED_PROXIES"):
        HeaderSsoMiddleware(lambda request: None)


def test_a_header_name_with_underscores_stops_the_desk_at_startup(header_sso: Any) -> None:
    header_sso.SSO_HEADER = "X_Remote_User"

    with pytest.raises(ImproperlyConfigured, match="dashes"):
        HeaderSsoMiddleware(lambda request: None)
