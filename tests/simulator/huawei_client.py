"""A bare Huawei AgentGateway client for the simulator's own tests: raw httpx, one request at a time.

Deliberately independent of the desk's client in ``calls/``: these tests check the wire, so they
speak it by hand, as any third-party CC-Gateway client would.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

RESOURCE = "/huawei/agentgateway/resource"
# Short enough that a test waiting for "no event" takes a fraction of a second.
FAST_TIMING = {"poll_wait_ms": 200}


async def control(simulator: str, method: str, path: str, body: Any = None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=simulator, timeout=10) as http:
        response = await http.request(method, path, json=body)
    assert response.status_code in (200, 201), response.text
    return response


async def fast(simulator: str, **timing: int | None) -> None:
    """The Huawei timing made short for a test (plus any switch setting given)."""
    await control(simulator, "PUT", "/control/settings", {**FAST_TIMING, **timing})


class HuaweiAgent:
    def __init__(self, base_url: str, workno: str, password: str | None = None) -> None:
        self.workno = workno
        self.password = password if password is not None else f"agent{workno}"
        self.http = httpx.AsyncClient(base_url=base_url + RESOURCE, timeout=15)
        self.guid = ""
        self.last_poll: httpx.Response | None = None

    async def __aenter__(self) -> HuaweiAgent:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    def take_guid(self, response: httpx.Response) -> str:
        header = response.headers.get("Set-GUID", "")
        if header:
            assert header.startswith("JSESSIONID="), header
            self.guid = header.removeprefix("JSESSIONID=")
        return header

    async def sign_in(self, *, force: bool = False, **fields: Any) -> dict[str, Any]:
        """PUT onlineagent (or forcelogin) with the documented body; keeps the Guid it answers with."""
        body = {"password": self.password, "phonenum": "", "autoanswer": False, "status": 4, **fields}
        path = f"/onlineagent/{self.workno}" + ("/forcelogin" if force else "")
        response = await self.http.put(path, json=body)
        assert response.status_code == 200, response.text
        self.take_guid(response)
        return response.json()

    async def signed_in(self, **fields: Any) -> HuaweiAgent:
        """Signed in and past the sign-in events."""
        answer = await self.sign_in(**fields)
        assert answer["retcode"] == "0", answer
        await self.expect("AgentOther_InService", "AgentState_Ready")
        return self

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        guid: str | None = None,
    ) -> dict[str, Any]:
        """One request with the Guid header; the envelope (the HTTP status must be 200)."""
        response = await self.http.request(
            method,
            path.format(id=self.workno),
            json=json,
            params=params,
            headers={"Guid": self.guid if guid is None else guid},
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = await self.request(method, path, **kwargs)
        assert answer["retcode"] == "0", answer
        return answer["result"]

    async def refused(self, method: str, path: str, **kwargs: Any) -> str:
        """The retcode of a refusal, after checking it comes with words for the agent."""
        answer = await self.request(method, path, **kwargs)
        assert answer["retcode"] != "0", answer
        assert answer["message"], answer
        return answer["retcode"]

    async def poll(self, guid: str | None = None) -> dict[str, Any]:
        response = await self.http.get(
            f"/agentevent/{self.workno}", headers={"Guid": self.guid if guid is None else guid}
        )
        assert response.status_code == 200, response.text
        self.last_poll = response
        self.take_guid(response)
        return response.json()

    async def next(self, wait: float = 5.0) -> dict[str, Any]:
        """The next event, polling until one comes."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            answer = await self.poll()
            assert answer["retcode"] == "0", answer
            if answer["event"] is not None:
                assert set(answer["event"]) == {"eventType", "workNo", "content"}, answer
                assert answer["event"]["workNo"] == self.workno
                return answer["event"]
        raise AssertionError(f"no event for agent {self.workno} within {wait} s")

    async def expect(self, *event_types: str) -> list[dict[str, Any]]:
        """The next events, which must be of these types in this order; returns them."""
        events = [await self.next() for _ in event_types]
        assert [e["eventType"] for e in events] == list(event_types), events
        return events

    async def no_more(self) -> None:
        answer = await self.poll()
        assert answer == {"message": "", "retcode": "0", "event": None}, answer
