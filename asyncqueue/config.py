"""Queue settings: explicit arguments first, then ``QUEUE_*`` environment variables, then defaults.

Every value is validated when the settings are built, so a bad setting fails at
``JobQueue(...)`` rather than at the first job.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from asyncqueue.errors import ConfigurationError
from asyncqueue.retry import RetryPolicy
from asyncqueue.timebounds import MAX_SETTING_SECONDS
from asyncqueue.validation import MAX_RETRIES_LIMIT

T = TypeVar("T")

#: Where the queue lives when neither an argument nor ``QUEUE_DB_PATH`` says otherwise.
DEFAULT_DB_PATH = "./asyncqueue.db"
#: The PostgreSQL schema holding the queue's tables unless configured otherwise.
DEFAULT_SCHEMA = "asyncqueue"
#: URL schemes that select the PostgreSQL backend instead of a SQLite file.
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
#: Largest metadata accepted, in bytes of its JSON encoding, unless configured otherwise.
DEFAULT_MAX_METADATA_BYTES = 64 * 1024

Synchronous = Literal["NORMAL", "FULL"]

# name of the setting -> environment variable that supplies it
ENVIRONMENT_VARIABLES: dict[str, str] = {
    "path": "QUEUE_DB_PATH",
    "retry_base_delay": "QUEUE_RETRY_BASE_DELAY",
    "retry_backoff_multiplier": "QUEUE_RETRY_MULTIPLIER",
    "retry_max_delay": "QUEUE_RETRY_MAX_DELAY",
    "retry_jitter": "QUEUE_RETRY_JITTER",
    "job_timeout_minutes": "QUEUE_JOB_TIMEOUT_MINUTES",
    "max_retries": "QUEUE_MAX_RETRIES",
    "cleanup_after_days": "QUEUE_CLEANUP_AFTER_DAYS",
    "synchronous": "QUEUE_SYNCHRONOUS",
    "busy_timeout": "QUEUE_BUSY_TIMEOUT",
    "max_metadata_bytes": "QUEUE_MAX_METADATA_BYTES",
    "record_history": "QUEUE_RECORD_HISTORY",
    "schema": "QUEUE_DB_SCHEMA",
    "pool_size": "QUEUE_DB_POOL_SIZE",
    "listen": "QUEUE_DB_LISTEN",
}

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def is_postgres_url(path: str) -> bool:
    """Whether ``path`` is a ``postgresql://`` (or ``postgres://``) URL."""
    return path.startswith(POSTGRES_SCHEMES)


def redacted(url: str) -> str:
    """``url`` without its password, for messages and logs.

    Works on the text alone, so it cannot fail on a URL the driver would refuse (a bad
    port) or that :func:`urllib.parse.urlsplit` reads wrongly (several hosts, an IPv6
    host): the password after ``user:`` and a ``password=`` query parameter are hidden.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    netloc, tail = rest[:end], rest[end:]
    userinfo, at, hosts = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = userinfo.split(":", 1)[0] + ":***@" + hosts
    tail = _QUERY_PASSWORD.sub(r"\1***", tail)
    return f"{scheme}://{netloc}{tail}"


_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """The validated settings of one ``JobQueue``."""

    path: str
    retry_base_delay: float = 1.0
    retry_backoff_multiplier: float = 2.0
    retry_max_delay: float = 3600.0
    retry_jitter: bool = False
    job_timeout_minutes: float = 30.0
    max_retries: int = 3
    cleanup_after_days: float = 7.0
    synchronous: Synchronous = "NORMAL"
    busy_timeout: float = 5.0
    busy_retries: int = 3
    read_connections: int = 2
    max_metadata_bytes: int = DEFAULT_MAX_METADATA_BYTES
    record_history: bool = True
    #: PostgreSQL only: the schema holding the queue's tables.
    schema: str = DEFAULT_SCHEMA
    #: PostgreSQL only: most connections of the queue's pool.
    pool_size: int = 10
    #: PostgreSQL only: wake workers by LISTEN/NOTIFY (off behind PgBouncer transaction pooling).
    listen: bool = True

    @property
    def is_postgres(self) -> bool:
        """Whether ``path`` is a PostgreSQL URL."""
        return is_postgres_url(self.path)

    @property
    def lease_seconds(self) -> float:
        """How long a claim holds a job without renewal: ``job_timeout_minutes`` in seconds."""
        return self.job_timeout_minutes * 60.0

    @property
    def retry_policy(self) -> RetryPolicy:
        """The backoff these settings describe."""
        return RetryPolicy(
            base_delay=self.retry_base_delay,
            multiplier=self.retry_backoff_multiplier,
            max_delay=self.retry_max_delay,
            jitter=self.retry_jitter,
        )


def _number(
    name: str,
    value: object,
    *,
    minimum: float,
    exclusive: bool = False,
    maximum: float | None = None,
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        number = math.inf
    if math.isnan(number) or math.isinf(number):
        raise ConfigurationError(f"{name} must be finite, got {value!r}")
    if number < minimum or (exclusive and number == minimum):
        relation = ">" if exclusive else ">="
        raise ConfigurationError(f"{name} must be {relation} {minimum:g}, got {value!r}")
    if maximum is not None and number > maximum:
        raise ConfigurationError(f"{name} must be <= {maximum:.0f} (100 years), got {value!r}")
    return number


def _integer(name: str, value: object, *, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ConfigurationError(f"{name} must be >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ConfigurationError(f"{name} must be <= {maximum}, got {value!r}")
    return value


def _parse_env(name: str, raw: str, parse: Callable[[str], T]) -> T:
    try:
        return parse(raw.strip())
    except ValueError:
        raise ConfigurationError(
            f"environment variable {ENVIRONMENT_VARIABLES[name]}={raw!r} is not valid for {name}"
        ) from None


def _parse_bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(raw)


_ENV_PARSERS: dict[str, Callable[[str], object]] = {
    "path": str,
    "retry_jitter": _parse_bool,
    "record_history": _parse_bool,
    "listen": _parse_bool,
    "schema": str,
    "pool_size": int,
    "max_retries": int,
    "max_metadata_bytes": int,
    "synchronous": str.upper,
}


def _from_environment(name: str, environ: Mapping[str, str]) -> object | None:
    raw = environ.get(ENVIRONMENT_VARIABLES[name])
    if raw is None or raw.strip() == "":
        return None
    return _parse_env(name, raw, _ENV_PARSERS.get(name, float))


def resolve_settings(
    explicit: Mapping[str, object | None], environ: Mapping[str, str] | None = None
) -> QueueSettings:
    """Build validated settings: explicit (non-None) values win over the environment.

    Raises:
        ConfigurationError: a value, explicit or from the environment, is invalid.
    """
    env = os.environ if environ is None else environ
    chosen: dict[str, object] = {}
    for name, value in explicit.items():
        if value is None and name in ENVIRONMENT_VARIABLES:
            value = _from_environment(name, env)
        if value is not None:
            chosen[name] = value
    path = chosen.pop("path", None)
    if path is None:
        path = DEFAULT_DB_PATH
    if not isinstance(path, str | os.PathLike):
        raise ConfigurationError(f"path must be a str or os.PathLike, got {path!r}")
    path_str = os.fspath(path)
    if not isinstance(path_str, str) or not path_str or path_str == ":memory:":
        raise ConfigurationError(
            f"path must name a database file (an in-memory database cannot be shared), got {path!r}"
        )
    # A URL stays as given: Path() would fold its "//".
    path_str = path_str if is_postgres_url(path_str) else str(Path(path_str))
    return _validated(QueueSettings(path=path_str, **chosen))  # type: ignore[arg-type]


def _validated(s: QueueSettings) -> QueueSettings:
    # Durations that end up added to a stored time are bounded (see asyncqueue.timebounds).
    # The multiplier is not: RetryPolicy.delay_for caps the backoff at retry_max_delay.
    _number("retry_base_delay", s.retry_base_delay, minimum=0, maximum=MAX_SETTING_SECONDS)
    _number("retry_backoff_multiplier", s.retry_backoff_multiplier, minimum=1)
    _number("retry_max_delay", s.retry_max_delay, minimum=0, maximum=MAX_SETTING_SECONDS)
    _number(
        "job_timeout_minutes",
        s.job_timeout_minutes,
        minimum=0,
        exclusive=True,
        maximum=MAX_SETTING_SECONDS / 60.0,
    )
    _number("cleanup_after_days", s.cleanup_after_days, minimum=0)
    _number("busy_timeout", s.busy_timeout, minimum=0)
    _integer("max_retries", s.max_retries, minimum=0, maximum=MAX_RETRIES_LIMIT)
    _integer("busy_retries", s.busy_retries, minimum=1)
    _integer("read_connections", s.read_connections, minimum=1)
    _integer("max_metadata_bytes", s.max_metadata_bytes, minimum=2)
    _integer("pool_size", s.pool_size, minimum=2)
    if not isinstance(s.schema, str) or not _IDENTIFIER.fullmatch(s.schema):
        raise ConfigurationError(
            f"schema must be an SQL identifier (letters, digits, _; at most 63), got {s.schema!r}"
        )
    # PostgreSQL's own schemas: pg_* names are reserved (CREATE SCHEMA refuses them), and
    # information_schema would take the queue's tables among the catalog's views.
    if s.schema.startswith("pg_") or s.schema == "information_schema":
        raise ConfigurationError(f"schema {s.schema!r} is one of PostgreSQL's own; pick another")
    for flag in ("retry_jitter", "record_history", "listen"):
        if not isinstance(getattr(s, flag), bool):
            raise ConfigurationError(f"{flag} must be a bool, got {getattr(s, flag)!r}")
    if s.synchronous not in ("NORMAL", "FULL"):
        raise ConfigurationError(f"synchronous must be 'NORMAL' or 'FULL', got {s.synchronous!r}")
    return s
