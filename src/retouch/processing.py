"""Each endpoint's work on one image: encoded bytes and validated parameters in, the encoded
result out. Routes run these in the CPU pool; the batch CLI runs them locally, so both produce
the same images."""

from __future__ import annotations

import hashlib
import logging

from pydantic import BaseModel

from retouch.app_state import Engines
from retouch.config import Settings
from retouch.errors import ResolutionTooHigh
from retouch.ops.codec import (
    DecodedImage,
    ImageLimits,
    decode_image,
    encode_jpeg,
    encode_png,
    probe_image,
)
from retouch.ops.generate_background import Placement, SceneRequest, compose_scene
from retouch.ops.outpaint import MIN_SIDE
from retouch.ops.outpaint import outpaint as outpaint_op
from retouch.ops.remove_background import remove_background as cut_out
from retouch.ops.upscale import max_input_side, upscale_image
from retouch.pipeline import Output
from retouch.schemas import (
    GenerateBackgroundRequest,
    OutpaintRequest,
    RemoveBackgroundRequest,
    UpscaleRequest,
)
from retouch.stages import collect, stage

log = logging.getLogger(__name__)

# Which scene generate-background drew: a preset, or the library scene its prompt chose.
SCENE_HEADER = "X-Retouch-Scene"


def decode_input(
    settings: Settings, data: bytes, *, min_side: int | None = None, max_side: int | None = None
) -> DecodedImage:
    """Decode an input image under the configured limits, tightened for endpoints that need it."""
    return decode_image(data, _limits(settings, min_side=min_side, max_side=max_side))


def probe_input(settings: Settings, data: bytes) -> None:
    """Refuse an input that the configured limits refuse anyway, from its header alone."""
    probe_image(data, _limits(settings))


def _limits(
    settings: Settings, *, min_side: int | None = None, max_side: int | None = None
) -> ImageLimits:
    return ImageLimits(
        max_bytes=settings.image_max_bytes,
        min_side=max(settings.image_min_side, min_side or 0),
        max_side=min(settings.image_max_side, max_side or settings.image_max_side),
    )


def request_seed(image: bytes, params: BaseModel) -> int:
    """A seed from the request itself, so the same request always gives the same image."""
    digest = hashlib.sha256(image)
    digest.update(params.model_dump_json(exclude={"image_url", "seed"}).encode())
    return int.from_bytes(digest.digest()[:4]) & 0x7FFFFFFF


def remove_background(
    params: RemoveBackgroundRequest, data: bytes, engines: Engines, settings: Settings
) -> Output:
    if not settings.stage_timings:
        return _remove_background(params, data, engines, settings)
    with collect() as times:
        output = _remove_background(params, data, engines, settings)
    log.info("remove-background stages", extra={"stages": times.as_log()})
    return output


def _remove_background(
    params: RemoveBackgroundRequest, data: bytes, engines: Engines, settings: Settings
) -> Output:
    with stage("decode"):
        pixels = decode_input(settings, data).pixels
    rgba = cut_out(
        pixels,
        segmenter=engines.segmenter,
        crop=params.crop_spec(),
        shadow=params.shadow_spec(),
        max_side=settings.image_max_side,
    )
    with stage("encode"):
        return Output(encode_png(rgba), "image/png")


def upscale(params: UpscaleRequest, data: bytes, engines: Engines, settings: Settings) -> Output:
    largest = max_input_side(params.scale, settings.image_max_side)
    try:
        decoded = decode_input(settings, data, max_side=largest)
    except ResolutionTooHigh as exc:
        raise ResolutionTooHigh(
            f"{exc.message}: upscaling {params.scale}x allows inputs up to {largest} px on a "
            f"side, so the result stays within {settings.image_max_side} px"
        ) from None
    out = upscale_image(decoded.pixels, upscaler=engines.upscaler, scale=params.scale)
    if decoded.has_alpha:
        return Output(encode_png(out), "image/png")
    return Output(encode_jpeg(out, quality=92), "image/jpeg")


def outpaint(params: OutpaintRequest, data: bytes, engines: Engines, settings: Settings) -> Output:
    rgb = outpaint_op(
        decode_input(settings, data, min_side=MIN_SIDE).pixels,
        left=params.left,
        top=params.top,
        right=params.right,
        bottom=params.bottom,
        filler=engines.filler,
        creativity=params.creativity,
        seed=request_seed(data, params),
        segmenter=engines.segmenter,
    )
    if params.output_format == "png":
        return Output(encode_png(rgb), "image/png")
    return Output(encode_jpeg(rgb, quality=92), "image/jpeg")


def generate_background(
    params: GenerateBackgroundRequest, data: bytes, engines: Engines, settings: Settings
) -> Output:
    transform = params.image_transform
    result = compose_scene(
        decode_input(settings, data).pixels,
        segmenter=engines.segmenter,
        generator=engines.backgrounds,
        placement=Placement(transform.scale, transform.x_center, transform.y_center),
        scene=SceneRequest(
            scene=params.scene,
            prompt=params.prompt,
            negative_prompt=params.negative_prompt,
            seed=params.seed if params.seed is not None else request_seed(data, params),
        ),
    )
    return Output(encode_jpeg(result.image, quality=92), "image/jpeg", {SCENE_HEADER: result.scene})
