"""Call cards as pushed to the page: where a new card goes, and the keypad's running record."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from calls import fragments
from calls.models import AgentLogin, DispositionCode, LiveCall, VoiceServer

pytestmark = pytest.mark.django_db

CAPABILITIES = ["Hold", "Hangup", "InitiateTransfer", "SendDtmf", "CompleteTransfer"]


@pytest.fixture
def login() -> AgentLogin:
    server = VoiceServer.objects.create(name="Site A", base_url="http://gws.example.test")
    user = get_user_model().objects.create_user("agent1", password="agent1")
    return AgentLogin.objects.create(
        user=user, server=server, username="agent1", password="agent1", dn="5005"
    )


def live_call(login: AgentLogin, call_id: str, *, parent: str = "", state: str = "Established") -> LiveCall:
    return LiveCall.objects.create(
        login=login,
        call_id=call_id,
        state=state,
        call_type="Consult" if parent else "Inbound",
        parent_call_id=parent,
        participants=["5001" if parent else "5000"],
        capabilities=CAPABILITIES,
        started_at=timezone.now(),
    )


def test_a_new_consult_card_goes_into_the_calls_region_whatever_its_parent(login: AgentLogin) -> None:
    """Inserting "after the parent" loses the card when the parent is not on the page: htmx drops an
    out-of-band swap whose target is missing. The page places consults under their parents itself."""
    consult = live_call(login, "C2", parent="C1-long-gone")

    html = fragments.card_push(consult, created=True)

    assert 'hx-swap-oob="beforeend:#calls"' in html
    assert "afterend" not in html
    assert 'id="call-C2"' in html and 'data-parent="C1-long-gone"' in html


def test_a_new_consult_card_of_a_call_on_the_page_names_its_parent(login: AgentLogin) -> None:
    live_call(login, "C1", state="Held")
    consult = live_call(login, "C2", parent="C1")

    html = fragments.card_push(consult, created=True)

    assert 'hx-swap-oob="beforeend:#calls"' in html
    assert 'data-parent="C1"' in html and "Consult for 5000" in html


def test_a_new_card_replaces_a_copy_already_on_the_page(login: AgentLogin) -> None:
    html = fragments.card_push(live_call(login, "C1"), created=True)

    assert html.index('<div id="call-C1" hx-swap-oob="delete">') < html.index("beforeend:#calls")


def test_a_changed_card_is_swapped_in_place(login: AgentLogin) -> None:
    html = fragments.card_push(live_call(login, "C2", parent="C1"), created=False)

    assert html.startswith('<article id="call-C2"') and 'hx-swap-oob="outerHTML"' in html


def test_the_keypad_sends_each_key_and_has_a_line_for_what_was_sent(login: AgentLogin) -> None:
    html = fragments.card(live_call(login, "C1"))

    assert 'form class="op-form dtmf" data-operation="SendDtmf"' in html
    assert 'data-keypad-for="call-C1-digits"' in html
    assert "data-dtmf-sent" in html


def test_a_desk_with_five_calls_is_read_in_two_queries_whatever_the_number_of_cards(
    login: AgentLogin,
) -> None:
    """The live calls and the codes chosen for them: each once, for the bar and the cards alike. The
    admin's lists are the process's, read at most once per ``REFERENCE_SECONDS`` (``PAGE_LISTS``)."""
    DispositionCode.objects.create(code="sale", label="Sale")
    for number in range(1, 5):
        live_call(login, f"C{number}", state="Held")
    live_call(login, "C5")
    fragments.PAGE_LISTS.current()

    with CaptureQueriesContext(connection) as queries:
        parts = fragments.desk_parts(login, oob=False)

    tables = [query["sql"].split(" FROM ", 1)[1].split()[0].strip('"') for query in queries.captured_queries]
    assert sorted(tables) == ["calls_callrecord", "calls_livecall"]
    assert "Sale" in parts.calls
    assert all(f'id="call-C{number}"' in parts.calls for number in range(1, 6))
    assert 'id="agent-state"' in parts.agent_state and 'id="connection"' in parts.connection
