"""Checks on enqueue arguments: a bad job is refused before anything reaches the database."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from asyncqueue.errors import ValidationError, ValidationTypeError
from asyncqueue.timebounds import (
    MAX_SPAN_SECONDS,
    MAX_TIME_TEXT,
    MAX_TIMESTAMP,
    MIN_TIME_TEXT,
    MIN_TIMESTAMP,
)

#: Longest accepted ``job_type``, in characters.
MAX_JOB_TYPE_LENGTH = 255
#: Longest accepted ``target_id``, in characters.
MAX_TARGET_ID_LENGTH = 255
MIN_PRIORITY = 1
MAX_PRIORITY = 10
#: Longest error message kept for a failed attempt, in characters: an exception carrying a
#: whole response body or file would otherwise be written into the job and each history
#: row, and a remote worker's exchange could outgrow the server's body limit.
MAX_ERROR_CHARS = 8_192
DEFAULT_PRIORITY = 5
#: Largest accepted ``max_retries``.
MAX_RETRIES_LIMIT = 1_000_000

#: The keyword arguments ``enqueue`` and each ``enqueue_many`` item accept.
ENQUEUE_FIELDS = frozenset(
    {"job_type", "target_id", "priority", "max_retries", "metadata", "delay", "run_at"}
)


# Not frozen: one is made per job, and a frozen dataclass takes 0.5 us more to build.
@dataclass(slots=True)
class NewJob:
    """A validated job, ready to insert. Times are UTC epoch seconds."""

    job_type: str
    target_id: str
    priority: int
    max_retries: int
    metadata_json: str
    run_at: float


# Job types repeat from one job to the next: remember the ones already found valid.
_valid_job_types: set[str] = set()
_VALID_JOB_TYPES_KEPT = 4096


def storable_error(error: str) -> str:
    """An attempt's error message as stored: text SQLite and PostgreSQL both take (a lone
    surrogate backslash-escaped), at most :data:`MAX_ERROR_CHARS` characters with a note of
    how many were cut."""
    if not error.isascii():
        error = error.encode("utf-8", "backslashreplace").decode("utf-8")
    if "\x00" in error:
        error = error.replace("\x00", "\\x00")  # PostgreSQL text cannot hold NUL
    if len(error) <= MAX_ERROR_CHARS:
        return error
    kept = MAX_ERROR_CHARS - 64  # room for the note, whatever the count in it
    return f"{error[:kept]}... [{len(error) - kept:,} more characters cut]"


def job_type_name(job_type: object) -> str:
    """The job type as stored: a str, or the value of a str-valued Enum member."""
    if isinstance(job_type, Enum):
        job_type = job_type.value
    if type(job_type) is str and job_type in _valid_job_types:
        return job_type
    if not isinstance(job_type, str):
        raise ValidationTypeError(
            f"job_type must be a str or a str-valued Enum member, got {type(job_type).__name__}"
        )
    name = _bounded_text("job_type", job_type, MAX_JOB_TYPE_LENGTH)
    if type(name) is str and len(_valid_job_types) < _VALID_JOB_TYPES_KEPT:
        _valid_job_types.add(name)
    return name


def _target_id(target_id: object) -> str:
    if not isinstance(target_id, str):
        raise ValidationTypeError(f"target_id must be a str, got {type(target_id).__name__}")
    return _bounded_text("target_id", target_id, MAX_TARGET_ID_LENGTH)


def _bounded_text(name: str, value: str, limit: int) -> str:
    if not value.strip():
        raise ValidationError(f"{name} must not be empty")
    if len(value) > limit:
        raise ValidationError(f"{name} is {len(value)} characters long; the limit is {limit}")
    if "\x00" in value:
        raise ValidationError(f"{name} must not contain NUL characters")
    if not value.isascii():
        _require_utf8(name, value)
    return value


def _require_utf8(name: str, value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(f"{name} is not valid Unicode text: {exc.reason}") from None


def validate_priority(priority: object) -> int:
    """Return ``priority`` if it is an int in 1..10 (bool refused)."""
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ValidationTypeError(f"priority must be an int, got {type(priority).__name__}")
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise ValidationError(
            f"priority must be between {MIN_PRIORITY} (highest) and {MAX_PRIORITY}, got {priority}"
        )
    return priority


def validate_max_retries(max_retries: object) -> int:
    """Return ``max_retries`` if it is a non-negative int (bool refused)."""
    if isinstance(max_retries, bool) or not isinstance(max_retries, int):
        raise ValidationTypeError(f"max_retries must be an int, got {type(max_retries).__name__}")
    if not 0 <= max_retries <= MAX_RETRIES_LIMIT:
        raise ValidationError(
            f"max_retries must be between 0 and {MAX_RETRIES_LIMIT}, got {max_retries}"
        )
    return max_retries


def encode_metadata(metadata: object, max_bytes: int) -> str:
    """Encode metadata as JSON text; it must be a JSON-serialisable mapping of str keys."""
    if metadata is None:
        return "{}"
    if not isinstance(metadata, Mapping):
        raise ValidationTypeError(
            f"metadata must be a dict (a JSON object), got {type(metadata).__name__}"
        )
    if not metadata:
        return "{}"
    encoded = _json_text("metadata", metadata, max_bytes)
    if any(not isinstance(key, str) for key in metadata):
        raise ValidationTypeError("metadata keys must be strings")
    return encoded


def encode_result(value: object, max_bytes: int) -> str:
    """Encode a job's result as JSON text: any JSON value of at most ``max_bytes``.

    Raises:
        ValidationTypeError: the value is not JSON-serialisable (NaN and infinity included).
        ValidationError: its JSON is longer than ``max_bytes`` bytes.
    """
    return _json_text("result", value, max_bytes)


def _json_text(name: str, value: object, max_bytes: int) -> str:
    """``value`` as compact JSON text of at most ``max_bytes`` bytes in UTF-8."""
    try:
        encoded = json.dumps(value, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as exc:
        # RecursionError: nesting deeper than the interpreter's limit.
        raise ValidationTypeError(f"{name} is not JSON-serialisable: {exc}") from exc
    if encoded.isascii():
        size = len(encoded)
    else:
        _require_utf8(name, encoded)
        size = len(encoded.encode("utf-8"))
    if size > max_bytes:
        raise ValidationError(f"{name} is {size} bytes as JSON; the limit is {max_bytes}")
    return encoded


def _run_at(delay: object, run_at: object, now: float) -> float:
    if delay is not None and run_at is not None:
        raise ValidationError("give delay or run_at, not both")
    if delay is not None:
        return _delayed(delay, now)
    if run_at is not None:
        return _scheduled(run_at)
    return now


def _short(value: object, limit: int = 60) -> str:
    """``repr(value)``, cut short: a huge int's repr runs to hundreds of digits."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _delayed(delay: object, now: float) -> float:
    """The run time ``delay`` seconds after ``now``, if it is storable."""
    if isinstance(delay, timedelta):
        seconds = delay.total_seconds()
    elif isinstance(delay, float):
        seconds = delay
    elif isinstance(delay, int) and not isinstance(delay, bool):
        # Capped before converting: an int too large for a float is simply too long (or,
        # negative, below zero).
        seconds = float(max(-1, min(delay, MAX_SPAN_SECONDS + 1)))
    else:
        raise ValidationTypeError(
            f"delay must be seconds (int or float) or a timedelta, got {type(delay).__name__}"
        )
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        raise ValidationError(f"delay must be a finite number of seconds >= 0, got {_short(delay)}")
    run_at = now + seconds
    if run_at > MAX_TIMESTAMP:
        room = max(0.0, MAX_TIMESTAMP - now)
        raise ValidationError(
            f"delay {_short(delay)} would run the job after {MAX_TIME_TEXT}, the latest storable "
            f"time: it must be at most {room:.0f} seconds from now"
        )
    return run_at


def _scheduled(run_at: object) -> float:
    """``run_at`` as epoch seconds, if it is an aware datetime within the storable range."""
    if not isinstance(run_at, datetime):
        raise ValidationTypeError(
            f"run_at must be a timezone-aware datetime, got {type(run_at).__name__}"
        )
    if run_at.tzinfo is None or run_at.utcoffset() is None:
        raise ValidationError("run_at must be timezone-aware (e.g. datetime.now(UTC))")
    timestamp = run_at.timestamp()
    if not MIN_TIMESTAMP <= timestamp <= MAX_TIMESTAMP:
        raise ValidationError(
            f"run_at {run_at.isoformat()} is out of range: the storable times run from "
            f"{MIN_TIME_TEXT} to {MAX_TIME_TEXT}"
        )
    return timestamp


def build_new_job(
    *,
    job_type: object,
    target_id: object,
    priority: object = DEFAULT_PRIORITY,
    max_retries: object = None,
    metadata: object = None,
    delay: object = None,
    run_at: object = None,
    default_max_retries: int,
    max_metadata_bytes: int,
    now: float,
) -> NewJob:
    """Validate enqueue arguments and return the row to insert.

    Raises:
        ValidationError: a value is out of range (also a ``ValueError``).
        ValidationTypeError: a value has the wrong type (also a ``TypeError``).
    """
    return NewJob(
        job_type=job_type_name(job_type),
        target_id=_target_id(target_id),
        priority=validate_priority(priority),
        max_retries=default_max_retries
        if max_retries is None
        else validate_max_retries(max_retries),
        metadata_json=encode_metadata(metadata, max_metadata_bytes),
        run_at=_run_at(delay, run_at, now),
    )


def enqueue_item_arguments(item: object, index: int) -> dict[str, Any]:
    """Check one ``enqueue_many`` item is a mapping of known enqueue parameter names."""
    if not isinstance(item, Mapping):
        raise ValidationTypeError(f"item {index} must be a mapping, got {type(item).__name__}")
    if not ENQUEUE_FIELDS.issuperset(item):
        unknown = sorted(map(str, set(item) - ENQUEUE_FIELDS))
        raise ValidationError(f"item {index} has unknown keys: {unknown}")
    if "job_type" not in item or "target_id" not in item:
        missing = sorted({"job_type", "target_id"} - set(item))
        raise ValidationError(f"item {index} is missing {missing}")
    return item if type(item) is dict else dict(item)


#: Keys of an ``enqueue_many`` item that ``build_new_jobs`` checks inline; an item with any
#: other key (delay, run_at) takes ``build_new_job``.
_INLINE_FIELDS = frozenset({"job_type", "target_id", "priority", "max_retries", "metadata"})


def build_new_jobs(
    items: Iterable[object], *, default_max_retries: int, max_metadata_bytes: int, now: float
) -> list[NewJob]:
    """Validate ``enqueue_many`` items: the checks and errors of ``build_new_job``, per item.

    The common item (a dict of job_type, target_id and perhaps priority, max_retries and
    metadata, with values of the usual types) is checked inline: a call per field cost
    more than half of an ``enqueue_many`` outside the database (2.1 against 0.8 us a job).
    Any other item, and every value that fails a check, takes ``build_new_job``, which
    raises the error.

    Raises:
        ValidationError: an item is invalid; the message starts with ``item N``.
    """
    jobs: list[NewJob] = []
    append = jobs.append
    valid_job_types = _valid_job_types
    for index, item in enumerate(items):
        if type(item) is dict and _INLINE_FIELDS.issuperset(item):
            job_type = item.get("job_type")
            target_id = item.get("target_id")
            priority = item.get("priority", DEFAULT_PRIORITY)
            max_retries = item.get("max_retries")
            metadata = item.get("metadata")
            if (
                type(job_type) is str
                and job_type in valid_job_types
                and type(target_id) is str
                and 0 < len(target_id) <= MAX_TARGET_ID_LENGTH
                and target_id.isascii()
                and not target_id.isspace()
                and "\x00" not in target_id
                and type(priority) is int
                and MIN_PRIORITY <= priority <= MAX_PRIORITY
                and (
                    max_retries is None
                    or (type(max_retries) is int and 0 <= max_retries <= MAX_RETRIES_LIMIT)
                )
            ):
                if metadata is None or (type(metadata) is dict and not metadata):
                    metadata_json = "{}"
                else:
                    try:
                        metadata_json = encode_metadata(metadata, max_metadata_bytes)
                    except ValidationError as exc:
                        raise _at_item(exc, index) from exc
                append(
                    NewJob(
                        job_type,
                        target_id,
                        priority,
                        default_max_retries if max_retries is None else max_retries,
                        metadata_json,
                        now,
                    )
                )
                continue
        arguments = enqueue_item_arguments(item, index)
        try:
            append(
                build_new_job(
                    **arguments,
                    default_max_retries=default_max_retries,
                    max_metadata_bytes=max_metadata_bytes,
                    now=now,
                )
            )
        except ValidationError as exc:
            raise _at_item(exc, index) from exc
    return jobs


def _at_item(exc: ValidationError, index: int) -> ValidationError:
    """The same error, its message prefixed with the item's index."""
    return type(exc)(f"item {index}: {exc}")
