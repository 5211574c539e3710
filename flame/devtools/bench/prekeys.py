"""The bench's prekey figures (PROTOCOL.md §14.3): what a refill costs the directory (a PUT of 25
signed one-time keys and a fallback key, every signature checked) and what a claim costs (one
key handed out and deleted in one statement). An in-process directory on loopback, its limits
lifted; the keys are made and signed before the clock starts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from flame.core import ratchet
from flame.core.crypto import Identity
from flame.core.prekeys import PrekeyUpload
from flame.core.signing import DIRECTORY_AUDIENCE, sign_request
from flame.devtools.cluster import Cluster
from flame.devtools.fuzz_schema import enroll, unlimited_directory
from flame.devtools.stats import summary_ms

REFILLS = 40
CLAIMS = 400


async def _call(
    session: aiohttp.ClientSession, me: Identity, url: str, method: str, path: str, body: bytes
) -> int:
    target = URL(url + path)
    host = f"{target.host}:{target.port}"
    headers = sign_request(
        me, "fuzzer", DIRECTORY_AUDIENCE, method, path, host, body, int(time.time())
    )
    headers |= {"Host": host, "Content-Type": "application/json"}
    async with session.request(method, target, data=body or None, headers=headers) as answer:
        await answer.read()
        return answer.status


async def measure_prekeys(root: Path) -> dict[str, Any]:
    cluster = Cluster(root)
    try:
        directory = await unlimited_directory(cluster)
        me = Identity.generate()
        account = ratchet.new_account()
        bodies = []
        for _ in range(REFILLS):
            one_time, fallback = ratchet.fresh_prekeys(
                account, me, "fuzzer", ratchet.PREKEYS_TARGET
            )
            account.mark_keys_as_published()
            assert fallback is not None
            bodies.append(
                PrekeyUpload(one_time=one_time, fallback=fallback).model_dump_json().encode()
            )
        refill_s, claim_s = [], []
        assert cluster.directory_tls is not None  # the directory serves TLS
        pinned = aiohttp.TCPConnector(ssl=aiohttp.Fingerprint(cluster.directory_tls))
        async with aiohttp.ClientSession(connector=pinned) as session:
            await enroll(session, directory.url, me)
            for body in bodies:
                began = time.perf_counter()
                status = await _call(session, me, directory.url, "PUT", "/dir/v1/prekeys", body)
                refill_s.append(time.perf_counter() - began)
                assert status == 200, status
            for _ in range(CLAIMS):
                began = time.perf_counter()
                status = await _call(
                    session, me, directory.url, "POST", "/dir/v1/prekeys/fuzzer/claim", b""
                )
                claim_s.append(time.perf_counter() - began)
                assert status == 200, status
    finally:
        await cluster.close()
    return {
        "keys_per_refill": ratchet.PREKEYS_TARGET + 1,
        "refill_ms": summary_ms(refill_s),
        "claims": CLAIMS,
        "claim_ms": summary_ms(claim_s),
    }


def prekey_rows(figure: dict[str, Any]) -> list[tuple[str, str]]:
    refill, claim = figure["refill_ms"], figure["claim_ms"]
    return [
        ("prekey refill at the directory", f"PUT of {figure['keys_per_refill']} signed keys"),
        ("  p50 / p99", f"{refill['p50']:.2f} / {refill['p99']:.2f} ms"),
        (
            f"prekey claim, {figure['claims']} in a row",
            "POST …/claim (the fallback when none left)",
        ),
        ("  p50 / p99", f"{claim['p50']:.2f} / {claim['p99']:.2f} ms"),
    ]
