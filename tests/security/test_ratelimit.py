"""Rate limits: a double click reaches the Voice API once, a storm of actions is slowed down (and
stays slowed down however many arrive at once), and password guessing is throttled per username,
whatever the address, and per address, whatever the username."""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth import SESSION_KEY, get_user_model
from django.core.cache import cache
from django.test import AsyncClient, Client

from calls import ratelimit
from calls.models import AgentLogin, AuditEntry
from desktop.security import STORM_MESSAGE
from desktop.settings import caches_from_env
from tests.desk import RunningWorker, card, control, desk_client, ready_desk, switch_calls

User = get_user_model()


@pytest.fixture(autouse=True)
def slow_machine_proof_window(settings: Any) -> None:
    """However slow the machine, the requests of one test fall within one duplicate window."""
    settings.ACTION_DUPLICATE_WINDOW_SECONDS = 30


@sync_to_async
def audited(action: str) -> list[tuple[str, str]]:
    return list(AuditEntry.objects.filter(action=action).order_by("id").values_list("result", "message"))


async def established_call(simulator: str, login: AgentLogin) -> tuple[Any, str]:
    desk = await ready_desk(login)
    call_id = (await control(simulator, "POST", "/control/calls", {"from": "5000", "to": "5005"}))["id"]
    await desk.until(card(call_id, "Ringing"))
    client = await desk_client(login.user)
    assert (await client.post(f"/calls/{call_id}/", {"operation": "Answer"})).status_code == 204
    await desk.until(card(call_id, "Established"))
    return desk, call_id


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_double_click_on_hold_reaches_the_voice_api_once(
    simulator: str, agent1: AgentLogin, worker: RunningWorker
) -> None:
    desk, call_id = await established_call(simulator, agent1)
    client = await desk_client(agent1.user)

    first = await client.post(f"/calls/{call_id}/", {"operation": "Hold"})
    second = await client.post(f"/calls/{call_id}/", {"operation": "Hold"})

    assert (first.status_code, second.status_code) == (204, 204)
    await desk.until(card(call_id, "Held"))
    assert (await switch_calls(simulator))[call_id]["5005"] == "Held"
    assert await audited("Hold") == [("ok", "")]
    await desk.close()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_login_again_after_the_switch_logged_the_agent_out_is_not_taken_for_a_double_click(
    simulator: str, agent1: AgentLogin, worker: RunningWorker
) -> None:
    """The switch restarts just after the agent logged in: the desk shows them logged out, and their
    Login a moment later logs them in again rather than being answered 204 and dropped."""
    desk = await ready_desk(agent1)
    client = await desk_client(agent1.user)
    assert (await client.post("/agent/", {"operation": "Login"})).status_code == 204

    await control(simulator, "POST", "/control/reset")
    await desk.until(r'id="agent-state"[^>]*data-state="LoggedOut"')
    again = await client.post("/agent/", {"operation": "Login"})

    assert again.status_code == 204
    await desk.until(r'id="agent-state"[^>]*data-state="NotReady"')
    agents = (await control(simulator, "GET", "/control/state"))["agents"]
    assert next(a for a in agents if a["login"] == "agent1")["loggedIn"] is True
    await desk.close()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_two_dial_requests_at_once_place_one_call(
    simulator: str, agent1: AgentLogin, worker: RunningWorker
) -> None:
    desk = await ready_desk(agent1)
    client = await desk_client(agent1.user)

    responses = await asyncio.gather(*(client.post("/dial/", {"destination": "5001"}) for _ in range(2)))

    assert [r.status_code for r in responses] == [204, 204]
    await desk.until(r'data-state="Dialing"')
    await asyncio.sleep(0.3)  # time for a second call to show up, were there one
    assert len(await switch_calls(simulator)) == 1
    assert await audited("Dial") == [("ok", "")]
    await desk.close()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_hold_retrieve_hold_in_quick_succession_are_three_actions(
    simulator: str, agent1: AgentLogin, worker: RunningWorker
) -> None:
    desk, call_id = await established_call(simulator, agent1)
    client = await desk_client(agent1.user)

    for operation, state in (("Hold", "Held"), ("Retrieve", "Established"), ("Hold", "Held")):
        assert (await client.post(f"/calls/{call_id}/", {"operation": operation})).status_code == 204
        await desk.until(card(call_id, state))

    assert (await switch_calls(simulator))[call_id]["5005"] == "Held"
    assert await audited("Hold") == [("ok", ""), ("ok", "")]
    await desk.close()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_refused_action_may_be_sent_again_at_once(
    simulator: str, agent1: AgentLogin, worker: RunningWorker
) -> None:
    desk, call_id = await established_call(simulator, agent1)
    client = await desk_client(agent1.user)
    own_dn = {"operation": "InitiateTransfer", "destination": "5005"}

    answers = [await client.post(f"/calls/{call_id}/", own_dn) for _ in range(2)]

    assert [r.status_code for r in answers] == [409, 409]
    assert all("own DN" in r.content.decode() for r in answers)
    assert [result for result, _ in await audited("InitiateTransfer")] == ["refused", "refused"]
    await desk.close()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_storm_of_actions_is_answered_429_and_audited(settings: Any) -> None:
    settings.ACTION_RATE_LIMIT = "3/3600"
    user = await sync_to_async(User.objects.create_user)("agent9")  # no agent login: each is refused 403
    client = await desk_client(user)

    statuses = []
    for operation in ("Ready", "NotReady", "AfterCallWork", "Logout"):
        statuses.append((await client.post("/agent/", {"operation": operation})).status_code)
    storm = await client.post("/dial/", {"destination": "5001"})

    assert statuses == [403, 403, 403, 429]
    assert storm.status_code == 429 and STORM_MESSAGE in storm.content.decode()
    assert storm.headers["Retry-After"] == "3600"
    assert await audited("Logout") == [("refused", STORM_MESSAGE)]
    assert await audited("Dial") == [("refused", STORM_MESSAGE)]


async def actions_at_once(client: Any, count: int, first: int = 0) -> list[int]:
    """``count`` different actions (no two alike: none is a double click), all sent at once."""
    answers = await asyncio.gather(
        *(client.post("/agent/", {"operation": "Ready", "n": str(n)}) for n in range(first, first + count))
    )
    return [answer.status_code for answer in answers]


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_hundred_actions_at_once_against_30_in_10_seconds_admit_30(settings: Any) -> None:
    settings.ACTION_RATE_LIMIT = "30/10"
    user = await sync_to_async(User.objects.create_user)("agent9")  # no agent login: admitted ones get 403
    client = await desk_client(user)

    statuses = await actions_at_once(client, 100)

    assert sorted(statuses) == [403] * 30 + [429] * 70


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_window_edge_does_not_double_the_limit(settings: Any) -> None:
    """A burst late in one fixed window, another early in the next: less than a window apart, so a
    sliding window admits the first burst only, and room comes back a whole window after it."""
    settings.ACTION_RATE_LIMIT = "30/5"
    user = await sync_to_async(User.objects.create_user)("agent9")
    client = await desk_client(user)
    await asyncio.sleep((1.5 - time.time() % 5) % 5)  # 1.5 s into a window of the wall clock
    began = time.monotonic()

    first = await actions_at_once(client, 30)
    admitted_by = time.monotonic()
    await asyncio.sleep(5 - time.time() % 5 + 0.05)  # just into the next one, 3.55 s later
    second = await actions_at_once(client, 30, first=30)

    assert time.monotonic() - began < 5, "too slow a machine for this test's timing"
    assert first == [403] * 30
    assert second == [429] * 30
    await asyncio.sleep(admitted_by + 5.05 - time.monotonic())
    assert await actions_at_once(client, 1, first=60) == [403]


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_limit_holds_across_processes_sharing_redis(settings: Any, redis_url: str) -> None:
    settings.ACTION_RATE_LIMIT = "30/10"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": f"test-storm-{time.monotonic_ns()}",
        }
    }
    user = await sync_to_async(User.objects.create_user)("agent9")
    client = await desk_client(user)

    statuses = await actions_at_once(client, 100)

    assert sorted(statuses) == [403] * 30 + [429] * 70


def log_in(client: Client, username: str, password: str, path: str = "/accounts/login/") -> Any:
    return client.post(path, {"username": username, "password": password})


@pytest.mark.django_db
def test_a_username_is_throttled_from_every_address_with_a_wait_that_doubles(settings: Any) -> None:
    settings.LOGIN_FAILURE_LIMIT = "3/300"
    User.objects.create_user("agent9", password="Correct-Horse-9")
    guesser, agent = Client(), Client(REMOTE_ADDR="10.0.0.7")
    for _ in range(3):
        assert log_in(guesser, "agent9", "guess").status_code == 200

    # The right password, from another address, waits too: the name is throttled, not the pair.
    throttled = log_in(agent, "agent9", "Correct-Horse-9")

    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "1"
    assert "Too many failed sign-ins for this username. Try again in 1 second" in throttled.content.decode()
    assert SESSION_KEY not in agent.session
    assert log_in(Client(REMOTE_ADDR="10.9.9.9"), "AGENT9", "guess").status_code == 429  # not a way round
    assert log_in(Client(), "agent9", "Correct-Horse-9", "/admin/login/").status_code == 429  # the same door

    time.sleep(1.05)
    assert log_in(guesser, "agent9", "guess").status_code == 200  # checked, and wrong: the wait doubles
    assert log_in(agent, "agent9", "Correct-Horse-9").headers["Retry-After"] == "2"
    time.sleep(2.05)
    assert log_in(agent, "agent9", "Correct-Horse-9").status_code == 302  # the real user waited seconds

    refusal = "refused without checking the password: too many failed sign-ins for this username"
    assert list(AuditEntry.objects.order_by("id").values_list("result", "message"))[2:] == [
        ("refused", "wrong username or password; the next attempt must wait 1 s"),
        ("refused", refusal),
        ("refused", refusal),
        ("refused", refusal),
        ("refused", "wrong username or password; the next attempt must wait 2 s"),
        ("refused", refusal),
        ("ok", "password"),
    ]


@pytest.mark.django_db
def test_the_wait_is_at_most_the_limits_seconds(settings: Any) -> None:
    settings.LOGIN_FAILURE_LIMIT = "3/300"
    attempts_key, _ = ratelimit._user_keys("agent9")
    cache.set(attempts_key, 40)  # forty failures, from everywhere

    assert log_in(Client(), "agent9", "guess").status_code == 200
    assert log_in(Client(), "agent9", "guess").headers["Retry-After"] == "300"


@pytest.mark.django_db
def test_guesses_sent_together_are_checked_no_more_than_the_limit_allows(settings: Any) -> None:
    settings.LOGIN_FAILURE_LIMIT = "3/300"

    async def guesses() -> list[int]:
        client = AsyncClient()
        answers = await asyncio.gather(
            *(client.post("/accounts/login/", {"username": "agent9", "password": f"g{i}"}) for i in range(20))
        )
        return [answer.status_code for answer in answers]

    statuses = async_to_sync(guesses)()

    assert sorted(statuses) == [200] * 3 + [429] * 17


@pytest.mark.django_db
def test_an_address_spraying_many_usernames_is_throttled(settings: Any) -> None:
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = "3/300"
    User.objects.create_user("agent9", password="Correct-Horse-9")
    sprayer = Client(REMOTE_ADDR="10.0.0.66")
    for name in ("ada", "bob", "cy"):
        assert log_in(sprayer, name, "Summer2026!").status_code == 200

    throttled = log_in(sprayer, "dee", "Summer2026!")

    assert throttled.status_code == 429
    assert "Too many failed sign-ins from your address" in throttled.content.decode()
    assert log_in(Client(REMOTE_ADDR="10.0.0.7"), "agent9", "Correct-Horse-9").status_code == 302


@pytest.mark.django_db
def test_a_successful_sign_in_clears_the_failures(settings: Any) -> None:
    settings.LOGIN_FAILURE_LIMIT = "3/300"
    User.objects.create_user("agent9", password="Correct-Horse-9")
    for _ in range(2):
        log_in(Client(), "agent9", "guess")
    assert log_in(Client(), "agent9", "Correct-Horse-9").status_code == 302
    for _ in range(2):
        log_in(Client(), "agent9", "guess")

    assert log_in(Client(), "agent9", "Correct-Horse-9").status_code == 302


def connections_received(redis_url: str) -> int:
    """How many connections the Redis server has accepted since it started."""
    import redis

    with redis.Redis.from_url(redis_url) as client:
        return int(client.info("stats")["total_connections_received"])


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_actions_on_the_shared_cache_reuse_its_redis_connections(settings: Any, redis_url: str) -> None:
    """Each request has cache objects of its own (Django keeps them per context, and a server runs each
    request in a fresh one); their Redis connections are the process's, not new ones per request."""
    settings.CACHES = caches_from_env({"REDIS_URL": redis_url})
    settings.CACHES["default"]["KEY_PREFIX"] = f"test-connections-{time.monotonic_ns()}"
    user = await sync_to_async(User.objects.create_user)("agent9")
    client = await desk_client(user)
    await client.post("/agent/", {"operation": "Ready", "n": "warm-up"})
    before = connections_received(redis_url)

    statuses = []
    for n in range(20):
        request = client.post("/agent/", {"operation": "Ready", "n": str(n)})
        statuses.append((await asyncio.create_task(request, context=contextvars.Context())).status_code)

    assert statuses == [403] * 20  # admitted by both counters, then refused: agent9 has no agent login
    assert connections_received(redis_url) - before <= 2  # this test's own INFO, and at most one more


@pytest.fixture(params=["in-memory", "redis"])
def action_cache(request: pytest.FixtureRequest, settings: Any) -> None:
    """The one-process default, and Redis as several desk processes share it (a key prefix of the
    test's own, so nothing another test counted is seen)."""
    settings.ACTION_DUPLICATE_WINDOW_SECONDS = 1.0
    settings.ACTION_RATE_LIMIT = "30/10"
    if request.param == "redis":
        settings.CACHES = caches_from_env({"REDIS_URL": request.getfixturevalue("redis_url")})
        settings.CACHES["default"]["KEY_PREFIX"] = f"test-actions-{time.monotonic_ns()}"


ADMITTED, DUPLICATE, STORM = (
    ratelimit.Admission.ADMITTED,
    ratelimit.Admission.DUPLICATE,
    ratelimit.Admission.STORM,
)


@pytest.mark.asyncio
async def test_a_double_click_is_a_duplicate_and_a_different_action_between_is_not(
    action_cache: None,
) -> None:
    admit = ratelimit.admit_action

    assert [await admit(7, "hold c1"), await admit(7, "hold c1")] == [ADMITTED, DUPLICATE]
    assert await admit(8, "hold c1") == ADMITTED  # another user's
    assert [await admit(7, "retrieve c1"), await admit(7, "hold c1")] == [ADMITTED, ADMITTED]
    assert await admit(7, "hold c1") == DUPLICATE


@pytest.mark.asyncio
async def test_the_same_action_is_new_again_once_the_duplicate_window_has_passed(action_cache: None) -> None:
    assert await ratelimit.admit_action(7, "dial 5001") == ADMITTED
    assert await ratelimit.admit_action(7, "dial 5001") == DUPLICATE  # which does not extend the window

    await asyncio.sleep(1.05)

    assert await ratelimit.admit_action(7, "dial 5001") == ADMITTED


@pytest.mark.asyncio
async def test_of_identical_actions_sent_together_one_is_admitted(action_cache: None) -> None:
    answers = await asyncio.gather(*(ratelimit.admit_action(7, "dial 5001") for _ in range(20)))

    assert sorted(answers, key=lambda a: a.value) == [ADMITTED] + [DUPLICATE] * 19


@pytest.mark.asyncio
async def test_a_released_action_may_be_sent_again_and_another_is_not_released_with_it(
    action_cache: None,
) -> None:
    await ratelimit.admit_action(7, "transfer c1")
    await ratelimit.release_action(7, "transfer c1")
    assert await ratelimit.admit_action(7, "transfer c1") == ADMITTED

    await ratelimit.release_action(7, "hold c1")  # not the last action: nothing to forget

    assert await ratelimit.admit_action(7, "transfer c1") == DUPLICATE


@pytest.mark.asyncio
async def test_duplicates_count_towards_the_storm_and_storms_are_not_counted(
    action_cache: None, settings: Any
) -> None:
    settings.ACTION_RATE_LIMIT = "3/10"

    answers = [await ratelimit.admit_action(7, action) for action in ("a", "a", "b", "c", "c")]

    assert answers == [ADMITTED, DUPLICATE, ADMITTED, STORM, STORM]
    assert await ratelimit.admit_action(8, "a") == ADMITTED


def test_the_cache_holds_no_action_in_clear(settings: Any, redis_url: str) -> None:
    import redis

    settings.CACHES = caches_from_env({"REDIS_URL": redis_url})
    prefix = settings.CACHES["default"]["KEY_PREFIX"] = f"test-clear-{time.monotonic_ns()}"
    async_to_sync(ratelimit.admit_action)(7, "dial 5551234")

    with redis.Redis.from_url(redis_url) as client:
        keys = client.keys(f"{prefix}*")
        values = [client.get(key) or b"" for key in keys if client.type(key) == b"string"]
    assert keys and values
    assert not [part for part in [*keys, *values] if b"5551234" in part]


def commands_sent(redis_url: str, run: Callable[[], object]) -> list[str]:
    """The commands clients send the Redis server while ``run()`` runs (not those a script runs)."""
    import redis

    marker = f"end-of-test-{time.monotonic_ns()}"
    with redis.Redis.from_url(redis_url) as client, client.monitor() as monitor:
        run()
        client.echo(marker)
        sent = []
        for command in monitor.listen():
            if marker in command["command"]:
                return sent
            if command["client_type"] != "lua":
                sent.append(command["command"].split()[0].upper())
    raise AssertionError("the monitor ended early")


def test_an_action_is_checked_against_both_limits_in_one_redis_command(settings: Any, redis_url: str) -> None:
    """On the click path: one round trip to Redis, where the double-click check took four more."""
    settings.CACHES = caches_from_env({"REDIS_URL": redis_url})
    settings.CACHES["default"]["KEY_PREFIX"] = f"test-commands-{time.monotonic_ns()}"
    answers: list[ratelimit.Admission] = []

    def click_hold_hold_retrieve() -> None:
        answers.extend(
            async_to_sync(ratelimit.admit_action)(7, action) for action in ("hold", "hold", "retrieve")
        )

    sent = commands_sent(redis_url, click_hold_hold_retrieve)

    assert answers == [ADMITTED, DUPLICATE, ADMITTED]
    assert [command for command in sent if command not in ("CLIENT", "HELLO", "SELECT", "PING")] == [
        "EVAL"
    ] * 3
