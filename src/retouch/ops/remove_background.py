"""Remove-background as one operation: pixels in, RGBA out, with the segmenter injected."""

from __future__ import annotations

import numpy as np

from retouch.engines.base import Segmenter
from retouch.errors import UnknownForeground
from retouch.ops.cutout import (
    cast_shadow,
    crop_to_subject,
    cutout,
    resolve_margins,
    subject_box,
)
from retouch.specs import CropSpec, ShadowSpec
from retouch.stages import stage

# Alpha above which a pixel counts for the crop box: low enough to keep a soft rim and the faint
# end of a shadow, high enough to ignore the refinement's near-zero noise.
_CROP_THRESHOLD = 0.03


def remove_background(
    pixels: np.ndarray,
    *,
    segmenter: Segmenter,
    crop: CropSpec | None = None,
    shadow: ShadowSpec | None = None,
    max_side: int = 6000,
) -> np.ndarray:
    """The subject of ``pixels`` (uint8 RGB or RGBA) on transparency, as uint8 RGBA.

    An input alpha channel is respected: what was transparent stays transparent. The shadow is
    cast before cropping, so ``crop`` frames the subject together with its shadow; margins are
    added around that box.
    """
    rgb = np.ascontiguousarray(pixels[..., :3])
    alpha = segmenter.mask(rgb)
    if pixels.shape[2] == 4:
        alpha = alpha * (pixels[..., 3].astype(np.float32) / 255)
    if subject_box(alpha) is None:
        raise UnknownForeground("No foreground subject could be detected in the image")
    with stage("cutout"):
        result = cutout(rgb, alpha)
    if shadow is not None:
        with stage("shadow"):
            result = cast_shadow(
                result,
                opacity=shadow.opacity,
                light_size=shadow.light_size,
                light_x=shadow.light_x,
                light_y=shadow.light_y,
                light_z=shadow.light_z,
            )
    if crop is None:
        return result
    # The crop keeps everything visible: the subject's soft rim and, when cast, its shadow.
    box = subject_box(result[..., 3].astype(np.float32) / 255, _CROP_THRESHOLD, min_fraction=0)
    assert box is not None  # the subject itself is above the threshold
    margins = resolve_margins(
        box,
        left=crop.left,
        top=crop.top,
        right=crop.right,
        bottom=crop.bottom,
        max_side=max_side,
    )
    return crop_to_subject(result, box, margins)
