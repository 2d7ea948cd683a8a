"""A consult link lasts as long as the consultation: once it completes, no call keeps a link to it.

The switch model directly, with two agents logged in and remote parties that answer only when told.
"""

from __future__ import annotations

import pytest

from simulator.switch import CONFERENCE, TRANSFER, CallEvent, CallView, Switch

pytestmark = pytest.mark.asyncio

AGENT1, AGENT2, CUSTOMER = "5005", "5001", "5000"


def switch_with_two_agents() -> tuple[Switch, list[CallView]]:
    switch = Switch(answer_delay_ms=None)
    views: list[CallView] = []
    switch.listeners.append(lambda event: views.append(event.view) if isinstance(event, CallEvent) else None)
    for login in ("agent1", "agent2"):
        switch.login(switch.agents[login])
    return switch, views


def links(switch: Switch) -> dict[str, str]:
    """Every consult link on the switch: call id -> parent call id."""
    return {c["id"]: c["consult"]["parent"] for c in switch.state()["calls"] if c["consult"]}


async def test_a_completed_transfer_leaves_the_transferred_call_unlinked() -> None:
    switch, _ = switch_with_two_agents()
    agent1, agent2 = switch.agents["agent1"], switch.agents["agent2"]
    customer_call = switch.place_call(CUSTOMER, AGENT1)
    switch.answer(agent1, customer_call)
    consult = switch.initiate(agent1, customer_call, AGENT2, TRANSFER, {})
    switch.answer(agent2, consult)
    assert links(switch) == {consult.id: customer_call.id}

    switch.complete_transfer(agent1, consult)

    assert links(switch) == {}
    assert consult.id in switch.calls


async def test_an_agent_conferenced_into_a_call_it_once_transferred_sees_no_parent() -> None:
    """agent1 transfers the customer to agent2, who later consults agent1 and conferences it in: to
    agent1 the conference is an ordinary call, not a consult of the customer call long gone."""
    switch, views = switch_with_two_agents()
    agent1, agent2 = switch.agents["agent1"], switch.agents["agent2"]
    customer_call = switch.place_call(CUSTOMER, AGENT1)
    switch.answer(agent1, customer_call)
    transfer = switch.initiate(agent1, customer_call, AGENT2, TRANSFER, {})
    switch.answer(agent2, transfer)
    switch.complete_transfer(agent1, transfer)

    consult_back = switch.initiate(agent2, transfer, AGENT1, CONFERENCE, {})
    switch.answer(agent1, consult_back)
    views.clear()
    switch.complete_conference(agent2, consult_back)

    agent1_views = [v for v in views if v.dn == AGENT1 and v.call_id == transfer.id]
    assert agent1_views, "agent1 is told it joined the conference"
    assert all(v.parent_id is None and v.call_type != "Consult" for v in agent1_views)
    assert switch.view(agent1, switch.calls[transfer.id]).parent_id is None
    assert links(switch) == {}


async def test_a_completed_conference_leaves_no_link_to_the_consult_call() -> None:
    switch, _ = switch_with_two_agents()
    agent1, agent2 = switch.agents["agent1"], switch.agents["agent2"]
    customer_call = switch.place_call(CUSTOMER, AGENT1)
    switch.answer(agent1, customer_call)
    consult = switch.initiate(agent1, customer_call, AGENT2, CONFERENCE, {})
    switch.answer(agent2, consult)

    switch.complete_conference(agent1, consult)

    assert consult.id not in switch.calls
    assert links(switch) == {}
    assert switch.view(agent1, customer_call).parent_id is None
