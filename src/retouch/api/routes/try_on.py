"""POST /v1/try-on, GET /v1/try-on/job/{jobId}, POST /v1/try-on/job/{jobId}/cancel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from retouch.api.deps import CallerDep, IdempotencyKeyDep, ServicesDep
from retouch.api.disconnect import client_gone
from retouch.api.inputs import load_image, parse_image_request
from retouch.api.job_errors import JobFailed
from retouch.api.openapi import request_body
from retouch.api.outputs import result_url
from retouch.api.responses import (
    CREDIT_HEADERS,
    JobCancelledResponse,
    JobDocument,
    ResultURLResponse,
    error_response,
    error_responses,
)
from retouch.app_state import Services
from retouch.billing.idempotency import fingerprint
from retouch.errors import Conflict, NotFound
from retouch.jobs.documents import job_document
from retouch.jobs.runner import JobRunner
from retouch.jobs.store import JobStatus, JobView
from retouch.jobs.submit import TryOnOrder, submit_try_on
from retouch.jobs.try_on import KIND
from retouch.jobs.webhooks import validate_webhook_url
from retouch.schemas import TryOnRequest

router = APIRouter(tags=["Endpoints"])
IMAGES = ("person_image", "garment_image")


def get_runner(request: Request) -> JobRunner:
    runner: JobRunner = request.app.state.runner
    return runner


RunnerDep = Annotated[JobRunner, Depends(get_runner)]


class JobFinished(Conflict):
    error_code = "job_finished"
    default_message = "Job has already finished and cannot be canceled"


_FINISHED = (JobFinished.default_message, JobFinished.error_code)
# Spelt as the spec spells it; the handlers call it job_id.
JobIdPath = Annotated[str, Path(alias="jobId", description="The `job_id` from POST /v1/try-on.")]


def _document(request: Request, services: Services, job: JobView) -> dict[str, Any]:
    return job_document(job, result_url=lambda key: result_url(request, services, key))


@router.post(
    "/v1/try-on",
    summary="Try On (Beta)",
    description="Dress the person in the garment. Runs as a job: with `wait_for_result` "
    '(default true) the call waits for it and answers `{"result_url"}`; otherwise it answers '
    '202 `{"job_id", "status"}` at once. Costs 1 credit, +5 when the garment is extracted.',
    operation_id="try-on",
    openapi_extra=request_body(TryOnRequest, images=IMAGES),
    responses={
        200: {
            "description": "The job is done (`wait_for_result`): its `result_url`.",
            "model": ResultURLResponse,
            "headers": {**CREDIT_HEADERS, "X-Job-Id": {"schema": {"type": "string"}}},
        },
        202: {
            "description": "The job was queued (or is still running after the wait): poll it "
            "at GET /v1/try-on/job/{jobId}.",
            "model": JobDocument,
            "headers": CREDIT_HEADERS,
        },
        **error_responses(400, 401, 403, 409, 410, 422, 429, 500, 503, 504),
    },
    response_model=None,
    response_class=JSONResponse,
)
async def try_on(
    request: Request,
    caller: CallerDep,
    services: ServicesDep,
    runner: RunnerDep,
    idempotency_key: IdempotencyKeyDep,
) -> Response:
    params, sources = await parse_image_request(request, TryOnRequest, images=IMAGES)
    if params.webhook_url is not None:
        validate_webhook_url(params.webhook_url)
    options = params.model_dump(mode="json", exclude={"person_image_url", "garment_image_url"})
    order = TryOnOrder(
        account_id=caller.account_id,
        options=options,
        preprocess_garment=params.preprocess_garment,
        wait=params.wait_for_result,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint(
            endpoint=KIND,
            params=options,
            images={name: source.describe() for name, source in sources.items()},
        ),
    )

    async def load() -> dict[str, bytes]:
        return {name: await load_image(services, sources[name]) for name in IMAGES}

    async with client_gone(request) as gone:
        submitted = await submit_try_on(services, runner, order, load, gone=gone)
    job = submitted.job
    headers = {
        "X-Credits-Charged": str(submitted.credits_charged),
        "X-Credits-Remaining": str(submitted.credits_remaining),
    }
    if submitted.replayed:
        headers["Idempotent-Replayed"] = "true"
    if order.wait and job.status == JobStatus.COMPLETED:
        assert job.result_key is not None
        return JSONResponse(
            {"result_url": result_url(request, services, job.result_key)},
            headers={**headers, "X-Job-Id": job.id},
        )
    if order.wait and job.status == JobStatus.FAILED:
        raise JobFailed(job)
    # Not waited for, or still running after the wait: the job to poll.
    return JSONResponse(_document(request, services, job), status_code=202, headers=headers)


@router.get(
    "/v1/try-on/job/{jobId}",
    summary="Try On Job Status (Beta)",
    operation_id="try-on-job-status",
    responses={200: {"model": JobDocument}, **error_responses(401, 404, 429, 500)},
    response_model=None,
)
async def job_status(
    job_id: JobIdPath, request: Request, caller: CallerDep, services: ServicesDep, runner: RunnerDep
) -> dict[str, Any]:
    job = await run_in_threadpool(runner.store.get, job_id, account_id=caller.account_id)
    if job is None:
        raise NotFound("Job not found")
    return _document(request, services, job)


@router.post(
    "/v1/try-on/job/{jobId}/cancel",
    summary="Cancel Try On Job (Beta)",
    operation_id="try-on-job-cancel",
    responses={
        200: {"model": JobCancelledResponse},
        **error_responses(401, 404, 429, 500),
        409: error_response(409, "The job has already finished.", *_FINISHED),
    },
    response_model=None,
)
async def cancel_job(job_id: JobIdPath, caller: CallerDep, runner: RunnerDep) -> dict[str, str]:
    job = await run_in_threadpool(runner.store.get, job_id, account_id=caller.account_id)
    if job is None:
        raise NotFound("Job not found")
    if not await runner.cancel(job):
        raise JobFinished()
    return {"message": "Job cancelled"}
