"""The job document Pixelcut defines, as GET /v1/try-on/job/{id} and webhooks send it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from retouch.jobs.store import JobStatus, JobView


def job_document(job: JobView, *, result_url: Callable[[str], str]) -> dict[str, Any]:
    """``result_url`` turns a result key into a signed URL."""
    document: dict[str, Any] = {"job_id": job.id, "status": job.status.value}
    if job.status == JobStatus.COMPLETED and job.result_key:
        document["result_url"] = result_url(job.result_key)
    if job.status == JobStatus.FAILED:
        document["error"] = {"message": job.error_message, "error_code": job.error_code}
    return document
