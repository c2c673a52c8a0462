"""The webhook signatures against the platform documentation's own vectors."""

from __future__ import annotations

import json

import pytest

from qqworker.webhook_sign import Signer, seed_of

DOC_SECRET = "naOC0ocQE3shWLAfffVLB1rhYPG7"
# The page gives the public key as decimal bytes [215 195 98 254 ... 103 58].
DOC_PUBLIC_KEY = bytes.fromhex("d7c362fe78aef81ff23287b493628b5db02a3c4fe30b215e4d19609b5d76673a")
DOC_TS = "1725442341"
DOC_SIG = (
    "865ad13a61752ca65e26bde6676459cd36cf1be609375b37bd62af366e1dc25a"
    "8dc789ba7f14e017ada3d554c671a911bfdf075ba54835b23391d509579ed002"
)
# The page prints the body on one line, but its signature is over the two-space-indented form.
DOC_BODY = b'{\n  "op": 0,\n  "d": {},\n  "t": "GATEWAY_EVENT_NAME"\n}'
DOC_BODY_PRINTED = b'{ "op": 0,"d": {}, "t": "GATEWAY_EVENT_NAME"}'


def test_seed_is_the_secret_repeated_to_32_bytes() -> None:
    assert seed_of(DOC_SECRET) == b"naOC0ocQE3shWLAfffVLB1rhYPG7naOC"
    assert seed_of("x" * 40) == b"x" * 32
    with pytest.raises(ValueError):
        seed_of("")


def test_public_key_matches_the_documentation() -> None:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = Signer(DOC_SECRET).public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert raw == DOC_PUBLIC_KEY


def test_event_signature_matches_the_documentation() -> None:
    signer = Signer(DOC_SECRET)
    assert json.dumps({"op": 0, "d": {}, "t": "GATEWAY_EVENT_NAME"}, indent=2).encode() == DOC_BODY
    assert signer.sign(DOC_TS, DOC_BODY) == DOC_SIG
    assert signer.verify(DOC_TS, DOC_BODY, DOC_SIG)
    # ...and not over the one-line body the page prints (the signature is over the exact bytes).
    assert not signer.verify(DOC_TS, DOC_BODY_PRINTED, DOC_SIG)


def test_validation_signature_matches_the_documentation() -> None:
    # event-emit.md: appid 11111111, secret DG5g3B4j9X2KOErG, plain_token and event_ts as below.
    signer = Signer("DG5g3B4j9X2KOErG")
    expected = (
        "87befc99c42c651b3aac0278e71ada338433ae26fcb24307bdc5ad38c1adc2d0"
        "1bcfcadc0842edac85e85205028a1132afe09280305f13aa6909ffc2d652c706"
    )
    assert signer.sign("1725442341", b"Arq0D5A61EgUu4OxUvOp") == expected


def test_verify_rejects_a_wrong_secret_a_changed_body_and_bad_hex() -> None:
    signature = Signer(DOC_SECRET).sign(DOC_TS, DOC_BODY)
    assert not Signer("another-secret").verify(DOC_TS, DOC_BODY, signature)
    assert not Signer(DOC_SECRET).verify("1725442342", DOC_BODY, signature)
    assert not Signer(DOC_SECRET).verify(DOC_TS, DOC_BODY + b" ", signature)
    assert not Signer(DOC_SECRET).verify(DOC_TS, DOC_BODY, "not hex")


def test_headers_are_the_platforms() -> None:
    headers = Signer(DOC_SECRET).headers("102005", DOC_TS, DOC_BODY)
    assert headers["User-Agent"] == "QQBot-Callback"
    assert headers["X-Bot-Appid"] == "102005"
    assert headers["X-Signature-Timestamp"] == DOC_TS
    assert headers["X-Signature-Ed25519"] == DOC_SIG
