"""Slow and idle HTTP clients cannot take the REST API's connections or files.

uvicorn bounds neither the time a client takes to send its headers nor the
number of open connections (`limit_concurrency` answers 503 only once a
request's headers have arrived, so half-open sockets pile up until the process
runs out of file descriptors, and then nobody is served). This module adds,
on uvicorn's h11 protocol:

- a header deadline: a connection that has not sent a whole request head
  within `header_timeout_secs` of opening, or of its previous response, is
  closed (also one still trickling the body of a request already answered);
- a connection bound: beyond `max_connections` (capped below the process's
  file limit), the connection that has waited longest for a request head is
  closed to make room. A client that sends its request at once (curl, the SDK,
  a probe) is therefore served even while hundreds of half-open sockets are
  held open against the server; only when every connection is busy with a
  request does a new one get 503;
- a small accept batch (`ACCEPT_BATCH`), so that accepting never runs the
  process out of file descriptors before the bound can close connections;
- accept failures (out of file descriptors) logged at most once a second.

Invariant: `_ConnectionGuard.waiting` holds exactly the open connections that
have no request in progress (no head yet, or the last response complete),
oldest first; each has a deadline.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("rucat.server")

#: File descriptors left for everything but REST connections (store, proxy,
#: engine logs and pipes), as a share of the process's limit and at least this.
_RESERVED_FDS = 64
_RESERVED_SHARE = 4

#: Connections asyncio accepts per readiness of the listening socket (its
#: `backlog` argument; the kernel's queue is set apart, see `LISTEN_BACKLOG`).
#: An accepted socket holds a file descriptor from accept() until its
#: connection_made() has run and, beyond the bound, the connection evicted to
#: make room is closed: about four loop iterations later. Meanwhile asyncio
#: accepts a batch per iteration, so about four batches are in flight; they
#: must fit in the `_RESERVED_FDS`. With uvicorn's default of 2048, a flood of
#: half-open connections took every descriptor in one batch: accept() failed
#: with EMFILE (thousands of times a second, each scheduling another retry),
#: and asyncio stopped accepting for a second each time.
ACCEPT_BATCH = 4
#: The kernel's queue of connections not yet accepted: deep, so that a burst
#: of connections waits there instead of having its SYNs dropped (a client
#: retransmits a dropped SYN after a second).
LISTEN_BACKLOG = 2048

_BUSY_BODY = b'{"detail": "too many connections: try again in a moment"}'
#: Written, before reading anything, to a connection beyond the bound.
_BUSY_ANSWER = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY)
)


def connection_limit(max_connections: int, fd_limit: int | None = None) -> int:
    """`max_connections`, lowered so REST connections leave room for other files."""
    if fd_limit is None:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        fd_limit = soft
    if fd_limit == resource.RLIM_INFINITY or fd_limit <= 0:
        return max_connections
    room = fd_limit - max(_RESERVED_FDS, fd_limit // _RESERVED_SHARE)
    return max(1, min(max_connections, room))


class _ConnectionGuard:
    """State shared by one server's connections."""

    def __init__(self, *, max_connections: int, header_timeout_secs: float) -> None:
        self.max_connections = max_connections
        self.header_timeout_secs = header_timeout_secs
        #: Connections counted against the bound: accepted and not closed by us
        #: (one we closed counts as gone at once, before asyncio reports it lost).
        self.open: set[GuardedH11Protocol] = set()
        self.waiting: OrderedDict[GuardedH11Protocol, None] = OrderedDict()


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header deadline and a connection bound."""

    _guard: _ConnectionGuard

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    # --- connection lifecycle -------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        guard = self._guard
        if len(guard.open) >= guard.max_connections and not self._evict_oldest_waiting():
            transport.write(_BUSY_ANSWER)
            transport.close()
            return
        guard.open.add(self)
        self._start_waiting()

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()
        super().connection_lost(exc)

    def _in_request(self) -> bool:
        """A request head arrived and its response is not complete yet."""
        return self.cycle is not None and not self.cycle.response_complete

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_request():
            self._stop_waiting()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self._in_request():
            # Keep-alive: the next head has a deadline too. So has the rest of a
            # body the client is still sending after its answer (a 401, say):
            # uvicorn discards it, and would wait for it for ever.
            self._start_waiting()

    # --- waiting for a request head -------------------------------------------

    def _start_waiting(self) -> None:
        guard = self._guard
        guard.waiting.pop(self, None)
        guard.waiting[self] = None  # newest last
        if self._header_timer is not None:
            self._header_timer.cancel()
        self._header_timer = self.loop.call_later(guard.header_timeout_secs, self._too_slow)

    def _stop_waiting(self) -> None:
        self._guard.waiting.pop(self, None)
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if self in self._guard.waiting:
            self._close()

    def _evict_oldest_waiting(self) -> bool:
        for oldest in self._guard.waiting:
            if oldest is not self:
                oldest._close()
                return True
        return False

    def _close(self) -> None:
        self._forget()
        if not self.transport.is_closing():
            self.transport.close()

    def _forget(self) -> None:
        self._stop_waiting()
        self._guard.open.discard(self)


def guarded_protocol(
    *, max_connections: int, header_timeout_secs: float
) -> type[GuardedH11Protocol]:
    """A protocol class for one uvicorn server (its connections share one guard)."""
    guard = _ConnectionGuard(
        max_connections=max_connections, header_timeout_secs=header_timeout_secs
    )
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"_guard": guard})


# --- accept failures ------------------------------------------------------------------

_ACCEPT_FAILURE = "socket.accept() out of system resource"

ExceptionHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]


class AcceptFailureLog:
    """A loop exception handler that logs accept failures at most once per interval.

    asyncio reports each failed accept (EMFILE: out of file descriptors) with a
    traceback; under a connection flood that fills the log. Everything else goes
    to the handler that was installed before.
    """

    def __init__(
        self,
        previous: ExceptionHandler | None,
        *,
        interval_secs: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._previous = previous
        self._interval = interval_secs
        self._clock = clock
        self._last: float | None = None
        self._suppressed = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") != _ACCEPT_FAILURE:
            if self._previous is not None:
                self._previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        now = self._clock()
        if self._last is not None and now - self._last < self._interval:
            self._suppressed += 1
            return
        self._last = now
        more = f" ({self._suppressed} more since the last report)" if self._suppressed else ""
        self._suppressed = 0
        log.error("cannot accept connections: %s%s", context.get("exception"), more)
