"""The status rules (PROTOCOL.md §12.2): a chosen status is kept; online turns away when idle or
without a UI, at times the rules can say in advance."""

from __future__ import annotations

import pytest

from flame.core.models import Status
from flame.core.status import Activity, next_change, reported_status

LIMITS = {"idle_away_s": 600.0, "no_ui_away_s": 60.0}


@pytest.mark.parametrize("choice", ["away", "busy", "offline"])
def test_a_chosen_status_is_kept_whatever_the_activity(choice: Status) -> None:
    idle = Activity(last_activity=0.0, ui_sessions=0, ui_last_seen=0.0)
    assert reported_status(choice, idle, 10_000.0, **LIMITS) == choice
    assert next_change(choice, idle, 10_000.0, **LIMITS) is None


def test_online_turns_away_when_idle_or_without_a_ui() -> None:
    open_ui = Activity(last_activity=1000.0, ui_sessions=1, ui_last_seen=0.0)
    assert reported_status("online", open_ui, 1599.0, **LIMITS) == "online"
    assert next_change("online", open_ui, 1599.0, **LIMITS) == 1600.0
    assert reported_status("online", open_ui, 1600.0, **LIMITS) == "away"
    assert next_change("online", open_ui, 1600.0, **LIMITS) is None

    closed = Activity(last_activity=1000.0, ui_sessions=0, ui_last_seen=1010.0)
    assert reported_status("online", closed, 1069.0, **LIMITS) == "online"
    assert next_change("online", closed, 1069.0, **LIMITS) == 1070.0
    assert reported_status("online", closed, 1070.0, **LIMITS) == "away"
