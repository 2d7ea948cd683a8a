"""The admin's security tools: ending an agent's session, seeing who has one, a read-only audit log;
and the lists agents are offered (speed dials, not-ready reasons)."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.test import Client

from calls.directory import speed_dials
from calls.models import AgentLogin, AuditEntry, NotReadyReason, SpeedDial
from tests.desk import RunningWorker, desk_client, ready_desk

User = get_user_model()
CHANGELIST = "/admin/calls/agentlogin/"


@pytest.fixture
def admin_user(db: Any) -> Any:
    return User.objects.create_superuser("boss", password="boss-password")


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_end_session_stops_the_voice_api_session_and_the_desk_shows_offline(
    simulator: str, agent1: AgentLogin, worker: RunningWorker
) -> None:
    desk = await ready_desk(agent1)
    boss = await sync_to_async(User.objects.create_superuser)("boss", password="boss-password")
    admin = await desk_client(boss)
    live = await admin.get(CHANGELIST, {"live": "yes"})
    assert "agent1" in live.content.decode()

    response = await admin.post(CHANGELIST, {"action": "end_session", "_selected_action": [agent1.pk]})

    assert response.status_code == 302
    await desk.until(r'id="connection"[^>]*data-status="offline"')

    @sync_to_async
    def saved() -> tuple[Any, ...]:
        login = AgentLogin.objects.get(pk=agent1.pk)
        entry = AuditEntry.objects.get(action="EndSession")
        return login.wanted, login.worker, entry.username, entry.detail, entry.result

    assert await saved() == (False, "", "boss", "agent1", "ok")
    not_live = await admin.get(CHANGELIST, {"live": "yes"})
    assert "agent1" not in not_live.content.decode()
    await desk.close()


@pytest.mark.django_db
def test_the_audit_log_can_be_read_and_searched_but_not_written(admin_user: Any) -> None:
    entry = AuditEntry.objects.create(action="Hold", result=AuditEntry.OK, username="agent1", call_id="C-77")
    AuditEntry.objects.create(action="Answer", result=AuditEntry.OK, username="agent2", call_id="C-88")
    client = Client()
    client.force_login(admin_user)
    base = "/admin/calls/auditentry/"

    found = client.get(base, {"q": "C-77"}).content.decode()
    assert "C-77" in found and "C-88" not in found
    assert client.get(base, {"result__exact": "ok"}).status_code == 200
    assert 'name="action"' not in client.get(base).content.decode()  # no bulk actions, no delete
    assert client.get(f"{base}add/").status_code == 403
    assert client.post(f"{base}{entry.pk}/change/", {"message": "edited"}).status_code == 403
    assert client.post(f"{base}{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEntry.objects.get(pk=entry.pk).message == ""


@pytest.mark.django_db
def test_a_speed_dial_takes_only_a_number_the_dial_pad_would_dial(admin_user: Any) -> None:
    client = Client()
    client.force_login(admin_user)
    add = "/admin/calls/speeddial/add/"

    refused = client.post(add, {"label": "Help desk", "number": "call me", "position": 1, "active": "on"})
    accepted = client.post(
        add, {"label": "Help desk", "number": "+1 (555) 010-0000", "position": 1, "active": "on"}
    )

    assert refused.status_code == 200 and "phone number" in refused.content.decode()
    assert accepted.status_code == 302
    assert SpeedDial.objects.get().number == "+15550100000"


@pytest.mark.django_db
def test_speed_dials_are_the_active_ones_in_the_admins_order() -> None:
    SpeedDial.objects.create(label="Supervisor", number="5001", position=2)
    SpeedDial.objects.create(label="Help desk", number="5002", position=1)
    SpeedDial.objects.create(label="Old queue", number="5003", position=0, active=False)

    assert [(d.label, d.number) for d in speed_dials()] == [("Help desk", "5002"), ("Supervisor", "5001")]


@pytest.mark.django_db
def test_not_ready_reasons_and_speed_dials_are_managed_in_the_admin(admin_user: Any) -> None:
    NotReadyReason.objects.create(code="LUNCH", label="Lunch")
    SpeedDial.objects.create(label="Help desk", number="5002")
    client = Client()
    client.force_login(admin_user)

    assert "Lunch" in client.get("/admin/calls/notreadyreason/").content.decode()
    assert "Help desk" in client.get("/admin/calls/speeddial/").content.decode()
