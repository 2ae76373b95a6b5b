"""How the SQL store's driver failures become Rucat's errors.

One place decides what a database failure means to a caller, so every
operation of `rucat.store.sql.store` (engines and tokens alike) converts them
the same way: a lost insert race is StoreConflict, values the database cannot
hold are InvalidRequest, anything else the driver raises is StoreUnavailable.
Every message names the database (never its password) and never carries SQL
text or parameters; each is raised ``from`` the original error. RucatErrors
raised by an operation itself pass through unchanged.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from rucat.domain.errors import InvalidRequest, RucatError, StoreConflict, StoreUnavailable

#: Errors that mean "the database failed", as opposed to a bug in Rucat.
_DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    SQLAlchemyError,
    sqlite3.Error,
    OSError,
    TimeoutError,
)
#: Errors that mean "the values cannot be stored" (a bad request, not an outage).
_DATA_ERRORS: tuple[type[BaseException], ...] = (DataError,)
try:  # asyncpg's own errors, raised where SQLAlchemy does not wrap them (and on the hot path)
    import asyncpg

    _DRIVER_ERRORS += (asyncpg.PostgresError, asyncpg.InterfaceError)
    _DATA_ERRORS += (asyncpg.DataError,)
except ImportError:  # pragma: no cover - asyncpg is a dependency
    pass


@contextmanager
def converted_errors(description: str, doing: str) -> Iterator[None]:
    """Turn driver failures into StoreUnavailable/StoreConflict; pass RucatErrors."""
    try:
        yield
    except RucatError:
        raise
    except IntegrityError as e:
        if _is_unique_violation(e):
            # Two writers inserted one id at once; the other one won.
            raise StoreConflict(
                f"{description}: cannot {doing}: conflicting write ({_reason(e)})",
                current=None,
            ) from e
        raise InvalidRequest(f"{description}: cannot {doing}: {_reason(e)}") from e
    except _DATA_ERRORS as e:
        raise InvalidRequest(f"{description}: cannot {doing}: {_reason(e)}") from e
    except _DRIVER_ERRORS as e:
        raise StoreUnavailable(f"{description}: cannot {doing}: {_reason(e)}") from e


def _is_unique_violation(error: IntegrityError) -> bool:
    text_ = str(getattr(error, "orig", None) or error).lower()
    # PostgreSQL: "duplicate key value violates unique constraint";
    # SQLite: "UNIQUE constraint failed".
    return "unique constraint" in text_ or "duplicate key" in text_


def _reason(error: BaseException) -> str:
    """A short cause without SQL text or parameters."""
    cause: BaseException = getattr(error, "orig", None) or error
    text_ = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    name = type(cause).__name__
    return f"{name}: {text_}" if text_ else name
