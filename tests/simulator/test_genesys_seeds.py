"""The Genesys seed scenarios replayed over real HTTP and a real CometD client.

Expectations are transcribed from ``../shared/seeds/`` (000 and 001 read with the OCR
corrections of ``seeds/README.md``): notification order, the fields of every notification and
the exact capability list of every call state.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .genesys_client import GenesysAgent

pytestmark = pytest.mark.asyncio

CALL_FIELDS = {
    "id",
    "state",
    "callUuid",
    "connId",
    "deviceUri",
    "participants",
    "dnis",
    "callType",
    "capabilities",
    "duration",
    "mute",
    "supervisorListeningIn",
    "monitoredUserMuted",
    "monitoring",
    "uri",
    "path",
}
DATA_FIELDS = {"notificationType", "call", "phoneNumber", "extensions", "messageType"}
PARTICIPANT_FIELDS = {"e164Number", "formattedPhoneNumber", "phoneNumber", "digits"}

# Seed 002 (agent on 5005)
RINGING = {"UpdateUserData", "DeleteUserData", "AttachUserData", "DeleteUserDataPair", "Answer"}
ESTABLISHED = {
    "UpdateUserData",
    "SingleStepConference",
    "DeleteUserData",
    "Hangup",
    "SendDtmf",
    "Hold",
    "AttachUserData",
    "SingleStepTransfer",
    "InitiateConference",
    "DeleteUserDataPair",
    "InitiateTransfer",
}
HELD = {
    "UpdateUserData",
    "SingleStepConference",
    "DeleteUserData",
    "Hangup",
    "Retrieve",
    "AttachUserData",
    "SingleStepTransfer",
    "InitiateConference",
    "DeleteUserDataPair",
    "InitiateTransfer",
}
CONSULT_TRANSFER_DIALING = {
    "UpdateUserData",
    "DeleteUserData",
    "Hangup",
    "SwapCalls",
    "CompleteTransfer",
    "SendDtmf",
    "AttachUserData",
    "DeleteUserDataPair",
}
# Seed 003
SECOND_CALL_DIALING = CONSULT_TRANSFER_DIALING
ESTABLISHED_WITH_HELD = ESTABLISHED | {"SwapCalls", "CompleteTransfer", "CompleteConference"}
# Seeds 000 and 001 (agent on 15000)
CONFERENCE = {
    "UpdateUserData",
    "SendDtmf",
    "InitiateConference",
    "Hold",
    "SingleStepTransfer",
    "InitiateTransfer",
    "RemoveParticipantFromConference",
    "AttachUserData",
    "DeleteUserDataPair",
    "SingleStepConference",
    "DeleteUserData",
    "MuteCall",
    "Hangup",
}
DIALING = {"SendDtmf", "DeleteUserData", "AttachUserData", "DeleteUserDataPair", "Hangup", "UpdateUserData"}


def check(
    message: dict[str, Any],
    *,
    notification: str = "StatusChange",
    state: str,
    call_type: str,
    participants: list[str],
    dnis: str,
    capabilities: set[str],
    phone_number: str,
    parent: str | None = None,
    user_data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assert one CometD message against its seed transcription; return the call resource."""
    assert message["channel"] == "/v2/me/calls"
    data = message["data"]
    assert set(data) == DATA_FIELDS
    assert data["messageType"] == "CallStateChangeMessage"
    assert data["notificationType"] == notification
    assert data["phoneNumber"] == phone_number
    assert data["extensions"] == {"WrapUpTime": 0, "BusinessCall": 0}
    call = data["call"]
    expected_fields = set(CALL_FIELDS)
    if parent:
        expected_fields |= {"parentCallUri", "parentCallPath"}
    if user_data:
        expected_fields.add("userData")
    assert set(call) == expected_fields
    assert call["state"] == state
    assert call["callType"] == call_type
    assert [p["phoneNumber"] for p in call["participants"]] == participants
    assert all(set(p) == PARTICIPANT_FIELDS for p in call["participants"])
    assert call["dnis"] == dnis
    assert len(call["capabilities"]) == len(set(call["capabilities"]))
    assert set(call["capabilities"]) == capabilities
    assert call["id"] == call["callUuid"]
    assert call["uri"].endswith(f"/api/v2/me/calls/{call['id']}")
    assert call["path"] == f"/calls/{call['id']}"
    assert "/api/v2/devices/" in call["deviceUri"]
    assert call["mute"] == "Off"
    assert call["duration"].isdigit()
    assert call["supervisorListeningIn"] is False and call["monitoredUserMuted"] is False
    if parent:
        assert call["parentCallUri"].endswith(f"/api/v2/me/calls/{parent}")
        assert call["parentCallPath"] == f"/calls/{parent}"
    if user_data:
        assert call["userData"] == user_data
    return call


async def control(simulator: str, method: str, path: str, body: Any = None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=simulator, timeout=10) as http:
        response = await http.request(method, path, json=body)
    assert response.status_code in (200, 201), response.text
    return response


async def agent_listening(simulator: str, login: str) -> GenesysAgent:
    agent = await GenesysAgent(simulator, login).__aenter__()
    await agent.listen("/v2/me/calls")
    await agent.start_session()
    return agent


async def test_seed_002_two_step_transfer_replays_in_the_documented_order(simulator: str) -> None:
    await control(simulator, "PUT", "/control/settings", {"answer_delay_ms": None})
    agent = await agent_listening(simulator, "agent1")
    try:
        await control(simulator, "POST", "/control/calls", {"from": "5000", "to": "5005"})
        ringing = check(
            await agent.next(),
            state="Ringing",
            call_type="Internal",
            participants=["5000"],
            dnis="5005",
            capabilities=RINGING,
            phone_number="5005",
        )
        call_id = ringing["id"]

        await agent.ok(call_id, "Answer")
        check(
            await agent.next(),
            state="Established",
            call_type="Internal",
            participants=["5000"],
            dnis="5005",
            capabilities=ESTABLISHED,
            phone_number="5005",
        )

        await agent.ok(call_id, "InitiateTransfer", destination={"phoneNumber": "5001"})
        check(
            await agent.next(),
            state="Held",
            call_type="Internal",
            participants=["5000"],
            dnis="5005",
            capabilities=HELD,
            phone_number="5005",
        )
        consult = check(
            await agent.next(),
            state="Dialing",
            call_type="Consult",
            participants=["5001"],
            dnis="5001",
            capabilities=CONSULT_TRANSFER_DIALING,
            phone_number="5005",
            parent=call_id,
        )

        await agent.ok(consult["id"], "CompleteTransfer")
        check(
            await agent.next(),
            state="Released",
            call_type="Internal",
            participants=["5000"],
            dnis="5005",
            capabilities=set(),
            phone_number="5005",
        )
        check(
            await agent.next(),
            state="Released",
            call_type="Consult",
            participants=["5001"],
            dnis="5001",
            capabilities=set(),
            phone_number="5005",
            parent=call_id,
        )
        await agent.no_more()
        assert await agent.calls() == []
        state = (await control(simulator, "GET", "/control/state")).json()
        assert [sorted(p["number"] for p in c["parties"]) for c in state["calls"]] == [["5000", "5001"]]
    finally:
        await agent.__aexit__()


async def test_seed_003_answer_hold_dial_and_swap_replay_in_the_documented_order(simulator: str) -> None:
    await control(simulator, "PUT", "/control/settings", {"answer_delay_ms": None})
    agent = await agent_listening(simulator, "agent1")
    try:
        first = (await control(simulator, "POST", "/control/calls", {"from": "5000", "to": "5005"})).json()[
            "id"
        ]
        check(
            await agent.next(),
            state="Ringing",
            call_type="Internal",
            participants=["5000"],
            dnis="5005",
            capabilities=RINGING,
            phone_number="5005",
        )
        await agent.ok(first, "Answer")
        check(
            await agent.next(),
            state="Established",
            call_type="Internal",
            participants=["5000"],
            dnis="5005",
            capabilities=ESTABLISHED,
            phone_number="5005",
        )
        await agent.ok(first, "Hold")
        check(
            await agent.next(),
            state="Held",
            call_type="Internal",
            participants=["5000"],
            dnis="5005",
            capabilities=HELD,
            phone_number="5005",
        )

        await agent.dial("5001")
        second = check(
            await agent.next(),
            state="Dialing",
            call_type="Internal",
            participants=["5001"],
            dnis="5001",
            capabilities=SECOND_CALL_DIALING,
            phone_number="5005",
        )
        await control(simulator, "POST", "/control/parties/5001/answer")
        check(
            await agent.next(),
            state="Established",
            call_type="Internal",
            participants=["5001"],
            dnis="5001",
            capabilities=ESTABLISHED_WITH_HELD,
            phone_number="5005",
        )

        await agent.ok(second["id"], "SwapCalls", otherCallUri=f"{agent.api}/me/calls/{first}")
        check(
            await agent.next(),
            state="Held",
            call_type="Internal",
            participants=["5001"],
            dnis="5001",
            capabilities=HELD,
            phone_number="5005",
        )
        check(
            await agent.next(),
            state="Established",
            call_type="Internal",
            participants=["5000"],
            dnis="5005",
            capabilities=ESTABLISHED_WITH_HELD,
            phone_number="5005",
        )
        await agent.no_more()
    finally:
        await agent.__aexit__()


async def _established_call_to_15001(agent: GenesysAgent) -> dict[str, Any]:
    await agent.dial("15001")
    check(
        await agent.next(),
        state="Dialing",
        call_type="Internal",
        participants=["15001"],
        dnis="15001",
        capabilities=DIALING,
        phone_number="15000",
    )
    return check(
        await agent.next(),
        state="Established",
        call_type="Internal",
        participants=["15001"],
        dnis="15001",
        capabilities=ESTABLISHED,
        phone_number="15000",
    )


async def test_seed_000_two_step_conference_replays_in_the_documented_order(simulator: str) -> None:
    agent = await agent_listening(simulator, "agent4")
    try:
        call_id = (await _established_call_to_15001(agent))["id"]
        await agent.ok(call_id, "InitiateConference", destination={"phoneNumber": "15002"})
        check(
            await agent.next(),
            state="Held",
            call_type="Internal",
            participants=["15001"],
            dnis="15001",
            capabilities=HELD,
            phone_number="15000",
        )
        consult_dialing = DIALING | {"SwapCalls", "CompleteConference"}
        consult = check(
            await agent.next(),
            state="Dialing",
            call_type="Consult",
            participants=["15002"],
            dnis="15002",
            capabilities=consult_dialing,
            phone_number="15000",
            parent=call_id,
        )
        check(
            await agent.next(),
            state="Established",
            call_type="Consult",
            participants=["15002"],
            dnis="15002",
            capabilities=ESTABLISHED | {"SwapCalls", "CompleteConference"},
            phone_number="15000",
            parent=call_id,
        )

        await agent.ok(consult["id"], "CompleteConference")
        check(
            await agent.next(),
            state="Released",
            call_type="Consult",
            participants=["15002"],
            dnis="15002",
            capabilities=set(),
            phone_number="15000",
            parent=call_id,
        )
        check(
            await agent.next(),
            notification="ParticipantsUpdated",
            state="Established",
            call_type="Internal",
            participants=["15002", "15001"],
            dnis="15001",
            capabilities=CONFERENCE,
            phone_number="15000",
        )
        await agent.no_more()

        await agent.ok(call_id, "RemoveParticipantFromConference", participant="15001")
        check(
            await agent.next(),
            notification="ParticipantsUpdated",
            state="Established",
            call_type="Internal",
            participants=["15002"],
            dnis="15001",
            capabilities=ESTABLISHED,
            phone_number="15000",
        )
    finally:
        await agent.__aexit__()


@pytest.mark.parametrize(
    ("extra", "user_data"),
    [
        ({}, {"FirstConferencePartyDN": "15000"}),
        (
            {"userData": {"AccountNumber": "12345"}},
            {"AccountNumber": "12345", "FirstConferencePartyDN": "15000"},
        ),
    ],
    ids=["without-user-data", "with-user-data"],
)
async def test_seed_001_single_step_conference_replays_as_documented(
    simulator: str, extra: dict[str, Any], user_data: dict[str, str]
) -> None:
    agent = await agent_listening(simulator, "agent4")
    try:
        call_id = (await _established_call_to_15001(agent))["id"]
        await agent.ok(call_id, "SingleStepConference", destination={"phoneNumber": "15002"}, **extra)
        check(
            await agent.next(),
            notification="ParticipantsUpdated",
            state="Established",
            call_type="Internal",
            participants=["15002", "15001"],
            dnis="15001",
            capabilities=CONFERENCE,
            phone_number="15000",
            user_data=user_data,
        )
        await agent.no_more()
    finally:
        await agent.__aexit__()
