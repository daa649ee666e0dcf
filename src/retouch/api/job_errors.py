"""How a failed job answers a caller that waited for it (try-on with ``wait_for_result``).

The body carries the job's own ``error_code``; the status is what a client should do about it,
since clients retry 5xx and every retry without an Idempotency-Key submits (and, if it succeeds,
pays for) a new job. README.md ("Try-on (jobs)") documents this table.
"""

from __future__ import annotations

from retouch.errors import RetouchError
from retouch.jobs.store import JobView

RETRY_AFTER_SECONDS = 5

STATUSES: dict[str, int] = {
    # The input was refused: the client's to fix, a retry fails the same way.
    "invalid_parameter": 400,
    "content_filter_error": 400,
    # Someone cancelled the job: retrying would undo that decision.
    "job_cancelled": 409,
    # The job waited past RETOUCH_JOB_QUEUE_TIMEOUT_SECONDS and will never run.
    "job_expired": 410,
    # The work ran past RETOUCH_JOB_TIMEOUT_SECONDS: the server's limit, not the request's
    # fault, as a gateway's timeout. Refunded; a retry is charged only if it completes.
    "request_timeout": 504,
    # Transient: retry after the pause given.
    "service_unavailable": 503,
    # A bug.
    "unexpected_error": 500,
}


class JobFailed(RetouchError):
    def __init__(self, job: JobView) -> None:
        self.error_code = job.error_code or "unexpected_error"
        self.status = STATUSES.get(self.error_code, 500)
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if self.status == 503 else None
        super().__init__(job.error_message or "The job failed", headers=headers)
