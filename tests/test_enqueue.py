"""enqueue / enqueue_many: return values, Enum job types, batches, and bad input for every argument."""

from __future__ import annotations

import json
import pickle
from datetime import UTC, date, datetime, timedelta
from enum import Enum, IntEnum, StrEnum
from pathlib import Path
from typing import Any

import pytest
from support import query

from asyncqueue import (
    AsyncQueueError,
    ConfigurationError,
    JobId,
    JobQueue,
    JobStatus,
    ManualClock,
    ValidationError,
    ValidationTypeError,
)


class JobType(str, Enum):  # noqa: UP042 - the seed's style of app enum
    SEND_EMAIL = "send_email"
    RESIZE = "resize_image"


class Kind(StrEnum):
    REPORT = "report"


class Numbered(IntEnum):
    ONE = 1


def db_rows(path: Path | str) -> list[tuple[Any, ...]]:
    return query(path, "SELECT id, job_type, target_id, status FROM jobs ORDER BY id")


async def assert_nothing_written(queue: JobQueue, path: Path | str) -> None:
    assert (await queue.get_queue_stats()).total_jobs == 0
    assert db_rows(path) == []


# -- return value ---------------------------------------------------------------------


async def test_enqueue_returns_a_job_id_that_behaves_as_an_int(queue: JobQueue) -> None:
    job_id = await queue.enqueue("email", "user-1")

    assert isinstance(job_id, JobId)
    assert isinstance(job_id, int)
    assert job_id == 1
    assert job_id.created is True
    assert str(job_id) == "1"
    assert repr(job_id) == "1"
    assert f"{job_id}" == "1"
    assert json.dumps(job_id) == "1"
    assert json.dumps({"id": job_id}) == '{"id": 1}'
    assert hash(job_id) == hash(1)
    assert {job_id: "x"}[1] == "x"
    restored = pickle.loads(pickle.dumps(job_id))
    assert restored == 1
    assert restored.created is True


async def test_ids_from_a_batch_say_created_or_duplicate_each_and_keep_it_when_pickled(
    queue: JobQueue,
) -> None:
    await queue.enqueue("t", "old")
    new, duplicate = await queue.enqueue_many(
        [{"job_type": "t", "target_id": "new"}, {"job_type": "t", "target_id": "old"}]
    )
    fresh = await queue.enqueue_many([{"job_type": "u", "target_id": str(n)} for n in range(3)])

    assert [type(i) for i in (new, duplicate, *fresh)] == [JobId] * 5
    assert (new.created, duplicate.created) == (True, False)
    assert [i.created for i in fresh] == [True, True, True]
    assert fresh[0] > new
    assert [int(i) for i in fresh] == [fresh[0], fresh[0] + 1, fresh[0] + 2]
    assert pickle.loads(pickle.dumps(duplicate)).created is False
    assert pickle.loads(pickle.dumps(fresh[0])).created is True
    assert JobId(7).created is True
    assert JobId(7, created=False).created is False


async def test_enqueue_stores_every_field(
    queue: JobQueue, clock: ManualClock, db_path: Path
) -> None:
    job_id = await queue.enqueue(
        "email", "user-1", priority=2, max_retries=7, metadata={"to": "a@b.c", "n": [1, 2]}
    )

    job = await queue.get_job(job_id)
    assert job is not None
    assert job.id == job_id
    assert job.job_type == "email"
    assert job.target_id == "user-1"
    assert job.status is JobStatus.PENDING
    assert job.priority == 2
    assert job.max_retries == 7
    assert job.retry_count == 0
    assert job.attempts == 0
    assert job.metadata == {"to": "a@b.c", "n": [1, 2]}
    assert job.error_message is None
    assert job.created_at == datetime.fromtimestamp(clock.now(), UTC)
    assert job.run_at == job.created_at
    assert job.started_at is None
    assert job.completed_at is None
    assert db_rows(db_path) == [(1, "email", "user-1", "pending")]


async def test_enqueue_defaults(queue: JobQueue) -> None:
    job = await queue.get_job(await queue.enqueue("t", "1"))

    assert job is not None
    assert job.priority == 5
    assert job.max_retries == queue.settings.max_retries
    assert job.metadata == {}


async def test_ids_increase(queue: JobQueue) -> None:
    ids = [await queue.enqueue("t", str(i)) for i in range(5)]

    assert ids == sorted(set(ids))
    assert len(ids) == 5
    assert all(i.created for i in ids)


@pytest.mark.parametrize("member", [JobType.SEND_EMAIL, Kind.REPORT], ids=["str-Enum", "StrEnum"])
async def test_str_valued_enum_job_type_is_stored_as_its_value(
    queue: JobQueue, db_path: Path, member: Enum
) -> None:
    job_id = await queue.enqueue(member, "42")

    job = await queue.get_job(job_id)
    assert job is not None
    assert job.job_type == member.value
    assert type(job.job_type) is str
    assert db_rows(db_path) == [(1, member.value, "42", "pending")]
    duplicate = await queue.enqueue(member.value, "42")
    assert duplicate == job_id
    assert not duplicate.created
    assert [j.id for j in await queue.list_jobs(job_type=member)] == [job_id]


async def test_boundary_values_are_accepted(queue: JobQueue) -> None:
    ids = [
        await queue.enqueue("a" * 255, "b" * 255, priority=1, max_retries=0),
        await queue.enqueue("x", "y", priority=10, delay=0, metadata={}),
        await queue.enqueue("x", "z", delay=timedelta(seconds=1.5)),
        await queue.enqueue("x", "w", run_at=datetime(2000, 1, 1, tzinfo=UTC)),
        await queue.enqueue("ü", "ß", metadata={"ключ": "値"}),
    ]

    assert all(i.created for i in ids)
    job = await queue.get_job(ids[-1])
    assert job is not None
    assert job.metadata == {"ключ": "値"}


async def test_metadata_at_exactly_max_metadata_bytes_is_accepted(
    db_path: Path, clock: ManualClock
) -> None:
    async with JobQueue(db_path, clock=clock, max_metadata_bytes=20) as queue:
        metadata = {"k": "x" * 12}  # {"k":"xxxxxxxxxxxx"} is 20 bytes
        assert (await queue.enqueue("t", "1", metadata=metadata)).created
        with pytest.raises(ValidationError, match="20"):
            await queue.enqueue("t", "2", metadata={"k": "x" * 13})
        assert (await queue.get_queue_stats()).total_jobs == 1


# -- enqueue_many ---------------------------------------------------------------------


async def test_enqueue_many_returns_ids_in_order(queue: JobQueue, db_path: Path) -> None:
    items = [
        {"job_type": "a", "target_id": "1", "priority": 9},
        {"job_type": JobType.RESIZE, "target_id": "2", "metadata": {"w": 10}},
        {"job_type": "a", "target_id": "3", "delay": 30, "max_retries": 0},
    ]

    ids = await queue.enqueue_many(items)

    assert ids == sorted(ids)
    assert len(set(ids)) == 3
    assert all(isinstance(i, JobId) and i.created for i in ids)
    jobs = [await queue.get_job(i) for i in ids]
    assert [(j.job_type, j.target_id, j.priority) for j in jobs if j] == [
        ("a", "1", 9),
        ("resize_image", "2", 5),
        ("a", "3", 5),
    ]
    assert jobs[1] is not None
    assert jobs[1].metadata == {"w": 10}
    assert jobs[2] is not None
    assert jobs[2].max_retries == 0
    assert len(db_rows(db_path)) == 3


async def test_enqueue_many_accepts_any_iterable_of_mappings(queue: JobQueue) -> None:
    ids = await queue.enqueue_many({"job_type": "g", "target_id": str(i)} for i in range(3))

    jobs = [await queue.get_job(i) for i in ids]
    assert [j.target_id for j in jobs if j] == ["0", "1", "2"]


async def test_enqueue_many_dedups_within_the_batch(queue: JobQueue, db_path: Path) -> None:
    ids = await queue.enqueue_many(
        [
            {"job_type": "a", "target_id": "1"},
            {"job_type": "a", "target_id": "2"},
            {"job_type": "a", "target_id": "1", "priority": 1},
            {"job_type": "b", "target_id": "1"},
        ]
    )

    assert [i.created for i in ids] == [True, True, False, True]
    assert ids[2] == ids[0]
    assert len({ids[0], ids[1], ids[3]}) == 3
    assert [(r[0], r[1], r[2]) for r in db_rows(db_path)] == [
        (ids[0], "a", "1"),
        (ids[1], "a", "2"),
        (ids[3], "b", "1"),
    ]
    first = await queue.get_job(ids[0])
    assert first is not None
    assert first.priority == 5


async def test_enqueue_many_dedups_against_existing_jobs(queue: JobQueue, db_path: Path) -> None:
    existing = await queue.enqueue("a", "1")

    ids = await queue.enqueue_many(
        [{"job_type": "a", "target_id": "0"}, {"job_type": "a", "target_id": "1"}]
    )

    assert ids[1] == existing
    assert ids[0] != existing
    assert [i.created for i in ids] == [True, False]
    assert len(db_rows(db_path)) == 2


@pytest.mark.parametrize("with_duplicates", [False, True])
async def test_enqueue_many_maps_every_id_to_its_item_across_statement_sizes(
    queue: JobQueue, db_path: Path, clock: ManualClock, with_duplicates: bool
) -> None:
    """A batch of 599 (256 + 256 + 64 + 16 + 4 + 3 rows) after the newest ids were deleted.

    Ids are never reused (the sequence goes on past deleted rows) and each one belongs to
    its own item, whether every item is new or some duplicate an item before them or a
    job already in the table.
    """
    gone = await queue.enqueue_many([{"job_type": "old", "target_id": str(n)} for n in range(5)])
    for job in await queue.claim("w", limit=5):
        await queue.complete(job)
    clock.advance(30 * 86400)
    assert await queue.cleanup_old_jobs() == 5
    items = [{"job_type": "t", "target_id": str(n)} for n in range(599)]
    expected_created = [True] * 599
    existing = None
    if with_duplicates:
        existing = await queue.enqueue("t", "17")
        expected_created[17] = False
        items[300] = {"job_type": "t", "target_id": "3"}  # repeats item 3 of this batch
        expected_created[300] = False

    ids = await queue.enqueue_many(items)

    assert [i.created for i in ids] == expected_created
    assert all(i > max(gone) for i in ids)
    for item, job_id in zip(items, ids, strict=True):
        job = await queue.get_job(job_id)
        assert job is not None
        assert job.target_id == item["target_id"]
    if with_duplicates:
        assert ids[17] == existing
        assert ids[300] == ids[3]
    created = [i for i in ids if i.created]
    assert len(set(created)) == len(created)
    assert len(db_rows(db_path)) == len(created) + (existing is not None)


async def test_enqueue_many_of_nothing(queue: JobQueue, db_path: Path) -> None:
    assert await queue.enqueue_many([]) == []
    assert await queue.enqueue_many(iter(())) == []
    await assert_nothing_written(queue, db_path)


async def test_enqueue_many_is_all_or_nothing_in_the_database(
    queue: JobQueue, db_path: Path
) -> None:
    """The last item passes Python validation but cannot be stored: the whole batch rolls back."""
    with pytest.raises((ValueError, AsyncQueueError)):
        await queue.enqueue_many(
            [
                {"job_type": "a", "target_id": "1"},
                {"job_type": "a", "target_id": "2"},
                {"job_type": "a", "target_id": "bad\udc00"},
            ]
        )

    await assert_nothing_written(queue, db_path)


async def test_the_queue_keeps_working_after_a_batch_it_could_not_store(
    queue: JobQueue, db_path: Path
) -> None:
    undecodable_file_name = b"report-\xff.pdf".decode("utf-8", "surrogateescape")
    with pytest.raises((ValueError, AsyncQueueError)):
        await queue.enqueue_many(
            [
                {"job_type": "ocr", "target_id": "ok.pdf"},
                {"job_type": "ocr", "target_id": undecodable_file_name},
            ]
        )

    job_id = await queue.enqueue("ocr", "ok.pdf")

    assert job_id.created
    assert [r[2] for r in db_rows(db_path)] == ["ok.pdf"]


# -- bad input ------------------------------------------------------------------------

VALID: dict[str, Any] = {"job_type": "t", "target_id": "1"}


class Opaque:
    pass


BAD_ARGUMENTS: list[Any] = [
    # priority
    pytest.param({"priority": 0}, ValidationError, id="priority-0"),
    pytest.param({"priority": 11}, ValidationError, id="priority-11"),
    pytest.param({"priority": -3}, ValidationError, id="priority-negative"),
    pytest.param({"priority": 5.0}, ValidationTypeError, id="priority-float"),
    pytest.param({"priority": True}, ValidationTypeError, id="priority-bool"),
    pytest.param({"priority": "5"}, ValidationTypeError, id="priority-str"),
    pytest.param({"priority": None}, ValidationTypeError, id="priority-None"),
    # job_type
    pytest.param({"job_type": ""}, ValidationError, id="job_type-empty"),
    pytest.param({"job_type": "   \t"}, ValidationError, id="job_type-whitespace"),
    pytest.param({"job_type": "x" * 256}, ValidationError, id="job_type-256"),
    pytest.param({"job_type": "a\x00b"}, ValidationError, id="job_type-nul"),
    pytest.param({"job_type": 7}, ValidationTypeError, id="job_type-int"),
    pytest.param({"job_type": None}, ValidationTypeError, id="job_type-None"),
    pytest.param({"job_type": b"t"}, ValidationTypeError, id="job_type-bytes"),
    pytest.param({"job_type": Numbered.ONE}, ValidationTypeError, id="job_type-IntEnum"),
    # target_id
    pytest.param({"target_id": ""}, ValidationError, id="target_id-empty"),
    pytest.param({"target_id": "  "}, ValidationError, id="target_id-whitespace"),
    pytest.param({"target_id": "x" * 256}, ValidationError, id="target_id-256"),
    pytest.param({"target_id": 7}, ValidationTypeError, id="target_id-int"),
    pytest.param({"target_id": None}, ValidationTypeError, id="target_id-None"),
    pytest.param({"target_id": "a\x00b"}, ValidationError, id="target_id-nul"),
    pytest.param({"target_id": "report-\udcff"}, ValidationError, id="target_id-surrogate"),
    pytest.param({"target_id": "\u3000"}, ValidationError, id="target_id-unicode-space"),
    # metadata
    pytest.param({"metadata": [1, 2]}, ValidationTypeError, id="metadata-list"),
    pytest.param({"metadata": "{}"}, ValidationTypeError, id="metadata-str"),
    pytest.param({"metadata": {"s": {1, 2}}}, ValidationTypeError, id="metadata-set"),
    pytest.param({"metadata": {"o": Opaque()}}, ValidationTypeError, id="metadata-object"),
    pytest.param({"metadata": {"n": float("nan")}}, ValidationTypeError, id="metadata-nan"),
    pytest.param({"metadata": {"n": float("inf")}}, ValidationTypeError, id="metadata-inf"),
    pytest.param({"metadata": {1: "a"}}, ValidationTypeError, id="metadata-int-key"),
    pytest.param({"metadata": {(1, 2): "a"}}, ValidationTypeError, id="metadata-tuple-key"),
    pytest.param({"metadata": {"big": "x" * 70_000}}, ValidationError, id="metadata-too-big"),
    # max_retries
    pytest.param({"max_retries": -1}, ValidationError, id="max_retries-negative"),
    pytest.param({"max_retries": 1_000_001}, ValidationError, id="max_retries-over-limit"),
    pytest.param({"max_retries": True}, ValidationTypeError, id="max_retries-bool"),
    pytest.param({"max_retries": 1.5}, ValidationTypeError, id="max_retries-float"),
    pytest.param({"max_retries": "3"}, ValidationTypeError, id="max_retries-str"),
    # delay / run_at
    pytest.param({"delay": -1}, ValidationError, id="delay-negative"),
    pytest.param({"delay": float("nan")}, ValidationError, id="delay-nan"),
    pytest.param({"delay": float("inf")}, ValidationError, id="delay-inf"),
    pytest.param({"delay": timedelta(seconds=-1)}, ValidationError, id="delay-negative-td"),
    pytest.param({"delay": "5"}, ValidationTypeError, id="delay-str"),
    pytest.param({"delay": True}, ValidationTypeError, id="delay-bool"),
    pytest.param({"run_at": datetime(2030, 1, 1)}, ValidationError, id="run_at-naive"),
    pytest.param({"run_at": "2030-01-01T00:00:00Z"}, ValidationTypeError, id="run_at-str"),
    pytest.param({"run_at": date(2030, 1, 1)}, ValidationTypeError, id="run_at-date"),
    pytest.param({"run_at": 1_900_000_000.0}, ValidationTypeError, id="run_at-float"),
    pytest.param(
        {"delay": 5, "run_at": datetime(2030, 1, 1, tzinfo=UTC)},
        ValidationError,
        id="delay-and-run_at",
    ),
]


def check_error(exc: BaseException, expected: type[ValidationError]) -> None:
    assert isinstance(exc, expected)
    assert isinstance(exc, AsyncQueueError)
    assert isinstance(exc, ValueError)
    assert isinstance(exc, TypeError) == (expected is ValidationTypeError)


@pytest.mark.parametrize(("override", "expected"), BAD_ARGUMENTS)
async def test_enqueue_refuses_bad_input_and_writes_nothing(
    queue: JobQueue, db_path: Path, override: dict[str, Any], expected: type[ValidationError]
) -> None:
    with pytest.raises(ValidationError) as info:
        await queue.enqueue(**{**VALID, **override})

    check_error(info.value, expected)
    await assert_nothing_written(queue, db_path)


@pytest.mark.parametrize(("override", "expected"), BAD_ARGUMENTS)
async def test_enqueue_many_refuses_one_bad_item_and_writes_none(
    queue: JobQueue, db_path: Path, override: dict[str, Any], expected: type[ValidationError]
) -> None:
    items = [
        {"job_type": "ok", "target_id": "first"},
        {**VALID, **override},
        {"job_type": "ok", "target_id": "last"},
    ]

    with pytest.raises(ValidationError, match="item 1") as info:
        await queue.enqueue_many(items)
    with pytest.raises(ValidationError) as alone:
        await queue.enqueue(**items[1])

    check_error(info.value, expected)
    assert type(info.value) is type(alone.value)
    assert str(info.value) == f"item 1: {alone.value}"
    await assert_nothing_written(queue, db_path)


class Label(str):
    pass


GOOD_ITEMS: list[Any] = [
    pytest.param({}, id="defaults"),
    pytest.param({"priority": 1, "max_retries": 0, "metadata": {}}, id="explicit"),
    pytest.param({"priority": Numbered.ONE}, id="priority-IntEnum"),
    pytest.param({"max_retries": 1_000_000, "metadata": None}, id="max_retries-limit"),
    pytest.param({"metadata": {"n": 1, "s": "é", "l": [1, None]}}, id="metadata"),
    pytest.param({"job_type": JobType.RESIZE, "target_id": "ünï"}, id="enum-and-unicode"),
    pytest.param({"job_type": Label("labelled"), "target_id": Label("x")}, id="str-subclass"),
    pytest.param({"target_id": " padded "}, id="padded-target"),
    pytest.param({"delay": 30}, id="delay"),
    pytest.param({"run_at": datetime(2031, 5, 1, tzinfo=UTC)}, id="run_at"),
]


@pytest.mark.parametrize("override", GOOD_ITEMS)
async def test_enqueue_many_stores_each_item_as_enqueue_would(
    tmp_path: Path, clock: ManualClock, override: dict[str, Any]
) -> None:
    """Items checked inline and items checked field by field become the same row."""
    item = {**VALID, **override}
    rows = []
    for name, many in (("alone.db", False), ("many.db", True)):
        async with JobQueue(tmp_path / name, clock=clock) as queue:
            if many:
                ids = await queue.enqueue_many([{"job_type": "other", "target_id": "0"}, item])
                job_id = ids[1]
            else:
                await queue.enqueue("other", "0")
                job_id = await queue.enqueue(**item)
            job = await queue.get_job(job_id)
        assert job is not None
        rows.append(
            (job.job_type, job.target_id, job.priority, job.max_retries, job.metadata, job.run_at)
        )
    assert rows[0] == rows[1]
    assert type(rows[1][2]) is int


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        pytest.param({"job_type": "t", "target_id": "1"}, ValidationTypeError, id="a-mapping"),
        pytest.param("job_type", ValidationTypeError, id="a-str"),
        pytest.param(b"job_type", ValidationTypeError, id="bytes"),
        pytest.param([("t", "1")], ValidationTypeError, id="item-tuple"),
        pytest.param([VALID, None], ValidationTypeError, id="item-None"),
        pytest.param([{**VALID, "prio": 1}], ValidationError, id="unknown-key"),
        pytest.param([{"target_id": "1"}], ValidationError, id="missing-job_type"),
        pytest.param([{"job_type": "t"}], ValidationError, id="missing-target_id"),
    ],
)
async def test_enqueue_many_refuses_malformed_batches(
    queue: JobQueue, db_path: Path, items: Any, expected: type[ValidationError]
) -> None:
    with pytest.raises(ValidationError) as info:
        await queue.enqueue_many(items)

    check_error(info.value, expected)
    await assert_nothing_written(queue, db_path)


@pytest.mark.parametrize("items", [None, 5])
async def test_enqueue_many_refuses_a_non_iterable_with_validation_type_error(
    queue: JobQueue, db_path: Path, items: Any
) -> None:
    with pytest.raises(ValidationTypeError):
        await queue.enqueue_many(items)

    await assert_nothing_written(queue, db_path)


#: Arguments holding lone surrogates, which no UTF-8 column can store.
INVALID_UNICODE = [
    pytest.param({"job_type": "t\ud800"}, id="job_type"),
    pytest.param({"target_id": "\udc00"}, id="target_id"),
    pytest.param({"metadata": {"k": "\ud800"}}, id="metadata-value"),
]


@pytest.mark.parametrize("override", INVALID_UNICODE)
async def test_text_that_is_not_valid_unicode_writes_nothing(
    queue: JobQueue, db_path: Path, override: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match="surrogates"):
        await queue.enqueue(**{**VALID, **override})

    await assert_nothing_written(queue, db_path)


@pytest.mark.parametrize("override", INVALID_UNICODE)
async def test_text_that_is_not_valid_unicode_raises_validation_error(
    queue: JobQueue, override: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError):
        await queue.enqueue(**{**VALID, **override})


async def test_bad_input_after_good_jobs_leaves_them_alone(queue: JobQueue, db_path: Path) -> None:
    await queue.enqueue("t", "1")

    with pytest.raises(ValidationError):
        await queue.enqueue("t", "2", priority=0)
    with pytest.raises(ValidationError):
        await queue.enqueue_many([{"job_type": "t", "target_id": "3"}, {"job_type": ""}])

    assert db_rows(db_path) == [(1, "t", "1", "pending")]


@pytest.mark.parametrize("max_retries", [1_000_001, 2**63])
async def test_max_retries_beyond_the_limit_is_refused_before_writing(
    queue: JobQueue, db_path: Path, max_retries: int
) -> None:
    with pytest.raises(ValidationError, match="max_retries"):
        await queue.enqueue("t", "x", max_retries=max_retries)
    with pytest.raises(ValidationError, match="max_retries"):
        await queue.enqueue_many([{"job_type": "t", "target_id": "y", "max_retries": max_retries}])

    await assert_nothing_written(queue, db_path)


def test_queue_default_max_retries_beyond_the_limit_is_refused(db_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="max_retries"):
        JobQueue(db_path, max_retries=2**63)


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


async def test_metadata_nested_past_the_interpreters_limit_is_refused_with_nothing_written(
    queue: JobQueue,
) -> None:
    deep = _nested(100_000)
    with pytest.raises(ValidationTypeError, match="metadata is not JSON-serialisable"):
        await queue.enqueue("t", "deep", metadata=deep)
    with pytest.raises(ValidationTypeError, match="item 1: metadata is not JSON-serialisable"):
        await queue.enqueue_many(
            [
                {"job_type": "t", "target_id": "ok"},
                {"job_type": "t", "target_id": "x", "metadata": deep},
            ]
        )
    assert (await queue.get_queue_stats()).total_jobs == 0
