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
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured
from redis.maint_notifications import MaintNotificationsConfig

# Lets the admin, form and field classes take type arguments (ModelAdmin[Model]) at run time too.
django_stubs_ext.monkeypatch()

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
    if database["ENGINE"] == "django.db.backends.postgresql":
        # A pool instead: a new PostgreSQL connection per query costs ~20 ms, and the session worker
        # writes on every call event.
        # Each thread that does database work holds a connection while it works: the session
        # worker's write threads (DB_WRITE_CONCURRENCY), Django's own thread, and a few to spare.
        default_size = int(env.get("DB_WRITE_CONCURRENCY", "8")) + 4
        pool = {"min_size": 1, "max_size": int(env.get("DATABASE_POOL_SIZE", str(default_size)))}
        database.setdefault("OPTIONS", {})["pool"] = pool
        database["CONN_HEALTH_CHECKS"] = False
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
    if redis_url and env.get("CHANNEL_LAYER", "redis") == "pubsub":
        # Redis pub/sub: a group send is one PUBLISH whatever the group's size, and nothing is
        # queued for a process that is not listening (a push to a page not open is simply lost).
        return {
            "default": {
                "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                "CONFIG": {"hosts": [{"address": redis_url}]},
            }
        }
    if redis_url:
        return {
            "default": {
                # channels_redis's layer, with a group send of two trips to Redis instead of four.
                "BACKEND": "calls.layer.DeskRedisChannelLayer",
                # redis-py 8 gives every connection a 5 s socket timeout, as long as channels_redis's
                # blocking read: an idle consumer's read would fail (channels_redis#422).
                "CONFIG": {
                    # Without maintenance notifications redis-py checks a pooled connection before
                    # reuse, so one whose server restarted is not handed out to fail a command.
                    "hosts": [
                        {
                            "address": redis_url,
                            "socket_timeout": None,
                            "maint_notifications_config": MaintNotificationsConfig(enabled=False),
                            # redis-py fails a command past its pool's size (100 by default): a daphne
                            # process with thousands of sockets joins and leaves groups at once.
                            "max_connections": int(env.get("REDIS_MAX_CONNECTIONS", "1000")),
                        }
                    ],
                    # channels_redis queues every WebSocket of one daphne process in one list and drops
                    # group messages past its capacity (default 100): a burst to 500 agents lost pushes.
                    "capacity": int(env.get("CHANNEL_LAYER_CAPACITY", "5000")),
                },
            }
        }
    return {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


# Public (it is in this file): fine for the embedded demo, never for a desk that talks to a real switch.
DEVELOPMENT_SECRET_KEY = "switchboard-development-key-set-SECRET_KEY-in-production-4f9c2a7e1b"  # noqa: S105


def secret_key_from_env(env: Mapping[str, str]) -> str:
    """SECRET_KEY. It signs sessions and, unless FIELD_ENCRYPTION_KEYS is set, derives the key that
    encrypts the Voice API passwords: production (the simulator off, DEBUG off) refuses to start
    without one of its own rather than run on the development key everyone can read."""
    key = env.get("SECRET_KEY", "")
    if key.strip() and key != DEVELOPMENT_SECRET_KEY:
        return key
    production = not env_bool(env, "SIMULATOR_ENABLED", True) and not env_bool(env, "DEBUG", False)
    if production:
        problem = "is not set" if not key.strip() else "is the public development key"
        raise ImproperlyConfigured(
            f"SECRET_KEY {problem}. A desk with the simulator off (SIMULATOR_ENABLED=0) and DEBUG off "
            "needs a secret of its own: set SECRET_KEY to a long random value, for example the output of "
            '`python -c "import secrets; print(secrets.token_urlsafe(50))"`.'
        )
    return DEVELOPMENT_SECRET_KEY


ENV = os.environ

SECRET_KEY = secret_key_from_env(ENV)
DEBUG = env_bool(ENV, "DEBUG", False)
ALLOWED_HOSTS = env_list(ENV, "ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list(ENV, "CSRF_TRUSTED_ORIGINS", "")

# The simulator is a separate ASGI app reached over HTTP; the desk names its factory as a
# dotted path and never imports the simulator package itself.
SIMULATOR_ENABLED = env_bool(ENV, "SIMULATOR_ENABLED", True)
# The control API plays the outside world (places calls, resets the switch, injects faults). The
# embedded demo (the simulator on the public development key) serves it to anyone on the machine;
# any other desk serves it only with a token (`Authorization: Bearer <token>`).
SIMULATOR_CONTROL_TOKEN = ENV.get("SIMULATOR_CONTROL_TOKEN", "").strip()
EMBEDDED_DEMO = SIMULATOR_ENABLED and SECRET_KEY == DEVELOPMENT_SECRET_KEY
SIMULATOR_CONTROL_ENABLED = env_bool(
    ENV, "SIMULATOR_CONTROL_ENABLED", SIMULATOR_ENABLED and (EMBEDDED_DEMO or bool(SIMULATOR_CONTROL_TOKEN))
)
if SIMULATOR_CONTROL_ENABLED and not EMBEDDED_DEMO and not SIMULATOR_CONTROL_TOKEN:
    raise ImproperlyConfigured(
        "SIMULATOR_CONTROL_ENABLED on a desk with a SECRET_KEY of its own needs SIMULATOR_CONTROL_TOKEN: "
        "anyone who can reach the desk could otherwise place calls and reset the switch"
    )
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
# How often a session compares the saved state with the Voice API's and repairs it (0: never).
VOICE_SESSION_RESYNC_SECONDS = float(ENV.get("VOICE_SESSION_RESYNC_SECONDS", "60"))
# How many sessions of one worker sign in and resync at once when it starts or takes over.
VOICE_SESSION_START_CONCURRENCY = int(ENV.get("VOICE_SESSION_START_CONCURRENCY", "64"))
# How often a session worker collects all of its garbage at once (0: never); in between, each full
# collection leaves out what survived the one before (calls.heap).
GC_REFREEZE_SECONDS = float(ENV.get("GC_REFREEZE_SECONDS", "900"))
# Threads (each with its own connection) that save live state and call history behind the pushes.
DB_WRITE_CONCURRENCY = int(ENV.get("DB_WRITE_CONCURRENCY", "8"))
# What ending a session (desk sign-out, an admin's End session, a deactivated user) does first.
SESSION_END_ACTION = ENV.get("SESSION_END_ACTION", "logout")
if SESSION_END_ACTION not in ("logout", "notready"):
    raise ImproperlyConfigured("SESSION_END_ACTION must be logout or notready")
# A Ready agent with no desk tab open this long is set Not Ready ("Desk closed"); 0: never.
DESK_CLOSED_GRACE_SECONDS = float(ENV.get("DESK_CLOSED_GRACE_SECONDS", "60"))
# A missed call sets a Ready agent Not Ready ("Missed call"), as ring-no-answer does.
MISSED_CALL_NOT_READY = env_bool(ENV, "MISSED_CALL_NOT_READY", True)
# A monitored agent's call card says that a supervisor is listening, coaching or has joined.
SUPERVISION_INDICATOR = env_bool(ENV, "SUPERVISION_INDICATOR", True)

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
    "desktop.middleware.SecurityMiddleware",
    "desktop.middleware.SessionMiddleware",
    "desktop.middleware.CommonMiddleware",
    "desktop.middleware.CsrfViewMiddleware",
    "desktop.middleware.AuthenticationMiddleware",
    "desktop.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "desktop.urls"
ASGI_APPLICATION = "desktop.asgi.application"

TEMPLATES: list[dict[str, Any]] = [
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
    {
        # The call card (calls.fragments.card), rendered for every call event: Jinja2 renders it
        # several times faster than Django's engine.
        "BACKEND": "django.template.backends.jinja2.Jinja2",
        "DIRS": [BASE_DIR / "jinja"],
        "APP_DIRS": False,
        "OPTIONS": {"environment": "desktop.jinja.environment"},
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
# Where `collectstatic` puts them for a proxy to serve (deploy/nginx.conf).
STATIC_ROOT = Path(ENV["STATIC_ROOT"]) if ENV.get("STATIC_ROOT") else BASE_DIR / "staticfiles"

# A call that rang at least this long at the agent and stopped unanswered was missed; one that
# stopped sooner was abandoned by its caller (the call history's outcome).
MISSED_CALL_RING_SECONDS = float(ENV.get("MISSED_CALL_RING_SECONDS", "8"))

# --- Security ---
# OWASP ASVS level 2 is the yardstick. desktop.security holds the middleware; calls.ratelimit the
# counters (in CACHES); calls.audit the audit log.


def caches_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """Redis when REDIS_URL is set (rate limits shared by every process), else this process's memory."""
    redis_url = env.get("REDIS_URL")
    if redis_url:
        return {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": redis_url,
                "KEY_PREFIX": "switchboard",
                # A Redis that stops answering must not hold up an agent's click for long.
                "OPTIONS": {
                    "socket_connect_timeout": 1,
                    "socket_timeout": 1,
                    "pool_class": "desktop.cache.SharedConnectionPool",  # one per process, not per request
                },
            }
        }
    return {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "desk"}}


CACHES = caches_from_env(ENV)

# Who may show the desk in a frame (a CRM), as CSP frame-ancestors sources, e.g.
# "https://crm.example.com"; 'none' (the default) also sends X-Frame-Options: DENY. A CRM on
# another site also needs cookies that cross sites, which SameSite=Lax does not allow.
FRAME_ANCESTORS = env_list(ENV, "FRAME_ANCESTORS", "'none'")
MIDDLEWARE.remove("django.middleware.clickjacking.XFrameOptionsMiddleware")  # framing is decided below
MIDDLEWARE.insert(
    MIDDLEWARE.index("desktop.middleware.SecurityMiddleware") + 1,
    "desktop.security.SecurityHeadersMiddleware",
)
MIDDLEWARE.insert(
    MIDDLEWARE.index("desktop.security.SecurityHeadersMiddleware") + 1,
    "desktop.security.RequestBodyMiddleware",
)
MIDDLEWARE.append("desktop.security.DeskGuardMiddleware")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Only ever sent over HTTPS; on by default where cookies are secure, that is in production.
SECURE_HSTS_SECONDS = int(ENV.get("SECURE_HSTS_SECONDS", "31536000" if SECURE_COOKIES else "0"))

# Sessions end after this long without a request; the expiry slides (written at most once a minute).
# The session cookie stays SameSite=Lax (above): Strict would drop it on the redirect back from an
# OpenID Connect provider.
SESSION_IDLE_TIMEOUT_SECONDS = int(ENV.get("SESSION_IDLE_TIMEOUT_SECONDS", str(8 * 3600)))
SESSION_COOKIE_AGE = SESSION_IDLE_TIMEOUT_SECONDS
# Pages carry the token in hx-headers; no script needs to read the cookie.
CSRF_COOKIE_HTTPONLY = True
# A refused CSRF token on a desk control tells the agent why and offers a reload.
CSRF_FAILURE_VIEW = "desktop.views.csrf_failure"

# An action identical to the user's previous one within this many seconds is a double click: it
# is answered 204 and not sent. More than ACTION_RATE_LIMIT ("count/seconds") is answered 429.
ACTION_DUPLICATE_WINDOW_SECONDS = float(ENV.get("ACTION_DUPLICATE_WINDOW_SECONDS", "1.5"))
ACTION_RATE_LIMIT = ENV.get("ACTION_RATE_LIMIT", "30/10")
# Sign-in throttling ("count/seconds"): after `count` failed sign-ins for a username, from any
# address, each further attempt waits 1 s, doubling with every failure, at most `seconds`; sooner, it
# is refused unchecked. The same per client address, whatever the username, against spraying.
LOGIN_FAILURE_LIMIT = ENV.get("LOGIN_FAILURE_LIMIT", "5/300")
LOGIN_ADDRESS_FAILURE_LIMIT = ENV.get("LOGIN_ADDRESS_FAILURE_LIMIT", "30/300")

LOG_LEVEL = ENV.get("LOG_LEVEL", "INFO").upper()
# text for people (the demo), json for a log pipeline: one JSON object per line (desktop.logs).
LOG_FORMAT = ENV.get("LOG_FORMAT", "text").strip().lower()
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured("LOG_FORMAT must be text or json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "desktop.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
        },
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        name: {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False}
        for name in ("switchboard", "desktop", "calls", "simulator")
    },
}

# Metrics in the Prometheus format (calls.metrics): `/metrics` on every daphne process, and on
# METRICS_PORT (0: off) of every session worker. Answered only to these addresses or networks, or
# with `Authorization: Bearer <METRICS_TOKEN>`; anyone else gets a 404.
METRICS_ALLOWED_IPS = env_list(ENV, "METRICS_ALLOWED_IPS", "127.0.0.1,::1")
METRICS_TOKEN = ENV.get("METRICS_TOKEN", "").strip()
METRICS_PORT = int(ENV.get("METRICS_PORT", "0"))
# Where a worker's metrics server listens: loopback, unless a scraper on another machine needs it.
METRICS_HOST = ENV.get("METRICS_HOST", "127.0.0.1").strip()
# First, so that a request's time is the whole of Django's work on it.
MIDDLEWARE.insert(0, "desktop.metrics.RequestMetricsMiddleware")

# --- Single sign-on ---
# Off by default: agents and admins log in with Django users. Header SSO believes a user-name
# header from an authenticating proxy, OpenID Connect sends the browser to an identity provider;
# both can run beside the local login, which LOCAL_LOGIN_FOR_AGENTS can close to non-staff users.
# desktop.sso holds the middleware, backends and the login page's view and context.

AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
TEMPLATES[0]["OPTIONS"]["context_processors"].append("desktop.sso.sso_context")
LOCAL_LOGIN_FOR_AGENTS = env_bool(ENV, "LOCAL_LOGIN_FOR_AGENTS", True)

# The proxy must set this header on every request and drop any copy a client sends. Only the TCP
# peer (REMOTE_ADDR, the proxy itself) is checked against SSO_TRUSTED_PROXIES, never X-Forwarded-For.
# Trust is explicit: no address is trusted by default, loopback included (any local process, or a
# second proxy on the machine, could send the header).
SSO_HEADER = ENV.get("SSO_HEADER", "").strip()
SSO_TRUSTED_PROXIES = env_list(ENV, "SSO_TRUSTED_PROXIES", "") if SSO_HEADER else []
if SSO_HEADER and not SSO_TRUSTED_PROXIES:
    raise ImproperlyConfigured(
        f"SSO_HEADER={SSO_HEADER!r} needs SSO_TRUSTED_PROXIES: the addresses (or networks) of the proxies "
        "whose header the desk may believe, e.g. SSO_TRUSTED_PROXIES=127.0.0.1/32 for a proxy on this machine"
    )
SSO_CREATE_USERS = env_bool(ENV, "SSO_CREATE_USERS", False)
if SSO_HEADER:
    MIDDLEWARE.insert(
        MIDDLEWARE.index("desktop.middleware.AuthenticationMiddleware") + 1,
        "desktop.sso.HeaderSsoMiddleware",
    )
    AUTHENTICATION_BACKENDS.append("desktop.sso.HeaderSsoBackend")

# OpenID Connect (mozilla-django-oidc), on when OIDC_RP_CLIENT_ID is set: the authorization code
# flow with state, nonce and PKCE; the provider's `sub` is the identity (desktop.models.OidcIdentity).
OIDC_RP_CLIENT_ID = ENV.get("OIDC_RP_CLIENT_ID", "").strip()
OIDC_RP_CLIENT_SECRET = ENV.get("OIDC_RP_CLIENT_SECRET", "")
OIDC_ENABLED = bool(OIDC_RP_CLIENT_ID)
OIDC_OP_AUTHORIZATION_ENDPOINT = ENV.get("OIDC_OP_AUTHORIZATION_ENDPOINT", "")
OIDC_OP_TOKEN_ENDPOINT = ENV.get("OIDC_OP_TOKEN_ENDPOINT", "")
OIDC_OP_USER_ENDPOINT = ENV.get("OIDC_OP_USER_ENDPOINT", "")
OIDC_OP_JWKS_ENDPOINT = ENV.get("OIDC_OP_JWKS_ENDPOINT", "")
OIDC_OP_LOGOUT_URL = ENV.get("OIDC_OP_LOGOUT_URL", "")
OIDC_RP_SIGN_ALGO = ENV.get("OIDC_RP_SIGN_ALGO", "RS256")
OIDC_RP_SCOPES = ENV.get("OIDC_RP_SCOPES", "openid email profile")
OIDC_PROVIDER_NAME = ENV.get("OIDC_PROVIDER_NAME", "SSO")
OIDC_USERNAME_CLAIM = ENV.get("OIDC_USERNAME_CLAIM", "preferred_username")
OIDC_CREATE_USERS = env_bool(ENV, "OIDC_CREATE_USERS", False)
OIDC_USE_NONCE = True
OIDC_USE_PKCE = True
OIDC_TIMEOUT = float(ENV.get("OIDC_TIMEOUT_SECONDS", "10"))  # the library's default is no timeout
# Kept only to name the session at the provider's end_session endpoint on logout.
OIDC_STORE_ID_TOKEN = bool(OIDC_OP_LOGOUT_URL)
OIDC_OP_LOGOUT_URL_METHOD = "desktop.sso.provider_logout_url"
LOGIN_REDIRECT_URL_FAILURE = LOGIN_URL + "?sso=failed"
if OIDC_ENABLED:
    _oidc_endpoints = {
        "OIDC_OP_AUTHORIZATION_ENDPOINT": OIDC_OP_AUTHORIZATION_ENDPOINT,
        "OIDC_OP_TOKEN_ENDPOINT": OIDC_OP_TOKEN_ENDPOINT,
        "OIDC_OP_USER_ENDPOINT": OIDC_OP_USER_ENDPOINT,
        # Asymmetric signatures are checked with the provider's published keys.
        "OIDC_OP_JWKS_ENDPOINT": OIDC_OP_JWKS_ENDPOINT or not OIDC_RP_SIGN_ALGO.startswith(("RS", "ES")),
    }
    _oidc_missing = [name for name, value in _oidc_endpoints.items() if not value]
    if _oidc_missing:
        raise ValueError(f"OIDC_RP_CLIENT_ID is set, so set {', '.join(_oidc_missing)} too")
    AUTHENTICATION_BACKENDS.append("desktop.sso.OidcBackend")
