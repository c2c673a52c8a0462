"""The platform's webhook signatures (Ed25519), as its documentation specifies them.

The key: the bot secret repeated until it is at least 32 bytes long, its first 32 bytes the Ed25519
seed (doc `interface-framework/sign.md`). An event POST carries `X-Signature-Ed25519`, the hex of
the signature over `timestamp + raw body`; the address validation call (op 13) is answered with the
signature over `event_ts + plain_token`. The crypto itself is the `cryptography` package's.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SEED_SIZE = 32
USER_AGENT = "QQBot-Callback"


def seed_of(secret: str) -> bytes:
    if not secret:
        raise ValueError("the bot secret is empty")
    seed = secret.encode()
    while len(seed) < SEED_SIZE:
        seed *= 2
    return seed[:SEED_SIZE]


class Signer:
    """Signs and verifies for one bot secret (the key is derived once)."""

    def __init__(self, secret: str) -> None:
        self._key = Ed25519PrivateKey.from_private_bytes(seed_of(secret))
        self.public_key: Ed25519PublicKey = self._key.public_key()

    def sign(self, timestamp: str, body: bytes) -> str:
        """The hex signature of `timestamp + body`."""
        return self._key.sign(timestamp.encode() + body).hex()

    def verify(self, timestamp: str, body: bytes, signature_hex: str) -> bool:
        try:
            signature = bytes.fromhex(signature_hex)
        except ValueError:
            return False
        try:
            self.public_key.verify(signature, timestamp.encode() + body)
        except InvalidSignature:
            return False
        return True

    def headers(self, app_id: str, timestamp: str, body: bytes) -> dict[str, str]:
        """The headers the platform sends with a callback whose raw body is `body`."""
        return {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Bot-Appid": app_id,
            "X-Signature-Method": "Ed25519",
            "X-Signature-Timestamp": timestamp,
            "X-Signature-Ed25519": self.sign(timestamp, body),
        }
