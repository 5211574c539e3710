"""Contacts, conversations and settings (docs/UI_API.md, "Contacts and conversations"). Reading
changes nothing: the page says what it showed with POST …/read."""

from __future__ import annotations

import math

from aiohttp import web
from pydantic import Field

from flame.api.ui import views
from flame.api.ui.state import UI, path_name
from flame.core.models import Wire
from flame.errors import BadRequest, NotFound
from flame.net.http import parse_model
from flame.services.messaging import Cursor, Page

ID_MAX_CHARS = 200


class SendBody(Wire):
    text: str
    reply_to: str | None = Field(default=None, max_length=ID_MAX_CHARS)  # a message id


class ReadBody(Wire):
    up_to: str | None = Field(default=None, max_length=ID_MAX_CHARS)  # a message id; None: all


class VerifyBody(Wire):
    verified: bool


class SettingsBody(Wire):
    read_receipts: bool


def count_param(request: web.Request, key: str, default: int, high: int) -> int:
    try:
        value = int(request.query.get(key, str(default)))
    except ValueError as exc:
        raise BadRequest(f"'{key}' must be a whole number.") from exc
    if not 1 <= value <= high:
        raise BadRequest(f"'{key}' must be between 1 and {high}.")
    return value


def parse_cursor(raw: str | None) -> Cursor | None:
    """The opaque 'before' cursor: sent_at:seq:rowid of the oldest message of the last page."""
    if raw is None or raw == "":
        return None
    try:
        sent_at, seq, rowid = raw.split(":")
        cursor = float(sent_at), int(seq), int(rowid)
    except ValueError as exc:
        raise BadRequest("The 'before' cursor is malformed.") from exc
    if not math.isfinite(cursor[0]):
        raise BadRequest("The 'before' cursor is malformed.")
    return cursor


def cursor_text(cursor: Cursor | None) -> str | None:
    return None if cursor is None else f"{cursor[0]!r}:{cursor[1]}:{cursor[2]}"


def page_json(page: Page) -> views.Json:
    return {
        "messages": [views.message_json(m, t) for m, t in page.messages],
        "next_before": cursor_text(page.next_before),
    }


async def contacts(request: web.Request) -> web.Response:
    people = request.app[UI].services.people
    cards = await people.cards(with_blocked=request.query.get("blocked") == "1")
    return web.json_response({"contacts": [views.contact_json(card) for card in cards]})


async def accept_key(request: web.Request) -> web.Response:
    services = request.app[UI].services
    contact = await services.contacts.accept_key(path_name(request, code="unknown_recipient"))
    await services.group_held.release(contact.username)  # held group copies (PROTOCOL.md §19.5)
    return web.json_response(views.contact_json(await services.people.card(contact)))


async def verify(request: web.Request) -> web.Response:
    """The user compared the safety number with the contact (or takes that back)."""
    ui = request.app[UI]
    services = ui.services
    body = parse_model(VerifyBody, await ui.body(request))
    name = path_name(request, code="unknown_recipient")
    contact = await services.contacts.set_verified(name, body.verified)
    return web.json_response(views.contact_json(await services.people.card(contact)))


async def list_messages(request: web.Request) -> web.Response:
    messaging = request.app[UI].services.messaging
    name = path_name(request, code="unknown_recipient")
    limit = count_param(request, "limit", 50, 200)
    page = await messaging.page(name, parse_cursor(request.query.get("before")), limit)
    return web.json_response(page_json(page))


async def post_message(request: web.Request) -> web.Response:
    ui = request.app[UI]
    name = path_name(request, code="unknown_recipient")
    body = parse_model(SendBody, await ui.body(request))
    message = await ui.services.messaging.send_text(name, body.text, body.reply_to)
    return web.json_response({"message": views.message_json(message)}, status=201)


async def mark_read(request: web.Request) -> web.Response:
    """The page shows the conversation up to `up_to` (or all of it): read receipts follow."""
    ui = request.app[UI]
    services = ui.services
    name = path_name(request, code="unknown_recipient")
    raw = await ui.body(request)
    body = parse_model(ReadBody, raw) if raw.strip() else ReadBody()
    up_to = await services.messaging.newest_rowid(name, body.up_to)
    await services.receipts.mark_read(name, up_to)
    return web.json_response({})


async def context(request: web.Request) -> web.Response:
    messaging = request.app[UI].services.messaging
    name = path_name(request)
    message_id = request.match_info["id"]
    page = await messaging.around(
        name,
        message_id,
        count_param(request, "before", 25, 200),
        count_param(request, "after", 25, 200),
    )
    if page is None:
        raise NotFound("There is no such message in this conversation.", code="no_message")
    return web.json_response({**page_json(page), "has_newer": page.has_newer, "target": message_id})


async def diagnostics(request: web.Request) -> web.Response:
    """Read-only counts of what waits to leave (docs/UI_API.md, "Diagnostics")."""
    services = request.app[UI].services
    pending, held = await services.delivery.pending(), await services.relay.held()
    return web.json_response(views.diagnostics_json(pending, held))


async def get_settings(request: web.Request) -> web.Response:
    receipts = request.app[UI].services.receipts
    return web.json_response(views.settings_json(await receipts.read_enabled()))


async def put_settings(request: web.Request) -> web.Response:
    ui = request.app[UI]
    body = parse_model(SettingsBody, await ui.body(request))
    await ui.services.receipts.set_read_enabled(body.read_receipts)
    return web.json_response(views.settings_json(body.read_receipts))
