"""What people do to messages (PROTOCOL.md §17): the bodies of the kinds `edit`, `delete`,
`reaction` and `typing`, the reference a reply or an action makes to a message, what an emoji
is, and the limits. The rules are here once; the store applies them, the services ask. No I/O.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from flame.core.encoding import b64d
from flame.core.wire import Username, Wire
from flame.errors import BadRequest, RequestError

# An edit, or a delete for everyone, may be written up to this long after the message (the
# author's clock, both times), and no earlier than CLOCK_SLACK_MS before it (a clock set back).
ACTION_WINDOW_MS = 24 * 3600 * 1000
CLOCK_SLACK_MS = 10 * 60 * 1000
# ... and arrive up to this long after the message arrived (the receiver's clock): the window, the
# 14 days an envelope may wait in outboxes and relays (§13.1), and a day to spare.
ARRIVAL_LIMIT_S = 16 * 24 * 3600.0
MAX_EDITS = 10  # edits of one message
MAX_REACTIONS = 20  # different emoji one person has on one message at once
EXCERPT_CHARS = 200  # of a quoted message, as the UI shows it
# The reactions a UI offers first; any other single emoji (is_emoji) is as good.
QUICK_REACTIONS = ("👍", "❤️", "😂", "😮", "😢", "🙏")
# Typing notices (§17.5): the sender's pace, and the receiver's bucket per author.
TYPING_INTERVAL_S = 3.0
TYPING_TTL_S = 6.0
TYPING_STALE_S = 30.0
TYPING_RATE_PER_S = 0.5
TYPING_BURST = 5
TYPING_RETRY_AFTER_S = 2


def _envelope_id(value: str) -> str:
    try:
        b64d(value, length=16, what="message id")
    except BadRequest as exc:
        raise ValueError(exc.message) from exc
    return value


EnvelopeId = Annotated[str, Field(max_length=22), AfterValidator(_envelope_id)]


class Ref(Wire):
    """A message of this conversation: its author and envelope id (§17.1). With the author, the
    id names exactly one message, as the receiver's deduplication does (§6.5 step 9)."""

    id: EnvelopeId
    author: Username

    @property
    def key(self) -> str:
        return f"{self.author}:{self.id}"


class EditBody(Wire):
    """`edit` (§17.2): the whole new text of the author's own text message `target`."""

    target: Ref
    text: str = Field(min_length=1, max_length=100_000)

    def stored_json(self) -> str:
        """The edit's own row keeps only what it targets: the text lives in the message's
        versions, which a delete removes (§17.3)."""
        return self.model_dump_json(exclude={"text"})


class DeleteBody(Wire):
    """`delete` (§17.3): the author deletes their message `target` for everyone."""

    target: Ref


class ReactionBody(Wire):
    """`reaction` (§17.4): the author's `emoji` on `target` turned on or off."""

    target: Ref
    emoji: str = Field(min_length=1, max_length=32)
    on: bool


class TypingBody(Wire):
    """`typing` (§17.5): the author is writing to the recipient now (or stopped)."""

    typing: bool


ACTION_BODIES: dict[str, type[Wire]] = {
    "edit": EditBody,
    "delete": DeleteBody,
    "reaction": ReactionBody,
    "typing": TypingBody,
}
# Kinds that travel through the outbox and get delivered receipts, but are not shown as messages.
QUEUED_ACTIONS = ("edit", "delete", "reaction")


# --- emoji (§17.4) -------------------------------------------------------------------------------

ZWJ, VS16, KEYCAP, CANCEL_TAG = 0x200D, 0xFE0F, 0x20E3, 0xE007F
REGIONAL = (0x1F1E6, 0x1F1FF)
MODIFIERS = (0x1F3FB, 0x1F3FF)
TAGS = (0xE0020, 0xE007E)
KEYCAP_BASES = frozenset(map(ord, "0123456789#*"))
PICTOGRAPHS = (
    (0x00A9, 0x00A9), (0x00AE, 0x00AE), (0x203C, 0x203C), (0x2049, 0x2049), (0x2122, 0x2122),
    (0x2139, 0x2139), (0x2194, 0x21AA), (0x231A, 0x23FF), (0x24C2, 0x24C2), (0x25AA, 0x25FE),
    (0x2600, 0x27BF), (0x2934, 0x2935), (0x2B05, 0x2B55), (0x3030, 0x3030), (0x303D, 0x303D),
    (0x3297, 0x3297), (0x3299, 0x3299), (0x1F000, 0x1FAFF),
)  # fmt: skip
MAX_ELEMENTS = 10


def _within(point: int, span: tuple[int, int]) -> bool:
    return span[0] <= point <= span[1]


def _pictograph(point: int) -> bool:
    if _within(point, REGIONAL) or _within(point, MODIFIERS):
        return False
    return any(_within(point, span) for span in PICTOGRAPHS)


def _element(points: list[int], at: int) -> int:
    """Where the emoji element starting at `at` ends, or -1 if none starts there."""
    first = points[at]
    rest = len(points) - at
    if _within(first, REGIONAL):  # a flag: two regional indicators
        return at + 2 if rest >= 2 and _within(points[at + 1], REGIONAL) else -1
    if first in KEYCAP_BASES:  # a keycap: the base, perhaps VS16, then U+20E3
        at += 1
        if at < len(points) and points[at] == VS16:
            at += 1
        return at + 1 if at < len(points) and points[at] == KEYCAP else -1
    if not _pictograph(first):
        return -1
    at += 1
    if at < len(points) and points[at] == VS16:
        at += 1
    if at < len(points) and _within(points[at], MODIFIERS):
        at += 1
    if at < len(points) and _within(points[at], TAGS):  # a subdivision flag's tag sequence
        while at < len(points) and _within(points[at], TAGS):
            at += 1
        return at + 1 if at < len(points) and points[at] == CANCEL_TAG else -1
    return at


def is_emoji(text: str) -> bool:
    """One emoji (§17.4): elements joined by U+200D, at most MAX_ELEMENTS of them."""
    points = [ord(ch) for ch in text]
    at, elements = 0, 0
    while at < len(points):
        if elements and points[at] == ZWJ:
            at += 1
            if at == len(points):
                return False
        elif elements:
            return False
        at = _element(points, at)
        if at < 0:
            return False
        elements += 1
    return 1 <= elements <= MAX_ELEMENTS


# --- the rules, as refusals (§17.6) ----------------------------------------------------------------


def refusal(code: str, message: str) -> RequestError:
    """A refusal of §8 (`not_author` is 403; the others 400)."""
    return RequestError(message, code=code, status=403 if code == "not_author" else 400)


def check_author(ref: Ref, author: str) -> None:
    """Only the author edits or deletes a message."""
    if ref.author != author:
        raise refusal("not_author", "Only the author of a message can edit or delete it.")


def check_in_conversation(ref: Ref, me: str, peer: str) -> None:
    """A reference names a message of this conversation: written by one of its two people."""
    if ref.author not in (me, peer):
        raise refusal("unknown_message", "There is no such message in this conversation.")


def check_window(
    target_ts_ms: int, action_ts_ms: int, received_at: float | None, now: float
) -> None:
    """An edit or a delete for everyone comes within ACTION_WINDOW_MS of the message (the
    author's clock) and, at a receiver, within ARRIVAL_LIMIT_S of the message's arrival."""
    late = action_ts_ms - target_ts_ms > ACTION_WINDOW_MS
    early = action_ts_ms < target_ts_ms - CLOCK_SLACK_MS
    if late or early or (received_at is not None and now - received_at > ARRIVAL_LIMIT_S):
        raise refusal(
            "too_late",
            "A message can be edited or deleted for everyone only within 24 hours of sending it.",
        )


def check_editable(kind: str) -> None:
    if kind != "text":
        raise refusal("bad_edit", "Only a text message can be edited.")


def check_edit_count(versions: int) -> None:
    """`versions`: the original and its edits so far (0 before the first edit)."""
    if versions > MAX_EDITS:
        raise refusal("too_many_edits", f"A message can be edited at most {MAX_EDITS} times.")


def check_emoji(emoji: str) -> None:
    if not is_emoji(emoji):
        raise refusal("bad_reaction", "A reaction is a single emoji.")


def typing_due(typing: bool, last_sent_at: float | None, now: float) -> bool:
    """Whether a typing notice may go now, given when the last "typing" went (§17.5): at most one
    every TYPING_INTERVAL_S, and "stopped" only while the last one is still shown."""
    if typing:
        return last_sent_at is None or now - last_sent_at >= TYPING_INTERVAL_S
    return last_sent_at is not None and now - last_sent_at <= TYPING_TTL_S


def is_stale_typing(ts_ms: int, now: float) -> bool:
    """A typing notice written (by the author's clock) too far from now means nothing any more."""
    return abs(now - ts_ms / 1000) > TYPING_STALE_S


def excerpt(text: str) -> str:
    """The start of a quoted text, on one line."""
    line = " ".join(text.split())
    return line if len(line) <= EXCERPT_CHARS else line[: EXCERPT_CHARS - 1] + "…"
