"""Secret conf values are never shown: the same rule as Spark's UI, applied by Rucat.

Users pass secrets as confs (``spark.hadoop.fs.s3a.secret.key``). The engine
needs the real value; everything Rucat shows (engine info over the API and
so the CLI, state messages and events, the log tail saved in the store, the
logs route) shows ``*********(redacted)`` instead, as Spark's UI does.

A conf is sensitive when its key or its value matches Spark's own default
``spark.redaction.regex``, ``(?i)secret|password|token|access[.]?key``
(Spark redacts on a match of either; users may not change that regex, see
the engine policies). Free text is redacted twice over:

- by value: every sensitive value of the engine (and its Connect token) is
  replaced wherever it appears. Values shorter than `MIN_SECRET_LENGTH` are
  left to the second rule, since replacing them would blank ordinary words;
- by shape: ``key=value``, ``key: value``, ``(key,value)`` and the JSON
  ``"key": "value"`` where the key matches the regex. ``:`` and ``,`` count
  only after conf-like keys (with a dot, or all lower case), so a log line
  ``HadoopDelegationTokenManager: Attempting...`` stays readable.

The scan is linear in the text (keys are bounded in length), so a hostile
log line cannot make it slow. Pure: no I/O.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping

from rucat.domain.engine import Engine

#: Spark's default `spark.redaction.regex`.
REDACTION_REGEX = re.compile(r"(?i)secret|password|token|access[.]?key", re.ASCII)
#: The same on ASCII-lowered text (Java's (?i) folds ASCII only); much faster in bulk.
_LOWER_REGEX = re.compile(r"secret|password|token|access[.]?key")
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
#: What Spark's UI shows instead of a redacted value.
REDACTED = "*********(redacted)"
#: Shorter secret values are redacted by shape only (see the module docstring).
MIN_SECRET_LENGTH = 6

_MAX_KEY = 256
_KEY_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
#: The key characters right after a match (bounded: the scan stays linear).
_KEY_TAIL_RE = re.compile(r"[A-Za-z0-9_.\-]{0,%d}" % _MAX_KEY)
_MAX_SPACES = 4
_VALUE_RE = re.compile(r"""[^\s"',;)&]+""")


def is_sensitive(key: str, value: str) -> bool:
    """Whether Spark would redact `key`=`value`: the regex matches the key or the value."""
    return REDACTION_REGEX.search(key) is not None or REDACTION_REGEX.search(value) is not None


def redact_configs(configs: Mapping[str, str]) -> dict[str, str]:
    """`configs` with every sensitive value replaced by `REDACTED` (keys kept)."""
    return {k: REDACTED if is_sensitive(k, v) else v for k, v in configs.items()}


def secret_values(configs: Mapping[str, str], *extra: str | None) -> tuple[str, ...]:
    """The values to hide in free text: sensitive conf values and `extra` (tokens)."""
    found = {v for k, v in configs.items() if is_sensitive(k, v)}
    found.update(e for e in extra if e)
    return tuple(sorted((v for v in found if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True))


def engine_secrets(engine: Engine) -> tuple[str, ...]:
    """What must never show in an engine's messages and logs: its sensitive conf
    values and its Connect token."""
    return secret_values(engine.configs, engine.connect_token)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with `secrets` and the values of sensitive ``key=value`` shapes redacted."""
    for secret in secrets:
        if len(secret) >= MIN_SECRET_LENGTH:
            text = text.replace(secret, REDACTED)
    lowered = text.translate(_ASCII_LOWER)  # same length: ASCII letters only
    if _LOWER_REGEX.search(lowered) is None:
        return text
    out: list[str] = []
    done = 0  # text[:done] is already in `out`
    scanned = 0  # keys before this were looked at; a match inside one would see the same key
    for match in _LOWER_REGEX.finditer(lowered):
        if match.start() < max(done, scanned):
            continue
        found = _sensitive_value(text, match.start(), match.end(), floor=max(done, scanned))
        if isinstance(found, int):
            scanned = found
            continue
        start, end = found
        out.append(text[done:start])
        out.append(REDACTED)
        done = end
    out.append(text[done:])
    return "".join(out)


def _sensitive_value(text: str, start: int, end: int, *, floor: int) -> tuple[int, int] | int:
    """The span of the value after the key around text[start:end], or where that
    key ends when no value follows it."""
    low = max(floor, start - _MAX_KEY)
    key_start = low + len(text[low:start].rstrip(_KEY_CHARS))
    tail = _KEY_TAIL_RE.match(text, end)
    key_end = tail.end() if tail is not None else end
    key = text[key_start:key_end]
    pos = key_end
    if pos < len(text) and text[pos] in "\"'":
        pos += 1
    pos = _skip_spaces(text, pos)
    if pos >= len(text) or text[pos] not in "=:,":
        return key_end
    separator = text[pos]
    conf_like = "." in key or key == key.lower()
    if separator != "=" and not conf_like:
        return key_end
    pos = _skip_spaces(text, pos + 1)
    if pos < len(text) and text[pos] in "\"'":
        pos += 1
    value = _VALUE_RE.match(text, pos)
    if value is None or text.startswith(REDACTED, pos) or text.startswith("*****", pos):
        return key_end
    return value.start(), value.end()


def _skip_spaces(text: str, pos: int) -> int:
    limit = pos + _MAX_SPACES
    while pos < len(text) and pos < limit and text[pos] in " \t":
        pos += 1
    return pos
