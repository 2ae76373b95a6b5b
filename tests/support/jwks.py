"""A real identity provider for OIDC tests: keys made here, a JWKS served over real HTTP.

`IdentityProvider` signs tokens with keys generated in the test and publishes
their public halves at `jwks_uri` from a thread-run HTTP server. Tests rotate
keys, count fetches, and take the key set down (HTTP 503) to see what Rucat
does.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISSUER = "https://idp.example.test/realms/data"
AUDIENCE = "rucat"


@dataclass
class SigningKey:
    kid: str
    private: Any
    alg: str

    def public_jwk(self) -> dict[str, Any]:
        if self.alg.startswith("ES"):
            jwk = ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        else:
            jwk = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig"}


def rsa_key(kid: str) -> SigningKey:
    return SigningKey(kid, rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256")


def ec_key(kid: str) -> SigningKey:
    return SigningKey(kid, ec.generate_private_key(ec.SECP256R1()), "ES256")


@dataclass
class IdentityProvider:
    keys: list[SigningKey]
    url: str = ""
    fetches: int = 0
    down: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def jwks_uri(self) -> str:
        return f"{self.url}/jwks.json"

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.public_jwk() for key in self.keys]}

    def claims(self, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        base = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "exp": now + 300,
            "iat": now,
            "nbf": now - 5,
            "sub": "u-1",
            "preferred_username": "carol",
            "groups": ["analytics"],
        }
        base.update(changes)
        return {k: v for k, v in base.items() if v is not None}

    def token(self, key: SigningKey | None = None, **claims: Any) -> str:
        key = key or self.keys[0]
        return jwt.encode(
            self.claims(**claims), key.private, algorithm=key.alg, headers={"kid": key.kid}
        )


class _Handler(BaseHTTPRequestHandler):
    idp: IdentityProvider

    def do_GET(self) -> None:
        idp = self.idp
        with idp._lock:
            idp.fetches += 1
            down = idp.down
            body = json.dumps(idp.jwks()).encode()
        if down or self.path != "/jwks.json":
            self.send_response(503 if down else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def identity_provider(*keys: SigningKey) -> Iterator[IdentityProvider]:
    idp = IdentityProvider(keys=list(keys) or [rsa_key("key-1")])
    handler = type("Handler", (_Handler,), {"idp": idp})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    idp.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield idp
    finally:
        server.shutdown()
        server.server_close()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(claims: dict[str, Any], kid: str) -> str:
    """A token with `alg: none` and no signature."""
    header = b64url(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
    return f"{header}.{b64url(json.dumps(claims).encode())}."


def hs256_with_public_key(idp: IdentityProvider, key: SigningKey) -> str:
    """The classic confusion attack: HMAC keyed with the published public key (PEM)."""
    import hashlib
    import hmac

    from cryptography.hazmat.primitives import serialization

    pem = key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
    payload = b64url(json.dumps(idp.claims()).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(pem, signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(signature)}"


def tampered(token: str, **changes: Any) -> str:
    """`token` with its payload changed and the original signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    return f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"
