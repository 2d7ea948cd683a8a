"""The production example in ``deploy/``, started as an operator starts it on loopback (``deploy.local``):
nginx from Debian's package in front of two daphne processes, two session workers, a standalone
simulator, PostgreSQL and Redis. An agent signs in, opens the desk's WebSocket and runs seed 002
through nginx over TLS; then the worker holding the agent's session is killed and the other one
takes over. Metrics stay off nginx, and each process answers its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from deploy.local import NGINX, LocalDeployment, Ports
from deploy.processes import flush_redis
from tests.desk import card, control
from tests.servers import free_port
from tests.stack import log_in, logged_in_socket, seed_002

pytestmark = pytest.mark.multiprocess

ROOT = Path(__file__).resolve().parent.parent
LAYER_DB = 11
# Short, so that the failover waits seconds; the other worker takes over once the lease runs out.
LEASE_SECONDS = 3.0
TAKEOVER_TIMEOUT_S = LEASE_SECONDS + 20.0
HISTORY_TIMEOUT_S = 10.0
TEST_TIMEOUT_S = 150.0


def test_the_settings_example_names_every_variable_the_settings_read() -> None:
    settings_source = (ROOT / "desktop" / "settings.py").read_text(encoding="utf-8")
    read = set(re.findall(r'(?:ENV|env)(?:\.get\(|, )"([A-Z][A-Z0-9_]+)"', settings_source))
    example = (ROOT / "deploy" / "switchboard.env.example").read_text(encoding="utf-8")
    listed = set(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]+)=", example, re.M))

    assert read, "no settings variables found: the pattern no longer matches desktop/settings.py"
    assert read - listed == set()


@pytest.fixture(scope="module")
def deployment(postgres_url: str, redis_url: str) -> Iterator[LocalDeployment]:
    """The whole shape on free ports, Redis database index 11 of its own, shared by this module's tests
    (the failover, which kills a worker, comes last); everything stopped and dropped at the end. The
    processes' logs are printed first, which pytest shows when a test failed."""
    if not NGINX.exists():
        reason = f"{NGINX} is missing (Debian's nginx package)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI must provide it, see .ci/run")
        pytest.skip(reason)
    layer = f"{redis_url.rsplit('/', 1)[0]}/{LAYER_DB}"
    flush_redis(layer)
    ports = Ports(
        https=free_port(),
        desks=(free_port(), free_port()),
        worker_metrics=(free_port(), free_port()),
        simulator=free_port(),
    )
    running = LocalDeployment(
        postgres_url=postgres_url,
        redis_url=layer,
        ports=ports,
        lease_seconds=LEASE_SECONDS,
        answer_delay_ms=0,
        settings={"VOICE_SESSION_MAX_BACKOFF_SECONDS": "1"},
    )
    with running:
        try:
            yield running
        finally:
            print(running.tails())


@pytest.fixture
async def agent(deployment: LocalDeployment) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client that behaves as the desk's browser does through nginx: TLS verified against the
    deployment's certificate, cookies kept, and the page's origin on every request (Django checks it on
    a POST over HTTPS)."""
    async with aiohttp.ClientSession(
        base_url=deployment.url,
        connector=aiohttp.TCPConnector(ssl=deployment.tls_context()),
        cookie_jar=aiohttp.CookieJar(unsafe=True),  # the desk is an IP address, which the default jar refuses
        headers={"Origin": deployment.url, "Referer": f"{deployment.url}/"},
        timeout=aiohttp.ClientTimeout(total=20),
    ) as http:
        yield http


async def owner_of(deployment: LocalDeployment, username: str) -> str | None:
    """The name of the worker process whose lease holds ``username``'s session (the ``worker`` column
    names its pid), or None."""
    async with await psycopg.AsyncConnection.connect(deployment.database_url) as db:
        row = await (
            await db.execute("SELECT worker FROM calls_agentlogin WHERE username = %s", (username,))
        ).fetchone()
    if row is None or not row[0]:
        return None
    pid = int(str(row[0]).rsplit(":", 2)[-2])
    return next((name for name in deployment.processes if deployment.pid(name) == pid), None)


async def until_owned_by(deployment: LocalDeployment, username: str, wanted: set[str]) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TAKEOVER_TIMEOUT_S
    while (owner := await owner_of(deployment, username)) not in wanted:
        assert loop.time() < deadline, f"{username}'s session is held by {owner}, not one of {wanted}"
        await asyncio.sleep(0.2)
    assert owner is not None
    return owner


async def history_outcomes(http: aiohttp.ClientSession, call_ids: list[str]) -> dict[str, str]:
    """The history page's outcome of each call, once every one of them has one (history is written
    behind the push, so it may lag the cards by a moment)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HISTORY_TIMEOUT_S
    while True:
        async with http.get("/history/") as response:
            assert response.status == 200
            page = await response.text()
        outcomes = {
            call_id: found.group(1)
            for call_id in call_ids
            if (found := re.search(rf'data-call-id="{re.escape(call_id)}"[^>]*data-outcome="([^"]+)"', page))
        }
        if len(outcomes) == len(call_ids) or loop.time() > deadline:
            return outcomes
        await asyncio.sleep(0.2)


def connection_shown(frames: list[str]) -> str | None:
    """The connection status a page shows after these frames (a page, then pushes), as htmx swaps
    them: the last ``#connection`` wins."""
    statuses = re.findall(r'id="connection"[^>]*data-status="([^"]+)"', "".join(frames))
    return statuses[-1] if statuses else None


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """The samples named ``name`` in a Prometheus text exposition: (labels, value)."""
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


async def test_metrics_are_refused_through_nginx_and_answered_by_each_process_on_its_own(
    deployment: LocalDeployment, agent: aiohttp.ClientSession
) -> None:
    async with agent.get("/metrics") as through_nginx:
        assert through_nginx.status == 404
    await log_in(agent, "agent1", "agent1")
    async with agent.get("/") as page:
        assert page.status == 200

    async with httpx.AsyncClient(timeout=5) as scraper:
        desks = [await scraper.get(f"{url}/metrics") for url in deployment.desk_urls]
        workers = [await scraper.get(url) for url in deployment.worker_metrics_urls]

    assert [scrape.status_code for scrape in desks + workers] == [200, 200, 200, 200]
    # nginx shares the requests between the two desk processes: only their sum has every page load.
    pages = sum(
        value
        for scrape in desks
        for labels, value in samples(scrape.text, "switchboard_http_requests_total")
        if labels == {"view": "desk", "status": "2xx"}
    )
    assert pages >= 1
    for scrape in workers:
        statuses = {labels["status"] for labels, _ in samples(scrape.text, "switchboard_voice_sessions")}
        assert statuses == {"connected", "reconnecting", "offline", "refused"}


def test_every_process_logs_one_json_object_per_line(deployment: LocalDeployment) -> None:
    # Everything the desk processes and the workers write is a log record, but the worker's one line
    # on standard output saying that it serves.
    lines = [
        line
        for name in ("daphne-1", "daphne-2", "worker-1", "worker-2")
        for line in deployment.log(name).splitlines()
        if line.strip() and not line.startswith("Serving channels")
    ]
    records = [json.loads(line) for line in lines]
    requests = [json.loads(line) for line in deployment.log("nginx-access").splitlines()]

    assert all({"time", "level", "logger", "message"} <= record.keys() for record in records)
    assert {record["process"] for record in records if record["logger"] == "switchboard.metrics"} == {
        deployment.pid("worker-1"),
        deployment.pid("worker-2"),
    }
    assert requests and all(isinstance(request["status"], int) for request in requests)


async def test_an_agent_runs_seed_002_through_nginx_and_a_killed_worker_hands_the_session_over(
    deployment: LocalDeployment, agent: aiohttp.ClientSession
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT_S):
        await log_in(agent, "agent1", "agent1")
        async with logged_in_socket(agent, deployment.url) as desk:
            call_id, consult_id = await seed_002(deployment.simulator_url, agent, desk)
            outcomes = await history_outcomes(agent, [call_id, consult_id])
            assert outcomes == {call_id: "transferred", consult_id: "transferred"}

            # The worker holding agent1's session dies without a word; the other one takes it over once
            # the lease runs out, and the same open page shows it connected and rings again.
            workers = {name for name in deployment.processes if name.startswith("worker")}
            owner = await until_owned_by(deployment, "agent1", workers)
            deployment.kill(owner)
            survivor = await until_owned_by(deployment, "agent1", workers - {owner})
            again = await control(
                deployment.simulator_url, "POST", "/control/calls", {"from": "5000", "to": "5005"}
            )
            await desk.until(card(again["id"], "Ringing"))
            assert connection_shown(desk.received) == "connected"
            async with agent.get("/") as response:
                assert connection_shown([await response.text()]) == "connected"
        assert deployment.exited() == {}, f"{survivor} took over, but processes ended: {deployment.exited()}"
