"""Switchboard's processes started on loopback, as ``deploy.local``, the benches and the multi-process tests
run them: each process logging to a file of its own, management commands run to their end, waits until
a process is ready that fail at once when one has ended, an orderly stop (the desk and the workers
first, so that the workers drain against a live simulator); a PostgreSQL database of the stack's own,
and a Redis database index emptied.

Each owner keeps its own failure: ``Processes`` raises the ``error`` it is given (``DeploymentError`` for
the launcher, a bench's own error, ``pytest.fail.Exception`` for a test), with the processes' log tails
in the message unless the owner prints them itself.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import NoReturn

import httpx
import psycopg
import redis
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
REDIS_SERVER = shutil.which("redis-server")
# Ended first, so that the workers drain their sessions against a live simulator.
DESK_PROCESSES = ("daphne", "worker")
SERVING = "Serving channels"  # what runworker writes once it listens on its channel
WORKER = [sys.executable, "manage.py", "runworker", "voice-sessions"]


class ProcessError(Exception):
    """A process could not start, ended, or was not ready in time; the message says which and why."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def voicesim(port: int, answer_delay_ms: int | None = None) -> list[str]:
    """The standalone simulator on ``port`` of loopback."""
    command = [sys.executable, "manage.py", "voicesim", "--host", "127.0.0.1", "--port", str(port)]
    if answer_delay_ms is not None:
        command += ["--answer-delay-ms", str(answer_delay_ms)]
    return command


# Connections the kernel queues for a daphne until it accepts them (Twisted's default is 50): every
# page of a desk process reconnects at once after a restart.
DAPHNE_BACKLOG = 1024


def daphne(port: int, *options: str) -> list[str]:
    """A desk process on ``port`` of loopback, with daphne's ``options`` (``--proxy-headers`` ...)."""
    listen = ["-e", f"tcp:port={port}:interface=127.0.0.1:backlog={DAPHNE_BACKLOG}"]
    return [sys.executable, "-m", "daphne", *options, *listen, "desktop.asgi:application"]


def desk_env(database_url: str, redis_url: str, settings: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment for the stack's processes: the settings module left to ``manage.py``,
    the database and Redis named, a fresh secret key, the simulator off in the desk (it runs on its
    own); then ``settings``."""
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    return {
        **env,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "SIMULATOR_ENABLED": "0",
        **(settings or {}),
    }


def answers(url: str, context: ssl.SSLContext | None = None) -> bool:
    """Whether ``url`` answers 200 within a second."""
    try:
        return httpx.get(url, timeout=1, verify=context or True).status_code == 200
    except httpx.TransportError:
        return False


async def answers_async(url: str) -> bool:
    """Whether ``url`` answers 200 within a second, without holding up the event loop."""
    try:
        async with httpx.AsyncClient(timeout=1) as http:
            return (await http.get(url)).status_code == 200
    except httpx.TransportError:
        return False


def redis_answers(url: str) -> bool:
    """Whether the Redis at ``url`` answers a ping within half a second."""
    client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
    finally:
        client.close()


def flush_redis(url: str) -> None:
    """Empties the Redis database index ``url`` names."""
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


class Database:
    """A PostgreSQL database of its own (``<prefix>_<random>``) beside the maintenance database
    ``server_url`` names: created, and dropped at the end whoever still holds it."""

    def __init__(self, server_url: str, prefix: str) -> None:
        self.server_url = server_url
        self.name = f"{prefix}_{secrets.token_hex(4)}"
        self.url = f"{server_url.rsplit('/', 1)[0]}/{self.name}"
        self.created = False

    def create(self) -> None:
        with psycopg.connect(self.server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        self.created = True

    def drop(self) -> None:
        """Drops the database if it was created; safe to call more than once."""
        if self.created:
            drop_database(self.server_url, self.name)
            self.created = False


def drop_database(server_url: str, name: str) -> None:
    """Drops the database ``name`` beside the maintenance database ``server_url`` names, if it exists,
    whoever still holds it."""
    with psycopg.connect(server_url, autocommit=True) as admin:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        admin.execute(drop.format(sql.Identifier(name)))


class Processes:
    """Processes by name, each started in the project folder with ``env`` and logging to ``logs``: the
    first start of ``name`` to ``<name>.log``, the next ones to ``<name>.2.log`` and on, so a restarted
    process's log is its own. Each runs in a session of its own: Ctrl-C in a terminal reaches the owner
    alone, which stops everything in order.

    A process that ends without being told to is a failure for every wait; ``error`` is raised with
    the reason (and the log tails of every process, and of ``extra_logs``, when ``tails_in_errors``).
    """

    def __init__(
        self,
        env: Mapping[str, str],
        logs: Path,
        *,
        error: Callable[[str], BaseException] = ProcessError,
        tails_in_errors: bool = True,
        stop_timeout: float = 15.0,
        tail_chars: int = 3000,
        extra_logs: Iterable[str] = (),
    ) -> None:
        self.env = dict(env)
        self.logs = logs
        self.logs.mkdir(parents=True, exist_ok=True)
        self.error = error
        self.tails_in_errors = tails_in_errors
        self.stop_timeout = stop_timeout
        self.tail_chars = tail_chars
        self.extra_logs = tuple(extra_logs)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.commands: dict[str, tuple[list[str], dict[str, str]]] = {}
        self.incarnations: Counter[str] = Counter()
        self.expected_exits: set[int] = set()

    # -- starting -----------------------------------------------------------------------------------

    def spawn(
        self, name: str, command: list[str], extra_env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Starts ``command`` as ``name`` (a process already of that name is counted as ended)."""
        if name in self.processes:
            self.expected_exits.add(self.processes[name].pid)
        self.commands[name] = (command, dict(extra_env or {}))
        self.incarnations[name] += 1
        with self.log_path(name).open("wb") as output:
            process = subprocess.Popen(  # noqa: S603 (our own programs and arguments)
                command,
                cwd=ROOT,
                env={**self.env, **(extra_env or {})},
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[name] = process
        return process

    def respawn(self, name: str) -> subprocess.Popen[bytes]:
        """Starts ``name`` again with the command and settings of its last start."""
        command, extra_env = self.commands[name]
        return self.spawn(name, command, extra_env)

    def spawn_redis(self, name: str, port: int, timeout: float = 10.0) -> None:
        """A ``redis-server`` on ``port`` of loopback that keeps nothing on disk (each start is an empty
        Redis), started as ``name``; returns once it answers a ping."""
        if REDIS_SERVER is None:
            self.fail("redis-server is not installed (apt-get install redis-server)")
        command = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1"]
        self.spawn(name, [*command, "--save", "", "--appendonly", "no"])
        url = f"redis://127.0.0.1:{port}/0"
        # Only its own end fails the wait: other processes may be ending for want of Redis meanwhile.
        answering = functools.partial(redis_answers, url)
        self.wait_for(f"{name} to answer", answering, timeout, interval=0.02, watching=[name])

    def manage(self, *args: str, extra_env: Mapping[str, str] | None = None, timeout: float = 120.0) -> str:
        """Runs a management command to its end; its output."""
        done = subprocess.run(  # noqa: S603 (our own interpreter and arguments)
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            output = f"{done.stdout[-self.tail_chars :]}{done.stderr[-self.tail_chars :]}"
            self.fail(f"manage.py {args[0]} failed:\n{output}")
        return done.stdout

    # -- waiting ------------------------------------------------------------------------------------

    def wait_for(
        self,
        what: str,
        ready: Callable[[], bool],
        seconds: float,
        *,
        interval: float = 0.1,
        watching: Iterable[str] | None = None,
    ) -> None:
        """Until ``ready()``; fails when a process (of ``watching``, or any) ends meanwhile, or after
        ``seconds``."""
        deadline = time.monotonic() + seconds
        watched = None if watching is None else set(watching)
        while time.monotonic() < deadline:
            self.check(what, watched)
            if ready():
                return
            time.sleep(interval)
        self.fail(f"waited {seconds:.0f} s for {what}")

    async def wait_until(
        self,
        what: str,
        ready: Callable[[], bool | Awaitable[bool]],
        seconds: float,
        *,
        interval: float = 0.1,
    ) -> None:
        """``wait_for`` on an event loop, for a ``ready`` that is a coroutine function or a cheap check."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.check(what)
            answer = ready()
            if inspect.isawaitable(answer):
                answer = await answer
            if answer:
                return
            await asyncio.sleep(interval)
        self.fail(f"waited {seconds:.0f} s for {what}")

    def serving(self, name: str) -> bool:
        """Whether the worker ``name`` (this start of it) listens on its channel."""
        return SERVING in self.log(name)

    def exited(self) -> dict[str, int]:
        """Processes that ended without being told to: name -> exit code."""
        return {
            name: code
            for name, process in self.processes.items()
            if (code := process.poll()) is not None and process.pid not in self.expected_exits
        }

    def check(self, waiting_for: str = "", names: set[str] | None = None) -> None:
        """Fails when a process (of ``names``, or any) has ended without being told to."""
        exited = {name: code for name, code in self.exited().items() if names is None or name in names}
        if exited:
            ended = ", ".join(f"{name} (exit {code})" for name, code in exited.items())
            self.fail(f"{ended} ended" + (f" while waiting for {waiting_for}" if waiting_for else ""))

    def accept_exit(self, name: str) -> None:
        """Counts the end of ``name`` (this start of it) as expected: its owner restarts it, say."""
        self.expected_exits.add(self.processes[name].pid)

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    # -- logs ---------------------------------------------------------------------------------------

    def log_path(self, name: str) -> Path:
        starts = self.incarnations[name]
        return self.logs / (f"{name}.log" if starts <= 1 else f"{name}.{starts}.log")

    def log(self, name: str) -> str:
        path = self.log_path(name)
        return path.read_text(errors="replace") if path.exists() else ""

    def tails(self) -> str:
        return "\n".join(
            f"--- {name} (last {self.tail_chars} characters) ---\n{self.log(name)[-self.tail_chars :]}"
            for name in [*self.processes, *self.extra_logs]
        )

    def fail(self, reason: str) -> NoReturn:
        raise self.error(f"{reason}:\n{self.tails()}" if self.tails_in_errors else reason)

    # -- stopping -----------------------------------------------------------------------------------

    def send_signal(self, name: str, signum: int) -> subprocess.Popen[bytes]:
        """Sends ``signum`` to ``name``, whose end is then expected; the process, to wait for."""
        process = self.processes[name]
        self.expected_exits.add(process.pid)
        if process.poll() is None:
            process.send_signal(signum)
        return process

    def kill(self, name: str, signum: int = signal.SIGKILL) -> int:
        """Sends ``signum`` to ``name`` and waits until it has ended; its exit code. A process still
        running ``stop_timeout`` seconds later is killed, and that is a failure."""
        process = self.send_signal(name, signum)
        try:
            return process.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            self.fail(f"{name} did not end within {self.stop_timeout:.0f} s of {signal.Signals(signum).name}")

    def end(self, names: Iterable[str] | None = None) -> None:
        """Ends the processes (those of ``names``, or all): the desk processes and the workers first,
        so that the workers drain their sessions against a live simulator, then the rest; each told
        to terminate, and killed if it has not ended ``stop_timeout`` seconds later."""
        chosen = set(self.processes if names is None else names)
        first = [name for name in self.processes if name in chosen and name.startswith(DESK_PROCESSES)]
        rest = [name for name in self.processes if name in chosen and name not in first]
        for group in (first, rest):
            processes = [self.send_signal(name, signal.SIGTERM) for name in group]
            for process in processes:
                try:
                    process.wait(timeout=self.stop_timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
