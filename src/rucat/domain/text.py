"""Which characters a user-chosen label may hold: one rule for every label Rucat keeps.

Engine names, conf keys, token names, grant names, anything a user picks and
Rucat later shows in a terminal, a log line or a web page, go through
`check_label`. Control characters (C0, DEL, C1) can rewrite a terminal or
forge log lines; Unicode format characters (category Cf: bidirectional
overrides such as U+202E, zero-width spaces and joiners, the BOM) make one
name look like another or reorder what follows it on screen; the line and
paragraph separators U+2028/U+2029 break lines in many viewers; lone
surrogates (which JSON can carry as ``\\ud800``) cannot be encoded as UTF-8
and would fail later in a store. Pure: no I/O.
"""

from __future__ import annotations

import unicodedata

from rucat.domain.errors import InvalidRequest

#: Unicode general categories no label may contain (see the module docstring).
FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def forbidden_character(text: str) -> tuple[int, str] | None:
    """The index and character of the first character a label may not hold, or None."""
    for index, char in enumerate(text):
        if unicodedata.category(char) in FORBIDDEN_CATEGORIES:
            return index, char
    return None


def has_lone_surrogate(text: str) -> bool:
    """Whether `text` holds a lone surrogate (JSON can carry one; UTF-8 cannot encode it)."""
    return any("\ud800" <= char <= "\udfff" for char in text)


def describe_character(char: str) -> str:
    """``U+202E RIGHT-TO-LEFT OVERRIDE``: a character named safely (never the raw character)."""
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}{' ' + name if name else ''}"


def check_label(field: str, text: str) -> str:
    """Return `text`, or raise InvalidRequest naming `field` and the offending character.

    `field` is how the caller's input calls it (``name``, ``config key 'spark.x'``,
    ``token name``); the message never echoes the raw character.
    """
    found = forbidden_character(text)
    if found is not None:
        index, char = found
        raise InvalidRequest(
            f"{field} must not contain control characters or Unicode format characters; "
            f"found {describe_character(char)} at index {index}"
        )
    return text


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(char: str) -> str:
    known = _ESCAPES.get(char)
    if known is not None:
        return known
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def escape_unsafe(text: str) -> str:
    """`text` with every character that could forge or disguise a log line escaped.

    CR, LF and tab become ``\\r``, ``\\n``, ``\\t``; other control, format (Cf),
    separator, surrogate, private-use and unassigned characters become
    ``\\xNN``/``\\uNNNN``. Ordinary spaces of any script stay as they are.
    Text that needs nothing (almost all) is returned as is, at C speed.
    """
    if text.isprintable():
        return text
    return "".join(
        char if char.isprintable() or unicodedata.category(char) == "Zs" else _escaped(char)
        for char in text
    )
