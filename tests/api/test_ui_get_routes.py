"""No GET of the UI changes anything (docs/UI_API.md, "Rules"): every GET route of the UI app,
found by walking its router (a new route is walked without anyone adding it here), is called
over a database holding an unread message, a sent one and an uploaded file, and the database
is the same afterwards, row for row."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
from typing import Any

import aiohttp
from aiohttp import web

from flame.api.ui.session import TOKEN_QUERY
from flame.devtools.ui import ws_protocols
from flame.services.registry import Services
from tests.api.conftest import ApiNode
from tests.api.test_peer_routes import Zoe, envelope, unlocked
from tests.files_helpers import png_bytes

FILE_ROUTE = "/ui/api/conversations/{name}/files/{id}"
GROUP_FILE_ROUTE = "/ui/api/groups/{id}/files/{author}/{transfer_id}"


async def snapshot(services: Services) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (the search index's own tables included)."""
    db = services.ctx.db
    tables = [
        r["name"] for r in await db.fetchall("SELECT name FROM sqlite_master WHERE type='table'")
    ]
    return {
        table: sorted(
            (tuple(row) for row in await db.fetchall(f'SELECT * FROM "{table}"')), key=repr
        )
        for table in tables
    }


def get_routes(app: web.Application) -> list[str]:
    return sorted(
        {
            route.resource.canonical
            for route in app.router.routes()
            if route.method == "GET" and route.resource is not None
        }
    )


async def test_no_get_route_changes_the_database(node: ApiNode) -> None:
    await unlocked(node)
    writers = [  # the daemon's loops that store what the UI sends
        asyncio.create_task(node.services.messaging.write_outgoing()),
        asyncio.create_task(node.services.groups.write_outgoing()),
    ]
    try:
        await walk_every_get_route(node)
    finally:
        for writer in writers:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer


async def walk_every_get_route(node: ApiNode) -> None:
    ui = node.ui
    ui.session.headers["Origin"] = node.ui_url  # as the page's requests carry
    status, _ = await Zoe(node).post([envelope(node, "unread until the page says it showed it")])
    assert status == 200
    async with ui.post("/ui/api/conversations/zoe/messages", json={"text": "hello"}) as r:
        assert r.status == 201
        message_id = (await r.json())["message"]["id"]
    async with ui.post(
        f"/ui/api/conversations/zoe/messages/{message_id}/edit", json={"text": "hello again"}
    ) as r:
        assert r.status == 200, await r.text()
    picture = png_bytes()
    async with ui.post(
        "/ui/api/conversations/zoe/files",
        json={"name": "p.png", "size": len(picture), "type": "image/png"},
    ) as r:
        assert r.status == 201
        transfer_id = (await r.json())["file"]["transfer_id"]
    async with ui.put(
        f"/ui/api/conversations/zoe/files/{transfer_id}/content",
        data=io.BytesIO(picture),
        headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(picture))},
    ) as r:
        assert r.status == 201, await r.text()
    contacts = await (await ui.get("/ui/api/contacts")).json()
    assert [c["unread"] for c in contacts["contacts"] if c["username"] == "zoe"] == [1]
    image = base64.b64encode(picture).decode()
    body = {"name": "Board", "members": ["zoe"], "picture": image}
    async with ui.post("/ui/api/groups", json=body) as r:
        assert r.status == 201, await r.text()
        group_id = (await r.json())["group"]["id"]
    async with ui.post(f"/ui/api/groups/{group_id}/messages", json={"text": "to the board"}) as r:
        assert r.status == 201, await r.text()
    async with ui.post(  # a group file (docs/UI_API.md, "Group files")
        f"/ui/api/groups/{group_id}/files",
        json={"name": "g.png", "size": len(picture), "type": "image/png"},
    ) as r:
        assert r.status == 201, await r.text()
        group_file = (await r.json())["file"]["transfer_id"]
    async with ui.put(
        f"/ui/api/groups/{group_id}/files/{group_file}/content",
        data=io.BytesIO(picture),
        headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(picture))},
    ) as r:
        assert r.status == 201, await r.text()

    paths = {
        "/": "/",
        "/static/{path}": "/static/app.js",
        "/ui/api/conversations/{name}/messages/{id}/context": (
            f"/ui/api/conversations/zoe/messages/{message_id}/context"
        ),
        "/ui/api/conversations/{name}/messages/{id}/history": (
            f"/ui/api/conversations/zoe/messages/{message_id}/history"
        ),
        FILE_ROUTE: f"/ui/api/conversations/zoe/files/{transfer_id}",
        FILE_ROUTE + "/content": f"/ui/api/conversations/zoe/files/{transfer_id}/content",
        "/ui/api/profiles/{name}": "/ui/api/profiles/zoe",
        "/ui/api/profiles/{name}/avatar": "/ui/api/profiles/alice/avatar",
        "/ui/api/conversations/{name}/messages": "/ui/api/conversations/zoe/messages",
        "/ui/api/contacts": "/ui/api/contacts?blocked=1",
        "/ui/api/search": "/ui/api/search?q=unread",
        "/ui/api/groups/{id}": f"/ui/api/groups/{group_id}",
        "/ui/api/groups/{id}/messages": f"/ui/api/groups/{group_id}/messages",
        "/ui/api/groups/{id}/picture": f"/ui/api/groups/{group_id}/picture",
        "/ui/api/group-search": "/ui/api/group-search?q=board",
        GROUP_FILE_ROUTE: f"/ui/api/groups/{group_id}/files/alice/{group_file}",
        GROUP_FILE_ROUTE
        + "/content": f"/ui/api/groups/{group_id}/files/alice/{group_file}/content",
    }
    token = ui.session.headers["X-Flame-Token"]
    before = await snapshot(node.services)
    walked = []
    assert ui.app is not None
    for route in get_routes(ui.app):
        path = paths.get(route, route)
        assert "{" not in path, f"a new GET route needs a sample path here: {route}"
        if route == "/ui/api/ws":
            ws = await ui.ws_connect(path, origin=node.ui_url, protocols=ws_protocols(token))
            assert (await ws.receive_json())["type"] == "hello"
            await ws.close()
        else:
            async with ui.get(path) as response:
                assert response.status in {200, 206, 404}, (route, await response.text())
                assert response.status != 404 or route.endswith("/avatar"), route
        walked.append(route)
    # The routes an element loads, with the token in the query as the page sends it.
    async with aiohttp.ClientSession(cookie_jar=ui.session.cookie_jar) as page:
        url = node.ui_url + paths[FILE_ROUTE + "/content"]
        async with page.get(url, params={TOKEN_QUERY: token, "download": "1"}) as response:
            assert response.status == 200 and await response.read() == picture
    assert await snapshot(node.services) == before
    assert len(walked) >= 15 and "/ui/api/conversations/{name}/messages" in walked
    contacts = await (await ui.get("/ui/api/contacts")).json()
    assert [c["unread"] for c in contacts["contacts"] if c["username"] == "zoe"] == [1]
