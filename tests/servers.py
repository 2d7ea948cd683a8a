"""Servers the tests start as processes on loopback: a free port, running until they answer, stopping."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx
import pytest

from deploy.processes import drop_database
from deploy.processes import free_port as free_port  # the tests' ports come from here too

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def serving(
    name: str,
    command: list[str],
    ready_url: str,
    *,
    timeout: float,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    any_answer: bool = False,
) -> Iterator[subprocess.Popen[bytes]]:
    """Runs ``command`` in the project folder until the block ends, from when ``ready_url`` answers 200
    (with ``any_answer``, answers at all). Its output goes to ``log``, or to a file of its own; the
    test fails with that output when the server exits or does not answer within ``timeout`` s."""
    with open(log, "w+b") if log else tempfile.TemporaryFile() as output:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
        try:
            _wait_until_up(name, process, output, ready_url, timeout, any_answer)
            yield process
        finally:
            stop_process(process)


def _wait_until_up(
    name: str, process: subprocess.Popen[bytes], output: IO[bytes], url: str, timeout: float, any_answer: bool
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            status = httpx.get(url, timeout=1).status_code
        except httpx.TransportError:
            status = None
        if status == 200 or (any_answer and status is not None):
            return
        time.sleep(0.1)
    output.seek(0)
    log = output.read().decode(errors="replace")
    state = f"exited with {process.returncode}" if process.poll() is not None else "did not answer"
    pytest.fail(f"{name} {state} within {timeout:.0f} s:\n{log}")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate a server the tests started; kill it if it does not stop within 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def pytest_on_postgresql(
    module: str, postgres_url: str, *, flag: str, timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run one test module again in a subprocess on a fresh PostgreSQL database, with ``flag`` set so
    the module knows which run it is. pytest-django creates the test database and drops it at the end,
    unless a connection of the run still holds it then: it is dropped here once the run has exited,
    whatever holds it."""
    database = f"switchboard_{Path(module).stem}_{secrets.token_hex(4)}"
    env = {**os.environ, "DATABASE_URL": f"{postgres_url.rsplit('/', 1)[0]}/{database}", flag: "1"}
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(Path(module).relative_to(ROOT)),
        "-q",
        "-p",
        "no:cacheprovider",
    ]
    try:
        return subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    finally:
        drop_database(postgres_url, f"test_{database}")


def passes_on_postgresql(module: str, postgres_url: str, *, flag: str, timeout: float) -> str:
    """``pytest_on_postgresql``, failing with the run's output unless every test of it passed;
    the run's output."""
    result = pytest_on_postgresql(module, postgres_url, flag=flag, timeout=timeout)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "passed" in result.stdout, result.stdout[-6000:]
    return result.stdout
