"""The call operations the desk offers: labels, parameters and their validation.

One table serves the card (which controls to draw for a call's capabilities) and the action
view (what a request may carry), so a button and the check behind it never disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .models import LiveCall

DESTINATION = re.compile(r"\+?[0-9*#]{2,32}")
DIGITS = re.compile(r"[0-9*#A-D]{1,64}")
# A key the agent types; a key already on the call (the switch's, which may be spelled otherwise)
# may always be changed or removed: the card offers it.
KEY = re.compile(r"[A-Za-z0-9_.\- ]{1,64}")
MAX_KEY = 64
MAX_VALUE = 1024
# C0 control characters and DEL: no number, key, reason or call id holds one, and PostgreSQL
# refuses NUL in text outright. A value may keep tabs and line breaks (a note of a few lines).
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
VALUE_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# The same rules as the browser's pattern attributes (whole-value match, compiled with the `v`
# flag): a destination may still carry the separators clean_destination drops.
INPUT_PATTERNS = {
    "destination": r"\+?[0-9*#\s\(\)\.\-]{2,40}",
    "digits": r"[0-9*#A-D]{1,64}",
    "key": r"[A-Za-z0-9_.\- ]{1,64}",
}
INPUT_HINTS = {
    "destination": "A phone number: digits, optionally + first, * or #",
    "digits": "Digits 0-9, *, # and A-D",
    "key": "Letters, digits, spaces, '_', '-' or '.'",
}


@dataclass(frozen=True)
class Operation:
    name: str
    label: str
    params: tuple[str, ...] = ()
    shortcut: str = ""
    style: str = ""
    # Where a card draws it: "primary" buttons are always in sight; "transfer", "dtmf" and "data"
    # sit behind their own disclosure; "item" controls are drawn per participant or per pair.
    group: str = "primary"
    hint: str = ""
    verb: str = ""  # a short button text where a row label already names the operation


OPERATIONS = {
    op.name: op
    for op in (
        # Primary buttons in the order a card shows them; Hang up last, set apart.
        Operation("Answer", "Answer", shortcut="a", style="primary"),
        Operation("CompleteTransfer", "Complete transfer", style="primary"),
        Operation("CompleteConference", "Complete conference", style="primary"),
        Operation("SwapCalls", "Swap", shortcut="s"),
        Operation("Hold", "Hold", shortcut="o"),
        Operation("Retrieve", "Retrieve", shortcut="o"),
        Operation("MuteCall", "Mute", shortcut="m"),
        Operation("UnmuteCall", "Unmute", shortcut="m"),
        Operation("Hangup", "Hang up", shortcut="h", style="danger"),
        Operation(
            "InitiateTransfer",
            "Consult transfer",
            ("destination",),
            shortcut="t",
            group="transfer",
            hint="talk first, then complete",
            verb="Consult",
        ),
        Operation(
            "InitiateConference",
            "Consult conference",
            ("destination",),
            shortcut="c",
            group="transfer",
            hint="talk first, then join everyone",
            verb="Consult",
        ),
        Operation(
            "SingleStepTransfer",
            "Blind transfer",
            ("destination",),
            group="transfer",
            hint="hand over now",
            verb="Transfer",
        ),
        Operation(
            "SingleStepConference",
            "Add to conference",
            ("destination",),
            group="transfer",
            hint="join now",
            verb="Add",
        ),
        Operation("SendDtmf", "Send digits", ("digits",), group="dtmf"),
        Operation("AttachUserData", "Attach data", ("key", "value"), group="data", hint="Add a pair"),
        Operation("UpdateUserData", "Update data", ("key", "value"), group="data", hint="Change a value"),
        Operation("DeleteUserData", "Clear attached data", group="data"),
        Operation("DeleteUserDataPair", "Remove", ("key",), group="item"),
        Operation("RemoveParticipantFromConference", "Remove", ("participant",), group="item"),
    )
}
# Controls drawn per pair or per participant rather than once per card.
PER_ITEM = {name for name, op in OPERATIONS.items() if op.group == "item"}

# Keys the desk answers to outside text fields, for the page's "?" overlay. Call keys act on the
# most relevant card (ringing first, else the active one) that offers the operation; static/desk.js
# finds them through each control's data-shortcut.
AGENT_SHORTCUTS = (("r", "Ready"), ("n", "Not ready"), ("w", "After-call work"))
PAGE_SHORTCUTS = (
    ("d", "Dial: go to the dial pad"),
    ("?", "Show these shortcuts"),
    ("Esc", "Close this list"),
)


def shortcuts() -> list[tuple[str, str]]:
    """Every keyboard shortcut with what it does, call operations first."""
    by_key: dict[str, list[str]] = {}
    for op in OPERATIONS.values():
        if op.shortcut:
            label = f"{op.label}: type the number" if op.params else op.label
            by_key.setdefault(op.shortcut, []).append(label)
    order = "ahotcsm"  # the order agents learn them in: the call's life, then the extras
    calls = sorted(by_key.items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order))
    return [(key, " / ".join(labels)) for key, labels in calls] + list(AGENT_SHORTCUTS) + list(PAGE_SHORTCUTS)


class InvalidParameters(ValueError):
    """A request's parameters are not acceptable; the message says what to fix."""


def card_controls(live: LiveCall) -> dict[str, list[Operation]]:
    """The controls a card shows: exactly the operations its capabilities offer that we know, by
    where the card draws them (``primary``, ``transfer``, ``dtmf`` and ``data``)."""
    offered = [OPERATIONS[name] for name in OPERATIONS if live.offers(name) and name not in PER_ITEM]
    return {
        group: [op for op in offered if op.group == group]
        for group in ("primary", "transfer", "dtmf", "data")
    }


def has_control_characters(text: str, *, line_breaks: bool = False) -> bool:
    """Whether ``text`` holds a C0 control character or DEL (tab and line breaks allowed when
    ``line_breaks``): such text is refused, never stored or sent on."""
    pattern = VALUE_CONTROL_CHARACTERS if line_breaks else CONTROL_CHARACTERS
    return pattern.search(text) is not None


def clean_destination(value: str) -> str:
    """A dialable number from what the agent typed (spaces, dashes, dots and brackets dropped)."""
    number = re.sub(r"[\s\-().]", "", value)
    if not DESTINATION.fullmatch(number):
        raise InvalidParameters("Enter a phone number: digits, optionally + first, * or #, 2 to 32 long")
    return number


def _param(data: Any, name: str) -> str:
    value = data.get(name)
    return value if isinstance(value, str) else ""


def clean(operation: Operation, data: Any, live: LiveCall) -> dict[str, str]:
    """Validate an operation's parameters from a form; return them as the Voice API names them."""
    params: dict[str, str] = {}
    for name in operation.params:
        raw = _param(data, name)
        # A key or a party the call already has goes back as the switch spells it.
        known = (name == "key" and raw in live.user_data) or (
            name == "participant" and raw in live.participants
        )
        value = raw if known else raw.strip()
        if not value:
            raise InvalidParameters(f"{name} is required")
        if not known and has_control_characters(value, line_breaks=name == "value"):
            raise InvalidParameters(f"The {name} must not contain control characters")
        params[name] = value
    if "destination" in params:
        params["destination"] = clean_destination(params["destination"])
    if "digits" in params and not DIGITS.fullmatch(params["digits"]):
        raise InvalidParameters("Digits may be 0-9, *, # and A-D, at most 64")
    if "key" in params and params["key"] not in live.user_data and not KEY.fullmatch(params["key"]):
        raise InvalidParameters(f"A key is 1 to {MAX_KEY} letters, digits, spaces, '_', '-' or '.'")
    if "value" in params and len(params["value"]) > MAX_VALUE:
        raise InvalidParameters(f"A value is at most {MAX_VALUE} characters")
    if operation.name == "DeleteUserDataPair" and params["key"] not in live.user_data:
        raise InvalidParameters(f"The call has no attached data named {params['key']}")
    if operation.name == "RemoveParticipantFromConference" and params["participant"] not in live.participants:
        raise InvalidParameters(f"{params['participant']} is not on this call")
    return params
