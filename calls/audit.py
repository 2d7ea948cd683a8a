"""The audit log: who did what to which call, when, from where, and how it ended.

Every agent action is recorded by ``calls.actions`` (ok, refused or failed, with the Voice API's
own message); every sign-in, sign-out and refused sign-in by the auth signals below; every
WebSocket refused for want of a signed-in agent by the desktop consumer. Each row is also logged
to the ``switchboard.audit`` logger, for a log shipper to take off the machine.

A row never holds a secret: no password (Django hands the signals a cleansed copy, and only the
attempted username is kept), no DTMF digits, no attached-data values.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db import transaction
from django.dispatch import receiver

from . import ratelimit
from .db import database_sync_to_async
from .models import AuditEntry

log = logging.getLogger("switchboard.audit")

# The client's address for the request being served, set by desktop.security's middleware, so
# actions (which take a user, not a request) can say where they came from.
remote_address: contextvars.ContextVar[str] = contextvars.ContextVar("remote_address", default="")

DESK_LOGIN = "DeskLogin"
DESK_LOGOUT = "DeskLogout"
WEBSOCKET_CONNECT = "WebSocketConnect"
END_SESSION = "EndSession"
IMPORT_AGENT_LOGINS = "ImportAgentLogins"

# A refused socket is recorded once per address, user and reason in this period: a tab left open
# after its session ended must not fill the log.
WEBSOCKET_REFUSAL_EVERY_S = 60

# How each authentication backend's sign-in is named in the log.
BACKEND_NAMES = {
    "django.contrib.auth.backends.ModelBackend": "password",
    "desktop.sso.HeaderSsoBackend": "single sign-on (proxy header)",
    "desktop.sso.OidcBackend": "single sign-on (OpenID Connect)",
}


# Control characters (C0, DEL, C1) and Unicode's line separators: a NUL stops PostgreSQL from writing
# the row, a line break would forge a log line. They are kept visible, escaped (NUL as \x00).
UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` safe to store and to log: control characters escaped, lone surrogates (which no
    database encoding takes) backslash-escaped; every other character as it is."""
    escaped = UNPRINTABLE.sub(_escape, text)
    if escaped.isascii():
        return escaped
    return escaped.encode("utf-8", "backslashreplace").decode("utf-8")


def _fit(value: Any, field: str) -> str:
    text = printable("" if value is None else str(value))
    return text[: AuditEntry._meta.get_field(field).max_length]  # type: ignore[union-attr]


def _fields(entry: AuditEntry) -> dict[str, Any]:
    """The row as structured fields, for the log."""
    return {
        "action": entry.action,
        "username": entry.username,
        "address": entry.remote_address,
        "result": entry.result,
        "call_id": entry.call_id,
        "detail": entry.detail,
        "message": entry.message,
    }


def _save(entry: AuditEntry) -> None:
    if not transaction.get_connection().in_atomic_block:
        entry.save()  # one INSERT, atomic by itself: no BEGIN and COMMIT around it
        return
    # Its own savepoint: a refused write must not break the transaction of whoever records.
    with transaction.atomic():
        entry.save()


def _write(entry: AuditEntry) -> None:
    """Writes the row. One that still fails (its user deleted meanwhile, say) is written again without
    the user link, saying so; when even that fails (the database is down), the whole row goes to the
    log at ERROR, as structured fields, for the log shipper to keep: the action has happened, and
    failing the agent's request or the worker's session now would undo nothing."""
    try:
        _save(entry)
        return
    except Exception as exc:
        first = exc
    fallback = AuditEntry(
        username=entry.username,
        action=entry.action,
        call_id=entry.call_id,
        detail=entry.detail,
        result=entry.result,
        message=_fit(f"[audit row rewritten after {type(first).__name__}] {entry.message}", "message"),
        remote_address=entry.remote_address,
    )
    try:
        _save(fallback)
    except Exception as exc:
        log.error(
            "audit row not written (%s, then %s): %s",
            type(first).__name__,
            type(exc).__name__,
            json.dumps(_fields(entry)),
            exc_info=first,
            extra={"audit": _fields(entry)},
        )
        return
    log.error(
        "audit row written without its user after %s: %s",
        type(first).__name__,
        json.dumps(_fields(entry)),
        exc_info=first,
        extra={"audit": _fields(entry)},
    )


def record(
    *,
    action: str,
    result: str,
    user: Any = None,
    username: str = "",
    call_id: str = "",
    detail: str = "",
    message: str = "",
    address: str | None = None,
) -> None:
    """Writes one audit row (and its log line). Never raises: the audited thing has already happened;
    a write that fails is retried without the user link and otherwise logged at ERROR (``_write``)."""
    if user is not None and not getattr(user, "is_authenticated", False):
        user = None
    if user is not None and not username:
        username = user.get_username()
    entry = AuditEntry(
        user=user,
        username=_fit(username, "username"),
        action=_fit(action, "action"),
        call_id=_fit(call_id, "call_id"),
        detail=_fit(detail, "detail"),
        result=result,
        message=_fit(message, "message"),
        remote_address=_fit(remote_address.get() if address is None else address, "remote_address"),
    )
    _write(entry)
    # Every value may come from a client: each is printable() and shown with %r, so none can forge
    # a log line; the fields also ride on the record, for a structured formatter.
    log.info(
        "%r by %r from %r: %s%s%s%s",
        entry.action,
        entry.username,
        entry.remote_address or "-",
        entry.result,
        f" call={entry.call_id!r}" if entry.call_id else "",
        f" detail={entry.detail!r}" if entry.detail else "",
        f" message={entry.message!r}" if entry.message else "",
        extra={"audit": _fields(entry)},
    )


arecord = database_sync_to_async(record)


def request_address(request: Any) -> str:
    """The TCP peer: behind a proxy, the proxy itself, unless the server rewrites it from the proxy's
    headers (daphne --proxy-headers)."""
    if request is None:
        return ""
    return str(request.META.get("REMOTE_ADDR") or "")


@receiver(user_logged_in)
def signed_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    backend = getattr(user, "backend", "") or ""
    how = BACKEND_NAMES.get(backend, backend.rsplit(".", 1)[-1])
    address = request_address(request)
    record(action=DESK_LOGIN, result=AuditEntry.OK, user=user, message=how, address=address)
    ratelimit.login_succeeded(user.get_username(), address)


@receiver(user_logged_out)
def signed_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    record(action=DESK_LOGOUT, result=AuditEntry.OK, user=user, address=request_address(request))


@receiver(user_login_failed)
def sign_in_refused(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    """Only the attempted username is kept; whatever else was offered (cleansed by Django) is dropped."""
    username = str(credentials.get("username") or credentials.get("remote_user") or "")
    address = request_address(request)
    if "password" in credentials:
        message = "wrong username or password"
    else:
        message = "single sign-on did not sign this user in"
    if username and request is not None and "password" in credentials:
        wait = ratelimit.login_failed(username, address)
        if wait:
            message += f"; the next attempt must wait {wait} s"
    record(action=DESK_LOGIN, result=AuditEntry.REFUSED, username=username, message=message, address=address)


async def websocket_refused(scope: Any, reason: str) -> None:
    """A desktop socket closed at connect: recorded, at most once a minute per address, user and reason."""
    client = scope.get("client") or ("", 0)
    address = str(client[0] or "")
    user = scope.get("user")
    username = user.get_username() if user is not None and user.is_authenticated else ""
    if await ratelimit.first_in(f"ws-refused:{address}:{username}:{reason}", WEBSOCKET_REFUSAL_EVERY_S):
        await arecord(
            action=WEBSOCKET_CONNECT,
            result=AuditEntry.REFUSED,
            user=user,
            message=reason,
            address=address,
        )
