"""Production refuses the public development SECRET_KEY: a fresh interpreter starts Django from an
environment, as a deployment would."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from desktop.settings import DEVELOPMENT_SECRET_KEY, secret_key_from_env
from tests.servers import ROOT

START = "import django; django.setup()"
OWN_KEY = "a-long-random-production-key-0123456789-abcdefghijklmnopqrstuvwxyz"


def start(**env: str) -> subprocess.CompletedProcess[str]:
    """``django.setup()`` with the desk's settings, in this environment minus the settings tested here."""
    base = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "SIMULATOR_ENABLED", "DEBUG")}
    return subprocess.run(  # noqa: S603
        [sys.executable, "-c", START],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "desktop.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("key", [None, "", DEVELOPMENT_SECRET_KEY])
def test_production_refuses_to_start_without_a_secret_key_of_its_own(key: str | None) -> None:
    env = {"SIMULATOR_ENABLED": "0", "DEBUG": "0"}
    if key is not None:
        env["SECRET_KEY"] = key

    result = start(**env)

    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY" in result.stderr
    assert "set SECRET_KEY to a long random value" in result.stderr


def test_production_starts_with_its_own_secret_key() -> None:
    result = start(SIMULATOR_ENABLED="0", DEBUG="0", SECRET_KEY=OWN_KEY)

    assert result.returncode == 0, result.stderr


def test_the_embedded_default_starts_without_a_secret_key() -> None:
    result = start()

    assert result.returncode == 0, result.stderr


def test_the_checks_of_manage_py_report_the_missing_key_too() -> None:
    base = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "SIMULATOR_ENABLED", "DEBUG")}
    result = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**base, "SIMULATOR_ENABLED": "0"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, DEVELOPMENT_SECRET_KEY),
        ({"SIMULATOR_ENABLED": "1", "SECRET_KEY": ""}, DEVELOPMENT_SECRET_KEY),
        ({"SIMULATOR_ENABLED": "0", "DEBUG": "1"}, DEVELOPMENT_SECRET_KEY),
        ({"SIMULATOR_ENABLED": "0", "SECRET_KEY": OWN_KEY}, OWN_KEY),
        ({"SECRET_KEY": OWN_KEY}, OWN_KEY),
    ],
)
def test_the_key_comes_from_the_environment_or_the_development_default(
    env: dict[str, str], expected: str
) -> None:
    assert secret_key_from_env(env) == expected


def test_the_refusal_names_the_variable_and_why() -> None:
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY is the public development key"):
        secret_key_from_env({"SIMULATOR_ENABLED": "0", "SECRET_KEY": DEVELOPMENT_SECRET_KEY})
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY is not set"):
        secret_key_from_env({"SIMULATOR_ENABLED": "0", "SECRET_KEY": "  "})
