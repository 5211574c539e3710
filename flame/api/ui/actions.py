"""What the user does to messages and while writing (docs/UI_API.md, "Replies, edits, deletes,
reactions, typing"): parse, call one service, answer with the changed `Message`."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import ConfigDict, Field

from flame.api.ui import views
from flame.api.ui.state import UI, path_name
from flame.core.models import Wire
from flame.net.http import parse_model

ID_MAX_CHARS = 200


class EditRequest(Wire):
    text: str


class DeleteRequest(Wire):
    model_config = ConfigDict(strict=True, frozen=True, extra="forbid", populate_by_name=True)

    scope: Literal["everyone", "me"] = Field(alias="for")


class ReactRequest(Wire):
    emoji: str = Field(max_length=64)
    on: bool


class TypingRequest(Wire):
    typing: bool


def message_id(request: web.Request) -> str:
    return request.match_info["id"][:ID_MAX_CHARS]


def changed(message: views.Json) -> web.Response:
    return web.json_response({"message": message})


async def edit(request: web.Request) -> web.Response:
    ui = request.app[UI]
    body = parse_model(EditRequest, await ui.body(request))
    name = path_name(request, code="unknown_recipient")
    message = await ui.services.actions.edit(name, message_id(request), body.text)
    return changed(views.message_json(message))


async def delete(request: web.Request) -> web.Response:
    ui = request.app[UI]
    body = parse_model(DeleteRequest, await ui.body(request))
    name, key = path_name(request, code="unknown_recipient"), message_id(request)
    message = await ui.services.actions.delete(name, key, body.scope)
    if message is None:  # for me: it is not shown any more
        return web.json_response({"removed": key})
    return changed(views.message_json(message))


async def react(request: web.Request) -> web.Response:
    ui = request.app[UI]
    body = parse_model(ReactRequest, await ui.body(request))
    name = path_name(request, code="unknown_recipient")
    message = await ui.services.actions.react(name, message_id(request), body.emoji, body.on)
    return changed(views.message_json(message))


async def history(request: web.Request) -> web.Response:
    actions = request.app[UI].services.actions
    found = await actions.history(path_name(request), message_id(request))
    return web.json_response({"versions": [views.version_json(v) for v in found]})


async def typing(request: web.Request) -> web.Response:
    ui = request.app[UI]
    body = parse_model(TypingRequest, await ui.body(request))
    sent = await ui.services.typing.notify(path_name(request), body.typing)
    return web.json_response({"sent": sent})
