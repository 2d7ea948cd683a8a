"""A session's lease where workers really claim at once: on PostgreSQL, each in its own transaction.

Two workers claim the same login at the same moment when one opens it for a page (``session.ensure``)
while the other claims the sessions no worker holds. Exactly one may win: two winners each run the
agent's session, and the one that loses the row later shows the agent a desk that no longer moves.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from asgiref.sync import async_to_sync
from django.db import connection

from calls import worker as calls_worker
from calls.models import AgentLogin
from tests.servers import passes_on_postgresql

ON_POSTGRESQL = "SWITCHBOARD_LEASES_ON_POSTGRESQL"
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.skipif(bool(os.environ.get(ON_POSTGRESQL)), reason="this is the PostgreSQL run")
def test_the_leases_hold_on_postgresql(postgres_url: str) -> None:
    assert connection.vendor == "sqlite"  # this run; the one below is PostgreSQL's
    output = passes_on_postgresql(__file__, postgres_url, flag=ON_POSTGRESQL, timeout=300)

    assert "1 passed" in output


def _connect() -> psycopg.Connection[tuple[object, ...]]:
    database = connection.settings_dict
    return psycopg.connect(
        dbname=database["NAME"], host=database["HOST"], port=database["PORT"], user=database["USER"]
    )


def _claim_elsewhere(login_id: int) -> AgentLogin | None:
    """This worker's claim, on a thread (and database connection) of its own."""
    try:
        return async_to_sync(calls_worker.claim)(login_id)
    finally:
        connection.close()


@pytest.mark.skipif(not os.environ.get(ON_POSTGRESQL), reason="only in the PostgreSQL run")
def test_a_claim_that_waits_on_another_workers_claim_of_the_login_does_not_win_it_too(
    agent1: AgentLogin,
) -> None:
    AgentLogin.objects.filter(pk=agent1.pk).update(wanted=True, worker="", lease_until=None)
    other, watcher = _connect(), _connect()
    watcher.autocommit = True
    try:
        # Another worker's claim: the row taken, its transaction not yet committed.
        other.execute(
            "UPDATE calls_agentlogin SET worker = 'other', lease_until = now() + interval '1 minute' "
            "WHERE id = %s",
            (agent1.pk,),
        )
        with ThreadPoolExecutor(max_workers=1) as pool:
            claiming = pool.submit(_claim_elsewhere, agent1.pk)
            deadline = time.monotonic() + 10
            while not watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"
            ).fetchone()[0]:  # type: ignore[index]
                assert time.monotonic() < deadline, "the claim never waited on the other one"
                time.sleep(0.05)
            other.commit()
            claimed = claiming.result(timeout=10)
    finally:
        other.close()
        watcher.close()

    assert claimed is None
    assert AgentLogin.objects.get(pk=agent1.pk).worker == "other"
