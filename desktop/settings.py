"""Switchboard's one settings file: every knob is an environment variable with a safe default.

The defaults run the embedded demo: SQLite next to ``manage.py``, the in-memory channel layer
and the simulator mounted under ``/sim/``. Production sets DATABASE_URL, REDIS_URL and
SIMULATOR_ENABLED=0 (see the README's Configuration table).

The few settings that are built from several variables come from small functions taking an
environment mapping, so tests can check them without reloading this module.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    if name not in env:
        return default
    value = env[name].strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name}={env[name]!r} is not a boolean (use 1 or 0)")


def env_list(env: Mapping[str, str], name: str, default: str) -> list[str]:
    return [item.strip() for item in env.get(name, default).split(",") if item.strip()]


def databases_from_env(env: Mapping[str, str], base_dir: Path) -> dict[str, Any]:
    """DATABASE_URL when set, else SQLite in ``db.sqlite3`` beside ``manage.py``."""
    url = env.get("DATABASE_URL") or f"sqlite:///{base_dir / 'db.sqlite3'}"
    # Persistent connections are per thread and ASGI runs sync code in many threads: keep 0.
    database = dj_database_url.parse(url, conn_max_age=0, conn_health_checks=True)
    if database["ENGINE"] == "django.db.backends.sqlite3":
        # The web process and the in-process session worker write concurrently: WAL lets readers
        # through during a write, and IMMEDIATE makes writers queue instead of failing on upgrade.
        database.setdefault("OPTIONS", {}).update(
            {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            }
        )
    return {"default": database}


def channel_layers_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """Redis when REDIS_URL is set; otherwise the in-memory layer, which cannot cross processes."""
    redis_url = env.get("REDIS_URL")
    if redis_url:
        return {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {"hosts": [redis_url]},
            }
        }
    return {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


ENV = os.environ

SECRET_KEY = ENV.get("SECRET_KEY", "switchboard-development-key-set-SECRET_KEY-in-production-4f9c2a7e1b")
DEBUG = env_bool(ENV, "DEBUG", False)
ALLOWED_HOSTS = env_list(ENV, "ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list(ENV, "CSRF_TRUSTED_ORIGINS", "")

# The simulator is a separate ASGI app reached over HTTP; the desk names its factory as a
# dotted path and never imports the simulator package itself.
SIMULATOR_ENABLED = env_bool(ENV, "SIMULATOR_ENABLED", True)
SIMULATOR_CONTROL_ENABLED = env_bool(ENV, "SIMULATOR_CONTROL_ENABLED", SIMULATOR_ENABLED)
SIMULATOR_ANSWER_DELAY_MS = int(ENV.get("SIMULATOR_ANSWER_DELAY_MS", "1500"))
SIMULATOR_ASGI_FACTORY = "simulator.asgi.build_app"

# Fernet keys for secrets at rest (agent logins' Voice API passwords), newest first; empty means a
# key derived from SECRET_KEY, fine for the demo. Generate one with
# `python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`.
FIELD_ENCRYPTION_KEYS = env_list(ENV, "FIELD_ENCRYPTION_KEYS", "")

# The session worker: how long a worker's claim on an agent session lasts without renewal, and
# the longest pause between reconnection attempts.
VOICE_SESSION_LEASE_SECONDS = float(ENV.get("VOICE_SESSION_LEASE_SECONDS", "30"))
VOICE_SESSION_MAX_BACKOFF_SECONDS = float(ENV.get("VOICE_SESSION_MAX_BACKOFF_SECONDS", "30"))

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Before "channels": the first app that has a command wins, and calls overrides `runworker`.
    "calls",
    "channels",
    "django_htmx",
    "desktop",
    # Installed for its `voicesim` management command only.
    "simulator",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "desktop.urls"
ASGI_APPLICATION = "desktop.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = databases_from_env(ENV, BASE_DIR)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
CHANNEL_LAYERS = channel_layers_from_env(ENV)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# Secure cookies need HTTPS. The embedded demo is plain HTTP on a laptop, so they default on
# only for a real deployment: the simulator off and DEBUG off.
SECURE_COOKIES = env_bool(ENV, "SECURE_COOKIES", not DEBUG and not SIMULATOR_ENABLED)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SECURE = SECURE_COOKIES
if env_bool(ENV, "BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LANGUAGE_CODE = "en-us"
TIME_ZONE = ENV.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# desktop.asgi wraps the app in Django's ASGIStaticFilesHandler, which serves these from the
# finders whatever DEBUG says: one process serves the whole desk, no collectstatic needed.
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"

LOG_LEVEL = ENV.get("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        name: {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False}
        for name in ("switchboard", "desktop", "calls", "simulator")
    },
}
