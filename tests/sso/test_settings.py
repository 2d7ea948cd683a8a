"""The single sign-on settings block, read by a fresh interpreter from an environment."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from tests.servers import ROOT
from tests.sso.conftest import clean_env

PRINT_SETTINGS = """
import json
from desktop import settings as s
print(json.dumps({name: getattr(s, name) for name in (
    "SSO_HEADER", "SSO_TRUSTED_PROXIES", "SSO_CREATE_USERS", "MIDDLEWARE", "AUTHENTICATION_BACKENDS",
    "OIDC_ENABLED", "OIDC_USE_PKCE", "OIDC_RP_SIGN_ALGO", "OIDC_STORE_ID_TOKEN", "LOCAL_LOGIN_FOR_AGENTS",
)}))
"""
AUTH = "desktop.middleware.AuthenticationMiddleware"


def load(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS],
        cwd=ROOT,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def settings_for(**env: str) -> dict[str, Any]:
    result = load(**env)
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = json.loads(result.stdout)
    return loaded


def test_single_sign_on_is_off_by_default() -> None:
    s = settings_for()

    assert s["SSO_HEADER"] == "" and s["SSO_TRUSTED_PROXIES"] == []
    assert "desktop.sso.HeaderSsoMiddleware" not in s["MIDDLEWARE"]
    assert s["AUTHENTICATION_BACKENDS"] == ["django.contrib.auth.backends.ModelBackend"]
    assert s["OIDC_ENABLED"] is False
    assert s["LOCAL_LOGIN_FOR_AGENTS"] is True


def test_header_mode_trusts_no_address_it_is_not_told_of() -> None:
    result = load(SSO_HEADER="X-Remote-User")

    assert result.returncode != 0
    assert "ImproperlyConfigured: SSO_HEADER='X-Remote-User' needs SSO_TRUSTED_PROXIES" in result.stderr


def test_header_mode_puts_its_middleware_after_authentication() -> None:
    s = settings_for(SSO_HEADER="X-Remote-User", SSO_TRUSTED_PROXIES="127.0.0.1/32")

    assert s["SSO_TRUSTED_PROXIES"] == ["127.0.0.1/32"]
    assert s["SSO_CREATE_USERS"] is False
    middleware = s["MIDDLEWARE"]
    assert middleware[middleware.index(AUTH) + 1] == "desktop.sso.HeaderSsoMiddleware"
    assert s["AUTHENTICATION_BACKENDS"][-1] == "desktop.sso.HeaderSsoBackend"


def test_header_mode_takes_the_proxies_from_the_environment() -> None:
    s = settings_for(SSO_HEADER="X-Remote-User", SSO_TRUSTED_PROXIES="10.0.0.5, 10.1.0.0/16")

    assert s["SSO_TRUSTED_PROXIES"] == ["10.0.0.5", "10.1.0.0/16"]


def test_oidc_turns_on_with_a_client_id_and_uses_pkce() -> None:
    endpoints = {
        f"OIDC_OP_{name}": f"https://idp.example.com/{name.lower()}"
        for name in ("AUTHORIZATION_ENDPOINT", "TOKEN_ENDPOINT", "USER_ENDPOINT", "JWKS_ENDPOINT")
    }
    s = settings_for(OIDC_RP_CLIENT_ID="desk", OIDC_RP_CLIENT_SECRET="secret", **endpoints)

    assert s["OIDC_ENABLED"] is True
    assert s["OIDC_USE_PKCE"] is True and s["OIDC_RP_SIGN_ALGO"] == "RS256"
    assert s["AUTHENTICATION_BACKENDS"][-1] == "desktop.sso.OidcBackend"
    assert s["OIDC_STORE_ID_TOKEN"] is False  # nothing to hint at without OIDC_OP_LOGOUT_URL


def test_oidc_without_its_endpoints_stops_the_desk_with_a_clear_error() -> None:
    result = load(OIDC_RP_CLIENT_ID="desk", OIDC_OP_AUTHORIZATION_ENDPOINT="https://idp.example.com/auth")

    assert result.returncode != 0
    assert "OIDC_OP_TOKEN_ENDPOINT, OIDC_OP_USER_ENDPOINT, OIDC_OP_JWKS_ENDPOINT" in result.stderr
