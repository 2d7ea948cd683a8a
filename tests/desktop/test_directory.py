"""The transfer directory over HTTP: colleagues with their live state, speed dials and recent numbers,
searched by part of a name or number, only on the agent's site, bounded, and safe to hammer."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from calls import fragments
from calls.models import AgentLogin, CallRecord, LiveCall, SpeedDial, VoiceServer
from tests.servers import passes_on_postgresql

# The view reads the database through Channels' database_sync_to_async, which closes the connection
# of a test transaction: each test commits and is flushed instead.
pytestmark = pytest.mark.django_db(transaction=True)
# Set in the run of this module on PostgreSQL (see the last tests).
ON_POSTGRESQL = "SWITCHBOARD_DIRECTORY_ON_POSTGRESQL"

ENTRY = re.compile(
    r'<div class="directory-entry"[^>]*data-kind="(?P<kind>[^"]*)" data-number="(?P<number>[^"]*)" '
    r'data-state="(?P<state>[^"]*)"'
)


@pytest.fixture
def site() -> VoiceServer:
    return VoiceServer.objects.create(name="Site A", base_url="http://gws.example.test")


def agent(
    server: VoiceServer,
    username: str,
    dn: str,
    *,
    name: str = "",
    state: str = "NotReady",
    connection: str = AgentLogin.CONNECTED,
    enabled: bool = True,
) -> AgentLogin:
    first, _, last = name.partition(" ")
    user = get_user_model().objects.create_user(
        username, password=username, first_name=first, last_name=last, email=f"{username}@example.test"
    )
    return AgentLogin.objects.create(
        user=user,
        server=server,
        username=f"voice-{username}",
        password=f"secret-{username}",
        place=f"place-{dn}",
        dn=dn,
        enabled=enabled,
        agent_state=state,
        state_reason="LUNCH" if state == "NotReady" else "",
        connection=connection,
    )


@pytest.fixture
def me(site: VoiceServer) -> AgentLogin:
    return agent(site, "agent1", "5005", name="Ada Lovelace", state="Ready")


@pytest.fixture
def desk(client: Client, me: AgentLogin) -> Client:
    client.force_login(me.user)
    return client


def entries(html: str, kind: str | None = None) -> list[tuple[str, str]]:
    """(number, state) of each option, in order; of one kind when ``kind`` is given."""
    return [
        (match["number"], match["state"])
        for match in ENTRY.finditer(html)
        if kind is None or match["kind"] == kind
    ]


def search(desk: Client, q: str = "", status: int = 200) -> str:
    response = desk.get("/directory/", {"q": q})
    assert response.status_code == status, response.content
    return response.content.decode()


def test_colleagues_are_listed_with_their_live_state_who_can_take_a_call_first(
    desk: Client, site: VoiceServer
) -> None:
    agent(site, "agent2", "5001", name="Grace Hopper", state="Ready")
    agent(site, "agent3", "5002", name="Alan Turing", state="NotReady")
    busy = agent(site, "agent4", "5003", name="Barbara Liskov", state="Ready")
    LiveCall.objects.create(
        login=busy, call_id="C1", state="Established", call_type="Inbound", started_at=timezone.now()
    )
    agent(site, "agent5", "5004", name="Edsger Dijkstra", state="Ready", connection=AgentLogin.OFFLINE)
    agent(site, "agent6", "5006", name="Donald Knuth", state="LoggedOut")
    agent(site, "agent7", "5007", name="Frances Allen", state="AfterCallWork")

    html = search(desk)

    assert entries(html, "colleague") == [
        ("5001", "Ready"),
        ("5002", "NotReady"),
        ("5007", "AfterCallWork"),
        ("5003", "OnCall"),
        ("5006", "LoggedOut"),  # then by name: Donald before Edsger
        ("5004", "LoggedOut"),
    ]
    assert "Grace Hopper" in html and "On a call" in html and "Not ready" in html


def test_a_colleagues_new_state_shows_in_the_next_search(desk: Client, site: VoiceServer) -> None:
    colleague = agent(site, "agent2", "5001", name="Grace Hopper", state="NotReady")
    assert entries(search(desk, "grace"), "colleague") == [("5001", "NotReady")]

    AgentLogin.objects.filter(pk=colleague.pk).update(agent_state="Ready")

    assert entries(search(desk, "grace"), "colleague") == [("5001", "Ready")]


@pytest.mark.parametrize("q", ["hopp", "HOPPER", "grace h", "Grace", "gent2", "5001", "50-01", "500"])
def test_part_of_a_name_a_user_name_or_a_number_finds_the_colleague_in_any_case(
    desk: Client, site: VoiceServer, q: str
) -> None:
    agent(site, "agent2", "5001", name="Grace Hopper")
    agent(site, "zed", "6001", name="Zora Neale")

    assert entries(search(desk, q), "colleague") == [("5001", "NotReady")]


def test_the_agent_and_colleagues_who_cannot_be_called_are_not_listed(
    desk: Client, site: VoiceServer
) -> None:
    agent(site, "disabled", "5010", name="Disabled Login", enabled=False)
    gone = agent(site, "gone", "5011", name="Gone Away")
    get_user_model().objects.filter(pk=gone.user_id).update(is_active=False)
    agent(site, "nodn", "", name="No Number")
    agent(site, "agent2", "5001", name="Grace Hopper")

    html = search(desk)

    assert entries(html, "colleague") == [("5001", "NotReady")]
    assert "Ada Lovelace" not in html


def test_only_colleagues_on_the_agents_voice_server_are_listed(desk: Client, site: VoiceServer) -> None:
    elsewhere = VoiceServer.objects.create(name="Site B", base_url="http://gws-b.example.test")
    agent(site, "agent2", "5001", name="Grace Hopper")
    agent(elsewhere, "remote", "5001", name="Remote Person")

    assert entries(search(desk), "colleague") == [("5001", "NotReady")]
    assert "Remote Person" not in search(desk)


def test_on_the_embedded_simulator_agents_of_both_dialects_are_colleagues(client: Client) -> None:
    genesys = VoiceServer.objects.create(name="sim", base_url="http://127.0.0.1:1/sim/genesys", embedded=True)
    huawei = VoiceServer.objects.create(
        name="sim huawei", dialect="huawei", base_url="http://127.0.0.1:1/sim/huawei", embedded=True
    )
    outside = VoiceServer.objects.create(name="elsewhere", base_url="http://gws.example.test")
    me = agent(genesys, "agent1", "5005")
    agent(huawei, "agent102", "6102", name="Huawei Colleague", state="Ready")
    agent(outside, "outsider", "7001", name="Someone Else")
    client.force_login(me.user)

    assert entries(search(client), "colleague") == [("6102", "Ready")]


def test_only_name_user_name_dn_and_state_leave_the_desk(desk: Client, site: VoiceServer) -> None:
    agent(site, "agent2", "5001", name="Grace Hopper", state="NotReady")

    html = search(desk)

    for secret in ("voice-agent2", "secret-agent2", "place-5001", "agent2@example.test", "LUNCH"):
        assert secret not in html
    assert "Grace Hopper" in html and "agent2" in html and "5001" in html


def test_speed_dials_are_offered_in_the_admins_order_and_found_by_label_or_number(desk: Client) -> None:
    SpeedDial.objects.create(label="Billing queue", number="+15550100000", position=2)
    SpeedDial.objects.create(label="Help desk", number="5099", position=1)
    SpeedDial.objects.create(label="Old desk", number="5098", active=False)

    assert entries(search(desk), "speed-dial") == [("5099", ""), ("+15550100000", "")]
    assert entries(search(desk, "BILL"), "speed-dial") == [("+15550100000", "")]
    assert entries(search(desk, "1555"), "speed-dial") == [("+15550100000", "")]


def test_recent_numbers_are_the_agents_own_most_recent_first_each_once(
    desk: Client, me: AgentLogin, site: VoiceServer
) -> None:
    agent(site, "agent2", "5001", name="Grace Hopper")
    other = agent(site, "agent3", "5002", name="Alan Turing")
    now = timezone.now()

    def record(login: AgentLogin, call_id: str, minutes_ago: int, parties: list[str], direction: str) -> None:
        CallRecord.objects.create(
            login=login,
            call_id=call_id,
            call_type="Inbound",
            direction=direction,
            parties=parties,
            started_at=now - timezone.timedelta(minutes=minutes_ago),
        )

    record(me, "R1", 30, ["+15551230000"], CallRecord.INBOUND)
    record(me, "R2", 20, ["5001"], CallRecord.CONSULT)
    record(me, "R3", 10, ["+15551230000"], CallRecord.INBOUND)
    record(other, "R4", 5, ["+15559999999"], CallRecord.INBOUND)  # someone else's call

    html = search(desk)

    assert entries(html, "recent") == [("+15551230000", ""), ("5001", "")]
    # A recent number that is a colleague's DN is named, and found by the name too.
    assert entries(search(desk, "hopper"), "recent") == [("5001", "")]
    assert entries(search(desk, "+1555"), "recent") == [("+15551230000", "")]


def test_a_search_answers_a_bounded_list_in_a_few_queries_however_many_colleagues(
    desk: Client, site: VoiceServer, django_assert_max_num_queries: Any
) -> None:
    for n in range(30):
        agent(site, f"colleague{n:02}", f"52{n:02}", name=f"Colleague Number{n:02}")

    with django_assert_max_num_queries(12):
        html = search(desk, "colleague")

    assert len(entries(html, "colleague")) == 20
    assert "More colleagues match: type more of the name." in html


def test_a_search_that_matches_nothing_says_so(desk: Client) -> None:
    html = search(desk, "nobody here")

    assert entries(html) == []
    assert "No colleague or number matches “nobody here”." in html


def test_the_directory_needs_a_signed_in_desk_user(client: Client, me: AgentLogin) -> None:
    response = client.get("/directory/", {"q": "a"})

    assert response.status_code == 401
    assert "Your desk session has ended: log in again." in response.content.decode()
    assert entries(response.content.decode()) == []


def test_a_desk_user_without_an_agent_login_is_told_so(client: Client) -> None:
    client.force_login(get_user_model().objects.create_user("clerk", password="clerk"))

    assert "You have no agent login" in search(client, status=403)


@pytest.mark.parametrize(
    ("q", "status", "says"),
    [
        ("a" * 65, 400, "Search with at most 64 characters"),
        ("a" * 5000, 400, "Search with at most 64 characters"),
        ("gra\x00ce", 200, "Grace Hopper"),
        ("\x00\x01\x1f", 200, "Grace Hopper"),  # nothing left to search for: everything
        ("Grâce 🦜 \u202e", 200, "No colleague or number matches"),
        ("%", 200, "No colleague or number matches"),
        ("_", 200, "No colleague or number matches"),
        ("<script>", 200, "No colleague or number matches “&lt;script&gt;”"),
    ],
)
def test_a_hostile_search_gets_a_clear_answer_never_a_500(
    desk: Client, site: VoiceServer, q: str, status: int, says: str
) -> None:
    agent(site, "agent2", "5001", name="Grace Hopper")

    assert says in search(desk, q, status=status)


def test_a_search_with_bytes_that_are_not_utf_8_is_answered(desk: Client) -> None:
    response = desk.get("/directory/?q=%ff%fe%ED%A0%80")

    assert response.status_code == 200


def test_too_many_searches_are_refused_for_a_while(desk: Client, settings: Any) -> None:
    settings.DIRECTORY_RATE_LIMIT = "3/10"
    for _ in range(3):
        search(desk)

    response = desk.get("/directory/")

    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) == 10
    assert "Too many searches at once" in response.content.decode()


def test_every_transfer_and_conference_form_and_the_dial_pad_carry_the_directory(
    desk: Client, me: AgentLogin
) -> None:
    operations = ["InitiateTransfer", "InitiateConference", "SingleStepTransfer", "SingleStepConference"]
    live = LiveCall.objects.create(
        login=me,
        call_id="C1",
        state="Established",
        call_type="Inbound",
        participants=["5000"],
        capabilities=["Hangup", *operations],
        started_at=timezone.now(),
    )

    card = fragments.card(live)
    page = desk.get("/").content.decode()

    for operation in operations:
        form = re.search(rf'<form[^>]*data-operation="{operation}".*?</form>', card, re.S)
        assert form is not None
        listbox = f"call-C1-{operation}-directory"
        assert f'aria-controls="{listbox}"' in form[0] and 'role="combobox"' in form[0]
        assert f'id="{listbox}"' in form[0] and "data-directory " in form[0]
    dial = re.search(r'<form id="dial".*?</form>', page, re.S)
    assert dial is not None
    assert 'aria-controls="dial-directory"' in dial[0] and 'id="dial-directory"' in dial[0]
    assert 'data-directory-url="/directory/"' in dial[0]


@pytest.mark.skipif(not os.environ.get(ON_POSTGRESQL), reason="SQLite folds the case of ASCII letters only")
def test_a_name_with_accents_is_found_in_any_case(desk: Client, site: VoiceServer) -> None:
    agent(site, "agent2", "5001", name="Łucja Żółć")

    assert entries(search(desk, "ŻÓŁ"), "colleague") == [("5001", "NotReady")]
    assert entries(search(desk, "łucja"), "colleague") == [("5001", "NotReady")]


@pytest.mark.skipif(bool(os.environ.get(ON_POSTGRESQL)), reason="this is the PostgreSQL run")
def test_these_tests_pass_on_postgresql(postgres_url: str) -> None:
    output = passes_on_postgresql(__file__, postgres_url, flag=ON_POSTGRESQL, timeout=600)

    assert " 1 skipped" in output  # this test, there
