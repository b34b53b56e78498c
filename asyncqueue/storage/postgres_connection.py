"""Connections to PostgreSQL: the pool every verb runs on, retried across connection loss,
and the one listening connection per queue that turns NOTIFY into wake-ups.

asyncpg ships no type stubs; its objects are ``Any`` here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from collections.abc import Set as AbstractSet
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

from asyncqueue.config import redacted
from asyncqueue.errors import (
    DatabaseBusyError,
    DatabaseError,
    DatabaseOpenError,
    QueueClosedError,
)
from asyncqueue.storage.postgres_sql import positional

T = TypeVar("T")

#: Longest a verb keeps retrying a lost connection (a server restart takes a few seconds).
RECONNECT_SECONDS = 60.0

#: Smallest pool that keeps one connection pinned for lone statements: a smaller pool
#: needs every connection for its workers' claims, reads and shared enqueues.
PIN_FROM_POOL_SIZE = 4

_log = logging.getLogger("asyncqueue.postgres")

Connection = Any


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` means the connection (not the statement) failed: worth retrying.

    A server restart, ``pg_terminate_backend``, a network cut, a server still starting up,
    and deadlocks or serialisation failures, which PostgreSQL asks the client to retry.
    """
    # A bad URL or option (an InterfaceError too): no retry makes it good.
    if isinstance(exc, asyncpg.QueryCanceledError | asyncpg.ClientConfigurationError):
        return False
    # A connection left mid-exchange by a lost server ("another operation is in progress").
    if isinstance(exc, asyncpg.exceptions.InternalClientError):
        return True
    return isinstance(
        exc,
        OSError
        | asyncio.TimeoutError
        | asyncpg.PostgresConnectionError
        | asyncpg.ConnectionDoesNotExistError
        | asyncpg.InterfaceError
        | asyncpg.exceptions.OperatorInterventionError
        | asyncpg.CannotConnectNowError
        | asyncpg.TooManyConnectionsError
        | asyncpg.DeadlockDetectedError
        | asyncpg.SerializationError,
    ) and not isinstance(exc, asyncpg.InterfaceWarning)


def is_connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` left the connection unusable (not a deadlock or serialisation
    failure, which end the transaction and leave the connection as good as before)."""
    return is_transient(exc) and not isinstance(
        exc, asyncpg.DeadlockDetectedError | asyncpg.SerializationError
    )


def translate(exc: BaseException, url: str) -> DatabaseError:
    """The project's error for a driver's exception (chain it as ``__cause__``)."""
    where = redacted(url)
    if isinstance(exc, asyncpg.DeadlockDetectedError | asyncpg.LockNotAvailableError):
        return DatabaseBusyError(f"PostgreSQL: {exc}", where)
    if isinstance(exc, asyncpg.SerializationError):
        # Only a caller's own transaction (enqueue on ``connection=``) gets here: ours are
        # retried. The connection is fine; the transaction must be run again.
        return DatabaseBusyError(f"PostgreSQL: {exc}; retry the transaction", where)
    if is_transient(exc):
        return DatabaseError(f"lost the connection to PostgreSQL: {exc}", where)
    return DatabaseError(f"PostgreSQL error: {exc}", where)


class Database:
    """The queue's connection pool; :meth:`run` retries an operation across connection loss."""

    def __init__(self, url: str, pool_size: int, application_name: str) -> None:
        self.url = url
        self._pool_size = pool_size
        #: Shown in pg_stat_activity, so an operator sees which connections are the queue's.
        self.server_settings = {"application_name": application_name}
        self._pool: Any = None
        #: Kept out of the pool for lone statements (see :meth:`run`), and whether in use.
        self._pinned: Any = None
        self._pinned_busy = False
        #: Server process ids of the pool's connections: a NOTIFY one of them sent was
        #: already announced in this process (see :class:`Listener`).
        self.server_pids: set[int] = set()

    async def open(self) -> None:
        """Create the pool (one connection now, more on demand)."""
        try:
            self._pool = await self._retrying(
                lambda: asyncpg.create_pool(
                    self.url,
                    min_size=1,
                    max_size=self._pool_size,
                    server_settings=self.server_settings,
                    reset=_keep_session,
                    init=self._note_connection,
                ),
                seconds=10.0,
            )
        # OverflowError: a port past 65535, which the URL parser lets through.
        except (TimeoutError, OSError, asyncpg.PostgresError, ValueError, OverflowError) as exc:
            raise DatabaseOpenError(
                f"cannot connect to PostgreSQL: {exc}", redacted(self.url)
            ) from exc

    async def _note_connection(self, conn: Any) -> None:
        pid = conn.get_server_pid()
        self.server_pids.add(pid)
        conn.add_termination_listener(lambda _conn: self.server_pids.discard(pid))

    async def close(self) -> None:
        """Close every connection, waiting briefly for those in use."""
        pool, self._pool = self._pool, None
        pinned, self._pinned = self._pinned, None
        # One still in use (a statement in flight as the queue closes) is waited for by the
        # pool's close, as any connection in use is.
        if pool is not None and pinned is not None and not self._pinned_busy:
            with contextlib.suppress(Exception):
                await pool.release(pinned)
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), 10.0)
            except (TimeoutError, OSError, asyncpg.PostgresError):
                pool.terminate()

    @property
    def is_open(self) -> bool:
        """Whether the pool exists."""
        return self._pool is not None

    async def _run_pinned(self, op: Callable[[Connection], Awaitable[T]]) -> T:
        pool = self._pool
        if pool is None:
            raise QueueClosedError(f"the queue at {redacted(self.url)} is not open")
        self._pinned_busy = True
        conn: Any = None
        try:
            if self._pinned is None:
                self._pinned = await pool.acquire()
            conn = self._pinned
            try:
                return await op(conn)
            except BaseException as exc:
                lost = is_connection_lost(exc)
                if lost or isinstance(exc, asyncio.CancelledError):
                    # Left mid-exchange: back to the pool closed, which replaces it.
                    self._pinned = None
                    dropped, conn = conn, None
                    with contextlib.suppress(asyncpg.InterfaceError):
                        dropped.terminate()
                    with contextlib.suppress(Exception):
                        await pool.release(dropped)
                if lost:
                    await pool.expire_connections()
                raise
        finally:
            self._pinned_busy = False
            if conn is not None and self._pool is not pool:
                # The queue closed while this ran: the connection goes back to its pool,
                # whose close is waiting for it.
                with contextlib.suppress(Exception):
                    await pool.release(conn)

    async def _retrying(self, op: Callable[[], Awaitable[T]], seconds: float) -> T:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(is_transient),
            wait=wait_exponential(multiplier=0.05, max=2.0),
            stop=stop_after_delay(seconds),
            reraise=True,
            before_sleep=_log_retry,
        ):
            with attempt:
                return await op()
        raise AssertionError("unreachable")  # pragma: no cover

    async def run(
        self,
        op: Callable[[Connection], Awaitable[T]],
        *,
        on_retry: Callable[[Connection], Awaitable[None]] | None = None,
        pinned: bool = False,
    ) -> T:
        """Run ``op`` on a pooled connection, again on another one if the connection is lost.

        ``on_retry`` runs first on each new try (to learn what a lost try committed).
        ``pinned`` runs the first try on a connection kept out of the pool, when it is free:
        a lone enqueue or a worker's exchange then skips the pool's acquire and release
        (measured: one-row inserts 2,430/s through acquire/release, 2,660/s on a held
        connection; a claim's answer reaches the worker 0.1 ms sooner).

        Raises:
            DatabaseError: the statement failed, or the server stayed unreachable for
                ``RECONNECT_SECONDS``.
        """
        tries = 0

        async def once() -> T:
            nonlocal tries
            tries += 1
            pool = self._pool
            if pool is None:
                raise QueueClosedError(f"the queue at {redacted(self.url)} is not open")
            conn = await pool.acquire()
            try:
                if tries > 1 and on_retry is not None:
                    await on_retry(conn)
                return await op(conn)
            except BaseException as exc:
                lost = is_connection_lost(exc)
                if lost or isinstance(exc, asyncio.CancelledError):
                    # Left mid-exchange: never back into the pool.
                    with contextlib.suppress(asyncpg.InterfaceError):
                        conn.terminate()
                if lost:
                    # The pool's other connections are likely dead too (a server restart):
                    # each is replaced on next use. Not on a mere cancellation (a caller's
                    # timeout), which would drop every healthy connection with it.
                    await pool.expire_connections()
                raise
            finally:
                # A failure to release (the connection died meanwhile) is not the
                # operation's: it has run, and must not run again.
                try:
                    await pool.release(conn)
                except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
                    _log.debug("postgres.release_failed error=%r", exc)
                except asyncpg.InterfaceError as exc:
                    _log.debug("postgres.release_failed error=%r", exc)

        try:
            # The first try outside tenacity: building its retry state for every call cost
            # more than a tenth of a lone enqueue's time in Python.
            try:
                if pinned and not self._pinned_busy and self._pool_size >= PIN_FROM_POOL_SIZE:
                    tries = 1
                    return await self._run_pinned(op)
                return await once()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                _log.warning("postgres.retrying attempt=1 error=%r", exc)
            return await self._retrying(once, RECONNECT_SECONDS)
        except asyncpg.PostgresError as exc:
            raise translate(exc, self.url) from exc
        except (TimeoutError, OSError, asyncpg.InterfaceError) as exc:
            raise translate(exc, self.url) from exc


async def _keep_session(conn: Any) -> None:
    """Release a connection to the pool as it is.

    asyncpg's default reset (UNLISTEN *, RESET ALL, advisory unlocks) costs a round trip per
    release, doubling a one-statement verb's. The queue leaves no session state behind: it
    listens on a connection of its own, takes only transaction-scoped advisory locks, and
    every transaction it opens ends before the release.
    """


async def probe(url: str, statement: str, **params: Any) -> Any:
    """The value of one statement on a connection of its own, opened and closed for it.

    Raises:
        DatabaseOpenError: the server cannot be reached, or the URL is unusable.
    """
    text, names = positional(statement)
    try:
        conn = await asyncpg.connect(url, timeout=10.0)
    except (TimeoutError, OSError, asyncpg.PostgresError, ValueError, OverflowError) as exc:
        raise DatabaseOpenError(f"cannot connect to PostgreSQL: {exc}", redacted(url)) from exc
    try:
        return await conn.fetchval(text, *(params[name] for name in names))
    except asyncpg.PostgresError as exc:
        raise translate(exc, url) from exc
    finally:
        await conn.close()


def _log_retry(state: Any) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    _log.warning("postgres.retrying attempt=%s error=%r", state.attempt_number, exc)


class Listener:
    """One LISTEN connection, outside the pool, calling ``callback()`` on each notification.

    After a connection loss it reconnects with backoff and calls ``callback()`` once at
    once: notifications sent meanwhile were lost, so the worker should look for work.
    """

    def __init__(
        self,
        url: str,
        channel: str,
        callback: Callable[[], None],
        server_settings: dict[str, str] | None = None,
        own_pids: AbstractSet[int] = frozenset(),
    ) -> None:
        self._url = url
        self._own_pids = own_pids
        self._server_settings = server_settings
        self._channel = channel
        self._callback = callback
        self._conn: Any = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start listening in a task of the running loop."""
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"asyncqueue-listen:{self._channel}"
        )

    def close(self) -> None:
        """Stop listening and drop the connection."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()

    def _notified(self, _conn: Any, pid: int, *_: Any) -> None:
        # The queue object that sent it already told its own listeners, at its commit: the
        # echo would cost an idle worker of this process a second claim.
        if pid not in self._own_pids:
            self._callback()

    async def _run(self) -> None:
        delay = 0.05
        first = True
        while True:
            try:
                conn = await asyncpg.connect(self._url, server_settings=self._server_settings)
            except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
                _log.warning("postgres.listen_reconnect error=%r", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            lost = asyncio.Event()
            conn.add_termination_listener(_setter(lost))
            self._conn = conn
            try:
                await conn.add_listener(self._channel, self._notified)
                if not first:
                    self._callback()
                first, delay = False, 0.05
                await lost.wait()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                _log.warning("postgres.listen_lost error=%r", exc)
            finally:
                self._conn = None
                with contextlib.suppress(Exception):
                    conn.terminate()


def _setter(event: asyncio.Event) -> Callable[[Any], None]:
    def set_event(_conn: Any) -> None:
        event.set()

    return set_event
