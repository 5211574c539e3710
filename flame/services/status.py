"""This user's own status (PROTOCOL.md §12.2; the rules are core/status.py's): the choice (kept in
the database), UI activity and sessions, and waking the presence report as soon as what it would
say changes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import cast

from flame.clock import wait_event
from flame.core.models import STATUSES, Status
from flame.core.status import Activity, next_change, reported_status
from flame.errors import BadRequest
from flame.services.context import Context
from flame.services.events import MyStatusChanged
from flame.store.keystore import get_meta, set_meta

CHOICE_KEY = "status_choice"


@dataclass(eq=False)
class StatusTracker:
    ctx: Context
    choice: Status = field(default="online", init=False)
    last_activity: float = field(default=0.0, init=False)
    ui_sessions: int = field(default=0, init=False)
    ui_last_seen: float = field(default=0.0, init=False)
    reported: Status | None = field(default=None, init=False)
    # Appearing offline: the peers the user wrote to since, who know the user is up (§12.2).
    shown_to: set[str] = field(default_factory=set, init=False)
    # Wakes the presence report.
    changed: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    def _activity(self) -> Activity:
        return Activity(self.last_activity, self.ui_sessions, self.ui_last_seen)

    def _limits(self) -> dict[str, float]:
        settings = self.ctx.settings.status
        return {"idle_away_s": settings.idle_away_s, "no_ui_away_s": settings.no_ui_away_s}

    @property
    def is_hidden(self) -> bool:
        """ "Appear offline" (PROTOCOL.md §12.2): to peers this daemon is a locked one, and its
        own loops do not reach out to them."""
        return self.choice == "offline"

    def may_reach(self, peer: str) -> bool:
        """Whether this daemon may call `peer` (PROTOCOL.md §12.2): always, unless the user
        appears offline; then only a peer the user wrote to since, never by itself."""
        return not self.is_hidden or peer in self.shown_to

    def wrote_to(self, peer: str) -> None:
        """The user sends `peer` a message or a file: appearing offline, to them the user is up
        from now on (what is queued for them goes too)."""
        if self.is_hidden:
            self.shown_to.add(peer)

    def current(self) -> Status:
        """What the presence report says now."""
        return reported_status(
            self.choice, self._activity(), self.ctx.clock.now(), **self._limits()
        )

    def view(self) -> MyStatusChanged:
        return MyStatusChanged(self.choice, self.current())

    def _check(self) -> None:
        """Tell the UI and the presence report if the reported status changed."""
        status = self.current()
        if status != self.reported:
            self.reported = status
            self.ctx.events.publish(self.view())
            self.changed.set()

    async def load(self) -> None:
        """At unlock: the last choice; activity counts from now."""
        saved = await get_meta(self.ctx.db, CHOICE_KEY)
        if saved in STATUSES:
            self.choice = cast(Status, saved)
        now = self.ctx.clock.now()
        self.last_activity = max(self.last_activity, now)
        self.ui_last_seen = max(self.ui_last_seen, now)
        self.reported = self.current()

    async def choose(self, choice: str) -> MyStatusChanged:
        if choice not in STATUSES:
            raise BadRequest("The status must be online, away, busy or offline.", code="bad_status")
        await set_meta(self.ctx.db, CHOICE_KEY, choice)
        was_hidden = self.is_hidden
        self.choice = cast(Status, choice)
        self.shown_to.clear()
        if was_hidden and not self.is_hidden:  # what waited for peers goes now
            self.ctx.wake.outbox.set()
            self.ctx.wake.relay.set()
        self.last_activity = self.ctx.clock.now()  # choosing is activity
        self.reported = self.current()
        self.changed.set()
        view = self.view()
        self.ctx.events.publish(view)  # every tab shows the choice, even if the report is the same
        return view

    def activity(self) -> None:
        self.last_activity = self.ctx.clock.now()
        self._check()

    def ui_opened(self) -> None:
        self.ui_sessions += 1
        self.activity()

    def ui_closed(self) -> None:
        self.ui_sessions = max(0, self.ui_sessions - 1)
        self.ui_last_seen = self.ctx.clock.now()
        self._check()

    async def wait(self, interval_s: float) -> None:
        """Sleep until the next periodic report, or sooner: when the status changes by itself
        (idle) or by an event (a choice, activity). A change made while the last report was on its
        way (a slow directory) ends the wait at once: the event is cleared only once it is seen,
        so that report goes out now rather than a whole interval later."""
        now = self.ctx.clock.now()
        due = next_change(self.choice, self._activity(), now, **self._limits())
        timeout = interval_s if due is None else max(0.0, min(interval_s, due - now + 0.01))
        await wait_event(self.changed, timeout)
        self.changed.clear()
        self._check()
