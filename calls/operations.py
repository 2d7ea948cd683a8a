"""The call operations the desk offers: labels, parameters and their validation.

One table serves the card (which controls to draw for a call's capabilities) and the action
view (what a request may carry), so a button and the check behind it never disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .models import LiveCall

DESTINATION = re.compile(r"^\+?[0-9*#]{2,32}$")
DIGITS = re.compile(r"^[0-9*#A-D]{1,64}$")
KEY = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
MAX_VALUE = 1024


@dataclass(frozen=True)
class Operation:
    name: str
    label: str
    params: tuple[str, ...] = ()
    shortcut: str = ""
    style: str = ""


OPERATIONS = {
    op.name: op
    for op in (
        Operation("Answer", "Answer", shortcut="a", style="primary"),
        Operation("Hangup", "Hang up", shortcut="h", style="danger"),
        Operation("Hold", "Hold", shortcut="o"),
        Operation("Retrieve", "Retrieve", shortcut="o"),
        Operation("SwapCalls", "Swap", shortcut="s"),
        Operation("CompleteTransfer", "Complete transfer", style="primary"),
        Operation("CompleteConference", "Complete conference", style="primary"),
        Operation("MuteCall", "Mute", shortcut="m"),
        Operation("UnmuteCall", "Unmute", shortcut="m"),
        Operation("DeleteUserData", "Clear attached data"),
        Operation("InitiateTransfer", "Consult transfer", ("destination",), shortcut="t"),
        Operation("InitiateConference", "Consult conference", ("destination",), shortcut="c"),
        Operation("SingleStepTransfer", "Blind transfer", ("destination",)),
        Operation("SingleStepConference", "Add to conference", ("destination",)),
        Operation("SendDtmf", "Send digits", ("digits",)),
        Operation("UpdateUserData", "Set data", ("key", "value")),
        Operation("AttachUserData", "Attach data", ("key", "value")),
        Operation("DeleteUserDataPair", "Remove", ("key",)),
        Operation("RemoveParticipantFromConference", "Remove", ("participant",)),
    )
}
# Controls drawn per pair or per participant rather than once per card.
PER_ITEM = {"DeleteUserDataPair", "RemoveParticipantFromConference"}


class InvalidParameters(ValueError):
    """A request's parameters are not acceptable; the message says what to fix."""


def card_controls(live: LiveCall) -> dict[str, list[Operation]]:
    """The controls a card shows: exactly the operations its capabilities offer that we know."""
    offered = [OPERATIONS[name] for name in OPERATIONS if live.offers(name) and name not in PER_ITEM]
    return {
        "buttons": [op for op in offered if not op.params],
        "forms": [op for op in offered if op.params],
    }


def clean_destination(value: str) -> str:
    """A dialable number from what the agent typed (spaces, dashes, dots and brackets dropped)."""
    number = re.sub(r"[\s\-().]", "", value)
    if not DESTINATION.match(number):
        raise InvalidParameters("Enter a phone number: digits, optionally + first, * or #, 2 to 32 long")
    return number


def clean(operation: Operation, data: Any, live: LiveCall) -> dict[str, str]:
    """Validate an operation's parameters from a form; return them as the Voice API names them."""
    params: dict[str, str] = {}
    for name in operation.params:
        value = (data.get(name) or "").strip()
        if not value:
            raise InvalidParameters(f"{name} is required")
        params[name] = value
    if "destination" in params:
        params["destination"] = clean_destination(params["destination"])
    if "digits" in params and not DIGITS.match(params["digits"]):
        raise InvalidParameters("Digits may be 0-9, *, # and A-D, at most 64")
    if "key" in params and not KEY.match(params["key"]):
        raise InvalidParameters("A key is 1 to 64 letters, digits, '_', '-' or '.'")
    if "value" in params and len(params["value"]) > MAX_VALUE:
        raise InvalidParameters(f"A value is at most {MAX_VALUE} characters")
    if operation.name == "DeleteUserDataPair" and params["key"] not in live.user_data:
        raise InvalidParameters(f"The call has no attached data named {params['key']}")
    if operation.name == "RemoveParticipantFromConference" and params["participant"] not in live.participants:
        raise InvalidParameters(f"{params['participant']} is not on this call")
    return params
