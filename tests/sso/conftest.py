"""A real OpenID provider and desks configured against it, each a process on loopback.

The provider is django-oidc-provider under ``tests/sso/provider`` served by ``runserver``; a desk is
``daphne desktop.asgi:application`` with the OIDC environment pointing at it and its own SQLite
database, which the tests read to see whom a session belongs to.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.core import signing

from tests.servers import ROOT, free_port, serving

START_TIMEOUT_S = 30.0
COMMAND_TIMEOUT_S = 120.0
PROVIDER_NAME = "Test IdP"
DESK_SECRET_KEY = "switchboard-sso-tests-desk-key-not-a-secret-0123456789"


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without the test run's own Django, SSO and database settings, plus ``extra``."""
    prefixes = ("OIDC_", "SSO_", "DJANGO_", "DATABASE_URL", "REDIS_URL", "LOCAL_LOGIN")
    env = {name: value for name, value in os.environ.items() if not name.startswith(prefixes)}
    return {**env, **extra}


def run(command: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(  # noqa: S603
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited with {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result.stdout


@dataclass
class Provider:
    url: str
    env: dict[str, str]

    @property
    def issuer(self) -> str:
        return f"{self.url}/openid"

    def seed(self, *args: str) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(
            run([sys.executable, "-m", "tests.sso.provider.seed", *args], self.env)
        )
        return result

    def add_user(self, username: str, password: str, first: str, last: str, email: str) -> str:
        """Creates a user at the provider and returns its ``sub``."""
        return str(self.seed("user", username, password, first, last, email)["sub"])


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    database = tmp_path_factory.mktemp("provider") / "provider.sqlite3"
    env = clean_env(
        DJANGO_SETTINGS_MODULE="tests.sso.provider.settings", PROVIDER_DB=str(database), PROVIDER_URL=url
    )
    django = [sys.executable, "-m", "django"]
    run([*django, "migrate", "--verbosity", "0"], env)
    created = run([*django, "creatersakey"], env)
    assert "successfully created" in created, created  # the command reports failures with status 0
    command = [*django, "runserver", f"127.0.0.1:{port}", "--noreload", "--skip-checks"]
    ready = f"{url}/openid/.well-known/openid-configuration"
    with serving("the OpenID provider", command, ready, timeout=START_TIMEOUT_S, env=env, any_answer=True):
        yield Provider(url, env)


@dataclass
class Desk:
    url: str
    database: Path
    env: dict[str, str]

    def manage_shell(self, code: str) -> str:
        return run([sys.executable, "manage.py", "shell", "--command", code], self.env)

    def query(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        with sqlite3.connect(self.database) as connection:
            connection.row_factory = sqlite3.Row
            return [dict(row) for row in connection.execute(sql, params)]

    def user(self, username: str) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM auth_user WHERE username = ?", username)
        return rows[0] if rows else None

    def identity(self, user_id: int) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM desktop_oidcidentity WHERE user_id = ?", user_id)
        return rows[0] if rows else None

    def session_username(self, http: httpx.Client) -> str | None:
        """Whom the desk's session cookie in ``http`` is logged in as, read from the desk's database."""
        key = http.cookies.get("sessionid")
        if not key:
            return None
        rows = self.query("SELECT session_data FROM django_session WHERE session_key = ?", key)
        if not rows:
            return None
        data = signing.loads(
            rows[0]["session_data"],
            key=DESK_SECRET_KEY,
            salt="django.contrib.sessions.SessionStore",
            serializer=signing.JSONSerializer,
        )
        if "_auth_user_id" not in data:
            return None
        users = self.query("SELECT username FROM auth_user WHERE id = ?", int(data["_auth_user_id"]))
        return str(users[0]["username"]) if users else None


@contextmanager
def running_desk(provider: Provider, directory: Path, client_id: str, **settings: str) -> Iterator[Desk]:
    """A desk process whose OIDC client ``client_id`` is registered at ``provider``."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    secret = f"{client_id}-secret"
    provider.seed("client", client_id, secret, url)
    database = directory / "desk.sqlite3"
    openid = provider.issuer
    env = clean_env(
        DJANGO_SETTINGS_MODULE="desktop.settings",
        SECRET_KEY=DESK_SECRET_KEY,
        DATABASE_URL=f"sqlite:///{database}",
        SIMULATOR_ENABLED="0",
        SECURE_COOKIES="0",
        OIDC_RP_CLIENT_ID=client_id,
        OIDC_RP_CLIENT_SECRET=secret,
        OIDC_OP_AUTHORIZATION_ENDPOINT=f"{openid}/authorize",
        OIDC_OP_TOKEN_ENDPOINT=f"{openid}/token",
        OIDC_OP_USER_ENDPOINT=f"{openid}/userinfo",
        OIDC_OP_JWKS_ENDPOINT=f"{openid}/jwks",
        OIDC_OP_LOGOUT_URL=f"{openid}/end-session",
        OIDC_PROVIDER_NAME=PROVIDER_NAME,
        OIDC_TIMEOUT_SECONDS="10",
        **settings,
    )
    run([sys.executable, "manage.py", "migrate", "--verbosity", "0"], env)
    command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "desktop.asgi:application"]
    ready = f"{url}/accounts/login/"
    with serving("the desk", command, ready, timeout=START_TIMEOUT_S, env=env, any_answer=True):
        yield Desk(url, database, env)
