"""The try-on job: what is checked at submission, and what a worker runs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from retouch.app_state import Services
from retouch.config import Settings
from retouch.engines.tryon import TryOnEngine
from retouch.jobs.store import JobView
from retouch.ops.codec import encode_jpeg, encode_png
from retouch.ops.try_on import flatten, needs_extraction, try_on
from retouch.pipeline import Output
from retouch.processing import decode_input

KIND = "try-on"
_MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


@dataclass(frozen=True)
class InspectedInputs:
    media_types: dict[str, str]
    garment_needs_extraction: bool


def inspect_inputs(
    settings: Settings, inputs: dict[str, bytes], engine: TryOnEngine
) -> InspectedInputs:
    """Decode both images at submission, so a bad image is a 400 now rather than a failed job,
    look for the person (``UnknownForeground``, the same 400 whether or not the call waits for
    the job) and tell whether the garment must be extracted (which is priced)."""
    decoded = {name: decode_input(settings, data) for name, data in inputs.items()}
    engine.find_person(flatten(decoded["person_image"].pixels))
    return InspectedInputs(
        media_types={name: _MEDIA_TYPES[image.format] for name, image in decoded.items()},
        garment_needs_extraction=needs_extraction(decoded["garment_image"].pixels),
    )


def run_try_on(services: Services, job: JobView, inputs: dict[str, bytes]) -> Output:
    options = job.params["options"]
    person = decode_input(services.settings, inputs["person_image"]).pixels
    garment = decode_input(services.settings, inputs["garment_image"]).pixels
    seed = int.from_bytes(hashlib.sha256(job.id.encode()).digest()[:4]) & 0x7FFFFFFF
    result = try_on(
        person,
        garment,
        engine=services.engines.try_on,
        segmenter=services.engines.segmenter,
        mode=options["garment_mode"],
        preprocess_garment=options["preprocess_garment"],
        remove_background=options["remove_background"],
        seed=seed,
    )
    if result.shape[2] == 4:
        return Output(encode_png(result), "image/png")
    return Output(encode_jpeg(result, quality=92), "image/jpeg")
