"""Console sessions: a random id in a cookie, the principal and CSRF token on the server.

Browsers cannot send Basic or Bearer credentials from a page without keeping
them in script-readable places, so the console logs in once (password or
personal access token, checked by the same Authenticator as REST) and keeps
only an unguessable session id in an HttpOnly, SameSite=Strict cookie. The
server keeps the principal; logout, or expiry, forgets it. Sessions live in
this process's memory: a restart logs everyone out, which is safe.

Invariant: a session's CSRF token is never equal for two sessions and is only
ever compared in constant time.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from rucat.domain.principal import Principal

#: Cookie holding the session id.
COOKIE = "rucat_session"
#: Header (htmx) or form field carrying the CSRF token on state-changing calls.
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
#: Most sessions kept at once; the oldest goes first (bounded memory).
MAX_SESSIONS = 10_000


@dataclass(frozen=True)
class Session:
    id: str
    principal: Principal
    csrf: str
    expires: datetime

    def csrf_matches(self, offered: str | None) -> bool:
        return offered is not None and hmac.compare_digest(offered.encode(), self.csrf.encode())


class Sessions:
    """The live console sessions of this server process."""

    def __init__(self, *, ttl: timedelta, clock: Callable[[], datetime]) -> None:
        self.ttl = ttl
        self._clock = clock
        self._by_id: dict[str, Session] = {}

    def start(self, principal: Principal) -> Session:
        """A new session for `principal` (a fresh id: no fixation of an old one)."""
        while len(self._by_id) >= MAX_SESSIONS:
            self._by_id.pop(next(iter(self._by_id)))
        session = Session(
            id=secrets.token_urlsafe(32),
            principal=principal,
            csrf=secrets.token_urlsafe(32),
            expires=self._clock() + self.ttl,
        )
        self._by_id[session.id] = session
        return session

    def find(self, session_id: str | None) -> Session | None:
        """The live session with this id; an expired one is forgotten."""
        if not session_id:
            return None
        session = self._by_id.get(session_id)
        if session is None:
            return None
        if session.expires <= self._clock():
            del self._by_id[session_id]
            return None
        return session

    def end(self, session_id: str | None) -> None:
        if session_id:
            self._by_id.pop(session_id, None)
