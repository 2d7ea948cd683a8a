"""Logs a log pipeline can parse: with LOG_FORMAT=json every record is one JSON object on one line,
with the time, level, logger, message and the structured fields the code passed in ``extra``."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from desktop.logs import JsonFormatter

ROOT = Path(__file__).resolve().parent.parent


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    return logging.getLogger("calls.worker").makeRecord(
        "calls.worker", logging.WARNING, __file__, 1, message, args, None, extra=extra
    )


def test_a_record_is_one_json_object_with_the_fields_passed_in_extra() -> None:
    line = JsonFormatter().format(record("session %s lost", "agent1", login=7, reasons=["timeout"]))

    entry = json.loads(line)
    assert entry["message"] == "session agent1 lost"
    assert (entry["level"], entry["logger"]) == ("WARNING", "calls.worker")
    assert entry["time"].endswith("+00:00") and "T" in entry["time"]
    assert (entry["login"], entry["reasons"]) == (7, ["timeout"])
    assert isinstance(entry["process"], int)


def test_objects_in_extra_are_left_out_rather_than_written_as_text() -> None:
    class Request:
        def __str__(self) -> str:
            return "GET /?q=whatever the client sent"

    entry = json.loads(JsonFormatter().format(record("Not Found", request=Request(), status_code=404)))

    assert "request" not in entry
    assert entry["status_code"] == 404


def test_a_failure_and_a_message_with_newlines_stay_on_one_line() -> None:
    try:
        raise ValueError("broken\nacross lines")
    except ValueError:
        failed = logging.getLogger("calls").makeRecord(
            "calls", logging.ERROR, __file__, 1, "first\nsecond", (), sys.exc_info()
        )

    line = JsonFormatter().format(failed)

    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "first\nsecond"
    assert "ValueError: broken" in entry["exception"]


def run_logging(log_format: str) -> subprocess.CompletedProcess[str]:
    """A desk process that logs one warning with a structured field, with LOG_FORMAT as given."""
    script = (
        "import logging; logging.getLogger('calls.worker').warning('lost %s', 'agent1', extra={'login': 3})"
    )
    env = {**os.environ, "LOG_FORMAT": log_format}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(  # noqa: S603 (our own interpreter and arguments)
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_log_format_json_makes_the_desks_log_lines_parse() -> None:
    done = run_logging("json")

    assert done.returncode == 0, done.stderr
    entries = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    assert [(e["logger"], e["message"], e["login"]) for e in entries] == [("calls.worker", "lost agent1", 3)]


def test_an_unknown_log_format_is_refused_by_name() -> None:
    env = {**os.environ, "LOG_FORMAT": "xml"}
    done = subprocess.run(  # noqa: S603 (our own interpreter and arguments)
        [sys.executable, "-c", "import desktop.settings"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode != 0
    assert "LOG_FORMAT must be text or json" in done.stderr
