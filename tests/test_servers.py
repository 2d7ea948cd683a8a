"""What the tests start and create for themselves is gone when they end."""

from __future__ import annotations

import os
from typing import Any

import psycopg
import pytest
from django.db import connection

from tests.servers import pytest_on_postgresql

ON_POSTGRESQL = "SWITCHBOARD_SERVERS_ON_POSTGRESQL"
# The PostgreSQL run's own connection to its test database, open until the process exits.
HELD: list[psycopg.Connection[Any]] = []


@pytest.mark.skipif(not os.environ.get(ON_POSTGRESQL), reason="only the PostgreSQL run of the test below")
@pytest.mark.django_db
def test_the_run_on_postgresql_holds_its_test_database_to_the_end() -> None:
    assert connection.vendor == "postgresql"
    HELD.append(psycopg.connect(**connection.get_connection_params()))


@pytest.mark.skipif(bool(os.environ.get(ON_POSTGRESQL)), reason="this is the PostgreSQL run")
def test_a_module_run_again_on_postgresql_leaves_no_database_behind(postgres_url: str) -> None:
    result = pytest_on_postgresql(__file__, postgres_url, flag=ON_POSTGRESQL, timeout=300)

    assert "1 passed" in result.stdout, result.stdout[-3000:] + result.stderr[-2000:]
    with psycopg.connect(postgres_url) as admin:
        pattern = "%switchboard_test_servers_%"
        left = admin.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [pattern]).fetchall()
    assert left == []
