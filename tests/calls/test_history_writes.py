"""How the session's writer saves the call history: its rows kept in memory between events, every
batch in one transaction behind the lease fence."""

from __future__ import annotations

import datetime
import functools
import os
from typing import Any

import psycopg
import pytest
from django.db import connection, transaction
from django.db.models.sql.compiler import SQLCompiler
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from calls import persist, services, sql
from calls import worker as calls_worker
from calls.models import AgentLogin, CallRecord
from calls.voice import Call
from tests.servers import passes_on_postgresql

ON_POSTGRESQL = "SWITCHBOARD_HISTORY_WRITES_ON_POSTGRESQL"
pytestmark = pytest.mark.django_db(transaction=True)

T0 = timezone.now().replace(microsecond=0)


def at(seconds: int) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def inbound(state: str) -> Call:
    return Call(id="H1", state=state, call_type="Inbound", participants=("+15550100",))


def batch(agent: AgentLogin, history: services.History, *writes: persist.Write) -> None:
    """One batch as the session's writer runs it: behind the lease fence, with the history begun."""
    fence = functools.partial(calls_worker.holds_lease, agent.pk)
    persist._run(list(writes), fence, history.begin)


def saved(agent: AgentLogin, history: services.History, state: str, seconds: int) -> persist.Write:
    return functools.partial(services.save_call, agent, inbound(state), at(seconds), history)


@pytest.fixture
def owned(agent1: AgentLogin) -> AgentLogin:
    """agent1, its session's lease held by this process's worker."""
    AgentLogin.objects.filter(pk=agent1.pk).update(
        worker=calls_worker.WORKER_ID, lease_until=timezone.now() + datetime.timedelta(minutes=5)
    )
    return agent1


def history_selects(queries: CaptureQueriesContext) -> list[str]:
    selects = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    return [statement for statement in selects if 'FROM "calls_callrecord"' in statement]


def test_an_event_of_a_call_already_saved_updates_its_row_without_reading_it(owned: AgentLogin) -> None:
    history = services.History()
    batch(owned, history, saved(owned, history, "Ringing", 0))

    with CaptureQueriesContext(connection) as queries:
        batch(owned, history, saved(owned, history, "Established", 4))

    assert history_selects(queries) == []
    record = CallRecord.objects.get(login=owned, call_id="H1")
    assert (record.final_state, record.answered_at) == ("Established", at(4))


def test_a_batch_that_failed_and_is_retried_counts_talk_and_hold_time_once(owned: AgentLogin) -> None:
    history = services.History()
    batch(owned, history, saved(owned, history, "Ringing", 0), saved(owned, history, "Established", 4))

    def fails() -> None:
        raise RuntimeError("the database went away")

    held_and_retrieved = [saved(owned, history, "Held", 34), saved(owned, history, "Established", 40)]
    with pytest.raises(RuntimeError):
        batch(owned, history, *held_and_retrieved, fails)
    batch(owned, history, *held_and_retrieved, saved(owned, history, "Released", 50))

    record = CallRecord.objects.get(login=owned, call_id="H1")
    assert (record.talk_seconds, record.hold_seconds, record.outcome) == (40, 6, CallRecord.ANSWERED)


def test_an_ended_call_leaves_the_memory_so_a_later_write_to_its_row_is_read_anew(
    owned: AgentLogin,
) -> None:
    history = services.History()
    batch(owned, history, saved(owned, history, "Ringing", 0), saved(owned, history, "Released", 2))

    with CaptureQueriesContext(connection) as queries:
        batch(owned, history, saved(owned, history, "Released", 3))

    assert len(history_selects(queries)) == 1


def test_a_session_that_starts_again_reads_its_rows_anew(owned: AgentLogin) -> None:
    """Another worker may have run the session in between and changed the row."""
    history = services.History()
    batch(owned, history, saved(owned, history, "Ringing", 0), saved(owned, history, "Established", 4))
    CallRecord.objects.filter(login=owned, call_id="H1").update(talk_seconds=100, state_since=at(20))

    history.forget()
    batch(owned, history, saved(owned, history, "Released", 30))

    assert CallRecord.objects.get(login=owned, call_id="H1").talk_seconds == 110


def test_a_new_call_s_history_is_read_and_inserted_without_building_a_query(
    owned: AgentLogin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Building SQL costs several times what running it does; a worker does it for every call."""
    history = services.History()
    batch(owned, history, saved(owned, history, "Ringing", 0))
    built: list[str] = []
    original = SQLCompiler.as_sql

    def counted(self: SQLCompiler, *args: Any, **kwargs: Any) -> Any:
        built.append(self.query.model.__name__ if self.query.model else "")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SQLCompiler, "as_sql", counted)
    second = Call(id="H2", state="Ringing", call_type="Inbound", participants=("+15550101",))
    with CaptureQueriesContext(connection) as queries:
        batch(owned, history, functools.partial(services.save_call, owned, second, at(5), history))

    assert built == []
    assert len(history_selects(queries)) == 1  # the row is looked for: another worker may have saved it
    assert CallRecord.objects.filter(login=owned, call_id="H2", final_state="Ringing").exists()


def test_a_history_row_reads_and_inserts_as_the_orm_does(owned: AgentLogin) -> None:
    record = CallRecord(
        login=owned,
        call_id="H3",
        call_type="Inbound",
        direction=CallRecord.INBOUND,
        parties=["+15550100", "+15550199"],
        user_data={"account": "42", "nested": {"ok": True}},
        started_at=at(0),
        answered_at=at(3),
        state_since=at(3),
        final_state="Established",
    )

    sql.insert(record)

    by_orm = CallRecord.objects.get(pk=record.pk)
    read = sql.get(CallRecord, login=owned.pk, call_id="H3")
    assert read is not None and not read._state.adding
    fields = [field.attname for field in CallRecord._meta.concrete_fields]
    assert [getattr(read, name) for name in fields] == [getattr(by_orm, name) for name in fields]
    assert read.changed_fields(services.SAVED_FIELDS) == []
    assert (read.user_data["nested"], read.ended_at, read.started_at) == ({"ok": True}, None, at(0))
    assert sql.get(CallRecord, login=owned.pk, call_id="H404") is None


def test_the_lease_fence_locks_the_login_row_and_not_its_users(owned: AgentLogin) -> None:
    """The user's row is the desk's sign-in: a write in progress must not hold it up."""
    history = services.History()
    with CaptureQueriesContext(connection) as queries:
        batch(owned, history, saved(owned, history, "Ringing", 0))

    statements = [q["sql"] for q in queries.captured_queries]
    fence = [sql for sql in statements if sql.startswith("SELECT") and 'FROM "calls_agentlogin"' in sql]
    assert len(fence) == 1
    assert "auth_user" not in fence[0]


# -- the same on PostgreSQL, where the fence really locks ----------------------------------------------


@pytest.mark.skipif(bool(os.environ.get(ON_POSTGRESQL)), reason="this is the PostgreSQL run")
def test_the_history_writes_hold_on_postgresql(postgres_url: str) -> None:
    assert connection.vendor == "sqlite"  # this run; the one below is PostgreSQL's
    output = passes_on_postgresql(__file__, postgres_url, flag=ON_POSTGRESQL, timeout=300)

    assert "8 passed" in output


@pytest.mark.skipif(not os.environ.get(ON_POSTGRESQL), reason="only in the PostgreSQL run")
def test_while_a_batch_is_written_its_login_row_is_locked_and_its_users_row_is_not(owned: AgentLogin) -> None:
    database = connection.settings_dict
    other = psycopg.connect(
        dbname=database["NAME"], host=database["HOST"], port=database["PORT"], user=database["USER"]
    )
    other.autocommit = True
    try:
        with transaction.atomic():
            assert calls_worker.holds_lease(owned.pk)
            other.execute("SELECT 1 FROM auth_user WHERE id = %s FOR UPDATE NOWAIT", (owned.user_id,))
            with pytest.raises(psycopg.errors.LockNotAvailable):
                other.execute("SELECT 1 FROM calls_agentlogin WHERE id = %s FOR UPDATE NOWAIT", (owned.pk,))
    finally:
        other.close()
