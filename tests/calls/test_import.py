"""Bulk import of agent logins from CSV: the command and the admin page share one importer and report
each row as created, updated, unchanged or rejected with its reason."""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client

from calls.models import AgentLogin, AuditEntry, VoiceServer

User = get_user_model()
pytestmark = pytest.mark.django_db

HEADER = "username,voice_username,password,dn,place,server,email\n"


@pytest.fixture
def servers() -> tuple[VoiceServer, VoiceServer]:
    return (
        VoiceServer.objects.create(name="Site A", base_url="http://a.example.test"),
        VoiceServer.objects.create(name="Site B", base_url="http://b.example.test"),
    )


@pytest.fixture
def existing(servers: tuple[VoiceServer, VoiceServer]) -> AgentLogin:
    user = User.objects.create_user("ann", password="ann-desk-password", email="ann@old.example")
    return AgentLogin.objects.create(
        user=user, server=servers[0], username="ann", password="Old-Voice-1", dn="5001"
    )


def run(tmp_path: Path, text: str, *args: str) -> tuple[str, int]:
    path = tmp_path / "agents.csv"
    path.write_text(text, encoding="utf-8")
    out = StringIO()
    try:
        call_command("import_agent_logins", str(path), *args, stdout=out)
    except CommandError as exc:
        return out.getvalue() + f"\nCommandError: {exc}", exc.returncode
    return out.getvalue(), 0


MIXED = (
    HEADER
    + "bob,bob.v,Secret-Bob-1,5002,P2,,bob@example.com\n"
    + "ann,ann.v,New-Voice-2,5011,P1,Site B,\n"
    + "carl,carl.v,,5003,P3,,\n"
    + "dora,dora.v,Secret-Dora-4,50-03,P4,Site Z,\n"
    + "bob,bob.v,Secret-Bob-1,5002,P2,,\n"
    + "boss,boss.v,Secret-Boss-5,5009,P9,,\n"
)


def test_the_command_creates_updates_and_rejects_rows_with_a_reason_each(
    tmp_path: Path, existing: AgentLogin
) -> None:
    User.objects.create_superuser("boss", password="boss-password", email="boss@example.com")

    out, code = run(tmp_path, MIXED, "--server", "Site A")

    assert code == 2  # some rows were rejected
    assert out.splitlines()[:6] == [
        "line 2: bob: created",
        "line 3: ann: updated",
        "line 4: carl: rejected: password is empty (a new agent login needs one)",
        "line 5: dora: rejected: no voice server named 'Site Z'",
        "line 6: bob: rejected: the same username is on line 2",
        "line 7: boss: rejected: is a staff account: change it in the admin, not by import",
    ]
    assert "1 created, 1 updated, 0 unchanged, 4 rejected" in out
    assert "Secret" not in out and "Voice-2" not in out
    bob = AgentLogin.objects.select_related("user", "server").get(user__username="bob")
    assert (bob.server.name, bob.username, bob.password, bob.dn, bob.place) == (
        "Site A",
        "bob.v",
        "Secret-Bob-1",
        "5002",
        "P2",
    )
    assert bob.user.email == "bob@example.com" and not bob.user.has_usable_password()
    ann = AgentLogin.objects.select_related("server", "user").get(pk=existing.pk)
    assert (ann.server.name, ann.username, ann.password, ann.dn) == ("Site B", "ann.v", "New-Voice-2", "5011")
    assert ann.user.check_password("ann-desk-password")  # the desk password is not the import's business
    assert not User.objects.filter(username__in=["carl", "dora"]).exists()
    assert User.objects.get(username="boss").email == "boss@example.com"
    assert AuditEntry.objects.get(action="ImportAgentLogins").message.startswith("1 created, 1 updated")


def test_a_dry_run_reports_the_same_and_writes_nothing(tmp_path: Path, existing: AgentLogin) -> None:
    users, logins = User.objects.count(), list(AgentLogin.objects.values())

    out, code = run(tmp_path, MIXED, "--server", "Site A", "--dry-run")

    assert "line 2: bob: created" in out and "line 3: ann: updated" in out
    assert "(dry run: nothing written)" in out
    assert User.objects.count() == users
    assert list(AgentLogin.objects.values()) == logins
    assert not AuditEntry.objects.filter(action="ImportAgentLogins").exists()


def test_importing_the_same_file_again_changes_nothing(tmp_path: Path, servers: Any) -> None:
    text = HEADER + "eve,eve.v,Secret-Eve-1,5004,P4,Site A,\n"
    run(tmp_path, text)

    out, code = run(tmp_path, text)

    assert (code, out.splitlines()[0]) == (0, "line 2: eve: unchanged")


def test_a_file_without_the_required_columns_is_refused_whole(tmp_path: Path, servers: Any) -> None:
    out, code = run(tmp_path, "username,voice_username,passwrod,dn,place\neve,eve.v,x,5004,P4\n")

    assert code == 1
    assert "missing column(s) password; unknown column(s) passwrod" in out
    assert not User.objects.filter(username="eve").exists()


def test_rows_without_a_server_are_rejected_when_there_are_several(tmp_path: Path, servers: Any) -> None:
    out, _ = run(tmp_path, "username,voice_username,password,dn,place\neve,eve.v,x,5004,P4\n")

    assert "line 2: eve: rejected: no voice server: name one in the server column or with --server" in out


def test_the_admin_imports_an_uploaded_file_and_shows_the_report(servers: Any) -> None:
    boss = User.objects.create_superuser("boss", password="boss-password")
    client = Client()
    client.force_login(boss)
    changelist = client.get("/admin/calls/agentlogin/").content.decode()
    assert 'href="/admin/calls/agentlogin/import/"' in changelist
    upload = SimpleUploadedFile("agents.csv", (HEADER + "fay,fay.v,Secret-Fay-1,5006,P6,,\n").encode())

    page = client.post(
        "/admin/calls/agentlogin/import/", {"file": upload, "server": servers[1].pk, "dry_run": ""}
    ).content.decode()

    assert '<tr data-outcome="created"><td>2</td><td>fay</td><td>created</td>' in page
    assert "Secret-Fay" not in page
    assert AgentLogin.objects.get(user__username="fay").server == servers[1]
    assert AuditEntry.objects.get(action="ImportAgentLogins").username == "boss"


def test_the_admin_import_needs_the_right_to_create_users_too(servers: Any) -> None:
    clerk = User.objects.create_user("clerk", password="clerk-password", is_staff=True)
    clerk.user_permissions.set(
        Permission.objects.filter(codename__in=["add_agentlogin", "change_agentlogin", "view_agentlogin"])
    )
    client = Client()
    client.force_login(clerk)

    assert "/import/" not in client.get("/admin/calls/agentlogin/").content.decode()
    assert client.get("/admin/calls/agentlogin/import/").status_code == 403
