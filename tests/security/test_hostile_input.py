"""Hostile input never answers 500, on SQLite or on PostgreSQL (which refuses NUL in text): the desk
refuses control characters where they cannot belong, says why, and audits what happened; every URL
pattern survives hostile path and query values; a vendor's NUL or NaN cannot stop the worker.

Every test here also runs on PostgreSQL: ``test_these_tests_pass_on_postgresql`` runs this module
again in a fresh interpreter with DATABASE_URL naming a throwaway database (pytest-django creates
and drops its test database), and skips where PostgreSQL is not running.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from calls import audit, services
from calls.actions import REASON_REFUSED
from calls.models import (
    AgentLogin,
    AuditEntry,
    CallRecord,
    DispositionCode,
    LiveCall,
    NotReadyReason,
    VoiceServer,
)
from calls.operations import OPERATIONS, InvalidParameters, clean
from calls.vendors.genesys import parse_call
from calls.vendors.huawei import HuaweiBackend
from calls.voice import Agent as AgentIdentity
from calls.voice import AgentStateChanged, CallChanged, Server
from desktop.asgi import application
from tests.servers import passes_on_postgresql

ON_POSTGRESQL = "SWITCHBOARD_HOSTILE_ON_POSTGRESQL"
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # desktop.settings LOGGING's
CALL_ID = "call-1"

# Values for every path argument, query parameter and form field: a NUL, a climb out of a directory,
# something very long, bytes that are not UTF-8, a forged header line, markup.
HOSTILE = ["%00", "%2e%2e", "a" * 3000, "%ff%fe", "%0d%0aSet-Cookie:%20x=1", "%22%3E%3Cscript%3E"]
FIELDS = (
    "operation reason destination digits key value participant disposition username password "
    "number date outcome page next q o p e"
).split()

User = get_user_model()
# Transactional: the actions' database work runs through Channels' database_sync_to_async, which
# closes the connection of a test transaction (the PostgreSQL run would then fail to reopen it).
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def agent() -> AgentLogin:
    """An agent on a Voice API nobody answers: what a refusal fails to stop ends in a 503."""
    server = VoiceServer.objects.create(name="Nobody", base_url="http://127.0.0.1:9/genesys")
    user = User.objects.create_user("agent9", password="agent9-password")
    login = AgentLogin.objects.create(user=user, server=server, username="agent9", password="x", dn="5009")
    LiveCall.objects.create(
        login=login,
        call_id=CALL_ID,
        state="Established",
        call_type="Inbound",
        participants=["5000"],
        capabilities=[name for name in OPERATIONS if name != "RemoveParticipantFromConference"],
        user_data={"Customer Name": "Ada"},
        started_at=timezone.now(),
    )
    CallRecord.objects.create(login=login, call_id=CALL_ID, call_type="Inbound", started_at=timezone.now())
    return login


@pytest.fixture
def signed_in(agent: AgentLogin) -> Client:
    client = Client()
    client.force_login(agent.user)
    return client


# --- Desk inputs: refused with a message that says why ---


@pytest.mark.parametrize(
    "form",
    [
        {"operation": "AttachUserData", "key": "note", "value": "a\x00b"},
        {"operation": "AttachUserData", "key": "no\x00te", "value": "x"},
        {"operation": "UpdateUserData", "key": "note", "value": "bell\x07"},
        {"operation": "AttachUserData", "key": "two\nlines", "value": "x"},
        {"operation": "InitiateTransfer", "destination": "5001\x00"},
        {"operation": "SendDtmf", "digits": "1\x002"},
    ],
)
def test_control_characters_in_call_operation_parameters_are_refused(
    signed_in: Client, form: dict[str, str]
) -> None:
    response = signed_in.post(f"/calls/{CALL_ID}/", form)

    assert response.status_code == 400, response.content
    assert not AuditEntry.objects.exclude(action="DeskLogin").exclude(result=AuditEntry.REFUSED).exists()


def test_a_nul_in_an_attached_data_value_is_refused_with_a_clear_message(signed_in: Client) -> None:
    response = signed_in.post(
        f"/calls/{CALL_ID}/", {"operation": "AttachUserData", "key": "k", "value": "\x00"}
    )

    assert response.status_code == 400
    assert "The value must not contain control characters" in response.content.decode()


def test_a_value_may_hold_tabs_and_line_breaks() -> None:
    live = LiveCall(call_id=CALL_ID, capabilities=["AttachUserData"], user_data={})

    params = clean(OPERATIONS["AttachUserData"], {"key": "note", "value": "line one\r\n\tline two"}, live)

    assert params == {"key": "note", "value": "line one\r\n\tline two"}


def test_a_key_with_a_space_that_the_card_offers_to_remove_can_be_removed() -> None:
    live = LiveCall(call_id=CALL_ID, capabilities=["DeleteUserDataPair"], user_data={"Customer Name": "Ada"})

    assert clean(OPERATIONS["DeleteUserDataPair"], {"key": "Customer Name"}, live) == {"key": "Customer Name"}
    assert clean(OPERATIONS["UpdateUserData"], {"key": "Customer Name", "value": "Bo"}, live)["key"] == (
        "Customer Name"
    )
    with pytest.raises(InvalidParameters, match="no attached data named"):
        clean(OPERATIONS["DeleteUserDataPair"], {"key": "Customer"}, live)


@pytest.mark.parametrize("reason", ["\x00", "LUNCH\x00", "OLD", "NOPE"])
def test_a_not_ready_reason_must_be_one_the_administrator_offers(signed_in: Client, reason: str) -> None:
    NotReadyReason.objects.create(code="LUNCH", label="Lunch")
    NotReadyReason.objects.create(code="OLD", label="Retired", active=False)

    response = signed_in.post("/agent/", {"operation": "NotReady", "reason": reason})

    assert response.status_code == 400
    assert REASON_REFUSED in response.content.decode()
    [row] = AuditEntry.objects.filter(action="NotReady")
    assert (row.result, row.detail) == (AuditEntry.REFUSED, audit.printable(reason))


@pytest.mark.parametrize(
    "path", ["/calls/%00/", "/calls/a%00b/", "/calls/%01/", "/calls/%00/disposition/", "/calls/x%0a/"]
)
def test_a_call_id_with_control_characters_is_not_found(signed_in: Client, path: str) -> None:
    response = signed_in.post(path, {"operation": "Hangup", "disposition": "SALE"})

    assert response.status_code == 404


def test_a_disposition_code_with_a_nul_is_refused(signed_in: Client) -> None:
    DispositionCode.objects.create(code="SALE", label="Sale made")

    response = signed_in.post(f"/calls/{CALL_ID}/disposition/", {"disposition": "SALE\x00"})

    assert response.status_code == 400
    assert CallRecord.objects.get(call_id=CALL_ID).disposition == ""


@pytest.mark.parametrize("query", ["number=%00", "number=50%0001", "date=%00", "outcome=%00", "page=%00"])
def test_history_filters_with_a_nul_answer_the_page(signed_in: Client, query: str) -> None:
    response = signed_in.get(f"/history/?{query}")

    assert response.status_code == 200


def test_a_history_page_number_is_bounded_by_the_pages_there_are(signed_in: Client) -> None:
    for page in ("999999999999", "9" * 5000, "-1", "1e9"):
        assert signed_in.get("/history/", {"page": page}).status_code == 200


# --- The audit: every row written, safe to store and to log ---


def test_an_audit_row_with_control_characters_is_written_with_them_escaped() -> None:
    audit.record(action="Hold\nforged", result=AuditEntry.REFUSED, username="eve\x00", detail="a\x00b\u2028c")

    row = AuditEntry.objects.get()
    assert (row.action, row.username, row.detail) == ("Hold\\x0aforged", "eve\\x00", "a\\x00b\\u2028c")


def test_an_audit_row_whose_user_is_gone_is_written_without_the_link(
    caplog: pytest.LogCaptureFixture,
) -> None:
    user = User.objects.create_user("gone")
    User.objects.filter(pk=user.pk).delete()  # meanwhile, elsewhere; this object still names the user

    with caplog.at_level(logging.ERROR, logger="switchboard.audit"):
        audit.record(action="Hold", result=AuditEntry.OK, user=user, call_id="c1")

    row = AuditEntry.objects.get()
    assert (row.user_id, row.username, row.action, row.call_id) == (None, "gone", "Hold", "c1")
    assert row.message.startswith("[audit row rewritten after IntegrityError]")
    assert any(r.levelno == logging.ERROR and '"action": "Hold"' in r.getMessage() for r in caplog.records)


def test_an_audit_row_the_database_will_not_take_is_logged_whole_at_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(self: AuditEntry, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the database is down")

    monkeypatch.setattr(AuditEntry, "save", refuse)
    with caplog.at_level(logging.ERROR, logger="switchboard.audit"):
        audit.record(
            action="NotReady", result=AuditEntry.OK, username="ada", detail="LUNCH", address="10.0.0.1"
        )

    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "audit row not written" in error.getMessage()
    assert '"action": "NotReady", "username": "ada", "address": "10.0.0.1"' in error.getMessage()
    assert error.__dict__["audit"]["detail"] == "LUNCH"


def test_an_operation_name_with_a_line_break_cannot_forge_a_log_line(
    signed_in: Client, caplog: pytest.LogCaptureFixture
) -> None:
    forged = "Hold\n2026-01-01 00:00:00,000 INFO switchboard.audit: 'Hangup' by 'admin' from '10.0.0.1': ok"

    with caplog.at_level(logging.INFO):
        response = signed_in.post(f"/calls/{CALL_ID}/", {"operation": forged})

    assert response.status_code == 400
    lines = [logging.Formatter(PLAIN_FORMAT).format(record) for record in caplog.records]
    assert any("Hold" in line for line in lines if "switchboard.audit" in line)
    assert not [line for line in lines if "\n" in line or "\r" in line]


# --- A vendor that sends NUL or NaN ---


def test_a_genesys_call_with_nul_and_nan_is_stored_and_shown(agent: AgentLogin) -> None:
    raw = {
        "id": "call-2",
        "state": "Ringing",
        "callType": "Inbound",
        "participants": [{"phoneNumber": "50\x0000"}],
        "dnis": "5009\x00",
        "userData": {"no\x00te": "a\x00b", "score": float("nan"), "limit": float("-inf")},
    }

    services.save_call(agent, parse_call(raw), timezone.now())

    live = LiveCall.objects.get(call_id="call-2")
    assert (live.participants, live.dnis) == (["5000"], "5009")
    assert live.user_data == {"note": "ab", "score": "NaN", "limit": "-Infinity"}
    assert CallRecord.objects.get(call_id="call-2").user_data == live.user_data


def test_a_huawei_call_and_reason_with_nul_are_stored(agent: AgentLogin) -> None:
    backend = HuaweiBackend(Server("http://127.0.0.1:9/huawei"), AgentIdentity("101", "x", dn="5009"))
    ringing = {
        "eventType": "AgentEvent_Ringing",
        "content": {"callid": "h1", "caller": "50\x0000", "called": "5009\x00"},
    }
    busy = {"eventType": "AgentState_SetNotReady_Success", "content": {"reason": "2\x0001" + "9" * 100}}

    for event in backend._translate(ringing):
        assert isinstance(event, CallChanged)
        services.save_call(agent, event.call, timezone.now())
    [state] = backend._translate(busy)
    assert isinstance(state, AgentStateChanged)
    services.save_agent_state(agent.pk, state.state, timezone.now())

    live = LiveCall.objects.get(call_id="h1")
    assert (live.participants, live.dnis) == (["5000"], "5009")
    assert AgentLogin.objects.get(pk=agent.pk).state_reason == ("201" + "9" * 100)[:64]


# --- Every URL, hostile values, no 5xx ---


def _routes(patterns: list[Any], prefix: str = "") -> Iterator[str]:
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            yield route


def _fill(route: str, value: str) -> str:
    """A route (``path()`` or ``re_path()`` syntax) with every argument set to ``value``."""
    path = re.sub(r"<(?:\w+:)?\w+>", value, route)
    path = re.sub(r"\(\?P<\w+>(?:[^()]|\([^()]*\))*\)", value, path)
    return "/" + path.replace("^", "").replace("$", "").replace("\\", "")


def _hostile_requests() -> Iterator[tuple[str, str, str]]:
    """(method, path with query, form body) for every URL pattern and hostile value."""
    routes = sorted(set(_routes(get_resolver().url_patterns)))
    for route in routes:
        for value in HOSTILE:
            path = _fill(route, value)
            query = "&".join(f"{name}={value}" for name in FIELDS)
            yield "GET", f"{path}?{query}", ""
            yield "POST", f"{path}?{query}", query


@pytest.mark.parametrize("who", ["anonymous", "agent"])
def test_no_url_answers_5xx_to_hostile_paths_and_queries(agent: AgentLogin, who: str) -> None:
    failures = []
    for method, path, body in _hostile_requests():
        client = Client()
        if who == "agent":
            client.force_login(agent.user)
        if method == "GET":
            response = client.get(path)
        else:
            response = client.generic("POST", path, body, content_type="application/x-www-form-urlencoded")
        if response.status_code >= 500:
            failures.append((method, path[:120], response.status_code))
    assert failures == []


async def test_static_files_and_the_simulator_answer_hostile_paths_without_5xx(settings: Any) -> None:
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        for path in (
            "/static/%2e%2e/desktop/settings.py",
            "/static/%2e%2e/%2e%2e/etc/passwd",
            "/static/..%2fmanage.py",
            "/static/%00",
            "/static/" + "a" * 3000,
            "/sim/genesys/api/v2/me/calls/%00",
            "/sim/huawei/agentgateway/resource/onlineagent/%00/agentstatus",
        ):
            response = await http.get(path)
            assert response.status_code < 500, (path, response.status_code)
        assert (await http.get("/static/%2e%2e/desktop/settings.py")).status_code == 404


def test_password_reset_is_not_offered(client: Client) -> None:
    for path in ("/accounts/password_reset/", "/accounts/password_reset/done/", "/accounts/reset/x/y/"):
        assert client.get(path).status_code == 404
    assert client.post("/accounts/password_reset/", {"email": "a@example.com"}).status_code == 404


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"username": "x", "password": "y" * (3 << 20)}, 413),
        ("&".join(f"f{i}=1" for i in range(2000)), 400),
    ],
)
def test_an_oversized_body_is_refused_with_a_warning_not_an_error_traceback(
    body: Any, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    client = Client()
    with caplog.at_level(logging.INFO):
        if isinstance(body, str):
            response = client.generic("POST", "/accounts/login/", body, "application/x-www-form-urlencoded")
        else:
            response = client.post("/accounts/login/", body)

    assert response.status_code == status
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert "switchboard.security" in [r.name for r in caplog.records if r.levelno == logging.WARNING]


# --- The same on PostgreSQL ---


@pytest.mark.skipif(bool(os.environ.get(ON_POSTGRESQL)), reason="this is the PostgreSQL run")
def test_these_tests_pass_on_postgresql(postgres_url: str) -> None:
    assert connection.vendor == "sqlite"  # this run; the one below is PostgreSQL's
    passes_on_postgresql(__file__, postgres_url, flag=ON_POSTGRESQL, timeout=900)


@pytest.mark.skipif(not os.environ.get(ON_POSTGRESQL), reason="only in the PostgreSQL run")
def test_the_postgresql_run_is_on_postgresql() -> None:
    assert connection.vendor == "postgresql"
