"""Machine-readable contracts (PROTOCOL.md §16): OpenAPI 3.1 of the remote API and of the
directory, generated from the wire models, with the JSON Schema of every inner kind (§6.4, §14.4).
Served at /api/v1/openapi.json and /dir/v1/openapi.json; tests/api/test_openapi.py fails when
they and PROTOCOL.md disagree. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from flame.core import keylog as k
from flame.core import models as m
from flame.core import prekeys as p
from flame.core.changes import DirectoryChanges
from flame.core.hello import Hello, PublicHello

REF = "#/components/schemas/{model}"
SECURITY: list[dict[str, list[str]]] = [{"FlameSignature": []}, {"FlameMac": []}]
RouteAnswer = type[BaseModel] | tuple[type[BaseModel], ...] | str | None


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    summary: str
    section: str
    signed: bool | Literal["optional"] = True  # optional: a signed request may get more (hello)
    body: type[BaseModel] | None = None
    answer: RouteAnswer = None  # a model, one of several models, or the name of an inline schema
    errors: tuple[str, ...] = ()
    stream: bool = False  # the body is application/octet-stream (file chunks)


class Answer(m.Wire):
    """Small answers without a model of their own."""


class PresenceAnswer(m.Wire):
    ttl_s: float


class RelayDropped(m.Wire):
    dropped: int


class DirectoryHello(m.Wire):
    service: str
    versions: list[int]
    registration: str
    key_log: m.B64 | None = None  # the key log's public key (§18.1); absent: an older directory


class ErrorBody(m.Wire):
    """Every error answer (PROTOCOL.md §8); some add fields (results, received_bytes, state)."""

    error: str
    message: str


PEER_ROUTES = (
    Route("GET", "/api/v1/hello", "Who answers (to a member), whether it is locked", "7.1",
          "optional", None, (Hello, PublicHello)),
    Route(
        "POST", "/api/v1/envelopes", "Deliver a batch of envelopes", "7.2", True,
        m.EnvelopeBatch, m.BatchResult,
        ("bad_request", "bad_envelope", "rejected", "no_session", "old_version", "locked",
         "not_author", "unknown_message", "too_late", "rate_limited"),
    ),
    Route("GET", "/api/v1/profile", "The owner's signed profile", "12.1", True, None, m.Profile,
          ("no_profile", "forbidden")),
    Route("GET", "/api/v1/files/{transfer_id}", "What the receiver holds of a transfer", "11.3",
          True, None, m.TransferStatus, ("unknown_transfer", "bad_token")),
    Route("PUT", "/api/v1/files/{transfer_id}/chunks", "Stream sealed chunks", "11.4", True,
          None, m.TransferStatus,
          ("bad_chunk", "wrong_offset", "transfer_closed", "missing_trailer"), stream=True),
    Route("GET", "/api/v1/group-files/{author}/{transfer_id}/chunks",
          "Sealed chunks of a group file that this member holds", "19.7", True, None, "Chunks",
          ("unknown_transfer", "not_member", "bad_token", "transfer_closed", "past_end",
           "not_held")),
    Route("POST", "/api/v1/relay/deposits", "Leave envelopes with a relay", "13.3", True,
          m.DepositBatch, m.BatchResult, ("over_quota", "bad_deposit", "unknown_recipient")),
    Route("POST", "/api/v1/relay/collect", "Collect what a relay holds for the caller", "13.3",
          True, m.CollectRequest, m.Collected),
    Route("POST", "/api/v1/relay/ack", "Let a relay drop what was collected", "13.3", True,
          m.RelayAck, RelayDropped, ("bad_ack",)),
    Route("GET", "/api/v1/openapi.json", "This document", "16", False, None, "OpenAPI"),
)  # fmt: skip

DIRECTORY_ROUTES = (
    Route("GET", "/dir/v1/hello", "The directory and what it speaks", "5", False, None,
          DirectoryHello),
    Route("POST", "/dir/v1/enroll", "Enroll a username with its keys", "5.1", False,
          m.EnrollRequest, m.UserRecord,
          ("bad_binding", "bad_proof", "bad_invite", "invite_used", "invite_expired",
           "invite_required", "username_taken")),
    Route("GET", "/dir/v1/users", "Every user, with presence (with ?since=, DirectoryChanges)",
          "5.2", True, None, m.DirectoryListing, ("bad_cursor", "database_unavailable")),
    Route("GET", "/dir/v1/users/{name}", "One user, with presence", "5.2", True, None,
          m.DirectoryEntry, ("unknown_user",)),
    Route("PUT", "/dir/v1/presence", "Report signed presence", "5.3", True, m.PresenceRecord,
          PresenceAnswer, ("forbidden", "bad_signature", "stale_presence")),
    Route("DELETE", "/dir/v1/presence", "Log off", "5.3", True, None, Answer),
    Route("GET", "/dir/v1/subscribe", "Changes pushed, as WebSocket frames", "5.5", True, None,
          DirectoryChanges),
    Route("PUT", "/dir/v1/prekeys", "Publish signed prekeys", "14.3", True, p.PrekeyUpload,
          p.PrekeyCount, ("bad_signature",)),
    Route("GET", "/dir/v1/prekeys", "How many one-time keys are left", "14.3", True, None,
          p.PrekeyCount),
    Route("POST", "/dir/v1/prekeys/{name}/claim", "Claim a prekey to start a session", "14.3",
          True, None, p.PrekeyClaim, ("no_prekeys",)),
    Route("GET", "/dir/v1/keylog/head", "The key log's signed head", "18.3", True, None,
          k.KeyLogHead),
    Route("GET", "/dir/v1/keylog/entries/{start}", "Key log entries from `start` on", "18.3",
          True, None, k.KeyLogEntries, ("bad_range",)),
    Route("GET", "/dir/v1/keylog/consistency/{first}/{second}", "A consistency proof", "18.3",
          True, None, k.KeyLogProof, ("bad_range",)),
    Route("GET", "/dir/v1/keylog/inclusion/{index}/{size}", "An inclusion proof", "18.3",
          True, None, k.KeyLogProof, ("bad_range",)),
    Route("GET", "/dir/v1/openapi.json", "This document", "16", False, None, "OpenAPI"),
)  # fmt: skip

EXTRA_MODELS: tuple[type[BaseModel], ...] = (
    m.Envelope,
    m.PresenceRecord,
    p.PrekeyRecord,
    ErrorBody,
    *m.KIND_BODIES.values(),
)


def _schemas(routes: tuple[Route, ...]) -> dict[str, Any]:
    models: list[type[BaseModel]] = list(EXTRA_MODELS)
    for route in routes:
        answers = route.answer if isinstance(route.answer, tuple) else (route.answer,)
        for model in (route.body, *answers):
            if isinstance(model, type) and model not in models:
                models.append(model)
    _, top = models_json_schema([(model, "validation") for model in models], ref_template=REF)
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    schemas["Inner"] = inner_schema()
    return schemas


def inner_schema() -> dict[str, Any]:
    """The inner message (§6.4): its `body` is the schema of its `kind`."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["from", "to", "id", "seq", "ts", "kind", "body"],
        "properties": {
            "from": {"type": "string", "pattern": m.USERNAME_RE.pattern},
            "to": {"type": "string", "pattern": m.USERNAME_RE.pattern},
            "id": {"type": "string"},
            "seq": {"type": "integer", "minimum": 0},
            "ts": {"type": "integer", "minimum": 0},
            "kind": {"enum": sorted(m.KIND_BODIES)},
            "body": {"type": "object"},
        },
        "oneOf": [
            {
                "properties": {
                    "kind": {"const": kind},
                    "body": {"$ref": REF.format(model=model.__name__)},
                }
            }
            for kind, model in sorted(m.KIND_BODIES.items())
        ],
    }


def _security(route: Route) -> list[dict[str, list[str]]]:
    if route.signed == "optional":  # OpenAPI's empty requirement: no authentication at all
        return [{}, *SECURITY]
    return SECURITY if route.signed else []


def _operation(route: Route) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": route.summary,
        "description": f"PROTOCOL.md §{route.section}",
        "security": _security(route),
    }
    if route.body is not None:
        schema = {"$ref": REF.format(model=route.body.__name__)}
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
    elif route.stream:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
        }
    answer = route.answer
    ok: dict[str, Any] = {"description": "OK"}
    if isinstance(answer, type):
        ok["content"] = {
            "application/json": {"schema": {"$ref": REF.format(model=answer.__name__)}}
        }
    elif isinstance(answer, tuple):
        one_of = [{"$ref": REF.format(model=model.__name__)} for model in answer]
        ok["content"] = {"application/json": {"schema": {"oneOf": one_of}}}
    elif answer == "OpenAPI":
        ok["content"] = {"application/json": {"schema": {"type": "object"}}}
    elif answer == "Chunks":
        ok["content"] = {"application/octet-stream": {"schema": {"type": "string"}}}
    error = {
        "description": "An error answer (PROTOCOL.md §8): "
        + ", ".join(f"`{code}`" for code in route.errors or ("bad_request",)),
        "content": {"application/json": {"schema": {"$ref": REF.format(model="ErrorBody")}}},
    }
    status = "201" if route.path.endswith("/enroll") else "200"
    operation["responses"] = {status: ok, "4XX": error}
    parameters = [
        {"name": part[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
        for part in route.path.split("/")
        if part.startswith("{")
    ]
    if route.path.endswith("/chunks"):
        parameters.append(
            {"name": "start", "in": "query", "required": True, "schema": {"type": "string"}}
        )
    if route.path == "/api/v1/envelopes":
        parameters.append(
            {"name": "ack", "in": "query", "required": False, "schema": {"const": "1"}}
        )
    if parameters:
        operation["parameters"] = parameters
    return operation


def document(title: str, routes: tuple[Route, ...]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    headers = "Flame-User, Flame-To, Flame-Timestamp, Flame-Nonce and "
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": "1",
            "description": "Generated from Flame's wire models; the contract is docs/PROTOCOL.md.",
        },
        "paths": paths,
        "components": {
            "schemas": _schemas(routes),
            "securitySchemes": {
                "FlameSignature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Flame-Signature",
                    "description": headers + "Flame-Signature (Ed25519, PROTOCOL.md §4)",
                },
                "FlameMac": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Flame-Mac",
                    "description": headers + "Flame-Mac (the pair key's HMAC, §14.8)",
                },
            },
        },
    }


def remote_api() -> dict[str, Any]:
    return document("Flame remote API (/api/v1)", PEER_ROUTES)


def directory_api() -> dict[str, Any]:
    schema = document("Flame directory (/dir/v1)", DIRECTORY_ROUTES)
    schema["components"]["securitySchemes"].pop("FlameMac")
    for path in schema["paths"].values():
        for operation in path.values():
            if operation["security"]:
                operation["security"] = [{"FlameSignature": []}]
    return schema
