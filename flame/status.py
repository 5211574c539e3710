"""This user's own status, the daemon's side (PROTOCOL.md §12.2; the rules in core/status.py):
the choice (kept in the database), UI activity and sessions, and waking the presence report as
soon as what it would say changes."""

from __future__ import annotations

from typing import Any, cast

from flame.clock import wait_event
from flame.core.models import STATUSES, Status
from flame.core.status import Activity, next_change, reported_status
from flame.errors import BadRequest
from flame.parts import Parts
from flame.store.keystore import get_meta, set_meta

CHOICE_KEY = "status_choice"


def _activity(parts: Parts) -> Activity:
    return Activity(parts.last_activity, parts.ui_sessions, parts.ui_last_seen)


def _limits(parts: Parts) -> dict[str, float]:
    status = parts.settings.status
    return {"idle_away_s": status.idle_away_s, "no_ui_away_s": status.no_ui_away_s}


def current(parts: Parts) -> Status:
    """What the presence report says now."""
    return reported_status(
        parts.status_choice, _activity(parts), parts.clock.now(), **_limits(parts)
    )


def view(parts: Parts) -> dict[str, Any]:
    return {"type": "my_status", "choice": parts.status_choice, "status": current(parts)}


def _check(parts: Parts) -> None:
    """Tell the UI and the presence task if the reported status changed."""
    status = current(parts)
    if status != parts.reported_status:
        parts.reported_status = status
        parts.hub.publish(view(parts))
        parts.wake_presence.set()


async def load(parts: Parts) -> None:
    """At unlock: the last choice; activity counts from now."""
    saved = await get_meta(parts.db, CHOICE_KEY)
    if saved in STATUSES:
        parts.status_choice = cast(Status, saved)
    now = parts.clock.now()
    parts.last_activity = max(parts.last_activity, now)
    parts.ui_last_seen = max(parts.ui_last_seen, now)
    parts.reported_status = current(parts)


async def choose(parts: Parts, choice: str) -> dict[str, Any]:
    if choice not in STATUSES:
        raise BadRequest("The status must be online, away, busy or offline.", code="bad_status")
    await set_meta(parts.db, CHOICE_KEY, choice)
    parts.status_choice = cast(Status, choice)
    parts.last_activity = parts.clock.now()  # choosing is activity
    parts.reported_status = current(parts)
    parts.wake_presence.set()
    parts.hub.publish(view(parts))  # every tab shows the choice, even when the report is the same
    return view(parts)


def activity(parts: Parts) -> None:
    parts.last_activity = parts.clock.now()
    _check(parts)


def ui_opened(parts: Parts) -> None:
    parts.ui_sessions += 1
    activity(parts)


def ui_closed(parts: Parts) -> None:
    parts.ui_sessions = max(0, parts.ui_sessions - 1)
    parts.ui_last_seen = parts.clock.now()
    _check(parts)


async def wait(parts: Parts, interval_s: float) -> None:
    """Sleep until the next periodic report, or sooner: when the status changes by itself (idle)
    or by an event (a choice, activity)."""
    parts.wake_presence.clear()
    now = parts.clock.now()
    due = next_change(parts.status_choice, _activity(parts), now, **_limits(parts))
    timeout = interval_s if due is None else max(0.0, min(interval_s, due - now + 0.01))
    await wait_event(parts.wake_presence, timeout)
    _check(parts)
