"""Generative inpainting with a ``diffusers`` pipeline loaded from local weights.

Opt-in twice over: it needs the ``generative`` extra (torch, diffusers, transformers) and a
folder written by ``save_pretrained`` (``model_index.json`` plus one folder per component), for
example a Stable Diffusion inpainting checkpoint copied onto the server. No package ships usable
weights and nothing is ever downloaded: loading passes ``local_files_only`` and refuses a folder
without ``model_index.json`` before torch is even imported.

torch and diffusers are imported inside ``DiffusionInpainter.__init__``, so importing this
module (or the filler registry) stays cheap for servers that never use it.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from retouch.engines.base import check_fill_inputs

log = logging.getLogger(__name__)

# Pixelcut's preset scenes; a scene replaces the prompt and negative prompt (spec §3).
SCENE_PROMPTS: dict[str, str] = {
    "marble": "product photo on a polished white marble surface, soft studio lighting",
    "wood": "product photo on a warm natural wooden table, soft daylight",
    "industrial": "product photo in an industrial loft, raw concrete and steel, moody light",
    "linen": "product photo on crisp white linen fabric, soft morning light",
    "brick": "product photo in front of a rustic red brick wall, warm light",
    "counter": "product photo on a clean kitchen counter, bright natural light",
}
DEFAULT_PROMPT = "professional product photo, clean studio background, soft even lighting"
DEFAULT_NEGATIVE_PROMPT = "text, watermark, logo, people, blurry, low quality, distorted"

# Fill ``strength`` at creativity 0 and 1: the fraction of the noise schedule run over the hole.
# At 1 the hole starts from pure noise; below, it starts from a Telea smear of the edge colours,
# so the model keeps closer to them.
_FILL_STRENGTH = (0.8, 1.0)


class DiffusionInpainter:
    """A diffusers inpainting pipeline (``AutoPipelineForInpainting``: SD 1.x/2.x, SDXL and
    others) on the CPU in float32, as both a ``Filler`` and a ``BackgroundGenerator``.

    Each call runs at the model's native size (UNet sample size times the VAE factor, e.g. 512
    px for SD 1.5) on the long side, rounded to the VAE's multiple, and the result is resized
    back; pixels outside the mask are always the caller's own. Calls are serialised by a lock:
    the pipeline's scheduler keeps per-run state, and concurrent runs would only share the same
    ``threads`` cores anyway. ``threads`` sets torch's intra-op pool, which is process-wide.
    """

    def __init__(
        self,
        weights_path: Path,
        *,
        threads: int,
        steps: int = 25,
        guidance_scale: float = 7.5,
    ) -> None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if not (weights_path / "model_index.json").is_file():
            raise FileNotFoundError(
                f"no diffusers pipeline at {weights_path}: expected a folder written by "
                "save_pretrained (with model_index.json); weights are never downloaded"
            )
        import torch
        from diffusers import AutoPipelineForInpainting

        self._torch = torch
        self.steps = steps
        self.guidance_scale = guidance_scale
        log.info(
            "Loading diffusion pipeline from %s: device=cpu dtype=float32 threads=%d steps=%d",
            weights_path,
            threads,
            steps,
        )
        torch.set_num_threads(threads)
        # diffusers leaves from_pretrained unannotated.
        self.pipeline = AutoPipelineForInpainting.from_pretrained(  # type: ignore[no-untyped-call]
            weights_path, local_files_only=True, dtype=torch.float32
        )
        self.pipeline.set_progress_bar_config(disable=True)
        self.multiple = int(self.pipeline.vae_scale_factor)
        sample = self.pipeline.unet.config.sample_size
        sample = max(sample) if isinstance(sample, list | tuple) else sample
        self.native_side = int(sample) * self.multiple
        self._lock = threading.Lock()

    def fill(
        self,
        rgb: np.ndarray,
        mask: np.ndarray,
        *,
        creativity: float,
        seed: int,
        exclude: np.ndarray | None = None,
    ) -> np.ndarray:
        """Invent the masked pixels with no prompt (outpainting has none), so without
        classifier-free guidance; ``creativity`` maps to ``strength`` 0.8 → 1.0. ``exclude`` is
        ignored: the model generates rather than copies."""
        check_fill_inputs(rgb, mask, creativity, exclude)
        if not mask.any():
            return rgb.copy()
        low, high = _FILL_STRENGTH
        return self._inpaint(
            rgb,
            mask,
            prompt="",
            negative_prompt=None,
            guidance_scale=1.0,
            strength=low + (high - low) * creativity,
            seed=seed,
        )

    def background(
        self,
        canvas: np.ndarray,
        *,
        scene: str | None,
        prompt: str | None,
        negative_prompt: str | None,
        seed: int,
    ) -> np.ndarray:
        """Paint a scene wherever ``canvas`` (uint8 HxWx4) is not fully opaque, the opaque
        subject given as context. Partly transparent pixels are repainted too: the scene shows
        through them when the caller composites the subject over it.

        ``scene`` (one of ``SCENE_PROMPTS``) wins over ``prompt`` and ``negative_prompt``, as in
        Pixelcut; with neither, ``DEFAULT_PROMPT`` is used.
        """
        if canvas.dtype != np.uint8 or canvas.ndim != 3 or canvas.shape[2] != 4:
            raise ValueError(f"canvas must be uint8 HxWx4, got {canvas.dtype} {canvas.shape}")
        if scene is not None:
            if scene not in SCENE_PROMPTS:
                raise ValueError(f"unknown scene {scene!r}; known: {', '.join(SCENE_PROMPTS)}")
            prompt, negative_prompt = SCENE_PROMPTS[scene], DEFAULT_NEGATIVE_PROMPT
        rgb = np.ascontiguousarray(canvas[..., :3])
        mask = canvas[..., 3] < 255
        if not mask.any():
            return rgb
        return self._inpaint(
            rgb,
            mask,
            prompt=prompt or DEFAULT_PROMPT,
            negative_prompt=DEFAULT_NEGATIVE_PROMPT if negative_prompt is None else negative_prompt,
            guidance_scale=self.guidance_scale,
            strength=1.0,
            seed=seed,
        )

    def _inpaint(
        self,
        rgb: np.ndarray,
        mask: np.ndarray,
        *,
        prompt: str,
        negative_prompt: str | None,
        guidance_scale: float,
        strength: float,
        seed: int,
    ) -> np.ndarray:
        h, w = mask.shape
        scale = self.native_side / max(h, w)
        width, height = (
            max(self.multiple, round(n * scale / self.multiple) * self.multiple) for n in (w, h)
        )
        size = (width, height)
        shrink = scale < 1
        image = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
        # A working pixel that covers any hole pixel is a hole, so every pixel the result takes
        # from the model was generated, not a VAE round trip of a half-hole.
        work_mask = cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
        # With strength < 1 the hole's content seeds the result: give it the edge colours.
        image = cv2.inpaint(image, work_mask.astype(np.uint8), 5, cv2.INPAINT_TELEA)
        call: dict[str, Any] = {
            "prompt": prompt,
            "negative_prompt": negative_prompt,
            "image": Image.fromarray(image),
            "mask_image": Image.fromarray(work_mask.astype(np.uint8) * 255),
            "height": height,
            "width": width,
            "num_inference_steps": self.steps,
            "guidance_scale": guidance_scale,
            "strength": strength,
            "generator": self._torch.Generator("cpu").manual_seed(seed),
            "output_type": "np",
        }
        with self._lock, self._torch.inference_mode():
            painted = self.pipeline(**call).images[0]
        painted = np.clip(np.round(painted * 255), 0, 255).astype(np.uint8)
        interpolation = cv2.INTER_CUBIC if shrink else cv2.INTER_AREA
        painted = cv2.resize(painted, (w, h), interpolation=interpolation)
        out = rgb.copy()
        out[mask] = painted[mask]
        return out
