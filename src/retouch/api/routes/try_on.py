"""POST /v1/try-on, GET /v1/try-on/job/{job_id}, POST /v1/try-on/job/{job_id}/cancel."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from retouch.api.deps import CallerDep, ServicesDep
from retouch.api.inputs import load_image, parse_image_request
from retouch.api.openapi import request_body
from retouch.api.outputs import result_url
from retouch.api.responses import error_responses
from retouch.api.schemas import TryOnRequest
from retouch.app_state import Services
from retouch.errors import Conflict, NotFound
from retouch.jobs.documents import job_document
from retouch.jobs.runner import JobFailed, JobRunner
from retouch.jobs.store import JobStatus, JobView
from retouch.jobs.try_on import KIND, inspect_inputs
from retouch.jobs.webhooks import validate_webhook_url

router = APIRouter(tags=["Endpoints"])
IMAGES = ("person_image", "garment_image")


def get_runner(request: Request) -> JobRunner:
    runner: JobRunner = request.app.state.runner
    return runner


RunnerDep = Annotated[JobRunner, Depends(get_runner)]


class JobFinished(Conflict):
    error_code = "job_finished"
    default_message = "Job has already finished and cannot be canceled"


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
        200: {"description": '`{"result_url"}` once the job is done (`wait_for_result`).'},
        202: {"description": '`{"job_id", "status"}`: the job was queued.'},
        **error_responses(400, 401, 403, 429, 500),
    },
    response_class=JSONResponse,
)
async def try_on(
    request: Request, caller: CallerDep, services: ServicesDep, runner: RunnerDep
) -> Response:
    params, sources = await parse_image_request(request, TryOnRequest, images=IMAGES)
    if params.webhook_url is not None:
        validate_webhook_url(params.webhook_url)
    settings = services.settings
    inputs = {name: await load_image(services, source) for name, source in sources.items()}
    inspected = await services.executor.run(
        inspect_inputs, settings, inputs, services.engines.try_on
    )
    extraction = params.preprocess_garment and inspected.garment_needs_extraction
    price = services.pricing.try_on(garment_extraction=extraction)

    job_id = str(uuid.uuid4())
    hold = await run_in_threadpool(
        services.ledger.reserve,
        account_id=caller.account_id,
        request_id=job_id,
        endpoint=KIND,
        amount=price,
        ttl=runner.reservation_ttl,
    )
    try:
        expires_at = services.clock() + timedelta(seconds=settings.job_retention_seconds)
        keys = {
            name: await run_in_threadpool(
                services.results.put,
                inputs[name],
                media_type=inspected.media_types[name],
                expires_at=expires_at,
            )
            for name in IMAGES
        }
        job = await run_in_threadpool(
            runner.store.create,
            job_id=job_id,
            account_id=caller.account_id,
            kind=KIND,
            params={
                "inputs": keys,
                "options": params.model_dump(
                    mode="json", exclude={"person_image_url", "garment_image_url"}
                ),
            },
            price=price,
        )
    except BaseException:
        await run_in_threadpool(
            services.ledger.release, account_id=caller.account_id, request_id=job_id
        )
        raise
    await runner.submit(job_id)
    headers = {"X-Credits-Charged": str(hold.amount)}
    if not params.wait_for_result:
        return JSONResponse(_document(request, services, job), status_code=202, headers=headers)

    job = await runner.wait(job_id, seconds=settings.job_wait_seconds)
    if job.status == JobStatus.COMPLETED:
        assert job.result_key is not None
        return JSONResponse(
            {"result_url": result_url(request, services, job.result_key)},
            headers={**headers, "X-Job-Id": job.id},
        )
    if job.status == JobStatus.FAILED:
        raise JobFailed(job)
    # Still running after the wait: hand over the job to poll, as with wait_for_result=false.
    return JSONResponse(_document(request, services, job), status_code=202, headers=headers)


@router.get(
    "/v1/try-on/job/{job_id}",
    summary="Try On Job Status (Beta)",
    operation_id="try-on-job-status",
    responses=error_responses(401, 404, 429, 500),
)
async def job_status(
    job_id: str, request: Request, caller: CallerDep, services: ServicesDep, runner: RunnerDep
) -> dict[str, Any]:
    job = await run_in_threadpool(runner.store.get, job_id, account_id=caller.account_id)
    if job is None:
        raise NotFound("Job not found")
    return _document(request, services, job)


@router.post(
    "/v1/try-on/job/{job_id}/cancel",
    summary="Cancel Try On Job (Beta)",
    operation_id="try-on-job-cancel",
    responses=error_responses(401, 404, 429, 500)
    | {409: {"description": "The job has already finished."}},
)
async def cancel_job(job_id: str, caller: CallerDep, runner: RunnerDep) -> dict[str, str]:
    job = await run_in_threadpool(runner.store.get, job_id, account_id=caller.account_id)
    if job is None:
        raise NotFound("Job not found")
    if not await runner.cancel(job):
        raise JobFinished()
    return {"message": "Job cancelled"}
