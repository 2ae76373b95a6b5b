"""Process-wide log setup for Rucat services: plain text or one JSON object per line.

Rucat logs with the standard library only. Structured fields travel as
``extra={...}`` on a record; the JSON formatter writes every such field next to
the message, the text formatter appends them as ``key=value``. Nothing here
knows about HTTP: callers decide what goes into a record (and never put
credentials or headers there).

Every record may carry client-supplied text (request paths, engine names,
messages from engines), so both formatters escape control and format
characters in the message, the extras and the exception text
(domain/text.escape_unsafe): a client can never start a forged log line or
hide text with a bidirectional override. A record is one line in text
format (tracebacks aside) and one JSON object in JSON format.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from rucat.domain.text import escape_unsafe

LogFormat = Literal["text", "json"]

#: Attributes every LogRecord has; anything else on a record came from `extra`.
_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "color_message", "taskName"}
)


def _safe(value: Any) -> Any:
    if isinstance(value, str):
        return escape_unsafe(value)
    if isinstance(value, dict):
        return {_safe(k): _safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_safe(v) for v in value]
    return value


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS}


def _exception_text(exc_info: Any) -> str:
    """A traceback, with the exception messages escaped (they may quote a client).

    The frames are Rucat's own and keep their lines; each exception's message
    (and notes) is escaped, so a CR or LF in it cannot start a forged line.
    """
    te = traceback.TracebackException(*exc_info)
    if getattr(te, "exceptions", None):  # an exception group: every line escaped
        lines = "".join(te.format()).splitlines()
        return "\n".join(escape_unsafe(line) for line in lines)
    chain: list[tuple[str | None, traceback.TracebackException]] = []
    current: traceback.TracebackException | None = te
    while current is not None and len(chain) < 64:
        if current.__cause__ is not None:
            chain.append((_CAUSE, current))
            current = current.__cause__
        elif current.__context__ is not None and not current.__suppress_context__:
            chain.append((_CONTEXT, current))
            current = current.__context__
        else:
            chain.append((None, current))
            current = None
    out: list[str] = []
    for link, exc in reversed(chain):
        if link is not None:
            out.append(link)
        if exc.stack:
            out.append("Traceback (most recent call last):")
            out.extend(frame.rstrip("\n") for frame in exc.stack.format())
        out.extend(escape_unsafe(part.rstrip("\n")) for part in exc.format_exception_only())
    return "\n".join(out)


_CAUSE = "\nThe above exception was the direct cause of the following exception:\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n"


def _escaped_record(record: logging.LogRecord) -> logging.LogRecord:
    """A copy of `record` whose message is the escaped, formatted message."""
    safe = logging.makeLogRecord(record.__dict__)
    safe.msg = escape_unsafe(record.getMessage())
    safe.args = None
    safe.exc_text = None  # another handler may have cached it unescaped
    return safe


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO-8601), level, logger, message, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": escape_unsafe(record.getMessage()),
        }
        entry.update({k: _safe(v) for k, v in _extras(record).items()})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=lambda v: escape_unsafe(str(v)), ensure_ascii=False)

    def formatException(self, ei: Any) -> str:
        return _exception_text(ei)


class TextFormatter(logging.Formatter):
    """``time level logger message key=value ...`` on one line (tracebacks follow)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(_escaped_record(record))
        extras = _extras(record)
        if not extras:
            return line
        head, sep, tail = line.partition("\n")
        fields = " ".join(f"{k}={escape_unsafe(str(v))}" for k, v in extras.items())
        return f"{head} {fields}{sep}{tail}"

    def formatException(self, ei: Any) -> str:
        return _exception_text(ei)


def configure_logging(
    log_format: LogFormat = "text", *, level: int = logging.INFO, stream: TextIO | None = None
) -> None:
    """Route every logger (Rucat's, uvicorn's) to one handler with the chosen format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # uvicorn installs its own handlers when given a log config; we give none and
    # let its records reach the root handler. Its access log is replaced by ours.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    # Schema migrations at start are routine; say only what goes wrong.
    logging.getLogger("alembic").setLevel(max(level, logging.WARNING))
