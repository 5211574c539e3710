"""The directory bench's senders (bench/dirload.py): a few client processes, each with its share of
the calls already written out as HTTP/1.1 requests (signed before the clock starts), sent over
keep-alive TLS connections pinned to the directory's certificate, one request at a time per
connection. Only the answer's status line, Content-Length and body are read: the client costs
little next to the directory, so the figures are the directory's, and it runs beside it on the
same cores in processes of its own (a single Python client was the limit before).

Every answer is still checked (a status, or a body the caller's check reads)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import multiprocessing
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import urlsplit

from flame.devtools.bench.machine import cpu_seconds

Check = Callable[[int, bytes], None]


@dataclass(frozen=True)
class Sent:
    """One phase: its seconds, and the CPU seconds of the processes metered and of the clients
    (each only while it sent)."""

    seconds: float
    cpu_s: float
    client_cpu_s: float


@dataclass(frozen=True)
class Batch:
    """One client process's share of a phase: requests for one directory each, their check."""

    shares: list[tuple[str, list[bytes]]]  # (the directory's URL, its requests)
    connections: int  # per directory URL
    fingerprint: bytes  # SHA-256 of the directory's certificate (PROTOCOL.md §1.3)
    check: Check | None


def client_context() -> ssl.SSLContext:
    """TLS 1.3; the certificate is checked by its fingerprint once connected (`pinned`)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def pinned(url: str, fingerprint: bytes, context: ssl.SSLContext) -> Any:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port, ssl=context)
    certificate = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    if hashlib.sha256(certificate).digest() != fingerprint:
        writer.close()
        raise RuntimeError(f"{url} showed another certificate than the pinned one")
    return reader, writer


def body_length(head: bytes) -> int:
    """The Content-Length of an answer's head (0 without one: 304, or an empty body)."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        lowered = name.strip().lower()
        if lowered == b"content-length":
            return int(value)
        if lowered == b"transfer-encoding":
            raise RuntimeError("a chunked answer: this client reads Content-Length only")
    return 0


async def send_all(reader: Any, writer: Any, requests: Iterator[bytes], check: Check | None) -> int:
    sent = 0
    for request in requests:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        body = await reader.readexactly(body_length(head))
        if check is not None:
            check(status, body)
        elif status >= 400:
            raise RuntimeError(f"answered {status} {body[:200]!r}")
        sent += 1
    return sent


async def serve_batches(pipe: Connection) -> None:
    """Per phase: connect, say "ready", wait for "go", send everything, say how many."""
    context = client_context()
    loop = asyncio.get_running_loop()
    while (batch := await loop.run_in_executor(None, pipe.recv)) is not None:
        try:
            lanes = []
            for url, requests in batch.shares:
                queue = iter(requests)
                for _ in range(batch.connections):
                    lanes.append((*await pinned(url, batch.fingerprint, context), queue))
            pipe.send("ready")
            await loop.run_in_executor(None, pipe.recv)
            started = time.process_time()
            counts = await asyncio.gather(
                *(send_all(reader, writer, queue, batch.check) for reader, writer, queue in lanes)
            )
            cpu = time.process_time() - started
            for _, writer, _ in lanes:
                writer.close()
            pipe.send(("done", sum(counts), cpu))
        except Exception as exc:  # told to the bench, which stops with it
            pipe.send(("failed", f"{type(exc).__name__}: {exc}"))


def client_main(pipe: Connection) -> None:
    asyncio.run(serve_batches(pipe))


@dataclass(eq=False)
class LoadClients:
    """`count` client processes (spawned, so none inherits the bench's event loop)."""

    count: int
    pipes: list[Connection]
    procs: list[Any]

    @classmethod
    def start(cls, count: int) -> LoadClients:
        spawn = multiprocessing.get_context("spawn")
        pipes, procs = [], []
        for _ in range(count):
            ours, theirs = spawn.Pipe()
            proc = spawn.Process(target=client_main, args=(theirs,), daemon=True)
            proc.start()
            pipes.append(ours)
            procs.append(proc)
        return cls(count, pipes, procs)

    async def run(
        self,
        requests: list[tuple[str, bytes]],
        fingerprint: bytes,
        in_flight: int,
        check: Check | None = None,
        metered: Sequence[int] = (),
    ) -> Sent:
        """Send every (url, request), `in_flight` at a time over all, from the moment every
        connection is open to the last answer; meanwhile the `metered` processes' CPU."""
        loop = asyncio.get_running_loop()
        urls = sorted({url for url, _ in requests})
        per_client = max(1, in_flight // (self.count * len(urls)))
        for i, pipe in enumerate(self.pipes):
            mine = requests[i :: self.count]
            shares = [(url, [r for u, r in mine if u == url]) for url in urls]
            pipe.send(Batch(shares, per_client, fingerprint, check))
        for pipe in self.pipes:
            self._expect(await loop.run_in_executor(None, pipe.recv), "ready")
        before = [cpu_seconds(pid) or 0.0 for pid in metered]
        started = time.perf_counter()
        for pipe in self.pipes:
            pipe.send("go")
        answers = await asyncio.gather(*(loop.run_in_executor(None, p.recv) for p in self.pipes))
        took = time.perf_counter() - started
        cpu = sum((cpu_seconds(pid) or 0.0) - b for pid, b in zip(metered, before, strict=True))
        sent, client_cpu = 0, 0.0
        for answer in answers:
            self._expect(answer, "done")
            sent += answer[1]
            client_cpu += answer[2]
        if sent != len(requests):
            raise RuntimeError(f"the clients sent {sent} of {len(requests)} requests")
        return Sent(took, cpu, client_cpu)

    @staticmethod
    def _expect(answer: Any, what: str) -> None:
        kind = answer if isinstance(answer, str) else answer[0]
        if kind != what:
            raise RuntimeError(f"a load client failed: {answer[1]}")

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(None)
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
