"""Session benchmark: call-event latency through the desk against a bare Voice API client on the same
switch in the same run; the click path and the page render; bring-up after a worker start; memory.

The production shape on loopback, each component its own process: a standalone ``voicesim``, one or more
``daphne`` serving the desk (``--daphnes``) and one or more ``manage.py runworker voice-sessions``
(``--workers``, sharing the agents through the lease), on a fresh PostgreSQL database and a Redis
database index. N agents are added to the simulator's directory and to the desk (users, agent logins and
Django sessions, made in one ``manage.py shell`` step), on the simulator's Genesys dialect, its Huawei
dialect, or half on each (``--vendor``); each opens its own desktop WebSocket and logs in to the contact
center with ``POST /agent/``.

Then calls are placed through the control API at a fixed rate, each to a random agent. Per call:

- t0: just before the control POST is sent (the switch notifies while it handles that POST);
- desk: the agent's desktop WebSocket receives the Ringing card carrying the call id
  (simulator -> the worker's Voice API session -> Redis -> daphne -> WebSocket);
- bare, Genesys: a bare aiocometd client, with a GWS session of its own for the same agent, receives the
  Ringing notification for the same call (for a sample of agents, which get every other call);
- bare, Huawei: a Huawei agent has one session only (a second sign-in is refused), so a bare poller cannot
  sit beside the desk on the same agent. The baseline is a second set of Huawei agents that the desk does
  not serve, each signed in and polled by a bare poller (``GET /agentevent``) on the same simulator, in
  the same run, getting one call for every second call to a Huawei desk agent (placed between them).

Then the click path (Hold and Retrieve on an answered call through the desk's ``POST /calls/<id>/``,
against the same Voice API request sent with httpx on a Voice API session of its own), the desk page's
render (``GET /`` with five live calls on the agent), and the bring-up: every worker is stopped and
started again, and the time from the start to every page saying ``connected`` and showing the agent's
state again is measured. With two workers, last, the takeover: the worker with the most sessions is
killed (no drain), and the time from the kill until the other has sent every page of its agents their
state again (its leases, ``--lease``, run out first) is measured.

    .venv/bin/python bench/sessions.py --agents 100
    .venv/bin/python bench/sessions.py --agents 500 --vendor both --workers 2
    .venv/bin/python bench/sessions.py --sweep --sweep-agents 500,1000 --sweep-rates 20,50

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust) and Redis on 127.0.0.1:6379. Creates the
database ``switchboard_bench_<random>`` and flushes Redis database ``--redis-db``; both are cleaned up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import functools
import json
import math
import os
import platform
import random
import re
import secrets
import shlex
import signal
import string
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import psycopg
import redis.asyncio as aioredis
from aiocometd_noloop import Client, ConnectionType, Extension
from prometheus_client.parser import text_string_to_metric_families

from deploy.processes import (
    DESK_PROCESSES,
    WORKER,
    Database,
    Processes,
    answers_async,
    daphne,
    desk_env,
    flush_redis,
    free_port,
    voicesim,
)

ROOT = Path(__file__).resolve().parent.parent

from simulator.switch import INTERNAL_RANGES, SEEDED_DIRECTORY  # noqa: E402

POSTGRES = "postgres://postgres@127.0.0.1:5432"
GENESYS, HUAWEI = "genesys", "huawei"
VENDORS = {"genesys": (GENESYS,), "huawei": (HUAWEI,), "both": (GENESYS, HUAWEI)}
GENESYS_API = "/genesys/api/v2"
HUAWEI_API = "/huawei/agentgateway/resource"
CALLS_CHANNEL = "/v2/me/calls"
# Huawei agent ids are work numbers, 101-59999: the desk's agents from here, the bare pollers' above.
HUAWEI_DESK_FIRST_ID = 30001
HUAWEI_BARE_FIRST_ID = 50001
HUAWEI_LAST_ID = 59999
EXTRAPOLATE_TO = 5000
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0  # the worker drains every session before it exits
ARRIVAL_TIMEOUT_S = 30.0  # after the last call is placed, for every fragment to arrive
STALL_S = 30.0  # a wait for one push per agent ends when none has come for this long
STEP_TIMEOUT_S = 15.0  # a click-path step (a card changing state on the page)
SETTLE_S = 3.0  # before reading memory: at most this, less for a few agents
CONCURRENCY = 25
SOCKET_ATTEMPTS = 4
LOG_TAIL_CHARS = 4000
LIVE_CALLS_ON_PAGE = 5
RENDER_WARMUP = 3
# A desk action the desk refuses for now is tried again after this pause, and counted; only the one it
# carries out is timed. 404 and 409: the call, or its new state, is on the page but not saved yet (the
# desk pushes first and persists behind); 429: the agent's action rate limit.
REFUSED_PAUSE_S = {404: 0.05, 409: 0.05, 429: 1.0}
REFUSED_ATTEMPTS = 40
LOGIN_ATTEMPTS = 3
RESULT_PREFIX = "SESSIONS-RESULT "

CARD_OR_REMOVAL = re.compile(
    r'<article id="call-([^"]+)"[^>]*data-state="([A-Za-z]+)"|<div id="call-([^"]+)" hx-swap-oob="delete"'
)
CONNECTED = re.compile(r'id="connection"[^>]*data-status="connected"')
AGENT_STATE = re.compile(r'id="agent-state"[^>]*data-state="([A-Za-z]+)"')
PAGE_CARD = re.compile(r'<article id="call-')

# Run by `manage.py shell -c` against the bench's database; prints the agents' session keys.
SETUP = """
import json, os
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.sessions.backends.db import SessionStore
from calls.models import AgentLogin, VoiceServer

with open(os.environ["BENCH_SPEC_FILE"], encoding="utf-8") as spec_file:
    spec = json.load(spec_file)
User = get_user_model()
servers = {
    "genesys": VoiceServer.objects.create(name="Simulator", base_url=spec["simulator"] + "/genesys"),
    "huawei": VoiceServer.objects.create(
        name="Simulator (Huawei)", dialect="huawei", base_url=spec["simulator"] + "/huawei"
    ),
}
password = make_password(spec["password"])  # hashed once: the hasher is slow by design
agents = {username: (login, dn, vendor) for username, login, dn, vendor in spec["agents"]}
users = User.objects.bulk_create([User(username=name, password=password) for name in agents])
AgentLogin.objects.bulk_create([
    AgentLogin(
        user=u,
        server=servers[agents[u.username][2]],
        username=agents[u.username][0],
        password=spec["password"],
        dn=agents[u.username][1],
    )
    for u in users
])
sessions = {}
for user in users:
    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.save()
    sessions[user.username] = store.session_key
print("BENCH-SESSIONS " + json.dumps(sessions))
"""


class BenchError(Exception):
    """The run cannot go on; the message says why."""


# -- processes ----------------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def waited_seconds(pid: int) -> float:
    """Time the process's threads have spent ready to run but waiting for a CPU so far (the scheduler's
    run delay, /proc/<pid>/task/*/schedstat): on a busy machine, what each hop between processes costs."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


async def stop_profilers(profilers: list[subprocess.Popen[bytes]]) -> None:
    """Stops py-spy recorders early, as Ctrl-C would: each writes what it has recorded and exits."""
    for profiler in profilers:
        if profiler.poll() is None:
            profiler.send_signal(signal.SIGINT)
    for profiler in profilers:
        try:
            await asyncio.to_thread(profiler.wait, 60)
        except subprocess.TimeoutExpired:
            profiler.kill()
            profiler.wait()


async def cancel(tasks: list[asyncio.Task[None]], what: str) -> None:
    """Cancels the tasks and waits a little for them to end: a client may swallow a cancellation
    (redis/redis-py#2028), and the bench must not hang on it."""
    for task in tasks:
        task.cancel()
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=5)
        if pending:
            print(f"{len(pending)} of {len(tasks)} {what} would not stop", file=sys.stderr, flush=True)


async def close_all(closing: list[Awaitable[Any]], what: str) -> None:
    """Closes at once, waiting at most 5 s; what does not close by then is left to the process's end."""
    tasks = [asyncio.ensure_future(job) for job in closing]
    if tasks:
        done, pending = await asyncio.wait(tasks, timeout=5)
        for task in done:
            if not task.cancelled():
                task.exception()  # a socket that failed to close is closed enough: retrieved, not raised
        if pending:
            print(f"{len(pending)} of {len(tasks)} {what} would not close", file=sys.stderr, flush=True)


async def bounded(jobs: Iterable[Awaitable[Any]], limit: int = CONCURRENCY) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(job: Awaitable[Any]) -> Any:
        async with gate:
            return await job

    return await asyncio.gather(*(one(job) for job in jobs))


# -- the agents and what they receive ---------------------------------------------------------------


def free_dns(count: int) -> list[str]:
    """Internal DNs that no seeded agent holds, lowest first. Both dialects share the switch's internal
    ranges; past the contract's three (about 395 free numbers) the extra 20000-29999 serves."""
    taken = {dn for _, _, dn, _ in SEEDED_DIRECTORY}
    numbers = (str(n) for low, high in INTERNAL_RANGES for n in range(low, high + 1))
    dns = [dn for dn in numbers if dn not in taken][:count]
    if len(dns) < count:
        raise BenchError(f"the simulator has {len(dns)} free internal DNs; {count} agents need more")
    return dns


@dataclass(eq=False)
class Agent:
    """One agent on the switch: at the desk (``username`` is its desk user), or a Huawei agent that
    only a bare poller serves (no desk user)."""

    vendor: str
    login: str  # on the Voice API: the Genesys user name, or the Huawei agent id (work number)
    dn: str
    username: str = ""
    desk: str = ""  # the daphne this agent's page talks to
    session_key: str = ""
    # The CSRF cookie is a double-submit secret: any 32 letters do when X-CSRFToken repeats them.
    csrf: str = field(
        default_factory=lambda: "".join(secrets.choice(string.ascii_letters) for _ in range(32))
    )
    socket: aiohttp.ClientWebSocketResponse | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    not_ready: asyncio.Event = field(default_factory=asyncio.Event)
    state_shown: asyncio.Event = field(default_factory=asyncio.Event)  # the agent state bar came
    state: str = ""
    cards: dict[str, str] = field(default_factory=dict)  # call id -> the state its card shows
    closed: str = ""

    @property
    def cookie(self) -> str:
        return f"sessionid={self.session_key}; csrftoken={self.csrf}"

    def up(self) -> bool:
        """The page says connected and has been sent the agent state bar."""
        return self.connected.is_set() and self.state_shown.is_set()


class DeskSockets:
    """Every agent's desktop WebSocket, when each Ringing card arrived (perf_counter seconds), and the
    state each card shows now."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http
        self.arrivals: dict[str, float] = {}
        self.readers: list[asyncio.Task[None]] = []
        self.sockets: list[aiohttp.ClientWebSocketResponse] = []
        self.retries = 0

    async def open(self, agent: Agent) -> None:
        """Connects, trying again a few times: daphne drops a handshake its consumer does not accept
        within its connect timeout (5 s), which happens when the desk is backed up."""
        for attempt in range(1, SOCKET_ATTEMPTS + 1):
            try:
                agent.socket = await self.http.ws_connect(
                    f"{agent.desk}/ws/desktop/", origin=agent.desk, headers={"Cookie": agent.cookie}
                )
                break
            except (aiohttp.ClientError, OSError) as exc:
                self.retries += 1
                if attempt == SOCKET_ATTEMPTS:
                    raise BenchError(
                        f"{agent.username}'s desktop socket: {type(exc).__name__}: {exc}"
                    ) from exc
                await asyncio.sleep(attempt)
        assert agent.socket is not None
        self.sockets.append(agent.socket)
        self.readers.append(asyncio.create_task(self._read(agent, agent.socket)))

    async def _read(self, agent: Agent, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            now = time.perf_counter()
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            for card_id, state, removed_id in CARD_OR_REMOVAL.findall(message.data):
                if removed_id:
                    agent.cards.pop(removed_id, None)
                    continue
                agent.cards[card_id] = state
                if state == "Ringing":
                    self.arrivals.setdefault(card_id, now)
            if CONNECTED.search(message.data):
                agent.connected.set()
            for state in AGENT_STATE.findall(message.data):
                agent.state = state
                agent.state_shown.set()
                if state == "NotReady":
                    agent.not_ready.set()
        agent.closed = f"{agent.username}: socket closed ({ws.close_code})"

    async def until_card(self, agent: Agent, call_id: str, state: str) -> None:
        """Until the agent's page shows the call's card in ``state``."""
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while agent.cards.get(call_id) != state:
            if agent.closed:
                raise BenchError(agent.closed)
            if time.monotonic() > deadline:
                shown = agent.cards.get(call_id, "no card")
                raise BenchError(f"{agent.username}'s page shows {shown} for {call_id}, not {state}")
            await asyncio.sleep(0.005)

    async def close(self) -> None:
        await cancel(self.readers, "readers")
        await close_all([ws.close() for ws in self.sockets], "desktop sockets")


class _Cookie(Extension):  # type: ignore[misc]  # aiocometd has no types
    """aiocometd takes no cookies argument: the GWS session cookie rides on every request."""

    def __init__(self, cookie: str) -> None:
        self.cookie = cookie

    async def outgoing(self, payload: list[dict[str, Any]], headers: dict[str, str]) -> None:
        headers["Cookie"] = self.cookie

    async def incoming(self, payload: list[dict[str, Any]], headers: dict[str, str] | None = None) -> None:
        return None


@dataclass
class GenesysSession:
    """A GWS session of the bench's own for one agent: its cookie and CSRF token."""

    cookie: str
    csrf_header: str
    csrf_token: str


class BareCometD:
    """A bare CometD client per sampled Genesys agent, straight on the simulator with a GWS session of
    its own, as a vendor's sample client would be."""

    def __init__(self, simulator: str, password: str) -> None:
        self.api = f"{simulator}{GENESYS_API}"
        self.password = password
        self.arrivals: dict[str, float] = {}
        self.sessions: dict[str, GenesysSession] = {}
        self.clients: list[Client] = []
        self.readers: list[asyncio.Task[None]] = []

    async def open(self, agent: Agent) -> None:
        async with httpx.AsyncClient(base_url=self.api, timeout=10) as http:
            me = await http.get("/me", params={"subresources": "*"}, auth=(agent.login, self.password))
            me.raise_for_status()
            cookie = "; ".join(f"{name}={value}" for name, value in http.cookies.items())
        header = me.headers.get("X-CSRF-HEADER", "X-CSRF-TOKEN")
        self.sessions[agent.login] = GenesysSession(cookie, header, me.headers.get(header, ""))
        client = Client(
            f"{self.api}/notifications", ConnectionType.LONG_POLLING, extensions=[_Cookie(cookie)]
        )
        await client.open()
        await client.subscribe(CALLS_CHANNEL)
        self.clients.append(client)
        self.readers.append(asyncio.create_task(self._read(client)))

    async def _read(self, client: Client) -> None:
        async for message in client:
            now = time.perf_counter()
            call = (message.get("data") or {}).get("call") or {}
            if call.get("state") == "Ringing" and isinstance(call.get("id"), str):
                self.arrivals.setdefault(call["id"], now)

    async def operate(self, http: httpx.AsyncClient, agent: Agent, call_id: str, operation: str) -> None:
        """The Voice API request the desk sends for this operation, on the bench's own session."""
        session = self.sessions[agent.login]
        headers = {"Cookie": session.cookie, session.csrf_header: session.csrf_token}
        body = {"operationName": operation}
        answer = await http.post(f"{self.api}/me/calls/{call_id}", json=body, headers=headers)
        if answer.status_code != 200:
            raise BenchError(f"{operation} for {agent.login} directly: {answer.status_code} {answer.text}")

    async def close(self) -> None:
        await cancel(self.readers, "readers")
        await close_all([client.close() for client in self.clients], "CometD clients")


class BarePollers:
    """A bare Huawei poller per agent of its own: it signs the agent in (``PUT /onlineagent``), then
    polls ``GET /agentevent`` again as soon as each answer comes, keeping the Guid the gateway rotates."""

    def __init__(self, simulator: str, password: str) -> None:
        self.root = f"{simulator}{HUAWEI_API}"
        self.password = password
        self.arrivals: dict[str, float] = {}
        self.guids: dict[str, str] = {}
        self.failures: list[str] = []
        self.readers: list[asyncio.Task[None]] = []
        unlimited = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        self.http = httpx.AsyncClient(base_url=self.root, timeout=30, limits=unlimited)

    def _keep_guid(self, agent: Agent, response: httpx.Response) -> None:
        header = response.headers.get("Set-GUID", "")
        if "=" in header:
            self.guids[agent.login] = header.split("=", 1)[1].strip()

    @staticmethod
    def _envelope(what: str, response: httpx.Response) -> dict[str, Any]:
        body = response.json() if response.status_code == 200 else None
        if not isinstance(body, dict) or body.get("retcode") != "0":
            raise BenchError(f"{what}: {response.status_code} {response.text[:300]}")
        return body

    async def open(self, agent: Agent) -> None:
        body = {
            "password": self.password,
            "phonenum": agent.dn,
            "status": 3,  # Not Ready, as the desk's agents
            "autoanswer": False,
            "autoenteridle": True,
            "releasephone": True,
            "agenttype": 4,
        }
        answer = await self.http.put(f"/onlineagent/{agent.login}", json=body)
        self._envelope(f"signing in Huawei agent {agent.login}", answer)
        self._keep_guid(agent, answer)
        if agent.login not in self.guids:
            raise BenchError(f"the gateway signed in {agent.login} without a Guid")
        self.readers.append(asyncio.create_task(self._poll(agent)))

    async def _poll(self, agent: Agent) -> None:
        try:
            while True:
                headers = {"Guid": f"JSESSIONID={self.guids[agent.login]}"}
                answer = await self.http.get(f"/agentevent/{agent.login}", headers=headers)
                now = time.perf_counter()
                self._keep_guid(agent, answer)
                event = self._envelope(f"polling for {agent.login}", answer).get("event") or {}
                content = event.get("content")
                if event.get("eventType") == "AgentEvent_Ringing" and isinstance(content, dict):
                    if isinstance(content.get("callid"), str):
                        self.arrivals.setdefault(content["callid"], now)
        except (BenchError, httpx.HTTPError) as exc:
            self.failures.append(f"{agent.login}: {type(exc).__name__}: {exc}")

    async def operate(self, http: httpx.AsyncClient, agent: Agent, call_id: str, operation: str) -> None:
        """The Voice API request the desk sends for this operation, on the poller's own sign-in."""
        headers = {"Guid": f"JSESSIONID={self.guids[agent.login]}"}
        base = f"{self.root}/voicecall/{agent.login}"
        if operation == "Hold":
            answer = await http.post(f"{base}/hold", headers=headers)
        else:
            answer = await http.post(f"{base}/gethold", params={"callid": call_id}, headers=headers)
        self._envelope(f"{operation} for {agent.login} directly", answer)

    async def close(self) -> None:
        await cancel(self.readers, "readers")
        await self.http.aclose()


class LayerQueueWatch:
    """Samples the deepest process-specific queue in the Redis layer every 20 ms. All the consumers of
    one daphne share one such queue, and channels_redis drops a group message (logging it only at INFO)
    when that queue already holds ``capacity`` messages, 100 by default.

    The queues (one per daphne and worker process, a key only while it holds a message) are looked
    for every ``FIND_EVERY_S`` and remembered, not at each sample: a SCAN walks every key of the layer
    (thousands of groups at thousands of agents), and Redis serves nobody else while it does. Scanning
    at each sample held Redis most of the time at 2,000 agents, and the desk's pushes, which go through
    Redis, queued behind it, where the bare clients' events do not."""

    FIND_EVERY_S = 5.0

    def __init__(self, url: str) -> None:
        self.redis = aioredis.Redis.from_url(url)
        self.peak = 0
        self.task: asyncio.Task[None] | None = None
        # Stops the sampling too: redis-py may swallow the task's cancellation (redis/redis-py#2028),
        # and a sampler that lived on hung the event loop's close for good.
        self.stopping = False

    def start(self) -> None:
        self.task = asyncio.create_task(self._sample())

    def take_peak(self) -> int:
        peak, self.peak = self.peak, 0
        return peak

    async def _sample(self) -> None:
        keys: set[bytes] = set()
        found = -math.inf
        while not self.stopping:
            if time.monotonic() - found >= self.FIND_EVERY_S:
                keys.update([key async for key in self.redis.scan_iter(match="asgispecific.*", count=1000)])
                found = time.monotonic()
            for key in keys:
                with contextlib.suppress(aioredis.ResponseError):
                    self.peak = max(self.peak, await self.redis.zcard(key))
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.stopping = True
        if self.task:
            await cancel([self.task], "the layer watch")
        await self.redis.aclose()


def quiet_cancelled_callbacks(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # aiocometd's connect-done callback re-raises the cancellation of a client being closed.
    if not isinstance(context.get("exception"), asyncio.CancelledError):
        loop.default_exception_handler(context)


# -- figures ------------------------------------------------------------------------------------


# The workers' histograms the bench reads (calls.metrics), and what each measures.
WORKER_HISTOGRAMS = {
    "switchboard_event_lag_seconds": "event received to its push sent",
    "switchboard_push_seconds": "group send",
    "switchboard_event_loop_lag_seconds": "event loop late",
    "switchboard_gc_pause_seconds": "garbage collection",
}


def bucket_quantiles(counts: Counter[float]) -> list[float | None]:
    """p50 and p99 of a histogram's cumulative bucket counts, as the bucket bound each falls under
    (ms; ``inf`` above the last bound, None with no observation)."""
    bounds = sorted(counts)
    total = counts[math.inf] if bounds else 0
    if not total:
        return [None, None]
    return [next(b for b in bounds if counts[b] >= q * total) * 1000 for q in (0.5, 0.99)]


def fmt_bound(ms: float | None) -> str:
    return "-" if ms is None else "over the last bucket" if math.isinf(ms) else f"{ms:g}"


def percentile(values: list[float], p: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def latencies(sent: dict[str, float], arrivals: dict[str, float], ids: Iterable[str]) -> list[float]:
    return [(arrivals[i] - sent[i]) * 1000 for i in ids if i in arrivals]


def plain(html: str) -> str:
    """The words of an answer (a toast, an error page), for a message."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).replace("×", " ").split())[:300]


def mib(kib: float) -> str:
    return f"{kib / 1024:,.1f} MiB"


def p50_p99(values: list[float]) -> tuple[float, float] | None:
    return (percentile(values, 50), percentile(values, 99)) if values else None


def ratio(desk: list[float], bare: list[float], p: float) -> float | None:
    if not desk or not bare or percentile(bare, p) <= 0:
        return None
    return percentile(desk, p) / percentile(bare, p)


@dataclass
class Phase:
    name: str
    seconds: float
    missing: int  # pushes that never reached a desktop socket
    layer_peak: int  # the deepest a daphne's queue in the Redis layer got
    where: str = ""  # when pushes are missing: what the simulator and the database say instead


@dataclass
class Series:
    """One latency series, ms, and how many of its calls never arrived."""

    name: str
    values: list[float] = field(default_factory=list)
    expected: int = 0

    @property
    def missing(self) -> int:
        return self.expected - len(self.values)

    def row(self, width: int, name: str = "", last: str | int | None = None) -> str:
        """n, p50, p99 and max under ``name`` (its own by default), then ``last`` (the missing count)."""
        head = f"{name or self.name:<{width}}{len(self.values):>6}"
        tail = f"{self.missing if last is None else last:>9}"
        if not self.values:
            return f"{head}{'-':>9}{'-':>9}{'-':>9}{tail}"
        p50, p99, top = percentile(self.values, 50), percentile(self.values, 99), max(self.values)
        return f"{head}{p50:>9.1f}{p99:>9.1f}{top:>9.1f}{tail}"


@dataclass
class VendorFigures:
    """What one vendor's agents saw: the desk against the bare client, clicks, the page render."""

    vendor: str
    agents: int = 0
    bare_agents: int = 0
    desk_all: Series = field(default_factory=lambda: Series("desk WebSocket, every call"))
    desk: Series = field(default_factory=lambda: Series("desk WebSocket, compared calls"))
    bare: Series = field(default_factory=lambda: Series("bare client, compared calls"))
    bare_failures: list[str] = field(default_factory=list)
    click_desk: Series = field(default_factory=lambda: Series("desk POST /calls/<id>/"))
    click_direct: Series = field(default_factory=lambda: Series("direct Voice API request"))
    click_refused: dict[int, int] = field(default_factory=dict)  # HTTP status -> times
    render: Series = field(default_factory=lambda: Series("desk GET /"))
    render_cards: int = 0
    click_error: str = ""  # why the click path stopped early
    render_error: str = ""

    def summary(self) -> dict[str, Any]:
        def pair(series: Series) -> list[float] | None:
            figures = p50_p99(series.values)
            return [round(v, 1) for v in figures] if figures else None

        def both(desk: list[float], other: list[float]) -> list[float | None]:
            return [_round(ratio(desk, other, 50)), _round(ratio(desk, other, 99))]

        return {
            "agents": self.agents,
            "bare_agents": self.bare_agents,
            "desk_ms": pair(self.desk),
            "desk_all_ms": pair(self.desk_all),
            "bare_ms": pair(self.bare),
            "ratio": both(self.desk.values, self.bare.values),
            "compared_calls": len(self.desk.values),
            "desk_missing": self.desk_all.missing,
            "bare_missing": self.bare.missing,
            "click_desk_ms": pair(self.click_desk),
            "click_direct_ms": pair(self.click_direct),
            "click_ratio": both(self.click_desk.values, self.click_direct.values),
            "click_refused": self.click_refused,
            "render_ms": pair(self.render),
            "render_cards": self.render_cards,
            "click_error": self.click_error,
            "render_error": self.render_error,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


@dataclass
class Figures:
    agents: int = 0
    workers: int = 1
    daphnes: int = 1
    rate_asked: float = 0.0
    rate_achieved: float = 0.0
    calls: int = 0
    extra_calls: int = 0
    socket_retries: int = 0
    login_retries: int = 0
    phases: list[Phase] = field(default_factory=list)
    rss: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    waited: dict[str, float] = field(default_factory=dict)
    # The workers' own latency histograms over the calls: p50 and p99 as bucket bounds, ms.
    worker_ms: dict[str, list[float | None]] = field(default_factory=dict)
    pushes_lost: int = 0
    bring_up_s: float | None = None
    bring_up_missing: int = 0
    workers_serving_s: float = 0.0  # of the bring-up: until the new processes said they serve
    bring_up_connected_s: float | None = None  # of the bring-up: until every page said connected
    # Of the bring-up, from the new workers' start until every page had its bar: CPU seconds by process.
    bring_up_cpu: dict[str, float] = field(default_factory=dict)
    # With two workers, one killed: its sessions, and the time until the other had them all back.
    takeover_sessions: int = 0
    takeover_s: float | None = None
    lease_s: float = 0.0
    vendors: dict[str, VendorFigures] = field(default_factory=dict)

    def worker_kib_per_session(self) -> float:
        return (self.rss["worker_logged_in"] - self.rss["worker_idle"]) / self.agents

    def daphne_kib_per_socket(self) -> float:
        return (self.rss["daphne_sockets"] - self.rss["daphne_idle"]) / self.agents

    def worker_ms_per_start(self) -> float:
        workers = sum(seconds for name, seconds in self.bring_up_cpu.items() if name.startswith("worker"))
        return 1000 * workers / self.agents

    def summary(self, args: argparse.Namespace) -> dict[str, Any]:
        return {
            "ok": True,
            "vendor": args.vendor,
            "agents": self.agents,
            "workers": self.workers,
            "daphnes": self.daphnes,
            "rate": self.rate_asked,
            "achieved_rate": round(self.rate_achieved, 1),
            "calls": self.calls,
            "pushes_lost": self.pushes_lost,
            "bring_up_s": _round(self.bring_up_s),
            "bring_up_missing": self.bring_up_missing,
            "workers_serving_s": round(self.workers_serving_s, 2),
            "bring_up_connected_s": _round(self.bring_up_connected_s),
            "socket_retries": self.socket_retries,
            "login_retries": self.login_retries,
            "worker_kib_per_session": round(self.worker_kib_per_session()),
            "daphne_kib_per_socket": round(self.daphne_kib_per_socket()),
            "rss_kib": self.rss,
            "cpu_s": {name: round(seconds, 2) for name, seconds in self.cpu.items()},
            "waited_for_cpu_s": {name: round(seconds, 2) for name, seconds in self.waited.items()},
            "bring_up_cpu_s": {name: round(seconds, 2) for name, seconds in self.bring_up_cpu.items()},
            "worker_ms_per_start": round(self.worker_ms_per_start(), 1),
            "takeover_sessions": self.takeover_sessions,
            "takeover_s": _round(self.takeover_s),
            "lease_s": self.lease_s,
            "worker_ms": self.worker_ms,
            "phases": [asdict(phase) for phase in self.phases],
            "vendors": {name: vendor.summary() for name, vendor in self.vendors.items()},
        }

    def report(self, args: argparse.Namespace) -> str:
        """Every figure, phase by phase, then the table the issue asks for."""
        n, rss, width = self.agents, self.rss, 44
        lines = [
            f"{'phase':<60}{'seconds':>9}{'pushes lost':>13}{'deepest daphne queue':>22}",
            *(f"{p.name:<60}{p.seconds:>9.1f}{p.missing:>13}{p.layer_peak:>22}" for p in self.phases),
            *(f"  where the lost pushes' agents are: {p.where}" for p in self.phases if p.where),
            f"desktop handshakes retried: {self.socket_retries}; logins sent again after a 503: "
            f"{self.login_retries}",
            f"bring-up: the new workers said they serve after {self.workers_serving_s:.1f} s, every page "
            f"said connected after {fmt_seconds(self.bring_up_connected_s)}, and had its agent state bar "
            f"after {fmt_seconds(self.bring_up_s)}",
            *(
                [
                    f"takeover: a worker killed with {self.takeover_sessions} sessions; the other worker "
                    f"had sent every one of their pages its agent state bar after "
                    f"{fmt_seconds(self.takeover_s)} (the lease: {self.lease_s:g} s)"
                ]
                if self.takeover_sessions
                else []
            ),
            f"calls at {args.rate:g}/s asked, "
            f"{self.rate_achieved:.1f}/s achieved, the first {args.warmup} not counted; "
            f"{self.extra_calls} more to the bare pollers' own agents",
            "CPU seconds while the calls were placed: "
            + ", ".join(f"{name} {seconds:.2f}" for name, seconds in self.cpu.items()),
            "seconds ready to run but waiting for a CPU meanwhile (all threads): "
            + ", ".join(f"{name} {seconds:.2f}" for name, seconds in self.waited.items()),
            "CPU seconds during the bring-up (the new workers' whole lives): "
            + ", ".join(f"{name} {seconds:.2f}" for name, seconds in self.bring_up_cpu.items())
            + f"; {self.worker_ms_per_start():.1f} ms of worker CPU per session start",
            "in the workers while the calls were placed (their /metrics; p50 / p99 at most, ms): "
            + "; ".join(
                f"{WORKER_HISTOGRAMS[name]} {fmt_bound(pair[0])} / {fmt_bound(pair[1])}"
                for name, pair in self.worker_ms.items()
            ),
            "",
            f"{'latency, ms from the control POST':<{width}}{'n':>6}{'p50':>9}{'p99':>9}{'max':>9}"
            f"{'missing':>9}",
        ]
        for vendor in self.vendors.values():
            bare = "bare CometD client" if vendor.vendor == GENESYS else "bare poller"
            compared = "compared calls" if vendor.vendor == GENESYS else "its own agents' calls"
            lines += [
                f"{vendor.vendor} ({vendor.agents} desk agents, {vendor.bare_agents} with a {bare})",
                vendor.desk_all.row(width, f"  {vendor.desk_all.name}"),
                *([vendor.desk.row(width, f"  {vendor.desk.name}")] if vendor.vendor == GENESYS else []),
                vendor.bare.row(width, f"  {bare}, {compared}"),
                self._ratio_row("  desk / bare", vendor.desk.values, vendor.bare.values, width),
                *(f"  bare client failed: {failure}" for failure in vendor.bare_failures[:5]),
            ]
        lines += [
            "",
            f"{'click path (Hold, Retrieve), ms to the answer':<{width}}{'n':>6}{'p50':>9}{'p99':>9}"
            f"{'max':>9}",
        ]
        for vendor in self.vendors.values():
            refused = ", ".join(f"{n} times {status}" for status, n in sorted(vendor.click_refused.items()))
            lines += [
                f"{vendor.vendor} (desk actions refused for now and tried again: {refused or 'none'})",
                vendor.click_desk.row(width, f"  {vendor.click_desk.name}", ""),
                vendor.click_direct.row(width, f"  {vendor.click_direct.name}", ""),
                self._ratio_row(
                    "  desk / direct", vendor.click_desk.values, vendor.click_direct.values, width
                ),
                *([f"  stopped early: {vendor.click_error}"] if vendor.click_error else []),
            ]
        lines += [
            "",
            f"{f'page render, GET / with {LIVE_CALLS_ON_PAGE} live calls, ms':<{width}}{'n':>6}{'p50':>9}"
            f"{'p99':>9}{'max':>9}{'cards':>9}",
        ]
        for vendor in self.vendors.values():
            lines.append(vendor.render.row(width, f"  {vendor.vendor}", vendor.render_cards))
            if vendor.render_error:
                lines.append(f"  stopped early: {vendor.render_error}")
        per_session, per_socket = self.worker_kib_per_session(), self.daphne_kib_per_socket()
        projected = rss["worker_idle"] / self.workers + per_session * EXTRAPOLATE_TO
        lines += [
            "",
            f"workers' RSS ({self.workers}): {mib(rss['worker_idle'])} before any session, "
            f"{mib(rss['worker_sessions'])} with {n} connected, {mib(rss['worker_logged_in'])} with {n} "
            f"logged in, {mib(rss['worker_after'])} after the calls",
            f"worker memory per agent session (logged in): {per_session:,.0f} KiB; "
            f"{(rss['worker_sessions'] - rss['worker_idle']) / n:,.0f} KiB connected only",
            f"extrapolated to {EXTRAPOLATE_TO:,} sessions in one worker: {mib(projected)}",
            f"daphnes' RSS ({self.daphnes}): {mib(rss['daphne_idle'])} idle, {mib(rss['daphne_sockets'])} "
            f"with {n} sockets ({per_socket:,.0f} KiB per socket)",
            "",
            self.table(),
        ]
        return "\n".join(lines)

    @staticmethod
    def _ratio_row(name: str, desk: list[float], other: list[float], width: int) -> str:
        p50, p99 = ratio(desk, other, 50), ratio(desk, other, 99)
        if p50 is None or p99 is None:
            return f"{name:<{width}}{'':>6}{'-':>9}{'-':>9}"
        return f"{name:<{width}}{'':>6}{p50:>8.2f}x{p99:>8.2f}x"

    def table(self) -> str:
        """The table of issue 11, one row per vendor."""
        head = (
            "| vendor | agents | workers / daphnes | calls/s asked / achieved | desk p50 / p99 ms "
            "| bare p50 / p99 ms | ratio p50 / p99 | bring-up (workers serving) s "
            "| worker KiB/session | daphne KiB/socket "
            "| pushes lost | click desk / direct p50 ms | render p50 ms |"
        )
        rows = [head, "|" + "---|" * head.count(" | ") + "---|"]
        for vendor in self.vendors.values():
            s = vendor.summary()
            bring_up = "-" if self.bring_up_s is None else f"{self.bring_up_s:.1f}"
            if self.bring_up_missing:
                bring_up += f" ({self.bring_up_missing} not up)"
            bring_up += f" ({self.workers_serving_s:.1f})"
            rows.append(
                f"| {vendor.vendor} | {self.agents:,} | {self.workers} / {self.daphnes} "
                f"| {self.rate_asked:g} / {self.rate_achieved:.1f} | {fmt_pair(s['desk_ms'])} "
                f"| {fmt_pair(s['bare_ms'])} | {fmt_ratio(s['ratio'])} | {bring_up} "
                f"| {self.worker_kib_per_session():,.0f} | {self.daphne_kib_per_socket():,.0f} "
                f"| {self.pushes_lost} | {fmt_click(s)} | {fmt_one(s['render_ms'])} |"
            )
        return "\n".join(rows)


def fmt_seconds(seconds: float | None) -> str:
    return "- (not all)" if seconds is None else f"{seconds:.1f} s"


def fmt_pair(pair: list[float] | None) -> str:
    return "-" if not pair else f"{pair[0]:,.0f} / {pair[1]:,.0f}"


def fmt_ratio(pair: list[float | None]) -> str:
    if pair[0] is None or pair[1] is None:
        return "-"
    return f"{pair[0]:.2f}x / {pair[1]:.2f}x"


def fmt_one(pair: list[float] | None) -> str:
    return "-" if not pair else f"{pair[0]:.1f}"


def fmt_click(summary: dict[str, Any]) -> str:
    desk, direct = summary["click_desk_ms"], summary["click_direct_ms"]
    if not desk or not direct:
        return "-"
    return f"{desk[0]:.1f} / {direct[0]:.1f}"


# -- the run --------------------------------------------------------------------------------------


@dataclass
class PlannedCall:
    at: float  # seconds after the first call
    agent: Agent
    counted: bool  # not a warm-up call
    to_desk: bool  # to a desk agent (the asked rate), not to a bare poller's own agent


class Bench:
    """One run: the processes, the agents, the clients, and the figures as they are measured."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.database = Database(f"{POSTGRES}/postgres", "switchboard_bench")
        self.redis_url = f"redis://127.0.0.1:6379/{args.redis_db}"
        self.simulator = f"http://127.0.0.1:{free_port()}"
        self.desks = [f"http://127.0.0.1:{free_port()}" for _ in range(args.daphnes)]
        # Plain HTTP on loopback.
        env = desk_env(
            self.database.url,
            self.redis_url,
            {
                "SECURE_COOKIES": "0",
                "CHANNEL_LAYER": args.channel_layer,
                "VOICE_SESSION_LEASE_SECONDS": f"{args.lease:g}",
            },
        )
        # The bench prints the processes' logs itself when it fails.
        self.procs = Processes(
            env,
            Path(tempfile.mkdtemp(prefix="switchboard-bench-")),
            error=BenchError,
            tails_in_errors=False,
            stop_timeout=STOP_TIMEOUT_S,
            tail_chars=LOG_TAIL_CHARS,
        )
        self.rng = random.Random(args.seed)  # noqa: S311 (which agent gets a call, not a secret)
        self.password = "bench-" + secrets.token_hex(4)
        self.vendors = VENDORS[args.vendor]
        self.agents, self.bare_only = self._agents(args)
        self.by_vendor = {v: [a for a in self.agents if a.vendor == v] for v in self.vendors}
        # Genesys: a bare client beside the desk on a sample of its agents. Huawei: agents of their own.
        self.sample = self.by_vendor.get(GENESYS, [])[: args.bare_sample]
        self.daphnes: list[subprocess.Popen[bytes]] = []
        self.workers: list[subprocess.Popen[bytes]] = []
        self.worker_metrics: list[str] = []
        self.serving_at = self.connected_at = 0.0
        self.figures = Figures(agents=len(self.agents), workers=args.workers, daphnes=args.daphnes)
        self.figures.rate_asked = args.rate
        for vendor in self.vendors:
            bare = len(self.sample) if vendor == GENESYS else len(self.bare_only)
            self.figures.vendors[vendor] = VendorFigures(vendor, len(self.by_vendor[vendor]), bare)

    def _agents(self, args: argparse.Namespace) -> tuple[list[Agent], list[Agent]]:
        """The desk's agents (Genesys first, then Huawei, half each with ``--vendor both``) and the
        bare pollers' own Huawei agents, each on a free internal DN."""
        huawei = args.agents // 2 if args.vendor == "both" else args.agents if args.vendor == HUAWEI else 0
        genesys = args.agents - huawei
        bare = min(args.bare_sample, huawei)
        dns = iter(free_dns(genesys + huawei + bare))
        desk = [
            Agent(GENESYS, f"bench{i:05d}", next(dns), username=f"bench{i:05d}")
            for i in range(1, genesys + 1)
        ]
        for i in range(huawei):
            agent_id = str(HUAWEI_DESK_FIRST_ID + i)
            desk.append(Agent(HUAWEI, agent_id, next(dns), username=f"hw{agent_id}"))
        for i, agent in enumerate(desk):
            agent.desk = self.desks[i % len(self.desks)]
        bare_only = [Agent(HUAWEI, str(HUAWEI_BARE_FIRST_ID + i), next(dns)) for i in range(bare)]
        return desk, bare_only

    async def run(self) -> Figures:
        """1. a database, a Redis index, the simulator with every agent, the desk's processes;
        2. N desktop sockets, until each says connected; N contact-center logins; the bare clients;
        3. calls at the rate, until every fragment has arrived or the wait times out;
        4. the click path and the page render; 5. every worker started again, until every page is up;
        6. stop everything and drop the database, whatever happened."""
        self.create_storage()
        try:
            await self.start()
            await self.measure()
        finally:
            self.procs.end()
            self.drop_storage()
        return self.figures

    def create_storage(self) -> None:
        self.database.create()
        flush_redis(self.redis_url)

    def drop_storage(self) -> None:
        self.database.drop()
        flush_redis(self.redis_url)

    async def start(self) -> None:
        started = time.monotonic()
        self.procs.spawn("voicesim", voicesim(int(self.simulator.rsplit(":", 1)[1]), answer_delay_ms=0))
        await asyncio.to_thread(self.procs.manage, "migrate", "--verbosity", "0")
        # The desk's processes start while the agents are added: they need none to start.
        for i, desk in enumerate(self.desks, 1):
            self.daphnes.append(self.procs.spawn(f"daphne-{i}", daphne(int(desk.rsplit(":", 1)[1]))))
        self.start_workers()
        simulator = functools.partial(answers_async, f"{self.simulator}/control/state")
        await self.procs.wait_until("voicesim to answer", simulator, 30)
        async with httpx.AsyncClient(base_url=self.simulator, timeout=10) as control:
            # Calls ring until the run ends: one notification per call, and no timeouts meanwhile.
            (await control.put("/control/settings", json={"ringing_timeout_ms": 600_000})).raise_for_status()

            async def add(agent: Agent) -> None:
                body = {
                    "login": agent.login,
                    "password": self.password,
                    "dn": agent.dn,
                    "dialect": agent.vendor,
                }
                answer = await control.post("/control/directory", json=body)
                if answer.status_code != 201:
                    raise BenchError(f"the simulator refused {agent.login} on {agent.dn}: {answer.text}")

            await bounded(add(agent) for agent in [*self.agents, *self.bare_only])
        spec: dict[str, Any] = {"simulator": self.simulator, "password": self.password}
        spec["agents"] = [[a.username, a.login, a.dn, a.vendor] for a in self.agents]
        # In a file: at thousands of agents it is longer than an environment variable may be.
        spec_file = self.procs.logs / "setup-spec.json"
        spec_file.write_text(json.dumps(spec), encoding="utf-8")
        setup_env = {"BENCH_SPEC_FILE": str(spec_file)}
        output = await asyncio.to_thread(
            self.procs.manage, "shell", "-c", SETUP, extra_env=setup_env, timeout=300
        )
        line = next((ln for ln in output.splitlines() if ln.startswith("BENCH-SESSIONS ")), None)
        if line is None:
            raise BenchError(f"the setup printed no session keys:\n{output[-LOG_TAIL_CHARS:]}")
        keys = json.loads(line.removeprefix("BENCH-SESSIONS "))
        for agent in self.agents:
            agent.session_key = keys[agent.username]
        for desk in self.desks:
            healthz = functools.partial(answers_async, f"{desk}/healthz")
            await self.procs.wait_until(f"the desk on {desk} to be healthy", healthz, START_TIMEOUT_S)
        await self.workers_serving()
        print(
            f"setup: {len(self.agents)} agents at the desk, {len(self.bare_only)} of the bare pollers' own; "
            f"processes up in {time.monotonic() - started:.1f} s",
            flush=True,
        )

    def start_workers(self) -> None:
        ports = [free_port() for _ in range(self.args.workers)]
        self.worker_metrics = [f"http://127.0.0.1:{port}/metrics" for port in ports]
        self.workers = [
            self.procs.spawn(f"worker-{i}", WORKER, {"METRICS_PORT": str(port)})
            for i, port in enumerate(ports, 1)
        ]

    async def worker_buckets(self) -> dict[str, Counter[float]]:
        """The workers' latency histograms (``WORKER_HISTOGRAMS``), summed: count by bucket bound."""
        buckets: dict[str, Counter[float]] = {name: Counter() for name in WORKER_HISTOGRAMS}
        async with httpx.AsyncClient(timeout=10) as http:
            for url in self.worker_metrics:
                text = (await http.get(url)).raise_for_status().text
                for family in text_string_to_metric_families(text):
                    if family.name not in buckets:
                        continue
                    for sample in family.samples:
                        if sample.name.endswith("_bucket"):
                            buckets[family.name][float(sample.labels["le"])] += int(sample.value)
        return buckets

    async def workers_serving(self) -> None:
        """Until every worker's log says it serves (this start's log); notes when."""
        for i in range(1, self.args.workers + 1):
            serving = functools.partial(self.procs.serving, f"worker-{i}")
            await self.procs.wait_until(f"worker-{i} to serve", serving, START_TIMEOUT_S)
        self.serving_at = time.monotonic()

    def rss(self, processes: list[subprocess.Popen[bytes]]) -> int:
        return sum(rss_kib(p.pid) for p in processes)

    async def measure(self) -> None:
        n, figures, rss = len(self.agents), self.figures, self.figures.rss
        settle = min(SETTLE_S, 0.5 + n / 100)
        await asyncio.sleep(settle)
        rss["worker_idle"], rss["daphne_idle"] = self.rss(self.workers), self.rss(self.daphnes)
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=30)
        jar = aiohttp.DummyCookieJar()  # each request names its agent's cookies itself
        watch = LayerQueueWatch(self.redis_url)
        watch.start()
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, cookie_jar=jar) as http:
            sockets = DeskSockets(http)
            cometd = BareCometD(self.simulator, self.password)
            pollers = BarePollers(self.simulator, self.password)
            try:
                started = time.monotonic()
                await bounded(sockets.open(agent) for agent in self.agents)
                await self.pushes(
                    f"{n} sessions connected", started, [a.connected.is_set for a in self.agents], watch
                )
                figures.socket_retries = sockets.retries
                await asyncio.sleep(settle)
                rss["worker_sessions"], rss["daphne_sockets"] = self.rss(self.workers), self.rss(self.daphnes)

                started = time.monotonic()
                await bounded(self.log_in(http, agent) for agent in self.agents)
                await self.pushes(
                    f"{n} agents logged in", started, [a.not_ready.is_set for a in self.agents], watch
                )
                await asyncio.sleep(settle)
                rss["worker_logged_in"] = self.rss(self.workers)
                await bounded(cometd.open(agent) for agent in self.sample)
                await bounded(pollers.open(agent) for agent in self.bare_only)

                await self.calls_phase(sockets, cometd, pollers, watch)
                rss["worker_after"] = self.rss(self.workers)
                profilers = self.start_profilers(self.args.timeout, phase="clicks")
                try:
                    await self.click_path(http, sockets, cometd, pollers)
                    await self.page_render(http, sockets, pollers)
                finally:
                    await stop_profilers(profilers)
                await self.bring_up(watch)
                if self.args.workers > 1:
                    await self.takeover(watch)
            finally:
                await watch.stop()
                await cometd.close()
                await pollers.close()
                await sockets.close()
        if HUAWEI in figures.vendors:
            figures.vendors[HUAWEI].bare_failures = pollers.failures

    async def pushes(
        self,
        what: str,
        started: float,
        done: list[Callable[[], bool]],
        watch: LayerQueueWatch,
        *,
        quiet_s: float = 0.0,
    ) -> Phase:
        """Waits for one push per agent until all have come, or none has come for STALL_S (a lost push
        never comes), or the phase's time is up; records the phase with what never came. ``quiet_s``:
        none is due before then (a lease running out), so the phase's time starts after it."""
        deadline = started + quiet_s + 60 + len(done)
        seen, progress = 0, time.monotonic() + quiet_s
        while (now := time.monotonic()) < deadline and now - progress < STALL_S:
            self.procs.check()
            count = sum(is_done() for is_done in done)
            if count == len(done):
                break
            if count > seen:
                seen, progress = count, now
            await asyncio.sleep(0.05)
        missing = sum(not is_done() for is_done in done)
        where = await self.where_agents_are() if missing else ""
        phase = Phase(what, time.monotonic() - started, missing, watch.take_peak(), where)
        self.figures.phases.append(phase)
        print(f"{what}: {phase.seconds:.1f} s, {missing} pushes missing", flush=True)
        return phase

    async def where_agents_are(self) -> str:
        """What the simulator and the desk's database say about the agents: where a wait got stuck."""
        async with httpx.AsyncClient(base_url=self.simulator, timeout=10) as control:
            state = (await control.get("/control/state")).json()
        names = {a.login for a in self.agents}
        agents = [a for a in state.get("agents", []) if a.get("login") in names]
        on_switch = sum(1 for a in agents if a.get("loggedIn"))
        query = "SELECT connection, agent_state, count(*) FROM calls_agentlogin GROUP BY 1, 2 ORDER BY 1, 2"
        with psycopg.connect(self.database.url) as db:
            rows = db.execute(query).fetchall()
        desk = ", ".join(f"{connection}/{agent_state}: {count}" for connection, agent_state, count in rows)
        return f"simulator: {on_switch} of {len(agents)} agents logged in; desk database: {desk}"

    async def log_in(self, http: aiohttp.ClientSession, agent: Agent) -> None:
        """Login as the agent's button sends it; clicked again, as an agent would, while the desk
        answers 503 (its session worker did not answer in time)."""
        for attempt in range(1, LOGIN_ATTEMPTS + 1):
            status, text = await self.desk_post(http, agent, "/agent/", {"operation": "Login"})
            if status == 204:
                return
            if status != 503 or attempt == LOGIN_ATTEMPTS:
                break
            self.figures.login_retries += 1
            await asyncio.sleep(1)
        raise BenchError(f"Login for {agent.username}: {status} {text}")

    async def desk_post(
        self, http: aiohttp.ClientSession, agent: Agent, path: str, data: dict[str, str]
    ) -> tuple[int, str]:
        """A desk control as the browser sends it: the session cookie, the CSRF token, a form body."""
        headers = {"Cookie": agent.cookie, "X-CSRFToken": agent.csrf, "HX-Request": "true"}
        async with http.post(f"{agent.desk}{path}", data=data, headers=headers) as response:
            return response.status, plain(await response.text())

    # -- the calls ------------------------------------------------------------------------------

    def plan(self) -> list[PlannedCall]:
        """Warm-up plus ``--calls`` calls to desk agents at ``--rate``, the vendors taking turns. A
        Genesys call goes to a sampled agent every other time when the sample is not every agent, so the
        comparison with the bare clients has enough calls; every other Huawei desk call brings one to a
        bare poller's own agent, placed half a step later."""
        args, plan = self.args, []
        partial = len(self.sample) < len(self.by_vendor.get(GENESYS, []))
        turns = {vendor: 0 for vendor in self.vendors}
        for i in range(args.warmup + args.calls):
            vendor = self.vendors[i % len(self.vendors)]
            turn = turns[vendor]
            turns[vendor] += 1
            counted = i >= args.warmup
            pool = self.sample if vendor == GENESYS and partial and turn % 2 == 0 else self.by_vendor[vendor]
            plan.append(PlannedCall(i / args.rate, self.rng.choice(pool), counted, to_desk=True))
            if vendor == HUAWEI and self.bare_only and turn % 2 == 0:
                plan.append(
                    PlannedCall((i + 0.5) / args.rate, self.rng.choice(self.bare_only), counted, False)
                )
        return sorted(plan, key=lambda call: call.at)

    async def calls_phase(
        self, sockets: DeskSockets, cometd: BareCometD, pollers: BarePollers, watch: LayerQueueWatch
    ) -> None:
        started = time.monotonic()
        watch.take_peak()
        plan = self.plan()
        sent, fired = await self.place_calls(plan)
        counted = [(call_id, call) for call_id, call in fired if call.counted]
        desk_ids = [call_id for call_id, call in fired if call.to_desk]
        sampled = {agent.login for agent in self.sample}

        def compared(vendor: str) -> tuple[list[str], list[str], list[str]]:
            """Desk calls, the desk's compared calls and the bare client's, counted ones only."""
            mine = [(i, c) for i, c in counted if c.agent.vendor == vendor]
            every = [i for i, c in mine if c.to_desk]
            if vendor == GENESYS:
                same = [i for i, c in mine if c.agent.login in sampled]
                return every, same, same
            return every, every, [i for i, c in mine if not c.to_desk]

        ids = {vendor: compared(vendor) for vendor in self.vendors}
        bare_arrivals = {GENESYS: cometd.arrivals, HUAWEI: pollers.arrivals}

        async def arrived() -> bool:
            return all(
                all(i in sockets.arrivals for i in every) and all(i in bare_arrivals[v] for i in bare)
                for v, (every, _, bare) in ids.items()
            )

        with contextlib.suppress(BenchError):  # what did not arrive is counted as missing
            await self.procs.wait_until("every fragment", arrived, ARRIVAL_TIMEOUT_S)
        missing = sum(1 for call_id in desk_ids if call_id not in sockets.arrivals)
        phase = Phase(f"{len(fired)} calls", time.monotonic() - started, missing, watch.take_peak())
        self.figures.phases.append(phase)
        self.figures.pushes_lost = missing
        self.figures.calls = sum(1 for _, call in counted if call.to_desk)
        self.figures.extra_calls = sum(1 for _, call in fired if not call.to_desk)
        for vendor, (every, same, bare) in ids.items():
            figures = self.figures.vendors[vendor]
            figures.desk_all = Series(
                figures.desk_all.name, latencies(sent, sockets.arrivals, every), len(every)
            )
            figures.desk = Series(figures.desk.name, latencies(sent, sockets.arrivals, same), len(same))
            figures.bare = Series(figures.bare.name, latencies(sent, bare_arrivals[vendor], bare), len(bare))
        print(f"{len(fired)} calls: {phase.seconds:.1f} s, {missing} pushes missing", flush=True)

    async def place_calls(
        self, plan: list[PlannedCall]
    ) -> tuple[dict[str, float], list[tuple[str, PlannedCall]]]:
        """Places the planned calls on time, each from an outside number of its own. The achieved rate
        is the counted desk calls' over the time from the first one's POST to the last one's answer."""
        sent: dict[str, float] = {}
        answered: list[float] = []
        fired: list[tuple[str, PlannedCall]] = []
        async with httpx.AsyncClient(base_url=self.simulator, timeout=10) as control:

            async def place(i: int, call: PlannedCall) -> None:
                body = {"from": f"+1555{i:07d}", "to": call.agent.dn}
                t0 = time.perf_counter()
                response = await control.post("/control/calls", json=body)
                if response.status_code != 201:
                    raise BenchError(f"placing call {i}: {response.status_code} {response.text}")
                call_id = response.json()["id"]
                sent[call_id] = t0
                fired.append((call_id, call))
                if call.counted and call.to_desk:
                    answered.append(time.perf_counter())

            profilers = self.start_profilers(duration=plan[-1].at + 3)
            try:
                histograms = await self.worker_buckets()
                before = {name: cpu_seconds(p.pid) for name, p in self.procs.processes.items()}
                before["bench"] = time.process_time()
                pids = {name: p.pid for name, p in self.procs.processes.items()} | {"bench": os.getpid()}
                waited = {name: waited_seconds(pid) for name, pid in pids.items()}
                start = time.perf_counter()
                placing = []
                for i, call in enumerate(plan):
                    delay = start + call.at - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    placing.append(asyncio.create_task(place(i, call)))
                await asyncio.gather(*placing)
                await asyncio.sleep(1)  # the last fragments
                cpu = {name: cpu_seconds(p.pid) - before[name] for name, p in self.procs.processes.items()}
                self.figures.cpu = {**cpu, "bench": time.process_time() - before["bench"]}
                self.figures.waited = {name: waited_seconds(pid) - waited[name] for name, pid in pids.items()}
                after = await self.worker_buckets()
                self.figures.worker_ms = {
                    name: bucket_quantiles(after[name] - histograms[name]) for name in WORKER_HISTOGRAMS
                }
            finally:
                await stop_profilers(profilers)
        first = min((sent[call_id] for call_id, call in fired if call.counted and call.to_desk), default=0.0)
        if len(answered) > 1:
            self.figures.rate_achieved = (len(answered) - 1) / (max(answered) - first)
        fired.sort(key=lambda item: sent[item[0]])
        return sent, fired

    def start_profilers(
        self, duration: float, *, phase: str = "", including: tuple[str, ...] = ()
    ) -> list[subprocess.Popen[bytes]]:
        """py-spy on the workers and daphnes (and the ``including`` processes) for ``duration`` s or
        until stopped: collapsed stacks per thread, idle (waiting) frames included, so time spent
        queueing shows as well as time spent computing; with ``--py-spy-gil``, only the thread that
        holds the GIL, so the stacks add up to where a process's Python spends its CPU. ``phase``
        names the files of a later phase."""
        if not self.args.py_spy:
            return []
        started = []
        for name, process in self.procs.processes.items():
            if not name.startswith((*DESK_PROCESSES, *including)):
                continue
            output = self.procs.logs / f"{name}{'.' + phase if phase else ''}.py-spy.txt"
            which = "--gil" if self.args.py_spy_gil else "--idle"
            options = ["record", "--format", "raw", "--rate", "200", "--threads", which, "--nonblocking"]
            command = [self.args.py_spy, *options, "--pid", str(process.pid), "-o", str(output)]
            command += ["--duration", str(math.ceil(duration))]
            started.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))  # noqa: S603
        return started

    # -- the click path and the page ------------------------------------------------------------

    async def fresh_call(self, agent: Agent, sockets: DeskSockets, pollers: BarePollers) -> str:
        """Clears the agent's phone of the calls phase's calls, then places one call to it and has the
        agent's phone answer it (the control API); returns the call id once the agent sees it
        established (its page, or for a bare poller's agent, the switch's answer)."""
        async with httpx.AsyncClient(base_url=self.simulator, timeout=10) as control:
            response = await control.post("/control/calls", json={"from": "+15559990000", "to": agent.dn})
            if response.status_code != 201:
                raise BenchError(f"placing a call to {agent.dn}: {response.status_code} {response.text}")
            call_id = str(response.json()["id"])
            if agent.username:
                await sockets.until_card(agent, call_id, "Ringing")
            else:
                await self.procs.wait_until(
                    f"{agent.login}'s poller to see {call_id}",
                    lambda: call_id in pollers.arrivals,
                    STEP_TIMEOUT_S,
                )
            (await control.post(f"/control/parties/{agent.dn}/answer")).raise_for_status()
        if agent.username:
            await sockets.until_card(agent, call_id, "Established")
        return call_id

    async def hang_up(self, agents: Iterable[Agent]) -> None:
        """Every call on these agents' phones ends (their own phone hangs up)."""
        async with httpx.AsyncClient(base_url=self.simulator, timeout=10) as control:
            for agent in agents:
                (await control.post(f"/control/parties/{agent.dn}/hangup")).raise_for_status()

    async def desk_action(
        self, http: aiohttp.ClientSession, agent: Agent, call_id: str, operation: str, figures: VendorFigures
    ) -> float:
        """One call action through the desk, ms from the POST to its answer. A refusal that says "not
        yet" (the call's operations not saved yet, or the agent's rate limit) is tried again, untimed."""
        for _ in range(REFUSED_ATTEMPTS):
            t0 = time.perf_counter()
            status, text = await self.desk_post(http, agent, f"/calls/{call_id}/", {"operation": operation})
            elapsed = (time.perf_counter() - t0) * 1000
            if status == 204:
                return elapsed
            if status not in REFUSED_PAUSE_S:
                break
            figures.click_refused[status] = figures.click_refused.get(status, 0) + 1
            await asyncio.sleep(REFUSED_PAUSE_S[status])
        raise BenchError(f"{operation} on {call_id} through the desk for {agent.username}: {status} {text}")

    async def click_path(
        self, http: aiohttp.ClientSession, sockets: DeskSockets, cometd: BareCometD, pollers: BarePollers
    ) -> None:
        """Hold and Retrieve on an answered call, in turns: twice through the desk (timed from the POST
        to the HTTP answer), then twice straight to the Voice API on a session of the bench's own (the
        Genesys agent's bare client; the Huawei bare poller's agent). Sequential, so both paths are
        timed under the same conditions; the page must show each new state before the next action.
        A step that fails ends that vendor's click path, with the reason in the figures."""
        async with httpx.AsyncClient(timeout=10) as direct:
            for vendor in self.vendors:
                figures = self.figures.vendors[vendor]
                started = time.monotonic()
                try:
                    pairs = await self._click_turns(http, direct, sockets, cometd, pollers, figures)
                except BenchError as exc:
                    figures.click_error = str(exc)
                    print(f"{vendor} click path stopped: {exc}", flush=True)
                    continue
                print(
                    f"{vendor} click path: {len(figures.click_desk.values)} actions each way on {pairs} "
                    f"agents, {time.monotonic() - started:.1f} s",
                    flush=True,
                )

    async def _click_turns(
        self,
        http: aiohttp.ClientSession,
        direct: httpx.AsyncClient,
        sockets: DeskSockets,
        cometd: BareCometD,
        pollers: BarePollers,
        figures: VendorFigures,
    ) -> int:
        if figures.vendor == GENESYS:
            desk_agents = direct_agents = self.sample[: self.args.click_agents]
            client: BareCometD | BarePollers = cometd
        else:
            desk_agents = self.by_vendor[HUAWEI][: self.args.click_agents]
            direct_agents = self.bare_only[: self.args.click_agents]
            client = pollers
        pairs = list(zip(desk_agents, direct_agents, strict=False))
        await self.hang_up({*desk_agents, *direct_agents})
        calls = {
            agent: await self.fresh_call(agent, sockets, pollers) for agent in {*desk_agents, *direct_agents}
        }
        for turn in range(max(1, self.args.clicks // 2)):
            desk_agent, direct_agent = pairs[turn % len(pairs)]
            for operation, state in (("Hold", "Held"), ("Retrieve", "Established")):
                call_id = calls[desk_agent]
                figures.click_desk.values.append(
                    await self.desk_action(http, desk_agent, call_id, operation, figures)
                )
                await sockets.until_card(desk_agent, call_id, state)
            for operation, state in (("Hold", "Held"), ("Retrieve", "Established")):
                call_id = calls[direct_agent]
                t0 = time.perf_counter()
                await client.operate(direct, direct_agent, call_id, operation)
                figures.click_direct.values.append((time.perf_counter() - t0) * 1000)
                if direct_agent.username:
                    await sockets.until_card(direct_agent, call_id, state)
        return len(pairs)

    async def page_render(
        self, http: aiohttp.ClientSession, sockets: DeskSockets, pollers: BarePollers
    ) -> None:
        """The desk page (``GET /``) of an agent with five live calls, four held and one talking,
        ``--renders`` times one after the other after a short warm-up: ms from the request to the body.
        A step that fails ends that vendor's render, with the reason in the figures."""
        for vendor in self.vendors:
            figures = self.figures.vendors[vendor]
            try:
                await self._render(http, sockets, pollers, figures)
            except BenchError as exc:
                figures.render_error = str(exc)
                print(f"{vendor} page render stopped: {exc}", flush=True)
                continue
            print(
                f"{vendor} page render: {len(figures.render.values)} times with {figures.render_cards} cards",
                flush=True,
            )

    async def _render(
        self, http: aiohttp.ClientSession, sockets: DeskSockets, pollers: BarePollers, figures: VendorFigures
    ) -> None:
        agent = self.by_vendor[figures.vendor][-1]
        await self.hang_up([agent])
        for i in range(LIVE_CALLS_ON_PAGE):
            call_id = await self.fresh_call(agent, sockets, pollers)
            if i < LIVE_CALLS_ON_PAGE - 1:
                await self.desk_action(http, agent, call_id, "Hold", figures)
                await sockets.until_card(agent, call_id, "Held")
        headers = {"Cookie": agent.cookie}
        for i in range(RENDER_WARMUP + self.args.renders):
            t0 = time.perf_counter()
            async with http.get(f"{agent.desk}/", headers=headers) as response:
                page = await response.text()
                elapsed = (time.perf_counter() - t0) * 1000
            if response.status != 200:
                raise BenchError(f"GET / for {agent.username}: {response.status} {plain(page)}")
            if i >= RENDER_WARMUP:
                figures.render.values.append(elapsed)
            figures.render_cards = len(PAGE_CARD.findall(page))

    # -- bring-up -------------------------------------------------------------------------------

    async def bring_up(self, watch: LayerQueueWatch) -> None:
        """Every worker stopped (it drains) and started again, the desktop sockets left open; the time
        from the new processes' start until every page says connected and has been sent its agent
        state bar again (the session's resync)."""
        self.procs.end(name for name in self.procs.processes if name.startswith("worker"))
        await asyncio.sleep(1)  # what the old workers pushed as they drained has reached the pages
        for agent in self.agents:
            agent.connected.clear()
            agent.state_shown.clear()
        watch.take_peak()
        others = {name: p.pid for name, p in self.procs.processes.items() if not name.startswith("worker")}
        before = {name: cpu_seconds(pid) for name, pid in others.items()} | {"bench": time.process_time()}
        started = time.monotonic()
        self.start_workers()
        # The whole bring-up, and the simulator too: it serves every sign-in, handshake and resync.
        profilers = self.start_profilers(self.args.timeout, phase="bring-up", including=("voicesim",))
        serving = asyncio.create_task(self.workers_serving())
        connected = asyncio.create_task(self.all_connected())
        n = len(self.agents)
        try:
            phase = await self.pushes(
                f"bring-up: {n} pages connected and resynced after a worker start",
                started,
                [agent.up for agent in self.agents],
                watch,
            )
            await serving
            if not phase.missing:  # every page is connected: the wait for that ends within a turn or two
                await asyncio.wait([connected], timeout=1.0)
            self.figures.bring_up_cpu = {
                name: cpu_seconds(p.pid) - before.get(name, 0.0) for name, p in self.procs.processes.items()
            } | {"bench": time.process_time() - before["bench"]}
        finally:
            await cancel([serving, connected], "waits of the bring-up")
            await stop_profilers(profilers)
        self.figures.bring_up_missing = phase.missing
        self.figures.bring_up_s = None if phase.missing else phase.seconds
        self.figures.workers_serving_s = self.serving_at - started
        if self.connected_at:
            self.figures.bring_up_connected_s = self.connected_at - started

    async def takeover(self, watch: LayerQueueWatch) -> None:
        """The worker with the most sessions killed (no drain: its leases are left to run out); the
        time from the kill until another worker has sent each of its agents' pages the agent state
        bar (the session's first resync there): the lease, then that worker's bring-up of them."""
        query = (
            "SELECT l.worker, u.username FROM calls_agentlogin l JOIN auth_user u ON u.id = l.user_id "
            "WHERE l.worker <> ''"
        )
        with psycopg.connect(self.database.url) as db:
            rows = db.execute(query).fetchall()
        by_pid: dict[int, set[str]] = {}
        for worker_id, username in rows:
            by_pid.setdefault(int(worker_id.split(":")[1]), set()).add(username)
        names = {self.procs.pid(name): name for name in self.procs.processes if name.startswith("worker")}
        pid = max((pid for pid in by_pid if pid in names), key=lambda pid: len(by_pid[pid]), default=None)
        if pid is None:
            raise BenchError("takeover: no worker holds a session")
        agents = [agent for agent in self.agents if agent.username in by_pid[pid]]
        for agent in agents:
            agent.state_shown.clear()
        self.figures.lease_s = self.args.lease
        started = time.monotonic()
        self.procs.kill(names[pid])
        phase = await self.pushes(
            f"takeover: {len(agents)} sessions of a killed worker back on the other",
            started,
            [agent.state_shown.is_set for agent in agents],
            watch,
            quiet_s=self.args.lease,
        )
        self.figures.takeover_sessions = len(agents)
        self.figures.takeover_s = None if phase.missing else phase.seconds

    async def all_connected(self) -> None:
        """Notes when every page says connected (the agent state bar may come later)."""
        await asyncio.gather(*(agent.connected.wait() for agent in self.agents))
        self.connected_at = time.monotonic()


# -- the sweep ----------------------------------------------------------------------------------


def sweep_points(args: argparse.Namespace) -> list[tuple[int, float, int]]:
    """(agents, rate, workers) for every point of the grid, each once: every agent count at ``--rate``
    and every rate at ``--sweep-rate-agents``, with each worker count."""
    points: list[tuple[int, float, int]] = []
    for workers in args.sweep_workers:
        for point in [
            *((agents, args.rate, workers) for agents in args.sweep_agents),
            *((args.sweep_rate_agents, rate, workers) for rate in args.sweep_rates),
        ]:
            if point not in points:
                points.append(point)
    return points


def point_command(args: argparse.Namespace, agents: int, rate: float, workers: int) -> list[str]:
    command = [sys.executable, str(Path(__file__).resolve().relative_to(ROOT))]
    command += ["--agents", str(agents), "--rate", f"{rate:g}", "--workers", str(workers)]
    names = ["vendor", "daphnes", "calls", "warmup", "bare_sample", "seed", "redis_db", "channel_layer"]
    names += ["clicks", "lease"]
    for name in names:
        command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    command += ["--click-agents", str(args.click_agents), "--renders", str(args.renders)]
    command += ["--timeout", f"{args.timeout:g}"]
    return command


def run_point(args: argparse.Namespace, agents: int, rate: float, workers: int) -> dict[str, Any]:
    """One bench run as its own process; its output goes on to ours; its SESSIONS-RESULT back."""
    command = point_command(args, agents, rate, workers)
    print(f"\n=== sweep point: {agents} agents, {rate:g} calls/s, {workers} worker(s) ===", flush=True)
    result: dict[str, Any] = {"ok": False, "agents": agents, "rate": rate, "workers": workers}
    with subprocess.Popen(  # noqa: S603 (our own interpreter and script)
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="", flush=True)
            if line.startswith(RESULT_PREFIX):
                result = json.loads(line.removeprefix(RESULT_PREFIX))
    if process.returncode != 0 and result.get("ok"):
        result = {**result, "ok": False, "error": f"exited with {process.returncode}"}
    result.setdefault("error", "" if result.get("ok") else f"exited with {process.returncode}")
    result["command"] = shlex.join([".venv/bin/python", *command[1:]])
    return result


def machine() -> dict[str, str]:
    """The host, as ``docs/performance.md`` names it."""
    memory = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        "unknown",
    )
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.machine(),
    )
    kib = int(memory.split()[0]) if memory[:1].isdigit() else 0
    return {
        "nproc": str(os.cpu_count()),
        "memory": f"{kib / 1024 / 1024:.1f} GiB" if kib else memory,
        "cpu": model,
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def sweep(args: argparse.Namespace, argv: list[str]) -> int:
    """Runs every point, then writes the report and the plot; exits 0 when every point ran."""
    from plot import write_report  # matplotlib, from the bench extra: only the sweep needs it

    results = [run_point(args, agents, rate, workers) for agents, rate, workers in sweep_points(args)]
    command = shlex.join([".venv/bin/python", "bench/sessions.py", *argv])
    generated = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    markdown, image = write_report(
        results,
        Path(args.sweep_out),
        command=command,
        machine=machine(),
        generated=generated,
        sweep_rate=args.rate,
        sweep_rate_agents=args.sweep_rate_agents,
    )
    failed = [r for r in results if not r.get("ok")]
    print(f"\nsweep: {len(results)} points, {len(failed)} failed; wrote {markdown} and {image}")
    print(RESULT_PREFIX + json.dumps({"ok": not failed, "sweep": True, "points": results}))
    return 0 if not failed else 1


# -- the command line ---------------------------------------------------------------------------


def numbers(kind: type[int] | type[float]) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        try:
            values = [kind(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
        if not values or min(values) <= 0:
            raise argparse.ArgumentTypeError(f"{text!r}: give positive numbers, separated by commas")
        return values

    return parse


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add = parser.add_argument
    add("--agents", type=int, default=100, help="agents, each with a desktop socket (100)")
    add("--vendor", choices=sorted(VENDORS), default=GENESYS, help="the agents' dialect; both: half each")
    add("--workers", type=int, default=1, choices=(1, 2), help="runworker processes sharing the agents (1)")
    add("--daphnes", type=int, default=1, help="daphne processes sharing the sockets (1)")
    add("--calls", type=int, default=200, help="calls measured (200)")
    add("--rate", type=float, default=20.0, help="calls placed per second; the sweep's rate for agents (20)")
    add("--warmup", type=int, default=10, help="calls placed first and not counted (10)")
    add("--bare-sample", type=int, default=100, help="agents with a bare client, per vendor (100)")
    add("--clicks", type=int, default=50, help="desk actions timed per vendor, and as many direct (50)")
    add("--click-agents", type=int, default=5, help="agents the click path uses per vendor (5)")
    add("--renders", type=int, default=50, help="page renders timed per vendor (50)")
    add("--seed", type=int, default=1, help="random seed for which agent gets a call (1)")
    add("--redis-db", type=int, default=13, help="Redis database index, flushed (13)")
    add(
        "--channel-layer",
        choices=("redis", "pubsub"),
        default="redis",
        help="CHANNEL_LAYER of the desk: channels_redis's queues or its pub/sub layer (redis)",
    )
    add("--lease", type=float, default=30.0, help="the workers' VOICE_SESSION_LEASE_SECONDS (30)")
    add("--py-spy", default="", help="path to py-spy: profile the workers and daphnes (off)")
    add("--py-spy-gil", action="store_true", help="py-spy: only the thread holding the GIL (CPU), not waits")
    add("--timeout", type=float, default=900.0, help="bound on the whole run, each sweep point's (900 s)")
    add("--sweep", action="store_true", help="run the grid below and write the report and plot")
    add("--sweep-agents", type=numbers(int), default=[500, 1000, 2000, 5000], help="(500,1000,2000,5000)")
    add("--sweep-rates", type=numbers(float), default=[20.0, 50.0, 100.0], help="(20,50,100)")
    add("--sweep-rate-agents", type=int, default=2000, help="agents while the rate is swept (2000)")
    add("--sweep-workers", type=numbers(int), default=[1, 2], help="worker counts (1,2)")
    add("--sweep-out", default=str(ROOT / "docs"), help="where performance.md and .png go (docs/)")
    args = parser.parse_args(argv)
    positive = (args.agents, args.calls, args.bare_sample, args.daphnes, args.clicks, args.click_agents)
    if min(positive) < 1 or args.rate <= 0 or args.warmup < 0 or args.renders < 1:
        parser.error(
            "--agents, --calls, --bare-sample, --daphnes, --clicks, --renders and --rate must be positive"
        )
    if args.vendor == "both" and args.agents < 2:
        parser.error("--vendor both needs at least 2 agents")
    if not set(args.sweep_workers) <= {1, 2}:
        parser.error("--sweep-workers takes 1 and 2")
    huawei = args.agents // 2 if args.vendor == "both" else args.agents if args.vendor == HUAWEI else 0
    if HUAWEI_DESK_FIRST_ID + huawei > HUAWEI_BARE_FIRST_ID:
        parser.error(f"at most {HUAWEI_BARE_FIRST_ID - HUAWEI_DESK_FIRST_ID:,} Huawei agents at the desk")
    if HUAWEI_BARE_FIRST_ID + args.bare_sample > HUAWEI_LAST_ID + 1:
        parser.error(
            f"at most {HUAWEI_LAST_ID + 1 - HUAWEI_BARE_FIRST_ID:,} Huawei agents with a bare poller"
        )
    for agents in [args.agents, *(args.sweep_agents if args.sweep else []), args.sweep_rate_agents]:
        try:
            free_dns(agents + min(args.bare_sample, agents))
        except BenchError as exc:
            parser.error(str(exc))
    return args


async def main(args: argparse.Namespace) -> int:
    asyncio.get_running_loop().set_exception_handler(quiet_cancelled_callbacks)
    bench = Bench(args)
    try:
        async with asyncio.timeout(args.timeout):
            figures = await bench.run()
    except (BenchError, TimeoutError) as exc:
        reason = str(exc) or f"the run took longer than --timeout {args.timeout:g} s"
        print(f"\nFAILED: {reason}\n{bench.procs.tails()}", file=sys.stderr)
        print(RESULT_PREFIX + json.dumps({"ok": False, "error": reason, **point_of(args)}), flush=True)
        return 1
    except Exception:
        traceback.print_exc()
        print(f"\nFAILED unexpectedly\n{bench.procs.tails()}", file=sys.stderr)
        print(RESULT_PREFIX + json.dumps({"ok": False, "error": "unexpected", **point_of(args)}), flush=True)
        return 1
    print()
    print(figures.report(args))
    print(f"\nprocess logs: {bench.procs.logs}")
    print(RESULT_PREFIX + json.dumps({**figures.summary(args), "command": shlex.join(sys.argv)}), flush=True)
    return 0


def point_of(args: argparse.Namespace) -> dict[str, Any]:
    return {"vendor": args.vendor, "agents": args.agents, "rate": args.rate, "workers": args.workers}


def entry(argv: list[str]) -> int:
    args = parse_args(argv)
    print("command:", shlex.join([sys.executable, *sys.argv]))
    print("parameters:", json.dumps(vars(args)))
    host = f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()}"
    print(f"host: {host}; loopback only", flush=True)
    if args.sweep:
        return sweep(args, argv)
    return run_bounded(main(args))


def run_bounded(coroutine: Coroutine[Any, Any, int]) -> int:
    """As ``asyncio.run``, but what is still running once ``coroutine`` has returned gets 5 s to stop
    after its cancellation, not for ever: a Redis client can swallow a cancellation
    (redis/redis-py#2028), and the bench must end once it has printed its figures."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            _, stuck = loop.run_until_complete(asyncio.wait(pending, timeout=5))
            if stuck:
                print(f"{len(stuck)} tasks would not stop; leaving them", file=sys.stderr, flush=True)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


if __name__ == "__main__":
    sys.exit(entry(sys.argv[1:]))
