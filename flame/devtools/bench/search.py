"""The bench's search figure: a daemon-format database (opened, migrated and indexed by the
daemon's own store code) with many synthetic messages whose words follow a natural (Zipf)
frequency law, then timed queries through the daemon's own search code, and edits and deletes
through its own store code.

A uniform vocabulary would flatter any full-text index (every word is rare); real text has a few
words that appear in a large share of messages, and those are the slow queries (docs/ARCHITECTURE.md
on search, PROTOCOL.md §12.3).
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flame.core.crypto import new_db_key
from flame.core.search import parse_query
from flame.devtools.stats import summary_ms
from flame.store.actions import apply_delete, apply_edit
from flame.store.db import Database
from flame.store.search import SearchFilters, search_messages

SCHEMA = "flame.store.schema"
ZIPF_S = 1.07  # English word frequencies fall off roughly as 1/rank^1.07
ZIPF_Q = 2.7  # the Mandelbrot offset: flattens the very top, as in real corpora
VOCABULARY = 50_000
PEERS = 40
BATCH_ROWS = 50_000
QUERIES = 200
ACTIONS = 50  # edits, and as many deletes for everyone, timed on the corpus
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


async def bulk_load(db: Database, count: int) -> None:
    """Insert `count` messages into a migrated daemon database, through the real triggers that
    index them, in big transactions (the rows are made in a thread, a batch at a time)."""
    await db.execute("PRAGMA synchronous=OFF")  # only the load skips fsync
    rows = message_rows(count)
    while batch := await asyncio.to_thread(lambda: list(itertools.islice(rows, BATCH_ROWS))):
        async with db.transaction() as conn:
            await conn.executemany(
                "INSERT INTO messages (id, peer, direction, author, seq, kind, body, sent_at,"
                " received_at, state) VALUES (?,?,?,?,?,?,?,?,?,?)",
                batch,
            )
    await db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


async def index_bytes(db: Database, path: Path) -> tuple[int, int]:
    """(bytes of the FTS5 message index, bytes of the whole database) on disk. The index's size is
    that of its shadow tables' contents (SQLCipher's build has no `dbstat` table to count pages)."""
    row = await db.fetchone(
        "SELECT (SELECT coalesce(sum(length(block)), 0) FROM messages_fts_data)"
        " + (SELECT coalesce(sum(length(sz)), 0) FROM messages_fts_docsize)"
        " + (SELECT coalesce(sum(length(term)) + 16 * count(*), 0) FROM messages_fts_idx)"
    )
    return int(row[0]) if row is not None else 0, path.stat().st_size


def pick_queries(count: int, seed: int = SEED) -> list[tuple[str, str]]:
    """(kind, text): a quarter one very common word (the top 20), a quarter one word of middling
    frequency, a fifth one rare word, the rest two words mixing all three."""
    rng = random.Random(seed + 1)
    words = vocabulary(VOCABULARY, random.Random(seed))
    common, middle, rare = words[:20], words[20:1000], words[1000:]
    picked: list[tuple[str, str]] = []
    for index in range(count):
        share = index / count
        if share < 0.25:
            picked.append(("common", rng.choice(common)))
        elif share < 0.5:
            picked.append(("middle", rng.choice(middle)))
        elif share < 0.7:
            picked.append(("rare", rng.choice(rare)))
        else:
            pool = rng.choice([common, middle, rare])
            picked.append(("two words", f"{rng.choice(common + middle)} {rng.choice(pool)}"))
    return picked


async def time_actions(db: Database, count: int, actions: int = ACTIONS) -> dict[str, list[float]]:
    """Edits and deletes for everyone through the daemon's own code (store/actions.py) on
    messages spread over the corpus, durable as a daemon's: the index follows each edit, and a
    delete takes the text out of the table and the index and then cuts the write-ahead log
    (PROTOCOL.md §17.3). Seconds each."""
    await db.execute("PRAGMA synchronous=FULL")  # the load ran without fsync; these do not
    step = max(1, count // (2 * actions))
    keys = [f"bench:{index:08x}" for index in range(0, count, step)][: 2 * actions]
    times: dict[str, list[float]] = {"edit": [], "delete": []}
    for n, key in enumerate(keys):
        row = await db.fetchone("SELECT peer FROM messages WHERE id = ?", (key,))
        assert row is not None
        began = time.perf_counter()
        async with db.transaction() as conn:
            if n % 2 == 0:
                ts_ms = int(time.time() * 1000)
                await apply_edit(conn, key, f"bench-edit:{n}", "an edited text", ts_ms)
            else:
                await apply_delete(conn, key, row["peer"], "everyone", time.time())
        if n % 2:
            await db.truncate_wal()
        times["edit" if n % 2 == 0 else "delete"].append(time.perf_counter() - began)
    return times


async def run_search_bench(folder: Path, messages: int, queries: int = QUERIES) -> dict[str, Any]:
    """Build the corpus in `folder`, then time `queries` searches through the daemon's search
    code (store.search.search_messages, 30 results as the UI asks), newest-first and by
    relevance. Times are returned in seconds, per kind of query."""
    path = folder / "search-bench.db"
    picked = pick_queries(queries)
    times: dict[str, dict[str, list[float]]] = {"newest": {}, "relevance": {}}
    hits: list[int] = []
    started = time.perf_counter()
    # The real migrations, triggers included, encrypted as a daemon's database is (SQLCipher)
    db = await Database.open(path, SCHEMA, key=new_db_key())
    try:
        await bulk_load(db, messages)
        build_s = time.perf_counter() - started
        fts_bytes, db_bytes = await index_bytes(db, path)
        for order in ("newest", "relevance"):
            for kind, text in picked:
                match = parse_query(text).match()
                began = time.perf_counter()
                found = await search_messages(db, match, SearchFilters(order=order, limit=30))
                times[order].setdefault(kind, []).append(time.perf_counter() - began)
                if order == "newest":
                    hits.append(len(found))
        actions_s = await time_actions(db, messages)
    finally:
        await db.close()
    return {
        "messages": messages,
        "queries": len(picked),
        "build_s": round(build_s, 1),
        "index_bytes": fts_bytes,
        "db_bytes": db_bytes,
        "times_s": times,
        "actions_s": actions_s,
        "mean_hits": round(sum(hits) / max(1, len(hits)), 1),
        "zipf_s": ZIPF_S,
        "vocabulary": VOCABULARY,
    }


def search_figures(raw: dict[str, Any]) -> dict[str, Any]:
    """run_search_bench's raw times, summarised in milliseconds per order and kind of query."""
    figures = {key: value for key, value in raw.items() if key not in ("times_s", "actions_s")}
    figures["edit_ms"] = summary_ms(raw["actions_s"]["edit"])
    figures["delete_ms"] = summary_ms(raw["actions_s"]["delete"])
    for order, kinds in raw["times_s"].items():
        every = [t for samples in kinds.values() for t in samples]
        figures[f"{order}_ms"] = summary_ms(every)
        figures[f"{order}_by_kind_ms"] = {kind: summary_ms(t) for kind, t in kinds.items()}
    return figures


def search_rows(search: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [
        (
            f"search, {search['messages']:,} messages",
            f"{search['queries']} queries (Zipf words, s={search['zipf_s']}), 30 results each",
        ),
        ("  corpus built in", f"{search['build_s']:.0f} s (bulk insert, real schema and triggers)"),
        (
            "  FTS5 index on disk",
            f"{search['index_bytes'] / 1e6:.1f} MB (database {search['db_bytes'] / 1e6:.0f} MB)",
        ),
    ]
    for order in ("newest", "relevance"):
        ms = search[f"{order}_ms"]
        common = search[f"{order}_by_kind_ms"].get("common", ms)
        rows.append(
            (
                f"  {order} first p50 / p99",
                f"{ms['p50']:.2f} / {ms['p99']:.2f} ms "
                f"(common words: {common['p50']:.2f} / {common['p99']:.2f} ms)",
            )
        )
    edit, delete = search["edit_ms"], search["delete_ms"]
    rows.append(
        (
            f"  edit / delete, {edit['count']} each",
            f"p50 {edit['p50']:.1f} / {delete['p50']:.1f} ms, p99 {edit['p99']:.1f} / "
            f"{delete['p99']:.1f} ms (durable; a delete cuts the WAL)",
        )
    )
    rows.append(("", ""))
    return rows
