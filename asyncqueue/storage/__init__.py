"""The storage seam: the one place where SQL and database connections live."""

from asyncqueue.storage.base import (
    ClaimRequest,
    FinishedJob,
    JobStorage,
    Lease,
    RecoveredJob,
    WorkerRecord,
)

__all__ = ["ClaimRequest", "FinishedJob", "JobStorage", "Lease", "RecoveredJob", "WorkerRecord"]
