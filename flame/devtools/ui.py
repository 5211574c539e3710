"""The browser's side of a daemon's UI API (docs/UI_API.md), for the dev tools and the tests: a
session (its cookie and page token) and the right Origin over real HTTP, the WebSocket feed, and
the conversation read page by page as the page scrolls. The tools observe daemons only through
this and the CLI."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import aiohttp

from flame.api.ui.session import TOKEN_HEADER, WS_PROTOCOL, WS_TOKEN_PREFIX
from flame.errors import FlameError

PASSWORD = "correct horse battery"  # the in-process cluster's users' password
PAGE = 200  # the most messages one page holds
# A cursor after every message (sent_at:seq:rowid, far in the future): the newest page without
# the "the user saw it" of a page fetched with no cursor, so reading changes nothing.


def ws_protocols(token: str) -> tuple[str, str]:
    """What the page offers on the WebSocket: the feed's protocol and its page token."""
    return (WS_PROTOCOL, WS_TOKEN_PREFIX + token)


class ToolFailed(FlameError):
    code = "tool_failed"


class HasUi(Protocol):
    @property
    def ui_url(self) -> str: ...


class UiClient:
    """One browser tab of a daemon (a `Daemon`, a process node, or a UI address)."""

    def __init__(
        self,
        target: HasUi | str,
        password: str = PASSWORD,
        *,
        timeout_s: float = 300.0,
        connections: int = 100,
        name: str = "",
    ) -> None:
        self.url = target if isinstance(target, str) else target.ui_url
        self.token = ""  # the page token, once logged in
        self.password = password
        self.name = name or self.url
        self.session = aiohttp.ClientSession(
            base_url=self.url,
            headers={"Origin": self.url},
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            connector=aiohttp.TCPConnector(limit=connections),
        )

    async def login(self, password: str | None = None) -> dict[str, Any]:
        """Log in as the page does: the cookie is kept by the jar, the page token is sent with
        every later request (docs/UI_API.md, "Rules"). Returns `Me`."""
        status, body = await self.post("/ui/api/login", {"password": password or self.password})
        if status != 200:
            raise ToolFailed(f"{self.name}: UI login answered {status}: {body}")
        self.token = str(body["token"])
        self.session.headers[TOKEN_HEADER] = self.token
        return dict(body["me"])

    async def login_within(self, timeout_s: float) -> None:
        """Log in, trying again while the daemon is still coming up."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                await self.login()
                return
            except (ToolFailed, aiohttp.ClientError, TimeoutError) as exc:
                if time.monotonic() > deadline:
                    message = f"{self.name}: no UI login within {timeout_s:.0f} s: {exc}"
                    raise ToolFailed(message) from exc
            await asyncio.sleep(0.2)

    async def send(self, peer: str, text: str) -> dict[str, Any]:
        status, body = await self.post(f"/ui/api/conversations/{peer}/messages", {"text": text})
        if status != 201:
            raise ToolFailed(f"{self.name}: sending answered {status}: {body}")
        return dict(body["message"])

    async def send_file(
        self, peer: str, name: str, data: bytes, media_type: str = "", caption: str = ""
    ) -> dict[str, Any]:
        """What the page does with a file: announce it (with its caption), then stream its
        bytes. Returns the offer's message."""
        return await self.upload(
            f"/ui/api/conversations/{peer}/files", name, data, media_type, caption
        )

    async def send_group_file(
        self, group_id: str, name: str, data: bytes, media_type: str = "", caption: str = ""
    ) -> dict[str, Any]:
        """A file to a group (docs/UI_API.md, "Group files"); returns the group message."""
        return await self.upload(
            f"/ui/api/groups/{group_id}/files", name, data, media_type, caption
        )

    async def upload(
        self, files: str, name: str, data: bytes, media_type: str, caption: str
    ) -> dict[str, Any]:
        announcement: dict[str, Any] = {"name": name, "size": len(data), "type": media_type}
        if caption:
            announcement["caption"] = caption
        status, body = await self.post(files, announcement)
        if status != 201:
            raise ToolFailed(f"{self.name}: announcing a file answered {status}: {body}")
        content = f"{files}/{body['file']['transfer_id']}/content"
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(data))}
        async with self.session.put(content, data=io.BytesIO(data), headers=headers) as r:
            status, body = r.status, await r.json()
        if status != 201:
            raise ToolFailed(f"{self.name}: uploading a file answered {status}: {body}")
        return dict(body["message"])

    async def get(self, path: str, params: dict[str, str] | None = None) -> tuple[int, Any]:
        async with self.session.get(path, params=params) as r:
            return r.status, await r.json()

    async def get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET that must answer 200."""
        status, body = await self.get(path, params)
        if status != 200:
            raise ToolFailed(f"{self.name}: GET {path} answered {status}: {body}")
        return body

    async def post(self, path: str, payload: Any) -> tuple[int, Any]:
        async with self.session.post(path, json=payload) as r:
            return r.status, await r.json()

    async def put(self, path: str, payload: Any) -> tuple[int, Any]:
        # A file-like body: aiohttp warns about (and blocks on) large bytes bodies.
        body = io.BytesIO(json.dumps(payload).encode())
        headers = {"Content-Type": "application/json"}
        async with self.session.put(path, data=body, headers=headers) as r:
            return r.status, await r.json()

    async def delete(self, path: str) -> tuple[int, Any]:
        async with self.session.delete(path, json={}) as r:
            return r.status, await r.json()

    async def messages(self, peer: str) -> list[dict[str, Any]]:
        status, body = await self.get(f"/ui/api/conversations/{peer}/messages?limit={PAGE}")
        assert status == 200, body
        return list(body["messages"])

    async def open_conversation(self, peer: str) -> list[dict[str, Any]]:
        """What the page does: load the newest page, then say it showed it (read receipts)."""
        shown = await self.messages(peer)
        up_to = {"up_to": shown[-1]["id"]} if shown else {}
        status, body = await self.post(f"/ui/api/conversations/{peer}/read", up_to)
        assert status == 200, body
        return shown

    async def conversation(self, peer: str, *, max_pages: int) -> list[dict[str, Any]]:
        """The whole conversation, oldest first, walking back a page at a time as the page does
        when scrolled. Reading marks nothing read (docs/UI_API.md)."""
        path = f"/ui/api/conversations/{peer}/messages"
        params = {"limit": str(PAGE)}
        pages: list[list[dict[str, Any]]] = []
        for _ in range(max_pages):
            page = await self.get_json(path, params)
            pages.append(page["messages"])
            if page["next_before"] is None:
                return [message for page in reversed(pages) for message in page]
            params["before"] = str(page["next_before"])
        raise ToolFailed(f"{self.name}: the conversation with {peer} has over {max_pages} pages.")

    async def status_of(self, name: str) -> str | None:
        _, body = await self.get("/ui/api/contacts")
        return next((c["status"] for c in body["contacts"] if c["username"] == name), None)

    async def wait_status(self, feed: Feed, name: str, status: str) -> None:
        """Open `feed` first: an event that lands between the check and the wait is queued."""
        if await self.status_of(name) != status:
            await feed.wait_for(
                lambda e: (
                    e["type"] == "presence" and e["username"] == name and e["status"] == status
                )
            )

    async def wait_online(self, peers: set[str], timeout_s: float) -> float:
        """Until every one of `peers` shows online in the contacts; the seconds it took."""
        started = time.monotonic()
        while True:
            contacts = (await self.get_json("/ui/api/contacts"))["contacts"]
            missing = peers - {c["username"] for c in contacts if c["status"] == "online"}
            if not missing:
                return time.monotonic() - started
            if time.monotonic() - started > timeout_s:
                raise ToolFailed(
                    f"{self.name} did not see {sorted(missing)} online within {timeout_s:.0f} s."
                )
            await asyncio.sleep(0.1)

    async def websocket(self, max_msg_size: int = 4 * 1024 * 1024) -> Feed:
        ws = await self.session.ws_connect(
            "/ui/api/ws",
            origin=self.url,
            max_msg_size=max_msg_size,
            protocols=ws_protocols(self.token),
        )
        feed = Feed(ws)
        hello = await feed.next_event()
        if hello["type"] != "hello":
            raise ToolFailed(f"{self.name}: the WebSocket did not say hello: {hello}")
        return feed

    async def close(self) -> None:
        await self.session.close()


class Feed:
    """A UI WebSocket: await events by predicate, never by sleeping."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def next_event(self, timeout: float = 10.0) -> dict[str, Any]:  # noqa: ASYNC109
        message = await self.ws.receive(timeout=timeout)
        assert message.type == aiohttp.WSMsgType.TEXT, message
        event: dict[str, Any] = json.loads(message.data)
        self.seen.append(event)
        return event

    async def wait_for(
        self,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float = 10.0,  # noqa: ASYNC109 - the tests' name for it
    ) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                event = await self.next_event(timeout)
                if predicate(event):
                    return event

    async def close(self) -> None:
        await self.ws.close()


async def eventually(
    read: Callable[[], Awaitable[Any]],
    *,
    equals: Any,
    timeout: float = 20.0,  # noqa: ASYNC109 - the tests' name for it
) -> None:
    """For state that announces no event (a row in another daemon's database): read it again
    every 20 ms until it equals the expected value, within `timeout`."""
    async with asyncio.timeout(timeout):
        while (value := await read()) != equals:  # noqa: ASYNC110 - no event to await
            await asyncio.sleep(0.02)
    assert value == equals
