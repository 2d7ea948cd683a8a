"""Bulk import of agent logins from CSV, shared by ``manage.py import_agent_logins`` and the admin.

Columns: username, voice_username, password, dn, place, and optionally server (a voice server's
name) and email. Each row creates or updates one desk user and its agent login in its own
transaction, so a bad row is reported and the others still go in; a dry run checks every row
the same way and writes nothing. The report names each row's outcome (created, updated,
unchanged or rejected, with the reason) and never repeats a password.

New users get no desk password: they sign in through single sign-on, or an administrator sets
one. Existing staff accounts are never touched: a file must not be able to change who an
administrator is (their e-mail address is how a password reset reaches them).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from . import audit
from .models import AgentLogin, AuditEntry, VoiceServer

REQUIRED_COLUMNS = ("username", "voice_username", "password", "dn", "place")
OPTIONAL_COLUMNS = ("server", "email")
MAX_ROWS = 5000
MAX_BYTES = 2 * 1024 * 1024
DN = re.compile(r"^[0-9A-Za-z_.+*#\-]{1,32}$")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")

CREATED, UPDATED, UNCHANGED, REJECTED = "created", "updated", "unchanged", "rejected"


class ImportRefused(Exception):
    """The file as a whole cannot be read; no row was looked at."""


@dataclass
class RowReport:
    line: int
    username: str
    outcome: str
    reason: str = ""

    def __str__(self) -> str:
        who = self.username or "(no username)"
        return f"line {self.line}: {who}: {self.outcome}" + (f": {self.reason}" if self.reason else "")


@dataclass
class ImportReport:
    dry_run: bool
    rows: list[RowReport] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for row in self.rows if row.outcome == outcome)

    @property
    def summary(self) -> str:
        counts = ", ".join(f"{self.count(o)} {o}" for o in (CREATED, UPDATED, UNCHANGED, REJECTED))
        return f"{counts}{' (dry run: nothing written)' if self.dry_run else ''}"


class RowRejected(Exception):
    pass


def read_csv(data: bytes | str) -> list[dict[str, str]]:
    """The rows as dictionaries keyed by lower-case column name; refuses a file it cannot trust."""
    if isinstance(data, bytes):
        if len(data) > MAX_BYTES:
            raise ImportRefused(f"The file is larger than {MAX_BYTES // (1024 * 1024)} MB.")
        try:
            data = data.decode("utf-8-sig")  # a spreadsheet's byte-order mark is not part of the first column
        except UnicodeDecodeError as exc:
            raise ImportRefused("The file is not UTF-8 text: save it as CSV UTF-8.") from exc
    reader = csv.reader(io.StringIO(data, newline=""))
    try:
        header = [name.strip().lower() for name in next(reader)]
    except StopIteration:
        raise ImportRefused("The file is empty.") from None
    except csv.Error as exc:
        raise ImportRefused(f"The file is not CSV: {exc}") from exc
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    unknown = [name for name in header if name not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if missing or unknown or duplicated:
        problems = []
        if missing:
            problems.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            problems.append(f"unknown column(s) {', '.join(unknown)}")
        if duplicated:
            problems.append(f"repeated column(s) {', '.join(duplicated)}")
        expected = ", ".join(REQUIRED_COLUMNS) + " and optionally " + ", ".join(OPTIONAL_COLUMNS)
        raise ImportRefused(f"The header does not fit ({'; '.join(problems)}). Expected: {expected}.")
    rows: list[dict[str, str]] = []
    try:
        for values in reader:
            if not any(value.strip() for value in values):
                rows.append({})  # a blank line: skipped, but it keeps the line numbers true
                continue
            row = dict(zip(header, values, strict=False))
            if len(values) > len(header):
                row["\x00extra"] = "yes"
            rows.append(row)
            if len(rows) > MAX_ROWS:
                raise ImportRefused(f"The file has more than {MAX_ROWS} rows: split it.")
    except csv.Error as exc:
        raise ImportRefused(f"The file is not CSV (line {reader.line_num}): {exc}") from exc
    return rows


def _text(row: dict[str, str], name: str, max_length: int, *, required: bool) -> str:
    value = (row.get(name) or "").strip()
    if required and not value:
        raise RowRejected(f"{name} is empty")
    if len(value) > max_length:
        raise RowRejected(f"{name} is longer than {max_length} characters")
    if CONTROL.search(value):
        raise RowRejected(f"{name} contains control characters")
    return value


def _server(row: dict[str, str], default: VoiceServer | None) -> VoiceServer:
    name = (row.get("server") or "").strip()
    if name:
        server = VoiceServer.objects.filter(name=name).first()
        if server is None:
            raise RowRejected(f"no voice server named {name!r}")
        return server
    if default is None:
        raise RowRejected("no voice server: name one in the server column or with --server")
    return default


def _import_row(row: dict[str, str], default_server: VoiceServer | None) -> tuple[str, str]:
    """Creates or updates one user and login; returns the outcome and a note. Raises RowRejected."""
    if "\x00extra" in row:
        raise RowRejected("more values than columns")
    username = _text(row, "username", 150, required=True)
    try:
        UnicodeUsernameValidator()(username)
    except ValidationError:
        raise RowRejected("username may contain only letters, digits and @ . + - _") from None
    voice_username = _text(row, "voice_username", 150, required=True)
    password = row.get("password") or ""
    if CONTROL.search(password):
        raise RowRejected("password contains control characters")
    dn = _text(row, "dn", 32, required=False)
    if dn and not DN.match(dn):
        raise RowRejected("dn may contain only letters, digits and + * # . _ -")
    place = _text(row, "place", 100, required=False)
    email = _text(row, "email", 254, required=False)
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise RowRejected("email is not an e-mail address") from None
    server = _server(row, default_server)

    User = get_user_model()
    user = User.objects.filter(**{User.USERNAME_FIELD: username}).first()
    if user is not None and (user.is_staff or user.is_superuser):
        raise RowRejected("is a staff account: change it in the admin, not by import")
    login = AgentLogin.objects.filter(user=user).first() if user is not None else None
    if login is None and not password:
        raise RowRejected("password is empty (a new agent login needs one)")

    changed = user is None or login is None
    if user is None:
        user = User.objects.create_user(username, email=email or "")  # no usable desk password
    elif email and user.email != email:
        user.email = email
        user.save(update_fields=["email"])
        changed = True
    if login is None:
        login = AgentLogin(user=user)
    if login.server_id != server.pk:
        login.server = server
        changed = True
    wanted = {"username": voice_username, "dn": dn, "place": place}
    if password:
        wanted["password"] = password
    for name, value in wanted.items():
        if getattr(login, name) != value:
            setattr(login, name, value)
            changed = True
    if not changed:
        return UNCHANGED, ""
    created = login.pk is None
    login.save()
    return (CREATED if created else UPDATED), ""


def import_agent_logins(
    data: bytes | str,
    *,
    server_name: str = "",
    dry_run: bool = False,
    actor: Any = None,
    actor_name: str = "",
    address: str | None = None,
) -> ImportReport:
    """Imports every row of a CSV file; see the module's docstring. Raises ImportRefused for the file."""
    default_server = None
    if server_name:
        default_server = VoiceServer.objects.filter(name=server_name).first()
        if default_server is None:
            raise ImportRefused(f"There is no voice server named {server_name!r}.")
    elif VoiceServer.objects.count() == 1:
        default_server = VoiceServer.objects.get()
    rows = read_csv(data)
    report = ImportReport(dry_run=dry_run)
    seen: dict[str, int] = {}
    for line, row in enumerate(rows, start=2):
        if not row:
            continue
        username = (row.get("username") or "").strip()[:150]
        if username and username.casefold() in seen:
            reason = f"the same username is on line {seen[username.casefold()]}"
            report.rows.append(RowReport(line, username, REJECTED, reason))
            continue
        seen[username.casefold()] = line
        try:
            with transaction.atomic():
                outcome, note = _import_row(row, default_server)
                if dry_run:
                    transaction.set_rollback(True)
        except RowRejected as exc:
            report.rows.append(RowReport(line, username, REJECTED, str(exc)))
        except IntegrityError:
            reason = "conflicts with a change made at the same time: import it again"
            report.rows.append(RowReport(line, username, REJECTED, reason))
        else:
            report.rows.append(RowReport(line, username, outcome, note))
    if not dry_run:
        audit.record(
            action=audit.IMPORT_AGENT_LOGINS,
            result=AuditEntry.OK,
            user=actor,
            username=actor_name,
            message=report.summary,
            address=address,
        )
    return report
