"""Schema-driven fuzzing (PROTOCOL.md §16): hypothesis draws requests from the OpenAPI documents
that a real directory and a real daemon serve (bodies valid by the schema and broken: wrong types,
missing and extra fields, other JSON, bytes that are no JSON; path parameters and queries),
signs each one as a real enrolled user (Ed25519, or the version 2 pair-key MAC), sends it on
loopback and counts the answers. No answer may be a 5xx (bob is unlocked: not even a 503).

    python -m flame.devtools fuzz-schema --requests 20000      (make fuzz-schema)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import multiprocessing
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from yarl import URL

from flame.core import ratchet
from flame.core.crypto import Identity, binding_message
from flame.core.encoding import b64e
from flame.core.signing import DIRECTORY_AUDIENCE, enrollment_proof, mac_request, sign_record
from flame.core.signing import sign_request as ed25519_request
from flame.devtools.cluster import Cluster
from flame.directory.app import DirectoryServer

UNLIMITED = 1_000_000
B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
JSON_LEAVES = st.none() | st.booleans() | st.integers() | st.text(max_size=20)
ANY_JSON = st.recursive(
    JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@dataclass(frozen=True, slots=True)
class Call:
    service: str  # "daemon" or "directory"
    method: str
    target: str  # path and query, percent-encoded as sent
    body: bytes
    stream: bool
    mac: bool


@dataclass
class Outcome:
    statuses: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)  # the 5xx, with what caused them

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())


def from_schema(
    schema: dict[str, Any], defs: dict[str, Any], depth: int = 0
) -> st.SearchStrategy[Any]:
    """A strategy for values that the JSON Schema describes (the subset the models produce)."""
    if "$ref" in schema:
        return from_schema(defs[schema["$ref"].rsplit("/", 1)[1]], defs, depth)
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema and schema.get("type") != "object":
            return st.one_of(*(from_schema(s, defs, depth) for s in schema[key]))
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        if depth > 4:
            return st.just({})
        props = schema.get("properties", {})
        required = set(schema.get("required", ()))
        fields = {name: from_schema(sub, defs, depth + 1) for name, sub in props.items()}
        return st.fixed_dictionaries(
            {k: v for k, v in fields.items() if k in required},
            optional={k: v for k, v in fields.items() if k not in required},
        )
    if kind == "array":
        items = from_schema(schema.get("items", {}), defs, depth + 1)
        low = schema.get("minItems", 0)
        return st.lists(items, min_size=low, max_size=max(low, min(schema.get("maxItems", 3), 3)))
    if kind == "string":
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True)
        longest = min(schema.get("maxLength", 64), 90)
        base64ish = st.sampled_from([16, 32, 48, 64]).map(lambda n: b64e(os.urandom(n)))
        return base64ish | st.text(B64_ALPHABET, max_size=longest) | st.text(max_size=longest)
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum")) | st.integers()
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False) | st.integers()
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return ANY_JSON


def broken(value: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """A body: valid by the schema, or one of the ways a hostile peer breaks it."""

    def mutate(obj: Any, how: int, extra: Any) -> Any:
        if not isinstance(obj, dict) or not obj:
            return extra
        key = sorted(obj)[how % len(obj)]
        if how % 3 == 0:
            return {k: v for k, v in obj.items() if k != key}  # a field missing
        if how % 3 == 1:
            return {**obj, key: extra}  # a field of any type
        return {**obj, "unexpected": extra}  # a field too many

    encoded = value.map(lambda v: json.dumps(v).encode())
    mutated = st.tuples(value, st.integers(0, 99), ANY_JSON).map(
        lambda t: json.dumps(mutate(*t)).encode()
    )
    return st.one_of(
        encoded,
        encoded,
        mutated,
        ANY_JSON.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=64),
    )


PATH_VALUES = st.one_of(
    st.sampled_from(["bob", "alice", "fuzzer", "nobody", "AAAAAAAAAAAAAAAAAAAAAA"]),
    st.text(B64_ALPHABET, min_size=1, max_size=30),
    st.sampled_from(["%ff", "%", "%2e%2e", "a%00b", "..", "%C3%28", "x" * 300]),
)
QUERIES = st.sampled_from(
    ["", "?ack=1", "?ack=%ff", "?ack=0", "?start=0", "?start=%ff", "?start=-1", "?a=1&a=2"]
)


def calls(documents: dict[str, dict[str, Any]]) -> st.SearchStrategy[Call]:
    options = []
    for service, document in documents.items():
        defs = document["components"]["schemas"]
        for path, operations in document["paths"].items():
            for method, op in operations.items():
                content = op.get("requestBody", {}).get("content", {})
                stream = "application/octet-stream" in content
                if "application/json" in content:
                    body = broken(from_schema(content["application/json"]["schema"], defs))
                elif stream:
                    body = st.binary(max_size=256)
                else:
                    body = st.just(b"")
                options.append(
                    st.builds(
                        lambda s, m, p, b, q, mac, stream: Call(s, m, p + q, b, stream, mac),
                        st.just(service),
                        st.just(method.upper()),
                        fill(path),
                        body,
                        QUERIES,
                        st.booleans(),
                        st.just(stream),
                    )
                )
    return st.one_of(*options)


def fill(path: str) -> st.SearchStrategy[str]:
    parts = path.split("/")
    holes = [i for i, part in enumerate(parts) if part.startswith("{")]
    if not holes:
        return st.just(path)

    def put(values: list[str]) -> str:
        filled = list(parts)
        for i, value in zip(holes, values, strict=True):
            filled[i] = value
        return "/".join(filled)

    return st.lists(PATH_VALUES, min_size=len(holes), max_size=len(holes)).map(put)


def draw(documents: dict[str, dict[str, Any]], count: int, start: int) -> list[Call]:
    """`count` calls, drawn by hypothesis (reproducible from `start`)."""
    drawn: list[Call] = []

    @seed(start)
    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(calls(documents))
    def collect(call: Call) -> None:
        drawn.append(call)

    collect()
    return drawn


DRAWERS = 2  # processes drawing calls side by side (hypothesis takes about 2 ms a call)


async def draw_in_parallel(
    documents: dict[str, dict[str, Any]], count: int, start: int
) -> list[Call]:
    """`draw` in DRAWERS fresh processes (spawned: this one runs servers and threads), each its
    share from its own seed, so that 20,000 calls are drawn in the time of 10,000."""
    shares = [count // DRAWERS + (1 if i < count % DRAWERS else 0) for i in range(DRAWERS)]
    context = multiprocessing.get_context("spawn")
    loop = asyncio.get_running_loop()
    with concurrent.futures.ProcessPoolExecutor(DRAWERS, mp_context=context) as pool:
        parts = await asyncio.gather(
            *(
                loop.run_in_executor(pool, draw, documents, share, start + i)
                for i, share in enumerate(shares)
                if share
            )
        )
    return [call for part in parts for call in part]


@dataclass
class Target:
    directory_url: str
    daemon_url: str
    me: Identity
    pair_key: bytes


async def enroll(session: aiohttp.ClientSession, directory_url: str, me: Identity) -> None:
    name = "fuzzer"
    identity_key, x25519_key = b64e(me.identity_key), b64e(me.x25519_key)
    body = {
        "username": name,
        "identity_key": identity_key,
        "x25519_key": x25519_key,
        "x25519_sig": b64e(me.sign(binding_message(name, me.x25519_key))),
        "proof": sign_record(me, "enroll", enrollment_proof(name, identity_key, x25519_key)),
    }
    async with session.post(directory_url + "/dir/v1/enroll", json=body) as response:
        assert response.status == 201, await response.text()


async def send(
    session: aiohttp.ClientSession, target: Target, call: Call, outcome: Outcome
) -> None:
    base = target.daemon_url if call.service == "daemon" else target.directory_url
    url = URL(base + call.target, encoded=True)
    host = f"{url.host}:{url.port}"
    audience = "bob" if call.service == "daemon" else DIRECTORY_AUDIENCE
    now = int(time.time())
    body = b"" if call.method in ("GET", "DELETE") else call.body
    args = ("fuzzer", audience, call.method, call.target, host, body, now)
    if call.service == "daemon" and call.mac:
        headers = mac_request(target.pair_key, *args, unsigned_body=call.stream)
    else:
        headers = ed25519_request(target.me, *args, unsigned_body=call.stream)
    headers["Host"] = host
    headers["Content-Type"] = "application/octet-stream" if call.stream else "application/json"
    try:
        async with session.request(call.method, url, data=body or None, headers=headers) as answer:
            await answer.read()
            outcome.statuses[answer.status] += 1
            if answer.status >= 500:
                outcome.errors.append(f"{answer.status} {call.method} {call.target} {body[:200]!r}")
    except aiohttp.ClientError as exc:
        outcome.statuses[0] += 1
        outcome.errors.append(f"no answer ({type(exc).__name__}) {call.method} {call.target}")


async def unlimited_directory(cluster: Cluster) -> DirectoryServer:
    """A directory whose rate limits do not get in the way of one very busy user."""
    return await cluster.start_directory(
        rate_per_address=UNLIMITED,
        burst_per_address=UNLIMITED,
        rate_per_user=UNLIMITED,
        burst_per_user=UNLIMITED,
    )


async def fuzz(root: Path, requests: int, start: int = 20261201, parallel: int = 8) -> Outcome:
    """Start a directory and bob's daemon (limits lifted: the fuzzer is one very busy user),
    enroll the fuzzer, and send `requests` drawn calls."""
    cluster = Cluster(root)
    outcome = Outcome()
    try:
        directory = await unlimited_directory(cluster)
        node = await cluster.add_user(
            "bob",
            limits__peer_rate_per_address=UNLIMITED,
            limits__peer_burst_per_address=UNLIMITED,
            limits__peer_rate_per_sender=UNLIMITED,
            limits__peer_burst_per_sender=UNLIMITED,
        )
        assert node.services is not None
        daemon_url = f"https://127.0.0.1:{node.peer_port}"
        bob_key = node.services.ctx.keys.account.x25519_key
        # Both servers are this run's own, on loopback: their certificates are not checked.
        connector = aiohttp.TCPConnector(ssl=False)
        async with aiohttp.ClientSession(connector=connector) as session:
            me = Identity.generate()
            await enroll(session, directory.url, me)
            documents = {}
            for service, url in (
                ("daemon", daemon_url + "/api/v1"),
                ("directory", directory.url + "/dir/v1"),
            ):
                async with session.get(url + "/openapi.json") as response:
                    documents[service] = await response.json()
            target = Target(
                directory.url,
                daemon_url,
                me,
                ratchet.pair_key(me.exchange, "fuzzer", bob_key, "bob"),
            )
            drawn = await draw_in_parallel(documents, requests, start)
            slots = asyncio.Semaphore(parallel)

            async def one(call: Call) -> None:
                async with slots:
                    await send(session, target, call, outcome)

            await asyncio.gather(*(one(call) for call in drawn))
    finally:
        await cluster.close()
    return outcome


async def run_fuzz_schema(requests: int, folder: Path | None) -> int:
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        outcome = await fuzz(folder or Path(scratch), requests)
    print(
        f"fuzz-schema: {outcome.sent} signed requests, answers {dict(sorted(outcome.statuses.items()))}"
    )
    for line in outcome.errors[:20]:
        print("  " + line)
    print(f"fuzz-schema: {len(outcome.errors)} answers of 5xx or none")
    return 1 if outcome.errors else 0
