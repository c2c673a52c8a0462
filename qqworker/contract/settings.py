"""Configuration: one table (the `Settings` dataclass) feeds the flags, the environment and the
TOML file, with precedence flags > environment > config file > defaults.

Every field's metadata names its config-file table, its environment variable and its help text, so
a setting is declared exactly once. Errors name the offending key and are `ConfigError` (exit 78).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any
from urllib.parse import urlsplit

from qqworker.contract import rules

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# The platform moved its OpenAPI to api.bot.qq.com in 2026 (hermes-agent issue 73378, 2026-07-28:
# api.sgroup.qq.com/gateway answering 500; nonebot adapter-qq issue 229, 2026-08): the new host first,
# the old one as its alternative.
PRODUCTION_APIS = ("https://api.bot.qq.com", "https://api.sgroup.qq.com")
PRODUCTION_API = PRODUCTION_APIS[0]
SANDBOX_API = "https://sandbox.api.sgroup.qq.com"
# bots.qq.com still issued tokens in July 2026; the new host serves the same path.
TOKEN_URLS = ("https://bots.qq.com/app/getAppAccessToken", "https://api.bot.qq.com/app/getAppAccessToken")
TOKEN_URL = ",".join(TOKEN_URLS)

INTENT_BITS = {
    "guilds": 1 << 0,
    "guild_members": 1 << 1,
    "guild_messages": 1 << 9,
    "guild_message_reactions": 1 << 10,
    "direct_message": 1 << 12,
    "group_and_c2c_event": 1 << 25,
    "interaction": 1 << 26,
    "message_audit": 1 << 27,
    "forums_event": 1 << 28,
    "audio_action": 1 << 29,
    "public_guild_messages": 1 << 30,
}
DEFAULT_INTENTS = "public_guild_messages,group_and_c2c_event"


class ConfigError(Exception):
    """A configuration or credential error that no retry can fix (exit 78)."""


def _opt(
    default: Any,
    section: str,
    help: str,
    *,
    env: str | None = None,
    flag: bool = True,
    minimum: float | None = None,
    maximum: float | None = None,
    secret: bool = False,
) -> Any:
    """One setting. A number is always refused when NaN or infinite; `minimum`/`maximum` bound it
    (an int without a maximum is still bounded by INT_MAX: see `rules.bounds`)."""
    return field(
        default=default,
        metadata={
            "section": section,
            "help": help,
            "env": env,
            "flag": flag,
            "minimum": minimum,
            "maximum": maximum,
            "secret": secret,
        },
    )


@dataclass(frozen=True)
class Settings:
    # [qq]: the bot and the platform
    app_id: str = _opt("", "qq", "the bot's app id", env="QQ_APP_ID")
    app_secret: str = _opt(
        "", "qq", "the bot's client secret (environment only)", env="QQ_APP_SECRET", flag=False, secret=True
    )
    sandbox: bool = _opt(False, "qq", "use the sandbox API base", env="QQ_SANDBOX")
    api_base: str = _opt(
        "",
        "qq",
        "REST base URL, or an ordered comma-separated list tried in turn on a wrong-host failure "
        "(default since 2026-12: api.bot.qq.com, then api.sgroup.qq.com, after the platform's 2026 move; "
        "hermes-agent issue 73378, nonebot adapter-qq issue 229)",
        env="QQ_API_BASE",
    )
    token_url: str = _opt(
        TOKEN_URL,
        "qq",
        "app access token endpoint, or an ordered comma-separated list rotated like api_base "
        "(since 2026-12: bots.qq.com, still issuing tokens in July 2026, then api.bot.qq.com, which serves "
        "the same path after the platform's 2026 move; nonebot adapter-qq issue 229)",
        env="QQ_TOKEN_URL",
    )
    intents: str = _opt(
        DEFAULT_INTENTS, "qq", "intent names, comma separated, or an integer", env="QQ_INTENTS"
    )
    handler: str = _opt("log", "qq", "module:function for dispatch events, or log / echo", env="QQ_HANDLER")
    # [worker]: the reconnect loop
    retry_initial: float = _opt(2.0, "worker", "first reconnect delay, seconds", minimum=0.01, maximum=3600)
    retry_max: float = _opt(60.0, "worker", "reconnect delay cap, seconds", minimum=0.01, maximum=86400)
    max_attempts: int = _opt(
        100, "worker", "consecutive failed attempts before exit 75; 0 never", minimum=0, maximum=10**6
    )
    connect_timeout: float = _opt(
        15.0, "worker", "bound on one attempt up to READY/RESUMED, seconds", minimum=0.1, maximum=600
    )
    heartbeat_interval: float = _opt(
        1.0, "worker", "pipe heartbeat period to the watchdog, seconds", minimum=0.05, maximum=300
    )
    handler_concurrency: int = _opt(8, "worker", "handler calls running at once", minimum=1, maximum=10_000)
    handler_queue: int = _opt(
        1000, "worker", "dispatch events waiting for a handler", minimum=1, maximum=10**7
    )
    max_frame_bytes: int = _opt(
        1 << 20,
        "worker",
        "largest gateway frame taken, bytes; a larger one closes the link (1009) and, replayed, is skipped",
        minimum=4096,
    )
    webhook_url: str = _opt(
        "",
        "worker",
        "with handler webhook: comma-separated URLs each event is POSTed to, signed as the platform would",
        env="QQW_WEBHOOK_URL",
    )
    webhook_retry_max: float = _opt(30.0, "worker", "webhook retry delay cap, seconds", minimum=0.01)
    webhook_queue: int = _opt(
        1000, "worker", "events waiting per webhook URL; the oldest dropped past it", minimum=1
    )
    webhook_timeout: float = _opt(10.0, "worker", "bound on one webhook POST, seconds", minimum=0.1)
    webhook_backlog_warn: float = _opt(
        60.0,
        "worker",
        "warn (webhook.backlog) when an event has waited this long for its webhook",
        minimum=0.1,
    )
    gateway_listen: str = _opt(
        "127.0.0.1:8765",
        "worker",
        "with QQ_HANDLER=gateway: HOST:PORT of the local QQ-compatible platform for frameworks",
        env="QQW_GATEWAY_LISTEN",
    )
    gateway_allow_remote: bool = _opt(
        False, "worker", "let --gateway-listen use an address other than loopback"
    )
    gateway_buffer: int = _opt(
        10000, "worker", "local gateway: events kept for clients that resume or restart", minimum=1
    )
    gateway_buffer_age: float = _opt(
        600.0, "worker", "local gateway: the oldest buffered event kept, seconds", minimum=1.0
    )
    gateway_heartbeat: float = _opt(
        5.0,
        "worker",
        "local gateway: the Hello interval given to clients, seconds (their heartbeat confirms events)",
        minimum=0.5,
    )
    # [watchdog]: supervision
    heartbeat_timeout: float = _opt(
        5.0, "watchdog", "no pipe beat this long: kill the child", minimum=0.1, maximum=3600
    )
    attempt_grace: float = _opt(
        15.0, "watchdog", "grace after an announced attempt's deadline", minimum=0.5, maximum=600
    )
    respawn_initial: float = _opt(1.0, "watchdog", "first respawn delay, seconds", minimum=0.01, maximum=3600)
    respawn_max: float = _opt(300.0, "watchdog", "respawn delay cap, seconds", minimum=0.01, maximum=86400)
    healthy_after: float = _opt(
        60.0, "watchdog", "connected this long resets the respawn delay", minimum=0.0, maximum=86400
    )
    max_restarts: int = _opt(
        0, "watchdog", "give up (exit 69) after N respawns in the window; 0 never", minimum=0, maximum=10**6
    )
    restart_window: float = _opt(
        600.0, "watchdog", "the window for --max-restarts, seconds", minimum=1.0, maximum=30 * 86400
    )
    memory_limit_mb: float = _opt(
        0.0, "watchdog", "kill and respawn a child above this RSS; 0 off", minimum=0.0, maximum=1 << 20
    )
    stop_timeout: float = _opt(
        10.0, "watchdog", "SIGTERM, then SIGKILL after this long", minimum=0.1, maximum=3600
    )
    http: str = _opt(
        "",
        "watchdog",
        "serve /healthz /readyz /metrics on HOST:PORT, or PORT on 127.0.0.1; empty: off",
        env="QQW_HTTP",
    )
    push_url: str = _opt(
        "",
        "watchdog",
        "dead man's switch: GET this URL every push interval while ready (it holds a token: not logged)",
        env="QQW_PUSH_URL",
        secret=True,
    )
    push_interval: float = _opt(20.0, "watchdog", "seconds between two pushes to --push-url", minimum=1.0)
    poison_after: int = _opt(
        3,
        "watchdog",
        "skip an event (logged, counted) after N successive children died with it oldest unhandled; 0 never",
        minimum=0,
    )
    resume_max_age: float = _opt(
        1800.0,
        "watchdog",
        "resume a persisted session last connected up to this long ago, seconds; 0 never",
        minimum=0.0,
    )
    # [logging]
    log_file: str = _opt("", "logging", "also write JSON lines here (reopened on SIGHUP)", env="QQW_LOG_FILE")
    status_file: str = _opt(
        "./run/qqwatchdog.status.json", "logging", "the watchdog's state file", env="QQW_STATUS_FILE"
    )
    state_file: str = _opt(
        "./run/qqwatchdog.session.json",
        "logging",
        "the persisted resumable session (mode 0600, no secret or token); empty: off",
        env="QQW_STATE_FILE",
    )
    log_buffer_kb: int = _opt(
        1024,
        "logging",
        "per output (stdout, the log file): KiB of lines held while it is stalled or failing; "
        "beyond, lines are dropped and counted (log.dropped)",
        minimum=4,
    )
    log_retry: float = _opt(
        5.0, "logging", "a failing output (ENOSPC, EIO, EPIPE) is retried this often, seconds", minimum=0.1
    )

    # Derived values ------------------------------------------------------------------------

    @property
    def api_bases(self) -> tuple[str, ...]:
        """The REST bases in the order they are tried (`api_base` as a list, or the defaults)."""
        if self.api_base.strip():
            return tuple(url.rstrip("/") for url in url_list(self.api_base))
        return (SANDBOX_API,) if self.sandbox else PRODUCTION_APIS

    @property
    def token_urls(self) -> tuple[str, ...]:
        return url_list(self.token_url)

    @property
    def webhook_urls(self) -> tuple[str, ...]:
        return url_list(self.webhook_url)

    @property
    def rest_base(self) -> str:
        """The first REST base (the one tried first)."""
        bases = self.api_bases
        return bases[0] if bases else ""

    @property
    def intents_mask(self) -> int:
        return parse_intents(self.intents)

    def public_dict(self) -> dict[str, Any]:
        """Every setting but the secrets: safe for logs and the status file."""
        secret = {f.name for f in fields(self) if f.metadata.get("secret")}
        return {k: v for k, v in asdict(self).items() if k not in secret}

    def validate(
        self, *, need_credentials: bool = True, origins: Mapping[str, str] | None = None
    ) -> Settings:
        """Every rule at once (`rules`); `origins` names where each given value came from."""
        for f in fields(self):
            error = rules.field_error(f, getattr(self, f.name), origins)
            if error:
                raise ConfigError(error)
        error = rules.relation_error(self, origins)
        if error:
            raise ConfigError(error)
        if need_credentials and not (self.app_id and self.app_secret):
            raise ConfigError("QQ_APP_ID and QQ_APP_SECRET are required (environment or --env-file)")
        self.intents_mask  # noqa: B018 - raises ConfigError on a bad value
        if self.handler.strip() == "gateway":
            host, _ = parse_listen(self.gateway_listen, "gateway_listen")
            if not self.gateway_allow_remote and not is_loopback_host(host):
                raise ConfigError(
                    f"gateway_listen: {host!r} is not a loopback address (add --gateway-allow-remote)"
                )
        for name, urls in (("api_base", self.api_bases), ("token_url", self.token_urls)):
            if not urls:
                raise ConfigError(f"{name}: no URL given")
            for url in urls:
                check_url(url, name)
        if self.handler.strip() == "webhook":
            if not self.webhook_urls:
                raise ConfigError("webhook_url: QQ_HANDLER=webhook needs QQW_WEBHOOK_URL (or --webhook-url)")
            for url in self.webhook_urls:
                if not url.startswith(("http://", "https://")):
                    raise ConfigError(f"webhook_url: not an http(s) URL: {url!r}")
                check_url(url, "webhook_url")
        return self


def parse_intents(value: str | int) -> int:
    text = str(value).strip()
    if text.isdigit():
        return _intents_mask(int(text))
    mask = 0
    for name in filter(None, (part.strip().lower() for part in text.split(","))):
        if name not in INTENT_BITS:
            raise ConfigError(f"intents: unknown intent {name!r} (known: {', '.join(INTENT_BITS)})")
        mask |= INTENT_BITS[name]
    if not mask:
        raise ConfigError("intents: none given")
    return mask


def url_list(value: str) -> tuple[str, ...]:
    """An ordered comma-separated list of URLs, blanks dropped."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _intents_mask(mask: int) -> int:
    known = 0
    for bit in INTENT_BITS.values():
        known |= bit
    if mask == 0:
        raise ConfigError("intents: 0 subscribes to nothing (the bot would connect and receive no event)")
    if mask > rules.INT_MAX:
        raise ConfigError(f"intents: {mask} is out of range (every known intent bit is below 2**31)")
    unknown = mask & ~known
    if unknown:
        bits = ", ".join(f"1<<{n}" for n in range(unknown.bit_length()) if unknown >> n & 1)
        raise ConfigError(f"intents: {mask} has unknown bits {bits} (known: {', '.join(INTENT_BITS)})")
    return mask


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_listen(value: str, name: str) -> tuple[str, int]:
    """`HOST:PORT` (`[v6]:PORT` too, or just `PORT` on 127.0.0.1); ConfigError otherwise."""
    text = value.strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", text
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{name}: expected HOST:PORT, got {value!r}")
    return host, int(port)


def check_url(url: str, name: str) -> None:
    """Plain http/ws only for loopback hosts; everything else must be TLS (verified elsewhere)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
        raise ConfigError(f"{name}: not an http(s) or ws(s) URL: {url!r}")
    if parts.scheme in ("http", "ws") and not is_loopback_host(parts.hostname):
        raise ConfigError(f"{name}: plain {parts.scheme}:// is allowed only for loopback hosts: {url!r}")


# Loading -------------------------------------------------------------------------------------


def _convert(f: Any, raw: Any, origin: str) -> Any:
    kind = type(f.default)
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind in (int, float) and isinstance(raw, bool):  # TOML true is no count or delay
            raise ValueError(raw)
        if kind is int:
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError(raw)
            return int(raw)
        if kind is float:
            return float(raw)
        if not isinstance(raw, (str, int)):
            raise ValueError(raw)
        return str(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{f.name}: bad value {raw!r} from {origin} (expected {kind.__name__})") from None


def read_config_file(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    by_section: dict[str, dict[str, Any]] = {}
    for f in fields(Settings):
        by_section.setdefault(f.metadata["section"], {})[f.name] = f
    values: dict[str, Any] = {}
    for section, table in data.items():
        if section not in by_section or not isinstance(table, dict):
            known = ", ".join(by_section)
            raise ConfigError(f"config file {path}: unknown table [{section}] (known: {known})")
        for key, raw in table.items():
            f = by_section[section].get(key)
            if f is None:
                raise ConfigError(f"config file {path}: unknown key {key!r} in [{section}]")
            if f.metadata["secret"]:
                raise ConfigError(f"config file {path}: {key} belongs in the environment or --env-file")
            values[key] = _convert(f, raw, f"{path} [{section}]")
    return values


def add_setting_flags(parser: argparse.ArgumentParser, sections: tuple[str, ...]) -> None:
    """Adds --flag for every setting of these sections; unset flags stay None (= not given)."""
    for section in sections:
        group = parser.add_argument_group(f"[{section}]")
        for f in fields(Settings):
            if f.metadata["section"] != section or not f.metadata["flag"]:
                continue
            flag = "--" + f.name.replace("_", "-")
            if type(f.default) is bool:
                group.add_argument(
                    flag, dest=f.name, action="store_const", const=True, default=None, help=f.metadata["help"]
                )
            else:
                group.add_argument(
                    flag,
                    dest=f.name,
                    default=None,
                    metavar=f.name.upper(),
                    help=f"{f.metadata['help']} (default {f.default})",
                )


def load_settings(
    flags: Mapping[str, Any] | argparse.Namespace | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: str | None = None,
    *,
    need_credentials: bool = True,
) -> Settings:
    """Builds validated Settings from defaults < config file < environment < flags."""
    environ = os.environ if environ is None else environ
    given = vars(flags) if isinstance(flags, argparse.Namespace) else dict(flags or {})
    values: dict[str, Any] = read_config_file(config_file) if config_file else {}
    origins = {name: f"config file {config_file}" for name in values}
    for f in fields(Settings):
        env = f.metadata["env"]
        if env and env in environ:
            values[f.name] = _convert(f, environ[env], f"${env}")
            origins[f.name] = f"${env}"
        if given.get(f.name) is not None:
            flag = "--" + f.name.replace("_", "-")
            values[f.name] = _convert(f, given[f.name], flag)
            origins[f.name] = flag
    return replace(Settings(), **values).validate(need_credentials=need_credentials, origins=origins)
