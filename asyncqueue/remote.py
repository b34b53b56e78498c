"""RemoteQueue: the worker's side of a queue served over HTTP by ``asyncqueue serve``.

A :class:`~asyncqueue.QueueWorker` runs on it unchanged: claims, outcomes and lease
renewals go to the server's ``/api/tasks/exchange`` and ``/api/tasks/renew`` routes in
batches, an idle worker long-polls ``/api/tasks/wait``, and the worker's heartbeat goes to
``/api/workers/heartbeat``. The server decides retries with its queue's policy and takes
back the leases of workers that went silent.

Needs httpx (``pip install 'asyncqueue[remote]'``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    wait_random_exponential,
)

from asyncqueue.clock import Clock, SystemClock
from asyncqueue.config import DEFAULT_MAX_METADATA_BYTES
from asyncqueue.errors import (
    ConfigurationError,
    QueueClosedError,
    RemoteAuthError,
    RemoteError,
    RemoteUnavailableError,
)
from asyncqueue.job import ClaimedJob, JobStatus, claimed_job
from asyncqueue.logs import get_logger
from asyncqueue.protocol import predicted_failure
from asyncqueue.storage.base import FinishedJob, Strategy, WorkerRecord
from asyncqueue.validation import storable_error

if TYPE_CHECKING:
    import httpx

#: Where the API is when neither an argument nor ``QUEUE_API_URL`` (or the seed's
#: ``TASKMANAGER_API_URL``) says otherwise.
DEFAULT_API_URL = "http://localhost:8000/api"
#: The longest long poll the server grants; the client waits this plus a margin.
MAX_WAIT_SECONDS = 30.0
#: Seconds a request keeps being retried while the server cannot be reached (or answers
#: 502/503/504) before the call raises :class:`RemoteUnavailableError`.
DEFAULT_RECONNECT_SECONDS = 60.0

_OUTCOMES: dict[JobStatus, str] = {
    JobStatus.COMPLETED: "completed",
    JobStatus.RETRY_SCHEDULED: "failed",
    JobStatus.FAILED: "failed",
    JobStatus.PENDING: "released",
}
#: Answers that mean "try again shortly": a proxy without its upstream, a server starting
#: or stopping.
_RETRY_STATUSES = frozenset({502, 503, 504})


class RemoteQueue:
    """A queue on an ``asyncqueue serve`` server, for workers in other processes or hosts.

    ``MyWorker(RemoteQueue(url, token=...), concurrency=4)`` runs the same ``process_job``
    as a local worker. Finished results the server has not taken yet (it is restarting,
    the network is down) are kept and sent with the next exchange.

    Args:
        api_url: the API's base URL, ending in ``/api`` (``QUEUE_API_URL``, or the seed's
            ``TASKMANAGER_API_URL``; default ``http://localhost:8000/api``).
        token: the bearer token (``QUEUE_API_TOKEN``); a ``worker`` scope suffices.
        lease_seconds: the server's lease length (its ``job_timeout_minutes``); the worker
            renews leases and heartbeats at a third of it, at most every 10 s. Default:
            ``QUEUE_JOB_TIMEOUT_MINUTES``, else 30 minutes, as on the server.
        reconnect_seconds: how long a request is retried, with exponential backoff and
            jitter, while the server cannot be reached before it fails.
        max_result_bytes: the largest result sent, in bytes of JSON (the server's
            ``max_metadata_bytes``, 64 KiB by default); a larger one fails the attempt.
        timeout: seconds to wait for an answer to an ordinary request.
        clock: the time source of the worker's timers (default: the system clock).
        transport: an httpx transport (tests pass ``httpx.ASGITransport``).

    Raises:
        ConfigurationError: an argument is invalid, or httpx is not installed.
    """

    def __init__(
        self,
        api_url: str | None = None,
        *,
        token: str | None = None,
        lease_seconds: float | None = None,
        reconnect_seconds: float = DEFAULT_RECONNECT_SECONDS,
        max_result_bytes: int = DEFAULT_MAX_METADATA_BYTES,
        timeout: float = 30.0,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.api_url = _api_url(api_url)
        self._token = token if token is not None else os.environ.get("QUEUE_API_TOKEN") or None
        self._lease_seconds = _lease_seconds(lease_seconds)
        self._reconnect_seconds = _positive("reconnect_seconds", reconnect_seconds)
        self._timeout = _positive("timeout", timeout)
        if isinstance(max_result_bytes, bool) or not isinstance(max_result_bytes, int):
            raise ConfigurationError(f"max_result_bytes must be an int, got {max_result_bytes!r}")
        self._max_result_bytes = max_result_bytes
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._closed = False
        #: Outcomes the server has not acknowledged yet, by job id: sent again with the
        #: next exchange, so a result outlives a server restart.
        self._unsent: dict[int, FinishedJob] = {}
        #: The server's enqueue counter as last seen (see ``wait_for_work``).
        self._seq = 0
        #: The leases this client holds (claimed, not yet reported), by job id.
        self._holding: dict[int, str] = {}
        #: Whether an exchange's answer may have been lost: the server may have claimed
        #: jobs for us that we never saw (see ``finish_and_claim``).
        self._reconcile = False
        self._log = get_logger("asyncqueue.remote", api_url=self.api_url)

    def __repr__(self) -> str:
        return f"RemoteQueue({self.api_url!r})"

    @property
    def lease_seconds(self) -> float:
        """The lease length the worker plans its renewals by."""
        return self._lease_seconds

    @property
    def max_result_bytes(self) -> int:
        """The largest result sent, in bytes of JSON."""
        return self._max_result_bytes

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> Self:
        """Create the pooled HTTP client. Idempotent; the server is not contacted."""
        if self._closed:
            raise QueueClosedError(f"the remote queue at {self.api_url} is closed")
        if self._client is None:
            self._client = _http_client(self.api_url, self._token, self._timeout, self._transport)
        return self

    async def close(self) -> None:
        """Close the HTTP client. Idempotent."""
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- the worker protocol -----------------------------------------------------------

    async def finish_and_claim(
        self,
        finished: Sequence[FinishedJob],
        *,
        worker_id: str,
        limit: int,
        strategy: Strategy = "priority",
        job_types: tuple[str, ...] | None = None,
        brief: bool = False,
    ) -> tuple[set[int], list[ClaimedJob]]:
        """Send outcomes (and any the server has not taken yet) and claim, in one request.

        Raises:
            RemoteUnavailableError: the server could not be reached within
                ``reconnect_seconds``; the outcomes are kept for the next call.
            RemoteError: the server refused the request.
        """
        for outcome in finished:
            self._unsent[outcome.job_id] = outcome
        sending = list(self._unsent.values())
        if not sending and limit <= 0 and not self._reconcile:
            return set(), []
        body: dict[str, Any] = {
            "worker_id": worker_id,
            "finished": _RawJSON(f"[{','.join(map(_outcome_body, sending))}]"),
        }
        if limit > 0:
            body["claim"] = {
                "limit": limit,
                "task_types": None if job_types is None else list(job_types),
                "strategy": strategy,
            }
        try:
            answer = await self._post("/tasks/exchange", body, reconcile=self._reconcile_body)
        except RemoteUnavailableError:
            # Kept in _unsent: they go out with the next exchange, which also reconciles.
            self._reconcile = True
            raise
        except RemoteError:
            # Refused, not lost in transit: sending them again would be refused again.
            self._forget(sending)
            raise
        self._reconcile = False
        self._forget(sending)
        self._note_seq(answer)
        applied = {int(job_id) for job_id in answer.get("applied", ())}
        claimed = [_claimed(task) for task in answer.get("tasks", ())]
        for job in claimed:
            self._holding[job.id] = job.lease_token
        return applied, claimed

    def _reconcile_body(self, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` for a request whose earlier answer may have been lost.

        A lost answer to a claim leaves jobs leased to this worker that it never saw; they
        would wait out their lease. ``holding`` names every lease this client knows, and the
        server gives back, without spending an attempt, the worker's other jobs.
        """
        holding = [{"id": job_id, "lease_token": token} for job_id, token in self._holding.items()]
        return {**body, "holding": holding}

    def outcome(
        self,
        job: ClaimedJob,
        error: str | None,
        duration: float | None = None,
        *,
        result_json: str | None = None,
    ) -> FinishedJob:
        """The outcome to send; the server applies its own retry policy to a failure."""
        if error is None:
            status = JobStatus.COMPLETED
        else:
            status, result_json = predicted_failure(job), None
            # As the server stores it: a lone surrogate (a mis-decoded file name in an
            # exception's message, say) or an outsized message would get the whole
            # exchange refused.
            error = storable_error(error)
        return FinishedJob(
            job.id, job.lease_token, status, None, error, job.job_type, duration, result_json
        )

    def _forget(self, sent: Sequence[FinishedJob]) -> None:
        for outcome in sent:
            if self._unsent.get(outcome.job_id) is outcome:
                del self._unsent[outcome.job_id]
            if self._holding.get(outcome.job_id) == outcome.token:
                del self._holding[outcome.job_id]

    def released(self, job: ClaimedJob) -> FinishedJob:
        """The outcome that gives a held job back to pending without spending an attempt."""
        return FinishedJob(job.id, job.lease_token, JobStatus.PENDING, job_type=job.job_type)

    async def renew_leases(self, jobs: Iterable[ClaimedJob]) -> set[int]:
        """Extend the leases of held jobs on the server; return the ids still held."""
        held_jobs = list(jobs)
        if not held_jobs:
            return set()
        leases = [{"id": job.id, "lease_token": job.lease_token} for job in held_jobs]
        worker_id = next((job.worker_id for job in held_jobs if job.worker_id), None)
        answer = await self._post("/tasks/renew", {"worker_id": worker_id, "leases": leases})
        held = {int(job_id) for job_id in answer.get("held", ())}
        for job in held_jobs:
            if job.id not in held:
                self._holding.pop(job.id, None)
        return held

    async def record_worker(self, worker: WorkerRecord) -> None:
        """Send the worker's heartbeat (the server stamps it with its own time).

        The answer carries the server's lease length, which :attr:`lease_seconds` then
        reports: the worker plans its renewals by the lease the server actually gives.
        """
        answer = await self._post(
            "/workers/heartbeat",
            {
                "worker_id": worker.worker_id,
                "host": worker.host,
                "pid": worker.pid,
                "started_at": worker.started_at,
                "heartbeat_interval": worker.heartbeat_interval,
                "jobs_processed": worker.jobs_processed,
                "jobs_failed": worker.jobs_failed,
            },
        )
        lease = answer.get("lease_seconds")
        if isinstance(lease, int | float) and not isinstance(lease, bool) and 0 < lease < 1e9:
            self._lease_seconds = float(lease)

    async def remove_worker(self, worker_id: str) -> None:
        """Tell the server the worker stopped."""
        await self._send("DELETE", f"/workers/{_path_segment(worker_id)}", None)

    async def recover_stale_jobs(self) -> int:
        """Nothing to do here: the server takes back expired leases itself."""
        return 0

    async def wait_for_work(self, seconds: float, job_types: tuple[str, ...] | None) -> None:
        """Long-poll the server, ``seconds`` at a time, until something was enqueued or a
        task of these types came due (the server reads its due times, see
        ``JobQueue.wait_for_work``): an idle worker claims nothing.

        The wait claims nothing, so cancelling it (a stop) loses nothing. When the server
        cannot be reached it sleeps ``seconds`` and returns: the next claim then retries.
        """
        seconds = min(seconds, MAX_WAIT_SECONDS)
        types = None if job_types is None else list(job_types)
        while True:
            since = self._seq
            body = {"since": since, "timeout": seconds, "task_types": types}
            try:
                answer = await self._send("POST", "/tasks/wait", body, read_timeout=seconds + 10.0)
            except RemoteError as exc:
                self._log.debug("remote.wait_failed", error=str(exc))
                await self.clock.sleep(seconds)
                return
            self._note_seq(answer)
            # A server that does not say (an older one) is asked by a claim, as before.
            if self._seq != since or answer.get("due") is not False:
                return

    def add_enqueue_listener(self, listener: Callable[[], None]) -> None:
        """Nothing to listen to: an idle worker long-polls instead (``wait_for_work``)."""

    def remove_enqueue_listener(self, listener: Callable[[], None]) -> None:
        """See :meth:`add_enqueue_listener`."""

    # -- HTTP ----------------------------------------------------------------------------

    def _note_seq(self, answer: Mapping[str, Any]) -> None:
        seq = answer.get("seq")
        if isinstance(seq, int) and not isinstance(seq, bool):
            self._seq = seq

    async def _post(
        self,
        path: str,
        body: dict[str, Any],
        *,
        reconcile: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        answer = await self._send("POST", path, body, reconcile=reconcile)
        if not isinstance(answer, dict):
            raise RemoteError(f"{path}: expected a JSON object, got {type(answer).__name__}")
        return answer

    async def _send(
        self,
        method: str,
        path: str,
        body: Any,
        *,
        read_timeout: float | None = None,
        reconcile: Callable[[Any], Any] | None = None,
    ) -> Any:
        """One request, retried with backoff while the server cannot be reached.

        ``reconcile`` gives the body to send instead, when this is a retry or an earlier
        exchange failed: the first try's answer may have been lost after the server acted.
        """
        await self.open()
        retrying = AsyncRetrying(
            retry=retry_if_exception(_is_transient),
            stop=stop_after_delay(self._reconnect_seconds),
            wait=wait_random_exponential(multiplier=0.05, max=5.0),
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    again = self._reconcile or attempt.retry_state.attempt_number > 1
                    sent = reconcile(body) if reconcile is not None and again else body
                    return await self._send_once(method, path, sent, read_timeout)
        except _Transient as exc:
            raise RemoteUnavailableError(
                f"{method} {self.api_url}{path}: the server could not be reached for "
                f"{self._reconnect_seconds:g}s ({exc})"
            ) from exc.__cause__
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send_once(
        self, method: str, path: str, body: Any, read_timeout: float | None
    ) -> Any:
        import httpx

        client = self._client
        if client is None:
            raise QueueClosedError(f"the remote queue at {self.api_url} is closed")
        read = self._timeout if read_timeout is None else read_timeout
        timeout = httpx.Timeout(self._timeout, connect=5.0, read=read)
        try:
            response = await client.request(
                method,
                self.api_url + path,
                content=None if body is None else _encode(body),
                headers=None if body is None else _JSON_HEADERS,
                timeout=timeout,
            )
        except httpx.TransportError as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code in _RETRY_STATUSES:
            raise _Transient(f"HTTP {response.status_code}")
        if response.status_code in (401, 403):
            raise RemoteAuthError(
                f"{method} {path}: HTTP {response.status_code} {_detail(response)}",
                status=response.status_code,
            )
        if response.status_code >= 400:
            raise RemoteError(
                f"{method} {path}: HTTP {response.status_code} {_detail(response)}",
                status=response.status_code,
            )
        try:
            return response.json()
        except ValueError as exc:
            raise RemoteError(f"{method} {path}: the answer is not JSON") from exc

    def _log_retry(self, state: RetryCallState) -> None:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        self._log.warning(
            "remote.retrying",
            attempt=state.attempt_number,
            error=str(error),
            unsent_outcomes=len(self._unsent),
        )


class _Transient(Exception):
    """The server could not be reached, or answered that it cannot serve now."""


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, _Transient)


def _detail(response: httpx.Response) -> str:
    text = response.text
    return text if len(text) <= 500 else text[:497] + "..."


class _RawJSON(str):
    """JSON text that goes into a request body as it is (see :func:`_encode`)."""


_JSON_HEADERS = {"Content-Type": "application/json"}


def _encode(body: Any) -> bytes:
    """A request body as JSON; a top-level value that is :class:`_RawJSON` goes in as it is."""
    if not isinstance(body, dict):
        return _json_text(body).encode()
    fields = ",".join(f"{_json_text(key)}:{_json_text(value)}" for key, value in body.items())
    return f"{{{fields}}}".encode()


def _json_text(value: Any) -> str:
    if isinstance(value, _RawJSON):
        return value
    # ASCII: text holding a lone surrogate goes out escaped, and the server answers why it
    # refuses it, rather than this failing to encode it.
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def _outcome_body(outcome: FinishedJob) -> str:
    """An exchange's outcome item as JSON text, the result's JSON (already encoded by the
    worker, within the size cap) spliced in rather than decoded and encoded again."""
    body: dict[str, Any] = {
        "id": outcome.job_id,
        "lease_token": outcome.token,
        "outcome": _OUTCOMES[outcome.status],
    }
    if outcome.error is not None:
        body["error"] = outcome.error
    text = _json_text(body)
    if outcome.result_json is None:
        return text
    return f'{text[:-1]},"result":{outcome.result_json}}}'


def _claimed(task: Mapping[str, Any]) -> ClaimedJob:
    try:
        return claimed_job(
            (
                int(task["id"]),
                str(task["type"]),
                str(task["target_id"]),
                dict(task.get("params") or {}),
                int(task["priority"]),
                int(task["retry_count"]),
                int(task["max_retries"]),
                str(task["lease_token"]),
                task.get("worker_id"),
            )
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RemoteError(f"the server sent a task this client cannot read: {exc!r}") from exc


def _http_client(
    api_url: str, token: str | None, timeout: float, transport: httpx.AsyncBaseTransport | None
) -> httpx.AsyncClient:
    try:
        import httpx
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ConfigurationError(
            "RemoteQueue needs httpx: pip install 'asyncqueue[remote]'"
        ) from exc
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(
        headers=headers,
        timeout=httpx.Timeout(timeout, connect=5.0),
        limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
        transport=transport,
    )


def _api_url(api_url: str | None) -> str:
    if api_url is None:
        api_url = (
            os.environ.get("QUEUE_API_URL")
            or os.environ.get("TASKMANAGER_API_URL")
            or DEFAULT_API_URL
        )
    if not isinstance(api_url, str) or not api_url.startswith(("http://", "https://")):
        raise ConfigurationError(f"api_url must be an http(s) URL ending in /api, got {api_url!r}")
    return api_url.rstrip("/")


def _lease_seconds(lease_seconds: float | None) -> float:
    if lease_seconds is None:
        raw = os.environ.get("QUEUE_JOB_TIMEOUT_MINUTES", "").strip()
        try:
            minutes = float(raw) if raw else 30.0
        except ValueError:
            raise ConfigurationError(
                f"environment variable QUEUE_JOB_TIMEOUT_MINUTES={raw!r} is not a number"
            ) from None
        lease_seconds = minutes * 60.0
    return _positive("lease_seconds", lease_seconds)


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e9:
        raise ConfigurationError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def _path_segment(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")
