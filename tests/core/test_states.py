"""One order of message states (core/states.py): the store's SQL is made from it and ranks the
same, and the page's copy (web/states.js) is the same list."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from flame.core import states

WEB_STATES = Path(__file__).resolve().parents[2] / "web" / "states.js"


def test_the_page_moves_states_along_the_same_line() -> None:
    line = re.search(r"^export const STATE_ORDER = \[(.*)\];$", WEB_STATES.read_text(), re.M)
    assert line is not None, "web/states.js must keep STATE_ORDER on one line"
    assert tuple(re.findall(r"'([a-z_]+)'", line.group(1))) == states.MESSAGE_STATES
    ranks_as = dict(re.findall(r"\['([a-z_]+)', '([a-z_]+)'\]", WEB_STATES.read_text()))
    assert states.rank(ranks_as[states.FAILED]) == states.rank(states.FAILED)


def test_the_sql_ranks_exactly_as_the_python() -> None:
    with sqlite3.connect(":memory:") as conn:
        for state in (*states.MESSAGE_STATES, states.FAILED, states.RECEIVED, "unknown"):
            (ranked,) = conn.execute(f"SELECT {states.rank_sql('?')}", (state,)).fetchone()
            assert ranked == states.rank(state), state


def test_states_only_move_forward_and_failed_can_still_move_on() -> None:
    ranks = [states.rank(state) for state in states.MESSAGE_STATES]
    assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks)
    assert states.rank(states.FAILED) < states.rank("relayed")
    assert set(states.HELD_BY_PEER) == {"sent", "delivered", "read"}
