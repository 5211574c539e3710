"""Names that could pass for someone else's are refused (PROTOCOL.md §12.1): bidi controls and
every other invisible format character in a profile's one-line fields, bidi controls in the bio,
whether the user typed them or a peer's signed record carries them."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from flame.core.crypto import Identity
from flame.core.models import Inner, Profile, ProfileFields
from flame.core.profile import make_profile

BIDI = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"]
MARKS = ["\u200e", "\u200f", "\u061c"]
# Other invisible format characters: zero-width space, non-joiner and joiner, word joiner,
# invisible separator, byte order mark, soft hyphen, a tag character.
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\u2063", "\ufeff", "\u00ad", "\U000e0041"]


@pytest.mark.parametrize("char", BIDI + MARKS + INVISIBLE)
@pytest.mark.parametrize("field", ["display_name", "position", "location"])
def test_a_one_line_field_refuses_invisible_format_characters(char: str, field: str) -> None:
    with pytest.raises(ValidationError, match="invisible formatting") as refused:
        ProfileFields.model_validate({field: f"Alice{char} Liddell"})
    assert refused.value.errors()[0]["loc"] == (field,)


@pytest.mark.parametrize("char", BIDI + MARKS)
def test_the_bio_refuses_bidi_controls(char: str) -> None:
    with pytest.raises(ValidationError, match="invisible formatting"):
        ProfileFields(bio=f"Curious.{char}\nVery curious.")


@pytest.mark.parametrize(
    "name",
    ["Alice Liddell", "Zoë Ångström", "李小龍", "Иван Петров", "محمد علي", "Ana 🔥", "O'Brien"],
)
def test_real_names_in_any_script_are_kept(name: str) -> None:
    assert (
        ProfileFields(display_name=name, bio="👨\u200d👩\u200d👧 joined by ZWJ").display_name
        == name
    )


def signed_record(display_name: str) -> dict[str, Any]:
    """A record as mallory's daemon would sign and send it, the name unchecked by her."""
    identity = Identity.generate()
    good = make_profile(identity, "mallory", ProfileFields(display_name="x"), None, 1)
    return {**good.model_dump(), "display_name": display_name}


@pytest.mark.parametrize("char", ["\u202e", "\u2067", "\u200b", "\u200f"])
def test_a_peers_record_with_such_a_name_does_not_parse(char: str) -> None:
    """Fetched (a `Profile`) or pushed (inside the sealed `profile_update`), it is invalid before
    any signature is looked at, as a record with a bad signature is ignored."""
    record = signed_record(f"alice{char}")
    with pytest.raises(ValidationError, match="invisible formatting"):
        Profile.model_validate(record)
    inner = {
        "from": "mallory",
        "to": "bob",
        "id": "AAAAAAAAAAAAAAAAAAAAAA",
        "seq": 0,
        "ts": 1,
        "kind": "profile_update",
        "body": {"profile": record},
    }
    with pytest.raises(ValidationError, match="invisible formatting"):
        Inner.model_validate(inner)
