"""This user's own status (PROTOCOL.md §12.2): what they chose, and what the daemon reports in its
signed presence. No I/O here; the caller passes the times.

The user chooses online, away, busy or offline ("appear offline": the daemon keeps working, and
says offline). A chosen `online` turns into `away` on its own after `idle_away_s` without any
activity in the UI, or `no_ui_away_s` after the last UI session closed; activity turns it back.
"""

from __future__ import annotations

from dataclasses import dataclass

from flame.core.models import Status


@dataclass(frozen=True, slots=True)
class Activity:
    """What the status depends on besides the choice. Times are epoch seconds."""

    last_activity: float  # the user's last input in a UI (or login, or a send)
    ui_sessions: int  # UI live feeds connected now
    ui_last_seen: float  # when the last UI feed closed (or the daemon started)


def reported_status(
    choice: Status, activity: Activity, now: float, *, idle_away_s: float, no_ui_away_s: float
) -> Status:
    if choice != "online":
        return choice
    if now - activity.last_activity >= idle_away_s:
        return "away"
    if activity.ui_sessions == 0 and now - activity.ui_last_seen >= no_ui_away_s:
        return "away"
    return "online"


def next_change(
    choice: Status, activity: Activity, now: float, *, idle_away_s: float, no_ui_away_s: float
) -> float | None:
    """When `reported_status` would change by itself (no new event), or None if it will not."""
    if (
        reported_status(choice, activity, now, idle_away_s=idle_away_s, no_ui_away_s=no_ui_away_s)
        != "online"
    ):
        return None
    due = activity.last_activity + idle_away_s
    if activity.ui_sessions == 0:
        due = min(due, activity.ui_last_seen + no_ui_away_s)
    return due
