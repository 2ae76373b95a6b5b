"""One error root for Rucat.

Every error Rucat raises derives from `RucatError` and says whether retrying
the same operation may succeed (`retryable`). Third-party exceptions are
converted at the adapter boundary with ``raise ... from e``. HTTP status codes
are chosen in the server layer only; nothing here knows about HTTP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from rucat.domain.engine import Engine


class RucatError(Exception):
    """Root of every error Rucat raises on purpose."""

    retryable: ClassVar[bool] = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PermanentError(RucatError):
    """Retrying the same operation gives the same failure."""


class RetryableError(RucatError):
    """A passing condition: the same operation may succeed later."""

    retryable = True


class InvalidRequest(PermanentError):
    """The caller's input is wrong; the message says what and how to fix it."""


class ConfigError(PermanentError):
    """The configuration is wrong; raised at start, naming the key."""


class Unauthenticated(PermanentError):
    """Missing or wrong credentials."""


class IdentityProviderUnavailable(RetryableError):
    """Credentials cannot be checked now: the identity provider (its key set) is unreachable."""


class EngineNotFound(PermanentError):
    """No engine has this id."""

    def __init__(self, engine_id: str) -> None:
        super().__init__(f"engine {engine_id} not found")
        self.engine_id = engine_id


class TokenNotFound(PermanentError):
    """No access token has this id (or the caller may not see it)."""

    def __init__(self, token_id: str) -> None:
        super().__init__(f"token {token_id} not found")
        self.token_id = token_id


class StateConflict(PermanentError):
    """The action is not allowed in the engine's current state."""

    def __init__(self, message: str, *, current: Engine | None = None) -> None:
        super().__init__(message)
        self.current = current


class PermissionDenied(PermanentError):
    """The caller sees the engine but lacks the level this action needs."""


class QuotaExceeded(PermanentError):
    """The write would give `owner` more active engines than `limit` allows."""

    def __init__(self, *, owner: str, limit: int, active: int) -> None:
        super().__init__(
            f"quota exceeded: {owner} has {active} active engines and "
            f"max_active_engines_per_user is {limit}; stop or delete one first"
        )
        self.owner = owner
        self.limit = limit
        self.active = active


class StoreConflict(RetryableError):
    """A compare-and-set lost: the row changed since it was read.

    ``current`` is the row as it is now (None when it was removed).
    """

    def __init__(self, message: str, *, current: Engine | None) -> None:
        super().__init__(message)
        self.current = current


class StoreUnavailable(RetryableError):
    """The store cannot be reached or failed in a way that may pass."""


class PlatformError(RetryableError):
    """The platform failed in a way that may pass (API down, timeout)."""


class PlatformRejected(PermanentError):
    """The platform refused the engine for good (bad image, invalid spec)."""


class EngineUnreachable(RetryableError):
    """An engine's endpoint does not answer (not yet, or no longer)."""


class EngineRefused(PermanentError):
    """An engine's endpoint answered but refused Rucat's credentials."""
