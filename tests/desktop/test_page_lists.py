"""The admin's lists on the desk page (Not Ready reasons, disposition codes, speed dials): read once
for every page and tab of a process within ``REFERENCE_SECONDS``, at once after an administrator
changes them in that process, and within ``REFERENCE_SECONDS`` when another process did."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from calls import fragments
from calls.models import AgentLogin, NotReadyReason, SpeedDial, VoiceServer

pytestmark = pytest.mark.django_db


@pytest.fixture
def agent_page(client: Client) -> Client:
    """A desk client signed in as an agent who is Ready, so the bar offers the Not Ready reasons."""
    user = get_user_model().objects.create_user("agent1", password="agent1")
    server = VoiceServer.objects.create(name="sim", base_url="http://127.0.0.1:9/genesys")
    AgentLogin.objects.create(
        user=user, server=server, username="agent1", password="agent1", dn="5005", agent_state="Ready"
    )
    client.force_login(user)
    return client


LIST_TABLES = ('"calls_notreadyreason"', '"calls_dispositioncode"', '"calls_speeddial"')


def page_and_list_reads(client: Client) -> tuple[str, int]:
    """The desk page, and how many of its queries read an admin's list."""
    with CaptureQueriesContext(connection) as queries:
        page = client.get("/").content.decode()
    return page, sum(any(table in query["sql"] for table in LIST_TABLES) for query in queries)


def test_the_pages_that_follow_within_the_reference_time_read_no_list_again(agent_page: Client) -> None:
    NotReadyReason.objects.create(code="LUNCH", label="Lunch")
    SpeedDial.objects.create(label="Billing", number="+15550100000")

    first, first_reads = page_and_list_reads(agent_page)
    following, following_reads = page_and_list_reads(agent_page)

    for page in (first, following):
        assert ">Lunch</option>" in page and 'data-speed-dial="+15550100000"' in page
    assert (first_reads, following_reads) == (3, 0)


def test_lists_an_administrator_changes_in_this_process_show_on_the_next_page_at_once(
    agent_page: Client,
) -> None:
    page_and_list_reads(agent_page)
    NotReadyReason.objects.create(code="TRAINING", label="Training")
    SpeedDial.objects.create(label="Billing", number="+15550100000")

    page, _ = page_and_list_reads(agent_page)

    assert ">Training</option>" in page and 'data-speed-dial="+15550100000"' in page


def test_a_list_another_process_changed_shows_once_the_reference_time_has_passed(
    agent_page: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    NotReadyReason.objects.create(code="LUNCH", label="Lunch")
    page_and_list_reads(agent_page)
    # As another process's change reaches this one: in the database, with no signal here.
    NotReadyReason.objects.filter(code="LUNCH").update(label="Lunch break")

    within, _ = page_and_list_reads(agent_page)
    monkeypatch.setattr(fragments, "REFERENCE_SECONDS", 0.0)
    after, _ = page_and_list_reads(agent_page)

    assert ">Lunch</option>" in within
    assert ">Lunch break</option>" in after
