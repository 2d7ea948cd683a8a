"""The audit log: one row per agent action (ok, refused, failed), per sign-in and sign-out, written
once and never changed, holding no secret."""

from __future__ import annotations

import re
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from calls import actions, audit
from calls.models import AgentLogin, AuditEntry, AuditEntryImmutable, LiveCall, VoiceServer
from tests.desk import RunningWorker, answered_call, control, ready_desk

User = get_user_model()


@sync_to_async
def audit_rows(*fields: str) -> list[tuple[Any, ...]]:
    return list(AuditEntry.objects.order_by("id").values_list(*fields))


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_seed_002_writes_one_ok_row_per_action_in_order_and_a_refused_row_for_a_foreign_call(
    simulator: str, agent1: AgentLogin, worker: RunningWorker
) -> None:
    await control(simulator, "PUT", "/control/settings", {"answer_delay_ms": None})
    desk = await ready_desk(agent1)  # the contact-center Login
    call_id = await answered_call(simulator, desk)
    await actions.call_operation(agent1.user, call_id, "InitiateTransfer", {"destination": "5001"})
    consult = await desk.until(r'data-call-type="Consult"')
    consult_id = re.search(r'id="call-([^"]+)" class', consult).group(1)
    await actions.call_operation(agent1.user, consult_id, "CompleteTransfer", {})
    await desk.until(rf'<div id="call-{consult_id}" hx-swap-oob="delete">')
    with pytest.raises(actions.NotFound):
        await actions.call_operation(agent1.user, "call-of-someone-else", "Hangup", {})

    assert await audit_rows("username", "action", "call_id", "detail", "result", "message") == [
        ("agent1", "Login", "", "", "ok", ""),
        ("agent1", "Answer", call_id, "", "ok", ""),
        ("agent1", "InitiateTransfer", call_id, "5001", "ok", ""),
        ("agent1", "CompleteTransfer", consult_id, "", "ok", ""),
        ("agent1", "Hangup", "call-of-someone-else", "", "refused", "No such call"),
    ]
    await desk.close()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_voice_api_refusal_is_recorded_with_the_voice_apis_message(
    simulator: str, agent1: AgentLogin, worker: RunningWorker
) -> None:
    desk = await ready_desk(agent1)
    call_id = await answered_call(simulator, desk)

    with pytest.raises(actions.ActionRefused) as refused:
        await actions.call_operation(agent1.user, call_id, "InitiateTransfer", {"destination": "5005"})

    last = (await audit_rows("action", "detail", "result", "message"))[-1]
    assert last == ("InitiateTransfer", "5005", "refused", refused.value.message)
    assert "own DN" in last[3]
    await desk.close()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_an_unreachable_voice_api_is_recorded_as_failed_without_digits_or_attached_values() -> None:
    nowhere = await sync_to_async(VoiceServer.objects.create)(name="Nowhere", base_url="http://127.0.0.1:9")

    @sync_to_async
    def a_call() -> AgentLogin:
        user = User.objects.create_user("agent5")
        login = AgentLogin.objects.create(
            user=user, server=nowhere, username="agent5", password="x", dn="5009"
        )
        LiveCall.objects.create(
            login=login,
            call_id="C1",
            state="Established",
            call_type="Inbound",
            capabilities=["SendDtmf", "AttachUserData"],
            started_at="2026-01-01T00:00:00Z",
        )
        return login

    login = await a_call()
    for name, data in (
        ("SendDtmf", {"digits": "4929123412341234"}),
        ("AttachUserData", {"key": "card", "value": "4929-secret-value"}),
    ):
        with pytest.raises(actions.ActionRefused):  # nothing answers on port 9
            await actions.call_operation(login.user, "C1", name, data)

    rows = await audit_rows("action", "detail", "result", "message")
    assert [(action, detail, result) for action, detail, result, _ in rows] == [
        ("SendDtmf", "", "failed"),
        ("AttachUserData", "card", "failed"),
    ]
    assert "4929" not in repr(rows)


@pytest.mark.django_db
def test_sign_in_sign_out_and_a_failed_sign_in_are_recorded_without_the_password(client: Client) -> None:
    User.objects.create_user("agent9", password="Correct-Horse-9")

    client.post("/accounts/login/", {"username": "agent9", "password": "Wrong-Battery-7"})
    client.post("/accounts/login/", {"username": "agent9", "password": "Correct-Horse-9"})
    client.post("/accounts/logout/")

    rows = list(AuditEntry.objects.order_by("id").values())
    assert [(r["action"], r["username"], r["result"], r["message"], r["remote_address"]) for r in rows] == [
        ("DeskLogin", "agent9", "refused", "wrong username or password", "127.0.0.1"),
        ("DeskLogin", "agent9", "ok", "password", "127.0.0.1"),
        ("DeskLogout", "agent9", "ok", "", "127.0.0.1"),
    ]
    assert rows[0]["user_id"] is None and rows[1]["user_id"] is not None
    assert "Wrong-Battery" not in repr(rows) and "Correct-Horse" not in repr(rows)


@pytest.mark.django_db
def test_an_audit_entry_cannot_be_changed_or_deleted() -> None:
    entry = AuditEntry.objects.create(action="Hold", result=AuditEntry.OK, username="agent1")

    entry.message = "nothing happened"
    with pytest.raises(AuditEntryImmutable):
        entry.save()
    with pytest.raises(AuditEntryImmutable):
        entry.delete()
    with pytest.raises(AuditEntryImmutable):
        AuditEntry.objects.filter(pk=entry.pk).update(result=AuditEntry.REFUSED)
    with pytest.raises(AuditEntryImmutable):
        AuditEntry.objects.all().delete()

    assert AuditEntry.objects.get(pk=entry.pk).message == ""


@pytest.mark.django_db
def test_deleting_a_user_keeps_their_audit_entries_under_their_name() -> None:
    user = User.objects.create_user("leaver")
    AuditEntry.objects.create(action="Hold", result=AuditEntry.OK, user=user, username="leaver")

    user.delete()

    assert list(AuditEntry.objects.values_list("user_id", "username")) == [(None, "leaver")]


@pytest.mark.django_db(transaction=True)
def test_an_audit_row_recorded_outside_a_transaction_is_one_insert_with_no_transaction_of_its_own() -> None:
    statements: list[tuple[str, bool]] = []

    def watch(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements.append((sql.split()[0], connection.in_atomic_block))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(watch):
        audit.record(action="Hold", result=AuditEntry.OK, username="agent1", call_id="C1")

    assert statements == [("INSERT", False)]
    assert AuditEntry.objects.get().call_id == "C1"


@pytest.mark.django_db
def test_a_click_on_a_live_call_reads_the_login_its_server_and_the_call_in_one_query(
    agent1: AgentLogin,
) -> None:
    LiveCall.objects.create(
        login=agent1, call_id="C1", state="Held", capabilities=["Retrieve"], started_at=timezone.now()
    )

    with CaptureQueriesContext(connection) as queries:
        login, live = async_to_sync(actions._login_and_call)(agent1.user, "C1")
        seen = (login.pk, login.server.dialect, login.user.username, live and live.call_id)

    assert seen == (agent1.pk, agent1.server.dialect, "agent1", "C1")
    assert len(queries) == 1


@pytest.mark.django_db
def test_a_click_on_a_call_the_agent_does_not_have_finds_the_login_and_a_disabled_login_finds_nothing(
    agent1: AgentLogin,
) -> None:
    LiveCall.objects.create(login=agent1, call_id="C1", state="Held", started_at=timezone.now())

    login, live = async_to_sync(actions._login_and_call)(agent1.user, "C404")
    assert (login.pk, live) == (agent1.pk, None)

    AgentLogin.objects.filter(pk=agent1.pk).update(enabled=False)
    for call_id in ("C1", "C404"):
        with pytest.raises(actions.ActionRefused, match="no enabled agent login"):
            async_to_sync(actions._login_and_call)(agent1.user, call_id)
