"""asyncqueue: a durable asyncio job queue in one SQLite file."""

from asyncqueue.clock import Clock, ManualClock, SystemClock
from asyncqueue.default_queue import (
    close_default_queue,
    enqueue_job,
    get_default_queue,
    get_queue_status,
    set_default_queue,
)
from asyncqueue.errors import (
    AsyncQueueError,
    ConfigurationError,
    DatabaseBusyError,
    DatabaseError,
    DatabaseOpenError,
    QueueClosedError,
    RemoteAuthError,
    RemoteError,
    RemoteUnavailableError,
    SchemaVersionError,
    ValidationError,
    ValidationTypeError,
    WorkerError,
)
from asyncqueue.events import JobEvent, JobEventType
from asyncqueue.job import (
    ACTIVE_STATUSES,
    READY_STATUSES,
    TERMINAL_STATUSES,
    FailedGroup,
    Job,
    JobId,
    JobResult,
    JobStatus,
    QueueStats,
)
from asyncqueue.metrics import JobTypeMetrics, QueueMetrics, ThroughputBucket
from asyncqueue.protocol import WorkerQueue
from asyncqueue.queue import JobQueue
from asyncqueue.remote import RemoteQueue
from asyncqueue.retry import RetryPolicy
from asyncqueue.worker import QueueWorker

__version__ = "0.1.0"

__all__ = [
    "ACTIVE_STATUSES",
    "READY_STATUSES",
    "TERMINAL_STATUSES",
    "AsyncQueueError",
    "Clock",
    "ConfigurationError",
    "DatabaseBusyError",
    "DatabaseError",
    "DatabaseOpenError",
    "FailedGroup",
    "Job",
    "JobEvent",
    "JobEventType",
    "JobId",
    "JobQueue",
    "JobResult",
    "JobStatus",
    "JobTypeMetrics",
    "ManualClock",
    "QueueClosedError",
    "QueueMetrics",
    "QueueStats",
    "QueueWorker",
    "RemoteAuthError",
    "RemoteError",
    "RemoteQueue",
    "RemoteUnavailableError",
    "RetryPolicy",
    "SchemaVersionError",
    "SystemClock",
    "ThroughputBucket",
    "ValidationError",
    "ValidationTypeError",
    "WorkerError",
    "WorkerQueue",
    "__version__",
    "close_default_queue",
    "enqueue_job",
    "get_default_queue",
    "get_queue_status",
    "set_default_queue",
]
