"""`flame bench`'s search figure: a daemon-format database with many synthetic messages whose words
follow a natural (Zipf) frequency law, then timed queries through the daemon's own search code.

A uniform vocabulary would flatter any full-text index (every word is rare); real text has a few
words that appear in a large share of messages, and those are the slow queries (DESIGN §10).
Nothing here is imported by the daemon.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import json
import random
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flame.store.db import Database

# from flame.store.search import SearchFilters, search_messages

SCHEMA = "flame.store.schema"
ZIPF_S = 1.07  # English word frequencies fall off roughly as 1/rank^1.07
ZIPF_Q = 2.7  # the Mandelbrot offset: flattens the very top, as in real corpora
VOCABULARY = 50_000
PEERS = 40
BATCH_ROWS = 50_000
QUERIES = 200
SEED = 5

# The head of the vocabulary is real English (the words people type most); the long tail is
# made of syllables, so that rare words exist in the numbers real text has them.
COMMON = (
    "the to and a of i you it is in that for we on be this have with are not will at can do "
    "me so if but was my your just all what about get from there they meeting call today "
    "tomorrow thanks please need think know time would one good like now should could yes no "
    "board report budget review deal team week plan send update contract draft numbers client "
    "quarter market price share launch office legal sign approve agenda minutes forecast"
).split()
SYLLABLES = (
    "ba be bi bo bu da de di do du fa fe fi fo ka ke ki ko ku la le li lo lu ma me mi mo mu na "
    "ne ni no nu pa pe pi po pu ra re ri ro ru sa se si so su ta te ti to tu va ve vi vo za ze "
    "zi zo tra pro con ex in ver an en on ar er or st nd"
).split()


def vocabulary(size: int, rng: random.Random) -> list[str]:
    words = list(dict.fromkeys(COMMON))
    seen = set(words)
    while len(words) < size:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def zipf_cumulative(size: int) -> list[float]:
    weights = [1.0 / (rank + ZIPF_Q) ** ZIPF_S for rank in range(1, size + 1)]
    return list(itertools.accumulate(weights))


def message_rows(count: int, seed: int = SEED) -> Iterator[tuple[Any, ...]]:
    """Rows for the messages table, oldest first: text of 1-60 words (median 9) drawn by Zipf
    frequency, spread over PEERS conversations of Zipf-distributed activity and two years."""
    rng = random.Random(seed)
    words = vocabulary(VOCABULARY, rng)
    cumulative = zipf_cumulative(len(words))
    total = cumulative[-1]
    peers = [f"peer{n:02d}" for n in range(PEERS)]
    peer_cumulative = zipf_cumulative(PEERS)
    start = time.time() - 2 * 365 * 86400
    step = 2 * 365 * 86400 / max(1, count)
    seqs = dict.fromkeys(peers, 0)
    for index in range(count):
        length = min(60, max(1, int(rng.lognormvariate(2.2, 0.6))))
        text = " ".join(
            words[bisect.bisect_left(cumulative, rng.random() * total)] for _ in range(length)
        )
        peer = peers[bisect.bisect_left(peer_cumulative, rng.random() * peer_cumulative[-1])]
        seqs[peer] += 1
        outgoing = rng.random() < 0.5
        sent_at = start + index * step
        yield (
            f"bench:{index:08x}",
            peer,
            "out" if outgoing else "in",
            "me" if outgoing else peer,
            seqs[peer],
            "text",
            json.dumps({"text": text}, separators=(",", ":"), ensure_ascii=False),
            sent_at,
            None if outgoing else sent_at + 0.2,
            "sent" if outgoing else "received",
        )


def build_corpus(path: Path, count: int) -> float:
    """Create a daemon database at `path` (the real migrations) and bulk-load `count` messages
    through the real insert triggers (big transactions). Returns the seconds it took."""
    started = time.perf_counter()

    async def migrate() -> None:
        db = await Database.open(path, SCHEMA)
        await db.close()

    asyncio.run(migrate()) if not _in_loop() else None
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        # Only the load runs without fsync; the index and the rows are the daemon's own.
        conn.execute("PRAGMA synchronous=OFF")
        rows = message_rows(count)
        while batch := list(itertools.islice(rows, BATCH_ROWS)):
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO messages (id, peer, direction, author, seq, kind, body, sent_at,"
                " received_at, state) VALUES (?,?,?,?,?,?,?,?,?,?)",
                batch,
            )
            conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return time.perf_counter() - started


def _in_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
