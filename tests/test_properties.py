"""Properties over every desk view and form, the call-operation parameters and the vendor parsers, for
any input hypothesis can think of (bounded, so the module takes well under a minute):

- no request, anonymous or as an agent, with any text or bytes in any field, path segment or query
  parameter, makes the desk fail: a 5xx is only ever a 503 that says why (the Voice API is down);
- a POST without a CSRF token, or with a wrong one, is refused, whatever it carries;
- a refused action comes back as a 4xx with a message for the agent;
- whatever ``calls.operations.clean`` accepts is within its documented rules;
- the Genesys parsers answer our typed objects or ``MalformedNotification``, never another exception,
  and what they keep is storable; the Huawei backend's event translation never raises.

Every property also runs on PostgreSQL: ``test_the_properties_hold_on_postgresql`` runs this module
again in a fresh interpreter with DATABASE_URL naming a throwaway database (pytest-django creates and
drops its test database), and skips where PostgreSQL is not running.
"""

from __future__ import annotations

import json
import math
import os
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calls.models import AgentLogin, CallRecord, DispositionCode, LiveCall, NotReadyReason, VoiceServer
from calls.operations import (
    DESTINATION,
    DIGITS,
    KEY,
    MAX_VALUE,
    OPERATIONS,
    VALUE_CONTROL_CHARACTERS,
    InvalidParameters,
    clean,
    clean_destination,
)
from calls.vendors.genesys import CALLS_CHANNEL, DEVICES_CHANNEL, parse_call, parse_message
from calls.vendors.huawei import HuaweiBackend
from calls.voice import Agent as AgentIdentity
from calls.voice import AgentStateChanged, Call, CallChanged, MalformedNotification, Server
from tests.servers import passes_on_postgresql

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse  # what the test client answers, typed

ON_POSTGRESQL = "SWITCHBOARD_PROPERTIES_ON_POSTGRESQL"
CALL_ID = "call-1"
# Transactional: the actions' database work runs through Channels' database_sync_to_async, which
# closes the connection of a test transaction (the PostgreSQL run would then fail to reopen it).
pytestmark = pytest.mark.django_db(transaction=True)

# Bounded: each property at most this many inputs, each input at most this long (a shared 2-CPU host).
BOUNDED = settings(
    max_examples=60,
    deadline=3000,
    database=None,  # no example database in the working tree
    derandomize=bool(os.environ.get("CI")),  # CI replays the same inputs; a developer's run explores
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- what a request may carry -----------------------------------------------------------------------

# Values that broke desks before: a NUL, control characters, a forged log or header line, markup,
# something very long, a number that is not one, characters outside the Basic Multilingual Plane.
HOSTILE = [
    "\x00",
    "a\x00b",
    "\x01\x7f",
    "\r\nSet-Cookie: x=1",
    "line\nforged",
    '"><script>alert(1)</script>',
    "../../etc/passwd",
    "9" * 3000,
    "NaN",
    "-1",
    "1e999",
    "\u2028",
    "😀",
    " ",
    "",
]
TEXT = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40),
    st.text(alphabet="0123456789*#+ -()ABCD.", max_size=40),
)
FIELDS = [
    "operation",
    "reason",
    "destination",
    "digits",
    "key",
    "value",
    "participant",
    "disposition",
    "username",
    "password",
    "old_password",
    "new_password1",
    "new_password2",
    "number",
    "date",
    "outcome",
    "page",
    "next",
]
OPERATION_NAMES = [*OPERATIONS, "Login", "Logout", "Ready", "NotReady", "AfterCallWork", "Dial"]
FORM = st.dictionaries(
    st.sampled_from(FIELDS) | st.text(max_size=8), TEXT | st.sampled_from(OPERATION_NAMES), max_size=6
)
# A path segment: the agent's live call, another id, or anything, percent-encoded as a browser would;
# and raw percent escapes that decode to a NUL, a dot-dot or bytes that are not UTF-8.
SEGMENT = st.one_of(
    st.just(CALL_ID),
    st.sampled_from(["%00", "a%00b", "%2e%2e", "%ff%fe", "%0d%0a", "..", "%2F"]),
    TEXT.filter(bool).map(lambda text: quote(text, safe="")),
)
QUERY = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), TEXT, max_size=4)
POSTS = [
    "/calls/{}/",
    "/calls/{}/disposition/",
    "/agent/",
    "/dial/",
    "/accounts/login/",
    "/accounts/logout/",
    "/accounts/password_change/",
    "/admin/login/",
]
GETS = [
    "/",
    "/history/",
    "/healthz",
    "/accounts/login/",
    "/accounts/password_change/",
    "/admin/login/",
    "/calls/{}/",
]
ACTIONS = ["/calls/{}/", "/calls/{}/disposition/", "/agent/", "/dial/"]
BODY_TYPES = [
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "application/json",
    "text/plain",
]


def url(template: str, segment: str, query: dict[str, str]) -> str:
    path = template.format(segment) if "{}" in template else template
    return f"{path}?{urlencode(query)}" if query else path


def refusal_says_why(response: _MonkeyPatchedWSGIResponse) -> bool:
    """A refusal the desk explains: a toast with a message, a page, or the health check's JSON."""
    body = response.content.decode(errors="replace")
    return 'class="toast-message">' in body or "<html" in body or '"status"' in body


def assert_no_failure(response: _MonkeyPatchedWSGIResponse) -> None:
    """The client re-raises any exception a view lets escape; what comes back must be no 500, and a
    503 (the Voice API down, the health check failing) only with its reason."""
    status = response.status_code
    assert status != 500, response.content[:500]
    if status >= 500:
        assert status == 503 and refusal_says_why(response), (status, response.content[:500])


# -- an agent with a live call, on a Voice API nobody answers -------------------------------------------


@pytest.fixture
def agent() -> AgentLogin:
    """An agent with one live call offering every operation; its Voice API is a closed port, so an
    action that passes every check ends in a 503 that says the session is not there."""
    server = VoiceServer.objects.create(name="Nobody", base_url="http://127.0.0.1:9/genesys")
    user = get_user_model().objects.create_user("agent9", password="agent9-password")
    login = AgentLogin.objects.create(
        user=user, server=server, username="agent9", password="x", dn="5009", agent_state="NotReady"
    )
    LiveCall.objects.create(
        login=login,
        call_id=CALL_ID,
        state="Established",
        call_type="Inbound",
        participants=["5000", "5003"],
        capabilities=list(OPERATIONS),
        user_data={"Customer Name": "Ada", "weird\x01key": "x"},
        started_at=timezone.now(),
    )
    CallRecord.objects.create(login=login, call_id=CALL_ID, call_type="Inbound", started_at=timezone.now())
    NotReadyReason.objects.create(code="LUNCH", label="Lunch")
    DispositionCode.objects.create(code="SALE", label="Sale made")
    return login


@pytest.fixture
def clients(agent: AgentLogin) -> dict[str, Client]:
    signed_in = Client()
    signed_in.force_login(agent.user)
    return {"anonymous": Client(), "agent": signed_in}


@pytest.fixture
def csrf_checked(agent: AgentLogin) -> dict[str, Client]:
    signed_in = Client(enforce_csrf_checks=True)
    signed_in.force_login(agent.user)
    return {"anonymous": Client(enforce_csrf_checks=True), "agent": signed_in}


# -- the desk's views --------------------------------------------------------------------------------


@BOUNDED
@given(
    who=st.sampled_from(["anonymous", "agent"]),
    template=st.sampled_from(POSTS),
    segment=SEGMENT,
    query=QUERY,
    form=FORM,
    htmx=st.booleans(),
)
def test_no_post_with_any_form_fails(
    clients: dict[str, Client],
    who: str,
    template: str,
    segment: str,
    query: dict[str, str],
    form: dict[str, str],
    htmx: bool,
) -> None:
    headers = {"HX-Request": "true"} if htmx else {}

    response = clients[who].post(url(template, segment, query), form, headers=headers)

    assert_no_failure(response)


@BOUNDED
@given(
    who=st.sampled_from(["anonymous", "agent"]),
    template=st.sampled_from(POSTS),
    segment=SEGMENT,
    body=st.binary(max_size=300),
    content_type=st.sampled_from(BODY_TYPES),
)
def test_no_post_with_any_bytes_fails(
    clients: dict[str, Client], who: str, template: str, segment: str, body: bytes, content_type: str
) -> None:
    response = clients[who].post(url(template, segment, {}), body, content_type=content_type)

    assert_no_failure(response)


@BOUNDED
@given(
    who=st.sampled_from(["anonymous", "agent"]),
    template=st.sampled_from(GETS),
    segment=SEGMENT,
    query=QUERY,
    raw_query=st.sampled_from(["", "number=%00", "page=%ff", "date=%00&outcome=%0a", "%00=%00", "a=%zz"]),
)
def test_no_page_with_any_query_fails(
    clients: dict[str, Client],
    who: str,
    template: str,
    segment: str,
    query: dict[str, str],
    raw_query: str,
) -> None:
    path = url(template, segment, query)
    if raw_query:
        path += ("&" if "?" in path else "?") + raw_query

    response = clients[who].get(path)

    assert_no_failure(response)


@BOUNDED
@given(
    who=st.sampled_from(["anonymous", "agent"]),
    template=st.sampled_from(POSTS),
    segment=SEGMENT,
    form=FORM,
    token=st.none() | TEXT,
)
def test_a_post_without_the_right_csrf_token_is_refused(
    csrf_checked: dict[str, Client],
    who: str,
    template: str,
    segment: str,
    form: dict[str, str],
    token: str | None,
) -> None:
    """The token may be missing, or anything but the session's own, in the header or in the form."""
    headers = {"HX-Request": "true"}
    if token is not None and token.isascii() and token.isprintable():
        headers["X-CSRFToken"] = token
        form = {**form, "csrfmiddlewaretoken": token}

    response = csrf_checked[who].post(url(template, segment, {}), form, headers=headers)

    # Refused by the CSRF check; or, a path no view answers, not found before any view is reached.
    assert response.status_code in (403, 404), response.content[:300]
    if response.status_code == 404:
        assert "{}" in template


@BOUNDED
@given(
    template=st.sampled_from(ACTIONS),
    segment=SEGMENT,
    operation=st.sampled_from(OPERATION_NAMES) | TEXT,
    form=FORM,
)
def test_a_refused_action_says_why(
    clients: dict[str, Client], template: str, segment: str, operation: str, form: dict[str, str]
) -> None:
    response = clients["agent"].post(
        url(template, segment, {}), {**form, "operation": operation}, headers={"HX-Request": "true"}
    )

    assert_no_failure(response)
    if 400 <= response.status_code < 500 and response.status_code != 404:
        assert 'class="toast-message">' in response.content.decode(), response.content[:300]
    if response.status_code == 404:
        assert "{}" in template  # only a call the agent does not have is not found


# -- the call-operation parameters ------------------------------------------------------------------------

PARAMS = st.dictionaries(
    st.sampled_from(["destination", "digits", "key", "value", "participant"]),
    TEXT | st.sampled_from(["Customer Name", "weird\x01key", "5000", " 5003 ", "+1 (555) 010-99"]),
)


@settings(BOUNDED, max_examples=300)
@given(
    name=st.sampled_from(sorted(OPERATIONS)),
    data=PARAMS,
    user_data=st.dictionaries(TEXT, TEXT, max_size=3),
    participants=st.lists(TEXT, max_size=3),
)
def test_what_clean_accepts_is_within_the_documented_rules(
    name: str, data: dict[str, str], user_data: dict[str, str], participants: list[str]
) -> None:
    live = LiveCall(call_id=CALL_ID, capabilities=[name], user_data=user_data, participants=participants)
    try:
        params = clean(OPERATIONS[name], data, live)
    except InvalidParameters as exc:
        assert str(exc)  # says what to fix
        return

    assert set(params) == set(OPERATIONS[name].params)
    for param, value in params.items():
        assert value, param
        known = (param == "key" and value in user_data) or (param == "participant" and value in participants)
        if not known:
            assert "\x00" not in value and not VALUE_CONTROL_CHARACTERS.search(value), (param, value)
    if "destination" in params:
        assert DESTINATION.fullmatch(params["destination"])
    if "digits" in params:
        assert DIGITS.fullmatch(params["digits"])
    if "key" in params:
        assert params["key"] in user_data or KEY.fullmatch(params["key"])
    if "value" in params:
        assert len(params["value"]) <= MAX_VALUE
    if name == "DeleteUserDataPair":
        assert params["key"] in user_data
    if name == "RemoveParticipantFromConference":
        assert params["participant"] in participants


@settings(BOUNDED, max_examples=300)
@given(typed=TEXT)
def test_a_destination_accepted_is_dialable(typed: str) -> None:
    try:
        number = clean_destination(typed)
    except InvalidParameters:
        return
    assert DESTINATION.fullmatch(number)


# -- the vendor parsers ----------------------------------------------------------------------------------

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
    st.text(max_size=10),  # lone surrogates too: a vendor's JSON may carry them escaped
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def field_or_junk(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field as the vendor sends it, or anything else in its place."""
    return st.one_of(good, JSON)


GENESYS_CALL = st.fixed_dictionaries(
    {},
    optional={
        "id": field_or_junk(st.sampled_from(["c1", "c2", "a/b", "c\x00", "x" * 200])),
        "state": field_or_junk(st.sampled_from(["Ringing", "Dialing", "Established", "Held", "Released"])),
        "callType": field_or_junk(st.sampled_from(["Inbound", "Internal", "Consult", "x" * 40])),
        "participants": field_or_junk(
            st.lists(st.fixed_dictionaries({}, optional={"phoneNumber": JSON, "digits": JSON}) | JSON)
        ),
        "capabilities": field_or_junk(st.lists(st.sampled_from(sorted(OPERATIONS)) | TEXT)),
        "userData": field_or_junk(st.dictionaries(TEXT, JSON)),
        "parentCallUri": field_or_junk(st.sampled_from(["http://x/me/calls/c1", "/", "c\x00", ""])),
        "duration": field_or_junk(st.sampled_from(["12", "-3", "١٢", "9" * 40])),
        "mute": field_or_junk(st.sampled_from(["On", "Off"])),
        "dnis": JSON,
    },
)
GENESYS_MESSAGE = st.fixed_dictionaries(
    {},
    optional={
        "messageType": field_or_junk(st.sampled_from(["CallStateChangeMessage", "DeviceStateChangeMessage"])),
        "call": field_or_junk(GENESYS_CALL),
        "extensions": field_or_junk(st.fixed_dictionaries({}, optional={"WrapUpTime": JSON})),
        "devices": field_or_junk(
            st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "deviceState": field_or_junk(st.sampled_from(["Active", "Inactive"])),
                        "userState": field_or_junk(
                            st.fixed_dictionaries(
                                {},
                                optional={
                                    "state": field_or_junk(
                                        st.sampled_from(["Ready", "NotReady", "LoggedOut"])
                                    ),
                                    "workMode": field_or_junk(st.just("AfterCallWork")),
                                    "reason": JSON,
                                    "reasonCode": JSON,
                                },
                            )
                        ),
                    },
                ),
                max_size=2,
            )
        ),
    },
)


def assert_storable(call: Call) -> None:
    """What the desk keeps of a call goes into any database and back out as strict JSON."""
    assert call.id and "\x00" not in call.id and "/" not in call.id
    texts = [call.state, call.call_type, call.dnis, call.parent_id or "", *call.participants]
    for text in texts:
        assert "\x00" not in text
        text.encode("utf-8")  # no lone surrogate
    json.dumps(call.user_data, allow_nan=False).encode("utf-8")


@settings(BOUNDED, max_examples=300)
@given(raw=field_or_junk(GENESYS_CALL))
def test_parse_call_answers_a_call_or_malformed(raw: Any) -> None:
    try:
        call = parse_call(raw)
    except MalformedNotification:
        return
    assert isinstance(call, Call)
    assert_storable(call)


@settings(BOUNDED, max_examples=300)
@given(
    channel=st.sampled_from([CALLS_CHANNEL, DEVICES_CHANNEL, "/meta/connect", ""]) | st.text(max_size=12),
    data=field_or_junk(GENESYS_MESSAGE),
)
def test_parse_message_answers_an_event_none_or_malformed(channel: str, data: Any) -> None:
    try:
        event = parse_message(channel, data)
    except MalformedNotification:
        return
    assert event is None or isinstance(event, CallChanged | AgentStateChanged)
    if isinstance(event, CallChanged):
        assert_storable(event.call)


HUAWEI_EVENT_TYPES = [
    "AgentEvent_Ringing",
    "AgentEvent_Auto_Answer",
    "AgentEvent_Customer_Alerting",
    "AgentEvent_Talking",
    "AgentEvent_Hold",
    "AgentEvent_Conference",
    "AgentEvent_Customer_Release",
    "AgentEvent_Call_Release",
    "AgentEvent_No_Answer",
    "AgentEvent_Consult_Fail",
    "AgentState_Ready",
    "AgentState_SetNotReady_Success",
    "AgentState_SetRest_Success",
    "AgentState_Work",
    "AgentOther_ShutdownService",
]
CALL_IDS = st.sampled_from(["1001", "1002", 1003, "", "a/b", "x\x00"])
HUAWEI_EVENT = st.fixed_dictionaries(
    {},
    optional={
        "eventType": field_or_junk(st.sampled_from(HUAWEI_EVENT_TYPES)),
        "content": field_or_junk(
            CALL_IDS
            | st.fixed_dictionaries(
                {},
                optional={
                    "callid": field_or_junk(CALL_IDS),
                    "callId": field_or_junk(CALL_IDS),
                    "caller": field_or_junk(st.sampled_from(["6101", "101", "5000"])),
                    "called": field_or_junk(st.sampled_from(["6101", "5003"])),
                    "partner": field_or_junk(st.sampled_from(["5000,5003", ",", ""])),
                    "number": field_or_junk(st.sampled_from(["5000", "5003"])),
                    "feature": JSON,
                    "otherPhone": JSON,
                    "otherPhoneWorkno": JSON,
                    "reason": JSON,
                },
            )
        ),
    },
)


@settings(BOUNDED, max_examples=200)
@given(events=st.lists(HUAWEI_EVENT, max_size=8))
def test_the_huawei_event_translation_never_raises(events: list[dict[str, Any]]) -> None:
    """A sequence, so the state machine meets events about calls it already knows."""
    backend = HuaweiBackend(Server("http://127.0.0.1:9/huawei"), AgentIdentity("101", "agent101", dn="6101"))
    for raw in events:
        for event in backend._translate(raw):
            assert isinstance(event, CallChanged | AgentStateChanged)
            if isinstance(event, CallChanged):
                assert_storable(event.call)
                assert math.isfinite(event.call.duration)


# -- the same on PostgreSQL ---------------------------------------------------------------------------------


@pytest.mark.skipif(bool(os.environ.get(ON_POSTGRESQL)), reason="this is the PostgreSQL run")
def test_the_properties_hold_on_postgresql(postgres_url: str) -> None:
    assert connection.vendor == "sqlite"  # this run; the one below is PostgreSQL's
    passes_on_postgresql(__file__, postgres_url, flag=ON_POSTGRESQL, timeout=600)


@pytest.mark.skipif(not os.environ.get(ON_POSTGRESQL), reason="only in the PostgreSQL run")
def test_the_postgresql_run_is_on_postgresql() -> None:
    assert connection.vendor == "postgresql"
