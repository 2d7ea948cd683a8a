"""How the session's writer saves the call history: its rows kept in memory between events, every
batch in one transaction behind the lease fence."""

from __future__ import annotations

import datetime
import functools
import os

import psycopg
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from calls import persist, services
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
    return [q["sql"] for q in queries.captured_queries if q["sql"].startswith('SELECT "calls_callrecord"')]


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

    assert "6 passed" in output


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
