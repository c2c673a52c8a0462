"""`python -m qqworker webhook-check URL`: would this bot pass the platform's address validation?

Sends what the platform sends when a callback address is configured (op 13 with a fresh
`plain_token` and `event_ts`, signed like every callback) and checks the answer the way the platform
does: `{"plain_token": the same, "signature": hex Ed25519 of event_ts + plain_token}` under the key
of the bot secret. Reads QQ_APP_ID and QQ_APP_SECRET from the environment. Exit 0: it would pass;
1: it would not (the reason printed); 78: a usage or configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from qqworker.contract.exitcodes import ExitCode
from qqworker.contract.settings import ConfigError, check_url
from qqworker.webhook_sign import Signer


@dataclass
class CheckResult:
    ok: bool
    reason: str


async def check(url: str, app_id: str, secret: str, timeout_s: float = 10.0) -> CheckResult:
    signer = Signer(secret)
    plain_token = secrets.token_urlsafe(15)
    event_ts = str(int(time.time()))
    body = json.dumps({"d": {"plain_token": plain_token, "event_ts": event_ts}, "op": 13}).encode()
    headers = signer.headers(app_id, event_ts, body)
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as http,
            http.post(url, data=body, headers=headers, allow_redirects=False) as resp,
        ):
            status, text = resp.status, (await resp.content.read(65536)).decode("utf-8", "replace")
    except asyncio.TimeoutError:
        return CheckResult(False, f"no answer within {timeout_s:g}s")
    except (aiohttp.ClientError, OSError) as exc:
        return CheckResult(False, f"cannot reach {url}: {type(exc).__name__}: {exc}")
    if not 200 <= status < 300:
        return CheckResult(False, f"HTTP {status} (the platform needs a 2xx): {text[:200]!r}")
    try:
        answer = json.loads(text)
    except ValueError:
        return CheckResult(False, f"the answer is not JSON: {text[:200]!r}")
    if not isinstance(answer, dict) or not isinstance(answer.get("signature"), str):
        return CheckResult(False, f"the answer has no signature: {text[:200]!r}")
    if answer.get("plain_token") != plain_token:
        got = answer.get("plain_token")
        return CheckResult(False, f"plain_token {got!r} is not the one sent ({plain_token!r})")
    if not signer.verify(event_ts, plain_token.encode(), answer["signature"]):
        return CheckResult(
            False, "the signature does not verify: the bot signs with another secret, or wrongly"
        )
    return CheckResult(True, "the answer's plain_token and signature are right: the platform would accept it")


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="qqworker webhook-check",
        description="Send the platform's callback address validation (op 13) to URL and check the answer. "
        "QQ_APP_ID and QQ_APP_SECRET come from the environment.",
    )
    parser.add_argument("url")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the answer")
    args = parser.parse_args(argv)
    app_id, secret = os.environ.get("QQ_APP_ID", ""), os.environ.get("QQ_APP_SECRET", "")
    try:
        if not (app_id and secret):
            raise ConfigError("QQ_APP_ID and QQ_APP_SECRET are required in the environment")
        if not args.url.startswith(("http://", "https://")):
            raise ConfigError(f"not an http(s) URL: {args.url!r}")
        check_url(args.url, "url")
    except ConfigError as exc:
        print(f"webhook-check: {exc}", file=sys.stderr)
        return int(ExitCode.CONFIG)
    verdict = asyncio.run(check(args.url, app_id, secret, args.timeout))
    print(f"webhook-check {args.url}: {'PASS' if verdict.ok else 'FAIL'}: {verdict.reason}")
    return 0 if verdict.ok else 1
