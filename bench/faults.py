"""Fault campaign: randomized calls with a fault at a random step, and a check after each that every
agent's screen equals what the switch says, that nothing is missing from the history, and that no card
is shown twice.

The production shape on loopback, each component its own process: a standalone ``voicesim``, two
``daphne`` serving the desk, two ``manage.py runworker voice-sessions``, a fresh PostgreSQL database
and a Redis of the bench's own (``redis-server`` on a free port, so it can be restarted; or a database
index of a shared Redis with ``--redis-url``, flushed, and then Redis is never restarted). Two agents
sit at the desk, as a browser would: each signed in through the login form, its page loaded, its
desktop WebSocket open. agent1 is on the simulator's Genesys dialect (DN 5005), agent101 on its Huawei
dialect (agent 101, DN 6101).

Each run draws, from its own seed, a scenario played through the desk's real HTTP endpoints and the
simulator's control API, and the step at which its fault comes; the fault kinds are taken in turn
(shuffled each round), so each is drawn as often as the others:

- ``inbound``: an outside call rings agent1 or agent101, who answers; the caller or the agent hangs up;
- ``consult_transfer`` (seed 002): agent1 answers, consults 5001 and completes the transfer;
- ``hold_dial_swap`` (seed 003): agent1 answers, holds, dials 5001, swaps there and back, hangs up both;
- ``cross_vendor_transfer``: agent1 consults agent101 (Huawei), who answers; agent1 completes the transfer;
- ``conference``: agent1 consults agent101, who answers; agent1 completes the conference and leaves.

The fault is injected just before that step (or after the last), and the step then runs during it:

- ``cometd_drop``: every CometD session (and Huawei Guid) dropped by the simulator;
- ``voice_api_503``: the Voice API answers 503 for 2 s;
- ``voice_api_slow``: the Voice API answers 300 ms late for 3 s;
- ``worker_kill``: the worker owning the agent's session killed (SIGKILL) and restarted;
- ``worker_takeover``: the owning worker stopped (SIGTERM, it drains), the other one takes over;
- ``socket_drop``: the desk's WebSocket closed, and opened again after the step;
- ``page_reload``: the socket closed, and after the step the page loaded again with a new socket;
- ``redis_restart``: the bench's Redis stopped, and started again (empty) after the step, and no sooner
  than 1 s after it stopped;
- ``switch_reset``: the simulator reset (every call and sign-in gone); the scenario ends there.

The fault ends when the simulator's timer runs out, the socket or page is back, Redis answers again, the
stopped worker has drained, or, for a killed worker, when its lease has run out and the new worker
serves (no worker may take a session over sooner: that is the lease's design). From then on the bench
polls until every agent's screen equals the switch (``GET /control/state``): the cards (call id and
state, and the consult's parent on Genesys) and the agent state in the page model built from the live
socket's pushes, the same from a fresh socket's snapshot, and the connection shown as connected. That
must hold within 2 s of the fault's end (the recovery time is measured); after an ordinary step too.
After the run every call the switch showed an agent must be in that agent's history (``CallRecord``),
closed once the call is over. The pushes are parsed as the htmx out-of-band fragments they are and
applied to a small model of the page, as the ws extension would: a card swapped in place is dropped
when its target is missing, and a card present twice is a violation.

    .venv/bin/python bench/faults.py                 # 1,000 runs
    .venv/bin/python bench/faults.py --runs 100 --seed 7
    .venv/bin/python bench/faults.py --replay 1973981844 --faults cometd_drop   # one run again
    .venv/bin/python bench/faults.py --replay 3145376833,2040906048 --faults switch_reset,voice_api_slow

The last replays two runs in order (one that fails only after the other). ``--py-spy`` writes, at each
violation, the processes' stacks and the database's, the desk's and the switch's state beside the
logs; ``bench.log`` there traces the bench's own steps.

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust) and ``redis-server`` (or ``--redis-url``).
Creates the database ``switchboard_faults_<random>``, dropped at the end with the bench's Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import platform
import random
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import psycopg

from deploy.processes import (
    REDIS_SERVER,
    WORKER,
    Database,
    Processes,
    answers_async,
    daphne,
    desk_env,
    flush_redis,
    free_port,
    redis_answers,
    voicesim,
)

ROOT = Path(__file__).resolve().parent.parent


POSTGRES = "postgres://postgres@127.0.0.1:5432"
START_TIMEOUT_S = 40.0
STOP_TIMEOUT_S = 15.0
RECOVERY_LIMIT_S = 2.0  # the invariant: every screen equals the switch this soon after a fault ends
RECOVERY_CAP_S = 20.0  # how long the bench keeps measuring a recovery that missed the limit
ACTION_RETRY_S = 6.0  # an agent clicks again while a refusal lasts, for this long after the fault
CLEANUP_S = 20.0
RUN_TIMEOUT_S = 90.0
POLL_S = 0.05
SLOW_MS, SLOW_FOR_MS = 300, 3000
OUTAGE_STATUS, OUTAGE_FOR_MS = 503, 2000
REDIS_DOWN_S = 1.0  # a restarted Redis is away at least this long (a real restart takes about that)

SCENARIOS = ("inbound", "consult_transfer", "hold_dial_swap", "cross_vendor_transfer", "conference")
FAULTS = (
    "cometd_drop",
    "voice_api_503",
    "voice_api_slow",
    "worker_kill",
    "worker_takeover",
    "socket_drop",
    "page_reload",
    "redis_restart",
    "switch_reset",
)
# The simulator's agent states in the desk's words (Huawei's rest is Not Ready with a reason).
SWITCH_STATES = {"AuxWork": "NotReady"}


@dataclass(frozen=True)
class AgentSpec:
    user: str  # the desk user (password the same)
    dn: str
    dialect: str
    api_login: str  # the Voice API's login for the agent
    api_password: str


AGENT1 = AgentSpec("agent1", "5005", "genesys", "agent1", "agent1")
AGENT101 = AgentSpec("agent101", "6101", "huawei", "101", "agent101")
AGENTS = (AGENT1, AGENT101)

# Run by `manage.py shell -c` against the bench's database.
SETUP = """
import json, os
from django.contrib.auth import get_user_model
from calls.models import AgentLogin, VoiceServer

spec = json.loads(os.environ["BENCH_SPEC"])
servers = {
    "genesys": VoiceServer.objects.create(
        name="Simulator (Genesys)", base_url=spec["simulator"] + "/genesys"
    ),
    "huawei": VoiceServer.objects.create(
        name="Simulator (Huawei)", dialect="huawei", base_url=spec["simulator"] + "/huawei"
    ),
}
for user, dn, dialect, login, password in spec["agents"]:
    desk_user = get_user_model().objects.create_user(user, password=user)
    AgentLogin.objects.create(
        user=desk_user, server=servers[dialect], username=login, password=password, dn=dn
    )
print("BENCH-SETUP ok")
"""


class BenchError(Exception):
    """The campaign cannot go on; the message says why."""


class StepFailed(Exception):
    """A step of a scenario could not be carried out; the message says which and why."""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


# -- the page as a browser holds it -------------------------------------------------------------------


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    cards: list[dict[str, str]] = field(default_factory=list)  # the call-card articles inside it


class Fragments(HTMLParser):
    """The swaps of a pushed frame (each element carrying ``hx-swap-oob``, with the call cards inside
    it); or, for a whole page, the elements the model needs wherever they are."""

    def __init__(self, *, page: bool = False) -> None:
        super().__init__(convert_charrefs=True)
        self.page = page
        self.top: list[Element] = []
        self.found: dict[str, Element] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        element_id = values.get("id", "")
        if self.page:
            if tag == "article" and element_id.startswith("call-"):
                self.found.setdefault("calls", Element("section", {})).cards.append(values)
            elif element_id in ("agent-state", "connection", "calls"):
                self.found.setdefault(element_id, Element(tag, values)).attrs = values
        elif "hx-swap-oob" in values:
            self.top.append(Element(tag, values))
        elif tag == "article" and element_id.startswith("call-") and self.top:
            self.top[-1].cards.append(values)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)


@dataclass(frozen=True)
class Screen:
    """What one agent sees: the agent state, the connection, and the cards (call id -> (state, parent))."""

    agent_state: str
    connection: str
    cards: dict[str, tuple[str, str]]
    duplicates: tuple[str, ...] = ()


class PageModel:
    """The desk page, reduced to what the invariant compares, changed by frames as htmx changes it."""

    def __init__(self) -> None:
        self.agent_state = ""
        self.connection = ""
        self.cards: list[dict[str, str]] = []
        self.dropped = 0  # in-place swaps whose card was not on the page (htmx drops them too)
        self.duplicates_seen: set[str] = set()

    @classmethod
    def from_page(cls, html: str) -> PageModel:
        parser = Fragments(page=True)
        parser.feed(html)
        model = cls()
        if "agent-state" in parser.found:
            model.agent_state = parser.found["agent-state"].attrs.get("data-state", "")
        if "connection" in parser.found:
            model.connection = parser.found["connection"].attrs.get("data-status", "")
        if "calls" in parser.found:
            model.cards = list(parser.found["calls"].cards)
        model._note_duplicates()
        return model

    def apply(self, frame: str) -> None:
        parser = Fragments()
        parser.feed(frame)
        for element in parser.top:
            oob = element.attrs["hx-swap-oob"]
            target = element.attrs.get("id", "")
            if target == "agent-state":
                self.agent_state = element.attrs.get("data-state", "")
            elif target == "connection":
                self.connection = element.attrs.get("data-status", "")
            elif target == "calls" and oob == "innerHTML":
                self.cards = list(element.cards)
            elif oob == "delete":
                self.cards = [card for card in self.cards if card.get("id") != target]
            elif oob == "beforeend:#calls":
                self.cards += element.cards
            elif element.tag == "article" and target.startswith("call-"):
                at = next((i for i, card in enumerate(self.cards) if card.get("id") == target), None)
                if at is None:
                    self.dropped += 1
                else:
                    self.cards[at] = element.attrs
        self._note_duplicates()

    def _note_duplicates(self) -> None:
        ids = Counter(card.get("id", "") for card in self.cards)
        self.duplicates_seen |= {card_id for card_id, n in ids.items() if n > 1}

    def screen(self) -> Screen:
        ids = Counter(card.get("id", "") for card in self.cards)
        return Screen(
            agent_state=self.agent_state,
            connection=self.connection,
            cards={
                card.get("id", "").removeprefix("call-"): (
                    card.get("data-state", ""),
                    card.get("data-parent", ""),
                )
                for card in self.cards
            },
            duplicates=tuple(sorted(card_id for card_id, n in ids.items() if n > 1)),
        )


def differences(agent: AgentSpec, screen: Screen, truth: Screen) -> list[str]:
    """How a screen differs from the switch's truth, in words; empty when it shows the truth."""
    found = []
    if screen.duplicates:
        found.append(f"duplicate cards {', '.join(screen.duplicates)}")
    if screen.agent_state != truth.agent_state:
        found.append(f"agent state {screen.agent_state or '-'} (switch: {truth.agent_state})")
    if screen.connection != "connected":
        found.append(f"connection {screen.connection or '-'}")
    for call_id in sorted(screen.cards.keys() | truth.cards.keys()):
        shown, real = screen.cards.get(call_id), truth.cards.get(call_id)
        if shown is None:
            found.append(f"missing card {call_id} {real}")
        elif real is None:
            found.append(f"extra card {call_id} {shown}")
        elif shown[0] != real[0] or (agent.dialect == "genesys" and shown[1] != real[1]):
            found.append(f"card {call_id} shows {shown} (switch: {real})")
    return found


def truth_of(state: dict[str, Any], agent: AgentSpec) -> Screen:
    """One agent's calls and state as the switch has them: its leg's state in each live call on its DN
    (the consult's parent when the agent started the consult), its agent state."""
    me = next((a for a in state["agents"] if a["login"] == agent.api_login), None)
    agent_state = "LoggedOut" if me is None or not me["loggedIn"] else me["state"]
    cards: dict[str, tuple[str, str]] = {}
    if me is not None and me["loggedIn"]:
        for call in state["calls"]:
            for party in call["parties"]:
                if party["number"] == agent.dn:
                    consult = call.get("consult") or {}
                    parent = consult.get("parent", "") if consult.get("owner") == agent.dn else ""
                    cards[call["id"]] = (party["state"], parent or "")
    return Screen(SWITCH_STATES.get(agent_state, agent_state), "connected", cards)


# -- one agent at the desk ------------------------------------------------------------------------------


class Desk:
    """One agent's browser tab: signed in through the form, the page loaded, its WebSocket open; the
    page model follows every push the socket receives."""

    def __init__(self, spec: AgentSpec, urls: list[str], rng: random.Random) -> None:
        self.spec = spec
        self.urls = urls
        self.rng = rng
        self.url = urls[0]
        self.http = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True), timeout=aiohttp.ClientTimeout(total=20)
        )
        self.csrf = ""
        self.page = PageModel()
        self.socket: aiohttp.ClientWebSocketResponse | None = None
        self.reader: asyncio.Task[None] | None = None
        self.keeper: asyncio.Task[None] | None = None
        self.closed_by_server: list[int] = []

    def pick(self) -> str:
        """A desk process for the next page or socket: any of them serves any agent."""
        self.url = self.rng.choice(self.urls)
        return self.url

    async def sign_in(self) -> None:
        url = self.pick()
        async with self.http.get(f"{url}/accounts/login/") as page:
            form = await page.text()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
        if token is None:
            raise BenchError(f"no CSRF token on the login form for {self.spec.user}")
        body = {"username": self.spec.user, "password": self.spec.user, "csrfmiddlewaretoken": token.group(1)}
        async with self.http.post(f"{url}/accounts/login/", data=body, allow_redirects=False) as response:
            if response.status != 302:
                raise BenchError(f"{self.spec.user} could not sign in: {response.status}")
        await self.load()

    async def load(self) -> None:
        """The page, as a browser loads it: its markup is the model until the socket's snapshot comes."""
        await self.close_socket()
        url = self.pick()
        async with self.http.get(f"{url}/") as response:
            html = await response.text()
            if response.status != 200:
                raise StepFailed(f"{self.spec.user}'s page answered {response.status}")
        token = re.search(r'"X-CSRFToken": "([^"]+)"', html)
        if token is None:
            raise StepFailed(f"{self.spec.user}'s page has no CSRF token")
        self.csrf = token.group(1)
        self.page = PageModel.from_page(html)
        await self.open_socket(pick=False)

    async def open_socket(self, *, pick: bool = True) -> None:
        url = self.pick() if pick else self.url
        connected = asyncio.Event()
        try:
            self.socket = await self.http.ws_connect(f"{url}/ws/desktop/", origin=url)
        except (aiohttp.ClientError, OSError) as exc:
            raise StepFailed(f"{self.spec.user}'s socket: {type(exc).__name__}: {exc}") from exc
        self.reader = asyncio.create_task(self._read(self.socket, connected))
        try:
            await asyncio.wait_for(connected.wait(), 10)
        except TimeoutError:
            raise StepFailed(f"{self.spec.user}'s socket sent no snapshot in 10 s") from None

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, connected: asyncio.Event) -> None:
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            self.page.apply(message.data)
            connected.set()
        if ws is self.socket:
            # Closed by the desk, not by the bench: the page says offline and, as htmx's ws extension
            # does (desk.js for clean closes), opens the socket again after a jittered, doubling pause;
            # a close code from 4000 up (the desk session ended) asks the agent to sign in instead.
            code = ws.close_code or 1006
            self.page.connection = "offline"
            self.closed_by_server.append(code)
            if code < 4000:
                self.keeper = asyncio.create_task(self._reconnect())

    async def _reconnect(self) -> None:
        """desk.js's pauses between tries: 0.25 to 0.5 s first, doubling up to 30 s, half of each random."""
        for retry in range(10):
            pause = min(30.0, 0.5 * 2.0**retry)
            await asyncio.sleep(pause / 2 + self.rng.random() * pause / 2)
            with contextlib.suppress(StepFailed):
                await self.open_socket()
                return

    async def close_socket(self) -> None:
        socket_, reader, keeper = self.socket, self.reader, self.keeper
        self.socket = self.reader = self.keeper = None
        if keeper is not None and keeper is not asyncio.current_task():
            keeper.cancel()
            with contextlib.suppress(BaseException):
                await keeper
        if socket_ is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(socket_.close(), 5)
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader

    async def snapshot(self) -> Screen:
        """What a new tab's socket is sent first, applied to an empty page."""
        url = self.rng.choice(self.urls)
        try:
            async with self.http.ws_connect(f"{url}/ws/desktop/", origin=url) as ws:
                message = await ws.receive(timeout=10)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return Screen("", f"no snapshot: {type(exc).__name__}: {exc}", {})
        if message.type != aiohttp.WSMsgType.TEXT:
            return Screen("", f"no snapshot: the socket sent {message.type.name}", {})
        model = PageModel()
        model.apply(message.data)
        return model.screen()

    async def post(self, path: str, **data: str) -> tuple[int, str]:
        """What an htmx control does: a form POST with the page's CSRF token in a header."""
        headers = {"X-CSRFToken": self.csrf, "HX-Request": "true"}
        async with self.http.post(
            f"{self.rng.choice(self.urls)}{path}", data=data, headers=headers
        ) as answer:
            text = await answer.text()
        message = re.search(r'class="toast-message">([^<]*)<', text)
        return answer.status, message.group(1) if message else text[:200]

    async def close(self) -> None:
        await self.close_socket()
        await self.http.close()


# -- the campaign ------------------------------------------------------------------------------------------


@dataclass
class Violation:
    kind: str
    seed: int
    run: int
    scenario: str
    fault: str
    detail: str


@dataclass
class Tally:
    runs: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    scenarios: Counter[str] = field(default_factory=Counter)
    recoveries: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    violations: list[Violation] = field(default_factory=list)
    restarts: Counter[str] = field(default_factory=Counter)
    socket_closes: Counter[int] = field(default_factory=Counter)
    dropped_swaps: int = 0
    elapsed: float = 0.0


@dataclass
class Run:
    """One run's draw and what it saw."""

    index: int
    seed: int
    scenario: str
    fault: str
    fault_step: int
    rng: random.Random
    calls: dict[str, str] = field(default_factory=dict)  # names the steps give calls -> call ids
    seen: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # agent user -> call ids
    violated: set[str] = field(default_factory=set)


class Campaign:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.database = Database(f"{POSTGRES}/postgres", "switchboard_faults")
        self.logs = Path(tempfile.mkdtemp(prefix="switchboard-faults-"))
        self.simulator = f"http://127.0.0.1:{free_port()}"
        self.desks_urls = [f"http://127.0.0.1:{free_port()}" for _ in range(args.daphnes)]
        self.private_redis = not args.redis_url
        self.redis_port = free_port() if self.private_redis else 0
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0" if self.private_redis else args.redis_url
        settings = {
            "SECURE_COOKIES": "0",  # plain HTTP on loopback: cookies marked Secure would never come back
            "VOICE_SESSION_MAX_BACKOFF_SECONDS": "1",
            "VOICE_SESSION_LEASE_SECONDS": str(args.lease_seconds),
            # The campaign clicks faster than an agent; the storm limit is not what it measures.
            "ACTION_RATE_LIMIT": "1000/10",
            "PYTHONUNBUFFERED": "1",
        }
        # The campaign prints the processes' logs itself when it fails.
        self.procs = Processes(
            desk_env(self.database.url, self.redis_url, settings),
            self.logs,
            error=BenchError,
            tails_in_errors=False,
            stop_timeout=STOP_TIMEOUT_S,
        )
        self.tally = Tally()
        self.desks: dict[str, Desk] = {}
        self.control = httpx.AsyncClient(base_url=self.simulator, timeout=10)
        self.db: psycopg.AsyncConnection[Any] | None = None
        self.workers = ["worker-a", "worker-b"]
        self.faults = [f for f in args.faults if f != "redis_restart" or self.private_redis]
        self.fault_until = 0.0
        self.standby = ""
        self.equal_since = 0.0

    # -- setting up and tearing down --------------------------------------------------------------

    async def run(self) -> Tally:
        """1. a database, a Redis, the simulator, the desk processes and the workers; 2. the agents at
        the desk, logged in to the contact center; 3. the runs; 4. everything stopped and dropped,
        whatever happened."""
        self.create_storage()
        try:
            await self.start()
            supervisor = asyncio.create_task(self.supervise())
            try:
                await self.seat_agents()
                started = time.monotonic()
                await self.campaign()
                self.tally.elapsed = time.monotonic() - started
            finally:
                supervisor.cancel()
        finally:
            for desk in self.desks.values():
                with contextlib.suppress(Exception):
                    await desk.close()
            await self.control.aclose()
            if self.db is not None:
                await self.db.close()
            self.procs.end()
            self.drop_storage()
        return self.tally

    def create_storage(self) -> None:
        self.database.create()
        if self.private_redis:
            self.start_redis()
        else:
            flush_redis(self.redis_url)

    def drop_storage(self) -> None:
        self.database.drop()
        if not self.private_redis:
            flush_redis(self.redis_url)

    def start_redis(self) -> None:
        if REDIS_SERVER is None:
            raise BenchError("redis-server is not installed: install it, or pass --redis-url")
        self.procs.spawn_redis("redis", self.redis_port)

    async def start(self) -> None:
        started = time.monotonic()
        self.procs.spawn("voicesim", voicesim(int(self.simulator.rsplit(":", 1)[1]), answer_delay_ms=0))
        await asyncio.to_thread(self.procs.manage, "migrate", "--verbosity", "0")
        spec = {"simulator": self.simulator, "agents": [list(vars(a).values()) for a in AGENTS]}
        await asyncio.to_thread(
            self.procs.manage, "shell", "-c", SETUP, extra_env={"BENCH_SPEC": json.dumps(spec)}
        )
        simulator = functools.partial(answers_async, f"{self.simulator}/control/state")
        await self.procs.wait_until("voicesim to answer", simulator, START_TIMEOUT_S)
        for i, url in enumerate(self.desks_urls):
            self.procs.spawn(f"daphne-{i + 1}", daphne(int(url.rsplit(":", 1)[1])))
        for name in self.workers:
            await self.start_worker(name, wait=False)
        for url in self.desks_urls:
            healthz = functools.partial(answers_async, f"{url}/healthz")
            await self.procs.wait_until(f"the desk on {url} to answer", healthz, START_TIMEOUT_S)
        for name in self.workers:
            await self.worker_serving(name)
        self.db = await psycopg.AsyncConnection.connect(self.database.url, autocommit=True)
        print(f"setup: processes up in {time.monotonic() - started:.1f} s; logs in {self.logs}", flush=True)

    async def worker_serving(self, name: str) -> None:
        serving = functools.partial(self.procs.serving, name)
        await self.procs.wait_until(f"{name} to serve", serving, START_TIMEOUT_S)

    async def start_worker(self, name: str, *, wait: bool = True) -> None:
        self.procs.spawn(name, WORKER)
        if wait:
            await self.worker_serving(name)

    async def seat_agents(self) -> None:
        """Each agent signs in to the desk, opens it and logs in to the contact center (Not Ready)."""
        for spec in AGENTS:
            desk = Desk(spec, self.desks_urls, random.Random(self.args.seed))  # noqa: S311 (replayable)
            self.desks[spec.user] = desk
            await desk.sign_in()
        await self.log_agents_in(deadline=time.monotonic() + 30)
        failures = await self.converge(time.monotonic() + 30)
        if failures:
            raise BenchError(f"the desk never showed the agents as the switch has them: {failures}")

    async def log_agents_in(self, deadline: float) -> None:
        state = await self.switch_state()
        for spec in AGENTS:
            truth = truth_of(state, spec)
            self.trace(f"{spec.user} is {truth.agent_state} at the switch")
            if truth.agent_state != "LoggedOut":
                continue
            desk = self.desks[spec.user]
            while True:
                self.trace(f"{spec.user} logs in")
                status, message = await desk.post("/agent/", operation="Login")
                if status == 204:
                    break
                if time.monotonic() > deadline:
                    raise StepFailed(f"Login for {spec.user}: {status} {message}")
                await asyncio.sleep(0.3)

    # -- the switch ------------------------------------------------------------------------------------

    async def switch_state(self) -> dict[str, Any]:
        response = await self.control.get("/control/state")
        response.raise_for_status()
        state: dict[str, Any] = response.json()
        return state

    async def control_post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = await self.control.post(path, json=body if body is not None else {})
        if response.status_code >= 300:
            raise StepFailed(f"control {path}: {response.status_code} {response.text}")
        return response.json()

    async def find_call(self, what: str, match: Callable[[dict[str, Any]], bool], seconds: float = 5) -> str:
        """The id of the switch's call that ``match`` picks, once there is one."""
        deadline = time.monotonic() + seconds
        while True:
            for call in (await self.switch_state())["calls"]:
                if match(call):
                    return str(call["id"])
            if time.monotonic() > deadline:
                raise StepFailed(f"the switch has no {what}")
            await asyncio.sleep(POLL_S)

    # -- the invariant -----------------------------------------------------------------------------------

    async def differences(self, run: Run | None, *, fresh: bool) -> dict[str, list[str]]:
        """Per agent, how its live screen (and, with ``fresh``, a new socket's snapshot) differs from
        the switch; the calls the switch shows each agent are noted for the history check."""
        state = await self.switch_state()
        found: dict[str, list[str]] = {}
        for spec in AGENTS:
            desk = self.desks[spec.user]
            truth = truth_of(state, spec)
            if run is not None:
                run.seen[spec.user] |= truth.cards.keys()
            problems = differences(spec, desk.page.screen(), truth)
            if desk.socket is None or desk.socket.closed:
                problems.append("the live socket is closed")
            if not problems and fresh:
                problems = [f"snapshot: {p}" for p in differences(spec, await desk.snapshot(), truth)]
            if problems:
                found[spec.user] = problems
        return found

    async def converge(self, deadline: float, run: Run | None = None) -> dict[str, list[str]]:
        """Polls until every screen equals the switch (live, then a fresh snapshot) or ``deadline``;
        returns the last differences (empty once equal; ``self.equal_since`` then says when the check
        that found them equal began)."""
        while True:
            self.equal_since = time.monotonic()
            found = await self.differences(run, fresh=False)
            if not found:
                found = await self.differences(run, fresh=True)
                if not found:
                    return {}
            if time.monotonic() > deadline:
                return found
            await asyncio.sleep(POLL_S)

    async def settle(self, run: Run, since: float, kind: str, fault: str = "") -> None:
        """The screens must equal the switch within RECOVERY_LIMIT_S of ``since``; measures how long
        they took (up to RECOVERY_CAP_S), and records a violation of ``kind`` when they were late."""
        at_limit = await self.converge(since + RECOVERY_LIMIT_S, run)
        found = at_limit and await self.converge(max(since, time.monotonic()) + RECOVERY_CAP_S, run)
        # Equal from when the check that saw it began, not from when that check (a fresh page) ended.
        took = max(0.0, self.equal_since - since) if not found else time.monotonic() - since
        self.trace(f"{kind}: {found}" if found else f"{kind}: screens equal the switch after {took:.2f} s")
        if fault:
            self.tally.recoveries[fault].append(took if not found else RECOVERY_CAP_S)
        if found:
            self.violate(run, f"{kind}: never", f"not equal {RECOVERY_CAP_S:.0f} s on: {found}")
            raise StepFailed(f"screens never matched the switch: {found}")
        if at_limit:
            self.violate(
                run, f"{kind}: late", f"equal only {took:.2f} s on; at {RECOVERY_LIMIT_S:g} s: {at_limit}"
            )

    def violate(self, run: Run, kind: str, detail: str) -> None:
        self.trace(f"run {run.index}: violation {kind}: {detail}")
        run.violated.add(kind)
        self.tally.violations.append(Violation(kind, run.seed, run.index, run.scenario, run.fault, detail))
        print(
            f"  VIOLATION run {run.index} (--replay {run.seed} --faults {run.fault}: {run.scenario}, "
            f"the fault at step {run.fault_step}): {kind}: {detail}",
            flush=True,
        )
        self.diagnose(run, kind)

    def diagnose(self, run: Run, kind: str) -> None:
        """With ``--py-spy``: what every desk process is doing at a violation (their stacks), and which
        database sessions are busy or waiting, into ``violation-<run>-<kind>.txt`` in the logs."""
        if not self.args.py_spy:
            return
        report = self.logs / f"violation-{run.index}-{re.sub(r'[^a-z]+', '-', kind)}.txt"
        with report.open("w") as out:
            for name in [n for n in self.procs.processes if n.startswith(("worker", "daphne"))]:
                out.write(f"== {name}\n")
                out.flush()
                subprocess.run(  # noqa: S603 (py-spy named by the operator, on our own processes)
                    [self.args.py_spy, "dump", "--pid", str(self.procs.pid(name))],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=30,
                    check=False,
                )
            with psycopg.connect(self.database.url, autocommit=True) as db:
                rows = db.execute(
                    "SELECT pid, state, wait_event_type, wait_event, now() - xact_start, left(query, 200) "
                    "FROM pg_stat_activity WHERE datname = current_database() AND state <> 'idle' "
                    "AND pid <> pg_backend_pid()"
                ).fetchall()
                logins = db.execute(
                    "SELECT username, agent_state, connection, worker, lease_until - now() "
                    "FROM calls_agentlogin ORDER BY username"
                ).fetchall()
                live = db.execute(
                    "SELECT l.username, c.call_id, c.state, c.parent_call_id FROM calls_livecall c "
                    "JOIN calls_agentlogin l ON l.id = c.login_id ORDER BY l.username, c.call_id"
                ).fetchall()
            out.write("== database sessions not idle\n" + "".join(f"{row}\n" for row in rows))
            out.write("== logins\n" + "".join(f"{row}\n" for row in logins))
            out.write("== live calls saved\n" + "".join(f"{row}\n" for row in live))
            state = httpx.get(f"{self.simulator}/control/state", timeout=10).json()
            for spec in AGENTS:
                out.write(f"== {spec.user}: screen, then switch\n{self.desks[spec.user].page.screen()}\n")
                out.write(f"{truth_of(state, spec)}\n")
            out.write(f"== the switch\n{json.dumps(state)}\n")
        print(f"  diagnosis: {report}", flush=True)

    def trace(self, message: str) -> None:
        """A line of what the bench did, with the time, in ``bench.log`` beside the processes' logs."""
        with (self.logs / "bench.log").open("a") as out:
            out.write(f"{time.strftime('%H:%M:%S')}.{int(time.time() * 1000) % 1000:03d} {message}\n")

    async def history_check(self, run: Run) -> None:
        """Every call the switch showed an agent is in that agent's history, and closed (the calls are
        all over once a run is cleaned up)."""
        assert self.db is not None
        for spec in AGENTS:
            ids = sorted(run.seen[spec.user])
            if not ids:
                continue
            rows = await (
                await self.db.execute(
                    "SELECT r.call_id, r.ended_at IS NOT NULL FROM calls_callrecord r "
                    "JOIN calls_agentlogin l ON l.id = r.login_id "
                    "WHERE l.username = %s AND r.call_id = ANY(%s)",
                    (spec.api_login, ids),
                )
            ).fetchall()
            closed = {call_id: ended for call_id, ended in rows}
            missing = [i for i in ids if i not in closed]
            if missing:
                self.violate(run, "history: missing", f"{spec.user}: {missing}")
            still_open = [i for i in ids if closed.get(i) is False]
            if still_open:
                self.violate(run, "history: not closed", f"{spec.user}: {still_open}")

    # -- actions ----------------------------------------------------------------------------------------

    async def act(self, user: str, path: str, **data: str) -> None:
        """An agent's click; clicked again while refused (a fault in progress), for a while."""
        desk = self.desks[user]
        deadline = max(self.fault_until, time.monotonic()) + ACTION_RETRY_S
        while True:
            status, message = await desk.post(path, **data)
            if status == 204:
                return
            if time.monotonic() > deadline:
                raise StepFailed(f"{user} {path} {data}: {status} {message}")
            await asyncio.sleep(0.3)

    async def on_call(self, user: str, call_id: str, operation: str, **data: str) -> None:
        await self.act(user, f"/calls/{call_id}/", operation=operation, **data)

    # -- scenarios -----------------------------------------------------------------------------------------

    def steps(self, run: Run) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
        """The scenario's steps, each an action of an agent or of the outside world."""
        rng, calls = run.rng, run.calls
        caller = f"+1555{rng.randrange(10**7):07d}"
        a1, a101 = AGENT1, AGENT101

        async def ring(agent: AgentSpec) -> None:
            placed = await self.control_post("/control/calls", {"from": caller, "to": agent.dn})
            calls["first"] = placed["id"]

        async def answer(agent: AgentSpec, name: str = "first") -> None:
            await self.on_call(agent.user, calls[name], "Answer")

        async def consult(kind: str, destination: str) -> None:
            await self.on_call(a1.user, calls["first"], kind, destination=destination)
            parent = calls["first"]
            calls["consult"] = await self.find_call(
                "consult call",
                lambda c: (
                    (c.get("consult") or {}).get("parent") == parent
                    and (c.get("consult") or {}).get("owner") == a1.dn
                ),
            )

        async def complete(operation: str) -> None:
            await self.on_call(a1.user, calls["consult"], operation)

        async def hang_up(agent: AgentSpec, name: str) -> None:
            await self.on_call(agent.user, calls[name], "Hangup")

        async def caller_hangs_up() -> None:
            await self.control_post(f"/control/parties/{caller}/hangup")

        async def dial(destination: str) -> None:
            await self.act(a1.user, "/dial/", destination=destination)
            first = calls["first"]
            calls["second"] = await self.find_call(
                "dialled call", lambda c: c["from"] == a1.dn and c["id"] != first
            )

        async def swap(name: str) -> None:
            await self.on_call(a1.user, calls[name], "SwapCalls")

        scenario = run.scenario
        if scenario == "inbound":
            agent = rng.choice(AGENTS)
            ending = (
                ("caller hangs up", caller_hangs_up)
                if rng.random() < 0.5
                else (f"{agent.user} hangs up", lambda: hang_up(agent, "first"))
            )
            return [
                (f"a call rings {agent.user}", lambda: ring(agent)),
                (f"{agent.user} answers", lambda: answer(agent)),
                ending,
            ]
        if scenario == "consult_transfer":
            return [
                ("a call rings agent1", lambda: ring(a1)),
                ("agent1 answers", lambda: answer(a1)),
                ("agent1 consults 5001", lambda: consult("InitiateTransfer", "5001")),
                ("agent1 completes the transfer", lambda: complete("CompleteTransfer")),
                ("the caller hangs up", caller_hangs_up),
            ]
        if scenario == "hold_dial_swap":
            return [
                ("a call rings agent1", lambda: ring(a1)),
                ("agent1 answers", lambda: answer(a1)),
                ("agent1 holds", lambda: self.on_call(a1.user, calls["first"], "Hold")),
                ("agent1 dials 5001", lambda: dial("5001")),
                ("agent1 swaps to the first call", lambda: swap("second")),
                ("agent1 swaps back", lambda: swap("first")),
                ("agent1 hangs up the second call", lambda: hang_up(a1, "second")),
                ("agent1 hangs up the first call", lambda: hang_up(a1, "first")),
            ]
        if scenario in ("cross_vendor_transfer", "conference"):
            transfer = scenario == "cross_vendor_transfer"
            steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
                ("a call rings agent1", lambda: ring(a1)),
                ("agent1 answers", lambda: answer(a1)),
                (
                    "agent1 consults agent101",
                    lambda: consult("InitiateTransfer" if transfer else "InitiateConference", a101.dn),
                ),
                ("agent101 answers", lambda: answer(a101, "consult")),
            ]
            if transfer:
                steps += [
                    ("agent1 completes the transfer", lambda: complete("CompleteTransfer")),
                    ("agent101 hangs up", lambda: hang_up(a101, "consult")),
                ]
            else:
                steps += [
                    ("agent1 completes the conference", lambda: complete("CompleteConference")),
                    ("agent1 leaves the conference", lambda: hang_up(a1, "first")),
                    ("the caller hangs up", caller_hangs_up),
                ]
            return steps
        raise BenchError(f"unknown scenario {scenario}")

    # -- faults ---------------------------------------------------------------------------------------

    async def owner(self, user: str) -> tuple[str | None, float]:
        """The worker (by the bench's name) holding the agent's session, and when its lease runs out
        (a monotonic time)."""
        assert self.db is not None
        spec = next(a for a in AGENTS if a.user == user)
        row = await (
            await self.db.execute(
                "SELECT worker, extract(epoch from lease_until - now()) FROM calls_agentlogin "
                "WHERE username = %s",
                (spec.api_login,),
            )
        ).fetchone()
        if row is None or not row[0]:
            return None, time.monotonic()
        pid = int(str(row[0]).rsplit(":", 2)[-2])
        left = float(row[1] or 0)
        name = next((n for n in self.workers if self.procs.pid(n) == pid), None)
        return name, time.monotonic() + max(0.0, left)

    async def lease_end(self, pid: int) -> float:
        """When the last lease the (dead) worker process ``pid`` held runs out (a monotonic time)."""
        assert self.db is not None
        row = await (
            await self.db.execute(
                "SELECT max(extract(epoch from lease_until - now())) FROM calls_agentlogin "
                "WHERE worker LIKE %s",
                (f"%:{pid}:%",),
            )
        ).fetchone()
        left = float(row[0]) if row and row[0] is not None else 0.0
        return time.monotonic() + max(0.0, left)

    async def inject(self, run: Run, step: Callable[[], Awaitable[None]] | None) -> float:
        """Starts the fault, runs the step during it, ends the fault; returns when it ended."""
        fault, now = run.fault, time.monotonic()
        user = run.rng.choice([a.user for a in AGENTS])
        after: Callable[[], Awaitable[None]] | None = None
        if fault == "cometd_drop":
            await self.control_post("/control/faults", {"drop_cometd_sessions": True})
            ends = time.monotonic()
        elif fault == "voice_api_503":
            await self.control_post(
                "/control/faults", {"http_status": OUTAGE_STATUS, "for_ms": OUTAGE_FOR_MS}
            )
            ends = now + OUTAGE_FOR_MS / 1000
        elif fault == "voice_api_slow":
            await self.control_post("/control/faults", {"delay_ms": SLOW_MS, "for_ms": SLOW_FOR_MS})
            ends = now + SLOW_FOR_MS / 1000
        elif fault == "worker_kill":
            name, before = await self.owner(user)
            name = name or run.rng.choice(self.workers)
            pid = self.procs.pid(name)
            self.procs.send_signal(name, signal.SIGKILL).wait()
            # Read after the kill: a renewal committed just before it moves the end by a third of a lease.
            lease_ends = await self.lease_end(pid)
            if lease_ends - before > 0.1:
                self.trace(f"{name} renewed its leases just before the kill: +{lease_ends - before:.2f} s")
            await self.start_worker(name, wait=False)
            after = functools.partial(self.worker_serving, name)
            ends = lease_ends
        elif fault == "worker_takeover":
            name, _ = await self.owner(user)
            name = name or run.rng.choice(self.workers)
            stopped = self.procs.send_signal(name, signal.SIGTERM)
            await asyncio.to_thread(stopped.wait, STOP_TIMEOUT_S)
            ends = time.monotonic()
            self.standby = name
        elif fault in ("socket_drop", "page_reload"):
            await self.desks[user].close_socket()
            desk = self.desks[user]
            after = desk.open_socket if fault == "socket_drop" else desk.load
            ends = 0.0
        elif fault == "redis_restart":
            self.procs.send_signal("redis", signal.SIGTERM).wait()
            down_until = time.monotonic() + REDIS_DOWN_S

            async def restart_redis() -> None:
                await asyncio.sleep(max(0.0, down_until - time.monotonic()))
                await asyncio.to_thread(self.start_redis)

            after = restart_redis
            ends = 0.0
        elif fault == "switch_reset":
            await self.control_post("/control/reset")
            ends = time.monotonic()
        else:
            raise BenchError(f"unknown fault {fault}")
        self.fault_until = max(ends, time.monotonic())
        self.tally.faults[fault] += 1
        try:
            if step is not None and fault != "switch_reset":
                await step()
        finally:
            if after is not None:
                await after()
        if not ends:
            ends = time.monotonic()
        if (wait := ends - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        if fault == "worker_kill":
            ends = max(ends, time.monotonic())
        return ends

    # -- a run ------------------------------------------------------------------------------------------

    async def campaign(self) -> None:
        """Each run's seed drawn from ``--seed``; the fault kinds taken in turn, in an order shuffled
        per round, so every kind is drawn as often as any other (with ``--replay``, the one given)."""
        master = random.Random(self.args.seed)  # noqa: S311 (draws to replay, not secrets)
        replay: list[int] | None = self.args.replay
        count = len(replay) if replay is not None else self.args.runs
        seeds = replay if replay is not None else [master.getrandbits(32) for _ in range(count)]
        kinds: list[str] = []
        if replay is not None and len(self.faults) == count:
            kinds = list(self.faults)
        while len(kinds) < count:
            kinds += master.sample(self.faults, len(self.faults))
        for index, (seed, fault) in enumerate(zip(seeds, kinds, strict=False), 1):
            rng = random.Random(seed)  # noqa: S311 (draws to replay, not secrets)
            scenario = rng.choice(self.args.scenarios)
            run = Run(index, seed, scenario, fault, 0, rng)
            steps = self.steps(run)
            run.fault_step = rng.randrange(len(steps) + 1)
            self.tally.runs += 1
            self.tally.scenarios[scenario] += 1
            try:
                async with asyncio.timeout(RUN_TIMEOUT_S):
                    await self.play(run, steps)
            except StepFailed as exc:
                if not run.violated:
                    self.violate(run, "step failed", str(exc))
            except TimeoutError:
                self.violate(run, "run timed out", f"longer than {RUN_TIMEOUT_S:.0f} s")
            except (aiohttp.ClientError, httpx.HTTPError, OSError, psycopg.Error) as exc:
                self.violate(run, "step failed", f"{type(exc).__name__}: {exc}")
            await self.clean_up(run)
            if index % 10 == 0 or index == len(seeds):
                print(f"run {index}/{len(seeds)}: {len(self.tally.violations)} violations so far", flush=True)

    async def play(self, run: Run, steps: list[tuple[str, Callable[[], Awaitable[None]]]]) -> None:
        """Each step, then the screens must equal the switch; the fault's step runs during the fault,
        and the recovery from it is measured from the fault's end."""
        self.fault_until = 0.0
        for index in range(len(steps) + 1):
            step = steps[index][1] if index < len(steps) else None
            self.trace(f"run {run.index} step {index}: {steps[index][0] if step else 'the end'}")
            if index == run.fault_step:
                self.trace(f"run {run.index}: {run.fault}")
                ended = await self.inject(run, step)
                await self.settle(run, ended, "recovery", run.fault)
                await self.after_fault(run)
                self.fault_until = 0.0
                if run.fault == "switch_reset":
                    return
            elif step is not None:
                await step()
                await self.settle(run, time.monotonic(), "stale after a step")

    async def after_fault(self, run: Run) -> None:
        """The stopped worker comes back as the standby; nothing else needs undoing."""
        if run.fault == "worker_takeover":
            await self.start_worker(self.standby)

    async def supervise(self) -> None:
        """What a process supervisor does in production (systemd's ``Restart=always``): a component
        that exits by itself (a worker whose Redis went away, say) is started again half a second later."""
        while True:
            await asyncio.sleep(0.1)
            for name, code in self.procs.exited().items():
                self.procs.accept_exit(name)
                self.tally.restarts[f"{name.rsplit('-', 1)[0]} exited {code}"] += 1
                await asyncio.sleep(0.5)
                if name == "redis":
                    await asyncio.to_thread(self.start_redis)
                else:
                    self.procs.respawn(name)

    async def reopen(self, desk: Desk, *, only_if_closed: bool = False) -> None:
        """The page loaded again (the agent presses reload), as often as it takes, for a while."""
        deadline = time.monotonic() + CLEANUP_S
        while not only_if_closed or desk.socket is None or desk.socket.closed:
            try:
                await desk.load()
                return
            except (StepFailed, aiohttp.ClientError, OSError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)

    async def clean_up(self, run: Run) -> None:
        """Every call hung up, every worker serving, every agent logged in; the screens equal the
        switch; then the history of the run's calls is checked."""
        self.fault_until = 0.0
        self.trace(f"run {run.index}: clean up")
        try:
            async with asyncio.timeout(CLEANUP_S * 3):
                if self.private_redis and not redis_answers(self.redis_url):
                    await asyncio.to_thread(self.start_redis)
                for name in self.workers:
                    if not self.procs.serving(name):
                        await self.worker_serving(name)
                for _ in range(5):
                    state = await self.switch_state()
                    if not state["calls"]:
                        break
                    for call in state["calls"]:
                        for party in call["parties"]:
                            await self.control.post(f"/control/parties/{party['number']}/hangup")
                for desk in self.desks.values():
                    # After a violation the agent reloads the page, so one run's harm stays its own.
                    await self.reopen(desk, only_if_closed=not run.violated)
                await self.log_agents_in(deadline=time.monotonic() + CLEANUP_S)
                found = await self.converge(time.monotonic() + CLEANUP_S, run)
                if found:
                    self.violate(run, "cleanup: screens never matched", str(found))
                    for desk in self.desks.values():
                        await self.reopen(desk)
                    if await self.converge(time.monotonic() + CLEANUP_S, run):
                        raise StepFailed("the screens did not match the switch after reloading the pages")
        except (StepFailed, TimeoutError, aiohttp.ClientError, httpx.HTTPError) as exc:
            self.violate(run, "cleanup failed", f"{type(exc).__name__}: {exc}")
        for desk in self.desks.values():
            if desk.page.duplicates_seen:
                self.violate(run, "duplicate card", f"{desk.spec.user}: {sorted(desk.page.duplicates_seen)}")
                desk.page.duplicates_seen.clear()
            self.tally.dropped_swaps += desk.page.dropped
            desk.page.dropped = 0
            for code in desk.closed_by_server:
                self.tally.socket_closes[code] += 1
                if code >= 4000:
                    self.violate(run, "socket closed: session ended", f"{desk.spec.user}: close code {code}")
            desk.closed_by_server.clear()
        await self.history_check(run)


# -- reporting ------------------------------------------------------------------------------------------


def report(tally: Tally, args: argparse.Namespace, command: str) -> str:
    lines = [
        f"runs: {tally.runs} in {tally.elapsed:.0f} s ({tally.elapsed / max(1, tally.runs):.2f} s per run)"
    ]
    lines.append("scenarios: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.scenarios.items())))
    lines.append("faults by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.faults.items())))
    lines.append(f"violations: {len(tally.violations)}")
    by_kind: dict[str, list[Violation]] = defaultdict(list)
    for violation in tally.violations:
        by_kind[violation.kind].append(violation)
    for kind, found in sorted(by_kind.items()):
        first = found[0]
        lines.append(
            f"  {kind}: {len(found)} (e.g. run {first.run}, {first.scenario}, {first.fault}: "
            f"{first.detail[:300]})"
        )
        faults = Counter(v.fault for v in found)
        lines.append("    by fault: " + ", ".join(f"{k} {v}" for k, v in sorted(faults.items())))
        replays = dict.fromkeys(f"--replay {v.seed} --faults {v.fault}" for v in found)
        lines.append("    reproduce with: " + "; ".join(list(replays)[:8]))
    lines.append(f"recovery time after the fault ends, s (limit {RECOVERY_LIMIT_S:g} s):")
    lines.append(f"  {'fault':<18} {'n':>5} {'p50':>7} {'p99':>7} {'max':>7}")
    for fault, times in sorted(tally.recoveries.items()):
        lines.append(
            f"  {fault:<18} {len(times):>5} {percentile(times, 50):>7.2f} {percentile(times, 99):>7.2f} "
            f"{max(times):>7.2f}"
        )
    restarts = ", ".join(f"{k}: {v}" for k, v in sorted(tally.restarts.items())) or "none"
    lines.append(f"processes that exited by themselves (restarted by the bench as a supervisor): {restarts}")
    closes = ", ".join(f"code {k}: {v}" for k, v in sorted(tally.socket_closes.items())) or "none"
    lines.append(f"live sockets the desk closed (reopened as htmx does): {closes}")
    lines.append(f"card swaps htmx would drop (no such card on the page): {tally.dropped_swaps}")
    lines.append(f"command: {command}")
    return "\n".join(lines)


def result(tally: Tally) -> dict[str, Any]:
    """The figures as one JSON line, for tests and scripts."""
    return {
        "runs": tally.runs,
        "faults": dict(tally.faults),
        "violations": [vars(v) for v in tally.violations],
        "recovery": {
            fault: {"n": len(t), "p50": percentile(t, 50), "p99": percentile(t, 99), "max": max(t)}
            for fault, t in tally.recoveries.items()
        },
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000, help="randomized runs (1000)")
    parser.add_argument("--seed", type=int, default=1, help="seed from which each run's seed is drawn (1)")
    parser.add_argument(
        "--replay",
        type=lambda text: [int(seed) for seed in text.split(",")],
        default=None,
        help="one run, by the reproduction seed printed (with its --faults); or runs one after the "
        "other, by their seeds and faults in the same order (a run that fails after another: "
        "--replay 3145376833,2040906048 --faults switch_reset,voice_api_slow)",
    )
    parser.add_argument(
        "--faults", default=",".join(FAULTS), help=f"the fault kinds to draw from (all: {','.join(FAULTS)})"
    )
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help=f"the scenarios to draw from ({','.join(SCENARIOS)})"
    )
    parser.add_argument("--daphnes", type=int, default=2, choices=(1, 2), help="desk processes (2)")
    parser.add_argument(
        "--lease-seconds", type=float, default=6.0, help="VOICE_SESSION_LEASE_SECONDS of the workers (6)"
    )
    parser.add_argument(
        "--redis-url",
        default="",
        help="a shared Redis database to use (flushed) instead of a private "
        "redis-server; then Redis is never restarted",
    )
    parser.add_argument(
        "--timeout", type=float, default=0.0, help="bound on the whole campaign (60 + 60 s a run)"
    )
    parser.add_argument(
        "--py-spy",
        default="",
        help="path to py-spy: at each violation, the stacks of the workers and daphnes and the "
        "database's busy sessions go to the process logs (off)",
    )
    args = parser.parse_args(argv)
    args.faults = [f for f in args.faults.split(",") if f]
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    if unknown := set(args.faults) - set(FAULTS):
        parser.error(f"unknown faults: {', '.join(sorted(unknown))}")
    if unknown := set(args.scenarios) - set(SCENARIOS):
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    if args.runs < 1 or not args.faults or not args.scenarios or args.lease_seconds < 1:
        parser.error("--runs, --faults, --scenarios and --lease-seconds (at least 1) must be given")
    if not args.timeout:
        args.timeout = 60.0 + 60.0 * (len(args.replay) if args.replay is not None else args.runs)
    return args


def quiet_closed_transports(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Sockets of a desk process the bench just restarted may end noisily; that is the fault, not news."""
    if isinstance(context.get("exception"), (ConnectionResetError, asyncio.CancelledError)):
        return
    loop.default_exception_handler(context)


async def main(argv: list[str]) -> int:
    args = parse_args(argv)
    asyncio.get_running_loop().set_exception_handler(quiet_closed_transports)
    command = shlex.join([sys.executable, *sys.argv])
    print("command:", command)
    print("parameters:", json.dumps({k: v for k, v in vars(args).items()}))
    print(
        f"host: {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()}; loopback only"
    )
    campaign = Campaign(args)
    try:
        async with asyncio.timeout(args.timeout):
            tally = await campaign.run()
    except (BenchError, TimeoutError) as exc:
        reason = str(exc) or f"the campaign took longer than --timeout {args.timeout:g} s"
        print(f"\nFAILED: {reason}\n{campaign.procs.tails()}", file=sys.stderr)
        return 1
    except Exception:
        traceback.print_exc()
        print(f"\nFAILED unexpectedly\n{campaign.procs.tails()}", file=sys.stderr)
        return 1
    print()
    print(report(tally, args, command))
    print(f"process logs: {campaign.logs}")
    print("FAULTS-RESULT " + json.dumps(result(tally)))
    return 2 if tally.violations else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
