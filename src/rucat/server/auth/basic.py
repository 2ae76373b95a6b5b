"""HTTP Basic credentials, decoded (RFC 7617): base64 of ``user:password``."""

from __future__ import annotations

import base64
import binascii

from rucat.domain.errors import Unauthenticated


def split_basic(value: str) -> tuple[bytes, bytes]:
    """(user, password) as the bytes sent; raises Unauthenticated when malformed."""
    try:
        decoded = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as e:
        raise Unauthenticated("malformed Basic credentials") from e
    user, sep, password = decoded.partition(b":")
    if not sep:
        raise Unauthenticated("malformed Basic credentials")
    return user, password
