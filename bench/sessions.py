"""Session benchmark: call-event latency through the desk against a bare CometD client, and the
session worker's memory per agent.

The production shape on loopback, each component its own process: a standalone ``voicesim``, ``daphne``
serving the desk and ``manage.py runworker voice-sessions``, sharing a fresh PostgreSQL database and a
Redis database index. N agents are added to the simulator's directory and to the desk (users, agent
logins and Django sessions, made in one ``manage.py shell`` step); each opens its own desktop WebSocket
and logs in to the contact center with ``POST /agent/``.

Then calls are placed through the control API at a fixed rate, each to a random agent. Per call:

- t0: just before the control POST is sent (the switch notifies while it handles that POST);
- desk: the agent's desktop WebSocket receives the Ringing card carrying the call id
  (simulator -> the worker's CometD session -> PostgreSQL -> Redis -> daphne -> WebSocket);
- bare: a bare aiocometd client, logged in to the simulator as the same agent with a GWS session of
  its own, receives the Ringing notification for the call id (for a sample of agents).

It prints p50/p99 of both and their ratio on the same calls, and the worker's resident memory before any
session and with all N connected, per session and extrapolated to 5,000 sessions.

    .venv/bin/python bench/sessions.py --agents 100
    .venv/bin/python bench/sessions.py --agents 500

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust) and Redis on 127.0.0.1:6379. Creates the
database ``switchboard_bench_<random>`` and flushes Redis database ``--redis-db``; both are cleaned up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import re
import secrets
import shlex
import socket
import string
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import psycopg
import redis
import redis.asyncio as aioredis
from aiocometd_noloop import Client, ConnectionType, Extension
from psycopg import sql

from simulator.switch import INTERNAL_RANGES, SEEDED_DIRECTORY

ROOT = Path(__file__).resolve().parent.parent
POSTGRES = "postgres://postgres@127.0.0.1:5432"
CALLS_CHANNEL = "/v2/me/calls"
EXTRAPOLATE_TO = 5000
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0  # the worker drains every session before it exits
ARRIVAL_TIMEOUT_S = 30.0  # after the last call is placed, for every fragment to arrive
STALL_S = 30.0  # a wait for one push per agent ends when none has come for this long
SETTLE_S = 3.0
CONCURRENCY = 25
SOCKET_ATTEMPTS = 4
LOG_TAIL_CHARS = 4000

RINGING_CARD = re.compile(r'<article id="call-([^"]+)"[^>]*data-state="Ringing"')
CONNECTED = re.compile(r'id="connection"[^>]*data-status="connected"')
NOT_READY = re.compile(r'id="agent-state"[^>]*data-state="NotReady"')

# Run by `manage.py shell -c` against the bench's database; prints the agents' session keys.
SETUP = """
import json, os
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.sessions.backends.db import SessionStore
from calls.models import AgentLogin, VoiceServer

spec = json.loads(os.environ["BENCH_SPEC"])
User = get_user_model()
server = VoiceServer.objects.create(name="Simulator", base_url=spec["simulator"] + "/genesys")
password = make_password(spec["password"])  # hashed once: the hasher is slow by design
users = User.objects.bulk_create([User(username=name, password=password) for name, _ in spec["agents"]])
dns = dict(spec["agents"])
AgentLogin.objects.bulk_create([
    AgentLogin(user=u, server=server, username=u.username, password=spec["password"], dn=dns[u.username])
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


@dataclass
class Processes:
    """The bench's child processes, each logging to its own file."""

    env: dict[str, str]
    logs: Path
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("wb") as out:
            process = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
                [sys.executable, *args], cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        self.running[name] = process
        return process

    def manage(self, *args: str, extra_env: dict[str, str] | None = None, seconds: float = 120) -> str:
        done = subprocess.run(  # noqa: S603 (our own interpreter and arguments)
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=seconds,
        )
        if done.returncode != 0:
            raise BenchError(f"manage.py {args[0]} failed:\n{done.stdout[-LOG_TAIL_CHARS:]}{done.stderr}")
        return done.stdout

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def tails(self) -> str:
        return "\n".join(
            f"--- {name} (last {LOG_TAIL_CHARS} characters) ---\n{self.log(name)[-LOG_TAIL_CHARS:]}"
            for name in self.running
        )

    def check(self) -> None:
        exited = {name: p.returncode for name, p in self.running.items() if p.poll() is not None}
        if exited:
            raise BenchError(f"processes exited: {exited}")

    def stop(self) -> None:
        """The desk first, so the worker drains its sessions against a live simulator; then the rest."""
        first = [p for name, p in self.running.items() if name in ("worker", "daphne")]
        rest = [p for p in self.running.values() if p not in first]
        for group in (first, rest):
            for process in group:
                if process.poll() is None:
                    process.terminate()
            for process in group:
                try:
                    process.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wait_until(
    what: str, ready: Callable[[], Awaitable[bool]], seconds: float, procs: Processes
) -> None:
    """Polls ``ready`` every 0.1 s for at most ``seconds``; fails at once when a process has exited."""
    for _ in range(max(1, int(seconds * 10))):
        procs.check()
        if await ready():
            return
        await asyncio.sleep(0.1)
    raise BenchError(f"{what} within {seconds:.0f} s")


async def answers(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=1) as http:
            return (await http.get(url)).status_code == 200
    except httpx.TransportError:
        return False


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def bounded(jobs: Iterable[Awaitable[Any]], limit: int = CONCURRENCY) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(job: Awaitable[Any]) -> Any:
        async with gate:
            return await job

    return await asyncio.gather(*(one(job) for job in jobs))


# -- the agents and what they receive ---------------------------------------------------------------


def free_dns(count: int) -> list[str]:
    """Internal DNs that no seeded agent holds, lowest first."""
    taken = {dn for _, _, dn, _ in SEEDED_DIRECTORY}
    numbers = (str(n) for low, high in INTERNAL_RANGES for n in range(low, high + 1))
    dns = [dn for dn in numbers if dn not in taken][:count]
    if len(dns) < count:
        raise BenchError(f"the simulator has {len(dns)} free internal DNs; {count} agents need more")
    return dns


@dataclass(eq=False)
class Agent:
    username: str
    dn: str
    session_key: str = ""
    # The CSRF cookie is a double-submit secret: any 32 letters do when X-CSRFToken repeats them.
    csrf: str = field(
        default_factory=lambda: "".join(secrets.choice(string.ascii_letters) for _ in range(32))
    )
    socket: aiohttp.ClientWebSocketResponse | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    not_ready: asyncio.Event = field(default_factory=asyncio.Event)
    closed: str = ""

    @property
    def cookie(self) -> str:
        return f"sessionid={self.session_key}; csrftoken={self.csrf}"


class DeskSockets:
    """Every agent's desktop WebSocket, and when each Ringing card arrived (perf_counter seconds)."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http = http
        self.url = url
        self.arrivals: dict[str, float] = {}
        self.readers: list[asyncio.Task[None]] = []
        self.sockets: list[aiohttp.ClientWebSocketResponse] = []
        self.retries = 0

    async def open(self, agent: Agent) -> None:
        """Connects, trying again a few times: daphne drops a handshake its consumer does not accept
        within its connect timeout (5 s), which happens when the desk's database thread is backed up."""
        for attempt in range(1, SOCKET_ATTEMPTS + 1):
            try:
                agent.socket = await self.http.ws_connect(
                    f"{self.url}/ws/desktop/", origin=self.url, headers={"Cookie": agent.cookie}
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
            for call_id in RINGING_CARD.findall(message.data):
                self.arrivals.setdefault(call_id, now)
            if CONNECTED.search(message.data):
                agent.connected.set()
            if NOT_READY.search(message.data):
                agent.not_ready.set()
        agent.closed = f"{agent.username}: socket closed ({ws.close_code})"

    async def close(self) -> None:
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        await asyncio.gather(
            *(asyncio.wait_for(ws.close(), 2) for ws in self.sockets), return_exceptions=True
        )


class _Cookie(Extension):
    """aiocometd takes no cookies argument: the GWS session cookie rides on every request."""

    def __init__(self, cookie: str) -> None:
        self.cookie = cookie

    async def outgoing(self, payload: list[dict[str, Any]], headers: dict[str, str]) -> None:
        headers["Cookie"] = self.cookie

    async def incoming(self, payload: list[dict[str, Any]], headers: dict[str, str] | None = None) -> None:
        return None


class BareClients:
    """A bare CometD client per sampled agent, straight on the simulator with a GWS session of its own."""

    def __init__(self, simulator: str, password: str) -> None:
        self.api = f"{simulator}/genesys/api/v2"
        self.password = password
        self.arrivals: dict[str, float] = {}
        self.clients: list[Client] = []
        self.readers: list[asyncio.Task[None]] = []

    async def open(self, agent: Agent) -> None:
        async with httpx.AsyncClient(base_url=self.api, timeout=10) as http:
            me = await http.get("/me", params={"subresources": "*"}, auth=(agent.username, self.password))
            me.raise_for_status()
            cookie = "; ".join(f"{name}={value}" for name, value in http.cookies.items())
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

    async def close(self) -> None:
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        await asyncio.gather(*(asyncio.wait_for(c.close(), 2) for c in self.clients), return_exceptions=True)


class LayerQueueWatch:
    """Samples the deepest process-specific queue in the Redis layer every 20 ms. All the consumers of
    one daphne share one such queue, and channels_redis drops a group message (logging it only at INFO)
    when that queue already holds ``capacity`` messages, 100 by default."""

    def __init__(self, url: str) -> None:
        self.redis = aioredis.Redis.from_url(url)
        self.peak = 0
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._sample())

    def take_peak(self) -> int:
        peak, self.peak = self.peak, 0
        return peak

    async def _sample(self) -> None:
        while True:
            keys = [key async for key in self.redis.scan_iter(match="asgispecific.*", count=1000)]
            for key in keys:
                with contextlib.suppress(aioredis.ResponseError):
                    self.peak = max(self.peak, await self.redis.zcard(key))
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await self.redis.aclose()


def quiet_cancelled_callbacks(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # aiocometd's connect-done callback re-raises the cancellation of a client being closed.
    if not isinstance(context.get("exception"), asyncio.CancelledError):
        loop.default_exception_handler(context)


# -- figures ------------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def latencies(sent: dict[str, float], arrivals: dict[str, float], ids: Iterable[str]) -> list[float]:
    return [(arrivals[i] - sent[i]) * 1000 for i in ids if i in arrivals]


def mib(kib: float) -> str:
    return f"{kib / 1024:,.1f} MiB"


@dataclass
class Phase:
    name: str
    seconds: float
    missing: int  # pushes that never reached a desktop socket
    layer_peak: int  # the deepest a daphne's queue in the Redis layer got
    where: str = ""  # when pushes are missing: what the simulator and the database say instead


@dataclass
class Figures:
    agents: int = 0
    sample: int = 0
    calls: int = 0
    socket_retries: int = 0
    phases: list[Phase] = field(default_factory=list)
    rss: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    desk_all: list[float] = field(default_factory=list)
    desk_sampled: list[float] = field(default_factory=list)
    bare_sampled: list[float] = field(default_factory=list)
    expected_all: int = 0
    expected_sampled: int = 0

    def table(self, args: argparse.Namespace) -> str:
        n = self.agents
        lines = [
            f"{'phase':<36}{'seconds':>9}{'pushes lost':>13}{'deepest daphne queue in Redis':>31}",
            *(f"{p.name:<36}{p.seconds:>9.1f}{p.missing:>13}{p.layer_peak:>31}" for p in self.phases),
            *(f"  where the lost pushes' agents are: {p.where}" for p in self.phases if p.where),
            f"desktop handshakes retried: {self.socket_retries}; bare CometD clients on {self.sample} "
            f"agents; calls at {args.rate:g}/s, the first {args.warmup} not counted",
            "CPU seconds while the calls were placed: "
            + ", ".join(f"{name} {seconds:.2f}" for name, seconds in self.cpu.items()),
            "",
            f"{'latency, ms from the control POST':<36}{'n':>6}{'p50':>9}{'p99':>9}{'max':>9}{'missing':>9}",
            self.row("desk WebSocket, every call", self.desk_all, self.expected_all),
            self.row("desk WebSocket, sampled agents", self.desk_sampled, self.expected_sampled),
            self.row("bare CometD, sampled agents", self.bare_sampled, self.expected_sampled),
        ]
        if self.desk_sampled and self.bare_sampled:
            p50 = percentile(self.desk_sampled, 50) / percentile(self.bare_sampled, 50)
            p99 = percentile(self.desk_sampled, 99) / percentile(self.bare_sampled, 99)
            verdict = "within" if p99 <= 3 else "NOT within"
            lines.append(
                f"{'desk / bare on the same calls':<36}{'':>6}{p50:>8.1f}x{p99:>8.1f}x  p99 {verdict} 3x"
            )
        rss = self.rss
        per_session = (rss["worker_sessions"] - rss["worker_idle"]) / n
        per_socket = (rss["daphne_sockets"] - rss["daphne_idle"]) / n
        projected = rss["worker_idle"] + per_session * EXTRAPOLATE_TO
        lines += [
            "",
            f"worker RSS: {mib(rss['worker_idle'])} before any session, {mib(rss['worker_sessions'])} with "
            f"{n} connected, {mib(rss['worker_after'])} after the calls",
            f"worker memory per agent session: {per_session:,.0f} KiB",
            f"extrapolated to {EXTRAPOLATE_TO:,} sessions in one worker: {mib(projected)}",
            f"daphne RSS: {mib(rss['daphne_idle'])} idle, {mib(rss['daphne_sockets'])} with {n} sockets "
            f"({per_socket:,.0f} KiB per socket)",
        ]
        return "\n".join(lines)

    @staticmethod
    def row(name: str, values: list[float], expected: int) -> str:
        missing = expected - len(values)
        if not values:
            return f"{name:<36}{0:>6}{'-':>9}{'-':>9}{'-':>9}{missing:>9}"
        p50, p99, top = percentile(values, 50), percentile(values, 99), max(values)
        return f"{name:<36}{len(values):>6}{p50:>9.1f}{p99:>9.1f}{top:>9.1f}{missing:>9}"


# -- the run --------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.database = f"switchboard_bench_{secrets.token_hex(4)}"
        self.redis_url = f"redis://127.0.0.1:6379/{args.redis_db}"
        self.simulator = f"http://127.0.0.1:{free_port()}"
        self.desk = f"http://127.0.0.1:{free_port()}"
        env = {
            **os.environ,
            "DATABASE_URL": f"{POSTGRES}/{self.database}",
            "REDIS_URL": self.redis_url,
            "SECRET_KEY": secrets.token_urlsafe(50),
            "SIMULATOR_ENABLED": "0",
            "SECURE_COOKIES": "0",  # plain HTTP on loopback
        }
        env.pop("DJANGO_SETTINGS_MODULE", None)
        self.procs = Processes(env=env, logs=Path(tempfile.mkdtemp(prefix="switchboard-bench-")))
        self.rng = random.Random(args.seed)  # noqa: S311 (which agent gets a call, not a secret)
        self.agents = [Agent(f"bench{i:05d}", dn) for i, dn in enumerate(free_dns(args.agents), 1)]
        self.sample = self.agents[: min(len(self.agents), args.bare_sample)]
        self.password = "bench-" + secrets.token_hex(4)
        self.figures = Figures(agents=len(self.agents), sample=len(self.sample))

    async def run(self) -> Figures:
        """1. a database, a Redis index, the simulator with N agents, the desk's processes;
        2. N desktop sockets, until each says connected (the worker's RSS before and after);
        3. N contact-center logins; bare CometD clients on the sample;
        4. calls at the rate, until every fragment has arrived or the wait times out;
        5. stop everything and drop the database, whatever happened."""
        self.create_storage()
        try:
            await self.start()
            await self.measure()
        finally:
            self.procs.stop()
            self.drop_storage()
        return self.figures

    def create_storage(self) -> None:
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
        redis.Redis.from_url(self.redis_url).flushdb()

    def drop_storage(self) -> None:
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
            query = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.database))
            admin.execute(query)
        redis.Redis.from_url(self.redis_url).flushdb()

    async def start(self) -> None:
        started = time.monotonic()
        port = self.simulator.rsplit(":", 1)[1]
        simulator = ["voicesim", "--host", "127.0.0.1", "--port", port, "--answer-delay-ms", "0"]
        self.procs.start("voicesim", "manage.py", *simulator)
        await asyncio.to_thread(self.procs.manage, "migrate", "--verbosity", "0")
        await wait_until(
            "voicesim answering", lambda: answers(f"{self.simulator}/control/state"), 30, self.procs
        )
        async with httpx.AsyncClient(base_url=self.simulator, timeout=10) as control:
            # Calls ring until the run ends: one notification per call, and no timeouts meanwhile.
            (await control.put("/control/settings", json={"ringing_timeout_ms": 600_000})).raise_for_status()

            async def add(agent: Agent) -> None:
                body = {"login": agent.username, "password": self.password, "dn": agent.dn}
                answer = await control.post("/control/directory", json={**body, "dialect": "genesys"})
                if answer.status_code != 201:
                    raise BenchError(f"the simulator refused {agent.username} on {agent.dn}: {answer.text}")

            await bounded(add(agent) for agent in self.agents)
        spec = {"simulator": self.simulator, "password": self.password}
        spec["agents"] = [[a.username, a.dn] for a in self.agents]
        output = await asyncio.to_thread(
            self.procs.manage, "shell", "-c", SETUP, extra_env={"BENCH_SPEC": json.dumps(spec)}, seconds=300
        )
        line = next((ln for ln in output.splitlines() if ln.startswith("BENCH-SESSIONS ")), None)
        if line is None:
            raise BenchError(f"the setup printed no session keys:\n{output[-LOG_TAIL_CHARS:]}")
        keys = json.loads(line.removeprefix("BENCH-SESSIONS "))
        for agent in self.agents:
            agent.session_key = keys[agent.username]
        port = self.desk.rsplit(":", 1)[1]
        self.daphne = self.procs.start(
            "daphne", "-m", "daphne", "-b", "127.0.0.1", "-p", port, "desktop.asgi:application"
        )
        self.worker = self.procs.start("worker", "manage.py", "runworker", "voice-sessions")
        await wait_until(
            "the desk healthy", lambda: answers(f"{self.desk}/healthz"), START_TIMEOUT_S, self.procs
        )

        async def serving() -> bool:
            return "Serving channels" in self.procs.log("worker")

        await wait_until("the worker serving", serving, START_TIMEOUT_S, self.procs)
        print(
            f"setup: {len(self.agents)} agents; processes up in {time.monotonic() - started:.1f} s",
            flush=True,
        )

    async def measure(self) -> None:
        n, figures, rss = len(self.agents), self.figures, self.figures.rss
        await asyncio.sleep(SETTLE_S)
        rss["worker_idle"], rss["daphne_idle"] = rss_kib(self.worker.pid), rss_kib(self.daphne.pid)
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=30)
        jar = aiohttp.DummyCookieJar()  # each request names its agent's cookies itself
        watch = LayerQueueWatch(self.redis_url)
        watch.start()
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, cookie_jar=jar) as http:
            sockets = DeskSockets(http, self.desk)
            bare = BareClients(self.simulator, self.password)
            try:
                started = time.monotonic()
                await bounded(sockets.open(agent) for agent in self.agents)
                await self.pushes(
                    f"{n} sessions connected", started, [a.connected for a in self.agents], watch
                )
                figures.socket_retries = sockets.retries
                await asyncio.sleep(SETTLE_S)
                rss["worker_sessions"] = rss_kib(self.worker.pid)
                rss["daphne_sockets"] = rss_kib(self.daphne.pid)

                started = time.monotonic()
                await bounded(self.log_in(http, agent) for agent in self.agents)
                await self.pushes(f"{n} agents logged in", started, [a.not_ready for a in self.agents], watch)
                await bounded(bare.open(agent) for agent in self.sample)

                started = time.monotonic()
                watch.take_peak()
                sent, fired = await self.place_calls()
                measured = fired[self.args.warmup :]
                ids = [call_id for call_id, _ in measured]
                sampled = [call_id for call_id, agent in measured if agent in self.sample]

                async def arrived() -> bool:
                    desk = all(i in sockets.arrivals for i in ids)
                    return desk and all(i in bare.arrivals for i in sampled)

                with contextlib.suppress(BenchError):  # what did not arrive is counted as missing
                    await wait_until("every fragment", arrived, ARRIVAL_TIMEOUT_S, self.procs)
                missing = sum(1 for call_id, _ in fired if call_id not in sockets.arrivals)
                figures.phases.append(
                    Phase(f"{len(fired)} calls", time.monotonic() - started, missing, watch.take_peak())
                )
                rss["worker_after"] = rss_kib(self.worker.pid)
            finally:
                await watch.stop()
                await bare.close()
                await sockets.close()
        figures.calls = len(fired)
        figures.expected_all, figures.expected_sampled = len(ids), len(sampled)
        figures.desk_all = latencies(sent, sockets.arrivals, ids)
        figures.desk_sampled = latencies(sent, sockets.arrivals, sampled)
        figures.bare_sampled = latencies(sent, bare.arrivals, sampled)

    async def pushes(
        self, what: str, started: float, events: list[asyncio.Event], watch: LayerQueueWatch
    ) -> None:
        """Waits for one push per agent until all have come, or none has come for STALL_S (a lost push
        never comes), or the phase's time is up; records the phase with what never came."""
        deadline = started + 60 + len(events)
        seen, progress = 0, time.monotonic()
        while (now := time.monotonic()) < deadline and now - progress < STALL_S:
            self.procs.check()
            count = sum(e.is_set() for e in events)
            if count == len(events):
                break
            if count > seen:
                seen, progress = count, now
            await asyncio.sleep(0.1)
        missing = sum(not e.is_set() for e in events)
        where = await self.where_agents_are() if missing else ""
        self.figures.phases.append(Phase(what, time.monotonic() - started, missing, watch.take_peak(), where))
        print(f"{what}: {time.monotonic() - started:.1f} s, {missing} pushes missing", flush=True)

    async def where_agents_are(self) -> str:
        """What the simulator and the desk's database say about the agents: where a wait got stuck."""
        async with httpx.AsyncClient(base_url=self.simulator, timeout=10) as control:
            state = (await control.get("/control/state")).json()
        names = {a.username for a in self.agents}
        agents = [a for a in state.get("agents", []) if a.get("login") in names]
        on_switch = sum(1 for a in agents if a.get("loggedIn"))
        query = "SELECT connection, agent_state, count(*) FROM calls_agentlogin GROUP BY 1, 2 ORDER BY 1, 2"
        with psycopg.connect(f"{POSTGRES}/{self.database}") as db:
            rows = db.execute(query).fetchall()
        desk = ", ".join(f"{connection}/{agent_state}: {count}" for connection, agent_state, count in rows)
        return f"simulator: {on_switch} of {len(agents)} agents logged in; desk database: {desk}"

    async def log_in(self, http: aiohttp.ClientSession, agent: Agent) -> None:
        headers = {"Cookie": agent.cookie, "X-CSRFToken": agent.csrf}
        async with http.post(f"{self.desk}/agent/", data={"operation": "Login"}, headers=headers) as response:
            if response.status != 204:
                raise BenchError(f"Login for {agent.username}: {response.status} {await response.text()}")

    async def place_calls(self) -> tuple[dict[str, float], list[tuple[str, Agent]]]:
        """Places warm-up plus ``--calls`` calls at ``--rate``, each from an outside number of its own.
        When the sample is not every agent, every other call goes to a sampled agent, so the comparison
        with the bare clients has enough calls; the rest go to any agent."""
        args = self.args
        partial = len(self.sample) < len(self.agents)
        targets = [
            self.rng.choice(self.sample if partial and i % 2 == 0 else self.agents)
            for i in range(args.warmup + args.calls)
        ]
        sent: dict[str, float] = {}
        fired: list[tuple[str, Agent]] = []
        async with httpx.AsyncClient(base_url=self.simulator, timeout=10) as control:

            async def place(i: int, agent: Agent) -> None:
                body = {"from": f"+1555{i:07d}", "to": agent.dn}
                t0 = time.perf_counter()
                response = await control.post("/control/calls", json=body)
                if response.status_code != 201:
                    raise BenchError(f"placing call {i}: {response.status_code} {response.text}")
                call_id = response.json()["id"]
                sent[call_id] = t0
                fired.append((call_id, agent))

            profilers = self.start_profilers(duration=len(targets) / args.rate + 2)
            try:
                before = {name: cpu_seconds(p.pid) for name, p in self.procs.running.items()}
                before["bench"] = time.process_time()
                start = time.perf_counter()
                placing = []
                for i, agent in enumerate(targets):
                    delay = start + i / args.rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    placing.append(asyncio.create_task(place(i, agent)))
                await asyncio.gather(*placing)
                await asyncio.sleep(1)  # the last fragments
                cpu = {name: cpu_seconds(p.pid) - before[name] for name, p in self.procs.running.items()}
                self.figures.cpu = {**cpu, "bench": time.process_time() - before["bench"]}
                for profiler in profilers:
                    await asyncio.to_thread(profiler.wait, 60)
            finally:
                for profiler in profilers:
                    if profiler.poll() is None:
                        profiler.kill()
                        profiler.wait()
        fired.sort(key=lambda item: sent[item[0]])
        return sent, fired

    def start_profilers(self, duration: float) -> list[subprocess.Popen[bytes]]:
        """py-spy on the worker and daphne while the calls are placed: collapsed stacks per thread, idle
        (waiting) frames included, so time spent queueing shows as well as time spent computing."""
        if not self.args.py_spy:
            return []
        started = []
        for name, process in (("worker", self.worker), ("daphne", self.daphne)):
            output = self.procs.logs / f"{name}.py-spy.txt"
            options = "record --format raw --rate 200 --threads --idle --nonblocking".split()
            command = [self.args.py_spy, *options, "--pid", str(process.pid), "-o", str(output)]
            command += ["--duration", str(math.ceil(duration))]
            started.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))  # noqa: S603
        return started


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=100, help="agents, each with a desktop socket (100)")
    parser.add_argument("--calls", type=int, default=200, help="calls measured (200)")
    parser.add_argument("--rate", type=float, default=20.0, help="calls placed per second (20)")
    parser.add_argument("--warmup", type=int, default=10, help="calls placed first and not counted (10)")
    parser.add_argument("--bare-sample", type=int, default=100, help="agents with a bare CometD client (100)")
    parser.add_argument("--seed", type=int, default=1, help="random seed for which agent gets a call (1)")
    parser.add_argument("--redis-db", type=int, default=13, help="Redis database index, flushed (13)")
    parser.add_argument("--py-spy", default="", help="path to py-spy: profile the worker and daphne (off)")
    parser.add_argument("--timeout", type=float, default=900.0, help="bound on the whole run (900 s)")
    args = parser.parse_args(argv)
    if min(args.agents, args.calls, args.bare_sample) < 1 or args.rate <= 0 or args.warmup < 0:
        parser.error("--agents, --calls, --bare-sample and --rate must be positive")
    return args


async def main(argv: list[str]) -> int:
    args = parse_args(argv)
    asyncio.get_running_loop().set_exception_handler(quiet_cancelled_callbacks)
    print("command:", shlex.join([sys.executable, *sys.argv]))
    print("parameters:", json.dumps(vars(args)))
    print(
        f"host: {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()}; loopback only"
    )
    bench = Bench(args)
    try:
        async with asyncio.timeout(args.timeout):
            figures = await bench.run()
    except (BenchError, TimeoutError) as exc:
        reason = str(exc) or f"the run took longer than --timeout {args.timeout:g} s"
        print(f"\nFAILED: {reason}\n{bench.procs.tails()}", file=sys.stderr)
        return 1
    except Exception:
        traceback.print_exc()
        print(f"\nFAILED unexpectedly\n{bench.procs.tails()}", file=sys.stderr)
        return 1
    print()
    print(figures.table(args))
    print(f"\nprocess logs: {bench.procs.logs}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
