"""User-chosen labels (engine names, conf keys, grantee and user names) refuse control
characters, Unicode format characters (Cf), line separators and lone surrogates."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rucat.config import UserConfig
from rucat.domain.access import validate_grantee
from rucat.domain.errors import InvalidRequest
from rucat.domain.text import check_label, forbidden_character

# (case id, text, the character found or None)
LABELS: list[tuple[str, str, str | None]] = [
    ("plain", "etl-nightly", None),
    ("accents-and-scripts", "données 数据 δεδομένα", None),
    ("emoji", "spark ✨", None),
    ("inner-space", "my engine", None),
    ("nul", "a\x00b", "\x00"),
    ("escape", "a\x1b[2Jb", "\x1b"),
    ("delete", "a\x7f", "\x7f"),
    ("c1-csi", "a\x9b31m", "\x9b"),
    ("next-line", "a\x85b", "\x85"),
    ("rtl-override", "invoice\u202etxt.exe", "\u202e"),
    ("rtl-isolate", "a\u2067b", "\u2067"),
    ("left-to-right-mark", "a\u200eb", "\u200e"),
    ("zero-width-space", "ad\u200bmin", "\u200b"),
    ("zero-width-joiner", "a\u200db", "\u200d"),
    ("word-joiner", "a\u2060b", "\u2060"),
    ("bom", "\ufeffname", "\ufeff"),
    ("soft-hyphen", "ad\u00admin", "\u00ad"),
    ("tag-character", "a\U000e0041", "\U000e0041"),
    ("line-separator", "a\u2028b", "\u2028"),
    ("paragraph-separator", "a\u2029b", "\u2029"),
    ("lone-surrogate", "a\ud800", "\ud800"),
]


@pytest.mark.parametrize(("text", "found"), [c[1:] for c in LABELS], ids=[c[0] for c in LABELS])
def test_labels_refuse_control_format_separator_and_surrogate_characters(
    text: str, found: str | None
) -> None:
    hit = forbidden_character(text)
    assert (hit[1] if hit else None) == found
    if found is None:
        assert check_label("name", text) == text
    else:
        with pytest.raises(InvalidRequest) as e:
            check_label("token name", text)
        assert e.value.message.startswith("token name must not contain control characters")
        assert f"U+{ord(found):04X}" in e.value.message
        assert found not in e.value.message  # the raw character is never echoed


def test_a_grantee_name_with_a_format_character_is_refused() -> None:
    assert validate_grantee("bob") == "bob"
    with pytest.raises(InvalidRequest, match="U\\+200B"):
        validate_grantee("bo\u200bb")


def test_a_configured_user_or_group_name_with_a_format_character_fails_at_load() -> None:
    hashed = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"
    assert UserConfig(name="bob", password_hash=hashed).name == "bob"
    with pytest.raises(ValidationError, match="U\\+202E"):
        UserConfig(name="bob\u202e", password_hash=hashed)
    with pytest.raises(ValidationError, match="U\\+2028"):
        UserConfig(name="bob", password_hash=hashed, groups=["a\u2028b"])
