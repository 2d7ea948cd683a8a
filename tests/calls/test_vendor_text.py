"""A vendor's JSON may carry what no database column takes (NUL, lone surrogates, NaN, Infinity,
overlong ids): each vendor module turns it into our objects with only storable text, so a vendor that
sends it cannot stop the session worker. Storing such calls on PostgreSQL is tested in
``tests/security/test_hostile_input.py``, which also runs there."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from calls.vendors.genesys import CALLS_CHANNEL, DEVICES_CHANNEL, parse_call, parse_message
from calls.vendors.huawei import HuaweiBackend
from calls.voice import Agent as AgentIdentity
from calls.voice import (
    AgentState,
    AgentStateChanged,
    Call,
    CallChanged,
    MalformedNotification,
    Resynced,
    Server,
)

NAN, INF = float("nan"), float("inf")


def assert_storable(value: Any) -> None:
    """No NUL, no lone surrogate, no number JSON cannot carry, anywhere in ``value``."""
    text = json.dumps(value, allow_nan=False, default=lambda o: o.__dict__)
    assert "\\u0000" not in text
    text.encode("utf-8")  # a lone surrogate would raise here


def call_message(**call: Any) -> dict[str, Any]:
    return {"messageType": "CallStateChangeMessage", "call": {"id": "c1", "state": "Established", **call}}


def test_genesys_strings_lose_their_nuls_and_attached_data_its_nans() -> None:
    message = call_message(
        callType="Inb\x00ound",
        participants=[{"phoneNumber": "50\x0000"}, "60\x0001", {"digits": "\ud800"}],
        dnis="5005\x00",
        userData={"Acc\x00ount": "7\x00", "score": NAN, "max": INF, "min": -INF, "\x00": "gone", "ok": 1.5},
    )

    event = parse_message(CALLS_CHANNEL, message)

    assert isinstance(event, CallChanged)
    call = event.call
    assert (call.call_type, call.participants, call.dnis) == ("Inbound", ("5000", "6001", "?"), "5005")
    assert call.user_data == {
        "Account": "7",
        "score": "NaN",
        "max": "Infinity",
        "min": "-Infinity",
        "ok": 1.5,
    }
    assert_storable([call.call_type, list(call.participants), call.dnis, call.user_data])


@pytest.mark.parametrize("call_id", ["c\x001", "a/b", "\x01", "x" * 101, ""])
def test_a_genesys_call_id_the_desk_cannot_keep_is_a_malformed_notification(call_id: str) -> None:
    with pytest.raises(MalformedNotification):
        parse_call({"id": call_id, "state": "Ringing"})


def test_a_genesys_parent_id_the_desk_cannot_keep_is_no_parent() -> None:
    call = parse_call({"id": "c2", "state": "Dialing", "parentCallUri": "http://gws/api/v2/me/calls/c\x001"})

    assert call.parent_id is None


def test_a_genesys_agent_state_reason_is_storable_and_bounded() -> None:
    device = {"deviceState": "Active", "userState": {"state": "NotReady", "reason": "Lu\x00nch" + "x" * 100}}

    event = parse_message(DEVICES_CHANNEL, {"messageType": "DeviceStateChangeMessage", "devices": [device]})

    assert isinstance(event, AgentStateChanged)
    assert event.state.reason == ("Lunch" + "x" * 100)[:64]


@pytest.fixture
def huawei() -> HuaweiBackend:
    backend = HuaweiBackend(Server("http://127.0.0.1:9/huawei"), AgentIdentity("101", "x", dn="6101"))
    backend._signed_in = True
    return backend


def calls_of(events: list[Any]) -> list[Call]:
    return [event.call for event in events if isinstance(event, CallChanged)]


def test_huawei_events_lose_their_nuls(huawei: HuaweiBackend) -> None:
    events = huawei._translate(
        {
            "eventType": "AgentEvent_Ringing",
            "content": {"callid": "c1", "caller": "50\x0000", "called": "6101\x00"},
        }
    )

    [call] = calls_of(events)
    assert (call.id, call.participants, call.dnis) == ("c1", ("5000",), "6101")
    assert_storable([call.id, list(call.participants), call.dnis])


@pytest.mark.parametrize("callid", ["c\x001", NAN, INF, "x" * 101, "a/b"])
def test_a_huawei_event_about_a_call_id_the_desk_cannot_keep_is_skipped(
    huawei: HuaweiBackend, callid: Any
) -> None:
    assert huawei._translate({"eventType": "AgentEvent_Ringing", "content": {"callid": callid}}) == []
    assert huawei.calls == {}


def test_huawei_numbers_that_are_not_finite_are_no_text(huawei: HuaweiBackend) -> None:
    events = huawei._translate(
        {"eventType": "AgentEvent_Ringing", "content": {"callid": "c1", "caller": NAN, "called": INF}}
    )
    reason = huawei._translate({"eventType": "AgentState_SetNotReady_Success", "content": {"reason": NAN}})

    [call] = calls_of(events)
    assert (call.participants, call.dnis) == ((), "")
    assert reason == [AgentStateChanged(AgentState("NotReady", ""))]


async def test_a_huawei_resync_keeps_only_what_the_desk_can_store(
    huawei: HuaweiBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers: dict[str, Any] = {
        "/onlineagent/101/agentstatus": {"agentState": 3},
        "/calldata/101/allcallid": ["c\x001", NAN, "c2", INF, "x" * 200],
        "/calldata/101/holdlist": [{"callid": "c2\x00"}, NAN],
        "/calldata/101/callinfobeforeanswer": {"callid": NAN},
        "/calldata/101/callinfobycallid/c2": {"caller": "50\x0000", "called": INF, "feature": NAN},
    }

    async def answer(method: str, path: str, **kwargs: Any) -> tuple[Any, None]:
        return answers[path], None

    monkeypatch.setattr(huawei, "_request", answer)

    resynced = await huawei.resync()

    assert isinstance(resynced, Resynced)
    [call] = resynced.calls
    assert (call.id, call.state, call.participants) == ("c2", "Established", ("5000",))
    assert_storable([[c.id, list(c.participants), c.dnis, c.call_type] for c in resynced.calls])
    assert not any(isinstance(v, float) and not math.isfinite(v) for v in call.user_data.values())


def test_a_huawei_party_the_desk_did_not_know_leaving_does_not_end_the_call(huawei: HuaweiBackend) -> None:
    """A call rebuilt from a resync names only caller and called: when another party of the
    conference leaves, the call goes on until the gateway says it is over (fault campaign seed
    1973981844, cometd_drop)."""
    huawei._translate({"eventType": "AgentEvent_Talking", "content": {"callid": "1-1", "caller": "5000"}})

    left = huawei._translate(
        {"eventType": "AgentEvent_Customer_Release", "content": {"callid": "1-1", "number": "5005"}}
    )

    assert left == [] and "1-1" in huawei.calls
    ended = huawei._translate({"eventType": "AgentEvent_Call_Release", "content": "1-1"})
    assert [e.call.state for e in ended if isinstance(e, CallChanged)] == ["Released"]
