"""Hostile values and mutations of JSON documents and their bytes, from one seeded generator."""

from __future__ import annotations

import copy
import json
import os
import random
from typing import Any

from flame.core.encoding import b64e

# Values that have broken, or could break, a parser or what stands behind it.
HOSTILE_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1.5,
    2**31,
    2**53,
    2**63 - 1,
    2**63,
    -(2**63) - 1,
    10**30,
    "",
    " ",
    "\x00",
    "\ud800",
    "\udfff x",
    "\u202eevil",
    "é" * 50,
    "x" * 5000,
    "alice",
    "bob",
    "../../etc/passwd",
    "http://127.0.0.1:99999",
    "http://[::1",
    "javascript:alert(1)",
    "AAAAAAAAAAAAAAAAAAAAAA",
    "AAAAAAAAAAAAAAAAAAAAAB",
    "=" * 8,
    [],
    {},
    [1, 2, 3],
    {"a": {"b": {"c": []}}},
]
# Texts spliced in where a JSON value goes, for what json.dumps will not write.
RAW_VALUES = [
    "1" * 5000,
    "9" * 19,
    "-" + "9" * 20,
    "1e400",
    "-1e400",
    "NaN",
    "Infinity",
    "[" * 40 + "]" * 40,
    "[" * 3000 + "]" * 3000,
    '{"a":' * 50 + "1" + "}" * 50,
    '"\\ud800"',
    '"\\udc00\\ud800"',
    '"\\u0000"',
    "0x10",
    "01",
    "tru",
]


class Hostile:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def pick(self, items: list[Any]) -> Any:
        return items[self.rng.randrange(len(items))]

    def b64(self, size: int | None = None) -> str:
        return b64e(os.urandom(size if size is not None else self.pick([0, 1, 16, 31, 32, 48, 64])))

    def value(self) -> Any:
        roll = self.rng.random()
        if roll < 0.6:
            return copy.deepcopy(self.pick(HOSTILE_VALUES))  # mutated later: never the shared one
        if roll < 0.8:
            return self.b64()
        return self.rng.randint(-(2**70), 2**70)

    def mutate(self, document: Any, rounds: int = 1) -> Any:
        """A copy of `document` with a few of its values replaced, removed or added."""
        value = json.loads(json.dumps(document))
        for _ in range(rounds):
            value = self._mutate_once(value)
        return value

    def _mutate_once(self, value: Any) -> Any:
        if isinstance(value, dict) and value and self.chance(0.75):
            key = self.pick(sorted(value))
            roll = self.rng.random()
            if roll < 0.15:
                del value[key]
            elif roll < 0.25:
                value[self.pick(["extra", "sig", "ids", "v", "kind", key + "x"])] = self.value()
            elif roll < 0.6 and isinstance(value[key], dict | list) and value[key]:
                value[key] = self._mutate_once(value[key])
            else:
                value[key] = self.value()
            return value
        if isinstance(value, list) and value and self.chance(0.75):
            index = self.rng.randrange(len(value))
            if self.chance(0.2):
                value.append(value[index])  # a duplicate
            elif isinstance(value[index], dict | list):
                value[index] = self._mutate_once(value[index])
            else:
                value[index] = self.value()
            return value
        return self.value()

    def encode(self, document: Any) -> bytes:
        """`document` as JSON bytes, sometimes spoiled at the byte level: a value spliced in that
        json.dumps would never write, a repeated key, a cut, a flipped byte, or junk."""
        text = json.dumps(document, separators=(",", ":"), ensure_ascii=self.chance(0.5))
        roll = self.rng.random()
        if roll < 0.55:
            return text.encode("utf-8", "surrogatepass")
        if roll < 0.75 and ":" in text:
            at = self._value_start(text)
            end = _value_end(text, at)
            text = text[:at] + self.pick(RAW_VALUES) + text[end:]
        elif roll < 0.83 and text.startswith('{"'):
            key = text[1 : text.index(":")]
            text = "{" + key + ":" + self.pick(['"dup"', "0", "null", "[]"]) + "," + text[1:]
        elif roll < 0.88:
            text = text[: self.rng.randrange(len(text) + 1)]
        elif roll < 0.93:
            raw = bytearray(text.encode("utf-8", "surrogatepass"))
            if raw:
                raw[self.rng.randrange(len(raw))] = self.rng.randrange(256)
            return bytes(raw)
        else:
            return os.urandom(self.rng.randrange(200))
        return text.encode("utf-8", "surrogatepass")

    def _value_start(self, text: str) -> int:
        colons = [i for i, ch in enumerate(text) if ch == ":"]
        return int(self.pick(colons)) + 1


def _value_end(text: str, start: int) -> int:
    """Where the JSON value that starts at `start` ends (good enough for splicing: strings,
    numbers and literals; a container is skipped by matching its brackets)."""
    depth, index, in_string = 0, start, False
    while index < len(text):
        ch = text[index]
        if in_string:
            if ch == "\\":
                index += 1
            elif ch == '"':
                in_string = False
                if depth == 0:
                    return index + 1
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            if depth == 0:
                return index
            depth -= 1
            if depth == 0:
                return index + 1
        elif ch == "," and depth == 0:
            return index
        index += 1
    return index
