"""A hub URL (``redis://``, ``rediss://``, ``unix://``) to a Redis client, with one-line errors.

The fleet's key prefix rides in the URL's query (``redis://hub:6379/0?prefix=lab1``) so
one string names a fleet everywhere: on the command line, in ``$EXPWATCH_HUB``, in the
README. Passwords and TLS come from the URL as redis-py reads them
(``rediss://:secret@hub:6380/0``). Nothing is sent until the first command: a URL is
checked for shape here, the server when it is first asked.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SCHEMES = ("redis", "rediss", "unix")
DEFAULT_PREFIX = "expwatch"
_SAFE_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: Seconds to wait for a connection or a reply (a blocking read adds its own block time).
SOCKET_TIMEOUT_S = 5.0
HUB_ENV = "EXPWATCH_HUB"


class HubError(Exception):
    """The hub cannot be used; the message says why in one line (never with a password)."""


def is_hub_url(text: str) -> bool:
    return text.split("://", 1)[0].lower() in SCHEMES and "://" in text


def hub_url_from_env() -> str | None:
    return os.environ.get(HUB_ENV) or None


@dataclass(frozen=True)
class HubAddress:
    """A parsed hub URL: what to connect to, the fleet's prefix, and a printable form."""

    url: str
    """The URL for redis-py, without our own ``prefix`` parameter."""
    prefix: str
    shown: str
    """The URL with any password replaced by ``***``: the only form that is ever printed."""

    @classmethod
    def parse(cls, text: str) -> HubAddress:
        if not is_hub_url(text):
            raise HubError(f"not a hub URL: {redact(text)} (expected redis://HOST[:PORT][/DB], rediss:// or unix://)")
        parts = urlsplit(text)
        query = parse_qsl(parts.query, keep_blank_values=True)
        prefixes = [v for k, v in query if k == "prefix"]
        prefix = prefixes[-1] if prefixes else DEFAULT_PREFIX
        if not _SAFE_PREFIX.match(prefix):
            raise HubError(f"bad prefix {prefix!r} in {redact(text)}: letters, digits, '.', '_' and '-', at most 64")
        if parts.scheme != "unix" and not parts.hostname:
            raise HubError(f"no host in {redact(text)}")
        try:
            parts.port  # noqa: B018 (raises on a bad port)
        except ValueError:
            raise HubError(f"bad port in {redact(text)}") from None
        rest = [(k, v) for k, v in query if k != "prefix"]
        url = urlunsplit(parts._replace(query=urlencode(rest)))
        if parts.scheme == "unix" and not parts.netloc:
            url = "unix://" + url.removeprefix("unix:")  # urlunsplit drops the empty authority's '//', redis-py needs it
        return cls(url=url, prefix=prefix, shown=redact(text))

    def client(self, *, timeout: float = SOCKET_TIMEOUT_S) -> Any:
        """A redis-py client (the connection itself is made on the first command)."""
        import redis

        try:
            return redis.Redis.from_url(
                self.url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=30
            )
        except (ValueError, TypeError) as exc:
            raise HubError(f"bad hub URL {self.shown}: {exc}") from None


def redact(text: str) -> str:
    """``text`` with the password of a URL replaced by ``***``."""
    try:
        parts = urlsplit(text)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return text
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def describe_error(exc: BaseException, shown: str) -> str:
    """A Redis client error as the one line a user needs (what failed, where, what to do)."""
    import redis

    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, redis.AuthenticationError) or "NOAUTH" in text or "WRONGPASS" in text or "invalid password" in text:
        return f"hub {shown}: authentication failed (give the password in the URL: redis://:PASSWORD@host/0)"
    if isinstance(exc, redis.TimeoutError):
        return f"hub {shown}: no answer in time ({text})"
    if isinstance(exc, redis.ConnectionError):
        if "Connection refused" in text or "Error 111" in text:
            return f"hub {shown}: connection refused (is redis-server running there? redis-server --port 6379)"
        return f"hub {shown}: cannot connect ({text})"
    if isinstance(exc, redis.ResponseError) and text.startswith("OOM"):
        return f"hub {shown}: Redis is full (maxmemory reached): {text}"
    if isinstance(exc, redis.ResponseError):
        return f"hub {shown}: Redis refused a command: {text}"
    if isinstance(exc, redis.RedisError):
        return f"hub {shown}: {type(exc).__name__}: {text} (is it a Redis server?)"
    return f"hub {shown}: {type(exc).__name__}: {text}"


__all__ = ["DEFAULT_PREFIX", "HUB_ENV", "HubAddress", "HubError", "describe_error", "hub_url_from_env", "is_hub_url", "redact"]
