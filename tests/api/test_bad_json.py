"""Hostile JSON is a 4xx with a reason on every app, never a 500 (PROTOCOL.md §1.3): nesting far
too deep, integers of thousands of digits or past 64 bits, NaN, lone surrogates (which no UTF-8
carries), and a key given twice. Each value is put where a route would carry it inward (an id
a relay would look up, a text the UI would store, an invite the directory would hash), on the
peer app, the directory app and the UI app, signed where the route needs it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from flame.config import load_settings
from flame.core.crypto import Identity
from flame.core.signing import DIRECTORY_AUDIENCE, sign_request
from flame.directory.app import DirectoryServer
from flame.services.account import enroll_request
from tests.api.conftest import ApiNode
from tests.api.test_peer_routes import unlocked

SIG = "A" * 86  # 64 bytes of base64url: well-formed, never valid
# Raw JSON values; each answer must be a 4xx with a JSON reason.
HOSTILE = {
    "deeper_than_the_stack": "[" * 5000 + "]" * 5000,
    "deep": "[" * 200 + "]" * 200,
    "5000_digits": "1" * 5000,
    "past_64_bits": str(2**63),
    "nan": "NaN",
    "infinity": "1e400",
    "lone_surrogate": '"\\ud800"',
    "lone_surrogate_in_a_list": '["ok", "\\udfff"]',
}


def peer_bodies(value: str) -> dict[str, bytes]:
    """Bodies of the signed peer routes, `value` where the route would carry it inward."""
    return {
        "/api/v1/envelopes": b'{"envelopes": [%s]}' % value.encode(),
        "/api/v1/relay/ack": (
            b'{"relay": "alice", "to": "zoe", "ids": [%s], "ts": 1, "sig": "%s"}'
            % (value.encode(), SIG.encode())
        ),
        "/api/v1/relay/collect": b'{"limit": %s}' % value.encode(),
        "/api/v1/relay/deposits": b'{"deposits": [{"envelope": %s, "expires_at": %s}]}'
        % (value.encode(), value.encode()),
    }


def repeated_key(body: bytes) -> bytes:
    """The same body with its first key given twice (the later one is what a lax parser keeps)."""
    assert body.startswith(b'{"')
    first_key = body[1 : body.index(b":")]
    return b"{" + first_key + b": null, " + body[1:]


async def answer(
    session: aiohttp.ClientSession, method: str, url: str, body: bytes, headers: dict[str, str]
) -> tuple[int, Any]:
    async with session.request(method, url, data=body, headers=headers) as response:
        text = await response.text()
        return response.status, (await response.json()) if text.startswith("{") else text


def assert_refused(status: int, reply: Any, what: str) -> None:
    assert 400 <= status < 500, (status, reply, what)
    assert isinstance(reply, dict) and reply["error"] and reply["message"], (reply, what)


def zoe_signs(node: ApiNode, method: str, path: str, body: bytes) -> dict[str, str]:
    host = node.peer_url.removeprefix("http://")
    headers = sign_request(node.zoe, "zoe", "alice", method, path, host, body, int(time.time()))
    return {**headers, "Content-Type": "application/json"}


@pytest.mark.parametrize("name", list(HOSTILE))
async def test_the_peer_app_refuses_hostile_json_with_a_reason(node: ApiNode, name: str) -> None:
    await unlocked(node)
    async with aiohttp.ClientSession() as session:
        for path, body in peer_bodies(HOSTILE[name]).items():
            status, reply = await answer(
                session, "POST", node.peer_url + path, body, zoe_signs(node, "POST", path, body)
            )
            assert_refused(status, reply, f"{name} {path}")
            assert reply["error"] == "bad_request", (path, reply)


async def test_the_peer_app_refuses_a_repeated_key(node: ApiNode) -> None:
    await unlocked(node)
    async with aiohttp.ClientSession() as session:
        for path, body in peer_bodies("1").items():
            body = repeated_key(body)
            status, reply = await answer(
                session, "POST", node.peer_url + path, body, zoe_signs(node, "POST", path, body)
            )
            assert (status, reply["error"]) == (400, "bad_request"), (path, reply)
            assert "repeats a key" in reply["message"]


@pytest.fixture
async def directory(tmp_path: Path) -> AsyncIterator[DirectoryServer]:
    """A directory alone, open for enrollment, on a port the OS picks."""
    settings = load_settings(
        None,
        environ={},
        read_default_file=False,
        flags={
            "directory.host": "127.0.0.1",
            "directory.port": 0,
            "directory.registration": "open",
        },
    )
    server = DirectoryServer(settings.directory, tmp_path / "directory")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.mark.parametrize("name", [*HOSTILE, "repeated_key"])
async def test_the_directory_refuses_hostile_json_with_a_reason(
    directory: DirectoryServer, name: str
) -> None:
    zoe = Identity.generate()
    enrolled = enroll_request(zoe, "zoe", None).model_dump_json().encode()
    url = directory.url
    host = url.removeprefix("http://")
    value = HOSTILE.get(name, '"x"').encode()
    # A valid enrollment of zed but for its invite, and a presence record of zoe but for its
    # address: the directory would hash the one and check the signature over the other.
    valid = enroll_request(Identity.generate(), "zed", "CODE").model_dump_json().encode()
    enroll = valid.replace(b'"CODE"', value)
    presence = b'{"username": "zoe", "address": %s, "status": "online", "versions": [1], ' % value
    presence += b'"ts": %d, "sig": "%s"}' % (int(time.time()), SIG.encode())
    if name == "repeated_key":
        enroll, presence = repeated_key(enroll), repeated_key(presence)
    async with aiohttp.ClientSession() as session:
        status, _ = await answer(session, "POST", url + "/dir/v1/enroll", enrolled, {})
        assert status == 201
        status, reply = await answer(session, "POST", url + "/dir/v1/enroll", enroll, {})
        assert_refused(status, reply, "enroll")  # unauthenticated: anyone can send this
        headers = sign_request(
            zoe,
            "zoe",
            DIRECTORY_AUDIENCE,
            "PUT",
            "/dir/v1/presence",
            host,
            presence,
            int(time.time()),
        )
        status, reply = await answer(session, "PUT", url + "/dir/v1/presence", presence, headers)
        assert_refused(status, reply, "presence")
        assert reply["error"] == "bad_request"


@pytest.mark.parametrize("name", [*HOSTILE, "repeated_key"])
async def test_the_ui_refuses_hostile_json_with_a_reason(node: ApiNode, name: str) -> None:
    await unlocked(node)
    value = HOSTILE.get(name, '"x"').encode()
    body = b'{"text": %s}' % value
    if name == "repeated_key":
        body = b'{"text": "hidden", "text": "shown"}'
    async with node.ui.post(
        "/ui/api/conversations/zoe/messages",
        data=body,
        headers={"Origin": node.ui_url, "Content-Type": "application/json"},
    ) as response:
        reply = await response.json()
        assert_refused(response.status, reply, name)
        assert reply["error"] == "bad_request"


async def test_a_static_path_with_a_nul_byte_is_not_found(node: ApiNode) -> None:
    for path in ("/static/..%00", "/static/app.js%00.png", "/static/%00"):
        async with node.ui.get(path) as response:
            assert response.status == 404, path
            assert (await response.json())["error"] == "not_found"
