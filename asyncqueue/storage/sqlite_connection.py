"""SQLite connections: opening them, the single writer task with group commit, the read pool.

aiosqlite gives each connection its own thread and every awaited call costs one hop to it.
The writer therefore runs a whole batch of submitted writes as one function in that thread:
one hop and one commit for everything that was waiting.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import aiosqlite
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from asyncqueue.errors import DatabaseBusyError, DatabaseError, QueueClosedError

T = TypeVar("T")
ThreadFunction = Callable[[sqlite3.Connection], T]


#: Page cache per connection, in KiB, which bounds how much a worker's RSS grows while it
#: drains a queue. The hot pages of even a 1M-job backlog are few (the front of the ready
#: index, the rows being claimed, the tails the inserts append to): 4 MiB drained as fast as
#: 16 MiB at 10k and at 1M pending (bench, alternating runs), and RSS grew by 3-4 MB while
#: draining 100,000 jobs instead of 16-17 MB. A page evicted is read back from the OS cache.
CACHE_KIB = 4 * 1024

#: Most submissions one transaction carries; bounds the latency a huge burst adds to each.
MAX_GROUP_SIZE = 512
#: Longest a brief write may hold the event loop: past it, the write is undone and made on
#: the writer's thread instead (a claim is brief unless, say, thousands of delayed jobs sit
#: ahead of the due ones in the ready index).
BRIEF_BUDGET_SECONDS = 0.002
#: SQLite VM instructions between two looks at a brief write's clock.
BRIEF_CHECK_EVERY = 1000


def is_interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's "interrupted" (a progress handler stopped the statement)."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return bool((code & 0xFF) == sqlite3.SQLITE_INTERRUPT)
    return "interrupted" in str(exc)


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's "database is locked/busy" (another process holds the lock)."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    message = str(exc)
    return "database is locked" in message or "database is busy" in message


async def connect(
    path: str,
    *,
    busy_timeout: float,
    synchronous: str,
    query_only: bool,
    any_thread: bool = False,
) -> aiosqlite.Connection:
    """Open one connection with the queue's PRAGMAs; raise the driver's error on failure.

    ``any_thread`` lets the event loop's thread use the connection too, while the
    connection's own thread has nothing of it in hand (the writer's brief commits).
    """
    connection = aiosqlite.connect(
        path, timeout=busy_timeout, isolation_level=None, check_same_thread=not any_thread
    )
    # aiosqlite's thread is non-daemon: a queue the app never closed (or the module-level
    # fallback queue) would otherwise keep the interpreter from exiting. Committed data is
    # safe in the WAL whatever happens to the thread.
    connection._thread.daemon = True
    try:
        conn = await connection
    except BaseException:
        # aiosqlite stops its thread without waiting; wait here, or the thread may outlive
        # the event loop and fail calling back into it.
        await asyncio.get_running_loop().run_in_executor(None, connection._thread.join, 5.0)
        raise
    try:
        conn.row_factory = sqlite3.Row
        await conn._execute(_configure, conn._conn, synchronous, query_only)  # type: ignore[no-untyped-call]
    except BaseException:
        await conn.close()
        raise
    return conn


def _configure(conn: sqlite3.Connection, synchronous: str, query_only: bool) -> None:
    # Reading the schema first makes "file is not a database" surface here, at open.
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute(f"PRAGMA cache_size = {-CACHE_KIB}")
    if query_only:
        conn.execute("PRAGMA query_only = ON")


def rows(conn: sqlite3.Connection, statement: str, params: Any = ()) -> list[Any]:
    """Run a statement to completion and return its rows.

    The cursor is closed even when reading fails: a statement left in progress on the
    writer connection would make every later COMMIT fail.
    """
    cursor = conn.execute(statement, params)
    try:
        return cursor.fetchall()
    finally:
        cursor.close()


def first(conn: sqlite3.Connection, statement: str, params: Any = ()) -> Any:
    """The first row of a statement run to completion, or None."""
    found = rows(conn, statement, params)
    return found[0] if found else None


def enable_wal(conn: sqlite3.Connection) -> None:
    """Switch the file to WAL journal mode (persistent; readers then never block the writer)."""
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise sqlite3.OperationalError(f"could not switch to WAL journal mode (got {mode})")


async def run_in_thread(conn: aiosqlite.Connection, fn: ThreadFunction[T]) -> T:
    """Run ``fn(sqlite3_connection)`` in the connection's own thread: one hop, any statements."""
    raw = conn._conn
    result: T = await conn._execute(fn, raw)  # type: ignore[no-untyped-call]
    return result


# Not frozen: one is made per job, and a frozen dataclass takes 0.5 us more to build.
@dataclass(slots=True)
class Mergeable(Generic[T]):
    """A submission the writer may run together with like ones in one statement.

    Consecutive submissions with the same ``kind`` in a group are handed together to
    ``run_many(conn, payloads)``, which returns one result per payload. If that statement
    fails, each submission runs alone again in its own savepoint, so a bad one still
    fails only its own caller.
    """

    kind: str
    payload: Any
    run_many: Callable[[sqlite3.Connection, list[Any]], list[T]]


# Not frozen: one is made per job, and a frozen dataclass takes 0.5 us more to build.
@dataclass(slots=True)
class WriteUnit(Generic[T]):
    """One caller's write: ``fn`` alone, or merged with its like when ``merge`` is set."""

    fn: ThreadFunction[T]
    single_statement: bool = False
    merge: Mergeable[T] | None = None


class _NotHere(Exception):
    """A brief write cannot be made on the event loop's thread: another connection holds
    the write lock, or it ran past its budget. Nothing was written."""


def _within_budget(fn: ThreadFunction[T], seconds: float) -> ThreadFunction[T]:
    """``fn``, interrupted by SQLite once it has run for ``seconds``."""

    def run(conn: sqlite3.Connection) -> T:
        deadline = time.perf_counter() + seconds

        def past_deadline() -> bool:
            return time.perf_counter() > deadline

        conn.set_progress_handler(past_deadline, BRIEF_CHECK_EVERY)
        try:
            return fn(conn)
        finally:
            # Before the COMMIT: a commit is never interrupted halfway.
            conn.set_progress_handler(None, 0)

    return run


@dataclass(slots=True)
class _Submission(Generic[T]):
    unit: WriteUnit[T]
    future: asyncio.Future[T]


class SQLiteWriter:
    """The one writer per queue. Callers submit functions; each batch is one transaction.

    When the writer is idle a submission is committed at once from the caller's own task
    (one thread hop, nothing else in the way); a brief one (one job's insert) is committed
    on the event loop's own thread instead, which takes less time than the hop would.
    While a commit is in flight, submissions wait in the inbox and the writer task commits
    all of them together in the next transaction (group commit). Each submission of more
    than one statement runs inside its own SAVEPOINT, so one caller's failure rolls back
    only its own changes; a single statement is atomic on its own in SQLite. A caller is
    resolved only after the COMMIT that carries its write.
    """

    def __init__(
        self,
        conn: aiosqlite.Connection,
        path: str,
        *,
        busy_retries: int,
        busy_timeout: float,
        brief_commits: bool = False,
    ) -> None:
        self._conn = conn
        #: Whether brief writes may commit on the event loop's thread: only when a commit
        #: is a write into the WAL, never an fsync (synchronous=NORMAL), and only on a
        #: connection opened for use from any thread.
        self._brief_commits = brief_commits
        #: Set from a brief commit until the event loop's next turn.
        self._brief_this_turn = False
        self._path = path
        self._busy_retries = busy_retries
        self._busy_timeout = busy_timeout
        self._inbox: deque[_Submission[Any]] = deque()
        self._wakeup = asyncio.Event()
        #: Set while no transaction is in the connection's thread or queued for it.
        self._idle = asyncio.Event()
        self._idle.set()
        self._in_thread = 0
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.on_commit: Callable[[], None] | None = None
        #: ``PRAGMA data_version`` on this connection when last read, and the callbacks
        #: waiting for the next look (see when_others_committed).
        self._data_version: int | None = None
        self._look_for_others: set[Callable[[], None]] = set()

    def start(self) -> None:
        """Start the writer task in the running event loop."""
        if self._brief_commits:
            self._look_now()  # the version to compare the first look with
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"asyncqueue-writer:{self._path}"
        )

    async def submit(
        self,
        fn: ThreadFunction[T],
        *,
        single_statement: bool = False,
        merge: Mergeable[T] | None = None,
        pipelined: bool = False,
        brief: bool = False,
    ) -> T:
        """Run ``fn`` in a transaction and return its result once committed.

        ``single_statement`` promises that ``fn`` runs at most one writing statement, so it
        needs no savepoint of its own when it shares a transaction. ``merge`` lets the
        writer run it in one statement with like submissions (see :class:`Mergeable`).
        ``pipelined`` sends a large write (a worker's exchange) straight to the connection's
        thread, as its own transaction, even while another is in flight: the thread starts
        it the moment the previous one commits instead of after a round trip through the
        event loop. Others waiting in the inbox keep their turn: a pipelined write queues
        behind them. ``brief`` marks a write of a few rows, which the caller may commit
        itself on the event loop's thread when the writer is idle (see :meth:`_commit_here`).
        """
        if self._closing:
            raise QueueClosedError(f"the queue at {self._path} is closed")
        # After a brief commit in this turn of the loop, a caller is one of several at
        # once: it waits in the inbox so the writer task commits the rest of them together.
        if not self._inbox and not self._brief_this_turn and (pipelined or self._idle.is_set()):
            # The connection's thread must hold nothing of it: a pipelined write may come
            # while a transaction is there.
            if brief and self._brief_commits and self._idle.is_set():
                try:
                    value = self._commit_here(fn)
                except _NotHere:
                    pass  # the lock is taken, or it took too long: off the loop with it
                else:
                    # Give the loop its turn, as the hop would have: a loop of enqueues
                    # must not starve the app's other tasks.
                    await asyncio.sleep(0)
                    return value
            return await self._commit_alone(fn)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._inbox.append(_Submission(WriteUnit(fn, single_statement, merge), future))
        self._wakeup.set()
        return await future

    @contextmanager
    def _occupied(self) -> Iterator[None]:
        """Count a transaction that is in the connection's thread or queued for it."""
        self._in_thread += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._in_thread -= 1
            if not self._in_thread:
                self._idle.set()
                if self._inbox:
                    self._wakeup.set()
                elif self._look_for_others:
                    self._look_now()

    async def _commit_alone(self, fn: ThreadFunction[T]) -> T:
        with self._occupied():
            try:
                ok, value = (await self._apply_with_busy_retry([WriteUnit(fn, True)]))[0]
                if ok:  # a failed write was rolled back: nothing committed
                    self._committed()
            except Exception as exc:
                raise translate_error(exc, self._path) from exc
        if ok:
            result: T = value
            return result
        raise translate_error(value, self._path)

    def _commit_here(self, fn: ThreadFunction[T]) -> T:
        """Commit ``fn`` on the event loop's thread; raise _NotHere if it cannot be done here.

        Only called while nothing holds the connection and no submission waits, so the
        connection's thread has nothing of it in hand. Under synchronous=NORMAL the commit
        appends a few pages to the WAL and returns: measured at 55 to 60 us for one job
        with its history row, less than the thread hop it saves (about 90 us on a 2-core
        VM). A commit never waits here: if another process holds the write lock, the
        caller takes the thread path, which waits and retries off the loop; nor does a
        write that runs past ``BRIEF_BUDGET_SECONDS``, which is undone and takes it too.
        """
        self._start_brief_turn()
        try:
            unit = WriteUnit(_within_budget(fn, BRIEF_BUDGET_SECONDS), True)
            ok, value = apply_group(self._conn._conn, [unit], busy_timeout=0.0)[0]
        except sqlite3.OperationalError as exc:
            # An interrupted write inside a transaction rolls the transaction back itself.
            if is_busy(exc) or is_interrupted(exc):
                raise _NotHere from exc
            raise translate_error(exc, self._path) from exc
        except Exception as exc:
            raise translate_error(exc, self._path) from exc
        if not ok:  # rolled back: nothing committed
            if is_interrupted(value):
                raise _NotHere from value
            raise translate_error(value, self._path)
        self._committed()
        result: T = value
        return result

    def _start_brief_turn(self) -> None:
        """Until the loop's next turn, writes wait in the inbox to be committed together."""
        if not self._brief_this_turn:
            self._brief_this_turn = True
            asyncio.get_running_loop().call_soon(self._end_brief_turn)

    def _end_brief_turn(self) -> None:
        self._brief_this_turn = False

    def when_others_committed(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` if another connection may have committed since the last look.

        ``PRAGMA data_version`` on this connection moves with every other connection's
        commit and never with its own: when it has not moved, the WAL writes just seen were
        this writer's own (a heartbeat, say) and idle workers need not claim. It is read on
        the event loop's thread, as brief commits are, so only while the writer is idle: a
        look asked for meanwhile waits for that (a transaction's length). Without brief
        commits the callback is called at once.
        """
        if not self._brief_commits:
            callback()
            return
        self._look_for_others.add(callback)
        if self._idle.is_set() and not self._inbox:
            self._look_now()

    def _look_now(self) -> None:
        callbacks = list(self._look_for_others)
        self._look_for_others.clear()
        try:
            version = self._conn._conn.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error:
            version = None
        # A stored version from long ago still answers rightly: it only moves forward, and
        # only when another connection commits.
        if version is None or version != self._data_version:
            self._data_version = version
            for callback in callbacks:
                callback()

    def _committed(self) -> None:
        if self.on_commit is not None:
            self.on_commit()

    async def close(self) -> None:
        """Commit what was submitted, then stop the task."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            # A caller committing alone holds the connection; its finally wakes us again.
            while self._inbox and self._idle.is_set():
                batch = self._take_batch()
                if batch:
                    with self._occupied():
                        await self._commit(batch)
            if self._closing and not self._inbox:
                await self._idle.wait()
                return

    def _take_batch(self) -> list[_Submission[Any]]:
        batch: list[_Submission[Any]] = []
        while self._inbox and len(batch) < MAX_GROUP_SIZE:
            submission = self._inbox.popleft()
            # A caller that gave up before its turn is not written at all.
            if not submission.future.cancelled():
                batch.append(submission)
        return batch

    async def _commit(self, batch: list[_Submission[Any]]) -> None:
        try:
            outcomes = await self._apply_with_busy_retry([s.unit for s in batch])
            self._committed()
        except Exception as exc:  # noqa: BLE001 - every caller must be resolved, whatever failed
            error = translate_error(exc, self._path)
            for submission in batch:
                if not submission.future.done():
                    submission.future.set_exception(error)
            return
        for submission, (ok, value) in zip(batch, outcomes, strict=True):
            if submission.future.done():
                continue
            if ok:
                submission.future.set_result(value)
            else:
                submission.future.set_exception(translate_error(value, self._path))
        if len(batch) > 1:
            # The callers resume in the loop's next turn, and those who write again come
            # together: the first must not commit alone on the loop while the rest wait for
            # it (50 producers: a brief commit of one and a group of 49, each turn).
            self._start_brief_turn()

    async def _apply_with_busy_retry(self, units: list[WriteUnit[Any]]) -> list[tuple[bool, Any]]:
        def apply(raw: sqlite3.Connection) -> list[tuple[bool, Any]]:
            return apply_group(raw, units, self._busy_timeout)

        try:
            return await run_in_thread(self._conn, apply)
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            if self._busy_retries == 1:
                raise self._busy_error() from exc
        # Another process held the lock for a whole busy_timeout: back off with jitter and
        # try again, a bounded number of times.
        retrying = AsyncRetrying(
            retry=retry_if_exception(is_busy),
            stop=stop_after_attempt(self._busy_retries - 1),
            wait=wait_random_exponential(multiplier=0.01, max=0.25),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await run_in_thread(self._conn, apply)
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            raise self._busy_error() from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _busy_error(self) -> DatabaseBusyError:
        return DatabaseBusyError(
            f"database stayed locked through {self._busy_retries} tries of "
            f"{self._busy_timeout:g}s busy_timeout each",
            self._path,
        )


def begin_immediate(conn: sqlite3.Connection, busy_timeout: float) -> None:
    """Take the write lock, waiting up to ``busy_timeout`` seconds for another process.

    SQLite's own busy handler sleeps at least a millisecond between tries, several times a
    write transaction here; polling every 50 to 500 microseconds keeps two processes sharing
    the file from idling while the lock is free (measured: two worker processes went from
    0.8x to 1.0x one with the cap lowered from 2 ms to 0.5 ms). The writer connection
    therefore runs with SQLite's busy_timeout at 0.
    """
    delay = 0.00005
    deadline: float | None = None
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            now = time.monotonic()
            if deadline is None:
                deadline = now + busy_timeout
            if now >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.0005)


def apply_group(
    conn: sqlite3.Connection, units: list[WriteUnit[Any]], busy_timeout: float = 5.0
) -> list[tuple[bool, Any]]:
    """Run the units in one IMMEDIATE transaction and commit.

    Returns (True, result) or (False, exception) per unit. A failure that ends the whole
    transaction (busy, disk full, I/O) is raised instead, with nothing committed.
    """
    begin_immediate(conn, busy_timeout)
    try:
        if len(units) == 1:
            outcome = _run_unit(conn, units[0], savepoint=False)
            if not outcome[0]:
                conn.execute("ROLLBACK")
                return [outcome]
            outcomes = [outcome]
        else:
            outcomes = []
            for run in _runs(units):
                merged = _run_merged(conn, run) if len(run) > 1 else None
                if merged is None:
                    merged = [
                        _run_unit(conn, unit, savepoint=not unit.single_statement) for unit in run
                    ]
                outcomes += merged
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes


def _runs(units: list[WriteUnit[Any]]) -> list[list[WriteUnit[Any]]]:
    """Split into runs of consecutive units of one mergeable kind (others stand alone)."""
    runs: list[list[WriteUnit[Any]]] = []
    for unit in units:
        kind = unit.merge.kind if unit.merge is not None else None
        last = runs[-1][0].merge if runs else None
        if kind is not None and last is not None and last.kind == kind:
            runs[-1].append(unit)
        else:
            runs.append([unit])
    return runs


def _run_merged(
    conn: sqlite3.Connection, run: list[WriteUnit[Any]]
) -> list[tuple[bool, Any]] | None:
    """Run a run of like units as one statement; None if it failed and was undone."""
    merge = run[0].merge
    assert merge is not None
    conn.execute("SAVEPOINT merged")
    try:
        results = merge.run_many(conn, [unit.merge.payload for unit in run if unit.merge])
    except Exception as exc:
        if not conn.in_transaction or is_busy(exc):
            raise
        conn.execute("ROLLBACK TO merged")
        conn.execute("RELEASE merged")
        return None
    conn.execute("RELEASE merged")
    return [(True, result) for result in results]


def _run_unit(
    conn: sqlite3.Connection, unit: WriteUnit[Any], *, savepoint: bool
) -> tuple[bool, Any]:
    """Run one unit; its failure is undone (savepoint, or SQLite's statement rollback)."""
    if savepoint:
        conn.execute("SAVEPOINT submission")
    try:
        result = unit.fn(conn)
    except Exception as exc:
        if not conn.in_transaction or is_busy(exc):
            raise
        if savepoint:
            conn.execute("ROLLBACK TO submission")
            conn.execute("RELEASE submission")
        return (False, exc)
    if savepoint:
        conn.execute("RELEASE submission")
    return (True, result)


def translate_error(exc: BaseException, path: str) -> BaseException:
    """Driver errors become the project's; anything else passes through unchanged."""
    if isinstance(exc, sqlite3.Error) and not isinstance(exc, DatabaseError):
        wrapped = DatabaseError(f"SQLite error: {exc}", path)
        wrapped.__cause__ = exc
        return wrapped
    return exc


class ReadPool:
    """A few read-only connections; each read takes one and runs entirely in its thread."""

    def __init__(self, connections: list[aiosqlite.Connection], path: str) -> None:
        self._idle: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        for conn in connections:
            self._idle.put_nowait(conn)
        self._all = list(connections)
        self._path = path

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[aiosqlite.Connection]:
        conn = await self._idle.get()
        try:
            yield conn
        finally:
            self._idle.put_nowait(conn)

    async def read(self, fn: ThreadFunction[T]) -> T:
        """Run ``fn`` on a read connection and return its result."""
        async with self._connection() as conn:
            try:
                return await run_in_thread(conn, fn)
            except sqlite3.Error as exc:
                raise translate_error(exc, self._path) from exc

    async def close(self) -> None:
        """Close every connection."""
        for conn in self._all:
            await conn.close()
