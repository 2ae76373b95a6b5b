"""The Users provider: named users, HTTP Basic, argon2id password hashes.

argon2 is slow on purpose (tens of milliseconds and 64 MiB per check), which
would cap the API at a few dozen requests per second. So a verified user name
and password are remembered for a short time, in a bounded in-memory map
keyed by an HMAC of them under a key drawn at start: the clear password is
never kept, and the key never leaves the process.

Invariants:

- An unknown user costs the same as a wrong password: the password is checked
  against a dummy hash made with the same parameters.
- A refusal never says whether the user exists.
- argon2 runs in a worker thread, never on the event loop, a few at a time,
  and once for any number of concurrent requests with the same credentials.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from rucat.config import UsersAuthConfig
from rucat.domain.errors import Unauthenticated
from rucat.domain.principal import Principal
from rucat.server.auth.basic import split_basic

_REFUSED = "invalid credentials: wrong user name or password"

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """The argon2id hash of `password` (argon2-cffi's RFC 9106 low-memory defaults)."""
    return _hasher.hash(password)


#: argon2 checks running at once (each takes 64 MiB): a flood of wrong
#: passwords queues here instead of exhausting memory and worker threads.
MAX_PARALLEL_VERIFICATIONS = 4


class UsersProvider:
    schemes: tuple[str, ...] = ("basic",)
    description = "HTTP Basic: a user name and password from the server's user list."

    def __init__(
        self, config: UsersAuthConfig, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._users = {
            user.name.encode(): (
                user.password_hash,
                Principal(name=user.name, groups=frozenset(user.groups), admin=user.admin),
            )
            for user in config.users
        }
        self._dummy_hash = hash_password(secrets.token_urlsafe(16))
        self._key = secrets.token_bytes(32)
        self._ttl = config.cache_ttl_secs
        self._size = config.cache_size
        self._clock = clock
        self._verifying = asyncio.Semaphore(MAX_PARALLEL_VERIFICATIONS)
        #: Checks running now, by credential key; later askers await the same one.
        self._checking: dict[bytes, asyncio.Future[Principal]] = {}
        #: argon2 checks run since start (the cache's misses).
        self.verifications = 0
        #: HMAC(user, password) -> (valid until, principal); oldest first.
        self._verified: OrderedDict[bytes, tuple[float, Principal]] = OrderedDict()

    async def authenticate(self, *, scheme: str, credentials: str) -> Principal:
        user, password = split_basic(credentials)
        # Length-prefixed, so ("ab", "c") and ("a", "bc") never share a key.
        mac = hmac.new(self._key, len(user).to_bytes(4, "big") + user + password, hashlib.sha256)
        key = mac.digest()
        now = self._clock()
        hit = self._verified.get(key)
        if hit is not None:
            if hit[0] > now:
                self._verified.move_to_end(key)
                return hit[1]
            del self._verified[key]
        # Concurrent requests with the same credentials share one check: a
        # client opening 16 connections at once (or right after the memory
        # expired) costs one argon2 run, not 16.
        check = self._checking.get(key)
        if check is None:
            check = asyncio.ensure_future(self._check(key, user, password, now))
            self._checking[key] = check
            check.add_done_callback(lambda _: self._checking.pop(key, None))
        return await asyncio.shield(check)

    async def _check(self, key: bytes, user: bytes, password: bytes, now: float) -> Principal:
        known = self._users.get(user)
        stored_hash = known[0] if known is not None else self._dummy_hash
        self.verifications += 1
        async with self._verifying:
            ok = await asyncio.to_thread(_verify, stored_hash, password)
        if known is None or not ok:
            raise Unauthenticated(_REFUSED)
        principal = known[1]
        if self._ttl > 0:
            self._verified[key] = (now + self._ttl, principal)
            while len(self._verified) > self._size:
                self._verified.popitem(last=False)
        return principal


def _verify(stored_hash: str, password: bytes) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False
