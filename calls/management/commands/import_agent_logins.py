"""``python manage.py import_agent_logins FILE.csv [--server NAME] [--dry-run]``: see calls.importing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from calls.importing import REJECTED, ImportRefused, import_agent_logins


class Command(BaseCommand):
    help = (
        "Create or update desk users and their agent logins from a CSV file with the columns "
        "username, voice_username, password, dn, place and optionally server and email."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="the CSV file (UTF-8, header on the first line)")
        parser.add_argument("--server", default="", help="the voice server for rows without a server column")
        parser.add_argument("--dry-run", action="store_true", help="check every row, write nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror}") from exc
        try:
            report = import_agent_logins(
                data,
                server_name=options["server"],
                dry_run=options["dry_run"],
                actor_name="manage.py import_agent_logins",
            )
        except ImportRefused as exc:
            raise CommandError(str(exc)) from exc
        for row in report.rows:
            style = self.style.ERROR if row.outcome == REJECTED else self.style.SUCCESS
            self.stdout.write(style(str(row)))
        self.stdout.write(report.summary)
        if report.count(REJECTED):
            raise CommandError(f"{report.count(REJECTED)} row(s) rejected", returncode=2)
